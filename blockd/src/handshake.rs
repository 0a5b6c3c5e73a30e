//! Server side of the fixed-newstyle handshake: option haggling until NBD_OPT_GO or NBD_OPT_EXPORT_NAME picks an
//! export the peer has a grant for.
//!
//! Runs as a tokio task per connection under the handshake timeout. Options are read with exact lengths (header,
//! then a payload bounded by [`MAX_OPTION_PAYLOAD`]), so nothing past the handshake is ever read here and the
//! socket can be handed to the data path as is. The unit's access control lives here: every export lookup goes
//! through [`ExportTable::access`] for the peer's address.

use crate::bad_input::BadInput;
use crate::exports::{Access, ExportTable, ServedExport};
use crate::state::Shared;
use crate::transmission::ALLOCATION_CONTEXT_ID;
use dvsan_layout::AccessMode;
use dvsan_nbd::constants::*;
use dvsan_nbd::handshake::{
    encode_export_name_reply, encode_greeting, encode_meta_context_reply, encode_option_error, encode_option_reply,
    BlockSize, ClientFlags, ClientOption, ExportListing, Info, InfoRequest, MetaContextRequest, OptionHeader,
};
use dvsan_nbd::{DecodeError, TransmissionFlags};
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// More options than this in one handshake is abuse, not haggling.
const MAX_OPTIONS: usize = 64;

/// What a successful handshake agreed on.
pub(crate) struct Negotiated {
    pub export: Arc<ServedExport>,
    pub mode: AccessMode,
    pub structured: bool,
    /// `base:allocation` was selected for this export: NBD_CMD_BLOCK_STATUS answers with holes and data.
    pub allocation_context: bool,
}

/// What NBD_OPT_SET_META_CONTEXT last selected, and for which export (it applies only if GO names the same one).
struct MetaSelection {
    export: String,
    allocation: bool,
}

impl MetaSelection {
    fn allocation_for(selection: &Option<MetaSelection>, export: &str) -> bool {
        selection.as_ref().is_some_and(|m| m.allocation && m.export == export)
    }
}

pub(crate) enum HandshakeEnd {
    Transmission(Negotiated),
    /// The client aborted, or was refused an export by NBD_OPT_EXPORT_NAME (which can only be refused by closing).
    Closed,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum HandshakeError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// Bad input that ends the session; already counted.
    #[error("{}: {detail}", reason.name())]
    Bad { reason: BadInput, detail: String },
}

/// Transmission flags for an export under a grant mode.
pub(crate) fn transmission_flags(mode: AccessMode) -> TransmissionFlags {
    let common = FLAG_HAS_FLAGS | FLAG_SEND_FLUSH | FLAG_CAN_MULTI_CONN;
    TransmissionFlags(match mode {
        AccessMode::ReadWrite => common | FLAG_SEND_FUA | FLAG_SEND_TRIM | FLAG_SEND_WRITE_ZEROES,
        AccessMode::ReadOnly => common | FLAG_READ_ONLY,
    })
}

/// Block sizes we advertise: byte granular, the unit's block size (at least 4 KiB) preferred, 32 MiB maximum.
pub(crate) fn block_size(table: &ExportTable) -> BlockSize {
    BlockSize { minimum: 1, preferred: table.block_size.max(4096), maximum: DEFAULT_MAX_PAYLOAD }
}

