//! Why a topic request or a call of the topic API failed, and the SERVICE_ERROR reason each
//! failure is answered with (TOPICS.md §5; the choices for unknown cases are on `Server`).

use crate::message::{ErrorReason, ServiceId};
use crate::topics::{PayloadError, SelectorError, TopicType, UnsupportedConstraint};

/// Why the server refused a topic request (SUBSCRIBE, TOPIC_ADD, SET_TOPIC, …) or a call of
/// its topic API. [`TopicTreeError::reason`] is the SERVICE_ERROR reason a client receives.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TopicTreeError {
    /// The path is empty, starts or ends with `/`, or has an empty segment (9005).
    #[error("invalid topic path {path:?}: {problem}")]
    InvalidPath {
        /// The path.
        path: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The topic type cannot be served: TIME_SERIES and UNKNOWN topics are not supported (9006).
    #[error("cannot add topic {path:?}: {topic_type} topics are not supported by this server")]
    UnsupportedType {
        /// The path.
        path: String,
        /// The type asked for.
        topic_type: TopicType,
    },
    /// A topic with another specification exists at the path (9010).
    #[error("cannot add topic {path:?}: a topic with a different specification exists")]
    Incompatible {
        /// The path.
        path: String,
    },
    /// No topic at the path (503).
    #[error("topic {path:?} does not exist")]
    Missing {
        /// The path.
        path: String,
    },
    /// The update's type is not the topic's (500).
    #[error("topic {path:?} is of type {actual}, the update is {given}")]
    WrongType {
        /// The path.
        path: String,
        /// The topic's type.
        actual: TopicType,
        /// The type of the update.
        given: TopicType,
    },
    /// The update constraint does not hold (9012).
    #[error("update constraint not satisfied for topic {path:?}")]
    Unsatisfied {
        /// The path.
        path: String,
    },
    /// The update constraint cannot be evaluated here (a lock, partial JSON), so the update is
    /// refused as unsatisfied (9012).
    #[error("update constraint for topic {path:?} refused: {source}")]
    UnsupportedConstraint {
        /// The path.
        path: String,
        /// Which kind of constraint.
        #[source]
        source: UnsupportedConstraint,
    },
    /// The value is longer than [`crate::ServerConfig::max_topic_value_size`] (501).
    #[error("value of {size} bytes for topic {path:?} exceeds the server's limit of {limit} bytes")]
    ValueTooLarge {
        /// The path.
        path: String,
        /// The value's length.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The tree holds [`crate::ServerConfig::max_topics`] topics already (9007).
    #[error("cannot add topic {path:?}: the server holds its limit of {limit} topics")]
    TooManyTopics {
        /// The path.
        path: String,
        /// The limit.
        limit: usize,
    },
    /// Every topic id has been used: ids are never reused (9007).
    #[error("cannot add topic {path:?}: the server has used every topic id")]
    IdsExhausted {
        /// The path.
        path: String,
    },
    /// The selector does not parse (106).
    #[error("invalid topic selector: {0}")]
    InvalidSelector(#[from] SelectorError),
    /// The session holds [`crate::ServerConfig::max_selectors_per_session`] selectors
    /// already (111).
    #[error("the session holds its limit of {limit} topic selectors; unsubscribe some first")]
    TooManySelectors {
        /// The limit.
        limit: usize,
    },
    /// The request payload does not decode (106).
    #[error("malformed {service} request: {source}")]
    Malformed {
        /// The service.
        service: ServiceId,
        /// What failed.
        #[source]
        source: PayloadError,
    },
    /// The response could not be encoded in the session's protocol version (100).
    #[error("cannot encode the {service} response: {source}")]
    Response {
        /// The service.
        service: ServiceId,
        /// What failed.
        #[source]
        source: PayloadError,
    },
}

impl TopicTreeError {
    /// The SERVICE_ERROR reason a client receives for this failure.
    ///
    /// ```
    /// use diffusion_proto::{ErrorReason, TopicTreeError};
    /// let missing = TopicTreeError::Missing { path: "a/b".into() };
    /// assert_eq!(missing.reason(), ErrorReason::MISSING_TOPIC);
    /// assert_eq!(missing.to_string(), r#"topic "a/b" does not exist"#);
    /// ```
    pub fn reason(&self) -> ErrorReason {
        match self {
            TopicTreeError::InvalidPath { .. } => ErrorReason::TOPIC_PATH_INVALID,
            TopicTreeError::UnsupportedType { .. } => ErrorReason::TOPIC_SPECIFICATION_INVALID,
            TopicTreeError::Incompatible { .. } => ErrorReason::INCOMPATIBLE_TOPIC_EXISTS,
            TopicTreeError::Missing { .. } => ErrorReason::MISSING_TOPIC,
            TopicTreeError::WrongType { .. } => ErrorReason::INCOMPATIBLE_UPDATE,
            TopicTreeError::Unsatisfied { .. } | TopicTreeError::UnsupportedConstraint { .. } => {
                ErrorReason::UNSATISFIED_CONSTRAINT
            }
            TopicTreeError::ValueTooLarge { .. } => ErrorReason::UPDATE_FAILED,
            TopicTreeError::TooManyTopics { .. } | TopicTreeError::IdsExhausted { .. } => {
                ErrorReason::TOPIC_LICENSE_LIMIT
            }
            TopicTreeError::InvalidSelector(_) | TopicTreeError::Malformed { .. } => {
                ErrorReason::INVALID_DATA
            }
            TopicTreeError::TooManySelectors { .. } => ErrorReason::INCOMPATIBLE_STATE,
            TopicTreeError::Response { .. } => ErrorReason::COMMUNICATION_FAILURE,
        }
    }
}
