//! Issue 17 end to end: a station and two SAN units (real agents and blockd on 127.0.84.1 and .2), `dvsan-host
//! request --replicas 2` as an SNMPv3 user, `dvsan-host serve NAME` finding the replicas through the station, fio
//! with crc32c verification through the front while one unit's blockd is killed (`kill -9`): no client error, and
//! the station (`pool --json`, fed by the front's reports to dvsanStationFrontTable) shows that replica outOfSync
//! with dirty bytes; blockd started again: resynced, the station shows both inSync, and the two replicas' bytes on
//! the units' media are identical. Then the station is killed: fio goes on without error, and the failing reports
//! are logged once. A unit gone longer than the front's reconnect window (no I/O needed) is reported failed, and in
//! sync again when it is back.
//!
//! Needs `cargo build -p dvsan-station -p dvsan-agent -p dvsan-blockd -p dvsan-host --bins` first, and fio.

use dvsan_tests::front::HostFront;
use dvsan_tests::units::{SanUnit, Station};
use dvsan_tests::{describe, require_tool, run_fails, run_ok, wait_for, workspace_bin};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

fn users_file(dir: &Path) -> String {
    let host_a = ("host-a", "host-a-auth-pass", "host-a-priv-pass", "read-write");
    let path = dvsan_tests::write_users_file(&dir.join("users.toml"), &[host_a], 0o600);
    path.to_str().expect("a UTF-8 temporary path").to_string()
}

