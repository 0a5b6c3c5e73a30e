//! Access control and live layout changes, driven with dvsan-nbd's client bound to chosen loopback addresses so
//! each test can act as several hosts.

use dvsan_layout::{AccessMode, GrantIndex};
use dvsan_nbd::constants::*;
use dvsan_nbd::{ClientError, ClientHandshake, Errno, NbdClient, ZeroFlags};
use dvsan_tests::nbd::*;
use std::time::{Duration, Instant};

const MIB: u64 = 1024 * 1024;

fn names(list: &[dvsan_nbd::ExportListing]) -> Vec<&str> {
    list.iter().map(|l| l.name.as_str()).collect()
}

#[tokio::test]
async fn grants_decide_what_each_host_sees_and_may_use() {
    let unit = Unit::new(&[4 * MIB]);
    let vol = unit.volume("vol", 512);
    let ro = unit.volume("ro", 128);
    let part = unit.partition(vol.index, 64);
    // Host .8 writes a partition of the volume host .7 writes: both grants must be shared (a read-write grant is
    // exclusive otherwise); shared grants are served like read-write ones.
    unit.grant(vol.index, None, "127.0.0.7", AccessMode::ReadWriteShared);
    unit.grant(ro.index, None, "127.0.0.7", AccessMode::ReadOnly);
    unit.grant(vol.index, Some(part.index), "127.0.0.8", AccessMode::ReadWriteShared);
    let blockd = Blockd::start(&unit);

    // 127.0.0.7 sees its two exports; 127.0.0.8 only the partition; 127.0.0.9 nothing.
    let mut hs = ClientHandshake::connect(blockd.addr, &as_host("127.0.0.7")).await.unwrap();
    assert_eq!(names(&hs.list().await.unwrap()), vec!["vol", "ro"]);
    let info = hs.info("vol").await.unwrap();
    assert_eq!(info.size, 512 * 4096);
    assert!(!info.flags.read_only() && info.flags.has(FLAG_CAN_MULTI_CONN | FLAG_SEND_FLUSH | FLAG_SEND_FUA));
    let bs = info.block_size.expect("block size info");
    assert_eq!((bs.minimum, bs.preferred, bs.maximum), (1, 4096, 32 * 1024 * 1024));
    assert!(info.description.unwrap_or_default().contains("volume"));
    hs.abort().await.unwrap();
    let mut hs = ClientHandshake::connect(blockd.addr, &as_host("127.0.0.8")).await.unwrap();
    assert_eq!(names(&hs.list().await.unwrap()), vec![part.export_name.as_str()]);
    hs.abort().await.unwrap();
    let mut hs = ClientHandshake::connect(blockd.addr, &as_host("127.0.0.9")).await.unwrap();
    assert!(hs.list().await.unwrap().is_empty());
    // Ungranted and unknown names get one answer (the same reply and message), so a host cannot probe which
    // exports exist; the default name is unknown too.
    let refusal = |e: dvsan_nbd::ClientError, name: &str| match e {
        dvsan_nbd::ClientError::OptionRefused { reply, message, .. } => (reply, message.replace(name, "NAME")),
        other => panic!("expected an option refusal, got {other}"),
    };
    let ungranted = refusal(hs.info("vol").await.unwrap_err(), "vol");
    assert_eq!(ungranted.0, REP_ERR_UNKNOWN);
    assert_eq!(
        ungranted.1,
        "the requested export is not available to host 127.0.0.9 (no such export, or no grant for this host); \
         NBD_OPT_LIST (nbdinfo --list) shows the exports this host may use"
    );
    assert_eq!(refusal(hs.info("nosuch").await.unwrap_err(), "nosuch"), ungranted);
    assert_eq!(hs.info("").await.unwrap_err().option_reply(), Some(REP_ERR_UNKNOWN));
    assert_eq!(refusal(hs.go("vol").await.err().expect("refused"), "vol"), ungranted);

    // The granted host does I/O; a host without the grant cannot, even with NBD_OPT_EXPORT_NAME.
    let mut c = NbdClient::connect(blockd.addr, "vol", &as_host("127.0.0.7")).await.unwrap();
    c.write(4096, &[0x5a; 8192], false).await.unwrap();
    let mut back = vec![0u8; 8192];
    c.read(4096, &mut back).await.unwrap();
    assert!(back.iter().all(|b| *b == 0x5a));
    c.disconnect().await.unwrap();
    let hs = ClientHandshake::connect(blockd.addr, &as_host("127.0.0.9")).await.unwrap();
    assert!(hs.export_name("vol").await.is_err(), "EXPORT_NAME without a grant must close the connection");
    let hs = ClientHandshake::connect(blockd.addr, &as_host("127.0.0.7")).await.unwrap();
    let mut c = hs.export_name("vol").await.unwrap();
    assert_eq!(c.export().size, 512 * 4096);
    let mut one = [0u8; 1];
    c.read(4096, &mut one).await.unwrap();
    assert_eq!(one[0], 0x5a);

    // The partition export maps onto its own extent of the volume.
    let mut p = NbdClient::connect(blockd.addr, &part.export_name, &as_host("127.0.0.8")).await.unwrap();
    assert_eq!(p.export().size, 64 * 4096);
    p.write(0, b"partition", true).await.unwrap();
    let media = read_file(&unit.media[0]);
    let at = (part.extent.start.0 * 4096) as usize;
    assert_eq!(&media[at..at + 9], b"partition");
}

