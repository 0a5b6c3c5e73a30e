//! `dvsan-station run`: wires the store, the notification path, the coordinator, the forwarder and the station's
//! own agent together, and shuts them down in order.
//!
//! With `--snmp-listen` and a write or admin community or a read-write SNMPv3 user it also runs the station's tasks
//! ([`crate::tasks`]), served as dvsanStationTaskTable; on shutdown it stops starting tasks and abandons running
//! ones. Who may see and change what over SNMP ([`crate::principal::Admins`]) is given to the tables that decide it.
//!
//! The station has one SNMP engine ([`load_engine`], kept in the state directory): its own agent serves its
//! SNMPv3 users (`--users`) with it and its forwarded v3 notifications carry it; its notification receiver takes
//! SNMPv3 notifications from the enrolled units' users with it (authoritative for informs sent to it), and the
//! coordinator speaks to enrolled units as their users ([`crate::unit_access`]).
//!
//! Once every socket is bound, the station writes `station.ready` (JSON: pid, bound addresses, engine id) into its
//! state directory, so scripts and tests that asked for port 0 learn the real ports; it removes the file on a clean
//! exit. On shutdown the receiver stops first, then the writer commits (and acknowledges) what is still queued.

use crate::announce::Announcer;
use crate::cert_table::CertRequestTable;
use crate::coordinator::{Coordinator, CoordinatorSettings};
use crate::counters::StationCounters;
use crate::credentials::EnrolledUsers;
use crate::forward::{ForwardSettings, Forwarder};
use crate::front_table::FrontTable;
use crate::ingest::{receive_loop, IngestQueue, IngestSettings, UnitIds, Writer};
use crate::notification_log::NotificationLog;
use crate::principal::Admins;
use crate::request_table::{RequestSettings, RequestTable};
use crate::station_mib::{self, PoolTables};
use crate::store::{StationStore, StoreError};
use crate::tasks::{TaskRunner, TaskSettings};
use crate::trap_log::{TrapLog, TRAP_LOG_FILE};
use crate::unit_access::UnitAccess;
use dvsan_snmp::agent::{Community, SystemInfo, TableHandler, UsmConfig};
use dvsan_snmp::usm::engine::EngineError;
use dvsan_snmp::usm::{Engine, UserAccess, UsmUser};
use dvsan_snmp::{Agent, AgentConfig, Manager, NotificationReceiver, Uptime};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The ready file's name in the state directory.
pub const READY_FILE: &str = "station.ready";

/// Receive buffer asked for on the notification socket: bursts queue in the kernel while the receive task
/// catches up. Granted up to net.core.rmem_max without privileges (SO_RCVBUFFORCE is tried first).
const RECEIVE_BUFFER: usize = 16 << 20;

#[derive(Debug, Clone)]
pub struct StationConfig {
    pub state_dir: PathBuf,
    pub listen_traps: SocketAddr,
    pub agent_port: u16,
    /// Community for reading units (polls and walks).
    pub community: String,
    /// Community for SETs on units (allocation grants, tasks, reconciliation); `None`: the station changes no unit.
    pub write_community: Option<String>,
    /// Communities accepted on received notifications.
    pub trap_communities: Vec<String>,
    pub poll_interval: Duration,
    pub unreachable_after: u32,
    pub forward: Vec<SocketAddr>,
    pub forward_inform: bool,
    pub forward_community: String,
    /// The station's own agent (DVSAN-STATION-MIB), if any.
    pub snmp_listen: Option<SocketAddr>,
    pub snmp_community: String,
    /// Write communities of the station's own agent (dvsanStationRequestTable, dvsanStationTaskTable); each
    /// requester sees and releases only what it asked for. None (and no admin) keeps the agent read-only and runs
    /// no tasks.
    pub snmp_write_communities: Vec<String>,
    /// Administrator communities of the station's own agent: they write too, see and release everything, and
    /// alone may run destructive tasks.
    pub admin_communities: Vec<String>,
    /// SNMPv3 users of the station's own agent (`--users`): read-write users submit requests and tasks like a write
    /// community, read-only users only read.
    pub snmp_users: Vec<UsmUser>,
    /// Administrator users of the station's own agent (`--admin-user`; read-write users of `snmp_users`).
    pub admin_users: Vec<String>,
    /// Forward notifications as this SNMPv3 user (`--forward-user`) instead of `forward_community`.
    pub forward_user: Option<UsmUser>,
    /// Station tasks running at once, at most.
    pub task_workers: usize,
    /// How long tasks and storage requests wait for a unit's answer (per request, with 2 retries).
    pub unit_timeout: Duration,
    pub trap_log_max_bytes: u64,
    pub trap_log_keep: usize,
    pub keep_notifications: u64,
    /// `synchronous = FULL`: fsync at every commit (survives power loss, slower).
    pub full_durability: bool,
    /// `--trust-community-units` (lab mode): pool units that announce themselves with a community, without
    /// enrolment or approval (see `trust`).
    pub trust_community_units: bool,
}

