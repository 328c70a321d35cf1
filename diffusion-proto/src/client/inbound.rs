//! Where every message from the server goes, in one place: the server's service requests
//! (built-in answers, the topic notifications, or the application's registered services),
//! answers to this client's requests, topic values and deltas, ABORT. Features add their
//! routes here.

use std::collections::{HashSet, VecDeque};
use std::time::Instant;

use bytes::Bytes;

use super::{ClientSession, Event, InboundRequestId, Output, Phase, Reply, RequestError, RequestId};
use crate::message::{ErrorReason, Message, ServiceId};
use crate::state::{CloseReason, SessionState};
use crate::topics::{NotifySubscription, NotifyUnsubscription, PayloadError, ServicePayload, TopicEvent};

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
                        version: self.config.version,
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
            // We advertise no zlib (ca=8), so a compressed topic message is that topic's
            // error, not the session's.
            Message::TopicValue {
                topic_id,
                compressed: true,
                ..
            } => self
                .topics
                .compressed(topic_id, false, emitter(&mut self.outputs)),
            Message::TopicDelta {
                topic_id,
                compressed: true,
                ..
            } => self.topics.compressed(topic_id, true, emitter(&mut self.outputs)),
            Message::TopicValue {
                topic_id, payload, ..
            } => self.topics.value(topic_id, payload, emitter(&mut self.outputs)),
            Message::TopicDelta {
                topic_id, payload, ..
            } => {
                // The value a delta builds is bounded like a value that arrives whole.
                let limit = self.config.max_inbound_message_size;
                self.topics
                    .delta(topic_id, &payload, limit, emitter(&mut self.outputs))
            }
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
        } else if service == ServiceId::NOTIFY_SUBSCRIPTION {
            let used = NotifySubscription::decode(&payload, self.config.version)
                .map(|n| self.topics.notify(n, emitter(&mut self.outputs)));
            self.answer_notification(service, cid, used);
        } else if service == ServiceId::NOTIFY_UNSUBSCRIPTION {
            let used = NotifyUnsubscription::decode(&payload, self.config.version)
                .map(|n| self.topics.unsubscribe(n, emitter(&mut self.outputs)));
            self.answer_notification(service, cid, used);
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

    /// Answers a topic notification: an empty response, or INVALID_DATA for one that does
    /// not decode (dropped and counted); nothing for a one-way (cid 0) notification, which
    /// is how servers send them (TOPICS §2.2: the JavaScript client does not answer those).
    fn answer_notification(&mut self, service: ServiceId, cid: i64, decoded: Result<(), PayloadError>) {
        if let Err(e) = &decoded {
            self.topics.malformed();
            if cid != 0 {
                self.send(Message::ServiceError {
                    cid,
                    description: format!("malformed {service} request: {e}"),
                    reason: ErrorReason::INVALID_DATA,
                });
            }
        } else if cid != 0 {
            self.send(Message::ServiceResponse {
                cid,
                payload: Bytes::new(),
            });
        }
    }
}

/// Delivers the registry's topic events as session events, in order.
pub(super) fn emitter(outputs: &mut VecDeque<Output>) -> impl FnMut(TopicEvent) + '_ {
    |event| outputs.push_back(Output::Event(Event::Topic(event)))
}
