//! Topic control and update services (TOPICS.md §5): TOPIC_ADD (112), ADD_AND_SET_TOPIC
//! (122), SET_TOPIC (118) and TOPIC_REMOVAL (83), with their responses.

use bytes::{BufMut, Bytes, BytesMut};

use super::codec::{
    decode_all, read_bytes, read_string, EmptyPayload, Field, PayloadError, ServiceCall, ServicePayload,
};
use super::constraint::UpdateConstraint;
use super::datatype::TopicType;
use super::specification::TopicSpecification;
use crate::handshake::ProtocolVersion;
use crate::message::ServiceId;
use crate::wire;

/// TOPIC_ADD (112): create a topic. Errors: 9010 (another specification exists), 9005
/// (invalid path), 9006, 9007, 9011, 103, 110 (TOPICS §5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddTopicRequest {
    /// The topic path.
    pub path: String,
    /// The topic's type and properties.
    pub specification: TopicSpecification,
}

impl ServicePayload for AddTopicRequest {
    fn encode(&self, out: &mut BytesMut, _version: ProtocolVersion) -> Result<(), PayloadError> {
        wire::put_string(out, &self.path);
        self.specification.encode(out);
        Ok(())
    }

    fn decode(payload: &[u8], _version: ProtocolVersion) -> Result<Self, PayloadError> {
        decode_all(payload, |r| {
            Ok(AddTopicRequest {
                path: read_string(r, "topic path")?,
                specification: TopicSpecification::decode(r)?,
            })
        })
    }
}

impl ServiceCall for AddTopicRequest {
    const SERVICE: ServiceId = ServiceId::TOPIC_ADD;
    type Response = AddTopicResult;
}

/// The response of TOPIC_ADD and ADD_AND_SET_TOPIC: one byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddTopicResult {
    /// 0: the topic was created.
    Created,
    /// 1: a topic with the same specification existed (and, for ADD_AND_SET_TOPIC, was set).
    Exists,
}

impl ServicePayload for AddTopicResult {
    fn encode(&self, out: &mut BytesMut, _version: ProtocolVersion) -> Result<(), PayloadError> {
        out.put_u8(match self {
            AddTopicResult::Created => 0,
            AddTopicResult::Exists => 1,
        });
        Ok(())
    }

    fn decode(payload: &[u8], _version: ProtocolVersion) -> Result<Self, PayloadError> {
        decode_all(payload, |r| match r.u8().field("add topic result")? {
            0 => Ok(AddTopicResult::Created),
            1 => Ok(AddTopicResult::Exists),
            other => Err(PayloadError::UnknownCode {
                field: "add topic result",
                value: other.into(),
            }),
        })
    }
}

/// ADD_AND_SET_TOPIC (122): create the topic if needed and set its value, if the
/// constraint holds (TOPICS §5.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddAndSetTopicRequest {
    /// The topic path.
    pub path: String,
    /// The specification of the topic to create, or of the existing one.
    pub specification: TopicSpecification,
    /// The encoded value.
    pub value: Bytes,
    /// The condition the update requires.
    pub constraint: UpdateConstraint,
}

impl ServicePayload for AddAndSetTopicRequest {
    fn encode(&self, out: &mut BytesMut, version: ProtocolVersion) -> Result<(), PayloadError> {
        wire::put_string(out, &self.path);
        self.specification.encode(out);
        wire::put_bytes(out, &self.value);
        self.constraint.encode(out, version)
    }

    fn decode(payload: &[u8], version: ProtocolVersion) -> Result<Self, PayloadError> {
        decode_all(payload, |r| {
            Ok(AddAndSetTopicRequest {
                path: read_string(r, "topic path")?,
                specification: TopicSpecification::decode(r)?,
                value: read_bytes(r, "topic value")?,
                constraint: UpdateConstraint::read(r, version)?,
            })
        })
    }
}

impl ServiceCall for AddAndSetTopicRequest {
    const SERVICE: ServiceId = ServiceId::ADD_AND_SET_TOPIC;
    type Response = AddTopicResult;
}

/// SET_TOPIC (118): set an existing topic's value, if the constraint holds. Errors: 503
/// (no such topic), 500 (wrong type), 9012 (constraint unsatisfied), 103, 111, 501
/// (TOPICS §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetTopicRequest {
    /// The topic path.
    pub path: String,
    /// The type the value is encoded for; the server requires the topic's own type.
    pub topic_type: TopicType,
    /// The encoded value.
    pub value: Bytes,
    /// The condition the update requires.
    pub constraint: UpdateConstraint,
}

impl ServicePayload for SetTopicRequest {
    fn encode(&self, out: &mut BytesMut, version: ProtocolVersion) -> Result<(), PayloadError> {
        wire::put_string(out, &self.path);
        out.put_u8(self.topic_type.code());
        wire::put_bytes(out, &self.value);
        self.constraint.encode(out, version)
    }

    fn decode(payload: &[u8], version: ProtocolVersion) -> Result<Self, PayloadError> {
        decode_all(payload, |r| {
            let path = read_string(r, "topic path")?;
            let code = r.u8().field("topic type")?;
            Ok(SetTopicRequest {
                path,
                topic_type: TopicType::from_code(code).ok_or(PayloadError::UnknownTopicType(code))?,
                value: read_bytes(r, "topic value")?,
                constraint: UpdateConstraint::read(r, version)?,
            })
        })
    }
}

