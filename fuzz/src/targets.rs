//! The fuzz targets' logic, shared by the cargo-fuzz binaries and the workspace's stable
//! corpus replay test (`diffusion-proto/tests/fuzz_corpus.rs`), so both check the same things.
//
// Each target takes raw bytes and panics when a check fails. This file may only use crates
// that both the fuzz crate and diffusion-proto's dev-dependencies provide: diffusion-proto,
// bytes and arbitrary.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use diffusion_proto::{AcceptOutcome, ConnectionId, CounterEntropy, Server, ServerConfig};
use diffusion_proto::{
    Backoff, ClientConfig, ClientSession, ConnectionParams, ConnectionResponse, Credentials, ErrorReason,
    Event, FixedDelay, InboundRequestId, Message, MessageError, Output, ParameterCarrier, ProtocolVersion,
    ReconnectAction, ReconnectConfig, RequestId, ResponseCode, ResponseError, ServiceId, SessionGrant,
    SessionId, SessionProperties, SessionState, SessionToken, StateChange,
};
use diffusion_proto::{RawParams, ServerOutput, UpgradeRequest, UserTable};
use diffusion_proto::{ResponseFields, ResponseHeader};

/// A fuzz target: takes any bytes, panics when a check fails.
pub type Target = fn(&[u8]);

/// Every target by name: the name is also its corpus directory under `fuzz/corpus/`.
pub const TARGETS: [(&str, Target); 5] = [
    ("connection_response", connection_response),
    ("message", message),
    ("upgrade_params", upgrade_params),
    ("client_session", client_session),
    ("round_trip", round_trip),
];

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
    assert_eq!(
        fields
            .token
            .as_ref()
            .map(SessionToken::as_bytes)
            .map(|t| t.as_slice()),
        at(19, 43)
    );
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
            Err(e) => {
                let _ = e.to_string();
                match e {
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
                }
            }
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

/// A mirror of [`Message`] built by `arbitrary`'s derive (the real type has `Bytes` fields).
#[derive(Debug, Clone, Arbitrary)]
pub enum MirrorMessage {
    /// SERVICE_REQUEST.
    ServiceRequest {
        /// Service id.
        service: i32,
        /// Conversation id.
        cid: i64,
        /// Payload.
        payload: Vec<u8>,
    },
    /// SERVICE_RESPONSE.
    ServiceResponse {
        /// Conversation id.
        cid: i64,
        /// Payload.
        payload: Vec<u8>,
    },
    /// SERVICE_ERROR.
    ServiceError {
        /// Conversation id.
        cid: i64,
        /// Description.
        description: String,
        /// Reason code.
        reason: i32,
    },
    /// TOPIC_VALUE.
    TopicValue {
        /// Topic id.
        topic_id: i32,
        /// The 0x80 bit.
        compressed: bool,
        /// Payload.
        payload: Vec<u8>,
    },
    /// TOPIC_DELTA.
    TopicDelta {
        /// Topic id.
        topic_id: i32,
        /// The 0x80 bit.
        compressed: bool,
        /// Payload.
        payload: Vec<u8>,
    },
    /// ABORT.
    Abort,
    /// CLOSE_REQUEST.
    CloseRequest,
}

impl MirrorMessage {
    fn to_message(&self) -> Message {
        match self.clone() {
            MirrorMessage::ServiceRequest {
                service,
                cid,
                payload,
            } => Message::ServiceRequest {
                service: ServiceId(service),
                cid,
                payload: payload.into(),
            },
            MirrorMessage::ServiceResponse { cid, payload } => Message::ServiceResponse {
                cid,
                payload: payload.into(),
            },
            MirrorMessage::ServiceError {
                cid,
                description,
                reason,
            } => Message::ServiceError {
                cid,
                description,
                reason: ErrorReason(reason),
            },
            MirrorMessage::TopicValue {
                topic_id,
                compressed,
                payload,
            } => Message::TopicValue {
                topic_id,
                compressed,
                payload: payload.into(),
            },
            MirrorMessage::TopicDelta {
                topic_id,
                compressed,
                payload,
            } => Message::TopicDelta {
                topic_id,
                compressed,
                payload: payload.into(),
            },
            MirrorMessage::Abort => Message::Abort,
            MirrorMessage::CloseRequest => Message::CloseRequest,
        }
    }

