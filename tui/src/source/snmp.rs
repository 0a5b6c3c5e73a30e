//! The SNMP [`PoolSource`]: the station's DVSAN-STATION-MIB tables (units, volumes, partitions, host assignments,
//! tasks and pending units) by GETBULK walks, and each available unit's dvsanTrafficTable (DVSAN-MIB) read from
//! the unit directly, all units at once. Traffic counters become rates in a [`RateTracker`]. The pool is read first;
//! when the station answers, the assignments, the tasks and the pending units are read at the same time, and each
//! that fails carries its own error, so one screen's failure does not blank the others. The units' tables are read
//! in a background task of their own ([`UnitReader`]): with 10,000 units that takes several refreshes, and the pool
//! and the tasks must not wait for it; a snapshot carries the units' tables when a read of them has finished since
//! the last one.

use super::rates::{Counters, RateTracker};
use super::PoolSource;
use crate::model::{
    now_unix, AssignMode, Assignment, Medium, Partition, PendingState, PendingUnit, Pool, Reported, Snapshot, Task,
    Traffic, Unit, UnitState, Volume,
};
use dvsan_layout::{PartitionIndex, VolumeIndex};
use dvsan_mib as mib;
use dvsan_snmp::usm::UsmUser;
use dvsan_snmp::{DateAndTime, Manager, Oid, SnmpError, Target, Value};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};

/// The rows of one table: instance index -> column -> value.
pub type TableRows = BTreeMap<Vec<u32>, BTreeMap<u32, Value>>;

/// Reads a station and its units over SNMP.
pub struct SnmpSource {
    manager: Arc<Manager>,
    station: Target,
    /// Where dvsanStationAssignmentTable is read: the station shows each requester only the assignments it asked
    /// for (all of them to its admins), so the console reads it with its write community when it has one.
    assignments: Target,
    community: String,
    unit_timeout: Duration,
    /// The reader of the units' tables while no read of them runs.
    reader: Option<UnitReader>,
    /// The read of the units' tables under way in the background, which gives the reader back.
    reading: Option<JoinHandle<(UnitReader, UnitReads)>>,
}

impl Drop for SnmpSource {
    fn drop(&mut self) {
        if let Some(reading) = &self.reading {
            reading.abort();
        }
    }
}

/// Reads the units' own agents: traffic tables every time, media tables when they may have changed.
struct UnitReader {
    manager: Arc<Manager>,
    community: String,
    unit_timeout: Duration,
    rates: RateTracker,
    /// Each unit's media as last read, with the capacity they added up to: read again only when the unit's
    /// capacity moves (media are only ever added), so a refresh costs one table walk per unit, not two.
    media: BTreeMap<u32, (u32, Vec<Medium>)>,
}

/// max-repetitions of the walks of the station's tables. Its units and volumes tables have 10,000s of rows: at
/// net-snmp's usual 10 to 25 a walk of them is 20,000 round trips. The station's agent answers with as many as fit
/// its maximum message size (64 KiB); 100 keeps an answer near 4 KiB.
const STATION_WALK_REPETITIONS: u32 = 100;

/// The station's agent at `station`, read with `community`: one retry, and long GetBulk answers.
fn station_target(station: SocketAddr, community: &str, timeout: Duration) -> Target {
    let mut target = Target::new(station, community).with_timeout(timeout, 1);
    target.options.walk_max_repetitions = STATION_WALK_REPETITIONS;
    target
}

/// Unit walks outstanding at once: with thousands of units, their answers must fit the socket's receive buffer.
const UNIT_READS_IN_FLIGHT: usize = 64;

