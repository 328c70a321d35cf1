//! How a client reconnects after losing its connection: the overall timeout (sent as `r`)
//! and the application's strategy that picks the delay before each attempt, or gives up.

use std::sync::Arc;
use std::time::Duration;

/// What to do before the next reconnection attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReconnectAction {
    /// Try again after this delay.
    RetryAfter(Duration),
    /// Give up: the session ends CLOSED_BY_SERVER.
    Abort,
}

/// Chooses when to try reconnecting. Called once before each attempt.
pub trait ReconnectStrategy: Send + Sync {
    /// `attempt` counts from 1 for the first attempt after a loss; `elapsed` is the time
    /// since the connection was lost.
    fn next_attempt(&self, attempt: u32, elapsed: Duration) -> ReconnectAction;
}

impl<F> ReconnectStrategy for F
where
    F: Fn(u32, Duration) -> ReconnectAction + Send + Sync,
{
    fn next_attempt(&self, attempt: u32, elapsed: Duration) -> ReconnectAction {
        self(attempt, elapsed)
    }
}

/// The default strategy: the first attempt at once, then a delay that doubles from
/// `initial` up to `max`. A lost connection on a healthy network comes back on the first
/// try; a server that is down is not hammered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay before the second attempt.
    pub initial: Duration,
    /// Largest delay between attempts.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(5),
        }
    }
}

impl ReconnectStrategy for Backoff {
    fn next_attempt(&self, attempt: u32, _elapsed: Duration) -> ReconnectAction {
        if attempt <= 1 {
            return ReconnectAction::RetryAfter(Duration::ZERO);
        }
        let factor = 1u32.checked_shl(attempt - 2).unwrap_or(u32::MAX);
        ReconnectAction::RetryAfter(self.initial.saturating_mul(factor).min(self.max))
    }
}

/// A fixed delay before every attempt (the JavaScript client's default is 5 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedDelay(pub Duration);

impl ReconnectStrategy for FixedDelay {
    fn next_attempt(&self, _attempt: u32, _elapsed: Duration) -> ReconnectAction {
        ReconnectAction::RetryAfter(self.0)
    }
}

/// Reconnection settings.
#[derive(Clone)]
pub struct ReconnectConfig {
    /// How long after a loss the client keeps trying; sent to the server as `r`, which
    /// keeps the session that long.
    pub timeout: Duration,
    /// When to attempt.
    pub strategy: Arc<dyn ReconnectStrategy>,
}

impl Default for ReconnectConfig {
    /// 60 s, as both official clients, with [`Backoff::default`].
    fn default() -> Self {
        ReconnectConfig {
            timeout: Duration::from_secs(60),
            strategy: Arc::new(Backoff::default()),
        }
    }
}

impl std::fmt::Debug for ReconnectConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReconnectConfig")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_starts_at_once_then_doubles_to_the_cap() {
        let b = Backoff::default();
        let delays: Vec<_> = (1..=8)
            .map(|a| match b.next_attempt(a, Duration::ZERO) {
                ReconnectAction::RetryAfter(d) => d.as_millis(),
                ReconnectAction::Abort => u128::MAX,
            })
            .collect();
        assert_eq!(delays, [0, 250, 500, 1000, 2000, 4000, 5000, 5000]);
        assert_eq!(
            b.next_attempt(200, Duration::ZERO),
            ReconnectAction::RetryAfter(b.max)
        );
    }
}
