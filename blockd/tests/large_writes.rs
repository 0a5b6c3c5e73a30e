//! Large WRITEs whose payload is spliced from the socket to the media (`--splice-write-min-kib`, 128 by default):
//! the same bytes land as when copied through memory, across a media boundary; FUA makes them survive kill -9; a
//! medium that fails part-way gives EIO with the payload still consumed; a client that stalls or hangs up
//! mid-payload is dropped without disturbing others.

use dvsan_layout::AccessMode;
use dvsan_nbd::constants::CMD_WRITE;
use dvsan_nbd::{Errno, NbdClient};
use dvsan_tests::nbd::*;
use dvsan_tests::*;
use std::time::Duration;

const MIB: u64 = 1024 * 1024;
/// 7 bytes past 1.5 MiB, 3 MiB long: across the boundary of the two 3 MiB media.
const WRITE_AT: u64 = 3 * MIB / 2 + 7;
const WRITE_LEN: usize = 3 * MIB as usize;

fn pattern(seed: u64, len: usize) -> Vec<u8> {
    (0..len as u64).map(|i| ((i + seed).wrapping_mul(2_654_435_761) >> 11) as u8).collect()
}

fn unit() -> Unit {
    let unit = Unit::new(&[3 * MIB, 3 * MIB]);
    let vol = unit.volume("vol", 1500);
    unit.grant(vol.index, None, "127.0.0.1", AccessMode::ReadWrite);
    unit
}

/// The volume's bytes as the media files hold them (the volume starts at the first medium's start).
fn media_bytes(unit: &Unit, at: u64, len: usize) -> Vec<u8> {
    let mut all = read_file(&unit.media[0]);
    all.extend_from_slice(&read_file(&unit.media[1]));
    all[at as usize..at as usize + len].to_vec()
}

fn logged(blockd: &Blockd, field: &str) -> bool {
    eventually(Duration::from_secs(5), || {
        blockd.log().lines().any(|l| l.contains("connection ended") && l.contains(field))
    })
}

#[tokio::test]
async fn spliced_and_copied_writes_land_the_same_bytes_across_a_media_boundary() {
    for (splice_min, counted) in [("128", "spliced_writes=2"), ("0", "spliced_writes=0")] {
        let unit = unit();
        let blockd = Blockd::start_with(&unit, &["--splice-write-min-kib", splice_min]);
        let mut c = NbdClient::connect(blockd.addr, "vol", &as_host("127.0.0.1")).await.unwrap();
        let data = pattern(1, WRITE_LEN);
        c.write(WRITE_AT, &data, false).await.unwrap();
        // A second large write with FUA, then a small one behind it on the same connection. Both large writes are
        // bigger than the 256 KiB request buffer, so their payload cannot all be read with the header.
        let second = pattern(2, MIB as usize);
        let second_at = 19 * MIB / 4;
        c.write(second_at, &second, true).await.unwrap();
        c.write(5, b"tiny", false).await.unwrap();
        c.flush().await.unwrap();
        assert!(media_bytes(&unit, WRITE_AT, WRITE_LEN) == data, "{splice_min}: media hold different bytes");
        let mut back = vec![0u8; second.len()];
        c.read(second_at, &mut back).await.unwrap();
        assert!(back == second, "{splice_min}: second write");
        let mut tiny = [0u8; 4];
        c.read(5, &mut tiny).await.unwrap();
        assert_eq!(&tiny, b"tiny");
        drop(c);
        assert!(logged(&blockd, counted), "{splice_min}: no closing line with {counted}: {}", blockd.log());
    }
}

#[tokio::test]
async fn a_spliced_fua_write_survives_kill_9() {
    let unit = unit();
    let blockd = Blockd::start(&unit);
    let mut c = NbdClient::connect(blockd.addr, "vol", &as_host("127.0.0.1")).await.unwrap();
    let data = pattern(3, WRITE_LEN);
    c.write(WRITE_AT, &data, true).await.unwrap();
    blockd.kill9();
    let blockd = Blockd::start(&unit);
    let mut c = NbdClient::connect(blockd.addr, "vol", &as_host("127.0.0.1")).await.unwrap();
    let mut back = vec![0u8; WRITE_LEN];
    c.read(WRITE_AT, &mut back).await.unwrap();
    assert!(back == data, "FUA write lost");
}

#[tokio::test]
async fn a_missing_medium_fails_a_spliced_write_and_the_connection_goes_on() {
    let unit = unit();
    std::fs::remove_file(&unit.media[1]).unwrap();
    let blockd = Blockd::start(&unit);
    let mut c = NbdClient::connect(blockd.addr, "vol", &as_host("127.0.0.1")).await.unwrap();
    let err = c.write(WRITE_AT, &pattern(4, WRITE_LEN), false).await.unwrap_err();
    assert_eq!(err.errno(), Some(Errno::EIO), "{err}");
    // The payload was consumed: the next requests on the connection are read right.
    let data = pattern(5, 1024 * 1024);
    c.write(4096, &data, false).await.unwrap();
    let mut back = vec![0u8; data.len()];
    c.read(4096, &mut back).await.unwrap();
    assert!(back == data);
    assert!(blockd.log().contains("write failed"), "{}", blockd.log());
}

#[test]
fn a_client_stalling_or_hanging_up_mid_payload_is_dropped_and_others_go_on() {
    let unit = unit();
    let blockd = Blockd::start_with(&unit, &["--handshake-timeout-ms", "1000"]);
    let mut normal = Raw::go(blockd.addr, "vol", false);

    // 1 MiB announced, 300 KiB sent, then nothing: closed after the stall limit.
    let mut stall = Raw::go(blockd.addr, "vol", false);
    stall.request(CMD_WRITE, 0, 1, 0, MIB as u32);
    stall.send(&vec![1u8; 300 * 1024]);
    assert!(stall.closed_within(Duration::from_secs(5)), "a client stalled mid-payload is still connected");
    // 1 MiB announced, 500 KiB sent, then the client goes away.
    let mut gone = Raw::go(blockd.addr, "vol", false);
    gone.request(CMD_WRITE, 0, 2, MIB, MIB as u32);
    gone.send(&vec![2u8; 500 * 1024]);
    drop(gone);
    assert!(
        eventually(Duration::from_secs(5), || blockd.log().contains("client closed mid-payload")),
        "{}",
        blockd.log()
    );

    normal.write_and_read_back(0, b"ok!!");
    assert!(blockd.log().contains("client stalled mid-payload"), "{}", blockd.log());
}
