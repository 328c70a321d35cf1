//! What the server hands back: [`AcceptOutcome`], the [`ServerOutput`]s the adapter carries
//! out, the [`ServerEvent`]s for tests and logs, and [`ServerCloseReason`].

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::ConnectionId;
#[cfg(doc)]
use super::Server;
use super::TopicSent;
use crate::handshake::ParameterCarrier;
use crate::handshake::{ProtocolVersion, ResponseCode, SessionId};
use crate::message::{ErrorReason, Message, ServiceId};
use crate::properties::SessionProperties;
use crate::topics::{TopicType, UnsubscribeReason};

/// What [`Server::accept`] decided (the connection response itself is queued as output).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptOutcome {
    /// A session was opened (100) or resumed (105, 106) on this connection.
    Accepted {
        /// The session; its text form is what real servers put in `Set-Cookie: session=`.
        session_id: SessionId,
        /// 100, 105 or 106.
        code: ResponseCode,
        /// The connection the session was taken over from (already told to close).
        replaced: Option<ConnectionId>,
    },
    /// The 3-byte rejection was queued, followed by [`ServerOutput::CloseTransport`].
    Rejected {
        /// The response code sent.
        code: ResponseCode,
    },
}

/// What the adapter must do, in order.
///
/// `Debug` shows frames in hex (the first 64 bytes), with the session token of a
/// connection response redacted.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerOutput {
    /// Send `frame` as one binary WebSocket message on `conn`.
    Transmit {
        /// Where.
        conn: ConnectionId,
        /// The whole message.
        frame: Bytes,
    },
    /// Flush what was queued for `conn`, then drop its TCP connection **without** a
    /// WebSocket close frame, as the real server does (SPEC §3.4, §8). The server has
    /// forgotten `conn`: later frames or closure reports for it are ignored.
    CloseTransport {
        /// Which.
        conn: ConnectionId,
    },
    /// Something a test or a log wants to know.
    Event(ServerEvent),
}

impl fmt::Debug for ServerOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerOutput::Transmit { conn, frame } => f
                .debug_struct("Transmit")
                .field("conn", conn)
                .field("frame", &format_args!("{}", FrameHex(frame)))
                .finish(),
            ServerOutput::CloseTransport { conn } => {
                f.debug_struct("CloseTransport").field("conn", conn).finish()
            }
            ServerOutput::Event(event) => f.debug_tuple("Event").field(event).finish(),
        }
    }
}

/// A frame in hex for `Debug`: no message type we send starts with `#`, so a frame that does
/// is a connection response, whose bytes 19..43 are the token.
struct FrameHex<'a>(&'a [u8]);

impl fmt::Display for FrameHex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 64;
        const TOKEN: std::ops::Range<usize> = 19..43;
        let is_response = self.0.first() == Some(&crate::ConnectionResponse::PROTOCOL_BYTE);
        for (i, b) in self.0.iter().take(SHOWN).enumerate() {
            if is_response && TOKEN.contains(&i) {
                if i == TOKEN.start {
                    f.write_str("<token>")?;
                }
                continue;
            }
            write!(f, "{b:02x}")?;
        }
        if self.0.len() > SHOWN {
            write!(f, "… ({} bytes)", self.0.len())?;
        }
        Ok(())
    }
}

/// What happened, for tests and logs: where (the connection, the session) and what. Never
/// carries a token, password or credentials.
///
/// With the `serde` feature it serializes as the session fields and its [`ServerEventKind`]
/// flattened: `{"session_id": "…", "kind": "connected", …}` (the connection is left to
/// whoever logs it), durations as whole `_ms` or `_us`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct ServerEvent {
    /// The connection it happened on, `None` for a detached session.
    #[cfg_attr(feature = "serde", serde(skip))]
    pub conn: Option<ConnectionId>,
    /// The session, `None` for a connection refused before it had one.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub session_id: Option<SessionId>,
    /// What happened.
    #[cfg_attr(feature = "serde", serde(flatten))]
    pub kind: ServerEventKind,
}

