//! Large reads sent from a read-only mapping of a medium: the kernel copies page-cache pages straight into the
//! socket, one copy on the server instead of two (pread into our buffer, then write).
//!
//! This is the third way to answer a large READ, next to splicing ([`crate::splice_pipe`]) and copying through
//! the reply buffer, and the one the large-read path picks for clients on loopback: there the client itself
//! copies out of whatever pages the server queued. Spliced pages come straight from the page cache, cold in
//! every CPU cache, and the client's single thread pays for that; a mapped send fills fresh socket buffers on our
//! core, so the client copies from warm memory and the two copies run on two cores. The mapping keeps its page
//! tables between reads, which is where the gain is for data read again; the first send of a page faults it
//! in, and runs at about the speed of the other ways.
//!
//! Touching a mapping whose pages may fail is safe here because Rust code never reads it: only the kernel does,
//! inside sendmsg(2). A page that cannot be brought in (an I/O error, a medium truncated under us) then makes the
//! call fail with EFAULT instead of raising SIGBUS, since the fault happens in kernel mode. The caller first
//! checks with [`MediumMapping::resident`] that every page is in memory, so a send never allocates pages for the
//! holes of a sparse tmpfs medium and never waits for a disk; what is not resident is spliced (or copied).

use nix::libc;
use nix::sys::mman::{madvise, mmap, munmap, MapFlags, MmapAdvise, ProtFlags};
use std::fs::File;
use std::io;
use std::num::NonZeroUsize;
use std::os::fd::RawFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

/// Pages asked about per mincore(2) call (16 MiB of 4 KiB pages).
const MINCORE_PAGES: usize = 4096;
/// Drop a mapping's page-table entries after an eighth of physical memory (at least 256 MiB) was sent from it.
/// Pages the kernel maps for our sends count as our resident memory, and in our OOM score, although they are
/// page cache that stays either way; dropping the entries (not the pages) bounds that. It is not done more often
/// because the entries are what makes re-reading data cheap: a send that has to fault its pages in runs at about
/// the speed of a spliced or copied one (measured: ~3.1 GB/s against ~5.2 GB/s with the entries in place).
fn unmap_pages_every() -> u64 {
    static EVERY: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *EVERY.get_or_init(|| {
        // SAFETY: sysconf only reads system values.
        let (pages, page) = unsafe { (libc::sysconf(libc::_SC_PHYS_PAGES), libc::sysconf(libc::_SC_PAGESIZE)) };
        let ram = u64::try_from(pages).unwrap_or(0).saturating_mul(u64::try_from(page).unwrap_or(0));
        (ram / 8).max(256 * 1024 * 1024)
    })
}

/// A read-only shared mapping of the first `len` bytes of a medium.
#[derive(Debug)]
pub struct MediumMapping {
    base: NonNull<libc::c_void>,
    len: usize,
    page: usize,
    /// Bytes sent since the page-table entries were last dropped, and how many trigger it.
    sent_since_unmap: AtomicU64,
    unmap_every: u64,
}

// SAFETY: the mapping is only an address range handed to system calls; nothing in it is read or written through
// Rust references, so sharing the pointer between threads is sound. munmap happens once, on drop.
unsafe impl Send for MediumMapping {}
unsafe impl Sync for MediumMapping {}

/// Why a mapped send stopped.
#[derive(Debug)]
pub(crate) enum MappedSendError {
    /// The socket failed or stalled: the connection cannot go on.
    Socket(io::Error),
    /// A page of the medium could not be read after `sent` bytes of the data went out (the head went out whole).
    Media { sent: usize, error: io::Error },
}

impl MediumMapping {
    /// Map the first `len` bytes of `file` read-only, or all of it if it is shorter: a range past the end of
    /// the file is outside the mapping, so it is read the copied way and fails there as it should.
    pub fn new(file: &File, len: u64) -> io::Result<MediumMapping> {
        // A block device's metadata says 0 bytes; its extent was sized from the device.
        let meta = file.metadata()?;
        let len = if meta.is_file() { len.min(meta.len()) } else { len };
        let len = usize::try_from(len).map_err(|_| io::Error::other("medium larger than the address space"))?;
        let length = NonZeroUsize::new(len).ok_or_else(|| io::Error::other("empty medium"))?;
        // SAFETY: sysconf only reads a system value.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
            .ok()
            .filter(|p| p.is_power_of_two())
            .ok_or_else(|| io::Error::other("unknown page size"))?;
        // SAFETY: a fresh mapping at an address the kernel picks; it aliases no Rust object.
        let base = unsafe { mmap(None, length, ProtFlags::PROT_READ, MapFlags::MAP_SHARED, file, 0) }?;
        Ok(MediumMapping { base, len, page, sent_since_unmap: AtomicU64::new(0), unmap_every: unmap_pages_every() })
    }

