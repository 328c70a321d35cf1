//! A reference model of the session phases and the transitions of SPEC §11.3, run step by
//! step beside a real `ClientSession` under random operations; after every step both are in
//! the same phase, with the same timers armed for the same instants.
//!
//! The model owns the clock: time only moves to the deadline of a timer an operation names
//! (through every earlier one) or by ticks that stop short of every deadline. Timers that
//! fall due together fire in the order of the session's `Timer` enum, each at most once per
//! call: that is the timer table's contract, which the model follows rather than restates.
// Harness code outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use diffusion_proto::internal::{Attempt, Phase, Timer};
use diffusion_proto::{
    ClientConfig, ClientSession, CloseReason, ConnectionResponse, Event, LastField, Message, Output,
    ProtocolVersion, ReconnectAction, ReconnectConfig, ResponseCode, ServiceId, SessionGrant, SessionId,
    SessionState, SessionToken, StateChange, TransportError,
};
use proptest::prelude::*;
use SessionState::*;

const CONNECTION_TIMEOUT: Duration = Duration::from_secs(3600);
const RECONNECT_TIMEOUT: Duration = Duration::from_millis(5000);
const CLOSE_TIMEOUT: Duration = Duration::from_millis(1000);
const PING_PERIOD_MS: i64 = 1000;
/// The client gives up on a connection after twice the ping period without a SYSTEM_PING.
const IDLE: Duration = Duration::from_millis(2 * PING_PERIOD_MS as u64);

/// One operation on the session.
#[derive(Debug, Clone, Copy)]
enum Op {
    /// A connection response with this code (100/105/106 success, 116/117/118 rejection).
    Response(u8),
    /// A success response with the wrong protocol version.
    WrongVersion,
    /// The transport ends without being asked to.
    TransportLoss,
    /// ABORT from the server.
    Abort,
    /// A SYSTEM_PING from the server (proves the connection alive).
    SystemPing,
    /// The application closes.
    UserClose,
    /// The application pings (a request that must end one way or another).
    UserPing,
    /// From now on the reconnection strategy gives up.
    StrategyGivesUp,
    /// Time moves on, short of every deadline.
    Tick(u64),
    /// Time moves to the deadline of this timer, if it is armed.
    Expire(Timer),
}

/// How the model expects a session to have closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    ClosedByClient,
    Aborted,
    ConnectionLost,
    ReconnectAborted,
    ReconnectTimeout,
    Rejected(u8),
    Handshake,
    HandshakeTimeout,
    TransportFailed,
}

impl Why {
    fn of(reason: &CloseReason) -> Why {
        match reason {
            CloseReason::ClosedByClient => Why::ClosedByClient,
            CloseReason::Aborted => Why::Aborted,
            CloseReason::ConnectionLost { .. } => Why::ConnectionLost,
            CloseReason::ReconnectAborted => Why::ReconnectAborted,
            CloseReason::ReconnectTimeout { .. } => Why::ReconnectTimeout,
            CloseReason::Rejected(code) => Why::Rejected(code.code()),
            CloseReason::Handshake(_) => Why::Handshake,
            CloseReason::HandshakeTimeout { .. } => Why::HandshakeTimeout,
            CloseReason::TransportFailed { .. } => Why::TransportFailed,
            other => panic!("the model never expects {other:?}"),
        }
    }
}

/// The phase as the model sees it: the session's `Phase` without its bookkeeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum P {
    Connecting(Attempt),
    Active,
    Closing,
    Recovering(Attempt),
    Closed(SessionState),
}

impl P {
    fn of(phase: &Phase) -> P {
        match phase {
            Phase::Connecting { link, .. } => P::Connecting(*link),
            Phase::Active => P::Active,
            Phase::Closing => P::Closing,
            Phase::Recovering { link, .. } => P::Recovering(*link),
            Phase::Closed { state, .. } => P::Closed(*state),
        }
    }

