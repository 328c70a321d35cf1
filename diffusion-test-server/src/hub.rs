//! The hub: the one task that owns the sans-IO protocol `Server`, feeds it what the
//! connection tasks report and its timer, and carries out its outputs (the pump). What it
//! does wrong on purpose is in `faults`.

use std::collections::HashMap;
use std::sync::{Arc, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use diffusion_proto::{ConnectionId, ResponseCode, Server, ServerOutput, ServiceId, UpgradeRequest};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::conn::{ConnCmd, Input};
use crate::faults::Faults;
use crate::log::{Direction, LogKind, Side};
use crate::options::{DropKind, Fault};
use crate::shared::{lock, Shared};
use crate::upgrade::UpgradeLog;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// The next transmit is the connection response.
    AwaitingResponse,
    Open,
    /// Nothing more is sent; the connection task reads and discards.
    Stalled,
}

pub(crate) struct Conn {
    pub(crate) commands: mpsc::Sender<ConnCmd>,
    pub(crate) phase: Phase,
    /// Client messages received on this connection since it opened or the fault was set.
    pub(crate) messages: u32,
}

/// The hub task's state.
pub(crate) struct Hub {
    pub(crate) shared: Arc<Shared>,
    pub(crate) conns: HashMap<u64, Conn>,
    pub(crate) faults: Faults,
}

impl Hub {
    pub(crate) fn new(shared: Arc<Shared>, faults: Faults) -> Self {
        Hub {
            shared,
            conns: HashMap::new(),
            faults,
        }
    }

    /// The protocol server, for one step.
    pub(crate) fn server(&self) -> MutexGuard<'_, Server> {
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
        let attached = |hub: &Self| -> Vec<ConnectionId> {
            hub.server().sessions().filter_map(|s| s.connection).collect()
        };
        match c {
            Control::ForgetSessions => {
                let ids: Vec<_> = self.server().sessions().map(|s| s.id).collect();
                for id in ids {
                    self.server().forget_session(id);
                }
            }
            Control::AbortSessions => {
                for conn in attached(self) {
                    self.server().abort(conn);
                }
            }
            Control::DropConnections => {
                for conn in attached(self) {
                    self.server().drop_connection(now, conn);
                }
            }
            Control::SetFault(fault) => self.set_fault(now, fault),
            Control::SetReconnectAnswer(code) => self.faults.reconnect_answer = code,
            Control::SendRequest(service, payload) => {
                for conn in attached(self) {
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
            Input::Closed {
                conn,
                reason,
                close_code,
            } => {
                if self.conns.remove(&conn).is_some() {
                    let kind = LogKind::Closed {
                        by: Side::Client,
                        reason,
                        close_code,
                    };
                    self.shared.record(Some(conn), kind);
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
        self.conns.insert(
            conn,
            Conn {
                commands,
                phase: Phase::AwaitingResponse,
                messages: 0,
            },
        );
        if self.answer_upgrade_with_fault(conn, version, reconnect) {
            return;
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

    /// Carries out everything the protocol server has queued, in order.
    pub(crate) fn pump(&mut self, now: Instant) {
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
            ServerOutput::Event(event) => {
                self.shared
                    .record(event.conn.map(|c| c.0), LogKind::Server(event));
            }
            other => self.shared.record(
                None,
                LogKind::Error {
                    message: format!("an output the test server does not know: {other:?}"),
                },
            ),
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
                if !self.replace_response(now, conn, &frame) {
                    self.send_response(conn, frame.to_vec(), None);
                }
            }
            Phase::Open => {
                self.shared.count(|s| s.messages_sent += 1);
                self.shared
                    .record(Some(conn), LogKind::message(Direction::Out, &frame, false));
                self.send(conn, WsMessage::Binary(frame));
            }
        }
    }

    /// Sends a connection response (the protocol server's, or one a fault made), counted
    /// and logged.
    pub(crate) fn send_response(&mut self, conn: u64, frame: Vec<u8>, fault: Option<String>) {
        if frame.len() == diffusion_proto::ConnectionResponse::REJECTION_LEN {
            self.shared.count(|s| s.rejections += 1);
        }
        self.shared.record(Some(conn), LogKind::response(&frame, fault));
        self.send(conn, WsMessage::Binary(frame.into()));
    }

    /// Queues `message` for `conn`. A client that leaves a whole queue unread is cut off.
    pub(crate) fn send(&mut self, conn: u64, message: WsMessage) {
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
    pub(crate) fn close(&mut self, conn: u64, how: DropKind, why: &str) {
        if let Some(c) = self.conns.remove(&conn) {
            // A full queue cannot take the close: dropping the sender ends the task,
            // which drops the socket, all the same.
            let _ = c.commands.try_send(ConnCmd::Close(how));
            self.shared.record(
                Some(conn),
                LogKind::Closed {
                    by: Side::Server,
                    reason: format!("{why} ({how})"),
                    close_code: None,
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
