//! DVSAN-STATION-MIB: the pool served read-only by the station's own SNMP agent, and the station's notifications.
//! (The writable dvsanStationRequestTable is served by `request_table`, the task table by `task_table`.)
//!
//! The tables are served from a snapshot of the store: every instance of the unit, volume, partition,
//! assignment and pending-unit tables in one sorted map, rebuilt from SQLite when it is older than `max_age` and
//! than four times its build time (snmptable and NMS walks cost no database reads per GETNEXT, and rebuilds take
//! at most a fifth of the agent's time). A row of the assignment table is there only for the requester that
//! asked for the assignment and for the station's admins ([`crate::principal`]); to anyone else it does not exist. The statistics scalars are read live from the station's counters. The notification
//! builders here give the station's own notifications (unit joined/left/unreachable/error, volume
//! added/removed, task completed) the varbinds the MIB's OBJECTS clauses name.

use crate::announce::{Announcer, Change};
use crate::counters::StationCounters;
use crate::forward::Forwarder;
use crate::model::{MirrorView, PoolUnit, VolumeRow};
use crate::principal::{Admins, Principal};
use crate::store::{PendingUnit, StationStore, UnitRecord};
use dvsan_mib as mib;
use dvsan_snmp::agent::{GetResult, MibHandler};
use dvsan_snmp::{Oid, Value, VarBind};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::ops::Bound;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// The instance `node.index...`.
fn instance(node: &[u32], index: &[u32]) -> Oid {
    Oid::from_slice(node).join(index)
}

/// An RFC 2579 DateAndTime in UTC (11 octets, explicit +00:00) for Unix milliseconds.
pub fn date_and_time(ms: i64) -> Vec<u8> {
    dvsan_snmp::DateAndTime::from_unix_millis(ms).encode()
}

/// InetAddressType and InetAddress values for an address.
fn inet(ip: Option<IpAddr>) -> (Value, Value) {
    match ip {
        Some(IpAddr::V4(v4)) => {
            (Value::Integer(mib::inet_address_type::IPV4), Value::OctetString(v4.octets().to_vec()))
        }
        Some(IpAddr::V6(v6)) => {
            (Value::Integer(mib::inet_address_type::IPV6), Value::OctetString(v6.octets().to_vec()))
        }
        None => (Value::Integer(mib::inet_address_type::UNKNOWN), Value::OctetString(Vec::new())),
    }
}

fn truncated(text: &str, max: usize) -> Value {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Value::string(&text[..end])
}

