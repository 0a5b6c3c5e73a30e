//! The station's own agent over SNMPv3 (`--users`, `--admin-user`), with net-snmp's tools, `dvsan-host` and
//! snmptrapd as the peers: users read the pool, a read-write user's storage request belongs to that user (another
//! user neither sees nor releases it, the admin user does), a read-only user cannot write, a wrong passphrase
//! changes nothing, `dvsan-host --credentials --user` works with no write community anywhere, and `--forward-user`
//! forwards notifications as SNMPv3 traps that snmptrapd accepts under the station's engine id, and as v3 informs to
//! snmptrapd's own engine.

use dvsan_tests::units::*;
use dvsan_tests::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

/// The users of these tests: (name, auth passphrase, priv passphrase, access).
const USERS: [(&str, &str, &str, &str); 4] = [
    ("host-a", "host-a-auth-pass", "host-a-priv-pass", "read-write"),
    ("host-b", "host-b-auth-pass", "host-b-priv-pass", "read-write"),
    ("noc", "noc-auth-pass-01", "noc-priv-pass-01", "read-write"),
    ("monitor", "monitor-auth-pass", "monitor-priv-pass", "read-only"),
];

/// Writes the users file (SHA-256/AES for everyone, mode 0600) into `dir`.
fn users_file(dir: &Path) -> PathBuf {
    dvsan_tests::write_users_file(&dir.join("station-users.toml"), &USERS, 0o600)
}

/// net-snmp `tool` against the station's agent as v3 `user` (authPriv SHA-256/AES), with `auth` as its
/// authentication passphrase, one try of 1 s.
fn v3_as(station: &Station, tool: &str, user: &str, auth: &str, args: &[&str]) -> Output {
    let (_, _, privacy, _) = USERS.iter().find(|u| u.0 == user).copied().expect("a test user");
    net_snmp(tool)
        .args(["-v3", "-l", "authPriv", "-u", user, "-a", "SHA-256", "-A", auth, "-x", "AES", "-X", privacy])
        .args(["-t", "1", "-r", "0"])
        .arg(station.snmp.expect("the station serves SNMP").to_string())
        .args(args)
        .output()
        .expect("net-snmp runs")
}

/// [`v3_as`] with the user's own passphrase.
fn v3(station: &Station, tool: &str, user: &str, args: &[&str]) -> Output {
    let (_, auth, _, _) = USERS.iter().find(|u| u.0 == user).copied().expect("a test user");
    v3_as(station, tool, user, auth, args)
}

fn submit(station: &Station, user: &str, row: &[String]) -> Output {
    let refs: Vec<&str> = row.iter().map(String::as_str).collect();
    v3(station, "snmpset", user, &refs)
}

/// One column of request row `index` as `user` sees it (value only).
fn request_cell(station: &Station, user: &str, column: &str, index: u32) -> String {
    let out =
        v3(station, "snmpget", user, &["-Oqv", &format!("DVSAN-STATION-MIB::dvsanStationRequest{column}.{index}")]);
    String::from_utf8_lossy(&out.stdout).trim().trim_matches('"').to_string()
}

/// Waits until `user`'s request row `index` is served; its status.
fn served(station: &Station, user: &str, index: u32) -> String {
    wait_until("the request to be served", WAIT, || {
        let status = request_cell(station, user, "Status", index);
        (status != "pending").then_some(status)
    })
}

/// A station whose own agent has only SNMPv3 users for writing (no --snmp-write-community, no --admin-community),
/// `noc` its admin user, in lab mode so the unit joins by itself.
fn v3_station(dir: &Path, users: &Path, extra: &[&str]) -> Station {
    let users = users.to_str().unwrap();
    let mut flags = vec!["--trust-community-units", "--write-community", WRITE_COMMUNITY];
    flags.extend(["--users", users, "--admin-user", "noc"]);
    flags.extend_from_slice(extra);
    Station::start_bare(&dir.join("station"), &flags)
}

