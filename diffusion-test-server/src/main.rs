//! `diffusion-test-server`: the loopback test server as a program, for scripts and the
//! official clients. It logs JSON lines on stdout and exits cleanly on SIGINT/SIGTERM.
//!
//! Exit status: 0 after a signal, 1 when the server cannot start (the reason on stderr, and a
//! JSON `error` line on stdout), 2 for a bad command line (nothing started).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod users;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::builder::TypedValueParser as _;
use clap::{ArgGroup, CommandFactory, Parser};
use diffusion_proto::ResponseCode;
use diffusion_test_server::{DropKind, Fault, Malformed, Options, TestServer, TopicSeed};
use serde_json::json;

/// What `Options::default()` says, for the defaults shown in `--help`.
const DEFAULT_PING_PERIOD_MS: u64 = 90_000;
const DEFAULT_MAX_MESSAGE_SIZE: u32 = 10_000_000;

const AFTER_HELP: &str = "\
Listens on 127.0.0.1 only. Prints JSON lines on stdout, the first one
{\"event\":\"listening\",\"port\":N,\"url\":\"ws://127.0.0.1:N\",...}; then one per upgrade
request, connection response, message, answered system ping, session event, fault, close and
error. Passwords and session tokens are printed as \"<redacted>\". Stops on SIGINT or SIGTERM.

Topics: --topic PATH:TYPE[=VALUE] creates a topic at start (repeatable); TYPE is json, string,
int64, double or binary, VALUE is read per type (JSON text, the text, a number, hexadecimal).

Faults: at most one of --reject, --drop-after, --stall-after, --no-response and --malformed.
Passwords: --user puts one on the command line, where every local user can read it;
--user-env and --users-file keep it off the command line.";

/// The command line. Passwords never appear in an error message (nor `Debug`: none derived).
#[derive(Parser)]
#[command(
    name = "diffusion-test-server",
    version,
    about = "A loopback Diffusion server (protocol 25 and 29) for tests",
    after_help = AFTER_HELP,
    group(ArgGroup::new("fault").multiple(false).args(
        ["reject", "drop_after", "stall_after", "no_response", "malformed"]))
)]
struct Cli {
    /// TCP port on 127.0.0.1; 0 picks a free one
    #[arg(long, value_name = "N", default_value_t = 0)]
    port: u16,
    /// A principal and its password (repeatable); anonymous sessions are always allowed
    #[arg(long = "user", value_name = "NAME:PASSWORD")]
    users: Vec<String>,
    /// A principal whose password is in environment variable VAR (repeatable)
    #[arg(long = "user-env", value_name = "NAME:VAR")]
    user_envs: Vec<String>,
    /// Principals and passwords from a file: one NAME:PASSWORD per line, # comments (repeatable)
    #[arg(long = "users-file", value_name = "PATH")]
    users_files: Vec<PathBuf>,
    /// System ping period, also advertised; 0 sends none
    #[arg(long, value_name = "N", default_value_t = DEFAULT_PING_PERIOD_MS)]
    ping_period_ms: u64,
    /// Advertised and enforced maximum message size in bytes
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_MESSAGE_SIZE)]
    max_message_size: u32,
    /// Serve wss:// with a fresh self-signed certificate; the second line is {"event":"tls","cert_path":PATH}
    #[arg(long)]
    tls: bool,
    /// Answer every reconnection with this response code (3 bytes)
    #[arg(long, value_name = "CODE", value_parser = response_code)]
    reconnect_answer: Option<ResponseCode>,
    /// Fault: answer every connection with the 3-byte response CODE, then close
    #[arg(long, value_name = "CODE")]
    reject: Option<u8>,
    /// Fault: drop a connection after N client messages (0 = after the connection response); the session is kept
    #[arg(long, value_name = "N")]
    drop_after: Option<u32>,
    /// How --drop-after drops the connection
    #[arg(long, value_name = "KIND", requires = "drop_after", default_value_t = DropKind::Fin,
          value_parser = clap::builder::PossibleValuesParser::new(["fin", "rst"]).try_map(|s| s.parse::<DropKind>()))]
    drop_kind: DropKind,
    /// How many connections --drop-after drops
    #[arg(long, value_name = "N", requires = "drop_after", default_value_t = 1)]
    drop_times: u32,
    /// Fault: after N client messages answer nothing more (no pongs), never close
    #[arg(long, value_name = "N")]
    stall_after: Option<u32>,
    /// Fault: upgrade, then never send a connection response
    #[arg(long)]
    no_response: bool,
    /// A topic to create at start (repeatable): TYPE json, string, int64, double or binary
    #[arg(long = "topic", value_name = "PATH:TYPE[=VALUE]")]
    topics: Vec<String>,
    /// Send every topic update as a whole value, never as a binary delta
    #[arg(long)]
    no_deltas: bool,
    /// Fault: replace each successful connection response with a malformed one, then close
    #[arg(long, value_name = "KIND",
          value_parser = clap::builder::PossibleValuesParser::new(Malformed::ALL.map(Malformed::name))
              .try_map(|s| s.parse::<Malformed>()))]
    malformed: Option<Malformed>,
}

