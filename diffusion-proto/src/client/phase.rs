//! What a client session is doing, as data: the phase with what only it has, the timers it
//! may have armed, and the [`SessionState`] derived from it.

use std::time::Instant;

use crate::state::{CloseReason, SessionState};
use crate::timer::TimerKind;

/// Whether a connection attempt is under way while the session has no open connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// No transport: the next attempt waits for [`Timer::Retry`].
    Waiting,
    /// A transport was asked for; its connection response must come before
    /// [`Timer::Handshake`].
    Opening,
}

/// The phase of a client session, with the data only that phase has. Internal: read it
/// through [`crate::internal`] in tests; applications see the [`SessionState`] it maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Opening the first connection: `attempt` counts the tries so far (from 1).
    Connecting {
        /// Tries started.
        attempt: u32,
        /// What the current try is doing.
        link: Attempt,
    },
    /// Connected; requests flow. [`Timer::Idle`] runs while the server's pings are due.
    Active,
    /// The application closed: CLOSE_REQUEST was sent, and [`Timer::Close`] bounds the
    /// wait for ABORT or the transport's end. Still CONNECTED_ACTIVE.
    Closing,
    /// The connection was lost; reconnecting to the same session until [`Timer::Reconnect`].
    Recovering {
        /// When the connection was lost.
        lost_at: Instant,
        /// Attempts scheduled since.
        attempts: u32,
        /// What the current attempt is doing.
        link: Attempt,
    },
    /// Closed for good.
    Closed {
        /// CLOSED_BY_CLIENT, CLOSED_BY_SERVER or CLOSED_FAILED.
        state: SessionState,
        /// Why.
        reason: CloseReason,
    },
}

impl Phase {
    /// The state of SPEC §11.3 this phase is.
    pub fn state(&self) -> SessionState {
        match self {
            Phase::Connecting { .. } => SessionState::Connecting,
            Phase::Active | Phase::Closing => SessionState::ConnectedActive,
            Phase::Recovering { .. } => SessionState::RecoveringReconnect,
            Phase::Closed { state, .. } => *state,
        }
    }

    /// True while a transport is open or being opened.
    pub(crate) fn has_link(&self) -> bool {
        matches!(
            self,
            Phase::Active
                | Phase::Closing
                | Phase::Connecting {
                    link: Attempt::Opening,
                    ..
                }
                | Phase::Recovering {
                    link: Attempt::Opening,
                    ..
                }
        )
    }

    /// True while the connection response is awaited.
    pub(crate) fn is_handshaking(&self) -> bool {
        matches!(
            self,
            Phase::Connecting {
                link: Attempt::Opening,
                ..
            } | Phase::Recovering {
                link: Attempt::Opening,
                ..
            }
        )
    }

    /// The attempt of a connecting or recovering session.
    pub(crate) fn attempt_mut(&mut self) -> Option<&mut Attempt> {
        match self {
            Phase::Connecting { link, .. } | Phase::Recovering { link, .. } => Some(link),
            _ => None,
        }
    }
}

/// A client session's timers. When several fall due at the same instant they fire in this
/// order (each at most once per `handle_timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// No connection response within the connection timeout.
    Handshake,
    /// No SYSTEM_PING within twice the server's ping period.
    Idle,
    /// The close timeout after the application closed.
    Close,
    /// The reconnection timeout `r` since the connection was lost.
    Reconnect,
    /// The next connection attempt.
    Retry,
}

impl TimerKind for Timer {
    const ALL: &'static [Timer] = &[
        Timer::Handshake,
        Timer::Idle,
        Timer::Close,
        Timer::Reconnect,
        Timer::Retry,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// One slot per [`Timer`].
pub(crate) type Timers = crate::timer::TimerTable<Timer, 5>;
