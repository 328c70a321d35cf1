//! What a test server saw and did, as typed entries for tests and as JSON lines for
//! scripts; and its counters. No entry ever holds a password, credentials or a token.

use std::time::Duration;

use diffusion_proto::{
    type_code, Message, ParameterCarrier, RawParam, RawParams, ResponseCode, ResponseFields,
    ServerCloseReason, ServerEvent, ServiceId, SessionId,
};
use serde_json::{json, Map, Value};

/// One thing the server saw or did.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    /// Time since the server started.
    pub at: Duration,
    /// The connection (numbered 1, 2, 3, … in accept order), when it concerns one.
    pub conn: Option<u64>,
    /// What happened.
    pub kind: LogKind,
}

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the client.
    In,
    /// To the client.
    Out,
}

/// Which side ended a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The client closed, reset or stopped the connection.
    Client,
    /// The server closed it (after a rejection, an ABORT, a fault or a takeover).
    Server,
}

/// The kinds of [`LogEntry`].
#[derive(Debug, Clone, PartialEq)]
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
        /// Its length in bytes.
        len: usize,
        /// The session id in bytes 3..19, when the frame holds one.
        session_id: Option<SessionId>,
        /// The fault that made or replaced it (`reject-all`, `reconnect-answer`, a
        /// [`crate::Malformed`] name), `None` for the protocol server's own answer.
        fault: Option<String>,
    },
    /// A message received from or sent to the client, decoded.
    Message {
        /// Which way.
        dir: Direction,
        /// The type code (low 6 bits of the type byte); `None` for an empty frame.
        type_code: Option<u8>,
        /// The service of a SERVICE_REQUEST.
        service: Option<i32>,
        /// The conversation id of a request, response or error.
        cid: Option<i64>,
        /// The frame length.
        len: usize,
        /// True for a text frame.
        text: bool,
    },
    /// An event of the protocol server (session opened, resumed, closed, ping answered, …).
    Server(ServerEvent),
    /// A fault acted on a connection: `dropped`, `stalled`, `silent`.
    Fault {
        /// What the fault did.
        action: String,
    },
    /// A connection ended.
    Closed {
        /// Who ended it.
        by: Side,
        /// How, e.g. "end of stream", "WebSocket close 1000", "reset".
        reason: String,
    },
    /// Something failed (TLS or WebSocket handshake, I/O).
    Error {
        /// What.
        message: String,
    },
}

/// A WebSocket upgrade request as the server saw it, secrets redacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeLog {
    /// The request path, e.g. `/diffusion`.
    pub path: String,
    /// The query string with `password` and `c` values replaced by `<redacted>`.
    pub query: Option<String>,
    /// Every connection parameter seen, from the query (raw, still percent-encoded) and then
    /// from headers with parameter names, in arrival order; `password` and `c` redacted.
    pub params: Vec<(String, String)>,
    /// The names of all request headers, lower-case.
    pub header_names: Vec<String>,
    /// Where `v` was found.
    pub carrier: Option<ParameterCarrier>,
    /// `v` as a number, supported or not.
    pub version: Option<u32>,
    /// `ty`.
    pub client_type: Option<String>,
    /// The principal, `None` when anonymous (or when the parameters could not be read).
    pub principal: Option<String>,
    /// The kind of credentials: `none`, `password` or `custom`.
    pub credentials: Option<&'static str>,
    /// The proposed session properties, decoded.
    pub properties: Vec<(String, String)>,
    /// True when the request carries `c`: a reconnection.
    pub reconnect: bool,
    /// Why the parameters could not be read, if they could not.
    pub parse_error: Option<String>,
}

