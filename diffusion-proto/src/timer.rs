//! Deadlines in a table indexed by an enum, as quinn-proto keeps its connection timers: one
//! slot per kind, the next one found by scanning, and expired ones taken in the enum's order.

use std::time::Instant;

/// A kind of timer: an enum whose variants index a [`TimerTable`].
pub(crate) trait TimerKind: Copy + PartialEq + 'static {
    /// Every kind, in the order expired timers are handled when they fall due together.
    const ALL: &'static [Self];
    /// The slot of this kind: its position in `ALL`.
    fn index(self) -> usize;
}

/// One optional deadline per timer kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TimerTable<T, const N: usize> {
    slots: [Option<Instant>; N],
    kind: std::marker::PhantomData<T>,
}

impl<T: TimerKind, const N: usize> Default for TimerTable<T, N> {
    fn default() -> Self {
        TimerTable {
            slots: [None; N],
            kind: std::marker::PhantomData,
        }
    }
}

impl<T: TimerKind, const N: usize> TimerTable<T, N> {
    /// Arms `timer` for `deadline`, replacing what it was set to.
    pub(crate) fn set(&mut self, timer: T, deadline: Instant) {
        self.slots[timer.index()] = Some(deadline);
    }

    /// Disarms `timer`.
    pub(crate) fn stop(&mut self, timer: T) {
        self.slots[timer.index()] = None;
    }

    /// When `timer` falls due, if it is armed.
    pub(crate) fn get(&self, timer: T) -> Option<Instant> {
        self.slots[timer.index()]
    }

    /// Disarms every timer.
    pub(crate) fn stop_all(&mut self) {
        self.slots = [None; N];
    }

    /// The earliest deadline of all.
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        self.slots.iter().flatten().min().copied()
    }

    /// Disarms and returns the first timer, in [`TimerKind::ALL`] order, that is due at
    /// `now` and not one of `fired`. A caller handling every due timer passes those it has
    /// handled, so that each kind fires at most once per call, even when a handler re-arms it.
    pub(crate) fn take_expired(&mut self, now: Instant, fired: &[T]) -> Option<T> {
        let timer = T::ALL
            .iter()
            .copied()
            .find(|t| !fired.contains(t) && self.get(*t).is_some_and(|d| d <= now))?;
        self.stop(timer);
        Some(timer)
    }

    /// The armed timers and their deadlines, in [`TimerKind::ALL`] order.
    pub(crate) fn armed(&self) -> impl Iterator<Item = (T, Instant)> + '_ {
        T::ALL.iter().filter_map(|t| self.get(*t).map(|d| (*t, d)))
    }
}
