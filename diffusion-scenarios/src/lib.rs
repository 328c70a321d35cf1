//! The Session API's integration scenarios, written once and generic over the runtime:
//! each adapter's tests run them all with [`scenarios!`] against the loopback test server.
//!
//! The test server runs on a tokio runtime of its own thread, so the scenarios work the
//! same under tokio, async-std and smol, over real sockets on 127.0.0.1.

// Scenario code is test code: an unwrap is an assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use diffusion_client::{
    Error, ErrorReason, ResponseCode, Runtime, ServiceId, Session, SessionError, SessionProperties,
    SessionState, TransportError,
};
use diffusion_proto::Message;
use diffusion_test_server::{
    DropKind, Fault, LogKind, Options, ProxyOptions, ServerEvent, ServerEventKind, ServerThread,
};
use futures_util::StreamExt;

/// How long any one wait of a scenario may take before it fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// A test server with `options` on its own thread and tokio runtime, usable from any
/// runtime.
pub fn start_server(options: Options) -> ServerThread {
    ServerThread::start(options).expect("the test server starts")
}

/// `future`, or `None` after `limit`.
pub async fn within<R: Runtime, T>(limit: Duration, future: impl Future<Output = T>) -> Option<T> {
    let deadline = Box::pin(R::sleep_until(Instant::now() + limit));
    match futures_util::future::select(Box::pin(future), deadline).await {
        futures_util::future::Either::Left((value, _)) => Some(value),
        futures_util::future::Either::Right(_) => None,
    }
}

/// Waits until `condition` holds, checking every few milliseconds, for at most [`WAIT`].
pub async fn eventually<R: Runtime>(condition: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        if Instant::now() > deadline {
            return false;
        }
        R::sleep_until(Instant::now() + Duration::from_millis(5)).await;
    }
    true
}

/// Connect, ping 100 times, close.
pub async fn connect_ping_100_times_and_close<R: Runtime>() {
    let server = start_server(Options::default());
    let session = Session::<R>::builder(&server.url()).connect().await.unwrap();
    assert_eq!(session.state(), SessionState::ConnectedActive);
    assert_eq!(session.response_code(), Some(ResponseCode::Ok));
    assert!(session.session_id().is_some());
    // The typed store is shared by every clone of the handle.
    session.data().insert(7u32);
    assert_eq!(session.clone().data().get::<u32>(), Some(7));
    for _ in 0..100 {
        let ping = session.ping_server().await.unwrap();
        assert!(ping.round_trip > Duration::ZERO);
    }
    session.close().await;
    assert_eq!(session.state(), SessionState::ClosedByClient);
    assert_eq!(server.stats().user_pings_answered, 100);
}

/// A wrong password is a typed authentication error carrying 116.
pub async fn wrong_password_is_a_typed_authentication_error_with_116<R: Runtime>() {
    let server = start_server(Options::default().user("admin", "secret"));
    let err = Session::<R>::builder(&server.url())
        .principal("admin")
        .password("wrong")
        .connect()
        .await
        .unwrap_err();
    assert_eq!(err, Error::AuthenticationFailed);
    assert_eq!(err.response_code(), Some(ResponseCode::AuthenticationFailed));
    assert_eq!(err.response_code().map(|c| c.code()), Some(116));
}

/// Principal and session properties arrive at the server as sent.
pub async fn session_properties_arrive_as_sent<R: Runtime>() {
    let server = start_server(Options::default().user("admin", "secret"));
    let session = Session::<R>::builder(&server.url())
        .principal("admin")
        .password("secret")
        .property("region", "eu")
        .unwrap()
        .property("tier", "gold \"q\" \\ 'x'")
        .unwrap()
        .build()
        .unwrap();
    // More properties at connect time, as the Python client's connect(properties) allows.
    let mut extra = SessionProperties::new();
    extra.insert("$Country", "GB").unwrap();
    session.connect_with(extra).await.unwrap();
    let info = server
        .session(session.session_id().unwrap())
        .expect("the server knows the session");
    assert_eq!(info.principal.as_deref(), Some("admin"));
    assert_eq!(info.properties.get("region"), Some("eu"));
    assert_eq!(info.properties.get("$Country"), Some("GB"));
    assert_eq!(info.properties.get("tier"), Some("gold \"q\" \\ 'x'"));
    session.close().await;
}

