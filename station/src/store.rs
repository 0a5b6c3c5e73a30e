//! The station's SQLite store: the pool (units, media, volumes, partitions) and the notification log, in one file
//! (`station.db`) in the station's state directory.
//!
//! WAL mode lets the CLI (`pool`, `traps --follow`, `unit add`) read and write while the station runs. Schema
//! changes go through versioned migrations (`rusqlite_migration`, tracked in `PRAGMA user_version`); later features
//! append their tables as later migrations (2: assignments, 3: station tasks, 4: the unit's host name, 5: pending
//! units, 6: who made each assignment, 7: volumes being cleared and their grants). A unit's walk is synced in one
//! transaction that replaces its media, volumes and partitions, so a reader never sees half a unit; notifications
//! are inserted a batch per transaction.
//!
//! Units are rows with a station-chosen integer index (stable for the life of the store, served as
//! dvsanStationUnitIndex). `unit_id` (dvsanUnitId) is the unit's identity; it is NULL only for an address that
//! was registered (`unit add`, or a notification from an address whose walk failed) before any walk succeeded.
//! Such a placeholder is adopted by the first successful walk at its address. Units are deleted only when an
//! operator removes them ([`StationStore::remove_unit`]).

use crate::model::{
    Availability, FrontReport, GrantHost, MediumRow, MirrorRecord, MirrorReplica, PoolPartition, PoolUnit, PoolVolume,
    UnitSnapshot, UnitState, VolumeRow,
};
use crate::notification::{NotificationKind, NotificationRecord, VarBindRecord};
use crate::task_model::{Arguments, OperationKind, Task, TaskState};
use crate::timefmt::format_ms;
use dvsan_layout::{PartitionIndex, VolumeIndex};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use rusqlite_migration::{Migrations, M};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The store's file name inside the station's state directory.
pub const STORE_FILE: &str = "station.db";

const MIGRATIONS: &[M<'static>] = &[
    M::up(
        "CREATE TABLE units (
        id INTEGER PRIMARY KEY,
        unit_id TEXT UNIQUE,
        name TEXT NOT NULL DEFAULT '',
        address TEXT,
        port INTEGER,
        state TEXT NOT NULL CHECK (state IN ('available', 'unavailable', 'unreachable', 'error')),
        reason TEXT NOT NULL DEFAULT '',
        shut_down INTEGER NOT NULL DEFAULT 0,
        sys_uptime INTEGER,
        change_counter INTEGER,
        block_size INTEGER,
        capacity_blocks INTEGER,
        free_blocks INTEGER,
        largest_free_blocks INTEGER,
        data_address TEXT,
        data_port INTEGER,
        data_serving INTEGER,
        first_seen_ms INTEGER NOT NULL,
        last_seen_ms INTEGER,
        last_sync_ms INTEGER,
        state_since_ms INTEGER NOT NULL,
        UNIQUE (address, port)
    );
    CREATE TABLE media (
        unit INTEGER NOT NULL REFERENCES units(id),
        idx INTEGER NOT NULL,
        path TEXT NOT NULL,
        kind TEXT NOT NULL,
        blocks INTEGER NOT NULL,
        first_lba INTEGER NOT NULL,
        PRIMARY KEY (unit, idx)
    ) WITHOUT ROWID;
    CREATE TABLE volumes (
        unit INTEGER NOT NULL REFERENCES units(id),
        idx INTEGER NOT NULL,
        name TEXT NOT NULL,
        start_lba INTEGER NOT NULL,
        end_lba INTEGER NOT NULL,
        length INTEGER NOT NULL,
        export_name TEXT NOT NULL,
        walked_state TEXT NOT NULL CHECK (walked_state IN ('available', 'unavailable')),
        state TEXT NOT NULL CHECK (state IN ('available', 'unavailable')),
        PRIMARY KEY (unit, idx)
    ) WITHOUT ROWID;
    CREATE TABLE partitions (
        unit INTEGER NOT NULL,
        volume_idx INTEGER NOT NULL,
        idx INTEGER NOT NULL,
        start_lba INTEGER NOT NULL,
        end_lba INTEGER NOT NULL,
        length INTEGER NOT NULL,
        export_name TEXT NOT NULL,
        PRIMARY KEY (unit, volume_idx, idx),
        FOREIGN KEY (unit, volume_idx) REFERENCES volumes(unit, idx)
    ) WITHOUT ROWID;
    CREATE TABLE notifications (
        id INTEGER PRIMARY KEY,
        time_ms INTEGER NOT NULL,
        source TEXT NOT NULL,
        source_ip TEXT NOT NULL,
        version TEXT NOT NULL,
        community TEXT NOT NULL,
        kind TEXT NOT NULL,
        uptime INTEGER,
        trap_oid TEXT NOT NULL,
        unit_id TEXT,
        varbinds TEXT NOT NULL
    );
    CREATE INDEX notifications_time ON notifications (time_ms);
    CREATE INDEX notifications_unit ON notifications (unit_id) WHERE unit_id IS NOT NULL;",
    ),
    // Issue 5: volumes assigned to hosts. A row is written `pending` before the grant is SET on the unit and made
    // active after, so a crash between the steps is found and undone at the next start. No foreign key to `volumes`: a walk replaces a unit's volume rows, and
    // an assignment outlives that (a volume that disappeared from its unit is reported, not silently dropped).
    M::up(
        "CREATE TABLE assignments (
        unit INTEGER NOT NULL REFERENCES units(id),
        volume_idx INTEGER NOT NULL,
        host TEXT NOT NULL,
        read_only INTEGER NOT NULL,
        grant_idx INTEGER NOT NULL,
        volume_created INTEGER NOT NULL,
        created_ms INTEGER NOT NULL,
        pending INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (unit, volume_idx)
    ) WITHOUT ROWID;",
    ),
    // Station tasks (dvsanStationTaskTable): operations on the pool run by the station. Every state change is
    // written here, so ended tasks are still listed after a restart and a task that was running when the station
    // stopped is found (and failed) at the next start. Arguments are stored as given (text, checked when run).
    M::up(
        "CREATE TABLE tasks (
        idx INTEGER PRIMARY KEY,
        operation TEXT NOT NULL,
        unit TEXT NOT NULL DEFAULT '',
        volume INTEGER NOT NULL DEFAULT 0,
        partition INTEGER NOT NULL DEFAULT 0,
        size TEXT NOT NULL DEFAULT '',
        host TEXT NOT NULL DEFAULT '',
        name TEXT NOT NULL DEFAULT '',
        read_only INTEGER NOT NULL DEFAULT 0,
        owner TEXT NOT NULL DEFAULT '',
        state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done', 'failed', 'cancelled')),
        progress INTEGER NOT NULL DEFAULT 0,
        step TEXT NOT NULL DEFAULT '',
        result TEXT NOT NULL DEFAULT '',
        result_unit INTEGER NOT NULL DEFAULT 0,
        result_volume INTEGER NOT NULL DEFAULT 0,
        created_ms INTEGER NOT NULL,
        finished_ms INTEGER
    );",
    ),
    // Issue 12: the host name a unit was registered by (`unit add NAME[:PORT]`), kept next to the address it
    // resolved to, so the station can resolve it again when the unit stops answering there. '' when registered by
    // address or learned from a notification.
    // Removed units (`unit remove`) leave their index here, so a unit learned later never gets an index an NMS
    // knew for another one (dvsanStationUnitIndex does not change for the life of the store).
    M::up(
        "ALTER TABLE units ADD COLUMN host_name TEXT NOT NULL DEFAULT '';
    CREATE TABLE removed_units (id INTEGER PRIMARY KEY, removed_ms INTEGER NOT NULL);",
    ),
    // Trust: units that announced themselves without being trusted (see `trust`), one row per source IP, for an
    // operator to approve or reject. `unit_id` and `unit_name` are what the unit claims; `sys_name` and
    // `sys_descr` what its agent answered when the station asked. A rejected row stays, so the unit is not
    // offered again. AUTOINCREMENT: an index is never given to another row (dvsanStationPendingIndex).
    M::up(
        "CREATE TABLE pending_units (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        address TEXT NOT NULL UNIQUE,
        port INTEGER NOT NULL,
        unit_id TEXT NOT NULL DEFAULT '',
        unit_name TEXT NOT NULL DEFAULT '',
        sys_name TEXT NOT NULL DEFAULT '',
        sys_descr TEXT NOT NULL DEFAULT '',
        state TEXT NOT NULL CHECK (state IN ('pending', 'rejected')),
        notifications INTEGER NOT NULL DEFAULT 0,
        first_seen_ms INTEGER NOT NULL,
        last_seen_ms INTEGER NOT NULL
    );",
    ),
    // Issue 15: the principal that asked for an assignment over SNMP (`community:NAME` or `user:NAME`, see
    // `principal::Principal::stored`); NULL when the station's operator made it (CLI, tasks) or it predates this
    // migration. Only that principal and the station's admins may see its details or release it over SNMP.
    M::up("ALTER TABLE assignments ADD COLUMN owner TEXT;"),
    // Wiped volumes and exclusive grants: how far a unit has cleared a volume it wipes (NULL when it does not),
    // and the hosts the unit's access table grants the volume to, whoever made the grants, so the pool can tell
    // volumes granted by someone else and never hand them out. Written as a JSON array of `model::GrantHost`
    // (address, TLS identity or both); rows written before identities were known hold comma-separated addresses.
    M::up(
        "ALTER TABLE volumes ADD COLUMN clearing INTEGER;
    ALTER TABLE volumes ADD COLUMN granted_hosts TEXT NOT NULL DEFAULT '';",
    ),
    // Grants name host identities: the host identities the station's CA issued a client certificate for (`host
    // issue`, dvsanStationCertRequestTable), so a request by an SNMPv3 user with one is granted by identity, and
    // revoked identities (`host revoke`; `revoked_ms` set until an admin issues again). `assignments.identity` is
    // the identity the assignment's grant names next to its address (NULL: a grant by address only).
    M::up(
        "CREATE TABLE host_identities (
        name TEXT PRIMARY KEY,
        issued_ms INTEGER NOT NULL,
        revoked_ms INTEGER
    ) WITHOUT ROWID;
    ALTER TABLE assignments ADD COLUMN identity TEXT;",
    ),
    // Exclusive grants, `--shared`: a volume may have several assignments, one per host, when every one of them
    // is shared (readWriteShared grants, for cluster filesystems). The key gains the host; `shared` says whether
    // the assignment asked for sharing.
    M::up(
        "CREATE TABLE assignments_shared (
        unit INTEGER NOT NULL REFERENCES units(id),
        volume_idx INTEGER NOT NULL,
        host TEXT NOT NULL,
        read_only INTEGER NOT NULL,
        grant_idx INTEGER NOT NULL,
        volume_created INTEGER NOT NULL,
        created_ms INTEGER NOT NULL,
        pending INTEGER NOT NULL DEFAULT 0,
        owner TEXT,
        identity TEXT,
        shared INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (unit, volume_idx, host)
    ) WITHOUT ROWID;
    INSERT INTO assignments_shared (unit, volume_idx, host, read_only, grant_idx, volume_created, created_ms,
        pending, owner, identity)
        SELECT unit, volume_idx, host, read_only, grant_idx, volume_created, created_ms, pending, owner, identity
        FROM assignments;
    DROP TABLE assignments;
    ALTER TABLE assignments_shared RENAME TO assignments;",
    ),
    // Station tasks ask for shared assignments too (dvsanStationTaskShared, for assignVolume and allocate).
    M::up("ALTER TABLE tasks ADD COLUMN shared INTEGER NOT NULL DEFAULT 0;"),
    // Issue 17, mirrored volumes: units' station-side labels (`zone`: replicas of one mirror go to different
    // zones; `spare`: kept out of ordinary allocation), the logical volumes of `request --replicas N` and their
    // replicas (each replica is also an ordinary assignment of its unit's volume), and the task argument.
    M::up(
        "ALTER TABLE units ADD COLUMN zone TEXT NOT NULL DEFAULT '';
    ALTER TABLE units ADD COLUMN spare INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE tasks ADD COLUMN replicas INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE mirrors (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        host TEXT NOT NULL,
        size_bytes INTEGER NOT NULL,
        replicas INTEGER NOT NULL,
        owner TEXT,
        created_ms INTEGER NOT NULL
    );
    CREATE TABLE mirror_replicas (
        mirror INTEGER NOT NULL REFERENCES mirrors(id),
        replica INTEGER NOT NULL,
        unit INTEGER NOT NULL,
        volume_idx INTEGER NOT NULL,
        PRIMARY KEY (mirror, replica),
        UNIQUE (unit, volume_idx)
    ) WITHOUT ROWID;",
    ),
    // What hosts' fronts report about the replicas of their mirrored volumes (dvsanStationFrontTable): the
    // replica's state, dirty bytes, resync progress and when the front last reported (its heartbeat).
    M::up(
        "CREATE TABLE front_reports (
        mirror INTEGER NOT NULL,
        replica INTEGER NOT NULL,
        state TEXT NOT NULL,
        dirty_bytes INTEGER NOT NULL DEFAULT 0,
        resync_percent INTEGER NOT NULL DEFAULT 0,
        reported_ms INTEGER NOT NULL,
        PRIMARY KEY (mirror, replica)
    ) WITHOUT ROWID;",
    ),
];

