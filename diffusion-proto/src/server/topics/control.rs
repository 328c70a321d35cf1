//! Topic control and update (TOPICS.md §5, §9.4–§9.6): add, add-and-set, set and remove, for
//! client requests and the API alike. Every check comes before any change; the requester is
//! answered before the notifications and values the change causes (Q4).

use bytes::{Bytes, BytesMut};

use super::delivery::{bind, deliver, unbind};
use super::error::TopicTreeError;
use super::tree::{validate_path, Published, FRAME_HEADER};
use super::{Origin, TopicSent};
use crate::handshake::ProtocolVersion;
use crate::server::{Server, ServerEventKind};
use crate::topics::{
    AddTopicResult, RemoveTopicsResponse, Selector, ServicePayload, TopicSpecification, TopicState,
    TopicType, UnsubscribeReason, UpdateConstraint,
};

const CREATED: &[u8] = &[0];
const EXISTS: &[u8] = &[1];

/// Fails unless `constraint` holds for the topic at `path` in `state`.
fn check_constraint(
    path: &str,
    constraint: &UpdateConstraint,
    state: TopicState<'_>,
) -> Result<(), TopicTreeError> {
    match constraint.evaluate(state) {
        Ok(true) => Ok(()),
        Ok(false) => Err(TopicTreeError::Unsatisfied {
            path: path.to_owned(),
        }),
        Err(source) => Err(TopicTreeError::UnsupportedConstraint {
            path: path.to_owned(),
            source,
        }),
    }
}

impl Server {
    /// TOPIC_ADD: 01 for a topic with the same specification, 9010 for another one, else
    /// created (00) and notified to every session whose selectors select it.
    pub(super) fn add_topic_from(
        &mut self,
        origin: Origin,
        path: &str,
        specification: TopicSpecification,
    ) -> Result<AddTopicResult, TopicTreeError> {
        validate_path(path)?;
        match self.topics.get(path) {
            Some(existing) if *existing.specification == specification => {
                self.respond(origin, Bytes::from_static(EXISTS));
                Ok(AddTopicResult::Exists)
            }
            Some(_) => Err(TopicTreeError::Incompatible {
                path: path.to_owned(),
            }),
            None => {
                self.create_topic(origin, path, specification, None)?;
                Ok(AddTopicResult::Created)
            }
        }
    }

    /// ADD_AND_SET_TOPIC: the constraint is evaluated against the path's state (5 "no topic"
    /// fails when the topic exists); a new topic is created with the value and notified with
    /// it; an existing one of the same specification is set.
    pub(super) fn add_and_set_topic_from(
        &mut self,
        origin: Origin,
        path: &str,
        specification: TopicSpecification,
        value: Bytes,
        constraint: &UpdateConstraint,
    ) -> Result<AddTopicResult, TopicTreeError> {
        validate_path(path)?;
        self.check_value_size(path, &value)?;
        check_constraint(path, constraint, self.topics.state(path))?;
        match self.topics.get(path) {
            Some(existing) if *existing.specification == specification => {
                self.update_topic(origin, path, value, Bytes::from_static(EXISTS));
                Ok(AddTopicResult::Exists)
            }
            Some(_) => Err(TopicTreeError::Incompatible {
                path: path.to_owned(),
            }),
            None => {
                self.create_topic(origin, path, specification, Some(value))?;
                Ok(AddTopicResult::Created)
            }
        }
    }

    /// SET_TOPIC: 503 without a topic, 500 for another type (`topic_type` `None`: the
    /// topic's own), 501 for an oversize value, 9012 when the constraint fails; then stored
    /// and published.
    pub(super) fn set_topic_from(
        &mut self,
        origin: Origin,
        path: &str,
        topic_type: Option<TopicType>,
        value: Bytes,
        constraint: &UpdateConstraint,
    ) -> Result<(), TopicTreeError> {
        let topic = self.topics.get(path).ok_or_else(|| TopicTreeError::Missing {
            path: path.to_owned(),
        })?;
        let actual = topic.specification.topic_type();
        if let Some(given) = topic_type.filter(|&t| t != actual) {
            return Err(TopicTreeError::WrongType {
                path: path.to_owned(),
                actual,
                given,
            });
        }
        check_constraint(path, constraint, topic.state())?;
        self.check_value_size(path, &value)?;
        self.update_topic(origin, path, value, Bytes::new());
        Ok(())
    }

