//! The hub: the one task that owns the sans-IO protocol `Server`, feeds it what the
//! connection tasks report and its timer, carries out its outputs, and injects faults.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use diffusion_proto::{
    ConnectionId, ConnectionResponse, Message, ResponseCode, Server, ServerEvent, ServerOutput, ServiceId,
    UpgradeRequest,
};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::conn::{ConnCmd, Input};
use crate::log::{Direction, LogEntry, LogKind, Side, Stats, UpgradeLog};
use crate::options::{DropKind, Fault, Malformed};

/// Requests from the [`crate::TestServer`] handle.
#[derive(Debug)]
pub(crate) enum Control {
    /// Forget every session, as a restarted server would.
    ForgetSessions,
    /// ABORT every attached session.
    AbortSessions,
    /// Drop every connection that carries a session, keeping the sessions.
    DropConnections,
    /// Replace the fault; message counts for it start again on every connection.
    SetFault(Fault),
    /// Set or clear the code every reconnection is answered with.
    SetReconnectAnswer(Option<ResponseCode>),
    /// Send a request to `service` of every attached session.
    SendRequest(ServiceId, Bytes),
}

/// What the hub, the connection tasks and the handle share.
pub(crate) struct Shared {
    pub(crate) started: Instant,
    pub(crate) log: Mutex<Vec<LogEntry>>,
    /// Bumped after every log entry, for [`crate::TestServer::wait_for`].
    pub(crate) changed: watch::Sender<u64>,
    pub(crate) stats: Mutex<Stats>,
    /// The protocol server, locked by the hub for each step and by the handle to read its
    /// sessions, so that what a client has seen is already visible there. (A copy of every
    /// session published after each input cost O(sessions) per message.)
    pub(crate) server: Mutex<Server>,
    pub(crate) log_json: bool,
}

/// Locks a mutex; a panic elsewhere while holding it leaves plain data that is still usable.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    pub(crate) fn new(server: Server, log_json: bool) -> Self {
        Shared {
            server: Mutex::new(server),
            started: Instant::now(),
            log: Mutex::new(Vec::new()),
            changed: watch::Sender::new(0),
            stats: Mutex::new(Stats::default()),
            log_json,
        }
    }

    /// Appends an entry (and prints it as a JSON line when asked to).
    pub(crate) fn record(&self, conn: Option<u64>, kind: LogKind) {
        if let LogKind::Error { message } = &kind {
            tracing::warn!(conn, "{message}");
        }
        let entry = LogEntry {
            at: self.started.elapsed(),
            conn,
            kind,
        };
        let mut log = lock(&self.log);
        if self.log_json {
            use std::io::Write as _;
            // One line per entry, flushed, so scripts can follow it; a closed stdout
            // must not stop the server.
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", entry.to_json());
            let _ = out.flush();
        }
        log.push(entry);
        drop(log);
        self.notify();
    }

    pub(crate) fn count(&self, f: impl FnOnce(&mut Stats)) {
        f(&mut lock(&self.stats));
        self.notify();
    }

    /// Wakes [`crate::TestServer::wait_for`].
    fn notify(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The next transmit is the connection response.
    AwaitingResponse,
    Open,
    /// Nothing more is sent; the connection task reads and discards.
    Stalled,
}

struct Conn {
    commands: mpsc::Sender<ConnCmd>,
    phase: Phase,
    /// Client messages received on this connection since it opened or the fault was set.
    messages: u32,
    malformed: Option<Malformed>,
    /// Conversation ids of the client's USER_PINGs awaiting their answer.
    user_pings: HashSet<i64>,
}

/// The hub task's state.
pub(crate) struct Hub {
    shared: Arc<Shared>,
    conns: HashMap<u64, Conn>,
    fault: Fault,
    /// Connections `DropAfter` has dropped since the fault was set.
    drops: u32,
    reconnect_answer: Option<ResponseCode>,
}

impl Hub {
    pub(crate) fn new(shared: Arc<Shared>, fault: Fault, reconnect_answer: Option<ResponseCode>) -> Self {
        Hub {
            shared,
            conns: HashMap::new(),
            fault,
            drops: 0,
            reconnect_answer,
        }
    }

