//! One task per TCP connection: TLS, the WebSocket upgrade (capturing path, query and
//! headers), then frames both ways between the socket and the hub, and the ways it ends.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{Callback, ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;

use crate::options::DropKind;

/// Commands the hub sends to one connection, carried out in order.
#[derive(Debug)]
pub(crate) enum ConnCmd {
    /// Send one WebSocket message (binary, or text for a fault).
    Send(WsMessage),
    /// Flush, then end the TCP connection without a WebSocket close frame.
    Close(DropKind),
    /// Send nothing more, ever; read and discard until the client goes away.
    Stall,
}

/// What a connection task reports to the hub.
#[derive(Debug)]
pub(crate) enum Input {
    /// The WebSocket upgrade completed.
    Upgrade {
        conn: u64,
        path: String,
        query: Option<String>,
        headers: Vec<(String, Vec<u8>)>,
        commands: mpsc::Sender<ConnCmd>,
    },
    /// A data frame arrived (text frames as their UTF-8 bytes).
    Frame { conn: u64, frame: Bytes, text: bool },
    /// The client ended the connection, or it failed; with the code of its WebSocket close
    /// frame, if it sent one.
    Closed {
        conn: u64,
        reason: String,
        close_code: Option<u16>,
    },
    /// The connection failed before it became a WebSocket.
    Error { conn: u64, message: String },
}

/// Commands a hub may queue for one connection before it is treated as not reading.
pub(crate) const COMMAND_QUEUE: usize = 1024;

/// How long a new TCP connection may take to complete TLS and the WebSocket upgrade.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A TCP connection, plain or TLS, keeping access to the socket for `SO_LINGER`.
pub(crate) enum Stream {
    Plain(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            #[cfg(feature = "tls")]
            Stream::Tls(s) => s.get_ref().0,
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// How the connection layer is set up.
#[derive(Clone)]
pub(crate) struct ConnSetup {
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<tokio_rustls::TlsAcceptor>,
    pub(crate) websocket: WebSocketConfig,
}

/// tungstenite settings: an 8 KiB read buffer, writes sent at once with a bounded
/// backlog, and an inbound limit above the advertised maximum message size, so that the
/// protocol server (not tungstenite) sees a slightly oversize message and decides.
pub(crate) fn websocket_config(max_message_size: u32) -> WebSocketConfig {
    let limit = usize::try_from(max_message_size)
        .unwrap_or(usize::MAX)
        .saturating_add(64 * 1024);
    WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(1 << 20)
        .max_message_size(Some(limit))
        .max_frame_size(Some(limit))
}

/// Runs one connection until it ends; every outcome is reported to the hub.
pub(crate) async fn run(conn: u64, tcp: TcpStream, setup: ConnSetup, hub: mpsc::Sender<Input>) {
    let report_error = |message: String| {
        let hub = hub.clone();
        async move {
            let _ = hub.send(Input::Error { conn, message }).await;
        }
    };
    // Pings and answers are tiny; send each at once.
    if let Err(e) = tcp.set_nodelay(true) {
        report_error(format!("TCP_NODELAY: {e}")).await;
    }
    let mut captured = None;
    let handshake = async {
        let stream = open(tcp, &setup).await?;
        let callback = Capture(&mut captured);
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(setup.websocket))
            .await
            .map_err(|e| format!("WebSocket upgrade: {e}"))
    };
    // A peer that connects and never completes the handshake must not hold a task forever.
    let mut ws = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(message)) => return report_error(message).await,
        Err(_) => {
            let message = format!("no TLS/WebSocket handshake within {HANDSHAKE_TIMEOUT:?}");
            return report_error(message).await;
        }
    };
    let Some((path, query, headers)) = captured else {
        return report_error("WebSocket upgrade without a request".into()).await;
    };
    let (commands, mut rx) = mpsc::channel(COMMAND_QUEUE);
    let upgrade = Input::Upgrade {
        conn,
        path,
        query,
        headers,
        commands,
    };
    if hub.send(upgrade).await.is_err() {
        return;
    }
    let mut close_code = None;
    let reason = loop {
        tokio::select! {
            cmd = rx.recv() => match cmd {
                Some(ConnCmd::Send(message)) => {
                    if let Err(e) = ws.send(message).await {
                        break format!("write failed: {e}");
                    }
                }
                Some(ConnCmd::Close(how)) => return close(ws, how).await,
                Some(ConnCmd::Stall) => break stall(ws.get_mut(), &mut rx).await,
                // The server is shutting down.
                None => return,
            },
            frame = ws.next() => match frame {
                Some(Ok(WsMessage::Binary(frame))) => {
                    if hub.send(Input::Frame { conn, frame, text: false }).await.is_err() {
                        return;
                    }
                }
                Some(Ok(WsMessage::Text(text))) => {
                    let frame = Bytes::from(text);
                    if hub.send(Input::Frame { conn, frame, text: true }).await.is_err() {
                        return;
                    }
                }
                // tungstenite queued the pong while reading; send it now rather than
                // with whatever is written next (SPEC §12: clients rely on pongs).
                Some(Ok(WsMessage::Ping(_))) => {
                    if let Err(e) = ws.flush().await {
                        break format!("write failed: {e}");
                    }
                }
                Some(Ok(WsMessage::Close(frame))) => {
                    // tungstenite answers the close frame; the stream then ends.
                    let _ = ws.flush().await;
                    close_code = frame.as_ref().map(|f| u16::from(f.code));
                    break match frame {
                        Some(f) => format!("WebSocket close {}", u16::from(f.code)),
                        None => "WebSocket close without code".to_owned(),
                    };
                }
                Some(Ok(WsMessage::Pong(_) | WsMessage::Frame(_))) => {}
                Some(Err(e)) => break describe_read_error(&e),
                None => break "end of stream".to_owned(),
            },
        }
    };
    let _ = hub
        .send(Input::Closed {
            conn,
            reason,
            close_code,
        })
        .await;
}

