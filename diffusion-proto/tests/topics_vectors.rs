//! The topic and messaging vectors (`testdata/vectors/topics_*.json`) against the codecs of
//! `diffusion_proto`: value encodings and deltas, the selector truth table, every live
//! client request with the oracle's decoding, the official encoders' outputs, every frame
//! of both live transcripts in both directions, and the subscriber's side of both
//! transcripts through a `ClientSession`.
//!
//! Where our encoder deliberately writes another form than an official client (definite
//! lengths, 8-byte floats), the test asserts our form decodes to the same value.
#![forbid(unsafe_code)]

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use diffusion_proto::testing::accept_frame;
use diffusion_proto::type_code;
use diffusion_proto::{
    apply_delta, produce_delta, ClientConfig, ClientSession, Event, Output, RequestId, ResponseCode,
    SessionState, Topic, TopicEvent, TopicStats,
};
use diffusion_proto::{
    AddAndSetTopicRequest, AddTopicRequest, AddTopicResult, ConstraintOperator, ConstraintValueType,
    DataType, EmptyPayload, EncodeValue, ErrorReason, FetchRequest, FetchResponse, HandlerRequest, Message,
    MessagingValue, NotifySubscription, NotifyUnsubscription, PartialJsonCondition, ProtocolVersion,
    RegisterHandlerRequest, RemoveTopicsRequest, RemoveTopicsResponse, Selector, SelectorKind, SendRequest,
    ServiceId, ServicePayload, SetTopicRequest, SubscribeRequest, TopicSpecification, TopicType, TopicValue,
    UnsubscribeReason, UnsubscribeRequest, UpdateConstraint, ValueCondition,
};
use serde_json::{json, Value as J};

const MAX_VALUE: usize = 1 << 20;

