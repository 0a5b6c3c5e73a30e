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

/// A station started without any write community: `snmpset -v2c -c private` of a storage request gets no answer,
/// makes no row, and moves snmpInBadCommunityNames (read back with snmpget); the read community cannot write
/// either (snmpInBadCommunityUses); the CLI's changes to units say which option is missing.
#[test]
fn by_default_the_station_accepts_no_set() {
    let dir = tempfile::tempdir().unwrap();
    let station = Station::start_bare(&dir.path().join("station"), &["--trust-community-units"]);
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
        assert!(!out.status.success() && output_text(&out).contains("Timeout"), "{community}: {}", output_text(&out));
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
    assert_eq!(lines[..2], ["1", "1"], "{}", output_text(&out));
    assert!(lines[2].contains("No Such Instance"), "{}", output_text(&out));

    // The CLI has no write community for units unless given one: a request that needs a new volume says so and
    // changes nothing.
    let mut cli = station.cli();
    cli.env_remove("DVSAN_UNIT_WRITE_COMMUNITY")
        .args(["request", "--size", "1M", "--host", "127.0.0.9", "--state-dir"])
        .arg(&station.state_dir);
    let err = run_fails(&mut cli);
    assert!(
        err.contains(
            "the station has neither the unit's enrolled credentials nor a write community for units, so it \
             cannot change it: enrol the unit (dvsan-station unit enroll, the unit's --users) or give dvsan-station \
             --write-community NAME"
        ),
        "{err}"
    );
    assert_eq!(unit.show()["volumes"].as_array().map(Vec::len), Some(0), "no volume was made");
}

/// The communities of the ownership test: two tenants that may write, and the station's admin.
const TENANT_A: &str = "tenant-a-7f3e";
const TENANT_B: &str = "tenant-b-91c2";
const ADMIN: &str = "noc-admin-5d0a";

/// snmpset of a request row (`index`) as `community`: an allocation of `size` (`Some`) or a release of
/// `unit`/`volume` (`None`) for host `host_hex`; the SET's output.
fn submit(
    station: &Station,
    community: &str,
    index: u32,
    size: Option<&str>,
    target: (&str, &str),
    host: &str,
) -> Output {
    let args = station_request_row(index, size, target, host);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    station_snmp(station, "snmpset", community, &refs)
}

/// One column of a request row as `community` sees it (value only).
fn request_cell(station: &Station, community: &str, column: &str, index: u32) -> String {
    let out = station_snmp(
        station,
        "snmpget",
        community,
        &["-Oqv", &format!("DVSAN-STATION-MIB::dvsanStationRequest{column}.{index}")],
    );
    String::from_utf8_lossy(&out.stdout).trim().trim_matches('"').to_string()
}

/// Waits until `community`'s request row `index` is served; its status.
fn served(station: &Station, community: &str, index: u32) -> String {
    wait_until("the request to be served", WAIT, || {
        let status = request_cell(station, community, "Status", index);
        (status != "pending").then_some(status)
    })
}

/// What `community` sees of a table of the station (snmpwalk, numeric-free text).
fn walk(station: &Station, community: &str, table: &str) -> String {
    output_text(&station_snmp(station, "snmpwalk", community, &[&format!("DVSAN-STATION-MIB::{table}")]))
}

