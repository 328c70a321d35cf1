//! The fuzz targets' checks, shared by the cargo-fuzz binaries (`fuzz_targets/*.rs`, a line
//! each) and the stable corpus replay of `diffusion-proto/tests/fuzz_corpus.rs`. Structured
//! inputs come from the core's own `Arbitrary` impls (feature `arbitrary`); the client
//! session's script and checks are the core's `testing::ClientScript`.
//
// This file may only use crates that both the fuzz crate and diffusion-proto's
// dev-dependencies provide: diffusion-proto, bytes, arbitrary and httparse.

use std::time::Instant;

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use diffusion_proto::testing::{expected_after_parse, ClientScript, TopicScript};
use diffusion_proto::{
    apply_delta as apply, produce_delta, AcceptOutcome, ConnectionId, ConnectionParams, ConnectionResponse,
    CounterEntropy, Credentials, DataType, Message, MessageError, ParameterCarrier, ProtocolVersion,
    RawParams, ResponseCode, ResponseError, ResponseFields, ResponseHeader, Selector, SelectorError, Server,
    ServerConfig, ServerOutput, SessionId, SessionProperties, SessionToken, TopicValue, UpgradeRequest,
    UserTable,
};

/// A fuzz target over raw input bytes: panics when a check fails.
pub type Target = fn(&[u8]);

/// Every target by name (also its corpus directory under `fuzz/corpus/`), taking the raw
/// input as libFuzzer hands it over.
pub const TARGETS: [(&str, Target); 9] = [
    ("connection_response", connection_response),
    ("message", message),
    ("upgrade_params", upgrade_params),
    ("client_session", |data| {
        typed(data).into_iter().for_each(client_session)
    }),
    ("round_trip", |data| typed(data).into_iter().for_each(round_trip)),
    ("topic_session", |data| {
        typed(data).into_iter().for_each(topic_session)
    }),
    ("apply_delta", apply_delta),
    ("selector", selector),
    ("value_decode", value_decode),
];

/// A typed input from raw bytes exactly as `fuzz_target!` makes it: `None` for input too
/// short for the type, or that `arbitrary` refuses.
pub fn typed<'a, T: Arbitrary<'a>>(data: &'a [u8]) -> Option<T> {
    if data.len() < T::size_hint(0).0 {
        return None;
    }
    T::arbitrary_take_rest(Unstructured::new(data)).ok()
}

const VERSIONS: [ProtocolVersion; 2] = [ProtocolVersion::V25, ProtocolVersion::V29];
const SUCCESS_LEN: usize = ConnectionResponse::SUCCESS_LEN;
const REJECTION_LEN: usize = ConnectionResponse::REJECTION_LEN;

// ---- connection_response ---------------------------------------------------------------

