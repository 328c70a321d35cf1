//! `credentials.json` against `Credentials`.

use bytes::BytesMut;
use diffusion_proto::wire::Reader;
use diffusion_proto::{ConnectionParams, Credentials, ProtocolVersion};

use crate::json::{load, percent_decode, unhex};

/// A Python bytes literal body with `\xNN` escapes.
fn python_bytes(lit: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = lit;
    while !rest.is_empty() {
        if let Some(hex) = rest.strip_prefix("\\x") {
            out.extend(unhex(&hex[..2]));
            rest = &hex[2..];
        } else {
            let ch = rest.chars().next().unwrap_or_default();
            let mut buf = [0u8; 4];
            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
            rest = &rest[ch.len_utf8()..];
        }
    }
    out
}

/// The credentials a vector's description names, built the way that client builds them.
fn described(desc: &str) -> Credentials {
    if let Some(rest) = desc.strip_prefix("JS credentials ") {
        return match rest {
            "null" => Credentials::None,
            // JS sends '' as a PLAIN_PASSWORD of length 0, not as NONE.
            "empty string" => Credentials::Password(String::new()),
            _ => match (rest.strip_prefix("string "), rest.strip_prefix("bytes ")) {
                (Some(s), _) => Credentials::Password(s.to_owned()),
                (_, Some(b)) => Credentials::custom(b.as_bytes()),
                _ => panic!("unknown JS credentials description {desc:?}"),
            },
        };
    }
    let arg = desc
        .strip_prefix("Credentials(")
        .and_then(|r| r.rsplit_once(')'))
        .map(|(a, _)| a)
        .unwrap_or_else(|| panic!("unknown credentials description {desc:?}"));
    // "Credentials('') (empty -> none)": the argument ends at the first ')' after the quote.
    let arg = arg.split(") (").next().unwrap_or(arg);
    if arg.is_empty() {
        return Credentials::None;
    }
    if let Some((lit, n)) = arg.split_once('*') {
        let s = lit.trim_matches('\'');
        let n: usize = n.parse().unwrap_or_else(|_| panic!("bad repeat in {desc:?}"));
        return Credentials::password(s.repeat(n));
    }
    if let Some(b) = arg.strip_prefix("b'").and_then(|b| b.strip_suffix('\'')) {
        return Credentials::custom(python_bytes(b));
    }
    if let Some(s) = arg.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
        // The Python constructor: '' is NONE.
        return Credentials::password(s);
    }
    panic!("unknown credentials description {desc:?}")
}

fn raw(c: &Credentials) -> String {
    let mut b = BytesMut::new();
    c.encode_raw(&mut b);
    hex::encode(&b)
}

#[test]
fn credentials_vectors() {
    let doc = load("credentials.json");
    let root = doc.root();
    let mut checked = 0;

    for e in root.get("required_examples").arr() {
        let c = described(e.get("input").str());
        assert_eq!(c.to_param(), e.get("password_param").str(), "{}", e.path);
        assert_eq!(raw(&c), e.get("raw_hex").str(), "{}", e.path);
        checked += 1;
    }

    for e in root.get("vectors").arr() {
        let desc = e.get("description").str();
        let source = e.get("source").str();
        let c = described(desc);
        let param = e.get("password_param").str();
        let raw_hex = e.get("raw_hex").str();
        assert_eq!(c.type_byte(), e.get("credentials_type").int::<u8>(), "{}", e.path);
        if source.contains("Python") {
            assert_eq!(c.to_param(), param, "{}: Python parameter form", e.path);
            if raw_hex.is_empty() {
                // Python sends nothing at all for NONE (including the empty password).
                assert_eq!(c, Credentials::None, "{}", e.path);
                assert_eq!(param, "", "{}", e.path);
            }
        } else {
            assert!(source.contains("JavaScript"), "{}: unknown source", e.path);
            assert_eq!(c.to_base64(), param, "{}: JavaScript parameter form", e.path);
        }
        if !raw_hex.is_empty() {
            assert_eq!(raw(&c), raw_hex, "{}", e.path);
            let bytes = unhex(raw_hex);
            let mut r = Reader::new(&bytes);
            assert_eq!(Credentials::decode_raw(&mut r), Ok(c.clone()), "{}", e.path);
            assert!(r.is_empty(), "{}", e.path);
        }
        // The server side reads every form back.
        assert_eq!(Credentials::from_param(param), Ok(c), "{}", e.path);
        checked += 1;
    }

    for e in root.get("capture_examples").arr() {
        let sent = e.get("password_param_as_sent").str();
        let decoded = e.get("decoded");
        let expected = match decoded.get("type").int::<u8>() {
            1 => Credentials::Password(decoded.get("password").str().to_owned()),
            other => panic!("{}: unexpected type {other}", e.path),
        };
        assert_eq!(
            Credentials::from_param(&percent_decode(sent)),
            Ok(expected.clone()),
            "{}",
            e.path
        );
        // Through the server's parameter parser, whether percent-encoded or raw.
        let parsed = ConnectionParams::parse(Some(&format!("v=25&password={sent}")), [])
            .unwrap_or_else(|err| panic!("{}: {err}", e.path));
        assert_eq!(parsed.version, ProtocolVersion::V25);
        assert_eq!(parsed.credentials, expected, "{}", e.path);
        let parsed = ConnectionParams::parse(None, [("v", &b"25"[..]), ("password", sent.as_bytes())]);
        if sent.contains('%') {
            // Headers are raw values: percent-encoding there is not undone.
            assert!(parsed.is_err(), "{}", e.path);
        } else {
            assert_eq!(parsed.map(|p| p.credentials), Ok(expected), "{}", e.path);
        }
        checked += 1;
    }
    assert_eq!(checked, 2 + 14 + 2);
}
