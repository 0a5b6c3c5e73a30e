//! Bad input never hurts the station: unknown communities and malformed datagrams are dropped and counted (and
//! parse errors logged with their source), a flood from one source does not starve another, and a unit whose
//! agent answers garbage is marked `error` with the reason while the rest of the pool is unaffected.

use dvsan_snmp::agent::{GetResult, MibHandler};
use dvsan_snmp::{Agent, AgentConfig, NotificationSender, Oid, Target, Uptime, Value, VarBind};
use dvsan_tests::units::*;
use dvsan_tests::*;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(15);
const TEST_TRAP: &[u32] = &[1, 3, 6, 1, 4, 1, 32473, 99, 0, 2];
const TEST_SEQ: &[u32] = &[1, 3, 6, 1, 4, 1, 32473, 99, 1, 0];

/// Serves a fixed set of instances.
struct FixedTree(BTreeMap<Oid, Value>);

impl MibHandler for FixedTree {
    fn get(&self, oid: &Oid) -> GetResult {
        self.0.get(oid).cloned().map_or(GetResult::NoSuchInstance, GetResult::Value)
    }
    fn get_next(&self, oid: &Oid) -> Option<VarBind> {
        self.0
            .range((Bound::Excluded(oid.clone()), Bound::Unbounded))
            .next()
            .map(|(k, v)| VarBind::new(k.clone(), v.clone()))
    }
}

/// A DVSAN-MIB tree whose volume 1 claims an end LBA that disagrees with its start and length.
fn garbage_tree() -> BTreeMap<Oid, Value> {
    use dvsan_mib::*;
    let i = |node: &[u32], index: &[u32]| Oid::from_slice(node).join(index);
    let mut tree = BTreeMap::new();
    tree.insert(i(DVSAN_UNIT_ID, &[0]), Value::string("0b2b8f1e-1111-4222-8333-444455556666"));
    tree.insert(i(DVSAN_UNIT_NAME, &[0]), Value::string("liar"));
    tree.insert(i(DVSAN_UNIT_BLOCK_SIZE, &[0]), Value::Gauge32(4096));
    tree.insert(i(DVSAN_UNIT_CAPACITY_BLOCKS, &[0]), Value::Gauge32(1000));
    tree.insert(i(DVSAN_UNIT_FREE_BLOCKS, &[0]), Value::Gauge32(900));
    tree.insert(i(DVSAN_UNIT_CHANGE_COUNTER, &[0]), Value::Counter32(1));
    tree.insert(i(DVSAN_UNIT_DATA_SERVICE_STATE, &[0]), Value::Integer(1));
    tree.insert(i(DVSAN_VOLUME_NAME, &[1]), Value::string("vol1"));
    tree.insert(i(DVSAN_VOLUME_START_LBA, &[1]), Value::Gauge32(0));
    tree.insert(i(DVSAN_VOLUME_END_LBA, &[1]), Value::Gauge32(5000));
    tree.insert(i(DVSAN_VOLUME_LENGTH, &[1]), Value::Gauge32(100));
    tree.insert(i(DVSAN_VOLUME_STATE, &[1]), Value::Integer(1));
    tree.insert(i(DVSAN_VOLUME_EXPORT_NAME, &[1]), Value::string("vol1"));
    tree
}

fn counter(station: &Station, name: &str) -> u64 {
    let out = run_ok(
        net_snmp("snmpget")
            .args(["-v2c", "-c", "public", "-Oqv"])
            .arg(station.snmp.unwrap().to_string())
            .arg(format!("DVSAN-STATION-MIB::{name}.0")),
    );
    out.split_whitespace().next().and_then(|w| w.parse().ok()).unwrap_or_else(|| panic!("{name}: {out}"))
}

