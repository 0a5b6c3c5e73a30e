//! The data path: one OS thread per connection in transmission, blocking socket I/O, requests done inline.
//!
//! Each wake-up reads as much as the socket has into one buffer, then handles every complete request in it
//! (pread straight into the reply buffer, pwrite straight from the read buffer), then sends all their replies with
//! one write. At queue depth 32 that turns dozens of requests into two syscalls plus the file I/O, with no
//! allocation or thread hand-off per request. Replies go out in request order, which the spec allows.
//!
//! Large reads on connections with structured replies skip the reply buffer ([`crate::large_reads`]): their data
//! goes from the media to the socket by a mapping or a pipe, after whatever replies are gathered before them, so
//! replies still go out in request order.
//!
//! Large writes whose payload does not fit the read buffer take the rest of it straight from the socket to the
//! media ([`crate::large_writes`]).
//!
//! Memory is bounded: the read buffer grows only to hold one complete request (header plus at most the 32 MiB
//! maximum payload, and only when the payload cannot be spliced), and the reply buffer is sent whenever it passes
//! [`OUT_FLUSH_AT`]. A WRITE refused for its range or mode has its payload read and dropped in buffer-sized pieces; a WRITE over the maximum payload gets
//! EINVAL and the connection is closed without reading the payload. A client that leaves a partial request for
//! longer than the stall limit, or does not read its replies for that long, is disconnected.

use crate::bad_input::{BadInput, BadInputCounters};
use crate::exports::ServedExport;
use crate::large_reads::{LargeReadPath, LargeRequestCounts, SplicerSlot};
use crate::traffic::{BatchTraffic, TrafficCounters};
use dvsan_nbd::constants::{
    CHUNK_HEADER_LEN, CMD_READ, CMD_WRITE, REPLY_FLAG_DONE, REPLY_TYPE_NONE, REQUEST_HEADER_LEN,
    SIMPLE_REPLY_HEADER_LEN, STATE_HOLE, STATE_ZERO,
};
use dvsan_nbd::transmission::{
    encode_block_status_chunk, encode_data_chunk_header, encode_error_chunk, ChunkHeader, SimpleReplyHeader,
    DATA_CHUNK_PREFIX_LEN,
};
use dvsan_nbd::{validate_request, Command, Errno, ExportLimits, Refusal, RequestHeader};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Initial read buffer: room for many small requests or a few large ones per wake-up.
const READ_BUF: usize = 256 * 1024;
/// Send the replies gathered so far once they pass this size.
const OUT_FLUSH_AT: usize = 4 * 1024 * 1024;
/// Most extents in one block status reply; a client asks again for the rest.
const MAX_BLOCK_STATUS_EXTENTS: usize = 4096;
/// The id of the `base:allocation` metadata context, the only one blockd serves: block status replies carry it,
/// and the handshake announces it when a client selects the context.
pub(crate) const ALLOCATION_CONTEXT_ID: u32 = 1;
/// How often a blocked read wakes up to check for a stalled partial request.
const READ_TICK: Duration = Duration::from_millis(500);

/// One connection in transmission.
pub(crate) struct Session {
    pub id: u64,
    pub peer: SocketAddr,
    pub stream: TcpStream,
    pub export: Arc<ServedExport>,
    pub limits: ExportLimits,
    pub structured: bool,
    pub traffic: Arc<TrafficCounters>,
    pub bad_input: Arc<BadInputCounters>,
    /// Set by whoever shuts the socket down (revocation or server shutdown), so the end is logged as such.
    pub closing: Arc<AtomicBool>,
    pub stall_timeout: Duration,
    /// Poll the socket without sleeping for this long before a blocking read (zero: off).
    pub busy_poll: Duration,
    /// WRITEs of at least this many bytes whose payload is not all read yet take the rest socket → pipe → medium
    /// (zero: never).
    pub splice_write_min: u32,
    /// READs of at least this many bytes are large: they go this connection's way.
    pub large_read_min: u32,
    pub large_reads: LargeReadPath,
    /// The pipe for spliced reads, made at the first one.
    pub splicer: SplicerSlot,
    pub large_counts: LargeRequestCounts,
}

/// What the request loop wants next.
enum Flow {
    /// Read more; at least this many bytes must fit in the buffer from the current request on.
    NeedMore(usize),
    Disconnect,
    Close,
}

