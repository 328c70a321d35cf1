//! Differential test: the connection parameters our [`ClientSession`] sends, against what
//! the official clients sent for the same principal, password and properties, as recorded
//! live in `testdata/vectors/connection_request.json` (`python_live`: protocol 25,
//! parameters as HTTP headers; `javascript_live`: protocol 29, parameters in the query).
//!
//! Everything must be equal, names, order and values, byte for byte, apart from:
//! - `ty`: ours is `ClientConfig::client_type` (by default the official client's code for
//!   the version; which codes a server accepts is unknown, SPEC Q11), so it is not compared;
//! - the `$Environment` session property, which each client fills with its own runtime
//!   (`PYTHON_…`, `NODE_…`, ours `RUST_…`): it must be there, last, in both; and with our
//!   `environment` set to the official client's value, `sp` is equal byte for byte too;
//! - `ca`: we deliberately send `ca=8` (UNIFIED without the ZLIB bit, SPEC §14) because we do
//!   not inflate zlib-compressed topic messages; both official clients send `ca=10`.
//!
//! The inputs of each live capture are listed here by entry name, so that a new entry in
//! the vectors fails the test until its inputs are written down. Note that the Python live
//! entry `connect_with_principal_and_properties` carries no user property in its `sp` (only
//! `$Environment`), although its name says otherwise; the capture is what the client sent,
//! so the inputs here are what the vector shows: principal and password, no properties. The
//! Python client's own encoder run with a property (`python_encoder.connect`) is checked by
//! `tests/vectors/request.rs`; `python_encoder_with_a_property` below checks it through a
//! `ClientSession` as well.
#![forbid(unsafe_code)]

// The vector tests' reader: serde_json keeping key order, with path-carrying accessors.
#[allow(dead_code)]
#[path = "vectors/json.rs"]
mod json;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use diffusion_proto::{
    ClientConfig, ClientSession, ConnectRequest, Credentials, FixedDelay, Output, ProtocolVersion,
    ReconnectConfig,
};
use json::{load, percent_decode, query_pairs, unhex, V};

/// The connection parameter names (SPEC §2.3); other headers are the WebSocket's.
const PARAM_NAMES: [&str; 10] = [
    "v", "c", "ca", "username", "r", "password", "cs", "ss", "ty", "sp",
];

/// What a live capture was made with.
struct Inputs {
    /// The URL given to the client.
    url: String,
    principal: Option<&'static str>,
    credentials: Credentials,
    properties: Vec<(&'static str, &'static str)>,
}

impl Inputs {
    fn new(url: &str, principal: Option<&'static str>, credentials: Credentials) -> Self {
        Inputs {
            url: url.to_owned(),
            principal,
            credentials,
            properties: Vec::new(),
        }
    }

    fn with_property(mut self, key: &'static str, value: &'static str) -> Self {
        self.properties.push((key, value));
        self
    }

    /// Our configuration for these inputs, with everything else left at its default.
    fn config(&self, version: ProtocolVersion) -> ClientConfig {
        let mut config = ClientConfig::new(&self.url)
            .unwrap_or_else(|e| panic!("{}: {e}", self.url))
            .with_version(version);
        config.principal = self.principal.map(str::to_owned);
        config.credentials = self.credentials.clone();
        for (key, value) in &self.properties {
            // `set`, not `insert`: the JavaScript capture proposes the key "x y", which
            // `insert` refuses (a space); neither official client validates keys (SPEC §10).
            config.properties.set((*key).to_owned(), (*value).to_owned());
        }
        config
    }
}

const LIVE_HOST: &str = "ws://127.0.0.1:18080";

