//! A connected client session fed a script of topic messages (notifications, values,
//! deltas, malformed and compressed frames, reconnections), checked after every step
//! against a model of what its topic registry must hold and report. The `topic_session`
//! fuzz target and the registry's property test run it.

use std::collections::BTreeMap;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};

use crate::topics::{ServicePayload, TopicError, TopicEvent, TopicStats};
use crate::wire;
use crate::{
    apply_delta, ClientConfig, ClientSession, ConnectionResponse, ErrorReason, Event, LastField, Message,
    NotifySubscription, NotifyUnsubscription, Output, ProtocolVersion, ResponseCode, ServiceId, SessionGrant,
    SessionId, SessionState, SessionToken, TopicSpecification, TopicType, TransportError, UnsubscribeReason,
};

/// Steps a topic script runs at most.
pub const MAX_TOPIC_STEPS: usize = 256;
/// The bytes of a value, delta or payload a step sends at most.
pub const MAX_TOPIC_BODY: usize = 4096;
/// The scripted session's inbound limit: above any frame a step makes, so that only what
/// the frames say is at stake; a delta may still try to build more.
pub const TOPIC_SCRIPT_LIMIT: usize = 2 * MAX_TOPIC_BODY;

/// The topic ids a step names by index (`% 12`): those of the live transcripts first.
pub const TOPIC_IDS: [i32; 12] = [1, 2, 3, 4, 5, 6, 7, 0, -1, 300, i32::MAX, i32::MIN];
/// The topic paths a step names by index (`% 8`): those of the live transcripts first.
pub const TOPIC_PATHS: [&str; 8] = [
    "t/json", "t/string", "t/int64", "t/double", "t/binary", "t/props", "t/new", "a/b/c",
];

/// A whole `topic_session` input.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct TopicScript {
    /// Odd: protocol 29, else 25.
    pub version: u8,
    /// What the server sends, in order (the first [`MAX_TOPIC_STEPS`]).
    pub steps: Vec<TopicStep>,
}

/// One thing the server does to the session's topics.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum TopicStep {
    /// NOTIFY_SUBSCRIPTION of [`TOPIC_IDS`]`[id]` at [`TOPIC_PATHS`]`[path]`, of
    /// `TopicType::ALL[topic_type % 8]`.
    Notify {
        /// Topic id index.
        id: u8,
        /// Path index.
        path: u8,
        /// Topic type index.
        topic_type: u8,
        /// Properties: bit 0 `DONT_RETAIN_VALUE=true`, bit 1 `PUBLISH_VALUES_ONLY=true`,
        /// bit 2 `TIDY_ON_UNSUBSCRIBE=true`, bit 3 `DONT_RETAIN_VALUE=false`.
        properties: u8,
        /// The request's cid (`% 4`; 0 is one-way).
        cid: u8,
    },
    /// NOTIFY_UNSUBSCRIPTION of topic `id` with this reason byte.
    Unsubscribe {
        /// Topic id index.
        id: u8,
        /// The reason byte, any.
        reason: u8,
        /// The request's cid (`% 4`).
        cid: u8,
    },
    /// A topic frame: TOPIC_VALUE when bit 0 of `type_byte` is clear, else TOPIC_DELTA;
    /// its top two bits are the frame's (`10` is zlib).
    Topic {
        /// The type byte's source.
        type_byte: u8,
        /// Topic id index.
        id: u8,
        /// The value or delta bytes.
        payload: Vec<u8>,
    },
    /// A TOPIC_DELTA of well-formed edits.
    Delta {
        /// Topic id index.
        id: u8,
        /// The edits, in order.
        edits: Vec<Edit>,
    },
    /// A topic frame with only `len % 4` bytes after its type byte: too short for an id.
    Short {
        /// The type byte's source, as for `Topic`.
        type_byte: u8,
        /// How many bytes follow.
        len: u8,
    },
    /// A NOTIFY_SUBSCRIPTION (or, with `unsubscribe`, NOTIFY_UNSUBSCRIPTION) of any payload.
    Notification {
        /// 42 rather than 87.
        unsubscribe: bool,
        /// The request's cid (`% 4`).
        cid: u8,
        /// The payload.
        payload: Vec<u8>,
    },
    /// The connection drops and the session reconnects with (`% 3`) 105, 106, or a new
    /// session (100).
    Reconnect {
        /// The response code's index.
        code: u8,
    },
}

/// One instruction of a binary delta (TOPICS §3.6).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Edit {
    /// Insert these bytes.
    Insert(Vec<u8>),
    /// Copy `length` bytes of the old value from `start`.
    Copy {
        /// Where.
        start: u16,
        /// How many.
        length: u16,
    },
}

