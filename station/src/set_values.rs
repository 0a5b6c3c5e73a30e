//! Checking the values of SET varbinds against a column's SYNTAX, for the station's writable tables
//! (the request table and the task table): each helper answers the RFC 3416 error for its varbind
//! (wrongType for another ASN.1 type, wrongLength for a string too long, wrongValue for a value outside the
//! enumeration or a DisplayString that is not text), and [`truncate`] shortens text to a column's size.

use dvsan_snmp::agent::{SetFailure, SetItem};
use dvsan_snmp::{ErrorStatus, Value};
use std::collections::BTreeMap;

/// One row's cells of a SET: (varbind index, column, value).
pub type RowCells<'a> = Vec<(usize, u32, &'a Value)>;

/// The varbinds of a SET on a table with one integer index under `entry`, grouped by row (index > 0); anything
/// else is noCreation for its varbind.
pub fn cells_by_row<'a>(varbinds: &'a [SetItem<'_>], entry: &[u32]) -> Result<BTreeMap<u32, RowCells<'a>>, SetFailure> {
    let mut by_row: BTreeMap<u32, RowCells<'a>> = BTreeMap::new();
    for (i, vb) in varbinds {
        match vb.oid.suffix_after(entry) {
            Some(&[column, index]) if index > 0 => by_row.entry(index).or_default().push((*i, column, &vb.value)),
            _ => return Err(SetFailure::new(*i, ErrorStatus::NoCreation)),
        }
    }
    Ok(by_row)
}

/// An OCTET STRING of at most `max` octets.
pub fn octets(index: usize, value: &Value, max: usize) -> Result<Vec<u8>, SetFailure> {
    match value {
        Value::OctetString(b) if b.len() <= max => Ok(b.clone()),
        Value::OctetString(_) => Err(SetFailure::new(index, ErrorStatus::WrongLength)),
        _ => Err(SetFailure::new(index, ErrorStatus::WrongType)),
    }
}

/// A DisplayString of at most `max` octets (UTF-8 text).
pub fn text(index: usize, value: &Value, max: usize) -> Result<String, SetFailure> {
    String::from_utf8(octets(index, value, max)?).map_err(|_| SetFailure::new(index, ErrorStatus::WrongValue))
}

/// An INTEGER that must be one of `allowed`.
pub fn integer(index: usize, value: &Value, allowed: &[i32]) -> Result<i32, SetFailure> {
    match value {
        Value::Integer(v) if allowed.contains(v) => Ok(*v),
        Value::Integer(_) => Err(SetFailure::new(index, ErrorStatus::WrongValue)),
        _ => Err(SetFailure::new(index, ErrorStatus::WrongType)),
    }
}

/// An Unsigned32 (sent as Gauge32).
pub fn unsigned(index: usize, value: &Value) -> Result<u32, SetFailure> {
    match value {
        Value::Gauge32(v) => Ok(*v),
        _ => Err(SetFailure::new(index, ErrorStatus::WrongType)),
    }
}

/// `text` cut to at most `max` bytes, at a character boundary.
pub fn truncate(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_follow_rfc_3416() {
        assert_eq!(text(0, &Value::string("64M"), 32), Ok("64M".to_string()));
        assert_eq!(text(1, &Value::Integer(3), 32).unwrap_err().status, ErrorStatus::WrongType);
        assert_eq!(text(2, &Value::string(&"x".repeat(33)), 32).unwrap_err().status, ErrorStatus::WrongLength);
        assert_eq!(
            text(3, &Value::OctetString(vec![0xff]), 32).unwrap_err(),
            SetFailure::new(3, ErrorStatus::WrongValue)
        );
        assert_eq!(integer(0, &Value::Integer(2), &[1, 2]), Ok(2));
        assert_eq!(integer(0, &Value::Integer(3), &[1, 2]).unwrap_err().status, ErrorStatus::WrongValue);
        assert_eq!(integer(0, &Value::Gauge32(1), &[1, 2]).unwrap_err().status, ErrorStatus::WrongType);
        assert_eq!(unsigned(0, &Value::Gauge32(7)), Ok(7));
        assert_eq!(unsigned(0, &Value::Integer(7)).unwrap_err().status, ErrorStatus::WrongType);
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
