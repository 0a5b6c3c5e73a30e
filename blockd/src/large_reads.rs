//! How a connection answers READs of at least `--large-read-min-kib`: mapped, spliced, or copied.
//!
//! A copied read (pread into the reply buffer, then write) costs the server two copies of the data, which for
//! 1 MiB reads is most of its work. On connections with structured replies two cheaper ways exist:
//!
//! - **mapped** ([`crate::mapped_read`]): the kernel copies from a read-only mapping of the medium straight into
//!   the socket: one copy. Chosen for clients on loopback, which copy the data out of the socket themselves and
//!   do that fastest from the freshly written buffers this makes.
//! - **spliced** ([`crate::splice_pipe`]): page references go file → pipe → socket: no copy on the server, and
//!   over a network none anywhere before the NIC. Chosen for remote clients.
//!
//! `--large-reads` overrides the choice. Both ways can still report a medium that fails part-way through: the
//! reply ends with an NBD_REPLY_TYPE_ERROR_OFFSET chunk at the failing offset and the connection goes on; only a
//! failing socket closes it. Simple-reply connections always copy: their reply header
//! carries the error and goes before the data, so the data must be in hand first.

use crate::mapped_read::MappedSendError;
use crate::media_io::ZEROES;
use crate::splice_pipe::Splicer;
use crate::transmission::{append_done_chunk, send_more, OutBuf, Session};
use dvsan_nbd::transmission::{encode_data_chunk_header, encode_error_offset_chunk, DATA_CHUNK_PREFIX_LEN};
use dvsan_nbd::RequestHeader;
use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;

/// The operator's choice of way for large reads (`--large-reads`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LargeReads {
    /// Mapped for clients on loopback, spliced for the others.
    #[default]
    Auto,
    /// Sent from a read-only mapping of the media: one copy, in the kernel.
    Mapped,
    /// Spliced from the page cache to the socket: no copy on the server.
    Spliced,
    /// Read into memory and written, like small reads.
    Copied,
}

impl LargeReads {
    /// The way one connection answers its large reads.
    pub(crate) fn for_connection(self, peer: IpAddr, structured: bool) -> LargeReadPath {
        match self {
            _ if !structured => LargeReadPath::Copied,
            LargeReads::Auto if peer.to_canonical().is_loopback() => LargeReadPath::Mapped,
            LargeReads::Auto | LargeReads::Spliced => LargeReadPath::Spliced,
            LargeReads::Mapped => LargeReadPath::Mapped,
            LargeReads::Copied => LargeReadPath::Copied,
        }
    }
}

/// The way a connection answers its large reads, settled when it enters transmission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LargeReadPath {
    Mapped,
    Spliced,
    Copied,
}

/// A connection's splice pipe: not made yet, made, or unavailable (then reads go through memory).
#[derive(Default)]
pub(crate) enum SplicerSlot {
    #[default]
    NotYet,
    Ready(Splicer),
    Unavailable,
}

/// How many large reads went each way on one connection, and how many writes were spliced, for its closing log
/// line.
#[derive(Debug, Default)]
pub(crate) struct LargeRequestCounts {
    pub mapped: u64,
    pub spliced: u64,
    /// Large reads copied through memory (without a pipe, or on a simple-reply connection).
    pub copied: u64,
    pub spliced_writes: u64,
}

impl Session {
    /// Answer a READ the connection's way. Returns whether the read succeeded (a media error is answered with an
    /// error reply); `Err` means the socket failed and the connection must close.
    pub(crate) fn answer_read(&mut self, out: &mut OutBuf, h: &RequestHeader) -> io::Result<bool> {
        if h.length < self.large_read_min {
            return Ok(self.read(out, h));
        }
        let mut way = self.large_reads;
        if way == LargeReadPath::Spliced && !self.splicer_ready() {
            way = LargeReadPath::Copied;
        }
        match way {
            LargeReadPath::Mapped => self.read_mapped(out, h),
            LargeReadPath::Spliced => self.read_spliced(out, h),
            LargeReadPath::Copied => {
                self.large_counts.copied += 1;
                Ok(self.read(out, h))
            }
        }
    }

