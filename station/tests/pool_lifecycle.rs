//! Units join, change, leave and come back: three real agents and a real station on loopback.
//!
//! The pool must list every volume and partition with the LBA ranges the agents themselves report; a volume
//! created with snmpset appears; SIGTERM makes a unit unavailable (volumes kept), a restart brings it back,
//! kill -9 makes it unreachable after the missed polls; the station MIB shows the pool to snmptable; the
//! notification log answers `traps` filters.

use dvsan_tests::units::*;
use dvsan_tests::*;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

/// Volumes as (index, name, start, end, length) and partitions as (volume, index, start, end).
type Layout = (Vec<(u64, String, u64, u64, u64)>, Vec<(u64, u64, u64, u64)>);

/// The agent's own layout as (index, name, start, end, length) per volume and (volume, index, start, end) per
/// partition.
fn agent_layout(show: &serde_json::Value) -> Layout {
    let volumes = show["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let start = v["extent"]["start"].as_u64().unwrap();
            let len = v["extent"]["len"].as_u64().unwrap();
            (v["index"].as_u64().unwrap(), v["name"].as_str().unwrap().to_string(), start, start + len - 1, len)
        })
        .collect();
    let partitions = show["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let start = p["extent"]["start"].as_u64().unwrap();
            let len = p["extent"]["len"].as_u64().unwrap();
            (p["volume"].as_u64().unwrap(), p["index"].as_u64().unwrap(), start, start + len - 1)
        })
        .collect();
    (volumes, partitions)
}

fn pool_layout(unit: &serde_json::Value) -> Layout {
    let volumes = volumes_of(unit).into_iter().map(|(i, n, s, e, l, _)| (i, n, s, e, l)).collect();
    let mut partitions = Vec::new();
    for v in unit["volumes"].as_array().unwrap() {
        for p in v["partitions"].as_array().unwrap() {
            partitions.push((
                v["index"].as_u64().unwrap(),
                p["index"].as_u64().unwrap(),
                p["start_lba"].as_u64().unwrap(),
                p["end_lba"].as_u64().unwrap(),
            ));
        }
    }
    (volumes, partitions)
}

