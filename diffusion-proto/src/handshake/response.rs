//! The connection response (SPEC §3): the first binary frame after the WebSocket upgrade,
//! 55 bytes on success and 3 on rejection, with its response codes, session id and token.
//!
//! Parsing is strict like the Python client's: exact length, exact version, known code.

use bytes::{BufMut, Bytes, BytesMut};

use super::ids::{SessionId, SessionToken};
use crate::wire::Reader;

const PROTOCOL_BYTE: u8 = ConnectionResponse::PROTOCOL_BYTE;
const SUCCESS_LEN: usize = ConnectionResponse::SUCCESS_LEN;
const REJECTION_LEN: usize = ConnectionResponse::REJECTION_LEN;

/// A protocol version this crate speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum ProtocolVersion {
    /// Version 25, spoken by the official Python client 6.12 (the default).
    #[default]
    V25,
    /// Version 29, spoken by the official JavaScript client 6.12.
    V29,
}

impl ProtocolVersion {
    /// The number sent as `v` and in the response's version byte.
    pub fn number(self) -> u8 {
        match self {
            ProtocolVersion::V25 => 25,
            ProtocolVersion::V29 => 29,
        }
    }

    /// The version with this number, if we speak it.
    pub fn from_number(n: u32) -> Option<Self> {
        match n {
            25 => Some(ProtocolVersion::V25),
            29 => Some(ProtocolVersion::V29),
            _ => None,
        }
    }

    /// The client type code the official client of this version sends: `PY` for 25, `WB`
    /// for 29.
    ///
    /// We default to these rather than a code of our own because the server's set of
    /// accepted codes is unknown (SPEC Q11): these two are known to be accepted with their
    /// versions.
    pub fn default_client_type(self) -> &'static str {
        match self {
            ProtocolVersion::V25 => "PY",
            ProtocolVersion::V29 => "WB",
        }
    }
}

impl std::fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.number())
    }
}

/// How a client should treat a response code (the Python client's classes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResponseClass {
    /// A session was opened or resumed.
    Success,
    /// The server cannot speak the requested version.
    DowngradeRequired,
    /// Server-to-server reverse connection accepted.
    ReverseSuccess,
    /// The principal or credentials were rejected.
    Authentication,
    /// The server is starting; trying later may succeed.
    ServerInitializing,
    /// Refused for good.
    Fatal,
}

