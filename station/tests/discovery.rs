//! Units the station hears nothing from: a unit started before the station with its notifications going nowhere
//! is found with `unit add`, and every change it makes afterwards (its notifications still lost) is repaired by
//! polling within a few poll intervals. Also the CLI's errors for bad addresses, unknown units and state dirs.

use dvsan_tests::units::*;
use dvsan_tests::*;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

/// A UDP port on 127.0.0.1 that nothing listens on.
fn closed_port() -> std::net::SocketAddr {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

#[test]
fn unit_add_finds_a_running_unit_and_polling_repairs_lost_traps() {
    let dir = tempfile::tempdir().unwrap();
    let nowhere = closed_port();
    let mut unit = Unit::start(&dir.path().join("u1"), "127.0.2.1", nowhere, "32M", &[]);
    unit.serve_data();
    unit.admin(&["volume", "create", "--size", "2M", "--name", "early"]);

    let station = Station::start(&dir.path().join("station"), &[]);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(station.unit_at(&unit.address()).is_none(), "the station cannot know the unit yet");

    // `unit add` while the station runs: read now, polled from then on.
    let out = run_ok(station.cli().args(["unit", "add", "127.0.2.1", "--state-dir"]).arg(&station.state_dir));
    assert!(out.contains(&unit.unit_id()) && out.contains("1 volume(s)"), "{out}");
    let pooled = station.wait_unit(&unit.address(), "available", WAIT, |u| u["state"] == "available");
    assert_eq!(volumes_of(&pooled)[0].1, "early");

    // A layout change whose dvsanLayoutChanged is lost: the next poll sees the change counter move.
    run_ok(net_snmp("snmpset").args(["-v2c", "-c", WRITE_COMMUNITY]).arg(unit.address()).args([
        "DVSAN-MIB::dvsanVolumeRowStatus.5",
        "i",
        "createAndGo",
        "DVSAN-MIB::dvsanVolumeLength.5",
        "u",
        "100",
    ]));
    let started = std::time::Instant::now();
    station.wait_unit(&unit.address(), "volume 5 after a lost notification", WAIT, |u| {
        volumes_of(u).iter().any(|v| v.0 == 5 && v.4 == 100)
    });
    assert!(started.elapsed() < Duration::from_secs(5), "repair took {:?}", started.elapsed());

    // The data service stops and the linkDown is lost: polling sees ifOperStatus down.
    unit.stop_data();
    let down = station.wait_unit(&unit.address(), "unavailable after the data service stopped", WAIT, |u| {
        u["state"] == "unavailable"
    });
    assert!(volumes_of(&down).iter().all(|v| v.5 == "unavailable"), "{down:#}");
    unit.serve_data();
    station.wait_unit(&unit.address(), "available again", WAIT, |u| u["state"] == "available");

    // A registered address with nothing behind it is kept and shown, and does not disturb the rest.
    let out = run_ok(
        station
            .cli()
            .args(["unit", "add", "127.0.2.9:1161", "--timeout", "200ms", "--state-dir"])
            .arg(&station.state_dir),
    );
    assert!(out.contains("did not answer"), "{out}");
    let ghost = station.unit_at("127.0.2.9:1161").expect("registered address in the pool");
    assert_eq!(ghost["state"], "unreachable");
    assert!(ghost["unit_id"].is_null());
    // It becomes the unit once one answers there.
    let mut late = Unit::start(&dir.path().join("u9"), "127.0.2.9", nowhere, "16M", &[]);
    late.serve_data();
    let adopted = station.wait_unit("127.0.2.9:1161", "the late unit", WAIT, |u| u["state"] == "available");
    assert_eq!(adopted["unit_id"], late.unit_id().as_str());
    assert_eq!(adopted["index"], ghost["index"]);
    assert_eq!(station.unit_at(&unit.address()).unwrap()["state"], "available");

    // A restarted station keeps its pool and resumes polling: a change it gets no notification for shows up.
    let state_dir = station.state_dir.clone();
    let mut station = station;
    station.proc.terminate();
    let station = Station::start(&state_dir, &[]);
    assert_eq!(station.unit_at(&unit.address()).unwrap()["state"], "available");
    late.admin(&["volume", "create", "--size", "1M", "--name", "after-restart"]);
    station.wait_unit("127.0.2.9:1161", "a volume made while no notification reaches the station", WAIT, |u| {
        volumes_of(u).iter().any(|v| v.1 == "after-restart")
    });
}

#[test]
fn cli_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let station_cli = || std::process::Command::new(workspace_bin("dvsan-station"));

    let err = run_fails(station_cli().args(["pool", "--state-dir"]).arg(&missing));
    assert!(err.contains(&format!("state directory {} does not exist", missing.display())), "{err}");
    let err = run_fails(station_cli().args(["traps", "--state-dir"]).arg(dir.path()));
    assert!(err.contains("holds no station store"), "{err}");
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let err = run_fails(station_cli().args(["unit", "add", "127.0.0.1", "--state-dir"]).arg(&file));
    assert!(err.contains(&format!("{} is not a directory", file.display())), "{err}");

    let state = dir.path().join("station");
    let err = run_fails(station_cli().args(["unit", "add", "unit_a", "--state-dir"]).arg(&state));
    assert!(err.contains("\"unit_a\" is not an address") && err.contains("NAME:PORT"), "{err}");
    // A host name that does not resolve (.invalid never does) is refused before anything is stored.
    let err = run_fails(station_cli().args(["unit", "add", "unit-a.invalid", "--state-dir"]).arg(&state));
    assert!(err.contains("host name \"unit-a.invalid\" does not resolve"), "{err}");
    assert!(!state.exists(), "a refused unit add makes no store");
    let err = run_fails(station_cli().args(["unit", "add", "127.0.0.1:0", "--state-dir"]).arg(&state));
    assert!(err.contains("port 0"), "{err}");

    // An empty store: unknown units and notification types are named.
    dvsan_station::store::StationStore::open(&state).unwrap();
    let err = run_fails(station_cli().args(["traps", "--unit", "nope", "--state-dir"]).arg(&state));
    assert!(err.contains("no unit matches \"nope\""), "{err}");
    let err = run_fails(station_cli().args(["traps", "--type", "linkSideways", "--state-dir"]).arg(&state));
    assert!(err.contains("unknown notification"), "{err}");
    let err = run_fails(station_cli().args(["traps", "--since", "last tuesday", "--state-dir"]).arg(&state));
    assert!(err.contains("--since"), "{err}");
    let out = run_ok(station_cli().args(["pool", "--state-dir"]).arg(&state));
    assert!(out.contains("The pool is empty"), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&run_ok(station_cli().args(["pool", "--json", "--state-dir"]).arg(&state))).unwrap();
    assert_eq!(json, serde_json::json!({ "units": [] }));

    let err =
        run_fails(station_cli().args(["run", "--listen-traps", "nowhere.invalid:162", "--state-dir"]).arg(&state));
    assert!(err.contains("--listen-traps") && err.contains("\"nowhere.invalid\" does not resolve"), "{err}");
    let err = run_fails(
        station_cli()
            .args(["run", "--listen-traps", "127.0.0.1:0", "--poll-interval", "0s", "--state-dir"])
            .arg(&state),
    );
    assert!(err.contains("positive"), "{err}");
}
