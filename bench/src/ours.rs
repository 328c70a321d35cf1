//! Our clients, measured through the public Session API on any runtime: ping round trips
//! timed around `ping_server` (as the official scripts time theirs), warm connects, pipelining.

use std::time::{Duration, Instant};

use diffusion_client::{Runtime, Session};

/// Connects a session with the builder's defaults.
pub async fn connect<R: Runtime>(url: &str) -> Result<Session<R>, String> {
    Session::<R>::builder(url)
        .connect()
        .await
        .map_err(|e| format!("connect: {e}"))
}

/// `n` pings one after the other, each timed around the API call.
pub async fn pings<R: Runtime>(session: &Session<R>, n: usize) -> Result<Vec<Duration>, String> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        session.ping_server().await.map_err(|e| format!("ping: {e}"))?;
        samples.push(started.elapsed());
    }
    Ok(samples)
}

/// `n` connects, each timed until the session is CONNECTED_ACTIVE, then closed untimed.
pub async fn connect_samples<R: Runtime>(url: &str, n: usize) -> Result<Vec<Duration>, String> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let session = connect::<R>(url).await?;
        samples.push(started.elapsed());
        session.close().await;
    }
    Ok(samples)
}

/// Pings on one session with `in_flight` outstanding at all times for `duration`, as
/// `in_flight` tasks of the runtime each pinging in a loop (as concurrent callers of one
/// session do); pings per second.
pub async fn pipelined<R: Runtime>(
    session: &Session<R>,
    in_flight: usize,
    duration: Duration,
) -> Result<f64, String> {
    let started = Instant::now();
    let deadline = started + duration;
    let (done, mut results) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..in_flight {
        let session = session.clone();
        let done = done.clone();
        R::spawn(async move {
            let mut completed = 0u64;
            let mut result = Ok(());
            while Instant::now() < deadline {
                if let Err(e) = session.ping_server().await {
                    result = Err(format!("ping: {e}"));
                    break;
                }
                completed += 1;
            }
            let _ = done.send(result.map(|()| completed));
        });
    }
    drop(done);
    let mut completed = 0;
    while let Some(result) = results.recv().await {
        completed += result?;
    }
    Ok(completed as f64 / started.elapsed().as_secs_f64())
}
