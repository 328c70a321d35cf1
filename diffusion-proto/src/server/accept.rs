//! Answering a new connection: reading its parameters, refusing it in three bytes or opening
//! a session with response 100, and drawing session ids and tokens.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use super::session::{Link, ServerRequests, Session, SessionTimer};
use super::topics::SessionTopics;
use super::{
    AcceptOutcome, ConnectionId, Server, ServerEvent, ServerEventKind, ServerOutput, SessionInfo,
    SessionStats, UpgradeRequest,
};
use crate::handshake::{ConnectionParams, ParamError, ParameterCarrier, RawParams};
use crate::handshake::{
    ConnectionResponse, LastField, ProtocolVersion, ResponseCode, SessionGrant, SessionId, SessionToken,
};
use crate::outbound::RecoveryBuffer;
use crate::timer::TimerTable;

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
        let raw = RawParams::new(query, request.headers.iter().copied());
        let fallback = match raw.version() {
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
        let carrier = raw.carrier().unwrap_or(ParameterCarrier::Headers);
        let params = match raw.parse() {
            Ok(params) => params,
            Err(ParamError::UnsupportedVersion(v)) => {
                return self.reject(
                    conn,
                    fallback,
                    ResponseCode::Downgrade,
                    format!("unsupported protocol version {v}; this server speaks 25 and 29"),
                )
            }
            // The error names the parameter, never its value (which may be the password).
            Err(e) => {
                return self.reject(
                    conn,
                    fallback,
                    ResponseCode::ConnectionProtocolError,
                    e.to_string(),
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
        self.stats.rejections += 1;
        self.event(ServerEvent {
            conn: Some(conn),
            session_id: None,
            kind: ServerEventKind::Rejected { code, reason },
        });
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
            last_field: LastField::MaxMessageSize(self.config.max_message_size),
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
        let mut session = Session {
            info,
            token: token.clone(),
            link: Link::Attached(conn),
            timers: TimerTable::default(),
            sent: RecoveryBuffer::new(self.config.recovery_buffer),
            requests: ServerRequests::default(),
            topics: SessionTopics::default(),
        };
        if let Some(at) = self.ping_deadline(now) {
            session.timers.set(SessionTimer::Ping, at);
        }
        self.stats.sessions_opened += 1;
        self.tokens.insert(*token.as_bytes(), id);
        self.connections.insert(conn, id);
        self.sessions.insert(id, session);
        self.event(ServerEvent {
            conn: Some(conn),
            session_id: Some(id),
            kind: ServerEventKind::Connected {
                principal: params.principal,
                properties: params.properties,
                version: params.version,
                carrier,
                client_type: params.client_type,
                capabilities: params.capabilities,
                reconnect_timeout,
            },
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