/// Every table instance for `pool`.
pub fn table_instances(pool: &[PoolUnit], last_seen_ms: &BTreeMap<u32, i64>) -> BTreeMap<Oid, Value> {
    let mut map = BTreeMap::new();
    for unit in pool {
        let u = [unit.index];
        let address: Option<SocketAddr> = unit.address.as_deref().and_then(|a| a.parse().ok());
        let (address_type, address_value) = inet(address.map(|a| a.ip()));
        let mut put = |node: &[u32], value: Value| {
            map.insert(instance(node, &u), value);
        };
        put(mib::DVSAN_STATION_UNIT_ID, Value::string(unit.unit_id.as_deref().unwrap_or("")));
        put(mib::DVSAN_STATION_UNIT_NAME, truncated(&unit.name, 64));
        put(mib::DVSAN_STATION_UNIT_STATE, Value::Integer(unit.state.mib_value()));
        put(mib::DVSAN_STATION_UNIT_REASON, truncated(&unit.reason, 255));
        put(mib::DVSAN_STATION_UNIT_ADDRESS_TYPE, address_type);
        put(mib::DVSAN_STATION_UNIT_ADDRESS, address_value);
        put(mib::DVSAN_STATION_UNIT_PORT, Value::Gauge32(address.map_or(0, |a| u32::from(a.port()))));
        put(mib::DVSAN_STATION_UNIT_BLOCK_SIZE, Value::Gauge32(unit.block_size.unwrap_or(0)));
        put(mib::DVSAN_STATION_UNIT_CAPACITY_BLOCKS, Value::Gauge32(unit.capacity_blocks.unwrap_or(0)));
        put(mib::DVSAN_STATION_UNIT_FREE_BLOCKS, Value::Gauge32(unit.free_blocks.unwrap_or(0)));
        put(mib::DVSAN_STATION_UNIT_VOLUMES, Value::Gauge32(unit.volumes.len() as u32));
        put(
            mib::DVSAN_STATION_UNIT_LAST_SEEN,
            Value::OctetString(last_seen_ms.get(&unit.index).map(|&ms| date_and_time(ms)).unwrap_or_default()),
        );
        put(mib::DVSAN_STATION_UNIT_CHANGE_COUNTER, Value::Gauge32(unit.change_counter.unwrap_or(0)));
        put(mib::DVSAN_STATION_UNIT_HOST_NAME, truncated(&unit.host_name, 255));
        put(mib::DVSAN_STATION_UNIT_ZONE, truncated(&unit.zone, 32));
        put(mib::DVSAN_STATION_UNIT_SPARE, truth(unit.spare));
        for volume in &unit.volumes {
            let v = [unit.index, volume.index];
            let mut put = |node: &[u32], value: Value| {
                map.insert(instance(node, &v), value);
            };
            put(mib::DVSAN_STATION_VOLUME_NAME, truncated(&volume.name, 64));
            put(mib::DVSAN_STATION_VOLUME_START_LBA, Value::Gauge32(volume.start_lba));
            put(mib::DVSAN_STATION_VOLUME_END_LBA, Value::Gauge32(volume.end_lba));
            put(mib::DVSAN_STATION_VOLUME_LENGTH, Value::Gauge32(volume.length));
            put(mib::DVSAN_STATION_VOLUME_EXPORT_NAME, truncated(&volume.export_name, 255));
            put(mib::DVSAN_STATION_VOLUME_STATE, Value::Integer(volume.state.mib_value()));
            for partition in &volume.partitions {
                let p = [unit.index, volume.index, partition.index];
                let mut put = |node: &[u32], value: Value| {
                    map.insert(instance(node, &p), value);
                };
                put(mib::DVSAN_STATION_PARTITION_START_LBA, Value::Gauge32(partition.start_lba));
                put(mib::DVSAN_STATION_PARTITION_END_LBA, Value::Gauge32(partition.end_lba));
                put(mib::DVSAN_STATION_PARTITION_LENGTH, Value::Gauge32(partition.length));
                put(mib::DVSAN_STATION_PARTITION_EXPORT_NAME, truncated(&partition.export_name, 255));
                put(mib::DVSAN_STATION_PARTITION_STATE, Value::Integer(partition.state.mib_value()));
            }
        }
    }
    map
}

/// A TruthValue.
fn truth(value: bool) -> Value {
    Value::Integer(if value { mib::truth_value::TRUE } else { mib::truth_value::FALSE })
}

/// Every instance of dvsanStationReplicaTable for `mirrors` (index: mirror, replica).
pub fn replica_instances(mirrors: &[MirrorView]) -> BTreeMap<Oid, Value> {
    let mut map = BTreeMap::new();
    for m in mirrors {
        let (host_type, host) = inet(Some(m.host));
        for r in &m.replicas {
            let index = [m.index, r.replica];
            let mut put = |node: &[u32], value: Value| {
                map.insert(instance(node, &index), value);
            };
            put(mib::DVSAN_STATION_REPLICA_MIRROR_NAME, truncated(&m.name, 64));
            put(mib::DVSAN_STATION_REPLICA_HOST_TYPE, host_type.clone());
            put(mib::DVSAN_STATION_REPLICA_HOST, host.clone());
            put(mib::DVSAN_STATION_REPLICA_COUNT, Value::Gauge32(m.replicas.len() as u32));
            let kib = u32::try_from(m.size_bytes / 1024).unwrap_or(u32::MAX);
            put(mib::DVSAN_STATION_REPLICA_SIZE_KI_B, Value::Gauge32(kib));
            put(mib::DVSAN_STATION_REPLICA_UNIT_INDEX, Value::Gauge32(r.unit));
            put(mib::DVSAN_STATION_REPLICA_VOLUME_INDEX, Value::Gauge32(r.volume));
            put(mib::DVSAN_STATION_REPLICA_ZONE, truncated(&r.zone, 32));
            put(mib::DVSAN_STATION_REPLICA_NBD_URI, truncated(r.nbd_uri.as_deref().unwrap_or(""), 255));
            put(mib::DVSAN_STATION_REPLICA_UNIT_STATE, Value::Integer(r.unit_state.mib_value()));
        }
    }
    map
}

