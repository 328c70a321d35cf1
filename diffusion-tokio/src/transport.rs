//! Opening the WebSocket a `ConnectRequest` asks for: TCP (no Nagle), TLS for `wss://`
//! through rustls, the upgrade with the connection parameters, and tungstenite's buffers.

use std::sync::Arc;

use diffusion_proto::ConnectRequest;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::WebSocketStream;

/// Any byte stream a WebSocket can run over (plain TCP or TLS).
pub(crate) trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// The WebSocket the driver owns.
pub(crate) type Ws = WebSocketStream<Box<dyn Io>>;

/// How TLS connections are made.
#[derive(Clone)]
pub(crate) enum Tls {
    /// `wss://` is refused (the `rustls` feature is off).
    #[cfg_attr(feature = "rustls", allow(dead_code))]
    Unavailable,
    /// rustls with this configuration.
    #[cfg(feature = "rustls")]
    Rustls(Arc<rustls::ClientConfig>),
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tls::Unavailable => f.write_str("Tls::Unavailable"),
            #[cfg(feature = "rustls")]
            Tls::Rustls(_) => f.write_str("Tls::Rustls"),
        }
    }
}

/// tungstenite settings: a small read buffer, a bounded write buffer, and the session's
/// inbound message limit enforced while reading. Frames collect in the write buffer until
/// the driver flushes after each batch of outputs, so pipelined requests share syscalls.
pub(crate) fn websocket_config(max_inbound: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(64 * 1024)
        .max_write_buffer_size(4 << 20)
        .max_message_size(Some(max_inbound))
        .max_frame_size(Some(max_inbound))
}

/// Opens the WebSocket for `request`. The error is a description for the session's close reason.
pub(crate) async fn open(request: ConnectRequest, tls: Tls, config: WebSocketConfig) -> Result<Ws, String> {
    let url = &request.url;
    let authority = url.socket_address();
    let tcp = TcpStream::connect(&authority)
        .await
        .map_err(|e| format!("TCP connect to {authority}: {e}"))?;
    // Pings are tiny: send each at once rather than wait for more to coalesce.
    tcp.set_nodelay(true).map_err(|e| format!("TCP_NODELAY: {e}"))?;
    let stream: Box<dyn Io> = if url.secure {
        wrap_tls(tcp, url.host(), tls).await?
    } else {
        Box::new(tcp)
    };

    let mut http = request
        .uri()
        .into_client_request()
        .map_err(|e| format!("bad request URI: {e}"))?;
    for (name, value) in request.headers() {
        let value = HeaderValue::from_str(&value)
            .map_err(|_| format!("parameter {name} cannot be sent as a header"))?;
        http.headers_mut().insert(HeaderName::from_static(name), value);
    }
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

/// The default TLS client: rustls with the ring provider chosen explicitly (so no
/// process-wide default provider is needed) and the webpki root certificates.
#[cfg(feature = "rustls")]
pub(crate) fn default_tls() -> Result<Arc<rustls::ClientConfig>, String> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(Arc::new(config))
}
