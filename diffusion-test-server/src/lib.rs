//! A loopback Diffusion server for tests: the sans-IO `diffusion_proto::Server`
//! driven over tokio and tokio-tungstenite on 127.0.0.1, with a log of what it saw and
//! transport faults to inject.
//!
//! It stands in for a real Diffusion server in this workspace's tests and when running the
//! official Python and JavaScript clients (see the `diffusion-test-server` binary). All
//! protocol decisions (responses, pings, close, reconnection) are the protocol crate's;
//! this crate moves bytes and time, records, and misbehaves on request.
//!
//! A test starts one, points the client under test at [`TestServer::url`], and checks what
//! the server saw. With `diffusion-tokio` the client is
//! `Session::builder(&server.url()).principal("admin").password("secret").connect()`; here,
//! so that this crate's docs need no client crate, it is the protocol core of
//! `diffusion-proto` over a WebSocket of tokio-tungstenite, as an adapter drives it:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::{Duration, Instant};
//!
//! use diffusion_proto::{ClientConfig, ClientSession, Credentials, Output, SessionState};
//! use diffusion_test_server::{Options, TestServer};
//! use futures_util::StreamExt;
//! use tokio_tungstenite::tungstenite::client::IntoClientRequest;
//!
//! let server = TestServer::start(Options::default().user("admin", "secret")).await?;
//! println!("connect to {}", server.url()); // ws://127.0.0.1:PORT
//!
//! // The client under test connects.
//! let mut config = ClientConfig::new(&server.url())?;
//! config.principal = Some("admin".into());
//! config.credentials = Credentials::password("secret");
//! let mut client = ClientSession::new(config, Instant::now());
//! let Some(Output::Connect(connect)) = client.poll_output() else { unreachable!() };
//! let mut request = connect.uri().into_client_request()?;
//! for (name, value) in connect.headers() {
//!     request.headers_mut().append(name, value.parse()?);
//! }
//! let tcp = tokio::net::TcpStream::connect(server.addr()).await?;
//! let (mut ws, _) = tokio_tungstenite::client_async(request, tcp).await?;
//! let response = ws.next().await.ok_or("no connection response")??;
//! client.handle_frame(Instant::now(), response.into_data());
//! assert_eq!(client.state(), SessionState::ConnectedActive);
//!
//! // What the server saw.
//! assert!(server.wait_for(|s| s.stats().sessions_opened == 1, Duration::from_secs(5)).await);
//! assert_eq!(server.sessions()[0].principal.as_deref(), Some("admin"));
//! server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Tests that do not run on tokio (async-std, smol) start it with [`ServerThread`], on a
//! thread and runtime of its own. [`ConnectProxy`] is an HTTP CONNECT proxy for tests of a
//! client's proxy support.
//!
//! # Architecture
//!
//! One hub task owns the protocol `Server` and its timer. Each TCP connection gets a task
//! that does TLS and the WebSocket upgrade (capturing path, query and headers), hands the
//! upgrade to the hub, then pumps frames: client frames to the hub, the hub's frames to the
//! socket. A connection the server ends is dropped without a WebSocket close frame, as the
//! real server does after a rejection or ABORT. WebSocket pings are answered.
//!
//! # Faults
//!
//! [`Fault`] makes the server misbehave at the transport level: refuse every connection
//! with a chosen code, drop a connection (FIN or RST) when a chosen message arrives (its
//! answer is lost in transit), stall (send nothing, not even pongs, never close), send no
//! connection response at all, or send a malformed one. [`Options::reconnect_answer`]
//! answers every reconnection with a chosen code. What the protocol itself does (117 for an
//! unknown session, ABORT after unanswered system pings or an oversize message, …) is
//! `diffusion_proto`'s, documented on its `Server`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(unreachable_pub)]

mod conn;
mod faults;
mod hub;
mod log;
mod options;
mod proxy;
mod shared;
mod thread;
mod tls;
mod upgrade;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use diffusion_proto::{ResponseCode, Server, ServerConfig, ServerOutput, ServiceId, SessionId, UserTable};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