/// dvsanStationPendingState for a stored state.
fn pending_state(state: &str) -> Value {
    Value::Integer(if state == "rejected" {
        mib::dvsan_station_pending_state::REJECTED
    } else {
        mib::dvsan_station_pending_state::PENDING
    })
}

/// Every instance of dvsanStationPendingTable for `pending` (pending and rejected units).
pub fn pending_instances(pending: &[PendingUnit]) -> BTreeMap<Oid, Value> {
    let mut map = BTreeMap::new();
    for p in pending {
        let index = [p.index];
        let (address_type, address) = inet(Some(p.address.ip()));
        let mut put = |node: &[u32], value: Value| {
            map.insert(instance(node, &index), value);
        };
        put(mib::DVSAN_STATION_PENDING_UNIT_ID, truncated(&p.unit_id, 36));
        put(mib::DVSAN_STATION_PENDING_UNIT_NAME, truncated(&p.unit_name, 64));
        put(mib::DVSAN_STATION_PENDING_ADDRESS_TYPE, address_type);
        put(mib::DVSAN_STATION_PENDING_ADDRESS, address);
        put(mib::DVSAN_STATION_PENDING_PORT, Value::Gauge32(u32::from(p.address.port())));
        put(mib::DVSAN_STATION_PENDING_SYS_NAME, truncated(&p.sys_name, 255));
        put(mib::DVSAN_STATION_PENDING_SYS_DESCR, truncated(&p.sys_descr, 255));
        put(mib::DVSAN_STATION_PENDING_FIRST_SEEN, Value::OctetString(date_and_time(p.first_seen_ms)));
        put(mib::DVSAN_STATION_PENDING_LAST_SEEN, Value::OctetString(date_and_time(p.last_seen_ms)));
        put(mib::DVSAN_STATION_PENDING_NOTIFICATIONS, Value::Counter32(p.notifications as u32));
        put(mib::DVSAN_STATION_PENDING_STATE, pending_state(&p.state));
    }
    map
}

/// The index of `a`'s row in dvsanStationAssignmentTable: unit, volume, and the host as an InetAddressType and a
/// length-prefixed InetAddress (a shared volume has one row per host).
pub fn assignment_index(a: &crate::allocate::Allocation) -> Vec<u32> {
    let (kind, octets) = match a.host {
        IpAddr::V4(v4) => (mib::inet_address_type::IPV4, v4.octets().to_vec()),
        IpAddr::V6(v6) => (mib::inet_address_type::IPV6, v6.octets().to_vec()),
    };
    let mut index = vec![a.unit, a.volume, kind as u32, octets.len() as u32];
    index.extend(octets.iter().map(|&b| u32::from(b)));
    index
}

/// Every instance of dvsanStationAssignmentTable for `assignments`.
pub fn assignment_instances(assignments: &[crate::allocate::Allocation]) -> BTreeMap<Oid, Value> {
    let mut map = BTreeMap::new();
    for a in assignments {
        let index = assignment_index(a);
        let (host_type, host) = inet(Some(a.host));
        let mode = if a.read_only {
            mib::dvsan_station_assign_mode::READ_ONLY
        } else {
            mib::dvsan_station_assign_mode::READ_WRITE
        };
        map.insert(instance(mib::DVSAN_STATION_ASSIGN_HOST_TYPE, &index), host_type);
        map.insert(instance(mib::DVSAN_STATION_ASSIGN_HOST, &index), host);
        map.insert(instance(mib::DVSAN_STATION_ASSIGN_MODE, &index), Value::Integer(mode));
        map.insert(
            instance(mib::DVSAN_STATION_ASSIGN_NBD_URI, &index),
            truncated(a.nbd_uri.as_deref().unwrap_or(""), 255),
        );
        map.insert(instance(mib::DVSAN_STATION_ASSIGN_VOLUME_NAME, &index), truncated(&a.name, 64));
    }
    map
}