fn load(name: &str) -> J {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/vectors")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex {s}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or_else(|e| panic!("{s}: {e}")))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(v: &J) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

fn array(v: &J) -> &Vec<J> {
    v.as_array().unwrap_or_else(|| panic!("not an array: {v}"))
}

fn version(protocol: &J) -> ProtocolVersion {
    let n = protocol.as_u64().unwrap_or_else(|| panic!("protocol {protocol}"));
    ProtocolVersion::from_number(n as u32).unwrap_or_else(|| panic!("protocol {n}"))
}

/// A decoded value as the vector files and the clients' logs write it.
fn value_json(value: &TopicValue) -> J {
    match value {
        TopicValue::Json(v) => v.clone(),
        TopicValue::String(s) => json!(s),
        TopicValue::Int64(n) => json!(n),
        TopicValue::Double(x) => json!(x),
        TopicValue::Binary(b) => json!({ "bytes": hex(b) }),
        TopicValue::NoValue => J::Null,
        other => panic!("unexpected value {other:?}"),
    }
}

fn data_type(name: &str) -> DataType {
    DataType::from_name(name).unwrap_or_else(|| panic!("datatype {name}"))
}

// ---------------------------------------------------------------------------------------
// topics_datatypes.json

#[test]
fn datatype_values_decode_and_encode() {
    let file = load("topics_datatypes.json");
    let mut exact = 0;
    let mut by_design = 0;
    for client in ["javascript_6_12_1", "python_6_12_2"] {
        let entries = array(&file[client]["values"]);
        assert!(entries.len() >= 18, "{client} values");
        for entry in entries {
            let dt = data_type(text(&entry["type"]));
            let official = unhex(text(&entry["hex"]));
            let what = format!("{client} {dt} {}", entry["value"]);
            let decoded = TopicValue::decode(dt, &Bytes::from(official.clone()))
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            let expected = &entry["value"];
            match (&decoded, dt) {
                (TopicValue::Binary(b), DataType::Binary) => assert_eq!(hex(b), text(expected), "{what}"),
                (TopicValue::Int64(n), DataType::Int64) => {
                    // JavaScript writes 2^63-1 as a string (a BigInt).
                    let want = expected
                        .as_i64()
                        .or_else(|| expected.as_str().and_then(|s| s.parse().ok()));
                    assert_eq!(Some(*n), want, "{what}");
                }
                (TopicValue::Double(x), DataType::Double) => {
                    assert_eq!(Some(*x), expected.as_f64(), "{what}");
                    // −0.0 keeps its sign (JavaScript's log prints it as 0).
                    assert_eq!(
                        x.is_sign_negative(),
                        official.get(1).is_some_and(|b| b & 0x80 != 0),
                        "{what}"
                    );
                }
                _ => assert_eq!(value_json(&decoded), *expected, "{what}"),
            }
            // JSON also reads the CBOR scalars (TOPICS §2.5).
            if matches!(dt, DataType::String | DataType::Int64 | DataType::Double) {
                let as_json = TopicValue::decode(DataType::Json, &Bytes::from(official.clone()));
                assert!(as_json.is_ok(), "{what} as JSON: {as_json:?}");
            }
            let ours = decoded.encode().unwrap_or_else(|e| panic!("{what}: {e}"));
            if ours[..] == official[..] {
                exact += 1;
                continue;
            }
            // Our deliberate forms: definite-length containers, 8-byte floats.
            let indefinite = matches!(official.first(), Some(0x9f | 0xbf));
            let short_float = official.iter().any(|b| matches!(b, 0xf9 | 0xfa)) && ours.contains(&0xfb);
            assert!(
                indefinite || short_float,
                "{what}: ours {} official {}",
                hex(&ours),
                hex(&official)
            );
            let again = TopicValue::decode(dt, &ours).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(again, decoded, "{what}");
            by_design += 1;
        }
    }
    // 37 entries: all but the four indefinite-length containers and PY's four short floats.
    assert_eq!((exact, by_design), (29, 8));
}

#[test]
fn datatype_deltas_apply_and_produce() {
    let file = load("topics_datatypes.json");
    let mut applied = 0;
    for (client, result_key) in [
        ("javascript_6_12_1", "applied_hex"),
        ("python_6_12_2", "patched_hex"),
    ] {
        for entry in array(&file[client]["deltas"]) {
            let old = unhex(text(&entry["old_hex"]));
            let delta = entry.get("delta_hex").map_or(vec![0xf6], |d| unhex(text(d)));
            let official = unhex(text(&entry[result_key]));
            let ours =
                apply_delta(&old, &delta, MAX_VALUE).unwrap_or_else(|e| panic!("{client} {entry}: {e}"));
            if delta == [0xf6] {
                // No change. The Python client empties its value instead (TOPICS §3.6), which
                // is why a server never sends this delta.
                assert_eq!(ours, old, "{client} {entry}");
                assert!(client == "javascript_6_12_1" || official.is_empty(), "{entry}");
            } else {
                assert_eq!(ours, official, "{client} {entry}");
            }
            applied += 1;
            let Some(new) = entry.get("new_hex").map(|n| unhex(text(n))) else {
                continue;
            };
            match produce_delta(&old, &new) {
                None => assert!(old == new || new.len() <= 5, "{client}: no delta for {entry}"),
                Some(ours) => {
                    assert!(ours.len() < new.len() && ours != [0xf6]);
                    assert_eq!(apply_delta(&old, &ours, MAX_VALUE).ok(), Some(new.clone()));
                    if hex(&delta) == "000341020407" {
                        assert_eq!(ours, delta, "the JSON example is the official script");
                    }
                }
            }
        }
    }
    assert_eq!(applied, 11);
}

// ---------------------------------------------------------------------------------------
// topics_selectors.json

fn check_truth_table(selector: &Selector, matches: &J, what: &str) -> usize {
    let table = matches.as_object().unwrap_or_else(|| panic!("{what}: matches"));
    assert_eq!(table.len(), 7, "{what}");
    for (path, expected) in table {
        assert_eq!(
            Some(selector.matches(path)),
            expected.as_bool(),
            "{what} on {path}"
        );
    }
    table.len()
}

#[test]
fn selectors_parse_and_match_the_truth_table() {
    let file = load("topics_selectors.json");
    let mut cells = 0;
    for entry in array(&file["javascript_6_12_1"]) {
        let expression = text(&entry["expression"]);
        let selector = Selector::parse(expression).unwrap_or_else(|e| panic!("{expression}: {e}"));
        assert_eq!(selector.as_str(), expression);
        assert_eq!(selector.normalized(), text(&entry["wire"]), "{expression}");
        assert_eq!(
            selector.kind().prefix().to_string(),
            text(&entry["type"]),
            "{expression}"
        );
        cells += check_truth_table(&selector, &entry["matches"], expression);
    }
    for entry in array(&file["python_6_12_2"]) {
        let expression = text(&entry["expression"]);
        let selector = Selector::parse(expression).unwrap_or_else(|e| panic!("{expression}: {e}"));
        let kind = match text(&entry["class"]) {
            "PathSelector" => SelectorKind::Path,
            "SplitPathPatternSelector" => SelectorKind::SplitPathPattern,
            "FullPathPatternSelector" => SelectorKind::FullPathPattern,
            "SelectorSet" => SelectorKind::Set,
            other => panic!("class {other}"),
        };
        assert_eq!(selector.kind(), kind, "{expression}");
        assert_eq!(
            selector.as_str(),
            text(&entry["str"]),
            "the Python client sends it unchanged"
        );
        cells += check_truth_table(&selector, &entry["matches"], expression);
    }
    assert_eq!(cells, 23 * 7);
}

// ---------------------------------------------------------------------------------------
// Service payloads: decode, compare with the oracle's decoding, re-encode byte for byte.

/// Decodes `payload` as `T`, re-encodes it and requires the same bytes.
fn exact<T: ServicePayload + std::fmt::Debug>(payload: &[u8], v: ProtocolVersion, what: &str) -> T {
    let decoded = T::decode(payload, v).unwrap_or_else(|e| panic!("{what}: {e} in {}", hex(payload)));
    let again = decoded.to_bytes(v).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(
        hex(&again),
        hex(payload),
        "{what}: {decoded:?} re-encodes differently"
    );
    decoded
}

fn spec_fields(spec: &TopicSpecification) -> (J, J, J) {
    let properties: serde_json::Map<String, J> =
        spec.properties().map(|(k, v)| (k.to_owned(), json!(v))).collect();
    (
        json!(spec.topic_type().code()),
        json!(spec.topic_type().name()),
        J::Object(properties),
    )
}

fn constraint_hex(c: &UpdateConstraint, v: ProtocolVersion) -> String {
    hex(&c.to_bytes(v).unwrap_or_else(|e| panic!("{c:?}: {e}")))
}

/// A client request's payload in the oracle's field names.
fn request_fields(service: ServiceId, payload: &[u8], v: ProtocolVersion) -> J {
    let what = format!("{service} v{v}");
    let scope = |scope: String| if v.number() >= 29 { json!(scope) } else { J::Null };
    match service {
        ServiceId::SUBSCRIBE => {
            let r: SubscribeRequest = exact(payload, v, &what);
            json!({ "selector": r.selector, "scope": scope(r.scope) })
        }
        ServiceId::UNSUBSCRIBE => {
            let r: UnsubscribeRequest = exact(payload, v, &what);
            json!({ "selector": r.selector, "scope": scope(r.scope) })
        }
        ServiceId::TOPIC_ADD => {
            let r: AddTopicRequest = exact(payload, v, &what);
            let (code, name, properties) = spec_fields(&r.specification);
            json!({ "path": r.path, "topic_type": code, "type_name": name, "properties": properties })
        }
        ServiceId::SET_TOPIC => {
            let r: SetTopicRequest = exact(payload, v, &what);
            json!({
                "path": r.path, "topic_type": r.topic_type.code(), "type_name": r.topic_type.name(),
                "value": hex(&r.value), "constraint": constraint_hex(&r.constraint, v),
            })
        }
        ServiceId::ADD_AND_SET_TOPIC => {
            let r: AddAndSetTopicRequest = exact(payload, v, &what);
            let (code, name, properties) = spec_fields(&r.specification);
            json!({
                "path": r.path, "topic_type": code, "type_name": name, "properties": properties,
                "value": hex(&r.value), "constraint": constraint_hex(&r.constraint, v),
            })
        }
        ServiceId::TOPIC_REMOVAL => {
            let r: RemoveTopicsRequest = exact(payload, v, &what);
            json!({ "selector": r.selector })
        }
        ServiceId::FETCH_QUERY => {
            let r: FetchRequest = exact(payload, v, &what);
            let range =
                |r: &Option<diffusion_proto::FetchRange>| r.as_ref().map(|r| json!([r.path, r.inclusive]));
            let mut fields = json!({
                "selector": r.selector, "range_from": range(&r.from), "range_to": range(&r.to),
                "topic_types": r.topic_types.bits(), "with_values": u8::from(r.with_values),
                "with_properties": u8::from(r.with_properties), "limit": r.limit,
                "maximum_result_size": r.maximum_result_size, "depth": r.deep_branch_depth,
                "deep_branch_limit": r.deep_branch_limit, "flag_p18": u8::from(r.with_unpublished_delayed_topics),
            });
            if v.number() >= 28 {
                fields["with_size"] = json!(u8::from(r.with_sizes));
            }
            fields
        }
        ServiceId::MESSAGING_SEND => {
            let r: SendRequest = exact(payload, v, &what);
            json!({ "path": r.path, "datatype": r.value.datatype, "value": hex(&r.value.value) })
        }
        ServiceId::MESSAGING_RECEIVER_CONTROL_REGISTRATION => {
            let r: RegisterHandlerRequest = exact(payload, v, &what);
            let h = r.handler;
            json!({
                "handler_service": h.service.0, "control_group": h.control_group, "path": h.path,
                "property_keys": h.property_keys, "registration_cid": r.registration_cid,
            })
        }
        other => panic!("no decoding recorded for {other}"),
    }
}

/// The oracle's decoding without the frame-level fields.
fn oracle_fields(decoded: &J) -> J {
    let mut fields = decoded.as_object().cloned().unwrap_or_default();
    for key in [
        "event",
        "session_id",
        "protocol",
        "service",
        "service_name",
        "cid",
    ] {
        fields.remove(key);
    }
    if let Some(trailing) = fields.remove("trailing") {
        assert_eq!(trailing, "", "{decoded}");
    }
    J::Object(fields)
}

/// A client → server frame with its oracle decoding: message layer, then payload.
fn check_recorded_request(frame_hex: &str, decoded: &J) {
    let frame = Bytes::from(unhex(frame_hex));
    let message = Message::decode(&frame).unwrap_or_else(|e| panic!("{frame_hex}: {e}"));
    let Message::ServiceRequest {
        service,
        cid,
        payload,
    } = message
    else {
        panic!("{frame_hex} is not a request");
    };
    assert_eq!(Some(service.0 as i64), decoded["service"].as_i64(), "{frame_hex}");
    assert_eq!(
        Some(service.name().unwrap_or_default()),
        decoded["service_name"].as_str()
    );
    assert_eq!(Some(cid), decoded["cid"].as_i64(), "{frame_hex}");
    let v = version(&decoded["protocol"]);
    assert_eq!(
        request_fields(service, &payload, v),
        oracle_fields(decoded),
        "{frame_hex}"
    );
}

/// A handler's answer (client → server response) with the oracle's decoding.
fn check_recorded_answer(frame_hex: &str, decoded: &J) {
    assert_eq!(decoded["kind"], "response", "{decoded}");
    let message =
        Message::decode(&Bytes::from(unhex(frame_hex))).unwrap_or_else(|e| panic!("{frame_hex}: {e}"));
    let Message::ServiceResponse { cid, payload } = message else {
        panic!("{frame_hex} is not a response");
    };
    assert_eq!(Some(cid), decoded["cid"].as_i64());
    let response: MessagingValue = exact(&payload, ProtocolVersion::V25, "handler answer");
    assert_eq!(
        json!({ "datatype": response.datatype, "value": hex(&response.value) }),
        json!({ "datatype": decoded["datatype"], "value": decoded["value"] })
    );
}

#[test]
fn every_live_request_decodes_as_the_oracle_did_and_re_encodes_exactly() {
    let file = load("topics_services.json");
    let requests = file["requests"].as_object().unwrap_or_else(|| panic!("requests"));
    assert_eq!(requests.len(), 18, "request kinds");
    let mut frames = 0;
    for (kind, entries) in requests {
        for entry in array(entries) {
            check_recorded_request(text(&entry["hex"]), &entry["decoded"]);
            let suffix = if entry["decoded"]["protocol"] == 25 {
                "_py25"
            } else {
                "_js29"
            };
            assert!(kind.ends_with(suffix), "{kind}");
            frames += 1;
        }
    }
    assert_eq!(frames, 53);
}

#[test]
fn official_encoder_outputs_match_ours() {
    let file = load("topics_services.json");
    const V25: ProtocolVersion = ProtocolVersion::V25;
    const V29: ProtocolVersion = ProtocolVersion::V29;
    let fresh = "fresh".encode_value().unwrap_or_default();
    let int5 = 5i64.encode_value().unwrap_or_default();
    let mut compared = 0;
    for entry in array(&file["js_encoder"]["update_constraints"]) {
        let name = text(&entry["name"]);
        let built = match name {
            "no_value" => UpdateConstraint::no_value(),
            "no_topic" => UpdateConstraint::no_topic(),
            "value_is_string_fresh" => UpdateConstraint::value_is(fresh.clone()),
            "value_eq_int64_5" => {
                UpdateConstraint::value(ConstraintOperator::Eq, ConstraintValueType::Int64, int5.clone())
            }
            "value_is_or_no_value" => {
                UpdateConstraint::value_is(fresh.clone()).or(UpdateConstraint::no_value())
            }
            "json_with_without" => UpdateConstraint::PartialJson(PartialJsonCondition {
                with: vec![(
                    "/a".into(),
                    ValueCondition {
                        operator: ConstraintOperator::Is,
                        value_type: ConstraintValueType::Binary,
                        value: Bytes::from_static(&[0x01]),
                    },
                )],
                without: vec!["/b".into()],
            }),
            // The JavaScript client refused to build these two (an AND of a value and a JSON
            // constraint, a lock and no value): nothing was encoded to compare.
            "value_is_and_json" | "locked_and_no_value" => {
                assert!(entry["error"].is_string() && entry.get("hex").is_none(), "{name}");
                continue;
            }
            other => panic!("constraint {other}"),
        };
        let official = text(&entry["hex"]);
        assert_eq!(constraint_hex(&built, V29), official, "{name}");
        assert_eq!(
            UpdateConstraint::decode(&unhex(official), V29).ok(),
            Some(built),
            "{name}"
        );
        compared += 1;
    }
    for entry in array(&file["js_encoder"]["requests"]) {
        let input = &entry["input"];
        let ours = match text(&entry["name"]) {
            "subscribe_v29" => SubscribeRequest {
                selector: text(&input["selector"]).into(),
                scope: text(&input["scope"]).into(),
            }
            .to_bytes(V29),
            "topic_specification_json_props" => {
                let mut spec = TopicSpecification::new(TopicType::Json);
                for (k, v) in input["properties"].as_object().into_iter().flatten() {
                    spec.set_property(k.as_str(), text(v));
                }
                assert_eq!(input["type"], 15);
                // The recorded bytes are a TOPIC_ADD payload for path "a/b".
                AddTopicRequest {
                    path: "a/b".into(),
                    specification: spec,
                }
                .to_bytes(V29)
            }
            "notify_subscription_info" => NotifySubscription {
                topic_id: 300,
                path: text(&input["path"]).into(),
                specification: TopicSpecification::new(TopicType::String),
            }
            .to_bytes(V29),
            other => panic!("request {other}"),
        };
        assert_eq!(
            ours.map(|b| hex(&b)).ok().as_deref(),
            Some(text(&entry["hex"])),
            "{entry}"
        );
        compared += 1;
    }
    let py = |v| -> Vec<Bytes> {
        vec![
            NotifySubscription {
                topic_id: 300,
                path: "a/b".into(),
                specification: TopicSpecification::new(TopicType::String),
            }
            .to_bytes(v),
            NotifySubscription {
                topic_id: 1,
                path: "t/json".into(),
                specification: TopicSpecification::new(TopicType::Json)
                    .with_property(TopicSpecification::PUBLISH_VALUES_ONLY, "true"),
            }
            .to_bytes(v),
            NotifyUnsubscription {
                topic_id: 1,
                reason: UnsubscribeReason::Removal,
            }
            .to_bytes(v),
            AddTopicResult::Exists.to_bytes(v),
            SendRequest {
                path: "svc/echo".into(),
                value: MessagingValue::new(DataType::Json, Bytes::from_static(b"\xbf\x61q\x07\xff")),
            }
            .to_bytes(v),
            MessagingValue::new(DataType::Json, Bytes::from_static(b"\xbf\x61q\x07\xff")).to_bytes(v),
            RemoveTopicsRequest {
                selector: ">t/binary".into(),
            }
            .to_bytes(v),
            RemoveTopicsResponse { removed: 1 }.to_bytes(v),
        ]
        .into_iter()
        .map(|b| b.unwrap_or_else(|e| panic!("{e}")))
        .collect()
    };
    let serialisers = array(&file["py_encoder"]["serialisers"]);
    let names: Vec<&str> = serialisers.iter().map(|s| text(&s["serialiser"])).collect();
    assert_eq!(
        names,
        [
            "protocol14-topic-specification-info",
            "protocol14-topic-specification-info",
            "protocol22-unsubscription-notification",
            "add-topic-result",
            "messaging-send-request",
            "messaging-response",
            "remove-topics-request",
            "integer"
        ]
    );
    for (entry, ours) in serialisers.iter().zip(py(V25)) {
        assert_eq!(hex(&ours), text(&entry["hex"]), "{entry}");
        compared += 1;
    }
    assert_eq!(compared, 6 + 3 + 8);
}

// ---------------------------------------------------------------------------------------
// topics_flows.json: every frame of both transcripts, both directions.

/// What a transcript replay learns per connection.
#[derive(Default)]
struct Connection {
    version: Option<ProtocolVersion>,
    /// Requests awaiting a response, by (request direction, cid), oldest first: the
    /// Python client answers every one-way (cid 0) notification.
    pending: HashMap<(bool, i64), VecDeque<ServiceId>>,
    /// Topic id → (path, datatype, last value bytes).
    topics: HashMap<i32, (String, DataType, Option<Vec<u8>>)>,
}

/// Facts a replay collects to compare with what the official clients reported.
#[derive(Default)]
struct Observed {
    /// (path, datatype, value, old value) of every TOPIC_VALUE and TOPIC_DELTA, in order.
    updates: Vec<(String, DataType, J, J)>,
    /// (path, reason) of every NOTIFY_UNSUBSCRIPTION.
    unsubscriptions: Vec<(String, UnsubscribeReason)>,
    /// (path, value) of every fetched topic.
    fetched: Vec<(String, J)>,
    handler_requests: Vec<HandlerRequest>,
    /// Responses to requests to a path.
    responses: Vec<J>,
    errors: Vec<ErrorReason>,
    frames: usize,
}

fn decode_value(dt: DataType, bytes: &[u8]) -> J {
    value_json(
        &TopicValue::decode(dt, &Bytes::copy_from_slice(bytes)).unwrap_or_else(|e| panic!("{dt}: {e}")),
    )
}

fn replay(scenario: &J) -> Observed {
    let frames = array(&scenario["frames"]);
    let mut connections: HashMap<i64, Connection> = HashMap::new();
    // Each connection's protocol, from the oracle's decodings that follow its frames.
    let mut last_conn = None;
    for frame in frames {
        match (frame.get("conn"), frame.get("decoded")) {
            (Some(conn), _) => last_conn = conn.as_i64(),
            (None, Some(decoded)) if decoded.get("protocol").is_some() => {
                let conn = last_conn.unwrap_or_else(|| panic!("decoding before any frame"));
                connections.entry(conn).or_default().version = Some(version(&decoded["protocol"]));
            }
            _ => {}
        }
    }
    let mut seen = Observed::default();
    let mut previous_request: Option<&str> = None;
    for frame in frames {
        if let Some(decoded) = frame.get("decoded") {
            let frame_hex = previous_request.unwrap_or_else(|| panic!("no frame for {decoded}"));
            match text(&decoded["event"]) {
                "decoded" => check_recorded_request(frame_hex, decoded),
                "decoded_answer" => check_recorded_answer(frame_hex, decoded),
                other => panic!("decoding {other}"),
            }
            continue;
        }
        let conn_id = frame["conn"].as_i64().unwrap_or_else(|| panic!("{frame}"));
        let conn = connections.entry(conn_id).or_default();
        let v = conn
            .version
            .unwrap_or_else(|| panic!("conn {conn_id} has no protocol"));
        let to_server = frame["dir"] == "c->s";
        let frame_hex = text(&frame["hex"]);
        previous_request = Some(frame_hex);
        let message =
            Message::decode(&Bytes::from(unhex(frame_hex))).unwrap_or_else(|e| panic!("{frame_hex}: {e}"));
        let kind = text(&frame["type"]);
        let code = MESSAGE_TYPES
            .iter()
            .find(|(name, _)| *name == kind)
            .map(|(_, code)| *code);
        assert_eq!(Some(message.type_code()), code, "{frame_hex}");
        seen.frames += 1;
        match message {
            Message::ServiceRequest {
                service,
                cid,
                payload,
            } => {
                assert_eq!(frame["service"].as_str(), service.name(), "{frame_hex}");
                conn.pending
                    .entry((to_server, cid))
                    .or_default()
                    .push_back(service);
                if to_server {
                    // Compared with the oracle's decoding when it follows.
                    continue;
                }
                replay_server_request(conn, service, &payload, v, &mut seen);
            }
            Message::ServiceResponse { cid, payload } => {
                let service = conn
                    .pending
                    .get_mut(&(!to_server, cid))
                    .and_then(VecDeque::pop_front)
                    .unwrap_or_else(|| panic!("response {frame_hex} to no request"));
                replay_response(service, &payload, v, &mut seen);
            }
            Message::ServiceError { cid, reason, .. } => {
                let request = conn
                    .pending
                    .get_mut(&(!to_server, cid))
                    .and_then(VecDeque::pop_front);
                assert!(request.is_some(), "{frame_hex}");
                assert!(reason.name().is_some(), "{reason}");
                seen.errors.push(reason);
            }
            Message::TopicValue {
                topic_id,
                compressed,
                payload,
            }
            | Message::TopicDelta {
                topic_id,
                compressed,
                payload,
            } => {
                assert!(!compressed && !to_server, "{frame_hex}");
                let (path, dt, last) = conn
                    .topics
                    .get_mut(&topic_id)
                    .unwrap_or_else(|| panic!("{frame_hex}: topic {topic_id} was not notified"));
                let new = if frame["type"] == "TOPIC_DELTA" {
                    let old = last
                        .as_deref()
                        .unwrap_or_else(|| panic!("{frame_hex}: delta without a value"));
                    apply_delta(old, &payload, MAX_VALUE).unwrap_or_else(|e| panic!("{frame_hex}: {e}"))
                } else {
                    payload.to_vec()
                };
                let old = last.as_deref().map_or(J::Null, |old| decode_value(*dt, old));
                seen.updates
                    .push((path.clone(), *dt, decode_value(*dt, &new), old));
                *last = Some(new);
            }
            Message::Abort | Message::CloseRequest => {}
        }
    }
    seen
}

/// The type names of the transcripts.
const MESSAGE_TYPES: [(&str, u8); 7] = [
    ("SERVICE_REQUEST", type_code::SERVICE_REQUEST),
    ("SERVICE_RESPONSE", type_code::SERVICE_RESPONSE),
    ("SERVICE_ERROR", type_code::SERVICE_ERROR),
    ("TOPIC_VALUE", type_code::TOPIC_VALUE),
    ("TOPIC_DELTA", type_code::TOPIC_DELTA),
    ("ABORT", type_code::ABORT),
    ("CLOSE_REQUEST", type_code::CLOSE_REQUEST),
];

/// A server → client request: notifications and forwarded messaging requests.
fn replay_server_request(
    conn: &mut Connection,
    service: ServiceId,
    payload: &[u8],
    v: ProtocolVersion,
    seen: &mut Observed,
) {
    let what = format!("{service} v{v}");
    match service {
        ServiceId::NOTIFY_SUBSCRIPTION => {
            let n: NotifySubscription = exact(payload, v, &what);
            let dt = n
                .specification
                .topic_type()
                .data_type()
                .unwrap_or_else(|| panic!("{n:?}"));
            assert!(
                conn.topics.insert(n.topic_id, (n.path, dt, None)).is_none(),
                "notified twice"
            );
        }
        ServiceId::NOTIFY_UNSUBSCRIPTION => {
            let n: NotifyUnsubscription = exact(payload, v, &what);
            let (path, ..) = conn.topics.remove(&n.topic_id).unwrap_or_else(|| panic!("{n:?}"));
            seen.unsubscriptions.push((path, n.reason));
        }
        ServiceId::MESSAGING_RECEIVER_CLIENT => seen.handler_requests.push(exact(payload, v, &what)),
        other => panic!("unexpected server request {other}"),
    }
}

fn replay_response(service: ServiceId, payload: &[u8], v: ProtocolVersion, seen: &mut Observed) {
    let what = format!("response of {service} v{v}");
    match service {
        ServiceId::SUBSCRIBE
        | ServiceId::UNSUBSCRIBE
        | ServiceId::SET_TOPIC
        | ServiceId::NOTIFY_SUBSCRIPTION
        | ServiceId::NOTIFY_UNSUBSCRIPTION
        | ServiceId::MESSAGING_RECEIVER_CONTROL_REGISTRATION => {
            let _: EmptyPayload = exact(payload, v, &what);
        }
        ServiceId::TOPIC_ADD | ServiceId::ADD_AND_SET_TOPIC => {
            let _: AddTopicResult = exact(payload, v, &what);
        }
        ServiceId::TOPIC_REMOVAL => {
            let r: RemoveTopicsResponse = exact(payload, v, &what);
            assert_eq!(r.removed, 1);
        }
        ServiceId::FETCH_QUERY => {
            let r: FetchResponse = exact(payload, v, &what);
            assert!(!r.has_more);
            for result in r.results {
                let dt = result
                    .topic_type
                    .data_type()
                    .unwrap_or_else(|| panic!("{result:?}"));
                let value = result.value.as_deref().map_or(J::Null, |b| decode_value(dt, b));
                seen.fetched.push((result.path, value));
            }
        }
        ServiceId::MESSAGING_SEND | ServiceId::MESSAGING_RECEIVER_CLIENT => {
            let r: MessagingValue = exact(payload, v, &what);
            seen.responses.push(decode_value(
                r.data_type().unwrap_or_else(|| panic!("{r:?}")),
                &r.value,
            ));
        }
        other => panic!("unexpected response to {other}"),
    }
}

/// (path, reason name) of each unsubscription a subscriber's stream reported: the Python
/// driver logs the reason's name, the JavaScript driver its wire id.
fn reported_unsubscriptions(scenario: &J) -> Vec<(String, String)> {
    events(scenario, "subscriber", "unsubscribe")
        .into_iter()
        .map(|e| {
            let reason = match &e["reason"] {
                J::String(s) => s.to_lowercase(),
                n => UnsubscribeReason::from_wire(n.as_u64().unwrap_or(99) as u8)
                    .name()
                    .to_owned(),
            };
            (text(&e["path"]).to_owned(), reason)
        })
        .collect()
}

fn events<'a>(scenario: &'a J, role: &str, event: &str) -> Vec<&'a J> {
    array(&scenario["clients"][role])
        .iter()
        .filter(|e| e["event"] == event)
        .collect()
}

