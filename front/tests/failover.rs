//! Failures the host front hides: a replica's blockd killed (kill -9) under fio with two replicas (no I/O
//! error, the replica marked out of sync with its missed regions in the dirty bitmap), restarted (its dirty
//! regions resynced online while fio writes again; both replicas then byte-identical on their media); and a
//! single replica's blockd killed and restarted within the reconnect window (requests in flight re-sent, no
//! error).

use dvsan_layout::{AccessMode, Volume};
use dvsan_tests::front::{volume_bytes, HostFront};
use dvsan_tests::nbd::{run_tool, Blockd, Unit};
use dvsan_tests::{describe, require_tool, wait_for};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const HOST: &str = "127.0.0.32";
const VOL_BLOCKS: u64 = 8192; // 32 MiB

fn replica(ip: &str) -> (Unit, Volume, Blockd) {
    let unit = Unit::new(&[48 << 20]);
    let vol = unit.volume("vol", VOL_BLOCKS);
    unit.grant(vol.index, None, HOST, AccessMode::ReadWrite);
    let blockd = Blockd::start_with(&unit, &["--listen", &format!("{ip}:0")]);
    (unit, vol, blockd)
}

/// fio through the front, rate-limited so it runs for a few seconds: random 4k writes over 16 MiB, then verify.
fn start_fio(uri: &str, dir: &std::path::Path, name: &str, offset: &str) -> Child {
    require_tool("fio", "fio");
    Command::new("timeout")
        .args(["120", "fio", &format!("--name={name}"), "--ioengine=nbd", &format!("--uri={uri}")])
        .args(["--rw=randwrite", "--bs=4k", "--iodepth=8", "--size=8M", &format!("--offset={offset}")])
        .args(["--rate_iops=1000", "--verify=crc32c", "--do_verify=1", "--verify_fatal=1"])
        .stdout(std::fs::File::create(dir.join(format!("{name}.out"))).unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish_fio(child: Child, dir: &std::path::Path, name: &str) {
    let out = child.wait_with_output().unwrap();
    let text = std::fs::read_to_string(dir.join(format!("{name}.out"))).unwrap_or_default();
    assert!(out.status.success(), "fio {name} failed:\n{}\n{text}", describe(&out));
    assert!(text.contains("err= 0"), "fio {name} reported errors:\n{text}");
}

/// Wait until some byte of the volume on `unit` is not zero (fio has started writing).
fn wait_written(unit: &Unit, vol: &Volume) {
    let written = wait_for(Duration::from_secs(20), || volume_bytes(unit, vol).iter().any(|b| *b != 0).then_some(()));
    assert!(written.is_some(), "fio wrote nothing within 20 s");
}

#[test]
fn a_killed_replica_costs_no_io_error_and_is_resynced_when_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let (unit_a, vol_a, blockd_a) = replica("127.0.0.25");
    let (unit_b, vol_b, _blockd_b) = replica("127.0.0.26");
    let addr_a = blockd_a.addr;
    let replicas = [blockd_a.uri(&vol_a.export_name), _blockd_b.uri(&vol_b.export_name)];
    let front = HostFront::start(
        dir.path(),
        HOST,
        "vol",
        &format!("{HOST}:0"),
        &replicas,
        &["--replica-timeout", "1s", "--region-size", "256K"],
    );
    let uri = front.uri();

    let fio = start_fio(&uri, dir.path(), "first", "0");
    wait_written(&unit_b, &vol_b);
    blockd_a.kill9();
    finish_fio(fio, dir.path(), "first");
    assert_eq!(front.states(), ["out-of-sync", "in-sync"], "{}", front.proc.log_text());
    let status = front.status().unwrap();
    assert!(status["replicas"][0]["dirty_regions"].as_u64().unwrap() > 0, "{status}");
    let bitmap = front.state_dir.join(format!("vol.{}-vol.dirty", addr_a.to_string().replace(':', "-")));
    assert!(bitmap.exists(), "the dirty bitmap is on disk: {}", bitmap.display());

    // The unit comes back: only its dirty regions are copied, while fio writes the same range again and verifies.
    let fio = start_fio(&uri, dir.path(), "second", "0");
    let _blockd_a = Blockd::start_with(&unit_a, &["--listen", &addr_a.to_string()]);
    front.wait_states(&["in-sync", "in-sync"], Duration::from_secs(60));
    finish_fio(fio, dir.path(), "second");
    assert!(!bitmap.exists(), "a clean bitmap leaves no file");
    let resynced = front.status().unwrap()["replicas"][0]["resynced_bytes"].as_u64().unwrap();
    assert!(resynced > 0 && resynced < VOL_BLOCKS * 4096, "only dirty regions copied: {resynced} bytes");
    assert!(volume_bytes(&unit_a, &vol_a) == volume_bytes(&unit_b, &vol_b), "the replicas are byte-identical");
}

#[test]
fn a_single_replica_restarted_within_the_window_costs_no_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let (unit, vol, blockd) = replica("127.0.0.27");
    let addr = blockd.addr;
    let front = HostFront::start(
        dir.path(),
        HOST,
        "vol",
        &format!("{HOST}:0"),
        &[blockd.uri(&vol.export_name)],
        &["--replica-timeout", "1s", "--reconnect-window", "30s"],
    );
    let fio = start_fio(&front.uri(), dir.path(), "single", "0");
    wait_written(&unit, &vol);
    blockd.kill9();
    let _blockd = Blockd::start_with(&unit, &["--listen", &addr.to_string()]);
    finish_fio(fio, dir.path(), "single");
    assert_eq!(front.states(), ["in-sync"]);
    let log = front.proc.log_text();
    assert!(log.contains("replica connection back"), "the front reconnected:\n{log}");
    // And a read through the front still answers.
    let out = run_tool("nbdinfo", "libnbd-bin", &["--size", &front.uri()], 30);
    assert!(out.status.success(), "{}", describe(&out));
}