    /// Answer a READ from the media mappings if all its pages are in memory, else splice it (or copy it, without a
    /// pipe): pages not in memory must come from a disk or are holes, which a send from the mapping would wait
    /// for or allocate.
    fn read_mapped(&mut self, out: &mut OutBuf, h: &RequestHeader) -> io::Result<bool> {
        let total = u64::from(h.length);
        // A range that does not map onto the media is a failed read, answered like a media error.
        let mappable = match self.export.segments(h.offset, total) {
            Ok(mut segs) => {
                segs.all(|seg| matches!(seg, Ok(s) if s.mapping.is_some_and(|m| m.resident(s.at, s.range.len()))))
            }
            Err(e) => return Ok(self.finish(out, h, Err(e), "read")),
        };
        if mappable {
            self.send_mapped(out, h)
        } else if self.splicer_ready() {
            self.read_spliced(out, h)
        } else {
            self.large_counts.copied += 1;
            Ok(self.read(out, h))
        }
    }

    /// Send the READ's data from the media mappings as one data chunk that is not final (a page that fails is
    /// only found part-way through the send), after the replies gathered in `out`; the final chunk, or the error
    /// chunk if a page failed, goes into `out`.
    fn send_mapped(&mut self, out: &mut OutBuf, h: &RequestHeader) -> io::Result<bool> {
        let total = u64::from(h.length);
        let mut prefix = [0u8; DATA_CHUNK_PREFIX_LEN];
        encode_data_chunk_header(&mut prefix, h.handle, h.offset, h.length, false);
        out.append(&prefix);
        let fd = self.stream.as_raw_fd();
        let mut sent = 0usize;
        for seg in self.export.segments(h.offset, total)? {
            let seg = seg?;
            let Some(mapping) = seg.mapping else {
                return Err(io::Error::other("a medium lost its mapping during a read"));
            };
            let len = seg.range.len();
            match mapping.send(fd, out.as_slice(), seg.at, len) {
                Ok(()) => {
                    out.clear();
                    sent += len;
                }
                Err(MappedSendError::Socket(e)) => return Err(e),
                Err(MappedSendError::Media { sent: part, error }) => {
                    // The chunk's header promised `total` bytes: fill it up with zeroes (the spec's padding),
                    // then say where the good data ends.
                    out.clear();
                    self.send_zeroes(total as usize - sent - part)?;
                    return Ok(self.fail_read_at(out, h, h.offset + (sent + part) as u64, &error));
                }
            }
        }
        append_done_chunk(out, h.handle);
        self.large_counts.mapped += 1;
        Ok(true)
    }

    /// Whether the splice pipe is there (making it on first use).
    pub(crate) fn splicer_ready(&mut self) -> bool {
        if matches!(self.splicer, SplicerSlot::NotYet) {
            self.splicer = match Splicer::new() {
                Some(s) => {
                    tracing::debug!(conn = self.id, pipe = s.capacity(), "splice pipe ready");
                    SplicerSlot::Ready(s)
                }
                None => SplicerSlot::Unavailable,
            };
        }
        matches!(self.splicer, SplicerSlot::Ready(_))
    }

