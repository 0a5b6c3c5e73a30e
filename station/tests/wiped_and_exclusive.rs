//! Wiped volumes and exclusive grants with real peers: a station, a unit agent and a real blockd on loopback,
//! NBD data checked with qemu-img/qemu-io and the dvsan-nbd client from the hosts' own addresses.
//!
//! - a volume host A wrote and released reads as zeroes for host B, who gets the same volume; so does a fresh
//!   volume made over the blocks of a destroyed one;
//! - a volume the unit has a grant for that the station did not make (agent CLI) is shown as a foreign grant,
//!   never allocated, and refused for assignment.

use dvsan_tests::nbd::run_tool_ok;
use dvsan_tests::units::*;
use dvsan_tests::*;
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);
const MIB: u64 = 1 << 20;

fn station_cli(station: &Station, args: &[&str]) -> Command {
    let mut cmd = station.cli();
    cmd.args(args).arg("--state-dir").arg(&station.state_dir);
    cmd
}

fn request(station: &Station, size: &str, host: &str) -> serde_json::Value {
    let text = run_ok(&mut station_cli(station, &["request", "--json", "--size", size, "--host", host]));
    serde_json::from_str(&text).unwrap()
}

fn start_blockd(unit: &Unit, ip: &str, log: &std::path::Path) -> Proc {
    let mut cmd = Command::new(workspace_bin("dvsan-blockd"));
    cmd.arg("--state-dir").arg(&unit.state_dir).args(["--listen", &format!("{ip}:10809")]);
    Proc::spawn_logging("dvsan-blockd", &mut cmd, log.to_path_buf())
}

/// The pool's volume `index` of the unit at `address`, once `check` holds for it.
fn wait_volume(
    station: &Station,
    address: &str,
    index: u64,
    what: &str,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let unit = station.wait_unit(address, what, WAIT, |u| {
        u["volumes"].as_array().unwrap().iter().any(|v| v["index"].as_u64() == Some(index) && check(v))
    });
    unit["volumes"].as_array().unwrap().iter().find(|v| v["index"].as_u64() == Some(index)).unwrap().clone()
}

