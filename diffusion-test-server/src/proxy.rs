//! A small HTTP CONNECT proxy for tests of a client's proxy support: tunnels to loopback
//! addresses only, asks for Basic credentials or refuses every tunnel when told to, and
//! records every `CONNECT` it answered.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use crate::shared::lock;

/// How a [`ConnectProxy`] behaves. The default tunnels every `CONNECT` to a loopback
/// address, without credentials, on any free port. `Debug` hides the password.
#[derive(Clone, Default)]
pub struct ProxyOptions {
    /// TCP port on 127.0.0.1; 0 picks any free port.
    pub port: u16,
    /// When set, a `CONNECT` without `Proxy-Authorization: Basic` for this user name and
    /// password is answered 407.
    pub credentials: Option<(String, String)>,
    /// When set, every `CONNECT` (with the right credentials) is answered with this status
    /// instead of a tunnel, e.g. 403.
    pub refuse_with: Option<u16>,
}

impl fmt::Debug for ProxyOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyOptions")
            .field("port", &self.port)
            .field("user", &self.credentials.as_ref().map(|(user, _)| user))
            .field("refuse_with", &self.refuse_with)
            .finish()
    }
}

impl ProxyOptions {
    /// Asks for these credentials.
    pub fn credentials(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.credentials = Some((user.into(), password.into()));
        self
    }

    /// Refuses every tunnel with `status`.
    pub fn refuse_with(mut self, status: u16) -> Self {
        self.refuse_with = Some(status);
        self
    }
}

/// One `CONNECT` the proxy answered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProxyRequest {
    /// The `host:port` asked for.
    pub target: String,
    /// The user name of the request's `Proxy-Authorization: Basic`, if it had one.
    pub user: Option<String>,
    /// The status answered: 200 for a tunnel.
    pub status: u16,
}

/// An HTTP CONNECT proxy on 127.0.0.1, for tests: it tunnels only to loopback addresses
/// (anything else is answered 403) and records every `CONNECT` it answered. Dropping it
/// stops it and closes its tunnels. Start it within a tokio runtime, or with
/// [`crate::ServerThread::proxy`] from any test.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use diffusion_test_server::{ConnectProxy, ProxyOptions};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// let proxy = ConnectProxy::start(ProxyOptions::default().credentials("proxyuser", "pw")).await?;
/// assert_eq!(proxy.url(), format!("http://{}", proxy.addr()));
/// let mut tcp = tokio::net::TcpStream::connect(proxy.addr()).await?;
/// tcp.write_all(b"CONNECT 127.0.0.1:9 HTTP/1.1\r\nHost: 127.0.0.1:9\r\n\r\n").await?;
/// let mut answer = vec![0; 128];
/// let n = tcp.read(&mut answer).await?;
/// assert!(answer[..n].starts_with(b"HTTP/1.1 407"));
/// assert_eq!(proxy.requests()[0].status, 407);
/// # Ok(()) }
/// ```
pub struct ConnectProxy {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<ProxyRequest>>>,
    acceptor: JoinHandle<()>,
}

impl fmt::Debug for ConnectProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectProxy")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl ConnectProxy {
    /// Binds 127.0.0.1 (only) on `options.port` and starts answering. Must be called
    /// within a tokio runtime.
    pub async fn start(options: ProxyOptions) -> io::Result<ConnectProxy> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, options.port)).await?;
        let addr = listener.local_addr()?;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let acceptor = tokio::spawn(accept_loop(listener, Arc::new(options), requests.clone()));
        Ok(ConnectProxy {
            addr,
            requests,
            acceptor,
        })
    }

    /// The bound address (127.0.0.1 and the actual port).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, the URL a client is given (with `user:password@` before
    /// the address when the proxy asks for credentials).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every `CONNECT` answered so far, oldest first. One is recorded before its answer is
    /// sent, so a client that has its tunnel finds it here.
    pub fn requests(&self) -> Vec<ProxyRequest> {
        lock(&self.requests).clone()
    }
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

/// Accepts connections; the tasks live in a `JoinSet` owned here, so aborting this task
/// closes every tunnel.
async fn accept_loop(
    listener: TcpListener,
    options: Arc<ProxyOptions>,
    requests: Arc<Mutex<Vec<ProxyRequest>>>,
) {
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => {
                    tasks.spawn(serve(client, options.clone(), requests.clone()));
                }
                // Out of file descriptors and the like: give it a moment, do not spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
}

