//! A whole SAN unit: dvsan-agent and dvsan-blockd side by side on one state directory, driven only through
//! standard tools. The agent reports the data service the IF-MIB way (linkUp/linkDown, ifOperStatus) and shows
//! blockd's per-host traffic in dvsanTrafficTable; grants made with snmpset open exports to NBD clients.

use dvsan_tests::nbd::run_tool_ok;
use dvsan_tests::units::SanUnit;
use dvsan_tests::{free_udp_port, require_tool, snmp_ok, wait_for, TrapReceiver};
use std::process::Command;
use std::time::Duration;

#[test]
fn data_service_state_grants_and_traffic_through_snmp() {
    require_tool("qemu-io", "qemu-utils");
    require_tool("nbdinfo", "libnbd-bin");
    let logs = tempfile::tempdir().unwrap();
    let traps = TrapReceiver::start(logs.path());
    let unit_dir = tempfile::tempdir().unwrap();
    let ip = "127.0.0.41";
    let snmp_addr = format!("{ip}:{}", free_udp_port(ip));
    let mut unit = SanUnit::start(unit_dir.path(), &snmp_addr, &traps.addr.to_string(), "unit-d", &["48M", "16M"]);

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
    unit.grant_volume(1, 1, std::net::Ipv4Addr::LOCALHOST);
    let granted = wait_for(Duration::from_secs(5), || {
        Command::new("nbdinfo").arg(unit.uri("vol1")).output().ok().filter(|o| o.status.success()).map(|o| o.stdout)
    })
    .expect("blockd serves the export once the grant exists");
    assert!(String::from_utf8_lossy(&granted).contains(&format!("{}", 13000u64 * 4096)), "size shown");
    assert_eq!(unit.get(&["dvsanVolumeState.1"]).trim(), "available");

    // I/O across the media boundary (medium 0 holds 12288 blocks = 48 MiB).
    let boundary = 12288u64 * 4096 - 512 * 1024;
    let io = run_tool_ok(
        "qemu-io",
        "qemu-utils",
        &[
            "-f",
            "raw",
            &unit.uri("vol1"),
            "-c",
            &format!("write -P 0xab {boundary} 1M"),
            "-c",
            &format!("read -P 0xab {boundary} 1M"),
        ],
        60,
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
