//! The main job: one session against a Diffusion server (or, without `--url`, against the
//! embedded loopback test server): connect, ping, see a system ping answered, close.
//!
//! ```text
//! cargo run --release -p diffusion-tokio --example session -- [--url ws://host:port]
//!     [--principal NAME] [--password TEXT] [--property KEY=VALUE]... [--pings N] [--json]
//! ```

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use diffusion_test_server::{Options, TestServer};
use diffusion_tokio::{Error, Session, SessionState};
use futures_util::StreamExt;
use serde_json::{json, Value};

struct Args {
    url: Option<String>,
    principal: Option<String>,
    password: Option<String>,
    properties: Vec<(String, String)>,
    pings: usize,
    json: bool,
}

const USAGE: &str = "usage: session [--url ws://host:port] [--principal NAME] [--password TEXT] \
[--property KEY=VALUE]... [--pings N] [--json]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        url: None,
        principal: None,
        password: None,
        properties: Vec::new(),
        pings: 10,
        json: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--url" => args.url = Some(value()?),
            "--principal" => args.principal = Some(value()?),
            "--password" => args.password = Some(value()?),
            "--property" | "-p" => {
                let kv = value()?;
                let (k, v) = kv
                    .split_once('=')
                    .ok_or_else(|| format!("--property takes KEY=VALUE, not {kv:?}"))?;
                args.properties.push((k.to_owned(), v.to_owned()));
            }
            "--pings" => {
                args.pings = value()?
                    .parse()
                    .map_err(|_| "--pings takes a number".to_owned())?
            }
            "--json" => args.json = true,
            "--help" | "-h" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown flag {other}\n{USAGE}")),
        }
    }
    Ok(args)
}

/// Prints either human lines or JSON lines with the peers' event names.
struct Report {
    json: bool,
    start: Instant,
}

impl Report {
    fn event(&self, event: &str, fields: Value, human: impl FnOnce() -> String) {
        if self.json {
            let mut line =
                json!({"event": event, "client": "rust", "t_ms": self.start.elapsed().as_millis() as u64});
            if let (Some(line), Value::Object(fields)) = (line.as_object_mut(), fields) {
                line.extend(fields);
            }
            println!("{line}");
        } else {
            println!("{}", human());
        }
    }