#[test]
fn bad_notifications_are_dropped_counted_and_logged() {
    let dir = tempfile::tempdir().unwrap();
    let station = Station::start(&dir.path().join("station"), &[]);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let traps = station.traps;

    // Unknown community: dropped, counted, not stored.
    runtime.block_on(async {
        let sender = NotificationSender::new("127.0.5.10:0".parse().unwrap(), Uptime::start_now()).await.unwrap();
        for _ in 0..3 {
            sender.trap_v2(traps, "not-ours", &Oid::from_slice(TEST_TRAP), vec![]).await.unwrap();
        }
    });
    // Malformed datagrams: dropped, counted, logged with their source.
    let raw = std::net::UdpSocket::bind("127.0.5.11:0").unwrap();
    for garbage in [&b"\x30\x03\x02\x01"[..], b"hello, station", b"\x30\x82\xff\xff\x02\x01\x01"] {
        raw.send_to(garbage, traps).unwrap();
    }
    wait_until("the bad community count", WAIT, || {
        (counter(&station, "dvsanStationBadCommunities") == 3).then_some(())
    });
    wait_until("the parse error count", WAIT, || (counter(&station, "dvsanStationParseErrors") == 3).then_some(()));
    let log = wait_until("parse errors in traps.log", WAIT, || {
        let log = std::fs::read_to_string(station.state_dir.join("traps.log")).unwrap_or_default();
        (log.lines().filter(|l| l.contains("PARSE-ERROR") && l.contains("127.0.5.11:")).count() == 3).then_some(log)
    });
    assert!(!log.contains("not-ours"), "{log}");
    assert!(station.traps(&[]).is_empty());

    // A flood from one source does not starve another: every inform of the quiet source is stored.
    let quiet_acked = runtime.block_on(async move {
        let flood = tokio::spawn(async move {
            let sender = NotificationSender::new("127.0.5.12:0".parse().unwrap(), Uptime::start_now()).await.unwrap();
            let start = Instant::now();
            let mut sent = 0u64;
            while start.elapsed() < Duration::from_secs(2) {
                for _ in 0..256 {
                    let _ = sender.trap_v2(traps, "public", &Oid::from_slice(TEST_TRAP), vec![]).await;
                    sent += 1;
                }
                tokio::task::yield_now().await;
            }
            sent
        });
        let sender = NotificationSender::new("127.0.5.13:0".parse().unwrap(), Uptime::start_now()).await.unwrap();
        let target = Target::new(traps, "public").with_timeout(Duration::from_millis(300), 5);
        let mut acked = 0;
        for seq in 0..40u32 {
            let varbinds = vec![VarBind::new(Oid::from_slice(TEST_SEQ), Value::Gauge32(seq))];
            if sender.inform(&target, &Oid::from_slice(TEST_TRAP), varbinds).await.is_ok() {
                acked += 1;
            }
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        let flooded = flood.await.unwrap();
        assert!(flooded > 5_000, "the flood sent only {flooded}");
        acked
    });
    assert_eq!(quiet_acked, 40, "every inform of the quiet source must be acknowledged");
    let quiet: Vec<_> = station.traps(&["--unit", "127.0.5.13"]);
    let mut seqs: Vec<u64> = quiet.iter().filter_map(|t| t["varbinds"][0]["value"].as_u64()).collect();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs, (0..40).collect::<Vec<u64>>());

    // The station is still healthy: its agent answers and it keeps storing.
    assert!(counter(&station, "dvsanStationNotificationsStored") >= 40);
    // Senders of arbitrary traps with no DVSAN agent behind them do not become units.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(station.pool()["units"], serde_json::json!([]));
}

