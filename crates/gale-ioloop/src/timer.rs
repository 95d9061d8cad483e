//! The timer queue: deadlines on the monotonic clock, FIFO among equal deadlines, O(log n) schedule and cancel.
//!
//! Timers live in a `BTreeMap` keyed by `(deadline, sequence)`. The sequence number makes every key unique and
//! keeps timers with equal deadlines in the order they were scheduled; it is also what a [`TimeoutHandle`]
//! carries, so cancellation is a map removal and leaves nothing behind (no tombstones to compact, unlike
//! Tornado's heap).

use std::collections::BTreeMap;
use std::time::Instant;

/// Identifies a scheduled timer; pass it to [`IOLoop::remove_timeout`](crate::IOLoop::remove_timeout).
///
/// Removing a timer that already ran or was already removed does nothing.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimeoutHandle {
    pub(crate) deadline: Instant,
    pub(crate) seq: u64,
}

impl TimeoutHandle {
    /// When the timer is due.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }
}

/// Timers keyed by deadline then sequence.
pub(crate) struct Timers<T> {
    map: BTreeMap<(Instant, u64), T>,
    next_seq: u64,
    /// No deadline in `map` is earlier than this (`None`: the map is empty), so that an iteration with no due
    /// timer asks one compare of it and never walks the tree. Exact unless `stale`: removing the earliest timer
    /// only marks it so, and [`Timers::earliest`] works it out again once, not after each of a run of removals.
    /// it and never walks the tree.
    earliest: Option<Instant>,
    stale: bool,
}

impl<T> Timers<T> {
    pub(crate) fn new() -> Self {
        Timers { map: BTreeMap::new(), next_seq: 0, earliest: None, stale: false }
    }

    pub(crate) fn insert(&mut self, deadline: Instant, value: T) -> TimeoutHandle {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.map.insert((deadline, seq), value);
        if self.earliest.is_none_or(|e| deadline < e) {
            self.earliest = Some(deadline);
        }
        TimeoutHandle { deadline, seq }
    }

    pub(crate) fn remove(&mut self, handle: TimeoutHandle) -> Option<T> {
        let removed = self.map.remove(&(handle.deadline, handle.seq));
        // Only removing a timer at the earliest deadline can move it; the old value stays a lower bound.
        if removed.is_some() && self.earliest == Some(handle.deadline) {
            self.stale = true;
        }
        removed
    }

    /// The earliest deadline, if any timer is scheduled.
    #[inline]
    pub(crate) fn earliest(&mut self) -> Option<Instant> {
        if self.stale {
            self.refresh();
        }
        self.earliest
    }

    #[cold]
    #[inline(never)]
    fn refresh(&mut self) {
        self.stale = false;
        self.earliest = self.map.first_key_value().map(|((deadline, _), _)| *deadline);
    }

    /// Collects the handles of every timer due at `now`, in firing order. The timers stay in the map until
    /// each is taken with [`Timers::remove`], so one due timer can still cancel another.
    pub(crate) fn due(&self, now: Instant, due: &mut Vec<TimeoutHandle>) {
        if self.earliest.is_none_or(|e| e > now) {
            return;
        }
        for &(deadline, seq) in self.map.keys() {
            if deadline > now {
                break;
            }
            due.push(TimeoutHandle { deadline, seq });
        }
    }

    /// Time from `now` until the next deadline, zero if one is already due.
    #[cfg(test)]
    pub(crate) fn next_delay(&mut self, now: Instant) -> Option<std::time::Duration> {
        self.earliest().map(|deadline| deadline.saturating_duration_since(now))
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn clear(&mut self) -> Vec<T> {
        self.earliest = None;
        self.stale = false;
        std::mem::take(&mut self.map).into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn equal_deadlines_fire_in_scheduling_order() {
        let mut t = Timers::new();
        let now = Instant::now();
        for i in 0..5 {
            t.insert(now, i);
        }
        let mut due = Vec::new();
        t.due(now, &mut due);
        let fired: Vec<_> = due.into_iter().filter_map(|h| t.remove(h)).collect();
        assert_eq!(fired, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn cancelling_the_next_due_timer_moves_the_deadline() {
        let mut t = Timers::new();
        let now = Instant::now();
        let a = t.insert(now + Duration::from_secs(1), 'a');
        t.insert(now + Duration::from_secs(2), 'b');
        assert_eq!(t.next_delay(now), Some(Duration::from_secs(1)));
        assert_eq!(t.remove(a), Some('a'));
        assert_eq!(t.remove(a), None);
        assert_eq!(t.next_delay(now), Some(Duration::from_secs(2)));
    }

    #[test]
    fn the_earliest_deadline_follows_inserts_and_removals() {
        let mut t = Timers::new();
        let now = Instant::now();
        assert_eq!(t.earliest(), None);
        let b = t.insert(now + Duration::from_secs(2), 'b');
        let a = t.insert(now + Duration::from_secs(1), 'a');
        let a2 = t.insert(now + Duration::from_secs(1), 'A');
        let c = t.insert(now + Duration::from_secs(3), 'c');
        assert_eq!(t.earliest(), Some(a.deadline()));
        t.remove(c);
        t.remove(a);
        assert_eq!(t.earliest(), Some(a2.deadline()), "another timer shares the deadline");
        t.remove(a2);
        assert_eq!(t.earliest(), Some(b.deadline()));
        let mut due = Vec::new();
        t.due(now + Duration::from_millis(1500), &mut due);
        assert!(due.is_empty());
        t.remove(b);
        assert_eq!(t.earliest(), None);
        t.insert(now, 'd');
        assert_eq!(t.earliest(), Some(now));
        t.clear();
        assert_eq!(t.earliest(), None);
    }

    #[test]
    fn only_due_timers_are_taken() {
        let mut t = Timers::new();
        let now = Instant::now();
        t.insert(now + Duration::from_millis(5), 1);
        t.insert(now - Duration::from_millis(5), 0);
        let mut due = Vec::new();
        t.due(now, &mut due);
        assert_eq!(due.len(), 1);
        assert_eq!(t.remove(due[0]), Some(0));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn schedule_then_cancel_leaves_nothing_behind() {
        let mut t = Timers::new();
        let now = Instant::now();
        for i in 0..100_000u32 {
            let h = t.insert(now + Duration::from_micros(u64::from(i % 977)), i);
            t.remove(h);
        }
        assert_eq!(t.len(), 0);
        assert_eq!(t.next_delay(now), None);
    }
}
