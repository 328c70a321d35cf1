//! Time-driven work: SYSTEM_PINGs every period, closing unresponsive clients, and discarding
//! detached sessions whose reconnection window has passed.

use std::time::Instant;

use bytes::Bytes;

use super::session::SessionTimer;
use super::{Server, ServerCloseReason};
use crate::handshake::SessionId;
use crate::message::{Message, ServiceId};

impl Server {
    /// Sends the SYSTEM_PINGs that are due, closes unresponsive sessions and discards
    /// detached sessions whose reconnection window has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.timers.next_timeout().is_some_and(|d| d <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let Some(session) = self.sessions.get_mut(&id) else {
                continue;
            };
            match session.timers.take_expired(now, &[]) {
                Some(SessionTimer::Expiry) => {
                    self.close_session(id, ServerCloseReason::ReconnectTimeout, false)
                }
                Some(SessionTimer::Ping) => {
                    let limit = self.config.unanswered_pings_limit;
                    if limit > 0 && session.requests.unanswered_pings >= limit {
                        self.close_session(id, ServerCloseReason::ClientUnresponsive, true);
                    } else {
                        self.send_system_ping(now, id);
                    }
                }
                None => {}
            }
        }
    }

    /// The next instant at which [`Server::handle_timeout`] has work, if any. Read it again
    /// after every call: any of them may move it.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.sessions
            .values()
            .filter_map(|s| s.timers.next_timeout())
            .min()
    }

    fn send_system_ping(&mut self, now: Instant, id: SessionId) {
        let next_ping = self.ping_deadline(now);
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        let cid = session.requests.start(ServiceId::SYSTEM_PING, now);
        session.requests.unanswered_pings = session.requests.unanswered_pings.saturating_add(1);
        session.info.stats.system_pings_sent += 1;
        if let Some(at) = next_ping {
            session.timers.set(SessionTimer::Ping, at);
        }
        let frame = Message::ServiceRequest {
            service: ServiceId::SYSTEM_PING,
            cid,
            payload: Bytes::new(),
        }
        .to_bytes();
        session.push_numbered(frame, &mut self.outputs);
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
