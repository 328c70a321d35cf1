//! `varint.json` and `primitives.json` against `diffusion_proto::wire` and `SessionId`.

use bytes::BytesMut;
use diffusion_proto::wire::{
    self, put_bool, put_bytes, put_string, put_string_map, put_varint_i32, put_varint_i64, Reader, WireError,
};
use diffusion_proto::{Credentials, SessionId};

use crate::json::{load, unhex};

fn encoded(f: impl FnOnce(&mut BytesMut)) -> String {
    let mut b = BytesMut::new();
    f(&mut b);
    hex::encode(&b)
}

#[test]
fn varint_encodings_both_ways() {
    let doc = load("varint.json");
    let root = doc.root();
    let mut checked = 0;

    for e in root.get("int32").arr() {
        let value: i32 = e.get("value").int();
        let hex = e.get("hex").str();
        assert_eq!(e.get("width").int::<u32>(), 32, "{}", e.path);
        assert!(e.get("agree").bool(), "{}", e.path);
        assert_eq!(e.get("python_hex").str(), hex, "{}", e.path);
        assert_eq!(e.get("js_hex").str(), hex, "{}", e.path);
        assert_eq!(encoded(|b| put_varint_i32(b, value)), hex, "{}", e.path);
        assert_eq!(wire::varint_i32_len(value) * 2, hex.len(), "{}", e.path);
        let bytes = unhex(hex);
        let mut r = Reader::new(&bytes);
        assert_eq!(r.varint_i32(), Ok(value), "{}", e.path);
        assert!(r.is_empty(), "{}: bytes left over", e.path);
        if value < 0 {
            assert_eq!(bytes.len(), 5, "{}: a negative int32 is 5 bytes", e.path);
        }
        checked += 1;
    }

    for e in root.get("int64").arr() {
        let value: i64 = e.get("value").int();
        let hex = e.get("hex").str();
        assert_eq!(e.get("width").int::<u32>(), 64, "{}", e.path);
        assert!(e.get("agree").bool(), "{}", e.path);
        assert_eq!(e.get("python_hex").str(), hex, "{}", e.path);
        assert_eq!(e.get("js_hex").str(), hex, "{}", e.path);
        assert_eq!(encoded(|b| put_varint_i64(b, value)), hex, "{}", e.path);
        assert_eq!(wire::varint_i64_len(value) * 2, hex.len(), "{}", e.path);
        let bytes = unhex(hex);
        let mut r = Reader::new(&bytes);
        assert_eq!(r.varint_i64(), Ok(value), "{}", e.path);
        assert!(r.is_empty(), "{}: bytes left over", e.path);
        if value < 0 {
            assert_eq!(bytes.len(), 10, "{}: a negative int64 is 10 bytes", e.path);
        }
        checked += 1;
    }
    assert_eq!(checked, 24);
}

