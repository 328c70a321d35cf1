//! The message codec of SPEC §4, §6 and §7: one Diffusion message per WebSocket binary
//! frame, a type byte (low 6 bits type, top 2 bits encoding) and a body per type.
//!
//! Decoding takes a [`Bytes`] frame and slices payloads out of it without copying.

use bytes::{BufMut, Bytes, BytesMut};

use crate::wire::{self, Reader, WireError};

/// A service identifier (varint int32 after the SERVICE_REQUEST type byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize), serde(transparent))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct ServiceId(pub i32);

impl ServiceId {
    /// CHANGE_PRINCIPAL, client → server.
    pub const CHANGE_PRINCIPAL: ServiceId = ServiceId(5);
    /// SYSTEM_PING: the server's keep-alive, answered at once by the client.
    pub const SYSTEM_PING: ServiceId = ServiceId(55);
    /// USER_PING: either side asks, the other answers with an empty response.
    pub const USER_PING: ServiceId = ServiceId(56);
    /// NOTIFY_SUBSCRIPTION, server → client, usually one-way (cid 0).
    pub const NOTIFY_SUBSCRIPTION: ServiceId = ServiceId(87);
    /// GET_OWN_SESSION_PROPERTIES, client → server.
    pub const GET_OWN_SESSION_PROPERTIES: ServiceId = ServiceId(202);
    /// RE_AUTHENTICATE, client → server.
    pub const RE_AUTHENTICATE: ServiceId = ServiceId(203);
    /// SUBSCRIBE, client → server (TOPICS §2.1).
    pub const SUBSCRIBE: ServiceId = ServiceId(3);
    /// UNSUBSCRIBE, client → server (TOPICS §2.1).
    pub const UNSUBSCRIBE: ServiceId = ServiceId(4);
    /// NOTIFY_UNSUBSCRIPTION, server → client, one-way (TOPICS §2.3).
    pub const NOTIFY_UNSUBSCRIPTION: ServiceId = ServiceId(42);
    /// TOPIC_REMOVAL, client → server (TOPICS §5.5).
    pub const TOPIC_REMOVAL: ServiceId = ServiceId(83);
    /// MESSAGING_SEND: a request to a path (client → server), or one delivered to a
    /// session's request stream (server → client) (TOPICS §7.1, §7.4).
    pub const MESSAGING_SEND: ServiceId = ServiceId(85);
    /// MESSAGING_RECEIVER_SERVER: a request to one session, client → server (TOPICS §7.4).
    pub const MESSAGING_RECEIVER_SERVER: ServiceId = ServiceId(86);
    /// MESSAGING_RECEIVER_CLIENT: a request forwarded to a registered handler, server →
    /// client (TOPICS §7.3).
    pub const MESSAGING_RECEIVER_CLIENT: ServiceId = ServiceId(88);
    /// MESSAGING_RECEIVER_CONTROL_REGISTRATION: register a request handler (TOPICS §7.2).
    pub const MESSAGING_RECEIVER_CONTROL_REGISTRATION: ServiceId = ServiceId(97);
    /// MESSAGING_RECEIVER_CONTROL_DEREGISTRATION: remove a request handler (TOPICS §7.2).
    pub const MESSAGING_RECEIVER_CONTROL_DEREGISTRATION: ServiceId = ServiceId(98);
    /// TOPIC_ADD, client → server (TOPICS §5.1).
    pub const TOPIC_ADD: ServiceId = ServiceId(112);
    /// FETCH_QUERY, client → server (TOPICS §6).
    pub const FETCH_QUERY: ServiceId = ServiceId(117);
    /// SET_TOPIC, client → server (TOPICS §5.2).
    pub const SET_TOPIC: ServiceId = ServiceId(118);
    /// ADD_AND_SET_TOPIC, client → server (TOPICS §5.3).
    pub const ADD_AND_SET_TOPIC: ServiceId = ServiceId(122);

    /// The name both official clients use for this id, when it is one we speak.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            3 => "SUBSCRIBE",
            4 => "UNSUBSCRIBE",
            5 => "CHANGE_PRINCIPAL",
            42 => "NOTIFY_UNSUBSCRIPTION",
            55 => "SYSTEM_PING",
            56 => "USER_PING",
            83 => "TOPIC_REMOVAL",
            85 => "MESSAGING_SEND",
            86 => "MESSAGING_RECEIVER_SERVER",
            87 => "NOTIFY_SUBSCRIPTION",
            88 => "MESSAGING_RECEIVER_CLIENT",
            97 => "MESSAGING_RECEIVER_CONTROL_REGISTRATION",
            98 => "MESSAGING_RECEIVER_CONTROL_DEREGISTRATION",
            112 => "TOPIC_ADD",
            117 => "FETCH_QUERY",
            118 => "SET_TOPIC",
            122 => "ADD_AND_SET_TOPIC",
            202 => "GET_OWN_SESSION_PROPERTIES",
            203 => "RE_AUTHENTICATE",
            _ => return None,
        })
    }
}

