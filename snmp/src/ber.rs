//! A small BER writer for SNMP messages (definite, minimal lengths; minimal integers).
//!
//! Decoding is snmp-parser's job (see `message.rs`); this is the encoding half. Constructed
//! values are written forward: [`BerWriter::begin`] reserves a one-byte length, and
//! [`BerWriter::end`] patches it, shifting the content right in the rare case the length needs
//! the long form (content of 128 bytes or more). Typical small responses never shift.

use crate::oid::Oid;
use crate::value::Value;

/// Universal and SNMP application tags used by the writer.
pub mod tag {
    pub const INTEGER: u8 = 0x02;
    pub const OCTET_STRING: u8 = 0x04;
    pub const NULL: u8 = 0x05;
    pub const OBJECT_IDENTIFIER: u8 = 0x06;
    pub const SEQUENCE: u8 = 0x30;
    pub const IP_ADDRESS: u8 = 0x40;
    pub const COUNTER32: u8 = 0x41;
    pub const GAUGE32: u8 = 0x42;
    pub const TIME_TICKS: u8 = 0x43;
    pub const OPAQUE: u8 = 0x44;
    pub const COUNTER64: u8 = 0x46;
    pub const NO_SUCH_OBJECT: u8 = 0x80;
    pub const NO_SUCH_INSTANCE: u8 = 0x81;
    pub const END_OF_MIB_VIEW: u8 = 0x82;
}

/// Appends BER encodings to a borrowed buffer.
pub struct BerWriter<'a> {
    buf: &'a mut Vec<u8>,
}

/// Position of an open constructed value, returned by [`BerWriter::begin`].
#[must_use = "every begin() needs its end()"]
pub struct Open(usize);