#[test]
fn varint_decode_cases_and_limits() {
    let doc = load("varint.json");
    let root = doc.root();
    let mut checked = 0;

    for e in root.get("decode").arr() {
        let bytes = unhex(e.get("hex").str());
        let as64 = e.get("as_int64");
        let mut r = Reader::new(&bytes);
        if as64.is_null() {
            assert!(r.varint_i64().is_err(), "{}: must not decode as int64", e.path);
        } else {
            assert_eq!(r.varint_i64(), Ok(as64.int::<i64>()), "{}", e.path);
            assert!(r.is_empty(), "{}", e.path);
        }
        let as32 = e.get("as_int32");
        let mut r = Reader::new(&bytes);
        if as32.is_null() {
            // Longer than 5 bytes: still continuing after the widest int32.
            assert_eq!(
                r.varint_i32(),
                Err(WireError::MalformedVarint { max_bytes: 5 }),
                "{}",
                e.path
            );
        } else {
            assert_eq!(r.varint_i32(), Ok(as32.int::<i32>()), "{}", e.path);
            assert!(r.is_empty(), "{}", e.path);
        }
        checked += 1;
    }
    assert_eq!(checked, 6);

    // decoder_limits: at most 5 groups for int32 and 10 for int64, then "malformed".
    let limits = root.get("decoder_limits").str();
    assert!(
        limits.contains("5 for int32, 10 for int64"),
        "decoder_limits changed: {limits}"
    );
    let mut too_long_32 = vec![0x80u8; 5];
    too_long_32.push(0x01);
    assert_eq!(
        Reader::new(&too_long_32).varint_i32(),
        Err(WireError::MalformedVarint { max_bytes: 5 })
    );
    let mut too_long_64 = vec![0x80u8; 10];
    too_long_64.push(0x01);
    assert_eq!(
        Reader::new(&too_long_64).varint_i64(),
        Err(WireError::MalformedVarint { max_bytes: 10 })
    );
    // The widest legal forms are accepted, and a varint cut short is an error, not a value.
    assert_eq!(Reader::new(&[0x80, 0x80, 0x80, 0x80, 0x00]).varint_i32(), Ok(0));
    assert!(matches!(
        Reader::new(&[0x80]).varint_i32(),
        Err(WireError::UnexpectedEnd { .. })
    ));
    assert!(matches!(
        Reader::new(&[0xff, 0xff]).varint_i64(),
        Err(WireError::UnexpectedEnd { .. })
    ));
}

/// The Python "Byte" is written with the varint routine; our enum bytes (booleans, the
/// credentials type) are one raw byte. They agree for 0..=127, the only values in use.
#[test]
fn python_byte_quirk() {
    let doc = load("varint.json");
    let quirk = doc.root().get("python_byte_quirk");
    let mut checked = 0;
    for e in quirk.get("examples").arr() {
        let value: i64 = e.get("value").int();
        let hex = e.get("hex").str();
        // PY's routine is our varint applied to the byte's unsigned value.
        let as_byte = value as u8;
        assert_eq!(
            encoded(|b| put_varint_i32(b, i32::from(as_byte))),
            hex,
            "{}",
            e.path
        );
        let py_bytes = unhex(hex);
        assert_eq!(
            Reader::new(&py_bytes).varint_i32(),
            Ok(i32::from(as_byte)),
            "{}",
            e.path
        );
        if (0..=127).contains(&value) {
            // Identical to the single raw byte we write and read.
            assert_eq!(py_bytes, [as_byte], "{}", e.path);
            assert_eq!(Reader::new(&py_bytes).u8(), Ok(as_byte), "{}", e.path);
            if value <= 1 {
                assert_eq!(encoded(|b| put_bool(b, value == 1)), hex, "{}", e.path);
            }
            let creds = match value {
                0 => Some(Credentials::None),
                1 => Some(Credentials::password("x")),
                2 => Some(Credentials::custom(*b"x")),
                _ => None,
            };
            if let Some(creds) = creds {
                assert_eq!(creds.type_byte(), as_byte, "{}", e.path);
                let mut raw = BytesMut::new();
                creds.encode_raw(&mut raw);
                assert_eq!(raw[0], as_byte, "{}", e.path);
            }
        } else {
            // Two bytes in PY's form; these values never occur at session level.
            assert_eq!(py_bytes.len(), 2, "{}", e.path);
        }
        checked += 1;
    }
    assert_eq!(checked, 6);
}

/// `'x' * 200` in a vector means the Python expression.
fn python_repeat(value: &str) -> String {
    if let Some((lit, n)) = value.split_once(" * ") {
        if let (Some(s), Ok(n)) = (
            lit.strip_prefix('\'').and_then(|l| l.strip_suffix('\'')),
            n.parse::<usize>(),
        ) {
            return s.repeat(n);
        }
    }
    value.to_owned()
}