impl Session {
    /// Serve requests until the client disconnects, the socket is shut down, or the client misbehaves.
    pub(crate) fn run(mut self) {
        // A read timeout lets a blocked read notice a stalled partial request; a write timeout drops a client
        // that stops reading its replies.
        if let Err(e) = self.stream.set_read_timeout(Some(READ_TICK)) {
            tracing::warn!(conn = self.id, error = %e, "cannot set read timeout");
        }
        if let Err(e) = self.stream.set_write_timeout(Some(self.stall_timeout)) {
            tracing::warn!(conn = self.id, error = %e, "cannot set write timeout");
        }
        let mut inb = InBuf::new();
        let mut out = OutBuf::default();
        let mut discard: u64 = 0;
        let mut arrived = Instant::now();
        let mut last_progress = arrived;
        let end = loop {
            let mut batch = BatchTraffic::default();
            let flow = self.handle_buffered(&mut inb, &mut out, &mut discard, &mut batch, &mut arrived);
            if let Err(e) = self.flush(&mut out) {
                break format!("write failed: {e}");
            }
            self.account(&mut batch, arrived);
            let need = match flow {
                Flow::NeedMore(need) => need,
                Flow::Disconnect => break "client disconnected".to_string(),
                Flow::Close => break "closed after bad input".to_string(),
            };
            inb.make_room(need);
            match self.receive(inb.spare()) {
                Ok(0) => break "end of stream".to_string(),
                Ok(n) => {
                    inb.filled(n);
                    arrived = Instant::now();
                    last_progress = arrived;
                }
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    if self.closing.load(Ordering::Relaxed) {
                        break "closed by the server".to_string();
                    }
                    let partial = !inb.data().is_empty() || discard > 0;
                    if partial && last_progress.elapsed() > self.stall_timeout {
                        self.bad_input.bump(BadInput::StalledRequest);
                        tracing::warn!(conn = self.id, peer = %self.peer, "client stalled mid-request; closing");
                        break "stalled mid-request".to_string();
                    }
                    out.shrink_if_idle();
                    inb.shrink_if_idle();
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break format!("read failed: {e}"),
            }
        };
        let why = if self.closing.load(Ordering::Relaxed) { "closed by the server" } else { end.as_str() };
        let large = &self.large_counts;
        tracing::info!(
            conn = self.id,
            peer = %self.peer,
            export = %self.export.name,
            mapped_reads = large.mapped,
            spliced_reads = large.spliced,
            copied_large_reads = large.copied,
            spliced_writes = large.spliced_writes,
            "connection ended: {why}"
        );
    }

