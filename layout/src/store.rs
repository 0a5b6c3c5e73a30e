//! The unit's SQLite store: one file in the unit's state directory, shared by the agent and blockd.
//!
//! WAL mode lets blockd read the layout and write its counters while the agent changes the layout. Schema changes
//! go through versioned migrations (`rusqlite_migration`, tracked in `PRAGMA user_version`), run under the store's
//! open lock ([`crate::lock_store_open`]) so processes opening a fresh store at once do not race. Every layout change
//! runs in one `BEGIN IMMEDIATE` transaction that re-plans the change on a fresh snapshot, writes it and bumps
//! the change counter, so a change is all there or not there, and blockd can poll one integer to know when to
//! reload.

use crate::error::LayoutError;
use crate::extent::{Blocks, Extent, Lba};
use crate::model::{
    AccessMode, Grant, GrantIndex, Layout, Medium, MediumKind, Partition, PartitionIndex, Released, UnitInfo, Volume,
    VolumeIndex,
};
use crate::open_lock::{lock_store_open, StoreOpenLock};
use crate::plan::{NewGrant, NewPartition, NewVolume};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use rusqlite_migration::{Migrations, M};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The store's file name inside a unit's state directory.
pub const STORE_FILE: &str = "unit.db";

/// The certificate revocation list the station pushed to the unit (DER), in the unit's state directory: the agent
/// writes it (dvsanDataTlsCrl), blockd reads it next to its own `--tls-crl` files and refuses the certificates it
/// lists.
pub const PUSHED_CRL_FILE: &str = "tls-crl.der";

/// LBAs and lengths are Unsigned32 in the MIB.
const MAX_BLOCKS: u64 = u32::MAX as u64;

/// Migration 1: the initial schema.
const INITIAL: &str = "CREATE TABLE unit (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        unit_id TEXT NOT NULL,
        name TEXT NOT NULL,
        block_size INTEGER NOT NULL,
        change_counter INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE media (
        idx INTEGER PRIMARY KEY,
        path TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL CHECK (kind IN ('file', 'block')),
        first_lba INTEGER NOT NULL,
        blocks INTEGER NOT NULL
    );
    CREATE TABLE volumes (
        idx INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        export_name TEXT NOT NULL UNIQUE,
        start_lba INTEGER NOT NULL,
        blocks INTEGER NOT NULL
    );
    CREATE TABLE partitions (
        volume_idx INTEGER NOT NULL REFERENCES volumes(idx),
        idx INTEGER NOT NULL,
        export_name TEXT NOT NULL UNIQUE,
        start_lba INTEGER NOT NULL,
        blocks INTEGER NOT NULL,
        PRIMARY KEY (volume_idx, idx)
    );
    CREATE TABLE grants (
        idx INTEGER PRIMARY KEY,
        volume_idx INTEGER NOT NULL REFERENCES volumes(idx),
        partition_idx INTEGER NOT NULL DEFAULT 0,
        host TEXT NOT NULL,
        mode TEXT NOT NULL CHECK (mode IN ('rw', 'ro')),
        UNIQUE (volume_idx, partition_idx, host)
    );
    CREATE TABLE traffic (
        idx INTEGER PRIMARY KEY,
        export_name TEXT NOT NULL,
        host TEXT NOT NULL,
        reads INTEGER NOT NULL DEFAULT 0,
        writes INTEGER NOT NULL DEFAULT 0,
        bytes_read INTEGER NOT NULL DEFAULT 0,
        bytes_written INTEGER NOT NULL DEFAULT 0,
        latency_us INTEGER NOT NULL DEFAULT 0,
        UNIQUE (export_name, host)
    );
    CREATE TABLE data_service (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        pid INTEGER NOT NULL,
        listen TEXT NOT NULL,
        state TEXT NOT NULL,
        heartbeat_ms INTEGER NOT NULL
    );";

/// Migration 2, "clearing" (issue 16, wiped volumes): a volume being wiped keeps its progress in
/// `volumes.cleared_blocks` (NULL when it is not being cleared); extents released by destroyed volumes or new media
/// wait in `released` until they are cleared; grants gain the shared read-write mode 'rws'; blockd says which
/// layout it has loaded (`data_service.layout_counter`), so released blocks are cleared only once it has stopped
/// serving them. The hook releases the free space an older store had, whose contents nobody cleared.
const CLEARING: &str = "
    ALTER TABLE volumes ADD COLUMN cleared_blocks INTEGER;
    CREATE TABLE released (
        start_lba INTEGER PRIMARY KEY,
        blocks INTEGER NOT NULL,
        cleared_blocks INTEGER NOT NULL DEFAULT 0,
        change_counter INTEGER NOT NULL
    );
    CREATE TABLE grants_new (
        idx INTEGER PRIMARY KEY,
        volume_idx INTEGER NOT NULL REFERENCES volumes(idx),
        partition_idx INTEGER NOT NULL DEFAULT 0,
        host TEXT NOT NULL,
        mode TEXT NOT NULL CHECK (mode IN ('rw', 'ro', 'rws')),
        UNIQUE (volume_idx, partition_idx, host)
    );
    INSERT INTO grants_new SELECT idx, volume_idx, partition_idx, host, mode FROM grants;
    DROP TABLE grants;
    ALTER TABLE grants_new RENAME TO grants;
    ALTER TABLE data_service ADD COLUMN layout_counter INTEGER;";

