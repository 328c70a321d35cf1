//! The connection parameters of SPEC §2 for a first connect or a reconnect: rendered as the
//! JavaScript client's percent-encoded query or the Python client's header list, and read
//! back by a server from the one table of parameter names, with errors that hold no value.

use std::borrow::Cow;
use std::fmt;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};

use super::ids::SessionToken;
use super::response::ProtocolVersion;
use crate::credentials::{Credentials, CredentialsError};
use crate::properties::{PropertyError, SessionProperties};

/// What replaces a secret parameter's value wherever one is shown.
pub const REDACTED: &str = "<redacted>";

/// Where the connection parameters travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParameterCarrier {
    /// Extra HTTP headers, raw values (the Python client's way).
    Headers,
    /// The URI query, percent-encoded (the JavaScript client's way).
    Query,
}

impl ParameterCarrier {
    /// The carrier the official client of `version` uses: headers for 25, query for 29.
    pub fn default_for(version: ProtocolVersion) -> Self {
        match version {
            ProtocolVersion::V25 => ParameterCarrier::Headers,
            ProtocolVersion::V29 => ParameterCarrier::Query,
        }
    }

    /// `headers` or `query`.
    pub fn name(self) -> &'static str {
        match self {
            ParameterCarrier::Headers => "headers",
            ParameterCarrier::Query => "query",
        }
    }
}

/// As its name: `headers` or `query`.
#[cfg(feature = "serde")]
impl serde::Serialize for ParameterCarrier {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl fmt::Display for ParameterCarrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The extra parameters of a reconnection (SPEC §11.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconnectParams {
    /// `c`: the token of the last successful connection response.
    pub token: SessionToken,
    /// `cs`: the sequence number of the oldest message still in the recovery buffer.
    pub available_client_sequence: i64,
    /// `ss`: how many messages were received from the server on this session.
    pub last_server_sequence: i64,
}

/// The parameters of one connection request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionParams {
    /// `v`.
    pub version: ProtocolVersion,
    /// `ty`: the client type code.
    pub client_type: String,
    /// `ca`: capability bits.
    pub capabilities: u8,
    /// `r`: reconnection timeout in ms (0 when reconnection is off).
    pub reconnect_timeout_ms: u64,
    /// `username`: the principal; `None` is anonymous.
    pub principal: Option<String>,
    /// `password`.
    pub credentials: Credentials,
    /// `sp`.
    pub properties: SessionProperties,
    /// `c`, `cs`, `ss` on a reconnection.
    pub reconnect: Option<ReconnectParams>,
}

impl ConnectionParams {
    /// Capability bits we advertise: UNIFIED (0x08) and not ZLIB, since we never inflate,
    /// so the server never compresses topic messages for us (SPEC §14).
    pub const CAPABILITIES: u8 = 0x08;

    /// A first connect with the given version's defaults: its client type, `ca=8`,
    /// `r=60000`, anonymous, no properties.
    pub fn new(version: ProtocolVersion) -> Self {
        ConnectionParams {
            version,
            client_type: version.default_client_type().to_owned(),
            capabilities: Self::CAPABILITIES,
            reconnect_timeout_ms: 60_000,
            principal: None,
            credentials: Credentials::None,
            properties: SessionProperties::new(),
            reconnect: None,
        }
    }

    /// The parameters as the Python client sends headers: in the order
    /// `v, c, ca, username, r, password, cs, ss, ty, sp`, `username` and `password`
    /// always present (empty when anonymous), `sp` in the quoted-list form, raw values.
    pub fn to_headers(&self) -> Vec<(&'static str, String)> {
        let mut h = Vec::with_capacity(10);
        h.push(("v", self.version.number().to_string()));
        if let Some(rc) = &self.reconnect {
            h.push(("c", rc.token.to_param()));
        }
        h.push(("ca", self.capabilities.to_string()));
        h.push(("username", self.principal.clone().unwrap_or_default()));
        h.push(("r", self.reconnect_timeout_ms.to_string()));
        h.push(("password", self.credentials.to_param()));
        if let Some(rc) = &self.reconnect {
            h.push(("cs", rc.available_client_sequence.to_string()));
            h.push(("ss", rc.last_server_sequence.to_string()));
        }
        h.push(("ty", self.client_type.clone()));
        h.push(("sp", self.properties.to_quoted_list()));
        h
    }