macro_rules! response_codes {
    ($($(#[$doc:meta])* $variant:ident = $code:literal, $name:literal, $class:ident;)*) => {
        /// A connection response code (SPEC §3.2).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ResponseCode {
            $($(#[$doc])* $variant,)*
        }

        impl ResponseCode {
            /// Every known code.
            pub const ALL: &'static [ResponseCode] = &[$(ResponseCode::$variant,)*];

            /// The code with this byte value, if known.
            pub fn from_u8(code: u8) -> Option<Self> {
                match code {
                    $($code => Some(ResponseCode::$variant),)*
                    _ => None,
                }
            }

            /// The byte value.
            pub fn code(self) -> u8 {
                match self { $(ResponseCode::$variant => $code,)* }
            }

            /// The official clients' name.
            pub fn name(self) -> &'static str {
                match self { $(ResponseCode::$variant => $name,)* }
            }

            /// How a client treats it.
            pub fn class(self) -> ResponseClass {
                match self { $(ResponseCode::$variant => ResponseClass::$class,)* }
            }
        }
    };
}

response_codes! {
    /// Server-to-server: peer connection failed.
    PeerConnectionFailed = 1, "PEER_CONNECTION_FAILED", Fatal;
    /// Server-to-server: connection to itself refused.
    LoopbackDenied = 2, "LOOPBACK_DENIED", Fatal;
    /// Server-to-server: no secondary acceptor with that name.
    SecondaryAcceptorNotFound = 3, "SECONDARY_ACCEPTOR_NOT_FOUND", Fatal;
    /// A new session was created.
    Ok = 100, "OK", Success;
    /// The server cannot use the requested protocol version.
    Downgrade = 102, "DOWNGRADE", DowngradeRequired;
    /// The session was resumed and nothing was lost.
    Reconnected = 105, "RECONNECTED", Success;
    /// The session was resumed but some messages could not be recovered.
    ReconnectedWithMessageLoss = 106, "RECONNECTED_WITH_MESSAGE_LOSS", Success;
    /// Server-to-server reverse connection accepted.
    ReverseConnectionAccepted = 107, "REVERSE_CONNECTION_ACCEPTED", ReverseSuccess;
    /// Connection refused (legacy protocol-4 code).
    Rejected = 111, "REJECTED", Fatal;
    /// Connection type not supported by the connector (older servers).
    ConnectionUnsupported = 112, "CONNECTION_UNSUPPORTED", Fatal;
    /// The licence's connection limit is reached.
    LicenseExceeded = 113, "LICENSE_EXCEEDED", Fatal;
    /// The connector does not allow reconnection.
    ReconnectionUnsupported = 114, "RECONNECTION_UNSUPPORTED", Fatal;
    /// The connection request was malformed or invalid.
    ConnectionProtocolError = 115, "CONNECTION_PROTOCOL_ERROR", Fatal;
    /// The principal or credentials were rejected.
    AuthenticationFailed = 116, "AUTHENTICATION_FAILED", Authentication;
    /// Reconnection to a session the server does not (or no longer) know.
    UnknownSession = 117, "UNKNOWN_SESSION", Fatal;
    /// Reconnection refused because messages were lost.
    ReconnectionFailedMessageLoss = 118, "RECONNECTION_FAILED_MESSAGE_LOSS", Fatal;
    /// The server is still starting; retry later.
    RejectedServerInitialising = 119, "REJECTED_SERVER_INITIALISING", ServerInitializing;
    /// Unspecified server failure (older servers).
    Error = 127, "ERROR", Fatal;
}

impl ResponseCode {
    /// True for 100, 105 and 106: the codes that come with a session. 102 and 107 are
    /// not, whatever the Python client's table says: no session fields follow them.
    pub fn opens_session(self) -> bool {
        matches!(
            self,
            ResponseCode::Ok | ResponseCode::Reconnected | ResponseCode::ReconnectedWithMessageLoss
        )
    }

    /// What the code means, in words an operator can act on.
    pub fn meaning(self) -> &'static str {
        match self {
            ResponseCode::PeerConnectionFailed => "server-to-server peer connection failed",
            ResponseCode::LoopbackDenied => "server-to-server connection to itself refused",
            ResponseCode::SecondaryAcceptorNotFound => "no secondary acceptor with that name",
            ResponseCode::Ok => "new session created",
            ResponseCode::Downgrade => "the server cannot use the requested protocol version",
            ResponseCode::Reconnected => "session resumed without loss",
            ResponseCode::ReconnectedWithMessageLoss => "session resumed, but some messages were lost",
            ResponseCode::ReverseConnectionAccepted => "server-to-server reverse connection accepted",
            ResponseCode::Rejected => "connection refused",
            ResponseCode::ConnectionUnsupported => "connection type not supported by the connector",
            ResponseCode::LicenseExceeded => "the server's licence connection limit is reached",
            ResponseCode::ReconnectionUnsupported => "the connector does not allow reconnection",
            ResponseCode::ConnectionProtocolError => "the connection request was invalid",
            ResponseCode::AuthenticationFailed => "principal or credentials rejected",
            ResponseCode::UnknownSession => "the server does not know this session (any more)",
            ResponseCode::ReconnectionFailedMessageLoss => "reconnection refused because messages were lost",
            ResponseCode::RejectedServerInitialising => "the server is still starting; try again later",
            ResponseCode::Error => "unspecified server error",
        }
    }
}

impl std::fmt::Display for ResponseCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} ({})", self.code(), self.name(), self.meaning())
    }
}

/// Bytes 51..55 of a successful response, whose meaning depends on the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LastField {
    /// 100 and 106: the largest message the server accepts from this client.
    MaxMessageSize(u32),
    /// 105: the first client sequence number the server did not receive.
    RecoverySequence(u32),
}

impl LastField {
    /// What bytes 51..55 mean for `code`: the recovery sequence for 105, else the maximum
    /// message size.
    pub fn for_code(code: ResponseCode, raw: u32) -> Self {
        match code {
            ResponseCode::Reconnected => LastField::RecoverySequence(raw),
            _ => LastField::MaxMessageSize(raw),
        }
    }

    /// The four bytes as a number.
    pub fn raw(self) -> u32 {
        match self {
            LastField::MaxMessageSize(n) | LastField::RecoverySequence(n) => n,
        }
    }
}

/// The fields of a successful response (code 100, 105 or 106).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionGrant {
    /// 100, 105 or 106.
    pub code: ResponseCode,
    /// The session's id.
    pub session_id: SessionId,
    /// The token for reconnection.
    pub token: SessionToken,
    /// The server's system ping period in milliseconds.
    pub ping_period_ms: i64,
    /// Bytes 51..55: the maximum message size for 100/106, the recovery sequence for 105.
    pub last_field: LastField,
}

