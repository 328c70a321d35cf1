//! `diffusion-test-server`: the loopback test server as a program, for scripts and the
//! official clients. It logs JSON lines on stdout and exits cleanly on SIGINT/SIGTERM.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use diffusion_test_server::{DropKind, Fault, Malformed, Options, TestServer};
use serde_json::json;

const USAGE: &str = "\
diffusion-test-server: a loopback Diffusion server (protocol 25 and 29) for tests

USAGE: diffusion-test-server [OPTIONS]

Listens on 127.0.0.1 only. Prints JSON lines on stdout, the first one
{\"event\":\"listening\",\"port\":N,\"url\":\"ws://127.0.0.1:N\"}; then one per upgrade request,
connection response, message, answered system ping, session event, fault, close and error.
Passwords and session tokens are printed as \"<redacted>\". Stops on SIGINT or SIGTERM.

OPTIONS:
  --port N                 TCP port; 0 (the default) picks a free one
  --user NAME:PASSWORD     a principal and its password (repeatable); anonymous is always allowed
  --ping-period-ms N       system ping period, also advertised (default 90000; 0 = no pings)
  --max-message-size N     advertised and enforced maximum message size (default 10000000)
  --tls                    serve wss:// with a fresh self-signed certificate for localhost and
                           127.0.0.1; the second line is {\"event\":\"tls\",\"cert_path\":PATH}
  --reconnect-answer CODE  answer every reconnection with this response code (3 bytes)

FAULTS (at most one):
  --reject CODE            answer every connection with the 3-byte response CODE, then close
  --drop-after N           drop a connection's TCP socket after N client messages (0 = right
                           after the connection response); the session is kept
    --drop-kind fin|rst    how to drop it (default fin)
    --drop-times N         how many connections to drop (default 1)
  --stall-after N          after N client messages answer nothing more (no pongs), never close
  --no-response            upgrade, then never send a connection response
  --malformed KIND         replace each successful connection response, then close; KIND is
                           truncated, wrong-protocol-byte, wrong-version, unknown-code,
                           trailing-bytes, empty or text-frame

  --help                   this text
";

/// What the command line asks for.
#[derive(Debug)]
struct Args {
    options: Options,
    tls: bool,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    let mut options = Options {
        log_json: true,
        ..Options::default()
    };
    let mut tls = false;
    let mut faults: Vec<Fault> = Vec::new();
    let (mut drop_after, mut drop_kind, mut drop_times) = (None, None, None);
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--help" | "-h" => return Ok(None),
            "--port" => options.port = number(&flag, &value()?)?,
            "--user" => {
                let v = value()?;
                let (name, password) = v
                    .split_once(':')
                    .ok_or_else(|| "--user takes NAME:PASSWORD".to_owned())?;
                options.users.push((name.to_owned(), password.to_owned()));
            }
            "--ping-period-ms" => options.ping_period = Duration::from_millis(number(&flag, &value()?)?),
            "--max-message-size" => options.max_message_size = number(&flag, &value()?)?,
            "--tls" => tls = true,
            "--reconnect-answer" => {
                let code: u8 = number(&flag, &value()?)?;
                let code = diffusion_proto::ResponseCode::from_u8(code)
                    .ok_or_else(|| format!("--reconnect-answer: {code} is not a known response code"))?;
                options.reconnect_answer = Some(code);
            }
            "--reject" => faults.push(Fault::RejectAll(number(&flag, &value()?)?)),
            "--drop-after" => drop_after = Some(number(&flag, &value()?)?),
            "--drop-kind" => drop_kind = Some(value()?.parse::<DropKind>()?),
            "--drop-times" => drop_times = Some(number(&flag, &value()?)?),
            "--stall-after" => faults.push(Fault::Stall {
                after_messages: number(&flag, &value()?)?,
            }),
            "--no-response" => faults.push(Fault::NoResponse),
            "--malformed" => faults.push(Fault::MalformedResponse(value()?.parse::<Malformed>()?)),
            other => return Err(format!("unknown option {other:?}; see --help")),
        }
    }
    match drop_after {
        Some(messages) => faults.push(Fault::DropAfter {
            messages,
            how: drop_kind.unwrap_or_default(),
            times: drop_times.unwrap_or(1),
        }),
        None if drop_kind.is_some() || drop_times.is_some() => {
            return Err("--drop-kind and --drop-times go with --drop-after".to_owned())
        }
        None => {}
    }
    if faults.len() > 1 {
        return Err(
            "at most one fault: --reject, --drop-after, --stall-after, --no-response or --malformed".into(),
        );
    }
    options.fault = faults.pop().unwrap_or_default();
    Ok(Some(Args { options, tls }))
}

fn number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("{flag}: {value:?} is not a valid number"))
}

fn print_line(value: serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("diffusion-test-server: {e}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            print_line(json!({"event": "error", "stage": "startup", "message": e.to_string()}));
            eprintln!("diffusion-test-server: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(mut args: Args) -> std::io::Result<()> {
    let cert_path = if args.tls {
        Some(make_certificate(&mut args.options)?)
    } else {
        None
    };
    let server = TestServer::start(args.options).await?;
    if let Some(path) = &cert_path {
        print_line(json!({"event": "tls", "cert_path": path.display().to_string()}));
    }
    let signal = wait_for_signal().await;
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

/// The name of the signal that asked us to stop.
async fn wait_for_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            return tokio::select! {
                _ = tokio::signal::ctrl_c() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            };
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    "SIGINT"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Args>, String> {
        parse_args(args.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn flags_build_options() {
        let args = parse(&[
            "--port",
            "0",
            "--user",
            "admin:se:cret",
            "--user",
            "bob:",
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
        ])
        .unwrap()
        .unwrap();
        let o = &args.options;
        assert!(args.tls && o.log_json);
        assert_eq!(
            o.users,
            [("admin".into(), "se:cret".into()), ("bob".into(), String::new())]
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
        assert_eq!(
            o.reconnect_answer,
            Some(diffusion_proto::ResponseCode::UnknownSession)
        );
        let o = parse(&["--malformed", "text-frame"]).unwrap().unwrap().options;
        assert_eq!(o.fault, Fault::MalformedResponse(Malformed::TextFrame));
        let o = parse(&["--reject", "123"]).unwrap().unwrap().options;
        assert_eq!(o.fault, Fault::RejectAll(123));
        let o = parse(&["--stall-after", "0"]).unwrap().unwrap().options;
        assert_eq!(o.fault, Fault::Stall { after_messages: 0 });
        assert!(parse(&["--help"]).unwrap().is_none());
    }

    #[test]
    fn bad_command_lines_are_refused() {
        for bad in [
            &["--port"][..],
            &["--port", "x"],
            &["--user", "nopassword"],
            &["--reject", "1", "--stall-after", "1"],
            &["--drop-kind", "rst"],
            &["--drop-after", "1", "--drop-kind", "both"],
            &["--malformed", "odd"],
            &["--reconnect-answer", "123"],
            &["--verbose"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
