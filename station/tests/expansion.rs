//! The out-band promise with a real NBD client: fio (host A) keeps doing verified I/O on unit 1 while the station
//! is killed with kill -9 and restarted, and while a new unit joins the pool and a second host is allocated on it.
//! fio must finish without an error, no single I/O may stall, and the restarted station keeps A's assignment.
//!
//! Real clients on loopback connect from 127.0.0.1 (the source address of the lo route), so that is host A.

use dvsan_tests::units::*;
use dvsan_tests::*;
use std::process::Command;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(15);
/// An I/O slower than this during the run counts as a stall attributable to the station or the join.
const STALL: Duration = Duration::from_millis(500);
/// The tests here measure I/O latency: run them one at a time so they do not load each other.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn alloc(station: &Station, args: &[&str]) -> serde_json::Value {
    let mut cmd = station.cli();
    cmd.args(args).args(["--json", "--state-dir"]).arg(&station.state_dir);
    serde_json::from_str(&run_ok(&mut cmd)).unwrap()
}

fn blockd(unit: &Unit, listen: &str, log: std::path::PathBuf) -> Proc {
    let mut cmd = Command::new(workspace_bin("dvsan-blockd"));
    cmd.arg("--state-dir").arg(&unit.state_dir).args(["--listen", listen]);
    Proc::spawn_logging("dvsan-blockd", &mut cmd, log)
}

/// Verified 16k random-write fio runs, one per URI, all at once for 3 s; every one must finish without an error.
fn fio_at_once(dir: &std::path::Path, name: &str, uris: &[String]) {
    let runs: Vec<Proc> = uris
        .iter()
        .enumerate()
        .map(|(i, uri)| {
            let mut cmd = Command::new("fio");
            cmd.arg(format!("--name={name}"))
                .args(["--ioengine=nbd", "--rw=randwrite", "--bs=16k", "--iodepth=4", "--size=16M"])
                .args(["--verify=crc32c", "--do_verify=1", "--verify_state_save=0", "--time_based=1", "--runtime=3"])
                .arg(format!("--uri={uri}"));
            Proc::spawn_logging("fio", &mut cmd, dir.join(format!("fio-{name}{i}.log")))
        })
        .collect();
    for mut run in runs {
        let child = &mut run.child;
        let status = wait_until("fio to finish", Duration::from_secs(30), || child.try_wait().ok().flatten());
        let report = run.log_text();
        assert!(status.success() && report.contains("err= 0"), "fio failed:\n{report}");
    }
}

