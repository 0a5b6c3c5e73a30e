//! Who may read and write what: an access model in the spirit of VACM (RFC 3415) for communities.
//!
//! Each configured [`Community`] has an [`Access`] (read-only or read-write) and a read and a write [`View`], each
//! a list of OID subtrees (empty: everything). Request processing ([`super::process`]) looks the request's
//! community up ([`Community::find`]): an unknown community is dropped and counted (snmpInBadCommunityNames), a
//! SET from a read-only community is dropped and counted (snmpInBadCommunityUses), a SET of an object outside the
//! write view is refused with noAccess (v1: noSuchName) and counted (snmpInBadCommunityUses), and an object
//! outside the read view is treated as if it did not exist (GET: noSuchObject, GETNEXT/GETBULK skip it). The
//! [`Rights`] a request gets are what processing uses, whatever security model granted them: a community's
//! ([`Community::rights`]) and an SNMPv3 user's (its users-file `read_view`/`write_view`, made into [`View`]s by
//! [`super::v3`]) come from the same [`Rights::new`] and are applied by the same functions.

use crate::oid::{Oid, OidError};

/// What a community (or user) may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// GET, GETNEXT and GETBULK of its read view.
    ReadOnly,
    /// Reads, and SETs of its write view.
    ReadWrite,
}

/// A MIB view: the OID subtrees it includes. An empty list is the whole MIB.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct View {
    subtrees: Vec<Oid>,
}

impl View {
    /// The whole MIB.
    pub fn everything() -> View {
        View::default()
    }

    /// The given subtrees (none: the whole MIB). Subtrees inside another listed one are redundant and dropped.
    pub fn subtrees(subtrees: impl IntoIterator<Item = Oid>) -> View {
        let mut subtrees: Vec<Oid> = subtrees.into_iter().collect();
        subtrees.sort();
        subtrees.dedup();
        let mut kept: Vec<Oid> = Vec::with_capacity(subtrees.len());
        for s in subtrees {
            // Sorted, so a prefix of `s` that is kept is the last kept one.
            if !kept.last().is_some_and(|k| s.starts_with(k.as_slice())) {
                kept.push(s);
            }
        }
        View { subtrees: kept }
    }

    /// The view of dotted-OID `texts` (none: the whole MIB), as operators write them in config files; the error
    /// names the text that is not a subtree.
    pub fn parse<S: AsRef<str>>(texts: &[S]) -> Result<View, OidError> {
        let subtrees: Vec<Oid> = texts.iter().map(|t| Oid::parse_subtree(t.as_ref())).collect::<Result<_, _>>()?;
        Ok(View::subtrees(subtrees))
    }

    /// Whether this view is the whole MIB.
    pub fn is_everything(&self) -> bool {
        self.subtrees.is_empty()
    }

    /// The included subtrees, sorted (empty: everything).
    pub fn included(&self) -> &[Oid] {
        &self.subtrees
    }

    /// Whether `oid` is in the view.
    pub fn contains(&self, oid: &Oid) -> bool {
        if self.subtrees.is_empty() {
            return true;
        }
        let after = self.subtrees.partition_point(|s| s.as_slice() <= oid.as_slice());
        after.checked_sub(1).is_some_and(|i| oid.starts_with(self.subtrees[i].as_slice()))
    }

    /// For an `oid` not in the view: the first included subtree after it, where a walk goes on (`None`: the view
    /// has nothing after `oid`).
    pub fn next_subtree_after(&self, oid: &Oid) -> Option<&Oid> {
        let after = self.subtrees.partition_point(|s| s.as_slice() <= oid.as_slice());
        self.subtrees.get(after)
    }
}

/// One configured community: its name, what it may do and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Community {
    pub name: String,
    pub access: Access,
    /// What it may read (GET, GETNEXT, GETBULK).
    pub read_view: View,
    /// What it may SET (only with [`Access::ReadWrite`]).
    pub write_view: View,
}

impl Community {
    /// A community that reads everything and writes nothing.
    pub fn read_only(name: impl Into<String>) -> Community {
        Community {
            name: name.into(),
            access: Access::ReadOnly,
            read_view: View::everything(),
            write_view: View::everything(),
        }
    }

