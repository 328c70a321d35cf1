//! The server side of the session protocol (SPEC §3, §6–§8, §11–§13, §17): connection
//! responses, system and user pings, close and reconnection, for loopback test servers.
//!
//! One [`Server`] value manages every connection and session (like quinn-proto's
//! `Endpoint`), so that a reconnection can take a session over from a connection the server
//! has not yet noticed is dead. It is sans-IO like [`crate::ClientSession`]: instants come in
//! as arguments, randomness through [`Entropy`], and all work comes out of
//! [`Server::poll_output`].
//!
//! The code is split by job: `config` and `auth` (what the server is given), `output` (what
//! it hands back), `session` (what it keeps per session), `accept` and `resume` (connection
//! responses), `frames` and `services` (client messages), `timers` (pings and expiry) and
//! `close` (detaching and closing sessions).

mod accept;
mod auth;
mod close;
mod config;
mod frames;
mod output;
mod resume;
mod services;
mod session;
mod timers;
mod topics;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::time::Instant;

use bytes::Bytes;

pub use auth::{AllowAll, Authenticator, CounterEntropy, Entropy, UserTable};
pub use config::{ConnectionId, ServerConfig, UpgradeRequest};
pub use output::{AcceptOutcome, ServerCloseReason, ServerEvent, ServerEventKind, ServerOutput};
pub use session::{ServerStats, SessionInfo, SessionStats};
pub use topics::{SubscriptionInfo, TopicInfo, TopicSent, TopicTreeError, TopicTreeStats};

use crate::handshake::SessionId;
use crate::message::{Message, ServiceId};
use session::{Link, Session};
use topics::TopicTree;