/// The inputs of each `python_live` entry that is a first connect.
fn python_inputs(name: &str) -> Option<Inputs> {
    let bob = || Credentials::password("secret");
    Some(match name {
        // Despite its name, the capture's sp holds only $Environment: no user property.
        "connect_with_principal_and_properties" | "first_connect_of_reconnect_test" => {
            Inputs::new(LIVE_HOST, Some("bob"), bob())
        }
        "connect_anonymous_default_session" => Inputs::new(LIVE_HOST, None, Credentials::None),
        "connect_url_with_path_ws://127.0.0.1:18080/some/path/" => Inputs::new(
            "ws://127.0.0.1:18080/some/path/",
            Some("bob"),
            Credentials::password("pw"),
        ),
        "connect_binary_credentials_and_non_ascii_property" => {
            Inputs::new(LIVE_HOST, Some("bob"), Credentials::custom([0x00, 0xff]))
                .with_property("kü", "vé \"q\" \\ 'a'\ttab")
        }
        "reconnect" => return None,
        other => panic!("python_live.{other}: a new capture; write down its inputs here"),
    })
}

/// The inputs of each `javascript_live` entry that is a first connect.
fn javascript_inputs(name: &str) -> Option<Inputs> {
    Some(match name {
        "connect_with_principal_and_properties" => {
            Inputs::new(LIVE_HOST, Some("bob"), Credentials::password("secret"))
                .with_property("Foo", "bar")
                .with_property("x y", "1")
        }
        "connect_without_principal" => Inputs::new(LIVE_HOST, None, Credentials::None),
        "reconnect_after_transport_drop" | "reconnect_after_idle_detection" => return None,
        other => panic!("javascript_live.{other}: a new capture; write down its inputs here"),
    })
}

/// Drains `session` and returns the connection request it asked for.
fn next_connect(session: &mut ClientSession) -> Option<ConnectRequest> {
    let mut found = None;
    while let Some(output) = session.poll_output() {
        if let Output::Connect(request) = output {
            assert!(found.is_none(), "two connection requests at once");
            found = Some(request);
        }
    }
    found
}

/// The first [`Output::Connect`] of a new session.
fn first_connect(config: ClientConfig) -> ConnectRequest {
    let mut session = ClientSession::new(config, Instant::now());
    next_connect(&mut session).unwrap_or_else(|| panic!("a new session asks for no connection"))
}

/// `(name, value)` pairs of a vector's header list.
fn header_pairs(v: &V<'_>) -> Vec<(String, String)> {
    v.arr()
        .iter()
        .map(|h| match h.arr().as_slice() {
            [name, value] => (name.str().to_owned(), value.str().to_owned()),
            _ => panic!("{}: not a [name, value] pair", h.path),
        })
        .collect()
}

/// The Diffusion parameters among the headers the official client sent, in order.
fn parameter_headers(v: &V<'_>) -> Vec<(String, String)> {
    header_pairs(v)
        .into_iter()
        .filter(|(n, _)| PARAM_NAMES.contains(&n.as_str()))
        .collect()
}

fn owned(headers: Vec<(&'static str, String)>) -> Vec<(String, String)> {
    headers.into_iter().map(|(n, v)| (n.to_owned(), v)).collect()
}

/// Splits a quoted-list `sp` (the Python form) into what precedes the trailing
/// `"$Environment","VALUE"` pair and VALUE. The pair must be there, and last.
fn split_quoted_environment<'a>(sp: &'a str, at: &str) -> (&'a str, &'a str) {
    const KEY: &str = "\"$Environment\",\"";
    let start = sp
        .rfind(KEY)
        .unwrap_or_else(|| panic!("{at}: no $Environment in sp {sp:?}"));
    let value = sp[start + KEY.len()..]
        .strip_suffix('"')
        .unwrap_or_else(|| panic!("{at}: $Environment is not the last property in {sp:?}"));
    assert!(
        !value.contains('"'),
        "{at}: $Environment is not the last property in {sp:?}"
    );
    let before = &sp[..start];
    let before = before.strip_suffix(',').unwrap_or(before);
    (before, value)
}

/// The same for a JSON `sp` (the JavaScript form, already percent-decoded): the object
/// without its trailing `"$Environment":"VALUE"` member, and VALUE.
fn split_json_environment(sp: &str, at: &str) -> (String, String) {
    const KEY: &str = "\"$Environment\":\"";
    let start = sp
        .rfind(KEY)
        .unwrap_or_else(|| panic!("{at}: no $Environment in sp {sp:?}"));
    let value = sp[start + KEY.len()..]
        .strip_suffix("\"}")
        .unwrap_or_else(|| panic!("{at}: $Environment is not the last property in {sp:?}"));
    assert!(
        !value.contains('"'),
        "{at}: $Environment is not the last property in {sp:?}"
    );
    let before = &sp[..start];
    let before = before.strip_suffix(',').unwrap_or(before);
    (format!("{before}}}"), value.to_owned())
}

