//! The unit's layout as plain values: one snapshot read from the store in one transaction.
//!
//! The agent serves its MIB tables from a snapshot and blockd builds its export map from one, so neither reads
//! SQLite on a hot path. Allocation decisions (first fit, growth room) are pure functions of a snapshot, which
//! keeps them testable without a database.

use crate::extent::{gaps, Blocks, Extent, Lba};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

/// Index of a volume in the unit's volume table (dvsanVolumeIndex), 1..=2^31-1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct VolumeIndex(pub u32);

/// Index of a partition inside its volume (dvsanPartitionIndex), 1..=2^31-1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PartitionIndex(pub u32);

/// Index of a grant in the access table (dvsanAccessIndex), 1..=2^31-1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GrantIndex(pub u32);

impl fmt::Display for VolumeIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
impl fmt::Display for PartitionIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
impl fmt::Display for GrantIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl VolumeIndex {
    /// The volume a MIB column or a stored row names, where 0 means none.
    pub fn given(index: u32) -> Option<VolumeIndex> {
        (index != 0).then_some(VolumeIndex(index))
    }
}
impl PartitionIndex {
    /// The partition a MIB column or a stored row names, where 0 means none.
    pub fn given(index: u32) -> Option<PartitionIndex> {
        (index != 0).then_some(PartitionIndex(index))
    }
}

/// The unit's identity and geometry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitInfo {
    /// Stable UUID, generated when the state directory is first initialised.
    pub unit_id: String,
    pub name: String,
    pub block_size: u32,
    /// Incremented by every committed layout change (dvsanUnitChangeCounter).
    pub change_counter: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MediumKind {
    File,
    BlockDevice,
}

/// One backing medium and where it sits in the unit's address space.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Medium {
    pub index: u32,
    pub path: PathBuf,
    pub kind: MediumKind,
    /// Whole blocks of the medium that the unit uses (a trailing partial block is left unused).
    pub extent: Extent,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    pub index: VolumeIndex,
    pub name: String,
    pub extent: Extent,
    pub export_name: String,
    /// `Some(blocks cleared so far)` while the unit is wiping the volume (a wipe was asked for, for example when
    /// a host released it): blockd does not serve it and managers should not assign it until it is `None` again.
    #[serde(default)]
    pub clearing: Option<Blocks>,
}

impl Volume {
    /// dvsanVolumeClearProgress: percent of the volume cleared, 100 when it is not being cleared.
    pub fn clear_percent(&self) -> u32 {
        match self.clearing {
            None => 100,
            Some(done) => percent(done, self.extent.len),
        }
    }
}

/// `done` of `total` blocks as a whole percentage, 100 only when all are done.
pub fn percent(done: Blocks, total: Blocks) -> u32 {
    if total.0 == 0 || done >= total {
        return 100;
    }
    ((done.0 as u128 * 100 / total.0 as u128) as u32).min(99)
}

/// Released space: an extent a destroyed volume (or a newly attached medium) left, which the unit clears before
/// it becomes free. Not free and not a volume: nothing can be allocated on it until it is cleared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Released {
    pub extent: Extent,
    /// Blocks from the start of the extent already cleared.
    pub cleared: Blocks,
    /// The change counter of the change that released it: blockd must have loaded this layout (and closed the
    /// connections to what was there) before the blocks are cleared.
    pub counter: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    pub volume: VolumeIndex,
    pub index: PartitionIndex,
    pub extent: Extent,
    pub export_name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccessMode {
    /// Reads and writes; no other host may write the same blocks.
    ReadWrite,
    ReadOnly,
    /// Reads and writes, shared with other hosts' `ReadWriteShared` grants (cluster filesystems).
    ReadWriteShared,
}

impl AccessMode {
    /// Whether the host may write.
    pub fn writes(self) -> bool {
        !matches!(self, AccessMode::ReadOnly)
    }

