//! Durability across a crash, TRIM and WRITE_ZEROES semantics, traffic counters and the heartbeat lifecycle.

use dvsan_layout::{AccessMode, DataServiceState};
use dvsan_nbd::{NbdClient, ZeroFlags};
use dvsan_tests::nbd::*;
use dvsan_tests::*;
use std::time::Duration;

const MIB: u64 = 1024 * 1024;

#[tokio::test]
async fn flushed_and_fua_writes_survive_kill_9() {
    let unit = Unit::new(&[MIB, MIB]);
    let vol = unit.volume("vol", 512);
    unit.grant(vol.index, None, "127.0.0.7", AccessMode::ReadWrite);
    let blockd = Blockd::start(&unit);
    let mut c = NbdClient::connect(blockd.addr, "vol", &as_host("127.0.0.7")).await.unwrap();
    let a = vec![0xa1u8; 64 * 1024];
    let b = vec![0xb2u8; 16 * 1024];
    c.write(4096, &a, false).await.unwrap();
    c.flush().await.unwrap();
    // Across the boundary between the two media, made durable by FUA alone.
    c.write(MIB - 8192, &b, true).await.unwrap();
    blockd.kill9();

    let blockd = Blockd::start(&unit);
    let mut c = NbdClient::connect(blockd.addr, "vol", &as_host("127.0.0.7")).await.unwrap();
    let mut back = vec![0u8; a.len()];
    c.read(4096, &mut back).await.unwrap();
    assert!(back == a, "flushed write lost");
    let mut back = vec![0u8; b.len()];
    c.read(MIB - 8192, &mut back).await.unwrap();
    assert!(back == b, "FUA write lost");
}

#[tokio::test]
async fn trim_and_write_zeroes_read_back_zeroes() {
    let unit = Unit::new(&[MIB, MIB]);
    let vol = unit.volume("vol", 512);
    unit.grant(vol.index, None, "127.0.0.7", AccessMode::ReadWrite);
    let blockd = Blockd::start(&unit);
    let mut c = NbdClient::connect(blockd.addr, "vol", &as_host("127.0.0.7")).await.unwrap();
    let start = MIB - 128 * 1024;
    c.write(start, &vec![0xffu8; 256 * 1024], false).await.unwrap();
    let allocated_before = std::os::unix::fs::MetadataExt::blocks(&std::fs::metadata(&unit.media[0]).unwrap());

    // TRIM across the media boundary, then a write-zeroes that may punch, then one that must not.
    c.trim(start, 128 * 1024, false).await.unwrap();
    c.write_zeroes(start + 128 * 1024, 64 * 1024, ZeroFlags { fua: true, no_hole: false }).await.unwrap();
    c.write_zeroes(start + 192 * 1024, 32 * 1024, ZeroFlags { fua: false, no_hole: true }).await.unwrap();
    let mut back = vec![1u8; 256 * 1024];
    c.read(start, &mut back).await.unwrap();
    assert!(back[..224 * 1024].iter().all(|b| *b == 0), "trimmed/zeroed range must read back zeroes");
    assert!(back[224 * 1024..].iter().all(|b| *b == 0xff), "bytes after the zeroed range untouched");
    // Odd sizes are fine too (byte-granular block size).
    c.write_zeroes(start + 224 * 1024 + 1, 3, ZeroFlags::default()).await.unwrap();
    let mut five = [9u8; 5];
    c.read(start + 224 * 1024, &mut five).await.unwrap();
    assert_eq!(five, [0xff, 0, 0, 0, 0xff]);
    let allocated_after = std::os::unix::fs::MetadataExt::blocks(&std::fs::metadata(&unit.media[0]).unwrap());
    assert!(allocated_after < allocated_before, "TRIM should punch a hole ({allocated_before} -> {allocated_after})");
}

