//! One replica's connection: many requests in flight on one NBD connection to the unit's blockd, matched to
//! their replies by handle, and a dropped connection re-established with the requests in flight re-sent in the
//! order they were first sent (NBD requests are idempotent at the block level).
//!
//! A task owns the connection's writing half and a second one reads replies (simple replies only: the front
//! does not ask the unit for structured ones, so a READ's data follows its reply header and its length is the
//! request's). While the connection is down, requests wait; when it cannot be re-established within the
//! reconnect window every waiting request fails and new ones fail at once until a connection succeeds again (the
//! task keeps trying, so a unit that comes back is noticed). The mirror decides about timeouts
//! ([`Upstream::abandon`] fails what is in flight and starts afresh). Block status goes over a second,
//! sequential connection with structured replies and the base:allocation context, opened when first asked.
//! Builds on [`crate::target`].

use crate::target::ReplicaTarget;
use dvsan_nbd::constants::*;
use dvsan_nbd::transmission::SimpleReplyHeader;
use dvsan_nbd::{ClientHandshake, ConnectOptions, Errno, ExportInfo, NbdClient, RequestHeader};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// A connection's byte stream: TCP, or TLS over TCP.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}
type BoxStream = Box<dyn Stream>;

/// A live connection: the writing half, and the task reading replies (stopped when this is dropped, which
/// closes the connection even when the unit has stopped answering).
struct Conn {
    writer: WriteHalf<BoxStream>,
    reader: JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Why a request to a replica failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    #[error("the replica answered {0}")]
    Replica(Errno),
    #[error("the replica was unreachable for the whole reconnect window: {0}")]
    Down(String),
    #[error("the request was abandoned (the replica was dropped from the mirror)")]
    Abandoned,
}

/// How replica connections behave.
#[derive(Clone)]
pub struct UpstreamOptions {
    /// Source address of the connections (the host's address the units granted); None lets the OS choose.
    pub local_addr: Option<IpAddr>,
    /// Limit of one connection attempt (TCP and handshake).
    pub connect_timeout: Duration,
    /// TLS to the units (NBD_OPT_STARTTLS), with the host's certificate.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// How long a dropped connection may take to come back before its requests fail.
    pub reconnect_window: Duration,
}

/// One request for a replica. `payload` is shared by the replicas a write goes to.
#[derive(Debug, Clone)]
pub struct Request {
    pub command: u16,
    pub flags: u16,
    pub offset: u64,
    pub length: u32,
    pub payload: Option<Arc<Vec<u8>>>,
}

struct Pending {
    request: Request,
    /// The connection (epoch) it was last sent on; 0: not sent yet.
    sent_on: u64,
    done: oneshot::Sender<Result<Vec<u8>, UpstreamError>>,
}

struct Shared {
    pending: Mutex<BTreeMap<u64, Pending>>,
    next_handle: AtomicU64,
    outstanding: AtomicUsize,
    connected: AtomicBool,
    /// The reconnect window passed without a connection: requests fail at once.
    down: AtomicBool,
    /// Counts connections made; replies are read per connection.
    epoch: AtomicU64,
    last_error: Mutex<String>,
}

enum Cmd {
    Send(u64),
    Abandon,
}

/// Where a submitted request's outcome arrives (an error when the connection's task is gone).
pub type Reply = oneshot::Receiver<Result<Vec<u8>, UpstreamError>>;

/// A replica connection, shared by the client connections' tasks; dropping it ends the connection's task.
pub struct Upstream {
    pub target: ReplicaTarget,
    info: ExportInfo,
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Cmd>,
    options: UpstreamOptions,
    /// A second, sequential connection for block status (structured replies, base:allocation), opened on first
    /// use: None until then, Some(None) when the unit does not offer it.
    meta: tokio::sync::Mutex<Option<Option<NbdClient<BoxStream>>>>,
}

