//! Region gate: keeps client writes and the resync copy of the same region apart.
//!
//! A write holds its regions for as long as it is in flight; the resync copier closes one region at a time,
//! which makes new writes to it wait and then waits for the writes already in it to finish, so the region it
//! reads from an in-sync replica and writes to the returning one is not changed under it.
//!
//! Writes whose byte ranges overlap are also kept one at a time (crucible's job dependencies): NBD lets a
//! client have two overlapping writes in flight, and were they sent to the replicas at once, each replica could
//! apply them in another order and the mirror would hold two different results. Uses nothing else of this
//! crate.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

#[derive(Default)]
struct Inner {
    copying: HashSet<u64>,
    writers: HashMap<u64, u32>,
    /// Byte ranges [start, end) of the writes in flight, by id.
    ranges: HashMap<u64, (u64, u64)>,
    next_id: u64,
}

/// The regions being copied and the writes in each region.
#[derive(Default)]
pub struct RegionGate {
    inner: Mutex<Inner>,
    changed: Notify,
}

/// Regions a write holds; released on drop.
pub struct WriteGuard {
    gate: Arc<RegionGate>,
    first: u64,
    last: u64,
    id: u64,
}

impl RegionGate {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Enter regions `first..=last` for a write of bytes `start..end`, once none of the regions is being copied
    /// and no write in flight overlaps those bytes.
    pub async fn enter(self: &Arc<Self>, (first, last): (u64, u64), (start, end): (u64, u64)) -> WriteGuard {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut inner = self.lock();
                let copying = (first..=last).any(|r| inner.copying.contains(&r));
                let overlaps = inner.ranges.values().any(|&(s, e)| s < end && start < e);
                if !copying && !overlaps {
                    for r in first..=last {
                        *inner.writers.entry(r).or_insert(0) += 1;
                    }
                    let id = inner.next_id;
                    inner.next_id += 1;
                    inner.ranges.insert(id, (start, end));
                    return WriteGuard { gate: self.clone(), first, last, id };
                }
            }
            notified.await;
        }
    }

    /// Close region `r` for copying: new writes wait, and this returns once the writes in it have finished.
    pub async fn close(&self, r: u64) {
        self.lock().copying.insert(r);
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.lock().writers.get(&r).copied().unwrap_or(0) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Open region `r` again after its copy.
    pub fn open(&self, r: u64) {
        self.lock().copying.remove(&r);
        self.changed.notify_waiters();
    }
}

impl Drop for WriteGuard {
    fn drop(&mut self) {
        {
            let mut inner = self.gate.lock();
            inner.ranges.remove(&self.id);
            for r in self.first..=self.last {
                if let Some(n) = inner.writers.get_mut(&r) {
                    *n -= 1;
                    if *n == 0 {
                        inner.writers.remove(&r);
                    }
                }
            }
        }
        self.gate.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_copy_waits_for_writes_and_writes_wait_for_the_copy() {
        let gate = Arc::new(RegionGate::default());
        let w = gate.enter((2, 4), (2 << 20, 5 << 20)).await;
        let g = gate.clone();
        let copy = tokio::spawn(async move { g.close(3).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!copy.is_finished(), "the copy waits for the write in region 3");
        drop(w);
        tokio::time::timeout(Duration::from_secs(5), copy).await.unwrap().unwrap();
        let g = gate.clone();
        let write = tokio::spawn(async move { drop(g.enter((3, 3), (3 << 20, 4 << 20)).await) });
        let other =
            tokio::time::timeout(Duration::from_secs(5), gate.enter((4, 9), (4 << 20, 10 << 20))).await.unwrap();
        drop(other);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!write.is_finished(), "a write to the region being copied waits");
        gate.open(3);
        tokio::time::timeout(Duration::from_secs(5), write).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn overlapping_writes_go_one_at_a_time() {
        let gate = Arc::new(RegionGate::default());
        let first = gate.enter((0, 0), (0, 8192)).await;
        let beside = tokio::time::timeout(Duration::from_secs(5), gate.enter((0, 0), (8192, 12288))).await.unwrap();
        let g = gate.clone();
        let overlapping = tokio::spawn(async move { drop(g.enter((0, 0), (4096, 8193)).await) });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!overlapping.is_finished(), "an overlapping write waits");
        drop(first);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!overlapping.is_finished(), "and also for the write beside it that it touches by one byte");
        drop(beside);
        tokio::time::timeout(Duration::from_secs(5), overlapping).await.unwrap().unwrap();
    }
}
