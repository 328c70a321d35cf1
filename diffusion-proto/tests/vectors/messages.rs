//! `messages.json` and `services.json` against `Message`, `ServiceId` and `ErrorReason`.

use bytes::{Bytes, BytesMut};
use diffusion_proto::type_code;
use diffusion_proto::wire::{self, Reader};
use diffusion_proto::{Credentials, ErrorReason, Message, MessageError, ServiceId};

use crate::json::{load, unhex};

fn decode(hex: &str, at: &str) -> Message {
    Message::decode(&Bytes::from(unhex(hex))).unwrap_or_else(|e| panic!("{at}: {hex}: {e}"))
}

fn request(service: ServiceId, cid: i64, payload: impl FnOnce(&mut BytesMut)) -> Message {
    let mut b = BytesMut::new();
    payload(&mut b);
    Message::ServiceRequest {
        service,
        cid,
        payload: b.freeze(),
    }
}

/// CHANGE_PRINCIPAL / RE_AUTHENTICATE body: principal, credentials[, properties].
fn principal_body(b: &mut BytesMut, principal: &str, password: &str, with_map: bool) {
    wire::put_string(b, principal);
    Credentials::password(password).encode_raw(b);
    if with_map {
        wire::put_string_map(b, std::iter::empty());
    }
}

/// The message an encoder run built, by its name in `encoder_outputs`.
fn encoder_input(name: &str) -> Message {
    let empty = |cid| request(ServiceId::USER_PING, cid, |_| {});
    match name {
        "user_ping_request_cid5" => empty(5),
        "user_ping_request_cid300" | "large_cid_user_ping" => empty(300),
        "system_ping_request_cid1" => request(ServiceId::SYSTEM_PING, 1, |_| {}),
        "system_ping_response_cid1" => Message::ServiceResponse {
            cid: 1,
            payload: Bytes::new(),
        },
        "user_ping_response_cid5" => Message::ServiceResponse {
            cid: 5,
            payload: Bytes::new(),
        },
        "change_principal_request_cid7" | "change_principal_cid7" => {
            request(ServiceId::CHANGE_PRINCIPAL, 7, |b| {
                principal_body(b, "admin", "password", false)
            })
        }
        "reauthenticate_cid8" => request(ServiceId::RE_AUTHENTICATE, 8, |b| {
            principal_body(b, "admin", "password", true)
        }),
        "get_own_session_properties_cid9" => request(ServiceId::GET_OWN_SESSION_PROPERTIES, 9, |_| {}),
        "service_error_cid3" => Message::ServiceError {
            cid: 3,
            description: "callback failed".into(),
            reason: ErrorReason::CALLBACK_EXCEPTION,
        },
        "close_request" => Message::CloseRequest,
        other => panic!("no inputs known for encoder output {other}"),
    }
}

#[test]
fn encoder_outputs() {
    let doc = load("messages.json");
    let mut checked = 0;
    for (client, outputs) in doc.root().get("encoder_outputs").obj() {
        for (name, hex) in outputs.obj() {
            if name == "source" {
                continue;
            }
            let at = format!("{client}.{name}");
            let msg = encoder_input(name);
            assert_eq!(hex::encode(msg.to_bytes()), hex.str(), "{at}");
            assert_eq!(msg.encoded_len() * 2, hex.str().len(), "{at}");
            assert_eq!(decode(hex.str(), &at), msg, "{at}");
            checked += 1;
        }
    }
    assert_eq!(checked, 5 + 8);
}