impl SnmpSource {
    /// A source reading the station's agent at `station` and the units with `community`.
    pub async fn new(station: SocketAddr, community: &str, timeout: Duration) -> std::io::Result<SnmpSource> {
        let bind: SocketAddr = if station.is_ipv6() {
            SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))
        } else {
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
        };
        let manager = Arc::new(Manager::new(bind).await?);
        Ok(SnmpSource {
            manager: Arc::clone(&manager),
            station: station_target(station, community, timeout),
            assignments: station_target(station, community, timeout),
            community: community.to_string(),
            unit_timeout: timeout,
            reader: Some(UnitReader::new(manager, community, timeout)),
            reading: None,
        })
    }

    /// Reads the station's assignments with `community` (the console's write community) instead of the read one.
    pub fn assignments_with(mut self, community: &str) -> SnmpSource {
        self.assignments = station_target(self.assignments.addr, community, self.assignments.options.timeout);
        self
    }

    /// The same source reading the station as SNMPv3 `user` (its assignments too; the units are still read with the community).
    pub fn with_station_user(mut self, user: Arc<UsmUser>) -> SnmpSource {
        let (addr, timeout, retries) = (self.station.addr, self.station.options.timeout, self.station.options.retries);
        self.station = Target::v3(addr, Arc::clone(&user)).with_timeout(timeout, retries);
        self.assignments = Target::v3(addr, user).with_timeout(timeout, 1);
        self
    }

    async fn read_pool(&self) -> Result<Pool, String> {
        let addr = self.station.addr;
        let explain = |e: SnmpError| station_error(addr, &e);
        let units = walk_table(&self.manager, &self.station, mib::DVSAN_STATION_UNIT_ENTRY).await.map_err(explain)?;
        let volumes =
            walk_table(&self.manager, &self.station, mib::DVSAN_STATION_VOLUME_ENTRY).await.map_err(explain)?;
        let partitions =
            walk_table(&self.manager, &self.station, mib::DVSAN_STATION_PARTITION_ENTRY).await.map_err(explain)?;
        if units.is_empty() {
            // An empty pool and "not a station" look the same in the tables; the stats scalar tells them apart.
            let oid = Oid::from_slice(&[mib::DVSAN_STATION_UNITS, &[0]].concat());
            let answer = self.manager.get(&self.station, &[oid]).await.map_err(explain)?;
            if answer.first().is_none_or(|vb| vb.value.is_exception()) {
                return Err(format!(
                    "{addr} answers SNMP but is not a dvsan station (no DVSAN-STATION-MIB there); \
                     give the address of `dvsan-station run --snmp-listen`"
                ));
            }
        }
        Ok(pool_from_tables(&units, &volumes, &partitions))
    }

    /// What the background read of the units' tables found, if it finished since the last call; starts the next
    /// read over `pool` when none is running.
    async fn units_read(&mut self, pool: Option<&Pool>) -> Option<UnitReads> {
        let mut found = None;
        if let Some(reading) = self.reading.take_if(|r| r.is_finished()) {
            self.reader = Some(match reading.await {
                Ok((reader, reads)) => {
                    found = Some(reads);
                    reader
                }
                // It panicked: start over, without the rates and media it had.
                Err(_) => UnitReader::new(Arc::clone(&self.manager), &self.community, self.unit_timeout),
            });
        }
        if let (Some(pool), None) = (pool, &self.reading) {
            if let Some(reader) = self.reader.take() {
                self.reading = Some(tokio::spawn(reader.read(pool.units.clone())));
            }
        }
        found
    }
}

impl UnitReader {
    fn new(manager: Arc<Manager>, community: &str, unit_timeout: Duration) -> UnitReader {
        UnitReader {
            manager,
            community: community.to_string(),
            unit_timeout,
            rates: RateTracker::default(),
            media: BTreeMap::new(),
        }
    }

    /// Reads every answering unit's traffic table and, from those that answered and whose media are not known
    /// yet (or whose capacity moved), its media table; gives itself back with what it read.
    async fn read(mut self, units: Vec<Unit>) -> (UnitReader, UnitReads) {
        let reads = self.read_units(&units).await;
        (self, reads)
    }

    async fn read_units(&mut self, units: &[Unit]) -> UnitReads {
        let mut reads = JoinSet::new();
        let in_flight = Arc::new(Semaphore::new(UNIT_READS_IN_FLIGHT));
        // Unavailable units still answer SNMP (only their data service is down); unreachable ones would only time out.
        for unit in units.iter().filter(|u| matches!(u.state, UnitState::Available | UnitState::Unavailable)) {
            let Some(agent) = unit.agent else { continue };
            let manager = Arc::clone(&self.manager);
            let target = Target::new(agent, self.community.clone()).with_timeout(self.unit_timeout, 0);
            let (index, label, capacity) = (unit.index, unit.label(), unit.capacity_blocks);
            let media_known = self.media.get(&index).is_some_and(|(known, _)| *known == capacity);
            let in_flight = Arc::clone(&in_flight);
            reads.spawn(async move {
                let _permit = in_flight.acquire_owned().await;
                let rows = walk_table(&manager, &target, mib::DVSAN_TRAFFIC_ENTRY).await;
                let at = Instant::now();
                // Only asked of a unit that answered: a silent one would cost a second timeout.
                let media = match &rows {
                    Ok(_) if !media_known => walk_table(&manager, &target, mib::DVSAN_MEDIA_ENTRY).await.ok(),
                    _ => None,
                };
                (index, label, agent, rows, at, media.map(|m| (capacity, m)))
            });
        }
        let mut traffic = Vec::new();
        let mut errors = Vec::new();
        let mut keys = Vec::new();
        while let Some(joined) = reads.join_next().await {
            let Ok((unit_index, label, agent, rows, at, unit_media)) = joined else { continue };
            if let Some((capacity, unit_media)) = unit_media {
                self.media.insert(unit_index, (capacity, media_from_table(&unit_media)));
            }
            let rows = match rows {
                Ok(rows) => rows,
                Err(e) => {
                    errors.push(format!("unit {label} at {agent}: {}", plain_snmp_error(&e)));
                    continue;
                }
            };
            for columns in rows.values() {
                let text = |c| columns.get(&c).and_then(Value::as_str).unwrap_or("").to_string();
                let counter = |c| columns.get(&c).and_then(Value::as_u64).unwrap_or(0);
                let export = text(2);
                let host = inet_address(columns.get(&3), columns.get(&4)).map_or("?".to_string(), |ip| ip.to_string());
                let counters = Counters {
                    reads: counter(5),
                    writes: counter(6),
                    bytes_read: counter(7),
                    bytes_written: counter(8),
                };
                let key = (unit_index, export.clone(), host.clone());
                let rates = self.rates.sample(key.clone(), counters, at);
                keys.push(key);
                traffic.push(Traffic { unit_index, unit_label: label.clone(), export, host, rates });
            }
        }
        self.rates.retain(&keys);
        let in_pool: std::collections::BTreeSet<u32> = units.iter().map(|u| u.index).collect();
        self.media.retain(|index, _| in_pool.contains(index));
        let media = self.media.iter().map(|(index, (_, media))| (*index, media.clone())).collect();
        traffic.sort_by(|a, b| (a.unit_index, &a.export, &a.host).cmp(&(b.unit_index, &b.export, &b.host)));
        UnitReads { traffic, errors, media }
    }
}