/// The connection response parsers: `ResponseHeader::read`, `ResponseFields::read` and
/// `ConnectionResponse::parse` for both versions agree with each other and with the layout
/// of SPEC §3.1, and whatever parses re-encodes to the very same bytes.
pub fn connection_response(data: &[u8]) {
    let header = ResponseHeader::read(data);
    match (&header, data) {
        (Ok(h), [b'#', version, code, ..]) => assert_eq!((h.version, h.code), (*version, *code)),
        (Err(ResponseError::UnrecognisedProtocolByte(b)), [first, ..]) => {
            assert_eq!((*b, *first == b'#'), (*first, false))
        }
        (Err(ResponseError::Truncated { len, .. }), _) => {
            assert!(
                *len == data.len() && data.len() < REJECTION_LEN && data.first().is_none_or(|b| *b == b'#')
            )
        }
        (other, _) => panic!("header {other:?} for {data:02x?}"),
    }

    // Each field is present exactly when the frame reaches its end offset, and is read
    // from its own offset (SPEC §3.1), whatever the frame's length.
    let fields = ResponseFields::read(data);
    let at = |start: usize, end: usize| data.get(start..end);
    let be64 = |b: &[u8]| b.iter().fold(0u64, |acc, x| acc << 8 | u64::from(*x));
    assert_eq!(
        fields.session_id,
        at(3, 11).zip(at(11, 19)).map(|(s, v)| SessionId {
            server: be64(s),
            value: be64(v)
        })
    );
    let token = fields.token.as_ref().map(SessionToken::as_bytes);
    assert_eq!(token.map(|t| t.as_slice()), at(19, 43));
    assert_eq!(fields.ping_period_ms, at(43, 51).map(|b| be64(b) as i64));
    assert_eq!(fields.last_field, at(51, 55).map(|b| be64(b) as u32));
    if let Some(id) = fields.session_id {
        assert_eq!(id.to_string().parse::<SessionId>(), Ok(id));
    }
    if let Some(token) = &fields.token {
        if std::str::from_utf8(token.as_bytes()).is_ok() {
            assert_eq!(SessionToken::from_param(&token.to_param()).as_ref(), Some(token));
        }
    }

    let mut accepted = 0;
    for version in VERSIONS {
        let parsed = ConnectionResponse::parse(data, version);
        match &parsed {
            Ok(response) => {
                accepted += 1;
                assert_eq!(&response.encode(version)[..], data, "{response:?}");
                let code = response.code();
                assert_eq!(ResponseCode::from_u8(code.code()), Some(code));
                match response {
                    ConnectionResponse::Accepted(grant) => {
                        assert!(code.opens_session() && data.len() == SUCCESS_LEN);
                        assert_eq!(
                            grant.max_message_size().is_some(),
                            grant.recovery_sequence().is_none()
                        );
                        assert_eq!(Some(grant.session_id), fields.session_id);
                        assert_eq!(Some(&grant.token), fields.token.as_ref());
                    }
                    ConnectionResponse::Rejected(_) => {
                        assert!(!code.opens_session() && data.len() == REJECTION_LEN)
                    }
                }
            }
            Err(e) => match e {
                ResponseError::Truncated { len, needed } => {
                    assert!(*len == data.len() && len < needed)
                }
                ResponseError::UnrecognisedProtocolByte(_) => assert!(header.is_err()),
                ResponseError::VersionMismatch { expected, actual } => {
                    assert!(*expected == version.number() && expected != actual)
                }
                ResponseError::UnknownCode(code) => assert_eq!(ResponseCode::from_u8(*code), None),
                ResponseError::WrongLength { len, expected, .. } => {
                    assert!(*len == data.len() && len != expected)
                }
                other => panic!("an error this target does not know: {other}"),
            },
        }
    }
    // The version byte names at most one version.
    assert!(accepted <= 1);
}

// ---- message -----------------------------------------------------------------------------

/// The message decoder: any frame decodes or is refused with a typed error, and whatever
/// decodes re-encodes (to at most as many bytes, since only overlong varints, trailing bytes
/// and unused type bits are dropped) and decodes to the same value.
pub fn message(data: &[u8]) {
    let frame = Bytes::copy_from_slice(data);
    match Message::decode(&frame) {
        Ok(m) => {
            let _ = format!("{m:?}");
            let encoded = m.to_bytes();
            assert_eq!(encoded.len(), m.encoded_len(), "{m:?}");
            assert!(encoded.len() <= data.len(), "{m:?} grew from {data:02x?}");
            assert_eq!(encoded[0] & 0x3f, data[0] & 0x3f);
            assert_eq!(Message::decode(&encoded).as_ref(), Ok(&m));
        }
        Err(e) => {
            let _ = e.to_string();
            assert_eq!(matches!(e, MessageError::Empty), data.is_empty());
        }
    }
}
// ---- round_trip --------------------------------------------------------------------------

/// One encode → decode round trip.
#[derive(Debug, Clone, Arbitrary)]
pub enum RoundTrip {
    /// A message.
    Message(Message),
    /// A connection response, in a version.
    Response(ConnectionResponse, ProtocolVersion),
}

