//! Volume allocation and the other changes to units: give a host a volume of at least N bytes, or a
//! named volume, and take it back; create and destroy volumes and partitions; read a unit again; add one, approve
//! or reject a pending one, remove one.
//!
//! A request is served from the pool in the store: the smallest free, available, unpartitioned volume that is
//! big enough (best fit; for a request with a name, only a free volume of that name); failing that, a new volume
//! (with the requested name, if any) is created by SNMP SET (createAndGo on dvsanVolumeTable at
//! dvsanVolumeNextIndex.0) on the available unit with the most free space whose largest free extent holds it.
//! The host is then granted the volume on the unit (createAndGo on dvsanAccessTable at dvsanAccessNextIndex.0),
//! the assignment is recorded in the store, and the unit is walked again so the pool shows the new volume.
//!
//! Every step is undone when a later one fails: a volume created for the request is destroyed again when the
//! grant or the record fails, and a grant is revoked when the record fails, so nothing stays half-assigned. A
//! volume is free when no assignment holds it.
//!
//! Locks (`flock` in the state directory, held by the [`PoolLock`] an [`Allocator`] owns), so the CLI, the
//! station's tasks, its request table and its start-up repair never race on a unit's next-index objects:
//! - a change to one named unit holds `allocation.lock` shared and `unit-<index>.lock` exclusive
//!   ([`LockScope::Unit`]): changes to one unit run one after another, changes to different units at once;
//! - an allocation (which may choose any unit) and reconciliation hold `allocation.lock` exclusive
//!   ([`LockScope::Pool`]): they run alone;
//! - adding a unit by address holds `allocation.lock` shared only ([`LockScope::Shared`]).
//!
//! `allocation.lock` is always taken before a unit's lock, so waiters never deadlock. The CLI waits for its locks
//! ([`PoolLock::acquire`]); the station's task runner tries them without blocking ([`PoolLock::try_acquire`]).
//! Every method checks that its allocator holds the lock of the unit it changes.

use crate::announce::{Announcer, Change};
use crate::model::{Availability, GrantHost, UnitState};
use crate::principal::Principal;
use crate::store::{AllocationUnit, AssignmentRecord, PendingUnit, RemovedUnit, StationStore, StoreError, SyncOutcome};
use crate::unit_access::UnitAccess;
use crate::walk::{read_unit, WalkError};
use dvsan_mib as mib;
use dvsan_snmp::{Endpoint, Manager, Oid, SnmpError, Target, Value, VarBind};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use std::fs::File;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The lock file of the whole pool, in the station's state directory.
pub const LOCK_FILE: &str = "allocation.lock";

/// The lock file of one unit (by station index), in the station's state directory.
pub fn unit_lock_file(unit: u32) -> String {
    format!("unit-{unit}.lock")
}

#[derive(Debug, thiserror::Error)]
pub enum AllocateError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the station's CA: {0}")]
    Ca(#[from] crate::ca::CaError),
    #[error(
        "host identity {0} is revoked: it gets no storage until an admin issues its certificate again \
         (`dvsan-station host issue {0}`)"
    )]
    Revoked(String),
    #[error("size {0:?} is not a size: give bytes or a number with K, M, G, T (for example 80G, 512M, 1048576)")]
    BadSize(String),
    #[error("size must be larger than 0")]
    ZeroSize,
    #[error("{0:?} is not a host IP address (for example 192.0.2.10 or 2001:db8::10)")]
    BadHost(String),
    #[error(
        "no free space for {requested} bytes: the largest allocatable size is {largest} bytes ({}); \
         add a unit or release volumes",
        human_size(*largest)
    )]
    TooLarge { requested: u64, largest: u64 },
    #[error(
        "no free volume named {name:?} is large enough, and a new one cannot take that name: unit(s) {} already \
         have a volume named {name:?} (assigned, partitioned or too small); ask without --name or with another name",
        units.iter().map(|u| format!("#{u}")).collect::<Vec<_>>().join(", ")
    )]
    NameTaken { name: String, units: Vec<u32> },
    #[error("volume {volume} has room for {room} more bytes ({}) of partitions, not {requested}", human_size(*room))]
    NoRoomInVolume { volume: u32, requested: u64, room: u64 },
    #[error("unit #{unit} has no volume {volume}; `dvsan-station pool` lists the volumes")]
    UnknownVolume { unit: u32, volume: u32 },
    #[error("volume {volume} of unit #{unit} has no partition {partition}; `dvsan-station pool` lists the partitions")]
    UnknownPartition { unit: u32, volume: u32, partition: u32 },
    #[error("volume {volume} of unit #{unit} is not assigned to any host")]
    NotAssigned { unit: u32, volume: u32 },
    #[error("volume {volume} of unit #{unit} is assigned to {holder}, not to {host}")]
    NotHolder { unit: u32, volume: u32, holder: IpAddr, host: IpAddr },
    #[error(
        "volume {volume} of unit #{unit} has a grant the station did not make, for {}: it is not assigned to \
         another host (a read-write volume has one host); revoke it on the unit first (`dvsan-agent access revoke`)",
        hosts.join(", ")
    )]
    ForeignGrant { unit: u32, volume: u32, hosts: Vec<String> },
    #[error("volume {volume} of unit #{unit} is being cleared ({percent}% done); it can be assigned when done")]
    Clearing { unit: u32, volume: u32, percent: u32 },
    #[error("unit #{unit} is {state}, not available; its volumes cannot be assigned now")]
    UnitNotAvailable { unit: u32, state: UnitState },
    #[error("unit #{unit} has no agent address (it moved away or was replaced); add it again by its address")]
    NoAddress { unit: u32 },
    #[error("unit #{unit} ({agent}) refused or did not answer {what}: {source}")]
    Unit { unit: u32, agent: SocketAddr, what: &'static str, source: Box<SnmpError> },
    #[error("unit #{unit} ({agent}) answered {what} with unexpected values")]
    UnitProtocol { unit: u32, agent: SocketAddr, what: &'static str },
    #[error("reading unit #{unit} ({agent}) failed: {source}")]
    Walk { unit: u32, agent: SocketAddr, source: WalkError },
    #[error(transparent)]
    Address(#[from] dvsan_snmp::AddressError),
    #[error("cannot take the lock {path}: {source}")]
    Lock { path: String, source: std::io::Error },
    #[error("the operation does not hold the lock of {what} (the unit it names changed meanwhile); run it again")]
    NotLocked { what: String },
    #[error(
        "the station has neither the unit's enrolled credentials nor a write community for units, so it cannot \
         change it: enrol the unit (dvsan-station unit enroll, the unit's --users) or give dvsan-station \
         --write-community NAME (the units' --write-community)"
    )]
    NoWriteCommunity,
    #[error(
        "pending unit #{} at {} claims the unit id {} of unit #{unit} ({}); approving it would give that unit's \
         identity to {}. Reject it, or remove unit #{unit} first if it really moved",
        pending.index,
        pending.address,
        pending.unit_id,
        unit_address.map_or_else(|| "no address".to_string(), |a| a.to_string()),
        pending.address.ip()
    )]
    ClaimsPoolUnit { pending: Box<PendingUnit>, unit: u32, unit_address: Option<SocketAddr> },
    /// A mirrored volume could not be placed; the text says how many units were eligible and
    /// why the others were not.
    #[error("{0}")]
    Placement(String),
    #[error("{0} replicas: a mirrored volume has 2 or 3 replicas (1 or none: an ordinary volume)")]
    BadReplicas(u32),
}

/// What a [`PoolLock`] covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LockScope {
    /// The whole pool (`allocation.lock` exclusive): allocations, which may choose any unit, and reconciliation.
    Pool,
    /// One unit by station index (`allocation.lock` shared, `unit-<index>.lock` exclusive).
    Unit(u32),
    /// No unit in particular (`allocation.lock` shared): adding a unit by its address.
    Shared,
    /// No lock at all: a task that only reads a unit (clearVolume follows a unit's clearing, which may take hours,
    /// and must hold up nothing).
    Nothing,
}

impl LockScope {
    /// Whether two holders of these scopes would exclude each other.
    pub fn conflicts_with(self, other: LockScope) -> bool {
        match (self, other) {
            (LockScope::Nothing, _) | (_, LockScope::Nothing) => false,
            (LockScope::Pool, _) | (_, LockScope::Pool) => true,
            (LockScope::Unit(a), LockScope::Unit(b)) => a == b,
            _ => false,
        }
    }
}

/// Held `flock`s of a [`LockScope`]; released when dropped.
#[derive(Debug)]
pub struct PoolLock {
    scope: LockScope,
    // Field order is drop order: the unit's lock goes before the pool's.
    _unit: Option<Flock<File>>,
    _pool: Option<Flock<File>>,
}

impl PoolLock {
    /// Takes the locks of `scope` in `state_dir`, waiting for their holders (the CLI).
    pub fn acquire(state_dir: &Path, scope: LockScope) -> Result<PoolLock, AllocateError> {
        match Self::take(state_dir, scope, true)? {
            Some(lock) => Ok(lock),
            None => Err(AllocateError::Lock {
                path: state_dir.join(LOCK_FILE).display().to_string(),
                source: std::io::Error::from(std::io::ErrorKind::WouldBlock),
            }),
        }
    }

    /// Takes the locks of `scope` without waiting: `None` when another holder has one of them (the task runner
    /// retries later, so no thread ever blocks on a lock).
    pub fn try_acquire(state_dir: &Path, scope: LockScope) -> Result<Option<PoolLock>, AllocateError> {
        Self::take(state_dir, scope, false)
    }

    fn take(state_dir: &Path, scope: LockScope, wait: bool) -> Result<Option<PoolLock>, AllocateError> {
        let (pool_mode, unit) = match scope {
            LockScope::Pool => (true, None),
            LockScope::Unit(unit) => (false, Some(unit)),
            LockScope::Shared => (false, None),
            LockScope::Nothing => return Ok(Some(PoolLock { scope, _unit: None, _pool: None })),
        };
        let Some(pool) = lock_file(&state_dir.join(LOCK_FILE), pool_mode, wait)? else { return Ok(None) };
        let unit = match unit {
            Some(unit) => match lock_file(&state_dir.join(unit_lock_file(unit)), true, wait)? {
                Some(lock) => Some(lock),
                // `pool` is released on return.
                None => return Ok(None),
            },
            None => None,
        };
        Ok(Some(PoolLock { scope, _unit: unit, _pool: Some(pool) }))
    }

