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
//! `--large-reads` overrides the choice. Both ways can still find a medium that fails part-way through: they say
//! where (`LargeReadEnd::FailedAt`), and the connection ends the reply with an NBD_REPLY_TYPE_ERROR_OFFSET chunk
//! at that offset and goes on; only a failing socket closes it. Simple-reply connections always copy: their reply
//! header carries the error and goes before the data, so the data must be in hand first.
//!
//! The functions here send one read's data and know nothing of the connection: which way a read goes, the copy
//! through the reply buffer, and the replies for errors are the request loop's.

use crate::buffers::{append_done_chunk, OutBuf};
use crate::exports::ServedExport;
use crate::mapped_read::MappedSendError;
use crate::media_io::ZEROES;
use crate::splice_pipe::Splicer;
use dvsan_nbd::transmission::{encode_data_chunk_header, DATA_CHUNK_PREFIX_LEN};
use dvsan_nbd::RequestHeader;
use std::io;
use std::net::{IpAddr, TcpStream};
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

/// How sending a large read's data ended; a failing socket is the outer `Err` of the functions that send.
#[derive(Debug)]
pub(crate) enum LargeReadEnd {
    /// All the data went out, and the final chunk is sent or in the reply buffer.
    Done,
    /// Nothing went out: the range does not map onto the media. The reply is an ordinary error.
    NotStarted(io::Error),
    /// The medium failed at export offset `at`. The data before it went out in chunks that were not final: the
    /// reply must end with an error chunk for that offset.
    FailedAt { at: u64, error: io::Error },
}

/// Whether every page of the READ's range is in memory in the media mappings: pages that are not must come from
/// a disk or are holes, which a send from the mapping would wait for or allocate. `Err`: the range does not map
/// onto the media.
pub(crate) fn mappable(export: &ServedExport, h: &RequestHeader) -> io::Result<bool> {
    let mut segs = export.segments(h.offset, u64::from(h.length))?;
    Ok(segs.all(|seg| matches!(seg, Ok(s) if s.mapping.is_some_and(|m| m.resident(s.at, s.range.len())))))
}

/// Send the READ's data from the media mappings as one data chunk that is not final (a page that fails is only
/// found part-way through the send), after the replies gathered in `out`; the final chunk goes into `out`.
pub(crate) fn send_mapped(
    stream: &TcpStream,
    export: &ServedExport,
    out: &mut OutBuf,
    h: &RequestHeader,
) -> io::Result<LargeReadEnd> {
    let total = u64::from(h.length);
    let mut prefix = [0u8; DATA_CHUNK_PREFIX_LEN];
    encode_data_chunk_header(&mut prefix, h.handle, h.offset, h.length, false);
    out.append(&prefix);
    let fd = stream.as_raw_fd();
    let mut sent = 0usize;
    for seg in export.segments(h.offset, total)? {
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
                // The chunk's header promised `total` bytes: fill it up with zeroes (the spec's padding), then
                // say where the good data ends.
                out.clear();
                send_zeroes(stream, total as usize - sent - part)?;
                return Ok(LargeReadEnd::FailedAt { at: h.offset + (sent + part) as u64, error });
            }
        }
    }
    append_done_chunk(out, h.handle);
    Ok(LargeReadEnd::Done)
}

/// Send the READ's data in data chunks of at most a pipe-full each, spliced from the media; the replies gathered
/// in `out` go first.
pub(crate) fn send_spliced(
    stream: &TcpStream,
    export: &ServedExport,
    splicer: &mut Splicer,
    out: &mut OutBuf,
    h: &RequestHeader,
) -> io::Result<LargeReadEnd> {
    let total = u64::from(h.length);
    let mut sent = 0u64;
    let mut failure = None;
    let segments = match export.segments(h.offset, total) {
        Ok(segs) => segs,
        Err(e) => return Ok(LargeReadEnd::NotStarted(e)),
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
            send_more(stream, out.as_slice())?;
            out.clear();
            splicer.drain_to(stream, !last)?;
            sent += piece;
            done_in_seg += piece;
        }
    }
    Ok(match failure {
        // Chunks sent so far were not final: the error chunk ends the reply.
        Some(error) => LargeReadEnd::FailedAt { at: h.offset + sent, error },
        None => LargeReadEnd::Done,
    })
}

/// Send `n` zero bytes (with MSG_MORE: the reply goes on).
fn send_zeroes(stream: &TcpStream, mut n: usize) -> io::Result<()> {
    while n > 0 {
        let piece = n.min(ZEROES.len());
        send_more(stream, &ZEROES[..piece])?;
        n -= piece;
    }
    Ok(())
}

/// Send all of `bytes` with MSG_MORE: the data that belongs with them follows at once.
fn send_more(stream: &TcpStream, bytes: &[u8]) -> io::Result<()> {
    let fd = stream.as_raw_fd();
    // nix has no name for MSG_MORE.
    let more = nix::sys::socket::MsgFlags::from_bits_retain(nix::libc::MSG_MORE);
    let mut done = 0;
    while done < bytes.len() {
        match nix::sys::socket::send(fd, &bytes[done..], more) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(n) => done += n,
            Err(nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::EAGAIN) => return Err(io::Error::from(io::ErrorKind::TimedOut)),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