#[test]
fn fio_runs_on_while_the_station_dies_and_a_unit_joins() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    require_tool("fio", "fio");
    require_tool("nbdinfo", "libnbd-bin");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("station");
    let mut station = Station::start(&state, &[]);
    let unit1 = Unit::start(&dir.path().join("u1"), "127.0.23.1", station.traps, "128M", &[]);
    let _blockd1 = blockd(&unit1, "127.0.23.1:10809", dir.path().join("blockd1.log"));
    station.wait_unit(&unit1.address(), "available", WAIT, |u| u["state"] == "available");

    let a = alloc(&station, &["request", "--size", "32M", "--host", "127.0.0.1"]);
    let uri = a["nbd_uri"].as_str().unwrap().to_string();
    wait_until("blockd to serve host A's grant", WAIT, || {
        Command::new("nbdinfo").arg(&uri).output().ok().filter(|o| o.status.success())
    });

    // fio: 4k random writes with crc32c verification, QD8, 7 s, every I/O's latency logged.
    let lat = dir.path().join("fio");
    let mut fio_cmd = Command::new("fio");
    fio_cmd
        .args(["--name=hostA", "--ioengine=nbd", "--rw=randwrite", "--bs=4k", "--iodepth=8", "--size=32M"])
        .args([
            "--verify=crc32c",
            "--do_verify=1",
            "--verify_state_save=0",
            "--time_based=1",
            "--runtime=7",
            "--output-format=normal",
        ])
        .arg(format!("--uri={uri}"))
        .arg(format!("--write_lat_log={}", lat.display()))
        .arg("--log_avg_msec=0");
    let started = Instant::now();
    let fio = Proc::spawn_logging("fio", &mut fio_cmd, dir.path().join("fio.log"));

    // t≈1.5 s: the station dies hard; t≈2.5 s: it comes back.
    std::thread::sleep(Duration::from_millis(1500));
    station.proc.kill();
    std::thread::sleep(Duration::from_millis(1000));
    let station = Station::start(&state, &[]);
    // t≈3 s: unit 4 joins (it announces itself to the restarted station) and host B gets storage on it.
    let unit4 = Unit::start(&dir.path().join("u4"), "127.0.23.4", station.traps, "256M", &[]);
    let _blockd4 = blockd(&unit4, "127.0.23.4:10809", dir.path().join("blockd4.log"));
    station.wait_unit(&unit4.address(), "unit 4 pooled and available", WAIT, |u| u["state"] == "available");
    let b = alloc(&station, &["request", "--size", "64M", "--host", "127.0.23.200"]);
    assert!(b["nbd_uri"].as_str().unwrap().starts_with("nbd://127.0.23.4:10809/"), "B lands on the new unit: {b}");
    assert!(started.elapsed() < Duration::from_secs(7), "the join happened while fio was running");
    // Exclusive access with a real client: B's volume is refused to host A (nbdinfo connects from 127.0.0.1).
    let refused = Command::new("nbdinfo").arg(b["nbd_uri"].as_str().unwrap()).output().unwrap();
    assert!(!refused.status.success(), "B's export must be refused to A");

    let mut fio = fio;
    let child = &mut fio.child;
    let status = wait_until("fio to finish", Duration::from_secs(30), || child.try_wait().ok().flatten());
    let report = fio.log_text();
    assert!(status.success(), "fio failed:\n{report}");
    assert!(report.contains("err= 0"), "fio reported errors:\n{report}");

    // fio writes one line per I/O: "time_ms, latency_ns, direction, block size, offset[, ...]".
    let log = std::fs::read_to_string(dir.path().join("fio_lat.1.log")).unwrap();
    let latencies: Vec<(u64, u64)> = log
        .lines()
        .filter_map(|l| {
            let mut f = l.split(',').map(str::trim);
            Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
        })
        .collect();
    assert!(latencies.len() > 1000, "only {} I/Os logged", latencies.len());
    let (at, worst) = latencies.iter().max_by_key(|(_, ns)| *ns).copied().unwrap();
    assert!(
        Duration::from_nanos(worst) < STALL,
        "an I/O took {:?} at {at} ms: a stall during the station restart or the join",
        Duration::from_nanos(worst)
    );

    // The restarted station still has A's assignment, and B's.
    let listed = alloc(&station, &["assignments"]);
    let hosts: Vec<&str> =
        listed["assignments"].as_array().unwrap().iter().filter_map(|x| x["host"].as_str()).collect();
    assert!(hosts.contains(&"127.0.0.1") && hosts.contains(&"127.0.23.200"), "{listed}");
}

