//! The station's own counters: what it received, stored, dropped and forwarded, and how its walks and polls went.
//!
//! Shared by the receive path, the coordinator and the forwarder; served by the station MIB
//! (dvsanStationStats) and logged at shutdown. Relaxed atomics: each counter is independent.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct StationCounters {
    /// Notifications accepted (right community) by the receive task.
    pub accepted: AtomicU64,
    /// Notifications committed to the store.
    pub stored: AtomicU64,
    /// Pruned from the store to keep it within `--keep-notifications` (NOTIFICATION-LOG-MIB's "bumped").
    pub pruned: AtomicU64,
    /// Dropped: the community is not one the station accepts.
    pub bad_community: AtomicU64,
    /// Dropped: not decodable, or SNMP but not a notification.
    pub parse_errors: AtomicU64,
    /// Dropped: the source's queue (or the whole queue) was full.
    pub overflow_drops: AtomicU64,
    /// Lost: the store refused a batch (informs of that batch are not acknowledged).
    pub store_errors: AtomicU64,
    /// Inform acknowledgements sent (after commit).
    pub acks: AtomicU64,
    /// Notifications sent on to `--forward` sinks (received ones and the station's own).
    pub forwarded: AtomicU64,
    /// Not forwarded: the forwarding queue was full, or an inform to a sink was never acknowledged.
    pub forward_failures: AtomicU64,
    /// Claims on a pool unit's identity refused (another address, without the unit's credentials).
    pub identity_refusals: AtomicU64,
    /// Notifications from units the station does not trust (recorded as pending, or rejected before).
    pub untrusted: AtomicU64,
    pub walks: AtomicU64,
    pub walk_failures: AtomicU64,
    pub polls: AtomicU64,
    pub poll_failures: AtomicU64,
}

impl StationCounters {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// One line for logs.
    pub fn summary(&self) -> String {
        let g = Self::get;
        format!(
            "accepted={} stored={} bad_community={} parse_errors={} overflow_drops={} store_errors={} acks={} \
             forwarded={} forward_failures={} identity_refusals={} untrusted={} walks={} walk_failures={} polls={} poll_failures={}",
            g(&self.accepted),
            g(&self.stored),
            g(&self.bad_community),
            g(&self.parse_errors),
            g(&self.overflow_drops),
            g(&self.store_errors),
            g(&self.acks),
            g(&self.forwarded),
            g(&self.forward_failures),
            g(&self.identity_refusals),
            g(&self.untrusted),
            g(&self.walks),
            g(&self.walk_failures),
            g(&self.polls),
            g(&self.poll_failures),
        )
    }
}
