//! A host crash (`kill -9` of the front) in the middle of writes to a two-replica volume: the write-intent log
//! holds the regions that may differ, and the restarted front makes the replicas identical there before it
//! serves again. A write that reached only one replica is simulated by changing that replica's medium in a
//! region the log holds while no front runs.

use dvsan_layout::{AccessMode, Volume};
use dvsan_tests::front::{volume_bytes, HostFront};
use dvsan_tests::nbd::{Blockd, Unit, BLOCK};
use dvsan_tests::{require_tool, wait_for, Proc};
use std::io::{Seek, SeekFrom, Write};
use std::process::Command;
use std::time::Duration;

const HOST: &str = "127.0.0.33";
const REGION: u64 = 64 * 1024;

fn replica(ip: &str) -> (Unit, Volume, Blockd) {
    let unit = Unit::new(&[48 << 20]);
    let vol = unit.volume("vol", 8192);
    unit.grant(vol.index, None, HOST, AccessMode::ReadWrite);
    let blockd = Blockd::start_with(&unit, &["--listen", &format!("{ip}:0")]);
    (unit, vol, blockd)
}

/// The regions marked in a bitmap file (magic, region size, volume size, then one bit per region).
fn marked_regions(path: &std::path::Path) -> Vec<u64> {
    let Ok(data) = std::fs::read(path) else { return Vec::new() };
    assert!(data.len() > 24 && &data[..8] == b"DVSANDB1", "not a bitmap file: {}", path.display());
    let bits = &data[24..];
    (0..bits.len() as u64 * 8).filter(|r| bits[(*r / 8) as usize] & (1 << (r % 8)) != 0).collect()
}

#[test]
fn after_a_host_crash_the_replicas_are_made_identical_before_io_resumes() {
    require_tool("fio", "fio");
    let dir = tempfile::tempdir().unwrap();
    let (unit_a, vol_a, blockd_a) = replica("127.0.0.41");
    let (unit_b, vol_b, blockd_b) = replica("127.0.0.42");
    let replicas = [blockd_a.uri(&vol_a.export_name), blockd_b.uri(&vol_b.export_name)];
    let args = ["--region-size", "64K"];
    let mut front = HostFront::start(dir.path(), HOST, "vol", &format!("{HOST}:0"), &replicas, &args);
    let intent = front.state_dir.join("vol.intent");

    // fio itself, not under `timeout`: killing a `timeout` leaves its fio behind, spinning once the front is gone.
    // The test kills it below (or its Proc guard on a panic).
    let mut fio = Command::new("fio");
    fio.args(["--name=crash", "--ioengine=nbd", &format!("--uri={}", front.uri())]);
    fio.args(["--rw=randwrite", "--bs=4k", "--iodepth=8", "--size=8M", "--rate_iops=500"]);
    let mut fio = Proc::spawn("fio", fio, dir.path());
    let marked = wait_for(Duration::from_secs(20), || {
        let m = marked_regions(&intent);
        (!m.is_empty()).then_some(m)
    });
    assert!(marked.is_some(), "the write-intent log holds the regions being written:\n{}", front.proc.log_text());
    front.proc.kill();
    fio.kill();
    let marked = marked_regions(&intent);
    assert!(!marked.is_empty(), "the crash leaves the marks behind");

    // A write that reached replica B only: B differs from A in a marked region.
    let region = marked[0];
    let mut medium = std::fs::OpenOptions::new().write(true).open(&unit_b.media[0]).unwrap();
    medium.seek(SeekFrom::Start(vol_b.extent.start.0 * u64::from(BLOCK) + region * REGION)).unwrap();
    medium.write_all(&vec![0xee; REGION as usize]).unwrap();
    medium.sync_all().unwrap();
    assert!(volume_bytes(&unit_a, &vol_a) != volume_bytes(&unit_b, &vol_b));

    // The front starts again: the replicas are identical by the time it serves.
    let front = HostFront::start(dir.path(), HOST, "vol", &format!("{HOST}:0"), &replicas, &args);
    assert!(volume_bytes(&unit_a, &vol_a) == volume_bytes(&unit_b, &vol_b), "{}", front.proc.log_text());
    assert!(front.proc.log_text().contains("write-intent log holds regions"), "{}", front.proc.log_text());
    assert_eq!(front.states(), ["in-sync", "in-sync"]);
}

#[test]
fn a_clean_stop_leaves_nothing_to_recover() {
    let dir = tempfile::tempdir().unwrap();
    let (_unit_a, vol_a, blockd_a) = replica("127.0.0.45");
    let (_unit_b, vol_b, blockd_b) = replica("127.0.0.46");
    let replicas = [blockd_a.uri(&vol_a.export_name), blockd_b.uri(&vol_b.export_name)];
    let mut front =
        HostFront::start(dir.path(), HOST, "vol", &format!("{HOST}:0"), &replicas, &["--region-size", "64K"]);
    let intent = front.state_dir.join("vol.intent");
    let out = dvsan_tests::nbd::run_tool_ok(
        "qemu-io",
        "qemu-utils",
        &["-f", "raw", "-c", "write -P 0x61 0 4M", "-c", "write -P 0x62 8M 4M", &front.uri()],
        60,
    );
    assert!(!out.contains("fail"), "{out}");
    front.proc.terminate();
    assert!(marked_regions(&intent).is_empty(), "a clean stop empties the write-intent log");
    let front = HostFront::start(dir.path(), HOST, "vol", &format!("{HOST}:0"), &replicas, &["--region-size", "64K"]);
    assert!(!front.proc.log_text().contains("write-intent log holds regions"), "{}", front.proc.log_text());
}
