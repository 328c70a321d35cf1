//! `ClientSession` against `Server` in memory on a simulated clock: no sockets, frames
//! delayed by a fixed one-way latency, faults injected by cutting or blackholing the link.

// Harness code outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use diffusion_proto::{
    AcceptOutcome, ConnectionId, CounterEntropy, Server, ServerConfig, ServerOutput, UpgradeRequest, UserTable,
};
use diffusion_proto::{
    ClientConfig, ClientSession, CloseReason, Credentials, Event, Output, RequestError, RequestId,
    ResponseCode, ServiceId, SessionError, SessionState, StateChange,
};

const LATENCY: Duration = Duration::from_millis(3);

/// What travels towards the client.
enum Down {
    Frame(Bytes),
    Closed,
}

struct Pair {
    now: Instant,
    client: ClientSession,
    server: Server,
    conn: Option<ConnectionId>,
    next_conn: u64,
    up: VecDeque<(Instant, ConnectionId, Bytes)>,
    down: VecDeque<(Instant, ConnectionId, Down)>,
    /// Frames of this connection vanish in either direction, and nobody is told (a stall).
    stalled: Option<ConnectionId>,
    events: Vec<Event>,
    /// Every client frame the server received.
    received: Vec<Bytes>,
}

impl Pair {
    fn new(client: ClientConfig, server: ServerConfig) -> Pair {
        Pair::with_users(client, server, UserTable::new())
    }

    fn with_users(client: ClientConfig, server: ServerConfig, users: UserTable) -> Pair {
        let now = Instant::now();
        let mut pair = Pair {
            now,
            client: ClientSession::new(client, now),
            server: Server::new(server, Box::new(users), Box::new(CounterEntropy::default())),
            conn: None,
            next_conn: 1,
            up: VecDeque::new(),
            down: VecDeque::new(),
            stalled: None,
            events: Vec::new(),
            received: Vec::new(),
        };
        pair.pump();
        pair
    }

    fn config(url: &str) -> ClientConfig {
        ClientConfig::new(url).unwrap()
    }

    /// Carries out every queued output of both sides.
    fn pump(&mut self) {
        loop {
            let mut busy = false;
            while let Some(output) = self.client.poll_output() {
                busy = true;
                match output {
                    Output::Connect(request) => {
                        let conn = ConnectionId(self.next_conn);
                        self.next_conn += 1;
                        self.conn = Some(conn);
                        let target = request.target();
                        let headers = request.headers();
                        let mut upgrade = UpgradeRequest::from_uri(&target);
                        for (name, value) in &headers {
                            upgrade = upgrade.with_header(name, value.as_bytes());
                        }
                        let outcome = self.server.accept(self.now, conn, &upgrade);
                        let _: AcceptOutcome = outcome;
                    }
                    Output::Transmit(frame) => {
                        if let Some(conn) = self.conn.filter(|c| Some(*c) != self.stalled) {
                            self.up.push_back((self.now + LATENCY, conn, frame));
                        }
                    }
                    Output::CloseTransport => {
                        if let Some(conn) = self.conn.take() {
                            self.server.handle_closed(self.now, conn);
                        }
                    }
                    Output::Event(event) => self.events.push(event),
                }
            }
            while let Some(output) = self.server.poll_output() {
                busy = true;
                match output {
                    ServerOutput::Transmit { conn, frame } if Some(conn) != self.stalled => self
                        .down
                        .push_back((self.now + LATENCY, conn, Down::Frame(frame))),
                    ServerOutput::CloseTransport { conn } => {
                        self.down.push_back((self.now + LATENCY, conn, Down::Closed))
                    }
                    _ => {}
                }
            }
            if !busy {
                return;
            }
        }
    }

    /// Runs the simulation until `until` (or nothing more is scheduled).
    fn run_until(&mut self, until: Instant) {
        loop {
            let next = [
                self.up.front().map(|f| f.0),
                self.down.front().map(|f| f.0),
                self.client.poll_timeout(),
                self.server.poll_timeout(),
            ]
            .into_iter()
            .flatten()
            .min();
            match next {
                Some(t) if t <= until => self.step(t.max(self.now)),
                _ => {
                    self.now = self.now.max(until);
                    return;
                }
            }
        }
    }

