//! Topics (TOPICS.md §2–§6, §8) as pure building blocks: datatypes and values, binary
//! deltas, selectors, topic specifications, update constraints and the service codecs.
//!
//! Nothing here holds state: the client's topic registry and the server's topic tree use
//! these functions. TOPIC_VALUE and TOPIC_DELTA frames are [`crate::Message::TopicValue`]
//! and [`crate::Message::TopicDelta`] (a 4-byte big-endian topic id, then the value or
//! delta bytes).

mod cbor;
pub(crate) mod codec;
mod constraint;
mod control;
mod datatype;
mod delta;
mod fetch;
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
pub use delta::{apply_delta, produce_delta, DeltaError};
pub use fetch::{
    FetchRange, FetchRequest, FetchResponse, FetchResult, TopicSize, TopicTypeSet, FETCH_NO_LIMIT,
};
pub use selector::{Selector, SelectorError, SelectorKind};
pub use specification::TopicSpecification;
pub use subscription::{
    NotifySubscription, NotifyUnsubscription, SubscribeRequest, UnsubscribeReason, UnsubscribeRequest,
};
pub use value::{DecodeValue, EncodeValue, Json, TopicValue, ValueError};
