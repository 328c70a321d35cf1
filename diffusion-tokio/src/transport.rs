//! Opening a WebSocket on tokio: TCP without Nagle, TLS for `wss://` through
//! tokio-rustls, then the upgrade with the connection parameters.

use diffusion_client::Tls;
use diffusion_proto::ConnectRequest;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::WebSocketStream;

/// Any byte stream a WebSocket can run over (plain TCP or TLS).
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// The WebSocket the driver owns.
pub type Ws = WebSocketStream<Box<dyn Io>>;

pub(crate) async fn open(request: ConnectRequest, tls: Tls, config: WebSocketConfig) -> Result<Ws, String> {
    let url = &request.url;
    let address = url.socket_address();
    let tcp = TcpStream::connect(&address)
        .await
        .map_err(|e| format!("TCP connect to {address}: {e}"))?;
    // Pings are tiny: send each at once rather than wait for more to coalesce.
    tcp.set_nodelay(true).map_err(|e| format!("TCP_NODELAY: {e}"))?;
    let stream: Box<dyn Io> = if url.secure {
        wrap_tls(tcp, url.host(), tls).await?
    } else {
        Box::new(tcp)
    };
    let http = diffusion_client::upgrade_request(&request)?;
    let (ws, _response) = tokio_tungstenite::client_async_with_config(http, stream, Some(config))
        .await
        .map_err(|e| format!("WebSocket upgrade: {e}"))?;
    Ok(ws)
}

#[cfg(feature = "rustls")]
async fn wrap_tls(tcp: TcpStream, host: &str, tls: Tls) -> Result<Box<dyn Io>, String> {
    let Tls::Rustls(config) = tls else {
        return Err("wss:// needs TLS, which is not configured".into());
    };
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| format!("TLS server name {host:?}: {e}"))?;
    let stream = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake with {host}: {e}"))?;
    Ok(Box::new(stream))
}

#[cfg(not(feature = "rustls"))]
async fn wrap_tls(_tcp: TcpStream, _host: &str, _tls: Tls) -> Result<Box<dyn Io>, String> {
    Err("wss:// needs the `rustls` feature of diffusion-tokio".into())
}
