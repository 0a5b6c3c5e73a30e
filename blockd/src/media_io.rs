//! I/O on an export's bytes: each request is split at media boundaries ([`dvsan_layout::MediaMap::segments`]) and
//! done with positional reads and writes on the shared media files.
//!
//! Everything here is synchronous and runs inline on a connection's thread: media are files in the page cache or
//! block devices, and a pread of a few KiB costs less than handing it to another thread would.

use crate::exports::ServedExport;
use crate::mapped_read::MediumMapping;
use nix::fcntl::{fallocate, FallocateFlags};
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

/// Zeroes for writing zeroes where a medium cannot punch or zero a range itself.
pub(crate) static ZEROES: [u8; 64 * 1024] = [0; 64 * 1024];

impl ServedExport {
    /// Fill `buf` from export offset `offset`. The caller has checked the range.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        for seg in self.segments(offset, buf.len() as u64)? {
            let seg = seg?;
            let part = buf.get_mut(seg.range).ok_or_else(bad_segment)?;
            seg.file.read_exact_at(part, seg.at)?;
        }
        Ok(())
    }

    /// Write `data` at export offset `offset`. The caller has checked the range.
    pub fn write_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
        for seg in self.segments(offset, data.len() as u64)? {
            let seg = seg?;
            let part = data.get(seg.range).ok_or_else(bad_segment)?;
            seg.file.write_all_at(part, seg.at)?;
        }
        Ok(())
    }

    /// Make every completed write to the media this export touches durable.
    pub fn sync_all(&self) -> io::Result<()> {
        for &i in &self.touched {
            if let Some(Some(f)) = self.media.files.get(i) {
                f.sync_data()?;
            }
        }
        Ok(())
    }

    /// Make writes to the media under `len` bytes at `offset` durable (FUA).
    pub fn sync_range(&self, offset: u64, len: u64) -> io::Result<()> {
        for seg in self.segments(offset, len)? {
            seg?.file.sync_data()?;
        }
        Ok(())
    }

    /// TRIM: punch a hole so the range reads back as zeroes, falling back to writing zeroes where punching is
    /// not supported.
    pub fn trim(&self, offset: u64, len: u64) -> io::Result<()> {
        self.zero(offset, len, true)
    }

    /// WRITE_ZEROES: punch (if `may_punch`) or zero the range in place, or write zeroes.
    pub fn zero(&self, offset: u64, len: u64, may_punch: bool) -> io::Result<()> {
        for seg in self.segments(offset, len)? {
            let seg = seg?;
            zero_range(seg.file, seg.at, seg.range.len() as u64, may_punch)?;
        }
        Ok(())
    }

    /// Which of `len` bytes at export offset `offset` are holes (read as zeroes, no storage behind them): runs of
    /// (length, is_hole) in order, adjacent runs of a kind merged across media. At most `max_runs` runs: then they
    /// cover less than `len`, which NBD_CMD_BLOCK_STATUS allows. A medium that cannot tell holes is all data.
    pub fn allocation(&self, offset: u64, len: u64, max_runs: usize) -> io::Result<Vec<(u64, bool)>> {
        let mut runs: Vec<(u64, bool)> = Vec::new();
        for seg in self.segments(offset, len)? {
            let seg = seg?;
            let end = seg.at + seg.range.len() as u64;
            let mut pos = seg.at;
            while pos < end {
                let (next, hole) = next_run(seg.file, pos, end)?;
                if let Some((n, _)) = runs.last_mut().filter(|(_, h)| *h == hole) {
                    *n += next - pos;
                } else if runs.len() == max_runs {
                    return Ok(runs);
                } else {
                    runs.push((next - pos, hole));
                }
                pos = next;
            }
        }
        Ok(runs)
    }

    /// The pieces of a request, one per medium it touches; a medium that is not open is an error for the
    /// segments on it.
    pub(crate) fn segments(
        &self,
        offset: u64,
        len: u64,
    ) -> io::Result<impl Iterator<Item = io::Result<MediaSegment<'_>>> + '_> {
        let start = self.start.checked_add(offset).ok_or_else(bad_segment)?;
        let segs = self.media.map.segments(start, len).ok_or_else(bad_segment)?;
        Ok(segs.map(move |s| {
            let file = self.media.files.get(s.medium).and_then(|f| f.as_deref()).ok_or_else(|| {
                let path = self.media.paths.get(s.medium).map(|p| p.display().to_string()).unwrap_or_default();
                io::Error::other(format!("medium {path} is not open"))
            })?;
            let from = usize::try_from(s.buf_offset).map_err(|_| bad_segment())?;
            let to = from.checked_add(usize::try_from(s.len).map_err(|_| bad_segment())?).ok_or_else(bad_segment)?;
            let mapping = self.media.mappings.get(s.medium).and_then(|m| m.as_deref());
            Ok(MediaSegment { file, mapping, at: s.offset, range: from..to })
        }))
    }
}

