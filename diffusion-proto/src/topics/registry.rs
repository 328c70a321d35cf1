//! The client's topic registry (TOPICS.md §2.5, §2.6): for each topic the session is
//! subscribed to, its id, path, specification and last value bytes, and the [`TopicEvent`]s
//! that notifications, values, deltas and reconnections make of them.
//!
//! Nothing that arrives for a topic fails the session: it becomes an event on that topic,
//! or a drop that [`TopicStats`] counts.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;

use super::datatype::{DataType, TopicType};
use super::delta::{apply_delta, DeltaError};
use super::specification::TopicSpecification;
use super::subscription::{NotifySubscription, NotifyUnsubscription, UnsubscribeReason};

/// A topic the session is (or was) subscribed to: its session-scoped id, path and
/// specification. Cloning it is cheap (two reference counts).
///
/// ```
/// use diffusion_proto::{Topic, TopicSpecification, TopicType};
///
/// let topic = Topic::new(3, "t/json", TopicSpecification::new(TopicType::Json));
/// assert_eq!((topic.id(), topic.path(), topic.topic_type()), (3, "t/json", TopicType::Json));
/// assert_eq!(topic.clone(), topic);
/// ```
#[derive(Debug, Clone)]
pub struct Topic {
    id: i32,
    path: Arc<str>,
    specification: Arc<TopicSpecification>,
}

impl Topic {
    /// A topic handle, as NOTIFY_SUBSCRIPTION binds one (also for tests of code that
    /// consumes [`TopicEvent`]s).
    pub fn new(id: i32, path: impl Into<Arc<str>>, specification: TopicSpecification) -> Topic {
        Topic {
            id,
            path: path.into(),
            specification: Arc::new(specification),
        }
    }

    /// The id TOPIC_VALUE and TOPIC_DELTA carry for this topic, valid until its
    /// unsubscription (the server may reuse it afterwards).
    pub fn id(&self) -> i32 {
        self.id
    }

    /// The topic path, without leading or trailing `/`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The path as a shared string, for keys that outlive the event.
    pub fn shared_path(&self) -> Arc<str> {
        Arc::clone(&self.path)
    }

    /// The topic's type and properties.
    pub fn specification(&self) -> &TopicSpecification {
        &self.specification
    }

    /// The topic type.
    pub fn topic_type(&self) -> TopicType {
        self.specification.topic_type()
    }

    /// The datatype of the topic's values (`None` for TIME_SERIES and UNKNOWN topics),
    /// what a consumer decodes [`TopicEvent::Value`]'s bytes as.
    pub fn data_type(&self) -> Option<DataType> {
        self.topic_type().data_type()
    }
}

/// Same id, path and specification.
impl PartialEq for Topic {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.path == other.path
            && (Arc::ptr_eq(&self.specification, &other.specification)
                || self.specification == other.specification)
    }
}

impl Eq for Topic {}

/// What happened to one topic of the session ([`crate::Event::Topic`]).
///
/// For one topic the events come in the order: `Subscribed`, then any number of `Value`
/// and `Error`, then `Unsubscribed`; after that the id may be bound again by a new
/// `Subscribed`. Values stay encoded; a consumer decodes them in the type it wants:
///
/// ```
/// use bytes::Bytes;
/// use diffusion_proto::{DecodeValue, Topic, TopicEvent, TopicSpecification, TopicType};
///
/// let topic = Topic::new(2, "t/string", TopicSpecification::new(TopicType::String));
/// let event = TopicEvent::Value {
///     topic,
///     value: Bytes::from_static(b"\x6bhello world"),
///     old: None,
///     delta: false,
/// };
/// if let TopicEvent::Value { topic, value, .. } = &event {
///     // A JSON reader reads STRING topics too (TOPICS §2.5).
///     assert!(topic.data_type().is_some_and(serde_json::Value::can_read));
///     assert_eq!(String::decode_value(value)?, Some("hello world".to_owned()));
///     assert_eq!(serde_json::Value::decode_value(value)?, Some("hello world".into()));
/// }
/// # Ok::<(), diffusion_proto::ValueError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TopicEvent {
    /// The server subscribed the session to the topic (NOTIFY_SUBSCRIPTION); it has no
    /// value yet.
    Subscribed {
        /// The topic.
        topic: Topic,
    },
    /// The topic has a new value.
    Value {
        /// The topic.
        topic: Topic,
        /// The whole encoded value (a delta is already applied). Decode it with
        /// [`crate::DecodeValue`] or [`crate::TopicValue::decode`] in the topic's
        /// [datatype](Topic::data_type).
        value: Bytes,
        /// The value before, encoded; `None` for the first value, after an error, and
        /// always for a topic with `DONT_RETAIN_VALUE=true`.
        old: Option<Bytes>,
        /// Whether the value arrived as a delta (TOPIC_DELTA) rather than whole.
        delta: bool,
    },
    /// The session is no longer subscribed to the topic; its id means nothing any more.
    Unsubscribed {
        /// The topic.
        topic: Topic,
        /// Why: the server's reason, or [`UnsubscribeReason::SubscriptionRefresh`] when a
        /// reconnection lost messages and the server will notify the topic again.
        reason: UnsubscribeReason,
    },
    /// A message for the topic could not be used; the topic stays subscribed and the next
    /// whole value brings it back.
    Error {
        /// The topic.
        topic: Topic,
        /// What went wrong.
        error: TopicError,
    },
}

