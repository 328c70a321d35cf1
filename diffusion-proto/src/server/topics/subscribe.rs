//! Subscriptions (TOPICS.md §2.1, §2.6, §9.3, §9.7): a session's selectors coming and going,
//! and its topics notified again after a reconnection that lost messages (106).

use bytes::Bytes;

use super::delivery::{bind, notify, unbind};
use super::error::TopicTreeError;
use super::subscriptions::SessionTopics;
use super::Origin;
use crate::handshake::SessionId;
use crate::server::{Server, ServerEventKind};
use crate::topics::{Selector, UnsubscribeReason};

impl Server {
    /// SUBSCRIBE: keeps the selector in its scope, answers, then binds each topic it selects
    /// that the session does not hold yet, in path order.
    pub(super) fn subscribe_from(
        &mut self,
        origin: Origin,
        id: SessionId,
        selector: &str,
        scope: &str,
    ) -> Result<(), TopicTreeError> {
        let limit = self.config.max_selectors_per_session;
        let added = self.change_selectors(
            origin,
            id,
            (selector, scope),
            |held, s| held.add(scope, s, limit),
            |selector, scope| ServerEventKind::Subscribe { selector, scope },
        )?;
        // A selector held already selects only topics held already.
        let Some(selector) = added else {
            return Ok(());
        };
        let (sessions, topics, outputs) = self.topic_parts();
        let Some(session) = sessions.get_mut(&id) else {
            return Ok(());
        };
        let (all, stats) = topics.all_mut();
        for topic in all {
            if !topic.subscribers.contains(&id) && selector.matches(&topic.path) {
                bind(id, session, topic, stats, outputs);
            }
        }
        Ok(())
    }

    /// UNSUBSCRIBE: drops the selector from its scope, answers, then unsubscribes (reason 0)
    /// each held topic it selected that no remaining selector of any scope selects. A
    /// selector the session does not hold changes nothing.
    pub(super) fn unsubscribe_from(
        &mut self,
        origin: Origin,
        id: SessionId,
        selector: &str,
        scope: &str,
    ) -> Result<(), TopicTreeError> {
        let removed = self.change_selectors(
            origin,
            id,
            (selector, scope),
            |held, s| Ok(held.remove(scope, s)),
            |selector, scope| ServerEventKind::Unsubscribe { selector, scope },
        )?;
        let Some(selector) = removed else {
            return Ok(());
        };
        let (sessions, topics, outputs) = self.topic_parts();
        let Some(session) = sessions.get_mut(&id) else {
            return Ok(());
        };
        let held: Vec<i32> = session.topics.subscribed.iter().copied().collect();
        for topic_id in held {
            let Some((topic, stats)) = topics.by_id_mut(topic_id) else {
                continue;
            };
            if selector.matches(&topic.path) && !session.topics.selects(&topic.path) {
                topic.subscribers.remove(&id);
                let frame = topic.unsubscription_frame(UnsubscribeReason::Requested);
                unbind(
                    id,
                    session,
                    topic,
                    &frame,
                    UnsubscribeReason::Requested,
                    stats,
                    outputs,
                );
            }
        }
        Ok(())
    }

    /// Parses `selector`, applies `change` to the session's selectors, answers, and records
    /// `event` (selector, scope); the selector when `change` changed something.
    fn change_selectors(
        &mut self,
        origin: Origin,
        id: SessionId,
        (selector, scope): (&str, &str),
        change: impl FnOnce(&mut SessionTopics, &Selector) -> Result<bool, TopicTreeError>,
        event: fn(String, String) -> ServerEventKind,
    ) -> Result<Option<Selector>, TopicTreeError> {
        let parsed = Selector::parse(selector)?;
        let Some(session) = self.sessions.get_mut(&id) else {
            return Ok(None);
        };
        let changed = change(&mut session.topics, &parsed)?;
        self.respond(origin, Bytes::new());
        self.origin_event(origin, event(selector.to_owned(), scope.to_owned()));
        Ok(changed.then_some(parsed))
    }

    /// After a 106 the client has dropped its topics (TOPICS §2.6): every topic the session
    /// still holds is notified again, with its current value, in id order. The session's
    /// selectors and topics are server state and were kept.
    pub(in crate::server) fn renotify_topics(&mut self, id: SessionId) {
        let (sessions, topics, outputs) = self.topic_parts();
        let Some(session) = sessions.get_mut(&id) else {
            return;
        };
        let held: Vec<i32> = session.topics.subscribed.iter().copied().collect();
        for topic_id in held {
            if let Some((topic, stats)) = topics.by_id_mut(topic_id) {
                notify(id, session, topic, stats, outputs);
            }
        }
    }
}
