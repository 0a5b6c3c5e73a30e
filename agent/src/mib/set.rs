//! Shared pieces of SNMP SET handling for the read-create tables: decoding cell values with the right error,
//! RowStatus, grouping a PDU's varbinds by row, and the prepared change that commits through the unit store.
//!
//! Error choice follows RFC 3416 §4.2.5 and RFC 2579: wrong ASN.1 type → wrongType, a string outside its SIZE →
//! wrongLength, a value outside the SYNTAX range → wrongValue, a value that conflicts with the layout →
//! inconsistentValue, a cell of a row that cannot be created by this request → inconsistentName, an index that
//! can never exist → noCreation, a read-only column → notWritable.

use crate::unit::{Change, Unit};
use dvsan_layout::{Layout, LayoutError};
use dvsan_snmp::agent::{PreparedSet, SetFailure, SetItem, Undo, UndoFailed};
use dvsan_snmp::{ErrorStatus, Value, VarBind};
use std::collections::BTreeMap;
use std::sync::Arc;

pub fn fail(index: usize, status: ErrorStatus) -> SetFailure {
    SetFailure::new(index, status)
}

/// The RowStatus values we act on (RFC 2579). createAndWait and notInService are not supported: wrongValue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowAction {
    Active,
    CreateAndGo,
    Destroy,
}

pub fn row_action(i: usize, vb: &VarBind) -> Result<RowAction, SetFailure> {
    match vb.value {
        Value::Integer(1) => Ok(RowAction::Active),
        Value::Integer(4) => Ok(RowAction::CreateAndGo),
        Value::Integer(6) => Ok(RowAction::Destroy),
        Value::Integer(_) => Err(fail(i, ErrorStatus::WrongValue)),
        _ => Err(fail(i, ErrorStatus::WrongType)),
    }
}

/// Unsigned32 / Gauge32 cell.
pub fn unsigned(i: usize, vb: &VarBind) -> Result<u32, SetFailure> {
    match vb.value {
        Value::Gauge32(v) => Ok(v),
        _ => Err(fail(i, ErrorStatus::WrongType)),
    }
}

/// INTEGER cell whose value must be in `allowed`.
pub fn enumerated(i: usize, vb: &VarBind, allowed: &[i32]) -> Result<i32, SetFailure> {
    match vb.value {
        Value::Integer(v) if allowed.contains(&v) => Ok(v),
        Value::Integer(_) => Err(fail(i, ErrorStatus::WrongValue)),
        _ => Err(fail(i, ErrorStatus::WrongType)),
    }
}

/// DisplayString cell of SIZE(min..max).
pub fn display_string(i: usize, vb: &VarBind, min: usize, max: usize) -> Result<String, SetFailure> {
    match &vb.value {
        Value::OctetString(b) if (min..=max).contains(&b.len()) => {
            String::from_utf8(b.clone()).map_err(|_| fail(i, ErrorStatus::WrongValue))
        }
        Value::OctetString(_) => Err(fail(i, ErrorStatus::WrongLength)),
        _ => Err(fail(i, ErrorStatus::WrongType)),
    }
}

pub fn octets(i: usize, vb: &VarBind, max: usize) -> Result<Vec<u8>, SetFailure> {
    match &vb.value {
        Value::OctetString(b) if b.len() <= max => Ok(b.clone()),
        Value::OctetString(_) => Err(fail(i, ErrorStatus::WrongLength)),
        _ => Err(fail(i, ErrorStatus::WrongType)),
    }
}

/// How a refused layout change is reported.
pub fn layout_status(e: &LayoutError) -> ErrorStatus {
    match e {
        LayoutError::ZeroLength | LayoutError::BadName(_) => ErrorStatus::WrongValue,
        LayoutError::BadIndex(_) => ErrorStatus::NoCreation,
        LayoutError::Store(_) | LayoutError::Migration(_) | LayoutError::Io(_) => ErrorStatus::ResourceUnavailable,
        _ => ErrorStatus::InconsistentValue,
    }
}

