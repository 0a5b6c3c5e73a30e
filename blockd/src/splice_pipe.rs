//! A connection's pipe for `splice(2)`: large reads go media → pipe → socket and large writes socket → pipe →
//! media, never through our memory.
//!
//! A buffered READ copies its data twice on the server (page cache into the reply buffer, reply buffer into the
//! socket); for 1 MiB reads those copies are most of the server's work and cap one connection at one core.
//! Splicing moves page references instead: file to pipe, pipe to socket. The transmission loop uses it for large
//! reads on connections with structured replies, where each pipe-full becomes one data chunk: the chunk's data is
//! already in the pipe when its header is sent, so a media error is found before anything is promised and is
//! answered with an error chunk, as for a buffered read.
//!
//! Large WRITEs go the other way: the payload still in the socket moves socket → pipe → medium, so its bytes are
//! copied once (into the page cache) instead of twice.
//!
//! The pipe belongs to one connection and is empty between calls; on an error it is drained before returning.

use nix::fcntl::{fcntl, splice, FcntlArg, OFlag, SpliceFFlags};
use std::fs::File;
use std::io::{self, Read};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, OwnedFd};

/// Pipe size we ask for: 1 MiB, the kernel's default limit for unprivileged processes (fs.pipe-max-size).
const WANTED_PIPE: usize = 1024 * 1024;
/// Below this a pipe is not worth it (the default pipe is 64 KiB, which still saves the copies).
const MIN_PIPE: usize = 64 * 1024;

/// A connection's splice pipe: not made yet, made, or unavailable (then its large requests go through memory).
#[derive(Default)]
pub(crate) enum SplicerSlot {
    #[default]
    NotYet,
    Ready(Splicer),
    Unavailable,
}

impl SplicerSlot {
    /// The pipe of connection `conn`, made on first use; None if the system will not give one.
    pub(crate) fn ready(&mut self, conn: u64) -> Option<&mut Splicer> {
        if matches!(self, SplicerSlot::NotYet) {
            *self = match Splicer::new() {
                Some(s) => {
                    tracing::debug!(conn, pipe = s.capacity(), "splice pipe ready");
                    SplicerSlot::Ready(s)
                }
                None => SplicerSlot::Unavailable,
            };
        }
        match self {
            SplicerSlot::Ready(s) => Some(s),
            _ => None,
        }
    }
}

/// One connection's pipe for splicing media to its socket.
pub(crate) struct Splicer {
    pipe_out: File,
    pipe_in: OwnedFd,
    capacity: usize,
    /// Bytes in the pipe now.
    held: usize,
}

