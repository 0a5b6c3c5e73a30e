//! Server side of the fixed-newstyle handshake: option haggling until NBD_OPT_GO or NBD_OPT_EXPORT_NAME picks an
//! export the peer has a grant for.
//!
//! Runs as a tokio task per connection under the handshake timeout. Options are read with exact lengths (header,
//! then a payload bounded by [`MAX_OPTION_PAYLOAD`]), so nothing past the handshake is ever read here and the
//! socket can be handed to the data path as is. The unit's access control lives here: every export lookup goes
//! through [`ExportTable::access`] for the peer's address.
//!
//! A host asking for an export it has no grant for gets the same answer as for a name that does not exist:
//! NBD_REP_ERR_UNKNOWN ("the requested export is not available") with the same message, so a host cannot learn
//! which export names exist on the unit (NBD_OPT_LIST already shows each host only its own exports). The log and
//! the bad-input counters still tell the two apart for the operator.

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
        AccessMode::ReadWrite | AccessMode::ReadWriteShared => {
            common | FLAG_SEND_FUA | FLAG_SEND_TRIM | FLAG_SEND_WRITE_ZEROES
        }
        AccessMode::ReadOnly => common | FLAG_READ_ONLY,
    })
}

/// Block sizes we advertise: byte granular, the unit's block size (at least 4 KiB) preferred, 32 MiB maximum.
pub(crate) fn block_size(table: &ExportTable) -> BlockSize {
    BlockSize { minimum: 1, preferred: table.block_size.max(4096), maximum: DEFAULT_MAX_PAYLOAD }
}

/// Run the handshake on a fresh connection from `peer`: greeting, then options until one picks an export.
pub(crate) async fn negotiate(
    stream: &mut TcpStream,
    peer: IpAddr,
    shared: &Shared,
) -> Result<HandshakeEnd, HandshakeError> {
    let mut out = Vec::with_capacity(256);
    let client = greet(stream, &mut out, shared).await?;
    let mut haggling = Haggling { peer, no_zeroes: client.no_zeroes, structured: false, meta: None };
    for _ in 0..MAX_OPTIONS {
        let (header, payload) = read_option(stream, shared).await?;
        out.clear();
        let answered = match ClientOption::parse(header.option, &payload) {
            Err(e) => {
                haggling.invalid_option(&mut out, header.option, e, shared)?;
                Answered::Reply
            }
            Ok(option) if shared.shutting_down.load(Ordering::Relaxed) && option != ClientOption::Abort => {
                encode_option_error(&mut out, header.option, REP_ERR_SHUTDOWN, "the server is shutting down");
                Answered::Reply
            }
            Ok(option) => haggling.answer(&mut out, option, shared),
        };
        match answered {
            Answered::Reply => stream.write_all(&out).await?,
            Answered::ReplyAndTransmit(negotiated) => {
                stream.write_all(&out).await?;
                return Ok(HandshakeEnd::Transmission(negotiated));
            }
            Answered::ReplyAndClose => {
                // The client may already have closed; that is fine.
                let _ = stream.write_all(&out).await;
                return Ok(HandshakeEnd::Closed);
            }
            Answered::Close => return Ok(HandshakeEnd::Closed),
        }
    }
    Err(bad(shared, BadInput::TooManyOptions, format!("more than {MAX_OPTIONS} options")))
}

/// Send the server's greeting and read the client's flags.
async fn greet(stream: &mut TcpStream, out: &mut Vec<u8>, shared: &Shared) -> Result<ClientFlags, HandshakeError> {
    let server_flags = FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES;
    encode_greeting(out, server_flags);
    stream.write_all(out).await?;
    let client_flags = stream.read_u32().await?;
    ClientFlags::decode(client_flags, server_flags)
        .map_err(|e| bad(shared, BadInput::UnknownClientFlags, e.to_string()))
}

/// Read one option: its header, then exactly its payload (which the header's decoder bounds).
async fn read_option(stream: &mut TcpStream, shared: &Shared) -> Result<(OptionHeader, Vec<u8>), HandshakeError> {
    let mut hbuf = [0u8; OPTION_HEADER_LEN];
    stream.read_exact(&mut hbuf).await?;
    let header = OptionHeader::decode(&hbuf).map_err(|e| match e {
        DecodeError::OptionTooLong(_) => bad(shared, BadInput::OptionTooLong, e.to_string()),
        _ => bad(shared, BadInput::OptionBadMagic, e.to_string()),
    })?;
    let mut payload = vec![0u8; header.length as usize];
    stream.read_exact(&mut payload).await?;
    Ok((header, payload))
}

/// What the options so far have agreed on.
struct Haggling {
    peer: IpAddr,
    /// The client asked for NBD_FLAG_C_NO_ZEROES (it matters to the NBD_OPT_EXPORT_NAME reply).
    no_zeroes: bool,
    structured: bool,
    meta: Option<MetaSelection>,
}

/// What answering one option leads to; the reply, if any, is in the output buffer.
enum Answered {
    /// Send the reply and read the next option.
    Reply,
    /// Send the reply and go into transmission.
    ReplyAndTransmit(Negotiated),
    /// Send the reply if the client still listens, and close.
    ReplyAndClose,
    /// Close without a reply.
    Close,
}

