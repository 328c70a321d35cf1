//! The six session states of SPEC §11.3, the only transitions allowed between them, and
//! the reason that comes with every close: who closed, and whether reconnecting could help.

use std::time::Duration;

use crate::handshake::{ResponseCode, ResponseError};
use crate::transport::TransportError;

/// The state of a client session (the Python client's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SessionState {
    /// Opening the first connection.
    Connecting,
    /// Connected; requests flow.
    ConnectedActive,
    /// The connection was lost; reconnecting to the same session.
    RecoveringReconnect,
    /// Closed by this client (its application, or a protocol error it detected).
    ClosedByClient,
    /// Closed by the server, or lost with no reconnection possible.
    ClosedByServer,
    /// The session could not be opened or resumed.
    ClosedFailed,
}

impl SessionState {
    /// True for the three terminal states.
    pub fn is_closed(self) -> bool {
        matches!(
            self,
            SessionState::ClosedByClient | SessionState::ClosedByServer | SessionState::ClosedFailed
        )
    }

    /// The Python client's name, e.g. `CONNECTED_ACTIVE`.
    pub fn name(self) -> &'static str {
        match self {
            SessionState::Connecting => "CONNECTING",
            SessionState::ConnectedActive => "CONNECTED_ACTIVE",
            SessionState::RecoveringReconnect => "RECOVERING_RECONNECT",
            SessionState::ClosedByClient => "CLOSED_BY_CLIENT",
            SessionState::ClosedByServer => "CLOSED_BY_SERVER",
            SessionState::ClosedFailed => "CLOSED_FAILED",
        }
    }

    /// Whether SPEC §11.3 allows going from `self` to `to`. Repeating a state is not a
    /// transition, and nothing leaves a closed state.
    pub fn can_transition_to(self, to: SessionState) -> bool {
        use SessionState::*;
        matches!(
            (self, to),
            (
                Connecting,
                ConnectedActive | ClosedByClient | ClosedByServer | ClosedFailed
            ) | (
                ConnectedActive,
                RecoveringReconnect | ClosedByClient | ClosedByServer
            ) | (
                RecoveringReconnect,
                ConnectedActive | ClosedByClient | ClosedByServer | ClosedFailed
            )
        )
    }
}

impl std::fmt::Display for SessionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Who ended a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ClosedBy {
    /// This client: its application asked, or it found the server breaking the protocol.
    Client,
    /// The server: ABORT, or the connection went away for good.
    Server,
    /// Neither asked: the session could not be opened or resumed.
    Failure,
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CloseReason {
    /// The application closed the session.
    #[error("closed by the client")]
    ClosedByClient,
    /// The server sent ABORT.
    #[error("closed by the server (ABORT)")]
    Aborted,
    /// The connection was lost and reconnection is off.
    #[error("connection lost ({cause}) and reconnection is disabled; enable reconnection to survive this")]
    ConnectionLost {
        /// What the transport reported.
        #[source]
        cause: TransportError,
    },
    /// The reconnection strategy gave up.
    #[error("connection lost and the reconnection strategy gave up")]
    ReconnectAborted,
    /// Not reconnected within the reconnection timeout.
    #[error("could not reconnect within {after:?}; the server may be down or unreachable")]
    ReconnectTimeout {
        /// The reconnection timeout.
        after: Duration,
    },
    /// The server refused the connection or reconnection with this code.
    #[error("the server refused the connection: {0}")]
    Rejected(ResponseCode),
    /// The connection response could not be accepted.
    #[error("bad connection response: {0}")]
    Handshake(#[source] ResponseError),
    /// No connection response within the connection timeout.
    #[error("no connection response within {after:?}; check the URL and that the server is up")]
    HandshakeTimeout {
        /// The connection timeout.
        after: Duration,
    },
    /// The transport could not be opened.
    #[error("could not connect: {cause}")]
    TransportFailed {
        /// What the transport reported.
        #[source]
        cause: TransportError,
    },
    /// The server sent something this protocol does not allow.
    #[error("protocol error: {detail}")]
    ProtocolError {
        /// What was wrong.
        detail: String,
    },
    /// After a reconnection the server needed messages this client no longer holds.
    #[error("messages lost: the server needs client messages from #{needed_from}, the oldest held is {oldest_held:?}")]
    LostMessages {
        /// The server's recovery sequence.
        needed_from: i64,
        /// The oldest sequence number still buffered.
        oldest_held: Option<i64>,
    },
}

impl CloseReason {
    /// Who ended the session.
    pub fn closed_by(&self) -> ClosedBy {
        match self {
            CloseReason::ClosedByClient | CloseReason::ProtocolError { .. } => ClosedBy::Client,
            CloseReason::Aborted | CloseReason::ConnectionLost { .. } | CloseReason::ReconnectAborted => {
                ClosedBy::Server
            }
            CloseReason::Handshake(ResponseError::VersionMismatch { .. }) => ClosedBy::Client,
            _ => ClosedBy::Failure,
        }
    }

    /// Whether opening a new session later could succeed where this one ended.
    pub fn reconnect_may_help(&self) -> bool {
        match self {
            CloseReason::ConnectionLost { .. }
            | CloseReason::ReconnectAborted
            | CloseReason::ReconnectTimeout { .. }
            | CloseReason::HandshakeTimeout { .. }
            | CloseReason::TransportFailed { .. }
            | CloseReason::LostMessages { .. } => true,
            CloseReason::Rejected(code) => matches!(
                code,
                ResponseCode::RejectedServerInitialising
                    | ResponseCode::LicenseExceeded
                    | ResponseCode::UnknownSession
                    | ResponseCode::ReconnectionFailedMessageLoss
            ),
            _ => false,
        }
    }

    /// The transport failure that ended the session, if one did.
    pub fn transport_error(&self) -> Option<&TransportError> {
        match self {
            CloseReason::ConnectionLost { cause } | CloseReason::TransportFailed { cause } => Some(cause),
            _ => None,
        }
    }

    /// True when something took too long: the connection response, the reconnection, or
    /// the transport (an idle connection, a connect that timed out).
    pub fn is_timeout(&self) -> bool {
        match self {
            CloseReason::HandshakeTimeout { .. } | CloseReason::ReconnectTimeout { .. } => true,
            other => other.transport_error().is_some_and(TransportError::is_timeout),
        }
    }

    /// The connection response code, when the server refused.
    pub fn response_code(&self) -> Option<ResponseCode> {
        match self {
            CloseReason::Rejected(code) => Some(*code),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use SessionState::*;

    const ALL: [SessionState; 6] = [
        Connecting,
        ConnectedActive,
        RecoveringReconnect,
        ClosedByClient,
        ClosedByServer,
        ClosedFailed,
    ];

    #[test]
    fn exactly_the_spec_table() {
        let allowed = [
            (Connecting, ConnectedActive),
            (Connecting, ClosedByClient),
            (Connecting, ClosedByServer),
            (Connecting, ClosedFailed),
            (ConnectedActive, RecoveringReconnect),
            (ConnectedActive, ClosedByClient),
            (ConnectedActive, ClosedByServer),
            (RecoveringReconnect, ConnectedActive),
            (RecoveringReconnect, ClosedByClient),
            (RecoveringReconnect, ClosedByServer),
            (RecoveringReconnect, ClosedFailed),
        ];
        for from in ALL {
            for to in ALL {
                assert_eq!(
                    from.can_transition_to(to),
                    allowed.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
    }
}
