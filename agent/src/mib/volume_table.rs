//! dvsanVolumeTable: the unit's volumes, created, grown and destroyed by SET on dvsanVolumeRowStatus, and wiped
//! by writing 0 to dvsanVolumeClearProgress (the unit then clears the volume in the background, see
//! `crate::clearing`, and the column shows how far it got).

use super::set::{display_string, fail, find, layout_status, prepare_rows, row_action, unsigned, Cell, RowAction};
use crate::unit::{Change, Unit};
use dvsan_layout::{Blocks, Layout, LayoutError, Lba, NewVolume, VolumeIndex};
use dvsan_mib as mib;
use dvsan_snmp::agent::Table;
use dvsan_snmp::agent::{PreparedSet, SetFailure, SetItem};
use dvsan_snmp::{ErrorStatus, Value};
use std::sync::Arc;

const NAME: u32 = 2;
const START: u32 = 3;
const END: u32 = 4;
const LENGTH: u32 = 5;
const STATE: u32 = 6;
const EXPORT: u32 = 7;
const ROW_STATUS: u32 = 8;
const CLEAR_PROGRESS: u32 = 9;

pub struct VolumeTable(pub Arc<Unit>);

impl Table for VolumeTable {
    fn entry(&self) -> &'static [u32] {
        mib::DVSAN_VOLUME_ENTRY
    }
    fn columns(&self) -> &'static [u32] {
        &[NAME, START, END, LENGTH, STATE, EXPORT, ROW_STATUS, CLEAR_PROGRESS]
    }
    fn rows(&self) -> Vec<Vec<u32>> {
        self.0.layout().volumes.iter().map(|v| vec![v.index.0]).collect()
    }
    fn cell(&self, column: u32, index: &[u32]) -> Option<Value> {
        let [i] = index else { return None };
        let layout = self.0.layout();
        let v = layout.volume(VolumeIndex(*i))?;
        Some(match column {
            NAME => Value::string(&v.name),
            START => Value::gauge32_saturating(v.extent.start.0),
            END => Value::gauge32_saturating(v.extent.end().0),
            LENGTH => Value::gauge32_saturating(v.extent.len.0),
            STATE => Value::Integer(if v.clearing.is_some() {
                mib::dvsan_volume_state::CLEARING
            } else if self.0.link().up {
                mib::dvsan_volume_state::AVAILABLE
            } else {
                mib::dvsan_volume_state::UNAVAILABLE
            }),
            CLEAR_PROGRESS => Value::Gauge32(self.0.clear_percent(v)),
            EXPORT => Value::string(&v.export_name),
            ROW_STATUS => Value::Integer(mib::row_status::ACTIVE),
            _ => return None,
        })
    }

    fn prepare_set(&self, varbinds: &[SetItem<'_>]) -> Result<Box<dyn PreparedSet>, SetFailure> {
        let writable = [NAME, START, LENGTH, ROW_STATUS, CLEAR_PROGRESS];
        prepare_rows(&self.0, self.entry(), varbinds, &writable, 1, &|l, index, cells| {
            plan_row(l, VolumeIndex(index[0]), cells)
        })
    }
}

fn plan_row(layout: &Layout, index: VolumeIndex, cells: &[Cell<'_>]) -> Result<Option<(usize, Change)>, SetFailure> {
    // Decode every cell first, so type errors win over layout errors as RFC 3416 orders them.
    let name = find(cells, NAME).map(|(i, vb)| display_string(i, vb, 1, 64).map(|v| (i, v))).transpose()?;
    let start = find(cells, START).map(|(i, vb)| unsigned(i, vb).map(|v| (i, v))).transpose()?;
    let length = find(cells, LENGTH).map(|(i, vb)| unsigned(i, vb).map(|v| (i, v))).transpose()?;
    let status = find(cells, ROW_STATUS).map(|(i, vb)| row_action(i, vb).map(|a| (i, a))).transpose()?;
    let wipe = find(cells, CLEAR_PROGRESS).map(|(i, vb)| unsigned(i, vb).map(|v| (i, v))).transpose()?;
    // Writing 0 to dvsanVolumeClearProgress asks for a wipe; other values are not requests.
    if let Some((i, p)) = wipe {
        if p != 0 {
            return Err(fail(i, ErrorStatus::WrongValue));
        }
    }
    let first = cells[0].0;
    if let Some((i, 0)) = length {
        return Err(fail(i, ErrorStatus::WrongValue));
    }
    let existing = layout.volume(index);
    match (existing, status) {
        (Some(_), Some((i, RowAction::CreateAndGo))) => Err(fail(i, ErrorStatus::InconsistentValue)),
        (None, Some((i, RowAction::CreateAndGo))) => {
            let Some((_, len)) = length else { return Err(fail(i, ErrorStatus::InconsistentValue)) };
            let req = NewVolume {
                index: Some(index),
                name: name.as_ref().map(|(_, n)| n.clone()),
                start: start.map(|(_, s)| Lba(u64::from(s))),
                len: Blocks(u64::from(len)),
            };
            let v = layout.plan_volume(&req).map_err(|e| {
                let at = match e {
                    LayoutError::NameTaken(_) | LayoutError::BadName(_) => name.as_ref().map(|(i, _)| *i),
                    LayoutError::Overlap { .. } | LayoutError::OutOfRange { .. } => start.map(|(i, _)| i),
                    LayoutError::NoSpace { .. } => length.map(|(i, _)| i),
                    _ => None,
                };
                fail(at.unwrap_or(i), layout_status(&e))
            })?;
            Ok(Some((i, Change::CreateVolume(v))))
        }
        (Some(_), Some((i, RowAction::Destroy))) => {
            let v = layout.plan_destroy_volume(index).map_err(|e| fail(i, layout_status(&e)))?;
            Ok(Some((i, Change::DestroyVolume(v.clone()))))
        }
        (None, Some((_, RowAction::Destroy))) => Ok(None),
        (None, _) => Err(fail(status.map_or(first, |(i, _)| i), ErrorStatus::InconsistentName)),
        (Some(_), None) if wipe.is_some() && name.is_none() && start.is_none() && length.is_none() => {
            let Some((i, _)) = wipe else { return Ok(None) };
            let wiped = layout.plan_wipe(index).map_err(|e| fail(i, layout_status(&e)))?;
            Ok(Some((i, Change::WipeVolume(wiped))))
        }
        (_, _) if wipe.is_some() => Err(fail(wipe.map_or(first, |(i, _)| i), ErrorStatus::InconsistentValue)),
        (Some(v), _) => {
            // Modify an active row: only growing the length changes anything.
            if let Some((i, n)) = &name {
                if *n != v.name {
                    return Err(fail(*i, ErrorStatus::InconsistentValue));
                }
            }
            if let Some((i, s)) = start {
                if u64::from(s) != v.extent.start.0 {
                    return Err(fail(i, ErrorStatus::InconsistentValue));
                }
            }
            match length {
                Some((i, len)) if u64::from(len) != v.extent.len.0 => {
                    let grown =
                        layout.plan_grow(index, Blocks(u64::from(len))).map_err(|e| fail(i, layout_status(&e)))?;
                    Ok(Some((i, Change::GrowVolume { volume: grown })))
                }
                _ => Ok(None),
            }
        }
    }
}