#[tokio::test]
async fn traffic_counters_are_saved_per_export_and_host_and_survive_restart() {
    let unit = Unit::new(&[MIB]);
    let vol = unit.volume("vol", 128);
    unit.grant(vol.index, None, "127.0.0.7", AccessMode::ReadWrite);
    unit.grant(vol.index, None, "127.0.0.8", AccessMode::ReadOnly);
    let blockd = Blockd::start(&unit);
    let mut c7 = NbdClient::connect(blockd.addr, "vol", &as_host("127.0.0.7")).await.unwrap();
    let mut c8 = NbdClient::connect(blockd.addr, "vol", &as_host("127.0.0.8")).await.unwrap();
    let mut buf = vec![0u8; 4096];
    for i in 0..3 {
        c7.read(i * 4096, &mut buf).await.unwrap();
    }
    c7.write(0, &[1u8; 8192], false).await.unwrap();
    c7.write(8192, &[2u8; 8192], true).await.unwrap();
    c7.trim(16384, 4096, false).await.unwrap();
    c8.read(0, &mut buf[..512]).await.unwrap();
    // A refused request is not traffic.
    assert!(c8.write(0, &[0u8; 512], false).await.is_err());

    let store = unit.store();
    let expected = |reads7: u64| {
        move |t: &[dvsan_layout::TrafficRecord]| {
            let r7 = t.iter().find(|r| r.host == ip("127.0.0.7") && r.export_name == "vol");
            let r8 = t.iter().find(|r| r.host == ip("127.0.0.8") && r.export_name == "vol");
            matches!((r7, r8), (Some(a), Some(b))
                if (a.reads, a.writes, a.bytes_read, a.bytes_written) == (reads7, 3, reads7 * 4096, 16384)
                && (b.reads, b.writes, b.bytes_read, b.bytes_written) == (1, 0, 512, 0))
        }
    };
    assert!(
        eventually(Duration::from_secs(4), || expected(3)(&store.traffic().unwrap())),
        "traffic not saved as expected: {:?}",
        store.traffic().unwrap()
    );
    let total_latency: u64 = store.traffic().unwrap().iter().map(|r| r.latency_us).sum();
    assert!(total_latency > 0);

    // A clean stop (with a connection still open) keeps the totals, writes Stopped and exits 0; the next run
    // continues from them.
    drop(c7);
    let stopping = std::time::Instant::now();
    let status = blockd.terminate();
    assert!(status.success(), "exit status {status}");
    assert!(stopping.elapsed() < Duration::from_secs(5), "shutdown took {:?}", stopping.elapsed());
    assert!(c8.read(0, &mut buf[..512]).await.is_err(), "the open connection was closed");
    let ds = store.data_service().unwrap().unwrap();
    assert_eq!(ds.state, DataServiceState::Stopped);
    let blockd = Blockd::start(&unit);
    let ds = store.data_service().unwrap().unwrap();
    assert_eq!((ds.state, ds.listen), (DataServiceState::Serving, blockd.addr));
    let mut c7 = NbdClient::connect(blockd.addr, "vol", &as_host("127.0.0.7")).await.unwrap();
    c7.read(0, &mut buf).await.unwrap();
    assert!(
        eventually(Duration::from_secs(4), || expected(4)(&store.traffic().unwrap())),
        "counters did not continue: {:?}",
        store.traffic().unwrap()
    );
    // The heartbeat keeps moving while serving.
    let first = store.data_service().unwrap().unwrap().heartbeat_ms;
    assert!(eventually(Duration::from_secs(4), || store.data_service().unwrap().unwrap().heartbeat_ms > first));
}

#[test]
fn listen_takes_a_host_name() {
    let unit = Unit::new(&[MIB]);
    let blockd = Blockd::start_with(&unit, &["--listen", "localhost:0"]);
    assert!(blockd.addr.ip().is_loopback() && blockd.addr.port() != 0, "{}", blockd.addr);
    drop(blockd);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dvsan-blockd"))
        .arg("--state-dir")
        .arg(&unit.state)
        .args(["--listen", "blockd.invalid:10809"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--listen") && err.contains("\"blockd.invalid\" does not resolve"), "{err}");
}

#[test]
fn missing_unit_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dvsan-blockd"))
        .arg("--state-dir")
        .arg(dir.path())
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("start dvsan-agent with this state dir first"), "{err}");
    assert!(!dir.path().join(dvsan_layout::STORE_FILE).exists(), "blockd must not create a unit store");
}
