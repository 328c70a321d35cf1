//! `ClientSession`: the state machine of one client session (SPEC §8, §11, §12), sans-IO.
//! It is fed frames, transport closures, commands and instants, and drained of outputs.

mod config;
mod events;

pub use config::{ClientConfig, ConnectRequest};
pub use events::{
    Event, InboundRequestId, Output, PingDetails, Reply, RequestError, RequestId, SessionError, StateChange,
};

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use crate::message::{ErrorReason, Message, MessageError, ServiceId};
use crate::reconnect::ReconnectAction;
use crate::handshake::ReconnectParams;
use crate::handshake::{ConnectionResponse, ResponseCode, SessionGrant, SessionId, SessionToken};
use crate::state::{CloseReason, SessionState};

#[derive(Debug)]
struct Pending {
    sent_at: Instant,
    wall: SystemTime,
    deadline: Option<Instant>,
}

/// The transport as the session sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    /// No transport; waiting for a retry or closed.
    Down,
    /// Opening; the connection response must arrive before `deadline`.
    Handshaking { deadline: Instant },
    /// The connection response was accepted.
    Open,
}

#[derive(Debug)]
struct Recovering {
    lost_at: Instant,
    deadline: Instant,
    attempts: u32,
}

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
/// command such as `ping`, `invoke`, `respond`, `close`) the adapter:
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
    state: SessionState,
    link: Link,
    granted: Option<Granted>,
    close_reason: Option<CloseReason>,
    outputs: VecDeque<Output>,
    next_cid: i64,
    pending: HashMap<i64, Pending>,
    /// Request deadlines in the order they were set: one timeout for all, so in time order.
    deadlines: VecDeque<(Instant, i64)>,
    services: HashSet<ServiceId>,
    /// Sequence number of the last message sent (1-based, across reconnections).
    last_sent: i64,
    /// The most recent sent messages, for re-sending on 105.
    recovery: VecDeque<(i64, Bytes)>,
    /// Messages received from the server since the first connect, ABORT excluded (`ss`).
    received: i64,
    idle_deadline: Option<Instant>,
    recovering: Option<Recovering>,
    next_attempt: Option<Instant>,
    initial_attempts: u32,
    closing_deadline: Option<Instant>,
}

