//! A client session driven by a script of steps (frames, time, transport loss, commands),
//! with the checks every step must pass: the `client_session` fuzz target runs it. With the
//! `arbitrary` feature a script can be made from any bytes.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use crate::{
    Backoff, ClientConfig, ClientSession, ConnectionParams, Credentials, ErrorReason, Event, FixedDelay,
    InboundRequestId, Message, Output, ParameterCarrier, ProtocolVersion, ReconnectAction, ReconnectConfig,
    RequestId, ResponseCode, ServiceId, SessionState, StateChange, TransportError,
};

/// Steps a script runs at most.
pub const MAX_STEPS: usize = 256;

/// A whole `client_session` input: how the session is set up, then what happens to it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct ClientScript {
    /// The configuration.
    pub setup: SessionSetup,
    /// What happens, in order (the first [`MAX_STEPS`]).
    pub steps: Vec<Step>,
}

/// How the scripted session is configured (the first bytes of a fuzz input).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct SessionSetup {
    /// bit 0 reconnection on; bit 1 version 29; bit 2 the other carrier; bit 3 a request
    /// timeout; bit 4 no `$Environment`; bit 5 proposed properties.
    pub flags: u8,
    /// Strategy (% 4): backoff, fixed delay, abort after `strategy_arg % 4` attempts, abort at once.
    pub strategy: u8,
    /// The fixed delay in ms.
    pub strategy_arg: u16,
    /// Reconnection timeout in ms, plus 1.
    pub reconnect_timeout_ms: u16,
    /// Connection timeout in ms, plus 1.
    pub connection_timeout_ms: u16,
    /// Initial connection attempts (% 3 + 1).
    pub initial_attempts: u8,
    /// Delay between initial attempts, ms.
    pub retry_delay_ms: u16,
    /// Request timeout in ms, plus 1 (with flag bit 3).
    pub request_timeout_ms: u16,
    /// Inbound limit: 0 the default, else `32 << (n % 16)` bytes.
    pub max_inbound: u8,
    /// Recovery buffer capacity: `n % 8`, or 256 when `n >= 128`.
    pub recovery_capacity: u8,
    /// Close timeout in ms.
    pub close_timeout_ms: u16,
    /// Identity (% 4): anonymous, `bob`, empty principal, `a b+é`; (/ 4 % 3): no
    /// credentials, `secret`, `pässwörd`.
    pub identity: u8,
    /// Services registered from the start: bit 0 87, bit 1 99, bit 2 56, bit 3 9999.
    pub services: u8,
}

impl SessionSetup {
    /// The configuration this setup stands for.
    pub fn config(&self) -> ClientConfig {
        let Ok(mut config) = ClientConfig::new("ws://h:1") else {
            unreachable!("a constant, valid URL")
        };
        if self.flags & 2 != 0 {
            config = config.with_version(ProtocolVersion::V29);
        }
        if self.flags & 4 != 0 {
            config.carrier = match config.carrier {
                ParameterCarrier::Headers => ParameterCarrier::Query,
                ParameterCarrier::Query => ParameterCarrier::Headers,
            };
        }
        config.reconnect = (self.flags & 1 != 0).then(|| {
            let arg = self.strategy_arg;
            let strategy: Arc<dyn crate::ReconnectStrategy> = match self.strategy % 4 {
                0 => Arc::new(Backoff::default()),
                1 => Arc::new(FixedDelay(Duration::from_millis(arg.into()))),
                2 => Arc::new(move |attempt: u32, _: Duration| {
                    if attempt > u32::from(arg % 4) {
                        ReconnectAction::Abort
                    } else {
                        ReconnectAction::RetryAfter(Duration::from_millis(u64::from(arg / 4)))
                    }
                }),
                _ => Arc::new(|_: u32, _: Duration| ReconnectAction::Abort),
            };
            ReconnectConfig {
                timeout: Duration::from_millis(u64::from(self.reconnect_timeout_ms) + 1),
                strategy,
            }
        });
        config.connection_timeout = Duration::from_millis(u64::from(self.connection_timeout_ms) + 1);
        config.initial_connect_attempts = u32::from(self.initial_attempts % 3) + 1;
        config.initial_retry_delay = Duration::from_millis(self.retry_delay_ms.into());
        config.request_timeout =
            (self.flags & 8 != 0).then(|| Duration::from_millis(u64::from(self.request_timeout_ms) + 1));
        if self.flags & 16 != 0 {
            config.environment = None;
        }
        if self.flags & 32 != 0 {
            for (k, v) in [
                ("Foo", "bar"),
                ("k", "v \"q\" \\ 'a'\ttab"),
                ("$Country", "gb"),
                ("é", "\u{1}\n"),
            ] {
                let _ = config.properties.insert(k, v);
            }
        }
        if self.max_inbound != 0 {
            config.max_inbound_message_size = 32 << (self.max_inbound % 16);
        }
        config.recovery_buffer_capacity = if self.recovery_capacity >= 128 {
            256
        } else {
            usize::from(self.recovery_capacity % 8)
        };
        config.close_timeout = Duration::from_millis(self.close_timeout_ms.into());
        config.principal = match self.identity % 4 {
            0 => None,
            1 => Some("bob".to_owned()),
            2 => Some(String::new()),
            _ => Some("a b+é".to_owned()),
        };
        config.credentials = match self.identity / 4 % 3 {
            0 => Credentials::None,
            1 => Credentials::password("secret"),
            _ => Credentials::password("pässwörd"),
        };
        config
    }

