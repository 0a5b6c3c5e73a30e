//! Who may change what through the station: no write access by default.

use dvsan_tests::units::*;
use dvsan_tests::*;
use std::process::Output;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

/// net-snmp `tool` against the station's agent with `community`, one try of 1 s.
fn station_snmp(station: &Station, tool: &str, community: &str, args: &[&str]) -> Output {
    net_snmp(tool)
        .args(["-v2c", "-c", community, "-t", "1", "-r", "0"])
        .arg(station.snmp.expect("the station serves SNMP").to_string())
        .args(args)
        .output()
        .expect("net-snmp runs")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A station started without any write community: `snmpset -v2c -c private` of a storage request gets no answer,
/// makes no row, and moves snmpInBadCommunityNames (read back with snmpget); the read community cannot write
/// either (snmpInBadCommunityUses); the CLI's changes to units say which option is missing.
#[test]
fn by_default_the_station_accepts_no_set() {
    let dir = tempfile::tempdir().unwrap();
    let station = Station::start_bare(&dir.path().join("station"), &[]);
    let mut unit = Unit::start(&dir.path().join("u1"), "127.0.40.1", station.traps, "64M", &[]);
    unit.serve_data();
    station.wait_unit(&unit.address(), "available", WAIT, |u| u["state"] == "available");
    let request = [
        "DVSAN-STATION-MIB::dvsanStationRequestSize.7",
        "s",
        "1M",
        "DVSAN-STATION-MIB::dvsanStationRequestHostAddrType.7",
        "i",
        "1",
        "DVSAN-STATION-MIB::dvsanStationRequestHostAddress.7",
        "x",
        "7F000009",
        "DVSAN-STATION-MIB::dvsanStationRequestRowStatus.7",
        "i",
        "4",
    ];
    for community in ["private", "public"] {
        let out = station_snmp(&station, "snmpset", community, &request);
        assert!(!out.status.success() && text(&out).contains("Timeout"), "{community}: {}", text(&out));
    }
    let out = station_snmp(
        &station,
        "snmpget",
        "public",
        &[
            "-Oqv",
            "SNMPv2-MIB::snmpInBadCommunityNames.0",
            "SNMPv2-MIB::snmpInBadCommunityUses.0",
            "DVSAN-STATION-MIB::dvsanStationRequestStatus.7",
        ],
    );
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
    assert_eq!(lines[..2], ["1", "1"], "{}", text(&out));
    assert!(lines[2].contains("No Such Instance"), "{}", text(&out));

    // The CLI has no write community for units unless given one: a request that needs a new volume says so and
    // changes nothing.
    let mut cli = station.cli();
    cli.env_remove("DVSAN_UNIT_WRITE_COMMUNITY")
        .args(["request", "--size", "1M", "--host", "127.0.0.9", "--state-dir"])
        .arg(&station.state_dir);
    let err = run_fails(&mut cli);
    assert!(
        err.contains(
            "the station has no write community for the units, so it cannot change them: give dvsan-station \
                      --write-community NAME"
        ),
        "{err}"
    );
    assert_eq!(unit.show()["volumes"].as_array().map(Vec::len), Some(0), "no volume was made");
}
