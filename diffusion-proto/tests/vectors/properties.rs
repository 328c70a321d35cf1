//! `properties.json` against `SessionProperties`, `validate_key` and `CLIENT_SETTABLE_FIXED`.

use diffusion_proto::encode_component;
use diffusion_proto::{validate_key, CLIENT_SETTABLE_FIXED};
use diffusion_proto::{ConnectionParams, PropertyError, SessionProperties};

use crate::json::{load, V};

/// Properties in the vector's order, set without validation (as the clients send them).
fn props_of(map: &V<'_>) -> SessionProperties {
    let mut p = SessionProperties::new();
    for (k, v) in map.string_pairs() {
        p.set(k, v);
    }
    p
}

fn parsed(sp: &str, at: &str) -> SessionProperties {
    SessionProperties::parse(sp).unwrap_or_else(|e| panic!("{at}: {sp:?} does not parse: {e}"))
}

#[test]
fn python_quoted_list_format() {
    let doc = load("properties.json");
    let fmt = doc.root().get("python_format");
    let mut checked = 0;
    for e in fmt.get("examples").arr() {
        let props = props_of(&e.get("map"));
        let sp = e.get("sp").str();
        assert_eq!(props.to_quoted_list(), sp, "{}", e.path);
        assert_eq!(parsed(sp, &e.path), props, "{}: read back", e.path);
        checked += 1;
    }
    for e in fmt.get("live_header").arr() {
        let sp = e.get("header_value").str();
        let props = parsed(sp, &e.path);
        assert!(props.get("$Environment").is_some(), "{}", e.path);
        assert_eq!(props.to_quoted_list(), sp, "{}", e.path);
        checked += 1;
    }
    assert_eq!(checked, 8);
}

#[test]
fn javascript_json_format() {
    let doc = load("properties.json");
    let fmt = doc.root().get("javascript_format");
    let mut checked = 0;
    for e in fmt.get("live_examples").arr() {
        let decoded = e.get("decoded").str();
        let as_sent = e.get("as_sent_in_query").str();
        // The object as JSON.stringify saw it, keys in order.
        let object: serde_json::Value =
            serde_json::from_str(decoded).unwrap_or_else(|err| panic!("{}: {err}", e.path));
        let mut props = SessionProperties::new();
        let object = V {
            j: &object,
            path: e.path.clone(),
        };
        for (k, v) in object.string_pairs() {
            props.set(k, v);
        }
        assert_eq!(props.to_json(), decoded, "{}", e.path);
        assert_eq!(encode_component(&props.to_json()), as_sent, "{}", e.path);
        assert_eq!(parsed(decoded, &e.path), props, "{}", e.path);
        // The server reads it from the query, percent-encoded.
        let params = ConnectionParams::parse(Some(&format!("v=29&sp={as_sent}")), [])
            .unwrap_or_else(|err| panic!("{}: {err}", e.path));
        assert_eq!(params.properties, props, "{}", e.path);
        checked += 1;
    }
    assert_eq!(checked, 2);
}

#[test]
fn server_side_decoding() {
    let doc = load("properties.json");
    let rule = doc.root().get("decoding_rule_for_servers");
    let mut checked = 0;
    for e in rule.get("examples").arr() {
        let sp = e.get("sp").str();
        assert_eq!(parsed(sp, &e.path), props_of(&e.get("map")), "{}", e.path);
        checked += 1;
    }
    let json = rule.get("json_example");
    let sp = json.get("sp").str();
    assert_eq!(
        parsed(sp, &json.path),
        props_of(&json.get("map")),
        "{}",
        json.path
    );
    checked += 1;

    // We read what was meant, not what the official Python decoder returns.
    let bug = rule.get("python_decoder_bug");
    let sp = bug.get("sp").str();
    let ours = parsed(sp, &bug.path);
    assert_eq!(ours, props_of(&bug.get("expected")), "{}", bug.path);
    assert_ne!(
        ours,
        props_of(&bug.get("official_python_decoder_returns")),
        "{}",
        bug.path
    );
    checked += 1;
    assert_eq!(checked, 4);
}

#[test]
fn key_rules() {
    let doc = load("properties.json");
    let rules = doc.root().get("key_rules");
    let text = rules.get("rule").str();
    let mut checked = 0;

    for (key, valid) in rules.get("python_is_valid_session_property").obj() {
        assert_eq!(
            validate_key(key).is_ok(),
            valid.bool(),
            "{}: validate_key({key:?}) = {:?}",
            valid.path,
            validate_key(key)
        );
        checked += 1;
    }

    for (key, settable) in rules.get("python_is_settable").obj() {
        let result = SessionProperties::new().insert(key, "v");
        assert_eq!(
            result.is_ok(),
            settable.bool(),
            "{}: insert({key:?}) = {result:?}",
            settable.path
        );
        if key.starts_with('$') {
            assert_eq!(
                result.is_ok(),
                CLIENT_SETTABLE_FIXED.contains(&key),
                "{}",
                settable.path
            );
            if result.is_err() {
                assert_eq!(
                    result,
                    Err(PropertyError::Reserved { key: key.to_owned() }),
                    "{}",
                    settable.path
                );
            }
        }
        checked += 1;
    }

    // The client-settable fixed properties are the ones the rule names, and fixed ones.
    let fixed: Vec<&str> = doc
        .root()
        .get("fixed_property_names")
        .arr()
        .iter()
        .map(|v| v.str())
        .collect();
    for name in CLIENT_SETTABLE_FIXED {
        assert!(text.contains(name), "{name} is not in the key rule: {text}");
        assert!(fixed.contains(&name), "{name} is not a fixed property");
    }
    // Every other fixed property is refused by `insert` (the library adds
    // `$Environment` itself with `set`).
    for name in &fixed {
        let result = SessionProperties::new().insert(*name, "v");
        assert_eq!(
            result.is_ok(),
            CLIENT_SETTABLE_FIXED.contains(name),
            "insert({name:?}) = {result:?}"
        );
        checked += 1;
    }
    assert_eq!(checked, 13 + 6 + 17);
}
