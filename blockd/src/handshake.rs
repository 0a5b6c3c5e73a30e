//! Server side of the fixed-newstyle handshake: option haggling until NBD_OPT_GO or NBD_OPT_EXPORT_NAME picks an
//! export the peer has a grant for, with NBD_OPT_STARTTLS per the protocol's TLS section.
//!
//! Runs as a tokio task per connection under the handshake timeout. Options are read with exact lengths (header,
//! then a payload bounded by [`MAX_OPTION_PAYLOAD`]), so nothing past the handshake is ever read here and the
//! socket (or the TLS session, whose rustls state holds anything it read ahead) can be handed to the data path as
//! is. The option loop is generic over the stream, so the same code haggles in plain text and, after STARTTLS,
//! over TLS. The unit's access control lives here: every export lookup goes through [`ExportTable::access`] for
//! the peer's address and, after TLS, the identity of its verified client certificate.
//!
//! TLS modes (`--tls`): `off` answers STARTTLS with NBD_REP_ERR_UNSUP (the spec's NOTLS mode); `on` upgrades
//! clients that ask and serves the others in plain text; `require` (FORCEDTLS) answers every option but
//! NBD_OPT_STARTTLS and NBD_OPT_ABORT with NBD_REP_ERR_TLS_REQD before TLS, and closes on NBD_OPT_EXPORT_NAME,
//! which cannot be refused otherwise. After STARTTLS everything negotiated before it is forgotten, a second
//! STARTTLS gets NBD_REP_ERR_INVALID, and a failed TLS handshake (no client certificate, one from another CA)
//! closes the connection.
//!
//! A host asking for an export it has no grant for gets the same answer as for a name that does not exist:
//! NBD_REP_ERR_UNKNOWN ("the requested export is not available") with the same message, so a host cannot learn
//! which export names exist on the unit (NBD_OPT_LIST already shows each host only its own exports). The log and
//! the bad-input counters still tell the two apart for the operator.

use crate::admission::{Refused, ServedSlot};
use crate::bad_input::BadInput;
use crate::exports::{Access, ExportTable, ServedExport};
use crate::state::Shared;
use crate::tls::{identity_of, TlsMode, TlsServer};
use crate::transmission::ALLOCATION_CONTEXT_ID;
use dvsan_layout::{AccessMode, Client};
use dvsan_nbd::constants::*;
use dvsan_nbd::handshake::{
    encode_export_name_reply, encode_greeting, encode_meta_context_reply, encode_option_error, encode_option_reply,
    BlockSize, ClientFlags, ClientOption, ExportListing, Info, InfoRequest, MetaContextRequest, OptionHeader,
};
use dvsan_nbd::{DecodeError, TransmissionFlags};
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// A TLS session after its handshake, while options are still haggled.
pub(crate) type AsyncTlsStream = tokio_rustls::server::TlsStream<TcpStream>;

/// What blockd does about TLS on this connection.
#[derive(Clone, Debug, Default)]
pub(crate) struct TlsPolicy {
    pub mode: TlsMode,
    /// Present unless the mode is off.
    pub server: Option<Arc<TlsServer>>,
}

/// The connection as the handshake leaves it: still the plain socket, or a TLS session.
pub(crate) enum Channel {
    Plain(TcpStream),
    Tls(Box<AsyncTlsStream>),
}

/// More options than this in one handshake is abuse, not haggling.
const MAX_OPTIONS: usize = 64;

