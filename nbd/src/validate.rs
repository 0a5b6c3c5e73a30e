//! Server-side checks of a request header against what was negotiated, before any I/O.
//!
//! Pure so it can be fuzzed and unit tested apart from any backend. The order of checks follows the spec's
//! error advice: unknown command and flags first (EINVAL), then read-only (EPERM), then size limits (EINVAL) and
//! range (EINVAL, or ENOSPC for writes past the end).

use crate::constants::*;
use crate::transmission::{Errno, RequestHeader};

/// What a connection negotiated for its export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportLimits {
    /// Export size in bytes.
    pub size: u64,
    pub read_only: bool,
    /// Largest READ or WRITE payload (NBD_INFO_BLOCK_SIZE maximum).
    pub max_payload: u32,
    /// Whether a metadata context was negotiated, which is what makes NBD_CMD_BLOCK_STATUS valid.
    pub block_status: bool,
}

/// A request the server accepted, with the flags that matter for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Read,
    Write {
        fua: bool,
    },
    Disconnect,
    Flush,
    Trim {
        fua: bool,
    },
    WriteZeroes {
        fua: bool,
        no_hole: bool,
    },
    /// NBD_CMD_BLOCK_STATUS; `req_one`: answer with one extent only.
    BlockStatus {
        req_one: bool,
    },
}

/// Why a request was refused; each has its spec error value and a counter name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    UnknownCommand(u16),
    /// A flag not defined, not negotiated, or not valid for this command.
    BadFlags(u16),
    ReadOnly,
    /// READ or WRITE longer than the maximum payload.
    TooLarge(u32),
    /// Range outside the export (or offset + length overflows).
    OutOfRange,
    /// A write past the end of the export (the spec asks for ENOSPC there).
    NoSpace,
    /// FLUSH or DISC with a non-zero offset or length.
    ReservedFields,
    /// BLOCK_STATUS without a negotiated metadata context.
    NoMetaContext,
    /// BLOCK_STATUS of zero bytes.
    ZeroLength,
}

impl Refusal {
    pub fn errno(&self) -> Errno {
        match self {
            Refusal::UnknownCommand(_)
            | Refusal::BadFlags(_)
            | Refusal::TooLarge(_)
            | Refusal::OutOfRange
            | Refusal::ReservedFields
            | Refusal::NoMetaContext
            | Refusal::ZeroLength => Errno::EINVAL,
            Refusal::ReadOnly => Errno::EPERM,
            Refusal::NoSpace => Errno::ENOSPC,
        }
    }

    /// A short text for logs and error chunks.
    pub fn message(&self) -> &'static str {
        match self {
            Refusal::UnknownCommand(_) => "unknown or unsupported command",
            Refusal::BadFlags(_) => "command flags not valid for this command",
            Refusal::ReadOnly => "the export is read-only for this host",
            Refusal::TooLarge(_) => "request length is over the maximum payload size",
            Refusal::OutOfRange => "offset and length are outside the export",
            Refusal::NoSpace => "write extends past the end of the export",
            Refusal::ReservedFields => "offset and length must be zero for this command",
            Refusal::NoMetaContext => "block status needs a metadata context (NBD_OPT_SET_META_CONTEXT)",
            Refusal::ZeroLength => "block status of zero bytes",
        }
    }
}

