//! Session properties proposed at connect time (SPEC §10): key validation, the quoted-list
//! `sp` form of the Python client, the JSON form of the JavaScript client, and one
//! tokenizer on the server side that reads both.

/// Why a session property was refused or an `sp` value could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PropertyError {
    /// The key is empty.
    #[error("session property key is empty")]
    EmptyKey,
    /// The key holds a character no session property key may hold.
    #[error("session property key {key:?} contains the disallowed character {ch:?}; keys may not contain space ( ) , \" ' tab, LF or CR")]
    DisallowedCharacter {
        /// The key as given.
        key: String,
        /// The first disallowed character.
        ch: char,
    },
    /// The key is a reserved `$` property that a client may not set.
    #[error("session property {key:?} is reserved; a client may set only $Country, $Language, $Latitude and $Longitude")]
    Reserved {
        /// The key as given.
        key: String,
    },
    /// A quoted token in an `sp` value was never closed.
    #[error("session properties: quote opened at byte {at} is never closed")]
    Unterminated {
        /// Byte offset of the opening quote.
        at: usize,
    },
    /// An `sp` value held a key without a value. The key is not quoted: an error about
    /// a connection parameter never holds any of its value.
    #[error("session properties: the key whose quote opens at byte {at} has no value")]
    MissingValue {
        /// Byte offset of the key's opening quote.
        at: usize,
    },
}

/// The fixed (`$`) properties a client may propose.
pub const CLIENT_SETTABLE_FIXED: [&str; 4] = ["$Country", "$Language", "$Latitude", "$Longitude"];

/// Checks a key as the Python client's validator does: non-empty, none of
/// space ( ) , " ' TAB LF CR. Backslash and non-ASCII are allowed.
pub fn validate_key(key: &str) -> Result<(), PropertyError> {
    if key.is_empty() {
        return Err(PropertyError::EmptyKey);
    }
    if key == "$" {
        return Err(PropertyError::Reserved { key: key.to_owned() });
    }
    if let Some(ch) = key
        .chars()
        .find(|c| matches!(c, ' ' | '(' | ')' | ',' | '"' | '\'' | '\t' | '\n' | '\r'))
    {
        return Err(PropertyError::DisallowedCharacter {
            key: key.to_owned(),
            ch,
        });
    }
    Ok(())
}

/// An ordered map of session property keys to values. Inserting an existing key replaces
/// its value in place, so the wire order is the order keys were first given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionProperties {
    entries: Vec<(String, String)>,
}

impl SessionProperties {
    /// No properties.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a property a client may propose: a valid user key, or one of
    /// [`CLIENT_SETTABLE_FIXED`].
    ///
    /// ```
    /// use diffusion_proto::{SessionProperties, PropertyError};
    /// let mut sp = SessionProperties::new();
    /// sp.insert("region", "eu").unwrap();
    /// assert!(matches!(sp.insert("x y", "1"), Err(PropertyError::DisallowedCharacter { ch: ' ', .. })));
    /// assert_eq!(sp.to_quoted_list(), r#""region","eu""#);
    /// ```
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) -> Result<(), PropertyError> {
        let key = key.into();
        validate_key(&key)?;
        if key.starts_with('$') && !CLIENT_SETTABLE_FIXED.contains(&key.as_str()) {
            return Err(PropertyError::Reserved { key });
        }
        self.set(key, value.into());
        Ok(())
    }

    /// Sets a property without validating the key: for what the library adds itself
    /// (`$Environment`) and for what a server decoded from a peer.
    pub fn set(&mut self, key: String, value: String) {
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => self.entries.push((key, value)),
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Entries in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of properties.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The Python client's `sp` form: each key and value escaped and double-quoted,
    /// joined with `,`; the empty map gives the empty string.
    pub fn to_quoted_list(&self) -> String {
        let mut out = String::new();
        for (i, item) in self.entries.iter().flat_map(|(k, v)| [k, v]).enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push('"');
            for ch in item.chars() {
                match ch {
                    '\\' => out.push_str("\\\\"),
                    '"' => out.push_str("\\\""),
                    '\'' => out.push_str("\\'"),
                    '\t' => out.push_str("\\t"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    c => out.push(c),
                }
            }
            out.push('"');
        }
        out
    }

    /// The JavaScript client's `sp` form: a JSON object of strings (before percent-encoding).
    pub fn to_json(&self) -> String {
        let mut out = String::from("{");
        for (i, (k, v)) in self.entries.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_json_string(&mut out, k);
            out.push(':');
            push_json_string(&mut out, v);
        }
        out.push('}');
        out
    }

    /// Reads an `sp` value in either form: everything outside quotes is skipped, a `"` or
    /// `'` opens a token that ends at the next unescaped identical quote, and tokens pair
    /// up as key, value. Unlike the Python decoder, an escaped backslash never escapes the
    /// quote after it. JSON `\uXXXX`, `\b`, `\f` and `\/` escapes are understood too.
    pub fn parse(sp: &str) -> Result<SessionProperties, PropertyError> {
        let mut tokens = Vec::new();
        let mut chars = sp.char_indices();
        while let Some((at, c)) = chars.next() {
            if c != '"' && c != '\'' {
                continue;
            }
            let mut token = String::new();
            let mut closed = false;
            while let Some((_, ch)) = chars.next() {
                if ch == c {
                    closed = true;
                    break;
                }
                if ch != '\\' {
                    token.push(ch);
                    continue;
                }
                match chars.next().map(|(_, e)| e) {
                    Some('t') => token.push('\t'),
                    Some('n') => token.push('\n'),
                    Some('r') => token.push('\r'),
                    Some('b') => token.push('\u{8}'),
                    Some('f') => token.push('\u{c}'),
                    Some('u') => token.push(read_json_unicode(&mut chars)),
                    Some(other) => token.push(other),
                    None => break,
                }
            }
            if !closed {
                return Err(PropertyError::Unterminated { at });
            }
            tokens.push((at, token));
        }
        let mut props = SessionProperties::new();
        let mut pairs = tokens.into_iter();
        while let Some((at, key)) = pairs.next() {
            match pairs.next() {
                Some((_, value)) => props.set(key, value),
                None => return Err(PropertyError::MissingValue { at }),
            }
        }
        Ok(props)
    }
}

