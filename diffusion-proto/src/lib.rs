//! The Diffusion session protocol (versions 25 and 29) as pure data and state: no
//! sockets, no clock, no async. Runtime adapters feed it frames and instants and send what
//! it returns.
//!
//! - [`wire`], [`message`]: the primitive encodings and the message codec;
//! - [`Credentials`], [`SessionProperties`]: what a session authenticates and identifies with;
//! - [`ConnectionParams`], [`ConnectionResponse`]: the handshake;
//! - [`ClientSession`], [`Server`]: the client and server state machines, driven the sans-IO way.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod client;
pub mod credentials;
pub mod message;
pub mod properties;
pub mod reconnect;
pub mod request;
pub mod response;
pub mod server;
pub mod state;
pub mod wire;

pub use client::{
    ClientConfig, ClientSession, ConnectRequest, Event, InboundRequestId, Output, PingDetails, Reply,
    RequestError, RequestId, SessionError, StateChange,
};
pub use credentials::{Credentials, CredentialsError};
pub use message::{ErrorReason, Message, MessageError, ServiceId};
pub use properties::{PropertyError, SessionProperties};
pub use reconnect::{Backoff, FixedDelay, ReconnectAction, ReconnectConfig, ReconnectStrategy};
pub use request::{ConnectionParams, ParamError, ParameterCarrier, ReconnectParams, UrlError, WebSocketUrl};
pub use response::{
    ConnectionResponse, ProtocolVersion, ResponseClass, ResponseCode, ResponseError, SessionGrant, SessionId,
    SessionToken,
};
pub use server::{
    AcceptOutcome, AllowAll, Authenticator, ConnectionId, CounterEntropy, Entropy, Server, ServerCloseReason,
    ServerConfig, ServerEvent, ServerOutput, SessionInfo, SessionStats, UpgradeRequest, UserTable,
};
pub use state::{CloseReason, ClosedBy, SessionState};
