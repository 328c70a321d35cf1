//! Messaging (TOPICS.md §7) as pure codecs: requests to a path (85) and to a session (86),
//! requests forwarded to a registered handler (88), handler registration (97, 98).
//!
//! A request's value travels as a datatype name (§7.5) and the value's bytes, encoded as
//! [`crate::EncodeValue`] writes them; the response likewise.

mod handler;
mod request;
mod value;

pub use handler::{DeregisterHandlerRequest, HandlerKey, HandlerRequest, RegisterHandlerRequest};
pub use request::{SendRequest, SendToSessionRequest};
pub use value::MessagingValue;
