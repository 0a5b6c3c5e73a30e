//! The fixed-newstyle handshake: greeting, client flags, options and option replies.
//!
//! Encoders append to a `Vec<u8>` so a caller can batch several messages into one write; decoders take a byte
//! slice, never allocate more than the message's (bounded) length, and never panic. The server uses
//! [`OptionHeader::decode`] and [`ClientOption::parse`]; the client uses the reply decoders.

use crate::constants::*;
use crate::error::DecodeError;
use crate::transmission::TransmissionFlags;
use crate::wire::{parse_string, string_len, truncate_str, Cursor};

/// The server greeting: `NBDMAGIC`, `IHAVEOPT`, handshake flags.
pub fn encode_greeting(out: &mut Vec<u8>, handshake_flags: u16) {
    out.extend_from_slice(&NBD_MAGIC.to_be_bytes());
    out.extend_from_slice(&IHAVEOPT.to_be_bytes());
    out.extend_from_slice(&handshake_flags.to_be_bytes());
}

/// Decode the greeting (18 bytes), returning the handshake flags. Oldstyle servers send `NBDMAGIC` followed by a
/// different magic and are refused.
pub fn decode_greeting(buf: &[u8]) -> Result<u16, DecodeError> {
    let mut c = Cursor::new(buf);
    expect_magic(c.u64()?, NBD_MAGIC)?;
    expect_magic(c.u64()?, IHAVEOPT)?;
    c.u16()
}

/// What the client said in its flags, checked against what the server offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientFlags {
    pub fixed_newstyle: bool,
    pub no_zeroes: bool,
}

impl ClientFlags {
    /// The server MUST drop the connection if the client sets an unknown flag or one the server did not offer.
    pub fn decode(flags: u32, server_flags: u16) -> Result<ClientFlags, DecodeError> {
        let mut allowed = FLAG_C_FIXED_NEWSTYLE;
        if server_flags & FLAG_NO_ZEROES != 0 {
            allowed |= FLAG_C_NO_ZEROES;
        }
        if flags & !allowed != 0 {
            return Err(DecodeError::UnknownClientFlags(flags));
        }
        Ok(ClientFlags { fixed_newstyle: flags & FLAG_C_FIXED_NEWSTYLE != 0, no_zeroes: flags & FLAG_C_NO_ZEROES != 0 })
    }

    pub fn encode(&self) -> u32 {
        let mut f = 0;
        if self.fixed_newstyle {
            f |= FLAG_C_FIXED_NEWSTYLE;
        }
        if self.no_zeroes {
            f |= FLAG_C_NO_ZEROES;
        }
        f
    }
}

/// The fixed 16-byte part of a client option: magic, option code, payload length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionHeader {
    pub option: u32,
    pub length: u32,
}

impl OptionHeader {
    /// Decode a header. A payload over [`MAX_OPTION_PAYLOAD`] is an error here, before anyone allocates for it.
    pub fn decode(buf: &[u8]) -> Result<OptionHeader, DecodeError> {
        let mut c = Cursor::new(buf);
        expect_magic(c.u64()?, IHAVEOPT)?;
        let option = c.u32()?;
        let length = c.u32()?;
        if length > MAX_OPTION_PAYLOAD {
            return Err(DecodeError::OptionTooLong(length));
        }
        Ok(OptionHeader { option, length })
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&IHAVEOPT.to_be_bytes());
        out.extend_from_slice(&self.option.to_be_bytes());
        out.extend_from_slice(&self.length.to_be_bytes());
    }
}

/// The export name and information types of an NBD_OPT_INFO or NBD_OPT_GO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfoRequest {
    pub name: String,
    pub requests: Vec<u16>,
}

impl InfoRequest {
    pub fn wants(&self, info: u16) -> bool {
        self.requests.contains(&info)
    }
}

/// A client option, parsed from its code and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientOption {
    ExportName(String),
    Abort,
    List,
    StartTls,
    Info(InfoRequest),
    Go(InfoRequest),
    StructuredReply,
    ListMetaContext(MetaContextRequest),
    SetMetaContext(MetaContextRequest),
    /// Any option this codec does not parse (extended headers, unknown codes): answered NBD_REP_ERR_UNSUP by the
    /// server.
    Other(u32),
}

/// NBD_OPT_LIST_META_CONTEXT / NBD_OPT_SET_META_CONTEXT data: an export and the context names or queries
/// asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaContextRequest {
    pub export: String,
    pub queries: Vec<String>,
}

