//! `ClientSession` against `Server` in memory on a simulated clock ([`Pair`]): no sockets,
//! frames delayed by a fixed one-way latency, faults injected by cutting or blackholing the link.

// Harness code outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use diffusion_proto::testing::{Pair, LATENCY};
use diffusion_proto::{
    ClientConfig, CloseReason, ConnectionId, Credentials, Event, RequestError, ResponseCode, ServerConfig,
    ServiceId, SessionError, SessionState, UserTable,
};

fn config(url: &str) -> ClientConfig {
    ClientConfig::new(url).unwrap()
}

#[test]
fn connects_anonymously() {
    let pair = Pair::connected();
    let id = pair.client.session_id().unwrap();
    let info = pair.server.session(id).unwrap();
    assert_eq!(info.principal, None);
    assert_eq!(pair.states(), [SessionState::ConnectedActive]);
    assert_eq!(pair.client.max_message_size(), Some(10_000_000));
}

#[test]
fn connects_with_credentials_and_properties_over_both_carriers() {
    for version in [
        diffusion_proto::ProtocolVersion::V25,
        diffusion_proto::ProtocolVersion::V29,
    ] {
        let mut config = config("ws://h:1").with_version(version);
        config.principal = Some("admin".into());
        config.credentials = Credentials::password("secret");
        config.properties.insert("region", "eu").unwrap();
        config.properties.insert("$Country", "GB").unwrap();
        let users = UserTable::new().with_user("admin", "secret");
        let mut pair = Pair::with(config, ServerConfig::default(), users, LATENCY);
        pair.run_for(Duration::from_millis(50));
        let info = pair.server.session(pair.client.session_id().unwrap()).unwrap();
        assert_eq!(info.principal.as_deref(), Some("admin"));
        assert_eq!(info.properties.get("region"), Some("eu"));
        assert_eq!(info.properties.get("$Country"), Some("GB"));
        assert_eq!(info.version, version);
    }
}

#[test]
fn wrong_password_fails_with_116() {
    let mut config = config("ws://h:1");
    config.principal = Some("admin".into());
    config.credentials = Credentials::password("wrong");
    let mut pair = Pair::with(
        config,
        ServerConfig::default(),
        UserTable::new().with_user("admin", "secret"),
        LATENCY,
    );
    pair.run_for(Duration::from_millis(50));
    assert_eq!(pair.client.state(), SessionState::ClosedFailed);
    let reason = pair.client.close_reason().unwrap();
    assert_eq!(reason, &CloseReason::Rejected(ResponseCode::AuthenticationFailed));
    assert_eq!(reason.response_code().map(|c| c.code()), Some(116));
    assert_eq!(pair.client.poll_timeout(), None);
}

#[test]
fn user_ping_round_trip_is_the_simulated_delay() {
    let mut pair = Pair::connected();
    let id = pair.ping();
    pair.run_for(Duration::from_millis(20));
    let responses = pair.responses(id);
    assert_eq!(responses.len(), 1);
    assert_eq!(responses[0].as_ref().unwrap().round_trip, 2 * LATENCY);
}

/// A pair whose server pings every second.
fn pinged_every_second() -> Pair {
    let server = ServerConfig {
        ping_period: Duration::from_secs(1),
        ..ServerConfig::default()
    };
    Pair::new(config("ws://h:1"), server)
}

#[test]
fn system_pings_are_answered() {
    let mut pair = pinged_every_second();
    pair.run_for(Duration::from_millis(3500));
    let answered = pair
        .events
        .iter()
        .filter(|e| **e == Event::SystemPingAnswered)
        .count();
    assert_eq!(answered, 3);
    let info = pair.server.session(pair.client.session_id().unwrap()).unwrap();
    assert_eq!(info.stats.system_pings_sent, 3);
    assert_eq!(info.stats.system_pings_answered, 3);
    assert_eq!(pair.client.state(), SessionState::ConnectedActive);
}

#[test]
fn idle_connection_is_noticed_and_the_session_resumed() {
    let mut pair = pinged_every_second();
    pair.run_for(Duration::from_millis(100));
    let id = pair.client.session_id().unwrap();
    pair.stalled = pair.conn;
    pair.run_for(Duration::from_millis(1900));
    assert_eq!(pair.client.state(), SessionState::ConnectedActive);
    pair.run_for(Duration::from_millis(200));
    assert_eq!(pair.client.state(), SessionState::ConnectedActive);
    assert_eq!(pair.client.session_id(), Some(id));
    assert_eq!(
        pair.states(),
        [
            SessionState::ConnectedActive,
            SessionState::RecoveringReconnect,
            SessionState::ConnectedActive
        ]
    );
}

#[test]
fn request_lost_on_the_way_up_is_resent_and_completes_once() {
    let mut pair = Pair::connected();
    let id = pair.client.session_id();
    let ping = pair.ping();
    pair.cut(); // the ping frame was in flight: the server never saw it
    assert_eq!(pair.client.state(), SessionState::RecoveringReconnect);
    pair.run_for(Duration::from_millis(100));
    assert_eq!(pair.client.state(), SessionState::ConnectedActive);
    assert_eq!(pair.client.session_id(), id);
    assert!(pair.events.contains(&Event::Connected {
        session_id: id.unwrap(),
        code: ResponseCode::Reconnected,
        resent: 1
    }));
    assert_eq!(pair.responses(ping).len(), 1);
    assert!(pair.responses(ping)[0].is_ok());
    let pings_seen = pair.received.iter().filter(|f| f[..2] == [0x00, 0x38]).count();
    assert_eq!(pings_seen, 1, "the server got the ping exactly once");
}