/// Encode → decode round trips of messages and connection responses (the first 64): the
/// encoding matches an independent reference encoder, its length is `encoded_len`, it
/// decodes to the value it was made from, and it passes the decoders' own checks.
pub fn round_trip(items: Vec<RoundTrip>) {
    for item in items.into_iter().take(64) {
        match item {
            RoundTrip::Message(m) => {
                let bytes = m.to_bytes();
                assert_eq!(&bytes[..], &reference_encoding(&m)[..], "{m:?}");
                assert_eq!(bytes.len(), m.encoded_len(), "{m:?}");
                assert_eq!(Message::decode(&bytes).as_ref(), Ok(&m));
                message(&bytes);
            }
            RoundTrip::Response(response, version) => {
                let bytes = response.encode(version);
                assert_eq!(ConnectionResponse::parse(&bytes, version).as_ref(), Ok(&response));
                connection_response(&bytes);
            }
        }
    }
}

/// The wire form written straight from SPEC §4.2/§4.3, independently of the crate's
/// encoder, so that the round trip cannot hide an encoder and decoder agreeing on a wrong
/// layout.
fn reference_encoding(message: &Message) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push(v as u8 | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    let mut out = Vec::new();
    match message {
        Message::ServiceRequest {
            service,
            cid,
            payload,
        } => {
            out.push(0);
            varint(&mut out, u64::from(service.0 as u32));
            varint(&mut out, *cid as u64);
            out.extend_from_slice(payload);
        }
        Message::ServiceResponse { cid, payload } => {
            out.push(6);
            varint(&mut out, *cid as u64);
            out.extend_from_slice(payload);
        }
        Message::ServiceError {
            cid,
            description,
            reason,
        } => {
            out.push(7);
            varint(&mut out, *cid as u64);
            varint(&mut out, description.len() as u64);
            out.extend_from_slice(description.as_bytes());
            varint(&mut out, u64::from(reason.0 as u32));
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
            let code = if matches!(message, Message::TopicValue { .. }) {
                4
            } else {
                5
            };
            out.push(code | if *compressed { 0x80 } else { 0 });
            out.extend_from_slice(&topic_id.to_be_bytes());
            out.extend_from_slice(payload);
        }
        Message::Abort => out.push(0x1c),
        Message::CloseRequest => out.push(0x1d),
    }
    out
}

// ---- upgrade_params ----------------------------------------------------------------------

/// The server side of the upgrade, from HTTP upgrade requests back to back (parsed by
/// httparse, as a server would): `ConnectionParams::parse` from query and headers and the
/// parameters back from both wire forms, `SessionProperties::parse` and `Credentials` of
/// every value, and `Server::accept` (one server for all requests, so a later one can
/// reconnect to an earlier session): its response parses, accepted ⇒ the parameters parsed,
/// unreadable parameters ⇒ 115 or 102, a rejection closes the transport.
pub fn upgrade_params(data: &[u8]) {
    // The whole input as one value, so that the fuzzer can reach these parsers directly.
    value_round_trips(&String::from_utf8_lossy(data));

    let users = UserTable::new().with_user("bob", "secret");
    let mut server = Server::new(
        ServerConfig::default(),
        Box::new(users),
        Box::new(CounterEntropy::default()),
    );
    let now = Instant::now();
    let mut rest = data;
    for n in 0..8 {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut headers);
        let Ok(httparse::Status::Complete(len)) = request.parse(rest) else {
            break;
        };
        rest = &rest[len..];
        let target = request.path.unwrap_or("/");
        let headers: Vec<(&str, &[u8])> = request.headers.iter().map(|h| (h.name, h.value)).collect();
        let upgrade = UpgradeRequest {
            headers: headers.clone(),
            ..UpgradeRequest::from_uri(target)
        };
        let query = target.split_once('?').map(|(_, q)| q);
        let raw = RawParams::new(query, headers.iter().copied());
        raw.iter()
            .filter_map(|p| std::str::from_utf8(p.value).ok())
            .for_each(value_round_trips);
        let parsed = raw.parse();
        match &parsed {
            Ok(params) => params_round_trip(params),
            Err(e) => assert!(!e.to_string().is_empty()),
        }
        let _ = format!("{upgrade:?}");
        let conn = ConnectionId(n);
        let outcome = server.accept(now, conn, &upgrade);
        let outputs: Vec<ServerOutput> = std::iter::from_fn(|| server.poll_output()).collect();
        check_accept(&outcome, &outputs, conn, &parsed);
    }
}

