//! What the service codecs of topics and messaging share: the payload traits, the payload
//! error, and field readers that say which field failed.
//!
//! Every decoder is a pure function of `&[u8]` and the protocol version, reads every byte
//! (trailing bytes are an error) and allocates only after a length has been checked.

use bytes::{Bytes, BytesMut};

use crate::handshake::{ProtocolVersion, SessionId};
use crate::message::ServiceId;
use crate::wire::{self, Reader, WireError};

/// A service request or response payload: the bytes after the cid of a SERVICE_REQUEST or
/// SERVICE_RESPONSE, in the layout of the given protocol version.
pub trait ServicePayload: Sized {
    /// Appends the payload; fails only for what `version` cannot express.
    fn encode(&self, out: &mut BytesMut, version: ProtocolVersion) -> Result<(), PayloadError>;

    /// Reads a whole payload.
    fn decode(payload: &[u8], version: ProtocolVersion) -> Result<Self, PayloadError>;

    /// The payload as bytes.
    fn to_bytes(&self, version: ProtocolVersion) -> Result<Bytes, PayloadError> {
        let mut out = BytesMut::new();
        self.encode(&mut out, version)?;
        Ok(out.freeze())
    }
}

/// A request payload: the service it is sent to and its response payload.
///
/// ```
/// use diffusion_proto::{ProtocolVersion, ServiceCall, ServicePayload, SubscribeRequest};
///
/// let request = SubscribeRequest::new("?t//");
/// assert_eq!(SubscribeRequest::SERVICE.0, 3);
/// assert_eq!(&request.to_bytes(ProtocolVersion::V25)?[..], b"\x04?t//");
/// assert_eq!(&request.to_bytes(ProtocolVersion::V29)?[..], b"\x04?t//\x00");
/// # Ok::<(), diffusion_proto::PayloadError>(())
/// ```
pub trait ServiceCall: ServicePayload {
    /// The service the request goes to.
    const SERVICE: ServiceId;
    /// The payload of a successful response.
    type Response: ServicePayload;
}

/// The empty payload: the response of most topic and messaging services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct EmptyPayload;

impl ServicePayload for EmptyPayload {
    fn encode(&self, _out: &mut BytesMut, _version: ProtocolVersion) -> Result<(), PayloadError> {
        Ok(())
    }

    fn decode(payload: &[u8], _version: ProtocolVersion) -> Result<Self, PayloadError> {
        decode_all(payload, |_| Ok(EmptyPayload))
    }
}

/// Why a service payload could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// A field could not be read.
    #[error("malformed {field}: {source}")]
    Malformed {
        /// The field, e.g. `topic path`.
        field: &'static str,
        /// The primitive that failed.
        #[source]
        source: WireError,
    },
    /// Bytes followed the last field.
    #[error("{len} unexpected byte(s) after the last field")]
    TrailingBytes {
        /// How many.
        len: usize,
    },
    /// A topic type byte names no topic type.
    #[error("unknown topic type {0}")]
    UnknownTopicType(u8),
    /// A code (constraint type, operator, result…) has no meaning.
    #[error("unknown {field} {value}")]
    UnknownCode {
        /// The field.
        field: &'static str,
        /// The code read.
        value: i64,
    },
    /// The value cannot be expressed in this protocol version.
    #[error("{what} cannot be sent in protocol {version}")]
    NotInVersion {
        /// What.
        what: &'static str,
        /// The version.
        version: ProtocolVersion,
    },
    /// Update constraints nest deeper than the limit.
    #[error("update constraint nests deeper than {limit} levels")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// A fetch result names a property set that is not in the response.
    #[error("fetch result names property set {index} of {sets}")]
    PropertiesIndex {
        /// The index read.
        index: i32,
        /// How many sets the response has.
        sets: usize,
    },
}

