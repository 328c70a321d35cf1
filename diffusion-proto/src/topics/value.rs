//! Topic values and messaging payloads as Rust values: typed reading and writing
//! ([`DecodeValue`], [`EncodeValue`]), the untyped [`TopicValue`], and their errors.
//!
//! Values stay encoded (`Bytes`) until a reader asks for them: the client keeps the bytes
//! of each topic's last value, applies deltas to them, and decodes once per stream.

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::cbor;
use super::datatype::DataType;

/// Why a value could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// A CBOR value had no bytes.
    #[error("empty {data_type} value: a CBOR value has at least one byte")]
    Empty {
        /// The datatype read.
        data_type: DataType,
    },
    /// The bytes are not well-formed CBOR.
    #[error("{data_type} value is not well-formed CBOR: {source}")]
    Malformed {
        /// The datatype read.
        data_type: DataType,
        /// What the CBOR decoder found.
        #[source]
        source: minicbor::decode::Error,
    },
    /// The CBOR item is of another kind than the datatype holds.
    #[error("{data_type} value holds a CBOR {found} item")]
    UnexpectedItem {
        /// The datatype read.
        data_type: DataType,
        /// The kind of item found, e.g. `f64`.
        found: String,
    },
    /// An integer does not fit in 64 bits.
    #[error("{data_type} value does not fit in a 64-bit integer")]
    OutOfRange {
        /// The datatype read.
        data_type: DataType,
    },
    /// Bytes followed the value's one CBOR item.
    #[error("{data_type} value has {len} byte(s) after its CBOR item")]
    TrailingBytes {
        /// The datatype read.
        data_type: DataType,
        /// How many.
        len: usize,
    },
    /// A JSON value nests arrays and maps deeper than the limit.
    #[error("JSON value nests deeper than {limit} arrays and maps")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// A map key is not a text string, as JSON object keys are.
    #[error("JSON value has a map key that is a CBOR {found}, not text")]
    NonTextKey {
        /// The kind of key found.
        found: String,
    },
    /// The JSON value does not fit the requested Rust type.
    #[error("JSON value does not fit the requested type: {source}")]
    Json {
        /// serde_json's explanation.
        #[source]
        source: serde_json::Error,
    },
    /// A value could not be written as CBOR (its `Serialize` implementation failed).
    #[error("value cannot be written as CBOR: {source}")]
    Encode {
        /// The serializer's error.
        #[source]
        source: minicbor_serde::error::EncodeError<std::convert::Infallible>,
    },
    /// A reader was given values of a datatype it cannot read (TOPICS §2.5).
    #[error("a {reader} reader cannot read {topic} values")]
    Incompatible {
        /// The reader's datatype.
        reader: DataType,
        /// The values' datatype.
        topic: DataType,
    },
    /// Values of this datatype are not decoded by this crate (RECORD_V2).
    #[error("{0} values are not supported")]
    Unsupported(DataType),
    /// A text is not a value of the datatype ([`TopicValue::from_text`]).
    #[error("{text:?} is not a {data_type} value: {reason}")]
    Text {
        /// The datatype asked for.
        data_type: DataType,
        /// The text.
        text: String,
        /// What is wrong, e.g. `expected a hexadecimal string`.
        reason: String,
    },
}

/// A Rust type topic values and messaging payloads can be read as.
///
/// Implemented for `serde_json::Value` and [`Json<T>`] (JSON), `String`, `i64`, `f64` and
/// [`Bytes`] (BINARY).
///
/// ```
/// use bytes::Bytes;
/// use diffusion_proto::{DataType, DecodeValue, Json};
///
/// let bytes = Bytes::from_static(&[0xbf, 0x61, 0x61, 0x01, 0x61, 0x62, 0x9f, 0xf5, 0xf6, 0xff, 0xff]);
/// let value = serde_json::Value::decode_value(&bytes)?;
/// assert_eq!(value, Some(serde_json::json!({"a": 1, "b": [true, null]})));
///
/// #[derive(serde::Deserialize)]
/// struct Point { a: i64 }
/// assert!(Json::<Point>::can_read(DataType::Json));
/// let Some(Json(point)) = Json::<Point>::decode_value(&bytes)? else { unreachable!() };
/// assert_eq!(point.a, 1);
///
/// // STRING, INT64 and DOUBLE are CBOR: JSON reads them too; CBOR null is "no value".
/// assert!(serde_json::Value::can_read(DataType::Int64));
/// assert_eq!(i64::decode_value(&Bytes::from_static(&[0x18, 0x2a]))?, Some(42));
/// assert_eq!(String::decode_value(&Bytes::from_static(&[0xf6]))?, None);
/// # Ok::<(), diffusion_proto::ValueError>(())
/// ```
pub trait DecodeValue: Sized {
    /// The datatype this type reads natively.
    const DATA_TYPE: DataType;