#[test]
fn annotated_messages() {
    let doc = load("messages.json");
    let mut checked = 0;
    for e in doc.root().get("annotated").arr() {
        let hex = e.get("hex").str();
        let at = &e.path;
        let msg = decode(hex, at);
        assert_eq!(hex::encode(msg.to_bytes()), hex, "{at}: re-encoded");
        let meaning = e.get("meaning").str();
        match &msg {
            Message::ServiceRequest {
                service,
                cid,
                payload,
            } => {
                let name = service
                    .name()
                    .unwrap_or_else(|| panic!("{at}: service {service} unnamed"));
                assert!(meaning.contains(name), "{at}: {name} vs {meaning}");
                assert!(
                    meaning.contains(&format!("cid {cid}"))
                        || meaning.contains(&format!("conversation id {cid}")),
                    "{at}: cid {cid} vs {meaning}"
                );
                let mut r = Reader::new(payload);
                match *service {
                    ServiceId::USER_PING | ServiceId::SYSTEM_PING | ServiceId::GET_OWN_SESSION_PROPERTIES => {
                    }
                    ServiceId::CHANGE_PRINCIPAL | ServiceId::RE_AUTHENTICATE => {
                        assert_eq!(r.string(), Ok("admin"), "{at}");
                        assert_eq!(
                            Credentials::decode_raw(&mut r),
                            Ok(Credentials::password("password")),
                            "{at}"
                        );
                        if *service == ServiceId::RE_AUTHENTICATE {
                            assert_eq!(r.string_map(), Ok(vec![]), "{at}");
                        }
                    }
                    ServiceId::NOTIFY_SUBSCRIPTION => {
                        assert_eq!(*cid, 0, "{at}: one-way");
                        assert_eq!(r.varint_i32(), Ok(521), "{at}: topic id");
                        assert_eq!(r.string(), Ok("topic/path"), "{at}");
                        // The topic specification follows; kept opaque.
                        r.rest();
                    }
                    other => panic!("{at}: unexpected service {other}"),
                }
                assert!(r.is_empty(), "{at}: payload left over");
            }
            Message::ServiceResponse { cid, payload } => {
                assert!(meaning.contains("SERVICE_RESPONSE"), "{at}");
                assert!(meaning.contains(&format!("cid {cid}")), "{at}");
                assert!(payload.is_empty(), "{at}");
            }
            Message::ServiceError {
                cid,
                description,
                reason,
            } => {
                assert!(meaning.contains("SERVICE_ERROR"), "{at}");
                assert!(
                    meaning.contains(&format!("cid {cid}")) || meaning.contains(&format!("(cid {cid})")),
                    "{at}"
                );
                assert!(meaning.contains(&format!("'{description}'")), "{at}");
                assert!(meaning.contains(&format!("reason {}", reason.0)), "{at}");
                if let Some(name) = reason.name() {
                    assert_eq!(
                        meaning.contains(name),
                        meaning.contains(&format!("reason {} ", reason.0)),
                        "{at}: reason name"
                    );
                }
            }
            Message::TopicValue {
                topic_id,
                compressed,
                payload,
            } => {
                assert!(meaning.starts_with("TOPIC_VALUE"), "{at}");
                assert!(meaning.contains(&format!("topic id {topic_id}")), "{at}");
                assert!(!compressed, "{at}");
                assert!(meaning.contains(&hex::encode(payload)[2..]), "{at}");
            }
            Message::TopicDelta {
                topic_id,
                compressed,
                payload,
            } => {
                assert!(meaning.starts_with("TOPIC_DELTA"), "{at}");
                assert!(meaning.contains(&format!("topic id {topic_id}")), "{at}");
                assert!(!compressed, "{at}");
                let text = std::str::from_utf8(payload).unwrap_or_default();
                assert!(meaning.contains(&format!("'{text}'")), "{at}");
            }
            Message::Abort => assert_eq!(meaning, "ABORT", "{at}"),
            Message::CloseRequest => assert_eq!(meaning, "CLOSE_REQUEST", "{at}"),
        }
        checked += 1;
    }
    // The exact values of the prose above, for the ones that carry numbers.
    assert_eq!(
        decode("070104626f6f6d67", "boom"),
        Message::ServiceError {
            cid: 1,
            description: "boom".into(),
            reason: ErrorReason::ACCESS_DENIED
        }
    );
    assert_eq!(ErrorReason::ACCESS_DENIED.name(), Some("ACCESS_DENIED"));
    assert_eq!(
        decode(
            "07031c556e6b6e6f776e20636c69656e7420736572766963653a203939393964",
            "unknown service"
        ),
        Message::ServiceError {
            cid: 3,
            description: "Unknown client service: 9999".into(),
            reason: ErrorReason::COMMUNICATION_FAILURE
        }
    );
    assert_eq!(
        decode("04000002096548656c6c6f", "topic value"),
        Message::TopicValue {
            topic_id: 521,
            compressed: false,
            payload: Bytes::from_static(b"\x65Hello")
        }
    );
    assert_eq!(checked, 16);
}

/// A well-formed body for a type code (after the type byte).
fn body_for(code: u8) -> &'static [u8] {
    match code {
        type_code::SERVICE_REQUEST => &[0x38, 0x05],
        type_code::SERVICE_RESPONSE => &[0x05],
        type_code::SERVICE_ERROR => &[0x01, 0x00, 0x64],
        type_code::TOPIC_VALUE | type_code::TOPIC_DELTA => &[0, 0, 2, 9, 0xaa],
        _ => &[],
    }
}

fn type_name(m: &Message) -> &'static str {
    match m {
        Message::ServiceRequest { .. } => "SERVICE_REQUEST",
        Message::ServiceResponse { .. } => "SERVICE_RESPONSE",
        Message::ServiceError { .. } => "SERVICE_ERROR",
        Message::TopicValue { .. } => "TOPIC_VALUE",
        Message::TopicDelta { .. } => "TOPIC_DELTA",
        Message::Abort => "ABORT",
        Message::CloseRequest => "CLOSE_REQUEST",
    }
}

