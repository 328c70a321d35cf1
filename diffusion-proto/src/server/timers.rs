//! Time-driven work: SYSTEM_PINGs every period, closing unresponsive clients, and discarding
//! detached sessions whose reconnection window has passed.

use std::time::Instant;

use bytes::Bytes;

use super::session::{Link, Session};
use super::{Server, ServerCloseReason};
use crate::message::{Message, ServiceId};
use crate::handshake::SessionId;

impl Server {
    /// Sends the SYSTEM_PINGs that are due, closes unresponsive sessions and discards
    /// detached sessions whose reconnection window has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.deadline().is_some_and(|d| d <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let Some(session) = self.sessions.get(&id) else {
                continue;
            };
            match session.link {
                Link::Detached { .. } => self.close_session(id, ServerCloseReason::ReconnectTimeout, false),
                Link::Attached(_) => {
                    let limit = self.config.unanswered_pings_limit;
                    if limit > 0 && session.unanswered >= limit {
                        self.close_session(id, ServerCloseReason::ClientUnresponsive, true);
                    } else {
                        self.send_system_ping(now, id);
                    }
                }
            }
        }
    }

    /// The next instant at which [`Server::handle_timeout`] has work, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.sessions.values().filter_map(Session::deadline).min()
    }

    fn send_system_ping(&mut self, now: Instant, id: SessionId) {
        let next_ping = self.ping_deadline(now);
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        let cid = session.alloc_cid();
        session.track(cid, ServiceId::SYSTEM_PING, now);
        session.unanswered = session.unanswered.saturating_add(1);
        session.info.stats.system_pings_sent += 1;
        session.next_ping = next_ping;
        let frame = Message::ServiceRequest {
            service: ServiceId::SYSTEM_PING,
            cid,
            payload: Bytes::new(),
        }
        .to_bytes();
        session.push_numbered(frame, self.config.recovery_buffer, &mut self.outputs);
    }

    pub(super) fn ping_deadline(&self, now: Instant) -> Option<Instant> {
        if self.config.ping_period.is_zero() {
            None
        } else {
            now.checked_add(self.config.ping_period)
        }
    }

    pub(super) fn ping_period_ms(&self) -> i64 {
        i64::try_from(self.config.ping_period.as_millis()).unwrap_or(i64::MAX)
    }
}
