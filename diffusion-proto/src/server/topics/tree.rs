//! The topic tree every session shares: path → topic (id, specification, value, subscribers),
//! ids unique per server and never reused, and the frames each topic's subscribers share.

use std::collections::btree_map::{self, BTreeMap};
use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;

use super::api::TopicTreeStats;
use super::error::TopicTreeError;
use super::subscriptions::SessionTopics;
use crate::handshake::{ProtocolVersion, SessionId};
use crate::message::{type_code, Message, ServiceId};
use crate::topics::{
    append_delta, NotifySubscription, NotifyUnsubscription, Selector, ServicePayload, TopicSpecification,
    TopicState, TopicType, UnsubscribeReason,
};

/// The bytes of a TOPIC_VALUE or TOPIC_DELTA frame before the value: type byte and the
/// 4-byte topic id.
pub(super) const FRAME_HEADER: usize = 5;

/// One topic.
#[derive(Debug)]
pub(crate) struct Topic {
    /// The topic id every session knows it by (ids are per server, so one frame serves all).
    pub(crate) id: i32,
    pub(crate) path: Arc<str>,
    pub(crate) specification: Arc<TopicSpecification>,
    /// The properties, shared by every fetch result that shows them.
    pub(crate) properties: Arc<[(String, String)]>,
    /// The current value (never kept with `DONT_RETAIN_VALUE`). When `value_frame` is set,
    /// a slice of it.
    value: Option<Bytes>,
    /// The TOPIC_VALUE frame of `value`, built at most once per value.
    value_frame: Option<Bytes>,
    /// NOTIFY_SUBSCRIPTION with cid 0, the same for every session.
    notify_frame: Bytes,
    /// The sessions notified of this topic (each also lists the id in its own state).
    pub(crate) subscribers: BTreeSet<SessionId>,
    /// Updates that changed or re-sent the value.
    pub(crate) updates: u64,
    /// Updates published as a delta.
    pub(crate) deltas: u64,
    /// The type and properties allow deltas: a type with binary deltas, no
    /// `PUBLISH_VALUES_ONLY`, and a retained value to compute them from.
    deltas_allowed: bool,
    retains: bool,
}

/// What an update published.
#[derive(Debug)]
pub(crate) enum Published {
    /// The value did not change: nothing to send.
    Unchanged,
    /// Stored; nobody subscribes, so no frame was built.
    Stored,
    /// A TOPIC_VALUE frame for every subscriber.
    Value(Bytes),
    /// A TOPIC_DELTA frame for every subscriber: they all hold the previous value.
    Delta(Bytes),
}

impl Topic {
    fn new(id: i32, path: &str, specification: TopicSpecification) -> Topic {
        let notify = NotifySubscription {
            topic_id: id,
            path: path.to_owned(),
            specification: specification.clone(),
        };
        let notify_frame = service_frame(ServiceId::NOTIFY_SUBSCRIPTION, &notify);
        let retains = !specification.dont_retain_value();
        let deltas_allowed = retains
            && !specification.publish_values_only()
            && specification
                .topic_type()
                .data_type()
                .is_some_and(|d| d.supports_deltas());
        Topic {
            id,
            path: Arc::from(path),
            properties: specification
                .properties()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            specification: Arc::new(specification),
            value: None,
            value_frame: None,
            notify_frame,
            subscribers: BTreeSet::new(),
            updates: 0,
            deltas: 0,
            deltas_allowed,
            retains,
        }
    }

    /// The current value.
    pub(crate) fn value(&self) -> Option<&Bytes> {
        self.value.as_ref()
    }

