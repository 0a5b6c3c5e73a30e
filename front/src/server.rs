//! The local NBD server that stock clients (qemu, libnbd's tools, fio, nbd-client) use unchanged: fixed
//! newstyle handshake with NBD_OPT_GO/INFO/EXPORT_NAME/LIST, structured replies and the base:allocation
//! metadata context, then transmission with many requests in flight, each handed to the [`crate::mirror`].
//!
//! Every request is checked with the codec's `validate_request` first; a malformed or out-of-range one gets the
//! protocol's error (a refused WRITE's payload is read and dropped), a broken stream (bad magic, oversized
//! option) closes the connection; nothing from the client can panic the front. Replies are written by one task
//! per connection in the order requests complete. Builds on the mirror.

use crate::mirror::{Mirror, Op};
use crate::upstream::{read_vec, write_parts};
use dvsan_nbd::constants::*;
use dvsan_nbd::handshake::{
    encode_export_name_reply, encode_greeting, encode_meta_context_reply, encode_option_error, encode_option_reply,
    ExportListing, OptionHeader,
};
use dvsan_nbd::transmission::{
    encode_block_status_chunk, encode_data_chunk_header, encode_done_chunk, encode_error_chunk, SimpleReplyHeader,
};
use dvsan_nbd::{
    validate_request, BlockSize, ClientFlags, ClientOption, Command, Errno, ExportLimits, Info, RequestHeader,
    TransmissionFlags,
};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::{mpsc, Semaphore};

/// What one client connection may have in flight, in units of 64 KiB of payload (a request takes at least one):
/// 128 MiB, so a client cannot make the front hold more than that per connection.
const BUDGET_UNIT: u32 = 64 * 1024;
const BUDGET: u32 = 2048;

/// The export the front offers: the volume's name, size and flags.
#[derive(Debug, Clone)]
pub struct ExportView {
    pub name: String,
    pub size: u64,
    pub flags: TransmissionFlags,
    pub description: String,
}

struct Reply {
    handle: u64,
    offset: u64,
    read: bool,
    result: Result<Vec<u8>, Errno>,
    /// A block status answer: the extents of context 1 (base:allocation).
    extents: Option<Vec<(u32, u32)>>,
}

/// The id the front gives base:allocation.
const BASE_ALLOCATION_ID: u32 = 1;

/// What option haggling agreed.
struct Agreed {
    structured: bool,
    base_allocation: bool,
}

/// Serve one client connection until it disconnects; returns why it ended when that was not a clean end.
pub async fn serve_connection<S>(stream: S, mirror: Arc<Mirror>, export: Arc<ExportView>) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (r, w) = tokio::io::split(stream);
    let mut r = BufReader::with_capacity(256 * 1024, r);
    let mut w = BufWriter::with_capacity(256 * 1024, w);
    let Some(agreed) = handshake(&mut r, &mut w, &export).await? else { return Ok(()) };
    transmission(r, w, agreed, mirror, export).await
}

async fn io<T>(f: impl std::future::Future<Output = std::io::Result<T>>) -> Result<T, String> {
    f.await.map_err(|e| e.to_string())
}

