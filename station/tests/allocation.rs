//! Volume allocation through the station CLI against real agents: best fit among free volumes, a new
//! volume on the unit with the most free space, grants on the units' access tables, refusals that leave nothing
//! half-assigned, release, and assignments that survive a kill -9 of the station.

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

fn request(station: &Station, size: &str, host: &str) -> serde_json::Value {
    let text = run_ok(&mut alloc_cmd(station, &["request", "--json", "--size", size, "--host", host]));
    serde_json::from_str(&text).unwrap()
}

fn assignments(station: &Station) -> Vec<serde_json::Value> {
    let text = run_ok(&mut alloc_cmd(station, &["assignments", "--json"]));
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["assignments"].as_array().unwrap().clone()
}

/// Creates a volume of `blocks` at `index` on the unit with snmpset.
fn create_volume(unit: &Unit, index: u32, blocks: u64) {
    run_ok(
        net_snmp("snmpset")
            .args(["-v2c", "-c", WRITE_COMMUNITY])
            .arg(unit.address())
            .arg(format!("DVSAN-MIB::dvsanVolumeLength.{index}"))
            .args(["u", &blocks.to_string()])
            .arg(format!("DVSAN-MIB::dvsanVolumeRowStatus.{index}"))
            .args(["i", "4"]),
    );
}