/// The kinds of [`ServerEvent`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(tag = "kind", rename_all = "snake_case"))]
#[non_exhaustive]
pub enum ServerEventKind {
    /// A new session was opened (response 100).
    Connected {
        /// `username`, `None` when anonymous.
        principal: Option<String>,
        /// `sp`, as proposed.
        #[cfg_attr(feature = "serde", serde(serialize_with = "ser::properties"))]
        properties: SessionProperties,
        /// The version requested and answered.
        #[cfg_attr(feature = "serde", serde(serialize_with = "ser::version"))]
        version: ProtocolVersion,
        /// Where `v` was found: the query or the headers.
        carrier: ParameterCarrier,
        /// `ty`.
        client_type: String,
        /// `ca`.
        capabilities: u8,
        /// `r`: how long the session is kept after its connection is lost.
        #[cfg_attr(
            feature = "serde",
            serde(rename = "reconnect_timeout_ms", serialize_with = "ser::ms")
        )]
        reconnect_timeout: Duration,
    },
    /// A connection request was refused with a 3-byte response.
    Rejected {
        /// The code sent.
        #[cfg_attr(feature = "serde", serde(serialize_with = "ser::code"))]
        code: ResponseCode,
        /// Why, for logs.
        reason: String,
    },
    /// A session was resumed on a new connection (105 or 106).
    Reconnected {
        /// 105, or 106 when the messages the client missed were no longer buffered.
        #[cfg_attr(feature = "serde", serde(serialize_with = "ser::code"))]
        code: ResponseCode,
        /// How many buffered messages were sent again after the response.
        resent: usize,
        /// The connection the session was taken over from, if it was still attached.
        #[cfg_attr(feature = "serde", serde(rename = "replaced_conn"))]
        replaced: Option<ConnectionId>,
    },
    /// A client message the server does not handle itself: topic messages, stray answers,
    /// messages of the wrong direction, one-way requests of known services.
    MessageReceived {
        /// The message.
        #[cfg_attr(feature = "serde", serde(skip))]
        message: Message,
    },
    /// A request to a service registered with [`Server::register_service`]: answer it with
    /// [`Server::send`] (`ServiceResponse` or `ServiceError` with the same cid) unless the
    /// cid is 0.
    ServiceRequest {
        /// Which service.
        service: ServiceId,
        /// The client's conversation id.
        cid: i64,
        /// The request payload.
        #[cfg_attr(feature = "serde", serde(skip))]
        payload: Bytes,
    },
    /// A request to a service the server does not provide; it was answered with
    /// SERVICE_ERROR reason 100 "Unknown service: N" (unless its cid was 0).
    UnknownService {
        /// Which service.
        service: ServiceId,
        /// The client's conversation id.
        cid: i64,
    },
    /// The client answered a SYSTEM_PING.
    SystemPingAnswered {
        /// The ping's conversation id.
        cid: i64,
        /// From sending the ping to receiving the answer.
        #[cfg_attr(feature = "serde", serde(rename = "rtt_us", serialize_with = "ser::us"))]
        rtt: Duration,
    },
    /// The client answered a request sent with [`Server::send_request`] (or answered a
    /// SYSTEM_PING with a SERVICE_ERROR).
    ResponseReceived {
        /// The request's conversation id.
        cid: i64,
        /// The service requested.
        service: ServiceId,
        /// From sending the request to receiving the answer.
        #[cfg_attr(feature = "serde", serde(rename = "rtt_us", serialize_with = "ser::us"))]
        rtt: Duration,
        /// The `ServiceResponse` or `ServiceError` (shown as `error`: true for the latter).
        #[cfg_attr(feature = "serde", serde(rename = "error", serialize_with = "ser::is_error"))]
        response: Message,
    },
    /// CHANGE_PRINCIPAL or RE_AUTHENTICATE succeeded.
    PrincipalChanged {
        /// The new principal, `None` for anonymous.
        principal: Option<String>,
    },
    /// The client sent CLOSE_REQUEST; ABORT and a transport close follow.
    CloseRequested,
    /// The session lost its connection (the event's `conn`) and waits for a reconnection.
    Detached {
        /// When the session is discarded without a reconnection (`None`: never, `r`
        /// overflowed). Shown as `kept`: whether there is such a time.
        #[cfg_attr(feature = "serde", serde(rename = "kept", serialize_with = "ser::is_some"))]
        expires: Option<Instant>,
    },
    /// The client broke the protocol; the session is closed (ABORT, then transport close).
    ProtocolError {
        /// What was wrong.
        error: String,
    },
    /// The session is gone (with its connection, the event's `conn`, if it was attached);
    /// a reconnection to it gets 117.
    SessionClosed {
        /// Why: shown as `reason` (words) and `reason_kind` (its name).
        #[cfg_attr(feature = "serde", serde(flatten))]
        reason: ServerCloseReason,
    },
    /// SUBSCRIBE: the session holds the selector in the scope (notifications follow as
    /// [`ServerEventKind::TopicSubscribed`]).
    Subscribe {
        /// The selector as sent.
        selector: String,
        /// The scope (protocol 29), `""` for the default.
        scope: String,
    },
    /// UNSUBSCRIBE: the session no longer holds the selector in the scope.
    Unsubscribe {
        /// The selector as sent.
        selector: String,
        /// The scope.
        scope: String,
    },
    /// The session was notified of a topic (NOTIFY_SUBSCRIPTION, then its value): after a
    /// SUBSCRIBE, when a topic it selects is added, or again after a 106.
    TopicSubscribed {
        /// The topic id.
        topic_id: i32,
        /// The path.
        #[cfg_attr(feature = "serde", serde(serialize_with = "ser::text"))]
        path: Arc<str>,
    },
    /// The session was told it no longer holds a topic (NOTIFY_UNSUBSCRIPTION).
    TopicUnsubscribed {
        /// The topic id.
        topic_id: i32,
        /// The path.
        #[cfg_attr(feature = "serde", serde(serialize_with = "ser::text"))]
        path: Arc<str>,
        /// Why: `requested` or `removal`.
        #[cfg_attr(feature = "serde", serde(serialize_with = "ser::unsubscribe_reason"))]
        reason: UnsubscribeReason,
    },
    /// A topic was created (by the event's session, or through [`Server::add_topic`] when it
    /// has none).
    TopicAdded {
        /// The new topic's id.
        topic_id: i32,
        /// The path.
        #[cfg_attr(feature = "serde", serde(serialize_with = "ser::text"))]
        path: Arc<str>,
        /// The type, shown by name (`JSON`, `STRING`, …).
        #[cfg_attr(feature = "serde", serde(serialize_with = "ser::topic_type"))]
        topic_type: TopicType,
    },
    /// A topic's value was set, and how the subscribers got it.
    TopicSet {
        /// The topic id.
        topic_id: i32,
        /// The path.
        #[cfg_attr(feature = "serde", serde(serialize_with = "ser::text"))]
        path: Arc<str>,
        /// `value`, `delta`, or `nothing` (unchanged, or no subscriber).
        sent: TopicSent,
        /// The new value's length in bytes.
        value_size: usize,
        /// The delta's length in bytes, when one was sent.
        delta_size: Option<usize>,
        /// How many sessions subscribe.
        subscribers: usize,
    },
    /// A topic was removed; its subscribers got [`ServerEventKind::TopicUnsubscribed`].
    TopicRemoved {
        /// The topic id (never given again).
        topic_id: i32,
        /// The path.
        #[cfg_attr(feature = "serde", serde(serialize_with = "ser::text"))]
        path: Arc<str>,
    },
    /// FETCH_QUERY was answered.
    Fetch {
        /// The selector as sent.
        selector: String,
        /// How many topics the answer holds.
        results: usize,
        /// Whether more matched than were returned.
        has_more: bool,
    },
    /// A topic request was refused with SERVICE_ERROR (sent unless its cid was 0).
    TopicRequestFailed {
        /// Which service.
        service: ServiceId,
        /// The reason sent, e.g. 9012.
        #[cfg_attr(feature = "serde", serde(serialize_with = "ser::error_reason"))]
        reason: ErrorReason,
        /// The description sent.
        error: String,
    },
}

