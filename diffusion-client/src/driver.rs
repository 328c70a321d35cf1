//! The driver task: owns the WebSocket and the `ClientSession`, always reads, carries out
//! the core's outputs in order and wakes it at its next timeout. It only moves bytes and time.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use diffusion_proto::{
    ClientSession, ErrorReason, Event, InboundRequestId, Output, Reply, RequestId, ServiceId, StateChange,
    TransportError,
};
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot, watch};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tungstenite::Message as WsMessage;

use crate::error::Error;
use crate::proxy::Proxy;
use crate::runtime::{self, Runtime, Tls};
use crate::shared::{Changes, Command, Handler, Listener, Published};

/// An inbound request's answer, from the task that ran its handler.
struct Answer {
    id: InboundRequestId,
    result: Result<Bytes, String>,
}

/// The things the driver waits on besides its timer, polled in turn so that a flood on one
/// starves no other.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// Frames from the open WebSocket.
    Socket,
    /// The WebSocket being opened.
    Opening,
    /// The WebSocket close handshake of a connection given up on.
    Closing,
    /// The handles' commands.
    Commands,
    /// Handlers' answers to the server's requests.
    Answers,
}

const SOURCES: [Source; 5] = [
    Source::Socket,
    Source::Opening,
    Source::Closing,
    Source::Commands,
    Source::Answers,
];

/// What woke the driver.
enum Wake<W> {
    Frame(Option<Result<WsMessage, tungstenite::Error>>),
    Opened(Result<W, TransportError>),
    Closed,
    Command(Option<Command>),
    Answer(Answer),
    Timeout,
}

type Opening<W> = Pin<Box<dyn Future<Output = Result<W, TransportError>> + Send>>;
type Closing = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A WebSocket close takes at most this long before the connection is simply dropped.
const CLOSE_HANDSHAKE: Duration = Duration::from_millis(500);

/// Inputs handled, at most, while written frames wait for one flush.
const MAX_BATCH: u32 = 64;

pub(crate) struct Driver<R: Runtime> {
    core: ClientSession,
    tls: Tls,
    proxy: Option<Arc<Proxy>>,
    ws_config: WebSocketConfig,
    ws: Option<R::WebSocket>,
    opening: Option<Opening<R::WebSocket>>,
    closing: Option<Closing>,
    timer: Option<(Instant, Pin<Box<R::Sleep>>)>,
    commands: mpsc::UnboundedReceiver<Command>,
    handles_alive: bool,
    /// Handlers' answers; opened by the first inbound request, as most sessions get none.
    answers: Option<(mpsc::UnboundedSender<Answer>, mpsc::UnboundedReceiver<Answer>)>,
    waiting: HashMap<RequestId, oneshot::Sender<Result<Reply, Error>>>,
    handlers: HashMap<ServiceId, Handler>,
    status: watch::Sender<Published>,
    changes: Arc<Changes>,
    listeners: Vec<Listener>,
    close_waiters: Vec<oneshot::Sender<()>>,
    /// Which source is polled first, rotated.
    turn: usize,
    /// Frames were fed to the WebSocket since its last flush.
    unflushed: bool,
}

impl<R: Runtime> Driver<R> {
    pub(crate) fn new(
        core: ClientSession,
        tls: Tls,
        proxy: Option<Arc<Proxy>>,
        commands: mpsc::UnboundedReceiver<Command>,
        status: watch::Sender<Published>,
        changes: Arc<Changes>,
    ) -> Self {
        let ws_config = runtime::websocket_config(core.config().max_inbound_message_size);
        Driver {
            core,
            tls,
            proxy,
            ws_config,
            ws: None,
            opening: None,
            closing: None,
            timer: None,
            commands,
            handles_alive: true,
            answers: None,
            waiting: HashMap::new(),
            handlers: HashMap::new(),
            status,
            changes,
            listeners: Vec::new(),
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
            self.on_wake(wake);
        }
        // The last connection's close handshake, bounded, before the session counts as gone.
        if let Some(closing) = self.closing.take() {
            closing.await;
        }
        for waiter in self.close_waiters.drain(..) {
            let _ = waiter.send(());
        }
    }