pub(crate) async fn negotiate(
    stream: &mut TcpStream,
    peer: IpAddr,
    shared: &Shared,
) -> Result<HandshakeEnd, HandshakeError> {
    let server_flags = FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES;
    let mut out = Vec::with_capacity(256);
    encode_greeting(&mut out, server_flags);
    stream.write_all(&out).await?;

    let client_flags = stream.read_u32().await?;
    let client = ClientFlags::decode(client_flags, server_flags)
        .map_err(|e| bad(shared, BadInput::UnknownClientFlags, e.to_string()))?;
    let mut structured = false;
    let mut meta: Option<MetaSelection> = None;

    for _ in 0..MAX_OPTIONS {
        let mut hbuf = [0u8; OPTION_HEADER_LEN];
        stream.read_exact(&mut hbuf).await?;
        let header = OptionHeader::decode(&hbuf).map_err(|e| match e {
            DecodeError::OptionTooLong(_) => bad(shared, BadInput::OptionTooLong, e.to_string()),
            _ => bad(shared, BadInput::OptionBadMagic, e.to_string()),
        })?;
        let mut payload = vec![0u8; header.length as usize];
        stream.read_exact(&mut payload).await?;

        out.clear();
        let parsed = ClientOption::parse(header.option, &payload);
        let option = match parsed {
            Ok(o) => o,
            Err(e) if header.option == OPT_EXPORT_NAME => {
                return Err(bad(shared, BadInput::OptionInvalid, format!("NBD_OPT_EXPORT_NAME: {e}")));
            }
            Err(e) => {
                shared.bad_input.bump(BadInput::OptionInvalid);
                tracing::debug!(%peer, option = header.option, error = %e, "invalid option");
                if header.option == OPT_SET_META_CONTEXT {
                    // A SET replaces the selection even when it fails.
                    meta = None;
                }
                let reply = if matches!(e, DecodeError::TooBig(_)) { REP_ERR_TOO_BIG } else { REP_ERR_INVALID };
                encode_option_error(&mut out, header.option, reply, &e.to_string());
                stream.write_all(&out).await?;
                continue;
            }
        };
        if shared.shutting_down.load(Ordering::Relaxed) && option != ClientOption::Abort {
            encode_option_error(&mut out, header.option, REP_ERR_SHUTDOWN, "the server is shutting down");
            stream.write_all(&out).await?;
            continue;
        }
        match option {
            ClientOption::Abort => {
                encode_option_reply(&mut out, OPT_ABORT, REP_ACK, &[]);
                // The client may already have closed; that is fine.
                let _ = stream.write_all(&out).await;
                return Ok(HandshakeEnd::Closed);
            }
            ClientOption::List => {
                let table = shared.exports();
                for e in table.visible_to(peer) {
                    ExportListing { name: e.name.clone(), description: e.description.clone() }.encode(&mut out);
                }
                encode_option_reply(&mut out, OPT_LIST, REP_ACK, &[]);
            }
            ClientOption::StructuredReply => {
                structured = true;
                encode_option_reply(&mut out, OPT_STRUCTURED_REPLY, REP_ACK, &[]);
            }
            ClientOption::StartTls => {
                encode_option_error(&mut out, OPT_STARTTLS, REP_ERR_UNSUP, "TLS is not supported by this server");
            }
            ClientOption::Info(req) => {
                answer_info(&mut out, OPT_INFO, &req, peer, shared);
            }
            ClientOption::Go(req) => {
                let chosen = answer_info(&mut out, OPT_GO, &req, peer, shared);
                stream.write_all(&out).await?;
                if let Some((export, mode)) = chosen {
                    let allocation_context = MetaSelection::allocation_for(&meta, &export.name);
                    return Ok(HandshakeEnd::Transmission(Negotiated { export, mode, structured, allocation_context }));
                }
                continue;
            }
            ClientOption::ListMetaContext(req) => {
                answer_meta_context(&mut out, OPT_LIST_META_CONTEXT, &req, peer, shared);
            }
            ClientOption::SetMetaContext(req) => {
                if structured {
                    let allocation = answer_meta_context(&mut out, OPT_SET_META_CONTEXT, &req, peer, shared);
                    meta = allocation.map(|allocation| MetaSelection { export: req.export.clone(), allocation });
                } else {
                    meta = None;
                    shared.bad_input.bump(BadInput::OptionInvalid);
                    let message = "negotiate structured replies (NBD_OPT_STRUCTURED_REPLY) before metadata contexts";
                    encode_option_error(&mut out, OPT_SET_META_CONTEXT, REP_ERR_INVALID, message);
                }
            }
            ClientOption::ExportName(name) => {
                let table = shared.exports();
                return match check_access(&table, &name, peer, shared) {
                    Ok((export, mode)) => {
                        encode_export_name_reply(&mut out, export.size, transmission_flags(mode), client.no_zeroes);
                        stream.write_all(&out).await?;
                        let allocation_context = MetaSelection::allocation_for(&meta, &export.name);
                        Ok(HandshakeEnd::Transmission(Negotiated { export, mode, structured, allocation_context }))
                    }
                    Err((_, message)) => {
                        tracing::warn!(%peer, export = %name, "NBD_OPT_EXPORT_NAME refused, closing: {message}");
                        Ok(HandshakeEnd::Closed)
                    }
                };
            }
            ClientOption::Other(code) => {
                shared.bad_input.bump(BadInput::OptionUnsupported);
                tracing::debug!(%peer, option = code, "unsupported option");
                encode_option_error(&mut out, code, REP_ERR_UNSUP, "option not supported by this server");
            }
        }
        stream.write_all(&out).await?;
    }
    Err(bad(shared, BadInput::TooManyOptions, format!("more than {MAX_OPTIONS} options")))
}

