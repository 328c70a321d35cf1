//! Loading the vector files: an order-preserving JSON reader (the order of object keys is
//! part of several vectors: header order, property order), path-carrying accessors that
//! panic with the vector's location, and hex and percent-decoding helpers.
//!
//! `serde_json` (without `preserve_order`) sorts object keys, so it cannot be used to read
//! the vectors; it is used only to cross-check this reader.

use std::path::PathBuf;

/// Every vector file, and whether this test target covers it.
pub const COVERED: [&str; 9] = [
    "varint.json",
    "primitives.json",
    "credentials.json",
    "properties.json",
    "connection_request.json",
    "connection_response.json",
    "messages.json",
    "services.json",
    "captures.json",
];

/// Vector files deliberately left to another test target.
pub const COVERED_ELSEWHERE: [&str; 5] = [
    "session_flows.json",
    // The topic and messaging vectors are tested by the topics test targets.
    "topics_datatypes.json",
    "topics_flows.json",
    "topics_selectors.json",
    "topics_services.json",
];

/// The vector directory: the crate's own copy, `diffusion-proto/testdata/vectors`
/// (kept equal to the analysts' copy by `scripts/sync-vectors.sh`).
pub fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/vectors")
}

/// A JSON value. Objects keep their keys in file order; numbers keep their text.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Num(String),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

/// A loaded vector file.
pub struct Doc {
    pub name: String,
    pub text: String,
    pub json: Json,
}

/// Loads `name` from the vector directory. A missing or unreadable file fails the test.
pub fn load(name: &str) -> Doc {
    let path = vectors_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "vector file {} cannot be read ({e}); the vectors must be at \
             $CARGO_MANIFEST_DIR/testdata/vectors and are never optional",
            path.display()
        )
    });
    let json = parse(&text).unwrap_or_else(|e| panic!("vector file {name} is not JSON: {e}"));
    Doc {
        name: name.to_owned(),
        text,
        json,
    }
}

impl Doc {
    /// The root value, with the file name as its path.
    pub fn root(&self) -> V<'_> {
        V {
            j: &self.json,
            path: self.name.clone(),
        }
    }
}

/// A value and where it is, for messages.
#[derive(Debug, Clone)]
pub struct V<'a> {
    pub j: &'a Json,
    pub path: String,
}

impl<'a> V<'a> {
    fn at(&self, j: &'a Json, step: impl std::fmt::Display) -> V<'a> {
        V {
            j,
            path: format!("{}{step}", self.path),
        }
    }

    /// The member `key`, which must exist.
    pub fn get(&self, key: &str) -> V<'a> {
        self.opt(key)
            .unwrap_or_else(|| panic!("{}: no member {key:?}", self.path))
    }

    /// The member `key`, if present (a `null` member counts as present).
    pub fn opt(&self, key: &str) -> Option<V<'a>> {
        self.obj().into_iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The members of an object, in file order.
    pub fn obj(&self) -> Vec<(&'a str, V<'a>)> {
        match self.j {
            Json::Obj(members) => members
                .iter()
                .map(|(k, v)| (k.as_str(), self.at(v, format_args!(".{k}"))))
                .collect(),
            other => panic!("{}: expected an object, found {other:?}", self.path),
        }
    }

    /// The elements of an array.
    pub fn arr(&self) -> Vec<V<'a>> {
        match self.j {
            Json::Arr(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| self.at(v, format_args!("[{i}]")))
                .collect(),
            other => panic!("{}: expected an array, found {other:?}", self.path),
        }
    }

    /// A string.
    pub fn str(&self) -> &'a str {
        match self.j {
            Json::Str(s) => s,
            other => panic!("{}: expected a string, found {other:?}", self.path),
        }
    }

    /// A boolean.
    pub fn bool(&self) -> bool {
        match self.j {
            Json::Bool(b) => *b,
            other => panic!("{}: expected a boolean, found {other:?}", self.path),
        }
    }

    /// True for `null`.
    pub fn is_null(&self) -> bool {
        matches!(self.j, Json::Null)
    }

    /// An integer, written as a JSON number or as a decimal string.
    pub fn int<T: std::str::FromStr>(&self) -> T {
        let text = match self.j {
            Json::Num(n) => n.as_str(),
            Json::Str(s) => s.as_str(),
            other => panic!("{}: expected an integer, found {other:?}", self.path),
        };
        text.parse()
            .unwrap_or_else(|_| panic!("{}: {text:?} is not an integer of the wanted type", self.path))
    }

    /// An object of strings, in file order.
    pub fn string_pairs(&self) -> Vec<(String, String)> {
        self.obj()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.str().to_owned()))
            .collect()
    }
}

