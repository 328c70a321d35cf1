//! The main job: one session against a Diffusion server (or, without `--url`, against the
//! embedded loopback test server): connect, ping, see a system ping answered, close.
//!
//! ```text
//! cargo run --release -p diffusion-tokio --example session -- --help
//! ```
//!
//! Results go to stdout (human lines, or JSON lines with `--json`), errors to stderr. Exit
//! status: 0 when everything succeeded, 1 when something failed at run time, 2 for a bad
//! command line (a bad URL or property included), found before anything starts.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{CommandFactory, Parser};
use diffusion_test_server::{Options, TestServer};
use diffusion_tokio::{Error, Session, SessionBuilder, SessionProperties, SessionState};
use futures_util::StreamExt;
use serde_json::{json, Value};

/// The command line. No `Debug`: it holds the password.
#[derive(Parser)]
#[command(
    name = "session",
    about = "One Diffusion session: connect, ping, see a system ping answered, close",
    after_help = "Without --url, a test server embedded in this process (which knows --principal \
        with --password) pings every second."
)]
struct Args {
    /// Server URL (ws:// or wss://); without it, an embedded test server
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// Principal to authenticate as; anonymous without it
    #[arg(long, value_name = "NAME")]
    principal: Option<String>,
    /// The principal's password (better in the environment than on the command line)
    #[arg(long, value_name = "TEXT", env = "DIFFUSION_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Session property to propose (repeatable)
    #[arg(short = 'p', long = "property", value_name = "KEY=VALUE", value_parser = property)]
    properties: Vec<(String, String)>,
    /// User pings to send
    #[arg(long, value_name = "N", default_value_t = 10)]
    pings: usize,
    /// One JSON object per line on stdout, the events of interop/peers' scripts
    #[arg(long)]
    json: bool,
}

/// `KEY=VALUE`, the key checked as the session will check it.
fn property(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or("a property is KEY=VALUE (there is no '=')")?;
    SessionProperties::new()
        .insert(key, value)
        .map_err(|e| e.to_string())?;
    Ok((key.to_owned(), value.to_owned()))
}

impl Args {
    /// A builder for `url` with the credentials and properties asked for.
    fn builder(&self, url: &str) -> Result<SessionBuilder, Error> {
        let mut builder = Session::builder(url);
        if let Some(p) = &self.principal {
            builder = builder.principal(p.clone());
        }
        if let Some(pw) = &self.password {
            builder = builder.password(pw.clone());
        }
        for (k, v) in &self.properties {
            builder = builder.property(k.clone(), v.clone())?;
        }
        Ok(builder)
    }

    /// With `--url`, the session, built now: a URL it refuses is a usage error.
    fn session_for_url(&self) -> Result<Option<Session>, clap::Error> {
        let Some(url) = &self.url else {
            return Ok(None);
        };
        self.builder(url)
            .and_then(SessionBuilder::build)
            .map(Some)
            .map_err(|e| {
                Args::command().error(
                    clap::error::ErrorKind::ValueValidation,
                    format!("--url {url}: {e}"),
                )
            })
    }
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

    /// A run-time error: a JSON line on stdout with --json, and a line on stderr.
    fn error(&self, fields: Value, human: String) {
        if self.json {
            self.event("error", fields, String::new);
        }
        eprintln!("session: {human}");
    }

    fn progress(&self, n: usize, total: usize, rtt: Duration) {
        if !self.json {
            print!("\rping {n}/{total}: {} µs   ", rtt.as_micros());
            let _ = std::io::stdout().flush();
        }
    }
}