/// Who made each assignment (`Principal::stored`), by its assignment-table index ([`assignment_index`]), and
/// each mirrored volume, by dvsanStationMirrorIndex.
#[derive(Default)]
struct Owners {
    assignments: BTreeMap<Vec<u32>, Option<String>>,
    mirrors: BTreeMap<u32, Option<String>>,
}

struct Snapshot {
    taken: Instant,
    /// How long reading the store and building the instances took.
    built_in: Duration,
    instances: Arc<BTreeMap<Oid, Value>>,
    units: u32,
    /// Rows of the pending table in state pending (dvsanStationPendingUnits).
    pending: u32,
    owners: Arc<Owners>,
    /// The store's `PRAGMA data_version` when the snapshot was taken: while it is unchanged, no other connection
    /// committed, and the snapshot is still the store's content however old it is.
    data_version: Option<i64>,
}

/// The unit, volume and partition tables, served from a periodically refreshed snapshot of the store.
pub struct PoolTables {
    store: Mutex<StationStore>,
    snapshot: RwLock<Option<Snapshot>>,
    max_age: Duration,
    /// Who sees every assignment.
    admins: Admins,
}

impl PoolTables {
    /// Serves from `store` (a connection of its own), re-reading it when the snapshot is older than `max_age`.
    pub fn new(store: StationStore, max_age: Duration) -> PoolTables {
        PoolTables { store: Mutex::new(store), snapshot: RwLock::new(None), max_age, admins: Admins::default() }
    }

    /// Shows every assignment to `admins` (others see only their own).
    pub fn with_admins(mut self, admins: Admins) -> PoolTables {
        self.admins = admins;
        self
    }

    /// Whether the assignment-table instance `oid` is hidden from `who` (`None`: outside SNMP processing).
    fn hidden(&self, oid: &Oid, owners: &Owners, who: Option<&Principal>) -> bool {
        let Some(who) = who else { return false };
        let may = |owner: Option<&Option<String>>| {
            owner.is_some_and(|owner| self.admins.may_manage(Some(who), owner.as_deref()))
        };
        if let Some([_, index @ ..]) = oid.suffix_after(mib::DVSAN_STATION_ASSIGNMENT_ENTRY) {
            return !may(owners.assignments.get(index));
        }
        match oid.suffix_after(mib::DVSAN_STATION_REPLICA_ENTRY) {
            Some([_, mirror, ..]) => !may(owners.mirrors.get(mirror)),
            Some(_) => true,
            None => false,
        }
    }

    /// Whether snapshot `s` is young enough to serve without asking the store. It lives at least four times as long
    /// as it took to build: at 10,000 units (550,000 instances) a build takes long enough that with `max_age` alone
    /// a walk of the tables would spend most of its time waiting for rebuilds, as polls move the store all the time.
    fn fresh(&self, s: &Snapshot) -> bool {
        s.taken.elapsed() < self.max_age.max(s.built_in * 4)
    }