#[tokio::test]
async fn read_only_grant_gets_eperm_for_every_kind_of_write() {
    let unit = Unit::new(&[MIB]);
    let ro = unit.volume("ro", 64);
    unit.grant(ro.index, None, "127.0.0.7", AccessMode::ReadOnly);
    let blockd = Blockd::start(&unit);
    for structured in [true, false] {
        let opts = dvsan_nbd::ConnectOptions { structured_replies: structured, ..as_host("127.0.0.7") };
        let mut c = NbdClient::connect(blockd.addr, "ro", &opts).await.unwrap();
        assert!(c.export().flags.read_only());
        assert!(!c.export().flags.has(FLAG_SEND_TRIM));
        assert_eq!(c.write(0, &[1; 512], false).await.unwrap_err().errno(), Some(Errno::EPERM));
        assert_eq!(c.trim(0, 4096, false).await.unwrap_err().errno(), Some(Errno::EPERM));
        assert_eq!(c.write_zeroes(0, 4096, ZeroFlags::default()).await.unwrap_err().errno(), Some(Errno::EPERM));
        let mut buf = [0u8; 512];
        c.read(0, &mut buf).await.unwrap();
        c.flush().await.unwrap();
        c.disconnect().await.unwrap();
    }
    assert!(read_file(&unit.media[0]).iter().all(|b| *b == 0));
}

#[tokio::test]
async fn revoking_a_grant_closes_open_connections_within_a_second() {
    let unit = Unit::new(&[MIB]);
    let vol = unit.volume("vol", 64);
    let g = unit.grant(vol.index, None, "127.0.0.7", AccessMode::ReadWriteShared);
    unit.grant(vol.index, None, "127.0.0.8", AccessMode::ReadWriteShared);
    let blockd = Blockd::start(&unit);
    let mut revoked_host = NbdClient::connect(blockd.addr, "vol", &as_host("127.0.0.7")).await.unwrap();
    let mut other_host = NbdClient::connect(blockd.addr, "vol", &as_host("127.0.0.8")).await.unwrap();
    let mut buf = [0u8; 4096];
    revoked_host.read(0, &mut buf).await.unwrap();

    let revoked_at = Instant::now();
    unit.store().revoke_grant(GrantIndex(g.index.0)).unwrap();
    let mut closed_after = None;
    while revoked_at.elapsed() < Duration::from_secs(3) {
        if revoked_host.read(0, &mut buf).await.is_err() {
            closed_after = Some(revoked_at.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let closed_after = closed_after.expect("connection still open 3 s after its grant was revoked");
    assert!(closed_after < Duration::from_millis(1500), "closed only after {closed_after:?}");
    // The other host's connection is untouched, and the revoked host cannot come back.
    other_host.read(0, &mut buf).await.unwrap();
    let err = NbdClient::connect(blockd.addr, "vol", &as_host("127.0.0.7")).await.err().expect("refused");
    assert_eq!(err.option_reply(), Some(REP_ERR_UNKNOWN));
}

#[tokio::test]
async fn a_new_volume_is_servable_without_restart() {
    let unit = Unit::new(&[MIB]);
    let blockd = Blockd::start(&unit);
    let mut hs = ClientHandshake::connect(blockd.addr, &as_host("127.0.0.7")).await.unwrap();
    assert!(hs.list().await.unwrap().is_empty());
    hs.abort().await.unwrap();

    let vol = unit.volume("late", 32);
    unit.grant(vol.index, None, "127.0.0.7", AccessMode::ReadWrite);
    let started = Instant::now();
    let mut client = None;
    while started.elapsed() < Duration::from_secs(3) {
        match NbdClient::connect(blockd.addr, "late", &as_host("127.0.0.7")).await {
            Ok(c) => {
                client = Some(c);
                break;
            }
            Err(ClientError::OptionRefused { .. }) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(e) => panic!("{e}"),
        }
    }
    let mut c = client.expect("new volume not served within 3 s");
    assert_eq!(c.export().size, 32 * 4096);
    c.write(0, b"hello", false).await.unwrap();
    c.flush().await.unwrap();
}

/// Many requests in flight on one connection: all written at once, all answered, data right.
#[test]
fn pipelined_requests_are_all_answered() {
    let unit = Unit::new(&[4 * MIB]);
    let vol = unit.volume("vol", 1024);
    unit.grant(vol.index, None, "127.0.0.1", AccessMode::ReadWrite);
    // Without busy polling: the blocking-read path (the other tests run with the default polling).
    let blockd = Blockd::start_with(&unit, &["--busy-poll-us", "0"]);
    let mut raw = Raw::go(blockd.addr, "vol", false);
    let n = 200u64;
    let mut batch = Vec::new();
    for i in 0..n {
        let h = dvsan_nbd::RequestHeader { flags: 0, command: CMD_WRITE, handle: i, offset: i * 4096, length: 4096 };
        batch.extend_from_slice(&h.encode());
        batch.extend_from_slice(&[i as u8; 4096]);
    }
    raw.send(&batch);
    let mut handles: Vec<u64> =
        (0..n).map(|_| raw.simple_reply()).map(|(e, h)| if e == 0 { h } else { u64::MAX }).collect();
    handles.sort_unstable();
    assert_eq!(handles, (0..n).collect::<Vec<_>>());

    let mut batch = Vec::new();
    for i in 0..n {
        let h =
            dvsan_nbd::RequestHeader { flags: 0, command: CMD_READ, handle: 1000 + i, offset: i * 4096, length: 4096 };
        batch.extend_from_slice(&h.encode());
    }
    raw.send(&batch);
    for _ in 0..n {
        let (err, handle) = raw.simple_reply();
        assert_eq!(err, 0);
        let mut data = vec![0u8; 4096];
        raw.read_exact(&mut data);
        let i = handle - 1000;
        assert!(data.iter().all(|b| *b == i as u8), "data of request {i}");
    }
}
