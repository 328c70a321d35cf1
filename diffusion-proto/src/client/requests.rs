//! This client's requests awaiting an answer: conversation ids, when each was sent, and
//! their deadlines in the order they were set (one timeout for all, so in time order).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use crate::outbound::ConversationIds;

/// One request awaiting its answer.
#[derive(Debug)]
pub(super) struct Pending {
    pub(super) sent_at: Instant,
    pub(super) wall: SystemTime,
    deadline: Option<Instant>,
}

#[derive(Debug, Default)]
pub(super) struct Requests {
    ids: ConversationIds,
    pending: HashMap<i64, Pending>,
    deadlines: VecDeque<(Instant, i64)>,
}

impl Requests {
    /// The conversation id the next request gets.
    pub(super) fn next_cid(&self) -> i64 {
        self.ids.peek()
    }

    /// Records a request sent at `now` under the next conversation id, which it returns.
    pub(super) fn start(&mut self, now: Instant, wall: SystemTime, timeout: Option<Duration>) -> i64 {
        let cid = self.ids.take();
        let deadline = timeout.map(|t| now + t);
        if let Some(d) = deadline {
            self.deadlines.push_back((d, cid));
        }
        self.pending.insert(
            cid,
            Pending {
                sent_at: now,
                wall,
                deadline,
            },
        );
        cid
    }

    /// The request `cid`, now answered.
    pub(super) fn complete(&mut self, cid: i64) -> Option<Pending> {
        self.pending.remove(&cid)
    }

    pub(super) fn len(&self) -> usize {
        self.pending.len()
    }

    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.front().map(|d| d.0)
    }

    /// The requests whose deadline has passed at `now`, removed, oldest first.
    pub(super) fn expire(&mut self, now: Instant) -> Vec<i64> {
        let mut expired = Vec::new();
        while let Some(&(deadline, cid)) = self.deadlines.front() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_front();
            // Still pending under that deadline (not answered meanwhile).
            if self
                .pending
                .get(&cid)
                .is_some_and(|p| p.deadline == Some(deadline))
            {
                self.pending.remove(&cid);
                expired.push(cid);
            }
        }
        expired
    }

    /// Every pending request, removed, in id order.
    pub(super) fn drain(&mut self) -> Vec<i64> {
        let mut ids: Vec<i64> = self.pending.drain().map(|(cid, _)| cid).collect();
        ids.sort_unstable();
        self.deadlines.clear();
        ids
    }
}