/// Compares parameter lists: same names in the same order; `ty` ours, `ca` 8 against
/// 10, `sp` compared by `compare_sp`; every other value equal.
fn assert_parameters(
    ours: &[(String, String)],
    theirs: &[(String, String)],
    client_type: &str,
    compare_sp: impl Fn(&str, &str),
    at: &str,
) {
    let names = |p: &[(String, String)]| p.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(ours), names(theirs), "{at}: parameter names and order");
    for ((name, ours), (_, theirs)) in ours.iter().zip(theirs) {
        match name.as_str() {
            "ty" => assert_eq!(ours, client_type, "{at}: our ty"),
            "ca" => {
                // We do not inflate zlib, so we do not claim the ZLIB bit (0x02).
                assert_eq!(ours, "8", "{at}: our ca");
                assert_eq!(theirs, "10", "{at}: the official client's ca");
            }
            "sp" => compare_sp(ours, theirs),
            _ => assert_eq!(ours, theirs, "{at}: parameter {name}"),
        }
    }
}

/// Header form (protocol 25): our headers against the Python client's.
fn assert_python_request(config: &ClientConfig, theirs: &[(String, String)], at: &str) {
    let ours = owned(first_connect(config.clone()).headers());
    let compare_sp = |ours: &str, theirs: &str| {
        let (ours_rest, ours_env) = split_quoted_environment(ours, at);
        let (theirs_rest, theirs_env) = split_quoted_environment(theirs, at);
        assert!(theirs_env.starts_with("PYTHON_"), "{at}: {theirs_env}");
        assert_eq!(Some(ours_env), config.environment.as_deref(), "{at}");
        assert_eq!(ours_rest, theirs_rest, "{at}: sp without $Environment");
    };
    assert_parameters(&ours, theirs, &config.client_type, compare_sp, at);

    // With the official client's $Environment, sp is the same byte for byte.
    let env = theirs
        .iter()
        .find(|(n, _)| n == "sp")
        .map(|(_, sp)| split_quoted_environment(sp, at).1.to_owned())
        .unwrap_or_else(|| panic!("{at}: no sp"));
    let mut config = config.clone();
    config.environment = Some(env);
    let ours = owned(first_connect(config.clone()).headers());
    assert_parameters(
        &ours,
        theirs,
        &config.client_type,
        |o, t| assert_eq!(o, t, "{at}: sp"),
        at,
    );
}

/// Query form (protocol 29): our URI's query against the JavaScript client's.
fn assert_javascript_request(config: &ClientConfig, their_path: &str, at: &str) {
    let (their_path, their_query) = their_path
        .split_once('?')
        .unwrap_or_else(|| panic!("{at}: no query in {their_path}"));
    let raw = |q: &str| -> Vec<(String, String)> {
        query_pairs(q)
            .into_iter()
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect()
    };
    let theirs = raw(their_query);
    let request = first_connect(config.clone());
    assert!(
        request.headers().is_empty(),
        "{at}: protocol 29 sends no parameter headers"
    );
    let uri = request.uri();
    let (our_base, our_query) = uri
        .split_once('?')
        .unwrap_or_else(|| panic!("{at}: no query in our {uri}"));
    assert_eq!(config.url.path, their_path, "{at}: path");
    assert_eq!(our_base, config.url.to_string(), "{at}");
    let compare_sp = |ours: &str, theirs: &str| {
        let (ours_rest, ours_env) = split_json_environment(&percent_decode(ours), at);
        let (theirs_rest, theirs_env) = split_json_environment(&percent_decode(theirs), at);
        assert!(theirs_env.starts_with("NODE_"), "{at}: {theirs_env}");
        assert_eq!(Some(ours_env.as_str()), config.environment.as_deref(), "{at}");
        assert_eq!(ours_rest, theirs_rest, "{at}: sp without $Environment");
    };
    assert_parameters(&raw(our_query), &theirs, &config.client_type, compare_sp, at);

    // With the official client's $Environment, the query is the same byte for byte
    // (percent-encoding included) but for ca.
    let env = theirs
        .iter()
        .find(|(n, _)| n == "sp")
        .map(|(_, sp)| split_json_environment(&percent_decode(sp), at).1)
        .unwrap_or_else(|| panic!("{at}: no sp"));
    let mut config = config.clone();
    config.environment = Some(env);
    let uri = first_connect(config.clone()).uri();
    let our_query = uri.split_once('?').map(|(_, q)| q).unwrap_or_default();
    assert_eq!(
        our_query,
        their_query.replacen("&ca=10&", "&ca=8&", 1),
        "{at}: the whole query"
    );
}

