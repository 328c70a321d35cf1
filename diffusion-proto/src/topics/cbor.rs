//! The CBOR of topic values (TOPICS.md §3.2, §3.3): `minicbor`'s decoder reads every
//! item; JSON values are built from it with bounded nesting, and written with
//! `minicbor-serde`.
//!
//! # Why minicbor
//!
//! Both maintained serde-capable crates were timed decoding the values of TOPICS §3.2 on
//! this project's 2-core machine (release build, best of 5 runs of 2 000 000, `serde_json`
//! 1.0.154; the machine is shared, so each figure is the range of two runs), next to what
//! this module does with minicbor (the last column):
//!
//! | value | ciborium 0.2.2 | minicbor-serde 0.7.2 | minicbor 2.3 here |
//! |---|---|---|---|
//! | `bf61610161629ff5f6ffff` → `serde_json::Value` | 1 066–1 092 ns | 303–321 ns | 345–372 ns (2.7–2.9 M/s) |
//! | same → `#[derive(Deserialize)]` struct | 544–579 ns | 109–116 ns | 390–633 ns, via `Value` |
//! | 143-byte indefinite-length object → `Value` | 3 838–4 346 ns | 1 314–1 351 ns | 1 780–1 924 ns |
//! | same → struct | 1 897–2 085 ns | 433–488 ns | 2 025–2 134 ns, via `Value` |
//!
//! ciborium cannot keep a session at the 1 000 000 small JSON values per second the client
//! must sustain; minicbor can. But minicbor-serde has no recursion limit (a 100 000-deep
//! array overflowed the stack: an abort, not a panic), and its `deserialize_f64` refuses an
//! integer, which JSON does not distinguish from a float. So JSON values are built
//! directly from minicbor's `Decoder`, at most [`MAX_NESTING`] containers deep, and a
//! `T: DeserializeOwned` is read from that `serde_json::Value`: it reads exactly as it
//! would from the same JSON text with `serde_json`. `cargo bench -p diffusion-proto --bench
//! topics` measures the result.
//!
//! Encoding (minicbor-serde): containers with definite lengths (serde knows them),
//! integers in shortest form, `f64` always as 8 bytes (`fb`, as the JavaScript client writes
//! it), unit and `None` as null. Both official clients write indefinite lengths and decode
//! both (TOPICS §3.2: inferred; the interop tests prove it).

use minicbor::data::Type;
use minicbor::Decoder;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::datatype::DataType;
use super::value::ValueError;

/// The deepest nesting of arrays and maps a JSON value may have (serde_json's own limit).
pub(crate) const MAX_NESTING: usize = 128;

/// CBOR null: "no value" for STRING, INT64 and DOUBLE, JSON `null`.
pub(crate) const NULL: u8 = 0xf6;

/// Reads one JSON value.
pub(crate) fn decode_json_value(bytes: &[u8]) -> Result<serde_json::Value, ValueError> {
    if bytes.is_empty() {
        return Err(ValueError::Empty {
            data_type: DataType::Json,
        });
    }
    let mut d = Decoder::new(bytes);
    let value = json_item(&mut d, 0)?;
    finish(DataType::Json, bytes, d.position())?;
    Ok(value)
}

/// Builds the JSON value of the item at the decoder, `depth` containers deep.
fn json_item(d: &mut Decoder<'_>, depth: usize) -> Result<serde_json::Value, ValueError> {
    use serde_json::Value;
    const JSON: DataType = DataType::Json;
    let malformed = malformed(JSON);
    let ty = d.datatype().map_err(malformed)?;
    Ok(match ty {
        Type::Null | Type::Undefined => {
            d.skip().map_err(malformed)?;
            Value::Null
        }
        Type::Bool => Value::Bool(d.bool().map_err(malformed)?),
        Type::U8 | Type::U16 | Type::U32 | Type::U64 => Value::from(d.u64().map_err(malformed)?),
        Type::I8 | Type::I16 | Type::I32 | Type::I64 => Value::from(d.i64().map_err(malformed)?),
        // Below −2^63: no JSON integer type holds it; JavaScript reads it as a double too.
        Type::Int => float(i128::from(d.int().map_err(malformed)?) as f64),
        Type::F16 | Type::F32 | Type::F64 => float(d.f64().map_err(malformed)?),
        Type::String | Type::StringIndef => Value::String(text(d, JSON)?),
        Type::Array | Type::ArrayIndef => {
            let len = nest(d.array().map_err(malformed)?, depth)?;
            let mut items = Vec::with_capacity(capacity(len, d));
            while more(d, len, items.len() as u64)? {
                items.push(json_item(d, depth + 1)?);
            }
            Value::Array(items)
        }
        Type::Map | Type::MapIndef => {
            let len = nest(d.map().map_err(malformed)?, depth)?;
            let mut map = serde_json::Map::new();
            let mut read = 0;
            while more(d, len, read)? {
                let key = match d.datatype().map_err(malformed)? {
                    Type::String | Type::StringIndef => text(d, JSON)?,
                    other => {
                        return Err(ValueError::NonTextKey {
                            found: other.to_string(),
                        })
                    }
                };
                map.insert(key, json_item(d, depth + 1)?);
                read += 1;
            }
            Value::Object(map)
        }
        other => return Err(unexpected(JSON, other)),
    })
}