#[test]
fn primitives() {
    let doc = load("primitives.json");
    let root = doc.root();
    let mut checked = 0;

    for e in root.get("string").get("examples").arr() {
        let value = python_repeat(e.get("value").str());
        let hex = e.get("hex").str();
        assert!(e.get("agree").bool(), "{}", e.path);
        assert_eq!(encoded(|b| put_string(b, &value)), hex, "{}", e.path);
        let bytes = unhex(hex);
        let mut r = Reader::new(&bytes);
        assert_eq!(r.string(), Ok(value.as_str()), "{}", e.path);
        assert!(r.is_empty(), "{}", e.path);
        checked += 1;
    }
    assert_eq!(
        python_repeat("'x' * 200").len(),
        200,
        "the 200-byte string needs a 2-byte length"
    );

    for e in root.get("bytes").get("examples").arr() {
        let value = unhex(e.get("value_hex").str());
        let hex = e.get("hex").str();
        assert_eq!(encoded(|b| put_bytes(b, &value)), hex, "{}", e.path);
        let bytes = unhex(hex);
        let mut r = Reader::new(&bytes);
        assert_eq!(r.bytes(), Ok(value.as_slice()), "{}", e.path);
        assert!(r.is_empty(), "{}", e.path);
        checked += 1;
    }

    for e in root.get("boolean").get("examples").arr() {
        let value = e.get("value").bool();
        let hex = e.get("hex").str();
        assert_eq!(encoded(|b| put_bool(b, value)), hex, "{}", e.path);
        assert_eq!(Reader::new(&unhex(hex)).boolean(), Ok(value), "{}", e.path);
        checked += 1;
    }
    // We read booleans strictly, as the Python client asserts 0/1 (JS takes non-zero as true).
    assert_eq!(Reader::new(&[0x02]).boolean(), Err(WireError::InvalidBoolean(2)));

    let set = root.get("collection").get("example_string_set");
    let items: Vec<&str> = set.get("value").arr().iter().map(|v| v.str()).collect();
    let hex = set.get("hex").str();
    let enc = encoded(|b| {
        wire::put_length(b, items.len());
        for s in &items {
            put_string(b, s);
        }
    });
    assert_eq!(enc, hex, "{}", set.path);
    let bytes = unhex(hex);
    let mut r = Reader::new(&bytes);
    let read = r.collection(|r| r.string().map(str::to_owned));
    assert_eq!(
        read,
        Ok(items.iter().map(|s| (*s).to_owned()).collect()),
        "{}",
        set.path
    );
    assert!(r.is_empty());
    checked += 1;

    let map = root.get("map").get("example");
    let pairs = map.get("value").string_pairs();
    let hex = map.get("hex").str();
    assert_eq!(
        encoded(|b| put_string_map(b, pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))),
        hex,
        "{}",
        map.path
    );
    let bytes = unhex(hex);
    let mut r = Reader::new(&bytes);
    assert_eq!(r.string_map(), Ok(pairs), "{}", map.path);
    assert!(r.is_empty());
    checked += 1;

    for e in root.get("session_id_text").get("examples").arr() {
        let (server, value) = if let Some(words) = e.opt("words_hex") {
            let w = words.arr();
            let word = |i: usize| {
                u64::from_str_radix(w[i].str(), 16).unwrap_or_else(|_| panic!("{}: bad word", e.path))
            };
            (word(0), word(1))
        } else {
            let w = e.get("words").arr();
            // Signed words are the same 64 bits shown unsigned.
            (w[0].int::<i64>() as u64, w[1].int::<i64>() as u64)
        };
        let id = SessionId { server, value };
        let text = e.get("text").str();
        assert_eq!(id.to_string(), text, "{}", e.path);
        assert_eq!(text.parse::<SessionId>(), Ok(id), "{}", e.path);
        checked += 1;
    }

    // Fixed-width fields: big-endian, as the readers take them.
    let rule = root.get("fixed_width_fields").get("rule").str();
    assert!(rule.contains("big-endian"), "{rule}");
    let mut r = Reader::new(&[0, 0, 0, 0, 0, 1, 0x5f, 0x90, 0, 0, 2, 9]);
    assert_eq!(r.i64_be(), Ok(90_000));
    assert_eq!(r.i32_be(), Ok(521));

    assert_eq!(checked, 14);
}
