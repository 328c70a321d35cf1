//! The handshake (SPEC §2, §3): the server URL, the connection parameters a client sends in
//! its WebSocket upgrade, and the connection response that answers them.

mod ids;
mod params;
mod response;
mod url;

pub use ids::{ParseSessionIdError, SessionId, SessionToken};
pub use params::{
    encode_component, ConnectionParams, ParamError, ParameterCarrier, RawParam, RawParams, ReconnectParams,
    REDACTED,
};
pub use response::{
    ConnectionResponse, LastField, ProtocolVersion, ResponseClass, ResponseCode, ResponseError,
    ResponseFields, ResponseHeader, SessionGrant,
};
pub use url::{UrlError, WebSocketUrl};
