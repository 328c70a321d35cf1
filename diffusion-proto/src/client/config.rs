//! What a client session is configured with, and the connection request it asks an
//! adapter to open (URL, parameter carrier and parameters).

use std::time::Duration;

#[cfg(doc)]
use super::ClientSession;
use crate::credentials::Credentials;
use crate::handshake::ProtocolVersion;
use crate::handshake::{ConnectionParams, ParameterCarrier, ReconnectParams, UrlError, WebSocketUrl};
use crate::properties::SessionProperties;
use crate::reconnect::ReconnectConfig;

/// Everything a [`ClientSession`] is configured with. Build it with [`ClientConfig::new`]
/// and change the public fields.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Where to connect, already resolved to the `/diffusion` endpoint.
    pub url: WebSocketUrl,
    /// Protocol version; 25 by default.
    pub version: ProtocolVersion,
    /// Where the parameters travel; by default headers for 25 and query for 29, as the
    /// official clients of those versions do.
    pub carrier: ParameterCarrier,
    /// `ty`; by default the official client's code for the version (see
    /// [`ProtocolVersion::default_client_type`]).
    pub client_type: String,
    /// The principal; `None` connects anonymously.
    pub principal: Option<String>,
    /// The credentials.
    pub credentials: Credentials,
    /// Proposed session properties.
    pub properties: SessionProperties,
    /// The `$Environment` property added to what is proposed, as the official clients add
    /// theirs; `None` adds nothing.
    pub environment: Option<String>,
    /// Reconnection after a lost connection; `None` turns it off (then `r=0` is sent).
    pub reconnect: Option<ReconnectConfig>,
    /// How long a connection attempt may take until its connection response arrives.
    pub connection_timeout: Duration,
    /// How many times the first connection is tried before the session fails.
    pub initial_connect_attempts: u32,
    /// Delay between those tries.
    pub initial_retry_delay: Duration,
    /// A deadline for every service request; `None` waits as long as the session lives.
    pub request_timeout: Option<Duration>,
    /// The largest frame accepted from the server; a larger one is a protocol error.
    pub max_inbound_message_size: usize,
    /// How many sent messages are kept for re-sending after a reconnection.
    pub recovery_buffer_capacity: usize,
    /// How long a close waits for the server's ABORT or the transport's end.
    pub close_timeout: Duration,
}

impl ClientConfig {
    /// Defaults for a server at `url` (`ws://` or `wss://`, any path; see
    /// [`WebSocketUrl::resolve`]): protocol 25, anonymous, reconnection on with a 60 s
    /// timeout, 10 s connection timeout, no request timeout, 64 MiB inbound limit,
    /// 256-message recovery buffer, 1 s close timeout.
    pub fn new(url: &str) -> Result<Self, UrlError> {
        let version = ProtocolVersion::default();
        Ok(ClientConfig {
            url: WebSocketUrl::resolve(url)?,
            version,
            carrier: ParameterCarrier::default_for(version),
            client_type: version.default_client_type().to_owned(),
            principal: None,
            credentials: Credentials::None,
            properties: SessionProperties::new(),
            environment: Some(format!(
                "RUST_{}_{}",
                std::env::consts::OS,
                env!("CARGO_PKG_VERSION")
            )),
            reconnect: Some(ReconnectConfig::default()),
            connection_timeout: Duration::from_secs(10),
            initial_connect_attempts: 1,
            initial_retry_delay: Duration::from_secs(1),
            request_timeout: None,
            max_inbound_message_size: 64 << 20,
            recovery_buffer_capacity: 256,
            close_timeout: Duration::from_secs(1),
        })
    }

    /// Sets the protocol version together with the carrier and client type that go with it.
    pub fn with_version(mut self, version: ProtocolVersion) -> Self {
        self.version = version;
        self.carrier = ParameterCarrier::default_for(version);
        self.client_type = version.default_client_type().to_owned();
        self
    }

    pub(super) fn params(&self, reconnect: Option<ReconnectParams>) -> ConnectionParams {
        let mut properties = self.properties.clone();
        if let Some(env) = &self.environment {
            properties.set("$Environment".to_owned(), env.clone());
        }
        ConnectionParams {
            version: self.version,
            client_type: self.client_type.clone(),
            capabilities: ConnectionParams::CAPABILITIES,
            reconnect_timeout_ms: self
                .reconnect
                .as_ref()
                .map_or(0, |r| r.timeout.as_millis() as u64),
            principal: self.principal.clone(),
            credentials: self.credentials.clone(),
            properties,
            reconnect,
        }
    }
}

/// A WebSocket to open: the adapter closes any transport it holds, then opens this one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRequest {
    /// The endpoint.
    pub url: WebSocketUrl,
    /// Where the parameters go.
    pub carrier: ParameterCarrier,
    /// The parameters.
    pub params: ConnectionParams,
}

impl ConnectRequest {
    /// The URI to request: the endpoint, plus the query when parameters travel there.
    pub fn uri(&self) -> String {
        let scheme = if self.url.secure { "wss" } else { "ws" };
        format!("{scheme}://{}{}", self.url.authority, self.target())
    }

    /// The request target, as on the HTTP request line: the path, plus the query when
    /// parameters travel there. What a server reads the parameters from.
    pub fn target(&self) -> String {
        match self.carrier {
            ParameterCarrier::Query => format!("{}?{}", self.url.path, self.params.to_query()),
            ParameterCarrier::Headers => self.url.path.clone(),
        }
    }

    /// Extra request headers: the parameters when they travel as headers, else none.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        match self.carrier {
            ParameterCarrier::Headers => self.params.to_headers(),
            ParameterCarrier::Query => Vec::new(),
        }
    }

    /// True when this reconnects to an existing session.
    pub fn is_reconnect(&self) -> bool {
        self.params.reconnect.is_some()
    }
}
