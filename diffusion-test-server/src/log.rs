//! What a test server saw and did, as typed entries for tests and as JSON lines for
//! scripts (`serde`); and its counters. No entry ever holds a password, credentials or a token.
//!
//! # The JSON schema
//!
//! One object per line, `{"event": <kind>, …, "t_ms": <ms since start>, "conn": <n>}`
//! (`conn` when the entry concerns a connection, numbered 1, 2, 3, … in accept order):
//!
//! | `event` | fields |
//! |---|---|
//! | `listening` | `port`, `url` |
//! | `upgrade` | `path`, `query` (secrets redacted), `params` (name → raw value, secrets redacted), `header_names`, `carrier` (`query`/`headers`), `version`, `client_type`, `principal`, `credentials` (`none`/`password`/`custom`), `properties`, `reconnect`, `parse_error` (when the parameters could not be read) |
//! | `response` | `code`, `code_name`, `len`, `session_id`, `fault` (the fault that made it, if one did) |
//! | `message` | `dir` (`in`/`out`), `type`, `type_code`, `service`, `service_name`, `cid`, `len`, `text` (true for a text frame) |
//! | `session` | the protocol server's event: `session_id` and `kind` (`connected`, `rejected`, `reconnected`, `system_ping_answered`, `session_closed`, …; for topics `subscribe`, `unsubscribe`, `topic_subscribed`, `topic_unsubscribed`, `topic_added`, `topic_set`, `topic_removed`, `fetch`, `topic_request_failed`) with its fields (see `diffusion_proto::ServerEventKind`); topics added with `--topic` are logged right after `listening`, without `session_id` |
//! | `fault` | `fault` (`dropped`, `stalled`, `silent`) and its fields: `how` (`fin`/`rst`), `after_messages` |
//! | `close` | `by` (`client`/`server`), `reason`, `close_code` (of a WebSocket close frame) |
//! | `error` | `message` |

use std::time::Duration;

use diffusion_proto::{type_code, Message, ResponseCode, ResponseFields, ServerEvent, ServiceId, SessionId};
use serde::{Serialize, Serializer};

use crate::options::DropKind;
use crate::upgrade::UpgradeLog;

/// One thing the server saw or did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogEntry {
    /// What happened.
    #[serde(flatten)]
    pub kind: LogKind,
    /// Time since the server started.
    #[serde(rename = "t_ms", serialize_with = "ms")]
    pub at: Duration,
    /// The connection (numbered 1, 2, 3, … in accept order), when it concerns one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conn: Option<u64>,
}

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// From the client.
    In,
    /// To the client.
    Out,
}

/// Which side ended a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The client closed, reset or stopped the connection.
    Client,
    /// The server closed it (after a rejection, an ABORT, a fault or a takeover).
    Server,
}

/// What a [`crate::Fault`] did to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "fault", rename_all = "snake_case")]
pub enum FaultAction {
    /// The connection was dropped ([`crate::Fault::DropAfter`]); nothing more was sent.
    Dropped {
        /// FIN or RST.
        how: DropKind,
        /// Client messages the connection had carried.
        after_messages: u32,
    },
    /// The connection went silent ([`crate::Fault::Stall`]).
    Stalled {
        /// Client messages it had carried.
        after_messages: u32,
    },
    /// No connection response was sent at all ([`crate::Fault::NoResponse`]).
    Silent,
}

