//! dvsanStationRequestTable: hosts ask the station for storage (and give it back) with plain SNMP SETs.
//!
//! A createAndGo SET only checks the types and lengths of the row's columns, stores the row as `pending` and
//! queues it; it answers at once. A worker thread (its own store connection, SNMP socket and runtime, so a slow
//! unit never stalls the agent) serves the queue one request at a time through [`crate::allocate::Allocator`]
//! and fills in the status, error and assignment columns (a release holds its unit's lock, an allocation the
//! whole pool's; see [`crate::allocate`]). Bad values (a size that is not a size, an address
//! that is not one) are not SET errors but `failed` rows with the reason, so plain snmpset users read why.
//! Rows live in memory only (at most [`MAX_ROWS`]); destroy removes a row, not its assignment.
//!
//! Each row records its requester ([`Principal::current`] when it was created). A row is visible only to its
//! requester and the station's admins ([`Admins`]): to anyone else it does not exist (GET noSuchInstance, walks
//! skip it, destroy is a no-op; only createAndGo on its index is refused, inconsistentValue, as the index is
//! taken). An allocation records the requester as the owner of the assignment; a release is served only for the
//! assignment's owner or an admin, and fails for anyone else exactly as for a volume nobody holds.

use crate::allocate::{parse_request_size, AllocateError, Allocation, Allocator, LockScope, PoolLock, SizeRequest};
use crate::principal::{Admins, Principal};
use crate::set_values::{integer, octets, text, truncate, unsigned};
use crate::store::StationStore;
use dvsan_mib as mib;
use dvsan_snmp::agent::{FnPreparedSet, PreparedSet, SetFailure, SetItem, Table, UndoFailed};
use dvsan_snmp::{ErrorStatus, Manager, Value};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Most rows the table holds; createAndGo beyond is resourceUnavailable (destroy old rows first).
pub const MAX_ROWS: usize = 1000;
/// Requests queued for the worker at most; more are failed at once ("busy").
const QUEUE: usize = 256;

const ACTION: u32 = 2;
const SIZE: u32 = 3;
const HOST_TYPE: u32 = 4;
const HOST: u32 = 5;
const NAME: u32 = 6;
const UNIT: u32 = 7;
const VOLUME: u32 = 8;
const STATUS: u32 = 9;
const ERROR: u32 = 10;
const UNIT_TYPE: u32 = 11;
const UNIT_ADDRESS: u32 = 12;
const VOLUME_NAME: u32 = 13;
const START: u32 = 14;
const END: u32 = 15;
const LENGTH: u32 = 16;
const NBD_URI: u32 = 17;
const ROW_STATUS: u32 = 18;
const VOLUME_SOURCE: u32 = 19;
const SHARED: u32 = 20;
const REPLICAS: u32 = 21;
const MIRROR: u32 = 22;

use mib::dvsan_station_request_action as action;
use mib::dvsan_station_request_status as status;
use mib::dvsan_station_request_volume_source as source;

/// One request and, once served, its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RequestRow {
    action: i32,
    size: String,
    host_type: i32,
    host: Vec<u8>,
    name: String,
    unit: u32,
    volume: u32,
    status: i32,
    error: String,
    unit_address: Option<IpAddr>,
    volume_name: String,
    start_lba: u32,
    end_lba: u32,
    length: u32,
    nbd_uri: String,
    /// dvsanStationRequestVolumeSource: an existing volume chosen, or one created for the request.
    volume_source: i32,
    /// dvsanStationRequestShared: a shared read-write assignment (readWriteShared grant).
    shared: bool,
    /// dvsanStationRequestReplicas: 2 or 3 for a mirrored volume.
    replicas: u32,
    /// dvsanStationRequestMirrorIndex: the mirrored volume made, 0 for none.
    mirror: u32,
    /// Who created the row (`Principal::stored`); `None` outside SNMP request processing.
    requester: Option<String>,
}

