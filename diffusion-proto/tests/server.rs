//! The sans-IO [`Server`] driven through its public API on a simulated clock: handshakes,
//! pings, services, close, reconnection, and a proptest of arbitrary requests and frames.

// Harness code outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use diffusion_proto::wire::Reader;
use diffusion_proto::{
    AcceptOutcome, AllowAll, ConnectionId, ConnectionResponse, CounterEntropy, Entropy, Message,
    ParameterCarrier, ProtocolVersion, ResponseCode, Server, ServerCloseReason, ServerConfig, ServerEvent,
    ServerEventKind, ServerOutput, ServiceId, SessionId, UpgradeRequest, UserTable,
};
use proptest::prelude::*;

const TOKEN_LEN: usize = 24;

/// Fake entropy: each byte is the next value of a counter.
#[derive(Default)]
struct Ramp(u8);

impl Entropy for Ramp {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 = self.0.wrapping_add(1);
            *b = self.0;
        }
    }
}

/// A simulated clock: a base instant plus offsets.
struct Clock(Instant);

impl Clock {
    fn new() -> Self {
        // The only clock read, in tests, to get a base; everything after is offsets.
        Clock(Instant::now())
    }
    fn ms(&self, ms: u64) -> Instant {
        self.0 + Duration::from_millis(ms)
    }
}

fn unhex(s: &str) -> Bytes {
    hex::decode(s).unwrap().into()
}

fn users() -> UserTable {
    UserTable::new()
        .with_user("bob", "secret")
        .with_user("admin", "password")
}

fn server_with(config: ServerConfig) -> Server {
    Server::new(config, Box::new(users()), Box::<Ramp>::default())
}

fn server() -> Server {
    server_with(ServerConfig::default())
}

fn drain(server: &mut Server) -> Vec<ServerOutput> {
    std::iter::from_fn(|| server.poll_output()).collect()
}

/// Transmitted frames (hex) and closes, without events: `"tx:<conn>:<hex>"`, `"close:<conn>"`.
fn wire_of(outputs: &[ServerOutput]) -> Vec<String> {
    outputs
        .iter()
        .filter_map(|o| match o {
            ServerOutput::Transmit { conn, frame } => Some(format!("tx:{}:{}", conn.0, hex::encode(frame))),
            ServerOutput::CloseTransport { conn } => Some(format!("close:{}", conn.0)),
            _ => None,
        })
        .collect()
}