/// Option haggling; what was agreed when the client entered transmission, None when it left.
async fn handshake<R, W>(r: &mut R, w: &mut W, export: &ExportView) -> Result<Option<Agreed>, String>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let server_flags = FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES;
    let mut out = Vec::new();
    encode_greeting(&mut out, server_flags);
    io(w.write_all(&out)).await?;
    io(w.flush()).await?;
    let client = io(r.read_u32()).await?;
    let flags = ClientFlags::decode(client, server_flags).map_err(|e| format!("client flags: {e}"))?;
    if !flags.fixed_newstyle {
        return Err("the client does not speak fixed newstyle".into());
    }
    let mut structured = false;
    let mut base_allocation = false;
    for _ in 0..1000 {
        let mut h = [0u8; OPTION_HEADER_LEN];
        io(r.read_exact(&mut h)).await?;
        let header = OptionHeader::decode(&h).map_err(|e| format!("option header: {e}"))?;
        if header.length > MAX_OPTION_PAYLOAD {
            return Err(format!("option payload of {} bytes", header.length));
        }
        let mut payload = vec![0u8; header.length as usize];
        io(r.read_exact(&mut payload)).await?;
        out.clear();
        let option = match ClientOption::parse(header.option, &payload) {
            Ok(o) => o,
            Err(e) if header.option == OPT_EXPORT_NAME => return Err(format!("NBD_OPT_EXPORT_NAME: {e}")),
            Err(e) => {
                encode_option_error(&mut out, header.option, REP_ERR_INVALID, &e.to_string());
                io(w.write_all(&out)).await?;
                io(w.flush()).await?;
                continue;
            }
        };
        let known = |name: &str| name.is_empty() || name == export.name;
        let mut enter = false;
        match option {
            ClientOption::ExportName(name) => {
                if !known(&name) {
                    return Err(format!("NBD_OPT_EXPORT_NAME for unknown export {name:?}"));
                }
                encode_export_name_reply(&mut out, export.size, export.flags, flags.no_zeroes);
                enter = true;
            }
            ClientOption::Abort => {
                encode_option_reply(&mut out, OPT_ABORT, REP_ACK, &[]);
                io(w.write_all(&out)).await?;
                io(w.flush()).await?;
                return Ok(None);
            }
            ClientOption::List => {
                ExportListing { name: export.name.clone(), description: export.description.clone() }.encode(&mut out);
                encode_option_reply(&mut out, OPT_LIST, REP_ACK, &[]);
            }
            ClientOption::StructuredReply => {
                structured = true;
                encode_option_reply(&mut out, OPT_STRUCTURED_REPLY, REP_ACK, &[]);
            }
            ClientOption::Info(req) | ClientOption::Go(req) => {
                let code = header.option;
                if !known(&req.name) {
                    encode_option_error(&mut out, code, REP_ERR_UNKNOWN, "no such export here");
                } else {
                    Info::Export { size: export.size, flags: export.flags }.encode_reply(&mut out, code);
                    if req.wants(INFO_NAME) {
                        Info::Name(export.name.clone()).encode_reply(&mut out, code);
                    }
                    if req.wants(INFO_DESCRIPTION) {
                        Info::Description(export.description.clone()).encode_reply(&mut out, code);
                    }
                    if req.wants(INFO_BLOCK_SIZE) {
                        let b = BlockSize { minimum: 1, preferred: 4096, maximum: DEFAULT_MAX_PAYLOAD };
                        Info::BlockSize(b).encode_reply(&mut out, code);
                    }
                    encode_option_reply(&mut out, code, REP_ACK, &[]);
                    enter = code == OPT_GO;
                }
            }
            ClientOption::ListMetaContext(req) | ClientOption::SetMetaContext(req) => {
                let code = header.option;
                let set = code == OPT_SET_META_CONTEXT;
                if !structured {
                    encode_option_error(&mut out, code, REP_ERR_INVALID, "negotiate structured replies first");
                } else if !known(&req.export) {
                    encode_option_error(&mut out, code, REP_ERR_UNKNOWN, "no such export here");
                } else {
                    // The one context the front serves: base:allocation (block status from an in-sync replica).
                    let asked =
                        req.queries.iter().any(|q| {
                            q == CONTEXT_BASE_ALLOCATION || (!set && (q == "base:" || q == "base:allocation"))
                        }) || (!set && req.queries.is_empty());
                    if set {
                        base_allocation = asked;
                    }
                    if asked {
                        let id = if set { BASE_ALLOCATION_ID } else { 0 };
                        encode_meta_context_reply(&mut out, code, id, CONTEXT_BASE_ALLOCATION);
                    }
                    encode_option_reply(&mut out, code, REP_ACK, &[]);
                }
            }
            ClientOption::StartTls => {
                encode_option_error(&mut out, OPT_STARTTLS, REP_ERR_POLICY, "the host front serves loopback only");
            }
            ClientOption::Other(code) => {
                encode_option_error(&mut out, code, REP_ERR_UNSUP, "option not supported");
            }
        }
        io(w.write_all(&out)).await?;
        io(w.flush()).await?;
        if enter {
            return Ok(Some(Agreed { structured, base_allocation }));
        }
    }
    Err("more than 1000 options".into())
}