    fn state(self) -> SessionState {
        match self {
            P::Connecting(_) => Connecting,
            P::Active | P::Closing => ConnectedActive,
            P::Recovering(_) => RecoveringReconnect,
            P::Closed(state) => state,
        }
    }

    fn opening(self) -> bool {
        matches!(
            self,
            P::Connecting(Attempt::Opening) | P::Recovering(Attempt::Opening)
        )
    }
}

/// The reference model.
#[derive(Debug)]
struct Model {
    phase: P,
    reconnect: bool,
    strategy_gives_up: bool,
    timers: BTreeMap<Timer, Instant>,
    why: Option<Why>,
    /// The transitions of the current step.
    changes: Vec<(SessionState, SessionState)>,
}

impl Model {
    fn new(now: Instant, reconnect: bool) -> Model {
        Model {
            phase: P::Connecting(Attempt::Opening),
            reconnect,
            strategy_gives_up: false,
            timers: BTreeMap::from([(Timer::Handshake, now + CONNECTION_TIMEOUT)]),
            why: None,
            changes: Vec::new(),
        }
    }

    fn go(&mut self, to: P) {
        let (from, to_state) = (self.phase.state(), to.state());
        if from != to_state {
            assert!(
                from.can_transition_to(to_state),
                "the model itself broke §11.3: {from} -> {to_state}"
            );
            self.changes.push((from, to_state));
        }
        self.phase = to;
    }

    fn close(&mut self, to: SessionState, why: Why) {
        self.go(P::Closed(to));
        self.why = Some(why);
        self.timers.clear();
    }

    /// The link of a connecting or recovering session goes down (or the connection of an
    /// active one: the phase changes next).
    fn link_down(&mut self) {
        self.timers.remove(&Timer::Handshake);
        self.phase = match self.phase {
            P::Connecting(_) => P::Connecting(Attempt::Waiting),
            P::Recovering(_) => P::Recovering(Attempt::Waiting),
            other => other,
        };
    }

    /// The current connection is gone: closing ends, the first connection fails (one
    /// attempt), a connected session recovers or closes, a recovering one tries again or
    /// gives up.
    fn lost(&mut self, now: Instant, why: Why) {
        self.link_down();
        self.timers.remove(&Timer::Idle);
        match self.phase {
            P::Closing => self.close(ClosedByClient, Why::ClosedByClient),
            P::Connecting(_) => self.close(ClosedFailed, why),
            P::Active if self.reconnect => {
                self.go(P::Recovering(Attempt::Waiting));
                self.timers.insert(Timer::Reconnect, now + RECONNECT_TIMEOUT);
                self.retry(now);
            }
            P::Active => self.close(ClosedByServer, Why::ConnectionLost),
            P::Recovering(_) => self.retry(now),
            P::Closed(_) => {}
        }
    }

    /// The strategy's answer: give up, or try again at once.
    fn retry(&mut self, now: Instant) {
        if self.strategy_gives_up {
            self.close(ClosedByServer, Why::ReconnectAborted)
        } else {
            self.timers.insert(Timer::Retry, now);
        }
    }

    /// A connection response (or any frame while opening, which is read as one).
    fn response(&mut self, now: Instant, outcome: Result<u8, ()>) {
        let recovering = matches!(self.phase, P::Recovering(_));
        match outcome {
            Ok(100 | 105 | 106) => {
                self.timers.clear();
                self.timers.insert(Timer::Idle, now + IDLE);
                self.go(P::Active);
            }
            Ok(code) => self.close(ClosedFailed, Why::Rejected(code)),
            // A response that does not parse: a protocol error of the first connection
            // (closed by the client, as the Python client does), a failed reconnection.
            Err(()) if recovering => self.close(ClosedFailed, Why::Handshake),
            Err(()) => self.close(ClosedByClient, Why::Handshake),
        }
    }