    pub fn scope(&self) -> LockScope {
        self.scope
    }

    /// Whether changes to unit `unit` are covered.
    pub fn covers(&self, unit: u32) -> bool {
        match self.scope {
            LockScope::Pool => true,
            LockScope::Unit(held) => held == unit,
            LockScope::Shared | LockScope::Nothing => false,
        }
    }
}

/// `flock`s `path` (created if missing), exclusive or shared; `None` when `wait` is false and it is held.
fn lock_file(path: &Path, exclusive: bool, wait: bool) -> Result<Option<Flock<File>>, AllocateError> {
    let lock_error = |source| AllocateError::Lock { path: path.display().to_string(), source };
    let mut file = File::options().create(true).truncate(false).write(true).open(path).map_err(lock_error)?;
    let mode = match (exclusive, wait) {
        (true, true) => FlockArg::LockExclusive,
        (true, false) => FlockArg::LockExclusiveNonblock,
        (false, true) => FlockArg::LockShared,
        (false, false) => FlockArg::LockSharedNonblock,
    };
    loop {
        match Flock::lock(file, mode) {
            Ok(lock) => return Ok(Some(lock)),
            Err((_, Errno::EWOULDBLOCK)) if !wait => return Ok(None),
            // A signal interrupted the wait: wait again.
            Err((unlocked, Errno::EINTR)) => file = unlocked,
            Err((_, errno)) => return Err(lock_error(std::io::Error::from_raw_os_error(errno as i32))),
        }
    }
}

/// Where an operation is: how far (percent, by the steps finished) and what it does now, in plain words.
pub trait Progress: Send + Sync {
    fn report(&self, percent: u32, step: &str);
}

/// Progress nobody watches (the CLI).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn report(&self, _percent: u32, _step: &str) {}
}

/// A volume assigned to a host, with everything the host needs to use it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Allocation {
    /// The unit's station index.
    pub unit: u32,
    pub unit_id: Option<String>,
    /// The unit's agent address.
    pub agent: Option<SocketAddr>,
    pub volume: u32,
    pub name: String,
    pub size_bytes: u64,
    pub start_lba: u32,
    pub end_lba: u32,
    pub export_name: String,
    /// `nbd://DATA_ADDRESS:PORT/EXPORT`, when the unit's data service address is known.
    pub nbd_uri: Option<String>,
    pub host: IpAddr,
    pub read_only: bool,
    /// dvsanAccessIndex of the host's grant on the unit.
    pub grant: u32,
    /// The volume was created for this assignment.
    pub volume_created: bool,
    /// Who asked for it over SNMP (`Principal::stored`; `None`: the station's operator). Not printed: a community
    /// is a secret.
    #[serde(skip)]
    pub owner: Option<String>,
}

/// A unit as a rescan or `unit add` found it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UnitScan {
    /// The unit's station index.
    pub unit: u32,
    pub unit_id: Option<String>,
    pub name: String,
    pub address: SocketAddr,
    /// The host name the unit was registered by, if any (`address` is what it resolved to).
    pub host_name: Option<String>,
    pub volumes: usize,
    pub state: UnitState,
    /// Why the agent could not be read (an added address that does not answer yet); `None` when it was read.
    pub unanswered: Option<String>,
}

/// What a host asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SizeRequest {
    pub size_bytes: u64,
    pub host: IpAddr,
    /// The volume's name: only a free volume of that name is chosen, else one is created with it (without a
    /// name, any free volume may be chosen, and a created one is named by the unit).
    pub name: Option<String>,
    pub read_only: bool,
    /// A shared (readWriteShared) assignment: with a name, it may take a volume of that name whose assignments
    /// are all shared too (`--shared`, for cluster filesystems).
    pub shared: bool,
}

/// Parses a requested size (`80G`, `512M`, `1048576`); zero is refused.
pub fn parse_request_size(text: &str) -> Result<u64, AllocateError> {
    let bytes = dvsan_layout::parse_size(text).map_err(|_| AllocateError::BadSize(text.to_string()))?;
    if bytes == 0 {
        return Err(AllocateError::ZeroSize);
    }
    Ok(bytes)
}

/// Parses a host address: a literal, unicast IP address.
pub fn parse_host(text: &str) -> Result<IpAddr, AllocateError> {
    match text.trim().parse::<IpAddr>() {
        Ok(ip) if !ip.is_unspecified() && !ip.is_multicast() && ip != IpAddr::from([255, 255, 255, 255]) => Ok(ip),
        _ => Err(AllocateError::BadHost(text.to_string())),
    }
}

/// Changes units and records what it did; holds its [`PoolLock`] while it lives.
pub struct Allocator<'a> {
    store: &'a mut StationStore,
    manager: &'a Manager,
    /// The targets of units: enrolled units as their SNMPv3 user, others with the communities (without a write
    /// community, changes to units that are not enrolled fail with [`AllocateError::NoWriteCommunity`]).
    access: UnitAccess,
    timeout: Duration,
    lock: PoolLock,
    progress: Arc<dyn Progress>,
    /// Where what it changed is announced (the running station's notifications), if anywhere.
    announcer: Option<Announcer>,
    /// Who the assignments it makes are recorded for (`Principal::stored`); `None`: the station's operator.
    owner: Option<String>,
    /// Volumes it asked a unit to wipe (unit, volume), for the running station to follow (clearVolume tasks).
    wiped: Vec<(u32, u32)>,
}

/// A volume that could serve a request.
struct Candidate {
    unit: AllocationUnit,
    agent: SocketAddr,
    volume: u32,
    name: String,
    start_lba: u32,
    end_lba: u32,
    length: u32,
    export_name: String,
    created: bool,
}