impl UpgradeLog {
    /// Reads what a request carries the way the protocol server does ([`RawParams`]), for
    /// the log.
    pub fn new(path: &str, query: Option<&str>, headers: &[(String, Vec<u8>)]) -> Self {
        let raw = RawParams::new(query, headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())));
        let shown = |p: &RawParam<'_>| match p.carrier {
            ParameterCarrier::Query => p.name.to_owned(),
            ParameterCarrier::Headers => p.name.to_ascii_lowercase(),
        };
        let mut log = UpgradeLog {
            path: path.to_owned(),
            query: query.map(|_| {
                raw.iter()
                    .filter(|p| p.carrier == ParameterCarrier::Query)
                    .map(|p| format!("{}={}", p.name, p.shown_value()))
                    .collect::<Vec<_>>()
                    .join("&")
            }),
            params: raw
                .iter()
                .map(|p| (shown(p), p.shown_value().into_owned()))
                .collect(),
            header_names: headers.iter().map(|(n, _)| n.to_ascii_lowercase()).collect(),
            carrier: raw.carrier(),
            version: raw.version(),
            client_type: raw.first("ty").map(|p| p.shown_value().into_owned()),
            principal: None,
            credentials: None,
            properties: Vec::new(),
            reconnect: raw.is_reconnect(),
            parse_error: None,
        };
        match raw.parse() {
            Ok(p) => {
                log.principal = p.principal;
                log.credentials = Some(p.credentials.kind());
                log.properties = p
                    .properties
                    .iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect();
            }
            // The error names the parameter, never its value.
            Err(e) => log.parse_error = Some(e.to_string()),
        }
        log
    }

    /// The value of parameter `name` as logged (redacted for `password` and `c`).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The version byte a connection response to this request should carry: the requested
    /// version when it fits a byte, else 25.
    pub fn version_byte(&self) -> u8 {
        self.version.and_then(|v| u8::try_from(v).ok()).unwrap_or(25)
    }
}

impl LogKind {
    /// A connection response entry for `frame`.
    pub(crate) fn response(frame: &[u8], fault: Option<String>) -> Self {
        LogKind::Response {
            code: frame.get(2).copied().unwrap_or(0),
            len: frame.len(),
            session_id: ResponseFields::read(frame).session_id,
            fault,
        }
    }

    /// A message entry for `frame`, decoded as far as it goes.
    pub(crate) fn message(dir: Direction, frame: &bytes::Bytes, text: bool) -> Self {
        let (service, cid) = match Message::decode(frame) {
            Ok(Message::ServiceRequest { service, cid, .. }) => (Some(service.0), Some(cid)),
            Ok(Message::ServiceResponse { cid, .. } | Message::ServiceError { cid, .. }) => (None, Some(cid)),
            _ => (None, None),
        };
        LogKind::Message {
            dir,
            type_code: frame.first().map(|b| b & 0x3f),
            service,
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

    /// The entry as one JSON object: `event`, `t_ms`, `conn`, and the entry's fields.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        let mut put = |k: &str, v: Value| {
            m.insert(k.to_owned(), v);
        };
        put("event", Value::from(self.event_name()));
        put("t_ms", json!(self.at.as_secs_f64() * 1000.0));
        if let Some(conn) = self.conn {
            put("conn", json!(conn));
        }
        match &self.kind {
            LogKind::Listening { port, url } => {
                put("port", json!(port));
                put("url", json!(url));
            }
            LogKind::Upgrade(u) => {
                put("path", json!(u.path));
                put("query", json!(u.query));
                put("params", pairs(&u.params));
                put("header_names", json!(u.header_names));
                put("carrier", json!(u.carrier.map(carrier_name)));
                put("version", json!(u.version));
                put("client_type", json!(u.client_type));
                put("principal", json!(u.principal));
                put("credentials", json!(u.credentials));
                put("properties", pairs(&u.properties));
                put("reconnect", json!(u.reconnect));
                if let Some(e) = &u.parse_error {
                    put("parse_error", json!(e));
                }
            }
            LogKind::Response {
                code,
                len,
                session_id,
                fault,
            } => {
                put("code", json!(code));
                put("code_name", json!(ResponseCode::from_u8(*code).map(|c| c.name())));
                put("len", json!(len));
                put("session_id", json!(session_id.map(|s| s.to_string())));
                if let Some(f) = fault {
                    put("fault", json!(f));
                }
            }
            LogKind::Message {
                dir,
                type_code,
                service,
                cid,
                len,
                text,
            } => {
                put("dir", json!(if *dir == Direction::In { "in" } else { "out" }));
                put("type", json!(type_code.map(type_name)));
                put("type_code", json!(type_code));
                put("service", json!(service));
                if let Some(name) = service.and_then(|s| ServiceId(s).name()) {
                    put("service_name", json!(name));
                }
                put("cid", json!(cid));
                put("len", json!(len));
                if *text {
                    put("text", json!(true));
                }
            }
            LogKind::Server(e) => server_event_json(e, &mut put),
            LogKind::Fault { action } => put("action", json!(action)),
            LogKind::Closed { by, reason } => {
                put("by", json!(if *by == Side::Client { "client" } else { "server" }));
                put("reason", json!(reason));
            }
            LogKind::Error { message } => put("message", json!(message)),
        }
        Value::Object(m)
    }