#[test]
fn response_lost_on_the_way_down_is_resent_and_completes_once() {
    let mut pair = Pair::connected();
    let ping = pair.ping();
    pair.run_for(LATENCY); // the server has the ping; its response is in flight
    assert_eq!(pair.received.len(), 1);
    pair.cut();
    pair.run_for(Duration::from_millis(100));
    assert_eq!(pair.client.state(), SessionState::ConnectedActive);
    assert_eq!(pair.responses(ping).len(), 1);
    assert!(pair.responses(ping)[0].is_ok());
    let pings_seen = pair.received.iter().filter(|f| f[..2] == [0x00, 0x38]).count();
    assert_eq!(pings_seen, 1);
}

#[test]
fn reconnection_with_message_loss_fails_what_was_in_flight() {
    let server = ServerConfig {
        recovery_buffer: 0,
        ..ServerConfig::default()
    };
    let mut pair = Pair::new(config("ws://h:1"), server);
    pair.run_for(Duration::from_millis(50));
    let ping = pair.ping();
    pair.run_for(LATENCY);
    pair.cut(); // the server's response is lost and it kept no copy: 106
    pair.run_for(Duration::from_millis(100));
    assert_eq!(pair.client.state(), SessionState::ConnectedActive);
    assert_eq!(pair.responses(ping), [&Err(RequestError::MessageLoss)]);
    let next = pair.ping();
    pair.run_for(Duration::from_millis(20));
    assert!(pair.responses(next)[0].is_ok());
}

#[test]
fn forgotten_session_ends_closed_failed_with_117() {
    let mut pair = Pair::connected();
    let ping = pair.ping();
    pair.server.forget_session(pair.client.session_id().unwrap());
    pair.pump();
    pair.run_for(Duration::from_millis(100));
    assert_eq!(pair.client.state(), SessionState::ClosedFailed);
    assert_eq!(
        pair.client.close_reason(),
        Some(&CloseReason::Rejected(ResponseCode::UnknownSession))
    );
    assert!(matches!(
        pair.responses(ping)[..],
        [Err(RequestError::SessionClosed(_))]
    ));
}

#[test]
fn close_from_every_state() {
    // CONNECTING: before the connection response arrives.
    let mut pair = Pair::new(config("ws://h:1"), ServerConfig::default());
    pair.client.close(pair.now);
    pair.pump();
    assert_eq!(pair.client.state(), SessionState::ClosedByClient);

    // CONNECTED_ACTIVE: CLOSE_REQUEST, the server answers ABORT.
    let mut pair = Pair::connected();
    let id = pair.client.session_id().unwrap();
    pair.client.close(pair.now);
    pair.pump();
    pair.run_for(Duration::from_millis(20));
    assert_eq!(pair.client.state(), SessionState::ClosedByClient);
    assert_eq!(pair.received.last().map(|f| f.to_vec()), Some(vec![0x1d]));
    assert!(pair
        .server
        .session(id)
        .is_none_or(|s| s.stats.close_requests == 1));

    // CONNECTED_ACTIVE, but the server never answers: closed after the 1 s close timeout.
    let mut pair = Pair::connected();
    pair.stalled = pair.conn;
    pair.client.close(pair.now);
    pair.pump();
    pair.run_for(Duration::from_millis(999));
    assert_eq!(pair.client.state(), SessionState::ConnectedActive);
    pair.run_for(Duration::from_millis(2));
    assert_eq!(pair.client.state(), SessionState::ClosedByClient);

    // RECOVERING_RECONNECT.
    let mut pair = Pair::connected();
    pair.stalled = Some(ConnectionId(2)); // the reconnection attempt will stall
    pair.cut();
    assert_eq!(pair.client.state(), SessionState::RecoveringReconnect);
    pair.client.close(pair.now);
    pair.pump();
    assert_eq!(pair.client.state(), SessionState::ClosedByClient);
    assert_eq!(pair.client.poll_timeout(), None);
}

#[test]
fn abort_from_the_server_closes_by_server() {
    let mut pair = Pair::connected();
    let conn = pair.conn.unwrap();
    pair.server.abort(conn);
    pair.pump();
    pair.run_for(Duration::from_millis(20));
    assert_eq!(pair.client.state(), SessionState::ClosedByServer);
    assert_eq!(pair.client.close_reason(), Some(&CloseReason::Aborted));
}

#[test]
fn oversize_request_is_refused_and_nothing_is_sent() {
    let server = ServerConfig {
        max_message_size: 100,
        ..ServerConfig::default()
    };
    let mut pair = Pair::new(config("ws://h:1"), server);
    pair.run_for(Duration::from_millis(50));
    let before = pair.received.len();
    let err = pair.client.invoke(
        pair.now,
        SystemTime::now(),
        ServiceId(99),
        Bytes::from(vec![7; 200]),
    );
    assert_eq!(
        err,
        Err(SessionError::MessageTooLarge {
            size: 203,
            limit: 100
        })
    );
    pair.pump();
    pair.run_for(Duration::from_millis(20));
    assert_eq!(pair.received.len(), before);
    assert_eq!(pair.client.state(), SessionState::ConnectedActive);
}