impl<'a> Allocator<'a> {
    /// An allocator over `store` that talks to units through `manager` and may change what `lock` covers.
    pub fn new(
        store: &'a mut StationStore,
        manager: &'a Manager,
        read_community: &str,
        write_community: Option<&str>,
        timeout: Duration,
        lock: PoolLock,
    ) -> Allocator<'a> {
        let state_dir = store.path().parent().map(Path::to_path_buf).unwrap_or_default();
        let access = UnitAccess::open(&state_dir, read_community, write_community);
        Allocator {
            store,
            manager,
            access,
            timeout,
            lock,
            progress: Arc::new(NoProgress),
            announcer: None,
            owner: None,
            wiped: Vec::new(),
        }
    }

    /// Records the assignments it makes as made by `owner` (the stored form of the SNMP requester that asked).
    pub fn with_owner(mut self, owner: Option<String>) -> Allocator<'a> {
        self.owner = owner;
        self
    }

    /// The TLS identity the grants it makes name next to the address: the owner's SNMPv3 user name when the
    /// station's CA issued a client certificate for it (`host issue`, `dvsan-host enroll`) that is not revoked;
    /// `None` (a grant by address only) for the operator, a community, or a user without a certificate.
    fn grant_identity(&self) -> Result<Option<String>, AllocateError> {
        let Some(Principal::User(name)) = self.owner.as_deref().and_then(Principal::from_stored) else {
            return Ok(None);
        };
        match self.store.host_identity(&name)? {
            Some(h) if !h.valid() => Err(AllocateError::Revoked(h.name)),
            known => Ok(known.map(|h| h.name)),
        }
    }

    /// Revokes host identity `name` (`dvsan-station host revoke`): releases every assignment the station made for
    /// it (its grant names the identity, or the SNMPv3 user `name` asked for it) — the grant destroyed on the unit,
    /// the volume wiped, the assignment forgotten — after marking the identity revoked in the store, so it gets no
    /// certificate (`dvsan-host enroll`) and no storage until an admin issues it again. blockd closes the open
    /// connections of a grant that went away (its store thread re-reads the grants when the layout changes).
    ///
    /// Then the certificates themselves: the CA lists every certificate it issued to `name` in a new revocation
    /// list, which is pushed to every available unit ([`crate::crl_push`]), so their blockd refuse those
    /// certificates whatever grant (an address grant, one made outside the station) would admit them, and close
    /// their connections. Units not available get it when they come back; a certificate issued again later has a
    /// new serial and works.
    ///
    /// An assignment whose unit does not answer (or is not reachable) cannot be released: it is forgotten anyway
    /// and named in the result, whose grant then shows as a foreign grant (never allocated) until removed on the
    /// unit. Needs the whole pool's lock.
    pub async fn revoke_host(&mut self, name: &str) -> Result<RevokedHost, AllocateError> {
        self.check_pool_lock()?;
        let user = Principal::User(name.to_string()).stored();
        let held: Vec<AssignmentRecord> = self
            .store
            .assignments()?
            .into_iter()
            .filter(|a| a.identity.as_deref() == Some(name) || a.owner.as_deref() == Some(user.as_str()))
            .collect();
        let mut report = RevokedHost { identity: name.to_string(), ..RevokedHost::default() };
        // Revoked in the store first: from here no enrolment (`dvsan-host enroll`, which takes no pool lock) and
        // no request gets it a certificate or storage while its grants are being released.
        report.was_valid = self.store.revoke_host_identity(name, crate::timefmt::now_ms())?;
        let total = held.len().max(1) as u32;
        for (i, a) in held.iter().enumerate() {
            self.step(i as u32 * 90 / total, &format!("releasing volume {} of unit #{}", a.volume, a.unit));
            let what = format!("unit #{}/volume {} to {}", a.unit, a.volume, a.grant_host());
            match self.release(a.unit, a.volume, Some(a.host)).await {
                Ok(_) => report.released.push(what),
                Err(e) => {
                    tracing::warn!(unit = a.unit, volume = a.volume, error = %e, "revoking a host: the grant stays on the unit");
                    self.store.delete_host_assignment(a.unit, a.volume, a.host)?;
                    report.not_revoked.push(format!("{what}: {e}"));
                }
            }
        }
        self.step(95, "revoking the identity's certificates on the units");
        self.revoke_certificates(name, &mut report).await?;
        tracing::info!(
            identity = name,
            released = report.released.len(),
            not_revoked = report.not_revoked.len(),
            "host revoked"
        );
        Ok(report)
    }

    /// Lists `name`'s certificates in the CA's revocation list and pushes the list to every available unit.
    async fn revoke_certificates(&mut self, name: &str, report: &mut RevokedHost) -> Result<(), AllocateError> {
        let state_dir = self.store.path().parent().map(Path::to_path_buf).unwrap_or_default();
        let Some(ca) = crate::ca::StationCa::open_existing(&state_dir)? else { return Ok(()) };
        let revocation = ca.revoke_identity(name)?;
        report.certificates_revoked = revocation.newly_revoked;
        report.crl_number = Some(revocation.crl_number);
        let der = ca.crl_der()?.unwrap_or_default();
        for unit in self.store.allocation_units()? {
            let Some(agent) = unit.address else { continue };
            if unit.state != UnitState::Available {
                report
                    .crl_not_pushed
                    .push(format!("unit #{}: {} (it gets the list when it comes back)", unit.index, unit.state));
                continue;
            }
            let pushed = match self.write_target(agent) {
                Ok(target) => crate::crl_push::push(self.manager, &target, &der).await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match pushed {
                Ok(()) => report.crl_pushed.push(format!("unit #{}", unit.index)),
                Err(e) => {
                    tracing::warn!(unit = unit.index, error = %e, "could not push the revocation list");
                    report.crl_not_pushed.push(format!("unit #{}: {e}", unit.index));
                }
            }
        }
        Ok(())
    }

    /// Announces what its rescans and the walks after its changes find (new or removed volumes, a unit joining)
    /// through `announcer`, as the coordinator does for its own walks. Without one (the CLI, a process of its
    /// own) nothing is announced and the running station's walks find nothing new either.
    pub fn with_announcer(mut self, announcer: Option<Announcer>) -> Allocator<'a> {
        self.announcer = announcer;
        self
    }

    /// Announces what a sync of a unit changed.
    fn announce(&self, outcome: &SyncOutcome) {
        let Some(announcer) = &self.announcer else { return };
        match self.store.unit(outcome.index) {
            Ok(Some(unit)) => announcer.announce(Change::Synced { unit: &unit, outcome }),
            Ok(None) => {}
            Err(e) => tracing::warn!(unit = outcome.index, error = %e, "reading the unit to announce its changes"),
        }
    }

    /// Reports the steps of the operations to `progress`.
    pub fn with_progress(mut self, progress: Arc<dyn Progress>) -> Allocator<'a> {
        self.progress = progress;
        self
    }

    fn step(&self, percent: u32, step: &str) {
        self.progress.report(percent, step);
    }

    /// The scope of the lock this allocator holds.
    pub fn scope(&self) -> LockScope {
        self.lock.scope()
    }

    /// Fails unless the allocator may change unit `unit`.
    fn check_unit_lock(&self, unit: u32) -> Result<(), AllocateError> {
        if self.lock.covers(unit) {
            Ok(())
        } else {
            Err(AllocateError::NotLocked { what: format!("unit #{unit}") })
        }
    }

    /// Fails unless the allocator holds the whole pool.
    fn check_pool_lock(&self) -> Result<(), AllocateError> {
        if self.lock.scope() == LockScope::Pool {
            Ok(())
        } else {
            Err(AllocateError::NotLocked { what: "the whole pool".to_string() })
        }
    }

    /// The station index of the unit a person named (unit id or prefix, name, address or index).
    pub fn find_unit(&self, given: &str) -> Result<u32, AllocateError> {
        Ok(self.store.find_unit(given)?.index)
    }

    /// The unit with station index `unit`, for a change to it (its lock must be held).
    fn unit_record(&self, unit: u32) -> Result<crate::store::UnitRecord, AllocateError> {
        self.check_unit_lock(unit)?;
        self.store.unit(unit)?.ok_or_else(|| StoreError::UnknownUnit(format!("#{unit}")).into())
    }

    /// What allocation knows about unit `unit` (its lock must be held).
    fn allocation_unit(&self, unit: u32) -> Result<AllocationUnit, AllocateError> {
        self.check_unit_lock(unit)?;
        self.store
            .allocation_units()?
            .into_iter()
            .find(|u| u.index == unit)
            .ok_or_else(|| StoreError::UnknownUnit(format!("#{unit}")).into())
    }

    /// Speaks to units with `access` (the running station's, sharing its derived keys) instead of the
    /// communities given to [`Allocator::new`] and the units enrolled in the store's directory.
    pub fn with_access(mut self, access: UnitAccess) -> Allocator<'a> {
        self.access = access;
        self
    }

    /// The unit id of the pool's unit whose agent is at `agent` (None when no unit, or several, are there).
    fn unit_id_at(&self, agent: SocketAddr) -> Option<String> {
        let units = match self.store.units() {
            Ok(units) => units,
            Err(e) => {
                tracing::warn!(%agent, error = %e, "reading the units to find an agent's unit failed");
                return None;
            }
        };
        let mut at = units.into_iter().filter(|u| u.address == Some(agent));
        match (at.next(), at.next()) {
            (Some(unit), None) => unit.unit_id,
            _ => None,
        }
    }

    /// The target for reading the unit at `agent` (see [`crate::unit_access`]).
    fn read_target(&self, agent: SocketAddr) -> Target {
        self.access.read_target(agent, self.unit_id_at(agent).as_deref()).with_timeout(self.timeout, 2)
    }

    /// The target for SETs on the unit at `agent`; fails when the station has neither the unit's enrolled user nor
    /// a write community.
    fn write_target(&self, agent: SocketAddr) -> Result<Target, AllocateError> {
        let target = self.access.write_target(agent, self.unit_id_at(agent).as_deref());
        Ok(target.ok_or(AllocateError::NoWriteCommunity)?.with_timeout(self.timeout, 2))
    }

    /// Serves a host's request for `size_bytes`: best-fit free volume, else a new one; then grant and record.
    /// Needs the whole pool's lock.
    pub async fn request(&mut self, request: &SizeRequest) -> Result<Allocation, AllocateError> {
        self.check_pool_lock()?;
        if request.size_bytes == 0 {
            return Err(AllocateError::ZeroSize);
        }
        self.step(0, "choosing a volume");
        let units = self.store.allocation_units()?;
        let pool = self.store.pool()?;
        let assigned = self.store.assignments()?;
        let mut best: Option<(u64, Candidate)> = None;
        let mut largest: u64 = 0;
        for pool_unit in &pool {
            let Some(unit) = units.iter().find(|u| u.index == pool_unit.index) else { continue };
            let (Some(agent), Some(block_size), UnitState::Available) = (unit.address, unit.block_size, unit.state)
            else {
                continue;
            };
            // Spare units are kept for replacing replicas, out of ordinary allocation.
            if unit.spare {
                continue;
            }
            for volume in &pool_unit.volumes {
                let mut holders = assigned.iter().filter(|a| a.unit == unit.index && a.volume == volume.index);
                // Another host's shared assignments let a shared request by name join them.
                let joinable = request.shared
                    && request.name.is_some()
                    && holders.clone().all(|a| a.shared && !a.read_only && a.host != request.host);
                let free = volume.state == Availability::Available
                    && volume.assignable()
                    && volume.partitions.is_empty()
                    && (holders.next().is_none() || joinable);
                // A request by name takes only a free volume of that name; others are created with the name.
                let named = request.name.as_ref().is_none_or(|name| *name == volume.name);
                if !free || !named {
                    continue;
                }
                let bytes = u64::from(volume.length) * u64::from(block_size);
                largest = largest.max(bytes);
                if bytes >= request.size_bytes && best.as_ref().is_none_or(|(b, _)| bytes < *b) {
                    let candidate = Candidate {
                        unit: unit.clone(),
                        agent,
                        volume: volume.index,
                        name: volume.name.clone(),
                        start_lba: volume.start_lba,
                        end_lba: volume.end_lba,
                        length: volume.length,
                        export_name: volume.export_name.clone(),
                        created: false,
                    };
                    best = Some((bytes, candidate));
                }
            }
        }
        let candidate = match best {
            Some((_, candidate)) => candidate,
            None => {
                // The unit with the most free space whose largest free extent holds the request (and, for a named
                // request, that has no volume of that name: names are unique on a unit).
                let mut chosen: Option<(&AllocationUnit, SocketAddr, u32)> = None;
                let mut name_taken_on = Vec::new();
                for unit in &units {
                    let (Some(agent), Some(block_size), UnitState::Available) =
                        (unit.address, unit.block_size, unit.state)
                    else {
                        continue;
                    };
                    if unit.spare {
                        continue;
                    }
                    if let Some(name) = &request.name {
                        let volumes = pool.iter().find(|p| p.index == unit.index).map(|p| p.volumes.as_slice());
                        if volumes.unwrap_or_default().iter().any(|v| v.name == *name) {
                            name_taken_on.push(unit.index);
                            continue;
                        }
                    }
                    let extent = unit.largest_free_blocks.or(unit.free_blocks).unwrap_or(0);
                    largest = largest.max(u64::from(extent) * u64::from(block_size));
                    let blocks = request.size_bytes.div_ceil(u64::from(block_size.max(1)));
                    let Ok(blocks) = u32::try_from(blocks) else { continue };
                    if blocks > extent {
                        continue;
                    }
                    let free = unit.free_blocks.unwrap_or(0);
                    if chosen.is_none_or(|(c, _, _)| free > c.free_blocks.unwrap_or(0)) {
                        chosen = Some((unit, agent, blocks));
                    }
                }
                let Some((unit, agent, blocks)) = chosen else {
                    if let (Some(name), false) = (&request.name, name_taken_on.is_empty()) {
                        return Err(AllocateError::NameTaken { name: name.clone(), units: name_taken_on });
                    }
                    return Err(AllocateError::TooLarge { requested: request.size_bytes, largest });
                };
                self.step(20, &format!("creating the volume on unit #{}", unit.index));
                self.create_volume(unit, agent, blocks, request.name.as_deref()).await?
            }
        };
        self.grant_and_record(candidate, request.host, request.read_only, request.shared).await
    }

    /// Assigns volume `volume` of unit `unit` (station index) to `host` (admin assignment).
    pub async fn assign(
        &mut self,
        unit: u32,
        volume: u32,
        host: IpAddr,
        read_only: bool,
        shared: bool,
    ) -> Result<Allocation, AllocateError> {
        let unit = self.allocation_unit(unit)?;
        let (Some(agent), UnitState::Available) = (unit.address, unit.state) else {
            return Err(AllocateError::UnitNotAvailable { unit: unit.index, state: unit.state });
        };
        let held = self.store.volume_assignments(unit.index, volume)?;
        if let Some(first) = held.iter().find(|a| !(shared && a.shared && a.host != host)) {
            return Err(StoreError::AlreadyAssigned { unit: unit.index, volume, host: first.host.to_string() }.into());
        }
        let pooled = self.store.pool_unit(unit.index)?;
        let Some(v) = pooled.as_ref().and_then(|u| u.volumes.iter().find(|v| v.index == volume)) else {
            return Err(AllocateError::UnknownVolume { unit: unit.index, volume });
        };
        if !v.foreign_grants.is_empty() {
            return Err(AllocateError::ForeignGrant { unit: unit.index, volume, hosts: v.foreign_grants.clone() });
        }
        if let Some(percent) = v.clearing {
            return Err(AllocateError::Clearing { unit: unit.index, volume, percent });
        }
        let candidate = Candidate {
            agent,
            volume,
            name: v.name.clone(),
            start_lba: v.start_lba,
            end_lba: v.end_lba,
            length: v.length,
            export_name: v.export_name.clone(),
            created: false,
            unit,
        };
        self.grant_and_record(candidate, host, read_only, shared).await
    }

    /// Creates a free volume of at least `size_bytes` on unit `unit` (admin `volume create`).
    pub async fn create_on(
        &mut self,
        unit: u32,
        size_bytes: u64,
        name: Option<&str>,
    ) -> Result<Allocation, AllocateError> {
        let unit = self.allocation_unit(unit)?;
        if size_bytes == 0 {
            return Err(AllocateError::ZeroSize);
        }
        let (Some(agent), Some(block_size), UnitState::Available) = (unit.address, unit.block_size, unit.state) else {
            return Err(AllocateError::UnitNotAvailable { unit: unit.index, state: unit.state });
        };
        let extent = unit.largest_free_blocks.or(unit.free_blocks).unwrap_or(0);
        let blocks = size_bytes.div_ceil(u64::from(block_size.max(1)));
        let largest = u64::from(extent) * u64::from(block_size);
        let blocks = match u32::try_from(blocks) {
            Ok(blocks) if blocks <= extent => blocks,
            _ => return Err(AllocateError::TooLarge { requested: size_bytes, largest }),
        };
        self.step(0, &format!("creating the volume on unit #{}", unit.index));
        let c = self.create_volume(&unit, agent, blocks, name).await?;
        self.step(70, &format!("reading unit #{}", unit.index));
        self.refresh(unit.index, agent).await;
        Ok(Allocation {
            unit: unit.index,
            unit_id: unit.unit_id.clone(),
            agent: Some(agent),
            volume: c.volume,
            size_bytes: u64::from(c.length) * u64::from(block_size),
            nbd_uri: nbd_uri(&unit, Some(agent), &c.export_name),
            name: c.name,
            start_lba: c.start_lba,
            end_lba: c.end_lba,
            export_name: c.export_name,
            host: IpAddr::from([0, 0, 0, 0]),
            read_only: false,
            grant: 0,
            volume_created: true,
            owner: None,
        })
    }

    /// Destroys volume `volume` of unit `unit` when no assignment holds it (admin `volume destroy`).
    pub async fn destroy_on(&mut self, unit: u32, volume: u32) -> Result<(), AllocateError> {
        let record = self.unit_record(unit)?;
        if let Some(held) = self.store.assignment(record.index, volume)? {
            return Err(StoreError::AlreadyAssigned { unit: record.index, volume, host: held.host.to_string() }.into());
        }
        let known = self.store.pool_unit(record.index)?.is_some_and(|u| u.volumes.iter().any(|v| v.index == volume));
        if !known {
            return Err(AllocateError::UnknownVolume { unit: record.index, volume });
        }
        let Some(agent) = record.address else {
            return Err(AllocateError::NoAddress { unit: record.index });
        };
        self.step(0, &format!("destroying volume {volume} on unit #{}", record.index));
        self.destroy_row(
            record.index,
            agent,
            Oid::from_slice(mib::DVSAN_VOLUME_ROW_STATUS).child(volume),
            "the volume destruction",
        )
        .await?;
        self.step(70, &format!("reading unit #{}", record.index));
        self.refresh(record.index, agent).await;
        Ok(())
    }

    /// Creates a partition of at least `size_bytes` inside volume `volume` of unit `unit` (admin `partition
    /// create`); the unit places it first fit inside the volume. Returns the new partition as the unit reports it.
    pub async fn partition_on(
        &mut self,
        unit: u32,
        volume: u32,
        size_bytes: u64,
    ) -> Result<crate::model::PoolPartition, AllocateError> {
        let record = self.unit_record(unit)?;
        if size_bytes == 0 {
            return Err(AllocateError::ZeroSize);
        }
        let Some(pooled) = self.store.pool_unit(record.index)? else {
            return Err(StoreError::UnknownUnit(format!("#{unit}")).into());
        };
        let Some(vol) = pooled.volumes.iter().find(|v| v.index == volume) else {
            return Err(AllocateError::UnknownVolume { unit: record.index, volume });
        };
        let (Some(agent), Some(block_size)) = (record.address, pooled.block_size) else {
            return Err(AllocateError::UnitNotAvailable { unit: record.index, state: record.state });
        };
        let blocks = size_bytes.div_ceil(u64::from(block_size.max(1)));
        // Room inside the volume: its length minus what its partitions use (the unit finds the extent).
        let used: u64 = vol.partitions.iter().map(|p| u64::from(p.length)).sum();
        let room = u64::from(vol.length).saturating_sub(used);
        let blocks = match u32::try_from(blocks) {
            Ok(b) if u64::from(b) <= room => b,
            _ => {
                let room = room * u64::from(block_size);
                return Err(AllocateError::NoRoomInVolume { volume, requested: size_bytes, room });
            }
        };
        let index = vol.partitions.iter().map(|p| p.index).max().unwrap_or(0) + 1;
        self.step(0, &format!("creating the partition in volume {volume} on unit #{}", record.index));
        let row = |column: &[u32]| Oid::from_slice(column).join(&[volume, index]);
        let varbinds = vec![
            VarBind::new(row(mib::DVSAN_PARTITION_LENGTH), Value::Gauge32(blocks)),
            VarBind::new(row(mib::DVSAN_PARTITION_ROW_STATUS), Value::Integer(mib::row_status::CREATE_AND_GO)),
        ];
        self.manager.set(&self.write_target(agent)?, varbinds).await.map_err(|source| AllocateError::Unit {
            unit: record.index,
            agent,
            what: "the partition creation",
            source: Box::new(source),
        })?;
        self.step(70, &format!("reading unit #{}", record.index));
        self.refresh(record.index, agent).await;
        let pooled = self.store.pool_unit(record.index)?;
        pooled
            .as_ref()
            .and_then(|u| u.volumes.iter().find(|v| v.index == volume))
            .and_then(|v| v.partitions.iter().find(|p| p.index == index))
            .cloned()
            .ok_or(AllocateError::UnknownVolume { unit: record.index, volume })
    }

    /// Destroys partition `partition` of volume `volume` of unit `unit` (SET destroy on the unit's
    /// dvsanPartitionRowStatus; admin `partition destroy`).
    pub async fn destroy_partition_on(&mut self, unit: u32, volume: u32, partition: u32) -> Result<(), AllocateError> {
        let record = self.unit_record(unit)?;
        let pooled = self.store.pool_unit(record.index)?;
        let Some(vol) = pooled.as_ref().and_then(|u| u.volumes.iter().find(|v| v.index == volume)) else {
            return Err(AllocateError::UnknownVolume { unit: record.index, volume });
        };
        if !vol.partitions.iter().any(|p| p.index == partition) {
            return Err(AllocateError::UnknownPartition { unit: record.index, volume, partition });
        }
        let Some(agent) = record.address else {
            return Err(AllocateError::NoAddress { unit: record.index });
        };
        self.step(0, &format!("destroying partition {partition} of volume {volume} on unit #{}", record.index));
        self.destroy_row(
            record.index,
            agent,
            Oid::from_slice(mib::DVSAN_PARTITION_ROW_STATUS).join(&[volume, partition]),
            "the partition destruction",
        )
        .await?;
        self.step(70, &format!("reading unit #{}", record.index));
        self.refresh(record.index, agent).await;
        Ok(())
    }

    /// Releases volume `volume` of unit `unit`: revokes the grant on the unit, then forgets the assignment. With
    /// `host`, only that host's assignment is released.
    pub async fn release(
        &mut self,
        unit: u32,
        volume: u32,
        host: Option<IpAddr>,
    ) -> Result<AssignmentRecord, AllocateError> {
        let record = self.unit_record(unit)?;
        let held = self.store.volume_assignments(record.index, volume)?;
        let Some(first) = held.first().cloned() else {
            return Err(AllocateError::NotAssigned { unit: record.index, volume });
        };
        // A host releases its own assignment; without a host (the operator) every assignment of the volume goes.
        let releasing: Vec<AssignmentRecord> = match host {
            Some(host) => match held.iter().find(|a| a.host == host) {
                Some(a) => vec![a.clone()],
                None => return Err(AllocateError::NotHolder { unit: record.index, volume, holder: first.host, host }),
            },
            None => held.clone(),
        };
        let Some(agent) = record.address else {
            return Err(AllocateError::NoAddress { unit: record.index });
        };
        for assignment in &releasing {
            self.step(0, &format!("revoking the grant of {} on unit #{}", assignment.host, record.index));
            self.destroy_row(
                record.index,
                agent,
                Oid::from_slice(mib::DVSAN_ACCESS_ROW_STATUS).child(assignment.grant),
                "the revoke",
            )
            .await?;
            self.store.delete_host_assignment(record.index, volume, assignment.host)?;
            tracing::info!(unit = record.index, volume, host = %assignment.host, "volume released");
        }
        // A shared volume other hosts still hold keeps its data.
        if self.store.volume_assignments(record.index, volume)?.is_empty() {
            self.step(40, &format!("wiping volume {volume} on unit #{}", record.index));
            // The next host must not read what this one wrote: the unit clears the volume, and the pool shows it
            // clearing (not assignable) until done. A unit that refuses (an older unit, a grant someone else made)
            // leaves the volume as it is: logged, the release goes on.
            let wipe = Oid::from_slice(mib::DVSAN_VOLUME_CLEAR_PROGRESS).child(volume);
            let set = vec![VarBind::new(wipe, Value::Gauge32(0))];
            match self.manager.set(&self.write_target(agent)?, set).await {
                Ok(_) => self.wiped.push((record.index, volume)),
                Err(e) => {
                    tracing::warn!(unit = record.index, volume, error = %e, "the unit did not wipe the released volume")
                }
            }
        }
        self.step(75, &format!("reading unit #{}", record.index));
        self.refresh(record.index, agent).await;
        let assignment = releasing.into_iter().next().unwrap_or(first);
        Ok(assignment)
    }

    /// The volumes it asked units to wipe since the last call: (unit, volume).
    pub fn take_wiped(&mut self) -> Vec<(u32, u32)> {
        std::mem::take(&mut self.wiped)
    }

    /// Follows the clearing of volume `volume` on unit `unit` (a clearVolume task): reads the volume's
    /// dvsanVolumeState and dvsanVolumeClearProgress every [`CLEAR_POLL`] and reports the unit's percentage as its
    /// own progress, until the volume is no longer clearing; then reads the unit into the pool, where the volume
    /// is assignable again. Returns false when the volume went away meanwhile (destroyed: its blocks are released
    /// space the unit clears on its own). Needs no lock (it changes nothing on the unit). Fails when the unit stops
    /// answering for [`CLEAR_SILENCE`] (it goes on clearing; the station starts a new task once it is back).
    pub async fn follow_clearing(&mut self, unit: u32, volume: u32) -> Result<bool, AllocateError> {
        let record = self.store.unit(unit)?.ok_or_else(|| StoreError::UnknownUnit(format!("#{unit}")))?;
        let Some(agent) = record.address else {
            return Err(AllocateError::NoAddress { unit });
        };
        let oids = [
            Oid::from_slice(mib::DVSAN_VOLUME_STATE).child(volume),
            Oid::from_slice(mib::DVSAN_VOLUME_CLEAR_PROGRESS).child(volume),
        ];
        let mut silent_since: Option<std::time::Instant> = None;
        let mut last = 0;
        let exists = loop {
            match self.manager.get(&self.read_target(agent), &oids).await {
                Ok(values) => {
                    silent_since = None;
                    match (values.first().map(|v| &v.value), values.get(1).map(|v| &v.value)) {
                        (Some(Value::Integer(mib::dvsan_volume_state::CLEARING)), Some(Value::Gauge32(percent))) => {
                            last = (*percent).min(99);
                            self.step(last, &format!("unit #{unit} is clearing volume {volume}: {percent}%"));
                        }
                        (Some(Value::Integer(_)), _) => break true,
                        (Some(v), _) if v.is_exception() => break false,
                        _ => {
                            return Err(AllocateError::Unit {
                                unit,
                                agent,
                                what: "the clearing progress",
                                source: Box::new(SnmpError::Protocol("the answer is not a volume's state")),
                            });
                        }
                    }
                }
                Err(e) => {
                    let since = *silent_since.get_or_insert_with(std::time::Instant::now);
                    if since.elapsed() >= CLEAR_SILENCE {
                        return Err(AllocateError::Unit {
                            unit,
                            agent,
                            what: "the clearing progress",
                            source: Box::new(e),
                        });
                    }
                    self.step(last, &format!("unit #{unit} does not answer; waiting ({e})"));
                }
            }
            tokio::time::sleep(CLEAR_POLL).await;
        };
        self.step(99, &format!("reading unit #{unit}"));
        self.refresh(unit, agent).await;
        Ok(exists)
    }

    /// Reads unit `unit` now at its agent address and stores what it has (admin `unit rescan`). A unit that does
    /// not answer is an error here; its state is left to the station's polling.
    pub async fn rescan(&mut self, unit: u32) -> Result<UnitScan, AllocateError> {
        let record = self.unit_record(unit)?;
        let Some(agent) = record.address else {
            return Err(AllocateError::NoAddress { unit: record.index });
        };
        self.step(0, &format!("reading unit #{}", record.index));
        let snapshot = read_unit(self.manager, &self.read_target(agent))
            .await
            .map_err(|source| AllocateError::Walk { unit: record.index, agent, source })?;
        self.step(80, &format!("recording unit #{}", record.index));
        let outcome = self.store.sync_unit(agent, &snapshot, crate::timefmt::now_ms())?;
        self.announce(&outcome);
        Ok(UnitScan {
            unit: outcome.index,
            unit_id: Some(snapshot.unit_id.clone()),
            name: snapshot.name.clone(),
            address: agent,
            host_name: (!record.host_name.is_empty()).then(|| record.host_name.clone()),
            volumes: snapshot.volumes.len(),
            state: outcome.state,
            unanswered: None,
        })
    }

    /// Resolves `agent` (a host name is looked up now and kept with the unit, so the station can look it up
    /// again later), registers the address and reads it now (admin `unit add`). An address that does not answer
    /// yet stays registered (the station keeps polling it); the scan says why in `unanswered`.
    pub async fn add_unit(&mut self, agent: &Endpoint) -> Result<UnitScan, AllocateError> {
        self.step(0, &format!("resolving {agent}"));
        let address = agent.lookup().await?;
        self.step(10, &format!("registering {address}"));
        let now = crate::timefmt::now_ms();
        let (index, created) = self.store.register_address(address, agent.name(), now)?;
        self.step(20, &format!("reading {address}"));
        match read_unit(self.manager, &self.read_target(address)).await {
            Ok(snapshot) => {
                self.step(80, &format!("recording unit #{index}"));
                let outcome = self.store.sync_unit(address, &snapshot, crate::timefmt::now_ms())?;
                self.announce(&outcome);
                Ok(UnitScan {
                    unit: outcome.index,
                    unit_id: Some(snapshot.unit_id.clone()),
                    name: snapshot.name.clone(),
                    address,
                    host_name: agent.name().map(str::to_string),
                    volumes: snapshot.volumes.len(),
                    state: outcome.state,
                    unanswered: None,
                })
            }
            Err(e) => {
                if created {
                    self.store.set_state(index, UnitState::Unreachable, &format!("registered; {e}"), false, now)?;
                }
                let record = self.store.unit(index)?;
                Ok(UnitScan {
                    unit: index,
                    unit_id: record.as_ref().and_then(|r| r.unit_id.clone()),
                    name: record.as_ref().map(|r| r.name.clone()).unwrap_or_default(),
                    address,
                    host_name: agent.name().map(str::to_string),
                    volumes: 0,
                    state: record.map_or(UnitState::Unreachable, |r| r.state),
                    unanswered: Some(e.to_string()),
                })
            }
        }
    }

    /// Approves a pending unit (admin `unit approve`, task approveUnit; `given` as for
    /// [`StationStore::find_pending`]): its address is added as [`Allocator::add_unit`] adds one, so the station
    /// trusts that address from now on (the unit is bound to it), then its pending row goes. Refused, with nothing
    /// changed, when it claims the unit id of a pool unit at another IP: that would give the pool unit's identity
    /// to this address.
    pub async fn approve_pending(&mut self, given: &str) -> Result<(PendingUnit, UnitScan), AllocateError> {
        let pending = self.store.find_pending(given)?;
        if !pending.unit_id.is_empty() {
            let units = self.store.units()?;
            if let Some(real) = units.iter().find(|u| u.unit_id.as_deref() == Some(&pending.unit_id)) {
                if real.address.map(|a| a.ip()) != Some(pending.address.ip()) {
                    return Err(AllocateError::ClaimsPoolUnit {
                        pending: Box::new(pending),
                        unit: real.index,
                        unit_address: real.address,
                    });
                }
            }
        }
        self.step(0, &format!("approving pending unit #{} at {}", pending.index, pending.address));
        let scan = self.add_unit(&Endpoint::from(pending.address)).await?;
        self.store.delete_pending(pending.index)?;
        tracing::info!(pending = pending.index, address = %pending.address, unit = scan.unit, "pending unit approved");
        Ok((pending, scan))
    }

    /// Rejects a pending unit ([`reject_pending`]).
    pub fn reject_pending(&mut self, given: &str) -> Result<PendingUnit, AllocateError> {
        reject_pending(self.store, given)
    }

    /// Creates a volume of `blocks` on `unit` and reads its row back.
    async fn create_volume(
        &mut self,
        unit: &AllocationUnit,
        agent: SocketAddr,
        blocks: u32,
        name: Option<&str>,
    ) -> Result<Candidate, AllocateError> {
        let read = self.read_target(agent);
        let unit_error = |what, source| AllocateError::Unit { unit: unit.index, agent, what, source: Box::new(source) };
        let protocol = |what| AllocateError::UnitProtocol { unit: unit.index, agent, what };
        let next = self
            .manager
            .get(&read, &[Oid::from_slice(mib::DVSAN_VOLUME_NEXT_INDEX).child(0)])
            .await
            .map_err(|e| unit_error("dvsanVolumeNextIndex", e))?;
        let index = match next.first().map(|vb| &vb.value) {
            Some(Value::Gauge32(i)) if *i > 0 => *i,
            Some(Value::Integer(i)) if *i > 0 => *i as u32,
            _ => return Err(protocol("dvsanVolumeNextIndex")),
        };
        let column = |c: &[u32]| Oid::from_slice(c).child(index);
        let mut set = Vec::new();
        if let Some(name) = name {
            set.push(VarBind::new(column(mib::DVSAN_VOLUME_NAME), Value::OctetString(name.as_bytes().to_vec())));
        }
        set.push(VarBind::new(column(mib::DVSAN_VOLUME_LENGTH), Value::Gauge32(blocks)));
        set.push(VarBind::new(column(mib::DVSAN_VOLUME_ROW_STATUS), Value::Integer(mib::row_status::CREATE_AND_GO)));
        self.manager.set(&self.write_target(agent)?, set).await.map_err(|e| unit_error("the volume creation", e))?;
        let row = self
            .manager
            .get(
                &read,
                &[
                    column(mib::DVSAN_VOLUME_NAME),
                    column(mib::DVSAN_VOLUME_START_LBA),
                    column(mib::DVSAN_VOLUME_END_LBA),
                    column(mib::DVSAN_VOLUME_LENGTH),
                    column(mib::DVSAN_VOLUME_EXPORT_NAME),
                ],
            )
            .await
            .map_err(|e| unit_error("reading the new volume", e))?;
        let text = |v: &Value| match v {
            Value::OctetString(b) => String::from_utf8(b.clone()).ok(),
            _ => None,
        };
        let number = |v: &Value| match v {
            Value::Gauge32(n) => Some(*n),
            _ => None,
        };
        let parsed = match row.as_slice() {
            [n, s, e, l, x] => {
                (|| Some((text(&n.value)?, number(&s.value)?, number(&e.value)?, number(&l.value)?, text(&x.value)?)))()
            }
            _ => None,
        };
        let Some((name, start_lba, end_lba, length, export_name)) = parsed else {
            self.destroy_volume(unit.index, agent, index).await;
            return Err(protocol("reading the new volume"));
        };
        tracing::info!(unit = unit.index, volume = index, blocks, "volume created for a request");
        Ok(Candidate {
            unit: unit.clone(),
            agent,
            volume: index,
            name,
            start_lba,
            end_lba,
            length,
            export_name,
            created: true,
        })
    }

    /// Destroys the row whose RowStatus instance is `status` on the unit at `agent` (a SET to destroy(6)); `what`
    /// names the step in the error.
    async fn destroy_row(
        &self,
        unit: u32,
        agent: SocketAddr,
        status: Oid,
        what: &'static str,
    ) -> Result<(), AllocateError> {
        let set = vec![VarBind::new(status, Value::Integer(mib::row_status::DESTROY))];
        self.manager.set(&self.write_target(agent)?, set).await.map_err(|source| AllocateError::Unit {
            unit,
            agent,
            what,
            source: Box::new(source),
        })?;
        Ok(())
    }

    /// Best effort: destroys a volume this allocation created (logged when it fails; the walk shows it then).
    async fn destroy_volume(&mut self, unit: u32, agent: SocketAddr, volume: u32) {
        let status = Oid::from_slice(mib::DVSAN_VOLUME_ROW_STATUS).child(volume);
        let set = vec![VarBind::new(status, Value::Integer(mib::row_status::DESTROY))];
        let Ok(target) = self.write_target(agent) else { return };
        if let Err(e) = self.manager.set(&target, set).await {
            tracing::warn!(unit, volume, error = %e, "could not destroy the volume created for a failed request");
        }
    }

    /// Grants `host` the candidate volume and records the assignment; undoes everything on failure.
    ///
    /// The assignment is written `pending` (with the grant index the unit offers) before the grant is SET and
    /// confirmed after, so [`Allocator::reconcile`] can undo a grant whose station crashed in between.
    async fn grant_and_record(
        &mut self,
        c: Candidate,
        host: IpAddr,
        read_only: bool,
        shared: bool,
    ) -> Result<Allocation, AllocateError> {
        self.step(40, &format!("granting {host} on unit #{}", c.unit.index));
        if !c.created {
            // The pool may be a walk old: ask the unit whether someone else granted the volume since (the
            // station's own shared assignments of it are not someone else).
            let own: Vec<GrantHost> = self
                .store
                .volume_assignments(c.unit.index, c.volume)?
                .iter()
                .map(AssignmentRecord::grant_host)
                .collect();
            let foreign = match self.read_grants(c.agent).await {
                Ok(grants) => grants
                    .into_iter()
                    .filter(|g| g.volume == c.volume && !own.contains(&g.host))
                    .map(|g| g.host.to_string())
                    .collect(),
                Err(source) => {
                    return Err(AllocateError::Unit {
                        unit: c.unit.index,
                        agent: c.agent,
                        what: "the grant check",
                        source: Box::new(source),
                    })
                }
            };
            let foreign: Vec<String> = foreign;
            if !foreign.is_empty() {
                self.refresh(c.unit.index, c.agent).await;
                return Err(AllocateError::ForeignGrant { unit: c.unit.index, volume: c.volume, hosts: foreign });
            }
        }
        let grant = match self.next_access_index(c.unit.index, c.agent).await {
            Ok(grant) => grant,
            Err(e) => {
                self.undo_created(&c).await;
                return Err(e);
            }
        };
        let identity = match self.grant_identity() {
            Ok(identity) => identity,
            Err(e) => {
                self.undo_created(&c).await;
                return Err(e);
            }
        };
        let record = AssignmentRecord {
            unit: c.unit.index,
            volume: c.volume,
            host,
            read_only,
            grant,
            volume_created: c.created,
            created_ms: crate::timefmt::now_ms(),
            pending: true,
            owner: self.owner.clone(),
            identity,
            shared,
        };
        if let Err(e) = self.store.insert_assignment(&record) {
            self.undo_created(&c).await;
            return Err(e.into());
        }
        let mode = grant_mode(read_only, shared);
        if let Err(e) = self.set_grant(c.unit.index, c.agent, grant, c.volume, &record.grant_host(), mode).await {
            if let Err(e) = self.store.delete_host_assignment(c.unit.index, c.volume, host) {
                tracing::warn!(unit = c.unit.index, volume = c.volume, error = %e, "dropping a pending assignment");
            }
            self.undo_created(&c).await;
            return Err(e);
        }
        self.step(70, "recording the assignment");
        if let Err(e) = self.store.confirm_assignment(c.unit.index, c.volume, host, grant) {
            // The pending row stays; the next reconciliation undoes the rest.
            self.revoke(c.unit.index, c.agent, grant).await;
            return Err(e.into());
        }
        tracing::info!(unit = c.unit.index, volume = c.volume, host = %record.grant_host(), grant, "volume assigned");
        if c.created {
            self.step(85, &format!("reading unit #{}", c.unit.index));
            self.refresh(c.unit.index, c.agent).await;
        }
        let block_size = u64::from(c.unit.block_size.unwrap_or(0));
        let nbd_uri = nbd_uri(&c.unit, Some(c.agent), &c.export_name);
        Ok(Allocation {
            unit: c.unit.index,
            unit_id: c.unit.unit_id.clone(),
            agent: Some(c.agent),
            volume: c.volume,
            name: c.name,
            size_bytes: u64::from(c.length) * block_size,
            start_lba: c.start_lba,
            end_lba: c.end_lba,
            export_name: c.export_name,
            nbd_uri,
            host,
            read_only,
            grant,
            volume_created: c.created,
            owner: self.owner.clone(),
        })
    }

    /// The store it changes (mirrored volumes are recorded in it too).
    pub(crate) fn store_mut(&mut self) -> &mut StationStore {
        self.store
    }

    /// Who the assignments it makes are recorded for.
    pub(crate) fn owner(&self) -> Option<&str> {
        self.owner.as_deref()
    }

    /// Fails unless it holds the whole pool's lock.
    pub(crate) fn require_pool_lock(&self) -> Result<(), AllocateError> {
        self.check_pool_lock()
    }

    /// Reports progress (`percent`, what it does now).
    pub(crate) fn report(&self, percent: u32, step: &str) {
        self.step(percent, step);
    }

    /// Creates a volume of `blocks` named `name` (or as the unit names it) on `unit` and grants it to `host`
    /// read-write, exclusively; a failed grant destroys the volume again. One replica of a mirrored volume.
    pub(crate) async fn create_and_grant(
        &mut self,
        unit: &AllocationUnit,
        blocks: u32,
        name: Option<&str>,
        host: IpAddr,
    ) -> Result<Allocation, AllocateError> {
        let Some(agent) = unit.address else { return Err(AllocateError::NoAddress { unit: unit.index }) };
        let candidate = self.create_volume(unit, agent, blocks, name).await?;
        self.grant_and_record(candidate, host, false, false).await
    }

    /// Undoes [`Allocator::create_and_grant`]: revokes the grant, forgets the assignment, destroys the volume
    /// (best effort on the unit, logged when it fails).
    pub(crate) async fn undo_allocation(&mut self, a: &Allocation) {
        let Some(agent) = a.agent else { return };
        self.revoke(a.unit, agent, a.grant).await;
        if let Err(e) = self.store.delete_host_assignment(a.unit, a.volume, a.host) {
            tracing::warn!(unit = a.unit, volume = a.volume, error = %e, "forgetting an undone assignment failed");
        }
        self.destroy_volume(a.unit, agent, a.volume).await;
        self.refresh(a.unit, agent).await;
    }

    /// Destroys the candidate's volume if this allocation created it.
    async fn undo_created(&mut self, c: &Candidate) {
        if c.created {
            self.destroy_volume(c.unit.index, c.agent, c.volume).await;
        }
    }

    /// dvsanAccessNextIndex.0 of a unit.
    async fn next_access_index(&mut self, unit: u32, agent: SocketAddr) -> Result<u32, AllocateError> {
        let next = self
            .manager
            .get(&self.read_target(agent), &[Oid::from_slice(mib::DVSAN_ACCESS_NEXT_INDEX).child(0)])
            .await
            .map_err(|source| AllocateError::Unit {
                unit,
                agent,
                what: "dvsanAccessNextIndex",
                source: Box::new(source),
            })?;
        match next.first().map(|vb| &vb.value) {
            Some(Value::Gauge32(i)) if *i > 0 => Ok(*i),
            Some(Value::Integer(i)) if *i > 0 => Ok(*i as u32),
            _ => Err(AllocateError::UnitProtocol { unit, agent, what: "dvsanAccessNextIndex" }),
        }
    }

    /// Creates grant row `index` on the unit.
    async fn set_grant(
        &mut self,
        unit: u32,
        agent: SocketAddr,
        index: u32,
        volume: u32,
        host: &GrantHost,
        mode: i32,
    ) -> Result<(), AllocateError> {
        let (kind, octets) = match host.address {
            Some(IpAddr::V4(a)) => (mib::inet_address_type::IPV4, a.octets().to_vec()),
            Some(IpAddr::V6(a)) => (mib::inet_address_type::IPV6, a.octets().to_vec()),
            None => (mib::inet_address_type::UNKNOWN, Vec::new()),
        };
        let column = |col: &[u32]| Oid::from_slice(col).child(index);
        let mut set = vec![
            VarBind::new(column(mib::DVSAN_ACCESS_VOLUME_INDEX), Value::Gauge32(volume)),
            VarBind::new(column(mib::DVSAN_ACCESS_HOST_ADDRESS_TYPE), Value::Integer(kind)),
            VarBind::new(column(mib::DVSAN_ACCESS_HOST_ADDRESS), Value::OctetString(octets)),
            VarBind::new(column(mib::DVSAN_ACCESS_MODE), Value::Integer(mode)),
        ];
        if let Some(identity) = &host.identity {
            set.push(VarBind::new(column(mib::DVSAN_ACCESS_HOST_IDENTITY), Value::string(identity)));
        }
        set.push(VarBind::new(column(mib::DVSAN_ACCESS_ROW_STATUS), Value::Integer(mib::row_status::CREATE_AND_GO)));
        self.manager.set(&self.write_target(agent)?, set).await.map_err(|source| AllocateError::Unit {
            unit,
            agent,
            what: "the grant",
            source: Box::new(source),
        })?;
        Ok(())
    }

    /// Best effort: destroys grant row `grant` on the unit.
    async fn revoke(&mut self, unit: u32, agent: SocketAddr, grant: u32) {
        let status = Oid::from_slice(mib::DVSAN_ACCESS_ROW_STATUS).child(grant);
        let set = vec![VarBind::new(status, Value::Integer(mib::row_status::DESTROY))];
        let Ok(target) = self.write_target(agent) else { return };
        if let Err(e) = self.manager.set(&target, set).await {
            tracing::warn!(unit, grant, error = %e, "could not revoke a grant");
        }
    }

    /// Brings the units' access tables in line with the store, after a crash or a unit that lost grants:
    ///
    /// - a pending assignment (the station stopped between recording and confirming it) is undone: its grant
    ///   row is destroyed if the unit has it, a volume created for it is destroyed, the row is dropped;
    /// - an active assignment whose grant is missing on the unit is granted again (the store is the truth);
    /// - grants on a unit that no assignment names are left alone: an administrator may have made them with
    ///   snmpset; they are logged and counted.
    ///
    /// Units that do not answer are skipped (counted in the report) and reconciled on a later run.
    /// Needs the whole pool's lock.
    pub async fn reconcile(&mut self) -> Result<ReconcileReport, AllocateError> {
        self.check_pool_lock()?;
        let mut report = ReconcileReport::default();
        let units = self.store.allocation_units()?;
        // A mirrored volume with fewer replicas than asked for was left midway by a request that stopped (the
        // pool lock it held is free now): its replicas are undone as a failed request's would have been.
        for m in self.store.mirrors()?.into_iter().filter(|m| (m.replicas.len() as u32) < m.wanted) {
            for r in &m.replicas {
                let agent = units.iter().find(|u| u.index == r.unit).and_then(|u| u.address);
                let held = self.store.volume_assignments(r.unit, r.volume)?.into_iter().find(|a| a.host == m.host);
                if let (Some(a), Some(agent)) = (&held, agent) {
                    self.revoke(r.unit, agent, a.grant).await;
                }
                if held.is_some() {
                    self.store.delete_host_assignment(r.unit, r.volume, m.host)?;
                }
                if let Some(agent) = agent {
                    self.destroy_volume(r.unit, agent, r.volume).await;
                    self.refresh(r.unit, agent).await;
                }
            }
            self.store.delete_mirror(m.index)?;
            tracing::info!(mirror = m.index, "reconciliation: undid a mirrored volume its request left midway");
            report.mirrors_undone += 1;
        }
        // A mirrored volume none of whose replicas is assigned to its host any more (`host revoke` released them
        // one by one) is forgotten.
        for m in self.store.mirrors()? {
            let mut held = false;
            for r in &m.replicas {
                held |= self.store.volume_assignments(r.unit, r.volume)?.iter().any(|a| a.host == m.host);
            }
            if !held {
                self.store.delete_mirror(m.index)?;
                tracing::info!(mirror = m.index, "reconciliation: forgot a mirrored volume with no replica assigned");
                report.mirrors_forgotten += 1;
            }
        }
        let mut by_unit: std::collections::BTreeMap<u32, Vec<AssignmentRecord>> = Default::default();
        for a in self.store.assignments()? {
            by_unit.entry(a.unit).or_default().push(a);
        }
        for (index, list) in by_unit {
            let Some(agent) = units.iter().find(|u| u.index == index).and_then(|u| u.address) else {
                report.units_skipped += 1;
                continue;
            };
            let grants = match self.read_grants(agent).await {
                Ok(grants) => grants,
                Err(e) => {
                    tracing::warn!(unit = index, error = %e, "reconciliation: the unit did not answer");
                    report.units_skipped += 1;
                    continue;
                }
            };
            for a in &list {
                // The station's grant names the assignment's address and, when it has one, its identity.
                let held = grants.iter().find(|g| g.volume == a.volume && g.host == a.grant_host());
                if a.pending {
                    if let Some(g) = held.filter(|g| g.index == a.grant) {
                        self.revoke(index, agent, g.index).await;
                    }
                    if a.volume_created {
                        self.destroy_volume(index, agent, a.volume).await;
                    }
                    self.store.delete_host_assignment(index, a.volume, a.host)?;
                    tracing::info!(unit = index, volume = a.volume, host = %a.host, "reconciliation: undid a pending assignment");
                    report.pending_undone += 1;
                    continue;
                }
                match held {
                    Some(g) => {
                        if g.index != a.grant {
                            self.store.confirm_assignment(index, a.volume, a.host, g.index)?;
                        }
                        report.consistent += 1;
                    }
                    None => {
                        let grant = self.next_access_index(index, agent).await?;
                        let mode = grant_mode(a.read_only, a.shared);
                        self.set_grant(index, agent, grant, a.volume, &a.grant_host(), mode).await?;
                        self.store.confirm_assignment(index, a.volume, a.host, grant)?;
                        tracing::info!(unit = index, volume = a.volume, host = %a.host, grant, "reconciliation: granted again");
                        report.regranted += 1;
                    }
                }
            }
            for g in &grants {
                if !list.iter().any(|a| a.volume == g.volume && g.host == a.grant_host()) {
                    tracing::info!(unit = index, grant = g.index, volume = g.volume, host = %g.host, "reconciliation: grant not made by the station, left alone");
                    report.foreign_grants += 1;
                }
            }
        }
        Ok(report)
    }

    /// The unit's dvsanAccessTable. A grant names an address (dvsanAccessHostAddress, four or sixteen octets), a
    /// TLS certificate identity (dvsanAccessHostIdentity; the address is then empty, type unknown(0), unless the
    /// grant names both), or both. A row with neither (or an address of another length) is read as a grant to
    /// nobody the station knows: it still keeps the volume from being handed out.
    async fn read_grants(&mut self, agent: SocketAddr) -> Result<Vec<UnitGrant>, SnmpError> {
        let rows = self.manager.walk(&self.read_target(agent), &Oid::from_slice(mib::DVSAN_ACCESS_ENTRY)).await?;
        let mut grants: std::collections::BTreeMap<u32, UnitGrant> = Default::default();
        let entry_len = mib::DVSAN_ACCESS_ENTRY.len();
        for vb in rows {
            let arcs = vb.oid.as_slice();
            let (Some(&column), Some(&index)) = (arcs.get(entry_len), arcs.get(entry_len + 1)) else { continue };
            let grant = grants.entry(index).or_insert(UnitGrant {
                index,
                volume: 0,
                host: GrantHost { address: None, identity: None },
            });
            match (column, &vb.value) {
                (2, Value::Gauge32(v)) => grant.volume = *v,
                (5, Value::OctetString(b)) => {
                    grant.host.address = match b.len() {
                        4 => <[u8; 4]>::try_from(b.as_slice()).ok().map(IpAddr::from),
                        16 => <[u8; 16]>::try_from(b.as_slice()).ok().map(IpAddr::from),
                        _ => None,
                    }
                }
                (8, Value::OctetString(b)) if !b.is_empty() => {
                    grant.host.identity = Some(String::from_utf8_lossy(b).into_owned());
                }
                _ => {}
            }
        }
        Ok(grants.into_values().collect())
    }

    /// Forgets unit `unit` (admin `unit remove`): its row, media, volumes, partitions and assignments, in one
    /// transaction. Refused while any of its volumes is assigned unless `force`. With `force`, the grants of those
    /// assignments are revoked on the unit first when it is available; a revoke the unit refuses or does not answer
    /// stops the removal with nothing changed (an answering unit must not keep grants the pool forgot). A unit that
    /// is not available cannot be asked: its assignments are dropped and the result names them as not revoked.
    /// Announces dvsanStationUnitRemoved.
    pub async fn remove_unit(&mut self, unit: u32, force: bool) -> Result<RemovedUnit, AllocateError> {
        let record = self.unit_record(unit)?;
        let held: Vec<AssignmentRecord> = self.store.unit_assignments(record.index)?;
        if !held.is_empty() && !force {
            return Err(StoreError::UnitAssigned { unit: record.index, assignments: held }.into());
        }
        let answering = match (record.address, record.state) {
            (Some(agent), UnitState::Available) => Some(agent),
            _ => None,
        };
        if let Some(agent) = answering {
            for assignment in &held {
                self.step(10, &format!("revoking the grant of {} on unit #{}", assignment.host, record.index));
                let status = Oid::from_slice(mib::DVSAN_ACCESS_ROW_STATUS).child(assignment.grant);
                let destroy = VarBind::new(status, Value::Integer(mib::row_status::DESTROY));
                self.manager.set(&self.write_target(agent)?, vec![destroy]).await.map_err(|source| {
                    AllocateError::Unit {
                        unit: record.index,
                        agent,
                        what: "revoking a grant",
                        source: Box::new(source),
                    }
                })?;
            }
        }
        self.step(50, &format!("forgetting unit #{}", record.index));
        let mut removed = self.store.remove_unit(record.index, force)?;
        if answering.is_none() {
            removed.unrevoked = removed.released.clone();
        }
        tracing::info!(
            unit = record.index,
            released = removed.released.len(),
            unrevoked = removed.unrevoked.len(),
            "unit removed"
        );
        if let Some(announcer) = &self.announcer {
            announcer.announce(Change::UnitRemoved(&removed.unit));
        }
        Ok(removed)
    }

    /// Walks the unit again so the pool shows what changed (best effort: the station's polling repairs it too).
    async fn refresh(&mut self, unit: u32, agent: SocketAddr) {
        match read_unit(self.manager, &self.read_target(agent)).await {
            Ok(snapshot) => match self.store.sync_unit(agent, &snapshot, crate::timefmt::now_ms()) {
                Ok(outcome) => self.announce(&outcome),
                Err(e) => tracing::warn!(unit, error = %e, "storing the unit after an allocation"),
            },
            Err(e) => tracing::warn!(unit, error = %e, "walking the unit after an allocation"),
        }
    }

    /// Every assignment with its volume's details from the pool.
    pub fn allocations(&self) -> Result<Vec<Allocation>, AllocateError> {
        allocations(self.store)
    }
}