#[test]
fn a_replica_that_stops_answering_is_dropped_after_the_timeout_and_resynced_when_it_answers_again() {
    let dir = tempfile::tempdir().unwrap();
    let (unit_a, vol_a, blockd_a) = replica("127.0.0.28");
    let (unit_b, vol_b, blockd_b) = replica("127.0.0.29");
    let replicas = [blockd_a.uri(&vol_a.export_name), blockd_b.uri(&vol_b.export_name)];
    let front = HostFront::start(
        dir.path(),
        HOST,
        "vol",
        &format!("{HOST}:0"),
        &replicas,
        &["--replica-timeout", "1s", "--region-size", "64K"],
    );
    let fio = start_fio(&front.uri(), dir.path(), "stopped", "0");
    wait_written(&unit_b, &vol_b);
    let pid = nix::unistd::Pid::from_raw(blockd_a.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    finish_fio(fio, dir.path(), "stopped");
    assert_eq!(front.states(), ["out-of-sync", "in-sync"], "{}", front.proc.log_text());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    front.wait_states(&["in-sync", "in-sync"], Duration::from_secs(60));
    assert!(volume_bytes(&unit_a, &vol_a) == volume_bytes(&unit_b, &vol_b), "the replicas are byte-identical");
}

#[test]
fn a_restarted_front_still_knows_what_to_resync() {
    let dir = tempfile::tempdir().unwrap();
    let (unit_a, vol_a, blockd_a) = replica("127.0.0.30");
    let (unit_b, vol_b, blockd_b) = replica("127.0.0.40");
    let addr_a = blockd_a.addr;
    let replicas = [blockd_a.uri(&vol_a.export_name), blockd_b.uri(&vol_b.export_name)];
    let args = ["--replica-timeout", "1s", "--region-size", "128K"];
    let mut front = HostFront::start(dir.path(), HOST, "vol", &format!("{HOST}:0"), &replicas, &args);
    blockd_a.kill9();
    let fio = start_fio(&front.uri(), dir.path(), "before", "4M");
    finish_fio(fio, dir.path(), "before");
    assert_eq!(front.states(), ["out-of-sync", "in-sync"]);
    let dirty = front.status().unwrap()["replicas"][0]["dirty_regions"].as_u64().unwrap();
    assert!(dirty > 0);

    // The host dies; its front starts again while replica A is still away: A is known to be out of sync, with
    // the same dirty regions, and the volume is served from B.
    front.proc.kill();
    let listen = front.listen.clone();
    let front = HostFront::start(dir.path(), HOST, "vol", &listen, &replicas, &args);
    assert_eq!(front.states(), ["out-of-sync", "in-sync"], "{}", front.proc.log_text());
    assert_eq!(front.status().unwrap()["replicas"][0]["dirty_regions"].as_u64(), Some(dirty));
    let out = run_tool("qemu-io", "qemu-utils", &["-f", "raw", "-c", "write -P 0x77 0 64k", &front.uri()], 60);
    assert!(out.status.success(), "{}", describe(&out));

    let _blockd_a = Blockd::start_with(&unit_a, &["--listen", &addr_a.to_string()]);
    front.wait_states(&["in-sync", "in-sync"], Duration::from_secs(60));
    assert!(volume_bytes(&unit_a, &vol_a) == volume_bytes(&unit_b, &vol_b), "the replicas are byte-identical");
}

#[test]
fn a_new_replica_gets_the_whole_volume_online() {
    let dir = tempfile::tempdir().unwrap();
    let (unit_a, vol_a, blockd_a) = replica("127.0.0.43");
    let (unit_b, vol_b, blockd_b) = replica("127.0.0.44");
    let (uri_a, uri_b) = (blockd_a.uri(&vol_a.export_name), blockd_b.uri(&vol_b.export_name));
    let mut alone = HostFront::start(dir.path(), HOST, "vol", &format!("{HOST}:0"), std::slice::from_ref(&uri_a), &[]);
    let qemu_io = |uri: &str, cmd: &str| {
        let out = run_tool("qemu-io", "qemu-utils", &["-f", "raw", "-c", cmd, uri], 60);
        assert!(out.status.success() && !dvsan_tests::stdout(&out).contains("fail"), "{}", describe(&out));
    };
    qemu_io(&alone.uri(), "write -P 0x21 0 32M");
    alone.proc.kill();

    // B joins as a new replica: the whole volume is copied to it while a client writes.
    let args = ["--new-replica", &uri_b, "--region-size", "256K"];
    let front = HostFront::start(dir.path(), HOST, "vol", &format!("{HOST}:0"), &[uri_a], &args);
    qemu_io(&front.uri(), "write -P 0x55 1M 64k");
    front.wait_states(&["in-sync", "in-sync"], Duration::from_secs(60));
    let status = front.status().unwrap();
    assert_eq!(status["replicas"][1]["resynced_bytes"].as_u64(), Some(VOL_BLOCKS * 4096), "{status}");
    let a = volume_bytes(&unit_a, &vol_a);
    assert!(a[(1 << 20)..(1 << 20) + 65536].iter().all(|b| *b == 0x55) && a[0] == 0x21);
    assert!(a == volume_bytes(&unit_b, &vol_b), "the new replica holds the volume");
}

#[test]
fn past_the_reconnect_window_the_client_gets_an_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let (_unit, vol, blockd) = replica("127.0.0.47");
    let front = HostFront::start(
        dir.path(),
        HOST,
        "vol",
        &format!("{HOST}:0"),
        &[blockd.uri(&vol.export_name)],
        &["--replica-timeout", "1s", "--reconnect-window", "2s"],
    );
    blockd.kill9();
    let started = std::time::Instant::now();
    let out = run_tool("qemu-io", "qemu-utils", &["-f", "raw", "-c", "write -P 0x1 0 64k", &front.uri()], 60);
    let text = format!("{}{}", dvsan_tests::stdout(&out), dvsan_tests::stderr(&out));
    assert!(text.contains("Input/output error"), "the write fails with EIO:\n{}", describe(&out));
    assert!(started.elapsed() < Duration::from_secs(30), "within the window, not qemu-io's time limit");
    assert!(front.proc.log_text().contains("unreachable for the reconnect window"), "{}", front.proc.log_text());
}