/// What `Server::accept` answered agrees with what the parameters were.
fn check_accept(
    outcome: &AcceptOutcome,
    outputs: &[ServerOutput],
    conn: ConnectionId,
    parsed: &Result<ConnectionParams, diffusion_proto::ParamError>,
) {
    let frame = outputs
        .iter()
        .find_map(|o| match o {
            ServerOutput::Transmit { conn: c, frame } if *c == conn => Some(frame.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no connection response for {outcome:?}"));
    let version = ResponseHeader::read(&frame)
        .ok()
        .and_then(|h| ProtocolVersion::from_number(h.version.into()));
    let version = version.unwrap_or_else(|| panic!("response {frame:02x?} has no version we speak"));
    let response = ConnectionResponse::parse(&frame, version)
        .unwrap_or_else(|e| panic!("the server's own response {frame:02x?} does not parse: {e}"));
    match outcome {
        AcceptOutcome::Accepted { session_id, code, .. } => {
            let params = parsed
                .as_ref()
                .unwrap_or_else(|e| panic!("accepted unparsable parameters: {e}"));
            assert_eq!(version, params.version);
            assert_eq!(params.reconnect.is_none(), *code == ResponseCode::Ok);
            match response {
                ConnectionResponse::Accepted(grant) => {
                    assert_eq!((grant.code, grant.session_id), (*code, *session_id))
                }
                other => panic!("accepted with {other:?}"),
            }
        }
        AcceptOutcome::Rejected { code } => {
            assert_eq!(response, ConnectionResponse::Rejected(*code));
            if parsed.is_err() {
                assert!(matches!(
                    code,
                    ResponseCode::ConnectionProtocolError | ResponseCode::Downgrade
                ));
            }
            assert!(outputs.contains(&ServerOutput::CloseTransport { conn }));
        }
    }
}

/// A parameter value read as session properties and as credentials comes back unchanged
/// from both forms of each.
fn value_round_trips(value: &str) {
    if let Ok(props) = SessionProperties::parse(value) {
        assert_eq!(
            SessionProperties::parse(&props.to_quoted_list()),
            Ok(props.clone())
        );
        assert_eq!(SessionProperties::parse(&props.to_json()), Ok(props));
    }
    if let Ok(creds) = Credentials::from_param(value) {
        assert_eq!(Credentials::from_param(&creds.to_param()).as_ref(), Ok(&creds));
        assert_eq!(Credentials::from_param(&creds.to_base64()), Ok(creds));
    }
}

/// Parameters come back from both of their wire forms.
fn params_round_trip(params: &ConnectionParams) {
    let headers = params.to_headers();
    let from_headers = ConnectionParams::parse(None, headers.iter().map(|(n, v)| (*n, v.as_bytes())));
    assert_eq!(
        from_headers.as_ref(),
        Ok(&expected_after_parse(params, ParameterCarrier::Headers))
    );
    let query = params.to_query();
    assert_eq!(
        ConnectionParams::parse(Some(&query), []).as_ref(),
        Ok(&expected_after_parse(params, ParameterCarrier::Query))
    );
}

// ---- client_session ----------------------------------------------------------------------

/// `ClientSession` under a script of frames, time, transport losses and commands, checked
/// after every step (see `diffusion_proto::testing::Checker`); at the end a user close ends
/// the session within its close timeout, with nothing left pending.
pub fn client_session(script: ClientScript) {
    script.run();
}

// ---- topic_session -----------------------------------------------------------------------

/// A connected `ClientSession` under a script of topic messages, checked after every step
/// against the registry's model (see `diffusion_proto::testing::TopicScript`): the same
/// events, answers, topics, values and counters, and the session still connected.
pub fn topic_session(script: TopicScript) {
    script.run();
}

// ---- apply_delta -------------------------------------------------------------------------

/// The largest value `apply_delta` may build here.
const DELTA_LIMIT: usize = 4096;

/// `apply_delta` on an old value and a delta (input: the old value's length, u16 LE, then
/// the old value, then the delta): fails or builds at most the limit, `f6` gives the old
/// value back; `produce_delta` from the old value to what was built, and to the delta's
/// bytes read as a value, gives a shorter script that applies back to it.
pub fn apply_delta(data: &[u8]) {
    let (len, rest) = match data {
        [lo, hi, rest @ ..] => (usize::from(u16::from_le_bytes([*lo, *hi])).min(rest.len()), rest),
        _ => return,
    };
    let (old, delta) = rest.split_at(len);
    match apply(old, delta, DELTA_LIMIT) {
        Ok(new) => {
            assert!(new.len() <= DELTA_LIMIT);
            if delta == [0xf6] {
                assert_eq!(new, old);
            }
            produced_applies(old, &new);
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    produced_applies(old, delta);
}

/// A produced delta (there is none when sending `new` itself is as short) is shorter than
/// `new`, never `f6`, and applies to `new` within `new`'s length.
fn produced_applies(old: &[u8], new: &[u8]) {
    if let Some(delta) = produce_delta(old, new) {
        assert!(delta.len() < new.len() && delta != [0xf6], "{delta:02x?}");
        assert_eq!(apply(old, &delta, new.len()).ok().as_deref(), Some(new));
    }
}

// ---- selector ----------------------------------------------------------------------------

/// `Selector::parse` of the input's first line (lossy UTF-8), matched against the other
/// lines as paths: a selector parses or fails with a typed error (`Empty` exactly for the
/// empty string); what parses keeps its text, and its normalized form (what the JavaScript
/// client sends) parses to a selector of the same kind that selects the same paths.
pub fn selector(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let expression = lines.next().unwrap_or_default();
    let paths: Vec<&str> = lines.take(16).collect();
    match Selector::parse(expression) {
        Ok(selector) => {
            assert_eq!(selector.as_str(), expression);
            assert_eq!(selector.to_string(), expression);
            let normalized = selector.normalized();
            if normalized == expression {
                // The same text again would prove nothing; the paths are still matched.
                for path in paths {
                    let _ = selector.matches(path);
                }
                return;
            }
            let again = Selector::parse(&normalized)
                .unwrap_or_else(|e| panic!("{expression:?} normalized to {normalized:?}: {e}"));
            assert_eq!(again.kind(), selector.kind());
            for path in paths {
                assert_eq!(
                    again.matches(path),
                    selector.matches(path),
                    "{expression:?} on {path:?}"
                );
            }
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            assert_eq!(matches!(e, SelectorError::Empty), expression.is_empty());
        }
    }
}

// ---- value_decode ------------------------------------------------------------------------

/// The input read as a value of every datatype: it decodes or fails with a typed error;
/// what decodes encodes to bytes that decode to the same value and encode to the same
/// bytes again (NaN aside, which is not equal to itself).
pub fn value_decode(data: &[u8]) {
    let bytes = Bytes::copy_from_slice(data);
    for data_type in DataType::ALL {
        let value = match TopicValue::decode(data_type, &bytes) {
            Ok(value) => value,
            Err(e) => {
                assert!(!e.to_string().is_empty());
                continue;
            }
        };
        let _ = format!("{value:?}");
        let encoded = value
            .encode()
            .unwrap_or_else(|e| panic!("{data_type} {value:?} does not encode: {e}"));
        let back = TopicValue::decode(data_type, &encoded).unwrap_or_else(|e| {
            panic!("{data_type} {value:?} encoded as {encoded:02x?} does not decode: {e}")
        });
        if !matches!(value, TopicValue::Double(x) if x.is_nan()) {
            assert_eq!(back, value, "{data_type} via {encoded:02x?}");
        }
        assert_eq!(
            back.encode().ok().as_ref(),
            Some(&encoded),
            "{data_type} {value:?}"
        );
    }
}
