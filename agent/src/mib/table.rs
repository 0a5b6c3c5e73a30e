//! Conceptual tables and scalar groups on top of the engine's `MibHandler`.
//!
//! A table implementation says which rows exist (as OID index suffixes) and what each cell holds; this module
//! turns that into exact GETs and column-major GETNEXT order, so the five DVSAN tables and the ifTable contain
//! no OID arithmetic of their own.

use dvsan_snmp::agent::{GetResult, MibHandler, PreparedSet, SetFailure, SetItem};
use dvsan_snmp::{ErrorStatus, Oid, Value, VarBind};

/// One conceptual table: `entry.column.index`.
pub trait Table: Send + Sync {
    /// The entry OID (…Table.1).
    fn entry(&self) -> &'static [u32];
    /// Accessible column numbers, ascending.
    fn columns(&self) -> &'static [u32];
    /// Every row's index suffix, ascending.
    fn rows(&self) -> Vec<Vec<u32>>;
    /// The value of one cell, or None if the row does not exist.
    fn cell(&self, column: u32, index: &[u32]) -> Option<Value>;
    /// SET phase 1 for this table; read-only tables keep the default.
    fn prepare_set(&self, varbinds: &[SetItem<'_>]) -> Result<Box<dyn PreparedSet>, SetFailure> {
        Err(SetFailure::new(varbinds.first().map_or(0, |(i, _)| *i), ErrorStatus::NotWritable))
    }
}

/// Splits `oid` into (column, index) relative to a table entry.
pub fn cell_of<'a>(entry: &[u32], oid: &'a Oid) -> Option<(u32, &'a [u32])> {
    let rest = oid.suffix_after(entry)?;
    let (&column, index) = rest.split_first()?;
    Some((column, index))
}

/// Serves a [`Table`] as a MIB subtree rooted at its entry OID.
pub struct TableHandler<T>(pub T);

impl<T: Table> MibHandler for TableHandler<T> {
    fn get(&self, oid: &Oid) -> GetResult {
        let t = &self.0;
        match cell_of(t.entry(), oid) {
            Some((col, index)) if t.columns().contains(&col) => match t.cell(col, index) {
                Some(v) => GetResult::Value(v),
                None => GetResult::NoSuchInstance,
            },
            _ => GetResult::NoSuchObject,
        }
    }

    fn get_next(&self, oid: &Oid) -> Option<VarBind> {
        let t = &self.0;
        let entry = t.entry();
        // Where to start: (column, index strictly after which to look). Before the table: first cell.
        let (start_col, after): (u32, Option<Vec<u32>>) = if let Some(rest) = oid.suffix_after(entry) {
            match rest.split_first() {
                None => (0, None),
                Some((&c, idx)) => (c, Some(idx.to_vec())),
            }
        } else if oid.as_slice() < entry {
            (0, None)
        } else {
            return None;
        };
        let rows = t.rows();
        for &col in t.columns().iter().filter(|&&c| c >= start_col) {
            let first = match (&after, col == start_col) {
                (Some(idx), true) => rows.partition_point(|r| r.as_slice() <= idx.as_slice()),
                _ => 0,
            };
            for row in &rows[first..] {
                if let Some(value) = t.cell(col, row) {
                    let mut o = Oid::from_slice(entry);
                    o.push(col);
                    for &a in row {
                        o.push(a);
                    }
                    return Some(VarBind::new(o, value));
                }
            }
        }
        None
    }

    fn prepare_set(&self, varbinds: &[SetItem<'_>]) -> Result<Box<dyn PreparedSet>, SetFailure> {
        self.0.prepare_set(varbinds)
    }
}

/// A group of scalars `group.n.0`.
pub trait Scalars: Send + Sync {
    fn group(&self) -> &'static [u32];
    /// Scalar numbers, ascending.
    fn members(&self) -> &'static [u32];
    fn value(&self, member: u32) -> Option<Value>;
}

pub struct ScalarHandler<S>(pub S);

impl<S: Scalars> MibHandler for ScalarHandler<S> {
    fn get(&self, oid: &Oid) -> GetResult {
        let s = &self.0;
        match oid.suffix_after(s.group()) {
            Some(&[m, 0]) if s.members().contains(&m) => match s.value(m) {
                Some(v) => GetResult::Value(v),
                None => GetResult::NoSuchInstance,
            },
            Some(&[m, ..]) if s.members().contains(&m) => GetResult::NoSuchInstance,
            _ => GetResult::NoSuchObject,
        }
    }

    fn get_next(&self, oid: &Oid) -> Option<VarBind> {
        let s = &self.0;
        let group = s.group();
        for &m in s.members() {
            let mut inst = Oid::from_slice(group);
            inst.push(m);
            inst.push(0);
            if inst > *oid {
                if let Some(v) = s.value(m) {
                    return Some(VarBind::new(inst, v));
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Two;
    impl Table for Two {
        fn entry(&self) -> &'static [u32] {
            &[1, 9, 1]
        }
        fn columns(&self) -> &'static [u32] {
            &[2, 3]
        }
        fn rows(&self) -> Vec<Vec<u32>> {
            vec![vec![1], vec![5]]
        }
        fn cell(&self, column: u32, index: &[u32]) -> Option<Value> {
            matches!(index, [1] | [5]).then(|| Value::Gauge32(column * 10 + index[0]))
        }
    }

    fn next(h: &TableHandler<Two>, oid: &[u32]) -> Option<Vec<u32>> {
        h.get_next(&Oid::from_slice(oid)).map(|vb| vb.oid.as_slice().to_vec())
    }

    #[test]
    fn column_major_walk() {
        let h = TableHandler(Two);
        assert_eq!(next(&h, &[1]), Some(vec![1, 9, 1, 2, 1]));
        assert_eq!(next(&h, &[1, 9, 1, 2, 1]), Some(vec![1, 9, 1, 2, 5]));
        assert_eq!(next(&h, &[1, 9, 1, 2, 5]), Some(vec![1, 9, 1, 3, 1]));
        assert_eq!(next(&h, &[1, 9, 1, 2, 3, 7]), Some(vec![1, 9, 1, 2, 5]));
        assert_eq!(next(&h, &[1, 9, 1, 3, 5]), None);
        assert_eq!(next(&h, &[2]), None);
        assert_eq!(h.get(&Oid::from_slice(&[1, 9, 1, 3, 5])), GetResult::Value(Value::Gauge32(35)));
        assert_eq!(h.get(&Oid::from_slice(&[1, 9, 1, 3, 4])), GetResult::NoSuchInstance);
        assert_eq!(h.get(&Oid::from_slice(&[1, 9, 1, 4, 1])), GetResult::NoSuchObject);
    }
}