impl Haggling {
    /// Answer one option into `out`.
    fn answer(&mut self, out: &mut Vec<u8>, option: ClientOption, shared: &Shared) -> Answered {
        let peer = self.peer;
        match option {
            ClientOption::Abort => {
                encode_option_reply(out, OPT_ABORT, REP_ACK, &[]);
                return Answered::ReplyAndClose;
            }
            ClientOption::List => {
                let table = shared.exports();
                for e in table.visible_to(peer) {
                    ExportListing { name: e.name.clone(), description: e.description.clone() }.encode(out);
                }
                encode_option_reply(out, OPT_LIST, REP_ACK, &[]);
            }
            ClientOption::StructuredReply => {
                self.structured = true;
                encode_option_reply(out, OPT_STRUCTURED_REPLY, REP_ACK, &[]);
            }
            ClientOption::StartTls => {
                encode_option_error(out, OPT_STARTTLS, REP_ERR_UNSUP, "TLS is not supported by this server");
            }
            ClientOption::Info(req) => {
                answer_info(out, OPT_INFO, &req, peer, shared);
            }
            ClientOption::Go(req) => {
                if let Some((export, mode)) = answer_info(out, OPT_GO, &req, peer, shared) {
                    return Answered::ReplyAndTransmit(self.negotiated(export, mode));
                }
            }
            ClientOption::ListMetaContext(req) => {
                answer_meta_context(out, OPT_LIST_META_CONTEXT, &req, peer, shared);
            }
            ClientOption::SetMetaContext(req) => self.set_meta_context(out, &req, shared),
            ClientOption::ExportName(name) => return self.export_name(out, &name, shared),
            ClientOption::Other(code) => {
                shared.bad_input.bump(BadInput::OptionUnsupported);
                tracing::debug!(%peer, option = code, "unsupported option");
                encode_option_error(out, code, REP_ERR_UNSUP, "option not supported by this server");
            }
        }
        Answered::Reply
    }

    /// An option whose payload does not parse: NBD_OPT_EXPORT_NAME (which has no error reply) ends the
    /// handshake, any other gets an error reply in `out`.
    fn invalid_option(
        &mut self,
        out: &mut Vec<u8>,
        option: u32,
        e: DecodeError,
        shared: &Shared,
    ) -> Result<(), HandshakeError> {
        if option == OPT_EXPORT_NAME {
            return Err(bad(shared, BadInput::OptionInvalid, format!("NBD_OPT_EXPORT_NAME: {e}")));
        }
        shared.bad_input.bump(BadInput::OptionInvalid);
        tracing::debug!(peer = %self.peer, option, error = %e, "invalid option");
        if option == OPT_SET_META_CONTEXT {
            // A SET replaces the selection even when it fails.
            self.meta = None;
        }
        let reply = if matches!(e, DecodeError::TooBig(_)) { REP_ERR_TOO_BIG } else { REP_ERR_INVALID };
        encode_option_error(out, option, reply, &e.to_string());
        Ok(())
    }

    /// NBD_OPT_SET_META_CONTEXT: select `base:allocation` for an export, after structured replies only.
    fn set_meta_context(&mut self, out: &mut Vec<u8>, req: &MetaContextRequest, shared: &Shared) {
        if self.structured {
            let allocation = answer_meta_context(out, OPT_SET_META_CONTEXT, req, self.peer, shared);
            self.meta = allocation.map(|allocation| MetaSelection { export: req.export.clone(), allocation });
        } else {
            self.meta = None;
            shared.bad_input.bump(BadInput::OptionInvalid);
            let message = "negotiate structured replies (NBD_OPT_STRUCTURED_REPLY) before metadata contexts";
            encode_option_error(out, OPT_SET_META_CONTEXT, REP_ERR_INVALID, message);
        }
    }

    /// NBD_OPT_EXPORT_NAME: the export's reply and transmission, or, refused, closing (this option has no error
    /// reply).
    fn export_name(&self, out: &mut Vec<u8>, name: &str, shared: &Shared) -> Answered {
        let peer = self.peer;
        let table = shared.exports();
        match check_access(&table, name, peer, shared) {
            Ok((export, mode)) => {
                encode_export_name_reply(out, export.size, transmission_flags(mode), self.no_zeroes);
                Answered::ReplyAndTransmit(self.negotiated(export, mode))
            }
            Err((_, message)) => {
                tracing::warn!(%peer, export = %name, "NBD_OPT_EXPORT_NAME refused, closing: {message}");
                Answered::Close
            }
        }
    }

    /// What the handshake agreed on, once `export` is picked.
    fn negotiated(&self, export: Arc<ServedExport>, mode: AccessMode) -> Negotiated {
        let allocation_context = MetaSelection::allocation_for(&self.meta, &export.name);
        Negotiated { export, mode, structured: self.structured, allocation_context }
    }
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
            Err(not_available(name, peer))
        }
        Access::NoSuchExport => {
            shared.bad_input.bump(BadInput::ExportUnknown);
            tracing::debug!(%peer, export = name, "refused: no such export");
            Err(not_available(name, peer))
        }
    }
}

/// The one refusal for an export this host may not use, whether or not it exists (see the module doc).
fn not_available(name: &str, peer: IpAddr) -> (u32, String) {
    let message = format!(
        "export {name:?} is not available to host {peer} (no such export, or no grant for this host); \
         NBD_OPT_LIST (nbdinfo --list) shows the exports this host may use"
    );
    (REP_ERR_UNKNOWN, message)
}

fn bad(shared: &Shared, reason: BadInput, detail: String) -> HandshakeError {
    shared.bad_input.bump(reason);
    HandshakeError::Bad { reason, detail }
}