impl RequestRow {
    fn new() -> RequestRow {
        RequestRow {
            action: action::ALLOCATE,
            size: String::new(),
            host_type: mib::inet_address_type::UNKNOWN,
            host: Vec::new(),
            name: String::new(),
            unit: 0,
            volume: 0,
            status: status::PENDING,
            error: String::new(),
            unit_address: None,
            volume_name: String::new(),
            start_lba: 0,
            end_lba: 0,
            length: 0,
            nbd_uri: String::new(),
            shared: false,
            replicas: 0,
            mirror: 0,
            volume_source: source::NONE,
            requester: Principal::current().map(|p| p.stored()),
        }
    }

    fn host_address(&self) -> Result<IpAddr, String> {
        let ip =
            match (self.host_type, self.host.as_slice()) {
                (t, &[a, b, c, d]) if t == mib::inet_address_type::IPV4 => IpAddr::from([a, b, c, d]),
                (t, octets) if t == mib::inet_address_type::IPV6 && octets.len() == 16 => {
                    let mut a = [0u8; 16];
                    a.copy_from_slice(octets);
                    IpAddr::from(a)
                }
                _ => return Err(
                    "the host address is not an IPv4 or IPv6 address (type ipv4(1) with 4 octets or ipv6(2) with 16)"
                        .into(),
                ),
            };
        crate::allocate::parse_host(&ip.to_string()).map_err(|e| e.to_string())
    }

    fn fail(&mut self, error: &str) {
        self.status = status::FAILED;
        self.error = truncate(error, 255);
    }

    fn fill(&mut self, a: &Allocation) {
        self.status = status::DONE;
        self.unit = a.unit;
        self.volume = a.volume;
        self.unit_address = a.agent.map(|x| x.ip());
        self.volume_name = truncate(&a.name, 64);
        self.start_lba = a.start_lba;
        self.end_lba = a.end_lba;
        self.length = a.end_lba.saturating_sub(a.start_lba).saturating_add(1);
        self.nbd_uri = truncate(a.nbd_uri.as_deref().unwrap_or(""), 255);
        self.volume_source = if a.volume_created { source::CREATED } else { source::EXISTING };
    }
}

struct Shared {
    rows: Mutex<BTreeMap<u32, RequestRow>>,
    jobs: SyncSender<u32>,
    admins: Admins,
}

impl Shared {
    fn rows(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, RequestRow>> {
        self.rows.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the requester of the SNMP request being processed may see `row`.
    fn visible(&self, row: &RequestRow) -> bool {
        self.admins.current_may_manage(row.requester.as_deref())
    }
}

/// The table, served by the station's agent (register a `TableHandler` of it at the entry OID).
pub struct RequestTable {
    shared: Arc<Shared>,
}

/// How the worker reaches units.
#[derive(Debug, Clone)]
pub struct RequestSettings {
    pub state_dir: PathBuf,
    pub read_community: String,
    pub write_community: Option<String>,
    pub timeout: Duration,
    /// Where what allocations change is announced (the station's notifications).
    pub announcer: Option<crate::announce::Announcer>,
    /// Who sees every row and may release every assignment.
    pub admins: Admins,
    /// The station's task runner, which shows the wipe of a released volume as a clearVolume task.
    pub tasks: Option<crate::tasks::TaskRunner>,
}

impl RequestTable {
    /// Creates the table and starts its worker thread, which ends when the table is dropped. `on_served` runs
    /// after every served request (the station uses it to refresh the MIB's snapshot of the assignments).
    pub fn start(settings: RequestSettings, on_served: impl Fn() + Send + 'static) -> std::io::Result<RequestTable> {
        let (jobs, queue) = sync_channel(QUEUE);
        let shared = Arc::new(Shared { rows: Mutex::new(BTreeMap::new()), jobs, admins: settings.admins.clone() });
        let worker_shared = Arc::downgrade(&shared);
        std::thread::Builder::new()
            .name("storage-requests".to_string())
            .spawn(move || serve_requests(settings, queue, worker_shared, on_served))?;
        Ok(RequestTable { shared })
    }
}

/// The worker: serves queued request indexes until every sender is gone.
fn serve_requests(
    settings: RequestSettings,
    queue: Receiver<u32>,
    shared: std::sync::Weak<Shared>,
    on_served: impl Fn(),
) {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, "storage requests: cannot start a runtime");
            return;
        }
    };
    let opened = runtime.block_on(async {
        let store = StationStore::open(&settings.state_dir).map_err(|e| e.to_string())?;
        let manager = Manager::new(SocketAddr::from(([0, 0, 0, 0], 0))).await.map_err(|e| e.to_string())?;
        Ok::<_, String>((store, manager))
    });
    let (mut store, manager) = match opened {
        Ok(pair) => pair,
        Err(e) => {
            tracing::error!(error = %e, "storage requests: cannot open the store or an SNMP socket");
            return;
        }
    };
    while let Ok(index) = queue.recv() {
        let Some(shared) = shared.upgrade() else { return };
        let Some(row) = shared.rows().get(&index).cloned() else { continue };
        let outcome = runtime.block_on(serve_one(&settings, &mut store, &manager, &row));
        on_served();
        let mut rows = shared.rows();
        if let Some(current) = rows.get_mut(&index) {
            match outcome {
                Ok(Some((allocation, mirror))) => {
                    current.fill(&allocation);
                    current.mirror = mirror;
                }
                Ok(None) => current.status = status::DONE,
                Err(e) => current.fail(&e),
            }
        }
    }
}

