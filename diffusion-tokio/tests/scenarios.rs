//! The shared integration scenarios (`diffusion-scenarios`) on tokio, against the loopback
//! test server over real sockets on 127.0.0.1.

#[allow(clippy::expect_used)] // test harness: no runtime, no test
fn block_on<F: std::future::Future<Output = ()>>(future: F) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build();
    runtime.expect("a tokio runtime").block_on(future);
}

diffusion_scenarios::scenarios!(diffusion_tokio::Tokio, block_on);
// `wss://` needs the adapter's TLS.
#[cfg(feature = "rustls")]
diffusion_scenarios::tls_scenarios!(diffusion_tokio::Tokio, block_on);
