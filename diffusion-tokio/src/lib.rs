//! Diffusion sessions on tokio.
//!
//! A [`Session`] opens a Diffusion session over a WebSocket (tokio-tungstenite, with
//! rustls for `wss://`), answers the server's system pings, pings the server, reconnects
//! to the same session after a lost connection and closes cleanly. The protocol itself
//! lives in [`diffusion_proto`]; this crate moves its bytes and time.
//!
//! ```no_run
//! # async fn demo() -> Result<(), diffusion_tokio::Error> {
//! use diffusion_tokio::Session;
//!
//! let session = Session::builder("ws://127.0.0.1:8080").principal("admin").password("secret").connect().await?;
//! println!("session {} is {}", session.session_id().unwrap(), session.state());
//! let ping = session.ping_server().await?;
//! println!("round trip {:?}", ping.round_trip);
//! session.close().await;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod data;
mod driver;
mod error;
mod session;
mod transport;

pub use data::SessionData;
pub use error::Error;
pub use session::{Handler, Services, Session, SessionBuilder};

pub use diffusion_proto::{
    Backoff, CloseReason, ClosedBy, Credentials, ErrorReason, FixedDelay, PingDetails, ProtocolVersion,
    ReconnectAction, ReconnectConfig, ReconnectStrategy, Reply, RequestError, ResponseCode, ServiceId,
    SessionError, SessionId, SessionProperties, SessionState, StateChange,
};
