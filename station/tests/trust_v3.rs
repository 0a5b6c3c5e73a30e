//! SNMPv3 between the station and its enrolled units, with real processes: `dvsan-station unit enroll` writes the
//! unit's users file; a unit agent started with it (`--users FILE --notify-user USER`), with a read community the
//! station does not know and no write community at all, joins a secure station without approval (its v3 coldStart
//! is authenticated as the enrolled user), is read over v3 and serves `dvsan-host request` (the station creates
//! the volume and the grant with SNMPv3 SETs: nothing else could). The same unit restarted at a new address with
//! its credentials is followed; a fake agent elsewhere claiming its id with v2c is refused; net-snmp's
//! `snmptrap -v3` with a wrong key is refused and counted (dvsanStationUsmRefusals); a hostile corpus of v3
//! datagrams at the trap port changes nothing and the station keeps serving. A unit enrolled before its agent first
//! runs (`dvsan-agent init` prints its id) that sends SNMPv3 informs joins the same way: each inform goes to the
//! station's engine after discovery and is acknowledged.

use dvsan_snmp::testing::v3_hostile_corpus;
use dvsan_snmp::usm::{EngineId, UsersFile};
use dvsan_tests::units::*;
use dvsan_tests::*;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

/// The read community of the enrolled agents: the station does not know it, so whatever it reads from them it
/// reads as their SNMPv3 user.
const UNIT_READ_COMMUNITY: &str = "ro-only-mine-51c2";