#[test]
fn both_transcripts_replay_frame_by_frame() {
    let file = load("topics_flows.json");
    let scenarios = file["scenarios"]
        .as_object()
        .unwrap_or_else(|| panic!("scenarios"));
    assert_eq!(scenarios.len(), 2);
    let mut frames = 0;
    for (name, scenario) in scenarios {
        let seen = replay(scenario);
        frames += seen.frames;

        // Each value and old value the subscriber's stream of the topic's own type reported.
        let own_type: HashMap<&str, DataType> = seen.updates.iter().map(|u| (u.0.as_str(), u.1)).collect();
        let reported: Vec<(&str, &J, Option<&J>)> = events(scenario, "subscriber", "update")
            .into_iter()
            .filter(|e| own_type.get(text(&e["path"])).map(|dt| dt.name()) == e["stream"].as_str())
            .map(|e| (text(&e["path"]), &e["value"], e.get("old")))
            .collect();
        assert_eq!(seen.updates.len(), reported.len(), "{name}: updates");
        for ((path, _, value, old), (r_path, r_value, r_old)) in seen.updates.iter().zip(&reported) {
            assert_eq!((path.as_str(), value), (*r_path, *r_value), "{name}");
            if let Some(r_old) = r_old {
                assert_eq!(old, *r_old, "{name}: old value of {path}");
            }
        }

        // Unsubscriptions: removal of t/binary (A) and the final UNSUBSCRIBE's reasons.
        let reported = reported_unsubscriptions(scenario);
        for (path, reason) in &seen.unsubscriptions {
            assert!(
                reported.contains(&(path.clone(), reason.name().to_owned())),
                "{name}: {path} {reason} not reported"
            );
        }

        // Fetch: the publisher's results, path and value.
        let fetch = events(scenario, "publisher", "fetch");
        let reported: Vec<(String, J)> = array(&fetch[0]["results"])
            .iter()
            .map(|r| {
                let r = array(r);
                (text(&r[0]).to_owned(), r[2].clone())
            })
            .collect();
        assert_eq!(seen.fetched, reported, "{name}: fetch");

        // Messaging: what the handler received, what the requester got, the 109.
        let handled = events(scenario, "handler", "handler_request");
        assert_eq!(seen.handler_requests.len(), 1, "{name}");
        let request = &seen.handler_requests[0];
        let value = decode_value(
            request.value.data_type().unwrap_or(DataType::Binary),
            &request.value.value,
        );
        assert_eq!(value, handled[0]["value"], "{name}");
        let sender = handled[0]
            .get("session_id")
            .or_else(|| handled[0]["context"].get("sender_session_id"))
            .map(text);
        assert_eq!(Some(request.sender.to_string().as_str()), sender, "{name}");
        assert_eq!(request.path, "svc/echo");
        assert_eq!(request.properties.len(), 1);
        let answered = events(scenario, "publisher", "request_response");
        assert_eq!(
            seen.responses,
            [answered[0]["value"].clone(), answered[0]["value"].clone()],
            "{name}"
        );
        assert!(seen.errors.contains(&ErrorReason::UNHANDLED_MESSAGE), "{name}");
        assert!(
            seen.errors.contains(&ErrorReason::UNSATISFIED_CONSTRAINT),
            "{name}"
        );
        assert!(seen.errors.contains(&ErrorReason::MISSING_TOPIC), "{name}");
        assert!(
            seen.errors.contains(&ErrorReason::INCOMPATIBLE_TOPIC_EXISTS),
            "{name}"
        );
    }
    assert_eq!(frames, 96 + 75);
}