/// What a successful handshake agreed on.
pub(crate) struct Negotiated {
    /// Who negotiated it: the address, and the certificate identity over TLS.
    pub client: Client,
    pub export: Arc<ServedExport>,
    pub mode: AccessMode,
    pub structured: bool,
    /// `base:allocation` was selected for this export: NBD_CMD_BLOCK_STATUS answers with holes and data.
    pub allocation_context: bool,
    /// The served connection slot taken for this host when it picked the export (always Some until taken).
    pub slot: Option<ServedSlot>,
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

/// Run the handshake on a fresh connection from `peer`: greeting, then options until one picks an export, with a
/// TLS handshake in between if the client asks for one (or must). A client that does not send its flags within
/// `silent` is closed. Returns how it ended and the connection.
pub(crate) async fn negotiate(
    mut stream: TcpStream,
    peer: IpAddr,
    shared: &Shared,
    tls: &TlsPolicy,
    silent: Duration,
) -> Result<(HandshakeEnd, Channel), HandshakeError> {
    let mut out = Vec::with_capacity(256);
    let client = greet(&mut stream, &mut out, shared, silent).await?;
    if tls.mode == TlsMode::Require && !client.fixed_newstyle {
        let detail = "TLS is required and the client does not speak fixed newstyle".to_string();
        return Err(bad(shared, BadInput::TlsRequired, detail));
    }
    let mut haggling = Haggling {
        client: Client::by_address(peer),
        no_zeroes: client.no_zeroes,
        structured: false,
        meta: None,
        tls_mode: tls.mode,
        tls_done: false,
        options_left: MAX_OPTIONS,
    };
    match haggle(&mut stream, &mut haggling, shared).await? {
        Haggled::End(end) => return Ok((end, Channel::Plain(stream))),
        Haggled::StartTls => {}
    }
    let Some(server) = &tls.server else {
        return Err(bad(shared, BadInput::TlsHandshake, "STARTTLS accepted without a TLS configuration".into()));
    };
    let mut stream = tokio_rustls::TlsAcceptor::from(server.config())
        .accept(stream)
        .await
        .map_err(|e| bad(shared, BadInput::TlsHandshake, format!("TLS handshake failed: {e}")))?;
    let certificate = stream.get_ref().1.peer_certificates().and_then(|c| c.first());
    let Some(identity) = certificate.and_then(|c| identity_of(c)) else {
        let detail = "the client certificate names no identity (no DNS or URI subjectAltName, no common name)";
        return Err(bad(shared, BadInput::TlsHandshake, detail.into()));
    };
    tracing::debug!(%peer, identity, "TLS established");
    haggling.start_tls(identity);
    match haggle(&mut stream, &mut haggling, shared).await? {
        Haggled::End(end) => Ok((end, Channel::Tls(Box::new(stream)))),
        // A second STARTTLS is answered with an error in the loop, never accepted.
        Haggled::StartTls => Err(bad(shared, BadInput::OptionInvalid, "STARTTLS over TLS".into())),
    }
}

/// How a run of the option loop ended.
enum Haggled {
    End(HandshakeEnd),
    /// NBD_OPT_STARTTLS was acknowledged: the TLS handshake comes next.
    StartTls,
}

/// Read and answer options on `stream` until one ends the handshake or starts TLS.
async fn haggle<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    haggling: &mut Haggling,
    shared: &Shared,
) -> Result<Haggled, HandshakeError> {
    let mut out = Vec::with_capacity(256);
    while haggling.options_left > 0 {
        haggling.options_left -= 1;
        let (header, payload) = read_option(stream, shared).await?;
        out.clear();
        let answered = if haggling.tls_required(header.option) {
            haggling.tls_required_reply(&mut out, header.option, shared)
        } else {
            match ClientOption::parse(header.option, &payload) {
                Err(e) => {
                    haggling.invalid_option(&mut out, header.option, e, shared)?;
                    Answered::Reply
                }
                Ok(option) if shared.shutting_down.load(Ordering::Relaxed) && option != ClientOption::Abort => {
                    encode_option_error(&mut out, header.option, REP_ERR_SHUTDOWN, "the server is shutting down");
                    Answered::Reply
                }
                Ok(option) => haggling.answer(&mut out, option, shared),
            }
        };
        match answered {
            Answered::Reply => stream.write_all(&out).await?,
            Answered::ReplyAndStartTls => {
                stream.write_all(&out).await?;
                stream.flush().await?;
                return Ok(Haggled::StartTls);
            }
            Answered::ReplyAndTransmit(negotiated) => {
                stream.write_all(&out).await?;
                stream.flush().await?;
                return Ok(Haggled::End(HandshakeEnd::Transmission(negotiated)));
            }
            Answered::ReplyAndClose => {
                // The client may already have closed; that is fine.
                let _ = stream.write_all(&out).await;
                let _ = stream.flush().await;
                return Ok(Haggled::End(HandshakeEnd::Closed));
            }
            Answered::Close => return Ok(Haggled::End(HandshakeEnd::Closed)),
        }
    }
    Err(bad(shared, BadInput::TooManyOptions, format!("more than {MAX_OPTIONS} options")))
}

