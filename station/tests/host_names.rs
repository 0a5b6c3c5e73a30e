//! Host names wherever an address is taken: an agent listening on and sending its notifications to
//! `localhost:PORT`, the station forwarding to an NMS by name, `unit add localhost:PORT` keeping the name (pool
//! text and JSON, dvsanStationUnitHostName), `dvsan-host --station localhost:PORT`, names that do not resolve,
//! and a unit registered by name found again by resolving the name when it stops answering at its stored
//! address (the stored address is moved away in the store, as if the name's DNS entry had changed).

use dvsan_station::store::StationStore;
use dvsan_tests::units::*;
use dvsan_tests::*;
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

#[test]
fn host_names_are_accepted_kept_shown_and_resolved_again() {
    let dir = tempfile::tempdir().unwrap();
    let trapd = TrapReceiver::start(dir.path());
    let nms = trapd.addr;
    // The agent's port, free on 127.0.0.1 (where `localhost` resolves to first).
    let agent = free_udp_addr("127.0.0.1");
    let port = agent.port().to_string();
    let forward = format!("localhost:{}", nms.port());
    let station = Station::start(&dir.path().join("station"), &["--forward", &forward, "--agent-port", &port]);
    let sink = format!("localhost:{}", station.traps.port());
    let listen = format!("localhost:{port}");
    let mut unit = Unit::start_named(&dir.path().join("u1"), &listen, agent, &sink, "32M", &[]);
    unit.serve_data();

    // The agent's coldStart reached the station through the named trap sink; the station's dvsanStationUnitJoined
    // reached snmptrapd through the named --forward.
    let joined = station.wait_unit(&agent.to_string(), "available", WAIT, |u| u["state"] == "available");
    let index = joined["index"].as_u64().unwrap();
    wait_until("dvsanStationUnitJoined at snmptrapd", WAIT, || {
        trapd.logged(&["DVSAN-STATION-MIB::dvsanStationUnitJoined", &unit.unit_id()])
    });

    // unit add by name: resolved, and the name kept with the unit and shown.
    let state = station.state_dir.clone();
    let out = run_ok(station.cli().args(["unit", "add", &listen, "--state-dir"]).arg(&state));
    assert!(out.contains(&format!("at localhost:{port} ({agent})")), "{out}");
    let pooled = station.unit_at(&agent.to_string()).unwrap();
    assert_eq!((pooled["host_name"].as_str(), pooled["index"].as_u64()), (Some("localhost"), Some(index)));
    let text = run_ok(station.cli().args(["pool", "--state-dir"]).arg(&state));
    assert!(text.contains(&format!("localhost:{port} ({agent})")), "{text}");
    let got = run_ok(
        net_snmp("snmpget")
            .args(["-v2c", "-c", "public", "-Oqv"])
            .arg(format!("localhost:{}", station.snmp.unwrap().port()))
            .arg(format!("DVSAN-STATION-MIB::dvsanStationUnitHostName.{index}")),
    );
    assert_eq!(got.trim(), "localhost");

    // dvsan-host reaches the station by name; a name that does not resolve is a clear error.
    let host = |station_text: &str| {
        let mut cmd = Command::new(workspace_bin("dvsan-host"));
        cmd.env_remove("DVSAN_STATION").args(["--station", station_text, "--host", "127.0.0.1", "list"]);
        cmd
    };
    run_ok(&mut host(&format!("localhost:{}", station.snmp.unwrap().port())));
    let err = run_fails(&mut host("station.invalid"));
    assert!(err.contains("--station") && err.contains("\"station.invalid\" does not resolve"), "{err}");
    let err = run_fails(&mut host("station_1:1161"));
    assert!(err.contains("is not an address") && err.contains("NAME:PORT"), "{err}");

    // The name's address "changes": the unit is moved to an address where nothing answers. The first missed poll
    // resolves the name again, and the unit is found back at the address the name resolves to.
    let moved: std::net::SocketAddr = format!("127.0.0.98:{port}").parse().unwrap();
    StationStore::open(&state).unwrap().move_unit(index as u32, moved, 0).unwrap();
    assert!(station.unit_at(&agent.to_string()).is_none());
    let back = station.wait_unit(&agent.to_string(), "back at its name's address", WAIT, |u| u["index"] == index);
    assert_eq!(back["host_name"], "localhost");
    let log = station.proc.log_text();
    assert!(log.contains("host name resolves to a new address"), "{log}");
    drop(unit);
}
