//! Binary deltas (TOPICS.md §3.6): a script of CBOR items that builds a new value from the
//! old value's encoded bytes — a byte string inserts, a pair of unsigned integers copies a
//! span of the old bytes; the single byte `f6` means "no change".
//!
//! Both functions work on encoded values; they never decode the values themselves.

use minicbor::data::Type;
use minicbor::{Decoder, Encoder};

use super::cbor::NULL;

/// Why a delta could not be applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeltaError {
    /// The delta is not a sequence of CBOR items.
    #[error("delta is not well-formed CBOR at byte {offset}: {source}")]
    Malformed {
        /// Where the bad item starts.
        offset: usize,
        /// What the CBOR decoder found.
        #[source]
        source: minicbor::decode::Error,
    },
    /// An item is neither a byte string nor an unsigned integer.
    #[error("delta item at byte {offset} is a CBOR {found}, not a byte string or an unsigned integer")]
    UnexpectedItem {
        /// Where the item starts.
        offset: usize,
        /// The kind of item found.
        found: String,
    },
    /// A copy had its start but no length.
    #[error("delta ends after a copy's start, without its length")]
    MissingLength,
    /// A copy reaches past the old value.
    #[error("delta copies {length} byte(s) from {start} of a {old_len}-byte value")]
    CopyOutOfRange {
        /// The copy's start.
        start: u64,
        /// The copy's length.
        length: u64,
        /// The old value's length.
        old_len: usize,
    },
    /// The new value would exceed the caller's limit.
    #[error("delta builds a value larger than the {limit}-byte limit")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
}

/// Applies a binary delta to the old value's encoded bytes, giving the new value's bytes.
///
/// `f6` alone means "no change" and gives `old` back. Any other delta, one byte long or
/// not, is read as a script: the JavaScript client treats *every* one-byte delta as no
/// change, but no other one-byte script is ambiguous (`40` makes the value empty), and the
/// Python client reads them as scripts too. `max_len` bounds the result: a hostile delta of
/// many large copies fails with [`DeltaError::TooLarge`] before allocating past it.
///
/// ```
/// use diffusion_proto::apply_delta;
/// // STRING "hello world" → "hello brave world", as both official clients diff it.
/// let old = b"\x6bhello world";
/// let delta = b"\x41\x71\x01\x05\x46 brave\x06\x06";
/// assert_eq!(apply_delta(old, delta, 1 << 20)?, b"\x71hello brave world");
/// assert_eq!(apply_delta(old, &[0xf6], 1 << 20)?, old);
/// # Ok::<(), diffusion_proto::DeltaError>(())
/// ```
pub fn apply_delta(old: &[u8], delta: &[u8], max_len: usize) -> Result<Vec<u8>, DeltaError> {
    if delta == [NULL] {
        return if old.len() > max_len {
            Err(DeltaError::TooLarge { limit: max_len })
        } else {
            Ok(old.to_vec())
        };
    }
    let mut out = Vec::with_capacity((old.len() + delta.len()).min(max_len));
    let mut append = |bytes: &[u8]| {
        if out.len() + bytes.len() > max_len {
            return Err(DeltaError::TooLarge { limit: max_len });
        }
        out.extend_from_slice(bytes);
        Ok(())
    };
    let mut d = Decoder::new(delta);
    while d.position() < delta.len() {
        let offset = d.position();
        let malformed = |source| DeltaError::Malformed { offset, source };
        match d.datatype().map_err(malformed)? {
            Type::Bytes => append(d.bytes().map_err(malformed)?)?,
            Type::BytesIndef => {
                for chunk in d.bytes_iter().map_err(malformed)? {
                    append(chunk.map_err(malformed)?)?;
                }
            }
            Type::U8 | Type::U16 | Type::U32 | Type::U64 => {
                let start = d.u64().map_err(malformed)?;
                if d.position() == delta.len() {
                    return Err(DeltaError::MissingLength);
                }
                let length_offset = d.position();
                let length = match d.datatype() {
                    Ok(Type::U8 | Type::U16 | Type::U32 | Type::U64) => d.u64().map_err(malformed)?,
                    Ok(other) => {
                        return Err(DeltaError::UnexpectedItem {
                            offset: length_offset,
                            found: other.to_string(),
                        })
                    }
                    Err(source) => {
                        return Err(DeltaError::Malformed {
                            offset: length_offset,
                            source,
                        })
                    }
                };
                let span = usize::try_from(start)
                    .ok()
                    .zip(usize::try_from(length).ok())
                    .and_then(|(s, l)| Some(s..s.checked_add(l)?))
                    .and_then(|range| old.get(range));
                match span {
                    Some(span) => append(span)?,
                    None => {
                        return Err(DeltaError::CopyOutOfRange {
                            start,
                            length,
                            old_len: old.len(),
                        })
                    }
                }
            }
            other => {
                return Err(DeltaError::UnexpectedItem {
                    offset,
                    found: other.to_string(),
                })
            }
        }
    }
    Ok(out)
}