#[test]
fn python_first_connects_equal_the_live_captures() {
    let doc = load("connection_request.json");
    let mut checked = 0;
    for (name, e) in doc.root().get("python_live").obj() {
        if name == "source" {
            continue;
        }
        let Some(inputs) = python_inputs(name) else {
            continue;
        };
        let config = inputs.config(ProtocolVersion::V25);
        let headers = header_pairs(&e.get("headers"));
        let host = headers.iter().find(|(n, _)| n == "Host").map(|(_, v)| v.as_str());
        // Python resolves `diffusion` against the URL given, as we do; no query.
        let request = first_connect(config.clone());
        assert_eq!(request.uri(), config.url.to_string(), "{}", e.path);
        assert_eq!(config.url.path, e.get("path").str(), "{}", e.path);
        assert_eq!(Some(config.url.authority.as_str()), host, "{}", e.path);
        assert_python_request(&config, &parameter_headers(&e.get("headers")), &e.path);
        checked += 1;
    }
    assert_eq!(checked, 5);
}

#[test]
fn javascript_first_connects_equal_the_live_captures() {
    let doc = load("connection_request.json");
    let mut checked = 0;
    for (name, e) in doc.root().get("javascript_live").obj() {
        if name == "source" {
            continue;
        }
        let Some(inputs) = javascript_inputs(name) else {
            continue;
        };
        let config = inputs.config(ProtocolVersion::V29);
        assert_javascript_request(&config, e.get("path").str(), &e.path);
        checked += 1;
    }
    assert_eq!(checked, 2);
}

/// The Python client's own encoder, given a property (`python_encoder.connect`: bob,
/// "secret", {Foo: bar}), against our session's first request.
#[test]
fn python_encoder_with_a_property() {
    let doc = load("connection_request.json");
    let e = doc.root().get("python_encoder").get("connect");
    let inputs = Inputs::new(e.get("url").str(), Some("bob"), Credentials::password("secret"))
        .with_property("Foo", "bar");
    let config = inputs.config(ProtocolVersion::V25);
    assert_eq!(config.url.to_string(), e.get("url").str(), "{}", e.path);
    assert_python_request(&config, &e.get("headers").string_pairs(), &e.path);
}

// ---- reconnection ----------------------------------------------------------------------

/// A successful (100) connection response with the token of the live captures.
fn response_100(version: ProtocolVersion) -> Bytes {
    let mut frame = vec![0x23, version.number(), 100];
    frame.extend(unhex("1122334455667788" /* server part */));
    frame.extend(unhex("0000000100000002" /* value part */));
    frame.extend(b"ABCDEFGHIJKLMNOPQRSTUVWX");
    frame.extend(unhex("0000000000015f90" /* 90 000 ms */));
    frame.extend(unhex("00989680" /* 10 000 000 */));
    Bytes::from(frame)
}