impl PoolSource for SnmpSource {
    async fn snapshot(&mut self) -> Snapshot {
        let pool = self.read_pool().await;
        let (tasks, assignments, pending) = match &pool {
            Ok(_) => tokio::join!(
                read_tasks(&self.manager, &self.station),
                read_assignments(&self.manager, &self.assignments),
                read_pending(&self.manager, &self.station)
            ),
            // The station did not answer: the other tables would only time out too.
            Err(why) => (Err(why.clone()), Err(why.clone()), Err(why.clone())),
        };
        let units = self.units_read(pool.as_ref().ok()).await;
        let units_read = units.is_some();
        let units = units.unwrap_or_default();
        Snapshot {
            taken_unix: now_unix(),
            pool,
            traffic: units.traffic,
            traffic_errors: units.errors,
            tasks,
            assignments,
            pending,
            media: units.media,
            units_read,
        }
    }
}

/// What the units' own agents told.
#[derive(Default)]
struct UnitReads {
    traffic: Vec<Traffic>,
    /// Units whose traffic table could not be read, with why.
    errors: Vec<String>,
    media: BTreeMap<u32, Vec<Medium>>,
}

/// Builds a unit's media from its dvsanMediaTable rows, in address order. Rows with malformed indexes are skipped.
pub fn media_from_table(rows: &TableRows) -> Vec<Medium> {
    let mut media: Vec<Medium> = rows
        .iter()
        .filter_map(|(index, row)| {
            let [index] = index.as_slice() else { return None };
            let row = Cells(row);
            Some(Medium {
                index: *index,
                path: row.text(mib::DVSAN_MEDIA_PATH),
                blocks: row.number(mib::DVSAN_MEDIA_BLOCKS),
                first_lba: row.number(mib::DVSAN_MEDIA_FIRST_LBA),
            })
        })
        .collect();
    media.sort_by_key(|m| (m.first_lba, m.index));
    media
}

/// Walks a table's entry and groups the instances by index.
pub async fn walk_table(manager: &Manager, target: &Target, entry: &[u32]) -> Result<TableRows, SnmpError> {
    let varbinds = manager.walk(target, &Oid::from_slice(entry)).await?;
    let mut rows = TableRows::new();
    for vb in varbinds {
        if let Some([column, index @ ..]) = vb.oid.suffix_after(entry) {
            if !index.is_empty() && !vb.value.is_exception() {
                rows.entry(index.to_vec()).or_default().insert(*column, vb.value);
            }
        }
    }
    Ok(rows)
}

/// Builds the pool from the three station tables. Rows with malformed indexes are skipped.
pub fn pool_from_tables(units: &TableRows, volumes: &TableRows, partitions: &TableRows) -> Pool {
    let text = |row: &BTreeMap<u32, Value>, c: u32| row.get(&c).and_then(Value::as_str).unwrap_or("").to_string();
    let number = |row: &BTreeMap<u32, Value>, c: u32| row.get(&c).and_then(Value::as_u32).unwrap_or(0);
    let integer = |row: &BTreeMap<u32, Value>, c: u32| row.get(&c).and_then(Value::as_i32).unwrap_or(0);
    let mut pool = Pool::default();
    for (index, row) in units {
        let [index] = index.as_slice() else { continue };
        let port = number(row, 8);
        let agent = inet_address(row.get(&6), row.get(&7))
            .filter(|_| port != 0)
            .and_then(|ip| u16::try_from(port).ok().map(|port| SocketAddr::new(ip, port)));
        pool.units.push(Unit {
            index: *index,
            id: text(row, 2),
            name: text(row, 3),
            state: UnitState::from_code(integer(row, 4)),
            reason: text(row, 5),
            agent,
            block_size: number(row, 9),
            capacity_blocks: number(row, 10),
            free_blocks: number(row, 11),
            volumes: number(row, 12),
            last_seen_unix: row.get(&13).and_then(Value::as_bytes).and_then(date_and_time_unix),
            host_name: text(row, 15),
        });
    }
    for (index, row) in volumes {
        let [unit_index, index] = index.as_slice() else { continue };
        pool.volumes.push(Volume {
            unit_index: *unit_index,
            index: *index,
            name: text(row, 2),
            start_lba: number(row, 3),
            end_lba: number(row, 4),
            length_blocks: number(row, 5),
            export: text(row, 6),
            available: integer(row, 7) == 1,
        });
    }
    for (index, row) in partitions {
        let [unit_index, volume_index, index] = index.as_slice() else { continue };
        pool.partitions.push(Partition {
            unit_index: *unit_index,
            volume_index: *volume_index,
            index: *index,
            start_lba: number(row, 2),
            end_lba: number(row, 3),
            length_blocks: number(row, 4),
            export: text(row, 5),
            available: integer(row, 6) == 1,
        });
    }
    pool
}

