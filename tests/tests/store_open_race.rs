//! Many processes opening one fresh store at once (issue 12, item 1): `scripts/demo` starts `dvsan-agent run` and,
//! as soon as `unit.db` exists, `dvsan-agent volume create` on the same state directory; both used to run the
//! schema migrations and one failed with "table unit already exists". Here 16 real processes open the same fresh
//! unit store (and station store) at once, 50 rounds, and every one must get past opening it.

use dvsan_tests::workspace_bin;
use std::path::Path;
use std::process::{Command, Output, Stdio};

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
