//! Answering a new connection: reading its parameters, refusing it in three bytes or opening
//! a session with response 100, and drawing session ids and tokens.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use super::session::{Link, Session};
use super::{
    AcceptOutcome, ConnectionId, Server, ServerEvent, ServerOutput, SessionInfo, SessionStats, UpgradeRequest,
};
use crate::request::{ConnectionParams, ParamError, ParameterCarrier};
use crate::response::{
    ConnectionResponse, ProtocolVersion, ResponseCode, SessionGrant, SessionId, SessionToken,
};

/// The connection parameter names (SPEC §2.3). Only headers with these names are read, so
/// that an unrelated header with a non-UTF-8 value cannot fail a request.
const PARAMETER_NAMES: [&str; 10] = [
    "v", "ty", "ca", "r", "username", "password", "sp", "c", "cs", "ss",
];

impl Server {
    /// A new WebSocket connection `conn` has been upgraded: decide and queue its connection
    /// response (and, for a rejection, the transport close).
    pub fn accept(
        &mut self,
        now: Instant,
        conn: ConnectionId,
        request: &UpgradeRequest<'_>,
    ) -> AcceptOutcome {
        if self.connections.contains_key(&conn) {
            // The adapter reused a live id: its old transport must be gone.
            self.handle_closed(now, conn);
        }
        let (path, query) = request.split();
        let headers: Vec<(&str, &[u8])> = request
            .headers
            .iter()
            .copied()
            .filter(|(name, _)| PARAMETER_NAMES.iter().any(|p| p.eq_ignore_ascii_case(name)))
            .collect();
        let raw_version = raw_version(query, &headers);
        let fallback = match raw_version {
            Some(v) if v >= 29 => ProtocolVersion::V29,
            _ => ProtocolVersion::V25,
        };
        if !is_diffusion_path(path) {
            return self.reject(
                conn,
                fallback,
                ResponseCode::ConnectionProtocolError,
                format!("path {path:?} does not end in /diffusion"),
            );
        }
        let carrier = if query_has(query, "v") {
            ParameterCarrier::Query
        } else {
            ParameterCarrier::Headers
        };
        let params = match ConnectionParams::parse(query, headers.iter().copied()) {
            Ok(params) => params,
            Err(ParamError::UnsupportedVersion(v)) => {
                return self.reject(
                    conn,
                    fallback,
                    ResponseCode::Downgrade,
                    format!("unsupported protocol version {v}; this server speaks 25 and 29"),
                )
            }
            Err(e) => {
                return self.reject(
                    conn,
                    fallback,
                    ResponseCode::ConnectionProtocolError,
                    describe_param_error(&e),
                )
            }
        };
        match params.reconnect.clone() {
            None => self.open(now, conn, params, carrier),
            Some(rc) => self.reconnect(now, conn, &params, &rc),
        }
    }

    pub(super) fn reject(
        &mut self,
        conn: ConnectionId,
        version: ProtocolVersion,
        code: ResponseCode,
        reason: String,
    ) -> AcceptOutcome {
        self.outputs.push_back(ServerOutput::Transmit {
            conn,
            frame: ConnectionResponse::Rejected(code).encode(version),
        });
        self.outputs.push_back(ServerOutput::CloseTransport { conn });
        self.event(ServerEvent::Rejected { conn, code, reason });
        AcceptOutcome::Rejected { code }
    }