async fn serve_one(
    settings: &RequestSettings,
    store: &mut StationStore,
    manager: &Manager,
    row: &RequestRow,
) -> Result<Option<(Allocation, u32)>, String> {
    let host = row.host_address()?;
    let text = |e: AllocateError| e.to_string();
    let release = row.action == action::RELEASE;
    if release && (row.unit == 0 || row.volume == 0) {
        return Err("a release names the unit (dvsanStationRequestUnitIndex) and the volume".to_string());
    }
    if release && store.unit(row.unit).map_err(|e| e.to_string())?.is_none() {
        // Requesters are hosts: point them at what they can read (the assignment table), not an admin command.
        return Err(format!(
            "the pool has no unit #{}; dvsanStationAssignmentTable (`dvsan-host list`) lists this host's volumes",
            row.unit
        ));
    }
    if release {
        // Only the assignment's owner and the admins may release it; to anyone else it is not there (the same
        // answer as for a volume nobody holds, so other requesters' assignments cannot be probed).
        let held = store.volume_assignments(row.unit, row.volume).map_err(|e| e.to_string())?;
        // This host's assignment of a shared volume, else the volume's (whose holder the release then names).
        let held = held.iter().find(|a| a.host == host).or(held.first()).cloned();
        let requester = row.requester.as_deref().and_then(Principal::from_stored);
        if !held.is_some_and(|a| settings.admins.may_manage(requester.as_ref(), a.owner.as_deref())) {
            return Err(format!(
                "volume {} of unit #{} is not assigned to this requester; dvsanStationAssignmentTable \
                 (`dvsan-host list`) lists its volumes",
                row.volume, row.unit
            ));
        }
    }
    // A release changes one unit (all the replicas' units for a mirrored volume's); an allocation may choose any
    // unit, so it holds the whole pool.
    let mirror = if release { store.mirror_of(row.unit, row.volume).map_err(|e| e.to_string())? } else { None };
    let scope = if release && mirror.is_none() { LockScope::Unit(row.unit) } else { LockScope::Pool };
    let lock = PoolLock::acquire(&settings.state_dir, scope).map_err(text)?;
    let mut allocator = Allocator::new(
        store,
        manager,
        &settings.read_community,
        settings.write_community.as_deref(),
        settings.timeout,
        lock,
    )
    .with_announcer(settings.announcer.clone())
    .with_owner(row.requester.clone());
    if let Some(mirror) = mirror {
        crate::mirror::release(&mut allocator, &mirror).await.map_err(text)?;
        return Ok(None);
    }
    if release {
        let released = allocator.release(row.unit, row.volume, Some(host)).await.map_err(text);
        if let Some(tasks) = &settings.tasks {
            for (unit, volume) in allocator.take_wiped() {
                tasks.follow_clearing(unit, volume);
            }
        }
        released?;
        return Ok(None);
    }
    let size_bytes = parse_request_size(&row.size).map_err(text)?;
    let name = (!row.name.is_empty()).then(|| row.name.clone());
    let request = SizeRequest { size_bytes, host, name, read_only: false, shared: row.shared };
    if row.replicas >= 2 {
        let made = crate::mirror::request(&mut allocator, &request, row.replicas).await.map_err(text)?;
        let first = made.replicas.first().cloned().ok_or("the mirrored volume has no replica")?;
        return Ok(Some((first, made.mirror)));
    }
    allocator.request(&request).await.map(|a| Some((a, 0))).map_err(text)
}