    /// Answer a READ with data chunks of at most a pipe-full each, spliced from the media; the replies gathered in
    /// `out` go first.
    fn read_spliced(&mut self, out: &mut OutBuf, h: &RequestHeader) -> io::Result<bool> {
        let SplicerSlot::Ready(splicer) = &mut self.splicer else {
            return Ok(self.read(out, h));
        };
        let total = u64::from(h.length);
        let mut sent = 0u64;
        let mut failure = None;
        let segments = match self.export.segments(h.offset, total) {
            Ok(segs) => segs,
            Err(e) => return Ok(self.finish(out, h, Err(e), "read")),
        };
        'segments: for seg in segments {
            let seg = match seg {
                Ok(s) => s,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            let seg_len = seg.range.len() as u64;
            let mut done_in_seg = 0u64;
            while done_in_seg < seg_len {
                let want = (seg_len - done_in_seg).min(splicer.capacity() as u64);
                let piece = match splicer.fill(seg.file, seg.at + done_in_seg, want as usize) {
                    Ok(n) => n as u64,
                    Err(e) => {
                        failure = Some(e);
                        break 'segments;
                    }
                };
                // The data is in the pipe before its header goes: a media error is found before anything is
                // promised, so the last data chunk can be the final one.
                let last = sent + piece == total;
                let mut prefix = [0u8; DATA_CHUNK_PREFIX_LEN];
                encode_data_chunk_header(&mut prefix, h.handle, h.offset + sent, piece as u32, last);
                out.append(&prefix);
                send_more(&self.stream, out.as_slice())?;
                out.clear();
                splicer.drain_to(&self.stream, !last)?;
                sent += piece;
                done_in_seg += piece;
            }
        }
        match failure {
            // Chunks sent so far were not final: the error chunk ends the reply.
            Some(e) => Ok(self.fail_read_at(out, h, h.offset + sent, &e)),
            None => {
                self.large_counts.spliced += 1;
                Ok(true)
            }
        }
    }

    /// End a READ that failed at export offset `at` (data before it was sent and is good): count, log, and
    /// append the final error chunk. Returns false, the read's outcome.
    fn fail_read_at(&self, out: &mut OutBuf, h: &RequestHeader, at: u64, e: &io::Error) -> bool {
        let errno = self.media_failure(h, e, "read");
        let mut chunk = Vec::new();
        encode_error_offset_chunk(&mut chunk, h.handle, errno, &format!("read failed at offset {at}: {e}"), at);
        out.append(&chunk);
        false
    }