    /// The services registered from the start.
    pub fn services(&self) -> impl Iterator<Item = ServiceId> + '_ {
        (0..4)
            .filter(|b| self.services & (1 << b) != 0)
            .map(service_by_index)
    }
}

fn service_by_index(n: u8) -> ServiceId {
    [
        ServiceId(87),
        ServiceId(99),
        ServiceId::USER_PING,
        ServiceId(9999),
    ][usize::from(n % 4)]
}

/// A well-formed message from the server: which (`kind` % 10), and its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct MessageOp {
    /// 0 SYSTEM_PING, 1 USER_PING, 2 request to service `select`, 3 response to pending
    /// request `select`, 4 error for it, 5 response to `cid`, 6 topic value, 7 topic delta,
    /// 8 ABORT, 9 CLOSE_REQUEST.
    pub kind: u8,
    /// A service or pending request index; bit 0 also the compression bit of topic messages.
    pub select: u8,
    /// Conversation id (or topic id).
    pub cid: i64,
    /// Payload length.
    pub size: u16,
}

/// A connection response: mostly well formed, sometimes bent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct ResponseOp {
    /// The code (% 12): 100, 105, 106, 116, 117, 118, 102, 119, 107, 111, 42 (unknown), or
    /// the low byte of `last_field`.
    pub code: u8,
    /// The version byte (% 8): 6 the other version we speak, 7 version 26, else the session's.
    pub version: u8,
    /// The token (% 3): `ABCDEFGHIJKLMNOPQRSTUVWX`, a real captured token, or `raw_token`.
    pub token: u8,
    /// The ping period (% 5): 0, 1000, 90000, -1 or `i64::MAX` ms.
    pub ping: u8,
    /// Bytes 51..55.
    pub last_field: u32,
    /// The length (% 8): 0 one byte short, 1 one byte long, else exact.
    pub length: u8,
    /// Token bytes for `token` 2.
    pub raw_token: [u8; 24],
}

/// One step of a `client_session` run.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Step {
    /// Arbitrary frame bytes.
    RawFrame(Vec<u8>),
    /// a well-formed message.
    Message(MessageOp),
    /// a connection response.
    Response(ResponseOp),
    /// time passes by this many ms.
    Advance(u16),
    /// time jumps to the session's next deadline.
    AdvanceToDeadline,
    /// the transport ends unasked.
    TransportClosed,
    /// the user pings.
    Ping,
    /// the user calls service `service` with a payload of `size % (1 MiB + 1)` bytes.
    Invoke {
        /// Service index.
        service: u8,
        /// Payload size.
        size: u32,
    },
    /// the user closes.
    Close,
    /// the user answers inbound request `index` (or an unknown id), with an error when `error` is odd.
    Respond {
        /// Which received request (modulo their number); the id 0 when none was received.
        index: u8,
        /// Odd: answer with SERVICE_ERROR.
        error: u8,
        /// Payload size.
        size: u8,
    },
    /// the user registers (`on` odd) or deregisters a service.
    Register {
        /// Service index.
        service: u8,
        /// Odd: register.
        on: u8,
    },
    /// time passes by this many seconds.
    AdvanceSeconds(u16),
}

