//! What comes in on a connection: size and decoding checks, the recovery count, and the
//! dispatch of each message to the services, the close request or the pending requests.

use std::time::Instant;

use bytes::Bytes;

use super::{ConnectionId, Server, ServerCloseReason, ServerEvent, ServerEventKind};
use crate::handshake::SessionId;
use crate::message::{Message, MessageError, ServiceId};

impl Server {
    /// One WebSocket message received on `conn`. Frames of connections the server does not
    /// know (closed, rejected, taken over) are ignored.
    pub fn handle_frame(&mut self, now: Instant, conn: ConnectionId, frame: Bytes) {
        let Some(&id) = self.connections.get(&conn) else {
            return;
        };
        let limit = self.config.max_message_size;
        if frame.len() > usize::try_from(limit).unwrap_or(usize::MAX) {
            let reason = ServerCloseReason::MessageTooLarge {
                size: frame.len(),
                limit,
            };
            self.event(ServerEvent {
                conn: Some(conn),
                session_id: Some(id),
                kind: ServerEventKind::ProtocolError {
                    error: reason.to_string(),
                },
            });
            self.close_session(id, reason, true);
            return;
        }
        let message = match Message::decode(&frame) {
            Ok(message) => Some(message),
            Err(MessageError::UnknownType { .. }) => None,
            Err(e) => {
                let error = e.to_string();
                self.event(ServerEvent {
                    conn: Some(conn),
                    session_id: Some(id),
                    kind: ServerEventKind::ProtocolError { error: error.clone() },
                });
                self.close_session(id, ServerCloseReason::ProtocolError(error), true);
                return;
            }
        };
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        // Every client message counts towards the recovery sequence, whatever its type.
        session.info.client_sequence = session.info.client_sequence.saturating_add(1);
        session.info.stats.messages_received += 1;
        match message {
            None => session.info.stats.ignored_messages += 1,
            Some(message) => self.dispatch(now, conn, id, message),
        }
    }

    fn dispatch(&mut self, now: Instant, conn: ConnectionId, id: SessionId, message: Message) {
        match message {
            Message::ServiceRequest {
                service,
                cid,
                payload,
            } => self.service_request(conn, id, service, cid, payload),
            Message::ServiceResponse { cid, .. } | Message::ServiceError { cid, .. } => {
                self.answer(now, conn, id, cid, message)
            }
            Message::CloseRequest => {
                if let Some(session) = self.sessions.get_mut(&id) {
                    session.info.stats.close_requests += 1;
                }
                self.event(ServerEvent {
                    conn: Some(conn),
                    session_id: Some(id),
                    kind: ServerEventKind::CloseRequested,
                });
                self.close_session(id, ServerCloseReason::ClientRequested, true);
            }
            message => self.event(ServerEvent {
                conn: Some(conn),
                session_id: Some(id),
                kind: ServerEventKind::MessageReceived { message },
            }),
        }
    }

    /// A SERVICE_RESPONSE or SERVICE_ERROR from the client.
    fn answer(&mut self, now: Instant, conn: ConnectionId, id: SessionId, cid: i64, message: Message) {
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        let Some(request) = session.requests.complete(cid) else {
            self.event(ServerEvent {
                conn: Some(conn),
                session_id: Some(id),
                kind: ServerEventKind::MessageReceived { message },
            });
            return;
        };
        let rtt = now.saturating_duration_since(request.sent_at);
        if request.service == ServiceId::SYSTEM_PING {
            // Any answer shows the client is alive.
            session.requests.unanswered_pings = 0;
            if matches!(message, Message::ServiceResponse { .. }) {
                session.info.stats.system_pings_answered += 1;
                self.event(ServerEvent {
                    conn: Some(conn),
                    session_id: Some(id),
                    kind: ServerEventKind::SystemPingAnswered { cid, rtt },
                });
                return;
            }
        }
        self.event(ServerEvent {
            conn: Some(conn),
            session_id: Some(id),
            kind: ServerEventKind::ResponseReceived {
                cid,
                service: request.service,
                rtt,
                response: message,
            },
        });
    }
}