impl TopicEvent {
    /// The topic the event is about.
    pub fn topic(&self) -> &Topic {
        match self {
            TopicEvent::Subscribed { topic }
            | TopicEvent::Value { topic, .. }
            | TopicEvent::Unsubscribed { topic, .. }
            | TopicEvent::Error { topic, .. } => topic,
        }
    }
}

/// Why a message for a subscribed topic could not be used. After any of them the topic has
/// no cached value, so further deltas fail too until the server sends a whole value.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    /// A delta arrived, but there is no value to apply it to: none arrived yet, the topic
    /// retains none (`DONT_RETAIN_VALUE`), or an earlier error dropped it.
    #[error("a delta arrived with no value to apply it to; the next whole value from the server resynchronises the topic")]
    DeltaWithoutValue,
    /// A delta did not apply to the cached value (malformed, out of range, or building a
    /// value larger than the session's maximum inbound message size).
    #[error("a delta could not be applied to the last value: {source}")]
    DeltaFailed {
        /// Why.
        #[source]
        source: Arc<DeltaError>,
    },
    /// A zlib-compressed value or delta arrived, although this client advertises no
    /// compression (`ca=8`); the value it held is lost.
    #[error("a compressed topic message arrived, but this client does not advertise compression; the value is lost until the next whole value")]
    Compressed {
        /// Whether it was a delta.
        delta: bool,
    },
}

/// Errors are equal when they are the same kind and say the same thing.
impl PartialEq for TopicError {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (TopicError::DeltaWithoutValue, TopicError::DeltaWithoutValue) => true,
            (TopicError::DeltaFailed { source: a }, TopicError::DeltaFailed { source: b }) => {
                Arc::ptr_eq(a, b) || a.to_string() == b.to_string()
            }
            (TopicError::Compressed { delta: a }, TopicError::Compressed { delta: b }) => a == b,
            _ => false,
        }
    }
}

impl Eq for TopicError {}

/// Counters of a session's topic messages ([`crate::ClientSession::topic_stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct TopicStats {
    /// Topics subscribed now.
    pub subscribed: usize,
    /// Whole values received for subscribed topics.
    pub values: u64,
    /// Deltas applied.
    pub deltas: u64,
    /// Values, deltas and unsubscriptions for topic ids no subscription bound: dropped.
    pub unknown_topic_messages: u64,
    /// Topic messages too short to hold a topic id, and subscription notifications that
    /// do not decode: dropped.
    pub malformed_topic_messages: u64,
    /// [`TopicEvent::Error`]s reported.
    pub topic_errors: u64,
}

/// One subscribed topic and its last value.
#[derive(Debug)]
struct Cached {
    topic: Topic,
    /// `DONT_RETAIN_VALUE=true`, read once at notification.
    retain: bool,
    value: Option<Bytes>,
}

/// Topic id → topic and last value, for one client session.
#[derive(Debug, Default)]
pub(crate) struct TopicRegistry {
    topics: HashMap<i32, Cached>,
    stats: TopicStats,
}

