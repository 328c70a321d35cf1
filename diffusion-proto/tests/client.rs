//! `ClientSession` on its own: random input sequences make only the transitions of SPEC
//! §11.3 and end every request exactly once; size limits and system pings by the byte.

// Harness code outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use diffusion_proto::testing::Checker;
use diffusion_proto::{
    ClientConfig, ClientSession, ConnectionResponse, ErrorReason, Event, LastField, Message, Output,
    ProtocolVersion, ResponseCode, ServiceId, SessionError, SessionGrant, SessionId, SessionToken,
    TransportError,
};
use proptest::prelude::*;

/// Frames a server might send: well-formed messages with conversation ids that hit the
/// client's requests, and arbitrary bytes.
fn any_frame() -> impl Strategy<Value = Bytes> {
    let cid = 0i64..12;
    prop_oneof![
        (proptest::sample::select(vec![55, 56, 87, 9999]), cid.clone()).prop_map(|(service, cid)| {
            Message::ServiceRequest {
                service: ServiceId(service),
                cid,
                payload: Bytes::new(),
            }
            .to_bytes()
        }),
        cid.clone().prop_map(|cid| Message::ServiceResponse {
            cid,
            payload: Bytes::new()
        }
        .to_bytes()),
        (cid, any::<i32>()).prop_map(|(cid, reason)| {
            Message::ServiceError {
                cid,
                description: "boom".into(),
                reason: ErrorReason(reason),
            }
            .to_bytes()
        }),
        (any::<i32>(), any::<bool>()).prop_map(|(topic_id, compressed)| {
            Message::TopicValue {
                topic_id,
                compressed,
                payload: Bytes::from_static(b"v"),
            }
            .to_bytes()
        }),
        Just(Message::Abort.to_bytes()),
        Just(Message::CloseRequest.to_bytes()),
        proptest::collection::vec(any::<u8>(), 0..8).prop_map(Bytes::from),
    ]
}

fn grant(code: ResponseCode, last_field: u32) -> Bytes {
    ConnectionResponse::Accepted(SessionGrant {
        code,
        session_id: SessionId { server: 1, value: 2 },
        token: SessionToken::new(*b"ABCDEFGHIJKLMNOPQRSTUVWX"),
        ping_period_ms: 1000,
        last_field: LastField::for_code(code, last_field),
    })
    .encode(ProtocolVersion::V25)
}

fn drain(s: &mut ClientSession) -> Vec<Output> {
    std::iter::from_fn(|| s.poll_output()).collect()
}

/// One input of the transition property.
#[derive(Debug, Clone)]
enum Input {
    Frame(Bytes),
    Response(u8, u32),
    Advance(u64),
    TransportClosed,
    Ping,
    Invoke(usize),
    Close,
}

fn any_input() -> impl Strategy<Value = Input> {
    prop_oneof![
        any_frame().prop_map(Input::Frame),
        (
            proptest::sample::select(vec![100u8, 105, 106, 116, 117, 118, 102]),
            0u32..8
        )
            .prop_map(|(c, f)| Input::Response(c, f)),
        (0u64..5000).prop_map(Input::Advance),
        Just(Input::TransportClosed),
        Just(Input::Ping),
        (0usize..3000).prop_map(Input::Invoke),
        Just(Input::Close),
    ]
}

proptest! {
    /// From any state, any input sequence: no panic, only §11.3 transitions, and every
    /// request ends exactly once (a response, an error or the session's end).
    #[test]
    fn random_inputs_make_only_legal_transitions(inputs in proptest::collection::vec(any_input(), 0..60),
                                                  reconnect: bool, timeout: bool) {
        let t0 = Instant::now();
        let mut now = t0;
        let mut config = ClientConfig::new("ws://h:1").unwrap();
        if !reconnect { config.reconnect = None; }
        if timeout { config.request_timeout = Some(Duration::from_millis(700)); }
        let mut s = ClientSession::new(config, now);
        let mut check = Checker::default();
        check.drain(&mut s);
        for input in inputs {
            match input {
                Input::Frame(f) => s.handle_frame(now, f),
                Input::Response(code, f) => {
                    let frame = match ResponseCode::from_u8(code) {
                        Some(c) if c.opens_session() => grant(c, f),
                        _ => Bytes::from(vec![0x23, 25, code]),
                    };
                    s.handle_frame(now, frame)
                }
                Input::Advance(ms) => { now += Duration::from_millis(ms); s.handle_timeout(now) }
                Input::TransportClosed => s.handle_transport_closed(now, TransportError::Ended),
                Input::Ping => { if let Ok(id) = s.ping(now, SystemTime::UNIX_EPOCH) { check.issued(id); } }
                Input::Invoke(n) => {
                    if let Ok(id) = s.invoke(now, SystemTime::UNIX_EPOCH, ServiceId(99), Bytes::from(vec![0; n])) {
                        check.issued(id);
                    }
                }
                Input::Close => s.close(now),
            }
            // Only §11.3 transitions, every request ended exactly once, nothing pending or
            // timed once closed.
            check.drain(&mut s);
        }
    }
}

/// A session connected at `now` by a 100 whose maximum message size is `max`.
fn connected(now: Instant, max: u32) -> ClientSession {
    let mut s = ClientSession::new(ClientConfig::new("ws://h:1").unwrap(), now);
    drain(&mut s);
    s.handle_frame(now, grant(ResponseCode::Ok, max));
    drain(&mut s);
    s
}

#[test]
fn oversize_request_is_refused_and_nothing_is_sent() {
    let now = Instant::now();
    let mut s = connected(now, 64);
    let err = s
        .invoke(
            now,
            SystemTime::UNIX_EPOCH,
            ServiceId(99),
            Bytes::from(vec![0; 64]),
        )
        .unwrap_err();
    assert_eq!(err, SessionError::MessageTooLarge { size: 67, limit: 64 });
    assert!(drain(&mut s).is_empty());
    assert_eq!(s.pending_requests(), 0);
}

#[test]
fn system_ping_is_answered_whatever_its_cid_and_other_cid0_requests_are_not() {
    let now = Instant::now();
    let mut s = connected(now, 1000);
    s.handle_frame(now, Bytes::from_static(&[0x00, 0x37, 0x00]));
    assert_eq!(
        drain(&mut s),
        [
            Output::Transmit(Bytes::from_static(&[0x06, 0x00])),
            Output::Event(Event::SystemPingAnswered)
        ]
    );
    s.handle_frame(now, Bytes::from_static(&[0x00, 0x38, 0x00]));
    s.handle_frame(now, Bytes::from_static(&[0x00, 0x57, 0x00]));
    assert!(drain(&mut s).is_empty());
    // An unknown service with a real cid gets SERVICE_ERROR 100, as the JS client answers.
    s.handle_frame(
        now,
        Message::ServiceRequest {
            service: ServiceId(9999),
            cid: 3,
            payload: Bytes::new(),
        }
        .to_bytes(),
    );
    let out = drain(&mut s);
    let expected = "07031c556e6b6e6f776e20636c69656e7420736572766963653a203939393964";
    let Output::Transmit(frame) = &out[0] else {
        panic!("{out:?}")
    };
    let hex: String = frame.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, expected);
}
