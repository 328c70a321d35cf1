//! The byte-exact vectors of `testdata/vectors` against our encoders and decoders.
//!
//! Every file that concerns the existing modules is loaded; a missing file fails the test
//! that needs it (and `every_vector_file_is_present_and_accounted_for` fails first).
//! `session_flows.json` belongs to the session state-machine tests.
//!
//! Where our code deliberately differs from an official client (`ca=8`, no `$Environment`,
//! 102/107 not session-opening, a correct `sp` decoder), the test asserts our choice
//! next to the official value.
#![forbid(unsafe_code)]

mod captures;
mod credentials;
mod json;
mod messages;
mod properties;
mod request;
mod response;
mod wire;

use json::{vectors_dir, COVERED, COVERED_ELSEWHERE};

#[test]
fn every_vector_file_is_present_and_accounted_for() {
    let dir = vectors_dir();
    let listing = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "vector directory {} cannot be read ({e}); it must be at \
             $CARGO_MANIFEST_DIR/testdata/vectors",
            dir.display()
        )
    });
    let mut found: Vec<String> = listing
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    found.sort();
    for name in COVERED.iter().chain(&COVERED_ELSEWHERE) {
        assert!(
            found.iter().any(|f| f == name),
            "vector file {name} is missing from {}",
            dir.display()
        );
    }
    for name in &found {
        assert!(
            COVERED.contains(&name.as_str()) || COVERED_ELSEWHERE.contains(&name.as_str()),
            "vector file {name} is new: test it here or list it in COVERED_ELSEWHERE"
        );
    }
}

/// The vectors are read with serde_json's `preserve_order`: object keys stay in file order
/// (header order and property order are part of the vectors).
#[test]
fn vector_reader_keeps_key_order() {
    let value: serde_json::Value = serde_json::from_str(r#"{"b": 1, "a": 2, "c": 3}"#).unwrap();
    let keys: Vec<&str> = value
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(keys, ["b", "a", "c"]);
}