/// Check a request header. Does not look at payload bytes; a refused WRITE's payload must still be consumed (or
/// the connection closed) by the caller.
pub fn validate_request(req: &RequestHeader, limits: &ExportLimits) -> Result<Command, Refusal> {
    let fua = req.flags & CMD_FLAG_FUA != 0;
    let allowed_flags = match req.command {
        CMD_READ | CMD_WRITE | CMD_DISC | CMD_FLUSH | CMD_TRIM => CMD_FLAG_FUA,
        CMD_WRITE_ZEROES => CMD_FLAG_FUA | CMD_FLAG_NO_HOLE,
        // FUA is valid on every command (it means nothing for this one).
        CMD_BLOCK_STATUS if limits.block_status => CMD_FLAG_REQ_ONE | CMD_FLAG_FUA,
        CMD_BLOCK_STATUS => return Err(Refusal::NoMetaContext),
        other => return Err(Refusal::UnknownCommand(other)),
    };
    if req.flags & !allowed_flags != 0 {
        return Err(Refusal::BadFlags(req.flags));
    }
    if req.command == CMD_BLOCK_STATUS && req.length == 0 {
        return Err(Refusal::ZeroLength);
    }
    let writes = matches!(req.command, CMD_WRITE | CMD_TRIM | CMD_WRITE_ZEROES);
    if writes && limits.read_only {
        return Err(Refusal::ReadOnly);
    }
    if matches!(req.command, CMD_FLUSH | CMD_DISC) {
        if req.offset != 0 || req.length != 0 {
            return Err(Refusal::ReservedFields);
        }
        return Ok(if req.command == CMD_FLUSH { Command::Flush } else { Command::Disconnect });
    }
    if matches!(req.command, CMD_READ | CMD_WRITE) && req.length > limits.max_payload {
        return Err(Refusal::TooLarge(req.length));
    }
    let in_range = req.offset.checked_add(u64::from(req.length)).is_some_and(|end| end <= limits.size);
    if !in_range {
        return Err(if matches!(req.command, CMD_WRITE | CMD_WRITE_ZEROES) && req.offset <= limits.size {
            Refusal::NoSpace
        } else {
            Refusal::OutOfRange
        });
    }
    Ok(match req.command {
        CMD_READ => Command::Read,
        CMD_WRITE => Command::Write { fua },
        CMD_TRIM => Command::Trim { fua },
        CMD_BLOCK_STATUS => Command::BlockStatus { req_one: req.flags & CMD_FLAG_REQ_ONE != 0 },
        _ => Command::WriteZeroes { fua, no_hole: req.flags & CMD_FLAG_NO_HOLE != 0 },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ExportLimits =
        ExportLimits { size: 1 << 20, read_only: false, max_payload: DEFAULT_MAX_PAYLOAD, block_status: false };

    fn req(command: u16, flags: u16, offset: u64, length: u32) -> RequestHeader {
        RequestHeader { flags, command, handle: 1, offset, length }
    }

    #[test]
    fn accepted_requests() {
        assert_eq!(validate_request(&req(CMD_READ, 0, 0, 4096), &LIMITS), Ok(Command::Read));
        assert_eq!(validate_request(&req(CMD_READ, 0, 3, 5), &LIMITS), Ok(Command::Read), "byte granular");
        assert_eq!(validate_request(&req(CMD_WRITE, 1, (1 << 20) - 1, 1), &LIMITS), Ok(Command::Write { fua: true }));
        assert_eq!(
            validate_request(&req(CMD_WRITE_ZEROES, CMD_FLAG_NO_HOLE, 0, 1 << 20), &LIMITS),
            Ok(Command::WriteZeroes { fua: false, no_hole: true })
        );
        assert_eq!(validate_request(&req(CMD_FLUSH, 0, 0, 0), &LIMITS), Ok(Command::Flush));
        assert_eq!(validate_request(&req(CMD_DISC, 0, 0, 0), &LIMITS), Ok(Command::Disconnect));
        let meta = ExportLimits { block_status: true, read_only: true, ..LIMITS };
        assert_eq!(
            validate_request(&req(CMD_BLOCK_STATUS, CMD_FLAG_REQ_ONE, 0, u32::MAX >> 12), &meta),
            Ok(Command::BlockStatus { req_one: true }),
            "read-only exports have block status too"
        );
    }

    #[test]
    fn block_status_needs_a_context_a_length_and_the_range() {
        let meta = ExportLimits { block_status: true, ..LIMITS };
        assert_eq!(validate_request(&req(CMD_BLOCK_STATUS, 0, 0, 1), &LIMITS), Err(Refusal::NoMetaContext));
        assert_eq!(validate_request(&req(CMD_BLOCK_STATUS, 0, 0, 0), &meta), Err(Refusal::ZeroLength));
        assert_eq!(
            validate_request(&req(CMD_BLOCK_STATUS, CMD_FLAG_NO_HOLE, 0, 1), &meta),
            Err(Refusal::BadFlags(CMD_FLAG_NO_HOLE))
        );
        assert_eq!(
            validate_request(&req(CMD_BLOCK_STATUS, CMD_FLAG_FUA, 0, 1), &meta),
            Ok(Command::BlockStatus { req_one: false })
        );
        assert_eq!(validate_request(&req(CMD_BLOCK_STATUS, 0, 1 << 20, 1), &meta), Err(Refusal::OutOfRange));
    }

    #[test]
    fn refusals_and_their_errors() {
        let check = |r: RequestHeader, limits: &ExportLimits| validate_request(&r, limits).map_err(|e| e.errno());
        assert_eq!(check(req(99, 0, 0, 0), &LIMITS), Err(Errno::EINVAL));
        assert_eq!(check(req(CMD_BLOCK_STATUS, 0, 0, 1), &LIMITS), Err(Errno::EINVAL));
        assert_eq!(check(req(CMD_READ, CMD_FLAG_NO_HOLE, 0, 1), &LIMITS), Err(Errno::EINVAL));
        assert_eq!(check(req(CMD_READ, CMD_FLAG_DF, 0, 1), &LIMITS), Err(Errno::EINVAL));
        assert_eq!(check(req(CMD_READ, 0, 0, u32::MAX), &LIMITS), Err(Errno::EINVAL));
        assert_eq!(check(req(CMD_READ, 0, 1 << 20, 1), &LIMITS), Err(Errno::EINVAL));
        assert_eq!(check(req(CMD_READ, 0, u64::MAX, 2), &LIMITS), Err(Errno::EINVAL));
        assert_eq!(check(req(CMD_WRITE, 0, (1 << 20) - 1, 2), &LIMITS), Err(Errno::ENOSPC));
        assert_eq!(check(req(CMD_WRITE, 0, u64::MAX, 2), &LIMITS), Err(Errno::EINVAL));
        assert_eq!(check(req(CMD_FLUSH, 0, 1, 0), &LIMITS), Err(Errno::EINVAL));
        let ro = ExportLimits { read_only: true, ..LIMITS };
        assert_eq!(check(req(CMD_WRITE, 0, 0, 1), &ro), Err(Errno::EPERM));
        assert_eq!(check(req(CMD_TRIM, 0, 0, 1), &ro), Err(Errno::EPERM));
        assert_eq!(check(req(CMD_WRITE_ZEROES, 0, 0, 1), &ro), Err(Errno::EPERM));
        assert_eq!(check(req(CMD_READ, 0, 0, 1), &ro), Ok(Command::Read).map_err(|_: Refusal| Errno(0)));
        // Trim and write-zeroes carry no payload, so they may exceed the payload limit.
        let big = ExportLimits { size: 1 << 40, ..LIMITS };
        assert!(check(req(CMD_TRIM, 0, 0, u32::MAX), &big).is_ok());
    }
}