/// A float as JSON: NaN and the infinities, which JSON lacks, become null (as in serde_json).
fn float(x: f64) -> serde_json::Value {
    serde_json::Number::from_f64(x).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

/// A definite or indefinite text string.
fn text(d: &mut Decoder<'_>, data_type: DataType) -> Result<String, ValueError> {
    if d.datatype().map_err(malformed(data_type))? == Type::String {
        return d.str().map(str::to_owned).map_err(malformed(data_type));
    }
    let mut out = String::new();
    for chunk in d.str_iter().map_err(malformed(data_type))? {
        out.push_str(chunk.map_err(malformed(data_type))?);
    }
    Ok(out)
}

/// Opens a container at `depth`, which fails past [`MAX_NESTING`].
fn nest(len: Option<u64>, depth: usize) -> Result<Option<u64>, ValueError> {
    if depth == MAX_NESTING {
        return Err(ValueError::TooDeep { limit: MAX_NESTING });
    }
    Ok(len)
}

/// What to reserve for a definite array: its count, capped by the bytes left (every item
/// takes at least one), so no count can make us over-allocate.
fn capacity(len: Option<u64>, d: &Decoder<'_>) -> usize {
    let left = d.input().len().saturating_sub(d.position());
    len.map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX).min(left))
}

/// Whether a container has another item: a definite one until `len` items are read (a
/// count past the input fails on the missing item), an indefinite one until its break.
fn more(d: &mut Decoder<'_>, len: Option<u64>, read: u64) -> Result<bool, ValueError> {
    match len {
        Some(n) => Ok(read < n),
        None if d.datatype().map_err(malformed(DataType::Json))? == Type::Break => {
            d.set_position(d.position() + 1);
            Ok(false)
        }
        None => Ok(true),
    }
}

/// Reads one JSON value as `T`, as `serde_json` would read the same JSON.
pub(crate) fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ValueError> {
    serde_json::from_value(decode_json_value(bytes)?).map_err(|source| ValueError::Json { source })
}

/// Writes one JSON value.
pub(crate) fn encode_json<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, ValueError> {
    let mut ser = minicbor_serde::Serializer::new(Vec::with_capacity(32));
    ser.serialize_unit_as_null(true);
    value
        .serialize(&mut ser)
        .map_err(|source| ValueError::Encode { source })?;
    Ok(ser.into_encoder().into_writer())
}

/// Reads a STRING value; `None` for CBOR null. Definite and indefinite text strings.
pub(crate) fn decode_string(bytes: &[u8]) -> Result<Option<String>, ValueError> {
    const STRING: DataType = DataType::String;
    scalar(STRING, bytes, |d, ty| match ty {
        Type::String | Type::StringIndef => text(d, STRING),
        other => Err(unexpected(STRING, other)),
    })
}

/// Reads an INT64 value; `None` for CBOR null.
pub(crate) fn decode_int64(bytes: &[u8]) -> Result<Option<i64>, ValueError> {
    const INT64: DataType = DataType::Int64;
    scalar(INT64, bytes, |d, ty| match integer(d, ty, INT64)? {
        Some(n) => i64::try_from(n).map_err(|_| ValueError::OutOfRange { data_type: INT64 }),
        None => Err(unexpected(INT64, ty)),
    })
}