/// Most rows of `pending_units`: a flood of units from many addresses is recorded up to this many, then dropped.
pub const MAX_PENDING_UNITS: usize = 1024;

/// What [`Store::record_pending`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PendingRecord {
    /// The row as it is now, and whether it was made by this call.
    Recorded { row: PendingUnit, created: bool },
    /// Not recorded: the pending table is full.
    Full,
    /// Not recorded: a pool unit has that address (it was approved or enrolled meanwhile).
    Pooled,
}

/// A unit that announced itself without being trusted (`dvsan-station unit pending`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PendingUnit {
    pub index: u32,
    /// The unit's agent: the notifications' source IP and the agent port.
    pub address: SocketAddr,
    /// The unit id it claims ("" when it has not said).
    pub unit_id: String,
    pub unit_name: String,
    pub sys_name: String,
    pub sys_descr: String,
    /// "pending" or "rejected".
    pub state: String,
    pub notifications: u64,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
}

/// What one source's notifications (or an answer of its agent) told about a pending unit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PendingClaim {
    pub unit_id: Option<String>,
    pub unit_name: Option<String>,
    pub sys_name: Option<String>,
    pub sys_descr: Option<String>,
    /// Notifications it sent (0 for an answer of its agent).
    pub notifications: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("store schema migration: {0}")]
    Migration(#[from] rusqlite_migration::Error),
    /// The OS error is part of the one message (not a `source`, which `{:#}` would print a second time).
    #[error("cannot use state directory {path}: {error}")]
    StateDir { path: PathBuf, error: std::io::Error },
    #[error("state directory {0} does not exist; give the directory `dvsan-station run --state-dir` uses")]
    NoStateDir(PathBuf),
    #[error("{0} is not a directory; --state-dir takes the directory `dvsan-station run --state-dir` uses")]
    NotADirectory(PathBuf),
    #[error("cannot take the store's open lock {path}: {source}")]
    OpenLock { path: PathBuf, source: std::io::Error },
    #[error("{0} holds no station store ({STORE_FILE}); start `dvsan-station run --state-dir` there first")]
    NoStore(PathBuf),
    #[error("no unit matches {0:?}; `dvsan-station pool` lists the units (by unit id, name or address)")]
    UnknownUnit(String),
    #[error("{given:?} matches several units ({candidates}); give the full unit id or the address")]
    AmbiguousUnit { given: String, candidates: String },
    #[error("volume {volume} of unit #{unit} is already assigned to {host}")]
    AlreadyAssigned { unit: u32, volume: u32, host: String },
    #[error("no pending unit matches {0:?}; `dvsan-station unit pending` lists them (by index, unit id or address)")]
    UnknownPending(String),
    #[error("{given:?} matches several pending units ({candidates}); give the index or the address")]
    AmbiguousPending { given: String, candidates: String },
    #[error("stored row is not valid: {0}")]
    Corrupt(String),
    #[error(
        "unit #{unit} has assigned volumes ({}); release them first (`dvsan-station unassign`, or `dvsan-host \
         release` on the host), or use --force if the unit is gone for good",
        assignment_list(assignments)
    )]
    UnitAssigned { unit: u32, assignments: Vec<AssignmentRecord> },
}

/// `volume 2 to 192.0.2.10, volume 3 to 192.0.2.11 (read-only)`: assignments of one unit, for messages.
pub fn assignment_list(assignments: &[AssignmentRecord]) -> String {
    let one = |a: &AssignmentRecord| {
        format!("unit #{}/volume {} to {}{}", a.unit, a.volume, a.host, if a.read_only { " (read-only)" } else { "" })
    };
    assignments.iter().map(one).collect::<Vec<_>>().join(", ")
}

/// A unit forgotten by [`StationStore::remove_unit`]: its last row, how many volumes it had, and the assignments
/// that were released with it (only with `force`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovedUnit {
    pub unit: UnitRecord,
    pub volumes: usize,
    pub released: Vec<AssignmentRecord>,
    /// Of `released`, those whose grant on the unit could not be revoked (the unit was not available): the host may
    /// still reach the volume if the unit comes back.
    pub unrevoked: Vec<AssignmentRecord>,
}

/// Why the state directory cannot be used, in words for the operator.
fn state_dir_error(path: &Path, error: std::io::Error) -> StoreError {
    match error.kind() {
        std::io::ErrorKind::NotFound => StoreError::NoStateDir(path.to_path_buf()),
        // AlreadyExists: creating the directory found a file there.
        std::io::ErrorKind::NotADirectory | std::io::ErrorKind::AlreadyExists => {
            StoreError::NotADirectory(path.to_path_buf())
        }
        _ => StoreError::StateDir { path: path.to_path_buf(), error },
    }
}

/// A unit row, as the receiver, the poller and the CLI need it (no volumes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitRecord {
    pub index: u32,
    pub unit_id: Option<String>,
    pub name: String,
    pub address: Option<SocketAddr>,
    pub state: UnitState,
    pub reason: String,
    /// The unit announced its shutdown (dvsanUnitShutdown); it stays unavailable, not unreachable, while away.
    pub shut_down: bool,
    pub sys_uptime: Option<u32>,
    pub change_counter: Option<u32>,
    pub last_seen_ms: Option<i64>,
    /// The host name the unit was registered by (`unit add NAME`); empty when registered by address.
    pub host_name: String,
}

/// What a sync changed, for the station's own notifications and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncOutcome {
    pub index: u32,
    /// The unit's state before the sync; `None` when the unit is new to the pool.
    pub previous_state: Option<UnitState>,
    pub state: UnitState,
    pub volumes_added: Vec<VolumeRow>,
    pub volumes_removed: Vec<VolumeRow>,
    /// Other units that had this address and lost it (they moved or were replaced).
    pub displaced: Vec<u32>,
}

/// A state change made by [`StationStore::set_state`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateChange {
    pub index: u32,
    pub previous: UnitState,
    pub state: UnitState,
}

/// Which notifications `notifications` returns.
#[derive(Debug, Clone, Default)]
pub struct NotificationFilter {
    /// Only rows with a larger id (for following).
    pub after_id: i64,
    pub since_ms: Option<i64>,
    /// Dotted notification OID.
    pub trap_oid: Option<String>,
    /// A unit: notifications that name it, or that came from its address without naming any unit.
    pub unit: Option<(Option<String>, Option<IpAddr>)>,
    /// Most rows to return (the newest ones when `newest_first_limit` is used by the caller).
    pub limit: usize,
}

/// An open station store.
pub struct StationStore {
    conn: Connection,
    path: PathBuf,
}

impl StationStore {
    /// Opens the store in `state_dir`, creating the directory, the file and the schema as needed.
    pub fn open(state_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(state_dir).map_err(|e| state_dir_error(state_dir, e))?;
        Self::open_file(&state_dir.join(STORE_FILE))
    }

    /// Opens an existing store (for the read-only CLI commands): the directory must exist and hold one.
    pub fn open_existing(state_dir: &Path) -> Result<Self, StoreError> {
        let meta = std::fs::metadata(state_dir).map_err(|e| state_dir_error(state_dir, e))?;
        if !meta.is_dir() {
            return Err(StoreError::NotADirectory(state_dir.to_path_buf()));
        }
        std::fs::read_dir(state_dir).map_err(|e| state_dir_error(state_dir, e))?;
        let path = state_dir.join(STORE_FILE);
        if !path.exists() {
            return Err(StoreError::NoStore(state_dir.to_path_buf()));
        }
        Self::open_file(&path)
    }

    fn open_file(path: &Path) -> Result<Self, StoreError> {
        // Held until the schema is current: processes opening a fresh store at once must not both migrate it.
        let _opening = dvsan_layout::lock_store_open(path)
            .map_err(|source| StoreError::OpenLock { path: dvsan_layout::open_lock_path(path), source })?;
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // NORMAL in WAL mode: a committed transaction survives a crash of the process (kill -9); only an OS crash
        // or power loss may lose the last commits. FULL costs an fsync per batch; see the README's numbers.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        Migrations::from_slice(MIGRATIONS).to_latest(&mut conn)?;
        Ok(StationStore { conn, path: path.to_path_buf() })
    }