/// What [`Allocator::reconcile`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReconcileReport {
    pub consistent: u32,
    pub regranted: u32,
    pub pending_undone: u32,
    /// Mirrored volumes a request left short of replicas, undone.
    pub mirrors_undone: u32,
    /// Mirrored volumes none of whose replicas was assigned any more (released one by one), forgotten.
    pub mirrors_forgotten: u32,
    /// Grants on units that no assignment names (left alone).
    pub foreign_grants: u32,
    pub units_skipped: u32,
}

/// dvsanAccessMode of a grant: readOnly, readWrite, or readWriteShared for a shared read-write assignment.
fn grant_mode(read_only: bool, shared: bool) -> i32 {
    match (read_only, shared) {
        (true, _) => mib::dvsan_access_mode::READ_ONLY,
        (false, false) => mib::dvsan_access_mode::READ_WRITE,
        (false, true) => mib::dvsan_access_mode::READ_WRITE_SHARED,
    }
}

/// How often a clearVolume task reads the unit's clearing progress.
pub const CLEAR_POLL: Duration = Duration::from_millis(250);
/// How long a clearVolume task waits for a unit that stopped answering before it fails.
pub const CLEAR_SILENCE: Duration = Duration::from_secs(60);

/// What [`Allocator::revoke_host`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RevokedHost {
    pub identity: String,
    /// Whether the identity was issued and valid before.
    pub was_valid: bool,
    /// The assignments released (grant destroyed on the unit): `unit #U/volume V to HOST`.
    pub released: Vec<String>,
    /// The assignments forgotten whose grant could not be destroyed (the unit did not answer), and why.
    pub not_revoked: Vec<String>,
    /// Certificates of the identity the CA newly listed as revoked.
    pub certificates_revoked: usize,
    /// The cRLNumber of the revocation list made (None: the station has no CA).
    pub crl_number: Option<u32>,
    /// Units that took the list: `unit #U`.
    pub crl_pushed: Vec<String>,
    /// Units that did not, and why: `unit #U: REASON`.
    pub crl_not_pushed: Vec<String>,
}

