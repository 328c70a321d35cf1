//! Update constraints (TOPICS.md §5.4): the condition a SET_TOPIC or ADD_AND_SET_TOPIC
//! requires of the topic, in protocol 25's and protocol 27+'s encodings, a small builder,
//! and the server's evaluation against a topic's state.

use std::cmp::Ordering;

use bytes::{BufMut, Bytes, BytesMut};

use super::codec::{
    decode_all, has_v27_forms, put_string_list, read_bytes, read_list, read_string, read_string_list, Field,
    PayloadError,
};
use super::datatype::{DataType, TopicType};
use super::value::TopicValue;
use crate::handshake::ProtocolVersion;
use crate::wire::{self, Reader};

/// How deep AND and OR may nest; deeper is refused before it can exhaust the stack.
const MAX_DEPTH: usize = 32;

/// A condition on the topic that an update requires.
///
/// ```
/// use diffusion_proto::{ProtocolVersion, TopicState, TopicType, UpdateConstraint};
///
/// // "the value is "fresh", or there is no value" — as the JavaScript client encodes it.
/// let fresh = b"\x66fresh".to_vec();
/// let c = UpdateConstraint::value_is(fresh.clone()).or(UpdateConstraint::no_value());
/// assert_eq!(&c.to_bytes(ProtocolVersion::V29)?[..], b"\x07\x02\x01\x04\x06\x66fresh\x03");
///
/// let topic = |value: Option<&'static [u8]>| TopicState::Present { topic_type: TopicType::String, value };
/// assert_eq!(c.evaluate(topic(Some(b"\x66fresh"))), Ok(true));
/// assert_eq!(c.evaluate(topic(Some(b"\x65stale"))), Ok(false));
/// assert_eq!(c.evaluate(topic(None)), Ok(true));
/// # Ok::<(), diffusion_proto::PayloadError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum UpdateConstraint {
    /// 0: no condition.
    #[default]
    Unconstrained,
    /// 1: both conditions.
    And(Box<UpdateConstraint>, Box<UpdateConstraint>),
    /// 2: a condition on the current value.
    Value(ValueCondition),
    /// 3: the topic has no value.
    NoValue,
    /// 4: the session holds a lock.
    Locked {
        /// The lock's name.
        lock_name: String,
        /// The lock's sequence number.
        sequence: i64,
    },
    /// 5: the topic does not exist.
    NoTopic,
    /// 6: conditions on parts of a JSON value.
    PartialJson(PartialJsonCondition),
    /// 7: either condition (protocol 27 and later).
    Or(Box<UpdateConstraint>, Box<UpdateConstraint>),
}

/// A condition on the current value: `current OPERATOR value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueCondition {
    /// The comparison.
    pub operator: ConstraintOperator,
    /// The datatype `value` is encoded in.
    pub value_type: ConstraintValueType,
    /// The encoded value to compare with.
    pub value: Bytes,
}

/// Conditions on parts of a JSON value, by JSON pointer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PartialJsonCondition {
    /// Pointers that must exist, each with a condition on its value.
    pub with: Vec<(String, ValueCondition)>,
    /// Pointers that must not exist.
    pub without: Vec<String>,
}

macro_rules! byte_codes {
    ($(#[$doc:meta])* $name:ident, $field:literal { $($(#[$vdoc:meta])* $variant:ident = $code:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)*
        }

        impl $name {
            /// The byte on the wire.
            pub fn code(self) -> u8 {
                match self {
                    $($name::$variant => $code,)*
                }
            }

            fn read(r: &mut Reader<'_>) -> Result<Self, PayloadError> {
                match r.u8().field($field)? {
                    $($code => Ok($name::$variant),)*
                    other => Err(PayloadError::UnknownCode { field: $field, value: other.into() }),
                }
            }
        }
    };
}

byte_codes!(
    /// The comparison of a value condition.
    ConstraintOperator, "constraint operator" {
        /// 1: the encoded bytes are identical.
        Is = 1,
        /// 2: equal values.
        Eq = 2,
        /// 3: different values.
        Ne = 3,
        /// 4: the current value is greater.
        Gt = 4,
        /// 5: greater or equal.
        Ge = 5,
        /// 6: less.
        Lt = 6,
        /// 7: less or equal.
        Le = 7,
    }
);