    fn current(&self) -> (Arc<BTreeMap<Oid, Value>>, u32, u32, Arc<Owners>) {
        if let Some(s) = self.snapshot.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
            if self.fresh(s) {
                return (Arc::clone(&s.instances), s.units, s.pending, Arc::clone(&s.owners));
            }
        }
        let store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        let data_version = store.data_version().ok();
        // Another thread may have refreshed while this one waited for the store; or nothing changed since.
        if let Some(s) = self.snapshot.write().unwrap_or_else(|e| e.into_inner()).as_mut() {
            if self.fresh(s) || (data_version.is_some() && s.data_version == data_version) {
                s.taken = Instant::now();
                return (Arc::clone(&s.instances), s.units, s.pending, Arc::clone(&s.owners));
            }
        }
        let building = Instant::now();
        let read = store.pool().and_then(|pool| {
            let seen = store.units()?.into_iter().filter_map(|u| Some((u.index, u.last_seen_ms?))).collect();
            Ok((pool, seen))
        });
        let assignments = crate::allocate::allocations(&store).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "reading the assignments for the station MIB failed");
            Vec::new()
        });
        let pending_units = store.pending_units(true).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "reading the pending units for the station MIB failed");
            Vec::new()
        });
        let pending = pending_units.iter().filter(|p| p.state == "pending").count() as u32;
        let mirrors = store.mirrors().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "reading the mirrored volumes for the station MIB failed");
            Vec::new()
        });
        let owners: Arc<Owners> = Arc::new(Owners {
            assignments: assignments.iter().map(|a| (assignment_index(a), a.owner.clone())).collect(),
            mirrors: mirrors.iter().map(|m| (m.index, m.owner.clone())).collect(),
        });
        let (instances, units) = match read {
            Ok((pool, seen)) => {
                let mut instances = table_instances(&pool, &seen);
                instances.extend(assignment_instances(&assignments));
                instances.extend(replica_instances(&crate::model::mirror_views(&mirrors, &pool, &[])));
                instances.extend(pending_instances(&pending_units));
                (Arc::new(instances), pool.len() as u32)
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading the pool for the station MIB failed");
                (Arc::new(BTreeMap::new()), 0)
            }
        };
        *self.snapshot.write().unwrap_or_else(|e| e.into_inner()) = Some(Snapshot {
            taken: Instant::now(),
            built_in: building.elapsed(),
            instances: Arc::clone(&instances),
            units,
            pending,
            owners: Arc::clone(&owners),
            data_version,
        });
        (instances, units, pending, owners)
    }

    /// Drops the snapshot, so the next read sees the store as it is now (after an allocation or release).
    pub fn invalidate(&self) {
        *self.snapshot.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Units in the snapshot (dvsanStationUnits).
    pub fn unit_count(&self) -> u32 {
        self.current().1
    }

    /// Units waiting for approval in the snapshot (dvsanStationPendingUnits).
    pub fn pending_count(&self) -> u32 {
        self.current().2
    }
}

impl MibHandler for PoolTables {
    fn get(&self, oid: &Oid) -> GetResult {
        let (instances, _, _, owners) = self.current();
        match instances.get(oid) {
            Some(_) if self.hidden(oid, &owners, Principal::current().as_ref()) => GetResult::NoSuchInstance,
            Some(value) => GetResult::Value(value.clone()),
            None => {
                // A known column with a missing row is noSuchInstance; anything else noSuchObject.
                let known_column = mib::ALL.iter().any(|(_, node)| {
                    oid.as_slice().len() > node.len()
                        && oid.starts_with(node)
                        && instances.range(Oid::from_slice(node)..).next().is_some_and(|(k, _)| k.starts_with(node))
                });
                if known_column {
                    GetResult::NoSuchInstance
                } else {
                    GetResult::NoSuchObject
                }
            }
        }
    }

    fn get_next(&self, oid: &Oid) -> Option<VarBind> {
        let (instances, _, _, owners) = self.current();
        let who = Principal::current();
        instances
            .range((Bound::Excluded(oid.clone()), Bound::Unbounded))
            .find(|(k, _)| !self.hidden(k, &owners, who.as_ref()))
            .map(|(k, v)| VarBind::new(k.clone(), v.clone()))
    }
}

/// The scalars of dvsanStationStats (1..=10).
const STATS_ARCS: u32 = 10;

/// dvsanStationStats: live counters.
pub struct StatsScalars {
    counters: Arc<StationCounters>,
    tables: Arc<PoolTables>,
}

impl StatsScalars {
    pub fn new(counters: Arc<StationCounters>, tables: Arc<PoolTables>) -> StatsScalars {
        StatsScalars { counters, tables }
    }