impl ServerEventKind {
    /// The kind's name, as `serde` writes it: `connected`, `system_ping_answered`, …
    pub fn name(&self) -> &'static str {
        match self {
            ServerEventKind::Connected { .. } => "connected",
            ServerEventKind::Rejected { .. } => "rejected",
            ServerEventKind::Reconnected { .. } => "reconnected",
            ServerEventKind::MessageReceived { .. } => "message_received",
            ServerEventKind::ServiceRequest { .. } => "service_request",
            ServerEventKind::UnknownService { .. } => "unknown_service",
            ServerEventKind::SystemPingAnswered { .. } => "system_ping_answered",
            ServerEventKind::ResponseReceived { .. } => "response_received",
            ServerEventKind::PrincipalChanged { .. } => "principal_changed",
            ServerEventKind::CloseRequested => "close_requested",
            ServerEventKind::Detached { .. } => "detached",
            ServerEventKind::ProtocolError { .. } => "protocol_error",
            ServerEventKind::SessionClosed { .. } => "session_closed",
            ServerEventKind::Subscribe { .. } => "subscribe",
            ServerEventKind::Unsubscribe { .. } => "unsubscribe",
            ServerEventKind::TopicSubscribed { .. } => "topic_subscribed",
            ServerEventKind::TopicUnsubscribed { .. } => "topic_unsubscribed",
            ServerEventKind::TopicAdded { .. } => "topic_added",
            ServerEventKind::TopicSet { .. } => "topic_set",
            ServerEventKind::TopicRemoved { .. } => "topic_removed",
            ServerEventKind::Fetch { .. } => "fetch",
            ServerEventKind::TopicRequestFailed { .. } => "topic_request_failed",
        }
    }
}

