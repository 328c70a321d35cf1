//! `connection_request.json` against `WebSocketUrl`, `ConnectionParams` (client encoders
//! and the server's `parse`) and `encode_component`.
//!
//! Deliberate differences from the official clients, asserted as such:
//! - we advertise `ca=8` (UNIFIED without ZLIB), both official clients `ca=10`;
//! - `ConnectionParams` adds no `$Environment` property;
//! - the JavaScript client's path rule (append `/diffusion` to a custom path) is not ours:
//!   we resolve URLs the Python (RFC 3986) way, so those path cases check only the query.

use diffusion_proto::encode_component;
use diffusion_proto::{
    ConnectionParams, Credentials, ParamError, ProtocolVersion, ReconnectParams, SessionProperties,
    SessionToken, WebSocketUrl,
};

use crate::json::{load, percent_decode, query_pairs, unhex, V};

/// The connection parameter names, in the Python client's header order.
const PARAM_NAMES: [&str; 10] = [
    "v", "c", "ca", "username", "r", "password", "cs", "ss", "ty", "sp",
];

fn token(text: &str) -> SessionToken {
    SessionToken::from_param(text).unwrap_or_else(|| panic!("{text:?} is not a 24-byte token"))
}

fn resolve(url: &str) -> WebSocketUrl {
    WebSocketUrl::resolve(url).unwrap_or_else(|e| panic!("{url}: {e}"))
}

fn header_pairs(v: &V<'_>) -> Vec<(String, String)> {
    v.arr()
        .iter()
        .map(|h| {
            let pair = h.arr();
            assert_eq!(pair.len(), 2, "{}", h.path);
            (pair[0].str().to_owned(), pair[1].str().to_owned())
        })
        .collect()
}

/// The Diffusion parameters among a request's headers, in order.
fn diffusion_headers(headers: &[(String, String)]) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(n, _)| PARAM_NAMES.contains(&n.as_str()))
        .cloned()
        .collect()
}

fn parse_request(query: Option<&str>, headers: &[(String, String)]) -> Result<ConnectionParams, ParamError> {
    ConnectionParams::parse(query, headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes())))
}