impl StationConfig {
    /// Whether the station's own agent accepts any SET: a write or admin community, or a read-write user.
    pub fn agent_writable(&self) -> bool {
        !self.snmp_write_communities.is_empty()
            || !self.admin_communities.is_empty()
            || self.snmp_users.iter().any(|u| u.access() == UserAccess::ReadWrite)
    }

    /// Defaults for everything but the state directory and the notification port.
    pub fn new(state_dir: PathBuf, listen_traps: SocketAddr) -> Self {
        StationConfig {
            state_dir,
            listen_traps,
            agent_port: 1161,
            community: "public".to_string(),
            write_community: None,
            trap_communities: vec!["public".to_string()],
            poll_interval: Duration::from_secs(5),
            unreachable_after: 3,
            forward: Vec::new(),
            forward_inform: false,
            forward_community: "public".to_string(),
            snmp_listen: None,
            snmp_community: "public".to_string(),
            snmp_write_communities: Vec::new(),
            admin_communities: Vec::new(),
            snmp_users: Vec::new(),
            admin_users: Vec::new(),
            forward_user: None,
            task_workers: 4,
            unit_timeout: Duration::from_secs(1),
            trap_log_max_bytes: 16 << 20,
            trap_log_keep: 4,
            keep_notifications: 2_000_000,
            full_durability: false,
            trust_community_units: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen for notifications on {address}: {source}")]
    TrapSocket { address: SocketAddr, source: std::io::Error },
    #[error("cannot serve the station MIB on {address}: {source}")]
    AgentSocket { address: SocketAddr, source: std::io::Error },
    #[error("cannot open the manager socket: {0}")]
    Manager(std::io::Error),
    #[error("cannot open the trap log {path}: {source}")]
    TrapLog { path: PathBuf, source: std::io::Error },
    #[error("cannot build the station agent: {0}")]
    Agent(String),
    #[error("a start-up step stopped unexpectedly: {0}")]
    Startup(String),
    #[error(transparent)]
    Credentials(#[from] crate::credentials::CredentialsError),
    #[error("the station's SNMP engine: {0}")]
    Engine(#[from] EngineError),
    #[error("cannot write {path}: {source}")]
    ReadyFile { path: PathBuf, source: std::io::Error },
}

/// Binds a UDP socket with a large receive buffer.
fn bind_notification_socket(address: SocketAddr) -> std::io::Result<tokio::net::UdpSocket> {
    use nix::sys::socket::{setsockopt, sockopt};
    let socket = std::net::UdpSocket::bind(address)?;
    socket.set_nonblocking(true)?;
    if setsockopt(&socket, sockopt::RcvBufForce, &RECEIVE_BUFFER).is_err() {
        if let Err(e) = setsockopt(&socket, sockopt::RcvBuf, &RECEIVE_BUFFER) {
            tracing::warn!(error = %e, "could not enlarge the notification socket's receive buffer");
        }
    }
    tokio::net::UdpSocket::from_std(socket)
}

/// The station's SNMP engine (RFC 3411): its id and boots are kept in `state_dir`/`snmp-engine.toml`, the file a
/// unit's agent keeps in its state directory, so the id stays the same across restarts and boots counts them. Load
/// it once per run and share it: the station's own agent is authoritative with it, its forwarded v3 traps carry
/// it, and units send their informs to it.
pub fn load_engine(state_dir: &Path) -> Result<Engine, StartError> {
    Ok(Engine::load_or_create(state_dir)?)
}

/// Runs the station until `shutdown` completes. Must run on a multi-threaded tokio runtime.
pub async fn run(
    config: StationConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<Arc<StationCounters>, StartError> {
    let (writer_store, pool_store) = off_runtime({
        let config = config.clone();
        move || open_stores(&config)
    })
    .await?;
    let engine = off_runtime({
        let state_dir = config.state_dir.clone();
        move || load_engine(&state_dir)
    })
    .await?;
    let counters = Arc::new(StationCounters::default());
    let uptime = Uptime::start_now();
    let started_ms = crate::timefmt::now_ms();

    let socket = bind_notification_socket(config.listen_traps)
        .map_err(|source| StartError::TrapSocket { address: config.listen_traps, source })?;
    let enrolled = EnrolledUsers::open(&config.state_dir)?;
    let receiver = NotificationReceiver::from_socket(socket).with_usm(engine.clone(), enrolled.clone());
    let traps_address =
        receiver.local_addr().map_err(|source| StartError::TrapSocket { address: config.listen_traps, source })?;
    let acknowledger = receiver.acknowledger();

    let unspecified = unspecified_like(config.listen_traps);
    let manager = Arc::new(Manager::new(unspecified).await.map_err(StartError::Manager)?);
    let forwarder = start_forwarder(&config, unspecified, uptime, &engine, &counters).await?;
    let announcer = forwarder.clone().map(station_mib::announcer);

    let mut own_agent = match config.snmp_listen {
        Some(listen) => {
            let parts = AgentParts {
                uptime,
                counters: Arc::clone(&counters),
                manager: Arc::clone(&manager),
                announcer,
                engine: engine.clone(),
            };
            let config = config.clone();
            Some(off_runtime(move || OwnAgent::start(&config, listen, parts, started_ms)).await?)
        }
        None => None,
    };

    let trap_log = open_trap_log(&config)?;
    let ingest_settings = IngestSettings {
        communities: config.trap_communities.clone(),
        keep_notifications: config.keep_notifications,
        ..IngestSettings::default()
    };
    let queue = IngestQueue::new(&ingest_settings);
    let unit_ids: UnitIds = Arc::default();
    let (activity_tx, activity_rx) = tokio::sync::mpsc::channel(256);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);

    let writer = Writer {
        queue: Arc::clone(&queue),
        store: writer_store,
        trap_log: Some(trap_log),
        acknowledger,
        runtime: tokio::runtime::Handle::current(),
        activity: activity_tx,
        forwarder: forwarder.clone(),
        unit_ids: Arc::clone(&unit_ids),
        counters: Arc::clone(&counters),
        settings: ingest_settings.clone(),
    };
    let writer_thread = std::thread::Builder::new()
        .name("notification-writer".to_string())
        .spawn(move || writer.run())
        .map_err(|e| StartError::Agent(format!("cannot start the writer thread: {e}")))?;
    let mut settings = CoordinatorSettings::new(
        config.community.clone(),
        config.agent_port,
        config.poll_interval,
        config.unreachable_after,
    );
    settings.trust_community_units = config.trust_community_units;
    if config.trust_community_units {
        tracing::warn!("lab mode (--trust-community-units): units that announce themselves are pooled unchecked");
    }
    let credentials = crate::credentials::CredentialStore::open(&config.state_dir)?;
    let access = UnitAccess::new(config.community.clone(), config.write_community.clone(), enrolled.clone());
    let coordinator =
        Coordinator::new(pool_store, manager, settings, unit_ids, forwarder, Arc::clone(&counters), Some(credentials))
            .with_access(access)
            .with_tasks(own_agent.as_ref().and_then(|agent| agent.runner.clone()));
    let coordinator_task = coordinator.spawn(activity_rx, stop_rx.clone());
    let receive_task = tokio::spawn(receive_loop(
        receiver,
        Arc::clone(&queue),
        ingest_settings.communities.clone(),
        Arc::clone(&counters),
        stop_rx,
    ));

    let ready_path = write_ready_file(&config, traps_address, own_agent.as_ref().map(|a| a.address), &engine)?;
    start_reconciler(&config, &enrolled);

    shutdown.await;
    tracing::info!("station stopping");
    if let Some(agent) = &mut own_agent {
        agent.stop_tasks().await;
    }
    let _ = stop_tx.send(true);
    let _ = receive_task.await;
    queue.close();
    let _ = tokio::task::spawn_blocking(move || writer_thread.join()).await;
    let _ = coordinator_task.await;
    if let Some(agent) = own_agent {
        agent.stop().await;
    }
    let _ = std::fs::remove_file(&ready_path);
    tracing::info!(counters = %counters.summary(), "station stopped");
    Ok(counters)
}

/// The unspecified address of `address`'s family, any port: where the station's own requests go out from.
fn unspecified_like(address: SocketAddr) -> SocketAddr {
    if address.is_ipv6() {
        SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))
    } else {
        SocketAddr::from(([0, 0, 0, 0], 0))
    }
}

/// Runs a start-up step that opens stores on a blocking-pool thread, off the runtime's workers.
async fn off_runtime<T: Send + 'static>(
    step: impl FnOnce() -> Result<T, StartError> + Send + 'static,
) -> Result<T, StartError> {
    tokio::task::spawn_blocking(step).await.map_err(|e| StartError::Startup(e.to_string()))?
}

/// The notification writer's connection (with `--full-durability` applied) and the coordinator's.
fn open_stores(config: &StationConfig) -> Result<(StationStore, StationStore), StartError> {
    let writer_store = StationStore::open(&config.state_dir)?;
    if config.full_durability {
        writer_store.set_full_durability()?;
    }
    Ok((writer_store, StationStore::open(&config.state_dir)?))
}

/// The trap log (`--trap-log-max-size`, `--trap-log-keep`) in the state directory.
fn open_trap_log(config: &StationConfig) -> Result<TrapLog, StartError> {
    let path = config.state_dir.join(TRAP_LOG_FILE);
    TrapLog::open(&path, config.trap_log_max_bytes, config.trap_log_keep)
        .map_err(|source| StartError::TrapLog { path: path.clone(), source })
}

/// The forwarder to the `--forward` sinks, if there are any.
async fn start_forwarder(
    config: &StationConfig,
    bind: SocketAddr,
    uptime: Uptime,
    engine: &Engine,
    counters: &Arc<StationCounters>,
) -> Result<Option<Forwarder>, StartError> {
    if config.forward.is_empty() {
        return Ok(None);
    }
    let settings = ForwardSettings {
        sinks: config.forward.clone(),
        inform: config.forward_inform,
        community: config.forward_community.clone(),
        user: config.forward_user.clone().map(|user| (user, engine.clone())),
        timeout: Duration::from_secs(1),
        retries: 3,
    };
    let forwarder =
        Forwarder::start(bind, settings, uptime, Arc::clone(counters)).await.map_err(StartError::Manager)?;
    Ok(Some(forwarder))
}

/// What the station's own agent shares with the rest of the station.
struct AgentParts {
    uptime: Uptime,
    counters: Arc<StationCounters>,
    manager: Arc<Manager>,
    announcer: Option<Announcer>,
    /// The station's engine, authoritative for its agent's SNMPv3 users.
    engine: Engine,
}

/// The station's own agent (`--snmp-listen`): DVSAN-STATION-MIB, the request table, the task table and its
/// runner, the notification log. Its handlers read and write the store, so it serves on a thread of its own
/// (`station-agent`, with a single-threaded runtime) rather than on the runtime's workers.
struct OwnAgent {
    address: SocketAddr,
    thread: std::thread::JoinHandle<()>,
    shutdown: tokio::sync::oneshot::Sender<()>,
    runner: Option<TaskRunner>,
    dispatcher: Option<tokio::task::JoinHandle<()>>,
}

impl OwnAgent {
    /// Opens its stores and the task runner; call it off the runtime's workers ([`off_runtime`]).
    fn start(
        config: &StationConfig,
        listen: SocketAddr,
        parts: AgentParts,
        started_ms: i64,
    ) -> Result<OwnAgent, StartError> {
        let admins = Admins::new(config.admin_communities.iter().cloned(), config.admin_users.iter().cloned());
        let tables = Arc::new(
            PoolTables::new(StationStore::open(&config.state_dir)?, Duration::from_millis(500))
                .with_admins(admins.clone()),
        );
        let agent_config = AgentConfig {
            // Writers first, so a community given as both reads and writes.
            communities: config
                .admin_communities
                .iter()
                .chain(&config.snmp_write_communities)
                .map(Community::read_write)
                .chain(std::iter::once(Community::read_only(&config.snmp_community)))
                .collect(),
            usm: (!config.snmp_users.is_empty())
                .then(|| UsmConfig { engine: parts.engine.clone(), users: config.snmp_users.clone() }),
            workers: 2,
            system: SystemInfo {
                descr: format!("dvsan management station {}", env!("CARGO_PKG_VERSION")),
                object_id: dvsan_snmp::Oid::from_slice(dvsan_mib::DVSAN_STATION_MIB),
                name: "dvsan-station".to_string(),
                ..SystemInfo::default()
            },
            ..AgentConfig::default()
        };
        let builder = station_mib::register(
            Agent::builder(agent_config).uptime(parts.uptime),
            Arc::clone(&tables),
            Arc::clone(&parts.counters),
        );
        // Station tasks need a write community or user to be submitted; without one the station runs none.
        let runner = match config.agent_writable() {
            true => Some(open_task_runner(config, &tables, parts.announcer.clone())?),
            false => None,
        };
        let requests = start_request_table(config, &tables, &admins, parts.announcer.clone(), runner.clone())?;
        let mut builder = builder.handler(requests.prefix(), Arc::new(requests));
        let certs = TableHandler::new(CertRequestTable::new(config.state_dir.clone(), admins.clone()));
        builder = builder.handler(certs.prefix(), Arc::new(certs));
        let refresh = Arc::clone(&tables);
        let fronts =
            FrontTable::new(StationStore::open(&config.state_dir)?, admins.clone(), move || refresh.invalidate());
        let fronts = TableHandler::new(fronts);
        builder = builder.handler(fronts.prefix(), Arc::new(fronts));
        let mut dispatcher = None;
        if let Some(tasks) = &runner {
            dispatcher = Some(tasks.start(Arc::clone(&parts.manager)));
            builder = crate::task_table::register(builder, tasks.clone(), admins);
        }
        let log = NotificationLog::new(&config.state_dir, parts.counters, config.keep_notifications, started_ms);
        let builder = builder.handler(NotificationLog::prefix(), Arc::new(log));
        let agent = Arc::new(builder.build().map_err(|e| StartError::Agent(e.to_string()))?);
        let socket_error = |source| StartError::AgentSocket { address: listen, source };
        let socket = std::net::UdpSocket::bind(listen).map_err(socket_error)?;
        socket.set_nonblocking(true).map_err(socket_error)?;
        let address = socket.local_addr().map_err(socket_error)?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(socket_error)?;
        let (shutdown, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("station-agent".to_string())
            .spawn(move || {
                runtime.block_on(async {
                    match tokio::net::UdpSocket::from_std(socket) {
                        Ok(socket) => {
                            agent
                                .serve(socket, async {
                                    let _ = shutdown_rx.await;
                                })
                                .await
                        }
                        Err(e) => tracing::error!(error = %e, "the station agent cannot use its socket"),
                    }
                })
            })
            .map_err(|e| StartError::Agent(format!("cannot start the agent thread: {e}")))?;
        Ok(OwnAgent { address, thread, shutdown, runner, dispatcher })
    }

    /// No new task starts; running ones are abandoned with the runtime (failed at the next start).
    async fn stop_tasks(&mut self) {
        if let Some(runner) = &self.runner {
            runner.stop();
        }
        if let Some(dispatcher) = self.dispatcher.take() {
            let _ = dispatcher.await;
        }
    }

    async fn stop(self) {
        let _ = self.shutdown.send(());
        let thread = self.thread;
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
}

/// dvsanStationRequestTable with its worker; every served request refreshes the MIB's snapshot.
fn start_request_table(
    config: &StationConfig,
    tables: &Arc<PoolTables>,
    admins: &Admins,
    announcer: Option<Announcer>,
    tasks: Option<TaskRunner>,
) -> Result<TableHandler<RequestTable>, StartError> {
    let settings = RequestSettings {
        state_dir: config.state_dir.clone(),
        read_community: config.community.clone(),
        write_community: config.write_community.clone(),
        timeout: config.unit_timeout,
        announcer,
        admins: admins.clone(),
        tasks,
    };
    let tables = Arc::clone(tables);
    let requests = RequestTable::start(settings, move || tables.invalidate())
        .map_err(|e| StartError::Agent(format!("cannot start the storage request worker: {e}")))?;
    Ok(TableHandler::new(requests))
}

/// The task runner, with the stored tasks loaded; every task that ran refreshes the MIB's snapshot.
fn open_task_runner(
    config: &StationConfig,
    tables: &Arc<PoolTables>,
    announcer: Option<Announcer>,
) -> Result<TaskRunner, StartError> {
    let settings = TaskSettings {
        state_dir: config.state_dir.clone(),
        read_community: config.community.clone(),
        write_community: config.write_community.clone(),
        timeout: config.unit_timeout,
        agent_port: config.agent_port,
        workers: config.task_workers.max(1),
    };
    let tables = Arc::clone(tables);
    Ok(TaskRunner::open(settings, announcer, move || tables.invalidate())?)
}

/// Writes `station.ready` (pid and bound addresses) once every socket is bound; returns its path.
fn write_ready_file(
    config: &StationConfig,
    traps_address: SocketAddr,
    snmp_address: Option<SocketAddr>,
    engine: &Engine,
) -> Result<PathBuf, StartError> {
    let ready_path = config.state_dir.join(READY_FILE);
    let ready = serde_json::json!({
        "pid": std::process::id(),
        "traps": traps_address.to_string(),
        "snmp": snmp_address.map(|a| a.to_string()),
        "engine_id": engine.id().to_hex(),
    });
    std::fs::write(&ready_path, format!("{ready}\n"))
        .map_err(|source| StartError::ReadyFile { path: ready_path.clone(), source })?;
    tracing::info!(
        traps = %traps_address,
        snmp = ?snmp_address,
        engine_id = %engine.id().to_hex(),
        state_dir = %config.state_dir.display(),
        poll_interval = ?config.poll_interval,
        "station running"
    );
    Ok(ready_path)
}

/// Repairs what a crash between allocation steps left behind (see `allocate::Allocator::reconcile`).
/// Needs the write community, or enrolled units (changed as their SNMPv3 users).
fn start_reconciler(config: &StationConfig, enrolled: &EnrolledUsers) {
    if config.write_community.is_none() && !enrolled.any() {
        tracing::warn!(
            "no --write-community and no enrolled unit: the units' grants are not reconciled with the assignments"
        );
        return;
    }
    if let Err(e) = crate::allocate::spawn_reconciler(
        config.state_dir.clone(),
        config.community.clone(),
        config.write_community.clone(),
        config.poll_interval,
    ) {
        tracing::warn!(error = %e, "cannot start the reconciliation thread");
    }
}
