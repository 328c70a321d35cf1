//! `connection_response.json` against `ConnectionResponse`, `ResponseHeader`,
//! `ResponseFields`, `ResponseCode`, `SessionId` and `SessionToken`.

use diffusion_proto::{
    ConnectionResponse, ProtocolVersion, ResponseClass, ResponseCode, ResponseError, SessionGrant, SessionId,
    SessionToken,
};
use diffusion_proto::{ResponseFields, ResponseHeader};

use crate::json::{load, unhex, V};

fn session_id(text: &str) -> SessionId {
    text.parse()
        .unwrap_or_else(|e| panic!("{text:?} is not a session id: {e}"))
}

fn token(text: &str) -> SessionToken {
    SessionToken::from_param(text).unwrap_or_else(|| panic!("{text:?} is not a 24-byte token"))
}

/// A protocol-25/29 success frame.
fn success_frame(version: u8, code: u8, id: SessionId, token: &str, ping: i64, last: u32) -> Vec<u8> {
    let mut f = vec![ConnectionResponse::PROTOCOL_BYTE, version, code];
    f.extend(id.server.to_be_bytes());
    f.extend(id.value.to_be_bytes());
    f.extend(token.as_bytes());
    f.extend(ping.to_be_bytes());
    f.extend(last.to_be_bytes());
    assert_eq!(f.len(), ConnectionResponse::SUCCESS_LEN);
    f
}

fn accepted(r: &Result<ConnectionResponse, ResponseError>, at: &str) -> SessionGrant {
    match r {
        Ok(ConnectionResponse::Accepted(g)) => g.clone(),
        other => panic!("{at}: expected a session, got {other:?}"),
    }
}

fn python_class(name: &str) -> ResponseClass {
    match name {
        "SUCCESS" => ResponseClass::Success,
        "DOWNGRADE_REQUIRED" => ResponseClass::DowngradeRequired,
        "REVERSE_SUCCESS" => ResponseClass::ReverseSuccess,
        "AUTHENTICATION" => ResponseClass::Authentication,
        "SERVER_INITIALIZING" => ResponseClass::ServerInitializing,
        "FATAL" => ResponseClass::Fatal,
        other => panic!("unknown Python response class {other}"),
    }
}

#[test]
fn python_v25_parse() {
    let doc = load("connection_response.json");
    let cases = doc.root().get("python_v25_parse").get("cases");
    let mut checked = 0;
    for (name, e) in cases.obj() {
        let frame = unhex(e.get("hex").str());
        let parsed = e.get("parsed");
        let ours = ConnectionResponse::parse(&frame, ProtocolVersion::V25);
        match parsed.opt("error").map(|v| v.str()) {
            None => {
                let g = accepted(&ours, &e.path);
                let code: u8 = parsed.get("code").int();
                assert_eq!(g.code.code(), code, "{}", e.path);
                assert_eq!(g.code.name(), parsed.get("name").str(), "{}", e.path);
                assert_eq!(
                    g.session_id.to_string(),
                    parsed.get("session_id").str(),
                    "{}",
                    e.path
                );
                assert_eq!(g.session_id, session_id(parsed.get("session_id").str()));
                assert_eq!(g.token, token(parsed.get("token").str()), "{}", e.path);
                assert_eq!(g.token.to_param(), parsed.get("token").str(), "{}", e.path);
                assert_eq!(
                    g.ping_period_ms,
                    parsed.get("ping_period").int::<i64>(),
                    "{}",
                    e.path
                );
                // PY calls bytes 51..55 maximum_message_size whatever the code; for 105
                // they are the recovery sequence.
                let last: u32 = parsed.get("maximum_message_size").int();
                assert_eq!(g.last_field.raw(), last, "{}", e.path);
                if g.code == ResponseCode::Reconnected {
                    assert_eq!(g.recovery_sequence(), Some(i64::from(last)), "{}", e.path);
                    assert_eq!(g.max_message_size(), None, "{}", e.path);
                } else {
                    assert_eq!(g.max_message_size(), Some(last), "{}", e.path);
                    assert_eq!(g.recovery_sequence(), None, "{}", e.path);
                }
                let response = ConnectionResponse::Accepted(g);
                assert_eq!(
                    response.encode(ProtocolVersion::V25).as_ref(),
                    frame,
                    "{}",
                    e.path
                );
            }
            Some(error @ ("ServerConnectionResponseError" | "ServerInitializingError")) => {
                let code =
                    ResponseCode::from_u8(frame[2]).unwrap_or_else(|| panic!("{}: unknown code", e.path));
                assert_eq!(ours, Ok(ConnectionResponse::Rejected(code)), "{}", e.path);
                let class = if error == "ServerInitializingError" {
                    ResponseClass::ServerInitializing
                } else {
                    ResponseClass::Authentication
                };
                assert_eq!(code.class(), class, "{}", e.path);
                assert_eq!(
                    ConnectionResponse::Rejected(code)
                        .encode(ProtocolVersion::V25)
                        .as_ref(),
                    frame,
                    "{}",
                    e.path
                );
            }
            Some("ProtocolError") => assert_eq!(
                ours,
                Err(ResponseError::VersionMismatch {
                    expected: 25,
                    actual: frame[1]
                }),
                "{}",
                e.path
            ),
            // A struct length mismatch in PY.
            Some("error") if frame.len() == 3 => {
                // Our choice: a 3-byte DOWNGRADE is a clean rejection, not a parse error.
                assert_eq!(name, "downgrade_3_bytes");
                assert_eq!(
                    ours,
                    Ok(ConnectionResponse::Rejected(ResponseCode::Downgrade)),
                    "{}",
                    e.path
                );
            }
            Some("error") => assert_eq!(
                ours,
                Err(ResponseError::WrongLength {
                    code: frame[2],
                    len: frame.len(),
                    expected: ConnectionResponse::SUCCESS_LEN
                }),
                "{}",
                e.path
            ),
            Some(other) => panic!("{}: unknown error {other}", e.path),
        }
        checked += 1;
    }
    assert_eq!(checked, 8);
}