/// Two tenants with their own write communities and an admin: a tenant's requests and assignments do not exist for
/// the other tenant or the read community (GET, walks), the other tenant cannot release them (the same answer as
/// for a volume nobody holds) nor take over or destroy its request rows; the owner and the admin can release; only
/// the admin may submit a task that removes a unit.
#[test]
fn a_tenant_sees_and_releases_only_its_own_assignments() {
    let dir = tempfile::tempdir().unwrap();
    let station = Station::start_bare(
        &dir.path().join("station"),
        &[
            "--trust-community-units",
            "--write-community",
            WRITE_COMMUNITY,
            "--snmp-write-community",
            TENANT_A,
            "--snmp-write-community",
            TENANT_B,
            "--admin-community",
            ADMIN,
        ],
    );
    let mut unit = Unit::start(&dir.path().join("u1"), "127.0.40.2", station.traps, "64M", &[]);
    unit.serve_data();
    station.wait_unit(&unit.address(), "available", WAIT, |u| u["state"] == "available");

    // Tenant A gets 8M for its host 127.0.40.100.
    let out = submit(&station, TENANT_A, 7, Some("8M"), ("", ""), "7F002864");
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(served(&station, TENANT_A, 7), "done");
    let unit_index = request_cell(&station, TENANT_A, "UnitIndex", 7);
    let volume = request_cell(&station, TENANT_A, "VolumeIndex", 7);
    let uri = request_cell(&station, TENANT_A, "NbdUri", 7);
    assert!(uri.starts_with("nbd://127.0.40.2:"), "{uri}");
    let held = vec![(volume.parse::<u64>().unwrap(), "127.0.40.100".to_string())];
    assert_eq!(unit.grants(), held);
    // Index: unit, volume, the host (ipv4(1), 4 octets).
    let assignment = format!("DVSAN-STATION-MIB::dvsanStationAssignNbdUri.{unit_index}.{volume}.1.4.127.0.40.100");
    let assigned_uri = |community: &str| {
        let out = station_snmp(&station, "snmpget", community, &["-Oqv", &assignment]);
        String::from_utf8_lossy(&out.stdout).trim().trim_matches('"').to_string()
    };
    wait_until("the assignment in the station MIB", WAIT, || (assigned_uri(TENANT_A) == uri).then_some(()));

    // Tenant B and the read community: A's request row and assignment do not exist.
    for other in [TENANT_B, "public"] {
        assert!(request_cell(&station, other, "NbdUri", 7).contains("No Such Instance"), "{other}");
        assert!(assigned_uri(other).contains("No Such Instance"), "{other}");
        for table in ["dvsanStationRequestTable", "dvsanStationAssignmentTable"] {
            let seen = walk(&station, other, table);
            assert!(!seen.contains(&uri) && !seen.contains("7F 00 28 64"), "{other} walks {table}: {seen}");
        }
    }
    assert!(walk(&station, TENANT_A, "dvsanStationAssignmentTable").contains(&uri));
    assert!(walk(&station, ADMIN, "dvsanStationAssignmentTable").contains(&uri));

    // Tenant B cannot release it, even knowing the unit, volume and host: the same failure as for a volume nobody
    // holds; the grant and the assignment stay.
    let out = submit(&station, TENANT_B, 8, None, (&unit_index, &volume), "7F002864");
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(served(&station, TENANT_B, 8), "failed");
    let refused = request_cell(&station, TENANT_B, "Error", 8);
    assert!(
        refused.contains(&format!("volume {volume} of unit #{unit_index} is not assigned to this requester")),
        "{refused}"
    );
    let out = submit(&station, TENANT_B, 9, None, (&unit_index, "999"), "7F002864");
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(served(&station, TENANT_B, 9), "failed");
    assert_eq!(
        request_cell(&station, TENANT_B, "Error", 9).replace("volume 999", &format!("volume {volume}")),
        refused
    );
    assert_eq!(unit.grants(), held);
    // Nor take over or remove A's request row: createAndGo on its index is refused, destroy does nothing.
    let out = submit(&station, TENANT_B, 7, Some("1M"), ("", ""), "7F002865");
    assert!(output_text(&out).contains("inconsistentValue"), "{}", output_text(&out));
    let out =
        station_snmp(&station, "snmpset", TENANT_B, &["DVSAN-STATION-MIB::dvsanStationRequestRowStatus.7", "i", "6"]);
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(request_cell(&station, TENANT_A, "NbdUri", 7), uri);

    // Only the admin may submit a task that removes the unit (and with it A's assignment).
    let next = |community: &str| {
        let out =
            station_snmp(&station, "snmpget", community, &["-Oqv", "DVSAN-STATION-MIB::dvsanStationTaskNextIndex.0"]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let remove = |community: &str, index: &str| {
        let column = |name: &str| format!("DVSAN-STATION-MIB::dvsanStationTask{name}.{index}");
        station_snmp(
            &station,
            "snmpset",
            community,
            // 11: removeUnitForce.
            &[&column("Operation"), "i", "11", &column("Unit"), "s", &unit_index, &column("RowStatus"), "i", "4"],
        )
    };
    let index = next(TENANT_B);
    let out = remove(TENANT_B, &index);
    assert!(output_text(&out).contains("noAccess"), "{}", output_text(&out));
    let out = station_snmp(&station, "snmpget", ADMIN, &[&format!("DVSAN-STATION-MIB::dvsanStationTaskState.{index}")]);
    assert!(output_text(&out).contains("No Such Instance"), "{}", output_text(&out));

    // The owner releases its own.
    let out = submit(&station, TENANT_A, 10, None, (&unit_index, &volume), "7F002864");
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(served(&station, TENANT_A, 10), "done", "{}", request_cell(&station, TENANT_A, "Error", 10));
    assert!(unit.grants().is_empty());

    // The admin sees and releases what a tenant asked for.
    let out = submit(&station, TENANT_A, 11, Some("8M"), ("", ""), "7F002864");
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(served(&station, TENANT_A, 11), "done");
    let volume = request_cell(&station, ADMIN, "VolumeIndex", 11);
    assert_eq!(unit.grants(), vec![(volume.parse::<u64>().unwrap(), "127.0.40.100".to_string())]);
    let out = submit(&station, ADMIN, 12, None, (&unit_index, &volume), "7F002864");
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(served(&station, ADMIN, 12), "done", "{}", request_cell(&station, ADMIN, "Error", 12));
    assert!(unit.grants().is_empty());

    // The admin's task removing the unit is accepted and runs.
    let index = next(ADMIN);
    let out = remove(ADMIN, &index);
    assert!(out.status.success(), "{}", output_text(&out));
    wait_until("the unit removed by the admin's task", WAIT, || {
        station.unit_at(&unit.address()).is_none().then_some(())
    });
}
