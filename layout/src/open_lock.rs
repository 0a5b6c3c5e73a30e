//! One process at a time opens a SQLite store: an exclusive `flock` on a lock file beside it.
//!
//! Opening a store sets WAL mode and runs the schema migrations. `rusqlite_migration` reads the schema version
//! before its transaction takes SQLite's write lock, so two processes opening a fresh store at once (the agent and
//! a CLI command, blockd, the station and its CLI) both saw version 0 and the second failed with "table ... already
//! exists". Holding this lock from before the version is read until the schema is current closes that window, and
//! also covers the switch to WAL mode, which SQLite refuses while another connection is starting up. The unit store
//! and the station store both use it. The lock is released when the guard drops (or the process dies).

use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// Held while a store is opened and migrated.
pub struct StoreOpenLock {
    _lock: Flock<File>,
}

/// The lock file of the store at `db` (`unit.db` → `unit.db-lock`, like SQLite's own `-wal` and `-shm` files).
pub fn open_lock_path(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push("-lock");
    db.with_file_name(name)
}

/// Waits for, and takes, the exclusive open lock of the store at `db`.
pub fn lock_store_open(db: &Path) -> io::Result<StoreOpenLock> {
    let path = open_lock_path(db);
    let file = OpenOptions::new().create(true).truncate(false).write(true).open(&path)?;
    let lock = Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| io::Error::from(errno))?;
    Ok(StoreOpenLock { _lock: lock })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_file_sits_beside_the_store() {
        assert_eq!(open_lock_path(Path::new("/s/unit.db")), Path::new("/s/unit.db-lock"));
    }

    #[test]
    fn a_second_taker_waits_until_the_first_guard_drops() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        let first = lock_store_open(&db).unwrap();
        let probe = OpenOptions::new().write(true).open(open_lock_path(&db)).unwrap();
        let probe = match Flock::lock(probe, FlockArg::LockExclusiveNonblock) {
            Ok(_) => panic!("the lock was taken twice"),
            Err((file, errno)) => {
                assert_eq!(errno, nix::errno::Errno::EWOULDBLOCK);
                file
            }
        };
        drop(first);
        assert!(Flock::lock(probe, FlockArg::LockExclusiveNonblock).is_ok(), "free once the guard dropped");
    }
}
