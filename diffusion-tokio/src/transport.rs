//! The tokio side of opening a WebSocket: a TCP connection, TLS through tokio-rustls,
//! and the upgrade through tokio-tungstenite. The flow itself is `diffusion-client`'s.

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::WebSocketStream;

/// Any byte stream a WebSocket can run over (plain TCP or TLS).
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// A connected byte stream.
pub type Stream = Box<dyn Io>;

/// The WebSocket the driver owns.
pub type Ws = WebSocketStream<Stream>;

pub(crate) async fn resolve(host: String, port: u16) -> std::io::Result<Vec<SocketAddr>> {
    Ok(tokio::net::lookup_host((host.as_str(), port)).await?.collect())
}

pub(crate) async fn connect_tcp(addresses: Vec<SocketAddr>) -> std::io::Result<Stream> {
    let tcp = TcpStream::connect(addresses.as_slice()).await?;
    tcp.set_nodelay(true)?;
    Ok(Box::new(tcp))
}

#[cfg(feature = "rustls")]
pub(crate) async fn connect_tls(
    stream: Stream,
    name: rustls::pki_types::ServerName<'static>,
    config: std::sync::Arc<rustls::ClientConfig>,
) -> std::io::Result<Stream> {
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, stream)
        .await?;
    Ok(Box::new(tls))
}

pub(crate) async fn write_all(stream: &mut Stream, bytes: &[u8]) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    stream.write_all(bytes).await?;
    stream.flush().await
}

pub(crate) async fn read(stream: &mut Stream, buffer: &mut [u8]) -> std::io::Result<usize> {
    use tokio::io::AsyncReadExt;
    stream.read(buffer).await
}

pub(crate) async fn upgrade(
    request: Request,
    stream: Stream,
    config: WebSocketConfig,
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let (ws, _response) = tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await?;
    Ok(ws)
}
