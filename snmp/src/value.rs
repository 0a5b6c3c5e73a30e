//! The value half of a variable binding: SMIv2 `ObjectSyntax` plus the SNMPv2 exceptions.
//!
//! `Gauge32` doubles as `Unsigned32` (same wire tag, RFC 2578 §7.1.11). The three exception
//! variants only ever appear in v2c responses; the agent maps them to v1 errors itself.

use std::fmt;
use std::net::Ipv4Addr;

use crate::oid::Oid;

/// A variable-binding value.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Value {
    Integer(i32),
    OctetString(Vec<u8>),
    /// The "unSpecified" placeholder of requests (and SMI NULL).
    Null,
    ObjectId(Oid),
    IpAddress([u8; 4]),
    Counter32(u32),
    /// Also `Unsigned32`.
    Gauge32(u32),
    TimeTicks(u32),
    Opaque(Vec<u8>),
    Counter64(u64),
    NoSuchObject,
    NoSuchInstance,
    EndOfMibView,
}

impl Value {
    /// An OCTET STRING holding the UTF-8 bytes of `s` (DisplayString values).
    pub fn string(s: &str) -> Value {
        Value::OctetString(s.as_bytes().to_vec())
    }

    /// An IpAddress value.
    pub fn ip(addr: Ipv4Addr) -> Value {
        Value::IpAddress(addr.octets())
    }

    /// A Gauge32 (or Unsigned32) of `v`, latched at its maximum when `v` does not fit (RFC 2578 §7.1.7: a gauge
    /// that would exceed its maximum value stays there).
    pub fn gauge32_saturating(v: u64) -> Value {
        Value::Gauge32(u32::try_from(v).unwrap_or(u32::MAX))
    }

    /// A Counter32 of the running total `v`, modulo 2^32 (RFC 2578 §7.1.6: a counter wraps to zero after its
    /// maximum; managers take differences of readings).
    pub fn counter32_wrapping(v: u64) -> Value {
        Value::Counter32((v & u64::from(u32::MAX)) as u32)
    }

    /// True for noSuchObject, noSuchInstance and endOfMibView.
    pub fn is_exception(&self) -> bool {
        matches!(self, Value::NoSuchObject | Value::NoSuchInstance | Value::EndOfMibView)
    }

    /// The SMI type name, for messages (`"INTEGER"`, `"Counter64"`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Integer(_) => "INTEGER",
            Value::OctetString(_) => "OCTET STRING",
            Value::Null => "NULL",
            Value::ObjectId(_) => "OBJECT IDENTIFIER",
            Value::IpAddress(_) => "IpAddress",
            Value::Counter32(_) => "Counter32",
            Value::Gauge32(_) => "Gauge32",
            Value::TimeTicks(_) => "TimeTicks",
            Value::Opaque(_) => "Opaque",
            Value::Counter64(_) => "Counter64",
            Value::NoSuchObject => "noSuchObject",
            Value::NoSuchInstance => "noSuchInstance",
            Value::EndOfMibView => "endOfMibView",
        }
    }

    /// The integer, for INTEGER values.
    pub fn as_i32(&self) -> Option<i32> {
        match self {
            Value::Integer(v) => Some(*v),
            _ => None,
        }
    }

    /// The unsigned value of Counter32, Gauge32/Unsigned32 and TimeTicks.
    pub fn as_u32(&self) -> Option<u32> {
        match self {
            Value::Counter32(v) | Value::Gauge32(v) | Value::TimeTicks(v) => Some(*v),
            _ => None,
        }
    }

    /// The unsigned value of any unsigned type, Counter64 included.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Counter64(v) => Some(*v),
            other => other.as_u32().map(u64::from),
        }
    }

    /// The bytes of OCTET STRING and Opaque values.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::OctetString(b) | Value::Opaque(b) => Some(b),
            _ => None,
        }
    }

    /// The OCTET STRING as UTF-8 text, if it is valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::OctetString(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// The OID of OBJECT IDENTIFIER values.
    pub fn as_oid(&self) -> Option<&Oid> {
        match self {
            Value::ObjectId(o) => Some(o),
            _ => None,
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Integer(v) => write!(f, "Integer({v})"),
            Value::OctetString(b) => match std::str::from_utf8(b) {
                Ok(s) => write!(f, "OctetString({s:?})"),
                Err(_) => write!(f, "OctetString({b:02x?})"),
            },
            Value::Null => f.write_str("Null"),
            Value::ObjectId(o) => write!(f, "ObjectId({o})"),
            Value::IpAddress(a) => write!(f, "IpAddress({})", Ipv4Addr::from(*a)),
            Value::Counter32(v) => write!(f, "Counter32({v})"),
            Value::Gauge32(v) => write!(f, "Gauge32({v})"),
            Value::TimeTicks(v) => write!(f, "TimeTicks({v})"),
            Value::Opaque(b) => write!(f, "Opaque({b:02x?})"),
            Value::Counter64(v) => write!(f, "Counter64({v})"),
            Value::NoSuchObject => f.write_str("NoSuchObject"),
            Value::NoSuchInstance => f.write_str("NoSuchInstance"),
            Value::EndOfMibView => f.write_str("EndOfMibView"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gauge_latches_at_its_maximum_and_a_counter_wraps() {
        assert_eq!(Value::gauge32_saturating(7), Value::Gauge32(7));
        assert_eq!(Value::gauge32_saturating(u64::from(u32::MAX)), Value::Gauge32(u32::MAX));
        assert_eq!(Value::gauge32_saturating(u64::from(u32::MAX) + 1), Value::Gauge32(u32::MAX));
        assert_eq!(Value::gauge32_saturating(u64::MAX), Value::Gauge32(u32::MAX));
        assert_eq!(Value::counter32_wrapping(7), Value::Counter32(7));
        assert_eq!(Value::counter32_wrapping(u64::from(u32::MAX)), Value::Counter32(u32::MAX));
        assert_eq!(Value::counter32_wrapping(u64::from(u32::MAX) + 1), Value::Counter32(0));
        assert_eq!(Value::counter32_wrapping((5 << 32) + 9), Value::Counter32(9));
    }
}
