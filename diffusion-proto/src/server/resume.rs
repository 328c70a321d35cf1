//! Reconnection (SPEC §11.2, Q3): refusing it with 117 or 118, or resuming the session on the
//! new connection with 105 and the messages the client missed, or 106 when they are lost.

use std::time::{Duration, Instant};

use super::session::{Link, SessionTimer};
use super::{
    AcceptOutcome, ConnectionId, Server, ServerCloseReason, ServerEvent, ServerEventKind, ServerOutput,
};
use crate::handshake::{ConnectionParams, ReconnectParams};
use crate::handshake::{ConnectionResponse, LastField, ResponseCode, SessionGrant};

impl Server {
    /// A reconnection (`c` present): 117, 118, or resume with 105/106.
    pub(super) fn reconnect(
        &mut self,
        now: Instant,
        conn: ConnectionId,
        params: &ConnectionParams,
        rc: &ReconnectParams,
    ) -> AcceptOutcome {
        let version = params.version;
        let Some(&id) = self.tokens.get(rc.token.as_bytes()) else {
            return self.reject(
                conn,
                version,
                ResponseCode::UnknownSession,
                "reconnection to a session this server does not know".to_owned(),
            );
        };
        let Some(session) = self.sessions.get(&id) else {
            return self.reject(
                conn,
                version,
                ResponseCode::UnknownSession,
                "reconnection to a session this server does not know".to_owned(),
            );
        };
        if let Some(expires) = session.timers.get(SessionTimer::Expiry) {
            if expires <= now {
                // Expired but not yet swept by handle_timeout.
                self.close_session(id, ServerCloseReason::ReconnectTimeout, false);
                return self.reject(
                    conn,
                    version,
                    ResponseCode::UnknownSession,
                    format!("session {id} expired before the reconnection"),
                );
            }
        }
        let recovery_sequence = session.info.client_sequence.saturating_add(1);
        let cs = rc.available_client_sequence;
        if cs != 0 && i128::from(cs) > i128::from(recovery_sequence) {
            self.close_session(id, ServerCloseReason::ReconnectionFailed, false);
            return self.reject(
                conn,
                version,
                ResponseCode::ReconnectionFailedMessageLoss,
                format!(
                    "session {id}: the client holds its messages from {cs} on, the server needs them from {recovery_sequence}"
                ),
            );
        }
        let ping_period_ms = self.ping_period_ms();
        let next_ping = self.ping_deadline(now);
        let keep_max = self.config.max_message_size;
        let Some(session) = self.sessions.get_mut(&id) else {
            return AcceptOutcome::Rejected {
                code: ResponseCode::UnknownSession,
            };
        };
        let resend = session.frames_after(rc.last_server_sequence);
        let replaced = match session.link {
            Link::Attached(old) if old != conn => Some(old),
            _ => None,
        };
        if let Some(old) = replaced {
            // Takeover: the client has given up on `old`, whether or not we noticed.
            self.connections.remove(&old);
            self.outputs.push_back(ServerOutput::CloseTransport { conn: old });
        }
        session.link = Link::Attached(conn);
        session.info.connection = Some(conn);
        session.info.version = version;
        session.info.capabilities = params.capabilities;
        session.info.reconnect_timeout = Duration::from_millis(params.reconnect_timeout_ms);
        session.info.stats.reconnections += 1;
        // A fresh connection gets a fresh chance to answer; pings re-sent below may still be
        // answered under their old cids.
        session.requests.unanswered_pings = 0;
        session.timers.stop_all();
        if let Some(at) = next_ping {
            session.timers.set(SessionTimer::Ping, at);
        }
        let (code, last_field, frames) = match resend {
            Some(frames) => (
                ResponseCode::Reconnected,
                LastField::RecoverySequence(u32::try_from(recovery_sequence).unwrap_or(u32::MAX)),
                frames,
            ),
            None => {
                session.reset_sequences();
                (
                    ResponseCode::ReconnectedWithMessageLoss,
                    LastField::MaxMessageSize(keep_max),
                    Vec::new(),
                )
            }
        };
        let grant = SessionGrant {
            code,
            session_id: id,
            token: session.token.clone(),
            ping_period_ms,
            last_field,
        };
        self.outputs.push_back(ServerOutput::Transmit {
            conn,
            frame: ConnectionResponse::Accepted(grant).encode(version),
        });
        let resent = frames.len();
        session.info.stats.messages_resent += resent as u64;
        self.outputs.extend(
            frames
                .into_iter()
                .map(|frame| ServerOutput::Transmit { conn, frame }),
        );
        self.connections.insert(conn, id);
        self.event(ServerEvent {
            conn: Some(conn),
            session_id: Some(id),
            kind: ServerEventKind::Reconnected {
                code,
                resent,
                replaced,
            },
        });
        if code == ResponseCode::ReconnectedWithMessageLoss {
            self.renotify_topics(id);
        }
        AcceptOutcome::Accepted {
            session_id: id,
            code,
            replaced,
        }
    }
}