#[test]
fn one_host_uses_volumes_on_three_units_at_once_with_fio() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    require_tool("fio", "fio");
    let dir = tempfile::tempdir().unwrap();
    let station = Station::start(&dir.path().join("station"), &[]);
    let mut units = Vec::new();
    let mut daemons = Vec::new();
    for i in 1..=3 {
        let ip = format!("127.0.25.{i}");
        let unit = Unit::start(&dir.path().join(format!("u{i}")), &ip, station.traps, "96M", &[]);
        daemons.push(blockd(&unit, &format!("{ip}:10809"), dir.path().join(format!("blockd{i}.log"))));
        station.wait_unit(&unit.address(), "available", WAIT, |u| u["state"] == "available");
        units.push(unit);
    }
    // Each request goes to the unit with the most free space, so three equal requests land on three units.
    let uris: Vec<String> = (0..3)
        .map(|_| {
            alloc(&station, &["request", "--size", "32M", "--host", "127.0.0.1"])["nbd_uri"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let mut hosts: Vec<&str> = uris.iter().map(|u| u.trim_start_matches("nbd://").split(':').next().unwrap()).collect();
    hosts.sort_unstable();
    assert_eq!(hosts, ["127.0.25.1", "127.0.25.2", "127.0.25.3"], "{uris:?}");
    for uri in &uris {
        wait_until("blockd to serve the grant", WAIT, || {
            Command::new("nbdinfo").arg(uri).output().ok().filter(|o| o.status.success())
        });
    }
    // Three verified fio runs at once, one per unit.
    fio_at_once(dir.path(), "scale", &uris);
}

/// A host for real NBD clients: a socat relay on a unix socket whose TCP side is bound to `host`, so fio and
/// nbdinfo (which on loopback would always come from 127.0.0.1) reach blockd from that address.
struct HostRelay {
    _proc: Proc,
    socket: std::path::PathBuf,
}

impl HostRelay {
    fn start(dir: &std::path::Path, host: &str, target: &str) -> HostRelay {
        require_tool("socat", "socat");
        let socket = dir.join(format!("relay-{host}.sock"));
        let mut cmd = Command::new("socat");
        cmd.arg(format!("UNIX-LISTEN:{},fork", socket.display())).arg(format!("TCP:{target},bind={host}"));
        let proc = Proc::spawn_logging("socat", &mut cmd, dir.join(format!("socat-{host}.log")));
        wait_until("the relay socket", WAIT, || socket.exists().then_some(()));
        HostRelay { _proc: proc, socket }
    }

    /// The libnbd URI of `export` through this relay.
    fn uri(&self, export: &str) -> String {
        format!("nbd+unix:///{export}?socket={}", self.socket.display())
    }
}

#[test]
fn three_hosts_share_one_unit_each_exclusive_with_real_clients() {
    require_tool("fio", "fio");
    require_tool("nbdinfo", "libnbd-bin");
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let station = Station::start(&dir.path().join("station"), &[]);
    let unit = Unit::start(&dir.path().join("u1"), "127.0.26.1", station.traps, "128M", &[]);
    let _blockd = blockd(&unit, "127.0.26.1:10809", dir.path().join("blockd.log"));
    station.wait_unit(&unit.address(), "available", WAIT, |u| u["state"] == "available");

    let hosts = ["127.0.26.101", "127.0.26.102", "127.0.26.103"];
    let relays: Vec<HostRelay> = hosts.iter().map(|h| HostRelay::start(dir.path(), h, "127.0.26.1:10809")).collect();
    let exports: Vec<String> = hosts
        .iter()
        .map(|h| {
            let a = alloc(&station, &["request", "--size", "24M", "--host", h]);
            a["export_name"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| a["nbd_uri"].as_str().unwrap().rsplit('/').next().unwrap().to_string())
        })
        .collect();
    // Each host reaches its own export and is refused the others' (nbdinfo through the host's relay).
    for (i, relay) in relays.iter().enumerate() {
        wait_until("blockd to serve the host's grant", WAIT, || {
            Command::new("nbdinfo").arg(relay.uri(&exports[i])).output().ok().filter(|o| o.status.success())
        });
        for (j, export) in exports.iter().enumerate() {
            if i != j {
                let out = Command::new("nbdinfo").arg(relay.uri(export)).output().unwrap();
                assert!(!out.status.success(), "{} must be refused {export}", hosts[i]);
            }
        }
    }
    // All three do verified I/O at once.
    let uris: Vec<String> = relays.iter().zip(&exports).map(|(r, e)| r.uri(e)).collect();
    fio_at_once(dir.path(), "share", &uris);
}
