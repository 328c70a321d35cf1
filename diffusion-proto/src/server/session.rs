//! The state the server keeps per session: what tests see ([`SessionInfo`], [`SessionStats`])
//! and what they do not (token, link, recovery buffer, outstanding requests).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{ConnectionId, ServerOutput};
use crate::message::ServiceId;
use crate::properties::SessionProperties;
use crate::handshake::{ProtocolVersion, SessionId, SessionToken};

/// Most server requests (system pings included) awaiting an answer per session. Beyond it the
/// oldest is forgotten, so a client that never answers cannot grow the table without bound.
const MAX_OUTSTANDING: usize = 1024;

/// Counters of one session, cumulative since it was opened (106 does not reset them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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
    /// Waiting for a reconnection until `expires` (`None`: `r` overflowed `Instant`).
    Detached {
        expires: Option<Instant>,
    },
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Outstanding {
    pub(super) service: ServiceId,
    pub(super) sent_at: Instant,
}

#[derive(Debug)]
pub(super) struct Session {
    pub(super) info: SessionInfo,
    pub(super) token: SessionToken,
    pub(super) link: Link,
    /// Numbered frames kept for re-sending: contiguous, ending at `server_sequence`.
    pub(super) recovery: VecDeque<(u64, Bytes)>,
    pub(super) next_cid: i64,
    pub(super) outstanding: BTreeMap<i64, Outstanding>,
    /// SYSTEM_PINGs sent since the client last answered one.
    pub(super) unanswered: u32,
    pub(super) next_ping: Option<Instant>,
}

impl Session {
    pub(super) fn deadline(&self) -> Option<Instant> {
        match self.link {
            Link::Attached(_) => self.next_ping,
            Link::Detached { expires } => expires,
        }
    }

    /// A fresh conversation id; 1, 2, 3, … and never 0, which means one-way.
    pub(super) fn alloc_cid(&mut self) -> i64 {
        let cid = self.next_cid;
        self.next_cid = cid.checked_add(1).unwrap_or(1);
        cid
    }

    pub(super) fn track(&mut self, cid: i64, service: ServiceId, now: Instant) {
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
    }

    /// Numbers `frame`, keeps it for recovery and transmits it when attached.
    pub(super) fn push_numbered(&mut self, frame: Bytes, keep: usize, out: &mut VecDeque<ServerOutput>) {
        self.info.server_sequence = self.info.server_sequence.saturating_add(1);
        self.info.stats.messages_sent += 1;
        if keep > 0 {
            if self.recovery.len() >= keep {
                self.recovery.pop_front();
            }
            self.recovery
                .push_back((self.info.server_sequence, frame.clone()));
        }
        if let Link::Attached(conn) = self.link {
            out.push_back(ServerOutput::Transmit { conn, frame });
        }
    }

    /// The frames numbered after `ss`, or `None` when they cannot all be re-sent (no longer
    /// buffered, or an `ss` that is negative or beyond what was sent).
    pub(super) fn frames_after(&self, ss: i64) -> Option<Vec<Bytes>> {
        let ss = u64::try_from(ss).ok()?;
        if ss >= self.info.server_sequence {
            return (ss == self.info.server_sequence).then(Vec::new);
        }
        let first = ss + 1;
        match self.recovery.front() {
            Some(&(oldest, _)) if oldest <= first => Some(
                self.recovery
                    .iter()
                    .filter(|(seq, _)| *seq >= first)
                    .map(|(_, frame)| frame.clone())
                    .collect(),
            ),
            _ => None,
        }
    }
}
