//! What a runtime adapter provides to the shared driver: spawning, timers and opening a
//! WebSocket. Everything else about a session is the same on every runtime.

use std::future::Future;
#[cfg(feature = "rustls")]
use std::sync::Arc;
use std::time::Instant;

use diffusion_proto::ConnectRequest;
use futures_util::{Sink, Stream};
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::client::Request;
use tungstenite::http::{HeaderName, HeaderValue};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::Message;

/// A runtime adapter: tokio, async-std or smol.
pub trait Runtime: Send + Sync + 'static {
    /// An open WebSocket: incoming messages as a stream, outgoing as a sink.
    type WebSocket: Stream<Item = Result<Message, tungstenite::Error>>
        + Sink<Message, Error = tungstenite::Error>
        + Send
        + Unpin
        + 'static;
    /// A timer that completes at a deadline.
    type Sleep: Future<Output = ()> + Send + 'static;

    /// Runs `task` in the background.
    fn spawn(task: impl Future<Output = ()> + Send + 'static);

    /// Completes at `deadline`.
    fn sleep_until(deadline: Instant) -> Self::Sleep;

    /// A connected byte stream: TCP, or TLS over it.
    type Stream: Send + 'static;

    /// Opens a TCP connection to `address` (`host:port`) with Nagle's algorithm off:
    /// pings are tiny, and each should leave at once.
    fn connect_tcp(address: String) -> impl Future<Output = std::io::Result<Self::Stream>> + Send;

    /// Runs a TLS handshake over `stream` for the server `name`. The default refuses:
    /// an adapter built without TLS support keeps it.
    #[cfg(feature = "rustls")]
    fn connect_tls(
        stream: Self::Stream,
        name: rustls::pki_types::ServerName<'static>,
        config: Arc<rustls::ClientConfig>,
    ) -> impl Future<Output = std::io::Result<Self::Stream>> + Send {
        let _ = (stream, name, config);
        std::future::ready(Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "this runtime adapter was built without its `rustls` feature",
        )))
    }

    /// The WebSocket upgrade over `stream`.
    fn upgrade(
        request: Request,
        stream: Self::Stream,
        config: WebSocketConfig,
    ) -> impl Future<Output = Result<Self::WebSocket, tungstenite::Error>> + Send;
}

/// Opens the WebSocket a connection request asks for: TCP, TLS for `wss://`, then the
/// upgrade of [`upgrade_request`] with `config`. The error is a description for the
/// session's close reason.
pub(crate) async fn open<R: Runtime>(
    request: ConnectRequest,
    tls: Tls,
    config: WebSocketConfig,
) -> Result<R::WebSocket, String> {
    let url = &request.url;
    let address = url.socket_address();
    let tcp = R::connect_tcp(address.clone())
        .await
        .map_err(|e| format!("TCP connect to {address}: {e}"))?;
    let stream = if url.secure {
        secure::<R>(tcp, url.host(), tls).await?
    } else {
        tcp
    };
    let http = upgrade_request(&request)?;
    R::upgrade(http, stream, config)
        .await
        .map_err(|e| format!("WebSocket upgrade: {e}"))
}

#[cfg(feature = "rustls")]
async fn secure<R: Runtime>(tcp: R::Stream, host: &str, tls: Tls) -> Result<R::Stream, String> {
    let Tls::Rustls(config) = tls else {
        return Err("wss:// needs TLS, which is not configured".into());
    };
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| format!("TLS server name {host:?}: {e}"))?;
    R::connect_tls(tcp, name, config)
        .await
        .map_err(|e| format!("TLS handshake with {host}: {e}"))
}

#[cfg(not(feature = "rustls"))]
async fn secure<R: Runtime>(_tcp: R::Stream, _host: &str, _tls: Tls) -> Result<R::Stream, String> {
    Err("wss:// needs the `rustls` feature".into())
}

/// How `wss://` connections are made.
#[derive(Clone)]
pub enum Tls {
    /// `wss://` is refused (the `rustls` feature is off, or the URL is `ws://`).
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

/// The default TLS client: rustls with the ring provider chosen explicitly (so no
/// process-wide default provider is needed) and the webpki root certificates.
#[cfg(feature = "rustls")]
pub fn default_tls() -> Result<Arc<rustls::ClientConfig>, String> {
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

/// tungstenite settings: a small read buffer, a bounded write buffer, and the session's
/// inbound message limit enforced while reading. Frames collect in the write buffer until
/// the driver flushes after each batch of outputs, so pipelined requests share syscalls.
///
/// The read buffer is allocated and zero-filled for every connection, so it is most of
/// what an idle session costs: 4 KiB still takes hundreds of small messages per read, and a
/// larger message is read into a buffer of its own size, only in more reads.
pub fn websocket_config(max_inbound: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(64 * 1024)
        .max_write_buffer_size(4 << 20)
        .max_message_size(Some(max_inbound))
        .max_frame_size(Some(max_inbound))
}

/// The HTTP upgrade request: the URI (with the query when parameters travel there) and
/// the parameter headers when they travel as headers.
pub fn upgrade_request(request: &ConnectRequest) -> Result<Request, String> {
    let mut http = request
        .uri()
        .into_client_request()
        .map_err(|e| format!("bad request URI: {e}"))?;
    for (name, value) in request.headers() {
        let value = HeaderValue::from_str(&value)
            .map_err(|_| format!("parameter {name} cannot be sent as a header"))?;
        http.headers_mut().append(HeaderName::from_static(name), value);
    }
    Ok(http)
}
