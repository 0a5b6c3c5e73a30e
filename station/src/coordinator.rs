//! The coordinator: turns notifications and poll answers into pool changes.
//!
//! It owns the pool's write connection and one SNMP manager, and runs on a thread of its own
//! ([`Coordinator::spawn`]), where its store calls may block. Inputs, all handled on that one loop so that
//! decisions about a unit never race each other:
//! - activity summaries from the notification writer (coldStart, linkUp/Down, dvsanUnitShutdown,
//!   dvsanLayoutChanged, anything from an unknown address);
//! - poll rounds every `poll_interval`: one GET per known unit, all units concurrently;
//! - the results of walks it started.
//!
//! Walks run as tasks off this loop, at most one at a time per agent address: a trigger while a walk of that
//! address runs only marks it to run once more afterwards (repeated triggers coalesce), and after a failed walk
//! the next one waits (backoff doubling from the poll interval up to a minute). A down event (linkDown, shutdown)
//! that arrives while a walk runs invalidates that walk's result, which may predate it.
//!
//! Trust ([`crate::trust`]) gates both ends: each source's notifications are decided before anything is walked
//! (an untrusted unit becomes a pending row, a claim on a pool unit's identity from elsewhere is refused), and so
//! is the unit id a walk finds before it is synced (an agent may send no id and answer with another unit's). A
//! pending unit is not walked; its agent is asked once for sysName.0 and sysDescr.0 (and the unit id it claims)
//! so the operator sees what it is.
//!
//! Walks, polls and probes speak to an enrolled unit as its SNMPv3 user ([`crate::unit_access`]): the unit the
//! station believes is at an address, or the unit whose authenticated notifications asked for the walk. A walk
//! answered over v3 is authenticated as that user, and its unit id is decided as such.

use crate::counters::StationCounters;
use crate::credentials::CredentialStore;
use crate::forward::Forwarder;
use crate::ingest::{Class, RateLimitedLog, SourceActivity, UnitIds};
use crate::model::{UnitSnapshot, UnitState};
use crate::station_mib;
use crate::store::{PendingClaim, PendingRecord, StateChange, StationStore, SyncOutcome, UnitRecord};
use crate::timefmt::{format_ms, now_ms};
use crate::trust::{self, Claim, Decision, KnownUnit, Refusal};
use crate::unit_access::UnitAccess;
use crate::walk::{poll_unit, read_unit, PollAnswer, WalkError};
use dvsan_snmp::{Endpoint, Manager, Oid, Target, Value, VarBind};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch, Semaphore};

/// How the coordinator talks to units.
#[derive(Debug, Clone)]
pub struct CoordinatorSettings {
    /// Community for polls and walks.
    pub community: String,
    /// Port of a unit's agent when only its address is known (from a notification's source).
    pub agent_port: u16,
    pub poll_interval: Duration,
    /// Missed polls in a row after which a unit is unreachable.
    pub unreachable_after: u32,
    pub walk_timeout: Duration,
    pub walk_retries: u32,
    pub poll_timeout: Duration,
    pub poll_retries: u32,
    /// Walks running at once across all units. Each walk has up to five requests in flight whose answers share
    /// the manager socket's receive buffer; more than about 8 walks at once overflow it when 200 units join at
    /// the same moment (answers lost, one-second retries), fewer leave the pool build slower.
    pub max_concurrent_walks: usize,
    /// `--trust-community-units` (lab mode): units are pooled without enrolment or approval, as before trust
    /// existed; enrolled units stay protected.
    pub trust_community_units: bool,
}

impl CoordinatorSettings {
    /// Defaults derived from the poll interval: a poll's retries fit in one interval.
    pub fn new(community: String, agent_port: u16, poll_interval: Duration, unreachable_after: u32) -> Self {
        let poll_timeout = (poll_interval / 3).clamp(Duration::from_millis(100), Duration::from_secs(2));
        CoordinatorSettings {
            community,
            agent_port,
            poll_interval,
            unreachable_after: unreachable_after.max(1),
            walk_timeout: Duration::from_secs(1),
            walk_retries: 2,
            poll_timeout,
            poll_retries: 1,
            max_concurrent_walks: 8,
            trust_community_units: false,
        }
    }
}

#[derive(Debug, Default)]
struct WalkSlot {
    running: bool,
    /// Walk again when the running one ends (or when the backoff ends).
    pending: bool,
    /// A down event arrived during the running walk: its result may be stale.
    invalidated: bool,
    retry_scheduled: bool,
    failures: u32,
    not_before: Option<Instant>,
    reason: String,
    /// Record a failed walk of an address no unit has yet (as a unit in error): set when the address announced
    /// itself like a unit would (coldStart, linkUp/Down, a dvsan notification), not for any trap from any device.
    record_failure: bool,
    /// The walk was asked for by notifications authenticated as this enrolled unit's user: the unit id the walk
    /// finds is decided with these credentials (a moved enrolled unit is followed).
    trusted_user: Option<String>,
}

enum Internal {
    WalkDone {
        address: SocketAddr,
        result: Result<UnitSnapshot, WalkError>,
    },
    WalkRetry(SocketAddr),
    PollDone(Vec<(u32, SocketAddr, Result<PollAnswer, WalkError>)>),
    /// What the agent of a pending unit answered about itself (or nothing, when it did not answer).
    Probed {
        address: SocketAddr,
        answer: Option<PendingClaim>,
    },
    /// A unit registered by host name did not answer at `old`; its name now resolves to `new`.
    Moved {
        index: u32,
        old: SocketAddr,
        new: SocketAddr,
    },
}