fn events_of(outputs: &[ServerOutput]) -> Vec<ServerEvent> {
    outputs
        .iter()
        .filter_map(|o| match o {
            ServerOutput::Event(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

/// The Python client's first-connect headers (SPEC §2.3), anonymous.
fn py_headers(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, Vec<u8>)> {
    let mut h: Vec<(&'static str, Vec<u8>)> = vec![
        ("Host", b"localhost:8080".to_vec()),
        ("v", b"25".to_vec()),
        ("ca", b"10".to_vec()),
        ("username", Vec::new()),
        ("r", b"60000".to_vec()),
        ("password", Vec::new()),
        ("ty", b"PY".to_vec()),
        ("sp", br#""$Environment","PYTHON_cpython_3.11.7""#.to_vec()),
    ];
    for (n, v) in extra {
        h.retain(|(name, _)| name != n);
        h.push((n, v.as_bytes().to_vec()));
    }
    h
}

fn request<'a>(
    path: &'a str,
    query: Option<&'a str>,
    headers: &'a [(&'static str, Vec<u8>)],
) -> UpgradeRequest<'a> {
    UpgradeRequest {
        path,
        query,
        headers: headers.iter().map(|(n, v)| (*n, v.as_slice())).collect(),
    }
}

/// Connects anonymously over headers on `conn`; returns the session id and the token.
fn connect(server: &mut Server, now: Instant, conn: u64, r_ms: &'static str) -> (SessionId, String) {
    let headers = py_headers(&[("r", r_ms)]);
    let outcome = server.accept(now, ConnectionId(conn), &request("/diffusion", None, &headers));
    let AcceptOutcome::Accepted { session_id, .. } = outcome else {
        panic!("refused: {outcome:?}");
    };
    let out = drain(server);
    let ServerOutput::Transmit { frame, .. } = &out[0] else {
        panic!("{out:?}");
    };
    let token = String::from_utf8(frame[19..43].to_vec()).unwrap();
    (session_id, token)
}

fn reconnect(
    server: &mut Server,
    now: Instant,
    conn: u64,
    token: &str,
    cs: &str,
    ss: &str,
) -> (AcceptOutcome, Vec<ServerOutput>) {
    let headers: Vec<(&'static str, Vec<u8>)> = py_headers(&[])
        .into_iter()
        .chain([
            ("c", token.as_bytes().to_vec()),
            ("cs", cs.as_bytes().to_vec()),
            ("ss", ss.as_bytes().to_vec()),
        ])
        .collect();
    let outcome = server.accept(now, ConnectionId(conn), &request("/diffusion", None, &headers));
    (outcome, drain(server))
}

fn frame(server: &mut Server, now: Instant, conn: u64, hex_frame: &str) -> Vec<ServerOutput> {
    server.handle_frame(now, ConnectionId(conn), unhex(hex_frame));
    drain(server)
}

#[test]
fn anonymous_accept_sends_the_55_byte_response() {
    let clock = Clock::new();
    let mut server = server();
    let headers = py_headers(&[]);
    let outcome = server.accept(
        clock.ms(0),
        ConnectionId(1),
        &request("/diffusion", None, &headers),
    );
    let out = drain(&mut server);
    let ServerOutput::Transmit { conn, frame } = &out[0] else {
        panic!("{out:?}");
    };
    assert_eq!(*conn, ConnectionId(1));
    assert_eq!(frame.len(), 55);
    assert_eq!(hex::encode(&frame[..3]), "231964");
    assert_eq!(hex::encode(&frame[3..11]), "1122334455667788");
    // Ramp entropy: the value part is bytes 1..=8, the token comes from bytes 9..=26.
    assert_eq!(hex::encode(&frame[11..19]), "0102030405060708");
    let token = &frame[19..43];
    assert_eq!(token.len(), TOKEN_LEN);
    assert!(token
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/'));
    assert_eq!(hex::encode(&frame[43..51]), "0000000000015f90"); // 90 000 ms
    assert_eq!(hex::encode(&frame[51..55]), "00989680"); // 10 000 000
    let parsed = ConnectionResponse::parse(frame, ProtocolVersion::V25).unwrap();
    let ConnectionResponse::Accepted(grant) = parsed else {
        panic!()
    };
    let id = SessionId {
        server: 0x1122_3344_5566_7788,
        value: 0x0102_0304_0506_0708,
    };
    assert_eq!(grant.session_id, id);
    assert_eq!(
        outcome,
        AcceptOutcome::Accepted {
            session_id: id,
            code: ResponseCode::Ok,
            replaced: None
        }
    );
    let events = events_of(&out);
    let [ServerEvent {
        kind:
            ServerEventKind::Connected {
                principal,
                properties,
                version,
                carrier,
                client_type,
                reconnect_timeout,
                ..
            },
        ..
    }] = events.as_slice()
    else {
        panic!("{out:?}");
    };
    assert_eq!(*principal, None);
    assert_eq!(properties.get("$Environment"), Some("PYTHON_cpython_3.11.7"));
    assert_eq!(*version, ProtocolVersion::V25);
    assert_eq!(*carrier, ParameterCarrier::Headers);
    assert_eq!(client_type, "PY");
    assert_eq!(*reconnect_timeout, Duration::from_secs(60));
    assert_eq!(server.session_of(ConnectionId(1)), Some(id));
    assert_eq!(server.poll_timeout(), Some(clock.ms(90_000)));
}

#[test]
fn rejected_credentials_get_exactly_231974_then_close() {
    let clock = Clock::new();
    let mut server = server();
    let headers = py_headers(&[("username", "bob"), ("password", "AQV3cm9uZw==")]);
    let outcome = server.accept(
        clock.ms(0),
        ConnectionId(7),
        &request("/diffusion", None, &headers),
    );
    assert_eq!(
        outcome,
        AcceptOutcome::Rejected {
            code: ResponseCode::AuthenticationFailed
        }
    );
    let out = drain(&mut server);
    assert_eq!(wire_of(&out), ["tx:7:231974", "close:7"]);
    assert!(matches!(
        events_of(&out).as_slice(),
        [ServerEvent {
            kind: ServerEventKind::Rejected {
                code: ResponseCode::AuthenticationFailed,
                ..
            },
            ..
        }]
    ));
    assert_eq!(server.sessions().count(), 0);
    assert_eq!(server.poll_timeout(), None);
    // Frames after the rejection are ignored.
    assert!(frame(&mut server, clock.ms(1), 7, "003801").is_empty());
}

#[test]
fn python_headers_with_principal_and_properties() {
    // The LIVE `py_connect_ping_close` upgrade, with the Foo/"x y" properties of SPEC §2.3.
    let clock = Clock::new();
    let mut server = server();
    let headers = py_headers(&[
        ("username", "bob"),
        ("password", "AQZzZWNyZXQ="),
        (
            "sp",
            r#""Foo","bar","x y","1","$Environment","PYTHON_cpython_3.11.7""#,
        ),
    ]);
    server.accept(
        clock.ms(0),
        ConnectionId(1),
        &request("/diffusion", None, &headers),
    );
    let out = drain(&mut server);
    assert!(hex::encode(match &out[0] {
        ServerOutput::Transmit { frame, .. } => frame,
        other => panic!("{other:?}"),
    })
    .starts_with("231964"));
    let info = server.sessions().next().unwrap();
    assert_eq!(info.principal.as_deref(), Some("bob"));
    assert_eq!(info.properties.get("x y"), Some("1"));
    assert_eq!(info.properties.get("Foo"), Some("bar"));
}

#[test]
fn javascript_query_on_version_29() {
    // The LIVE `js_connect_ping_close` upgrade path.
    let clock = Clock::new();
    let mut server = server();
    let uri = "/diffusion?ty=WB&v=29&ca=10&r=60000&sp=%7B%22Foo%22%3A%22bar%22%2C%22x%20y%22%3A%221%22%2C%22%24Environment%22%3A%22NODE_linux_20.20.2%22%7D&username=bob&password=AQZzZWNyZXQ%3D";
    let outcome = server.accept(clock.ms(0), ConnectionId(2), &UpgradeRequest::from_uri(uri));
    assert!(matches!(
        outcome,
        AcceptOutcome::Accepted {
            code: ResponseCode::Ok,
            ..
        }
    ));
    let out = drain(&mut server);
    let ServerOutput::Transmit { frame, .. } = &out[0] else {
        panic!("{out:?}");
    };
    assert_eq!(frame.len(), 55);
    assert_eq!(hex::encode(&frame[..3]), "231d64");
    let events = events_of(&out);
    let [ServerEvent {
        kind:
            ServerEventKind::Connected {
                principal,
                properties,
                version,
                carrier,
                client_type,
                ..
            },
        ..
    }] = events.as_slice()
    else {
        panic!("{out:?}");
    };
    assert_eq!(principal.as_deref(), Some("bob"));
    assert_eq!(properties.get("x y"), Some("1"));
    assert_eq!(properties.get("$Environment"), Some("NODE_linux_20.20.2"));
    assert_eq!(*version, ProtocolVersion::V29);
    assert_eq!(*carrier, ParameterCarrier::Query);
    assert_eq!(client_type, "WB");
    // The full URI a client builds is accepted too.
    let full = format!("ws://127.0.0.1:8080{uri}");
    let outcome = server.accept(clock.ms(0), ConnectionId(3), &UpgradeRequest::from_uri(&full));
    assert!(matches!(outcome, AcceptOutcome::Accepted { .. }));
}

#[test]
fn bad_paths_versions_and_parameters_are_refused_in_three_bytes() {
    let clock = Clock::new();
    let mut server = server();
    let cases: [(&str, &str); 6] = [
        ("/other?v=25&ty=PY&ca=8&r=0", "tx:1:231973"),
        ("/diffusion?v=26&ty=PY", "tx:1:231966"),
        ("/diffusion?v=30&ty=WB", "tx:1:231d66"),
        ("/diffusion?v=abc", "tx:1:231973"),
        ("/diffusion?ty=PY", "tx:1:231973"),
        ("/diffusion?v=29&r=x", "tx:1:231d73"),
    ];
    for (uri, expected) in cases {
        server.accept(clock.ms(0), ConnectionId(1), &UpgradeRequest::from_uri(uri));
        let out = drain(&mut server);
        assert_eq!(wire_of(&out), [expected, "close:1"], "{uri}");
    }
    // A malformed password is refused without its value in the event.
    server.accept(
        clock.ms(0),
        ConnectionId(1),
        &UpgradeRequest::from_uri("/diffusion?v=25&username=u&password=hunter2%zz"),
    );
    let out = drain(&mut server);
    assert_eq!(wire_of(&out), ["tx:1:231973", "close:1"]);
    assert!(!format!("{out:?}").contains("hunter2"));
    // An unrelated non-UTF-8 header does not fail the request.
    let mut headers = py_headers(&[]);
    headers.push(("User-Agent", vec![0xff, 0xfe]));
    let outcome = server.accept(
        clock.ms(0),
        ConnectionId(2),
        &request("/diffusion/", None, &headers),
    );
    assert!(matches!(outcome, AcceptOutcome::Accepted { .. }));
}

#[test]
fn user_ping_is_answered_with_the_same_cid() {
    let clock = Clock::new();
    let mut server = server();
    let (id, _) = connect(&mut server, clock.ms(0), 1, "60000");
    assert_eq!(
        wire_of(&frame(&mut server, clock.ms(5), 1, "003805")),
        ["tx:1:0605"]
    );
    assert_eq!(
        wire_of(&frame(&mut server, clock.ms(5), 1, "0038ac02")),
        ["tx:1:06ac02"]
    );
    // cid 0 is one-way.
    assert!(wire_of(&frame(&mut server, clock.ms(5), 1, "003800")).is_empty());
    let info = server.session(id).unwrap();
    assert_eq!(info.stats.user_pings_answered, 2);
    assert_eq!(info.client_sequence, 3);
    assert_eq!(info.server_sequence, 2);
}

#[test]
fn system_ping_after_the_period_and_its_answer_is_counted() {
    let clock = Clock::new();
    let mut server = server();
    let (id, _) = connect(&mut server, clock.ms(0), 1, "60000");
    server.handle_timeout(clock.ms(89_999));
    assert!(drain(&mut server).is_empty());
    server.handle_timeout(clock.ms(90_000));
    assert_eq!(wire_of(&drain(&mut server)), ["tx:1:003701"]);
    assert_eq!(server.poll_timeout(), Some(clock.ms(180_000)));
    let out = frame(&mut server, clock.ms(90_003), 1, "0601");
    assert_eq!(
        events_of(&out),
        [ServerEvent {
            conn: Some(ConnectionId(1)),
            session_id: Some(id),
            kind: ServerEventKind::SystemPingAnswered {
                cid: 1,
                rtt: Duration::from_millis(3)
            }
        }]
    );
    server.handle_timeout(clock.ms(180_000));
    assert_eq!(wire_of(&drain(&mut server)), ["tx:1:003702"]);
    let stats = server.session(id).unwrap().stats;
    assert_eq!((stats.system_pings_sent, stats.system_pings_answered), (2, 1));
}

#[test]
fn unanswered_pings_close_the_session() {
    let clock = Clock::new();
    let mut server = server_with(ServerConfig {
        ping_period: Duration::from_secs(1),
        ..ServerConfig::default()
    });
    let (id, token) = connect(&mut server, clock.ms(0), 1, "60000");
    server.handle_timeout(clock.ms(1_000));
    server.handle_timeout(clock.ms(2_000));
    assert_eq!(wire_of(&drain(&mut server)), ["tx:1:003701", "tx:1:003702"]);
    server.handle_timeout(clock.ms(3_000));
    let out = drain(&mut server);
    assert_eq!(wire_of(&out), ["tx:1:1c", "close:1"]);
    assert_eq!(
        events_of(&out),
        [ServerEvent {
            conn: Some(ConnectionId(1)),
            session_id: Some(id),
            kind: ServerEventKind::SessionClosed {
                reason: ServerCloseReason::ClientUnresponsive
            }
        }]
    );
    assert_eq!(server.poll_timeout(), None);
    let (outcome, _) = reconnect(&mut server, clock.ms(3_001), 2, &token, "0", "2");
    assert_eq!(
        outcome,
        AcceptOutcome::Rejected {
            code: ResponseCode::UnknownSession
        }
    );
}

#[test]
fn an_answer_resets_the_unanswered_count() {
    let clock = Clock::new();
    let mut server = server_with(ServerConfig {
        ping_period: Duration::from_secs(1),
        ..ServerConfig::default()
    });
    connect(&mut server, clock.ms(0), 1, "60000");
    for s in 1..=6u64 {
        server.handle_timeout(clock.ms(s * 1_000));
        let cid = format!("{:02x}", s);
        assert_eq!(wire_of(&drain(&mut server)), [format!("tx:1:0037{cid}")]);
        if s % 2 == 0 {
            // Answer late, every other period: never two in a row unanswered at a due time.
            frame(&mut server, clock.ms(s * 1_000 + 10), 1, &format!("06{cid}"));
        }
    }
}

#[test]
fn close_request_gets_abort_then_transport_close() {
    let clock = Clock::new();
    let mut server = server();
    let (id, token) = connect(&mut server, clock.ms(0), 1, "60000");
    let out = frame(&mut server, clock.ms(10), 1, "1d");
    assert_eq!(wire_of(&out), ["tx:1:1c", "close:1"]);
    assert_eq!(
        events_of(&out),
        [
            ServerEvent {
                conn: Some(ConnectionId(1)),
                session_id: Some(id),
                kind: ServerEventKind::CloseRequested
            },
            ServerEvent {
                conn: Some(ConnectionId(1)),
                session_id: Some(id),
                kind: ServerEventKind::SessionClosed {
                    reason: ServerCloseReason::ClientRequested
                }
            }
        ]
    );
    // The adapter's late closure report is ignored, and the session cannot be resumed.
    server.handle_closed(clock.ms(11), ConnectionId(1));
    assert!(drain(&mut server).is_empty());
    let (outcome, out) = reconnect(&mut server, clock.ms(20), 2, &token, "0", "0");
    assert_eq!(
        outcome,
        AcceptOutcome::Rejected {
            code: ResponseCode::UnknownSession
        }
    );
    assert_eq!(wire_of(&out), ["tx:2:231975", "close:2"]);
}

#[test]
fn reconnect_answers_105_with_s_and_resends_after_ss() {
    let clock = Clock::new();
    let mut server = server();
    let (id, token) = connect(&mut server, clock.ms(0), 1, "60000");
    frame(&mut server, clock.ms(1), 1, "003801"); // client #1; server #1 = 0601
    server.handle_timeout(clock.ms(90_000)); // server #2 = 003701
    drain(&mut server);
    frame(&mut server, clock.ms(90_001), 1, "0601"); // client #2
    let cid = server.send_request(
        clock.ms(90_002),
        ConnectionId(1),
        ServiceId::USER_PING,
        Bytes::new(),
    );
    assert_eq!(cid, Some(2)); // server #3 = 003802
    assert!(server.send(
        ConnectionId(1),
        Message::TopicValue {
            topic_id: 521,
            compressed: false,
            payload: Bytes::from_static(b"\x65Hello"),
        }
    )); // server #4
    drain(&mut server);
    server.handle_closed(clock.ms(91_000), ConnectionId(1));
    let out = drain(&mut server);
    assert_eq!(
        events_of(&out),
        [ServerEvent {
            conn: Some(ConnectionId(1)),
            session_id: Some(id),
            kind: ServerEventKind::Detached {
                expires: Some(clock.ms(151_000))
            }
        }]
    );
    assert_eq!(server.poll_timeout(), Some(clock.ms(151_000)));
    // The client got messages 1 and 2 only, and still holds its own from 1.
    let (outcome, out) = reconnect(&mut server, clock.ms(92_000), 2, &token, "1", "2");
    assert_eq!(
        outcome,
        AcceptOutcome::Accepted {
            session_id: id,
            code: ResponseCode::Reconnected,
            replaced: None
        }
    );
    let wire = wire_of(&out);
    assert_eq!(wire.len(), 3, "{wire:?}");
    let response = unhex(wire[0].trim_start_matches("tx:2:"));
    assert_eq!(response.len(), 55);
    assert_eq!(hex::encode(&response[..3]), "231969");
    assert_eq!(&response[19..43], token.as_bytes());
    assert_eq!(hex::encode(&response[51..55]), "00000003"); // S = 2 received + 1
    assert_eq!(wire[1], "tx:2:003802");
    assert_eq!(wire[2], "tx:2:04000002096548656c6c6f"); // topic 521, CBOR "Hello"
    assert!(matches!(
        events_of(&out).as_slice(),
        [ServerEvent {
            kind: ServerEventKind::Reconnected {
                code: ResponseCode::Reconnected,
                resent: 2,
                replaced: None,
                ..
            },
            ..
        }]
    ));
    // The session carries on: the re-sent USER_PING's answer is matched, numbering goes on.
    let out = frame(&mut server, clock.ms(92_001), 2, "0602");
    assert!(matches!(
        events_of(&out).as_slice(),
        [ServerEvent {
            kind: ServerEventKind::ResponseReceived {
                cid: 2,
                service: ServiceId::USER_PING,
                ..
            },
            ..
        }]
    ));
    let info = server.session(id).unwrap();
    assert_eq!((info.client_sequence, info.server_sequence), (3, 4));
    assert_eq!(info.connection, Some(ConnectionId(2)));
    assert_eq!(server.poll_timeout(), Some(clock.ms(182_000)));
    assert_eq!(info.stats.reconnections, 1);
    assert_eq!(info.stats.messages_resent, 2);
}

#[test]
fn reconnect_with_nothing_missing_resends_nothing() {
    let clock = Clock::new();
    let mut server = server();
    let (_, token) = connect(&mut server, clock.ms(0), 1, "60000");
    server.handle_closed(clock.ms(1), ConnectionId(1));
    drain(&mut server);
    let (outcome, out) = reconnect(&mut server, clock.ms(2), 2, &token, "0", "0");
    assert!(matches!(
        outcome,
        AcceptOutcome::Accepted {
            code: ResponseCode::Reconnected,
            ..
        }
    ));
    let wire = wire_of(&out);
    assert_eq!(wire.len(), 1);
    assert!(wire[0].ends_with("00000001"), "{wire:?}"); // S = 0 received + 1
}

#[test]
fn lost_server_messages_give_106_and_reset_the_sequences() {
    let clock = Clock::new();
    let mut server = server_with(ServerConfig {
        recovery_buffer: 1,
        ..ServerConfig::default()
    });
    let (id, token) = connect(&mut server, clock.ms(0), 1, "60000");
    frame(&mut server, clock.ms(1), 1, "003801");
    frame(&mut server, clock.ms(2), 1, "003802");
    server.handle_closed(clock.ms(3), ConnectionId(1));
    drain(&mut server);
    // The client missed both answers; only the second is still buffered.
    let (outcome, out) = reconnect(&mut server, clock.ms(4), 2, &token, "1", "0");
    assert!(matches!(
        outcome,
        AcceptOutcome::Accepted {
            code: ResponseCode::ReconnectedWithMessageLoss,
            ..
        }
    ));
    let wire = wire_of(&out);
    assert_eq!(wire.len(), 1);
    assert!(
        wire[0].starts_with("tx:2:23196a") && wire[0].ends_with("00989680"),
        "{wire:?}"
    );
    let info = server.session(id).unwrap();
    assert_eq!((info.client_sequence, info.server_sequence), (0, 0));
    // An `ss` beyond what was sent is loss too.
    server.handle_closed(clock.ms(5), ConnectionId(2));
    drain(&mut server);
    let (outcome, _) = reconnect(&mut server, clock.ms(6), 3, &token, "0", "5");
    assert!(matches!(
        outcome,
        AcceptOutcome::Accepted {
            code: ResponseCode::ReconnectedWithMessageLoss,
            ..
        }
    ));
}

#[test]
fn a_client_missing_messages_we_need_gets_118() {
    let clock = Clock::new();
    let mut server = server();
    let (id, token) = connect(&mut server, clock.ms(0), 1, "60000");
    frame(&mut server, clock.ms(1), 1, "003801");
    server.handle_closed(clock.ms(2), ConnectionId(1));
    drain(&mut server);
    // S = 2, but the client only holds its messages from 3 on.
    let (outcome, out) = reconnect(&mut server, clock.ms(3), 2, &token, "3", "1");
    assert_eq!(
        outcome,
        AcceptOutcome::Rejected {
            code: ResponseCode::ReconnectionFailedMessageLoss
        }
    );
    assert_eq!(wire_of(&out), ["tx:2:231976", "close:2"]);
    assert!(server.session(id).is_none());
}

#[test]
fn unknown_token_gets_117() {
    let clock = Clock::new();
    let mut server = server();
    connect(&mut server, clock.ms(0), 1, "60000");
    let (outcome, out) = reconnect(&mut server, clock.ms(1), 2, "ABCDEFGHIJKLMNOPQRSTUVWX", "0", "0");
    assert_eq!(
        outcome,
        AcceptOutcome::Rejected {
            code: ResponseCode::UnknownSession
        }
    );
    assert_eq!(wire_of(&out), ["tx:2:231975", "close:2"]);
    // The query form (v29) answers in its version.
    let uri = "/diffusion?ty=WB&v=29&ca=10&r=3000&c=ABCDEFGHIJKLMNOPQRSTUVWX&cs=1&ss=0";
    server.accept(clock.ms(1), ConnectionId(3), &UpgradeRequest::from_uri(uri));
    assert_eq!(wire_of(&drain(&mut server)), ["tx:3:231d75", "close:3"]);
}

#[test]
fn expired_detached_session_gets_117() {
    let clock = Clock::new();
    let mut server = server();
    let (id, token) = connect(&mut server, clock.ms(0), 1, "5000");
    server.handle_closed(clock.ms(1_000), ConnectionId(1));
    drain(&mut server);
    assert_eq!(server.poll_timeout(), Some(clock.ms(6_000)));
    server.handle_timeout(clock.ms(6_000));
    assert_eq!(
        events_of(&drain(&mut server)),
        [ServerEvent {
            conn: None,
            session_id: Some(id),
            kind: ServerEventKind::SessionClosed {
                reason: ServerCloseReason::ReconnectTimeout
            }
        }]
    );
    let (outcome, _) = reconnect(&mut server, clock.ms(6_001), 2, &token, "0", "0");
    assert_eq!(
        outcome,
        AcceptOutcome::Rejected {
            code: ResponseCode::UnknownSession
        }
    );

    // Expired but not yet swept: still 117.
    let (_, token) = connect(&mut server, clock.ms(10_000), 3, "5000");
    server.handle_closed(clock.ms(10_000), ConnectionId(3));
    drain(&mut server);
    let (outcome, _) = reconnect(&mut server, clock.ms(15_000), 4, &token, "0", "0");
    assert_eq!(
        outcome,
        AcceptOutcome::Rejected {
            code: ResponseCode::UnknownSession
        }
    );
    assert_eq!(server.sessions().count(), 0);
}

#[test]
fn zero_reconnect_timeout_closes_on_connection_loss() {
    let clock = Clock::new();
    let mut server = server();
    let (id, _) = connect(&mut server, clock.ms(0), 1, "0");
    server.handle_closed(clock.ms(1), ConnectionId(1));
    let events = events_of(&drain(&mut server));
    assert_eq!(
        events.last(),
        Some(&ServerEvent {
            conn: None,
            session_id: Some(id),
            kind: ServerEventKind::SessionClosed {
                reason: ServerCloseReason::ConnectionLost
            }
        })
    );
    assert!(server.session(id).is_none());
}

#[test]
fn reconnection_takes_over_a_still_attached_session() {
    let clock = Clock::new();
    let mut server = server();
    let (id, token) = connect(&mut server, clock.ms(0), 1, "60000");
    frame(&mut server, clock.ms(1), 1, "003801");
    // The server never noticed conn 1 died; the answer 0601 went into the void.
    let (outcome, out) = reconnect(&mut server, clock.ms(2), 2, &token, "1", "0");
    assert_eq!(
        outcome,
        AcceptOutcome::Accepted {
            session_id: id,
            code: ResponseCode::Reconnected,
            replaced: Some(ConnectionId(1))
        }
    );
    let wire = wire_of(&out);
    assert_eq!(wire[0], "close:1");
    assert!(wire[1].starts_with("tx:2:231969") && wire[1].ends_with("00000002"));
    assert_eq!(wire[2], "tx:2:0601");
    assert_eq!(server.session_of(ConnectionId(1)), None);
    assert_eq!(server.session_of(ConnectionId(2)), Some(id));
    // The dead connection is forgotten: its frames and its closure change nothing.
    assert!(frame(&mut server, clock.ms(3), 1, "1d").is_empty());
    server.handle_closed(clock.ms(3), ConnectionId(1));
    assert!(drain(&mut server).is_empty());
    assert_eq!(server.session(id).unwrap().connection, Some(ConnectionId(2)));
}

#[test]
fn oversize_frame_is_a_protocol_error_that_closes() {
    let clock = Clock::new();
    let mut server = server_with(ServerConfig {
        max_message_size: 16,
        ..ServerConfig::default()
    });
    let (id, _) = connect(&mut server, clock.ms(0), 1, "60000");
    // Exactly the limit is fine.
    let ok = format!("003801{}", "00".repeat(13));
    assert_eq!(wire_of(&frame(&mut server, clock.ms(1), 1, &ok)), ["tx:1:0601"]);
    let big = format!("003802{}", "00".repeat(14));
    let out = frame(&mut server, clock.ms(2), 1, &big);
    assert_eq!(wire_of(&out), ["tx:1:1c", "close:1"]);
    let events = events_of(&out);
    assert!(matches!(
        events[0],
        ServerEvent {
            kind: ServerEventKind::ProtocolError { .. },
            ..
        }
    ));
    assert_eq!(
        events[1],
        ServerEvent {
            conn: Some(ConnectionId(1)),
            session_id: Some(id),
            kind: ServerEventKind::SessionClosed {
                reason: ServerCloseReason::MessageTooLarge { size: 17, limit: 16 }
            }
        }
    );
}

#[test]
fn undecodable_frames_close_and_unknown_types_are_ignored() {
    let clock = Clock::new();
    let mut server = server();
    let (id, _) = connect(&mut server, clock.ms(0), 1, "60000");
    // Types 34 and 63: ignored, but counted in the recovery sequence.
    assert!(frame(&mut server, clock.ms(1), 1, "2200").is_empty());
    assert!(frame(&mut server, clock.ms(1), 1, "3f").is_empty());
    let info = server.session(id).unwrap();
    assert_eq!((info.client_sequence, info.stats.ignored_messages), (2, 2));
    // A service request cut inside its varint.
    let out = frame(&mut server, clock.ms(2), 1, "0080");
    assert_eq!(wire_of(&out), ["tx:1:1c", "close:1"]);
    assert!(matches!(
        events_of(&out).as_slice(),
        [
            ServerEvent {
                kind: ServerEventKind::ProtocolError { .. },
                ..
            },
            ServerEvent {
                kind: ServerEventKind::SessionClosed {
                    reason: ServerCloseReason::ProtocolError(_),
                    ..
                },
                ..
            }
        ]
    ));
    // An empty frame too.
    connect(&mut server, clock.ms(3), 2, "60000");
    assert_eq!(
        wire_of(&frame(&mut server, clock.ms(4), 2, "")),
        ["tx:2:1c", "close:2"]
    );
}

#[test]
fn unknown_services_get_service_error_100() {
    let clock = Clock::new();
    let mut server = server();
    let (id, _) = connect(&mut server, clock.ms(0), 1, "60000");
    let out = frame(&mut server, clock.ms(1), 1, "008f4e03");
    let description = "Unknown service: 9999";
    let expected = format!(
        "tx:1:0703{:02x}{}64",
        description.len(),
        hex::encode(description.as_bytes())
    );
    assert_eq!(wire_of(&out), [expected]);
    assert_eq!(
        events_of(&out),
        [ServerEvent {
            conn: Some(ConnectionId(1)),
            session_id: Some(id),
            kind: ServerEventKind::UnknownService {
                service: ServiceId(9999),
                cid: 3
            }
        }]
    );
    // A registered service is the caller's to answer.
    server.register_service(ServiceId(9999));
    let out = frame(&mut server, clock.ms(2), 1, "008f4e04ab");
    assert!(wire_of(&out).is_empty());
    assert!(matches!(
        events_of(&out).as_slice(),
        [ServerEvent {
            kind: ServerEventKind::ServiceRequest {
                service: ServiceId(9999),
                cid: 4,
                ..
            },
            ..
        }]
    ));
    assert!(server.send(
        ConnectionId(1),
        Message::ServiceResponse {
            cid: 4,
            payload: Bytes::from_static(b"\x01")
        }
    ));
    assert_eq!(wire_of(&drain(&mut server)), ["tx:1:060401"]);
    // Topic messages from a client are surfaced, not answered.
    let out = frame(&mut server, clock.ms(3), 1, "04000000076162");
    assert!(matches!(
        events_of(&out).as_slice(),
        [ServerEvent {
            kind: ServerEventKind::MessageReceived { .. },
            ..
        }]
    ));
}

#[test]
fn change_principal_and_properties_services() {
    let clock = Clock::new();
    let mut server = server();
    let (id, _) = connect(&mut server, clock.ms(0), 1, "60000");
    // SPEC §6: CHANGE_PRINCIPAL cid 7, "admin" / PLAIN "password".
    let out = frame(
        &mut server,
        clock.ms(1),
        1,
        "0005070561646d696e010870617373776f7264",
    );
    assert_eq!(wire_of(&out), ["tx:1:060701"]);
    assert!(!format!("{out:?}").contains("password"));
    assert_eq!(server.session(id).unwrap().principal.as_deref(), Some("admin"));
    // RE_AUTHENTICATE cid 8 with a wrong password: false, principal unchanged.
    let out = frame(
        &mut server,
        clock.ms(2),
        1,
        "00cb01080561646d696e0105776f726e6700",
    );
    assert_eq!(wire_of(&out), ["tx:1:060800"]);
    assert_eq!(server.session(id).unwrap().principal.as_deref(), Some("admin"));
    // Malformed: INVALID_DATA (106 = 0x6a).
    let out = frame(&mut server, clock.ms(3), 1, "00050905");
    assert!(wire_of(&out)[0].starts_with("tx:1:0709") && wire_of(&out)[0].ends_with("6a"));
    // GET_OWN_SESSION_PROPERTIES.
    let out = frame(&mut server, clock.ms(4), 1, "00ca010a");
    let [ServerOutput::Transmit { frame: reply, .. }] = out.as_slice() else {
        panic!("{out:?}");
    };
    let Message::ServiceResponse { cid: 10, payload } = Message::decode(reply).unwrap() else {
        panic!("{reply:?}");
    };
    let mut r = Reader::new(&payload);
    assert!(r.boolean().unwrap());
    let map = r.string_map().unwrap();
    assert!(map.contains(&("$Principal".to_owned(), "admin".to_owned())));
    assert!(map.contains(&("$SessionId".to_owned(), id.to_string())));
    assert!(map.contains(&("$Environment".to_owned(), "PYTHON_cpython_3.11.7".to_owned())));
}

#[test]
fn abort_drop_and_forget() {
    let clock = Clock::new();
    let mut server = server();
    let (a, _) = connect(&mut server, clock.ms(0), 1, "60000");
    server.abort(ConnectionId(1));
    let out = drain(&mut server);
    assert_eq!(wire_of(&out), ["tx:1:1c", "close:1"]);
    assert!(server.session(a).is_none());

    let (b, token) = connect(&mut server, clock.ms(0), 2, "60000");
    server.drop_connection(clock.ms(1), ConnectionId(2));
    assert_eq!(wire_of(&drain(&mut server)), ["close:2"]);
    assert_eq!(server.session(b).unwrap().connection, None);
    // A message sent while detached is buffered and re-sent on reconnection.
    assert!(server.send_to_session(
        b,
        Message::TopicDelta {
            topic_id: 7,
            compressed: false,
            payload: Bytes::from_static(b"ab")
        }
    ));
    assert!(drain(&mut server).is_empty());
    let (outcome, out) = reconnect(&mut server, clock.ms(2), 3, &token, "0", "0");
    assert!(matches!(
        outcome,
        AcceptOutcome::Accepted {
            code: ResponseCode::Reconnected,
            ..
        }
    ));
    assert_eq!(wire_of(&out)[1], "tx:3:05000000076162");

    server.forget_session(b);
    assert_eq!(wire_of(&drain(&mut server)), ["close:3"]);
    let (outcome, _) = reconnect(&mut server, clock.ms(3), 4, &token, "0", "1");
    assert_eq!(
        outcome,
        AcceptOutcome::Rejected {
            code: ResponseCode::UnknownSession
        }
    );
}

#[test]
fn ping_period_zero_disables_pings() {
    let clock = Clock::new();
    let mut server = server_with(ServerConfig {
        ping_period: Duration::ZERO,
        ..ServerConfig::default()
    });
    let headers = py_headers(&[]);
    server.accept(
        clock.ms(0),
        ConnectionId(1),
        &request("/diffusion", None, &headers),
    );
    let out = drain(&mut server);
    let ServerOutput::Transmit { frame, .. } = &out[0] else {
        panic!()
    };
    assert_eq!(hex::encode(&frame[43..51]), "0000000000000000");
    assert_eq!(server.poll_timeout(), None);
}

#[test]
fn no_secret_in_debug_or_events() {
    let clock = Clock::new();
    let mut server = server();
    let headers = py_headers(&[("username", "bob"), ("password", "AQZzZWNyZXQ=")]);
    let request = request("/diffusion", None, &headers);
    server.accept(clock.ms(0), ConnectionId(1), &request);
    let out = drain(&mut server);
    let ServerOutput::Transmit { frame, .. } = &out[0] else {
        panic!()
    };
    let token = String::from_utf8(frame[19..43].to_vec()).unwrap();
    let shown = format!(
        "{out:?} {server:?} {request:?} {:?} {:?}",
        users(),
        server.sessions().collect::<Vec<_>>()
    );
    // ("password" itself is a header name, shown; its value is not.)
    for secret in [token.as_str(), "secret", "AQZzZWNyZXQ="] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
}

#[test]
fn distinct_ids_and_tokens_from_constant_entropy() {
    let clock = Clock::new();
    let mut server = Server::new(
        ServerConfig::default(),
        Box::new(AllowAll),
        Box::new(|b: &mut [u8]| b.fill(0)),
    );
    let mut tokens = BTreeSet::new();
    for conn in 0..5 {
        let (id, token) = connect(&mut server, clock.ms(0), conn, "60000");
        assert_eq!(id.value, conn);
        assert!(tokens.insert(token));
    }
}

#[test]
fn counter_entropy_is_the_counter() {
    let mut e = CounterEntropy::default();
    let mut eight = [0u8; 8];
    e.fill(&mut eight);
    assert_eq!(u64::from_be_bytes(eight), 1);
    let mut longer = [0u8; 10];
    e.fill(&mut longer);
    assert_eq!(hex::encode(longer), "00020000000000000002");
}

fn any_headers() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    // The connection parameter names the server reads (SPEC §2.3), so that the arbitrary
    // headers often carry one.
    let names: Vec<&str> = diffusion_proto::RawParams::names().collect();
    let name = prop_oneof![
        proptest::sample::select(names).prop_map(str::to_owned),
        "[A-Za-z-]{1,8}",
    ];
    proptest::collection::vec((name, proptest::collection::vec(any::<u8>(), 0..40)), 0..8)
}

proptest! {
    #[test]
    fn arbitrary_requests_and_frames_never_panic(
        path in prop_oneof![Just("/diffusion".to_owned()), ".{0,20}"],
        query in proptest::option::of(prop_oneof![
            ".{0,80}",
            "(v=(25|29|2[0-9])&)?(c=[A-Za-z0-9+/]{24}&)?(cs=-?[0-9]{1,3}&)?(ss=-?[0-9]{1,3}&)?r=[0-9]{0,6}",
        ]),
        headers in any_headers(),
        frames in proptest::collection::vec((0u8..6, proptest::collection::vec(any::<u8>(), 0..24)), 0..24),
    ) {
        let clock = Clock::new();
        let mut server = server_with(ServerConfig {
            ping_period: Duration::from_millis(100),
            max_message_size: 20,
            recovery_buffer: 3,
            ..ServerConfig::default()
        });
        let (_, token) = connect(&mut server, clock.ms(0), 0, "150");
        let request = UpgradeRequest {
            path: &path,
            query: query.as_deref(),
            headers: headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect(),
        };
        server.accept(clock.ms(0), ConnectionId(1), &request);
        let mut t = 0;
        for (op, bytes) in frames {
            t += 37;
            let conn = ConnectionId(u64::from(op % 2));
            match op {
                0 | 1 => server.handle_frame(clock.ms(t), conn, bytes.into()),
                2 => server.handle_timeout(clock.ms(t)),
                3 => server.handle_closed(clock.ms(t), conn),
                4 => {
                    let ss = bytes.first().copied().unwrap_or(0).to_string();
                    let cs = bytes.get(1).copied().unwrap_or(0).to_string();
                    reconnect(&mut server, clock.ms(t), u64::from(bytes.len() as u8 % 3), &token, &cs, &ss);
                }
                _ => {
                    server.send_request(clock.ms(t), conn, ServiceId::USER_PING, bytes.into());
                }
            }
            let out = drain(&mut server);
            // Every transmit is either a connection response or a decodable message.
            for o in &out {
                if let ServerOutput::Transmit { frame, .. } = o {
                    prop_assert!(frame.first() == Some(&0x23) || Message::decode(frame).is_ok());
                }
            }
            prop_assert!(server.poll_timeout().is_none() || server.sessions().count() > 0);
        }
    }
}
