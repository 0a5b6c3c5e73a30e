//! An acknowledged inform is never lost: the station is killed with SIGKILL in the middle of a burst of informs,
//! restarted, and every inform it had acknowledged must be in its store, which must open cleanly.

use dvsan_snmp::{NotificationSender, Oid, Target, Uptime, Value, VarBind};
use dvsan_station::store::{NotificationFilter, StationStore};
use dvsan_tests::units::*;
use dvsan_tests::*;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An enterprise-specific test notification and its sequence-number object (under the documentation arc).
const TEST_TRAP: &[u32] = &[1, 3, 6, 1, 4, 1, 32473, 99, 0, 1];
const TEST_SEQ: &[u32] = &[1, 3, 6, 1, 4, 1, 32473, 99, 1, 0];

#[test]
fn acknowledged_informs_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("station");
    let mut station = Station::start(&state, &[]);
    let traps = station.traps;

    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicU32::new(0));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let burst = {
        let (acked, stop, next) = (Arc::clone(&acked), Arc::clone(&stop), Arc::clone(&next));
        runtime.spawn(async move {
            let sender =
                Arc::new(NotificationSender::new("127.0.3.1:0".parse().unwrap(), Uptime::start_now()).await.unwrap());
            let mut tasks = tokio::task::JoinSet::new();
            // 64 informs in flight at a time, each retried briefly: what was acknowledged is what counts.
            for _ in 0..64 {
                let (sender, acked, stop, next) =
                    (Arc::clone(&sender), Arc::clone(&acked), Arc::clone(&stop), Arc::clone(&next));
                tasks.spawn(async move {
                    let target = Target::new(traps, "public").with_timeout(Duration::from_millis(300), 1);
                    while !stop.load(Ordering::Relaxed) {
                        let seq = next.fetch_add(1, Ordering::Relaxed);
                        let varbinds = vec![VarBind::new(Oid::from_slice(TEST_SEQ), Value::Gauge32(seq))];
                        if sender.inform(&target, &Oid::from_slice(TEST_TRAP), varbinds).await.is_ok() {
                            acked.lock().unwrap().insert(seq);
                        }
                    }
                });
            }
            while tasks.join_next().await.is_some() {}
        })
    };

    // Let the burst run, then kill the station without warning while informs are in flight.
    wait_until("300 acknowledged informs", Duration::from_secs(20), || {
        (acked.lock().unwrap().len() >= 300).then_some(())
    });
    std::thread::sleep(Duration::from_millis(300));
    station.proc.kill();
    let killed_at = Instant::now();
    // Let the senders see their timeouts, then stop them.
    std::thread::sleep(Duration::from_millis(800));
    stop.store(true, Ordering::Relaxed);
    runtime.block_on(burst).unwrap();
    let acked: BTreeSet<u32> = acked.lock().unwrap().clone();
    let sent = next.load(Ordering::Relaxed);
    assert!(sent as usize > acked.len(), "some informs must have been unanswered after the kill");
    assert!(killed_at.elapsed() < Duration::from_secs(30));

    // The store opens cleanly (no recovery errors) and holds every acknowledged inform.
    let store = StationStore::open_existing(&state).unwrap();
    assert_eq!(store.integrity_check().unwrap(), "ok");
    let filter =
        NotificationFilter { trap_oid: Some(dvsan_mib::dotted(TEST_TRAP)), limit: usize::MAX, ..Default::default() };
    let stored: BTreeSet<u32> = store
        .notifications(&filter, false)
        .unwrap()
        .iter()
        .filter_map(|n| n.varbinds.first().and_then(|vb| vb.value.as_u64()).map(|v| v as u32))
        .collect();
    let lost: Vec<&u32> = acked.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged informs missing after the crash, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    drop(store);

    // The station restarts on the same state directory and keeps working.
    let station = Station::start(&state, &[]);
    let before = station.traps(&["--type", &dvsan_mib::dotted(TEST_TRAP)]).len();
    assert!(before >= acked.len());
    let runtime2 = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime2.block_on(async {
        let sender = NotificationSender::new("127.0.3.1:0".parse().unwrap(), Uptime::start_now()).await.unwrap();
        let target = Target::new(station.traps, "public").with_timeout(Duration::from_millis(500), 3);
        let varbinds = vec![VarBind::new(Oid::from_slice(TEST_SEQ), Value::Gauge32(u32::MAX))];
        sender.inform(&target, &Oid::from_slice(TEST_TRAP), varbinds).await.unwrap();
    });
    assert_eq!(station.traps(&["--type", &dvsan_mib::dotted(TEST_TRAP)]).len(), before + 1);
}