    fn run_for(&mut self, d: Duration) {
        self.run_until(self.now + d);
    }

    fn step(&mut self, t: Instant) {
        self.now = t;
        if self.up.front().is_some_and(|f| f.0 <= t) {
            let (_, conn, frame) = self.up.pop_front().unwrap();
            self.received.push(frame.clone());
            self.server.handle_frame(t, conn, frame);
        } else if self.down.front().is_some_and(|f| f.0 <= t) {
            let (_, conn, item) = self.down.pop_front().unwrap();
            if Some(conn) == self.conn {
                match item {
                    Down::Frame(frame) => self.client.handle_frame(t, frame),
                    Down::Closed => {
                        self.conn = None;
                        self.client
                            .handle_transport_closed(t, "server closed the connection");
                    }
                }
            }
        } else {
            self.client.handle_timeout(t);
            self.server.handle_timeout(t);
        }
        self.pump();
    }

    /// The network drops the connection: both ends notice, frames in flight are lost.
    fn cut(&mut self) {
        self.up.clear();
        self.down.clear();
        if let Some(conn) = self.conn.take() {
            self.server.handle_closed(self.now, conn);
            self.client.handle_transport_closed(self.now, "connection reset");
        }
        self.pump();
    }

    fn ping(&mut self) -> RequestId {
        let id = self.client.ping(self.now, SystemTime::now()).unwrap();
        self.pump();
        id
    }

    fn states(&self) -> Vec<SessionState> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::StateChanged(StateChange { new, .. }) => Some(*new),
                _ => None,
            })
            .collect()
    }

    fn responses(&self, id: RequestId) -> Vec<&Result<diffusion_proto::Reply, RequestError>> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Response { id: i, result } if *i == id => Some(result),
                _ => None,
            })
            .collect()
    }

    fn connected() -> Pair {
        let mut pair = Pair::new(Pair::config("ws://h:1"), ServerConfig::default());
        pair.run_for(Duration::from_millis(50));
        assert_eq!(pair.client.state(), SessionState::ConnectedActive);
        pair
    }
}

#[test]
fn connects_anonymously() {
    let pair = Pair::connected();
    let id = pair.client.session_id().unwrap();
    let info = pair.server.session(id).unwrap();
    assert_eq!(info.principal, None);
    assert_eq!(pair.states(), [SessionState::ConnectedActive]);
    assert_eq!(pair.client.max_message_size(), Some(10_000_000));
}

#[test]
fn connects_with_credentials_and_properties_over_both_carriers() {
    for version in [
        diffusion_proto::ProtocolVersion::V25,
        diffusion_proto::ProtocolVersion::V29,
    ] {
        let mut config = Pair::config("ws://h:1").with_version(version);
        config.principal = Some("admin".into());
        config.credentials = Credentials::password("secret");
        config.properties.insert("region", "eu").unwrap();
        config.properties.insert("$Country", "GB").unwrap();
        let users = UserTable::new().with_user("admin", "secret");
        let mut pair = Pair::with_users(config, ServerConfig::default(), users);
        pair.run_for(Duration::from_millis(50));
        let info = pair.server.session(pair.client.session_id().unwrap()).unwrap();
        assert_eq!(info.principal.as_deref(), Some("admin"));
        assert_eq!(info.properties.get("region"), Some("eu"));
        assert_eq!(info.properties.get("$Country"), Some("GB"));
        assert_eq!(info.version, version);
    }
}

#[test]
fn wrong_password_fails_with_116() {
    let mut config = Pair::config("ws://h:1");
    config.principal = Some("admin".into());
    config.credentials = Credentials::password("wrong");
    let mut pair = Pair::with_users(
        config,
        ServerConfig::default(),
        UserTable::new().with_user("admin", "secret"),
    );
    pair.run_for(Duration::from_millis(50));
    assert_eq!(pair.client.state(), SessionState::ClosedFailed);
    let reason = pair.client.close_reason().unwrap();
    assert_eq!(reason, &CloseReason::Rejected(ResponseCode::AuthenticationFailed));
    assert_eq!(reason.response_code().map(|c| c.code()), Some(116));
    assert_eq!(pair.client.poll_timeout(), None);
}

