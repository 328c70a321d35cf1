//! Where every message from the server goes, in one place: the server's service requests
//! (built-in answers, or the application's registered services), answers to this client's
//! requests, topic messages, ABORT. Features (topics, messaging) add their routes here.

use std::collections::HashSet;
use std::time::Instant;

use bytes::Bytes;

use super::{ClientSession, Event, InboundRequestId, Phase, Reply, RequestError, RequestId};
use crate::message::{ErrorReason, Message, ServiceId};
use crate::state::{CloseReason, SessionState};

/// Which of the server's requests reach the application.
#[derive(Debug, Default)]
pub(super) struct Routes {
    services: HashSet<ServiceId>,
}

impl Routes {
    pub(super) fn register(&mut self, service: ServiceId) {
        self.services.insert(service);
    }

    pub(super) fn deregister(&mut self, service: ServiceId) {
        self.services.remove(&service);
    }
}

impl ClientSession {
    /// Handles one decoded message on an open connection.
    pub(super) fn dispatch(&mut self, now: Instant, message: Message) {
        match message {
            Message::ServiceRequest {
                service,
                cid,
                payload,
            } => self.service_request(now, service, cid, payload),
            Message::ServiceResponse { cid, payload } => {
                if let Some(p) = self.requests.complete(cid) {
                    let reply = Reply {
                        payload,
                        round_trip: now.saturating_duration_since(p.sent_at),
                        sent_at: p.wall,
                    };
                    self.emit(Event::Response {
                        id: RequestId(cid),
                        result: Ok(reply),
                    });
                }
            }
            Message::ServiceError {
                cid,
                description,
                reason,
            } => {
                if self.requests.complete(cid).is_some() {
                    let result = Err(RequestError::Service { description, reason });
                    self.emit(Event::Response {
                        id: RequestId(cid),
                        result,
                    });
                }
            }
            Message::TopicValue { compressed: true, .. } | Message::TopicDelta { compressed: true, .. } => {
                self.protocol_error(
                    "a compressed topic message arrived, but zlib was not advertised (ca=8)".into(),
                )
            }
            m @ (Message::TopicValue { .. } | Message::TopicDelta { .. }) => self.emit(Event::Topic(m)),
            Message::Abort => match self.phase {
                Phase::Closing => self.finish(SessionState::ClosedByClient, CloseReason::ClosedByClient),
                _ => self.finish(SessionState::ClosedByServer, CloseReason::Aborted),
            },
            Message::CloseRequest => {
                self.protocol_error("the server sent CLOSE_REQUEST, a client-only message".into())
            }
        }
    }

    fn service_request(&mut self, now: Instant, service: ServiceId, cid: i64, payload: Bytes) {
        if service == ServiceId::SYSTEM_PING {
            // Answered whatever its cid, even 0: the server counts on it.
            self.send(Message::ServiceResponse {
                cid,
                payload: Bytes::new(),
            });
            self.arm_idle(now);
            self.system_pings_answered += 1;
            self.emit(Event::SystemPingAnswered);
        } else if self.routes.services.contains(&service) {
            self.emit(Event::InboundRequest {
                id: InboundRequestId(cid),
                service,
                payload,
            });
        } else if cid == 0 {
            // One-way (cid 0) requests are never answered.
        } else if service == ServiceId::USER_PING {
            self.send(Message::ServiceResponse {
                cid,
                payload: Bytes::new(),
            });
        } else {
            let description = format!("Unknown client service: {}", service.0);
            self.send(Message::ServiceError {
                cid,
                description,
                reason: ErrorReason::COMMUNICATION_FAILURE,
            });
        }
    }
}
