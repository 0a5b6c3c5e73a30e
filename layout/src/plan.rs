//! Checking a layout change against a snapshot before making it.
//!
//! Every change is first planned on a [`Layout`] snapshot: the plan either yields the exact row that would be
//! written or the reason it cannot be. The agent plans during an SNMP SET's check phase (so a bad SET is refused
//! before anything is written) and the store plans again inside its write transaction (so a change that raced
//! another is still refused). One set of rules serves both.

use crate::error::LayoutError;
use crate::extent::{Blocks, Extent, Lba};
use crate::model::{
    valid_name, AccessMode, Grant, GrantIndex, Layout, Partition, PartitionIndex, Released, Volume, VolumeIndex,
};
use std::net::IpAddr;

const MAX_INDEX: u32 = i32::MAX as u32;

/// A volume to create. Unset fields are chosen by the unit: the next free index, the name `vol<index>`, the first
/// free extent that fits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewVolume {
    pub index: Option<VolumeIndex>,
    pub name: Option<String>,
    pub start: Option<Lba>,
    pub len: Blocks,
}

/// A partition to create inside `volume`; `start` is an absolute unit LBA inside the volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPartition {
    pub volume: VolumeIndex,
    pub index: Option<PartitionIndex>,
    pub start: Option<Lba>,
    pub len: Blocks,
}

/// A grant to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewGrant {
    pub index: Option<GrantIndex>,
    pub volume: VolumeIndex,
    pub partition: Option<PartitionIndex>,
    pub host: IpAddr,
    pub mode: AccessMode,
}

fn check_index(i: u32) -> Result<u32, LayoutError> {
    if (1..=MAX_INDEX).contains(&i) {
        Ok(i)
    } else {
        Err(LayoutError::BadIndex(i))
    }
}

impl Layout {
    pub fn plan_volume(&self, req: &NewVolume) -> Result<Volume, LayoutError> {
        if req.len.0 == 0 {
            return Err(LayoutError::ZeroLength);
        }
        let index = match req.index {
            Some(i) => VolumeIndex(check_index(i.0)?),
            None => self.next_volume_index().ok_or(LayoutError::IndexInUse(MAX_INDEX))?,
        };
        if self.volume(index).is_some() {
            return Err(LayoutError::IndexInUse(index.0));
        }
        let name = req.name.clone().unwrap_or_else(|| format!("vol{}", index.0));
        if !valid_name(&name) {
            return Err(LayoutError::BadName(name));
        }
        if self.export_name_taken(&name) {
            return Err(LayoutError::NameTaken(name));
        }
        let start = match req.start {
            Some(s) => s,
            None => self
                .first_fit(req.len)
                .ok_or(LayoutError::NoSpace { requested: req.len, largest: self.largest_free() })?,
        };
        let extent = Extent::new(start, req.len);
        let space = self.address_space();
        if !space.contains(&extent) {
            return Err(LayoutError::OutOfRange {
                start,
                end: extent.end(),
                what: "the unit's address space".into(),
                lo: space.start,
                hi: space.end(),
            });
        }
        if let Some(v) = self.volumes.iter().find(|v| v.extent.overlaps(&extent)) {
            return Err(LayoutError::Overlap {
                start,
                end: extent.end(),
                what: format!("volume {} ({}..={})", v.index, v.extent.start, v.extent.end()),
            });
        }
        self.check_not_released(&extent)?;
        Ok(Volume { index, export_name: name.clone(), name, extent, clearing: None })
    }

    /// Released space is not allocatable until it has been cleared.
    fn check_not_released(&self, extent: &Extent) -> Result<(), LayoutError> {
        match self.released.iter().find(|r| r.extent.overlaps(extent)) {
            Some(r) => Err(LayoutError::Overlap {
                start: extent.start,
                end: extent.end(),
                what: format!(
                    "released space {}..={} that is still being cleared ({} of {} blocks done)",
                    r.extent.start,
                    r.extent.end(),
                    r.cleared,
                    r.extent.len
                ),
            }),
            None => Ok(()),
        }
    }

    /// Wipe a volume: it is cleared (zeroed) in the background and not served until done. Refused while any
    /// host has a grant on it, so no host sees it half cleared.
    pub fn plan_wipe(&self, index: VolumeIndex) -> Result<Volume, LayoutError> {
        let v = self.volume(index).ok_or(LayoutError::NoSuchVolume(index))?;
        let grants = self.grants_on(index).count();
        if grants > 0 {
            return Err(LayoutError::WipeWhileGranted { volume: index, grants });
        }
        Ok(Volume { clearing: Some(Blocks(0)), ..v.clone() })
    }