impl std::fmt::Display for ServiceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} ({})", self.0),
            None => write!(f, "service {}", self.0),
        }
    }
}

/// The reason code carried by a SERVICE_ERROR (SPEC §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct ErrorReason(pub i32);

impl ErrorReason {
    /// Communication with the peer failed; also the answer to an unknown service.
    pub const COMMUNICATION_FAILURE: ErrorReason = ErrorReason(100);
    /// The session is already closed.
    pub const SESSION_CLOSED: ErrorReason = ErrorReason(101);
    /// The request timed out.
    pub const REQUEST_TIME_OUT: ErrorReason = ErrorReason(102);
    /// Insufficient permissions.
    pub const ACCESS_DENIED: ErrorReason = ErrorReason(103);
    /// The service is not supported for this caller.
    pub const UNSUPPORTED: ErrorReason = ErrorReason(104);
    /// An application handler failed.
    pub const CALLBACK_EXCEPTION: ErrorReason = ErrorReason(105);
    /// Malformed data was received.
    pub const INVALID_DATA: ErrorReason = ErrorReason(106);
    /// The session was not found.
    pub const NO_SUCH_SESSION: ErrorReason = ErrorReason(107);
    /// A data type mismatch.
    pub const INCOMPATIBLE_DATATYPE: ErrorReason = ErrorReason(108);
    /// The message was not handled: no request handler or request stream for it.
    pub const UNHANDLED_MESSAGE: ErrorReason = ErrorReason(109);
    /// The cluster is repartitioning; retrying may succeed.
    pub const CLUSTER_REPARTITION: ErrorReason = ErrorReason(110);
    /// The operation is not possible in the current state.
    pub const INCOMPATIBLE_STATE: ErrorReason = ErrorReason(111);
    /// Another session already registered a handler for the path (TOPICS §7.2).
    pub const HANDLER_CONFLICT: ErrorReason = ErrorReason(201);
    /// A topic update does not suit the topic: wrong type (TOPICS §5.2).
    pub const INCOMPATIBLE_UPDATE: ErrorReason = ErrorReason(500);
    /// A topic update failed.
    pub const UPDATE_FAILED: ErrorReason = ErrorReason(501);
    /// The topic to update does not exist (TOPICS §5.2).
    pub const MISSING_TOPIC: ErrorReason = ErrorReason(503);
    /// A request handler rejected the request (TOPICS §7.3).
    pub const REJECTED_REQUEST: ErrorReason = ErrorReason(9003);
    /// A topic exists with different details (the legacy form of 9010).
    pub const TOPIC_EXISTS_MISMATCH: ErrorReason = ErrorReason(9004);
    /// The topic path is invalid (TOPICS §5.1).
    pub const TOPIC_PATH_INVALID: ErrorReason = ErrorReason(9005);
    /// The topic specification is invalid.
    pub const TOPIC_SPECIFICATION_INVALID: ErrorReason = ErrorReason(9006);
    /// Adding the topic would exceed the licence limit.
    pub const TOPIC_LICENSE_LIMIT: ErrorReason = ErrorReason(9007);
    /// A topic with another specification exists at the path (TOPICS §5.1).
    pub const INCOMPATIBLE_TOPIC_EXISTS: ErrorReason = ErrorReason(9010);
    /// Adding the topic failed unexpectedly.
    pub const UNEXPECTED_TOPIC_ADD_FAILURE: ErrorReason = ErrorReason(9011);
    /// The update constraint was not satisfied (TOPICS §5.4).
    pub const UNSATISFIED_CONSTRAINT: ErrorReason = ErrorReason(9012);

