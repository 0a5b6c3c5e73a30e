//! Trust in units, with real processes: a station with default settings (no `--trust-community-units`) keeps a
//! unit that announces itself with a community out of the pool until an operator approves it, and refuses an
//! agent at another address that reports the id of a unit in the pool (counted, announced to the NMS, the real
//! unit untouched). net-snmp's tools read DVSAN-STATION-MIB's new objects; snmptrapd is the NMS.

use dvsan_tests::units::*;
use dvsan_tests::*;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

/// A UDP port on 127.0.0.1 that nothing listens on.
fn closed_port() -> std::net::SocketAddr {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// `dvsan-station ARGS --state-dir D`.
fn cli(station: &Station, args: &[&str]) -> std::process::Command {
    let mut cmd = station.cli();
    cmd.args(args).arg("--state-dir").arg(&station.state_dir);
    cmd
}

/// snmpget -Oqv of station MIB objects from the station's own agent.
fn station_get(station: &Station, objects: &[&str]) -> String {
    let address = station.snmp.expect("station agent").to_string();
    let mut args = vec!["-v2c", "-c", "public", "-OUqv", &address];
    args.extend_from_slice(objects);
    snmp_ok("snmpget", &args)
}

/// snmpwalk of a station MIB subtree, one `name = value` line per instance.
fn station_walk(station: &Station, subtree: &str) -> String {
    let address = station.snmp.expect("station agent").to_string();
    snmp_ok("snmpwalk", &["-v2c", "-c", "public", "-Oq", &address, subtree])
}

fn pending_at<'a>(pending: &'a [serde_json::Value], address: &str) -> Option<&'a serde_json::Value> {
    pending.iter().find(|p| p["address"] == address)
}

#[test]
fn an_unknown_unit_waits_pending_until_approved_and_a_rejected_one_stays_out() {
    let dir = tempfile::tempdir().unwrap();
    let trapd = TrapReceiver::start(dir.path());
    let station = Station::start_secure(&dir.path().join("station"), &["--forward", &trapd.addr.to_string()]);

    // A unit with default settings announces itself (coldStart, v2c): pending, not pooled.
    let mut rogue = Unit::start(&dir.path().join("u1"), "127.0.47.1", station.traps, "32M", &[]);
    rogue.serve_data();
    let id = rogue.unit_id();
    let row = wait_until("a pending row for 127.0.47.1", WAIT, || {
        pending_at(&station.pending(), "127.0.47.1:1161")
            .filter(|p| p["sys_descr"].as_str().is_some_and(|s| !s.is_empty()))
            .cloned()
    });
    assert_eq!(row["unit_id"], id.as_str());
    assert_eq!(row["state"], "pending");
    assert!(row["sys_descr"].as_str().unwrap().contains("dvsan"), "{row:#}");
    assert!(station.unit_at("127.0.47.1:1161").is_none(), "{:#}", station.pool());
    assert_eq!(station.pool()["units"].as_array().unwrap().len(), 0);

    // Nothing is allocated from it.
    let err = run_fails(&mut cli(&station, &["request", "--size", "1M", "--host", "127.0.47.100"]));
    assert!(!err.is_empty());
    assert!(rogue.show()["volumes"].as_array().is_none_or(|v| v.is_empty()), "{:#}", rogue.show());

    // The station MIB shows it, and the NMS was told.
    let index = row["index"].as_u64().unwrap().to_string();
    wait_until("dvsanStationPendingUnits.0 = 1", WAIT, || {
        (station_get(&station, &["DVSAN-STATION-MIB::dvsanStationPendingUnits.0"]).trim() == "1").then_some(())
    });
    let table = station_walk(&station, "DVSAN-STATION-MIB::dvsanStationPendingTable");
    assert!(table.contains(&format!("dvsanStationPendingUnitId.{index} {id}")), "{table}");
    assert!(table.contains(&format!("dvsanStationPendingState.{index} pending")), "{table}");
    assert!(table.contains(&format!("dvsanStationPendingPort.{index} 1161")), "{table}");
    trapd.expect("DVSAN-STATION-MIB::dvsanStationUnitPending", WAIT);
    assert!(trapd.logged(&["dvsanStationUnitPending", &id]).is_some(), "{}", trapd.text());
    let listed = run_ok(&mut cli(&station, &["unit", "pending"]));
    assert!(listed.contains("127.0.47.1:1161") && listed.contains(&id), "{listed}");

    // Approve (by a prefix of the unit id it claims): pooled, and storage comes from it.
    let out = run_ok(&mut cli(&station, &["unit", "approve", &id[..8]]));
    assert!(out.contains("approved pending unit") && out.contains(&id), "{out}");
    station.wait_unit("127.0.47.1:1161", "the approved unit", WAIT, |u| u["state"] == "available");
    assert!(pending_at(&station.pending(), "127.0.47.1:1161").is_none());
    let text = run_ok(&mut cli(&station, &["request", "--json", "--size", "1M", "--host", "127.0.47.100"]));
    let allocation: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(allocation["agent"], "127.0.47.1:1161", "{allocation:#}");

    // Another unknown unit: rejected, it stays out of the pool and off the pending list.
    let second = Unit::start(&dir.path().join("u2"), "127.0.47.2", station.traps, "16M", &[]);
    let row =
        wait_until("a pending row for 127.0.47.2", WAIT, || pending_at(&station.pending(), "127.0.47.2:1161").cloned());
    assert_eq!(row["unit_id"], second.unit_id().as_str());
    let out = run_ok(&mut cli(&station, &["unit", "reject", "127.0.47.2"]));
    assert!(out.contains("rejected pending unit"), "{out}");
    let text = run_ok(&mut cli(&station, &["unit", "pending", "--json"]));
    assert!(!text.contains("127.0.47.2"), "{text}");
    assert_eq!(pending_at(&station.pending(), "127.0.47.2:1161").unwrap()["state"], "rejected");
    let index = row["index"].as_u64().unwrap();
    wait_until("dvsanStationPendingState rejected", WAIT, || {
        let state = station_get(&station, &[&format!("DVSAN-STATION-MIB::dvsanStationPendingState.{index}")]);
        (state.trim() == "rejected").then_some(())
    });
    assert!(station.unit_at("127.0.47.2:1161").is_none());
    assert_eq!(station_get(&station, &["DVSAN-STATION-MIB::dvsanStationPendingUnits.0"]).trim(), "0");
    // Unknown names are refused with a hint.
    let err = run_fails(&mut cli(&station, &["unit", "approve", "127.0.47.99"]));
    assert!(err.contains("unit pending"), "{err}");
}

