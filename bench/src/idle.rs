//! Memory of idle sessions: a child process opens N diffusion-tokio sessions against the
//! test server and reports how much its resident memory grew, per session.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use serde_json::{json, Value};

use crate::ours;

/// What the child measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IdleResult {
    /// Sessions that connected.
    pub sessions: u64,
    /// Sessions that failed to connect.
    pub failed: u64,
    /// Resident memory growth per connected session, in bytes.
    pub per_session_bytes: f64,
    /// Time to open them all.
    pub open_time: Duration,
}

/// Sessions connecting at once: enough to open thousands quickly, few enough that the
/// server's accept backlog never overflows.
const CONCURRENT_CONNECTS: usize = 64;

/// This process's resident set size in bytes, from `/proc/self/status`.
pub fn rss_bytes() -> Result<u64, String> {
    let status =
        std::fs::read_to_string("/proc/self/status").map_err(|e| format!("/proc/self/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .ok_or_else(|| "no VmRSS in /proc/self/status".to_owned())
}

/// Runs `this-program --idle-child N URL` and reads its result line.
pub fn measure(url: &str, sessions: usize) -> Result<IdleResult, String> {
    let exe = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
    let output = Command::new(exe)
        .args(["--idle-child", &sessions.to_string(), url])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("idle-session child: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    let v: Value = serde_json::from_str(line).map_err(|_| format!("idle-session child printed {line:?}"))?;
    if let Some(error) = v.get("error").and_then(Value::as_str) {
        return Err(error.to_owned());
    }
    let number = |key: &str| v.get(key).and_then(Value::as_f64).unwrap_or(0.0);
    Ok(IdleResult {
        sessions: number("sessions") as u64,
        failed: number("failed") as u64,
        per_session_bytes: number("per_session_bytes"),
        open_time: Duration::from_secs_f64(number("open_s")),
    })
}

/// The child's side: one warm session first (runtime, code pages, first allocations), then
/// `n` more, and the RSS difference divided by `n`, printed as one JSON line.
pub fn child(url: &str, n: usize) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let line = runtime.block_on(async {
        let warm = ours::connect::<diffusion_tokio::Tokio>(url).await?;
        warm.ping_server().await.map_err(|e| format!("ping: {e}"))?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = rss_bytes()?;
        let started = Instant::now();
        let results: Vec<_> = stream::iter(0..n)
            .map(|_| ours::connect::<diffusion_tokio::Tokio>(url))
            .buffer_unordered(CONCURRENT_CONNECTS)
            .collect()
            .await;
        let open_time = started.elapsed();
        let failed = results.iter().filter(|r| r.is_err()).count();
        let first_error = results.iter().find_map(|r| r.as_ref().err()).cloned();
        let sessions: Vec<_> = results.into_iter().flatten().collect();
        // Let every driver settle into its idle wait before measuring.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = rss_bytes()?;
        let connected = sessions.len();
        let per_session = after.saturating_sub(before) as f64 / connected.max(1) as f64;
        let line = json!({
            "sessions": connected,
            "failed": failed,
            "first_error": first_error,
            "rss_before": before,
            "rss_after": after,
            "per_session_bytes": per_session,
            "open_s": open_time.as_secs_f64(),
        });
        // Kept alive until measured; the process exits without closing them one by one.
        drop(sessions);
        drop(warm);
        Ok::<_, String>(line)
    });
    let line = line.unwrap_or_else(|e| json!({ "error": e }));
    println!("{line}");
    Ok(())
}
