//! A session's identity and its secret: the [`SessionId`] every side shows, and the
//! [`SessionToken`] that lets a client reconnect, which nothing ever shows.

/// A session's identity: `server-value` as two u64 words, shown as `%016x-%016x`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId {
    /// The server part.
    pub server: u64,
    /// The value part.
    pub value: u64,
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}-{:016x}", self.server, self.value)
    }
}

/// As its text, `0123456789abcdef-0123456789abcdef`.
#[cfg(feature = "serde")]
impl serde::Serialize for SessionId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Why a text is not a session id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a session id of the form 0123456789abcdef-0123456789abcdef")]
pub struct ParseSessionIdError(pub String);

impl std::str::FromStr for SessionId {
    type Err = ParseSessionIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseSessionIdError(s.to_owned());
        let (server, value) = s.split_once('-').ok_or_else(err)?;
        let word = |w: &str| {
            if w.is_empty() || w.len() > 16 || !w.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(err());
            }
            u64::from_str_radix(w, 16).map_err(|_| err())
        };
        Ok(SessionId {
            server: word(server)?,
            value: word(value)?,
        })
    }
}

/// The 24-byte secret that lets a client reconnect to its session. Never shown in `Debug`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionToken(pub(crate) [u8; 24]);

impl SessionToken {
    /// A token from its 24 bytes.
    pub fn new(bytes: [u8; 24]) -> Self {
        SessionToken(bytes)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 24] {
        &self.0
    }

    /// The token as the `c` parameter text (both clients treat it as ASCII).
    pub fn to_param(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }

    /// Reads a `c` parameter: exactly 24 bytes of text.
    pub fn from_param(text: &str) -> Option<Self> {
        text.as_bytes().try_into().ok().map(SessionToken)
    }
}

impl std::fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionToken(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_redacted() {
        let t = SessionToken::new(*b"ABCDEFGHIJKLMNOPQRSTUVWX");
        assert!(!format!("{t:?}").contains("ABC"));
    }

    #[test]
    fn session_id_text_round_trips_and_rejects_junk() {
        let id: SessionId = "ffffffffffffffff-0000000300000000".parse().unwrap();
        assert_eq!(id.server, u64::MAX);
        assert_eq!(id.to_string(), "ffffffffffffffff-0000000300000000");
        for bad in ["", "-", "1-", "x-1", "1-1-1", "+1-1", "00000000000000001-1"] {
            assert!(bad.parse::<SessionId>().is_err(), "{bad}");
        }
    }
}