/// fio through the front, rate-limited so it runs for a few seconds: random 4k writes over 8 MiB at `offset`,
/// then a crc32c verification of everything it wrote.
fn start_fio(uri: &str, dir: &Path, name: &str, offset: &str) -> Child {
    require_tool("fio", "fio");
    Command::new("timeout")
        .args(["120", "fio", &format!("--name={name}"), "--ioengine=nbd", &format!("--uri={uri}")])
        .args(["--rw=randwrite", "--bs=4k", "--iodepth=8", "--size=8M", &format!("--offset={offset}")])
        .args(["--rate_iops=1000", "--verify=crc32c", "--do_verify=1", "--verify_fatal=1"])
        .stdout(std::fs::File::create(dir.join(format!("{name}.out"))).unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish_fio(child: Child, dir: &Path, name: &str) {
    let out = child.wait_with_output().unwrap();
    let text = std::fs::read_to_string(dir.join(format!("{name}.out"))).unwrap_or_default();
    assert!(out.status.success(), "fio {name} failed:\n{}\n{text}", describe(&out));
    assert!(text.contains("err= 0"), "fio {name} reported errors:\n{text}");
}

/// The mirrored volume `name` in the station's `pool --json`.
fn mirror(station: &Station, name: &str) -> Option<serde_json::Value> {
    station.pool()["mirrors"].as_array()?.iter().find(|m| m["name"] == name).cloned()
}

/// Each replica's (front state, dirty bytes) as the station shows them, in replica order.
fn front_states(station: &Station, name: &str) -> Vec<(String, u64)> {
    let Some(m) = mirror(station, name) else { return Vec::new() };
    m["replicas"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .map(|r| {
                    let front = &r["front"];
                    (front["state"].as_str().unwrap_or("").to_string(), front["dirty_bytes"].as_u64().unwrap_or(0))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A station and two SAN units on 127.0.`net`.1 and .2 (agents and blockd), host-a's mirrored volume "db" of
/// 64 MiB (one replica on each unit) and its front, started with `extra` and the replicas found through the station;
/// returns once the station shows both replicas in sync as the front reported them.
struct Setup {
    dir: tempfile::TempDir,
    station: Station,
    units: Vec<SanUnit>,
    front: HostFront,
    /// dvsan-host's global options for host-a (--station, --host, --credentials, --user).
    global: Vec<String>,
}

fn setup(net: u8, extra: &[&str]) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let users = users_file(dir.path());
    let station = Station::start(&dir.path().join("station"), &["--users", &users]);
    let traps = station.traps.to_string();
    let units: Vec<SanUnit> = (1..=2)
        .map(|i| {
            let addr = format!("127.0.{net}.{i}:1161");
            SanUnit::start(&dir.path().join(format!("u{i}")), &addr, &traps, &format!("u{i}"), &["128M"])
        })
        .collect();
    for unit in &units {
        station.wait_unit(&unit.snmp_addr, "available", WAIT, |u| u["state"] == "available");
    }
    let snmp = station.snmp.expect("the station serves SNMP").to_string();
    let host = format!("127.0.{net}.100");
    let global = ["--station", &snmp, "--host", &host, "--credentials", &users, "--user", "host-a"];

    // The mirrored volume: one replica on each unit.
    let made = run_ok(
        Command::new(workspace_bin("dvsan-host"))
            .env_remove("DVSAN_STATION")
            .env_remove("DVSAN_CREDENTIALS")
            .env_remove("DVSAN_USER")
            .args(global)
            .args(["--wait", "30s", "request", "--size", "64M", "--name", "db", "--replicas", "2", "--json"]),
    );
    let made: serde_json::Value = serde_json::from_str(&made).unwrap_or_else(|e| panic!("{e}: {made}"));
    let replicas = made["replicas"].as_array().unwrap_or_else(|| panic!("{made}")).clone();
    assert_eq!(replicas.len(), 2, "{made}");

    // The front, its replicas found through the station (no --replica).
    let front = HostFront::start_with(dir.path(), &global, "db", &format!("{host}:0"), &[], extra);
    let log = front.proc.log_text();
    assert!(log.contains("replica from the station"), "{log}");
    let reported = wait_for(WAIT, || {
        let states = front_states(&station, "db");
        (states == [("inSync".to_string(), 0), ("inSync".to_string(), 0)]).then_some(())
    });
    assert!(reported.is_some(), "station shows {:?}\n{}", front_states(&station, "db"), front.proc.log_text());
    let global = global.iter().map(|a| a.to_string()).collect();
    Setup { dir, station, units, front, global }
}

#[test]
fn a_mirrored_volume_served_through_the_station_survives_a_unit_and_is_reported() {
    let Setup { dir, station, mut units, mut front, .. } =
        setup(84, &["--replica-timeout", "1s", "--region-size", "256K", "--report-every", "1s"]);

    // Which unit holds which replica, in replica order (unit indexes are the station's; match by NBD address).
    let on_unit: Vec<(usize, u32)> = mirror(&station, "db").unwrap()["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let uri = r["nbd_uri"].as_str().unwrap_or("");
            let u = units.iter().position(|u| uri.contains(&format!("//{}:", u.ip))).unwrap_or_else(|| panic!("{r}"));
            (u, u32::try_from(r["volume"].as_u64().unwrap()).unwrap())
        })
        .collect();
    let (victim, _) = on_unit[0];

    // fio through the front; the first replica's blockd is killed in the middle of it: no error for fio.
    let uri = front.uri();
    let fio = start_fio(&uri, dir.path(), "first", "0");
    let (other, other_volume) = on_unit[1];
    let written = wait_for(WAIT, || units[other].volume_bytes(other_volume).iter().any(|b| *b != 0).then_some(()));
    assert!(written.is_some(), "fio wrote nothing within {WAIT:?}");
    units[victim].blockd.as_mut().expect("blockd runs").kill();
    finish_fio(fio, dir.path(), "first");

    // The station learns it from the front: replica 1 out of sync with dirty bytes, replica 2 in sync.
    let out = wait_for(WAIT, || {
        let states = front_states(&station, "db");
        let ok = states.len() == 2
            && states[0].0 == "outOfSync"
            && states[0].1 > 0
            && states[1] == ("inSync".to_string(), 0);
        ok.then_some(states)
    });
    assert!(out.is_some(), "station shows {:?}\n{}", front_states(&station, "db"), front.proc.log_text());

    // blockd back: the dirty regions are resynced and the station shows both in sync.
    units[victim].start_blockd();
    let back = wait_for(Duration::from_secs(60), || {
        let states = front_states(&station, "db");
        (states == [("inSync".to_string(), 0), ("inSync".to_string(), 0)]).then_some(())
    });
    assert!(back.is_some(), "station shows {:?}\n{}", front_states(&station, "db"), front.proc.log_text());
    assert!(front.proc.log_text().contains("resync done"), "{}", front.proc.log_text());

    // The two replicas hold the same bytes on the units' media.
    let a = units[on_unit[0].0].volume_bytes(on_unit[0].1);
    let b = units[on_unit[1].0].volume_bytes(on_unit[1].1);
    assert_eq!(a.len(), b.len());
    assert!(a.iter().any(|x| *x != 0), "fio's data is on the returning replica");
    assert!(a == b, "the replicas are byte-identical");

    // The station gone: the reports fail, the I/O does not; the failure is logged once, not per report.
    let mut station = station;
    station.proc.kill();
    let failed = wait_for(WAIT, || front.proc.log_text().contains("reporting to the station failed").then_some(()));
    assert!(failed.is_some(), "{}", front.proc.log_text());
    // fio runs a few seconds while the reports fail (each given up within 10 s, tried again a second later).
    let fio = start_fio(&uri, dir.path(), "stationless", "8M");
    finish_fio(fio, dir.path(), "stationless");
    let log = front.proc.log_text();
    assert_eq!(log.matches("reporting to the station failed").count(), 1, "{log}");
    assert!(front.proc.child.try_wait().unwrap().is_none(), "the front serves on:\n{log}");
}

#[test]
fn a_unit_gone_past_the_reconnect_window_is_reported_failed_and_in_sync_again_when_back() {
    let Setup { dir, station, mut units, front, global } =
        setup(86, &["--replica-timeout", "1s", "--reconnect-window", "2s", "--report-every", "1s"]);
    // A volume the station does not have for this host: serve says so and does not start.
    let err = run_fails(
        Command::new(workspace_bin("dvsan-host"))
            .env_remove("DVSAN_STATION")
            .args(&global)
            .args(["serve", "nosuch", "--listen", "127.0.86.100:0", "--state-dir"])
            .arg(dir.path().join("nosuch-state")),
    );
    assert!(
        err.contains("finding \"nosuch\"'s replicas through the station") && err.contains("not one of this host's"),
        "{err}"
    );
    // No I/O: nothing is missed, but the front cannot reach replica 2's unit any more.
    let victim = units
        .iter()
        .position(|u| {
            let m = mirror(&station, "db").unwrap();
            m["replicas"][1]["nbd_uri"].as_str().is_some_and(|uri| uri.contains(&format!("//{}:", u.ip)))
        })
        .expect("replica 2's unit");
    units[victim].blockd.as_mut().expect("blockd runs").kill();
    let failed = wait_for(WAIT, || {
        let states = front_states(&station, "db");
        (states.len() == 2 && states[0].0 == "inSync" && states[1].0 == "failed").then_some(())
    });
    assert!(failed.is_some(), "station shows {:?}\n{}", front_states(&station, "db"), front.proc.log_text());
    units[victim].start_blockd();
    let back = wait_for(WAIT, || {
        let states = front_states(&station, "db");
        (states == [("inSync".to_string(), 0), ("inSync".to_string(), 0)]).then_some(())
    });
    assert!(back.is_some(), "station shows {:?}\n{}", front_states(&station, "db"), front.proc.log_text());
}