/// Reads the station's dvsanStationTaskTable.
pub async fn read_tasks(manager: &Manager, station: &Target) -> Result<Vec<Task>, String> {
    let explain = |e: SnmpError| station_error(station.addr, &e);
    let rows = walk_table(manager, station, mib::DVSAN_STATION_TASK_ENTRY).await.map_err(explain)?;
    if rows.is_empty() {
        // An empty task table and a station without one look the same in a walk; a GET of a cell that cannot exist
        // (indexes start at 1) tells them apart: noSuchInstance when the table is there, noSuchObject when not.
        let probe = Oid::from_slice(mib::DVSAN_STATION_TASK_OPERATION).child(0);
        let answer = manager.get(station, &[probe]).await.map_err(explain)?;
        if answer.first().is_none_or(|vb| vb.value == Value::NoSuchObject) {
            return Err(format!(
                "station {} does not run tasks (no dvsanStationTaskTable): it is older than this console; update \
                 dvsan-station",
                station.addr
            ));
        }
    }
    Ok(tasks_from_table(&rows))
}

/// Reads the station's dvsanStationAssignmentTable, and marks the replicas of mirrored volumes from
/// dvsanStationReplicaTable and dvsanStationFrontTable (a station without them has none).
pub async fn read_assignments(manager: &Manager, station: &Target) -> Result<Vec<Assignment>, String> {
    let rows = walk_table(manager, station, mib::DVSAN_STATION_ASSIGNMENT_ENTRY)
        .await
        .map_err(|e| station_error(station.addr, &e))?;
    let mut assignments = assignments_from_table(&rows);
    let (replicas, fronts) = tokio::join!(
        walk_table(manager, station, mib::DVSAN_STATION_REPLICA_ENTRY),
        walk_table(manager, station, mib::DVSAN_STATION_FRONT_ENTRY)
    );
    mark_replicas(&mut assignments, &replicas.unwrap_or_default(), &fronts.unwrap_or_default());
    Ok(assignments)
}

/// Sets [`Assignment::replica`] of the assignments that are replicas of a mirrored volume (index of both tables:
/// mirror, replica).
pub fn mark_replicas(assignments: &mut [Assignment], replicas: &TableRows, fronts: &TableRows) {
    use mib::dvsan_station_front_replica_state as s;
    for (index, row) in replicas {
        let [mirror, replica] = index.as_slice() else { continue };
        let row = Cells(row);
        let (unit, volume) =
            (row.number(mib::DVSAN_STATION_REPLICA_UNIT_INDEX), row.number(mib::DVSAN_STATION_REPLICA_VOLUME_INDEX));
        let host =
            inet_address(row.get(mib::DVSAN_STATION_REPLICA_HOST_TYPE), row.get(mib::DVSAN_STATION_REPLICA_HOST));
        let state = fronts.get(index).map(|f| Cells(f).integer(mib::DVSAN_STATION_FRONT_REPLICA_STATE));
        let state = match state {
            Some(s::IN_SYNC) => "inSync",
            Some(s::OUT_OF_SYNC) => "outOfSync",
            Some(s::RESYNCING) => "resyncing",
            Some(s::FAILED) => "failed",
            _ => "unknown",
        };
        let count = row.number(mib::DVSAN_STATION_REPLICA_COUNT);
        for a in assignments.iter_mut().filter(|a| a.unit_index == unit && a.volume_index == volume && a.host == host) {
            a.replica = format!("m{mirror} {replica}/{count} {state}");
        }
    }
}

/// Reads the station's dvsanStationPendingTable (a station without one has no pending units to show).
pub async fn read_pending(manager: &Manager, station: &Target) -> Result<Vec<PendingUnit>, String> {
    let rows = walk_table(manager, station, mib::DVSAN_STATION_PENDING_ENTRY)
        .await
        .map_err(|e| station_error(station.addr, &e))?;
    Ok(pending_from_table(&rows))
}

