//! The one error type of the Session API: what went wrong, with the response code when the
//! server refused, the transport failure when there was one, and enough words to know what
//! to do next.

use std::sync::Arc;

use diffusion_proto::{
    CloseReason, PropertyError, RequestError, ResponseCode, SessionError, TransportError, UrlError,
};

use crate::proxy::ProxyUrlError;

/// What can go wrong with a session or one of its calls.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL cannot reach a Diffusion server.
    #[error(transparent)]
    Url(#[from] UrlError),
    /// The proxy URL given to `proxy()`, or read from the environment variable named by
    /// `proxy_from_env()`, cannot be used.
    #[error("{}: {source}", match .variable {
        Some(name) => format!("the proxy URL in {name}"),
        None => "the proxy URL".to_owned(),
    })]
    ProxyUrl {
        /// The environment variable the URL came from, if it did.
        variable: Option<&'static str>,
        /// What is wrong with it.
        #[source]
        source: ProxyUrlError,
    },
    /// A session property was refused.
    #[error(transparent)]
    Property(#[from] PropertyError),
    /// A `wss://` URL, on a runtime adapter built without TLS.
    #[error("wss:// needs TLS: enable the `{feature}` feature")]
    TlsUnavailable {
        /// The feature to enable, e.g. `diffusion-tokio/rustls`.
        feature: &'static str,
    },
    /// The TLS configuration could not be built.
    #[error("TLS configuration: {0}")]
    TlsConfig(#[source] ConfigError),
    /// The server refused the connection for its principal or credentials (116).
    #[error("authentication failed (response code 116): check the principal and password")]
    AuthenticationFailed,
    /// The session ended, or never opened; the reason says who and why.
    #[error("session closed: {0}")]
    Closed(#[source] CloseReason),
    /// The call was refused at once and nothing was sent.
    #[error(transparent)]
    Refused(#[from] SessionError),
    /// The request was sent but failed.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// `connect` was called on a session that was already connected or closed.
    #[error("connect was already called on this session")]
    AlreadyConnected,
}

/// A configuration error of a library underneath (TLS), kept as `source()`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(#[source] pub Arc<dyn std::error::Error + Send + Sync>);

/// Equal when they say the same.
impl PartialEq for ConfigError {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_string() == other.0.to_string()
    }
}

impl Eq for ConfigError {}

impl Error {
    /// The connection response code, when the server refused the connection.
    pub fn response_code(&self) -> Option<ResponseCode> {
        match self {
            Error::AuthenticationFailed => Some(ResponseCode::AuthenticationFailed),
            _ => self.close_reason().and_then(CloseReason::response_code),
        }
    }

    /// Why the session closed, when that is what the error is about.
    pub fn close_reason(&self) -> Option<&CloseReason> {
        match self {
            Error::Closed(reason)
            | Error::Request(RequestError::SessionClosed(reason))
            | Error::Refused(SessionError::Closed(reason)) => Some(reason),
            _ => None,
        }
    }

    /// The transport failure behind the error, if there is one.
    pub fn transport_error(&self) -> Option<&TransportError> {
        self.close_reason().and_then(CloseReason::transport_error)
    }

    /// True when the server could not be reached: name resolution, TCP, TLS or the
    /// WebSocket upgrade failed.
    pub fn is_connect(&self) -> bool {
        self.transport_error().is_some_and(TransportError::is_connect)
    }

    /// True for anything about TLS: not available, not configurable, or failed (an
    /// untrusted certificate, a name mismatch).
    pub fn is_tls(&self) -> bool {
        matches!(self, Error::TlsUnavailable { .. } | Error::TlsConfig(_))
            || self.transport_error().is_some_and(TransportError::is_tls)
    }

    /// True for anything about the HTTP proxy: its URL, or a failure to tunnel through it
    /// (unreachable, refusing, not speaking HTTP).
    pub fn is_proxy(&self) -> bool {
        matches!(self, Error::ProxyUrl { .. }) || self.transport_error().is_some_and(TransportError::is_proxy)
    }

    /// True when something took too long: a request, the connection response, the
    /// reconnection, or the transport.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Request(RequestError::TimedOut(_)))
            || self.close_reason().is_some_and(CloseReason::is_timeout)
    }

    pub(crate) fn from_close(reason: CloseReason) -> Self {
        match reason {
            CloseReason::Rejected(ResponseCode::AuthenticationFailed) => Error::AuthenticationFailed,
            other => Error::Closed(other),
        }
    }
}
