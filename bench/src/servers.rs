//! The servers the clients are measured against, each in a child process of this program
//! (so that client memory and CPU are the client's alone): the test server and an echo server.

use std::io::{BufRead, BufReader, Read};
use std::net::Ipv4Addr;
use std::process::{Child, ChildStdin, Command, Stdio};

use diffusion_test_server::{Options, TestServer};
use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// Which server a child process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `diffusion_test_server::TestServer` with default options (no JSON log output).
    TestServer,
    /// A raw tokio-tungstenite server that sends every data message straight back.
    Echo,
}

impl Kind {
    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::TestServer => "test-server",
            Kind::Echo => "echo",
        }
    }

    /// The kind named `name`.
    pub fn from_name(name: &str) -> Option<Kind> {
        [Kind::TestServer, Kind::Echo]
            .into_iter()
            .find(|k| k.name() == name)
    }
}

/// A server running in a child process; dropping it stops the child.
pub struct ServerProcess {
    child: Child,
    /// Closed on drop: the child exits when its stdin ends, even if we die first.
    stdin: Option<ChildStdin>,
    /// `ws://127.0.0.1:PORT`.
    pub url: String,
}

impl ServerProcess {
    /// Starts this program again as `--serve KIND` and waits for the URL it listens on.
    pub fn start(kind: Kind) -> Result<ServerProcess, String> {
        let exe = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
        let mut child = Command::new(exe)
            .args(["--serve", kind.name()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("starting the {} process: {e}", kind.name()))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let mut process = ServerProcess {
            child,
            stdin,
            url: String::new(),
        };
        let mut line = String::new();
        if let Some(stdout) = stdout {
            let mut reader = BufReader::new(stdout);
            reader
                .read_line(&mut line)
                .map_err(|e| format!("reading the {} process: {e}", kind.name()))?;
            // Nothing more is printed, but keep the pipe drained so the child never blocks.
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut reader.take(u64::MAX), &mut std::io::sink());
            });
        }
        match line.trim().strip_prefix("listening ") {
            Some(url) => {
                process.url = url.to_owned();
                Ok(process)
            }
            None => Err(format!("the {} process did not start: {line:?}", kind.name())),
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The child's side: runs the server on a default multi-thread tokio runtime (as
/// `#[tokio::main]` would), prints `listening URL`, and exits when stdin ends.
pub fn serve(kind: Kind) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    runtime.block_on(async {
        // Held until the end of this block: dropping it stops the server.
        let mut _server = None;
        let url = match kind {
            Kind::TestServer => {
                let server = TestServer::start(Options::default())
                    .await
                    .map_err(|e| format!("test server: {e}"))?;
                let url = server.url();
                _server = Some(server);
                url
            }
            Kind::Echo => echo_server().await.map_err(|e| format!("echo server: {e}"))?,
        };
        println!("listening {url}");
        let mut stdin = tokio::io::stdin();
        let mut buf = [0u8; 64];
        while let Ok(n) = stdin.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
        Ok(())
    })
}

/// The same WebSocket settings as the test server's connections: an 8 KiB read buffer,
/// every write sent at once.
fn echo_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(1 << 20)
}

async fn echo_server() -> std::io::Result<String> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let url = format!("ws://{}", listener.local_addr()?);
    tokio::spawn(async move {
        loop {
            if let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(echo(tcp));
            }
        }
    });
    Ok(url)
}

/// Sends every data message back as it came, one write each, as the test server does.
async fn echo(tcp: TcpStream) {
    let _ = tcp.set_nodelay(true);
    let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(tcp, Some(echo_config())).await else {
        return;
    };
    while let Some(Ok(message)) = ws.next().await {
        let data = matches!(message, Message::Binary(_) | Message::Text(_));
        if message.is_close() || (data && ws.send(message).await.is_err()) {
            return;
        }
    }
}
