//! Helpers that turn scalar groups and conceptual tables into GET/GETNEXT answers.
//!
//! [`ScalarLayout`] covers `group.arc.0` scalars; [`TableLayout`] covers `entry.column.index`
//! tables walked column-major (every row of column 2, then every row of column 3, ...), which is
//! the lexicographic order SNMP requires. Both only deal with names; the handler supplies values.

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::agent::handler::GetResult;
use crate::oid::Oid;
use crate::pdu::VarBind;
use crate::value::Value;

/// The instance names of a group of scalars `group.arc.0`.
#[derive(Clone, Debug)]
pub struct ScalarLayout {
    group: Oid,
    arcs: Vec<u32>,
}

impl ScalarLayout {
    /// Scalars `group.a.0` for each `a` in `arcs` (any order; duplicates ignored).
    pub fn new(group: Oid, arcs: &[u32]) -> ScalarLayout {
        let mut arcs = arcs.to_vec();
        arcs.sort_unstable();
        arcs.dedup();
        ScalarLayout { group, arcs }
    }

    /// The group OID.
    pub fn group(&self) -> &Oid {
        &self.group
    }

    /// The instance OID `group.arc.0`.
    pub fn instance(&self, arc: u32) -> Oid {
        self.group.join(&[arc, 0])
    }

    /// Which scalar an exact GET names: `Ok(arc)`, or the exception to answer.
    pub fn lookup(&self, oid: &Oid) -> Result<u32, GetResult> {
        match oid.suffix_after(self.group.as_slice()) {
            Some([arc, 0]) if self.arcs.contains(arc) => Ok(*arc),
            Some([arc, ..]) if self.arcs.contains(arc) => Err(GetResult::NoSuchInstance),
            _ => Err(GetResult::NoSuchObject),
        }
    }

    /// The first scalar whose instance sorts strictly after `oid`: `(arc, instance OID)`.
    pub fn next(&self, oid: &Oid) -> Option<(u32, Oid)> {
        let group = self.group.as_slice();
        self.arcs.iter().copied().find_map(|arc| {
            let after = oid.as_slice().iter().cmp(group.iter().chain([arc, 0].iter())).is_lt();
            after.then(|| (arc, self.instance(arc)))
        })
    }

    /// The GET answer for a group whose every scalar always has a value: `value(arc)` for a served
    /// scalar, else the exception [`ScalarLayout::lookup`] gives.
    pub fn get_value(&self, oid: &Oid, value: impl FnOnce(u32) -> Value) -> GetResult {
        match self.lookup(oid) {
            Ok(arc) => GetResult::Value(value(arc)),
            Err(e) => e,
        }
    }

    /// The GETNEXT answer for a group whose every scalar always has a value: the [`ScalarLayout::next`]
    /// instance with `value(arc)`.
    pub fn next_value(&self, oid: &Oid, value: impl FnOnce(u32) -> Value) -> Option<VarBind> {
        let (arc, instance) = self.next(oid)?;
        Some(VarBind::new(instance, value(arc)))
    }
}

/// The instance names of a conceptual table `entry.column.index...`.
#[derive(Clone, Debug)]
pub struct TableLayout {
    entry: Oid,
    columns: Vec<u32>,
}

impl TableLayout {
    /// A table whose entry OID is `entry` (i.e. `xxxTable.1`) with the accessible `columns`
    /// (any order; not-accessible index columns left out).
    pub fn new(entry: Oid, columns: &[u32]) -> TableLayout {
        let mut columns = columns.to_vec();
        columns.sort_unstable();
        columns.dedup();
        TableLayout { entry, columns }
    }

    /// The entry OID.
    pub fn entry(&self) -> &Oid {
        &self.entry
    }

    /// The instance OID `entry.column.index...`.
    pub fn instance(&self, column: u32, index: &[u32]) -> Oid {
        let mut oid = self.entry.child(column);
        for &arc in index {
            oid.push(arc);
        }
        oid
    }

