//! `dvsan-host enroll` through a running station's dvsanStationCertRequestTable: the host's key is made on the
//! host, the station signs its request for the host's SNMPv3 user name, and the directory it writes gets nbdinfo
//! through blockd (configured with the station's CA) to an export granted to that identity. A request asking for
//! another name (net-snmp's snmpset with an openssl request), and a community requester, get a failed row and no
//! certificate.
//!
//! `dvsan-host attach` of a volume on a unit whose blockd requires TLS prints TLS commands; the printed nbdinfo and
//! qemu-img commands are run and read the export.
//!
//! Needs `cargo build -p dvsan-blockd -p dvsan-station -p dvsan-host --bins` first.

use dvsan_layout::AccessMode;
use dvsan_tests::nbd::{run_tool_ok, Blockd, HeldConnection, Unit};
use dvsan_tests::units::{SanUnit, Station, WRITE_COMMUNITY};
use dvsan_tests::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const MIB: u64 = 1024 * 1024;
const UNIT_ID: &str = "0e7c2b5a-3f41-4d8e-b1a6-9c5d7e2f4a18";
const USERS: [(&str, &str, &str); 2] =
    [("host-a", "host-a-auth-pass", "host-a-priv-pass"), ("host-b", "host-b-auth-pass", "host-b-priv-pass")];
const COMMUNITY: &str = "enrol-write-community";

fn users_file(dir: &Path) -> PathBuf {
    let users: Vec<_> = USERS.iter().map(|&(name, auth, privacy)| (name, auth, privacy, "read-write")).collect();
    dvsan_tests::write_users_file(&dir.join("users.toml"), &users, 0o600)
}

/// net-snmp `tool` against the station as v3 `user` (authPriv SHA-256/AES).
fn v3(station: &Station, tool: &str, user: &str, args: &[&str]) -> Output {
    let (_, auth, privacy) = USERS.iter().find(|u| u.0 == user).copied().expect("a test user");
    net_snmp(tool)
        .args(["-v3", "-l", "authPriv", "-u", user, "-a", "SHA-256", "-A", auth, "-x", "AES", "-X", privacy])
        .args(["-t", "2", "-r", "1", "-Oqv"])
        .arg(station.snmp.unwrap().to_string())
        .args(args)
        .output()
        .expect("net-snmp runs")
}

fn v2c(station: &Station, tool: &str, args: &[&str]) -> Output {
    net_snmp(tool)
        .args(["-v2c", "-c", COMMUNITY, "-t", "2", "-r", "1", "-Oqv"])
        .arg(station.snmp.unwrap().to_string())
        .args(args)
        .output()
        .expect("net-snmp runs")
}