#[test]
fn a_unit_answering_garbage_is_in_error_and_the_rest_is_unaffected() {
    let dir = tempfile::tempdir().unwrap();
    let station = Station::start(&dir.path().join("station"), &[]);
    let mut good = Unit::start(&dir.path().join("good"), "127.0.6.1", station.traps, "16M", &[]);
    good.serve_data();
    station.wait_unit(&good.address(), "available", WAIT, |u| u["state"] == "available");

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let agent = Arc::new(
        Agent::builder(AgentConfig::default())
            .handler(Oid::from_slice(dvsan_mib::DVSAN_MIB), Arc::new(FixedTree(garbage_tree())))
            .build()
            .unwrap(),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(async move {
        let socket = tokio::net::UdpSocket::bind("127.0.6.2:1161").await.unwrap();
        agent
            .serve(socket, async {
                let _ = stopped.await;
            })
            .await
    });
    // The liar announces itself with a coldStart; the station walks it and finds the garbage.
    runtime.block_on(async {
        let sender = NotificationSender::new("127.0.6.2:0".parse().unwrap(), Uptime::start_now()).await.unwrap();
        sender.trap_v2(station.traps, "public", &Oid::from_slice(dvsan_mib::COLD_START), vec![]).await.unwrap();
    });
    let liar = station.wait_unit("127.0.6.2:1161", "state error", WAIT, |u| u["state"] == "error");
    let reason = liar["reason"].as_str().unwrap();
    assert!(reason.contains("bad data") && reason.contains("volume 1"), "{reason}");
    assert!(liar["volumes"].as_array().unwrap().is_empty(), "nothing of a bad walk is stored");

    let _ = stop.send(());
    runtime.block_on(server).unwrap();

    // The good unit is untouched.
    let good_now = station.unit_at(&good.address()).unwrap();
    assert_eq!(good_now["state"], "available");
    good.admin(&["volume", "create", "--size", "1M"]);
    station.wait_unit(&good.address(), "a volume on the good unit", WAIT, |u| volumes_of(u).len() == 1);
}

#[test]
fn v1_traps_and_informs_are_stored_and_followed() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let station = Station::start(&dir.path().join("station"), &[]);

    // `traps --follow --json` prints notifications as they are stored.
    let mut follow = std::process::Command::new(workspace_bin("dvsan-station"))
        .args(["traps", "--follow", "--json", "--state-dir"])
        .arg(&station.state_dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = follow.stdout.take().unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let sender = NotificationSender::new("127.0.7.1:0".parse().unwrap(), Uptime::start_now()).await.unwrap();
        let v1 = dvsan_snmp::TrapV1Pdu {
            enterprise: Oid::from_slice(&[1, 3, 6, 1, 4, 1, 32473, 99]),
            agent_addr: [127, 0, 7, 1],
            generic_trap: 6,
            specific_trap: 17,
            timestamp: 4242,
            varbinds: vec![VarBind::new(Oid::from_slice(TEST_SEQ), Value::Gauge32(7))],
        };
        sender.trap_v1(station.traps, "public", v1).await.unwrap();
        let target = Target::new(station.traps, "public").with_timeout(Duration::from_millis(500), 3);
        sender.inform(&target, &Oid::from_slice(dvsan_mib::LINK_UP), vec![]).await.unwrap();
    });

    let mut seen = Vec::new();
    let deadline = Instant::now() + WAIT;
    while seen.len() < 2 && Instant::now() < deadline {
        if let Ok(line) = lines_rx.recv_timeout(Duration::from_millis(200)) {
            seen.push(serde_json::from_str::<serde_json::Value>(&line).unwrap());
        }
    }
    let _ = follow.kill();
    let _ = follow.wait();
    assert_eq!(seen.len(), 2, "{seen:#?}");
    // The v1 trap is stored in SNMPv2 form (RFC 3584): enterprise.0.specific.
    assert_eq!(seen[0]["kind"], "trapV1");
    assert_eq!(seen[0]["version"], "v1");
    assert_eq!(seen[0]["trap_oid"], "1.3.6.1.4.1.32473.99.0.17");
    assert_eq!(seen[0]["uptime"], 4242);
    assert_eq!(seen[0]["varbinds"][0]["value"], 7);
    assert_eq!(seen[1]["kind"], "inform");
    assert_eq!(seen[1]["trap_name"], "linkUp");

    // `tail -f` sees the same notifications in the text log.
    let log = std::fs::read_to_string(station.state_dir.join("traps.log")).unwrap();
    assert!(log.lines().any(|l| l.contains("TRAP(v1) v1/\"public\" dvsanEnterprise.99.0.17")), "{log}");
    assert!(log.lines().any(|l| l.contains("INFORM v2c/\"public\" linkUp")), "{log}");
}
