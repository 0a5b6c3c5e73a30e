//! `--shared` assignments through the station CLI against a real agent: two hosts that both ask shared get the
//! same volume, each with a readWriteShared grant on the unit's access table (snmptable); a host that does not ask
//! shared gets neither that volume by name nor an `assign` of it; releasing one shared host leaves the other's
//! grant (and the volume, not wiped, not foreign) in place; a volume held exclusively is not joined by a shared
//! request.

use dvsan_tests::units::*;
use dvsan_tests::*;
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

fn alloc_cmd(station: &Station, args: &[&str]) -> Command {
    let mut cmd = station.cli();
    cmd.args(args).arg("--state-dir").arg(&station.state_dir);
    cmd
}

fn request(station: &Station, host: &str, name: &str, extra: &[&str]) -> Result<serde_json::Value, String> {
    let mut args = vec!["request", "--json", "--size", "4M", "--host", host, "--name", name];
    args.extend_from_slice(extra);
    let out = alloc_cmd(station, &args).output().expect("dvsan-station runs");
    if out.status.success() {
        Ok(serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", describe(&out))))
    } else {
        Err(describe(&out))
    }
}

/// The unit's dvsanAccessTable rows as (volume, address, mode), read with snmptable.
fn access_rows(unit: &Unit) -> Vec<(String, String, String)> {
    let table = run_ok(
        net_snmp("snmptable")
            .args(["-v2c", "-c", "public", "-t", "2", "-r", "1", "-Cf", "|", "-Cl", "-CH", "-Oq"])
            .arg(unit.address())
            .arg("DVSAN-MIB::dvsanAccessTable"),
    );
    let header = run_ok(
        net_snmp("snmptable")
            .args(["-v2c", "-c", "public", "-t", "2", "-r", "1", "-Cf", "|", "-Cl", "-Cb"])
            .arg(unit.address())
            .arg("DVSAN-MIB::dvsanAccessTable"),
    );
    let names: Vec<String> = header
        .lines()
        .find(|l| l.contains("Mode"))
        .unwrap_or_else(|| panic!("{header}"))
        .split('|')
        .map(str::to_string)
        .collect();
    let column = |name: &str| names.iter().position(|c| c.ends_with(name)).unwrap_or_else(|| panic!("{names:?}"));
    let (volume, address, mode) = (column("VolumeIndex"), column("HostAddress"), column("Mode"));
    table
        .lines()
        .filter(|l| l.contains('|'))
        .map(|l| {
            // snmptable prints each cell with its type (`Gauge32: 1`, `INTEGER: readWriteShared(3)`): keep the value.
            let cells: Vec<&str> = l.split('|').map(|c| c.rsplit_once(": ").map_or(c, |(_, v)| v).trim()).collect();
            let mode = cells[mode].split('(').next().unwrap_or_default();
            (cells[volume].to_string(), cells[address].trim_matches('"').to_string(), mode.to_string())
        })
        .collect()
}

#[test]
fn two_hosts_share_a_volume_only_when_both_ask_shared() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("station");
    let station = Station::start(&state, &[]);
    let mut unit = Unit::start(&dir.path().join("u1"), "127.0.68.1", station.traps, "64M", &[]);
    unit.serve_data();
    station.wait_unit(&unit.address(), "available", WAIT, |u| u["state"] == "available");

    let a = request(&station, "127.0.68.100", "cluster", &["--shared"]).unwrap();
    let b = request(&station, "127.0.68.101", "cluster", &["--shared"]).unwrap();
    assert_eq!((&a["unit"], &a["volume"]), (&b["unit"], &b["volume"]), "{a}\n{b}");
    let volume = a["volume"].to_string();
    let rows = access_rows(&unit);
    let shared: Vec<_> = rows.iter().filter(|(v, _, _)| *v == volume).collect();
    assert_eq!(shared.len(), 2, "{rows:?}");
    assert!(shared.iter().all(|(_, _, mode)| mode == "readWriteShared"), "{rows:?}");

    // A host that does not ask shared gets neither the volume by name nor an assign of it.
    let err = request(&station, "127.0.68.102", "cluster", &[]).unwrap_err();
    assert!(err.contains("cluster"), "{err}");
    let unit_index = a["unit"].to_string();
    let out = alloc_cmd(&station, &["assign", "--unit", &unit_index, "--volume", &volume, "--host", "127.0.68.102"])
        .output()
        .unwrap();
    assert!(!out.status.success() && describe(&out).contains("already assigned"), "{}", describe(&out));
    assert_eq!(access_rows(&unit).iter().filter(|(v, _, _)| *v == volume).count(), 2);
    // `assign --shared` of a third host joins them.
    let out = alloc_cmd(
        &station,
        &["assign", "--unit", &unit_index, "--volume", &volume, "--host", "127.0.68.102", "--shared", "--json"],
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", describe(&out));

    // Releasing one shared host leaves the others' grants; the volume is the station's, not foreign, not cleared.
    run_ok(&mut alloc_cmd(
        &station,
        &["unassign", "--unit", &unit_index, "--volume", &volume, "--host", "127.0.68.100"],
    ));
    let rows = access_rows(&unit);
    let left: Vec<_> = rows.iter().filter(|(v, _, _)| *v == volume).collect();
    assert_eq!(left.len(), 2, "{rows:?}");
    let pool = station.pool();
    let v = pool["units"][0]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["index"] == a["volume"])
        .cloned()
        .unwrap_or_else(|| panic!("{pool}"));
    assert_eq!(v["foreign_grants"].as_array().map_or(0, Vec::len), 0, "{v}");
    assert!(v["clearing"].is_null(), "{v}");
    let reconciled = run_ok(&mut alloc_cmd(&station, &["reconcile"]));
    let reconciled: serde_json::Value = serde_json::from_str(&reconciled).unwrap();
    assert_eq!((reconciled["consistent"].as_u64(), reconciled["foreign_grants"].as_u64()), (Some(2), Some(0)));

    // An exclusively held volume is not joined by a shared request.
    request(&station, "127.0.68.103", "solo", &[]).unwrap();
    let err = request(&station, "127.0.68.104", "solo", &["--shared"]).unwrap_err();
    assert!(err.contains("solo"), "{err}");
}