/// A PKCS#10 request made by openssl for subject CN `cn`, as hex of its DER (snmpset's `x` type).
fn openssl_request(dir: &Path, cn: &str) -> String {
    require_tool("openssl", "openssl");
    let der = dir.join(format!("{cn}.csr.der"));
    run_ok(
        Command::new("openssl")
            .args(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
            .args(["-subj", &format!("/CN={cn}"), "-outform", "DER", "-keyout"])
            .arg(dir.join(format!("{cn}.key")))
            .arg("-out")
            .arg(&der),
    );
    std::fs::read(&der).unwrap().iter().map(|b| format!("{b:02x}")).collect()
}

fn cell(out: &Output) -> String {
    assert!(out.status.success(), "{}", describe(out));
    stdout(out).trim().trim_matches('"').to_string()
}

#[test]
fn a_host_enrols_over_snmp_as_its_v3_user_and_reads_its_export_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let users = users_file(dir.path());
    let state = dir.path().join("station");
    let station = Station::start_bare(
        &state,
        &["--users", users.to_str().unwrap(), "--snmp-write-community", COMMUNITY, "--write-community", COMMUNITY],
    );

    // `dvsan-host enroll` as host-a.
    let out_dir = dir.path().join("host-a-tls");
    let enrolled = run_ok(station.host_cli_v3("127.0.0.1", &users, "host-a").args(["enroll", "--out"]).arg(&out_dir));
    assert!(enrolled.contains("enrolled as host-a"), "{enrolled}");
    let mode = std::fs::metadata(out_dir.join("client-key.pem")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text =
        run_ok(Command::new("openssl").args(["x509", "-noout", "-text", "-in"]).arg(out_dir.join("client-cert.pem")));
    assert!(text.contains("DNS:host-a") && text.contains("Subject: CN = host-a"), "{text}");
    assert_eq!(
        std::fs::read_to_string(out_dir.join("ca-cert.pem")).unwrap(),
        std::fs::read_to_string(state.join("ca/ca-cert.pem")).unwrap(),
        "the CA certificate is the station's"
    );

    // blockd with a certificate of the same station's CA serves host-a's export to that directory.
    let unit_tls = dir.path().join("unit-tls");
    run_ok(
        Command::new(workspace_bin("dvsan-station"))
            .args(["unit", "enroll", UNIT_ID, "--out"])
            .arg(dir.path().join("unit-users.toml"))
            .arg("--tls-dir")
            .arg(&unit_tls)
            .args(["--tls-name", "127.0.0.1", "--state-dir"])
            .arg(&state),
    );
    let unit = Unit::new(&[16 * MIB]);
    let data = unit.volume("data", 256);
    unit.grant_identity(data.index, "host-a", None, AccessMode::ReadWrite);
    let file = |name: &str| unit_tls.join(name).display().to_string();
    let blockd = Blockd::start_with(
        &unit,
        &[
            "--tls",
            "require",
            "--tls-cert",
            &file("blockd-cert.pem"),
            "--tls-key",
            &file("blockd-key.pem"),
            "--tls-ca",
            &file("ca-cert.pem"),
        ],
    );
    let uri = format!("nbds://{}/data?tls-certificates={}", blockd.addr, out_dir.display());
    let info = run_tool_ok("nbdinfo", "libnbd-bin", &[&uri], 30);
    assert!(info.contains("export-size: 1048576"), "{info}");

    // host-b asking for "admin" is refused; asking for itself works (a PKCS#10 request of openssl's, by snmpset).
    let column = |name: &str, index: u32| format!("DVSAN-STATION-MIB::dvsanStationCertRequest{name}.{index}");
    let admin = openssl_request(dir.path(), "admin");
    let set = v3(&station, "snmpset", "host-b", &[&column("Csr", 7), "x", &admin, &column("RowStatus", 7), "i", "4"]);
    assert!(set.status.success(), "{}", describe(&set));
    assert_eq!(cell(&v3(&station, "snmpget", "host-b", &[&column("Status", 7)])), "failed");
    let error = cell(&v3(&station, "snmpget", "host-b", &[&column("Error", 7)]));
    assert!(error.contains("asks for \"admin\"") && error.contains("(host-b)"), "{error}");
    assert_eq!(cell(&v3(&station, "snmpget", "host-b", &[&column("Certificate", 7)])), "");
    // host-a does not see host-b's row.
    let other = v3(&station, "snmpget", "host-a", &[&column("Status", 7)]);
    assert!(stdout(&other).contains("No Such Instance"), "{}", describe(&other));

    let own = openssl_request(dir.path(), "host-b");
    v3(&station, "snmpset", "host-b", &[&column("Csr", 8), "x", &own, &column("RowStatus", 8), "i", "4"]);
    assert_eq!(cell(&v3(&station, "snmpget", "host-b", &[&column("Status", 8)])), "issued");
    assert_eq!(cell(&v3(&station, "snmpget", "host-b", &[&column("Identity", 8)])), "host-b");

    // A community is no identity.
    let set = v2c(&station, "snmpset", &[&column("Csr", 9), "x", &own, &column("RowStatus", 9), "i", "4"]);
    assert!(set.status.success(), "{}", describe(&set));
    assert_eq!(cell(&v2c(&station, "snmpget", &[&column("Status", 9)])), "failed");
    let error = cell(&v2c(&station, "snmpget", &[&column("Error", 9)]));
    assert!(error.contains("only to an SNMPv3 user"), "{error}");
}

fn dvsan_host(station: &Station, users: &Path, user: &str, args: &[&str]) -> String {
    run_ok(station.host_cli_v3("127.0.0.1", users, user).args(args))
}

/// The printed line that starts with `tool `, split at spaces (the test's paths have none), quotes removed.
fn printed_command(out: &str, tool: &str) -> Vec<String> {
    let line = out.lines().find(|l| l.starts_with(&format!("{tool} "))).unwrap_or_else(|| panic!("no {tool}: {out}"));
    line.split_whitespace().skip(1).map(|w| w.trim_matches('\'').to_string()).collect()
}

#[test]
fn attach_prints_tls_commands_that_work() {
    let dir = tempfile::tempdir().unwrap();
    let users = users_file(dir.path());
    let state = dir.path().join("station");
    let users_arg = users.to_str().unwrap();
    let station = Station::start_bare(
        &state,
        &["--trust-community-units", "--write-community", WRITE_COMMUNITY, "--users", users_arg],
    );
    let mut unit =
        SanUnit::start(&dir.path().join("u1"), "127.0.65.1:1161", &station.traps.to_string(), "u1", &["64M"]);
    // blockd again, requiring TLS, with a certificate of the station's CA for the unit's address.
    let ca = dvsan_station::ca::StationCa::open_or_create(&state).unwrap();
    let issued = ca.issue_unit(UNIT_ID, &["127.0.65.1".to_string()]).unwrap();
    let unit_tls = dir.path().join("unit-tls");
    dvsan_station::ca::write_unit_dir(&unit_tls, ca.cert_pem(), &issued).unwrap();
    let file = |name: &str| unit_tls.join(name).display().to_string();
    unit.start_blockd_with(&[
        "--tls",
        "require",
        "--tls-cert",
        &file("blockd-cert.pem"),
        "--tls-key",
        &file("blockd-key.pem"),
        "--tls-ca",
        &file("ca-cert.pem"),
    ]);
    station.wait_unit(&unit.snmp_addr, "available", std::time::Duration::from_secs(15), |u| u["state"] == "available");

    let certs = dir.path().join("host-a-tls");
    dvsan_host(&station, &users, "host-a", &["enroll", "--out", certs.to_str().unwrap()]);
    let assigned = dvsan_host(&station, &users, "host-a", &["request", "--size", "8M", "--json"]);
    let assigned: serde_json::Value = serde_json::from_str(&assigned).unwrap_or_else(|e| panic!("{e}: {assigned}"));
    let volume = format!("{}/{}", assigned["unit"], assigned["volume"]);

    // Without --tls-dir: the unit's refusal of plain NBD says TLS; the commands name DIR.
    let out = dvsan_host(&station, &users, "host-a", &["attach", &volume]);
    assert!(out.contains("the unit requires TLS") && out.contains("tls-certificates=DIR"), "{out}");

    let out = dvsan_host(&station, &users, "host-a", &["attach", &volume, "--tls-dir", certs.to_str().unwrap()]);
    assert!(out.contains(&format!("nbdinfo 'nbds://127.0.65.1:{}/", unit.data_port)), "{out}");
    let nbdinfo = printed_command(&out, "nbdinfo");
    let args: Vec<&str> = nbdinfo.iter().map(String::as_str).collect();
    let info = run_tool_ok("nbdinfo", "libnbd-bin", &args, 30);
    assert!(info.contains("export-size: 8388608"), "{out}\n{info}");
    let qemu = printed_command(&out, "qemu-img");
    let args: Vec<&str> = qemu.iter().map(String::as_str).collect();
    let info = run_tool_ok("qemu-img", "qemu-utils", &args, 30);
    assert!(info.contains("virtual size: 8 MiB"), "{out}\n{info}");
}

/// blockd of `unit` again, requiring TLS with a certificate of the station's CA (in `state`) for the unit's address.
fn blockd_with_station_tls(unit: &mut SanUnit, state: &Path, dir: &Path) {
    let ca = dvsan_station::ca::StationCa::open_or_create(state).unwrap();
    let issued = ca.issue_unit(UNIT_ID, std::slice::from_ref(&unit.ip)).unwrap();
    let unit_tls = dir.join("unit-tls");
    dvsan_station::ca::write_unit_dir(&unit_tls, ca.cert_pem(), &issued).unwrap();
    let file = |name: &str| unit_tls.join(name).display().to_string();
    unit.start_blockd_with(&[
        "--tls",
        "require",
        "--tls-cert",
        &file("blockd-cert.pem"),
        "--tls-key",
        &file("blockd-key.pem"),
        "--tls-ca",
        &file("ca-cert.pem"),
    ]);
}

/// The unit's dvsanAccessTable as snmptable prints it (`|`-separated, with the column names).
fn access_table(unit: &SanUnit) -> String {
    run_ok(
        net_snmp("snmptable")
            .args(["-v2c", "-c", "public", "-t", "2", "-r", "1", "-Cf", "|", "-Cl"])
            .arg(&unit.snmp_addr)
            .arg("DVSAN-MIB::dvsanAccessTable"),
    )
}

/// A host enrolled with `dvsan-host enroll` asks for storage as its SNMPv3 user: the station's grant on the unit names
/// its identity next to its address (snmptable shows it), the station counts the grant as its own (not foreign,
/// reconcile finds it consistent), nbdinfo with the host's certificate reads the export from blockd `--tls require`,
/// and another host's certificate of the same CA (from the same address) is refused.
#[test]
fn a_v3_host_with_a_certificate_is_granted_by_identity() {
    let dir = tempfile::tempdir().unwrap();
    let users = users_file(dir.path());
    let state = dir.path().join("station");
    let station = Station::start_bare(
        &state,
        &["--trust-community-units", "--write-community", WRITE_COMMUNITY, "--users", users.to_str().unwrap()],
    );
    let mut unit =
        SanUnit::start(&dir.path().join("u1"), "127.0.66.1:1161", &station.traps.to_string(), "u1", &["64M"]);
    blockd_with_station_tls(&mut unit, &state, dir.path());
    station.wait_unit(&unit.snmp_addr, "available", std::time::Duration::from_secs(15), |u| u["state"] == "available");

    let host_a = dir.path().join("host-a-tls");
    dvsan_host(&station, &users, "host-a", &["enroll", "--out", host_a.to_str().unwrap()]);
    // host-b's certificate, issued by the admin: same CA, another identity.
    let host_b = dir.path().join("host-b-tls");
    run_ok(
        station.cli().args(["host", "issue", "host-b", "--out", host_b.to_str().unwrap(), "--state-dir"]).arg(&state),
    );

    let assigned = dvsan_host(&station, &users, "host-a", &["request", "--size", "8M", "--json"]);
    let assigned: serde_json::Value = serde_json::from_str(&assigned).unwrap_or_else(|e| panic!("{e}: {assigned}"));
    let export =
        assigned["nbd_uri"].as_str().and_then(|u| u.rsplit('/').next()).unwrap_or_else(|| panic!("{assigned}"));

    let table = access_table(&unit);
    let row = table.lines().find(|l| l.contains("host-a")).unwrap_or_else(|| panic!("no grant names host-a:\n{table}"));
    let header = table.lines().find(|l| l.contains("HostIdentity")).unwrap_or_else(|| panic!("{table}"));
    let column = |name: &str| header.split('|').position(|c| c.ends_with(name)).unwrap_or_else(|| panic!("{header}"));
    let cells: Vec<&str> = row.split('|').collect();
    assert_eq!(cells[column("HostIdentity")].trim_matches('"'), "host-a", "{header}\n{row}");
    assert_eq!(cells[column("Mode")], "readWrite", "{header}\n{row}");
    assert_ne!(cells[column("HostAddress")].trim_matches('"'), "", "the grant names the address too: {row}");

    // The station's own grant: not foreign in the pool, consistent for reconcile.
    let pool = station.pool();
    let volumes = pool["units"][0]["volumes"].as_array().unwrap_or_else(|| panic!("{pool}"));
    let volume = volumes.iter().find(|v| v["export_name"] == export).unwrap_or_else(|| panic!("{pool}"));
    assert_eq!(volume["foreign_grants"].as_array().map_or(0, Vec::len), 0, "{volume}");
    let reconciled = run_ok(station.cli().args(["reconcile", "--state-dir"]).arg(&state));
    let reconciled: serde_json::Value =
        serde_json::from_str(&reconciled).unwrap_or_else(|e| panic!("{e}: {reconciled}"));
    assert_eq!(
        (reconciled["consistent"].as_u64(), reconciled["foreign_grants"].as_u64()),
        (Some(1), Some(0)),
        "{reconciled}"
    );

    let uri =
        |certs: &Path| format!("nbds://{}:{}/{export}?tls-certificates={}", unit.ip, unit.data_port, certs.display());
    // blockd learns the grant at its next read of the unit's store (every 250 ms).
    let info = wait_until("host-a's nbdinfo over TLS", std::time::Duration::from_secs(10), || {
        let out = dvsan_tests::nbd::run_tool("nbdinfo", "libnbd-bin", &[&uri(&host_a)], 30);
        out.status.success().then(|| stdout(&out))
    });
    assert!(info.contains("export-size: 8388608"), "{info}");
    let refused = dvsan_tests::nbd::run_tool("nbdinfo", "libnbd-bin", &[&uri(&host_b)], 30);
    assert!(!refused.status.success(), "host-b read host-a's export: {}", describe(&refused));
}

/// `dvsan-station host revoke NAME`: the grant the station made for host-a's identity is destroyed on the unit, a
/// qemu-io connection host-a holds open is closed by blockd, a new nbdinfo is refused, the assignment is forgotten,
/// `dvsan-host enroll` as host-a and its storage requests are refused until `host issue host-a` again.
///
/// Revocation by certificate: the station's CA lists host-a's certificate in a new revocation list and pushes it to
/// the unit (dvsanDataTlsCrl), so blockd refuses that certificate also on a volume granted by address only (made
/// with snmpset, outside the station). A certificate issued to host-a again works there and, after a new grant,
/// on its new volume. A malformed list pushed with snmpset gets wrongValue and the list in force stays.
#[test]
fn revoking_a_host_removes_its_grants_and_closes_its_connections() {
    let dir = tempfile::tempdir().unwrap();
    let users = users_file(dir.path());
    let state = dir.path().join("station");
    let station = Station::start_bare(
        &state,
        &["--trust-community-units", "--write-community", WRITE_COMMUNITY, "--users", users.to_str().unwrap()],
    );
    let mut unit =
        SanUnit::start(&dir.path().join("u1"), "127.0.67.1:1161", &station.traps.to_string(), "u1", &["64M"]);
    blockd_with_station_tls(&mut unit, &state, dir.path());
    station.wait_unit(&unit.snmp_addr, "available", std::time::Duration::from_secs(15), |u| u["state"] == "available");

    let host_a = dir.path().join("host-a-tls");
    dvsan_host(&station, &users, "host-a", &["enroll", "--out", host_a.to_str().unwrap()]);
    let assigned = dvsan_host(&station, &users, "host-a", &["request", "--size", "8M", "--json"]);
    let assigned: serde_json::Value = serde_json::from_str(&assigned).unwrap_or_else(|e| panic!("{e}: {assigned}"));
    let export =
        assigned["nbd_uri"].as_str().and_then(|u| u.rsplit('/').next()).unwrap_or_else(|| panic!("{assigned}"));
    let uri = format!("nbds://{}:{}/{export}?tls-certificates={}", unit.ip, unit.data_port, host_a.display());

    // A volume granted by address only (outside the station), to 127.0.0.1 where host-a's tools run: host-a's
    // certificate reads it (the grant admits any certificate of the CA from that address).
    let volume = unit.get(&["DVSAN-MIB::dvsanVolumeNextIndex.0"]).trim().to_string();
    unit.set(&[
        &format!("DVSAN-MIB::dvsanVolumeLength.{volume}"),
        "u",
        "1024",
        &format!("DVSAN-MIB::dvsanVolumeRowStatus.{volume}"),
        "i",
        "createAndGo",
    ]);
    let grant: u32 = unit.get(&["DVSAN-MIB::dvsanAccessNextIndex.0"]).trim().parse().unwrap();
    unit.grant_volume(grant, volume.parse().unwrap(), std::net::Ipv4Addr::LOCALHOST);
    let by_address_export =
        unit.get(&[&format!("DVSAN-MIB::dvsanVolumeName.{volume}")]).trim().trim_matches('"').to_string();
    let by_address = |certs: &Path| {
        format!("nbds://{}:{}/{by_address_export}?tls-certificates={}", unit.ip, unit.data_port, certs.display())
    };
    wait_until("host-a's nbdinfo on the address grant", std::time::Duration::from_secs(10), || {
        dvsan_tests::nbd::run_tool("nbdinfo", "libnbd-bin", &[&by_address(&host_a)], 30).status.success().then_some(())
    });

    // host-a holds a connection open and reads over it.
    let mut held = wait_until("host-a's qemu-io connection", std::time::Duration::from_secs(10), || {
        let mut held = HeldConnection::open(&unit.ip, unit.data_port, export, &host_a);
        held.read().0.then_some(held)
    });

    let revoked = run_ok(station.cli().args(["host", "revoke", "host-a", "--json", "--state-dir"]).arg(&state));
    let revoked: serde_json::Value = serde_json::from_str(&revoked).unwrap_or_else(|e| panic!("{e}: {revoked}"));
    assert_eq!(revoked["released"].as_array().map(Vec::len), Some(1), "{revoked}");
    assert_eq!(revoked["not_revoked"].as_array().map(Vec::len), Some(0), "{revoked}");
    assert_eq!(revoked["was_valid"], true, "{revoked}");
    assert_eq!(revoked["certificates_revoked"], 1, "{revoked}");
    assert_eq!(revoked["crl_pushed"].as_array().map(Vec::len), Some(1), "{revoked}");
    assert_eq!(revoked["crl_not_pushed"].as_array().map(Vec::len), Some(0), "{revoked}");
    assert_eq!(unit.get(&["DVSAN-MIB::dvsanDataTlsCrlRevoked.0"]).trim(), "1 certificates");
    assert_eq!(unit.get(&["DVSAN-MIB::dvsanDataTlsCrlNumber.0"]).trim(), revoked["crl_number"].to_string());

    // The grant is gone from the unit; the open connection is closed (bounded: blockd reads its store every 250 ms).
    let table = access_table(&unit);
    assert!(!table.contains("host-a"), "{table}");
    let closed = wait_until("blockd to close host-a's open connection", std::time::Duration::from_secs(10), || {
        let (ok, said) = held.read();
        (!ok).then_some(said)
    });
    assert!(!closed.contains("read 4096/4096"), "{closed}");
    let refused = dvsan_tests::nbd::run_tool("nbdinfo", "libnbd-bin", &[&uri], 30);
    assert!(!refused.status.success(), "a new connection after the revoke: {}", describe(&refused));
    // The address grant is still there, and no longer admits host-a's revoked certificate.
    assert_eq!(unit.get(&[&format!("DVSAN-MIB::dvsanAccessRowStatus.{grant}")]).trim(), "active");
    let refused = dvsan_tests::nbd::run_tool("nbdinfo", "libnbd-bin", &[&by_address(&host_a)], 30);
    assert!(!refused.status.success(), "the revoked certificate on an address grant: {}", describe(&refused));
    assert!(!stdout(&refused).contains("export-size"), "{}", describe(&refused));
    // A malformed revocation list: refused by the agent, the list in force stays.
    let out = net_snmp("snmpset")
        .args(["-v2c", "-c", WRITE_COMMUNITY, "-t", "2", "-r", "1"])
        .arg(&unit.snmp_addr)
        .args(["DVSAN-MIB::dvsanDataTlsCrl.0", "x", "3082000A0102030405"])
        .output()
        .expect("snmpset runs");
    assert!(!out.status.success() && describe(&out).contains("wrongValue"), "{}", describe(&out));
    assert_eq!(unit.get(&["DVSAN-MIB::dvsanDataTlsCrlRevoked.0"]).trim(), "1 certificates");
    let refused = dvsan_tests::nbd::run_tool("nbdinfo", "libnbd-bin", &[&by_address(&host_a)], 30);
    assert!(!refused.status.success(), "still revoked: {}", describe(&refused));
    // The assignment is forgotten: host-a lists no volume.
    assert_eq!(dvsan_host(&station, &users, "host-a", &["list"]).trim(), "");

    // A revoked identity gets no certificate and no storage until an admin issues it again.
    let again = dir.path().join("host-a-again");
    let out = station
        .host_cli_v3("127.0.0.1", &users, "host-a")
        .args(["enroll", "--out"])
        .arg(&again)
        .output()
        .expect("dvsan-host runs");
    assert!(!out.status.success() && describe(&out).contains("revoked"), "{}", describe(&out));
    let out = station
        .host_cli_v3("127.0.0.1", &users, "host-a")
        .args(["request", "--size", "8M"])
        .output()
        .expect("dvsan-host runs");
    assert!(!out.status.success() && describe(&out).contains("revoked"), "{}", describe(&out));

    run_ok(
        station.cli().args(["host", "issue", "host-a", "--out", again.to_str().unwrap(), "--state-dir"]).arg(&state),
    );
    // The certificate issued again has a new serial: the address grant admits it.
    let info = run_tool_ok("nbdinfo", "libnbd-bin", &[&by_address(&again)], 30);
    assert!(info.contains("export-size: 4194304"), "{info}");
    dvsan_host(&station, &users, "host-a", &["enroll", "--out", again.to_str().unwrap()]);
    // A new grant for host-a's identity: its new certificate reads its new volume.
    let assigned = dvsan_host(&station, &users, "host-a", &["request", "--size", "8M", "--json"]);
    let assigned: serde_json::Value = serde_json::from_str(&assigned).unwrap_or_else(|e| panic!("{e}: {assigned}"));
    let export =
        assigned["nbd_uri"].as_str().and_then(|u| u.rsplit('/').next()).unwrap_or_else(|| panic!("{assigned}"));
    let uri = format!("nbds://{}:{}/{export}?tls-certificates={}", unit.ip, unit.data_port, again.display());
    let info = wait_until("host-a's new certificate on its new grant", std::time::Duration::from_secs(10), || {
        let out = dvsan_tests::nbd::run_tool("nbdinfo", "libnbd-bin", &[&uri], 30);
        out.status.success().then(|| stdout(&out))
    });
    assert!(info.contains("export-size: 8388608"), "{info}");
    let refused = dvsan_tests::nbd::run_tool(
        "nbdinfo",
        "libnbd-bin",
        &[&uri.replace(again.to_str().unwrap(), host_a.to_str().unwrap())],
        30,
    );
    assert!(!refused.status.success(), "the revoked certificate on the new grant: {}", describe(&refused));
}

/// A unit that joins after a revoke gets the station's revocation list (its dvsanDataTlsCrlNumber is older), and its
/// blockd then refuses the revoked certificate on an address grant, while a certificate issued later is served.
#[test]
fn a_unit_that_joins_later_gets_the_revocation_list() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("station");
    let station = Station::start_bare(&state, &["--trust-community-units", "--write-community", WRITE_COMMUNITY]);
    let old = dir.path().join("host-a-old");
    run_ok(station.cli().args(["host", "issue", "host-a", "--out", old.to_str().unwrap(), "--state-dir"]).arg(&state));
    let revoked = run_ok(station.cli().args(["host", "revoke", "host-a", "--json", "--state-dir"]).arg(&state));
    let revoked: serde_json::Value = serde_json::from_str(&revoked).unwrap_or_else(|e| panic!("{e}: {revoked}"));
    assert_eq!(revoked["certificates_revoked"], 1, "{revoked}");
    assert_eq!(revoked["crl_pushed"].as_array().map(Vec::len), Some(0), "no unit yet: {revoked}");
    let new = dir.path().join("host-a-new");
    run_ok(station.cli().args(["host", "issue", "host-a", "--out", new.to_str().unwrap(), "--state-dir"]).arg(&state));

    let mut unit =
        SanUnit::start(&dir.path().join("u1"), "127.0.67.5:1161", &station.traps.to_string(), "u1", &["64M"]);
    blockd_with_station_tls(&mut unit, &state, dir.path());
    assert_eq!(unit.get(&["DVSAN-MIB::dvsanDataTlsCrlNumber.0"]).trim(), "0", "no list before it joins");
    station.wait_unit(&unit.snmp_addr, "available", std::time::Duration::from_secs(15), |u| u["state"] == "available");
    unit.wait_value("DVSAN-MIB::dvsanDataTlsCrlRevoked.0", "1 certificates");
    assert_eq!(unit.get(&["DVSAN-MIB::dvsanDataTlsCrlNumber.0"]).trim(), revoked["crl_number"].to_string());

    unit.set(&["DVSAN-MIB::dvsanVolumeLength.1", "u", "1024", "DVSAN-MIB::dvsanVolumeRowStatus.1", "i", "createAndGo"]);
    unit.grant_volume(1, 1, std::net::Ipv4Addr::LOCALHOST);
    let export = unit.get(&["DVSAN-MIB::dvsanVolumeName.1"]).trim().trim_matches('"').to_string();
    let uri =
        |certs: &Path| format!("nbds://{}:{}/{export}?tls-certificates={}", unit.ip, unit.data_port, certs.display());
    let info = wait_until("the new certificate on the address grant", std::time::Duration::from_secs(10), || {
        let out = dvsan_tests::nbd::run_tool("nbdinfo", "libnbd-bin", &[&uri(&new)], 30);
        out.status.success().then(|| stdout(&out))
    });
    assert!(info.contains("export-size: 4194304"), "{info}");
    let refused = dvsan_tests::nbd::run_tool("nbdinfo", "libnbd-bin", &[&uri(&old)], 30);
    assert!(!refused.status.success(), "the revoked certificate: {}", describe(&refused));
}