    fn progress(&self, n: usize, total: usize, rtt: Duration) {
        if !self.json {
            print!("\rping {n}/{total}: {} µs   ", rtt.as_micros());
            let _ = std::io::stdout().flush();
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    let report = Report {
        json: args.json,
        start: Instant::now(),
    };
    let ok = run(&args, &report).await;
    report.event("result", json!({"ok": ok}), || {
        if ok {
            "ok".into()
        } else {
            "failed".into()
        }
    });
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn run(args: &Args, report: &Report) -> bool {
    // Without --url, a loopback test server in this process, pinging every second so
    // that a system ping is seen within the run.
    let mut embedded = None;
    let url = match &args.url {
        Some(url) => url.clone(),
        None => {
            let mut options = Options {
                ping_period: Duration::from_secs(1),
                ..Options::default()
            };
            if let (Some(p), Some(pw)) = (&args.principal, &args.password) {
                options.users.push((p.clone(), pw.clone()));
            }
            match TestServer::start(options).await {
                Ok(server) => {
                    let url = server.url();
                    report.event("server", json!({"url": url, "embedded": true}), || {
                        format!("embedded test server listening on {url}")
                    });
                    embedded = Some(server);
                    url
                }
                Err(e) => {
                    report.event(
                        "error",
                        json!({"stage": "server", "message": e.to_string()}),
                        || format!("could not start the embedded test server: {e}"),
                    );
                    return false;
                }
            }
        }
    };
    report.event(
        "start",
        json!({"client_version": env!("CARGO_PKG_VERSION"), "url": url, "principal": args.principal,
               "properties": args.properties.iter().map(|(k, v)| (k.clone(), Value::from(v.clone()))).collect::<serde_json::Map<_, _>>(), "pings": args.pings}),
        || format!("connecting to {url}"),
    );
    let ok = session(args, report, &url).await;
    if let Some(server) = embedded {
        server.shutdown().await;
    }
    ok
}

fn error_event(report: &Report, stage: &str, e: &Error) {
    let code = e.response_code();
    report.event(
        "error",
        json!({"stage": stage, "error_class": format!("{e:?}").split(['(', ' ', '{']).next().unwrap_or("Error"),
               "message": e.to_string(), "response_code": code.map(|c| c.code())}),
        || match code {
            Some(code) => format!("error ({stage}): {e}\n  response code {} {}: {}", code.code(), code.name(), code.meaning()),
            None => format!("error ({stage}): {e}"),
        },
    );
}

async fn session(args: &Args, report: &Report, url: &str) -> bool {
    let mut builder = Session::builder(url);
    if let Some(p) = &args.principal {
        builder = builder.principal(p.clone());
    }
    if let Some(pw) = &args.password {
        builder = builder.password(pw.clone());
    }
    for (k, v) in &args.properties {
        builder = match builder.property(k.clone(), v.clone()) {
            Ok(b) => b,
            Err(e) => {
                error_event(report, "connect", &e);
                return false;
            }
        };
    }
    let session = match builder.build() {
        Ok(s) => s,
        Err(e) => {
            error_event(report, "connect", &e);
            return false;
        }
    };
    let mut changes = session.state_changes();
    let started = Instant::now();
    let connected = session.connect().await;
    let connect_us = started.elapsed().as_micros() as u64;
    while let Some(Some(Ok(change))) = futures_util::FutureExt::now_or_never(changes.next()) {
        print_change(report, &change);
    }
    if let Err(e) = connected {
        error_event(report, "connect", &e);
        return false;
    }
    let id = session.session_id().map(|id| id.to_string()).unwrap_or_default();
    let period = session.ping_period().map_or(0, |p| p.as_millis() as u64);
    report.event(
        "connected",
        json!({"session_id": id, "state": session.state().name(), "connect_us": connect_us,
               "response_code": 100, "ping_period_ms": period, "max_message_size": session.max_message_size()}),
        || format!("session {id} connected in {connect_us} µs (ping period {period} ms)"),
    );

    let mut rtts = Vec::with_capacity(args.pings);
    let mut failed = 0;
    for n in 1..=args.pings {
        match session.ping_server().await {
            Ok(ping) => {
                let rtt_us = ping.round_trip.as_micros() as u64;
                if report.json {
                    report.event(
                        "ping",
                        json!({"n": n, "rtt_us": rtt_us, "attempt": 1}),
                        String::new,
                    );
                }
                report.progress(n, args.pings, ping.round_trip);
                rtts.push(rtt_us);
            }
            Err(e) => {
                failed += 1;
                error_event(report, "ping", &e);
            }
        }
    }
    if !report.json && args.pings > 0 {
        println!();
    }
    summary(report, &mut rtts, failed);

    // A system ping arrives once per ping period; wait for one when that is soon.
    let mut system_ping_ok = true;
    if period > 0 && period <= 3000 {
        let waited = Instant::now();
        while session.system_pings_answered() == 0
            && waited.elapsed() < Duration::from_millis(2 * period + 500)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let answered = session.system_pings_answered();
        system_ping_ok = answered > 0;
        report.event(
            "system_ping_wait",
            json!({"answered": system_ping_ok, "waited_s": waited.elapsed().as_secs_f64()}),
            || match answered {
                0 => "no system ping arrived from the server".to_owned(),
                n => format!("system ping answered ({n} so far)"),
            },
        );
    }

    session.close().await;
    while let Some(Some(Ok(change))) = futures_util::FutureExt::now_or_never(changes.next()) {
        print_change(report, &change);
    }
    let state = session.state();
    report.event("closed", json!({"state": state.name()}), || {
        format!("closed: {state}")
    });
    failed == 0 && system_ping_ok && state == SessionState::ClosedByClient
}

fn print_change(report: &Report, change: &diffusion_tokio::StateChange) {
    let reason = change.reason.as_ref().map(|r| r.to_string());
    report.event(
        "state",
        json!({"old": change.old.name(), "new": change.new.name(), "reason": reason}),
        || match &reason {
            Some(r) => format!("state {} -> {} ({r})", change.old, change.new),
            None => format!("state {} -> {}", change.old, change.new),
        },
    );
}

fn summary(report: &Report, rtts: &mut [u64], failed: usize) {
    if rtts.is_empty() {
        return;
    }
    rtts.sort_unstable();
    // Nearest rank, as the peers' summary line.
    let rank = |p: f64| rtts[((p * rtts.len() as f64).ceil() as usize).clamp(1, rtts.len()) - 1];
    let (min, p50, p99, max) = (rtts[0], rank(0.5), rank(0.99), rtts[rtts.len() - 1]);
    let mean = rtts.iter().sum::<u64>() / rtts.len() as u64;
    report.event(
        "pings",
        json!({"ok": rtts.len(), "failed": failed, "count": rtts.len() + failed, "min_us": min,
               "median_us": p50, "p99_us": p99, "max_us": max, "mean_us": mean}),
        || {
            format!(
                "pings: {} ok, {failed} failed; round trip min {min} µs, p50 {p50} µs, p99 {p99} µs, max {max} µs",
                rtts.len()
            )
        },
    );
}