/// Migration 3, "grant identity" (issue 16, NBD over TLS): grants name a host by address, by TLS certificate
/// identity, or both. SQLite cannot relax a NOT NULL column, so the table is rebuilt; existing grants keep their
/// address and mode and get no identity. Uniqueness of (export, address, identity) is the planner's check
/// (SQLite's UNIQUE lets NULLs repeat).
const GRANT_IDENTITY: &str = "
    CREATE TABLE grants_new (
        idx INTEGER PRIMARY KEY,
        volume_idx INTEGER NOT NULL REFERENCES volumes(idx),
        partition_idx INTEGER NOT NULL DEFAULT 0,
        host TEXT,
        identity TEXT,
        mode TEXT NOT NULL CHECK (mode IN ('rw', 'ro', 'rws')),
        CHECK (host IS NOT NULL OR identity IS NOT NULL)
    );
    INSERT INTO grants_new (idx, volume_idx, partition_idx, host, identity, mode)
        SELECT idx, volume_idx, partition_idx, host, NULL, mode FROM grants;
    DROP TABLE grants;
    ALTER TABLE grants_new RENAME TO grants;";

/// Migration 4, "data counters" (issue 16, limits that hold under attack): blockd's totals of refused, evicted
/// and timed-out connections and other bad input, by reason name, which the agent serves in DVSAN-MIB.
const DATA_COUNTERS: &str = "
    CREATE TABLE data_counters (
        name TEXT PRIMARY KEY,
        value INTEGER NOT NULL DEFAULT 0
    );";

/// The schema's migrations, in order: the version kept in `PRAGMA user_version` is the position in this list
/// (1 initial schema, 2 clearing, 3 grant identity, 4 data counters). New migrations go at the end.
fn migration_list() -> Vec<M<'static>> {
    vec![M::up(INITIAL), M::up_with_hook(CLEARING, release_free_space), M::up(GRANT_IDENTITY), M::up(DATA_COUNTERS)]
}

fn migrations() -> Migrations<'static> {
    Migrations::new(migration_list())
}

/// The clearing migration's hook: every free extent of an existing unit is released, to be cleared once. It reads
/// the space only (grants have the columns of a later migration, which has not run yet).
fn release_free_space(tx: &Transaction<'_>) -> rusqlite_migration::HookResult {
    if tx.query_row("SELECT COUNT(*) FROM unit", [], |r| r.get::<_, i64>(0))? == 0 {
        return Ok(());
    }
    let layout = read_space(tx).map_err(|e| rusqlite_migration::HookError::Hook(e.to_string()))?;
    for free in layout.free_extents() {
        insert_released(tx, &Released { extent: free, cleared: Blocks(0), counter: layout.unit.change_counter })?;
    }
    Ok(())
}

fn insert_released(tx: &Transaction<'_>, r: &Released) -> Result<(), rusqlite::Error> {
    tx.execute(
        "INSERT INTO released (start_lba, blocks, cleared_blocks, change_counter) VALUES (?1, ?2, ?3, ?4)",
        params![r.extent.start.0 as i64, r.extent.len.0 as i64, r.cleared.0 as i64, r.counter],
    )?;
    Ok(())
}

/// Something the unit is clearing: a volume being wiped, or a released extent (named by its first block).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClearTarget {
    Volume(VolumeIndex),
    Released(Lba),
}

/// One clearing job as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClearJob {
    pub target: ClearTarget,
    pub extent: Extent,
    /// Blocks from the start of the extent already cleared.
    pub cleared: Blocks,
    /// For released extents: the change counter blockd must have loaded before the blocks may be cleared.
    pub counter: Option<u32>,
}

impl ClearJob {
    /// Every job in `layout`: wiped volumes first, then released extents, in address order.
    pub fn all(layout: &Layout) -> Vec<ClearJob> {
        let volumes = layout.volumes.iter().filter_map(|v| {
            v.clearing.map(|cleared| ClearJob {
                target: ClearTarget::Volume(v.index),
                extent: v.extent,
                cleared,
                counter: None,
            })
        });
        let released = layout.released.iter().map(|r| ClearJob {
            target: ClearTarget::Released(r.extent.start),
            extent: r.extent,
            cleared: r.cleared,
            counter: Some(r.counter),
        });
        volumes.chain(released).collect()
    }
}

/// A medium named on the agent's command line, with its size in bytes as found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediumSpec {
    pub path: PathBuf,
    pub kind: MediumKind,
    pub bytes: u64,
}