/// A binary delta from `old` to `new` (both encoded), or `None` when sending `new` itself
/// is as short or shorter — and always `None` when the value did not change: the caller
/// then sends nothing. Never the no-change delta `f6`, which the Python client would apply
/// as an empty value.
///
/// The script keeps the longest common prefix and suffix and inserts what lies between;
/// both official clients apply such scripts (TOPICS §3.6).
///
/// ```
/// use diffusion_proto::{apply_delta, produce_delta};
/// let old = b"\xbf\x61\x61\x01\x61\x62\x9f\xf5\xf6\xff\xff"; // {"a":1,"b":[true,null]}
/// let new = b"\xbf\x61\x61\x02\x61\x62\x9f\xf5\xf6\xff\xff"; // {"a":2,"b":[true,null]}
/// let delta = produce_delta(old, new).expect("shorter than the value");
/// assert_eq!(delta, [0x00, 0x03, 0x41, 0x02, 0x04, 0x07]);
/// assert_eq!(apply_delta(old, &delta, 1024)?, new);
/// assert_eq!(produce_delta(old, old), None);
/// # Ok::<(), diffusion_proto::DeltaError>(())
/// ```
pub fn produce_delta(old: &[u8], new: &[u8]) -> Option<Vec<u8>> {
    let mut delta = Vec::new();
    append_delta(old, new, &mut delta).then_some(delta)
}

