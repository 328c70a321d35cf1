//! `ClientSession`: the state machine of one client session (SPEC §8, §11, §12), sans-IO.
//! It is fed frames, transport closures, commands and instants, and drained of outputs.
//!
//! The session is a [`Phase`] (what it is doing, with that phase's data) and a table of
//! [`Timer`]s; its [`SessionState`] is derived from the phase. Requests live in `requests`,
//! what it sent in the recovery buffer, the dispatch of what it receives in `inbound`, and
//! its topics in the topic registry.

mod config;
mod events;
mod inbound;
mod phase;
mod requests;

pub use config::{ClientConfig, ConnectRequest};
pub use events::{
    Event, InboundRequestId, Output, PingDetails, Reply, RequestError, RequestId, SessionError,
    SessionStatus, StateChange,
};
pub use phase::{Attempt, Phase, Timer};

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use crate::handshake::{
    ConnectionResponse, ReconnectParams, ResponseCode, SessionGrant, SessionId, SessionToken,
};
use crate::message::{type_code, ErrorReason, Message, MessageError, ServiceId};
use crate::outbound::RecoveryBuffer;
use crate::reconnect::ReconnectAction;
use crate::state::{CloseReason, SessionState};
use crate::topics::{ServiceCall, Topic, TopicRegistry, TopicStats};
use crate::transport::TransportError;
use inbound::Routes;
use phase::Timers;
use requests::Requests;

/// What the latest accepted connection response granted.
#[derive(Debug)]
struct Granted {
    code: ResponseCode,
    session_id: SessionId,
    token: SessionToken,
    ping_period: Duration,
    max_message_size: Option<u32>,
}

/// One client session as a sans-IO state machine.
///
/// # Polling contract
///
/// [`ClientSession::new`] queues the first [`Output::Connect`]. After **every** call
/// that feeds it (`handle_frame`, `handle_transport_closed`, `handle_timeout`, or a
/// command such as `ping`, `call`, `invoke`, `respond`, `close`, `register_service`) the
/// adapter:
///
/// 1. drains [`ClientSession::poll_output`] until `None`, carrying out each output in
///    order (open the transport, send the frame, close the transport, deliver the event);
/// 2. reads [`ClientSession::poll_timeout`] and calls `handle_timeout(now)` once that
///    instant has passed (it may change after any input).
///
/// It reports with `handle_transport_closed` only closures it did not ask for
/// (`Output::CloseTransport`), including a transport that failed to open. Time always
/// comes in as arguments; the session never reads a clock.
///
/// ```
/// use std::time::{Instant, SystemTime};
/// use diffusion_proto::{ClientConfig, ClientSession, Output};
///
/// let now = Instant::now();
/// let mut session = ClientSession::new(ClientConfig::new("ws://127.0.0.1:8080").unwrap(), now);
/// while let Some(output) = session.poll_output() {
///     match output {
///         Output::Connect(request) => {
///             assert_eq!(request.uri(), "ws://127.0.0.1:8080/diffusion");
///             assert_eq!(request.target(), "/diffusion"); // parameters go in headers for v25
///         }
///         other => panic!("unexpected {other:?}"),
///     }
/// }
/// assert!(session.poll_timeout().is_some()); // the connection timeout
/// ```
#[derive(Debug)]
pub struct ClientSession {
    config: ClientConfig,
    phase: Phase,
    timers: Timers,
    granted: Option<Granted>,
    outputs: VecDeque<Output>,
    requests: Requests,
    routes: Routes,
    /// The topics the server subscribed this session to, with their last values.
    topics: TopicRegistry,
    /// What this client sent, numbered across reconnections, the newest kept for a 105.
    sent: RecoveryBuffer,
    /// Messages received from the server since the first connect, ABORT excluded (`ss`).
    received: i64,
    system_pings_answered: u64,
}