impl TopicRegistry {
    /// NOTIFY_SUBSCRIPTION: binds the id. A second notification of a bound id with the same
    /// path and specification changes nothing (the Python client tolerates it too); with
    /// another path or specification, the old topic ends with reason `Unknown` and the new
    /// one begins — servers must not do either (TOPICS §2.2).
    pub(crate) fn notify(&mut self, n: NotifySubscription, mut emit: impl FnMut(TopicEvent)) {
        let topic = Topic::new(n.topic_id, n.path, n.specification);
        if let Some(bound) = self.topics.get(&topic.id) {
            if bound.topic == topic {
                return;
            }
            if let Some(old) = self.topics.remove(&topic.id) {
                emit(TopicEvent::Unsubscribed {
                    topic: old.topic,
                    reason: UnsubscribeReason::Unknown,
                });
            }
        }
        let retain = !topic.specification.dont_retain_value();
        self.topics.insert(
            topic.id,
            Cached {
                topic: topic.clone(),
                retain,
                value: None,
            },
        );
        emit(TopicEvent::Subscribed { topic });
    }

    /// NOTIFY_UNSUBSCRIPTION: unbinds the id.
    pub(crate) fn unsubscribe(&mut self, n: NotifyUnsubscription, mut emit: impl FnMut(TopicEvent)) {
        match self.topics.remove(&n.topic_id) {
            Some(gone) => emit(TopicEvent::Unsubscribed {
                topic: gone.topic,
                reason: n.reason,
            }),
            None => self.stats.unknown_topic_messages += 1,
        }
    }

    /// TOPIC_VALUE: a whole value.
    pub(crate) fn value(&mut self, id: i32, value: Bytes, mut emit: impl FnMut(TopicEvent)) {
        let Some(cached) = self.known(id) else { return };
        let old = if cached.retain {
            cached.value.replace(value.clone())
        } else {
            None
        };
        let topic = cached.topic.clone();
        self.stats.values += 1;
        emit(TopicEvent::Value {
            topic,
            value,
            old,
            delta: false,
        });
    }

    /// TOPIC_DELTA: applied to the cached value, building at most `max_len` bytes.
    pub(crate) fn delta(&mut self, id: i32, delta: &[u8], max_len: usize, mut emit: impl FnMut(TopicEvent)) {
        let Some(cached) = self.known(id) else { return };
        let topic = cached.topic.clone();
        let event = match cached.value.take() {
            None => Err(TopicError::DeltaWithoutValue),
            Some(old) => match apply_delta(&old, delta, max_len) {
                Ok(new) => {
                    let value = Bytes::from(new);
                    // A topic that retains no value has none to apply to: not reached.
                    cached.value = Some(value.clone());
                    Ok(TopicEvent::Value {
                        topic: topic.clone(),
                        value,
                        old: Some(old),
                        delta: true,
                    })
                }
                Err(e) => Err(TopicError::DeltaFailed { source: Arc::new(e) }),
            },
        };
        match event {
            Ok(event) => {
                self.stats.deltas += 1;
                emit(event)
            }
            Err(error) => self.error(topic, error, emit),
        }
    }

    /// A compressed TOPIC_VALUE or TOPIC_DELTA, which this client cannot read.
    pub(crate) fn compressed(&mut self, id: i32, delta: bool, emit: impl FnMut(TopicEvent)) {
        let Some(cached) = self.known(id) else { return };
        cached.value = None;
        let topic = cached.topic.clone();
        self.error(topic, TopicError::Compressed { delta }, emit);
    }

    /// A topic message that names no topic, or a notification that does not decode.
    pub(crate) fn malformed(&mut self) {
        self.stats.malformed_topic_messages += 1;
    }

    /// The server lost this session's messages (106, or a new session instead of the one
    /// resumed): every topic ends with `SubscriptionRefresh`, in id order, and the server
    /// notifies again those still subscribed (TOPICS §2.6).
    pub(crate) fn refresh(&mut self, mut emit: impl FnMut(TopicEvent)) {
        let mut gone: Vec<Cached> = self.topics.drain().map(|(_, c)| c).collect();
        gone.sort_unstable_by_key(|c| c.topic.id);
        for cached in gone {
            emit(TopicEvent::Unsubscribed {
                topic: cached.topic,
                reason: UnsubscribeReason::SubscriptionRefresh,
            });
        }
    }

