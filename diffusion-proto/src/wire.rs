//! Primitive wire encodings of SPEC §4.3: varints (two's complement at field width, not
//! zig-zag), length-prefixed strings and bytes, booleans, collections and maps.
//!
//! [`Reader`] borrows its input and checks every read; a length is compared with what is
//! left before anything is allocated, so no input can make it panic or allocate unboundedly.

use bytes::{BufMut, BytesMut};

/// Why a primitive could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The input ended inside a value.
    #[error("input ended early: {needed} more byte(s) needed, {remaining} left")]
    UnexpectedEnd {
        /// Bytes the value needed.
        needed: usize,
        /// Bytes that were left.
        remaining: usize,
    },
    /// A varint still had its continuation bit set after the widest legal length.
    #[error("malformed varint: continuation bit set after {max_bytes} bytes")]
    MalformedVarint {
        /// 5 for an int32, 10 for an int64.
        max_bytes: usize,
    },
    /// A length or count was negative.
    #[error("negative length {0}")]
    NegativeLength(i64),
    /// A string was not valid UTF-8.
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    /// A boolean byte was neither 0 nor 1.
    #[error("boolean byte {0:#04x} is neither 0 nor 1")]
    InvalidBoolean(u8),
}

/// A bounds-checked cursor over borrowed bytes.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    input: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader positioned at the start of `input`.
    pub fn new(input: &'a [u8]) -> Self {
        Reader { input }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.input.len()
    }

    /// True when everything has been read.
    pub fn is_empty(&self) -> bool {
        self.input.is_empty()
    }

    /// Everything not yet read, consuming it.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.input)
    }

    /// Exactly `n` raw bytes.
    pub fn raw(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.input.len() {
            return Err(WireError::UnexpectedEnd {
                needed: n,
                remaining: self.input.len(),
            });
        }
        let (head, tail) = self.input.split_at(n);
        self.input = tail;
        Ok(head)
    }

    /// Exactly `N` raw bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.raw(N)?);
        Ok(out)
    }

    /// One raw byte.
    pub fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.array::<1>()?[0])
    }

    /// A boolean byte: `00` or `01`.
    pub fn boolean(&mut self) -> Result<bool, WireError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(WireError::InvalidBoolean(other)),
        }
    }

    /// A fixed-width big-endian u32.
    pub fn u32_be(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// A fixed-width big-endian i32.
    pub fn i32_be(&mut self) -> Result<i32, WireError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    /// A fixed-width big-endian u64.
    pub fn u64_be(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// A fixed-width big-endian i64.
    pub fn i64_be(&mut self) -> Result<i64, WireError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn varint(&mut self, max_bytes: usize) -> Result<u64, WireError> {
        let mut value: u64 = 0;
        for i in 0..max_bytes {
            let byte = self.u8()?;
            // Bits past the field width are dropped: a 5-byte int32 wraps, as both clients do.
            value |= u64::from(byte & 0x7f).wrapping_shl(7 * i as u32);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(WireError::MalformedVarint { max_bytes })
    }

    /// A varint int32 (at most 5 bytes; the bit pattern wraps to 32 bits).
    pub fn varint_i32(&mut self) -> Result<i32, WireError> {
        Ok(self.varint(5)? as u32 as i32)
    }

    /// A varint int64 (at most 10 bytes).
    pub fn varint_i64(&mut self) -> Result<i64, WireError> {
        Ok(self.varint(10)? as i64)
    }

    /// A varint int32 used as a length or count, checked to be non-negative.
    pub fn length(&mut self) -> Result<usize, WireError> {
        let n = self.varint_i32()?;
        usize::try_from(n).map_err(|_| WireError::NegativeLength(n.into()))
    }

    /// A length-prefixed byte array, borrowed.
    pub fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let n = self.length()?;
        self.raw(n)
    }

    /// A length-prefixed UTF-8 string, borrowed.
    pub fn string(&mut self) -> Result<&'a str, WireError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| WireError::InvalidUtf8)
    }

    /// A count-prefixed collection, each element read by `element`.
    ///
    /// Every element takes at least one byte, so a count larger than what is left is
    /// refused before the vector is allocated.
    pub fn collection<T>(
        &mut self,
        mut element: impl FnMut(&mut Self) -> Result<T, WireError>,
    ) -> Result<Vec<T>, WireError> {
        let n = self.length()?;
        if n > self.remaining() {
            return Err(WireError::UnexpectedEnd {
                needed: n,
                remaining: self.remaining(),
            });
        }
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(element(self)?);
        }
        Ok(out)
    }

    /// A map of strings to strings, in wire order.
    pub fn string_map(&mut self) -> Result<Vec<(String, String)>, WireError> {
        self.collection(|r| Ok((r.string()?.to_owned(), r.string()?.to_owned())))
    }
}

/// Appends a varint int32: a negative value takes 5 bytes (two's complement at 32 bits).
pub fn put_varint_i32(out: &mut BytesMut, value: i32) {
    put_varint(out, u64::from(value as u32));
}

/// Appends a varint int64: a negative value takes 10 bytes.
pub fn put_varint_i64(out: &mut BytesMut, value: i64) {
    put_varint(out, value as u64);
}