/// Answer NBD_OPT_INFO or NBD_OPT_GO into `out`; returns the export if the peer may use it.
fn answer_info(
    out: &mut Vec<u8>,
    option: u32,
    req: &InfoRequest,
    peer: IpAddr,
    shared: &Shared,
) -> Option<(Arc<ServedExport>, AccessMode)> {
    let table = shared.exports();
    match check_access(&table, &req.name, peer, shared) {
        Ok((export, mode)) => {
            Info::Export { size: export.size, flags: transmission_flags(mode) }.encode_reply(out, option);
            if req.wants(INFO_NAME) {
                Info::Name(export.name.clone()).encode_reply(out, option);
            }
            if req.wants(INFO_DESCRIPTION) {
                Info::Description(export.description.clone()).encode_reply(out, option);
            }
            if req.wants(INFO_BLOCK_SIZE) {
                Info::BlockSize(block_size(&table)).encode_reply(out, option);
            }
            encode_option_reply(out, option, REP_ACK, &[]);
            Some((export, mode))
        }
        Err((reply, message)) => {
            encode_option_error(out, option, reply, &message);
            None
        }
    }
}

/// Answer NBD_OPT_LIST_META_CONTEXT or NBD_OPT_SET_META_CONTEXT into `out`: `base:allocation` is named if the
/// request asks for it (LIST also for no queries or the `base:` namespace); other contexts are not known here and
/// are left out, as the spec says. Returns whether `base:allocation` was named, or None if the export was refused.
fn answer_meta_context(
    out: &mut Vec<u8>,
    option: u32,
    req: &MetaContextRequest,
    peer: IpAddr,
    shared: &Shared,
) -> Option<bool> {
    let table = shared.exports();
    if let Err((reply, message)) = check_access(&table, &req.export, peer, shared) {
        encode_option_error(out, option, reply, &message);
        return None;
    }
    let listing = option == OPT_LIST_META_CONTEXT;
    let allocation = (listing && req.queries.is_empty())
        || req.queries.iter().any(|q| q == CONTEXT_BASE_ALLOCATION || (listing && q == "base:"));
    if allocation {
        // A listed context is not selected: the spec asks for id 0 there.
        let id = if listing { 0 } else { ALLOCATION_CONTEXT_ID };
        encode_meta_context_reply(out, option, id, CONTEXT_BASE_ALLOCATION);
    }
    encode_option_reply(out, option, REP_ACK, &[]);
    Some(allocation)
}

/// The export and mode `peer` may use under `name`, or the option error reply and message; refusals are counted.
fn check_access(
    table: &ExportTable,
    name: &str,
    peer: IpAddr,
    shared: &Shared,
) -> Result<(Arc<ServedExport>, AccessMode), (u32, String)> {
    if name.is_empty() {
        // No default export: which export "" meant would change with the host's grants.
        shared.bad_input.bump(BadInput::ExportUnknown);
        return Err((
            REP_ERR_UNKNOWN,
            "there is no default export; ask for an export by name (see NBD_OPT_LIST)".into(),
        ));
    }
    match table.access(name, peer) {
        Access::Granted(export, mode) => Ok((export, mode)),
        Access::NotGranted => {
            shared.bad_input.bump(BadInput::ExportNotGranted);
            tracing::warn!(%peer, export = name, "refused: host has no grant for this export");
            Err((REP_ERR_POLICY, format!("host {peer} has no grant for export {name}")))
        }
        Access::NoSuchExport => {
            shared.bad_input.bump(BadInput::ExportUnknown);
            tracing::debug!(%peer, export = name, "refused: no such export");
            Err((REP_ERR_UNKNOWN, format!("no export named {name}")))
        }
    }
}

fn bad(shared: &Shared, reason: BadInput, detail: String) -> HandshakeError {
    shared.bad_input.bump(reason);
    HandshakeError::Bad { reason, detail }
}
