//! What the admin and host CLIs say when there is nothing to show or they cannot do what was asked: one
//! clear sentence naming the problem and what to do, from the real binaries.

use dvsan_tests::units::Station;
use dvsan_tests::{free_udp_port, workspace_bin};
use std::path::Path;
use std::process::{Command, Output};

fn run(mut cmd: Command) -> (bool, String, String) {
    let out: Output = cmd.env_remove("DVSAN_STATION").env_remove("DVSAN_STATION_STATE_DIR").output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn station_cli(args: &[&str], state_dir: &Path) -> (bool, String, String) {
    let mut cmd = Command::new(workspace_bin("dvsan-station"));
    cmd.args(args).arg("--state-dir").arg(state_dir);
    run(cmd)
}

fn host_cli(station: &str, args: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new(workspace_bin("dvsan-host"));
    cmd.env_remove("DVSAN_WRITE_COMMUNITY").args(["--station", station, "--host", "127.0.0.1"]).args(args);
    run(cmd)
}

#[test]
fn a_state_directory_that_cannot_be_used_is_named_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let (ok, _, err) = station_cli(&["pool"], &missing);
    assert!(!ok);
    assert_eq!(
        err,
        format!(
            "dvsan-station: state directory {} does not exist; give the directory `dvsan-station run --state-dir` uses\n",
            missing.display()
        )
    );
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    for command in ["pool", "assignments"] {
        let (ok, _, err) = station_cli(&[command], &file);
        assert!(!ok);
        assert_eq!(
            err,
            format!(
                "dvsan-station: {} is not a directory; --state-dir takes the directory `dvsan-station run --state-dir` uses\n",
                file.display()
            ),
            "{command}"
        );
    }
}

#[test]
fn a_station_that_does_not_answer_is_named_with_what_to_check() {
    let station = format!("127.0.0.1:{}", free_udp_port("127.0.0.1"));
    let (ok, out, err) = host_cli(&station, &["list"]);
    assert!(!ok && out.is_empty());
    assert_eq!(
        err,
        format!(
            "dvsan-host: reading the station's assignments: no answer from the station at {station} after 6s (3 tries): \
             check that `dvsan-station run --snmp-listen {station}` runs there and that \"public\" (--community) is its \
             read community\n"
        )
    );
}

#[test]
fn empty_lists_say_so_and_a_host_is_told_what_it_can_do() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("station");
    let station = Station::start(&state, &[]);
    let snmp = station.snmp.expect("the station serves SNMP").to_string();

    let (ok, out, err) = station_cli(&["assignments"], &state);
    assert!(ok, "{err}");
    assert_eq!(out, "", "stdout stays one line per assignment");
    assert_eq!(
        err,
        "no volumes are assigned to hosts; `dvsan-station request` or `dvsan-station assign` assigns one\n"
    );

    let (ok, out, err) = host_cli(&snmp, &["list"]);
    assert!(ok, "{err}\n{}", station.proc.log_text());
    assert_eq!(out, "", "stdout stays one line per volume");
    assert_eq!(
        err,
        "no volumes are assigned to this host (127.0.0.1); `dvsan-host request --size SIZE` asks for one\n"
    );

    let (ok, _, err) = host_cli(&snmp, &["release", "9/9"]);
    assert!(!ok);
    assert_eq!(
        err,
        "dvsan-host: \"9/9\" is not one of this host's (127.0.0.1) volumes; `dvsan-host list` shows them as UNIT/VOLUME\n"
    );

    // No write community by default: a request says which option to give.
    let (ok, _, err) = host_cli(&snmp, &["request", "--size", "1M"]);
    assert!(!ok);
    assert_eq!(
        err,
        "dvsan-host: this needs the station's write community: give --write-community COMMUNITY (or \
         DVSAN_WRITE_COMMUNITY), the station's --snmp-write-community\n"
    );
}
