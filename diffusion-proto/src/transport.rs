//! Why a transport could not be opened, or ended: typed, as an adapter reports it to a
//! session, with the underlying error kept as `source()` (in an `Arc`, so it stays `Clone`).

use std::error::Error;
use std::io;
use std::sync::Arc;
use std::time::Duration;

/// A transport failure, opening a connection or on an open one.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The host name could not be resolved.
    #[error("could not resolve {host:?}: {source}")]
    Dns {
        /// The host name.
        host: String,
        /// What the resolver said.
        #[source]
        source: Arc<io::Error>,
    },
    /// The TCP connection could not be made (refused, unreachable, timed out).
    #[error("TCP connection to {address} failed: {source}")]
    Tcp {
        /// The address tried, `host:port`.
        address: String,
        /// What the operating system said.
        #[source]
        source: Arc<io::Error>,
    },
    /// The TLS handshake failed (certificate not trusted, name mismatch, protocol error).
    #[error("TLS with {host:?} failed: {source}")]
    Tls {
        /// The server name checked.
        host: String,
        /// What the TLS library said.
        #[source]
        source: Arc<dyn Error + Send + Sync>,
    },
    /// The HTTP proxy could not be reached: its name did not resolve, or TCP to it failed.
    #[error("could not reach the HTTP proxy {proxy}: {source}")]
    ProxyUnreachable {
        /// The proxy's `host:port` (never its credentials).
        proxy: String,
        /// What the resolver or the operating system said.
        #[source]
        source: Arc<io::Error>,
    },
    /// The HTTP proxy answered `CONNECT` with a status other than 2xx: 407 when it wants
    /// (other) credentials, 403 when it does not tunnel to that server, 502 or 504 when it
    /// could not reach it.
    #[error("the HTTP proxy {proxy} refused to tunnel to {target} with HTTP status {status}{}",
        if *.status == 407 { "; check the proxy's user name and password (http://user:password@host:port)" } else { "" })]
    ProxyRefused {
        /// The proxy's `host:port` (never its credentials).
        proxy: String,
        /// The `host:port` the tunnel was asked for.
        target: String,
        /// The HTTP status of the proxy's answer.
        status: u16,
    },
    /// The `CONNECT` exchange with the HTTP proxy failed: it ended the connection, or did
    /// not answer in HTTP.
    #[error("HTTP proxy {proxy}: {source}")]
    ProxyHandshake {
        /// The proxy's `host:port` (never its credentials).
        proxy: String,
        /// What went wrong.
        #[source]
        source: Arc<dyn Error + Send + Sync>,
    },
    /// The server answered the WebSocket upgrade with another HTTP status than 101.
    #[error(
        "the server refused the WebSocket upgrade with HTTP status {status}; is this the Diffusion endpoint?"
    )]
    Upgrade {
        /// The HTTP status.
        status: u16,
    },
    /// The WebSocket failed: its handshake, or reading or writing once open.
    #[error("WebSocket: {source}")]
    WebSocket {
        /// What the WebSocket library said.
        #[source]
        source: Arc<dyn Error + Send + Sync>,
    },
    /// The server closed the WebSocket with a close frame.
    #[error("the server closed the WebSocket{}", match .code {
        Some(code) => format!(" ({code} {reason})"),
        None => String::new(),
    })]
    Closed {
        /// The close code, when the frame had one.
        code: Option<u16>,
        /// The close reason.
        reason: String,
    },
    /// The connection ended without a close frame.
    #[error("the connection ended")]
    Ended,
    /// Nothing came from the server for twice its system ping period: the session judged
    /// the connection dead.
    #[error("idle: no system ping from the server within {after:?}, twice its ping period")]
    Idle {
        /// How long the session waited.
        after: Duration,
    },
}

impl TransportError {
    /// True when the connection could not be made at all (name, TCP, proxy, TLS or
    /// upgrade).
    pub fn is_connect(&self) -> bool {
        self.is_proxy()
            || matches!(
                self,
                TransportError::Dns { .. }
                    | TransportError::Tcp { .. }
                    | TransportError::Tls { .. }
                    | TransportError::Upgrade { .. }
            )
    }

    /// True for a TLS failure.
    pub fn is_tls(&self) -> bool {
        matches!(self, TransportError::Tls { .. })
    }

    /// True for a failure of the HTTP proxy: unreachable, refusing, or not speaking HTTP.
    pub fn is_proxy(&self) -> bool {
        matches!(
            self,
            TransportError::ProxyUnreachable { .. }
                | TransportError::ProxyRefused { .. }
                | TransportError::ProxyHandshake { .. }
        )
    }

    /// True when something took too long: an idle connection, or a TCP connect or name
    /// lookup (of the server or the proxy) that timed out.
    pub fn is_timeout(&self) -> bool {
        match self {
            TransportError::Idle { .. } => true,
            TransportError::Dns { source, .. }
            | TransportError::Tcp { source, .. }
            | TransportError::ProxyUnreachable { source, .. } => source.kind() == io::ErrorKind::TimedOut,
            _ => false,
        }
    }
}

/// Equal when of the same kind with the same description (the sources are compared by
/// what they say).
impl PartialEq for TransportError {
    fn eq(&self, other: &Self) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other) && self.to_string() == other.to_string()
    }
}

impl Eq for TransportError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predicates_and_sources() {
        let refused = TransportError::Tcp {
            address: "127.0.0.1:1".into(),
            source: Arc::new(io::Error::from(io::ErrorKind::ConnectionRefused)),
        };
        assert!(refused.is_connect() && !refused.is_tls() && !refused.is_timeout());
        assert!(refused.source().is_some());
        let slow = TransportError::Dns {
            host: "h".into(),
            source: Arc::new(io::Error::from(io::ErrorKind::TimedOut)),
        };
        assert!(slow.is_connect() && slow.is_timeout());
        assert!(TransportError::Idle {
            after: Duration::from_secs(2)
        }
        .is_timeout());
        assert_eq!(
            TransportError::Closed {
                code: Some(1000),
                reason: "bye".into()
            }
            .to_string(),
            "the server closed the WebSocket (1000 bye)"
        );
        assert_eq!(TransportError::Ended, TransportError::Ended);
        let refused = TransportError::ProxyRefused {
            proxy: "127.0.0.1:3128".into(),
            target: "h:80".into(),
            status: 407,
        };
        assert!(refused.is_connect() && refused.is_proxy() && !refused.is_timeout());
        assert!(refused
            .to_string()
            .contains("407; check the proxy's user name and password"));
        let unreachable = TransportError::ProxyUnreachable {
            proxy: "p:1".into(),
            source: Arc::new(io::Error::from(io::ErrorKind::TimedOut)),
        };
        assert!(unreachable.is_connect() && unreachable.is_proxy() && unreachable.is_timeout());
        assert_ne!(TransportError::Ended, refused);
    }
}