impl ClientOption {
    /// Parse an option payload. Errors are answered NBD_REP_ERR_INVALID (except for NBD_OPT_EXPORT_NAME, which
    /// cannot be answered and ends the session).
    pub fn parse(option: u32, payload: &[u8]) -> Result<ClientOption, DecodeError> {
        let no_data = |o: ClientOption| {
            if payload.is_empty() {
                Ok(o)
            } else {
                Err(DecodeError::Invalid("this option takes no data"))
            }
        };
        match option {
            OPT_EXPORT_NAME => Ok(ClientOption::ExportName(parse_string(payload)?)),
            // The spec says ABORT has no data, but also that the server should handle it gracefully.
            OPT_ABORT => Ok(ClientOption::Abort),
            OPT_LIST => no_data(ClientOption::List),
            OPT_STARTTLS => no_data(ClientOption::StartTls),
            OPT_STRUCTURED_REPLY => no_data(ClientOption::StructuredReply),
            OPT_INFO => Ok(ClientOption::Info(parse_info_request(payload)?)),
            OPT_GO => Ok(ClientOption::Go(parse_info_request(payload)?)),
            OPT_LIST_META_CONTEXT => Ok(ClientOption::ListMetaContext(parse_meta_context_request(payload)?)),
            OPT_SET_META_CONTEXT => Ok(ClientOption::SetMetaContext(parse_meta_context_request(payload)?)),
            other => Ok(ClientOption::Other(other)),
        }
    }

    pub fn code(&self) -> u32 {
        match self {
            ClientOption::ExportName(_) => OPT_EXPORT_NAME,
            ClientOption::Abort => OPT_ABORT,
            ClientOption::List => OPT_LIST,
            ClientOption::StartTls => OPT_STARTTLS,
            ClientOption::Info(_) => OPT_INFO,
            ClientOption::Go(_) => OPT_GO,
            ClientOption::StructuredReply => OPT_STRUCTURED_REPLY,
            ClientOption::ListMetaContext(_) => OPT_LIST_META_CONTEXT,
            ClientOption::SetMetaContext(_) => OPT_SET_META_CONTEXT,
            ClientOption::Other(code) => *code,
        }
    }

    /// Header and payload, as a client sends them.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut payload = Vec::new();
        match self {
            ClientOption::ExportName(name) => payload.extend_from_slice(name.as_bytes()),
            ClientOption::Info(req) | ClientOption::Go(req) => {
                payload.extend_from_slice(&string_len(&req.name).to_be_bytes());
                payload.extend_from_slice(req.name.as_bytes());
                let n = u16::try_from(req.requests.len()).unwrap_or(u16::MAX);
                payload.extend_from_slice(&n.to_be_bytes());
                for r in req.requests.iter().take(usize::from(n)) {
                    payload.extend_from_slice(&r.to_be_bytes());
                }
            }
            ClientOption::ListMetaContext(req) | ClientOption::SetMetaContext(req) => {
                payload.extend_from_slice(&string_len(&req.export).to_be_bytes());
                payload.extend_from_slice(req.export.as_bytes());
                payload.extend_from_slice(&u32::try_from(req.queries.len()).unwrap_or(u32::MAX).to_be_bytes());
                for q in &req.queries {
                    payload.extend_from_slice(&string_len(q).to_be_bytes());
                    payload.extend_from_slice(q.as_bytes());
                }
            }
            _ => {}
        }
        let length = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        OptionHeader { option: self.code(), length }.encode(out);
        out.extend_from_slice(&payload);
    }
}

fn parse_info_request(payload: &[u8]) -> Result<InfoRequest, DecodeError> {
    let mut c = Cursor::new(payload);
    let name_len = c.u32()?;
    let name_len = usize::try_from(name_len).map_err(|_| DecodeError::Truncated)?;
    if name_len > c.remaining().saturating_sub(2) {
        return Err(DecodeError::Invalid("export name length exceeds the option data"));
    }
    let name = parse_string(c.bytes(name_len)?)?;
    let count = usize::from(c.u16()?);
    if c.remaining() != count * 2 {
        return Err(DecodeError::Invalid("number of information requests does not match the option length"));
    }
    let mut requests = Vec::with_capacity(count);
    for _ in 0..count {
        requests.push(c.u16()?);
    }
    Ok(InfoRequest { name, requests })
}

/// Most queries in one meta context option; each is at least 4 bytes of the bounded option data anyway.
const MAX_META_QUERIES: usize = 256;

