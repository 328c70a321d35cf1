//! The one error type of the Session API: what went wrong, with the response code when the
//! server refused, and enough words to know what to do next.

use diffusion_proto::{CloseReason, PropertyError, RequestError, ResponseCode, SessionError, UrlError};

/// What can go wrong with a session or one of its calls.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL cannot reach a Diffusion server.
    #[error(transparent)]
    Url(#[from] UrlError),
    /// A session property was refused.
    #[error(transparent)]
    Property(#[from] PropertyError),
    /// The TLS configuration could not be built.
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// The server refused the connection for its principal or credentials (116).
    #[error("authentication failed (response code 116): check the principal and password")]
    AuthenticationFailed,
    /// The session ended, or never opened; the reason says who and why.
    #[error("session closed: {0}")]
    Closed(CloseReason),
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

impl Error {
    /// The connection response code, when the server refused the connection.
    pub fn response_code(&self) -> Option<ResponseCode> {
        match self {
            Error::AuthenticationFailed => Some(ResponseCode::AuthenticationFailed),
            Error::Closed(reason) | Error::Request(RequestError::SessionClosed(reason)) => {
                reason.response_code()
            }
            Error::Refused(SessionError::Closed(reason)) => reason.response_code(),
            _ => None,
        }
    }

    pub(crate) fn from_close(reason: CloseReason) -> Self {
        match reason {
            CloseReason::Rejected(ResponseCode::AuthenticationFailed) => Error::AuthenticationFailed,
            other => Error::Closed(other),
        }
    }
}