/// The server's system pings are answered (the server counts them).
pub async fn system_pings_are_answered<R: Runtime>() {
    let server = start_server(Options {
        ping_period: Duration::from_millis(100),
        ..Options::default()
    });
    let session = Session::<R>::builder(&server.url()).connect().await.unwrap();
    assert!(eventually::<R>(|| server.stats().system_pings_answered >= 3).await);
    assert!(session.system_pings_answered() >= 3);
    session.close().await;
}

/// The server stalls: idle detection drops the connection, and the same session resumes.
pub async fn stalled_server_is_noticed_and_the_same_session_resumed<R: Runtime>() {
    let server = start_server(Options {
        ping_period: Duration::from_millis(200),
        ..Options::default()
    });
    let session = Session::<R>::builder(&server.url()).connect().await.unwrap();
    let id = session.session_id();
    let mut changes = session.state_changes();
    server.set_fault(Fault::Stall { after_messages: 0 });
    let lost = within::<R, _>(WAIT, changes.next())
        .await
        .flatten()
        .unwrap()
        .unwrap();
    assert_eq!(
        (lost.old, lost.new),
        (SessionState::ConnectedActive, SessionState::RecoveringReconnect)
    );
    server.set_fault(Fault::None);
    let back = within::<R, _>(WAIT, changes.next())
        .await
        .flatten()
        .unwrap()
        .unwrap();
    assert_eq!(back.new, SessionState::ConnectedActive);
    assert_eq!(session.session_id(), id);
    assert_eq!(session.response_code(), Some(ResponseCode::Reconnected));
    session.ping_server().await.unwrap();
    session.close().await;
}

/// The connection drops while a request is in flight: reconnected, and the request
/// completes exactly once.
pub async fn request_in_flight_when_the_connection_drops_completes_exactly_once<R: Runtime>() {
    for how in [DropKind::Fin, DropKind::Rst] {
        let server = start_server(Options::default());
        let session = Session::<R>::builder(&server.url()).connect().await.unwrap();
        let id = session.session_id();
        // The next client message (the ping) is the one the server drops the connection on.
        server.set_fault(Fault::DropAfter {
            messages: 1,
            how,
            times: 1,
        });
        let ping = within::<R, _>(WAIT, session.ping_server()).await.unwrap();
        assert!(ping.is_ok(), "{how:?}: {ping:?}");
        assert_eq!(session.session_id(), id);
        assert_eq!(session.state(), SessionState::ConnectedActive);
        let info = server.session(id.unwrap()).unwrap();
        assert_eq!(info.stats.reconnections, 1, "{how:?}");
        assert_eq!(
            info.stats.user_pings_answered, 1,
            "{how:?}: answered exactly once"
        );
        session.close().await;
    }
}

/// The server has forgotten the session: the reconnection gets 117 and the session ends
/// CLOSED_FAILED.
pub async fn forgotten_session_ends_closed_failed<R: Runtime>() {
    let server = start_server(Options::default());
    let session = Session::<R>::builder(&server.url()).connect().await.unwrap();
    let mut changes = session.state_changes();
    server.forget_sessions();
    let mut last = None;
    while let Some(Some(Ok(change))) = within::<R, _>(WAIT, changes.next()).await {
        let closed = change.new.is_closed();
        last = Some(change);
        if closed {
            break;
        }
    }
    let last = last.unwrap();
    assert_eq!(last.new, SessionState::ClosedFailed);
    assert_eq!(
        last.reason.and_then(|r| r.response_code()),
        Some(ResponseCode::UnknownSession)
    );
}

