//! The server side of the session protocol (SPEC §3, §6–§8, §11–§13, §17): connection
//! responses, system and user pings, close and reconnection, for loopback test servers.
//!
//! One [`Server`] value manages every connection and session (like quinn-proto's
//! `Endpoint`), so that a reconnection can take a session over from a connection the server
//! has not yet noticed is dead. It is sans-IO like [`crate::ClientSession`]: instants come in
//! as arguments, randomness through [`Entropy`], and all work comes out of
//! [`Server::poll_output`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::{Bytes, BytesMut};

use crate::credentials::Credentials;
use crate::message::{ErrorReason, Message, MessageError, ServiceId};
use crate::properties::SessionProperties;
use crate::request::{ConnectionParams, ParamError, ParameterCarrier, ReconnectParams};
use crate::response::{
    ConnectionResponse, ProtocolVersion, ResponseCode, SessionGrant, SessionId, SessionToken,
};
use crate::wire::{self, Reader};

/// The connection parameter names (SPEC §2.3). Only headers with these names are read, so
/// that an unrelated header with a non-UTF-8 value cannot fail a request.
const PARAMETER_NAMES: [&str; 10] = [
    "v", "ty", "ca", "r", "username", "password", "sp", "c", "cs", "ss",
];

/// Most server requests (system pings included) awaiting an answer per session. Beyond it the
/// oldest is forgotten, so a client that never answers cannot grow the table without bound.
const MAX_OUTSTANDING: usize = 1024;

/// How the server behaves; [`ServerConfig::default`] matches every real capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Interval between SYSTEM_PINGs to each attached session, also advertised in the
    /// connection response. Default 90 s; [`Duration::ZERO`] disables pings (and advertises 0).
    pub ping_period: Duration,
    /// Advertised in bytes 51..55 of 100/106 responses and enforced on every inbound frame:
    /// a longer frame closes the session. Default 10 000 000.
    pub max_message_size: u32,
    /// The server part of every session id.
    pub server_id: u64,
    /// Consecutive unanswered SYSTEM_PINGs after which the session is closed as
    /// "client unresponsive" when the next ping falls due. Default 2; 0 never closes.
    pub unanswered_pings_limit: u32,
    /// How many server→client messages each session keeps for re-sending after a
    /// reconnection. Default 1024; 0 keeps none (any loss then answers 106).
    pub recovery_buffer: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            ping_period: Duration::from_secs(90),
            max_message_size: 10_000_000,
            server_id: 0x1122_3344_5566_7788,
            unanswered_pings_limit: 2,
            recovery_buffer: 1024,
        }
    }
}

/// Identifies one transport (WebSocket connection); chosen by the adapter, never reused
/// while the server still knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn#{}", self.0)
    }
}

/// The HTTP upgrade request of a new WebSocket connection, as far as the protocol needs it.
///
/// `Debug` shows the path and the header names only: the query and the header values carry
/// the credentials and the session token.
#[derive(Clone, Default)]
pub struct UpgradeRequest<'a> {
    /// The request path, e.g. `/diffusion`. A `?query` or a `ws://host` prefix left in it is
    /// tolerated (the query then counts when `query` is `None`).
    pub path: &'a str,
    /// The query string, without the `?`.
    pub query: Option<&'a str>,
    /// Request headers (any case, any set; only the connection parameters are read).
    pub headers: Vec<(&'a str, &'a [u8])>,
}

impl<'a> UpgradeRequest<'a> {
    /// A request for `uri` (path, or full URI, with an optional `?query`) and no headers.
    pub fn from_uri(uri: &'a str) -> Self {
        let (path, query) = match uri.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (uri, None),
        };
        UpgradeRequest {
            path,
            query,
            headers: Vec::new(),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'a str, value: &'a [u8]) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The path without a leftover query, and the query from either place.
    fn split(&self) -> (&'a str, Option<&'a str>) {
        match self.path.split_once('?') {
            Some((path, q)) => (path, self.query.or(Some(q))),
            None => (self.path, self.query),
        }
    }
}

impl fmt::Debug for UpgradeRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (path, query) = self.split();
        f.debug_struct("UpgradeRequest")
            .field("path", &path)
            .field("query", &query.map(|q| format!("<{} bytes redacted>", q.len())))
            .field(
                "headers",
                &self.headers.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Decides who may open a session, and who a session may become (CHANGE_PRINCIPAL,
/// RE_AUTHENTICATE). Reconnections are not authenticated again.
pub trait Authenticator {
    /// `Ok` admits; `Err(code)` refuses with that response code (usually 116). A code that
    /// opens a session (100, 105, 106) is sent as 116 instead, since a 3-byte rejection
    /// cannot carry a session.
    fn authenticate(&mut self, params: &ConnectionParams) -> Result<(), ResponseCode>;
}

impl<F> Authenticator for F
where
    F: FnMut(&ConnectionParams) -> Result<(), ResponseCode>,
{
    fn authenticate(&mut self, params: &ConnectionParams) -> Result<(), ResponseCode> {
        self(params)
    }
}

/// Admits every connection, whatever its principal and credentials.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl Authenticator for AllowAll {
    fn authenticate(&mut self, _: &ConnectionParams) -> Result<(), ResponseCode> {
        Ok(())
    }
}

/// Principals with plain passwords; anonymous sessions are admitted unless
/// [`UserTable::deny_anonymous`] was called. `Debug` lists the principals only.
#[derive(Clone, Default)]
pub struct UserTable {
    users: BTreeMap<String, String>,
    deny_anonymous: bool,
}

impl UserTable {
    /// No users; anonymous sessions admitted.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) `principal` with `password`. An empty password matches both no
    /// credentials and an empty plain password, as the two clients send those differently.
    pub fn with_user(mut self, principal: impl Into<String>, password: impl Into<String>) -> Self {
        self.users.insert(principal.into(), password.into());
        self
    }

    /// Refuses sessions without a principal (116).
    pub fn deny_anonymous(mut self) -> Self {
        self.deny_anonymous = true;
        self
    }
}

impl fmt::Debug for UserTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserTable")
            .field("principals", &self.users.keys().collect::<Vec<_>>())
            .field("deny_anonymous", &self.deny_anonymous)
            .finish()
    }
}

impl Authenticator for UserTable {
    fn authenticate(&mut self, params: &ConnectionParams) -> Result<(), ResponseCode> {
        let admitted = match &params.principal {
            None => !self.deny_anonymous,
            Some(principal) => self
                .users
                .get(principal)
                .is_some_and(|password| match &params.credentials {
                    Credentials::Password(given) => given == password,
                    Credentials::None => password.is_empty(),
                    Credentials::Custom(_) => false,
                }),
        };
        admitted.then_some(()).ok_or(ResponseCode::AuthenticationFailed)
    }
}

/// The server's only source of randomness: session tokens and session id value parts.
pub trait Entropy {
    /// Fills `buf` with unpredictable bytes.
    fn fill(&mut self, buf: &mut [u8]);
}

impl<F: FnMut(&mut [u8])> Entropy for F {
    fn fill(&mut self, buf: &mut [u8]) {
        self(buf)
    }
}

/// A deterministic [`Entropy`] for tests and loopback servers: each call fills the buffer
/// with a counter (big-endian, repeated). Tokens from it are guessable: never use it where
/// that matters.
#[derive(Debug, Clone, Default)]
pub struct CounterEntropy {
    counter: u64,
}

impl Entropy for CounterEntropy {
    fn fill(&mut self, buf: &mut [u8]) {
        self.counter = self.counter.wrapping_add(1);
        let bytes = self.counter.to_be_bytes();
        // Filled from the end, so an 8-byte buffer reads back as the counter itself.
        for (i, b) in buf.iter_mut().rev().enumerate() {
            *b = bytes[7 - i % 8];
        }
    }
}

/// What [`Server::accept`] decided (the connection response itself is queued as output).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptOutcome {
    /// A session was opened (100) or resumed (105, 106) on this connection.
    Accepted {
        /// The session; its text form is what real servers put in `Set-Cookie: session=`.
        session_id: SessionId,
        /// 100, 105 or 106.
        code: ResponseCode,
        /// The connection the session was taken over from (already told to close).
        replaced: Option<ConnectionId>,
    },
    /// The 3-byte rejection was queued, followed by [`ServerOutput::CloseTransport`].
    Rejected {
        /// The response code sent.
        code: ResponseCode,
    },
}

/// What the adapter must do, in order.
///
/// `Debug` shows frames in hex (the first 64 bytes), with the session token of a
/// connection response redacted.
#[derive(Clone, PartialEq, Eq)]
pub enum ServerOutput {
    /// Send `frame` as one binary WebSocket message on `conn`.
    Transmit {
        /// Where.
        conn: ConnectionId,
        /// The whole message.
        frame: Bytes,
    },
    /// Flush what was queued for `conn`, then drop its TCP connection **without** a
    /// WebSocket close frame, as the real server does (SPEC §3.4, §8). The server has
    /// forgotten `conn`: later frames or closure reports for it are ignored.
    CloseTransport {
        /// Which.
        conn: ConnectionId,
    },
    /// Something a test or a log wants to know.
    Event(ServerEvent),
}