/// Reads a DOUBLE value; `None` for CBOR null. Half, single and double floats, and integers
/// (a lenient reading: no official client writes an integer here).
pub(crate) fn decode_double(bytes: &[u8]) -> Result<Option<f64>, ValueError> {
    const DOUBLE: DataType = DataType::Double;
    scalar(DOUBLE, bytes, |d, ty| match ty {
        Type::F16 | Type::F32 | Type::F64 => d.f64().map_err(malformed(DOUBLE)),
        _ => match integer(d, ty, DOUBLE)? {
            Some(n) => Ok(n as f64),
            None => Err(unexpected(DOUBLE, ty)),
        },
    })
}

/// Reads an integer item of any width; `None` when `ty` is not an integer.
fn integer(d: &mut Decoder<'_>, ty: Type, data_type: DataType) -> Result<Option<i128>, ValueError> {
    use Type::{Int, I16, I32, I64, I8, U16, U32, U64, U8};
    match ty {
        U8 | U16 | U32 | U64 | I8 | I16 | I32 | I64 | Int => {
            d.int().map(|n| Some(i128::from(n))).map_err(malformed(data_type))
        }
        _ => Ok(None),
    }
}

/// Writes a STRING value.
pub(crate) fn encode_string(value: &str) -> Vec<u8> {
    let mut e = minicbor::Encoder::new(Vec::with_capacity(value.len() + 9));
    // Writing to a Vec cannot fail.
    let _ = e.str(value);
    e.into_writer()
}

/// Writes an INT64 value in shortest form.
pub(crate) fn encode_int64(value: i64) -> Vec<u8> {
    let mut e = minicbor::Encoder::new(Vec::with_capacity(9));
    let _ = e.i64(value);
    e.into_writer()
}

/// Writes a DOUBLE value as an 8-byte float.
pub(crate) fn encode_double(value: f64) -> Vec<u8> {
    let mut e = minicbor::Encoder::new(Vec::with_capacity(9));
    let _ = e.f64(value);
    e.into_writer()
}

