//! The Diffusion session protocol (versions 25 and 29) as pure data and state: no
//! sockets, no clock, no async. Runtime adapters feed it frames and instants and send what
//! it returns.
//!
//! - [`wire`], [`message`]: the primitive encodings and the message codec;
//! - [`Credentials`], [`SessionProperties`]: what a session authenticates and identifies with;
//! - [`ConnectionParams`], [`ConnectionResponse`]: the handshake;
//! - [`ClientSession`], [`Server`]: the client and server state machines, driven the sans-IO way;
//! - topics and messaging (TOPICS.md): values ([`DecodeValue`], [`EncodeValue`], [`TopicValue`]),
//!   deltas ([`apply_delta`], [`produce_delta`]), [`Selector`], [`TopicSpecification`],
//!   [`UpdateConstraint`] and the service codecs ([`ServicePayload`], [`ServiceCall`]).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod client;
pub mod credentials;
pub mod message;
mod messaging;
pub mod properties;
pub mod reconnect;
pub mod request;
pub mod response;
pub mod server;
pub mod state;
mod topics;
pub mod wire;

pub use client::{
    ClientConfig, ClientSession, ConnectRequest, Event, InboundRequestId, Output, PingDetails, Reply,
    RequestError, RequestId, SessionError, StateChange,
};
pub use credentials::{Credentials, CredentialsError};
pub use message::{ErrorReason, Message, MessageError, ServiceId};
pub use messaging::{
    DeregisterHandlerRequest, HandlerKey, HandlerRequest, MessagingValue, RegisterHandlerRequest,
    SendRequest, SendToSessionRequest,
};
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
pub use topics::{
    apply_delta, produce_delta, AddAndSetTopicRequest, AddTopicRequest, AddTopicResult, ConstraintOperator,
    ConstraintValueType, DataType, DecodeValue, DeltaError, EmptyPayload, EncodeValue, FetchRange,
    FetchRequest, FetchResponse, FetchResult, Json, NotifySubscription, NotifyUnsubscription,
    PartialJsonCondition, PayloadError, RemoveTopicsRequest, RemoveTopicsResponse, Selector, SelectorError,
    SelectorKind, ServiceCall, ServicePayload, SetTopicRequest, SubscribeRequest, TopicSize,
    TopicSpecification, TopicState, TopicType, TopicTypeSet, TopicValue, UnsubscribeReason,
    UnsubscribeRequest, UnsupportedConstraint, UpdateConstraint, ValueCondition, ValueError, FETCH_NO_LIMIT,
};
