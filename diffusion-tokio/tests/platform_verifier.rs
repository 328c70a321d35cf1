//! Feature `platform-verifier`: the default TLS configuration trusts what the system trusts.
//! Off Apple platforms, Android and Windows, the system's CA certificates are the ones of
//! `SSL_CERT_FILE` when it is set, so this test points it at the test server's self-signed
//! certificate; with the webpki roots (the `wss://` scenarios) the same server is not trusted.
#![cfg(all(
    feature = "platform-verifier",
    unix,
    not(target_vendor = "apple"),
    not(target_os = "android")
))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use diffusion_test_server::{Options, TestServer};
use diffusion_tokio::{Session, SessionState};

#[test]
fn the_default_tls_trusts_the_certificates_the_system_trusts() {
    let identity = diffusion_test_server::self_signed(&["localhost"]);
    let file = std::env::temp_dir().join(format!("diffusion-platform-verifier-{}.pem", std::process::id()));
    std::fs::write(&file, &identity.cert_pem).unwrap();
    // The only test of this binary, and no runtime yet: no other thread reads the
    // environment meanwhile.
    std::env::set_var("SSL_CERT_FILE", &file);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let server = TestServer::start(Options {
            tls: Some(identity),
            ..Options::default()
        })
        .await
        .unwrap();
        let url = format!("wss://localhost:{}", server.addr().port());
        // No tls_config: the default, which the feature makes the platform's verifier.
        let session = Session::builder(&url).no_reconnect().connect().await.unwrap();
        session.ping_server().await.unwrap();
        session.close().await;
        assert_eq!(session.state(), SessionState::ClosedByClient);
    });
    std::fs::remove_file(&file).unwrap();
}
