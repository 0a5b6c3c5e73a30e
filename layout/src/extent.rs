//! Block addresses and extents of a unit's address space.
//!
//! Newtypes keep LBAs and block counts from being mixed with byte offsets: every conversion to bytes goes
//! through the unit's block size explicitly.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A logical block address in a unit's address space (media concatenated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Lba(pub u64);

/// A number of blocks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Blocks(pub u64);

impl fmt::Display for Lba {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for Blocks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A non-empty run of blocks `start ..= end()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Extent {
    pub start: Lba,
    pub len: Blocks,
}

impl Extent {
    pub fn new(start: Lba, len: Blocks) -> Self {
        Extent { start, len }
    }

    /// The last block of the extent (inclusive), as the MIB's end LBA columns show it.
    pub fn end(&self) -> Lba {
        Lba(self.start.0 + self.len.0.saturating_sub(1))
    }

    /// One past the last block.
    pub fn end_exclusive(&self) -> u64 {
        self.start.0 + self.len.0
    }

    pub fn overlaps(&self, other: &Extent) -> bool {
        self.start.0 < other.end_exclusive() && other.start.0 < self.end_exclusive()
    }

    pub fn contains(&self, other: &Extent) -> bool {
        self.start.0 <= other.start.0 && other.end_exclusive() <= self.end_exclusive()
    }

    /// Byte length for a block size.
    pub fn bytes(&self, block_size: u32) -> u64 {
        self.len.0 * u64::from(block_size)
    }
}

/// The gaps of `whole` not covered by `used` (which need not be sorted), in address order.
pub(crate) fn gaps(whole: Extent, used: &[Extent]) -> Vec<Extent> {
    let mut sorted: Vec<Extent> = used.iter().copied().filter(|e| e.len.0 > 0).collect();
    sorted.sort_by_key(|e| e.start);
    let mut out = Vec::new();
    let mut cursor = whole.start.0;
    for e in sorted {
        if e.start.0 > cursor {
            out.push(Extent::new(Lba(cursor), Blocks(e.start.0 - cursor)));
        }
        cursor = cursor.max(e.end_exclusive());
    }
    if whole.end_exclusive() > cursor {
        out.push(Extent::new(Lba(cursor), Blocks(whole.end_exclusive() - cursor)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_is_inclusive() {
        let e = Extent::new(Lba(10), Blocks(5));
        assert_eq!(e.end(), Lba(14));
        assert_eq!(e.end_exclusive(), 15);
        assert_eq!(e.bytes(4096), 5 * 4096);
    }

    #[test]
    fn overlap_and_containment() {
        let a = Extent::new(Lba(0), Blocks(10));
        let b = Extent::new(Lba(10), Blocks(10));
        let c = Extent::new(Lba(5), Blocks(2));
        assert!(!a.overlaps(&b));
        assert!(a.overlaps(&c));
        assert!(a.contains(&c));
        assert!(!b.contains(&c));
    }

    #[test]
    fn gaps_between_used_extents() {
        let whole = Extent::new(Lba(0), Blocks(100));
        let used = [Extent::new(Lba(50), Blocks(10)), Extent::new(Lba(0), Blocks(10))];
        assert_eq!(gaps(whole, &used), vec![Extent::new(Lba(10), Blocks(40)), Extent::new(Lba(60), Blocks(40))]);
        assert_eq!(gaps(whole, &[]), vec![whole]);
        assert!(gaps(whole, &[whole]).is_empty());
    }
}