/// A known response code, from its number.
fn response_code(text: &str) -> Result<ResponseCode, String> {
    let code: u8 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number from 0 to 255"))?;
    ResponseCode::from_u8(code).ok_or_else(|| format!("{code} is not a known response code"))
}

/// What the command line asks for.
#[derive(Debug)]
struct Args {
    options: Options,
    tls: bool,
}

impl Cli {
    /// The server's options: the users read (from the command line, the environment and
    /// files) and the fault. An error is a usage error (a message without any password).
    fn into_args(self, env: impl Fn(&str) -> Option<String>) -> Result<Args, String> {
        let mut users = Vec::new();
        for spec in &self.users {
            users.push(users::from_argument(spec)?);
        }
        for spec in &self.user_envs {
            users.push(users::from_env(spec, &env)?);
        }
        for path in &self.users_files {
            users.extend(users::from_file(path)?);
        }
        let topics = self
            .topics
            .iter()
            .map(|spec| spec.parse::<TopicSeed>())
            .collect::<Result<Vec<_>, _>>()?;
        let fault = if let Some(code) = self.reject {
            Fault::RejectAll(code)
        } else if let Some(messages) = self.drop_after {
            Fault::DropAfter {
                messages,
                how: self.drop_kind,
                times: self.drop_times,
            }
        } else if let Some(after_messages) = self.stall_after {
            Fault::Stall { after_messages }
        } else if self.no_response {
            Fault::NoResponse
        } else if let Some(kind) = self.malformed {
            Fault::MalformedResponse(kind)
        } else {
            Fault::None
        };
        Ok(Args {
            options: Options {
                port: self.port,
                users,
                ping_period: Duration::from_millis(self.ping_period_ms),
                max_message_size: self.max_message_size,
                fault,
                reconnect_answer: self.reconnect_answer,
                log_json: true,
                topics,
                deltas: !self.no_deltas,
                ..Options::default()
            },
            tls: self.tls,
        })
    }
}

fn print_line(value: serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}

fn main() -> ExitCode {
    // Usage errors exit 2 and --help/--version exit 0, both before anything starts.
    let args = match Cli::parse().into_args(|name| std::env::var(name).ok()) {
        Ok(args) => args,
        Err(message) => Cli::command()
            .error(clap::error::ErrorKind::ValueValidation, message)
            .exit(),
    };
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .and_then(|runtime| runtime.block_on(run(args)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            print_line(json!({"event": "error", "stage": "startup", "message": e.to_string()}));
            eprintln!("diffusion-test-server: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(mut args: Args) -> std::io::Result<()> {
    // Listening before the first line is printed: a script may signal as soon as it reads it.
    let stop = stop_signal()?;
    let cert_path = if args.tls {
        Some(make_certificate(&mut args.options)?)
    } else {
        None
    };
    let server = TestServer::start(args.options).await?;
    if let Some(path) = &cert_path {
        print_line(json!({"event": "tls", "cert_path": path.display().to_string()}));
    }
    let signal = stop.await;
    server.shutdown().await;
    if let Some(path) = &cert_path {
        let _ = std::fs::remove_file(path);
    }
    print_line(json!({"event": "shutdown", "signal": signal}));
    Ok(())
}

/// A self-signed certificate for the server, its PEM written where clients can read it.
#[cfg(feature = "tls")]
fn make_certificate(options: &mut Options) -> std::io::Result<PathBuf> {
    let identity = diffusion_test_server::try_self_signed(&["localhost", "127.0.0.1"])?;
    let path = std::env::temp_dir().join(format!("diffusion-test-server-{}.pem", std::process::id()));
    std::fs::write(&path, &identity.cert_pem)?;
    options.tls = Some(identity);
    Ok(path)
}

#[cfg(not(feature = "tls"))]
fn make_certificate(_: &mut Options) -> std::io::Result<PathBuf> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "--tls needs the `tls` feature of diffusion-test-server",
    ))
}