impl Edit {
    /// Appends the edit's CBOR, written here from RFC 8949 rather than with the crate's
    /// encoder.
    fn encode(&self, out: &mut Vec<u8>) {
        fn head(out: &mut Vec<u8>, major: u8, n: u64) {
            let major = major << 5;
            match n {
                0..=23 => out.push(major | n as u8),
                24..=0xff => out.extend([major | 24, n as u8]),
                0x100..=0xffff => {
                    out.push(major | 25);
                    out.extend((n as u16).to_be_bytes());
                }
                _ => {
                    out.push(major | 26);
                    out.extend((n as u32).to_be_bytes());
                }
            }
        }
        match self {
            Edit::Insert(bytes) => {
                head(out, 2, bytes.len() as u64);
                out.extend_from_slice(bytes);
            }
            Edit::Copy { start, length } => {
                head(out, 0, u64::from(*start));
                head(out, 0, u64::from(*length));
            }
        }
    }
}

/// A topic event reduced to what the model predicts: errors by kind.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Subscribed {
        id: i32,
        path: String,
        spec: TopicSpecification,
    },
    Value {
        id: i32,
        value: Vec<u8>,
        old: Option<Vec<u8>>,
        delta: bool,
    },
    Unsubscribed {
        id: i32,
        path: String,
        reason: UnsubscribeReason,
    },
    DeltaWithoutValue(i32),
    DeltaFailed(i32),
    Compressed(i32, bool),
}

impl Seen {
    fn of(event: &TopicEvent) -> Seen {
        let id = event.topic().id();
        match event {
            TopicEvent::Subscribed { topic } => Seen::Subscribed {
                id,
                path: topic.path().to_owned(),
                spec: topic.specification().clone(),
            },
            TopicEvent::Value {
                value, old, delta, ..
            } => Seen::Value {
                id,
                value: value.to_vec(),
                old: old.as_ref().map(|o| o.to_vec()),
                delta: *delta,
            },
            TopicEvent::Unsubscribed { topic, reason } => Seen::Unsubscribed {
                id,
                path: topic.path().to_owned(),
                reason: *reason,
            },
            TopicEvent::Error { error, .. } => match error {
                TopicError::DeltaWithoutValue => Seen::DeltaWithoutValue(id),
                TopicError::DeltaFailed { .. } => Seen::DeltaFailed(id),
                TopicError::Compressed { delta } => Seen::Compressed(id, *delta),
            },
        }
    }
}

/// What the registry must hold for one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ModelTopic {
    path: String,
    spec: TopicSpecification,
    value: Option<Vec<u8>>,
}

/// The registry as a map and counters, with the events each message must make.
#[derive(Debug, Default)]
struct Model {
    topics: BTreeMap<i32, ModelTopic>,
    stats: TopicStats,
    events: Vec<Seen>,
}

impl Model {
    fn notify(&mut self, n: NotifySubscription) {
        if let Some(bound) = self.topics.get(&n.topic_id) {
            if bound.path == n.path && bound.spec == n.specification {
                return;
            }
            self.events.push(Seen::Unsubscribed {
                id: n.topic_id,
                path: bound.path.clone(),
                reason: UnsubscribeReason::Unknown,
            });
        }
        self.events.push(Seen::Subscribed {
            id: n.topic_id,
            path: n.path.clone(),
            spec: n.specification.clone(),
        });
        self.topics.insert(
            n.topic_id,
            ModelTopic {
                path: n.path,
                spec: n.specification,
                value: None,
            },
        );
    }

    fn unsubscribe(&mut self, n: NotifyUnsubscription) {
        match self.topics.remove(&n.topic_id) {
            Some(t) => self.events.push(Seen::Unsubscribed {
                id: n.topic_id,
                path: t.path,
                reason: n.reason,
            }),
            None => self.stats.unknown_topic_messages += 1,
        }
    }

    /// A topic frame of type code 4 or 5 (`delta`), zlib or not, for `id`.
    fn topic_frame(&mut self, id: i32, delta: bool, compressed: bool, payload: &[u8]) {
        let Some(topic) = self.topics.get_mut(&id) else {
            self.stats.unknown_topic_messages += 1;
            return;
        };
        if compressed {
            topic.value = None;
            self.stats.topic_errors += 1;
            self.events.push(Seen::Compressed(id, delta));
        } else if delta {
            let applied = topic
                .value
                .take()
                .map(|old| (apply_delta(&old, payload, TOPIC_SCRIPT_LIMIT).ok(), old));
            self.delta_outcome(id, applied);
        } else {
            let retain = !topic.spec.dont_retain_value();
            let old = if retain {
                topic.value.replace(payload.to_vec())
            } else {
                None
            };
            self.stats.values += 1;
            self.events.push(Seen::Value {
                id,
                value: payload.to_vec(),
                old,
                delta: false,
            });
        }
    }

