//! Request handlers (TOPICS.md §7.2, §7.3): registration (97) and deregistration (98) of a
//! handler for a path, and the requests the server forwards to it (88).

use bytes::BytesMut;

use super::value::MessagingValue;
use crate::handshake::{ProtocolVersion, SessionId};
use crate::message::ServiceId;
use crate::topics::codec::{
    decode_all, put_properties, put_session_id, put_string_list, read_session_id, read_string,
    read_string_list, Field, PayloadError, ServiceCall, ServicePayload,
};
use crate::topics::EmptyPayload;
use crate::wire::{self, Reader};

/// What names a handler registration, in registration and deregistration alike.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HandlerKey {
    /// The service the server forwards requests with: MESSAGING_RECEIVER_CLIENT (88).
    pub service: ServiceId,
    /// The control group: `""` from the Python client, `"default"` from the JavaScript one.
    pub control_group: String,
    /// The path handled.
    pub path: String,
    /// The session properties of the requester the handler receives.
    pub property_keys: Vec<String>,
}

impl HandlerKey {
    fn encode(&self, out: &mut BytesMut) {
        wire::put_varint_i32(out, self.service.0);
        wire::put_string(out, &self.control_group);
        wire::put_string(out, &self.path);
        put_string_list(out, &self.property_keys);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, PayloadError> {
        Ok(HandlerKey {
            service: ServiceId(r.varint_i32().field("handler service")?),
            control_group: read_string(r, "control group")?,
            path: read_string(r, "handler path")?,
            property_keys: read_string_list(r, "property keys")?,
        })
    }
}

/// MESSAGING_RECEIVER_CONTROL_REGISTRATION (97): register a handler for requests to a
/// path. The registration cid is a conversation the client keeps open for the
/// registration's life; the server quotes it in every forwarded request.
///
/// ```
/// use diffusion_proto::{ProtocolVersion, RegisterHandlerRequest, ServicePayload};
///
/// // As the Python client registers (control group "").
/// let request = RegisterHandlerRequest::new("svc/echo", "", vec!["Team".into()], 1);
/// assert_eq!(
///     &request.to_bytes(ProtocolVersion::V25)?[..],
///     b"\x58\x00\x08svc/echo\x01\x04Team\x01"
/// );
/// # Ok::<(), diffusion_proto::PayloadError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterHandlerRequest {
    /// The registration.
    pub handler: HandlerKey,
    /// The conversation that forwarded requests name.
    pub registration_cid: i64,
}

impl RegisterHandlerRequest {
    /// A registration forwarded through service 88.
    pub fn new(
        path: impl Into<String>,
        control_group: impl Into<String>,
        property_keys: Vec<String>,
        registration_cid: i64,
    ) -> Self {
        RegisterHandlerRequest {
            handler: HandlerKey {
                service: ServiceId::MESSAGING_RECEIVER_CLIENT,
                control_group: control_group.into(),
                path: path.into(),
                property_keys,
            },
            registration_cid,
        }
    }
}

impl ServicePayload for RegisterHandlerRequest {
    fn encode(&self, out: &mut BytesMut, _version: ProtocolVersion) -> Result<(), PayloadError> {
        self.handler.encode(out);
        wire::put_varint_i64(out, self.registration_cid);
        Ok(())
    }

    fn decode(payload: &[u8], _version: ProtocolVersion) -> Result<Self, PayloadError> {
        decode_all(payload, |r| {
            Ok(RegisterHandlerRequest {
                handler: HandlerKey::read(r)?,
                registration_cid: r.varint_i64().field("registration cid")?,
            })
        })
    }
}

impl ServiceCall for RegisterHandlerRequest {
    const SERVICE: ServiceId = ServiceId::MESSAGING_RECEIVER_CONTROL_REGISTRATION;
    type Response = EmptyPayload;
}

/// MESSAGING_RECEIVER_CONTROL_DEREGISTRATION (98): remove a handler, named as it was
/// registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeregisterHandlerRequest {
    /// The registration to remove.
    pub handler: HandlerKey,
}

impl ServicePayload for DeregisterHandlerRequest {
    fn encode(&self, out: &mut BytesMut, _version: ProtocolVersion) -> Result<(), PayloadError> {
        self.handler.encode(out);
        Ok(())
    }