    /// Whether a grant in this mode may stand beside another host's grant in `other` on overlapping blocks:
    /// an exclusive writer tolerates no other writer, shared writers tolerate each other, readers anything.
    pub fn compatible_with(self, other: AccessMode) -> bool {
        matches!(
            (self, other),
            (AccessMode::ReadOnly, _)
                | (_, AccessMode::ReadOnly)
                | (AccessMode::ReadWriteShared, AccessMode::ReadWriteShared)
        )
    }
}

/// A host may use the export of `volume` (or of its `partition`) in `mode`. The host is named by its address,
/// its certificate identity, or both (at least one; see [`Grant::admits`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub index: GrantIndex,
    pub volume: VolumeIndex,
    /// None: the whole volume's export.
    pub partition: Option<PartitionIndex>,
    /// The host's address; None only with an identity (then any address).
    pub host: Option<IpAddr>,
    /// The identity of the host's TLS client certificate (its SAN DNS name or URI, else its subject CN).
    pub identity: Option<String>,
    pub mode: AccessMode,
}

/// Who is asking for an export: the connection's source address and, on a TLS connection whose client
/// certificate was verified, the certificate's identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Client {
    pub address: IpAddr,
    pub identity: Option<String>,
}

impl Client {
    /// A client known by its address only (a connection without TLS).
    pub fn by_address(address: IpAddr) -> Client {
        Client { address, identity: None }
    }
}

impl fmt::Display for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.identity {
            Some(id) => write!(f, "{id:?} at {}", self.address),
            None => write!(f, "{}", self.address),
        }
    }
}

impl Grant {
    /// Whether this grant lets `client` in. A grant with an identity admits only a client that proved that
    /// identity with a verified certificate (and, if the grant also has an address, only from there); a grant
    /// without one admits the address, which is all a connection without TLS can show.
    pub fn admits(&self, client: &Client) -> bool {
        let address_ok = self.host.is_none_or(|h| h == client.address);
        match &self.identity {
            Some(id) => address_ok && client.identity.as_deref() == Some(id.as_str()),
            None => self.host.is_some() && address_ok,
        }
    }

    /// Whether both grants name the same host, for exclusivity. Grants with identities name the holder of that
    /// certificate (an address beside it only narrows where it may connect from), so they are the same host when
    /// the identities are equal; grants by address alone are the same host when the addresses are. An address
    /// grant and an identity grant are different hosts: the address admits any client from there.
    pub fn same_host(&self, other: &Grant) -> bool {
        match (&self.identity, &other.identity) {
            (Some(a), Some(b)) => a == b,
            (None, None) => self.host == other.host,
            _ => false,
        }
    }

    /// The host as shown to operators: `identity@address`, `identity`, or `address`.
    pub fn host_text(&self) -> String {
        match (&self.identity, self.host) {
            (Some(id), Some(h)) => format!("{id}@{h}"),
            (Some(id), None) => id.clone(),
            (None, Some(h)) => h.to_string(),
            (None, None) => "-".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExportKind {
    Volume(VolumeIndex),
    Partition(VolumeIndex, PartitionIndex),
}

/// Something blockd serves: a named extent of the unit's address space.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Export {
    pub name: String,
    pub kind: ExportKind,
    pub extent: Extent,
}

/// A consistent snapshot of everything the unit knows about its storage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    pub unit: UnitInfo,
    pub media: Vec<Medium>,
    pub volumes: Vec<Volume>,
    pub partitions: Vec<Partition>,
    pub grants: Vec<Grant>,
    /// Released extents still being cleared, in address order.
    #[serde(default)]
    pub released: Vec<Released>,
}

impl Layout {
    /// The whole address space: all media concatenated.
    pub fn address_space(&self) -> Extent {
        let total = self.media.iter().map(|m| m.extent.len.0).sum();
        Extent::new(Lba(0), Blocks(total))
    }

    pub fn capacity(&self) -> Blocks {
        self.address_space().len
    }