/// The server side of every session, as one sans-IO value.
///
/// # Polling contract
///
/// The adapter owns the sockets and the clock; the server owns the protocol.
///
/// - When a WebSocket upgrade completes (or from inside the upgrade callback, to add a
///   `Set-Cookie: session=<id>` header from the outcome), call [`Server::accept`] with a
///   [`ConnectionId`] it has not used before.
/// - Pass every received binary message to [`Server::handle_frame`] (text messages may be
///   passed as their UTF-8 bytes). Answer WebSocket PINGs with PONGs yourself (SPEC §12).
/// - When a transport ends without having been asked to ([`ServerOutput::CloseTransport`]),
///   call [`Server::handle_closed`].
/// - After **every** call, drain [`Server::poll_output`] until `None` and carry out each
///   output in order: outputs for one connection must keep their order, since a
///   `CloseTransport` follows the frames that must still be flushed before it.
/// - Then read [`Server::poll_timeout`] and call [`Server::handle_timeout`] once that
///   instant has passed (it may change after any call).
///
/// Instants only ever come in as arguments; they must not go backwards. An event about a
/// received message comes before the server's reaction to it; an event about an outcome
/// (`Connected`, `Rejected`, `Reconnected`, `SessionClosed`) after the frames that made it.
///
/// ```
/// use std::time::Instant;
/// use bytes::Bytes;
/// use diffusion_proto::{AllowAll, ConnectionId, CounterEntropy, Server, ServerConfig, ServerOutput, UpgradeRequest};
///
/// let now = Instant::now();
/// let mut server = Server::new(ServerConfig::default(), Box::new(AllowAll), Box::new(CounterEntropy::default()));
/// let conn = ConnectionId(1);
/// server.accept(now, conn, &UpgradeRequest::from_uri("/diffusion?v=25&ty=PY&ca=8&r=60000"));
/// server.handle_frame(now, conn, Bytes::from_static(&[0x00, 0x38, 0x05])); // USER_PING, cid 5
/// let frames: Vec<Bytes> = std::iter::from_fn(|| server.poll_output())
///     .filter_map(|o| match o {
///         ServerOutput::Transmit { frame, .. } => Some(frame),
///         _ => None,
///     })
///     .collect();
/// assert_eq!(frames[0].len(), 55); // the connection response, code 100
/// assert_eq!(&frames[1][..], &[0x06, 0x05]); // the ping's answer
/// assert_eq!(server.poll_timeout(), Some(now + server.config().ping_period));
/// ```
///
/// # Decisions where the real server's behaviour is unknown
///
/// - Parameters are read from the query first, headers second (SPEC §2.3). A path whose last
///   segment is not `diffusion`, and malformed parameters, are refused with 115 in the
///   3-byte form (Q9), version byte from `v` if it is one we speak, else 25.
/// - An unsupported `v` is answered `23 <version> 66` (102 DOWNGRADE, 3 bytes), the version
///   byte 29 when `v` is above 29 and 25 otherwise (Q1). The 6.12 clients fail on the
///   version byte either way.
/// - Every server-initiated close (close request, unresponsive client, oversize or
///   undecodable frame, [`Server::abort`]) is ABORT `1c` then a TCP close without a
///   WebSocket close frame (Q8, Q16), so the client does not reconnect. A takeover,
///   [`Server::drop_connection`] and [`Server::forget_session`] close without ABORT.
/// - A transport that ends without CLOSE_REQUEST leaves the session detached for the client's
///   `r` (Q6).
/// - SYSTEM_PINGs are sent every period whether or not the session is idle (Q4), with the
///   session's cid counter (1, 2, 3, …, shared with [`Server::send_request`]). When a ping
///   falls due while `unanswered_pings_limit` pings in a row are unanswered, the session is
///   closed instead ("client unresponsive"): with the defaults, 3 periods after the last
///   answer.
/// - Reconnection (Q3): S = client messages received + 1. `cs ≠ 0` and `cs > S` → 118 (the
///   session is closed). Otherwise 105 with S in bytes 51..55, followed by the buffered
///   messages numbered after `ss`; if they are no longer all buffered, or `ss` is beyond
///   what was sent, 106 with the maximum message size, and both sequences and the buffer
///   start again from 0, as the JavaScript client does on 106.
/// - Requests with cid 0 are one-way and never answered (Q5).
/// - Built-in services: USER_PING (56); GET_OWN_SESSION_PROPERTIES (202), answered `01` +
///   map of `$SessionId`, `$Principal`, `$ClientType` and the proposed properties;
///   CHANGE_PRINCIPAL (5) and RE_AUTHENTICATE (203), checked with the [`Authenticator`] and
///   answered with a boolean; the topic services (below). Any other service, unless
///   registered, gets SERVICE_ERROR reason 100 "Unknown service: N".
///
/// # Topics (TOPICS.md §9), and the decisions where the real server is unknown
///
/// One topic tree is shared by all sessions; [`Server::add_topic`], [`Server::set_topic`],
/// [`Server::remove_topics`] act on it as client requests do, and [`Server::topics`],
/// [`Server::subscriptions`] and [`Server::topic_stats`] show it. Topic ids start at 1, are
/// unique per server and never reused, and a topic has the same id in every session, so each
/// notification, value and delta frame is encoded once and shared by its subscribers. Limits:
/// [`ServerConfig::max_topics`], [`ServerConfig::max_topic_value_size`],
/// [`ServerConfig::max_selectors_per_session`].
///
/// - Error reasons (Q1): invalid path (empty, leading or trailing `/`, empty segment) 9005;
///   another specification at the path 9010 (not the legacy 9004); missing topic 503; update
///   of another type 500; unsatisfied constraint 9012, also for the constraints this server
///   cannot evaluate (locks: no session holds one here; partial JSON); TIME_SERIES and
///   UNKNOWN topics 9006 (RECORD_V2 values are kept as opaque bytes); the topic limit, or
///   running out of ids, 9007; a value over the limit 501; a session's selector limit 111; a
///   payload that does not decode, or a selector that does not parse, 106. Values are stored
///   as given, not checked against the type (`VALIDATE_VALUES` is not honoured).
/// - NOTIFY_SUBSCRIPTION and NOTIFY_UNSUBSCRIPTION are one-way, cid 0 (Q3); the Python
///   client's `0600` answers to them are ignored.
/// - Order (Q4): the requester's answer comes first, then the notifications, values and
///   unsubscriptions the request causes (also for TOPIC_REMOVAL, whose count is known first).
///   A SUBSCRIBE notifies newly selected topics in path order, each NOTIFY_SUBSCRIPTION
///   followed by the topic's value if it has one; an added topic is notified to each session
///   that selects it, in session id order.
/// - Reconnection (Q2): after 105 nothing is notified again (the recovery buffer re-sends
///   what was lost); after 106 every topic the session holds is notified again with its
///   current value, in topic id order. Selectors and subscriptions are kept across both.
/// - Scopes (Q5): each scope is an independent set of selectors; a session holds a topic
///   while a selector of any scope selects it, and is notified of it once. Protocol 25 has
///   only the default scope `""`.
/// - UNSUBSCRIBE removes exactly that selector (compared in its normalized form, `a` = `>a`)
///   from that scope; the topics it selected that no remaining selector selects are
///   unsubscribed with reason 0. A selector the session does not hold changes nothing.
/// - ADD_AND_SET_TOPIC evaluates its constraint against the path first (so "no topic" fails
///   with 9012 whatever topic is there), then compares specifications (9010).
/// - Fetch (Q6): results in path order, filtered by the type bit set and the path range
///   (byte-wise comparison of paths); a positive limit takes the first n, a negative one the
///   last n, 0 none; the answer is also cut before its estimated size (path + value + 16
///   bytes per result) passes the request's maximum result size or `max_message_size`;
///   `has more` is true whenever matching topics were left out. The deep-branch parameters
///   and "unpublished delayed topics" are ignored. Sizes (protocol 28 and later, when asked)
///   are the value's length, none for a topic without a value.
/// - Deltas (Q9): an update reaches subscribers as TOPIC_DELTA when
///   [`ServerConfig::topic_deltas`] is on, the type has binary deltas (not INT64 or DOUBLE),
///   `PUBLISH_VALUES_ONLY` and `DONT_RETAIN_VALUE` are not `true`, the topic had a value, and
///   the delta (common prefix and suffix kept, the middle inserted) is shorter than the value;
///   it is computed once per update for all subscribers, who all hold the previous value.
///   An unchanged value sends nothing (never the no-change delta `f6`).
pub struct Server {
    config: ServerConfig,
    authenticator: Box<dyn Authenticator + Send>,
    entropy: Box<dyn Entropy + Send>,
    // Ordered maps keep iteration, and so output order, deterministic (and need no
    // randomly seeded hasher).
    sessions: BTreeMap<SessionId, Session>,
    tokens: BTreeMap<[u8; 24], SessionId>,
    connections: BTreeMap<ConnectionId, SessionId>,
    services: BTreeSet<ServiceId>,
    outputs: VecDeque<ServerOutput>,
    /// Counters of closed sessions, and of the server itself.
    stats: ServerStats,
    /// The topics all sessions share (each session's subscriptions are in its `Session`).
    topics: TopicTree,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("config", &self.config)
            .field("sessions", &self.sessions.len())
            .field("connections", &self.connections.len())
            .field("registered_services", &self.services)
            .field("queued_outputs", &self.outputs.len())
            .field("topics", &self.topics.stats().topics)
            .finish()
    }
}

