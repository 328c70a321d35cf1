//! HTTP CONNECT proxies: the proxy URL checked at `build()`, the choice made from the
//! `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` conventions, and the tunnel opened through one.

use std::fmt;
use std::io;
use std::sync::Arc;

use base64::Engine as _;
use diffusion_proto::{TransportError, WebSocketUrl};
use tungstenite::http::Uri;

use crate::error::Error;
use crate::runtime::Runtime;

/// Why a proxy URL cannot be used. Never quotes the URL: it may hold a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyUrlError {
    /// Not a URL at all (whitespace, bad characters, an unclosed IPv6 bracket, …).
    #[error("not a valid URL ({reason}); expected http://[user:password@]host[:port]")]
    Invalid {
        /// What the URI parser found wrong.
        reason: String,
    },
    /// The scheme is not `http` (the proxy is spoken to in plain HTTP: `CONNECT`, then TLS
    /// to the server through the tunnel for `wss://`).
    #[error("proxy scheme {scheme:?} is not supported; use http:// (an HTTP CONNECT proxy)")]
    UnsupportedScheme {
        /// The scheme as given.
        scheme: String,
    },
    /// No host.
    #[error("the proxy URL has no host; expected http://[user:password@]host[:port]")]
    MissingHost,
    /// The port is not a number from 1 to 65535.
    #[error("the proxy URL's port is not a number from 1 to 65535")]
    InvalidPort,
    /// The user name or password is not percent-encoded UTF-8.
    #[error("the proxy URL's user name or password is not percent-encoded UTF-8")]
    InvalidCredentials,
}

/// An HTTP proxy to open connections through. `Debug` shows where it is, never its
/// credentials.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Proxy {
    /// The host, without IPv6 brackets.
    host: String,
    port: u16,
    /// The `Proxy-Authorization` value (`Basic …`), from the URL's user name and password.
    authorization: Option<String>,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("address", &self.address())
            .field(
                "credentials",
                &self.authorization.as_ref().map(|_| diffusion_proto::REDACTED),
            )
            .finish()
    }
}

impl Proxy {
    /// Checks `http://[user:password@]host[:port]` (port 80 by default; `host:port` alone
    /// is taken as `http://`, as curl does). A path is ignored.
    pub(crate) fn parse(url: &str) -> Result<Proxy, ProxyUrlError> {
        let uri: Uri =
            url.parse()
                .map_err(|e: tungstenite::http::uri::InvalidUri| ProxyUrlError::Invalid {
                    reason: e.to_string(),
                })?;
        match uri.scheme_str() {
            None => {}
            Some(s) if s.eq_ignore_ascii_case("http") => {}
            Some(other) => {
                return Err(ProxyUrlError::UnsupportedScheme {
                    scheme: other.to_owned(),
                })
            }
        }
        let authority = uri.authority().ok_or(ProxyUrlError::MissingHost)?;
        let (user_info, host_port) = match authority.as_str().rsplit_once('@') {
            Some((user_info, host_port)) => (Some(user_info), host_port),
            None => (None, authority.as_str()),
        };
        // `host()` keeps IPv6 brackets; `port()` is `None` for a port that is no `u16`.
        let port = match host_port.strip_prefix(authority.host()).unwrap_or_default() {
            "" => 80,
            rest => rest
                .strip_prefix(':')
                .and_then(|port| port.parse::<u16>().ok())
                .filter(|port| *port != 0)
                .ok_or(ProxyUrlError::InvalidPort)?,
        };
        let host = authority.host();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() {
            return Err(ProxyUrlError::MissingHost);
        }
        let authorization = match user_info {
            None => None,
            Some(user_info) => {
                let (user, password) = user_info.split_once(':').unwrap_or((user_info, ""));
                let decode = |text: &str| {
                    percent_encoding::percent_decode_str(text)
                        .decode_utf8()
                        .map(|text| text.into_owned())
                        .map_err(|_| ProxyUrlError::InvalidCredentials)
                };
                let pair = format!("{}:{}", decode(user)?, decode(password)?);
                Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                ))
            }
        };
        Ok(Proxy {
            host: host.to_owned(),
            port,
            authorization,
        })
    }

    /// `host:port`, IPv6 literals in brackets: what errors and logs name.
    pub(crate) fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The `CONNECT` request for a tunnel to `target` (`host:port`).
    fn connect_request(&self, target: &str) -> String {
        let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
        if let Some(authorization) = &self.authorization {
            request.push_str("Proxy-Authorization: ");
            request.push_str(authorization);
            request.push_str("\r\n");
        }
        request.push_str("\r\n");
        request
    }
}

