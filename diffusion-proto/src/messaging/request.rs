//! Requests to a path (MESSAGING_SEND 85, both directions) and to one session
//! (MESSAGING_RECEIVER_SERVER 86).

use bytes::BytesMut;

use super::value::MessagingValue;
use crate::handshake::{ProtocolVersion, SessionId};
use crate::message::ServiceId;
use crate::topics::codec::{
    decode_all, put_session_id, read_session_id, read_string, PayloadError, ServiceCall, ServicePayload,
};
use crate::wire::{self, Reader};

/// MESSAGING_SEND (85): a request to the handler of a path (client → server), or a request
/// delivered to this session's request stream for the path (server → client).
///
/// ```
/// use bytes::Bytes;
/// use diffusion_proto::{DataType, MessagingValue, ProtocolVersion, SendRequest, ServicePayload};
///
/// let request = SendRequest {
///     path: "svc/echo".into(),
///     value: MessagingValue::new(DataType::Json, Bytes::from_static(&[0xbf, 0x61, 0x71, 0x07, 0xff])),
/// };
/// let bytes = request.to_bytes(ProtocolVersion::V25)?;
/// assert_eq!(&bytes[..], b"\x08svc/echo\x04json\x05\xbf\x61\x71\x07\xff");
/// assert_eq!(SendRequest::decode(&bytes, ProtocolVersion::V29)?, request);
/// # Ok::<(), diffusion_proto::PayloadError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRequest {
    /// The path the request is for.
    pub path: String,
    /// The request value.
    pub value: MessagingValue,
}

impl ServicePayload for SendRequest {
    fn encode(&self, out: &mut BytesMut, _version: ProtocolVersion) -> Result<(), PayloadError> {
        wire::put_string(out, &self.path);
        self.value.put(out);
        Ok(())
    }

    fn decode(payload: &[u8], _version: ProtocolVersion) -> Result<Self, PayloadError> {
        decode_all(payload, |r| {
            Ok(SendRequest {
                path: read_string(r, "message path")?,
                value: MessagingValue::read(r)?,
            })
        })
    }
}

impl ServiceCall for SendRequest {
    const SERVICE: ServiceId = ServiceId::MESSAGING_SEND;
    type Response = MessagingValue;
}

/// MESSAGING_RECEIVER_SERVER (86): a request to one session's request stream for a path;
/// the server delivers `request` to that session as service 85 (TOPICS §7.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendToSessionRequest {
    /// The session the request is for.
    pub session_id: SessionId,
    /// The request, as the target session receives it.
    pub request: SendRequest,
}

impl ServicePayload for SendToSessionRequest {
    fn encode(&self, out: &mut BytesMut, version: ProtocolVersion) -> Result<(), PayloadError> {
        put_session_id(out, self.session_id);
        self.request.encode(out, version)
    }

    fn decode(payload: &[u8], version: ProtocolVersion) -> Result<Self, PayloadError> {
        let mut r = Reader::new(payload);
        let session_id = read_session_id(&mut r, "session id")?;
        Ok(SendToSessionRequest {
            session_id,
            request: SendRequest::decode(r.rest(), version)?,
        })
    }
}

impl ServiceCall for SendToSessionRequest {
    const SERVICE: ServiceId = ServiceId::MESSAGING_RECEIVER_SERVER;
    type Response = MessagingValue;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topics::DataType;
    use proptest::prelude::*;

    const VERSIONS: [ProtocolVersion; 2] = [ProtocolVersion::V25, ProtocolVersion::V29];

    #[test]
    fn unknown_datatype_names_are_kept() {
        let payload = b"\x01p\x09record_v3\x00";
        let request = SendRequest::decode(payload, ProtocolVersion::V25);
        assert_eq!(request.as_ref().map(|r| r.value.data_type()), Ok(None));
        assert_eq!(request.map(|r| r.value.datatype), Ok("record_v3".to_owned()));
        let typed = MessagingValue::new(DataType::Int64, bytes::Bytes::from_static(&[0x01]));
        assert_eq!(typed.data_type(), Some(DataType::Int64));
    }

    proptest! {
        #[test]
        fn requests_round_trip(path in ".{0,10}", datatype in "[a-z0-9_]{0,9}", value in proptest::collection::vec(any::<u8>(), 0..10),
                               server: u64, id: u64) {
            let value = MessagingValue { datatype, value: value.into() };
            let send = SendRequest { path, value: value.clone() };
            let to_session = SendToSessionRequest {
                session_id: SessionId { server, value: id },
                request: send.clone(),
            };
            for version in VERSIONS {
                prop_assert_eq!(send.to_bytes(version).and_then(|b| SendRequest::decode(&b, version)), Ok(send.clone()));
                prop_assert_eq!(to_session.to_bytes(version).and_then(|b| SendToSessionRequest::decode(&b, version)), Ok(to_session.clone()));
                prop_assert_eq!(value.to_bytes(version).and_then(|b| MessagingValue::decode(&b, version)), Ok(value.clone()));
            }
        }

        #[test]
        fn any_payload_decodes_or_fails(payload in proptest::collection::vec(any::<u8>(), 0..40)) {
            for version in VERSIONS {
                let _ = SendRequest::decode(&payload, version);
                let _ = SendToSessionRequest::decode(&payload, version);
                let _ = MessagingValue::decode(&payload, version);
            }
        }
    }
}
