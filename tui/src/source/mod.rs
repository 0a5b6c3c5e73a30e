//! Where the console's data comes from, and the background tasks that fetch it.
//!
//! A [`PoolSource`] produces [`Snapshot`]s: [`snmp::SnmpSource`] reads the station's DVSAN-STATION-MIB tables
//! and every reachable unit's dvsanTrafficTable and dvsanMediaTable (the station's MIB has no media), the units in
//! a background read that a snapshot carries once it has finished; [`fake::FakeSource`] serves canned data for
//! tests.
//! [`spawn_refresh`] polls a source on an interval in a tokio task and sends each snapshot over a channel, so
//! the UI loop never waits on the network. [`tail`] follows the station's notification log. [`tasks`] sends the
//! commands the user confirmed (new tasks, cancels, removals) to the station's task table.

pub mod fake;
#[cfg(test)]
pub(crate) mod fake_station;
pub mod log;
pub mod rates;
pub mod snmp;
pub mod tail;
pub mod tasks;

use crate::form::{Command, Request};
use crate::model::{Notification, Snapshot, TailStatus};
use std::future::Future;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

/// Something that can produce a snapshot of the pool.
pub trait PoolSource: Send + 'static {
    /// Reads the pool once. Failures are reported inside the snapshot, in plain words.
    fn snapshot(&mut self) -> impl Future<Output = Snapshot> + Send;
}

/// What the background tasks tell the UI loop.
#[derive(Debug, PartialEq)]
pub enum Update {
    Snapshot(Snapshot),
    Notification(Notification),
    Tail(TailStatus),
    /// The station took `request` as task `task` (pending).
    Submitted {
        request: Request,
        task: u32,
    },
    /// The station cancelled pending task `task`.
    Cancelled {
        task: u32,
    },
    /// The station removed ended task `task`'s row.
    Removed {
        task: u32,
    },
    /// The station refused `command`, or could not be reached; `why` says so in plain words and what to do.
    Refused {
        command: Command,
        why: String,
    },
}

/// Polls `source` every `interval` (the first time right away) until `updates` is closed.
pub fn spawn_refresh<S: PoolSource>(
    mut source: S,
    interval: Duration,
    updates: UnboundedSender<Update>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(100)));
        // A slow station must not cause a burst of catch-up polls.
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let snapshot = source.snapshot().await;
            if updates.send(Update::Snapshot(snapshot)).is_err() {
                return;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refresh_sends_snapshots_until_the_receiver_goes() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let task = spawn_refresh(fake::FakeSource::demo(), Duration::from_millis(100), tx);
        for _ in 0..2 {
            let update = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
            let Update::Snapshot(snapshot) = update else { panic!("expected a snapshot") };
            assert_eq!(snapshot.pool.unwrap().units.len(), 3);
        }
        drop(rx);
        tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap();
    }
}