byte_codes!(
    /// The datatype a condition's value is encoded in.
    ConstraintValueType, "constraint value type" {
        /// 0: null.
        Null = 0,
        /// 1: STRING.
        String = 1,
        /// 2: INT64.
        Int64 = 2,
        /// 3: DOUBLE.
        Double = 3,
        /// 4: BINARY — what IS conditions use, with the encoded value as the bytes.
        Binary = 4,
        /// 5: JSON.
        Json = 5,
        /// 6: RECORD_V2.
        RecordV2 = 6,
    }
);

impl ConstraintValueType {
    fn data_type(self) -> Option<DataType> {
        Some(match self {
            ConstraintValueType::String => DataType::String,
            ConstraintValueType::Int64 => DataType::Int64,
            ConstraintValueType::Double => DataType::Double,
            ConstraintValueType::Binary => DataType::Binary,
            ConstraintValueType::Json => DataType::Json,
            ConstraintValueType::Null | ConstraintValueType::RecordV2 => return None,
        })
    }
}

/// What the server knows of a topic when it evaluates a constraint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicState<'a> {
    /// No topic at the path.
    Missing,
    /// A topic of `topic_type`, with its current encoded value if it has one.
    Present {
        /// The topic's type.
        topic_type: TopicType,
        /// The current value's bytes.
        value: Option<&'a [u8]>,
    },
}

impl<'a> TopicState<'a> {
    /// The current value, if any. CBOR null in a STRING, INT64 or DOUBLE topic is "no
    /// value" (TOPICS §3.3) (inferred: the server treats it so).
    fn value(self) -> Option<(TopicType, &'a [u8])> {
        match self {
            TopicState::Present {
                topic_type,
                value: Some(bytes),
            } => {
                let scalar = matches!(
                    topic_type,
                    TopicType::String | TopicType::Int64 | TopicType::Double
                );
                (!(scalar && bytes == [0xf6])).then_some((topic_type, bytes))
            }
            _ => None,
        }
    }
}

