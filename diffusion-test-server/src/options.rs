//! What a test server is started with: port, users, ping period, size limit, TLS, and the
//! transport faults it injects to stand in for a misbehaving server or network.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use bytes::Bytes;
use diffusion_proto::{DataType, ResponseCode, Server, TopicSpecification, TopicValue};

use crate::tls::TlsIdentity;

/// How a [`crate::TestServer`] behaves. [`Options::default`] is a well-behaved server on
/// any free port: anonymous sessions only, 90 s ping period (as every real capture), a
/// 10 000 000-byte maximum message size, no fault, plain `ws://`, no JSON output.
#[derive(Debug, Clone)]
pub struct Options {
    /// TCP port on 127.0.0.1; 0 picks any free port (see [`crate::TestServer::addr`]).
    pub port: u16,
    /// Principals and their plain passwords. Anonymous sessions are always admitted; a
    /// principal not listed, or a wrong password, is refused with 116.
    pub users: Vec<(String, String)>,
    /// Interval between SYSTEM_PINGs to each session, also advertised in the connection
    /// response; [`Duration::ZERO`] sends none.
    pub ping_period: Duration,
    /// Advertised in the connection response and enforced on every client message: a
    /// longer one closes the session (ABORT).
    pub max_message_size: u32,
    /// The fault injected from the start (see [`crate::TestServer::set_fault`]).
    pub fault: Fault,
    /// When set, every reconnection request (one with `c`) is answered with this code in
    /// the 3-byte form and the transport closed, instead of looking the session up.
    pub reconnect_answer: Option<ResponseCode>,
    /// Serve `wss://` with this certificate and key (needs the `tls` feature).
    pub tls: Option<TlsIdentity>,
    /// Print every log entry as one JSON line on stdout, flushed per line.
    pub log_json: bool,
    /// Topics the server holds from the start, in this order.
    pub topics: Vec<TopicSeed>,
    /// Whether topic updates may reach subscribers as binary deltas (when shorter than the
    /// value); false sends whole values only.
    pub deltas: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            port: 0,
            users: Vec::new(),
            ping_period: Duration::from_secs(90),
            max_message_size: 10_000_000,
            fault: Fault::None,
            reconnect_answer: None,
            tls: None,
            log_json: false,
            topics: Vec::new(),
            deltas: true,
        }
    }
}

impl Options {
    /// Adds a principal with a plain password.
    pub fn user(mut self, principal: impl Into<String>, password: impl Into<String>) -> Self {
        self.users.push((principal.into(), password.into()));
        self
    }

    /// Adds a topic the server holds from the start.
    pub fn topic(mut self, topic: TopicSeed) -> Self {
        self.topics.push(topic);
        self
    }
}

/// A topic the server holds from the start: `--topic PATH:TYPE[=VALUE]`.
///
/// ```
/// use diffusion_test_server::TopicSeed;
/// let seed: TopicSeed = r#"prices/json:json={"bid":1.5}"#.parse()?;
/// assert_eq!(seed.path, "prices/json");
/// assert_eq!(seed.value.as_deref(), Some(&b"\xa1\x63bid\xfb\x3f\xf8\0\0\0\0\0\0"[..]));
/// # Ok::<(), String>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSeed {
    /// The topic path.
    pub path: String,
    /// Its type and properties.
    pub specification: TopicSpecification,
    /// Its encoded value, if it starts with one.
    pub value: Option<Bytes>,
}

impl FromStr for TopicSeed {
    type Err = String;

    /// `PATH:TYPE[=VALUE]`: TYPE `json`, `string`, `int64`, `double` or `binary`; VALUE read
    /// per type (JSON text, the text itself, a number, hexadecimal). PATH may hold `:` but
    /// not `=`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (head, text) = match s.split_once('=') {
            Some((head, text)) => (head, Some(text)),
            None => (s, None),
        };
        let Some((path, type_name)) = head.rsplit_once(':') else {
            return Err(format!("topic {s:?} is not PATH:TYPE[=VALUE]"));
        };
        Server::validate_topic_path(path).map_err(|e| e.to_string())?;
        let data_type = DataType::from_name(type_name)
            .filter(|d| *d != DataType::RecordV2)
            .ok_or_else(|| {
                format!("topic type {type_name:?} is not json, string, int64, double or binary")
            })?;
        let value = text
            .map(|text| TopicValue::from_text(data_type, text).and_then(|v| v.encode()))
            .transpose()
            .map_err(|e| format!("topic {path:?}: {e}"))?;
        Ok(TopicSeed {
            path: path.to_owned(),
            specification: TopicSpecification::new(data_type.topic_type()),
            value,
        })
    }
}

/// A transport fault: how the test server misbehaves. Faults act on connections and
/// frames, never on the protocol's own decisions, which stay in `diffusion_proto::server`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    /// Behave.
    #[default]
    None,
    /// Answer every connection request, first connects and reconnections alike, with the
    /// 3-byte response `23 <client's version> <code>` and close the TCP connection (no
    /// WebSocket close frame). Any byte is allowed, known code or not.
    RejectAll(u8),
    /// Drop a connection like a network failure: when its `messages`-th client message
    /// arrives, that message is handled by the protocol server but nothing more is sent on
    /// the connection (the message's answer is lost in transit, to be re-sent from the
    /// server's recovery buffer after a reconnection), and the TCP connection is closed
    /// without ABORT or WebSocket close frame. The session is kept for a reconnection.
    /// 0 drops right after the connection response. Only the first `times` connections so
    /// affected are dropped; later ones behave.
    DropAfter {
        /// The message that triggers the drop, counted from the connection response (or
        /// from when the fault was set, on connections already open).
        messages: u32,
        /// FIN or RST.
        how: DropKind,
        /// How many connections are dropped, counted from when the fault was set.
        times: u32,
    },
    /// Once a connection has carried `after_messages` client messages (each handled and
    /// answered), answer nothing more on it: no responses, no system pings, no WebSocket
    /// pongs, never a close. What arrives is read and discarded.
    Stall {
        /// Client messages handled before the stall, counted from the connection response
        /// (or from when the fault was set); 0 stalls right after the connection response
        /// (or at once).
        after_messages: u32,
    },
    /// Complete the WebSocket upgrade and then send nothing at all, not even a connection
    /// response (for connection timeouts). What arrives is read and discarded.
    NoResponse,
    /// Replace each successful (55-byte) connection response with a malformed one, then
    /// close the TCP connection. Rejections are sent as they are.
    MalformedResponse(Malformed),
}