    /// Switches to `synchronous = FULL` (fsync at every commit) for deployments that must survive power loss.
    pub fn set_full_durability(&self) -> Result<(), StoreError> {
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    // ----- units -----

    /// SQLite's `PRAGMA data_version`: it changes when another connection commits to the store (not when this
    /// one does).
    pub fn data_version(&self) -> Result<i64, StoreError> {
        Ok(self.conn.query_row("PRAGMA data_version", [], |r| r.get(0))?)
    }

    /// Every unit, by index.
    pub fn units(&self) -> Result<Vec<UnitRecord>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!("{UNIT_SELECT} ORDER BY id"))?;
        let rows = stmt.query_map([], unit_from_row)?;
        rows.map(|r| r.map_err(StoreError::from).and_then(|r| r)).collect()
    }

    pub fn unit(&self, index: u32) -> Result<Option<UnitRecord>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!("{UNIT_SELECT} WHERE id = ?1"))?;
        stmt.query_row([index], unit_from_row).optional()?.transpose()
    }

    /// Registers an agent address (`unit add`): a placeholder row in state unreachable until a walk succeeds.
    /// `host_name` is the name the address was resolved from, if the operator gave one; it is kept (also on a
    /// unit already at that address) so the station can resolve it again. Returns the index of the unit at that
    /// address, and whether a row was created.
    pub fn register_address(
        &mut self,
        address: SocketAddr,
        host_name: Option<&str>,
        now_ms: i64,
    ) -> Result<(u32, bool), StoreError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (index, created) = match unit_at(&tx, address)? {
            Some((index, _)) => (index, false),
            None => {
                (insert_placeholder(&tx, address, UnitState::Unreachable, "registered; not walked yet", now_ms)?, true)
            }
        };
        if let Some(name) = host_name {
            tx.execute("UPDATE units SET host_name = ?2 WHERE id = ?1", params![index, name])?;
        }
        tx.commit()?;
        Ok((index, created))
    }

    /// Moves unit `index` to `address`: its host name now resolves there and the unit answered there with its own
    /// id (the caller checked). Another row still at that address is a unit that is no longer there: it loses the
    /// address and, if it was a known unit, becomes unreachable (the change is returned, as a walk would record it).
    /// Nothing happens when unit `index` is gone (removed meanwhile).
    pub fn move_unit(
        &mut self,
        index: u32,
        address: SocketAddr,
        now_ms: i64,
    ) -> Result<Option<StateChange>, StoreError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let exists: Option<u32> =
            tx.query_row("SELECT id FROM units WHERE id = ?1", [index], |r| r.get(0)).optional()?;
        if exists.is_none() {
            return Ok(None);
        }
        let mut displaced = None;
        if let Some((other, other_unit_id)) = unit_at(&tx, address)? {
            if other != index {
                tx.execute("UPDATE units SET address = NULL, port = NULL WHERE id = ?1", [other])?;
                if other_unit_id.is_some() {
                    let reason = format!("its address {address} now answers as unit #{index}");
                    displaced = set_state_in(&tx, other, UnitState::Unreachable, &reason, false, now_ms)?;
                }
            }
        }
        tx.execute(
            "UPDATE units SET address = ?2, port = ?3 WHERE id = ?1",
            params![index, address.ip().to_string(), address.port()],
        )?;
        tx.commit()?;
        Ok(displaced)
    }

    /// Records a failed walk of the agent at `address`: the unit there goes to state error with `reason` (a
    /// placeholder is created when no unit has that address). Returns the change, if the state changed.
    pub fn record_walk_failure(
        &mut self,
        address: SocketAddr,
        reason: &str,
        now_ms: i64,
    ) -> Result<(u32, Option<StateChange>), StoreError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let index = match unit_at(&tx, address)? {
            Some((index, _)) => index,
            None => insert_placeholder(&tx, address, UnitState::Error, reason, now_ms)?,
        };
        let change = set_state_in(&tx, index, UnitState::Error, reason, false, now_ms)?;
        tx.commit()?;
        Ok((index, change))
    }

    /// Sets a unit's state. Any state but available also makes its volumes unavailable (rows are kept);
    /// available is only reached through [`StationStore::sync_unit`].
    pub fn set_state(
        &mut self,
        index: u32,
        state: UnitState,
        reason: &str,
        shut_down: bool,
        now_ms: i64,
    ) -> Result<Option<StateChange>, StoreError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let change = set_state_in(&tx, index, state, reason, shut_down, now_ms)?;
        tx.commit()?;
        Ok(change)
    }

    /// Records that units were heard from (poll answers, notifications): last-seen time and sysUpTime, in one
    /// transaction.
    pub fn touch_units(&mut self, seen: &[(u32, Option<u32>)], now_ms: i64) -> Result<(), StoreError> {
        if seen.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut stmt = tx.prepare_cached(
                "UPDATE units SET last_seen_ms = ?2, sys_uptime = COALESCE(?3, sys_uptime) WHERE id = ?1",
            )?;
            for (index, uptime) in seen {
                stmt.execute(params![index, now_ms, uptime])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Replaces what the store knows about the unit whose agent at `address` answered with `snapshot`, in one
    /// transaction: the unit row (adopting a placeholder at that address, or moving a known unit to its new
    /// address), its media, volumes and partitions.
    pub fn sync_unit(
        &mut self,
        address: SocketAddr,
        snapshot: &UnitSnapshot,
        now_ms: i64,
    ) -> Result<SyncOutcome, StoreError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (target, displaced) = claim_row(&tx, address, snapshot, now_ms)?;
        let (state, reason) = snapshot.state();
        let (index, previous_state) = match target {
            // `previous` is None for an adopted placeholder: the unit is new to the pool.
            Some((index, previous)) => (index, previous),
            None => {
                let index = insert_placeholder(&tx, address, state, &reason, now_ms)?;
                (index, None)
            }
        };
        write_unit_row(&tx, index, address, snapshot, (state, &reason), now_ms)?;
        // The unit is in the pool at this address now: it is not pending there any more.
        tx.execute("DELETE FROM pending_units WHERE address = ?1", [address.ip().to_string()])?;
        let old_volumes = read_volumes(&tx, index)?;
        replace_layout(&tx, index, snapshot, state)?;
        tx.commit()?;
        let (volumes_added, volumes_removed) = volume_changes(&old_volumes, &snapshot.volumes);
        Ok(SyncOutcome { index, previous_state, state, volumes_added, volumes_removed, displaced })
    }

    /// Finds a unit by what a person typed: its unit id (or a unique prefix of at least 4 characters), its name,
    /// its address (`IP` or `IP:PORT`), or its station index.
    pub fn find_unit(&self, given: &str) -> Result<UnitRecord, StoreError> {
        let given_trimmed = given.trim();
        let units = self.units()?;
        let exact: Vec<&UnitRecord> = units
            .iter()
            .filter(|u| {
                u.unit_id.as_deref() == Some(given_trimmed) || u.address.is_some_and(|a| a.to_string() == given_trimmed)
            })
            .collect();
        if let [one] = exact.as_slice() {
            return Ok((*one).clone());
        }
        let mut candidates: Vec<&UnitRecord> = Vec::new();
        if let Ok(ip) = given_trimmed.parse::<IpAddr>() {
            candidates.extend(units.iter().filter(|u| u.address.is_some_and(|a| a.ip() == ip)));
        }
        if candidates.is_empty() {
            candidates.extend(units.iter().filter(|u| !u.name.is_empty() && u.name == given_trimmed));
        }
        if candidates.is_empty() && given_trimmed.len() >= 4 {
            candidates
                .extend(units.iter().filter(|u| u.unit_id.as_deref().is_some_and(|id| id.starts_with(given_trimmed))));
        }
        if candidates.is_empty() {
            if let Ok(index) = given_trimmed.parse::<u32>() {
                candidates.extend(units.iter().filter(|u| u.index == index));
            }
        }
        match candidates.as_slice() {
            [] => Err(StoreError::UnknownUnit(given.to_string())),
            [one] => Ok((*one).clone()),
            many => Err(StoreError::AmbiguousUnit {
                given: given.to_string(),
                candidates: many
                    .iter()
                    .map(|u| u.unit_id.clone().unwrap_or_else(|| format!("#{}", u.index)))
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// The whole pool: units with media, volumes and partitions, by index.
    pub fn pool(&self) -> Result<Vec<PoolUnit>, StoreError> {
        self.read_pool(None)
    }

    /// One unit of the pool with its media, volumes and partitions (reads only that unit's rows).
    /// The volumes a unit was clearing when last read: (unit, volume).
    pub fn clearing_volumes(&self) -> Result<Vec<(u32, u32)>, StoreError> {
        let mut stmt = self.conn.prepare_cached("SELECT unit, idx FROM volumes WHERE clearing IS NOT NULL")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn pool_unit(&self, index: u32) -> Result<Option<PoolUnit>, StoreError> {
        Ok(self.read_pool(Some(index))?.pop())
    }

    /// The pool, or only unit `only`.
    fn read_pool(&self, only: Option<u32>) -> Result<Vec<PoolUnit>, StoreError> {
        let filter = |column: &str| only.map_or(String::new(), |_| format!("WHERE {column} = ?1"));
        let only = rusqlite::params_from_iter(only);
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT id, unit_id, name, address, port, state, reason, block_size, capacity_blocks, free_blocks,
                data_address, data_port, change_counter, sys_uptime, last_seen_ms, last_sync_ms, host_name, zone, spare
             FROM units {} ORDER BY id",
            filter("id")
        ))?;
        let mut units: Vec<PoolUnit> = stmt.query_map(only.clone(), pool_unit_row)?.collect::<Result<_, _>>()?;
        let position: BTreeMap<u32, usize> = units.iter().enumerate().map(|(i, u)| (u.index, i)).collect();

        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT unit, idx, path, kind, blocks, first_lba FROM media {} ORDER BY unit, idx",
            filter("unit")
        ))?;
        let mut rows = stmt.query(only.clone())?;
        while let Some(r) = rows.next()? {
            let unit: u32 = r.get(0)?;
            if let Some(&i) = position.get(&unit) {
                units[i].media.push(MediumRow {
                    index: r.get(1)?,
                    path: r.get(2)?,
                    kind: r.get(3)?,
                    blocks: r.get(4)?,
                    first_lba: r.get(5)?,
                });
            }
        }
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT unit, idx, name, start_lba, end_lba, length, export_name, state, clearing, granted_hosts
             FROM volumes {} ORDER BY unit, idx",
            filter("unit")
        ))?;
        // A grant is the station's when an assignment names its volume and host.
        let held: std::collections::BTreeSet<(u32, u32, GrantHost)> =
            read_assignments(&self.conn, None)?.into_iter().map(|a| (a.unit, a.volume, a.grant_host())).collect();
        let mut rows = stmt.query(only.clone())?;
        while let Some(r) = rows.next()? {
            let unit: u32 = r.get(0)?;
            if let Some(&i) = position.get(&unit) {
                let length: u32 = r.get(5)?;
                let block_size = units[i].block_size;
                units[i].volumes.push(PoolVolume {
                    index: r.get(1)?,
                    name: r.get(2)?,
                    start_lba: r.get(3)?,
                    end_lba: r.get(4)?,
                    length,
                    size_bytes: block_size.map(|bs| u64::from(bs) * u64::from(length)),
                    export_name: r.get(6)?,
                    state: r.get::<_, String>(7)?.parse().unwrap_or(Availability::Unavailable),
                    clearing: r.get(8)?,
                    foreign_grants: hosts_of(&r.get::<_, String>(9)?)
                        .into_iter()
                        .filter(|h| !held.contains(&(unit, r.get(1).unwrap_or(0), h.clone())))
                        .map(|h| h.to_string())
                        .collect(),
                    partitions: Vec::new(),
                });
            }
        }
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT unit, volume_idx, idx, start_lba, end_lba, length, export_name FROM partitions {}
             ORDER BY unit, volume_idx, idx",
            filter("unit")
        ))?;
        let mut rows = stmt.query(only)?;
        while let Some(r) = rows.next()? {
            let unit: u32 = r.get(0)?;
            let volume_index: u32 = r.get(1)?;
            let Some(&i) = position.get(&unit) else { continue };
            let block_size = units[i].block_size;
            let Some(volume) = units[i].volumes.iter_mut().find(|v| v.index == volume_index) else { continue };
            let length: u32 = r.get(5)?;
            volume.partitions.push(PoolPartition {
                index: r.get(2)?,
                start_lba: r.get(3)?,
                end_lba: r.get(4)?,
                length,
                size_bytes: block_size.map(|bs| u64::from(bs) * u64::from(length)),
                export_name: r.get(6)?,
                state: volume.state,
            });
        }
        Ok(units)
    }

    // ----- pending units -----

    /// Records what an untrusted unit at `address` (source IP, agent port) claims: a new row, or the existing row
    /// of that IP updated (fields given replace the stored ones; last-seen time and notification count move).
    /// Nothing is recorded when the table is full ([`MAX_PENDING_UNITS`]), nor for the address of a pool unit: a
    /// notification judged untrusted just before an operator approved its unit (in another process) must not
    /// bring the unit back as pending.
    pub fn record_pending(
        &mut self,
        address: SocketAddr,
        claim: &PendingClaim,
        now_ms: i64,
    ) -> Result<PendingRecord, StoreError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let ip = address.ip().to_string();
        let exists: Option<u32> =
            tx.query_row("SELECT id FROM pending_units WHERE address = ?1", [&ip], |r| r.get(0)).optional()?;
        let created = exists.is_none();
        if created {
            let pooled: Option<i64> = tx
                .query_row("SELECT id FROM units WHERE address = ?1 AND port = ?2", params![ip, address.port()], |r| {
                    r.get(0)
                })
                .optional()?;
            if pooled.is_some() {
                return Ok(PendingRecord::Pooled);
            }
            let rows: i64 = tx.query_row("SELECT count(*) FROM pending_units", [], |r| r.get(0))?;
            if usize::try_from(rows).unwrap_or(usize::MAX) >= MAX_PENDING_UNITS {
                return Ok(PendingRecord::Full);
            }
            tx.execute(
                "INSERT INTO pending_units (address, port, state, first_seen_ms, last_seen_ms)
                 VALUES (?1, ?2, 'pending', ?3, ?3)",
                params![ip, address.port(), now_ms],
            )?;
        }
        tx.execute(
            "UPDATE pending_units SET unit_id = COALESCE(?2, unit_id), unit_name = COALESCE(?3, unit_name),
                sys_name = COALESCE(?4, sys_name), sys_descr = COALESCE(?5, sys_descr),
                notifications = notifications + ?6, last_seen_ms = max(last_seen_ms, ?7)
             WHERE address = ?1",
            params![
                ip,
                claim.unit_id,
                claim.unit_name,
                claim.sys_name,
                claim.sys_descr,
                i64::try_from(claim.notifications).unwrap_or(i64::MAX),
                now_ms
            ],
        )?;
        let row = tx.query_row(&format!("{PENDING_SELECT} WHERE address = ?1"), [&ip], pending_from_row)?;
        tx.commit()?;
        Ok(PendingRecord::Recorded { row: row?, created })
    }

    /// The pending units (with `rejected`, the rejected ones too), by index.
    pub fn pending_units(&self, rejected: bool) -> Result<Vec<PendingUnit>, StoreError> {
        let filter = if rejected { "" } else { " WHERE state = 'pending'" };
        let mut stmt = self.conn.prepare_cached(&format!("{PENDING_SELECT}{filter} ORDER BY id"))?;
        let rows = stmt.query_map([], pending_from_row)?;
        rows.map(|r| r.map_err(StoreError::from).and_then(|r| r)).collect()
    }

    /// Finds a pending (or rejected) unit by what a person typed: its index, the unit id it claims (or a unique
    /// prefix of at least 4 characters), its address (IP or IP:PORT) or the name it claims.
    pub fn find_pending(&self, given: &str) -> Result<PendingUnit, StoreError> {
        let given_trimmed = given.trim();
        let all = self.pending_units(true)?;
        let matches = |p: &&PendingUnit| {
            p.index.to_string() == given_trimmed
                || p.address.to_string() == given_trimmed
                || p.address.ip().to_string() == given_trimmed
                || (!p.unit_id.is_empty() && p.unit_id == given_trimmed)
        };
        let mut candidates: Vec<&PendingUnit> = all.iter().filter(matches).collect();
        if candidates.is_empty() {
            candidates.extend(all.iter().filter(|p| !p.unit_name.is_empty() && p.unit_name == given_trimmed));
        }
        if candidates.is_empty() && given_trimmed.len() >= 4 {
            candidates.extend(all.iter().filter(|p| p.unit_id.starts_with(given_trimmed)));
        }
        match candidates.as_slice() {
            [] => Err(StoreError::UnknownPending(given.to_string())),
            [one] => Ok((*one).clone()),
            many => Err(StoreError::AmbiguousPending {
                given: given.to_string(),
                candidates: many.iter().map(|p| format!("#{} {}", p.index, p.address)).collect::<Vec<_>>().join(", "),
            }),
        }
    }

    /// Marks a pending unit rejected: it stays out of the pool and is not offered again.
    pub fn reject_pending(&mut self, index: u32) -> Result<bool, StoreError> {
        Ok(self.conn.execute("UPDATE pending_units SET state = 'rejected' WHERE id = ?1", [index])? > 0)
    }

    /// Forgets a pending unit's row (it was approved, or its unit is in the pool now).
    pub fn delete_pending(&mut self, index: u32) -> Result<bool, StoreError> {
        Ok(self.conn.execute("DELETE FROM pending_units WHERE id = ?1", [index])? > 0)
    }

    /// Pending units in state pending (dvsanStationPendingUnits).
    pub fn pending_count(&self) -> Result<u32, StoreError> {
        Ok(self.conn.query_row("SELECT count(*) FROM pending_units WHERE state = 'pending'", [], |r| r.get(0))?)
    }

    /// The station indexes of the units (and placeholders) whose agent address is on `ip`.
    pub fn units_at_ip(&self, ip: IpAddr) -> Result<Vec<u32>, StoreError> {
        let mut stmt = self.conn.prepare_cached("SELECT id FROM units WHERE address = ?1 ORDER BY id")?;
        let rows = stmt.query_map([ip.to_string()], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every address the station was told to trust without credentials: the IPs of the units' agent addresses
    /// (known units and placeholders of `unit add` or an approval).
    pub fn registered_ips(&self) -> Result<Vec<IpAddr>, StoreError> {
        Ok(self.units()?.iter().filter_map(|u| u.address.map(|a| a.ip())).collect())
    }

    // ----- notifications -----

    /// Stores a batch of notifications in one transaction and sets their `id`s.
    pub fn insert_notifications(&mut self, records: &mut [NotificationRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO notifications (time_ms, source, source_ip, version, community, kind, uptime, trap_oid,
                    unit_id, varbinds)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?;
            let mut varbinds = String::with_capacity(512);
            for record in records.iter_mut() {
                varbinds.clear();
                // Serialising plain strings and numbers to a String cannot fail.
                if let Ok(json) = serde_json::to_string(&record.varbinds) {
                    varbinds.push_str(&json);
                }
                insert.execute(params![
                    record.time_ms,
                    record.source.to_string(),
                    record.source.ip().to_string(),
                    record.version,
                    record.community,
                    record.kind.as_str(),
                    record.uptime,
                    record.trap_oid,
                    record.unit_id,
                    varbinds,
                ])?;
                record.id = tx.last_insert_rowid();
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Deletes the oldest notifications so that at most `keep` remain. Returns how many were deleted.
    pub fn prune_notifications(&mut self, keep: u64) -> Result<usize, StoreError> {
        let keep = i64::try_from(keep).unwrap_or(i64::MAX);
        Ok(self
            .conn
            .execute("DELETE FROM notifications WHERE id <= (SELECT MAX(id) FROM notifications) - ?1", [keep])?)
    }

    pub fn notification_count(&self) -> Result<u64, StoreError> {
        Ok(self.conn.query_row("SELECT COUNT(*) FROM notifications", [], |r| r.get::<_, i64>(0))? as u64)
    }

    /// The largest notification id (0 when the log is empty).
    pub fn last_notification_id(&self) -> Result<i64, StoreError> {
        Ok(self.conn.query_row("SELECT COALESCE(MAX(id), 0) FROM notifications", [], |r| r.get(0))?)
    }

    /// Notifications matching `filter`, oldest first. With `newest` the last `filter.limit` matches are returned
    /// (still oldest first), otherwise the first `filter.limit` after `filter.after_id`.
    pub fn notifications(
        &self,
        filter: &NotificationFilter,
        newest: bool,
    ) -> Result<Vec<NotificationRecord>, StoreError> {
        let mut sql = String::from(
            "SELECT id, time_ms, source, version, community, kind, uptime, trap_oid, unit_id, varbinds
             FROM notifications WHERE id > ?1",
        );
        let mut args: Vec<rusqlite::types::Value> = vec![filter.after_id.into()];
        if let Some(since) = filter.since_ms {
            args.push(since.into());
            sql.push_str(&format!(" AND time_ms >= ?{}", args.len()));
        }
        if let Some(oid) = &filter.trap_oid {
            args.push(oid.clone().into());
            sql.push_str(&format!(" AND trap_oid = ?{}", args.len()));
        }
        if let Some((unit_id, ip)) = &filter.unit {
            let mut alternatives = Vec::new();
            if let Some(unit_id) = unit_id {
                args.push(unit_id.clone().into());
                alternatives.push(format!("unit_id = ?{}", args.len()));
            }
            if let Some(ip) = ip {
                args.push(ip.to_string().into());
                alternatives.push(format!("(unit_id IS NULL AND source_ip = ?{})", args.len()));
            }
            if alternatives.is_empty() {
                alternatives.push("0".to_string());
            }
            sql.push_str(&format!(" AND ({})", alternatives.join(" OR ")));
        }
        let limit = i64::try_from(filter.limit.max(1)).unwrap_or(i64::MAX);
        args.push(limit.into());
        if newest {
            sql = format!("SELECT * FROM ({sql} ORDER BY id DESC LIMIT ?{}) ORDER BY id", args.len());
        } else {
            sql.push_str(&format!(" ORDER BY id LIMIT ?{}", args.len()));
        }
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(args), |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, Option<u32>>(6)?,
                r.get::<_, String>(7)?,
                r.get::<_, Option<String>>(8)?,
                r.get::<_, String>(9)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, time_ms, source, version, community, kind, uptime, trap_oid, unit_id, varbinds) = row?;
            let source = source.parse().map_err(|_| StoreError::Corrupt(format!("notification {id}: source")))?;
            let kind = NotificationKind::parse(&kind)
                .ok_or_else(|| StoreError::Corrupt(format!("notification {id}: kind {kind:?}")))?;
            let varbinds: Vec<VarBindRecord> = serde_json::from_str(&varbinds)
                .map_err(|e| StoreError::Corrupt(format!("notification {id}: varbinds: {e}")))?;
            out.push(NotificationRecord {
                id,
                time_ms,
                source,
                version,
                community,
                kind,
                uptime,
                trap_oid,
                unit_id,
                varbinds,
            });
        }
        Ok(out)
    }

    /// Runs `PRAGMA integrity_check` (after a crash, tests check the file is sound).
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        Ok(self.conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
    }
}

/// A volume assigned to a host, as the store records it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AssignmentRecord {
    /// The unit's station index.
    pub unit: u32,
    /// dvsanVolumeIndex on the unit.
    pub volume: u32,
    pub host: IpAddr,
    pub read_only: bool,
    /// dvsanAccessIndex of the grant on the unit.
    pub grant: u32,
    /// The station created the volume for this assignment (it is destroyed if the grant fails).
    pub volume_created: bool,
    pub created_ms: i64,
    /// Written before the grant was SET and not confirmed yet (a crash in between leaves it so).
    pub pending: bool,
    /// Who asked for it over SNMP (`principal::Principal::stored`); `None`: the station's operator.
    pub owner: Option<String>,
    /// The TLS identity its grant names next to the address (dvsanAccessHostIdentity); `None`: address only.
    pub identity: Option<String>,
    /// Asked for sharing (`--shared`): a readWriteShared grant; the volume may have other shared assignments.
    pub shared: bool,
}

impl AssignmentRecord {
    /// The grant on the unit that is this assignment's: its address, and its identity if it has one.
    pub fn grant_host(&self) -> GrantHost {
        GrantHost { address: Some(self.host), identity: self.identity.clone() }
    }
}

/// A host identity the station's CA issued a client certificate for (`host_identities`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostIdentity {
    pub name: String,
    pub issued_ms: i64,
    /// When `host revoke` revoked it; `None` while it is valid.
    pub revoked_ms: Option<i64>,
}

