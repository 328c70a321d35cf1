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
