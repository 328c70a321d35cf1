//! Fuzz targets over diffusion-proto's parsers and client state machine (see README.md).
//! The logic lives in `targets.rs`, which the workspace's corpus replay test includes too.
#![forbid(unsafe_code)]

mod targets;

pub use targets::*;