impl HostIdentity {
    /// Issued and not revoked.
    pub fn valid(&self) -> bool {
        self.revoked_ms.is_none()
    }
}

/// What allocation needs to know about a unit: where to reach it, its state and its free space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocationUnit {
    pub index: u32,
    pub unit_id: Option<String>,
    pub address: Option<SocketAddr>,
    pub state: UnitState,
    pub block_size: Option<u32>,
    pub free_blocks: Option<u32>,
    pub largest_free_blocks: Option<u32>,
    pub data_address: Option<IpAddr>,
    pub data_port: Option<u16>,
    /// The unit's zone label (empty: none); replicas of a mirror go to different zones.
    pub zone: String,
    /// A spare unit: kept out of ordinary allocation.
    pub spare: bool,
}

impl StationStore {
    // ----- units' labels -----

    /// Sets unit `index`'s zone label (`Some("")` clears it) and whether it is a spare; `None` leaves either as
    /// it is. Whether the unit exists.
    pub fn set_unit_labels(&mut self, index: u32, zone: Option<&str>, spare: Option<bool>) -> Result<bool, StoreError> {
        let n = self.conn.execute(
            "UPDATE units SET zone = COALESCE(?2, zone), spare = COALESCE(?3, spare) WHERE id = ?1",
            params![index, zone, spare],
        )?;
        Ok(n > 0)
    }

    // ----- mirrored volumes -----

    /// Records a mirrored volume that is to have `wanted` replicas, before they are made (each is added with
    /// [`StationStore::add_mirror_replica`] once assigned): one with fewer replica rows than `wanted` was left
    /// midway by a request that stopped, and reconciliation undoes it. Returns its index.
    pub fn insert_mirror(
        &mut self,
        name: &str,
        host: IpAddr,
        size_bytes: u64,
        owner: Option<&str>,
        wanted: u32,
    ) -> Result<u32, StoreError> {
        self.conn.execute(
            "INSERT INTO mirrors (name, host, size_bytes, replicas, owner, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![name, host.to_string(), size_bytes as i64, wanted, owner, crate::timefmt::now_ms()],
        )?;
        u32::try_from(self.conn.last_insert_rowid()).map_err(|_| StoreError::Corrupt("mirror index".into()))
    }

