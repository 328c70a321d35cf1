//! The shared integration scenarios (`diffusion-scenarios`) on async-std and on smol,
//! against the loopback test server (on its own thread and runtime) on 127.0.0.1.

mod async_std_runtime {
    diffusion_scenarios::scenarios!(diffusion_async_std::AsyncStd, async_std::task::block_on);
}

#[cfg(feature = "smol")]
mod smol_runtime {
    diffusion_scenarios::scenarios!(diffusion_async_std::Smol, smol::block_on);
}
