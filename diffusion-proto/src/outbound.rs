//! What both sides keep of what they send (SPEC §11): numbered frames held for re-sending
//! after a reconnection, and conversation ids for requests. Written once for the client and
//! the server session.

use std::collections::VecDeque;

use bytes::Bytes;

/// The messages one side has sent, numbered 1, 2, 3, … (0 before the first), the newest
/// `capacity` of them kept for re-sending.
#[derive(Debug, Clone, Default)]
pub(crate) struct RecoveryBuffer {
    last: u64,
    frames: VecDeque<(u64, Bytes)>,
    capacity: usize,
}

impl RecoveryBuffer {
    /// Numbers from 1, keeping the newest `capacity` frames (none when 0).
    pub(crate) fn new(capacity: usize) -> Self {
        RecoveryBuffer {
            last: 0,
            frames: VecDeque::new(),
            capacity,
        }
    }

    /// Numbers `frame` and keeps a copy, dropping the oldest when full; returns its number.
    pub(crate) fn push(&mut self, frame: &Bytes) -> u64 {
        self.last = self.last.saturating_add(1);
        if self.capacity > 0 {
            if self.frames.len() >= self.capacity {
                self.frames.pop_front();
            }
            self.frames.push_back((self.last, frame.clone()));
        }
        self.last
    }

    /// The number of the last frame sent (0 before any).
    pub(crate) fn last(&self) -> u64 {
        self.last
    }

    /// The number of the oldest frame still held.
    pub(crate) fn oldest(&self) -> Option<u64> {
        self.frames.front().map(|f| f.0)
    }

    /// How many frames are held.
    pub(crate) fn len(&self) -> usize {
        self.frames.len()
    }

    /// True when as many frames are held as may be.
    pub(crate) fn is_full(&self) -> bool {
        self.frames.len() >= self.capacity
    }

    /// Every frame numbered `first` or later, oldest first: none when `first` is after the
    /// last; `Err` with the oldest number held when some of them are no longer held.
    pub(crate) fn since(&self, first: u64) -> Result<Vec<Bytes>, Option<u64>> {
        if first > self.last {
            return Ok(Vec::new());
        }
        match self.oldest() {
            Some(oldest) if oldest <= first => Ok(self
                .frames
                .iter()
                .filter(|(n, _)| *n >= first)
                .map(|(_, frame)| frame.clone())
                .collect()),
            oldest => Err(oldest),
        }
    }

    /// Forgets the frames held, keeping the numbering.
    pub(crate) fn clear(&mut self) {
        self.frames.clear();
    }

    /// Numbers from 1 again, holding nothing (after a reconnection with message loss).
    pub(crate) fn reset(&mut self) {
        self.last = 0;
        self.frames.clear();
    }
}

/// Conversation ids for requests: 1, 2, 3, … wrapping to 1, never 0 (which means one-way).
#[derive(Debug, Clone)]
pub(crate) struct ConversationIds {
    next: i64,
}

impl Default for ConversationIds {
    fn default() -> Self {
        ConversationIds { next: 1 }
    }
}

impl ConversationIds {
    /// The id the next request gets.
    pub(crate) fn peek(&self) -> i64 {
        self.next
    }

    /// Takes the next id.
    pub(crate) fn take(&mut self) -> i64 {
        let cid = self.next;
        self.next = cid.checked_add(1).unwrap_or(1);
        cid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_and_knows_what_it_lost() {
        let mut buffer = RecoveryBuffer::new(2);
        for byte in 1..=3u8 {
            assert_eq!(buffer.push(&Bytes::from(vec![byte])), u64::from(byte));
        }
        assert_eq!((buffer.last(), buffer.oldest(), buffer.len()), (3, Some(2), 2));
        assert_eq!(
            buffer.since(2),
            Ok(vec![Bytes::from_static(&[2]), Bytes::from_static(&[3])])
        );
        assert_eq!(buffer.since(4), Ok(Vec::new()));
        assert_eq!(buffer.since(1), Err(Some(2)));
        buffer.reset();
        assert_eq!((buffer.last(), buffer.oldest()), (0, None));
        let mut none = RecoveryBuffer::new(0);
        none.push(&Bytes::new());
        assert_eq!((none.since(1), none.is_full()), (Err(None), true));
    }

    #[test]
    fn conversation_ids_skip_zero() {
        let mut ids = ConversationIds { next: i64::MAX };
        assert_eq!((ids.take(), ids.peek()), (i64::MAX, 1));
    }
}
