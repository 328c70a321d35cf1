//! [`StateChanges`]: the stream of a session's state changes, a named `Unpin` type, which
//! tells a reader that fell behind how many changes it missed.

use std::pin::Pin;
use std::task::{Context, Poll};

use diffusion_proto::StateChange;
use futures_util::stream::{BoxStream, Stream, StreamExt};
use tokio::sync::broadcast;

/// A reader of [`StateChanges`] fell behind and `missed` changes were dropped for it; the
/// stream goes on with the oldest change still held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{missed} state change(s) missed: the reader fell more than 64 behind")]
pub struct Lagged {
    /// How many changes were dropped.
    pub missed: u64,
}

/// Every state change of a session from when it was asked for: `Ok(change)` in order, or
/// `Err(Lagged)` where a reader that fell more than 64 changes behind missed some. It ends
/// after the change to a closed state (at once, for a session already closed).
///
/// Guarantees: the change to CONNECTED_ACTIVE is in the stream before `connect()`
/// returns, and the change to a closed state before `close()` returns.
pub struct StateChanges {
    inner: BoxStream<'static, Result<StateChange, Lagged>>,
}

impl StateChanges {
    pub(crate) fn new(receiver: Option<broadcast::Receiver<StateChange>>) -> Self {
        let inner = futures_util::stream::unfold(receiver, |receiver| async move {
            let mut receiver = receiver?;
            match receiver.recv().await {
                Ok(change) => Some((Ok(change), Some(receiver))),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    Some((Err(Lagged { missed }), Some(receiver)))
                }
                Err(broadcast::error::RecvError::Closed) => None,
            }
        });
        StateChanges { inner: inner.boxed() }
    }
}

impl Stream for StateChanges {
    type Item = Result<StateChange, Lagged>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }
}

impl std::fmt::Debug for StateChanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateChanges")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::Changes;
    use diffusion_proto::SessionState;

    fn change(new: SessionState) -> StateChange {
        StateChange {
            old: SessionState::ConnectedActive,
            new,
            reason: None,
        }
    }

    #[test]
    fn a_lagging_reader_is_told_how_many_it_missed_and_the_stream_ends_after_closing() {
        let changes = Changes::default();
        let mut stream = StateChanges::new(changes.subscribe());
        let mut listeners = Vec::new();
        for _ in 0..70 {
            changes.publish(&change(SessionState::RecoveringReconnect), &mut listeners);
        }
        let mut closed = change(SessionState::ClosedByClient);
        closed.reason = Some(diffusion_proto::CloseReason::ClosedByClient);
        changes.publish(&closed, &mut listeners);
        let items: Vec<_> =
            futures_util::FutureExt::now_or_never(stream.by_ref().collect()).unwrap_or_default();
        assert_eq!(items[0], Err(Lagged { missed: 7 }));
        assert_eq!(items.len(), 65);
        assert_eq!(items.last(), Some(&Ok(closed)));
        // Once closed, a new stream is empty and a new listener never runs.
        assert!(changes.subscribe().is_none());
        changes.listen(Box::new(|_| panic!("called after the close")));
        changes.publish(&change(SessionState::ClosedByClient), &mut listeners);
        assert!(listeners.is_empty());
    }
}