    /// The name both official clients give this code, if it is one they know.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            100 => "COMMUNICATION_FAILURE",
            101 => "SESSION_CLOSED",
            102 => "REQUEST_TIME_OUT",
            103 => "ACCESS_DENIED",
            104 => "UNSUPPORTED",
            105 => "CALLBACK_EXCEPTION",
            106 => "INVALID_DATA",
            107 => "NO_SUCH_SESSION",
            108 => "INCOMPATIBLE_DATATYPE",
            109 => "UNHANDLED_MESSAGE",
            110 => "CLUSTER_REPARTITION",
            111 => "INCOMPATIBLE_STATE",
            112 => "CLUSTER_ROUTING",
            200 => "TOPIC_TREE_REGISTRATION_CONFLICT",
            201 => "HANDLER_CONFLICT",
            202 => "INVALID_PATH",
            500 => "INCOMPATIBLE_UPDATE",
            501 => "UPDATE_FAILED",
            503 => "MISSING_TOPIC",
            505 => "DELTA_WITHOUT_VALUE",
            9000 => "NO_SUCH_TOPIC",
            9001 => "NOT_A_TIMESERIES_TOPIC",
            9002 => "NO_SUCH_EVENT",
            9003 => "REJECTED_REQUEST",
            9004 => "TOPIC_EXISTS_MISMATCH",
            9005 => "TOPIC_PATH_INVALID",
            9006 => "TOPIC_SPECIFICATION_INVALID",
            9007 => "TOPIC_LICENSE_LIMIT",
            9010 => "INCOMPATIBLE_TOPIC_EXISTS",
            9011 => "UNEXPECTED_TOPIC_ADD_FAILURE",
            9012 => "UNSATISFIED_CONSTRAINT",
            9013 => "INVALID_UPDATE_STREAM",
            9014 => "INVALID_JSON_PATCH",
            9015 => "APPLY_PATCH_FAIL",
            9016 => "REMOTE_SERVER_EXISTS",
            9017 => "INVALID_BRANCH_MAPPING",
            _ => return None,
        })
    }
}

impl std::fmt::Display for ErrorReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} ({})", self.0),
            None => write!(f, "reason {}", self.0),
        }
    }
}

/// Type codes of the message type byte (its low 6 bits).
pub mod type_code {
    /// The SPEC §4.2 name of a type code, e.g. `SERVICE_REQUEST`.
    pub fn name(code: u8) -> Option<&'static str> {
        Some(match code {
            SERVICE_REQUEST => "SERVICE_REQUEST",
            TOPIC_VALUE => "TOPIC_VALUE",
            TOPIC_DELTA => "TOPIC_DELTA",
            SERVICE_RESPONSE => "SERVICE_RESPONSE",
            SERVICE_ERROR => "SERVICE_ERROR",
            ABORT => "ABORT",
            CLOSE_REQUEST => "CLOSE_REQUEST",
            _ => return None,
        })
    }

    /// SERVICE_REQUEST.
    pub const SERVICE_REQUEST: u8 = 0;
    /// TOPIC_VALUE.
    pub const TOPIC_VALUE: u8 = 4;
    /// TOPIC_DELTA.
    pub const TOPIC_DELTA: u8 = 5;
    /// SERVICE_RESPONSE.
    pub const SERVICE_RESPONSE: u8 = 6;
    /// SERVICE_ERROR.
    pub const SERVICE_ERROR: u8 = 7;
    /// ABORT.
    pub const ABORT: u8 = 28;
    /// CLOSE_REQUEST.
    pub const CLOSE_REQUEST: u8 = 29;
}

/// Top bits of the type byte that mark a zlib-compressed topic message body.
const ZLIB_BITS: u8 = 0x80;

/// One Diffusion message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Message {
    /// A request to the peer's service `service`, answered under `cid`.
    ServiceRequest {
        /// Which service.
        service: ServiceId,
        /// Conversation id chosen by the requester (0 means one-way).
        cid: i64,
        /// The service's request payload.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = arbitrary_bytes))]
        payload: Bytes,
    },
    /// The answer to the peer's request `cid`.
    ServiceResponse {
        /// The conversation id of the request.
        cid: i64,
        /// The service's response payload.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = arbitrary_bytes))]
        payload: Bytes,
    },
    /// The failure of the peer's request `cid`.
    ServiceError {
        /// The conversation id of the request.
        cid: i64,
        /// A human-readable description.
        description: String,
        /// Why it failed.
        reason: ErrorReason,
    },
    /// A topic value, kept opaque.
    TopicValue {
        /// The topic id (fixed-width big-endian int32 on the wire).
        topic_id: i32,
        /// True when the body is zlib-compressed (type byte 0x80).
        compressed: bool,
        /// The value bytes, as received.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = arbitrary_bytes))]
        payload: Bytes,
    },
    /// A topic delta, kept opaque.
    TopicDelta {
        /// The topic id.
        topic_id: i32,
        /// True when the body is zlib-compressed.
        compressed: bool,
        /// The delta bytes, as received.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = arbitrary_bytes))]
        payload: Bytes,
    },
    /// The server ends the session.
    Abort,
    /// The client asks the server to end the session.
    CloseRequest,
}