/// Reads a one-item CBOR scalar of `data_type`, CBOR null being `None`; `read` gets the
/// item's type.
fn scalar<T>(
    data_type: DataType,
    bytes: &[u8],
    read: impl FnOnce(&mut Decoder<'_>, Type) -> Result<T, ValueError>,
) -> Result<Option<T>, ValueError> {
    if bytes.is_empty() {
        return Err(ValueError::Empty { data_type });
    }
    let mut d = Decoder::new(bytes);
    let value = match d.datatype().map_err(malformed(data_type))? {
        Type::Null => {
            d.set_position(1);
            None
        }
        ty => Some(read(&mut d, ty)?),
    };
    finish(data_type, bytes, d.position())?;
    Ok(value)
}

fn malformed(data_type: DataType) -> impl Fn(minicbor::decode::Error) -> ValueError + Copy {
    move |source| ValueError::Malformed { data_type, source }
}

fn unexpected(data_type: DataType, found: Type) -> ValueError {
    ValueError::UnexpectedItem {
        data_type,
        found: found.to_string(),
    }
}

fn finish(data_type: DataType, bytes: &[u8], end: usize) -> Result<(), ValueError> {
    match bytes.len().saturating_sub(end) {
        0 => Ok(()),
        len => Err(ValueError::TrailingBytes { data_type, len }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or_default())
            .collect()
    }

    #[test]
    fn definite_and_indefinite_containers_and_every_float_width_decode() {
        let expected = serde_json::json!([1, "x", {"y": -2.5}]);
        for encoded in [
            "9f016178bf6179fbc004000000000000ffff", // JS
            "9f016178bf6179f9c100ffff",             // PY, half float
            "83016178a16179fac0200000",             // definite, single float
        ] {
            assert_eq!(
                decode_json_value(&hex(encoded)).ok(),
                Some(expected.clone()),
                "{encoded}"
            );
        }
    }

    #[test]
    fn json_is_one_item_with_text_keys() {
        assert!(matches!(
            decode_json_value(&hex("f600")),
            Err(ValueError::TrailingBytes { len: 1, .. })
        ));
        assert!(matches!(decode_json_value(&[]), Err(ValueError::Empty { .. })));
        // {1: 2}: an integer key is not JSON.
        assert!(matches!(
            decode_json_value(&hex("a10102")),
            Err(ValueError::NonTextKey { .. })
        ));
        // A count larger than the input fails; it is not cut to what is there.
        assert!(matches!(
            decode_json_value(&hex("9bffffffffffffffff01")),
            Err(ValueError::Malformed { .. })
        ));
        assert!(decode_json_value(&hex("bf6161")).is_err());
        // A tag is not JSON; NaN is null, as serde_json has it.
        assert!(matches!(
            decode_json_value(&hex("c101")),
            Err(ValueError::UnexpectedItem { .. })
        ));
        assert_eq!(
            decode_json_value(&hex("f97e00")).ok(),
            Some(serde_json::Value::Null)
        );
        // A byte string is not JSON either.
        assert!(decode_json_value(&hex("4101")).is_err());
    }

    #[test]
    fn deep_nesting_is_refused_without_recursion() {
        let mut deep = vec![0x81u8; 100_000];
        deep.push(0x01);
        assert!(matches!(
            decode_json_value(&deep),
            Err(ValueError::TooDeep { limit: MAX_NESTING })
        ));
        let mut indefinite = vec![0x9fu8; 50_000];
        indefinite.extend(std::iter::repeat_n(0xffu8, 50_000));
        assert!(matches!(
            decode_json_value(&indefinite),
            Err(ValueError::TooDeep { .. })
        ));
        // Exactly the limit is fine.
        let mut ok = vec![0x81u8; MAX_NESTING];
        ok.push(0x01);
        let value = decode_json_value(&ok);
        assert!(value.is_ok(), "{value:?}");
    }

    #[test]
    fn an_integer_fills_a_float_field_as_with_serde_json() {
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct Price {
            price: f64,
        }
        // {"price": 100}
        assert_eq!(
            decode_json::<Price>(&hex("a16570726963651864")).ok(),
            Some(Price { price: 100.0 })
        );
    }

    #[test]
    fn scalars_decode_every_encoding_and_null() {
        assert_eq!(
            decode_string(&hex("6548656c6c6f")).ok(),
            Some(Some("Hello".to_owned()))
        );
        assert_eq!(
            decode_string(&hex("7f624865636c6c6fff")).ok(),
            Some(Some("Hello".to_owned()))
        );
        assert_eq!(decode_string(&hex("f6")).ok(), Some(None));
        assert_eq!(
            decode_int64(&hex("1b7fffffffffffffff")).ok(),
            Some(Some(i64::MAX))
        );
        assert_eq!(decode_int64(&hex("20")).ok(), Some(Some(-1)));
        assert!(matches!(
            decode_int64(&hex("1bffffffffffffffff")),
            Err(ValueError::OutOfRange { .. })
        ));
        assert!(matches!(
            decode_int64(&hex("f93e00")),
            Err(ValueError::UnexpectedItem { .. })
        ));
        assert_eq!(decode_double(&hex("f93e00")).ok(), Some(Some(1.5)));
        assert_eq!(decode_double(&hex("fa3fc00000")).ok(), Some(Some(1.5)));
        assert_eq!(decode_double(&hex("fb3ff8000000000000")).ok(), Some(Some(1.5)));
        assert_eq!(decode_double(&hex("1864")).ok(), Some(Some(100.0)));
        assert_eq!(decode_double(&hex("f6")).ok(), Some(None));
        assert!(matches!(
            decode_double(&hex("fb3ff8")),
            Err(ValueError::Malformed { .. })
        ));
    }

    #[test]
    fn encoders_write_shortest_integers_and_eight_byte_floats() {
        assert_eq!(encode_int64(42), hex("182a"));
        assert_eq!(encode_int64(i64::MIN), hex("3b7fffffffffffffff"));
        assert_eq!(encode_double(1.5), hex("fb3ff8000000000000"));
        assert_eq!(encode_string("héllo"), hex("6668c3a96c6c6f"));
        assert_eq!(
            encode_json(&serde_json::json!({"a": null})).ok(),
            Some(hex("a16161f6"))
        );
        assert_eq!(encode_json(&()).ok(), Some(vec![NULL]));
    }

    proptest! {
        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_json_value(&bytes);
            let _ = decode_string(&bytes);
            let _ = decode_int64(&bytes);
            let _ = decode_double(&bytes);
        }

        #[test]
        fn scalars_round_trip(s in ".*", i: i64, f: f64) {
            prop_assert_eq!(decode_string(&encode_string(&s)).ok(), Some(Some(s.clone())));
            prop_assert_eq!(decode_int64(&encode_int64(i)).ok(), Some(Some(i)));
            let back = decode_double(&encode_double(f)).ok().flatten();
            prop_assert!(back.is_some_and(|b| b.to_bits() == f.to_bits()));
        }
    }
}