    /// The parameters as the JavaScript client builds its query: in the order
    /// `ty, v, ca, r, [c, cs, ss], [sp], [username, password]`, `sp` as JSON and only when
    /// there are properties, `username`/`password` only with a principal, and
    /// `c`, `sp`, `username`, `password` percent-encoded like `encodeURIComponent`.
    pub fn to_query(&self) -> String {
        let mut q = format!(
            "ty={}&v={}&ca={}&r={}",
            encode_component(&self.client_type),
            self.version.number(),
            self.capabilities,
            self.reconnect_timeout_ms
        );
        if let Some(rc) = &self.reconnect {
            q.push_str(&format!(
                "&c={}&cs={}&ss={}",
                encode_component(&rc.token.to_param()),
                rc.available_client_sequence,
                rc.last_server_sequence
            ));
        }
        if !self.properties.is_empty() {
            q.push_str("&sp=");
            q.push_str(&encode_component(&self.properties.to_json()));
        }
        if let Some(principal) = &self.principal {
            q.push_str("&username=");
            q.push_str(&encode_component(principal));
            q.push_str("&password=");
            q.push_str(&encode_component(&self.credentials.to_base64()));
        }
        q
    }

    /// Reads parameters from a request's query string, falling back to its headers for
    /// each name missing from the query (as the dissector does). Header names compare
    /// without regard to case; headers that are not connection parameters are ignored.
    /// [`RawParams`] tells more: where `v` was found, and the raw values.
    pub fn parse<'h>(
        query: Option<&str>,
        headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
    ) -> Result<Self, ParamError> {
        let headers = headers
            .into_iter()
            .map(|(name, value)| -> (&str, &[u8]) { (name, value) });
        RawParams::new(query, headers).parse()
    }
}
/// Why a connection request's parameters are not acceptable (a server answers 115, or 102
/// for an unsupported version). Holds parameter names and reasons, never a value: a
/// malformed value may be the password or the session token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParamError {
    /// A required parameter is absent.
    #[error("connection parameter {0:?} is missing")]
    Missing(&'static str),
    /// A numeric parameter is not a number.
    #[error("connection parameter {name:?} is not a number")]
    NotANumber {
        /// The parameter.
        name: &'static str,
    },
    /// `v` names a version this crate does not speak.
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u32),
    /// A value is not valid UTF-8 or not valid percent-encoding.
    #[error("{} is not valid UTF-8 or percent-encoding", match .name {
        Some(name) => format!("connection parameter {name:?}"),
        None => "a query parameter".to_owned(),
    })]
    NotUtf8 {
        /// The parameter, `None` for a query parameter this protocol does not define.
        name: Option<&'static str>,
    },
    /// `c` is not a 24-byte token.
    #[error("session token parameter 'c' is not 24 bytes")]
    BadToken,
    /// `password` cannot be decoded.
    #[error("credentials parameter: {0}")]
    Credentials(#[from] CredentialsError),
    /// `sp` cannot be decoded.
    #[error("session properties parameter: {0}")]
    Properties(#[from] PropertyError),
}

/// What a server does with a parameter of [`PARAMETER_NAMES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Use {
    /// Read into [`ConnectionParams`].
    Read,
    /// Read, and never shown: the credentials and the session token.
    Secret,
    /// Recorded only: legacy names of older clients.
    Recorded,
}