    /// A community that reads and writes everything.
    pub fn read_write(name: impl Into<String>) -> Community {
        Community { name: name.into(), access: Access::ReadWrite, ..Community::read_only("") }
    }

    /// The community named `name` in `communities` (the first, if listed twice).
    pub fn find<'a>(communities: &'a [Community], name: &[u8]) -> Option<&'a Community> {
        communities.iter().find(|c| c.name.as_bytes() == name)
    }

    /// What a request with this community may do.
    pub fn rights(&self) -> Rights<'_> {
        Rights::new(self.access, &self.read_view, &self.write_view)
    }
}

/// What one request may do: read its read view, and write its write view if it may write at all.
#[derive(Clone, Copy, Debug)]
pub struct Rights<'a> {
    pub read: &'a View,
    /// `None`: no SET at all.
    pub write: Option<&'a View>,
}

impl<'a> Rights<'a> {
    /// The rights of a community or user with `access` and these views (the write view counts only for
    /// [`Access::ReadWrite`]).
    pub fn new(access: Access, read: &'a View, write: &'a View) -> Rights<'a> {
        Rights { read, write: (access == Access::ReadWrite).then_some(write) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oid(s: &str) -> Oid {
        s.parse().unwrap()
    }

    #[test]
    fn views_contain_their_subtrees_only() {
        let all = View::everything();
        assert!(all.contains(&oid("1.3.6.1.2.1.1.1.0")));
        assert_eq!(all.next_subtree_after(&oid("1.3")), None);

        let v = View::subtrees([oid("1.3.6.1.4.1.32473.2"), oid("1.3.6.1.2.1.1"), oid("1.3.6.1.2.1.1.5")]);
        assert_eq!(v.included(), [oid("1.3.6.1.2.1.1"), oid("1.3.6.1.4.1.32473.2")]);
        assert!(v.contains(&oid("1.3.6.1.2.1.1.5.0")));
        assert!(v.contains(&oid("1.3.6.1.4.1.32473.2")));
        assert!(v.contains(&oid("1.3.6.1.4.1.32473.2.1.1.0")));
        assert!(!v.contains(&oid("1.3.6.1.4.1.32473.1.1.0")));
        assert!(!v.contains(&oid("1.3.6.1.2.1.11.1.0")));
        assert!(!v.contains(&oid("1.3.6.1.2.1")));
        assert_eq!(v.next_subtree_after(&oid("1.3.6.1.2.1.11.1.0")), Some(&oid("1.3.6.1.4.1.32473.2")));
        assert_eq!(v.next_subtree_after(&oid("1.3")), Some(&oid("1.3.6.1.2.1.1")));
        assert_eq!(v.next_subtree_after(&oid("1.3.6.1.4.1.32473.3")), None);
    }

    #[test]
    fn rights_follow_the_access() {
        let ro = Community::read_only("public");
        assert!(ro.rights().write.is_none());
        let rw = Community { write_view: View::subtrees([oid("1.3.6.1.4")]), ..Community::read_write("private") };
        assert_eq!(rw.rights().write, Some(&View::subtrees([oid("1.3.6.1.4")])));
        let list = [ro, rw];
        assert_eq!(Community::find(&list, b"private").map(|c| c.access), Some(Access::ReadWrite));
        assert!(Community::find(&list, b"secret").is_none());
    }

    #[test]
    fn views_parse_from_dotted_text() {
        let v = View::parse(&[".1.3.6.1.2.1.1", "1.3.6.1.4.1.32473"]).unwrap();
        assert_eq!(v.included(), [oid("1.3.6.1.2.1.1"), oid("1.3.6.1.4.1.32473")]);
        assert!(View::parse::<&str>(&[]).unwrap().is_everything());
        for bad in ["", ".", "1", "1.3.six", "iso.3"] {
            let e = View::parse(&["1.3.6", bad]).unwrap_err().to_string();
            assert!(e.contains(&format!("{bad:?}")), "{bad}: {e}");
        }
    }
}