/// One cell of a SET: PDU position, column, binding.
pub type Cell<'a> = (usize, u32, &'a VarBind);

/// Group a table's varbinds by row index. `writable` columns may be set; other known columns are notWritable;
/// an index of the wrong shape or out of 1..=2^31-1 (0 allowed where `zero_ok`) can never exist: noCreation.
pub fn group_rows<'a>(
    entry: &[u32],
    varbinds: &[SetItem<'a>],
    writable: &[u32],
    index_len: usize,
) -> Result<BTreeMap<Vec<u32>, Vec<Cell<'a>>>, SetFailure> {
    let mut rows: BTreeMap<Vec<u32>, Vec<Cell<'a>>> = BTreeMap::new();
    for &(i, vb) in varbinds {
        let Some((&column, index)) = vb.oid.suffix_after(entry).and_then(|rest| rest.split_first()) else {
            return Err(fail(i, ErrorStatus::NotWritable));
        };
        if !writable.contains(&column) {
            return Err(fail(i, ErrorStatus::NotWritable));
        }
        if index.len() != index_len || index.iter().any(|&a| a == 0 || a > i32::MAX as u32) {
            return Err(fail(i, ErrorStatus::NoCreation));
        }
        rows.entry(index.to_vec()).or_default().push((i, column, vb));
    }
    Ok(rows)
}

/// The cell for `column` in a row's cells, if the SET names it.
pub fn find<'a>(cells: &[Cell<'a>], column: u32) -> Option<(usize, &'a VarBind)> {
    cells.iter().find(|(_, c, _)| *c == column).map(|&(i, _, vb)| (i, vb))
}

/// Plan one row of a SET against the layout as the earlier rows of the same request leave it.
pub type PlanRow<'f> = dyn Fn(&Layout, &[u32], &[Cell<'_>]) -> Result<Option<(usize, Change)>, SetFailure> + 'f;

/// SET phase 1 for a read-create table: group the varbinds by row, plan each row on a copy of the layout that
/// already holds the earlier rows' changes, and stage the result for commit.
pub fn prepare_rows(
    unit: &Arc<Unit>,
    entry: &[u32],
    varbinds: &[SetItem<'_>],
    writable: &[u32],
    index_len: usize,
    plan: &PlanRow<'_>,
) -> Result<Box<dyn PreparedSet>, SetFailure> {
    let rows = group_rows(entry, varbinds, writable, index_len)?;
    let mut layout = (*unit.layout()).clone();
    let mut changes = Vec::new();
    for (index, cells) in rows {
        if let Some(change) = plan(&layout, &index, &cells)? {
            change.1.apply_to(&mut layout);
            changes.push(change);
        }
    }
    Ok(Box::new(PreparedChanges { unit: unit.clone(), changes }))
}

/// A checked SET: the layout changes it makes, each with the PDU position it came from.
pub struct PreparedChanges {
    pub unit: Arc<Unit>,
    pub changes: Vec<(usize, Change)>,
}

impl PreparedSet for PreparedChanges {
    fn commit(self: Box<Self>) -> Result<Box<dyn Undo>, SetFailure> {
        let changes: Vec<Change> = self.changes.iter().map(|(_, c)| c.clone()).collect();
        match self.unit.apply(&changes) {
            Ok(()) => Ok(Box::new(ChangesUndo { unit: self.unit, changes })),
            Err((pos, e)) => {
                tracing::warn!(error = %e, "SET commit failed; earlier changes of this request undone");
                let at = self.changes.get(pos).map_or(0, |(i, _)| *i);
                Err(fail(at, ErrorStatus::CommitFailed))
            }
        }
    }
}

struct ChangesUndo {
    unit: Arc<Unit>,
    changes: Vec<Change>,
}

impl Undo for ChangesUndo {
    fn undo(self: Box<Self>) -> Result<(), UndoFailed> {
        if self.unit.undo(&self.changes) {
            Ok(())
        } else {
            Err(UndoFailed)
        }
    }
}
