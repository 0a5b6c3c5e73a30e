//! Per-second rates from successive samples of Counter64 counters.
//!
//! Each traffic row is keyed by (unit, export, host); a rate needs two samples of the same key. A counter that
//! goes backwards (the unit restarted, or the row was replaced) starts over from the new sample instead of
//! producing a huge or negative rate.

use crate::model::Rates;
use std::collections::HashMap;
use std::time::Instant;

/// One sample of a traffic row's counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Counters {
    pub reads: u64,
    pub writes: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
}

/// Remembers the last sample of every key and turns new samples into rates.
#[derive(Debug, Default)]
pub struct RateTracker {
    last: HashMap<(u32, String, String), (Counters, Instant)>,
}

impl RateTracker {
    /// Records `counters` for `key` taken at `at`; returns the rates since the previous sample of `key`.
    pub fn sample(&mut self, key: (u32, String, String), counters: Counters, at: Instant) -> Option<Rates> {
        let previous = self.last.insert(key, (counters, at));
        let (before, then) = previous?;
        let seconds = at.checked_duration_since(then)?.as_secs_f64();
        if seconds <= 0.0 {
            return None;
        }
        let delta = |now: u64, before: u64| now.checked_sub(before).map(|d| d as f64 / seconds);
        Some(Rates {
            reads: delta(counters.reads, before.reads)?,
            writes: delta(counters.writes, before.writes)?,
            bytes_read: delta(counters.bytes_read, before.bytes_read)?,
            bytes_written: delta(counters.bytes_written, before.bytes_written)?,
        })
    }

    /// Forgets keys not in `keep` (rows that went away), so the map stays as large as the pool.
    pub fn retain(&mut self, keep: &[(u32, String, String)]) {
        // A set: with thousands of units a linear search per row would make this quadratic.
        let keep: std::collections::HashSet<&(u32, String, String)> = keep.iter().collect();
        self.last.retain(|key, _| keep.contains(key));
    }

    pub fn len(&self) -> usize {
        self.last.len()
    }

    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn key() -> (u32, String, String) {
        (1, "vol1".into(), "127.0.0.9".into())
    }

    #[test]
    fn rates_need_two_samples_and_divide_by_elapsed_time() {
        let mut tracker = RateTracker::default();
        let t0 = Instant::now();
        let c0 = Counters { reads: 100, writes: 10, bytes_read: 4096, bytes_written: 0 };
        assert_eq!(tracker.sample(key(), c0, t0), None);
        let c1 = Counters { reads: 300, writes: 10, bytes_read: 4096 + 8192, bytes_written: 1024 };
        let rates = tracker.sample(key(), c1, t0 + Duration::from_secs(2)).unwrap();
        assert_eq!(rates, Rates { reads: 100.0, writes: 0.0, bytes_read: 4096.0, bytes_written: 512.0 });
    }

    #[test]
    fn a_counter_going_backwards_starts_over() {
        let mut tracker = RateTracker::default();
        let t0 = Instant::now();
        tracker.sample(key(), Counters { reads: 1000, ..Default::default() }, t0);
        let after_restart = Counters { reads: 5, ..Default::default() };
        assert_eq!(tracker.sample(key(), after_restart, t0 + Duration::from_secs(1)), None);
        let rates = tracker.sample(key(), Counters { reads: 15, ..Default::default() }, t0 + Duration::from_secs(2));
        assert_eq!(rates.unwrap().reads, 10.0);
        // The same instant twice gives no rate rather than a division by zero.
        let at = t0 + Duration::from_secs(2);
        assert_eq!(tracker.sample(key(), Counters { reads: 20, ..Default::default() }, at), None);
    }

    #[test]
    fn retain_forgets_rows_that_went_away() {
        let mut tracker = RateTracker::default();
        let now = Instant::now();
        tracker.sample(key(), Counters::default(), now);
        tracker.sample((2, "x".into(), "h".into()), Counters::default(), now);
        tracker.retain(&[key()]);
        assert_eq!(tracker.len(), 1);
    }
}