impl ClientSession {
    /// A session in CONNECTING that asks at once for its first connection.
    pub fn new(config: ClientConfig, now: Instant) -> Self {
        let mut session = ClientSession {
            config,
            state: SessionState::Connecting,
            link: Link::Down,
            granted: None,
            close_reason: None,
            outputs: VecDeque::new(),
            next_cid: 1,
            pending: HashMap::new(),
            deadlines: VecDeque::new(),
            services: HashSet::new(),
            last_sent: 0,
            recovery: VecDeque::new(),
            received: 0,
            idle_deadline: None,
            recovering: None,
            next_attempt: None,
            initial_attempts: 0,
            closing_deadline: None,
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
        self.state
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
        self.close_reason.as_ref()
    }

    /// Requests awaiting a response.
    pub fn pending_requests(&self) -> usize {
        self.pending.len()
    }

    /// The next output to carry out.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When `handle_timeout` must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let handshake = match self.link {
            Link::Handshaking { deadline } => Some(deadline),
            _ => None,
        };
        [
            handshake,
            self.idle_deadline,
            self.next_attempt,
            self.recovering.as_ref().map(|r| r.deadline),
            self.closing_deadline,
            self.deadlines.front().map(|d| d.0),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Lets the server's requests to `service` through as [`Event::InboundRequest`];
    /// requests to services not registered are answered with SERVICE_ERROR 100.
    pub fn register_service(&mut self, service: ServiceId) {
        self.services.insert(service);
    }

    /// Stops letting `service` through.
    pub fn deregister_service(&mut self, service: ServiceId) {
        self.services.remove(&service);
    }

    /// Sends a USER_PING; its [`Event::Response`] carries the round trip.
    pub fn ping(&mut self, now: Instant, wall: SystemTime) -> Result<RequestId, SessionError> {
        self.invoke(now, wall, ServiceId::USER_PING, Bytes::new())
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
        match self.state {
            SessionState::Connecting => return Err(SessionError::NotConnected),
            s if s.is_closed() => {
                return Err(SessionError::Closed(
                    self.close_reason.clone().unwrap_or(CloseReason::ClosedByClient),
                ))
            }
            _ if self.closing_deadline.is_some() => return Err(SessionError::Closing),
            SessionState::RecoveringReconnect
                if self.recovery.len() >= self.config.recovery_buffer_capacity =>
            {
                return Err(SessionError::RecoveryBufferFull(self.recovery.len()))
            }
            _ => {}
        }
        let cid = self.next_cid;
        let message = Message::ServiceRequest {
            service,
            cid,
            payload,
        };
        self.check_outbound_size(&message)?;
        self.next_cid = self.next_cid.checked_add(1).unwrap_or(1);
        let deadline = self.config.request_timeout.map(|t| now + t);
        if let Some(d) = deadline {
            self.deadlines.push_back((d, cid));
        }
        self.pending.insert(
            cid,
            Pending {
                sent_at: now,
                wall,
                deadline,
            },
        );
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
        if self.state.is_closed() {
            return Err(SessionError::Closed(
                self.close_reason.clone().unwrap_or(CloseReason::ClosedByClient),
            ));
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
        if self.state.is_closed() || self.closing_deadline.is_some() {
            return;
        }
        if self.state == SessionState::ConnectedActive && self.link == Link::Open {
            self.fail_pending(RequestError::SessionClosed(CloseReason::ClosedByClient));
            self.send(Message::CloseRequest);
            self.idle_deadline = None;
            self.closing_deadline = Some(now + self.config.close_timeout);
        } else {
            self.finish(SessionState::ClosedByClient, CloseReason::ClosedByClient);
        }
    }

    /// A frame (one WebSocket message) arrived from the server.
    pub fn handle_frame(&mut self, now: Instant, frame: Bytes) {
        match self.link {
            Link::Down => {}
            Link::Handshaking { .. } => self.handle_response(now, &frame),
            Link::Open => self.handle_message(now, frame),
        }
    }

    /// The transport ended without being asked to (or could not be opened).
    pub fn handle_transport_closed(&mut self, now: Instant, cause: &str) {
        if self.link == Link::Down {
            return;
        }
        self.link = Link::Down;
        let cause = cause.to_owned();
        let reason = match self.state {
            SessionState::Connecting => CloseReason::TransportFailed { cause },
            _ => CloseReason::ConnectionLost { cause },
        };
        self.connection_lost(now, reason);
    }

    /// Time has reached `now`: fire whatever deadlines have passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Link::Handshaking { deadline } = self.link {
            if deadline <= now {
                self.drop_link();
                let after = self.config.connection_timeout;
                self.connection_lost(now, CloseReason::HandshakeTimeout { after });
            }
        }
        if self.idle_deadline.is_some_and(|d| d <= now) {
            self.idle_deadline = None;
            self.drop_link();
            let cause = "idle: no system ping from the server within twice its ping period".to_owned();
            self.connection_lost(now, CloseReason::ConnectionLost { cause });
        }
        if self.closing_deadline.is_some_and(|d| d <= now) {
            self.finish(SessionState::ClosedByClient, CloseReason::ClosedByClient);
        }
        if let Some(r) = &self.recovering {
            if r.deadline <= now {
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
        }
        if self.next_attempt.is_some_and(|t| t <= now) {
            self.next_attempt = None;
            self.start_attempt(now);
        }
        while let Some(&(deadline, cid)) = self.deadlines.front() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_front();
            if self
                .pending
                .get(&cid)
                .is_some_and(|p| p.deadline == Some(deadline))
            {
                self.pending.remove(&cid);
                let after = self.config.request_timeout.unwrap_or_default();
                self.emit(Event::Response {
                    id: RequestId(cid),
                    result: Err(RequestError::TimedOut(after)),
                });
            }
        }
    }

    // ---- connection attempts -------------------------------------------------------

    fn start_attempt(&mut self, now: Instant) {
        let reconnect = match (&self.granted, self.state) {
            (Some(g), SessionState::RecoveringReconnect) => Some(ReconnectParams {
                token: g.token.clone(),
                available_client_sequence: self.recovery.front().map_or(self.last_sent + 1, |m| m.0),
                last_server_sequence: self.received,
            }),
            _ => None,
        };
        if self.state == SessionState::Connecting {
            self.initial_attempts += 1;
        }
        let request = ConnectRequest {
            url: self.config.url.clone(),
            carrier: self.config.carrier,
            params: self.config.params(reconnect),
        };
        self.link = Link::Handshaking {
            deadline: now + self.config.connection_timeout,
        };
        self.outputs.push_back(Output::Connect(request));
    }

    fn drop_link(&mut self) {
        if self.link != Link::Down {
            self.link = Link::Down;
            self.outputs.push_back(Output::CloseTransport);
        }
    }

