//! `Session`, the handle applications hold, and `SessionBuilder`: a cheap, cloneable,
//! `Send + Sync` front to the driver task, mirroring the official clients' Session.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use diffusion_proto::{
    ClientConfig, ClientSession, CloseReason, Credentials, PingDetails, ProtocolVersion, ReconnectConfig,
    ResponseCode, ServiceId, SessionId, SessionProperties, SessionState, StateChange,
};
use futures_util::Stream;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::data::SessionData;
use crate::driver::{Command, Driver};
use crate::error::Error;
use crate::runtime::{Runtime, Tls};

/// A handler for the server's requests to one service: payload in, response payload or
/// an error description out.
pub type Handler =
    Arc<dyn Fn(Bytes) -> Pin<Box<dyn Future<Output = Result<Bytes, String>> + Send>> + Send + Sync>;

/// The state-change channel, locked together with the snapshot update by the driver.
/// Created by the first subscriber: its 64 slots are most of an idle session's memory
/// otherwise, and most sessions never subscribe.
pub(crate) type Changes = Arc<Mutex<Option<broadcast::Sender<StateChange>>>>;

/// How many state changes a slow subscriber may fall behind before it skips the oldest.
const CHANGES_CAPACITY: usize = 64;

/// What the handles can read without asking the driver.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub(crate) state: SessionState,
    pub(crate) session_id: Option<SessionId>,
    pub(crate) response_code: Option<ResponseCode>,
    pub(crate) close_reason: Option<CloseReason>,
    pub(crate) ping_period: Option<Duration>,
    pub(crate) max_message_size: Option<u32>,
    pub(crate) system_pings_answered: u64,
}

/// Builds a [`Session`]: URL, principal, credentials, properties and options.
///
/// ```no_run
/// # async fn demo<R: diffusion_client::Runtime>() -> Result<(), diffusion_client::Error> {
/// // With an adapter this is `diffusion_tokio::Session::builder(…)`.
/// let session = diffusion_client::Session::<R>::builder("ws://127.0.0.1:8080")
///     .principal("admin")
///     .password("secret")
///     .property("region", "eu")?
///     .connect()
///     .await?;
/// let ping = session.ping_server().await?;
/// println!("{} answered in {:?}", session.session_id().unwrap(), ping.round_trip);
/// session.close().await;
/// # Ok(()) }
/// ```
pub struct SessionBuilder<R> {
    config: Result<ClientConfig, Error>,
    tls: Option<Tls>,
    runtime: PhantomData<fn() -> R>,
}

impl<R> std::fmt::Debug for SessionBuilder<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionBuilder")
            .field("config", &self.config)
            .field("tls", &self.tls)
            .finish()
    }
}

impl<R: Runtime> SessionBuilder<R> {
    fn edit(mut self, f: impl FnOnce(&mut ClientConfig)) -> Self {
        if let Ok(config) = &mut self.config {
            f(config);
        }
        self
    }

    /// The principal to authenticate as (anonymous when not set).
    pub fn principal(self, principal: impl Into<String>) -> Self {
        let principal = principal.into();
        self.edit(|c| c.principal = Some(principal))
    }

    /// A plain password.
    pub fn password(self, password: impl Into<String>) -> Self {
        self.credentials(Credentials::password(password))
    }

    /// Any credentials.
    pub fn credentials(self, credentials: Credentials) -> Self {
        self.edit(|c| c.credentials = credentials)
    }

    /// Proposes a session property; the key is validated.
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Result<Self, Error> {
        if let Ok(config) = &mut self.config {
            config.properties.insert(key, value)?;
        }
        Ok(self)
    }

    /// Proposes session properties (added to any already given).
    pub fn properties(self, properties: SessionProperties) -> Self {
        self.edit(|c| {
            for (k, v) in properties.iter() {
                c.properties.set(k.to_owned(), v.to_owned());
            }
        })
    }