#[test]
fn units_join_change_leave_and_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let station = Station::start(&dir.path().join("station"), &[]);
    let mut units: Vec<Unit> = (1..=3)
        .map(|i| {
            let mut unit =
                Unit::start(&dir.path().join(format!("u{i}")), &format!("127.0.1.{i}"), station.traps, "64M", &[]);
            unit.serve_data();
            unit
        })
        .collect();

    // Layout changes made on the units while everything runs.
    for (i, unit) in units.iter().enumerate() {
        unit.admin(&["volume", "create", "--size", &format!("{}M", 4 * (i + 1)), "--name", &format!("data{i}")]);
        unit.admin(&["volume", "create", "--size", "1M"]);
        unit.admin(&["partition", "create", "--volume", "1", "--size", "512K"]);
    }

    // The pool lists every unit's volumes and partitions with the LBA ranges the agent reports.
    for unit in &units {
        let expected = agent_layout(&unit.show());
        let pooled = station.wait_unit(&unit.address(), "2 volumes, 1 partition, available", WAIT, |u| {
            u["state"] == "available" && pool_layout(u) == expected
        });
        assert_eq!(pooled["unit_id"], unit.unit_id().as_str());
        assert!(volumes_of(&pooled).iter().all(|v| v.5 == "available"), "{pooled:#}");
        assert_eq!(pooled["capacity_bytes"], 64 << 20);
    }

    // A volume created over SNMP appears in the pool.
    let target = units[1].address();
    run_ok(net_snmp("snmpset").args(["-v2c", "-c", WRITE_COMMUNITY]).arg(&target).args([
        "DVSAN-MIB::dvsanVolumeRowStatus.7",
        "i",
        "createAndGo",
        "DVSAN-MIB::dvsanVolumeLength.7",
        "u",
        "256",
        "DVSAN-MIB::dvsanVolumeName.7",
        "s",
        "fromsnmp",
    ]));
    let expected = agent_layout(&units[1].show());
    assert!(expected.0.iter().any(|v| v.0 == 7 && v.1 == "fromsnmp" && v.4 == 256));
    station.wait_unit(&target, "volume 7 from snmpset", WAIT, |u| pool_layout(u) == expected);

    // An NMS sees the pool through the station's own agent.
    let snmp = station.snmp.unwrap().to_string();
    let table = run_ok(
        net_snmp("snmptable")
            .args(["-v2c", "-c", "public", "-Cf", "|", "-Cl"])
            .arg(&snmp)
            .arg("DVSAN-STATION-MIB::dvsanStationUnitTable"),
    );
    for unit in &units {
        let id = unit.unit_id();
        let row = table.lines().find(|line| line.contains(&id)).unwrap_or_else(|| panic!("{id} missing:\n{table}"));
        assert!(row.contains("|available|"), "{row}");
    }
    let volumes = run_ok(
        net_snmp("snmptable")
            .args(["-v2c", "-c", "public", "-Cf", "|"])
            .arg(&snmp)
            .arg("DVSAN-STATION-MIB::dvsanStationVolumeTable"),
    );
    assert!(volumes.contains("fromsnmp|"), "{volumes}");
    assert_eq!(volumes.lines().filter(|l| l.contains("|available")).count(), 7, "{volumes}");

    // SIGTERM: the unit says it shuts down; it and its volumes become unavailable but stay in the pool.
    units[0].proc.terminate();
    let gone =
        station.wait_unit(&units[0].address(), "unavailable after SIGTERM", WAIT, |u| u["state"] == "unavailable");
    assert!(gone["reason"].as_str().unwrap().contains("shut down"), "{gone:#}");
    assert_eq!(volumes_of(&gone).len(), 2);
    assert!(volumes_of(&gone).iter().all(|v| v.5 == "unavailable"), "{gone:#}");
    // It stays unavailable (not unreachable) while it is away, although it misses polls.
    std::thread::sleep(Duration::from_millis(4500));
    assert_eq!(station.unit_at(&units[0].address()).unwrap()["state"], "unavailable");

    // Restarted, it is back with its volumes.
    let dir0 = units[0].state_dir.clone();
    units[0] = Unit::start(&dir0, "127.0.1.1", station.traps, "64M", &[]);
    units[0].serve_data();
    let back = station.wait_unit(&units[0].address(), "available again", WAIT, |u| {
        u["state"] == "available" && volumes_of(u).iter().all(|v| v.5 == "available")
    });
    assert_eq!(volumes_of(&back).len(), 2);

    // kill -9 sends nothing: the unit is unreachable after three missed polls, with its last-seen time.
    units[2].proc.kill();
    let lost = station.wait_unit(&units[2].address(), "unreachable", WAIT, |u| u["state"] == "unreachable");
    assert!(lost["reason"].as_str().unwrap().contains("last seen"), "{lost:#}");
    assert!(lost["last_seen"].is_string());
    assert_eq!(volumes_of(&lost).len(), 2);
    // The other units are unaffected.
    assert_eq!(station.unit_at(&units[1].address()).unwrap()["state"], "available");

    // The notification log: filters by type and unit, JSON and text.
    let shutdowns = station.traps(&["--type", "dvsanUnitShutdown"]);
    assert_eq!(shutdowns.len(), 1, "{shutdowns:#?}");
    assert_eq!(shutdowns[0]["source"].as_str().unwrap().split(':').next(), Some("127.0.1.1"));
    assert_eq!(shutdowns[0]["unit_id"], units[0].unit_id().as_str());
    let cold_starts = station.traps(&["--type", "coldStart", "--unit", "127.0.1.1"]);
    assert_eq!(cold_starts.len(), 2, "{cold_starts:#?}");
    assert!(cold_starts[0]["varbinds"].as_array().unwrap().iter().any(|vb| vb["name"] == "dvsanUnitId.0"));
    let by_id = station.traps(&["--unit", &units[1].unit_id()]);
    assert!(!by_id.is_empty() && by_id.iter().all(|t| t["source"].as_str().unwrap().starts_with("127.0.1.2:")));
    let text = run_ok(station.cli().args(["traps", "--type", "linkDown", "--state-dir"]).arg(&station.state_dir));
    assert!(text.lines().any(|l| l.contains(" linkDown ") && l.contains("127.0.1.1:")), "{text}");
    let log = std::fs::read_to_string(station.state_dir.join("traps.log")).unwrap();
    assert!(log.lines().any(|l| l.contains("dvsanUnitShutdown") && l.contains("dvsanUnitId.0 = STRING:")), "{log}");

    // The human view is an aligned table with every unit.
    let human = run_ok(station.cli().args(["pool", "--state-dir"]).arg(&station.state_dir));
    assert!(human.starts_with("UNITS\n"), "{human}");
    assert!(human.contains("unreachable") && human.contains("fromsnmp"), "{human}");
}