pub struct Coordinator {
    store: StationStore,
    manager: Arc<Manager>,
    settings: CoordinatorSettings,
    units: Vec<UnitRecord>,
    walks: HashMap<SocketAddr, WalkSlot>,
    walk_limit: Arc<Semaphore>,
    missed: HashMap<u32, u32>,
    internal_tx: mpsc::Sender<Internal>,
    internal_rx: Option<mpsc::Receiver<Internal>>,
    unit_ids: UnitIds,
    forwarder: Option<Forwarder>,
    counters: Arc<StationCounters>,
    poll_in_progress: bool,
    /// Enrolled units' credentials (re-read when the file changes).
    credentials: Option<CredentialStore>,
    /// How units are spoken to: enrolled units as their SNMPv3 user, others with the read community.
    access: UnitAccess,
    /// Pending units whose agent is being asked about itself.
    probing: HashSet<IpAddr>,
    refusal_log: RateLimitedLog,
    refusal_notifications: RateLimitedLog,
    /// The station's task runner, which shows a unit's clearing of a volume as a clearVolume task.
    tasks: Option<crate::tasks::TaskRunner>,
}

/// What the trust decision knows: the coordinator's units and the enrolled credentials.
struct TrustView<'a> {
    lab: bool,
    units: &'a [UnitRecord],
    credentials: Option<&'a CredentialStore>,
}

impl trust::Knowledge for TrustView<'_> {
    fn lab_mode(&self) -> bool {
        self.lab
    }

    fn enrolled_unit(&self, security_name: &str) -> Option<String> {
        self.credentials?.unit_for_security_name(security_name).map(|c| c.unit_id.clone())
    }

    fn is_enrolled(&self, unit_id: &str) -> bool {
        self.credentials.is_some_and(|c| c.credentials_for_unit(unit_id).is_some())
    }

    fn unit(&self, unit_id: &str) -> Option<KnownUnit> {
        self.units
            .iter()
            .find(|u| u.unit_id.as_deref() == Some(unit_id))
            .map(|u| KnownUnit { index: u.index, address: u.address.map(|a| a.ip()) })
    }

    fn registered(&self, ip: IpAddr) -> bool {
        self.units.iter().any(|u| u.address.is_some_and(|a| a.ip() == ip))
    }
}

/// Poll GETs outstanding at once (their answers, about 1 KiB each in the kernel's accounting, fit a default
/// 208 KiB socket receive buffer).
const POLLS_IN_FLIGHT: usize = 128;

impl Coordinator {
    pub fn new(
        store: StationStore,
        manager: Arc<Manager>,
        settings: CoordinatorSettings,
        unit_ids: UnitIds,
        forwarder: Option<Forwarder>,
        counters: Arc<StationCounters>,
        credentials: Option<CredentialStore>,
    ) -> Coordinator {
        let (internal_tx, internal_rx) = mpsc::channel(1024);
        let settings_community = settings.community.clone();
        Coordinator {
            store,
            manager,
            walk_limit: Arc::new(Semaphore::new(settings.max_concurrent_walks.max(1))),
            settings,
            units: Vec::new(),
            walks: HashMap::new(),
            missed: HashMap::new(),
            internal_tx,
            internal_rx: Some(internal_rx),
            unit_ids,
            forwarder,
            counters,
            poll_in_progress: false,
            credentials,
            access: UnitAccess::communities(settings_community, None),
            probing: HashSet::new(),
            refusal_log: RateLimitedLog::new(),
            refusal_notifications: RateLimitedLog::new(),
            tasks: None,
        }
    }

    /// Speaks to units with `access` (the station's communities and enrolled users) rather than with the read
    /// community alone.
    pub fn with_access(mut self, access: UnitAccess) -> Coordinator {
        self.access = access;
        self
    }

    /// Starts a clearVolume task in `tasks` for every volume a walk finds clearing (one per volume at a time).
    pub fn with_tasks(mut self, tasks: Option<crate::tasks::TaskRunner>) -> Coordinator {
        self.tasks = tasks;
        self
    }