/// What one row of a SET does.
enum RowChange {
    Create(Box<RequestRow>),
    Destroy,
}

impl RequestTable {
    /// Plans one row's SET from its varbinds (all naming row `index`).
    fn plan_row(&self, index: u32, cells: &[(usize, u32, &Value)]) -> Result<Option<RowChange>, SetFailure> {
        let row_status = cells.iter().find(|(_, c, _)| *c == ROW_STATUS);
        // Another requester's row is not there for this one, but its index is taken.
        let (exists, taken) = match self.shared.rows().get(&index) {
            Some(row) if self.shared.visible(row) => (true, false),
            Some(_) => (false, true),
            None => (false, false),
        };
        let first = cells[0].0;
        let status_value = match row_status {
            Some((i, _, v)) => Some((
                *i,
                integer(*i, v, &[mib::row_status::ACTIVE, mib::row_status::CREATE_AND_GO, mib::row_status::DESTROY])?,
            )),
            None => None,
        };
        let mut row = RequestRow::new();
        for &(i, column, value) in cells {
            match column {
                ACTION => row.action = integer(i, value, &[action::ALLOCATE, action::RELEASE])?,
                SIZE => row.size = text(i, value, 32)?,
                HOST_TYPE => {
                    row.host_type = integer(i, value, &[mib::inet_address_type::IPV4, mib::inet_address_type::IPV6])?
                }
                HOST => row.host = octets(i, value, 255)?,
                NAME => row.name = text(i, value, 64)?,
                UNIT => row.unit = unsigned(i, value)?,
                VOLUME => row.volume = unsigned(i, value)?,
                SHARED => {
                    row.shared =
                        integer(i, value, &[mib::truth_value::TRUE, mib::truth_value::FALSE])? == mib::truth_value::TRUE
                }
                REPLICAS => {
                    row.replicas = unsigned(i, value)?;
                    if row.replicas > crate::mirror::MAX_REPLICAS {
                        return Err(SetFailure::new(i, ErrorStatus::WrongValue));
                    }
                }
                ROW_STATUS => {}
                _ => return Err(SetFailure::new(i, ErrorStatus::NotWritable)),
            }
        }
        match (exists, status_value) {
            (true, Some((_, s))) if s == mib::row_status::DESTROY => Ok(Some(RowChange::Destroy)),
            (false, Some((_, s))) if s == mib::row_status::DESTROY => Ok(None),
            (false, Some((i, s))) if s == mib::row_status::CREATE_AND_GO => {
                if taken {
                    return Err(SetFailure::new(i, ErrorStatus::InconsistentValue));
                }
                if self.shared.rows().len() >= MAX_ROWS {
                    return Err(SetFailure::new(i, ErrorStatus::ResourceUnavailable));
                }
                Ok(Some(RowChange::Create(Box::new(row))))
            }
            (true, Some((_, s))) if s == mib::row_status::ACTIVE && cells.len() == 1 => Ok(None),
            // A submitted request cannot be changed.
            (true, _) => Err(SetFailure::new(status_value.map_or(first, |(i, _)| i), ErrorStatus::InconsistentValue)),
            (false, Some((i, _))) => Err(SetFailure::new(i, ErrorStatus::InconsistentValue)),
            (false, None) => Err(SetFailure::new(first, ErrorStatus::InconsistentName)),
        }
    }
}

