//! Topics on the server side (TOPICS.md §2, §5, §6, §9): the topic tree all sessions share,
//! each session's selectors and subscribed topics, the topic services, and the API a test
//! server uses to add, set, remove and inspect topics.
//!
//! Split by job: `tree` (topics, ids, shared frames), `subscriptions` (one session's state),
//! `delivery` (frames to subscribers), `control` (add, set, remove), `subscribe` (selectors,
//! and re-notification after a reconnection with loss), `fetch`, `routes` (decoding the
//! services 3, 4, 83, 112, 117, 118, 122 and answering errors), `api` (public methods).

mod api;
mod control;
mod delivery;
mod error;
mod fetch;
mod routes;
mod subscribe;
mod subscriptions;
mod tree;

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

pub use api::{SubscriptionInfo, TopicInfo, TopicSent, TopicTreeStats};
pub use error::TopicTreeError;
pub(super) use subscriptions::SessionTopics;
pub(super) use tree::TopicTree;

use super::session::Session;
use super::{ConnectionId, Server, ServerEvent, ServerEventKind, ServerOutput};
use crate::handshake::SessionId;
use crate::message::Message;

/// Who asked for a topic operation: a client's request (answered) or the API (not).
#[derive(Debug, Clone, Copy)]
enum Origin {
    Api,
    Request {
        conn: ConnectionId,
        session: SessionId,
        cid: i64,
    },
}

impl Origin {
    fn session(self) -> Option<SessionId> {
        match self {
            Origin::Api => None,
            Origin::Request { session, .. } => Some(session),
        }
    }
}

impl Server {
    /// The sessions, the tree and the output queue, borrowed apart, for work that touches
    /// a topic and its subscribers together.
    fn topic_parts(
        &mut self,
    ) -> (
        &mut BTreeMap<SessionId, Session>,
        &mut TopicTree,
        &mut VecDeque<ServerOutput>,
    ) {
        (&mut self.sessions, &mut self.topics, &mut self.outputs)
    }

    /// Answers the request, if the operation came from one that awaits an answer.
    fn respond(&mut self, origin: Origin, payload: Bytes) {
        if let Origin::Request { session, cid, .. } = origin {
            // cid 0 is one-way.
            if cid != 0 {
                self.reply(session, Message::ServiceResponse { cid, payload });
            }
        }
    }

    /// An event about an operation, on the requesting session and connection.
    fn origin_event(&mut self, origin: Origin, kind: ServerEventKind) {
        let conn = match origin {
            Origin::Api => None,
            Origin::Request { conn, .. } => Some(conn),
        };
        self.event(ServerEvent {
            conn,
            session_id: origin.session(),
            kind,
        });
    }
}