    /// Whether values of `data_type` can be read as this type (TOPICS §2.5).
    fn can_read(data_type: DataType) -> bool {
        Self::DATA_TYPE.can_read(data_type)
    }

    /// Reads one encoded value of a datatype this type [can read](Self::can_read).
    ///
    /// `Ok(None)` is "no value": CBOR null read as a STRING, INT64 or DOUBLE. As JSON, null
    /// is the value `null`.
    fn decode_value(bytes: &Bytes) -> Result<Option<Self>, ValueError>;
}

/// A Rust type topic values and messaging payloads can be written from.
///
/// ```
/// use diffusion_proto::EncodeValue;
///
/// assert_eq!(&"hello".encode_value()?[..], b"\x65hello");
/// assert_eq!(&42i64.encode_value()?[..], [0x18, 0x2a]);
/// assert_eq!(&1.5f64.encode_value()?[..], [0xfb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0]);
/// assert_eq!(&serde_json::json!([true]).encode_value()?[..], [0x81, 0xf5]);
/// # Ok::<(), diffusion_proto::ValueError>(())
/// ```
pub trait EncodeValue {
    /// The datatype this type writes (a messaging request's datatype name, the type of a
    /// topic set from it).
    const DATA_TYPE: DataType;

    /// The encoded value.
    fn encode_value(&self) -> Result<Bytes, ValueError>;
}

/// Any serde type read and written as a JSON value.
///
/// A JSON value reads as `T` exactly as the same JSON text would with `serde_json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned> DecodeValue for Json<T> {
    const DATA_TYPE: DataType = DataType::Json;

    fn decode_value(bytes: &Bytes) -> Result<Option<Self>, ValueError> {
        cbor::decode_json(bytes).map(|v| Some(Json(v)))
    }
}

impl<T: Serialize> EncodeValue for Json<T> {
    const DATA_TYPE: DataType = DataType::Json;

    fn encode_value(&self) -> Result<Bytes, ValueError> {
        cbor::encode_json(&self.0).map(Bytes::from)
    }
}

impl DecodeValue for serde_json::Value {
    const DATA_TYPE: DataType = DataType::Json;

    fn decode_value(bytes: &Bytes) -> Result<Option<Self>, ValueError> {
        cbor::decode_json_value(bytes).map(Some)
    }
}

impl EncodeValue for serde_json::Value {
    const DATA_TYPE: DataType = DataType::Json;

    fn encode_value(&self) -> Result<Bytes, ValueError> {
        cbor::encode_json(self).map(Bytes::from)
    }
}

impl DecodeValue for String {
    const DATA_TYPE: DataType = DataType::String;

    fn decode_value(bytes: &Bytes) -> Result<Option<Self>, ValueError> {
        cbor::decode_string(bytes)
    }
}

impl EncodeValue for String {
    const DATA_TYPE: DataType = DataType::String;

    fn encode_value(&self) -> Result<Bytes, ValueError> {
        self.as_str().encode_value()
    }
}

impl EncodeValue for str {
    const DATA_TYPE: DataType = DataType::String;

    fn encode_value(&self) -> Result<Bytes, ValueError> {
        Ok(cbor::encode_string(self).into())
    }
}

impl DecodeValue for i64 {
    const DATA_TYPE: DataType = DataType::Int64;

    fn decode_value(bytes: &Bytes) -> Result<Option<Self>, ValueError> {
        cbor::decode_int64(bytes)
    }
}

impl EncodeValue for i64 {
    const DATA_TYPE: DataType = DataType::Int64;

    fn encode_value(&self) -> Result<Bytes, ValueError> {
        Ok(cbor::encode_int64(*self).into())
    }
}

impl DecodeValue for f64 {
    const DATA_TYPE: DataType = DataType::Double;

    fn decode_value(bytes: &Bytes) -> Result<Option<Self>, ValueError> {
        cbor::decode_double(bytes)
    }
}

impl EncodeValue for f64 {
    const DATA_TYPE: DataType = DataType::Double;

    fn encode_value(&self) -> Result<Bytes, ValueError> {
        Ok(cbor::encode_double(*self).into())
    }
}