    /// Extents that can be allocated: neither a volume's nor released and still being cleared.
    pub fn free_extents(&self) -> Vec<Extent> {
        let used: Vec<Extent> =
            self.volumes.iter().map(|v| v.extent).chain(self.released.iter().map(|r| r.extent)).collect();
        gaps(self.address_space(), &used)
    }

    /// Blocks released and not yet cleared (dvsanUnitClearingBlocks).
    pub fn clearing_blocks(&self) -> Blocks {
        Blocks(self.released.iter().map(|r| r.extent.len.0).sum())
    }

    pub fn free_blocks(&self) -> Blocks {
        Blocks(self.free_extents().iter().map(|e| e.len.0).sum())
    }

    pub fn largest_free(&self) -> Blocks {
        self.free_extents().iter().map(|e| e.len).max().unwrap_or(Blocks(0))
    }

    /// First free extent that can hold `len` blocks.
    pub fn first_fit(&self, len: Blocks) -> Option<Lba> {
        self.free_extents().into_iter().find(|e| e.len >= len).map(|e| e.start)
    }

    pub fn volume(&self, index: VolumeIndex) -> Option<&Volume> {
        self.volumes.iter().find(|v| v.index == index)
    }

    pub fn partition(&self, volume: VolumeIndex, index: PartitionIndex) -> Option<&Partition> {
        self.partitions.iter().find(|p| p.volume == volume && p.index == index)
    }

    pub fn partitions_of(&self, volume: VolumeIndex) -> impl Iterator<Item = &Partition> {
        self.partitions.iter().filter(move |p| p.volume == volume)
    }

    pub fn grants_on(&self, volume: VolumeIndex) -> impl Iterator<Item = &Grant> {
        self.grants.iter().filter(move |g| g.volume == volume)
    }

    /// Free gaps inside a volume, between its partitions.
    pub fn free_in_volume(&self, volume: &Volume) -> Vec<Extent> {
        let used: Vec<Extent> = self.partitions_of(volume.index).map(|p| p.extent).collect();
        gaps(volume.extent, &used)
    }

    /// Every export the unit serves: each volume, then each partition; a volume being cleared (and its
    /// partitions) is not served until it is done.
    pub fn exports(&self) -> Vec<Export> {
        let clearing = |v: VolumeIndex| self.volume(v).is_some_and(|v| v.clearing.is_some());
        let vols = self.volumes.iter().filter(|v| v.clearing.is_none()).map(|v| Export {
            name: v.export_name.clone(),
            kind: ExportKind::Volume(v.index),
            extent: v.extent,
        });
        let parts = self.partitions.iter().filter(|p| !clearing(p.volume)).map(|p| Export {
            name: p.export_name.clone(),
            kind: ExportKind::Partition(p.volume, p.index),
            extent: p.extent,
        });
        vols.chain(parts).collect()
    }

    pub fn export(&self, name: &str) -> Option<Export> {
        self.exports().into_iter().find(|e| e.name == name)
    }

    /// The grant that lets `client` use `export`, if any.
    pub fn grant_for(&self, export: &Export, client: &Client) -> Option<&Grant> {
        let (volume, partition) = match export.kind {
            ExportKind::Volume(v) => (v, None),
            ExportKind::Partition(v, p) => (v, Some(p)),
        };
        self.grants.iter().find(|g| g.volume == volume && g.partition == partition && g.admits(client))
    }

    pub fn export_name_taken(&self, name: &str) -> bool {
        self.volumes.iter().any(|v| v.export_name == name || v.name == name)
            || self.partitions.iter().any(|p| p.export_name == name)
    }

    pub fn next_volume_index(&self) -> Option<VolumeIndex> {
        next_free(self.volumes.iter().map(|v| v.index.0)).map(VolumeIndex)
    }