/// Reads the 4 hex digits after `\u`; a malformed or lone surrogate escape gives U+FFFD.
fn read_json_unicode(chars: &mut std::str::CharIndices<'_>) -> char {
    let Some(code) = read_hex4(chars) else {
        return char::REPLACEMENT_CHARACTER;
    };
    if (0xd800..0xdc00).contains(&code) {
        // A high surrogate pairs with a following `\uDC00`..`\uDFFF`.
        let mut ahead = chars.clone();
        if let (Some((_, '\\')), Some((_, 'u'))) = (ahead.next(), ahead.next()) {
            if let Some(low @ 0xdc00..=0xdfff) = read_hex4(&mut ahead) {
                *chars = ahead;
                return char::from_u32(0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00))
                    .unwrap_or(char::REPLACEMENT_CHARACTER);
            }
        }
    }
    char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER)
}

fn read_hex4(chars: &mut std::str::CharIndices<'_>) -> Option<u32> {
    let mut code = 0u32;
    for _ in 0..4 {
        let digit = chars.clone().next().and_then(|(_, c)| c.to_digit(16))?;
        chars.next();
        code = code * 16 + digit;
    }
    Some(code)
}

fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for SessionProperties {
    /// Collects without validation (use [`SessionProperties::insert`] to validate).
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut props = SessionProperties::new();
        for (k, v) in iter {
            props.set(k.into(), v.into());
        }
        props
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reserved_and_bad_keys_are_named_in_the_error() {
        let mut sp = SessionProperties::new();
        assert_eq!(
            sp.insert("$Principal", "x"),
            Err(PropertyError::Reserved {
                key: "$Principal".into()
            })
        );
        assert!(sp.insert("$Country", "gb").is_ok());
        let err = sp.insert("a,b", "x").unwrap_err();
        assert!(err.to_string().contains("\"a,b\""), "{err}");
        assert_eq!(sp.insert("", "x"), Err(PropertyError::EmptyKey));
    }

    #[test]
    fn value_ending_in_backslash_is_read_correctly() {
        let p = SessionProperties::parse(r#""k","a\\","z","1""#).unwrap();
        assert_eq!(p.get("k"), Some("a\\"));
        assert_eq!(p.get("z"), Some("1"));
    }

    #[test]
    fn malformed_sp_is_an_error() {
        assert_eq!(
            SessionProperties::parse(r#""k","v"#),
            Err(PropertyError::Unterminated { at: 4 })
        );
        assert_eq!(
            SessionProperties::parse(r#""k""#),
            Err(PropertyError::MissingValue { at: 0 })
        );
        let p = SessionProperties::parse(r#"{"a":"\u00e9\ud83d\ude00"}"#).unwrap();
        assert_eq!(p.get("a"), Some("é😀"));
    }

    fn any_props() -> impl Strategy<Value = SessionProperties> {
        proptest::collection::vec((".{1,8}", ".{0,12}"), 0..6).prop_map(SessionProperties::from_iter)
    }

    proptest! {
        #[test]
        fn both_forms_round_trip(p in any_props()) {
            prop_assert_eq!(SessionProperties::parse(&p.to_quoted_list()), Ok(p.clone()));
            prop_assert_eq!(SessionProperties::parse(&p.to_json()), Ok(p));
        }

        #[test]
        fn any_text_parses_or_errs(s in ".{0,40}") {
            let _ = SessionProperties::parse(&s);
        }
    }
}
