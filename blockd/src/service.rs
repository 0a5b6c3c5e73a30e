//! The server: startup checks, the accept loop, per-connection handshake tasks, and graceful shutdown.
//!
//! The control plane (accepting, handshakes, timers) is async on a small tokio runtime; once a handshake picks an
//! export the socket becomes a blocking std socket served by its own thread ([`crate::transmission`]), and the
//! layout store is only touched by the maintenance thread ([`crate::maintenance`]). Shutdown is threaded through
//! explicitly: the caller passes a future that resolves on SIGTERM/SIGINT, and `run` stops accepting, ends
//! handshakes, lets each connection finish the requests it has read, flushes the media, writes the Stopped state
//! and returns.

use crate::admission::{Admission, AdmissionLimits, HandshakeSlot, Refused, ServedSlot};
use crate::bad_input::BadInput;
use crate::buffers::ReplyBudget;
use crate::connections::Registration;
use crate::exports::{ExportTable, MediaCache};
use crate::handshake::{negotiate, Channel, HandshakeEnd, HandshakeError, Negotiated, TlsPolicy};
use crate::large_reads::LargeReads;
use crate::maintenance::Maintenance;
use crate::splice_pipe::SplicerSlot;
use crate::state::Shared;
use crate::tls::{TlsError, TlsFiles, TlsMode, TlsServer};
use crate::traffic::TrafficTable;
use crate::transmission::{LargeRequestCounts, Session};
use crate::transport::{TlsStream, Transport};
use dvsan_layout::{LayoutError, LayoutStore, PUSHED_CRL_FILE, STORE_FILE};
use dvsan_nbd::constants::DEFAULT_MAX_PAYLOAD;
use dvsan_nbd::ExportLimits;
use rustls_pki_types::CertificateDer;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Settings of one server run.
#[derive(Debug, Clone)]
pub struct Config {
    pub state_dir: PathBuf,
    pub listen: SocketAddr,
    /// How often the layout's change counter is polled.
    pub poll_interval: Duration,
    /// Limit for a whole handshake, and for a client stalled mid-request or not reading its replies.
    pub handshake_timeout: Duration,
    /// The shortest a handshake's deadline gets when handshake slots fill up (it halves past half full and halves
    /// again past three quarters, [`crate::admission::shrink_deadline`]).
    pub handshake_timeout_floor: Duration,
    /// A connection in transmission without a request for this long is idle: when every served slot is taken, a
    /// new host may take the slot of the oldest idle connection of the host holding the most.
    pub idle_after: Duration,
    /// Limit for a new connection to send its first bytes (the client flags), much shorter than the handshake's.
    pub silent_timeout: Duration,
    /// Connection slots: handshakes and served connections, in total and per address ([`crate::admission`]).
    pub admission: AdmissionLimits,
    /// Most bytes of replies a connection gathers before sending them; larger READs go out in pieces this size.
    pub reply_buffer: usize,
    /// Reply buffer memory all connections together may hold past their first 256 KiB each.
    pub reply_memory: usize,
    /// How often traffic counters are saved and the heartbeat written.
    pub stats_interval: Duration,
    /// How long shutdown waits for connections to finish their requests.
    pub shutdown_grace: Duration,
    /// How long a connection polls its socket without sleeping before a blocking read (zero: off).
    pub busy_poll: Duration,
    /// WRITEs of at least this many bytes take the part of their payload not read yet socket → pipe → medium
    /// with splice(2) (zero: never).
    pub splice_write_min: u32,
    /// READs of at least this many bytes are large reads, answered the way `large_reads` says.
    pub large_read_min: u32,
    /// How large reads go from the media to the socket (structured-reply connections only).
    pub large_reads: LargeReads,
    /// Whether clients may or must use TLS (NBD_OPT_STARTTLS).
    pub tls: TlsMode,
    /// Certificate, key, client CA and CRLs; required unless `tls` is off. The CRL the station pushes
    /// ([`PUSHED_CRL_FILE`] in the state directory) is added to them.
    pub tls_files: Option<TlsFiles>,
}

