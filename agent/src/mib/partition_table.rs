//! dvsanPartitionTable: extents inside a volume, created and destroyed by SET on dvsanPartitionRowStatus.

use super::set::{fail, find, layout_status, prepare_rows, row_action, unsigned, Cell, RowAction};
use crate::unit::{Change, Unit};
use dvsan_layout::{Blocks, Layout, LayoutError, Lba, NewPartition, PartitionIndex, VolumeIndex};
use dvsan_mib as mib;
use dvsan_snmp::agent::Table;
use dvsan_snmp::agent::{PreparedSet, SetFailure, SetItem};
use dvsan_snmp::{ErrorStatus, Value};
use std::sync::Arc;

const START: u32 = 2;
const END: u32 = 3;
const LENGTH: u32 = 4;
const EXPORT: u32 = 5;
const ROW_STATUS: u32 = 6;

pub struct PartitionTable(pub Arc<Unit>);

impl Table for PartitionTable {
    fn entry(&self) -> &'static [u32] {
        mib::DVSAN_PARTITION_ENTRY
    }
    fn columns(&self) -> &'static [u32] {
        &[START, END, LENGTH, EXPORT, ROW_STATUS]
    }
    fn rows(&self) -> Vec<Vec<u32>> {
        self.0.layout().partitions.iter().map(|p| vec![p.volume.0, p.index.0]).collect()
    }
    fn cell(&self, column: u32, index: &[u32]) -> Option<Value> {
        let [v, p] = index else { return None };
        let layout = self.0.layout();
        let p = layout.partition(VolumeIndex(*v), PartitionIndex(*p))?;
        Some(match column {
            START => Value::gauge32_saturating(p.extent.start.0),
            END => Value::gauge32_saturating(p.extent.end().0),
            LENGTH => Value::gauge32_saturating(p.extent.len.0),
            EXPORT => Value::string(&p.export_name),
            ROW_STATUS => Value::Integer(mib::row_status::ACTIVE),
            _ => return None,
        })
    }

    fn prepare_set(&self, varbinds: &[SetItem<'_>]) -> Result<Box<dyn PreparedSet>, SetFailure> {
        prepare_rows(&self.0, self.entry(), varbinds, &[START, LENGTH, ROW_STATUS], 2, &|l, index, cells| {
            plan_row(l, VolumeIndex(index[0]), PartitionIndex(index[1]), cells)
        })
    }
}

fn plan_row(
    layout: &Layout,
    volume: VolumeIndex,
    index: PartitionIndex,
    cells: &[Cell<'_>],
) -> Result<Option<(usize, Change)>, SetFailure> {
    let start = find(cells, START).map(|(i, vb)| unsigned(i, vb).map(|v| (i, v))).transpose()?;
    let length = find(cells, LENGTH).map(|(i, vb)| unsigned(i, vb).map(|v| (i, v))).transpose()?;
    let status = find(cells, ROW_STATUS).map(|(i, vb)| row_action(i, vb).map(|a| (i, a))).transpose()?;
    let first = cells[0].0;
    if let Some((i, 0)) = length {
        return Err(fail(i, ErrorStatus::WrongValue));
    }
    if layout.volume(volume).is_none() {
        // A partition of a volume that does not exist cannot be created by any value of this request.
        return match status {
            Some((_, RowAction::Destroy)) => Ok(None),
            _ => Err(fail(status.map_or(first, |(i, _)| i), ErrorStatus::InconsistentName)),
        };
    }
    let existing = layout.partition(volume, index);
    match (existing, status) {
        (Some(_), Some((i, RowAction::CreateAndGo))) => Err(fail(i, ErrorStatus::InconsistentValue)),
        (None, Some((i, RowAction::CreateAndGo))) => {
            let Some((_, len)) = length else { return Err(fail(i, ErrorStatus::InconsistentValue)) };
            let req = NewPartition {
                volume,
                index: Some(index),
                start: start.map(|(_, s)| Lba(u64::from(s))),
                len: Blocks(u64::from(len)),
            };
            let p = layout.plan_partition(&req).map_err(|e| {
                let at = match e {
                    LayoutError::Overlap { .. } | LayoutError::OutOfRange { .. } => start.map(|(i, _)| i),
                    LayoutError::NoSpace { .. } => length.map(|(i, _)| i),
                    _ => None,
                };
                fail(at.unwrap_or(i), layout_status(&e))
            })?;
            Ok(Some((i, Change::CreatePartition(p))))
        }
        (Some(_), Some((i, RowAction::Destroy))) => {
            let p = layout.plan_destroy_partition(volume, index).map_err(|e| fail(i, layout_status(&e)))?;
            Ok(Some((i, Change::DestroyPartition(p.clone()))))
        }
        (None, Some((_, RowAction::Destroy))) => Ok(None),
        (None, _) => Err(fail(status.map_or(first, |(i, _)| i), ErrorStatus::InconsistentName)),
        (Some(p), _) => {
            // Partitions do not move or resize: the same values are accepted, others are inconsistent.
            if let Some((i, s)) = start {
                if u64::from(s) != p.extent.start.0 {
                    return Err(fail(i, ErrorStatus::InconsistentValue));
                }
            }
            if let Some((i, l)) = length {
                if u64::from(l) != p.extent.len.0 {
                    return Err(fail(i, ErrorStatus::InconsistentValue));
                }
            }
            Ok(None)
        }
    }
}
