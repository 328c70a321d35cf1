//! A `ClientSession`'s topics, fed server frames: the registry against its model under
//! random scripts, reconnections with subscriptions (105 keeps them, 106 and a new session
//! refresh them), typed calls in both protocol versions, and the topic messages that must
//! not end a session.

// Harness code outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use diffusion_proto::testing::{accept_frame, request_frame, Edit, TopicScript, TopicStep};
use diffusion_proto::{
    AddTopicRequest, AddTopicResult, ClientConfig, ClientSession, DeltaError, EmptyPayload, ErrorReason,
    Event, Message, NotifySubscription, NotifyUnsubscription, Output, PayloadError, ProtocolVersion,
    ResponseCode, ServiceCall, ServiceId, ServicePayload, SessionError, SessionState, SubscribeRequest,
    Topic, TopicError, TopicEvent, TopicSpecification, TopicType, TransportError, UnsubscribeReason,
};
use proptest::prelude::*;

// ---- the model ----------------------------------------------------------------------------

fn any_step() -> impl Strategy<Value = TopicStep> {
    // Mostly the first few ids, so that notifications, values and unsubscriptions meet.
    let id = || prop_oneof![4 => 0u8..4, 1 => any::<u8>()];
    let cid = || 0u8..4;
    let bytes = |n: usize| proptest::collection::vec(any::<u8>(), 0..n);
    let edit = prop_oneof![
        bytes(8).prop_map(Edit::Insert),
        (0u16..12, 0u16..8).prop_map(|(start, length)| Edit::Copy { start, length }),
    ];
    // Values and deltas, plain or with each of the other top bits (10 = zlib).
    let type_byte = proptest::sample::select(vec![0x00u8, 0x01, 0x00, 0x01, 0x80, 0x81, 0x40, 0xc1]);
    prop_oneof![
        3 => (id(), 0u8..8, 0u8..8, 0u8..16, cid()).prop_map(|(id, path, topic_type, properties, cid)| {
            TopicStep::Notify { id, path, topic_type, properties, cid }
        }),
        1 => (id(), any::<u8>(), cid()).prop_map(|(id, reason, cid)| TopicStep::Unsubscribe { id, reason, cid }),
        4 => (type_byte, id(), bytes(24)).prop_map(|(type_byte, id, payload)| TopicStep::Topic { type_byte, id, payload }),
        3 => (id(), proptest::collection::vec(edit, 0..5)).prop_map(|(id, edits)| TopicStep::Delta { id, edits }),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(type_byte, len)| TopicStep::Short { type_byte, len }),
        1 => (any::<bool>(), cid(), bytes(16)).prop_map(|(unsubscribe, cid, payload)| {
            TopicStep::Notification { unsubscribe, cid, payload }
        }),
        1 => (0u8..3).prop_map(|code| TopicStep::Reconnect { code }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any sequence of notifications, values, deltas (well-formed or not), unknown ids,
    /// malformed and compressed frames and reconnections: after every step the events, the
    /// answers, the registry's topics and values and the counters are the model's, and the
    /// session is still connected.
    #[test]
    fn the_registry_matches_its_model(version: u8, steps in proptest::collection::vec(any_step(), 0..60)) {
        TopicScript { version, steps }.run();
    }
}

// ---- a session fed by hand ------------------------------------------------------------------

/// A session and the clock it is fed with.
struct Client {
    session: ClientSession,
    now: Instant,
    version: ProtocolVersion,
}

impl Client {
    fn connected(version: ProtocolVersion) -> Client {
        Client::with(ClientConfig::new("ws://h:1").unwrap().with_version(version))
    }

    fn with(config: ClientConfig) -> Client {
        let now = Instant::now();
        let version = config.version;
        let mut client = Client {
            session: ClientSession::new(config, now),
            now,
            version,
        };
        client.feed(accept_frame(ResponseCode::Ok, 10_000_000, version));
        assert_eq!(client.session.state(), SessionState::ConnectedActive);
        client
    }

    fn outputs(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.session.poll_output()).collect()
    }

    /// Feeds a frame and returns the outputs.
    fn feed(&mut self, frame: impl Into<Bytes>) -> Vec<Output> {
        self.session.handle_frame(self.now, frame.into());
        self.outputs()
    }

    /// Feeds a frame and returns only the topic events.
    fn topic_events(&mut self, frame: impl Into<Bytes>) -> Vec<TopicEvent> {
        topic_events(self.feed(frame))
    }

    fn notify(&mut self, id: i32, path: &str, spec: TopicSpecification) -> Vec<TopicEvent> {
        let n = NotifySubscription {
            topic_id: id,
            path: path.to_owned(),
            specification: spec,
        };
        self.topic_events(request_frame(
            ServiceId::NOTIFY_SUBSCRIPTION,
            0,
            n.to_bytes(self.version).unwrap(),
        ))
    }

    /// The transport drops and the session reconnects; the server answers `code`.
    fn reconnect(&mut self, code: ResponseCode, last_field: u32) -> Vec<Output> {
        self.session
            .handle_transport_closed(self.now, TransportError::Ended);
        let mut outputs = self.outputs();
        self.now = self.session.poll_timeout().unwrap();
        self.session.handle_timeout(self.now);
        outputs.extend(self.outputs());
        assert!(outputs
            .iter()
            .any(|o| matches!(o, Output::Connect(r) if r.is_reconnect())));
        outputs.extend(self.feed(accept_frame(code, last_field, self.version)));
        assert_eq!(self.session.state(), SessionState::ConnectedActive);
        outputs
    }
}

