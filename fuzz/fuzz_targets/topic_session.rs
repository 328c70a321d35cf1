#![no_main]
use diffusion_proto::testing::TopicScript;

libfuzzer_sys::fuzz_target!(|script: TopicScript| diffusion_fuzz::topic_session(script));