/// What the upgrade request carried: path, query and headers.
type Captured = (String, Option<String>, Vec<(String, Vec<u8>)>);

/// The upgrade callback: keeps a copy of the request and accepts it whatever it holds,
/// since what to answer is the protocol server's decision, made after the 101.
struct Capture<'a>(&'a mut Option<Captured>);

impl Callback for Capture<'_> {
    fn on_request(self, request: &Request, response: Response) -> Result<Response, ErrorResponse> {
        let uri = request.uri();
        let headers = request
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect();
        *self.0 = Some((uri.path().to_owned(), uri.query().map(str::to_owned), headers));
        Ok(response)
    }
}

async fn open(tcp: TcpStream, setup: &ConnSetup) -> Result<Stream, String> {
    #[cfg(feature = "tls")]
    if let Some(acceptor) = &setup.tls {
        return match acceptor.accept(tcp).await {
            Ok(s) => Ok(Stream::Tls(Box::new(s))),
            Err(e) => Err(format!("TLS handshake: {e}")),
        };
    }
    let _ = setup;
    Ok(Stream::Plain(tcp))
}

fn describe_read_error(e: &tokio_tungstenite::tungstenite::Error) -> String {
    use tokio_tungstenite::tungstenite::Error;
    match e {
        Error::Io(io) if io.kind() == io::ErrorKind::ConnectionReset => "reset".to_owned(),
        Error::Protocol(p) => format!("WebSocket protocol error: {p}"),
        Error::Capacity(c) => format!("WebSocket message too large: {c}"),
        e => format!("read failed: {e}"),
    }
}

/// Ends the connection the way the real server does after a rejection or ABORT: no
/// WebSocket close frame, just the TCP connection going away.
async fn close(mut ws: WebSocketStream<Stream>, how: DropKind) {
    let _ = ws.flush().await;
    let stream = ws.get_mut();
    match how {
        DropKind::Fin => {
            // For TLS this also sends close_notify, as any TLS server closing would.
            let _ = stream.shutdown().await;
        }
        DropKind::Rst => {
            // With a zero linger time, closing the socket sends RST instead of FIN.
            let _ = stream.tcp().set_zero_linger();
        }
    }
}

/// Reads and discards raw bytes, below the WebSocket layer so that not even pongs go
/// out, until the client goes away or the server shuts down. Commands are ignored.
async fn stall(stream: &mut Stream, commands: &mut mpsc::Receiver<ConnCmd>) -> String {
    let mut buf = vec![0u8; 8 * 1024];
    loop {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) => return "end of stream (stalled)".to_owned(),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return "reset (stalled)".to_owned(),
                Err(e) => return format!("read failed (stalled): {e}"),
            },
            cmd = commands.recv() => if cmd.is_none() {
                return "server shut down (stalled)".to_owned();
            },
        }
    }
}
