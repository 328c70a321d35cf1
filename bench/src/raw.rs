//! The floor: a raw WebSocket client (tokio- or async-tungstenite) sending a user ping's bytes
//! and awaiting the frame that answers it: from the echo server, or the test server after a handshake.

use std::time::{Duration, Instant};

use bytes::Bytes;
use diffusion_proto::{ClientConfig, ClientSession, ConnectionResponse, Message, Output, ServiceId};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};

/// A WebSocket with nothing above it but the user ping's bytes.
pub struct RawClient<W> {
    ws: W,
    next_cid: i64,
}

/// On tokio.
pub type TokioWs = tokio_tungstenite::WebSocketStream<TcpStream>;
/// On futures-io (async-std, smol): what diffusion-async-std runs on.
pub type FuturesWs = async_tungstenite::WebSocketStream<async_net::TcpStream>;

/// The frame of USER_PING request `cid`, as `ClientSession` sends it.
fn user_ping(cid: i64) -> Bytes {
    Message::ServiceRequest {
        service: ServiceId::USER_PING,
        cid,
        payload: Bytes::new(),
    }
    .to_bytes()
}

/// The cid a frame answers: the echoed request itself, or the test server's response.
fn answered_cid(frame: &Bytes) -> Option<i64> {
    match Message::decode(frame).ok()? {
        Message::ServiceRequest { cid, .. } | Message::ServiceResponse { cid, .. } => Some(cid),
        _ => None,
    }
}

async fn tcp(address: &str) -> Result<TcpStream, String> {
    let tcp = TcpStream::connect(address)
        .await
        .map_err(|e| format!("TCP connect to {address}: {e}"))?;
    tcp.set_nodelay(true).map_err(|e| format!("TCP_NODELAY: {e}"))?;
    Ok(tcp)
}

impl RawClient<FuturesWs> {
    /// A plain WebSocket upgrade to the echo server at `url` over async-net, with our
    /// client's settings.
    pub async fn connect_echo_futures(url: &str) -> Result<Self, String> {
        let address = url.trim_start_matches("ws://");
        let tcp = async_net::TcpStream::connect(address)
            .await
            .map_err(|e| format!("TCP connect to {address}: {e}"))?;
        tcp.set_nodelay(true).map_err(|e| format!("TCP_NODELAY: {e}"))?;
        let request = format!("{url}/")
            .into_client_request()
            .map_err(|e| format!("request: {e}"))?;
        let config = diffusion_client::websocket_config(64 << 20);
        let (ws, _) = async_tungstenite::client_async_with_config(request, tcp, Some(config))
            .await
            .map_err(|e| format!("WebSocket upgrade: {e}"))?;
        Ok(RawClient { ws, next_cid: 1 })
    }
}

impl RawClient<TokioWs> {
    /// A plain WebSocket upgrade to the echo server at `url`, with our client's settings.
    pub async fn connect_echo(url: &str) -> Result<Self, String> {
        let address = url.trim_start_matches("ws://");
        let request = format!("{url}/")
            .into_client_request()
            .map_err(|e| format!("request: {e}"))?;
        let config = diffusion_client::websocket_config(64 << 20);
        let (ws, _) = tokio_tungstenite::client_async_with_config(request, tcp(address).await?, Some(config))
            .await
            .map_err(|e| format!("WebSocket upgrade: {e}"))?;
        Ok(RawClient { ws, next_cid: 1 })
    }