impl Splicer {
    /// A pipe sized for large reads, or None (logged) when the system will not give one.
    pub(crate) fn new() -> Option<Splicer> {
        let (pipe_out, pipe_in) = match nix::unistd::pipe2(OFlag::O_CLOEXEC) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot create a pipe for zero-copy reads; reading through memory");
                return None;
            }
        };
        // Growing may fail (fs.pipe-max-size, or the per-user pipe page limit with many connections): then use
        // the size the pipe has.
        let _ = fcntl(pipe_in.as_raw_fd(), FcntlArg::F_SETPIPE_SZ(WANTED_PIPE as i32));
        let capacity = fcntl(pipe_in.as_raw_fd(), FcntlArg::F_GETPIPE_SZ).ok().and_then(|n| usize::try_from(n).ok())?;
        if capacity < MIN_PIPE {
            tracing::debug!(capacity, "pipe too small for zero-copy reads; reading through memory");
            return None;
        }
        Some(Splicer { pipe_out: File::from(pipe_out), pipe_in, capacity, held: 0 })
    }

    /// How many bytes one [`Splicer::fill`] can take.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Move up to `len` (at most [`Splicer::capacity`]) bytes of `file` at `offset` into the empty pipe;
    /// returns how many it took (at least one). The pipe may fill before `len` (an unaligned range needs one
    /// page slot more than its length suggests): the caller sends what is there and comes back for the rest.
    /// On error the pipe is emptied again.
    pub(crate) fn fill(&mut self, file: &File, offset: u64, len: usize) -> io::Result<usize> {
        debug_assert_eq!(self.held, 0);
        let mut at = i64::try_from(offset).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let flags = SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK;
        while self.held < len {
            match splice(file, Some(&mut at), &self.pipe_in, None, len - self.held, flags) {
                Ok(0) => {
                    self.discard();
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "medium ends inside the request"));
                }
                Ok(n) => self.held += n,
                Err(nix::errno::Errno::EINTR) => {}
                Err(nix::errno::Errno::EAGAIN) if self.held > 0 => break,
                Err(e) => {
                    self.discard();
                    return Err(e.into());
                }
            }
        }
        Ok(self.held)
    }

    /// Send everything in the pipe to `socket`. `more`: further bytes of this reply follow at once. An error
    /// here leaves the reply cut short, so the caller must close the connection.
    pub(crate) fn drain_to(&mut self, socket: &TcpStream, more: bool) -> io::Result<()> {
        let flags =
            if more { SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_MORE } else { SpliceFFlags::SPLICE_F_MOVE };
        while self.held > 0 {
            match splice(&self.pipe_out, None, socket, None, self.held, flags) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => self.held -= n.min(self.held),
                Err(nix::errno::Errno::EINTR) => {}
                // The socket's send timeout (a client not reading its replies) shows as EAGAIN.
                Err(nix::errno::Errno::EAGAIN) => return Err(io::Error::from(io::ErrorKind::TimedOut)),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Move up to `len` (at most [`Splicer::capacity`]) bytes from `socket` into the empty pipe, without copying
    /// them: returns how many (0: the peer closed). Blocks until some arrive; the socket's receive timeout shows
    /// as [`io::ErrorKind::TimedOut`].
    pub(crate) fn fill_from_socket(&mut self, socket: &TcpStream, len: usize) -> io::Result<usize> {
        debug_assert_eq!(self.held, 0);
        loop {
            match splice(socket, None, &self.pipe_in, None, len, SpliceFFlags::SPLICE_F_MOVE) {
                Ok(n) => {
                    self.held = n;
                    return Ok(n);
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(nix::errno::Errno::EAGAIN) => return Err(io::Error::from(io::ErrorKind::TimedOut)),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Write the next `len` bytes in the pipe to `file` at `offset` (the only copy they get on this side). On an
    /// error the pipe is emptied.
    pub(crate) fn drain_to_file(&mut self, file: &File, offset: u64, len: usize) -> io::Result<()> {
        debug_assert!(len <= self.held);
        let mut at = i64::try_from(offset).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let mut left = len.min(self.held);
        while left > 0 {
            match splice(&self.pipe_out, None, file, Some(&mut at), left, SpliceFFlags::SPLICE_F_MOVE) {
                Ok(0) => {
                    self.discard();
                    return Err(io::Error::from(io::ErrorKind::WriteZero));
                }
                Ok(n) => {
                    left -= n.min(left);
                    self.held -= n.min(self.held);
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    self.discard();
                    return Err(e.into());
                }
            }
        }
        Ok(())
    }

    /// Throw away what the pipe holds (error paths).
    pub(crate) fn discard(&mut self) {
        if self.held == 0 {
            return;
        }
        let mut scratch = vec![0u8; 64 * 1024];
        while self.held > 0 {
            let want = self.held.min(scratch.len());
            match self.pipe_out.read(&mut scratch[..want]) {
                Ok(0) => break,
                Ok(n) => self.held -= n.min(self.held),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::error!(error = %e, "cannot drain the splice pipe");
                    break;
                }
            }
        }
        self.held = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;
    use std::os::unix::fs::FileExt;

    #[test]
    fn file_bytes_reach_the_socket_and_a_short_file_is_an_error_that_leaves_the_pipe_empty() {
        let mut f = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        f.write_all(&data).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let sender = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut receiver, _) = listener.accept().unwrap();

        let mut s = Splicer::new().expect("a pipe");
        assert!(s.capacity() >= MIN_PIPE);
        // Unaligned and as long as the pipe: the pipe fills a page short, and the rest follows in a second fill.
        let len = s.capacity().min(data.len() - 1000);
        let mut sent = 0;
        while sent < len {
            sent += s.fill(&f, 1000 + sent as u64, len - sent).unwrap();
            s.drain_to(&sender, sent < len).unwrap();
        }
        let mut got = vec![0u8; len];
        receiver.read_exact(&mut got).unwrap();
        assert_eq!(got, data[1000..1000 + len]);

        // 10 bytes short of the request: an error, and the next fill starts from an empty pipe.
        let err = s.fill(&f, 199_990, 20).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        f.write_all_at(b"xyz", 0).unwrap();
        assert_eq!(s.fill(&f, 0, 3).unwrap(), 3);
        s.drain_to(&sender, false).unwrap();
        let mut got = [0u8; 3];
        receiver.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"xyz");
    }
}