impl SessionGrant {
    /// A grant whose bytes 51..55 are `raw`, read as [`LastField::for_code`] says.
    pub fn new(
        code: ResponseCode,
        session_id: SessionId,
        token: SessionToken,
        ping_period_ms: i64,
        raw: u32,
    ) -> Self {
        SessionGrant {
            code,
            session_id,
            token,
            ping_period_ms,
            last_field: LastField::for_code(code, raw),
        }
    }

    /// The largest message the server accepts from this client (codes 100 and 106).
    pub fn max_message_size(&self) -> Option<u32> {
        match self.last_field {
            LastField::MaxMessageSize(n) => Some(n),
            LastField::RecoverySequence(_) => None,
        }
    }

    /// For 105: the first client sequence number the server did not receive.
    pub fn recovery_sequence(&self) -> Option<i64> {
        match self.last_field {
            // Sent as a signed 32-bit number, whatever its sign.
            LastField::RecoverySequence(n) => Some(i64::from(n as i32)),
            LastField::MaxMessageSize(_) => None,
        }
    }
}

/// A parsed connection response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionResponse {
    /// A session was opened or resumed.
    Accepted(SessionGrant),
    /// The connection was refused with this code.
    Rejected(ResponseCode),
}

/// Only responses that can be sent: a code from [`ResponseCode::ALL`], with the session
/// fields exactly when the code opens a session.
#[cfg(feature = "arbitrary")]
impl<'a> arbitrary::Arbitrary<'a> for ConnectionResponse {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        let code = *u.choose(ResponseCode::ALL)?;
        if !code.opens_session() {
            return Ok(ConnectionResponse::Rejected(code));
        }
        let session_id = SessionId {
            server: u.arbitrary()?,
            value: u.arbitrary()?,
        };
        let token = SessionToken::new(u.arbitrary()?);
        Ok(ConnectionResponse::Accepted(SessionGrant::new(
            code,
            session_id,
            token,
            u.arbitrary()?,
            u.arbitrary()?,
        )))
    }
}

/// Why a connection response could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResponseError {
    /// The frame was shorter than its form needs.
    #[error("connection response truncated: {len} byte(s), at least {needed} needed")]
    Truncated {
        /// Bytes received.
        len: usize,
        /// Bytes needed.
        needed: usize,
    },
    /// The first byte was not `#`.
    #[error("not a Diffusion connection response: first byte {0:#04x}, expected 0x23 ('#'); is this a Diffusion server?")]
    UnrecognisedProtocolByte(u8),
    /// The server speaks another protocol version.
    #[error("protocol version mismatch: we asked for {expected}, the server answered {actual}; use a client version the server supports")]
    VersionMismatch {
        /// The version we asked for.
        expected: u8,
        /// The version in the response.
        actual: u8,
    },
    /// The response code is not one this protocol defines.
    #[error("unknown connection response code {0}")]
    UnknownCode(u8),
    /// The length does not fit the code's form.
    #[error("connection response with code {code} has {len} bytes; that form has exactly {expected}")]
    WrongLength {
        /// The code byte.
        code: u8,
        /// Bytes received.
        len: usize,
        /// Bytes the form has.
        expected: usize,
    },
}

impl ConnectionResponse {
    /// The protocol byte `#` that opens every connection response.
    pub const PROTOCOL_BYTE: u8 = 0x23;
    /// Length of a successful protocol-25/29 connection response.
    pub const SUCCESS_LEN: usize = 55;
    /// Length of a rejection.
    pub const REJECTION_LEN: usize = 3;

    /// Parses the first frame of a connection for a client that asked for `version`.
    pub fn parse(frame: &[u8], version: ProtocolVersion) -> Result<Self, ResponseError> {
        let header = ResponseHeader::read(frame)?;
        if header.version != version.number() {
            return Err(ResponseError::VersionMismatch {
                expected: version.number(),
                actual: header.version,
            });
        }
        let code = ResponseCode::from_u8(header.code).ok_or(ResponseError::UnknownCode(header.code))?;
        let expected = if code.opens_session() {
            SUCCESS_LEN
        } else {
            REJECTION_LEN
        };
        if frame.len() != expected {
            return Err(ResponseError::WrongLength {
                code: header.code,
                len: frame.len(),
                expected,
            });
        }
        if !code.opens_session() {
            return Ok(ConnectionResponse::Rejected(code));
        }
        let fields = ResponseFields::read(frame);
        match fields {
            ResponseFields {
                session_id: Some(session_id),
                token: Some(token),
                ping_period_ms: Some(ping_period_ms),
                last_field: Some(last_field),
                ..
            } => Ok(ConnectionResponse::Accepted(SessionGrant::new(
                code,
                session_id,
                token,
                ping_period_ms,
                last_field,
            ))),
            _ => Err(ResponseError::Truncated {
                len: frame.len(),
                needed: SUCCESS_LEN,
            }),
        }
    }

