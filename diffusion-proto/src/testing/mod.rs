//! Test support (feature `testing`): the in-memory client/server [`Pair`] for tests and
//! benches, the [`ClientScript`] with the checks a client session must pass under any
//! input, and the [`TopicScript`] with the model its topic registry must match, for fuzzing
//! and property tests.

mod pair;
mod script;
mod topics;

pub use pair::{Pair, LATENCY};
pub use script::{
    expected_after_parse, Checker, ClientScript, MessageOp, ResponseOp, SessionSetup, Step, MAX_STEPS,
};
pub use topics::{
    accept_frame, request_frame, script_specification, Edit, TopicScript, TopicStep, MAX_TOPIC_BODY,
    MAX_TOPIC_STEPS, TOPIC_IDS, TOPIC_PATHS, TOPIC_SCRIPT_LIMIT,
};