impl Upstream {
    /// Connect (trying again for `patience`; at least once) and start the connection's tasks.
    pub async fn connect(
        target: ReplicaTarget,
        options: UpstreamOptions,
        patience: Duration,
    ) -> Result<Upstream, UpstreamError> {
        let deadline = Instant::now() + patience;
        let (stream, info) = loop {
            match open(&target, &options).await {
                Ok(c) => break c,
                Err(e) if Instant::now() >= deadline => return Err(UpstreamError::Down(e)),
                Err(e) => {
                    tracing::debug!(replica = %target, error = %e, "connecting");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        Ok(Upstream::spawn(target, options, info, Some(stream)))
    }

    /// A replica that did not answer at start: its task keeps trying to connect. `info`: what the other
    /// replicas say about the export.
    pub fn unreachable(target: ReplicaTarget, options: UpstreamOptions, info: ExportInfo) -> Upstream {
        Upstream::spawn(target, options, info, None)
    }

    fn spawn(target: ReplicaTarget, options: UpstreamOptions, info: ExportInfo, stream: Option<BoxStream>) -> Upstream {
        let connected = stream.is_some();
        let shared = Arc::new(Shared {
            pending: Mutex::new(BTreeMap::new()),
            next_handle: AtomicU64::new(1),
            outstanding: AtomicUsize::new(0),
            connected: AtomicBool::new(connected),
            down: AtomicBool::new(false),
            epoch: AtomicU64::new(u64::from(connected)),
            last_error: Mutex::new(String::new()),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(target.clone(), options.clone(), shared.clone(), rx, stream, info.size));
        Upstream { target, info, shared, tx, options, meta: tokio::sync::Mutex::new(None) }
    }

    /// The export as the unit described it when first connected.
    pub fn info(&self) -> &ExportInfo {
        &self.info
    }

    /// Requests sent and not answered (for choosing where to read).
    pub fn outstanding(&self) -> usize {
        self.shared.outstanding.load(Ordering::Relaxed)
    }

    pub fn connected(&self) -> bool {
        self.shared.connected.load(Ordering::Relaxed)
    }

    /// Unreachable for longer than the reconnect window: its requests fail at once until it is back (it is still
    /// tried again in the background).
    pub fn down(&self) -> bool {
        self.shared.down.load(Ordering::Relaxed)
    }

    /// Connections made so far (1 after [`Upstream::connect`]).
    pub fn epoch(&self) -> u64 {
        self.shared.epoch.load(Ordering::Relaxed)
    }

    /// Send a request and wait for its reply: a READ's data, or nothing.
    pub async fn call(&self, request: Request) -> Result<Vec<u8>, UpstreamError> {
        self.submit(request).await.unwrap_or(Err(UpstreamError::Abandoned))
    }

    /// Queue a request now (requests go out in the order they were submitted, also when re-sent) and return
    /// where its reply will come.
    pub fn submit(&self, request: Request) -> Reply {
        let (done, wait) = oneshot::channel();
        if self.shared.down.load(Ordering::Relaxed) {
            let _ = done.send(Err(UpstreamError::Down(lock(&self.shared.last_error).clone())));
            return wait;
        }
        let handle = self.shared.next_handle.fetch_add(1, Ordering::Relaxed);
        lock(&self.shared.pending).insert(handle, Pending { request, sent_on: 0, done });
        self.shared.outstanding.fetch_add(1, Ordering::Relaxed);
        if self.tx.send(Cmd::Send(handle)).is_err() {
            if let Some(p) = take(&self.shared, handle) {
                let _ = p.done.send(Err(UpstreamError::Abandoned));
            }
        }
        wait
    }

    /// Block status (base:allocation) of `length` bytes at `offset`: the unit's extents, or None when it does
    /// not offer them. A failure closes the metadata connection (opened again on the next call).
    pub async fn block_status(
        &self,
        offset: u64,
        length: u32,
        req_one: bool,
    ) -> Result<Option<Vec<(u32, u32)>>, UpstreamError> {
        let mut meta = self.meta.lock().await;
        if meta.is_none() {
            *meta = Some(open_meta(&self.target, &self.options).await.map_err(UpstreamError::Down)?);
        }
        let Some(Some(client)) = meta.as_mut() else { return Ok(None) };
        match client.block_status(offset, length, req_one).await {
            Ok(extents) => Ok(Some(extents)),
            Err(e) => {
                *meta = None;
                Err(e.errno().map(UpstreamError::Replica).unwrap_or_else(|| UpstreamError::Down(e.to_string())))
            }
        }
    }

    /// Fail every request in flight ([`UpstreamError::Abandoned`]) and reconnect: the mirror gave up on them.
    pub fn abandon(&self) {
        let _ = self.tx.send(Cmd::Abandon);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn take(shared: &Shared, handle: u64) -> Option<Pending> {
    let p = lock(&shared.pending).remove(&handle);
    if p.is_some() {
        shared.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
    p
}

fn fail_all(shared: &Shared, error: UpstreamError) {
    let all = std::mem::take(&mut *lock(&shared.pending));
    shared.outstanding.fetch_sub(all.len(), Ordering::Relaxed);
    for (_, p) in all {
        let _ = p.done.send(Err(error.clone()));
    }
}

/// TCP and the greeting, then STARTTLS when configured; the stream boxed either way.
async fn handshake(target: &ReplicaTarget, options: &UpstreamOptions) -> Result<ClientHandshake<BoxStream>, String> {
    let opts =
        ConnectOptions { local_addr: options.local_addr, timeout: options.connect_timeout, structured_replies: false };
    let hs = ClientHandshake::connect(target.socket_addr(), &opts).await.map_err(|e| e.to_string())?;
    // Closed with a reset: requests a dropped connection still has queued at the unit are discarded, not
    // carried out after the front has moved on (a unit that stopped and continues).
    hs.get_ref().set_zero_linger().map_err(|e| e.to_string())?;
    let Some(tls) = &options.tls else {
        return Ok(hs.map_stream(|tcp| Box::new(tcp) as BoxStream));
    };
    let name = rustls_pki_types::ServerName::IpAddress(target.address.into());
    let connector = tokio_rustls::TlsConnector::from(tls.clone());
    let upgrade = |tcp| async move { connector.connect(name, tcp).await.map(|s| Box::new(s) as BoxStream) };
    hs.starttls(upgrade).await.map_err(|e| format!("TLS: {e}"))
}

/// One connection attempt for requests: handshake, NBD_OPT_GO; no structured replies.
async fn open(target: &ReplicaTarget, options: &UpstreamOptions) -> Result<(BoxStream, ExportInfo), String> {
    let hs = handshake(target, options).await?;
    let (stream, info, _) = hs.go(&target.export).await.map_err(|e| e.to_string())?.into_parts();
    Ok((stream, info))
}

/// The metadata connection: structured replies and base:allocation; None when the unit offers neither.
async fn open_meta(target: &ReplicaTarget, options: &UpstreamOptions) -> Result<Option<NbdClient<BoxStream>>, String> {
    let mut hs = handshake(target, options).await?;
    if !hs.structured_replies().await.map_err(|e| e.to_string())? {
        return Ok(None);
    }
    let contexts = hs.set_meta_context(&target.export, &[CONTEXT_BASE_ALLOCATION]).await.map_err(|e| e.to_string())?;
    if contexts.len() != 1 {
        return Ok(None);
    }
    hs.go(&target.export).await.map(Some).map_err(|e| e.to_string())
}

/// The connection's task: sends requests, re-establishes the connection, fails requests when the window passes.
async fn run(
    target: ReplicaTarget,
    options: UpstreamOptions,
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<Cmd>,
    stream: Option<BoxStream>,
    size: u64,
) {
    let (broken_tx, mut broken_rx) = mpsc::unbounded_channel::<(u64, String)>();
    let mut lost_at: Option<Instant> = if stream.is_none() { Some(Instant::now()) } else { None };
    let mut writer: Option<Conn> = stream.map(|s| start_reader(s, &shared, 1, &broken_tx));
    let mut buf = Vec::new();
    loop {
        if writer.is_none() {
            let opened = open(&target, &options).await.and_then(|(stream, info)| {
                if info.size == size {
                    Ok(stream)
                } else {
                    Err(format!("the export is {} bytes now, not {size}: not used", info.size))
                }
            });
            match opened {
                Ok(stream) => {
                    let epoch = shared.epoch.fetch_add(1, Ordering::Relaxed) + 1;
                    let mut w = start_reader(stream, &shared, epoch, &broken_tx);
                    shared.connected.store(true, Ordering::Relaxed);
                    shared.down.store(false, Ordering::Relaxed);
                    let was_lost = lost_at.take();
                    // Re-send what is in flight, in the order it was first sent (handles grow).
                    let handles: Vec<u64> = lock(&shared.pending).keys().copied().collect();
                    tracing::info!(replica = %target, resent = handles.len(),
                        after_ms = was_lost.map(|t| t.elapsed().as_millis()).unwrap_or(0), "replica connection back");
                    let mut ok = true;
                    for h in handles {
                        if send(&shared, &mut w, h, epoch, &mut buf).await.is_err() {
                            ok = false;
                            break;
                        }
                    }
                    if ok {
                        writer = Some(w);
                    } else {
                        shared.connected.store(false, Ordering::Relaxed);
                        lost_at = Some(was_lost.unwrap_or_else(Instant::now));
                    }
                    continue;
                }
                Err(e) => {
                    *lock(&shared.last_error) = e.clone();
                    let since = *lost_at.get_or_insert_with(Instant::now);
                    if since.elapsed() >= options.reconnect_window && !shared.down.swap(true, Ordering::Relaxed) {
                        tracing::warn!(replica = %target, error = %e, "replica unreachable for the reconnect window");
                        fail_all(&shared, UpstreamError::Down(e));
                    }
                }
            }
        }
        let backoff = tokio::time::sleep(Duration::from_millis(if lost_at.is_some() { 200 } else { 0 }));
        tokio::select! {
            cmd = rx.recv() => match cmd {
                None => return,
                Some(Cmd::Send(h)) => {
                    if let Some(w) = writer.as_mut() {
                        let epoch = shared.epoch.load(Ordering::Relaxed);
                        if let Err(e) = send(&shared, w, h, epoch, &mut buf).await {
                            lost(&target, &shared, &mut writer, &mut lost_at, e);
                        }
                    }
                }
                Some(Cmd::Abandon) => {
                    fail_all(&shared, UpstreamError::Abandoned);
                    if writer.take().is_some() {
                        shared.connected.store(false, Ordering::Relaxed);
                        lost_at = Some(Instant::now());
                    }
                }
            },
            Some((epoch, e)) = broken_rx.recv() => {
                if epoch == shared.epoch.load(Ordering::Relaxed) && writer.is_some() {
                    lost(&target, &shared, &mut writer, &mut lost_at, e);
                }
            }
            _ = backoff, if writer.is_none() => {}
        }
    }
}

fn lost(target: &ReplicaTarget, shared: &Shared, writer: &mut Option<Conn>, lost_at: &mut Option<Instant>, e: String) {
    tracing::warn!(replica = %target, error = %e, "replica connection lost; reconnecting");
    *lock(&shared.last_error) = e;
    *writer = None;
    shared.connected.store(false, Ordering::Relaxed);
    lost_at.get_or_insert_with(Instant::now);
}

/// Write request `handle` if it is still waiting and was not sent on this connection yet.
async fn send(shared: &Shared, conn: &mut Conn, handle: u64, epoch: u64, buf: &mut Vec<u8>) -> Result<(), String> {
    let payload = {
        let mut pending = lock(&shared.pending);
        let Some(p) = pending.get_mut(&handle) else { return Ok(()) };
        if p.sent_on == epoch {
            return Ok(());
        }
        p.sent_on = epoch;
        let r = &p.request;
        buf.clear();
        buf.extend_from_slice(
            &RequestHeader { flags: r.flags, command: r.command, handle, offset: r.offset, length: r.length }.encode(),
        );
        r.payload.clone()
    };
    let w = &mut conn.writer;
    let written = match &payload {
        Some(p) => write_parts(w, &[buf, p]).await,
        None => w.write_all(buf).await,
    };
    written.map_err(|e| e.to_string())?;
    w.flush().await.map_err(|e| e.to_string())
}

fn start_reader(
    stream: BoxStream,
    shared: &Arc<Shared>,
    epoch: u64,
    broken: &mpsc::UnboundedSender<(u64, String)>,
) -> Conn {
    let (r, writer) = tokio::io::split(stream);
    let shared = shared.clone();
    let broken = broken.clone();
    let reader = tokio::spawn(async move {
        let e = read_replies(r, &shared, epoch).await;
        let _ = broken.send((epoch, e));
    });
    Conn { writer, reader }
}

/// Read replies until the connection fails; returns why.
async fn read_replies(r: ReadHalf<BoxStream>, shared: &Shared, epoch: u64) -> String {
    let mut r = BufReader::with_capacity(256 * 1024, r);
    loop {
        let mut h = [0u8; SIMPLE_REPLY_HEADER_LEN];
        if let Err(e) = r.read_exact(&mut h).await {
            return format!("reading a reply: {e}");
        }
        if shared.epoch.load(Ordering::Relaxed) != epoch {
            return "superseded by a newer connection".into();
        }
        let reply = match SimpleReplyHeader::decode(&h) {
            Ok(reply) => reply,
            Err(e) => return format!("malformed reply: {e}"),
        };
        let what = lock(&shared.pending).get(&reply.handle).map(|p| (p.request.command, p.request.length));
        let Some((command, length)) = what else {
            return format!("reply for handle {} that is not in flight", reply.handle);
        };
        let mut data = Vec::new();
        if reply.error == 0 && command == CMD_READ {
            data = match read_vec(&mut r, length as usize).await {
                Ok(d) => d,
                Err(e) => return format!("reading data: {e}"),
            };
        }
        if let Some(p) = take(shared, reply.handle) {
            let result = if reply.error == 0 { Ok(data) } else { Err(UpstreamError::Replica(Errno(reply.error))) };
            let _ = p.done.send(result);
        }
    }
}

/// Read exactly `len` bytes into a new vector, without zeroing it first (large reads bypass a BufReader's buffer).
pub(crate) async fn read_vec<R: AsyncRead + Unpin>(r: &mut R, len: usize) -> std::io::Result<Vec<u8>> {
    let mut data = Vec::with_capacity(len);
    while data.len() < len {
        if r.read_buf(&mut data).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(data)
}

/// Write all of `parts` with vectored writes: a header and its payload in one system call when they fit.
pub(crate) async fn write_parts<W: AsyncWrite + Unpin>(w: &mut W, parts: &[&[u8]]) -> std::io::Result<()> {
    let mut slices: Vec<std::io::IoSlice<'_>> = parts.iter().map(|p| std::io::IoSlice::new(p)).collect();
    let mut bufs: &mut [std::io::IoSlice<'_>] = &mut slices;
    while !bufs.is_empty() {
        let n = w.write_vectored(bufs).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        std::io::IoSlice::advance_slices(&mut bufs, n);
    }
    Ok(())
}