/// A UDP port on 127.0.0.1 that nothing listens on.
fn closed_port() -> std::net::SocketAddr {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// `dvsan-station ARGS --state-dir D`.
fn cli(station: &Station, args: &[&str]) -> Command {
    let mut cmd = station.cli();
    cmd.args(args).arg("--state-dir").arg(&station.state_dir);
    cmd
}

/// A dvsanStationStats counter of the station's own agent, read with net-snmp.
fn stat(station: &Station, name: &str) -> u64 {
    let address = station.snmp.expect("station agent").to_string();
    let object = format!("DVSAN-STATION-MIB::{name}.0");
    let text = snmp_ok("snmpget", &["-v2c", "-c", "public", "-OUqv", &address, &object]);
    text.trim().parse().unwrap_or_else(|_| panic!("{name} is not a number: {text:?}"))
}

/// The id of the unit whose agent keeps its state in `state_dir` (the agent is started once, then stopped).
fn unit_id_of_new_unit(state_dir: &Path, ip: &str, size: &str) -> String {
    let mut unit = Unit::start(state_dir, ip, closed_port(), size, &[]);
    let id = unit.unit_id();
    unit.proc.terminate();
    id
}

/// `dvsan-agent init --state-dir D`: creates the unit without starting its agent and returns its unit id.
fn init_unit(state_dir: &Path) -> String {
    let out = run_ok(Command::new(workspace_bin("dvsan-agent")).arg("init").arg("--state-dir").arg(state_dir));
    out.trim().to_string()
}

/// `unit enroll ID --out FILE`: the unit's users file and its user name.
fn enroll(station: &Station, dir: &Path, unit_id: &str) -> (PathBuf, String) {
    let users = dir.join(format!("{}-users.toml", &unit_id[..8]));
    let out = run_ok(&mut cli(station, &["unit", "enroll", unit_id, "--out", &users.display().to_string()]));
    let user = format!("unit-{}", &unit_id[..8]);
    assert!(out.contains(&user), "{out}");
    (users, user)
}

/// The engine id (hex) and boots an SNMP engine keeps in `state_dir`.
fn engine_of(state_dir: &Path) -> (String, u32) {
    let text = std::fs::read_to_string(state_dir.join("snmp-engine.toml")).unwrap();
    let state: toml::Value = toml::from_str(&text).unwrap();
    (state["engine_id"].as_str().unwrap().to_string(), state["boots"].as_integer().unwrap() as u32)
}

/// `dvsan-host --station S --host H ARGS` with the station's write (admin) community.
fn host_cli(station: &Station, host: &str, args: &[&str]) -> Command {
    let mut cmd = station.host_cli(host);
    cmd.args(["--write-community", WRITE_COMMUNITY]).args(args);
    cmd
}

#[test]
fn an_enrolled_unit_joins_over_snmpv3_serves_allocations_and_is_followed_when_it_moves() {
    let dir = tempfile::tempdir().unwrap();
    let station = Station::start_secure(&dir.path().join("station"), &[]);
    let unit_dir = dir.path().join("u1");
    let id = unit_id_of_new_unit(&unit_dir, "127.0.57.1", "32M");
    let (users, user) = enroll(&station, dir.path(), &id);

    // The enrolled unit: its v3 coldStart pools it without approval, and it is read over v3 (the station does not
    // know its read community).
    let mut unit =
        Unit::start_enrolled(&unit_dir, "127.0.57.1", station.traps, "32M", &users, &user, UNIT_READ_COMMUNITY);
    unit.serve_data();
    let pooled = station.wait_unit("127.0.57.1:1161", "the enrolled unit pooled", WAIT, |u| u["state"] == "available");
    assert_eq!(pooled["unit_id"], id.as_str());
    assert!(station.pending().is_empty(), "{:?}", station.pending());
    let stored = station.traps(&[]);
    assert!(
        stored
            .iter()
            .any(|t| t["version"] == "v3" && t["source"].as_str().is_some_and(|s| s.starts_with("127.0.57.1:"))),
        "{stored:?}"
    );

    // dvsan-host asks for storage: the station creates a volume and grants it over v3 (the unit has no write
    // community), then reads the unit again over v3.
    let text =
        run_ok(&mut host_cli(&station, "127.0.57.100", &["request", "--size", "4M", "--name", "v3-a", "--json"]));
    let allocation: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(allocation["unit_address"], "127.0.57.1", "{allocation:#}");
    assert_eq!(allocation["volume_source"], "created", "{allocation:#}");
    let shown = unit.show();
    let volumes = shown["volumes"].as_array().cloned().unwrap_or_default();
    assert_eq!(volumes.len(), 1, "{shown:#}");
    assert!(shown.to_string().contains("127.0.57.100"), "the grant is on the unit: {shown:#}");
    let unit_row = station.wait_unit("127.0.57.1:1161", "the new volume walked", WAIT, |u| {
        u["volumes"].as_array().is_some_and(|v| v.len() == 1)
    });
    let index = unit_row["index"].clone();

    // The unit moves: same state directory and credentials, new address. The station follows it: same row.
    unit.proc.terminate();
    drop(unit);
    let mut moved =
        Unit::start_enrolled(&unit_dir, "127.0.57.2", station.traps, "32M", &users, &user, UNIT_READ_COMMUNITY);
    moved.serve_data();
    let followed = station.wait_unit("127.0.57.2:1161", "the moved unit followed", WAIT, |u| u["state"] == "available");
    assert_eq!(followed["index"], index);
    assert_eq!(followed["unit_id"], id.as_str());
    assert_eq!(volumes_of(&followed), volumes_of(&unit_row));
    assert!(station.unit_at("127.0.57.1:1161").is_none(), "{:#}", station.pool());
    assert_eq!(station.pool()["units"].as_array().unwrap().len(), 1, "{:#}", station.pool());

    // A fake agent elsewhere (its own state directory) whose store claims the enrolled unit's id, announcing
    // itself with v2c: refused, counted, the real unit stays.
    let refusals = stat(&station, "dvsanStationIdentityRefusals");
    let fake_dir = dir.path().join("fake");
    unit_id_of_new_unit(&fake_dir, "127.0.57.3", "16M");
    let db = rusqlite::Connection::open(fake_dir.join("unit.db")).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    db.execute("UPDATE unit SET unit_id = ?1", [&id]).unwrap();
    drop(db);
    let fake = Unit::start(&fake_dir, "127.0.57.3", station.traps, "16M", &[]);
    assert_eq!(fake.unit_id(), id);
    wait_until("dvsanStationIdentityRefusals to count the fake", WAIT, || {
        (stat(&station, "dvsanStationIdentityRefusals") > refusals).then_some(())
    });
    let after = station.unit_at("127.0.57.2:1161").expect("the real unit is still in the pool");
    assert_eq!((&after["index"], &after["state"]), (&index, &serde_json::json!("available")));
    assert!(station.unit_at("127.0.57.3:1161").is_none(), "{:#}", station.pool());
    drop(fake);

    // A v3 trap as the enrolled user, from the unit's engine, with a wrong key (net-snmp): refused and counted,
    // nothing changes.
    let (engine, _) = engine_of(&moved.state_dir);
    let usm_refusals = stat(&station, "dvsanStationUsmRefusals");
    let out = net_snmp("snmptrap")
        .args(["-v3", "-e", &format!("0x{engine}"), "-u", &user, "-l", "authPriv"])
        .args(["-a", "SHA-256", "-A", "not-the-unit-key", "-x", "AES", "-X", "not-the-unit-key"])
        .arg(station.traps.to_string())
        .args(["", "SNMPv2-MIB::coldStart", "DVSAN-MIB::dvsanUnitId.0", "s", &id])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    wait_until("dvsanStationUsmRefusals to count the wrong key", WAIT, || {
        (stat(&station, "dvsanStationUsmRefusals") > usm_refusals).then_some(())
    });
    let still = station.unit_at("127.0.57.2:1161").expect("the real unit is still in the pool");
    assert_eq!((&still["index"], &still["state"]), (&index, &serde_json::json!("available")));
    assert_eq!(station.pool()["units"].as_array().unwrap().len(), 1, "{:#}", station.pool());
    assert!(station.pending().is_empty(), "{:?}", station.pending());
    wait_until("the refusal logged with its reason", WAIT, || {
        let log = std::fs::read_to_string(station.state_dir.with_extension("log")).ok()?;
        log.lines().any(|l| l.contains("SNMPv3 notification refused") && l.contains("wrong digest")).then_some(())
    });
}

#[test]
fn hostile_snmpv3_datagrams_at_the_trap_port_are_counted_and_the_station_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let mut station = Station::start_secure(&dir.path().join("station"), &[]);
    // An enrolled user, so that the corpus's signed cases get past the user lookup.
    let (users, user) = enroll(&station, dir.path(), "5a5a5a5a-1111-4222-8333-444455556666");
    let (engine_hex, boots) = engine_of(&station.state_dir);
    let engine = EngineId::from_hex(&engine_hex).unwrap();
    let local = UsersFile::load(&users).unwrap().find(&user).unwrap().localize(&engine);
    let corpus = v3_hostile_corpus(engine.as_bytes(), boots, &local);
    assert!(corpus.len() >= 10, "{} cases", corpus.len());

    let counted = || {
        ["dvsanStationUsmRefusals", "dvsanStationParseErrors", "dvsanStationBadCommunities"]
            .iter()
            .map(|name| stat(&station, name))
            .sum::<u64>()
    };
    let before = counted();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    for case in &corpus {
        socket.send_to(&case.datagram, station.traps).unwrap();
    }
    // Every datagram is dropped and counted, but a discovery probe (answered with a Report, as RFC 3414 asks).
    let probes = corpus.iter().filter(|c| c.name.contains("discovery")).count() as u64;
    let want = before + corpus.len() as u64 - probes;
    wait_until(&format!("{want} dropped datagrams counted"), WAIT, || (counted() >= want).then_some(()));
    assert!(station.proc.wait_exit(Duration::from_millis(10)).is_none(), "the station died");
    assert_eq!(station.pool()["units"].as_array().unwrap().len(), 0);
    assert!(station.pending().is_empty(), "{:?}", station.pending());
    assert!(station.traps(&[]).iter().all(|t| t["version"] != "v3"), "nothing of the corpus is stored");

    // Still serving: a v2c notification is stored, the station's agent answers.
    let stored = stat(&station, "dvsanStationNotificationsStored");
    snmp_ok("snmptrap", &["-v2c", "-c", "public", &station.traps.to_string(), "", "SNMPv2-MIB::warmStart"]);
    wait_until("the v2c notification stored", WAIT, || {
        (stat(&station, "dvsanStationNotificationsStored") > stored).then_some(())
    });
}