/// Every connection parameter name (SPEC §2.3, and the legacy `svn`, `m` and `t`), with what
/// a server does with it. Only headers with these names are read as parameters, so that an
/// unrelated header with a value that is not UTF-8 cannot fail a request.
const PARAMETER_NAMES: [(&str, Use); 13] = [
    ("v", Use::Read),
    ("ty", Use::Read),
    ("ca", Use::Read),
    ("r", Use::Read),
    ("username", Use::Read),
    ("password", Use::Secret),
    ("sp", Use::Read),
    ("c", Use::Secret),
    ("cs", Use::Read),
    ("ss", Use::Read),
    ("svn", Use::Recorded),
    ("m", Use::Recorded),
    ("t", Use::Recorded),
];

/// The table's entry for `name`, whatever its case.
fn known(name: &str) -> Option<(&'static str, Use)> {
    PARAMETER_NAMES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .copied()
}

/// One connection parameter as it arrived.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RawParam<'a> {
    /// The name as sent.
    pub name: &'a str,
    /// The value as sent: still percent-encoded in a query, raw bytes in a header.
    pub value: &'a [u8],
    /// Where it was.
    pub carrier: ParameterCarrier,
}

impl<'a> RawParam<'a> {
    /// True for the credentials (`password`) and the session token (`c`).
    pub fn is_secret(&self) -> bool {
        known(self.name).is_some_and(|(_, u)| u == Use::Secret)
    }

    /// The value to show in a log: [`REDACTED`] for a secret, else the value (invalid UTF-8
    /// replaced).
    pub fn shown_value(&self) -> Cow<'a, str> {
        if self.is_secret() {
            Cow::Borrowed(REDACTED)
        } else {
            String::from_utf8_lossy(self.value)
        }
    }
}

impl fmt::Debug for RawParam<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={:?} ({})", self.name, self.shown_value(), self.carrier)
    }
}

/// The connection parameters of an upgrade request as they arrived, before they are read:
/// the query's `name=value` pairs (still percent-encoded) in order, then the headers whose
/// names are connection parameters. The one place a server (and its log) splits them.
///
/// ```
/// use diffusion_proto::{ParameterCarrier, RawParams};
/// let raw = RawParams::new(Some("v=29&ty=WB&password=AQA%3D"), [("v", &b"25"[..])]);
/// assert_eq!((raw.carrier(), raw.version()), (Some(ParameterCarrier::Query), Some(29)));
/// let shown: Vec<_> = raw.iter().map(|p| format!("{}={}", p.name, p.shown_value())).collect();
/// assert_eq!(shown, ["v=29", "ty=WB", "password=<redacted>", "v=25"]);
/// assert!(raw.parse().is_ok());
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RawParams<'a> {
    entries: Vec<RawParam<'a>>,
}

impl fmt::Debug for RawParams<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.entries).finish()
    }
}

