//! A SAN unit's layout and the store that keeps it.
//!
//! A unit's address space is its media concatenated, counted in blocks of the unit's block size. Volumes are
//! extents of that space (first fit, may span media), partitions are extents inside a volume, and grants say which
//! host (by address, TLS certificate identity, or both) may use which volume or partition export; a read-write
//! grant is exclusive unless shared. The agent owns the layout: it changes it on SNMP SETs and CLI commands.
//! blockd reads it to learn its exports and grants, and writes back its traffic counters and a heartbeat. Both
//! sides meet in one SQLite file in the unit's state directory ([`LayoutStore`]). Released space and wiped volumes
//! are zeroed by a [`Clearer`] before anyone can use them again.

mod clear;
mod error;
mod extent;
mod media_map;
mod model;
mod open_lock;
mod plan;
mod size;
mod store;

pub use clear::{clear_all_now, ClearMethod, ClearOptions, Clearer};
pub use error::LayoutError;
pub use extent::{Blocks, Extent, Lba};
pub use media_map::{MediaMap, Segment};
pub use model::{
    percent, AccessMode, Client, Export, ExportKind, Grant, GrantIndex, Layout, Medium, MediumKind, Partition,
    PartitionIndex, Released, UnitInfo, Volume, VolumeIndex,
};
pub use open_lock::{lock_store_open, open_lock_path, StoreOpenLock};
pub use plan::{valid_identity, NewGrant, NewPartition, NewVolume};
pub use size::{binary_scale, parse_size, HumanSize, SizeError};
pub use store::{
    ClearJob, ClearTarget, DataServiceState, DataServiceStatus, LayoutStore, MediumSpec, TrafficRecord,
    PUSHED_CRL_FILE, STORE_FILE,
};
