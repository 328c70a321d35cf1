//! The state the server keeps per session: what tests see ([`SessionInfo`], [`SessionStats`])
//! and what they do not (token, link, timers, recovery buffer, outstanding requests).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::topics::SessionTopics;
use super::{ConnectionId, ServerOutput};
use crate::handshake::{ProtocolVersion, SessionId, SessionToken};
use crate::message::ServiceId;
use crate::outbound::{ConversationIds, RecoveryBuffer};
use crate::properties::SessionProperties;
use crate::timer::{TimerKind, TimerTable};

/// Most server requests (system pings included) awaiting an answer per session. Beyond it the
/// oldest is forgotten, so a client that never answers cannot grow the table without bound.
const MAX_OUTSTANDING: usize = 1024;

/// Counters of one session, cumulative since it was opened (106 does not reset them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionStats {
    /// Client messages received, of any type.
    pub messages_received: u64,
    /// Numbered server messages sent (re-sends and ABORT not included).
    pub messages_sent: u64,
    /// Buffered messages sent again after reconnections.
    pub messages_resent: u64,
    /// SYSTEM_PINGs sent.
    pub system_pings_sent: u64,
    /// SYSTEM_PINGs answered with a SERVICE_RESPONSE.
    pub system_pings_answered: u64,
    /// USER_PINGs answered.
    pub user_pings_answered: u64,
    /// CLOSE_REQUESTs received.
    pub close_requests: u64,
    /// Requests to services the server does not provide.
    pub unknown_services: u64,
    /// Messages of unknown types, ignored (but counted in the client sequence).
    pub ignored_messages: u64,
    /// Successful reconnections (105 or 106).
    pub reconnections: u64,
    /// ABORTs sent.
    pub aborts_sent: u64,
}

impl std::ops::AddAssign for SessionStats {
    fn add_assign(&mut self, other: SessionStats) {
        self.messages_received += other.messages_received;
        self.messages_sent += other.messages_sent;
        self.messages_resent += other.messages_resent;
        self.system_pings_sent += other.system_pings_sent;
        self.system_pings_answered += other.system_pings_answered;
        self.user_pings_answered += other.user_pings_answered;
        self.close_requests += other.close_requests;
        self.unknown_services += other.unknown_services;
        self.ignored_messages += other.ignored_messages;
        self.reconnections += other.reconnections;
        self.aborts_sent += other.aborts_sent;
    }
}

/// Counters of the whole server since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Sessions opened (response 100).
    pub sessions_opened: u64,
    /// Connection requests refused with a 3-byte response.
    pub rejections: u64,
    /// Every session's [`SessionStats`] added up, those of closed sessions included.
    pub sessions: SessionStats,
}

/// What a test can inspect of one session. Holds no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The session id.
    pub id: SessionId,
    /// The current principal, `None` for anonymous.
    pub principal: Option<String>,
    /// The proposed session properties (plus those of RE_AUTHENTICATE).
    pub properties: SessionProperties,
    /// The protocol version of the latest connection.
    pub version: ProtocolVersion,
    /// `ty`.
    pub client_type: String,
    /// `ca` of the latest connection.
    pub capabilities: u8,
    /// `r` of the latest connection.
    pub reconnect_timeout: Duration,
    /// The attached connection, `None` while detached.
    pub connection: Option<ConnectionId>,
    /// Client messages received since the session opened (or since the last 106): a
    /// reconnection answers 105 with this plus one.
    pub client_sequence: u64,
    /// The number of the last server message sent (1, 2, 3, … since the session opened or
    /// the last 106; ABORT not counted), compared with the client's `ss`.
    pub server_sequence: u64,
    /// Counters.
    pub stats: SessionStats,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Link {
    Attached(ConnectionId),
    /// Waiting for a reconnection until [`SessionTimer::Expiry`].
    Detached,
}

/// A server session's timers; at most one is armed: pings while attached, expiry while
/// detached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SessionTimer {
    /// The next SYSTEM_PING (none when the ping period is 0).
    Ping,
    /// The end of the reconnection window (none when `r` overflows `Instant`).
    Expiry,
}

impl TimerKind for SessionTimer {
    const ALL: &'static [SessionTimer] = &[SessionTimer::Expiry, SessionTimer::Ping];

    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Outstanding {
    pub(super) service: ServiceId,
    pub(super) sent_at: Instant,
}

/// The server's requests to this session's client awaiting an answer (SYSTEM_PINGs and
/// [`super::Server::send_request`]), under conversation ids shared by both.
#[derive(Debug, Default)]
pub(super) struct ServerRequests {
    ids: ConversationIds,
    outstanding: BTreeMap<i64, Outstanding>,
    /// SYSTEM_PINGs sent since the client last answered one.
    pub(super) unanswered_pings: u32,
}

impl ServerRequests {
    /// A request to `service` sent at `now`: its fresh conversation id.
    pub(super) fn start(&mut self, service: ServiceId, now: Instant) -> i64 {
        let cid = self.ids.take();
        self.outstanding.insert(
            cid,
            Outstanding {
                service,
                sent_at: now,
            },
        );
        if self.outstanding.len() > MAX_OUTSTANDING {
            self.outstanding.pop_first();
        }
        cid
    }

    /// The request `cid`, now answered.
    pub(super) fn complete(&mut self, cid: i64) -> Option<Outstanding> {
        self.outstanding.remove(&cid)
    }

    /// Forgets every request (after a reconnection with message loss).
    pub(super) fn clear(&mut self) {
        self.outstanding.clear();
    }
}

/// What the server keeps per session, one field per concern: its identity and counters, the
/// connection, the timers, what it sent, and its requests to the client. Per-session
/// feature state (topic subscriptions, messaging routes) joins them as fields of its own.
#[derive(Debug)]
pub(super) struct Session {
    pub(super) info: SessionInfo,
    pub(super) token: SessionToken,
    pub(super) link: Link,
    pub(super) timers: TimerTable<SessionTimer, 2>,
    /// Numbered frames kept for re-sending: contiguous, ending at `info.server_sequence`.
    pub(super) sent: RecoveryBuffer,
    pub(super) requests: ServerRequests,
    /// Selectors and subscribed topics.
    pub(super) topics: SessionTopics,
}

impl Session {
    /// Numbers `frame`, keeps it for recovery and transmits it when attached.
    pub(super) fn push_numbered(&mut self, frame: Bytes, out: &mut VecDeque<ServerOutput>) {
        self.info.server_sequence = self.sent.push(&frame);
        self.info.stats.messages_sent += 1;
        if let Link::Attached(conn) = self.link {
            out.push_back(ServerOutput::Transmit { conn, frame });
        }
    }

    /// The frames numbered after `ss`, or `None` when they cannot all be re-sent (no longer
    /// buffered, or an `ss` that is negative or beyond what was sent).
    pub(super) fn frames_after(&self, ss: i64) -> Option<Vec<Bytes>> {
        let ss = u64::try_from(ss).ok()?;
        if ss > self.sent.last() {
            return None;
        }
        self.sent.since(ss + 1).ok()
    }

    /// Numbering starts again from 0 on both sides (a reconnection with message loss).
    pub(super) fn reset_sequences(&mut self) {
        self.info.client_sequence = 0;
        self.info.server_sequence = 0;
        self.sent.reset();
        self.requests.clear();
    }
}