    /// A delta of well-formed edits, applied by the model itself.
    fn edits(&mut self, id: i32, edits: &[Edit]) {
        let Some(topic) = self.topics.get_mut(&id) else {
            self.stats.unknown_topic_messages += 1;
            return;
        };
        let applied = topic.value.take().map(|old| {
            let mut new = Vec::new();
            let mut ok = true;
            for edit in edits {
                match edit {
                    Edit::Insert(bytes) => new.extend_from_slice(bytes),
                    Edit::Copy { start, length } => {
                        let (start, end) = (usize::from(*start), usize::from(*start) + usize::from(*length));
                        match old.get(start..end) {
                            Some(span) => new.extend_from_slice(span),
                            None => ok = false,
                        }
                    }
                }
            }
            ((ok && new.len() <= TOPIC_SCRIPT_LIMIT).then_some(new), old)
        });
        self.delta_outcome(id, applied);
    }

    /// `None`: no cached value; else the new value (`None` if it failed) and the old.
    fn delta_outcome(&mut self, id: i32, applied: Option<(Option<Vec<u8>>, Vec<u8>)>) {
        match applied {
            None => {
                self.stats.topic_errors += 1;
                self.events.push(Seen::DeltaWithoutValue(id));
            }
            Some((None, _)) => {
                self.stats.topic_errors += 1;
                self.events.push(Seen::DeltaFailed(id));
            }
            Some((Some(new), old)) => {
                if let Some(topic) = self.topics.get_mut(&id) {
                    topic.value = Some(new.clone());
                }
                self.stats.deltas += 1;
                self.events.push(Seen::Value {
                    id,
                    value: new,
                    old: Some(old),
                    delta: true,
                });
            }
        }
    }

    fn refresh(&mut self) {
        for (id, topic) in std::mem::take(&mut self.topics) {
            self.events.push(Seen::Unsubscribed {
                id,
                path: topic.path,
                reason: UnsubscribeReason::SubscriptionRefresh,
            });
        }
    }
}

/// The session under test and what the script has seen it send.
struct Harness {
    session: ClientSession,
    version: ProtocolVersion,
    now: Instant,
    /// Frames this session sent since its sequence numbers last started again.
    sent: u32,
}

impl Harness {
    fn grant(&self, code: ResponseCode) -> Bytes {
        let last_field = match code {
            // The server received everything we sent.
            ResponseCode::Reconnected => self.sent + 1,
            _ => 10_000_000,
        };
        accept_frame(code, last_field, self.version)
    }

