//! One session on smol against a Diffusion server (or, without `--url`, against the embedded
//! loopback test server): connect, ping, close. The smol counterpart of diffusion-tokio's
//! `session` example, without its JSON lines and system ping wait.
//!
//! ```text
//! cargo run -p diffusion-async-std --no-default-features --features smol --example smol_session -- --help
//! ```
//!
//! Results go to stdout, errors to stderr. Exit status: 0 when everything succeeded, 1 when
//! something failed at run time, 2 for a bad command line (a URL the session refuses
//! included), found before anything starts.

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use diffusion_async_std::{Error, Smol};
use diffusion_test_server::{Options, ServerThread};

/// A session on smol, even when the `async-std` feature is on as well (with `smol` alone,
/// `diffusion_async_std::Session` is this).
type Session = diffusion_client::Session<Smol>;

/// The command line. No `Debug`: it holds the password.
#[derive(Parser)]
#[command(
    name = "session",
    about = "One Diffusion session on smol: connect, ping, close",
    after_help = "Without --url, a test server embedded in this process (which knows --principal \
        with --password)."
)]
struct Args {
    /// Server URL (ws:// or wss://); without it, an embedded test server
    #[arg(long, value_name = "URL", value_parser = url)]
    url: Option<String>,
    /// Principal to authenticate as; anonymous without it
    #[arg(long, value_name = "NAME")]
    principal: Option<String>,
    /// The principal's password (better in the environment than on the command line)
    #[arg(long, value_name = "TEXT", env = "DIFFUSION_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// User pings to send
    #[arg(long, value_name = "N", default_value_t = 10)]
    pings: usize,
}

/// A URL the session accepts: one it refuses is a usage error, before anything starts.
fn url(text: &str) -> Result<String, Error> {
    Session::builder(text).build().map(|_| text.to_owned())
}

impl Args {
    /// The session for `url`, with the credentials asked for; not connected.
    fn session(&self, url: &str) -> Result<Session, Error> {
        let mut builder = Session::builder(url);
        if let Some(principal) = &self.principal {
            builder = builder.principal(principal.clone());
        }
        if let Some(password) = &self.password {
            builder = builder.password(password.clone());
        }
        builder.build()
    }
}

fn main() -> ExitCode {
    // Usage errors (exit 2) and --help (exit 0) before anything starts.
    let args = Args::parse();
    // Without --url, the embedded test server, on a thread and tokio runtime of its own.
    let mut embedded = None;
    let built = match &args.url {
        Some(url) => args.session(url),
        None => {
            let mut options = Options::default();
            if let (Some(principal), Some(password)) = (&args.principal, &args.password) {
                options = options.user(principal, password);
            }
            let server = match ServerThread::start(options) {
                Ok(server) => embedded.insert(server),
                Err(e) => {
                    eprintln!("session: could not start the embedded test server: {e}");
                    return ExitCode::FAILURE;
                }
            };
            println!("embedded test server listening on {}", server.url());
            args.session(&server.url())
        }
    };
    let session = match built {
        Ok(session) => session,
        Err(e) => {
            eprintln!("session: {e}");
            return ExitCode::FAILURE;
        }
    };
    match smol::block_on(run(&args, &session)) {
        Ok(()) => {
            println!("ok");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("session: {e}");
            if let Some(code) = e.response_code() {
                eprintln!(
                    "  response code {} {}: {}",
                    code.code(),
                    code.name(),
                    code.meaning()
                );
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args, session: &Session) -> Result<(), Error> {
    // Called on the session's driver task, in order, before connect() and close() return.
    session.on_state_change(|change| match &change.reason {
        Some(reason) => println!("state {} -> {} ({reason})", change.old, change.new),
        None => println!("state {} -> {}", change.old, change.new),
    });
    let started = Instant::now();
    session.connect().await?;
    let id = session.session_id().map(|id| id.to_string()).unwrap_or_default();
    println!("session {id} connected in {} µs", started.elapsed().as_micros());

    let mut round_trips = Vec::with_capacity(args.pings);
    for _ in 0..args.pings {
        round_trips.push(session.ping_server().await?.round_trip.as_micros());
    }
    round_trips.sort_unstable();
    if let (Some(min), Some(max)) = (round_trips.first(), round_trips.last()) {
        let median = round_trips[(round_trips.len() - 1) / 2];
        println!(
            "pings: {} ok; round trip min {min} µs, median {median} µs, max {max} µs",
            round_trips.len()
        );
    }
    session.close().await;
    println!("closed: {}", session.state());
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn help_exits_0_on_stdout_and_usage_errors_2_on_stderr() {
        Args::command().debug_assert();
        let outcome = |args: &[&str]| {
            let parsed = Args::try_parse_from(std::iter::once("session").chain(args.iter().copied()));
            parsed
                .err()
                .map(|e| (e.exit_code(), e.use_stderr(), e.render().to_string()))
        };
        let (code, stderr, help) = outcome(&["--help"]).unwrap();
        assert!(code == 0 && !stderr && help.contains("[default: 10]"), "{help}");
        for bad in [
            &["--verbose"][..],
            &["--pings", "many"],
            &["--url", "http://127.0.0.1:8080"],
            &["--url", "ws://h:99999"],
            &["--url", "ws://[::1"],
        ] {
            let (code, stderr, text) = outcome(bad).unwrap();
            assert_eq!((code, stderr), (2, true), "{bad:?}: {text}");
        }
        assert!(outcome(&["--url", "ws://127.0.0.1:8080", "--pings", "3"]).is_none());
    }
}
