//! Large READs, each way blockd can send them (`--large-reads`): mapped (one data chunk from the media mapping,
//! then a final chunk), spliced (pipe-sized data chunks) and copied (one final data chunk through memory) return
//! the same bytes across a media boundary; auto maps for a loopback client; a media error part-way ends the reply
//! with an error chunk and the connection goes on; a mapped read of pages not in memory (here holes of a tmpfs
//! medium) is spliced instead, allocating nothing.

use dvsan_layout::AccessMode;
use dvsan_nbd::constants::{CMD_READ, REPLY_TYPE_NONE, REPLY_TYPE_OFFSET_DATA};
use dvsan_nbd::transmission::{ChunkHeader, ErrorChunk};
use dvsan_nbd::{ConnectOptions, Errno, NbdClient};
use dvsan_tests::nbd::*;
use dvsan_tests::*;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

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

/// One reply chunk as seen on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Chunk {
    Data {
        at: u64,
        len: usize,
        done: bool,
    },
    /// The final NBD_REPLY_TYPE_NONE chunk.
    End,
    /// An error chunk; NBD_REPLY_TYPE_ERROR_OFFSET carries the offset where the good data ends.
    Error {
        errno: Errno,
        offset: Option<u64>,
        done: bool,
    },
}

/// Send one READ on a raw structured connection and collect its chunks and the data they carried.
fn raw_read(raw: &mut Raw, offset: u64, len: usize) -> (Vec<Chunk>, Vec<u8>) {
    raw.request(CMD_READ, 0, 42, offset, len as u32);
    let mut data = vec![0u8; len];
    let mut chunks = Vec::new();
    loop {
        let mut h = [0u8; 20];
        raw.read_exact(&mut h);
        let h = ChunkHeader::decode(&h, 64 << 20).unwrap();
        assert_eq!(h.handle, 42);
        let mut payload = vec![0u8; h.length as usize];
        let chunk = match h.kind {
            REPLY_TYPE_OFFSET_DATA => {
                let mut at = [0u8; 8];
                raw.read_exact(&mut at);
                let at = u64::from_be_bytes(at);
                let n = h.length as usize - 8;
                let from = usize::try_from(at - offset).unwrap();
                raw.read_exact(&mut data[from..from + n]);
                Chunk::Data { at, len: n, done: h.is_done() }
            }
            REPLY_TYPE_NONE => {
                assert!(h.is_done() && h.length == 0, "{h:?}");
                Chunk::End
            }
            _ => {
                assert!(h.is_error(), "unexpected chunk {h:?}");
                raw.read_exact(&mut payload);
                let e = ErrorChunk::parse(h.kind, &payload).unwrap();
                Chunk::Error { errno: e.error, offset: e.offset, done: h.is_done() }
            }
        };
        chunks.push(chunk);
        if h.is_done() {
            return (chunks, data);
        }
        assert!(chunks.len() < 1000, "too many chunks");
    }
}

/// Wait for a closing log line of blockd's that contains `field` (e.g. "mapped_reads=1").
fn logged(blockd: &Blockd, field: &str) -> bool {
    eventually(Duration::from_secs(5), || {
        blockd.log().lines().any(|l| l.contains("connection ended") && l.contains(field))
    })
}