/// Builds pending units from dvsanStationPendingTable rows, by index. Rows with malformed indexes are skipped.
pub fn pending_from_table(rows: &TableRows) -> Vec<PendingUnit> {
    rows.iter()
        .filter_map(|(index, row)| {
            let [index] = index.as_slice() else { return None };
            let cells = Cells(row);
            let port = u16::try_from(cells.number(mib::DVSAN_STATION_PENDING_PORT)).unwrap_or(0);
            let address = inet_address(
                cells.get(mib::DVSAN_STATION_PENDING_ADDRESS_TYPE),
                cells.get(mib::DVSAN_STATION_PENDING_ADDRESS),
            )
            .map(|ip| SocketAddr::new(ip, port));
            Some(PendingUnit {
                index: *index,
                unit_id: cells.text(mib::DVSAN_STATION_PENDING_UNIT_ID),
                name: cells.text(mib::DVSAN_STATION_PENDING_UNIT_NAME),
                address,
                sys_name: cells.text(mib::DVSAN_STATION_PENDING_SYS_NAME),
                sys_descr: cells.text(mib::DVSAN_STATION_PENDING_SYS_DESCR),
                first_seen_unix: cells.time(mib::DVSAN_STATION_PENDING_FIRST_SEEN),
                last_seen_unix: cells.time(mib::DVSAN_STATION_PENDING_LAST_SEEN),
                notifications: cells.get(mib::DVSAN_STATION_PENDING_NOTIFICATIONS).and_then(Value::as_u64).unwrap_or(0),
                state: PendingState::from_code(cells.integer(mib::DVSAN_STATION_PENDING_STATE)),
            })
        })
        .collect()
}

/// The column number of a table column's OID (its last arc).
const fn column(oid: &[u32]) -> u32 {
    oid[oid.len() - 1]
}

/// One row's cells, read by column OID.
struct Cells<'a>(&'a BTreeMap<u32, Value>);

impl Cells<'_> {
    fn get(&self, oid: &[u32]) -> Option<&Value> {
        self.0.get(&column(oid))
    }
    fn text(&self, oid: &[u32]) -> String {
        self.get(oid).and_then(Value::as_str).unwrap_or("").to_string()
    }
    fn number(&self, oid: &[u32]) -> u32 {
        self.get(oid).and_then(Value::as_u32).unwrap_or(0)
    }
    fn integer(&self, oid: &[u32]) -> i32 {
        self.get(oid).and_then(Value::as_i32).unwrap_or(0)
    }
    fn time(&self, oid: &[u32]) -> Option<i64> {
        self.get(oid).and_then(Value::as_bytes).and_then(date_and_time_unix)
    }
}

/// Builds tasks from dvsanStationTaskTable rows. Rows with malformed indexes are skipped.
pub fn tasks_from_table(rows: &TableRows) -> Vec<Task> {
    let mut tasks = Vec::new();
    for (index, row) in rows {
        let [index] = index.as_slice() else { continue };
        let row = Cells(row);
        tasks.push(Task {
            index: *index,
            operation: Reported::from_code(row.integer(mib::DVSAN_STATION_TASK_OPERATION)),
            unit: row.text(mib::DVSAN_STATION_TASK_UNIT),
            volume: VolumeIndex::given(row.number(mib::DVSAN_STATION_TASK_VOLUME)),
            partition: PartitionIndex::given(row.number(mib::DVSAN_STATION_TASK_PARTITION)),
            size: row.text(mib::DVSAN_STATION_TASK_SIZE),
            host: row.text(mib::DVSAN_STATION_TASK_HOST),
            name: row.text(mib::DVSAN_STATION_TASK_NAME),
            read_only: row.integer(mib::DVSAN_STATION_TASK_READ_ONLY) == mib::truth_value::TRUE,
            owner: row.text(mib::DVSAN_STATION_TASK_OWNER),
            state: Reported::from_code(row.integer(mib::DVSAN_STATION_TASK_STATE)),
            progress: row.number(mib::DVSAN_STATION_TASK_PROGRESS).min(100),
            step: row.text(mib::DVSAN_STATION_TASK_STEP),
            result: row.text(mib::DVSAN_STATION_TASK_RESULT),
            result_unit: Some(row.number(mib::DVSAN_STATION_TASK_RESULT_UNIT)).filter(|&unit| unit != 0),
            result_volume: VolumeIndex::given(row.number(mib::DVSAN_STATION_TASK_RESULT_VOLUME)),
            created_unix: row.time(mib::DVSAN_STATION_TASK_CREATED),
            finished_unix: row.time(mib::DVSAN_STATION_TASK_FINISHED),
        });
    }
    tasks
}

/// Builds assignments from dvsanStationAssignmentTable rows (index: unit index, volume index, then the host's
/// address type and length-prefixed address, so a shared volume has a row per host). Rows with malformed indexes
/// are skipped.
pub fn assignments_from_table(rows: &TableRows) -> Vec<Assignment> {
    let mut assignments = Vec::new();
    for (index, row) in rows {
        let [unit_index, volume_index, ..] = index.as_slice() else { continue };
        let row = Cells(row);
        assignments.push(Assignment {
            unit_index: *unit_index,
            volume_index: *volume_index,
            host: inet_address(row.get(mib::DVSAN_STATION_ASSIGN_HOST_TYPE), row.get(mib::DVSAN_STATION_ASSIGN_HOST)),
            mode: AssignMode::from_code(row.integer(mib::DVSAN_STATION_ASSIGN_MODE)),
            nbd_uri: row.text(mib::DVSAN_STATION_ASSIGN_NBD_URI),
            volume_name: row.text(mib::DVSAN_STATION_ASSIGN_VOLUME_NAME),
            replica: String::new(),
        });
    }
    assignments
}

