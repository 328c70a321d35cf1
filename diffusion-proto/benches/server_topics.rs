//! Criterion benchmarks of the server's topic path, sans IO: a SET_TOPIC frame in, the
//! answer and every subscriber's frame out (the benchmark pushes ≥ 1 000 000 values per
//! second through the test server, and fans one update out to 1 000 sessions).
//! `cargo bench -p diffusion-proto --bench server_topics`.

// A benchmark harness: a failure here is a bug in the benchmark, so it may panic.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use diffusion_proto::{
    AllowAll, ConnectionId, CounterEntropy, EncodeValue, Message, ProtocolVersion, Server, ServerConfig,
    ServerOutput, ServiceCall, SetTopicRequest, SubscribeRequest, TopicSpecification, TopicType,
    UpdateConstraint, UpgradeRequest,
};

fn frame<C: ServiceCall>(cid: i64, request: &C) -> Bytes {
    Message::ServiceRequest {
        service: C::SERVICE,
        cid,
        payload: request.to_bytes(ProtocolVersion::V29).unwrap(),
    }
    .to_bytes()
}

/// A server with `subscribers` sessions subscribed to `t` (connections 1…), plus a
/// publisher on connection 0.
fn server(subscribers: u64, topic_type: TopicType) -> (Server, Instant) {
    let now = Instant::now();
    let mut server = Server::new(
        ServerConfig::default(),
        Box::new(AllowAll),
        Box::new(CounterEntropy::default()),
    );
    server
        .add_topic("t", TopicSpecification::new(topic_type))
        .unwrap();
    for conn in 0..=subscribers {
        server.accept(
            now,
            ConnectionId(conn),
            &UpgradeRequest::from_uri("/diffusion?v=29&ty=JS&ca=8&r=60000"),
        );
        if conn > 0 {
            server.handle_frame(now, ConnectionId(conn), frame(1, &SubscribeRequest::new("t")));
        }
    }
    while server.poll_output().is_some() {}
    (server, now)
}

fn set_frames(values: [Bytes; 2], topic_type: TopicType) -> [Bytes; 2] {
    values.map(|value| {
        frame(
            7,
            &SetTopicRequest {
                path: "t".into(),
                topic_type,
                value,
                constraint: UpdateConstraint::Unconstrained,
            },
        )
    })
}

/// Feeds the two SET frames in turn (so each one changes the value) and drains everything.
fn run(c: &mut Criterion, name: &str, subscribers: u64, topic_type: TopicType, values: [Bytes; 2]) {
    let (mut server, now) = server(subscribers, topic_type);
    let frames = set_frames(values, topic_type);
    let mut g = c.benchmark_group("server_set");
    g.throughput(Throughput::Elements(subscribers.max(1)));
    let mut i = 0;
    g.bench_function(name, |b| {
        b.iter(|| {
            i ^= 1;
            server.handle_frame(now, ConnectionId(0), frames[i].clone());
            let mut sent = 0;
            while let Some(output) = server.poll_output() {
                if let ServerOutput::Transmit { frame, .. } = output {
                    sent += frame.len();
                }
            }
            black_box(sent)
        })
    });
    g.finish();
}

fn sets(c: &mut Criterion) {
    let small = |s: &str| s.encode_value().unwrap();
    run(
        c,
        "string_16B_1_subscriber",
        1,
        TopicType::String,
        [small("fifteen bytes..."), small("fifteen bytes!!!")],
    );
    // A ~100-byte JSON value changed in one byte: published as a delta.
    let long = |n: i64| {
        serde_json::json!({"symbol": "ACME.L", "volume": n, "note": "x".repeat(60)})
            .encode_value()
            .unwrap()
    };
    run(
        c,
        "json_100B_delta_1_subscriber",
        1,
        TopicType::Json,
        [long(1), long(2)],
    );
    run(
        c,
        "string_16B_1000_subscribers",
        1000,
        TopicType::String,
        [small("fifteen bytes..."), small("fifteen bytes!!!")],
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = sets
}
criterion_main!(benches);
