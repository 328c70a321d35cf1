//! `captures.json`: real exchanges of protocols 4..15 from the dissector's captures.
//!
//! None of them is version 25, so what is checked is that our codec reads what it can
//! consistently and refuses the rest cleanly:
//! - upgrade requests: refused with `UnsupportedVersion`, and read correctly as version 25;
//! - connection responses: header and by-length fields as decoded, refused by `parse`;
//! - the session cookie of the 101 response is the session id of the connection response;
//! - type 0 SERVICE_REQUEST, ABORT and CLOSE_REQUEST decode and re-encode byte for byte;
//! - legacy type 1/2 (response/error with a service id) and pre-v9 frames are unknown
//!   types to us, never a panic, and their legacy bodies read with our primitives.

use bytes::Bytes;
use diffusion_proto::wire::Reader;
use diffusion_proto::{Message, MessageError, ParamError, ServiceId, SessionId};

use crate::json::{load, unhex, V};
use crate::request::check_captured_request;
use crate::response::check_captured_response;

/// The type codes of protocol 25/29 that `Message` knows.
const KNOWN_TYPES: [u8; 7] = [0, 4, 5, 6, 7, 28, 29];

fn check_message_frame(frame: &[u8], d: &V<'_>, at: &str) {
    let code: u8 = d.get("type").int();
    assert_eq!(d.get("type_byte").str(), format!("0x{:02x}", frame[0]), "{at}");
    assert_eq!(frame[0] & 0x3f, code, "{at}");
    let decoded = Message::decode(&Bytes::copy_from_slice(frame));
    match code {
        0 => {
            let m = decoded.unwrap_or_else(|e| panic!("{at}: {e}"));
            let Message::ServiceRequest {
                service,
                cid,
                payload,
            } = &m
            else {
                panic!("{at}: {m:?}")
            };
            assert_eq!(service.0, d.get("service_id").int::<i32>(), "{at}");
            assert_eq!(*cid, d.get("cid").int::<i64>(), "{at}");
            assert_eq!(hex::encode(payload), d.get("body_hex").str(), "{at}");
            let theirs = d.get("service_name");
            if let Some(ours) = service.name() {
                assert_eq!(Some(ours), (!theirs.is_null()).then(|| theirs.str()), "{at}");
            }
            assert_eq!(m.to_bytes().as_ref(), frame, "{at}: re-encoded");
        }
        1 | 2 => {
            // Protocol 9..15 response/error: not a type of ours.
            assert_eq!(
                decoded,
                Err(MessageError::UnknownType {
                    type_code: code,
                    byte: frame[0]
                }),
                "{at}"
            );
            // Its body is still made of our primitives: service id, cid[, error].
            let mut r = Reader::new(&frame[1..]);
            assert_eq!(r.varint_i32(), Ok(d.get("service_id").int::<i32>()), "{at}");
            assert_eq!(r.varint_i64(), Ok(d.get("cid").int::<i64>()), "{at}");
            if code == 2 {
                assert_eq!(r.string(), Ok(d.get("error_description").str()), "{at}");
                assert_eq!(r.varint_i32(), Ok(d.get("error_code").int::<i32>()), "{at}");
            }
            assert_eq!(hex::encode(r.rest()), d.get("body_hex").str(), "{at}");
            if let Some(ours) = ServiceId(d.get("service_id").int()).name() {
                assert_eq!(ours, d.get("service_name").str(), "{at}");
            }
        }
        28 | 29 => {
            let m = decoded.unwrap_or_else(|e| panic!("{at}: {e}"));
            let kind = d.get("kind").str();
            let expected = if code == 28 {
                Message::Abort
            } else {
                Message::CloseRequest
            };
            assert_eq!(m, expected, "{at}: {kind}");
            assert_eq!(m.to_bytes().as_ref(), frame, "{at}");
        }
        other => panic!("{at}: no check for decoded type {other}"),
    }
}

/// A frame of the pre-v9 protocols: whatever the codec makes of it, never a panic, and
/// an unknown type byte is reported as such.
fn check_legacy_frame(frame: &[u8], at: &str) {
    match Message::decode(&Bytes::copy_from_slice(frame)) {
        Err(MessageError::UnknownType { type_code, byte }) => {
            assert_eq!(byte, frame[0], "{at}");
            assert!(!KNOWN_TYPES.contains(&type_code), "{at}");
        }
        Err(other) => panic!("{at}: unexpected error {other}"),
        Ok(m) => {
            assert!(KNOWN_TYPES.contains(&(frame[0] & 0x3f)), "{at}");
            // What decodes re-encodes to the same message.
            assert_eq!(Message::decode(&m.to_bytes()), Ok(m), "{at}");
        }
    }
}

#[test]
fn captured_connections() {
    let doc = load("captures.json");
    let mut connections = 0;
    let mut frames = 0;
    let mut messages = 0;
    for capture in doc.root().get("captures").arr() {
        let name = capture.get("capture").str();
        for conn in capture.get("connections").arr() {
            let at = &conn.path;
            let (as_is, version) = check_captured_request(&conn);
            assert_eq!(as_is, Err(ParamError::UnsupportedVersion(version)), "{at}");

            let cookie = conn
                .get("upgrade_response_headers")
                .arr()
                .iter()
                .find_map(|h| h.str().strip_prefix("Set-Cookie: session="))
                .map(|c| {
                    let text = c.split(';').next().unwrap_or_default();
                    text.parse::<SessionId>()
                        .unwrap_or_else(|e| panic!("{at}: cookie: {e}"))
                });

            for (i, f) in conn.get("frames").arr().iter().enumerate() {
                let at = &f.path;
                let frame = unhex(f.get("hex").str());
                let server = f.get("direction").str() == "server->client";
                let decoded = f.opt("decoded");
                if i == 0 {
                    assert!(server, "{at}: the server speaks first");
                    let response = decoded.as_ref().map(|d| d.get("connection_response"));
                    check_captured_response(&frame, response.as_ref(), at);
                    // The cookie names the session the response opened.
                    match (&response, cookie) {
                        (Some(r), Some(id)) if r.opt("session_id").is_some() => {
                            assert_eq!(id.to_string(), r.get("session_id").str(), "{at}")
                        }
                        (None, Some(id)) => {
                            // Protocol 4: the client id follows the code in the text.
                            let text = String::from_utf8_lossy(&frame).to_ascii_lowercase();
                            assert!(text.ends_with(&id.to_string()), "{at}: {text}");
                        }
                        (_, None) => assert!(
                            response.is_none_or(|r| r.get("response_code").int::<u8>() != 100),
                            "{at}: a session without a cookie"
                        ),
                        _ => panic!("{at}: a cookie without a session"),
                    }
                } else if let Some(d) = decoded.as_ref().filter(|d| d.opt("type").is_some()) {
                    check_message_frame(&frame, d, at);
                    messages += 1;
                } else {
                    let legacy =
                        decoded.is_none() || capture.get("note").str().contains("legacy protocol (< 9)");
                    assert!(legacy, "{at}: unclassified frame in {name}");
                    check_legacy_frame(&frame, at);
                }
                frames += 1;
            }
            connections += 1;
        }
    }
    assert_eq!(connections, 13);
    assert!(frames > connections && messages > 0);
    println!("captures.json: {connections} connections, {frames} frames, {messages} messages");
}