    /// Grow a volume in place to `new_len` blocks; the blocks after it must be free.
    pub fn plan_grow(&self, index: VolumeIndex, new_len: Blocks) -> Result<Volume, LayoutError> {
        let v = self.volume(index).ok_or(LayoutError::NoSuchVolume(index))?;
        if new_len.0 == 0 {
            return Err(LayoutError::ZeroLength);
        }
        if new_len < v.extent.len {
            return Err(LayoutError::Shrink(index, v.extent.len, new_len));
        }
        let grown = Extent::new(v.extent.start, new_len);
        let space = self.address_space();
        if !space.contains(&grown) {
            return Err(LayoutError::OutOfRange {
                start: grown.start,
                end: grown.end(),
                what: "the unit's address space".into(),
                lo: space.start,
                hi: space.end(),
            });
        }
        if let Some(o) = self.volumes.iter().find(|o| o.index != index && o.extent.overlaps(&grown)) {
            return Err(LayoutError::Overlap {
                start: grown.start,
                end: grown.end(),
                what: format!("volume {} ({}..={})", o.index, o.extent.start, o.extent.end()),
            });
        }
        self.check_not_released(&grown)?;
        if v.clearing.is_some() {
            return Err(LayoutError::Clearing(index));
        }
        Ok(Volume { extent: grown, ..v.clone() })
    }

    pub fn plan_destroy_volume(&self, index: VolumeIndex) -> Result<&Volume, LayoutError> {
        let v = self.volume(index).ok_or(LayoutError::NoSuchVolume(index))?;
        let partitions = self.partitions_of(index).count();
        let grants = self.grants_on(index).count();
        if partitions > 0 || grants > 0 {
            return Err(LayoutError::VolumeInUse { volume: index, partitions, grants });
        }
        Ok(v)
    }

    pub fn plan_partition(&self, req: &NewPartition) -> Result<Partition, LayoutError> {
        let v = self.volume(req.volume).ok_or(LayoutError::NoSuchVolume(req.volume))?;
        if req.len.0 == 0 {
            return Err(LayoutError::ZeroLength);
        }
        let index = match req.index {
            Some(i) => PartitionIndex(check_index(i.0)?),
            None => self.next_partition_index(req.volume).ok_or(LayoutError::IndexInUse(MAX_INDEX))?,
        };
        if self.partition(req.volume, index).is_some() {
            return Err(LayoutError::IndexInUse(index.0));
        }
        let start = match req.start {
            Some(s) => s,
            None => {
                let free = self.free_in_volume(v);
                let largest = free.iter().map(|e| e.len).max().unwrap_or(Blocks(0));
                free.iter()
                    .find(|e| e.len >= req.len)
                    .map(|e| e.start)
                    .ok_or(LayoutError::NoSpace { requested: req.len, largest })?
            }
        };
        let extent = Extent::new(start, req.len);
        if !v.extent.contains(&extent) {
            return Err(LayoutError::OutOfRange {
                start,
                end: extent.end(),
                what: format!("volume {}", v.index),
                lo: v.extent.start,
                hi: v.extent.end(),
            });
        }
        if let Some(p) = self.partitions_of(req.volume).find(|p| p.extent.overlaps(&extent)) {
            return Err(LayoutError::Overlap {
                start,
                end: extent.end(),
                what: format!("partition {} of volume {}", p.index, p.volume),
            });
        }
        let export_name = format!("{}-p{}", v.name, index.0);
        if self.export_name_taken(&export_name) {
            return Err(LayoutError::NameTaken(export_name));
        }
        Ok(Partition { volume: req.volume, index, extent, export_name })
    }

    pub fn plan_destroy_partition(
        &self,
        volume: VolumeIndex,
        index: PartitionIndex,
    ) -> Result<&Partition, LayoutError> {
        let p = self.partition(volume, index).ok_or(LayoutError::NoSuchPartition(volume, index))?;
        let grants = self.grants.iter().filter(|g| g.volume == volume && g.partition == Some(index)).count();
        if grants > 0 {
            return Err(LayoutError::PartitionInUse(volume, index, grants));
        }
        Ok(p)
    }