    /// Forgets every topic, without events (the session closed).
    pub(crate) fn clear(&mut self) {
        self.topics.clear();
    }

    /// The topic `id` and its cached value.
    pub(crate) fn get(&self, id: i32) -> Option<(&Topic, Option<&Bytes>)> {
        self.topics.get(&id).map(|c| (&c.topic, c.value.as_ref()))
    }

    /// Every subscribed topic and its cached value, in no particular order.
    pub(crate) fn iter(&self) -> impl ExactSizeIterator<Item = (&Topic, Option<&Bytes>)> + '_ {
        self.topics.values().map(|c| (&c.topic, c.value.as_ref()))
    }

    pub(crate) fn stats(&self) -> TopicStats {
        TopicStats {
            subscribed: self.topics.len(),
            ..self.stats
        }
    }

    /// The subscribed topic `id`, or `None` after counting the message as unknown.
    fn known(&mut self, id: i32) -> Option<&mut Cached> {
        let cached = self.topics.get_mut(&id);
        if cached.is_none() {
            self.stats.unknown_topic_messages += 1;
        }
        cached
    }

    fn error(&mut self, topic: Topic, error: TopicError, mut emit: impl FnMut(TopicEvent)) {
        self.stats.topic_errors += 1;
        emit(TopicEvent::Error { topic, error });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 1 << 20;

    fn notify(id: i32, path: &str, spec: TopicSpecification) -> NotifySubscription {
        NotifySubscription {
            topic_id: id,
            path: path.to_owned(),
            specification: spec,
        }
    }

    fn string_topic(id: i32, path: &str) -> NotifySubscription {
        notify(id, path, TopicSpecification::new(TopicType::String))
    }

    /// Runs `f` on the registry and returns the events it made.
    fn events(
        r: &mut TopicRegistry,
        f: impl FnOnce(&mut TopicRegistry, &mut dyn FnMut(TopicEvent)),
    ) -> Vec<TopicEvent> {
        let mut out = Vec::new();
        f(r, &mut |e| out.push(e));
        out
    }

    /// (value, old, delta) of a single `Value` event.
    fn value_of(events: &[TopicEvent]) -> (&[u8], Option<&[u8]>, bool) {
        match events {
            [TopicEvent::Value {
                value, old, delta, ..
            }] => (value, old.as_deref(), *delta),
            other => panic!("not one value: {other:?}"),
        }
    }

    fn error_of(events: &[TopicEvent]) -> &TopicError {
        match events {
            [TopicEvent::Error { error, .. }] => error,
            other => panic!("not one error: {other:?}"),
        }
    }

    #[test]
    fn values_carry_the_previous_value_and_deltas_apply_to_it() {
        let mut r = TopicRegistry::default();
        let subscribed = events(&mut r, |r, e| r.notify(string_topic(2, "t/string"), e));
        assert_eq!(
            subscribed,
            [TopicEvent::Subscribed {
                topic: Topic::new(2, "t/string", TopicSpecification::new(TopicType::String))
            }]
        );
        let first = events(&mut r, |r, e| {
            r.value(2, Bytes::from_static(b"\x6bhello world"), e)
        });
        assert_eq!(value_of(&first), (&b"\x6bhello world"[..], None, false));
        // The delta of TOPICS §2.4: "hello world" → "hello brave world".
        let delta = b"\x4c\x71hello brave\x06\x06";
        let second = events(&mut r, |r, e| r.delta(2, delta, MAX, e));
        assert_eq!(
            value_of(&second),
            (&b"\x71hello brave world"[..], Some(&b"\x6bhello world"[..]), true)
        );
        let third = events(&mut r, |r, e| r.value(2, Bytes::from_static(b"\x61y"), e));
        assert_eq!(
            value_of(&third),
            (&b"\x61y"[..], Some(&b"\x71hello brave world"[..]), false)
        );
        assert_eq!(
            r.get(2).map(|(_, v)| v.cloned()),
            Some(Some(Bytes::from_static(b"\x61y")))
        );
        let stats = r.stats();
        assert_eq!((stats.subscribed, stats.values, stats.deltas), (1, 2, 1));
    }

    #[test]
    fn a_delta_without_a_value_or_that_fails_is_an_error_until_a_whole_value() {
        let mut r = TopicRegistry::default();
        events(&mut r, |r, e| r.notify(string_topic(1, "a"), e));
        let no_value = events(&mut r, |r, e| r.delta(1, &[0x41, 0x61], MAX, e));
        assert_eq!(error_of(&no_value), &TopicError::DeltaWithoutValue);

        events(&mut r, |r, e| r.value(1, Bytes::from_static(b"\x63abc"), e));
        // Copies 5 bytes of a 4-byte value.
        let failed = events(&mut r, |r, e| r.delta(1, &[0x00, 0x05], MAX, e));
        let TopicError::DeltaFailed { source } = error_of(&failed) else {
            panic!("{failed:?}")
        };
        assert!(matches!(**source, DeltaError::CopyOutOfRange { .. }));
        assert!(std::error::Error::source(error_of(&failed)).is_some());
        // The cached value went with the failure: the next delta cannot apply either …
        assert_eq!(r.get(1).map(|(_, v)| v.is_none()), Some(true));
        let again = events(&mut r, |r, e| r.delta(1, &[0x00, 0x01], MAX, e));
        assert_eq!(error_of(&again), &TopicError::DeltaWithoutValue);
        // … until a whole value, which has no old value to report.
        let whole = events(&mut r, |r, e| r.value(1, Bytes::from_static(b"\x61z"), e));
        assert_eq!(value_of(&whole), (&b"\x61z"[..], None, false));
        assert_eq!(r.stats().topic_errors, 3);
    }

    #[test]
    fn a_delta_cannot_build_more_than_the_limit() {
        let mut r = TopicRegistry::default();
        events(&mut r, |r, e| r.notify(string_topic(1, "a"), e));
        events(&mut r, |r, e| r.value(1, Bytes::from(vec![7; 100]), e));
        // Two copies of the whole 100-byte value: 200 bytes, over a 150-byte limit.
        let delta = [0x00, 0x18, 0x64, 0x00, 0x18, 0x64];
        let failed = events(&mut r, |r, e| r.delta(1, &delta, 150, e));
        assert!(matches!(
            error_of(&failed),
            TopicError::DeltaFailed { source } if matches!(**source, DeltaError::TooLarge { limit: 150 })
        ));
    }

    #[test]
    fn dont_retain_value_keeps_no_value() {
        let mut r = TopicRegistry::default();
        let spec = TopicSpecification::new(TopicType::Json)
            .with_property(TopicSpecification::DONT_RETAIN_VALUE, "true");
        events(&mut r, |r, e| r.notify(notify(4, "t/volatile", spec), e));
        for _ in 0..2 {
            let v = events(&mut r, |r, e| r.value(4, Bytes::from_static(&[0x01]), e));
            assert_eq!(value_of(&v), (&[0x01][..], None, false));
        }
        assert_eq!(r.get(4).map(|(_, v)| v.is_none()), Some(true));
        let delta = events(&mut r, |r, e| r.delta(4, &[0x00, 0x01], MAX, e));
        assert_eq!(error_of(&delta), &TopicError::DeltaWithoutValue);
    }

    #[test]
    fn messages_for_unknown_ids_are_counted_and_dropped() {
        let mut r = TopicRegistry::default();
        assert!(events(&mut r, |r, e| r.value(9, Bytes::new(), e)).is_empty());
        assert!(events(&mut r, |r, e| r.delta(9, &[], MAX, e)).is_empty());
        assert!(events(&mut r, |r, e| r.compressed(9, false, e)).is_empty());
        let gone = NotifyUnsubscription {
            topic_id: 9,
            reason: UnsubscribeReason::Removal,
        };
        assert!(events(&mut r, |r, e| r.unsubscribe(gone, e)).is_empty());
        r.malformed();
        let stats = r.stats();
        assert_eq!(
            (
                stats.unknown_topic_messages,
                stats.malformed_topic_messages,
                stats.values
            ),
            (4, 1, 0)
        );
    }

    #[test]
    fn unsubscription_ends_the_topic_and_frees_its_id() {
        let mut r = TopicRegistry::default();
        events(&mut r, |r, e| r.notify(string_topic(5, "t/binary"), e));
        let gone = NotifyUnsubscription {
            topic_id: 5,
            reason: UnsubscribeReason::Removal,
        };
        let ended = events(&mut r, |r, e| r.unsubscribe(gone, e));
        assert_eq!(
            ended,
            [TopicEvent::Unsubscribed {
                topic: Topic::new(5, "t/binary", TopicSpecification::new(TopicType::String)),
                reason: UnsubscribeReason::Removal
            }]
        );
        assert_eq!(r.stats().subscribed, 0);
        // The id may be bound again, to anything.
        let again = events(&mut r, |r, e| r.notify(string_topic(5, "other"), e));
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].topic().path(), "other");
    }

    #[test]
    fn a_repeated_notification_changes_nothing_and_a_rebinding_replaces_the_topic() {
        let mut r = TopicRegistry::default();
        events(&mut r, |r, e| r.notify(string_topic(1, "a"), e));
        events(&mut r, |r, e| r.value(1, Bytes::from_static(b"\x61x"), e));
        assert!(events(&mut r, |r, e| r.notify(string_topic(1, "a"), e)).is_empty());
        assert_eq!(
            r.get(1).and_then(|(_, v)| v.cloned()),
            Some(Bytes::from_static(b"\x61x"))
        );

        let rebound = events(&mut r, |r, e| r.notify(string_topic(1, "b"), e));
        let kinds: Vec<(&str, Option<UnsubscribeReason>)> = rebound
            .iter()
            .map(|e| match e {
                TopicEvent::Unsubscribed { topic, reason } => (topic.path(), Some(*reason)),
                other => (other.topic().path(), None),
            })
            .collect();
        assert_eq!(kinds, [("a", Some(UnsubscribeReason::Unknown)), ("b", None)]);
        assert_eq!(r.get(1).map(|(t, v)| (t.path(), v.is_none())), Some(("b", true)));
    }

    #[test]
    fn compressed_messages_are_an_error_that_drops_the_value() {
        let mut r = TopicRegistry::default();
        events(&mut r, |r, e| r.notify(string_topic(1, "a"), e));
        events(&mut r, |r, e| r.value(1, Bytes::from_static(b"\x61x"), e));
        let error = events(&mut r, |r, e| r.compressed(1, true, e));
        assert_eq!(error_of(&error), &TopicError::Compressed { delta: true });
        assert_eq!(r.get(1).map(|(_, v)| v.is_none()), Some(true));
    }

    #[test]
    fn refresh_unsubscribes_every_topic_in_id_order_and_clears() {
        let mut r = TopicRegistry::default();
        for id in [7, -1, 3] {
            events(&mut r, |r, e| r.notify(string_topic(id, &format!("t/{id}")), e));
            events(&mut r, |r, e| r.value(id, Bytes::from_static(b"\x61x"), e));
        }
        let refreshed = events(&mut r, |r, e| r.refresh(e));
        let ids: Vec<(i32, UnsubscribeReason)> = refreshed
            .iter()
            .map(|e| match e {
                TopicEvent::Unsubscribed { topic, reason } => (topic.id(), *reason),
                other => panic!("{other:?}"),
            })
            .collect();
        let refresh = UnsubscribeReason::SubscriptionRefresh;
        assert_eq!(ids, [(-1, refresh), (3, refresh), (7, refresh)]);
        assert_eq!(r.iter().len(), 0);
        // Values that were on their way for the old bindings are unknown now.
        assert!(events(&mut r, |r, e| r.value(3, Bytes::new(), e)).is_empty());
        assert_eq!(r.stats().unknown_topic_messages, 1);
    }

    #[test]
    fn errors_compare_by_kind_and_message() {
        let a = TopicError::DeltaFailed {
            source: Arc::new(DeltaError::MissingLength),
        };
        let b = TopicError::DeltaFailed {
            source: Arc::new(DeltaError::MissingLength),
        };
        assert_eq!(a, b);
        assert_ne!(a, TopicError::DeltaWithoutValue);
        assert_ne!(
            TopicError::Compressed { delta: true },
            TopicError::Compressed { delta: false }
        );
        assert!(a.to_string().contains("without its length"), "{a}");
    }
}