/// Send the server's greeting and read the client's flags, which must come within `silent`.
async fn greet(
    stream: &mut TcpStream,
    out: &mut Vec<u8>,
    shared: &Shared,
    silent: Duration,
) -> Result<ClientFlags, HandshakeError> {
    let server_flags = FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES;
    encode_greeting(out, server_flags);
    stream.write_all(out).await?;
    let Ok(client_flags) = tokio::time::timeout(silent, stream.read_u32()).await else {
        return Err(bad(shared, BadInput::SilentClient, format!("no client flags within {silent:?}")));
    };
    let client_flags = client_flags?;
    ClientFlags::decode(client_flags, server_flags)
        .map_err(|e| bad(shared, BadInput::UnknownClientFlags, e.to_string()))
}

/// Read one option: its header, then exactly its payload (which the header's decoder bounds).
async fn read_option<S: AsyncRead + Unpin>(
    stream: &mut S,
    shared: &Shared,
) -> Result<(OptionHeader, Vec<u8>), HandshakeError> {
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
    /// The peer's address, and its certificate identity once TLS is up.
    client: Client,
    /// The client asked for NBD_FLAG_C_NO_ZEROES (it matters to the NBD_OPT_EXPORT_NAME reply).
    no_zeroes: bool,
    structured: bool,
    meta: Option<MetaSelection>,
    tls_mode: TlsMode,
    /// TLS is up (STARTTLS was acknowledged and its handshake succeeded).
    tls_done: bool,
    /// Options this connection may still send, plain and TLS together.
    options_left: usize,
}

/// What answering one option leads to; the reply, if any, is in the output buffer.
enum Answered {
    /// Send the reply and read the next option.
    Reply,
    /// Send the reply and go into transmission.
    ReplyAndTransmit(Negotiated),
    /// Send the reply (NBD_REP_ACK to NBD_OPT_STARTTLS) and run the TLS handshake.
    ReplyAndStartTls,
    /// Send the reply if the client still listens, and close.
    ReplyAndClose,
    /// Close without a reply.
    Close,
}

impl Haggling {
    /// Whether `option` must be refused for want of TLS: under `--tls require`, before TLS, anything but
    /// NBD_OPT_STARTTLS and NBD_OPT_ABORT.
    fn tls_required(&self, option: u32) -> bool {
        self.tls_mode == TlsMode::Require && !self.tls_done && option != OPT_STARTTLS && option != OPT_ABORT
    }

    /// Refuse an option for want of TLS: NBD_REP_ERR_TLS_REQD, or closing for NBD_OPT_EXPORT_NAME (which has no
    /// error reply).
    fn tls_required_reply(&self, out: &mut Vec<u8>, option: u32, shared: &Shared) -> Answered {
        shared.bad_input.bump(BadInput::TlsRequired);
        tracing::debug!(peer = %self.client.address, option, "refused before TLS: TLS is required");
        if option == OPT_EXPORT_NAME {
            tracing::warn!(peer = %self.client.address, "NBD_OPT_EXPORT_NAME without TLS, which is required; closing");
            return Answered::Close;
        }
        let message = "this server requires TLS: send NBD_OPT_STARTTLS first (a client certificate is required)";
        encode_option_error(out, option, REP_ERR_TLS_REQD, message);
        Answered::Reply
    }

    /// TLS is up for `identity`: everything negotiated before it is forgotten (the protocol's TLS section).
    fn start_tls(&mut self, identity: String) {
        self.client.identity = Some(identity);
        self.tls_done = true;
        self.structured = false;
        self.meta = None;
    }

    /// Answer NBD_OPT_STARTTLS into `out`.
    fn start_tls_reply(&self, out: &mut Vec<u8>) -> Answered {
        if self.tls_done {
            encode_option_error(out, OPT_STARTTLS, REP_ERR_INVALID, "TLS is already negotiated");
            Answered::Reply
        } else if self.tls_mode == TlsMode::Off {
            encode_option_error(out, OPT_STARTTLS, REP_ERR_UNSUP, "TLS is not enabled on this server (--tls off)");
            Answered::Reply
        } else {
            encode_option_reply(out, OPT_STARTTLS, REP_ACK, &[]);
            Answered::ReplyAndStartTls
        }
    }