fn parse_meta_context_request(payload: &[u8]) -> Result<MetaContextRequest, DecodeError> {
    let mut c = Cursor::new(payload);
    let name_len = usize::try_from(c.u32()?).map_err(|_| DecodeError::Truncated)?;
    if name_len > c.remaining() {
        return Err(DecodeError::Invalid("export name length exceeds the option data"));
    }
    let export = parse_string(c.bytes(name_len)?)?;
    let count = usize::try_from(c.u32()?).map_err(|_| DecodeError::Truncated)?;
    if count * 4 > c.remaining() {
        return Err(DecodeError::Invalid("number of queries does not fit the option data"));
    }
    if count > MAX_META_QUERIES {
        return Err(DecodeError::TooBig("more than 256 metadata context queries"));
    }
    let mut queries = Vec::with_capacity(count);
    for _ in 0..count {
        let len = usize::try_from(c.u32()?).map_err(|_| DecodeError::Truncated)?;
        if len > c.remaining() {
            return Err(DecodeError::Invalid("query length exceeds the option data"));
        }
        queries.push(parse_string(c.bytes(len)?)?);
    }
    if c.remaining() != 0 {
        return Err(DecodeError::Invalid("data after the last query"));
    }
    Ok(MetaContextRequest { export, queries })
}

/// Append an NBD_REP_META_CONTEXT reply: a context's id and name.
pub fn encode_meta_context_reply(out: &mut Vec<u8>, option: u32, id: u32, name: &str) {
    let mut data = Vec::with_capacity(4 + name.len());
    data.extend_from_slice(&id.to_be_bytes());
    data.extend_from_slice(name.as_bytes());
    encode_option_reply(out, option, REP_META_CONTEXT, &data);
}

/// The fixed 20-byte part of an option reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionReplyHeader {
    pub option: u32,
    pub reply: u32,
    pub length: u32,
}

impl OptionReplyHeader {
    /// Decode a reply header; a payload over [`MAX_OPTION_REPLY_PAYLOAD`] is an error before allocating.
    pub fn decode(buf: &[u8]) -> Result<OptionReplyHeader, DecodeError> {
        let mut c = Cursor::new(buf);
        expect_magic(c.u64()?, OPTION_REPLY_MAGIC)?;
        let option = c.u32()?;
        let reply = c.u32()?;
        let length = c.u32()?;
        if length > MAX_OPTION_REPLY_PAYLOAD {
            return Err(DecodeError::ReplyTooLong { length, max: MAX_OPTION_REPLY_PAYLOAD });
        }
        Ok(OptionReplyHeader { option, reply, length })
    }

    pub fn is_error(&self) -> bool {
        self.reply & REP_FLAG_ERROR != 0
    }
}

/// Append one option reply with its payload.
pub fn encode_option_reply(out: &mut Vec<u8>, option: u32, reply: u32, data: &[u8]) {
    out.extend_from_slice(&OPTION_REPLY_MAGIC.to_be_bytes());
    out.extend_from_slice(&option.to_be_bytes());
    out.extend_from_slice(&reply.to_be_bytes());
    out.extend_from_slice(&u32::try_from(data.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(data);
}

/// Append an error reply whose payload is a message for a human; the message is cut at [`MAX_STRING_LEN`].
pub fn encode_option_error(out: &mut Vec<u8>, option: u32, reply: u32, message: &str) {
    let msg = truncate_str(message, MAX_STRING_LEN);
    encode_option_reply(out, option, reply, msg.as_bytes());
}

/// An NBD_REP_SERVER entry of an NBD_OPT_LIST answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportListing {
    pub name: String,
    /// Implementation-specific text after the name, for display.
    pub description: String,
}

impl ExportListing {
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut data = Vec::with_capacity(4 + self.name.len() + self.description.len());
        data.extend_from_slice(&string_len(&self.name).to_be_bytes());
        data.extend_from_slice(self.name.as_bytes());
        data.extend_from_slice(self.description.as_bytes());
        encode_option_reply(out, OPT_LIST, REP_SERVER, &data);
    }

    pub fn parse(payload: &[u8]) -> Result<ExportListing, DecodeError> {
        let mut c = Cursor::new(payload);
        let len = usize::try_from(c.u32()?).map_err(|_| DecodeError::Truncated)?;
        let name = parse_string(c.bytes(len)?)?;
        let description = String::from_utf8_lossy(c.rest()).into_owned();
        Ok(ExportListing { name, description })
    }
}

/// NBD_INFO_BLOCK_SIZE: minimum, preferred and maximum (payload) sizes in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockSize {
    pub minimum: u32,
    pub preferred: u32,
    pub maximum: u32,
}

/// One NBD_REP_INFO payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Info {
    Export { size: u64, flags: TransmissionFlags },
    Name(String),
    Description(String),
    BlockSize(BlockSize),
    Unknown(u16),
}

