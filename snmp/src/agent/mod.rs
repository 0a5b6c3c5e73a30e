//! The SNMP agent engine: configuration, the [`Agent`] request processor and its UDP server.
//!
//! [`Agent::process`] turns one request datagram into (maybe) one response datagram,
//! synchronously and without I/O, so it is also the fuzzing entry point. [`Agent::serve`] runs it
//! on a tokio UDP socket. MIB data comes from [`MibHandler`]s registered per subtree; the
//! SNMPv2-MIB `system` and `snmp` groups are always registered by the builder. Who may read and write
//! what is [`AgentConfig::communities`] ([`access`]); handlers learn who is asking from
//! [`Requester::current`] ([`requester`]).

mod access;
mod builtin;
mod handler;
mod process;
mod registry;
mod requester;
mod rows;
mod table;
mod v3;

pub use v3::TIME_WINDOW;

pub use access::{Access, Community, Rights, View};

pub use builtin::{
    CounterGroup, EngineGroup, SnmpGroup, SystemGroup, SystemInfo, SNMP, SNMP_ENGINE, SNMP_MPD_STATS, SNMP_TRAPS,
    SNMP_TRAP_ENTERPRISE_0, SNMP_TRAP_OID_0, SYSTEM, SYS_UP_TIME_0, USM_STATS,
};
pub use handler::{
    FnPreparedSet, GetResult, MibHandler, NothingToUndo, PreparedSet, SetFailure, SetItem, Undo, UndoFailed,
};
pub use registry::{Registry, RegistryError};
pub use requester::{Requester, RequesterScope, SecurityLevel, SecurityModel};
pub use rows::{ScalarHandler, Scalars, Table, TableHandler};
pub use table::{next_key, ScalarLayout, TableLayout};

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;

use crate::counters::SnmpCounters;
use crate::oid::Oid;
use crate::uptime::Uptime;
use crate::usm::{Engine, UsmUser};

/// Largest UDP payload over IPv4, the default response size limit.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 65507;

/// Agent settings.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The communities v1 and v2c requests may use, with what each may read and write. A request with any other
    /// community is dropped. There is no write community unless one is listed here.
    pub communities: Vec<Community>,
    /// Responses larger than this become tooBig (GetBulk: fewer repetitions). Clamped to
    /// 484..=65535 (484 is the minimum every SNMP entity must accept).
    pub max_message_size: usize,
    /// Concurrent receive loops in [`Agent::serve`].
    pub workers: usize,
    /// The system group's initial values.
    pub system: SystemInfo,
    /// SNMPv3: the engine and its users. `None`: v3 messages are dropped as a bad version.
    pub usm: Option<UsmConfig>,
}

/// An agent's SNMPv3 settings: its authoritative engine and the users it serves.
#[derive(Clone, Debug)]
pub struct UsmConfig {
    pub engine: Engine,
    pub users: Vec<UsmUser>,
}

impl Default for AgentConfig {
    fn default() -> AgentConfig {
        AgentConfig {
            communities: vec![Community::read_only("public")],
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()).min(4),
            system: SystemInfo::default(),
            usm: None,
        }
    }
}

/// Collects handlers, then builds an [`Agent`].
pub struct AgentBuilder {
    config: AgentConfig,
    uptime: Uptime,
    counters: Arc<SnmpCounters>,
    handlers: Vec<(Oid, Arc<dyn MibHandler>)>,
}

impl AgentBuilder {
    /// Uses `uptime` as the sysUpTime epoch (default: when the builder was made).
    pub fn uptime(mut self, uptime: Uptime) -> AgentBuilder {
        self.uptime = uptime;
        self
    }

    /// Uses `counters` (e.g. shared with other parts of the owner) instead of fresh ones.
    pub fn counters(mut self, counters: Arc<SnmpCounters>) -> AgentBuilder {
        self.counters = counters;
        self
    }

    /// Serves the subtree `prefix` with `handler`. Subtrees may not overlap each other or the
    /// built-in 1.3.6.1.2.1.1 and 1.3.6.1.2.1.11 (checked by [`AgentBuilder::build`]).
    pub fn handler(mut self, prefix: Oid, handler: Arc<dyn MibHandler>) -> AgentBuilder {
        self.handlers.push((prefix, handler));
        self
    }

