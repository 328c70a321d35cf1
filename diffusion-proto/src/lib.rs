//! The Diffusion session protocol (versions 25 and 29) as pure data and state: no
//! sockets, no clock, no async. Runtime adapters feed it frames and instants and send what
//! it returns.
//!
//! - [`wire`], [`Message`]: the primitive encodings and the message codec;
//! - [`Credentials`], [`SessionProperties`]: what a session authenticates and identifies with;
//! - [`WebSocketUrl`], [`ConnectionParams`], [`ConnectionResponse`]: the handshake;
//! - [`ClientSession`], [`Server`]: the client and server state machines, driven the sans-IO way;
//! - topics and messaging (TOPICS.md): values ([`DecodeValue`], [`EncodeValue`], [`TopicValue`]),
//!   deltas ([`apply_delta`], [`produce_delta`]), [`Selector`], [`TopicSpecification`],
//!   [`UpdateConstraint`] and the service codecs ([`ServicePayload`], [`ServiceCall`]);
//!   a session's topics arrive as [`TopicEvent`]s about [`Topic`]s.
//!
//! Every type has one public path, at the crate root; [`wire`] is the one public module
//! (with `testing`, the in-memory simulation, under the feature of that name).
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(unreachable_pub)]

mod client;
mod credentials;
mod handshake;
mod message;
mod messaging;
mod outbound;
mod properties;
mod reconnect;
mod server;
mod state;
#[cfg(feature = "testing")]
pub mod testing;
mod timer;
mod topics;
mod transport;
pub mod wire;

/// What tests, fuzzing and diagnostics may look at inside a session; not a stable API.
#[doc(hidden)]
pub mod internal {
    pub use crate::client::{Attempt, Phase, Timer};
}

pub use client::{
    ClientConfig, ClientSession, ConnectRequest, Event, InboundRequestId, Output, PingDetails, Reply,
    RequestError, RequestId, SessionError, SessionStatus, StateChange,
};
pub use credentials::{Credentials, CredentialsError};
pub use handshake::{
    encode_component, ConnectionParams, ConnectionResponse, LastField, ParamError, ParameterCarrier,
    ParseSessionIdError, ProtocolVersion, RawParam, RawParams, ReconnectParams, ResponseClass, ResponseCode,
    ResponseError, ResponseFields, ResponseHeader, SessionGrant, SessionId, SessionToken, UrlError,
    WebSocketUrl, REDACTED,
};
pub use message::{type_code, ErrorReason, Message, MessageError, ServiceId};
pub use messaging::{
    DeregisterHandlerRequest, HandlerKey, HandlerRequest, MessagingValue, RegisterHandlerRequest,
    SendRequest, SendToSessionRequest,
};
pub use properties::{validate_key, PropertyError, SessionProperties, CLIENT_SETTABLE_FIXED};
pub use reconnect::{Backoff, FixedDelay, ReconnectAction, ReconnectConfig, ReconnectStrategy};
pub use server::{
    AcceptOutcome, AllowAll, Authenticator, ConnectionId, CounterEntropy, Entropy, Server, ServerCloseReason,
    ServerConfig, ServerEvent, ServerEventKind, ServerOutput, ServerStats, SessionInfo, SessionStats,
    SubscriptionInfo, TopicInfo, TopicSent, TopicTreeError, TopicTreeStats, UpgradeRequest, UserTable,
};
pub use state::{CloseReason, ClosedBy, SessionState};
pub use topics::{
    apply_delta, produce_delta, AddAndSetTopicRequest, AddTopicRequest, AddTopicResult, ConstraintOperator,
    ConstraintValueType, DataType, DecodeValue, DeltaError, EmptyPayload, EncodeValue, FetchRange,
    FetchRequest, FetchResponse, FetchResult, Json, NotifySubscription, NotifyUnsubscription,
    PartialJsonCondition, PayloadError, RemoveTopicsRequest, RemoveTopicsResponse, Selector, SelectorError,
    SelectorKind, ServiceCall, ServicePayload, SetTopicRequest, SubscribeRequest, Topic, TopicError,
    TopicEvent, TopicSize, TopicSpecification, TopicState, TopicStats, TopicType, TopicTypeSet, TopicValue,
    UnsubscribeReason, UnsubscribeRequest, UnsupportedConstraint, UpdateConstraint, ValueCondition,
    ValueError, FETCH_NO_LIMIT,
};
pub use transport::TransportError;