impl Info {
    /// Append as an NBD_REP_INFO reply to `option` (NBD_OPT_INFO or NBD_OPT_GO).
    pub fn encode_reply(&self, out: &mut Vec<u8>, option: u32) {
        let mut data = Vec::with_capacity(16);
        match self {
            Info::Export { size, flags } => {
                data.extend_from_slice(&INFO_EXPORT.to_be_bytes());
                data.extend_from_slice(&size.to_be_bytes());
                data.extend_from_slice(&flags.0.to_be_bytes());
            }
            Info::Name(name) => {
                data.extend_from_slice(&INFO_NAME.to_be_bytes());
                data.extend_from_slice(truncate_str(name, MAX_STRING_LEN).as_bytes());
            }
            Info::Description(text) => {
                data.extend_from_slice(&INFO_DESCRIPTION.to_be_bytes());
                data.extend_from_slice(truncate_str(text, MAX_STRING_LEN).as_bytes());
            }
            Info::BlockSize(b) => {
                data.extend_from_slice(&INFO_BLOCK_SIZE.to_be_bytes());
                data.extend_from_slice(&b.minimum.to_be_bytes());
                data.extend_from_slice(&b.preferred.to_be_bytes());
                data.extend_from_slice(&b.maximum.to_be_bytes());
            }
            Info::Unknown(kind) => data.extend_from_slice(&kind.to_be_bytes()),
        }
        encode_option_reply(out, option, REP_INFO, &data);
    }

    pub fn parse(payload: &[u8]) -> Result<Info, DecodeError> {
        let mut c = Cursor::new(payload);
        let kind = c.u16()?;
        let info = match kind {
            INFO_EXPORT => Info::Export { size: c.u64()?, flags: TransmissionFlags(c.u16()?) },
            INFO_NAME => Info::Name(parse_string(c.rest())?),
            INFO_DESCRIPTION => Info::Description(parse_string(c.rest())?),
            INFO_BLOCK_SIZE => Info::BlockSize(BlockSize { minimum: c.u32()?, preferred: c.u32()?, maximum: c.u32()? }),
            other => {
                c.rest();
                Info::Unknown(other)
            }
        };
        if c.remaining() != 0 {
            return Err(DecodeError::Invalid("information reply has trailing bytes"));
        }
        Ok(info)
    }
}

/// The reply to NBD_OPT_EXPORT_NAME: size, transmission flags and, unless NO_ZEROES was agreed, 124 zero bytes.
pub fn encode_export_name_reply(out: &mut Vec<u8>, size: u64, flags: TransmissionFlags, no_zeroes: bool) {
    out.extend_from_slice(&size.to_be_bytes());
    out.extend_from_slice(&flags.0.to_be_bytes());
    if !no_zeroes {
        out.extend_from_slice(&[0u8; EXPORT_NAME_REPLY_ZEROES]);
    }
}

