//! Diffusion sessions on tokio.
//!
//! A [`Session`] opens a Diffusion session over a WebSocket (tokio-tungstenite, with
//! rustls for `wss://`), answers the server's system pings, pings the server, reconnects
//! to the same session after a lost connection and closes cleanly. The protocol lives in
//! [`diffusion_proto`], the Session API in [`diffusion_client`]; this crate moves bytes
//! and time on tokio. The same API on async-std or smol is `diffusion_async_std`.
//!
//! Here against the loopback test server, which stands in for yours (it is
//! `diffusion-test-server`, a dev-dependency of a test suite):
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use diffusion_test_server::{Options, TestServer};
//! use diffusion_tokio::{Session, SessionState};
//!
//! let server = TestServer::start(Options::default().user("admin", "secret")).await?;
//!
//! let session = Session::builder(&server.url()) // ws://127.0.0.1:PORT
//!     .principal("admin")
//!     .password("secret")
//!     .property("region", "eu")?
//!     .connect()
//!     .await?;
//! println!("session {} is {}", session.session_id().unwrap(), session.state());
//! let ping = session.ping_server().await?;
//! println!("round trip {:?}", ping.round_trip);
//! session.close().await;
//! assert_eq!(session.state(), SessionState::ClosedByClient);
//! # Ok(()) }
//! ```
//!
//! Through an HTTP proxy, add
//! [`.proxy("http://proxy:3128")`](diffusion_client::SessionBuilder::proxy), or
//! [`.proxy_from_env()`](diffusion_client::SessionBuilder::proxy_from_env) to follow
//! `HTTPS_PROXY`, `HTTP_PROXY` and `NO_PROXY`. Feature `rustls` (default): `wss://`, trusting
//! the webpki roots, or what the operating system trusts with feature `platform-verifier`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod transport;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Instant;

use tokio_tungstenite::tungstenite::{self, handshake::client::Request, protocol::WebSocketConfig};

pub use diffusion_client::{
    Backoff, CloseReason, ClosedBy, Credentials, Error, ErrorReason, FixedDelay, Handler, Lagged,
    PingDetails, ProtocolVersion, ProxyUrlError, ReconnectAction, ReconnectConfig, ReconnectStrategy, Reply,
    RequestError, ResponseCode, ServiceId, SessionData, SessionError, SessionId, SessionProperties,
    SessionState, StateChange, StateChanges, TransportError, UrlError,
};

/// The rustls this crate is built with (feature `rustls`), for `tls_config`: naming it
/// through this re-export keeps your rustls types the same version as ours.
#[cfg(feature = "rustls")]
pub use rustls;

/// The tokio runtime adapter.
#[derive(Debug, Clone, Copy)]
pub struct Tokio;

impl diffusion_client::Runtime for Tokio {
    type WebSocket = transport::Ws;
    type Sleep = tokio::time::Sleep;

    fn spawn(task: impl Future<Output = ()> + Send + 'static) {
        tokio::spawn(task);
    }

    fn sleep_until(deadline: Instant) -> Self::Sleep {
        tokio::time::sleep_until(tokio::time::Instant::from_std(deadline))
    }

    type Stream = transport::Stream;

    const TLS: bool = cfg!(feature = "rustls");
    const TLS_FEATURE: &'static str = "diffusion-tokio/rustls";

    fn resolve(host: String, port: u16) -> impl Future<Output = std::io::Result<Vec<SocketAddr>>> + Send {
        transport::resolve(host, port)
    }

    fn connect_tcp(
        addresses: Vec<SocketAddr>,
    ) -> impl Future<Output = std::io::Result<transport::Stream>> + Send {
        transport::connect_tcp(addresses)
    }

    fn write_all<'a>(
        stream: &'a mut transport::Stream,
        bytes: &'a [u8],
    ) -> impl Future<Output = std::io::Result<()>> + Send + 'a {
        transport::write_all(stream, bytes)
    }

    fn read<'a>(
        stream: &'a mut transport::Stream,
        buffer: &'a mut [u8],
    ) -> impl Future<Output = std::io::Result<usize>> + Send + 'a {
        transport::read(stream, buffer)
    }

    #[cfg(feature = "rustls")]
    fn connect_tls(
        stream: transport::Stream,
        name: rustls::pki_types::ServerName<'static>,
        config: std::sync::Arc<rustls::ClientConfig>,
    ) -> impl Future<Output = std::io::Result<transport::Stream>> + Send {
        transport::connect_tls(stream, name, config)
    }

    fn upgrade(
        request: Request,
        stream: transport::Stream,
        config: WebSocketConfig,
    ) -> impl Future<Output = Result<Self::WebSocket, tungstenite::Error>> + Send {
        transport::upgrade(request, stream, config)
    }
}

/// A Diffusion session on tokio (see [`diffusion_client::Session`]).
pub type Session = diffusion_client::Session<Tokio>;
/// Builds a [`Session`].
pub type SessionBuilder = diffusion_client::SessionBuilder<Tokio>;
/// Service calls and handlers of a [`Session`].
pub type Services<'a> = diffusion_client::Services<'a, Tokio>;