impl DecodeValue for Bytes {
    const DATA_TYPE: DataType = DataType::Binary;

    /// The bytes themselves, without copying.
    fn decode_value(bytes: &Bytes) -> Result<Option<Self>, ValueError> {
        Ok(Some(bytes.clone()))
    }
}

impl EncodeValue for Bytes {
    const DATA_TYPE: DataType = DataType::Binary;

    fn encode_value(&self) -> Result<Bytes, ValueError> {
        Ok(self.clone())
    }
}

impl EncodeValue for [u8] {
    const DATA_TYPE: DataType = DataType::Binary;

    fn encode_value(&self) -> Result<Bytes, ValueError> {
        Ok(Bytes::copy_from_slice(self))
    }
}

/// A value in its topic's own type: what an untyped stream yields.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TopicValue {
    /// A JSON value (JSON `null` included).
    Json(serde_json::Value),
    /// A STRING value.
    String(String),
    /// An INT64 value.
    Int64(i64),
    /// A DOUBLE value.
    Double(f64),
    /// A BINARY value.
    Binary(Bytes),
    /// No value: CBOR null in a STRING, INT64 or DOUBLE topic (TOPICS §3.3).
    NoValue,
}

impl TopicValue {
    /// Reads an encoded value of `data_type`.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use diffusion_proto::{DataType, TopicValue};
    ///
    /// let v = TopicValue::decode(DataType::String, &Bytes::from_static(b"\x65Hello"))?;
    /// assert_eq!(v, TopicValue::String("Hello".into()));
    /// let none = TopicValue::decode(DataType::Double, &Bytes::from_static(&[0xf6]))?;
    /// assert_eq!(none, TopicValue::NoValue);
    /// # Ok::<(), diffusion_proto::ValueError>(())
    /// ```
    pub fn decode(data_type: DataType, bytes: &Bytes) -> Result<TopicValue, ValueError> {
        Ok(match data_type {
            DataType::Json => TopicValue::Json(cbor::decode_json_value(bytes)?),
            DataType::String => cbor::decode_string(bytes)?.map_or(TopicValue::NoValue, TopicValue::String),
            DataType::Int64 => cbor::decode_int64(bytes)?.map_or(TopicValue::NoValue, TopicValue::Int64),
            DataType::Double => cbor::decode_double(bytes)?.map_or(TopicValue::NoValue, TopicValue::Double),
            DataType::Binary => TopicValue::Binary(bytes.clone()),
            DataType::RecordV2 => return Err(ValueError::Unsupported(data_type)),
        })
    }

    /// Reads a value of `data_type` from command-line text, as the `diffusion` tool and the
    /// test server's `--topic` read it: `json` JSON text, `string` the text itself, `int64`
    /// and `double` a number, `binary` hexadecimal.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use diffusion_proto::{DataType, TopicValue};
    ///
    /// let v = TopicValue::from_text(DataType::Json, r#"{"a":1}"#)?;
    /// assert_eq!(v, TopicValue::Json(serde_json::json!({"a": 1})));
    /// assert_eq!(TopicValue::from_text(DataType::Int64, "42")?, TopicValue::Int64(42));
    /// assert_eq!(TopicValue::from_text(DataType::Binary, "00ff")?, TopicValue::Binary(Bytes::from_static(&[0, 255])));
    /// assert!(TopicValue::from_text(DataType::Double, "one").is_err());
    /// # Ok::<(), diffusion_proto::ValueError>(())
    /// ```
    pub fn from_text(data_type: DataType, text: &str) -> Result<TopicValue, ValueError> {
        let wrong = |reason: String| ValueError::Text {
            data_type,
            text: text.to_owned(),
            reason,
        };
        Ok(match data_type {
            DataType::Json => TopicValue::Json(serde_json::from_str(text).map_err(|e| wrong(e.to_string()))?),
            DataType::String => TopicValue::String(text.to_owned()),
            DataType::Int64 => TopicValue::Int64(text.trim().parse().map_err(|e| wrong(format!("{e}")))?),
            DataType::Double => TopicValue::Double(text.trim().parse().map_err(|e| wrong(format!("{e}")))?),
            DataType::Binary => {
                TopicValue::Binary(hex::decode(text.trim()).map_err(|e| wrong(e.to_string()))?.into())
            }
            DataType::RecordV2 => return Err(ValueError::Unsupported(data_type)),
        })
    }

