//! `ClientSession` against `Server` in memory on a simulated clock: no sockets, frames
//! delayed by a fixed one-way latency (zero for benchmarks), faults injected by cutting or
//! blackholing the link.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use crate::{
    ClientConfig, ClientSession, ConnectionId, CounterEntropy, Event, Output, Reply, RequestError, RequestId,
    Server, ServerConfig, ServerOutput, SessionState, StateChange, TransportError, UpgradeRequest, UserTable,
};

/// The one-way latency of [`Pair::new`].
pub const LATENCY: Duration = Duration::from_millis(3);

/// What travels towards the client.
#[derive(Debug)]
enum Down {
    Frame(Bytes),
    Closed,
}

/// A client session and a server joined by a simulated network.
///
/// ```
/// use std::time::Duration;
/// use diffusion_proto::testing::Pair;
/// use diffusion_proto::{ClientConfig, ServerConfig, SessionState};
///
/// let mut pair = Pair::new(ClientConfig::new("ws://h:1").unwrap(), ServerConfig::default());
/// pair.run_for(Duration::from_millis(50));
/// assert_eq!(pair.client.state(), SessionState::ConnectedActive);
/// ```
#[derive(Debug)]
pub struct Pair {
    /// The simulated time.
    pub now: Instant,
    /// The client.
    pub client: ClientSession,
    /// The server.
    pub server: Server,
    /// The client's current connection.
    pub conn: Option<ConnectionId>,
    /// Frames of this connection vanish in either direction, and nobody is told (a stall).
    pub stalled: Option<ConnectionId>,
    /// Every event the client gave.
    pub events: Vec<Event>,
    /// Every client frame the server received.
    pub received: Vec<Bytes>,
    latency: Duration,
    next_conn: u64,
    up: VecDeque<(Instant, ConnectionId, Bytes)>,
    down: VecDeque<(Instant, ConnectionId, Down)>,
}

impl Pair {
    /// A client and a server admitting everyone, [`LATENCY`] apart; the client's first
    /// connection is on its way.
    pub fn new(client: ClientConfig, server: ServerConfig) -> Pair {
        Pair::with(client, server, UserTable::new(), LATENCY)
    }

    /// A pair whose server knows `users`, `latency` apart one way.
    pub fn with(client: ClientConfig, server: ServerConfig, users: UserTable, latency: Duration) -> Pair {
        let now = Instant::now();
        let mut pair = Pair {
            now,
            client: ClientSession::new(client, now),
            server: Server::new(server, Box::new(users), Box::new(CounterEntropy::default())),
            conn: None,
            stalled: None,
            events: Vec::new(),
            received: Vec::new(),
            latency,
            next_conn: 1,
            up: VecDeque::new(),
            down: VecDeque::new(),
        };
        pair.pump();
        pair
    }

    /// A pair for `ws://h:1` with the defaults, run until connected.
    pub fn connected() -> Pair {
        let config = ClientConfig::new("ws://h:1").unwrap_or_else(|e| unreachable!("a valid URL: {e}"));
        let mut pair = Pair::new(config, ServerConfig::default());
        pair.run_for(Duration::from_millis(50));
        assert_eq!(pair.client.state(), SessionState::ConnectedActive);
        pair
    }

    /// Carries out every queued output of both sides.
    pub fn pump(&mut self) {
        loop {
            let mut busy = false;
            while let Some(output) = self.client.poll_output() {
                busy = true;
                self.client_output(output);
            }
            while let Some(output) = self.server.poll_output() {
                busy = true;
                match output {
                    ServerOutput::Transmit { conn, frame } if Some(conn) != self.stalled => self
                        .down
                        .push_back((self.now + self.latency, conn, Down::Frame(frame))),
                    ServerOutput::CloseTransport { conn } => {
                        self.down.push_back((self.now + self.latency, conn, Down::Closed))
                    }
                    _ => {}
                }
            }
            if !busy {
                return;
            }
        }
    }

    fn client_output(&mut self, output: Output) {
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
                self.server.accept(self.now, conn, &upgrade);
            }
            Output::Transmit(frame) => {
                if let Some(conn) = self.conn.filter(|c| Some(*c) != self.stalled) {
                    self.up.push_back((self.now + self.latency, conn, frame));
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

    /// Runs the simulation until `until` (or nothing more is scheduled).
    pub fn run_until(&mut self, until: Instant) {
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

    /// Runs the simulation for `d`.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(self.now + d);
    }

    /// Delivers everything due now (all of it, with no latency), leaving the clock.
    pub fn settle(&mut self) {
        self.run_until(self.now);
    }

    fn step(&mut self, t: Instant) {
        self.now = t;
        if self.up.front().is_some_and(|f| f.0 <= t) {
            if let Some((_, conn, frame)) = self.up.pop_front() {
                self.received.push(frame.clone());
                self.server.handle_frame(t, conn, frame);
            }
        } else if self.down.front().is_some_and(|f| f.0 <= t) {
            if let Some((_, conn, item)) = self.down.pop_front() {
                if Some(conn) == self.conn {
                    match item {
                        Down::Frame(frame) => self.client.handle_frame(t, frame),
                        Down::Closed => {
                            self.conn = None;
                            self.client.handle_transport_closed(t, TransportError::Ended);
                        }
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
    pub fn cut(&mut self) {
        self.up.clear();
        self.down.clear();
        if let Some(conn) = self.conn.take() {
            self.server.handle_closed(self.now, conn);
            let reset = io::Error::from(io::ErrorKind::ConnectionReset);
            let cause = TransportError::WebSocket {
                source: Arc::new(reset),
            };
            self.client.handle_transport_closed(self.now, cause);
        }
        self.pump();
    }

    /// The client pings.
    pub fn ping(&mut self) -> RequestId {
        let id = self
            .client
            .ping(self.now, SystemTime::now())
            .unwrap_or_else(|e| panic!("ping refused: {e}"));
        self.pump();
        id
    }

    /// The client's states so far, in order.
    pub fn states(&self) -> Vec<SessionState> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::StateChanged(StateChange { new, .. }) => Some(*new),
                _ => None,
            })
            .collect()
    }

    /// The outcomes of request `id` so far (exactly one when it completed).
    pub fn responses(&self, id: RequestId) -> Vec<&Result<Reply, RequestError>> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Response { id: i, result } if *i == id => Some(result),
                _ => None,
            })
            .collect()
    }
}
