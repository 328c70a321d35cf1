//! The test server against raw tokio-tungstenite clients: handshakes in both carriers,
//! pings, close, reconnection, every fault, TLS and the binary's JSON log.
// Integration tests: a failed unwrap is a failed test, as in #[test] functions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bytes::Bytes;
use diffusion_proto::{
    ConnectionParams, ConnectionResponse, Credentials, Message, ParameterCarrier, ProtocolVersion,
    ReconnectParams, ResponseCode, ServiceId, SessionGrant, SessionProperties,
};
use diffusion_test_server::{
    Direction, DropKind, Fault, FaultAction, LogEntry, LogKind, Malformed, Options, ServerEvent,
    ServerEventKind, TestServer, REDACTED,
};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};
use tokio_tungstenite::WebSocketStream;

const WAIT: Duration = Duration::from_secs(5);

async fn start(options: Options) -> TestServer {
    TestServer::start(options).await.unwrap()
}

/// A WebSocket upgrade to `path_and_query` with extra headers, over `stream`.
async fn upgrade<S: AsyncRead + AsyncWrite + Unpin>(
    url: &str,
    path_and_query: &str,
    headers: &[(&'static str, String)],
    stream: S,
) -> WebSocketStream<S> {
    let mut request = format!("{url}{path_and_query}").into_client_request().unwrap();
    for (name, value) in headers {
        request
            .headers_mut()
            .insert(*name, HeaderValue::from_str(value).unwrap());
    }
    let (ws, response) = tokio_tungstenite::client_async(request, stream).await.unwrap();
    assert_eq!(response.status(), 101);
    ws
}

type Ws = WebSocketStream<TcpStream>;

/// Connects the way the Python client does: protocol 25, parameters as headers.
async fn connect_v25(server: &TestServer, params: &ConnectionParams) -> Ws {
    let tcp = TcpStream::connect(server.addr()).await.unwrap();
    upgrade(&server.url(), "/diffusion", &params.to_headers(), tcp).await
}

/// Connects the way the JavaScript client does: protocol 29, parameters in the query.
async fn connect_v29(server: &TestServer, params: &ConnectionParams) -> Ws {
    let tcp = TcpStream::connect(server.addr()).await.unwrap();
    upgrade(
        &server.url(),
        &format!("/diffusion?{}", params.to_query()),
        &[],
        tcp,
    )
    .await
}

async fn next<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) -> WsMessage {
    match tokio::time::timeout(WAIT, ws.next()).await {
        Ok(Some(Ok(message))) => message,
        other => panic!("expected a message, got {other:?}"),
    }
}

async fn next_binary<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) -> Bytes {
    match next(ws).await {
        WsMessage::Binary(b) => b,
        other => panic!("expected a binary frame, got {other:?}"),
    }
}

async fn send(ws: &mut Ws, frame_hex: &str) {
    ws.send(WsMessage::Binary(hex::decode(frame_hex).unwrap().into()))
        .await
        .unwrap();
}

/// The connection ends with the TCP connection closing and no WebSocket close frame.
async fn ends_without_close_frame<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) {
    match tokio::time::timeout(WAIT, ws.next()).await {
        Ok(Some(Err(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake)))) => {}
        other => panic!("expected a TCP close without WebSocket close frame, got {other:?}"),
    }
}

/// Nothing arrives for `d`, and the connection stays open.
async fn silent_for(ws: &mut Ws, d: Duration) {
    if let Ok(m) = tokio::time::timeout(d, ws.next()).await {
        panic!("expected silence, got {m:?}");
    }
}

fn accepted(frame: &[u8], version: ProtocolVersion) -> SessionGrant {
    match ConnectionResponse::parse(frame, version) {
        Ok(ConnectionResponse::Accepted(grant)) => grant,
        other => panic!(
            "expected an accepted session, got {other:?} from {}",
            hex::encode(frame)
        ),
    }
}

fn anonymous() -> ConnectionParams {
    ConnectionParams::new(ProtocolVersion::V25)
}

fn bob(version: ProtocolVersion, password: &str) -> ConnectionParams {
    let mut p = ConnectionParams::new(version);
    p.principal = Some("bob".into());
    p.credentials = Credentials::password(password);
    p.properties = SessionProperties::new();
    p.properties.insert("Foo", "bar").unwrap();
    p
}

/// A `wait_for` predicate over the log.
fn logged(pred: impl Fn(&[LogEntry]) -> bool) -> impl Fn(&TestServer) -> bool {
    move |s| pred(&s.log())
}

