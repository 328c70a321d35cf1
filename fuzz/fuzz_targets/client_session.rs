#![no_main]
use diffusion_proto::testing::ClientScript;

libfuzzer_sys::fuzz_target!(|script: ClientScript| diffusion_fuzz::client_session(script));
