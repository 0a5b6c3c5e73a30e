//! The host front's reports to the station: `dvsan-host serve` of a mirrored volume resolved through the station
//! tells it each replica's state, dirty bytes and resync progress ([`crate::replicas::report`], a SET of the
//! volume's dvsanStationFrontTable rows, which the station also takes as the front's heartbeat), every
//! `--report-every` and at once when a replica's state changes. A replica whose unit has not answered for longer
//! than the reconnect window is reported failed.
//!
//! The state comes from the front's own model (`dvsan_front::Mirror::status`, woken by
//! `dvsan_front::Mirror::subscribe`), not from its status file. Reporting runs on a task of its own and never
//! touches the data path: a report that fails (the station down, slow or refusing) is given up after
//! [`REPORT_LIMIT`], logged at a bounded rate, and tried again at the next period or change.

use crate::replicas::{self, ReplicaReport};
use crate::Session;
use dvsan_front::{Mirror, ReplicaState, ReplicaStatus};
use dvsan_mib as mib;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The longest one report may take (the replica table read and the SET, with their retries).
pub const REPORT_LIMIT: Duration = Duration::from_secs(10);

/// While reports keep failing, one warning per this long.
const FAILURE_LOG_EVERY: Duration = Duration::from_secs(60);

/// Reports one mirrored volume's replicas to the station.
pub struct Reporter {
    pub session: Arc<Session>,
    /// dvsanStationMirrorIndex of the volume.
    pub mirror_index: u32,
    /// Each replica's number (dvsanStationReplicaIndex), in the front's replica order.
    pub replica_numbers: Vec<u32>,
    pub every: Duration,
}

/// The MIB's dvsanStationFrontReplicaState for a replica: failed when its unit has not answered for longer than
/// the reconnect window (also one no write has missed yet), else the front's state.
fn state_code(r: &ReplicaStatus) -> i32 {
    use mib::dvsan_station_front_replica_state as s;
    match r.state {
        _ if r.unreachable => s::FAILED,
        ReplicaState::InSync => s::IN_SYNC,
        ReplicaState::OutOfSync => s::OUT_OF_SYNC,
        ReplicaState::Resyncing => s::RESYNCING,
    }
}

/// The reports for the front's `status`, numbered by `numbers`: the resync percentage is that of a resync under
/// way, 100 for a replica in sync and 0 for one out of sync or failed.
pub fn reports(status: &[ReplicaStatus], numbers: &[u32]) -> Vec<ReplicaReport> {
    status
        .iter()
        .zip(numbers)
        .map(|(r, &replica)| ReplicaReport {
            replica,
            state: state_code(r),
            dirty_bytes: r.dirty_bytes,
            resync_percent: match r.state {
                _ if r.unreachable => 0,
                ReplicaState::InSync => 100,
                ReplicaState::OutOfSync => 0,
                ReplicaState::Resyncing => r.resync_percent().min(99),
            },
        })
        .collect()
}

/// Bounded logging of failed reports: the first failure at once, then one line per [`FAILURE_LOG_EVERY`] saying
/// how many failed since; the first success after failures says so.
#[derive(Default)]
struct FailureLog {
    failing_since: Option<Instant>,
    last_logged: Option<Instant>,
    failed: u64,
}

impl FailureLog {
    fn failed(&mut self, now: Instant, why: &str) {
        self.failed += 1;
        self.failing_since.get_or_insert(now);
        if self.last_logged.is_none_or(|at| now.duration_since(at) >= FAILURE_LOG_EVERY) {
            tracing::warn!(failed = self.failed, reason = why, "reporting to the station failed (I/O goes on)");
            self.last_logged = Some(now);
        }
    }

    fn succeeded(&mut self, now: Instant) {
        if let Some(since) = self.failing_since.take() {
            tracing::info!(
                failed = self.failed,
                secs = now.duration_since(since).as_secs(),
                "reports reach the station again"
            );
        }
        self.failed = 0;
        self.last_logged = None;
    }
}

impl Reporter {
    /// Report now, then every `every` and at once on each change of a replica's state, until the process ends.
    pub async fn run(self, mirror: Arc<Mirror>) {
        let mut changes = mirror.subscribe();
        let volume = format!("mirror{}", self.mirror_index);
        let mut log = FailureLog::default();
        // The states (dvsanStationFrontReplicaState) last reported.
        let mut reported: Option<Vec<i32>> = None;
        let mut next = Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                changed = changes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    // Dirty regions and resync progress wait for the period; a state change goes now.
                    let states: Vec<i32> = mirror.status().iter().map(state_code).collect();
                    if reported.as_ref() == Some(&states) {
                        continue;
                    }
                }
            }
            let reports = reports(&mirror.status(), &self.replica_numbers);
            let states: Vec<i32> = reports.iter().map(|r| r.state).collect();
            let sent = tokio::time::timeout(REPORT_LIMIT, replicas::report(&self.session, &volume, &reports)).await;
            let now = Instant::now();
            match sent {
                Ok(Ok(())) => {
                    tracing::debug!(?states, "reported to the station");
                    log.succeeded(now);
                    reported = Some(states);
                }
                Ok(Err(e)) => log.failed(now, &format!("{e:#}")),
                Err(_) => log.failed(now, &format!("no answer within {}", humantime::format_duration(REPORT_LIMIT))),
            }
            next = now + self.every;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dvsan_front::ReplicaTarget;

    fn status(state: ReplicaState, dirty_bytes: u64, resynced_bytes: u64) -> ReplicaStatus {
        ReplicaStatus {
            unreachable: false,
            target: ReplicaTarget::parse(1, "nbd://127.0.0.1:10809/x").unwrap(),
            state,
            dirty_regions: dirty_bytes >> 20,
            dirty_bytes,
            resynced_bytes,
        }
    }

    #[test]
    fn reports_carry_states_dirty_bytes_and_progress() {
        let all = [
            status(ReplicaState::InSync, 0, 0),
            status(ReplicaState::OutOfSync, 4 << 20, 7),
            status(ReplicaState::Resyncing, 3 << 20, 1 << 20),
            ReplicaStatus { unreachable: true, ..status(ReplicaState::OutOfSync, 1 << 20, 0) },
        ];
        let got = reports(&all, &[1, 2, 3, 4]);
        let s = |r: &ReplicaReport| (r.replica, r.state, r.dirty_bytes, r.resync_percent);
        use mib::dvsan_station_front_replica_state as m;
        assert_eq!(
            got.iter().map(s).collect::<Vec<_>>(),
            vec![
                (1, m::IN_SYNC, 0, 100),
                (2, m::OUT_OF_SYNC, 4 << 20, 0),
                (3, m::RESYNCING, 3 << 20, 25),
                (4, m::FAILED, 1 << 20, 0)
            ]
        );
    }

    #[test]
    fn failures_are_logged_at_a_bounded_rate() {
        let mut log = FailureLog::default();
        let t0 = Instant::now();
        log.failed(t0, "down");
        assert_eq!(log.last_logged, Some(t0));
        log.failed(t0 + Duration::from_secs(5), "down");
        assert_eq!(log.last_logged, Some(t0), "not logged again within the minute");
        log.failed(t0 + FAILURE_LOG_EVERY, "down");
        assert_eq!((log.last_logged, log.failed), (Some(t0 + FAILURE_LOG_EVERY), 3));
        log.succeeded(t0 + FAILURE_LOG_EVERY * 2);
        assert_eq!((log.failing_since, log.failed), (None, 0));
    }
}