    fn value(&self, arc: u32) -> Option<Value> {
        let c = &self.counters;
        let counter = |a: &AtomicU64| Value::Counter32(StationCounters::get(a) as u32);
        Some(match arc {
            1 => Value::Gauge32(self.tables.unit_count()),
            2 => counter(&c.stored),
            3 => counter(&c.overflow_drops),
            4 => counter(&c.bad_community),
            5 => counter(&c.parse_errors),
            6 => counter(&c.forwarded),
            7 => counter(&c.forward_failures),
            8 => counter(&c.identity_refusals),
            9 => Value::Gauge32(self.tables.pending_count()),
            10 => counter(&c.usm_refusals),
            _ => return None,
        })
    }
}

impl MibHandler for StatsScalars {
    fn get(&self, oid: &Oid) -> GetResult {
        match oid.suffix_after(mib::DVSAN_STATION_STATS) {
            Some([arc, 0]) => self.value(*arc).map_or(GetResult::NoSuchObject, GetResult::Value),
            Some([arc, ..]) if self.value(*arc).is_some() => GetResult::NoSuchInstance,
            _ => GetResult::NoSuchObject,
        }
    }

    fn get_next(&self, oid: &Oid) -> Option<VarBind> {
        (1..=STATS_ARCS)
            .map(|arc| instance(mib::DVSAN_STATION_STATS, &[arc, 0]))
            .find(|candidate| candidate > oid)
            .and_then(|candidate| {
                let arc = candidate.as_slice()[mib::DVSAN_STATION_STATS.len()];
                self.value(arc).map(|value| VarBind::new(candidate, value))
            })
    }
}

/// Registers the station MIB's handlers on an agent builder.
pub fn register(
    builder: dvsan_snmp::agent::AgentBuilder,
    tables: Arc<PoolTables>,
    counters: Arc<StationCounters>,
) -> dvsan_snmp::agent::AgentBuilder {
    let stats = Arc::new(StatsScalars::new(counters, Arc::clone(&tables)));
    builder
        .handler(Oid::from_slice(mib::DVSAN_STATION_STATS), stats)
        .handler(Oid::from_slice(mib::DVSAN_STATION_UNIT_TABLE), tables.clone())
        .handler(Oid::from_slice(mib::DVSAN_STATION_VOLUME_TABLE), tables.clone())
        .handler(Oid::from_slice(mib::DVSAN_STATION_PARTITION_TABLE), tables.clone())
        .handler(Oid::from_slice(mib::DVSAN_STATION_ASSIGNMENT_TABLE), tables.clone())
        .handler(Oid::from_slice(mib::DVSAN_STATION_REPLICA_TABLE), tables.clone())
        .handler(Oid::from_slice(mib::DVSAN_STATION_PENDING_TABLE), tables)
}

// ----- the station's own notifications -----

fn unit_id_vb(unit: &UnitRecord) -> VarBind {
    VarBind::new(
        instance(mib::DVSAN_STATION_UNIT_ID, &[unit.index]),
        Value::string(unit.unit_id.as_deref().unwrap_or("")),
    )
}

/// dvsanStationUnitJoined.
pub fn unit_joined(unit: &UnitRecord) -> (Oid, Vec<VarBind>) {
    let (kind, address) = inet(unit.address.map(|a| a.ip()));
    (
        Oid::from_slice(mib::DVSAN_STATION_UNIT_JOINED),
        vec![
            unit_id_vb(unit),
            VarBind::new(instance(mib::DVSAN_STATION_UNIT_NAME, &[unit.index]), truncated(&unit.name, 64)),
            VarBind::new(instance(mib::DVSAN_STATION_UNIT_ADDRESS_TYPE, &[unit.index]), kind),
            VarBind::new(instance(mib::DVSAN_STATION_UNIT_ADDRESS, &[unit.index]), address),
        ],
    )
}