/// A payload as `arbitrary` makes a `Vec<u8>`.
#[cfg(feature = "arbitrary")]
fn arbitrary_bytes(u: &mut arbitrary::Unstructured<'_>) -> arbitrary::Result<Bytes> {
    Ok(Bytes::from(<Vec<u8> as arbitrary::Arbitrary>::arbitrary(u)?))
}

/// Why a frame is not a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// The frame was empty.
    #[error("empty frame: a message has at least its type byte")]
    Empty,
    /// The type byte names no message type of protocol 25/29.
    #[error("unknown message type {type_code} (type byte {byte:#04x})")]
    UnknownType {
        /// The low 6 bits.
        type_code: u8,
        /// The whole type byte.
        byte: u8,
    },
    /// A message without a body (ABORT, CLOSE_REQUEST) had one.
    #[error("message type {type_code} has no body but {len} byte(s) followed")]
    UnexpectedBody {
        /// The type code.
        type_code: u8,
        /// The surplus bytes.
        len: usize,
    },
    /// A body field could not be read.
    #[error("malformed message body (type {type_code}): {source}")]
    Body {
        /// The type code.
        type_code: u8,
        /// The primitive that failed.
        #[source]
        source: WireError,
    },
}

impl Message {
    /// The type code of this message (without encoding bits).
    pub fn type_code(&self) -> u8 {
        match self {
            Message::ServiceRequest { .. } => type_code::SERVICE_REQUEST,
            Message::ServiceResponse { .. } => type_code::SERVICE_RESPONSE,
            Message::ServiceError { .. } => type_code::SERVICE_ERROR,
            Message::TopicValue { .. } => type_code::TOPIC_VALUE,
            Message::TopicDelta { .. } => type_code::TOPIC_DELTA,
            Message::Abort => type_code::ABORT,
            Message::CloseRequest => type_code::CLOSE_REQUEST,
        }
    }

