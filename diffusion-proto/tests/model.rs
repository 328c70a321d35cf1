//! A reference model of the six session states and the transitions of SPEC §11.3, run step
//! by step beside a real `ClientSession` under random operations; after every step both agree.
//!
//! The model owns the clock: time only moves to the deadline an operation names (in time
//! order through any earlier deadline) or by ticks that stop short of every deadline, so
//! each step has exactly one predictable cause.
// Harness code outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use diffusion_proto::{
    ClientConfig, ClientSession, CloseReason, ConnectionResponse, Event, LastField, Message, Output, ProtocolVersion,
    ReconnectAction, ReconnectConfig, ResponseCode, ServiceId, SessionGrant, SessionId, SessionState,
    SessionToken, StateChange,
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
    /// Time moves to the deadline of this kind, if there is one.
    Expire(Deadline),
}

/// The session's timers, as the model knows them. The order is the order in which
/// `handle_timeout` looks at them, for deadlines that fall on the same instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Deadline {
    /// No connection response within the connection timeout.
    Handshake,
    /// No SYSTEM_PING within twice the ping period.
    Idle,
    /// The close timeout after a user close.
    Close,
    /// The reconnection timeout `r` after the connection was lost.
    Reconnect,
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

/// The reference model.
#[derive(Debug)]
struct Model {
    state: SessionState,
    reconnect: bool,
    strategy_gives_up: bool,
    /// A connection attempt is waiting for its response (the link is handshaking).
    handshaking: bool,
    /// A user close is waiting for ABORT, the transport's end or the close timeout.
    closing: bool,
    handshake_at: Option<Instant>,
    idle_at: Option<Instant>,
    close_at: Option<Instant>,
    reconnect_at: Option<Instant>,
    why: Option<Why>,
    /// The transitions of the current step.
    changes: Vec<(SessionState, SessionState)>,
}

impl Model {
    fn new(now: Instant, reconnect: bool) -> Model {
        Model {
            state: Connecting,
            reconnect,
            strategy_gives_up: false,
            handshaking: true,
            closing: false,
            handshake_at: Some(now + CONNECTION_TIMEOUT),
            idle_at: None,
            close_at: None,
            reconnect_at: None,
            why: None,
            changes: Vec::new(),
        }
    }

    fn go(&mut self, to: SessionState) {
        assert!(
            self.state.can_transition_to(to),
            "the model itself broke §11.3: {} -> {to}",
            self.state
        );
        self.changes.push((self.state, to));
        self.state = to;
    }

    fn close(&mut self, to: SessionState, why: Why) {
        self.go(to);
        self.why = Some(why);
        self.handshaking = false;
        self.closing = false;
        self.handshake_at = None;
        self.idle_at = None;
        self.close_at = None;
        self.reconnect_at = None;
    }

    fn deadlines(&self) -> Vec<(Instant, Deadline)> {
        let mut all: Vec<(Instant, Deadline)> = [
            (self.handshake_at, Deadline::Handshake),
            (self.idle_at, Deadline::Idle),
            (self.close_at, Deadline::Close),
            (self.reconnect_at, Deadline::Reconnect),
        ]
        .into_iter()
        .filter_map(|(at, kind)| at.map(|at| (at, kind)))
        .collect();
        all.sort();
        all
    }

    /// A new connection attempt (the strategy's delay is 0, and the driver fires it).
    fn attempt(&mut self, now: Instant) {
        self.handshaking = true;
        self.handshake_at = Some(now + CONNECTION_TIMEOUT);
    }

    /// The current connection is gone: closing ends, the first connection fails, a
    /// connected session recovers or closes, a recovering one tries again or gives up.
    fn lost(&mut self, now: Instant, why: Why) {
        self.handshaking = false;
        self.handshake_at = None;
        self.idle_at = None;
        if self.closing {
            return self.close(ClosedByClient, Why::ClosedByClient);
        }
        match self.state {
            Connecting => self.close(ClosedFailed, why),
            ConnectedActive if self.reconnect => {
                self.go(RecoveringReconnect);
                self.reconnect_at = Some(now + RECONNECT_TIMEOUT);
                self.retry(now);
            }
            ConnectedActive => self.close(ClosedByServer, Why::ConnectionLost),
            RecoveringReconnect => self.retry(now),
            _ => {}
        }
    }

    fn retry(&mut self, now: Instant) {
        if self.strategy_gives_up {
            self.close(ClosedByServer, Why::ReconnectAborted)
        } else {
            self.attempt(now)
        }
    }