    fn on_wake(&mut self, wake: Wake<R::WebSocket>) {
        match wake {
            Wake::Frame(frame) => self.on_frame(frame),
            Wake::Opened(Ok(ws)) => {
                self.opening = None;
                self.ws = Some(ws);
            }
            Wake::Opened(Err(cause)) => {
                tracing::debug!(%cause, "connection attempt failed");
                self.opening = None;
                self.core.handle_transport_closed(Instant::now(), cause);
            }
            Wake::Closed => self.closing = None,
            Wake::Command(command) => self.on_command(command),
            Wake::Answer(answer) => self.on_answer(answer),
            Wake::Timeout => {
                self.timer = None;
                self.core.handle_timeout(Instant::now());
            }
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
                    self.write_failed(e);
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

    /// Waits for the next thing to handle: one of the [`Source`]s or the timer.
    async fn wake(&mut self) -> Wake<R::WebSocket> {
        std::future::poll_fn(|cx| self.poll_wake(cx, true)).await
    }

    /// The next thing to handle if one is ready now, the timer aside: polling it with
    /// another waker would re-register it, which on async-io wakes the reactor's thread.
    fn ready_now(&mut self) -> Option<Wake<R::WebSocket>> {
        std::future::poll_fn(|cx| self.poll_wake(cx, false)).now_or_never()
    }

    fn poll_wake(&mut self, cx: &mut Context<'_>, timer: bool) -> Poll<Wake<R::WebSocket>> {
        self.turn = self.turn.wrapping_add(1);
        for i in 0..SOURCES.len() {
            let source = SOURCES[(self.turn + i) % SOURCES.len()];
            if let Poll::Ready(wake) = self.poll_source(source, cx) {
                return Poll::Ready(wake);
            }
        }
        match &mut self.timer {
            Some((_, sleep)) if timer => sleep.as_mut().poll(cx).map(|()| Wake::Timeout),
            _ => Poll::Pending,
        }
    }

    fn poll_source(&mut self, source: Source, cx: &mut Context<'_>) -> Poll<Wake<R::WebSocket>> {
        match source {
            Source::Socket => match &mut self.ws {
                Some(ws) => ws.poll_next_unpin(cx).map(Wake::Frame),
                None => Poll::Pending,
            },
            Source::Opening => match &mut self.opening {
                Some(opening) => opening.poll_unpin(cx).map(Wake::Opened),
                None => Poll::Pending,
            },
            Source::Closing => match &mut self.closing {
                Some(closing) => closing.poll_unpin(cx).map(|()| Wake::Closed),
                None => Poll::Pending,
            },
            Source::Commands if self.handles_alive => self.commands.poll_recv(cx).map(Wake::Command),
            Source::Commands => Poll::Pending,
            Source::Answers => match &mut self.answers {
                Some((_, answers)) => match answers.poll_recv(cx) {
                    Poll::Ready(Some(answer)) => Poll::Ready(Wake::Answer(answer)),
                    _ => Poll::Pending,
                },
                None => Poll::Pending,
            },
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
            Some(Ok(WsMessage::Close(frame))) => TransportError::Closed {
                code: frame.as_ref().map(|f| u16::from(f.code)),
                reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
            },
            Some(Err(e)) => TransportError::WebSocket { source: Arc::new(e) },
            None => TransportError::Ended,
        };
        tracing::debug!(%cause, "connection ended");
        self.ws = None;
        self.core.handle_transport_closed(now, cause);
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
                    tracing::debug!(url = %request.url, reconnect = request.is_reconnect(), proxy = ?self.proxy, "opening a connection");
                    self.close_transport();
                    self.opening = Some(Box::pin(runtime::open::<R>(
                        request,
                        self.tls.clone(),
                        self.proxy.clone(),
                        self.ws_config,
                    )));
                }
                Output::Transmit(frame) => {
                    if let Some(ws) = &mut self.ws {
                        match ws.feed(WsMessage::Binary(frame)).await {
                            Ok(()) => self.unflushed = true,
                            Err(e) => self.write_failed(e),
                        }
                    }
                }
                Output::CloseTransport => self.close_transport(),
                Output::Event(event) => self.deliver(event),
                other => tracing::warn!(?other, "an output this driver does not know"),
            }
        }
    }

    /// Gives up on the current transport: an attempt to open one is dropped, an open one
    /// is closed with a WebSocket close (1000) in the background, bounded by
    /// [`CLOSE_HANDSHAKE`], while the session goes on.
    fn close_transport(&mut self) {
        self.opening = None;
        self.unflushed = false;
        let Some(mut ws) = self.ws.take() else {
            return;
        };
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        let handshake = Box::pin(async move {
            let _ = ws.send(WsMessage::Close(Some(frame))).await;
            let _ = ws.close().await;
        });
        let deadline = Box::pin(R::sleep_until(Instant::now() + CLOSE_HANDSHAKE));
        // A previous close still under way is simply dropped with its connection.
        self.closing = Some(Box::pin(
            futures_util::future::select(handshake, deadline).map(|_| ()),
        ));
    }

    fn write_failed(&mut self, e: tungstenite::Error) {
        tracing::debug!(error = %e, "write failed");
        self.ws = None;
        self.unflushed = false;
        self.core
            .handle_transport_closed(Instant::now(), TransportError::WebSocket { source: Arc::new(e) });
    }

    fn deliver(&mut self, event: Event) {
        match event {
            Event::StateChanged(change) => self.publish(change),
            // The response code and resends are in the status published with the change.
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
            Event::SystemPingAnswered => {
                let status = self.core.status();
                self.status.send_modify(|p| p.status = status);
            }
            // Topic messages are outside the session layer this client offers.
            Event::Topic(_) => {}
            other => tracing::warn!(?other, "an event this driver does not know"),
        }
    }

    /// A state change: the handles read the new status at once, the streams and listeners
    /// get the change, and only then is `connect()` woken, so that by the time it returns
    /// they all have it.
    fn publish(&mut self, change: StateChange) {
        match &change.reason {
            Some(reason) => tracing::info!(old = %change.old, new = %change.new, %reason, "session state"),
            None => {
                tracing::info!(old = %change.old, new = %change.new, session = ?self.core.session_id(), "session state")
            }
        }
        let status = self.core.status();
        self.status.send_if_modified(|p| {
            p.status = status;
            p.settled = false;
            false
        });
        self.changes.publish(&change, &mut self.listeners);
        for listener in &self.listeners {
            let call = std::panic::AssertUnwindSafe(|| listener(&change));
            if std::panic::catch_unwind(call).is_err() {
                tracing::error!("a state change listener panicked");
            }
        }
        self.status.send_modify(|p| p.settled = true);
    }
}
