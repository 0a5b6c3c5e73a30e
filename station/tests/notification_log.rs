//! NOTIFICATION-LOG-MIB: notifications the station received, read back over SNMP with net-snmp's tools, the way an
//! NMS (or a console on another machine) reads them.

use dvsan_tests::units::Station;
use dvsan_tests::{net_snmp, run_ok, wait_until};
use std::time::Duration;

fn log_mib(tool: &str) -> std::process::Command {
    let mut cmd = net_snmp(tool);
    cmd.args(["-m", "+NOTIFICATION-LOG-MIB:IF-MIB", "-v2c", "-c", "public", "-t", "1", "-r", "1"]);
    cmd
}

#[test]
fn received_notifications_are_readable_as_nlm_log_and_variable_tables() {
    let dir = tempfile::tempdir().unwrap();
    let station = Station::start(&dir.path().join("station"), &[]);
    let snmp = station.snmp.unwrap().to_string();
    let traps = station.traps.to_string();

    // A v2c linkDown with IF-MIB varbinds from 127.0.0.1, and a v1 coldStart.
    run_ok(
        net_snmp("snmptrap").args(["-m", "+IF-MIB", "-v2c", "-c", "public", &traps, "4242", "IF-MIB::linkDown"]).args(
            [
                "IF-MIB::ifIndex.3",
                "i",
                "3",
                "IF-MIB::ifAdminStatus.3",
                "i",
                "up",
                "IF-MIB::ifOperStatus.3",
                "i",
                "down",
                "IF-MIB::ifDescr.3",
                "s",
                "data service",
            ],
        ),
    );
    run_ok(net_snmp("snmptrap").args([
        "-v1",
        "-c",
        "public",
        &traps,
        "1.3.6.1.4.1.8072.3",
        "127.0.0.1",
        "0",
        "0",
        "77",
    ]));
    wait_until("two stored notifications", Duration::from_secs(10), || (station.traps(&[]).len() == 2).then_some(()));

    // nlmLogTable: one row per notification in the null-named log, oldest first, with the notification's OID
    // and the sender's UDP address.
    let table = run_ok(log_mib("snmptable").args(["-Cf", "|", "-CH", "-Oq", &snmp, "nlmLogTable"]));
    let rows: Vec<&str> = table.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(rows.len(), 2, "two log rows:\n{table}");
    assert!(rows[0].ends_with("IF-MIB::linkDown"), "first row is the linkDown: {}", rows[0]);
    assert!(rows[1].ends_with("SNMPv2-MIB::coldStart"), "v1 generic trap 0 translated (RFC 3584): {}", rows[1]);
    assert!(rows[0].contains("SNMPv2-TM::snmpUDPDomain"), "transport domain: {}", rows[0]);
    assert!(rows[0].contains("STRING: public|"), "v2c community as the context name: {}", rows[0]);

    // nlmLogVariableTable: the linkDown's four varbinds, each with its type and value column.
    let walk = run_ok(log_mib("snmpwalk").args(["-Oq", &snmp, "nlmLogVariableTable"]));
    for needle in [
        "nlmLogVariableID.\"\".1.1 IF-MIB::ifIndex.3",
        "nlmLogVariableValueType.\"\".1.1 integer32",
        "nlmLogVariableInteger32Val.\"\".1.1 3",
        "nlmLogVariableInteger32Val.\"\".1.3 2",
        "nlmLogVariableValueType.\"\".1.4 octetString",
        "nlmLogVariableOctetStringVal.\"\".1.4 \"data service\"",
    ] {
        assert!(walk.contains(needle), "missing {needle:?} in:\n{walk}");
    }
    // The v1 trap carried no varbinds: no variable rows for it.
    assert!(!walk.contains(".\"\".2."), "row 2 has no variables:\n{walk}");

    // Stats and config, and GETs of single instances (what a follower does with the last index it saw).
    let stats = run_ok(log_mib("snmpget").args([
        "-Oqv",
        &snmp,
        "nlmStatsGlobalNotificationsLogged.0",
        "nlmConfigGlobalEntryLimit.0",
        "nlmConfigLogOperStatus.\"\"",
        "nlmLogNotificationID.\"\".1",
    ]));
    assert_eq!(stats, "2 notifications\n2000000\noperational\nIF-MIB::linkDown\n");
    let next = run_ok(log_mib("snmpgetnext").args(["-Oq", &snmp, "nlmLogNotificationID.\"\".1"]));
    assert!(next.starts_with("NOTIFICATION-LOG-MIB::nlmLogNotificationID.\"\".2 "), "getnext follows the log: {next}");
    // GETNEXT inside the variable table: the next variable of the row, then (row 2 has none) the next column.
    for (from, to) in [
        ("nlmLogVariableID.\"\".1.2", "nlmLogVariableID.\"\".1.3 "),
        ("nlmLogVariableID.\"\".1.4", "nlmLogVariableValueType.\"\".1.1 "),
        ("nlmLogVariableID.\"\".1.4294967295", "nlmLogVariableValueType.\"\".1.1 "),
    ] {
        let next = run_ok(log_mib("snmpgetnext").args(["-Oq", &snmp, from]));
        assert!(next.starts_with(&format!("NOTIFICATION-LOG-MIB::{to}")), "getnext {from}: {next}");
    }
    let missing = run_ok(log_mib("snmpget").args(["-Oq", &snmp, "nlmLogNotificationID.\"\".99"]));
    assert!(missing.contains("No Such Instance"), "{missing}");

    // snmpbulkwalk of the whole module agrees with the walk of the pieces (ordering of the handler is sound).
    let bulk = run_ok(log_mib("snmpbulkwalk").args(["-Oqn", &snmp, "NOTIFICATION-LOG-MIB::notificationLogMIB"]));
    let plain = run_ok(log_mib("snmpwalk").args(["-Oqn", &snmp, "NOTIFICATION-LOG-MIB::notificationLogMIB"]));
    assert_eq!(bulk, plain);
    assert!(bulk.lines().count() > 20, "{bulk}");
}