    /// Reconnection settings (on by default: 60 s, first attempt at once, then backing off).
    pub fn reconnect(self, reconnect: ReconnectConfig) -> Self {
        self.edit(|c| c.reconnect = Some(reconnect))
    }

    /// Turns reconnection off: a lost connection closes the session.
    pub fn no_reconnect(self) -> Self {
        self.edit(|c| c.reconnect = None)
    }

    /// Tries the first connection `attempts` times, `delay` apart (once by default).
    pub fn initial_connect_retry(self, attempts: u32, delay: Duration) -> Self {
        self.edit(|c| {
            c.initial_connect_attempts = attempts.max(1);
            c.initial_retry_delay = delay;
        })
    }

    /// How long a connection attempt may take (10 s by default).
    pub fn connection_timeout(self, timeout: Duration) -> Self {
        self.edit(|c| c.connection_timeout = timeout)
    }

    /// A deadline for every request, pings included (none by default).
    pub fn request_timeout(self, timeout: Duration) -> Self {
        self.edit(|c| c.request_timeout = Some(timeout))
    }

    /// The largest message accepted from the server (64 MiB by default).
    pub fn max_message_size(self, bytes: usize) -> Self {
        self.edit(|c| c.max_inbound_message_size = bytes)
    }

    /// Protocol 25 (default, parameters as headers) or 29 (parameters in the query).
    pub fn protocol_version(self, version: ProtocolVersion) -> Self {
        self.edit(|c| *c = c.clone().with_version(version))
    }

    /// The `ty` client type code (by default that of the official client of the version).
    pub fn client_type(self, client_type: impl Into<String>) -> Self {
        let client_type = client_type.into();
        self.edit(|c| c.client_type = client_type)
    }

    /// Any other option of the core's configuration.
    pub fn configure(self, f: impl FnOnce(&mut ClientConfig)) -> Self {
        self.edit(f)
    }

    /// Uses this rustls configuration for `wss://` instead of the default (ring provider,
    /// webpki roots).
    #[cfg(feature = "rustls")]
    pub fn tls_config(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(Tls::Rustls(config));
        self
    }

    /// The session, not yet connected.
    pub fn build(self) -> Result<Session<R>, Error> {
        let config = self.config?;
        let tls = match self.tls {
            Some(tls) => tls,
            #[cfg(feature = "rustls")]
            None if config.url.secure => Tls::Rustls(crate::runtime::default_tls().map_err(Error::Tls)?),
            None => Tls::Unavailable,
        };
        let (commands, receiver) = mpsc::unbounded_channel();
        let (snapshot, snapshot_rx) = watch::channel(Snapshot {
            state: SessionState::Connecting,
            session_id: None,
            response_code: None,
            close_reason: None,
            ping_period: None,
            max_message_size: None,
            system_pings_answered: 0,
        });
        let changes = Arc::new(Mutex::new(None));
        Ok(Session {
            shared: Arc::new(Shared {
                commands,
                start: Mutex::new(Some(Start {
                    config,
                    tls,
                    receiver,
                    snapshot,
                })),
                snapshot: snapshot_rx,
                changes,
                data: SessionData::default(),
            }),
            runtime: PhantomData,
        })
    }

    /// Builds and connects.
    pub async fn connect(self) -> Result<Session<R>, Error> {
        let session = self.build()?;
        session.connect().await?;
        Ok(session)
    }
}

/// What `connect` needs once.
struct Start {
    config: ClientConfig,
    tls: Tls,
    receiver: mpsc::UnboundedReceiver<Command>,
    snapshot: watch::Sender<Snapshot>,
}

struct Shared {
    commands: mpsc::UnboundedSender<Command>,
    start: Mutex<Option<Start>>,
    snapshot: watch::Receiver<Snapshot>,
    changes: Changes,
    data: SessionData,
}

/// A Diffusion session on runtime `R`. Cheap to clone (clones share the session),
/// `Send + Sync`; dropping the last clone closes the session.
pub struct Session<R> {
    shared: Arc<Shared>,
    runtime: PhantomData<fn() -> R>,
}