impl<'a> BerWriter<'a> {
    /// A writer appending to `buf` (existing content is kept).
    pub fn new(buf: &'a mut Vec<u8>) -> BerWriter<'a> {
        BerWriter { buf }
    }

    /// Bytes in the underlying buffer.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True when the underlying buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Drops everything after byte `len` (used to take back a varbind that does not fit).
    pub fn truncate(&mut self, len: usize) {
        self.buf.truncate(len);
    }

    /// Starts a constructed value with tag `tag`; finish it with [`BerWriter::end`].
    pub fn begin(&mut self, tag: u8) -> Open {
        self.buf.push(tag);
        self.buf.push(0);
        Open(self.buf.len())
    }

    /// Closes the constructed value opened at `open`, writing its final length.
    pub fn end(&mut self, open: Open) {
        let content_start = open.0;
        let content_len = self.buf.len() - content_start;
        if content_len < 0x80 {
            self.buf[content_start - 1] = content_len as u8;
            return;
        }
        let mut len_bytes = [0u8; 5];
        let n = long_length(content_len, &mut len_bytes);
        // One byte was reserved; make room for the other n - 1.
        let extra = n - 1;
        let old_end = self.buf.len();
        self.buf.resize(old_end + extra, 0);
        self.buf.copy_within(content_start..old_end, content_start + extra);
        self.buf[content_start - 1..content_start - 1 + n].copy_from_slice(&len_bytes[..n]);
    }

    /// Appends already-encoded octets (a TLV encoded elsewhere).
    pub fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Writes a tag and a definite length.
    pub fn header(&mut self, tag: u8, len: usize) {
        self.buf.push(tag);
        if len < 0x80 {
            self.buf.push(len as u8);
        } else {
            let mut len_bytes = [0u8; 5];
            let n = long_length(len, &mut len_bytes);
            self.buf.extend_from_slice(&len_bytes[..n]);
        }
    }

    /// A signed INTEGER-like value (two's complement, minimal octets) with `tag`.
    pub fn integer(&mut self, tag: u8, v: i64) {
        let bytes = v.to_be_bytes();
        let mut start = 0;
        // Drop leading octets that only repeat the sign of the next one.
        while start < 7 {
            let (b, next) = (bytes[start], bytes[start + 1]);
            if (b == 0x00 && next & 0x80 == 0) || (b == 0xFF && next & 0x80 != 0) {
                start += 1;
            } else {
                break;
            }
        }
        self.header(tag, 8 - start);
        self.buf.extend_from_slice(&bytes[start..]);
    }

    /// An unsigned value (Counter64 and friends) as a non-negative INTEGER with `tag`.
    pub fn unsigned(&mut self, tag: u8, v: u64) {
        if v <= i64::MAX as u64 {
            self.integer(tag, v as i64);
        } else {
            self.header(tag, 9);
            self.buf.push(0);
            self.buf.extend_from_slice(&v.to_be_bytes());
        }
    }

    /// An OCTET STRING-like value with `tag`.
    pub fn octets(&mut self, tag: u8, data: &[u8]) {
        self.header(tag, data.len());
        self.buf.extend_from_slice(data);
    }

    /// NULL, or one of the v2 exceptions when given their tag.
    pub fn null(&mut self, tag: u8) {
        self.buf.push(tag);
        self.buf.push(0);
    }

    /// An OBJECT IDENTIFIER. OIDs shorter than two sub-identifiers are padded with zeros
    /// (`1` is sent as `1.0`, the empty OID as `0.0`), since BER cannot express them.
    pub fn oid(&mut self, oid: &Oid) {
        let arcs = oid.as_slice();
        let first = u64::from(arcs.first().copied().unwrap_or(0));
        let second = u64::from(arcs.get(1).copied().unwrap_or(0));
        let mut content = [0u8; 10];
        let head_len = base128(first * 40 + second, &mut content);
        let rest = arcs.get(2..).unwrap_or(&[]);
        let rest_len: usize = rest.iter().map(|&a| base128_len(u64::from(a))).sum();
        self.header(tag::OBJECT_IDENTIFIER, head_len + rest_len);
        self.buf.extend_from_slice(&content[..head_len]);
        for &arc in rest {
            let n = base128(u64::from(arc), &mut content);
            self.buf.extend_from_slice(&content[..n]);
        }
    }

    /// Any varbind value, with its SNMP tag.
    pub fn value(&mut self, value: &Value) {
        match value {
            Value::Integer(v) => self.integer(tag::INTEGER, i64::from(*v)),
            Value::OctetString(b) => self.octets(tag::OCTET_STRING, b),
            Value::Null => self.null(tag::NULL),
            Value::ObjectId(o) => self.oid(o),
            Value::IpAddress(a) => self.octets(tag::IP_ADDRESS, a),
            Value::Counter32(v) => self.unsigned(tag::COUNTER32, u64::from(*v)),
            Value::Gauge32(v) => self.unsigned(tag::GAUGE32, u64::from(*v)),
            Value::TimeTicks(v) => self.unsigned(tag::TIME_TICKS, u64::from(*v)),
            Value::Opaque(b) => self.octets(tag::OPAQUE, b),
            Value::Counter64(v) => self.unsigned(tag::COUNTER64, *v),
            Value::NoSuchObject => self.null(tag::NO_SUCH_OBJECT),
            Value::NoSuchInstance => self.null(tag::NO_SUCH_INSTANCE),
            Value::EndOfMibView => self.null(tag::END_OF_MIB_VIEW),
        }
    }

    /// A VarBind SEQUENCE { name, value }.
    pub fn varbind(&mut self, oid: &Oid, value: &Value) {
        let open = self.begin(tag::SEQUENCE);
        self.oid(oid);
        self.value(value);
        self.end(open);
    }
}

/// Long-form length octets for `len` (>= 0x80) into `out`; returns how many were written.
fn long_length(len: usize, out: &mut [u8; 5]) -> usize {
    let bytes = (len as u32).to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count();
    let n = 4 - skip;
    out[0] = 0x80 | n as u8;
    out[1..=n].copy_from_slice(&bytes[skip..]);
    n + 1
}

/// Number of base-128 octets needed for `v`.
fn base128_len(v: u64) -> usize {
    let bits = 64 - v.leading_zeros() as usize;
    bits.div_ceil(7).max(1)
}

/// Writes `v` base-128 with continuation bits into `out`; returns the octet count.
fn base128(v: u64, out: &mut [u8; 10]) -> usize {
    let n = base128_len(v);
    for (i, slot) in out[..n].iter_mut().enumerate() {
        let shift = 7 * (n - 1 - i);
        let more = if i + 1 < n { 0x80 } else { 0 };
        *slot = ((v >> shift) & 0x7F) as u8 | more;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(f: impl FnOnce(&mut BerWriter)) -> Vec<u8> {
        let mut buf = Vec::new();
        f(&mut BerWriter::new(&mut buf));
        buf
    }

    #[test]
    fn minimal_integers() {
        assert_eq!(enc(|w| w.integer(2, 0)), [2, 1, 0]);
        assert_eq!(enc(|w| w.integer(2, 127)), [2, 1, 0x7F]);
        assert_eq!(enc(|w| w.integer(2, 128)), [2, 2, 0, 0x80]);
        assert_eq!(enc(|w| w.integer(2, -1)), [2, 1, 0xFF]);
        assert_eq!(enc(|w| w.integer(2, -128)), [2, 1, 0x80]);
        assert_eq!(enc(|w| w.integer(2, -129)), [2, 2, 0xFF, 0x7F]);
        assert_eq!(enc(|w| w.integer(2, i64::from(i32::MIN))), [2, 4, 0x80, 0, 0, 0]);
        assert_eq!(enc(|w| w.unsigned(0x41, u64::from(u32::MAX))), [0x41, 5, 0, 0xFF, 0xFF, 0xFF, 0xFF]);
        assert_eq!(enc(|w| w.unsigned(0x46, u64::MAX)), [0x46, 9, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
    }

    #[test]
    fn oid_encoding() {
        let oid: Oid = "1.3.6.1.4.1.32473.1".parse().unwrap();
        assert_eq!(enc(|w| w.oid(&oid)), [6, 9, 0x2B, 6, 1, 4, 1, 0x81, 0xFD, 0x59, 1]);
        let big = Oid::from_slice(&[2, 999, u32::MAX]);
        assert_eq!(enc(|w| w.oid(&big)), [6, 7, 0x88, 0x37, 0x8F, 0xFF, 0xFF, 0xFF, 0x7F]);
        assert_eq!(enc(|w| w.oid(&Oid::default())), [6, 1, 0]);
    }

    #[test]
    fn long_lengths_shift_content() {
        for len in [0usize, 1, 127, 128, 255, 256, 65535, 70000] {
            let data = vec![0xAB; len];
            let buf = enc(|w| {
                let open = w.begin(0x30);
                w.octets(0x04, &data);
                w.end(open);
            });
            // Header lengths of the inner OCTET STRING and the outer SEQUENCE.
            let hdr = |n: usize| {
                if n < 128 {
                    2
                } else if n < 256 {
                    3
                } else if n < 65536 {
                    4
                } else {
                    5
                }
            };
            let inner = hdr(len) + len;
            assert_eq!(buf.len(), hdr(inner) + inner, "len {len}");
            assert_eq!(buf[0], 0x30);
            assert!(buf.ends_with(&data));
        }
    }
}