#[test]
fn javascript_v29_parse() {
    let doc = load("connection_response.json");
    let cases = doc.root().get("javascript_v29_parse").get("cases");
    let ok = cases.get("ok_v29");
    let ok_frame = |version: u8| {
        success_frame(
            version,
            ok.get("response").int(),
            session_id(ok.get("identity").str()),
            ok.get("token").str(),
            ok.get("systemPingPeriod").int(),
            ok.get("maximumMessageSize").int(),
        )
    };
    let mut checked = 0;
    for (name, e) in cases.obj() {
        if let Some(error) = e.opt("error") {
            assert_eq!(error.str(), "DeserialisationError", "{}", e.path);
            let (frame, expected) = if name == "bad_protocol_byte" {
                let mut f = ok_frame(29);
                f[0] = b'4';
                (f, ResponseError::UnrecognisedProtocolByte(b'4'))
            } else {
                let version: u8 = name
                    .strip_prefix("ok_v")
                    .and_then(|n| n.strip_suffix("_to_v29_client"))
                    .unwrap_or_else(|| panic!("{}: unknown case", e.path))
                    .parse()
                    .unwrap_or_else(|_| panic!("{}: unknown case", e.path));
                (
                    ok_frame(version),
                    ResponseError::VersionMismatch {
                        expected: 29,
                        actual: version,
                    },
                )
            };
            let reason = e.get("reason").str();
            match &expected {
                ResponseError::UnrecognisedProtocolByte(_) => {
                    assert_eq!(reason, "UNRECOGNISED_PROTOCOL_BYTE")
                }
                _ => assert_eq!(reason, "PROTOCOL_VERSION_MISMATCH"),
            }
            assert_eq!(
                ConnectionResponse::parse(&frame, ProtocolVersion::V29),
                Err(expected),
                "{}",
                e.path
            );
            checked += 1;
            continue;
        }

        assert_eq!(e.get("version").int::<u8>(), 29, "{}", e.path);
        let code: u8 = e.get("response").int();
        let success = e.get("success").bool();
        let sequence: i64 = e.get("sequence").int();
        let max_size: i64 = e.get("maximumMessageSize").int();
        let frame = if success {
            let last = if code == 105 { sequence } else { max_size };
            success_frame(
                29,
                code,
                session_id(e.get("identity").str()),
                e.get("token").str(),
                e.get("systemPingPeriod").int(),
                u32::try_from(last).unwrap_or_else(|_| panic!("{}: last field", e.path)),
            )
        } else {
            assert!(e.get("identity").is_null() && e.get("token").is_null());
            vec![ConnectionResponse::PROTOCOL_BYTE, 29, code]
        };
        let ours = ConnectionResponse::parse(&frame, ProtocolVersion::V29);
        let parsed = ours.clone().unwrap_or_else(|err| panic!("{}: {err}", e.path));
        assert_eq!(parsed.code().code(), code, "{}", e.path);
        assert_eq!(parsed.code().opens_session(), success, "{}", e.path);
        match &parsed {
            ConnectionResponse::Accepted(g) => {
                assert_eq!(g.session_id.to_string(), e.get("identity").str(), "{}", e.path);
                assert_eq!(g.token.to_param(), e.get("token").str(), "{}", e.path);
                assert_eq!(g.ping_period_ms, e.get("systemPingPeriod").int::<i64>());
                assert_eq!(g.recovery_sequence().unwrap_or(0), sequence, "{}", e.path);
                assert_eq!(g.max_message_size().map_or(-1, i64::from), max_size, "{}", e.path);
            }
            ConnectionResponse::Rejected(_) => {
                assert!(!success);
                assert_eq!(max_size, -1, "{}", e.path);
                assert_eq!(sequence, 0, "{}", e.path);
            }
        }
        assert_eq!(parsed.encode(ProtocolVersion::V29).as_ref(), frame, "{}", e.path);
        // A client that asked for 25 refuses it.
        assert_eq!(
            ConnectionResponse::parse(&frame, ProtocolVersion::V25),
            Err(ResponseError::VersionMismatch {
                expected: 25,
                actual: 29
            }),
            "{}",
            e.path
        );
        checked += 1;
    }
    assert_eq!(checked, 7);
}

