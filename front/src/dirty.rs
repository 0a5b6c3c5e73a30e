//! A replica's dirty bitmap: one bit per region (`--region-size`, 1 MiB by default) that says the replica may
//! differ from the in-sync replicas there, kept in a file under the front's `--state-dir` so a restarted host
//! still knows what to resync (DRBD's quick-sync bitmap).
//!
//! The file (`STATE_DIR/VOLUME.REPLICA.dirty`) exists only while some bit is set: magic `DVSANDB1`, region size
//! and volume size (u64, big-endian), then the bits, region 0 in the lowest bit of the first byte. It is
//! replaced atomically (written beside, synced, renamed). Bits are saved before the write that set them is
//! acknowledged; cleared bits are saved in batches (a bit saved set that is in fact clean only costs a copy).
//! Uses nothing else of this crate.

use std::io::Write;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"DVSANDB1";

/// Why a bitmap file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum DirtyError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a dirty bitmap of this volume ({why})")]
    Mismatch { path: PathBuf, why: &'static str },
}

/// The bits of one replica, and where they are kept (nowhere without a state directory).
#[derive(Debug, Clone)]
pub struct DirtyMap {
    path: Option<PathBuf>,
    region_size: u64,
    size: u64,
    bits: Vec<u8>,
    count: u64,
}

impl DirtyMap {
    /// An empty map for a volume of `size` bytes in regions of `region_size` (> 0) bytes.
    pub fn new(path: Option<PathBuf>, region_size: u64, size: u64) -> DirtyMap {
        let regions = size.div_ceil(region_size.max(1));
        let bytes = usize::try_from(regions.div_ceil(8)).unwrap_or(usize::MAX);
        DirtyMap { path, region_size: region_size.max(1), size, bits: vec![0; bytes], count: 0 }
    }