#[test]
fn an_enrolled_unit_sending_snmpv3_informs_joins_and_its_informs_are_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let station = Station::start_secure(&dir.path().join("station"), &[]);
    let unit_dir = dir.path().join("u1");
    let id = init_unit(&unit_dir);
    let (users, user) = enroll(&station, dir.path(), &id);

    // The agent's informs go as its enrolled user to the station's engine (discovered first), with no write
    // community and a read community the station does not know.
    let listen: std::net::SocketAddr = "127.0.58.1:1161".parse().unwrap();
    let users_arg = users.display().to_string();
    let mut unit = Unit::start_with(
        &unit_dir,
        &listen.to_string(),
        listen,
        &station.traps.to_string(),
        "32M",
        (UNIT_READ_COMMUNITY, None),
        &["--users", &users_arg, "--notify-user", &user, "--inform"],
    );
    unit.serve_data();
    let pooled = station.wait_unit("127.0.58.1:1161", "the informing unit pooled", WAIT, |u| u["state"] == "available");
    assert_eq!(pooled["unit_id"], id.as_str());
    assert!(station.pending().is_empty(), "{:?}", station.pending());
    let is_v3_inform = |t: &serde_json::Value, oid: &str| {
        t["version"] == "v3" && t["kind"] == "inform" && t["unit_id"] == id.as_str() && t["trap_oid"] == oid
    };
    let cold_start = "1.3.6.1.6.3.1.1.5.1";
    assert!(station.traps(&[]).iter().any(|t| is_v3_inform(t, cold_start)), "{:?}", station.traps(&[]));
    // The station acknowledged it: the agent logs an inform as sent only when its Response arrived.
    wait_until("the agent to log the coldStart inform acknowledged", WAIT, || {
        let log = unit.proc.log_text();
        log.lines().any(|l| l.contains("notification sent") && l.contains("coldStart")).then_some(())
    });

    // A later change is announced with another inform (the station's engine is known now): the station walks the
    // unit over SNMPv3 and sees the new volume.
    unit.admin(&["volume", "create", "--size", "4M", "--name", "informed"]);
    let walked = station.wait_unit("127.0.58.1:1161", "the new volume walked", WAIT, |u| {
        u["volumes"].as_array().is_some_and(|v| v.iter().any(|v| v["name"] == "informed"))
    });
    assert_eq!(walked["unit_id"], id.as_str());
    let dotted = |oid: &[u32]| oid.iter().map(u32::to_string).collect::<Vec<_>>().join(".");
    let layout_changed = dotted(dvsan_mib::DVSAN_LAYOUT_CHANGED);
    wait_until("the dvsanLayoutChanged inform stored", WAIT, || {
        station.traps(&[]).iter().any(|t| is_v3_inform(t, &layout_changed)).then_some(())
    });
    assert_eq!(stat(&station, "dvsanStationUsmRefusals"), 0, "no inform was refused on the way");
}