    /// Splits an exact GET name into `(column, index)`, or gives the exception to answer
    /// (noSuchObject for an unknown column, noSuchInstance for a missing index).
    pub fn lookup<'a>(&self, oid: &'a Oid) -> Result<(u32, &'a [u32]), GetResult> {
        match oid.suffix_after(self.entry.as_slice()) {
            Some([column, index @ ..]) if self.columns.contains(column) => {
                if index.is_empty() {
                    Err(GetResult::NoSuchInstance)
                } else {
                    Ok((*column, index))
                }
            }
            _ => Err(GetResult::NoSuchObject),
        }
    }

    /// The first cell strictly after `oid`, column-major: `(column, row index)`.
    ///
    /// `next_row(column, after)` must return the smallest row index present in `column` that is
    /// strictly greater than `after` (or the smallest of all for `None`); see [`next_key`].
    pub fn next<F>(&self, oid: &Oid, mut next_row: F) -> Option<(u32, Oid)>
    where
        F: FnMut(u32, Option<&[u32]>) -> Option<Oid>,
    {
        let entry = self.entry.as_slice();
        let (first_column, mut after): (u32, Option<&[u32]>) = match oid.suffix_after(entry) {
            Some([column, index @ ..]) => (*column, (!index.is_empty()).then_some(index)),
            Some([]) => (0, None),
            None if oid.as_slice() < entry => (0, None),
            None => return None,
        };
        for &column in &self.columns {
            if column < first_column {
                continue;
            }
            if column > first_column {
                after = None;
            }
            if let Some(index) = next_row(column, after) {
                return Some((column, index));
            }
            after = None;
        }
        None
    }
}

/// For tables kept in a `BTreeMap` keyed by row index: the first key strictly after `after`
/// (the first key for `None`). Meant as the body of [`TableLayout::next`]'s `next_row`.
pub fn next_key<'m, V>(map: &'m BTreeMap<Oid, V>, after: Option<&[u32]>) -> Option<&'m Oid> {
    match after {
        None => map.keys().next(),
        Some(after) => map.range((Bound::Excluded(Oid::from_slice(after)), Bound::Unbounded)).next().map(|(k, _)| k),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oid(s: &str) -> Oid {
        s.parse().unwrap()
    }

    #[test]
    fn scalars() {
        let s = ScalarLayout::new(oid("1.3.6.1.2.1.1"), &[3, 1, 5]);
        assert_eq!(s.lookup(&oid("1.3.6.1.2.1.1.1.0")), Ok(1));
        assert_eq!(s.lookup(&oid("1.3.6.1.2.1.1.1.1")), Err(GetResult::NoSuchInstance));
        assert_eq!(s.lookup(&oid("1.3.6.1.2.1.1.1")), Err(GetResult::NoSuchInstance));
        assert_eq!(s.lookup(&oid("1.3.6.1.2.1.1.2.0")), Err(GetResult::NoSuchObject));
        assert_eq!(s.next(&oid("1.3")).unwrap().0, 1);
        assert_eq!(s.next(&oid("1.3.6.1.2.1.1.1")).unwrap().0, 1);
        assert_eq!(s.next(&oid("1.3.6.1.2.1.1.1.0")).unwrap().0, 3);
        assert_eq!(s.next(&oid("1.3.6.1.2.1.1.4.9.9")).unwrap().0, 5);
        assert!(s.next(&oid("1.3.6.1.2.1.1.5.0")).is_none());
        assert!(s.next(&oid("1.3.6.1.2.1.2")).is_none());
    }

    #[test]
    fn table_column_major() {
        let t = TableLayout::new(oid("1.9.1"), &[2, 3]);
        let mut rows: BTreeMap<Oid, ()> = BTreeMap::new();
        rows.insert(oid("1"), ());
        rows.insert(oid("4.1"), ());
        rows.insert(oid("7"), ());
        let mut cur = oid("1");
        let mut seen = Vec::new();
        while let Some((c, i)) = t.next(&cur, |_, after| next_key(&rows, after).cloned()) {
            cur = t.instance(c, i.as_slice());
            seen.push(cur.to_string());
            assert!(seen.len() < 20);
        }
        assert_eq!(seen, ["1.9.1.2.1", "1.9.1.2.4.1", "1.9.1.2.7", "1.9.1.3.1", "1.9.1.3.4.1", "1.9.1.3.7"]);
        // Partial index and unknown-column positions.
        assert_eq!(t.next(&oid("1.9.1.2.4"), |_, a| next_key(&rows, a).cloned()).unwrap().1, oid("4.1"));
        assert_eq!(t.next(&oid("1.9.1.1.99"), |_, a| next_key(&rows, a).cloned()).unwrap(), (2, oid("1")));
        assert!(t.next(&oid("1.9.1.4"), |_, a| next_key(&rows, a).cloned()).is_none());
        assert!(t.next(&oid("1.9.2"), |_, a| next_key(&rows, a).cloned()).is_none());
        assert_eq!(t.lookup(&oid("1.9.1.3.4.1")), Ok((3, &[4u32, 1][..])));
        assert_eq!(t.lookup(&oid("1.9.1.3")), Err(GetResult::NoSuchInstance));
        assert_eq!(t.lookup(&oid("1.9.1.1.1")), Err(GetResult::NoSuchObject));
    }
}