/// A constraint the server does not evaluate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0} update constraints are not supported")]
pub struct UnsupportedConstraint(pub &'static str);

impl UpdateConstraint {
    /// The topic must have no value.
    pub fn no_value() -> Self {
        UpdateConstraint::NoValue
    }

    /// The topic must not exist (for ADD_AND_SET_TOPIC).
    pub fn no_topic() -> Self {
        UpdateConstraint::NoTopic
    }

    /// The topic's current value must be exactly these encoded bytes (operator IS; the
    /// value type is BINARY whatever the topic's type, as both clients send it).
    pub fn value_is(encoded: impl Into<Bytes>) -> Self {
        UpdateConstraint::Value(ValueCondition {
            operator: ConstraintOperator::Is,
            value_type: ConstraintValueType::Binary,
            value: encoded.into(),
        })
    }

    /// The topic's current value compared with `value`, encoded as `value_type`.
    pub fn value(
        operator: ConstraintOperator,
        value_type: ConstraintValueType,
        value: impl Into<Bytes>,
    ) -> Self {
        UpdateConstraint::Value(ValueCondition {
            operator,
            value_type,
            value: value.into(),
        })
    }

    /// The session must hold the lock `lock_name` at `sequence`.
    pub fn locked(lock_name: impl Into<String>, sequence: i64) -> Self {
        UpdateConstraint::Locked {
            lock_name: lock_name.into(),
            sequence,
        }
    }

    /// Both this and `other`.
    #[must_use]
    pub fn and(self, other: UpdateConstraint) -> Self {
        UpdateConstraint::And(Box::new(self), Box::new(other))
    }

    /// This or `other` (protocol 27 and later only).
    #[must_use]
    pub fn or(self, other: UpdateConstraint) -> Self {
        UpdateConstraint::Or(Box::new(self), Box::new(other))
    }

    /// Whether the constraint holds for `topic`.
    ///
    /// A missing topic has no value: NO_VALUE and NO_TOPIC hold for it, value conditions
    /// do not (inferred). IS compares bytes; EQ and NE compare decoded values, GT to LE
    /// order numbers and strings; a comparison of values that do not compare is false.
    /// Locks and partial JSON are not evaluated.
    pub fn evaluate(&self, topic: TopicState<'_>) -> Result<bool, UnsupportedConstraint> {
        Ok(match self {
            UpdateConstraint::Unconstrained => true,
            UpdateConstraint::And(a, b) => a.evaluate(topic)? && b.evaluate(topic)?,
            UpdateConstraint::Or(a, b) => a.evaluate(topic)? || b.evaluate(topic)?,
            UpdateConstraint::NoTopic => topic == TopicState::Missing,
            UpdateConstraint::NoValue => topic.value().is_none(),
            UpdateConstraint::Value(condition) => condition.evaluate(topic)?,
            UpdateConstraint::Locked { .. } => return Err(UnsupportedConstraint("locked")),
            UpdateConstraint::PartialJson(_) => return Err(UnsupportedConstraint("partial JSON")),
        })
    }

    /// Appends the wire form of `version`. Protocol 25 writes AND as one counted list and
    /// has no OR, and its partial JSON conditions are IS only.
    pub fn encode(&self, out: &mut BytesMut, version: ProtocolVersion) -> Result<(), PayloadError> {
        out.put_u8(self.type_code());
        match self {
            UpdateConstraint::Unconstrained | UpdateConstraint::NoValue | UpdateConstraint::NoTopic => {}
            UpdateConstraint::And(a, b) if has_v27_forms(version) => {
                a.encode(out, version)?;
                b.encode(out, version)?;
            }
            UpdateConstraint::And(..) => {
                let mut operands = Vec::new();
                self.conjuncts(&mut operands);
                wire::put_length(out, operands.len());
                for operand in operands {
                    operand.encode(out, version)?;
                }
            }
            UpdateConstraint::Or(a, b) => {
                if !has_v27_forms(version) {
                    return Err(PayloadError::NotInVersion {
                        what: "an OR update constraint",
                        version,
                    });
                }
                a.encode(out, version)?;
                b.encode(out, version)?;
            }
            UpdateConstraint::Value(condition) => condition.encode(out),
            UpdateConstraint::Locked { lock_name, sequence } => {
                wire::put_string(out, lock_name);
                wire::put_varint_i64(out, *sequence);
            }
            UpdateConstraint::PartialJson(partial) => partial.encode(out, version)?,
        }
        Ok(())
    }

    /// The wire form of `version`.
    pub fn to_bytes(&self, version: ProtocolVersion) -> Result<Bytes, PayloadError> {
        let mut out = BytesMut::new();
        self.encode(&mut out, version)?;
        Ok(out.freeze())
    }

    /// Reads a whole constraint. A protocol-25 AND of n operands reads as nested pairs
    /// (`((a AND b) AND c)`); of one operand, as that operand; of none, as unconstrained.
    pub fn decode(bytes: &[u8], version: ProtocolVersion) -> Result<Self, PayloadError> {
        decode_all(bytes, |r| UpdateConstraint::read(r, version))
    }

    pub(crate) fn read(r: &mut Reader<'_>, version: ProtocolVersion) -> Result<Self, PayloadError> {
        Self::read_nested(r, version, 0)
    }

    fn read_nested(r: &mut Reader<'_>, version: ProtocolVersion, depth: usize) -> Result<Self, PayloadError> {
        if depth == MAX_DEPTH {
            return Err(PayloadError::TooDeep { limit: MAX_DEPTH });
        }
        let code = r.u8().field("constraint type")?;
        let mut operand = || Self::read_nested(r, version, depth + 1).map(Box::new);
        Ok(match code {
            0 => UpdateConstraint::Unconstrained,
            1 if has_v27_forms(version) => {
                let a = operand()?;
                UpdateConstraint::And(a, operand()?)
            }
            1 => {
                let count = r.length().field("constraint count")?;
                let mut conjunction: Option<UpdateConstraint> = None;
                for _ in 0..count {
                    let next = Self::read_nested(r, version, depth + 1)?;
                    conjunction = Some(match conjunction {
                        None => next,
                        Some(left) => left.and(next),
                    });
                }
                conjunction.unwrap_or_default()
            }
            2 => UpdateConstraint::Value(ValueCondition::read(r)?),
            3 => UpdateConstraint::NoValue,
            4 => UpdateConstraint::Locked {
                lock_name: read_string(r, "lock name")?,
                sequence: r.varint_i64().field("lock sequence")?,
            },
            5 => UpdateConstraint::NoTopic,
            6 => UpdateConstraint::PartialJson(PartialJsonCondition::read(r, version)?),
            7 if has_v27_forms(version) => {
                let a = operand()?;
                UpdateConstraint::Or(a, operand()?)
            }
            other => {
                return Err(PayloadError::UnknownCode {
                    field: "constraint type",
                    value: other.into(),
                })
            }
        })
    }

    fn type_code(&self) -> u8 {
        match self {
            UpdateConstraint::Unconstrained => 0,
            UpdateConstraint::And(..) => 1,
            UpdateConstraint::Value(_) => 2,
            UpdateConstraint::NoValue => 3,
            UpdateConstraint::Locked { .. } => 4,
            UpdateConstraint::NoTopic => 5,
            UpdateConstraint::PartialJson(_) => 6,
            UpdateConstraint::Or(..) => 7,
        }
    }

    /// The operands of a tree of ANDs, left to right.
    fn conjuncts<'a>(&'a self, out: &mut Vec<&'a UpdateConstraint>) {
        match self {
            UpdateConstraint::And(a, b) => {
                a.conjuncts(out);
                b.conjuncts(out);
            }
            other => out.push(other),
        }
    }
}