impl Server {
    /// A server with no sessions.
    pub fn new(
        config: ServerConfig,
        authenticator: Box<dyn Authenticator + Send>,
        entropy: Box<dyn Entropy + Send>,
    ) -> Self {
        Server {
            config,
            authenticator,
            entropy,
            sessions: BTreeMap::new(),
            tokens: BTreeMap::new(),
            connections: BTreeMap::new(),
            services: BTreeSet::new(),
            outputs: VecDeque::new(),
            stats: ServerStats::default(),
            topics: TopicTree::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Counters since the server started: sessions opened, rejections, and every
    /// session's counters added up (closed sessions included).
    pub fn stats(&self) -> ServerStats {
        let mut stats = self.stats;
        for session in self.sessions.values() {
            stats.sessions += session.info.stats;
        }
        stats
    }

    /// The next thing to do, in order. Drain it until `None` after every call (see the
    /// polling contract above).
    #[must_use]
    pub fn poll_output(&mut self) -> Option<ServerOutput> {
        self.outputs.pop_front()
    }

    /// Sends a request to the client of `conn` and tracks its answer
    /// ([`ServerEventKind::ResponseReceived`]). Returns the conversation id, or `None` when
    /// `conn` has no session.
    pub fn send_request(
        &mut self,
        now: Instant,
        conn: ConnectionId,
        service: ServiceId,
        payload: Bytes,
    ) -> Option<i64> {
        let id = *self.connections.get(&conn)?;
        let session = self.sessions.get_mut(&id)?;
        let cid = session.requests.start(service, now);
        let frame = Message::ServiceRequest {
            service,
            cid,
            payload,
        }
        .to_bytes();
        session.push_numbered(frame, &mut self.outputs);
        Some(cid)
    }

    /// Sends any message to the client of `conn` (a topic value, an answer to a registered
    /// service, a scripted frame). It is numbered and kept for recovery, except ABORT, which
    /// is sent bare and does not close anything (see [`Server::abort`]). False when `conn`
    /// has no session.
    pub fn send(&mut self, conn: ConnectionId, message: Message) -> bool {
        match self.connections.get(&conn) {
            Some(&id) => self.send_to_session(id, message),
            None => false,
        }
    }

    /// Like [`Server::send`], addressed by session: while detached, the message is only
    /// numbered and buffered, to be re-sent after a reconnection (ABORT is then dropped).
    /// False when the session is unknown.
    pub fn send_to_session(&mut self, id: SessionId, message: Message) -> bool {
        let Some(session) = self.sessions.get_mut(&id) else {
            return false;
        };
        if message == Message::Abort {
            if let Link::Attached(conn) = session.link {
                session.info.stats.aborts_sent += 1;
                self.outputs.push_back(ServerOutput::Transmit {
                    conn,
                    frame: message.to_bytes(),
                });
            }
            return true;
        }
        session.push_numbered(message.to_bytes(), &mut self.outputs);
        true
    }

    /// Delegates requests to `service` to the caller ([`ServerEventKind::ServiceRequest`])
    /// instead of the built-in handling or the "unknown service" error. USER_PING stays
    /// built in.
    pub fn register_service(&mut self, service: ServiceId) {
        self.services.insert(service);
    }

    /// Undoes [`Server::register_service`].
    pub fn deregister_service(&mut self, service: ServiceId) {
        self.services.remove(&service);
    }

    /// The session attached to `conn`.
    pub fn session_of(&self, conn: ConnectionId) -> Option<SessionId> {
        self.connections.get(&conn).copied()
    }

    /// One session, attached or detached.
    pub fn session(&self, id: SessionId) -> Option<&SessionInfo> {
        self.sessions.get(&id).map(|s| &s.info)
    }

    /// Every session the server still knows, attached or detached, in id order.
    pub fn sessions(&self) -> impl Iterator<Item = &SessionInfo> + '_ {
        self.sessions.values().map(|s| &s.info)
    }

    fn event(&mut self, event: ServerEvent) {
        self.outputs.push_back(ServerOutput::Event(event));
    }

    /// Sends a numbered reply to the session's client.
    fn reply(&mut self, id: SessionId, message: Message) {
        if let Some(session) = self.sessions.get_mut(&id) {
            session.push_numbered(message.to_bytes(), &mut self.outputs);
        }
    }
}