/// Writes `byte` over the first and the last MiB of `export` from host `from` with the dvsan-nbd client (retried
/// until blockd has noticed the grant).
fn write_secret(address: &str, export: &str, from: &str, size: u64, byte: u8) {
    let options = dvsan_nbd::ConnectOptions {
        local_addr: Some(from.parse().unwrap()),
        timeout: Duration::from_secs(5),
        structured_replies: true,
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let addr: std::net::SocketAddr = address.parse().unwrap();
    let mut client = wait_until("the host's export", WAIT, || {
        runtime.block_on(dvsan_nbd::NbdClient::connect(addr, export, &options)).ok()
    });
    runtime.block_on(async {
        let secret = vec![byte; MIB as usize];
        client.write(0, &secret, false).await.unwrap();
        client.write(size - MIB, &secret, true).await.unwrap();
        client.flush().await.unwrap();
        client.disconnect().await.unwrap();
    });
}

/// `qemu-img compare` of the NBD export with an image of zeroes, from 127.0.0.1 (retried until blockd serves
/// the export to this host): the export must read as zeroes only.
fn assert_reads_zeroes(uri: &str, size: u64, dir: &std::path::Path) {
    let zero = dir.join(format!("zero-{size}.img"));
    std::fs::File::create(&zero).unwrap().set_len(size).unwrap();
    eventually(WAIT, || Command::new("nbdinfo").arg(uri).output().is_ok_and(|o| o.status.success()));
    let out =
        run_tool_ok("qemu-img", "qemu-utils", &["compare", "-f", "raw", "-F", "raw", zero.to_str().unwrap(), uri], 60);
    assert!(out.contains("Images are identical"), "{out}");
}

#[test]
fn a_released_or_destroyed_volume_reaches_the_next_host_as_zeroes() {
    require_tool("qemu-img", "qemu-utils");
    require_tool("qemu-io", "qemu-utils");
    require_tool("nbdinfo", "libnbd-bin");
    let dir = tempfile::tempdir().unwrap();
    let station = Station::start(&dir.path().join("station"), &[]);
    let unit = Unit::start(&dir.path().join("u1"), "127.0.46.1", station.traps, "64M", &[]);
    let _blockd = start_blockd(&unit, "127.0.46.1", &dir.path().join("blockd.log"));
    let address = unit.address();
    station.wait_unit(&address, "available", WAIT, |u| u["state"] == "available");

    // Host A gets a new 4 MiB volume and writes a secret into it.
    let a = request(&station, "4M", "127.0.46.100");
    let volume = a["volume"].as_u64().unwrap();
    let export = a["export_name"].as_str().unwrap().to_string();
    write_secret("127.0.46.1:10809", &export, "127.0.46.100", 4 * MIB, 0x5A);

    // A releases it: the unit wipes it; the pool shows it clearing, then free again.
    run_ok(&mut station_cli(&station, &["unassign", "--unit", "127.0.46.1", "--volume", &volume.to_string()]));
    wait_volume(&station, &address, volume, "the released volume cleared", |v| {
        v["clearing"].is_null() && v["state"] == "available"
    });
    let progress = unit.snmpget(&[&format!("DVSAN-MIB::dvsanVolumeClearProgress.{volume}")]).unwrap();
    assert!(progress.contains(": 100 percent"), "{progress}");

    // Host B (this host, 127.0.0.1, for the NBD tools) is given the same volume and reads zeroes only.
    let b = request(&station, "4M", "127.0.0.1");
    assert_eq!((b["volume"].as_u64(), b["volume_created"].as_bool()), (Some(volume), Some(false)), "{b}");
    let uri = b["nbd_uri"].as_str().unwrap().to_string();
    assert_reads_zeroes(&uri, 4 * MIB, dir.path());

    // B releases it too. Then, on the unit alone: this host is granted the volume with the agent CLI, writes a
    // secret, the grant is revoked and the volume destroyed; a fresh volume made over the same blocks reads as
    // zeroes too (the destroyed volume's blocks were cleared before they could be allocated again).
    run_ok(&mut station_cli(&station, &["unassign", "--unit", "127.0.46.1", "--volume", &volume.to_string()]));
    wait_volume(&station, &address, volume, "cleared again", |v| v["clearing"].is_null());
    unit.admin(&["access", "grant", "--volume", &volume.to_string(), "--host", "127.0.0.1"]);
    eventually(WAIT, || Command::new("nbdinfo").arg(&uri).output().is_ok_and(|o| o.status.success()));
    run_tool_ok("qemu-io", "qemu-utils", &["-f", "raw", "-c", "write -P 0x77 0 4M", &uri], 60);
    let start = b["start_lba"].as_u64().unwrap();
    let grant = unit.show()["grants"][0]["index"].as_u64().unwrap();
    unit.admin(&["access", "revoke", "--index", &grant.to_string()]);
    unit.admin(&["volume", "destroy", "--index", &volume.to_string()]);
    let created = wait_until("a fresh volume over the destroyed one's blocks", WAIT, || {
        Command::new(workspace_bin("dvsan-agent"))
            .args(["volume", "create", "--size", "4M", "--name", "fresh", "--start-lba", &start.to_string()])
            .arg("--state-dir")
            .arg(&unit.state_dir)
            .output()
            .ok()
            .filter(|o| o.status.success())
    });
    assert!(String::from_utf8_lossy(&created.stdout).contains("fresh"));
    let fresh = unit.show()["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "fresh").unwrap().clone();
    assert_eq!(fresh["extent"]["start"].as_u64(), Some(start));
    unit.admin(&["access", "grant", "--volume", &fresh["index"].to_string(), "--host", "127.0.0.1"]);
    assert_reads_zeroes("nbd://127.0.46.1:10809/fresh", 4 * MIB, dir.path());
}

#[test]
fn a_volume_granted_with_the_agent_cli_is_never_given_to_another_host() {
    let dir = tempfile::tempdir().unwrap();
    let station = Station::start(&dir.path().join("station"), &[]);
    let unit = Unit::start(&dir.path().join("u1"), "127.0.47.1", station.traps, "64M", &[]);
    let _blockd = start_blockd(&unit, "127.0.47.1", &dir.path().join("blockd.log"));
    let address = unit.address();
    station.wait_unit(&address, "available", WAIT, |u| u["state"] == "available");

    // A free 8 MiB volume, then a grant the station did not make, by the agent's CLI on the unit.
    unit.admin(&["volume", "create", "--size", "8M", "--name", "shared-by-hand"]);
    unit.admin(&["access", "grant", "--volume", "1", "--host", "127.0.47.50"]);
    let v = wait_volume(&station, &address, 1, "the foreign grant", |v| {
        v["foreign_grants"].as_array().is_some_and(|h| h.len() == 1)
    });
    assert_eq!(v["foreign_grants"][0], "127.0.47.50");
    let pool = run_ok(&mut station_cli(&station, &["pool"]));
    assert!(pool.contains("foreign grant (127.0.47.50)"), "{pool}");

    // A request that volume 1 would fit best gets a new volume instead; an assignment of volume 1 is refused.
    let b = request(&station, "8M", "127.0.47.60");
    assert_ne!(b["volume"].as_u64(), Some(1), "{b}");
    assert_eq!(b["volume_created"], true);
    let err = run_fails(&mut station_cli(
        &station,
        &["assign", "--unit", "127.0.47.1", "--volume", "1", "--host", "127.0.47.60"],
    ));
    assert!(err.contains("has a grant the station did not make, for 127.0.47.50"), "{err}");
    let grants: Vec<(u64, String)> = unit.show()["grants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["volume"].as_u64().unwrap(), g["host"].as_str().unwrap().to_string()))
        .collect();
    assert!(!grants.contains(&(1, "127.0.47.60".to_string())), "{grants:?}");

    // Reconciliation reports it and leaves it alone.
    let reconcile: serde_json::Value =
        serde_json::from_str(&run_ok(&mut station_cli(&station, &["reconcile"]))).unwrap();
    assert_eq!(reconcile["foreign_grants"], 1, "{reconcile}");
    assert!(unit.show()["grants"].as_array().unwrap().iter().any(|g| g["host"] == "127.0.47.50"));
}