/// dvsanStationIdentityRefused: `real` is the unit whose identity was claimed (its row is not changed), `source`
/// where the claim came from.
pub fn identity_refused(real: Option<&UnitRecord>, unit_id: &str, source: IpAddr, reason: &str) -> (Oid, Vec<VarBind>) {
    let index = real.map_or(0, |u| u.index);
    let (kind, address) = inet(real.and_then(|u| u.address).map(|a| a.ip()));
    let (refused_kind, refused) = inet(Some(source));
    (
        Oid::from_slice(mib::DVSAN_STATION_IDENTITY_REFUSED),
        vec![
            VarBind::new(instance(mib::DVSAN_STATION_UNIT_ID, &[index]), truncated(unit_id, 36)),
            VarBind::new(instance(mib::DVSAN_STATION_UNIT_ADDRESS_TYPE, &[index]), kind),
            VarBind::new(instance(mib::DVSAN_STATION_UNIT_ADDRESS, &[index]), address),
            VarBind::new(instance(mib::DVSAN_STATION_REFUSED_ADDRESS_TYPE, &[0]), refused_kind),
            VarBind::new(instance(mib::DVSAN_STATION_REFUSED_ADDRESS, &[0]), refused),
            VarBind::new(instance(mib::DVSAN_STATION_REFUSED_REASON, &[0]), truncated(reason, 255)),
        ],
    )
}

/// dvsanStationUnitPending: a new row of dvsanStationPendingTable.
pub fn unit_pending(pending: &PendingUnit) -> (Oid, Vec<VarBind>) {
    let index = [pending.index];
    let (kind, address) = inet(Some(pending.address.ip()));
    (
        Oid::from_slice(mib::DVSAN_STATION_UNIT_PENDING),
        vec![
            VarBind::new(instance(mib::DVSAN_STATION_PENDING_UNIT_ID, &index), truncated(&pending.unit_id, 36)),
            VarBind::new(instance(mib::DVSAN_STATION_PENDING_ADDRESS_TYPE, &index), kind),
            VarBind::new(instance(mib::DVSAN_STATION_PENDING_ADDRESS, &index), address),
        ],
    )
}

/// dvsanStationUnitRemoved: `unit` is the row as it was before it was deleted.
pub fn unit_removed(unit: &UnitRecord) -> (Oid, Vec<VarBind>) {
    (
        Oid::from_slice(mib::DVSAN_STATION_UNIT_REMOVED),
        vec![
            unit_id_vb(unit),
            VarBind::new(instance(mib::DVSAN_STATION_UNIT_NAME, &[unit.index]), truncated(&unit.name, 64)),
        ],
    )
}

/// dvsanStationUnitLeft.
pub fn unit_left(unit: &UnitRecord) -> (Oid, Vec<VarBind>) {
    (
        Oid::from_slice(mib::DVSAN_STATION_UNIT_LEFT),
        vec![
            unit_id_vb(unit),
            VarBind::new(
                instance(mib::DVSAN_STATION_UNIT_STATE, &[unit.index]),
                Value::Integer(unit.state.mib_value()),
            ),
            VarBind::new(instance(mib::DVSAN_STATION_UNIT_REASON, &[unit.index]), truncated(&unit.reason, 255)),
        ],
    )
}

/// dvsanStationUnitUnreachable.
pub fn unit_unreachable(unit: &UnitRecord) -> (Oid, Vec<VarBind>) {
    (
        Oid::from_slice(mib::DVSAN_STATION_UNIT_UNREACHABLE),
        vec![
            unit_id_vb(unit),
            VarBind::new(
                instance(mib::DVSAN_STATION_UNIT_LAST_SEEN, &[unit.index]),
                Value::OctetString(unit.last_seen_ms.map(date_and_time).unwrap_or_default()),
            ),
        ],
    )
}

/// dvsanStationUnitError.
pub fn unit_error(unit: &UnitRecord) -> (Oid, Vec<VarBind>) {
    (
        Oid::from_slice(mib::DVSAN_STATION_UNIT_ERROR),
        vec![
            unit_id_vb(unit),
            VarBind::new(instance(mib::DVSAN_STATION_UNIT_REASON, &[unit.index]), truncated(&unit.reason, 255)),
        ],
    )
}

