//! What the session handles and the driver task share: the commands the handles send, the
//! status the driver publishes, and the fan-out of state changes to streams and listeners.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use diffusion_proto::{Reply, ServiceId, SessionStatus, StateChange};
use tokio::sync::{broadcast, oneshot};

use crate::error::Error;

/// A handler for the server's requests to one service: payload in, response payload or
/// an error description out.
pub type Handler =
    Arc<dyn Fn(Bytes) -> Pin<Box<dyn Future<Output = Result<Bytes, String>> + Send>> + Send + Sync>;

/// A state-change listener, called on the driver task.
pub(crate) type Listener = Box<dyn Fn(&StateChange) + Send>;

/// What a session handle asks of the driver.
pub(crate) enum Command {
    Invoke {
        service: ServiceId,
        payload: Bytes,
        reply: oneshot::Sender<Result<Reply, Error>>,
    },
    Register {
        service: ServiceId,
        handler: Handler,
    },
    Deregister {
        service: ServiceId,
    },
    Close {
        done: oneshot::Sender<()>,
    },
}

/// The core's status as the driver last published it. `settled` is false only while a
/// state change is being handed to streams and listeners: the handles already read the new
/// status, but `connect()` waits until every stream and listener has the change.
#[derive(Debug, Clone, Default)]
pub(crate) struct Published {
    pub(crate) status: SessionStatus,
    pub(crate) settled: bool,
}

/// How many state changes a slow stream may fall behind before it skips the oldest.
const CHANGES_CAPACITY: usize = 64;

/// The state-change fan-out, behind one lock: a change is either published to a
/// subscriber or happened before it subscribed, never lost in between.
#[derive(Default)]
pub(crate) struct Changes {
    inner: Mutex<ChangesInner>,
}

#[derive(Default)]
struct ChangesInner {
    /// Created by the first stream: its slots are most of an idle session's memory
    /// otherwise, and most sessions never subscribe.
    sender: Option<broadcast::Sender<StateChange>>,
    /// Listeners registered since the last change; the driver takes them over.
    new_listeners: Vec<Listener>,
    /// The change to a closed state was published: nothing follows.
    closed: bool,
}

impl Changes {
    fn lock(&self) -> MutexGuard<'_, ChangesInner> {
        // A panic elsewhere while holding it leaves plain data that is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A receiver of every change from now on, or `None` once the session is closed.
    pub(crate) fn subscribe(&self) -> Option<broadcast::Receiver<StateChange>> {
        let mut inner = self.lock();
        if inner.closed {
            return None;
        }
        Some(
            inner
                .sender
                .get_or_insert_with(|| broadcast::channel(CHANGES_CAPACITY).0)
                .subscribe(),
        )
    }

    /// Adds a listener for every change from now on (dropped at once once closed).
    pub(crate) fn listen(&self, listener: Listener) {
        let mut inner = self.lock();
        if !inner.closed {
            inner.new_listeners.push(listener);
        }
    }

    /// Publishes `change` to the streams and hands over the listeners registered since the
    /// last one, which the driver then calls. The change to a closed state ends the streams.
    pub(crate) fn publish(&self, change: &StateChange, listeners: &mut Vec<Listener>) {
        let mut inner = self.lock();
        if let Some(sender) = &inner.sender {
            let _ = sender.send(change.clone());
        }
        listeners.append(&mut inner.new_listeners);
        if change.new.is_closed() {
            inner.closed = true;
            // Subscribers' streams end once they have read the last change.
            inner.sender = None;
        }
    }
}
