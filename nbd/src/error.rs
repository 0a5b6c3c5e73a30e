//! Why bytes from the wire were not a valid NBD message.
//!
//! Decoders return these instead of panicking; the server maps them to an option error reply, a request error or
//! a closed connection, and counts them.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("bad magic: expected {expected:#x}, got {found:#x}")]
    BadMagic { expected: u64, found: u64 },
    #[error("option payload of {0} bytes is over the limit of {max} bytes", max = crate::constants::MAX_OPTION_PAYLOAD)]
    OptionTooLong(u32),
    #[error("reply payload of {length} bytes is over the limit of {max} bytes")]
    ReplyTooLong { length: u32, max: u32 },
    #[error("unknown client flags {0:#x}")]
    UnknownClientFlags(u32),
    #[error("message is shorter than its fields")]
    Truncated,
    #[error("{0}")]
    Invalid(&'static str),
    /// Valid, but more than this implementation takes (answered NBD_REP_ERR_TOO_BIG during option haggling).
    #[error("{0}")]
    TooBig(&'static str),
}