impl Config {
    pub fn new(state_dir: PathBuf, listen: SocketAddr) -> Config {
        Config {
            state_dir,
            listen,
            poll_interval: Duration::from_millis(250),
            handshake_timeout: Duration::from_secs(10),
            handshake_timeout_floor: Duration::from_secs(2),
            idle_after: Duration::from_secs(5),
            silent_timeout: Duration::from_secs(2),
            admission: AdmissionLimits::default(),
            reply_buffer: 1024 * 1024,
            reply_memory: 64 * 1024 * 1024,
            stats_interval: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(10),
            busy_poll: Duration::from_micros(50),
            splice_write_min: 128 * 1024,
            large_read_min: 128 * 1024,
            large_reads: LargeReads::Auto,
            tls: TlsMode::Off,
            tls_files: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("the state directory {0} has no initialised unit: start dvsan-agent with this state dir first")]
    NotInitialised(PathBuf),
    #[error("unit store in {dir}: {source}")]
    Store { dir: PathBuf, source: LayoutError },
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    #[error("--tls {0:?} needs --tls-cert, --tls-key and --tls-ca")]
    TlsFilesMissing(TlsMode),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The TLS policy `config` asks for, with its certificates loaded.
fn tls_policy(config: &Config) -> Result<TlsPolicy, ServiceError> {
    let server = match (config.tls, &config.tls_files) {
        (TlsMode::Off, _) => None,
        (mode, None) => return Err(ServiceError::TlsFilesMissing(mode)),
        (_, Some(files)) => {
            let mut files = files.clone();
            files.pushed_crl.get_or_insert_with(|| config.state_dir.join(PUSHED_CRL_FILE));
            let server = TlsServer::load(&files)?;
            tracing::info!(crl_files = files.crls.len(), revoked = server.revoked(), "TLS configured");
            Some(Arc::new(server))
        }
    };
    Ok(TlsPolicy { mode: config.tls, server })
}

/// Open the unit store without creating one: blockd never initialises a unit.
pub fn open_store(state_dir: &Path) -> Result<LayoutStore, ServiceError> {
    let store_err = |source| ServiceError::Store { dir: state_dir.to_path_buf(), source };
    if !state_dir.join(STORE_FILE).is_file() {
        return Err(ServiceError::NotInitialised(state_dir.to_path_buf()));
    }
    let store = LayoutStore::open(state_dir).map_err(store_err)?;
    if !store.is_initialised().map_err(store_err)? {
        return Err(ServiceError::NotInitialised(state_dir.to_path_buf()));
    }
    Ok(store)
}

/// Serve until `shutdown` resolves, then shut down gracefully.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), ServiceError> {
    let dir = config.state_dir.clone();
    let store_err = |source| ServiceError::Store { dir: dir.clone(), source };
    let tls = Arc::new(tls_policy(&config)?);
    let mut store = open_store(&config.state_dir)?;
    let layout = store.load().map_err(store_err)?;
    let traffic = TrafficTable::from_records(&store.traffic().map_err(store_err)?);
    let saved_counters = store.data_counters().map_err(store_err)?;
    let mut cache = MediaCache::default();
    let table = Arc::new(ExportTable::build(layout, &mut cache));

    let listener = listen(config.listen).map_err(|source| ServiceError::Bind { addr: config.listen, source })?;
    let local = listener.local_addr()?;
    tracing::info!(
        listen = %local,
        exports = table.names().count(),
        tls = ?config.tls,
        change_counter = table.change_counter,
        "serving"
    );

    let admission = Admission::new(config.admission);
    let shared = Arc::new(Shared::new(table, traffic, admission, ReplyBudget::new(config.reply_memory)));
    // Totals continue from the last run's, like traffic: the agent serves them as DVSAN-MIB counters.
    shared.bad_input.add_saved(&saved_counters);
    let maintenance = Maintenance::spawn(
        store,
        cache,
        shared.clone(),
        tls.server.clone(),
        local,
        config.poll_interval,
        config.stats_interval,
    )?;
    let config = Arc::new(config);

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let Some(slot) = admit(&shared, peer) else { continue };
                    let conn = Accepted { socket, peer, slot };
                    tokio::spawn(handle_connection(conn, shared.clone(), config.clone(), tls.clone(), stop_rx.clone()));
                }
                Err(e) => {
                    // Out of file descriptors or similar: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }

    tracing::info!("shutting down: no new connections");
    drop(listener);
    shared.shutting_down.store(true, Ordering::SeqCst);
    let _ = stop_tx.send(true);
    shared.connections.stop_all();
    let deadline = Instant::now() + config.shutdown_grace;
    while shared.sessions.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let left = shared.sessions.load(Ordering::SeqCst);
    if left > 0 {
        tracing::warn!(connections = left, "connections still busy after the grace period");
    }
    tokio::task::spawn_blocking(move || maintenance.stop()).await.map_err(std::io::Error::other)?;
    tracing::info!(bad_input = %shared.bad_input.summary(), "stopped");
    Ok(())
}

/// Connections the kernel queues for accept. Tokio's (and std's) 128 overflows under a reconnecting flood of a
/// few hundred connections, and a legitimate host's SYN dropped there waits a whole second for its retransmission;
/// the kernel caps this at net.core.somaxconn.
const LISTEN_BACKLOG: u32 = 4096;

fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// A handshake slot for a connection just accepted from `peer`, or None (counted, logged at a bounded rate): the
/// socket is then dropped, which closes it.
fn admit(shared: &Shared, peer: SocketAddr) -> Option<HandshakeSlot> {
    match shared.admission.handshake(peer.ip().to_canonical()) {
        Ok((slot, evicted)) => {
            if evicted {
                tracing::debug!(%peer, "handshake slots full: took the oldest handshake of the heaviest source");
            }
            Some(slot)
        }
        Err(refused) => {
            let reason = match refused {
                Refused::SourceHandshakes => BadInput::TooManyHandshakesFromSource,
                _ => BadInput::TooManyHandshakes,
            };
            if let Some(suppressed) = shared.bad_input.note(reason) {
                tracing::warn!(%peer, suppressed, "connection refused: {}; closing", refused.describe());
            }
            None
        }
    }
}

/// A connection just accepted, with its handshake slot.
struct Accepted {
    socket: TcpStream,
    peer: SocketAddr,
    slot: HandshakeSlot,
}

/// One connection: the handshake as a task here, then, once it picked an export, its own thread for the data,
/// over the plain socket or the TLS session the handshake set up.
async fn handle_connection(
    conn: Accepted,
    shared: Arc<Shared>,
    config: Arc<Config>,
    tls: Arc<TlsPolicy>,
    mut stop: watch::Receiver<bool>,
) {
    let Accepted { socket, peer, slot } = conn;
    if let Err(e) = socket.set_nodelay(true) {
        tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
    }
    let Some((mut negotiated, channel)) = handshake(socket, peer, &shared, &tls, &config, &slot, &mut stop).await
    else {
        return;
    };
    // From here the connection holds a served slot (taken when it picked its export) instead.
    drop(slot);
    let Some(permit) = negotiated.slot.take() else { return };
    let blocking = |s: TcpStream| s.into_std().and_then(|s| s.set_nonblocking(false).map(|()| s));
    match channel {
        Channel::Plain(socket) => match blocking(socket) {
            Ok(stream) => transmit(&shared, &config, &tls, negotiated, peer, stream, permit),
            Err(e) => tracing::warn!(%peer, error = %e, "cannot hand the connection to the data path"),
        },
        Channel::Tls(tls_stream) => {
            let (socket, session) = tls_stream.into_inner();
            match blocking(socket) {
                Ok(socket) => {
                    let stream = TlsStream::new(session, socket);
                    transmit(&shared, &config, &tls, negotiated, peer, stream, permit)
                }
                Err(e) => tracing::warn!(%peer, error = %e, "cannot hand the connection to the data path"),
            }
        }
    }
}

/// Register a negotiated connection and start its data path on `stream`.
fn transmit<T: Transport>(
    shared: &Arc<Shared>,
    config: &Config,
    tls: &TlsPolicy,
    negotiated: Negotiated,
    peer: SocketAddr,
    stream: T,
    permit: ServedSlot,
) {
    let certificates = stream.peer_certificates();
    let Some(registration) = register(shared, &negotiated, peer, stream.socket(), certificates, tls) else {
        return;
    };
    // If its slot goes to another host while it is idle, the connection is closed like a revoked one.
    match stream.socket().try_clone() {
        Ok(socket) => {
            let closing = registration.closing.clone();
            permit.activity.set_closer(move || {
                closing.store(true, Ordering::Relaxed);
                let _ = socket.shutdown(std::net::Shutdown::Both);
            });
        }
        Err(e) => tracing::debug!(%peer, error = %e, "cannot clone the socket: this connection is never taken over"),
    }
    let identity = negotiated.client.identity.clone();
    let mut session = new_session(shared, config, negotiated, registration, peer, stream);
    session.activity = permit.activity.clone();
    tracing::info!(
        conn = session.id,
        %peer,
        identity = identity.as_deref().unwrap_or("-"),
        export = %session.export.name,
        read_only = session.limits.read_only,
        structured = session.structured,
        large_reads = ?session.large_reads,
        tls = session.stream.plain().is_none(),
        "connection in transmission"
    );
    start_session(session, shared.clone(), permit);
}

/// The handshake under its time limits, until it ends, the server stops or a newcomer takes its `slot`; None
/// (counted and logged at a bounded rate) if it did not end in transmission.
async fn handshake(
    socket: TcpStream,
    peer: SocketAddr,
    shared: &Shared,
    tls: &TlsPolicy,
    config: &Config,
    slot: &HandshakeSlot,
    stop: &mut watch::Receiver<bool>,
) -> Option<(Negotiated, Channel)> {
    let host = peer.ip().to_canonical();
    // Shorter the more handshake slots are taken (this one's included), so a flood cycles through them faster.
    let limit = shared.admission.handshake_deadline(config.handshake_timeout, config.handshake_timeout_floor);
    let outcome = tokio::select! {
        r = tokio::time::timeout(limit, negotiate(socket, host, shared, tls, config.silent_timeout)) => r,
        _ = stop.changed() => return None,
        _ = slot.evicted.notified() => {
            if let Some(suppressed) = shared.bad_input.note(BadInput::HandshakeEvicted) {
                tracing::warn!(%peer, suppressed, "handshake slots full: closing this source's oldest handshake");
            }
            return None;
        }
    };
    match outcome {
        Err(_) => {
            if let Some(suppressed) = shared.bad_input.note(BadInput::HandshakeTimeout) {
                tracing::warn!(%peer, ?limit, suppressed, "handshake not finished in time; closing");
            }
            None
        }
        Ok(Err(HandshakeError::Io(e))) => {
            if shared.bad_input.may_log().is_some() {
                tracing::debug!(%peer, error = %e, "connection ended during handshake");
            }
            None
        }
        Ok(Err(e @ HandshakeError::Bad { .. })) => {
            if let Some(suppressed) = shared.bad_input.may_log() {
                tracing::warn!(%peer, suppressed, "bad handshake, closing: {e}");
            }
            None
        }
        Ok(Ok((HandshakeEnd::Closed, _))) => None,
        Ok(Ok((HandshakeEnd::Transmission(n), channel))) => Some((n, channel)),
    }
}

/// Register the connection so revocation and shutdown reach it; None (logged) if its grant went away meanwhile.
fn register(
    shared: &Shared,
    negotiated: &Negotiated,
    peer: SocketAddr,
    stream: &std::net::TcpStream,
    certificates: Option<Vec<CertificateDer<'static>>>,
    tls: &TlsPolicy,
) -> Option<Registration> {
    let export = negotiated.export.clone();
    let client = negotiated.client.clone();
    let trusted = |chain: &[CertificateDer<'static>]| {
        tls.server.as_ref().is_some_and(|server| TlsServer::still_valid(&*server.verifier(), chain))
    };
    let current = || shared.exports();
    match shared.connections.register(export, client, negotiated.mode, stream, certificates, current, trusted) {
        Ok(Some(r)) => Some(r),
        Ok(None) => {
            tracing::info!(%peer, export = %negotiated.export.name, "grant or certificate revoked during the handshake; closing");
            None
        }
        Err(e) => {
            tracing::warn!(%peer, error = %e, "cannot register connection");
            None
        }
    }
}

/// The data path's state for a connection that negotiated `negotiated`.
fn new_session<T: Transport>(
    shared: &Shared,
    config: &Config,
    negotiated: Negotiated,
    registration: Registration,
    peer: SocketAddr,
    stream: T,
) -> Session<T> {
    let host = peer.ip().to_canonical();
    // Over TLS every byte goes through the cipher here: large reads and writes are copied like small ones.
    let plain = stream.plain().is_some();
    Session {
        id: registration.id,
        peer,
        stream,
        limits: ExportLimits {
            size: negotiated.export.size,
            read_only: negotiated.mode == dvsan_layout::AccessMode::ReadOnly,
            max_payload: DEFAULT_MAX_PAYLOAD,
            block_status: negotiated.allocation_context,
        },
        structured: negotiated.structured,
        traffic: shared.traffic.counters(&negotiated.export.name, host),
        bad_input: shared.bad_input.clone(),
        closing: registration.closing,
        stall_timeout: config.handshake_timeout,
        activity: Default::default(),
        idle_after: config.idle_after,
        busy_poll: config.busy_poll,
        splice_write_min: if plain { config.splice_write_min } else { 0 },
        large_read_min: config.large_read_min,
        reply_buffer: config.reply_buffer,
        reply_budget: shared.reply_budget.clone(),
        large_reads: if plain {
            config.large_reads.for_connection(peer.ip(), negotiated.structured)
        } else {
            LargeReads::Copied.for_connection(peer.ip(), negotiated.structured)
        },
        splicer: SplicerSlot::default(),
        large_counts: LargeRequestCounts::default(),
        export: negotiated.export,
    }
}

/// Run the session on its own thread, which unregisters it and gives back its connection slot (`permit`) when it
/// ends.
fn start_session<T: Transport>(session: Session<T>, shared: Arc<Shared>, permit: ServedSlot) {
    let (id, peer) = (session.id, session.peer);
    shared.sessions.fetch_add(1, Ordering::SeqCst);
    let thread_shared = shared.clone();
    let spawned = std::thread::Builder::new().name(format!("nbd-conn-{id}")).spawn(move || {
        session.run();
        thread_shared.connections.unregister(id);
        thread_shared.sessions.fetch_sub(1, Ordering::SeqCst);
        drop(permit);
    });
    if let Err(e) = spawned {
        tracing::error!(%peer, error = %e, "cannot start a connection thread");
        shared.connections.unregister(id);
        shared.sessions.fetch_sub(1, Ordering::SeqCst);
    }
}
