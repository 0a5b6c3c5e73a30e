//! The real console in a real terminal: `dvsan-console` runs inside a detached tmux session against a real station
//! and two real units (agent + blockd each); the test types keys with `tmux send-keys` and reads the screen with
//! `tmux capture-pane`, the way an operator would see it. The console is given only the station's SNMP address:
//! pool, tasks and the notification tail all come over SNMP. A station with the default trust settings keeps a
//! unit that announces itself pending until the operator approves it on the console's Pending screen.

use dvsan_tests::tmux::{tmux, Tmux};
use dvsan_tests::units::{SanUnit, Station};
use dvsan_tests::{free_udp_port, require_tool, wait_for};
use std::time::Duration;

/// The units' names in the pool, in station index order.
fn unit_names(station: &Station) -> Vec<String> {
    let pool = station.pool();
    pool["units"].as_array().unwrap().iter().map(|u| u["name"].as_str().unwrap_or("").to_string()).collect()
}

/// Volume names of the pool.
fn volume_names(station: &Station) -> Vec<String> {
    let pool = station.pool();
    pool["units"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|u| u["volumes"].as_array().cloned().unwrap_or_default())
        .map(|v| v["name"].as_str().unwrap_or("").to_string())
        .collect()
}

/// The console in a `width`×`height` terminal against `station`, refreshing every 500 ms.
fn console(station: &Station, name: &str, width: u16, height: u16) -> Tmux {
    let snmp = station.snmp.expect("the station serves SNMP");
    Tmux::console(name, width, height, snmp, &["--refresh", "500ms"])
}

/// `c` on the selected unit, then the form: `size`, Tab, `name`, Enter.
fn create_volume(console: &Tmux, size: &str, name: &str) {
    console.keys(&["c"]);
    console.expect(&["Size"], Duration::from_secs(5));
    console.text(size);
    console.keys(&["Tab"]);
    console.text(name);
    console.keys(&["Enter"]);
}

#[test]
fn an_operator_creates_volumes_runs_two_tasks_at_once_and_sees_a_link_go_down() {
    require_tool("tmux", "tmux");
    let dir = tempfile::tempdir().unwrap();
    // Both agents on one port (the station knows units by source address and --agent-port), distinct addresses.
    let agent_port = free_udp_port("127.0.0.171");
    let station = Station::start(&dir.path().join("station"), &["--agent-port", &agent_port.to_string()]);
    let traps = station.traps.to_string();
    let mut units = vec![
        SanUnit::start(
            &dir.path().join("tmuxunit1"),
            &format!("127.0.0.171:{agent_port}"),
            &traps,
            "tmuxunit1",
            &["256M"],
        ),
        SanUnit::start(
            &dir.path().join("tmuxunit2"),
            &format!("127.0.0.172:{agent_port}"),
            &traps,
            "tmuxunit2",
            &["256M"],
        ),
    ];
    let pooled = wait_for(Duration::from_secs(15), || {
        let names = unit_names(&station);
        (names.len() == 2).then_some(names)
    });
    assert!(pooled.is_some(), "the units never joined the pool: {}", station.proc.log_text());

    let console = console(&station, "dvsan-console-e2e", 120, 35);
    console.expect(&["tmuxunit1", "tmuxunit2", "available"], Duration::from_secs(15));

    // 1. Create a volume on the selected (first) unit: `c` opens the form with the unit filled in.
    create_volume(&console, "64M", "e2evol");
    console.expect(&["done: created volume"], Duration::from_secs(20));
    console.keys(&["2"]);
    console.expect(&["e2evol"], Duration::from_secs(10));
    assert!(volume_names(&station).contains(&"e2evol".to_string()), "the station's pool has the new volume");

    // 2. Two tasks at once, on the two units, from the units screen; both end done on the tasks screen.
    console.keys(&["1", "g"]);
    console.keys(&["c"]);
    console.text("32M");
    console.keys(&["Tab"]);
    console.text("twina");
    console.keys(&["Enter", "Down", "c"]);
    console.text("32M");
    console.keys(&["Tab"]);
    console.text("twinb");
    console.keys(&["Enter", "6"]);
    let screen = console.expect(&["Tasks"], Duration::from_secs(5));
    let both = wait_for(Duration::from_secs(20), || {
        let screen = console.screen();
        // Rows of the table (the selected task's pane below repeats one of them).
        let rows = screen.lines().filter(|l| l.starts_with('│'));
        let done = rows.filter(|l| l.contains("create 32 MiB vol") && l.contains("done")).count();
        (done == 2).then_some(screen)
    });
    assert!(both.is_some(), "both tasks should end done; first screen:\n{screen}\nnow:\n{}", console.screen());
    let names = volume_names(&station);
    assert!(names.contains(&"twina".to_string()) && names.contains(&"twinb".to_string()), "{names:?}");

    // 3. Stop the second unit's data service: its agent sends linkDown, the station logs it, and the console's
    //    notification tail (read over SNMP) shows it, filtered to that unit.
    if let Some(mut blockd) = units[1].blockd.take() {
        let _ = blockd.child.kill();
        let _ = blockd.child.wait();
    }
    console.keys(&["4", "/"]);
    console.text("unit:tmuxunit2 type:linkDown");
    console.keys(&["Enter"]);
    console.expect(&["linkDown", "ifOperStatus.1=2", "tmuxunit2"], Duration::from_secs(20));

    // Quitting restores the terminal and ends the program.
    console.keys(&["q"]);
    let ended = wait_for(Duration::from_secs(5), || console.ended().then_some(()));
    assert!(ended.is_some(), "the console did not quit on q:\n{}", console.screen());
    drop(units.remove(0));
    let session = console.session.clone();
    drop(console);
    // (The tmux server is shared with the other tests of this process, so only this test's session is checked.)
    assert!(!tmux(&["has-session", "-t", &session]).status.success(), "the console's tmux session is still there");
}

