//! A test server on a thread and tokio runtime of its own, for test suites that do not run
//! on tokio (async-std, smol, or plain `#[test]`s), and the proxies such tests start.

use std::future::Future;
use std::io;

use crate::options::Options;
use crate::proxy::{ConnectProxy, ProxyOptions};
use crate::TestServer;

/// A [`TestServer`] running on a tokio runtime of its own (one worker thread), usable
/// from any runtime or none; it dereferences to the [`TestServer`]. Dropping it stops the
/// server and its runtime, with any [`ConnectProxy`] started by [`ServerThread::proxy`].
///
/// ```
/// use diffusion_test_server::{Options, ServerThread};
///
/// let server = ServerThread::start(Options::default())?;
/// assert!(server.url().starts_with("ws://127.0.0.1:"));
/// // … a client on smol, async-std or any runtime connects to server.url() …
/// assert_eq!(server.stats().sessions_opened, 0);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct ServerThread {
    server: Option<TestServer>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for ServerThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ServerThread").field(&self.server).finish()
    }
}

impl ServerThread {
    /// Starts a runtime and a test server with `options` on it. Can be called from
    /// anywhere, inside an async task of any runtime included (it blocks the caller until
    /// the server listens).
    pub fn start(options: Options) -> io::Result<ServerThread> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("diffusion-test-server")
            .enable_all()
            .build()?;
        let server = run(&runtime, TestServer::start(options))?;
        Ok(ServerThread {
            server: Some(server),
            runtime: Some(runtime),
        })
    }

    /// Starts an HTTP CONNECT proxy on this server's runtime (see [`ConnectProxy`]).
    pub fn proxy(&self, options: ProxyOptions) -> io::Result<ConnectProxy> {
        match &self.runtime {
            Some(runtime) => run(runtime, ConnectProxy::start(options)),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

/// Runs `start` on `runtime` and waits for its result without entering the runtime, so
/// that the caller may be inside another one.
fn run<T: Send + 'static>(
    runtime: &tokio::runtime::Runtime,
    start: impl Future<Output = io::Result<T>> + Send + 'static,
) -> io::Result<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    runtime.spawn(async move {
        let _ = tx.send(start.await);
    });
    rx.recv()
        .map_err(|_| io::Error::other("the test server's runtime stopped while starting"))?
}

impl std::ops::Deref for ServerThread {
    type Target = TestServer;

    fn deref(&self) -> &TestServer {
        match &self.server {
            Some(server) => server,
            // Taken only in `drop`.
            None => unreachable!("the server is present until dropped"),
        }
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        drop(self.server.take());
        // Allowed from inside any async context, unlike dropping the runtime.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
