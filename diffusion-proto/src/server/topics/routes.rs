//! The topic services a client calls (3, 4, 83, 112, 117, 118, 122): each payload decoded in
//! the session's protocol version and handed to its operation; a failure is answered with
//! SERVICE_ERROR and its reason, never closing the session.

use bytes::Bytes;

use super::error::TopicTreeError;
use super::Origin;
use crate::handshake::{ProtocolVersion, SessionId};
use crate::message::{Message, ServiceId};
use crate::server::{ConnectionId, Server, ServerEventKind};
use crate::topics::codec::Field;
use crate::topics::{
    AddAndSetTopicRequest, AddTopicRequest, FetchRequest, PayloadError, RemoveTopicsRequest, ServicePayload,
    SubscribeRequest, TopicType, UnsubscribeRequest, UpdateConstraint,
};
use crate::wire::Reader;

impl Server {
    /// Whether `service` is one of the topic services.
    pub(in crate::server) fn is_topic_service(service: ServiceId) -> bool {
        matches!(
            service,
            ServiceId::SUBSCRIBE
                | ServiceId::UNSUBSCRIBE
                | ServiceId::TOPIC_REMOVAL
                | ServiceId::TOPIC_ADD
                | ServiceId::FETCH_QUERY
                | ServiceId::SET_TOPIC
                | ServiceId::ADD_AND_SET_TOPIC
        )
    }

    /// A request to a topic service from session `id`.
    pub(in crate::server) fn topic_request(
        &mut self,
        conn: ConnectionId,
        id: SessionId,
        service: ServiceId,
        cid: i64,
        payload: Bytes,
    ) {
        let Some(version) = self.sessions.get(&id).map(|s| s.info.version) else {
            return;
        };
        let origin = Origin::Request {
            conn,
            session: id,
            cid,
        };
        let malformed = |source| TopicTreeError::Malformed { service, source };
        let result = match service {
            ServiceId::SUBSCRIBE => SubscribeRequest::decode(&payload, version)
                .map_err(malformed)
                .and_then(|r| self.subscribe_from(origin, id, &r.selector, &r.scope)),
            ServiceId::UNSUBSCRIBE => UnsubscribeRequest::decode(&payload, version)
                .map_err(malformed)
                .and_then(|r| self.unsubscribe_from(origin, id, &r.selector, &r.scope)),
            ServiceId::TOPIC_ADD => AddTopicRequest::decode(&payload, version)
                .map_err(malformed)
                .and_then(|r| self.add_topic_from(origin, &r.path, r.specification).map(drop)),
            ServiceId::ADD_AND_SET_TOPIC => AddAndSetTopicRequest::decode(&payload, version)
                .map_err(malformed)
                .and_then(|r| {
                    self.add_and_set_topic_from(origin, &r.path, r.specification, r.value, &r.constraint)
                        .map(drop)
                }),
            ServiceId::SET_TOPIC => match decode_set(&payload, version) {
                Ok(set) => {
                    self.set_topic_from(origin, set.path, Some(set.topic_type), set.value, &set.constraint)
                }
                Err(e) => Err(malformed(e)),
            },
            ServiceId::TOPIC_REMOVAL => RemoveTopicsRequest::decode(&payload, version)
                .map_err(malformed)
                .and_then(|r| self.remove_topics_from(origin, &r.selector).map(drop)),
            ServiceId::FETCH_QUERY => FetchRequest::decode(&payload, version)
                .map_err(malformed)
                .and_then(|r| self.fetch_from(origin, version, &r)),
            _ => return,
        };
        if let Err(error) = result {
            let description = error.to_string();
            let reason = error.reason();
            self.origin_event(
                origin,
                ServerEventKind::TopicRequestFailed {
                    service,
                    reason,
                    error: description.clone(),
                },
            );
            if cid != 0 {
                self.reply(
                    id,
                    Message::ServiceError {
                        cid,
                        description,
                        reason,
                    },
                );
            }
        }
    }
}

/// A SET_TOPIC request read in place.
#[derive(Debug, PartialEq)]
struct SetInPlace<'a> {
    path: &'a str,
    topic_type: TopicType,
    value: Bytes,
    constraint: UpdateConstraint,
}

/// SET_TOPIC in the layout of [`crate::SetTopicRequest`], without copying: the path borrowed
/// and the value a slice of the received frame, so that a set costs no allocation besides
/// the frames it sends.
fn decode_set(payload: &Bytes, version: ProtocolVersion) -> Result<SetInPlace<'_>, PayloadError> {
    let mut r = Reader::new(payload);
    let path = r.string().field("topic path")?;
    let code = r.u8().field("topic type")?;
    let topic_type = TopicType::from_code(code).ok_or(PayloadError::UnknownTopicType(code))?;
    let value = payload.slice_ref(r.bytes().field("topic value")?);
    let constraint = UpdateConstraint::read(&mut r, version)?;
    match r.remaining() {
        0 => Ok(SetInPlace {
            path,
            topic_type,
            value,
            constraint,
        }),
        len => Err(PayloadError::TrailingBytes { len }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topics::SetTopicRequest;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn in_place_set_reads_as_the_codec_does(payload in proptest::collection::vec(any::<u8>(), 0..32),
                                                path in "[a-z/]{0,8}", value in proptest::collection::vec(any::<u8>(), 0..8),
                                                constrained: bool) {
            let payload = Bytes::from(payload);
            for version in [ProtocolVersion::V25, ProtocolVersion::V29] {
                let ours = decode_set(&payload, version)
                    .map(|s| (s.path.to_owned(), s.topic_type, s.value, s.constraint));
                let codec = SetTopicRequest::decode(&payload, version)
                    .map(|s| (s.path, s.topic_type, s.value, s.constraint));
                prop_assert_eq!(ours, codec);
                let request = SetTopicRequest {
                    path: path.clone(),
                    topic_type: TopicType::Json,
                    value: Bytes::from(value.clone()),
                    constraint: if constrained { UpdateConstraint::no_value() } else { UpdateConstraint::Unconstrained },
                };
                let bytes = request.to_bytes(version).unwrap_or_default();
                let read = decode_set(&bytes, version)
                    .map(|s| SetTopicRequest { path: s.path.to_owned(), topic_type: s.topic_type, value: s.value, constraint: s.constraint });
                prop_assert_eq!(read, Ok(request));
            }
        }
    }
}