pub use crate::log::{Direction, FaultAction, LogEntry, LogKind, Side};
pub use crate::options::{DropKind, Fault, Malformed, Options, TopicSeed};
pub use crate::proxy::{ConnectProxy, ProxyOptions, ProxyRequest};
pub use crate::shared::Stats;
pub use crate::thread::ServerThread;
pub use crate::tls::TlsIdentity;
#[cfg(feature = "tls")]
pub use crate::tls::{self_signed, try_self_signed};
pub use crate::upgrade::UpgradeLog;
pub use diffusion_proto::REDACTED;
pub use diffusion_proto::{
    ServerCloseReason, ServerEvent, ServerEventKind, SessionInfo, SessionStats, TopicInfo, TopicSent,
};

use crate::conn::{ConnSetup, Input};
use crate::faults::Faults;
use crate::hub::{Control, Hub};
use crate::shared::{lock, Shared};

/// A running test server on 127.0.0.1. Dropping it stops it (its tasks are aborted);
/// [`TestServer::shutdown`] also waits for that.
pub struct TestServer {
    addr: SocketAddr,
    url: String,
    shared: Arc<Shared>,
    control: mpsc::UnboundedSender<Control>,
    hub: JoinHandle<()>,
    acceptor: JoinHandle<()>,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl TestServer {
    /// Binds 127.0.0.1 (only) on `options.port` and starts serving. Must be called within
    /// a tokio runtime. Fails when the port is taken, or on a TLS identity that cannot be
    /// used (or TLS asked for without the `tls` feature).
    pub async fn start(options: Options) -> std::io::Result<TestServer> {
        let setup = ConnSetup {
            #[cfg(feature = "tls")]
            tls: options.tls.as_ref().map(tls::acceptor).transpose()?,
            websocket: conn::websocket_config(options.max_message_size),
        };
        #[cfg(not(feature = "tls"))]
        if options.tls.is_some() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "TLS needs the `tls` feature of diffusion-test-server",
            ));
        }
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, options.port)).await?;
        let addr = listener.local_addr()?;
        let scheme = if options.tls.is_some() { "wss" } else { "ws" };
        let url = format!("{scheme}://{addr}");

        let users = options
            .users
            .iter()
            .fold(UserTable::new(), |t, (principal, password)| {
                t.with_user(principal.as_str(), password.as_str())
            });
        let config = ServerConfig {
            ping_period: options.ping_period,
            max_message_size: options.max_message_size,
            topic_deltas: options.deltas,
            ..ServerConfig::default()
        };
        let mut server = Server::new(config, Box::new(users), Box::new(hub::entropy()));
        for seed in &options.topics {
            let added = match &seed.value {
                Some(value) => {
                    server.add_and_set_topic(&seed.path, seed.specification.clone(), value.clone())
                }
                None => server.add_topic(&seed.path, seed.specification.clone()),
            };
            added.map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        }

        let shared = Arc::new(Shared::new(server, options.log_json));
        shared.record(
            None,
            LogKind::Listening {
                port: addr.port(),
                url: url.clone(),
            },
        );
        // The topics added above, logged after `listening`.
        let added: Vec<ServerOutput> = std::iter::from_fn(|| lock(&shared.server).poll_output()).collect();
        for output in added {
            if let ServerOutput::Event(event) = output {
                shared.record(None, LogKind::Server(event));
            }
        }
        let (inputs_tx, inputs) = mpsc::channel(1024);
        let (control, control_rx) = mpsc::unbounded_channel();
        let hub = tokio::spawn(
            Hub::new(
                shared.clone(),
                Faults::new(options.fault, options.reconnect_answer),
            )
            .run(inputs, control_rx),
        );
        let acceptor = tokio::spawn(accept_loop(listener, setup, inputs_tx, shared.clone()));
        Ok(TestServer {
            addr,
            url,
            shared,
            control,
            hub,
            acceptor,
        })
    }

    /// The bound address (127.0.0.1 and the actual port).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://127.0.0.1:PORT`, or `wss://127.0.0.1:PORT` with TLS. Clients add `/diffusion`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Everything logged so far, oldest first.
    pub fn log(&self) -> Vec<LogEntry> {
        lock(&self.shared.log).clone()
    }

    /// Waits until `pred` holds, or `timeout` passes; returns whether it held. `pred` is
    /// checked at once and after every log entry and counter change, and may look at
    /// anything: [`TestServer::log`], [`TestServer::stats`], [`TestServer::session`].
    ///
    /// ```no_run
    /// # async fn demo(server: diffusion_test_server::TestServer) {
    /// # use std::time::Duration;
    /// assert!(server.wait_for(|s| s.stats().close_requests == 1, Duration::from_secs(5)).await);
    /// # }
    /// ```
    pub async fn wait_for(&self, pred: impl Fn(&TestServer) -> bool, timeout: Duration) -> bool {
        let mut changed = self.shared.changed.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            changed.borrow_and_update();
            if pred(self) {
                return true;
            }
            match tokio::time::timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => {}
                _ => return pred(self),
            }
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Forgets every session, as a restarted server would: attached connections are dropped
    /// without ABORT, and reconnections get 117 (UNKNOWN_SESSION). Takes effect before any
    /// connection request that arrives after this call.
    pub fn forget_sessions(&self) {
        let _ = self.control.send(Control::ForgetSessions);
    }

    /// Ends every attached session from the server side: ABORT, then the TCP close. Clients
    /// end "closed by server" and do not reconnect.
    pub fn abort_sessions(&self) {
        let _ = self.control.send(Control::AbortSessions);
    }

    /// Drops every connection that carries a session, without ABORT, keeping the sessions
    /// for a reconnection (a network failure, seen from the server).
    pub fn drop_connections(&self) {
        let _ = self.control.send(Control::DropConnections);
    }

    /// The sessions the protocol server knows, attached or detached, in id order. Up to
    /// date with everything sent: once a client has seen an answer, its effects are here.
    pub fn sessions(&self) -> Vec<SessionInfo> {
        lock(&self.shared.server).sessions().cloned().collect()
    }

    /// The topics the protocol server holds, in path order, with their values and
    /// subscriber counts. Up to date with everything sent, like [`TestServer::sessions`].
    pub fn topics(&self) -> Vec<TopicInfo> {
        lock(&self.shared.server).topics().collect()
    }

    /// One session, attached or detached (principal, properties, version, counters, …).
    pub fn session(&self, id: SessionId) -> Option<SessionInfo> {
        lock(&self.shared.server).session(id).cloned()
    }

    /// Replaces the fault. Message counts for `DropAfter` and `Stall` start again from
    /// this call on every open connection (so "after 0 messages" acts on them at once),
    /// and so does the `DropAfter` count of dropped connections. Takes effect before any
    /// frame or connection request that arrives after this call.
    pub fn set_fault(&self, fault: Fault) {
        let _ = self.control.send(Control::SetFault(fault));
    }

    /// Sets or clears the code every reconnection request is answered with, from the next
    /// connection request on.
    pub fn set_reconnect_answer(&self, code: Option<ResponseCode>) {
        let _ = self.control.send(Control::SetReconnectAnswer(code));
    }

    /// Sends a request to `service` of every attached session (a server-to-client
    /// service call); each client's answer is logged as a
    /// [`ServerEventKind::ResponseReceived`] entry.
    pub fn send_request(&self, service: ServiceId, payload: Bytes) {
        let _ = self.control.send(Control::SendRequest(service, payload));
    }

    /// Stops accepting, drops every connection (without WebSocket close frames) and waits
    /// for the server's tasks to end.
    pub async fn shutdown(mut self) {
        self.acceptor.abort();
        let _ = (&mut self.acceptor).await;
        // Closing the control channel ends the hub, which drops what it holds.
        let (closed, _) = mpsc::unbounded_channel();
        drop(std::mem::replace(&mut self.control, closed));
        let _ = (&mut self.hub).await;
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.acceptor.abort();
        self.hub.abort();
    }
}

/// Accepts TCP connections and runs each in its own task. The tasks live in a `JoinSet`
/// owned here, so aborting this task closes every connection.
async fn accept_loop(listener: TcpListener, setup: ConnSetup, hub: mpsc::Sender<Input>, shared: Arc<Shared>) {
    let mut tasks = JoinSet::new();
    let mut next: u64 = 1;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _peer)) => {
                    shared.count(|s| s.connections += 1);
                    tasks.spawn(conn::run(next, tcp, setup.clone(), hub.clone()));
                    next += 1;
                }
                Err(e) => {
                    shared.record(None, LogKind::Error { message: format!("accept: {e}") });
                    // Out of file descriptors and the like: give it a moment, do not spin.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
}