    /// What an update constraint is evaluated against.
    pub(crate) fn state(&self) -> TopicState<'_> {
        TopicState::Present {
            topic_type: self.specification.topic_type(),
            value: self.value.as_deref(),
        }
    }

    /// NOTIFY_SUBSCRIPTION (cid 0) of this topic.
    pub(crate) fn notify_frame(&self) -> Bytes {
        self.notify_frame.clone()
    }

    /// TOPIC_VALUE of the current value, if there is one; built once per value and then
    /// shared, the value becoming a slice of it.
    pub(crate) fn value_frame(&mut self) -> Option<Bytes> {
        if self.value_frame.is_none() {
            let value = self.value.as_ref()?;
            let frame = Message::TopicValue {
                topic_id: self.id,
                compressed: false,
                payload: value.clone(),
            }
            .to_bytes();
            self.value = Some(frame.slice(FRAME_HEADER..));
            self.value_frame = Some(frame);
        }
        self.value_frame.clone()
    }

    /// NOTIFY_UNSUBSCRIPTION (cid 0) of this topic.
    pub(crate) fn unsubscription_frame(&self, reason: UnsubscribeReason) -> Bytes {
        let gone = NotifyUnsubscription {
            topic_id: self.id,
            reason,
        };
        service_frame(ServiceId::NOTIFY_UNSUBSCRIPTION, &gone)
    }

    /// Stores `value` without publishing it (the value of a topic being created).
    pub(crate) fn store(&mut self, value: Bytes) {
        self.value = self.retains.then_some(value);
        self.value_frame = None;
    }

    /// Stores `value` and builds the one frame every subscriber gets: a delta when `deltas`
    /// (the server's switch) and the topic allow, the topic had a value and the delta is
    /// shorter; else the value. No frame when `publish` is false (no subscriber).
    pub(crate) fn update(&mut self, value: Bytes, deltas: bool, publish: bool) -> Published {
        if self.retains && self.value.as_ref() == Some(&value) {
            return Published::Unchanged;
        }
        self.updates += 1;
        if !publish {
            self.store(value);
            return Published::Stored;
        }
        // One allocation: the delta is written after the header when it is shorter, else
        // the value is; either fits the capacity.
        let mut frame = Vec::with_capacity(FRAME_HEADER + value.len());
        frame.push(type_code::TOPIC_DELTA);
        frame.extend_from_slice(&self.id.to_be_bytes());
        if let Some(old) = self.value.as_ref().filter(|_| deltas && self.deltas_allowed) {
            if append_delta(old, &value, &mut frame) {
                self.deltas += 1;
                self.value = Some(value);
                self.value_frame = None;
                return Published::Delta(Bytes::from(frame));
            }
        }
        frame[0] = type_code::TOPIC_VALUE;
        frame.extend_from_slice(&value);
        let frame = Bytes::from(frame);
        if self.retains {
            self.value = Some(frame.slice(FRAME_HEADER..));
            self.value_frame = Some(frame.clone());
        }
        Published::Value(frame)
    }
}

/// A one-way (cid 0) request frame of `service`.
fn service_frame(service: ServiceId, payload: &impl ServicePayload) -> Bytes {
    // Notifications are the same in every protocol version; encoding them cannot fail.
    let payload = payload.to_bytes(ProtocolVersion::V25).unwrap_or_default();
    Message::ServiceRequest {
        service,
        cid: 0,
        payload,
    }
    .to_bytes()
}

/// Every topic, by path (so in path order) and by id.
#[derive(Debug, Default)]
pub(crate) struct TopicTree {
    topics: BTreeMap<Arc<str>, Topic>,
    paths: BTreeMap<i32, Arc<str>>,
    /// The last id given; ids start at 1.
    last_id: i32,
    stats: TopicTreeStats,
}

impl TopicTree {
    pub(crate) fn get(&self, path: &str) -> Option<&Topic> {
        self.topics.get(path)
    }

    /// The topic at `path` and the counters, borrowed together.
    pub(crate) fn get_mut(&mut self, path: &str) -> Option<(&mut Topic, &mut TopicTreeStats)> {
        Some((self.topics.get_mut(path)?, &mut self.stats))
    }

    /// The topic `id` and the counters, borrowed together.
    pub(crate) fn by_id_mut(&mut self, id: i32) -> Option<(&mut Topic, &mut TopicTreeStats)> {
        let path = self.paths.get(&id)?;
        Some((self.topics.get_mut(path)?, &mut self.stats))
    }

    pub(crate) fn by_id(&self, id: i32) -> Option<&Topic> {
        self.topics.get(self.paths.get(&id)?)
    }

    /// Every topic in path order, and the counters.
    pub(crate) fn all_mut(&mut self) -> (btree_map::ValuesMut<'_, Arc<str>, Topic>, &mut TopicTreeStats) {
        (self.topics.values_mut(), &mut self.stats)
    }