async fn transmission<R, W>(
    mut r: BufReader<R>,
    w: BufWriter<W>,
    agreed: Agreed,
    mirror: Arc<Mirror>,
    export: Arc<ExportView>,
) -> Result<(), String>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Send + Unpin + 'static,
{
    let limits = ExportLimits {
        size: export.size,
        read_only: export.flags.read_only(),
        max_payload: DEFAULT_MAX_PAYLOAD,
        block_status: agreed.base_allocation,
    };
    let (tx, rx) = mpsc::unbounded_channel::<Reply>();
    let writer = tokio::spawn(write_replies(w, rx, agreed.structured));
    let budget = Arc::new(Semaphore::new(BUDGET as usize));
    let ended = loop {
        let mut h = [0u8; REQUEST_HEADER_LEN];
        if let Err(e) = r.read_exact(&mut h).await {
            break Err(format!("reading a request: {e}"));
        }
        let header = match RequestHeader::decode(&h) {
            Ok(Some(header)) => header,
            Ok(None) => break Err("short request header".into()),
            Err(e) => break Err(format!("request header: {e}")),
        };
        let command = match validate_request(&header, &limits) {
            Ok(c) => c,
            Err(refusal) => {
                tracing::debug!(?refusal, handle = header.handle, "request refused");
                if header.command == CMD_WRITE {
                    // Keep the stream in step: read and drop the payload (bounded, else close).
                    if header.length > 2 * DEFAULT_MAX_PAYLOAD {
                        break Err("refused write with an oversized payload".into());
                    }
                    let mut sink = (&mut r).take(u64::from(header.length));
                    if let Err(e) = tokio::io::copy(&mut sink, &mut tokio::io::sink()).await {
                        break Err(format!("reading a refused payload: {e}"));
                    }
                }
                let _ = tx.send(Reply {
                    handle: header.handle,
                    offset: header.offset,
                    read: false,
                    result: Err(refusal.errno()),
                    extents: None,
                });
                continue;
            }
        };
        // Taken before a write's payload is read, so payloads in memory stay within the budget.
        let units = match command {
            Command::Read | Command::Write { .. } => header.length.div_ceil(BUDGET_UNIT).max(1),
            _ => 1,
        };
        let Ok(permit) = budget.clone().acquire_many_owned(units).await else { break Err("closed".into()) };
        let op = match command {
            Command::Disconnect => break Ok(()),
            Command::Read => Op::Read { offset: header.offset, length: header.length },
            Command::Flush => Op::Flush,
            Command::Write { .. } | Command::Trim { .. } | Command::WriteZeroes { .. } => {
                let data = if header.command == CMD_WRITE {
                    match read_vec(&mut r, header.length as usize).await {
                        Ok(data) => Some(Arc::new(data)),
                        Err(e) => break Err(format!("reading a write's data: {e}")),
                    }
                } else {
                    None
                };
                Op::Write {
                    command: header.command,
                    flags: header.flags,
                    offset: header.offset,
                    length: header.length,
                    data,
                }
            }
            Command::BlockStatus { req_one } => {
                let mirror = mirror.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let (result, extents) = match mirror.block_status(header.offset, header.length, req_one).await {
                        Ok(extents) => (Ok(Vec::new()), Some(extents)),
                        Err(e) => (Err(e), None),
                    };
                    let _ =
                        tx.send(Reply { handle: header.handle, offset: header.offset, read: false, result, extents });
                    drop(permit);
                });
                continue;
            }
        };
        let mirror = mirror.clone();
        let tx = tx.clone();
        let read = matches!(op, Op::Read { .. });
        tokio::spawn(async move {
            let result = mirror.run(op).await;
            let _ = tx.send(Reply { handle: header.handle, offset: header.offset, read, result, extents: None });
            drop(permit);
        });
    };
    // Let the requests in flight finish and their replies go out, then close.
    let _ = budget.acquire_many(BUDGET).await;
    drop(tx);
    let _ = writer.await;
    ended
}

async fn write_replies<W: AsyncWrite + Unpin>(
    mut w: BufWriter<W>,
    mut rx: mpsc::UnboundedReceiver<Reply>,
    structured: bool,
) {
    let mut head = Vec::with_capacity(64);
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(reply) = next.take() {
            head.clear();
            let mut data: &[u8] = &[];
            match (&reply.result, structured) {
                (Ok(bytes), true) if reply.read && !bytes.is_empty() => {
                    let mut p = [0u8; dvsan_nbd::transmission::DATA_CHUNK_PREFIX_LEN];
                    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
                    encode_data_chunk_header(&mut p, reply.handle, reply.offset, len, true);
                    head.extend_from_slice(&p);
                    data = bytes;
                }
                (Ok(_), true) if reply.extents.is_some() => {
                    let extents = reply.extents.as_deref().unwrap_or_default();
                    encode_block_status_chunk(&mut head, reply.handle, BASE_ALLOCATION_ID, extents, true);
                }
                (Ok(_), true) => encode_done_chunk(&mut head, reply.handle),
                (Err(e), true) => encode_error_chunk(&mut head, reply.handle, *e, e.name()),
                (result, false) => {
                    let error = result.as_ref().err().map(|e| e.0).unwrap_or(0);
                    SimpleReplyHeader { error, handle: reply.handle }.encode(&mut head);
                    if let Ok(bytes) = result {
                        data = bytes;
                    }
                }
            }
            let written =
                if data.is_empty() { w.write_all(&head).await } else { write_parts(&mut w, &[&head, data]).await };
            if written.is_err() {
                return;
            }
            next = rx.try_recv().ok();
        }
        if w.flush().await.is_err() {
            return;
        }
    }
    let _ = w.shutdown().await;
}
