//! Large WRITEs whose payload is still arriving: the part already read into the request buffer is written from
//! there, the rest goes socket → pipe → medium with `splice(2)` ([`crate::splice_pipe::Splicer`]), so those
//! bytes are copied once on this side (into the page cache) instead of twice (into our buffer, then out of it),
//! and the request buffer never grows to the payload's size.
//!
//! A medium that fails part-way does not end the request early: the rest of the payload is still taken off the
//! socket and dropped, so the stream stays framed, and the reply carries the error. A client that stops sending
//! mid-payload for longer than the stall limit is disconnected, as in the request loop.

use crate::bad_input::BadInput;
use crate::large_reads::SplicerSlot;
use crate::transmission::{InBuf, Session};
use dvsan_nbd::RequestHeader;
use std::io;
use std::sync::atomic::Ordering;
use std::time::Instant;

impl Session {
    /// Whether this WRITE's payload should be spliced off the socket (making the pipe on first use).
    pub(crate) fn splices_write(&mut self, h: &RequestHeader) -> bool {
        self.splice_write_min > 0 && h.length >= self.splice_write_min && self.splicer_ready()
    }

    /// Take the WRITE's payload (its start is in `inb`, the header already consumed) and write it; `arrived`
    /// becomes the time its last bytes came in, from which its latency counts. The outer error means the socket
    /// failed (UnexpectedEof: the client hung up) and the connection must close; the inner result is the
    /// media's, for the reply.
    pub(crate) fn write_spliced(
        &mut self,
        inb: &mut InBuf,
        h: &RequestHeader,
        fua: bool,
        arrived: &mut Instant,
    ) -> io::Result<io::Result<()>> {
        let len = u64::from(h.length);
        let buffered = inb.data().len().min(h.length as usize);
        let mut media = self.export.write_at(&inb.data()[..buffered], h.offset);
        inb.consume(buffered);
        let SplicerSlot::Ready(splicer) = &mut self.splicer else {
            return Err(io::Error::other("no splice pipe for a spliced write"));
        };
        let mut done = buffered as u64;
        let mut last_progress = Instant::now();
        while done < len {
            let want = (len - done).min(splicer.capacity() as u64) as usize;
            let got = match splicer.fill_from_socket(&self.stream, want) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "client closed mid-payload")),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    if self.closing.load(Ordering::Relaxed) {
                        return Err(io::Error::other("closed by the server"));
                    }
                    if last_progress.elapsed() > self.stall_timeout {
                        self.bad_input.bump(BadInput::StalledRequest);
                        tracing::warn!(conn = self.id, peer = %self.peer, "client stalled mid-payload; closing");
                        return Err(e);
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            last_progress = Instant::now();
            *arrived = last_progress;
            if media.is_ok() {
                media = self.export.segments(h.offset + done, got as u64).and_then(|segments| {
                    for seg in segments {
                        let seg = seg?;
                        splicer.drain_to_file(seg.file, seg.at, seg.range.len())?;
                    }
                    Ok(())
                });
            }
            // After a media error the payload is still read, and dropped.
            if media.is_err() {
                splicer.discard();
            }
            done += got as u64;
        }
        if media.is_ok() && fua {
            media = self.export.sync_range(h.offset, len);
        }
        if media.is_ok() {
            self.large_counts.spliced_writes += 1;
        }
        Ok(media)
    }
}
