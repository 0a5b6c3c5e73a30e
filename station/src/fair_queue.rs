//! A bounded queue of per-source queues, drained round-robin: the station's defence against one source flooding
//! it with notifications.
//!
//! The receive task pushes every accepted notification into its source's queue; the store writer takes batches
//! one item per source in turn. A source whose queue is full loses its own new notifications (counted); the
//! others keep their share of every batch, and a total bound keeps memory flat however many sources there are.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

pub struct FairQueue<K, T> {
    queues: HashMap<K, VecDeque<T>>,
    /// Sources with queued items, in round-robin order.
    ring: VecDeque<K>,
    len: usize,
    per_source: usize,
    total: usize,
}

impl<K: Hash + Eq + Clone, T> FairQueue<K, T> {
    /// At most `per_source` items queued per source and `total` in all.
    pub fn new(per_source: usize, total: usize) -> Self {
        FairQueue { queues: HashMap::new(), ring: VecDeque::new(), len: 0, per_source: per_source.max(1), total }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queues `item` for `source`; gives it back when the source's queue or the whole queue is full.
    pub fn push(&mut self, source: K, item: T) -> Result<(), T> {
        if self.len >= self.total {
            return Err(item);
        }
        let queue = self.queues.entry(source.clone()).or_default();
        if queue.len() >= self.per_source {
            return Err(item);
        }
        if queue.is_empty() {
            self.ring.push_back(source);
        }
        queue.push_back(item);
        self.len += 1;
        Ok(())
    }

    /// Moves up to `max` items into `out`, one per source in turn.
    pub fn take(&mut self, max: usize, out: &mut Vec<T>) {
        let mut taken = 0;
        while taken < max {
            let Some(source) = self.ring.pop_front() else { break };
            let Some(queue) = self.queues.get_mut(&source) else { continue };
            if let Some(item) = queue.pop_front() {
                out.push(item);
                taken += 1;
                self.len -= 1;
            }
            if queue.is_empty() {
                // Drop empty queues so that a stream of one-off sources does not grow the map.
                self.queues.remove(&source);
            } else {
                self.ring.push_back(source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flooding_source_only_loses_its_own_items() {
        let mut q = FairQueue::new(3, 10);
        for i in 0..10 {
            let r = q.push("flood", i);
            assert_eq!(r.is_ok(), i < 3);
        }
        q.push("quiet", 100).unwrap();
        q.push("quiet", 101).unwrap();
        let mut out = Vec::new();
        q.take(3, &mut out);
        assert_eq!(out, [0, 100, 1]);
        q.take(10, &mut out);
        assert_eq!(out, [0, 100, 1, 101, 2]);
        assert!(q.is_empty());
        assert!(q.queues.is_empty());
    }

    #[test]
    fn the_total_bound_holds() {
        let mut q = FairQueue::new(100, 5);
        for source in 0..10 {
            let _ = q.push(source, source);
        }
        assert_eq!(q.len(), 5);
        let mut out = Vec::new();
        q.take(100, &mut out);
        assert_eq!(out, [0, 1, 2, 3, 4]);
    }
}