    /// Runs the coordinator on a thread of its own (a blocking-pool thread that drives it with
    /// `Handle::block_on`), so its store calls never stall the runtime's workers; the walks and polls it starts
    /// run on the runtime. Ends when `shutdown` changes.
    pub fn spawn(
        self,
        activity: mpsc::Receiver<Vec<SourceActivity>>,
        shutdown: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || runtime.block_on(self.run(activity, shutdown)))
    }

    /// Runs until `shutdown` changes, on the calling thread, which it blocks in its store calls (see
    /// [`Coordinator::spawn`]).
    pub async fn run(mut self, mut activity: mpsc::Receiver<Vec<SourceActivity>>, mut shutdown: watch::Receiver<bool>) {
        let Some(mut internal) = self.internal_rx.take() else { return };
        self.reload();
        let mut tick = tokio::time::interval(self.settings.poll_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                Some(batch) = activity.recv() => self.on_activity(batch),
                Some(event) = internal.recv() => match event {
                    Internal::WalkDone { address, result } => self.on_walk_done(address, result),
                    Internal::WalkRetry(address) => self.on_walk_retry(address),
                    Internal::PollDone(outcomes) => self.on_poll_done(outcomes),
                    Internal::Moved { index, old, new } => self.on_moved(index, old, new),
                    Internal::Probed { address, answer } => self.on_probed(address, answer),
                },
                _ = tick.tick() => self.start_poll_round(),
            }
        }
    }

    fn reload(&mut self) {
        match self.store.units() {
            Ok(units) => self.units = units,
            Err(e) => tracing::error!(error = %e, "reading units from the store failed"),
        }
        let mut ids: HashMap<IpAddr, Option<String>> = HashMap::new();
        for unit in &self.units {
            if let Some(address) = unit.address {
                ids.entry(address.ip()).and_modify(|existing| *existing = None).or_insert_with(|| unit.unit_id.clone());
            }
        }
        *self.unit_ids.write().unwrap_or_else(|e| e.into_inner()) = ids;
    }

    /// Re-reads only the given units (after a walk: its unit and the units it displaced; after notifications: the
    /// units whose last-seen time moved), instead of the whole pool, and updates the id-by-address map for their
    /// old and new addresses.
    fn reload_units(&mut self, indexes: impl IntoIterator<Item = u32>) {
        let mut ips = Vec::new();
        for index in indexes {
            let fresh = match self.store.unit(index) {
                Ok(fresh) => fresh,
                Err(e) => {
                    tracing::error!(error = %e, "reading a unit from the store failed");
                    return self.reload();
                }
            };
            let ip = |u: &UnitRecord| u.address.map(|a| a.ip());
            match (self.units.binary_search_by_key(&index, |u| u.index), fresh) {
                (Ok(i), Some(fresh)) => {
                    ips.extend(ip(&self.units[i]).into_iter().chain(ip(&fresh)));
                    self.units[i] = fresh;
                }
                (Err(i), Some(fresh)) => {
                    ips.extend(ip(&fresh));
                    self.units.insert(i, fresh);
                }
                (Ok(i), None) => ips.extend(ip(&self.units.remove(i))),
                (Err(_), None) => {}
            }
        }
        let mut ids = self.unit_ids.write().unwrap_or_else(|e| e.into_inner());
        for ip in ips {
            let mut at_ip = self.units.iter().filter(|u| u.address.map(|a| a.ip()) == Some(ip));
            match (at_ip.next(), at_ip.next()) {
                (Some(unit), None) => ids.insert(ip, unit.unit_id.clone()),
                (Some(_), Some(_)) => ids.insert(ip, None),
                (None, _) => ids.remove(&ip),
            };
        }
    }

    fn unit(&self, index: u32) -> Option<UnitRecord> {
        self.units.iter().find(|u| u.index == index).cloned()
    }

    fn unit_at(&self, address: SocketAddr) -> Option<&UnitRecord> {
        self.units.iter().find(|u| u.address == Some(address))
    }

    /// The agent address for a notification source: the registered port of a unit on that IP, else the default.
    fn agent_address(&self, ip: IpAddr) -> SocketAddr {
        let port = self
            .units
            .iter()
            .filter_map(|u| u.address)
            .find(|a| a.ip() == ip)
            .map_or(self.settings.agent_port, |a| a.port());
        SocketAddr::new(ip, port)
    }

    /// The target for reading the agent at `address`, which is (or claims to be) unit `unit_id`.
    fn target(&self, address: SocketAddr, unit_id: Option<&str>, timeout: Duration, retries: u32) -> Target {
        let mut target = self.access.read_target(address, unit_id).with_timeout(timeout, retries);
        target.options.walk_max_repetitions = 40;
        target.options.walk_limit = 500_000;
        target
    }

    fn emit(&self, notification: (Oid, Vec<VarBind>)) {
        if let Some(forwarder) = &self.forwarder {
            forwarder.send_station(notification.0, notification.1);
        }
    }

    // ----- notifications -----

    fn resolve(&self, activity: &SourceActivity) -> Option<UnitRecord> {
        if let Some(unit_id) = &activity.unit_id {
            return self.units.iter().find(|u| u.unit_id.as_ref() == Some(unit_id)).cloned();
        }
        let mut at_ip = self.units.iter().filter(|u| u.address.is_some_and(|a| a.ip() == activity.ip));
        match (at_ip.next(), at_ip.next()) {
            (Some(one), None) => Some(one.clone()),
            _ => None,
        }
    }

    fn on_activity(&mut self, batch: Vec<SourceActivity>) {
        let mut touched = Vec::new();
        self.refresh_credentials();
        for activity in batch {
            if !self.admit(&activity) {
                continue;
            }
            let Some(unit) = self.resolve(&activity) else {
                // Several units on this IP and no unit id in the notification: re-read them all.
                let addresses: Vec<SocketAddr> =
                    self.units.iter().filter_map(|u| u.address).filter(|a| a.ip() == activity.ip).collect();
                if addresses.is_empty() {
                    let address = self.agent_address(activity.ip);
                    let looks_like_a_unit = !activity.events.is_empty() || activity.unit_id.is_some();
                    self.walks.entry(address).or_default().record_failure |= looks_like_a_unit;
                    self.trigger_walk(address, "notification from an unknown unit");
                } else {
                    for address in addresses {
                        self.trigger_walk(address, "notification from a shared address");
                    }
                }
                continue;
            };
            touched.push((unit.index, Some(activity.last_uptime)));
            let address = match unit.address {
                Some(a) if a.ip() == activity.ip && unit.unit_id.is_some() => a,
                Some(a) if unit.unit_id.is_none() => {
                    self.trigger_walk(a, "notification from a registered address");
                    continue;
                }
                _ => {
                    let address = SocketAddr::new(activity.ip, self.settings.agent_port);
                    self.trigger_walk(address, "the unit now sends from another address");
                    continue;
                }
            };
            if unit.sys_uptime.is_some_and(|before| activity.min_uptime < before) {
                self.trigger_walk(address, "sysUpTime went backwards (the unit restarted)");
            }
            for event in &activity.events {
                // Earlier events of this batch may have changed the unit.
                let Some(unit) = self.unit(unit.index) else { break };
                match event {
                    Class::ColdStart | Class::WarmStart => self.trigger_walk(address, "coldStart"),
                    Class::LinkUp => self.trigger_walk(address, "linkUp"),
                    Class::Resync => self.trigger_walk(address, "many events at once"),
                    Class::LinkDown => {
                        if !unit.shut_down {
                            self.mark_down(&unit, address, "linkDown: the data service is down", false);
                        }
                    }
                    Class::UnitShutdown => {
                        self.mark_down(&unit, address, "the unit shut down (dvsanUnitShutdown)", true)
                    }
                    Class::LayoutChanged(counter) => {
                        if counter.is_none() || *counter != unit.change_counter {
                            self.trigger_walk(address, "dvsanLayoutChanged");
                        }
                    }
                }
            }
        }
        if !touched.is_empty() {
            if let Err(e) = self.store.touch_units(&touched, now_ms()) {
                tracing::warn!(error = %e, "recording last-seen times failed");
            }
            self.reload_units(touched.iter().map(|(index, _)| *index));
        }
    }

    fn mark_down(&mut self, unit: &UnitRecord, address: SocketAddr, reason: &str, shut_down: bool) {
        if let Some(slot) = self.walks.get_mut(&address) {
            if slot.running {
                slot.invalidated = true;
                // After a linkDown, read the unit again to learn its real state; after a shutdown it is gone.
                slot.pending = !shut_down;
            } else if shut_down {
                slot.pending = false;
            }
        }
        let change = self.store.set_state(unit.index, UnitState::Unavailable, reason, shut_down, now_ms());
        self.reload();
        match change {
            Ok(change) => {
                tracing::info!(unit = unit.unit_id.as_deref().unwrap_or("?"), %address, reason, "unit unavailable");
                self.after_state_change(change);
            }
            Err(e) => tracing::error!(error = %e, "recording a unit state failed"),
        }
    }

    fn after_state_change(&self, change: Option<StateChange>) {
        let Some(change) = change else { return };
        let Some(unit) = self.unit(change.index) else { return };
        match change.state {
            UnitState::Unavailable if change.previous == UnitState::Available => {
                self.emit(station_mib::unit_left(&unit))
            }
            UnitState::Unreachable => self.emit(station_mib::unit_unreachable(&unit)),
            UnitState::Error => self.emit(station_mib::unit_error(&unit)),
            _ => {}
        }
    }

    // ----- trust -----

    fn refresh_credentials(&mut self) {
        if let Some(credentials) = &mut self.credentials {
            if let Err(e) = credentials.refresh() {
                if self.refusal_log.allow() {
                    tracing::error!(error = %e, "re-reading the enrolled units' credentials failed; using the last ones");
                }
            }
        }
    }

    fn decide(&self, claim: &Claim<'_>) -> Decision {
        let view = TrustView {
            lab: self.settings.trust_community_units,
            units: &self.units,
            credentials: self.credentials.as_ref(),
        };
        trust::decide(claim, &view)
    }

    /// Decides whether a source's notifications are handled as a pool unit's: pending units are recorded and
    /// refused claims announced here, and neither goes further.
    fn admit(&mut self, activity: &SourceActivity) -> bool {
        let claim = Claim {
            unit_id: activity.unit_id.as_deref(),
            source: activity.ip,
            security_name: activity.security_name.as_deref(),
            authenticated: activity.authenticated,
        };
        let mut decision = self.decide(&claim);
        if decision == Decision::Pending && self.registered_meanwhile(activity.ip) {
            decision = self.decide(&claim);
        }
        match decision {
            Decision::Pool | Decision::Follow { .. } => {
                let enrolled = activity.security_name.as_deref().filter(|name| {
                    activity.authenticated
                        && self.credentials.as_ref().is_some_and(|c| c.unit_for_security_name(name).is_some())
                });
                if let Some(user) = enrolled {
                    let user = user.to_string();
                    for address in
                        [self.agent_address(activity.ip), SocketAddr::new(activity.ip, self.settings.agent_port)]
                    {
                        self.walks.entry(address).or_default().trusted_user = Some(user.clone());
                    }
                }
                true
            }
            Decision::Pending => {
                StationCounters::add(&self.counters.untrusted, activity.count);
                let claim = PendingClaim {
                    unit_id: activity.unit_id.clone(),
                    unit_name: activity.unit_name.clone(),
                    notifications: activity.count,
                    ..PendingClaim::default()
                };
                self.pend(self.agent_address(activity.ip), &claim);
                false
            }
            Decision::Refuse(refusal) => {
                self.refuse(activity.ip, &refusal);
                false
            }
        }
    }

    /// Whether units the coordinator does not know yet were registered on `ip` meanwhile (by `unit add`, `unit
    /// approve` or their tasks, which the next poll round's reload would show): it reads them now, so a unit's
    /// notifications right after its approval do not make it pending again.
    fn registered_meanwhile(&mut self, ip: IpAddr) -> bool {
        let indexes = match self.store.units_at_ip(ip) {
            Ok(indexes) => indexes,
            Err(e) => {
                tracing::error!(%ip, error = %e, "reading the units at an address failed");
                return false;
            }
        };
        let known =
            |index: &u32| self.units.iter().any(|u| u.index == *index && u.address.is_some_and(|a| a.ip() == ip));
        let fresh: Vec<u32> = indexes.into_iter().filter(|index| !known(index)).collect();
        if fresh.is_empty() {
            return false;
        }
        self.reload_units(fresh);
        true
    }

    /// Records an untrusted unit as pending (announced with dvsanStationUnitPending when new) and asks its agent
    /// about itself.
    fn pend(&mut self, address: SocketAddr, claim: &PendingClaim) {
        match self.store.record_pending(address, claim, now_ms()) {
            Ok(PendingRecord::Recorded { row, created }) => {
                if created {
                    tracing::warn!(%address, claimed_unit = %row.unit_id, name = %row.unit_name,
                        "a unit the station does not trust announced itself; pending until an operator approves \
                         it (dvsan-station unit approve)");
                    self.emit(station_mib::unit_pending(&row));
                    self.probe(address, claim.unit_id.as_deref());
                }
            }
            Ok(PendingRecord::Full) => {
                if self.refusal_log.allow() {
                    tracing::warn!(%address, "too many pending units; this one is not recorded");
                }
            }
            Ok(PendingRecord::Pooled) => tracing::debug!(%address, "not pending: the unit was pooled meanwhile"),
            Err(e) => tracing::error!(%address, error = %e, "recording a pending unit failed"),
        }
    }

    /// Asks a pending unit's agent for sysName.0, sysDescr.0, dvsanUnitId.0 and dvsanUnitName.0, off this loop.
    /// A unit id it claimed that is enrolled is asked as that unit's user (an agent without those credentials
    /// then does not answer).
    fn probe(&mut self, address: SocketAddr, claimed: Option<&str>) {
        if !self.probing.insert(address.ip()) {
            return;
        }
        let manager = Arc::clone(&self.manager);
        let target = self.target(address, claimed, self.settings.poll_timeout, self.settings.poll_retries);
        let tx = self.internal_tx.clone();
        tokio::spawn(async move {
            let oids = [
                crate::walk::instance(dvsan_mib::SYS_NAME, &[0]),
                crate::walk::instance(dvsan_mib::SYS_DESCR, &[0]),
                crate::walk::instance(dvsan_mib::DVSAN_UNIT_ID, &[0]),
                crate::walk::instance(dvsan_mib::DVSAN_UNIT_NAME, &[0]),
            ];
            let answer = manager.get(&target, &oids).await.ok().map(|varbinds| {
                let text = |i: usize| match varbinds.get(i).map(|vb| &vb.value) {
                    Some(Value::OctetString(bytes)) => Some(String::from_utf8_lossy(bytes).chars().take(255).collect()),
                    _ => None,
                };
                PendingClaim {
                    sys_name: text(0),
                    sys_descr: text(1),
                    unit_id: text(2).filter(|id| uuid::Uuid::parse_str(id).is_ok()),
                    unit_name: text(3).map(|n: String| n.chars().take(64).collect()),
                    notifications: 0,
                }
            });
            let _ = tx.send(Internal::Probed { address, answer }).await;
        });
    }

    /// Stores what a pending unit's agent said; a unit id it reports that belongs to a pool unit elsewhere is a
    /// refused claim (and the row goes: it is no unit to approve).
    fn on_probed(&mut self, address: SocketAddr, answer: Option<PendingClaim>) {
        self.probing.remove(&address.ip());
        let Some(answer) = answer else {
            tracing::debug!(%address, "the pending unit's agent did not answer");
            return;
        };
        let claim = Claim {
            unit_id: answer.unit_id.as_deref(),
            source: address.ip(),
            security_name: None,
            authenticated: false,
        };
        if let Decision::Refuse(refusal) = self.decide(&claim) {
            if let Ok(row) = self.store.find_pending(&address.ip().to_string()) {
                if let Err(e) = self.store.delete_pending(row.index) {
                    tracing::error!(error = %e, "forgetting a pending unit failed");
                }
            }
            self.refuse(address.ip(), &refusal);
            return;
        }
        if let Err(e) = self.store.record_pending(address, &answer, now_ms()) {
            tracing::error!(%address, error = %e, "recording what a pending unit answered failed");
        }
    }

    /// A claim on a pool unit's identity: counted, logged (rate-limited) and announced (dvsanStationIdentityRefused,
    /// rate-limited); the real unit is not touched.
    fn refuse(&mut self, source: IpAddr, refusal: &Refusal) {
        StationCounters::bump(&self.counters.identity_refusals);
        let reason = refusal.reason(source);
        if self.refusal_log.allow() {
            tracing::warn!(%source, unit = refusal.unit_id(), %reason, "claim on a unit's identity refused");
        }
        if self.refusal_notifications.allow() {
            let real = self.units.iter().find(|u| u.unit_id.as_deref() == Some(refusal.unit_id()));
            self.emit(station_mib::identity_refused(real, refusal.unit_id(), source, &reason));
        }
    }

    /// Whether a walk's snapshot may be synced: the unit id it found, decided with the credentials of the
    /// notifications that asked for the walk (if they were authenticated).
    fn admit_walk(&mut self, address: SocketAddr, snapshot: &UnitSnapshot, trusted_user: Option<&str>) -> bool {
        let claim = Claim {
            unit_id: Some(&snapshot.unit_id),
            source: address.ip(),
            security_name: trusted_user,
            authenticated: trusted_user.is_some(),
        };
        match self.decide(&claim) {
            Decision::Pool | Decision::Follow { .. } => true,
            Decision::Pending => {
                let claim = PendingClaim {
                    unit_id: Some(snapshot.unit_id.clone()),
                    unit_name: Some(snapshot.name.clone()),
                    ..PendingClaim::default()
                };
                self.pend(address, &claim);
                false
            }
            Decision::Refuse(refusal) => {
                self.refuse(address.ip(), &refusal);
                false
            }
        }
    }

    // ----- walks -----

    /// Starts a walk of the agent at `address`, or arranges for one to follow the running one or the backoff.
    pub fn trigger_walk(&mut self, address: SocketAddr, reason: &str) {
        let slot = self.walks.entry(address).or_default();
        if slot.running {
            slot.pending = true;
            return;
        }
        if let Some(not_before) = slot.not_before.filter(|t| *t > Instant::now()) {
            slot.pending = true;
            if !slot.retry_scheduled {
                slot.retry_scheduled = true;
                let tx = self.internal_tx.clone();
                tokio::spawn(async move {
                    tokio::time::sleep_until(not_before.into()).await;
                    let _ = tx.send(Internal::WalkRetry(address)).await;
                });
            }
            return;
        }
        slot.running = true;
        slot.pending = false;
        slot.invalidated = false;
        slot.reason = reason.to_string();
        // The unit the authenticated notifications that asked for this walk came from, else the unit at the address.
        let unit_id = match slot.trusted_user.clone() {
            Some(user) => {
                self.credentials.as_ref().and_then(|c| c.unit_for_security_name(&user)).map(|c| c.unit_id.clone())
            }
            None => self.unit_at(address).and_then(|u| u.unit_id.clone()),
        };
        let target = self.target(address, unit_id.as_deref(), self.settings.walk_timeout, self.settings.walk_retries);
        if let Some(usm) = &target.usm {
            // The answers are authenticated as that unit's user: the unit id they report is decided as such.
            self.walks.entry(address).or_default().trusted_user = Some(usm.user.name().to_string());
        }
        tracing::debug!(%address, reason, v3 = target.usm.is_some(), "walking unit");
        let manager = Arc::clone(&self.manager);
        let limit = Arc::clone(&self.walk_limit);
        let tx = self.internal_tx.clone();
        tokio::spawn(async move {
            let result = match limit.acquire_owned().await {
                Ok(_permit) => read_unit(&manager, &target).await,
                Err(_) => Err(WalkError::Transport("station shutting down".to_string())),
            };
            let _ = tx.send(Internal::WalkDone { address, result }).await;
        });
    }

    fn on_walk_retry(&mut self, address: SocketAddr) {
        let Some(slot) = self.walks.get_mut(&address) else { return };
        slot.retry_scheduled = false;
        if slot.pending && !slot.running {
            let reason = slot.reason.clone();
            self.trigger_walk(address, &reason);
        }
    }

    fn on_walk_done(&mut self, address: SocketAddr, result: Result<UnitSnapshot, WalkError>) {
        StationCounters::bump(&self.counters.walks);
        let slot = self.walks.entry(address).or_default();
        slot.running = false;
        let invalidated = std::mem::take(&mut slot.invalidated);
        let trusted_user = slot.trusted_user.take();
        let backoff_base = self.settings.poll_interval;
        match result {
            _ if invalidated => tracing::debug!(%address, "walk result dropped: a down event arrived meanwhile"),
            Ok(snapshot) => {
                slot.failures = 0;
                slot.not_before = None;
                slot.record_failure = false;
                if !self.admit_walk(address, &snapshot, trusted_user.as_deref()) {
                    tracing::debug!(%address, unit = %snapshot.unit_id, "walk result not synced: the unit is not trusted");
                } else {
                    match self.store.sync_unit(address, &snapshot, now_ms()) {
                        Ok(outcome) => {
                            // The synced unit, the units it displaced, and any other row at its address (a placeholder
                            // the store adopted or deleted).
                            let mut changed: Vec<u32> = std::iter::once(outcome.index)
                                .chain(outcome.displaced.iter().copied())
                                .chain(self.units.iter().filter(|u| u.address == Some(address)).map(|u| u.index))
                                .collect();
                            changed.sort_unstable();
                            changed.dedup();
                            self.reload_units(changed);
                            self.after_sync(address, &snapshot, outcome);
                        }
                        Err(e) => tracing::error!(%address, error = %e, "storing a unit's walk failed"),
                    }
                }
            }
            Err(error) => {
                StationCounters::bump(&self.counters.walk_failures);
                slot.failures += 1;
                let backoff = backoff_base.saturating_mul(1 << slot.failures.min(6).saturating_sub(1));
                slot.not_before = Some(Instant::now() + backoff.min(Duration::from_secs(60)));
                let record_failure = slot.record_failure;
                let known = self.unit_at(address);
                if known.is_some_and(|u| u.shut_down) {
                    tracing::debug!(%address, %error, "walk of a unit that shut down failed (expected)");
                } else if known.is_none() && !record_failure {
                    tracing::debug!(%address, %error, "no DVSAN unit answers at this address; not recorded");
                } else {
                    let reason = error.to_string();
                    match self.store.record_walk_failure(address, &reason, now_ms()) {
                        Ok((_, change)) => {
                            self.reload();
                            tracing::warn!(%address, %error, "reading unit failed; unit marked error");
                            self.after_state_change(change);
                        }
                        Err(e) => tracing::error!(%address, error = %e, "recording a walk failure failed"),
                    }
                }
            }
        }
        let pending = self.walks.get(&address).is_some_and(|slot| slot.pending);
        if pending {
            self.trigger_walk(address, "triggered again during a walk");
        }
    }

    fn after_sync(&mut self, address: SocketAddr, snapshot: &UnitSnapshot, outcome: SyncOutcome) {
        self.missed.remove(&outcome.index);
        let Some(unit) = self.unit(outcome.index) else { return };
        tracing::info!(
            unit = %snapshot.unit_id,
            name = %snapshot.name,
            %address,
            volumes = snapshot.volumes.len(),
            state = %outcome.state,
            "unit synced"
        );
        for notification in station_mib::sync_notifications(&unit, &outcome) {
            self.emit(notification);
        }
        let joined_or_back =
            outcome.state == UnitState::Available && outcome.previous_state != Some(UnitState::Available);
        for index in outcome.displaced {
            if let Some(displaced) = self.unit(index) {
                self.emit(station_mib::unit_unreachable(&displaced));
            }
        }
        if joined_or_back {
            self.push_crl(address, Some(snapshot.unit_id.as_str()), outcome.index);
        }
        if let Some(tasks) = &self.tasks {
            for volume in snapshot.volumes.iter().filter(|v| v.clearing.is_some()) {
                tasks.follow_clearing(outcome.index, volume.index);
            }
        }
    }

    /// Every volume the pool shows clearing gets a clearVolume task if it has none (a release by another process,
    /// the CLI, synced the pool itself, so no walk of the coordinator saw the volume clearing).
    fn follow_clearing(&self) {
        let Some(tasks) = &self.tasks else { return };
        match self.store.clearing_volumes() {
            Ok(volumes) => {
                // A unit that does not answer is followed once it is back (its task would fail meanwhile).
                let available =
                    |unit: u32| self.units.iter().any(|u| u.index == unit && u.state == UnitState::Available);
                for (unit, volume) in volumes.into_iter().filter(|(unit, _)| available(*unit)) {
                    tasks.follow_clearing(unit, volume);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the volumes being cleared"),
        }
    }

    /// A unit that joined or came back gets the CA's revocation list if its own is older (`crl_push`), in the
    /// background; failures are logged (the next return, or the next `host revoke`, tries again).
    fn push_crl(&self, address: SocketAddr, unit_id: Option<&str>, index: u32) {
        let Some(state_dir) = self.store.path().parent().map(std::path::Path::to_path_buf) else { return };
        let (timeout, retries) = (self.settings.poll_timeout, self.settings.poll_retries);
        let read = self.access.read_target(address, unit_id).with_timeout(timeout, retries);
        let write = self.access.write_target(address, unit_id).map(|t| t.with_timeout(timeout, retries));
        let manager = Arc::clone(&self.manager);
        tokio::spawn(async move {
            match crate::crl_push::bring_up_to_date(&manager, &state_dir, &read, write.as_ref()).await {
                Ok(Some(number)) => {
                    tracing::info!(unit = index, crl_number = number, "revocation list sent to the unit")
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(unit = index, error = %e, "could not send the revocation list to the unit"),
            }
        });
    }

    // ----- polling -----

    fn start_poll_round(&mut self) {
        if self.poll_in_progress {
            return;
        }
        self.follow_clearing();
        // Picks up addresses registered by `dvsan-station unit add` meanwhile.
        self.reload();
        let targets: Vec<(u32, Target)> = self
            .units
            .iter()
            .filter_map(|u| u.address.map(|a| (u, a)))
            .map(|(unit, address)| {
                let target = self.target(
                    address,
                    unit.unit_id.as_deref(),
                    self.settings.poll_timeout,
                    self.settings.poll_retries,
                );
                (unit.index, target)
            })
            .collect();
        if targets.is_empty() {
            return;
        }
        self.poll_in_progress = true;
        let manager = Arc::clone(&self.manager);
        let tx = self.internal_tx.clone();
        // At most POLLS_IN_FLIGHT GETs are outstanding: their answers must fit the manager socket's receive
        // buffer, or the kernel drops them and the units are polled again after a timeout (or missed).
        let in_flight = Arc::new(Semaphore::new(POLLS_IN_FLIGHT));
        tokio::spawn(async move {
            let mut set = tokio::task::JoinSet::new();
            for (index, target) in targets {
                let manager = Arc::clone(&manager);
                let in_flight = Arc::clone(&in_flight);
                set.spawn(async move {
                    let _permit = in_flight.acquire_owned().await;
                    (index, target.addr, poll_unit(&manager, &target).await)
                });
            }
            let mut outcomes = Vec::with_capacity(set.len());
            while let Some(joined) = set.join_next().await {
                if let Ok(outcome) = joined {
                    outcomes.push(outcome);
                }
            }
            let _ = tx.send(Internal::PollDone(outcomes)).await;
        });
    }

    /// Looks up the host name of a unit that missed a poll, off this loop. A new address is taken only when the
    /// unit answers there with its own id (a name is a way to find a unit, not its identity): that comes back as
    /// [`Internal::Moved`]. A unit that never answered yet (no id) moves to the first new address that answers.
    fn resolve_again(&self, unit: &UnitRecord) {
        let (Some(old), false) = (unit.address, unit.host_name.is_empty()) else { return };
        let unit = unit.clone();
        let tx = self.internal_tx.clone();
        let manager = Arc::clone(&self.manager);
        let template =
            self.target(old, unit.unit_id.as_deref(), self.settings.poll_timeout, self.settings.poll_retries);
        tokio::spawn(async move {
            for new in resolve_again(&unit).await {
                let target = Target { addr: new, ..template.clone() };
                match poll_unit(&manager, &target).await {
                    Ok(answer) if unit.unit_id.is_none() || answer.unit_id == unit.unit_id => {
                        let _ = tx.send(Internal::Moved { index: unit.index, old, new }).await;
                        return;
                    }
                    Ok(_) => tracing::warn!(unit = unit.index, name = %unit.host_name, %new,
                        "the unit's host name resolves to an address where another unit answers; not moved"),
                    Err(_) => {}
                }
            }
        });
    }

    /// Moves a unit whose host name resolves to a new address, where it answered, there, and reads it at once.
    fn on_moved(&mut self, index: u32, old: SocketAddr, new: SocketAddr) {
        if self.unit(index).and_then(|u| u.address) != Some(old) {
            return;
        }
        match self.store.move_unit(index, new, now_ms()) {
            Ok(displaced) => {
                tracing::info!(unit = index, %old, %new, "host name resolves to a new address");
                self.missed.remove(&index);
                self.reload();
                self.after_state_change(displaced);
                self.trigger_walk(new, "the unit's host name resolves to a new address");
            }
            Err(e) => tracing::error!(error = %e, "recording a unit's new address failed"),
        }
    }

    fn on_poll_done(&mut self, outcomes: Vec<(u32, SocketAddr, Result<PollAnswer, WalkError>)>) {
        self.poll_in_progress = false;
        let mut touched = Vec::new();
        let now = now_ms();
        for (index, address, result) in outcomes {
            StationCounters::bump(&self.counters.polls);
            let Some(unit) = self.unit(index) else { continue };
            if unit.address != Some(address) {
                continue;
            }
            match result {
                Ok(answer) => {
                    self.missed.remove(&index);
                    touched.push((index, answer.sys_uptime));
                    if let Some(reason) = needs_walk(&unit, &answer) {
                        self.trigger_walk(address, reason);
                    }
                }
                Err(error) => {
                    StationCounters::bump(&self.counters.poll_failures);
                    self.resolve_again(&unit);
                    let missed = self.missed.entry(index).or_insert(0);
                    *missed += 1;
                    let missed = *missed;
                    if missed >= self.settings.unreachable_after
                        && unit.state != UnitState::Unreachable
                        && !unit.shut_down
                    {
                        let last_seen = unit.last_seen_ms.map_or_else(|| "never".to_string(), format_ms);
                        let reason = format!("no answer to {missed} polls in a row ({error}); last seen {last_seen}");
                        let change = self.store.set_state(index, UnitState::Unreachable, &reason, false, now);
                        self.reload();
                        match change {
                            Ok(change) => {
                                tracing::warn!(%address, %reason, "unit unreachable");
                                self.after_state_change(change);
                            }
                            Err(e) => tracing::error!(error = %e, "recording a unit state failed"),
                        }
                    }
                }
            }
        }
        if !touched.is_empty() {
            if let Err(e) = self.store.touch_units(&touched, now) {
                tracing::warn!(error = %e, "recording poll answers failed");
            }
            self.reload();
        }
    }
}

/// Where the host name of `unit` (registered by name, e.g. `unit add unit-a.example.net`) resolves now, IPv4
/// first, when its stored address is not among those addresses: empty for a unit without a name, a name that does
/// not resolve (logged), or one that still resolves (among others) to the stored address. The agent port stays the
/// one the unit was registered with.
pub async fn resolve_again(unit: &UnitRecord) -> Vec<SocketAddr> {
    if unit.host_name.is_empty() {
        return Vec::new();
    }
    let port = unit.address.map_or(0, |a| a.port());
    let endpoint = match Endpoint::parse(&unit.host_name, port) {
        Ok(endpoint) => Endpoint { port, ..endpoint },
        Err(e) => {
            tracing::warn!(unit = unit.index, name = %unit.host_name, error = %e, "stored host name is not valid");
            return Vec::new();
        }
    };
    match endpoint.lookup_all().await {
        Ok(addresses) if unit.address.is_some_and(|a| addresses.contains(&a)) => Vec::new(),
        Ok(addresses) => addresses,
        Err(e) => {
            tracing::warn!(unit = unit.index, error = %e, "resolving a unit's host name again");
            Vec::new()
        }
    }
}

/// Why a poll answer calls for a walk, if it does.
pub fn needs_walk(unit: &UnitRecord, answer: &PollAnswer) -> Option<&'static str> {
    if unit.unit_id.is_none() {
        return Some("a registered address answers");
    }
    if answer.unit_id != unit.unit_id {
        return Some("another unit (or no DVSAN agent) answers at this address");
    }
    if unit.shut_down {
        return Some("the unit is back after its shutdown");
    }
    match unit.state {
        UnitState::Unreachable => return Some("the unit answers again"),
        UnitState::Error => return Some("retrying a unit in error"),
        UnitState::Available | UnitState::Unavailable => {}
    }
    if let (Some(now), Some(before)) = (answer.sys_uptime, unit.sys_uptime) {
        if now < before {
            return Some("sysUpTime went backwards (the unit restarted)");
        }
    }
    if answer.change_counter != unit.change_counter {
        return Some("the change counter moved");
    }
    if answer.looks_available() != (unit.state == UnitState::Available) {
        return Some("the data service state changed");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(state: UnitState) -> UnitRecord {
        UnitRecord {
            index: 1,
            unit_id: Some("8c3f0b52-4f4b-4b8e-9a51-3f0e6d2c7a10".into()),
            name: "u".into(),
            address: Some("127.0.0.2:1161".parse().unwrap()),
            state,
            reason: String::new(),
            shut_down: false,
            sys_uptime: Some(1000),
            change_counter: Some(4),
            last_seen_ms: Some(1),
            host_name: String::new(),
        }
    }

    fn answer() -> PollAnswer {
        PollAnswer {
            sys_uptime: Some(1100),
            unit_id: Some("8c3f0b52-4f4b-4b8e-9a51-3f0e6d2c7a10".into()),
            change_counter: Some(4),
            serving: Some(true),
            link_up: Some(true),
        }
    }

    #[test]
    fn polls_walk_only_when_something_changed() {
        assert_eq!(needs_walk(&unit(UnitState::Available), &answer()), None);
        assert!(needs_walk(&unit(UnitState::Available), &PollAnswer { change_counter: Some(5), ..answer() }).is_some());
        assert!(needs_walk(&unit(UnitState::Available), &PollAnswer { sys_uptime: Some(10), ..answer() }).is_some());
        assert!(needs_walk(&unit(UnitState::Available), &PollAnswer { serving: Some(false), ..answer() }).is_some());
        assert!(needs_walk(&unit(UnitState::Available), &PollAnswer { unit_id: None, ..answer() }).is_some());
        assert!(needs_walk(&unit(UnitState::Unreachable), &answer()).is_some());
        assert!(needs_walk(&unit(UnitState::Error), &answer()).is_some());
        // Unavailable with a stopped data service: nothing new.
        let down = PollAnswer { serving: Some(false), link_up: Some(false), ..answer() };
        assert_eq!(needs_walk(&unit(UnitState::Unavailable), &down), None);
        assert!(needs_walk(&unit(UnitState::Unavailable), &answer()).is_some());
        let mut shut = unit(UnitState::Unavailable);
        shut.shut_down = true;
        assert!(needs_walk(&shut, &down).is_some());
    }

    /// Re-resolution on the poll path: a name that now resolves elsewhere gives the new address (port kept); the
    /// same address, no name, or a name that does not resolve give none. (`localhost` stands in for a name whose
    /// DNS entry changed: the unit's stored address is one the name does not resolve to.)
    #[tokio::test]
    async fn a_unit_registered_by_name_is_resolved_again() {
        let mut moved = unit(UnitState::Unreachable);
        moved.host_name = "localhost".into();
        moved.address = Some("127.0.0.99:1170".parse().unwrap());
        let found = resolve_again(&moved).await;
        let new = *found.first().expect("localhost resolves elsewhere than 127.0.0.99");
        assert!(found.iter().all(|a| a.ip().is_loopback() && a.port() == 1170), "{found:?}");
        assert!(!found.contains(&moved.address.unwrap()), "{found:?}");
        // Any of the name's addresses is still the unit's: no move (round-robin names do not make units jump).
        for address in &found {
            let mut same = moved.clone();
            same.address = Some(*address);
            assert_eq!(resolve_again(&same).await, vec![], "{address}");
        }
        assert!(new.is_ipv4() || found.iter().all(|a| !a.is_ipv4()), "IPv4 first: {found:?}");
        assert_eq!(resolve_again(&unit(UnitState::Unreachable)).await, vec![], "no name: nothing to resolve");
        let mut gone = moved;
        gone.host_name = "unit-a.invalid".into();
        assert_eq!(resolve_again(&gone).await, vec![]);
    }
}
