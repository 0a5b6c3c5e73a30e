//! Mapping byte ranges of the unit's address space onto its media.
//!
//! The address space is the media concatenated, so one request can straddle a boundary between two media. The
//! data path asks for the segments of a range and does one I/O per segment; nothing else needs to know where one
//! medium ends.

use crate::model::Medium;

/// One piece of an I/O: `len` bytes at byte `offset` of medium number `medium` (position in the media list), which
/// is `buf_offset` bytes into the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub medium: usize,
    pub offset: u64,
    pub len: u64,
    pub buf_offset: u64,
}

/// Byte-level view of the media, in address order.
#[derive(Debug, Clone)]
pub struct MediaMap {
    /// (first byte in the address space, byte length) per medium, in order.
    ranges: Vec<(u64, u64)>,
}

impl MediaMap {
    pub fn new(media: &[Medium], block_size: u32) -> Self {
        let bs = u64::from(block_size);
        let mut ranges: Vec<(u64, u64)> = media.iter().map(|m| (m.extent.start.0 * bs, m.extent.len.0 * bs)).collect();
        ranges.sort_by_key(|r| r.0);
        MediaMap { ranges }
    }

    /// Total bytes of the address space.
    pub fn len(&self) -> u64 {
        self.ranges.last().map(|(s, l)| s + l).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The segments covering `len` bytes from absolute byte `start`, or None if the range runs past the end.
    pub fn segments(&self, start: u64, len: u64) -> Option<impl Iterator<Item = Segment> + '_> {
        let end = start.checked_add(len)?;
        if end > self.len() {
            return None;
        }
        // First medium whose range ends after `start`.
        let first = self.ranges.partition_point(|(s, l)| s + l <= start);
        Some(self.ranges[first..].iter().enumerate().map_while(move |(i, &(ms, ml))| {
            let seg_start = start.max(ms);
            let seg_end = end.min(ms + ml);
            (seg_start < seg_end).then(|| Segment {
                medium: first + i,
                offset: seg_start - ms,
                len: seg_end - seg_start,
                buf_offset: seg_start - start,
            })
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extent::{Blocks, Extent, Lba};
    use crate::model::MediumKind;

    fn map() -> MediaMap {
        let m = |i, s, l| Medium {
            index: i,
            path: format!("m{i}").into(),
            kind: MediumKind::File,
            extent: Extent::new(Lba(s), Blocks(l)),
        };
        MediaMap::new(&[m(1, 0, 4), m(2, 4, 2)], 512)
    }

    #[test]
    fn inside_one_medium() {
        let segs: Vec<_> = map().segments(512, 1024).unwrap().collect();
        assert_eq!(segs, vec![Segment { medium: 0, offset: 512, len: 1024, buf_offset: 0 }]);
    }

    #[test]
    fn across_a_boundary() {
        let segs: Vec<_> = map().segments(1536, 1024).unwrap().collect();
        assert_eq!(
            segs,
            vec![
                Segment { medium: 0, offset: 1536, len: 512, buf_offset: 0 },
                Segment { medium: 1, offset: 0, len: 512, buf_offset: 512 },
            ]
        );
    }

    #[test]
    fn past_the_end_is_refused() {
        assert!(map().segments(3 * 1024 - 1, 2).is_none());
        assert!(map().segments(u64::MAX, 2).is_none());
        assert_eq!(map().segments(3 * 1024, 0).unwrap().count(), 0);
    }
}