    /// Records replica `replica` (from 1) of mirrored volume `mirror`: volume `volume` of unit `unit`.
    pub fn add_mirror_replica(&mut self, mirror: u32, replica: u32, unit: u32, volume: u32) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO mirror_replicas (mirror, replica, unit, volume_idx) VALUES (?1, ?2, ?3, ?4)",
            params![mirror, replica, unit, volume],
        )?;
        Ok(())
    }

    /// Every mirrored volume with its replicas, by index.
    pub fn mirrors(&self) -> Result<Vec<MirrorRecord>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, name, host, size_bytes, owner, created_ms, replicas FROM mirrors ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, u32>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })?;
        let mut mirrors = Vec::new();
        for row in rows {
            let (index, name, host, size, owner, created_ms, wanted) = row?;
            let host = host.parse().map_err(|_| StoreError::Corrupt(format!("mirror {index}: host {host:?}")))?;
            mirrors.push(MirrorRecord {
                index,
                name,
                host,
                size_bytes: size as u64,
                owner,
                created_ms,
                wanted,
                replicas: Vec::new(),
            });
        }
        let mut stmt = self
            .conn
            .prepare_cached("SELECT mirror, replica, unit, volume_idx FROM mirror_replicas ORDER BY mirror, replica")?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, u32>(0)?, MirrorReplica { replica: r.get(1)?, unit: r.get(2)?, volume: r.get(3)? }))
        })?;
        for row in rows {
            let (mirror, replica) = row?;
            if let Some(m) = mirrors.iter_mut().find(|m| m.index == mirror) {
                m.replicas.push(replica);
            }
        }
        Ok(mirrors)
    }

    /// The mirrored volume volume `volume` of unit `unit` is a replica of, if any.
    pub fn mirror_of(&self, unit: u32, volume: u32) -> Result<Option<MirrorRecord>, StoreError> {
        Ok(self.mirrors()?.into_iter().find(|m| m.replicas.iter().any(|r| r.unit == unit && r.volume == volume)))
    }

    /// Forgets mirrored volume `index` and its replica rows (not the replicas' assignments).
    pub fn delete_mirror(&mut self, index: u32) -> Result<bool, StoreError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute("DELETE FROM mirror_replicas WHERE mirror = ?1", [index])?;
        tx.execute("DELETE FROM front_reports WHERE mirror = ?1", [index])?;
        let n = tx.execute("DELETE FROM mirrors WHERE id = ?1", [index])?;
        tx.commit()?;
        Ok(n > 0)
    }

    /// Records a front's report on replica `replica` of mirrored volume `mirror` (what is `None` stays as it
    /// was; a first report starts from unknown, nothing dirty, 0%), stamped `now_ms`.
    pub fn record_front_report(
        &mut self,
        mirror: u32,
        replica: u32,
        (state, dirty_bytes, resync_percent): (Option<&str>, Option<u64>, Option<u32>),
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO front_reports (mirror, replica, state, dirty_bytes, resync_percent, reported_ms)
             VALUES (?1, ?2, COALESCE(?3, 'unknown'), COALESCE(?4, 0), COALESCE(?5, 0), ?6)
             ON CONFLICT (mirror, replica) DO UPDATE SET state = COALESCE(?3, state),
                dirty_bytes = COALESCE(?4, dirty_bytes), resync_percent = COALESCE(?5, resync_percent),
                reported_ms = ?6",
            params![mirror, replica, state, dirty_bytes.map(|b| b as i64), resync_percent, now_ms],
        )?;
        Ok(())
    }

    /// Puts a front report back as it was (`None`: there was none), undoing a SET.
    pub fn restore_front_report(
        &mut self,
        mirror: u32,
        replica: u32,
        before: Option<&FrontReport>,
    ) -> Result<(), StoreError> {
        self.conn.execute("DELETE FROM front_reports WHERE mirror = ?1 AND replica = ?2", params![mirror, replica])?;
        if let Some(r) = before {
            self.record_front_report(
                mirror,
                replica,
                (Some(&r.state), Some(r.dirty_bytes), Some(r.resync_percent)),
                r.reported_ms,
            )?;
        }
        Ok(())
    }

    /// Every front report, by mirror and replica.
    pub fn front_reports(&self) -> Result<Vec<FrontReport>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT mirror, replica, state, dirty_bytes, resync_percent, reported_ms FROM front_reports
             ORDER BY mirror, replica",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(FrontReport {
                mirror: r.get(0)?,
                replica: r.get(1)?,
                state: r.get(2)?,
                dirty_bytes: r.get::<_, i64>(3)? as u64,
                resync_percent: r.get(4)?,
                reported_ms: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    // ----- assignments -----

    /// Every assignment, by unit and volume.
    pub fn assignments(&self) -> Result<Vec<AssignmentRecord>, StoreError> {
        read_assignments(&self.conn, None)
    }

    /// The assignments of one unit's volumes.
    pub fn unit_assignments(&self, unit: u32) -> Result<Vec<AssignmentRecord>, StoreError> {
        read_assignments(&self.conn, Some(unit))
    }

    /// The assignment of volume `volume` of unit `unit`, if it is assigned (the first one of a shared volume).
    pub fn assignment(&self, unit: u32, volume: u32) -> Result<Option<AssignmentRecord>, StoreError> {
        Ok(self.unit_assignments(unit)?.into_iter().find(|a| a.volume == volume))
    }

    /// Every assignment of volume `volume` of unit `unit` (several only when all are shared).
    pub fn volume_assignments(&self, unit: u32, volume: u32) -> Result<Vec<AssignmentRecord>, StoreError> {
        Ok(self.unit_assignments(unit)?.into_iter().filter(|a| a.volume == volume).collect())
    }

    /// Records an assignment; fails with [`StoreError::AlreadyAssigned`] when the volume is assigned already,
    /// unless this assignment and every one the volume has are shared and for other hosts.
    pub fn insert_assignment(&mut self, record: &AssignmentRecord) -> Result<(), StoreError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let holders: Vec<(String, bool)> = {
            let mut stmt =
                tx.prepare_cached("SELECT host, shared FROM assignments WHERE unit = ?1 AND volume_idx = ?2")?;
            let rows = stmt.query_map(params![record.unit, record.volume], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        let host = record.host.to_string();
        let shareable = record.shared && holders.iter().all(|(h, shared)| *shared && *h != host);
        if let (Some((holder, _)), false) = (holders.first(), shareable) {
            return Err(StoreError::AlreadyAssigned { unit: record.unit, volume: record.volume, host: holder.clone() });
        }
        tx.execute(
            "INSERT INTO assignments (unit, volume_idx, host, read_only, grant_idx, volume_created, created_ms, pending,
             owner, identity, shared) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                record.unit,
                record.volume,
                record.host.to_string(),
                record.read_only,
                record.grant,
                record.volume_created,
                record.created_ms,
                record.pending,
                record.owner,
                record.identity,
                record.shared
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Marks `host`'s assignment of a volume as granted (pending → active) and records its grant index.
    pub fn confirm_assignment(&mut self, unit: u32, volume: u32, host: IpAddr, grant: u32) -> Result<bool, StoreError> {
        let n = self.conn.execute(
            "UPDATE assignments SET pending = 0, grant_idx = ?4 WHERE unit = ?1 AND volume_idx = ?2 AND host = ?3",
            params![unit, volume, host.to_string(), grant],
        )?;
        Ok(n > 0)
    }

    /// Removes every assignment of a volume; returns whether there was one.
    pub fn delete_assignment(&mut self, unit: u32, volume: u32) -> Result<bool, StoreError> {
        let n =
            self.conn.execute("DELETE FROM assignments WHERE unit = ?1 AND volume_idx = ?2", params![unit, volume])?;
        Ok(n > 0)
    }

    /// Removes `host`'s assignment of a volume; returns whether there was one.
    pub fn delete_host_assignment(&mut self, unit: u32, volume: u32, host: IpAddr) -> Result<bool, StoreError> {
        let n = self.conn.execute(
            "DELETE FROM assignments WHERE unit = ?1 AND volume_idx = ?2 AND host = ?3",
            params![unit, volume, host.to_string()],
        )?;
        Ok(n > 0)
    }

    // ----- host identities -----

    /// Records that the CA issued a client certificate for host identity `name` (again): a revoked identity is
    /// usable again.
    /// Records that the CA issued identity `name` only while it is not revoked (enrolment over SNMP, which a
    /// concurrent `host revoke` must win): whether it is recorded — `false` if it is revoked. One statement, so no
    /// revoke lands between the check and the write.
    pub fn record_unrevoked_host_identity(&mut self, name: &str, now_ms: i64) -> Result<bool, StoreError> {
        let changed = self.conn.execute(
            "INSERT INTO host_identities (name, issued_ms, revoked_ms) VALUES (?1, ?2, NULL)
             ON CONFLICT (name) DO UPDATE SET issued_ms = excluded.issued_ms WHERE revoked_ms IS NULL",
            params![name, now_ms],
        )?;
        Ok(changed == 1)
    }

    pub fn record_host_identity(&mut self, name: &str, now_ms: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO host_identities (name, issued_ms, revoked_ms) VALUES (?1, ?2, NULL)
             ON CONFLICT (name) DO UPDATE SET issued_ms = excluded.issued_ms, revoked_ms = NULL",
            params![name, now_ms],
        )?;
        Ok(())
    }

    /// What the store knows about host identity `name`: `None` if the CA never issued it.
    pub fn host_identity(&self, name: &str) -> Result<Option<HostIdentity>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT name, issued_ms, revoked_ms FROM host_identities WHERE name = ?1", [name], |r| {
                Ok(HostIdentity { name: r.get(0)?, issued_ms: r.get(1)?, revoked_ms: r.get(2)? })
            })
            .optional()?)
    }

    /// Marks host identity `name` revoked (recorded if it was not); whether it was issued and not revoked before.
    pub fn revoke_host_identity(&mut self, name: &str, now_ms: i64) -> Result<bool, StoreError> {
        let before = self.host_identity(name)?;
        self.conn.execute(
            "INSERT INTO host_identities (name, issued_ms, revoked_ms) VALUES (?1, 0, ?2)
             ON CONFLICT (name) DO UPDATE SET revoked_ms = excluded.revoked_ms",
            params![name, now_ms],
        )?;
        Ok(before.is_some_and(|h| h.revoked_ms.is_none()))
    }

    /// Forgets unit `index` — its row, media, volumes, partitions and assignments — in one transaction. Refused
    /// with [`StoreError::UnitAssigned`] while any of its volumes is assigned, unless `force`, which drops those
    /// assignments too (and returns them). Notifications it sent stay in the log.
    pub fn remove_unit(&mut self, index: u32, force: bool) -> Result<RemovedUnit, StoreError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut stmt = tx.prepare_cached(&format!("{UNIT_SELECT} WHERE id = ?1"))?;
        let unit = stmt.query_row([index], unit_from_row).optional()?.transpose()?;
        drop(stmt);
        let unit = unit.ok_or_else(|| StoreError::UnknownUnit(format!("#{index}")))?;
        let assignments: Vec<AssignmentRecord> = read_assignments(&tx, Some(index))?;
        if !assignments.is_empty() && !force {
            return Err(StoreError::UnitAssigned { unit: index, assignments });
        }
        let volumes: i64 = tx.query_row("SELECT count(*) FROM volumes WHERE unit = ?1", [index], |r| r.get(0))?;
        for table in ["assignments", "partitions", "volumes", "media", "units"] {
            let column = if table == "units" { "id" } else { "unit" };
            tx.execute(&format!("DELETE FROM {table} WHERE {column} = ?1"), [index])?;
        }
        tx.execute(
            "INSERT OR REPLACE INTO removed_units (id, removed_ms) VALUES (?1, ?2)",
            params![index, crate::timefmt::now_ms()],
        )?;
        tx.commit()?;
        Ok(RemovedUnit {
            unit,
            volumes: usize::try_from(volumes).unwrap_or(0),
            released: assignments,
            unrevoked: Vec::new(),
        })
    }

    /// Every unit with what allocation needs (free space, data service address), by index.
    pub fn allocation_units(&self) -> Result<Vec<AllocationUnit>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, unit_id, address, port, state, block_size, free_blocks, largest_free_blocks, data_address,
                data_port, zone, spare FROM units ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            let address: Option<String> = r.get(2)?;
            let port: Option<u16> = r.get(3)?;
            let data_address: Option<String> = r.get(8)?;
            Ok(AllocationUnit {
                index: r.get(0)?,
                unit_id: r.get(1)?,
                address: address.zip(port).and_then(|(a, p)| Some(SocketAddr::new(a.parse().ok()?, p))),
                state: r.get::<_, String>(4)?.parse().unwrap_or(UnitState::Error),
                block_size: r.get(5)?,
                free_blocks: r.get(6)?,
                largest_free_blocks: r.get(7)?,
                data_address: data_address.and_then(|a| a.parse().ok()),
                data_port: r.get(9)?,
                zone: r.get(10)?,
                spare: r.get(11)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

impl StationStore {
    // ----- station tasks -----

    /// Every stored task, by index.
    pub fn tasks(&self) -> Result<Vec<Task>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT idx, operation, unit, volume, partition, size, host, name, read_only, owner, state, progress, step,
                result, result_unit, result_volume, created_ms, finished_ms, shared, replicas FROM tasks ORDER BY idx",
        )?;
        let rows = stmt.query_map([], |r| {
            let operation: String = r.get(1)?;
            let state: String = r.get(10)?;
            Ok((
                operation,
                state,
                Task {
                    index: r.get(0)?,
                    arguments: Arguments {
                        operation: OperationKind::CreateVolume,
                        unit: r.get(2)?,
                        volume: VolumeIndex::given(r.get(3)?),
                        partition: PartitionIndex::given(r.get(4)?),
                        size: r.get(5)?,
                        host: r.get(6)?,
                        name: r.get(7)?,
                        read_only: r.get(8)?,
                        shared: r.get(18)?,
                        replicas: r.get(19)?,
                    },
                    owner: r.get(9)?,
                    state: TaskState::Pending,
                    progress: r.get(11)?,
                    step: r.get(12)?,
                    result: r.get(13)?,
                    result_unit: Some(r.get(14)?).filter(|&unit: &u32| unit != 0),
                    result_volume: VolumeIndex::given(r.get(15)?),
                    created_ms: r.get(16)?,
                    finished_ms: r.get(17)?,
                },
            ))
        })?;
        rows.map(|row| {
            let (operation, state, mut task) = row?;
            task.arguments.operation =
                operation.parse().map_err(|e| StoreError::Corrupt(format!("task {}: {e}", task.index)))?;
            task.state = state.parse().map_err(|e| StoreError::Corrupt(format!("task {}: {e}", task.index)))?;
            Ok(task)
        })
        .collect()
    }

    /// Writes a task as it is now (inserted or replaced).
    pub fn save_task(&mut self, task: &Task) -> Result<(), StoreError> {
        let a = &task.arguments;
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO tasks (idx, operation, unit, volume, partition, size, host, name, read_only,
                    owner, state, progress, step, result, result_unit, result_volume, created_ms, finished_ms, shared,
                    replicas)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
            )?
            .execute(params![
                task.index,
                a.operation.as_str(),
                a.unit,
                a.volume.map_or(0, |v| v.0),
                a.partition.map_or(0, |p| p.0),
                a.size,
                a.host,
                a.name,
                a.read_only,
                task.owner,
                task.state.as_str(),
                task.progress,
                task.step,
                task.result,
                task.result_unit.unwrap_or(0),
                task.result_volume.map_or(0, |v| v.0),
                task.created_ms,
                task.finished_ms,
                a.shared,
                a.replicas
            ])?;
        Ok(())
    }

    /// Removes tasks, in one transaction.
    pub fn delete_tasks(&mut self, indexes: &[u32]) -> Result<(), StoreError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut stmt = tx.prepare_cached("DELETE FROM tasks WHERE idx = ?1")?;
            for index in indexes {
                stmt.execute([index])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

/// Every assignment, by unit and volume, read through `conn` (the store's connection or a transaction on it).
/// Every assignment, or only those of unit `only`.
fn read_assignments(conn: &Connection, only: Option<u32>) -> Result<Vec<AssignmentRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT unit, volume_idx, host, read_only, grant_idx, volume_created, created_ms, pending, owner, identity,
         shared FROM assignments {} ORDER BY unit, volume_idx",
        only.map_or("", |_| "WHERE unit = ?1")
    ))?;
    let rows = stmt.query_map(rusqlite::params_from_iter(only), |r| {
        let host: String = r.get(2)?;
        Ok((
            host,
            AssignmentRecord {
                unit: r.get(0)?,
                volume: r.get(1)?,
                host: IpAddr::from([0, 0, 0, 0]),
                read_only: r.get(3)?,
                grant: r.get(4)?,
                volume_created: r.get(5)?,
                created_ms: r.get(6)?,
                pending: r.get(7)?,
                owner: r.get(8)?,
                identity: r.get(9)?,
                shared: r.get(10)?,
            },
        ))
    })?;
    rows.map(|row| {
        let (host, mut record) = row?;
        record.host = host
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("assignment of volume {}: host {host:?}", record.volume)))?;
        Ok(record)
    })
    .collect()
}