    /// What a frame from the server does, by phase.
    fn frame(&mut self, now: Instant, frame: Frame) {
        if self.phase.opening() {
            let outcome = match frame {
                Frame::Response(code) => Ok(code),
                Frame::WrongVersion | Frame::Abort | Frame::SystemPing => Err(()),
            };
            return self.response(now, outcome);
        }
        if !matches!(self.phase, P::Active | P::Closing) {
            return;
        }
        match frame {
            // Not a message type: dropped, like every unknown type.
            Frame::Response(_) | Frame::WrongVersion => {}
            Frame::Abort if self.phase == P::Closing => self.close(ClosedByClient, Why::ClosedByClient),
            Frame::Abort => self.close(ClosedByServer, Why::Aborted),
            Frame::SystemPing => {
                self.timers.insert(Timer::Idle, now + IDLE);
            }
        }
    }

    fn user_close(&mut self, now: Instant) {
        match self.phase {
            P::Active => {
                self.phase = P::Closing;
                self.timers.remove(&Timer::Idle);
                self.timers.insert(Timer::Close, now + CLOSE_TIMEOUT);
            }
            P::Closing | P::Closed(_) => {}
            _ => self.close(ClosedByClient, Why::ClosedByClient),
        }
    }

    fn transport_loss(&mut self, now: Instant) {
        let why = match self.phase {
            P::Connecting(Attempt::Opening) => Why::TransportFailed,
            P::Recovering(Attempt::Opening) | P::Active | P::Closing => Why::ConnectionLost,
            // No transport to lose.
            _ => return,
        };
        self.lost(now, why);
    }

