//! Large READs: spliced from the media in pipe-sized data chunks (structured replies) or copied through memory
//! (simple replies, or `--splice-min-kib 0`), the same bytes either way, across a media boundary; and a media
//! error part-way through a spliced read ends the reply with an error chunk, leaving the connection usable.

mod common;

use common::*;
use dvsan_layout::AccessMode;
use dvsan_nbd::constants::{CMD_READ, REPLY_TYPE_OFFSET_DATA};
use dvsan_nbd::transmission::ChunkHeader;
use dvsan_nbd::{ConnectOptions, NbdClient};

const MIB: u64 = 1024 * 1024;
/// Starts 7 bytes past 1.5 MiB and crosses the boundary between the two 3 MiB media.
const READ_AT: u64 = 3 * MIB / 2 + 7;
const READ_LEN: usize = (5 * MIB / 2) as usize;

fn pattern(offset: u64, len: usize) -> Vec<u8> {
    (offset..offset + len as u64).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()
}

/// A unit with two 3 MiB media, one volume over both (granted to 127.0.0.1 and 127.0.0.7) filled with a pattern.
async fn patterned_unit() -> Unit {
    let unit = Unit::new(&[3 * MIB, 3 * MIB]);
    let vol = unit.volume("vol", 1500);
    unit.grant(vol.index, None, "127.0.0.7", AccessMode::ReadWrite);
    unit.grant(vol.index, None, "127.0.0.1", AccessMode::ReadOnly);
    let blockd = Blockd::start(&unit);
    let mut c = NbdClient::connect(blockd.addr, "vol", &as_host("127.0.0.7")).await.unwrap();
    c.write(0, &pattern(0, 1500 * 4096), false).await.unwrap();
    c.flush().await.unwrap();
    unit
}

/// Send one READ on a raw structured connection and collect its chunks: (offset, data length, done) each.
fn raw_read_chunks(blockd: &Blockd, offset: u64, len: usize) -> (Vec<(u64, usize, bool)>, Vec<u8>) {
    let mut raw = Raw::go(blockd.addr, "vol", true);
    raw.request(CMD_READ, 0, 42, offset, len as u32);
    let mut data = vec![0u8; len];
    let mut chunks = Vec::new();
    loop {
        let mut h = [0u8; 20];
        raw.read_exact(&mut h);
        let h = ChunkHeader::decode(&h, 64 << 20).unwrap();
        assert_eq!(h.handle, 42);
        assert_eq!(h.kind, REPLY_TYPE_OFFSET_DATA, "unexpected chunk {h:?}");
        let mut at = [0u8; 8];
        raw.read_exact(&mut at);
        let at = u64::from_be_bytes(at);
        let n = h.length as usize - 8;
        let from = usize::try_from(at - offset).unwrap();
        raw.read_exact(&mut data[from..from + n]);
        chunks.push((at, n, h.is_done()));
        if h.is_done() {
            return (chunks, data);
        }
        assert!(chunks.len() < 1000, "too many chunks");
    }
}

#[tokio::test]
async fn large_reads_return_the_same_bytes_spliced_or_copied() {
    let unit = patterned_unit().await;
    let want = pattern(READ_AT, READ_LEN);

    let blockd = Blockd::start(&unit);
    // Structured replies: spliced, one data chunk per pipe-full (at most 1 MiB), in order, the last one final.
    let (chunks, data) = raw_read_chunks(&blockd, READ_AT, READ_LEN);
    assert!(data == want, "spliced read returned different bytes");
    assert!(chunks.len() >= 3, "a 2.5 MiB spliced read comes in pipe-sized chunks: {chunks:?}");
    assert!(chunks.iter().all(|c| c.1 <= MIB as usize), "{chunks:?}");
    let mut next = READ_AT;
    for (i, (at, n, done)) in chunks.iter().enumerate() {
        assert_eq!(*at, next, "chunks cover the range in order: {chunks:?}");
        assert_eq!(*done, i == chunks.len() - 1, "only the last chunk is final: {chunks:?}");
        next += *n as u64;
    }
    // The client library, structured and simple.
    for structured in [true, false] {
        let opts = ConnectOptions { structured_replies: structured, ..as_host("127.0.0.7") };
        let mut c = NbdClient::connect(blockd.addr, "vol", &opts).await.unwrap();
        assert_eq!(c.structured(), structured);
        let mut back = vec![0u8; READ_LEN];
        c.read(READ_AT, &mut back).await.unwrap();
        assert!(back == want, "read with structured={structured} returned different bytes");
    }
    drop(blockd);

    // Splicing off: the same read arrives as one chunk copied through memory.
    let blockd = Blockd::start_with(&unit, &["--splice-min-kib", "0"]);
    let (chunks, data) = raw_read_chunks(&blockd, READ_AT, READ_LEN);
    assert!(data == want, "copied read returned different bytes");
    assert_eq!(chunks, vec![(READ_AT, READ_LEN, true)]);
}

#[tokio::test]
async fn a_media_error_inside_a_spliced_read_ends_it_with_an_error_chunk() {
    let unit = patterned_unit().await;
    // The second medium goes missing: blockd serves the first and fails requests that touch the second.
    std::fs::remove_file(&unit.media[1]).unwrap();
    let blockd = Blockd::start(&unit);
    let mut c = NbdClient::connect(blockd.addr, "vol", &as_host("127.0.0.7")).await.unwrap();
    assert!(c.structured());
    let mut back = vec![0u8; READ_LEN];
    let err = c.read(READ_AT, &mut back).await.unwrap_err();
    assert_eq!(err.errno(), Some(dvsan_nbd::Errno::EIO), "{err}");
    // The same connection goes on serving the medium that is there.
    let mut first = vec![0u8; 2 * MIB as usize];
    c.read(4096, &mut first).await.unwrap();
    assert!(first == pattern(4096, first.len()));
    assert!(blockd.log().contains("read failed"), "media error logged: {}", blockd.log());
}
