//! FETCH_QUERY (117, TOPICS.md §6): the request in protocol 25's and 29's forms, and the
//! response, whose property maps are shared by index on the wire.
//!
//! Only the selector, the types, values, properties and "no limit" were exercised by the
//! official clients (Q6); what the depth and limit fields mean is inferred from their names.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use super::codec::{
    decode_all, put_properties, read_bytes, read_list, read_string, Field, PayloadError, ServiceCall,
    ServicePayload,
};
use super::datatype::TopicType;
use crate::handshake::ProtocolVersion;
use crate::message::ServiceId;
use crate::wire::{self, Reader};

/// "No limit" for the limits of a fetch: the largest int32.
pub const FETCH_NO_LIMIT: i32 = i32::MAX;

/// A set of topic types: bit *n* stands for type code *n* (a varint int64 on the wire).
///
/// ```
/// use diffusion_proto::{TopicType, TopicTypeSet};
/// // What the JavaScript client sends to fetch "everything readable as JSON".
/// let json = TopicTypeSet::of(&[TopicType::Json, TopicType::String, TopicType::Int64, TopicType::Double]);
/// assert_eq!(json.bits(), 0xE8000);
/// assert!(json.contains(TopicType::Int64) && !json.contains(TopicType::Binary));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TopicTypeSet(u64);

impl TopicTypeSet {
    /// Every topic type.
    pub const ALL: TopicTypeSet = TopicTypeSet(0x3f_c000);

    /// The set of `types`.
    pub fn of(types: &[TopicType]) -> Self {
        TopicTypeSet(types.iter().fold(0, |bits, t| bits | 1 << t.code()))
    }

    /// The set with these bits, as received.
    pub fn from_bits(bits: u64) -> Self {
        TopicTypeSet(bits)
    }

    /// The bits.
    pub fn bits(self) -> u64 {
        self.0
    }

    /// Whether `topic_type` is in the set.
    pub fn contains(self, topic_type: TopicType) -> bool {
        self.0 & 1 << topic_type.code() != 0
    }
}

/// One end of a fetch's path range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchRange {
    /// The path.
    pub path: String,
    /// Whether the path itself is in the range.
    pub inclusive: bool,
}

/// FETCH_QUERY (117): the current state of the topics a selector matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchRequest {
    /// The selector string (§8).
    pub selector: String,
    /// Only paths after this one.
    pub from: Option<FetchRange>,
    /// Only paths before this one.
    pub to: Option<FetchRange>,
    /// The topic types to include.
    pub topic_types: TopicTypeSet,
    /// Include values.
    pub with_values: bool,
    /// Include properties.
    pub with_properties: bool,
    /// At most this many results (first *n*; [`FETCH_NO_LIMIT`] for all).
    pub limit: i32,
    /// At most this many bytes of results.
    pub maximum_result_size: i32,
    /// The deep-branch depth.
    pub deep_branch_depth: i32,
    /// The deep-branch limit.
    pub deep_branch_limit: i32,
    /// Include topics whose publication is delayed.
    pub with_unpublished_delayed_topics: bool,
    /// Include each topic's size (protocol 28 and later).
    pub with_sizes: bool,
}

impl FetchRequest {
    /// A fetch of every topic type the selector matches, without values or properties and
    /// without limits.
    pub fn new(selector: impl Into<String>) -> Self {
        FetchRequest {
            selector: selector.into(),
            from: None,
            to: None,
            topic_types: TopicTypeSet::ALL,
            with_values: false,
            with_properties: false,
            limit: FETCH_NO_LIMIT,
            maximum_result_size: FETCH_NO_LIMIT,
            deep_branch_depth: FETCH_NO_LIMIT,
            deep_branch_limit: FETCH_NO_LIMIT,
            with_unpublished_delayed_topics: false,
            with_sizes: false,
        }
    }
}

fn has_sizes(version: ProtocolVersion) -> bool {
    version.number() >= 28
}