    /// Builds the agent, registering the system and snmp groups.
    pub fn build(self) -> Result<Agent, RegistryError> {
        let system = Arc::new(SystemGroup::new(self.config.system.clone(), self.uptime));
        let snmp = Arc::new(SnmpGroup::new(Arc::clone(&self.counters)));
        let mut registry = Registry::new();
        registry.register(Oid::from_slice(&SYSTEM), system.clone())?;
        registry.register(Oid::from_slice(&SNMP), snmp.clone())?;
        let usm = match &self.config.usm {
            Some(cfg) => {
                let max = self.config.max_message_size.clamp(484, 65535);
                registry
                    .register(Oid::from_slice(&SNMP_ENGINE), Arc::new(EngineGroup::new(cfg.engine.clone(), max)))?;
                registry.register(
                    Oid::from_slice(&SNMP_MPD_STATS),
                    Arc::new(CounterGroup::mpd_stats(Arc::clone(&self.counters))),
                )?;
                registry.register(
                    Oid::from_slice(&USM_STATS),
                    Arc::new(CounterGroup::usm_stats(Arc::clone(&self.counters))),
                )?;
                Some(v3::UsmState::new(cfg))
            }
            None => None,
        };
        for (prefix, handler) in self.handlers {
            registry.register(prefix, handler)?;
        }
        let mut config = self.config;
        config.max_message_size = config.max_message_size.clamp(484, 65535);
        config.workers = config.workers.max(1);
        Ok(Agent {
            config,
            registry,
            counters: self.counters,
            uptime: self.uptime,
            system,
            snmp,
            usm,
            set_lock: Mutex::new(()),
        })
    }
}

/// An SNMPv1/v2c agent: request processing over a handler registry.
pub struct Agent {
    config: AgentConfig,
    registry: Registry,
    counters: Arc<SnmpCounters>,
    uptime: Uptime,
    system: Arc<SystemGroup>,
    snmp: Arc<SnmpGroup>,
    /// SNMPv3 state: the engine and the users localised to it.
    usm: Option<v3::UsmState>,
    /// SETs are applied one at a time so that validate-then-commit is atomic across SETs.
    set_lock: Mutex<()>,
}

impl Agent {
    /// Starts building an agent with `config`.
    pub fn builder(config: AgentConfig) -> AgentBuilder {
        AgentBuilder {
            config,
            uptime: Uptime::start_now(),
            counters: Arc::new(SnmpCounters::new()),
            handlers: Vec::new(),
        }
    }

    /// The SNMP traffic counters.
    pub fn counters(&self) -> &Arc<SnmpCounters> {
        &self.counters
    }

    /// The sysUpTime epoch (share it with the notification sender).
    pub fn uptime(&self) -> Uptime {
        self.uptime
    }

    /// The system group (current sysName etc.).
    pub fn system(&self) -> &SystemGroup {
        &self.system
    }

    /// Whether a manager enabled snmpEnableAuthenTraps (the owner sends those traps, if any).
    pub fn authen_traps_enabled(&self) -> bool {
        self.snmp.authen_traps_enabled()
    }

    /// The SNMPv3 engine, when the agent serves v3.
    pub fn engine(&self) -> Option<&Engine> {
        self.usm.as_ref().map(v3::UsmState::engine)
    }

    /// The effective configuration.
    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    /// Runs `f` between two SET requests: no SET is being checked, committed or undone meanwhile, so `f` sees
    /// each SET's effect whole (e.g. to announce a change once per SET, not once per handler it touched).
    pub fn between_sets<R>(&self, f: impl FnOnce() -> R) -> R {
        let _serialised = self.set_lock.lock().unwrap_or_else(|e| e.into_inner());
        f()
    }

    /// Processes one request datagram from `from`; returns the response datagram, or `None`
    /// when the request is dropped (malformed, bad community, not a request, ...).
    pub fn process(&self, datagram: &[u8], from: SocketAddr) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        self.process_into(datagram, from, &mut out).then_some(out)
    }

    /// Like [`Agent::process`], writing the response into `out` (cleared first); returns
    /// whether there is a response to send. Lets a server loop reuse one buffer.
    pub fn process_into(&self, datagram: &[u8], from: SocketAddr, out: &mut Vec<u8>) -> bool {
        out.clear();
        process::process(self, datagram, from, out)
    }

    /// Answers requests on `socket` until `shutdown` completes, with
    /// [`AgentConfig::workers`] concurrent receive loops. Per-datagram errors are logged and
    /// never end the loop.
    pub async fn serve<F>(self: Arc<Self>, socket: UdpSocket, shutdown: F)
    where
        F: Future<Output = ()> + Send,
    {
        let socket = Arc::new(socket);
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..self.config.workers {
            let agent = Arc::clone(&self);
            let socket = Arc::clone(&socket);
            workers.spawn(async move { agent.worker(&socket).await });
        }
        shutdown.await;
        workers.abort_all();
        while workers.join_next().await.is_some() {}
    }

    async fn worker(&self, socket: &UdpSocket) {
        let mut buf = vec![0u8; 65536];
        let mut out = Vec::with_capacity(1500);
        loop {
            let (len, from) = match socket.recv_from(&mut buf).await {
                Ok(ok) => ok,
                Err(e) => {
                    tracing::warn!(error = %e, "SNMP agent receive failed");
                    // Avoid a hot loop if the socket is persistently failing.
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            if self.process_into(&buf[..len], from, &mut out) {
                if let Err(e) = socket.send_to(&out, from).await {
                    tracing::debug!(%from, error = %e, "SNMP agent send failed");
                }
            }
        }
    }
}
