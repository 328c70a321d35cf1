//! Criterion benchmarks of the topic building blocks on the paths that run per value: typed
//! decoding (the client must read ≥ 1 000 000 small JSON values per second on one session),
//! binary deltas, and selector matching (a server matches every topic against every
//! session's selectors). `cargo bench -p diffusion-proto --bench topics`.

// A benchmark harness: a failure here is a bug in the benchmark, so it may panic.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use diffusion_proto::{apply_delta, produce_delta, DecodeValue, EncodeValue, Json, Selector};
use serde::Deserialize;

/// `{"a":1,"b":[true,null]}` as both official clients encode it (TOPICS §3.2).
const SMALL: &[u8] = &[0xbf, 0x61, 0x61, 0x01, 0x61, 0x62, 0x9f, 0xf5, 0xf6, 0xff, 0xff];

#[derive(Deserialize)]
#[allow(dead_code)]
struct Small {
    a: i64,
    b: Vec<Option<bool>>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Quote {
    symbol: String,
    price: f64,
    volume: i64,
    bid: Vec<f64>,
    ask: Vec<f64>,
    ts: i64,
    venue: String,
    flags: Flags,
    note: String,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Flags {
    open: bool,
    halted: bool,
}

/// A ~100-byte object, written with definite lengths by our encoder.
fn quote() -> Bytes {
    serde_json::json!({
        "symbol": "ACME.L", "price": 123.45, "volume": 100000, "bid": [123.4, 123.35],
        "ask": [123.5, 123.55], "ts": 1_700_000_000_000i64, "venue": "LSE",
        "flags": {"open": true, "halted": false}, "note": "ok"
    })
    .encode_value()
    .unwrap()
}

fn values(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(1));
    let small = Bytes::from_static(SMALL);
    let quote = quote();
    g.bench_function("small JSON → serde_json::Value", |b| {
        b.iter(|| serde_json::Value::decode_value(black_box(&small)).unwrap())
    });
    g.bench_function("small JSON → Json<struct>", |b| {
        b.iter(|| Json::<Small>::decode_value(black_box(&small)).unwrap())
    });
    g.bench_function(format!("{}-byte JSON → serde_json::Value", quote.len()), |b| {
        b.iter(|| serde_json::Value::decode_value(black_box(&quote)).unwrap())
    });
    g.bench_function(format!("{}-byte JSON → Json<struct>", quote.len()), |b| {
        b.iter(|| Json::<Quote>::decode_value(black_box(&quote)).unwrap())
    });
    let string = "hello world".encode_value().unwrap();
    g.bench_function("STRING → String", |b| {
        b.iter(|| String::decode_value(black_box(&string)).unwrap())
    });
    let int = 1_700_000_000_000i64.encode_value().unwrap();
    g.bench_function("INT64 → i64", |b| {
        b.iter(|| i64::decode_value(black_box(&int)).unwrap())
    });
    g.finish();
}

fn deltas(c: &mut Criterion) {
    let mut g = c.benchmark_group("delta");
    let old: Vec<u8> = (0..1024u32).map(|i| (i % 251) as u8).collect();
    let mut new = old.clone();
    new[512] ^= 0xff;
    let delta = produce_delta(&old, &new).unwrap();
    g.throughput(Throughput::Bytes(old.len() as u64));
    g.bench_function("produce, 1 KiB, one byte changed", |b| {
        b.iter(|| produce_delta(black_box(&old), black_box(&new)).unwrap())
    });
    g.bench_function("apply, 1 KiB, one byte changed", |b| {
        b.iter(|| apply_delta(black_box(&old), black_box(&delta), 1 << 20).unwrap())
    });
    g.finish();
}

fn selectors(c: &mut Criterion) {
    let mut g = c.benchmark_group("selector");
    g.throughput(Throughput::Elements(1));
    let path = "prices/equities/ACME.L/bid";
    for expression in [
        ">prices/equities/ACME.L/bid",
        "?prices/equities//",
        "?prices/.*/ACME\\..*/bid",
        "*prices/.*/bid",
        "#>a////>b////?prices/equities/",
    ] {
        let selector = Selector::parse(expression).unwrap();
        g.bench_function(format!("{expression} matches a 4-segment path"), |b| {
            b.iter(|| black_box(&selector).matches(black_box(path)))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = values, deltas, selectors
}
criterion_main!(benches);