/// What a store sync of `unit` changed, as station notifications: dvsanStationUnitJoined or
/// dvsanStationUnitLeft for a state change to or from available, then dvsanStationVolumeAdded and
/// dvsanStationVolumeRemoved per volume. The coordinator's walks and the allocator's rescans both use it, so a
/// change is announced once, by whichever recorded it first.
pub fn sync_notifications(unit: &UnitRecord, outcome: &crate::store::SyncOutcome) -> Vec<(Oid, Vec<VarBind>)> {
    use crate::model::UnitState;
    let mut out = Vec::new();
    if outcome.state == UnitState::Available && outcome.previous_state != Some(UnitState::Available) {
        out.push(unit_joined(unit));
    }
    if outcome.state == UnitState::Unavailable && outcome.previous_state == Some(UnitState::Available) {
        out.push(unit_left(unit));
    }
    out.extend(outcome.volumes_added.iter().map(|v| volume_changed(unit, v, true)));
    out.extend(outcome.volumes_removed.iter().map(|v| volume_changed(unit, v, false)));
    out
}

/// dvsanStationVolumeAdded (`added`) or dvsanStationVolumeRemoved.
pub fn volume_changed(unit: &UnitRecord, volume: &VolumeRow, added: bool) -> (Oid, Vec<VarBind>) {
    let trap = if added { mib::DVSAN_STATION_VOLUME_ADDED } else { mib::DVSAN_STATION_VOLUME_REMOVED };
    let v = [unit.index, volume.index];
    (
        Oid::from_slice(trap),
        vec![
            unit_id_vb(unit),
            VarBind::new(instance(mib::DVSAN_STATION_VOLUME_NAME, &v), truncated(&volume.name, 64)),
            VarBind::new(instance(mib::DVSAN_STATION_VOLUME_START_LBA, &v), Value::Gauge32(volume.start_lba)),
            VarBind::new(instance(mib::DVSAN_STATION_VOLUME_END_LBA, &v), Value::Gauge32(volume.end_lba)),
        ],
    )
}

/// An announcer that sends the station's notification for each change through `forwarder`.
pub fn announcer(forwarder: Forwarder) -> Announcer {
    Announcer::new(move |change| match change {
        Change::Synced { unit, outcome } => {
            for (oid, varbinds) in sync_notifications(unit, outcome) {
                forwarder.send_station(oid, varbinds);
            }
        }
        Change::UnitRemoved(unit) => {
            let (oid, varbinds) = unit_removed(unit);
            forwarder.send_station(oid, varbinds);
        }
        Change::TaskEnded(task) => {
            let (oid, varbinds) = task_completed(task);
            forwarder.send_station(oid, varbinds);
        }
    })
}

/// dvsanStationTaskCompleted: the ended task's operation, state and result (instances of its row).
pub fn task_completed(task: &crate::task_model::Task) -> (Oid, Vec<VarBind>) {
    let t = [task.index];
    (
        Oid::from_slice(mib::DVSAN_STATION_TASK_COMPLETED),
        vec![
            VarBind::new(
                instance(mib::DVSAN_STATION_TASK_OPERATION, &t),
                Value::Integer(task.arguments.operation.mib_value()),
            ),
            VarBind::new(instance(mib::DVSAN_STATION_TASK_STATE, &t), Value::Integer(task.state.mib_value())),
            VarBind::new(instance(mib::DVSAN_STATION_TASK_RESULT, &t), truncated(&task.result, 255)),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_and_time_is_utc_calendar_time() {
        assert_eq!(date_and_time(0), [0x07, 0xb2, 1, 1, 0, 0, 0, 0, b'+', 0, 0]);
        // 2026-11-22T10:20:30.456Z
        let ms = 1_795_342_830_456;
        assert_eq!(crate::timefmt::format_ms(ms), "2026-11-22T10:20:30.456Z");
        assert_eq!(date_and_time(ms), [0x07, 0xea, 11, 22, 10, 20, 30, 4, b'+', 0, 0]);
        // 2024-02-29 (leap day)
        assert_eq!(&date_and_time(1_709_164_800_000)[..4], [0x07, 0xe8, 2, 29]);
    }
}