    /// Every topic in path order.
    pub(crate) fn iter(&self) -> btree_map::Values<'_, Arc<str>, Topic> {
        self.topics.values()
    }

    /// The paths `selector` selects, in path order.
    pub(crate) fn matching(&self, selector: &Selector) -> Vec<Arc<str>> {
        self.topics
            .keys()
            .filter(|path| selector.matches(path))
            .cloned()
            .collect()
    }

    /// What a constraint sees at `path`.
    pub(crate) fn state(&self, path: &str) -> TopicState<'_> {
        self.get(path).map_or(TopicState::Missing, Topic::state)
    }

    pub(crate) fn stats_mut(&mut self) -> &mut TopicTreeStats {
        &mut self.stats
    }

    pub(crate) fn stats(&self) -> TopicTreeStats {
        TopicTreeStats {
            topics: self.topics.len(),
            ..self.stats
        }
    }

    /// A new topic at `path`, which must be valid and free, with the next id.
    pub(crate) fn create(
        &mut self,
        path: &str,
        specification: TopicSpecification,
        limit: usize,
    ) -> Result<&mut Topic, TopicTreeError> {
        let topic_type = specification.topic_type();
        if matches!(topic_type, TopicType::TimeSeries | TopicType::Unknown) {
            return Err(TopicTreeError::UnsupportedType {
                path: path.to_owned(),
                topic_type,
            });
        }
        if self.topics.len() >= limit {
            return Err(TopicTreeError::TooManyTopics {
                path: path.to_owned(),
                limit,
            });
        }
        let Some(id) = self.last_id.checked_add(1) else {
            return Err(TopicTreeError::IdsExhausted {
                path: path.to_owned(),
            });
        };
        self.last_id = id;
        self.stats.added += 1;
        let topic = Topic::new(id, path, specification);
        let key = topic.path.clone();
        self.paths.insert(id, key.clone());
        Ok(self.topics.entry(key).or_insert(topic))
    }

    /// Takes the topic at `path` out of the tree (its id is not given again).
    pub(crate) fn remove(&mut self, path: &str) -> Option<Topic> {
        let topic = self.topics.remove(path)?;
        self.paths.remove(&topic.id);
        self.stats.removed += 1;
        Some(topic)
    }

    /// Forgets a closed session as a subscriber of the topics it held.
    pub(crate) fn remove_subscriber(&mut self, session: SessionId, topics: &SessionTopics) {
        for &id in &topics.subscribed {
            if let Some((topic, _)) = self.by_id_mut(id) {
                topic.subscribers.remove(&session);
            }
        }
    }
}