fn host_cli(station: &Station, host: &str, args: &[&str]) -> Command {
    let mut cmd = station.host_cli(host);
    cmd.args(["--write-community", WRITE_COMMUNITY]).args(args);
    cmd
}

/// Over SNMP: `dvsan-host request --shared` (dvsanStationRequestShared) from two hosts gives both the same volume
/// with readWriteShared grants; the same request without `--shared` from a third host is refused.
#[test]
fn dvsan_host_request_shared_from_two_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("station");
    let station = Station::start(&state, &[]);
    let mut unit = Unit::start(&dir.path().join("u1"), "127.0.69.1", station.traps, "64M", &[]);
    unit.serve_data();
    station.wait_unit(&unit.address(), "available", WAIT, |u| u["state"] == "available");

    let ask = |host: &str, extra: &[&str]| {
        let mut args = vec!["request", "--size", "4M", "--name", "gfs", "--json"];
        args.extend_from_slice(extra);
        host_cli(&station, host, &args).output().expect("dvsan-host runs")
    };
    let parse = |out: &std::process::Output| -> serde_json::Value {
        assert!(out.status.success(), "{}", describe(out));
        serde_json::from_str(&stdout(out)).unwrap_or_else(|e| panic!("{e}: {}", describe(out)))
    };
    let a = parse(&ask("127.0.69.100", &["--shared"]));
    let b = parse(&ask("127.0.69.101", &["--shared"]));
    assert_eq!((&a["unit"], &a["volume"]), (&b["unit"], &b["volume"]), "{a}\n{b}");
    let volume = a["volume"].to_string();
    let rows = access_rows(&unit);
    let granted: Vec<_> = rows.iter().filter(|(v, _, _)| *v == volume).collect();
    assert_eq!(granted.len(), 2, "{rows:?}");
    assert!(granted.iter().all(|(_, _, mode)| mode == "readWriteShared"), "{rows:?}");

    let refused = ask("127.0.69.102", &[]);
    assert!(!refused.status.success() && describe(&refused).contains("gfs"), "{}", describe(&refused));
    assert_eq!(access_rows(&unit).iter().filter(|(v, _, _)| *v == volume).count(), 2);
}