#[test]
fn a_fake_agent_reporting_a_pooled_units_id_is_refused_and_the_real_unit_stays() {
    let dir = tempfile::tempdir().unwrap();
    let trapd = TrapReceiver::start(dir.path());
    let station = Station::start_secure(&dir.path().join("station"), &["--forward", &trapd.addr.to_string()]);

    // The real unit: registered by the operator, enrolled, holding an assigned volume.
    let mut real = Unit::start(&dir.path().join("real"), "127.0.48.1", station.traps, "32M", &[]);
    real.serve_data();
    let id = real.unit_id();
    run_ok(&mut cli(&station, &["unit", "add", "127.0.48.1"]));
    station.wait_unit("127.0.48.1:1161", "the registered unit", WAIT, |u| u["state"] == "available");
    let users = dir.path().join("real-users.toml");
    let users_text = users.display().to_string();
    let out = run_ok(&mut cli(&station, &["unit", "enroll", &id, "--out", &users_text]));
    assert!(out.contains("unit-") && out.contains("SHA-256/AES"), "{out}");
    for file in [users.clone(), station.state_dir.join("unit-users.toml")] {
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
    }
    let text = std::fs::read_to_string(&users).unwrap();
    assert!(text.contains("[[user]]") && text.contains("auth = \"SHA-256\"") && text.contains("priv = \"AES\""));
    let text = run_ok(&mut cli(&station, &["request", "--json", "--size", "2M", "--host", "127.0.48.100"]));
    let allocation: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(allocation["agent"], "127.0.48.1:1161");
    let before = station.unit_at("127.0.48.1:1161").unwrap();

    // The fake: a unit agent at 127.0.48.2 whose store says it is the real unit, announcing itself.
    let fake_dir = dir.path().join("fake");
    let mut first = Unit::start(&fake_dir, "127.0.48.2", closed_port(), "16M", &[]);
    first.proc.terminate();
    drop(first);
    let db = rusqlite::Connection::open(fake_dir.join("unit.db")).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    db.execute("UPDATE unit SET unit_id = ?1", [&id]).unwrap();
    drop(db);
    let fake = Unit::start(&fake_dir, "127.0.48.2", station.traps, "16M", &[]);
    assert_eq!(fake.unit_id(), id);

    // Refused: counted (read with net-snmp), announced to the NMS with where the claim came from.
    wait_until("dvsanStationIdentityRefusals.0 >= 1", WAIT, || {
        let value = station_get(&station, &["DVSAN-STATION-MIB::dvsanStationIdentityRefusals.0"]);
        (value.trim().parse::<u64>().ok()? >= 1).then_some(())
    });
    trapd.expect("DVSAN-STATION-MIB::dvsanStationIdentityRefused", WAIT);
    assert!(trapd.logged(&["dvsanStationIdentityRefused", &id, "127.0.48.2"]).is_some(), "{}", trapd.text());

    // The real unit is untouched: same row, address, state, volumes and assignment; the fake is nowhere.
    let after = station.unit_at("127.0.48.1:1161").expect("the real unit is still in the pool");
    assert_eq!(after["index"], before["index"]);
    assert_eq!(after["unit_id"], id.as_str());
    assert_eq!(after["state"], "available");
    assert_eq!(volumes_of(&after), volumes_of(&before));
    assert!(station.unit_at("127.0.48.2:1161").is_none(), "{:#}", station.pool());
    assert!(pending_at(&station.pending(), "127.0.48.2:1161").is_none(), "{:?}", station.pending());
    let assigned = run_ok(&mut cli(&station, &["assignments", "--json"]));
    assert!(assigned.contains("127.0.48.100") && assigned.contains("127.0.48.1:1161"), "{assigned}");
    // Polls go on reaching the real unit at its own address.
    station.wait_unit("127.0.48.1:1161", "a later poll of the real unit", WAIT, |u| {
        u["last_seen"] != before["last_seen"] && u["state"] == "available"
    });
    drop(fake);
}
