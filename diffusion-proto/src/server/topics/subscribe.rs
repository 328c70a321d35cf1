//! Subscriptions (TOPICS.md §2.1, §2.6, §9.3, §9.7): a session's selectors coming and going,
//! and its topics notified again after a reconnection that lost messages (106).

use bytes::Bytes;

use super::delivery::{bind, notify, unbind};
use super::error::TopicTreeError;
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
        let selector = Selector::parse(selector)?;
        let limit = self.config.max_selectors_per_session;
        let Some(session) = self.sessions.get_mut(&id) else {
            return Ok(());
        };
        let added = session.topics.add(scope, &selector, limit)?;
        self.respond(origin, Bytes::new());
        self.origin_event(
            origin,
            ServerEventKind::Subscribe {
                selector: selector.as_str().to_owned(),
                scope: scope.to_owned(),
            },
        );
        if !added {
            // Every topic a held selector selects is held already.
            return Ok(());
        }
        let Server {
            sessions,
            topics,
            outputs,
            ..
        } = self;
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
        let selector = Selector::parse(selector)?;
        let Some(session) = self.sessions.get_mut(&id) else {
            return Ok(());
        };
        let removed = session.topics.remove(scope, &selector);
        self.respond(origin, Bytes::new());
        self.origin_event(
            origin,
            ServerEventKind::Unsubscribe {
                selector: selector.as_str().to_owned(),
                scope: scope.to_owned(),
            },
        );
        if !removed {
            return Ok(());
        }
        let Server {
            sessions,
            topics,
            outputs,
            ..
        } = self;
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

    /// After a 106 the client has dropped its topics (TOPICS §2.6): every topic the session
    /// still holds is notified again, with its current value, in id order. The session's
    /// selectors and topics are server state and were kept.
    pub(in crate::server) fn renotify_topics(&mut self, id: SessionId) {
        let Server {
            sessions,
            topics,
            outputs,
            ..
        } = self;
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