/// net-snmp v3 users read the pool tables; host-a's request row and assignment belong to host-a: host-b does not
/// see them and cannot release them (the same failure as for a volume nobody holds), the admin user sees and
/// releases them; the read-only user's SET is refused with authorizationError; a wrong passphrase gets no answer
/// and changes nothing.
#[test]
fn v3_users_read_the_pool_and_own_their_requests() {
    let dir = tempfile::tempdir().unwrap();
    let users = users_file(dir.path());
    let station = v3_station(dir.path(), &users, &[]);
    let mut unit = Unit::start(&dir.path().join("u1"), "127.0.62.1", station.traps, "64M", &[]);
    unit.serve_data();
    station.wait_unit(&unit.address(), "available", WAIT, |u| u["state"] == "available");

    // Every user reads the pool.
    for (user, ..) in USERS {
        let mut last = String::new();
        let walked = wait_for(WAIT, || {
            let out = v3(&station, "snmpwalk", user, &["DVSAN-STATION-MIB::dvsanStationUnitTable"]);
            last = output_text(&out);
            (out.status.success() && last.contains("7F 00 3E 01")).then(|| last.clone())
        });
        let walked = walked.unwrap_or_else(|| panic!("{user} never saw the unit in the station MIB: {last}"));
        assert!(walked.contains("dvsanStationUnitName"), "{user}: {walked}");
    }
    let out = v3(&station, "snmpget", "monitor", &["-Oqv", "SNMPv2-MIB::sysName.0"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "dvsan-station", "{}", output_text(&out));

    // host-a asks for 8M for its host 127.0.62.100.
    let out = submit(&station, "host-a", &station_request_row(7, Some("8M"), ("", ""), "7F003E64"));
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(served(&station, "host-a", 7), "done", "{}", request_cell(&station, "host-a", "Error", 7));
    let unit_index = request_cell(&station, "host-a", "UnitIndex", 7);
    let volume = request_cell(&station, "host-a", "VolumeIndex", 7);
    let uri = request_cell(&station, "host-a", "NbdUri", 7);
    assert!(uri.starts_with("nbd://127.0.62.1:"), "{uri}");
    let held = vec![(volume.parse::<u64>().unwrap(), "127.0.62.100".to_string())];
    assert_eq!(unit.grants(), held);
    // Index: unit, volume, the host (ipv4(1), 4 octets).
    let assignment = format!("DVSAN-STATION-MIB::dvsanStationAssignNbdUri.{unit_index}.{volume}.1.4.127.0.62.100");
    let assigned_uri = |user: &str| {
        let out = v3(&station, "snmpget", user, &["-Oqv", &assignment]);
        String::from_utf8_lossy(&out.stdout).trim().trim_matches('"').to_string()
    };
    wait_until("the assignment in the station MIB", WAIT, || (assigned_uri("host-a") == uri).then_some(()));
    assert_eq!(assigned_uri("noc"), uri, "the admin user sees every assignment");

    // host-b and the read-only user: host-a's request row and assignment do not exist.
    for other in ["host-b", "monitor"] {
        assert!(request_cell(&station, other, "NbdUri", 7).contains("No Such Instance"), "{other}");
        assert!(assigned_uri(other).contains("No Such Instance"), "{other}");
        let seen = output_text(&v3(&station, "snmpwalk", other, &["DVSAN-STATION-MIB::dvsanStationAssignmentTable"]));
        assert!(!seen.contains(&uri), "{other} walks the assignments: {seen}");
    }

    // host-b cannot release it: failed, the same words as for a volume nobody holds; the grant stays.
    let out = submit(&station, "host-b", &station_request_row(8, None, (&unit_index, &volume), "7F003E64"));
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(served(&station, "host-b", 8), "failed");
    let refused = request_cell(&station, "host-b", "Error", 8);
    assert!(
        refused.contains(&format!("volume {volume} of unit #{unit_index} is not assigned to this requester")),
        "{refused}"
    );
    assert_eq!(unit.grants(), held);

    // The read-only user cannot write at all: authorizationError, no row.
    let out = submit(&station, "monitor", &station_request_row(9, None, (&unit_index, &volume), "7F003E64"));
    assert!(!out.status.success() && output_text(&out).contains("authorizationError"), "{}", output_text(&out));
    assert!(request_cell(&station, "noc", "Status", 9).contains("No Such Instance"));

    // A wrong passphrase: no answer (net-snmp reports the failed authentication), and no row.
    let row = station_request_row(10, None, (&unit_index, &volume), "7F003E64");
    let args: Vec<&str> = row.iter().map(String::as_str).collect();
    let out = v3_as(&station, "snmpset", "host-a", "not-host-a-auth-pass", &args);
    assert!(!out.status.success(), "{}", output_text(&out));
    let said = output_text(&out);
    assert!(said.contains("Authentication failure") || said.contains("Timeout"), "{said}");
    assert!(request_cell(&station, "noc", "Status", 10).contains("No Such Instance"));
    assert_eq!(unit.grants(), held);
    let counted = v3(&station, "snmpget", "monitor", &["-Oqv", "SNMP-USER-BASED-SM-MIB::usmStatsWrongDigests.0"]);
    let wrong_digests: u64 = String::from_utf8_lossy(&counted.stdout).trim().parse().unwrap_or(0);
    assert!(wrong_digests >= 1, "usmStatsWrongDigests: {}", output_text(&counted));

    // The admin user sees host-a's request row and releases the assignment.
    assert_eq!(request_cell(&station, "noc", "NbdUri", 7), uri);
    let out = submit(&station, "noc", &station_request_row(11, None, (&unit_index, &volume), "7F003E64"));
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(served(&station, "noc", 11), "done", "{}", request_cell(&station, "noc", "Error", 11));
    assert!(unit.grants().is_empty());
}

/// `dvsan-host` on host 127.0.63.100 as SNMPv3 user host-a (`--credentials --user`) requests, lists and releases
/// a volume through a station whose agent has no write community at all; host-b's `list` shows none of it.
#[test]
fn dvsan_host_works_as_a_v3_user_without_any_write_community() {
    let dir = tempfile::tempdir().unwrap();
    let users = users_file(dir.path());
    let station = v3_station(dir.path(), &users, &[]);
    let mut unit = Unit::start(&dir.path().join("u1"), "127.0.63.1", station.traps, "64M", &[]);
    unit.serve_data();
    station.wait_unit(&unit.address(), "available", WAIT, |u| u["state"] == "available");
    let host = |user: &str, args: &[&str]| {
        let mut cmd = station.host_cli_v3("127.0.63.100", &users, user);
        cmd.args(args);
        cmd
    };

    let out = run_ok(&mut host("host-a", &["request", "--size", "8M", "--json"]));
    let assigned: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let uri = assigned["nbd_uri"].as_str().unwrap_or_else(|| panic!("no nbd_uri in {assigned}")).to_string();
    assert!(uri.starts_with("nbd://127.0.63.1:"), "{uri}");
    let name = format!("{}/{}", assigned["unit"], assigned["volume"]);
    assert_eq!(unit.grants(), vec![(assigned["volume"].as_u64().unwrap(), "127.0.63.100".to_string())]);

    // `list` shows it (one JSON object per line).
    let listed = wait_until("host-a's volume in `list`", WAIT, || {
        let out = run_ok(&mut host("host-a", &["list", "--json"]));
        out.contains(&uri).then_some(out)
    });
    let row: serde_json::Value = serde_json::from_str(listed.trim()).unwrap_or_else(|e| panic!("{e}: {listed}"));
    assert_eq!(format!("{}/{}", row["unit"], row["volume"]), name);

    // host-b does not see it (stdout empty, the sentence on stderr).
    let mut other = host("host-b", &["list"]);
    let out = other.output().unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(!output_text(&out).contains(&uri), "{}", output_text(&out));

    // host-b cannot release it either: to host-b it is not there.
    let refused = run_fails(&mut host("host-b", &["release", &name]));
    assert!(!refused.is_empty(), "host-b's release says why it failed");
    assert_eq!(unit.grants().len(), 1, "host-b's release changed nothing");

    run_ok(&mut host("host-a", &["release", &name]));
    assert!(unit.grants().is_empty(), "released");
    let out = run_ok(&mut host("host-a", &["list", "--json"]));
    assert!(!out.contains(&uri), "{out}");
}

/// `--forward-user host-a`: the station forwards a unit's coldStart and its own notifications to snmptrapd as
/// SNMPv3 traps (authPriv, the station's engine authoritative), which snmptrapd accepts with `createUser -e` the
/// station's engine id (from station.ready) and logs by user name.
#[test]
fn forwarded_notifications_go_as_the_forward_user() {
    let dir = tempfile::tempdir().unwrap();
    let users = users_file(dir.path());
    // The station's engine id exists before snmptrapd starts: the state directory keeps it across runs.
    let state = dir.path().join("station");
    let first = v3_station(dir.path(), &users, &[]);
    let ready: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("station.ready")).unwrap()).unwrap();
    let engine_id = ready["engine_id"].as_str().expect("engine_id in station.ready").to_string();
    drop(first);

    let trapd_dir = dir.path().join("trapd");
    std::fs::create_dir(&trapd_dir).unwrap();
    let (_, auth, privacy, _) = USERS[0];
    let trapd = TrapReceiver::start_configured(
        &trapd_dir,
        &format!("createUser -e 0x{engine_id} host-a SHA-256 {auth} AES {privacy}\n"),
        &["-F", "%P: %v\n"],
    );
    let station = v3_station(dir.path(), &users, &["--forward", &trapd.addr.to_string(), "--forward-user", "host-a"]);
    let again: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("station.ready")).unwrap()).unwrap();
    assert_eq!(again["engine_id"].as_str(), Some(engine_id.as_str()), "the engine id is kept");
    let mut unit = Unit::start(&dir.path().join("u1"), "127.0.63.20", station.traps, "16M", &[]);
    unit.serve_data();
    let seen = wait_for(WAIT, || trapd.logged(&["host-a", "coldStart"]));
    assert!(seen.is_some(), "no forwarded coldStart from user host-a:\n{}", trapd.text());
    let seen = wait_for(WAIT, || trapd.logged(&["host-a", "dvsanStationUnitJoined"]));
    assert!(seen.is_some(), "no station notification from user host-a:\n{}", trapd.text());
    drop(station);

    // With --forward-inform the station discovers snmptrapd's own engine (no -e in createUser) and its informs are
    // acknowledged: a second unit's coldStart arrives as an inform from host-a.
    let informd_dir = dir.path().join("informd");
    std::fs::create_dir(&informd_dir).unwrap();
    let informd = TrapReceiver::start_configured(
        &informd_dir,
        &format!("createUser host-a SHA-256 {auth} AES {privacy}\n"),
        &["-F", "%P: %v\n"],
    );
    let flags = ["--forward", &informd.addr.to_string(), "--forward-user", "host-a", "--forward-inform"];
    let station = v3_station(dir.path(), &users, &flags);
    let _second = Unit::start(&dir.path().join("u2"), "127.0.63.21", station.traps, "16M", &[]);
    let seen = wait_for(WAIT, || informd.logged(&["INFORM", "host-a", "coldStart"]));
    assert!(seen.is_some(), "no forwarded coldStart inform from user host-a:\n{}", informd.text());
}

