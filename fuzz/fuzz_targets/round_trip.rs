#![no_main]
use diffusion_fuzz::RoundTrip;

libfuzzer_sys::fuzz_target!(|items: Vec<RoundTrip>| diffusion_fuzz::round_trip(items));