/// Lower-case hex.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes from hex; odd length or a non-hex digit fails the test.
pub fn unhex(hex: &str) -> Vec<u8> {
    assert!(hex.len() % 2 == 0, "odd-length hex {hex:?}");
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .unwrap_or_else(|| panic!("bad hex {hex:?} at {i}"))
        })
        .collect()
}

/// Undoes percent-encoding (test-side, independent of the crate's own decoder).
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            out.extend(unhex(&s[i + 1..i + 3]));
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| panic!("{s:?} percent-decodes to non-UTF-8"))
}

/// Splits a query into raw (still percent-encoded) name/value pairs.
pub fn query_pairs(query: &str) -> Vec<(&str, &str)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect()
}

/// Parses JSON text, keeping object key order.
pub fn parse(text: &str) -> Result<Json, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    let v = p.value()?;
    p.ws();
    if p.i != p.s.len() {
        return Err(format!("trailing characters at byte {}", p.i));
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        self.ws();
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!("expected {:?} at byte {}", char::from(c), self.i))
        }
    }

    fn literal(&mut self, word: &str, v: Json) -> Result<Json, String> {
        if self.s[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Ok(v)
        } else {
            Err(format!("bad literal at byte {}", self.i))
        }
    }

    fn value(&mut self) -> Result<Json, String> {
        self.ws();
        match self.peek() {
            Some(b'{') => {
                self.i += 1;
                let mut members = Vec::new();
                self.ws();
                if self.peek() == Some(b'}') {
                    self.i += 1;
                    return Ok(Json::Obj(members));
                }
                loop {
                    self.ws();
                    let key = self.string()?;
                    self.expect(b':')?;
                    members.push((key, self.value()?));
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(Json::Obj(members));
                        }
                        _ => return Err(format!("bad object at byte {}", self.i)),
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.peek() == Some(b']') {
                    self.i += 1;
                    return Ok(Json::Arr(items));
                }
                loop {
                    items.push(self.value()?);
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Json::Arr(items));
                        }
                        _ => return Err(format!("bad array at byte {}", self.i)),
                    }
                }
            }
            Some(b'"') => self.string().map(Json::Str),
            Some(b't') => self.literal("true", Json::Bool(true)),
            Some(b'f') => self.literal("false", Json::Bool(false)),
            Some(b'n') => self.literal("null", Json::Null),
            Some(c) if c == b'-' || c.is_ascii_digit() => {
                let start = self.i;
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_digit() || b"+-.eE".contains(&c))
                {
                    self.i += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.i]).map_err(|e| e.to_string())?;
                Ok(Json::Num(text.to_owned()))
            }
            _ => Err(format!("unexpected input at byte {}", self.i)),
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let h = self
            .s
            .get(self.i..self.i + 4)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .ok_or_else(|| format!("bad \\u escape at byte {}", self.i))?;
        self.i += 4;
        Ok(h)
    }

    fn string(&mut self) -> Result<String, String> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            let c = self.peek().ok_or("unterminated string")?;
            self.i += 1;
            match c {
                b'"' => return String::from_utf8(out).map_err(|e| e.to_string()),
                b'\\' => {
                    let e = self.peek().ok_or("unterminated escape")?;
                    self.i += 1;
                    let ch = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let mut code = self.hex4()?;
                            if (0xd800..0xdc00).contains(&code) && self.s[self.i..].starts_with(b"\\u") {
                                self.i += 2;
                                let low = self.hex4()?;
                                code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
                            }
                            char::from_u32(code).ok_or("bad code point")?
                        }
                        other => return Err(format!("bad escape \\{}", char::from(other))),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                other => out.push(other),
            }
        }
    }
}

/// The same value as `serde_json` sees it (for the cross-check).
pub fn to_serde(j: &Json) -> serde_json::Value {
    use serde_json::Value;
    match j {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Num(n) => serde_json::from_str(n).unwrap_or_else(|e| panic!("number {n}: {e}")),
        Json::Str(s) => Value::String(s.clone()),
        Json::Arr(items) => Value::Array(items.iter().map(to_serde).collect()),
        Json::Obj(members) => Value::Object(members.iter().map(|(k, v)| (k.clone(), to_serde(v))).collect()),
    }
}