fn owned(headers: Vec<(&'static str, String)>) -> Vec<(String, String)> {
    headers.into_iter().map(|(n, v)| (n.to_owned(), v)).collect()
}

/// `sp` without its `"$Environment","…"` pair (which only the official clients add).
fn without_environment(sp: &str) -> String {
    let env = SessionProperties::parse(sp)
        .ok()
        .and_then(|p| p.get("$Environment").map(str::to_owned))
        .unwrap_or_else(|| panic!("{sp:?} has no $Environment"));
    let pair = format!("\"$Environment\",\"{env}\"");
    for candidate in [format!(",{pair}"), format!("{pair},"), pair] {
        if sp.contains(&candidate) {
            return sp.replacen(&candidate, "", 1);
        }
    }
    unreachable!("the pair was parsed from {sp:?}")
}

/// Our query equals theirs but for `ca`: 8 for us, 10 for the official client.
fn assert_query_but_ca(ours: &str, theirs: &str, at: &str) {
    assert_eq!(
        theirs.matches("&ca=10&").count(),
        1,
        "{at}: the official client sent ca=10: {theirs}"
    );
    assert_eq!(ours, theirs.replacen("&ca=10&", "&ca=8&", 1), "{at}");
}

#[test]
fn python_header_encoder() {
    let doc = load("connection_request.json");
    let enc = doc.root().get("python_encoder");
    let mut checked = 0;
    assert_eq!(ConnectionParams::CAPABILITIES, 8);

    for name in ["connect", "reconnect"] {
        let e = enc.get(name);
        // The inputs of the encoder run: principal bob, password "secret", {Foo: bar}.
        let mut p = ConnectionParams::new(ProtocolVersion::V25);
        p.principal = Some("bob".into());
        p.credentials = Credentials::password("secret");
        p.properties
            .insert("Foo", "bar")
            .unwrap_or_else(|err| panic!("{err}"));
        if name == "reconnect" {
            p.reconnect = Some(ReconnectParams {
                token: token("ABCDEFGHIJKLMNOPQRSTUVWX"),
                available_client_sequence: 0,
                last_server_sequence: 3,
            });
        }
        let theirs = e.get("headers").string_pairs();
        let ours = owned(p.to_headers());
        let names = |h: &[(String, String)]| h.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        assert_eq!(names(&ours), names(&theirs), "{}: header order", e.path);
        for ((name, ours), (_, theirs)) in ours.iter().zip(&theirs) {
            match name.as_str() {
                "ca" => {
                    assert_eq!(ours, "8", "{}", e.path);
                    assert_eq!(theirs, "10", "{}", e.path);
                }
                "sp" => assert_eq!(*ours, without_environment(theirs), "{}", e.path),
                _ => assert_eq!(ours, theirs, "{}: header {name}", e.path),
            }
        }
        // With the official client's extras, byte for byte the same headers.
        let sp = theirs
            .iter()
            .find(|(n, _)| n == "sp")
            .map(|(_, v)| v.as_str())
            .unwrap_or_default();
        p.capabilities = 10;
        p.properties = SessionProperties::parse(sp).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(owned(p.to_headers()), theirs, "{}", e.path);
        // And the URL is already the WebSocket URL.
        let url = e.get("url").str();
        assert_eq!(resolve(url).to_string(), url, "{}", e.path);
        checked += 1;
    }
    assert_eq!(checked, 2);
}

#[test]
fn url_resolution() {
    let doc = load("connection_request.json");
    let cases = doc.root().get("python_encoder").get("url_resolution");
    let mut checked = 0;
    for e in cases.arr() {
        let url = resolve(e.get("session_url").str());
        assert_eq!(url.to_string(), e.get("websocket_url").str(), "{}", e.path);
        checked += 1;
    }
    assert_eq!(checked, 7);
}

#[test]
fn python_live_requests_parse_and_reencode() {
    let doc = load("connection_request.json");
    let live = doc.root().get("python_live");
    let mut checked = 0;
    for (name, e) in live.obj() {
        if name == "source" {
            continue;
        }
        let headers = header_pairs(&e.get("headers"));
        let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        let path = e.get("path").str();
        assert!(!path.contains('?'), "{}: Python sends no query", e.path);
        let p = parse_request(None, &headers).unwrap_or_else(|err| panic!("{}: {err}", e.path));

        assert_eq!(p.version, ProtocolVersion::V25, "{}", e.path);
        assert_eq!(p.client_type, "PY", "{}", e.path);
        assert_eq!(p.capabilities, 10, "{}", e.path);
        assert_eq!(p.reconnect_timeout_ms, 60_000, "{}", e.path);
        let username = get("username").unwrap_or_else(|| panic!("{}: no username", e.path));
        assert_eq!(
            p.principal.as_deref(),
            Some(username).filter(|u| !u.is_empty()),
            "{}",
            e.path
        );
        let password = get("password").unwrap_or_else(|| panic!("{}: no password", e.path));
        assert_eq!(p.credentials.to_param(), password, "{}", e.path);
        let sp = get("sp").unwrap_or_else(|| panic!("{}: no sp", e.path));
        assert_eq!(p.properties.to_quoted_list(), sp, "{}", e.path);
        assert!(
            p.properties
                .get("$Environment")
                .is_some_and(|v| v.starts_with("PYTHON_")),
            "{}",
            e.path
        );
        match get("c") {
            Some(c) => {
                let rc = p
                    .reconnect
                    .as_ref()
                    .unwrap_or_else(|| panic!("{}: not a reconnection", e.path));
                assert_eq!(rc.token, token(c), "{}", e.path);
                assert_eq!(
                    Some(rc.available_client_sequence.to_string().as_str()),
                    get("cs"),
                    "{}",
                    e.path
                );
                assert_eq!(
                    Some(rc.last_server_sequence.to_string().as_str()),
                    get("ss"),
                    "{}",
                    e.path
                );
            }
            None => assert_eq!(p.reconnect, None, "{}", e.path),
        }
        match name {
            "connect_anonymous_default_session" => {
                assert_eq!(p.principal, None, "{}", e.path);
                assert_eq!(p.credentials, Credentials::None, "{}", e.path);
            }
            "connect_binary_credentials_and_non_ascii_property" => {
                assert_eq!(p.credentials, Credentials::custom([0x00, 0xff]), "{}", e.path);
                assert_eq!(p.properties.get("kü"), Some("vé \"q\" \\ 'a'\ttab"), "{}", e.path);
            }
            "reconnect" => {
                assert_eq!(p.credentials, Credentials::password("secret"), "{}", e.path);
                assert!(p.reconnect.is_some(), "{}", e.path);
            }
            _ => {}
        }

        // Our encoder, given what the server read, sends exactly the same headers in the
        // same order.
        assert_eq!(
            owned(p.to_headers()),
            diffusion_headers(&headers),
            "{}: re-encoded headers",
            e.path
        );

        // The path: RFC 3986 resolution of the user's URL.
        let user_url = match name.strip_prefix("connect_url_with_path_") {
            Some(url) => url.to_owned(),
            None => format!("ws://{}", get("Host").unwrap_or_default()),
        };
        let url = resolve(&user_url);
        assert_eq!(url.path, path, "{}", e.path);
        assert_eq!(Some(url.authority.as_str()), get("Host"), "{}", e.path);
        checked += 1;
    }
    assert_eq!(checked, 6);
}

/// The credentials a JS `from_options` case names; JS's default credentials are ''.
fn js_option_credentials(options: &V<'_>) -> Credentials {
    match options.opt("credentials").map(|c| c.str()) {
        None => Credentials::Password(String::new()),
        Some(c) => match c.strip_prefix("Uint8Array[").and_then(|b| b.strip_suffix(']')) {
            Some(bytes) => Credentials::custom(bytes.split(',').flat_map(unhex).collect::<Vec<u8>>()),
            None => Credentials::Password(c.to_owned()),
        },
    }
}

#[test]
fn javascript_encoder_uris() {
    let doc = load("connection_request.json");
    let uris = doc.root().get("javascript_encoder_uris");
    let mut checked = 0;

    for (name, uri) in uris.get("uris").obj() {
        let mut p = ConnectionParams::new(ProtocolVersion::V29);
        match name {
            "connect_anonymous" => {}
            "connect_principal" => {
                p.principal = Some("bob".into());
                p.credentials = Credentials::password("secret");
                p.properties.set("Foo".into(), "bar".into());
                p.properties.set("$Environment".into(), "NODE_x".into());
            }
            "connect_empty_password" => {
                p.principal = Some("bob".into());
                p.credentials = Credentials::Password(String::new());
            }
            "reconnect" => {
                p.principal = Some("bob".into());
                p.credentials = Credentials::password("secret");
                p.reconnect = Some(ReconnectParams {
                    token: token("ABCDEFGHIJKLMNOPQRSTUV+/"),
                    available_client_sequence: 4,
                    last_server_sequence: 17,
                });
            }
            other => panic!("{}: no inputs known for {other}", uri.path),
        }
        let (base, query) = uri
            .str()
            .split_once('?')
            .unwrap_or_else(|| panic!("{}: no query", uri.path));
        assert_eq!(resolve("ws://localhost:8080").to_string(), base, "{}", uri.path);
        assert_query_but_ca(&p.to_query(), query, &uri.path);
        p.capabilities = 10;
        assert_eq!(p.to_query(), query, "{}", uri.path);
        checked += 1;
    }

    for e in uris.get("from_options").arr() {
        let o = e.get("options");
        let mut p = ConnectionParams::new(ProtocolVersion::V29);
        if o.opt("reconnect").is_some_and(|r| !r.bool()) {
            p.reconnect_timeout_ms = 0;
        }
        if let Some(principal) = o.opt("principal") {
            p.principal = Some(principal.str().to_owned());
            p.credentials = js_option_credentials(&o);
        }
        let (base, query) = e
            .get("uri")
            .str()
            .split_once('?')
            .unwrap_or_else(|| panic!("{}: no query", e.path));
        assert_query_but_ca(&p.to_query(), query, &e.path);
        if o.opt("path").is_none() {
            let scheme = if o.get("secure").bool() { "wss" } else { "ws" };
            let user_url = format!(
                "{scheme}://{}:{}",
                o.get("host").str(),
                o.get("port").int::<u16>()
            );
            assert_eq!(resolve(&user_url).to_string(), base, "{}", e.path);
        }
        checked += 1;
    }
    // encodeURIComponent on its own.
    assert_eq!(encode_component("a b+é"), "a%20b%2B%C3%A9");
    assert_eq!(encode_component("AQZzZWNyZXQ="), "AQZzZWNyZXQ%3D");
    assert_eq!(checked, 4 + 6);
}

#[test]
fn javascript_live_requests_parse_and_reencode() {
    let doc = load("connection_request.json");
    let live = doc.root().get("javascript_live");
    let mut checked = 0;
    for (name, e) in live.obj() {
        if name == "source" {
            continue;
        }
        let headers = header_pairs(&e.get("headers"));
        let (path, query) = e
            .get("path")
            .str()
            .split_once('?')
            .unwrap_or_else(|| panic!("{}: no query", e.path));
        let raw = query_pairs(query);
        let get = |n: &str| raw.iter().find(|(k, _)| *k == n).map(|(_, v)| percent_decode(v));
        let p = parse_request(Some(query), &headers).unwrap_or_else(|err| panic!("{}: {err}", e.path));

        assert_eq!(get("v").as_deref(), Some("29"), "{}", e.path);
        assert_eq!(p.version, ProtocolVersion::V29, "{}", e.path);
        assert_eq!(Some(p.client_type.clone()), get("ty"), "{}", e.path);
        assert_eq!(Some(p.capabilities.to_string()), get("ca"), "{}", e.path);
        assert_eq!(Some(p.reconnect_timeout_ms.to_string()), get("r"), "{}", e.path);
        assert_eq!(p.principal, get("username"), "{}", e.path);
        match get("password") {
            Some(pw) => assert_eq!(p.credentials.to_base64(), pw, "{}", e.path),
            None => assert_eq!(p.credentials, Credentials::None, "{}", e.path),
        }
        let sp = get("sp").unwrap_or_else(|| panic!("{}: no sp", e.path));
        assert_eq!(p.properties.to_json(), sp, "{}", e.path);
        assert!(
            p.properties
                .get("$Environment")
                .is_some_and(|v| v.starts_with("NODE_")),
            "{}",
            e.path
        );
        match get("c") {
            Some(c) => {
                let rc = p
                    .reconnect
                    .as_ref()
                    .unwrap_or_else(|| panic!("{}: not a reconnection", e.path));
                assert_eq!(rc.token, token(&c), "{}", e.path);
                assert_eq!(
                    Some(rc.available_client_sequence.to_string()),
                    get("cs"),
                    "{}",
                    e.path
                );
                assert_eq!(Some(rc.last_server_sequence.to_string()), get("ss"), "{}", e.path);
            }
            None => assert_eq!(p.reconnect, None, "{}", e.path),
        }
        if name == "connect_with_principal_and_properties" {
            assert_eq!(p.principal.as_deref(), Some("bob"), "{}", e.path);
            assert_eq!(p.credentials, Credentials::password("secret"), "{}", e.path);
            assert_eq!(p.properties.get("x y"), Some("1"), "{}", e.path);
        }

        // Our encoder, given what the server read, builds exactly the same query.
        assert_eq!(p.to_query(), query, "{}: re-encoded query", e.path);
        let host = headers
            .iter()
            .find(|(n, _)| n == "Host")
            .map(|(_, v)| v.as_str())
            .unwrap_or_default();
        assert_eq!(resolve(&format!("ws://{host}")).path, path, "{}", e.path);
        checked += 1;
    }
    assert_eq!(checked, 4);
}

/// Requests of protocols 4..15: a server of ours refuses the version cleanly; with the
/// version changed to 25 the rest of each request reads as the capture's parameters.
#[test]
fn captured_requests_of_older_versions() {
    let doc = load("connection_request.json");
    let mut checked = 0;
    for e in doc.root().get("captures").arr() {
        let (parsed, version) = check_captured_request(&e);
        assert_eq!(parsed, Err(ParamError::UnsupportedVersion(version)), "{}", e.path);
        checked += 1;
    }
    assert_eq!(checked, 14);
}

/// Parses a captured upgrade request (`request_line` or `upgrade_request_line`, headers as
/// `Name: value` lines) as it is and as if it had asked for version 25, checking the latter
/// against the capture's `parameters`. Returns the as-is parse result and the captured version.
pub fn check_captured_request(e: &V<'_>) -> (Result<ConnectionParams, ParamError>, u32) {
    let line = e
        .opt("request_line")
        .or_else(|| e.opt("upgrade_request_line"))
        .unwrap_or_else(|| panic!("{}: no request line", e.path))
        .str();
    let target = line
        .split(' ')
        .nth(1)
        .unwrap_or_else(|| panic!("{}: bad request line {line:?}", e.path));
    let query = target.split_once('?').map(|(_, q)| q);
    let headers: Vec<(String, String)> = e
        .opt("headers")
        .or_else(|| e.opt("upgrade_request_headers"))
        .unwrap_or_else(|| panic!("{}: no headers", e.path))
        .arr()
        .iter()
        .map(|h| {
            let (n, v) = h
                .str()
                .split_once(':')
                .unwrap_or_else(|| panic!("{}: bad header", h.path));
            (n.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    let parameters = e.get("parameters").string_pairs();
    let param = |n: &str| parameters.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    let version: u32 = e.get("protocol_version").int();
    assert_eq!(param("v"), Some(version.to_string().as_str()), "{}", e.path);
    let location = e.get("parameters_location").str();
    assert_eq!(
        query.is_some(),
        location == "URI query",
        "{}: parameters in {location}",
        e.path
    );

    let as_is = parse_request(query, &headers);

    // The same request asking for version 25.
    let query25 = query.map(|q| {
        query_pairs(q)
            .iter()
            .map(|(n, v)| {
                if *n == "v" {
                    "v=25".to_owned()
                } else {
                    format!("{n}={v}")
                }
            })
            .collect::<Vec<_>>()
            .join("&")
    });
    let headers25: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| {
            let v = if n.eq_ignore_ascii_case("v") {
                "25".to_owned()
            } else {
                v.clone()
            };
            (n.clone(), v)
        })
        .collect();
    let as_25 = parse_request(query25.as_deref(), &headers25);
    match Credentials::from_param(param("password").unwrap_or_default()) {
        // Protocol 4 sent credentials as plain text: not the base64 form.
        Err(err) => assert_eq!(as_25, Err(ParamError::Credentials(err)), "{}", e.path),
        Ok(creds) => {
            let p = as_25.unwrap_or_else(|err| panic!("{}: as version 25: {err}", e.path));
            assert_eq!(p.version, ProtocolVersion::V25);
            assert_eq!(Some(p.client_type.as_str()), param("ty"), "{}", e.path);
            assert_eq!(
                Some(p.capabilities.to_string().as_str()),
                param("ca"),
                "{}",
                e.path
            );
            assert_eq!(
                p.reconnect_timeout_ms,
                param("r").map_or(0, |r| r.parse().unwrap_or(u64::MAX)),
                "{}",
                e.path
            );
            assert_eq!(
                p.principal.as_deref(),
                param("username").filter(|u| !u.is_empty()),
                "{}",
                e.path
            );
            if let Some(pw) = param("password") {
                assert_eq!(p.credentials.to_base64(), pw, "{}", e.path);
            }
            assert_eq!(p.credentials, creds, "{}", e.path);
            assert!(p.properties.is_empty(), "{}", e.path);
            assert_eq!(p.reconnect, None, "{}", e.path);
        }
    }
    (as_is, version)
}