impl Table for RequestTable {
    fn entry(&self) -> &'static [u32] {
        mib::DVSAN_STATION_REQUEST_ENTRY
    }

    fn columns(&self) -> &'static [u32] {
        &[
            ACTION,
            SIZE,
            HOST_TYPE,
            HOST,
            NAME,
            UNIT,
            VOLUME,
            STATUS,
            ERROR,
            UNIT_TYPE,
            UNIT_ADDRESS,
            VOLUME_NAME,
            START,
            END,
            LENGTH,
            NBD_URI,
            ROW_STATUS,
            VOLUME_SOURCE,
            SHARED,
            REPLICAS,
            MIRROR,
        ]
    }

    fn rows(&self) -> Vec<Vec<u32>> {
        self.shared.rows().iter().filter(|(_, row)| self.shared.visible(row)).map(|(k, _)| vec![*k]).collect()
    }

    fn cell(&self, column: u32, index: &[u32]) -> Option<Value> {
        let [i] = index else { return None };
        let rows = self.shared.rows();
        let row = rows.get(i).filter(|row| self.shared.visible(row))?;
        let (unit_type, unit_address) = match row.unit_address {
            Some(IpAddr::V4(a)) => (mib::inet_address_type::IPV4, a.octets().to_vec()),
            Some(IpAddr::V6(a)) => (mib::inet_address_type::IPV6, a.octets().to_vec()),
            None => (mib::inet_address_type::UNKNOWN, Vec::new()),
        };
        Some(match column {
            ACTION => Value::Integer(row.action),
            SIZE => Value::string(&row.size),
            HOST_TYPE => Value::Integer(row.host_type),
            HOST => Value::OctetString(row.host.clone()),
            NAME => Value::string(&row.name),
            UNIT => Value::Gauge32(row.unit),
            VOLUME => Value::Gauge32(row.volume),
            STATUS => Value::Integer(row.status),
            ERROR => Value::string(&row.error),
            UNIT_TYPE => Value::Integer(unit_type),
            UNIT_ADDRESS => Value::OctetString(unit_address),
            VOLUME_NAME => Value::string(&row.volume_name),
            START => Value::Gauge32(row.start_lba),
            END => Value::Gauge32(row.end_lba),
            LENGTH => Value::Gauge32(row.length),
            NBD_URI => Value::string(&row.nbd_uri),
            ROW_STATUS => Value::Integer(mib::row_status::ACTIVE),
            VOLUME_SOURCE => Value::Integer(row.volume_source),
            SHARED => Value::Integer(if row.shared { mib::truth_value::TRUE } else { mib::truth_value::FALSE }),
            REPLICAS => Value::Gauge32(row.replicas),
            MIRROR => Value::Gauge32(row.mirror),
            _ => return None,
        })
    }

    fn prepare_set(&self, varbinds: &[SetItem<'_>]) -> Result<Box<dyn PreparedSet>, SetFailure> {
        let by_row = crate::set_values::cells_by_row(varbinds, mib::DVSAN_STATION_REQUEST_ENTRY)?;
        let mut changes = Vec::new();
        for (index, cells) in &by_row {
            if let Some(change) = self.plan_row(*index, cells)? {
                changes.push((*index, change));
            }
        }
        let shared = Arc::clone(&self.shared);
        Ok(Box::new(FnPreparedSet(move || {
            let mut previous = Vec::new();
            let mut queued = Vec::new();
            {
                let mut rows = shared.rows();
                for (index, change) in changes {
                    match change {
                        RowChange::Create(mut row) => {
                            // Bad values fail the row at once; the rest waits for the worker.
                            if let Err(e) = row.host_address() {
                                row.fail(&e);
                            } else if row.action == action::ALLOCATE {
                                if let Err(e) = parse_request_size(&row.size) {
                                    row.fail(&e.to_string());
                                }
                            }
                            if row.status == status::PENDING {
                                queued.push(index);
                            }
                            previous.push((index, rows.insert(index, *row)));
                        }
                        RowChange::Destroy => previous.push((index, rows.remove(&index))),
                    }
                }
            }
            for index in queued {
                if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = shared.jobs.try_send(index) {
                    if let Some(row) = shared.rows().get_mut(&index) {
                        row.fail("the station is busy with other requests; try again");
                    }
                }
            }
            Ok(move || {
                let mut rows = shared.rows();
                for (index, before) in previous.into_iter().rev() {
                    match before {
                        Some(row) => rows.insert(index, row),
                        None => rows.remove(&index),
                    };
                }
                Ok::<(), UndoFailed>(())
            })
        })))
    }
}