    /// Send `n` zero bytes (with MSG_MORE: the reply goes on).
    fn send_zeroes(&self, mut n: usize) -> io::Result<()> {
        while n > 0 {
            let piece = n.min(ZEROES.len());
            send_more(&self.stream, &ZEROES[..piece])?;
            n -= piece;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bad_input::BadInputCounters;
    use crate::exports::{MediaSet, ServedExport};
    use crate::mapped_read::MediumMapping;
    use crate::traffic::TrafficCounters;
    use dvsan_layout::{Blocks, ExportKind, Extent, Lba, MediaMap, Medium, MediumKind, VolumeIndex};
    use dvsan_nbd::constants::{CMD_READ, REPLY_TYPE_ERROR_OFFSET, REPLY_TYPE_OFFSET_DATA};
    use dvsan_nbd::transmission::ChunkHeader;
    use dvsan_nbd::transmission::ErrorChunk;
    use dvsan_nbd::ExportLimits;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::Arc;
    use std::time::Duration;

    const KIB: usize = 1024;

    /// A mapped-read session on one medium of `bytes` (written with 0x5a and mapped whole) that is then cut to
    /// `cut` bytes, and the client end of its socket.
    fn session_on_cut_medium(dir: &std::path::Path, bytes: usize, cut: u64) -> (Session, TcpStream) {
        let path = dir.join("medium.img");
        std::fs::write(&path, vec![0x5au8; bytes]).unwrap();
        let file = std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
        let mapping = MediumMapping::new(&file, bytes as u64).unwrap();
        file.set_len(cut).unwrap();
        let medium = Medium {
            index: 0,
            path: path.clone(),
            kind: MediumKind::File,
            extent: Extent::new(Lba(0), Blocks(bytes as u64 / 4096)),
        };
        let media = Arc::new(MediaSet {
            map: MediaMap::new(&[medium], 4096),
            files: vec![Some(Arc::new(file))],
            mappings: vec![Some(Arc::new(mapping))],
            paths: vec![path],
        });
        let export = Arc::new(ServedExport {
            name: "vol".into(),
            kind: ExportKind::Volume(VolumeIndex(1)),
            start: 0,
            size: bytes as u64,
            media,
            touched: vec![0],
            description: String::new(),
        });
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (stream, peer) = listener.accept().unwrap();
        let session = Session {
            id: 1,
            peer,
            stream,
            limits: ExportLimits { size: bytes as u64, read_only: false, max_payload: 32 << 20, block_status: false },
            structured: true,
            traffic: Arc::new(TrafficCounters::default()),
            bad_input: Arc::new(BadInputCounters::default()),
            closing: Default::default(),
            stall_timeout: Duration::from_secs(5),
            busy_poll: Duration::ZERO,
            splice_write_min: 0,
            large_read_min: 64 * KIB as u32,
            large_reads: LargeReadPath::Mapped,
            splicer: SplicerSlot::default(),
            large_counts: LargeRequestCounts::default(),
            export,
        };
        (session, client)
    }

    #[test]
    fn a_page_failing_inside_a_mapped_send_is_padded_and_the_reply_ends_with_an_error_chunk() {
        let dir = tempfile::tempdir().unwrap();
        // Cut to 64 KiB under the mapping: a 128 KiB send from offset 0 fails at (or a little before) 64 KiB.
        let (mut session, mut client) = session_on_cut_medium(dir.path(), 256 * KIB, 64 * KIB as u64);
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            client.read_to_end(&mut got).unwrap();
            got
        });
        let h = RequestHeader { flags: 0, command: CMD_READ, handle: 9, offset: 0, length: 128 * KIB as u32 };
        let mut out = OutBuf::default();
        assert!(!session.send_mapped(&mut out, &h).unwrap(), "the read failed");
        // The request loop sends what is left in `out`: here the error chunk.
        session.stream.write_all(out.as_slice()).unwrap();
        drop(session);
        let got = reader.join().unwrap();

        let data = ChunkHeader::decode(&got[..20], 1 << 20).unwrap();
        assert_eq!(
            (data.kind, data.handle, data.length, data.is_done()),
            (REPLY_TYPE_OFFSET_DATA, 9, 8 + 128 * 1024, false)
        );
        assert_eq!(got[20..28], 0u64.to_be_bytes());
        let body = &got[28..28 + 128 * KIB];
        let good = body.iter().take_while(|b| **b == 0x5a).count();
        assert!(good > 0 && good <= 64 * KIB, "{good} bytes of the medium before the failure");
        assert!(body[good..].iter().all(|b| *b == 0), "the rest of the promised chunk is zeroes");
        let rest = &got[28 + 128 * KIB..];
        let err = ChunkHeader::decode(&rest[..20], 1 << 20).unwrap();
        assert_eq!((err.kind, err.handle, err.is_done()), (REPLY_TYPE_ERROR_OFFSET, 9, true));
        assert_eq!(rest.len(), 20 + err.length as usize, "nothing after the error chunk");
        let err = ErrorChunk::parse(err.kind, &rest[20..]).unwrap();
        assert_eq!(err.error, dvsan_nbd::Errno::EIO);
        assert_eq!(err.offset, Some(good as u64), "the error chunk says where the good data ends");
    }

    #[test]
    fn auto_maps_for_loopback_peers_and_splices_for_others() {
        let lo: IpAddr = "127.0.0.9".parse().unwrap();
        let lo6: IpAddr = "::1".parse().unwrap();
        let mapped4: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        let remote: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(LargeReads::Auto.for_connection(lo, true), LargeReadPath::Mapped);
        assert_eq!(LargeReads::Auto.for_connection(lo6, true), LargeReadPath::Mapped);
        assert_eq!(LargeReads::Auto.for_connection(mapped4, true), LargeReadPath::Mapped, "dual-stack listener");
        assert_eq!(LargeReads::Auto.for_connection(remote, true), LargeReadPath::Spliced);
        assert_eq!(LargeReads::Mapped.for_connection(remote, true), LargeReadPath::Mapped);
        assert_eq!(LargeReads::Spliced.for_connection(lo, true), LargeReadPath::Spliced);
        for way in [LargeReads::Auto, LargeReads::Mapped, LargeReads::Spliced, LargeReads::Copied] {
            assert_eq!(way.for_connection(lo, false), LargeReadPath::Copied, "simple replies always copy");
        }
    }
}
