//! Diffusion sessions on async-std or smol.
//!
//! The same API as `diffusion_tokio` (both are [`diffusion_client`] on a runtime
//! adapter), built on futures-io: async-net sockets, async-io timers, async-tungstenite
//! and futures-rustls. The session's driver task is spawned on async-std (the default
//! feature) or on smol (feature `smol`); [`Session`] picks async-std when both are on,
//! and [`AsyncStd`] and [`Smol`] name each explicitly.
//!
//! async-std was discontinued in 2025 (RUSTSEC-2025-0052) and points its users to smol,
//! which shares its I/O stack: new code should prefer the `smol` feature.
//!
//! Through an HTTP proxy, add
//! [`.proxy("http://proxy:3128")`](diffusion_client::SessionBuilder::proxy), or
//! [`.proxy_from_env()`](diffusion_client::SessionBuilder::proxy_from_env) to follow
//! `HTTPS_PROXY`, `HTTP_PROXY` and `NO_PROXY`. Feature `rustls` (default): `wss://`, trusting
//! the webpki roots, or what the operating system trusts with feature `platform-verifier`.
//!
//! `examples/smol_session.rs` is a complete program on smol.
// The example needs smol: shown and tested with the feature (docs.rs has every feature).
#![cfg_attr(
    feature = "smol",
    doc = r#"
On smol, against the loopback test server, which stands in for yours (it is
`diffusion-test-server`, a dev-dependency of a test suite; [`ServerThread`] runs it on a
thread and tokio runtime of its own). With the `smol` feature alone, [`Session`] spawns its
driver on smol (with `async-std` on as well, on async-std; `diffusion_client::Session<Smol>`
names smol then):

```
use diffusion_async_std::{Session, SessionState};
use diffusion_test_server::{Options, ServerThread};

let server = ServerThread::start(Options::default().user("admin", "secret"))?;

smol::block_on(async {
    let session = Session::builder(&server.url()) // ws://127.0.0.1:PORT
        .principal("admin")
        .password("secret")
        .connect()
        .await?;
    let ping = session.ping_server().await?;
    println!("{} answered in {:?}", session.session_id().unwrap(), ping.round_trip);
    session.close().await;
    assert_eq!(session.state(), SessionState::ClosedByClient);
    Ok::<_, diffusion_async_std::Error>(())
})?;
# Ok::<(), Box<dyn std::error::Error>>(())
```

[`ServerThread`]: https://docs.rs/diffusion-test-server/latest/diffusion_test_server/struct.ServerThread.html
"#
)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

// Without a runtime feature (async-std or smol) there is no adapter, so no transport: the
// crate then only re-exports the API types.
#[cfg(any(feature = "async-std", feature = "smol"))]
mod transport;

use std::future::Future;
#[cfg(any(feature = "async-std", feature = "smol"))]
use std::net::SocketAddr;

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

/// Implements the runtime adapter for one executor's `spawn`; sockets and timers are the
/// same futures-io ones for both.
#[cfg(any(feature = "async-std", feature = "smol"))]
macro_rules! futures_io_runtime {
    ($(#[$doc:meta])* $name:ident, $spawn:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $name;

        impl diffusion_client::Runtime for $name {
            type WebSocket = transport::Ws;
            type Sleep = SleepUntil;

            fn spawn(task: impl Future<Output = ()> + Send + 'static) {
                ($spawn)(task);
            }

            fn sleep_until(deadline: std::time::Instant) -> SleepUntil {
                SleepUntil(async_io::Timer::at(deadline))
            }

            type Stream = transport::Stream;

            const TLS: bool = cfg!(feature = "rustls");
            const TLS_FEATURE: &'static str = "diffusion-async-std/rustls";

            fn resolve(host: String, port: u16) -> impl Future<Output = std::io::Result<Vec<SocketAddr>>> + Send {
                transport::resolve(host, port)
            }

            fn connect_tcp(addresses: Vec<SocketAddr>) -> impl Future<Output = std::io::Result<transport::Stream>> + Send {
                transport::connect_tcp(addresses)
            }

            fn write_all<'a>(stream: &'a mut transport::Stream, bytes: &'a [u8]) -> impl Future<Output = std::io::Result<()>> + Send + 'a {
                transport::write_all(stream, bytes)
            }

            fn read<'a>(stream: &'a mut transport::Stream, buffer: &'a mut [u8]) -> impl Future<Output = std::io::Result<usize>> + Send + 'a {
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
                request: async_tungstenite::tungstenite::handshake::client::Request,
                stream: transport::Stream,
                config: async_tungstenite::tungstenite::protocol::WebSocketConfig,
            ) -> impl Future<Output = Result<Self::WebSocket, async_tungstenite::tungstenite::Error>> + Send {
                transport::upgrade(request, stream, config)
            }
        }
    };
}

#[cfg(feature = "async-std")]
futures_io_runtime!(
    /// The async-std runtime adapter.
    AsyncStd,
    |task| {
        async_std::task::spawn(task);
    }
);

#[cfg(feature = "smol")]
futures_io_runtime!(
    /// The smol runtime adapter.
    Smol,
    |task| smol::spawn(task).detach()
);

/// An async-io timer as a `()` future.
#[derive(Debug)]
pub struct SleepUntil(async_io::Timer);

impl Future for SleepUntil {
    type Output = ();

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        std::pin::Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

/// The runtime [`Session`] uses: async-std with its feature, else smol.
#[cfg(feature = "async-std")]
pub type DefaultRuntime = AsyncStd;
/// The runtime [`Session`] uses: async-std with its feature, else smol.
#[cfg(all(feature = "smol", not(feature = "async-std")))]
pub type DefaultRuntime = Smol;

/// A Diffusion session on async-std (or smol without the `async-std` feature).
#[cfg(any(feature = "async-std", feature = "smol"))]
pub type Session = diffusion_client::Session<DefaultRuntime>;
/// Builds a [`Session`].
#[cfg(any(feature = "async-std", feature = "smol"))]
pub type SessionBuilder = diffusion_client::SessionBuilder<DefaultRuntime>;
/// Service calls and handlers of a [`Session`].
#[cfg(any(feature = "async-std", feature = "smol"))]
pub type Services<'a> = diffusion_client::Services<'a, DefaultRuntime>;
