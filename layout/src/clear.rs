//! Clearing (zeroing) extents of a unit's address space: wiped volumes and released space.
//!
//! A volume's blocks must never reach another host, so a wiped volume and every released extent (a destroyed
//! volume, a newly attached medium) are cleared before they are served or allocated again. Each medium is
//! cleared the fastest way it allows: a file gets its range deallocated (`fallocate` PUNCH_HOLE|KEEP_SIZE, which
//! reads back as zeroes), a block device gets `BLKZEROOUT` (the kernel uses WRITE ZEROES or a zeroing discard
//! when the device has one, and writes zeroes otherwise); when either is refused, zeroes are written. Work goes
//! in chunks: after each one the data is synced and the progress recorded in the store ([`ClearJob`]), so a
//! crash resumes where the last recorded chunk ended. The agent runs the jobs ([`Clearer::run_job`]) on a
//! thread of its own; the CLI and test fixtures can run them to completion at once ([`clear_all_now`]).

use crate::error::LayoutError;
use crate::extent::{Blocks, Extent, Lba};
use crate::media_map::MediaMap;
use crate::model::{Layout, MediumKind};
use crate::store::{ClearJob, ClearTarget, LayoutStore};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How media are cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClearMethod {
    /// The fastest way each medium allows (hole punching, BLKZEROOUT), writing zeroes where refused.
    #[default]
    Auto,
    /// Always write zeroes (for media whose deallocation is not trusted to read back as zeroes).
    Write,
}

impl std::str::FromStr for ClearMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(ClearMethod::Auto),
            "write" => Ok(ClearMethod::Write),
            _ => Err(format!("unknown clear method {s:?}: use auto or write")),
        }
    }
}

/// How a clearer works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClearOptions {
    pub method: ClearMethod,
    /// At most this many bytes per second (0: no limit), so clearing does not starve the data path.
    pub rate_bytes: u64,
}

impl Default for ClearOptions {
    fn default() -> Self {
        ClearOptions { method: ClearMethod::Auto, rate_bytes: 0 }
    }
}

/// Bytes cleared between two progress records when zeroes are written.
const WRITE_CHUNK: u64 = 8 << 20;
/// Bytes per progress record when the medium deallocates (cheap whatever the size).
const FAST_CHUNK: u64 = 1 << 30;
/// Zeroes written per call.
const ZERO_BUF: usize = 1 << 20;

nix::ioctl_write_ptr_bad!(blkzeroout, nix::request_code_none!(0x12, 127), [u64; 2]);

/// The media of one layout, opened for clearing.
pub struct Clearer {
    map: MediaMap,
    media: Vec<(PathBuf, MediumKind, File)>,
    block_size: u32,
    options: ClearOptions,
}

impl Clearer {
    pub fn open(layout: &Layout, options: ClearOptions) -> Result<Clearer, LayoutError> {
        let mut media = layout.media.clone();
        media.sort_by_key(|m| m.extent.start);
        let opened = media
            .iter()
            .map(|m| {
                let file = OpenOptions::new().read(true).write(true).open(&m.path)?;
                Ok((m.path.clone(), m.kind, file))
            })
            .collect::<Result<Vec<_>, std::io::Error>>()?;
        Ok(Clearer {
            map: MediaMap::new(&media, layout.unit.block_size),
            media: opened,
            block_size: layout.unit.block_size,
            options,
        })
    }

    /// Whether clearing `extent` is quick whatever its size (every medium under it deallocates): such jobs can
    /// be done before answering, the others go to the background.
    pub fn is_fast(&self, extent: &Extent) -> bool {
        let bs = u64::from(self.block_size);
        self.options.method == ClearMethod::Auto
            && self.options.rate_bytes == 0
            && self
                .map
                .segments(extent.start.0 * bs, extent.len.0 * bs)
                .is_some_and(|mut segs| segs.all(|s| self.media[s.medium].1 == MediumKind::File))
    }

    /// Blocks per progress record.
    fn chunk_blocks(&self, extent: &Extent) -> u64 {
        let bytes = if self.is_fast(extent) { FAST_CHUNK } else { WRITE_CHUNK };
        (bytes / u64::from(self.block_size)).max(1)
    }