/// Listens for SIGINT and SIGTERM from now on; the future names the first to arrive.
fn stop_signal() -> std::io::Result<impl std::future::Future<Output = &'static str>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => "SIGINT",
                _ = terminate.recv() => "SIGTERM",
            }
        })
    }
    #[cfg(not(unix))]
    {
        let ctrl_c = tokio::signal::ctrl_c();
        Ok(async move {
            let _ = ctrl_c.await;
            "SIGINT"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_with(args: &[&str], env: &[(&str, &str)]) -> Result<Args, String> {
        let cli = Cli::try_parse_from(std::iter::once("diffusion-test-server").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        cli.into_args(|name| env.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned()))
    }

    fn parse(args: &[&str]) -> Result<Args, String> {
        parse_with(args, &[])
    }

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_are_the_library_defaults() {
        let o = parse(&[]).unwrap().options;
        let d = Options::default();
        assert_eq!(
            (o.port, o.ping_period, o.max_message_size, o.fault),
            (d.port, d.ping_period, d.max_message_size, d.fault)
        );
        assert!(o.users.is_empty() && o.log_json && o.reconnect_answer.is_none());
        assert!(o.topics.is_empty() && o.deltas == d.deltas);
    }

    #[test]
    fn flags_build_options() {
        let args = parse_with(
            &[
                "--port",
                "0",
                "--user",
                "admin:se:cret",
                "--user",
                "bob:",
                "--user-env",
                "carol:CAROL_PASSWORD",
                "--ping-period-ms",
                "500",
                "--max-message-size",
                "2048",
                "--drop-after",
                "3",
                "--drop-kind",
                "rst",
                "--drop-times",
                "2",
                "--reconnect-answer",
                "117",
                "--tls",
                "--topic",
                "t/json:json={\"a\":[1,2]}",
                "--topic",
                "t/b:binary=00ff",
                "--topic",
                "t/s:string",
                "--no-deltas",
            ],
            &[("CAROL_PASSWORD", "from the environment")],
        )
        .unwrap();
        let o = &args.options;
        assert!(args.tls && o.log_json);
        assert_eq!(
            o.users,
            [
                ("admin".into(), "se:cret".into()),
                ("bob".into(), String::new()),
                ("carol".into(), "from the environment".into())
            ]
        );
        assert_eq!(o.ping_period, Duration::from_millis(500));
        assert_eq!(o.max_message_size, 2048);
        assert_eq!(
            o.fault,
            Fault::DropAfter {
                messages: 3,
                how: DropKind::Rst,
                times: 2
            }
        );
        assert_eq!(o.reconnect_answer, Some(ResponseCode::UnknownSession));
        let topics: Vec<(&str, &str, Option<&[u8]>)> = o
            .topics
            .iter()
            .map(|t| {
                (
                    t.path.as_str(),
                    t.specification.topic_type().name(),
                    t.value.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            topics,
            [
                ("t/json", "JSON", Some(&b"\xa1\x61a\x82\x01\x02"[..])),
                ("t/b", "BINARY", Some(&[0x00, 0xff][..])),
                ("t/s", "STRING", None)
            ]
        );
        assert!(!o.deltas);
        let o = parse(&["--malformed", "text-frame"]).unwrap().options;
        assert_eq!(o.fault, Fault::MalformedResponse(Malformed::TextFrame));
        let o = parse(&["--reject", "123"]).unwrap().options;
        assert_eq!(o.fault, Fault::RejectAll(123));
        let o = parse(&["--stall-after", "0"]).unwrap().options;
        assert_eq!(o.fault, Fault::Stall { after_messages: 0 });
        let o = parse(&["--no-response"]).unwrap().options;
        assert_eq!(o.fault, Fault::NoResponse);
        let o = parse(&["--drop-after", "0"]).unwrap().options;
        assert_eq!(o.fault, Fault::drop_after(0, DropKind::Fin));
    }

    #[test]
    fn bad_command_lines_are_refused() {
        for bad in [
            &["--port"][..],
            &["--port", "x"],
            &["--port", "65536"],
            &["--user", "nopassword"],
            &["--user", ":password"],
            &["--user-env", "bob:UNSET_VARIABLE"],
            &["--user-env", "bob"],
            &["--users-file", "/nonexistent/users"],
            &["--reject", "1", "--stall-after", "1"],
            &["--no-response", "--malformed", "empty"],
            &["--drop-kind", "rst"],
            &["--drop-times", "2"],
            &["--drop-after", "1", "--drop-kind", "both"],
            &["--malformed", "odd"],
            &["--reconnect-answer", "123"],
            &["--reconnect-answer", "x"],
            &["--topic", "no-type"],
            &["--topic", "a:text"],
            &["--topic", "a/:json"],
            &["--topic", "a:int64=x"],
            &["--topic", "a:json={"],
            &["--topic", "a:binary=0g"],
            &["--no-deltas=yes"],
            &["--verbose"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn errors_do_not_show_passwords() {
        let err = parse(&["--user", "s3cret-without-a-name-separator"])
            .err()
            .unwrap();
        assert!(!err.contains("s3cret"), "{err}");
    }
}
