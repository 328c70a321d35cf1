//! The `diffusion-test-server` program: its first line names the port, it logs JSON lines
//! without secrets, applies its fault flags, and exits cleanly on SIGTERM.
// Integration tests: a failed unwrap is a failed test, as in #[test] functions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::Duration;

use diffusion_proto::{
    ConnectionParams, Credentials, EncodeValue, Message, ProtocolVersion, ServiceCall, SetTopicRequest,
    SubscribeRequest, TopicType, UpdateConstraint,
};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message as WsMessage;

const WAIT: Duration = Duration::from_secs(10);

struct Program {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    seen: Vec<Value>,
}

impl Program {
    fn spawn(args: &[&str]) -> Program {
        Program::spawn_with(args, &[])
    }

    fn spawn_with(args: &[&str], env: &[(&str, &str)]) -> Program {
        let mut child = Command::new(env!("CARGO_BIN_EXE_diffusion-test-server"))
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Program {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    async fn line(&mut self) -> Value {
        let line = tokio::time::timeout(WAIT, self.lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let value: Value = serde_json::from_str(&line).unwrap();
        self.seen.push(value.clone());
        value
    }

    /// Reads lines until one matches.
    async fn until(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        loop {
            let v = self.line().await;
            if pred(&v) {
                return v;
            }
        }
    }

    async fn terminate(mut self) -> Vec<Value> {
        let pid = self.child.id().unwrap().to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(status.success());
        let shutdown = self.until(|v| v["event"] == "shutdown").await;
        assert_eq!(shutdown["signal"], "SIGTERM");
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "{status:?}");
        self.seen
    }
}

/// The program run to completion: exit code, stdout, stderr.
fn run_to_end(args: &[&str]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_diffusion-test-server"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (out.status.code(), text(out.stdout), text(out.stderr))
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// A protocol-25 connection with these credentials, and its connection response.
async fn connect_v25(port: u64, principal: &str, password: &str) -> (Ws, Vec<u8>) {
    let mut params = ConnectionParams::new(ProtocolVersion::V25);
    params.principal = Some(principal.into());
    params.credentials = Credentials::password(password);
    let mut request = format!("ws://127.0.0.1:{port}/diffusion")
        .into_client_request()
        .unwrap();
    for (name, value) in params.to_headers() {
        request
            .headers_mut()
            .insert(name, HeaderValue::from_str(&value).unwrap());
    }
    let (mut ws, _) = tokio_tungstenite::client_async(request, tcp(port).await)
        .await
        .unwrap();
    let Some(Ok(WsMessage::Binary(response))) = ws.next().await else {
        panic!("no connection response");
    };
    (ws, response.to_vec())
}

/// The response code a protocol-25 connection with these credentials gets.
async fn connection_code(port: u64, principal: &str, password: &str) -> u8 {
    connect_v25(port, principal, password).await.1[2]
}

async fn tcp(port: u64) -> tokio::net::TcpStream {
    tokio::net::TcpStream::connect(format!("127.0.0.1:{port}"))
        .await
        .unwrap()
}

#[tokio::test]
async fn program_logs_json_lines_and_stops_on_sigterm() {
    let mut program = Program::spawn(&["--port", "0", "--user", "bob:secret", "--ping-period-ms", "100"]);
    let listening = program.line().await;
    assert_eq!(listening["event"], "listening");
    let port = listening["port"].as_u64().unwrap();
    assert_eq!(listening["url"], format!("ws://127.0.0.1:{port}"));

    let (mut ws, response) = connect_v25(port, "bob", "secret").await;
    assert_eq!(response.len(), 55);
    ws.send(WsMessage::Binary(vec![0x00, 0x38, 0x05].into()))
        .await
        .unwrap();

    let upgrade = program.until(|v| v["event"] == "upgrade").await;
    assert_eq!(upgrade["principal"], "bob");
    assert_eq!(upgrade["params"]["password"], "<redacted>");
    assert_eq!(upgrade["carrier"], "headers");
    assert_eq!(upgrade["version"], 25);
    let response = program.until(|v| v["event"] == "response").await;
    assert_eq!(response["code"], 100);
    let ping = program
        .until(|v| v["event"] == "message" && v["dir"] == "in")
        .await;
    assert_eq!(
        (
            ping["type"].as_str(),
            ping["service"].as_i64(),
            ping["cid"].as_i64()
        ),
        (Some("SERVICE_REQUEST"), Some(56), Some(5))
    );
    let answer = program
        .until(|v| v["event"] == "message" && v["dir"] == "out")
        .await;
    assert_eq!(
        (answer["type"].as_str(), answer["cid"].as_i64()),
        (Some("SERVICE_RESPONSE"), Some(5))
    );

    // Answer one system ping, and see it logged.
    loop {
        let Some(Ok(WsMessage::Binary(frame))) = ws.next().await else {
            panic!("connection ended");
        };
        if frame[..2] == [0x00, 0x37] {
            let mut answer = vec![0x06];
            answer.extend_from_slice(&frame[2..]);
            ws.send(WsMessage::Binary(answer.into())).await.unwrap();
            break;
        }
    }
    program
        .until(|v| v["event"] == "session" && v["kind"] == "system_ping_answered")
        .await;

    let seen = program.terminate().await;
    let text: String = seen.iter().map(Value::to_string).collect();
    assert!(
        !text.contains("secret") && !text.contains("AQZzZWNyZXQ"),
        "{text}"
    );
}

#[tokio::test]
async fn program_applies_fault_flags() {
    let mut program = Program::spawn(&["--reject", "119"]);
    let port = program.line().await["port"].as_u64().unwrap();
    let url = format!("ws://127.0.0.1:{port}/diffusion?v=29&ty=WB&ca=8&r=0");
    let (mut ws, _) = tokio_tungstenite::client_async(url, tcp(port).await)
        .await
        .unwrap();
    let Some(Ok(WsMessage::Binary(frame))) = ws.next().await else {
        panic!("no connection response");
    };
    assert_eq!(frame[..], [0x23, 29, 119]);
    let response = program.until(|v| v["event"] == "response").await;
    assert_eq!(
        (response["code"].as_u64(), response["fault"].as_str()),
        (Some(119), Some("reject-all"))
    );
    program.terminate().await;
}

/// A request frame as a protocol-25 client sends it.
fn request<C: ServiceCall>(cid: i64, request: &C) -> WsMessage {
    let message = Message::ServiceRequest {
        service: C::SERVICE,
        cid,
        payload: request.to_bytes(ProtocolVersion::V25).unwrap(),
    };
    WsMessage::Binary(message.to_bytes())
}

async fn next_frame(ws: &mut Ws) -> Vec<u8> {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.unwrap() {
            Some(Ok(WsMessage::Binary(frame))) if frame[..2] != [0x00, 0x37] => return frame.to_vec(),
            Some(Ok(_)) => {}
            other => panic!("connection ended: {other:?}"),
        }
    }
}

#[tokio::test]
async fn program_creates_topics_from_flags_and_sends_values_only_without_deltas() {
    let mut program = Program::spawn(&[
        "--topic",
        "t/s:string=hello",
        "--topic",
        "t/j:json",
        "--no-deltas",
    ]);
    let port = program.line().await["port"].as_u64().unwrap();
    for (id, path, topic_type) in [(1, "t/s", "STRING"), (2, "t/j", "JSON")] {
        let added = program.line().await;
        assert_eq!(
            (
                &added["event"],
                &added["kind"],
                &added["topic_id"],
                &added["path"],
                &added["topic_type"]
            ),
            (
                &"session".into(),
                &"topic_added".into(),
                &id.into(),
                &path.into(),
                &topic_type.into()
            ),
            "{added}"
        );
    }
    let (mut ws, _) = connect_v25(port, "", "").await;
    ws.send(request(1, &SubscribeRequest::new("?t//"))).await.unwrap();
    assert_eq!(next_frame(&mut ws).await, [0x06, 0x01]);
    // Path order: t/j (2, no value), then t/s (1) and its value.
    assert_eq!(next_frame(&mut ws).await, b"\x00\x57\x00\x02\x03t/j\x0f\x00");
    assert_eq!(next_frame(&mut ws).await, b"\x00\x57\x00\x01\x03t/s\x11\x00");
    assert_eq!(next_frame(&mut ws).await, b"\x04\x00\x00\x00\x01\x65hello");
    let long = |c: &str| format!("{}{c}", "x".repeat(40)).encode_value().unwrap();
    for (cid, value) in [(2, long("a")), (3, long("b"))] {
        let set = SetTopicRequest {
            path: "t/s".into(),
            topic_type: TopicType::String,
            value: value.clone(),
            constraint: UpdateConstraint::Unconstrained,
        };
        ws.send(request(cid, &set)).await.unwrap();
        assert_eq!(next_frame(&mut ws).await, [0x06, cid as u8]);
        // A one-byte change, still a whole value.
        let frame = next_frame(&mut ws).await;
        assert_eq!((frame[0], &frame[5..]), (0x04, &value[..]));
    }
    let set = program
        .until(|v| v["kind"] == "topic_set" && v["value_size"] == 43)
        .await;
    assert_eq!((&set["sent"], &set["subscribers"]), (&"value".into(), &1.into()));
    program.terminate().await;
}

#[test]
fn bad_topic_flags_are_usage_errors() {
    let (code, out, err) = run_to_end(&["--topic", "a//b:json"]);
    assert_eq!((code, out.as_str()), (Some(2), ""));
    assert!(err.contains("a//b"), "{err}");
}

#[cfg(feature = "tls")]
#[tokio::test]
async fn program_with_tls_writes_its_certificate() {
    let mut program = Program::spawn(&["--tls"]);
    let listening = program.line().await;
    assert!(listening["url"].as_str().unwrap().starts_with("wss://127.0.0.1:"));
    let tls = program.line().await;
    assert_eq!(tls["event"], "tls");
    let path = tls["cert_path"].as_str().unwrap().to_owned();
    let pem = std::fs::read_to_string(&path).unwrap();
    assert!(pem.contains("BEGIN CERTIFICATE") && !pem.contains("PRIVATE KEY"));
    program.terminate().await;
    assert!(!std::path::Path::new(&path).exists());
}

#[test]
fn help_goes_to_stdout_with_every_flag_and_its_default() {
    let (code, out, err) = run_to_end(&["--help"]);
    assert_eq!(code, Some(0));
    assert!(err.is_empty(), "{err}");
    for flag in [
        "--port <N>",
        "--user <NAME:PASSWORD>",
        "--user-env <NAME:VAR>",
        "--users-file <PATH>",
        "--ping-period-ms <N>",
        "--max-message-size <N>",
        "--tls",
        "--reconnect-answer <CODE>",
        "--reject <CODE>",
        "--drop-after <N>",
        "--drop-kind <KIND>",
        "--drop-times <N>",
        "--stall-after <N>",
        "--no-response",
        "--malformed <KIND>",
        "--topic <PATH:TYPE[=VALUE]>",
        "--no-deltas",
    ] {
        assert_eq!(
            out.lines().filter(|l| l.trim_start().starts_with(flag)).count(),
            1,
            "{flag}\n{out}"
        );
    }
    for default in [
        "[default: 0]",
        "[default: 90000]",
        "[default: 10000000]",
        "[default: fin]",
        "[default: 1]",
    ] {
        assert!(out.contains(default), "{default}\n{out}");
    }
}

#[test]
fn usage_errors_exit_2_on_stderr_before_anything_starts() {
    for bad in [
        &["--verbose"][..],
        &["--port", "65536"],
        &["--user", "admin-and-hunter2"],
        &["--user-env", "admin:DIFFUSION_TEST_SERVER_UNSET_VARIABLE"],
        &["--users-file", "/nonexistent/users"],
        &["--reject", "113", "--stall-after", "1"],
        &["--malformed", "sideways"],
    ] {
        let (code, out, err) = run_to_end(bad);
        assert_eq!(code, Some(2), "{bad:?}: {err}");
        assert!(
            out.is_empty(),
            "{bad:?}: nothing starts, so no listening line: {out}"
        );
        assert!(err.starts_with("error: "), "{bad:?}: {err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
}

#[test]
fn a_port_in_use_is_a_run_time_error_exit_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let (code, out, err) = run_to_end(&["--port", &port]);
    assert_eq!(code, Some(1), "{err}");
    let line: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        (line["event"].as_str(), line["stage"].as_str()),
        (Some("error"), Some("startup"))
    );
    assert!(err.starts_with("diffusion-test-server: "), "{err}");
}

#[tokio::test]
async fn passwords_come_from_the_environment_and_from_files() {
    let file = std::env::temp_dir().join(format!("diffusion-test-server-users-{}", std::process::id()));
    std::fs::write(&file, "# principals\ncarol:c@rol pw\n").unwrap();
    let mut program = Program::spawn_with(
        &[
            "--user-env",
            "bob:BOB_PASSWORD",
            "--users-file",
            file.to_str().unwrap(),
        ],
        &[("BOB_PASSWORD", "b0b:pw")],
    );
    let port = program.line().await["port"].as_u64().unwrap();
    assert_eq!(connection_code(port, "bob", "b0b:pw").await, 100);
    assert_eq!(connection_code(port, "carol", "c@rol pw").await, 100);
    assert_eq!(connection_code(port, "bob", "c@rol pw").await, 116);
    let seen = program.terminate().await;
    std::fs::remove_file(&file).unwrap();
    let text: String = seen.iter().map(Value::to_string).collect();
    assert!(!text.contains("b0b:pw") && !text.contains("c@rol"), "{text}");
}
