//! Mirrored volumes (issue 17) against real stations and agents: `request --replicas 2` places one replica per unit
//! and per zone (`unit set --zone`), grants each to the host, and `pool --json` shows them; a placement that cannot
//! be made says how many units were eligible and why and creates nothing; spare units (`unit set --spare`) are kept
//! out of ordinary allocation; a replica that fails undoes the ones made before it (no volume, grant or row left);
//! releasing one replica releases them all; over SNMP, `dvsan-host request --replicas 2` as an SNMPv3 user, its
//! `list --json` and `targets`, and the replica table with snmptable -v3 authPriv (only its requester and the
//! admin see the rows).

use dvsan_tests::units::*;
use dvsan_tests::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

fn cli(station: &Station, args: &[&str]) -> Command {
    let mut cmd = station.cli();
    cmd.args(args).arg("--state-dir").arg(&station.state_dir);
    cmd
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// The station index of the unit at `unit`'s address.
fn index_of(station: &Station, unit: &Unit) -> u64 {
    station.unit_at(&unit.address()).unwrap()["index"].as_u64().unwrap()
}

/// Volume indexes on a unit, from its own store.
fn volumes(unit: &Unit) -> Vec<u64> {
    unit.show()["volumes"].as_array().unwrap().iter().map(|v| v["index"].as_u64().unwrap()).collect()
}

#[test]
fn replicas_go_to_distinct_units_and_zones_and_are_released_together() {
    let dir = tempfile::tempdir().unwrap();
    let station = Station::start(&dir.path().join("station"), &[]);
    let mut units: Vec<Unit> = (1..=3)
        .map(|i| Unit::start(&dir.path().join(format!("u{i}")), &format!("127.0.72.{i}"), station.traps, "64M", &[]))
        .collect();
    for unit in &mut units {
        unit.serve_data();
        station.wait_unit(&unit.address(), "available", WAIT, |u| u["state"] == "available");
    }
    // Zones: units 1 and 2 in zone a (`unit set`, for units learned from their notifications), unit 3 in zone b
    // (`unit add --zone`, which reads the unit and labels it).
    for unit in &units[..2] {
        let said = run_ok(&mut cli(&station, &["unit", "set", &unit.address(), "--zone", "a"]));
        assert!(said.contains("zone a, not a spare"), "{said}");
    }
    let said = run_ok(&mut cli(&station, &["unit", "add", &units[2].address(), "--zone", "b"]));
    assert!(said.contains("zone b, not a spare"), "{said}");
    let index: Vec<u64> = units.iter().map(|u| index_of(&station, u)).collect();

    let out = run_ok(&mut cli(
        &station,
        &["request", "--size", "24M", "--host", "127.0.72.100", "--replicas", "2", "--json"],
    ));
    let made = json(&out);
    let replicas = made["replicas"].as_array().unwrap_or_else(|| panic!("{made}"));
    assert_eq!(replicas.len(), 2, "{made}");
    let on: Vec<u64> = replicas.iter().map(|r| r["unit"].as_u64().unwrap()).collect();
    assert!(on.contains(&index[2]), "one replica in zone b: {on:?} of {index:?}");
    assert_ne!(on[0], on[1]);
    let sizes: BTreeSet<u64> = replicas.iter().map(|r| r["size_bytes"].as_u64().unwrap()).collect();
    assert_eq!(sizes, BTreeSet::from([24 << 20]));
    // Each replica is granted to the host on its unit.
    for r in replicas {
        let unit = &units[index.iter().position(|i| *i == r["unit"].as_u64().unwrap()).unwrap()];
        assert_eq!(unit.grants(), vec![(r["volume"].as_u64().unwrap(), "127.0.72.100".to_string())]);
    }
    // The pool shows the mirrored volume with its replicas, zones and NBD URIs.
    let pool = station.pool();
    let mirrors = pool["mirrors"].as_array().unwrap_or_else(|| panic!("{pool}"));
    assert_eq!(mirrors.len(), 1, "{pool}");
    let shown = &mirrors[0];
    assert_eq!((shown["index"].as_u64(), shown["host"].as_str()), (made["mirror"].as_u64(), Some("127.0.72.100")));
    let zones: BTreeSet<&str> =
        shown["replicas"].as_array().unwrap().iter().map(|r| r["zone"].as_str().unwrap()).collect();
    assert_eq!(zones, BTreeSet::from(["a", "b"]));
    for r in shown["replicas"].as_array().unwrap() {
        assert!(r["nbd_uri"].as_str().is_some_and(|u| u.starts_with("nbd://127.0.72.")), "{r}");
    }
    let text = run_ok(&mut cli(&station, &["pool"]));
    assert!(text.contains("MIRRORED VOLUMES") && text.contains("UNIT LABELS"), "{text}");

    // Three replicas need three zones: refused, saying how many units were eligible; nothing is made.
    let before: Vec<Vec<u64>> = units.iter().map(volumes).collect();
    let err = run_fails(&mut cli(&station, &["request", "--size", "8M", "--host", "127.0.72.101", "--replicas", "3"]));
    assert!(err.contains("3 unit(s) eligible in 2 zone(s)") && err.contains("nothing was created"), "{err}");
    assert_eq!(units.iter().map(volumes).collect::<Vec<_>>(), before);
    assert_eq!(station.pool()["mirrors"].as_array().map_or(0, Vec::len), 1);

    // A spare is kept out of ordinary allocation: the zone-a unit without a replica is the only one with room
    // for 48M; as a spare it is not used, as an ordinary unit again it is.
    let free = units.iter().position(|u| !on.contains(&index_of(&station, u))).unwrap();
    let said = run_ok(&mut cli(&station, &["unit", "set", &index[free].to_string(), "--spare"]));
    assert!(said.contains("spare (kept out of ordinary allocation)"), "{said}");
    let refused = run_fails(&mut cli(&station, &["request", "--size", "48M", "--host", "127.0.72.102"]));
    assert!(refused.contains("no free space"), "{refused}");
    assert!(volumes(&units[free]).is_empty());
    let err = run_fails(&mut cli(&station, &["request", "--size", "8M", "--host", "127.0.72.102", "--replicas", "3"]));
    assert!(err.contains(&format!("#{} is a spare", index[free])), "{err}");
    run_ok(&mut cli(&station, &["unit", "set", &index[free].to_string(), "--no-spare"]));
    let got = json(&run_ok(&mut cli(&station, &["request", "--size", "48M", "--host", "127.0.72.102", "--json"])));
    assert_eq!(got["unit"].as_u64(), Some(index[free]), "{got}");

    // Releasing one replica releases the mirrored volume: both grants go, the mirror is forgotten.
    let (u, v) = (replicas[1]["unit"].to_string(), replicas[1]["volume"].to_string());
    let said = run_ok(&mut cli(&station, &["unassign", "--unit", &u, "--volume", &v]));
    assert!(said.contains("released mirrored volume"), "{said}");
    for unit in units.iter().filter(|u| on.contains(&index_of(&station, u))) {
        assert!(unit.grants().is_empty(), "{:?}", unit.grants());
    }
    assert_eq!(station.pool()["mirrors"].as_array().map_or(0, Vec::len), 0);

    // Bad input says what was wrong and what would be valid.
    let err = run_fails(&mut cli(&station, &["request", "--size", "8M", "--host", "127.0.72.103", "--replicas", "4"]));
    assert!(err.contains("--replicas") && err.contains("1..=3"), "{err}");
    let err = run_fails(&mut cli(&station, &["unit", "set", &index[0].to_string()]));
    assert!(err.contains("--zone ZONE, --spare or --no-spare"), "{err}");
    let err = run_fails(&mut cli(&station, &["unit", "set", &index[0].to_string(), "--zone", "a b"]));
    assert!(err.contains("not a zone label"), "{err}");
    let err = run_fails(&mut cli(&station, &["unit", "set", "127.0.72.99", "--spare"]));
    assert!(err.contains("no unit matches"), "{err}");
}

/// A replica whose unit refuses the station's SETs (its write community is another) fails the request after the
/// first replica was made on another unit: that replica's grant and volume are undone, no assignment or mirror is
/// recorded, and the error names the failing replica.
#[test]
fn a_failed_replica_leaves_nothing_half_made() {
    let dir = tempfile::tempdir().unwrap();
    let station = Station::start(&dir.path().join("station"), &[]);
    let mut good = Unit::start(&dir.path().join("ua"), "127.0.73.1", station.traps, "128M", &[]);
    let listen: std::net::SocketAddr = "127.0.73.2:1161".parse().unwrap();
    let mut refusing = Unit::start_with(
        &dir.path().join("ub"),
        "127.0.73.2:1161",
        listen,
        &station.traps.to_string(),
        "64M",
        ("public", Some("not-the-stations")),
        &[],
    );
    good.serve_data();
    refusing.serve_data();
    for unit in [&good, &refusing] {
        station.wait_unit(&unit.address(), "available", WAIT, |u| u["state"] == "available");
    }
    // The unit with more free space gets replica 1, so replica 2 fails after replica 1 was made.
    let err = run_fails(&mut cli(
        &station,
        &["request", "--size", "8M", "--host", "127.0.73.100", "--replicas", "2", "--timeout", "300ms"],
    ));
    let refusing_index = index_of(&station, &refusing);
    assert!(
        err.contains(&format!("replica 2 of 2 on unit #{refusing_index} failed")) && err.contains("nothing was kept"),
        "{err}"
    );
    assert!(good.grants().is_empty(), "{:?}", good.grants());
    assert!(volumes(&good).is_empty(), "the first replica's volume was destroyed");
    assert!(volumes(&refusing).is_empty());
    let out = cli(&station, &["assignments", "--json"]).output().unwrap();
    assert_eq!(json(&stdout(&out))["assignments"].as_array().map_or(1, Vec::len), 0, "{}", describe(&out));
    assert_eq!(station.pool()["mirrors"].as_array().map_or(0, Vec::len), 0);
}

/// A mirrored volume its request left midway (the process died after replica 1 of 2 was made: the mirror row is
/// written first, each replica as it is assigned) is undone by `reconcile` (as by the station's start): the
/// replica's grant revoked, its volume destroyed, the assignment and the mirror forgotten.
#[test]
fn reconcile_undoes_a_mirrored_volume_left_midway() {
    let dir = tempfile::tempdir().unwrap();
    let station = Station::start(&dir.path().join("station"), &[]);
    let mut unit = Unit::start(&dir.path().join("u1"), "127.0.76.1", station.traps, "64M", &[]);
    unit.serve_data();
    station.wait_unit(&unit.address(), "available", WAIT, |u| u["state"] == "available");
    // Replica 1 as the request made it: a volume created and assigned to the host.
    let made =
        json(&run_ok(&mut cli(&station, &["volume", "create", "--unit", "127.0.76.1", "--size", "8M", "--json"])));
    let (unit_index, volume) = (made["unit"].as_u64().unwrap() as u32, made["volume"].as_u64().unwrap() as u32);
    let v = volume.to_string();
    run_ok(&mut cli(&station, &["assign", "--unit", "127.0.76.1", "--volume", &v, "--host", "127.0.76.100"]));
    let mut store = dvsan_station::store::StationStore::open(&station.state_dir).unwrap();
    let host = "127.0.76.100".parse().unwrap();
    let mirror = store.insert_mirror("db", host, 8 << 20, None, 2).unwrap();
    store.add_mirror_replica(mirror, 1, unit_index, volume).unwrap();
    drop(store);
    assert_eq!(unit.grants().len(), 1);

    let report = json(&run_ok(&mut cli(&station, &["reconcile"])));
    assert_eq!(report["mirrors_undone"].as_u64(), Some(1), "{report}");
    assert!(unit.grants().is_empty(), "{:?}", unit.grants());
    assert!(volumes(&unit).is_empty(), "the replica's volume was destroyed");
    let out = cli(&station, &["assignments", "--json"]).output().unwrap();
    assert_eq!(json(&stdout(&out))["assignments"].as_array().map_or(1, Vec::len), 0, "{}", describe(&out));
    assert_eq!(station.pool()["mirrors"].as_array().map_or(0, Vec::len), 0);

    // A mirror whose replicas were all released one by one (as `host revoke` does) is forgotten by reconcile.
    let made =
        json(&run_ok(&mut cli(&station, &["volume", "create", "--unit", "127.0.76.1", "--size", "8M", "--json"])));
    let volume = made["volume"].as_u64().unwrap() as u32;
    let mut store = dvsan_station::store::StationStore::open(&station.state_dir).unwrap();
    let mirror = store.insert_mirror("gone", host, 8 << 20, None, 1).unwrap();
    store.add_mirror_replica(mirror, 1, unit_index, volume).unwrap();
    drop(store);
    assert_eq!(station.pool()["mirrors"].as_array().map_or(0, Vec::len), 1);
    let report = json(&run_ok(&mut cli(&station, &["reconcile"])));
    assert_eq!(
        (report["mirrors_undone"].as_u64(), report["mirrors_forgotten"].as_u64()),
        (Some(0), Some(1)),
        "{report}"
    );
    assert_eq!(station.pool()["mirrors"].as_array().map_or(0, Vec::len), 0);
    assert_eq!(volumes(&unit), vec![u64::from(volume)], "a forgotten mirror's volumes are left alone");
}

/// SNMPv3 users of [`dvsan_host_requests_lists_resolves_and_releases_a_mirrored_volume`].
const USERS: [(&str, &str, &str); 3] = [
    ("host-a", "host-a-auth-pass", "host-a-priv-pass"),
    ("host-b", "host-b-auth-pass", "host-b-priv-pass"),
    ("noc", "noc-auth-pass-01", "noc-priv-pass-01"),
];

fn users_file(dir: &Path) -> PathBuf {
    let users: Vec<_> = USERS.iter().map(|&(name, auth, privacy)| (name, auth, privacy, "read-write")).collect();
    dvsan_tests::write_users_file(&dir.join("station-users.toml"), &users, 0o600)
}

/// dvsanStationReplicaTable as v3 `user` (authPriv) reads it with snmptable: (unit index, volume index, zone) rows.
fn replica_rows(station: &Station, user: &str) -> Vec<(String, String, String)> {
    let (_, auth, privacy) = USERS.iter().find(|u| u.0 == user).copied().expect("a test user");
    let out = run_ok(
        net_snmp("snmptable")
            .args(["-v3", "-l", "authPriv", "-u", user, "-a", "SHA-256", "-A", auth, "-x", "AES", "-X", privacy])
            .args(["-t", "2", "-r", "1", "-Cf", "|", "-CH", "-Oq"])
            .arg(station.snmp.expect("the station serves SNMP").to_string())
            .arg("DVSAN-STATION-MIB::dvsanStationReplicaTable"),
    );
    // Columns: MirrorName|HostType|Host|Count|SizeKiB|UnitIndex|VolumeIndex|Zone|NbdUri|UnitState.
    out.lines()
        .filter(|l| l.contains('|'))
        .map(|l| {
            // snmptable prints a cell with its type (`Gauge32: 1`): keep the value.
            let cells: Vec<&str> =
                l.split('|').map(|c| c.rsplit_once(": ").map_or(c, |(_, v)| v).trim().trim_matches('"')).collect();
            (cells[5].to_string(), cells[6].to_string(), cells[7].to_string())
        })
        .collect()
}

/// dvsanStationFrontTable as v3 `user` (authPriv) reads it with snmptable: per row, (state, dirty KiB, resync
/// percent, last report).
fn front_rows(station: &Station, user: &str) -> Vec<Vec<String>> {
    let (_, auth, privacy) = USERS.iter().find(|u| u.0 == user).copied().expect("a test user");
    let out = run_ok(
        net_snmp("snmptable")
            .args(["-v3", "-l", "authPriv", "-u", user, "-a", "SHA-256", "-A", auth, "-x", "AES", "-X", privacy])
            .args(["-t", "2", "-r", "1", "-Cf", "|", "-CH", "-Oq"])
            .arg(station.snmp.expect("the station serves SNMP").to_string())
            .arg("DVSAN-STATION-MIB::dvsanStationFrontTable"),
    );
    out.lines()
        .filter(|l| l.contains('|'))
        .map(|l| l.split('|').map(|c| c.rsplit_once(": ").map_or(c, |(_, v)| v).trim().to_string()).collect())
        .collect()
}

#[test]
fn dvsan_host_requests_lists_resolves_and_releases_a_mirrored_volume() {
    let dir = tempfile::tempdir().unwrap();
    let users = users_file(dir.path());
    let users_arg = users.to_str().unwrap();
    let station = Station::start_bare(
        &dir.path().join("station"),
        &["--trust-community-units", "--write-community", WRITE_COMMUNITY, "--users", users_arg, "--admin-user", "noc"],
    );
    let mut units: Vec<Unit> = (1..=2)
        .map(|i| Unit::start(&dir.path().join(format!("u{i}")), &format!("127.0.74.{i}"), station.traps, "64M", &[]))
        .collect();
    for unit in &mut units {
        unit.serve_data();
        station.wait_unit(&unit.address(), "available", WAIT, |u| u["state"] == "available");
    }
    let host = |user: &str, args: &[&str]| {
        let mut cmd = station.host_cli_v3("127.0.74.100", &users, user);
        cmd.args(args);
        cmd
    };

    // host-a has a certificate from the station's CA: each replica is granted by its identity and address.
    let certs = dir.path().join("host-a-tls");
    run_ok(&mut cli(&station, &["host", "issue", "host-a", "--out", certs.to_str().unwrap()]));
    let made =
        json(&run_ok(&mut host("host-a", &["request", "--size", "8M", "--name", "db", "--replicas", "2", "--json"])));
    assert_eq!(made["name"], "db", "{made}");
    let replicas = made["replicas"].as_array().unwrap_or_else(|| panic!("{made}")).clone();
    assert_eq!(replicas.len(), 2, "{made}");
    for unit in &units {
        let grants = unit.grants();
        assert_eq!(grants.len(), 1, "{grants:?}");
        assert_eq!(grants[0].1, "127.0.74.100");
        assert_eq!(unit.show()["grants"][0]["identity"], "host-a");
    }

    // A request row asking for more than 3 replicas is wrongValue (net-snmp).
    let (_, auth, privacy) = USERS[0];
    let v3 = |tool: &str, args: &[&str]| {
        net_snmp(tool)
            .args(["-v3", "-l", "authPriv", "-u", "host-a", "-a", "SHA-256", "-A", auth, "-x", "AES", "-X", privacy])
            .args(["-t", "2", "-r", "0"])
            .arg(station.snmp.unwrap().to_string())
            .args(args)
            .output()
            .unwrap()
    };
    let bad = v3(
        "snmpset",
        &[
            "DVSAN-STATION-MIB::dvsanStationRequestSize.77",
            "s",
            "8M",
            "DVSAN-STATION-MIB::dvsanStationRequestReplicas.77",
            "u",
            "4",
            "DVSAN-STATION-MIB::dvsanStationRequestRowStatus.77",
            "i",
            "4",
        ],
    );
    assert!(!bad.status.success() && output_text(&bad).contains("wrongValue"), "{}", output_text(&bad));

    // `list --json`: the mirrored volume as one object with its replicas (not as two ordinary volumes).
    let listed = run_ok(&mut host("host-a", &["list", "--json"]));
    let lines: Vec<serde_json::Value> = listed.lines().map(json).collect();
    assert_eq!(lines.len(), 1, "{listed}");
    assert_eq!(
        (lines[0]["mirror"].clone(), lines[0]["replicas"].as_array().map(Vec::len)),
        (made["mirror"].clone(), Some(2))
    );

    // `targets`: what `serve db` connects to, one per replica, from the station's replica rows.
    let targets = json(&run_ok(&mut host("host-a", &["targets", "db", "--json"])));
    let targets = targets.as_array().unwrap_or_else(|| panic!("{targets}"));
    assert_eq!(targets.len(), 2);
    for (t, r) in targets.iter().zip(&replicas) {
        assert_eq!(t["unit"], r["unit"]);
        assert!(t["address"].as_str().is_some_and(|a| a.starts_with("127.0.74.")), "{t}");
        assert_eq!(t["port"], 10809);
        assert!(!t["export"].as_str().unwrap_or("").is_empty(), "{t}");
    }
    let err = run_fails(&mut host("host-a", &["targets", "nosuch"]));
    assert!(err.contains("not one of this host's"), "{err}");

    // The replica table: host-a and the admin see both rows, host-b none.
    let rows = replica_rows(&station, "host-a");
    assert_eq!(rows.len(), 2, "{rows:?}");
    let units_in_rows: BTreeSet<String> = rows.iter().map(|r| r.0.clone()).collect();
    let made_units: BTreeSet<String> = replicas.iter().map(|r| r["unit"].to_string()).collect();
    assert_eq!(units_in_rows, made_units);
    assert_eq!(replica_rows(&station, "noc").len(), 2);
    assert!(replica_rows(&station, "host-b").is_empty());
    // host-b cannot release it.
    let refused = run_fails(&mut host("host-b", &["release", "db"]));
    assert!(!refused.is_empty());
    assert_eq!(units.iter().map(|u| u.grants().len()).sum::<usize>(), 2);

    // The front's reports (dvsanStationFrontTable): replica 1 in sync, replica 2 out of sync with 4 MiB dirty,
    // then resyncing at 40%; each report is a heartbeat. snmptable -v3 shows them to host-a; host-b sees none and
    // its SET on host-a's row is noCreation; `pool` shows them.
    run_ok(&mut host("host-a", &["report", "db", "--replica", "1", "--state", "inSync"]));
    run_ok(&mut host(
        "host-a",
        &["report", "db", "--replica", "2", "--state", "outOfSync", "--dirty-bytes", "4194304"],
    ));
    let fronts = front_rows(&station, "host-a");
    assert_eq!(fronts.len(), 2, "{fronts:?}");
    assert_eq!(
        (fronts[0][0].as_str(), fronts[1][0].as_str(), fronts[1][1].as_str()),
        ("inSync(2)", "outOfSync(3)", "4096 KiB")
    );
    assert!(fronts.iter().all(|row| row[3] != "0:0:0.0" && !row[3].is_empty()), "LastReport set: {fronts:?}");
    assert!(front_rows(&station, "host-b").is_empty());
    let (_, auth, privacy) = USERS[1];
    let mirror = made["mirror"].to_string();
    let out = net_snmp("snmpset")
        .args(["-v3", "-l", "authPriv", "-u", "host-b", "-a", "SHA-256", "-A", auth, "-x", "AES", "-X", privacy])
        .args(["-t", "2", "-r", "0"])
        .arg(station.snmp.unwrap().to_string())
        .args([&format!("DVSAN-STATION-MIB::dvsanStationFrontReplicaState.{mirror}.1"), "i", "5"])
        .output()
        .unwrap();
    assert!(!out.status.success() && output_text(&out).contains("noCreation"), "{}", output_text(&out));
    // By its index name this time.
    let by_index = format!("mirror{mirror}");
    run_ok(&mut host(
        "host-a",
        &[
            "report",
            &by_index,
            "--replica",
            "2",
            "--state",
            "resyncing",
            "--resync-percent",
            "40",
            "--dirty-bytes",
            "2097152",
        ],
    ));
    let pool = station.pool();
    let shown = &pool["mirrors"][0]["replicas"];
    assert_eq!(
        (shown[0]["front"]["state"].as_str(), shown[1]["front"]["state"].as_str()),
        (Some("inSync"), Some("resyncing"))
    );
    assert_eq!(
        (shown[1]["front"]["resync_percent"].as_u64(), shown[1]["front"]["dirty_bytes"].as_u64()),
        (Some(40), Some(2 << 20))
    );
    let text = run_ok(&mut cli(&station, &["pool"]));
    assert!(text.contains("resyncing 40%, 2 MiB dirty"), "{text}");
    // Bad reports say what would be valid.
    let err = run_fails(&mut host("host-a", &["report", "db", "--replica", "3", "--state", "inSync"]));
    assert!(err.contains("replicas 1 to 2, not 3"), "{err}");
    let err = run_fails(&mut host("host-a", &["report", "db", "--replica", "1", "--state", "happy"]));
    assert!(err.contains("inSync, outOfSync, resyncing, failed"), "{err}");

    // Releasing it by name releases both replicas.
    run_ok(&mut host("host-a", &["release", "db"]));
    for unit in &units {
        assert!(unit.grants().is_empty(), "{:?}", unit.grants());
    }
    assert!(run_ok(&mut host("host-a", &["list", "--json"])).trim().is_empty());
    assert!(replica_rows(&station, "noc").is_empty());
}