const PENDING_SELECT: &str = "SELECT id, address, port, unit_id, unit_name, sys_name, sys_descr, state,
    notifications, first_seen_ms, last_seen_ms FROM pending_units";

fn pending_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<PendingUnit, StoreError>> {
    let index: u32 = r.get(0)?;
    let ip: String = r.get(1)?;
    let port: u16 = r.get(2)?;
    let Ok(ip) = ip.parse::<IpAddr>() else {
        return Ok(Err(StoreError::Corrupt(format!("pending unit {index}: address {ip:?}"))));
    };
    Ok(Ok(PendingUnit {
        index,
        address: SocketAddr::new(ip, port),
        unit_id: r.get(3)?,
        unit_name: r.get(4)?,
        sys_name: r.get(5)?,
        sys_descr: r.get(6)?,
        state: r.get(7)?,
        notifications: r.get::<_, i64>(8)?.try_into().unwrap_or(0),
        first_seen_ms: r.get(9)?,
        last_seen_ms: r.get(10)?,
    }))
}

const UNIT_SELECT: &str = "SELECT id, unit_id, name, address, port, state, reason, shut_down, sys_uptime,
    change_counter, last_seen_ms, host_name FROM units";

fn unit_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<UnitRecord, StoreError>> {
    let index: u32 = r.get(0)?;
    let address: Option<String> = r.get(3)?;
    let port: Option<u16> = r.get(4)?;
    let state: String = r.get(5)?;
    let record = (|| {
        let address = match address.zip(port) {
            Some((ip, port)) => Some(SocketAddr::new(
                ip.parse().map_err(|_| StoreError::Corrupt(format!("unit {index}: address {ip:?}")))?,
                port,
            )),
            None => None,
        };
        Ok(UnitRecord {
            index,
            unit_id: r.get(1)?,
            name: r.get(2)?,
            address,
            state: parse_state(&state)?,
            reason: r.get(6)?,
            shut_down: r.get(7)?,
            sys_uptime: r.get(8)?,
            change_counter: r.get(9)?,
            last_seen_ms: r.get(10)?,
            host_name: r.get(11)?,
        })
    })();
    Ok(record)
}

fn parse_state(text: &str) -> Result<UnitState, StoreError> {
    text.parse().map_err(StoreError::Corrupt)
}

fn socket_text(ip: &str, port: u16) -> String {
    match ip.parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, port).to_string(),
        Err(_) => format!("{ip}:{port}"),
    }
}

/// A unit as the pool shows it, without media and volumes, from a row of read_pool's units query.
fn pool_unit_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PoolUnit> {
    let address: Option<String> = r.get(3)?;
    let port: Option<u16> = r.get(4)?;
    let block_size: Option<u32> = r.get(7)?;
    let capacity: Option<u32> = r.get(8)?;
    let free: Option<u32> = r.get(9)?;
    let bytes = |blocks: Option<u32>| Some(u64::from(blocks?) * u64::from(block_size?));
    Ok(PoolUnit {
        index: r.get(0)?,
        unit_id: r.get(1)?,
        name: r.get(2)?,
        address: address.zip(port).map(|(a, p)| socket_text(&a, p)),
        state: r.get::<_, String>(5)?.parse().unwrap_or(UnitState::Error),
        reason: r.get(6)?,
        block_size,
        capacity_blocks: capacity,
        free_blocks: free,
        capacity_bytes: bytes(capacity),
        free_bytes: bytes(free),
        data_address: r.get(10)?,
        data_port: r.get(11)?,
        change_counter: r.get(12)?,
        sys_uptime: r.get(13)?,
        last_seen: r.get::<_, Option<i64>>(14)?.map(format_ms),
        last_sync: r.get::<_, Option<i64>>(15)?.map(format_ms),
        host_name: r.get(16)?,
        zone: r.get(17)?,
        spare: r.get(18)?,
        media: Vec::new(),
        volumes: Vec::new(),
    })
}

/// A unit's row index and its stored state (None for a placeholder, which has none yet).
type RowAndState = (u32, Option<UnitState>);

