//! The server URL a user gives, checked whole by `http`'s URI parser (scheme, host, port,
//! IPv6 brackets, no whitespace) and resolved to the `/diffusion` WebSocket endpoint.

use std::fmt;

/// Why a URL cannot be used to reach a Diffusion server. Never quotes the URL: it may
/// carry a user name and password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// The URL holds a space, tab or line break (leading and trailing ones included).
    #[error("the URL contains whitespace; remove it (percent-encode a space in a path as %20)")]
    Whitespace,
    /// The URL is not a URI at all (bad characters, unclosed IPv6 bracket, …).
    #[error("not a valid URL ({reason}); expected ws://host:port or wss://host:port")]
    Invalid {
        /// What the URI parser found wrong.
        reason: String,
    },
    /// The scheme is not `ws` or `wss`.
    #[error("URL scheme {scheme:?} is not supported; use ws:// or wss://")]
    UnsupportedScheme {
        /// The scheme as given (empty when there is none).
        scheme: String,
    },
    /// No host follows the scheme.
    #[error("the URL has no host; expected ws://host:port or wss://host:port")]
    MissingHost,
    /// The port is not a number from 1 to 65535.
    #[error("the URL's port {port:?} is not a number from 1 to 65535")]
    InvalidPort {
        /// The port text as given.
        port: String,
    },
}

/// A WebSocket URL split into what a transport needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSocketUrl {
    /// True for `wss`.
    pub secure: bool,
    /// `host` or `host:port`, as written (IPv6 literals keep their brackets; any user
    /// name and password are left out).
    pub authority: String,
    /// The path, starting with `/` and ending in `diffusion`.
    pub path: String,
}

impl WebSocketUrl {
    /// Checks a user's `ws://` or `wss://` URL and resolves the relative reference
    /// `diffusion` against it as RFC 3986 does (and the Python client): the last path
    /// segment and any query are replaced. So `ws://h:8080` and `ws://h:8080/` give
    /// `ws://h:8080/diffusion`, `ws://h/foo/` gives `ws://h/foo/diffusion` and `ws://h/foo`
    /// gives `ws://h/diffusion`.
    ///
    /// ```
    /// use diffusion_proto::{UrlError, WebSocketUrl};
    /// let url = WebSocketUrl::resolve("wss://h/a/b?x=1").unwrap();
    /// assert_eq!(url.to_string(), "wss://h/a/diffusion");
    /// assert!(matches!(WebSocketUrl::resolve("ws://h:99999"), Err(UrlError::InvalidPort { .. })));
    /// ```
    pub fn resolve(user_url: &str) -> Result<Self, UrlError> {
        if user_url.chars().any(char::is_whitespace) {
            return Err(UrlError::Whitespace);
        }
        let uri: http::Uri = user_url.parse().map_err(|e: http::uri::InvalidUri| {
            // A URI with a scheme but nothing after it, or with an empty authority, is a
            // URL without a host rather than no URL at all.
            match user_url.split_once("://") {
                Some((_, rest)) if rest.is_empty() || rest.starts_with('/') => UrlError::MissingHost,
                _ => UrlError::Invalid {
                    reason: e.to_string(),
                },
            }
        })?;
        let secure = match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("ws") => false,
            Some(s) if s.eq_ignore_ascii_case("wss") => true,
            other => {
                return Err(UrlError::UnsupportedScheme {
                    scheme: other.unwrap_or_default().to_owned(),
                })
            }
        };
        let authority = uri.authority().ok_or(UrlError::MissingHost)?;
        // Credentials in the authority are not ours to send; keep host[:port] only.
        let host_port = authority
            .as_str()
            .rsplit_once('@')
            .map_or(authority.as_str(), |(_, hp)| hp);
        if authority.host().is_empty() {
            return Err(UrlError::MissingHost);
        }
        if let Some(port) = port_text(host_port) {
            if port.parse::<u16>().map_or(true, |p| p == 0) {
                return Err(UrlError::InvalidPort {
                    port: port.to_owned(),
                });
            }
        }
        let path = uri.path();
        let dir = match path.rfind('/') {
            Some(i) => &path[..=i],
            None => "/",
        };
        Ok(WebSocketUrl {
            secure,
            authority: host_port.to_owned(),
            path: format!("{dir}diffusion"),
        })
    }

    /// `host:port` to open a TCP connection to, with 80 or 443 when the URL has no port.
    pub fn socket_address(&self) -> String {
        match port_text(&self.authority) {
            Some(_) => self.authority.clone(),
            None => format!("{}:{}", self.authority, self.port()),
        }
    }

    /// The port: the URL's, or 80 for `ws` and 443 for `wss`.
    pub fn port(&self) -> u16 {
        port_text(&self.authority)
            .and_then(|p| p.parse().ok())
            .unwrap_or(if self.secure { 443 } else { 80 })
    }

    /// The host without port or IPv6 brackets (for name resolution and TLS server names).
    pub fn host(&self) -> &str {
        let a = self.authority.as_str();
        if let Some(rest) = a.strip_prefix('[') {
            return rest.split(']').next().unwrap_or_default();
        }
        a.rsplit_once(':').map_or(a, |(h, _)| h)
    }
}