    /// A first connection: authenticate, create the session, answer 100.
    fn open(
        &mut self,
        now: Instant,
        conn: ConnectionId,
        params: ConnectionParams,
        carrier: ParameterCarrier,
    ) -> AcceptOutcome {
        if let Err(code) = self.authenticator.authenticate(&params) {
            let code = if code.opens_session() {
                ResponseCode::AuthenticationFailed
            } else {
                code
            };
            let reason = match &params.principal {
                Some(p) => format!("principal {p:?} refused"),
                None => "anonymous session refused".to_owned(),
            };
            return self.reject(conn, params.version, code, reason);
        }
        let id = self.new_session_id();
        let token = self.new_token();
        let grant = SessionGrant {
            code: ResponseCode::Ok,
            session_id: id,
            token: token.clone(),
            ping_period_ms: self.ping_period_ms(),
            last_field: self.config.max_message_size,
        };
        self.outputs.push_back(ServerOutput::Transmit {
            conn,
            frame: ConnectionResponse::Accepted(grant).encode(params.version),
        });
        let reconnect_timeout = Duration::from_millis(params.reconnect_timeout_ms);
        let info = SessionInfo {
            id,
            principal: params.principal.clone(),
            properties: params.properties.clone(),
            version: params.version,
            client_type: params.client_type.clone(),
            capabilities: params.capabilities,
            reconnect_timeout,
            connection: Some(conn),
            client_sequence: 0,
            server_sequence: 0,
            stats: SessionStats::default(),
        };
        let session = Session {
            info,
            token: token.clone(),
            link: Link::Attached(conn),
            recovery: VecDeque::new(),
            next_cid: 1,
            outstanding: BTreeMap::new(),
            unanswered: 0,
            next_ping: self.ping_deadline(now),
        };
        self.tokens.insert(*token.as_bytes(), id);
        self.connections.insert(conn, id);
        self.sessions.insert(id, session);
        self.event(ServerEvent::Connected {
            conn,
            session_id: id,
            principal: params.principal,
            properties: params.properties,
            version: params.version,
            carrier,
            client_type: params.client_type,
            capabilities: params.capabilities,
            reconnect_timeout,
        });
        AcceptOutcome::Accepted {
            session_id: id,
            code: ResponseCode::Ok,
            replaced: None,
        }
    }

    fn new_session_id(&mut self) -> SessionId {
        let mut buf = [0u8; 8];
        self.entropy.fill(&mut buf);
        let mut id = SessionId {
            server: self.config.server_id,
            value: u64::from_be_bytes(buf),
        };
        // Even a constant entropy source must give distinct ids; ends within len + 1 steps.
        while self.sessions.contains_key(&id) {
            id.value = id.value.wrapping_add(1);
        }
        id
    }

    fn new_token(&mut self) -> SessionToken {
        let mut raw = [0u8; 18];
        self.entropy.fill(&mut raw);
        let mut salt: u64 = 0;
        loop {
            let mut bytes = raw;
            for (b, s) in bytes.iter_mut().zip(salt.to_be_bytes()) {
                *b ^= s;
            }
            // 18 bytes are exactly 24 base64 characters, without padding (SPEC §3.5).
            let mut text = [b'A'; 24];
            for (t, c) in text.iter_mut().zip(BASE64.encode(bytes).bytes()) {
                *t = c;
            }
            // Distinct salts give distinct tokens, so this ends within len + 1 steps.
            if !self.tokens.contains_key(&text) {
                return SessionToken::new(text);
            }
            salt = salt.wrapping_add(1);
        }
    }
}

/// True when the last path segment is `diffusion` (a trailing `/` allowed, SPEC §2.1).
fn is_diffusion_path(path: &str) -> bool {
    path.trim_end_matches('/').rsplit('/').next() == Some("diffusion")
}

fn query_pairs(query: Option<&str>) -> impl Iterator<Item = (&str, &str)> {
    query
        .unwrap_or_default()
        .split('&')
        .map(|p| p.split_once('=').unwrap_or((p, "")))
}

fn query_has(query: Option<&str>, name: &str) -> bool {
    query_pairs(query).any(|(n, _)| n.eq_ignore_ascii_case(name))
}

/// `v` as a number, with the same precedence as [`ConnectionParams::parse`], for choosing the
/// version byte of a rejection when the parameters as a whole cannot be read.
fn raw_version(query: Option<&str>, headers: &[(&str, &[u8])]) -> Option<u32> {
    let from_query = query_pairs(query)
        .find(|(n, _)| n.eq_ignore_ascii_case("v"))
        .map(|(_, v)| v.as_bytes());
    let value = from_query.or_else(|| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("v"))
            .map(|(_, v)| *v)
    })?;
    std::str::from_utf8(value).ok()?.trim().parse().ok()
}

/// A [`ParamError`]'s text without the values it may hold: a malformed value can be the
/// password or the token.
fn describe_param_error(e: &ParamError) -> String {
    match e {
        ParamError::NotUtf8(_) => "a connection parameter is not valid UTF-8 or percent-encoding".to_owned(),
        ParamError::NotANumber { name, .. } => {
            format!("connection parameter {name:?} is not a number")
        }
        other => other.to_string(),
    }
}
