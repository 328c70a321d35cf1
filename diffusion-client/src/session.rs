//! `Session`, the handle applications hold, and `SessionBuilder`: a cheap, cloneable,
//! `Send + Sync` front to the driver task, mirroring the official clients' Session.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use diffusion_proto::{
    ClientConfig, ClientSession, CloseReason, Credentials, PingDetails, ProtocolVersion, ReconnectConfig,
    ResponseCode, ServiceId, SessionId, SessionProperties, SessionState, SessionStatus, StateChange,
};
use tokio::sync::{mpsc, oneshot, watch};

use crate::changes::StateChanges;
use crate::data::SessionData;
use crate::driver::Driver;
use crate::error::Error;
use crate::proxy::{self, Proxy};
use crate::runtime::{Runtime, Tls};
use crate::shared::{Changes, Command, Handler, Published};

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
    /// The HTTP proxy, if any, or what is wrong with its URL.
    proxy: Result<Option<Proxy>, Error>,
    runtime: PhantomData<fn() -> R>,
}

impl<R> std::fmt::Debug for SessionBuilder<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionBuilder")
            .field("config", &self.config)
            .field("tls", &self.tls)
            .field("proxy", &self.proxy)
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
    /// webpki roots). A `wss://` URL still needs a runtime adapter built with TLS.
    #[cfg(feature = "rustls")]
    pub fn tls_config(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(Tls::Rustls(config));
        self
    }

    /// Connects through the HTTP proxy at `url`, `http://[user:password@]host[:port]`
    /// (port 80 by default), with a `CONNECT` tunnel to the server (`wss://` runs TLS to the
    /// server inside it). A user name and password are sent as `Proxy-Authorization: Basic`
    /// (percent-decoded), and never shown in a `Debug`, error or log line. A URL that
    /// cannot be used fails [`SessionBuilder::build`] with [`Error::ProxyUrl`]; a proxy
    /// that cannot be reached or refuses ends the connection attempt with a
    /// [`crate::TransportError`] for which [`Error::is_proxy`] holds.
    ///
    /// Replaces any earlier proxy choice; without one, connections are direct.
    pub fn proxy(mut self, url: &str) -> Self {
        self.proxy = Proxy::parse(url).map(Some).map_err(|source| Error::ProxyUrl {
            variable: None,
            source,
        });
        self
    }

    /// Connects through the proxy the environment names for this session's URL, as curl
    /// reads it: `https_proxy` or `HTTPS_PROXY` for `wss://`, `http_proxy` or `HTTP_PROXY`
    /// for `ws://` (lower case first; `HTTP_PROXY` is not read when `REQUEST_METHOD` is set,
    /// as under CGI it can be a request's header), directly when `no_proxy` or `NO_PROXY`
    /// names the host (`*`, host names with their subdomains, IP addresses, CIDR ranges;
    /// ports are not considered). The variables are read now; a URL in them that cannot be
    /// used fails [`SessionBuilder::build`] with [`Error::ProxyUrl`] naming the variable.
    /// See [`SessionBuilder::proxy`] for the rest.
    pub fn proxy_from_env(self) -> Self {
        self.proxy_from_vars(|name| std::env::var(name).ok())
    }

    /// Like [`SessionBuilder::proxy_from_env`], with the variables looked up by `var`
    /// instead of in the process environment (a configuration file, or a test).
    pub fn proxy_from_vars(mut self, var: impl Fn(&str) -> Option<String>) -> Self {
        if let Ok(config) = &self.config {
            self.proxy = proxy::from_vars(&config.url, var);
        }
        self
    }

    /// The session, not yet connected. Fails on a URL that cannot be used, a refused
    /// property, a proxy URL that cannot be used, or a `wss://` URL on an adapter built
    /// without TLS (the error names the feature to enable).
    pub fn build(self) -> Result<Session<R>, Error> {
        let config = self.config?;
        let proxy = self.proxy?.map(Arc::new);
        let tls = if config.url.secure {
            if !(cfg!(feature = "rustls") && R::TLS) {
                return Err(Error::TlsUnavailable {
                    feature: R::TLS_FEATURE,
                });
            }
            match self.tls {
                Some(tls) => tls,
                #[cfg(feature = "rustls")]
                None => Tls::Rustls(
                    crate::runtime::default_tls()
                        .map_err(|e| Error::TlsConfig(crate::error::ConfigError(Arc::new(e))))?,
                ),
                #[cfg(not(feature = "rustls"))]
                None => Tls::Unavailable,
            }
        } else {
            Tls::Unavailable
        };
        let (commands, receiver) = mpsc::unbounded_channel();
        let (status, status_rx) = watch::channel(Published {
            status: SessionStatus::default(),
            settled: true,
        });
        Ok(Session {
            shared: Arc::new(Shared {
                commands,
                start: Mutex::new(Some(Start {
                    config,
                    tls,
                    proxy,
                    receiver,
                    status,
                })),
                status: status_rx,
                changes: Arc::new(Changes::default()),
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
    proxy: Option<Arc<Proxy>>,
    receiver: mpsc::UnboundedReceiver<Command>,
    status: watch::Sender<Published>,
}

struct Shared {
    commands: mpsc::UnboundedSender<Command>,
    start: Mutex<Option<Start>>,
    /// What the driver last published of the core's status.
    status: watch::Receiver<Published>,
    changes: Arc<Changes>,
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
        let s = self.shared.status.borrow();
        let s = &s.status;
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
            proxy: Ok(None),
            runtime: PhantomData,
        }
    }

    /// Opens the session; returns once it is CONNECTED_ACTIVE, or with the reason it closed.
    ///
    /// The change to CONNECTED_ACTIVE has reached every [`Session::state_changes`] stream and
    /// [`Session::on_state_change`] listener by the time this returns.
    ///
    /// Cancelling it (dropping the future) does not stop the session: its driver task goes
    /// on connecting, and on reconnecting after that, in the background. [`Session::state`]
    /// and the state-change streams tell how it went; [`Session::close`], or dropping the
    /// last handle, stops it. Calling `connect` again fails with [`Error::AlreadyConnected`].
    pub async fn connect(&self) -> Result<(), Error> {
        self.connect_with(SessionProperties::new()).await
    }

    /// Opens the session, proposing `properties` on top of the builder's (see
    /// [`Session::connect`]).
    pub async fn connect_with(&self, properties: SessionProperties) -> Result<(), Error> {
        let start = self.shared.start.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(Start {
            mut config,
            tls,
            proxy,
            receiver,
            status,
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
            proxy,
            receiver,
            status,
            self.shared.changes.clone(),
        ));
        R::spawn(driver.run());
        let mut watch = self.shared.status.clone();
        let status = watch
            .wait_for(|p| p.settled && p.status.state != SessionState::Connecting)
            .await
            .map(|p| p.status.clone())
            .unwrap_or_else(|_| self.status());
        match status.state {
            SessionState::ConnectedActive | SessionState::RecoveringReconnect => Ok(()),
            _ => Err(Error::from_close(
                status.close_reason.unwrap_or(CloseReason::ClosedByClient),
            )),
        }
    }

    /// Closes the session and waits until it is closed (at most about the close timeout).
    /// The change to the closed state has reached every stream and listener by then.
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
        self.status().session_id
    }

    /// The current state.
    pub fn state(&self) -> SessionState {
        self.status().state
    }

    /// Why the session closed, once it has.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.status().close_reason.clone()
    }

    /// The code of the latest connection response: 100, or 105/106 after a reconnection.
    pub fn response_code(&self) -> Option<ResponseCode> {
        self.status().response_code
    }

    /// The server's system ping period, once connected.
    pub fn ping_period(&self) -> Option<Duration> {
        self.status().ping_period
    }

    /// The largest message the server accepts, once connected.
    pub fn max_message_size(&self) -> Option<u32> {
        self.status().max_message_size
    }

    /// How many of the server's system pings this session has answered.
    pub fn system_pings_answered(&self) -> u64 {
        self.status().system_pings_answered
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
    /// state (at once, for a session already closed). A reader that falls more than 64
    /// changes behind gets [`crate::Lagged`] with how many it missed, then the oldest still held.
    pub fn state_changes(&self) -> StateChanges {
        StateChanges::new(self.shared.changes.subscribe())
    }

    /// Calls `listener` on every state change from now on, in order, on the session's
    /// driver task: it has been called with CONNECTED_ACTIVE before `connect()` returns,
    /// and with the closed state before `close()` returns. It must return quickly (it holds
    /// up the session) and may not block; to do more, send the change to a task of yours.
    pub fn on_state_change(&self, listener: impl Fn(&StateChange) + Send + 'static) {
        self.shared.changes.listen(Box::new(listener));
    }

    fn status(&self) -> SessionStatus {
        self.shared.status.borrow().status.clone()
    }

    fn send(&self, command: Command) -> Result<(), Error> {
        self.shared
            .commands
            .send(command)
            .map_err(|_| self.closed_error())
    }

    fn closed_error(&self) -> Error {
        let snapshot = self.status();
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

#[cfg(test)]
mod tests {
    use std::io;
    use std::net::SocketAddr;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use futures_util::{Sink, Stream};
    use tungstenite::handshake::client::Request;
    use tungstenite::protocol::WebSocketConfig;

    use super::*;
    use diffusion_proto::UrlError;

    /// A runtime adapter built without TLS, that never gets as far as a socket.
    struct NoTls;

    struct NoSocket;

    impl Stream for NoSocket {
        type Item = Result<tungstenite::Message, tungstenite::Error>;
        fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            Poll::Ready(None)
        }
    }

    impl Sink<tungstenite::Message> for NoSocket {
        type Error = tungstenite::Error;
        fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
        fn start_send(self: Pin<&mut Self>, _: tungstenite::Message) -> Result<(), Self::Error> {
            Ok(())
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
    }

    impl Runtime for NoTls {
        type WebSocket = NoSocket;
        type Sleep = std::future::Pending<()>;
        type Stream = ();
        const TLS_FEATURE: &'static str = "no-tls/rustls";

        fn spawn(_: impl Future<Output = ()> + Send + 'static) {}

        fn sleep_until(_: Instant) -> Self::Sleep {
            std::future::pending()
        }

        async fn resolve(_: String, _: u16) -> io::Result<Vec<SocketAddr>> {
            Err(io::ErrorKind::Unsupported.into())
        }

        async fn connect_tcp(_: Vec<SocketAddr>) -> io::Result<()> {
            Err(io::ErrorKind::Unsupported.into())
        }

        async fn write_all(_: &mut (), _: &[u8]) -> io::Result<()> {
            Err(io::ErrorKind::Unsupported.into())
        }

        async fn read(_: &mut (), _: &mut [u8]) -> io::Result<usize> {
            Err(io::ErrorKind::Unsupported.into())
        }

        async fn upgrade(_: Request, _: (), _: WebSocketConfig) -> Result<NoSocket, tungstenite::Error> {
            Ok(NoSocket)
        }
    }

    #[test]
    fn build_refuses_wss_without_tls_and_bad_urls() {
        let err = Session::<NoTls>::builder("wss://h").build().unwrap_err();
        assert_eq!(
            err,
            Error::TlsUnavailable {
                feature: "no-tls/rustls"
            }
        );
        assert!(err.is_tls() && err.to_string().contains("no-tls/rustls"), "{err}");
        assert!(Session::<NoTls>::builder("ws://h").build().is_ok());
        for (url, check) in [
            (
                "ws://h:99999",
                (|e: &UrlError| matches!(e, UrlError::InvalidPort { .. })) as fn(&UrlError) -> bool,
            ),
            ("ws://[::1", |e| matches!(e, UrlError::Invalid { .. })),
            ("ws://h h", |e| *e == UrlError::Whitespace),
            ("http://x", |e| matches!(e, UrlError::UnsupportedScheme { .. })),
        ] {
            match Session::<NoTls>::builder(url).build() {
                Err(Error::Url(e)) => assert!(check(&e), "{url}: {e:?}"),
                other => panic!("{url}: {other:?}"),
            }
        }
    }

    #[test]
    fn build_refuses_a_bad_proxy_url_and_never_shows_its_password() {
        let err = Session::<NoTls>::builder("ws://h")
            .proxy("http://user:hunter2@p:99999")
            .build()
            .unwrap_err();
        assert!(
            matches!(
                &err,
                Error::ProxyUrl {
                    variable: None,
                    source: crate::ProxyUrlError::InvalidPort
                }
            ),
            "{err:?}"
        );
        assert!(err.is_proxy() && !format!("{err} {err:?}").contains("hunter2"));
        let builder = Session::<NoTls>::builder("ws://h").proxy("http://user:hunter2@p:3128");
        let shown = format!("{builder:?}");
        assert!(shown.contains("p:3128") && !shown.contains("hunter2"), "{shown}");
        assert!(builder.build().is_ok());
        // The last choice wins.
        let direct = Session::<NoTls>::builder("ws://h")
            .proxy("socks5://p")
            .proxy_from_vars(|_| None);
        assert!(direct.build().is_ok());
    }
}