/// One row of a unit's dvsanAccessTable.
#[derive(Debug, Clone, PartialEq, Eq)]
struct UnitGrant {
    index: u32,
    volume: u32,
    host: GrantHost,
}

/// `nbd://DATA_ADDRESS:PORT/EXPORT` for a volume of `unit` (the agent's IP when the data address is unspecified).
fn nbd_uri(unit: &AllocationUnit, agent: Option<SocketAddr>, export_name: &str) -> Option<String> {
    let (ip, port) = unit.data_address.zip(unit.data_port)?;
    let ip = match (ip.is_unspecified(), agent) {
        (true, Some(agent)) => agent.ip(),
        _ => ip,
    };
    Some(format!("nbd://{}/{export_name}", SocketAddr::new(ip, port)))
}

/// Rejects a pending unit (admin `unit reject`, task rejectUnit; `given` as for [`StationStore::find_pending`]):
/// it stays out of the pool and its row stays, as rejected, so it is not offered again. Changes no unit, so it
/// needs no lock (the CLI calls it without an allocator).
pub fn reject_pending(store: &mut StationStore, given: &str) -> Result<PendingUnit, AllocateError> {
    let mut pending = store.find_pending(given)?;
    store.reject_pending(pending.index)?;
    tracing::info!(pending = pending.index, address = %pending.address, "pending unit rejected");
    pending.state = "rejected".to_string();
    Ok(pending)
}