fn put_range(out: &mut BytesMut, range: &Option<FetchRange>) {
    match range {
        None => out.put_u8(0),
        Some(range) => {
            out.put_u8(1);
            wire::put_string(out, &range.path);
            wire::put_bool(out, range.inclusive);
        }
    }
}

fn read_range(r: &mut Reader<'_>, field: &'static str) -> Result<Option<FetchRange>, PayloadError> {
    if !r.boolean().field(field)? {
        return Ok(None);
    }
    Ok(Some(FetchRange {
        path: read_string(r, field)?,
        inclusive: r.boolean().field(field)?,
    }))
}

impl ServicePayload for FetchRequest {
    fn encode(&self, out: &mut BytesMut, version: ProtocolVersion) -> Result<(), PayloadError> {
        if self.with_sizes && !has_sizes(version) {
            return Err(PayloadError::NotInVersion {
                what: "a fetch with sizes",
                version,
            });
        }
        wire::put_string(out, &self.selector);
        put_range(out, &self.from);
        put_range(out, &self.to);
        wire::put_varint_i64(out, self.topic_types.0 as i64);
        wire::put_bool(out, self.with_values);
        wire::put_bool(out, self.with_properties);
        for n in [
            self.limit,
            self.maximum_result_size,
            self.deep_branch_depth,
            self.deep_branch_limit,
        ] {
            wire::put_varint_i32(out, n);
        }
        wire::put_bool(out, self.with_unpublished_delayed_topics);
        if has_sizes(version) {
            wire::put_bool(out, self.with_sizes);
        }
        Ok(())
    }

    fn decode(payload: &[u8], version: ProtocolVersion) -> Result<Self, PayloadError> {
        decode_all(payload, |r| {
            Ok(FetchRequest {
                selector: read_string(r, "selector")?,
                from: read_range(r, "range from")?,
                to: read_range(r, "range to")?,
                topic_types: TopicTypeSet(r.varint_i64().field("topic types")? as u64),
                with_values: r.boolean().field("with values")?,
                with_properties: r.boolean().field("with properties")?,
                limit: r.varint_i32().field("limit")?,
                maximum_result_size: r.varint_i32().field("maximum result size")?,
                deep_branch_depth: r.varint_i32().field("deep branch depth")?,
                deep_branch_limit: r.varint_i32().field("deep branch limit")?,
                with_unpublished_delayed_topics: r.boolean().field("with unpublished delayed topics")?,
                with_sizes: has_sizes(version) && r.boolean().field("with sizes")?,
            })
        })
    }
}

impl ServiceCall for FetchRequest {
    const SERVICE: ServiceId = ServiceId::FETCH_QUERY;
    type Response = FetchResponse;
}

/// The response of FETCH_QUERY.
///
/// On the wire, results name their properties by an index into a list of maps; here each
/// result holds a shared reference to its map (so a response cannot make its decoder copy
/// one map per result), and encoding shares equal maps again in order of first use.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FetchResponse {
    /// The topics, in path order (inferred).
    pub results: Vec<FetchResult>,
    /// Whether more topics matched than were returned.
    pub has_more: bool,
}

/// One fetched topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchResult {
    /// The topic path.
    pub path: String,
    /// The topic type.
    pub topic_type: TopicType,
    /// The encoded value, when values were requested and the topic has one.
    pub value: Option<Bytes>,
    /// The properties, in wire order, when they were requested.
    pub properties: Option<Arc<[(String, String)]>>,
    /// The size information (protocol 28 and later), when sizes were requested.
    pub size: Option<TopicSize>,
}

/// The size information of a fetched topic (protocol 28 and later) (inferred meanings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicSize {
    /// 1: the value's size in bytes.
    Value {
        /// Bytes.
        size: i32,
    },
    /// 2: a time series' last value size, event count and total size.
    Series {
        /// Bytes of the last value.
        size: i32,
        /// Events.
        count: i32,
        /// Bytes of all events.
        total: i64,
    },
}