const TOKEN: [u8; 24] = *b"ABCDEFGHIJKLMNOPQRSTUVWX";
const CAPTURED_TOKEN: [u8; 24] = *b"8j/qMkxT8Iw2dwqeFA9gEzpA";
/// The session driven by the script's frames, time steps, transport
/// closures and user commands. After every step: only SPEC §11.3 transitions, no request
/// completed twice or unknown, nothing pending once closed, every transmitted frame a
/// message, every connect request's parameters readable back by a server. At the end a
/// user close must end the session within its close timeout, with nothing left pending.
impl ClientScript {
    /// Runs the script, panicking when a check fails.
    pub fn run(&self) {
        let setup = self.setup;
        let config = setup.config();
        let version = config.version;
        // One real instant per run; everything else is an offset from it, so no sleeping.
        let base = Instant::now();
        let mut now = base;
        let wall = |now: Instant| SystemTime::UNIX_EPOCH + now.duration_since(base);
        let mut session = ClientSession::new(config, now);
        for service in setup.services() {
            session.register_service(service);
        }
        let mut check = Checker::default();
        check.drain(&mut session);
        for step in self.steps.iter().take(MAX_STEPS).cloned() {
            match step {
                Step::RawFrame(bytes) => session.handle_frame(now, bytes.into()),
                Step::Message(m) => {
                    let frame = server_message(&m, &check.open).to_bytes();
                    session.handle_frame(now, frame)
                }
                Step::Response(r) => session.handle_frame(now, connection_response_frame(&r, version)),
                Step::Advance(ms) => {
                    now += Duration::from_millis(ms.into());
                    session.handle_timeout(now)
                }
                Step::AdvanceSeconds(s) => {
                    now += Duration::from_secs(s.into());
                    session.handle_timeout(now)
                }
                Step::AdvanceToDeadline => {
                    if let Some(deadline) = session.poll_timeout() {
                        now = now.max(deadline);
                    }
                    session.handle_timeout(now)
                }
                Step::TransportClosed => session.handle_transport_closed(now, TransportError::Ended),
                Step::Ping => {
                    if let Ok(id) = session.ping(now, wall(now)) {
                        check.issued(id);
                    }
                }
                Step::Invoke { service, size } => {
                    // Half the time small, else up to 1 MiB: larger than any limit it meets.
                    let size = if size & 1 == 0 {
                        size % 64
                    } else {
                        size % ((1 << 20) + 1)
                    };
                    let payload = Bytes::from(vec![0xa5; size as usize]);
                    if let Ok(id) = session.invoke(now, wall(now), service_by_index(service), payload) {
                        check.issued(id);
                    }
                }
                Step::Close => session.close(now),
                Step::Respond { index, error, size } => {
                    let id = match check.inbound.len() {
                        0 => InboundRequestId(0),
                        n => check.inbound[usize::from(index) % n],
                    };
                    let result = if error & 1 == 1 {
                        session.respond_error(id, "handler failed", ErrorReason::CALLBACK_EXCEPTION)
                    } else {
                        session.respond(id, Bytes::from(vec![7; size.into()]))
                    };
                    if let Err(e) = result {
                        let _ = e.to_string();
                    }
                }
                Step::Register { service, on } => {
                    if on & 1 == 1 {
                        session.register_service(service_by_index(service))
                    } else {
                        session.deregister_service(service_by_index(service))
                    }
                }
            }
            check.drain(&mut session);
        }
        // However the run left it, closing ends the session within the close timeout.
        session.close(now);
        check.drain(&mut session);
        now += session.config().close_timeout + Duration::from_millis(1);
        session.handle_timeout(now);
        check.drain(&mut session);
        assert!(
            session.state().is_closed(),
            "still {} after close + close timeout",
            session.state()
        );
        assert!(check.open.is_empty());
    }
}

/// A message the server might send, for `m`'s kind.
fn server_message(m: &MessageOp, open: &BTreeSet<RequestId>) -> Message {
    let payload = Bytes::from(vec![0x5a; m.size.into()]);
    let pending = || match open.len() {
        0 => m.cid,
        n => open
            .iter()
            .nth(usize::from(m.select) % n)
            .map_or(m.cid, |id| id.0),
    };
    match m.kind % 10 {
        0 => Message::ServiceRequest {
            service: ServiceId::SYSTEM_PING,
            cid: m.cid,
            payload: Bytes::new(),
        },
        1 => Message::ServiceRequest {
            service: ServiceId::USER_PING,
            cid: m.cid,
            payload: Bytes::new(),
        },
        2 => Message::ServiceRequest {
            service: service_by_index(m.select),
            cid: m.cid,
            payload,
        },
        3 => Message::ServiceResponse {
            cid: pending(),
            payload,
        },
        4 => Message::ServiceError {
            cid: pending(),
            description: "boom".to_owned(),
            reason: ErrorReason::ACCESS_DENIED,
        },
        5 => Message::ServiceResponse { cid: m.cid, payload },
        6 => Message::TopicValue {
            topic_id: m.cid as i32,
            compressed: m.select & 1 == 1,
            payload,
        },
        7 => Message::TopicDelta {
            topic_id: m.cid as i32,
            compressed: m.select & 1 == 1,
            payload,
        },
        8 => Message::Abort,
        _ => Message::CloseRequest,
    }
}