/// Why the server closed a session.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerCloseReason {
    /// The client sent CLOSE_REQUEST.
    ClientRequested,
    /// Too many SYSTEM_PINGs in a row went unanswered.
    ClientUnresponsive,
    /// A client message was longer than the maximum message size.
    MessageTooLarge {
        /// Its length.
        size: usize,
        /// The limit.
        limit: u32,
    },
    /// A client frame could not be decoded.
    ProtocolError(String),
    /// The connection was lost and the client's `r` was 0.
    ConnectionLost,
    /// The connection was lost and no reconnection came within `r`.
    ReconnectTimeout,
    /// A reconnection was refused with 118: the client no longer held messages we lacked.
    ReconnectionFailed,
    /// [`Server::abort`].
    Aborted,
    /// [`Server::forget_session`].
    Forgotten,
}

impl ServerCloseReason {
    /// The reason's name: `client_requested`, `client_unresponsive`, `message_too_large`,
    /// `protocol_error`, `connection_lost`, `reconnect_timeout`, `reconnection_failed`,
    /// `aborted` or `forgotten`.
    pub fn name(&self) -> &'static str {
        match self {
            ServerCloseReason::ClientRequested => "client_requested",
            ServerCloseReason::ClientUnresponsive => "client_unresponsive",
            ServerCloseReason::MessageTooLarge { .. } => "message_too_large",
            ServerCloseReason::ProtocolError(_) => "protocol_error",
            ServerCloseReason::ConnectionLost => "connection_lost",
            ServerCloseReason::ReconnectTimeout => "reconnect_timeout",
            ServerCloseReason::ReconnectionFailed => "reconnection_failed",
            ServerCloseReason::Aborted => "aborted",
            ServerCloseReason::Forgotten => "forgotten",
        }
    }
}

/// `{"reason": <the words>, "reason_kind": <the name>}`.
#[cfg(feature = "serde")]
impl serde::Serialize for ServerCloseReason {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("reason", &self.to_string())?;
        map.serialize_entry("reason_kind", self.name())?;
        map.end()
    }
}

impl fmt::Display for ServerCloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerCloseReason::ClientRequested => f.write_str("closed at the client's request"),
            ServerCloseReason::ClientUnresponsive => {
                f.write_str("client unresponsive: system pings went unanswered")
            }
            ServerCloseReason::MessageTooLarge { size, limit } => {
                write!(f, "message too large: {size} bytes, the limit is {limit}")
            }
            ServerCloseReason::ProtocolError(e) => write!(f, "protocol error: {e}"),
            ServerCloseReason::ConnectionLost => {
                f.write_str("connection lost and the client asked for no reconnection (r=0)")
            }
            ServerCloseReason::ReconnectTimeout => {
                f.write_str("connection lost and no reconnection within the client's timeout")
            }
            ServerCloseReason::ReconnectionFailed => {
                f.write_str("reconnection refused: messages were lost (118)")
            }
            ServerCloseReason::Aborted => f.write_str("aborted by the server"),
            ServerCloseReason::Forgotten => f.write_str("forgotten by the server"),
        }
    }
}

/// How the `serde` feature writes the fields of a [`ServerEvent`].
#[cfg(feature = "serde")]
mod ser {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use serde::Serializer;

    use crate::handshake::{ProtocolVersion, ResponseCode};
    use crate::message::{ErrorReason, Message};
    use crate::properties::SessionProperties;
    use crate::topics::{TopicType, UnsubscribeReason};

    pub(super) fn properties<S: Serializer>(p: &SessionProperties, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(p.iter())
    }

    pub(super) fn version<S: Serializer>(v: &ProtocolVersion, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(v.number())
    }

    pub(super) fn code<S: Serializer>(c: &ResponseCode, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(c.code())
    }

    pub(super) fn ms<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn us<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    }

    pub(super) fn is_error<S: Serializer>(m: &Message, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bool(matches!(m, Message::ServiceError { .. }))
    }

    pub(super) fn is_some<S: Serializer>(at: &Option<Instant>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bool(at.is_some())
    }

    pub(super) fn text<S: Serializer>(t: &Arc<str>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(t)
    }

    pub(super) fn unsubscribe_reason<S: Serializer>(r: &UnsubscribeReason, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(r.name())
    }

    pub(super) fn topic_type<S: Serializer>(t: &TopicType, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(t.name())
    }

    pub(super) fn error_reason<S: Serializer>(r: &ErrorReason, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i32(r.0)
    }
}