    /// The datatype of this value; `None` for [`TopicValue::NoValue`], which any CBOR
    /// datatype can hold.
    pub fn data_type(&self) -> Option<DataType> {
        Some(match self {
            TopicValue::Json(_) => DataType::Json,
            TopicValue::String(_) => DataType::String,
            TopicValue::Int64(_) => DataType::Int64,
            TopicValue::Double(_) => DataType::Double,
            TopicValue::Binary(_) => DataType::Binary,
            TopicValue::NoValue => return None,
        })
    }

    /// The encoded value; [`TopicValue::NoValue`] is CBOR null.
    pub fn encode(&self) -> Result<Bytes, ValueError> {
        match self {
            TopicValue::Json(v) => v.encode_value(),
            TopicValue::String(s) => s.encode_value(),
            TopicValue::Int64(n) => n.encode_value(),
            TopicValue::Double(x) => x.encode_value(),
            TopicValue::Binary(b) => b.encode_value(),
            TopicValue::NoValue => Ok(Bytes::from_static(&[cbor::NULL])),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<u64>().prop_map(serde_json::Value::from),
            any::<f64>()
                .prop_filter("JSON numbers are finite", |f| f.is_finite())
                .prop_map(serde_json::Value::from),
            ".{0,8}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
                proptest::collection::btree_map(".{0,6}", inner, 0..6)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    #[test]
    fn binary_reads_only_binary_and_is_not_copied() {
        assert!(Bytes::can_read(DataType::Binary));
        assert!(!Bytes::can_read(DataType::Json));
        assert!(!serde_json::Value::can_read(DataType::Binary));
        let bytes = Bytes::from_static(&[0, 1, 2, 0xff]);
        let read = Bytes::decode_value(&bytes).ok().flatten();
        assert_eq!(read.as_ref().map(|b| b.as_ptr()), Some(bytes.as_ptr()));
    }

    #[test]
    fn no_value_is_null_for_scalars_and_a_value_for_json() {
        let null = Bytes::from_static(&[0xf6]);
        assert_eq!(i64::decode_value(&null).ok(), Some(None));
        assert_eq!(f64::decode_value(&null).ok(), Some(None));
        assert_eq!(
            serde_json::Value::decode_value(&null).ok(),
            Some(Some(serde_json::Value::Null))
        );
        assert_eq!(TopicValue::NoValue.encode().ok(), Some(null));
        assert_eq!(TopicValue::NoValue.data_type(), None);
    }

    #[test]
    fn record_v2_is_unsupported_and_errors_say_what_failed() {
        let err = TopicValue::decode(DataType::RecordV2, &Bytes::new());
        assert!(matches!(err, Err(ValueError::Unsupported(DataType::RecordV2))));
        let err = TopicValue::decode(DataType::Int64, &Bytes::from_static(b"\x61x"));
        assert_eq!(
            err.map_err(|e| e.to_string()),
            Err("int64 value holds a CBOR string item".to_owned())
        );
        let err = Json::<Vec<i64>>::decode_value(&Bytes::from_static(b"\x61x"));
        assert!(matches!(err, Err(ValueError::Json { .. })));
    }

    proptest! {
        #[test]
        fn json_round_trips(value in json_value()) {
            let bytes = value.encode_value();
            prop_assert!(bytes.is_ok());
            let bytes = bytes.unwrap_or_default();
            prop_assert_eq!(serde_json::Value::decode_value(&bytes).ok(), Some(Some(value.clone())));
            prop_assert_eq!(TopicValue::decode(DataType::Json, &bytes).ok(), Some(TopicValue::Json(value)));
        }

        #[test]
        fn untyped_values_round_trip(s in ".{0,20}", n: i64, x in any::<f64>().prop_filter("NaN != NaN", |x| !x.is_nan()),
                                     b in proptest::collection::vec(any::<u8>(), 0..20)) {
            for value in [TopicValue::String(s), TopicValue::Int64(n), TopicValue::Double(x), TopicValue::Binary(b.into())] {
                let data_type = value.data_type().unwrap_or(DataType::Json);
                let bytes = value.encode().unwrap_or_default();
                prop_assert_eq!(TopicValue::decode(data_type, &bytes).ok(), Some(value));
            }
        }

        #[test]
        fn any_bytes_decode_or_fail_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let bytes = Bytes::from(bytes);
            for data_type in DataType::ALL {
                let _ = TopicValue::decode(data_type, &bytes);
            }
            let _ = Json::<Vec<String>>::decode_value(&bytes);
        }
    }
}
