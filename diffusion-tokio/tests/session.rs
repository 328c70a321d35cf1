//! The Session API against the loopback test server over real sockets on 127.0.0.1:
//! connect, pings, authentication, properties, keep-alive, reconnection, close, limits, TLS.

// Harness code outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use diffusion_test_server::{DropKind, Fault, Options, TestServer};
use diffusion_tokio::{Error, ResponseCode, ServiceId, Session, SessionError, SessionState};
use futures_util::StreamExt;

const WAIT: Duration = Duration::from_secs(10);

async fn server(options: Options) -> TestServer {
    TestServer::start(options).await.expect("test server starts")
}

#[tokio::test]
async fn connect_ping_100_times_and_close() {
    let server = server(Options::default()).await;
    let session = Session::builder(&server.url()).connect().await.unwrap();
    assert_eq!(session.state(), SessionState::ConnectedActive);
    assert!(session.session_id().is_some());
    for _ in 0..100 {
        let ping = session.ping_server().await.unwrap();
        assert!(ping.round_trip > Duration::ZERO);
    }
    session.close().await;
    assert_eq!(session.state(), SessionState::ClosedByClient);
    assert_eq!(server.stats().user_pings_answered, 100);
}

#[tokio::test]
async fn wrong_password_is_a_typed_authentication_error_with_116() {
    let options = Options {
        users: vec![("admin".into(), "secret".into())],
        ..Options::default()
    };
    let server = server(options).await;
    let err = Session::builder(&server.url())
        .principal("admin")
        .password("wrong")
        .connect()
        .await
        .unwrap_err();
    assert_eq!(err, Error::AuthenticationFailed);
    assert_eq!(err.response_code(), Some(ResponseCode::AuthenticationFailed));
    assert_eq!(err.response_code().map(|c| c.code()), Some(116));
}

#[tokio::test]
async fn session_properties_arrive_as_sent() {
    let options = Options {
        users: vec![("admin".into(), "secret".into())],
        ..Options::default()
    };
    let server = server(options).await;
    let session = Session::builder(&server.url())
        .principal("admin")
        .password("secret")
        .property("region", "eu")
        .unwrap()
        .property("tier", "gold \"q\" \\ 'x'")
        .unwrap()
        .connect()
        .await
        .unwrap();
    let id = session.session_id().unwrap();
    let info = server.session(id).expect("the server knows the session");
    assert_eq!(info.principal.as_deref(), Some("admin"));
    assert_eq!(info.properties.get("region"), Some("eu"));
    assert_eq!(info.properties.get("tier"), Some("gold \"q\" \\ 'x'"));
    session.close().await;
}

#[tokio::test]
async fn system_pings_are_answered() {
    let options = Options {
        ping_period: Duration::from_millis(100),
        ..Options::default()
    };
    let server = server(options).await;
    let session = Session::builder(&server.url()).connect().await.unwrap();
    assert!(
        server
            .wait_for(|s| s.stats().system_pings_answered >= 3, WAIT)
            .await
    );
    assert!(session.system_pings_answered() >= 3);
    session.close().await;
}

#[tokio::test]
async fn stalled_server_is_noticed_and_the_same_session_resumed() {
    let options = Options {
        ping_period: Duration::from_millis(200),
        ..Options::default()
    };
    let server = server(options).await;
    let session = Session::builder(&server.url()).connect().await.unwrap();
    let id = session.session_id();
    let mut changes = Box::pin(session.state_changes());
    server.set_fault(Fault::Stall { after_messages: 0 });
    let lost = tokio::time::timeout(WAIT, changes.next()).await.unwrap().unwrap();
    assert_eq!(
        (lost.old, lost.new),
        (SessionState::ConnectedActive, SessionState::RecoveringReconnect)
    );
    server.set_fault(Fault::None);
    let back = tokio::time::timeout(WAIT, changes.next()).await.unwrap().unwrap();
    assert_eq!(back.new, SessionState::ConnectedActive);
    assert_eq!(session.session_id(), id);
    session.ping_server().await.unwrap();
    session.close().await;
}

#[tokio::test]
async fn request_in_flight_when_the_connection_drops_completes_exactly_once() {
    for how in [DropKind::Fin, DropKind::Rst] {
        let server = server(Options::default()).await;
        let session = Session::builder(&server.url()).connect().await.unwrap();
        let id = session.session_id();
        // The next client message (the ping) is the one the server drops the connection on.
        server.set_fault(Fault::DropAfter {
            messages: 1,
            how,
            times: 1,
        });
        let ping = tokio::time::timeout(WAIT, session.ping_server()).await.unwrap();
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

#[tokio::test]
async fn forgotten_session_ends_closed_failed() {
    let server = server(Options::default()).await;
    let session = Session::builder(&server.url()).connect().await.unwrap();
    let mut changes = Box::pin(session.state_changes());
    server.forget_sessions();
    let mut last = None;
    while let Ok(Some(change)) = tokio::time::timeout(WAIT, changes.next()).await {
        last = Some(change.clone());
        if change.new.is_closed() {
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

#[tokio::test]
async fn close_is_closed_by_client_and_the_server_saw_close_request() {
    let server = server(Options::default()).await;
    let session = Session::builder(&server.url()).connect().await.unwrap();
    let id = session.session_id().unwrap();
    session.close().await;
    assert_eq!(session.state(), SessionState::ClosedByClient);
    session.close().await; // idempotent
    assert!(server.wait_for(|s| s.stats().close_requests == 1, WAIT).await);
    assert!(matches!(session.ping_server().await, Err(Error::Closed(_))));
    let _ = id;
}

#[tokio::test]
async fn oversize_send_is_refused_and_nothing_is_sent() {
    let options = Options {
        max_message_size: 1000,
        ..Options::default()
    };
    let server = server(options).await;
    let session = Session::builder(&server.url()).connect().await.unwrap();
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

#[tokio::test]
async fn a_thousand_concurrent_pings_on_one_session() {
    let server = server(Options::default()).await;
    let session = Session::builder(&server.url()).connect().await.unwrap();
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let session = session.clone();
            tokio::spawn(async move { session.ping_server().await })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        task.await.unwrap().unwrap();
        ok += 1;
    }
    assert_eq!(ok, 1000);
    assert_eq!(server.stats().user_pings_answered, 1000);
    session.close().await;
}

#[tokio::test]
async fn wss_with_a_self_signed_certificate() {
    let identity = diffusion_test_server::self_signed(&["localhost", "127.0.0.1"]);
    let cert = identity.certificate_der();
    let options = Options {
        tls: Some(identity),
        ..Options::default()
    };
    let server = server(options).await;
    assert!(server.url().starts_with("wss://"));

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let session = Session::builder(&server.url())
        .tls_config(Arc::new(tls))
        .connect()
        .await
        .unwrap();
    session.ping_server().await.unwrap();
    session.close().await;
    assert_eq!(session.state(), SessionState::ClosedByClient);

    // Without the certificate the default roots refuse the server.
    let err = Session::builder(&server.url())
        .no_reconnect()
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Closed(_)), "{err:?}");
}