    /// A connection response (or any frame while handshaking, which is read as one).
    fn response(&mut self, now: Instant, outcome: Result<u8, ()>) {
        let recovering = self.state == RecoveringReconnect;
        match outcome {
            Ok(100 | 105 | 106) => {
                self.handshaking = false;
                self.handshake_at = None;
                self.reconnect_at = None;
                self.idle_at = Some(now + IDLE);
                self.go(ConnectedActive);
            }
            Ok(code) => self.close(ClosedFailed, Why::Rejected(code)),
            // A response that does not parse: a protocol error of the first connection
            // (closed by the client, as the Python client does), a failed reconnection.
            Err(()) if recovering => self.close(ClosedFailed, Why::Handshake),
            Err(()) => self.close(ClosedByClient, Why::Handshake),
        }
    }

    /// What a frame from the server does, by what the link is doing.
    fn frame(&mut self, now: Instant, frame: Frame) {
        if self.state.is_closed() {
            return;
        }
        if self.handshaking {
            let outcome = match frame {
                Frame::Response(code) => Ok(code),
                Frame::WrongVersion | Frame::Abort | Frame::SystemPing => Err(()),
            };
            return self.response(now, outcome);
        }
        match frame {
            // Not a message type: dropped, like every unknown type.
            Frame::Response(_) | Frame::WrongVersion => {}
            Frame::Abort if self.closing => self.close(ClosedByClient, Why::ClosedByClient),
            Frame::Abort => self.close(ClosedByServer, Why::Aborted),
            Frame::SystemPing => self.idle_at = Some(now + IDLE),
        }
    }

    fn user_close(&mut self, now: Instant) {
        match self.state {
            ConnectedActive if !self.closing => {
                self.closing = true;
                self.idle_at = None;
                self.close_at = Some(now + CLOSE_TIMEOUT);
            }
            ConnectedActive => {}
            s if s.is_closed() => {}
            _ => self.close(ClosedByClient, Why::ClosedByClient),
        }
    }

    fn expire(&mut self, now: Instant, kind: Deadline) {
        match kind {
            Deadline::Handshake => {
                self.handshake_at = None;
                self.lost(now, Why::HandshakeTimeout)
            }
            Deadline::Idle => {
                self.idle_at = None;
                self.lost(now, Why::ConnectionLost)
            }
            Deadline::Close => self.close(ClosedByClient, Why::ClosedByClient),
            Deadline::Reconnect => self.close(ClosedFailed, Why::ReconnectTimeout),
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

    /// Moves time through every model deadline up to `until`, in time order, then to `until`.
    fn advance(&mut self, until: Instant) {
        while let Some(&(at, kind)) = self.model.deadlines().first().filter(|(at, _)| *at <= until) {
            self.now = self.now.max(at);
            self.session.handle_timeout(self.now);
            self.model.expire(self.now, kind);
            // A deadline is one step: compare before the next one.
            self.check(&format!("{kind:?} deadline"));
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
                self.session.handle_transport_closed(self.now, "reset by peer");
                if self.model.handshaking || (self.model.state == ConnectedActive) {
                    let why = if self.model.state == Connecting {
                        Why::TransportFailed
                    } else {
                        Why::ConnectionLost
                    };
                    self.model.lost(self.now, why);
                }
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
                if let Some(&(first, _)) = self.model.deadlines().first() {
                    to = to.min(first - Duration::from_millis(1)).max(self.now);
                }
                self.now = to;
                self.session.handle_timeout(self.now);
            }
            Op::Expire(kind) => {
                if let Some(&(at, _)) = self.model.deadlines().iter().find(|(_, k)| *k == kind) {
                    self.advance(at);
                }
            }
        }
        // The strategy's zero delay: the next attempt starts at this same instant.
        self.session.handle_timeout(self.now);
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
                    self.model.state == RecoveringReconnect,
                    "{step}: a connect request in {}",
                    self.model.state
                ),
                _ => {}
            }
        }
        let model = &mut self.model;
        assert_eq!(changes, std::mem::take(&mut model.changes), "{step}: transitions");
        self.history.extend(changes);
        assert_eq!(self.session.state(), model.state, "{step}: state");
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
        if model.state.is_closed() {
            assert_eq!(self.pending, 0, "{step}: closed with requests pending");
            assert_eq!(self.session.poll_timeout(), None, "{step}: closed with a timer");
        } else {
            // The session's next timer is the model's next deadline (or, while recovering,
            // nothing earlier than it).
            let first = model.deadlines().first().map(|d| d.0);
            assert_eq!(
                self.session.poll_timeout(),
                first,
                "{step}: next deadline, model {model:?}"
            );
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
        1 => Just(Op::Expire(Deadline::Handshake)),
        2 => Just(Op::Expire(Deadline::Idle)),
        1 => Just(Op::Expire(Deadline::Close)),
        2 => Just(Op::Expire(Deadline::Reconnect)),
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
            &[Response(100), Expire(Deadline::Idle), Expire(Deadline::Reconnect)],
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
        (false, &[Response(100), UserClose, Expire(Deadline::Close)]),
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