    /// A Diffusion connection to the test server at `url`: the upgrade `ClientSession`
    /// asks for, then the connection response read and checked by hand.
    pub async fn connect_diffusion(url: &str) -> Result<Self, String> {
        let config = ClientConfig::new(url).map_err(|e| e.to_string())?;
        let version = config.version;
        let mut core = ClientSession::new(config, Instant::now());
        let Some(Output::Connect(request)) = core.poll_output() else {
            return Err("ClientSession did not ask to connect".into());
        };
        let http = diffusion_client::upgrade_request(&request).map_err(|e| e.to_string())?;
        let config = diffusion_client::websocket_config(64 << 20);
        let stream = tcp(&request.url.socket_address()).await?;
        let (mut ws, _) = tokio_tungstenite::client_async_with_config(http, stream, Some(config))
            .await
            .map_err(|e| format!("WebSocket upgrade: {e}"))?;
        match ws.next().await {
            Some(Ok(WsMessage::Binary(frame))) => match ConnectionResponse::parse(&frame, version) {
                Ok(ConnectionResponse::Accepted(_)) => Ok(RawClient { ws, next_cid: 1 }),
                other => Err(format!("connection response: {other:?}")),
            },
            other => Err(format!("no connection response: {other:?}")),
        }
    }
}

impl<W> RawClient<W>
where
    W: Stream<Item = Result<WsMessage, WsError>> + Sink<WsMessage, Error = WsError> + Unpin,
{
    /// One ping: send, then read until the frame that answers it.
    pub async fn ping(&mut self) -> Result<Duration, String> {
        let cid = self.next_cid;
        self.next_cid += 1;
        let frame = user_ping(cid);
        let started = Instant::now();
        self.ws
            .send(WsMessage::Binary(frame))
            .await
            .map_err(|e| format!("send: {e}"))?;
        loop {
            if self.receive().await? == Some(cid) {
                return Ok(started.elapsed());
            }
        }
    }

    /// `n` pings one after the other.
    pub async fn pings(&mut self, n: usize) -> Result<Vec<Duration>, String> {
        let mut samples = Vec::with_capacity(n);
        for _ in 0..n {
            samples.push(self.ping().await?);
        }
        Ok(samples)
    }

    /// Pings with `in_flight` outstanding at all times for `duration`; pings per second.
    pub async fn pipelined(&mut self, in_flight: usize, duration: Duration) -> Result<f64, String> {
        let mut outstanding = 0usize;
        let mut completed = 0u64;
        let started = Instant::now();
        let deadline = started + duration;
        loop {
            let sending = Instant::now() < deadline;
            if sending && outstanding < in_flight {
                // Fill the window and flush once, as a driver does with a batch of outputs.
                while outstanding < in_flight {
                    let cid = self.next_cid;
                    self.next_cid += 1;
                    self.ws
                        .feed(WsMessage::Binary(user_ping(cid)))
                        .await
                        .map_err(|e| format!("send: {e}"))?;
                    outstanding += 1;
                }
                self.ws.flush().await.map_err(|e| format!("flush: {e}"))?;
            }
            if outstanding == 0 {
                break;
            }
            if self.receive().await?.is_some() {
                outstanding -= 1;
                completed += 1;
            }
        }
        Ok(completed as f64 / started.elapsed().as_secs_f64())
    }

    /// The next data frame's answered cid (`None` for a frame that answers no ping).
    async fn receive(&mut self) -> Result<Option<i64>, String> {
        match self.ws.next().await {
            Some(Ok(WsMessage::Binary(frame))) => Ok(answered_cid(&frame)),
            Some(Ok(_)) => Ok(None),
            Some(Err(e)) => Err(format!("receive: {e}")),
            None => Err("the server closed the connection".into()),
        }
    }

    /// Closes the WebSocket and reads until the server has closed its side too, so that the
    /// server is done with this connection before the next one is timed (as a session's
    /// close waits for the server's ABORT).
    pub async fn close(mut self) {
        let _ = SinkExt::close(&mut self.ws).await;
        while let Some(Ok(_)) = self.ws.next().await {}
    }
}

/// Warm connects: TCP connect and WebSocket upgrade to the echo server, or also the
/// connection response when `diffusion` (to the test server).
pub async fn connect_samples(url: &str, n: usize, diffusion: bool) -> Result<Vec<Duration>, String> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let client = if diffusion {
            RawClient::connect_diffusion(url).await?
        } else {
            RawClient::connect_echo(url).await?
        };
        samples.push(started.elapsed());
        client.close().await;
    }
    Ok(samples)
}
