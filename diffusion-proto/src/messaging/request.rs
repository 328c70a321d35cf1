//! Requests to a path (MESSAGING_SEND 85, both directions) and to one session
//! (MESSAGING_RECEIVER_SERVER 86), and the datatype + bytes response all of them share.

use bytes::{Bytes, BytesMut};

use crate::message::ServiceId;
use crate::response::{ProtocolVersion, SessionId};
use crate::topics::codec::{
    decode_all, put_session_id, read_bytes, read_session_id, read_string, PayloadError, ServiceCall,
    ServicePayload,
};
use crate::topics::DataType;
use crate::wire::{self, Reader};

/// MESSAGING_SEND (85): a request to the handler of a path (client → server), or a request
/// delivered to this session's request stream for the path (server → client).
///
/// ```
/// use bytes::Bytes;
/// use diffusion_proto::{DataType, ProtocolVersion, SendRequest, ServicePayload};
///
/// let request = SendRequest::new("svc/echo", DataType::Json, Bytes::from_static(&[0xbf, 0x61, 0x71, 0x07, 0xff]));
/// let bytes = request.to_bytes(ProtocolVersion::V25)?;
/// assert_eq!(&bytes[..], b"\x08svc/echo\x04json\x05\xbf\x61\x71\x07\xff");
/// assert_eq!(SendRequest::decode(&bytes, ProtocolVersion::V29)?.data_type(), Some(DataType::Json));
/// # Ok::<(), diffusion_proto::PayloadError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRequest {
    /// The path the request is for.
    pub path: String,
    /// The request's datatype name (§7.5), as received.
    pub datatype: String,
    /// The encoded request value.
    pub value: Bytes,
}

impl SendRequest {
    /// A request to `path` with a value of `data_type`.
    pub fn new(path: impl Into<String>, data_type: DataType, value: Bytes) -> Self {
        SendRequest {
            path: path.into(),
            datatype: data_type.name().to_owned(),
            value,
        }
    }

    /// The request's datatype, if its name is a known one.
    pub fn data_type(&self) -> Option<DataType> {
        DataType::from_name(&self.datatype)
    }
}

impl ServicePayload for SendRequest {
    fn encode(&self, out: &mut BytesMut, _version: ProtocolVersion) -> Result<(), PayloadError> {
        wire::put_string(out, &self.path);
        put_typed_value(out, &self.datatype, &self.value);
        Ok(())
    }

    fn decode(payload: &[u8], _version: ProtocolVersion) -> Result<Self, PayloadError> {
        decode_all(payload, |r| {
            let path = read_string(r, "message path")?;
            let (datatype, value) = read_typed_value(r)?;
            Ok(SendRequest {
                path,
                datatype,
                value,
            })
        })
    }
}

impl ServiceCall for SendRequest {
    const SERVICE: ServiceId = ServiceId::MESSAGING_SEND;
    type Response = MessagingResponse;
}

/// MESSAGING_RECEIVER_SERVER (86): a request to one session's request stream for a path;
/// the server delivers it as a [`SendRequest`] (TOPICS §7.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendToSessionRequest {
    /// The session the request is for.
    pub session_id: SessionId,
    /// The path the request is for.
    pub path: String,
    /// The request's datatype name.
    pub datatype: String,
    /// The encoded request value.
    pub value: Bytes,
}

impl SendToSessionRequest {
    /// The request's datatype, if its name is a known one.
    pub fn data_type(&self) -> Option<DataType> {
        DataType::from_name(&self.datatype)
    }
}

impl ServicePayload for SendToSessionRequest {
    fn encode(&self, out: &mut BytesMut, _version: ProtocolVersion) -> Result<(), PayloadError> {
        put_session_id(out, self.session_id);
        wire::put_string(out, &self.path);
        put_typed_value(out, &self.datatype, &self.value);
        Ok(())
    }

    fn decode(payload: &[u8], _version: ProtocolVersion) -> Result<Self, PayloadError> {
        decode_all(payload, |r| {
            let session_id = read_session_id(r, "session id")?;
            let path = read_string(r, "message path")?;
            let (datatype, value) = read_typed_value(r)?;
            Ok(SendToSessionRequest {
                session_id,
                path,
                datatype,
                value,
            })
        })
    }
}

