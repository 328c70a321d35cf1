//! What the server hands back: [`AcceptOutcome`], the [`ServerOutput`]s the adapter carries
//! out, the [`ServerEvent`]s for tests and logs, and [`ServerCloseReason`].

use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::ConnectionId;
#[cfg(doc)]
use super::Server;
use crate::handshake::ParameterCarrier;
use crate::handshake::{ProtocolVersion, ResponseCode, SessionId};
use crate::message::{Message, ServiceId};
use crate::properties::SessionProperties;

/// What [`Server::accept`] decided (the connection response itself is queued as output).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptOutcome {
    /// A session was opened (100) or resumed (105, 106) on this connection.
    Accepted {
        /// The session; its text form is what real servers put in `Set-Cookie: session=`.
        session_id: SessionId,
        /// 100, 105 or 106.
        code: ResponseCode,
        /// The connection the session was taken over from (already told to close).
        replaced: Option<ConnectionId>,
    },
    /// The 3-byte rejection was queued, followed by [`ServerOutput::CloseTransport`].
    Rejected {
        /// The response code sent.
        code: ResponseCode,
    },
}

/// What the adapter must do, in order.
///
/// `Debug` shows frames in hex (the first 64 bytes), with the session token of a
/// connection response redacted.
#[derive(Clone, PartialEq, Eq)]
pub enum ServerOutput {
    /// Send `frame` as one binary WebSocket message on `conn`.
    Transmit {
        /// Where.
        conn: ConnectionId,
        /// The whole message.
        frame: Bytes,
    },
    /// Flush what was queued for `conn`, then drop its TCP connection **without** a
    /// WebSocket close frame, as the real server does (SPEC §3.4, §8). The server has
    /// forgotten `conn`: later frames or closure reports for it are ignored.
    CloseTransport {
        /// Which.
        conn: ConnectionId,
    },
    /// Something a test or a log wants to know.
    Event(ServerEvent),
}

impl fmt::Debug for ServerOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerOutput::Transmit { conn, frame } => f
                .debug_struct("Transmit")
                .field("conn", conn)
                .field("frame", &format_args!("{}", FrameHex(frame)))
                .finish(),
            ServerOutput::CloseTransport { conn } => {
                f.debug_struct("CloseTransport").field("conn", conn).finish()
            }
            ServerOutput::Event(event) => f.debug_tuple("Event").field(event).finish(),
        }
    }
}

/// A frame in hex for `Debug`: no message type we send starts with `#`, so a frame that does
/// is a connection response, whose bytes 19..43 are the token.
struct FrameHex<'a>(&'a [u8]);

impl fmt::Display for FrameHex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 64;
        const TOKEN: std::ops::Range<usize> = 19..43;
        let is_response = self.0.first() == Some(&crate::ConnectionResponse::PROTOCOL_BYTE);
        for (i, b) in self.0.iter().take(SHOWN).enumerate() {
            if is_response && TOKEN.contains(&i) {
                if i == TOKEN.start {
                    f.write_str("<token>")?;
                }
                continue;
            }
            write!(f, "{b:02x}")?;
        }
        if self.0.len() > SHOWN {
            write!(f, "… ({} bytes)", self.0.len())?;
        }
        Ok(())
    }
}