    /// The current transport is gone (already `Link::Down`): close, retry or recover.
    fn connection_lost(&mut self, now: Instant, reason: CloseReason) {
        self.idle_deadline = None;
        if self.closing_deadline.is_some() {
            return self.finish(SessionState::ClosedByClient, CloseReason::ClosedByClient);
        }
        match self.state {
            SessionState::Connecting => {
                if self.initial_attempts < self.config.initial_connect_attempts {
                    self.next_attempt = Some(now + self.config.initial_retry_delay);
                } else {
                    self.finish(SessionState::ClosedFailed, reason);
                }
            }
            SessionState::ConnectedActive => match &self.config.reconnect {
                Some(rc) => {
                    self.recovering = Some(Recovering {
                        lost_at: now,
                        deadline: now + rc.timeout,
                        attempts: 0,
                    });
                    self.transition(SessionState::RecoveringReconnect, None);
                    self.schedule_reconnect(now);
                }
                None => self.finish(SessionState::ClosedByServer, reason),
            },
            SessionState::RecoveringReconnect => self.schedule_reconnect(now),
            _ => {}
        }
    }

    fn schedule_reconnect(&mut self, now: Instant) {
        let (Some(rc), Some(r)) = (&self.config.reconnect, &mut self.recovering) else {
            return;
        };
        r.attempts += 1;
        match rc
            .strategy
            .next_attempt(r.attempts, now.saturating_duration_since(r.lost_at))
        {
            ReconnectAction::RetryAfter(delay) => self.next_attempt = Some(now + delay),
            ReconnectAction::Abort => {
                self.finish(SessionState::ClosedByServer, CloseReason::ReconnectAborted)
            }
        }
    }

    fn handle_response(&mut self, now: Instant, frame: &[u8]) {
        let recovering = self.state == SessionState::RecoveringReconnect;
        let grant = match ConnectionResponse::parse(frame, self.config.version) {
            Ok(ConnectionResponse::Accepted(grant)) => grant,
            Ok(ConnectionResponse::Rejected(code)) => {
                return self.finish(SessionState::ClosedFailed, CloseReason::Rejected(code));
            }
            Err(e) if recovering => {
                return self.finish(SessionState::ClosedFailed, CloseReason::Handshake(e))
            }
            // A version or protocol error closes the session by the client (as the Python client does).
            Err(e) => return self.finish(SessionState::ClosedByClient, CloseReason::Handshake(e)),
        };
        // The token goes back verbatim as `c` to reconnect, as a header value or text: one
        // that is not printable ASCII (real ones are base64, SPEC §3.5) could not be sent
        // back intact, so the session could never be resumed. Refuse it now, like a response
        // that does not parse.
        if !grant.token.as_bytes().iter().all(u8::is_ascii_graphic) {
            let detail = "the session token is not 24 printable ASCII characters, so a reconnection could not send it back".to_owned();
            let state = if recovering {
                SessionState::ClosedFailed
            } else {
                SessionState::ClosedByClient
            };
            return self.finish(state, CloseReason::ProtocolError { detail });
        }
        let resent = match grant.code {
            ResponseCode::Reconnected if recovering => match self.resend_from(grant.recovery_sequence()) {
                Ok(n) => n,
                Err(reason) => return self.finish(SessionState::ClosedFailed, reason),
            },
            // 106, or a brand-new session where we asked to resume: what was in flight is gone.
            _ if recovering => {
                self.reset_sequences();
                0
            }
            _ => 0,
        };
        self.accept_grant(now, &grant);
        self.recovering = None;
        self.next_attempt = None;
        self.transition(SessionState::ConnectedActive, None);
        self.emit(Event::Connected {
            session_id: grant.session_id,
            code: grant.code,
            resent,
        });
    }

    fn accept_grant(&mut self, now: Instant, grant: &SessionGrant) {
        let previous_limit = self.granted.as_ref().and_then(|g| g.max_message_size);
        let ping_period = Duration::from_millis(grant.ping_period_ms.max(0) as u64);
        self.granted = Some(Granted {
            code: grant.code,
            session_id: grant.session_id,
            token: grant.token.clone(),
            ping_period,
            max_message_size: grant.max_message_size().or(previous_limit),
        });
        self.link = Link::Open;
        self.arm_idle(now);
    }

    fn arm_idle(&mut self, now: Instant) {
        let period = self.granted.as_ref().map_or(Duration::ZERO, |g| g.ping_period);
        self.idle_deadline = (!period.is_zero()).then(|| now + period * 2);
    }

    /// Re-sends S … last_sent on 105.
    fn resend_from(&mut self, recovery_sequence: Option<i64>) -> Result<usize, CloseReason> {
        let Some(s) = recovery_sequence else {
            return Ok(0);
        };
        if s < 1 || s > self.last_sent {
            // The server has everything we sent.
            return Ok(0);
        }
        let oldest = self.recovery.front().map(|m| m.0);
        if oldest.is_none_or(|o| o > s) {
            return Err(CloseReason::LostMessages {
                needed_from: s,
                oldest_held: oldest,
            });
        }
        let frames: Vec<Bytes> = self
            .recovery
            .iter()
            .filter(|m| m.0 >= s)
            .map(|m| m.1.clone())
            .collect();
        let n = frames.len();
        self.outputs.extend(frames.into_iter().map(Output::Transmit));
        Ok(n)
    }

