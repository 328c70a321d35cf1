#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| diffusion_fuzz::selector(data));