impl<R> Clone for Session<R> {
    fn clone(&self) -> Self {
        Session {
            shared: self.shared.clone(),
            runtime: PhantomData,
        }
    }
}

impl<R> std::fmt::Debug for Session<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.shared.snapshot.borrow();
        f.debug_struct("Session")
            .field("state", &s.state)
            .field("session_id", &s.session_id)
            .finish()
    }
}

impl<R: Runtime> Session<R> {
    /// Starts building a session for the server at `url` (`ws://` or `wss://`; the
    /// `/diffusion` endpoint is resolved as the Python client does).
    pub fn builder(url: &str) -> SessionBuilder<R> {
        SessionBuilder {
            config: ClientConfig::new(url).map_err(Error::from),
            tls: None,
            runtime: PhantomData,
        }
    }

    /// Opens the session; returns once it is CONNECTED_ACTIVE, or with the reason it closed.
    pub async fn connect(&self) -> Result<(), Error> {
        self.connect_with(SessionProperties::new()).await
    }

    /// Opens the session, proposing `properties` on top of the builder's.
    pub async fn connect_with(&self, properties: SessionProperties) -> Result<(), Error> {
        let start = self.shared.start.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(Start {
            mut config,
            tls,
            receiver,
            snapshot,
        }) = start
        else {
            return Err(Error::AlreadyConnected);
        };
        for (k, v) in properties.iter() {
            config.properties.set(k.to_owned(), v.to_owned());
        }
        let core = ClientSession::new(config, Instant::now());
        // Boxed: taken by value, the driver had room in the task's future both as the
        // argument of `run` and as its local (3.5 KiB a session, against 2.3 KiB boxed).
        let driver = Box::new(Driver::<R>::new(
            core,
            tls,
            receiver,
            snapshot,
            self.shared.changes.clone(),
        ));
        R::spawn(driver.run());
        let mut watch = self.shared.snapshot.clone();
        let snapshot = watch
            .wait_for(|s| s.state != SessionState::Connecting)
            .await
            .map(|s| s.clone())
            .unwrap_or_else(|_| self.shared.snapshot.borrow().clone());
        match snapshot.state {
            SessionState::ConnectedActive | SessionState::RecoveringReconnect => Ok(()),
            _ => Err(Error::from_close(
                snapshot.close_reason.unwrap_or(CloseReason::ClosedByClient),
            )),
        }
    }