    /// Zero `extent` of the address space and sync it.
    pub fn clear(&self, extent: Extent) -> Result<(), LayoutError> {
        let bs = u64::from(self.block_size);
        let segments = self.map.segments(extent.start.0 * bs, extent.len.0 * bs).ok_or_else(|| {
            LayoutError::Io(std::io::Error::other(format!(
                "extent {}..={} is outside the media",
                extent.start,
                extent.end()
            )))
        })?;
        for seg in segments {
            let (path, kind, file) = &self.media[seg.medium];
            zero(file, *kind, seg.offset, seg.len, self.options.method).map_err(|e| {
                LayoutError::Io(std::io::Error::new(e.kind(), format!("clearing {}: {e}", path.display())))
            })?;
            file.sync_data()?;
        }
        Ok(())
    }

    /// Run one job from where it stands, chunk by chunk, recording progress after each chunk and calling
    /// `progress` with it. Returns false when `keep_going` said stop before the end (the job stays, with its
    /// progress, for later); true when the job is finished and removed.
    pub fn run_job(
        &self,
        store: &mut LayoutStore,
        job: &ClearJob,
        progress: &mut dyn FnMut(ClearTarget, Blocks),
        keep_going: &dyn Fn() -> bool,
    ) -> Result<bool, LayoutError> {
        let chunk = self.chunk_blocks(&job.extent);
        let mut done = job.cleared.0.min(job.extent.len.0);
        let started = Instant::now();
        let mut bytes_since_start: u64 = 0;
        while done < job.extent.len.0 {
            if !keep_going() {
                return Ok(false);
            }
            let n = chunk.min(job.extent.len.0 - done);
            self.clear(Extent::new(Lba(job.extent.start.0 + done), Blocks(n)))?;
            done += n;
            store.set_cleared(job.target, Blocks(done))?;
            progress(job.target, Blocks(done));
            bytes_since_start += n * u64::from(self.block_size);
            if self.options.rate_bytes > 0 {
                let due = Duration::from_secs_f64(bytes_since_start as f64 / self.options.rate_bytes as f64);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
        }
        store.finish_clearing(job.target)?;
        Ok(true)
    }
}

/// Zero `len` bytes at `offset` of one medium.
fn zero(file: &File, kind: MediumKind, offset: u64, len: u64, method: ClearMethod) -> std::io::Result<()> {
    if method == ClearMethod::Auto {
        let fast = match kind {
            MediumKind::File => {
                let flags =
                    nix::fcntl::FallocateFlags::FALLOC_FL_PUNCH_HOLE | nix::fcntl::FallocateFlags::FALLOC_FL_KEEP_SIZE;
                nix::fcntl::fallocate(file.as_raw_fd(), flags, offset as i64, len as i64)
            }
            // SAFETY: BLKZEROOUT reads a [start, length] pair of u64 from the pointer, which is valid here.
            MediumKind::BlockDevice => unsafe { blkzeroout(file.as_raw_fd(), &[offset, len]) }.map(drop),
        };
        match fast {
            Ok(()) => return Ok(()),
            Err(e) => tracing::debug!(error = %e, "fast clearing refused; writing zeroes"),
        }
    }
    let zeroes = vec![0u8; ZERO_BUF];
    let mut at = 0;
    while at < len {
        let n = (len - at).min(ZERO_BUF as u64) as usize;
        file.write_all_at(&zeroes[..n], offset + at)?;
        at += n as u64;
    }
    Ok(())
}

/// Run every clearing job of the store to the end, now (no data service may be serving what they clear: the
/// CLI with the agent stopped, test fixtures, the agent before it serves).
pub fn clear_all_now(store: &mut LayoutStore, options: ClearOptions) -> Result<usize, LayoutError> {
    let layout = store.load()?;
    let jobs = ClearJob::all(&layout);
    if jobs.is_empty() {
        return Ok(0);
    }
    let clearer = Clearer::open(&layout, options)?;
    for job in &jobs {
        clearer.run_job(store, job, &mut |_, _| {}, &|| true)?;
    }
    Ok(jobs.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AccessMode;
    use crate::plan::{NewGrant, NewVolume};
    use crate::store::MediumSpec;
    use std::os::unix::fs::FileExt;

    #[test]
    fn released_and_wiped_space_reads_as_zeroes_and_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let paths = [dir.path().join("a.img"), dir.path().join("b.img")];
        for p in &paths {
            let f = File::create(p).unwrap();
            f.write_all_at(&vec![0xAB; 64 * 4096], 0).unwrap();
        }
        let mut s = LayoutStore::open(&dir.path().join("state")).unwrap();
        s.init_unit("u", 4096).unwrap();
        s.attach_media(
            &paths
                .iter()
                .map(|p| MediumSpec { path: p.clone(), kind: MediumKind::File, bytes: 64 * 4096 })
                .collect::<Vec<_>>(),
        )
        .unwrap();
        assert_eq!(s.load().unwrap().free_blocks(), Blocks(0), "new media are released until cleared");
        assert_eq!(clear_all_now(&mut s, ClearOptions::default()).unwrap(), 2);
        assert_eq!(s.load().unwrap().free_blocks(), Blocks(128));
        let all = |p: &PathBuf| std::fs::read(p).unwrap().iter().all(|&b| b == 0);
        assert!(paths.iter().all(all), "media cleared");

        // A volume across both media is written, destroyed: released, then cleared by writing zeroes, resuming.
        let v = s.create_volume(&NewVolume { start: Some(Lba(60)), len: Blocks(8), ..Default::default() }).unwrap();
        for p in &paths {
            File::options().write(true).open(p).unwrap().write_all_at(&vec![0xCD; 64 * 4096], 0).unwrap();
        }
        s.destroy_volume(v.index).unwrap();
        let layout = s.load().unwrap();
        assert_eq!(layout.clearing_blocks(), Blocks(8));
        let clearer = Clearer::open(&layout, ClearOptions { method: ClearMethod::Write, rate_bytes: 0 }).unwrap();
        let job = ClearJob::all(&layout).remove(0);
        // Stop at once: nothing done, the job stays.
        assert!(!clearer.run_job(&mut s, &job, &mut |_, _| {}, &|| false).unwrap());
        s.set_cleared(job.target, Blocks(2)).unwrap();
        let job = s.clear_jobs().unwrap().remove(0);
        assert_eq!(job.cleared, Blocks(2), "progress is kept");
        assert!(clearer.run_job(&mut s, &job, &mut |_, _| {}, &|| true).unwrap());
        assert!(s.clear_jobs().unwrap().is_empty());
        let a = std::fs::read(&paths[0]).unwrap();
        // Blocks 60..=63 of a (the first 2 were marked done by hand, so only 62.. were written).
        assert!(a[62 * 4096..].iter().all(|&b| b == 0) && a[..60 * 4096].iter().all(|&b| b == 0xCD));
        let b = std::fs::read(&paths[1]).unwrap();
        assert!(b[..4 * 4096].iter().all(|&b| b == 0) && b[4 * 4096..].iter().all(|&b| b == 0xCD));

        // Wiping: refused while granted, then the volume is clearing until done.
        let w = s.create_volume(&NewVolume { len: Blocks(4), ..Default::default() }).unwrap();
        let g = s
            .create_grant(&NewGrant {
                index: None,
                volume: w.index,
                partition: None,
                host: "10.0.0.1".parse().unwrap(),
                mode: AccessMode::ReadWrite,
            })
            .unwrap();
        assert!(matches!(s.wipe_volume(w.index), Err(LayoutError::WipeWhileGranted { .. })));
        s.revoke_grant(g.index).unwrap();
        s.wipe_volume(w.index).unwrap();
        assert_eq!(s.load().unwrap().volume(w.index).unwrap().clear_percent(), 0);
        clear_all_now(&mut s, ClearOptions::default()).unwrap();
        assert_eq!(s.load().unwrap().volume(w.index).unwrap().clearing, None);
    }
}