/// An InetAddressType + InetAddress pair as an IP address (ipv4(1) and ipv6(2) only).
pub fn inet_address(kind: Option<&Value>, address: Option<&Value>) -> Option<IpAddr> {
    let bytes = address?.as_bytes()?;
    match kind?.as_i32()? {
        1 => <[u8; 4]>::try_from(bytes).ok().map(|b| IpAddr::from(Ipv4Addr::from(b))),
        2 => <[u8; 16]>::try_from(bytes).ok().map(|b| IpAddr::from(Ipv6Addr::from(b))),
        _ => None,
    }
}

/// A DateAndTime as Unix seconds; `None` when empty or malformed.
fn date_and_time_unix(bytes: &[u8]) -> Option<i64> {
    DateAndTime::decode(bytes).ok().map(|time| time.unix_seconds())
}

/// A manager error in plain words.
pub fn plain_snmp_error(error: &SnmpError) -> String {
    match error {
        SnmpError::Timeout => "no answer (not running, wrong address, or wrong community)".to_string(),
        SnmpError::Agent { status, .. } => format!("refused the request ({})", status.name()),
        SnmpError::Usm { user, reason, .. } => format!("refused SNMPv3 user {user:?}: {reason}"),
        SnmpError::Io(e) => format!("network error: {e}"),
        other => format!("answered something unexpected: {other}"),
    }
}