#[test]
fn message_types_and_type_byte_decoding() {
    let doc = load("messages.json");
    let root = doc.root();
    let mut checked = 0;

    for e in root.get("types").arr() {
        let code: u8 = e.get("type").int();
        let name = e.get("name").str();
        let mut frame = vec![code];
        frame.extend_from_slice(body_for(code));
        match Message::decode(&Bytes::from(frame)) {
            Ok(m) => {
                assert_eq!(m.type_code(), code, "{}", e.path);
                assert_eq!(type_name(&m), name, "{}", e.path);
            }
            // FETCH_REPLY is legacy: like the Python client, we do not know it.
            Err(err) => {
                assert!(name.contains("legacy"), "{}: {err}", e.path);
                assert_eq!(
                    err,
                    MessageError::UnknownType {
                        type_code: code,
                        byte: code
                    },
                    "{}",
                    e.path
                );
            }
        }
        checked += 1;
    }

    for e in root.get("type_byte_decoding_js").arr() {
        let byte: u8 = e.get("byte").int();
        let code: u8 = e.get("type").int();
        let zlib = e.get("zlib").bool();
        let mut frame = vec![byte];
        frame.extend_from_slice(body_for(code));
        let m =
            Message::decode(&Bytes::from(frame.clone())).unwrap_or_else(|err| panic!("{}: {err}", e.path));
        assert_eq!(m.type_code(), code, "{}", e.path);
        let compressed = match &m {
            Message::TopicValue { compressed, .. } | Message::TopicDelta { compressed, .. } => *compressed,
            _ => false,
        };
        assert_eq!(compressed, zlib, "{}", e.path);
        // Re-encoding gives the canonical type byte: the type, plus 0x80 when compressed.
        let canonical = code | if zlib { 0x80 } else { 0 };
        let mut expected = frame;
        expected[0] = canonical;
        assert_eq!(m.to_bytes().as_ref(), expected, "{}", e.path);
        checked += 1;
    }
    assert_eq!(checked, 8 + 10);
}

#[test]
fn services() {
    let doc = load("services.json");
    let root = doc.root();
    let table = root.get("services");
    let mut checked = 0;

    for (id, description) in root.get("session_level").obj() {
        let n: i32 = id
            .parse()
            .unwrap_or_else(|_| panic!("{}: bad id", description.path));
        let name = description.str().split([':', ' ']).next().unwrap_or_default();
        let constant = match name {
            "SYSTEM_PING" => ServiceId::SYSTEM_PING,
            "USER_PING" => ServiceId::USER_PING,
            "CHANGE_PRINCIPAL" => ServiceId::CHANGE_PRINCIPAL,
            "GET_OWN_SESSION_PROPERTIES" => ServiceId::GET_OWN_SESSION_PROPERTIES,
            "RE_AUTHENTICATE" => ServiceId::RE_AUTHENTICATE,
            other => panic!("{}: no constant for {other}", description.path),
        };
        assert_eq!(constant, ServiceId(n), "{}", description.path);
        assert_eq!(constant.name(), Some(name), "{}", description.path);
        assert!(table.opt(id).is_some(), "{id} missing from the services table");
        checked += 1;
    }

    for (id, clients) in table.obj() {
        let n: i32 = id.parse().unwrap_or_else(|_| panic!("{}: bad id", clients.path));
        let names: Vec<&str> = ["python", "javascript"]
            .iter()
            .filter_map(|c| clients.opt(c))
            .map(|c| c.get("name").str())
            .collect();
        assert!(!names.is_empty(), "{}", clients.path);
        if let Some(ours) = ServiceId(n).name() {
            assert!(
                names.contains(&ours),
                "{}: ours {ours}, theirs {names:?}",
                clients.path
            );
        }
        // Every id round-trips as the varint after the SERVICE_REQUEST type byte.
        let m = request(ServiceId(n), 1, |_| {});
        let mut expected = BytesMut::new();
        wire::put_varint_i32(&mut expected, n);
        assert_eq!(
            m.to_bytes()[1..1 + expected.len()],
            expected[..],
            "{}",
            clients.path
        );
        assert_eq!(Message::decode(&m.to_bytes()), Ok(m), "{}", clients.path);
        checked += 1;
    }
    // Every service we name is in the union of both clients' tables.
    for n in 0..1000 {
        if ServiceId(n).name().is_some() {
            assert!(table.opt(&n.to_string()).is_some(), "service {n} is ours only");
        }
    }
    assert_eq!(checked, 5 + 111);
}
