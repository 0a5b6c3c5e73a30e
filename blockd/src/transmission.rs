//! The data path: one OS thread per connection in transmission, blocking socket I/O, requests done inline.
//!
//! Each wake-up reads as much as the socket has into one buffer, then handles every complete request in it
//! (pread straight into the reply buffer, pwrite straight from the read buffer), then sends all their replies with
//! one write. At queue depth 32 that turns dozens of requests into two syscalls plus the file I/O, with no
//! allocation or thread hand-off per request. Replies go out in request order, which the spec allows.
//!
//! The connection is a [`Transport`]: the TCP socket, or a TLS session over it; the loop is the same. Only a plain
//! socket takes the zero-copy paths below (TLS connections copy large reads and writes like small ones).
//!
//! Large reads on connections with structured replies skip the reply buffer ([`crate::large_reads`]): their data
//! goes from the media to the socket by a mapping or a pipe, after whatever replies are gathered before them, so
//! replies still go out in request order.
//!
//! Large writes whose payload does not fit the read buffer take the rest of it straight from the socket to the
//! media ([`crate::large_writes`]).
//!
//! Memory is bounded: the read buffer grows only to hold one complete request (header plus at most the 32 MiB
//! maximum payload, and only when the payload cannot be spliced), and the reply buffer is sent whenever it reaches
//! the size it may have (`--reply-buffer-kib`, as far as the server-wide `--reply-memory-mib` allows: see
//! [`crate::buffers`]). A READ larger than that is read and sent in pieces of that size: over structured replies
//! as one data chunk per piece (a medium failing part-way ends the reply with an error chunk for the offset, as
//! large reads do); over simple replies after one header, so a medium failing after the first piece can only
//! close the connection (the header said the read succeeded). A client that does not read its replies leaves
//! its thread waiting in the write, reading no more requests, until the stall limit closes it. A WRITE refused for its range or mode has its payload read and dropped in buffer-sized pieces; a WRITE over the maximum payload gets
//! EINVAL and the connection is closed without reading the payload. A client that leaves a partial request for
//! longer than the stall limit, or does not read its replies for that long, is disconnected.

use crate::admission::Activity;
use crate::bad_input::{BadInput, BadInputCounters};
use crate::buffers::{append_done_chunk, InBuf, OutBuf, ReplyBudget};
use crate::exports::ServedExport;
use crate::large_reads::{self, LargeReadEnd, LargeReadPath};
use crate::large_writes::SplicedWrite;
use crate::splice_pipe::SplicerSlot;
use crate::traffic::{BatchTraffic, TrafficCounters};
use crate::transport::Transport;
use dvsan_nbd::constants::{
    CHUNK_HEADER_LEN, CMD_READ, CMD_WRITE, REQUEST_HEADER_LEN, SIMPLE_REPLY_HEADER_LEN, STATE_HOLE, STATE_ZERO,
};
use dvsan_nbd::transmission::{
    encode_block_status_chunk, encode_data_chunk_header, encode_error_chunk, encode_error_offset_chunk,
    SimpleReplyHeader, DATA_CHUNK_PREFIX_LEN,
};
use dvsan_nbd::{validate_request, Command, Errno, ExportLimits, Refusal, RequestHeader};
use std::io;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most extents in one block status reply; a client asks again for the rest.
const MAX_BLOCK_STATUS_EXTENTS: usize = 4096;
/// The id of the `base:allocation` metadata context, the only one blockd serves: block status replies carry it,
/// and the handshake announces it when a client selects the context.
pub(crate) const ALLOCATION_CONTEXT_ID: u32 = 1;
/// How often a blocked read wakes up to check for a stalled partial request.
const READ_TICK: Duration = Duration::from_millis(500);