/// Plays the live reconnection captures' first connection (`session_flows.json`,
/// `py_reconnect` / `js_reconnect`): a 100 response, one USER_PING from the client and its
/// reply, a SYSTEM_PING and a USER_PING from the server (both answered), then the TCP
/// connection drops. Returns the reconnection request.
fn reconnect_after_the_live_flow(config: ClientConfig) -> ConnectRequest {
    let t0 = Instant::now();
    let version = config.version;
    let mut session = ClientSession::new(config, t0);
    next_connect(&mut session).unwrap_or_else(|| panic!("no first connection request"));
    session.handle_frame(t0, response_100(version));
    assert!(next_connect(&mut session).is_none());
    session
        .ping(t0, SystemTime::now())
        .unwrap_or_else(|e| panic!("ping: {e}"));
    for hex in ["0601", "003701", "003802"] {
        session.handle_frame(t0, Bytes::from(unhex(hex)));
    }
    assert!(next_connect(&mut session).is_none());
    let mut now = t0 + Duration::from_millis(800);
    session.handle_transport_closed(now, diffusion_proto::TransportError::Ended);
    for _ in 0..10 {
        if let Some(request) = next_connect(&mut session) {
            return request;
        }
        now = session
            .poll_timeout()
            .unwrap_or_else(|| panic!("neither a reconnection nor a deadline"));
        session.handle_timeout(now);
    }
    panic!("no reconnection request")
}

/// Protocol 29: the JavaScript client's reconnection (`r=5000`, so its reconnection
/// timeout was 5 s) equals ours after the same exchange, `c`, `cs` and `ss` included.
#[test]
fn javascript_reconnect_equals_the_live_capture() {
    let doc = load("connection_request.json");
    let e = doc
        .root()
        .get("javascript_live")
        .get("reconnect_after_transport_drop");
    let mut config =
        Inputs::new(LIVE_HOST, Some("bob"), Credentials::password("secret")).config(ProtocolVersion::V29);
    config.reconnect = Some(ReconnectConfig {
        timeout: Duration::from_secs(5),
        strategy: Arc::new(FixedDelay(Duration::from_millis(200))),
    });
    let request = reconnect_after_the_live_flow(config.clone());
    assert!(request.is_reconnect());
    let their_path = e.get("path").str();
    let (_, their_query) = their_path.split_once('?').unwrap_or_default();
    let theirs: Vec<(String, String)> = query_pairs(their_query)
        .into_iter()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    let uri = request.uri();
    let (_, our_query) = uri.split_once('?').unwrap_or_default();
    let ours: Vec<(String, String)> = query_pairs(our_query)
        .into_iter()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    let compare_sp = |ours: &str, theirs: &str| {
        let (ours_rest, _) = split_json_environment(&percent_decode(ours), &e.path);
        let (theirs_rest, _) = split_json_environment(&percent_decode(theirs), &e.path);
        assert_eq!(ours_rest, theirs_rest, "{}: sp without $Environment", e.path);
    };
    assert_parameters(&ours, &theirs, &config.client_type, compare_sp, &e.path);
}

/// Protocol 25: the Python client's reconnection equals ours after the same exchange but
/// for `cs`: the Python client keeps no recovery buffer and always sends `cs=0`, while we
/// send the sequence number of the oldest message we can still re-send (the JavaScript
/// client's definition, SPEC §11.1): 1 here.
#[test]
fn python_reconnect_equals_the_live_capture_but_for_cs() {
    let doc = load("connection_request.json");
    let e = doc.root().get("python_live").get("reconnect");
    let config =
        Inputs::new(LIVE_HOST, Some("bob"), Credentials::password("secret")).config(ProtocolVersion::V25);
    let request = reconnect_after_the_live_flow(config.clone());
    assert!(request.is_reconnect());
    let theirs = parameter_headers(&e.get("headers"));
    let mut ours = owned(request.headers());
    for (name, value) in ours.iter_mut() {
        if name == "cs" {
            assert_eq!(value, "1", "{}: our cs", e.path);
            *value = "0".to_owned();
        }
    }
    let compare_sp = |ours: &str, theirs: &str| {
        let (ours_rest, _) = split_quoted_environment(ours, &e.path);
        let (theirs_rest, _) = split_quoted_environment(theirs, &e.path);
        assert_eq!(ours_rest, theirs_rest, "{}: sp without $Environment", e.path);
    };
    assert_parameters(&ours, &theirs, &config.client_type, compare_sp, &e.path);
    assert!(
        theirs.iter().any(|(n, v)| n == "cs" && v == "0"),
        "{}: the Python client's cs",
        e.path
    );
}