#[test]
fn an_operator_opens_the_map_of_a_unit_on_two_media() {
    require_tool("tmux", "tmux");
    let dir = tempfile::tempdir().unwrap();
    let agent_port = free_udp_port("127.0.0.173");
    let station = Station::start(&dir.path().join("station"), &["--agent-port", &agent_port.to_string()]);
    let traps = station.traps.to_string();
    let _unit = SanUnit::start(
        &dir.path().join("mapunit"),
        &format!("127.0.0.173:{agent_port}"),
        &traps,
        "mapunit",
        &["64M", "64M"],
    );
    let pooled = wait_for(Duration::from_secs(15), || (unit_names(&station).len() == 1).then_some(()));
    assert!(pooled.is_some(), "the unit never joined the pool: {}", station.proc.log_text());
    let console = console(&station, "dvsan-console-map", 100, 32);
    console.expect(&["mapunit", "available", "Pool:"], Duration::from_secs(15));
    // Two 48 MiB volumes on two 64 MiB media: the second starts on the first medium and ends on the second.
    for name in ["first", "spanner"] {
        create_volume(&console, "48M", name);
        let created =
            wait_for(Duration::from_secs(20), || volume_names(&station).contains(&name.to_string()).then_some(()));
        assert!(created.is_some(), "volume {name} was not created:\n{}", console.screen());
    }
    // Enter on the unit opens its map: a band per medium, the volumes named in them, the spanning one on both.
    console.keys(&["g", "Enter"]);
    let screen = console.expect(
        &["Unit mapunit", "medium 1:", "medium 2:", "m0.img", "m1.img", "│first", "spanner▸", "◂spanner"],
        Duration::from_secs(15),
    );
    assert!(screen.contains("largest free"), "{screen}");
    // b lists every boundary's LBAs.
    console.keys(&["b"]);
    console.expect(&["LBAs: first 0–"], Duration::from_secs(5));
    console.keys(&["Escape"]);
    console.expect(&["Pool:", "mapunit"], Duration::from_secs(5));
}

#[test]
fn an_operator_approves_a_pending_unit_in_the_console_and_it_joins_the_pool() {
    require_tool("tmux", "tmux");
    let dir = tempfile::tempdir().unwrap();
    let agent_port = free_udp_port("127.0.0.174");
    // The station's defaults for trust: a unit that announces itself waits for approval.
    let station = Station::start_secure(&dir.path().join("station"), &["--agent-port", &agent_port.to_string()]);
    let address = format!("127.0.0.174:{agent_port}");
    let _unit =
        SanUnit::start(&dir.path().join("pendunit"), &address, &station.traps.to_string(), "pendunit", &["64M"]);
    let pending = wait_for(Duration::from_secs(15), || {
        station.pending().iter().any(|p| p["address"] == address.as_str() && p["state"] == "pending").then_some(())
    });
    assert!(pending.is_some(), "the unit never became pending: {}", station.proc.log_text());
    assert!(station.unit_at(&address).is_none(), "a unit nobody approved is in the pool");

    let console = console(&station, "dvsan-console-pending", 100, 30);
    // The status line says a unit waits; P shows what it claims.
    console.expect(&["1 pending approval (P)"], Duration::from_secs(15));
    console.keys(&["P"]);
    console.expect(&["Pending units (1 waiting", &address, "pendunit", "pending"], Duration::from_secs(10));
    // A asks first; y sends the approveUnit task, whose result the status line shows.
    console.keys(&["A"]);
    console.expect(&["Really approve pending unit", "(y/n)"], Duration::from_secs(5));
    console.keys(&["y"]);
    console.expect(&["done: approved pending unit", &address], Duration::from_secs(20));
    station.wait_unit(&address, "the approved unit", Duration::from_secs(15), |u| u["state"] == "available");
    assert!(
        station.pending().iter().all(|p| p["address"] != address.as_str()),
        "the pending row is gone: {:?}",
        station.pending()
    );
    console.expect(&["Pending units (0 waiting"], Duration::from_secs(10));
    console.keys(&["1"]);
    console.expect(&["pendunit", "available"], Duration::from_secs(15));
}
