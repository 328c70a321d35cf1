//! A WebSocket upgrade request as the test server logs it: its connection parameters read
//! the way the protocol server reads them ([`RawParams`]), secrets redacted.

use diffusion_proto::{ParameterCarrier, RawParam, RawParams};
use serde::Serialize;

use crate::log::pairs;

/// A WebSocket upgrade request as the server saw it, secrets redacted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpgradeLog {
    /// The request path, e.g. `/diffusion`.
    pub path: String,
    /// The query string with `password` and `c` values replaced by `<redacted>`.
    pub query: Option<String>,
    /// Every connection parameter seen, from the query (raw, still percent-encoded) and then
    /// from headers with parameter names, in arrival order; `password` and `c` redacted.
    #[serde(serialize_with = "pairs")]
    pub params: Vec<(String, String)>,
    /// The names of all request headers, lower-case.
    pub header_names: Vec<String>,
    /// Where `v` was found.
    pub carrier: Option<ParameterCarrier>,
    /// `v` as a number, supported or not.
    pub version: Option<u32>,
    /// `ty`.
    pub client_type: Option<String>,
    /// The principal, `None` when anonymous (or when the parameters could not be read).
    pub principal: Option<String>,
    /// The kind of credentials: `none`, `password` or `custom`.
    pub credentials: Option<&'static str>,
    /// The proposed session properties, decoded.
    #[serde(serialize_with = "pairs")]
    pub properties: Vec<(String, String)>,
    /// True when the request carries `c`: a reconnection.
    pub reconnect: bool,
    /// Why the parameters could not be read, if they could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parse_error: Option<String>,
}

impl UpgradeLog {
    /// Reads what a request carries the way the protocol server does ([`RawParams`]), for
    /// the log.
    pub fn new(path: &str, query: Option<&str>, headers: &[(String, Vec<u8>)]) -> Self {
        let raw = RawParams::new(query, headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())));
        let shown = |p: &RawParam<'_>| match p.carrier {
            ParameterCarrier::Query => p.name.to_owned(),
            ParameterCarrier::Headers => p.name.to_ascii_lowercase(),
        };
        let mut log = UpgradeLog {
            path: path.to_owned(),
            query: query.map(|_| {
                raw.iter()
                    .filter(|p| p.carrier == ParameterCarrier::Query)
                    .map(|p| format!("{}={}", p.name, p.shown_value()))
                    .collect::<Vec<_>>()
                    .join("&")
            }),
            params: raw
                .iter()
                .map(|p| (shown(p), p.shown_value().into_owned()))
                .collect(),
            header_names: headers.iter().map(|(n, _)| n.to_ascii_lowercase()).collect(),
            carrier: raw.carrier(),
            version: raw.version(),
            client_type: raw.first("ty").map(|p| p.shown_value().into_owned()),
            principal: None,
            credentials: None,
            properties: Vec::new(),
            reconnect: raw.is_reconnect(),
            parse_error: None,
        };
        match raw.parse() {
            Ok(p) => {
                log.principal = p.principal;
                log.credentials = Some(p.credentials.kind());
                log.properties = p
                    .properties
                    .iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect();
            }
            // The error names the parameter, never its value.
            Err(e) => log.parse_error = Some(e.to_string()),
        }
        log
    }

    /// The value of parameter `name` as logged (redacted for `password` and `c`).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The version byte a connection response to this request should carry: the requested
    /// version when it fits a byte, else 25.
    pub fn version_byte(&self) -> u8 {
        self.version.and_then(|v| u8::try_from(v).ok()).unwrap_or(25)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{LogEntry, LogKind};
    use diffusion_proto::REDACTED;
    use std::time::Duration;

    #[test]
    fn upgrade_log_redacts_secrets_and_reads_both_carriers() {
        let query = "ty=WB&v=29&ca=10&r=60000&c=ABCDEFGHIJKLMNOPQRSTUVWX&cs=1&ss=3&username=bob&password=AQZzZWNyZXQ%3D";
        let log = UpgradeLog::new("/diffusion", Some(query), &[("user-agent".into(), b"x".to_vec())]);
        let shown = format!(
            "{log:?} {}",
            LogEntry {
                at: Duration::ZERO,
                conn: Some(1),
                kind: LogKind::Upgrade(log.clone())
            }
            .to_json()
        );
        for secret in ["AQZzZWNyZXQ", "ABCDEFGH"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert_eq!(log.carrier, Some(ParameterCarrier::Query));
        assert_eq!(log.version, Some(29));
        assert_eq!(log.principal.as_deref(), Some("bob"));
        assert_eq!(log.credentials, Some("password"));
        assert!(log.reconnect);
        assert_eq!(log.param("password"), Some(REDACTED));

        let headers = vec![
            ("v".to_owned(), b"25".to_vec()),
            ("username".to_owned(), b"".to_vec()),
            ("password".to_owned(), b"".to_vec()),
            ("sp".to_owned(), br#""Foo","bar""#.to_vec()),
            ("accept".to_owned(), b"*/*".to_vec()),
        ];
        let log = UpgradeLog::new("/diffusion", None, &headers);
        assert_eq!(log.carrier, Some(ParameterCarrier::Headers));
        assert_eq!(log.principal, None);
        assert_eq!(log.properties, [("Foo".to_owned(), "bar".to_owned())]);
        assert_eq!(log.params.len(), 4);
        assert_eq!(log.header_names.len(), 5);
    }

    #[test]
    fn unreadable_parameters_do_not_leak_into_the_error() {
        let log = UpgradeLog::new("/diffusion", Some("v=25&password=%ZZsecret"), &[]);
        let error = log.parse_error.clone().unwrap();
        assert!(!error.contains("secret"), "{error}");
    }
}