#[test]
fn user_ping_round_trip_is_the_simulated_delay() {
    let mut pair = Pair::connected();
    let id = pair.ping();
    pair.run_for(Duration::from_millis(20));
    let responses = pair.responses(id);
    assert_eq!(responses.len(), 1);
    assert_eq!(responses[0].as_ref().unwrap().round_trip, 2 * LATENCY);
}

#[test]
fn system_pings_are_answered() {
    let server = ServerConfig {
        ping_period: Duration::from_secs(1),
        ..ServerConfig::default()
    };
    let mut pair = Pair::new(Pair::config("ws://h:1"), server);
    pair.run_for(Duration::from_millis(3500));
    let answered = pair
        .events
        .iter()
        .filter(|e| **e == Event::SystemPingAnswered)
        .count();
    assert_eq!(answered, 3);
    let info = pair.server.session(pair.client.session_id().unwrap()).unwrap();
    assert_eq!(info.stats.system_pings_sent, 3);
    assert_eq!(info.stats.system_pings_answered, 3);
    assert_eq!(pair.client.state(), SessionState::ConnectedActive);
}

#[test]
fn idle_connection_is_noticed_and_the_session_resumed() {
    let server = ServerConfig {
        ping_period: Duration::from_secs(1),
        ..ServerConfig::default()
    };
    let mut pair = Pair::new(Pair::config("ws://h:1"), server);
    pair.run_for(Duration::from_millis(100));
    let id = pair.client.session_id().unwrap();
    pair.stalled = pair.conn;
    pair.run_for(Duration::from_millis(1900));
    assert_eq!(pair.client.state(), SessionState::ConnectedActive);
    pair.run_for(Duration::from_millis(200));
    assert_eq!(pair.client.state(), SessionState::ConnectedActive);
    assert_eq!(pair.client.session_id(), Some(id));
    assert_eq!(
        pair.states(),
        [
            SessionState::ConnectedActive,
            SessionState::RecoveringReconnect,
            SessionState::ConnectedActive
        ]
    );
}

#[test]
fn request_lost_on_the_way_up_is_resent_and_completes_once() {
    let mut pair = Pair::connected();
    let id = pair.client.session_id();
    let ping = pair.ping();
    pair.cut(); // the ping frame was in flight: the server never saw it
    assert_eq!(pair.client.state(), SessionState::RecoveringReconnect);
    pair.run_for(Duration::from_millis(100));
    assert_eq!(pair.client.state(), SessionState::ConnectedActive);
    assert_eq!(pair.client.session_id(), id);
    assert!(pair.events.contains(&Event::Connected {
        session_id: id.unwrap(),
        code: ResponseCode::Reconnected,
        resent: 1
    }));
    assert_eq!(pair.responses(ping).len(), 1);
    assert!(pair.responses(ping)[0].is_ok());
    let pings_seen = pair.received.iter().filter(|f| f[..2] == [0x00, 0x38]).count();
    assert_eq!(pings_seen, 1, "the server got the ping exactly once");
}

#[test]
fn response_lost_on_the_way_down_is_resent_and_completes_once() {
    let mut pair = Pair::connected();
    let ping = pair.ping();
    pair.run_for(LATENCY); // the server has the ping; its response is in flight
    assert_eq!(pair.received.len(), 1);
    pair.cut();
    pair.run_for(Duration::from_millis(100));
    assert_eq!(pair.client.state(), SessionState::ConnectedActive);
    assert_eq!(pair.responses(ping).len(), 1);
    assert!(pair.responses(ping)[0].is_ok());
    let pings_seen = pair.received.iter().filter(|f| f[..2] == [0x00, 0x38]).count();
    assert_eq!(pings_seen, 1);
}