/// SNMPv3 users of [`each_host_lists_and_releases_its_own_shared_assignment`]: (name, auth, priv, access).
const V3_USERS: [(&str, &str, &str, &str); 4] = [
    ("host-a", "host-a-auth-pass", "host-a-priv-pass", "read-write"),
    ("host-b", "host-b-auth-pass", "host-b-priv-pass", "read-write"),
    ("host-c", "host-c-auth-pass", "host-c-priv-pass", "read-write"),
    ("noc", "noc-auth-pass-01", "noc-priv-pass-01", "read-write"),
];

/// Writes [`V3_USERS`] as a users file (mode 0600) into `dir`.
fn v3_users_file(dir: &std::path::Path) -> std::path::PathBuf {
    dvsan_tests::write_users_file(&dir.join("station-users.toml"), &V3_USERS, 0o600)
}

/// dvsanStationAssignmentTable as v3 `user` sees it with snmptable (authPriv): the rows' host addresses.
fn assignment_hosts(station: &Station, user: &str) -> Vec<String> {
    let (_, auth, privacy, _) = V3_USERS.iter().find(|u| u.0 == user).copied().expect("a test user");
    let out = run_ok(
        net_snmp("snmptable")
            .args(["-v3", "-l", "authPriv", "-u", user, "-a", "SHA-256", "-A", auth, "-x", "AES", "-X", privacy])
            .args(["-t", "2", "-r", "1", "-Cf", "|", "-CH", "-Oq"])
            .arg(station.snmp.expect("the station serves SNMP").to_string())
            .arg("DVSAN-STATION-MIB::dvsanStationAssignmentTable"),
    );
    // Columns: HostType|Host|Mode|NbdUri|VolumeName (no header); an empty table prints none.
    let mut hosts: Vec<String> = out
        .lines()
        .filter(|l| l.contains('|'))
        .filter_map(|l| l.split('|').nth(1))
        .map(|h| {
            // InetAddress prints as `Hex-STRING: 7F 00 46 64`: the octets of an IPv4 address.
            let octets: Vec<String> = h
                .trim()
                .trim_start_matches("Hex-STRING:")
                .split_whitespace()
                .map(|x| u8::from_str_radix(x, 16).unwrap_or_else(|e| panic!("{e}: {h}")).to_string())
                .collect();
            octets.join(".")
        })
        .collect();
    hosts.sort();
    hosts
}

/// Bytes `offset..offset + len` of a file.
fn file_bytes(path: &std::path::Path, offset: u64, len: usize) -> Vec<u8> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path).unwrap();
    file.seek(SeekFrom::Start(offset)).unwrap();
    let mut buf = vec![0; len];
    file.read_exact(&mut buf).unwrap();
    buf
}

