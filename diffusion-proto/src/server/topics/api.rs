//! What a test server or a test does with topics directly: add, set and remove them as a
//! client's request would (same checks, same notifications), and look at the tree, a
//! session's subscriptions and the counters.

use std::sync::Arc;

use bytes::Bytes;

use super::error::TopicTreeError;
use super::tree::{validate_path, Topic};
use super::Origin;
use crate::handshake::SessionId;
use crate::server::Server;
use crate::topics::{AddTopicResult, TopicSpecification, UpdateConstraint};

/// One topic of the server's tree.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TopicInfo {
    /// The topic id every session knows it by (unique per server, never reused).
    pub id: i32,
    /// The path.
    pub path: Arc<str>,
    /// The type and properties.
    pub specification: Arc<TopicSpecification>,
    /// The current encoded value (none before the first set, and never for
    /// `DONT_RETAIN_VALUE` topics).
    pub value: Option<Bytes>,
    /// How many sessions are subscribed.
    pub subscribers: usize,
    /// Updates that changed the value (or, unretained, re-sent it).
    pub updates: u64,
    /// Updates published as a binary delta.
    pub deltas: u64,
}

impl TopicInfo {
    fn of(topic: &Topic) -> TopicInfo {
        TopicInfo {
            id: topic.id,
            path: topic.path.clone(),
            specification: topic.specification.clone(),
            value: topic.value().cloned(),
            subscribers: topic.subscribers.len(),
            updates: topic.updates,
            deltas: topic.deltas,
        }
    }
}

/// What one session subscribes to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubscriptionInfo {
    /// Its selectors as `(scope, selector)`, the selector in its normalized form (`>a` for a
    /// bare `a`); the default scope is `""`.
    pub selectors: Vec<(String, String)>,
    /// The topics it was notified of, as `(id, path)` in id order.
    pub topics: Vec<(i32, Arc<str>)>,
    /// TOPIC_VALUE frames sent (or buffered while detached).
    pub values_sent: u64,
    /// TOPIC_DELTA frames sent (or buffered while detached).
    pub deltas_sent: u64,
}

/// Counters of the topic tree since the server started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TopicTreeStats {
    /// Topics in the tree now.
    pub topics: usize,
    /// Topics created.
    pub added: u64,
    /// Topics removed.
    pub removed: u64,
    /// Updates that changed a value (unchanged values are not counted).
    pub updates: u64,
    /// TOPIC_VALUE frames queued to sessions (one per subscriber).
    pub values_sent: u64,
    /// TOPIC_DELTA frames queued to sessions (one per subscriber).
    pub deltas_sent: u64,
    /// NOTIFY_SUBSCRIPTIONs sent (106 re-notifications included).
    pub subscriptions: u64,
    /// NOTIFY_UNSUBSCRIPTIONs sent.
    pub unsubscriptions: u64,
}

/// How an update reached the subscribers, in [`crate::ServerEventKind::TopicSet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize), serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum TopicSent {
    /// The whole value (TOPIC_VALUE).
    Value,
    /// A binary delta (TOPIC_DELTA), shorter than the value.
    Delta,
    /// Nothing: the value did not change, or nobody subscribes.
    Nothing,
}

impl Server {
    /// Adds a topic as a client's TOPIC_ADD would: the sessions whose selectors select it
    /// are notified. [`AddTopicResult::Exists`] when a topic with the same specification is
    /// there.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use diffusion_proto::{AddTopicResult, AllowAll, CounterEntropy, Server, ServerConfig, TopicSpecification, TopicType};
    ///
    /// let mut server = Server::new(ServerConfig::default(), Box::new(AllowAll), Box::new(CounterEntropy::default()));
    /// let spec = TopicSpecification::new(TopicType::String);
    /// assert_eq!(server.add_topic("greeting", spec.clone()), Ok(AddTopicResult::Created));
    /// assert_eq!(server.add_topic("greeting", spec), Ok(AddTopicResult::Exists));
    /// server.set_topic("greeting", Bytes::from_static(b"\x65Hello"))?;
    /// let topic = server.topic("greeting").expect("added above");
    /// assert_eq!((topic.id, topic.value.as_deref()), (1, Some(&b"\x65Hello"[..])));
    /// assert_eq!(server.remove_topics("?greeting//")?, 1);
    /// # Ok::<(), diffusion_proto::TopicTreeError>(())
    /// ```
    pub fn add_topic(
        &mut self,
        path: &str,
        specification: TopicSpecification,
    ) -> Result<AddTopicResult, TopicTreeError> {
        self.add_topic_from(Origin::Api, path, specification)
    }

    /// Adds a topic with a value, or sets it when a topic with the same specification
    /// exists, as ADD_AND_SET_TOPIC without a constraint would.
    pub fn add_and_set_topic(
        &mut self,
        path: &str,
        specification: TopicSpecification,
        value: Bytes,
    ) -> Result<AddTopicResult, TopicTreeError> {
        self.add_and_set_topic_from(
            Origin::Api,
            path,
            specification,
            value,
            &UpdateConstraint::Unconstrained,
        )
    }

    /// Sets a topic's encoded value, as SET_TOPIC of the topic's own type would: the
    /// subscribers get the value, or a delta when shorter and allowed.
    pub fn set_topic(&mut self, path: &str, value: Bytes) -> Result<(), TopicTreeError> {
        self.set_topic_from(Origin::Api, path, None, value, &UpdateConstraint::Unconstrained)
    }

    /// Removes every topic `selector` selects, as TOPIC_REMOVAL would; their subscribers
    /// are told (reason 2). Returns how many were removed.
    pub fn remove_topics(&mut self, selector: &str) -> Result<usize, TopicTreeError> {
        self.remove_topics_from(Origin::Api, selector)
    }

    /// Checks a topic path as TOPIC_ADD does (9005): not empty, no leading or trailing `/`,
    /// no empty segment. For tools that refuse a bad path before they start.
    ///
    /// ```
    /// use diffusion_proto::Server;
    /// assert!(Server::validate_topic_path("a/b").is_ok());
    /// assert!(Server::validate_topic_path("a//b").is_err());
    /// ```
    pub fn validate_topic_path(path: &str) -> Result<(), TopicTreeError> {
        validate_path(path)
    }

    /// The topic at `path`.
    pub fn topic(&self, path: &str) -> Option<TopicInfo> {
        self.topics.get(path).map(TopicInfo::of)
    }

    /// Every topic, in path order.
    pub fn topics(&self) -> impl Iterator<Item = TopicInfo> + '_ {
        self.topics.iter().map(TopicInfo::of)
    }

    /// What session `id` subscribes to; `None` for a session the server does not know.
    pub fn subscriptions(&self, id: SessionId) -> Option<SubscriptionInfo> {
        let state = &self.sessions.get(&id)?.topics;
        Some(SubscriptionInfo {
            selectors: state
                .selectors()
                .map(|(scope, s)| (scope.to_owned(), s.to_owned()))
                .collect(),
            topics: state
                .subscribed
                .iter()
                .filter_map(|&topic| self.topics.by_id(topic).map(|t| (t.id, t.path.clone())))
                .collect(),
            values_sent: state.values_sent,
            deltas_sent: state.deltas_sent,
        })
    }

    /// The topic tree's counters.
    pub fn topic_stats(&self) -> TopicTreeStats {
        self.topics.stats()
    }
}