/// The port part of `host[:port]`, when there is a colon outside IPv6 brackets.
fn port_text(host_port: &str) -> Option<&str> {
    let after_host = match host_port.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map_or("", |(_, after)| after),
        None => host_port,
    };
    after_host.rsplit_once(':').map(|(_, port)| port)
}

impl fmt::Display for WebSocketUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.secure { "wss" } else { "ws" };
        write!(f, "{scheme}://{}{}", self.authority, self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_urls_are_typed_errors() {
        let err = |url| WebSocketUrl::resolve(url).unwrap_err();
        assert!(matches!(err("http://h"), UrlError::UnsupportedScheme { scheme } if scheme == "http"));
        assert!(matches!(err("h:1"), UrlError::UnsupportedScheme { .. }));
        assert_eq!(err("ws:///x"), UrlError::MissingHost);
        assert_eq!(err("ws://"), UrlError::MissingHost);
        assert!(matches!(err("ws://h:99999"), UrlError::InvalidPort { port } if port == "99999"));
        assert!(matches!(err("ws://h:0"), UrlError::InvalidPort { .. }));
        assert!(matches!(err("ws://h:x"), UrlError::InvalidPort { .. }));
        assert!(matches!(err("ws://[::1"), UrlError::Invalid { .. }));
        assert_eq!(err("ws://h h"), UrlError::Whitespace);
        assert_eq!(err(" ws://h"), UrlError::Whitespace);
        assert!(matches!(err("ws://h:1:2"), UrlError::Invalid { .. }));
    }

    #[test]
    fn errors_never_quote_the_url() {
        for url in [
            "ftp://user:hunter2@h",
            "ws://user:hunter2@h:99999",
            "ws://user:hunter2@[::1",
        ] {
            let shown = format!("{0} {0:?}", WebSocketUrl::resolve(url).unwrap_err());
            assert!(!shown.contains("hunter2"), "{shown}");
        }
    }

    #[test]
    fn hosts_ports_and_user_info() {
        let url = WebSocketUrl::resolve("ws://[::1]:80").unwrap();
        assert_eq!(
            (url.host(), url.port(), url.socket_address().as_str()),
            ("::1", 80, "[::1]:80")
        );
        let url = WebSocketUrl::resolve("wss://[::1]/x").unwrap();
        assert_eq!((url.host(), url.socket_address().as_str()), ("::1", "[::1]:443"));
        assert_eq!(
            WebSocketUrl::resolve("wss://u:p@h:1/").unwrap().to_string(),
            "wss://h:1/diffusion"
        );
        assert_eq!(WebSocketUrl::resolve("WS://h").unwrap().socket_address(), "h:80");
    }
}
