//! What the hub, the connection tasks and the [`crate::TestServer`] handle share: the log,
//! the transport's counts and the protocol server itself; and [`Stats`], both counted together.

use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use diffusion_proto::Server;
use tokio::sync::watch;

use crate::log::{LogEntry, LogKind};

/// What the transport sees, counted by the hub; the protocol's counters are the protocol
/// server's own ([`Server::stats`]).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TransportCounts {
    pub(crate) connections: u64,
    pub(crate) upgrades: u64,
    pub(crate) rejections: u64,
    pub(crate) messages_received: u64,
    pub(crate) messages_sent: u64,
    pub(crate) dropped_connections: u64,
    pub(crate) stalled_connections: u64,
    pub(crate) malformed_responses: u64,
}

/// What the hub, the connection tasks and the handle share.
pub(crate) struct Shared {
    pub(crate) started: Instant,
    pub(crate) log: Mutex<Vec<LogEntry>>,
    /// Bumped after every log entry, for [`crate::TestServer::wait_for`].
    pub(crate) changed: watch::Sender<u64>,
    pub(crate) counts: Mutex<TransportCounts>,
    /// The protocol server, locked by the hub for each step and by the handle to read its
    /// sessions, so that what a client has seen is already visible there. (A copy of every
    /// session published after each input cost O(sessions) per message.)
    pub(crate) server: Mutex<Server>,
    pub(crate) log_json: bool,
}

/// Locks a mutex; a panic elsewhere while holding it leaves plain data that is still usable.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    pub(crate) fn new(server: Server, log_json: bool) -> Self {
        Shared {
            server: Mutex::new(server),
            started: Instant::now(),
            log: Mutex::new(Vec::new()),
            changed: watch::Sender::new(0),
            counts: Mutex::new(TransportCounts::default()),
            log_json,
        }
    }

    /// Appends an entry (and prints it as a JSON line when asked to).
    pub(crate) fn record(&self, conn: Option<u64>, kind: LogKind) {
        if let LogKind::Error { message } = &kind {
            tracing::warn!(conn, "{message}");
        }
        let entry = LogEntry {
            at: self.started.elapsed(),
            conn,
            kind,
        };
        let mut log = lock(&self.log);
        if self.log_json {
            use std::io::Write as _;
            // One line per entry, flushed, so scripts can follow it; a closed stdout
            // must not stop the server.
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", entry.to_json());
            let _ = out.flush();
        }
        log.push(entry);
        drop(log);
        self.notify();
    }

    pub(crate) fn count(&self, f: impl FnOnce(&mut TransportCounts)) {
        f(&mut lock(&self.counts));
        self.notify();
    }

    /// The transport's counts and the protocol server's, together.
    pub(crate) fn stats(&self) -> Stats {
        let t = *lock(&self.counts);
        let core = lock(&self.server).stats();
        let s = core.sessions;
        Stats {
            connections: t.connections,
            upgrades: t.upgrades,
            sessions_opened: core.sessions_opened,
            reconnections: s.reconnections,
            rejections: t.rejections,
            messages_received: t.messages_received,
            messages_sent: t.messages_sent,
            system_pings_sent: s.system_pings_sent,
            system_pings_answered: s.system_pings_answered,
            user_pings_answered: s.user_pings_answered,
            close_requests: s.close_requests,
            aborts_sent: s.aborts_sent,
            dropped_connections: t.dropped_connections,
            stalled_connections: t.stalled_connections,
            malformed_responses: t.malformed_responses,
        }
    }

    /// Wakes [`crate::TestServer::wait_for`].
    fn notify(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// Counters since the server started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// TCP connections accepted.
    pub connections: u64,
    /// WebSocket upgrades completed.
    pub upgrades: u64,
    /// Sessions opened (response 100).
    pub sessions_opened: u64,
    /// Sessions resumed (105, 106).
    pub reconnections: u64,
    /// Connection responses that refused (3 bytes, by the protocol server or a fault).
    pub rejections: u64,
    /// Client messages received (frames after the connection response); what a stalled
    /// connection reads and discards is not counted.
    pub messages_received: u64,
    /// Messages sent after connection responses.
    pub messages_sent: u64,
    /// SYSTEM_PINGs sent.
    pub system_pings_sent: u64,
    /// SYSTEM_PINGs the client answered.
    pub system_pings_answered: u64,
    /// USER_PINGs from the client that were answered.
    pub user_pings_answered: u64,
    /// CLOSE_REQUESTs received.
    pub close_requests: u64,
    /// ABORTs sent.
    pub aborts_sent: u64,
    /// Connections dropped by [`crate::Fault::DropAfter`].
    pub dropped_connections: u64,
    /// Connections stalled by [`crate::Fault::Stall`] or [`crate::Fault::NoResponse`].
    pub stalled_connections: u64,
    /// Connection responses replaced by [`crate::Fault::MalformedResponse`].
    pub malformed_responses: u64,
}