#[tokio::test]
async fn every_way_returns_the_same_bytes_across_a_media_boundary() {
    let unit = patterned_unit().await;
    let want = pattern(READ_AT, READ_LEN);
    for way in ["auto", "mapped", "spliced", "copied"] {
        let blockd = Blockd::start_with(&unit, &["--large-reads", way]);
        let mut raw = Raw::go(blockd.addr, "vol", true);
        let (chunks, data) = raw_read(&mut raw, READ_AT, READ_LEN);
        assert!(data == want, "{way}: different bytes");
        match way {
            // Auto picks mapped for a client on loopback.
            "auto" | "mapped" => assert_eq!(
                chunks,
                vec![Chunk::Data { at: READ_AT, len: READ_LEN, done: false }, Chunk::End],
                "{way}: one data chunk, then the final chunk"
            ),
            "spliced" => {
                assert!(chunks.len() >= 3, "a 2.5 MiB spliced read comes in pipe-sized chunks: {chunks:?}");
                let mut next = READ_AT;
                for (i, c) in chunks.iter().enumerate() {
                    let Chunk::Data { at, len, done } = *c else { panic!("{chunks:?}") };
                    assert_eq!(at, next, "chunks cover the range in order: {chunks:?}");
                    assert!(len as u64 <= MIB, "{chunks:?}");
                    assert_eq!(done, i == chunks.len() - 1, "only the last chunk is final: {chunks:?}");
                    next += len as u64;
                }
            }
            // Copied: in pieces of the reply buffer (--reply-buffer-kib, 1 MiB), one data chunk each.
            _ => assert_eq!(
                chunks,
                vec![
                    Chunk::Data { at: READ_AT, len: MIB as usize, done: false },
                    Chunk::Data { at: READ_AT + MIB, len: MIB as usize, done: false },
                    Chunk::Data { at: READ_AT + 2 * MIB, len: READ_LEN - 2 * MIB as usize, done: true },
                ]
            ),
        }
        drop(raw);
        let counter = match way {
            "auto" | "mapped" => "mapped_reads=1",
            "spliced" => "spliced_reads=1",
            _ => "copied_large_reads=1",
        };
        assert!(logged(&blockd, counter), "{way}: no closing line with {counter}: {}", blockd.log());
        // The client library, structured and simple (simple replies always copy).
        for structured in [true, false] {
            let opts = ConnectOptions { structured_replies: structured, ..as_host("127.0.0.7") };
            let mut c = NbdClient::connect(blockd.addr, "vol", &opts).await.unwrap();
            assert_eq!(c.structured(), structured);
            let mut back = vec![0u8; READ_LEN];
            c.read(READ_AT, &mut back).await.unwrap();
            assert!(back == want, "{way}: read with structured={structured} returned different bytes");
        }
    }
}

#[tokio::test]
async fn a_missing_medium_fails_a_large_read_with_eio_every_way() {
    let unit = patterned_unit().await;
    // The second medium goes missing: blockd serves the first and fails requests that touch the second.
    std::fs::remove_file(&unit.media[1]).unwrap();
    for way in ["mapped", "spliced", "copied"] {
        let blockd = Blockd::start_with(&unit, &["--large-reads", way]);
        let mut c = NbdClient::connect(blockd.addr, "vol", &as_host("127.0.0.7")).await.unwrap();
        assert!(c.structured());
        let mut back = vec![0u8; READ_LEN];
        let err = c.read(READ_AT, &mut back).await.unwrap_err();
        assert_eq!(err.errno(), Some(Errno::EIO), "{way}: {err}");
        // The same connection goes on serving the medium that is there.
        let mut first = vec![0u8; 2 * MIB as usize];
        c.read(4096, &mut first).await.unwrap();
        assert!(first == pattern(4096, first.len()), "{way}");
        assert!(blockd.log().contains("read failed"), "{way}: media error not logged: {}", blockd.log());
    }
}

/// Check a reply that failed: data chunks that are not final, in order, then the final EIO error chunk; the data
/// before the error offset is the medium's.
fn assert_failed_read(chunks: &[Chunk], data: &[u8], offset: u64, want: &[u8]) {
    let (last, data_chunks) = chunks.split_last().unwrap();
    let Chunk::Error { errno, offset: failed_at, done } = *last else { panic!("no final error chunk: {chunks:?}") };
    assert_eq!((errno, done), (Errno::EIO, true), "{chunks:?}");
    let mut next = offset;
    for c in data_chunks {
        let Chunk::Data { at, len, done } = *c else { panic!("{chunks:?}") };
        assert!(at == next && !done, "{chunks:?}");
        next += len as u64;
    }
    if let Some(failed_at) = failed_at {
        assert!((offset..=next).contains(&failed_at), "error offset outside the data sent: {chunks:?}");
        let good = (failed_at - offset) as usize;
        assert!(data[..good] == want[..good], "data before the error offset is wrong");
    }
}

