//! Table and scalar-group handlers from a description of rows and cells.
//!
//! A MIB table implementation says which rows exist (as OID index suffixes) and what each cell holds; a scalar
//! group says what each member holds. [`TableHandler`] and [`ScalarHandler`] turn those into a [`MibHandler`]
//! using [`TableLayout`] and [`ScalarLayout`] for the naming and GETNEXT order, so implementations contain no OID
//! arithmetic. SETs are delegated to the implementation.

use crate::agent::handler::{GetResult, MibHandler, PreparedSet, SetFailure, SetItem};
use crate::agent::table::{ScalarLayout, TableLayout};
use crate::oid::Oid;
use crate::pdu::{ErrorStatus, VarBind};
use crate::value::Value;

/// One conceptual table: cells `entry.column.index`.
pub trait Table: Send + Sync {
    /// The entry OID (…Table.1).
    fn entry(&self) -> &'static [u32];
    /// Accessible column numbers.
    fn columns(&self) -> &'static [u32];
    /// Every row's index suffix, ascending.
    fn rows(&self) -> Vec<Vec<u32>>;
    /// The value of one cell, or None if the row does not exist (or has no such cell).
    fn cell(&self, column: u32, index: &[u32]) -> Option<Value>;
    /// SET phase 1 for this table; read-only tables keep the default (notWritable).
    fn prepare_set(&self, varbinds: &[SetItem<'_>]) -> Result<Box<dyn PreparedSet>, SetFailure> {
        Err(SetFailure::new(varbinds.first().map_or(0, |(i, _)| *i), ErrorStatus::NotWritable))
    }
}

/// Serves a [`Table`]; register it at the table's entry OID.
pub struct TableHandler<T> {
    table: T,
    layout: TableLayout,
}

impl<T: Table> TableHandler<T> {
    pub fn new(table: T) -> Self {
        let layout = TableLayout::new(Oid::from_slice(table.entry()), table.columns());
        TableHandler { table, layout }
    }

    /// The entry OID to register the handler at.
    pub fn prefix(&self) -> Oid {
        self.layout.entry().clone()
    }
}

impl<T: Table> MibHandler for TableHandler<T> {
    fn get(&self, oid: &Oid) -> GetResult {
        match self.layout.lookup(oid) {
            Ok((column, index)) => match self.table.cell(column, index) {
                Some(v) => GetResult::Value(v),
                None => GetResult::NoSuchInstance,
            },
            Err(e) => e,
        }
    }

    fn get_next(&self, oid: &Oid) -> Option<VarBind> {
        let rows = self.table.rows();
        let mut value = None;
        let (column, index) = self.layout.next(oid, |column, after| {
            let first = after.map_or(0, |a| rows.partition_point(|r| r.as_slice() <= a));
            rows[first..].iter().find_map(|row| {
                value = Some(self.table.cell(column, row)?);
                Some(Oid::from_slice(row))
            })
        })?;
        Some(VarBind::new(self.layout.instance(column, index.as_slice()), value?))
    }

    fn prepare_set(&self, varbinds: &[SetItem<'_>]) -> Result<Box<dyn PreparedSet>, SetFailure> {
        self.table.prepare_set(varbinds)
    }
}

/// A group of scalars `group.member.0`.
pub trait Scalars: Send + Sync {
    fn group(&self) -> &'static [u32];
    /// The member arcs.
    fn members(&self) -> &'static [u32];
    /// A member's value, or None when it has none now.
    fn value(&self, member: u32) -> Option<Value>;
}

/// Serves a [`Scalars`] group (read-only); register it at the group OID.
pub struct ScalarHandler<S> {
    scalars: S,
    layout: ScalarLayout,
}

impl<S: Scalars> ScalarHandler<S> {
    pub fn new(scalars: S) -> Self {
        let layout = ScalarLayout::new(Oid::from_slice(scalars.group()), scalars.members());
        ScalarHandler { scalars, layout }
    }

    /// The group OID to register the handler at.
    pub fn prefix(&self) -> Oid {
        self.layout.group().clone()
    }
}

impl<S: Scalars> MibHandler for ScalarHandler<S> {
    fn get(&self, oid: &Oid) -> GetResult {
        match self.layout.lookup(oid) {
            Ok(member) => self.scalars.value(member).map_or(GetResult::NoSuchInstance, GetResult::Value),
            Err(e) => e,
        }
    }

    fn get_next(&self, oid: &Oid) -> Option<VarBind> {
        let mut from = oid.clone();
        // Members without a value are skipped: continue after their instance.
        while let Some((member, instance)) = self.layout.next(&from) {
            if let Some(v) = self.scalars.value(member) {
                return Some(VarBind::new(instance, v));
            }
            from = instance;
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
            // Column 3 has no value in row 1, so walks skip that cell.
            match (column, index) {
                (3, [1]) => None,
                (_, [1] | [5]) => Some(Value::Gauge32(column * 10 + index[0])),
                _ => None,
            }
        }
    }

    fn next(h: &TableHandler<Two>, oid: &[u32]) -> Option<Vec<u32>> {
        h.get_next(&Oid::from_slice(oid)).map(|vb| vb.oid.as_slice().to_vec())
    }

    #[test]
    fn column_major_walk_skips_empty_cells() {
        let h = TableHandler::new(Two);
        assert_eq!(next(&h, &[1]), Some(vec![1, 9, 1, 2, 1]));
        assert_eq!(next(&h, &[1, 9, 1, 2, 1]), Some(vec![1, 9, 1, 2, 5]));
        assert_eq!(next(&h, &[1, 9, 1, 2, 5]), Some(vec![1, 9, 1, 3, 5]));
        assert_eq!(next(&h, &[1, 9, 1, 2, 3, 7]), Some(vec![1, 9, 1, 2, 5]));
        assert_eq!(next(&h, &[1, 9, 1, 3, 5]), None);
        assert_eq!(next(&h, &[2]), None);
        assert_eq!(h.get(&Oid::from_slice(&[1, 9, 1, 3, 5])), GetResult::Value(Value::Gauge32(35)));
        assert_eq!(h.get(&Oid::from_slice(&[1, 9, 1, 3, 4])), GetResult::NoSuchInstance);
        assert_eq!(h.get(&Oid::from_slice(&[1, 9, 1, 4, 1])), GetResult::NoSuchObject);
    }

    struct Group;
    impl Scalars for Group {
        fn group(&self) -> &'static [u32] {
            &[1, 8]
        }
        fn members(&self) -> &'static [u32] {
            &[1, 2, 3]
        }
        fn value(&self, member: u32) -> Option<Value> {
            (member != 2).then_some(Value::Integer(member as i32))
        }
    }

    #[test]
    fn scalar_walk_skips_members_without_value() {
        let h = ScalarHandler::new(Group);
        let n = |o: &[u32]| h.get_next(&Oid::from_slice(o)).map(|vb| vb.oid.as_slice().to_vec());
        assert_eq!(n(&[1]), Some(vec![1, 8, 1, 0]));
        assert_eq!(n(&[1, 8, 1, 0]), Some(vec![1, 8, 3, 0]));
        assert_eq!(n(&[1, 8, 3, 0]), None);
        assert_eq!(h.get(&Oid::from_slice(&[1, 8, 2, 0])), GetResult::NoSuchInstance);
    }
}