/// An enrolled unit (SNMPv3 only: its agent has no write community) gets the revocation list from `host revoke`
/// as its own v3 user, and keeps it in its state directory for blockd.
#[test]
fn an_enrolled_unit_gets_the_revocation_list_as_its_v3_user() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("station");
    let station = Station::start_secure(&state, &[]);
    let unit_dir = dir.path().join("u1");
    let init = run_ok(Command::new(workspace_bin("dvsan-agent")).arg("init").arg("--state-dir").arg(&unit_dir));
    let id = init.split_whitespace().find(|w| w.len() == 36 && w.matches('-').count() == 4).unwrap().to_string();
    let users = dir.path().join("unit-users.toml");
    run_ok(station.cli().args(["unit", "enroll", &id, "--out"]).arg(&users).arg("--state-dir").arg(&state));
    let user = format!("unit-{}", &id[..8]);
    let mut unit = dvsan_tests::units::Unit::start_enrolled(
        &unit_dir,
        "127.0.67.9",
        station.traps,
        "32M",
        &users,
        &user,
        "enrolled-unit-read",
    );
    unit.serve_data();
    station.wait_unit(&unit.address(), "the enrolled unit pooled", std::time::Duration::from_secs(15), |u| {
        u["state"] == "available"
    });
    let out_dir = dir.path().join("host-a");
    run_ok(station.cli().args(["host", "issue", "host-a", "--out"]).arg(&out_dir).arg("--state-dir").arg(&state));
    let revoked = run_ok(station.cli().args(["host", "revoke", "host-a", "--json", "--state-dir"]).arg(&state));
    let revoked: serde_json::Value = serde_json::from_str(&revoked).unwrap_or_else(|e| panic!("{e}: {revoked}"));
    assert_eq!(revoked["crl_pushed"].as_array().map(Vec::len), Some(1), "{revoked}");
    assert_eq!(revoked["crl_not_pushed"].as_array().map(Vec::len), Some(0), "{revoked}");
    let held = unit.snmpget(&["DVSAN-MIB::dvsanDataTlsCrlRevoked.0"]).unwrap();
    assert!(held.contains("1 certificates"), "{held}");
    let pushed = std::fs::read(unit_dir.join(dvsan_layout::PUSHED_CRL_FILE)).unwrap();
    let station_crl = std::fs::read(state.join("ca").join("crl.der")).unwrap();
    assert_eq!(pushed, station_crl, "the unit holds the CA's list");
}
