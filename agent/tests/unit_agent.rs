//! The unit agent against net-snmp's own tools: snmpget/snmpwalk/snmpbulkwalk/snmptable/snmpset with the MIB by
//! name, snmptrapd receiving its notifications, and a replay of malformed datagrams.

use dvsan_layout::{DataServiceState, LayoutStore};
use dvsan_snmp::testing::{malformed_corpus, Expected};
use dvsan_tests::units::{wait_answering, write_heartbeat};
use dvsan_tests::{snmp, snmp_ok, wait_for, Proc, TrapReceiver};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

struct Unit {
    dir: tempfile::TempDir,
    addr: String,
    proc: Option<Proc>,
    extra: Vec<String>,
}

impl Unit {
    /// A unit with 64 MiB + 32 MiB of media (16384 + 8192 blocks of 4 KiB) on 127.0.0.<host>, with the write
    /// community `private` configured.
    fn start(host: u8, extra: &[&str]) -> Unit {
        let mut args = vec!["--write-community", "private"];
        args.extend_from_slice(extra);
        Unit::start_bare(host, &args)
    }

    /// [`Unit::start`] with only the flags in `extra` (no write community unless given).
    fn start_bare(host: u8, extra: &[&str]) -> Unit {
        let dir = tempfile::tempdir().unwrap();
        let ip = format!("127.0.0.{host}");
        // A port outside the ephemeral range on an address of this test's own: an ephemeral port that was free a
        // moment ago may be taken by any UDP client (snmpget, a manager) before the agent binds it.
        let addr = format!("{ip}:1161");
        let mut u = Unit { dir, addr, proc: None, extra: extra.iter().map(|s| s.to_string()).collect() };
        u.restart();
        u
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn restart(&mut self) {
        self.proc = None;
        let d = self.dir.path();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dvsan-agent"));
        cmd.arg("run")
            .arg("--state-dir")
            .arg(self.state())
            .arg("--media")
            .arg(format!("{}:64M", d.join("m0.img").display()))
            .arg("--media")
            .arg(format!("{}:32M", d.join("m1.img").display()))
            .args(["--listen", &self.addr, "--name", "unit-t"])
            .args(&self.extra);
        let proc = Proc::spawn("agent", cmd, d);
        wait_answering(&proc, &self.addr);
        self.proc = Some(proc);
    }

    fn get(&self, objects: &[&str]) -> String {
        let mut args = vec!["-v2c", "-c", "public", "-Oqv", &self.addr];
        args.extend_from_slice(objects);
        snmp_ok("snmpget", &args)
    }

    /// snmpset with the write community; Ok(stdout) or Err(stderr).
    fn set(&self, assignments: &[impl AsRef<str>]) -> Result<String, String> {
        // -Ir: let the agent, not the client, judge types and ranges.
        let mut args = vec!["-v2c", "-c", "private", "-Ir", &self.addr];
        args.extend(assignments.iter().map(AsRef::as_ref));
        let out = snmp("snmpset", &args);
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_dvsan-agent"))
            .args(args)
            .arg("--state-dir")
            .arg(self.state())
            .output()
            .unwrap()
    }
}

/// The snmpset arguments of access row `index`, made by createAndGo: a whole-volume grant of `volume` to the host
/// named by `identity` and `address` (type, hex octets) where given, with `mode` where given.
fn grant_row(
    index: u32,
    volume: u32,
    identity: Option<&str>,
    address: Option<(&str, &str)>,
    mode: Option<&str>,
) -> Vec<String> {
    let column = |name: &str| format!("dvsanAccess{name}.{index}");
    let mut args = vec![column("VolumeIndex"), "u".into(), volume.to_string()];
    if let Some(identity) = identity {
        args.extend([column("HostIdentity"), "s".into(), identity.into()]);
    }
    if let Some((kind, octets)) = address {
        args.extend([
            column("HostAddressType"),
            "i".into(),
            kind.into(),
            column("HostAddress"),
            "x".into(),
            octets.into(),
        ]);
    }
    args.extend([column("RowStatus"), "i".into(), "createAndGo".into()]);
    if let Some(mode) = mode {
        args.extend([column("Mode"), "i".into(), mode.into()]);
    }
    args
}

fn refused(result: Result<String, String>, reason: &str, object: &str) {
    let err = result.expect_err("the SET must be refused");
    assert!(err.contains(&format!("Reason: {reason}")), "expected {reason}: {err}");
    assert!(err.contains(&format!("Failed object: DVSAN-MIB::{object}")), "expected {object}: {err}");
}

#[test]
fn scalars_walks_and_tables_by_name() {
    let u = Unit::start(21, &[]);
    assert_eq!(
        u.get(&["dvsanUnitName.0", "dvsanUnitBlockSize.0", "dvsanUnitCapacityBlocks.0"]),
        "unit-t\n4096 bytes\n24576 blocks\n"
    );
    assert!(u.get(&["sysDescr.0"]).contains("dvsan SAN unit unit-t"));
    assert_eq!(u.get(&["ifOperStatus.1", "dvsanUnitDataServiceState.0"]), "down\nstopped\n");

    // A volume larger than the first medium spans both.
    u.set(&["dvsanVolumeLength.1", "u", "20000", "dvsanVolumeRowStatus.1", "i", "createAndGo"]).unwrap();
    u.set(&["dvsanPartitionLength.1.1", "u", "100", "dvsanPartitionRowStatus.1.1", "i", "createAndGo"]).unwrap();
    let table = snmp_ok("snmptable", &["-v2c", "-c", "public", "-Cf", ",", "-CH", &u.addr, "dvsanVolumeTable"]);
    assert_eq!(table.trim(), "vol1,0,19999,20000 blocks,unavailable,vol1,active,100 percent");
    let table =
        snmp_ok("snmptable", &["-v2c", "-c", "public", "-Cf", ",", "-CH", "-Ci", &u.addr, "dvsanPartitionTable"]);
    assert_eq!(table.trim(), "1.1,0,99,100 blocks,vol1-p1,active");
    let media = snmp_ok("snmptable", &["-v2c", "-c", "public", "-Cf", ",", "-CH", &u.addr, "dvsanMediaTable"]);
    assert!(media.contains(",file,16384 blocks,0") && media.contains(",file,8192 blocks,16384"), "{media}");
    assert_eq!(u.get(&["dvsanUnitFreeBlocks.0", "dvsanVolumeNextIndex.0"]), "4576 blocks\n2\n");

    // The three walkers agree on the DVSAN subtree, but v1, which has no Counter64, leaves out the dvsanDataGuard
    // counters (no traffic rows here).
    let walk = snmp_ok("snmpwalk", &["-v2c", "-c", "public", &u.addr, "dvsanMIB"]);
    let bulk = snmp_ok("snmpbulkwalk", &["-v2c", "-c", "public", &u.addr, "dvsanMIB"]);
    let v1 = snmp_ok("snmpwalk", &["-v1", "-c", "public", &u.addr, "dvsanMIB"]);
    // Each walker ends differently (endOfMibView vs. noSuchName); the bindings must be the same.
    let bindings = |w: &str| {
        w.lines()
            .filter(|l| l.contains(" = ") && !l.contains("No more variables"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(bindings(&walk), bindings(&bulk));
    let without_counter64: Vec<String> = bindings(&walk).into_iter().filter(|l| !l.contains("Counter64")).collect();
    assert_eq!(without_counter64, bindings(&v1));
    // 14 unit scalars, 2 media x 4, 1 volume x 8, 1 partition x 5, 7 data guard counters, 3 TLS revocation
    // scalars (the CRL, its number, how many it lists).
    assert_eq!(bindings(&walk).len(), 45);
    assert!(walk.contains("dvsanDataTlsCrlNumber.0"), "{walk}");
    assert!(walk.contains("dvsanDataRefusedConnections.0 = Counter64: 0"), "{walk}");
    for name in ["dvsanUnitId.0", "dvsanMediaFirstLba.2", "dvsanVolumeExportName.1", "dvsanPartitionEndLba.1.1"] {
        assert!(walk.contains(name), "{name} missing from walk:\n{walk}");
    }
    let ifwalk = snmp_ok("snmpwalk", &["-v2c", "-c", "public", &u.addr, "interfaces"]);
    assert!(ifwalk.contains("IF-MIB::ifNumber.0 = INTEGER: 1") && ifwalk.contains("ifDescr.1"), "{ifwalk}");
}

#[test]
fn sets_are_checked_and_all_or_nothing() {
    let u = Unit::start(22, &[]);
    let counter = || u.get(&["dvsanUnitChangeCounter.0"]);
    u.set(&["dvsanVolumeLength.1", "u", "10000", "dvsanVolumeRowStatus.1", "i", "createAndGo"]).unwrap();
    let before = counter();

    refused(
        u.set(&["dvsanVolumeLength.2", "u", "0", "dvsanVolumeRowStatus.2", "i", "createAndGo"]),
        "wrongValue",
        "dvsanVolumeLength.2",
    );
    refused(
        u.set(&["dvsanVolumeLength.2", "u", "20000", "dvsanVolumeRowStatus.2", "i", "createAndGo"]),
        "inconsistentValue",
        "dvsanVolumeLength.2",
    );
    refused(
        u.set(&[
            "dvsanVolumeStartLba.2",
            "u",
            "9999",
            "dvsanVolumeLength.2",
            "u",
            "10",
            "dvsanVolumeRowStatus.2",
            "i",
            "createAndGo",
        ]),
        "inconsistentValue",
        "dvsanVolumeStartLba.2",
    );
    refused(
        u.set(&["dvsanVolumeLength.2", "i", "10", "dvsanVolumeRowStatus.2", "i", "createAndGo"]),
        "wrongType",
        "dvsanVolumeLength.2",
    );
    refused(
        u.set(&["dvsanVolumeLength.2", "u", "10", "dvsanVolumeRowStatus.2", "i", "createAndWait"]),
        "wrongValue",
        "dvsanVolumeRowStatus.2",
    );
    refused(u.set(&["dvsanVolumeRowStatus.2", "i", "createAndGo"]), "inconsistentValue", "dvsanVolumeRowStatus.2");
    refused(
        u.set(&[
            "dvsanVolumeName.2",
            "s",
            "",
            "dvsanVolumeLength.2",
            "u",
            "1",
            "dvsanVolumeRowStatus.2",
            "i",
            "createAndGo",
        ]),
        "wrongLength",
        "dvsanVolumeName.2",
    );
    refused(
        u.set(&[
            "dvsanVolumeName.2",
            "s",
            "vol1",
            "dvsanVolumeLength.2",
            "u",
            "1",
            "dvsanVolumeRowStatus.2",
            "i",
            "createAndGo",
        ]),
        "inconsistentValue",
        "dvsanVolumeName.2",
    );
    refused(u.set(&["dvsanVolumeEndLba.1", "u", "5"]), "notWritable", "dvsanVolumeEndLba.1");
    refused(u.set(&["dvsanVolumeLength.1", "u", "5"]), "inconsistentValue", "dvsanVolumeLength.1");
    refused(
        u.set(&["dvsanPartitionLength.9.1", "u", "5", "dvsanPartitionRowStatus.9.1", "i", "createAndGo"]),
        "inconsistentName",
        "dvsanPartitionRowStatus.9.1",
    );
    // All or nothing: the valid second volume is not created because the third varbind fails.
    refused(
        u.set(&[
            "dvsanVolumeLength.2",
            "u",
            "10",
            "dvsanVolumeRowStatus.2",
            "i",
            "createAndGo",
            "dvsanVolumeLength.3",
            "u",
            "0",
            "dvsanVolumeRowStatus.3",
            "i",
            "createAndGo",
        ]),
        "wrongValue",
        "dvsanVolumeLength.3",
    );
    assert_eq!(counter(), before, "refused SETs must not change the layout");
    let out = snmp("snmpget", &["-v2c", "-c", "public", &u.addr, "dvsanVolumeName.2"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("No Such Instance"));

    // Grow in place, partitions and grants block destroy, then tear down in order.
    u.set(&["dvsanVolumeLength.1", "u", "12000"]).unwrap();
    assert_eq!(u.get(&["dvsanVolumeEndLba.1"]), "11999\n");
    u.set(&["dvsanPartitionLength.1.1", "u", "100", "dvsanPartitionRowStatus.1.1", "i", "createAndGo"]).unwrap();
    refused(u.set(&["dvsanVolumeRowStatus.1", "i", "destroy"]), "inconsistentValue", "dvsanVolumeRowStatus.1");
    let grant = grant_row(1, 1, None, Some(("ipv4", "7F000009")), None);
    u.set(&grant).unwrap();
    let dup = grant_row(2, 1, None, Some(("ipv4", "7F000009")), None);
    refused(u.set(&dup), "inconsistentValue", "dvsanAccessHostAddress.2");
    let short = grant_row(2, 1, None, Some(("ipv4", "7F00")), None);
    refused(u.set(&short), "inconsistentValue", "dvsanAccessHostAddress.2");
    let table = snmp_ok("snmptable", &["-v2c", "-c", "public", "-Cf", ",", "-CH", &u.addr, "dvsanAccessTable"]);
    assert_eq!(table.trim(), "1,0,ipv4,\"7F 00 00 09 \",readWrite,active,");
    u.set(&["dvsanPartitionRowStatus.1.1", "i", "destroy"]).unwrap();
    refused(u.set(&["dvsanVolumeRowStatus.1", "i", "destroy"]), "inconsistentValue", "dvsanVolumeRowStatus.1");
    u.set(&["dvsanAccessRowStatus.1", "i", "destroy"]).unwrap();
    u.set(&["dvsanVolumeRowStatus.1", "i", "destroy"]).unwrap();
    // Nothing serves the unit, and its media are files: the released blocks were cleared before the answer.
    assert_eq!(u.get(&["dvsanUnitFreeBlocks.0", "dvsanUnitClearingBlocks.0"]), "24576 blocks\n0 blocks\n");
}

#[test]
fn wrong_community_gets_no_answer_and_is_counted() {
    let u = Unit::start(23, &[]);
    let out = snmp("snmpget", &["-v2c", "-c", "wrong", &u.addr, "sysDescr.0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Timeout"), "{:?}", out);
    // The read community may not write.
    let out = snmp(
        "snmpset",
        &[
            "-v2c",
            "-c",
            "public",
            &u.addr,
            "dvsanVolumeLength.1",
            "u",
            "1",
            "dvsanVolumeRowStatus.1",
            "i",
            "createAndGo",
        ],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("Timeout"), "{:?}", out);
    let counts = u.get(&["snmpInBadCommunityNames.0", "snmpInBadCommunityUses.0"]);
    let n: Vec<u64> = counts.lines().map(|l| l.trim().parse().unwrap()).collect();
    assert!(n[0] >= 1 && n[1] >= 1, "{counts}");
}

#[test]
fn malformed_datagrams_are_dropped_and_counted() {
    let u = Unit::start(24, &[]);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut parse_errors = 0;
    for case in malformed_corpus("public", "private") {
        sock.send_to(&case.datagram, &u.addr).unwrap();
        let mut buf = [0u8; 65536];
        let answered = sock.recv_from(&mut buf).is_ok();
        assert_eq!(answered, case.expected == Expected::Answered, "case {}", case.name);
        parse_errors += u32::from(case.expected == Expected::ParseError);
    }
    let counted: u32 = u.get(&["snmpInASNParseErrs.0"]).trim().parse().unwrap();
    assert!(counted >= parse_errors, "{counted} < {parse_errors}");
    assert!(u.get(&["sysDescr.0"]).contains("dvsan"), "still answers");
}

#[test]
fn grants_by_certificate_identity_by_set_and_by_cli() {
    let u = Unit::start(34, &[]);
    u.set(&["dvsanVolumeLength.1", "u", "100", "dvsanVolumeRowStatus.1", "i", "createAndGo"]).unwrap();
    // Identity only: any address (type unknown, no octets, or both columns left out).
    let by_identity = grant_row(1, 1, Some("host-a.example"), Some(("unknown", "")), None);
    u.set(&by_identity).unwrap();
    // Identity and address. Another identity is another host: host-a.example's read-write grant is exclusive, so
    // a second writer is refused (on the host, the mode being the default) and a reader is welcome.
    let by_both = |mode| grant_row(2, 1, Some("host-b.example"), Some(("ipv4", "7F000009")), mode);
    refused(u.set(&by_both(None)), "inconsistentValue", "dvsanAccessHostAddress.2");
    u.set(&by_both(Some("readOnly"))).unwrap();
    // The same identity again, a bad identity, and neither identity nor address are refused.
    let dup = grant_row(3, 1, Some("host-a.example"), None, None);
    refused(u.set(&dup), "inconsistentValue", "dvsanAccessHostIdentity.3");
    let bad = grant_row(3, 1, Some("two words"), None, None);
    refused(u.set(&bad), "wrongValue", "dvsanAccessHostIdentity.3");
    refused(u.set(&grant_row(3, 1, None, None, None)), "inconsistentValue", "dvsanAccessRowStatus.3");
    let out = u.cli(&["access", "grant", "--volume", "1", "--identity", "host-c.example", "--read-only"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("host host-c.example may use volume 1"));
    let out = u.cli(&["access", "grant", "--volume", "1"]);
    assert!(!out.status.success(), "a grant needs --host or --identity");
    let out = u.cli(&["access", "grant", "--volume", "1", "--identity", "host-d.example", "--shared"]);
    assert!(!out.status.success(), "a shared writer beside host-a.example's exclusive grant");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("host-a.example") && err.contains("exclusive"), "{err}");
    let table = wait_for(Duration::from_secs(5), || {
        let t = snmp_ok("snmptable", &["-v2c", "-c", "public", "-Cf", ",", "-CH", &u.addr, "dvsanAccessTable"]);
        (t.lines().count() == 3).then_some(t)
    })
    .expect("the CLI grant shows up in the table");
    let rows: Vec<&str> = table.lines().map(str::trim).collect();
    assert_eq!(
        rows,
        [
            "1,0,unknown,\"\",readWrite,active,host-a.example",
            "1,0,ipv4,\"7F 00 00 09 \",readOnly,active,host-b.example",
            "1,0,unknown,\"\",readOnly,active,host-c.example",
        ]
    );
}

#[test]
fn layout_survives_restart_and_cli_changes_show_up() {
    let mut u = Unit::start(25, &[]);
    let out = u.cli(&["volume", "create", "--size", "8M", "--name", "data"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The running agent picks up the offline change.
    let seen = wait_for(Duration::from_secs(5), || {
        (snmp("snmpget", &["-v2c", "-c", "public", "-Oqv", &u.addr, "dvsanVolumeName.1"]).stdout == b"data\n")
            .then_some(())
    });
    assert!(seen.is_some());
    let id = u.get(&["dvsanUnitId.0"]);
    u.restart();
    assert_eq!(u.get(&["dvsanUnitId.0"]), id, "the unit id is stable");
    assert_eq!(u.get(&["dvsanVolumeName.1", "dvsanVolumeLength.1"]), "data\n2048 blocks\n");

    for (args, says) in [
        (vec!["volume", "create", "--size", "0"], "zero blocks"),
        (vec!["volume", "create", "--size", "1T"], "largest free extent is 22528 blocks"),
        (vec!["volume", "create", "--size", "ten"], "not a size"),
        (vec!["volume", "destroy", "--index", "7"], "volume 7 does not exist"),
        (vec!["volume", "create", "--size", "1M", "--name", "bad name"], "is not valid"),
    ] {
        let out = u.cli(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(says), "{args:?}: {err}");
    }
}

fn beat(state: &Path, state_now: DataServiceState) {
    let mut store = LayoutStore::open(state).unwrap();
    write_heartbeat(&mut store, "127.0.0.26:10809".parse().unwrap(), state_now).unwrap();
}

fn notifications_reach_snmptrapd(inform: bool, host: u8) {
    let dir = tempfile::tempdir().unwrap();
    let traps = TrapReceiver::start(dir.path());
    let sink = traps.addr.to_string();
    let mut args = vec!["--trap-sink", sink.as_str()];
    if inform {
        args.push("--inform");
    }
    let mut u = Unit::start(host, &args);
    traps.expect("SNMPv2-MIB::coldStart", Duration::from_secs(10));
    traps.expect("DVSAN-MIB::dvsanUnitName.0 = STRING: unit-t", Duration::from_secs(1));

    beat(&u.state(), DataServiceState::Serving);
    traps.expect("IF-MIB::linkUp", Duration::from_secs(5));
    assert_eq!(u.get(&["ifOperStatus.1", "dvsanUnitDataAddress.0", "dvsanUnitDataPort.0"]).lines().next(), Some("up"));
    beat(&u.state(), DataServiceState::Stopped);
    traps.expect("IF-MIB::linkDown", Duration::from_secs(5));
    traps.expect("IF-MIB::ifOperStatus.1 = INTEGER: down", Duration::from_secs(1));

    assert!(u.cli(&["volume", "create", "--size", "1M"]).status.success());
    traps.expect("DVSAN-MIB::dvsanLayoutChanged", Duration::from_secs(5));

    let proc = u.proc.as_mut().unwrap();
    proc.signal(15);
    assert_eq!(proc.wait_exit(Duration::from_secs(20)), Some(0), "clean exit on SIGTERM: {}", proc.log_text());
    traps.expect("DVSAN-MIB::dvsanUnitShutdown", Duration::from_secs(5));
    let log = proc.log_text();
    if inform {
        assert!(!log.contains("not delivered"), "every inform acknowledged:\n{log}");
    }
    let downs = traps.text().matches("IF-MIB::linkDown").count();
    assert_eq!(downs, 2, "one linkDown for the stopped data service, one at shutdown:\n{}", traps.text());
}

#[test]
fn traps_reach_snmptrapd_by_name() {
    notifications_reach_snmptrapd(false, 26);
}

#[test]
fn informs_are_acknowledged_by_snmptrapd() {
    notifications_reach_snmptrapd(true, 27);
}

/// One layout change as the test makes it: by SNMP SET (assignments) or by the offline CLI (arguments).
enum Step<'a> {
    Set(&'a [&'a str]),
    Cli(&'a [&'a str]),
}

/// Every successful layout change sends dvsanLayoutChanged exactly once, whichever path made it: SETs on each
/// table (RowStatus createAndGo/destroy, a length grown, one SET touching two tables), the offline CLI. A refused
/// SET and a SET that changes nothing send none.
#[test]
fn every_layout_change_is_announced_once() {
    let dir = tempfile::tempdir().unwrap();
    let traps = TrapReceiver::start(dir.path());
    let sink = traps.addr.to_string();
    let u = Unit::start(28, &["--trap-sink", &sink]);
    traps.expect("SNMPv2-MIB::coldStart", Duration::from_secs(10));
    let grant1 = grant_row(1, 1, None, Some(("ipv4", "7F000009")), None);
    let grant1: Vec<&str> = grant1.iter().map(String::as_str).collect();
    let mut two_tables = vec!["dvsanVolumeLength.2", "u", "100", "dvsanVolumeRowStatus.2", "i", "createAndGo"];
    // Host .10 only reads volume 1, which host .9 writes (a second writer would be refused: exclusive).
    let grant2 = grant_row(2, 1, None, Some(("ipv4", "7F00000A")), Some("readOnly"));
    two_tables.extend(grant2.iter().map(String::as_str));
    let steps: Vec<(&str, Step)> = vec![
        (
            "SET volume createAndGo",
            Step::Set(&["dvsanVolumeLength.1", "u", "1000", "dvsanVolumeRowStatus.1", "i", "createAndGo"]),
        ),
        ("SET volume length (grow)", Step::Set(&["dvsanVolumeLength.1", "u", "2000"])),
        (
            "SET partition createAndGo",
            Step::Set(&["dvsanPartitionLength.1.1", "u", "10", "dvsanPartitionRowStatus.1.1", "i", "createAndGo"]),
        ),
        ("SET grant createAndGo", Step::Set(&grant1)),
        ("one SET on the volume and access tables", Step::Set(&two_tables)),
        ("SET grant destroy", Step::Set(&["dvsanAccessRowStatus.1", "i", "destroy"])),
        ("SET partition destroy", Step::Set(&["dvsanPartitionRowStatus.1.1", "i", "destroy"])),
        (
            "one SET destroying a grant and a volume",
            Step::Set(&["dvsanAccessRowStatus.2", "i", "destroy", "dvsanVolumeRowStatus.2", "i", "destroy"]),
        ),
        ("CLI volume create", Step::Cli(&["volume", "create", "--size", "1M", "--name", "cli"])),
        ("CLI volume grow", Step::Cli(&["volume", "grow", "--index", "2", "--size", "2M"])),
    ];
    let announced = || traps.text().matches("DVSAN-MIB::dvsanLayoutChanged").count();
    for (n, (what, step)) in steps.iter().enumerate() {
        match step {
            Step::Set(assignments) => {
                u.set(assignments).unwrap_or_else(|e| panic!("{what}: {e}"));
            }
            Step::Cli(args) => {
                let out = u.cli(args);
                assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
            }
        }
        // The notification carries the counter this change moved it to.
        let counter = u.get(&["dvsanUnitChangeCounter.0"]);
        traps.expect(&format!("dvsanUnitChangeCounter.0 = Counter32: {}\n", counter.trim()), Duration::from_secs(5));
        let seen = wait_for(Duration::from_secs(5), || (announced() > n).then_some(()));
        assert!(seen.is_some(), "{what}: no dvsanLayoutChanged; log:\n{}", traps.text());
    }
    // Refused, and accepted without changing anything: no notification.
    refused(u.set(&["dvsanVolumeLength.1", "u", "5"]), "inconsistentValue", "dvsanVolumeLength.1");
    u.set(&["dvsanVolumeRowStatus.9", "i", "destroy"]).expect("destroying a missing row is a no-op");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(announced(), steps.len(), "one dvsanLayoutChanged per change; log:\n{}", traps.text());
}

/// snmpset of a whole-volume grant of `volume` to `host` (hex octets) at `index`, with `mode` when given.
fn grant_set(u: &Unit, index: u32, volume: u32, host_hex: &str, mode: Option<&str>) -> Result<String, String> {
    u.set(&grant_row(index, volume, None, Some(("ipv4", host_hex)), mode))
}

#[test]
fn a_second_read_write_grant_is_refused_unless_shared() {
    let u = Unit::start(29, &[]);
    u.set(&["dvsanVolumeLength.1", "u", "100", "dvsanVolumeRowStatus.1", "i", "createAndGo"]).unwrap();
    u.set(&["dvsanVolumeLength.2", "u", "100", "dvsanVolumeRowStatus.2", "i", "createAndGo"]).unwrap();
    grant_set(&u, 1, 1, "7F000009", None).unwrap();
    // Another host, read-write (by default or asked for) or shared: inconsistentValue, nothing made.
    refused(grant_set(&u, 2, 1, "7F00000A", None), "inconsistentValue", "dvsanAccessHostAddress.2");
    refused(grant_set(&u, 2, 1, "7F00000A", Some("readWrite")), "inconsistentValue", "dvsanAccessMode.2");
    refused(grant_set(&u, 2, 1, "7F00000A", Some("readWriteShared")), "inconsistentValue", "dvsanAccessMode.2");
    // The agent CLI keeps the same rule and says why.
    let out = u.cli(&["access", "grant", "--volume", "1", "--host", "127.0.0.10"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("a read-write grant is exclusive"), "{err}");
    // Reading beside the writer is allowed; so is writing another volume.
    grant_set(&u, 2, 1, "7F00000A", Some("readOnly")).unwrap();
    grant_set(&u, 3, 2, "7F00000A", None).unwrap();
    // Shared writers share with each other only.
    grant_set(&u, 4, 2, "7F00000B", Some("readWriteShared")).unwrap_err();
    u.set(&["dvsanAccessRowStatus.3", "i", "destroy"]).unwrap();
    grant_set(&u, 4, 2, "7F00000B", Some("readWriteShared")).unwrap();
    grant_set(&u, 5, 2, "7F00000C", Some("readWriteShared")).unwrap();
    let out = u.cli(&["access", "grant", "--volume", "2", "--host", "127.0.0.13", "--shared"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The agent sees the CLI's grant at its next look at the store.
    let table = || snmp_ok("snmptable", &["-v2c", "-c", "public", "-Cf", ",", "-CH", &u.addr, "dvsanAccessTable"]);
    let seen = wait_for(Duration::from_secs(5), || Some(table()).filter(|t| t.matches("readWriteShared").count() == 3));
    assert!(seen.is_some(), "{}", table());
    // A volume with grants cannot be wiped.
    refused(u.set(&["dvsanVolumeClearProgress.1", "u", "0"]), "inconsistentValue", "dvsanVolumeClearProgress.1");
    refused(u.set(&["dvsanVolumeClearProgress.1", "u", "5"]), "wrongValue", "dvsanVolumeClearProgress.1");
}

#[test]
fn a_wipe_resumes_where_it_was_after_kill_9() {
    // Zeroes are written at 16 MiB/s, so a 48 MiB wipe takes about 3 s and can be caught half done.
    let mut u = Unit::start(30, &["--clear-method", "write", "--clear-rate-mib", "16"]);
    // The new media (96 MiB) are released and cleared first; their space is free once done.
    let cleared = wait_for(Duration::from_secs(30), || {
        (u.get(&["dvsanUnitClearingBlocks.0"]).trim() == "0 blocks").then_some(())
    });
    assert!(cleared.is_some(), "new media not cleared");
    assert_eq!(u.get(&["dvsanUnitFreeBlocks.0"]).trim(), "24576 blocks");
    u.set(&["dvsanVolumeLength.1", "u", "12288", "dvsanVolumeRowStatus.1", "i", "createAndGo"]).unwrap();
    // A previous owner's data on the volume's blocks (written to the medium behind the unit's back).
    let medium = u.dir.path().join("m0.img");
    std::os::unix::fs::FileExt::write_all_at(
        &std::fs::OpenOptions::new().write(true).open(&medium).unwrap(),
        &vec![0xAB; 48 << 20],
        0,
    )
    .unwrap();
    u.set(&["dvsanVolumeClearProgress.1", "u", "0"]).unwrap();
    assert_eq!(u.get(&["dvsanVolumeState.1"]).trim(), "clearing");
    let progress = |u: &Unit| -> u32 {
        u.get(&["dvsanVolumeClearProgress.1"]).split_whitespace().next().unwrap().parse().unwrap()
    };
    let half = wait_for(Duration::from_secs(10), || Some(progress(&u)).filter(|p| (1..100).contains(p)));
    let half = half.expect("the wipe made progress");
    u.proc.as_mut().unwrap().kill();
    let recorded = |u: &Unit| -> u64 {
        let out = u.cli(&["show", "--json"]);
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        json["volumes"][0]["clearing"].as_u64().unwrap_or(u64::MAX)
    };
    let at_kill = recorded(&u);
    assert!(at_kill > 0 && at_kill < 12288, "progress recorded in the store: {at_kill}");
    assert!(u64::from(half) * 12288 / 100 <= at_kill, "{half}% shown, {at_kill} blocks recorded");

    // Restarted, it goes on from there (not from 0), and ends with the volume zeroed and served again.
    u.restart();
    assert!(progress(&u) >= (at_kill * 100 / 12288) as u32, "resumed from the recorded progress");
    let done =
        wait_for(Duration::from_secs(20), || (u.get(&["dvsanVolumeState.1"]).trim() != "clearing").then_some(()));
    assert!(done.is_some(), "the wipe did not finish after the restart");
    assert_eq!(progress(&u), 100);
    let data = std::fs::read(&medium).unwrap();
    assert!(data[..48 << 20].iter().all(|&b| b == 0), "the volume's blocks are zeroes");
}

/// A users file (mode 0600) with an authPriv SHA-256/AES read-write user `admin`.
fn users_file(dir: &Path, mode: u32) -> PathBuf {
    let admin = ("admin", "unit-auth-pass", "unit-priv-pass", "read-write");
    dvsan_tests::write_users_file(&dir.join("users.toml"), &[admin], mode)
}

/// `--users FILE`: the unit answers SNMPv3 authPriv (SHA-256/AES) requests with the MIB by name, keeps its engine
/// ID across restarts and counts snmpEngineBoots up; a users file others may read is refused at start.
#[test]
fn v3_users_file_engine_id_and_boots() {
    let tmp = tempfile::tempdir().unwrap();
    let users = users_file(tmp.path(), 0o600);
    let mut unit = Unit::start(31, &["--users", users.to_str().unwrap()]);
    let v3 = |unit: &Unit, objects: &[&str]| {
        let mut args = vec![
            "-v3",
            "-l",
            "authPriv",
            "-u",
            "admin",
            "-a",
            "SHA-256",
            "-A",
            "unit-auth-pass",
            "-x",
            "AES",
            "-X",
            "unit-priv-pass",
            "-Oqv",
            &unit.addr,
        ];
        args.extend_from_slice(objects);
        snmp_ok("snmpget", &args)
    };
    let first = v3(
        &unit,
        &["DVSAN-MIB::dvsanUnitName.0", "SNMP-FRAMEWORK-MIB::snmpEngineID.0", "SNMP-FRAMEWORK-MIB::snmpEngineBoots.0"],
    );
    let lines: Vec<&str> = first.lines().collect();
    assert_eq!(lines.len(), 3, "{first}");
    assert!(lines[0].contains("unit-t"), "{first}");
    assert_eq!(lines[2], "1", "{first}");
    let engine_file = std::fs::read_to_string(unit.state().join("snmp-engine.toml")).unwrap();
    assert!(engine_file.contains("boots = 1"), "{engine_file}");

    unit.restart();
    let second = v3(&unit, &["SNMP-FRAMEWORK-MIB::snmpEngineID.0", "SNMP-FRAMEWORK-MIB::snmpEngineBoots.0"]);
    let lines2: Vec<&str> = second.lines().collect();
    assert_eq!(lines2, [lines[1], "2"], "{first}\n{second}");

    // A users file the group may read: the agent refuses to start and says why.
    let open_dir = tmp.path().join("open");
    std::fs::create_dir(&open_dir).unwrap();
    let open_users = users_file(&open_dir, 0o640);
    let state = tmp.path().join("state-open");
    let out = dvsan_tests::timed(env!("CARGO_BIN_EXE_dvsan-agent"), Duration::from_secs(20))
        .arg("run")
        .arg("--state-dir")
        .arg(&state)
        .arg("--media")
        .arg(format!("{}:4M", tmp.path().join("open.img").display()))
        .args(["--listen", "127.0.0.31:0", "--users"])
        .arg(&open_users)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("chmod 600"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// With its default configuration a unit has no write community: `snmpset -v2c -c private` gets no answer and
/// changes nothing, and snmpInBadCommunityNames counts it; `-c public` is a read-only community there, counted in
/// snmpInBadCommunityUses.
#[test]
fn by_default_no_community_may_write() {
    let u = Unit::start_bare(33, &[]);
    let counter = u.get(&["dvsanUnitChangeCounter.0"]);
    let quick = |community: &str| {
        let out = snmp(
            "snmpset",
            &[
                "-v2c",
                "-c",
                community,
                "-t",
                "1",
                "-r",
                "0",
                &u.addr,
                "dvsanVolumeLength.1",
                "u",
                "100",
                "dvsanVolumeRowStatus.1",
                "i",
                "createAndGo",
            ],
        );
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(quick("private").contains("Timeout"));
    assert!(quick("public").contains("Timeout"));
    assert_eq!(
        u.get(&["snmpInBadCommunityNames.0", "snmpInBadCommunityUses.0", "dvsanVolumeNextIndex.0"]),
        "1\n1\n1\n"
    );
    assert_eq!(u.get(&["dvsanUnitChangeCounter.0"]), counter, "nothing changed");
    assert!(u.get(&["dvsanVolumeRowStatus.1"]).contains("No Such Instance"));
    // The CLI still changes the unit offline.
    assert!(u.cli(&["volume", "create", "--size", "1M"]).status.success());
}

/// `--notify-user admin`: the unit's coldStart goes as SNMPv3 user admin (authPriv SHA-256/AES): as an inform to
/// snmptrapd's own engine (discovered), then, after a restart with a plain trap sink, as a trap with the unit's
/// engine authoritative (snmptrapd knows the user under that engine id); snmptrapd logs both by user name. A
/// notify user that is not in the users file stops the agent at start, naming the users there.
#[test]
fn v3_notifications_go_as_the_notify_user() {
    let tmp = tempfile::tempdir().unwrap();
    let users = users_file(tmp.path(), 0o600);
    let users = users.to_str().unwrap();
    let create = "admin SHA-256 unit-auth-pass AES unit-priv-pass";
    let informd_dir = tmp.path().join("informd");
    std::fs::create_dir(&informd_dir).unwrap();
    let informd = TrapReceiver::start_configured(&informd_dir, &format!("createUser {create}\n"), &["-F", "%P: %v\n"]);
    let sink = informd.addr.to_string();
    let mut unit = Unit::start(32, &["--users", users, "--notify-user", "admin", "--trap-sink", &sink, "--inform"]);
    let seen = wait_for(Duration::from_secs(10), || informd.logged(&["admin", "coldStart"]));
    assert!(seen.is_some(), "no coldStart inform from user admin:\n{}", informd.text());

    let engine_file = std::fs::read_to_string(unit.state().join("snmp-engine.toml")).unwrap();
    let hex = engine_file
        .lines()
        .find_map(|l| l.strip_prefix("engine_id = \"").and_then(|r| r.strip_suffix('"')))
        .unwrap_or_else(|| panic!("no engine_id in {engine_file}"));
    let trapd_dir = tmp.path().join("trapd");
    std::fs::create_dir(&trapd_dir).unwrap();
    let trapd =
        TrapReceiver::start_configured(&trapd_dir, &format!("createUser -e 0x{hex} {create}\n"), &["-F", "%P: %v\n"]);
    let sink = trapd.addr.to_string();
    unit.extra = ["--users", users, "--notify-user", "admin", "--trap-sink", &sink].map(String::from).to_vec();
    unit.restart();
    let seen = wait_for(Duration::from_secs(10), || trapd.logged(&["admin", "coldStart"]));
    assert!(seen.is_some(), "no coldStart trap from user admin:\n{}", trapd.text());

    let out = dvsan_tests::timed(env!("CARGO_BIN_EXE_dvsan-agent"), Duration::from_secs(20))
        .arg("run")
        .arg("--state-dir")
        .arg(tmp.path().join("state-nobody"))
        .arg("--media")
        .arg(format!("{}:4M", tmp.path().join("nobody.img").display()))
        .args(["--listen", "127.0.0.32:0", "--users", users, "--notify-user", "nobody"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--notify-user \"nobody\"") && err.contains("admin"), "{err}");
}

/// `[[community]]` entries with views in the agent's config file: `unitview` walks only the dvsanUnit scalars (a
/// walk of everything shows nothing else; sysName does not exist for it), `ops` may write the volume table only (a
/// volume is created; a SET of sysName.0 gets noAccess, changes nothing and snmpInBadCommunityUses counts it), and
/// `--read-community public` still reads everything.
#[test]
fn config_file_communities_see_and_set_only_their_views() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("unit.toml");
    std::fs::write(
        &cfg,
        "[[community]]\nname = \"unitview\"\nread_view = [\"1.3.6.1.4.1.32473.1.1.1\"]\n\n\
         [[community]]\nname = \"ops\"\naccess = \"read-write\"\nwrite_view = [\"1.3.6.1.4.1.32473.1.1.3\"]\n",
    )
    .unwrap();
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o600)).unwrap();
    let u = Unit::start_bare(35, &["--config", cfg.to_str().unwrap(), "--read-community", "public"]);

    let walk = snmp_ok("snmpwalk", &["-v2c", "-c", "unitview", "-On", &u.addr, ".1"]);
    assert!(walk.lines().count() >= 5, "{walk}");
    for line in walk.lines() {
        assert!(line.starts_with(".1.3.6.1.4.1.32473.1.1.1."), "outside the view: {line}");
    }
    assert!(walk.contains(".1.3.6.1.4.1.32473.1.1.1.2.0 = STRING: unit-t"), "{walk}");
    let out = snmp_ok("snmpget", &["-v2c", "-c", "unitview", &u.addr, "sysName.0"]);
    assert!(out.contains("No Such Object"), "{out}");
    let everything = snmp_ok("snmpwalk", &["-v2c", "-c", "public", "-On", &u.addr, ".1"]);
    assert!(everything.contains(".1.3.6.1.2.1.1.5.0 = ") && everything.lines().count() > walk.lines().count());

    let ops_set = |assignments: &[&str]| {
        let mut args = vec!["-v2c", "-c", "ops", "-Ir", "-t", "2", "-r", "0", &u.addr];
        args.extend_from_slice(assignments);
        snmp("snmpset", &args)
    };
    let out = ops_set(&["dvsanVolumeLength.1", "u", "256", "dvsanVolumeRowStatus.1", "i", "createAndGo"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(u.get(&["dvsanVolumeLength.1"]).trim(), "256 blocks");
    let bad_uses = u.get(&["snmpInBadCommunityUses.0"]);
    let out = ops_set(&["sysName.0", "s", "renamed"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("noAccess"), "{err}");
    assert_eq!(u.get(&["sysName.0"]).trim().trim_matches('"'), "unit-t");
    let after: u32 = u.get(&["snmpInBadCommunityUses.0"]).trim().parse().unwrap();
    assert_eq!(after, bad_uses.trim().parse::<u32>().unwrap() + 1);
}

/// `dvsan-agent init` creates the unit before its agent ever runs and prints its unit id (what
/// `dvsan-station unit enroll` takes), the same id again when run again; `run` then serves that id and keeps the
/// name `init` gave (no `--name`); another block size for the existing unit is refused.
#[test]
fn init_prints_the_unit_id_that_run_then_serves() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let init = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_dvsan-agent")).arg("init").arg("--state-dir").arg(&state).args(extra).output()
    };
    let out = init(&["--name", "shelf-7"]).unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!((id.len(), id.matches('-').count()), (36, 4), "a UUID: {id:?}");
    let again = init(&[]).unwrap();
    assert_eq!(String::from_utf8_lossy(&again.stdout).trim(), id, "{}", String::from_utf8_lossy(&again.stderr));
    let other = init(&["--block-size", "512"]).unwrap();
    assert!(!other.status.success());
    assert!(String::from_utf8_lossy(&other.stderr).contains("block size 4096"), "{other:?}");

    let addr = "127.0.0.36:1161".to_string();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dvsan-agent"));
    cmd.arg("run")
        .arg("--state-dir")
        .arg(&state)
        .arg("--media")
        .arg(format!("{}:8M", tmp.path().join("m0.img").display()))
        .args(["--listen", &addr]);
    let agent = Proc::spawn("agent", cmd, tmp.path());
    wait_answering(&agent, &addr);
    let got = snmp_ok("snmpget", &["-v2c", "-c", "public", "-Oqv", &addr, "dvsanUnitId.0", "dvsanUnitName.0"]);
    assert_eq!(got.replace('"', ""), format!("{id}\nshelf-7\n"));
}

/// dvsanDataTls: a DER certificate revocation list (made with `openssl ca -gencrl`) set with snmpset lands in the
/// state directory where blockd reads it, and the agent shows its cRLNumber and how many certificates it lists; a
/// value that is not one whole DER CRL (junk, the PEM text, a CRL with bytes after it) gets wrongValue and the list
/// stays; the empty string removes it. Without the write community nothing may set it.
#[test]
fn a_pushed_revocation_list_is_kept_for_blockd_and_a_malformed_one_refused() {
    let u = Unit::start(37, &[]);
    assert_eq!(u.get(&["dvsanDataTlsCrlNumber.0", "dvsanDataTlsCrlRevoked.0"]), "0\n0 certificates\n");
    let pki = dvsan_tests::pki::Pki::new(u.dir.path());
    let a = pki.client("host-a");
    let pem = pki.revoke(&a);
    let der = u.dir.path().join("crl.der");
    let out = Command::new("openssl").args(["crl", "-outform", "DER", "-in"]).arg(&pem).arg("-out").arg(&der).output();
    assert!(out.as_ref().is_ok_and(|o| o.status.success()), "{out:?}");
    let der = std::fs::read(&der).unwrap();
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02X}")).collect::<String>();

    u.set(&["dvsanDataTlsCrl.0", "x", &hex(&der)]).unwrap();
    let pushed = u.state().join(dvsan_layout::PUSHED_CRL_FILE);
    assert_eq!(std::fs::read(&pushed).unwrap(), der);
    assert_eq!(u.get(&["dvsanDataTlsCrlNumber.0", "dvsanDataTlsCrlRevoked.0"]), "1\n1 certificates\n");

    let mut trailing = der.clone();
    trailing.push(0);
    let pem_text = std::fs::read(&pem).unwrap();
    for bad in [&b"\x30\x03\x02\x01\x01"[..], &pem_text, &trailing] {
        refused(u.set(&["dvsanDataTlsCrl.0", "x", &hex(bad)]), "wrongValue", "dvsanDataTlsCrl.0");
    }
    refused(u.set(&["dvsanDataTlsCrlNumber.0", "u", "7"]), "notWritable", "dvsanDataTlsCrlNumber.0");
    assert_eq!(std::fs::read(&pushed).unwrap(), der, "the list in force stays");
    let out = snmp("snmpset", &["-v2c", "-c", "public", &u.addr, "dvsanDataTlsCrl.0", "x", "00"]);
    assert!(!out.status.success(), "the read community sets nothing");

    u.set(&["dvsanDataTlsCrl.0", "x", ""]).unwrap();
    assert!(!pushed.exists(), "the empty string removes the list");
    assert_eq!(u.get(&["dvsanDataTlsCrlNumber.0", "dvsanDataTlsCrlRevoked.0"]), "0\n0 certificates\n");
}