/// Every assignment in the store with its volume's details from the pool (no lock, no network).
pub fn allocations(store: &StationStore) -> Result<Vec<Allocation>, AllocateError> {
    let units = store.allocation_units()?;
    let pool = store.pool()?;
    let mut out = Vec::new();
    for a in store.assignments()?.into_iter().filter(|a| !a.pending) {
        let unit = units.iter().find(|u| u.index == a.unit);
        let volume =
            pool.iter().find(|u| u.index == a.unit).and_then(|u| u.volumes.iter().find(|v| v.index == a.volume));
        let agent = unit.and_then(|u| u.address);
        let export_name = volume.map(|v| v.export_name.clone()).unwrap_or_default();
        let nbd_uri = unit.zip(volume).and_then(|(u, _)| nbd_uri(u, agent, &export_name));
        out.push(Allocation {
            unit: a.unit,
            unit_id: unit.and_then(|u| u.unit_id.clone()),
            agent,
            volume: a.volume,
            name: volume.map(|v| v.name.clone()).unwrap_or_default(),
            size_bytes: volume.and_then(|v| v.size_bytes).unwrap_or(0),
            start_lba: volume.map_or(0, |v| v.start_lba),
            end_lba: volume.map_or(0, |v| v.end_lba),
            export_name,
            nbd_uri,
            host: a.host,
            read_only: a.read_only,
            grant: a.grant,
            volume_created: a.volume_created,
            owner: a.owner,
        });
    }
    Ok(out)
}