    /// Answer one option into `out`.
    fn answer(&mut self, out: &mut Vec<u8>, option: ClientOption, shared: &Shared) -> Answered {
        let peer = &self.client;
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
            ClientOption::StartTls => return self.start_tls_reply(out),
            ClientOption::Info(req) => {
                answer_info(out, OPT_INFO, &req, peer, shared);
            }
            ClientOption::Go(req) => {
                if let Some((export, mode)) = answer_info(out, OPT_GO, &req, peer, shared) {
                    match self.served_slot(shared) {
                        Ok(slot) => return Answered::ReplyAndTransmit(self.negotiated(export, mode, slot)),
                        Err(message) => {
                            // The info replies gathered for the export are not sent: only the refusal.
                            out.clear();
                            encode_option_error(out, OPT_GO, REP_ERR_POLICY, &message);
                        }
                    }
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
        tracing::debug!(peer = %self.client, option, error = %e, "invalid option");
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
            let allocation = answer_meta_context(out, OPT_SET_META_CONTEXT, req, &self.client, shared);
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
        let peer = &self.client;
        let table = shared.exports();
        let picked = check_access(&table, name, peer, shared)
            .and_then(|(export, mode)| Ok((export, mode, self.served_slot(shared).map_err(|m| (0, m))?)));
        match picked {
            Ok((export, mode, slot)) => {
                encode_export_name_reply(out, export.size, transmission_flags(mode), self.no_zeroes);
                Answered::ReplyAndTransmit(self.negotiated(export, mode, slot))
            }
            Err((_, message)) => {
                if let Some(suppressed) = shared.bad_input.may_log() {
                    tracing::warn!(%peer, export = %name, suppressed, "NBD_OPT_EXPORT_NAME refused, closing: {message}");
                }
                Answered::Close
            }
        }
    }

    /// A served connection slot for this host, or the refusal's message (counted, logged at a bounded rate).
    fn served_slot(&self, shared: &Shared) -> Result<ServedSlot, String> {
        let host = self.client.address;
        let (slot, evicted) = shared.admission.serve(host).map_err(|refused| {
            let (reason, limit) = match refused {
                Refused::HostConnections => {
                    (BadInput::TooManyConnectionsFromHost, shared.admission.limits().max_connections_per_host)
                }
                _ => (BadInput::TooManyConnections, shared.admission.limits().max_connections),
            };
            if let Some(suppressed) = shared.bad_input.note(reason) {
                tracing::warn!(peer = %self.client, limit, suppressed, "export refused: {}", refused.describe());
            }
            format!("too many connections: {} (at most {limit}); close one and try again", refused.describe())
        })?;
        if evicted {
            if let Some(suppressed) = shared.bad_input.note(BadInput::IdleConnectionEvicted) {
                tracing::warn!(peer = %self.client, suppressed, "connection slots full: closed the oldest idle connection of the host holding the most");
            }
        }
        Ok(slot)
    }

    /// What the handshake agreed on, once `export` is picked and a served slot taken.
    fn negotiated(&self, export: Arc<ServedExport>, mode: AccessMode, slot: ServedSlot) -> Negotiated {
        let allocation_context = MetaSelection::allocation_for(&self.meta, &export.name);
        let client = self.client.clone();
        Negotiated { client, export, mode, structured: self.structured, allocation_context, slot: Some(slot) }
    }
}

/// Answer NBD_OPT_INFO or NBD_OPT_GO into `out`; returns the export if the peer may use it.
fn answer_info(
    out: &mut Vec<u8>,
    option: u32,
    req: &InfoRequest,
    peer: &Client,
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
    peer: &Client,
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
    peer: &Client,
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
            if let Some(suppressed) = shared.bad_input.note(BadInput::ExportNotGranted) {
                tracing::warn!(%peer, export = name, suppressed, "refused: host has no grant for this export");
            }
            Err(not_available(peer))
        }
        Access::NoSuchExport => {
            shared.bad_input.bump(BadInput::ExportUnknown);
            tracing::debug!(%peer, export = name, "refused: no such export");
            Err(not_available(peer))
        }
    }
}

/// The one refusal for an export this host may not use, whether or not it exists (see the module doc).
/// The message does not repeat the name, so the two replies are the same byte for byte.
fn not_available(peer: &Client) -> (u32, String) {
    let message = format!(
        "the requested export is not available to host {peer} (no such export, or no grant for this host); \
         NBD_OPT_LIST (nbdinfo --list) shows the exports this host may use"
    );
    (REP_ERR_UNKNOWN, message)
}

fn bad(shared: &Shared, reason: BadInput, detail: String) -> HandshakeError {
    shared.bad_input.bump(reason);
    HandshakeError::Bad { reason, detail }
}