    pub fn plan_grant(&self, req: &NewGrant) -> Result<Grant, LayoutError> {
        let v = self.volume(req.volume).ok_or(LayoutError::NoSuchVolume(req.volume))?;
        let export = match req.partition {
            None => v.export_name.clone(),
            Some(p) => {
                self.partition(req.volume, p).ok_or(LayoutError::NoSuchPartition(req.volume, p))?.export_name.clone()
            }
        };
        let index = match req.index {
            Some(i) => GrantIndex(check_index(i.0)?),
            None => self.next_grant_index().ok_or(LayoutError::IndexInUse(MAX_INDEX))?,
        };
        if self.grants.iter().any(|g| g.index == index) {
            return Err(LayoutError::IndexInUse(index.0));
        }
        if self.grants.iter().any(|g| g.volume == req.volume && g.partition == req.partition && g.host == req.host) {
            return Err(LayoutError::DuplicateGrant { host: req.host.to_string(), export });
        }
        // A volume's export overlaps each of its partitions'; partitions of one volume never overlap each other.
        let overlaps = |g: &Grant| {
            g.volume == req.volume && (g.partition.is_none() || req.partition.is_none() || g.partition == req.partition)
        };
        if let Some(g) =
            self.grants.iter().find(|g| g.host != req.host && overlaps(g) && !req.mode.compatible_with(g.mode))
        {
            return Err(LayoutError::ExclusiveGrant {
                host: g.host.to_string(),
                grant: g.index.0,
                volume: req.volume,
                mode: g.mode,
            });
        }
        Ok(Grant { index, volume: req.volume, partition: req.partition, host: req.host, mode: req.mode })
    }

    /// The released extents that `volume` leaves when destroyed (see [`Layout::plan_destroy_volume`]).
    pub fn released_by(&self, volume: &Volume, counter: u32) -> Released {
        Released { extent: volume.extent, cleared: Blocks(0), counter }
    }