// ---------------------------------------------------------------------------------------
// topics_flows.json once more: the subscriber's connection through a `ClientSession`.

/// What a `ClientSession` connected like the subscriber of a transcript made of the
/// server's frames, and what it sent.
#[derive(Default)]
struct SubscriberSession {
    events: Vec<TopicEvent>,
    /// The frames our session sent, and those the official client sent apart from its
    /// answers to one-way notifications (the Python client answers them, we do not).
    sent: Vec<String>,
    recorded: Vec<String>,
    /// The responses to its SUBSCRIBE and UNSUBSCRIBE, as `Reply::response` reads them.
    responses: Vec<EmptyPayload>,
    stats: TopicStats,
    closed: Option<SessionState>,
}

fn replay_subscriber(scenario: &J) -> SubscriberSession {
    let frames = array(&scenario["frames"]);
    let subscribe = frames
        .iter()
        .position(|f| f["dir"] == "c->s" && f["service"] == "SUBSCRIBE")
        .unwrap_or_else(|| panic!("no SUBSCRIBE"));
    let conn = &frames[subscribe]["conn"];
    let v = version(&frames[subscribe + 1]["decoded"]["protocol"]);
    let now = Instant::now();
    let wall = SystemTime::UNIX_EPOCH;
    let config = ClientConfig::new("ws://h:1").unwrap_or_else(|e| panic!("{e}"));
    let mut session = ClientSession::new(config.with_version(v), now);
    let mut seen = SubscriberSession::default();
    let drain = |session: &mut ClientSession, seen: &mut SubscriberSession| {
        while let Some(output) = session.poll_output() {
            match output {
                Output::Transmit(frame) => seen.sent.push(hex(&frame)),
                Output::Event(Event::Topic(event)) => seen.events.push(event),
                Output::Event(Event::Response { result, .. }) => {
                    let reply = result.unwrap_or_else(|e| panic!("{e}"));
                    let response = reply.response::<SubscribeRequest>();
                    seen.responses.push(response.unwrap_or_else(|e| panic!("{e}")));
                }
                _ => {}
            }
        }
    };
    drain(&mut session, &mut seen);
    session.handle_frame(now, accept_frame(ResponseCode::Ok, 10_000_000, v));
    for frame in frames.iter().filter(|f| f.get("conn") == Some(conn)) {
        let recorded = text(&frame["hex"]);
        let bytes = Bytes::from(unhex(recorded));
        if frame["dir"] == "s->c" {
            session.handle_frame(now, bytes);
        } else {
            let call = match Message::decode(&bytes).unwrap_or_else(|e| panic!("{recorded}: {e}")) {
                Message::ServiceRequest { service, payload, .. } if service == ServiceId::SUBSCRIBE => {
                    let request: SubscribeRequest = exact(&payload, v, recorded);
                    session.call(now, wall, &request)
                }
                Message::ServiceRequest { service, payload, .. } if service == ServiceId::UNSUBSCRIBE => {
                    let request: UnsubscribeRequest = exact(&payload, v, recorded);
                    session.call(now, wall, &request)
                }
                Message::ServiceResponse { cid: 0, .. } => continue,
                Message::CloseRequest => {
                    session.close(now);
                    Ok(RequestId(0))
                }
                other => panic!("the subscriber sent {other:?}"),
            };
            call.unwrap_or_else(|e| panic!("{recorded}: {e}"));
            seen.recorded.push(recorded.to_owned());
        }
        drain(&mut session, &mut seen);
    }
    seen.stats = session.topic_stats();
    seen.closed = Some(session.state()).filter(|s| s.is_closed());
    assert_eq!(session.topics().len(), seen.stats.subscribed);
    seen
}