/// Names the field a primitive belongs to.
pub(crate) trait Field<T> {
    fn field(self, field: &'static str) -> Result<T, PayloadError>;
}

impl<T> Field<T> for Result<T, WireError> {
    fn field(self, field: &'static str) -> Result<T, PayloadError> {
        self.map_err(|source| PayloadError::Malformed { field, source })
    }
}

/// Runs `read` over the whole payload and requires it to consume every byte.
pub(crate) fn decode_all<T>(
    payload: &[u8],
    read: impl FnOnce(&mut Reader<'_>) -> Result<T, PayloadError>,
) -> Result<T, PayloadError> {
    let mut r = Reader::new(payload);
    let value = read(&mut r)?;
    match r.remaining() {
        0 => Ok(value),
        len => Err(PayloadError::TrailingBytes { len }),
    }
}

/// Whether `version` has the protocol-27 forms (constraints, …): version 29 does.
pub(crate) fn has_v27_forms(version: ProtocolVersion) -> bool {
    version.number() >= 27
}

/// A session id inside a payload: two varint int64, server part then value part (TOPICS §1).
pub(crate) fn read_session_id(r: &mut Reader<'_>, field: &'static str) -> Result<SessionId, PayloadError> {
    let server = r.varint_i64().field(field)?;
    let value = r.varint_i64().field(field)?;
    Ok(SessionId {
        server: server as u64,
        value: value as u64,
    })
}

pub(crate) fn put_session_id(out: &mut BytesMut, id: SessionId) {
    wire::put_varint_i64(out, id.server as i64);
    wire::put_varint_i64(out, id.value as i64);
}

pub(crate) fn read_string(r: &mut Reader<'_>, field: &'static str) -> Result<String, PayloadError> {
    r.string().map(str::to_owned).field(field)
}

pub(crate) fn read_bytes(r: &mut Reader<'_>, field: &'static str) -> Result<Bytes, PayloadError> {
    r.bytes().map(Bytes::copy_from_slice).field(field)
}

pub(crate) fn read_string_list(r: &mut Reader<'_>, field: &'static str) -> Result<Vec<String>, PayloadError> {
    r.collection(|r| r.string().map(str::to_owned)).field(field)
}

/// A count-prefixed list whose items may fail with a payload error; a count larger than
/// the bytes left is refused before anything is allocated (each item takes a byte).
pub(crate) fn read_list<T>(
    r: &mut Reader<'_>,
    field: &'static str,
    mut item: impl FnMut(&mut Reader<'_>) -> Result<T, PayloadError>,
) -> Result<Vec<T>, PayloadError> {
    let count = r.length().field(field)?;
    if count > r.remaining() {
        return Err(PayloadError::Malformed {
            field,
            source: WireError::UnexpectedEnd {
                needed: count,
                remaining: r.remaining(),
            },
        });
    }
    let mut items = Vec::with_capacity(count);
    for _ in 0..count {
        items.push(item(r)?);
    }
    Ok(items)
}

pub(crate) fn put_string_list(out: &mut BytesMut, items: &[String]) {
    wire::put_length(out, items.len());
    for item in items {
        wire::put_string(out, item);
    }
}

pub(crate) fn put_properties(out: &mut BytesMut, properties: &[(String, String)]) {
    wire::put_string_map(out, properties.iter().map(|(k, v)| (k.as_str(), v.as_str())));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_two_varint_int64() {
        // The sender of TOPICS §7.3: server part 1122334455667788, value 3.
        let id = SessionId {
            server: 0x1122_3344_5566_7788,
            value: 3,
        };
        let mut out = BytesMut::new();
        put_session_id(&mut out, id);
        assert_eq!(
            &out[..],
            [0x88, 0xef, 0x99, 0xab, 0xc5, 0xe8, 0x8c, 0x91, 0x11, 0x03]
        );
        assert_eq!(read_session_id(&mut Reader::new(&out), "sender"), Ok(id));
        // A part ≥ 2^63 travels as a negative int64 in ten bytes.
        let high = SessionId {
            server: 0xae16_1e01_ba72_13b7,
            value: u64::MAX,
        };
        let mut out = BytesMut::new();
        put_session_id(&mut out, high);
        assert_eq!(out.len(), 20);
        assert_eq!(&out[..6], [0xb7, 0xa7, 0xc8, 0xd3, 0x9b, 0xc0]);
        assert_eq!(read_session_id(&mut Reader::new(&out), "sender"), Ok(high));
    }

    #[test]
    fn empty_payload_is_empty() {
        assert_eq!(EmptyPayload::decode(&[], ProtocolVersion::V25), Ok(EmptyPayload));
        assert_eq!(
            EmptyPayload::decode(&[0], ProtocolVersion::V29),
            Err(PayloadError::TrailingBytes { len: 1 })
        );
        assert_eq!(
            EmptyPayload.to_bytes(ProtocolVersion::V29).map(|b| b.len()),
            Ok(0)
        );
    }
}
