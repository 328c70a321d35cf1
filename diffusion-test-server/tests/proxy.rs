//! The CONNECT proxy test helper: its answers, the tunnel, and its record of requests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use diffusion_test_server::{ConnectProxy, ProxyOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Sends `request` to the proxy and returns the connection and the answer's head.
async fn ask(proxy: &ConnectProxy, request: &str) -> (TcpStream, String) {
    let mut tcp = TcpStream::connect(proxy.addr()).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0];
        assert_eq!(tcp.read(&mut byte).await.unwrap(), 1, "{head:?}");
        head.push(byte[0]);
    }
    (tcp, String::from_utf8(head).unwrap())
}

/// A server that echoes what it reads, on 127.0.0.1.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = tcp.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn tunnels_to_loopback_with_the_bytes_sent_after_the_head() {
    let target = echo_server().await;
    let proxy = ConnectProxy::start(ProxyOptions::default()).await.unwrap();
    let (mut tcp, head) = ask(
        &proxy,
        &format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\nearly"),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    tcp.write_all(b" and late").await.unwrap();
    let mut echoed = vec![0; b"early and late".len()];
    tcp.read_exact(&mut echoed).await.unwrap();
    assert_eq!(echoed, b"early and late");
    let requests = proxy.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        (
            requests[0].target.clone(),
            requests[0].user.clone(),
            requests[0].status
        ),
        (target.to_string(), None, 200)
    );
}

#[tokio::test]
async fn credentials_refusals_and_what_is_not_a_tunnel_to_loopback() {
    let target = echo_server().await;
    let proxy = ConnectProxy::start(ProxyOptions::default().credentials("u", "p:w"))
        .await
        .unwrap();
    let connect =
        |authorization: &str| format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{authorization}\r\n");
    // base64("u:p:w") and base64("u:wrong")
    let (_, head) = ask(&proxy, &connect("Proxy-Authorization: Basic dTpwOnc=\r\n")).await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    let (_, head) = ask(&proxy, &connect("Proxy-Authorization: Basic dTp3cm9uZw==\r\n")).await;
    assert!(
        head.starts_with("HTTP/1.1 407 ") && head.contains("Proxy-Authenticate: Basic"),
        "{head}"
    );
    let (_, head) = ask(&proxy, &connect("")).await;
    assert!(head.starts_with("HTTP/1.1 407 "), "{head}");
    let seen: Vec<_> = proxy.requests().into_iter().map(|r| (r.user, r.status)).collect();
    assert_eq!(
        seen,
        [(Some("u".into()), 200), (Some("u".into()), 407), (None, 407)]
    );

    let open = ConnectProxy::start(ProxyOptions::default()).await.unwrap();
    // Never contacted: not a loopback address (TEST-NET-1).
    let (_, head) = ask(&open, "CONNECT 192.0.2.1:80 HTTP/1.1\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 403 "), "{head}");
    let (_, head) = ask(&open, "GET / HTTP/1.1\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 405 "), "{head}");
    let (_, head) = ask(&open, "not HTTP\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 400 "), "{head}");

    let refusing = ConnectProxy::start(ProxyOptions::default().refuse_with(503))
        .await
        .unwrap();
    let (_, head) = ask(&refusing, &connect("")).await;
    assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
    assert_eq!(refusing.requests()[0].status, 503);
}

#[test]
fn options_never_show_the_password() {
    let options = ProxyOptions::default().credentials("user", "hunter2");
    let shown = format!("{options:?}");
    assert!(shown.contains("user") && !shown.contains("hunter2"), "{shown}");
}