/// The kinds of [`LogEntry`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum LogKind {
    /// The server is listening.
    Listening {
        /// The bound port.
        port: u16,
        /// `ws://127.0.0.1:PORT` or `wss://…`.
        url: String,
    },
    /// A WebSocket upgrade request completed.
    Upgrade(UpgradeLog),
    /// The connection response sent (the first frame of a connection).
    Response {
        /// Byte 2, the response code (whatever a fault made of it; 0 when shorter).
        code: u8,
        /// The code's name, when it is a known code.
        code_name: Option<&'static str>,
        /// Its length in bytes.
        len: usize,
        /// The session id in bytes 3..19, when the frame holds one.
        session_id: Option<SessionId>,
        /// The fault that made or replaced it (`reject-all`, `reconnect-answer`, a
        /// [`crate::Malformed`] name), `None` for the protocol server's own answer.
        #[serde(skip_serializing_if = "Option::is_none")]
        fault: Option<String>,
    },
    /// A message received from or sent to the client, decoded.
    Message {
        /// Which way.
        dir: Direction,
        /// The type's name (`UNKNOWN` for a type code that is none); `None` for an empty frame.
        #[serde(rename = "type")]
        type_name: Option<&'static str>,
        /// The type code (low 6 bits of the type byte); `None` for an empty frame.
        type_code: Option<u8>,
        /// The service of a SERVICE_REQUEST.
        service: Option<i32>,
        /// The service's name, when it is one of the session's.
        #[serde(skip_serializing_if = "Option::is_none")]
        service_name: Option<&'static str>,
        /// The conversation id of a request, response or error.
        cid: Option<i64>,
        /// The frame length.
        len: usize,
        /// True for a text frame.
        #[serde(skip_serializing_if = "is_false")]
        text: bool,
    },
    /// An event of the protocol server (session opened, resumed, closed, ping answered, …).
    #[serde(rename = "session")]
    Server(ServerEvent),
    /// A fault acted on a connection.
    Fault(FaultAction),
    /// A connection ended.
    #[serde(rename = "close")]
    Closed {
        /// Who ended it.
        by: Side,
        /// How, e.g. "end of stream", "WebSocket close", "reset".
        reason: String,
        /// The code of the client's WebSocket close frame, if it sent one.
        #[serde(skip_serializing_if = "Option::is_none")]
        close_code: Option<u16>,
    },
    /// Something failed (TLS or WebSocket handshake, I/O).
    Error {
        /// What.
        message: String,
    },
}

impl LogKind {
    /// A connection response entry for `frame`.
    pub(crate) fn response(frame: &[u8], fault: Option<String>) -> Self {
        let code = frame.get(2).copied().unwrap_or(0);
        LogKind::Response {
            code,
            code_name: ResponseCode::from_u8(code).map(ResponseCode::name),
            len: frame.len(),
            session_id: ResponseFields::read(frame).session_id,
            fault,
        }
    }

    /// A message entry for `frame`, decoded as far as it goes.
    pub(crate) fn message(dir: Direction, frame: &bytes::Bytes, text: bool) -> Self {
        let (service, cid) = match Message::decode(frame) {
            Ok(Message::ServiceRequest { service, cid, .. }) => (Some(service), Some(cid)),
            Ok(Message::ServiceResponse { cid, .. } | Message::ServiceError { cid, .. }) => (None, Some(cid)),
            _ => (None, None),
        };
        let type_code = frame.first().map(|b| b & 0x3f);
        LogKind::Message {
            dir,
            type_name: type_code.map(|c| type_code::name(c).unwrap_or("UNKNOWN")),
            type_code,
            service: service.map(|s| s.0),
            service_name: service.and_then(ServiceId::name),
            cid,
            len: frame.len(),
            text,
        }
    }
}

impl LogEntry {
    /// True for a message with this direction, type code and service (any service when
    /// `service` is `None`).
    pub fn is_message(&self, dir: Direction, type_code: u8, service: Option<ServiceId>) -> bool {
        matches!(&self.kind, LogKind::Message { dir: d, type_code: Some(t), service: s, .. }
            if *d == dir && *t == type_code && service.is_none_or(|want| *s == Some(want.0)))
    }

    /// The upgrade request, if this entry is one.
    pub fn upgrade(&self) -> Option<&UpgradeLog> {
        match &self.kind {
            LogKind::Upgrade(u) => Some(u),
            _ => None,
        }
    }

    /// The code of a connection response entry.
    pub fn response_code(&self) -> Option<u8> {
        match &self.kind {
            LogKind::Response { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The entry as one line of JSON (see the schema above).
    pub fn to_json(&self) -> String {
        // Serializing these types cannot fail: every map key is a string.
        serde_json::to_string(self).unwrap_or_else(|e| format!(r#"{{"event":"error","message":"{e}"}}"#))
    }
}

fn ms<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

pub(crate) fn pairs<S: Serializer>(p: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(p.iter().map(|(k, v)| (k, v)))
}

fn is_false(b: &bool) -> bool {
    !*b
}