/// The part of a request that lies on one medium.
pub(crate) struct MediaSegment<'a> {
    pub file: &'a File,
    /// The medium's read-only mapping, if it has one.
    pub mapping: Option<&'a MediumMapping>,
    /// Offset in the medium.
    pub at: u64,
    /// Bytes of the request.
    pub range: std::ops::Range<usize>,
}

fn bad_segment() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "request range does not map onto the media")
}

fn zero_range(file: &File, offset: u64, len: u64, may_punch: bool) -> io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    let (Ok(off), Ok(l)) = (i64::try_from(offset), i64::try_from(len)) else {
        return Err(bad_segment());
    };
    let fd = file.as_raw_fd();
    if may_punch {
        let flags = FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE;
        match fallocate(fd, flags, off, l) {
            Ok(()) => return Ok(()),
            Err(e) if unsupported(e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    match fallocate(fd, FallocateFlags::FALLOC_FL_ZERO_RANGE | FallocateFlags::FALLOC_FL_KEEP_SIZE, off, l) {
        Ok(()) => return Ok(()),
        Err(e) if unsupported(e) => {}
        Err(e) => return Err(e.into()),
    }
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(ZEROES.len() as u64) as usize;
        file.write_all_at(&ZEROES[..n], offset + done)?;
        done += n as u64;
    }
    Ok(())
}

/// Where the run of data or hole at `pos` in `file` ends (at most `end`), and whether it is a hole.
fn next_run(file: &File, pos: u64, end: u64) -> io::Result<(u64, bool)> {
    use nix::errno::Errno;
    use nix::unistd::{lseek, Whence};
    let fd = file.as_raw_fd();
    let at = i64::try_from(pos).map_err(|_| bad_segment())?;
    // The position these set is never used: all I/O here is positional.
    let (next, hole) = match lseek(fd, at, Whence::SeekData) {
        Ok(data) if data > at => (u64::try_from(data).unwrap_or(end), true),
        Ok(_) => match lseek(fd, at, Whence::SeekHole) {
            Ok(h) => (u64::try_from(h).unwrap_or(end), false),
            Err(e) => return Err(e.into()),
        },
        // No data from here to the end of the file: a hole up to there. Past the end nothing can be read (a READ
        // there is EIO), so that is reported as data, not as zeroes a copy could take instead of the error.
        Err(Errno::ENXIO) => {
            let meta = file.metadata()?;
            match meta.is_file().then_some(meta.len()).filter(|size| *size > pos) {
                Some(size) => (size.min(end), true),
                None => (end, false),
            }
        }
        Err(Errno::EINVAL) | Err(Errno::EOPNOTSUPP) => (end, false),
        Err(e) => return Err(e.into()),
    };
    // A run always moves forward, whatever the file system says.
    Ok((if next > pos { next.min(end) } else { end }, hole))
}

fn unsupported(e: nix::errno::Errno) -> bool {
    matches!(e, nix::errno::Errno::EOPNOTSUPP | nix::errno::Errno::ENOSYS | nix::errno::Errno::EINVAL)
}