impl ServiceCall for SendToSessionRequest {
    const SERVICE: ServiceId = ServiceId::MESSAGING_RECEIVER_SERVER;
    type Response = MessagingResponse;
}

/// The response of services 85, 86 and 88: the answer's datatype name and bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessagingResponse {
    /// The response's datatype name, as received.
    pub datatype: String,
    /// The encoded response value.
    pub value: Bytes,
}

impl MessagingResponse {
    /// A response with a value of `data_type`.
    pub fn new(data_type: DataType, value: Bytes) -> Self {
        MessagingResponse {
            datatype: data_type.name().to_owned(),
            value,
        }
    }

    /// The response's datatype, if its name is a known one.
    pub fn data_type(&self) -> Option<DataType> {
        DataType::from_name(&self.datatype)
    }
}

impl ServicePayload for MessagingResponse {
    fn encode(&self, out: &mut BytesMut, _version: ProtocolVersion) -> Result<(), PayloadError> {
        put_typed_value(out, &self.datatype, &self.value);
        Ok(())
    }

    fn decode(payload: &[u8], _version: ProtocolVersion) -> Result<Self, PayloadError> {
        decode_all(payload, |r| {
            let (datatype, value) = read_typed_value(r)?;
            Ok(MessagingResponse { datatype, value })
        })
    }
}

/// A datatype name, then the value's bytes.
pub(super) fn put_typed_value(out: &mut BytesMut, datatype: &str, value: &[u8]) {
    wire::put_string(out, datatype);
    wire::put_bytes(out, value);
}

pub(super) fn read_typed_value(r: &mut Reader<'_>) -> Result<(String, Bytes), PayloadError> {
    Ok((read_string(r, "datatype")?, read_bytes(r, "value")?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const VERSIONS: [ProtocolVersion; 2] = [ProtocolVersion::V25, ProtocolVersion::V29];

    #[test]
    fn response_of_the_echo_handler() {
        // TOPICS §7.1: json {"echo":{"q":7}}.
        let payload = b"\x04json\x0c\xbf\x64echo\xbf\x61q\x07\xff\xff";
        let response = MessagingResponse::decode(payload, ProtocolVersion::V25);
        assert_eq!(
            response.as_ref().map(MessagingResponse::data_type),
            Ok(Some(DataType::Json))
        );
        assert_eq!(
            response
                .and_then(|r| r.to_bytes(ProtocolVersion::V29))
                .map(|b| b.to_vec()),
            Ok(payload.to_vec())
        );
        let unknown = MessagingResponse {
            datatype: "record_v3".into(),
            value: Bytes::new(),
        };
        assert_eq!(unknown.data_type(), None);
    }

    proptest! {
        #[test]
        fn requests_round_trip(path in ".{0,10}", datatype in "[a-z0-9_]{0,9}", value in proptest::collection::vec(any::<u8>(), 0..10),
                               server: u64, id: u64) {
            let send = SendRequest { path: path.clone(), datatype: datatype.clone(), value: value.clone().into() };
            let to_session = SendToSessionRequest {
                session_id: SessionId { server, value: id },
                path,
                datatype: datatype.clone(),
                value: value.clone().into(),
            };
            let response = MessagingResponse { datatype, value: value.into() };
            for version in VERSIONS {
                prop_assert_eq!(send.to_bytes(version).and_then(|b| SendRequest::decode(&b, version)), Ok(send.clone()));
                prop_assert_eq!(to_session.to_bytes(version).and_then(|b| SendToSessionRequest::decode(&b, version)), Ok(to_session.clone()));
                prop_assert_eq!(response.to_bytes(version).and_then(|b| MessagingResponse::decode(&b, version)), Ok(response.clone()));
            }
        }

        #[test]
        fn any_payload_decodes_or_fails(payload in proptest::collection::vec(any::<u8>(), 0..40)) {
            for version in VERSIONS {
                let _ = SendRequest::decode(&payload, version);
                let _ = SendToSessionRequest::decode(&payload, version);
                let _ = MessagingResponse::decode(&payload, version);
            }
        }
    }
}