impl ServicePayload for FetchResponse {
    fn encode(&self, out: &mut BytesMut, version: ProtocolVersion) -> Result<(), PayloadError> {
        let mut sets: Vec<&[(String, String)]> = Vec::new();
        let indexes: Vec<i32> = self
            .results
            .iter()
            .map(|result| match &result.properties {
                None => -1,
                Some(properties) => {
                    let index = sets
                        .iter()
                        .position(|s| *s == &properties[..])
                        .unwrap_or_else(|| {
                            sets.push(properties);
                            sets.len() - 1
                        });
                    i32::try_from(index).unwrap_or(i32::MAX)
                }
            })
            .collect();
        wire::put_length(out, sets.len());
        for set in sets {
            put_properties(out, set);
        }
        wire::put_length(out, self.results.len());
        for (result, index) in self.results.iter().zip(indexes) {
            wire::put_string(out, &result.path);
            out.put_u8(result.topic_type.code());
            match &result.value {
                None => out.put_u8(0),
                Some(value) => {
                    out.put_u8(1);
                    wire::put_bytes(out, value);
                }
            }
            wire::put_varint_i32(out, index);
            if has_sizes(version) {
                put_size(out, result.size);
            } else if result.size.is_some() {
                return Err(PayloadError::NotInVersion {
                    what: "a fetch result size",
                    version,
                });
            }
        }
        wire::put_bool(out, self.has_more);
        Ok(())
    }

    fn decode(payload: &[u8], version: ProtocolVersion) -> Result<Self, PayloadError> {
        decode_all(payload, |r| {
            let sets: Vec<Arc<[(String, String)]>> = read_list(r, "property sets", |r| {
                r.string_map().map(Arc::from).field("property set")
            })?;
            let results = read_list(r, "fetch results", |r| {
                let path = read_string(r, "topic path")?;
                let code = r.u8().field("topic type")?;
                let topic_type = TopicType::from_code(code).ok_or(PayloadError::UnknownTopicType(code))?;
                let value = match r.boolean().field("value present")? {
                    true => Some(read_bytes(r, "topic value")?),
                    false => None,
                };
                let index = r.varint_i32().field("properties index")?;
                let properties = match index {
                    -1 => None,
                    _ => Some(
                        usize::try_from(index)
                            .ok()
                            .and_then(|i| sets.get(i))
                            .ok_or(PayloadError::PropertiesIndex {
                                index,
                                sets: sets.len(),
                            })?
                            .clone(),
                    ),
                };
                let size = if has_sizes(version) { read_size(r)? } else { None };
                Ok(FetchResult {
                    path,
                    topic_type,
                    value,
                    properties,
                    size,
                })
            })?;
            Ok(FetchResponse {
                results,
                has_more: r.boolean().field("has more")?,
            })
        })
    }
}

fn put_size(out: &mut BytesMut, size: Option<TopicSize>) {
    match size {
        None => out.put_u8(0),
        Some(TopicSize::Value { size }) => {
            out.put_u8(1);
            wire::put_varint_i32(out, size);
        }
        Some(TopicSize::Series { size, count, total }) => {
            out.put_u8(2);
            wire::put_varint_i32(out, size);
            wire::put_varint_i32(out, count);
            wire::put_varint_i64(out, total);
        }
    }
}