fn expect_magic(found: u64, expected: u64) -> Result<(), DecodeError> {
    if found == expected {
        Ok(())
    } else {
        Err(DecodeError::BadMagic { expected, found })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greeting_round_trip() {
        let mut out = Vec::new();
        encode_greeting(&mut out, FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES);
        assert_eq!(out.len(), GREETING_LEN);
        assert_eq!(&out[..8], b"NBDMAGIC");
        assert_eq!(&out[8..16], b"IHAVEOPT");
        assert_eq!(decode_greeting(&out).unwrap(), 3);
        assert!(decode_greeting(&out[..10]).is_err());
    }

    #[test]
    fn client_flags_are_checked_against_the_offer() {
        assert_eq!(
            ClientFlags::decode(3, FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES).unwrap(),
            ClientFlags { fixed_newstyle: true, no_zeroes: true }
        );
        assert!(ClientFlags::decode(2, FLAG_FIXED_NEWSTYLE).is_err(), "NO_ZEROES not offered");
        assert!(ClientFlags::decode(4, 3).is_err());
    }

    #[test]
    fn go_round_trip() {
        let opt = ClientOption::Go(InfoRequest { name: "vol1".into(), requests: vec![INFO_BLOCK_SIZE, INFO_NAME] });
        let mut out = Vec::new();
        opt.encode(&mut out);
        let header = OptionHeader::decode(&out[..16]).unwrap();
        assert_eq!(header, OptionHeader { option: OPT_GO, length: 4 + 4 + 2 + 4 });
        assert_eq!(ClientOption::parse(header.option, &out[16..]).unwrap(), opt);
    }

    #[test]
    fn meta_context_options_round_trip() {
        for opt in [
            ClientOption::SetMetaContext(MetaContextRequest {
                export: "vol1".into(),
                queries: vec![CONTEXT_BASE_ALLOCATION.into(), "qemu:dirty-bitmap:b".into()],
            }),
            ClientOption::ListMetaContext(MetaContextRequest { export: "vol1".into(), queries: vec![] }),
        ] {
            let mut out = Vec::new();
            opt.encode(&mut out);
            let header = OptionHeader::decode(&out[..16]).unwrap();
            assert_eq!(header.option, opt.code());
            assert_eq!(ClientOption::parse(header.option, &out[16..]).unwrap(), opt);
        }
        // Name, count, then a query length past the end; a count the data cannot hold; bytes after the queries.
        assert!(ClientOption::parse(OPT_SET_META_CONTEXT, &[0, 0, 0, 1, b'a', 0, 0, 0, 1, 0, 0, 0, 9, b'x']).is_err());
        assert!(ClientOption::parse(OPT_SET_META_CONTEXT, &[0, 0, 0, 1, b'a', 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(ClientOption::parse(OPT_LIST_META_CONTEXT, &[0, 0, 0, 1, b'a', 0, 0, 0, 0, 7]).is_err());
        let many =
            ClientOption::ListMetaContext(MetaContextRequest { export: "a".into(), queries: vec![String::new(); 300] });
        let mut out = Vec::new();
        many.encode(&mut out);
        assert!(matches!(ClientOption::parse(OPT_LIST_META_CONTEXT, &out[16..]), Err(DecodeError::TooBig(_))));
        let mut reply = Vec::new();
        encode_meta_context_reply(&mut reply, OPT_SET_META_CONTEXT, 1, CONTEXT_BASE_ALLOCATION);
        let h = OptionReplyHeader::decode(&reply[..20]).unwrap();
        assert_eq!((h.option, h.reply, h.length as usize), (OPT_SET_META_CONTEXT, REP_META_CONTEXT, 4 + 15));
        assert_eq!(&reply[20..24], &1u32.to_be_bytes());
        assert_eq!(&reply[24..], CONTEXT_BASE_ALLOCATION.as_bytes());
    }

    #[test]
    fn bad_options_are_errors() {
        let mut h = Vec::new();
        OptionHeader { option: OPT_GO, length: u32::MAX }.encode(&mut h);
        assert_eq!(OptionHeader::decode(&h), Err(DecodeError::OptionTooLong(u32::MAX)));
        h[0] = b'X';
        assert!(matches!(OptionHeader::decode(&h), Err(DecodeError::BadMagic { .. })));
        // Name length larger than the payload.
        assert!(ClientOption::parse(OPT_GO, &[0, 0, 1, 0, b'a', 0, 0]).is_err());
        // Info count does not match.
        assert!(ClientOption::parse(OPT_INFO, &[0, 0, 0, 1, b'a', 0, 2, 0, 3]).is_err());
        assert!(ClientOption::parse(OPT_LIST, &[1]).is_err());
        assert!(ClientOption::parse(OPT_EXPORT_NAME, b"a\0b").is_err());
        assert!(ClientOption::parse(OPT_EXPORT_NAME, &[0xff, 0xfe]).is_err());
        assert_eq!(ClientOption::parse(42, &[1, 2, 3]).unwrap(), ClientOption::Other(42));
    }

    #[test]
    fn info_replies_round_trip() {
        let infos = [
            Info::Export { size: 1 << 40, flags: TransmissionFlags(0x1ff) },
            Info::Name("vol1".into()),
            Info::Description("a volume".into()),
            Info::BlockSize(BlockSize { minimum: 1, preferred: 4096, maximum: DEFAULT_MAX_PAYLOAD }),
        ];
        for info in infos {
            let mut out = Vec::new();
            info.encode_reply(&mut out, OPT_GO);
            let h = OptionReplyHeader::decode(&out[..20]).unwrap();
            assert_eq!((h.option, h.reply, h.length as usize), (OPT_GO, REP_INFO, out.len() - 20));
            assert_eq!(Info::parse(&out[20..]).unwrap(), info);
        }
    }

    #[test]
    fn listing_round_trip() {
        let l = ExportListing { name: "vol1".into(), description: "1 GiB".into() };
        let mut out = Vec::new();
        l.encode(&mut out);
        assert_eq!(ExportListing::parse(&out[20..]).unwrap(), l);
        assert!(ExportListing::parse(&[0, 0, 0, 9, b'a']).is_err());
    }
}
