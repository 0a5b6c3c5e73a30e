//! The transmission phase: requests, simple replies and structured reply chunks.
//!
//! Headers have fixed sizes, so the server can parse every complete request sitting in its read buffer and
//! append the replies to one output buffer; encoders therefore write into caller-owned buffers and never allocate
//! per request.

use crate::constants::*;
use crate::error::DecodeError;
use crate::wire::{parse_string, truncate_str, Cursor};
use std::fmt;

/// Transmission flags of an export (NBD_FLAG_*), as sent after option haggling.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransmissionFlags(pub u16);

impl TransmissionFlags {
    pub fn has(&self, flag: u16) -> bool {
        self.0 & flag == flag
    }
    pub fn read_only(&self) -> bool {
        self.has(FLAG_READ_ONLY)
    }
}

/// An NBD error value as carried in replies (errno-like, but fixed by the spec).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(pub u32);

impl Errno {
    pub const EPERM: Errno = Errno(1);
    pub const EIO: Errno = Errno(5);
    pub const ENOMEM: Errno = Errno(12);
    pub const EINVAL: Errno = Errno(22);
    pub const ENOSPC: Errno = Errno(28);
    pub const EOVERFLOW: Errno = Errno(75);
    pub const ENOTSUP: Errno = Errno(95);
    pub const ESHUTDOWN: Errno = Errno(108);

    pub fn name(&self) -> &'static str {
        match self.0 {
            1 => "EPERM",
            5 => "EIO",
            12 => "ENOMEM",
            22 => "EINVAL",
            28 => "ENOSPC",
            75 => "EOVERFLOW",
            95 => "ENOTSUP",
            108 => "ESHUTDOWN",
            _ => "unknown error",
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}

/// The 28-byte request header. For NBD_CMD_WRITE, `length` bytes of payload follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHeader {
    pub flags: u16,
    pub command: u16,
    pub handle: u64,
    pub offset: u64,
    pub length: u32,
}

impl RequestHeader {
    /// Decode a header from the start of `buf`: `Ok(None)` if fewer than 28 bytes are there yet, an error if the
    /// magic is wrong (the stream is then unusable). Says nothing about whether the request is acceptable: that is
    /// `validate`'s job, against what the connection negotiated.
    pub fn decode(buf: &[u8]) -> Result<Option<RequestHeader>, DecodeError> {
        if buf.len() < REQUEST_HEADER_LEN {
            return Ok(None);
        }
        let mut c = Cursor::new(buf);
        let magic = c.u32()?;
        if magic != REQUEST_MAGIC {
            return Err(DecodeError::BadMagic { expected: u64::from(REQUEST_MAGIC), found: u64::from(magic) });
        }
        Ok(Some(RequestHeader {
            flags: c.u16()?,
            command: c.u16()?,
            handle: c.u64()?,
            offset: c.u64()?,
            length: c.u32()?,
        }))
    }

    pub fn encode(&self) -> [u8; REQUEST_HEADER_LEN] {
        let mut out = [0u8; REQUEST_HEADER_LEN];
        out[0..4].copy_from_slice(&REQUEST_MAGIC.to_be_bytes());
        out[4..6].copy_from_slice(&self.flags.to_be_bytes());
        out[6..8].copy_from_slice(&self.command.to_be_bytes());
        out[8..16].copy_from_slice(&self.handle.to_be_bytes());
        out[16..24].copy_from_slice(&self.offset.to_be_bytes());
        out[24..28].copy_from_slice(&self.length.to_be_bytes());
        out
    }

    /// Bytes of payload that follow this header on the wire.
    pub fn payload_len(&self) -> u32 {
        if self.command == CMD_WRITE {
            self.length
        } else {
            0
        }
    }
}

/// The 16-byte simple reply header. For a successful READ without structured replies, the data follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimpleReplyHeader {
    pub error: u32,
    pub handle: u64,
}

impl SimpleReplyHeader {
    pub fn encode_into(&self, out: &mut [u8; SIMPLE_REPLY_HEADER_LEN]) {
        out[0..4].copy_from_slice(&SIMPLE_REPLY_MAGIC.to_be_bytes());
        out[4..8].copy_from_slice(&self.error.to_be_bytes());
        out[8..16].copy_from_slice(&self.handle.to_be_bytes());
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut h = [0u8; SIMPLE_REPLY_HEADER_LEN];
        self.encode_into(&mut h);
        out.extend_from_slice(&h);
    }

    pub fn decode(buf: &[u8]) -> Result<SimpleReplyHeader, DecodeError> {
        let mut c = Cursor::new(buf);
        let magic = c.u32()?;
        if magic != SIMPLE_REPLY_MAGIC {
            return Err(DecodeError::BadMagic { expected: u64::from(SIMPLE_REPLY_MAGIC), found: u64::from(magic) });
        }
        Ok(SimpleReplyHeader { error: c.u32()?, handle: c.u64()? })
    }
}