    /// Closes the session and waits until it is closed (at most about the close timeout).
    /// Closing a closed session does nothing.
    pub async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.shared.commands.send(Command::Close { done }).is_ok() {
            // The driver drops `done` if it ends first; either way the session is closed.
            let _ = closed.await;
        }
    }

    /// Pings the server and returns the round trip.
    pub async fn ping_server(&self) -> Result<PingDetails, Error> {
        let reply = self
            .services()
            .invoke_raw(ServiceId::USER_PING, Bytes::new())
            .await?;
        Ok(PingDetails::from(&reply))
    }

    /// The session id, once connected.
    pub fn session_id(&self) -> Option<SessionId> {
        self.shared.snapshot.borrow().session_id
    }

    /// The current state.
    pub fn state(&self) -> SessionState {
        self.shared.snapshot.borrow().state
    }

    /// Why the session closed, once it has.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.shared.snapshot.borrow().close_reason.clone()
    }

    /// The code of the latest connection response: 100, or 105/106 after a reconnection.
    pub fn response_code(&self) -> Option<ResponseCode> {
        self.shared.snapshot.borrow().response_code
    }

    /// The server's system ping period, once connected.
    pub fn ping_period(&self) -> Option<Duration> {
        self.shared.snapshot.borrow().ping_period
    }

    /// The largest message the server accepts, once connected.
    pub fn max_message_size(&self) -> Option<u32> {
        self.shared.snapshot.borrow().max_message_size
    }

    /// How many of the server's system pings this session has answered.
    pub fn system_pings_answered(&self) -> u64 {
        self.shared.snapshot.borrow().system_pings_answered
    }

    /// The per-session typed store.
    pub fn data(&self) -> &SessionData {
        &self.shared.data
    }

    /// Service calls and handlers.
    pub fn services(&self) -> Services<'_, R> {
        Services { session: self }
    }

    /// Every state change from now on, as a stream that ends with the change to a closed
    /// state (at once, for a session already closed). A slow reader that falls more than
    /// 64 changes behind skips the oldest.
    pub fn state_changes(&self) -> impl Stream<Item = StateChange> + Send + 'static {
        // Under the lock the driver publishes with: a change is either in this receiver or
        // already visible through `state()`, never lost in between.
        let receiver = {
            let mut changes = self.shared.changes.lock().unwrap_or_else(|e| e.into_inner());
            if self.state().is_closed() {
                None
            } else {
                Some(
                    changes
                        .get_or_insert_with(|| broadcast::channel(CHANGES_CAPACITY).0)
                        .subscribe(),
                )
            }
        };
        futures_util::stream::unfold(receiver, |receiver| async move {
            let mut receiver = receiver?;
            loop {
                match receiver.recv().await {
                    Ok(change) => return Some((change, Some(receiver))),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
    }

    /// Calls `listener` on every state change from now on, from a task of its own.
    pub fn on_state_change(&self, listener: impl Fn(&StateChange) + Send + 'static) {
        let mut changes = Box::pin(self.state_changes());
        R::spawn(async move {
            while let Some(change) = futures_util::StreamExt::next(&mut changes).await {
                listener(&change);
            }
        });
    }

    fn send(&self, command: Command) -> Result<(), Error> {
        self.shared
            .commands
            .send(command)
            .map_err(|_| self.closed_error())
    }

    fn closed_error(&self) -> Error {
        let snapshot = self.shared.snapshot.borrow();
        match &snapshot.close_reason {
            Some(reason) => Error::Closed(reason.clone()),
            None if snapshot.state == SessionState::Connecting => {
                Error::Refused(diffusion_proto::SessionError::NotConnected)
            }
            None => Error::Closed(CloseReason::ClosedByClient),
        }
    }
}

/// Service calls and handlers of one session (the official clients' `services`).
#[derive(Debug)]
pub struct Services<'a, R> {
    session: &'a Session<R>,
}

impl<R: Runtime> Services<'_, R> {
    /// Sends a request to the server's `service` and returns the response payload.
    pub async fn invoke(&self, service: ServiceId, payload: Bytes) -> Result<Bytes, Error> {
        Ok(self.invoke_raw(service, payload).await?.payload)
    }

    /// Like [`Services::invoke`], with the round trip and send time.
    pub async fn invoke_raw(
        &self,
        service: ServiceId,
        payload: Bytes,
    ) -> Result<diffusion_proto::Reply, Error> {
        let (reply, response) = oneshot::channel();
        self.session.send(Command::Invoke {
            service,
            payload,
            reply,
        })?;
        response
            .await
            .unwrap_or_else(|_| Err(self.session.closed_error()))
    }

    /// Answers the server's requests to `service` with `handler`; an `Err` becomes a
    /// SERVICE_ERROR with reason 105 (CALLBACK_EXCEPTION). Requests to services without a
    /// handler are answered with SERVICE_ERROR 100.
    pub fn register<F, Fut>(&self, service: ServiceId, handler: F) -> Result<(), Error>
    where
        F: Fn(Bytes) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Bytes, String>> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |payload| Box::pin(handler(payload)));
        self.session.send(Command::Register { service, handler })
    }

    /// Removes the handler of `service`.
    pub fn deregister(&self, service: ServiceId) -> Result<(), Error> {
        self.session.send(Command::Deregister { service })
    }
}
