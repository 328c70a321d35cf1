//! The driver task: owns the WebSocket and the `ClientSession`, always reads, carries out
//! the core's outputs in order and wakes it at its next timeout. It only moves bytes and time.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use diffusion_proto::{
    ClientSession, ErrorReason, Event, InboundRequestId, Output, Reply, RequestId, ServiceId,
};
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot, watch};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tungstenite::Message as WsMessage;

use crate::error::Error;
use crate::runtime::{self, Runtime, Tls};
use crate::session::{Changes, Handler, Snapshot};

/// What a session handle asks of the driver.
pub(crate) enum Command {
    Invoke {
        service: ServiceId,
        payload: Bytes,
        reply: oneshot::Sender<Result<Reply, Error>>,
    },
    Register {
        service: ServiceId,
        handler: Handler,
    },
    Deregister {
        service: ServiceId,
    },
    Close {
        done: oneshot::Sender<()>,
    },
}

/// An inbound request's answer, from the task that ran its handler.
struct Answer {
    id: InboundRequestId,
    result: Result<Bytes, String>,
}

/// What woke the driver.
enum Wake<W> {
    Frame(Option<Result<WsMessage, tungstenite::Error>>),
    Opened(Result<W, String>),
    Command(Option<Command>),
    Answer(Answer),
    Timeout,
}

type Opening<W> = Pin<Box<dyn Future<Output = Result<W, String>> + Send>>;

/// A WebSocket close takes at most this long before the connection is simply dropped.
const CLOSE_HANDSHAKE: Duration = Duration::from_millis(500);

/// Inputs handled, at most, while written frames wait for one flush.
const MAX_BATCH: u32 = 64;

pub(crate) struct Driver<R: Runtime> {
    core: ClientSession,
    tls: Tls,
    ws_config: WebSocketConfig,
    ws: Option<R::WebSocket>,
    opening: Option<Opening<R::WebSocket>>,
    timer: Option<(Instant, Pin<Box<R::Sleep>>)>,
    commands: mpsc::UnboundedReceiver<Command>,
    handles_alive: bool,
    /// Handlers' answers; opened by the first inbound request, as most sessions get none.
    answers: Option<(mpsc::UnboundedSender<Answer>, mpsc::UnboundedReceiver<Answer>)>,
    waiting: HashMap<RequestId, oneshot::Sender<Result<Reply, Error>>>,
    handlers: HashMap<ServiceId, Handler>,
    snapshot: watch::Sender<Snapshot>,
    changes: Changes,
    close_waiters: Vec<oneshot::Sender<()>>,
    /// Which source is polled first, rotated so that a flood on one starves no other.
    turn: usize,
    /// Frames were fed to the WebSocket since its last flush.
    unflushed: bool,
}

impl<R: Runtime> Driver<R> {
    pub(crate) fn new(
        core: ClientSession,
        tls: Tls,
        commands: mpsc::UnboundedReceiver<Command>,
        snapshot: watch::Sender<Snapshot>,
        changes: Changes,
    ) -> Self {
        let ws_config = runtime::websocket_config(core.config().max_inbound_message_size);
        Driver {
            core,
            tls,
            ws_config,
            ws: None,
            opening: None,
            timer: None,
            commands,
            handles_alive: true,
            answers: None,
            waiting: HashMap::new(),
            handlers: HashMap::new(),
            snapshot,
            changes,
            close_waiters: Vec::new(),
            turn: 0,
            unflushed: false,
        }
    }

    pub(crate) async fn run(mut self: Box<Self>) {
        let mut batched = 0;
        loop {
            self.carry_out_outputs().await;
            let closed = self.core.state().is_closed();
            // Written frames wait in the WebSocket's buffer while more input is ready at
            // once, so that a burst of requests (pipelined pings) leaves in one write rather
            // than one each; bounded, so that a flood of input cannot hold a frame back.
            let ready = if self.unflushed && !closed && batched < MAX_BATCH {
                self.ready_now()
            } else {
                None
            };
            let wake = match ready {
                Some(wake) => {
                    batched += 1;
                    wake
                }
                None => {
                    batched = 0;
                    if !self.flush().await {
                        // The core has more to say about the lost connection.
                        continue;
                    }
                    if closed {
                        break;
                    }
                    self.arm_timer();
                    self.wake().await
                }
            };
            match wake {
                Wake::Frame(frame) => self.on_frame(frame),
                Wake::Opened(Ok(ws)) => {
                    self.opening = None;
                    self.ws = Some(ws);
                }
                Wake::Opened(Err(cause)) => {
                    tracing::debug!(%cause, "connection attempt failed");
                    self.opening = None;
                    self.core.handle_transport_closed(Instant::now(), &cause);
                }
                Wake::Command(command) => self.on_command(command),
                Wake::Answer(answer) => self.on_answer(answer),
                Wake::Timeout => {
                    self.timer = None;
                    self.core.handle_timeout(Instant::now());
                }
            }
        }
        for waiter in self.close_waiters.drain(..) {
            let _ = waiter.send(());
        }
    }