/// [`produce_delta`] written after what `out` holds (a frame's header, so a server builds a
/// TOPIC_DELTA frame in one allocation): true when a delta was appended; false, with `out`
/// as it was, when the value is unchanged or the delta would not be shorter than `new`.
pub(crate) fn append_delta(old: &[u8], new: &[u8], out: &mut Vec<u8>) -> bool {
    if old == new {
        return false;
    }
    let start = out.len();
    out.reserve(new.len());
    let prefix = old.iter().zip(new).take_while(|(a, b)| a == b).count();
    let suffix = old[prefix..]
        .iter()
        .rev()
        .zip(new[prefix..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let inserted = &new[prefix..new.len() - suffix];
    let mut e = Encoder::new(&mut *out);
    // Writing to a Vec cannot fail.
    if prefix > 0 {
        let _ = e.u64(0).and_then(|e| e.u64(prefix as u64));
    }
    if !inserted.is_empty() {
        let _ = e.bytes(inserted);
    }
    if suffix > 0 {
        let _ = e
            .u64((old.len() - suffix) as u64)
            .and_then(|e| e.u64(suffix as u64));
    }
    // An empty script (new is empty) is never shorter than the value, so never kept.
    if out.len() - start < new.len() {
        true
    } else {
        out.truncate(start);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LIMIT: usize = 1 << 20;

    #[test]
    fn official_examples_apply() {
        let cases: [(&[u8], &[u8], &[u8]); 3] = [
            (b"\x63abc", b"\x44\x63xyz", b"\x63xyz"),
            (
                &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
                &[0x00, 0x05, 0x41, 0xff, 0x06, 0x04],
                &[0, 1, 2, 3, 4, 0xff, 6, 7, 8, 9],
            ),
            (b"\x64same", &[0xf6], b"\x64same"),
        ];
        for (old, delta, new) in cases {
            assert_eq!(apply_delta(old, delta, LIMIT).ok().as_deref(), Some(new));
        }
    }

    #[test]
    fn one_byte_scripts_other_than_f6_are_scripts() {
        assert_eq!(apply_delta(b"abc", &[0x40], LIMIT).ok(), Some(vec![]));
        assert!(matches!(
            apply_delta(b"abc", &[0x00], LIMIT),
            Err(DeltaError::MissingLength)
        ));
        // An empty script builds an empty value.
        assert_eq!(apply_delta(b"abc", &[], LIMIT).ok(), Some(vec![]));
    }

    #[test]
    fn bad_scripts_fail_with_what_is_wrong() {
        assert!(matches!(
            apply_delta(b"abc", &[0x01, 0x05], LIMIT),
            Err(DeltaError::CopyOutOfRange {
                start: 1,
                length: 5,
                old_len: 3
            })
        ));
        assert!(matches!(
            apply_delta(
                b"abc",
                &[0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
                LIMIT
            ),
            Err(DeltaError::CopyOutOfRange { .. })
        ));
        assert!(matches!(
            apply_delta(b"abc", &[0x20], LIMIT),
            Err(DeltaError::UnexpectedItem { offset: 0, .. })
        ));
        assert!(matches!(
            apply_delta(b"abc", &[0x00, 0x61, 0x61], LIMIT),
            Err(DeltaError::UnexpectedItem { offset: 1, .. })
        ));
        assert!(matches!(
            apply_delta(b"abc", &[0x45, 0x01], LIMIT),
            Err(DeltaError::Malformed { offset: 0, .. })
        ));
        // f6 inside a longer script is not "no change".
        assert!(matches!(
            apply_delta(b"abc", &[0x40, 0xf6], LIMIT),
            Err(DeltaError::UnexpectedItem { offset: 1, .. })
        ));
    }

    #[test]
    fn many_copies_cannot_grow_past_the_limit() {
        let old = vec![7u8; 1000];
        // 10 000 copies of the whole old value would be 10 MB.
        let delta: Vec<u8> = std::iter::repeat_n([0x00, 0x19, 0x03, 0xe8], 10_000)
            .flatten()
            .collect();
        assert!(matches!(
            apply_delta(&old, &delta, 64 * 1024),
            Err(DeltaError::TooLarge { limit: 65536 })
        ));
        assert!(matches!(
            apply_delta(&old, &[0xf6], 10),
            Err(DeltaError::TooLarge { limit: 10 })
        ));
    }

    #[test]
    fn produced_scripts_are_shorter_and_never_no_change() {
        assert_eq!(produce_delta(b"same", b"same"), None);
        assert_eq!(produce_delta(b"abc", b""), None);
        // Inserting everything is never shorter.
        assert_eq!(produce_delta(b"abc", b"xyz"), None);
        let old = b"\x6bhello world";
        let new = b"\x71hello brave world";
        // What the oracle sent LIVE and both clients applied.
        assert_eq!(
            produce_delta(old, new),
            Some(b"\x4c\x71hello brave\x06\x06".to_vec())
        );
    }

    proptest! {
        #[test]
        fn produced_deltas_apply(old in proptest::collection::vec(any::<u8>(), 0..64),
                                 new in proptest::collection::vec(any::<u8>(), 0..64)) {
            let delta = produce_delta(&old, &new);
            if old == new {
                prop_assert!(delta.is_none());
            }
            if let Some(delta) = delta {
                prop_assert!(delta.len() < new.len());
                prop_assert_ne!(&delta[..], &[NULL][..]);
                prop_assert_eq!(apply_delta(&old, &delta, LIMIT).ok(), Some(new));
            }
        }

        #[test]
        fn edits_of_long_values_give_deltas(old in proptest::collection::vec(any::<u8>(), 40..200),
                                            at in any::<prop::sample::Index>(), byte: u8) {
            let mut new = old.clone();
            let i = at.index(new.len());
            new[i] = new[i].wrapping_add(byte.max(1));
            let delta = produce_delta(&old, &new);
            prop_assert!(delta.is_some());
            prop_assert_eq!(apply_delta(&old, &delta.unwrap_or_default(), LIMIT).ok(), Some(new));
        }

        #[test]
        fn any_delta_applies_or_fails_within_the_limit(old in proptest::collection::vec(any::<u8>(), 0..32),
                                                       delta in proptest::collection::vec(any::<u8>(), 0..48)) {
            if let Ok(new) = apply_delta(&old, &delta, 256) {
                prop_assert!(new.len() <= 256);
            }
        }
    }
}