/// The row a sync of `snapshot` (answered at `address`) goes to, with its stored state: the unit's own row, or a
/// placeholder at the address (adopted, state None); None when the unit is new and there is no placeholder. A
/// placeholder made redundant is deleted; another unit that answered at the address before loses it (it moved
/// away or was replaced) and is returned in the second list.
fn claim_row(
    tx: &Transaction<'_>,
    address: SocketAddr,
    snapshot: &UnitSnapshot,
    now_ms: i64,
) -> Result<(Option<RowAndState>, Vec<u32>), StoreError> {
    let by_id: Option<(u32, String)> = tx
        .query_row("SELECT id, state FROM units WHERE unit_id = ?1", [&snapshot.unit_id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let at_address = unit_at(tx, address)?;
    let mut displaced = Vec::new();
    let mut target: Option<RowAndState> = match by_id {
        Some((index, state)) => Some((index, Some(parse_state(&state)?))),
        None => None,
    };
    if let Some((other, other_unit_id)) = at_address {
        let same = target.is_some_and(|(index, _)| index == other);
        if !same {
            match other_unit_id {
                // A placeholder at this address: adopt it, unless the unit is already known under another row.
                None if target.is_none() => target = Some((other, None)),
                None => {
                    // The host name the placeholder was registered by now names the known unit.
                    tx.execute(
                        "UPDATE units SET host_name = (SELECT host_name FROM units WHERE id = ?2)
                         WHERE id = ?1 AND host_name = ''",
                        params![target.map_or(0, |(index, _)| index), other],
                    )?;
                    tx.execute("DELETE FROM units WHERE id = ?1", [other])?;
                    // Its index is never given again, as for a removed unit.
                    tx.execute(
                        "INSERT OR REPLACE INTO removed_units (id, removed_ms) VALUES (?1, ?2)",
                        params![other, now_ms],
                    )?;
                }
                Some(previous_id) => {
                    // Another unit answered here before: it moved away or was replaced.
                    tx.execute("UPDATE units SET address = NULL, port = NULL WHERE id = ?1", [other])?;
                    set_state_in(
                        tx,
                        other,
                        UnitState::Unreachable,
                        &format!("its address {address} now answers as unit {}", snapshot.unit_id),
                        false,
                        now_ms,
                    )?;
                    tracing::info!(unit = %previous_id, %address, new_unit = %snapshot.unit_id,
                        "address taken over by another unit");
                    displaced.push(other);
                }
            }
        }
    }
    Ok((target, displaced))
}

/// Writes the unit's row from `snapshot`; the state's since-time moves only when the state changes.
fn write_unit_row(
    tx: &Transaction<'_>,
    index: u32,
    address: SocketAddr,
    snapshot: &UnitSnapshot,
    (state, reason): (UnitState, &str),
    now_ms: i64,
) -> Result<(), StoreError> {
    let old_state: Option<String> =
        tx.query_row("SELECT state FROM units WHERE id = ?1", [index], |r| r.get(0)).optional()?;
    let state_changed = old_state.as_deref() != Some(state.as_str());
    tx.execute(
        "UPDATE units SET unit_id = ?2, name = ?3, address = ?4, port = ?5, state = ?6, reason = ?7,
            shut_down = 0, sys_uptime = ?8, change_counter = ?9, block_size = ?10, capacity_blocks = ?11,
            free_blocks = ?12, largest_free_blocks = ?13, data_address = ?14, data_port = ?15,
            data_serving = ?16, last_seen_ms = ?17, last_sync_ms = ?17,
            state_since_ms = CASE WHEN ?18 THEN ?17 ELSE state_since_ms END
         WHERE id = ?1",
        params![
            index,
            snapshot.unit_id,
            snapshot.name,
            address.ip().to_string(),
            address.port(),
            state.as_str(),
            reason,
            snapshot.sys_uptime,
            snapshot.change_counter,
            snapshot.block_size,
            snapshot.capacity_blocks,
            snapshot.free_blocks,
            snapshot.largest_free_blocks,
            snapshot.data_address.map(|a| a.to_string()),
            snapshot.data_port,
            snapshot.data_serving,
            now_ms,
            state_changed,
        ],
    )?;
    Ok(())
}

/// Replaces the unit's media, volumes and partitions with the snapshot's; volumes of a unit that is not available
/// are stored unavailable (their walked state is kept apart).
fn replace_layout(
    tx: &Transaction<'_>,
    index: u32,
    snapshot: &UnitSnapshot,
    state: UnitState,
) -> Result<(), StoreError> {
    tx.execute("DELETE FROM partitions WHERE unit = ?1", [index])?;
    tx.execute("DELETE FROM volumes WHERE unit = ?1", [index])?;
    tx.execute("DELETE FROM media WHERE unit = ?1", [index])?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO media (unit, idx, path, kind, blocks, first_lba) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for m in &snapshot.media {
            insert.execute(params![index, m.index, m.path, m.kind, m.blocks, m.first_lba])?;
        }
        let mut insert = tx.prepare_cached(
            "INSERT INTO volumes (unit, idx, name, start_lba, end_lba, length, export_name, walked_state, state,
                clearing, granted_hosts)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?;
        for v in &snapshot.volumes {
            let effective = if state == UnitState::Available { v.state } else { Availability::Unavailable };
            insert.execute(params![
                index,
                v.index,
                v.name,
                v.start_lba,
                v.end_lba,
                v.length,
                v.export_name,
                v.state.as_str(),
                effective.as_str(),
                v.clearing,
                hosts_text(&v.granted_hosts)
            ])?;
        }
        let mut insert = tx.prepare_cached(
            "INSERT INTO partitions (unit, volume_idx, idx, start_lba, end_lba, length, export_name)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for p in &snapshot.partitions {
            insert.execute(params![index, p.volume_index, p.index, p.start_lba, p.end_lba, p.length, p.export_name])?;
        }
    }
    Ok(())
}

/// `volumes.granted_hosts` as stored: a JSON array of hosts (identities may hold any printable character).
fn hosts_text(hosts: &[GrantHost]) -> String {
    if hosts.is_empty() {
        return String::new();
    }
    serde_json::to_string(hosts).unwrap_or_default()
}

/// The hosts of `volumes.granted_hosts`: a JSON array, or comma-separated addresses in rows from before
/// identities. A value that is neither (edited by hand) reads as one unknown host, so the volume stays foreign
/// (never handed out) until the next walk rewrites it.
fn hosts_of(text: &str) -> Vec<GrantHost> {
    let text = text.trim();
    if text.is_empty() {
        return Vec::new();
    }
    if text.starts_with('[') {
        if let Ok(hosts) = serde_json::from_str(text) {
            return hosts;
        }
    } else if let Ok(addresses) = text.split(',').map(str::parse).collect::<Result<Vec<IpAddr>, _>>() {
        return addresses.into_iter().map(GrantHost::address).collect();
    }
    tracing::warn!(granted_hosts = text, "unreadable granted hosts of a volume; treating it as foreign");
    vec![GrantHost { address: None, identity: Some(text.to_string()) }]
}

/// The volumes in `new` and not in `old` (added), and in `old` and not in `new` (removed); a volume counts as the
/// same when its index, name, start and export name are.
fn volume_changes(old: &[VolumeRow], new: &[VolumeRow]) -> (Vec<VolumeRow>, Vec<VolumeRow>) {
    let same_volume = |a: &VolumeRow, b: &VolumeRow| {
        a.index == b.index && a.name == b.name && a.start_lba == b.start_lba && a.export_name == b.export_name
    };
    let added = new.iter().filter(|v| !old.iter().any(|o| same_volume(o, v))).cloned().collect();
    let removed = old.iter().filter(|o| !new.iter().any(|v| same_volume(o, v))).cloned().collect();
    (added, removed)
}

/// The unit registered at `address`: (index, unit id).
fn unit_at(tx: &Transaction<'_>, address: SocketAddr) -> Result<Option<(u32, Option<String>)>, StoreError> {
    Ok(tx
        .query_row(
            "SELECT id, unit_id FROM units WHERE address = ?1 AND port = ?2",
            params![address.ip().to_string(), address.port()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?)
}

fn insert_placeholder(
    tx: &Transaction<'_>,
    address: SocketAddr,
    state: UnitState,
    reason: &str,
    now_ms: i64,
) -> Result<u32, StoreError> {
    tx.execute(
        "INSERT INTO units (id, address, port, state, reason, first_seen_ms, state_since_ms)
         VALUES (max(coalesce((SELECT max(id) FROM units), 0), coalesce((SELECT max(id) FROM removed_units), 0)) + 1,
                 ?1, ?2, ?3, ?4, ?5, ?5)",
        params![address.ip().to_string(), address.port(), state.as_str(), reason, now_ms],
    )?;
    u32::try_from(tx.last_insert_rowid()).map_err(|_| StoreError::Corrupt("unit index over u32".into()))
}

fn set_state_in(
    tx: &Transaction<'_>,
    index: u32,
    state: UnitState,
    reason: &str,
    shut_down: bool,
    now_ms: i64,
) -> Result<Option<StateChange>, StoreError> {
    let Some(previous): Option<String> =
        tx.query_row("SELECT state FROM units WHERE id = ?1", [index], |r| r.get(0)).optional()?
    else {
        return Ok(None);
    };
    let previous = parse_state(&previous)?;
    tx.execute(
        "UPDATE units SET state = ?2, reason = ?3, shut_down = ?4,
            state_since_ms = CASE WHEN state = ?2 THEN state_since_ms ELSE ?5 END
         WHERE id = ?1",
        params![index, state.as_str(), reason, shut_down, now_ms],
    )?;
    if state != UnitState::Available {
        tx.execute("UPDATE volumes SET state = 'unavailable' WHERE unit = ?1", [index])?;
    }
    Ok((previous != state).then_some(StateChange { index, previous, state }))
}

fn read_volumes(tx: &Transaction<'_>, index: u32) -> Result<Vec<VolumeRow>, StoreError> {
    let mut stmt = tx.prepare_cached(
        "SELECT idx, name, start_lba, end_lba, length, export_name, walked_state, clearing, granted_hosts
         FROM volumes WHERE unit = ?1 ORDER BY idx",
    )?;
    let rows = stmt.query_map([index], |r| {
        Ok(VolumeRow {
            index: r.get(0)?,
            name: r.get(1)?,
            start_lba: r.get(2)?,
            end_lba: r.get(3)?,
            length: r.get(4)?,
            export_name: r.get(5)?,
            state: r.get::<_, String>(6)?.parse().unwrap_or(Availability::Unavailable),
            clearing: r.get(7)?,
            granted_hosts: hosts_of(&r.get::<_, String>(8)?),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PartitionRow;

    fn snapshot(unit_id: &str, volumes: &[(u32, u32, u32)]) -> UnitSnapshot {
        UnitSnapshot {
            unit_id: unit_id.to_string(),
            name: format!("unit-{}", &unit_id[..4]),
            block_size: 4096,
            capacity_blocks: 1000,
            free_blocks: 1000 - volumes.iter().map(|v| v.2).sum::<u32>(),
            largest_free_blocks: None,
            data_address: Some("127.0.0.2".parse().unwrap()),
            data_port: 10809,
            data_serving: true,
            change_counter: 3,
            sys_uptime: 100,
            link_up: true,
            media: vec![MediumRow { index: 1, path: "/m".into(), kind: "file".into(), blocks: 1000, first_lba: 0 }],
            volumes: volumes
                .iter()
                .map(|&(index, start, len)| VolumeRow {
                    index,
                    name: format!("vol{index}"),
                    start_lba: start,
                    end_lba: start + len - 1,
                    length: len,
                    export_name: format!("vol{index}"),
                    state: Availability::Available,
                    clearing: None,
                    granted_hosts: Vec::new(),
                })
                .collect(),
            partitions: vec![PartitionRow {
                volume_index: volumes[0].0,
                index: 1,
                start_lba: volumes[0].1,
                end_lba: volumes[0].1 + 9,
                length: 10,
                export_name: "p1".into(),
            }],
        }
    }

    const ID_A: &str = "8c3f0b52-4f4b-4b8e-9a51-3f0e6d2c7a10";
    const ID_B: &str = "11111111-2222-4333-8444-555555555555";

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn pending_units_are_one_row_per_address_found_rejected_and_gone_once_pooled() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = StationStore::open(dir.path()).unwrap();
        let claim = PendingClaim {
            unit_id: Some(ID_A.to_string()),
            unit_name: Some("rogue".into()),
            notifications: 1,
            ..PendingClaim::default()
        };
        let PendingRecord::Recorded { row, created } =
            store.record_pending(addr("127.0.0.9:1161"), &claim, 10).unwrap()
        else {
            panic!("recorded")
        };
        assert!(created);
        assert_eq!((row.unit_id.as_str(), row.state.as_str(), row.notifications), (ID_A, "pending", 1));
        // The agent's answer adds to the row; a later notification moves last-seen and the count.
        let answer = PendingClaim { sys_name: Some("box".into()), ..PendingClaim::default() };
        store.record_pending(addr("127.0.0.9:1161"), &answer, 20).unwrap();
        let PendingRecord::Recorded { row, created } =
            store.record_pending(addr("127.0.0.9:1161"), &claim, 30).unwrap()
        else {
            panic!("recorded")
        };
        assert!(!created);
        assert_eq!((row.sys_name.as_str(), row.unit_name.as_str()), ("box", "rogue"));
        assert_eq!((row.first_seen_ms, row.last_seen_ms, row.notifications), (10, 30, 2));
        assert_eq!(store.pending_count().unwrap(), 1);

        for given in ["127.0.0.9", "127.0.0.9:1161", &ID_A[..6], "rogue", &row.index.to_string()] {
            assert_eq!(store.find_pending(given).unwrap().index, row.index, "{given}");
        }
        assert!(matches!(store.find_pending("127.0.0.8"), Err(StoreError::UnknownPending(_))));

        let other = PendingClaim { unit_id: Some(ID_B.to_string()), ..PendingClaim::default() };
        let PendingRecord::Recorded { row: second, .. } =
            store.record_pending(addr("127.0.0.10:1161"), &other, 40).unwrap()
        else {
            panic!("recorded")
        };
        assert!(store.reject_pending(second.index).unwrap());
        assert_eq!(store.pending_units(false).unwrap().len(), 1);
        assert_eq!(store.pending_units(true).unwrap()[1].state, "rejected");
        assert_eq!(store.pending_count().unwrap(), 1);

        // Once the unit at that address is in the pool (approved, then walked), its pending row is gone.
        store.sync_unit(addr("127.0.0.9:1161"), &snapshot(ID_A, &[(1, 0, 100)]), 50).unwrap();
        assert_eq!(store.pending_units(true).unwrap().iter().map(|p| p.index).collect::<Vec<_>>(), [second.index]);
        // A notification judged untrusted just before the approval does not bring the pooled unit back.
        assert_eq!(store.record_pending(addr("127.0.0.9:1161"), &claim, 60).unwrap(), PendingRecord::Pooled);
        assert_eq!(store.pending_units(true).unwrap().len(), 1);
        assert_eq!(store.registered_ips().unwrap(), [addr("127.0.0.9:1161").ip()]);
    }

    #[test]
    fn sync_replaces_a_units_layout_and_reports_the_difference() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = StationStore::open(dir.path()).unwrap();
        let first = store.sync_unit(addr("127.0.0.2:1161"), &snapshot(ID_A, &[(1, 0, 100), (2, 100, 50)]), 10).unwrap();
        assert_eq!(first.previous_state, None);
        assert_eq!(first.state, UnitState::Available);
        assert_eq!(first.volumes_added.len(), 2);

        let second =
            store.sync_unit(addr("127.0.0.2:1161"), &snapshot(ID_A, &[(1, 0, 100), (3, 200, 10)]), 20).unwrap();
        assert_eq!(second.index, first.index);
        assert_eq!(second.previous_state, Some(UnitState::Available));
        assert_eq!(second.volumes_added.iter().map(|v| v.index).collect::<Vec<_>>(), [3]);
        assert_eq!(second.volumes_removed.iter().map(|v| v.index).collect::<Vec<_>>(), [2]);

        let pool = store.pool().unwrap();
        assert_eq!(pool.len(), 1);
        let unit = &pool[0];
        assert_eq!(unit.unit_id.as_deref(), Some(ID_A));
        assert_eq!(unit.address.as_deref(), Some("127.0.0.2:1161"));
        assert_eq!(unit.capacity_bytes, Some(4096 * 1000));
        assert_eq!(unit.volumes.len(), 2);
        assert_eq!((unit.volumes[1].start_lba, unit.volumes[1].end_lba), (200, 209));
        assert_eq!(unit.volumes[0].partitions.len(), 1);
        assert_eq!(unit.volumes[0].partitions[0].state, Availability::Available);
    }

    #[test]
    fn down_units_keep_their_volumes_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = StationStore::open(dir.path()).unwrap();
        let sync = store.sync_unit(addr("127.0.0.2:1161"), &snapshot(ID_A, &[(1, 0, 100)]), 10).unwrap();
        let change = store.set_state(sync.index, UnitState::Unavailable, "linkDown", false, 20).unwrap().unwrap();
        assert_eq!((change.previous, change.state), (UnitState::Available, UnitState::Unavailable));
        assert_eq!(store.set_state(sync.index, UnitState::Unavailable, "again", false, 30).unwrap(), None);
        let pool = store.pool().unwrap();
        assert_eq!(pool[0].state, UnitState::Unavailable);
        assert_eq!(pool[0].volumes.len(), 1);
        assert_eq!(pool[0].volumes[0].state, Availability::Unavailable);
        assert_eq!(pool[0].volumes[0].partitions[0].state, Availability::Unavailable);
        // A re-walk brings it back.
        let again = store.sync_unit(addr("127.0.0.2:1161"), &snapshot(ID_A, &[(1, 0, 100)]), 40).unwrap();
        assert_eq!(again.previous_state, Some(UnitState::Unavailable));
        assert_eq!(store.pool().unwrap()[0].volumes[0].state, Availability::Available);
    }

    #[test]
    fn placeholders_are_adopted_and_moved_units_keep_their_index() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = StationStore::open(dir.path()).unwrap();
        let (placeholder, created) = store.register_address(addr("127.0.0.3:1161"), Some("unit-c"), 5).unwrap();
        assert!(created);
        assert_eq!(store.register_address(addr("127.0.0.3:1161"), None, 6).unwrap(), (placeholder, false));
        assert_eq!(store.unit(placeholder).unwrap().unwrap().host_name, "unit-c", "kept when added again by address");
        let sync = store.sync_unit(addr("127.0.0.3:1161"), &snapshot(ID_A, &[(1, 0, 10)]), 10).unwrap();
        assert_eq!(sync.index, placeholder);
        assert_eq!(sync.previous_state, None);

        // The same unit comes back on another address: same row, new address.
        let moved = store.sync_unit(addr("127.0.0.4:1161"), &snapshot(ID_A, &[(1, 0, 10)]), 20).unwrap();
        assert_eq!(moved.index, placeholder);
        // Another unit takes the old address; then unit A's old address is not reused by mistake.
        let b = store.sync_unit(addr("127.0.0.4:1161"), &snapshot(ID_B, &[(1, 0, 10)]), 30).unwrap();
        assert_ne!(b.index, placeholder);
        assert_eq!(b.displaced, vec![placeholder]);
        let a = store.unit(placeholder).unwrap().unwrap();
        assert_eq!(a.address, None);
        assert_eq!(a.state, UnitState::Unreachable);
        assert_eq!(store.units().unwrap().len(), 2);
    }

    /// A store with unit A (two volumes) and unit B (one volume), B's volume 1 assigned to 192.0.2.10.
    fn two_units_one_assigned(
        dir: &Path,
        read_only: bool,
        grant: u32,
    ) -> (StationStore, SyncOutcome, SyncOutcome, AssignmentRecord) {
        let mut store = StationStore::open(dir).unwrap();
        let a = store.sync_unit(addr("127.0.0.2:1161"), &snapshot(ID_A, &[(1, 0, 100), (2, 100, 50)]), 10).unwrap();
        let b = store.sync_unit(addr("127.0.0.3:1161"), &snapshot(ID_B, &[(1, 0, 100)]), 10).unwrap();
        let held = AssignmentRecord {
            unit: b.index,
            volume: 1,
            host: "192.0.2.10".parse().unwrap(),
            read_only,
            grant,
            volume_created: false,
            created_ms: 10,
            pending: false,
            owner: Some("community:host-b".into()),
            identity: None,
            shared: false,
        };
        store.insert_assignment(&held).unwrap();
        (store, a, b, held)
    }

    #[test]
    fn host_identities_are_issued_revoked_and_issued_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = StationStore::open(dir.path()).unwrap();
        assert_eq!(store.host_identity("host-a").unwrap(), None);
        store.record_host_identity("host-a", 10).unwrap();
        assert!(store.host_identity("host-a").unwrap().unwrap().valid());
        assert!(store.revoke_host_identity("host-a", 20).unwrap(), "it was valid");
        assert_eq!(store.host_identity("host-a").unwrap().unwrap().revoked_ms, Some(20));
        assert!(!store.revoke_host_identity("host-a", 30).unwrap(), "already revoked");
        assert!(!store.revoke_host_identity("never", 30).unwrap(), "never issued, recorded revoked");
        // Enrolment over SNMP does not bring a revoked identity back; an admin's `host issue` does.
        assert!(!store.record_unrevoked_host_identity("host-a", 35).unwrap(), "revoked: not recorded");
        assert_eq!(store.host_identity("host-a").unwrap().unwrap().revoked_ms, Some(30), "still revoked");
        assert!(store.record_unrevoked_host_identity("host-c", 35).unwrap(), "a new identity is recorded");
        assert!(store.host_identity("host-c").unwrap().unwrap().valid());
        assert!(!store.host_identity("never").unwrap().unwrap().valid());
        store.record_host_identity("host-a", 40).unwrap();
        let again = store.host_identity("host-a").unwrap().unwrap();
        assert!(again.valid() && again.issued_ms == 40);
    }

    #[test]
    fn identity_grants_are_foreign_even_at_an_assigned_address() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = StationStore::open(dir.path()).unwrap();
        let mut snap = snapshot(ID_A, &[(1, 0, 100)]);
        let host: IpAddr = "192.0.2.10".parse().unwrap();
        let identity = |id: &str, address: Option<IpAddr>| GrantHost { address, identity: Some(id.into()) };
        snap.volumes[0].granted_hosts =
            vec![GrantHost::address(host), identity("192.0.2.10", None), identity("a,b@c", Some(host))];
        let a = store.sync_unit(addr("127.0.0.2:1161"), &snap, 10).unwrap();
        store
            .insert_assignment(&AssignmentRecord {
                unit: a.index,
                volume: 1,
                host,
                read_only: false,
                grant: 1,
                volume_created: false,
                created_ms: 10,
                pending: false,
                owner: None,
                identity: None,
                shared: false,
            })
            .unwrap();
        let pool = store.pool().unwrap();
        let v = &pool[0].volumes[0];
        // The address grant is the assignment's; the identity grants (one whose identity reads like that address,
        // one pinned to it) are someone else's.
        assert_eq!(v.foreign_grants, [r#"identity "192.0.2.10""#, r#"identity "a,b@c" at 192.0.2.10"#]);
        assert!(!v.assignable());
        assert_eq!(hosts_of(&hosts_text(&snap.volumes[0].granted_hosts)), snap.volumes[0].granted_hosts);
        assert_eq!(
            hosts_of("192.0.2.1,192.0.2.2"),
            ["192.0.2.1", "192.0.2.2"].map(|h| GrantHost::address(h.parse().unwrap()))
        );
        assert!(hosts_of("").is_empty());
        assert_eq!(hosts_of("[{oops").len(), 1, "unreadable: one unknown host keeps the volume foreign");
    }

    #[test]
    fn one_unit_and_one_assignment_are_read_alone_as_the_pool_has_them() {
        let dir = tempfile::tempdir().unwrap();
        let (store, a, b, held) = two_units_one_assigned(dir.path(), true, 3);
        let pool = store.pool().unwrap();
        for unit in &pool {
            assert_eq!(store.pool_unit(unit.index).unwrap().as_ref(), Some(unit));
        }
        assert_eq!(store.pool_unit(b.index + 100).unwrap(), None);
        assert_eq!(store.assignment(b.index, 1).unwrap(), Some(held.clone()));
        assert_eq!(store.assignment(a.index, 1).unwrap(), None);
        assert_eq!(store.unit_assignments(b.index).unwrap(), vec![held]);
        assert!(store.unit_assignments(a.index).unwrap().is_empty());
    }

    #[test]
    fn removal_forgets_a_unit_in_one_go_refuses_while_assigned_and_never_reuses_its_index() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, a, b, held) = two_units_one_assigned(dir.path(), false, 1);
        let err = store.remove_unit(b.index, false).unwrap_err();
        assert!(
            matches!(&err, StoreError::UnitAssigned { assignments, .. } if assignments == std::slice::from_ref(&held))
        );
        let text = err.to_string();
        assert!(text.contains(&format!("unit #{}/volume 1 to 192.0.2.10", b.index)) && text.contains("--force"));
        assert_eq!(store.pool().unwrap().len(), 2, "a refused removal changes nothing");

        let removed = store.remove_unit(b.index, true).unwrap();
        assert_eq!((removed.volumes, removed.released), (1, vec![held]));
        assert!(store.assignments().unwrap().is_empty());
        let removed_a = store.remove_unit(a.index, false).unwrap();
        assert_eq!(removed_a.unit.unit_id.as_deref(), Some(ID_A));
        assert!(store.pool().unwrap().is_empty());
        assert!(matches!(store.remove_unit(a.index, false), Err(StoreError::UnknownUnit(_))));
        // Learned again: a new index, above every index the store ever gave.
        let again = store.sync_unit(addr("127.0.0.3:1161"), &snapshot(ID_B, &[(1, 0, 100)]), 20).unwrap();
        assert!(again.index > a.index.max(b.index), "{} reused", again.index);
        assert_eq!(again.previous_state, None);
        assert_eq!(store.integrity_check().unwrap(), "ok");
    }

    #[test]
    fn a_placeholder_merged_into_a_known_unit_never_gives_its_index_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = StationStore::open(dir.path()).unwrap();
        let a = store.sync_unit(addr("127.0.0.2:1161"), &snapshot(ID_A, &[(1, 0, 10)]), 10).unwrap();
        let (placeholder, _) = store.register_address(addr("127.0.0.3:1161"), Some("unit-a"), 11).unwrap();
        // Unit A answers at the placeholder's address: the placeholder row goes, A keeps its index.
        let moved = store.sync_unit(addr("127.0.0.3:1161"), &snapshot(ID_A, &[(1, 0, 10)]), 12).unwrap();
        assert_eq!(moved.index, a.index);
        assert!(store.unit(placeholder).unwrap().is_none());
        let b = store.sync_unit(addr("127.0.0.4:1161"), &snapshot(ID_B, &[(1, 0, 10)]), 13).unwrap();
        assert!(b.index > placeholder, "index {} given again", b.index);
    }

    #[test]
    fn a_unit_moved_onto_another_units_address_leaves_that_unit_unreachable_and_a_removed_one_moves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = StationStore::open(dir.path()).unwrap();
        let a = store.sync_unit(addr("127.0.0.2:1161"), &snapshot(ID_A, &[(1, 0, 10)]), 10).unwrap();
        let b = store.sync_unit(addr("127.0.0.3:1161"), &snapshot(ID_B, &[(1, 0, 10)]), 10).unwrap();
        let change = store.move_unit(a.index, addr("127.0.0.3:1161"), 20).unwrap().expect("b's state changes");
        assert_eq!((change.index, change.state), (b.index, UnitState::Unreachable));
        let b_now = store.unit(b.index).unwrap().unwrap();
        assert_eq!((b_now.address, b_now.state), (None, UnitState::Unreachable));
        assert!(b_now.reason.contains(&format!("answers as unit #{}", a.index)), "{}", b_now.reason);
        assert_eq!(store.unit(a.index).unwrap().unwrap().address, Some(addr("127.0.0.3:1161")));
        // A unit removed meanwhile (the coordinator's list is older): nothing moves, nobody loses an address.
        store.remove_unit(b.index, true).unwrap();
        assert_eq!(store.move_unit(b.index, addr("127.0.0.3:1161"), 30).unwrap(), None);
        assert_eq!(store.unit(a.index).unwrap().unwrap().address, Some(addr("127.0.0.3:1161")));
    }

    #[test]
    fn walk_failures_mark_error_without_touching_other_units() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = StationStore::open(dir.path()).unwrap();
        let good = store.sync_unit(addr("127.0.0.2:1161"), &snapshot(ID_A, &[(1, 0, 10)]), 10).unwrap();
        let (bad, change) = store.record_walk_failure(addr("127.0.0.9:1161"), "timeout", 20).unwrap();
        assert_ne!(bad, good.index);
        assert_eq!(change, None, "a new placeholder is created in state error");
        let units = store.units().unwrap();
        assert_eq!(units[0].state, UnitState::Available);
        assert_eq!(units[1].state, UnitState::Error);
        assert_eq!(units[1].reason, "timeout");
    }

    #[test]
    fn find_unit_by_id_prefix_name_and_address() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = StationStore::open(dir.path()).unwrap();
        store.sync_unit(addr("127.0.0.2:1161"), &snapshot(ID_A, &[(1, 0, 10)]), 10).unwrap();
        store.sync_unit(addr("127.0.0.3:1161"), &snapshot(ID_B, &[(1, 0, 10)]), 10).unwrap();
        assert_eq!(store.find_unit(ID_A).unwrap().unit_id.as_deref(), Some(ID_A));
        assert_eq!(store.find_unit("8c3f").unwrap().unit_id.as_deref(), Some(ID_A));
        assert_eq!(store.find_unit("unit-1111").unwrap().unit_id.as_deref(), Some(ID_B));
        assert_eq!(store.find_unit("127.0.0.3").unwrap().unit_id.as_deref(), Some(ID_B));
        assert_eq!(store.find_unit("127.0.0.2:1161").unwrap().unit_id.as_deref(), Some(ID_A));
        assert!(matches!(store.find_unit("nope"), Err(StoreError::UnknownUnit(_))));
    }

    #[test]
    fn notifications_are_stored_filtered_and_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = StationStore::open(dir.path()).unwrap();
        let record = |time_ms, source: &str, trap: &[u32], unit_id: Option<&str>| NotificationRecord {
            id: 0,
            time_ms,
            source: source.parse().unwrap(),
            version: "v2c".into(),
            community: "public".into(),
            kind: NotificationKind::TrapV2,
            uptime: Some(5),
            trap_oid: dvsan_mib::dotted(trap),
            unit_id: unit_id.map(str::to_string),
            varbinds: vec![],
        };
        let mut batch = vec![
            record(100, "127.0.0.2:5000", dvsan_mib::COLD_START, Some(ID_A)),
            record(200, "127.0.0.2:5000", dvsan_mib::LINK_DOWN, None),
            record(300, "127.0.0.3:5000", dvsan_mib::LINK_DOWN, Some(ID_B)),
        ];
        store.insert_notifications(&mut batch).unwrap();
        assert!(batch.iter().all(|r| r.id > 0));
        let all = store.notifications(&NotificationFilter { limit: 100, ..Default::default() }, false).unwrap();
        assert_eq!(all, batch);

        let link_down = NotificationFilter {
            trap_oid: Some(dvsan_mib::dotted(dvsan_mib::LINK_DOWN)),
            limit: 100,
            ..Default::default()
        };
        assert_eq!(store.notifications(&link_down, false).unwrap().len(), 2);
        let unit_a = NotificationFilter {
            unit: Some((Some(ID_A.into()), Some("127.0.0.2".parse().unwrap()))),
            limit: 100,
            ..Default::default()
        };
        assert_eq!(
            store.notifications(&unit_a, false).unwrap().iter().map(|r| r.time_ms).collect::<Vec<_>>(),
            [100, 200]
        );
        let since = NotificationFilter { since_ms: Some(150), limit: 100, ..Default::default() };
        assert_eq!(store.notifications(&since, false).unwrap().len(), 2);
        let newest = NotificationFilter { limit: 1, ..Default::default() };
        assert_eq!(store.notifications(&newest, true).unwrap()[0].time_ms, 300);

        assert_eq!(store.prune_notifications(1).unwrap(), 2);
        assert_eq!(store.notification_count().unwrap(), 1);
        assert_eq!(store.last_notification_id().unwrap(), batch[2].id);
    }

    #[test]
    fn read_commands_need_an_existing_store() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(StationStore::open_existing(&dir.path().join("missing")), Err(StoreError::NoStateDir(_))));
        assert!(matches!(StationStore::open_existing(dir.path()), Err(StoreError::NoStore(_))));
        StationStore::open(dir.path()).unwrap();
        StationStore::open_existing(dir.path()).unwrap();
    }
}