impl Fault {
    /// `DropAfter` with the given message count and kind, dropping one connection.
    pub fn drop_after(messages: u32, how: DropKind) -> Self {
        Fault::DropAfter {
            messages,
            how,
            times: 1,
        }
    }
}

/// How a dropped TCP connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DropKind {
    /// An orderly shutdown: the client reads end-of-stream.
    #[default]
    Fin,
    /// `SO_LINGER` 0, then close: the client reads a connection reset.
    Rst,
}

impl FromStr for DropKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fin" => Ok(DropKind::Fin),
            "rst" => Ok(DropKind::Rst),
            _ => Err(format!("drop kind {s:?} is not fin or rst")),
        }
    }
}

impl fmt::Display for DropKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DropKind::Fin => "fin",
            DropKind::Rst => "rst",
        })
    }
}

/// A malformed connection response, made from the valid 55-byte one the protocol server
/// produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// Its first 20 bytes.
    Truncated,
    /// Protocol byte `0x24` instead of `#`.
    WrongProtocolByte,
    /// Version byte one above the client's: 26 for a v25 client, 30 for v29.
    WrongVersion,
    /// All 55 bytes with the unknown response code 123 (`0x7b`), so that a client must
    /// check the code and not just the length.
    UnknownCode,
    /// 56 bytes: the response and one `00` byte.
    TrailingBytes,
    /// An empty binary frame.
    Empty,
    /// The 55 bytes sent as a text frame (lossy UTF-8: invalid bytes become U+FFFD).
    TextFrame,
}

impl Malformed {
    /// Every variant, in declaration order.
    pub const ALL: [Malformed; 7] = [
        Malformed::Truncated,
        Malformed::WrongProtocolByte,
        Malformed::WrongVersion,
        Malformed::UnknownCode,
        Malformed::TrailingBytes,
        Malformed::Empty,
        Malformed::TextFrame,
    ];

    /// The command-line name, e.g. `wrong-protocol-byte`.
    pub fn name(self) -> &'static str {
        match self {
            Malformed::Truncated => "truncated",
            Malformed::WrongProtocolByte => "wrong-protocol-byte",
            Malformed::WrongVersion => "wrong-version",
            Malformed::UnknownCode => "unknown-code",
            Malformed::TrailingBytes => "trailing-bytes",
            Malformed::Empty => "empty",
            Malformed::TextFrame => "text-frame",
        }
    }

    /// The frame to send instead of `response` (a valid 55-byte connection response), and
    /// whether it goes as a text frame.
    pub fn apply(self, response: &[u8]) -> (Vec<u8>, bool) {
        let mut frame = response.to_vec();
        match self {
            Malformed::Truncated => frame.truncate(20),
            Malformed::WrongProtocolByte => set_byte(&mut frame, 0, 0x24),
            Malformed::WrongVersion => {
                let version = frame.get(1).copied().unwrap_or(25);
                set_byte(&mut frame, 1, version.wrapping_add(1));
            }
            Malformed::UnknownCode => set_byte(&mut frame, 2, 0x7b),
            Malformed::TrailingBytes => frame.push(0),
            Malformed::Empty => frame.clear(),
            Malformed::TextFrame => return (frame, true),
        }
        (frame, false)
    }
}

fn set_byte(frame: &mut [u8], at: usize, value: u8) {
    if let Some(b) = frame.get_mut(at) {
        *b = value;
    }
}

impl FromStr for Malformed {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Malformed::ALL.into_iter().find(|m| m.name() == s).ok_or_else(|| {
            let names: Vec<_> = Malformed::ALL.iter().map(|m| m.name()).collect();
            format!("malformed kind {s:?} is not one of {}", names.join(", "))
        })
    }
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_variants_from_a_55_byte_response() {
        let mut response = vec![0x23, 25, 100];
        response.resize(55, 0x41);
        let len = |m: Malformed| m.apply(&response).0.len();
        assert_eq!(len(Malformed::Truncated), 20);
        assert_eq!(Malformed::WrongProtocolByte.apply(&response).0[0], 0x24);
        assert_eq!(Malformed::WrongVersion.apply(&response).0[1], 26);
        assert_eq!(Malformed::UnknownCode.apply(&response).0[2], 123);
        assert_eq!(len(Malformed::UnknownCode), 55);
        assert_eq!(len(Malformed::TrailingBytes), 56);
        assert_eq!(len(Malformed::Empty), 0);
        assert_eq!(Malformed::TextFrame.apply(&response), (response.clone(), true));
        for m in Malformed::ALL {
            assert_eq!(m.name().parse::<Malformed>(), Ok(m));
        }
        assert!("nonsense".parse::<Malformed>().is_err());
    }
}