    /// The wire form written straight from SPEC §4.2/§4.3, independently of the crate's
    /// encoder, so that the round trip cannot hide an encoder and decoder agreeing on a
    /// wrong layout.
    fn reference_encoding(&self) -> Vec<u8> {
        fn varint(out: &mut Vec<u8>, mut v: u64) {
            while v >= 0x80 {
                out.push(v as u8 | 0x80);
                v >>= 7;
            }
            out.push(v as u8);
        }
        let mut out = Vec::new();
        match self {
            MirrorMessage::ServiceRequest {
                service,
                cid,
                payload,
            } => {
                out.push(0);
                varint(&mut out, u64::from(*service as u32));
                varint(&mut out, *cid as u64);
                out.extend_from_slice(payload);
            }
            MirrorMessage::ServiceResponse { cid, payload } => {
                out.push(6);
                varint(&mut out, *cid as u64);
                out.extend_from_slice(payload);
            }
            MirrorMessage::ServiceError {
                cid,
                description,
                reason,
            } => {
                out.push(7);
                varint(&mut out, *cid as u64);
                varint(&mut out, description.len() as u64);
                out.extend_from_slice(description.as_bytes());
                varint(&mut out, u64::from(*reason as u32));
            }
            MirrorMessage::TopicValue {
                topic_id,
                compressed,
                payload,
            }
            | MirrorMessage::TopicDelta {
                topic_id,
                compressed,
                payload,
            } => {
                let code = if matches!(self, MirrorMessage::TopicValue { .. }) {
                    4
                } else {
                    5
                };
                out.push(code | if *compressed { 0x80 } else { 0 });
                out.extend_from_slice(&topic_id.to_be_bytes());
                out.extend_from_slice(payload);
            }
            MirrorMessage::Abort => out.push(0x1c),
            MirrorMessage::CloseRequest => out.push(0x1d),
        }
        out
    }
}

/// A mirror of a connection response, for the encode → parse direction.
#[derive(Debug, Clone, Arbitrary)]
pub struct MirrorResponse {
    /// Picks the code from [`ResponseCode::ALL`].
    pub code: u8,
    /// Version 29 instead of 25.
    pub v29: bool,
    /// Session id, server part.
    pub server: u64,
    /// Session id, value part.
    pub value: u64,
    /// Token bytes.
    pub token: [u8; 24],
    /// Ping period.
    pub ping_period_ms: i64,
    /// Bytes 51..55.
    pub last_field: u32,
}

/// One item of the round-trip target.
#[derive(Debug, Clone, Arbitrary)]
pub enum RoundTripItem {
    /// A message.
    Message(MirrorMessage),
    /// A connection response.
    Response(MirrorResponse),
}

/// Encode → decode round trips of arbitrary messages (and connection responses): the
/// encoding matches an independent reference encoder, its length is `encoded_len`, and it
/// decodes to the value it was made from.
pub fn round_trip(data: &[u8]) {
    let mut u = Unstructured::new(data);
    // `arbitrary` returns defaults once the data runs out, so stop at the end of the data.
    for _ in 0..64 {
        if u.is_empty() {
            break;
        }
        let Ok(item) = RoundTripItem::arbitrary(&mut u) else {
            break;
        };
        match item {
            RoundTripItem::Message(mirror) => {
                let m = mirror.to_message();
                let bytes = m.to_bytes();
                assert_eq!(&bytes[..], &mirror.reference_encoding()[..], "{m:?}");
                assert_eq!(bytes.len(), m.encoded_len(), "{m:?}");
                assert_eq!(Message::decode(&bytes).as_ref(), Ok(&m));
                message(&bytes);
            }
            RoundTripItem::Response(r) => {
                let code = ResponseCode::ALL[usize::from(r.code) % ResponseCode::ALL.len()];
                let version = if r.v29 {
                    ProtocolVersion::V29
                } else {
                    ProtocolVersion::V25
                };
                let response = if code.opens_session() {
                    ConnectionResponse::Accepted(SessionGrant::new(
                        code,
                        SessionId {
                            server: r.server,
                            value: r.value,
                        },
                        SessionToken::new(r.token),
                        r.ping_period_ms,
                        r.last_field,
                    ))
                } else {
                    ConnectionResponse::Rejected(code)
                };
                let bytes = response.encode(version);
                assert_eq!(ConnectionResponse::parse(&bytes, version).as_ref(), Ok(&response));
                connection_response(&bytes);
            }
        }
    }
}

// ---- upgrade_params ----------------------------------------------------------------------

