//! The text trap log: one line per notification (see `NotificationRecord::line`), appended after each committed
//! batch and rotated by size, so `tail -f traps.log` (or `tail -F` across rotations) shows notifications live.
//!
//! Rotation renames `traps.log` to `traps.log.1` (and `.1` to `.2`, ...), keeping `keep` old files, like
//! logrotate's default scheme.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// The log's file name inside the station's state directory.
pub const TRAP_LOG_FILE: &str = "traps.log";

pub struct TrapLog {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    file: BufWriter<File>,
    size: u64,
}

impl TrapLog {
    /// Opens (appends to) `path`, rotating when it grows past `max_bytes`, keeping `keep` rotated files.
    pub fn open(path: &Path, max_bytes: u64, keep: usize) -> io::Result<TrapLog> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(TrapLog { path: path.to_path_buf(), max_bytes: max_bytes.max(1), keep, file: BufWriter::new(file), size })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line (a newline is added).
    pub fn write_line(&mut self, line: &str) -> io::Result<()> {
        if self.size >= self.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(line.as_bytes())?;
        self.file.write_all(b"\n")?;
        self.size += line.len() as u64 + 1;
        Ok(())
    }

    /// Makes the lines written so far visible to readers.
    pub fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        let rotated = |n: usize| PathBuf::from(format!("{}.{n}", self.path.display()));
        if self.keep == 0 {
            std::fs::remove_file(&self.path).or_else(ignore_missing)?;
        } else {
            std::fs::remove_file(rotated(self.keep)).or_else(ignore_missing)?;
            for n in (1..self.keep).rev() {
                std::fs::rename(rotated(n), rotated(n + 1)).or_else(ignore_missing)?;
            }
            std::fs::rename(&self.path, rotated(1)).or_else(ignore_missing)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(&self.path)?;
        self.file = BufWriter::new(file);
        self.size = 0;
        Ok(())
    }
}

fn ignore_missing(e: io::Error) -> io::Result<()> {
    if e.kind() == io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_n_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(TRAP_LOG_FILE);
        let mut log = TrapLog::open(&path, 100, 2).unwrap();
        for i in 0..40 {
            log.write_line(&format!("line {i:03} padded to be twenty")).unwrap();
        }
        log.flush().unwrap();
        let current = std::fs::read_to_string(&path).unwrap();
        assert!(current.ends_with("line 039 padded to be twenty\n"));
        assert!(current.len() <= 100 + 30);
        assert!(dir.path().join("traps.log.1").exists());
        assert!(dir.path().join("traps.log.2").exists());
        assert!(!dir.path().join("traps.log.3").exists());
        // Appending after a restart continues the same file.
        drop(log);
        let mut log = TrapLog::open(&path, 1000, 2).unwrap();
        log.write_line("after restart").unwrap();
        log.flush().unwrap();
        assert!(std::fs::read_to_string(&path).unwrap().starts_with(&current));
    }
}