#[test]
fn response_codes() {
    let doc = load("connection_response.json");
    let root = doc.root();
    let mut checked = 0;
    let mut seen = Vec::new();
    for e in root.get("response_codes").arr() {
        let n: u8 = e.get("code").int();
        let code = ResponseCode::from_u8(n).unwrap_or_else(|| panic!("{}: code {n} unknown to us", e.path));
        assert_eq!(code.code(), n);
        let name = e.get("name").str();
        let name = name.strip_suffix(" (dissector table only)").unwrap_or(name);
        assert_eq!(code.name(), name, "{}", e.path);
        match e.opt("python_class") {
            Some(class) => assert_eq!(code.class(), python_class(class.str()), "{}", e.path),
            // Only in the dissector's older table: refused for good.
            None => assert_eq!(code.class(), ResponseClass::Fatal, "{}", e.path),
        }
        match e.opt("python_is_success").map(|s| s.bool()) {
            // Our deliberate choice: 102 and 107 carry no session fields.
            Some(true) if matches!(n, 102 | 107) => {
                assert!(!code.opens_session(), "{}", e.path);
            }
            Some(py) => assert_eq!(code.opens_session(), py, "{}", e.path),
            None => assert!(!code.opens_session(), "{}", e.path),
        }
        seen.push(code);
        checked += 1;
    }
    // The table is ours, no more, no less.
    for code in ResponseCode::ALL {
        assert!(seen.contains(code), "{code:?} is not in the vector table");
    }
    assert_eq!(seen.len(), ResponseCode::ALL.len());
    // The JavaScript client treats only these as success; so do we.
    let note = root.get("response_codes_note").str();
    assert!(note.contains("only 100,105,106 as success"), "{note}");
    let opening: Vec<u8> = ResponseCode::ALL
        .iter()
        .filter(|c| c.opens_session())
        .map(|c| c.code())
        .collect();
    assert_eq!(opening, [100, 105, 106]);
    assert_eq!(ResponseCode::from_u8(0), None);
    assert_eq!(ResponseCode::from_u8(101), None);
    assert_eq!(checked, 18);
}

/// Checks a captured connection response of protocol 4..15: the header and the
/// by-length fields read as `decoded`, and a version-25 client refuses it cleanly.
pub fn check_captured_response(frame: &[u8], decoded: Option<&V<'_>>, at: &str) {
    let Some(d) = decoded else {
        // Protocol 4: a text handshake starting with '4'.
        assert_eq!(frame[0], b'4', "{at}");
        assert_eq!(
            ResponseHeader::read(frame),
            Err(ResponseError::UnrecognisedProtocolByte(b'4')),
            "{at}"
        );
        assert_eq!(
            ConnectionResponse::parse(frame, ProtocolVersion::V25),
            Err(ResponseError::UnrecognisedProtocolByte(b'4')),
            "{at}"
        );
        return;
    };
    assert_eq!(d.get("protocol_byte").str(), "0x23", "{at}");
    assert_eq!(frame.len(), d.get("length").int::<usize>(), "{at}");
    let version: u8 = d.get("version").int();
    let code: u8 = d.get("response_code").int();
    let header = ResponseHeader::read(frame).unwrap_or_else(|e| panic!("{at}: {e}"));
    assert_eq!((header.version, header.code), (version, code), "{at}");

    let fields = ResponseFields::read(frame);
    assert_eq!(
        fields.session_id.map(|id| id.to_string()),
        d.opt("session_id").map(|s| s.str().to_owned()),
        "{at}"
    );
    assert_eq!(
        fields.token.as_ref().map(SessionToken::to_param),
        d.opt("token_ascii").map(|s| s.str().to_owned()),
        "{at}"
    );
    assert_eq!(
        fields.ping_period_ms,
        d.opt("ping_period_ms").map(|p| p.int::<i64>()),
        "{at}"
    );
    assert_eq!(fields.last_field, None, "{at}: no capture is 55 bytes long");

    assert_eq!(
        ConnectionResponse::parse(frame, ProtocolVersion::V25),
        Err(ResponseError::VersionMismatch {
            expected: 25,
            actual: version
        }),
        "{at}"
    );
    assert_eq!(
        ConnectionResponse::parse(frame, ProtocolVersion::V29),
        Err(ResponseError::VersionMismatch {
            expected: 29,
            actual: version
        }),
        "{at}"
    );
}

#[test]
fn captured_responses() {
    let doc = load("connection_response.json");
    let mut checked = 0;
    for e in doc.root().get("captured_responses").arr() {
        let frame = unhex(e.get("hex").str());
        let decoded = e.opt("decoded");
        if decoded.is_none() {
            assert!(e.get("note").str().contains("protocol 4"), "{}", e.path);
        } else {
            let requested: u8 = e.get("requested_version").int();
            assert!((5..=15).contains(&requested), "{}", e.path);
        }
        check_captured_response(&frame, decoded.as_ref(), &e.path);
        checked += 1;
    }
    assert_eq!(checked, 31);
}