impl<'a> RawParams<'a> {
    /// Splits `query` (without the `?`) and picks the parameter headers out of `headers`.
    pub fn new(query: Option<&'a str>, headers: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Self {
        let pairs = query
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| p.split_once('=').unwrap_or((p, "")))
            .map(|(name, value)| RawParam {
                name,
                value: value.as_bytes(),
                carrier: ParameterCarrier::Query,
            });
        let headers = headers
            .into_iter()
            .filter(|(name, _)| known(name).is_some())
            .map(|(name, value)| RawParam {
                name,
                value,
                carrier: ParameterCarrier::Headers,
            });
        RawParams {
            entries: pairs.chain(headers).collect(),
        }
    }

    /// The names of the connection parameters a server reads (SPEC §2.3).
    pub fn names() -> impl Iterator<Item = &'static str> {
        PARAMETER_NAMES
            .iter()
            .filter(|(_, u)| *u != Use::Recorded)
            .map(|(name, _)| *name)
    }

    /// Every parameter in arrival order: the query's, then the headers'.
    pub fn iter(&self) -> impl Iterator<Item = &RawParam<'a>> + '_ {
        self.entries.iter()
    }

    /// The first parameter called `name` (any case), the query's before the headers'.
    pub fn first(&self, name: &str) -> Option<&RawParam<'a>> {
        self.entries.iter().find(|p| p.name.eq_ignore_ascii_case(name))
    }

    /// Where `v` was found (the query wins), `None` when it is nowhere.
    pub fn carrier(&self) -> Option<ParameterCarrier> {
        self.first("v").map(|p| p.carrier)
    }

    /// `v` as a number, supported or not, with the same precedence as [`RawParams::parse`]:
    /// for the version byte of a rejection when the parameters as a whole cannot be read.
    pub fn version(&self) -> Option<u32> {
        let value = std::str::from_utf8(self.first("v")?.value).ok()?;
        value.trim().parse().ok()
    }

    /// True when the request carries `c`: a reconnection.
    pub fn is_reconnect(&self) -> bool {
        self.first("c").is_some()
    }

    /// Reads the parameters: each name from the query when it is there, else from a header.
    pub fn parse(&self) -> Result<ConnectionParams, ParamError> {
        let mut values = Values::default();
        for p in &self.entries {
            let name = known(p.name).map(|(n, _)| n);
            let invalid = || ParamError::NotUtf8 { name };
            // Every query value must decode; a header only counts when the query lacks its name.
            let value = match p.carrier {
                ParameterCarrier::Query => percent_decode(p.value).ok_or_else(invalid)?,
                ParameterCarrier::Headers if values.has(p.name) => continue,
                ParameterCarrier::Headers => std::str::from_utf8(p.value).map_err(|_| invalid())?.to_owned(),
            };
            if !values.has(p.name) {
                values.0.push((p.name.to_ascii_lowercase(), value));
            }
        }
        values.into_params()
    }
}

/// Decoded values by lower-case name, the first of each name only.
#[derive(Default)]
struct Values(Vec<(String, String)>);

impl Values {
    fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn number<T: std::str::FromStr>(&self, name: &'static str) -> Result<Option<T>, ParamError> {
        self.get(name)
            .map(|v| v.trim().parse().map_err(|_| ParamError::NotANumber { name }))
            .transpose()
    }

    fn into_params(self) -> Result<ConnectionParams, ParamError> {
        let v: u32 = self.number("v")?.ok_or(ParamError::Missing("v"))?;
        let version = ProtocolVersion::from_number(v).ok_or(ParamError::UnsupportedVersion(v))?;
        let mut p = ConnectionParams::new(version);
        p.client_type = self.get("ty").unwrap_or_default().to_owned();
        p.capabilities = self.number("ca")?.unwrap_or(0);
        p.reconnect_timeout_ms = self.number("r")?.unwrap_or(0);
        // The Python client sends an empty username for anonymous sessions.
        p.principal = self.get("username").filter(|u| !u.is_empty()).map(str::to_owned);
        p.credentials = Credentials::from_param(self.get("password").unwrap_or_default())?;
        p.properties = SessionProperties::parse(self.get("sp").unwrap_or_default())?;
        if let Some(c) = self.get("c") {
            p.reconnect = Some(ReconnectParams {
                token: SessionToken::from_param(c).ok_or(ParamError::BadToken)?,
                available_client_sequence: self.number("cs")?.unwrap_or(0),
                last_server_sequence: self.number("ss")?.unwrap_or(0),
            });
        }
        Ok(p)
    }
}

/// What JavaScript's `encodeURIComponent` leaves as it is: `A-Z a-z 0-9 - _ . ! ~ * ' ( )`.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// Percent-encodes like JavaScript's `encodeURIComponent`: everything but
/// `A-Z a-z 0-9 - _ . ! ~ * ' ( )`, as UTF-8 bytes, with upper-case hex digits.
///
/// ```
/// assert_eq!(diffusion_proto::encode_component("a b+é"), "a%20b%2B%C3%A9");
/// ```
pub fn encode_component(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, COMPONENT).to_string()
}