    /// Every timer due at `now`, in `Timer` order, each at most once.
    fn fire_due(&mut self, now: Instant) {
        let mut fired = Vec::new();
        while let Some(timer) = self
            .timers
            .iter()
            .find(|(t, at)| **at <= now && !fired.contains(*t))
            .map(|(t, _)| *t)
        {
            self.timers.remove(&timer);
            fired.push(timer);
            match timer {
                Timer::Handshake => self.lost(now, Why::HandshakeTimeout),
                Timer::Idle => self.lost(now, Why::ConnectionLost),
                Timer::Close => self.close(ClosedByClient, Why::ClosedByClient),
                Timer::Reconnect => self.close(ClosedFailed, Why::ReconnectTimeout),
                Timer::Retry => {
                    self.phase = match self.phase {
                        P::Connecting(_) => P::Connecting(Attempt::Opening),
                        P::Recovering(_) => P::Recovering(Attempt::Opening),
                        other => other,
                    };
                    self.timers.insert(Timer::Handshake, now + CONNECTION_TIMEOUT);
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Frame {
    Response(u8),
    WrongVersion,
    Abort,
    SystemPing,
}

fn response_frame(code: u8, version: u8) -> Bytes {
    let code = ResponseCode::from_u8(code).unwrap();
    let response = if code.opens_session() {
        ConnectionResponse::Accepted(SessionGrant {
            code,
            session_id: SessionId { server: 1, value: 2 },
            token: SessionToken::new(*b"ABCDEFGHIJKLMNOPQRSTUVWX"),
            ping_period_ms: PING_PERIOD_MS,
            // For 105: recovery sequence 0, "the server has everything".
            last_field: LastField::for_code(code, 0),
        })
    } else {
        ConnectionResponse::Rejected(code)
    };
    let mut frame = response.encode(ProtocolVersion::V25).to_vec();
    frame[1] = version;
    frame.into()
}

/// The real session, the model, and the clock they share.
struct Run {
    now: Instant,
    session: ClientSession,
    model: Model,
    gives_up: Arc<AtomicBool>,
    pending: usize,
    /// Every transition so far.
    history: Vec<(SessionState, SessionState)>,
}

impl Run {
    fn new(reconnect: bool) -> Run {
        let now = Instant::now();
        let gives_up = Arc::new(AtomicBool::new(false));
        let mut config = ClientConfig::new("ws://h:1").unwrap();
        config.connection_timeout = CONNECTION_TIMEOUT;
        config.close_timeout = CLOSE_TIMEOUT;
        config.initial_connect_attempts = 1;
        config.reconnect = reconnect.then(|| {
            let flag = gives_up.clone();
            ReconnectConfig {
                timeout: RECONNECT_TIMEOUT,
                strategy: Arc::new(move |_: u32, _: Duration| {
                    if flag.load(Ordering::SeqCst) {
                        ReconnectAction::Abort
                    } else {
                        ReconnectAction::RetryAfter(Duration::ZERO)
                    }
                }),
            }
        });
        let mut run = Run {
            now,
            session: ClientSession::new(config, now),
            model: Model::new(now, reconnect),
            gives_up,
            pending: 0,
            history: Vec::new(),
        };
        run.check("start");
        run
    }

    fn feed(&mut self, frame: Frame) {
        let bytes = match frame {
            Frame::Response(code) => response_frame(code, 25),
            Frame::WrongVersion => response_frame(100, 26),
            Frame::Abort => Message::Abort.to_bytes(),
            Frame::SystemPing => Message::ServiceRequest {
                service: ServiceId::SYSTEM_PING,
                cid: 1,
                payload: Bytes::new(),
            }
            .to_bytes(),
        };
        self.session.handle_frame(self.now, bytes);
        self.model.frame(self.now, frame);
    }

    /// Time reaches `self.now`: both fire what is due.
    fn timeout(&mut self) {
        self.session.handle_timeout(self.now);
        self.model.fire_due(self.now);
    }

    /// Moves time through every armed timer up to `until`, in time order, then to `until`.
    fn advance(&mut self, until: Instant) {
        while let Some(at) = self
            .model
            .timers
            .values()
            .copied()
            .min()
            .filter(|at| *at <= until)
        {
            self.now = self.now.max(at);
            self.timeout();
            // Each instant is one step: compare before the next one.
            self.check(&format!("timers at +{:?}", self.now.elapsed()));
        }
        self.now = self.now.max(until);
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Response(code) => self.feed(Frame::Response(code)),
            Op::WrongVersion => self.feed(Frame::WrongVersion),
            Op::Abort => self.feed(Frame::Abort),
            Op::SystemPing => self.feed(Frame::SystemPing),
            Op::TransportLoss => {
                self.session
                    .handle_transport_closed(self.now, TransportError::Ended);
                self.model.transport_loss(self.now);
            }
            Op::UserClose => {
                self.session.close(self.now);
                self.model.user_close(self.now);
            }
            Op::UserPing => {
                if self.session.ping(self.now, SystemTime::UNIX_EPOCH).is_ok() {
                    self.pending += 1;
                }
            }
            Op::StrategyGivesUp => {
                self.gives_up.store(true, Ordering::SeqCst);
                self.model.strategy_gives_up = true;
            }
            Op::Tick(ms) => {
                let mut to = self.now + Duration::from_millis(ms);
                if let Some(first) = self.model.timers.values().copied().min() {
                    to = to.min(first - Duration::from_millis(1)).max(self.now);
                }
                self.now = to;
            }
            Op::Expire(timer) => {
                if let Some(at) = self.model.timers.get(&timer).copied() {
                    self.advance(at);
                }
            }
        }
        // What fell due at this instant (the strategy's zero delay: the next attempt).
        self.timeout();
        self.check(&format!("{op:?}"));
    }

    fn check(&mut self, step: &str) {
        let mut changes = Vec::new();
        while let Some(output) = self.session.poll_output() {
            match output {
                Output::Event(Event::StateChanged(StateChange { old, new, reason })) => {
                    assert_eq!(new.is_closed(), reason.is_some(), "{step}: {old} -> {new}");
                    changes.push((old, new));
                }
                Output::Event(Event::Response { .. }) => self.pending -= 1,
                Output::Connect(request) => assert_eq!(
                    request.is_reconnect(),
                    matches!(self.model.phase, P::Recovering(_)),
                    "{step}: a connect request in {:?}",
                    self.model.phase
                ),
                _ => {}
            }
        }
        let model = &mut self.model;
        assert_eq!(changes, std::mem::take(&mut model.changes), "{step}: transitions");
        self.history.extend(changes);
        assert_eq!(P::of(self.session.phase()), model.phase, "{step}: phase");
        assert_eq!(self.session.state(), model.phase.state(), "{step}: state");
        let timers: Vec<(Timer, Instant)> = self.session.timers().collect();
        let expected: Vec<(Timer, Instant)> = model.timers.iter().map(|(t, at)| (*t, *at)).collect();
        assert_eq!(timers, expected, "{step}: armed timers, model {model:?}");
        assert_eq!(
            self.session.close_reason().map(Why::of),
            model.why,
            "{step}: close reason"
        );
        assert_eq!(
            self.session.pending_requests(),
            self.pending,
            "{step}: pending requests"
        );
        if model.phase.state().is_closed() {
            assert_eq!(self.pending, 0, "{step}: closed with requests pending");
            assert_eq!(self.session.poll_timeout(), None, "{step}: closed with a timer");
        }
    }
}

fn any_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => proptest::sample::select(vec![100u8, 105, 106]).prop_map(Op::Response),
        2 => proptest::sample::select(vec![116u8, 117, 118]).prop_map(Op::Response),
        1 => Just(Op::WrongVersion),
        3 => Just(Op::TransportLoss),
        1 => Just(Op::Abort),
        2 => Just(Op::SystemPing),
        1 => Just(Op::UserClose),
        2 => Just(Op::UserPing),
        1 => Just(Op::StrategyGivesUp),
        2 => (1u64..3000).prop_map(Op::Tick),
        1 => Just(Op::Expire(Timer::Handshake)),
        2 => Just(Op::Expire(Timer::Idle)),
        1 => Just(Op::Expire(Timer::Close)),
        2 => Just(Op::Expire(Timer::Reconnect)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn client_session_follows_the_model(reconnect: bool, ops in proptest::collection::vec(any_op(), 1..60)) {
        let mut run = Run::new(reconnect);
        for op in ops {
            run.apply(op);
        }
    }
}

/// Every edge of §11.3 is taken by some short scenario, so the model is not vacuous.
#[test]
fn the_scenarios_reach_every_transition() {
    use Op::*;
    let scenarios: [(bool, &[Op]); 11] = [
        (true, &[Response(100), TransportLoss, Response(105)]),
        (
            true,
            &[Response(100), Expire(Timer::Idle), Expire(Timer::Reconnect)],
        ),
        (true, &[Response(100), TransportLoss, Response(117)]),
        (true, &[Response(100), TransportLoss, UserClose]),
        (true, &[Response(100), StrategyGivesUp, TransportLoss]),
        (
            true,
            &[Response(100), TransportLoss, StrategyGivesUp, TransportLoss],
        ),
        (false, &[Response(100), TransportLoss]),
        (false, &[Response(100), Abort]),
        (false, &[Response(100), UserClose, Expire(Timer::Close)]),
        (false, &[Response(116)]),
        (false, &[WrongVersion]),
    ];
    let mut seen = std::collections::BTreeSet::new();
    for (reconnect, ops) in scenarios {
        let mut run = Run::new(reconnect);
        for op in ops {
            run.apply(*op);
        }
        seen.extend(run.history.iter().map(|(from, to)| (from.name(), to.name())));
    }
    let mut all = std::collections::BTreeSet::new();
    for from in [Connecting, ConnectedActive, RecoveringReconnect] {
        for to in [
            ConnectedActive,
            RecoveringReconnect,
            ClosedByClient,
            ClosedByServer,
            ClosedFailed,
        ] {
            if from.can_transition_to(to) && (from, to) != (Connecting, ClosedByServer) {
                all.insert((from.name(), to.name()));
            }
        }
    }
    // CONNECTING -> CLOSED_BY_SERVER is legal but has no known trigger (SPEC §11.3).
    let missing: Vec<_> = all.difference(&seen).collect();
    assert!(missing.is_empty(), "never reached: {missing:?}");
}