impl fmt::Debug for ServerOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerOutput::Transmit { conn, frame } => f
                .debug_struct("Transmit")
                .field("conn", conn)
                .field("frame", &format_args!("{}", FrameHex(frame)))
                .finish(),
            ServerOutput::CloseTransport { conn } => {
                f.debug_struct("CloseTransport").field("conn", conn).finish()
            }
            ServerOutput::Event(event) => f.debug_tuple("Event").field(event).finish(),
        }
    }
}

/// A frame in hex for `Debug`: no message type we send starts with `#`, so a frame that does
/// is a connection response, whose bytes 19..43 are the token.
struct FrameHex<'a>(&'a [u8]);

impl fmt::Display for FrameHex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 64;
        const TOKEN: std::ops::Range<usize> = 19..43;
        let is_response = self.0.first() == Some(&crate::response::PROTOCOL_BYTE);
        for (i, b) in self.0.iter().take(SHOWN).enumerate() {
            if is_response && TOKEN.contains(&i) {
                if i == TOKEN.start {
                    f.write_str("<token>")?;
                }
                continue;
            }
            write!(f, "{b:02x}")?;
        }
        if self.0.len() > SHOWN {
            write!(f, "… ({} bytes)", self.0.len())?;
        }
        Ok(())
    }
}

/// What happened, for tests and logs. Never carries a token, password or credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// A new session was opened (response 100).
    Connected {
        /// The connection.
        conn: ConnectionId,
        /// The new session.
        session_id: SessionId,
        /// `username`, `None` when anonymous.
        principal: Option<String>,
        /// `sp`, as proposed.
        properties: SessionProperties,
        /// The version requested and answered.
        version: ProtocolVersion,
        /// Where `v` was found: the query or the headers.
        carrier: ParameterCarrier,
        /// `ty`.
        client_type: String,
        /// `ca`.
        capabilities: u8,
        /// `r`: how long the session is kept after its connection is lost.
        reconnect_timeout: Duration,
    },
    /// A connection request was refused with a 3-byte response.
    Rejected {
        /// The connection (already told to close).
        conn: ConnectionId,
        /// The code sent.
        code: ResponseCode,
        /// Why, for logs.
        reason: String,
    },
    /// A session was resumed on a new connection (105 or 106).
    Reconnected {
        /// The new connection.
        conn: ConnectionId,
        /// The session.
        session_id: SessionId,
        /// 105, or 106 when the messages the client missed were no longer buffered.
        code: ResponseCode,
        /// How many buffered messages were sent again after the response.
        resent: usize,
        /// The connection the session was taken over from, if it was still attached.
        replaced: Option<ConnectionId>,
    },
    /// A client message the server does not handle itself: topic messages, stray answers,
    /// messages of the wrong direction, one-way requests of known services.
    MessageReceived {
        /// The connection.
        conn: ConnectionId,
        /// The session.
        session_id: SessionId,
        /// The message.
        message: Message,
    },
    /// A request to a service registered with [`Server::register_service`]: answer it with
    /// [`Server::send`] (`ServiceResponse` or `ServiceError` with the same cid) unless the
    /// cid is 0.
    ServiceRequest {
        /// The connection.
        conn: ConnectionId,
        /// The session.
        session_id: SessionId,
        /// Which service.
        service: ServiceId,
        /// The client's conversation id.
        cid: i64,
        /// The request payload.
        payload: Bytes,
    },
    /// A request to a service the server does not provide; it was answered with
    /// SERVICE_ERROR reason 100 "Unknown service: N" (unless its cid was 0).
    UnknownService {
        /// The connection.
        conn: ConnectionId,
        /// The session.
        session_id: SessionId,
        /// Which service.
        service: ServiceId,
        /// The client's conversation id.
        cid: i64,
    },
    /// The client answered a SYSTEM_PING.
    SystemPingAnswered {
        /// The connection.
        conn: ConnectionId,
        /// The session.
        session_id: SessionId,
        /// The ping's conversation id.
        cid: i64,
        /// From sending the ping to receiving the answer.
        rtt: Duration,
    },
    /// The client answered a request sent with [`Server::send_request`] (or answered a
    /// SYSTEM_PING with a SERVICE_ERROR).
    ResponseReceived {
        /// The connection.
        conn: ConnectionId,
        /// The session.
        session_id: SessionId,
        /// The request's conversation id.
        cid: i64,
        /// The service requested.
        service: ServiceId,
        /// From sending the request to receiving the answer.
        rtt: Duration,
        /// The `ServiceResponse` or `ServiceError`.
        response: Message,
    },
    /// CHANGE_PRINCIPAL or RE_AUTHENTICATE succeeded.
    PrincipalChanged {
        /// The connection.
        conn: ConnectionId,
        /// The session.
        session_id: SessionId,
        /// The new principal, `None` for anonymous.
        principal: Option<String>,
    },
    /// The client sent CLOSE_REQUEST; ABORT and a transport close follow.
    CloseRequested {
        /// The connection.
        conn: ConnectionId,
        /// The session.
        session_id: SessionId,
    },
    /// The session lost its connection and waits for a reconnection.
    Detached {
        /// The connection that was lost.
        conn: ConnectionId,
        /// The session.
        session_id: SessionId,
        /// When the session is discarded without a reconnection (`None`: never, `r` overflowed).
        expires: Option<Instant>,
    },
    /// The client broke the protocol; the session is closed (ABORT, then transport close).
    ProtocolError {
        /// The connection.
        conn: ConnectionId,
        /// The session.
        session_id: SessionId,
        /// What was wrong.
        error: String,
    },
    /// The session is gone; a reconnection to it gets 117.
    SessionClosed {
        /// The session.
        session_id: SessionId,
        /// The connection closed with it, if it was attached.
        conn: Option<ConnectionId>,
        /// Why.
        reason: ServerCloseReason,
    },
}

/// Why the server closed a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerCloseReason {
    /// The client sent CLOSE_REQUEST.
    ClientRequested,
    /// Too many SYSTEM_PINGs in a row went unanswered.
    ClientUnresponsive,
    /// A client message was longer than the maximum message size.
    MessageTooLarge {
        /// Its length.
        size: usize,
        /// The limit.
        limit: u32,
    },
    /// A client frame could not be decoded.
    ProtocolError(String),
    /// The connection was lost and the client's `r` was 0.
    ConnectionLost,
    /// The connection was lost and no reconnection came within `r`.
    ReconnectTimeout,
    /// A reconnection was refused with 118: the client no longer held messages we lacked.
    ReconnectionFailed,
    /// [`Server::abort`].
    Aborted,
    /// [`Server::forget_session`].
    Forgotten,
}

impl fmt::Display for ServerCloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerCloseReason::ClientRequested => f.write_str("closed at the client's request"),
            ServerCloseReason::ClientUnresponsive => {
                f.write_str("client unresponsive: system pings went unanswered")
            }
            ServerCloseReason::MessageTooLarge { size, limit } => {
                write!(f, "message too large: {size} bytes, the limit is {limit}")
            }
            ServerCloseReason::ProtocolError(e) => write!(f, "protocol error: {e}"),
            ServerCloseReason::ConnectionLost => {
                f.write_str("connection lost and the client asked for no reconnection (r=0)")
            }
            ServerCloseReason::ReconnectTimeout => {
                f.write_str("connection lost and no reconnection within the client's timeout")
            }
            ServerCloseReason::ReconnectionFailed => {
                f.write_str("reconnection refused: messages were lost (118)")
            }
            ServerCloseReason::Aborted => f.write_str("aborted by the server"),
            ServerCloseReason::Forgotten => f.write_str("forgotten by the server"),
        }
    }
}

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
enum Link {
    Attached(ConnectionId),
    /// Waiting for a reconnection until `expires` (`None`: `r` overflowed `Instant`).
    Detached {
        expires: Option<Instant>,
    },
}

#[derive(Debug, Clone, Copy)]
struct Outstanding {
    service: ServiceId,
    sent_at: Instant,
}

#[derive(Debug)]
struct Session {
    info: SessionInfo,
    token: SessionToken,
    link: Link,
    /// Numbered frames kept for re-sending: contiguous, ending at `server_sequence`.
    recovery: VecDeque<(u64, Bytes)>,
    next_cid: i64,
    outstanding: BTreeMap<i64, Outstanding>,
    /// SYSTEM_PINGs sent since the client last answered one.
    unanswered: u32,
    next_ping: Option<Instant>,
}

impl Session {
    fn deadline(&self) -> Option<Instant> {
        match self.link {
            Link::Attached(_) => self.next_ping,
            Link::Detached { expires } => expires,
        }
    }

    /// A fresh conversation id; 1, 2, 3, … and never 0, which means one-way.
    fn alloc_cid(&mut self) -> i64 {
        let cid = self.next_cid;
        self.next_cid = cid.checked_add(1).unwrap_or(1);
        cid
    }

