//! A whole SAN unit: dvsan-agent and dvsan-blockd side by side on one state directory, driven only through
//! standard tools. The agent reports the data service the IF-MIB way (linkUp/linkDown, ifOperStatus) and shows
//! blockd's per-host traffic in dvsanTrafficTable; grants made with snmpset open exports to NBD clients.

use dvsan_tests::{
    free_tcp_port, free_udp_port, require_tool, snmp, snmp_ok, wait_for, workspace_bin, Proc, TrapReceiver,
};
use std::process::Command;
use std::time::Duration;

struct SanUnit {
    dir: tempfile::TempDir,
    ip: String,
    snmp_addr: String,
    data_port: u16,
    _agent: Proc,
    blockd: Option<Proc>,
}

impl SanUnit {
    fn start(host: u8, trap_sink: &str) -> SanUnit {
        let dir = tempfile::tempdir().unwrap();
        let ip = format!("127.0.0.{host}");
        let snmp_addr = format!("{ip}:{}", free_udp_port(&ip));
        let d = dir.path();
        let mut cmd = Command::new(workspace_bin("dvsan-agent"));
        cmd.arg("run")
            .arg("--state-dir")
            .arg(d.join("state"))
            .arg("--media")
            .arg(format!("{}:48M", d.join("m0.img").display()))
            .arg("--media")
            .arg(format!("{}:16M", d.join("m1.img").display()))
            .args(["--listen", &snmp_addr, "--trap-sink", trap_sink, "--name", "unit-d"]);
        let agent = Proc::spawn("agent", cmd, d);
        let up = wait_for(Duration::from_secs(10), || {
            snmp("snmpget", &["-v2c", "-c", "public", &snmp_addr, "sysUpTime.0"]).status.success().then_some(())
        });
        assert!(up.is_some(), "agent did not answer: {}", agent.log_text());
        let data_port = free_tcp_port(&ip);
        let mut unit = SanUnit { dir, ip, snmp_addr, data_port, _agent: agent, blockd: None };
        unit.start_blockd();
        unit
    }

    fn start_blockd(&mut self) {
        let d = self.dir.path();
        let mut cmd = Command::new(workspace_bin("dvsan-blockd"));
        cmd.arg("--state-dir").arg(d.join("state")).args(["--listen", &format!("{}:{}", self.ip, self.data_port)]);
        self.blockd = Some(Proc::spawn("blockd", cmd, d));
    }

    fn get(&self, objects: &[&str]) -> String {
        let mut args = vec!["-v2c", "-c", "public", "-Oqv", &self.snmp_addr];
        args.extend_from_slice(objects);
        snmp_ok("snmpget", &args)
    }

    fn set(&self, assignments: &[&str]) {
        let mut args = vec!["-v2c", "-c", "private", &self.snmp_addr];
        args.extend_from_slice(assignments);
        snmp_ok("snmpset", &args);
    }

    fn uri(&self, export: &str) -> String {
        format!("nbd://{}:{}/{export}", self.ip, self.data_port)
    }

    /// Wait until an SNMP GET of one object prints `want`.
    fn wait_value(&self, object: &str, want: &str) {
        let seen = wait_for(Duration::from_secs(8), || (self.get(&[object]).trim() == want).then_some(()));
        assert!(seen.is_some(), "{object} never became {want:?} (now {:?})", self.get(&[object]));
    }
}