fn upgrades(log: &[LogEntry]) -> Vec<diffusion_test_server::UpgradeLog> {
    log.iter().filter_map(|e| e.upgrade().cloned()).collect()
}

#[tokio::test]
async fn anonymous_connect_gets_a_55_byte_response() {
    let server = start(Options::default()).await;
    assert!(server.url().starts_with("ws://127.0.0.1:"));
    assert_eq!(server.addr().ip(), std::net::Ipv4Addr::LOCALHOST);
    let mut ws = connect_v25(&server, &anonymous()).await;
    let frame = next_binary(&mut ws).await;
    assert_eq!(frame.len(), 55);
    let grant = accepted(&frame, ProtocolVersion::V25);
    assert_eq!(grant.code, ResponseCode::Ok);
    assert_eq!(grant.ping_period_ms, 90_000);
    assert_eq!(grant.max_message_size(), Some(10_000_000));

    let log = server.log();
    let up = &upgrades(&log)[0];
    assert_eq!(
        (up.path.as_str(), up.version, up.carrier),
        ("/diffusion", Some(25), Some(ParameterCarrier::Headers))
    );
    assert_eq!(up.principal, None);
    assert!(!up.reconnect);
    assert!(log.iter().any(|e| matches!(&e.kind,
        LogKind::Response { code: 100, len: 55, session_id: Some(id), fault: None, .. } if *id == grant.session_id)));
    assert!(log.iter().any(|e| matches!(
        &e.kind,
        LogKind::Server(ServerEvent {
            kind: ServerEventKind::Connected { .. },
            ..
        })
    )));
    let stats = server.stats();
    assert_eq!(
        (stats.connections, stats.upgrades, stats.sessions_opened),
        (1, 1, 1)
    );
    server.shutdown().await;
}

#[tokio::test]
async fn user_ping_is_answered_and_websocket_pings_get_pongs() {
    let server = start(Options::default()).await;
    let mut ws = connect_v25(&server, &anonymous()).await;
    next_binary(&mut ws).await;
    send(&mut ws, "003805").await;
    assert_eq!(hex::encode(&next_binary(&mut ws).await), "0605");
    send(&mut ws, "0038ac02").await;
    assert_eq!(hex::encode(&next_binary(&mut ws).await), "06ac02");

    ws.send(WsMessage::Ping(Bytes::from_static(b"keepalive")))
        .await
        .unwrap();
    assert_eq!(
        next(&mut ws).await,
        WsMessage::Pong(Bytes::from_static(b"keepalive"))
    );

    assert_eq!(server.stats().user_pings_answered, 2);
    let log = server.log();
    let ping_in = log
        .iter()
        .find(|e| e.is_message(Direction::In, 0, Some(ServiceId::USER_PING)))
        .unwrap();
    assert!(matches!(
        ping_in.kind,
        LogKind::Message {
            cid: Some(5),
            len: 3,
            ..
        }
    ));
    assert!(log.iter().any(|e| e.is_message(Direction::Out, 6, None)
        && matches!(e.kind, LogKind::Message { cid: Some(300), .. })));
    server.shutdown().await;
}