/// How often, at most, the station retries reconciling units that did not answer at its start.
const RECONCILE_ATTEMPTS: u32 = 60;

/// Starts the station's reconciliation in its own thread (with its own store connection, SNMP socket and
/// runtime, so the allocation lock's blocking wait never stalls the station's tasks): once at start, then again
/// every `retry_every` while some unit did not answer, at most [`RECONCILE_ATTEMPTS`] times. The thread ends by
/// itself; the station does not wait for it. Enrolled units are reconciled as their SNMPv3 users; others need
/// `write_community`.
pub fn spawn_reconciler(
    state_dir: std::path::PathBuf,
    read_community: String,
    write_community: Option<String>,
    retry_every: Duration,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("reconciler".to_string()).spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime,
            Err(e) => {
                tracing::error!(error = %e, "reconciliation: cannot start a runtime");
                return;
            }
        };
        runtime.block_on(async {
            let mut store = match StationStore::open(&state_dir) {
                Ok(store) => store,
                Err(e) => {
                    tracing::error!(error = %e, "reconciliation: cannot open the store");
                    return;
                }
            };
            let manager = match Manager::new(SocketAddr::from(([0, 0, 0, 0], 0))).await {
                Ok(manager) => manager,
                Err(e) => {
                    tracing::error!(error = %e, "reconciliation: cannot open an SNMP socket");
                    return;
                }
            };
            for attempt in 1..=RECONCILE_ATTEMPTS {
                let report = match PoolLock::acquire(&state_dir, LockScope::Pool) {
                    Ok(lock) => {
                        let mut allocator = Allocator::new(
                            &mut store,
                            &manager,
                            &read_community,
                            write_community.as_deref(),
                            Duration::from_secs(1),
                            lock,
                        );
                        allocator.reconcile().await
                    }
                    Err(e) => Err(e),
                };
                match report {
                    Ok(report) => {
                        tracing::info!(?report, attempt, "reconciled the units' access tables with the assignments");
                        if report.units_skipped == 0 {
                            return;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, attempt, "reconciliation failed; retrying"),
                }
                tokio::time::sleep(retry_every).await;
            }
        });
    })
}