    fn track(&mut self, cid: i64, service: ServiceId, now: Instant) {
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
    fn push_numbered(&mut self, frame: Bytes, keep: usize, out: &mut VecDeque<ServerOutput>) {
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
    fn frames_after(&self, ss: i64) -> Option<Vec<Bytes>> {
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
///   answered with a boolean. Any other service, unless registered, gets SERVICE_ERROR
///   reason 100 "Unknown service: N".
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
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("config", &self.config)
            .field("sessions", &self.sessions.len())
            .field("connections", &self.connections.len())
            .field("registered_services", &self.services)
            .field("queued_outputs", &self.outputs.len())
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
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

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

    /// One WebSocket message received on `conn`. Frames of connections the server does not
    /// know (closed, rejected, taken over) are ignored.
    pub fn handle_frame(&mut self, now: Instant, conn: ConnectionId, frame: Bytes) {
        let Some(&id) = self.connections.get(&conn) else {
            return;
        };
        let limit = self.config.max_message_size;
        if frame.len() > usize::try_from(limit).unwrap_or(usize::MAX) {
            let reason = ServerCloseReason::MessageTooLarge {
                size: frame.len(),
                limit,
            };
            self.event(ServerEvent::ProtocolError {
                conn,
                session_id: id,
                error: reason.to_string(),
            });
            self.close_session(id, reason, true);
            return;
        }
        let message = match Message::decode(&frame) {
            Ok(message) => Some(message),
            Err(MessageError::UnknownType { .. }) => None,
            Err(e) => {
                let error = e.to_string();
                self.event(ServerEvent::ProtocolError {
                    conn,
                    session_id: id,
                    error: error.clone(),
                });
                self.close_session(id, ServerCloseReason::ProtocolError(error), true);
                return;
            }
        };
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        // Every client message counts towards the recovery sequence, whatever its type.
        session.info.client_sequence = session.info.client_sequence.saturating_add(1);
        session.info.stats.messages_received += 1;
        match message {
            None => session.info.stats.ignored_messages += 1,
            Some(message) => self.dispatch(now, conn, id, message),
        }
    }

    /// The transport of `conn` ended without the server asking: its session is detached and
    /// kept for the client's `r` (closed at once when `r` is 0).
    pub fn handle_closed(&mut self, now: Instant, conn: ConnectionId) {
        if let Some(id) = self.connections.remove(&conn) {
            self.detach(now, id, conn);
        }
    }

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

    /// The next thing to do, in order.
    pub fn poll_output(&mut self) -> Option<ServerOutput> {
        self.outputs.pop_front()
    }

    /// Sends a request to the client of `conn` and tracks its answer
    /// ([`ServerEvent::ResponseReceived`]). Returns the conversation id, or `None` when
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
        let cid = session.alloc_cid();
        session.track(cid, service, now);
        let frame = Message::ServiceRequest {
            service,
            cid,
            payload,
        }
        .to_bytes();
        session.push_numbered(frame, self.config.recovery_buffer, &mut self.outputs);
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
                self.outputs.push_back(ServerOutput::Transmit {
                    conn,
                    frame: message.to_bytes(),
                });
            }
            return true;
        }
        session.push_numbered(message.to_bytes(), self.config.recovery_buffer, &mut self.outputs);
        true
    }

    /// Delegates requests to `service` to the caller ([`ServerEvent::ServiceRequest`])
    /// instead of the built-in handling or the "unknown service" error. USER_PING stays
    /// built in.
    pub fn register_service(&mut self, service: ServiceId) {
        self.services.insert(service);
    }

