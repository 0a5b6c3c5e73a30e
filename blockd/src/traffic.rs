//! Per (export, host) I/O counters: atomics on the data path, saved to the unit store about once a second.
//!
//! Connections of the same host to the same export share one [`TrafficCounters`]; the data path adds a whole
//! batch of requests at a time, so the atomics cost a handful of operations per socket read, not per request.
//! Totals continue from what the store held when blockd started.

use dvsan_layout::TrafficRecord;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

#[derive(Debug, Default)]
pub struct TrafficCounters {
    pub reads: AtomicU64,
    pub writes: AtomicU64,
    pub bytes_read: AtomicU64,
    pub bytes_written: AtomicU64,
    pub latency_us: AtomicU64,
}

/// Counts gathered over one batch of requests, added to the shared counters at once.
#[derive(Debug, Default, Clone, Copy)]
pub struct BatchTraffic {
    pub reads: u64,
    pub writes: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
}

impl BatchTraffic {
    pub fn requests(&self) -> u64 {
        self.reads + self.writes
    }
}

impl TrafficCounters {
    /// Add a batch whose requests each waited `latency_us` from arrival to reply.
    pub fn add(&self, batch: &BatchTraffic, latency_us: u64) {
        if batch.requests() == 0 {
            return;
        }
        self.reads.fetch_add(batch.reads, Ordering::Relaxed);
        self.writes.fetch_add(batch.writes, Ordering::Relaxed);
        self.bytes_read.fetch_add(batch.bytes_read, Ordering::Relaxed);
        self.bytes_written.fetch_add(batch.bytes_written, Ordering::Relaxed);
        self.latency_us.fetch_add(latency_us.saturating_mul(batch.requests()), Ordering::Relaxed);
    }
}

/// All counters, by (export name, host).
#[derive(Debug, Default)]
pub struct TrafficTable {
    by_pair: Mutex<HashMap<(String, IpAddr), Arc<TrafficCounters>>>,
}

impl TrafficTable {
    /// Start from the totals saved in the store.
    pub fn from_records(records: &[TrafficRecord]) -> TrafficTable {
        let map = records
            .iter()
            .map(|r| {
                let c = TrafficCounters {
                    reads: AtomicU64::new(r.reads),
                    writes: AtomicU64::new(r.writes),
                    bytes_read: AtomicU64::new(r.bytes_read),
                    bytes_written: AtomicU64::new(r.bytes_written),
                    latency_us: AtomicU64::new(r.latency_us),
                };
                ((r.export_name.clone(), r.host), Arc::new(c))
            })
            .collect();
        TrafficTable { by_pair: Mutex::new(map) }
    }

    /// The counters of a pair, created at zero on first use.
    pub fn counters(&self, export: &str, host: IpAddr) -> Arc<TrafficCounters> {
        let mut map = self.by_pair.lock().unwrap_or_else(PoisonError::into_inner);
        map.entry((export.to_string(), host)).or_default().clone()
    }

    /// Forget pairs of exports that no longer exist (the store drops their rows when an export is destroyed).
    pub fn retain_exports<'a>(&self, names: impl Iterator<Item = &'a str>) {
        let keep: std::collections::HashSet<&str> = names.collect();
        let mut map = self.by_pair.lock().unwrap_or_else(PoisonError::into_inner);
        map.retain(|(export, _), _| keep.contains(export.as_str()));
    }

    /// Absolute totals of every pair, for `LayoutStore::save_traffic`.
    pub fn snapshot(&self) -> Vec<TrafficRecord> {
        let map = self.by_pair.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out: Vec<TrafficRecord> = map
            .iter()
            .map(|((export, host), c)| TrafficRecord {
                index: 0,
                export_name: export.clone(),
                host: *host,
                reads: c.reads.load(Ordering::Relaxed),
                writes: c.writes.load(Ordering::Relaxed),
                bytes_read: c.bytes_read.load(Ordering::Relaxed),
                bytes_written: c.bytes_written.load(Ordering::Relaxed),
                latency_us: c.latency_us.load(Ordering::Relaxed),
            })
            .collect();
        out.sort_by(|a, b| (&a.export_name, a.host).cmp(&(&b.export_name, b.host)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_continue_from_records_and_add_batches() {
        let host: IpAddr = "127.0.0.2".parse().unwrap();
        let rec = TrafficRecord {
            index: 3,
            export_name: "vol1".into(),
            host,
            reads: 10,
            writes: 1,
            bytes_read: 100,
            bytes_written: 10,
            latency_us: 5,
        };
        let t = TrafficTable::from_records(std::slice::from_ref(&rec));
        t.counters("vol1", host).add(&BatchTraffic { reads: 2, writes: 1, bytes_read: 8, bytes_written: 4 }, 7);
        let snap = t.snapshot();
        assert_eq!(snap.len(), 1);
        assert_eq!(
            (snap[0].reads, snap[0].writes, snap[0].bytes_read, snap[0].bytes_written, snap[0].latency_us),
            (12, 2, 108, 14, 5 + 21)
        );
        t.retain_exports(["other"].into_iter());
        assert!(t.snapshot().is_empty());
    }
}
