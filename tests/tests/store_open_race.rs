//! Many processes opening one fresh store at once: `scripts/demo` starts `dvsan-agent run` and,
//! as soon as `unit.db` exists, `dvsan-agent volume create` on the same state directory; both used to run the
//! schema migrations and one failed with "table unit already exists". Here 16 real processes open the same fresh
//! unit store (and station store) at once, 50 rounds, and every one must get past opening it.

use dvsan_tests::{workspace_bin, Proc};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const PROCESSES: usize = 16;
const ROUNDS: usize = 50;

/// Runs `PROCESSES` copies of `command(state_dir)` at once on a fresh state directory per round; `ok` judges each.
fn race(prepare: impl Fn(&Path), command: impl Fn(&Path) -> Command, ok: impl Fn(&Output) -> bool) {
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for round in 0..ROUNDS {
        let state = dir.path().join(format!("round{round}"));
        prepare(&state);
        let children: Vec<_> = (0..PROCESSES)
            .map(|_| {
                let mut cmd = command(&state);
                cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
                cmd.spawn().expect("start the process")
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().expect("wait for the process");
            if !ok(&out) {
                failures.push(format!("round {round}: {}", String::from_utf8_lossy(&out.stderr).trim()));
            }
        }
    }
    assert!(failures.is_empty(), "{} of {} opens failed:\n{}", failures.len(), PROCESSES * ROUNDS, failures.join("\n"));
}

/// A state directory holding an empty store file, as right after the first process created it.
fn fresh_store(state: &Path, file: &str) {
    std::fs::create_dir_all(state).unwrap();
    std::fs::write(state.join(file), b"").unwrap();
}

#[test]
fn sixteen_processes_open_a_fresh_unit_store_at_once() {
    race(
        // `dvsan-agent run` has just created the (still empty) file when the CLI commands start.
        |state| fresh_store(state, "unit.db"),
        |state| {
            let mut cmd = Command::new(workspace_bin("dvsan-agent"));
            cmd.arg("show").arg("--state-dir").arg(state);
            cmd
        },
        // The store opened (and migrated); the unit itself is created by `dvsan-agent run`.
        |out| String::from_utf8_lossy(&out.stderr).contains("has no unit yet"),
    );
}

#[test]
fn sixteen_processes_open_a_fresh_station_store_at_once() {
    race(
        |state| fresh_store(state, "station.db"),
        |state| {
            let mut cmd = Command::new(workspace_bin("dvsan-station"));
            cmd.arg("pool").arg("--json").arg("--state-dir").arg(state);
            cmd
        },
        |out| out.status.success() && String::from_utf8_lossy(&out.stdout).contains("\"units\""),
    );
}

/// The demo's start: `dvsan-agent run` on a fresh state directory and, as soon as `unit.db` appears, CLI commands
/// on it. They must find the unit created (not "has no unit yet"): the agent holds the open lock until its unit row
/// and media are stored.
#[test]
fn commands_started_as_unit_db_appears_find_the_unit() {
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for round in 0..20 {
        let state = dir.path().join(format!("round{round}"));
        let mut agent = Command::new(workspace_bin("dvsan-agent"));
        agent
            .arg("run")
            .arg("--state-dir")
            .arg(&state)
            .arg("--media")
            .arg(format!("{}:8M", dir.path().join(format!("m{round}.img")).display()))
            .args(["--listen", "127.0.0.1:0"]);
        let agent = Proc::spawn(&format!("agent{round}"), agent, dir.path());
        // Polled every 2 ms: the commands start the moment the file is there, as the demo's do.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !state.join("unit.db").exists() {
            assert!(Instant::now() < deadline, "round {round}: unit.db never appeared: {}", agent.log_text());
            std::thread::sleep(Duration::from_millis(2));
        }
        let shows: Vec<_> = (0..8)
            .map(|_| {
                Command::new(workspace_bin("dvsan-agent"))
                    .arg("show")
                    .arg("--state-dir")
                    .arg(&state)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("start dvsan-agent show")
            })
            .collect();
        for show in shows {
            let out = show.wait_with_output().expect("wait for dvsan-agent show");
            if !out.status.success() {
                failures.push(format!("round {round}: {}", String::from_utf8_lossy(&out.stderr).trim()));
            }
        }
        drop(agent);
    }
    assert!(failures.is_empty(), "{} of 160 commands failed:\n{}", failures.len(), failures.join("\n"));
}