fn nbd_ok(tool: &str, args: &[&str]) -> String {
    let out = Command::new(tool).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn data_service_state_grants_and_traffic_through_snmp() {
    require_tool("qemu-io", "qemu-utils");
    require_tool("nbdinfo", "libnbd-bin");
    let logs = tempfile::tempdir().unwrap();
    let traps = TrapReceiver::start(logs.path());
    let mut unit = SanUnit::start(41, &traps.addr.to_string());

    // blockd's heartbeat turns into linkUp, ifOperStatus up and the data address in the unit scalars.
    traps.expect("IF-MIB::linkUp", Duration::from_secs(10));
    unit.wait_value("ifOperStatus.1", "up");
    assert_eq!(
        unit.get(&["dvsanUnitDataServiceState.0", "dvsanUnitDataPort.0"]),
        format!("serving\n{}\n", unit.data_port)
    );

    // A volume spanning both media, granted to this host (NBD clients here connect from 127.0.0.1).
    unit.set(&["dvsanVolumeLength.1", "u", "13000", "dvsanVolumeRowStatus.1", "i", "createAndGo"]);
    let info = Command::new("nbdinfo").arg(unit.uri("vol1")).output().unwrap();
    assert!(!info.status.success(), "no grant yet: the export must be refused");
    unit.set(&[
        "dvsanAccessVolumeIndex.1",
        "u",
        "1",
        "dvsanAccessHostAddressType.1",
        "i",
        "ipv4",
        "dvsanAccessHostAddress.1",
        "x",
        "7F000001",
        "dvsanAccessRowStatus.1",
        "i",
        "createAndGo",
    ]);
    let granted = wait_for(Duration::from_secs(5), || {
        Command::new("nbdinfo").arg(unit.uri("vol1")).output().ok().filter(|o| o.status.success()).map(|o| o.stdout)
    })
    .expect("blockd serves the export once the grant exists");
    assert!(String::from_utf8_lossy(&granted).contains(&format!("{}", 13000u64 * 4096)), "size shown");
    assert_eq!(unit.get(&["dvsanVolumeState.1"]).trim(), "available");

    // I/O across the media boundary (medium 0 holds 12288 blocks = 48 MiB).
    let boundary = 12288u64 * 4096 - 512 * 1024;
    let io = nbd_ok(
        "qemu-io",
        &[
            "-f",
            "raw",
            &unit.uri("vol1"),
            "-c",
            &format!("write -P 0xab {boundary} 1M"),
            "-c",
            &format!("read -P 0xab {boundary} 1M"),
        ],
    );
    assert!(!io.contains("Pattern verification failed"), "{io}");

    // blockd saves counters about once a second; the agent serves them.
    let row = wait_for(Duration::from_secs(8), || {
        let t =
            snmp_ok("snmptable", &["-v2c", "-c", "public", "-Cf", ",", "-CH", &unit.snmp_addr, "dvsanTrafficTable"]);
        t.lines().find(|l| l.starts_with("vol1,") && !l.contains(",0,0,0,0,")).map(str::to_string)
    })
    .expect("a traffic row for vol1 with I/O");
    let cols: Vec<&str> = row.split(',').collect();
    // Values carry their UNITS ("2 requests", "1048576 bytes").
    let num = |i: usize| {
        cols[i]
            .split_whitespace()
            .next()
            .unwrap_or("")
            .parse::<u64>()
            .unwrap_or_else(|_| panic!("column {i} of {row:?}"))
    };
    let (writes, bytes_written) = (num(4), num(6));
    assert!(writes >= 1 && bytes_written >= 1 << 20, "{row}");
    assert!(row.contains("7F 00 00 01") || row.contains("127.0.0.1"), "host column: {row}");

    // blockd dies: linkDown, ifOperStatus down, volumes unavailable. It comes back: linkUp again.
    unit.blockd.as_ref().unwrap().signal(9);
    traps.expect("IF-MIB::linkDown", Duration::from_secs(10));
    unit.wait_value("ifOperStatus.1", "down");
    assert_eq!(unit.get(&["dvsanVolumeState.1"]).trim(), "unavailable");
    unit.start_blockd();
    let ups = wait_for(Duration::from_secs(10), || (traps.text().matches("IF-MIB::linkUp").count() >= 2).then_some(()));
    assert!(ups.is_some(), "second linkUp after blockd restart:\n{}", traps.text());
}
