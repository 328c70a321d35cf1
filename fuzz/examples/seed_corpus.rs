//! Writes the seed corpora of every target under `fuzz/corpus/<target>/seed-*` from the
//! protocol vectors in `diffusion-proto/testdata/vectors` (real captures and the live topic
//! transcripts included): `cargo run --example seed_corpus`.
//
// Seeds are rewritten on every run (old `seed-*` files are removed first); other corpus
// files, those the fuzzer found and `-merge=1` kept, are left alone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use arbitrary::Arbitrary;

use diffusion_proto::testing::{
    ClientScript, Edit, MessageOp, ResponseOp, SessionSetup, Step, TopicScript, TopicStep, TOPIC_IDS,
    TOPIC_PATHS,
};
use diffusion_proto::{
    ConnectionId, ConnectionResponse, CounterEntropy, Message, NotifySubscription, NotifyUnsubscription,
    ProtocolVersion, Server, ServerConfig, ServerOutput, ServiceId, ServicePayload, TopicSpecification,
    TopicType, UpgradeRequest, UserTable,
};
use serde_json::Value;

type Seeds = BTreeMap<String, Vec<u8>>;

fn main() {
    let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let vectors = fuzz.join("../diffusion-proto/testdata/vectors");
    let load = |name: &str| -> Value {
        let path = vectors.join(name);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let docs: Vec<(&str, Value)> = [
        "connection_response.json",
        "messages.json",
        "captures.json",
        "session_flows.json",
        "connection_request.json",
        "services.json",
    ]
    .into_iter()
    .map(|n| (n, load(n)))
    .collect();

    // Every hex string in the frame-bearing files, split into connection responses and messages.
    let mut responses = Seeds::new();
    let mut messages = Seeds::new();
    for (name, doc) in &docs {
        if *name == "connection_request.json" {
            continue;
        }
        let stem = name.trim_end_matches(".json");
        let mut found = Vec::new();
        collect_hex(doc, &mut found);
        for bytes in found {
            let target = if bytes.first() == Some(&b'#') || *name == "connection_response.json" {
                &mut responses
            } else {
                &mut messages
            };
            add_unique(target, stem, bytes);
        }
    }

    let upgrades = upgrade_seeds(&docs[4].1, &docs[3].1);
    let sessions = session_seeds(&docs[3].1);

    let mut round_trip = messages.clone();
    for (k, v) in &responses {
        round_trip.insert(format!("response-{k}"), v.clone());
    }
    write(&fuzz, "connection_response", &responses);
    write(&fuzz, "message", &messages);
    write(&fuzz, "round_trip", &round_trip);
    write(&fuzz, "upgrade_params", &upgrades);
    write(&fuzz, "client_session", &sessions);

    let flows = load("topics_flows.json");
    let datatypes = load("topics_datatypes.json");
    write(&fuzz, "topic_session", &topic_session_seeds(&flows));
    write(&fuzz, "apply_delta", &delta_seeds(&datatypes));
    write(&fuzz, "selector", &selector_seeds(&load("topics_selectors.json")));
    write(&fuzz, "value_decode", &value_seeds(&datatypes, &flows));
    regressions(&fuzz);
}

/// The crash regressions of targets whose input is structured, rewritten in the current
/// input format (those of raw-byte targets never change).
fn regressions(fuzz: &Path) {
    // A token that is not text was accepted, and the reconnection could not send it back.
    let token = Step::Response(ResponseOp {
        code: 0,
        version: 0,
        token: 2,
        ping: 1,
        last_field: 10_000_000,
        length: 2,
        raw_token: [0xc3; 24],
    });
    let steps = [token, Step::TransportClosed, Step::AdvanceToDeadline];
    let path = fuzz.join("regressions/client_session/non-ascii-token-cannot-be-sent-back");
    std::fs::write(&path, encode_script(&setup(1), &steps))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

fn write(fuzz: &Path, target: &str, seeds: &Seeds) {
    let dir = fuzz.join("corpus").join(target);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        if entry.file_name().to_string_lossy().starts_with("seed-") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    for (name, bytes) in seeds {
        let name: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = dir.join(format!("seed-{name}"));
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    println!("{target}: {} seeds", seeds.len());
}

fn add_unique(seeds: &mut Seeds, stem: &str, bytes: Vec<u8>) {
    if seeds.values().any(|b| *b == bytes) {
        return;
    }
    let name = format!(
        "{stem}-{:03}",
        seeds.keys().filter(|k| k.starts_with(stem)).count()
    );
    seeds.insert(name, bytes);
}

fn collect_hex(v: &Value, out: &mut Vec<Vec<u8>>) {
    match v {
        Value::String(s) => {
            if let Some(bytes) = strict_hex(s) {
                out.push(bytes);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_hex(i, out)),
        Value::Object(map) => map.values().for_each(|i| collect_hex(i, out)),
        _ => {}
    }
}

/// Strict lower-case hex of at least two bytes (so that words and numbers are not taken).
fn strict_hex(s: &str) -> Option<Vec<u8>> {
    let s = s.strip_prefix("0x").unwrap_or(s);
    let lower = s
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if s.len() < 2 || !lower {
        return None;
    }
    hex::decode(s).ok()
}

// ---- upgrade requests ----------------------------------------------------------------------

/// One upgrade request in the `upgrade_params` input form.
fn request_text(target: &str, headers: &[(String, String)]) -> String {
    let mut text = target.to_owned();
    for (n, v) in headers {
        text.push('\n');
        text.push_str(&format!("{n}: {v}"));
    }
    text
}

fn strip_origin(uri: &str) -> &str {
    match uri.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => uri,
    }
}

fn pairs(v: &Value) -> Vec<(String, String)> {
    match v {
        Value::Array(items) => items
            .iter()
            .filter_map(|p| match p {
                Value::Array(kv) if kv.len() == 2 => {
                    Some((kv[0].as_str()?.to_owned(), kv[1].as_str()?.to_owned()))
                }
                Value::String(line) => line
                    .split_once(':')
                    .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned())),
                _ => None,
            })
            .collect(),
        Value::Object(map) => map
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
            .collect(),
        _ => Vec::new(),
    }
}

fn upgrade_seeds(requests: &Value, flows: &Value) -> Seeds {
    let mut seeds = Seeds::new();
    let mut singles: Vec<(String, String)> = Vec::new();
    let mut walk = |label: &str, v: &Value| {
        // Any object with a path/url/request line and optional headers is one request.
        fn visit(label: &str, v: &Value, out: &mut Vec<(String, String)>) {
            match v {
                Value::Object(map) => {
                    let target = ["path", "url", "request_line"]
                        .iter()
                        .find_map(|k| map.get(*k).and_then(Value::as_str))
                        .map(|t| {
                            let t = t.strip_prefix("GET ").unwrap_or(t);
                            let t = t.split(" HTTP/").next().unwrap_or(t);
                            strip_origin(t).to_owned()
                        });
                    if let Some(target) = target {
                        let headers = ["headers", "diffusion_headers"]
                            .iter()
                            .find_map(|k| map.get(*k))
                            .map(pairs)
                            .unwrap_or_default();
                        out.push((label.to_owned(), request_text(&target, &headers)));
                    }
                    for (k, child) in map {
                        visit(&format!("{label}.{k}"), child, out);
                    }
                }
                Value::Array(items) => items
                    .iter()
                    .enumerate()
                    .for_each(|(i, c)| visit(&format!("{label}.{i}"), c, out)),
                Value::String(s)
                    if s.starts_with("ws://") || s.starts_with("wss://") || s.starts_with("/diffusion") =>
                {
                    out.push((label.to_owned(), strip_origin(s).to_owned()))
                }
                _ => {}
            }
        }
        let mut out = Vec::new();
        visit(label, v, &mut out);
        singles.extend(out);
    };
    walk("req", requests);
    walk("flow", flows);
    for (label, text) in &singles {
        if seeds.values().any(|b| b == text.as_bytes()) {
            continue;
        }
        let stem = label.split('.').take(3).collect::<Vec<_>>().join("-");
        let name = format!("{stem}-{:03}", seeds.len());
        seeds.insert(name, text.clone().into_bytes());
    }

    // Connect, then reconnect to that session with the token the target's server hands out,
    // in both carriers: the only way a seed reaches the 105/106/118 paths.
    let connects = [
        ("headers", "/diffusion\nv: 25\nca: 10\nusername: bob\nr: 60000\npassword: AQZzZWNyZXQ=\nty: PY\nsp: \"Foo\",\"bar\""),
        ("query", "/diffusion?ty=WB&v=29&ca=10&r=5000&sp=%7B%22Foo%22%3A%22bar%22%7D&username=bob&password=AQZzZWNyZXQ%3D"),
    ];
    for (carrier, connect) in connects {
        let token = first_token(connect);
        for (suffix, cs, ss) in [("105", 1, 0), ("106", 1, 9), ("118", 7, 0)] {
            let reconnect = match carrier {
                "headers" => format!("{connect}\nc: {token}\ncs: {cs}\nss: {ss}"),
                _ => format!(
                    "{connect}&c={}&cs={cs}&ss={ss}",
                    token.replace('+', "%2B").replace('/', "%2F")
                ),
            };
            seeds.insert(
                format!("reconnect-{carrier}-{suffix}"),
                format!("{connect}\n\n{reconnect}").into_bytes(),
            );
        }
        seeds.insert(
            format!("reconnect-{carrier}-117"),
            format!(
                "{connect}\n\n{connect}{}",
                if carrier == "headers" {
                    "\nc: ABCDEFGHIJKLMNOPQRSTUVWX"
                } else {
                    "&c=ABCDEFGHIJKLMNOPQRSTUVWX"
                }
            )
            .into_bytes(),
        );
    }
    seeds.insert(
        "auth-rejected".into(),
        b"/diffusion\nv: 25\nusername: bob\npassword: AQNiYXI=".to_vec(),
    );
    seeds.insert(
        "sp-escapes".into(),
        br#"/diffusion?v=25&sp=%22k%22%2C%22a%5C%5C%22%2C%22z%22%2C%221%22"#.to_vec(),
    );
    seeds.insert(
        "sp-json-unicode".into(),
        br#"/diffusion?v=29&sp=%7B%22a%22%3A%22%5Cu00e9%5Cud83d%5Cude00%22%7D"#.to_vec(),
    );
    seeds
        .into_iter()
        .map(|(name, text)| (name, http(&String::from_utf8_lossy(&text))))
        .collect()
}

/// Requests in the short form used above (requests separated by an empty line; in each, the
/// target, then `name: value` header lines) as the HTTP/1.1 upgrade requests the
/// `upgrade_params` target reads.
fn http(text: &str) -> Vec<u8> {
    let mut out = String::new();
    for request in text.split("\n\n") {
        let mut lines = request.lines();
        let target = lines.next().unwrap_or("/");
        out.push_str(&format!("GET {target} HTTP/1.1\r\nHost: h\r\n"));
        for header in lines {
            out.push_str(header);
            out.push_str("\r\n");
        }
        out.push_str("\r\n");
    }
    out.into_bytes()
}

/// The token the `upgrade_params` target's server gives the first session.
fn first_token(request: &str) -> String {
    let (target, headers) = request.split_once('\n').unwrap_or((request, ""));
    let headers: Vec<(&str, &[u8])> = headers
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim(), v.trim_start().as_bytes()))
        .collect();
    let mut server = Server::new(
        ServerConfig::default(),
        Box::new(UserTable::new().with_user("bob", "secret")),
        Box::new(CounterEntropy::default()),
    );
    let mut upgrade = UpgradeRequest::from_uri(target);
    for (n, v) in headers {
        upgrade = upgrade.with_header(n, v);
    }
    server.accept(Instant::now(), ConnectionId(0), &upgrade);
    let frame = std::iter::from_fn(|| server.poll_output())
        .find_map(|o| match o {
            ServerOutput::Transmit { frame, .. } => Some(frame),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no response to {request}"));
    let version = if frame[1] == 29 {
        diffusion_proto::ProtocolVersion::V29
    } else {
        diffusion_proto::ProtocolVersion::V25
    };
    match ConnectionResponse::parse(&frame, version) {
        Ok(ConnectionResponse::Accepted(grant)) => grant.token.to_param(),
        other => panic!("{request} was not accepted: {other:?}"),
    }
}

// ---- client sessions ---------------------------------------------------------------------

fn setup(flags: u8) -> SessionSetup {
    SessionSetup {
        flags,
        strategy: 0,
        strategy_arg: 0,
        reconnect_timeout_ms: 5000,
        connection_timeout_ms: 10_000,
        initial_attempts: 0,
        retry_delay_ms: 1000,
        request_timeout_ms: 700,
        max_inbound: 0,
        recovery_capacity: 255,
        close_timeout_ms: 1000,
        identity: 1 + 4,
        services: 0,
    }
}

fn response(code: u8, ping: u8, last_field: u32) -> Step {
    const CODES: [u8; 10] = [100, 105, 106, 116, 117, 118, 102, 119, 107, 111];
    let (code, last_field) = match CODES.iter().position(|c| *c == code) {
        Some(i) => (i as u8, last_field),
        None => (11, u32::from(code)),
    };
    Step::Response(ResponseOp {
        code,
        version: 0,
        token: 0,
        ping,
        last_field,
        length: 2,
        raw_token: *b"ABCDEFGHIJKLMNOPQRSTUVWX",
    })
}

fn msg(kind: u8, select: u8, cid: i64, size: u16) -> Step {
    Step::Message(MessageOp {
        kind,
        select,
        cid,
        size,
    })
}

/// Seeds from the live transcripts (each server frame as it was sent, user pings and closes
/// where the official client made them, transport losses, time between events), then a few
/// written by hand for what the transcripts do not show.
fn session_seeds(flows: &Value) -> Seeds {
    let mut seeds = Seeds::new();
    let scenarios = flows
        .get("scenarios")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for (name, scenario) in scenarios {
        let Some(events) = scenario.get("server_view").and_then(Value::as_array) else {
            continue;
        };
        let v29 = name.starts_with("js_");
        let reconnect = !name.contains("no_strategy");
        let mut flags = u8::from(reconnect);
        if v29 {
            flags |= 2;
        }
        let mut ops = Vec::new();
        let mut last_t: Option<f64> = None;
        let mut first_conn = true;
        for event in events {
            if let Some(t) = event.get("t").and_then(Value::as_f64) {
                if let Some(prev) = last_t {
                    let ms = ((t - prev) * 1000.0).round();
                    if ms >= 1.0 {
                        ops.push(Step::Advance(ms.min(65_535.0) as u16));
                    }
                }
                last_t = Some(t);
            }
            let kind = event.get("event").and_then(Value::as_str).unwrap_or_default();
            let bytes = event.get("hex").and_then(Value::as_str).and_then(strict_hex);
            match (kind, bytes) {
                ("upgrade", _) => {
                    if !first_conn {
                        ops.push(Step::AdvanceToDeadline);
                    }
                    first_conn = false;
                }
                ("server sends", Some(b)) if b.first() == Some(&b'#') && b.len() >= 3 => {
                    let last = b
                        .get(51..55)
                        .map_or(0, |l| u32::from_be_bytes([l[0], l[1], l[2], l[3]]));
                    let ping = match b
                        .get(43..51)
                        .map(|p| p.iter().fold(0i64, |a, x| a << 8 | i64::from(*x)))
                    {
                        Some(1000) => 1,
                        Some(90_000) => 2,
                        _ => 1,
                    };
                    let mut op = response(b[2], ping, last);
                    if let Step::Response(r) = &mut op {
                        if b[1] != if v29 { 29 } else { 25 } {
                            r.version = if b[1] == 25 || b[1] == 29 { 6 } else { 7 };
                        }
                    }
                    ops.push(op);
                }
                ("server sends", Some(b)) => ops.push(Step::RawFrame(b)),
                ("client sends", Some(b)) if b.starts_with(&[0x00, 0x38]) => ops.push(Step::Ping),
                ("client sends", Some(b)) if b == [0x1d] => ops.push(Step::Close),
                (k, _) if k.contains("drops TCP") || k.contains("websocket closed") => {
                    ops.push(Step::TransportClosed)
                }
                _ => {}
            }
        }
        seeds.insert(format!("flow-{name}"), encode_script(&setup(flags), &ops));
    }

    let mut hand = |name: &str, setup: SessionSetup, steps: Vec<Step>| {
        seeds.insert(format!("hand-{name}"), encode_script(&setup, &steps));
    };
    let ok = || response(100, 1, 10_000_000);
    hand(
        "ping-answered",
        setup(1),
        vec![ok(), Step::Ping, msg(3, 0, 0, 0), Step::Close, msg(8, 0, 0, 0)],
    );
    hand(
        "service-error",
        setup(1),
        vec![ok(), Step::Invoke { service: 1, size: 8 }, msg(4, 0, 0, 0)],
    );
    hand(
        "request-timeout",
        setup(1 | 8),
        vec![
            ok(),
            Step::Ping,
            Step::Advance(701),
            Step::Ping,
            Step::AdvanceToDeadline,
        ],
    );
    hand(
        "oversize-out",
        setup(1),
        vec![
            response(100, 1, 64),
            Step::Invoke {
                service: 1,
                size: 129,
            },
            Step::Ping,
        ],
    );
    hand(
        "oversize-in",
        SessionSetup {
            max_inbound: 1,
            ..setup(1)
        },
        vec![ok(), msg(6, 0, 9, 200)],
    );
    hand(
        "inbound-respond",
        SessionSetup {
            services: 1,
            ..setup(1)
        },
        vec![
            ok(),
            msg(2, 0, 3, 4),
            Step::Respond {
                index: 0,
                error: 0,
                size: 2,
            },
            msg(2, 0, 4, 0),
            Step::Respond {
                index: 1,
                error: 1,
                size: 0,
            },
        ],
    );
    hand(
        "system-ping-cid0",
        setup(1),
        vec![ok(), msg(0, 0, 0, 0), msg(1, 0, 0, 0), msg(2, 3, 3, 0)],
    );
    hand(
        "reconnect-105-resend",
        setup(1),
        vec![
            ok(),
            Step::Ping,
            Step::TransportClosed,
            Step::Ping,
            Step::AdvanceToDeadline,
            response(105, 1, 1),
            msg(3, 0, 0, 0),
            msg(3, 0, 0, 0),
        ],
    );
    hand(
        "reconnect-105-lost",
        SessionSetup {
            recovery_capacity: 1,
            ..setup(1)
        },
        vec![
            ok(),
            Step::Ping,
            Step::Ping,
            Step::TransportClosed,
            Step::AdvanceToDeadline,
            response(105, 1, 1),
        ],
    );
    hand(
        "reconnect-106",
        setup(1),
        vec![
            ok(),
            Step::Ping,
            Step::TransportClosed,
            Step::AdvanceToDeadline,
            response(106, 1, 1000),
        ],
    );
    hand(
        "reconnect-117",
        setup(1),
        vec![
            ok(),
            Step::TransportClosed,
            Step::AdvanceToDeadline,
            response(117, 1, 0),
        ],
    );
    hand(
        "reconnect-timeout",
        setup(1),
        vec![
            ok(),
            Step::Ping,
            Step::TransportClosed,
            Step::AdvanceSeconds(6),
            Step::AdvanceToDeadline,
        ],
    );
    hand(
        "no-reconnect",
        setup(0),
        vec![ok(), Step::Ping, Step::TransportClosed],
    );
    hand(
        "strategy-aborts",
        SessionSetup {
            strategy: 3,
            ..setup(1)
        },
        vec![ok(), Step::Ping, Step::TransportClosed],
    );
    hand(
        "idle",
        setup(1),
        vec![
            ok(),
            Step::Advance(2001),
            Step::AdvanceToDeadline,
            response(105, 1, 1),
        ],
    );
    hand(
        "handshake-timeout",
        SessionSetup {
            initial_attempts: 1,
            ..setup(1)
        },
        vec![Step::AdvanceToDeadline, Step::AdvanceToDeadline, ok()],
    );
    hand(
        "version-mismatch",
        setup(1),
        vec![Step::Response(ResponseOp {
            version: 7,
            ..match ok() {
                Step::Response(r) => r,
                _ => unreachable!(),
            }
        })],
    );
    hand(
        "close-timeout",
        setup(1),
        vec![ok(), Step::Ping, Step::Close, Step::Ping, Step::AdvanceToDeadline],
    );
    hand("compressed-topic", setup(1), vec![ok(), msg(6, 1, 1, 3)]);
    hand(
        "query-v29-reconnect",
        setup(1 | 2 | 4 | 32),
        vec![
            ok(),
            Step::TransportClosed,
            Step::AdvanceToDeadline,
            response(105, 1, 1),
        ],
    );
    seeds
}

// ---- the arbitrary format of a ClientScript ---------------------------------------------

/// The bytes `arbitrary` makes `ClientScript { setup, steps }` from, as `fuzz_target!` reads
/// them (checked: they read back as the script).
fn encode_script(setup: &SessionSetup, steps: &[Step]) -> Vec<u8> {
    let mut out = vec![setup.flags, setup.strategy];
    for n in [
        setup.strategy_arg,
        setup.reconnect_timeout_ms,
        setup.connection_timeout_ms,
    ] {
        out.extend(n.to_le_bytes());
    }
    out.push(setup.initial_attempts);
    for n in [setup.retry_delay_ms, setup.request_timeout_ms] {
        out.extend(n.to_le_bytes());
    }
    out.extend([setup.max_inbound, setup.recovery_capacity]);
    out.extend(setup.close_timeout_ms.to_le_bytes());
    out.extend([setup.identity, setup.services]);
    for step in steps {
        // The vector's "one more" byte, then the variant and its fields.
        out.push(1);
        encode_step(step, &mut out);
    }
    let script = ClientScript {
        setup: *setup,
        steps: steps.to_vec(),
    };
    let read = ClientScript::arbitrary_take_rest(arbitrary::Unstructured::new(&out));
    assert_eq!(read.as_ref(), Ok(&script), "the encoding does not read back");
    out
}

/// `arbitrary`'s enum tag for variant `index` of `count`: the u32 it scales down to it.
fn tag(index: u64, count: u64) -> [u8; 4] {
    let tag = (index << 32).div_ceil(count);
    u32::try_from(tag).unwrap_or(u32::MAX).to_le_bytes()
}

fn encode_step(step: &Step, out: &mut Vec<u8>) {
    const STEPS: u64 = 12;
    match step {
        Step::RawFrame(bytes) => {
            out.extend(tag(0, STEPS));
            for b in bytes {
                out.extend([1, *b]);
            }
            out.push(0);
        }
        Step::Message(m) => {
            out.extend(tag(1, STEPS));
            out.extend([m.kind, m.select]);
            out.extend(m.cid.to_le_bytes());
            out.extend(m.size.to_le_bytes());
        }
        Step::Response(r) => {
            out.extend(tag(2, STEPS));
            out.extend([r.code, r.version, r.token, r.ping]);
            out.extend(r.last_field.to_le_bytes());
            out.push(r.length);
            out.extend(r.raw_token);
        }
        Step::Advance(ms) => {
            out.extend(tag(3, STEPS));
            out.extend(ms.to_le_bytes());
        }
        Step::AdvanceToDeadline => out.extend(tag(4, STEPS)),
        Step::TransportClosed => out.extend(tag(5, STEPS)),
        Step::Ping => out.extend(tag(6, STEPS)),
        Step::Invoke { service, size } => {
            out.extend(tag(7, STEPS));
            out.push(*service);
            out.extend(size.to_le_bytes());
        }
        Step::Close => out.extend(tag(8, STEPS)),
        Step::Respond { index, error, size } => {
            out.extend(tag(9, STEPS));
            out.extend([*index, *error, *size]);
        }
        Step::Register { service, on } => {
            out.extend(tag(10, STEPS));
            out.extend([*service, *on]);
        }
        Step::AdvanceSeconds(s) => {
            out.extend(tag(11, STEPS));
            out.extend(s.to_le_bytes());
        }
    }
}

// ---- topics ------------------------------------------------------------------------------

/// Old value and delta in the `apply_delta` input form: the old value's length (u16 LE),
/// the old value, the delta.
fn delta_input(old: &[u8], delta: &[u8]) -> Vec<u8> {
    let mut out = (old.len() as u16).to_le_bytes().to_vec();
    out.extend_from_slice(old);
    out.extend_from_slice(delta);
    out
}

/// Every delta of both clients (a missing delta is the no-change `f6`), and a few that fail.
fn delta_seeds(datatypes: &Value) -> Seeds {
    let mut seeds = Seeds::new();
    for client in ["javascript_6_12_1", "python_6_12_2"] {
        for entry in datatypes[client]["deltas"].as_array().into_iter().flatten() {
            let hex_of = |key: &str| entry.get(key).and_then(Value::as_str).and_then(strict_hex);
            let Some(old) = hex_of("old_hex") else { continue };
            let delta = hex_of("delta_hex").unwrap_or_else(|| vec![0xf6]);
            add_unique(&mut seeds, client, delta_input(&old, &delta));
        }
    }
    let old = b"\x6bhello world";
    for (name, delta) in [
        ("copy-out-of-range", &[0x00, 0x18, 0x40][..]),
        ("missing-length", &[0x00]),
        ("not-an-item", &[0x20]),
        ("many-copies", &[0x00, 0x0c, 0x00, 0x0c, 0x00, 0x0c, 0x00, 0x0c]),
        ("indefinite-bytes", &[0x5f, 0x41, 0x61, 0x42, 0x62, 0x63, 0xff]),
    ] {
        seeds.insert(format!("hand-{name}"), delta_input(old, delta));
    }
    seeds
}

/// Every selector of both clients' tables, with the table's seven paths as the other lines.
fn selector_seeds(selectors: &Value) -> Seeds {
    let mut seeds = Seeds::new();
    for client in ["javascript_6_12_1", "python_6_12_2"] {
        for entry in selectors[client].as_array().into_iter().flatten() {
            let Some(expression) = entry.get("expression").and_then(Value::as_str) else {
                continue;
            };
            let mut text = expression.to_owned();
            for path in entry["matches"].as_object().into_iter().flat_map(|m| m.keys()) {
                text.push('\n');
                text.push_str(path);
            }
            add_unique(&mut seeds, client, text.into_bytes());
        }
    }
    for (name, text) in [
        ("empty", ""),
        ("bad-pattern", "?a/(\na"),
        ("empty-member", "#>a////////>b\na"),
        ("unsupported", "$a\na"),
    ] {
        seeds.insert(format!("hand-{name}"), text.as_bytes().to_vec());
    }
    seeds
}

/// Every value encoding of both clients, the values the deltas build, and every value
/// the live transcripts carried.
fn value_seeds(datatypes: &Value, flows: &Value) -> Seeds {
    let mut seeds = Seeds::new();
    for client in ["javascript_6_12_1", "python_6_12_2"] {
        for section in ["values", "deltas"] {
            for entry in datatypes[client][section].as_array().into_iter().flatten() {
                for key in ["hex", "old_hex", "new_hex"] {
                    if let Some(bytes) = entry.get(key).and_then(Value::as_str).and_then(strict_hex) {
                        add_unique(&mut seeds, client, bytes);
                    }
                }
            }
        }
    }
    for (name, frames) in scenario_frames(flows) {
        for frame in frames {
            if frame.first() == Some(&0x04) && frame.len() > 5 {
                add_unique(&mut seeds, &format!("flow-{name}"), frame[5..].to_vec());
            }
        }
    }
    seeds
}

/// Each transcript's frames, by scenario, with their connection and direction.
fn scenario_frames(flows: &Value) -> Vec<(String, Vec<Vec<u8>>)> {
    let Some(scenarios) = flows.get("scenarios").and_then(Value::as_object) else {
        return Vec::new();
    };
    scenarios
        .iter()
        .map(|(name, scenario)| {
            let frames = scenario["frames"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|f| f["dir"] == "s->c")
                .filter_map(|f| f["hex"].as_str().and_then(strict_hex))
                .collect();
            (name.clone(), frames)
        })
        .collect()
}

fn index_of<T: PartialEq>(items: &[T], item: &T) -> u8 {
    items
        .iter()
        .position(|i| i == item)
        .unwrap_or_else(|| panic!("not in the script's table")) as u8
}

/// The server → client frames of one subscriber connection as topic steps.
fn topic_steps(frames: &[Vec<u8>], version: ProtocolVersion) -> Vec<TopicStep> {
    let mut steps = Vec::new();
    for frame in frames {
        let Ok(message) = Message::decode(&frame.clone().into()) else {
            continue;
        };
        match message {
            Message::ServiceRequest {
                service,
                cid,
                payload,
            } if service == ServiceId::NOTIFY_SUBSCRIPTION => {
                let Ok(n) = NotifySubscription::decode(&payload, version) else {
                    continue;
                };
                let spec = &n.specification;
                let flag = |key: &str, bit: u8| {
                    if spec.property(key) == Some("true") {
                        bit
                    } else {
                        0
                    }
                };
                steps.push(TopicStep::Notify {
                    id: index_of(&TOPIC_IDS, &n.topic_id),
                    path: index_of(&TOPIC_PATHS, &n.path.as_str()),
                    topic_type: index_of(&TopicType::ALL, &spec.topic_type()),
                    properties: flag(TopicSpecification::DONT_RETAIN_VALUE, 1)
                        | flag(TopicSpecification::PUBLISH_VALUES_ONLY, 2)
                        | flag(TopicSpecification::TIDY_ON_UNSUBSCRIBE, 4),
                    cid: cid as u8,
                });
            }
            Message::ServiceRequest {
                service,
                cid,
                payload,
            } if service == ServiceId::NOTIFY_UNSUBSCRIPTION => {
                let Ok(n) = NotifyUnsubscription::decode(&payload, version) else {
                    continue;
                };
                steps.push(TopicStep::Unsubscribe {
                    id: index_of(&TOPIC_IDS, &n.topic_id),
                    reason: n.reason.wire_id().unwrap_or(4),
                    cid: cid as u8,
                });
            }
            Message::TopicValue {
                topic_id, payload, ..
            }
            | Message::TopicDelta {
                topic_id, payload, ..
            } => steps.push(TopicStep::Topic {
                type_byte: u8::from(frame[0] == 0x05),
                id: index_of(&TOPIC_IDS, &topic_id),
                payload: payload.to_vec(),
            }),
            _ => {}
        }
    }
    steps
}

/// Both transcripts' subscriber sides (in their protocol versions), each also cut by a
/// 105 and a 106 after its values; then a few written by hand for what they do not show.
fn topic_session_seeds(flows: &Value) -> Seeds {
    let mut seeds = Seeds::new();
    let scenarios = flows.get("scenarios").and_then(Value::as_object);
    for (name, scenario) in scenarios.into_iter().flatten() {
        let frames = scenario["frames"].as_array().cloned().unwrap_or_default();
        // The subscriber is the connection that sent SUBSCRIBE; its protocol is in the
        // oracle's decoding that follows.
        let Some(at) = frames
            .iter()
            .position(|f| f["dir"] == "c->s" && f["service"] == "SUBSCRIBE")
        else {
            continue;
        };
        let conn = frames[at]["conn"].clone();
        let v29 = frames[at + 1]["decoded"]["protocol"] == 29;
        let version = if v29 {
            ProtocolVersion::V29
        } else {
            ProtocolVersion::V25
        };
        let own: Vec<Vec<u8>> = frames
            .iter()
            .filter(|f| f["conn"] == conn && f["dir"] == "s->c")
            .filter_map(|f| f["hex"].as_str().and_then(strict_hex))
            .collect();
        let steps = topic_steps(&own, version);
        seeds.insert(format!("flow-{name}"), encode_topic_script(u8::from(v29), &steps));
        // Cut after the last value, before the unsubscriptions.
        let cut = steps
            .iter()
            .rposition(|s| matches!(s, TopicStep::Topic { .. }))
            .map_or(steps.len(), |i| i + 1);
        for (code, label) in [(0u8, "105"), (1, "106"), (2, "new-session")] {
            let mut cut_steps = steps[..cut].to_vec();
            cut_steps.push(TopicStep::Reconnect { code });
            cut_steps.extend_from_slice(&steps[..cut]);
            cut_steps.extend_from_slice(&steps[cut..]);
            seeds.insert(
                format!("flow-{name}-{label}"),
                encode_topic_script(u8::from(v29), &cut_steps),
            );
        }
    }

    let notify = |id: u8, topic_type: u8, properties: u8| TopicStep::Notify {
        id,
        path: id,
        topic_type,
        properties,
        cid: 0,
    };
    let value = |id: u8, payload: &[u8]| TopicStep::Topic {
        type_byte: 0,
        id,
        payload: payload.to_vec(),
    };
    let mut hand = |name: &str, steps: Vec<TopicStep>| {
        seeds.insert(format!("hand-{name}"), encode_topic_script(0, &steps));
    };
    hand(
        "delta-edits",
        vec![
            notify(0, 3, 0),
            value(0, b"\x6bhello world"),
            TopicStep::Delta {
                id: 0,
                edits: vec![
                    Edit::Insert(b"\x71".to_vec()),
                    Edit::Copy { start: 1, length: 5 },
                    Edit::Insert(b" brave".to_vec()),
                    Edit::Copy { start: 6, length: 6 },
                ],
            },
            TopicStep::Delta {
                id: 0,
                edits: vec![Edit::Copy { start: 0, length: 40 }],
            },
        ],
    );
    hand(
        "dont-retain",
        vec![
            notify(1, 1, 1),
            value(1, b"\x01"),
            value(1, b"\x02"),
            TopicStep::Delta {
                id: 1,
                edits: vec![Edit::Copy { start: 0, length: 1 }],
            },
        ],
    );
    hand(
        "malformed",
        vec![
            notify(2, 0, 0),
            TopicStep::Short { type_byte: 0, len: 3 },
            TopicStep::Short {
                type_byte: 0x81,
                len: 0,
            },
            TopicStep::Topic {
                type_byte: 0x80,
                id: 2,
                payload: b"\x78\x9c".to_vec(),
            },
            TopicStep::Topic {
                type_byte: 1,
                id: 2,
                payload: vec![0x00, 0x05],
            },
            TopicStep::Notification {
                unsubscribe: false,
                cid: 3,
                payload: vec![0x01, 0x01, b'a', 0x07, 0x00],
            },
            TopicStep::Notification {
                unsubscribe: true,
                cid: 1,
                payload: vec![0x03],
            },
        ],
    );
    hand(
        "rebind-and-unknown",
        vec![
            notify(3, 3, 0),
            value(3, b"\x61x"),
            notify(3, 3, 0),
            TopicStep::Notify {
                id: 3,
                path: 7,
                topic_type: 1,
                properties: 2,
                cid: 2,
            },
            value(9, b"\x61y"),
            TopicStep::Unsubscribe {
                id: 9,
                reason: 2,
                cid: 1,
            },
            TopicStep::Unsubscribe {
                id: 3,
                reason: 200,
                cid: 0,
            },
        ],
    );
    seeds
}

/// The bytes `arbitrary` makes a `TopicScript { version, steps }` from (checked: they read
/// back as the script).
fn encode_topic_script(version: u8, steps: &[TopicStep]) -> Vec<u8> {
    fn vec_u8(out: &mut Vec<u8>, bytes: &[u8]) {
        for b in bytes {
            out.extend([1, *b]);
        }
        out.push(0);
    }
    const STEPS: u64 = 7;
    let mut out = vec![version];
    for step in steps {
        out.push(1);
        match step {
            TopicStep::Notify {
                id,
                path,
                topic_type,
                properties,
                cid,
            } => {
                out.extend(tag(0, STEPS));
                out.extend([*id, *path, *topic_type, *properties, *cid]);
            }
            TopicStep::Unsubscribe { id, reason, cid } => {
                out.extend(tag(1, STEPS));
                out.extend([*id, *reason, *cid]);
            }
            TopicStep::Topic {
                type_byte,
                id,
                payload,
            } => {
                out.extend(tag(2, STEPS));
                out.extend([*type_byte, *id]);
                vec_u8(&mut out, payload);
            }
            TopicStep::Delta { id, edits } => {
                out.extend(tag(3, STEPS));
                out.push(*id);
                for edit in edits {
                    out.push(1);
                    match edit {
                        Edit::Insert(bytes) => {
                            out.extend(tag(0, 2));
                            vec_u8(&mut out, bytes);
                        }
                        Edit::Copy { start, length } => {
                            out.extend(tag(1, 2));
                            out.extend(start.to_le_bytes());
                            out.extend(length.to_le_bytes());
                        }
                    }
                }
                out.push(0);
            }
            TopicStep::Short { type_byte, len } => {
                out.extend(tag(4, STEPS));
                out.extend([*type_byte, *len]);
            }
            TopicStep::Notification {
                unsubscribe,
                cid,
                payload,
            } => {
                out.extend(tag(5, STEPS));
                out.extend([u8::from(*unsubscribe), *cid]);
                vec_u8(&mut out, payload);
            }
            TopicStep::Reconnect { code } => {
                out.extend(tag(6, STEPS));
                out.push(*code);
            }
        }
    }
    let script = TopicScript {
        version,
        steps: steps.to_vec(),
    };
    let read = TopicScript::arbitrary_take_rest(arbitrary::Unstructured::new(&out));
    assert_eq!(read.as_ref(), Ok(&script), "the encoding does not read back");
    out
}