    /// TOPIC_REMOVAL: every topic the selector selects is removed, each subscriber told with
    /// reason 2; the answer is the count.
    pub(super) fn remove_topics_from(
        &mut self,
        origin: Origin,
        selector: &str,
    ) -> Result<usize, TopicTreeError> {
        let selector = Selector::parse(selector)?;
        let paths = self.topics.matching(&selector);
        let removed = RemoveTopicsResponse {
            removed: i32::try_from(paths.len()).unwrap_or(i32::MAX),
        };
        let mut answer = BytesMut::new();
        // A count encodes in every version.
        let _ = removed.encode(&mut answer, ProtocolVersion::V25);
        self.respond(origin, answer.freeze());
        for path in &paths {
            let Some(topic) = self.topics.remove(path) else {
                continue;
            };
            let frame = topic.unsubscription_frame(UnsubscribeReason::Removal);
            let (sessions, topics, outputs) = self.topic_parts();
            for id in &topic.subscribers {
                if let Some(session) = sessions.get_mut(id) {
                    unbind(
                        *id,
                        session,
                        &topic,
                        &frame,
                        UnsubscribeReason::Removal,
                        topics.stats_mut(),
                        outputs,
                    );
                }
            }
            self.origin_event(
                origin,
                ServerEventKind::TopicRemoved {
                    topic_id: topic.id,
                    path: topic.path.clone(),
                },
            );
        }
        Ok(paths.len())
    }

    fn check_value_size(&self, path: &str, value: &[u8]) -> Result<(), TopicTreeError> {
        let limit = self.config.max_topic_value_size;
        if value.len() > limit {
            return Err(TopicTreeError::ValueTooLarge {
                path: path.to_owned(),
                size: value.len(),
                limit,
            });
        }
        Ok(())
    }

    /// Creates the topic (answering 00), then binds every session that selects it.
    fn create_topic(
        &mut self,
        origin: Origin,
        path: &str,
        specification: TopicSpecification,
        value: Option<Bytes>,
    ) -> Result<(), TopicTreeError> {
        let limit = self.config.max_topics;
        let topic = self.topics.create(path, specification, limit)?;
        if let Some(value) = value {
            topic.store(value);
        }
        let event = ServerEventKind::TopicAdded {
            topic_id: topic.id,
            path: topic.path.clone(),
            topic_type: topic.specification.topic_type(),
        };
        self.respond(origin, Bytes::from_static(CREATED));
        self.origin_event(origin, event);
        // Only now, on add, is a topic matched against every session's selectors.
        let (sessions, topics, outputs) = self.topic_parts();
        let Some((topic, stats)) = topics.get_mut(path) else {
            return Ok(());
        };
        for (id, session) in sessions.iter_mut() {
            if session.topics.selects(path) {
                bind(*id, session, topic, stats, outputs);
            }
        }
        Ok(())
    }

    /// Answers `response`, stores the value and publishes it: one frame, value or delta,
    /// shared by every subscriber; nothing when the value did not change.
    fn update_topic(&mut self, origin: Origin, path: &str, value: Bytes, response: Bytes) {
        self.respond(origin, response);
        let deltas = self.config.topic_deltas;
        let value_size = value.len();
        let (sessions, topics, outputs) = self.topic_parts();
        let Some((topic, stats)) = topics.get_mut(path) else {
            return;
        };
        let published = topic.update(value, deltas, !topic.subscribers.is_empty());
        let (sent, delta_size) = match &published {
            Published::Unchanged | Published::Stored => (TopicSent::Nothing, None),
            Published::Value(frame) => {
                deliver(sessions, topic, frame, false, stats, outputs);
                (TopicSent::Value, None)
            }
            Published::Delta(frame) => {
                deliver(sessions, topic, frame, true, stats, outputs);
                (TopicSent::Delta, Some(frame.len() - FRAME_HEADER))
            }
        };
        if !matches!(published, Published::Unchanged) {
            stats.updates += 1;
        }
        let event = ServerEventKind::TopicSet {
            topic_id: topic.id,
            path: topic.path.clone(),
            sent,
            value_size,
            delta_size,
            subscribers: topic.subscribers.len(),
        };
        self.origin_event(origin, event);
    }
}