#[tokio::test]
async fn a_medium_truncated_under_a_mapped_read_gives_eio_and_the_connection_goes_on() {
    let unit = patterned_unit().await;
    let blockd = Blockd::start_with(&unit, &["--large-reads", "mapped"]);
    let mut raw = Raw::go(blockd.addr, "vol", true);
    let (_, data) = raw_read(&mut raw, READ_AT, READ_LEN);
    assert!(data == pattern(READ_AT, READ_LEN));
    // The second medium shrinks to 512 KiB under the running blockd; the read ends 1 MiB into it. Pages past the
    // new end are no longer in memory, so the read is spliced and the splice finds the end; if part of a large
    // folio stayed cached, the kernel's copy from the mapping fails part-way instead. Either way: EIO.
    std::fs::OpenOptions::new().write(true).open(&unit.media[1]).unwrap().set_len(MIB / 2).unwrap();
    let (chunks, data) = raw_read(&mut raw, READ_AT, READ_LEN);
    assert_failed_read(&chunks, &data, READ_AT, &pattern(READ_AT, READ_LEN));
    // The reply was framed right: the next read on the same connection is answered correctly.
    let (chunks, data) = raw_read(&mut raw, 4096, MIB as usize);
    assert_eq!(chunks, vec![Chunk::Data { at: 4096, len: MIB as usize, done: false }, Chunk::End]);
    assert!(data == pattern(4096, MIB as usize));
    assert!(blockd.log().contains("read failed"), "media error not logged: {}", blockd.log());
}

#[tokio::test]
async fn a_mapped_read_of_a_hole_on_tmpfs_is_spliced_and_allocates_nothing() {
    let shm = std::path::Path::new("/dev/shm");
    assert!(shm.is_dir(), "this test needs a tmpfs at /dev/shm");
    let unit = Unit::new_in(shm, &[8 * MIB]);
    let vol = unit.volume("vol", 1024);
    unit.grant(vol.index, None, "127.0.0.1", AccessMode::ReadWrite);
    let blockd = Blockd::start_with(&unit, &["--large-reads", "mapped"]);
    let mut c = NbdClient::connect(blockd.addr, "vol", &as_host("127.0.0.1")).await.unwrap();
    c.write(0, &pattern(0, MIB as usize), false).await.unwrap();
    let allocated = std::fs::metadata(&unit.media[0]).unwrap().blocks();

    let mut raw = Raw::go(blockd.addr, "vol", true);
    // Half data, half hole: spliced (a hole is spliced as the zero page, nothing allocated).
    let (chunks, data) = raw_read(&mut raw, 0, 2 * MIB as usize);
    assert!(chunks.len() >= 2 && chunks.iter().all(|c| matches!(c, Chunk::Data { .. })), "{chunks:?}");
    assert!(data[..MIB as usize] == pattern(0, MIB as usize));
    assert!(data[MIB as usize..].iter().all(|b| *b == 0));
    // All data: mapped.
    let (chunks, data) = raw_read(&mut raw, 0, MIB as usize);
    assert_eq!(chunks, vec![Chunk::Data { at: 0, len: MIB as usize, done: false }, Chunk::End]);
    assert!(data == pattern(0, MIB as usize));
    drop(raw);
    assert!(logged(&blockd, "mapped_reads=1 spliced_reads=1 copied_large_reads=0"), "{}", blockd.log());
    assert_eq!(std::fs::metadata(&unit.media[0]).unwrap().blocks(), allocated, "reading the hole allocated memory");
}
