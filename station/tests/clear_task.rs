//! The station shows a unit's clearing of a released volume as a clearVolume task (dvsanStationTaskTable, read
//! with net-snmp's snmpget as the console reads it): its progress is the unit's dvsanVolumeClearProgress, the
//! volume is not assignable while it runs, and once it is done the volume is assignable again. Released by a
//! station task (unassignVolume) and by the CLI (`unassign`, a process of its own: the running station finds the
//! volume clearing in its walk of the unit).
//!
//! The unit writes zeroes at 16 MiB/s (`--clear-method write --clear-rate-mib 16`), so a 32 MiB volume takes
//! about 2 s to clear and records its progress every 8 MiB.

use dvsan_tests::units::*;
use dvsan_tests::*;
use std::process::Output;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

fn station_get(station: &Station, objects: &[String]) -> Vec<String> {
    let out = net_snmp("snmpget")
        .args(["-v2c", "-c", "public", "-Oqv", "-t", "2", "-r", "0"])
        .arg(station.snmp.unwrap().to_string())
        .args(objects)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().map(|l| l.trim().trim_matches('"').to_string()).collect()
}

fn station_set(station: &Station, args: &[String]) -> Output {
    net_snmp("snmpset")
        .args(["-v2c", "-c", WRITE_COMMUNITY, "-t", "2", "-r", "0"])
        .arg(station.snmp.unwrap().to_string())
        .args(args)
        .output()
        .unwrap()
}

/// Every task row as (index, operation, unit, volume, owner), from a walk of the operation column.
fn tasks(station: &Station) -> Vec<(u32, String, String, String, String)> {
    let out = run_ok(
        net_snmp("snmpwalk")
            .args(["-v2c", "-c", "public", "-OQs", "-t", "2", "-r", "0"])
            .arg(station.snmp.unwrap().to_string())
            .arg("DVSAN-STATION-MIB::dvsanStationTaskOperation"),
    );
    out.lines()
        .filter_map(|line| {
            let (name, operation) = line.split_once(" = ")?;
            let index: u32 = name.rsplit('.').next()?.parse().ok()?;
            let cells = station_get(
                station,
                &["Unit", "Volume", "Owner"].map(|c| format!("DVSAN-STATION-MIB::dvsanStationTask{c}.{index}")),
            );
            let [unit, volume, owner] = <[String; 3]>::try_from(cells).ok()?;
            Some((index, operation.trim().to_string(), unit, volume, owner))
        })
        .collect()
}

/// The clearVolume task for `volume` newer than `after`, once there is one.
fn clear_task(station: &Station, volume: u64, after: u32) -> u32 {
    wait_until("a clearVolume task", WAIT, || {
        tasks(station)
            .into_iter()
            .find(|(i, op, _, v, _)| *i > after && op == "clearVolume" && *v == volume.to_string())
            .map(|(i, _, _, _, owner)| {
                assert_eq!(owner, "station");
                i
            })
    })
}