/// Close ends CLOSED_BY_CLIENT, is idempotent, and the server saw CLOSE_REQUEST.
pub async fn close_is_closed_by_client_and_the_server_saw_close_request<R: Runtime>() {
    let server = start_server(Options::default());
    let session = Session::<R>::builder(&server.url()).connect().await.unwrap();
    let mut changes = session.state_changes();
    session.close().await;
    assert_eq!(session.state(), SessionState::ClosedByClient);
    // The stream gives the last change, then ends; a closed session's stream is empty.
    let last = within::<R, _>(WAIT, changes.next())
        .await
        .flatten()
        .unwrap()
        .unwrap();
    assert_eq!(
        (last.old, last.new),
        (SessionState::ConnectedActive, SessionState::ClosedByClient)
    );
    assert!(within::<R, _>(WAIT, changes.next()).await.unwrap().is_none());
    let mut after_close = session.state_changes();
    assert!(within::<R, _>(WAIT, after_close.next()).await.unwrap().is_none());
    session.close().await;
    assert!(eventually::<R>(|| server.stats().close_requests == 1).await);
    assert!(matches!(session.ping_server().await, Err(Error::Closed(_))));
}

/// A state-change stream and a listener have the change to CONNECTED_ACTIVE when
/// `connect()` returns, and the change to the closed state when `close()` returns.
pub async fn state_changes_are_seen_before_connect_and_close_return<R: Runtime>() {
    let server = start_server(Options::default());
    let session = Session::<R>::builder(&server.url()).build().unwrap();
    let mut changes = session.state_changes();
    let heard = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = heard.clone();
    session.on_state_change(move |change| log.lock().unwrap().push((change.old, change.new)));
    session.connect().await.unwrap();
    let connected = (SessionState::Connecting, SessionState::ConnectedActive);
    let first = futures_util::FutureExt::now_or_never(changes.next());
    assert_eq!(
        first.flatten().map(|c| c.map(|c| (c.old, c.new))),
        Some(Ok(connected))
    );
    assert_eq!(*heard.lock().unwrap(), [connected]);
    session.close().await;
    let closed = (SessionState::ConnectedActive, SessionState::ClosedByClient);
    let last = futures_util::FutureExt::now_or_never(changes.next());
    assert_eq!(
        last.flatten().map(|c| c.map(|c| (c.old, c.new))),
        Some(Ok(closed))
    );
    assert_eq!(*heard.lock().unwrap(), [connected, closed]);
    // The stream ends after the closed state; a listener added now is never called.
    assert!(within::<R, _>(WAIT, changes.next()).await.unwrap().is_none());
    session.on_state_change(|change| panic!("called after the close with {change:?}"));
}

/// Dropping the last clone of the handle closes the session (the server sees CLOSE_REQUEST).
pub async fn dropping_the_last_handle_closes_the_session<R: Runtime>() {
    let server = start_server(Options::default());
    let session = Session::<R>::builder(&server.url()).connect().await.unwrap();
    let clone = session.clone();
    drop(session);
    clone.ping_server().await.unwrap();
    assert_eq!(
        server.stats().close_requests,
        0,
        "a clone still holds the session"
    );
    drop(clone);
    assert!(eventually::<R>(|| server.stats().close_requests == 1).await);
}