/// `80G`-style text for a byte count (binary units, up to one decimal).
pub fn human_size(bytes: u64) -> String {
    match dvsan_layout::binary_scale(bytes as f64) {
        (_, "B") => format!("{bytes} B"),
        // `80G`, `1.5M`: the suffix alone, so the text is also a size the CLIs and the request table accept.
        (value, unit) => format!("{value:.1}{}", &unit[..1]).replace(".0", ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_request_size("80G").unwrap(), 80 << 30);
        assert_eq!(parse_request_size("512M").unwrap(), 512 << 20);
        assert_eq!(parse_request_size("1048576").unwrap(), 1 << 20);
        assert!(matches!(parse_request_size("0"), Err(AllocateError::ZeroSize)));
        assert!(matches!(parse_request_size("12Q"), Err(AllocateError::BadSize(_))));
        assert!(matches!(parse_request_size(""), Err(AllocateError::BadSize(_))));
        assert_eq!(human_size(80 << 30), "80G");
        assert_eq!(human_size(1536 << 10), "1.5M");
        assert_eq!(human_size(100), "100 B");
    }

    #[test]
    fn locks_exclude_what_they_must() {
        let dir = tempfile::tempdir().unwrap();
        let try_lock = |scope| PoolLock::try_acquire(dir.path(), scope).unwrap();
        // Different units at once; the same unit once.
        let unit_1 = try_lock(LockScope::Unit(1)).expect("unit 1");
        let unit_2 = try_lock(LockScope::Unit(2)).expect("unit 2 next to unit 1");
        assert!(try_lock(LockScope::Unit(1)).is_none(), "unit 1 twice");
        let shared = try_lock(LockScope::Shared).expect("shared next to units");
        // The pool waits for all of them; while it is held, nothing else gets in.
        assert!(try_lock(LockScope::Pool).is_none());
        drop((unit_1, unit_2, shared));
        let pool = try_lock(LockScope::Pool).expect("pool once the units are free");
        assert!(try_lock(LockScope::Unit(3)).is_none());
        assert!(try_lock(LockScope::Shared).is_none());
        assert!(pool.covers(3) && pool.scope() == LockScope::Pool);
        drop(pool);
        let unit_3 = try_lock(LockScope::Unit(3)).unwrap();
        assert!(unit_3.covers(3) && !unit_3.covers(4));
        assert!(LockScope::Unit(1).conflicts_with(LockScope::Unit(1)));
        assert!(!LockScope::Unit(1).conflicts_with(LockScope::Unit(2)));
        assert!(!LockScope::Shared.conflicts_with(LockScope::Unit(2)));
        assert!(LockScope::Pool.conflicts_with(LockScope::Shared));
    }

    #[test]
    fn hosts() {
        assert_eq!(parse_host("127.0.0.9").unwrap(), IpAddr::from([127, 0, 0, 9]));
        assert!(parse_host("::1").is_ok());
        for bad in ["0.0.0.0", "224.0.0.1", "host.example", "127.0.0.256", ""] {
            assert!(matches!(parse_host(bad), Err(AllocateError::BadHost(_))), "{bad}");
        }
    }
}