/// Watches task `index` until it ends: the progress values seen (percent) and its state and result.
fn watch(station: &Station, index: u32) -> (Vec<u32>, String, String) {
    let mut seen = Vec::new();
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        let cells = station_get(
            station,
            &["State", "Progress", "Result"].map(|c| format!("DVSAN-STATION-MIB::dvsanStationTask{c}.{index}")),
        );
        let progress: u32 = cells[1].split_whitespace().next().and_then(|p| p.parse().ok()).unwrap_or(0);
        if seen.last() != Some(&progress) {
            seen.push(progress);
        }
        if cells[0] == "done" || cells[0] == "failed" {
            return (seen, cells[0].clone(), cells[2].clone());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("task {index} did not end: progress {seen:?}");
}

fn request(station: &Station, host: &str) -> serde_json::Value {
    let text = run_ok(
        station
            .cli()
            .args(["request", "--json", "--size", "32M", "--host", host, "--state-dir"])
            .arg(&station.state_dir),
    );
    serde_json::from_str(&text).unwrap()
}

#[test]
fn a_released_volume_clears_as_a_station_task_with_the_units_progress() {
    let dir = tempfile::tempdir().unwrap();
    let station = Station::start(&dir.path().join("station"), &[]);
    let mut unit = Unit::start(
        &dir.path().join("u1"),
        "127.0.69.1",
        station.traps,
        "48M",
        &["--clear-method", "write", "--clear-rate-mib", "16"],
    );
    unit.serve_data();
    // The new medium is cleared first (3 s); then the pool has its space.
    wait_until("the new medium cleared", WAIT, || {
        unit.snmpget(&["DVSAN-MIB::dvsanUnitClearingBlocks.0"]).ok().filter(|v| v.contains(": 0 blocks"))
    });
    station.wait_unit(&unit.address(), "available with its space", WAIT, |u| {
        u["state"] == "available" && u["free_blocks"].as_u64() == Some(12288)
    });

    // Released by a station task: a clearVolume task follows the unit's clearing.
    let assigned = request(&station, "127.0.69.100");
    let volume = assigned["volume"].as_u64().unwrap();
    let unit_index = assigned["unit"].as_u64().unwrap().to_string();
    let before = tasks(&station).iter().map(|t| t.0).max().unwrap_or(0);
    let next = station_get(&station, &["DVSAN-STATION-MIB::dvsanStationTaskNextIndex.0".to_string()]).remove(0);
    let mut set: Vec<String> = Vec::new();
    for (column, kind, value) in [
        ("Operation", "i", "unassignVolume"),
        ("Unit", "s", unit_index.as_str()),
        ("Volume", "u", &volume.to_string()),
        ("RowStatus", "i", "createAndGo"),
    ] {
        set.extend([format!("DVSAN-STATION-MIB::dvsanStationTask{column}.{next}"), kind.into(), value.into()]);
    }
    let out = station_set(&station, &set);
    assert!(out.status.success(), "{}", describe(&out));
    let index = clear_task(&station, volume, before);
    // While it clears, the volume is not assignable.
    let refused = station
        .cli()
        .args(["assign", "--unit", &unit_index, "--volume", &volume.to_string(), "--host", "127.0.69.101"])
        .arg("--state-dir")
        .arg(&station.state_dir)
        .output()
        .unwrap();
    let (seen, state, result) = watch(&station, index);
    assert_eq!(state, "done", "{result}");
    assert!(result.contains(&format!("cleared volume {volume}")), "{result}");
    assert!(seen.iter().any(|p| (1..100).contains(p)), "progress between 0 and 100 seen: {seen:?}");
    assert_eq!(seen.last(), Some(&100), "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "progress only grows: {seen:?}");
    assert!(!refused.status.success() && describe(&refused).contains("is being cleared"), "{}", describe(&refused));
    let pool_volume = |station: &Station| {
        station.unit_at(&unit.address()).unwrap()["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["index"].as_u64() == Some(volume))
            .cloned()
            .unwrap()
    };
    assert!(pool_volume(&station)["clearing"].is_null(), "{}", pool_volume(&station));

    // Assignable again: the same volume goes to the next request. Released with the CLI (another process), the
    // running station finds the volume clearing in its walk and follows it the same way.
    let again = request(&station, "127.0.69.102");
    assert_eq!(again["volume"].as_u64(), Some(volume), "{again}");
    run_ok(
        station
            .cli()
            .args(["unassign", "--unit", &unit_index, "--volume", &volume.to_string(), "--state-dir"])
            .arg(&station.state_dir),
    );
    let index = clear_task(&station, volume, index);
    let (seen, state, result) = watch(&station, index);
    assert_eq!(state, "done", "{result}: {seen:?}");
    let listed = run_ok(station.cli().args(["tasks", "--state-dir"]).arg(&station.state_dir));
    assert_eq!(listed.matches("clearVolume").count(), 2, "{listed}");
}