    pub fn plan_revoke(&self, index: GrantIndex) -> Result<&Grant, LayoutError> {
        self.grants.iter().find(|g| g.index == index).ok_or(LayoutError::NoSuchGrant(index.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Medium, MediumKind, UnitInfo};

    fn empty(blocks: u64) -> Layout {
        Layout {
            unit: UnitInfo { unit_id: "u".into(), name: "u".into(), block_size: 512, change_counter: 0 },
            media: vec![Medium {
                index: 1,
                path: "m".into(),
                kind: MediumKind::File,
                extent: Extent::new(Lba(0), Blocks(blocks)),
            }],
            volumes: vec![],
            partitions: vec![],
            grants: vec![],
            released: vec![],
        }
    }

    fn with_volume(l: &mut Layout, len: u64) -> Volume {
        let v = l.plan_volume(&NewVolume { len: Blocks(len), ..Default::default() }).unwrap();
        l.volumes.push(v.clone());
        v
    }

    #[test]
    fn volume_defaults_and_refusals() {
        let mut l = empty(100);
        let v = with_volume(&mut l, 40);
        assert_eq!((v.index, v.name.as_str(), v.extent.start), (VolumeIndex(1), "vol1", Lba(0)));
        assert!(matches!(
            l.plan_volume(&NewVolume { len: Blocks(0), ..Default::default() }),
            Err(LayoutError::ZeroLength)
        ));
        assert!(matches!(
            l.plan_volume(&NewVolume { len: Blocks(61), ..Default::default() }),
            Err(LayoutError::NoSpace { largest: Blocks(60), .. })
        ));
        assert!(matches!(
            l.plan_volume(&NewVolume { start: Some(Lba(39)), len: Blocks(2), ..Default::default() }),
            Err(LayoutError::Overlap { .. })
        ));
        assert!(matches!(
            l.plan_volume(&NewVolume { start: Some(Lba(99)), len: Blocks(2), ..Default::default() }),
            Err(LayoutError::OutOfRange { .. })
        ));
        assert!(matches!(
            l.plan_volume(&NewVolume { name: Some("vol1".into()), len: Blocks(1), ..Default::default() }),
            Err(LayoutError::NameTaken(_))
        ));
        assert!(matches!(
            l.plan_volume(&NewVolume { index: Some(VolumeIndex(1)), len: Blocks(1), ..Default::default() }),
            Err(LayoutError::IndexInUse(1))
        ));
    }

    #[test]
    fn grow_needs_room_after() {
        let mut l = empty(100);
        let a = with_volume(&mut l, 10);
        with_volume(&mut l, 10);
        assert!(matches!(l.plan_grow(a.index, Blocks(11)), Err(LayoutError::Overlap { .. })));
        let b = VolumeIndex(2);
        assert_eq!(l.plan_grow(b, Blocks(90)).unwrap().extent.len, Blocks(90));
        assert!(matches!(l.plan_grow(b, Blocks(91)), Err(LayoutError::OutOfRange { .. })));
        assert!(matches!(l.plan_grow(b, Blocks(5)), Err(LayoutError::Shrink(..))));
    }

    #[test]
    fn partitions_and_grants_block_destroy() {
        let mut l = empty(100);
        let v = with_volume(&mut l, 50);
        let p = l.plan_partition(&NewPartition { volume: v.index, index: None, start: None, len: Blocks(10) }).unwrap();
        assert_eq!((p.export_name.as_str(), p.extent.start), ("vol1-p1", Lba(0)));
        l.partitions.push(p.clone());
        assert!(matches!(l.plan_destroy_volume(v.index), Err(LayoutError::VolumeInUse { partitions: 1, .. })));
        assert!(matches!(
            l.plan_partition(&NewPartition { volume: v.index, index: None, start: Some(Lba(45)), len: Blocks(10) }),
            Err(LayoutError::OutOfRange { .. })
        ));
        let g = l
            .plan_grant(&NewGrant {
                index: None,
                volume: v.index,
                partition: Some(p.index),
                host: "127.0.0.5".parse().unwrap(),
                mode: AccessMode::ReadOnly,
            })
            .unwrap();
        l.grants.push(g.clone());
        assert!(matches!(l.plan_destroy_partition(v.index, p.index), Err(LayoutError::PartitionInUse(..))));
        let export = l.export("vol1-p1").unwrap();
        assert_eq!(l.grant_for(&export, "127.0.0.5".parse().unwrap()).map(|g| g.mode), Some(AccessMode::ReadOnly));
        assert!(l.grant_for(&export, "127.0.0.6".parse().unwrap()).is_none());
        assert!(matches!(
            l.plan_grant(&NewGrant { index: None, ..g.clone().into_new() }),
            Err(LayoutError::DuplicateGrant { .. })
        ));
    }

    fn grant(
        l: &mut Layout,
        partition: Option<PartitionIndex>,
        host: &str,
        mode: AccessMode,
    ) -> Result<(), LayoutError> {
        let g = l.plan_grant(&NewGrant {
            index: None,
            volume: VolumeIndex(1),
            partition,
            host: host.parse().unwrap(),
            mode,
        })?;
        l.grants.push(g);
        Ok(())
    }

    #[test]
    fn a_read_write_grant_is_exclusive_unless_shared() {
        use AccessMode::*;
        let mut l = empty(100);
        let v = with_volume(&mut l, 50);
        for _ in 0..2 {
            let p = l.plan_partition(&NewPartition { volume: v.index, index: None, start: None, len: Blocks(10) });
            l.partitions.push(p.unwrap());
        }
        let (p1, p2) = (Some(PartitionIndex(1)), Some(PartitionIndex(2)));
        grant(&mut l, p1, "10.0.0.1", ReadWrite).unwrap();
        // Another host: refused on the same partition and on the whole volume, in any writing mode.
        for (part, mode) in [(p1, ReadWrite), (p1, ReadWriteShared), (None, ReadWrite), (None, ReadWriteShared)] {
            let e = grant(&mut l, part, "10.0.0.2", mode).unwrap_err();
            assert!(matches!(e, LayoutError::ExclusiveGrant { grant: 1, .. }), "{e}");
            assert!(e.to_string().contains("10.0.0.1"), "{e}");
        }
        // Reading is allowed, so is the other partition, and the same host on the whole volume.
        grant(&mut l, p1, "10.0.0.3", ReadOnly).unwrap();
        grant(&mut l, p2, "10.0.0.2", ReadWrite).unwrap();
        grant(&mut l, None, "10.0.0.1", ReadWrite).unwrap_err(); // 10.0.0.2 writes partition 2
                                                                 // Shared writers share with each other only.
        let mut l = empty(100);
        with_volume(&mut l, 50);
        grant(&mut l, None, "10.0.0.1", ReadWriteShared).unwrap();
        grant(&mut l, None, "10.0.0.2", ReadWriteShared).unwrap();
        assert!(grant(&mut l, None, "10.0.0.3", ReadWrite).is_err());
    }

    #[test]
    fn released_space_and_wipes() {
        let mut l = empty(100);
        let v = with_volume(&mut l, 40);
        l.released.push(l.released_by(&v, 1));
        l.volumes.clear();
        assert!(matches!(
            l.plan_volume(&NewVolume { len: Blocks(61), ..Default::default() }),
            Err(LayoutError::NoSpace { largest: Blocks(60), .. })
        ));
        let e = l.plan_volume(&NewVolume { start: Some(Lba(0)), len: Blocks(1), ..Default::default() }).unwrap_err();
        assert!(e.to_string().contains("still being cleared"), "{e}");
        let w = with_volume(&mut l, 10);
        assert_eq!(w.extent.start, Lba(40));
        assert_eq!(l.plan_wipe(w.index).unwrap().clearing, Some(Blocks(0)));
        let g = l
            .plan_grant(&NewGrant {
                index: None,
                volume: w.index,
                partition: None,
                host: "10.0.0.1".parse().unwrap(),
                mode: AccessMode::ReadOnly,
            })
            .unwrap();
        l.grants.push(g);
        assert!(matches!(l.plan_wipe(w.index), Err(LayoutError::WipeWhileGranted { grants: 1, .. })));
    }

    impl Grant {
        fn into_new(self) -> NewGrant {
            NewGrant {
                index: Some(self.index),
                volume: self.volume,
                partition: self.partition,
                host: self.host,
                mode: self.mode,
            }
        }
    }
}
