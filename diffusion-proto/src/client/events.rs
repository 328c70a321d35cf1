//! What a client session tells its adapter and application: outputs to carry out,
//! events, request outcomes and the errors of refused commands.

use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::handshake::{ProtocolVersion, ResponseCode, SessionId};
use crate::message::{ErrorReason, ServiceId};
use crate::state::{CloseReason, SessionState};
use crate::topics::{PayloadError, ServiceCall, ServicePayload, TopicEvent};

use super::config::ConnectRequest;
#[cfg(doc)]
use super::ClientSession;

/// Identifies one of this client's requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub i64);

/// Identifies a request from the server, to answer with [`ClientSession::respond`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InboundRequestId(pub i64);

/// A successful response to one of this client's requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The response payload.
    pub payload: Bytes,
    /// From sending the request to receiving the response.
    pub round_trip: Duration,
    /// Wall-clock time the request was sent.
    pub sent_at: SystemTime,
    /// The session's protocol version, which the payload's layout depends on.
    pub version: ProtocolVersion,
}

impl Reply {
    /// The payload read as the response of the request `C` that
    /// [`ClientSession::call`] sent, in the session's protocol version. Needs nothing but
    /// the reply, so it can run wherever the reply is delivered.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use bytes::Bytes;
    /// use diffusion_proto::{AddTopicRequest, AddTopicResult, ProtocolVersion, Reply};
    ///
    /// let reply = Reply {
    ///     payload: Bytes::from_static(&[0x01]),
    ///     round_trip: Duration::from_millis(3),
    ///     sent_at: SystemTime::UNIX_EPOCH,
    ///     version: ProtocolVersion::V25,
    /// };
    /// assert_eq!(reply.response::<AddTopicRequest>()?, AddTopicResult::Exists);
    /// # Ok::<(), diffusion_proto::PayloadError>(())
    /// ```
    pub fn response<C: ServiceCall>(&self) -> Result<C::Response, PayloadError> {
        C::Response::decode(&self.payload, self.version)
    }
}

/// Why one of this client's requests failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The server answered with SERVICE_ERROR.
    #[error("the server failed the request: {description} ({reason})")]
    Service {
        /// The server's description.
        description: String,
        /// The server's reason code.
        reason: ErrorReason,
    },
    /// No response within the request timeout.
    #[error("no response within {0:?}")]
    TimedOut(Duration),
    /// The server resumed the session without some messages (106, or a new session),
    /// so this request's fate is unknown; it may be retried.
    #[error("the session was resumed with message loss; the request may not have reached the server")]
    MessageLoss,
    /// The session ended first.
    #[error("the session closed before a response: {0}")]
    SessionClosed(CloseReason),
}

/// Why a command was refused at once (nothing was sent).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The session is not yet connected.
    #[error("the session is not connected yet; wait for CONNECTED_ACTIVE")]
    NotConnected,
    /// The session is closed; the reason says who closed it and why.
    #[error("the session is closed: {0}")]
    Closed(CloseReason),
    /// The application closed the session, which waits for the server to end it.
    #[error("the session is closing")]
    Closing,
    /// The message exceeds the server's maximum message size.
    #[error("message of {size} bytes exceeds the server's maximum message size of {limit} bytes; nothing was sent")]
    MessageTooLarge {
        /// Encoded size of the message.
        size: usize,
        /// The server's limit.
        limit: usize,
    },
    /// Disconnected, and the recovery buffer is full: sending more would lose messages.
    #[error(
        "disconnected and {0} messages are already waiting for the reconnection; retry once reconnected"
    )]
    RecoveryBufferFull(usize),
    /// The request cannot be written in the session's protocol version (e.g. a
    /// subscription scope, or a disjunction constraint, in protocol 25).
    #[error("the {service} request cannot be sent: {source}")]
    Encode {
        /// The service of the request.
        service: ServiceId,
        /// Why.
        #[source]
        source: PayloadError,
    },
}

/// One change of [`SessionState`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    /// Before.
    pub old: SessionState,
    /// After.
    pub new: SessionState,
    /// Why, for a closed state.
    pub reason: Option<CloseReason>,
}

/// The outcome of a user ping: the round trip and when the ping was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PingDetails {
    /// From sending the ping to its response.
    pub round_trip: Duration,
    /// Wall-clock time the ping was sent (the official clients' `timestamp`).
    pub sent_at: SystemTime,
}

impl From<&Reply> for PingDetails {
    fn from(reply: &Reply) -> Self {
        PingDetails {
            round_trip: reply.round_trip,
            sent_at: reply.sent_at,
        }
    }
}

/// What a session knows about itself, read at once ([`ClientSession::status`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionStatus {
    /// The current state.
    pub state: SessionState,
    /// The session id, once granted.
    pub session_id: Option<SessionId>,
    /// The code of the latest accepted connection response: 100, 105 or 106.
    pub response_code: Option<ResponseCode>,
    /// The server's system ping period.
    pub ping_period: Option<Duration>,
    /// The largest message the server accepts from this client.
    pub max_message_size: Option<u32>,
    /// Why the session closed, once closed.
    pub close_reason: Option<CloseReason>,
    /// SYSTEM_PINGs answered so far.
    pub system_pings_answered: u64,
}

impl Default for SessionStatus {
    /// A session that has not connected yet.
    fn default() -> Self {
        SessionStatus {
            state: SessionState::Connecting,
            session_id: None,
            response_code: None,
            ping_period: None,
            max_message_size: None,
            close_reason: None,
            system_pings_answered: 0,
        }
    }
}

/// What the application learns from the session.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The state changed; closed states carry their reason.
    StateChanged(StateChange),
    /// A connection response opened or resumed the session, right after the state change
    /// to CONNECTED_ACTIVE; what the change does not say: the response code and how many
    /// messages were sent again.
    Connected {
        /// The session.
        session_id: SessionId,
        /// 100, 105 or 106.
        code: ResponseCode,
        /// How many buffered messages were sent again (105).
        resent: usize,
    },
    /// One of this client's requests completed.
    Response {
        /// Which.
        id: RequestId,
        /// The outcome.
        result: Result<Reply, RequestError>,
    },
    /// The server asks a registered service of this client; answer with
    /// [`ClientSession::respond`] (a cid of 0 is one-way and needs no answer).
    InboundRequest {
        /// To answer with.
        id: InboundRequestId,
        /// Which service.
        service: ServiceId,
        /// The request payload.
        payload: Bytes,
    },
    /// A SYSTEM_PING from the server was answered.
    SystemPingAnswered,
    /// Something happened to one of the session's topics: subscribed, a new value,
    /// unsubscribed, or an error on that topic (which never closes the session).
    Topic(TopicEvent),
}

/// What the adapter must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Output {
    /// Close any current transport and open this one.
    Connect(ConnectRequest),
    /// Send this frame as one binary WebSocket message.
    Transmit(Bytes),
    /// Close the current transport (WebSocket close 1000, or drop it).
    CloseTransport,
    /// Deliver this to the application.
    Event(Event),
}