/// The longest request head read, and how long the client may take to send it.
const MAX_HEAD: usize = 8 * 1024;
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// One client connection: its `CONNECT`, the answer, then the tunnel until either side
/// closes. Errors just end the connection.
async fn serve(mut client: TcpStream, options: Arc<ProxyOptions>, requests: Arc<Mutex<Vec<ProxyRequest>>>) {
    let mut buffer = vec![0; MAX_HEAD];
    let head = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut client, &mut buffer)).await {
        Ok(Ok(head)) => head,
        Ok(Err(status)) => {
            let _ = answer(&mut client, status).await;
            return;
        }
        Err(_) => return,
    };
    let (status, upstream) = decide(&head, &options).await;
    lock(&requests).push(ProxyRequest {
        target: head.target,
        user: head.user,
        status,
    });
    let (Some(mut upstream), Ok(())) = (upstream, answer(&mut client, status).await) else {
        return;
    };
    // Bytes the client sent after its request head go first.
    if !head.rest.is_empty() && upstream.write_all(&head.rest).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

/// What a client's request head asked for.
struct Head {
    method: String,
    target: String,
    /// The user name and password of a `Proxy-Authorization: Basic` header.
    user: Option<String>,
    password: Option<String>,
    /// What followed the head.
    rest: Vec<u8>,
}

/// Reads and parses the request head; an error is the status to answer with.
async fn read_head(client: &mut TcpStream, buffer: &mut [u8]) -> Result<Head, u16> {
    let mut filled = 0;
    loop {
        let read = client.read(&mut buffer[filled..]).await.map_err(|_| 400u16)?;
        if read == 0 {
            return Err(400);
        }
        filled += read;
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&buffer[..filled]) {
            Ok(httparse::Status::Complete(len)) => {
                let credentials = request
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("proxy-authorization"))
                    .and_then(|h| basic_credentials(h.value));
                let (user, password) = credentials.map_or((None, None), |(u, p)| (Some(u), Some(p)));
                return Ok(Head {
                    method: request.method.unwrap_or_default().to_owned(),
                    target: request.path.unwrap_or_default().to_owned(),
                    user,
                    password,
                    rest: buffer[len..filled].to_vec(),
                });
            }
            Ok(httparse::Status::Partial) if filled == buffer.len() => return Err(431),
            Ok(httparse::Status::Partial) => {}
            Err(_) => return Err(400),
        }
    }
}

/// `Basic base64(user:password)`.
fn basic_credentials(value: &[u8]) -> Option<(String, String)> {
    let value = std::str::from_utf8(value).ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let (user, password) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// The status to answer with, and the connection to the target for a tunnel.
async fn decide(head: &Head, options: &ProxyOptions) -> (u16, Option<TcpStream>) {
    if head.method != "CONNECT" {
        return (405, None);
    }
    if let Some((user, password)) = &options.credentials {
        if head.user.as_ref() != Some(user) || head.password.as_ref() != Some(password) {
            return (407, None);
        }
    }
    if let Some(status) = options.refuse_with {
        return (status, None);
    }
    // A test helper, not an open relay: loopback targets only.
    let addresses: Vec<SocketAddr> = match tokio::net::lookup_host(head.target.as_str()).await {
        Ok(addresses) => addresses.filter(|a| a.ip().is_loopback()).collect(),
        Err(_) => return (502, None),
    };
    if addresses.is_empty() {
        return (403, None);
    }
    match TcpStream::connect(addresses.as_slice()).await {
        Ok(upstream) => (200, Some(upstream)),
        Err(_) => (502, None),
    }
}

async fn answer(client: &mut TcpStream, status: u16) -> io::Result<()> {
    let text = match status {
        200 => "HTTP/1.1 200 Connection established\r\n\r\n".to_owned(),
        407 => "HTTP/1.1 407 Proxy Authentication Required\r\n\
                Proxy-Authenticate: Basic realm=\"diffusion-test-server\"\r\nContent-Length: 0\r\n\r\n"
            .to_owned(),
        other => format!("HTTP/1.1 {other} Refused\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    };
    client.write_all(text.as_bytes()).await?;
    client.flush().await
}