/// The proxy the environment asks for to reach `url`, as curl reads it: for `wss://`
/// `https_proxy`, else `HTTPS_PROXY`; for `ws://` `http_proxy`, else `HTTP_PROXY` (not
/// read when `REQUEST_METHOD` is set: under CGI a request's `Proxy:` header arrives as
/// `HTTP_PROXY`); none when `no_proxy` (else `NO_PROXY`) names the host. An empty
/// variable counts as unset. `var` looks a variable up.
pub(crate) fn from_vars(
    url: &WebSocketUrl,
    var: impl Fn(&str) -> Option<String>,
) -> Result<Option<Proxy>, Error> {
    let var = |name: &str| var(name).filter(|value| !value.trim().is_empty());
    let names: &[&'static str] = if url.secure {
        &["https_proxy", "HTTPS_PROXY"]
    } else if var("REQUEST_METHOD").is_some() {
        &["http_proxy"]
    } else {
        &["http_proxy", "HTTP_PROXY"]
    };
    let Some((name, value)) = names
        .iter()
        .find_map(|name| var(name).map(|value| (*name, value)))
    else {
        return Ok(None);
    };
    if let Some(no_proxy) = var("no_proxy").or_else(|| var("NO_PROXY")) {
        if bypasses(&no_proxy, url.host()) {
            return Ok(None);
        }
    }
    Proxy::parse(value.trim())
        .map(Some)
        .map_err(|source| Error::ProxyUrl {
            variable: Some(name),
            source,
        })
}

/// Whether the `NO_PROXY` list `list` names `host`: `*` names every host; an entry names
/// a host name and its subdomains (`example.com` and `.example.com` both name
/// `a.example.com`), an IP address or a CIDR range (`10.0.0.0/8`). Case does not matter.
fn bypasses(list: &str, host: &str) -> bool {
    no_proxy::NoProxy::from(list.to_ascii_lowercase()).matches(&host.to_ascii_lowercase())
}

/// Opens a TCP connection to `proxy` and a tunnel through it to `target`; the stream
/// returned carries the bytes of the server at `target`.
pub(crate) async fn tunnel<R: Runtime>(
    proxy: &Proxy,
    target: &WebSocketUrl,
) -> Result<R::Stream, TransportError> {
    let address = proxy.address();
    let unreachable = |e: io::Error| TransportError::ProxyUnreachable {
        proxy: address.clone(),
        source: Arc::new(e),
    };
    let handshake = |e: io::Error| TransportError::ProxyHandshake {
        proxy: address.clone(),
        source: Arc::new(e),
    };
    let addresses = R::resolve(proxy.host.clone(), proxy.port)
        .await
        .map_err(unreachable)?;
    let mut stream = R::connect_tcp(addresses).await.map_err(unreachable)?;
    let target = target.socket_address();
    R::write_all(&mut stream, proxy.connect_request(&target).as_bytes())
        .await
        .map_err(handshake)?;
    let status = read_answer::<R>(&mut stream).await.map_err(handshake)?;
    if (200..300).contains(&status) {
        Ok(stream)
    } else {
        Err(TransportError::ProxyRefused {
            proxy: address,
            target,
            status,
        })
    }
}

/// The most of a proxy's answer read: its status line and headers.
const MAX_ANSWER: usize = 8 * 1024;