/// A station read error in plain words, naming the station.
pub fn station_error(station: SocketAddr, error: &SnmpError) -> String {
    match error {
        SnmpError::Timeout => format!(
            "station {station} does not answer: is `dvsan-station run --snmp-listen {station}` running, and is the \
             community right?"
        ),
        other => format!("station {station}: {}", plain_snmp_error(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{TaskOperation, TaskState};

    fn row(cells: &[(u32, Value)]) -> BTreeMap<u32, Value> {
        cells.iter().cloned().collect()
    }

    #[test]
    fn replicas_of_mirrored_volumes_are_marked_with_their_fronts_state() {
        let assignment = |unit_index, volume_index, host: [u8; 4]| Assignment {
            unit_index,
            volume_index,
            host: Some(IpAddr::from(host)),
            mode: AssignMode::ReadWrite,
            nbd_uri: String::new(),
            volume_name: "db".into(),
            replica: String::new(),
        };
        let mut assignments =
            vec![assignment(1, 3, [127, 0, 0, 9]), assignment(2, 1, [127, 0, 0, 9]), assignment(1, 4, [127, 0, 0, 9])];
        let replica = |unit: u32, volume: u32| {
            row(&[
                (4, Value::Integer(1)),
                (5, Value::OctetString(vec![127, 0, 0, 9])),
                (6, Value::Gauge32(2)),
                (8, Value::Gauge32(unit)),
                (9, Value::Gauge32(volume)),
            ])
        };
        let replicas: TableRows = [(vec![7, 1], replica(1, 3)), (vec![7, 2], replica(2, 1))].into_iter().collect();
        let fronts: TableRows = [(vec![7, 2], row(&[(1, Value::Integer(3))]))].into_iter().collect();
        mark_replicas(&mut assignments, &replicas, &fronts);
        let marks: Vec<&str> = assignments.iter().map(|a| a.replica.as_str()).collect();
        assert_eq!(marks, ["m7 1/2 unknown", "m7 2/2 outOfSync", ""]);
    }

    #[test]
    fn tables_become_a_pool() {
        let mut units = TableRows::new();
        units.insert(
            vec![4],
            row(&[
                (2, Value::string("abc")),
                (3, Value::string("unit4")),
                (4, Value::Integer(1)),
                (6, Value::Integer(1)),
                (7, Value::OctetString(vec![127, 0, 0, 11])),
                (8, Value::Gauge32(1161)),
                (9, Value::Gauge32(4096)),
                (10, Value::Gauge32(100)),
                (11, Value::Gauge32(40)),
                (13, Value::OctetString(vec![0x07, 0xEA, 11, 22, 10, 0, 0, 0])),
                (15, Value::string("unit4.example.net")),
            ]),
        );
        units.insert(vec![1, 2], row(&[(3, Value::string("malformed index"))]));
        let mut volumes = TableRows::new();
        volumes.insert(
            vec![4, 2],
            row(&[
                (2, Value::string("db")),
                (3, Value::Gauge32(10)),
                (4, Value::Gauge32(19)),
                (5, Value::Gauge32(10)),
                (6, Value::string("db")),
                (7, Value::Integer(2)),
            ]),
        );
        let mut partitions = TableRows::new();
        partitions.insert(vec![4, 2, 1], row(&[(2, Value::Gauge32(10)), (6, Value::Integer(1))]));
        let pool = pool_from_tables(&units, &volumes, &partitions);
        assert_eq!(pool.units.len(), 1);
        let unit = &pool.units[0];
        assert_eq!((unit.index, unit.name.as_str(), unit.state), (4, "unit4", UnitState::Available));
        assert_eq!(unit.agent, Some("127.0.0.11:1161".parse().unwrap()));
        assert_eq!(unit.agent_full(), "unit4.example.net:1161 (127.0.0.11:1161)");
        assert_eq!(unit.capacity_bytes(), 409_600);
        assert_eq!(unit.last_seen_unix, Some(1_795_341_600));
        assert_eq!(pool.volumes[0].end_lba, 19);
        assert!(!pool.volumes[0].available);
        assert_eq!((pool.partitions[0].volume_index, pool.partitions[0].available), (2, true));
    }

    #[test]
    fn media_rows_become_media_in_address_order() {
        let mut rows = TableRows::new();
        let medium = |path: &str, blocks: u32, first: u32| {
            row(&[
                (2, Value::string(path)),
                (3, Value::Integer(1)),
                (4, Value::Gauge32(blocks)),
                (5, Value::Gauge32(first)),
            ])
        };
        rows.insert(vec![2], medium("/dev/vdb", 300, 100));
        rows.insert(vec![1], medium("/srv/m0.img", 100, 0));
        rows.insert(vec![1, 1], medium("malformed index", 1, 1));
        let media = media_from_table(&rows);
        let summary: Vec<(u32, &str, u32, u32)> =
            media.iter().map(|m| (m.index, m.path.as_str(), m.first_lba, m.end_lba())).collect();
        assert_eq!(summary, [(1, "/srv/m0.img", 0, 99), (2, "/dev/vdb", 100, 399)]);
    }

    #[test]
    fn a_unit_without_a_port_has_no_agent_address() {
        let mut units = TableRows::new();
        units.insert(vec![1], row(&[(6, Value::Integer(1)), (7, Value::OctetString(vec![127, 0, 0, 1]))]));
        let pool = pool_from_tables(&units, &TableRows::new(), &TableRows::new());
        assert_eq!(pool.units[0].agent, None);
        assert_eq!(inet_address(Some(&Value::Integer(1)), Some(&Value::OctetString(vec![1, 2]))), None);
    }

    #[tokio::test]
    async fn a_silent_station_is_reported_in_plain_words() {
        // A bound UDP socket that never answers.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = silent.local_addr().unwrap();
        let mut source = SnmpSource::new(addr, "public", Duration::from_millis(100)).await.unwrap();
        let snapshot = source.snapshot().await;
        let error = snapshot.pool.unwrap_err();
        assert!(error.contains("does not answer"), "{error}");
        assert!(error.contains(&addr.to_string()), "{error}");
        // The tasks and hosts screens say the same rather than showing empty lists.
        assert_eq!(snapshot.tasks, Err(error.clone()));
        assert_eq!(snapshot.assignments, Err(error));
    }

    #[tokio::test]
    async fn the_units_are_read_in_the_background_and_handed_over_once() {
        let silent_station = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let silent_unit = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let timeout = Duration::from_millis(500);
        let mut source = SnmpSource::new(silent_station.local_addr().unwrap(), "public", timeout).await.unwrap();
        let mut pool = crate::source::fake::demo_pool();
        pool.units.truncate(1);
        pool.units[0].agent = Some(silent_unit.local_addr().unwrap());
        // The first call starts the read and does not wait for it.
        let started = Instant::now();
        assert!(source.units_read(Some(&pool)).await.is_none());
        assert!(started.elapsed() < timeout, "waited for the unit");
        let mut reads = None;
        for _ in 0..100 {
            reads = source.units_read(None).await;
            if reads.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let reads = reads.expect("the read of the units never finished");
        assert_eq!(reads.errors.len(), 1, "{:?}", reads.errors);
        assert!(reads.errors[0].starts_with("unit unit1 at 127.0.0.1:"), "{:?}", reads.errors);
        assert!(reads.traffic.is_empty());
        // Handed over once; none runs until the next pool asks for one.
        assert!(source.units_read(None).await.is_none());
        assert!(source.reading.is_none() && source.reader.is_some());
        assert!(source.units_read(Some(&pool)).await.is_none());
        assert!(source.reading.is_some());
    }

    fn date(hour: u8) -> Value {
        Value::OctetString(vec![0x07, 0xEA, 11, 22, hour, 0, 0, 0])
    }

    #[test]
    fn task_rows_become_tasks() {
        let mut rows = TableRows::new();
        rows.insert(
            vec![12],
            row(&[
                (2, Value::Integer(5)),
                (3, Value::string("unit1")),
                (4, Value::Gauge32(2)),
                (7, Value::string("192.0.2.10")),
                (9, Value::Integer(1)),
                (10, Value::string("console@noc-1")),
                (11, Value::Integer(4)),
                (12, Value::Gauge32(250)),
                (13, Value::string("granting")),
                (14, Value::string("unit1 refused the grant")),
                (15, Value::Gauge32(1)),
                (16, Value::Gauge32(2)),
                (17, date(10)),
                (18, date(11)),
                (19, Value::Integer(1)),
            ]),
        );
        rows.insert(
            vec![13],
            row(&[
                (2, Value::Integer(42)),
                (9, Value::Integer(2)),
                (11, Value::Integer(9)),
                (18, Value::OctetString(vec![0; 8])),
            ]),
        );
        rows.insert(vec![1, 2], row(&[(2, Value::Integer(1))]));
        let tasks = tasks_from_table(&rows);
        assert_eq!(tasks.len(), 2);
        let task = &tasks[0];
        assert_eq!(
            (task.index, task.operation, task.state),
            (12, TaskOperation::AssignVolume.into(), TaskState::Failed.into())
        );
        assert_eq!(
            (task.unit.as_str(), task.volume, task.host.as_str()),
            ("unit1", Some(VolumeIndex(2)), "192.0.2.10")
        );
        assert!(task.read_only);
        assert_eq!((task.owner.as_str(), task.progress, task.step.as_str()), ("console@noc-1", 100, "granting"));
        assert_eq!(
            (task.result.as_str(), task.result_unit, task.result_volume),
            ("unit1 refused the grant", Some(1), Some(VolumeIndex(2)))
        );
        assert_eq!((task.created_unix, task.finished_unix), (Some(1_795_341_600), Some(1_795_345_200)));
        assert_eq!(task.summary(), "assign unit1/2 → 192.0.2.10 (ro)");
        assert_eq!(task.step_or_result(), "unit1 refused the grant");
        let unknown = &tasks[1];
        assert_eq!((unknown.operation, unknown.state), (Reported::Unknown(42), Reported::Unknown(9)));
        assert!(!unknown.read_only);
        assert_eq!((unknown.finished_unix, unknown.summary().as_str()), (None, "operation 42"));
    }

    #[test]
    fn assignment_rows_become_assignments() {
        let mut rows = TableRows::new();
        rows.insert(
            vec![1, 2],
            row(&[
                (1, Value::Integer(1)),
                (2, Value::OctetString(vec![192, 0, 2, 10])),
                (3, Value::Integer(2)),
                (4, Value::string("nbd://127.0.0.11:10809/db1")),
                (5, Value::string("db1")),
            ]),
        );
        rows.insert(vec![3, 1], row(&[(1, Value::Integer(16)), (3, Value::Integer(7))]));
        rows.insert(vec![3], row(&[(5, Value::string("malformed index"))]));
        let assignments = assignments_from_table(&rows);
        assert_eq!(assignments.len(), 2);
        let a = &assignments[0];
        assert_eq!((a.unit_index, a.volume_index, a.host), (1, 2, Some("192.0.2.10".parse().unwrap())));
        assert_eq!(
            (a.mode, a.nbd_uri.as_str(), a.volume_name.as_str()),
            (AssignMode::ReadOnly, "nbd://127.0.0.11:10809/db1", "db1")
        );
        let b = &assignments[1];
        assert_eq!((b.host, b.host_text().as_str(), b.mode), (None, "?", AssignMode::Unknown(7)));
    }

    #[tokio::test]
    async fn tasks_and_assignments_are_read_from_the_station() {
        use crate::source::fake_station::{FakeStation, READ_COMMUNITY};
        let station = FakeStation::start(true).await;
        let manager = Manager::new("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let target = Target::new(station.addr, READ_COMMUNITY).with_timeout(Duration::from_secs(2), 0);
        // Empty tables are empty lists, not errors.
        assert_eq!(read_tasks(&manager, &target).await, Ok(Vec::new()));
        assert_eq!(read_assignments(&manager, &target).await, Ok(Vec::new()));
        station.add_task(3, mib::dvsan_station_task_operation::RESCAN_UNIT, 2, "console@noc-1");
        station.state().assignments.insert(
            (1, 2),
            row(&[
                (1, Value::Integer(2)),
                (2, Value::OctetString([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1].to_vec())),
                (3, Value::Integer(1)),
            ]),
        );
        let tasks = read_tasks(&manager, &target).await.unwrap();
        assert_eq!(tasks.len(), 1);
        assert_eq!(
            (tasks[0].index, tasks[0].state, tasks[0].owner.as_str()),
            (3, TaskState::Running.into(), "console@noc-1")
        );
        let assignments = read_assignments(&manager, &target).await.unwrap();
        assert_eq!(assignments.len(), 1);
        assert_eq!((assignments[0].host, assignments[0].mode), (Some("::1".parse().unwrap()), AssignMode::ReadWrite));

        // A station without the task table says so instead of showing an empty list.
        let old = FakeStation::start(false).await;
        let target = Target::new(old.addr, READ_COMMUNITY).with_timeout(Duration::from_secs(2), 0);
        let error = read_tasks(&manager, &target).await.unwrap_err();
        assert!(error.contains("does not run tasks"), "{error}");
        // A silent one: the station error, per table.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let target =
            Target::new(silent.local_addr().unwrap(), READ_COMMUNITY).with_timeout(Duration::from_millis(100), 0);
        assert!(read_tasks(&manager, &target).await.unwrap_err().contains("does not answer"));
        assert!(read_assignments(&manager, &target).await.unwrap_err().contains("does not answer"));
    }
}
