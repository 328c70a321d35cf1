//! The connection request (SPEC §2): the WebSocket URL resolved from a user's URL, and the
//! connection parameters of a first connect or a reconnect, rendered as the JavaScript
//! client's percent-encoded query or the Python client's header list, and read back by a server.

use crate::credentials::{Credentials, CredentialsError};
use crate::properties::{PropertyError, SessionProperties};
use crate::response::{ProtocolVersion, SessionToken};

/// Capability bits we advertise: UNIFIED (0x08) and not ZLIB, since we never inflate,
/// so the server never compresses topic messages for us (SPEC §14).
pub const CAPABILITIES: u8 = 0x08;

/// Why a URL cannot be used to reach a Diffusion server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// The scheme is not `ws` or `wss`.
    #[error("URL {0:?} must start with ws:// or wss://")]
    UnsupportedScheme(String),
    /// No host follows the scheme.
    #[error("URL {0:?} has no host")]
    MissingHost(String),
}

/// A WebSocket URL split into what a transport needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSocketUrl {
    /// True for `wss`.
    pub secure: bool,
    /// `host` or `host:port`, as written (IPv6 literals keep their brackets).
    pub authority: String,
    /// The path, starting with `/` and ending in `diffusion`.
    pub path: String,
}

impl WebSocketUrl {
    /// Resolves the relative reference `diffusion` against a user's `ws://` or `wss://`
    /// URL as RFC 3986 does (and the Python client): the last path segment and any query
    /// are replaced. So `ws://h:8080` and `ws://h:8080/` give `ws://h:8080/diffusion`,
    /// `ws://h/foo/` gives `ws://h/foo/diffusion` and `ws://h/foo` gives `ws://h/diffusion`.
    ///
    /// ```
    /// use diffusion_proto::WebSocketUrl;
    /// let url = WebSocketUrl::resolve("wss://h/a/b?x=1").unwrap();
    /// assert_eq!(url.to_string(), "wss://h/a/diffusion");
    /// ```
    pub fn resolve(user_url: &str) -> Result<Self, UrlError> {
        let (secure, rest) = match user_url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("ws") => (false, rest),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("wss") => (true, rest),
            _ => return Err(UrlError::UnsupportedScheme(user_url.to_owned())),
        };
        let rest = rest.split(['?', '#']).next().unwrap_or_default();
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        // Credentials in the authority are not ours to send; keep host[:port] only.
        let authority = authority.rsplit('@').next().unwrap_or_default();
        if authority.is_empty() {
            return Err(UrlError::MissingHost(user_url.to_owned()));
        }
        let dir = match path.rfind('/') {
            Some(i) => &path[..=i],
            None => "/",
        };
        Ok(WebSocketUrl {
            secure,
            authority: authority.to_owned(),
            path: format!("{dir}diffusion"),
        })
    }

    /// `host:port` to open a TCP connection to, with 80 or 443 when the URL has no port.
    pub fn socket_address(&self) -> String {
        let a = self.authority.as_str();
        let has_port = match a.strip_prefix('[') {
            Some(rest) => rest.contains("]:"),
            None => a.contains(':'),
        };
        if has_port {
            a.to_owned()
        } else {
            format!("{a}:{}", if self.secure { 443 } else { 80 })
        }
    }

    /// The host without port or IPv6 brackets (for TLS server names).
    pub fn host(&self) -> &str {
        let a = self.authority.as_str();
        if let Some(rest) = a.strip_prefix('[') {
            return rest.split(']').next().unwrap_or_default();
        }
        a.rsplit_once(':').map_or(a, |(h, _)| h)
    }
}

impl std::fmt::Display for WebSocketUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.secure { "wss" } else { "ws" };
        write!(f, "{scheme}://{}{}", self.authority, self.path)
    }
}

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

/// The client type code the official client of `version` sends: `PY` for 25, `WB` for 29.
///
/// We default to these rather than a code of our own because the server's set of
/// accepted codes is unknown (SPEC Q11): these two are known to be accepted with their versions.
pub fn default_client_type(version: ProtocolVersion) -> &'static str {
    match version {
        ProtocolVersion::V25 => "PY",
        ProtocolVersion::V29 => "WB",
    }
}

impl ConnectionParams {
    /// A first connect with the given version's defaults: its client type, `ca=8`,
    /// `r=60000`, anonymous, no properties.
    pub fn new(version: ProtocolVersion) -> Self {
        ConnectionParams {
            version,
            client_type: default_client_type(version).to_owned(),
            capabilities: CAPABILITIES,
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
    /// without regard to case.
    pub fn parse<'h>(
        query: Option<&str>,
        headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
    ) -> Result<Self, ParamError> {
        let mut raw = RawParams::default();
        for (name, value) in query
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| p.split_once('=').unwrap_or((p, "")))
        {
            raw.put(name, percent_decode(value)?);
        }
        for (name, value) in headers {
            if !raw.has(name) {
                let value = std::str::from_utf8(value).map_err(|_| ParamError::NotUtf8(name.to_owned()))?;
                raw.put(name, value.to_owned());
            }
        }
        raw.into_params()
    }
}

/// Why a connection request's parameters are not acceptable (a server answers 115).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// A required parameter is absent.
    #[error("connection parameter {0:?} is missing")]
    Missing(&'static str),
    /// A numeric parameter is not a number.
    #[error("connection parameter {name:?} is not a number: {value:?}")]
    NotANumber {
        /// The parameter.
        name: &'static str,
        /// Its value.
        value: String,
    },
    /// `v` names a version this crate does not speak.
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u32),
    /// A value is not valid UTF-8 or not valid percent-encoding.
    #[error("connection parameter {0:?} is not valid UTF-8 or percent-encoding")]
    NotUtf8(String),
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

#[derive(Default)]
struct RawParams {
    values: Vec<(String, String)>,
}

impl RawParams {
    fn has(&self, name: &str) -> bool {
        self.values.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    fn put(&mut self, name: &str, value: String) {
        if !self.has(name) {
            self.values.push((name.to_ascii_lowercase(), value));
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn number<T: std::str::FromStr>(&self, name: &'static str) -> Result<Option<T>, ParamError> {
        self.get(name)
            .map(|v| {
                v.trim().parse().map_err(|_| ParamError::NotANumber {
                    name,
                    value: v.to_owned(),
                })
            })
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

/// Percent-encodes like JavaScript's `encodeURIComponent`: everything but
/// `A-Z a-z 0-9 - _ . ! ~ * ' ( )`, as UTF-8 bytes.
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Undoes percent-encoding. `+` stays `+`: base64 passwords are sent raw by some clients.
fn percent_decode(s: &str) -> Result<String, ParamError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            let byte = hex
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| ParamError::NotUtf8(s.to_owned()))?;
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ParamError::NotUtf8(s.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn urls_without_ws_scheme_or_host_are_refused() {
        assert!(matches!(
            WebSocketUrl::resolve("http://h"),
            Err(UrlError::UnsupportedScheme(_))
        ));
        assert!(matches!(
            WebSocketUrl::resolve("ws:///x"),
            Err(UrlError::MissingHost(_))
        ));
        assert_eq!(WebSocketUrl::resolve("ws://[::1]:80").unwrap().host(), "::1");
        assert_eq!(
            WebSocketUrl::resolve("wss://u:p@h:1/").unwrap().to_string(),
            "wss://h:1/diffusion"
        );
    }

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
    }
}
