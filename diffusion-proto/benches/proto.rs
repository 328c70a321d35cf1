//! Criterion benchmarks of the sans-IO core: the handshake both ways, the message codec,
//! credentials, and a whole in-memory session of `ClientSession` against `Server`.

// A benchmark harness: a failure here is a bug in the benchmark, so it may panic.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use diffusion_proto::testing::Pair;
use diffusion_proto::{
    ClientConfig, ClientSession, ConnectRequest, ConnectionParams, ConnectionResponse, Credentials, Event,
    Message, Output, ProtocolVersion, ResponseCode, ServiceId, SessionGrant, SessionId, SessionToken,
};
use diffusion_proto::{ServerConfig, UserTable};

/// A first connect with a principal, a password and two properties, as a real client sends it.
fn request(version: ProtocolVersion) -> ConnectRequest {
    let mut config = ClientConfig::new("ws://127.0.0.1:8080")
        .unwrap()
        .with_version(version);
    config.principal = Some("admin".into());
    config.credentials = Credentials::password("secret");
    config.properties.insert("region", "eu").unwrap();
    config.properties.insert("team", "blue green").unwrap();
    let mut session = ClientSession::new(config, Instant::now());
    match session.poll_output() {
        Some(Output::Connect(request)) => request,
        other => panic!("expected a connect, got {other:?}"),
    }
}

fn grant() -> ConnectionResponse {
    ConnectionResponse::Accepted(SessionGrant {
        code: ResponseCode::Ok,
        session_id: SessionId {
            server: 0x1122_3344_5566_7788,
            value: 42,
        },
        token: SessionToken::new(*b"ABCDEFGHIJKLMNOPQRSTUVWX"),
        ping_period_ms: 90_000,
        last_field: diffusion_proto::LastField::MaxMessageSize(10_000_000),
    })
}

fn handshake(c: &mut Criterion) {
    let mut g = c.benchmark_group("handshake");
    for version in [ProtocolVersion::V25, ProtocolVersion::V29] {
        let request = request(version);
        g.bench_function(format!("build_request_v{}", version.number()), |b| {
            b.iter(|| {
                let r = black_box(&request);
                (r.uri(), r.headers())
            })
        });
        let uri = request.uri();
        let headers = request.headers();
        let query = uri.split_once('?').map(|(_, q)| q.to_owned());
        g.bench_function(format!("parse_request_v{}", version.number()), |b| {
            b.iter(|| {
                let headers = headers.iter().map(|(n, v)| (*n, v.as_bytes()));
                ConnectionParams::parse(black_box(query.as_deref()), headers).unwrap()
            })
        });
        let response = grant();
        g.bench_function(format!("build_response_v{}", version.number()), |b| {
            b.iter(|| black_box(&response).encode(version))
        });
        let frame = response.encode(version);
        g.bench_function(format!("parse_response_v{}", version.number()), |b| {
            b.iter(|| ConnectionResponse::parse(black_box(&frame), version).unwrap())
        });
    }
    g.finish();
}

fn messages(c: &mut Criterion) {
    let mut g = c.benchmark_group("message");
    let cases = [
        (
            "user_ping",
            Message::ServiceRequest {
                service: ServiceId::USER_PING,
                cid: 123_456,
                payload: Bytes::new(),
            },
        ),
        (
            "ping_response",
            Message::ServiceResponse {
                cid: 123_456,
                payload: Bytes::new(),
            },
        ),
        (
            "request_1k",
            Message::ServiceRequest {
                service: ServiceId(99),
                cid: 7,
                payload: Bytes::from(vec![0x5a; 1024]),
            },
        ),
        (
            "service_error",
            Message::ServiceError {
                cid: 7,
                description: "Unknown client service: 9999".into(),
                reason: diffusion_proto::ErrorReason::COMMUNICATION_FAILURE,
            },
        ),
    ];
    for (name, message) in cases {
        g.throughput(Throughput::Bytes(message.encoded_len() as u64));
        g.bench_function(format!("encode_{name}"), |b| {
            let mut out = BytesMut::with_capacity(4096);
            b.iter(|| {
                out.clear();
                black_box(&message).encode(&mut out);
                black_box(out.len())
            })
        });
        g.bench_function(format!("to_bytes_{name}"), |b| {
            b.iter(|| black_box(&message).to_bytes())
        });
        let frame = message.to_bytes();
        g.bench_function(format!("decode_{name}"), |b| {
            b.iter(|| Message::decode(black_box(&frame)).unwrap())
        });
    }
    g.finish();
}

fn credentials(c: &mut Criterion) {
    let mut g = c.benchmark_group("credentials");
    for (name, credentials) in [
        ("password", Credentials::password("correct horse battery staple")),
        ("custom_64", Credentials::custom(vec![0xa5; 64])),
    ] {
        g.bench_function(format!("to_param_{name}"), |b| {
            b.iter(|| black_box(&credentials).to_param())
        });
        let param = credentials.to_param();
        g.bench_function(format!("from_param_{name}"), |b| {
            b.iter(|| Credentials::from_param(black_box(&param)).unwrap())
        });
    }
    g.finish();
}

/// A client and the server in memory, every frame handed across at once: connected.
fn connected() -> Pair {
    let config = ClientConfig::new("ws://h:1").unwrap();
    let mut pair = Pair::with(config, ServerConfig::default(), UserTable::new(), Duration::ZERO);
    pair.settle();
    pair
}

/// How many requests were answered successfully.
fn answered(pair: &Pair) -> usize {
    pair.events
        .iter()
        .filter(|e| matches!(e, Event::Response { result: Ok(_), .. }))
        .count()
}

fn session(c: &mut Criterion) {
    const PINGS: u64 = 1000;
    let mut g = c.benchmark_group("session");
    g.bench_function("connect", |b| {
        b.iter(|| {
            let pair = connected();
            assert!(pair.client.session_id().is_some());
            pair
        })
    });
    g.throughput(Throughput::Elements(PINGS));
    g.bench_function("connect_and_1000_pings", |b| {
        b.iter(|| {
            let mut pair = connected();
            for _ in 0..PINGS {
                pair.client.ping(pair.now, SystemTime::UNIX_EPOCH).unwrap();
                pair.pump();
                pair.settle();
            }
            assert_eq!(answered(&pair) as u64, PINGS);
            pair
        })
    });
    // 1000 pings on a connected session, all sent before any is answered (pipelined).
    g.bench_function("1000_pings_pipelined", |b| {
        b.iter_batched(
            connected,
            |mut pair| {
                for _ in 0..PINGS {
                    pair.client.ping(pair.now, SystemTime::UNIX_EPOCH).unwrap();
                }
                pair.pump();
                pair.settle();
                assert_eq!(answered(&pair) as u64, PINGS);
                pair
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, handshake, messages, credentials, session);
criterion_main!(benches);
