//! What the server is given: its [`ServerConfig`], the [`ConnectionId`]s the adapter picks,
//! and the [`UpgradeRequest`] of each new connection.

use std::fmt;
use std::time::Duration;

/// How the server behaves; [`ServerConfig::default`] matches every real capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Interval between SYSTEM_PINGs to each attached session, also advertised in the
    /// connection response. Default 90 s; [`Duration::ZERO`] disables pings (and advertises 0).
    pub ping_period: Duration,
    /// Advertised in bytes 51..55 of 100/106 responses and enforced on every inbound frame:
    /// a longer frame closes the session. Default 10 000 000.
    pub max_message_size: u32,
    /// The server part of every session id.
    pub server_id: u64,
    /// Consecutive unanswered SYSTEM_PINGs after which the session is closed as
    /// "client unresponsive" when the next ping falls due. Default 2; 0 never closes.
    pub unanswered_pings_limit: u32,
    /// How many server→client messages each session keeps for re-sending after a
    /// reconnection. Default 1024; 0 keeps none (any loss then answers 106).
    pub recovery_buffer: usize,
    /// Whether a topic update may reach subscribers as a binary delta (when the type and
    /// properties allow it and the delta is shorter than the value, TOPICS §3.6). Default
    /// true; false sends every update as a whole value.
    pub topic_deltas: bool,
    /// The most topics the tree holds; adding one more fails with 9007. Default 100 000.
    pub max_topics: usize,
    /// The longest topic value in bytes; a longer update fails with 501. Default 1 MiB.
    /// (Values arriving from clients are also bounded by `max_message_size`.)
    pub max_topic_value_size: usize,
    /// The most selectors one session holds, all scopes together; one more SUBSCRIBE fails
    /// with 111. Default 1 000.
    pub max_selectors_per_session: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            ping_period: Duration::from_secs(90),
            max_message_size: 10_000_000,
            server_id: 0x1122_3344_5566_7788,
            unanswered_pings_limit: 2,
            recovery_buffer: 1024,
            topic_deltas: true,
            max_topics: 100_000,
            max_topic_value_size: 1 << 20,
            max_selectors_per_session: 1_000,
        }
    }
}

/// Identifies one transport (WebSocket connection); chosen by the adapter, never reused
/// while the server still knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize), serde(transparent))]
pub struct ConnectionId(pub u64);

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn#{}", self.0)
    }
}

/// The HTTP upgrade request of a new WebSocket connection, as far as the protocol needs it.
///
/// `Debug` shows the path and the header names only: the query and the header values carry
/// the credentials and the session token.
#[derive(Clone, Default)]
pub struct UpgradeRequest<'a> {
    /// The request path, e.g. `/diffusion`. A `?query` or a `ws://host` prefix left in it is
    /// tolerated (the query then counts when `query` is `None`).
    pub path: &'a str,
    /// The query string, without the `?`.
    pub query: Option<&'a str>,
    /// Request headers (any case, any set; only the connection parameters are read).
    pub headers: Vec<(&'a str, &'a [u8])>,
}

impl<'a> UpgradeRequest<'a> {
    /// A request for `uri` (path, or full URI, with an optional `?query`) and no headers.
    pub fn from_uri(uri: &'a str) -> Self {
        let (path, query) = match uri.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (uri, None),
        };
        UpgradeRequest {
            path,
            query,
            headers: Vec::new(),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'a str, value: &'a [u8]) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The path without a leftover query, and the query from either place.
    pub(super) fn split(&self) -> (&'a str, Option<&'a str>) {
        match self.path.split_once('?') {
            Some((path, q)) => (path, self.query.or(Some(q))),
            None => (self.path, self.query),
        }
    }
}

impl fmt::Debug for UpgradeRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (path, query) = self.split();
        f.debug_struct("UpgradeRequest")
            .field("path", &path)
            .field("query", &query.map(|q| format!("<{} bytes redacted>", q.len())))
            .field(
                "headers",
                &self.headers.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            )
            .finish()
    }
}
