//! The shared integration scenarios (`diffusion-scenarios`) on async-std and on smol,
//! against the loopback test server (on its own thread and runtime) on 127.0.0.1. Each
//! runtime's scenarios need its feature; the `wss://` ones need `rustls` as well.

#[cfg(feature = "async-std")]
mod async_std_runtime {
    diffusion_scenarios::scenarios!(diffusion_async_std::AsyncStd, async_std::task::block_on);
    #[cfg(feature = "rustls")]
    diffusion_scenarios::tls_scenarios!(diffusion_async_std::AsyncStd, async_std::task::block_on);
}

#[cfg(feature = "smol")]
mod smol_runtime {
    diffusion_scenarios::scenarios!(diffusion_async_std::Smol, smol::block_on);
    #[cfg(feature = "rustls")]
    diffusion_scenarios::tls_scenarios!(diffusion_async_std::Smol, smol::block_on);
}