    pub fn next_partition_index(&self, volume: VolumeIndex) -> Option<PartitionIndex> {
        next_free(self.partitions_of(volume).map(|p| p.index.0)).map(PartitionIndex)
    }

    pub fn next_grant_index(&self) -> Option<GrantIndex> {
        next_free(self.grants.iter().map(|g| g.index.0)).map(GrantIndex)
    }
}

/// Largest used index plus one (so indexes are not reused soon after a destroy), wrapping to the first gap.
fn next_free(used: impl Iterator<Item = u32>) -> Option<u32> {
    const MAX: u32 = i32::MAX as u32;
    let mut all: Vec<u32> = used.collect();
    all.sort_unstable();
    match all.last() {
        None => Some(1),
        Some(&last) if last < MAX => Some(last + 1),
        Some(_) => (1..=MAX).zip(all.iter()).find(|(want, have)| want != *have).map(|(want, _)| want),
    }
}

/// Names become export names, URIs and shell arguments: keep them to a safe alphabet.
pub(crate) fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout {
            unit: UnitInfo { unit_id: "u".into(), name: "u".into(), block_size: 4096, change_counter: 0 },
            media: vec![
                Medium { index: 1, path: "a".into(), kind: MediumKind::File, extent: Extent::new(Lba(0), Blocks(100)) },
                Medium {
                    index: 2,
                    path: "b".into(),
                    kind: MediumKind::File,
                    extent: Extent::new(Lba(100), Blocks(50)),
                },
            ],
            volumes: vec![Volume {
                index: VolumeIndex(1),
                name: "vol1".into(),
                extent: Extent::new(Lba(10), Blocks(20)),
                export_name: "vol1".into(),
                clearing: None,
            }],
            partitions: vec![],
            grants: vec![],
            released: vec![],
        }
    }

    #[test]
    fn free_space_and_first_fit() {
        let l = layout();
        assert_eq!(l.capacity(), Blocks(150));
        assert_eq!(l.free_blocks(), Blocks(130));
        assert_eq!(l.largest_free(), Blocks(120));
        assert_eq!(l.first_fit(Blocks(5)), Some(Lba(0)));
        assert_eq!(l.first_fit(Blocks(11)), Some(Lba(30)));
        assert_eq!(l.first_fit(Blocks(121)), None);
    }

    #[test]
    fn released_space_is_not_free() {
        let mut l = layout();
        l.released.push(Released { extent: Extent::new(Lba(30), Blocks(10)), cleared: Blocks(3), counter: 1 });
        assert_eq!(l.free_blocks(), Blocks(120));
        assert_eq!(l.clearing_blocks(), Blocks(10));
        assert_eq!(l.first_fit(Blocks(11)), Some(Lba(40)));
    }

    #[test]
    fn exclusive_and_shared_modes() {
        use AccessMode::*;
        assert!(!ReadWrite.compatible_with(ReadWrite));
        assert!(!ReadWrite.compatible_with(ReadWriteShared));
        assert!(!ReadWriteShared.compatible_with(ReadWrite));
        assert!(ReadWriteShared.compatible_with(ReadWriteShared));
        assert!(ReadOnly.compatible_with(ReadWrite) && ReadWrite.compatible_with(ReadOnly));
        assert_eq!(percent(Blocks(0), Blocks(3)), 0);
        assert_eq!(percent(Blocks(299), Blocks(300)), 99);
        assert_eq!(percent(Blocks(300), Blocks(300)), 100);
    }

    #[test]
    fn next_index_skips_used() {
        assert_eq!(next_free([].into_iter()), Some(1));
        assert_eq!(next_free([1, 2, 5].into_iter()), Some(6));
        assert_eq!(next_free([1, 2, i32::MAX as u32].into_iter()), Some(3));
    }

    #[test]
    fn names() {
        assert!(valid_name("vol-1.a_b"));
        assert!(!valid_name(""));
        assert!(!valid_name("a b"));
        assert!(!valid_name(&"x".repeat(65)));
    }
}