    /// Read from the socket. With busy polling on, first poll without blocking for up to that long (yielding the
    /// CPU between tries, so other work on this core goes first): a client usually sends its next request within
    /// microseconds of a reply, and catching it without going to sleep saves the wake-up of an idle CPU, which
    /// in a VM costs more than the request itself.
    fn receive(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.busy_poll.is_zero() {
            let fd = self.stream.as_raw_fd();
            let until = Instant::now() + self.busy_poll;
            loop {
                match nix::sys::socket::recv(fd, buf, nix::sys::socket::MsgFlags::MSG_DONTWAIT) {
                    Ok(n) => return Ok(n),
                    Err(nix::errno::Errno::EAGAIN) if Instant::now() < until => std::thread::yield_now(),
                    Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => break,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        self.stream.read(buf)
    }

    /// Handle every complete request in `inb`, appending replies to `out`.
    fn handle_buffered(
        &mut self,
        inb: &mut InBuf,
        out: &mut OutBuf,
        discard: &mut u64,
        batch: &mut BatchTraffic,
        arrived: &mut Instant,
    ) -> Flow {
        loop {
            if *discard > 0 {
                let n = usize::try_from(*discard).unwrap_or(usize::MAX).min(inb.data().len());
                inb.consume(n);
                *discard -= n as u64;
                if *discard > 0 {
                    return Flow::NeedMore(0);
                }
            }
            let header = match RequestHeader::decode(inb.data()) {
                Ok(Some(h)) => h,
                Ok(None) => return Flow::NeedMore(REQUEST_HEADER_LEN),
                Err(e) => {
                    self.bad_input.bump(BadInput::RequestBadMagic);
                    tracing::warn!(conn = self.id, peer = %self.peer, error = %e, "bad request; closing");
                    return Flow::Close;
                }
            };
            match validate_request(&header, &self.limits) {
                Err(refusal) => {
                    self.refuse(out, &header, &refusal);
                    inb.consume(REQUEST_HEADER_LEN);
                    if header.command == CMD_WRITE {
                        if matches!(refusal, Refusal::TooLarge(_)) {
                            tracing::warn!(
                                conn = self.id,
                                peer = %self.peer,
                                length = header.length,
                                "WRITE over the maximum payload; closing without reading it"
                            );
                            return Flow::Close;
                        }
                        *discard = u64::from(header.length);
                    }
                }
                Ok(Command::Write { fua }) => {
                    let total = REQUEST_HEADER_LEN + header.length as usize;
                    let res = if let Some(payload) = inb.data().get(REQUEST_HEADER_LEN..total) {
                        let res = self.export.write_at(payload, header.offset).and_then(|()| {
                            if fua {
                                self.export.sync_range(header.offset, u64::from(header.length))
                            } else {
                                Ok(())
                            }
                        });
                        inb.consume(total);
                        res
                    } else if self.splices_write(&header) {
                        // The replies gathered so far go out (and are counted) first rather than wait for this
                        // payload.
                        if let Err(e) = self.flush(out) {
                            tracing::info!(conn = self.id, error = %e, "write failed");
                            return Flow::Close;
                        }
                        self.account(batch, *arrived);
                        inb.consume(REQUEST_HEADER_LEN);
                        match self.write_spliced(inb, &header, fua, arrived) {
                            Ok(res) => res,
                            Err(e) => {
                                tracing::info!(conn = self.id, peer = %self.peer, error = %e, "receiving a large write failed");
                                return if e.kind() == io::ErrorKind::UnexpectedEof {
                                    Flow::Disconnect
                                } else {
                                    Flow::Close
                                };
                            }
                        }
                    } else {
                        return Flow::NeedMore(total);
                    };
                    if self.finish(out, &header, res, "write") {
                        batch.writes += 1;
                        batch.bytes_written += u64::from(header.length);
                    }
                }
                Ok(Command::Read) => {
                    inb.consume(REQUEST_HEADER_LEN);
                    let ok = match self.answer_read(out, &header) {
                        Ok(ok) => ok,
                        Err(e) => {
                            // What is left in `out` may be half sent: nothing more goes out on this stream.
                            out.clear();
                            tracing::info!(conn = self.id, error = %e, "sending a large read failed");
                            return Flow::Close;
                        }
                    };
                    if ok {
                        batch.reads += 1;
                        batch.bytes_read += u64::from(header.length);
                    }
                }
                Ok(Command::Flush) => {
                    inb.consume(REQUEST_HEADER_LEN);
                    let res = self.export.sync_all();
                    self.finish(out, &header, res, "flush");
                }
                Ok(Command::Trim { fua }) => {
                    inb.consume(REQUEST_HEADER_LEN);
                    let len = u64::from(header.length);
                    let res = self.export.trim(header.offset, len).and_then(|()| {
                        if fua {
                            self.export.sync_range(header.offset, len)
                        } else {
                            Ok(())
                        }
                    });
                    if self.finish(out, &header, res, "trim") {
                        batch.writes += 1;
                    }
                }
                Ok(Command::WriteZeroes { fua, no_hole }) => {
                    inb.consume(REQUEST_HEADER_LEN);
                    let len = u64::from(header.length);
                    let res = self.export.zero(header.offset, len, !no_hole).and_then(|()| {
                        if fua {
                            self.export.sync_range(header.offset, len)
                        } else {
                            Ok(())
                        }
                    });
                    if self.finish(out, &header, res, "write zeroes") {
                        batch.writes += 1;
                    }
                }
                Ok(Command::BlockStatus { req_one }) => {
                    inb.consume(REQUEST_HEADER_LEN);
                    self.block_status(out, &header, req_one);
                }
                Ok(Command::Disconnect) => {
                    inb.consume(REQUEST_HEADER_LEN);
                    return Flow::Disconnect;
                }
            }
            if out.len() >= OUT_FLUSH_AT {
                if let Err(e) = self.flush(out) {
                    tracing::info!(conn = self.id, error = %e, "write failed");
                    return Flow::Close;
                }
            }
        }
    }

    /// Send the replies gathered in `out` and empty it, also on failure: what is left may be half sent, and
    /// nothing more goes out on a stream whose write failed.
    fn flush(&self, out: &mut OutBuf) -> io::Result<()> {
        let res = if out.is_empty() { Ok(()) } else { (&self.stream).write_all(out.as_slice()) };
        out.clear();
        res
    }

    /// Add the requests answered since `arrived` (when their last bytes came in) to the traffic counters.
    fn account(&self, batch: &mut BatchTraffic, arrived: Instant) {
        if batch.requests() > 0 {
            let latency = u64::try_from(arrived.elapsed().as_micros()).unwrap_or(u64::MAX);
            self.traffic.add(batch, latency);
            *batch = BatchTraffic::default();
        }
    }

    /// Append a READ's reply: the data read straight into the reply buffer, or an error.
    pub(crate) fn read(&self, out: &mut OutBuf, h: &RequestHeader) -> bool {
        let len = h.length as usize;
        let mark = out.len();
        if self.structured {
            if len == 0 {
                append_done_chunk(out, h.handle);
                return true;
            }
            let mut prefix = [0u8; DATA_CHUNK_PREFIX_LEN];
            encode_data_chunk_header(&mut prefix, h.handle, h.offset, h.length, true);
            out.append(&prefix);
        } else {
            let mut header = [0u8; SIMPLE_REPLY_HEADER_LEN];
            SimpleReplyHeader { error: 0, handle: h.handle }.encode_into(&mut header);
            out.append(&header);
        }
        let res = self.export.read_at(out.extend(len), h.offset);
        if res.is_err() {
            out.truncate(mark);
        }
        self.finish(out, h, res, "read")
    }

    /// Answer NBD_CMD_BLOCK_STATUS for `base:allocation` with one final chunk of extents (one with REQ_ONE).
    fn block_status(&self, out: &mut OutBuf, h: &RequestHeader, req_one: bool) {
        let max_runs = if req_one { 1 } else { MAX_BLOCK_STATUS_EXTENTS };
        match self.export.allocation(h.offset, u64::from(h.length), max_runs) {
            Ok(runs) => {
                // Each run lies inside the request, whose length is a u32.
                let extents: Vec<(u32, u32)> = runs
                    .iter()
                    .map(|&(len, hole)| {
                        (u32::try_from(len).unwrap_or(u32::MAX), if hole { STATE_HOLE | STATE_ZERO } else { 0 })
                    })
                    .collect();
                let mut chunk = Vec::with_capacity(CHUNK_HEADER_LEN + 4 + 8 * extents.len());
                encode_block_status_chunk(&mut chunk, h.handle, ALLOCATION_CONTEXT_ID, &extents, true);
                out.append(&chunk);
            }
            Err(e) => {
                self.finish(out, h, Err(e), "block status");
            }
        }
    }

    /// Append the reply for a request without data; returns whether it succeeded.
    pub(crate) fn finish(&self, out: &mut OutBuf, h: &RequestHeader, res: io::Result<()>, what: &str) -> bool {
        match res {
            Ok(()) => {
                // READ already wrote its success header with the data.
                if h.command != CMD_READ {
                    let mut header = [0u8; SIMPLE_REPLY_HEADER_LEN];
                    SimpleReplyHeader { error: 0, handle: h.handle }.encode_into(&mut header);
                    out.append(&header);
                }
                true
            }
            Err(e) => {
                let errno = self.media_failure(h, &e, what);
                self.error_reply(out, h, errno, &format!("{what} failed: {e}"));
                false
            }
        }
    }

    /// Count and log a request the media failed; returns the error to reply with.
    pub(crate) fn media_failure(&self, h: &RequestHeader, e: &io::Error, what: &str) -> Errno {
        let errno = io_errno(e);
        self.bad_input.bump(BadInput::MediaError);
        tracing::warn!(
            conn = self.id,
            export = %self.export.name,
            offset = h.offset,
            length = h.length,
            error = %e,
            "{what} failed: replying {errno}"
        );
        errno
    }

    fn refuse(&self, out: &mut OutBuf, h: &RequestHeader, refusal: &Refusal) {
        self.bad_input.bump(BadInput::from_refusal(refusal));
        tracing::debug!(
            conn = self.id,
            peer = %self.peer,
            command = h.command,
            flags = h.flags,
            offset = h.offset,
            length = h.length,
            "refused: {}",
            refusal.message()
        );
        self.error_reply(out, h, refusal.errno(), refusal.message());
    }

    fn error_reply(&self, out: &mut OutBuf, h: &RequestHeader, errno: Errno, message: &str) {
        if self.structured {
            // Error path only: a small allocation is fine here.
            let mut chunk = Vec::with_capacity(64 + message.len());
            encode_error_chunk(&mut chunk, h.handle, errno, message);
            out.append(&chunk);
        } else {
            let mut header = [0u8; SIMPLE_REPLY_HEADER_LEN];
            SimpleReplyHeader { error: errno.0, handle: h.handle }.encode_into(&mut header);
            out.append(&header);
        }
    }
}

/// Append a final NBD_REPLY_TYPE_NONE chunk (without allocating).
pub(crate) fn append_done_chunk(out: &mut OutBuf, handle: u64) {
    let mut done = [0u8; CHUNK_HEADER_LEN];
    ChunkHeader { flags: REPLY_FLAG_DONE, kind: REPLY_TYPE_NONE, handle, length: 0 }.encode_into(&mut done);
    out.append(&done);
}

/// Send all of `bytes` with MSG_MORE: the data that belongs with them follows at once.
pub(crate) fn send_more(stream: &TcpStream, bytes: &[u8]) -> io::Result<()> {
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

/// The spec's advice: ENOSPC for out-of-space conditions, EIO for the rest.
fn io_errno(e: &io::Error) -> Errno {
    match e.raw_os_error() {
        Some(nix::libc::ENOSPC) | Some(nix::libc::EDQUOT) | Some(nix::libc::EFBIG) => Errno::ENOSPC,
        _ => Errno::EIO,
    }
}

/// The read buffer: bytes `start..end` of `buf` are received and not yet handled.
pub(crate) struct InBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl InBuf {
    fn new() -> InBuf {
        InBuf { buf: vec![0; READ_BUF], start: 0, end: 0 }
    }

    pub(crate) fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    pub(crate) fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Make sure a request of `need` bytes starting at `start` fits, and that there is free space to read into.
    fn make_room(&mut self, need: usize) {
        let pending = self.end - self.start;
        if self.start > 0 && (self.buf.len() - self.start < need.max(READ_BUF / 4) || self.end == self.buf.len()) {
            self.buf.copy_within(self.start..self.end, 0);
            self.start = 0;
            self.end = pending;
        }
        if self.buf.len() < need {
            self.buf.resize(need, 0);
        }
        if self.end == self.buf.len() {
            // Full with one incomplete request that fits (need <= len): cannot happen, but never spin on a zero
            // length read.
            let grow = self.buf.len() + READ_BUF;
            self.buf.resize(grow, 0);
        }
    }

    fn spare(&mut self) -> &mut [u8] {
        &mut self.buf[self.end..]
    }

    fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }

    /// Give back the memory of a large request once the connection is idle.
    fn shrink_if_idle(&mut self) {
        if self.end == 0 && self.buf.len() > READ_BUF {
            self.buf.truncate(READ_BUF);
            self.buf.shrink_to_fit();
        }
    }
}

/// The reply buffer. `buf[..len]` is pending output; `buf` keeps its initialised length as a high-water mark so
/// reads can land in it without zeroing memory per request.
#[derive(Default)]
pub(crate) struct OutBuf {
    buf: Vec<u8>,
    len: usize,
}

impl OutBuf {
    fn len(&self) -> usize {
        self.len
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    pub(crate) fn clear(&mut self) {
        self.len = 0;
    }

    fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// `n` more bytes of output, to be filled by the caller.
    fn extend(&mut self, n: usize) -> &mut [u8] {
        let start = self.len;
        let end = start + n;
        if self.buf.len() < end {
            self.buf.resize(end, 0);
        }
        self.len = end;
        &mut self.buf[start..end]
    }

    pub(crate) fn append(&mut self, bytes: &[u8]) {
        self.extend(bytes.len()).copy_from_slice(bytes);
    }

    fn shrink_if_idle(&mut self) {
        if self.len == 0 && self.buf.len() > OUT_FLUSH_AT {
            self.buf.truncate(READ_BUF);
            self.buf.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_buffer_compacts_and_grows_for_a_large_request() {
        let mut b = InBuf::new();
        b.make_room(REQUEST_HEADER_LEN);
        let n = b.spare().len();
        assert_eq!(n, READ_BUF);
        b.filled(READ_BUF);
        b.consume(READ_BUF - 10);
        // 10 bytes of a request left at the end: they move to the front, with room for a 1 MiB write behind.
        b.make_room(REQUEST_HEADER_LEN + (1 << 20));
        assert_eq!((b.start, b.end), (0, 10));
        assert!(b.spare().len() >= REQUEST_HEADER_LEN + (1 << 20) - 10);
        b.consume(10);
        assert_eq!((b.start, b.end), (0, 0));
        b.shrink_if_idle();
        assert_eq!(b.buf.len(), READ_BUF);
    }

    #[test]
    fn reply_buffer_reuses_its_memory() {
        let mut o = OutBuf::default();
        o.append(b"abc");
        o.extend(4).copy_from_slice(b"defg");
        assert_eq!(o.as_slice(), b"abcdefg");
        o.truncate(3);
        assert_eq!(o.as_slice(), b"abc");
        o.clear();
        assert!(o.is_empty());
        assert_eq!(o.buf.len(), 7, "high-water mark kept");
    }
}
