//! Fuzz the transmission decoders and the server's request validation with an arbitrary byte stream.
//!
//! The first 9 bytes choose the export (size, read-only); the rest is read as the server reads requests: header,
//! then a WRITE's payload. Properties: no panic; an accepted READ or WRITE lies inside the export and within the
//! maximum payload; reply decoders (client side) never panic either.

#![no_main]

use dvsan_nbd::constants::*;
use dvsan_nbd::transmission::{peek_reply_kind, ChunkHeader, ErrorChunk, SimpleReplyHeader};
use dvsan_nbd::{validate_request, Command, ExportLimits, RequestHeader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 9 {
        return;
    }
    let size = u64::from_be_bytes([data[0], data[1], data[2], data[3], data[4], data[5], data[6], data[7]]);
    let limits = ExportLimits {
        size,
        read_only: data[8] & 1 == 1,
        max_payload: DEFAULT_MAX_PAYLOAD,
        block_status: data[8] & 2 == 2,
    };
    let stream = &data[9..];

    let mut rest = stream;
    loop {
        let header = match RequestHeader::decode(rest) {
            Ok(Some(h)) => h,
            Ok(None) | Err(_) => break,
        };
        assert_eq!(RequestHeader::decode(&header.encode()), Ok(Some(header)));
        rest = &rest[REQUEST_HEADER_LEN..];
        match validate_request(&header, &limits) {
            Ok(Command::Read | Command::Write { .. }) => {
                assert!(header.length <= limits.max_payload);
                assert!(header.offset.checked_add(u64::from(header.length)).is_some_and(|end| end <= size));
            }
            Ok(Command::Trim { .. } | Command::WriteZeroes { .. }) => {
                assert!(!limits.read_only);
                assert!(header.offset.checked_add(u64::from(header.length)).is_some_and(|end| end <= size));
            }
            Ok(Command::Flush | Command::Disconnect) => assert_eq!((header.offset, header.length), (0, 0)),
            Ok(Command::BlockStatus { .. }) => {
                assert!(limits.block_status && header.length > 0);
                assert!(header.offset.checked_add(u64::from(header.length)).is_some_and(|end| end <= size));
            }
            Err(refusal) => assert_ne!(refusal.errno().0, 0),
        }
        let skip = (header.payload_len() as usize).min(rest.len());
        rest = &rest[skip..];
    }

    // Client side: replies.
    let mut rest = stream;
    while rest.len() >= 4 {
        match peek_reply_kind(rest) {
            Ok(dvsan_nbd::transmission::ReplyKind::Simple) => {
                let Ok(_) = SimpleReplyHeader::decode(rest) else { break };
                rest = &rest[rest.len().min(SIMPLE_REPLY_HEADER_LEN)..];
            }
            Ok(dvsan_nbd::transmission::ReplyKind::Structured) => {
                let Ok(h) = ChunkHeader::decode(rest, 65536) else { break };
                rest = &rest[CHUNK_HEADER_LEN..];
                let len = (h.length as usize).min(rest.len());
                if h.is_error() {
                    let _ = ErrorChunk::parse(h.kind, &rest[..len]);
                }
                rest = &rest[len..];
            }
            Err(_) => break,
        }
    }
});
