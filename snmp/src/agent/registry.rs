//! Which handler owns which OID subtree.
//!
//! Registered subtrees may not overlap (one may not be a prefix of another), so every OID has
//! at most one owner and the subtrees, sorted, partition the MIB view: GET finds the owner by
//! binary search and GETNEXT continues through the following subtrees in order.

use std::sync::Arc;

use crate::agent::handler::{GetResult, MibHandler};
use crate::oid::Oid;
use crate::pdu::VarBind;

/// A subtree could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("subtree {new} overlaps the registered subtree {existing}")]
    Overlap { new: Oid, existing: Oid },
}

/// Sorted, non-overlapping subtree registrations.
#[derive(Default, Clone)]
pub struct Registry {
    entries: Vec<(Oid, Arc<dyn MibHandler>)>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Registers `handler` for the subtree `prefix`.
    pub fn register(&mut self, prefix: Oid, handler: Arc<dyn MibHandler>) -> Result<(), RegistryError> {
        if let Some((existing, _)) =
            self.entries.iter().find(|(p, _)| p.starts_with(prefix.as_slice()) || prefix.starts_with(p.as_slice()))
        {
            return Err(RegistryError::Overlap { new: prefix, existing: existing.clone() });
        }
        let pos = self.entries.partition_point(|(p, _)| *p < prefix);
        self.entries.insert(pos, (prefix, handler));
        Ok(())
    }

    /// The registered subtrees, in OID order.
    pub fn subtrees(&self) -> impl Iterator<Item = &Oid> {
        self.entries.iter().map(|(p, _)| p)
    }

    /// The handler owning `oid`, if any.
    pub fn owner(&self, oid: &Oid) -> Option<(usize, &Arc<dyn MibHandler>)> {
        let after = self.entries.partition_point(|(p, _)| p.as_slice() <= oid.as_slice());
        let idx = after.checked_sub(1)?;
        let (prefix, handler) = &self.entries[idx];
        oid.starts_with(prefix.as_slice()).then_some((idx, handler))
    }

    /// The handler at position `idx` of [`Registry::owner`]'s answer.
    pub(crate) fn handler_at(&self, idx: usize) -> &Arc<dyn MibHandler> {
        &self.entries[idx].1
    }

    /// Exact GET through the owning handler; unowned OIDs are noSuchObject.
    pub fn get(&self, oid: &Oid) -> GetResult {
        match self.owner(oid) {
            Some((_, h)) => h.get(oid),
            None => GetResult::NoSuchObject,
        }
    }

    /// The first instance after `oid` in the whole registry.
    pub fn get_next(&self, oid: &Oid) -> Option<VarBind> {
        // Subtrees wholly before `oid` are skipped; the owner of `oid` (if any) comes first.
        let start = self.entries.partition_point(|(p, _)| *p < *oid && !oid.starts_with(p.as_slice()));
        for (prefix, handler) in &self.entries[start..] {
            if let Some(vb) = handler.get_next(oid) {
                if vb.oid > *oid && vb.oid.starts_with(prefix.as_slice()) {
                    return Some(vb);
                }
                tracing::debug!(
                    subtree = %prefix, request = %oid, answer = %vb.oid,
                    "handler get_next answer out of order or outside its subtree; ignored"
                );
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    /// A handler serving fixed instances.
    struct Fixed(Vec<Oid>);
    impl MibHandler for Fixed {
        fn get(&self, oid: &Oid) -> GetResult {
            if self.0.contains(oid) {
                GetResult::Value(Value::Integer(1))
            } else {
                GetResult::NoSuchInstance
            }
        }
        fn get_next(&self, oid: &Oid) -> Option<VarBind> {
            self.0.iter().find(|o| *o > oid).map(|o| VarBind::new(o.clone(), Value::Integer(1)))
        }
    }

    fn oid(s: &str) -> Oid {
        s.parse().unwrap()
    }

    #[test]
    fn lookup_and_walk_order() {
        let mut r = Registry::new();
        r.register(oid("1.3.6.1.2"), Arc::new(Fixed(vec![oid("1.3.6.1.2.1.0")]))).unwrap();
        r.register(oid("1.3.6.1.4"), Arc::new(Fixed(vec![oid("1.3.6.1.4.1.0"), oid("1.3.6.1.4.2.0")]))).unwrap();
        r.register(oid("1.3.6.1.3"), Arc::new(Fixed(vec![]))).unwrap();
        assert!(r.register(oid("1.3.6.1.4.1"), Arc::new(Fixed(vec![]))).is_err());
        assert!(r.register(oid("1.3.6"), Arc::new(Fixed(vec![]))).is_err());

        assert_eq!(r.owner(&oid("1.3.6.1.4.1.0")).unwrap().0, 2);
        assert!(r.owner(&oid("1.3.6.1.5")).is_none());
        assert!(r.owner(&oid("1.3.6.1")).is_none());
        assert_eq!(r.get(&oid("1.3.6.1.9")), GetResult::NoSuchObject);

        let mut cur = Oid::default();
        let mut seen = Vec::new();
        while let Some(vb) = r.get_next(&cur) {
            seen.push(vb.oid.to_string());
            cur = vb.oid;
        }
        assert_eq!(seen, ["1.3.6.1.2.1.0", "1.3.6.1.4.1.0", "1.3.6.1.4.2.0"]);
        assert_eq!(r.get_next(&oid("1.3.6.1.2.1.0.5")).unwrap().oid, oid("1.3.6.1.4.1.0"));
    }
}
