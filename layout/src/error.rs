//! Why a layout change was refused.
//!
//! Each variant is something an operator can act on; the agent maps them onto SNMP SET errors
//! (inconsistentValue, wrongValue, noCreation, ...) and onto CLI messages, so the texts name what was wrong and
//! what would be valid.

use crate::extent::{Blocks, Lba};
use crate::model::{AccessMode, PartitionIndex, VolumeIndex};

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("a length of zero blocks is not a valid size; give at least 1 block")]
    ZeroLength,
    #[error("{requested} blocks do not fit: the largest free extent is {largest} blocks")]
    NoSpace { requested: Blocks, largest: Blocks },
    #[error("extent {start}..={end} overlaps {what}")]
    Overlap { start: Lba, end: Lba, what: String },
    #[error("extent {start}..={end} lies outside {what} ({lo}..={hi})")]
    OutOfRange { start: Lba, end: Lba, what: String, lo: Lba, hi: Lba },
    #[error("volume {0} does not exist")]
    NoSuchVolume(VolumeIndex),
    #[error("partition {1} of volume {0} does not exist")]
    NoSuchPartition(VolumeIndex, PartitionIndex),
    #[error("grant {0} does not exist")]
    NoSuchGrant(u32),
    #[error("index {0} is already in use")]
    IndexInUse(u32),
    #[error("index must be between 1 and 2147483647, got {0}")]
    BadIndex(u32),
    #[error("volume {volume} still has {partitions} partition(s) and {grants} grant(s); remove them first")]
    VolumeInUse { volume: VolumeIndex, partitions: usize, grants: usize },
    #[error("partition {1} of volume {0} still has {2} grant(s); revoke them first")]
    PartitionInUse(VolumeIndex, PartitionIndex, usize),
    #[error("name {0:?} is not valid: use 1 to 64 characters from A-Z a-z 0-9 . _ -")]
    BadName(String),
    #[error("export name {0:?} is already used on this unit")]
    NameTaken(String),
    #[error("volume {0} cannot shrink from {1} to {2} blocks; only growing is supported")]
    Shrink(VolumeIndex, Blocks, Blocks),
    #[error("host {host} already has a grant on export {export}")]
    DuplicateGrant { host: String, export: String },
    #[error(
        "host {host} has a {mode:?} grant (index {grant}) on volume {volume} or a part of it; a read-write grant \
         is exclusive: revoke that grant first, or grant both hosts in the shared mode (readWriteShared)"
    )]
    ExclusiveGrant { host: String, grant: u32, volume: VolumeIndex, mode: AccessMode },
    #[error("volume {volume} still has {grants} grant(s); revoke them before wiping it")]
    WipeWhileGranted { volume: VolumeIndex, grants: usize },
    #[error("volume {0} is being cleared; wait until it is done")]
    Clearing(VolumeIndex),
    #[error("media do not match the unit's recorded media: {0}")]
    MediaMismatch(String),
    #[error("block size {0} is not valid: use a power of two from 512 to 65536")]
    BadBlockSize(u32),
    #[error("the unit's address space would exceed {max} blocks")]
    TooLarge { max: u64 },
    #[error("store: {0}")]
    Store(#[from] rusqlite::Error),
    #[error("store migration: {0}")]
    Migration(#[from] rusqlite_migration::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