/// The server side of the upgrade: `ConnectionParams::parse` from the query and from
/// headers, `SessionProperties::parse` in both forms, `Credentials::from_param`, and
/// `Server::accept`.
///
/// The input is text shaped like the upgrade requests it stands for: requests separated by
/// an empty line; in each, the first line is the request target (`/diffusion?query`) and
/// every further line a `name: value` header (values are raw bytes, not necessarily UTF-8).
/// The requests go to one server in turn, so a later one can reconnect to an earlier session.
pub fn upgrade_params(data: &[u8]) {
    // The whole input as one value, so that the fuzzer can reach these parsers directly.
    let text = String::from_utf8_lossy(data);
    properties_round_trip(&text);
    credentials_round_trip(&text);

    let users = UserTable::new().with_user("bob", "secret");
    let mut server = Server::new(
        ServerConfig::default(),
        Box::new(users),
        Box::new(CounterEntropy::default()),
    );
    let now = Instant::now();
    for (n, request) in split_requests(data).take(8).enumerate() {
        let mut lines = request.split(|&b| b == b'\n');
        let target = String::from_utf8_lossy(lines.next().unwrap_or_default()).into_owned();
        let headers: Vec<(String, &[u8])> = lines
            .filter_map(|line| {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                let colon = line.iter().position(|&b| b == b':')?;
                let name = String::from_utf8_lossy(&line[..colon]).trim().to_owned();
                Some((name, line[colon + 1..].trim_ascii_start()))
            })
            .collect();
        let query = target.split_once('?').map(|(_, q)| q);
        for (_, value) in query
            .unwrap_or_default()
            .split('&')
            .filter_map(|p| p.split_once('='))
        {
            properties_round_trip(value);
            credentials_round_trip(value);
        }
        for (_, value) in &headers {
            if let Ok(value) = std::str::from_utf8(value) {
                properties_round_trip(value);
                credentials_round_trip(value);
            }
        }
        // What the server reads: the query, then the parameter headers.
        let parsed =
            RawParams::new(query, headers.iter().map(|(name, value)| (name.as_str(), *value))).parse();
        match &parsed {
            Ok(params) => params_round_trip(params),
            Err(e) => {
                let _ = e.to_string();
            }
        }

        let conn = ConnectionId(n as u64);
        let mut upgrade = UpgradeRequest::from_uri(&target);
        for (name, value) in &headers {
            upgrade = upgrade.with_header(name, value);
        }
        let _ = format!("{upgrade:?}");
        let outcome = server.accept(now, conn, &upgrade);
        let outputs: Vec<ServerOutput> = std::iter::from_fn(|| server.poll_output()).collect();
        let frame = outputs
            .iter()
            .find_map(|o| match o {
                ServerOutput::Transmit { conn: c, frame } if *c == conn => Some(frame.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no connection response for {outcome:?}"));
        let version = ResponseHeader::read(&frame)
            .ok()
            .and_then(|h| ProtocolVersion::from_number(h.version.into()))
            .unwrap_or_else(|| panic!("response {frame:02x?} has no version we speak"));
        let response = ConnectionResponse::parse(&frame, version)
            .unwrap_or_else(|e| panic!("the server's own response {frame:02x?} does not parse: {e}"));
        match outcome {
            AcceptOutcome::Accepted { session_id, code, .. } => {
                let params = parsed
                    .as_ref()
                    .unwrap_or_else(|e| panic!("accepted unparsable parameters: {e}"));
                assert_eq!(version, params.version);
                assert_eq!(params.reconnect.is_none(), code == ResponseCode::Ok);
                match response {
                    ConnectionResponse::Accepted(grant) => {
                        assert_eq!((grant.code, grant.session_id), (code, session_id))
                    }
                    other => panic!("accepted with {other:?}"),
                }
            }
            AcceptOutcome::Rejected { code } => {
                assert_eq!(response, ConnectionResponse::Rejected(code));
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
}

/// Splits at empty lines (`\n\n` or `\n\r\n`).
fn split_requests(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(data);
    std::iter::from_fn(move || {
        let input = rest?;
        let mut i = 0;
        while i < input.len() {
            if input[i] == b'\n' {
                let after = &input[i + 1..];
                let gap = if after.starts_with(b"\n") {
                    Some(1)
                } else if after.starts_with(b"\r\n") {
                    Some(2)
                } else {
                    None
                };
                if let Some(gap) = gap {
                    rest = Some(&after[gap..]);
                    return Some(&input[..i]);
                }
            }
            i += 1;
        }
        rest = None;
        Some(input)
    })
}

/// Parsed session properties come back unchanged from both of their forms.
fn properties_round_trip(sp: &str) {
    match SessionProperties::parse(sp) {
        Ok(props) => {
            assert_eq!(
                SessionProperties::parse(&props.to_quoted_list()).as_ref(),
                Ok(&props)
            );
            assert_eq!(SessionProperties::parse(&props.to_json()).as_ref(), Ok(&props));
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// Decoded credentials come back unchanged from both of their parameter forms.
fn credentials_round_trip(param: &str) {
    if let Ok(creds) = Credentials::from_param(param) {
        assert_eq!(Credentials::from_param(&creds.to_param()).as_ref(), Ok(&creds));
        assert_eq!(Credentials::from_param(&creds.to_base64()).as_ref(), Ok(&creds));
    }
}

/// What `params` become once written in `carrier`'s form and read back. Two losses are by
/// design: an empty principal is anonymous (the Python client sends an empty `username` for
/// anonymous sessions), and the query carries `password` only together with `username` (as
/// the JavaScript client does).
pub fn expected_after_parse(params: &ConnectionParams, carrier: ParameterCarrier) -> ConnectionParams {
    let mut expected = params.clone();
    if carrier == ParameterCarrier::Query && params.principal.is_none() {
        expected.credentials = Credentials::None;
    }
    if expected.principal.as_deref() == Some("") {
        expected.principal = None;
    }
    expected
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

/// How the fuzzed session is configured: the first bytes of a `client_session` input,
/// read by `arbitrary`'s derive (each integer little-endian, in field order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Arbitrary)]
pub struct SessionSetup {
    /// bit 0 reconnection on; bit 1 version 29; bit 2 the other carrier; bit 3 a request
    /// timeout; bit 4 no `$Environment`; bit 5 proposed properties.
    pub flags: u8,
    /// Strategy (% 4): backoff, fixed delay, abort after `strategy_arg % 4` attempts, abort at once.
    pub strategy: u8,
    /// The fixed delay in ms.
    pub strategy_arg: u16,
    /// Reconnection timeout in ms, plus 1.
    pub reconnect_timeout_ms: u16,
    /// Connection timeout in ms, plus 1.
    pub connection_timeout_ms: u16,
    /// Initial connection attempts (% 3 + 1).
    pub initial_attempts: u8,
    /// Delay between initial attempts, ms.
    pub retry_delay_ms: u16,
    /// Request timeout in ms, plus 1 (with flag bit 3).
    pub request_timeout_ms: u16,
    /// Inbound limit: 0 the default, else `32 << (n % 16)` bytes.
    pub max_inbound: u8,
    /// Recovery buffer capacity: `n % 8`, or 256 when `n >= 128`.
    pub recovery_capacity: u8,
    /// Close timeout in ms.
    pub close_timeout_ms: u16,
    /// Identity (% 4): anonymous, `bob`, empty principal, `a b+é`; (/ 4 % 3): no
    /// credentials, `secret`, `pässwörd`.
    pub identity: u8,
    /// Services registered from the start: bit 0 87, bit 1 99, bit 2 56, bit 3 9999.
    pub services: u8,
}

impl SessionSetup {
    /// The bytes `arbitrary` reads this from.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.flags);
        out.push(self.strategy);
        out.extend_from_slice(&self.strategy_arg.to_le_bytes());
        out.extend_from_slice(&self.reconnect_timeout_ms.to_le_bytes());
        out.extend_from_slice(&self.connection_timeout_ms.to_le_bytes());
        out.push(self.initial_attempts);
        out.extend_from_slice(&self.retry_delay_ms.to_le_bytes());
        out.extend_from_slice(&self.request_timeout_ms.to_le_bytes());
        out.push(self.max_inbound);
        out.push(self.recovery_capacity);
        out.extend_from_slice(&self.close_timeout_ms.to_le_bytes());
        out.push(self.identity);
        out.push(self.services);
    }

    fn config(&self) -> ClientConfig {
        let Ok(mut config) = ClientConfig::new("ws://h:1") else {
            unreachable!("a constant, valid URL")
        };
        if self.flags & 2 != 0 {
            config = config.with_version(ProtocolVersion::V29);
        }
        if self.flags & 4 != 0 {
            config.carrier = match config.carrier {
                ParameterCarrier::Headers => ParameterCarrier::Query,
                ParameterCarrier::Query => ParameterCarrier::Headers,
            };
        }
        config.reconnect = (self.flags & 1 != 0).then(|| {
            let arg = self.strategy_arg;
            let strategy: Arc<dyn diffusion_proto::ReconnectStrategy> = match self.strategy % 4 {
                0 => Arc::new(Backoff::default()),
                1 => Arc::new(FixedDelay(Duration::from_millis(arg.into()))),
                2 => Arc::new(move |attempt: u32, _: Duration| {
                    if attempt > u32::from(arg % 4) {
                        ReconnectAction::Abort
                    } else {
                        ReconnectAction::RetryAfter(Duration::from_millis(u64::from(arg / 4)))
                    }
                }),
                _ => Arc::new(|_: u32, _: Duration| ReconnectAction::Abort),
            };
            ReconnectConfig {
                timeout: Duration::from_millis(u64::from(self.reconnect_timeout_ms) + 1),
                strategy,
            }
        });
        config.connection_timeout = Duration::from_millis(u64::from(self.connection_timeout_ms) + 1);
        config.initial_connect_attempts = u32::from(self.initial_attempts % 3) + 1;
        config.initial_retry_delay = Duration::from_millis(self.retry_delay_ms.into());
        config.request_timeout =
            (self.flags & 8 != 0).then(|| Duration::from_millis(u64::from(self.request_timeout_ms) + 1));
        if self.flags & 16 != 0 {
            config.environment = None;
        }
        if self.flags & 32 != 0 {
            for (k, v) in [
                ("Foo", "bar"),
                ("k", "v \"q\" \\ 'a'\ttab"),
                ("$Country", "gb"),
                ("é", "\u{1}\n"),
            ] {
                let _ = config.properties.insert(k, v);
            }
        }
        if self.max_inbound != 0 {
            config.max_inbound_message_size = 32 << (self.max_inbound % 16);
        }
        config.recovery_buffer_capacity = if self.recovery_capacity >= 128 {
            256
        } else {
            usize::from(self.recovery_capacity % 8)
        };
        config.close_timeout = Duration::from_millis(self.close_timeout_ms.into());
        config.principal = match self.identity % 4 {
            0 => None,
            1 => Some("bob".to_owned()),
            2 => Some(String::new()),
            _ => Some("a b+é".to_owned()),
        };
        config.credentials = match self.identity / 4 % 3 {
            0 => Credentials::None,
            1 => Credentials::password("secret"),
            _ => Credentials::password("pässwörd"),
        };
        config
    }

    fn services(&self) -> impl Iterator<Item = ServiceId> + '_ {
        (0..4)
            .filter(|b| self.services & (1 << b) != 0)
            .map(service_by_index)
    }
}

fn service_by_index(n: u8) -> ServiceId {
    [
        ServiceId(87),
        ServiceId(99),
        ServiceId::USER_PING,
        ServiceId(9999),
    ][usize::from(n % 4)]
}

/// A well-formed message from the server: which (`kind` % 10), and its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageOp {
    /// 0 SYSTEM_PING, 1 USER_PING, 2 request to service `select`, 3 response to pending
    /// request `select`, 4 error for it, 5 response to `cid`, 6 topic value, 7 topic delta,
    /// 8 ABORT, 9 CLOSE_REQUEST.
    pub kind: u8,
    /// A service or pending request index; bit 0 also the compression bit of topic messages.
    pub select: u8,
    /// Conversation id (or topic id).
    pub cid: i64,
    /// Payload length.
    pub size: u16,
}

/// A connection response: mostly well formed, sometimes bent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseOp {
    /// The code (% 12): 100, 105, 106, 116, 117, 118, 102, 119, 107, 111, 42 (unknown), or
    /// the low byte of `last_field`.
    pub code: u8,
    /// The version byte (% 8): 6 the other version we speak, 7 version 26, else the session's.
    pub version: u8,
    /// The token (% 3): `ABCDEFGHIJKLMNOPQRSTUVWX`, a real captured token, or `raw_token`.
    pub token: u8,
    /// The ping period (% 5): 0, 1000, 90000, -1 or `i64::MAX` ms.
    pub ping: u8,
    /// Bytes 51..55.
    pub last_field: u32,
    /// The length (% 8): 0 one byte short, 1 one byte long, else exact.
    pub length: u8,
    /// Token bytes for `token` 2.
    pub raw_token: [u8; 24],
}

/// One step of a `client_session` run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// 0: arbitrary frame bytes (length byte, then the bytes).
    RawFrame(Vec<u8>),
    /// 1: a well-formed message.
    Message(MessageOp),
    /// 2: a connection response.
    Response(ResponseOp),
    /// 3: time passes by this many ms.
    Advance(u16),
    /// 4: time jumps to the session's next deadline.
    AdvanceToDeadline,
    /// 5: the transport ends unasked.
    TransportClosed,
    /// 6: the user pings.
    Ping,
    /// 7: the user calls service `service` with a payload of `size % (1 MiB + 1)` bytes.
    Invoke {
        /// Service index.
        service: u8,
        /// Payload size.
        size: u32,
    },
    /// 8: the user closes.
    Close,
    /// 9: the user answers inbound request `index` (or an unknown id), with an error when `error` is odd.
    Respond {
        /// Which received request (modulo their number); the id 0 when none was received.
        index: u8,
        /// Odd: answer with SERVICE_ERROR.
        error: u8,
        /// Payload size.
        size: u8,
    },
    /// 10: the user registers (`on` odd) or deregisters a service.
    Register {
        /// Service index.
        service: u8,
        /// Odd: register.
        on: u8,
    },
    /// 11: time passes by this many seconds.
    AdvanceSeconds(u16),
}

const OPS: u8 = 12;

fn take_u8(u: &mut Unstructured<'_>) -> u8 {
    u8::arbitrary(u).unwrap_or_default()
}
fn take_u16(u: &mut Unstructured<'_>) -> u16 {
    u16::arbitrary(u).unwrap_or_default()
}
fn take_u32(u: &mut Unstructured<'_>) -> u32 {
    u32::arbitrary(u).unwrap_or_default()
}
fn take_i64(u: &mut Unstructured<'_>) -> i64 {
    i64::arbitrary(u).unwrap_or_default()
}

impl Op {
    /// Reads one op; integers are little-endian, missing bytes read as zero.
    pub fn read(u: &mut Unstructured<'_>) -> Op {
        match take_u8(u) % OPS {
            0 => {
                let len = usize::from(take_u8(u)).min(u.len());
                Op::RawFrame(u.bytes(len).unwrap_or_default().to_vec())
            }
            1 => Op::Message(MessageOp {
                kind: take_u8(u),
                select: take_u8(u),
                cid: take_i64(u),
                size: take_u16(u),
            }),
            2 => Op::Response(ResponseOp {
                code: take_u8(u),
                version: take_u8(u),
                token: take_u8(u),
                ping: take_u8(u),
                last_field: take_u32(u),
                length: take_u8(u),
                raw_token: <[u8; 24]>::arbitrary(u).unwrap_or_default(),
            }),
            3 => Op::Advance(take_u16(u)),
            4 => Op::AdvanceToDeadline,
            5 => Op::TransportClosed,
            6 => Op::Ping,
            7 => Op::Invoke {
                service: take_u8(u),
                size: take_u32(u),
            },
            8 => Op::Close,
            9 => Op::Respond {
                index: take_u8(u),
                error: take_u8(u),
                size: take_u8(u),
            },
            10 => Op::Register {
                service: take_u8(u),
                on: take_u8(u),
            },
            _ => Op::AdvanceSeconds(take_u16(u)),
        }
    }

    /// The bytes [`Op::read`] reads this from (for seeds).
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Op::RawFrame(bytes) => {
                let len = bytes.len().min(255);
                out.extend_from_slice(&[0, len as u8]);
                out.extend_from_slice(&bytes[..len]);
            }
            Op::Message(m) => {
                out.extend_from_slice(&[1, m.kind, m.select]);
                out.extend_from_slice(&m.cid.to_le_bytes());
                out.extend_from_slice(&m.size.to_le_bytes());
            }
            Op::Response(r) => {
                out.extend_from_slice(&[2, r.code, r.version, r.token, r.ping]);
                out.extend_from_slice(&r.last_field.to_le_bytes());
                out.push(r.length);
                out.extend_from_slice(&r.raw_token);
            }
            Op::Advance(ms) => {
                out.push(3);
                out.extend_from_slice(&ms.to_le_bytes());
            }
            Op::AdvanceToDeadline => out.push(4),
            Op::TransportClosed => out.push(5),
            Op::Ping => out.push(6),
            Op::Invoke { service, size } => {
                out.extend_from_slice(&[7, *service]);
                out.extend_from_slice(&size.to_le_bytes());
            }
            Op::Close => out.push(8),
            Op::Respond { index, error, size } => out.extend_from_slice(&[9, *index, *error, *size]),
            Op::Register { service, on } => out.extend_from_slice(&[10, *service, *on]),
            Op::AdvanceSeconds(s) => {
                out.push(11);
                out.extend_from_slice(&s.to_le_bytes());
            }
        }
    }
}

/// Reads a whole `client_session` input: the setup, then ops to the end (at most 256).
pub fn read_session_input(data: &[u8]) -> (SessionSetup, Vec<Op>) {
    let mut u = Unstructured::new(data);
    let setup = SessionSetup::arbitrary(&mut u).unwrap_or_default();
    let mut ops = Vec::new();
    while !u.is_empty() && ops.len() < 256 {
        ops.push(Op::read(&mut u));
    }
    (setup, ops)
}

/// Writes a `client_session` input (for seeds); [`read_session_input`] reads it back.
pub fn encode_session_input(setup: &SessionSetup, ops: &[Op]) -> Vec<u8> {
    let mut out = Vec::new();
    setup.encode(&mut out);
    for op in ops {
        op.encode(&mut out);
    }
    out
}

const TOKEN: [u8; 24] = *b"ABCDEFGHIJKLMNOPQRSTUVWX";
const CAPTURED_TOKEN: [u8; 24] = *b"8j/qMkxT8Iw2dwqeFA9gEzpA";

/// `ClientSession` driven by an arbitrary sequence of frames, time steps, transport
/// closures and user commands. After every step: only SPEC §11.3 transitions, no request
/// completed twice or unknown, nothing pending once closed, every transmitted frame a
/// message, every connect request's parameters readable back by a server. At the end a
/// user close must end the session within its close timeout, with nothing left pending.
pub fn client_session(data: &[u8]) {
    let (setup, ops) = read_session_input(data);
    let config = setup.config();
    let version = config.version;
    // One real instant per run; everything else is an offset from it, so no sleeping.
    let base = Instant::now();
    let mut now = base;
    let wall = |now: Instant| SystemTime::UNIX_EPOCH + now.duration_since(base);
    let mut session = ClientSession::new(config, now);
    for service in setup.services() {
        session.register_service(service);
    }
    let mut check = Checker::default();
    check.drain(&mut session);
    for op in ops {
        match op {
            Op::RawFrame(bytes) => session.handle_frame(now, bytes.into()),
            Op::Message(m) => {
                let frame = server_message(&m, &check.open).to_bytes();
                session.handle_frame(now, frame)
            }
            Op::Response(r) => session.handle_frame(now, connection_response_frame(&r, version)),
            Op::Advance(ms) => {
                now += Duration::from_millis(ms.into());
                session.handle_timeout(now)
            }
            Op::AdvanceSeconds(s) => {
                now += Duration::from_secs(s.into());
                session.handle_timeout(now)
            }
            Op::AdvanceToDeadline => {
                if let Some(deadline) = session.poll_timeout() {
                    now = now.max(deadline);
                }
                session.handle_timeout(now)
            }
            Op::TransportClosed => {
                session.handle_transport_closed(now, diffusion_proto::TransportError::Ended)
            }
            Op::Ping => {
                if let Ok(id) = session.ping(now, wall(now)) {
                    check.issued(id);
                }
            }
            Op::Invoke { service, size } => {
                // Half the time small, else up to 1 MiB: larger than any limit it meets.
                let size = if size & 1 == 0 {
                    size % 64
                } else {
                    size % ((1 << 20) + 1)
                };
                let payload = Bytes::from(vec![0xa5; size as usize]);
                if let Ok(id) = session.invoke(now, wall(now), service_by_index(service), payload) {
                    check.issued(id);
                }
            }
            Op::Close => session.close(now),
            Op::Respond { index, error, size } => {
                let id = match check.inbound.len() {
                    0 => InboundRequestId(0),
                    n => check.inbound[usize::from(index) % n],
                };
                let result = if error & 1 == 1 {
                    session.respond_error(id, "handler failed", ErrorReason::CALLBACK_EXCEPTION)
                } else {
                    session.respond(id, Bytes::from(vec![7; size.into()]))
                };
                if let Err(e) = result {
                    let _ = e.to_string();
                }
            }
            Op::Register { service, on } => {
                if on & 1 == 1 {
                    session.register_service(service_by_index(service))
                } else {
                    session.deregister_service(service_by_index(service))
                }
            }
        }
        check.drain(&mut session);
    }
    // However the run left it, closing ends the session within the close timeout.
    session.close(now);
    check.drain(&mut session);
    now += session.config().close_timeout + Duration::from_millis(1);
    session.handle_timeout(now);
    check.drain(&mut session);
    assert!(
        session.state().is_closed(),
        "still {} after close + close timeout",
        session.state()
    );
    assert!(check.open.is_empty());
}

/// A message the server might send, for `m`'s kind.
fn server_message(m: &MessageOp, open: &BTreeSet<RequestId>) -> Message {
    let payload = Bytes::from(vec![0x5a; m.size.into()]);
    let pending = || match open.len() {
        0 => m.cid,
        n => open
            .iter()
            .nth(usize::from(m.select) % n)
            .map_or(m.cid, |id| id.0),
    };
    match m.kind % 10 {
        0 => Message::ServiceRequest {
            service: ServiceId::SYSTEM_PING,
            cid: m.cid,
            payload: Bytes::new(),
        },
        1 => Message::ServiceRequest {
            service: ServiceId::USER_PING,
            cid: m.cid,
            payload: Bytes::new(),
        },
        2 => Message::ServiceRequest {
            service: service_by_index(m.select),
            cid: m.cid,
            payload,
        },
        3 => Message::ServiceResponse {
            cid: pending(),
            payload,
        },
        4 => Message::ServiceError {
            cid: pending(),
            description: "boom".to_owned(),
            reason: ErrorReason::ACCESS_DENIED,
        },
        5 => Message::ServiceResponse { cid: m.cid, payload },
        6 => Message::TopicValue {
            topic_id: m.cid as i32,
            compressed: m.select & 1 == 1,
            payload,
        },
        7 => Message::TopicDelta {
            topic_id: m.cid as i32,
            compressed: m.select & 1 == 1,
            payload,
        },
        8 => Message::Abort,
        _ => Message::CloseRequest,
    }
}

fn connection_response_frame(r: &ResponseOp, version: ProtocolVersion) -> Bytes {
    const CODES: [u8; 10] = [100, 105, 106, 116, 117, 118, 102, 119, 107, 111];
    let code_byte = match r.code % 12 {
        10 => 42,
        11 => r.last_field as u8,
        n => CODES[usize::from(n)],
    };
    let version_byte = match r.version % 8 {
        6 => match version {
            ProtocolVersion::V25 => 29,
            ProtocolVersion::V29 => 25,
        },
        7 => 26,
        _ => version.number(),
    };
    let token = match r.token % 3 {
        0 => TOKEN,
        1 => CAPTURED_TOKEN,
        _ => r.raw_token,
    };
    let ping_period_ms = [0, 1000, 90_000, -1, i64::MAX][usize::from(r.ping % 5)];
    let mut frame = vec![b'#', version_byte, code_byte];
    if ResponseCode::from_u8(code_byte).is_some_and(ResponseCode::opens_session) {
        frame.extend_from_slice(&1u64.to_be_bytes());
        frame.extend_from_slice(&2u64.to_be_bytes());
        frame.extend_from_slice(&token);
        frame.extend_from_slice(&ping_period_ms.to_be_bytes());
        frame.extend_from_slice(&r.last_field.to_be_bytes());
    }
    match r.length % 8 {
        0 => {
            frame.pop();
        }
        1 => frame.push(0),
        _ => {}
    }
    frame.into()
}

/// What the checks of `client_session` remember between steps.
#[derive(Default)]
struct Checker {
    state: Option<SessionState>,
    /// Requests issued and not yet completed.
    open: BTreeSet<RequestId>,
    /// Inbound request ids delivered to the application.
    inbound: Vec<InboundRequestId>,
}

impl Checker {
    fn issued(&mut self, id: RequestId) {
        assert!(self.open.insert(id), "{id:?} issued while still open");
    }

    fn drain(&mut self, session: &mut ClientSession) {
        let mut state = *self.state.get_or_insert(SessionState::Connecting);
        while let Some(output) = session.poll_output() {
            match output {
                Output::Event(Event::StateChanged(StateChange { old, new, reason })) => {
                    assert_eq!(old, state, "a change from a state the session was not in");
                    assert!(old.can_transition_to(new), "illegal transition {old} -> {new}");
                    assert_eq!(new.is_closed(), reason.is_some(), "{old} -> {new}: {reason:?}");
                    state = new;
                }
                Output::Event(Event::Response { id, result }) => {
                    assert!(
                        self.open.remove(&id),
                        "{id:?} completed twice, or never issued: {result:?}"
                    );
                }
                Output::Event(Event::Connected { .. }) => {
                    assert_eq!(state, SessionState::ConnectedActive)
                }
                Output::Event(Event::InboundRequest { id, .. }) => self.inbound.push(id),
                Output::Event(_) | Output::CloseTransport => {}
                Output::Transmit(frame) => {
                    if let Err(e) = Message::decode(&frame) {
                        panic!("the session sent {frame:02x?}, which is no message: {e}")
                    }
                }
                Output::Connect(request) => {
                    assert!(!state.is_closed(), "a connect request in {state}");
                    assert_eq!(request.is_reconnect(), state == SessionState::RecoveringReconnect);
                    let uri = request.uri();
                    let query = uri.split_once('?').map(|(_, q)| q);
                    let headers = request.headers();
                    let parsed =
                        ConnectionParams::parse(query, headers.iter().map(|(n, v)| (*n, v.as_bytes())));
                    assert_eq!(
                        parsed.as_ref(),
                        Ok(&expected_after_parse(&request.params, request.carrier)),
                        "{uri} {headers:?}"
                    );
                }
                other => panic!("an output the checks do not know: {other:?}"),
            }
        }
        self.state = Some(state);
        assert_eq!(session.state(), state);
        assert_eq!(session.pending_requests(), self.open.len());
        if state.is_closed() {
            assert!(self.open.is_empty(), "closed with {:?} pending", self.open);
            assert_eq!(session.poll_timeout(), None);
        }
    }
}