/// The first appearance of each key, in order.
fn first_of<T: PartialEq>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut out = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// A subscription event's topic type and properties: the JavaScript driver logs the
/// properties, the Python driver the specification's repr, e.g.
/// `StringDataTypeTopicSpecification({'PUBLISH_VALUES_ONLY': True})`.
fn reported_specification(event: &J) -> (Option<String>, Vec<(String, String)>) {
    if let Some(properties) = event.get("properties").and_then(J::as_object) {
        let props = properties
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().map_or(v.to_string(), str::to_owned)))
            .collect();
        return (None, props);
    }
    let repr = text(&event["spec"]);
    let (kind, rest) = repr
        .split_once("DataTypeTopicSpecification(")
        .unwrap_or_else(|| panic!("{repr}"));
    let body = rest.trim_end_matches(')').trim_matches(|c| c == '{' || c == '}');
    let props = body
        .split(", ")
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once(": ").unwrap_or_else(|| panic!("{repr}"));
            (
                k.trim_matches('\'').to_owned(),
                v.trim_matches('\'').to_lowercase(),
            )
        })
        .collect();
    (Some(kind.to_lowercase()), props)
}

#[test]
fn both_transcripts_through_a_client_session_give_what_the_official_subscriber_reported() {
    let file = load("topics_flows.json");
    let scenarios = file["scenarios"]
        .as_object()
        .unwrap_or_else(|| panic!("scenarios"));
    let mut values = 0;
    for (name, scenario) in scenarios {
        let seen = replay_subscriber(scenario);
        // Our requests are the official client's, byte for byte, in its protocol version.
        assert_eq!(seen.sent, seen.recorded, "{name}");
        assert_eq!(seen.responses, [EmptyPayload, EmptyPayload], "{name}");
        assert_eq!(
            (
                seen.stats.unknown_topic_messages,
                seen.stats.malformed_topic_messages,
                seen.stats.topic_errors,
                seen.stats.subscribed
            ),
            (0, 0, 0, 0),
            "{name}"
        );

        // Subscribed: the same topics in the same order, each readable by every stream
        // that reported it, with the same properties.
        let ours: Vec<&Topic> = seen
            .events
            .iter()
            .filter_map(|e| match e {
                TopicEvent::Subscribed { topic } => Some(topic),
                _ => None,
            })
            .collect();
        let reported = events(scenario, "subscriber", "subscribe");
        let paths = first_of(reported.iter().map(|e| text(&e["path"])));
        let our_paths: Vec<&str> = ours.iter().map(|t| t.path()).collect();
        assert_eq!(our_paths, paths, "{name}: subscribed");
        for event in &reported {
            let topic = ours
                .iter()
                .find(|t| t.path() == text(&event["path"]))
                .unwrap_or_else(|| panic!("{event}"));
            let dt = topic.data_type().unwrap_or_else(|| panic!("{topic:?}"));
            assert!(data_type(text(&event["stream"])).can_read(dt), "{name}: {event}");
            let (kind, props) = reported_specification(event);
            if let Some(kind) = kind {
                assert_eq!(kind, dt.name(), "{name}: {event}");
            }
            let ours: Vec<(String, String)> = topic
                .specification()
                .properties()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            assert_eq!(ours, props, "{name}: {event}");
        }

        // Values: each stream's k-th update of a path is our k-th value of that path, read
        // as the stream's type, with the same old value; the topic's own-type stream saw
        // every one of ours.
        let our_values = |path: &str| -> Vec<(Bytes, Option<Bytes>)> {
            seen.events
                .iter()
                .filter_map(|e| match e {
                    TopicEvent::Value {
                        topic, value, old, ..
                    } if topic.path() == path => Some((value.clone(), old.clone())),
                    _ => None,
                })
                .collect()
        };
        let updates = events(scenario, "subscriber", "update");
        let streams = first_of(updates.iter().map(|e| (text(&e["stream"]), text(&e["path"]))));
        for (stream, path) in streams {
            let dt = data_type(stream);
            let reported: Vec<&&J> = updates
                .iter()
                .filter(|e| e["stream"] == stream && e["path"] == path)
                .collect();
            let ours = our_values(path);
            let own_type = ours_topic_type(&seen.events, path) == Some(dt);
            if own_type {
                assert_eq!(ours.len(), reported.len(), "{name}: values of {path}");
            }
            assert!(ours.len() >= reported.len(), "{name}: {stream} {path}");
            for ((value, old), event) in ours.iter().zip(reported) {
                assert_eq!(decode_value(dt, value), event["value"], "{name}: {event}");
                if let Some(r_old) = event.get("old") {
                    let old = old.as_deref().map_or(J::Null, |o| decode_value(dt, o));
                    assert_eq!(old, *r_old, "{name}: {event}");
                }
                values += 1;
            }
        }
        // The deltas were applied, not resent whole.
        let deltas = seen
            .events
            .iter()
            .filter(|e| matches!(e, TopicEvent::Value { delta: true, .. }))
            .count();
        assert_eq!(deltas, 2, "{name}");

        // Unsubscriptions: the same topics, in the same order, for the same reasons.
        let ours: Vec<(String, String)> = seen
            .events
            .iter()
            .filter_map(|e| match e {
                TopicEvent::Unsubscribed { topic, reason } => {
                    Some((topic.path().to_owned(), reason.name().to_owned()))
                }
                _ => None,
            })
            .collect();
        let reported = first_of(reported_unsubscriptions(scenario));
        assert_eq!(ours, reported, "{name}: unsubscriptions");
        assert!(
            !seen.events.iter().any(|e| matches!(e, TopicEvent::Error { .. })),
            "{name}"
        );
        // Scenario B's subscriber (JavaScript) closes: CLOSE_REQUEST, then the ABORT.
        let closes = events(scenario, "subscriber", "closed").len();
        assert_eq!(closes, 1, "{name}");
        if seen.sent.last().map(String::as_str) == Some("1d") {
            assert_eq!(seen.closed, Some(SessionState::ClosedByClient), "{name}");
        }
    }
    // A: 5 + 3 + 2 updates of own-type streams; B: 8 + 5 + 2 of own-type and JSON streams.
    assert_eq!(values, 10 + 15);
}

/// The datatype of the topic at `path` as its subscription said.
fn ours_topic_type(events: &[TopicEvent], path: &str) -> Option<DataType> {
    events.iter().find_map(|e| match e {
        TopicEvent::Subscribed { topic } if topic.path() == path => topic.data_type(),
        _ => None,
    })
}