fn topic_events(outputs: Vec<Output>) -> Vec<TopicEvent> {
    outputs
        .into_iter()
        .filter_map(|o| match o {
            Output::Event(Event::Topic(e)) => Some(e),
            _ => None,
        })
        .collect()
}

fn transmitted(outputs: &[Output]) -> Vec<Message> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Transmit(frame) => Some(Message::decode(frame).unwrap()),
            _ => None,
        })
        .collect()
}

fn value(id: i32, bytes: &[u8]) -> Vec<u8> {
    let mut frame = vec![0x04];
    frame.extend(id.to_be_bytes());
    frame.extend_from_slice(bytes);
    frame
}

fn delta(id: i32, bytes: &[u8]) -> Vec<u8> {
    let mut frame = value(id, bytes);
    frame[0] = 0x05;
    frame
}

fn string_spec() -> TopicSpecification {
    TopicSpecification::new(TopicType::String)
}

/// (path, reason) of each `Unsubscribed`.
fn unsubscribed(events: &[TopicEvent]) -> Vec<(&str, UnsubscribeReason)> {
    events
        .iter()
        .filter_map(|e| match e {
            TopicEvent::Unsubscribed { topic, reason } => Some((topic.path(), *reason)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_105_keeps_the_topics_and_their_values() {
    let mut c = Client::connected(ProtocolVersion::V25);
    c.notify(1, "t/string", string_spec());
    c.topic_events(value(1, b"\x6bhello world"));
    let outputs = c.reconnect(ResponseCode::Reconnected, 1);
    assert!(topic_events(outputs).is_empty());
    assert_eq!(c.session.topic_stats().subscribed, 1);
    // The next delta applies to the value from before the reconnection.
    let events = c.topic_events(delta(1, b"\x4c\x71hello brave\x06\x06"));
    let [TopicEvent::Value {
        value,
        old,
        delta: true,
        ..
    }] = &events[..]
    else {
        panic!("{events:?}")
    };
    assert_eq!(
        (&value[..], old.as_deref()),
        (&b"\x71hello brave world"[..], Some(&b"\x6bhello world"[..]))
    );
}

#[test]
fn a_106_or_a_new_session_unsubscribes_every_topic_for_the_server_to_notify_again() {
    for code in [ResponseCode::ReconnectedWithMessageLoss, ResponseCode::Ok] {
        let mut c = Client::connected(ProtocolVersion::V29);
        c.notify(2, "t/b", string_spec());
        c.notify(1, "t/a", string_spec());
        c.topic_events(value(1, b"\x61x"));
        let outputs = c.reconnect(code, 10_000_000);
        // The topics end while the session recovers, before it is active again.
        let active = outputs
            .iter()
            .position(|o| matches!(o, Output::Event(Event::StateChanged(s)) if s.new == SessionState::ConnectedActive))
            .unwrap();
        let first_topic = outputs
            .iter()
            .position(|o| matches!(o, Output::Event(Event::Topic(_))))
            .unwrap();
        assert!(first_topic < active, "{code:?}");
        let events = topic_events(outputs);
        let refresh = UnsubscribeReason::SubscriptionRefresh;
        assert_eq!(
            unsubscribed(&events),
            [("t/a", refresh), ("t/b", refresh)],
            "{code:?}"
        );
        assert_eq!(events.len(), 2);
        assert_eq!(c.session.topics().len(), 0);
        // A value still on its way under the old binding is unknown now …
        assert!(c.topic_events(value(1, b"\x61y")).is_empty());
        assert_eq!(c.session.topic_stats().unknown_topic_messages, 1);
        // … and the server's notification starts the topic afresh, without an old value.
        c.notify(7, "t/a", string_spec());
        let events = c.topic_events(value(7, b"\x61z"));
        assert!(matches!(
            &events[..],
            [TopicEvent::Value {
                old: None,
                delta: false,
                ..
            }]
        ));
    }
}

#[test]
fn calls_are_written_in_the_sessions_version_and_replies_read_as_the_calls_response() {
    for (version, frame) in [
        (ProtocolVersion::V25, &b"\x00\x03\x01\x04?t//"[..]),
        (ProtocolVersion::V29, &b"\x00\x03\x01\x04?t//\x00"[..]),
    ] {
        let mut c = Client::connected(version);
        let id = c
            .session
            .call(c.now, SystemTime::UNIX_EPOCH, &SubscribeRequest::new("?t//"))
            .unwrap();
        let sent: Vec<Output> = c.outputs();
        assert_eq!(sent, [Output::Transmit(Bytes::from_static(frame))], "{version}");
        let add = AddTopicRequest {
            path: "t/json".into(),
            specification: TopicSpecification::new(TopicType::Json),
        };
        let add_id = c.session.call(c.now, SystemTime::UNIX_EPOCH, &add).unwrap();
        c.outputs();
        let mut replies = c.feed(&b"\x06\x01"[..]);
        replies.extend(c.feed(&b"\x06\x02\x01"[..]));
        let [Output::Event(Event::Response {
            id: r1,
            result: Ok(subscribed),
        }), Output::Event(Event::Response {
            id: r2,
            result: Ok(added),
        })] = &replies[..]
        else {
            panic!("{replies:?}")
        };
        assert_eq!((*r1, *r2), (id, add_id));
        assert_eq!(subscribed.version, version);
        assert_eq!(subscribed.response::<SubscribeRequest>(), Ok(EmptyPayload));
        assert_eq!(added.response::<AddTopicRequest>(), Ok(AddTopicResult::Exists));
        assert!(matches!(
            subscribed.response::<AddTopicRequest>(),
            Err(PayloadError::Malformed { .. })
        ));
    }
}

#[test]
fn a_call_the_version_cannot_express_is_refused_and_nothing_is_sent() {
    let mut c = Client::connected(ProtocolVersion::V25);
    let scoped = SubscribeRequest {
        scope: "mine".into(),
        ..SubscribeRequest::new("?t//")
    };
    let refused = c.session.call(c.now, SystemTime::UNIX_EPOCH, &scoped);
    assert!(matches!(
        &refused,
        Err(SessionError::Encode { service, source: PayloadError::NotInVersion { .. } })
            if *service == SubscribeRequest::SERVICE
    ));
    let message = refused.unwrap_err().to_string();
    assert!(
        message.contains("SUBSCRIBE (3)") && message.contains("protocol 25"),
        "{message}"
    );
    assert!(c.outputs().is_empty());
    assert_eq!(c.session.pending_requests(), 0);
}

#[test]
fn notifications_are_answered_only_when_they_expect_an_answer() {
    let mut c = Client::connected(ProtocolVersion::V25);
    let n = NotifySubscription {
        topic_id: 1,
        path: "a".into(),
        specification: string_spec(),
    }
    .to_bytes(ProtocolVersion::V25)
    .unwrap();
    // One-way, as servers send them: not answered (the JavaScript client does not either).
    let out = c.feed(request_frame(ServiceId::NOTIFY_SUBSCRIPTION, 0, n.clone()));
    assert!(transmitted(&out).is_empty());
    // With a cid: an empty response.
    let gone = NotifyUnsubscription {
        topic_id: 1,
        reason: UnsubscribeReason::Control,
    }
    .to_bytes(ProtocolVersion::V25)
    .unwrap();
    let out = c.feed(request_frame(ServiceId::NOTIFY_UNSUBSCRIPTION, 5, gone));
    assert_eq!(
        transmitted(&out),
        [Message::ServiceResponse {
            cid: 5,
            payload: Bytes::new()
        }]
    );
    assert_eq!(
        unsubscribed(&topic_events(out)),
        [("a", UnsubscribeReason::Control)]
    );
    // One that does not decode: INVALID_DATA, counted, and the session goes on.
    let out = c.feed(request_frame(
        ServiceId::NOTIFY_SUBSCRIPTION,
        6,
        Bytes::from_static(&[0x01]),
    ));
    let sent = transmitted(&out);
    assert!(
        matches!(&sent[..], [Message::ServiceError { cid: 6, reason, .. }] if *reason == ErrorReason::INVALID_DATA),
        "{sent:?}"
    );
    assert_eq!(c.session.topic_stats().malformed_topic_messages, 1);
    // Registering the service does not take the notifications from the registry.
    c.session.register_service(ServiceId::NOTIFY_SUBSCRIPTION);
    let events = c.topic_events(request_frame(ServiceId::NOTIFY_SUBSCRIPTION, 0, n));
    assert!(matches!(&events[..], [TopicEvent::Subscribed { .. }]));
}

#[test]
fn a_topic_frame_too_short_for_its_id_is_counted_not_fatal_and_still_numbered() {
    let mut c = Client::connected(ProtocolVersion::V25);
    for frame in [
        &[0x04][..],
        &[0x05, 0x00],
        &[0x04, 0x00, 0x00, 0x00],
        &[0x85, 0x01],
    ] {
        assert!(c.feed(frame).is_empty(), "{frame:02x?}");
        assert_eq!(c.session.state(), SessionState::ConnectedActive);
    }
    assert_eq!(c.session.topic_stats().malformed_topic_messages, 4);
    // The server numbered them: a reconnection reports all four received.
    c.session.handle_transport_closed(c.now, TransportError::Ended);
    c.outputs();
    c.now = c.session.poll_timeout().unwrap();
    c.session.handle_timeout(c.now);
    let connect = c
        .outputs()
        .into_iter()
        .find_map(|o| match o {
            Output::Connect(request) => Some(request),
            _ => None,
        })
        .unwrap();
    assert_eq!(connect.params.reconnect.map(|r| r.last_server_sequence), Some(4));
}

#[test]
fn compressed_topic_messages_are_that_topics_error_not_the_sessions() {
    let mut c = Client::connected(ProtocolVersion::V25);
    c.notify(3, "t/z", string_spec());
    c.topic_events(value(3, b"\x61x"));
    let mut frame = value(3, b"\x78\x9c");
    frame[0] = 0x84;
    let events = c.topic_events(frame);
    assert_eq!(
        events,
        [TopicEvent::Error {
            topic: Topic::new(3, "t/z", string_spec()),
            error: TopicError::Compressed { delta: false }
        }]
    );
    assert_eq!(c.session.state(), SessionState::ConnectedActive);
    assert_eq!(c.session.topic(3).map(|(_, v)| v.is_none()), Some(true));
}

#[test]
fn a_delta_builds_no_more_than_the_inbound_limit() {
    let mut config = ClientConfig::new("ws://h:1").unwrap();
    config.max_inbound_message_size = 64;
    let mut c = Client::with(config);
    c.notify(1, "t/bin", TopicSpecification::new(TopicType::Binary));
    c.topic_events(value(1, &[7; 40]));
    // Two copies of the 40-byte value: 80 bytes, over the 64-byte limit.
    let events = c.topic_events(delta(1, &[0x00, 0x18, 0x28, 0x00, 0x18, 0x28]));
    let [TopicEvent::Error {
        error: TopicError::DeltaFailed { source },
        ..
    }] = &events[..]
    else {
        panic!("{events:?}")
    };
    assert!(matches!(**source, DeltaError::TooLarge { limit: 64 }));
    assert_eq!(c.session.topic_stats().topic_errors, 1);
}

#[test]
fn a_closed_session_has_no_topics() {
    let mut c = Client::connected(ProtocolVersion::V25);
    c.notify(1, "a", string_spec());
    c.session.close(c.now);
    c.feed(&b"\x1c"[..]);
    assert_eq!(c.session.state(), SessionState::ClosedByClient);
    assert_eq!(c.session.topics().len(), 0);
    // Late frames change nothing.
    c.session.handle_timeout(c.now + Duration::from_secs(1));
    assert!(c.feed(value(1, b"\x61x")).is_empty());
}