    /// The map kept at `path`, or an empty one when there is no file.
    pub fn load(path: PathBuf, region_size: u64, size: u64) -> Result<DirtyMap, DirtyError> {
        let mut map = DirtyMap::new(Some(path.clone()), region_size, size);
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(map),
            Err(source) => return Err(DirtyError::Io { path, source }),
        };
        let mismatch = |why| DirtyError::Mismatch { path: path.clone(), why };
        if data.len() != 24 + map.bits.len() || &data[..8] != MAGIC {
            return Err(mismatch("wrong length or magic"));
        }
        let word = |at: usize| data.get(at..at + 8).and_then(|b| <[u8; 8]>::try_from(b).ok()).map(u64::from_be_bytes);
        if word(8) != Some(map.region_size) {
            return Err(mismatch("another region size (--region-size)"));
        }
        if word(16) != Some(size) {
            return Err(mismatch("another volume size"));
        }
        map.bits.copy_from_slice(&data[24..]);
        map.count = map.bits.iter().map(|b| u64::from(b.count_ones())).sum();
        Ok(map)
    }

    pub fn region_size(&self) -> u64 {
        self.region_size
    }

    pub fn regions(&self) -> u64 {
        self.size.div_ceil(self.region_size)
    }

    /// Regions marked.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Bytes of the volume in marked regions (the last region may be short).
    pub fn dirty_bytes(&self) -> u64 {
        let mut bytes = self.count * self.region_size;
        let last = self.regions().saturating_sub(1);
        if self.is_set(last) {
            bytes -= self.regions() * self.region_size - self.size;
        }
        bytes
    }

    /// The regions `length` bytes at `offset` touch (inclusive); None for zero bytes.
    pub fn span(&self, offset: u64, length: u64) -> Option<(u64, u64)> {
        if length == 0 {
            return None;
        }
        let last_byte = offset.saturating_add(length - 1).min(self.size.saturating_sub(1));
        Some((offset / self.region_size, last_byte / self.region_size))
    }

    /// The byte range of region `r`.
    pub fn region_range(&self, r: u64) -> (u64, u64) {
        let start = r * self.region_size;
        (start, self.region_size.min(self.size.saturating_sub(start)))
    }

    pub fn is_set(&self, r: u64) -> bool {
        usize::try_from(r / 8).ok().and_then(|i| self.bits.get(i)).is_some_and(|b| b & (1 << (r % 8)) != 0)
    }

    /// Mark regions `first..=last`; true when some bit was not set before.
    pub fn set(&mut self, first: u64, last: u64) -> bool {
        let mut changed = false;
        for r in first..=last.min(self.regions().saturating_sub(1)) {
            if let Some(b) = usize::try_from(r / 8).ok().and_then(|i| self.bits.get_mut(i)) {
                if *b & (1 << (r % 8)) == 0 {
                    *b |= 1 << (r % 8);
                    self.count += 1;
                    changed = true;
                }
            }
        }
        changed
    }

    /// Mark every region.
    pub fn set_all(&mut self) -> bool {
        let last = self.regions().saturating_sub(1);
        self.set(0, last)
    }

    pub fn clear(&mut self, r: u64) {
        if let Some(b) = usize::try_from(r / 8).ok().and_then(|i| self.bits.get_mut(i)) {
            if *b & (1 << (r % 8)) != 0 {
                *b &= !(1 << (r % 8));
                self.count -= 1;
            }
        }
    }

    /// Mark every region `other` marks (the same geometry); true when some bit was not set before.
    pub fn merge(&mut self, other: &DirtyMap) -> bool {
        let mut changed = false;
        for (mine, theirs) in self.bits.iter_mut().zip(&other.bits) {
            let new = *theirs & !*mine;
            if new != 0 {
                *mine |= new;
                self.count += u64::from(new.count_ones());
                changed = true;
            }
        }
        changed
    }

    /// Unmark everything (in memory).
    pub fn clear_all(&mut self) {
        self.bits.fill(0);
        self.count = 0;
    }

    /// The first marked region at or after `from`.
    pub fn next_set(&self, from: u64) -> Option<u64> {
        (from..self.regions()).find(|r| self.is_set(*r))
    }

    /// Where the map is kept, if anywhere.
    pub fn path(&self) -> Option<PathBuf> {
        self.path.clone()
    }

    /// Write the file (or remove it when nothing is marked). Without a path, nothing to do.
    pub fn save(&self) -> Result<(), DirtyError> {
        let Some(path) = &self.path else { return Ok(()) };
        let io = |source| DirtyError::Io { path: path.clone(), source };
        if self.count == 0 {
            return match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(e)),
                _ => Ok(()),
            };
        }
        let mut data = Vec::with_capacity(24 + self.bits.len());
        data.extend_from_slice(MAGIC);
        data.extend_from_slice(&self.region_size.to_be_bytes());
        data.extend_from_slice(&self.size.to_be_bytes());
        data.extend_from_slice(&self.bits);
        write_atomically(path, &data).map_err(io)
    }
}

/// Replace `path` with `data`: write a file beside it, sync it, rename it over.
pub fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_data()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_spans_and_saves() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.dirty");
        let mut m = DirtyMap::new(Some(path.clone()), 1 << 20, (10 << 20) + 4096);
        assert_eq!(m.regions(), 11);
        assert_eq!(m.span(0, 0), None);
        assert_eq!(m.span((1 << 20) - 1, 2), Some((0, 1)));
        assert_eq!(m.span(10 << 20, 1 << 30), Some((10, 10)), "clamped to the volume");
        assert!(m.set(0, 1));
        assert!(!m.set(1, 1));
        assert!(m.set(10, 10));
        assert_eq!(m.dirty_bytes(), (2 << 20) + 4096);
        let mut other = DirtyMap::new(None, 1 << 20, (10 << 20) + 4096);
        other.set(1, 3);
        let mut merged = m.clone();
        assert!(merged.merge(&other));
        assert_eq!(merged.count(), 5);
        assert!(!merged.merge(&other));
        merged.clear_all();
        assert_eq!((merged.count(), merged.next_set(0)), (0, None));
        m.save().unwrap();
        let back = DirtyMap::load(path.clone(), 1 << 20, (10 << 20) + 4096).unwrap();
        assert_eq!((back.count(), back.next_set(2)), (3, Some(10)));
        assert!(DirtyMap::load(path.clone(), 1 << 21, (10 << 20) + 4096).is_err());
        let mut back = back;
        for r in [0, 1, 10] {
            back.clear(r);
        }
        back.save().unwrap();
        assert!(!path.exists(), "a clean map has no file");
        assert_eq!(DirtyMap::load(path, 1 << 20, 1 << 20).unwrap().count(), 0);
    }
}