/// One connection in transmission, over a plain socket or TLS.
pub(crate) struct Session<T: Transport> {
    pub id: u64,
    pub peer: SocketAddr,
    pub stream: T,
    pub export: Arc<ServedExport>,
    pub limits: ExportLimits,
    pub structured: bool,
    pub traffic: Arc<TrafficCounters>,
    pub bad_input: Arc<BadInputCounters>,
    /// Set by whoever shuts the socket down (revocation or server shutdown), so the end is logged as such.
    pub closing: Arc<AtomicBool>,
    pub stall_timeout: Duration,
    /// The connection's served slot's view of it: marked idle after `idle_after` without a request in flight, so
    /// a new host may take its slot when the table is full.
    pub activity: Arc<Activity>,
    pub idle_after: Duration,
    /// Poll the socket without sleeping for this long before a blocking read (zero: off).
    pub busy_poll: Duration,
    /// WRITEs of at least this many bytes whose payload is not all read yet take the rest socket → pipe → medium
    /// (zero: never).
    pub splice_write_min: u32,
    /// READs of at least this many bytes are large: they go this connection's way.
    pub large_read_min: u32,
    pub large_reads: LargeReadPath,
    /// Most bytes of replies this connection gathers before sending them, budget permitting.
    pub reply_buffer: usize,
    /// Reply buffer memory shared by every connection.
    pub reply_budget: Arc<ReplyBudget>,
    /// The pipe for spliced reads, made at the first one.
    pub splicer: SplicerSlot,
    pub large_counts: LargeRequestCounts,
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

/// What the request loop wants next.
enum Flow {
    /// Read more; at least this many bytes must fit in the buffer from the current request on.
    NeedMore(usize),
    Disconnect,
    Close,
}

impl<T: Transport> Session<T> {
    /// Serve requests until the client disconnects, the socket is shut down, or the client misbehaves.
    pub(crate) fn run(mut self) {
        // A read timeout lets a blocked read notice a stalled partial request; a write timeout drops a client
        // that stops reading its replies.
        if let Err(e) = self.stream.socket().set_read_timeout(Some(READ_TICK)) {
            tracing::warn!(conn = self.id, error = %e, "cannot set read timeout");
        }
        if let Err(e) = self.stream.socket().set_write_timeout(Some(self.stall_timeout)) {
            tracing::warn!(conn = self.id, error = %e, "cannot set write timeout");
        }
        let mut inb = InBuf::new();
        let mut out = OutBuf::with_budget(self.reply_budget.clone());
        let mut discard: u64 = 0;
        let mut arrived = Instant::now();
        let mut last_progress = arrived;
        // Whether `activity` says idle; only this loop changes it, so the data path touches it only on a change.
        let mut idle = false;
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
                    if idle {
                        idle = false;
                        self.activity.set_idle(false);
                    }
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
                    if !partial && !idle && last_progress.elapsed() >= self.idle_after {
                        idle = true;
                        self.activity.set_idle(true);
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
            let until = Instant::now() + self.busy_poll;
            loop {
                match self.stream.try_read(buf) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < until => {
                        std::thread::yield_now()
                    }
                    Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => break,
                    Err(e) => return Err(e),
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
            if let ControlFlow::Break(flow) = self.handle_next(inb, out, discard, batch, arrived) {
                return flow;
            }
            if out.len() >= out.room(self.reply_buffer) {
                if let Err(e) = self.flush(out) {
                    tracing::info!(conn = self.id, error = %e, "write failed");
                    return Flow::Close;
                }
            }
        }
    }

    /// Handle the next request in `inb`, after dropping what it holds of a refused WRITE's payload (`discard`
    /// bytes are still to come); `Break` says what the request loop does next.
    fn handle_next(
        &mut self,
        inb: &mut InBuf,
        out: &mut OutBuf,
        discard: &mut u64,
        batch: &mut BatchTraffic,
        arrived: &mut Instant,
    ) -> ControlFlow<Flow> {
        drop_discarded(inb, discard)?;
        let header = self.next_header(inb)?;
        match validate_request(&header, &self.limits) {
            Err(refusal) => {
                inb.consume(REQUEST_HEADER_LEN);
                return self.refuse_request(out, &header, &refusal, discard);
            }
            Ok(Command::Write { fua }) => return self.write(inb, out, &header, fua, batch, arrived),
            Ok(Command::Read) => {
                inb.consume(REQUEST_HEADER_LEN);
                return self.read_request(out, &header, batch);
            }
            Ok(Command::Flush) => {
                inb.consume(REQUEST_HEADER_LEN);
                let res = self.export.sync_all();
                self.finish(out, &header, res, "flush");
            }
            Ok(Command::Trim { fua }) => {
                inb.consume(REQUEST_HEADER_LEN);
                let res = self.export.trim(header.offset, u64::from(header.length));
                if self.finish(out, &header, res.and_then(|()| self.sync_if(fua, &header)), "trim") {
                    batch.writes += 1;
                }
            }
            Ok(Command::WriteZeroes { fua, no_hole }) => {
                inb.consume(REQUEST_HEADER_LEN);
                let res = self.export.zero(header.offset, u64::from(header.length), !no_hole);
                if self.finish(out, &header, res.and_then(|()| self.sync_if(fua, &header)), "write zeroes") {
                    batch.writes += 1;
                }
            }
            Ok(Command::BlockStatus { req_one }) => {
                inb.consume(REQUEST_HEADER_LEN);
                self.block_status(out, &header, req_one);
            }
            Ok(Command::Disconnect) => {
                inb.consume(REQUEST_HEADER_LEN);
                return ControlFlow::Break(Flow::Disconnect);
            }
        }
        ControlFlow::Continue(())
    }

    /// The header of the next request in `inb`, or what to do without one: read more, or close on a bad magic.
    fn next_header(&self, inb: &InBuf) -> ControlFlow<Flow, RequestHeader> {
        match RequestHeader::decode(inb.data()) {
            Ok(Some(h)) => ControlFlow::Continue(h),
            Ok(None) => ControlFlow::Break(Flow::NeedMore(REQUEST_HEADER_LEN)),
            Err(e) => {
                self.bad_input.bump(BadInput::RequestBadMagic);
                tracing::warn!(conn = self.id, peer = %self.peer, error = %e, "bad request; closing");
                ControlFlow::Break(Flow::Close)
            }
        }
    }

    /// Answer a request [`validate_request`] refused (its header consumed). A refused WRITE's payload is dropped
    /// as it comes (`discard`), unless it is over the maximum payload: then the connection closes without reading
    /// it.
    fn refuse_request(
        &self,
        out: &mut OutBuf,
        h: &RequestHeader,
        refusal: &Refusal,
        discard: &mut u64,
    ) -> ControlFlow<Flow> {
        self.refuse(out, h, refusal);
        if h.command == CMD_WRITE {
            if matches!(refusal, Refusal::TooLarge(_)) {
                tracing::warn!(
                    conn = self.id,
                    peer = %self.peer,
                    length = h.length,
                    "WRITE over the maximum payload; closing without reading it"
                );
                return ControlFlow::Break(Flow::Close);
            }
            *discard = u64::from(h.length);
        }
        ControlFlow::Continue(())
    }

    /// A WRITE: from the read buffer if its whole payload is there, else spliced off the socket if it is large
    /// enough, else after reading the rest into the buffer.
    fn write(
        &mut self,
        inb: &mut InBuf,
        out: &mut OutBuf,
        h: &RequestHeader,
        fua: bool,
        batch: &mut BatchTraffic,
        arrived: &mut Instant,
    ) -> ControlFlow<Flow> {
        let total = REQUEST_HEADER_LEN + h.length as usize;
        let res = if let Some(payload) = inb.data().get(REQUEST_HEADER_LEN..total) {
            let res = self.export.write_at(payload, h.offset).and_then(|()| self.sync_if(fua, h));
            inb.consume(total);
            res
        } else if self.splices_write(h) {
            self.receive_spliced(inb, out, h, fua, batch, arrived)?
        } else {
            return ControlFlow::Break(Flow::NeedMore(total));
        };
        if self.finish(out, h, res, "write") {
            batch.writes += 1;
            batch.bytes_written += u64::from(h.length);
        }
        ControlFlow::Continue(())
    }

    /// A WRITE whose payload is spliced off the socket: the replies gathered so far go out (and are counted)
    /// first rather than wait for it. Continue carries the media's result; Break ends the connection.
    fn receive_spliced(
        &mut self,
        inb: &mut InBuf,
        out: &mut OutBuf,
        h: &RequestHeader,
        fua: bool,
        batch: &mut BatchTraffic,
        arrived: &mut Instant,
    ) -> ControlFlow<Flow, io::Result<()>> {
        if let Err(e) = self.flush(out) {
            tracing::info!(conn = self.id, error = %e, "write failed");
            return ControlFlow::Break(Flow::Close);
        }
        self.account(batch, *arrived);
        inb.consume(REQUEST_HEADER_LEN);
        match self.write_spliced(inb, h, fua, arrived) {
            Ok(res) => ControlFlow::Continue(res),
            Err(e) => {
                tracing::info!(conn = self.id, peer = %self.peer, error = %e, "receiving a large write failed");
                let eof = e.kind() == io::ErrorKind::UnexpectedEof;
                ControlFlow::Break(if eof { Flow::Disconnect } else { Flow::Close })
            }
        }
    }

    /// A READ (its header consumed), counted if it succeeded; Break closes the connection when a large read's
    /// socket failed.
    fn read_request(&mut self, out: &mut OutBuf, h: &RequestHeader, batch: &mut BatchTraffic) -> ControlFlow<Flow> {
        match self.answer_read(out, h) {
            Ok(true) => {
                batch.reads += 1;
                batch.bytes_read += u64::from(h.length);
            }
            Ok(false) => {}
            Err(e) => {
                // What is left in `out` may be half sent: nothing more goes out on this stream.
                out.clear();
                tracing::info!(conn = self.id, error = %e, "sending a large read failed");
                return ControlFlow::Break(Flow::Close);
            }
        }
        ControlFlow::Continue(())
    }

    /// With FUA, make the request's range durable.
    fn sync_if(&self, fua: bool, h: &RequestHeader) -> io::Result<()> {
        if fua {
            self.export.sync_range(h.offset, u64::from(h.length))
        } else {
            Ok(())
        }
    }

    /// Send the replies gathered in `out` and empty it, also on failure: what is left may be half sent, and
    /// nothing more goes out on a stream whose write failed.
    fn flush(&mut self, out: &mut OutBuf) -> io::Result<()> {
        // A TLS stream may hold the last records until flushed.
        let res = if out.is_empty() {
            Ok(())
        } else {
            self.stream.write_all(out.as_slice()).and_then(|()| self.stream.flush())
        };
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

    /// Answer a READ the connection's way. Returns whether the read succeeded (a media error is answered with an
    /// error reply); `Err` means the socket failed and the connection must close.
    fn answer_read(&mut self, out: &mut OutBuf, h: &RequestHeader) -> io::Result<bool> {
        if h.length < self.large_read_min {
            return self.read(out, h);
        }
        let mut way = self.large_reads;
        if way == LargeReadPath::Mapped {
            // Reads whose pages are not all in memory are spliced (or copied, without a pipe).
            match large_reads::mappable(&self.export, h) {
                Ok(true) => {}
                Ok(false) => way = LargeReadPath::Spliced,
                // A range that does not map onto the media is a failed read, answered like a media error.
                Err(e) => return Ok(self.finish(out, h, Err(e), "read")),
            }
        }
        self.send_large(out, h, way)
    }

    /// Answer a large READ `way` (spliced falls back to copied without a pipe), after the replies gathered in
    /// `out`; what [`answer_read`](Session::answer_read) returns.
    fn send_large(&mut self, out: &mut OutBuf, h: &RequestHeader, way: LargeReadPath) -> io::Result<bool> {
        let Some(socket) = self.stream.plain() else { return self.copy_large(out, h) };
        let end = match way {
            LargeReadPath::Mapped => large_reads::send_mapped(socket, &self.export, out, h)?,
            LargeReadPath::Spliced => match self.splicer.ready(self.id) {
                Some(splicer) => large_reads::send_spliced(socket, &self.export, splicer, out, h)?,
                None => return self.copy_large(out, h),
            },
            LargeReadPath::Copied => return self.copy_large(out, h),
        };
        Ok(match end {
            LargeReadEnd::Done => {
                match way {
                    LargeReadPath::Mapped => self.large_counts.mapped += 1,
                    _ => self.large_counts.spliced += 1,
                }
                true
            }
            LargeReadEnd::NotStarted(e) => self.finish(out, h, Err(e), "read"),
            LargeReadEnd::FailedAt { at, error } => self.fail_read_at(out, h, at, &error),
        })
    }

    /// Answer a large READ through the reply buffer, like a small one.
    fn copy_large(&mut self, out: &mut OutBuf, h: &RequestHeader) -> io::Result<bool> {
        self.large_counts.copied += 1;
        self.read(out, h)
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

    /// Whether this WRITE's payload should be spliced off the socket (making the pipe on first use).
    fn splices_write(&mut self, h: &RequestHeader) -> bool {
        self.splice_write_min > 0
            && h.length >= self.splice_write_min
            && self.stream.plain().is_some()
            && self.splicer.ready(self.id).is_some()
    }

    /// Take a WRITE's payload socket → pipe → medium ([`SplicedWrite::receive`]), disconnecting a client that
    /// stalls mid-payload.
    fn write_spliced(
        &mut self,
        inb: &mut InBuf,
        h: &RequestHeader,
        fua: bool,
        arrived: &mut Instant,
    ) -> io::Result<io::Result<()>> {
        let (Some(stream), Some(splicer)) = (self.stream.plain(), self.splicer.ready(self.id)) else {
            return Err(io::Error::other("no plain socket or no splice pipe for a spliced write"));
        };
        let (closing, bad_input) = (&self.closing, &self.bad_input);
        let (id, peer, stall_timeout) = (self.id, self.peer, self.stall_timeout);
        let write = SplicedWrite { stream, export: &self.export, splicer };
        let res = write.receive(inb, h, fua, arrived, |idle, e| {
            if closing.load(Ordering::Relaxed) {
                return Err(io::Error::other("closed by the server"));
            }
            if idle > stall_timeout {
                bad_input.bump(BadInput::StalledRequest);
                tracing::warn!(conn = id, %peer, "client stalled mid-payload; closing");
                return Err(e);
            }
            Ok(())
        });
        if matches!(res, Ok(Ok(()))) {
            self.large_counts.spliced_writes += 1;
        }
        res
    }

    /// Append a READ's reply: the data read straight into the reply buffer, or an error; a READ larger than the
    /// reply buffer may be goes out in pieces ([`read_in_pieces`](Session::read_in_pieces)). Returns whether the
    /// read succeeded; `Err` means the socket failed, or the medium failed after a simple reply's header went out,
    /// and the connection must close.
    fn read(&mut self, out: &mut OutBuf, h: &RequestHeader) -> io::Result<bool> {
        let len = h.length as usize;
        let room = out.room(self.reply_buffer);
        if len > room {
            return self.read_in_pieces(out, h, room);
        }
        if out.len() + len > room {
            self.flush(out)?;
        }
        Ok(self.read_whole(out, h))
    }

    /// Append a READ's whole reply to `out`.
    fn read_whole(&self, out: &mut OutBuf, h: &RequestHeader) -> bool {
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

    /// Send a READ larger than the reply buffer in pieces of `piece` bytes, each read into the buffer and sent
    /// before the next (see the module doc for how a failing medium ends it).
    fn read_in_pieces(&mut self, out: &mut OutBuf, h: &RequestHeader, piece: usize) -> io::Result<bool> {
        self.flush(out)?;
        let total = u64::from(h.length);
        let mut done: u64 = 0;
        while done < total {
            let n = piece.min(usize::try_from(total - done).unwrap_or(usize::MAX));
            let last = done + n as u64 == total;
            let at = h.offset + done;
            let mark = out.len();
            if self.structured {
                let mut prefix = [0u8; DATA_CHUNK_PREFIX_LEN];
                // n <= piece <= the 32 MiB maximum payload.
                encode_data_chunk_header(&mut prefix, h.handle, at, n as u32, last);
                out.append(&prefix);
            } else if done == 0 {
                let mut header = [0u8; SIMPLE_REPLY_HEADER_LEN];
                SimpleReplyHeader { error: 0, handle: h.handle }.encode_into(&mut header);
                out.append(&header);
            }
            if let Err(e) = self.export.read_at(out.extend(n), at) {
                out.truncate(mark);
                if done == 0 {
                    // Nothing of this reply went out yet: an ordinary error reply.
                    return Ok(self.finish(out, h, Err(e), "read"));
                }
                if self.structured {
                    return Ok(self.fail_read_at(out, h, at, &e));
                }
                self.media_failure(h, &e, "read");
                return Err(io::Error::other(format!(
                    "the medium failed at offset {at} after the simple reply's header went out: {e}"
                )));
            }
            done += n as u64;
            if !last {
                self.flush(out)?;
            }
        }
        Ok(true)
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
    fn finish(&self, out: &mut OutBuf, h: &RequestHeader, res: io::Result<()>, what: &str) -> bool {
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
    fn media_failure(&self, h: &RequestHeader, e: &io::Error, what: &str) -> Errno {
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

/// Drop what `inb` holds of a refused WRITE's payload; Break (read more) while `discard` bytes of it are still to
/// come.
fn drop_discarded(inb: &mut InBuf, discard: &mut u64) -> ControlFlow<Flow> {
    if *discard > 0 {
        let n = usize::try_from(*discard).unwrap_or(usize::MAX).min(inb.data().len());
        inb.consume(n);
        *discard -= n as u64;
        if *discard > 0 {
            return ControlFlow::Break(Flow::NeedMore(0));
        }
    }
    ControlFlow::Continue(())
}

/// The spec's advice: ENOSPC for out-of-space conditions, EIO for the rest.
fn io_errno(e: &io::Error) -> Errno {
    match e.raw_os_error() {
        Some(nix::libc::ENOSPC) | Some(nix::libc::EDQUOT) | Some(nix::libc::EFBIG) => Errno::ENOSPC,
        _ => Errno::EIO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exports::{MediaSet, ServedExport};
    use crate::mapped_read::MediumMapping;
    use dvsan_layout::{Blocks, ExportKind, Extent, Lba, MediaMap, Medium, MediumKind, VolumeIndex};
    use dvsan_nbd::constants::{CMD_READ, REPLY_TYPE_ERROR_OFFSET, REPLY_TYPE_OFFSET_DATA};
    use dvsan_nbd::transmission::ChunkHeader;
    use dvsan_nbd::transmission::ErrorChunk;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    const KIB: usize = 1024;

    /// A mapped-read session on one medium of `bytes` (written with 0x5a and mapped whole) that is then cut to
    /// `cut` bytes, and the client end of its socket.
    fn session_on_cut_medium(dir: &std::path::Path, bytes: usize, cut: u64) -> (Session<TcpStream>, TcpStream) {
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
            activity: Default::default(),
            idle_after: Duration::from_secs(5),
            busy_poll: Duration::ZERO,
            splice_write_min: 0,
            large_read_min: 64 * KIB as u32,
            large_reads: LargeReadPath::Mapped,
            reply_buffer: 1 << 20,
            reply_budget: ReplyBudget::new(1 << 20),
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
        assert!(!session.send_large(&mut out, &h, LargeReadPath::Mapped).unwrap(), "the read failed");
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
}
