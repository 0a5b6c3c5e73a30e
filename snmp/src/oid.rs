//! Object identifiers: the engine's own owned `Oid` type.
//!
//! An `Oid` is a sequence of `u32` sub-identifiers ordered lexicographically (a prefix sorts before
//! its extensions), which is exactly SNMP's GETNEXT order. The decoder rejects OIDs longer than
//! [`MAX_SUB_IDS`] (RFC 2578 §3.5 limit); code that builds OIDs itself is trusted with the length.

use std::fmt;
use std::str::FromStr;

/// Largest number of sub-identifiers accepted from the network or from text (RFC 2578 §3.5).
pub const MAX_SUB_IDS: usize = 128;

/// An owned SNMP object identifier.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Oid(Vec<u32>);

/// Why text or a sub-identifier list is not an acceptable OID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidError {
    #[error("OID has more than {MAX_SUB_IDS} sub-identifiers")]
    TooLong,
    #[error("OID text {0:?} is not dotted decimal u32 sub-identifiers")]
    Syntax(String),
    #[error("{0:?} is not a MIB subtree: give a dotted OID such as \"1.3.6.1.2.1.1\"")]
    NotASubtree(String),
}

impl Oid {
    /// Copies `arcs` into a new OID (no length check: for constants and handler-built OIDs).
    pub fn from_slice(arcs: &[u32]) -> Oid {
        Oid(arcs.to_vec())
    }

    /// Parses a MIB view's subtree: dotted decimal (leading dot optional) with at least two arcs, so that an
    /// empty or one-arc text cannot silently stand for everything.
    pub fn parse_subtree(text: &str) -> Result<Oid, OidError> {
        let oid: Oid = text.trim().parse()?;
        if oid.0.len() < 2 {
            return Err(OidError::NotASubtree(text.to_string()));
        }
        Ok(oid)
    }

    /// Wraps `arcs`, rejecting more than [`MAX_SUB_IDS`] sub-identifiers.
    pub fn new(arcs: Vec<u32>) -> Result<Oid, OidError> {
        if arcs.len() > MAX_SUB_IDS {
            return Err(OidError::TooLong);
        }
        Ok(Oid(arcs))
    }

    /// The sub-identifiers.
    pub fn as_slice(&self) -> &[u32] {
        &self.0
    }

    /// Number of sub-identifiers.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for the empty OID.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when `prefix` is a (not necessarily proper) prefix of `self`.
    pub fn starts_with(&self, prefix: &[u32]) -> bool {
        self.0.starts_with(prefix)
    }

    /// A new OID `self.arc`.
    pub fn child(&self, arc: u32) -> Oid {
        let mut v = Vec::with_capacity(self.0.len() + 1);
        v.extend_from_slice(&self.0);
        v.push(arc);
        Oid(v)
    }

    /// A new OID `self.suffix...`.
    pub fn join(&self, suffix: &[u32]) -> Oid {
        let mut v = Vec::with_capacity(self.0.len() + suffix.len());
        v.extend_from_slice(&self.0);
        v.extend_from_slice(suffix);
        Oid(v)
    }

    /// Appends one sub-identifier in place.
    pub fn push(&mut self, arc: u32) {
        self.0.push(arc);
    }

    /// The sub-identifiers after `prefix`, or `None` when `prefix` is not a prefix of `self`.
    pub fn suffix_after(&self, prefix: &[u32]) -> Option<&[u32]> {
        self.0.strip_prefix(prefix)
    }

    /// Consumes the OID, returning its sub-identifiers.
    pub fn into_vec(self) -> Vec<u32> {
        self.0
    }
}

impl AsRef<[u32]> for Oid {
    fn as_ref(&self) -> &[u32] {
        &self.0
    }
}

impl From<&[u32]> for Oid {
    fn from(arcs: &[u32]) -> Oid {
        Oid::from_slice(arcs)
    }
}

impl<const N: usize> From<[u32; N]> for Oid {
    fn from(arcs: [u32; N]) -> Oid {
        Oid(arcs.to_vec())
    }
}

impl fmt::Display for Oid {
    /// Dotted decimal without a leading dot, e.g. `1.3.6.1.2.1.1.1.0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for arc in &self.0 {
            if !first {
                f.write_str(".")?;
            }
            first = false;
            write!(f, "{arc}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Oid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Oid({self})")
    }
}

impl FromStr for Oid {
    type Err = OidError;

    /// Parses dotted decimal, with or without a leading dot (`.1.3.6` or `1.3.6`).
    fn from_str(s: &str) -> Result<Oid, OidError> {
        let body = s.strip_prefix('.').unwrap_or(s);
        if body.is_empty() {
            return Ok(Oid::default());
        }
        let mut arcs = Vec::new();
        for part in body.split('.') {
            if arcs.len() == MAX_SUB_IDS {
                return Err(OidError::TooLong);
            }
            // u32::from_str accepts a leading '+', which is not dotted decimal.
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(OidError::Syntax(s.to_string()));
            }
            let arc = part.parse::<u32>().map_err(|_| OidError::Syntax(s.to_string()))?;
            arcs.push(arc);
        }
        Ok(Oid(arcs))
    }
}