#[test]
fn reconnection_with_message_loss_fails_what_was_in_flight() {
    let server = ServerConfig {
        recovery_buffer: 0,
        ..ServerConfig::default()
    };
    let mut pair = Pair::new(Pair::config("ws://h:1"), server);
    pair.run_for(Duration::from_millis(50));
    let ping = pair.ping();
    pair.run_for(LATENCY);
    pair.cut(); // the server's response is lost and it kept no copy: 106
    pair.run_for(Duration::from_millis(100));
    assert_eq!(pair.client.state(), SessionState::ConnectedActive);
    assert_eq!(pair.responses(ping), [&Err(RequestError::MessageLoss)]);
    let next = pair.ping();
    pair.run_for(Duration::from_millis(20));
    assert!(pair.responses(next)[0].is_ok());
}

#[test]
fn forgotten_session_ends_closed_failed_with_117() {
    let mut pair = Pair::connected();
    let ping = pair.ping();
    pair.server.forget_session(pair.client.session_id().unwrap());
    pair.pump();
    pair.run_for(Duration::from_millis(100));
    assert_eq!(pair.client.state(), SessionState::ClosedFailed);
    assert_eq!(
        pair.client.close_reason(),
        Some(&CloseReason::Rejected(ResponseCode::UnknownSession))
    );
    assert!(matches!(
        pair.responses(ping)[..],
        [Err(RequestError::SessionClosed(_))]
    ));
}

#[test]
fn close_from_every_state() {
    // CONNECTING: before the connection response arrives.
    let mut pair = Pair::new(Pair::config("ws://h:1"), ServerConfig::default());
    pair.client.close(pair.now);
    pair.pump();
    assert_eq!(pair.client.state(), SessionState::ClosedByClient);

    // CONNECTED_ACTIVE: CLOSE_REQUEST, the server answers ABORT.
    let mut pair = Pair::connected();
    let id = pair.client.session_id().unwrap();
    pair.client.close(pair.now);
    pair.pump();
    pair.run_for(Duration::from_millis(20));
    assert_eq!(pair.client.state(), SessionState::ClosedByClient);
    assert_eq!(pair.received.last().map(|f| f.to_vec()), Some(vec![0x1d]));
    assert!(pair
        .server
        .session(id)
        .is_none_or(|s| s.stats.close_requests == 1));

    // CONNECTED_ACTIVE, but the server never answers: closed after the 1 s close timeout.
    let mut pair = Pair::connected();
    pair.stalled = pair.conn;
    pair.client.close(pair.now);
    pair.pump();
    pair.run_for(Duration::from_millis(999));
    assert_eq!(pair.client.state(), SessionState::ConnectedActive);
    pair.run_for(Duration::from_millis(2));
    assert_eq!(pair.client.state(), SessionState::ClosedByClient);

    // RECOVERING_RECONNECT.
    let mut pair = Pair::connected();
    pair.stalled = Some(ConnectionId(2)); // the reconnection attempt will stall
    pair.cut();
    assert_eq!(pair.client.state(), SessionState::RecoveringReconnect);
    pair.client.close(pair.now);
    pair.pump();
    assert_eq!(pair.client.state(), SessionState::ClosedByClient);
    assert_eq!(pair.client.poll_timeout(), None);
}

#[test]
fn abort_from_the_server_closes_by_server() {
    let mut pair = Pair::connected();
    let conn = pair.conn.unwrap();
    pair.server.abort(conn);
    pair.pump();
    pair.run_for(Duration::from_millis(20));
    assert_eq!(pair.client.state(), SessionState::ClosedByServer);
    assert_eq!(pair.client.close_reason(), Some(&CloseReason::Aborted));
}

#[test]
fn oversize_request_is_refused_and_nothing_is_sent() {
    let server = ServerConfig {
        max_message_size: 100,
        ..ServerConfig::default()
    };
    let mut pair = Pair::new(Pair::config("ws://h:1"), server);
    pair.run_for(Duration::from_millis(50));
    let before = pair.received.len();
    let err = pair.client.invoke(
        pair.now,
        SystemTime::now(),
        ServiceId(99),
        Bytes::from(vec![7; 200]),
    );
    assert_eq!(
        err,
        Err(SessionError::MessageTooLarge {
            size: 203,
            limit: 100
        })
    );
    pair.pump();
    pair.run_for(Duration::from_millis(20));
    assert_eq!(pair.received.len(), before);
    assert_eq!(pair.client.state(), SessionState::ConnectedActive);
}