/// The 20-byte header of a structured reply chunk; `length` bytes of payload follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkHeader {
    pub flags: u16,
    pub kind: u16,
    pub handle: u64,
    pub length: u32,
}

impl ChunkHeader {
    pub fn encode_into(&self, out: &mut [u8; CHUNK_HEADER_LEN]) {
        out[0..4].copy_from_slice(&STRUCTURED_REPLY_MAGIC.to_be_bytes());
        out[4..6].copy_from_slice(&self.flags.to_be_bytes());
        out[6..8].copy_from_slice(&self.kind.to_be_bytes());
        out[8..16].copy_from_slice(&self.handle.to_be_bytes());
        out[16..20].copy_from_slice(&self.length.to_be_bytes());
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut h = [0u8; CHUNK_HEADER_LEN];
        self.encode_into(&mut h);
        out.extend_from_slice(&h);
    }

    /// Decode a chunk header; a payload longer than `max_payload` is an error before anyone allocates for it.
    pub fn decode(buf: &[u8], max_payload: u32) -> Result<ChunkHeader, DecodeError> {
        let mut c = Cursor::new(buf);
        let magic = c.u32()?;
        if magic != STRUCTURED_REPLY_MAGIC {
            return Err(DecodeError::BadMagic { expected: u64::from(STRUCTURED_REPLY_MAGIC), found: u64::from(magic) });
        }
        let h = ChunkHeader { flags: c.u16()?, kind: c.u16()?, handle: c.u64()?, length: c.u32()? };
        if h.length > max_payload {
            return Err(DecodeError::ReplyTooLong { length: h.length, max: max_payload });
        }
        Ok(h)
    }

    pub fn is_done(&self) -> bool {
        self.flags & REPLY_FLAG_DONE != 0
    }

    pub fn is_error(&self) -> bool {
        self.kind & REPLY_TYPE_FLAG_ERROR != 0
    }
}

/// Either magic may start a reply once structured replies are negotiated; peek at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    Simple,
    Structured,
}

pub fn peek_reply_kind(buf: &[u8]) -> Result<ReplyKind, DecodeError> {
    let magic = Cursor::new(buf).u32()?;
    match magic {
        SIMPLE_REPLY_MAGIC => Ok(ReplyKind::Simple),
        STRUCTURED_REPLY_MAGIC => Ok(ReplyKind::Structured),
        found => Err(DecodeError::BadMagic { expected: u64::from(SIMPLE_REPLY_MAGIC), found: u64::from(found) }),
    }
}

/// Size of the header written by [`encode_data_chunk_header`]: chunk header plus the 8-byte offset.
pub const DATA_CHUNK_PREFIX_LEN: usize = CHUNK_HEADER_LEN + 8;

/// The prefix of an NBD_REPLY_TYPE_OFFSET_DATA chunk carrying `data_len` bytes at `offset`; the data follows.
pub fn encode_data_chunk_header(
    out: &mut [u8; DATA_CHUNK_PREFIX_LEN],
    handle: u64,
    offset: u64,
    data_len: u32,
    done: bool,
) {
    let mut h = [0u8; CHUNK_HEADER_LEN];
    ChunkHeader {
        flags: if done { REPLY_FLAG_DONE } else { 0 },
        kind: REPLY_TYPE_OFFSET_DATA,
        handle,
        length: data_len.saturating_add(8),
    }
    .encode_into(&mut h);
    out[..CHUNK_HEADER_LEN].copy_from_slice(&h);
    out[CHUNK_HEADER_LEN..].copy_from_slice(&offset.to_be_bytes());
}

/// A final NBD_REPLY_TYPE_NONE chunk.
pub fn encode_done_chunk(out: &mut Vec<u8>, handle: u64) {
    ChunkHeader { flags: REPLY_FLAG_DONE, kind: REPLY_TYPE_NONE, handle, length: 0 }.encode(out);
}

/// A final NBD_REPLY_TYPE_ERROR chunk with a message for a human (cut to fit the 16-bit length).
pub fn encode_error_chunk(out: &mut Vec<u8>, handle: u64, error: Errno, message: &str) {
    let msg = truncate_str(message, MAX_STRING_LEN);
    let msg_len = msg.len() as u16; // MAX_STRING_LEN < u16::MAX
    ChunkHeader { flags: REPLY_FLAG_DONE, kind: REPLY_TYPE_ERROR, handle, length: 6 + u32::from(msg_len) }.encode(out);
    out.extend_from_slice(&error.0.to_be_bytes());
    out.extend_from_slice(&msg_len.to_be_bytes());
    out.extend_from_slice(msg.as_bytes());
}