    /// The exact number of bytes [`Message::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        1 + match self {
            Message::ServiceRequest {
                service,
                cid,
                payload,
            } => wire::varint_i32_len(service.0) + wire::varint_i64_len(*cid) + payload.len(),
            Message::ServiceResponse { cid, payload } => wire::varint_i64_len(*cid) + payload.len(),
            Message::ServiceError {
                cid,
                description,
                reason,
            } => {
                wire::varint_i64_len(*cid)
                    + wire::varint_i32_len(description.len() as i32)
                    + description.len()
                    + wire::varint_i32_len(reason.0)
            }
            Message::TopicValue { payload, .. } | Message::TopicDelta { payload, .. } => 4 + payload.len(),
            Message::Abort | Message::CloseRequest => 0,
        }
    }

    /// Appends the wire form of this message.
    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(self.encoded_len());
        match self {
            Message::ServiceRequest {
                service,
                cid,
                payload,
            } => {
                out.put_u8(type_code::SERVICE_REQUEST);
                wire::put_varint_i32(out, service.0);
                wire::put_varint_i64(out, *cid);
                out.put_slice(payload);
            }
            Message::ServiceResponse { cid, payload } => {
                out.put_u8(type_code::SERVICE_RESPONSE);
                wire::put_varint_i64(out, *cid);
                out.put_slice(payload);
            }
            Message::ServiceError {
                cid,
                description,
                reason,
            } => {
                out.put_u8(type_code::SERVICE_ERROR);
                wire::put_varint_i64(out, *cid);
                wire::put_string(out, description);
                wire::put_varint_i32(out, reason.0);
            }
            Message::TopicValue {
                topic_id,
                compressed,
                payload,
            }
            | Message::TopicDelta {
                topic_id,
                compressed,
                payload,
            } => {
                let flag = if *compressed { ZLIB_BITS } else { 0 };
                out.put_u8(self.type_code() | flag);
                out.put_i32(*topic_id);
                out.put_slice(payload);
            }
            Message::Abort | Message::CloseRequest => out.put_u8(self.type_code()),
        }
    }

    /// The wire form of this message as one frame.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.encoded_len());
        self.encode(&mut out);
        out.freeze()
    }

    /// Decodes one frame. Payloads are slices of `frame`, not copies.
    ///
    /// Like the JavaScript client, the type is the low 6 bits and only top bits `10`
    /// mean zlib; trailing bytes after a SERVICE_ERROR's reason are ignored, as both
    /// official clients do.
    pub fn decode(frame: &Bytes) -> Result<Message, MessageError> {
        let (&byte, body) = frame.split_first().ok_or(MessageError::Empty)?;
        let code = byte & 0x3f;
        let compressed = byte & 0xc0 == ZLIB_BITS;
        let body_err = |source| MessageError::Body {
            type_code: code,
            source,
        };
        let mut r = Reader::new(body);
        // Offset of what the reader has not consumed, for zero-copy slicing of `frame`.
        let tail = |r: &Reader<'_>| frame.slice(frame.len() - r.remaining()..);
        match code {
            type_code::SERVICE_REQUEST => {
                let service = ServiceId(r.varint_i32().map_err(body_err)?);
                let cid = r.varint_i64().map_err(body_err)?;
                Ok(Message::ServiceRequest {
                    service,
                    cid,
                    payload: tail(&r),
                })
            }
            type_code::SERVICE_RESPONSE => {
                let cid = r.varint_i64().map_err(body_err)?;
                Ok(Message::ServiceResponse {
                    cid,
                    payload: tail(&r),
                })
            }
            type_code::SERVICE_ERROR => {
                let cid = r.varint_i64().map_err(body_err)?;
                let description = r.string().map_err(body_err)?.to_owned();
                let reason = ErrorReason(r.varint_i32().map_err(body_err)?);
                Ok(Message::ServiceError {
                    cid,
                    description,
                    reason,
                })
            }
            type_code::TOPIC_VALUE | type_code::TOPIC_DELTA => {
                let topic_id = r.i32_be().map_err(body_err)?;
                let payload = tail(&r);
                Ok(if code == type_code::TOPIC_VALUE {
                    Message::TopicValue {
                        topic_id,
                        compressed,
                        payload,
                    }
                } else {
                    Message::TopicDelta {
                        topic_id,
                        compressed,
                        payload,
                    }
                })
            }
            type_code::ABORT | type_code::CLOSE_REQUEST => {
                if !body.is_empty() {
                    return Err(MessageError::UnexpectedBody {
                        type_code: code,
                        len: body.len(),
                    });
                }
                Ok(if code == type_code::ABORT {
                    Message::Abort
                } else {
                    Message::CloseRequest
                })
            }
            _ => Err(MessageError::UnknownType {
                type_code: code,
                byte,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Any message, for round-trip properties here and in the session tests.
    fn any_message() -> impl Strategy<Value = Message> {
        let payload = || proptest::collection::vec(any::<u8>(), 0..48).prop_map(Bytes::from);
        prop_oneof![
            (any::<i32>(), any::<i64>(), payload()).prop_map(|(s, cid, payload)| {
                Message::ServiceRequest {
                    service: ServiceId(s),
                    cid,
                    payload,
                }
            }),
            (any::<i64>(), payload()).prop_map(|(cid, payload)| Message::ServiceResponse { cid, payload }),
            (any::<i64>(), ".{0,20}", any::<i32>()).prop_map(|(cid, description, r)| {
                Message::ServiceError {
                    cid,
                    description,
                    reason: ErrorReason(r),
                }
            }),
            (any::<i32>(), any::<bool>(), payload()).prop_map(|(topic_id, compressed, payload)| {
                Message::TopicValue {
                    topic_id,
                    compressed,
                    payload,
                }
            }),
            (any::<i32>(), any::<bool>(), payload()).prop_map(|(topic_id, compressed, payload)| {
                Message::TopicDelta {
                    topic_id,
                    compressed,
                    payload,
                }
            }),
            Just(Message::Abort),
            Just(Message::CloseRequest),
        ]
    }

    proptest! {
        #[test]
        fn every_message_round_trips(m in any_message()) {
            let bytes = m.to_bytes();
            prop_assert_eq!(bytes.len(), m.encoded_len());
            prop_assert_eq!(Message::decode(&bytes), Ok(m));
        }

        #[test]
        fn any_frame_decodes_or_errs(frame in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(m) = Message::decode(&Bytes::from(frame)) {
                // Whatever decodes re-encodes and decodes to the same value.
                prop_assert_eq!(Message::decode(&m.to_bytes()), Ok(m));
            }
        }
    }

    #[test]
    fn abort_with_a_body_is_an_error() {
        assert_eq!(
            Message::decode(&Bytes::from_static(&[0x1c, 0])),
            Err(MessageError::UnexpectedBody {
                type_code: 28,
                len: 1
            })
        );
        assert_eq!(Message::decode(&Bytes::new()), Err(MessageError::Empty));
    }
}