fn put_varint(out: &mut BytesMut, mut value: u64) {
    while value >= 0x80 {
        out.put_u8((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.put_u8(value as u8);
}

/// The encoded size of a varint int32.
pub fn varint_i32_len(value: i32) -> usize {
    varint_len(u64::from(value as u32))
}

/// The encoded size of a varint int64.
pub fn varint_i64_len(value: i64) -> usize {
    varint_len(value as u64)
}

fn varint_len(value: u64) -> usize {
    let bits = 64 - value.leading_zeros() as usize;
    bits.max(1).div_ceil(7)
}

/// Appends a length-prefixed byte array.
///
/// # Panics
/// If `bytes` is longer than `i32::MAX`, which no message of this protocol can be.
pub fn put_bytes(out: &mut BytesMut, bytes: &[u8]) {
    put_length(out, bytes.len());
    out.put_slice(bytes);
}

/// Appends a length-prefixed UTF-8 string.
pub fn put_string(out: &mut BytesMut, s: &str) {
    put_bytes(out, s.as_bytes());
}

/// Appends a boolean byte.
pub fn put_bool(out: &mut BytesMut, value: bool) {
    out.put_u8(u8::from(value));
}

/// Appends a length or count as a varint int32.
pub fn put_length(out: &mut BytesMut, len: usize) {
    // Lengths come from values held in memory; clamp rather than panic, and the
    // frame-size limits of the session refuse such a message long before.
    put_varint_i32(out, i32::try_from(len).unwrap_or(i32::MAX));
}

/// Appends a map of strings to strings in the given order.
pub fn put_string_map<'k>(out: &mut BytesMut, entries: impl ExactSizeIterator<Item = (&'k str, &'k str)>) {
    put_length(out, entries.len());
    for (k, v) in entries {
        put_string(out, k);
        put_string(out, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn enc_i32(v: i32) -> Vec<u8> {
        let mut b = BytesMut::new();
        put_varint_i32(&mut b, v);
        b.to_vec()
    }

    #[test]
    fn negative_int32_is_five_bytes_and_int64_ten() {
        assert_eq!(enc_i32(-1), [0xff, 0xff, 0xff, 0xff, 0x0f]);
        let mut b = BytesMut::new();
        put_varint_i64(&mut b, -1);
        assert_eq!(b.len(), 10);
    }

    #[test]
    fn overlong_varint_is_malformed() {
        let mut r = Reader::new(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01]);
        assert_eq!(r.varint_i32(), Err(WireError::MalformedVarint { max_bytes: 5 }));
    }

    #[test]
    fn huge_length_is_refused_before_allocation() {
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff, 0x07, 0x00]);
        assert!(matches!(r.bytes(), Err(WireError::UnexpectedEnd { .. })));
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff, 0x07]);
        assert!(matches!(
            r.collection(|r| r.u8()),
            Err(WireError::UnexpectedEnd { .. })
        ));
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(r.bytes(), Err(WireError::NegativeLength(-1)));
    }

    proptest! {
        #[test]
        fn varint_i32_round_trips(v: i32) {
            let mut b = BytesMut::new();
            put_varint_i32(&mut b, v);
            prop_assert_eq!(b.len(), varint_i32_len(v));
            let mut r = Reader::new(&b);
            prop_assert_eq!(r.varint_i32(), Ok(v));
            prop_assert!(r.is_empty());
        }

        #[test]
        fn varint_i64_round_trips(v: i64) {
            let mut b = BytesMut::new();
            put_varint_i64(&mut b, v);
            prop_assert_eq!(b.len(), varint_i64_len(v));
            let mut r = Reader::new(&b);
            prop_assert_eq!(r.varint_i64(), Ok(v));
            prop_assert!(r.is_empty());
        }

        #[test]
        fn string_bytes_bool_map_round_trip(s in ".*", raw in proptest::collection::vec(any::<u8>(), 0..64), flag: bool,
                                            map in proptest::collection::vec(("[a-z]{0,4}", ".{0,4}"), 0..5)) {
            let mut b = BytesMut::new();
            put_string(&mut b, &s);
            put_bytes(&mut b, &raw);
            put_bool(&mut b, flag);
            put_string_map(&mut b, map.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            let mut r = Reader::new(&b);
            prop_assert_eq!(r.string(), Ok(s.as_str()));
            prop_assert_eq!(r.bytes(), Ok(raw.as_slice()));
            prop_assert_eq!(r.boolean(), Ok(flag));
            prop_assert_eq!(r.string_map(), Ok(map.clone()));
            prop_assert!(r.is_empty());
        }

        #[test]
        fn any_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..32)) {
            let _ = Reader::new(&input).varint_i32();
            let _ = Reader::new(&input).varint_i64();
            let _ = Reader::new(&input).string();
            let _ = Reader::new(&input).bytes();
            let _ = Reader::new(&input).boolean();
            let _ = Reader::new(&input).string_map();
            let _ = Reader::new(&input).collection(|r| r.string().map(str::to_owned));
            let _ = Reader::new(&input).i64_be();
        }
    }
}
