//! Loading the vector files with `serde_json` (its `preserve_order` feature keeps object
//! keys in file order, which several vectors depend on: header order, property order),
//! path-carrying accessors that panic with the vector's location, and hex and
//! percent-decoding helpers.

use std::path::PathBuf;

use serde_json::Value;

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

/// A loaded vector file.
pub struct Doc {
    pub name: String,
    pub json: Value,
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
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("vector file {name} is not JSON: {e}"));
    Doc {
        name: name.to_owned(),
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
    pub j: &'a Value,
    pub path: String,
}

impl<'a> V<'a> {
    fn at(&self, j: &'a Value, step: impl std::fmt::Display) -> V<'a> {
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
        self.object().get(key).map(|v| self.at(v, format_args!(".{key}")))
    }

    /// The members of an object, in file order.
    pub fn obj(&self) -> Vec<(&'a str, V<'a>)> {
        self.object()
            .iter()
            .map(|(k, v)| (k.as_str(), self.at(v, format_args!(".{k}"))))
            .collect()
    }

    fn object(&self) -> &'a serde_json::Map<String, Value> {
        self.j
            .as_object()
            .unwrap_or_else(|| panic!("{}: expected an object, found {}", self.path, self.j))
    }

    /// The elements of an array.
    pub fn arr(&self) -> Vec<V<'a>> {
        self.j
            .as_array()
            .unwrap_or_else(|| panic!("{}: expected an array, found {}", self.path, self.j))
            .iter()
            .enumerate()
            .map(|(i, v)| self.at(v, format_args!("[{i}]")))
            .collect()
    }

    /// A string.
    pub fn str(&self) -> &'a str {
        self.j
            .as_str()
            .unwrap_or_else(|| panic!("{}: expected a string, found {}", self.path, self.j))
    }

    /// A boolean.
    pub fn bool(&self) -> bool {
        self.j
            .as_bool()
            .unwrap_or_else(|| panic!("{}: expected a boolean, found {}", self.path, self.j))
    }

    /// True for `null`.
    pub fn is_null(&self) -> bool {
        self.j.is_null()
    }

    /// An integer, written as a JSON number or as a decimal string.
    pub fn int<T: std::str::FromStr>(&self) -> T {
        let text = match self.j {
            Value::Number(n) if !n.is_f64() => n.to_string(),
            Value::String(s) => s.clone(),
            other => panic!("{}: expected an integer, found {other}", self.path),
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

/// Bytes from hex; odd length or a non-hex digit fails the test.
pub fn unhex(text: &str) -> Vec<u8> {
    hex::decode(text).unwrap_or_else(|e| panic!("bad hex {text:?}: {e}"))
}

/// Undoes percent-encoding (test-side, independent of the crate's own decoder).
pub fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .unwrap_or_else(|_| panic!("{s:?} percent-decodes to non-UTF-8"))
        .into_owned()
}

/// Splits a query into raw (still percent-encoded) name/value pairs.
pub fn query_pairs(query: &str) -> Vec<(&str, &str)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect()
}