/// Two v3 users' hosts share a volume (`dvsan-host request --shared`): both `list` it, dvsanStationAssignmentTable
/// has a row per host (index: unit, volume, host) that only its requester and the admin see — a third requester
/// sees none; each host releases its own assignment; the volume's blocks are wiped only when the last one goes.
#[test]
fn each_host_lists_and_releases_its_own_shared_assignment() {
    let dir = tempfile::tempdir().unwrap();
    let users = v3_users_file(dir.path());
    let users_arg = users.to_str().unwrap();
    let station = Station::start_bare(
        &dir.path().join("station"),
        &["--trust-community-units", "--write-community", WRITE_COMMUNITY, "--users", users_arg, "--admin-user", "noc"],
    );
    let mut unit = Unit::start(&dir.path().join("u1"), "127.0.70.1", station.traps, "64M", &[]);
    unit.serve_data();
    station.wait_unit(&unit.address(), "available", WAIT, |u| u["state"] == "available");
    let host = |user: &str, address: &str, args: &[&str]| {
        let mut cmd = station.host_cli_v3(address, &users, user);
        cmd.args(args);
        cmd
    };
    let (a, b) = (("host-a", "127.0.70.100"), ("host-b", "127.0.70.101"));
    let ask = |(user, address): (&str, &str)| {
        let out = run_ok(&mut host(user, address, &["request", "--size", "4M", "--name", "gfs", "--shared", "--json"]));
        serde_json::from_str::<serde_json::Value>(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    };
    let got_a = ask(a);
    let got_b = ask(b);
    assert_eq!((&got_a["unit"], &got_a["volume"]), (&got_b["unit"], &got_b["volume"]), "{got_a}\n{got_b}");
    let name = format!("{}/{}", got_a["unit"], got_a["volume"]);
    let listed = |(user, address): (&str, &str)| -> Vec<String> {
        run_ok(&mut host(user, address, &["list", "--json"]))
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .map(|row| format!("{}/{}", row["unit"], row["volume"]))
            .collect()
    };
    assert_eq!(listed(a), vec![name.clone()]);
    assert_eq!(listed(b), vec![name.clone()]);

    // One row per host; each requester sees its own, the admin both, another requester none.
    assert_eq!(assignment_hosts(&station, "noc"), ["127.0.70.100", "127.0.70.101"]);
    assert_eq!(assignment_hosts(&station, "host-a"), ["127.0.70.100"]);
    assert_eq!(assignment_hosts(&station, "host-b"), ["127.0.70.101"]);
    assert!(assignment_hosts(&station, "host-c").is_empty());
    // host-c (another requester, at host-a's address even) cannot release it.
    let refused = run_fails(&mut host("host-c", "127.0.70.100", &["release", &name]));
    assert!(refused.contains(&name) || refused.contains("not one of this host"), "{refused}");

    // Data in the volume's blocks (written into the unit's medium), to see when the unit wipes it.
    let layout = unit.show();
    let block_size = layout["unit"]["block_size"].as_u64().unwrap();
    let volume = layout["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["index"] == got_a["volume"])
        .cloned()
        .unwrap_or_else(|| panic!("{layout}"));
    let medium = &layout["media"][0];
    let offset =
        (volume["extent"]["start"].as_u64().unwrap() - medium["extent"]["start"].as_u64().unwrap()) * block_size;
    let disk = unit.state_dir.join("disk.img");
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut file = std::fs::OpenOptions::new().write(true).open(&disk).unwrap();
        file.seek(SeekFrom::Start(offset)).unwrap();
        file.write_all(&[0x5A; 4096]).unwrap();
        file.sync_all().unwrap();
    }

    // host-a releases its own: host-b keeps its grant and its data; host-a lists nothing.
    run_ok(&mut host(a.0, a.1, &["release", &name]));
    assert!(listed(a).is_empty());
    assert_eq!(listed(b), vec![name.clone()]);
    assert_eq!(unit.grants(), vec![(got_a["volume"].as_u64().unwrap(), "127.0.70.101".to_string())]);
    assert_eq!(assignment_hosts(&station, "noc"), ["127.0.70.101"]);
    assert_eq!(file_bytes(&disk, offset, 4096), vec![0x5A; 4096], "the volume was wiped while host-b held it");

    // host-b, the last, releases: no grant, no row, and the unit wipes the volume.
    run_ok(&mut host(b.0, b.1, &["release", &name]));
    assert!(listed(b).is_empty());
    assert!(unit.grants().is_empty());
    assert!(assignment_hosts(&station, "noc").is_empty());
    wait_until("the volume wiped after its last release", WAIT, || {
        file_bytes(&disk, offset, 4096).iter().all(|&b| b == 0).then_some(())
    });
}
