//! `--shared` assignments through the station CLI against a real agent: two hosts that both ask shared get the
//! same volume, each with a readWriteShared grant on the unit's access table (snmptable); a host that does not ask
//! shared gets neither that volume by name nor an `assign` of it; releasing one shared host leaves the other's
//! grant (and the volume, not wiped, not foreign) in place; a volume held exclusively is not joined by a shared
//! request.

use dvsan_tests::units::*;
use dvsan_tests::*;
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

fn alloc_cmd(station: &Station, args: &[&str]) -> Command {
    let mut cmd = station.cli();
    cmd.args(args).arg("--state-dir").arg(&station.state_dir);
    cmd
}

fn request(station: &Station, host: &str, name: &str, extra: &[&str]) -> Result<serde_json::Value, String> {
    let mut args = vec!["request", "--json", "--size", "4M", "--host", host, "--name", name];
    args.extend_from_slice(extra);
    let out = alloc_cmd(station, &args).output().expect("dvsan-station runs");
    if out.status.success() {
        Ok(serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", describe(&out))))
    } else {
        Err(describe(&out))
    }
}

/// The unit's dvsanAccessTable rows as (volume, address, mode), read with snmptable.
fn access_rows(unit: &Unit) -> Vec<(String, String, String)> {
    let table = run_ok(
        net_snmp("snmptable")
            .args(["-v2c", "-c", "public", "-t", "2", "-r", "1", "-Cf", "|", "-Cl", "-CH", "-Oq"])
            .arg(unit.address())
            .arg("DVSAN-MIB::dvsanAccessTable"),
    );
    let header = run_ok(
        net_snmp("snmptable")
            .args(["-v2c", "-c", "public", "-t", "2", "-r", "1", "-Cf", "|", "-Cl", "-Cb"])
            .arg(unit.address())
            .arg("DVSAN-MIB::dvsanAccessTable"),
    );
    let names: Vec<String> = header
        .lines()
        .find(|l| l.contains("Mode"))
        .unwrap_or_else(|| panic!("{header}"))
        .split('|')
        .map(str::to_string)
        .collect();
    let column = |name: &str| names.iter().position(|c| c.ends_with(name)).unwrap_or_else(|| panic!("{names:?}"));
    let (volume, address, mode) = (column("VolumeIndex"), column("HostAddress"), column("Mode"));
    table
        .lines()
        .filter(|l| l.contains('|'))
        .map(|l| {
            // snmptable prints each cell with its type (`Gauge32: 1`, `INTEGER: readWriteShared(3)`): keep the value.
            let cells: Vec<&str> = l.split('|').map(|c| c.rsplit_once(": ").map_or(c, |(_, v)| v).trim()).collect();
            let mode = cells[mode].split('(').next().unwrap_or_default();
            (cells[volume].to_string(), cells[address].trim_matches('"').to_string(), mode.to_string())
        })
        .collect()
}

#[test]
fn two_hosts_share_a_volume_only_when_both_ask_shared() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("station");
    let station = Station::start(&state, &[]);
    let mut unit = Unit::start(&dir.path().join("u1"), "127.0.68.1", station.traps, "64M", &[]);
    unit.serve_data();
    station.wait_unit(&unit.address(), "available", WAIT, |u| u["state"] == "available");

    let a = request(&station, "127.0.68.100", "cluster", &["--shared"]).unwrap();
    let b = request(&station, "127.0.68.101", "cluster", &["--shared"]).unwrap();
    assert_eq!((&a["unit"], &a["volume"]), (&b["unit"], &b["volume"]), "{a}\n{b}");
    let volume = a["volume"].to_string();
    let rows = access_rows(&unit);
    let shared: Vec<_> = rows.iter().filter(|(v, _, _)| *v == volume).collect();
    assert_eq!(shared.len(), 2, "{rows:?}");
    assert!(shared.iter().all(|(_, _, mode)| mode == "readWriteShared"), "{rows:?}");

    // A host that does not ask shared gets neither the volume by name nor an assign of it.
    let err = request(&station, "127.0.68.102", "cluster", &[]).unwrap_err();
    assert!(err.contains("cluster"), "{err}");
    let unit_index = a["unit"].to_string();
    let out = alloc_cmd(&station, &["assign", "--unit", &unit_index, "--volume", &volume, "--host", "127.0.68.102"])
        .output()
        .unwrap();
    assert!(!out.status.success() && describe(&out).contains("already assigned"), "{}", describe(&out));
    assert_eq!(access_rows(&unit).iter().filter(|(v, _, _)| *v == volume).count(), 2);
    // `assign --shared` of a third host joins them.
    let out = alloc_cmd(
        &station,
        &["assign", "--unit", &unit_index, "--volume", &volume, "--host", "127.0.68.102", "--shared", "--json"],
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", describe(&out));

    // Releasing one shared host leaves the others' grants; the volume is the station's, not foreign, not cleared.
    run_ok(&mut alloc_cmd(
        &station,
        &["unassign", "--unit", &unit_index, "--volume", &volume, "--host", "127.0.68.100"],
    ));
    let rows = access_rows(&unit);
    let left: Vec<_> = rows.iter().filter(|(v, _, _)| *v == volume).collect();
    assert_eq!(left.len(), 2, "{rows:?}");
    let pool = station.pool();
    let v = pool["units"][0]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["index"] == a["volume"])
        .cloned()
        .unwrap_or_else(|| panic!("{pool}"));
    assert_eq!(v["foreign_grants"].as_array().map_or(0, Vec::len), 0, "{v}");
    assert!(v["clearing"].is_null(), "{v}");
    let reconciled = run_ok(&mut alloc_cmd(&station, &["reconcile"]));
    let reconciled: serde_json::Value = serde_json::from_str(&reconciled).unwrap();
    assert_eq!((reconciled["consistent"].as_u64(), reconciled["foreign_grants"].as_u64()), (Some(2), Some(0)));

    // An exclusively held volume is not joined by a shared request.
    request(&station, "127.0.68.103", "solo", &[]).unwrap();
    let err = request(&station, "127.0.68.104", "solo", &["--shared"]).unwrap_err();
    assert!(err.contains("solo"), "{err}");
}