    /// Sends the frames fed since the last flush; false when that failed, which the core
    /// has been told.
    async fn flush(&mut self) -> bool {
        if !std::mem::take(&mut self.unflushed) {
            return true;
        }
        match &mut self.ws {
            Some(ws) => match ws.flush().await {
                Ok(()) => true,
                Err(e) => {
                    self.write_failed(&e);
                    false
                }
            },
            None => true,
        }
    }

    /// Keeps one timer for the core's next deadline, replaced only when it moves.
    fn arm_timer(&mut self) {
        match self.core.poll_timeout() {
            None => self.timer = None,
            Some(deadline) if self.timer.as_ref().is_some_and(|t| t.0 == deadline) => {}
            Some(deadline) => self.timer = Some((deadline, Box::pin(R::sleep_until(deadline)))),
        }
    }

    /// Waits for the next thing to handle: a frame, the transport opening, a command, a
    /// handler's answer or the timer.
    async fn wake(&mut self) -> Wake<R::WebSocket> {
        std::future::poll_fn(|cx| self.poll_wake(cx, true)).await
    }

    /// The next thing to handle if one is ready now, the timer aside: polling it with
    /// another waker would re-register it, which on async-io wakes the reactor's thread.
    fn ready_now(&mut self) -> Option<Wake<R::WebSocket>> {
        std::future::poll_fn(|cx| self.poll_wake(cx, false)).now_or_never()
    }

    fn poll_wake(&mut self, cx: &mut std::task::Context<'_>, timer: bool) -> Poll<Wake<R::WebSocket>> {
        self.turn = self.turn.wrapping_add(1);
        let first = self.turn % 4;
        for i in 0..4 {
            let ready = match (first + i) % 4 {
                0 => match &mut self.ws {
                    Some(ws) => ws.poll_next_unpin(cx).map(Wake::Frame),
                    None => Poll::Pending,
                },
                1 => match &mut self.opening {
                    Some(opening) => opening.poll_unpin(cx).map(Wake::Opened),
                    None => Poll::Pending,
                },
                2 if self.handles_alive => self.commands.poll_recv(cx).map(Wake::Command),
                2 => Poll::Pending,
                _ => match &mut self.answers {
                    Some((_, answers)) => match answers.poll_recv(cx) {
                        Poll::Ready(Some(answer)) => Poll::Ready(Wake::Answer(answer)),
                        _ => Poll::Pending,
                    },
                    None => Poll::Pending,
                },
            };
            if ready.is_ready() {
                return ready;
            }
        }
        match &mut self.timer {
            Some((_, sleep)) if timer => sleep.as_mut().poll(cx).map(|()| Wake::Timeout),
            _ => Poll::Pending,
        }
    }

