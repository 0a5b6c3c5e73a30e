//! The write-intent log (DRBD's activity log idea): before a write goes out to the replicas its regions are
//! marked in a file (`STATE_DIR/VOLUME.intent`, the dirty bitmap's format), so after a host crash the front
//! knows which regions may differ between replicas (a write that reached one and not the other) and makes them
//! identical before serving again.
//!
//! Marking is batched two ways so it does not double the write latency: a region stays marked while it is hot
//! (written in the last second or with writes in flight), so a stream of writes to the same regions costs no
//! file write; and writes that need new marks at the same moment share one file write (group commit). Cold
//! regions are unmarked by [`IntentLog::expire`], called periodically. Builds on [`crate::dirty`].

use crate::dirty::{DirtyError, DirtyMap};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a region stays marked after its last write finished.
const HOT_FOR: Duration = Duration::from_secs(1);

struct Inner {
    map: DirtyMap,
    /// Writes in flight per region, and when the last one ended.
    in_flight: HashMap<u64, u32>,
    last_write: HashMap<u64, Instant>,
    /// Bumped by every change of `map`; `saved` is the last one on disk.
    version: u64,
    saved: u64,
}

/// The write-intent log of one volume.
pub struct IntentLog {
    inner: Mutex<Inner>,
    /// Held while the file is written (the group commit: one writer saves for all who are waiting).
    save: tokio::sync::Mutex<()>,
}

/// Regions a write holds marked; released on drop.
pub struct IntentGuard {
    log: Arc<IntentLog>,
    first: u64,
    last: u64,
}

impl IntentLog {
    /// The log at `path` (the regions it holds are what a crash left: [`IntentLog::marked`]).
    pub fn load(path: PathBuf, region_size: u64, size: u64) -> Result<IntentLog, DirtyError> {
        let map = DirtyMap::load(path, region_size, size)?;
        let inner = Inner { map, in_flight: HashMap::new(), last_write: HashMap::new(), version: 0, saved: 0 };
        Ok(IntentLog { inner: Mutex::new(inner), save: tokio::sync::Mutex::new(()) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Regions marked now.
    pub fn marked(&self) -> Vec<u64> {
        let inner = self.lock();
        let mut out = Vec::new();
        let mut from = 0;
        while let Some(r) = inner.map.next_set(from) {
            out.push(r);
            from = r + 1;
        }
        out
    }

    /// Writes in flight (holding marks).
    pub fn writes_in_flight(&self) -> usize {
        self.lock().in_flight.len()
    }

    /// Unmark everything (after recovery, or at a clean stop with no write in flight) and save. A write that
    /// enters afterwards marks its regions again before it goes out.
    pub fn clear(&self) -> Result<(), DirtyError> {
        let mut inner = self.lock();
        for r in self.marked_locked(&inner) {
            inner.map.clear(r);
        }
        inner.map.save()
    }

    fn marked_locked(&self, inner: &Inner) -> Vec<u64> {
        let mut out = Vec::new();
        let mut from = 0;
        while let Some(r) = inner.map.next_set(from) {
            out.push(r);
            from = r + 1;
        }
        out
    }

    /// Mark regions `first..=last` for a write and return once the marks are on disk.
    pub async fn enter(self: &Arc<Self>, first: u64, last: u64) -> Result<IntentGuard, DirtyError> {
        let wanted = {
            let mut inner = self.lock();
            for r in first..=last {
                *inner.in_flight.entry(r).or_insert(0) += 1;
            }
            if inner.map.set(first, last) {
                inner.version += 1;
            }
            inner.version
        };
        let guard = IntentGuard { log: self.clone(), first, last };
        self.save_up_to(wanted).await?;
        Ok(guard)
    }

    /// Make sure the file holds version `wanted` or later.
    async fn save_up_to(&self, wanted: u64) -> Result<(), DirtyError> {
        if self.lock().saved >= wanted {
            return Ok(());
        }
        let _one_writer = self.save.lock().await;
        let (snapshot, version) = {
            let inner = self.lock();
            if inner.saved >= wanted {
                return Ok(());
            }
            (inner.map.clone(), inner.version)
        };
        let path = snapshot.path().unwrap_or_default();
        let saved = tokio::task::spawn_blocking(move || snapshot.save()).await;
        match saved {
            Ok(Ok(())) => {
                let mut inner = self.lock();
                inner.saved = inner.saved.max(version);
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            // The save did not run to its end (it panicked, or the runtime is stopping): the marks are not known
            // to be on disk, so the write must not go out.
            Err(e) => Err(DirtyError::Io { path, source: std::io::Error::other(e.to_string()) }),
        }
    }

    /// Unmark regions that are cold (nothing in flight, last write over a second ago) and save when any was.
    pub async fn expire(&self) -> Result<(), DirtyError> {
        let wanted = {
            let mut inner = self.lock();
            let now = Instant::now();
            let cold: Vec<u64> = self
                .marked_locked(&inner)
                .into_iter()
                .filter(|r| !inner.in_flight.contains_key(r))
                .filter(|r| inner.last_write.get(r).is_none_or(|t| now.duration_since(*t) >= HOT_FOR))
                .collect();
            if cold.is_empty() {
                return Ok(());
            }
            for r in cold {
                inner.map.clear(r);
                inner.last_write.remove(&r);
            }
            inner.version += 1;
            inner.version
        };
        self.save_up_to(wanted).await
    }
}

impl Drop for IntentGuard {
    fn drop(&mut self) {
        let mut inner = self.log.lock();
        let now = Instant::now();
        for r in self.first..=self.last {
            if let Some(n) = inner.in_flight.get_mut(&r) {
                *n -= 1;
                if *n == 0 {
                    inner.in_flight.remove(&r);
                }
            }
            inner.last_write.insert(r, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn marks_before_the_write_and_unmarks_when_cold() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.intent");
        let log = Arc::new(IntentLog::load(path.clone(), 1 << 20, 8 << 20).unwrap());
        let g = log.enter(1, 2).await.unwrap();
        let on_disk = DirtyMap::load(path.clone(), 1 << 20, 8 << 20).unwrap();
        assert_eq!((on_disk.count(), on_disk.next_set(0)), (2, Some(1)), "marked on disk before the write goes");
        log.expire().await.unwrap();
        assert_eq!(log.marked(), vec![1, 2], "in flight: stays marked");
        drop(g);
        log.expire().await.unwrap();
        assert_eq!(log.marked(), vec![1, 2], "hot: stays marked");
        log.lock().last_write.values_mut().for_each(|t| *t -= HOT_FOR);
        log.expire().await.unwrap();
        assert!(log.marked().is_empty());
        assert!(!path.exists(), "nothing marked, no file");
        // A crash leaves the marks for the next start.
        drop(log.enter(5, 5).await.unwrap());
        let after_crash = IntentLog::load(path, 1 << 20, 8 << 20).unwrap();
        assert_eq!(after_crash.marked(), vec![5]);
    }
}