    fn decode(payload: &[u8], _version: ProtocolVersion) -> Result<Self, PayloadError> {
        decode_all(payload, |r| {
            Ok(DeregisterHandlerRequest {
                handler: HandlerKey::read(r)?,
            })
        })
    }
}

impl ServiceCall for DeregisterHandlerRequest {
    const SERVICE: ServiceId = ServiceId::MESSAGING_RECEIVER_CONTROL_DEREGISTRATION;
    type Response = EmptyPayload;
}

/// MESSAGING_RECEIVER_CLIENT (88), server → client: a request forwarded to the handler
/// registered under `registration_cid`. The handler answers with a [`MessagingValue`],
/// or a SERVICE_ERROR (9003 rejected, 105 handler failed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerRequest {
    /// The registration's conversation id.
    pub registration_cid: i64,
    /// The requesting session.
    pub sender: SessionId,
    /// The path the request was sent to.
    pub path: String,
    /// The sender's session properties the registration asked for.
    pub properties: Vec<(String, String)>,
    /// The request value.
    pub value: MessagingValue,
}

impl ServicePayload for HandlerRequest {
    fn encode(&self, out: &mut BytesMut, _version: ProtocolVersion) -> Result<(), PayloadError> {
        wire::put_varint_i64(out, self.registration_cid);
        put_session_id(out, self.sender);
        wire::put_string(out, &self.path);
        put_properties(out, &self.properties);
        self.value.put(out);
        Ok(())
    }

    fn decode(payload: &[u8], _version: ProtocolVersion) -> Result<Self, PayloadError> {
        decode_all(payload, |r| {
            let registration_cid = r.varint_i64().field("registration cid")?;
            let sender = read_session_id(r, "sender session id")?;
            let path = read_string(r, "message path")?;
            let properties = r.string_map().field("session properties")?;
            Ok(HandlerRequest {
                registration_cid,
                sender,
                path,
                properties,
                value: MessagingValue::read(r)?,
            })
        })
    }
}

impl ServiceCall for HandlerRequest {
    const SERVICE: ServiceId = ServiceId::MESSAGING_RECEIVER_CLIENT;
    type Response = MessagingValue;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const VERSIONS: [ProtocolVersion; 2] = [ProtocolVersion::V25, ProtocolVersion::V29];

    #[test]
    fn deregistration_repeats_the_registration_without_its_cid() {
        let registration = RegisterHandlerRequest::new("svc/echo", "default", vec!["Team".into()], 1);
        let deregistration = DeregisterHandlerRequest {
            handler: registration.handler.clone(),
        };
        let registered = registration
            .to_bytes(ProtocolVersion::V29)
            .map(|b| b.to_vec())
            .unwrap_or_default();
        let deregistered = deregistration
            .to_bytes(ProtocolVersion::V29)
            .map(|b| b.to_vec())
            .unwrap_or_default();
        assert_eq!(&registered[..registered.len() - 1], &deregistered[..]);
        assert_eq!(
            DeregisterHandlerRequest::decode(&deregistered, ProtocolVersion::V29),
            Ok(deregistration)
        );
    }

    proptest! {
        #[test]
        fn handler_requests_round_trip(cid: i64, server: u64, value_part: u64, path in ".{0,8}",
                                       properties in proptest::collection::vec(("[A-Za-z]{1,5}", ".{0,4}"), 0..3),
                                       value in proptest::collection::vec(any::<u8>(), 0..8)) {
            let request = HandlerRequest {
                registration_cid: cid,
                sender: SessionId { server, value: value_part },
                path,
                properties,
                value: MessagingValue { datatype: "json".into(), value: value.into() },
            };
            for version in VERSIONS {
                prop_assert_eq!(request.to_bytes(version).and_then(|b| HandlerRequest::decode(&b, version)), Ok(request.clone()));
            }
        }

        #[test]
        fn any_payload_decodes_or_fails(payload in proptest::collection::vec(any::<u8>(), 0..40)) {
            for version in VERSIONS {
                let _ = HandlerRequest::decode(&payload, version);
                let _ = RegisterHandlerRequest::decode(&payload, version);
                let _ = DeregisterHandlerRequest::decode(&payload, version);
            }
        }
    }
}