/// Undoes percent-encoding, refusing a `%` not followed by two hex digits and a result that
/// is not UTF-8. `+` stays `+`: base64 passwords are sent raw by some clients.
fn percent_decode(value: &[u8]) -> Option<String> {
    let well_formed = value
        .split(|&b| b == b'%')
        .skip(1)
        .all(|after| after.len() >= 2 && after[..2].iter().all(u8::is_ascii_hexdigit));
    if !well_formed {
        return None;
    }
    percent_encoding::percent_decode(value)
        .decode_utf8()
        .ok()
        .map(Cow::into_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_params() -> impl Strategy<Value = ConnectionParams> {
        (
            any::<bool>(),
            "[A-Z]{1,3}",
            any::<u8>(),
            any::<u32>(),
            proptest::option::of(".{1,10}"),
            proptest::option::of(".{1,10}"),
            proptest::collection::vec((".{1,6}", ".{0,6}"), 0..4),
            proptest::option::of(("[A-Za-z0-9+/]{24}", any::<i64>(), any::<i64>())),
        )
            .prop_map(|(v29, ty, ca, r, principal, password, props, rc)| {
                let mut p = ConnectionParams::new(if v29 {
                    ProtocolVersion::V29
                } else {
                    ProtocolVersion::V25
                });
                p.client_type = ty;
                p.capabilities = ca;
                p.reconnect_timeout_ms = r.into();
                p.principal = principal;
                p.credentials = password.map(Credentials::password).unwrap_or_default();
                p.properties = props.into_iter().collect();
                p.reconnect = rc.map(|(t, cs, ss)| ReconnectParams {
                    token: SessionToken::from_param(&t).unwrap_or_else(|| SessionToken::new([b'A'; 24])),
                    available_client_sequence: cs,
                    last_server_sequence: ss,
                });
                p
            })
    }

    #[test]
    fn errors_name_the_parameter_and_never_show_its_value() {
        for (query, expected) in [
            (
                "v=25&password=%ZZhunter2",
                ParamError::NotUtf8 {
                    name: Some("password"),
                },
            ),
            ("v=25&hunter2=%C3%28", ParamError::NotUtf8 { name: None }),
            ("v=25&r=hunter2", ParamError::NotANumber { name: "r" }),
            ("v=25&c=hunter2", ParamError::BadToken),
        ] {
            let err = ConnectionParams::parse(Some(query), []).unwrap_err();
            assert_eq!(err, expected, "{query}");
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("hunter2"), "{shown}");
        }
        let raw = RawParams::new(Some("c=ABC&password=AQA%3D&v=25"), [("Password", &b"x"[..])]);
        assert!(!format!("{raw:?}").contains("AQA"), "{raw:?}");
    }

    #[test]
    fn headers_that_are_not_parameters_are_ignored() {
        let raw = RawParams::new(None, [("v", &b"25"[..]), ("user-agent", &[0xff][..])]);
        assert_eq!(raw.iter().count(), 1);
        assert_eq!(raw.carrier(), Some(ParameterCarrier::Headers));
        assert!(raw.parse().is_ok());
        assert_eq!(RawParams::new(None, []).carrier(), None);
    }

    proptest! {
        #[test]
        fn query_round_trips(p in any_params()) {
            let mut expected = p.clone();
            if expected.principal.is_none() {
                // Without a principal the query form carries no credentials.
                expected.credentials = Credentials::None;
            }
            prop_assert_eq!(ConnectionParams::parse(Some(&p.to_query()), []), Ok(expected));
        }

        #[test]
        fn headers_round_trip(p in any_params()) {
            let headers = p.to_headers();
            let parsed = ConnectionParams::parse(None, headers.iter().map(|(n, v)| (*n, v.as_bytes())));
            prop_assert_eq!(parsed, Ok(p));
        }

        #[test]
        fn any_query_parses_or_errs(q in ".{0,60}", h in ".{0,20}") {
            let _ = ConnectionParams::parse(Some(&q), [("sp", h.as_bytes()), ("password", h.as_bytes())]);
        }

        #[test]
        fn decoding_undoes_encoding(s in ".{0,30}") {
            prop_assert_eq!(percent_decode(encode_component(&s).as_bytes()), Some(s));
        }
    }
}
