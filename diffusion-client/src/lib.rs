//! The Session API of diffusion-rs, written once for every runtime: the handle, its
//! builder, the per-session store, the error type and the driver loop, generic over a
//! [`Runtime`] that spawns, sleeps and opens connections.
//!
//! Applications use it through an adapter: `diffusion_tokio::Session` or
//! `diffusion_async_std::Session` (async-std or smol); switching runtime is a change of
//! one `use` line.
//!
//! Inside, `session` (the handles) and `driver` (the task that owns the socket and the
//! protocol core) share only what `shared` defines; streams handed to users are named,
//! `Unpin` types (`changes`); `runtime` opens connections (through an HTTP proxy, `proxy`,
//! when there is one).
//!
//! # An adapter
//!
//! An adapter implements [`Runtime`] for its executor and sockets; the session, its driver,
//! reconnection, proxies and TLS are this crate's. This one, on tokio and
//! tokio-tungstenite, is complete but for TLS, and runs against the loopback test server
//! (`diffusion-test-server`):
//!
//! ```
//! use std::{future::Future, io, net::SocketAddr, time::Instant};
//!
//! use tokio_tungstenite::tungstenite::{self, handshake::client::Request, protocol::WebSocketConfig};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! use tokio::net::TcpStream;
//! use tokio_tungstenite::WebSocketStream;
//!
//! struct OnTokio;
//!
//! impl diffusion_client::Runtime for OnTokio {
//!     type WebSocket = WebSocketStream<TcpStream>;
//!     type Sleep = tokio::time::Sleep;
//!     type Stream = TcpStream;
//!     const TLS_FEATURE: &'static str = "my-adapter/tls";
//!
//!     fn spawn(task: impl Future<Output = ()> + Send + 'static) {
//!         tokio::spawn(task);
//!     }
//!
//!     fn sleep_until(deadline: Instant) -> Self::Sleep {
//!         tokio::time::sleep_until(deadline.into())
//!     }
//!
//!     async fn resolve(host: String, port: u16) -> io::Result<Vec<SocketAddr>> {
//!         Ok(tokio::net::lookup_host((host, port)).await?.collect())
//!     }
//!
//!     async fn connect_tcp(addresses: Vec<SocketAddr>) -> io::Result<TcpStream> {
//!         let tcp = TcpStream::connect(addresses.as_slice()).await?;
//!         tcp.set_nodelay(true)?;
//!         Ok(tcp)
//!     }
//!
//!     async fn write_all(stream: &mut TcpStream, bytes: &[u8]) -> io::Result<()> {
//!         stream.write_all(bytes).await
//!     }
//!
//!     async fn read(stream: &mut TcpStream, buffer: &mut [u8]) -> io::Result<usize> {
//!         stream.read(buffer).await
//!     }
//!
//!     async fn upgrade(
//!         request: Request,
//!         stream: TcpStream,
//!         config: WebSocketConfig,
//!     ) -> Result<Self::WebSocket, tungstenite::Error> {
//!         let (ws, _response) =
//!             tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await?;
//!         Ok(ws)
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = diffusion_test_server::TestServer::start(Default::default()).await?;
//! let session = diffusion_client::Session::<OnTokio>::builder(&server.url())
//!     .connect()
//!     .await?;
//! let ping = session.ping_server().await?;
//! println!("round trip {:?}", ping.round_trip);
//! session.close().await;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(unreachable_pub)]

mod changes;
mod data;
mod driver;
mod error;
mod proxy;
mod runtime;
mod session;
mod shared;

pub use changes::{Lagged, StateChanges};
pub use data::SessionData;
pub use error::{ConfigError, Error};
pub use proxy::ProxyUrlError;
#[cfg(feature = "rustls")]
pub use runtime::default_tls;
pub use runtime::{upgrade_request, websocket_config, Runtime, Tls};
pub use session::{Services, Session, SessionBuilder};
pub use shared::Handler;

pub use diffusion_proto::{
    Backoff, ClientConfig, CloseReason, ClosedBy, Credentials, ErrorReason, FixedDelay, PingDetails,
    ProtocolVersion, ReconnectAction, ReconnectConfig, ReconnectStrategy, Reply, RequestError, ResponseCode,
    ServiceId, SessionError, SessionId, SessionProperties, SessionState, StateChange, TransportError,
    UrlError,
};
