//! dvsanMediaTable: the backing media and where each sits in the unit's address space (read-only).

use crate::unit::Unit;
use dvsan_layout::MediumKind;
use dvsan_mib as mib;
use dvsan_snmp::agent::Table;
use dvsan_snmp::Value;
use std::sync::Arc;

pub struct MediaTable(pub Arc<Unit>);

impl Table for MediaTable {
    fn entry(&self) -> &'static [u32] {
        mib::DVSAN_MEDIA_ENTRY
    }
    fn columns(&self) -> &'static [u32] {
        &[2, 3, 4, 5]
    }
    fn rows(&self) -> Vec<Vec<u32>> {
        self.0.layout().media.iter().map(|m| vec![m.index]).collect()
    }
    fn cell(&self, column: u32, index: &[u32]) -> Option<Value> {
        let [i] = index else { return None };
        let layout = self.0.layout();
        let m = layout.media.iter().find(|m| m.index == *i)?;
        Some(match column {
            2 => Value::string(&m.path.to_string_lossy()),
            3 => Value::Integer(match m.kind {
                MediumKind::File => mib::dvsan_media_kind::FILE,
                MediumKind::BlockDevice => mib::dvsan_media_kind::BLOCK_DEVICE,
            }),
            4 => Value::gauge32_saturating(m.extent.len.0),
            5 => Value::gauge32_saturating(m.extent.start.0),
            _ => return None,
        })
    }
}
