//! The real console in a real terminal: `dvsan-console` runs inside a detached tmux session against a real station
//! and two real units (agent + blockd each); the test types keys with `tmux send-keys` and reads the screen with
//! `tmux capture-pane`, the way an operator would see it. The console is given only the station's SNMP address:
//! pool, tasks and the notification tail all come over SNMP.

use dvsan_tests::units::{SanUnit, Station, WRITE_COMMUNITY};
use dvsan_tests::{free_udp_port, require_tool, wait_for, workspace_bin};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

/// A detached tmux session running one command; killed on drop.
struct Tmux {
    session: String,
}

impl Tmux {
    fn start(name: &str, width: u16, height: u16, command: &[String]) -> Tmux {
        require_tool("tmux", "tmux");
        let session = format!("{name}-{}", std::process::id());
        let mut cmd = Command::new("tmux");
        cmd.arg("-S")
            .arg(tmux_socket())
            .args(["new-session", "-d", "-s", &session, "-x", &width.to_string(), "-y", &height.to_string()])
            .env("TERM", "xterm-256color")
            .args(command);
        let out = cmd.output().expect("run tmux");
        assert!(out.status.success(), "tmux new-session failed: {}", String::from_utf8_lossy(&out.stderr));
        // A pane that survives the program's exit keeps its last screen for the failure message.
        tmux(&["set-option", "-t", &session, "remain-on-exit", "on"]);
        Tmux { session }
    }

    /// Types keys: tmux key names (`Enter`, `Tab`, `Down`, `Escape`) or literal text with `-l`.
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", self.session.as_str()];
        args.extend_from_slice(keys);
        let out = tmux(&args);
        assert!(out.status.success(), "send-keys {keys:?}: {}", String::from_utf8_lossy(&out.stderr));
        // The console reads keys on its own thread; a short pause keeps their order across calls obvious.
        std::thread::sleep(Duration::from_millis(150));
    }

    fn text(&self, text: &str) {
        self.keys(&["-l", text]);
    }

    fn screen(&self) -> String {
        let out = tmux(&["capture-pane", "-p", "-t", &self.session]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the screen shows every one of `needles`; panics with the screen otherwise.
    fn expect(&self, needles: &[&str], limit: Duration) -> String {
        let seen = wait_for(limit, || {
            let screen = self.screen();
            needles.iter().all(|n| screen.contains(n)).then_some(screen)
        });
        match seen {
            Some(screen) => screen,
            None => panic!("the console never showed {needles:?}; screen:\n{}", self.screen()),
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = tmux(&["kill-session", "-t", &self.session]);
        // The server exits with its last session but leaves its socket behind.
        if !tmux(&["has-session"]).status.success() {
            let _ = std::fs::remove_file(tmux_socket());
        }
    }
}

/// This test process's own tmux server (not the user's default one, whose socket would stay in /tmp/tmux-UID).
fn tmux_socket() -> PathBuf {
    std::env::temp_dir().join(format!("dvsan-console-test-tmux-{}.sock", std::process::id()))
}

fn tmux(args: &[&str]) -> Output {
    Command::new("tmux").arg("-S").arg(tmux_socket()).args(args).output().expect("run tmux")
}

/// A SAN unit: agent and blockd side by side on one state directory.
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

    let console = Tmux::start(
        "dvsan-console-e2e",
        120,
        35,
        &[
            workspace_bin("dvsan-console").display().to_string(),
            "--station".into(),
            station.snmp.expect("the station serves SNMP").to_string(),
            "--refresh".into(),
            "500ms".into(),
            "--write-community".into(),
            WRITE_COMMUNITY.into(),
        ],
    );
    console.expect(&["tmuxunit1", "tmuxunit2", "available"], Duration::from_secs(15));

    // 1. Create a volume on the selected (first) unit: `c` opens the form with the unit filled in.
    console.keys(&["c"]);
    console.expect(&["Size"], Duration::from_secs(5));
    console.text("64M");
    console.keys(&["Tab"]);
    console.text("e2evol");
    console.keys(&["Enter"]);
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
        let done = screen.lines().filter(|l| l.contains("create 32 MiB vol") && l.contains("done")).count();
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
    let ended = wait_for(Duration::from_secs(5), || {
        let out = tmux(&["display-message", "-p", "-t", &console.session, "#{pane_dead}"]);
        (String::from_utf8_lossy(&out.stdout).trim() == "1").then_some(())
    });
    assert!(ended.is_some(), "the console did not quit on q:\n{}", console.screen());
    drop(units.remove(0));
    drop(console);
    assert!(!tmux_socket().exists(), "the test's tmux server left its socket behind");
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
    let console = Tmux::start(
        "dvsan-console-map",
        100,
        32,
        &[
            workspace_bin("dvsan-console").display().to_string(),
            "--station".into(),
            station.snmp.expect("the station serves SNMP").to_string(),
            "--refresh".into(),
            "500ms".into(),
            "--write-community".into(),
            WRITE_COMMUNITY.into(),
        ],
    );
    console.expect(&["mapunit", "available", "Pool:"], Duration::from_secs(15));
    // Two 48 MiB volumes on two 64 MiB media: the second starts on the first medium and ends on the second.
    for name in ["first", "spanner"] {
        console.keys(&["c"]);
        console.expect(&["Size"], Duration::from_secs(5));
        console.text("48M");
        console.keys(&["Tab"]);
        console.text(name);
        console.keys(&["Enter"]);
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