#[test]
fn request_assign_refuse_release_and_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("station");
    let mut station = Station::start(&state, &[]);
    let mut big = Unit::start(&dir.path().join("u1"), "127.0.20.1", station.traps, "64M", &[]);
    let mut small = Unit::start(&dir.path().join("u2"), "127.0.20.2", station.traps, "32M", &[]);
    big.serve_data();
    small.serve_data();
    let u2 = station.wait_unit(&small.address(), "available", WAIT, |u| u["state"] == "available");
    station.wait_unit(&big.address(), "available", WAIT, |u| u["state"] == "available");
    let block_size = u2["block_size"].as_u64().unwrap();
    let mib = (1 << 20) / block_size;
    create_volume(&small, 1, 4 * mib);
    create_volume(&small, 2, 12 * mib);
    station.wait_unit(&small.address(), "two volumes", WAIT, |u| u["volumes"].as_array().unwrap().len() == 2);

    // Best fit among free volumes: 3M goes to the 4M volume, the next 3M to the 12M one.
    let a = request(&station, "3M", "127.0.20.100");
    assert_eq!((a["agent"].as_str().unwrap(), a["volume"].as_u64().unwrap()), ("127.0.20.2:1161", 1), "{a}");
    assert_eq!(a["volume_created"], false);
    assert_eq!(a["size_bytes"].as_u64().unwrap(), 4 << 20);
    assert!(a["nbd_uri"].as_str().unwrap().starts_with("nbd://127.0.20.2:10809/"), "{a}");
    let b = request(&station, "3145728", "127.0.20.101");
    assert_eq!((a["agent"].as_str().unwrap(), b["volume"].as_u64().unwrap()), ("127.0.20.2:1161", 2), "{b}");
    assert!(
        small.grants().contains(&(1, "127.0.20.100".into())) && small.grants().contains(&(2, "127.0.20.101".into()))
    );

    // No free volume is large enough: a new one on the unit with the most free space (u1), rounded to blocks.
    let c = request(&station, "20M", "127.0.20.102");
    assert_eq!(c["agent"], "127.0.20.1:1161", "{c}");
    assert_eq!(c["volume_created"], true);
    assert_eq!(c["size_bytes"].as_u64().unwrap(), 20 << 20);
    assert_eq!(c["end_lba"].as_u64().unwrap() - c["start_lba"].as_u64().unwrap() + 1, 20 * mib);
    let volume_c = c["volume"].as_u64().unwrap();
    assert_eq!(big.grants(), vec![(volume_c, "127.0.20.102".to_string())]);
    assert!(big.show()["volumes"].as_array().unwrap().iter().any(|v| v["index"].as_u64() == Some(volume_c)));
    assert_eq!(assignments(&station).len(), 3);

    // Refusals: clear errors, nothing assigned, no volume created.
    let volumes_before = (big.show()["volumes"].clone(), small.show()["volumes"].clone());
    let err = run_fails(&mut alloc_cmd(&station, &["request", "--size", "1G", "--host", "127.0.20.103"]));
    assert!(err.contains("largest allocatable size is"), "{err}");
    // u1's free space is one extent after the new volume.
    let free = station.unit_at(&big.address()).unwrap()["free_bytes"].as_u64().unwrap();
    assert!(err.contains(&format!("largest allocatable size is {free} bytes")), "{err}");
    let err = run_fails(&mut alloc_cmd(&station, &["request", "--size", "0", "--host", "127.0.20.103"]));
    assert!(err.contains("larger than 0"), "{err}");
    let err = run_fails(&mut alloc_cmd(&station, &["request", "--size", "12Q", "--host", "127.0.20.103"]));
    assert!(err.contains("is not a size"), "{err}");
    let err = run_fails(&mut alloc_cmd(&station, &["request", "--size", "1M", "--host", "not-an-ip"]));
    assert!(err.contains("is not a host IP address"), "{err}");
    let err = run_fails(&mut alloc_cmd(
        &station,
        &["assign", "--unit", "127.0.20.2", "--volume", "1", "--host", "127.0.20.103"],
    ));
    assert!(err.contains("already assigned to 127.0.20.100"), "{err}");
    let err = run_fails(&mut alloc_cmd(
        &station,
        &["assign", "--unit", "127.0.20.2", "--volume", "99", "--host", "127.0.20.103"],
    ));
    assert!(err.contains("has no volume 99"), "{err}");
    let err =
        run_fails(&mut alloc_cmd(&station, &["assign", "--unit", "nope", "--volume", "1", "--host", "127.0.20.103"]));
    assert!(err.contains("no unit matches"), "{err}");
    let err = run_fails(&mut alloc_cmd(
        &station,
        &["unassign", "--unit", "127.0.20.2", "--volume", "1", "--host", "127.0.20.105"],
    ));
    assert!(err.contains("assigned to 127.0.20.100, not to 127.0.20.105"), "{err}");
    assert_eq!(assignments(&station).len(), 3);
    assert_eq!((big.show()["volumes"].clone(), small.show()["volumes"].clone()), volumes_before);
    assert_eq!(small.grants().len(), 2);

    // Admin volumes: create a free one on a chosen unit, destroy it; an assigned volume cannot be destroyed.
    let text =
        run_ok(&mut alloc_cmd(&station, &["volume", "create", "--unit", "127.0.20.1", "--size", "2M", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let index = v["volume"].as_u64().unwrap();
    assert_eq!(v["size_bytes"].as_u64().unwrap(), 2 << 20);
    assert!(big.show()["volumes"].as_array().unwrap().iter().any(|x| x["index"].as_u64() == Some(index)));
    let err = run_fails(&mut alloc_cmd(&station, &["volume", "destroy", "--unit", "127.0.20.2", "--volume", "2"]));
    assert!(err.contains("already assigned to 127.0.20.101"), "{err}");
    let err = run_fails(&mut alloc_cmd(&station, &["volume", "destroy", "--unit", "127.0.20.1", "--volume", "99"]));
    assert!(err.contains("has no volume 99"), "{err}");
    let err = run_fails(&mut alloc_cmd(&station, &["volume", "create", "--unit", "127.0.20.1", "--size", "1G"]));
    assert!(err.contains("largest allocatable size is"), "{err}");
    run_ok(&mut alloc_cmd(&station, &["volume", "destroy", "--unit", "127.0.20.1", "--volume", &index.to_string()]));
    assert_eq!(big.show()["volumes"], volumes_before.0);

    // Release: the grant is revoked on the unit and the volume is free for the next request.
    run_ok(&mut alloc_cmd(&station, &["unassign", "--unit", "127.0.20.2", "--volume", "1", "--host", "127.0.20.100"]));
    assert_eq!(small.grants(), vec![(2, "127.0.20.101".to_string())]);
    let err = run_fails(&mut alloc_cmd(&station, &["unassign", "--unit", "127.0.20.2", "--volume", "1"]));
    assert!(err.contains("not assigned"), "{err}");

    // A grant made behind the station's back on the released volume: the pool shows it as a foreign grant and
    // the volume is never given to another host (wiped_and_exclusive.rs has the allocation side).
    grant(&small, 50, 1, [127, 0, 20, 112]);
    station.wait_unit(&small.address(), "the foreign grant", WAIT, |u| {
        u["volumes"].as_array().unwrap().iter().any(|v| v["index"] == 1 && v["foreign_grants"][0] == "127.0.20.112")
    });
    let err = run_fails(&mut alloc_cmd(
        &station,
        &["assign", "--unit", "127.0.20.2", "--volume", "1", "--host", "127.0.20.104"],
    ));
    assert!(err.contains("has a grant the station did not make, for 127.0.20.112"), "{err}");
    assert_eq!(assignments(&station).len(), 2);

    // Reconciliation: a grant lost on the unit is made again; the grant made behind the station's back is left.
    let grant_c = c["grant"].as_u64().unwrap();
    revoke(&big, grant_c);
    assert!(big.grants().is_empty());
    let report = reconcile(&station);
    assert_eq!((report["regranted"].as_u64(), report["foreign_grants"].as_u64()), (Some(1), Some(1)), "{report}");
    assert_eq!(big.grants(), vec![(volume_c, "127.0.20.102".to_string())]);
    assert!(small.grants().contains(&(1, "127.0.20.112".into())));

    // A crash between the steps of an allocation (recorded pending, volume created, grant made, never confirmed)
    // is undone: the grant and the created volume are destroyed, the record dropped.
    create_volume(&big, 7, mib);
    grant(&big, 60, 7, [127, 0, 20, 120]);
    let unit_big = c["unit"].as_u64().unwrap() as u32;
    let mut store = dvsan_station::store::StationStore::open(&state).unwrap();
    store
        .insert_assignment(&dvsan_station::store::AssignmentRecord {
            unit: unit_big,
            volume: 7,
            host: "127.0.20.120".parse().unwrap(),
            read_only: false,
            grant: 60,
            volume_created: true,
            created_ms: 0,
            pending: true,
            owner: None,
            identity: None,
            shared: false,
        })
        .unwrap();
    drop(store);
    assert_eq!(assignments(&station).len(), 2, "a pending assignment is not listed");
    let report = reconcile(&station);
    assert_eq!(report["pending_undone"].as_u64(), Some(1), "{report}");
    assert_eq!(big.grants().len(), 1);
    assert!(!big.show()["volumes"].as_array().unwrap().iter().any(|v| v["index"].as_u64() == Some(7)));

    // Assignments survive a kill -9 of the station; a grant lost while it was down is repaired at its start.
    let before = assignments(&station);
    station.proc.kill();
    revoke(&big, grants_rows(&big)[0]);
    let station = Station::start(&state, &[]);
    assert_eq!(assignments(&station), before);
    let text = run_ok(&mut alloc_cmd(&station, &["assignments"]));
    assert_eq!(text.lines().count(), 2, "{text}");
    wait_until("the grant repaired at start", WAIT, || (big.grants().len() == 1).then_some(()));
    assert_eq!(big.grants(), vec![(volume_c, "127.0.20.102".to_string())]);
}

fn reconcile(station: &Station) -> serde_json::Value {
    serde_json::from_str(&run_ok(&mut alloc_cmd(station, &["reconcile"]))).unwrap()
}

/// The unit's grant indexes.
fn grants_rows(unit: &Unit) -> Vec<u64> {
    unit.show()["grants"].as_array().unwrap().iter().map(|g| g["index"].as_u64().unwrap()).collect()
}

fn revoke(unit: &Unit, grant: u64) {
    run_ok(
        net_snmp("snmpset")
            .args(["-v2c", "-c", WRITE_COMMUNITY])
            .arg(unit.address())
            .arg(format!("DVSAN-MIB::dvsanAccessRowStatus.{grant}"))
            .args(["i", "6"]),
    );
}

fn grant(unit: &Unit, index: u32, volume: u32, host: [u8; 4]) {
    let hex: String = host.iter().map(|b| format!("{b:02X}")).collect();
    run_ok(
        net_snmp("snmpset")
            .args(["-v2c", "-c", WRITE_COMMUNITY])
            .arg(unit.address())
            .arg(format!("DVSAN-MIB::dvsanAccessVolumeIndex.{index}"))
            .args(["u", &volume.to_string()])
            .arg(format!("DVSAN-MIB::dvsanAccessHostAddressType.{index}"))
            .args(["i", "1"])
            .arg(format!("DVSAN-MIB::dvsanAccessHostAddress.{index}"))
            .args(["x", &hex])
            .arg(format!("DVSAN-MIB::dvsanAccessRowStatus.{index}"))
            .args(["i", "4"]),
    );
}

/// snmpset on the station's agent (write community `private`).
fn station_set(station: &Station, args: &[&str]) -> std::process::Output {
    net_snmp("snmpset")
        .args(["-v2c", "-c", WRITE_COMMUNITY, "-t", "2", "-r", "0"])
        .arg(station.snmp.unwrap().to_string())
        .args(args)
        .output()
        .unwrap()
}

/// One column of a request row, value only, read by the admin (a row is visible to its requester and the admin).
fn request_cell(station: &Station, column: &str, index: u32) -> String {
    let output = net_snmp("snmpget")
        .args(["-v2c", "-c", WRITE_COMMUNITY, "-Oqv", "-t", "2", "-r", "0"])
        .arg(station.snmp.unwrap().to_string())
        .arg(format!("DVSAN-STATION-MIB::dvsanStationRequest{column}.{index}"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).trim().trim_matches('"').to_string()
}

/// Submits an allocation request row and waits until it is no longer pending; returns its status.
fn submit(station: &Station, index: u32, size: &str, host_hex: &str) -> String {
    let output = station_set(
        station,
        &[
            &format!("DVSAN-STATION-MIB::dvsanStationRequestSize.{index}"),
            "s",
            size,
            &format!("DVSAN-STATION-MIB::dvsanStationRequestHostAddrType.{index}"),
            "i",
            "1",
            &format!("DVSAN-STATION-MIB::dvsanStationRequestHostAddress.{index}"),
            "x",
            host_hex,
            &format!("DVSAN-STATION-MIB::dvsanStationRequestRowStatus.{index}"),
            "i",
            "4",
        ],
    );
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    wait_request(station, index)
}

fn wait_request(station: &Station, index: u32) -> String {
    wait_until("the request to be served", WAIT, || {
        let status = request_cell(station, "Status", index);
        (status != "pending").then_some(status)
    })
}

#[test]
fn requests_through_the_station_mib() {
    let dir = tempfile::tempdir().unwrap();
    // An NMS (snmptrapd) receives the station's notifications.
    let trapd = TrapReceiver::start(dir.path());
    let nms = trapd.addr;
    let station = Station::start(&dir.path().join("station"), &["--forward", &nms.to_string()]);
    let mut unit = Unit::start(&dir.path().join("u1"), "127.0.21.1", station.traps, "64M", &[]);
    unit.serve_data();
    station.wait_unit(&unit.address(), "available", WAIT, |u| u["state"] == "available");

    // Allocate 8M to 127.0.21.100 with plain snmpset, read the outcome with snmpget.
    assert_eq!(submit(&station, 7, "8M", "7F001564"), "done");
    let volume: u32 = request_cell(&station, "VolumeIndex", 7).parse().unwrap();
    let uri = request_cell(&station, "NbdUri", 7);
    assert!(uri.starts_with("nbd://127.0.21.1:10809/"), "{uri}");
    assert_eq!(request_cell(&station, "Error", 7), "");
    assert_eq!(unit.grants(), vec![(u64::from(volume), "127.0.21.100".to_string())]);
    let listed = assignments(&station);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["nbd_uri"], uri.as_str());
    let unit_index = request_cell(&station, "UnitIndex", 7);
    // dvsanStationAssignmentTable shows the assignment to its requester, here the admin (the snapshot is at most
    // 500 ms old).
    let assigned = |column: &str| {
        let output = net_snmp("snmpget")
            .args(["-v2c", "-c", WRITE_COMMUNITY, "-Oqv", "-t", "2", "-r", "0"])
            .arg(station.snmp.unwrap().to_string())
            // Index: unit, volume, the host (ipv4(1), 4 octets).
            .arg(format!("DVSAN-STATION-MIB::dvsanStationAssign{column}.{unit_index}.{volume}.1.4.127.0.21.100"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).trim().trim_matches('"').to_string()
    };
    wait_until("the assignment in the station MIB", WAIT, || (assigned("NbdUri") == uri).then_some(()));
    assert_eq!(assigned("Host").trim(), "7F 00 15 64");
    assert_eq!(assigned("Mode"), "readWrite");
    // The volume made for the request is announced to the NMS.
    let added = format!("dvsanStationVolumeName.{unit_index}.{volume} = STRING: ");
    wait_until("dvsanStationVolumeAdded for the request's volume", WAIT, || {
        trapd.logged(&["DVSAN-STATION-MIB::dvsanStationVolumeAdded", &added])
    });

    // Refusals land in the status and error columns; nothing is assigned.
    assert_eq!(submit(&station, 8, "0", "7F001565"), "failed");
    assert!(request_cell(&station, "Error", 8).contains("larger than 0"));
    assert_eq!(submit(&station, 9, "1T", "7F001565"), "failed");
    assert!(request_cell(&station, "Error", 9).contains("largest allocatable size is"));
    assert_eq!(submit(&station, 10, "eighty", "7F001565"), "failed");
    assert!(request_cell(&station, "Error", 10).contains("is not a size"));
    assert_eq!(submit(&station, 11, "1M", "7F0015"), "failed");
    assert!(request_cell(&station, "Error", 11).contains("not an IPv4 or IPv6 address"));
    assert_eq!(assignments(&station).len(), 1);
    assert_eq!(unit.grants().len(), 1);

    // A submitted row cannot be changed; read-only columns are not writable.
    assert!(!station_set(&station, &["DVSAN-STATION-MIB::dvsanStationRequestSize.7", "s", "9M"]).status.success());
    assert!(!station_set(&station, &["DVSAN-STATION-MIB::dvsanStationRequestStatus.12", "i", "2"]).status.success());

    // Release by another host is refused; by the holder it revokes the grant.
    let release_on = |index: u32, unit: &str, host_hex: &str| {
        let output = station_set(
            &station,
            &[
                &format!("DVSAN-STATION-MIB::dvsanStationRequestAction.{index}"),
                "i",
                "2",
                &format!("DVSAN-STATION-MIB::dvsanStationRequestUnitIndex.{index}"),
                "u",
                unit,
                &format!("DVSAN-STATION-MIB::dvsanStationRequestVolumeIndex.{index}"),
                "u",
                &volume.to_string(),
                &format!("DVSAN-STATION-MIB::dvsanStationRequestHostAddrType.{index}"),
                "i",
                "1",
                &format!("DVSAN-STATION-MIB::dvsanStationRequestHostAddress.{index}"),
                "x",
                host_hex,
                &format!("DVSAN-STATION-MIB::dvsanStationRequestRowStatus.{index}"),
                "i",
                "4",
            ],
        );
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        wait_request(&station, index)
    };
    let release = |index: u32, host_hex: &str| release_on(index, &unit_index, host_hex);
    // A host asking about a unit the pool does not have is pointed at what a host can read, not an admin tool.
    assert_eq!(release_on(19, "999", "7F001564"), "failed");
    let error = request_cell(&station, "Error", 19);
    assert!(error.contains("no unit #999") && error.contains("dvsan-host list"), "{error}");
    assert!(!error.contains("dvsan-station"), "{error}");
    assert_eq!(release(20, "7F001565"), "failed");
    assert!(request_cell(&station, "Error", 20).contains("not to 127.0.21.101"));
    assert_eq!(unit.grants().len(), 1);
    assert_eq!(release(21, "7F001564"), "done");
    assert!(unit.grants().is_empty());
    assert!(assignments(&station).is_empty());
    wait_until("the assignment gone from the station MIB", WAIT, || {
        assigned("NbdUri").contains("No Such Instance").then_some(())
    });
    assert_eq!(release(22, "7F001564"), "failed");
    assert!(request_cell(&station, "Error", 22).contains("not assigned"));

    // Destroying a row removes it (not an assignment).
    assert!(station_set(&station, &["DVSAN-STATION-MIB::dvsanStationRequestRowStatus.7", "i", "6"]).status.success());
    assert!(request_cell(&station, "Status", 7).contains("No Such Instance"));
}

/// `dvsan-host --station S --host H ARGS`.
fn host_cli(station: &Station, host: &str, args: &[&str]) -> Command {
    let mut cmd = station.host_cli(host);
    cmd.args(["--write-community", WRITE_COMMUNITY]).args(args);
    cmd
}

/// NBD_OPT_INFO on `uri`'s export from `from`: Ok(size) or the refusal.
fn nbd_info(uri: &str, from: &str) -> Result<u64, String> {
    let rest = uri.strip_prefix("nbd://").unwrap();
    let (authority, export) = rest.split_once('/').unwrap();
    let address: std::net::SocketAddr = authority.parse().unwrap();
    let options = dvsan_nbd::ConnectOptions {
        local_addr: Some(from.parse().unwrap()),
        timeout: Duration::from_secs(5),
        structured_replies: false,
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut handshake = dvsan_nbd::ClientHandshake::connect(address, &options).await.map_err(|e| e.to_string())?;
        let info = handshake.info(export).await.map_err(|e| e.to_string())?;
        let _ = handshake.abort().await;
        Ok(info.size)
    })
}

#[test]
fn host_cli_with_real_blockd_exclusive_access_and_release() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("station");
    let mut station = Station::start(&state, &[]);
    let unit = Unit::start(&dir.path().join("u1"), "127.0.22.1", station.traps, "64M", &[]);
    let mut blockd_cmd = Command::new(workspace_bin("dvsan-blockd"));
    blockd_cmd.arg("--state-dir").arg(&unit.state_dir).args(["--listen", "127.0.22.1:10809"]);
    let _blockd = Proc::spawn_logging("dvsan-blockd", &mut blockd_cmd, dir.path().join("blockd.log"));
    station.wait_unit(&unit.address(), "available with blockd serving", WAIT, |u| u["state"] == "available");

    // Host A asks for 8M with dvsan-host.
    let text =
        run_ok(&mut host_cli(&station, "127.0.22.100", &["request", "--size", "8M", "--name", "host-a", "--json"]));
    let a: serde_json::Value = serde_json::from_str(&text).unwrap();
    let uri = a["nbd_uri"].as_str().unwrap().to_string();
    let spec = format!("{}/{}", a["unit"], a["volume"]);
    assert_eq!(a["name"], "host-a");
    assert!(uri.starts_with("nbd://127.0.22.1:10809/"), "{a}");

    // It lists and attaches for A (the export answers A with its size), not for B.
    let listed = wait_until("the volume in A's list", WAIT, || {
        let text = run_ok(&mut host_cli(&station, "127.0.22.100", &["list"]));
        text.contains(&uri).then_some(text)
    });
    assert!(listed.starts_with(&spec), "{listed}");
    assert_eq!(run_ok(&mut host_cli(&station, "127.0.22.101", &["list"])), "");
    let attach = wait_until("blockd to serve the new grant", WAIT, || {
        let output = host_cli(&station, "127.0.22.100", &["attach", &spec]).output().unwrap();
        output.status.success().then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    });
    assert!(attach.contains("nbd-client 127.0.22.1 10809 -N "), "{attach}");
    assert!(attach.contains(&format!("qemu-nbd --connect=/dev/nbd0 {uri}")), "{attach}");
    assert!(attach.contains(&format!("{} bytes", 8 << 20)), "{attach}");
    let err = run_fails(&mut host_cli(&station, "127.0.22.101", &["attach", &spec]));
    assert!(err.contains("is not one of this host's"), "{err}");

    // Exclusive access: blockd refuses host B's NBD client.
    assert_eq!(nbd_info(&uri, "127.0.22.100"), Ok(8 << 20));
    assert!(nbd_info(&uri, "127.0.22.101").is_err());

    // Out-band: kill -9 the station while A writes and reads; A's I/O goes on without an error, and the restarted
    // station still has the assignment.
    let io_uri = uri.clone();
    let io = std::thread::spawn(move || nbd_io(&io_uri, "127.0.22.100", Duration::from_millis(1500)));
    std::thread::sleep(Duration::from_millis(400));
    station.proc.kill();
    let ops = io.join().unwrap().expect("I/O while the station is killed");
    assert!(ops > 10, "only {ops} I/Os in 1.5 s");
    let station = Station::start(&state, &[]);
    let listed = run_ok(&mut host_cli(&station, "127.0.22.100", &["list"]));
    assert!(listed.starts_with(&spec) && listed.contains(&uri), "{listed}");

    // Refusals through dvsan-host: the station's reason, exit status 1.
    let err = run_fails(&mut host_cli(&station, "127.0.22.100", &["request", "--size", "0"]));
    assert!(err.contains("larger than 0"), "{err}");
    let err = run_fails(&mut host_cli(&station, "127.0.22.100", &["request", "--size", "2T"]));
    assert!(err.contains("largest allocatable size is"), "{err}");
    let err = run_fails(&mut host_cli(&station, "127.0.22.101", &["release", &spec]));
    assert!(err.contains("is not one of this host's (127.0.22.101) volumes; `dvsan-host list`"), "{err}");

    // Release: the grant is revoked, A's open connection is closed, blockd refuses A from then on, the volume is
    // free again.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (authority, export) = uri.strip_prefix("nbd://").unwrap().split_once('/').unwrap();
    let options = dvsan_nbd::ConnectOptions {
        local_addr: Some("127.0.22.100".parse().unwrap()),
        timeout: Duration::from_secs(5),
        structured_replies: true,
    };
    let mut open =
        runtime.block_on(dvsan_nbd::NbdClient::connect(authority.parse().unwrap(), export, &options)).unwrap();
    let out = run_ok(&mut host_cli(&station, "127.0.22.100", &["release", &spec]));
    assert!(out.contains(&format!("released {spec}")), "{out}");
    let closed = runtime.block_on(async {
        let mut buf = vec![0u8; 4096];
        for _ in 0..100 {
            if open.read(0, &mut buf).await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    });
    assert!(closed, "A's connection still works 5 s after the release");
    wait_until("blockd to refuse A after the release", WAIT, || nbd_info(&uri, "127.0.22.100").is_err().then_some(()));
    let text = run_ok(&mut host_cli(&station, "127.0.22.102", &["request", "--size", "8M", "--json"]));
    let c: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!((c["unit"].clone(), c["volume"].clone()), (a["unit"].clone(), a["volume"].clone()), "reused: {c}");
}

/// Writes and reads back 64 KiB blocks on `uri`'s export from `from` for `duration`; returns the I/O count.
fn nbd_io(uri: &str, from: &str, duration: Duration) -> Result<u64, String> {
    let (authority, export) = uri.strip_prefix("nbd://").unwrap().split_once('/').unwrap();
    let options = dvsan_nbd::ConnectOptions {
        local_addr: Some(from.parse().unwrap()),
        timeout: Duration::from_secs(5),
        structured_replies: true,
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut client = dvsan_nbd::NbdClient::connect(authority.parse().unwrap(), export, &options)
            .await
            .map_err(|e| e.to_string())?;
        let start = std::time::Instant::now();
        let mut ops = 0u64;
        let mut buf = vec![0u8; 65536];
        while start.elapsed() < duration {
            let offset = (ops % 64) * 65536;
            let data = vec![(ops % 251) as u8; 65536];
            client.write(offset, &data, false).await.map_err(|e| format!("write {ops}: {e}"))?;
            client.read(offset, &mut buf).await.map_err(|e| format!("read {ops}: {e}"))?;
            if buf != data {
                return Err(format!("read back other data at op {ops}"));
            }
            ops += 1;
        }
        client.disconnect().await.map_err(|e| e.to_string())?;
        Ok(ops)
    })
}

/// A unit with a real blockd on `ip`.
fn unit_with_blockd(dir: &std::path::Path, name: &str, ip: &str, station: &Station, size: &str) -> (Unit, Proc) {
    let unit = Unit::start(&dir.join(name), ip, station.traps, size, &[]);
    let mut cmd = Command::new(workspace_bin("dvsan-blockd"));
    cmd.arg("--state-dir").arg(&unit.state_dir).args(["--listen", &format!("{ip}:10809")]);
    let blockd = Proc::spawn_logging("dvsan-blockd", &mut cmd, dir.join(format!("{name}-blockd.log")));
    station.wait_unit(&unit.address(), "available with blockd serving", WAIT, |u| u["state"] == "available");
    (unit, blockd)
}

/// Runs `nbd_io` for every (uri, host) at once; every one must do I/O without an error.
fn concurrent_io(pairs: &[(String, String)]) {
    let threads: Vec<_> = pairs
        .iter()
        .cloned()
        .map(|(uri, host)| {
            std::thread::spawn(move || {
                // blockd picks up a new grant within its layout poll; retry the connection briefly.
                let mut last = String::new();
                for _ in 0..40 {
                    match nbd_io(&uri, &host, Duration::from_millis(700)) {
                        Ok(ops) => return (uri, host, Ok(ops)),
                        Err(e) if e.contains("write") || e.contains("read") => return (uri, host, Err(e)),
                        Err(e) => last = e,
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                (uri, host, Err(last))
            })
        })
        .collect();
    for thread in threads {
        let (uri, host, result) = thread.join().unwrap();
        let ops = result.unwrap_or_else(|e| panic!("{host} on {uri}: {e}"));
        assert!(ops > 5, "{host} on {uri}: only {ops} I/Os");
    }
}

#[test]
fn sharing_one_unit_and_one_host_on_three_units() {
    let dir = tempfile::tempdir().unwrap();
    let station = Station::start(&dir.path().join("station"), &[]);
    let (_u1, _b1) = unit_with_blockd(dir.path(), "u1", "127.0.23.1", &station, "64M");

    // Storage sharing: one unit holds a volume for each of three hosts, each exclusive, all doing I/O at once.
    let hosts = ["127.0.23.100", "127.0.23.101", "127.0.23.102"];
    let mut pairs = Vec::new();
    for host in hosts {
        let a = request(&station, "8M", host);
        assert_eq!(a["agent"], "127.0.23.1:1161", "{a}");
        pairs.push((a["nbd_uri"].as_str().unwrap().to_string(), host.to_string()));
    }
    concurrent_io(&pairs);
    for (uri, owner) in &pairs {
        for host in hosts.iter().filter(|h| *h != owner) {
            assert!(nbd_info(uri, host).is_err(), "{host} may use {owner}'s {uri}");
        }
    }

    // Two more units join; one host then gets three volumes placed by free space (u1 has 40M left, u2 and u3 32M):
    // u1, then u2, then u3, and uses them all at once.
    let (_u2, _b2) = unit_with_blockd(dir.path(), "u2", "127.0.23.2", &station, "32M");
    let (_u3, _b3) = unit_with_blockd(dir.path(), "u3", "127.0.23.3", &station, "32M");
    let mut agents = Vec::new();
    let mut pairs = Vec::new();
    for _ in 0..3 {
        let a = request(&station, "16M", "127.0.23.110");
        agents.push(a["agent"].as_str().unwrap().to_string());
        pairs.push((a["nbd_uri"].as_str().unwrap().to_string(), "127.0.23.110".to_string()));
    }
    assert_eq!(agents, ["127.0.23.1:1161", "127.0.23.2:1161", "127.0.23.3:1161"]);
    concurrent_io(&pairs);
    assert_eq!(assignments(&station).len(), 6);
}

#[test]
fn partitions_are_created_through_the_station() {
    let dir = tempfile::tempdir().unwrap();
    let station = Station::start(&dir.path().join("station"), &[]);
    let mut unit = Unit::start(&dir.path().join("u1"), "127.0.24.1", station.traps, "64M", &[]);
    unit.serve_data();
    station.wait_unit(&unit.address(), "available", WAIT, |u| u["state"] == "available");
    let unit_addr = unit.address();
    let vol: serde_json::Value = serde_json::from_str(&run_ok(&mut alloc_cmd(
        &station,
        &["volume", "create", "--unit", &unit_addr, "--size", "8M", "--name", "data", "--json"],
    )))
    .unwrap();
    let v = vol["volume"].as_u64().unwrap().to_string();

    let part: serde_json::Value = serde_json::from_str(&run_ok(&mut alloc_cmd(
        &station,
        &["partition", "create", "--unit", &unit_addr, "--volume", &v, "--size", "1M", "--json"],
    )))
    .unwrap();
    assert_eq!(part["index"], 1);
    assert_eq!(part["export_name"], "data-p1");
    assert_eq!(part["start_lba"], vol["start_lba"], "first fit inside the volume");
    // The unit itself has it, with the same extent.
    let shown = unit.show();
    let p = &shown["partitions"][0];
    assert_eq!((p["export_name"].as_str(), p["extent"]["len"].as_u64()), (Some("data-p1"), Some(256)), "{shown}");

    for (args, says) in [
        (vec!["--volume", v.as_str(), "--size", "8M"], "has room for 7340032 more bytes (7M)"),
        (vec!["--volume", "99", "--size", "1M"], "has no volume 99"),
        (vec!["--volume", v.as_str(), "--size", "0"], "larger than 0"),
    ] {
        let mut full = vec!["partition", "create", "--unit", &unit_addr];
        full.extend(args);
        let err = run_fails(&mut alloc_cmd(&station, &full));
        assert!(err.contains(says), "{full:?}: {err}");
    }
    assert_eq!(unit.show()["partitions"].as_array().unwrap().len(), 1, "refusals create nothing");
}

#[test]
fn requests_by_name_choose_or_create_that_name_and_say_which() {
    let dir = tempfile::tempdir().unwrap();
    let station = Station::start(&dir.path().join("station"), &[]);
    let mut unit = Unit::start(&dir.path().join("u1"), "127.0.33.1", station.traps, "64M", &[]);
    unit.serve_data();
    station.wait_unit(&unit.address(), "available", WAIT, |u| u["state"] == "available");
    let free_volume = |name: &str| {
        let args = ["volume", "create", "--unit", "127.0.33.1", "--size", "16M", "--name", name, "--json"];
        let made: serde_json::Value = serde_json::from_str(&run_ok(&mut alloc_cmd(&station, &args))).unwrap();
        made["volume"].as_u64().unwrap()
    };
    let db1 = free_volume("db1");

    // Asked for "appdata" while only "db1" is free: a volume named appdata is created, and the host is told so.
    let text =
        run_ok(&mut host_cli(&station, "127.0.33.100", &["request", "--size", "8M", "--name", "appdata", "--json"]));
    let a: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!((a["name"].as_str(), a["volume_source"].as_str()), (Some("appdata"), Some("created")), "{a}");
    assert_ne!(a["volume"].as_u64(), Some(db1));
    let names: Vec<String> =
        unit.show()["volumes"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap().into()).collect();
    assert!(names.contains(&"appdata".to_string()) && names.contains(&"db1".to_string()), "{names:?}");

    // "appdata" is assigned now: another request by that name cannot take it, nor create a second one (names are
    // unique on a unit); the refusal says so and what to do.
    let err = run_fails(&mut host_cli(&station, "127.0.33.104", &["request", "--size", "1M", "--name", "appdata"]));
    assert!(err.contains("already have a volume named \"appdata\"") && err.contains("another name"), "{err}");

    // Without a name, the free db1 is chosen, and the text says it was an existing volume.
    let text = run_ok(&mut host_cli(&station, "127.0.33.101", &["request", "--size", "4M"]));
    assert!(text.starts_with(&format!("{}/{db1} \"db1\"", a["unit"])), "{text}");
    assert!(text.contains(", an existing free volume\n"), "{text}");

    // A free volume with the asked name is chosen rather than created; the admin CLI and a request row say which.
    let logs = free_volume("logs");
    let args = ["request", "--size", "1M", "--name", "logs", "--host", "127.0.33.102", "--json"];
    let b: serde_json::Value = serde_json::from_str(&run_ok(&mut alloc_cmd(&station, &args))).unwrap();
    assert_eq!((b["volume"].as_u64(), &b["volume_created"]), (Some(logs), &serde_json::Value::Bool(false)), "{b}");
    let output = station_set(
        &station,
        &[
            "DVSAN-STATION-MIB::dvsanStationRequestSize.5",
            "s",
            "2M",
            "DVSAN-STATION-MIB::dvsanStationRequestName.5",
            "s",
            "scratch",
            "DVSAN-STATION-MIB::dvsanStationRequestHostAddrType.5",
            "i",
            "1",
            "DVSAN-STATION-MIB::dvsanStationRequestHostAddress.5",
            "x",
            "7F002167",
            "DVSAN-STATION-MIB::dvsanStationRequestRowStatus.5",
            "i",
            "4",
        ],
    );
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(wait_request(&station, 5), "done");
    assert_eq!(request_cell(&station, "VolumeName", 5), "scratch");
    assert_eq!(request_cell(&station, "VolumeSource", 5), "created");
}