impl ValueCondition {
    fn encode(&self, out: &mut BytesMut) {
        out.put_u8(self.operator.code());
        out.put_u8(self.value_type.code());
        wire::put_bytes(out, &self.value);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, PayloadError> {
        Ok(ValueCondition {
            operator: ConstraintOperator::read(r)?,
            value_type: ConstraintValueType::read(r)?,
            value: read_bytes(r, "constraint value")?,
        })
    }

    fn evaluate(&self, topic: TopicState<'_>) -> Result<bool, UnsupportedConstraint> {
        let Some((topic_type, current)) = topic.value() else {
            return Ok(false);
        };
        if self.operator == ConstraintOperator::Is {
            return Ok(current == self.value);
        }
        let Some(expected_type) = self.value_type.data_type() else {
            return Err(UnsupportedConstraint("null or record value"));
        };
        let decode = |data_type: Option<DataType>, bytes: &[u8]| {
            data_type
                .and_then(|d| TopicValue::decode(d, &Bytes::copy_from_slice(bytes)).ok())
                .map(comparable)
        };
        let (Some(current), Some(expected)) = (
            decode(topic_type.data_type(), current),
            decode(Some(expected_type), &self.value),
        ) else {
            return Ok(false);
        };
        let order = compare(&current, &expected);
        Ok(match self.operator {
            ConstraintOperator::Is | ConstraintOperator::Eq => order == Some(Ordering::Equal),
            ConstraintOperator::Ne => order != Some(Ordering::Equal),
            ConstraintOperator::Gt => order == Some(Ordering::Greater),
            ConstraintOperator::Ge => matches!(order, Some(Ordering::Greater | Ordering::Equal)),
            ConstraintOperator::Lt => order == Some(Ordering::Less),
            ConstraintOperator::Le => matches!(order, Some(Ordering::Less | Ordering::Equal)),
        })
    }
}

/// A JSON number or string compares as the INT64, DOUBLE or STRING it is.
fn comparable(value: TopicValue) -> TopicValue {
    match value {
        TopicValue::Json(serde_json::Value::String(s)) => TopicValue::String(s),
        TopicValue::Json(serde_json::Value::Number(n)) => match n.as_i64() {
            Some(i) => TopicValue::Int64(i),
            None => TopicValue::Double(n.as_f64().unwrap_or(f64::NAN)),
        },
        other => other,
    }
}

fn compare(a: &TopicValue, b: &TopicValue) -> Option<Ordering> {
    use TopicValue::{Binary, Double, Int64, Json, String};
    match (a, b) {
        (Int64(x), Int64(y)) => Some(x.cmp(y)),
        (Int64(x), Double(y)) => (*x as f64).partial_cmp(y),
        (Double(x), Int64(y)) => x.partial_cmp(&(*y as f64)),
        (Double(x), Double(y)) => x.partial_cmp(y),
        (String(x), String(y)) => Some(x.cmp(y)),
        (Binary(x), Binary(y)) => Some(x.cmp(y)),
        (Json(x), Json(y)) => (x == y).then_some(Ordering::Equal),
        _ => None,
    }
}

impl PartialJsonCondition {
    fn encode(&self, out: &mut BytesMut, version: ProtocolVersion) -> Result<(), PayloadError> {
        wire::put_length(out, self.with.len());
        for (pointer, condition) in &self.with {
            wire::put_string(out, pointer);
            if has_v27_forms(version) {
                condition.encode(out);
            } else if condition.operator == ConstraintOperator::Is {
                wire::put_bytes(out, &condition.value);
            } else {
                return Err(PayloadError::NotInVersion {
                    what: "a partial JSON condition other than IS",
                    version,
                });
            }
        }
        put_string_list(out, &self.without);
        Ok(())
    }