fn main() -> ExitCode {
    // Usage errors (exit 2) and --help (exit 0) before anything starts.
    let args = Args::parse();
    let session = args.session_for_url().unwrap_or_else(|e| e.exit());
    let report = Report {
        json: args.json,
        start: Instant::now(),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("session: cannot start a tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ok = runtime.block_on(run(&args, session, &report));
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

async fn run(args: &Args, session: Option<Session>, report: &Report) -> bool {
    if let Some(session) = session {
        let url = args.url.clone().unwrap_or_default();
        return session_run(args, report, session, &url).await;
    }
    // Without --url, a loopback test server in this process, pinging every second so that a
    // system ping is seen within the run.
    let mut options = Options {
        ping_period: Duration::from_secs(1),
        ..Options::default()
    };
    if let (Some(p), Some(pw)) = (&args.principal, &args.password) {
        options.users.push((p.clone(), pw.clone()));
    }
    let server = match TestServer::start(options).await {
        Ok(server) => server,
        Err(e) => {
            report.error(
                json!({"stage": "server", "message": e.to_string()}),
                format!("could not start the embedded test server: {e}"),
            );
            return false;
        }
    };
    let url = server.url();
    report.event("server", json!({"url": url, "embedded": true}), || {
        format!("embedded test server listening on {url}")
    });
    let ok = match args.builder(&url).and_then(SessionBuilder::build) {
        Ok(session) => session_run(args, report, session, &url).await,
        Err(e) => {
            error_event(report, "connect", &e);
            false
        }
    };
    server.shutdown().await;
    ok
}

fn error_event(report: &Report, stage: &str, e: &Error) {
    let code = e.response_code();
    report.error(
        json!({"stage": stage, "error_class": format!("{e:?}").split(['(', ' ', '{']).next().unwrap_or("Error"),
               "message": e.to_string(), "response_code": code.map(|c| c.code())}),
        match code {
            Some(code) => format!("error ({stage}): {e}\n  response code {} {}: {}", code.code(), code.name(), code.meaning()),
            None => format!("error ({stage}): {e}"),
        },
    );
}

async fn session_run(args: &Args, report: &Report, session: Session, url: &str) -> bool {
    report.event(
        "start",
        json!({"client_version": env!("CARGO_PKG_VERSION"), "url": url, "principal": args.principal,
               "properties": args.properties.iter().map(|(k, v)| (k.clone(), Value::from(v.clone()))).collect::<serde_json::Map<_, _>>(), "pings": args.pings}),
        || format!("connecting to {url}"),
    );
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("session").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_line_is_well_formed() {
        Args::command().debug_assert();
    }

    #[test]
    fn help_is_a_result_on_stdout_with_every_flag_and_its_default() {
        let help = parse(&["--help"]).err().unwrap();
        assert_eq!(help.kind(), clap::error::ErrorKind::DisplayHelp);
        assert_eq!(help.exit_code(), 0);
        assert!(!help.use_stderr());
        let text = help.render().to_string();
        for flag in [
            "--url <URL>",
            "--principal <NAME>",
            "--password <TEXT>",
            "--property <KEY=VALUE>",
            "--pings <N>",
            "--json",
        ] {
            assert_eq!(
                text.lines().filter(|l| l.contains(flag)).count(),
                1,
                "{flag}\n{text}"
            );
        }
        assert!(
            text.contains("[default: 10]") && text.contains("[env: DIFFUSION_PASSWORD"),
            "{text}"
        );
    }

    #[test]
    fn usage_errors_exit_2_on_stderr() {
        for bad in [
            &["--verbose"][..],
            &["--pings", "many"],
            &["--property", "="],
            &["--property", "no-equals-sign"],
            &["--property", "a b=c"],
        ] {
            let Err(e) = parse(bad) else {
                panic!("{bad:?} parsed")
            };
            assert_eq!((e.exit_code(), e.use_stderr()), (2, true), "{bad:?}: {e}");
        }
        let args = parse(&["-p", "region=eu=west", "--property", "$Country=UK"]).unwrap();
        assert_eq!(
            args.properties,
            [
                ("region".into(), "eu=west".into()),
                ("$Country".into(), "UK".into())
            ]
        );
    }

    #[test]
    fn a_url_the_session_refuses_is_a_usage_error_before_anything_starts() {
        for bad in ["http://127.0.0.1:8080", "127.0.0.1:8080", ""] {
            let args = parse(&["--url", bad]).unwrap();
            let e = args.session_for_url().err().unwrap();
            assert_eq!((e.exit_code(), e.use_stderr()), (2, true), "{bad:?}: {e}");
        }
        let args = parse(&[
            "--url",
            "ws://127.0.0.1:8080",
            "--principal",
            "admin",
            "--password",
            "pw",
        ])
        .unwrap();
        assert!(args.session_for_url().unwrap().is_some());
        assert!(parse(&[]).unwrap().session_for_url().unwrap().is_none());
    }
}