#[tokio::test]
async fn parameters_in_headers_and_in_the_query_are_both_accepted_and_logged() {
    let server = start(Options::default().user("bob", "secret")).await;

    let mut py = connect_v25(&server, &bob(ProtocolVersion::V25, "secret")).await;
    assert_eq!(
        accepted(&next_binary(&mut py).await, ProtocolVersion::V25).code,
        ResponseCode::Ok
    );
    let mut js = connect_v29(&server, &bob(ProtocolVersion::V29, "secret")).await;
    let frame = next_binary(&mut js).await;
    assert_eq!(frame[1], 29);
    assert_eq!(accepted(&frame, ProtocolVersion::V29).code, ResponseCode::Ok);

    let log = server.log();
    let ups = upgrades(&log);
    assert_eq!(ups.len(), 2);
    for (up, version, carrier) in [
        (&ups[0], 25, ParameterCarrier::Headers),
        (&ups[1], 29, ParameterCarrier::Query),
    ] {
        assert_eq!(up.version, Some(version));
        assert_eq!(up.carrier, Some(carrier));
        assert_eq!(up.principal.as_deref(), Some("bob"));
        assert_eq!(up.credentials, Some("password"));
        assert_eq!(up.properties, [("Foo".to_owned(), "bar".to_owned())]);
        assert_eq!(up.param("password"), Some(REDACTED));
    }
    assert_eq!(ups[0].query, None);
    assert!(ups[1].query.as_deref().unwrap().contains("password=<redacted>"));
    let connected: Vec<_> = log
        .iter()
        .filter_map(|e| match &e.kind {
            LogKind::Server(ServerEvent {
                kind: ServerEventKind::Connected { carrier, version, .. },
                ..
            }) => Some((*carrier, version.number())),
            _ => None,
        })
        .collect();
    assert_eq!(
        connected,
        [(ParameterCarrier::Headers, 25), (ParameterCarrier::Query, 29)]
    );
    // "secret" in base64 credentials is AQZzZWNyZXQ=; neither form may be logged.
    let json: String = log.iter().map(|e| e.to_json().to_string()).collect();
    assert!(
        !json.contains("secret") && !json.contains("AQZzZWNyZXQ"),
        "{json}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn wrong_password_gets_116_then_tcp_close_without_websocket_close() {
    let server = start(Options::default().user("bob", "secret")).await;
    let mut ws = connect_v25(&server, &bob(ProtocolVersion::V25, "wrong")).await;
    assert_eq!(hex::encode(&next_binary(&mut ws).await), "231974");
    ends_without_close_frame(&mut ws).await;
    let log = server.log();
    assert!(log.iter().any(|e| e.response_code() == Some(116)));
    assert!(log.iter().any(|e| matches!(
        &e.kind,
        LogKind::Server(ServerEvent {
            kind: ServerEventKind::Rejected {
                code: ResponseCode::AuthenticationFailed,
                ..
            },
            ..
        })
    )));
    assert_eq!(server.stats().rejections, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn close_request_is_answered_with_abort_and_tcp_close() {
    let server = start(Options::default()).await;
    let mut ws = connect_v25(&server, &anonymous()).await;
    next_binary(&mut ws).await;
    send(&mut ws, "1d").await;
    assert_eq!(hex::encode(&next_binary(&mut ws).await), "1c");
    ends_without_close_frame(&mut ws).await;
    let stats = server.stats();
    assert_eq!((stats.close_requests, stats.aborts_sent), (1, 1));
    server.shutdown().await;
}

#[tokio::test]
async fn every_malformed_response_is_sent_as_specified_then_closed() {
    let server = start(Options::default()).await;
    for m in Malformed::ALL {
        server.set_fault(Fault::MalformedResponse(m));
        let mut ws = connect_v25(&server, &anonymous()).await;
        let message = next(&mut ws).await;
        match (m, &message) {
            (Malformed::Truncated, WsMessage::Binary(b)) => {
                assert_eq!((b.len(), &b[..3]), (20, &[0x23, 25, 100][..]))
            }
            (Malformed::WrongProtocolByte, WsMessage::Binary(b)) => assert_eq!((b.len(), b[0]), (55, 0x24)),
            (Malformed::WrongVersion, WsMessage::Binary(b)) => assert_eq!((b.len(), b[1]), (55, 26)),
            (Malformed::UnknownCode, WsMessage::Binary(b)) => assert_eq!((b.len(), b[2]), (55, 123)),
            (Malformed::TrailingBytes, WsMessage::Binary(b)) => {
                assert_eq!((b.len(), b[55]), (56, 0));
                accepted(&b[..55], ProtocolVersion::V25);
            }
            (Malformed::Empty, WsMessage::Binary(b)) => assert!(b.is_empty()),
            (Malformed::TextFrame, WsMessage::Text(t)) => assert!(t.as_str().starts_with("#\u{19}d")),
            _ => panic!("{m}: unexpected {message:?}"),
        }
        ends_without_close_frame(&mut ws).await;
    }
    // A v29 client gets version 30.
    server.set_fault(Fault::MalformedResponse(Malformed::WrongVersion));
    let mut ws = connect_v29(&server, &ConnectionParams::new(ProtocolVersion::V29)).await;
    assert_eq!(next_binary(&mut ws).await[1], 30);
    assert_eq!(server.stats().malformed_responses, 8);
    let faults: Vec<_> = server
        .log()
        .iter()
        .filter_map(|e| match &e.kind {
            LogKind::Response { fault: Some(f), .. } => Some(f.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(faults[..7], Malformed::ALL.map(|m| m.name().to_owned()));
    server.shutdown().await;
}

#[tokio::test]
async fn reject_all_answers_three_bytes_in_the_clients_version() {
    let server = start(Options {
        fault: Fault::RejectAll(116),
        ..Options::default()
    })
    .await;
    let mut ws = connect_v25(&server, &anonymous()).await;
    assert_eq!(hex::encode(&next_binary(&mut ws).await), "231974");
    ends_without_close_frame(&mut ws).await;
    server.set_fault(Fault::RejectAll(119));
    let mut ws = connect_v29(&server, &ConnectionParams::new(ProtocolVersion::V29)).await;
    assert_eq!(hex::encode(&next_binary(&mut ws).await), "231d77");
    ends_without_close_frame(&mut ws).await;
    assert_eq!(server.stats().sessions_opened, 0);
    server.shutdown().await;
}

#[tokio::test]
async fn drop_after_closes_the_tcp_connection_after_n_messages_once() {
    let server = start(Options {
        fault: Fault::drop_after(2, DropKind::Fin),
        ..Options::default()
    })
    .await;
    let mut ws = connect_v25(&server, &anonymous()).await;
    let grant = accepted(&next_binary(&mut ws).await, ProtocolVersion::V25);
    send(&mut ws, "003801").await;
    assert_eq!(hex::encode(&next_binary(&mut ws).await), "0601");
    // The second message is handled, but its answer is lost with the connection.
    send(&mut ws, "003802").await;
    ends_without_close_frame(&mut ws).await;
    assert!(server.log().iter().any(|e| matches!(
        &e.kind,
        LogKind::Fault(FaultAction::Dropped {
            how: DropKind::Fin,
            ..
        })
    )));
    // The session is kept: it is detached, waiting for a reconnection.
    assert!(
        server
            .wait_for(
                logged(|log| log.iter().any(|e| matches!(
                    e.kind,
                    LogKind::Server(ServerEvent {
                        kind: ServerEventKind::Detached { .. },
                        ..
                    })
                ))),
                WAIT
            )
            .await
    );
    assert_eq!(server.sessions().len(), 1);
    assert_eq!(server.sessions()[0].connection, None);

    // A reconnection having received one message gets the lost answer again, once.
    let mut params = anonymous();
    params.reconnect = Some(ReconnectParams {
        token: grant.token.clone(),
        available_client_sequence: 0,
        last_server_sequence: 1,
    });
    let mut ws = connect_v25(&server, &params).await;
    let resumed = accepted(&next_binary(&mut ws).await, ProtocolVersion::V25);
    assert_eq!(resumed.code, ResponseCode::Reconnected);
    assert_eq!(resumed.recovery_sequence(), Some(3));
    assert_eq!(hex::encode(&next_binary(&mut ws).await), "0602");
    // Only one connection is dropped.
    for cid in 3..=5 {
        send(&mut ws, &format!("00380{cid}")).await;
        assert_eq!(hex::encode(&next_binary(&mut ws).await), format!("060{cid}"));
    }
    assert_eq!(
        server
            .session(grant.session_id)
            .unwrap()
            .stats
            .user_pings_answered,
        5
    );
    assert_eq!(server.stats().dropped_connections, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn drop_after_with_rst_resets_the_connection() {
    let server = start(Options {
        fault: Fault::drop_after(1, DropKind::Rst),
        ..Options::default()
    })
    .await;
    let mut ws = connect_v25(&server, &anonymous()).await;
    next_binary(&mut ws).await;
    send(&mut ws, "003801").await;
    match tokio::time::timeout(WAIT, ws.next()).await {
        Ok(Some(Err(WsError::Io(e)))) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("expected a reset, got {other:?}"),
    }
    assert!(server.log().iter().any(|e| matches!(
        &e.kind,
        LogKind::Fault(FaultAction::Dropped {
            how: DropKind::Rst,
            ..
        })
    )));
    server.shutdown().await;
}

#[tokio::test]
async fn drop_after_zero_drops_right_after_the_response_and_the_session_resumes() {
    let server = start(Options {
        fault: Fault::drop_after(0, DropKind::Fin),
        ..Options::default()
    })
    .await;
    let mut ws = connect_v25(&server, &anonymous()).await;
    let grant = accepted(&next_binary(&mut ws).await, ProtocolVersion::V25);
    ends_without_close_frame(&mut ws).await;

    let mut params = anonymous();
    params.reconnect = Some(ReconnectParams {
        token: grant.token.clone(),
        available_client_sequence: 0,
        last_server_sequence: 0,
    });
    let mut ws = connect_v25(&server, &params).await;
    let resumed = accepted(&next_binary(&mut ws).await, ProtocolVersion::V25);
    assert_eq!(
        (resumed.code, resumed.session_id),
        (ResponseCode::Reconnected, grant.session_id)
    );
    let up = upgrades(&server.log()).pop().unwrap();
    assert!(up.reconnect);
    assert_eq!(up.param("c"), Some(REDACTED));
    assert_eq!(server.stats().reconnections, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn reconnect_answer_and_forget_sessions() {
    let server = start(Options::default()).await;
    let mut ws = connect_v25(&server, &anonymous()).await;
    let grant = accepted(&next_binary(&mut ws).await, ProtocolVersion::V25);
    let mut params = anonymous();
    params.reconnect = Some(ReconnectParams {
        token: grant.token.clone(),
        available_client_sequence: 0,
        last_server_sequence: 0,
    });

    server.set_reconnect_answer(Some(ResponseCode::ReconnectionFailedMessageLoss));
    let mut again = connect_v25(&server, &params).await;
    assert_eq!(hex::encode(&next_binary(&mut again).await), "231976");
    ends_without_close_frame(&mut again).await;
    // The answer did not touch the session: the first connection still works.
    send(&mut ws, "003801").await;
    assert_eq!(hex::encode(&next_binary(&mut ws).await), "0601");

    server.set_reconnect_answer(None);
    server.forget_sessions();
    // Forgetting drops the attached connection without ABORT.
    ends_without_close_frame(&mut ws).await;
    let mut again = connect_v25(&server, &params).await;
    assert_eq!(hex::encode(&next_binary(&mut again).await), "231975");
    ends_without_close_frame(&mut again).await;
    assert!(server.sessions().is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn abort_sessions_sends_abort_then_closes() {
    let server = start(Options::default()).await;
    let mut ws = connect_v25(&server, &anonymous()).await;
    next_binary(&mut ws).await;
    server.abort_sessions();
    assert_eq!(hex::encode(&next_binary(&mut ws).await), "1c");
    ends_without_close_frame(&mut ws).await;
    server.shutdown().await;
}

#[tokio::test]
async fn stall_answers_nothing_more_and_never_closes() {
    let server = start(Options {
        fault: Fault::Stall { after_messages: 1 },
        ..Options::default()
    })
    .await;
    let mut ws = connect_v25(&server, &anonymous()).await;
    next_binary(&mut ws).await;
    send(&mut ws, "003801").await;
    assert_eq!(hex::encode(&next_binary(&mut ws).await), "0601");
    send(&mut ws, "003802").await;
    ws.send(WsMessage::Ping(Bytes::from_static(b"hello")))
        .await
        .unwrap();
    send(&mut ws, "1d").await;
    silent_for(&mut ws, Duration::from_millis(500)).await;
    let stats = server.stats();
    assert_eq!(
        (
            stats.stalled_connections,
            stats.user_pings_answered,
            stats.close_requests
        ),
        (1, 1, 0)
    );
    server.shutdown().await;
}

#[tokio::test]
async fn no_response_sends_nothing_after_the_upgrade() {
    let server = start(Options {
        fault: Fault::NoResponse,
        ..Options::default()
    })
    .await;
    let mut ws = connect_v25(&server, &anonymous()).await;
    silent_for(&mut ws, Duration::from_millis(300)).await;
    assert_eq!(server.stats().sessions_opened, 0);
    server.shutdown().await;
}

#[tokio::test]
async fn system_pings_are_sent_every_period_and_answers_counted() {
    let server = start(Options {
        ping_period: Duration::from_millis(50),
        ..Options::default()
    })
    .await;
    let mut ws = connect_v25(&server, &anonymous()).await;
    let grant = accepted(&next_binary(&mut ws).await, ProtocolVersion::V25);
    assert_eq!(grant.ping_period_ms, 50);
    for _ in 0..3 {
        let frame = next_binary(&mut ws).await;
        let Ok(Message::ServiceRequest {
            service: ServiceId::SYSTEM_PING,
            cid,
            ..
        }) = Message::decode(&frame)
        else {
            panic!("expected a system ping, got {}", hex::encode(&frame));
        };
        ws.send(WsMessage::Binary(
            Message::ServiceResponse {
                cid,
                payload: Bytes::new(),
            }
            .to_bytes(),
        ))
        .await
        .unwrap();
    }
    let answered = |log: &[LogEntry]| {
        log.iter()
            .filter(|e| {
                matches!(
                    e.kind,
                    LogKind::Server(ServerEvent {
                        kind: ServerEventKind::SystemPingAnswered { .. },
                        ..
                    })
                )
            })
            .count()
            >= 3
    };
    assert!(server.wait_for(logged(answered), WAIT).await);
    let stats = server.stats();
    assert!(stats.system_pings_sent >= 3, "{stats:?}");
    assert_eq!(stats.system_pings_answered, 3);
    server.shutdown().await;
}

#[tokio::test]
async fn unanswered_system_pings_end_the_session_with_abort() {
    let server = start(Options {
        ping_period: Duration::from_millis(30),
        ..Options::default()
    })
    .await;
    let mut ws = connect_v25(&server, &anonymous()).await;
    next_binary(&mut ws).await;
    // Two pings go unanswered; when the third falls due the session is closed.
    let mut frames = Vec::new();
    loop {
        let frame = next_binary(&mut ws).await;
        frames.push(hex::encode(&frame));
        if frame[..] == [0x1c] {
            break;
        }
    }
    assert_eq!(frames, ["003701", "003702", "1c"]);
    ends_without_close_frame(&mut ws).await;
    server.shutdown().await;
}

#[tokio::test]
async fn oversize_message_closes_the_session() {
    let server = start(Options {
        max_message_size: 1024,
        ..Options::default()
    })
    .await;
    let mut ws = connect_v25(&server, &anonymous()).await;
    next_binary(&mut ws).await;
    let mut big = hex::decode("0038").unwrap();
    big.resize(2000, 0);
    ws.send(WsMessage::Binary(big.into())).await.unwrap();
    assert_eq!(hex::encode(&next_binary(&mut ws).await), "1c");
    ends_without_close_frame(&mut ws).await;
    assert!(server.log().iter().any(|e| matches!(
        &e.kind,
        LogKind::Server(ServerEvent {
            kind: ServerEventKind::SessionClosed {
                reason: diffusion_test_server::ServerCloseReason::MessageTooLarge {
                    size: 2000,
                    limit: 1024
                },
                ..
            },
            ..
        })
    )));
    server.shutdown().await;
}

#[tokio::test]
async fn client_websocket_close_is_logged_and_detaches_the_session() {
    let server = start(Options::default()).await;
    let mut ws = connect_v25(&server, &anonymous()).await;
    next_binary(&mut ws).await;
    ws.close(None).await.unwrap();
    let closed = |log: &[LogEntry]| {
        log.iter().any(|e| {
            matches!(
                &e.kind,
                LogKind::Closed {
                    by: diffusion_test_server::Side::Client,
                    ..
                }
            )
        }) && log.iter().any(|e| {
            matches!(
                e.kind,
                LogKind::Server(ServerEvent {
                    kind: ServerEventKind::Detached { .. },
                    ..
                })
            )
        })
    };
    assert!(server.wait_for(logged(closed), WAIT).await);
    server.shutdown().await;
}

#[cfg(feature = "tls")]
#[tokio::test]
async fn wss_with_a_self_signed_certificate() {
    use std::sync::Arc;
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::ServerName;

    let identity = diffusion_test_server::self_signed(&["localhost", "127.0.0.1"]);
    assert!(!format!("{identity:?}").contains("PRIVATE KEY"));
    let server = start(Options {
        tls: Some(identity.clone()),
        ..Options::default()
    })
    .await;
    assert!(server.url().starts_with("wss://127.0.0.1:"));

    let mut roots = rustls::RootCertStore::empty();
    roots.add(identity.certificate_der()).unwrap();
    let config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let tcp = TcpStream::connect(server.addr()).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    let mut ws = upgrade(&server.url(), "/diffusion", &anonymous().to_headers(), tls).await;
    accepted(&next_binary(&mut ws).await, ProtocolVersion::V25);
    ws.send(WsMessage::Binary(hex::decode("003807").unwrap().into()))
        .await
        .unwrap();
    assert_eq!(hex::encode(&next_binary(&mut ws).await), "0607");
    server.shutdown().await;
}

#[tokio::test]
async fn wait_for_times_out_when_nothing_happens() {
    let server = start(Options::default()).await;
    let started = std::time::Instant::now();
    assert!(
        !server
            .wait_for(|s| s.log().len() > 1, Duration::from_millis(100))
            .await
    );
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert!(
        server
            .wait_for(|s| matches!(s.log()[0].kind, LogKind::Listening { .. }), WAIT)
            .await
    );
    server.shutdown().await;
}

#[tokio::test]
async fn set_fault_restarts_message_counts_and_zero_acts_at_once() {
    let server = start(Options {
        ping_period: Duration::from_millis(40),
        ..Options::default()
    })
    .await;
    let mut ws = connect_v25(&server, &anonymous()).await;
    let grant = accepted(&next_binary(&mut ws).await, ProtocolVersion::V25);
    send(&mut ws, "0038ac02").await;
    // Skip system pings until the answer; it is already counted in the session snapshot.
    while hex::encode(&next_binary(&mut ws).await) != "06ac02" {}
    let info = server.session(grant.session_id).unwrap();
    assert_eq!(info.stats.user_pings_answered, 1);
    assert_eq!(info.principal, None);

    // Stall after 0 messages: the open connection goes silent at once, system pings too.
    server.set_fault(Fault::Stall { after_messages: 0 });
    assert!(
        server
            .wait_for(|s| s.stats().stalled_connections == 1, WAIT)
            .await
    );
    // Whatever was already on its way may still arrive; then nothing.
    let quiet = async {
        while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(200), ws.next()).await {}
    };
    tokio::time::timeout(WAIT, quiet).await.unwrap();
    let sent = server.stats().system_pings_sent;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(server.stats().system_pings_sent, sent);

    // DropAfter counts from when it is set: a connection that has carried messages
    // already is dropped after one more.
    server.set_fault(Fault::None);
    let mut ws = connect_v25(&server, &anonymous()).await;
    next_binary(&mut ws).await;
    for cid in 1..=3 {
        send(&mut ws, &format!("00380{cid}")).await;
        while hex::encode(&next_binary(&mut ws).await) != format!("060{cid}") {}
    }
    server.set_fault(Fault::drop_after(1, DropKind::Fin));
    send(&mut ws, "003804").await;
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await {
            // System pings sent before the drop.
            Ok(Some(Ok(WsMessage::Binary(b)))) => assert_eq!(&b[..2], [0x00, 0x37]),
            Ok(Some(Err(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake)))) => break,
            other => panic!("expected a TCP close without the answer, got {other:?}"),
        }
    }
    assert_eq!(server.stats().dropped_connections, 1);
    // The answer was numbered and kept: the session's counters include it.
    let dropped = server
        .sessions()
        .into_iter()
        .find(|s| s.connection.is_none())
        .unwrap();
    assert_eq!(dropped.stats.user_pings_answered, 4);
    server.shutdown().await;
}

#[tokio::test]
async fn a_failed_websocket_upgrade_is_logged_as_an_error() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = start(Options::default()).await;
    let mut tcp = TcpStream::connect(server.addr()).await.unwrap();
    tcp.write_all(b"GET /diffusion HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(WAIT, tcp.read_to_end(&mut rest))
        .await
        .unwrap();
    let failed = |s: &TestServer| {
        s.log().iter().any(
            |e| matches!(&e.kind, LogKind::Error { message } if message.starts_with("WebSocket upgrade")),
        )
    };
    assert!(server.wait_for(failed, WAIT).await);
    assert_eq!((server.stats().connections, server.stats().upgrades), (1, 0));
    server.shutdown().await;
}

#[tokio::test]
async fn topics_given_at_start_are_held_and_logged() {
    let seed: diffusion_test_server::TopicSeed = "t/n:int64=42".parse().unwrap();
    let server = start(Options::default().topic(seed)).await;
    let topics = server.topics();
    assert_eq!(topics.len(), 1);
    assert_eq!(
        (&*topics[0].path, topics[0].id, topics[0].value.as_deref()),
        ("t/n", 1, Some(&[0x18, 0x2a][..]))
    );
    assert!(server.log().iter().any(|e| matches!(
        &e.kind,
        LogKind::Server(ServerEvent {
            kind: ServerEventKind::TopicAdded { topic_id: 1, .. },
            session_id: None,
            ..
        })
    )));
    let taken = TestServer::start(
        Options::default()
            .topic("t/n:json".parse().unwrap())
            .topic("t/n:string".parse().unwrap()),
    )
    .await;
    assert_eq!(taken.unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
    server.shutdown().await;
}
