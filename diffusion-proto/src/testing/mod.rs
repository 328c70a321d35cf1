//! Test support (feature `testing`): the in-memory client/server [`Pair`] for tests and
//! benches, and the [`ClientScript`] with the checks a client session must pass under any
//! input, for fuzzing and property tests.

mod pair;
mod script;

pub use pair::{Pair, LATENCY};
pub use script::{
    expected_after_parse, Checker, ClientScript, MessageOp, ResponseOp, SessionSetup, Step, MAX_STEPS,
};