    fn reset_sequences(&mut self) {
        self.last_sent = 0;
        self.received = 0;
        self.recovery.clear();
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
            Err(e) => return self.protocol_error(e.to_string()),
        };
        if message != Message::Abort {
            self.received += 1;
        }
        match message {
            Message::ServiceRequest {
                service,
                cid,
                payload,
            } => self.handle_request(now, service, cid, payload),
            Message::ServiceResponse { cid, payload } => {
                if let Some(p) = self.pending.remove(&cid) {
                    let round_trip = now.saturating_duration_since(p.sent_at);
                    let reply = Reply {
                        payload,
                        round_trip,
                        sent_at: p.wall,
                    };
                    self.emit(Event::Response {
                        id: RequestId(cid),
                        result: Ok(reply),
                    });
                }
            }
            Message::ServiceError {
                cid,
                description,
                reason,
            } => {
                if self.pending.remove(&cid).is_some() {
                    let result = Err(RequestError::Service { description, reason });
                    self.emit(Event::Response {
                        id: RequestId(cid),
                        result,
                    });
                }
            }
            Message::TopicValue { compressed: true, .. } | Message::TopicDelta { compressed: true, .. } => {
                self.protocol_error(
                    "a compressed topic message arrived, but zlib was not advertised (ca=8)".into(),
                )
            }
            m @ (Message::TopicValue { .. } | Message::TopicDelta { .. }) => self.emit(Event::Topic(m)),
            Message::Abort => {
                if self.closing_deadline.is_some() {
                    self.finish(SessionState::ClosedByClient, CloseReason::ClosedByClient)
                } else {
                    self.finish(SessionState::ClosedByServer, CloseReason::Aborted)
                }
            }
            Message::CloseRequest => {
                self.protocol_error("the server sent CLOSE_REQUEST, a client-only message".into())
            }
        }
    }

    fn handle_request(&mut self, now: Instant, service: ServiceId, cid: i64, payload: Bytes) {
        if service == ServiceId::SYSTEM_PING {
            // Answered whatever its cid, even 0: the server counts on it.
            self.send(Message::ServiceResponse {
                cid,
                payload: Bytes::new(),
            });
            self.arm_idle(now);
            self.emit(Event::SystemPingAnswered);
        } else if self.services.contains(&service) {
            self.emit(Event::InboundRequest {
                id: InboundRequestId(cid),
                service,
                payload,
            });
        } else if cid == 0 {
            // One-way (cid 0) requests are never answered.
        } else if service == ServiceId::USER_PING {
            self.send(Message::ServiceResponse {
                cid,
                payload: Bytes::new(),
            });
        } else {
            let description = format!("Unknown client service: {}", service.0);
            self.send(Message::ServiceError {
                cid,
                description,
                reason: ErrorReason::COMMUNICATION_FAILURE,
            });
        }
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
        self.last_sent += 1;
        if self.config.recovery_buffer_capacity > 0 {
            if self.recovery.len() >= self.config.recovery_buffer_capacity {
                self.recovery.pop_front();
            }
            self.recovery.push_back((self.last_sent, frame.clone()));
        }
        if self.link == Link::Open {
            self.outputs.push_back(Output::Transmit(frame));
        }
    }

    // ---- state ---------------------------------------------------------------------

    fn emit(&mut self, event: Event) {
        self.outputs.push_back(Output::Event(event));
    }

    fn transition(&mut self, new: SessionState, reason: Option<CloseReason>) {
        let old = self.state;
        debug_assert!(old.can_transition_to(new), "illegal transition {old} -> {new}");
        if !old.can_transition_to(new) {
            return;
        }
        self.state = new;
        self.emit(Event::StateChanged(StateChange { old, new, reason }));
    }

    fn fail_pending(&mut self, error: RequestError) {
        let mut ids: Vec<i64> = self.pending.drain().map(|(cid, _)| cid).collect();
        ids.sort_unstable();
        self.deadlines.clear();
        for cid in ids {
            self.emit(Event::Response {
                id: RequestId(cid),
                result: Err(error.clone()),
            });
        }
    }

    /// Ends the session in a closed state.
    fn finish(&mut self, new: SessionState, reason: CloseReason) {
        if self.state.is_closed() {
            return;
        }
        self.drop_link();
        self.fail_pending(RequestError::SessionClosed(reason.clone()));
        self.idle_deadline = None;
        self.recovering = None;
        self.next_attempt = None;
        self.closing_deadline = None;
        self.recovery.clear();
        self.close_reason = Some(reason.clone());
        self.transition(new, Some(reason));
    }
}