    /// Carries out the outputs: topic events and transmitted frames, in order; panics on
    /// anything else but state changes and `Connected` (and, when `reconnecting`, the
    /// new transport).
    fn drain(&mut self, reconnecting: bool) -> (Vec<Seen>, Vec<Message>) {
        let mut events = Vec::new();
        let mut sent = Vec::new();
        while let Some(output) = self.session.poll_output() {
            match output {
                Output::Event(Event::Topic(event)) => events.push(Seen::of(&event)),
                Output::Event(Event::StateChanged(_) | Event::Connected { .. }) => {}
                Output::Transmit(frame) => {
                    self.sent += 1;
                    match Message::decode(&frame) {
                        Ok(m) => sent.push(m),
                        Err(e) => panic!("the session sent {frame:02x?}, which is no message: {e}"),
                    }
                }
                Output::Connect(_) | Output::CloseTransport if reconnecting => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        (events, sent)
    }

    fn frame(&mut self, frame: Bytes) -> (Vec<Seen>, Vec<Message>) {
        self.session.handle_frame(self.now, frame);
        self.drain(false)
    }

    /// The transport drops; the session reconnects at its retry deadline and the server
    /// answers `code`.
    fn reconnect(&mut self, code: ResponseCode) -> Vec<Seen> {
        self.session
            .handle_transport_closed(self.now, TransportError::Ended);
        let (mut events, _) = self.drain(true);
        let deadline = self.session.poll_timeout();
        assert!(deadline.is_some(), "no retry scheduled after a lost transport");
        self.now = deadline.map_or(self.now, |d| d.max(self.now));
        self.session.handle_timeout(self.now);
        events.extend(self.drain(true).0);
        assert_eq!(self.session.state(), SessionState::RecoveringReconnect);
        if code != ResponseCode::Reconnected {
            self.sent = 0;
        }
        let grant = self.grant(code);
        self.session.handle_frame(self.now, grant);
        let (more, _) = self.drain(true);
        events.extend(more);
        events
    }
}

fn topic_type_byte(source: u8) -> u8 {
    (source & 0xc0) | (4 + (source & 1))
}

fn cid(n: u8) -> i64 {
    i64::from(n % 4)
}

fn id(n: u8) -> i32 {
    TOPIC_IDS[usize::from(n) % TOPIC_IDS.len()]
}

fn body(bytes: &[u8]) -> &[u8] {
    &bytes[..bytes.len().min(MAX_TOPIC_BODY)]
}

/// The specification a `Notify` step names.
pub fn script_specification(topic_type: u8, properties: u8) -> TopicSpecification {
    let mut spec = TopicSpecification::new(TopicType::ALL[usize::from(topic_type) % TopicType::ALL.len()]);
    if properties & 1 != 0 {
        spec.set_property(TopicSpecification::DONT_RETAIN_VALUE, "true");
    }
    if properties & 2 != 0 {
        spec.set_property(TopicSpecification::PUBLISH_VALUES_ONLY, "true");
    }
    if properties & 4 != 0 {
        spec.set_property(TopicSpecification::TIDY_ON_UNSUBSCRIBE, "true");
    }
    if properties & 8 != 0 {
        spec.set_property(TopicSpecification::DONT_RETAIN_VALUE, "false");
    }
    spec
}

/// A connection response accepting session `1-2` with `code`, in `version`, with no system
/// pings; `last_field` is the recovery sequence of a 105, else the maximum message size.
pub fn accept_frame(code: ResponseCode, last_field: u32, version: ProtocolVersion) -> Bytes {
    ConnectionResponse::Accepted(SessionGrant {
        code,
        session_id: SessionId { server: 1, value: 2 },
        token: SessionToken::new(*b"ABCDEFGHIJKLMNOPQRSTUVWX"),
        ping_period_ms: 0,
        last_field: LastField::for_code(code, last_field),
    })
    .encode(version)
}

/// A server's SERVICE_REQUEST frame.
pub fn request_frame(service: ServiceId, cid: i64, payload: Bytes) -> Bytes {
    Message::ServiceRequest {
        service,
        cid,
        payload,
    }
    .to_bytes()
}

/// The answer a notification with `cid` must get: an empty response when it was used, an
/// INVALID_DATA error when it did not decode; nothing when one-way.
fn check_answer(sent: &[Message], cid: i64, used: bool) {
    match (cid, sent) {
        (0, []) => {}
        (cid, [Message::ServiceResponse { cid: c, payload }]) if used => {
            assert_eq!((*c, payload.len()), (cid, 0))
        }
        (cid, [Message::ServiceError { cid: c, reason, .. }]) if !used => {
            assert_eq!((*c, *reason), (cid, ErrorReason::INVALID_DATA))
        }
        _ => panic!("a notification with cid {cid} (used: {used}) was answered with {sent:?}"),
    }
}

impl TopicScript {
    /// Runs the script, panicking when the session and the model disagree.
    pub fn run(&self) {
        let version = if self.version & 1 == 1 {
            ProtocolVersion::V29
        } else {
            ProtocolVersion::V25
        };
        let Ok(config) = ClientConfig::new("ws://h:1") else {
            unreachable!("a constant, valid URL")
        };
        let mut config = config.with_version(version);
        config.max_inbound_message_size = TOPIC_SCRIPT_LIMIT;
        let now = Instant::now();
        let mut h = Harness {
            session: ClientSession::new(config, now),
            version,
            now,
            sent: 0,
        };
        h.drain(true);
        let grant = h.grant(ResponseCode::Ok);
        h.frame(grant);
        assert_eq!(h.session.state(), SessionState::ConnectedActive);

        let mut model = Model::default();
        for step in self.steps.iter().take(MAX_TOPIC_STEPS) {
            let (events, sent) = match step {
                TopicStep::Notify {
                    id: i,
                    path,
                    topic_type,
                    properties,
                    cid: c,
                } => {
                    let n = NotifySubscription {
                        topic_id: id(*i),
                        path: TOPIC_PATHS[usize::from(*path) % TOPIC_PATHS.len()].to_owned(),
                        specification: script_specification(*topic_type, *properties),
                    };
                    let payload = n.to_bytes(version).unwrap_or_default();
                    model.notify(n);
                    let out = h.frame(request_frame(ServiceId::NOTIFY_SUBSCRIPTION, cid(*c), payload));
                    check_answer(&out.1, cid(*c), true);
                    (out.0, Vec::new())
                }
                TopicStep::Unsubscribe {
                    id: i,
                    reason,
                    cid: c,
                } => {
                    let mut payload = BytesMut::new();
                    wire::put_varint_i32(&mut payload, id(*i));
                    payload.put_u8(*reason);
                    model.unsubscribe(NotifyUnsubscription {
                        topic_id: id(*i),
                        reason: UnsubscribeReason::from_wire(*reason),
                    });
                    let frame = request_frame(ServiceId::NOTIFY_UNSUBSCRIPTION, cid(*c), payload.freeze());
                    let out = h.frame(frame);
                    check_answer(&out.1, cid(*c), true);
                    (out.0, Vec::new())
                }
                TopicStep::Topic {
                    type_byte,
                    id: i,
                    payload,
                } => {
                    let byte = topic_type_byte(*type_byte);
                    let payload = body(payload);
                    model.topic_frame(id(*i), byte & 1 == 1, byte & 0xc0 == 0x80, payload);
                    let mut frame = vec![byte];
                    frame.extend(id(*i).to_be_bytes());
                    frame.extend_from_slice(payload);
                    h.frame(frame.into())
                }
                TopicStep::Delta { id: i, edits } => {
                    let mut frame = vec![5];
                    frame.extend(id(*i).to_be_bytes());
                    let mut used = Vec::new();
                    for edit in edits {
                        let before = frame.len();
                        edit.encode(&mut frame);
                        if frame.len() > 5 + MAX_TOPIC_BODY {
                            frame.truncate(before);
                            break;
                        }
                        used.push(edit.clone());
                    }
                    model.edits(id(*i), &used);
                    h.frame(frame.into())
                }
                TopicStep::Short { type_byte, len } => {
                    let mut frame = vec![topic_type_byte(*type_byte)];
                    frame.extend(std::iter::repeat_n(0x5a, usize::from(len % 4)));
                    model.stats.malformed_topic_messages += 1;
                    h.frame(frame.into())
                }
                TopicStep::Notification {
                    unsubscribe,
                    cid: c,
                    payload,
                } => {
                    let payload = Bytes::copy_from_slice(body(payload));
                    let service = if *unsubscribe {
                        ServiceId::NOTIFY_UNSUBSCRIPTION
                    } else {
                        ServiceId::NOTIFY_SUBSCRIPTION
                    };
                    // The codecs are the oracle of what decodes; the registry's part is
                    // what the model says.
                    let used = if *unsubscribe {
                        NotifyUnsubscription::decode(&payload, version).map(|n| model.unsubscribe(n))
                    } else {
                        NotifySubscription::decode(&payload, version).map(|n| model.notify(n))
                    }
                    .is_ok();
                    if !used {
                        model.stats.malformed_topic_messages += 1;
                    }
                    let out = h.frame(request_frame(service, cid(*c), payload));
                    check_answer(&out.1, cid(*c), used);
                    (out.0, Vec::new())
                }
                TopicStep::Reconnect { code } => {
                    let code = [
                        ResponseCode::Reconnected,
                        ResponseCode::ReconnectedWithMessageLoss,
                        ResponseCode::Ok,
                    ][usize::from(code % 3)];
                    if code != ResponseCode::Reconnected {
                        model.refresh();
                    }
                    (h.reconnect(code), Vec::new())
                }
            };
            // Only notifications are answered, and those were checked above.
            assert!(sent.is_empty(), "{step:?} made the session send {sent:?}");
            assert_eq!(events, std::mem::take(&mut model.events), "events of {step:?}");
            assert_eq!(
                h.session.state(),
                SessionState::ConnectedActive,
                "{step:?} ended the session: {:?}",
                h.session.close_reason()
            );
            let mut held: Vec<(i32, ModelTopic)> = h
                .session
                .topics()
                .map(|(t, v)| {
                    let topic = ModelTopic {
                        path: t.path().to_owned(),
                        spec: t.specification().clone(),
                        value: v.map(|v| v.to_vec()),
                    };
                    (t.id(), topic)
                })
                .collect();
            held.sort_by_key(|(id, _)| *id);
            let expected: Vec<(i32, ModelTopic)> = model.topics.clone().into_iter().collect();
            assert_eq!(held, expected, "the registry after {step:?}");
            let stats = TopicStats {
                subscribed: model.topics.len(),
                ..model.stats
            };
            assert_eq!(h.session.topic_stats(), stats, "the counters after {step:?}");
        }
    }
}
