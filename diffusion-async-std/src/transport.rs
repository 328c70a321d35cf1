//! The futures-io side of opening a WebSocket (async-net, so async-std and smol alike): a
//! TCP connection, TLS through futures-rustls, the upgrade through async-tungstenite.

use std::net::SocketAddr;

use async_net::TcpStream;
use async_tungstenite::tungstenite::handshake::client::Request;
use async_tungstenite::tungstenite::protocol::WebSocketConfig;
use async_tungstenite::WebSocketStream;
use futures_util::io::{AsyncRead, AsyncWrite};

/// Any byte stream a WebSocket can run over (plain TCP or TLS).
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// A connected byte stream.
pub type Stream = Box<dyn Io>;

/// The WebSocket the driver owns.
pub type Ws = WebSocketStream<Stream>;

pub(crate) async fn resolve(host: String, port: u16) -> std::io::Result<Vec<SocketAddr>> {
    async_net::resolve((host.as_str(), port)).await
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
    let tls = futures_rustls::TlsConnector::from(config)
        .connect(name, stream)
        .await?;
    Ok(Box::new(tls))
}

pub(crate) async fn write_all(stream: &mut Stream, bytes: &[u8]) -> std::io::Result<()> {
    use futures_util::io::AsyncWriteExt;
    stream.write_all(bytes).await?;
    stream.flush().await
}

pub(crate) async fn read(stream: &mut Stream, buffer: &mut [u8]) -> std::io::Result<usize> {
    use futures_util::io::AsyncReadExt;
    stream.read(buffer).await
}

pub(crate) async fn upgrade(
    request: Request,
    stream: Stream,
    config: WebSocketConfig,
) -> Result<Ws, async_tungstenite::tungstenite::Error> {
    let (ws, _response) = async_tungstenite::client_async_with_config(request, stream, Some(config)).await?;
    Ok(ws)
}