/// Users that cannot work stop the station at start with a sentence that names the cause: an `--admin-user` missing
/// from the file (naming the file's users) or read-only, a users file others may read, a `--forward-user` without
/// `--forward`.
#[test]
fn misconfigured_users_stop_the_station_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let users = users_file(dir.path());
    let users_arg = users.to_str().unwrap();
    let start = |extra: &[&str]| {
        let mut cmd = timed(&workspace_bin("dvsan-station").to_string_lossy(), Duration::from_secs(20));
        cmd.env_remove("DVSAN_STATION_USERS").arg("run").arg("--state-dir").arg(dir.path().join("state"));
        cmd.args(["--listen-traps", "127.0.63.30:0", "--snmp-listen", "127.0.63.30:0"]).args(extra);
        run_fails(&mut cmd)
    };
    let err = start(&["--users", users_arg, "--admin-user", "nobody"]);
    assert!(err.contains("--admin-user \"nobody\"") && err.contains("host-a, host-b, noc, monitor"), "{err}");
    let err = start(&["--users", users_arg, "--admin-user", "monitor"]);
    assert!(err.contains("--admin-user \"monitor\": the user is read-only"), "{err}");
    let err = start(&["--users", users_arg, "--forward-user", "host-a"]);
    assert!(err.contains("--forward-user needs --forward"), "{err}");
    std::fs::set_permissions(&users, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = start(&["--users", users_arg]);
    assert!(err.contains("--users") && err.contains("chmod 600"), "{err}");
}
