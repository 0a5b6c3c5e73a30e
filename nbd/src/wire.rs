//! Bounds-checked big-endian reading of byte buffers, shared by the decoders.
//!
//! Every read returns [`DecodeError::Truncated`] instead of indexing past the end, so the decoders can take any
//! bytes (the fuzz targets feed them arbitrary input) without panicking.

use crate::error::DecodeError;

pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::Truncated)?;
        let out = self.buf.get(self.pos..end).ok_or(DecodeError::Truncated)?;
        self.pos = end;
        Ok(out)
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let out = self.buf.get(self.pos..).unwrap_or(&[]);
        self.pos = self.buf.len();
        out
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
}

/// An NBD string: UTF-8, no NUL, at most [`crate::constants::MAX_STRING_LEN`] bytes.
pub(crate) fn parse_string(bytes: &[u8]) -> Result<String, DecodeError> {
    if bytes.len() > crate::constants::MAX_STRING_LEN {
        return Err(DecodeError::Invalid("string longer than 4096 bytes"));
    }
    if bytes.contains(&0) {
        return Err(DecodeError::Invalid("string contains a NUL byte"));
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::Invalid("string is not valid UTF-8"))
}

/// Length of a string as a u32 field, capped so a caller's oversized string cannot wrap the field.
pub(crate) fn string_len(s: &str) -> u32 {
    u32::try_from(s.len()).unwrap_or(u32::MAX)
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub(crate) fn truncate_str(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::constants::MAX_STRING_LEN;

    #[test]
    fn long_messages_are_cut_on_a_char_boundary() {
        let s = "é".repeat(3000);
        let t = truncate_str(&s, MAX_STRING_LEN);
        assert!(t.len() <= MAX_STRING_LEN && t.len() >= MAX_STRING_LEN - 1);
    }
}