fn connection_response_frame(r: &ResponseOp, version: ProtocolVersion) -> Bytes {
    const CODES: [u8; 10] = [100, 105, 106, 116, 117, 118, 102, 119, 107, 111];
    let code_byte = match r.code % 12 {
        10 => 42,
        11 => r.last_field as u8,
        n => CODES[usize::from(n)],
    };
    let version_byte = match r.version % 8 {
        6 => match version {
            ProtocolVersion::V25 => 29,
            ProtocolVersion::V29 => 25,
        },
        7 => 26,
        _ => version.number(),
    };
    let token = match r.token % 3 {
        0 => TOKEN,
        1 => CAPTURED_TOKEN,
        _ => r.raw_token,
    };
    let ping_period_ms = [0, 1000, 90_000, -1, i64::MAX][usize::from(r.ping % 5)];
    let mut frame = vec![b'#', version_byte, code_byte];
    if ResponseCode::from_u8(code_byte).is_some_and(ResponseCode::opens_session) {
        frame.extend_from_slice(&1u64.to_be_bytes());
        frame.extend_from_slice(&2u64.to_be_bytes());
        frame.extend_from_slice(&token);
        frame.extend_from_slice(&ping_period_ms.to_be_bytes());
        frame.extend_from_slice(&r.last_field.to_be_bytes());
    }
    match r.length % 8 {
        0 => {
            frame.pop();
        }
        1 => frame.push(0),
        _ => {}
    }
    frame.into()
}

/// The checks of a client session under any input, and what they remember between steps:
/// only SPEC §11.3 transitions, no request completed twice or unknown, nothing pending once
/// closed, every transmitted frame a message, every connect request's parameters readable
/// back by a server.
#[derive(Debug, Default)]
pub struct Checker {
    state: Option<SessionState>,
    /// Requests issued and not yet completed.
    open: BTreeSet<RequestId>,
    /// Inbound request ids delivered to the application.
    inbound: Vec<InboundRequestId>,
}

impl Checker {
    /// Records a request the application made.
    pub fn issued(&mut self, id: RequestId) {
        assert!(self.open.insert(id), "{id:?} issued while still open");
    }

    /// Carries out every output of `session` and checks it and the session's state.
    pub fn drain(&mut self, session: &mut ClientSession) {
        let mut state = *self.state.get_or_insert(SessionState::Connecting);
        while let Some(output) = session.poll_output() {
            match output {
                Output::Event(Event::StateChanged(StateChange { old, new, reason })) => {
                    assert_eq!(old, state, "a change from a state the session was not in");
                    assert!(old.can_transition_to(new), "illegal transition {old} -> {new}");
                    assert_eq!(new.is_closed(), reason.is_some(), "{old} -> {new}: {reason:?}");
                    state = new;
                }
                Output::Event(Event::Response { id, result }) => {
                    assert!(
                        self.open.remove(&id),
                        "{id:?} completed twice, or never issued: {result:?}"
                    );
                }
                Output::Event(Event::Connected { .. }) => {
                    assert_eq!(state, SessionState::ConnectedActive)
                }
                Output::Event(Event::InboundRequest { id, .. }) => self.inbound.push(id),
                Output::Event(_) | Output::CloseTransport => {}
                Output::Transmit(frame) => {
                    if let Err(e) = Message::decode(&frame) {
                        panic!("the session sent {frame:02x?}, which is no message: {e}")
                    }
                }
                Output::Connect(request) => {
                    assert!(!state.is_closed(), "a connect request in {state}");
                    assert_eq!(request.is_reconnect(), state == SessionState::RecoveringReconnect);
                    let uri = request.uri();
                    let query = uri.split_once('?').map(|(_, q)| q);
                    let headers = request.headers();
                    let parsed =
                        ConnectionParams::parse(query, headers.iter().map(|(n, v)| (*n, v.as_bytes())));
                    assert_eq!(
                        parsed.as_ref(),
                        Ok(&expected_after_parse(&request.params, request.carrier)),
                        "{uri} {headers:?}"
                    );
                }
            }
        }
        self.state = Some(state);
        assert_eq!(session.state(), state);
        assert_eq!(session.pending_requests(), self.open.len());
        if state.is_closed() {
            assert!(self.open.is_empty(), "closed with {:?} pending", self.open);
            assert_eq!(session.poll_timeout(), None);
        }
    }
}

/// What `params` become once written in `carrier`'s form and read back. Two losses are by
/// design: an empty principal is anonymous (the Python client sends an empty `username` for
/// anonymous sessions), and the query carries `password` only together with `username` (as
/// the JavaScript client does).
pub fn expected_after_parse(params: &ConnectionParams, carrier: ParameterCarrier) -> ConnectionParams {
    let mut expected = params.clone();
    if carrier == ParameterCarrier::Query && params.principal.is_none() {
        expected.credentials = Credentials::None;
    }
    if expected.principal.as_deref() == Some("") {
        expected.principal = None;
    }
    expected
}