/// Reads the proxy's answer to `CONNECT` up to the end of its head, and returns its
/// status. A 2xx answer must end there: the server speaks only once the client has, so
/// a byte past it is not the server's.
async fn read_answer<R: Runtime>(stream: &mut R::Stream) -> io::Result<u16> {
    let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    let mut buffer = vec![0; MAX_ANSWER];
    let mut filled = 0;
    loop {
        let read = R::read(stream, &mut buffer[filled..]).await?;
        if read == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the proxy ended the connection before answering CONNECT",
            ));
        }
        filled += read;
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut answer = httparse::Response::new(&mut headers);
        match answer.parse(&buffer[..filled]) {
            Ok(httparse::Status::Complete(head)) => {
                let status = answer.code.unwrap_or_default();
                if (200..300).contains(&status) && head < filled {
                    return Err(invalid(format!(
                        "{} bytes followed the proxy's {status} answer to CONNECT",
                        filled - head
                    )));
                }
                return Ok(status);
            }
            Ok(httparse::Status::Partial) if filled == buffer.len() => {
                return Err(invalid(format!(
                    "the proxy's answer to CONNECT is longer than {MAX_ANSWER} bytes"
                )))
            }
            Ok(httparse::Status::Partial) => {}
            Err(e) => return Err(invalid(format!("the proxy's answer to CONNECT is not HTTP: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn url(text: &str) -> WebSocketUrl {
        WebSocketUrl::resolve(text).unwrap()
    }

    #[test]
    fn proxy_urls_are_checked_whole() {
        let proxy = Proxy::parse("http://127.0.0.1:3128").unwrap();
        assert_eq!(
            (proxy.address(), proxy.authorization),
            ("127.0.0.1:3128".into(), None)
        );
        assert_eq!(
            Proxy::parse("proxy.corp:8080").unwrap().address(),
            "proxy.corp:8080"
        );
        assert_eq!(Proxy::parse("HTTP://p/").unwrap().address(), "p:80");
        let v6 = Proxy::parse("http://[::1]:3128").unwrap();
        assert_eq!((v6.host.as_str(), v6.address()), ("::1", "[::1]:3128".into()));
        for (bad, expected) in [
            ("https://p:3128", "UnsupportedScheme"),
            ("socks5://p:1080", "UnsupportedScheme"),
            ("http://p:99999", "InvalidPort"),
            ("http://p:0", "InvalidPort"),
            ("http://p:x", "Invalid"),
            ("http://[::1", "Invalid"),
            ("http://p q", "Invalid"),
            ("", "Invalid"),
            ("http:///x", "Invalid"),
            ("http://u:%FF@p", "InvalidCredentials"),
        ] {
            let err = Proxy::parse(bad).unwrap_err();
            let shown = format!("{err:?}");
            assert!(shown.starts_with(expected), "{bad}: {shown}");
        }
    }

    #[test]
    fn credentials_become_basic_authorization_and_are_never_shown() {
        let proxy = Proxy::parse("http://al%40ice:s%3Acr%20et@p:3128").unwrap();
        // base64 of "al@ice:s:cr et"
        assert_eq!(proxy.authorization.as_deref(), Some("Basic YWxAaWNlOnM6Y3IgZXQ="));
        let request = proxy.connect_request("h:443");
        assert_eq!(
            request,
            "CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\nProxy-Authorization: Basic YWxAaWNlOnM6Y3IgZXQ=\r\n\r\n"
        );
        let shown = format!("{proxy:?}");
        assert_eq!(
            shown,
            r#"Proxy { address: "p:3128", credentials: Some("<redacted>") }"#
        );
        for bad in [
            "http://u:hunter2@p:99999",
            "ftp://u:hunter2@p",
            "http://u:hunter2%ff@p",
        ] {
            let err = Error::ProxyUrl {
                variable: None,
                source: Proxy::parse(bad).unwrap_err(),
            };
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("hunter2"), "{shown}");
        }
        assert_eq!(
            Proxy::parse("http://u@p").unwrap().authorization.as_deref(),
            Some("Basic dTo=")
        );
    }

    #[test]
    fn the_environment_picks_by_scheme_and_no_proxy_bypasses() {
        let vars = |pairs: &[(&str, &str)]| {
            let map: HashMap<String, String> =
                pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
            move |name: &str| map.get(name).cloned()
        };
        let pick = |target: &str, pairs: &[(&str, &str)]| {
            from_vars(&url(target), vars(pairs)).map(|p| p.map(|p| p.address()))
        };
        let both = [
            ("HTTP_PROXY", "http://plain:1"),
            ("HTTPS_PROXY", "http://secure:2"),
        ];
        assert_eq!(pick("ws://h", &both), Ok(Some("plain:1".into())));
        assert_eq!(pick("wss://h", &both), Ok(Some("secure:2".into())));
        assert_eq!(pick("ws://h", &[("HTTPS_PROXY", "http://secure:2")]), Ok(None));
        // Lower case first; an empty variable is unset.
        let lower = [("http_proxy", "http://lower:1"), ("HTTP_PROXY", "http://upper:1")];
        assert_eq!(pick("ws://h", &lower), Ok(Some("lower:1".into())));
        let empty = [("http_proxy", " "), ("HTTP_PROXY", "http://upper:1")];
        assert_eq!(pick("ws://h", &empty), Ok(Some("upper:1".into())));
        // Under CGI, HTTP_PROXY may be a request's header.
        let cgi = [("REQUEST_METHOD", "GET"), ("HTTP_PROXY", "http://evil:1")];
        assert_eq!(pick("ws://h", &cgi), Ok(None));
        for (no_proxy, host, bypassed) in [
            ("*", "anything.example", true),
            ("example.com", "a.example.com", true),
            ("example.com", "example.com", true),
            (".example.com", "a.b.Example.COM", true),
            ("example.com", "notexample.com", false),
            ("localhost, 127.0.0.0/8", "127.0.0.1", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("::1", "[::1]", true),
            ("other", "h", false),
        ] {
            let target = format!("ws://{host}:8080");
            let env = [("http_proxy", "http://p:1"), ("NO_PROXY", no_proxy)];
            let expected = if bypassed { None } else { Some("p:1".to_owned()) };
            assert_eq!(
                pick(&target, &env),
                Ok(expected),
                "NO_PROXY={no_proxy} for {host}"
            );
        }
        // no_proxy before NO_PROXY.
        let env = [
            ("http_proxy", "http://p:1"),
            ("no_proxy", "other"),
            ("NO_PROXY", "h"),
        ];
        assert_eq!(pick("ws://h", &env), Ok(Some("p:1".into())));
        // A bad URL in the variable is an error that names it (and not the URL).
        let err = pick("wss://h", &[("HTTPS_PROXY", "https://u:hunter2@p")]).unwrap_err();
        assert!(
            matches!(
                &err,
                Error::ProxyUrl {
                    variable: Some("HTTPS_PROXY"),
                    source: ProxyUrlError::UnsupportedScheme { .. }
                }
            ),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("HTTPS_PROXY") && !err.to_string().contains("hunter2"),
            "{err}"
        );
    }
}