    /// Undoes [`Server::register_service`].
    pub fn deregister_service(&mut self, service: ServiceId) {
        self.services.remove(&service);
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

    fn ping_deadline(&self, now: Instant) -> Option<Instant> {
        if self.config.ping_period.is_zero() {
            None
        } else {
            now.checked_add(self.config.ping_period)
        }
    }

    fn ping_period_ms(&self) -> i64 {
        i64::try_from(self.config.ping_period.as_millis()).unwrap_or(i64::MAX)
    }

    fn reject(
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

    /// A reconnection (`c` present): 117, 118, or resume with 105/106.
    fn reconnect(
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
        if let Link::Detached {
            expires: Some(expires),
        } = session.link
        {
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
        session.unanswered = 0;
        session.next_ping = next_ping;
        let (code, last_field, frames) = match resend {
            Some(frames) => (
                ResponseCode::Reconnected,
                u32::try_from(recovery_sequence).unwrap_or(u32::MAX),
                frames,
            ),
            None => {
                session.info.client_sequence = 0;
                session.info.server_sequence = 0;
                session.recovery.clear();
                session.outstanding.clear();
                (ResponseCode::ReconnectedWithMessageLoss, keep_max, Vec::new())
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
        self.event(ServerEvent::Reconnected {
            conn,
            session_id: id,
            code,
            resent,
            replaced,
        });
        AcceptOutcome::Accepted {
            session_id: id,
            code,
            replaced,
        }
    }

    fn detach(&mut self, now: Instant, id: SessionId, conn: ConnectionId) {
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        let timeout = session.info.reconnect_timeout;
        let expires = now.checked_add(timeout);
        session.link = Link::Detached { expires };
        session.info.connection = None;
        session.next_ping = None;
        self.event(ServerEvent::Detached {
            conn,
            session_id: id,
            expires,
        });
        if timeout.is_zero() {
            self.close_session(id, ServerCloseReason::ConnectionLost, false);
        }
    }

    /// Removes the session; when attached, sends ABORT if `abort`, then closes the transport.
    fn close_session(&mut self, id: SessionId, reason: ServerCloseReason, abort: bool) {
        let Some(session) = self.sessions.remove(&id) else {
            return;
        };
        self.tokens.remove(session.token.as_bytes());
        let conn = match session.link {
            Link::Attached(conn) => {
                self.connections.remove(&conn);
                if abort {
                    self.outputs.push_back(ServerOutput::Transmit {
                        conn,
                        frame: Message::Abort.to_bytes(),
                    });
                }
                self.outputs.push_back(ServerOutput::CloseTransport { conn });
                Some(conn)
            }
            Link::Detached { .. } => None,
        };
        self.event(ServerEvent::SessionClosed {
            session_id: id,
            conn,
            reason,
        });
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

    /// Sends a numbered reply to the session's client.
    fn reply(&mut self, id: SessionId, message: Message) {
        if let Some(session) = self.sessions.get_mut(&id) {
            session.push_numbered(message.to_bytes(), self.config.recovery_buffer, &mut self.outputs);
        }
    }

    fn dispatch(&mut self, now: Instant, conn: ConnectionId, id: SessionId, message: Message) {
        match message {
            Message::ServiceRequest {
                service,
                cid,
                payload,
            } => self.service_request(conn, id, service, cid, payload),
            Message::ServiceResponse { cid, .. } | Message::ServiceError { cid, .. } => {
                self.answer(now, conn, id, cid, message)
            }
            Message::CloseRequest => {
                if let Some(session) = self.sessions.get_mut(&id) {
                    session.info.stats.close_requests += 1;
                }
                self.event(ServerEvent::CloseRequested { conn, session_id: id });
                self.close_session(id, ServerCloseReason::ClientRequested, true);
            }
            message => self.event(ServerEvent::MessageReceived {
                conn,
                session_id: id,
                message,
            }),
        }
    }

    fn service_request(
        &mut self,
        conn: ConnectionId,
        id: SessionId,
        service: ServiceId,
        cid: i64,
        payload: Bytes,
    ) {
        if service != ServiceId::USER_PING && self.services.contains(&service) {
            self.event(ServerEvent::ServiceRequest {
                conn,
                session_id: id,
                service,
                cid,
                payload,
            });
            return;
        }
        let reply = match service {
            ServiceId::USER_PING => {
                if cid != 0 {
                    if let Some(session) = self.sessions.get_mut(&id) {
                        session.info.stats.user_pings_answered += 1;
                    }
                }
                Message::ServiceResponse {
                    cid,
                    payload: Bytes::new(),
                }
            }
            ServiceId::GET_OWN_SESSION_PROPERTIES => Message::ServiceResponse {
                cid,
                payload: self.properties_payload(id),
            },
            ServiceId::CHANGE_PRINCIPAL | ServiceId::RE_AUTHENTICATE => {
                self.change_principal(conn, id, service, cid, &payload)
            }
            _ => {
                if let Some(session) = self.sessions.get_mut(&id) {
                    session.info.stats.unknown_services += 1;
                }
                self.event(ServerEvent::UnknownService {
                    conn,
                    session_id: id,
                    service,
                    cid,
                });
                Message::ServiceError {
                    cid,
                    description: format!("Unknown service: {}", service.0),
                    reason: ErrorReason::COMMUNICATION_FAILURE,
                }
            }
        };
        // cid 0 is one-way: the JavaScript client does not answer it either.
        if cid != 0 {
            self.reply(id, reply);
        }
    }

    /// `01` + map: the fixed properties a session always has, then the proposed ones.
    fn properties_payload(&self, id: SessionId) -> Bytes {
        let mut out = BytesMut::new();
        let Some(session) = self.sessions.get(&id) else {
            wire::put_bool(&mut out, false);
            return out.freeze();
        };
        let info = &session.info;
        let id_text = id.to_string();
        let fixed = [
            ("$SessionId", id_text.as_str()),
            ("$Principal", info.principal.as_deref().unwrap_or_default()),
            ("$ClientType", info.client_type.as_str()),
        ];
        let entries: Vec<(&str, &str)> = fixed
            .into_iter()
            .chain(
                info.properties
                    .iter()
                    .filter(|(k, _)| !fixed.iter().any(|(f, _)| f == k)),
            )
            .collect();
        wire::put_bool(&mut out, true);
        wire::put_string_map(&mut out, entries.into_iter());
        out.freeze()
    }

    /// CHANGE_PRINCIPAL / RE_AUTHENTICATE: the boolean answer, or INVALID_DATA.
    fn change_principal(
        &mut self,
        conn: ConnectionId,
        id: SessionId,
        service: ServiceId,
        cid: i64,
        payload: &[u8],
    ) -> Message {
        let request = match decode_principal_change(service, payload) {
            Ok(request) => request,
            Err(e) => {
                return Message::ServiceError {
                    cid,
                    description: format!("malformed {service} request: {e}"),
                    reason: ErrorReason::INVALID_DATA,
                }
            }
        };
        let Some(session) = self.sessions.get(&id) else {
            return Message::ServiceError {
                cid,
                description: "no such session".to_owned(),
                reason: ErrorReason::NO_SUCH_SESSION,
            };
        };
        let info = &session.info;
        let mut params = ConnectionParams::new(info.version);
        params.client_type = info.client_type.clone();
        params.capabilities = info.capabilities;
        params.reconnect_timeout_ms = u64::try_from(info.reconnect_timeout.as_millis()).unwrap_or(u64::MAX);
        params.principal = Some(request.principal).filter(|p| !p.is_empty());
        params.credentials = request.credentials;
        params.properties = info.properties.clone();
        for (k, v) in request.properties {
            params.properties.set(k, v);
        }
        let admitted = self.authenticator.authenticate(&params).is_ok();
        if admitted {
            if let Some(session) = self.sessions.get_mut(&id) {
                session.info.principal = params.principal.clone();
                session.info.properties = params.properties;
            }
            self.event(ServerEvent::PrincipalChanged {
                conn,
                session_id: id,
                principal: params.principal,
            });
        }
        let mut out = BytesMut::with_capacity(1);
        wire::put_bool(&mut out, admitted);
        Message::ServiceResponse {
            cid,
            payload: out.freeze(),
        }
    }

    /// A SERVICE_RESPONSE or SERVICE_ERROR from the client.
    fn answer(&mut self, now: Instant, conn: ConnectionId, id: SessionId, cid: i64, message: Message) {
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        let Some(request) = session.outstanding.remove(&cid) else {
            self.event(ServerEvent::MessageReceived {
                conn,
                session_id: id,
                message,
            });
            return;
        };
        let rtt = now.saturating_duration_since(request.sent_at);
        if request.service == ServiceId::SYSTEM_PING {
            // Any answer shows the client is alive.
            session.unanswered = 0;
            if matches!(message, Message::ServiceResponse { .. }) {
                session.info.stats.system_pings_answered += 1;
                self.event(ServerEvent::SystemPingAnswered {
                    conn,
                    session_id: id,
                    cid,
                    rtt,
                });
                return;
            }
        }
        self.event(ServerEvent::ResponseReceived {
            conn,
            session_id: id,
            cid,
            service: request.service,
            rtt,
            response: message,
        });
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

struct PrincipalChange {
    principal: String,
    credentials: Credentials,
    properties: Vec<(String, String)>,
}

fn decode_principal_change(service: ServiceId, payload: &[u8]) -> Result<PrincipalChange, String> {
    let mut r = Reader::new(payload);
    let principal = r.string().map_err(|e| e.to_string())?.to_owned();
    let credentials = Credentials::decode_raw(&mut r).map_err(|e| e.to_string())?;
    let properties = if service == ServiceId::RE_AUTHENTICATE {
        r.string_map().map_err(|e| e.to_string())?
    } else {
        Vec::new()
    };
    Ok(PrincipalChange {
        principal,
        credentials,
        properties,
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TOKEN_LEN: usize = 24;

    /// Fake entropy: each byte is the next value of a counter.
    #[derive(Default)]
    struct Ramp(u8);

    impl Entropy for Ramp {
        fn fill(&mut self, buf: &mut [u8]) {
            for b in buf {
                self.0 = self.0.wrapping_add(1);
                *b = self.0;
            }
        }
    }

    /// A simulated clock: a base instant plus offsets.
    struct Clock(Instant);

    impl Clock {
        fn new() -> Self {
            // The only clock read, in tests, to get a base; everything after is offsets.
            Clock(Instant::now())
        }
        fn ms(&self, ms: u64) -> Instant {
            self.0 + Duration::from_millis(ms)
        }
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn unhex(s: &str) -> Bytes {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect::<Vec<u8>>()
            .into()
    }

    fn users() -> UserTable {
        UserTable::new()
            .with_user("bob", "secret")
            .with_user("admin", "password")
    }

    fn server_with(config: ServerConfig) -> Server {
        Server::new(config, Box::new(users()), Box::<Ramp>::default())
    }

    fn server() -> Server {
        server_with(ServerConfig::default())
    }

    fn drain(server: &mut Server) -> Vec<ServerOutput> {
        std::iter::from_fn(|| server.poll_output()).collect()
    }

    /// Transmitted frames (hex) and closes, without events: `"tx:<conn>:<hex>"`, `"close:<conn>"`.
    fn wire_of(outputs: &[ServerOutput]) -> Vec<String> {
        outputs
            .iter()
            .filter_map(|o| match o {
                ServerOutput::Transmit { conn, frame } => Some(format!("tx:{}:{}", conn.0, hex(frame))),
                ServerOutput::CloseTransport { conn } => Some(format!("close:{}", conn.0)),
                ServerOutput::Event(_) => None,
            })
            .collect()
    }

    fn events_of(outputs: &[ServerOutput]) -> Vec<ServerEvent> {
        outputs
            .iter()
            .filter_map(|o| match o {
                ServerOutput::Event(e) => Some(e.clone()),
                _ => None,
            })
            .collect()
    }

    /// The Python client's first-connect headers (SPEC §2.3), anonymous.
    fn py_headers(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, Vec<u8>)> {
        let mut h: Vec<(&'static str, Vec<u8>)> = vec![
            ("Host", b"localhost:8080".to_vec()),
            ("v", b"25".to_vec()),
            ("ca", b"10".to_vec()),
            ("username", Vec::new()),
            ("r", b"60000".to_vec()),
            ("password", Vec::new()),
            ("ty", b"PY".to_vec()),
            ("sp", br#""$Environment","PYTHON_cpython_3.11.7""#.to_vec()),
        ];
        for (n, v) in extra {
            h.retain(|(name, _)| name != n);
            h.push((n, v.as_bytes().to_vec()));
        }
        h
    }

    fn request<'a>(
        path: &'a str,
        query: Option<&'a str>,
        headers: &'a [(&'static str, Vec<u8>)],
    ) -> UpgradeRequest<'a> {
        UpgradeRequest {
            path,
            query,
            headers: headers.iter().map(|(n, v)| (*n, v.as_slice())).collect(),
        }
    }

    /// Connects anonymously over headers on `conn`; returns the session id and the token.
    fn connect(server: &mut Server, now: Instant, conn: u64, r_ms: &'static str) -> (SessionId, String) {
        let headers = py_headers(&[("r", r_ms)]);
        let outcome = server.accept(now, ConnectionId(conn), &request("/diffusion", None, &headers));
        let AcceptOutcome::Accepted { session_id, .. } = outcome else {
            panic!("refused: {outcome:?}");
        };
        let out = drain(server);
        let ServerOutput::Transmit { frame, .. } = &out[0] else {
            panic!("{out:?}");
        };
        let token = String::from_utf8(frame[19..43].to_vec()).unwrap();
        (session_id, token)
    }

    fn reconnect(
        server: &mut Server,
        now: Instant,
        conn: u64,
        token: &str,
        cs: &str,
        ss: &str,
    ) -> (AcceptOutcome, Vec<ServerOutput>) {
        let headers: Vec<(&'static str, Vec<u8>)> = py_headers(&[])
            .into_iter()
            .chain([
                ("c", token.as_bytes().to_vec()),
                ("cs", cs.as_bytes().to_vec()),
                ("ss", ss.as_bytes().to_vec()),
            ])
            .collect();
        let outcome = server.accept(now, ConnectionId(conn), &request("/diffusion", None, &headers));
        (outcome, drain(server))
    }

    fn frame(server: &mut Server, now: Instant, conn: u64, hex_frame: &str) -> Vec<ServerOutput> {
        server.handle_frame(now, ConnectionId(conn), unhex(hex_frame));
        drain(server)
    }

    #[test]
    fn anonymous_accept_sends_the_55_byte_response() {
        let clock = Clock::new();
        let mut server = server();
        let headers = py_headers(&[]);
        let outcome = server.accept(
            clock.ms(0),
            ConnectionId(1),
            &request("/diffusion", None, &headers),
        );
        let out = drain(&mut server);
        let ServerOutput::Transmit { conn, frame } = &out[0] else {
            panic!("{out:?}");
        };
        assert_eq!(*conn, ConnectionId(1));
        assert_eq!(frame.len(), 55);
        assert_eq!(hex(&frame[..3]), "231964");
        assert_eq!(hex(&frame[3..11]), "1122334455667788");
        // Ramp entropy: the value part is bytes 1..=8, the token comes from bytes 9..=26.
        assert_eq!(hex(&frame[11..19]), "0102030405060708");
        let token = &frame[19..43];
        assert_eq!(token.len(), TOKEN_LEN);
        assert!(token
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/'));
        assert_eq!(hex(&frame[43..51]), "0000000000015f90"); // 90 000 ms
        assert_eq!(hex(&frame[51..55]), "00989680"); // 10 000 000
        let parsed = ConnectionResponse::parse(frame, ProtocolVersion::V25).unwrap();
        let ConnectionResponse::Accepted(grant) = parsed else {
            panic!()
        };
        let id = SessionId {
            server: 0x1122_3344_5566_7788,
            value: 0x0102_0304_0506_0708,
        };
        assert_eq!(grant.session_id, id);
        assert_eq!(
            outcome,
            AcceptOutcome::Accepted {
                session_id: id,
                code: ResponseCode::Ok,
                replaced: None
            }
        );
        let events = events_of(&out);
        let [ServerEvent::Connected {
            principal,
            properties,
            version,
            carrier,
            client_type,
            reconnect_timeout,
            ..
        }] = events.as_slice()
        else {
            panic!("{out:?}");
        };
        assert_eq!(*principal, None);
        assert_eq!(properties.get("$Environment"), Some("PYTHON_cpython_3.11.7"));
        assert_eq!(*version, ProtocolVersion::V25);
        assert_eq!(*carrier, ParameterCarrier::Headers);
        assert_eq!(client_type, "PY");
        assert_eq!(*reconnect_timeout, Duration::from_secs(60));
        assert_eq!(server.session_of(ConnectionId(1)), Some(id));
        assert_eq!(server.poll_timeout(), Some(clock.ms(90_000)));
    }

    #[test]
    fn rejected_credentials_get_exactly_231974_then_close() {
        let clock = Clock::new();
        let mut server = server();
        let headers = py_headers(&[("username", "bob"), ("password", "AQV3cm9uZw==")]);
        let outcome = server.accept(
            clock.ms(0),
            ConnectionId(7),
            &request("/diffusion", None, &headers),
        );
        assert_eq!(
            outcome,
            AcceptOutcome::Rejected {
                code: ResponseCode::AuthenticationFailed
            }
        );
        let out = drain(&mut server);
        assert_eq!(wire_of(&out), ["tx:7:231974", "close:7"]);
        assert!(matches!(
            events_of(&out).as_slice(),
            [ServerEvent::Rejected {
                code: ResponseCode::AuthenticationFailed,
                ..
            }]
        ));
        assert_eq!(server.sessions().count(), 0);
        assert_eq!(server.poll_timeout(), None);
        // Frames after the rejection are ignored.
        assert!(frame(&mut server, clock.ms(1), 7, "003801").is_empty());
    }

    #[test]
    fn python_headers_with_principal_and_properties() {
        // The LIVE `py_connect_ping_close` upgrade, with the Foo/"x y" properties of SPEC §2.3.
        let clock = Clock::new();
        let mut server = server();
        let headers = py_headers(&[
            ("username", "bob"),
            ("password", "AQZzZWNyZXQ="),
            (
                "sp",
                r#""Foo","bar","x y","1","$Environment","PYTHON_cpython_3.11.7""#,
            ),
        ]);
        server.accept(
            clock.ms(0),
            ConnectionId(1),
            &request("/diffusion", None, &headers),
        );
        let out = drain(&mut server);
        assert!(hex(match &out[0] {
            ServerOutput::Transmit { frame, .. } => frame,
            other => panic!("{other:?}"),
        })
        .starts_with("231964"));
        let info = server.sessions().next().unwrap();
        assert_eq!(info.principal.as_deref(), Some("bob"));
        assert_eq!(info.properties.get("x y"), Some("1"));
        assert_eq!(info.properties.get("Foo"), Some("bar"));
    }

    #[test]
    fn javascript_query_on_version_29() {
        // The LIVE `js_connect_ping_close` upgrade path.
        let clock = Clock::new();
        let mut server = server();
        let uri = "/diffusion?ty=WB&v=29&ca=10&r=60000&sp=%7B%22Foo%22%3A%22bar%22%2C%22x%20y%22%3A%221%22%2C%22%24Environment%22%3A%22NODE_linux_20.20.2%22%7D&username=bob&password=AQZzZWNyZXQ%3D";
        let outcome = server.accept(clock.ms(0), ConnectionId(2), &UpgradeRequest::from_uri(uri));
        assert!(matches!(
            outcome,
            AcceptOutcome::Accepted {
                code: ResponseCode::Ok,
                ..
            }
        ));
        let out = drain(&mut server);
        let ServerOutput::Transmit { frame, .. } = &out[0] else {
            panic!("{out:?}");
        };
        assert_eq!(frame.len(), 55);
        assert_eq!(hex(&frame[..3]), "231d64");
        let events = events_of(&out);
        let [ServerEvent::Connected {
            principal,
            properties,
            version,
            carrier,
            client_type,
            ..
        }] = events.as_slice()
        else {
            panic!("{out:?}");
        };
        assert_eq!(principal.as_deref(), Some("bob"));
        assert_eq!(properties.get("x y"), Some("1"));
        assert_eq!(properties.get("$Environment"), Some("NODE_linux_20.20.2"));
        assert_eq!(*version, ProtocolVersion::V29);
        assert_eq!(*carrier, ParameterCarrier::Query);
        assert_eq!(client_type, "WB");
        // The full URI a client builds is accepted too.
        let full = format!("ws://127.0.0.1:8080{uri}");
        let outcome = server.accept(clock.ms(0), ConnectionId(3), &UpgradeRequest::from_uri(&full));
        assert!(matches!(outcome, AcceptOutcome::Accepted { .. }));
    }

    #[test]
    fn bad_paths_versions_and_parameters_are_refused_in_three_bytes() {
        let clock = Clock::new();
        let mut server = server();
        let cases: [(&str, &str); 6] = [
            ("/other?v=25&ty=PY&ca=8&r=0", "tx:1:231973"),
            ("/diffusion?v=26&ty=PY", "tx:1:231966"),
            ("/diffusion?v=30&ty=WB", "tx:1:231d66"),
            ("/diffusion?v=abc", "tx:1:231973"),
            ("/diffusion?ty=PY", "tx:1:231973"),
            ("/diffusion?v=29&r=x", "tx:1:231d73"),
        ];
        for (uri, expected) in cases {
            server.accept(clock.ms(0), ConnectionId(1), &UpgradeRequest::from_uri(uri));
            let out = drain(&mut server);
            assert_eq!(wire_of(&out), [expected, "close:1"], "{uri}");
        }
        // A malformed password is refused without its value in the event.
        server.accept(
            clock.ms(0),
            ConnectionId(1),
            &UpgradeRequest::from_uri("/diffusion?v=25&username=u&password=hunter2%zz"),
        );
        let out = drain(&mut server);
        assert_eq!(wire_of(&out), ["tx:1:231973", "close:1"]);
        assert!(!format!("{out:?}").contains("hunter2"));
        // An unrelated non-UTF-8 header does not fail the request.
        let mut headers = py_headers(&[]);
        headers.push(("User-Agent", vec![0xff, 0xfe]));
        let outcome = server.accept(
            clock.ms(0),
            ConnectionId(2),
            &request("/diffusion/", None, &headers),
        );
        assert!(matches!(outcome, AcceptOutcome::Accepted { .. }));
    }

    #[test]
    fn user_ping_is_answered_with_the_same_cid() {
        let clock = Clock::new();
        let mut server = server();
        let (id, _) = connect(&mut server, clock.ms(0), 1, "60000");
        assert_eq!(
            wire_of(&frame(&mut server, clock.ms(5), 1, "003805")),
            ["tx:1:0605"]
        );
        assert_eq!(
            wire_of(&frame(&mut server, clock.ms(5), 1, "0038ac02")),
            ["tx:1:06ac02"]
        );
        // cid 0 is one-way.
        assert!(wire_of(&frame(&mut server, clock.ms(5), 1, "003800")).is_empty());
        let info = server.session(id).unwrap();
        assert_eq!(info.stats.user_pings_answered, 2);
        assert_eq!(info.client_sequence, 3);
        assert_eq!(info.server_sequence, 2);
    }

    #[test]
    fn system_ping_after_the_period_and_its_answer_is_counted() {
        let clock = Clock::new();
        let mut server = server();
        let (id, _) = connect(&mut server, clock.ms(0), 1, "60000");
        server.handle_timeout(clock.ms(89_999));
        assert!(drain(&mut server).is_empty());
        server.handle_timeout(clock.ms(90_000));
        assert_eq!(wire_of(&drain(&mut server)), ["tx:1:003701"]);
        assert_eq!(server.poll_timeout(), Some(clock.ms(180_000)));
        let out = frame(&mut server, clock.ms(90_003), 1, "0601");
        assert_eq!(
            events_of(&out),
            [ServerEvent::SystemPingAnswered {
                conn: ConnectionId(1),
                session_id: id,
                cid: 1,
                rtt: Duration::from_millis(3)
            }]
        );
        server.handle_timeout(clock.ms(180_000));
        assert_eq!(wire_of(&drain(&mut server)), ["tx:1:003702"]);
        let stats = server.session(id).unwrap().stats;
        assert_eq!((stats.system_pings_sent, stats.system_pings_answered), (2, 1));
    }

    #[test]
    fn unanswered_pings_close_the_session() {
        let clock = Clock::new();
        let mut server = server_with(ServerConfig {
            ping_period: Duration::from_secs(1),
            ..ServerConfig::default()
        });
        let (id, token) = connect(&mut server, clock.ms(0), 1, "60000");
        server.handle_timeout(clock.ms(1_000));
        server.handle_timeout(clock.ms(2_000));
        assert_eq!(wire_of(&drain(&mut server)), ["tx:1:003701", "tx:1:003702"]);
        server.handle_timeout(clock.ms(3_000));
        let out = drain(&mut server);
        assert_eq!(wire_of(&out), ["tx:1:1c", "close:1"]);
        assert_eq!(
            events_of(&out),
            [ServerEvent::SessionClosed {
                session_id: id,
                conn: Some(ConnectionId(1)),
                reason: ServerCloseReason::ClientUnresponsive
            }]
        );
        assert_eq!(server.poll_timeout(), None);
        let (outcome, _) = reconnect(&mut server, clock.ms(3_001), 2, &token, "0", "2");
        assert_eq!(
            outcome,
            AcceptOutcome::Rejected {
                code: ResponseCode::UnknownSession
            }
        );
    }

    #[test]
    fn an_answer_resets_the_unanswered_count() {
        let clock = Clock::new();
        let mut server = server_with(ServerConfig {
            ping_period: Duration::from_secs(1),
            ..ServerConfig::default()
        });
        connect(&mut server, clock.ms(0), 1, "60000");
        for s in 1..=6u64 {
            server.handle_timeout(clock.ms(s * 1_000));
            let cid = format!("{:02x}", s);
            assert_eq!(wire_of(&drain(&mut server)), [format!("tx:1:0037{cid}")]);
            if s % 2 == 0 {
                // Answer late, every other period: never two in a row unanswered at a due time.
                frame(&mut server, clock.ms(s * 1_000 + 10), 1, &format!("06{cid}"));
            }
        }
    }

    #[test]
    fn close_request_gets_abort_then_transport_close() {
        let clock = Clock::new();
        let mut server = server();
        let (id, token) = connect(&mut server, clock.ms(0), 1, "60000");
        let out = frame(&mut server, clock.ms(10), 1, "1d");
        assert_eq!(wire_of(&out), ["tx:1:1c", "close:1"]);
        assert_eq!(
            events_of(&out),
            [
                ServerEvent::CloseRequested {
                    conn: ConnectionId(1),
                    session_id: id
                },
                ServerEvent::SessionClosed {
                    session_id: id,
                    conn: Some(ConnectionId(1)),
                    reason: ServerCloseReason::ClientRequested
                }
            ]
        );
        // The adapter's late closure report is ignored, and the session cannot be resumed.
        server.handle_closed(clock.ms(11), ConnectionId(1));
        assert!(drain(&mut server).is_empty());
        let (outcome, out) = reconnect(&mut server, clock.ms(20), 2, &token, "0", "0");
        assert_eq!(
            outcome,
            AcceptOutcome::Rejected {
                code: ResponseCode::UnknownSession
            }
        );
        assert_eq!(wire_of(&out), ["tx:2:231975", "close:2"]);
    }

    #[test]
    fn reconnect_answers_105_with_s_and_resends_after_ss() {
        let clock = Clock::new();
        let mut server = server();
        let (id, token) = connect(&mut server, clock.ms(0), 1, "60000");
        frame(&mut server, clock.ms(1), 1, "003801"); // client #1; server #1 = 0601
        server.handle_timeout(clock.ms(90_000)); // server #2 = 003701
        drain(&mut server);
        frame(&mut server, clock.ms(90_001), 1, "0601"); // client #2
        let cid = server.send_request(
            clock.ms(90_002),
            ConnectionId(1),
            ServiceId::USER_PING,
            Bytes::new(),
        );
        assert_eq!(cid, Some(2)); // server #3 = 003802
        assert!(server.send(
            ConnectionId(1),
            Message::TopicValue {
                topic_id: 521,
                compressed: false,
                payload: Bytes::from_static(b"\x65Hello"),
            }
        )); // server #4
        drain(&mut server);
        server.handle_closed(clock.ms(91_000), ConnectionId(1));
        let out = drain(&mut server);
        assert_eq!(
            events_of(&out),
            [ServerEvent::Detached {
                conn: ConnectionId(1),
                session_id: id,
                expires: Some(clock.ms(151_000))
            }]
        );
        assert_eq!(server.poll_timeout(), Some(clock.ms(151_000)));
        // The client got messages 1 and 2 only, and still holds its own from 1.
        let (outcome, out) = reconnect(&mut server, clock.ms(92_000), 2, &token, "1", "2");
        assert_eq!(
            outcome,
            AcceptOutcome::Accepted {
                session_id: id,
                code: ResponseCode::Reconnected,
                replaced: None
            }
        );
        let wire = wire_of(&out);
        assert_eq!(wire.len(), 3, "{wire:?}");
        let response = unhex(wire[0].trim_start_matches("tx:2:"));
        assert_eq!(response.len(), 55);
        assert_eq!(hex(&response[..3]), "231969");
        assert_eq!(&response[19..43], token.as_bytes());
        assert_eq!(hex(&response[51..55]), "00000003"); // S = 2 received + 1
        assert_eq!(wire[1], "tx:2:003802");
        assert_eq!(wire[2], "tx:2:04000002096548656c6c6f"); // topic 521, CBOR "Hello"
        assert!(matches!(
            events_of(&out).as_slice(),
            [ServerEvent::Reconnected {
                code: ResponseCode::Reconnected,
                resent: 2,
                replaced: None,
                ..
            }]
        ));
        // The session carries on: the re-sent USER_PING's answer is matched, numbering goes on.
        let out = frame(&mut server, clock.ms(92_001), 2, "0602");
        assert!(matches!(
            events_of(&out).as_slice(),
            [ServerEvent::ResponseReceived {
                cid: 2,
                service: ServiceId::USER_PING,
                ..
            }]
        ));
        let info = server.session(id).unwrap();
        assert_eq!((info.client_sequence, info.server_sequence), (3, 4));
        assert_eq!(info.connection, Some(ConnectionId(2)));
        assert_eq!(server.poll_timeout(), Some(clock.ms(182_000)));
        assert_eq!(info.stats.reconnections, 1);
        assert_eq!(info.stats.messages_resent, 2);
    }

    #[test]
    fn reconnect_with_nothing_missing_resends_nothing() {
        let clock = Clock::new();
        let mut server = server();
        let (_, token) = connect(&mut server, clock.ms(0), 1, "60000");
        server.handle_closed(clock.ms(1), ConnectionId(1));
        drain(&mut server);
        let (outcome, out) = reconnect(&mut server, clock.ms(2), 2, &token, "0", "0");
        assert!(matches!(
            outcome,
            AcceptOutcome::Accepted {
                code: ResponseCode::Reconnected,
                ..
            }
        ));
        let wire = wire_of(&out);
        assert_eq!(wire.len(), 1);
        assert!(wire[0].ends_with("00000001"), "{wire:?}"); // S = 0 received + 1
    }

    #[test]
    fn lost_server_messages_give_106_and_reset_the_sequences() {
        let clock = Clock::new();
        let mut server = server_with(ServerConfig {
            recovery_buffer: 1,
            ..ServerConfig::default()
        });
        let (id, token) = connect(&mut server, clock.ms(0), 1, "60000");
        frame(&mut server, clock.ms(1), 1, "003801");
        frame(&mut server, clock.ms(2), 1, "003802");
        server.handle_closed(clock.ms(3), ConnectionId(1));
        drain(&mut server);
        // The client missed both answers; only the second is still buffered.
        let (outcome, out) = reconnect(&mut server, clock.ms(4), 2, &token, "1", "0");
        assert!(matches!(
            outcome,
            AcceptOutcome::Accepted {
                code: ResponseCode::ReconnectedWithMessageLoss,
                ..
            }
        ));
        let wire = wire_of(&out);
        assert_eq!(wire.len(), 1);
        assert!(
            wire[0].starts_with("tx:2:23196a") && wire[0].ends_with("00989680"),
            "{wire:?}"
        );
        let info = server.session(id).unwrap();
        assert_eq!((info.client_sequence, info.server_sequence), (0, 0));
        // An `ss` beyond what was sent is loss too.
        server.handle_closed(clock.ms(5), ConnectionId(2));
        drain(&mut server);
        let (outcome, _) = reconnect(&mut server, clock.ms(6), 3, &token, "0", "5");
        assert!(matches!(
            outcome,
            AcceptOutcome::Accepted {
                code: ResponseCode::ReconnectedWithMessageLoss,
                ..
            }
        ));
    }

    #[test]
    fn a_client_missing_messages_we_need_gets_118() {
        let clock = Clock::new();
        let mut server = server();
        let (id, token) = connect(&mut server, clock.ms(0), 1, "60000");
        frame(&mut server, clock.ms(1), 1, "003801");
        server.handle_closed(clock.ms(2), ConnectionId(1));
        drain(&mut server);
        // S = 2, but the client only holds its messages from 3 on.
        let (outcome, out) = reconnect(&mut server, clock.ms(3), 2, &token, "3", "1");
        assert_eq!(
            outcome,
            AcceptOutcome::Rejected {
                code: ResponseCode::ReconnectionFailedMessageLoss
            }
        );
        assert_eq!(wire_of(&out), ["tx:2:231976", "close:2"]);
        assert!(server.session(id).is_none());
    }

    #[test]
    fn unknown_token_gets_117() {
        let clock = Clock::new();
        let mut server = server();
        connect(&mut server, clock.ms(0), 1, "60000");
        let (outcome, out) = reconnect(&mut server, clock.ms(1), 2, "ABCDEFGHIJKLMNOPQRSTUVWX", "0", "0");
        assert_eq!(
            outcome,
            AcceptOutcome::Rejected {
                code: ResponseCode::UnknownSession
            }
        );
        assert_eq!(wire_of(&out), ["tx:2:231975", "close:2"]);
        // The query form (v29) answers in its version.
        let uri = "/diffusion?ty=WB&v=29&ca=10&r=3000&c=ABCDEFGHIJKLMNOPQRSTUVWX&cs=1&ss=0";
        server.accept(clock.ms(1), ConnectionId(3), &UpgradeRequest::from_uri(uri));
        assert_eq!(wire_of(&drain(&mut server)), ["tx:3:231d75", "close:3"]);
    }

    #[test]
    fn expired_detached_session_gets_117() {
        let clock = Clock::new();
        let mut server = server();
        let (id, token) = connect(&mut server, clock.ms(0), 1, "5000");
        server.handle_closed(clock.ms(1_000), ConnectionId(1));
        drain(&mut server);
        assert_eq!(server.poll_timeout(), Some(clock.ms(6_000)));
        server.handle_timeout(clock.ms(6_000));
        assert_eq!(
            events_of(&drain(&mut server)),
            [ServerEvent::SessionClosed {
                session_id: id,
                conn: None,
                reason: ServerCloseReason::ReconnectTimeout
            }]
        );
        let (outcome, _) = reconnect(&mut server, clock.ms(6_001), 2, &token, "0", "0");
        assert_eq!(
            outcome,
            AcceptOutcome::Rejected {
                code: ResponseCode::UnknownSession
            }
        );

        // Expired but not yet swept: still 117.
        let (_, token) = connect(&mut server, clock.ms(10_000), 3, "5000");
        server.handle_closed(clock.ms(10_000), ConnectionId(3));
        drain(&mut server);
        let (outcome, _) = reconnect(&mut server, clock.ms(15_000), 4, &token, "0", "0");
        assert_eq!(
            outcome,
            AcceptOutcome::Rejected {
                code: ResponseCode::UnknownSession
            }
        );
        assert_eq!(server.sessions().count(), 0);
    }

    #[test]
    fn zero_reconnect_timeout_closes_on_connection_loss() {
        let clock = Clock::new();
        let mut server = server();
        let (id, _) = connect(&mut server, clock.ms(0), 1, "0");
        server.handle_closed(clock.ms(1), ConnectionId(1));
        let events = events_of(&drain(&mut server));
        assert_eq!(
            events.last(),
            Some(&ServerEvent::SessionClosed {
                session_id: id,
                conn: None,
                reason: ServerCloseReason::ConnectionLost
            })
        );
        assert!(server.session(id).is_none());
    }

    #[test]
    fn reconnection_takes_over_a_still_attached_session() {
        let clock = Clock::new();
        let mut server = server();
        let (id, token) = connect(&mut server, clock.ms(0), 1, "60000");
        frame(&mut server, clock.ms(1), 1, "003801");
        // The server never noticed conn 1 died; the answer 0601 went into the void.
        let (outcome, out) = reconnect(&mut server, clock.ms(2), 2, &token, "1", "0");
        assert_eq!(
            outcome,
            AcceptOutcome::Accepted {
                session_id: id,
                code: ResponseCode::Reconnected,
                replaced: Some(ConnectionId(1))
            }
        );
        let wire = wire_of(&out);
        assert_eq!(wire[0], "close:1");
        assert!(wire[1].starts_with("tx:2:231969") && wire[1].ends_with("00000002"));
        assert_eq!(wire[2], "tx:2:0601");
        assert_eq!(server.session_of(ConnectionId(1)), None);
        assert_eq!(server.session_of(ConnectionId(2)), Some(id));
        // The dead connection is forgotten: its frames and its closure change nothing.
        assert!(frame(&mut server, clock.ms(3), 1, "1d").is_empty());
        server.handle_closed(clock.ms(3), ConnectionId(1));
        assert!(drain(&mut server).is_empty());
        assert_eq!(server.session(id).unwrap().connection, Some(ConnectionId(2)));
    }

    #[test]
    fn oversize_frame_is_a_protocol_error_that_closes() {
        let clock = Clock::new();
        let mut server = server_with(ServerConfig {
            max_message_size: 16,
            ..ServerConfig::default()
        });
        let (id, _) = connect(&mut server, clock.ms(0), 1, "60000");
        // Exactly the limit is fine.
        let ok = format!("003801{}", "00".repeat(13));
        assert_eq!(wire_of(&frame(&mut server, clock.ms(1), 1, &ok)), ["tx:1:0601"]);
        let big = format!("003802{}", "00".repeat(14));
        let out = frame(&mut server, clock.ms(2), 1, &big);
        assert_eq!(wire_of(&out), ["tx:1:1c", "close:1"]);
        let events = events_of(&out);
        assert!(matches!(events[0], ServerEvent::ProtocolError { .. }));
        assert_eq!(
            events[1],
            ServerEvent::SessionClosed {
                session_id: id,
                conn: Some(ConnectionId(1)),
                reason: ServerCloseReason::MessageTooLarge { size: 17, limit: 16 }
            }
        );
    }

    #[test]
    fn undecodable_frames_close_and_unknown_types_are_ignored() {
        let clock = Clock::new();
        let mut server = server();
        let (id, _) = connect(&mut server, clock.ms(0), 1, "60000");
        // Types 34 and 63: ignored, but counted in the recovery sequence.
        assert!(frame(&mut server, clock.ms(1), 1, "2200").is_empty());
        assert!(frame(&mut server, clock.ms(1), 1, "3f").is_empty());
        let info = server.session(id).unwrap();
        assert_eq!((info.client_sequence, info.stats.ignored_messages), (2, 2));
        // A service request cut inside its varint.
        let out = frame(&mut server, clock.ms(2), 1, "0080");
        assert_eq!(wire_of(&out), ["tx:1:1c", "close:1"]);
        assert!(matches!(
            events_of(&out).as_slice(),
            [
                ServerEvent::ProtocolError { .. },
                ServerEvent::SessionClosed {
                    reason: ServerCloseReason::ProtocolError(_),
                    ..
                }
            ]
        ));
        // An empty frame too.
        connect(&mut server, clock.ms(3), 2, "60000");
        assert_eq!(
            wire_of(&frame(&mut server, clock.ms(4), 2, "")),
            ["tx:2:1c", "close:2"]
        );
    }

    #[test]
    fn unknown_services_get_service_error_100() {
        let clock = Clock::new();
        let mut server = server();
        let (id, _) = connect(&mut server, clock.ms(0), 1, "60000");
        let out = frame(&mut server, clock.ms(1), 1, "008f4e03");
        let description = "Unknown service: 9999";
        let expected = format!(
            "tx:1:0703{:02x}{}64",
            description.len(),
            hex(description.as_bytes())
        );
        assert_eq!(wire_of(&out), [expected]);
        assert_eq!(
            events_of(&out),
            [ServerEvent::UnknownService {
                conn: ConnectionId(1),
                session_id: id,
                service: ServiceId(9999),
                cid: 3
            }]
        );
        // A registered service is the caller's to answer.
        server.register_service(ServiceId(9999));
        let out = frame(&mut server, clock.ms(2), 1, "008f4e04ab");
        assert!(wire_of(&out).is_empty());
        assert!(matches!(
            events_of(&out).as_slice(),
            [ServerEvent::ServiceRequest {
                service: ServiceId(9999),
                cid: 4,
                ..
            }]
        ));
        assert!(server.send(
            ConnectionId(1),
            Message::ServiceResponse {
                cid: 4,
                payload: Bytes::from_static(b"\x01")
            }
        ));
        assert_eq!(wire_of(&drain(&mut server)), ["tx:1:060401"]);
        // Topic messages from a client are surfaced, not answered.
        let out = frame(&mut server, clock.ms(3), 1, "04000000076162");
        assert!(matches!(
            events_of(&out).as_slice(),
            [ServerEvent::MessageReceived { .. }]
        ));
    }

    #[test]
    fn change_principal_and_properties_services() {
        let clock = Clock::new();
        let mut server = server();
        let (id, _) = connect(&mut server, clock.ms(0), 1, "60000");
        // SPEC §6: CHANGE_PRINCIPAL cid 7, "admin" / PLAIN "password".
        let out = frame(
            &mut server,
            clock.ms(1),
            1,
            "0005070561646d696e010870617373776f7264",
        );
        assert_eq!(wire_of(&out), ["tx:1:060701"]);
        assert!(!format!("{out:?}").contains("password"));
        assert_eq!(server.session(id).unwrap().principal.as_deref(), Some("admin"));
        // RE_AUTHENTICATE cid 8 with a wrong password: false, principal unchanged.
        let out = frame(
            &mut server,
            clock.ms(2),
            1,
            "00cb01080561646d696e0105776f726e6700",
        );
        assert_eq!(wire_of(&out), ["tx:1:060800"]);
        assert_eq!(server.session(id).unwrap().principal.as_deref(), Some("admin"));
        // Malformed: INVALID_DATA (106 = 0x6a).
        let out = frame(&mut server, clock.ms(3), 1, "00050905");
        assert!(wire_of(&out)[0].starts_with("tx:1:0709") && wire_of(&out)[0].ends_with("6a"));
        // GET_OWN_SESSION_PROPERTIES.
        let out = frame(&mut server, clock.ms(4), 1, "00ca010a");
        let [ServerOutput::Transmit { frame: reply, .. }] = out.as_slice() else {
            panic!("{out:?}");
        };
        let Message::ServiceResponse { cid: 10, payload } = Message::decode(reply).unwrap() else {
            panic!("{reply:?}");
        };
        let mut r = Reader::new(&payload);
        assert!(r.boolean().unwrap());
        let map = r.string_map().unwrap();
        assert!(map.contains(&("$Principal".to_owned(), "admin".to_owned())));
        assert!(map.contains(&("$SessionId".to_owned(), id.to_string())));
        assert!(map.contains(&("$Environment".to_owned(), "PYTHON_cpython_3.11.7".to_owned())));
    }

    #[test]
    fn abort_drop_and_forget() {
        let clock = Clock::new();
        let mut server = server();
        let (a, _) = connect(&mut server, clock.ms(0), 1, "60000");
        server.abort(ConnectionId(1));
        let out = drain(&mut server);
        assert_eq!(wire_of(&out), ["tx:1:1c", "close:1"]);
        assert!(server.session(a).is_none());

        let (b, token) = connect(&mut server, clock.ms(0), 2, "60000");
        server.drop_connection(clock.ms(1), ConnectionId(2));
        assert_eq!(wire_of(&drain(&mut server)), ["close:2"]);
        assert_eq!(server.session(b).unwrap().connection, None);
        // A message sent while detached is buffered and re-sent on reconnection.
        assert!(server.send_to_session(
            b,
            Message::TopicDelta {
                topic_id: 7,
                compressed: false,
                payload: Bytes::from_static(b"ab")
            }
        ));
        assert!(drain(&mut server).is_empty());
        let (outcome, out) = reconnect(&mut server, clock.ms(2), 3, &token, "0", "0");
        assert!(matches!(
            outcome,
            AcceptOutcome::Accepted {
                code: ResponseCode::Reconnected,
                ..
            }
        ));
        assert_eq!(wire_of(&out)[1], "tx:3:05000000076162");

        server.forget_session(b);
        assert_eq!(wire_of(&drain(&mut server)), ["close:3"]);
        let (outcome, _) = reconnect(&mut server, clock.ms(3), 4, &token, "0", "1");
        assert_eq!(
            outcome,
            AcceptOutcome::Rejected {
                code: ResponseCode::UnknownSession
            }
        );
    }

    #[test]
    fn ping_period_zero_disables_pings() {
        let clock = Clock::new();
        let mut server = server_with(ServerConfig {
            ping_period: Duration::ZERO,
            ..ServerConfig::default()
        });
        let headers = py_headers(&[]);
        server.accept(
            clock.ms(0),
            ConnectionId(1),
            &request("/diffusion", None, &headers),
        );
        let out = drain(&mut server);
        let ServerOutput::Transmit { frame, .. } = &out[0] else {
            panic!()
        };
        assert_eq!(hex(&frame[43..51]), "0000000000000000");
        assert_eq!(server.poll_timeout(), None);
    }

    #[test]
    fn no_secret_in_debug_or_events() {
        let clock = Clock::new();
        let mut server = server();
        let headers = py_headers(&[("username", "bob"), ("password", "AQZzZWNyZXQ=")]);
        let request = request("/diffusion", None, &headers);
        server.accept(clock.ms(0), ConnectionId(1), &request);
        let out = drain(&mut server);
        let ServerOutput::Transmit { frame, .. } = &out[0] else {
            panic!()
        };
        let token = String::from_utf8(frame[19..43].to_vec()).unwrap();
        let shown = format!(
            "{out:?} {server:?} {request:?} {:?} {:?}",
            users(),
            server.sessions().collect::<Vec<_>>()
        );
        // ("password" itself is a header name, shown; its value is not.)
        for secret in [token.as_str(), "secret", "AQZzZWNyZXQ="] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }

    #[test]
    fn distinct_ids_and_tokens_from_constant_entropy() {
        let clock = Clock::new();
        let mut server = Server::new(
            ServerConfig::default(),
            Box::new(AllowAll),
            Box::new(|b: &mut [u8]| b.fill(0)),
        );
        let mut tokens = BTreeSet::new();
        for conn in 0..5 {
            let (id, token) = connect(&mut server, clock.ms(0), conn, "60000");
            assert_eq!(id.value, conn);
            assert!(tokens.insert(token));
        }
    }

    #[test]
    fn counter_entropy_is_the_counter() {
        let mut e = CounterEntropy::default();
        let mut eight = [0u8; 8];
        e.fill(&mut eight);
        assert_eq!(u64::from_be_bytes(eight), 1);
        let mut longer = [0u8; 10];
        e.fill(&mut longer);
        assert_eq!(hex(&longer), "00020000000000000002");
    }

    fn any_headers() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
        let name = prop_oneof![
            proptest::sample::select(PARAMETER_NAMES.to_vec()).prop_map(str::to_owned),
            "[A-Za-z-]{1,8}",
        ];
        proptest::collection::vec((name, proptest::collection::vec(any::<u8>(), 0..40)), 0..8)
    }

    proptest! {
        #[test]
        fn arbitrary_requests_and_frames_never_panic(
            path in prop_oneof![Just("/diffusion".to_owned()), ".{0,20}"],
            query in proptest::option::of(prop_oneof![
                ".{0,80}",
                "(v=(25|29|2[0-9])&)?(c=[A-Za-z0-9+/]{24}&)?(cs=-?[0-9]{1,3}&)?(ss=-?[0-9]{1,3}&)?r=[0-9]{0,6}",
            ]),
            headers in any_headers(),
            frames in proptest::collection::vec((0u8..6, proptest::collection::vec(any::<u8>(), 0..24)), 0..24),
        ) {
            let clock = Clock::new();
            let mut server = server_with(ServerConfig {
                ping_period: Duration::from_millis(100),
                max_message_size: 20,
                recovery_buffer: 3,
                ..ServerConfig::default()
            });
            let (_, token) = connect(&mut server, clock.ms(0), 0, "150");
            let request = UpgradeRequest {
                path: &path,
                query: query.as_deref(),
                headers: headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect(),
            };
            server.accept(clock.ms(0), ConnectionId(1), &request);
            let mut t = 0;
            for (op, bytes) in frames {
                t += 37;
                let conn = ConnectionId(u64::from(op % 2));
                match op {
                    0 | 1 => server.handle_frame(clock.ms(t), conn, bytes.into()),
                    2 => server.handle_timeout(clock.ms(t)),
                    3 => server.handle_closed(clock.ms(t), conn),
                    4 => {
                        let ss = bytes.first().copied().unwrap_or(0).to_string();
                        let cs = bytes.get(1).copied().unwrap_or(0).to_string();
                        reconnect(&mut server, clock.ms(t), u64::from(bytes.len() as u8 % 3), &token, &cs, &ss);
                    }
                    _ => {
                        server.send_request(clock.ms(t), conn, ServiceId::USER_PING, bytes.into());
                    }
                }
                let out = drain(&mut server);
                // Every transmit is either a connection response or a decodable message.
                for o in &out {
                    if let ServerOutput::Transmit { frame, .. } = o {
                        prop_assert!(frame.first() == Some(&0x23) || Message::decode(frame).is_ok());
                    }
                }
                prop_assert!(server.poll_timeout().is_none() || server.sessions().count() > 0);
            }
        }
    }
}