    /// The response code.
    pub fn code(&self) -> ResponseCode {
        match self {
            ConnectionResponse::Accepted(grant) => grant.code,
            ConnectionResponse::Rejected(code) => *code,
        }
    }

    /// The wire form, as a server sends it, for `version`.
    pub fn encode(&self, version: ProtocolVersion) -> Bytes {
        let mut out = BytesMut::with_capacity(SUCCESS_LEN);
        out.put_u8(PROTOCOL_BYTE);
        out.put_u8(version.number());
        out.put_u8(self.code().code());
        if let ConnectionResponse::Accepted(g) = self {
            out.put_u64(g.session_id.server);
            out.put_u64(g.session_id.value);
            out.put_slice(g.token.as_bytes());
            out.put_i64(g.ping_period_ms);
            out.put_u32(g.last_field.raw());
        }
        out.freeze()
    }
}

/// The first three bytes of any connection response, of any protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHeader {
    /// The version byte.
    pub version: u8,
    /// The code byte, known or not.
    pub code: u8,
}

impl ResponseHeader {
    /// Reads and checks the protocol byte, then version and code.
    pub fn read(frame: &[u8]) -> Result<Self, ResponseError> {
        match *frame {
            [] => Err(ResponseError::Truncated {
                len: 0,
                needed: REJECTION_LEN,
            }),
            [b, ..] if b != PROTOCOL_BYTE => Err(ResponseError::UnrecognisedProtocolByte(b)),
            [_, version, code, ..] => Ok(ResponseHeader { version, code }),
            _ => Err(ResponseError::Truncated {
                len: frame.len(),
                needed: REJECTION_LEN,
            }),
        }
    }
}

/// Whatever session fields a response of any layout holds, read by length: protocols 5–6
/// stop after the token (43 bytes), 7–15 add the ping period (51), 16+ the last field (55).
/// For diagnostics and captures; a client accepts only what [`ConnectionResponse::parse`] does.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResponseFields {
    /// Bytes 3..19.
    pub session_id: Option<SessionId>,
    /// Bytes 19..43.
    pub token: Option<SessionToken>,
    /// Bytes 43..51.
    pub ping_period_ms: Option<i64>,
    /// Bytes 51..55.
    pub last_field: Option<u32>,
}

impl ResponseFields {
    /// Reads the fields that `frame` is long enough to hold, after the 3-byte header.
    pub fn read(frame: &[u8]) -> Self {
        let mut r = Reader::new(frame.get(REJECTION_LEN..).unwrap_or_default());
        let mut fields = ResponseFields::default();
        // The first field the frame is too short for ends the reading: reading on would
        // take a later field from bytes that belong to the truncated one.
        let (Ok(server), Ok(value)) = (r.u64_be(), r.u64_be()) else {
            return fields;
        };
        fields.session_id = Some(SessionId { server, value });
        let Ok(token) = r.array::<24>() else {
            return fields;
        };
        fields.token = Some(SessionToken(token));
        let Ok(ping_period_ms) = r.i64_be() else {
            return fields;
        };
        fields.ping_period_ms = Some(ping_period_ms);
        fields.last_field = r.u32_be().ok();
        fields
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn encode_parse_round_trip(code in proptest::sample::select(ResponseCode::ALL), server: u64, value: u64,
                                   token: [u8; 24], period: i64, last: u32, v29: bool) {
            let version = if v29 { ProtocolVersion::V29 } else { ProtocolVersion::V25 };
            let response = if code.opens_session() {
                ConnectionResponse::Accepted(SessionGrant::new(code, SessionId { server, value },
                    SessionToken::new(token), period, last))
            } else {
                ConnectionResponse::Rejected(code)
            };
            prop_assert_eq!(ConnectionResponse::parse(&response.encode(version), version), Ok(response));
        }

        #[test]
        fn any_bytes_parse_or_err(frame in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = ConnectionResponse::parse(&frame, ProtocolVersion::V25);
            let _ = ResponseFields::read(&frame);
        }
    }
}