fn read_size(r: &mut Reader<'_>) -> Result<Option<TopicSize>, PayloadError> {
    Ok(match r.u8().field("size information")? {
        0 => None,
        1 => Some(TopicSize::Value {
            size: r.varint_i32().field("topic size")?,
        }),
        2 => Some(TopicSize::Series {
            size: r.varint_i32().field("topic size")?,
            count: r.varint_i32().field("event count")?,
            total: r.varint_i64().field("total size")?,
        }),
        other => {
            return Err(PayloadError::UnknownCode {
                field: "size information",
                value: other.into(),
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const V25: ProtocolVersion = ProtocolVersion::V25;
    const V29: ProtocolVersion = ProtocolVersion::V29;

    #[test]
    fn sizes_exist_from_protocol_28() {
        let request = FetchRequest {
            with_sizes: true,
            ..FetchRequest::new("?t//")
        };
        assert!(matches!(
            request.to_bytes(V25),
            Err(PayloadError::NotInVersion { .. })
        ));
        let bytes = request.to_bytes(V29);
        assert_eq!(
            bytes.clone().and_then(|b| FetchRequest::decode(&b, V29)),
            Ok(request)
        );
        assert!(matches!(
            bytes.and_then(|b| FetchRequest::decode(&b, V25)),
            Err(PayloadError::TrailingBytes { len: 1 })
        ));
    }

    #[test]
    fn property_indexes_are_checked() {
        // No property sets, one result naming set 0.
        let payload = [0x00, 0x01, 0x01, b'a', 0x11, 0x00, 0x00, 0x00];
        assert_eq!(
            FetchResponse::decode(&payload, V25),
            Err(PayloadError::PropertiesIndex { index: 0, sets: 0 })
        );
    }

    fn any_result(sizes: bool) -> impl Strategy<Value = FetchResult> {
        let size = prop_oneof![
            Just(None),
            any::<i32>().prop_map(|size| Some(TopicSize::Value { size })),
            (any::<i32>(), any::<i32>(), any::<i64>())
                .prop_map(|(size, count, total)| Some(TopicSize::Series { size, count, total })),
        ];
        (
            "[a-z/]{1,8}",
            14u8..=21,
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..6)),
            proptest::option::of(proptest::collection::vec(("[A-C]", "[xy]"), 0..2)),
            size,
        )
            .prop_map(move |(path, code, value, properties, size)| FetchResult {
                path,
                topic_type: TopicType::from_code(code).unwrap_or(TopicType::Json),
                value: value.map(Bytes::from),
                properties: properties.map(Arc::from),
                size: if sizes { size } else { None },
            })
    }

    proptest! {
        #[test]
        fn responses_round_trip(v25 in proptest::collection::vec(any_result(false), 0..5),
                                v29 in proptest::collection::vec(any_result(true), 0..5), has_more: bool) {
            for (version, results) in [(V25, v25), (V29, v29)] {
                let response = FetchResponse { results, has_more };
                let bytes = response.to_bytes(version);
                prop_assert_eq!(bytes.and_then(|b| FetchResponse::decode(&b, version)), Ok(response));
            }
        }

        #[test]
        fn requests_round_trip(selector in ".{0,8}", from in proptest::option::of(("[a-z]{0,4}", any::<bool>())),
                               bits: u64, flags: [bool; 4], limits: [i32; 4]) {
            let request = FetchRequest {
                selector,
                from: from.map(|(path, inclusive)| FetchRange { path, inclusive }),
                to: None,
                topic_types: TopicTypeSet::from_bits(bits),
                with_values: flags[0],
                with_properties: flags[1],
                limit: limits[0],
                maximum_result_size: limits[1],
                deep_branch_depth: limits[2],
                deep_branch_limit: limits[3],
                with_unpublished_delayed_topics: flags[2],
                with_sizes: false,
            };
            for version in [V25, V29] {
                prop_assert_eq!(request.to_bytes(version).and_then(|b| FetchRequest::decode(&b, version)), Ok(request.clone()));
            }
            let sized = FetchRequest { with_sizes: flags[3], ..request };
            prop_assert_eq!(sized.to_bytes(V29).and_then(|b| FetchRequest::decode(&b, V29)), Ok(sized));
        }

        #[test]
        fn any_payload_decodes_or_fails(payload in proptest::collection::vec(any::<u8>(), 0..60)) {
            for version in [V25, V29] {
                let _ = FetchRequest::decode(&payload, version);
                let _ = FetchResponse::decode(&payload, version);
            }
        }
    }
}