impl ClientSession {
    /// A session in CONNECTING that asks at once for its first connection.
    pub fn new(config: ClientConfig, now: Instant) -> Self {
        let sent = RecoveryBuffer::new(config.recovery_buffer_capacity);
        let mut session = ClientSession {
            config,
            phase: Phase::Connecting {
                attempt: 0,
                link: Attempt::Waiting,
            },
            timers: Timers::default(),
            granted: None,
            outputs: VecDeque::new(),
            requests: Requests::default(),
            routes: Routes::default(),
            topics: TopicRegistry::default(),
            sent,
            received: 0,
            system_pings_answered: 0,
        };
        session.start_attempt(now);
        session
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The current state.
    pub fn state(&self) -> SessionState {
        self.phase.state()
    }

    /// The session id, once the server granted one.
    pub fn session_id(&self) -> Option<SessionId> {
        self.granted.as_ref().map(|g| g.session_id)
    }

    /// The code of the latest accepted connection response: 100, 105 or 106.
    pub fn response_code(&self) -> Option<ResponseCode> {
        self.granted.as_ref().map(|g| g.code)
    }

    /// The server's system ping period.
    pub fn ping_period(&self) -> Option<Duration> {
        self.granted.as_ref().map(|g| g.ping_period)
    }

    /// The largest message the server accepts from this client.
    pub fn max_message_size(&self) -> Option<u32> {
        self.granted.as_ref().and_then(|g| g.max_message_size)
    }

    /// Why the session closed, once closed.
    pub fn close_reason(&self) -> Option<&CloseReason> {
        match &self.phase {
            Phase::Closed { reason, .. } => Some(reason),
            _ => None,
        }
    }

    /// Everything above at once, as one consistent value.
    pub fn status(&self) -> SessionStatus {
        SessionStatus {
            state: self.state(),
            session_id: self.session_id(),
            response_code: self.response_code(),
            ping_period: self.ping_period(),
            max_message_size: self.max_message_size(),
            close_reason: self.close_reason().cloned(),
            system_pings_answered: self.system_pings_answered,
        }
    }

    /// Requests awaiting a response.
    pub fn pending_requests(&self) -> usize {
        self.requests.len()
    }

    /// The topics the session is subscribed to, each with its last value (`None` before
    /// the first, after an error, and for `DONT_RETAIN_VALUE` topics), in no particular
    /// order. A stream added late starts from these (TOPICS §2.5); a closed session has none.
    pub fn topics(&self) -> impl ExactSizeIterator<Item = (&Topic, Option<&Bytes>)> + '_ {
        self.topics.iter()
    }

    /// The subscribed topic with this id, and its last value.
    pub fn topic(&self, id: i32) -> Option<(&Topic, Option<&Bytes>)> {
        self.topics.get(id)
    }

    /// Counters of the topic messages received: topics subscribed, values and deltas,
    /// and what was dropped or reported as a topic error.
    pub fn topic_stats(&self) -> TopicStats {
        self.topics.stats()
    }

