//! Topics (TOPICS.md §2–§6, §8) as pure building blocks: datatypes and values, binary
//! deltas, selectors, topic specifications, update constraints and the service codecs.
//!
//! Only the client's topic registry (`registry`, one field of [`crate::ClientSession`])
//! holds state; the rest are pure functions that it and the server's topic tree use.
//! TOPIC_VALUE and TOPIC_DELTA frames are [`crate::Message::TopicValue`] and
//! [`crate::Message::TopicDelta`] (a 4-byte big-endian topic id, then the value or delta
//! bytes).

mod cbor;
pub(crate) mod codec;
mod constraint;
mod control;
mod datatype;
mod delta;
mod fetch;
mod registry;
mod selector;
mod specification;
mod subscription;
mod value;

pub use codec::{EmptyPayload, PayloadError, ServiceCall, ServicePayload};
pub use constraint::{
    ConstraintOperator, ConstraintValueType, PartialJsonCondition, TopicState, UnsupportedConstraint,
    UpdateConstraint, ValueCondition,
};
pub use control::{
    AddAndSetTopicRequest, AddTopicRequest, AddTopicResult, RemoveTopicsRequest, RemoveTopicsResponse,
    SetTopicRequest,
};
pub use datatype::{DataType, TopicType};
pub(crate) use delta::append_delta;
pub use delta::{apply_delta, produce_delta, DeltaError};
pub use fetch::{
    FetchRange, FetchRequest, FetchResponse, FetchResult, TopicSize, TopicTypeSet, FETCH_NO_LIMIT,
};
pub(crate) use registry::TopicRegistry;
pub use registry::{Topic, TopicError, TopicEvent, TopicStats};
pub use selector::{Selector, SelectorError, SelectorKind};
pub use specification::TopicSpecification;
pub use subscription::{
    NotifySubscription, NotifyUnsubscription, SubscribeRequest, UnsubscribeReason, UnsubscribeRequest,
};
pub use value::{DecodeValue, EncodeValue, Json, TopicValue, ValueError};

#[cfg(test)]
mod tests {
    use crate::ErrorReason;

    /// The SERVICE_ERROR reasons of topic control, update and messaging (TOPICS §5, §7).
    const REASONS: [(ErrorReason, i32, &str); 18] = [
        (ErrorReason::TOPIC_EXISTS_MISMATCH, 9004, "TOPIC_EXISTS_MISMATCH"),
        (ErrorReason::TOPIC_PATH_INVALID, 9005, "TOPIC_PATH_INVALID"),
        (
            ErrorReason::TOPIC_SPECIFICATION_INVALID,
            9006,
            "TOPIC_SPECIFICATION_INVALID",
        ),
        (ErrorReason::TOPIC_LICENSE_LIMIT, 9007, "TOPIC_LICENSE_LIMIT"),
        (
            ErrorReason::INCOMPATIBLE_TOPIC_EXISTS,
            9010,
            "INCOMPATIBLE_TOPIC_EXISTS",
        ),
        (
            ErrorReason::UNEXPECTED_TOPIC_ADD_FAILURE,
            9011,
            "UNEXPECTED_TOPIC_ADD_FAILURE",
        ),
        (
            ErrorReason::UNSATISFIED_CONSTRAINT,
            9012,
            "UNSATISFIED_CONSTRAINT",
        ),
        (ErrorReason::INCOMPATIBLE_UPDATE, 500, "INCOMPATIBLE_UPDATE"),
        (ErrorReason::UPDATE_FAILED, 501, "UPDATE_FAILED"),
        (ErrorReason::MISSING_TOPIC, 503, "MISSING_TOPIC"),
        (ErrorReason::ACCESS_DENIED, 103, "ACCESS_DENIED"),
        (ErrorReason::CLUSTER_REPARTITION, 110, "CLUSTER_REPARTITION"),
        (ErrorReason::INCOMPATIBLE_STATE, 111, "INCOMPATIBLE_STATE"),
        (ErrorReason::INCOMPATIBLE_DATATYPE, 108, "INCOMPATIBLE_DATATYPE"),
        (ErrorReason::UNHANDLED_MESSAGE, 109, "UNHANDLED_MESSAGE"),
        (ErrorReason::HANDLER_CONFLICT, 201, "HANDLER_CONFLICT"),
        (ErrorReason::REJECTED_REQUEST, 9003, "REJECTED_REQUEST"),
        (ErrorReason::CALLBACK_EXCEPTION, 105, "CALLBACK_EXCEPTION"),
    ];

    #[test]
    fn topic_and_messaging_error_reasons_have_their_codes_and_names() {
        for (reason, code, name) in REASONS {
            assert_eq!((reason.0, reason.name()), (code, Some(name)));
        }
    }
}
