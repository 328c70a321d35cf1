//! What a runtime adapter provides to the shared driver: spawning, timers, name resolution,
//! TCP, TLS and the WebSocket upgrade; and the one flow that opens a WebSocket with them
//! (through an HTTP proxy when there is one), each step's failure a typed [`TransportError`].

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use diffusion_proto::{ConnectRequest, TransportError, WebSocketUrl};
use futures_util::{Sink, Stream};
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::client::Request;
use tungstenite::http::{HeaderName, HeaderValue};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::Message;

use crate::proxy::{self, Proxy};

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
    /// A connected byte stream: TCP, or TLS over it.
    type Stream: Send + 'static;

    /// Whether this adapter was built with TLS, so that [`Runtime::connect_tls`] works;
    /// a `wss://` URL is refused at `build()` otherwise.
    const TLS: bool = false;
    /// The feature that gives this adapter TLS, named in the error for a `wss://` URL
    /// without it (e.g. `diffusion-tokio/rustls`).
    const TLS_FEATURE: &'static str;

    /// Runs `task` in the background.
    fn spawn(task: impl Future<Output = ()> + Send + 'static);

    /// Completes at `deadline`.
    fn sleep_until(deadline: Instant) -> Self::Sleep;

    /// The addresses of `host` (a name or an IP literal) with `port`.
    fn resolve(host: String, port: u16) -> impl Future<Output = io::Result<Vec<SocketAddr>>> + Send;

    /// Opens a TCP connection to the first of `addresses` that answers, with Nagle's
    /// algorithm off: pings are tiny, and each should leave at once.
    fn connect_tcp(addresses: Vec<SocketAddr>) -> impl Future<Output = io::Result<Self::Stream>> + Send;

    /// Writes all of `bytes` to `stream` and flushes it (an HTTP proxy's `CONNECT`).
    fn write_all<'a>(
        stream: &'a mut Self::Stream,
        bytes: &'a [u8],
    ) -> impl Future<Output = io::Result<()>> + Send + 'a;

    /// Reads into `buffer` what `stream` has, waiting for at least one byte; 0 at its end
    /// (an HTTP proxy's answer).
    fn read<'a>(
        stream: &'a mut Self::Stream,
        buffer: &'a mut [u8],
    ) -> impl Future<Output = io::Result<usize>> + Send + 'a;

    /// Runs a TLS handshake over `stream` for the server `name`. The default refuses; an
    /// adapter that overrides it sets [`Runtime::TLS`].
    #[cfg(feature = "rustls")]
    fn connect_tls(
        stream: Self::Stream,
        name: rustls::pki_types::ServerName<'static>,
        config: Arc<rustls::ClientConfig>,
    ) -> impl Future<Output = io::Result<Self::Stream>> + Send {
        let _ = (stream, name, config);
        std::future::ready(Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "this runtime adapter was built without TLS; enable {}",
                Self::TLS_FEATURE
            ),
        )))
    }

    /// The WebSocket upgrade over `stream`.
    fn upgrade(
        request: Request,
        stream: Self::Stream,
        config: WebSocketConfig,
    ) -> impl Future<Output = Result<Self::WebSocket, tungstenite::Error>> + Send;
}

/// Opens the WebSocket a connection request asks for: name resolution and TCP (or a
/// tunnel through `proxy`), TLS for `wss://`, then the upgrade of [`upgrade_request`] with
/// `config`.
pub(crate) async fn open<R: Runtime>(
    request: ConnectRequest,
    tls: Tls,
    proxy: Option<Arc<Proxy>>,
    config: WebSocketConfig,
) -> Result<R::WebSocket, TransportError> {
    let url = &request.url;
    let host = url.host().to_owned();
    let tcp = match proxy {
        Some(proxy) => proxy::tunnel::<R>(&proxy, url).await?,
        None => connect_direct::<R>(url).await?,
    };
    let stream = if url.secure {
        secure::<R>(tcp, host, tls).await?
    } else {
        tcp
    };
    let http = upgrade_request(&request)?;
    R::upgrade(http, stream, config).await.map_err(|e| match e {
        tungstenite::Error::Http(response) => TransportError::Upgrade {
            status: response.status().as_u16(),
        },
        other => TransportError::WebSocket {
            source: Arc::new(other),
        },
    })
}

/// A TCP connection to the server of `url`.
async fn connect_direct<R: Runtime>(url: &WebSocketUrl) -> Result<R::Stream, TransportError> {
    let host = url.host().to_owned();
    let addresses = R::resolve(host.clone(), url.port())
        .await
        .map_err(|e| TransportError::Dns {
            host,
            source: Arc::new(e),
        })?;
    R::connect_tcp(addresses).await.map_err(|e| TransportError::Tcp {
        address: url.socket_address(),
        source: Arc::new(e),
    })
}

#[cfg(feature = "rustls")]
async fn secure<R: Runtime>(tcp: R::Stream, host: String, tls: Tls) -> Result<R::Stream, TransportError> {
    let tls_error = |source: Arc<dyn std::error::Error + Send + Sync>| TransportError::Tls {
        host: host.clone(),
        source,
    };
    let Tls::Rustls(config) = tls else {
        let off = io::Error::new(io::ErrorKind::Unsupported, "TLS is not configured");
        return Err(tls_error(Arc::new(off)));
    };
    let name = rustls::pki_types::ServerName::try_from(host.clone()).map_err(|e| tls_error(Arc::new(e)))?;
    R::connect_tls(tcp, name, config)
        .await
        .map_err(|e| tls_error(Arc::new(e)))
}

#[cfg(not(feature = "rustls"))]
async fn secure<R: Runtime>(_tcp: R::Stream, host: String, _tls: Tls) -> Result<R::Stream, TransportError> {
    // `build()` refuses wss:// without TLS; this is the same answer, should one get here.
    let off = io::Error::new(io::ErrorKind::Unsupported, "wss:// needs the `rustls` feature");
    Err(TransportError::Tls {
        host,
        source: Arc::new(off),
    })
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
/// process-wide default provider is needed), trusting the webpki root certificates (Mozilla's,
/// compiled in) or, with the `platform-verifier` feature, what the operating system trusts
/// (its verifier on macOS, Windows and Android; elsewhere the system's CA certificates,
/// `SSL_CERT_FILE` and `SSL_CERT_DIR` honoured). Fails, with the feature, on a machine
/// whose system store holds no certificate at all.
#[cfg(feature = "rustls")]
pub fn default_tls() -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let builder =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?;
    #[cfg(feature = "platform-verifier")]
    let builder = rustls_platform_verifier::BuilderVerifierExt::with_platform_verifier(builder)?;
    #[cfg(not(feature = "platform-verifier"))]
    let builder = builder.with_root_certificates(rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    });
    Ok(Arc::new(builder.with_no_client_auth()))
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
/// the parameter headers when they travel as headers. Fails when a parameter cannot be an
/// HTTP header value (a principal with a control character, say).
pub fn upgrade_request(request: &ConnectRequest) -> Result<Request, TransportError> {
    let invalid = |e: tungstenite::Error| TransportError::WebSocket { source: Arc::new(e) };
    let mut http = request.uri().into_client_request().map_err(invalid)?;
    for (name, value) in request.headers() {
        let value =
            HeaderValue::from_str(&value).map_err(|e| invalid(tungstenite::Error::HttpFormat(e.into())))?;
        http.headers_mut().append(HeaderName::from_static(name), value);
    }
    Ok(http)
}