    fn on_frame(&mut self, frame: Option<Result<WsMessage, tungstenite::Error>>) {
        let now = Instant::now();
        let cause = match frame {
            Some(Ok(WsMessage::Binary(data))) => return self.core.handle_frame(now, data),
            // The Python client accepts text frames as their UTF-8 bytes; so do we.
            Some(Ok(WsMessage::Text(text))) => return self.core.handle_frame(now, Bytes::from(text)),
            // tungstenite answers pings itself while reading.
            Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_))) => return,
            Some(Ok(WsMessage::Close(Some(f)))) => {
                format!(
                    "the server closed the WebSocket ({} {})",
                    u16::from(f.code),
                    f.reason
                )
            }
            Some(Ok(WsMessage::Close(None))) => "the server closed the WebSocket".to_owned(),
            Some(Err(e)) => e.to_string(),
            None => "the connection ended".to_owned(),
        };
        tracing::debug!(%cause, "connection ended");
        self.ws = None;
        self.core.handle_transport_closed(now, &cause);
    }

    fn on_command(&mut self, command: Option<Command>) {
        let now = Instant::now();
        match command {
            Some(Command::Invoke {
                service,
                payload,
                reply,
            }) => match self.core.invoke(now, SystemTime::now(), service, payload) {
                Ok(id) => {
                    self.waiting.insert(id, reply);
                }
                Err(e) => {
                    let _ = reply.send(Err(Error::Refused(e)));
                }
            },
            Some(Command::Register { service, handler }) => {
                self.core.register_service(service);
                self.handlers.insert(service, handler);
            }
            Some(Command::Deregister { service }) => {
                self.core.deregister_service(service);
                self.handlers.remove(&service);
            }
            Some(Command::Close { done }) => {
                self.close_waiters.push(done);
                self.core.close(now);
            }
            None => {
                // Every handle is gone: nobody can use the session any more.
                self.handles_alive = false;
                self.core.close(now);
            }
        }
    }

    fn on_answer(&mut self, answer: Answer) {
        // The session may have closed meanwhile; then the answer has nowhere to go.
        let _ = match answer.result {
            Ok(payload) => self.core.respond(answer.id, payload),
            Err(description) => {
                self.core
                    .respond_error(answer.id, &description, ErrorReason::CALLBACK_EXCEPTION)
            }
        };
    }

    /// Carries out every output; frames are fed to the WebSocket, to be flushed by `run`.
    async fn carry_out_outputs(&mut self) {
        while let Some(output) = self.core.poll_output() {
            match output {
                Output::Connect(request) => {
                    // The URL and whether it resumes a session; never the parameters, which
                    // hold the credentials and the session token.
                    tracing::debug!(url = %request.url, reconnect = request.is_reconnect(), "opening a connection");
                    self.ws = None;
                    self.unflushed = false;
                    self.opening = Some(Box::pin(runtime::open::<R>(
                        request,
                        self.tls.clone(),
                        self.ws_config,
                    )));
                }
                Output::Transmit(frame) => {
                    if let Some(ws) = &mut self.ws {
                        match ws.feed(WsMessage::Binary(frame)).await {
                            Ok(()) => self.unflushed = true,
                            Err(e) => self.write_failed(&e),
                        }
                    }
                }
                Output::CloseTransport => {
                    self.opening = None;
                    self.unflushed = false;
                    if let Some(mut ws) = self.ws.take() {
                        let frame = CloseFrame {
                            code: CloseCode::Normal,
                            reason: "".into(),
                        };
                        let close = Box::pin(async move {
                            let _ = ws.send(WsMessage::Close(Some(frame))).await;
                            let _ = ws.close().await;
                        });
                        let deadline = Box::pin(R::sleep_until(Instant::now() + CLOSE_HANDSHAKE));
                        let _ = futures_util::future::select(close, deadline).await;
                    }
                }
                Output::Event(event) => self.deliver(event),
            }
        }
    }

    fn write_failed(&mut self, e: &tungstenite::Error) {
        tracing::debug!(error = %e, "write failed");
        self.ws = None;
        self.unflushed = false;
        self.core
            .handle_transport_closed(Instant::now(), &format!("write failed: {e}"));
    }

    fn deliver(&mut self, event: Event) {
        match event {
            Event::StateChanged(change) => {
                // One update with everything the core knows, so that whoever wakes on the
                // new state also sees the session id and limits that came with it.
                let core = &self.core;
                let mut changes = self.changes.lock().unwrap_or_else(|e| e.into_inner());
                self.snapshot.send_modify(|s| {
                    s.state = change.new;
                    s.session_id = core.session_id();
                    s.response_code = core.response_code();
                    s.ping_period = core.ping_period();
                    s.max_message_size = core.max_message_size();
                    if change.new.is_closed() {
                        s.close_reason = change.reason.clone();
                    }
                });
                match &change.reason {
                    Some(reason) => {
                        tracing::info!(old = %change.old, new = %change.new, %reason, "session state")
                    }
                    None => {
                        tracing::info!(old = %change.old, new = %change.new, session = ?core.session_id(), "session state")
                    }
                }
                let closed = change.new.is_closed();
                if let Some(sender) = changes.as_ref() {
                    let _ = sender.send(change);
                }
                if closed {
                    // The last change: subscribers' streams end once they have read it.
                    *changes = None;
                }
            }
            // Already published with the state change that precedes it.
            Event::Connected { .. } => {}
            Event::Response { id, result } => {
                if let Some(reply) = self.waiting.remove(&id) {
                    let _ = reply.send(result.map_err(Error::Request));
                }
            }
            Event::InboundRequest { id, service, payload } => match self.handlers.get(&service) {
                Some(handler) => {
                    let answer = handler(payload);
                    let answers = self.answers.get_or_insert_with(mpsc::unbounded_channel).0.clone();
                    R::spawn(async move {
                        let result = answer.await;
                        let _ = answers.send(Answer { id, result });
                    });
                }
                None => {
                    let _ = self
                        .core
                        .respond_error(id, "no handler", ErrorReason::UNHANDLED_MESSAGE);
                }
            },
            Event::SystemPingAnswered => self.snapshot.send_modify(|s| s.system_pings_answered += 1),
            // Topic messages are outside the session layer this client offers.
            Event::Topic(_) => {}
        }
    }
}
