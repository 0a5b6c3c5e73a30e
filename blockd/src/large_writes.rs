//! Large WRITEs whose payload is still arriving: the part already read into the request buffer is written from
//! there, the rest goes socket → pipe → medium with `splice(2)` ([`crate::splice_pipe::Splicer`]), so those
//! bytes are copied once on this side (into the page cache) instead of twice (into our buffer, then out of it),
//! and the request buffer never grows to the payload's size.
//!
//! A medium that fails part-way does not end the request early: the rest of the payload is still taken off the
//! socket and dropped, so the stream stays framed, and the reply carries the error. A client that stops sending
//! mid-payload for longer than the stall limit is disconnected, as in the request loop (which decides that: it is
//! asked each time the socket has had nothing for a while).

use crate::buffers::InBuf;
use crate::exports::ServedExport;
use crate::splice_pipe::Splicer;
use dvsan_nbd::RequestHeader;
use std::io;
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A WRITE whose payload is taken off a connection's socket through its pipe.
pub(crate) struct SplicedWrite<'a> {
    pub stream: &'a TcpStream,
    pub export: &'a ServedExport,
    pub splicer: &'a mut Splicer,
}

impl SplicedWrite<'_> {
    /// Take the WRITE's payload (its start is in `inb`, the header already consumed) and write it; `arrived`
    /// becomes the time its last bytes came in, from which its latency counts. Each time the socket has had
    /// nothing for a read timeout, `waited(time since the last bytes, the timeout)` says whether to wait on
    /// (`Ok`) or to give up with the error it returns. The outer error means the socket failed (UnexpectedEof:
    /// the client hung up) and the connection must close; the inner result is the media's, for the reply.
    pub(crate) fn receive(
        self,
        inb: &mut InBuf,
        h: &RequestHeader,
        fua: bool,
        arrived: &mut Instant,
        mut waited: impl FnMut(Duration, io::Error) -> io::Result<()>,
    ) -> io::Result<io::Result<()>> {
        let SplicedWrite { stream, export, splicer } = self;
        let len = u64::from(h.length);
        let buffered = inb.data().len().min(h.length as usize);
        let mut media = export.write_at(&inb.data()[..buffered], h.offset);
        inb.consume(buffered);
        let mut done = buffered as u64;
        let mut last_progress = Instant::now();
        while done < len {
            let want = (len - done).min(splicer.capacity() as u64) as usize;
            let got = match splicer.fill_from_socket(stream, want) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "client closed mid-payload")),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    waited(last_progress.elapsed(), e)?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            last_progress = Instant::now();
            *arrived = last_progress;
            if media.is_ok() {
                media = export.segments(h.offset + done, got as u64).and_then(|segments| {
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
            media = export.sync_range(h.offset, len);
        }
        Ok(media)
    }
}
