//! How sessions lose their connection or end: transport loss and detaching, [`Server::abort`],
//! [`Server::drop_connection`], [`Server::forget_session`], and the removal itself.

use std::time::Instant;

use super::session::{Link, SessionTimer};
use super::{ConnectionId, Server, ServerCloseReason, ServerEvent, ServerEventKind, ServerOutput};
use crate::handshake::SessionId;
use crate::message::Message;

impl Server {
    /// The transport of `conn` ended without the server asking: its session is detached and
    /// kept for the client's `r` (closed at once when `r` is 0).
    pub fn handle_closed(&mut self, now: Instant, conn: ConnectionId) {
        if let Some(id) = self.connections.remove(&conn) {
            self.detach(now, id, conn);
        }
    }

    /// Ends the session of `conn` from the server side: ABORT, then transport close. The
    /// client ends "closed by server" and does not reconnect.
    pub fn abort(&mut self, conn: ConnectionId) {
        if let Some(&id) = self.connections.get(&conn) {
            self.close_session(id, ServerCloseReason::Aborted, true);
        }
    }

    /// Drops the transport of `conn` abruptly (no ABORT, no close frame), keeping its
    /// session for a reconnection, like a network failure seen from the server.
    pub fn drop_connection(&mut self, now: Instant, conn: ConnectionId) {
        if let Some(id) = self.connections.remove(&conn) {
            self.outputs.push_back(ServerOutput::CloseTransport { conn });
            self.detach(now, id, conn);
        }
    }

    /// Discards a session as a restarted server would: its connection, if any, is dropped
    /// without ABORT, and a later reconnection gets 117.
    pub fn forget_session(&mut self, id: SessionId) {
        self.close_session(id, ServerCloseReason::Forgotten, false);
    }

    pub(super) fn detach(&mut self, now: Instant, id: SessionId, conn: ConnectionId) {
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        let timeout = session.info.reconnect_timeout;
        let expires = now.checked_add(timeout);
        session.link = Link::Detached;
        session.info.connection = None;
        session.timers.stop(SessionTimer::Ping);
        if let Some(at) = expires {
            session.timers.set(SessionTimer::Expiry, at);
        }
        self.event(ServerEvent {
            conn: Some(conn),
            session_id: Some(id),
            kind: ServerEventKind::Detached { expires },
        });
        if timeout.is_zero() {
            self.close_session(id, ServerCloseReason::ConnectionLost, false);
        }
    }

    /// Removes the session; when attached, sends ABORT if `abort`, then closes the transport.
    pub(super) fn close_session(&mut self, id: SessionId, reason: ServerCloseReason, abort: bool) {
        let Some(session) = self.sessions.remove(&id) else {
            return;
        };
        self.tokens.remove(session.token.as_bytes());
        self.topics.remove_subscriber(id, &session.topics);
        let mut stats = session.info.stats;
        let conn = match session.link {
            Link::Attached(conn) => {
                self.connections.remove(&conn);
                if abort {
                    stats.aborts_sent += 1;
                    self.outputs.push_back(ServerOutput::Transmit {
                        conn,
                        frame: Message::Abort.to_bytes(),
                    });
                }
                self.outputs.push_back(ServerOutput::CloseTransport { conn });
                Some(conn)
            }
            Link::Detached => None,
        };
        self.stats.sessions += stats;
        self.event(ServerEvent {
            conn,
            session_id: Some(id),
            kind: ServerEventKind::SessionClosed { reason },
        });
    }
}