/// Per (export, host) totals kept by blockd; SQLite integers are i64, counters wrap into them bit for bit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafficRecord {
    pub index: u32,
    pub export_name: String,
    pub host: IpAddr,
    pub reads: u64,
    pub writes: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub latency_us: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataServiceState {
    Serving,
    Stopped,
}

/// What blockd last said about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataServiceStatus {
    pub pid: u32,
    pub listen: SocketAddr,
    pub state: DataServiceState,
    /// Unix time in milliseconds of the last heartbeat.
    pub heartbeat_ms: u64,
}

/// An open unit store.
pub struct LayoutStore {
    conn: Connection,
    path: PathBuf,
}

impl LayoutStore {
    /// Open the store in `state_dir`, creating the directory, file and schema as needed. Does not create the unit
    /// row: see [`LayoutStore::init_unit`].
    pub fn open(state_dir: &Path) -> Result<Self, LayoutError> {
        Self::open_exclusive(state_dir).map(|(store, _opening)| store)
    }

    /// [`LayoutStore::open`], keeping other processes from opening the store until the returned lock drops: the
    /// agent's start holds it while it creates the unit row and attaches the media, so a CLI command or blockd
    /// started right after `unit.db` appears finds the unit ready instead of "no unit yet".
    pub fn open_exclusive(state_dir: &Path) -> Result<(Self, StoreOpenLock), LayoutError> {
        std::fs::create_dir_all(state_dir)?;
        let path = state_dir.join(STORE_FILE);
        let opening = lock_store_open(&path)?;
        let mut conn = Connection::open(&path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        migrations().to_latest(&mut conn)?;
        Ok((LayoutStore { conn, path }, opening))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the unit has been initialised (has an id, a name and a block size).
    pub fn is_initialised(&self) -> Result<bool, LayoutError> {
        Ok(self.conn.query_row("SELECT COUNT(*) FROM unit", [], |r| r.get::<_, i64>(0))? > 0)
    }

    /// Create the unit row on first start, or check the recorded block size on later ones. The name is updated
    /// when it changed. Returns the unit's identity.
    pub fn init_unit(&mut self, name: &str, block_size: u32) -> Result<UnitInfo, LayoutError> {
        if !(512..=65536).contains(&block_size) || !block_size.is_power_of_two() {
            return Err(LayoutError::BadBlockSize(block_size));
        }
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let existing: Option<u32> =
            tx.query_row("SELECT block_size FROM unit WHERE id = 1", [], |r| r.get(0)).optional()?;
        match existing {
            None => {
                tx.execute(
                    "INSERT INTO unit (id, unit_id, name, block_size) VALUES (1, ?1, ?2, ?3)",
                    params![uuid::Uuid::new_v4().to_string(), name, block_size],
                )?;
            }
            Some(bs) if bs != block_size => {
                return Err(LayoutError::MediaMismatch(format!(
                    "the unit was created with block size {bs}, not {block_size}"
                )))
            }
            Some(_) => {
                tx.execute("UPDATE unit SET name = ?1 WHERE id = 1 AND name <> ?1", params![name])?;
            }
        }
        let info = read_unit(&tx)?;
        tx.commit()?;
        Ok(info)
    }

    /// Make the recorded media match `given`: recorded media must come first, in the same order; new ones are
    /// appended to the address space. A recorded medium that is missing or smaller than recorded is an error,
    /// because volumes may live on it.
    pub fn attach_media(&mut self, given: &[MediumSpec]) -> Result<(), LayoutError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let unit = read_unit(&tx)?;
        let bs = u64::from(unit.block_size);
        let recorded = read_media(&tx)?;
        for (i, m) in recorded.iter().enumerate() {
            let Some(g) = given.get(i) else {
                return Err(LayoutError::MediaMismatch(format!(
                    "medium {} ({}) is recorded but was not given; give every recorded medium, in order",
                    m.index,
                    m.path.display()
                )));
            };
            if g.path != m.path {
                return Err(LayoutError::MediaMismatch(format!(
                    "medium {} is recorded as {} but {} was given in its place",
                    m.index,
                    m.path.display(),
                    g.path.display()
                )));
            }
            if g.bytes / bs < m.extent.len.0 {
                return Err(LayoutError::MediaMismatch(format!(
                    "{} has shrunk to {} bytes; it is recorded with {} blocks of {bs}",
                    m.path.display(),
                    g.bytes,
                    m.extent.len
                )));
            }
        }
        let mut next_lba: u64 = recorded.iter().map(|m| m.extent.end_exclusive()).max().unwrap_or(0);
        let mut added = false;
        for (i, g) in given.iter().enumerate().skip(recorded.len()) {
            let blocks = g.bytes / bs;
            if next_lba + blocks > MAX_BLOCKS {
                return Err(LayoutError::TooLarge { max: MAX_BLOCKS });
            }
            let kind = match g.kind {
                MediumKind::File => "file",
                MediumKind::BlockDevice => "block",
            };
            tx.execute(
                "INSERT INTO media (idx, path, kind, first_lba, blocks) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![i as i64 + 1, g.path.to_string_lossy(), kind, next_lba as i64, blocks as i64],
            )?;
            // What a new medium holds is unknown: it is cleared before any of it is allocated.
            if blocks > 0 {
                let extent = Extent::new(Lba(next_lba), Blocks(blocks));
                insert_released(&tx, &Released { extent, cleared: Blocks(0), counter: unit.change_counter + 1 })?;
            }
            next_lba += blocks;
            added = true;
        }
        if added {
            bump(&tx)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// A consistent snapshot of the whole layout.
    pub fn load(&mut self) -> Result<Layout, LayoutError> {
        let tx = self.conn.transaction()?;
        let layout = read_layout(&tx)?;
        tx.commit()?;
        Ok(layout)
    }

    /// The change counter alone: what blockd polls to know when to reload.
    pub fn change_counter(&self) -> Result<u32, LayoutError> {
        Ok(self.conn.query_row("SELECT change_counter FROM unit WHERE id = 1", [], |r| r.get(0))?)
    }

    pub fn create_volume(&mut self, req: &NewVolume) -> Result<Volume, LayoutError> {
        self.change(|tx, layout| {
            let v = layout.plan_volume(req)?;
            tx.execute(
                "INSERT INTO volumes (idx, name, export_name, start_lba, blocks) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![v.index.0, v.name, v.export_name, v.extent.start.0 as i64, v.extent.len.0 as i64],
            )?;
            Ok(v)
        })
    }

    pub fn grow_volume(&mut self, index: VolumeIndex, new_len: Blocks) -> Result<Volume, LayoutError> {
        self.change(|tx, layout| {
            let v = layout.plan_grow(index, new_len)?;
            tx.execute("UPDATE volumes SET blocks = ?1 WHERE idx = ?2", params![v.extent.len.0 as i64, index.0])?;
            Ok(v)
        })
    }

    /// Destroy a volume: its extent is released, and becomes free once cleared (see [`ClearJob`]).
    pub fn destroy_volume(&mut self, index: VolumeIndex) -> Result<Volume, LayoutError> {
        self.change(|tx, layout| {
            let v = layout.plan_destroy_volume(index)?.clone();
            tx.execute("DELETE FROM volumes WHERE idx = ?1", params![index.0])?;
            tx.execute("DELETE FROM traffic WHERE export_name = ?1", params![v.export_name])?;
            // A volume being wiped keeps what it cleared already.
            let released = Released {
                cleared: v.clearing.unwrap_or(Blocks(0)),
                ..layout.released_by(&v, layout.unit.change_counter.wrapping_add(1))
            };
            insert_released(tx, &released)?;
            Ok(v)
        })
    }

    /// Start wiping a volume (no grants may remain on it): it is not served until [`LayoutStore::finish_clearing`].
    pub fn wipe_volume(&mut self, index: VolumeIndex) -> Result<Volume, LayoutError> {
        self.change(|tx, layout| {
            let v = layout.plan_wipe(index)?;
            tx.execute("UPDATE volumes SET cleared_blocks = 0 WHERE idx = ?1", params![index.0])?;
            Ok(v)
        })
    }

    /// Every clearing job, as [`ClearJob::all`] of a fresh snapshot.
    pub fn clear_jobs(&mut self) -> Result<Vec<ClearJob>, LayoutError> {
        Ok(ClearJob::all(&self.load()?))
    }

    /// Record how far a job has got. Not a layout change (the counter does not move): progress is read where it
    /// is shown, and a restart resumes from here.
    pub fn set_cleared(&mut self, target: ClearTarget, cleared: Blocks) -> Result<(), LayoutError> {
        match target {
            ClearTarget::Volume(v) => self.conn.execute(
                "UPDATE volumes SET cleared_blocks = ?1 WHERE idx = ?2 AND cleared_blocks IS NOT NULL",
                params![cleared.0 as i64, v.0],
            )?,
            ClearTarget::Released(start) => self.conn.execute(
                "UPDATE released SET cleared_blocks = ?1 WHERE start_lba = ?2",
                params![cleared.0 as i64, start.0 as i64],
            )?,
        };
        Ok(())
    }

    /// A job is done: the wiped volume is served again, or the released extent becomes free. A layout change,
    /// unless another clearer finished the same job first (then nothing changes and the counter stays).
    pub fn finish_clearing(&mut self, target: ClearTarget) -> Result<(), LayoutError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let changed = match target {
            ClearTarget::Volume(v) => tx.execute(
                "UPDATE volumes SET cleared_blocks = NULL WHERE idx = ?1 AND cleared_blocks IS NOT NULL",
                params![v.0],
            )?,
            ClearTarget::Released(start) => {
                tx.execute("DELETE FROM released WHERE start_lba = ?1", params![start.0 as i64])?
            }
        };
        if changed > 0 {
            bump(&tx)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The layout change counter blockd last loaded and served (None: never said, or blockd predates it).
    pub fn served_counter(&self) -> Result<Option<u32>, LayoutError> {
        let row = self
            .conn
            .query_row("SELECT layout_counter FROM data_service WHERE id = 1", [], |r| r.get::<_, Option<u32>>(0))
            .optional()?;
        Ok(row.flatten())
    }

    /// blockd: the layout with this change counter is the one served now (connections it no longer allows are
    /// closed).
    pub fn set_served_counter(&mut self, counter: u32) -> Result<(), LayoutError> {
        self.conn.execute("UPDATE data_service SET layout_counter = ?1 WHERE id = 1", params![counter])?;
        Ok(())
    }

    pub fn create_partition(&mut self, req: &NewPartition) -> Result<Partition, LayoutError> {
        self.change(|tx, layout| {
            let p = layout.plan_partition(req)?;
            tx.execute(
                "INSERT INTO partitions (volume_idx, idx, export_name, start_lba, blocks)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![p.volume.0, p.index.0, p.export_name, p.extent.start.0 as i64, p.extent.len.0 as i64],
            )?;
            Ok(p)
        })
    }

    pub fn destroy_partition(&mut self, volume: VolumeIndex, index: PartitionIndex) -> Result<Partition, LayoutError> {
        self.change(|tx, layout| {
            let p = layout.plan_destroy_partition(volume, index)?.clone();
            tx.execute("DELETE FROM partitions WHERE volume_idx = ?1 AND idx = ?2", params![volume.0, index.0])?;
            tx.execute("DELETE FROM traffic WHERE export_name = ?1", params![p.export_name])?;
            Ok(p)
        })
    }

    pub fn create_grant(&mut self, req: &NewGrant) -> Result<Grant, LayoutError> {
        self.change(|tx, layout| {
            let g = layout.plan_grant(req)?;
            tx.execute(
                "INSERT INTO grants (idx, volume_idx, partition_idx, host, identity, mode)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    g.index.0,
                    g.volume.0,
                    g.partition.map(|p| p.0).unwrap_or(0),
                    g.host.map(|h| h.to_string()),
                    g.identity,
                    mode_text(g.mode)
                ],
            )?;
            Ok(g)
        })
    }

    pub fn revoke_grant(&mut self, index: GrantIndex) -> Result<Grant, LayoutError> {
        self.change(|tx, layout| {
            let g = layout.plan_revoke(index)?.clone();
            tx.execute("DELETE FROM grants WHERE idx = ?1", params![index.0])?;
            Ok(g)
        })
    }

    /// Run one layout change: fresh snapshot, plan and write inside `f`, bump the change counter, commit.
    fn change<T>(
        &mut self,
        f: impl FnOnce(&Transaction<'_>, &Layout) -> Result<T, LayoutError>,
    ) -> Result<T, LayoutError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let layout = read_layout(&tx)?;
        let out = f(&tx, &layout)?;
        bump(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// Traffic totals as last saved, for blockd to continue from after a restart and for the agent to serve.
    pub fn traffic(&self) -> Result<Vec<TrafficRecord>, LayoutError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT idx, export_name, host, reads, writes, bytes_read, bytes_written, latency_us
             FROM traffic ORDER BY idx",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, u32>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                [r.get::<_, i64>(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?],
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (index, export_name, host, c) = row?;
            let Ok(host) = host.parse() else { continue };
            out.push(TrafficRecord {
                index,
                export_name,
                host,
                reads: c[0] as u64,
                writes: c[1] as u64,
                bytes_read: c[2] as u64,
                bytes_written: c[3] as u64,
                latency_us: c[4] as u64,
            });
        }
        Ok(out)
    }

    /// Save traffic totals (absolute values) for the given (export, host) pairs, creating rows as needed. Returns
    /// the row index of each record, in order.
    pub fn save_traffic(&mut self, records: &[TrafficRecord]) -> Result<Vec<u32>, LayoutError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut indexes = Vec::with_capacity(records.len());
        {
            let mut upsert = tx.prepare_cached(
                "INSERT INTO traffic (export_name, host, reads, writes, bytes_read, bytes_written, latency_us)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (export_name, host) DO UPDATE SET reads = ?3, writes = ?4, bytes_read = ?5,
                   bytes_written = ?6, latency_us = ?7
                 RETURNING idx",
            )?;
            for t in records {
                let idx: u32 = upsert.query_row(
                    params![
                        t.export_name,
                        t.host.to_string(),
                        t.reads as i64,
                        t.writes as i64,
                        t.bytes_read as i64,
                        t.bytes_written as i64,
                        t.latency_us as i64
                    ],
                    |r| r.get(0),
                )?;
                indexes.push(idx);
            }
        }
        tx.commit()?;
        Ok(indexes)
    }

    /// blockd's counters by name (bad input, refused and dropped connections): absolute totals, each replacing
    /// the stored value.
    pub fn save_data_counters(&mut self, counters: &[(&str, u64)]) -> Result<(), LayoutError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut upsert = tx.prepare_cached(
                "INSERT INTO data_counters (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET value = ?2",
            )?;
            for (name, value) in counters {
                upsert.execute(params![name, *value as i64])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// blockd's counters by name, as last saved (a name never saved is absent).
    pub fn data_counters(&self) -> Result<BTreeMap<String, u64>, LayoutError> {
        let mut stmt = self.conn.prepare_cached("SELECT name, value FROM data_counters")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        let mut out = BTreeMap::new();
        for row in rows {
            let (name, value) = row?;
            out.insert(name, value.max(0) as u64);
        }
        Ok(out)
    }

    /// blockd's heartbeat and state.
    pub fn set_data_service(&mut self, status: &DataServiceStatus) -> Result<(), LayoutError> {
        self.conn.execute(
            "INSERT INTO data_service (id, pid, listen, state, heartbeat_ms) VALUES (1, ?1, ?2, ?3, ?4)
             ON CONFLICT (id) DO UPDATE SET pid = ?1, listen = ?2, state = ?3, heartbeat_ms = ?4",
            params![
                status.pid,
                status.listen.to_string(),
                match status.state {
                    DataServiceState::Serving => "serving",
                    DataServiceState::Stopped => "stopped",
                },
                status.heartbeat_ms as i64
            ],
        )?;
        Ok(())
    }

    pub fn data_service(&self) -> Result<Option<DataServiceStatus>, LayoutError> {
        let row = self
            .conn
            .query_row("SELECT pid, listen, state, heartbeat_ms FROM data_service WHERE id = 1", [], |r| {
                Ok((r.get::<_, u32>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, i64>(3)?))
            })
            .optional()?;
        Ok(row.and_then(|(pid, listen, state, hb)| {
            Some(DataServiceStatus {
                pid,
                listen: listen.parse().ok()?,
                state: if state == "serving" { DataServiceState::Serving } else { DataServiceState::Stopped },
                heartbeat_ms: hb as u64,
            })
        }))
    }
}

fn mode_text(m: AccessMode) -> &'static str {
    match m {
        AccessMode::ReadWrite => "rw",
        AccessMode::ReadOnly => "ro",
        AccessMode::ReadWriteShared => "rws",
    }
}

fn bump(tx: &Transaction<'_>) -> Result<(), LayoutError> {
    // Counter32 semantics: wraps at 2^32.
    tx.execute("UPDATE unit SET change_counter = (change_counter + 1) % 4294967296 WHERE id = 1", [])?;
    Ok(())
}

fn read_unit(tx: &Transaction<'_>) -> Result<UnitInfo, LayoutError> {
    Ok(tx.query_row("SELECT unit_id, name, block_size, change_counter FROM unit WHERE id = 1", [], |r| {
        Ok(UnitInfo { unit_id: r.get(0)?, name: r.get(1)?, block_size: r.get(2)?, change_counter: r.get(3)? })
    })?)
}

fn extent(start: i64, blocks: i64) -> Extent {
    Extent::new(Lba(start as u64), Blocks(blocks as u64))
}

fn read_media(tx: &Transaction<'_>) -> Result<Vec<Medium>, LayoutError> {
    let mut stmt = tx.prepare_cached("SELECT idx, path, kind, first_lba, blocks FROM media ORDER BY idx")?;
    let rows = stmt.query_map([], |r| {
        Ok(Medium {
            index: r.get(0)?,
            path: PathBuf::from(r.get::<_, String>(1)?),
            kind: if r.get::<_, String>(2)? == "block" { MediumKind::BlockDevice } else { MediumKind::File },
            extent: extent(r.get(3)?, r.get(4)?),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn read_layout(tx: &Transaction<'_>) -> Result<Layout, LayoutError> {
    let mut layout = read_space(tx)?;
    layout.grants = read_grants(tx)?;
    Ok(layout)
}

/// The layout without its grants: the unit, its media, volumes, partitions and released extents.
fn read_space(tx: &Transaction<'_>) -> Result<Layout, LayoutError> {
    let unit = read_unit(tx)?;
    let media = read_media(tx)?;
    let volumes = {
        let mut stmt = tx.prepare_cached(
            "SELECT idx, name, export_name, start_lba, blocks, cleared_blocks FROM volumes ORDER BY idx",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(Volume {
                index: VolumeIndex(r.get(0)?),
                name: r.get(1)?,
                export_name: r.get(2)?,
                extent: extent(r.get(3)?, r.get(4)?),
                clearing: r.get::<_, Option<i64>>(5)?.map(|c| Blocks(c as u64)),
            })
        })?;
        rows.collect::<Result<Vec<_>, _>>()?
    };
    let partitions = {
        let mut stmt = tx.prepare_cached(
            "SELECT volume_idx, idx, export_name, start_lba, blocks FROM partitions ORDER BY volume_idx, idx",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(Partition {
                volume: VolumeIndex(r.get(0)?),
                index: PartitionIndex(r.get(1)?),
                export_name: r.get(2)?,
                extent: extent(r.get(3)?, r.get(4)?),
            })
        })?;
        rows.collect::<Result<Vec<_>, _>>()?
    };
    let released = {
        let mut stmt = tx.prepare_cached(
            "SELECT start_lba, blocks, cleared_blocks, change_counter FROM released ORDER BY start_lba",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(Released {
                extent: extent(r.get(0)?, r.get(1)?),
                cleared: Blocks(r.get::<_, i64>(2)? as u64),
                counter: r.get(3)?,
            })
        })?;
        rows.collect::<Result<Vec<_>, _>>()?
    };
    Ok(Layout { unit, media, volumes, partitions, grants: Vec::new(), released })
}

fn read_grants(tx: &Transaction<'_>) -> Result<Vec<Grant>, LayoutError> {
    let mut stmt =
        tx.prepare_cached("SELECT idx, volume_idx, partition_idx, host, identity, mode FROM grants ORDER BY idx")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, u32>(0)?,
            r.get::<_, u32>(1)?,
            r.get::<_, u32>(2)?,
            r.get::<_, Option<String>>(3)?,
            r.get::<_, Option<String>>(4)?,
            r.get::<_, String>(5)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (idx, vol, part, host, identity, mode) = row?;
        // Hosts are written by this crate from an IpAddr; a row that does not parse was edited by hand.
        let host = match host.map(|h| h.parse::<IpAddr>().map_err(|_| h)).transpose() {
            Ok(host) => host,
            Err(host) => {
                tracing::warn!(grant = idx, host, "ignoring grant with an unparseable host address");
                continue;
            }
        };
        out.push(Grant {
            index: GrantIndex(idx),
            volume: VolumeIndex(vol),
            partition: (part != 0).then_some(PartitionIndex(part)),
            host,
            identity,
            mode: match mode.as_str() {
                "ro" => AccessMode::ReadOnly,
                "rws" => AccessMode::ReadWriteShared,
                _ => AccessMode::ReadWrite,
            },
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path) -> LayoutStore {
        let mut s = LayoutStore::open(dir).unwrap();
        s.init_unit("unit-a", 4096).unwrap();
        s.attach_media(&[
            MediumSpec { path: "/m/a".into(), kind: MediumKind::File, bytes: 100 * 4096 },
            MediumSpec { path: "/m/b".into(), kind: MediumKind::File, bytes: 50 * 4096 + 100 },
        ])
        .unwrap();
        // The media do not exist: mark their release cleared by hand (clear.rs tests clear real files).
        for job in s.clear_jobs().unwrap() {
            s.finish_clearing(job.target).unwrap();
        }
        s
    }

    #[test]
    fn layout_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (id, counter) = {
            let mut s = store(dir.path());
            let v = s.create_volume(&NewVolume { len: Blocks(120), ..Default::default() }).unwrap();
            assert_eq!(v.extent.end(), Lba(119), "first fit spans both media");
            s.create_partition(&NewPartition { volume: v.index, index: None, start: None, len: Blocks(10) }).unwrap();
            s.create_grant(&NewGrant {
                index: None,
                volume: v.index,
                partition: None,
                host: Some("127.0.0.9".parse().unwrap()),
                identity: None,
                mode: AccessMode::ReadWrite,
            })
            .unwrap();
            let l = s.load().unwrap();
            (l.unit.unit_id, l.unit.change_counter)
        };
        let mut s = LayoutStore::open(dir.path()).unwrap();
        let info = s.init_unit("unit-a", 4096).unwrap();
        assert_eq!(info.unit_id, id);
        let l = s.load().unwrap();
        assert_eq!(l.unit.change_counter, counter);
        assert_eq!(counter, 6, "media, their two releases cleared, volume, partition, grant");
        assert_eq!((l.volumes.len(), l.partitions.len(), l.grants.len()), (1, 1, 1));
        assert_eq!(l.capacity(), Blocks(150));
        assert_eq!(l.exports().len(), 2);
    }

    /// A connection whose store has the first `n` migrations only.
    fn store_at_version(dir: &Path, n: usize) -> Connection {
        let mut conn = Connection::open(dir.join(STORE_FILE)).unwrap();
        Migrations::new(migration_list().into_iter().take(n).collect()).to_latest(&mut conn).unwrap();
        conn
    }

    fn user_version(s: &LayoutStore) -> i64 {
        s.conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap()
    }

    #[test]
    fn migration_3_keeps_address_grants_and_stores_identities() {
        let dir = tempfile::tempdir().unwrap();
        // A store written before migration 3 (grant identity), after 2 (clearing): a shared address grant.
        store_at_version(dir.path(), 2)
            .execute_batch(
                "INSERT INTO unit (id, unit_id, name, block_size) VALUES (1, 'u', 'unit-a', 4096);
                 INSERT INTO volumes (idx, name, export_name, start_lba, blocks) VALUES (1, 'vol1', 'vol1', 0, 10);
                 INSERT INTO grants (idx, volume_idx, partition_idx, host, mode) VALUES (1, 1, 0, '127.0.0.9', 'rws');",
            )
            .unwrap();
        let mut s = LayoutStore::open(dir.path()).unwrap();
        assert_eq!(user_version(&s), 4);
        assert_eq!(user_version(&s), migration_list().len() as i64);
        let g = &s.load().unwrap().grants[0];
        assert_eq!((g.host, g.identity.as_deref()), (Some("127.0.0.9".parse().unwrap()), None));
        assert_eq!(g.mode, AccessMode::ReadWriteShared);
        let by_identity = s
            .create_grant(&NewGrant {
                index: None,
                volume: VolumeIndex(1),
                partition: None,
                host: None,
                identity: Some("host-a.example".into()),
                mode: AccessMode::ReadWriteShared,
            })
            .unwrap();
        assert_eq!(s.load().unwrap().grants[1], by_identity, "an identity grant without an address round-trips");
    }

    #[test]
    fn a_first_schema_store_with_grants_migrates_to_the_latest() {
        let dir = tempfile::tempdir().unwrap();
        // Before migration 2 (clearing), whose hook reads the space while grants still have the first columns.
        store_at_version(dir.path(), 1)
            .execute_batch(
                "INSERT INTO unit (id, unit_id, name, block_size) VALUES (1, 'u', 'unit-a', 4096);
                 INSERT INTO media (idx, path, kind, first_lba, blocks) VALUES (1, '/m/a', 'file', 0, 100);
                 INSERT INTO volumes (idx, name, export_name, start_lba, blocks) VALUES (1, 'vol1', 'vol1', 0, 10);
                 INSERT INTO grants (idx, volume_idx, partition_idx, host, mode) VALUES (1, 1, 0, '127.0.0.9', 'rw');",
            )
            .unwrap();
        let mut s = LayoutStore::open(dir.path()).unwrap();
        assert_eq!(user_version(&s), 4);
        let l = s.load().unwrap();
        assert_eq!(l.grants.len(), 1);
        assert_eq!((l.grants[0].mode, l.grants[0].identity.as_deref()), (AccessMode::ReadWrite, None));
        let released: Vec<Extent> = l.released.iter().map(|r| r.extent).collect();
        assert_eq!(released, vec![Extent { start: Lba(10), len: Blocks(90) }], "the old free space awaits clearing");
    }

    #[test]
    fn refused_change_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = store(dir.path());
        let before = s.change_counter().unwrap();
        let err = s.create_volume(&NewVolume { len: Blocks(151), ..Default::default() }).unwrap_err();
        assert!(err.to_string().contains("largest free extent is 150 blocks"), "{err}");
        assert_eq!(s.change_counter().unwrap(), before);
        assert!(s.load().unwrap().volumes.is_empty());
    }

    #[test]
    fn media_must_match_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = store(dir.path());
        let err = s
            .attach_media(&[MediumSpec { path: "/m/a".into(), kind: MediumKind::File, bytes: 100 * 4096 }])
            .unwrap_err();
        assert!(err.to_string().contains("recorded but was not given"), "{err}");
        let err = s
            .attach_media(&[
                MediumSpec { path: "/m/b".into(), kind: MediumKind::File, bytes: 100 * 4096 },
                MediumSpec { path: "/m/a".into(), kind: MediumKind::File, bytes: 100 * 4096 },
            ])
            .unwrap_err();
        assert!(err.to_string().contains("given in its place"), "{err}");
        let err = LayoutStore::open(dir.path()).unwrap().init_unit("unit-a", 512).unwrap_err();
        assert!(err.to_string().contains("block size 4096"), "{err}");
    }

    #[test]
    fn data_counters_round_trip_and_replace() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = LayoutStore::open(dir.path()).unwrap();
        assert!(s.data_counters().unwrap().is_empty());
        s.save_data_counters(&[("silent_client", 3), ("handshake_timeout", 1)]).unwrap();
        s.save_data_counters(&[("silent_client", 7)]).unwrap();
        let c = s.data_counters().unwrap();
        assert_eq!(c.get("silent_client"), Some(&7));
        assert_eq!(c.get("handshake_timeout"), Some(&1));
    }

    #[test]
    fn traffic_and_heartbeat_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = store(dir.path());
        let rec = TrafficRecord {
            index: 0,
            export_name: "vol1".into(),
            host: "127.0.0.2".parse().unwrap(),
            reads: u64::MAX,
            writes: 2,
            bytes_read: 3,
            bytes_written: 4,
            latency_us: 5,
        };
        let idx = s.save_traffic(std::slice::from_ref(&rec)).unwrap();
        assert_eq!(s.save_traffic(std::slice::from_ref(&rec)).unwrap(), idx, "same row on update");
        assert_eq!(s.traffic().unwrap(), vec![TrafficRecord { index: idx[0], ..rec }]);
        let hb = DataServiceStatus {
            pid: 42,
            listen: "127.0.0.1:10809".parse().unwrap(),
            state: DataServiceState::Serving,
            heartbeat_ms: 1_700_000_000_000,
        };
        s.set_data_service(&hb).unwrap();
        assert_eq!(s.data_service().unwrap(), Some(hb));
    }
}