    /// Whether every page under `len` bytes at `at` is in memory (page cache or shmem), so sending it neither
    /// allocates nor waits for I/O. Ranges outside the mapping are not.
    pub(crate) fn resident(&self, at: u64, len: usize) -> bool {
        let Ok(at) = usize::try_from(at) else { return false };
        let Some(end) = at.checked_add(len).filter(|end| *end <= self.len) else { return false };
        let mut pos = at & !(self.page - 1);
        let mut flags = [0u8; MINCORE_PAGES];
        while pos < end {
            let pages = (end - pos).div_ceil(self.page).min(MINCORE_PAGES);
            // SAFETY: `pos` is page-aligned and `pos + pages * page` stays within the mapping's last page;
            // `flags` has room for `pages` entries.
            let rc = unsafe {
                libc::mincore(self.base.as_ptr().cast::<u8>().add(pos).cast(), pages * self.page, flags.as_mut_ptr())
            };
            if rc != 0 || flags[..pages].iter().any(|f| f & 1 == 0) {
                return false;
            }
            pos += pages * self.page;
        }
        true
    }

    /// Send `head` (our bytes) and then `len` bytes of the medium at `at` on the socket `fd`, with MSG_MORE:
    /// more of the reply follows. Blocks until all is sent or the socket's send timeout passes. The head goes
    /// out whole unless the socket fails, so a media error always leaves the stream inside the data.
    pub(crate) fn send(&self, fd: RawFd, head: &[u8], at: u64, len: usize) -> Result<(), MappedSendError> {
        let start = usize::try_from(at).ok().filter(|a| a.checked_add(len).is_some_and(|end| end <= self.len));
        let (start, len, outside) = match start {
            Some(start) => (start, len, None),
            None => (0, 0, Some(io::Error::new(io::ErrorKind::InvalidInput, "range outside the medium's mapping"))),
        };
        let (mut head_done, mut data_done) = (0usize, 0usize);
        while head_done < head.len() || data_done < len {
            let mut iov = [libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; 2];
            let mut count = 0;
            if head_done < head.len() {
                iov[0] = libc::iovec {
                    iov_base: head[head_done..].as_ptr().cast_mut().cast(),
                    iov_len: head.len() - head_done,
                };
                count = 1;
            }
            if data_done < len {
                iov[count] = libc::iovec {
                    // SAFETY: start + len <= self.len was checked above, so the address is inside the mapping.
                    iov_base: unsafe { self.base.as_ptr().cast::<u8>().add(start + data_done).cast() },
                    iov_len: len - data_done,
                };
                count += 1;
            }
            // SAFETY: msghdr is plain data; all-zero is a valid empty header, filled in below.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_iov = iov.as_mut_ptr();
            msg.msg_iovlen = count as _;
            // SAFETY: the iovecs point at `head` (borrowed for this call) and at mapped pages; the kernel only
            // reads them, and a page it cannot read is reported as EFAULT.
            let rc = unsafe { libc::sendmsg(fd, &msg, libc::MSG_MORE | libc::MSG_NOSIGNAL) };
            if rc < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::EAGAIN) => return Err(MappedSendError::Socket(io::ErrorKind::TimedOut.into())),
                    Some(libc::EFAULT) if head_done == head.len() => {
                        let error = io::Error::other("a page of the medium could not be read (I/O error or truncated)");
                        return Err(MappedSendError::Media { sent: data_done, error });
                    }
                    _ => return Err(MappedSendError::Socket(e)),
                }
            }
            if rc == 0 {
                return Err(MappedSendError::Socket(io::ErrorKind::WriteZero.into()));
            }
            let mut n = rc as usize;
            let from_head = n.min(head.len() - head_done);
            head_done += from_head;
            n -= from_head;
            data_done += n;
        }
        if let Some(error) = outside {
            return Err(MappedSendError::Media { sent: 0, error });
        }
        self.count_sent(len);
        Ok(())
    }

    /// Drop the page-table entries every [`unmap_pages_every`] bytes sent (whichever connection crosses the
    /// mark does it; the others re-fault what they need).
    fn count_sent(&self, len: usize) {
        let before = self.sent_since_unmap.fetch_add(len as u64, Ordering::Relaxed);
        if before + len as u64 >= self.unmap_every && before < self.unmap_every {
            self.sent_since_unmap.store(0, Ordering::Relaxed);
            // SAFETY: the whole mapping made in `new`; MADV_DONTNEED on a shared file mapping drops our page
            // tables only, the pages stay in the page cache.
            if let Err(e) = unsafe { madvise(self.base, self.len, MmapAdvise::MADV_DONTNEED) } {
                tracing::debug!(error = %e, "cannot drop a medium mapping's page tables");
            }
        }
    }
}