    /// The protocol server, for one step.
    fn server(&self) -> MutexGuard<'_, Server> {
        lock(&self.shared.server)
    }

    /// Runs until the handle goes away.
    pub(crate) async fn run(
        mut self,
        mut inputs: mpsc::Receiver<Input>,
        mut control: mpsc::UnboundedReceiver<Control>,
    ) {
        loop {
            let deadline = self.server().poll_timeout();
            let timer = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                // Control first: a test that forgets sessions and then reconnects must
                // see the reconnection after the forgetting.
                biased;
                c = control.recv() => match c {
                    Some(c) => self.control(c),
                    None => return,
                },
                i = inputs.recv() => match i {
                    Some(i) => self.input(i),
                    None => return,
                },
                () = timer => {
                    self.server().handle_timeout(Instant::now());
                    self.pump(Instant::now());
                }
            }
        }
    }

    fn control(&mut self, c: Control) {
        let now = Instant::now();
        match c {
            Control::ForgetSessions => {
                let ids: Vec<_> = self.server().sessions().map(|s| s.id).collect();
                for id in ids {
                    self.server().forget_session(id);
                }
            }
            Control::AbortSessions => {
                let conns: Vec<_> = self.server().sessions().filter_map(|s| s.connection).collect();
                for conn in conns {
                    self.server().abort(conn);
                }
            }
            Control::DropConnections => {
                let conns: Vec<_> = self.server().sessions().filter_map(|s| s.connection).collect();
                for conn in conns {
                    self.server().drop_connection(now, conn);
                }
            }
            Control::SetFault(fault) => {
                self.fault = fault;
                self.drops = 0;
                let open: Vec<u64> = self.conns.keys().copied().collect();
                for conn in &open {
                    if let Some(c) = self.conns.get_mut(conn) {
                        c.messages = 0;
                    }
                }
                // A fault "after 0 messages" acts on open connections at once.
                for conn in open {
                    self.apply_message_faults(now, conn);
                }
            }
            Control::SetReconnectAnswer(code) => self.reconnect_answer = code,
            Control::SendRequest(service, payload) => {
                let conns: Vec<_> = self.server().sessions().filter_map(|s| s.connection).collect();
                for conn in conns {
                    self.server().send_request(now, conn, service, payload.clone());
                }
            }
        }
        self.pump(now);
    }

    fn input(&mut self, input: Input) {
        let now = Instant::now();
        match input {
            Input::Upgrade {
                conn,
                path,
                query,
                headers,
                commands,
            } => self.upgrade(now, conn, &path, query.as_deref(), &headers, commands),
            Input::Frame { conn, frame, text } => self.frame(now, conn, frame, text),
            Input::Closed { conn, reason } => {
                if self.conns.remove(&conn).is_some() {
                    self.shared.record(
                        Some(conn),
                        LogKind::Closed {
                            by: Side::Client,
                            reason,
                        },
                    );
                    self.server().handle_closed(now, ConnectionId(conn));
                    self.pump(now);
                }
            }
            Input::Error { conn, message } => self.shared.record(Some(conn), LogKind::Error { message }),
        }
    }

    fn upgrade(
        &mut self,
        now: Instant,
        conn: u64,
        path: &str,
        query: Option<&str>,
        headers: &[(String, Vec<u8>)],
        commands: mpsc::Sender<ConnCmd>,
    ) {
        let log = UpgradeLog::new(path, query, headers);
        let (version, reconnect) = (log.version_byte(), log.reconnect);
        self.shared.count(|s| s.upgrades += 1);
        self.shared.record(Some(conn), LogKind::Upgrade(log));
        let fault = self.fault;
        self.conns.insert(
            conn,
            Conn {
                commands,
                phase: Phase::AwaitingResponse,
                messages: 0,
                malformed: None,
                user_pings: HashSet::new(),
            },
        );
        match fault {
            Fault::RejectAll(code) => {
                return self.fault_response(
                    conn,
                    vec![ConnectionResponse::PROTOCOL_BYTE, version, code],
                    "reject-all",
                );
            }
            Fault::NoResponse => return self.stall(conn, "silent: no connection response".to_owned()),
            Fault::MalformedResponse(m) => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.malformed = Some(m);
                }
            }
            _ => {}
        }
        if let (true, Some(code)) = (reconnect, self.reconnect_answer) {
            return self.fault_response(
                conn,
                vec![ConnectionResponse::PROTOCOL_BYTE, version, code.code()],
                "reconnect-answer",
            );
        }
        let request = UpgradeRequest {
            path,
            query,
            headers: headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect(),
        };
        self.server().accept(now, ConnectionId(conn), &request);
        self.pump(now);
        self.apply_message_faults(now, conn);
    }

    fn frame(&mut self, now: Instant, conn: u64, frame: Bytes, text: bool) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.messages = c.messages.saturating_add(1);
        if c.phase == Phase::Stalled {
            return;
        }
        if let Ok(Message::ServiceRequest {
            service: ServiceId::USER_PING,
            cid,
            ..
        }) = Message::decode(&frame)
        {
            if cid != 0 {
                c.user_pings.insert(cid);
            }
        }
        self.shared.count(|s| s.messages_received += 1);
        self.shared
            .record(Some(conn), LogKind::message(Direction::In, &frame, text));
        // Decided before the message is handled, so that its answer is what gets lost.
        let drop = self.drop_due(conn);
        self.server().handle_frame(now, ConnectionId(conn), frame);
        match drop {
            Some(how) => self.drop_connection(now, conn, how),
            None => {
                self.pump(now);
                self.apply_message_faults(now, conn);
            }
        }
    }

    /// `DropAfter` and `Stall`, checked after the connection response, after each handled
    /// message and when the fault changes.
    fn apply_message_faults(&mut self, now: Instant, conn: u64) {
        if let Some(how) = self.drop_due(conn) {
            return self.drop_connection(now, conn, how);
        }
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        if let Fault::Stall { after_messages } = self.fault {
            if c.phase == Phase::Open && c.messages >= after_messages {
                let messages = c.messages;
                self.stall(conn, format!("stalled after {messages} message(s)"));
            }
        }
    }

    /// The kind of drop when `DropAfter` applies to `conn` now (the drop is then counted).
    fn drop_due(&mut self, conn: u64) -> Option<DropKind> {
        let c = self.conns.get(&conn)?;
        match self.fault {
            Fault::DropAfter { messages, how, times }
                if c.phase == Phase::Open && c.messages >= messages && self.drops < times =>
            {
                self.drops += 1;
                Some(how)
            }
            _ => None,
        }
    }

    /// Drops `conn` before anything still queued for it is sent, like a network failure:
    /// what the last message caused (its answer) is lost in transit.
    fn drop_connection(&mut self, now: Instant, conn: u64, how: DropKind) {
        let messages = self.conns.get(&conn).map_or(0, |c| c.messages);
        self.shared.count(|s| s.dropped_connections += 1);
        let action = format!("dropped ({how}) after {messages} message(s); nothing more is sent");
        self.shared.record(Some(conn), LogKind::Fault { action });
        // Forgotten first, so that the outputs queued for it are discarded.
        self.close(conn, how, "dropped by a fault");
        // Through the protocol server, so that it keeps the session for a reconnection.
        self.server().drop_connection(now, ConnectionId(conn));
        self.pump(now);
    }

    /// Carries out everything the protocol server has queued, in order.
    fn pump(&mut self, now: Instant) {
        loop {
            let outputs: Vec<ServerOutput> = {
                let mut server = self.server();
                std::iter::from_fn(|| server.poll_output()).collect()
            };
            if outputs.is_empty() {
                return;
            }
            for output in outputs {
                self.output(now, output);
            }
        }
    }

    fn output(&mut self, now: Instant, output: ServerOutput) {
        match output {
            ServerOutput::Transmit { conn, frame } => self.transmit(now, conn.0, frame),
            ServerOutput::CloseTransport { conn } => {
                let stalled = self.conns.get(&conn.0).is_some_and(|c| c.phase == Phase::Stalled);
                // A stalled connection is never closed by the server.
                if !stalled {
                    self.close(conn.0, DropKind::Fin, "closed by the server");
                }
            }
            ServerOutput::Event(event) => self.event(event),
        }
    }

    fn transmit(&mut self, now: Instant, conn: u64, frame: Bytes) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        match c.phase {
            Phase::Stalled => {}
            Phase::AwaitingResponse => {
                c.phase = Phase::Open;
                match c.malformed {
                    Some(m) if frame.len() == ConnectionResponse::SUCCESS_LEN => {
                        let (bytes, text) = m.apply(&frame);
                        self.shared.count(|s| s.malformed_responses += 1);
                        self.shared
                            .record(Some(conn), LogKind::response(&bytes, Some(m.name().to_owned())));
                        let message = if text {
                            WsMessage::Text(String::from_utf8_lossy(&bytes).into_owned().into())
                        } else {
                            WsMessage::Binary(bytes.into())
                        };
                        self.send(conn, message);
                        self.close(conn, DropKind::Fin, "closed after a malformed response");
                        // The session stays for the client's `r`, as after any lost connection.
                        self.server().handle_closed(now, ConnectionId(conn));
                    }
                    _ => {
                        self.count_response(&frame);
                        self.shared.record(Some(conn), LogKind::response(&frame, None));
                        self.send(conn, WsMessage::Binary(frame));
                    }
                }
            }
            Phase::Open => {
                let message = Message::decode(&frame);
                let answered_ping = match &message {
                    Ok(Message::ServiceResponse { cid, .. } | Message::ServiceError { cid, .. }) => {
                        c.user_pings.remove(cid)
                    }
                    _ => false,
                };
                self.shared.count(|s| {
                    s.messages_sent += 1;
                    match message {
                        Ok(Message::ServiceRequest {
                            service: ServiceId::SYSTEM_PING,
                            ..
                        }) => s.system_pings_sent += 1,
                        Ok(Message::Abort) => s.aborts_sent += 1,
                        _ => {}
                    }
                    if answered_ping {
                        s.user_pings_answered += 1;
                    }
                });
                self.shared
                    .record(Some(conn), LogKind::message(Direction::Out, &frame, false));
                self.send(conn, WsMessage::Binary(frame));
            }
        }
    }

    fn count_response(&self, frame: &[u8]) {
        if frame.len() == ConnectionResponse::REJECTION_LEN {
            self.shared.count(|s| s.rejections += 1);
        }
    }

    fn event(&mut self, event: ServerEvent) {
        self.shared.count(|s| match &event {
            ServerEvent::Connected { .. } => s.sessions_opened += 1,
            ServerEvent::Reconnected { .. } => s.reconnections += 1,
            ServerEvent::SystemPingAnswered { .. } => s.system_pings_answered += 1,
            ServerEvent::CloseRequested { .. } => s.close_requests += 1,
            _ => {}
        });
        let conn = match &event {
            ServerEvent::Connected { conn, .. }
            | ServerEvent::Rejected { conn, .. }
            | ServerEvent::Reconnected { conn, .. }
            | ServerEvent::MessageReceived { conn, .. }
            | ServerEvent::ServiceRequest { conn, .. }
            | ServerEvent::UnknownService { conn, .. }
            | ServerEvent::SystemPingAnswered { conn, .. }
            | ServerEvent::ResponseReceived { conn, .. }
            | ServerEvent::PrincipalChanged { conn, .. }
            | ServerEvent::CloseRequested { conn, .. }
            | ServerEvent::Detached { conn, .. }
            | ServerEvent::ProtocolError { conn, .. } => Some(conn.0),
            ServerEvent::SessionClosed { conn, .. } => conn.map(|c| c.0),
        };
        self.shared.record(conn, LogKind::Server(event));
    }

    /// A response made by a fault, without the protocol server, then the close.
    fn fault_response(&mut self, conn: u64, frame: Vec<u8>, fault: &str) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.phase = Phase::Open;
        }
        self.count_response(&frame);
        self.shared
            .record(Some(conn), LogKind::response(&frame, Some(fault.to_owned())));
        self.send(conn, WsMessage::Binary(frame.into()));
        self.close(conn, DropKind::Fin, "closed after a fault's response");
    }

    fn stall(&mut self, conn: u64, action: String) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.phase = Phase::Stalled;
        let _ = c.commands.try_send(ConnCmd::Stall);
        self.shared.count(|s| s.stalled_connections += 1);
        self.shared.record(Some(conn), LogKind::Fault { action });
    }

    /// Queues `message` for `conn`. A client that leaves a whole queue unread is cut off.
    fn send(&mut self, conn: u64, message: WsMessage) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        match c.commands.try_send(ConnCmd::Send(message)) {
            Ok(()) => {}
            // The task has ended; it reports how.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.shared.record(
                    Some(conn),
                    LogKind::Error {
                        message: format!(
                            "client does not read: {} messages queued",
                            crate::conn::COMMAND_QUEUE
                        ),
                    },
                );
                self.close(conn, DropKind::Rst, "closed: the client does not read");
                self.server().handle_closed(Instant::now(), ConnectionId(conn));
            }
        }
    }

    /// Ends `conn` from the server side (no WebSocket close frame) and forgets it.
    fn close(&mut self, conn: u64, how: DropKind, why: &str) {
        if let Some(c) = self.conns.remove(&conn) {
            // A full queue cannot take the close: dropping the sender ends the task,
            // which drops the socket, all the same.
            let _ = c.commands.try_send(ConnCmd::Close(how));
            self.shared.record(
                Some(conn),
                LogKind::Closed {
                    by: Side::Server,
                    reason: format!("{why} ({how})"),
                },
            );
        }
    }
}

/// Randomness for session ids and tokens from the standard library's per-process
/// random hash keys: unpredictable enough for a loopback test server, no extra crate.
pub(crate) fn entropy() -> impl FnMut(&mut [u8]) + Send {
    use std::hash::{BuildHasher, Hasher};
    let state = std::collections::hash_map::RandomState::new();
    let mut counter: u64 = 0;
    move |buf: &mut [u8]| {
        for chunk in buf.chunks_mut(8) {
            counter = counter.wrapping_add(1);
            let mut h = state.build_hasher();
            h.write_u64(counter);
            let bytes = h.finish().to_be_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}
