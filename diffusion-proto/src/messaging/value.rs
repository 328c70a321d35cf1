//! A messaging value: a datatype name (TOPICS.md §7.5) and the encoded bytes — the body of
//! every request and the whole payload of every response of services 85, 86 and 88.

use bytes::{Bytes, BytesMut};

use crate::handshake::ProtocolVersion;
use crate::topics::codec::{decode_all, read_bytes, read_string, PayloadError, ServicePayload};
use crate::topics::DataType;
use crate::wire::{self, Reader};

/// A request or response value with its datatype name; as a payload, the response of
/// services 85, 86 and 88.
///
/// ```
/// use bytes::Bytes;
/// use diffusion_proto::{DataType, MessagingValue, ProtocolVersion, ServicePayload};
///
/// // {"echo":{"q":7}}, as the handlers of TOPICS §7.1 answered.
/// let payload = b"\x04json\x0c\xbf\x64echo\xbf\x61q\x07\xff\xff";
/// let response = MessagingValue::decode(payload, ProtocolVersion::V25)?;
/// assert_eq!(response.data_type(), Some(DataType::Json));
/// assert_eq!(response, MessagingValue::new(DataType::Json, Bytes::from_static(&payload[6..])));
/// # Ok::<(), diffusion_proto::PayloadError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessagingValue {
    /// The datatype name, as received (a peer may name one this crate does not know).
    pub datatype: String,
    /// The encoded value.
    pub value: Bytes,
}

impl MessagingValue {
    /// A value of `data_type`.
    pub fn new(data_type: DataType, value: Bytes) -> Self {
        MessagingValue {
            datatype: data_type.name().to_owned(),
            value,
        }
    }

    /// The datatype, if its name is a known one.
    pub fn data_type(&self) -> Option<DataType> {
        DataType::from_name(&self.datatype)
    }

    pub(super) fn put(&self, out: &mut BytesMut) {
        wire::put_string(out, &self.datatype);
        wire::put_bytes(out, &self.value);
    }

    pub(super) fn read(r: &mut Reader<'_>) -> Result<Self, PayloadError> {
        Ok(MessagingValue {
            datatype: read_string(r, "datatype")?,
            value: read_bytes(r, "value")?,
        })
    }
}

impl ServicePayload for MessagingValue {
    fn encode(&self, out: &mut BytesMut, _version: ProtocolVersion) -> Result<(), PayloadError> {
        self.put(out);
        Ok(())
    }

    fn decode(payload: &[u8], _version: ProtocolVersion) -> Result<Self, PayloadError> {
        decode_all(payload, MessagingValue::read)
    }
}