/// Checks a path for TOPIC_ADD: not empty, no leading or trailing `/`, no empty segment
/// (TOPICS §5.1; the official clients send any string).
pub(crate) fn validate_path(path: &str) -> Result<(), TopicTreeError> {
    let problem = if path.is_empty() {
        "the path is empty"
    } else if path.starts_with('/') {
        "a path does not start with '/'"
    } else if path.ends_with('/') {
        "a path does not end with '/'"
    } else if path.contains("//") {
        "a path has no empty segment ('//')"
    } else {
        return Ok(());
    };
    Err(TopicTreeError::InvalidPath {
        path: path.to_owned(),
        problem,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topics::apply_delta;

    fn tree_with(path: &str, specification: TopicSpecification) -> TopicTree {
        let mut tree = TopicTree::default();
        assert!(tree.create(path, specification, 10).is_ok());
        tree
    }

    #[test]
    fn paths_are_checked() {
        for bad in ["", "/a", "a/", "a//b", "/", "//"] {
            assert!(
                matches!(validate_path(bad), Err(TopicTreeError::InvalidPath { .. })),
                "{bad:?}"
            );
        }
        for good in ["a", "a/b", "t/json", "a b/c.d"] {
            assert_eq!(validate_path(good), Ok(()));
        }
    }

    #[test]
    fn ids_are_never_reused_and_limits_hold() {
        let mut tree = TopicTree::default();
        let spec = || TopicSpecification::new(TopicType::String);
        assert_eq!(tree.create("a", spec(), 2).map(|t| t.id), Ok(1));
        assert_eq!(tree.create("b", spec(), 2).map(|t| t.id), Ok(2));
        assert!(matches!(
            tree.create("c", spec(), 2),
            Err(TopicTreeError::TooManyTopics { limit: 2, .. })
        ));
        assert!(tree.remove("a").is_some());
        assert_eq!(tree.create("a", spec(), 2).map(|t| t.id), Ok(3));
        assert_eq!(tree.by_id(1).map(|t| t.id), None);
        assert_eq!(tree.by_id(3).map(|t| &*t.path), Some("a"));
        tree.last_id = i32::MAX;
        assert!(tree.remove("b").is_some());
        assert!(matches!(
            tree.create("b", spec(), 2),
            Err(TopicTreeError::IdsExhausted { .. })
        ));
        assert!(matches!(
            tree.create("s", TopicSpecification::new(TopicType::TimeSeries), 9),
            Err(TopicTreeError::UnsupportedType { .. })
        ));
    }

    #[test]
    fn updates_publish_a_shorter_delta_or_the_value() {
        let mut tree = tree_with("t/json", TopicSpecification::new(TopicType::Json));
        let Some((topic, _)) = tree.get_mut("t/json") else {
            panic!("created above")
        };
        let old = Bytes::from_static(b"\xbf\x61\x61\x01\x61\x62\x9f\xf5\xf6\xff\xff");
        let new = Bytes::from_static(b"\xbf\x61\x61\x02\x61\x62\x9f\xf5\xf6\xff\xff");
        let Published::Value(first) = topic.update(old.clone(), true, true) else {
            panic!("the first update is a value")
        };
        assert_eq!(&first[..5], [0x04, 0, 0, 0, 1]);
        assert_eq!(first.slice(5..), old);
        assert!(matches!(
            topic.update(old.clone(), true, true),
            Published::Unchanged
        ));
        let Published::Delta(delta) = topic.update(new.clone(), true, true) else {
            panic!("a one-byte change is a delta")
        };
        assert_eq!(hex(&delta), "0500000001000341020407");
        assert_eq!(apply_delta(&old, &delta[5..], 64).ok().as_deref(), Some(&new[..]));
        assert_eq!(topic.value(), Some(&new));
        // The server's switch off: values only.
        assert!(matches!(
            topic.update(old.clone(), false, true),
            Published::Value(_)
        ));
        // Nobody subscribes: stored, no frame; the next subscriber's frame is built once.
        assert!(matches!(
            topic.update(new.clone(), true, false),
            Published::Stored
        ));
        let frame = topic.value_frame();
        assert_eq!(
            frame.as_deref().map(hex),
            Some(format!("0400000001{}", hex(&new)))
        );
        assert_eq!(topic.value_frame(), frame);
        assert_eq!((topic.updates, topic.deltas), (4, 1));
    }

    #[test]
    fn properties_decide_deltas_and_retention() {
        let values_only = TopicSpecification::new(TopicType::String)
            .with_property(TopicSpecification::PUBLISH_VALUES_ONLY, "true");
        let unretained = TopicSpecification::new(TopicType::String)
            .with_property(TopicSpecification::DONT_RETAIN_VALUE, "true");
        let long = |c: u8| Bytes::from([0x78, 40].into_iter().chain([c; 40]).collect::<Vec<u8>>());
        for (spec, retained) in [
            (values_only, true),
            (unretained, false),
            (TopicSpecification::new(TopicType::Int64), true),
        ] {
            let mut tree = tree_with("t", spec);
            let Some((topic, _)) = tree.get_mut("t") else {
                panic!("created above")
            };
            assert!(matches!(
                topic.update(long(b'a'), true, true),
                Published::Value(_)
            ));
            let mut changed = long(b'a').to_vec();
            changed[10] = b'b';
            assert!(matches!(
                topic.update(changed.into(), true, true),
                Published::Value(_)
            ));
            assert_eq!(topic.value().is_some(), retained);
            // Not retained: the same value again is published again.
            assert!(matches!(
                topic.update(long(b'a'), true, true),
                Published::Value(_)
            ));
            let same = topic.update(long(b'a'), true, true);
            assert_eq!(matches!(same, Published::Unchanged), retained);
        }
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn notifications_are_the_live_frames() {
        let props = TopicSpecification::new(TopicType::String)
            .with_property(TopicSpecification::PUBLISH_VALUES_ONLY, "true")
            .with_property(TopicSpecification::TIDY_ON_UNSUBSCRIBE, "true");
        let mut tree = tree_with("t/json", TopicSpecification::new(TopicType::Json));
        assert!(tree.create("t/props", props, 10).is_ok());
        // TOPICS §2.2 and §2.3, as both official clients accepted them.
        let json = tree.get("t/json").map(|t| hex(&t.notify_frame()));
        assert_eq!(json.as_deref(), Some("0057000106742f6a736f6e0f00"));
        let props = tree.get("t/props").map(|t| hex(&t.notify_frame()));
        assert_eq!(
            props.as_deref(),
            Some("0057000207742f70726f70731102135055424c4953485f56414c5545535f4f4e4c59047472756513544944595f4f4e5f554e5355425343524942450474727565")
        );
        let gone = tree
            .get("t/props")
            .map(|t| hex(&t.unsubscription_frame(UnsubscribeReason::Removal)));
        assert_eq!(gone.as_deref(), Some("002a000202"));
    }
}