/// The server's requests reach the handler registered for their service; requests to a
/// service without a handler are answered with SERVICE_ERROR 100.
pub async fn inbound_requests_reach_registered_handlers<R: Runtime>() {
    let server = start_server(Options::default());
    let session = Session::<R>::builder(&server.url()).connect().await.unwrap();
    let echo = ServiceId(300);
    session
        .services()
        .register(echo, |payload: Bytes| async move {
            Ok(payload.iter().rev().copied().collect())
        })
        .unwrap();
    // A round trip first, so the registration has reached the driver.
    session.ping_server().await.unwrap();
    server.send_request(echo, Bytes::from_static(b"abc"));
    server.send_request(ServiceId(301), Bytes::new());
    let answers = || {
        server
            .log()
            .iter()
            .filter_map(|e| match &e.kind {
                LogKind::Server(ServerEvent {
                    kind:
                        ServerEventKind::ResponseReceived {
                            service, response, ..
                        },
                    ..
                }) => Some((*service, response.clone())),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert!(eventually::<R>(|| answers().len() == 2).await, "{:?}", answers());
    let answers = answers();
    assert!(answers.contains(&(
        echo,
        Message::ServiceResponse {
            cid: 1,
            payload: Bytes::from_static(b"cba")
        }
    )));
    assert!(answers.iter().any(|(service, response)| *service == ServiceId(301)
        && matches!(response, Message::ServiceError { reason, .. } if *reason == ErrorReason::COMMUNICATION_FAILURE)));
    session.close().await;
}

/// A message over the server's maximum is refused and nothing is sent.
pub async fn oversize_send_is_refused_and_nothing_is_sent<R: Runtime>() {
    let server = start_server(Options {
        max_message_size: 1000,
        ..Options::default()
    });
    let session = Session::<R>::builder(&server.url()).connect().await.unwrap();
    let before = server.stats().messages_received;
    let err = session
        .services()
        .invoke(ServiceId(99), Bytes::from(vec![0; 2000]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Refused(SessionError::MessageTooLarge { limit: 1000, .. })
        ),
        "{err:?}"
    );
    session.ping_server().await.unwrap();
    // Only the ping reached the server.
    assert_eq!(server.stats().messages_received, before + 1);
    session.close().await;
}

/// 1 000 pings at once on one session, from clones of the handle; every one completes.
pub async fn a_thousand_concurrent_pings_on_one_session<R: Runtime>() {
    let server = start_server(Options::default());
    let session = Session::<R>::builder(&server.url()).connect().await.unwrap();
    let pings = (0..1000).map(|_| {
        let session = session.clone();
        async move { session.ping_server().await }
    });
    let results = futures_util::future::join_all(pings).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1000);
    assert_eq!(server.stats().user_pings_answered, 1000);
    session.close().await;
}

/// A rustls configuration that trusts `cert` alone.
fn trusting(cert: rustls::pki_types::CertificateDer<'static>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(tls)
}

/// `wss://` with a self-signed certificate, trusted through the caller's rustls config.
pub async fn wss_with_a_self_signed_certificate<R: Runtime>() {
    let identity = diffusion_test_server::self_signed(&["localhost", "127.0.0.1"]);
    let cert = identity.certificate_der();
    let server = start_server(Options {
        tls: Some(identity),
        ..Options::default()
    });
    assert!(server.url().starts_with("wss://"));

    let session = Session::<R>::builder(&server.url())
        .tls_config(trusting(cert))
        .connect()
        .await
        .unwrap();
    session.ping_server().await.unwrap();
    session.close().await;
    assert_eq!(session.state(), SessionState::ClosedByClient);

    // The default roots (webpki's, or the platform's with `platform-verifier`) do not trust
    // it. The platform's cannot be had on a machine without a CA store: a TLS error too.
    match Session::<R>::builder(&server.url()).no_reconnect().build() {
        Ok(session) => {
            let err = session.connect().await.unwrap_err();
            assert!(matches!(err, Error::Closed(_)), "{err:?}");
            assert!(err.is_tls() && err.is_connect() && !err.is_timeout(), "{err:?}");
        }
        Err(err) => assert!(matches!(err, Error::TlsConfig(_)) && err.is_tls(), "{err:?}"),
    }
}

/// `wss://` through an HTTP CONNECT proxy named by `https_proxy`: the proxy resolves the
/// server's name, and TLS to the server runs inside the tunnel (its name checked).
pub async fn wss_through_a_connect_proxy<R: Runtime>() {
    let identity = diffusion_test_server::self_signed(&["localhost"]);
    let cert = identity.certificate_der();
    let server = start_server(Options {
        tls: Some(identity),
        ..Options::default()
    });
    let proxy = server.proxy(ProxyOptions::default()).unwrap();
    let url = format!("wss://localhost:{}", server.addr().port());
    let proxy_url = proxy.url();
    let session = Session::<R>::builder(&url)
        .tls_config(trusting(cert))
        .proxy_from_vars(|name| (name == "https_proxy").then(|| proxy_url.clone()))
        .connect()
        .await
        .unwrap();
    session.ping_server().await.unwrap();
    session.close().await;
    let requests = proxy.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(
        (requests[0].target.as_str(), requests[0].status),
        (url.trim_start_matches("wss://"), 200)
    );
    assert_eq!(server.stats().close_requests, 1);
}

/// Through an HTTP CONNECT proxy: connect, ping, a reconnection (through the proxy again)
/// and close; the proxy saw one tunnel to the server for each connection.
pub async fn through_a_connect_proxy_and_reconnected_through_it<R: Runtime>() {
    let server = start_server(Options::default());
    let proxy = server.proxy(ProxyOptions::default()).unwrap();
    let session = Session::<R>::builder(&server.url())
        .proxy(&proxy.url())
        .connect()
        .await
        .unwrap();
    session.ping_server().await.unwrap();
    let mut changes = session.state_changes();
    server.drop_connections();
    for expected in [SessionState::RecoveringReconnect, SessionState::ConnectedActive] {
        let change = within::<R, _>(WAIT, changes.next())
            .await
            .flatten()
            .unwrap()
            .unwrap();
        assert_eq!(change.new, expected);
    }
    session.ping_server().await.unwrap();
    session.close().await;
    let requests = proxy.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    for request in &requests {
        assert_eq!(
            (request.target.clone(), request.status),
            (server.addr().to_string(), 200)
        );
    }
    assert_eq!(server.stats().user_pings_answered, 2);
}

/// Proxy credentials in the URL (percent-encoded) are sent as Basic credentials; wrong
/// ones are refused with 407, a typed error that does not show them.
pub async fn proxy_credentials_are_sent_and_a_407_is_a_typed_error<R: Runtime>() {
    let server = start_server(Options::default());
    let proxy = server
        .proxy(ProxyOptions::default().credentials("proxy user", "p@ss:word"))
        .unwrap();
    let url = |user_info: &str| format!("http://{user_info}@{}", proxy.addr());
    let session = Session::<R>::builder(&server.url())
        .proxy(&url("proxy%20user:p%40ss%3Aword"))
        .connect()
        .await
        .unwrap();
    session.close().await;
    let err = refused_through::<R>(&server.url(), &url("proxy%20user:hunter2")).await;
    assert!(
        matches!(err.transport_error(), Some(TransportError::ProxyRefused { status: 407, target, .. }) if *target == server.addr().to_string()),
        "{err:?}"
    );
    assert!(err.is_proxy() && err.is_connect(), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("hunter2"), "{err:?}");
    let seen: Vec<_> = proxy.requests().into_iter().map(|r| (r.user, r.status)).collect();
    assert_eq!(
        seen,
        [
            (Some("proxy user".to_owned()), 200),
            (Some("proxy user".to_owned()), 407)
        ]
    );
}

/// The error of a session to `url` through the proxy at `proxy`, without reconnection.
async fn refused_through<R: Runtime>(url: &str, proxy: &str) -> Error {
    Session::<R>::builder(url)
        .proxy(proxy)
        .no_reconnect()
        .connect()
        .await
        .unwrap_err()
}

/// A proxy that refuses the tunnel, one that cannot be reached, one that does not speak
/// HTTP and a proxy URL that cannot be used are each a typed error; no session reached the
/// server.
pub async fn a_refusing_unreachable_or_broken_proxy_is_a_typed_error<R: Runtime>() {
    let server = start_server(Options::default());
    let refusing = server.proxy(ProxyOptions::default().refuse_with(403)).unwrap();
    let err = refused_through::<R>(&server.url(), &refusing.url()).await;
    assert!(
        matches!(
            err.transport_error(),
            Some(TransportError::ProxyRefused { status: 403, .. })
        ),
        "{err:?}"
    );
    // A port nothing listens on any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = refused_through::<R>(&server.url(), &format!("http://127.0.0.1:{port}")).await;
    assert!(
        matches!(err.transport_error(), Some(TransportError::ProxyUnreachable { proxy, .. }) if *proxy == format!("127.0.0.1:{port}")),
        "{err:?}"
    );
    assert!(err.is_proxy() && err.is_connect(), "{err:?}");
    // Something that is no HTTP proxy answers.
    let not_http = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = not_http.local_addr().unwrap();
    // Not joined: should the client never come, the thread ends with the test binary.
    std::thread::spawn(move || {
        if let Ok((mut tcp, _)) = not_http.accept() {
            let _ = std::io::Write::write_all(&mut tcp, b"SSH-2.0-OpenSSH_9.6\r\n\r\n");
        }
    });
    let err = refused_through::<R>(&server.url(), &format!("http://{address}")).await;
    assert!(
        matches!(err.transport_error(), Some(TransportError::ProxyHandshake { .. })),
        "{err:?}"
    );
    assert!(err.is_proxy() && err.to_string().contains("not HTTP"), "{err}");
    let err = Session::<R>::builder(&server.url())
        .proxy("socks5://127.0.0.1:1080")
        .build()
        .unwrap_err();
    assert!(
        matches!(err, Error::ProxyUrl { variable: None, .. }) && err.is_proxy(),
        "{err:?}"
    );
    assert_eq!(server.stats().sessions_opened, 0);
}

/// The environment's proxy: `http_proxy` for `ws://`, not `HTTPS_PROXY`; `NO_PROXY`
/// naming the host (or its range) connects directly.
pub async fn the_environment_proxy_and_no_proxy_bypass<R: Runtime>() {
    let server = start_server(Options::default());
    let proxy = server.proxy(ProxyOptions::default()).unwrap();
    let proxy_url = proxy.url();
    let vars = |pairs: &[(&'static str, &str)]| {
        let pairs: Vec<(&'static str, String)> = pairs
            .iter()
            .map(|(k, v)| (*k, v.replace("{proxy}", &proxy_url)))
            .collect();
        move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone())
    };
    for (env, proxied) in [
        (
            vars(&[("http_proxy", "{proxy}"), ("NO_PROXY", "example.com")]),
            true,
        ),
        (
            vars(&[("HTTP_PROXY", "{proxy}"), ("no_proxy", "localhost, 127.0.0.0/8")]),
            false,
        ),
        (vars(&[("HTTP_PROXY", "{proxy}"), ("NO_PROXY", "*")]), false),
        (vars(&[("HTTPS_PROXY", "{proxy}")]), false),
    ] {
        let before = proxy.requests().len();
        let session = Session::<R>::builder(&server.url())
            .proxy_from_vars(env)
            .connect()
            .await
            .unwrap();
        session.close().await;
        assert_eq!(proxy.requests().len() - before, usize::from(proxied));
    }
    assert_eq!(server.stats().sessions_opened, 4);
}

/// Expands to one `#[test]` per scenario that plain `ws://` runs, on runtime `$runtime` by
/// `$block_on` (a function or closure taking a future and running it to completion). The
/// `wss://` ones are [`tls_scenarios!`].
#[macro_export]
macro_rules! scenarios {
    ($runtime:ty, $block_on:expr) => {
        $crate::scenarios!(@each $runtime, $block_on;
            connect_ping_100_times_and_close,
            wrong_password_is_a_typed_authentication_error_with_116,
            session_properties_arrive_as_sent,
            system_pings_are_answered,
            stalled_server_is_noticed_and_the_same_session_resumed,
            request_in_flight_when_the_connection_drops_completes_exactly_once,
            forgotten_session_ends_closed_failed,
            close_is_closed_by_client_and_the_server_saw_close_request,
            state_changes_are_seen_before_connect_and_close_return,
            dropping_the_last_handle_closes_the_session,
            inbound_requests_reach_registered_handlers,
            oversize_send_is_refused_and_nothing_is_sent,
            a_thousand_concurrent_pings_on_one_session,
            through_a_connect_proxy_and_reconnected_through_it,
            proxy_credentials_are_sent_and_a_407_is_a_typed_error,
            a_refusing_unreachable_or_broken_proxy_is_a_typed_error,
            the_environment_proxy_and_no_proxy_bypass,
        );
    };
    (@each $runtime:ty, $block_on:expr; $($name:ident,)*) => {
        $(
            #[test]
            fn $name() {
                ($block_on)($crate::$name::<$runtime>());
            }
        )*
    };
}

/// Like [`scenarios!`], for the scenarios that need `wss://`: an adapter's tests invoke it
/// under `#[cfg(feature = "rustls")]`, so that a build without TLS leaves them out.
#[macro_export]
macro_rules! tls_scenarios {
    ($runtime:ty, $block_on:expr) => {
        $crate::scenarios!(@each $runtime, $block_on;
            wss_with_a_self_signed_certificate,
            wss_through_a_connect_proxy,
        );
    };
}
