//! Frames to subscribers: binding a session to a topic (NOTIFY_SUBSCRIPTION, then the value),
//! ending a binding (NOTIFY_UNSUBSCRIPTION), and one update to every subscriber. Every frame
//! is built once and its `Bytes` shared by all the sessions it goes to.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

use super::api::TopicTreeStats;
use super::tree::Topic;
use crate::handshake::SessionId;
use crate::server::session::Session;
use crate::server::{ServerEvent, ServerEventKind, ServerOutput};
use crate::topics::UnsubscribeReason;

/// An event about `session`, on its connection if it has one.
pub(super) fn session_event(
    outputs: &mut VecDeque<ServerOutput>,
    id: SessionId,
    session: &Session,
    kind: ServerEventKind,
) {
    outputs.push_back(ServerOutput::Event(ServerEvent {
        conn: session.info.connection,
        session_id: Some(id),
        kind,
    }));
}

/// Records that `session` holds `topic`, then notifies it.
pub(super) fn bind(
    id: SessionId,
    session: &mut Session,
    topic: &mut Topic,
    stats: &mut TopicTreeStats,
    outputs: &mut VecDeque<ServerOutput>,
) {
    session.topics.subscribed.insert(topic.id);
    topic.subscribers.insert(id);
    notify(id, session, topic, stats, outputs);
}

/// NOTIFY_SUBSCRIPTION, then TOPIC_VALUE with the current value if there is one (TOPICS §9.3,
/// §9.11: the first message after the notification is a full value).
pub(super) fn notify(
    id: SessionId,
    session: &mut Session,
    topic: &mut Topic,
    stats: &mut TopicTreeStats,
    outputs: &mut VecDeque<ServerOutput>,
) {
    session.push_numbered(topic.notify_frame(), outputs);
    stats.subscriptions += 1;
    if let Some(frame) = topic.value_frame() {
        session.push_numbered(frame, outputs);
        session.topics.values_sent += 1;
        stats.values_sent += 1;
    }
    session_event(
        outputs,
        id,
        session,
        ServerEventKind::TopicSubscribed {
            topic_id: topic.id,
            path: topic.path.clone(),
        },
    );
}

/// Sends `frame`, the topic's NOTIFY_UNSUBSCRIPTION for `reason`, and forgets the topic on
/// the session's side (the caller updates the topic's subscribers).
pub(super) fn unbind(
    id: SessionId,
    session: &mut Session,
    topic: &Topic,
    frame: &Bytes,
    reason: UnsubscribeReason,
    stats: &mut TopicTreeStats,
    outputs: &mut VecDeque<ServerOutput>,
) {
    session.topics.subscribed.remove(&topic.id);
    session.push_numbered(frame.clone(), outputs);
    stats.unsubscriptions += 1;
    session_event(
        outputs,
        id,
        session,
        ServerEventKind::TopicUnsubscribed {
            topic_id: topic.id,
            path: topic.path.clone(),
            reason,
        },
    );
}

/// One update's frame to every subscriber of `topic`.
pub(super) fn deliver(
    sessions: &mut BTreeMap<SessionId, Session>,
    topic: &Topic,
    frame: &Bytes,
    delta: bool,
    stats: &mut TopicTreeStats,
    outputs: &mut VecDeque<ServerOutput>,
) {
    let mut sent = 0;
    for id in &topic.subscribers {
        let Some(session) = sessions.get_mut(id) else {
            continue;
        };
        session.push_numbered(frame.clone(), outputs);
        if delta {
            session.topics.deltas_sent += 1;
        } else {
            session.topics.values_sent += 1;
        }
        sent += 1;
    }
    if delta {
        stats.deltas_sent += sent;
    } else {
        stats.values_sent += sent;
    }
}