impl ServiceCall for SetTopicRequest {
    const SERVICE: ServiceId = ServiceId::SET_TOPIC;
    type Response = EmptyPayload;
}

/// TOPIC_REMOVAL (83): remove every topic the selector matches (TOPICS §5.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoveTopicsRequest {
    /// The selector string (§8).
    pub selector: String,
}

impl ServicePayload for RemoveTopicsRequest {
    fn encode(&self, out: &mut BytesMut, _version: ProtocolVersion) -> Result<(), PayloadError> {
        wire::put_string(out, &self.selector);
        Ok(())
    }

    fn decode(payload: &[u8], _version: ProtocolVersion) -> Result<Self, PayloadError> {
        decode_all(payload, |r| {
            Ok(RemoveTopicsRequest {
                selector: read_string(r, "selector")?,
            })
        })
    }
}

impl ServiceCall for RemoveTopicsRequest {
    const SERVICE: ServiceId = ServiceId::TOPIC_REMOVAL;
    type Response = RemoveTopicsResponse;
}

/// The response of TOPIC_REMOVAL: how many topics were removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoveTopicsResponse {
    /// The number of topics removed (a varint int32).
    pub removed: i32,
}

impl ServicePayload for RemoveTopicsResponse {
    fn encode(&self, out: &mut BytesMut, _version: ProtocolVersion) -> Result<(), PayloadError> {
        wire::put_varint_i32(out, self.removed);
        Ok(())
    }

    fn decode(payload: &[u8], _version: ProtocolVersion) -> Result<Self, PayloadError> {
        decode_all(payload, |r| {
            Ok(RemoveTopicsResponse {
                removed: r.varint_i32().field("removed count")?,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const V25: ProtocolVersion = ProtocolVersion::V25;
    const V29: ProtocolVersion = ProtocolVersion::V29;

    #[test]
    fn set_topic_with_a_constraint() {
        // STRING "x" with NO_VALUE, PY and JS alike (TOPICS §5.2).
        let payload = b"\x05t/new\x11\x02\x61x\x03";
        let request = SetTopicRequest {
            path: "t/new".into(),
            topic_type: TopicType::String,
            value: Bytes::from_static(b"\x61x"),
            constraint: UpdateConstraint::no_value(),
        };
        for version in [V25, V29] {
            assert_eq!(SetTopicRequest::decode(payload, version), Ok(request.clone()));
            assert_eq!(
                request.to_bytes(version).map(|b| b.to_vec()),
                Ok(payload.to_vec())
            );
        }
        assert_eq!(
            SetTopicRequest::decode(b"\x01a\x07\x00\x00", V25),
            Err(PayloadError::UnknownTopicType(7))
        );
    }

    #[test]
    fn results_are_one_byte_and_a_count() {
        assert_eq!(AddTopicResult::decode(&[0], V25), Ok(AddTopicResult::Created));
        assert_eq!(AddTopicResult::decode(&[1], V29), Ok(AddTopicResult::Exists));
        assert!(matches!(
            AddTopicResult::decode(&[2], V29),
            Err(PayloadError::UnknownCode { value: 2, .. })
        ));
        assert_eq!(
            RemoveTopicsResponse::decode(&[1], V25),
            Ok(RemoveTopicsResponse { removed: 1 })
        );
    }

    proptest! {
        #[test]
        fn requests_round_trip(path in ".{0,12}", code in 14u8..=21, value in proptest::collection::vec(any::<u8>(), 0..12),
                               key in "[A-Z]{1,6}", v in ".{0,4}") {
            let topic_type = TopicType::from_code(code).unwrap_or(TopicType::Json);
            let specification = TopicSpecification::new(topic_type).with_property(key, v);
            let add = AddTopicRequest { path: path.clone(), specification: specification.clone() };
            let add_and_set = AddAndSetTopicRequest {
                path: path.clone(),
                specification,
                value: value.clone().into(),
                constraint: UpdateConstraint::no_topic(),
            };
            let set = SetTopicRequest { path: path.clone(), topic_type, value: value.into(), constraint: UpdateConstraint::Unconstrained };
            let remove = RemoveTopicsRequest { selector: path };
            for version in [V25, V29] {
                prop_assert_eq!(add.to_bytes(version).and_then(|b| AddTopicRequest::decode(&b, version)), Ok(add.clone()));
                prop_assert_eq!(add_and_set.to_bytes(version).and_then(|b| AddAndSetTopicRequest::decode(&b, version)), Ok(add_and_set.clone()));
                prop_assert_eq!(set.to_bytes(version).and_then(|b| SetTopicRequest::decode(&b, version)), Ok(set.clone()));
                prop_assert_eq!(remove.to_bytes(version).and_then(|b| RemoveTopicsRequest::decode(&b, version)), Ok(remove.clone()));
            }
        }

        #[test]
        fn any_payload_decodes_or_fails(payload in proptest::collection::vec(any::<u8>(), 0..40)) {
            for version in [V25, V29] {
                let _ = AddTopicRequest::decode(&payload, version);
                let _ = AddAndSetTopicRequest::decode(&payload, version);
                let _ = SetTopicRequest::decode(&payload, version);
                let _ = RemoveTopicsResponse::decode(&payload, version);
            }
        }
    }
}