    /// The phase, with its data (for tests and diagnostics).
    #[doc(hidden)]
    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    /// The armed timers and their deadlines, request deadlines aside (for tests).
    #[doc(hidden)]
    pub fn timers(&self) -> impl Iterator<Item = (Timer, Instant)> + '_ {
        self.timers.armed()
    }

    /// The next output to carry out. Poll until `None` after every call that feeds the
    /// session (see the polling contract above).
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When `handle_timeout` must next be called. Read it again after every call that feeds
    /// the session: any of them may move it.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.timers.next_timeout(), self.requests.next_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Lets the server's requests to `service` through as [`Event::InboundRequest`];
    /// requests to services not registered are answered with SERVICE_ERROR 100. The
    /// services the session serves itself are never let through: SYSTEM_PING,
    /// NOTIFY_SUBSCRIPTION and NOTIFY_UNSUBSCRIPTION (they feed [`Event::Topic`]).
    pub fn register_service(&mut self, service: ServiceId) {
        self.routes.register(service);
    }

    /// Stops letting `service` through.
    pub fn deregister_service(&mut self, service: ServiceId) {
        self.routes.deregister(service);
    }

    /// Sends a USER_PING; its [`Event::Response`] carries the round trip.
    pub fn ping(&mut self, now: Instant, wall: SystemTime) -> Result<RequestId, SessionError> {
        self.invoke(now, wall, ServiceId::USER_PING, Bytes::new())
    }

    /// Sends the request `C` to its service, written in the session's protocol version;
    /// read the answer with [`Reply::response`]`::<C>()`. While reconnecting it waits in
    /// the recovery buffer and goes out on 105.
    ///
    /// ```
    /// use std::time::{Instant, SystemTime};
    /// use diffusion_proto::{ClientConfig, ClientSession, SessionError, SubscribeRequest};
    ///
    /// let now = Instant::now();
    /// let mut session = ClientSession::new(ClientConfig::new("ws://127.0.0.1:8080").unwrap(), now);
    /// let subscribe = SubscribeRequest::new("?t//");
    /// // Not connected yet: refused at once, nothing sent.
    /// assert_eq!(session.call(now, SystemTime::now(), &subscribe), Err(SessionError::NotConnected));
    /// ```
    pub fn call<C: ServiceCall>(
        &mut self,
        now: Instant,
        wall: SystemTime,
        request: &C,
    ) -> Result<RequestId, SessionError> {
        let payload = request
            .to_bytes(self.config.version)
            .map_err(|source| SessionError::Encode {
                service: C::SERVICE,
                source,
            })?;
        self.invoke(now, wall, C::SERVICE, payload)
    }

    /// Sends a request to the server's `service`. While reconnecting it waits in the
    /// recovery buffer and goes out on 105.
    pub fn invoke(
        &mut self,
        now: Instant,
        wall: SystemTime,
        service: ServiceId,
        payload: Bytes,
    ) -> Result<RequestId, SessionError> {
        match &self.phase {
            Phase::Connecting { .. } => return Err(SessionError::NotConnected),
            Phase::Closed { reason, .. } => return Err(SessionError::Closed(reason.clone())),
            Phase::Closing => return Err(SessionError::Closing),
            Phase::Recovering { .. } if self.sent.is_full() => {
                return Err(SessionError::RecoveryBufferFull(self.sent.len()))
            }
            Phase::Recovering { .. } | Phase::Active => {}
        }
        let message = Message::ServiceRequest {
            service,
            cid: self.requests.next_cid(),
            payload,
        };
        self.check_outbound_size(&message)?;
        let cid = self.requests.start(now, wall, self.config.request_timeout);
        self.send(message);
        Ok(RequestId(cid))
    }

    /// Answers an [`Event::InboundRequest`] with a payload (no-op for one-way requests).
    pub fn respond(&mut self, id: InboundRequestId, payload: Bytes) -> Result<(), SessionError> {
        self.answer(Message::ServiceResponse { cid: id.0, payload })
    }

    /// Fails an [`Event::InboundRequest`] (no-op for one-way requests).
    pub fn respond_error(
        &mut self,
        id: InboundRequestId,
        description: &str,
        reason: ErrorReason,
    ) -> Result<(), SessionError> {
        self.answer(Message::ServiceError {
            cid: id.0,
            description: description.to_owned(),
            reason,
        })
    }

    fn answer(&mut self, message: Message) -> Result<(), SessionError> {
        let cid = match &message {
            Message::ServiceResponse { cid, .. } | Message::ServiceError { cid, .. } => *cid,
            _ => 0,
        };
        if let Some(reason) = self.close_reason() {
            return Err(SessionError::Closed(reason.clone()));
        }
        if cid == 0 {
            return Ok(());
        }
        self.check_outbound_size(&message)?;
        self.send(message);
        Ok(())
    }

    /// Closes the session: sends CLOSE_REQUEST and waits up to the close timeout for
    /// ABORT or the transport's end before CLOSED_BY_CLIENT. Idempotent.
    pub fn close(&mut self, now: Instant) {
        match self.phase {
            Phase::Closed { .. } | Phase::Closing => {}
            Phase::Active => {
                self.fail_pending(RequestError::SessionClosed(CloseReason::ClosedByClient));
                self.send(Message::CloseRequest);
                self.phase = Phase::Closing;
                self.timers.stop(Timer::Idle);
                self.timers.set(Timer::Close, now + self.config.close_timeout);
            }
            Phase::Connecting { .. } | Phase::Recovering { .. } => {
                self.finish(SessionState::ClosedByClient, CloseReason::ClosedByClient)
            }
        }
    }

    /// A frame (one WebSocket message) arrived from the server.
    pub fn handle_frame(&mut self, now: Instant, frame: Bytes) {
        if self.phase.is_handshaking() {
            self.handle_response(now, &frame);
        } else if matches!(self.phase, Phase::Active | Phase::Closing) {
            self.handle_message(now, frame);
        }
    }

    /// The transport ended without being asked to (or could not be opened).
    pub fn handle_transport_closed(&mut self, now: Instant, cause: TransportError) {
        if !self.phase.has_link() {
            return;
        }
        self.link_down();
        let reason = match self.phase {
            Phase::Connecting { .. } => CloseReason::TransportFailed { cause },
            _ => CloseReason::ConnectionLost { cause },
        };
        self.connection_lost(now, reason);
    }

    /// Time has reached `now`: fires every timer that is due (each kind at most once, in
    /// [`Timer`] order), then the request deadlines.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut fired = Vec::new();
        while let Some(timer) = self.timers.take_expired(now, &fired) {
            fired.push(timer);
            match timer {
                Timer::Handshake => {
                    self.drop_link();
                    let after = self.config.connection_timeout;
                    self.connection_lost(now, CloseReason::HandshakeTimeout { after });
                }
                Timer::Idle => {
                    self.drop_link();
                    let after = self.ping_period().unwrap_or_default() * 2;
                    let cause = TransportError::Idle { after };
                    self.connection_lost(now, CloseReason::ConnectionLost { cause });
                }
                Timer::Close => self.finish(SessionState::ClosedByClient, CloseReason::ClosedByClient),
                Timer::Reconnect => {
                    let after = self
                        .config
                        .reconnect
                        .as_ref()
                        .map_or(Duration::ZERO, |c| c.timeout);
                    self.finish(
                        SessionState::ClosedFailed,
                        CloseReason::ReconnectTimeout { after },
                    );
                }
                Timer::Retry => self.start_attempt(now),
            }
        }
        let after = self.config.request_timeout.unwrap_or_default();
        for cid in self.requests.expire(now) {
            self.emit(Event::Response {
                id: RequestId(cid),
                result: Err(RequestError::TimedOut(after)),
            });
        }
    }

    // ---- connection attempts -------------------------------------------------------

    fn start_attempt(&mut self, now: Instant) {
        let reconnect = match (&self.granted, &self.phase) {
            (Some(g), Phase::Recovering { .. }) => Some(ReconnectParams {
                token: g.token.clone(),
                available_client_sequence: sequence(self.sent.oldest().unwrap_or(self.sent.last() + 1)),
                last_server_sequence: self.received,
            }),
            _ => None,
        };
        if let Phase::Connecting { attempt, .. } = &mut self.phase {
            *attempt += 1;
        }
        let Some(link) = self.phase.attempt_mut() else {
            return;
        };
        *link = Attempt::Opening;
        self.timers
            .set(Timer::Handshake, now + self.config.connection_timeout);
        let request = ConnectRequest {
            url: self.config.url.clone(),
            carrier: self.config.carrier,
            params: self.config.params(reconnect),
        };
        self.outputs.push_back(Output::Connect(request));
    }

    /// The transport is gone, without telling the adapter (it told us).
    fn link_down(&mut self) {
        if let Some(link) = self.phase.attempt_mut() {
            *link = Attempt::Waiting;
        }
        self.timers.stop(Timer::Handshake);
    }

    /// The session gives up on its transport: the adapter closes it.
    fn drop_link(&mut self) {
        if self.phase.has_link() {
            self.link_down();
            self.outputs.push_back(Output::CloseTransport);
        }
    }

    /// The current transport is gone: close, retry or recover.
    fn connection_lost(&mut self, now: Instant, reason: CloseReason) {
        self.timers.stop(Timer::Idle);
        match self.phase {
            Phase::Closing => self.finish(SessionState::ClosedByClient, CloseReason::ClosedByClient),
            Phase::Connecting { attempt, .. } => {
                if attempt < self.config.initial_connect_attempts {
                    self.timers
                        .set(Timer::Retry, now + self.config.initial_retry_delay);
                } else {
                    self.finish(SessionState::ClosedFailed, reason);
                }
            }
            Phase::Active => match &self.config.reconnect {
                Some(rc) => {
                    let deadline = now + rc.timeout;
                    self.transition(Phase::Recovering {
                        lost_at: now,
                        attempts: 0,
                        link: Attempt::Waiting,
                    });
                    self.timers.set(Timer::Reconnect, deadline);
                    self.schedule_reconnect(now);
                }
                None => self.finish(SessionState::ClosedByServer, reason),
            },
            Phase::Recovering { .. } => self.schedule_reconnect(now),
            Phase::Closed { .. } => {}
        }
    }

    fn schedule_reconnect(&mut self, now: Instant) {
        let (
            Some(rc),
            Phase::Recovering {
                lost_at, attempts, ..
            },
        ) = (&self.config.reconnect, &mut self.phase)
        else {
            return;
        };
        *attempts += 1;
        match rc
            .strategy
            .next_attempt(*attempts, now.saturating_duration_since(*lost_at))
        {
            ReconnectAction::RetryAfter(delay) => self.timers.set(Timer::Retry, now + delay),
            ReconnectAction::Abort => {
                self.finish(SessionState::ClosedByServer, CloseReason::ReconnectAborted)
            }
        }
    }

    fn handle_response(&mut self, now: Instant, frame: &[u8]) {
        let recovering = matches!(self.phase, Phase::Recovering { .. });
        // What a response that cannot be used ends in: a failed reconnection, or a protocol
        // error of the first connection (closed by the client, as the Python client does).
        let refused = if recovering {
            SessionState::ClosedFailed
        } else {
            SessionState::ClosedByClient
        };
        let grant = match ConnectionResponse::parse(frame, self.config.version) {
            Ok(ConnectionResponse::Accepted(grant)) => grant,
            Ok(ConnectionResponse::Rejected(code)) => {
                return self.finish(SessionState::ClosedFailed, CloseReason::Rejected(code));
            }
            Err(e) => return self.finish(refused, CloseReason::Handshake(e)),
        };
        // The token goes back verbatim as `c` to reconnect, as a header value or text: one
        // that is not printable ASCII (real ones are base64, SPEC §3.5) could not be sent
        // back intact, so the session could never be resumed. Refuse it now, like a response
        // that does not parse.
        if !grant.token.as_bytes().iter().all(u8::is_ascii_graphic) {
            let detail = "the session token is not 24 printable ASCII characters, so a reconnection could not send it back".to_owned();
            return self.finish(refused, CloseReason::ProtocolError { detail });
        }
        let resent = match grant.code {
            ResponseCode::Reconnected if recovering => match self.resend_from(grant.recovery_sequence()) {
                Ok(n) => n,
                Err(reason) => return self.finish(SessionState::ClosedFailed, reason),
            },
            // 106, or a brand-new session where we asked to resume: what was in flight is
            // gone, and so are the topics, which the server notifies again (TOPICS §2.6).
            _ if recovering => {
                self.reset_sequences();
                self.topics.refresh(inbound::emitter(&mut self.outputs));
                0
            }
            _ => 0,
        };
        self.accept_grant(&grant);
        self.timers.stop(Timer::Handshake);
        self.timers.stop(Timer::Reconnect);
        self.timers.stop(Timer::Retry);
        self.transition(Phase::Active);
        self.arm_idle(now);
        self.emit(Event::Connected {
            session_id: grant.session_id,
            code: grant.code,
            resent,
        });
    }

    fn accept_grant(&mut self, grant: &SessionGrant) {
        let previous_limit = self.max_message_size();
        self.granted = Some(Granted {
            code: grant.code,
            session_id: grant.session_id,
            token: grant.token.clone(),
            ping_period: Duration::from_millis(grant.ping_period_ms.max(0) as u64),
            max_message_size: grant.max_message_size().or(previous_limit),
        });
    }

    /// Idle detection: twice the server's ping period from now, or none with no pings.
    fn arm_idle(&mut self, now: Instant) {
        match self.ping_period().filter(|p| !p.is_zero()) {
            Some(period) => self.timers.set(Timer::Idle, now + period * 2),
            None => self.timers.stop(Timer::Idle),
        }
    }

    /// Re-sends S … last sent on 105.
    fn resend_from(&mut self, recovery_sequence: Option<i64>) -> Result<usize, CloseReason> {
        let Some(s) = recovery_sequence else {
            return Ok(0);
        };
        if s < 1 {
            // The server has everything we sent.
            return Ok(0);
        }
        let frames = self
            .sent
            .since(s as u64)
            .map_err(|oldest| CloseReason::LostMessages {
                needed_from: s,
                oldest_held: oldest.map(sequence),
            })?;
        let n = frames.len();
        self.outputs.extend(frames.into_iter().map(Output::Transmit));
        Ok(n)
    }

    fn reset_sequences(&mut self) {
        self.sent.reset();
        self.received = 0;
        self.fail_pending(RequestError::MessageLoss);
    }

    // ---- messages ------------------------------------------------------------------

    fn handle_message(&mut self, now: Instant, frame: Bytes) {
        if frame.len() > self.config.max_inbound_message_size {
            let detail = format!(
                "the server sent a message of {} bytes; the limit is {} bytes",
                frame.len(),
                self.config.max_inbound_message_size
            );
            return self.protocol_error(detail);
        }
        let message = match Message::decode(&frame) {
            Ok(m) => m,
            // Both official clients drop messages of unknown types; so do we.
            Err(MessageError::UnknownType { .. }) => {
                self.received += 1;
                return;
            }
            // A topic message too short for its topic id names no topic, so it cannot be
            // that topic's error: dropped and counted. Whatever concerns one topic never
            // ends the session; the decoder still calls it malformed, as it is.
            Err(MessageError::Body {
                type_code: type_code::TOPIC_VALUE | type_code::TOPIC_DELTA,
                ..
            }) => {
                self.received += 1;
                self.topics.malformed();
                return;
            }
            Err(e) => return self.protocol_error(e.to_string()),
        };
        if message != Message::Abort {
            self.received += 1;
        }
        self.dispatch(now, message);
    }

    fn protocol_error(&mut self, detail: String) {
        self.finish(
            SessionState::ClosedByClient,
            CloseReason::ProtocolError { detail },
        );
    }

    fn check_outbound_size(&self, message: &Message) -> Result<(), SessionError> {
        let size = message.encoded_len();
        match self.max_message_size() {
            Some(limit) if size > limit as usize => Err(SessionError::MessageTooLarge {
                size,
                limit: limit as usize,
            }),
            _ => Ok(()),
        }
    }

    /// Numbers, buffers and (when connected) transmits a message.
    fn send(&mut self, message: Message) {
        let frame = message.to_bytes();
        self.sent.push(&frame);
        if matches!(self.phase, Phase::Active | Phase::Closing) {
            self.outputs.push_back(Output::Transmit(frame));
        }
    }

    // ---- state ---------------------------------------------------------------------

    fn emit(&mut self, event: Event) {
        self.outputs.push_back(Output::Event(event));
    }

    /// Moves to `phase`, announcing the change of state it makes (if it makes one).
    fn transition(&mut self, phase: Phase) {
        let old = self.state();
        let new = phase.state();
        debug_assert!(
            old == new || old.can_transition_to(new),
            "illegal transition {old} -> {new}"
        );
        if old != new && !old.can_transition_to(new) {
            return;
        }
        let reason = match &phase {
            Phase::Closed { reason, .. } => Some(reason.clone()),
            _ => None,
        };
        self.phase = phase;
        if old != new {
            self.emit(Event::StateChanged(StateChange { old, new, reason }));
        }
    }

    fn fail_pending(&mut self, error: RequestError) {
        for cid in self.requests.drain() {
            self.emit(Event::Response {
                id: RequestId(cid),
                result: Err(error.clone()),
            });
        }
    }

    /// Ends the session in a closed state.
    fn finish(&mut self, state: SessionState, reason: CloseReason) {
        if self.state().is_closed() {
            return;
        }
        self.drop_link();
        self.fail_pending(RequestError::SessionClosed(reason.clone()));
        self.timers.stop_all();
        self.sent.clear();
        // No event per topic: the change to a closed state ends them all.
        self.topics.clear();
        self.transition(Phase::Closed { state, reason });
    }
}

/// A sequence number as the `cs` parameter and close reasons carry it.
fn sequence(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