    fn event_name(&self) -> &'static str {
        match &self.kind {
            LogKind::Listening { .. } => "listening",
            LogKind::Upgrade(_) => "upgrade",
            LogKind::Response { .. } => "response",
            LogKind::Message { .. } => "message",
            LogKind::Server(ServerEvent::SystemPingAnswered { .. }) => "system_ping_answered",
            LogKind::Server(_) => "session",
            LogKind::Fault { .. } => "fault",
            LogKind::Closed { .. } => "close",
            LogKind::Error { .. } => "error",
        }
    }
}

fn pairs(p: &[(String, String)]) -> Value {
    Value::Object(
        p.iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect(),
    )
}

fn carrier_name(c: ParameterCarrier) -> &'static str {
    match c {
        ParameterCarrier::Query => "query",
        ParameterCarrier::Headers => "headers",
    }
}

/// The SPEC §4.2 name of a message type code.
pub fn type_name(code: u8) -> &'static str {
    match code {
        type_code::SERVICE_REQUEST => "SERVICE_REQUEST",
        type_code::TOPIC_VALUE => "TOPIC_VALUE",
        type_code::TOPIC_DELTA => "TOPIC_DELTA",
        type_code::SERVICE_RESPONSE => "SERVICE_RESPONSE",
        type_code::SERVICE_ERROR => "SERVICE_ERROR",
        type_code::ABORT => "ABORT",
        type_code::CLOSE_REQUEST => "CLOSE_REQUEST",
        _ => "UNKNOWN",
    }
}