    /// Protocol 25's "with" map holds bytes only, read as IS with BINARY bytes (inferred
    /// from the Python client's layout).
    fn read(r: &mut Reader<'_>, version: ProtocolVersion) -> Result<Self, PayloadError> {
        let with = read_list(r, "partial JSON pointers", |r| {
            let pointer = read_string(r, "JSON pointer")?;
            let condition = if has_v27_forms(version) {
                ValueCondition::read(r)?
            } else {
                ValueCondition {
                    operator: ConstraintOperator::Is,
                    value_type: ConstraintValueType::Binary,
                    value: read_bytes(r, "constraint value")?,
                }
            };
            Ok((pointer, condition))
        })?;
        Ok(PartialJsonCondition {
            with,
            without: read_string_list(r, "JSON pointers without")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const V25: ProtocolVersion = ProtocolVersion::V25;
    const V29: ProtocolVersion = ProtocolVersion::V29;

    fn bytes_of(c: &UpdateConstraint, version: ProtocolVersion) -> Vec<u8> {
        c.to_bytes(version).map(|b| b.to_vec()).unwrap_or_default()
    }

    #[test]
    fn and_is_a_counted_list_in_25_and_a_pair_from_27() {
        let c = UpdateConstraint::no_value()
            .and(UpdateConstraint::no_topic())
            .and(UpdateConstraint::Unconstrained);
        assert_eq!(bytes_of(&c, V25), [1, 3, 3, 5, 0]);
        assert_eq!(bytes_of(&c, V29), [1, 1, 3, 5, 0]);
        assert_eq!(UpdateConstraint::decode(&[1, 3, 3, 5, 0], V25), Ok(c.clone()));
        assert_eq!(UpdateConstraint::decode(&[1, 1, 3, 5, 0], V29), Ok(c));
        assert_eq!(
            UpdateConstraint::decode(&[1, 1, 3], V25),
            Ok(UpdateConstraint::NoValue)
        );
        assert_eq!(
            UpdateConstraint::decode(&[1, 0], V25),
            Ok(UpdateConstraint::Unconstrained)
        );
    }

    #[test]
    fn or_and_operator_json_need_protocol_27() {
        let or = UpdateConstraint::no_value().or(UpdateConstraint::no_topic());
        assert!(matches!(or.to_bytes(V25), Err(PayloadError::NotInVersion { .. })));
        assert!(matches!(
            UpdateConstraint::decode(&[7, 3, 5], V25),
            Err(PayloadError::UnknownCode { value: 7, .. })
        ));
        let json = UpdateConstraint::PartialJson(PartialJsonCondition {
            with: vec![(
                "/a".into(),
                ValueCondition {
                    operator: ConstraintOperator::Eq,
                    value_type: ConstraintValueType::Int64,
                    value: Bytes::from_static(&[1]),
                },
            )],
            without: vec![],
        });
        assert!(matches!(
            json.to_bytes(V25),
            Err(PayloadError::NotInVersion { .. })
        ));
        assert_eq!(bytes_of(&json, V29), [6, 1, 2, b'/', b'a', 2, 2, 1, 1, 0]);
    }

    #[test]
    fn partial_json_in_25_is_pointer_to_bytes() {
        let bytes = [6, 1, 2, b'/', b'a', 1, 1, 1, 2, b'/', b'b'];
        let c = UpdateConstraint::decode(&bytes, V25);
        let expected = UpdateConstraint::PartialJson(PartialJsonCondition {
            with: vec![(
                "/a".into(),
                match UpdateConstraint::value_is(vec![1]) {
                    UpdateConstraint::Value(v) => v,
                    _ => unreachable!(),
                },
            )],
            without: vec!["/b".into()],
        });
        assert_eq!(c, Ok(expected.clone()));
        assert_eq!(bytes_of(&expected, V25), bytes);
    }

    #[test]
    fn deep_nesting_is_refused() {
        let deep = [1u8; 10_000];
        assert_eq!(
            UpdateConstraint::decode(&deep, V29),
            Err(PayloadError::TooDeep { limit: MAX_DEPTH })
        );
        let mut list = vec![];
        for _ in 0..100 {
            list.extend_from_slice(&[1, 1]);
        }
        assert!(matches!(
            UpdateConstraint::decode(&list, V25),
            Err(PayloadError::TooDeep { .. })
        ));
    }

    #[test]
    fn evaluation_of_the_constraints_a_server_needs() {
        let string_topic = |value: Option<&'static [u8]>| TopicState::Present {
            topic_type: TopicType::String,
            value,
        };
        let has_value = string_topic(Some(b"\x61x"));
        let null_value = string_topic(Some(&[0xf6]));
        let no_value = string_topic(None);
        let missing = TopicState::Missing;
        let cases: [(UpdateConstraint, [bool; 4]); 6] = [
            (UpdateConstraint::Unconstrained, [true, true, true, true]),
            (UpdateConstraint::no_value(), [false, true, true, true]),
            (UpdateConstraint::no_topic(), [false, false, false, true]),
            (
                UpdateConstraint::value_is(&b"\x61x"[..]),
                [true, false, false, false],
            ),
            (
                UpdateConstraint::value_is(&b"\x61y"[..]).or(UpdateConstraint::no_value()),
                [false, true, true, true],
            ),
            (
                UpdateConstraint::no_value().and(UpdateConstraint::no_topic()),
                [false, false, false, true],
            ),
        ];
        for (constraint, expected) in cases {
            let got = [has_value, null_value, no_value, missing].map(|t| constraint.evaluate(t));
            assert_eq!(got, expected.map(Ok), "{constraint:?}");
        }
        assert_eq!(
            UpdateConstraint::locked("l", 1).evaluate(missing),
            Err(UnsupportedConstraint("locked"))
        );
    }

    #[test]
    fn comparisons_decode_both_sides() {
        let int_topic = TopicState::Present {
            topic_type: TopicType::Int64,
            value: Some(&[0x05]),
        };
        let json_topic = TopicState::Present {
            topic_type: TopicType::Json,
            value: Some(&[0xf9, 0x45, 0x00]), // 5.0 as a half float
        };
        let int = |op| UpdateConstraint::value(op, ConstraintValueType::Int64, vec![0x05]);
        let double = |op| {
            UpdateConstraint::value(
                op,
                ConstraintValueType::Double,
                vec![0xfb, 0x40, 0x18, 0, 0, 0, 0, 0, 0],
            )
        }; // 6.0
        use ConstraintOperator::*;
        for topic in [int_topic, json_topic] {
            assert_eq!(int(Eq).evaluate(topic), Ok(true));
            assert_eq!(int(Ne).evaluate(topic), Ok(false));
            assert_eq!(int(Ge).evaluate(topic), Ok(true));
            assert_eq!(double(Lt).evaluate(topic), Ok(true));
            assert_eq!(double(Gt).evaluate(topic), Ok(false));
            assert_eq!(double(Le).evaluate(topic), Ok(true));
        }
        let text = UpdateConstraint::value(Eq, ConstraintValueType::String, b"\x61x".to_vec());
        assert_eq!(text.evaluate(int_topic), Ok(false));
    }

    fn any_leaf() -> impl Strategy<Value = UpdateConstraint> {
        prop_oneof![
            Just(UpdateConstraint::Unconstrained),
            Just(UpdateConstraint::NoValue),
            Just(UpdateConstraint::NoTopic),
            (1u8..=7, 0u8..=6, proptest::collection::vec(any::<u8>(), 0..6)).prop_map(|(op, ty, v)| {
                let mut bytes = vec![op, ty];
                let mut out = BytesMut::from(&bytes[..]);
                wire::put_bytes(&mut out, &v);
                bytes = out.to_vec();
                let mut r = Reader::new(&bytes);
                ValueCondition::read(&mut r)
                    .map(UpdateConstraint::Value)
                    .unwrap_or_default()
            }),
            (".{0,6}", any::<i64>()).prop_map(|(name, seq)| UpdateConstraint::locked(name, seq)),
        ]
    }

    proptest! {
        #[test]
        fn v29_constraints_round_trip(c in any_leaf().prop_recursive(4, 16, 2, |inner| prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| a.and(b)),
            (inner.clone(), inner).prop_map(|(a, b)| a.or(b)),
        ])) {
            let bytes = c.to_bytes(V29);
            prop_assert_eq!(bytes.and_then(|b| UpdateConstraint::decode(&b, V29)), Ok(c));
        }

        #[test]
        fn v25_conjunctions_round_trip(items in proptest::collection::vec(any_leaf(), 2..5)) {
            let c = items.into_iter().reduce(UpdateConstraint::and).unwrap_or_default();
            let bytes = c.to_bytes(V25);
            prop_assert_eq!(bytes.and_then(|b| UpdateConstraint::decode(&b, V25)), Ok(c));
        }

        #[test]
        fn any_bytes_decode_or_fail(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            for version in [V25, V29] {
                if let Ok(c) = UpdateConstraint::decode(&bytes, version) {
                    let _ = c.evaluate(TopicState::Missing);
                }
            }
        }
    }
}