impl Drop for MediumMapping {
    fn drop(&mut self) {
        // SAFETY: base/len are the mapping made in `new`, unmapped only here, when no send can be using it (the
        // mapping is shared by `Arc`); sendmsg copied what it sent, so the socket holds no reference to it.
        if let Err(e) = unsafe { munmap(self.base, self.len) } {
            tracing::warn!(error = %e, "cannot unmap a medium");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;

    fn connected() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (server, client)
    }

    fn medium(bytes: &[u8], len: u64) -> (tempfile::NamedTempFile, MediumMapping) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        f.as_file().set_len(len).unwrap();
        let m = MediumMapping::new(f.as_file(), len).unwrap();
        (f, m)
    }

    #[test]
    fn sends_the_head_then_the_mapped_bytes() {
        let data: Vec<u8> = (0..64 * 1024u32).map(|i| (i * 7 % 251) as u8).collect();
        let (_f, m) = medium(&data, data.len() as u64);
        assert!(m.resident(100, 30_000), "freshly written pages are in the page cache");
        assert!(!m.resident(60_000, 10_000), "a range past the mapping is not");
        let (server, mut client) = connected();
        m.send(server.as_raw_fd(), b"head", 100, 30_000).unwrap();
        drop(server);
        let mut got = Vec::new();
        client.read_to_end(&mut got).unwrap();
        assert_eq!(&got[..4], b"head");
        assert!(got[4..] == data[100..30_100]);
    }

    /// Resident memory (kB) of the mapping at `base`, from /proc/self/smaps.
    fn mapped_rss_kb(m: &MediumMapping) -> u64 {
        let start = format!("{:x}-", m.base.as_ptr() as usize);
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let block = smaps.split_once(&format!("\n{start}")).map(|(_, rest)| rest).unwrap_or_else(|| {
            assert!(smaps.starts_with(&start), "mapping not in smaps");
            &smaps
        });
        let rss = block.lines().find_map(|l| l.strip_prefix("Rss:")).unwrap();
        rss.trim().trim_end_matches("kB").trim().parse().unwrap()
    }

    #[test]
    fn page_tables_are_dropped_after_enough_bytes_are_sent() {
        let (_f, mut m) = medium(&[7u8; 1 << 20], 1 << 20);
        m.unmap_every = 3 << 20;
        let (server, mut client) = connected();
        let reader = std::thread::spawn(move || std::io::copy(&mut client, &mut std::io::sink()).unwrap());
        m.send(server.as_raw_fd(), b"", 0, 1 << 20).unwrap();
        assert!(mapped_rss_kb(&m) > 0, "the send mapped the pages it read");
        m.send(server.as_raw_fd(), b"", 0, 1 << 20).unwrap();
        m.send(server.as_raw_fd(), b"", 0, 1 << 20).unwrap();
        assert_eq!(mapped_rss_kb(&m), 0, "3 MiB sent: page tables dropped");
        assert!(m.resident(0, 1 << 20), "the page cache keeps the pages");
        drop(server);
        assert_eq!(reader.join().unwrap(), 3 << 20);
    }

    #[test]
    fn a_hole_is_not_resident() {
        // Data in the first page only; the rest of the 1 MiB medium is a hole.
        let (_f, m) = medium(&[1u8; 4096], 1 << 20);
        assert!(m.resident(0, 4096));
        assert!(!m.resident(0, 8192));
        assert!(!m.resident(512 * 1024, 4096));
    }

    #[test]
    fn a_truncated_medium_fails_the_send_with_a_media_error_not_a_signal() {
        let data = vec![0x5au8; 256 * 1024];
        let (f, m) = medium(&data, data.len() as u64);
        // Truncated under the mapping: pages past 64 KiB are gone; touching them from user code would be SIGBUS.
        // (mincore may still call them resident: a large folio that straddles the new end can stay cached whole.)
        f.as_file().set_len(64 * 1024).unwrap();
        let (server, mut client) = connected();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            client.read_to_end(&mut got).unwrap();
            got
        });
        // The kernel copies in pieces, so the send may stop a little before the end of the medium; what counts
        // is that `sent` says exactly how much of the data the peer gets.
        let sent = match m.send(server.as_raw_fd(), b"hdr", 0, 128 * 1024) {
            Err(MappedSendError::Media { sent, .. }) => sent,
            other => panic!("expected a media error, got {other:?}"),
        };
        assert!(sent <= 64 * 1024, "{sent} bytes sent past the end of the medium");
        drop(server);
        let got = reader.join().unwrap();
        assert_eq!(got.len(), 3 + sent);
        assert_eq!(&got[..3], b"hdr");
        assert!(got[3..].iter().all(|b| *b == 0x5a));
    }
}