fn host_cli(station: &Station, host: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(workspace_bin("dvsan-host"));
    cmd.env_remove("DVSAN_STATION")
        .env_remove("DVSAN_WRITE_COMMUNITY")
        .args(["--station", &station.snmp.unwrap().to_string(), "--host", host, "--write-community", WRITE_COMMUNITY])
        .args(args);
    cmd
}

/// Over SNMP: `dvsan-host request --shared` (dvsanStationRequestShared) from two hosts gives both the same volume
/// with readWriteShared grants; the same request without `--shared` from a third host is refused.
#[test]
fn dvsan_host_request_shared_from_two_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("station");
    let station = Station::start(&state, &[]);
    let mut unit = Unit::start(&dir.path().join("u1"), "127.0.69.1", station.traps, "64M", &[]);
    unit.serve_data();
    station.wait_unit(&unit.address(), "available", WAIT, |u| u["state"] == "available");

    let ask = |host: &str, extra: &[&str]| {
        let mut args = vec!["request", "--size", "4M", "--name", "gfs", "--json"];
        args.extend_from_slice(extra);
        host_cli(&station, host, &args).output().expect("dvsan-host runs")
    };
    let parse = |out: &std::process::Output| -> serde_json::Value {
        assert!(out.status.success(), "{}", describe(out));
        serde_json::from_str(&stdout(out)).unwrap_or_else(|e| panic!("{e}: {}", describe(out)))
    };
    let a = parse(&ask("127.0.69.100", &["--shared"]));
    let b = parse(&ask("127.0.69.101", &["--shared"]));
    assert_eq!((&a["unit"], &a["volume"]), (&b["unit"], &b["volume"]), "{a}\n{b}");
    let volume = a["volume"].to_string();
    let rows = access_rows(&unit);
    let granted: Vec<_> = rows.iter().filter(|(v, _, _)| *v == volume).collect();
    assert_eq!(granted.len(), 2, "{rows:?}");
    assert!(granted.iter().all(|(_, _, mode)| mode == "readWriteShared"), "{rows:?}");

    let refused = ask("127.0.69.102", &[]);
    assert!(!refused.status.success() && describe(&refused).contains("gfs"), "{}", describe(&refused));
    assert_eq!(access_rows(&unit).iter().filter(|(v, _, _)| *v == volume).count(), 2);
}
