//! The driver task: owns the WebSocket and the `ClientSession`, always reads, carries out
//! the core's outputs in order and wakes it at its next timeout. It only moves bytes and time.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use diffusion_proto::{
    ClientSession, ErrorReason, Event, InboundRequestId, Output, Reply, RequestId, ServiceId, StateChange,
};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::error::Error;
use crate::session::{Handler, Snapshot};
use crate::transport::{self, Tls, Ws};

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

type Opening = Pin<Box<dyn Future<Output = Result<Ws, String>> + Send>>;

/// A WebSocket close takes at most this long before the connection is simply dropped.
const CLOSE_HANDSHAKE: Duration = Duration::from_millis(500);

pub(crate) struct Driver {
    core: ClientSession,
    tls: Tls,
    ws_config: WebSocketConfig,
    ws: Option<Ws>,
    opening: Option<Opening>,
    commands: mpsc::UnboundedReceiver<Command>,
    handles_alive: bool,
    answers_tx: mpsc::UnboundedSender<Answer>,
    answers: mpsc::UnboundedReceiver<Answer>,
    waiting: HashMap<RequestId, oneshot::Sender<Result<Reply, Error>>>,
    handlers: HashMap<ServiceId, Handler>,
    snapshot: watch::Sender<Snapshot>,
    changes: broadcast::Sender<StateChange>,
    close_waiters: Vec<oneshot::Sender<()>>,
}

impl Driver {
    pub(crate) fn new(
        core: ClientSession,
        tls: Tls,
        commands: mpsc::UnboundedReceiver<Command>,
        snapshot: watch::Sender<Snapshot>,
        changes: broadcast::Sender<StateChange>,
    ) -> Self {
        let ws_config = transport::websocket_config(core.config().max_inbound_message_size);
        let (answers_tx, answers) = mpsc::unbounded_channel();
        Driver {
            core,
            tls,
            ws_config,
            ws: None,
            opening: None,
            commands,
            handles_alive: true,
            answers_tx,
            answers,
            waiting: HashMap::new(),
            handlers: HashMap::new(),
            snapshot,
            changes,
            close_waiters: Vec::new(),
        }
    }

    pub(crate) async fn run(mut self) {
        loop {
            self.carry_out_outputs().await;
            if self.core.state().is_closed() {
                break;
            }
            let deadline = self.core.poll_timeout();
            tokio::select! {
                frame = next_frame(&mut self.ws) => self.on_frame(frame),
                opened = finish_opening(&mut self.opening) => {
                    self.opening = None;
                    match opened {
                        Ok(ws) => self.ws = Some(ws),
                        Err(cause) => self.core.handle_transport_closed(Instant::now(), &cause),
                    }
                }
                command = self.commands.recv(), if self.handles_alive => self.on_command(command),
                Some(answer) = self.answers.recv() => self.on_answer(answer),
                () = sleep_until(deadline) => self.core.handle_timeout(Instant::now()),
            }
        }
        for waiter in self.close_waiters.drain(..) {
            let _ = waiter.send(());
        }
    }

    fn on_frame(&mut self, frame: Option<Result<WsMessage, String>>) {
        let now = Instant::now();
        match frame {
            Some(Ok(WsMessage::Binary(data))) => self.core.handle_frame(now, data),
            // The Python client accepts text frames as their UTF-8 bytes; so do we.
            Some(Ok(WsMessage::Text(text))) => self.core.handle_frame(now, Bytes::from(text)),
            // tungstenite answers pings itself while reading.
            Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_))) => {}
            Some(Ok(WsMessage::Close(frame))) => {
                self.ws = None;
                let cause = match frame {
                    Some(f) => format!(
                        "the server closed the WebSocket ({} {})",
                        u16::from(f.code),
                        f.reason
                    ),
                    None => "the server closed the WebSocket".to_owned(),
                };
                self.core.handle_transport_closed(now, &cause);
            }
            Some(Err(cause)) => {
                self.ws = None;
                self.core.handle_transport_closed(now, &cause);
            }
            None => {
                self.ws = None;
                self.core.handle_transport_closed(now, "the connection ended");
            }
        }
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

    async fn carry_out_outputs(&mut self) {
        let mut wrote = false;
        while let Some(output) = self.core.poll_output() {
            match output {
                Output::Connect(request) => {
                    self.ws = None;
                    self.opening = Some(Box::pin(transport::open(
                        request,
                        self.tls.clone(),
                        self.ws_config,
                    )));
                }
                Output::Transmit(frame) => {
                    if let Some(ws) = &mut self.ws {
                        if let Err(e) = ws.feed(WsMessage::Binary(frame)).await {
                            self.ws = None;
                            self.core
                                .handle_transport_closed(Instant::now(), &format!("write failed: {e}"));
                        } else {
                            wrote = true;
                        }
                    }
                }
                Output::CloseTransport => {
                    self.opening = None;
                    wrote = false;
                    if let Some(mut ws) = self.ws.take() {
                        let frame = CloseFrame {
                            code: CloseCode::Normal,
                            reason: "".into(),
                        };
                        let _ = tokio::time::timeout(CLOSE_HANDSHAKE, ws.close(Some(frame))).await;
                    }
                }
                Output::Event(event) => self.deliver(event),
            }
        }
        if wrote {
            if let Some(ws) = &mut self.ws {
                if let Err(e) = ws.flush().await {
                    self.ws = None;
                    self.core
                        .handle_transport_closed(Instant::now(), &format!("write failed: {e}"));
                    // The core may have more to say about the lost connection.
                    Box::pin(self.carry_out_outputs()).await;
                }
            }
        }
    }

    fn deliver(&mut self, event: Event) {
        match event {
            Event::StateChanged(change) => {
                self.snapshot.send_modify(|s| {
                    s.state = change.new;
                    if change.new.is_closed() {
                        s.close_reason = change.reason.clone();
                    }
                });
                let _ = self.changes.send(change);
            }
            Event::Connected { session_id, .. } => {
                self.snapshot.send_modify(|s| {
                    s.session_id = Some(session_id);
                    s.ping_period = self.core.ping_period();
                    s.max_message_size = self.core.max_message_size();
                });
            }
            Event::Response { id, result } => {
                if let Some(reply) = self.waiting.remove(&id) {
                    let _ = reply.send(result.map_err(Error::Request));
                }
            }
            Event::InboundRequest { id, service, payload } => match self.handlers.get(&service) {
                Some(handler) => {
                    let answer = handler(payload);
                    let answers = self.answers_tx.clone();
                    tokio::spawn(async move {
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
            Event::Topic(_) => self.snapshot.send_modify(|s| s.topic_messages += 1),
        }
    }
}

async fn next_frame(ws: &mut Option<Ws>) -> Option<Result<WsMessage, String>> {
    match ws {
        Some(ws) => ws.next().await.map(|r| r.map_err(|e| e.to_string())),
        None => std::future::pending().await,
    }
}

async fn finish_opening(opening: &mut Option<Opening>) -> Result<Ws, String> {
    match opening {
        Some(fut) => fut.await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}