/// What happened, for tests and logs. Never carries a token, password or credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// A new session was opened (response 100).
    Connected {
        /// The connection.
        conn: ConnectionId,
        /// The new session.
        session_id: SessionId,
        /// `username`, `None` when anonymous.
        principal: Option<String>,
        /// `sp`, as proposed.
        properties: SessionProperties,
        /// The version requested and answered.
        version: ProtocolVersion,
        /// Where `v` was found: the query or the headers.
        carrier: ParameterCarrier,
        /// `ty`.
        client_type: String,
        /// `ca`.
        capabilities: u8,
        /// `r`: how long the session is kept after its connection is lost.
        reconnect_timeout: Duration,
    },
    /// A connection request was refused with a 3-byte response.
    Rejected {
        /// The connection (already told to close).
        conn: ConnectionId,
        /// The code sent.
        code: ResponseCode,
        /// Why, for logs.
        reason: String,
    },
    /// A session was resumed on a new connection (105 or 106).
    Reconnected {
        /// The new connection.
        conn: ConnectionId,
        /// The session.
        session_id: SessionId,
        /// 105, or 106 when the messages the client missed were no longer buffered.
        code: ResponseCode,
        /// How many buffered messages were sent again after the response.
        resent: usize,
        /// The connection the session was taken over from, if it was still attached.
        replaced: Option<ConnectionId>,
    },
    /// A client message the server does not handle itself: topic messages, stray answers,
    /// messages of the wrong direction, one-way requests of known services.
    MessageReceived {
        /// The connection.
        conn: ConnectionId,
        /// The session.
        session_id: SessionId,
        /// The message.
        message: Message,
    },
    /// A request to a service registered with [`Server::register_service`]: answer it with
    /// [`Server::send`] (`ServiceResponse` or `ServiceError` with the same cid) unless the
    /// cid is 0.
    ServiceRequest {
        /// The connection.
        conn: ConnectionId,
        /// The session.
        session_id: SessionId,
        /// Which service.
        service: ServiceId,
        /// The client's conversation id.
        cid: i64,
        /// The request payload.
        payload: Bytes,
    },
    /// A request to a service the server does not provide; it was answered with
    /// SERVICE_ERROR reason 100 "Unknown service: N" (unless its cid was 0).
    UnknownService {
        /// The connection.
        conn: ConnectionId,
        /// The session.
        session_id: SessionId,
        /// Which service.
        service: ServiceId,
        /// The client's conversation id.
        cid: i64,
    },
    /// The client answered a SYSTEM_PING.
    SystemPingAnswered {
        /// The connection.
        conn: ConnectionId,
        /// The session.
        session_id: SessionId,
        /// The ping's conversation id.
        cid: i64,
        /// From sending the ping to receiving the answer.
        rtt: Duration,
    },
    /// The client answered a request sent with [`Server::send_request`] (or answered a
    /// SYSTEM_PING with a SERVICE_ERROR).
    ResponseReceived {
        /// The connection.
        conn: ConnectionId,
        /// The session.
        session_id: SessionId,
        /// The request's conversation id.
        cid: i64,
        /// The service requested.
        service: ServiceId,
        /// From sending the request to receiving the answer.
        rtt: Duration,
        /// The `ServiceResponse` or `ServiceError`.
        response: Message,
    },
    /// CHANGE_PRINCIPAL or RE_AUTHENTICATE succeeded.
    PrincipalChanged {
        /// The connection.
        conn: ConnectionId,
        /// The session.
        session_id: SessionId,
        /// The new principal, `None` for anonymous.
        principal: Option<String>,
    },
    /// The client sent CLOSE_REQUEST; ABORT and a transport close follow.
    CloseRequested {
        /// The connection.
        conn: ConnectionId,
        /// The session.
        session_id: SessionId,
    },
    /// The session lost its connection and waits for a reconnection.
    Detached {
        /// The connection that was lost.
        conn: ConnectionId,
        /// The session.
        session_id: SessionId,
        /// When the session is discarded without a reconnection (`None`: never, `r` overflowed).
        expires: Option<Instant>,
    },
    /// The client broke the protocol; the session is closed (ABORT, then transport close).
    ProtocolError {
        /// The connection.
        conn: ConnectionId,
        /// The session.
        session_id: SessionId,
        /// What was wrong.
        error: String,
    },
    /// The session is gone; a reconnection to it gets 117.
    SessionClosed {
        /// The session.
        session_id: SessionId,
        /// The connection closed with it, if it was attached.
        conn: Option<ConnectionId>,
        /// Why.
        reason: ServerCloseReason,
    },
}

/// Why the server closed a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerCloseReason {
    /// The client sent CLOSE_REQUEST.
    ClientRequested,
    /// Too many SYSTEM_PINGs in a row went unanswered.
    ClientUnresponsive,
    /// A client message was longer than the maximum message size.
    MessageTooLarge {
        /// Its length.
        size: usize,
        /// The limit.
        limit: u32,
    },
    /// A client frame could not be decoded.
    ProtocolError(String),
    /// The connection was lost and the client's `r` was 0.
    ConnectionLost,
    /// The connection was lost and no reconnection came within `r`.
    ReconnectTimeout,
    /// A reconnection was refused with 118: the client no longer held messages we lacked.
    ReconnectionFailed,
    /// [`Server::abort`].
    Aborted,
    /// [`Server::forget_session`].
    Forgotten,
}

impl fmt::Display for ServerCloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerCloseReason::ClientRequested => f.write_str("closed at the client's request"),
            ServerCloseReason::ClientUnresponsive => {
                f.write_str("client unresponsive: system pings went unanswered")
            }
            ServerCloseReason::MessageTooLarge { size, limit } => {
                write!(f, "message too large: {size} bytes, the limit is {limit}")
            }
            ServerCloseReason::ProtocolError(e) => write!(f, "protocol error: {e}"),
            ServerCloseReason::ConnectionLost => {
                f.write_str("connection lost and the client asked for no reconnection (r=0)")
            }
            ServerCloseReason::ReconnectTimeout => {
                f.write_str("connection lost and no reconnection within the client's timeout")
            }
            ServerCloseReason::ReconnectionFailed => {
                f.write_str("reconnection refused: messages were lost (118)")
            }
            ServerCloseReason::Aborted => f.write_str("aborted by the server"),
            ServerCloseReason::Forgotten => f.write_str("forgotten by the server"),
        }
    }
}
