//! NMS integration: net-snmp's snmptrapd, as the upstream NMS, receives what the station forwards: the units'
//! notifications (with snmpTrapAddress.0 naming the unit) and the station's own DVSAN-STATION-MIB notifications,
//! as traps and, with --forward-inform, as informs.

use dvsan_tests::units::*;
use dvsan_tests::*;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

#[test]
fn snmptrapd_receives_forwarded_and_own_notifications() {
    let dir = tempfile::tempdir().unwrap();
    let trapd = TrapReceiver::start(dir.path());
    let nms = trapd.addr;
    let nms_text = nms.to_string();

    // Station A forwards as traps, station B as informs.
    let station_a = Station::start(&dir.path().join("a"), &["--forward", &nms_text]);
    let station_b = Station::start(&dir.path().join("b"), &["--forward", &nms_text, "--forward-inform"]);
    let mut unit_a = Unit::start(&dir.path().join("ua"), "127.0.4.1", station_a.traps, "16M", &[]);
    unit_a.serve_data();
    let mut unit_b = Unit::start(&dir.path().join("ub"), "127.0.4.2", station_b.traps, "16M", &[]);
    unit_b.serve_data();
    station_a.wait_unit(&unit_a.address(), "available", WAIT, |u| u["state"] == "available");
    station_b.wait_unit(&unit_b.address(), "available", WAIT, |u| u["state"] == "available");
    unit_a.admin(&["volume", "create", "--size", "1M", "--name", "fwd"]);
    station_a.wait_unit(&unit_a.address(), "the new volume", WAIT, |u| !volumes_of(u).is_empty());

    // Blocks of snmptrapd's log: one header line, then the tab-separated varbinds.
    let has = |needles: &[&str]| trapd.logged(needles);
    for unit in [&unit_a, &unit_b] {
        let address = format!("snmpTrapAddress.0 = IpAddress: {}", unit.listen.ip());
        wait_until(&format!("forwarded coldStart of {}", unit.listen), WAIT, || {
            has(&["snmpTrapOID.0 = OID: SNMPv2-MIB::coldStart", &address, &unit.unit_id()])
        });
        wait_until(&format!("dvsanStationUnitJoined of {}", unit.listen), WAIT, || {
            has(&["DVSAN-STATION-MIB::dvsanStationUnitJoined", &unit.unit_id()])
        });
    }
    wait_until("dvsanStationVolumeAdded", WAIT, || has(&["DVSAN-STATION-MIB::dvsanStationVolumeAdded", "STRING: fwd"]));

    // A unit that goes away is reported too.
    unit_b.proc.terminate();
    wait_until("forwarded dvsanUnitShutdown", WAIT, || has(&["DVSAN-MIB::dvsanUnitShutdown", &unit_b.unit_id()]));
    wait_until("dvsanStationUnitLeft", WAIT, || has(&["DVSAN-STATION-MIB::dvsanStationUnitLeft", "unavailable(2)"]));

    // The informs of station B were acknowledged by snmptrapd (none failed), per the station MIB.
    let counters = run_ok(
        net_snmp("snmpget")
            .args(["-v2c", "-c", "public", "-Oqv"])
            .arg(station_b.snmp.unwrap().to_string())
            .args(["DVSAN-STATION-MIB::dvsanStationForwarded.0", "DVSAN-STATION-MIB::dvsanStationForwardFailures.0"]),
    );
    let values: Vec<u64> = counters.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    assert_eq!(values.len(), 2, "{counters}");
    assert!(values[0] >= 4, "forwarded: {counters}");
    assert_eq!(values[1], 0, "forward failures: {counters}");
}