/// Whole milliseconds (a reconnection timeout).
fn ms(d: Duration) -> Value {
    json!(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Whole microseconds (a round trip), as the peer scripts report theirs.
fn us(d: Duration) -> Value {
    json!(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn server_event_json(e: &ServerEvent, put: &mut impl FnMut(&str, Value)) {
    let id = |s: &SessionId| json!(s.to_string());
    match e {
        ServerEvent::Connected {
            session_id,
            principal,
            properties,
            version,
            carrier,
            client_type,
            capabilities,
            reconnect_timeout,
            ..
        } => {
            put("kind", json!("connected"));
            put("session_id", id(session_id));
            put("principal", json!(principal));
            put(
                "properties",
                Value::Object(
                    properties
                        .iter()
                        .map(|(k, v)| (k.to_owned(), Value::from(v)))
                        .collect(),
                ),
            );
            put("version", json!(version.number()));
            put("carrier", json!(carrier_name(*carrier)));
            put("client_type", json!(client_type));
            put("capabilities", json!(capabilities));
            put("reconnect_timeout_ms", ms(*reconnect_timeout));
        }
        ServerEvent::Rejected { code, reason, .. } => {
            put("kind", json!("rejected"));
            put("code", json!(code.code()));
            put("reason", json!(reason));
        }
        ServerEvent::Reconnected {
            session_id,
            code,
            resent,
            replaced,
            ..
        } => {
            put("kind", json!("reconnected"));
            put("session_id", id(session_id));
            put("code", json!(code.code()));
            put("resent", json!(resent));
            put("replaced_conn", json!(replaced.map(|c| c.0)));
        }
        ServerEvent::MessageReceived { session_id, .. } => {
            put("kind", json!("message_received"));
            put("session_id", id(session_id));
        }
        ServerEvent::ServiceRequest {
            session_id,
            service,
            cid,
            ..
        } => {
            put("kind", json!("service_request"));
            put("session_id", id(session_id));
            put("service", json!(service.0));
            put("cid", json!(cid));
        }
        ServerEvent::UnknownService {
            session_id,
            service,
            cid,
            ..
        } => {
            put("kind", json!("unknown_service"));
            put("session_id", id(session_id));
            put("service", json!(service.0));
            put("cid", json!(cid));
        }
        ServerEvent::SystemPingAnswered {
            session_id, cid, rtt, ..
        } => {
            put("session_id", id(session_id));
            put("cid", json!(cid));
            put("rtt_us", us(*rtt));
        }
        ServerEvent::ResponseReceived {
            session_id,
            cid,
            service,
            rtt,
            response,
            ..
        } => {
            put("kind", json!("response_received"));
            put("session_id", id(session_id));
            put("cid", json!(cid));
            put("service", json!(service.0));
            put("rtt_us", us(*rtt));
            put("error", json!(matches!(response, Message::ServiceError { .. })));
        }
        ServerEvent::PrincipalChanged {
            session_id,
            principal,
            ..
        } => {
            put("kind", json!("principal_changed"));
            put("session_id", id(session_id));
            put("principal", json!(principal));
        }
        ServerEvent::CloseRequested { session_id, .. } => {
            put("kind", json!("close_requested"));
            put("session_id", id(session_id));
        }
        ServerEvent::Detached {
            session_id, expires, ..
        } => {
            put("kind", json!("detached"));
            put("session_id", id(session_id));
            put("kept", json!(expires.is_some()));
        }
        ServerEvent::ProtocolError {
            session_id, error, ..
        } => {
            put("kind", json!("protocol_error"));
            put("session_id", id(session_id));
            put("error", json!(error));
        }
        ServerEvent::SessionClosed {
            session_id,
            conn,
            reason,
        } => {
            put("kind", json!("session_closed"));
            put("session_id", id(session_id));
            put("session_conn", json!(conn.map(|c| c.0)));
            put("reason", json!(reason.to_string()));
            put("reason_kind", json!(close_reason_kind(reason)));
        }
    }
}

fn close_reason_kind(r: &ServerCloseReason) -> &'static str {
    match r {
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

/// Counters since the server started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// TCP connections accepted.
    pub connections: u64,
    /// WebSocket upgrades completed.
    pub upgrades: u64,
    /// Sessions opened (response 100).
    pub sessions_opened: u64,
    /// Sessions resumed (105, 106).
    pub reconnections: u64,
    /// Connection responses that refused (3 bytes, by the protocol server or a fault).
    pub rejections: u64,
    /// Client messages received (frames after the connection response); what a stalled
    /// connection reads and discards is not counted.
    pub messages_received: u64,
    /// Messages sent after connection responses.
    pub messages_sent: u64,
    /// SYSTEM_PINGs sent.
    pub system_pings_sent: u64,
    /// SYSTEM_PINGs the client answered.
    pub system_pings_answered: u64,
    /// USER_PINGs from the client that were answered.
    pub user_pings_answered: u64,
    /// CLOSE_REQUESTs received.
    pub close_requests: u64,
    /// ABORTs sent.
    pub aborts_sent: u64,
    /// Connections dropped by [`crate::Fault::DropAfter`].
    pub dropped_connections: u64,
    /// Connections stalled by [`crate::Fault::Stall`] or [`crate::Fault::NoResponse`].
    pub stalled_connections: u64,
    /// Connection responses replaced by [`crate::Fault::MalformedResponse`].
    pub malformed_responses: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use diffusion_proto::REDACTED;

    #[test]
    fn upgrade_log_redacts_secrets_and_reads_both_carriers() {
        let query = "ty=WB&v=29&ca=10&r=60000&c=ABCDEFGHIJKLMNOPQRSTUVWX&cs=1&ss=3&username=bob&password=AQZzZWNyZXQ%3D";
        let log = UpgradeLog::new("/diffusion", Some(query), &[("user-agent".into(), b"x".to_vec())]);
        let shown = format!(
            "{log:?} {}",
            LogEntry {
                at: Duration::ZERO,
                conn: Some(1),
                kind: LogKind::Upgrade(log.clone())
            }
            .to_json()
        );
        for secret in ["AQZzZWNyZXQ", "ABCDEFGH"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert_eq!(log.carrier, Some(ParameterCarrier::Query));
        assert_eq!(log.version, Some(29));
        assert_eq!(log.principal.as_deref(), Some("bob"));
        assert_eq!(log.credentials, Some("password"));
        assert!(log.reconnect);
        assert_eq!(log.param("password"), Some(REDACTED));

        let headers = vec![
            ("v".to_owned(), b"25".to_vec()),
            ("username".to_owned(), b"".to_vec()),
            ("password".to_owned(), b"".to_vec()),
            ("sp".to_owned(), br#""Foo","bar""#.to_vec()),
            ("accept".to_owned(), b"*/*".to_vec()),
        ];
        let log = UpgradeLog::new("/diffusion", None, &headers);
        assert_eq!(log.carrier, Some(ParameterCarrier::Headers));
        assert_eq!(log.principal, None);
        assert_eq!(log.properties, [("Foo".to_owned(), "bar".to_owned())]);
        assert_eq!(log.params.len(), 4);
        assert_eq!(log.header_names.len(), 5);
    }

    #[test]
    fn unreadable_parameters_do_not_leak_into_the_error() {
        let log = UpgradeLog::new("/diffusion", Some("v=25&password=%ZZsecret"), &[]);
        let error = log.parse_error.clone().unwrap();
        assert!(!error.contains("secret"), "{error}");
    }
}