/// A final NBD_REPLY_TYPE_ERROR_OFFSET chunk: the request failed at export offset `offset` (data chunks already
/// sent for it are good up to there).
pub fn encode_error_offset_chunk(out: &mut Vec<u8>, handle: u64, error: Errno, message: &str, offset: u64) {
    let msg = truncate_str(message, MAX_STRING_LEN);
    let msg_len = msg.len() as u16; // MAX_STRING_LEN < u16::MAX
    let length = 6 + u32::from(msg_len) + 8;
    ChunkHeader { flags: REPLY_FLAG_DONE, kind: REPLY_TYPE_ERROR_OFFSET, handle, length }.encode(out);
    out.extend_from_slice(&error.0.to_be_bytes());
    out.extend_from_slice(&msg_len.to_be_bytes());
    out.extend_from_slice(msg.as_bytes());
    out.extend_from_slice(&offset.to_be_bytes());
}

/// An NBD_REPLY_TYPE_BLOCK_STATUS chunk for context `context`: (length, status flags) per extent, in order.
pub fn encode_block_status_chunk(out: &mut Vec<u8>, handle: u64, context: u32, extents: &[(u32, u32)], done: bool) {
    let length = u32::try_from(4 + 8 * extents.len()).unwrap_or(u32::MAX);
    let flags = if done { REPLY_FLAG_DONE } else { 0 };
    ChunkHeader { flags, kind: REPLY_TYPE_BLOCK_STATUS, handle, length }.encode(out);
    out.extend_from_slice(&context.to_be_bytes());
    for (len, status) in extents {
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&status.to_be_bytes());
    }
}

/// The payload of an error chunk (NBD_REPLY_TYPE_ERROR or _ERROR_OFFSET).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorChunk {
    pub error: Errno,
    pub message: String,
    pub offset: Option<u64>,
}

impl ErrorChunk {
    pub fn parse(kind: u16, payload: &[u8]) -> Result<ErrorChunk, DecodeError> {
        let mut c = Cursor::new(payload);
        let error = Errno(c.u32()?);
        if error.0 == 0 {
            return Err(DecodeError::Invalid("error chunk with error value zero"));
        }
        let msg_len = usize::from(c.u16()?);
        let message = parse_string(c.bytes(msg_len)?)?;
        let offset = if kind == REPLY_TYPE_ERROR_OFFSET { Some(c.u64()?) } else { None };
        Ok(ErrorChunk { error, message, offset })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_offset_chunk_round_trip() {
        let mut out = Vec::new();
        encode_error_offset_chunk(&mut out, 9, Errno::EIO, "bad page", 1 << 40);
        let h = ChunkHeader::decode(&out[..CHUNK_HEADER_LEN], 1 << 20).unwrap();
        assert_eq!(
            (h.kind, h.handle, h.is_done(), h.length as usize),
            (REPLY_TYPE_ERROR_OFFSET, 9, true, out.len() - 20)
        );
        let e = ErrorChunk::parse(h.kind, &out[CHUNK_HEADER_LEN..]).unwrap();
        assert_eq!(e, ErrorChunk { error: Errno::EIO, message: "bad page".into(), offset: Some(1 << 40) });
    }

    #[test]
    fn request_round_trip() {
        let r = RequestHeader { flags: CMD_FLAG_FUA, command: CMD_WRITE, handle: 7, offset: 4096, length: 512 };
        let bytes = r.encode();
        assert_eq!(RequestHeader::decode(&bytes).unwrap(), Some(r));
        assert_eq!(RequestHeader::decode(&bytes[..27]).unwrap(), None);
        assert_eq!(r.payload_len(), 512);
        let mut bad = bytes;
        bad[0] ^= 1;
        assert!(RequestHeader::decode(&bad).is_err());
    }

    #[test]
    fn replies_round_trip() {
        let mut out = Vec::new();
        SimpleReplyHeader { error: 22, handle: 9 }.encode(&mut out);
        assert_eq!(peek_reply_kind(&out).unwrap(), ReplyKind::Simple);
        assert_eq!(SimpleReplyHeader::decode(&out).unwrap(), SimpleReplyHeader { error: 22, handle: 9 });

        let mut out = Vec::new();
        encode_error_chunk(&mut out, 3, Errno::EPERM, "read-only");
        let h = ChunkHeader::decode(&out, 1024).unwrap();
        assert!(h.is_done() && h.is_error());
        let e = ErrorChunk::parse(h.kind, &out[CHUNK_HEADER_LEN..]).unwrap();
        assert_eq!(e, ErrorChunk { error: Errno::EPERM, message: "read-only".into(), offset: None });
        assert!(ChunkHeader::decode(&out, 4).is_err(), "over the caller's payload limit");

        let mut p = [0u8; DATA_CHUNK_PREFIX_LEN];
        encode_data_chunk_header(&mut p, 5, 1 << 33, 4096, true);
        let h = ChunkHeader::decode(&p, u32::MAX).unwrap();
        assert_eq!((h.kind, h.length, h.handle), (REPLY_TYPE_OFFSET_DATA, 4104, 5));
    }
}
