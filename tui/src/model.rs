//! The console's view of the pool: units, volumes, partitions, host assignments, station tasks, traffic rates
//! and notifications, as the sources deliver them. Plain data, no I/O, so screens can be rendered from hand-made
//! values in tests.

use dvsan_layout::{PartitionIndex, VolumeIndex};
use dvsan_mib::dvsan_station_assign_mode as assign_mode;
use dvsan_mib::station_tasks::MibEnum;
pub use dvsan_mib::station_tasks::{TaskOperation, TaskState};
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// A unit's state as the station reports it (dvsanStationUnitState).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnitState {
    Available,
    Unavailable,
    Unreachable,
    Error,
    /// A value this console does not know.
    Unknown(i32),
}

impl UnitState {
    pub fn from_code(code: i32) -> UnitState {
        match code {
            1 => UnitState::Available,
            2 => UnitState::Unavailable,
            3 => UnitState::Unreachable,
            4 => UnitState::Error,
            other => UnitState::Unknown(other),
        }
    }
}

impl fmt::Display for UnitState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnitState::Available => f.write_str("available"),
            UnitState::Unavailable => f.write_str("unavailable"),
            UnitState::Unreachable => f.write_str("unreachable"),
            UnitState::Error => f.write_str("error"),
            UnitState::Unknown(code) => write!(f, "state {code}"),
        }
    }
}

/// One row of dvsanStationUnitTable.
#[derive(Clone, Debug, PartialEq)]
pub struct Unit {
    /// The station's number for the unit (dvsanStationUnitIndex).
    pub index: u32,
    pub id: String,
    pub name: String,
    pub state: UnitState,
    pub reason: String,
    /// The unit's SNMP agent, when the station knows it.
    pub agent: Option<SocketAddr>,
    /// The host name the unit was added by (`unit add NAME`), empty when it was added or found by address.
    pub host_name: String,
    pub block_size: u32,
    pub capacity_blocks: u32,
    pub free_blocks: u32,
    pub volumes: u32,
    /// Unix seconds (UTC) of the last answer or notification; `None` when never heard from.
    pub last_seen_unix: Option<i64>,
}

impl Unit {
    pub fn capacity_bytes(&self) -> u64 {
        u64::from(self.capacity_blocks) * u64::from(self.block_size)
    }
    pub fn free_bytes(&self) -> u64 {
        u64::from(self.free_blocks) * u64::from(self.block_size)
    }
    /// The agent's address as the operator gave it: `NAME:PORT` for a unit added by host name, else `IP:PORT`;
    /// `-` when the station has none.
    pub fn agent_short(&self) -> String {
        match (self.agent, self.host_name.is_empty()) {
            (Some(a), false) => format!("{}:{}", self.host_name, a.port()),
            (Some(a), true) => a.to_string(),
            (None, false) => self.host_name.clone(),
            (None, true) => "-".to_string(),
        }
    }

    /// `NAME:PORT (IP:PORT)` for a unit added by host name, else what [`Unit::agent_short`] says.
    pub fn agent_full(&self) -> String {
        match (self.agent, self.host_name.is_empty()) {
            (Some(a), false) => format!("{}:{} ({a})", self.host_name, a.port()),
            _ => self.agent_short(),
        }
    }

    /// The name people know the unit by: its name, else its id, else its index.
    pub fn label(&self) -> String {
        if !self.name.is_empty() {
            self.name.clone()
        } else if !self.id.is_empty() {
            self.id.chars().take(8).collect()
        } else {
            format!("#{}", self.index)
        }
    }
}

/// Whether a pending unit waits for a decision or was rejected (dvsanStationPendingState).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PendingState {
    Pending,
    Rejected,
    /// A value this console does not know.
    Unknown(i32),
}

impl PendingState {
    pub fn from_code(code: i32) -> PendingState {
        match code {
            dvsan_mib::dvsan_station_pending_state::PENDING => PendingState::Pending,
            dvsan_mib::dvsan_station_pending_state::REJECTED => PendingState::Rejected,
            other => PendingState::Unknown(other),
        }
    }
}

impl fmt::Display for PendingState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PendingState::Pending => f.write_str("pending"),
            PendingState::Rejected => f.write_str("rejected"),
            PendingState::Unknown(code) => write!(f, "state {code}"),
        }
    }
}

/// A unit that announced itself without being trusted: a row of dvsanStationPendingTable, with what it claims.
#[derive(Clone, Debug, PartialEq)]
pub struct PendingUnit {
    /// The station's number for the row (dvsanStationPendingIndex).
    pub index: u32,
    /// The unit id it claims; empty when it has not said.
    pub unit_id: String,
    pub name: String,
    /// Its agent: the notifications' source and the agent port.
    pub address: Option<SocketAddr>,
    pub sys_name: String,
    pub sys_descr: String,
    /// Unix seconds (UTC).
    pub first_seen_unix: Option<i64>,
    pub last_seen_unix: Option<i64>,
    pub notifications: u64,
    pub state: PendingState,
}

impl PendingUnit {
    /// `#3 127.0.0.5:1161 "name" (claims unit id 1234abcd)`, for questions and messages.
    pub fn describe(&self) -> String {
        let mut text = format!("#{} {}", self.index, self.address_text());
        if !self.name.is_empty() {
            text.push_str(&format!(" {:?}", self.name));
        }
        if !self.unit_id.is_empty() {
            text.push_str(&format!(" (claims unit id {})", self.unit_id));
        }
        text
    }

    pub fn address_text(&self) -> String {
        self.address.map_or_else(|| "-".to_string(), |a| a.to_string())
    }
}

/// One row of dvsanStationVolumeTable.
#[derive(Clone, Debug, PartialEq)]
pub struct Volume {
    pub unit_index: u32,
    pub index: u32,
    pub name: String,
    pub start_lba: u32,
    pub end_lba: u32,
    pub length_blocks: u32,
    pub export: String,
    pub available: bool,
}

/// One row of dvsanStationPartitionTable.
#[derive(Clone, Debug, PartialEq)]
pub struct Partition {
    pub unit_index: u32,
    pub volume_index: u32,
    pub index: u32,
    pub start_lba: u32,
    pub end_lba: u32,
    pub length_blocks: u32,
    pub export: String,
    pub available: bool,
}

/// One storage medium of a unit (a row of the unit's own dvsanMediaTable, DVSAN-MIB): the unit concatenates its
/// media into one address space, so medium `n` covers LBAs `first_lba..first_lba + blocks`.
#[derive(Clone, Debug, PartialEq)]
pub struct Medium {
    pub index: u32,
    /// The file or block device.
    pub path: String,
    pub blocks: u32,
    pub first_lba: u32,
}

impl Medium {
    /// The last LBA of the medium (its first when it has no blocks).
    pub fn end_lba(&self) -> u32 {
        self.first_lba.saturating_add(self.blocks.saturating_sub(1))
    }
}

/// The station's pool at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Pool {
    pub units: Vec<Unit>,
    pub volumes: Vec<Volume>,
    pub partitions: Vec<Partition>,
}

impl Pool {
    /// The unit with station index `index`: found by bisection, as the station's table lists units in index order
    /// (a list in another order is searched from the start).
    pub fn unit(&self, index: u32) -> Option<&Unit> {
        match self.units.binary_search_by_key(&index, |u| u.index) {
            Ok(at) => Some(&self.units[at]),
            Err(_) => self.units.iter().find(|u| u.index == index),
        }
    }
}

/// How a host may use an assigned volume (dvsanStationAssignMode).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AssignMode {
    ReadWrite,
    ReadOnly,
    /// A value this console does not know.
    Unknown(i32),
}

impl AssignMode {
    pub fn from_code(code: i32) -> AssignMode {
        match code {
            assign_mode::READ_WRITE => AssignMode::ReadWrite,
            assign_mode::READ_ONLY => AssignMode::ReadOnly,
            other => AssignMode::Unknown(other),
        }
    }
}

impl fmt::Display for AssignMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AssignMode::ReadWrite => f.write_str("read-write"),
            AssignMode::ReadOnly => f.write_str("read-only"),
            AssignMode::Unknown(code) => write!(f, "mode {code}"),
        }
    }
}

/// One row of dvsanStationAssignmentTable: a volume assigned to a host.
#[derive(Clone, Debug, PartialEq)]
pub struct Assignment {
    pub unit_index: u32,
    pub volume_index: u32,
    /// `None` when the station reports an address type this console does not read.
    pub host: Option<IpAddr>,
    pub mode: AssignMode,
    /// Empty while the volume is not in the pool.
    pub nbd_uri: String,
    pub volume_name: String,
    /// For a replica of a mirrored volume: `m3 1/2 inSync` (mirror 3, replica 1 of 2, as the host's front last
    /// reported it); empty otherwise.
    pub replica: String,
}

impl Assignment {
    /// The host as text (`?` when unknown).
    pub fn host_text(&self) -> String {
        self.host.map_or("?".to_string(), |h| h.to_string())
    }
}

/// A MIB enumeration's value as the station reported it: one this console knows, or another one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reported<T> {
    Known(T),
    /// A value this console does not know.
    Unknown(i32),
}

impl<T: MibEnum> Reported<T> {
    pub fn from_code(code: i32) -> Reported<T> {
        T::from_mib(code).map_or(Reported::Unknown(code), Reported::Known)
    }

    /// The MIB's value.
    pub fn code(self) -> i32 {
        match self {
            Reported::Known(value) => value.mib_value(),
            Reported::Unknown(code) => code,
        }
    }
}

impl<T> From<T> for Reported<T> {
    fn from(value: T) -> Reported<T> {
        Reported::Known(value)
    }
}

impl<T: PartialEq> PartialEq<T> for Reported<T> {
    fn eq(&self, other: &T) -> bool {
        matches!(self, Reported::Known(value) if value == other)
    }
}

impl Reported<TaskState> {
    /// Done, failed or cancelled: the task will not change any more.
    pub fn is_ended(self) -> bool {
        matches!(self, Reported::Known(state) if state.is_ended())
    }
}

impl fmt::Display for Reported<TaskState> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reported::Known(state) => state.fmt(f),
            Reported::Unknown(code) => write!(f, "state {code}"),
        }
    }
}

/// One row of dvsanStationTaskTable.
#[derive(Clone, Debug, PartialEq)]
pub struct Task {
    /// dvsanStationTaskIndex.
    pub index: u32,
    pub operation: Reported<TaskOperation>,
    /// The unit as the task names it (index, id, name or address), as given.
    pub unit: String,
    /// The volume the task names (the task table's 0: none).
    pub volume: Option<VolumeIndex>,
    /// The partition the task names (the task table's 0: none).
    pub partition: Option<PartitionIndex>,
    /// The size as given (bytes or with a K/M/G/T suffix).
    pub size: String,
    pub host: String,
    pub name: String,
    pub read_only: bool,
    pub owner: String,
    pub state: Reported<TaskState>,
    /// Percent, 0..=100.
    pub progress: u32,
    pub step: String,
    pub result: String,
    /// The unit it changed (station index), once known (the task table's 0: none).
    pub result_unit: Option<u32>,
    /// The volume it created, assigned or changed (the task table's 0: none).
    pub result_volume: Option<VolumeIndex>,
    /// Unix seconds (UTC).
    pub created_unix: Option<i64>,
    /// Unix seconds (UTC); `None` while the task has not ended.
    pub finished_unix: Option<i64>,
}

impl Task {
    /// A task of `operation` with no arguments, pending: a base for building rows.
    pub fn new(index: u32, operation: impl Into<Reported<TaskOperation>>) -> Task {
        Task {
            index,
            operation: operation.into(),
            unit: String::new(),
            volume: None,
            partition: None,
            size: String::new(),
            host: String::new(),
            name: String::new(),
            read_only: false,
            owner: String::new(),
            state: Reported::Known(TaskState::Pending),
            progress: 0,
            step: String::new(),
            result: String::new(),
            result_unit: None,
            result_volume: None,
            created_unix: None,
            finished_unix: None,
        }
    }

    /// The operation and its arguments, short: `create 2 GiB vol on unit1 "db2"`, `assign unit1/2 → 10.0.0.9`;
    /// volumes and partitions as `unit/volume[/partition]`.
    pub fn summary(&self) -> String {
        let size = match dvsan_layout::parse_size(&self.size) {
            Ok(bytes) => dvsan_layout::HumanSize(bytes).to_string(),
            Err(_) => self.size.clone(),
        };
        let named = if self.name.is_empty() { String::new() } else { format!(" \"{}\"", self.name) };
        let read_only = if self.read_only { " (ro)" } else { "" };
        let (unit, volume, partition) = (&self.unit, self.volume.map_or(0, |v| v.0), self.partition.map_or(0, |p| p.0));
        let Reported::Known(operation) = self.operation else {
            return format!("operation {}", self.operation.code());
        };
        match operation {
            TaskOperation::CreateVolume => format!("create {size} vol on {unit}{named}"),
            TaskOperation::DestroyVolume => format!("destroy vol {unit}/{volume}"),
            TaskOperation::CreatePartition => format!("create {size} part in {unit}/{volume}"),
            TaskOperation::DestroyPartition => format!("destroy part {unit}/{volume}/{partition}"),
            TaskOperation::AssignVolume => format!("assign {unit}/{volume} → {}{read_only}", self.host),
            TaskOperation::UnassignVolume if self.host.is_empty() => format!("unassign {unit}/{volume}"),
            TaskOperation::UnassignVolume => format!("unassign {unit}/{volume} from {}", self.host),
            TaskOperation::Allocate => format!("allocate {size} → {}{named}{read_only}", self.host),
            TaskOperation::RescanUnit => format!("rescan {unit}"),
            TaskOperation::AddUnit => format!("add unit {unit}"),
            TaskOperation::RemoveUnit => format!("remove unit {unit}"),
            TaskOperation::RemoveUnitForce => format!("remove unit {unit}, releasing"),
            TaskOperation::ApproveUnit => format!("approve pending {unit}"),
            TaskOperation::RejectUnit => format!("reject pending {unit}"),
            TaskOperation::ClearVolume => format!("clear vol {unit}/{volume}"),
        }
    }

    /// The step while the task is pending or running, the result once it ended.
    pub fn step_or_result(&self) -> &str {
        if self.state.is_ended() {
            &self.result
        } else {
            &self.step
        }
    }
}

/// Per-second rates of one (unit, export, host) row of a unit's dvsanTrafficTable.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rates {
    pub reads: f64,
    pub writes: f64,
    pub bytes_read: f64,
    pub bytes_written: f64,
}

/// Activity of one host on one export of one unit.
#[derive(Clone, Debug, PartialEq)]
pub struct Traffic {
    pub unit_index: u32,
    pub unit_label: String,
    pub export: String,
    pub host: String,
    /// `None` until two samples have been taken.
    pub rates: Option<Rates>,
}

/// One notification from the station's log.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    pub id: i64,
    /// As the station prints it (RFC 3339, UTC).
    pub time: String,
    pub source: String,
    /// The notification's name, e.g. `linkDown` or `dvsanLayoutChanged`.
    pub type_name: String,
    pub unit_id: Option<String>,
    /// The varbinds, `name=value` separated by spaces.
    pub details: String,
}

/// What one refresh of the pool source produced.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// Unix seconds when the snapshot was taken.
    pub taken_unix: i64,
    /// The pool, or why the station could not be read (plain words).
    pub pool: Result<Pool, String>,
    pub traffic: Vec<Traffic>,
    /// Units whose traffic table could not be read, with why.
    pub traffic_errors: Vec<String>,
    /// The station's tasks, or why they could not be read.
    pub tasks: Result<Vec<Task>, String>,
    /// The station's host assignments, or why they could not be read.
    pub assignments: Result<Vec<Assignment>, String>,
    /// Units waiting for the operator's approval (and rejected ones), or why they could not be read.
    pub pending: Result<Vec<PendingUnit>, String>,
    /// The media of the units that answered, by unit index (the station's MIB does not carry media; they are
    /// read from each unit's agent, like the traffic).
    pub media: BTreeMap<u32, Vec<Medium>>,
    /// Whether `traffic`, `traffic_errors` and `media` are a new read of the units. The units are read apart from
    /// the station's tables, and with thousands of units that takes longer than a refresh: the snapshots in
    /// between carry none (and the console keeps what it has).
    pub units_read: bool,
}

/// How the notification tail is doing.
#[derive(Clone, Debug, PartialEq)]
pub enum TailStatus {
    /// Not started yet: the first read of the station's log is under way.
    Starting,
    Following,
    /// The tail stopped, with why.
    Stopped(String),
}

/// Now, in Unix seconds.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// `secs` as a short age: `4s`, `12m`, `3h`, `2d`.
pub fn short_age(secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m", secs / 60),
        3600..=86_399 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// A rate for people: `0`, `12.5`, `3.2k`, `1.1M`.
pub fn short_rate(value: f64) -> String {
    if value < 0.05 {
        "0".to_string()
    } else if value < 1000.0 {
        format!("{value:.1}")
    } else if value < 1_000_000.0 {
        format!("{:.1}k", value / 1000.0)
    } else {
        format!("{:.1}M", value / 1_000_000.0)
    }
}

/// Bytes per second for people: `0 B/s`, `4.0 KiB/s`, `12.3 MiB/s`.
pub fn byte_rate(value: f64) -> String {
    match dvsan_layout::binary_scale(value) {
        (value, "B") => format!("{value:.0} B/s"),
        (value, unit) => format!("{value:.1} {unit}/s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_rates_read_well() {
        assert_eq!(short_age(-3), "0s");
        assert_eq!(short_age(59), "59s");
        assert_eq!(short_age(61), "1m");
        assert_eq!(short_age(7200), "2h");
        assert_eq!(short_age(200_000), "2d");
        assert_eq!(short_rate(0.0), "0");
        assert_eq!(short_rate(12.46), "12.5");
        assert_eq!(short_rate(3200.0), "3.2k");
        assert_eq!(byte_rate(100.0), "100 B/s");
        assert_eq!(byte_rate(4096.0), "4.0 KiB/s");
        assert_eq!(byte_rate(3.0 * 1024.0 * 1024.0), "3.0 MiB/s");
    }

    #[test]
    fn unit_labels_fall_back_to_id_then_index() {
        let mut unit = Unit {
            index: 7,
            id: String::new(),
            name: String::new(),
            state: UnitState::from_code(9),
            reason: String::new(),
            agent: None,
            block_size: 4096,
            capacity_blocks: 2,
            free_blocks: 1,
            volumes: 0,
            host_name: String::new(),
            last_seen_unix: None,
        };
        assert_eq!(unit.label(), "#7");
        assert_eq!((unit.agent_short(), unit.agent_full()), ("-".to_string(), "-".to_string()));
        unit.agent = Some("127.0.0.5:1161".parse().unwrap());
        assert_eq!((unit.agent_short(), unit.agent_full()), ("127.0.0.5:1161".into(), "127.0.0.5:1161".into()));
        unit.host_name = "san5".into();
        assert_eq!(unit.agent_short(), "san5:1161");
        assert_eq!(unit.agent_full(), "san5:1161 (127.0.0.5:1161)");
        unit.id = "0123456789abcdef".into();
        assert_eq!(unit.label(), "01234567");
        unit.name = "u1".into();
        assert_eq!(unit.label(), "u1");
        assert_eq!(unit.capacity_bytes(), 8192);
        assert_eq!(unit.state.to_string(), "state 9");
    }

    #[test]
    fn task_summaries_are_short_and_complete() {
        let task = |operation, edit: fn(&mut Task)| {
            let mut task = Task::new(1, operation);
            task.unit = "unit1".into();
            task.volume = Some(VolumeIndex(2));
            edit(&mut task);
            task.summary()
        };
        assert_eq!(
            task(TaskOperation::CreateVolume, |t| {
                t.size = "2147483648".into();
                t.name = "db2".into();
            }),
            "create 2 GiB vol on unit1 \"db2\""
        );
        assert_eq!(task(TaskOperation::CreateVolume, |t| t.size = "80G".into()), "create 80 GiB vol on unit1");
        assert_eq!(task(TaskOperation::CreateVolume, |t| t.size = "lots".into()), "create lots vol on unit1");
        assert_eq!(task(TaskOperation::DestroyVolume, |_| {}), "destroy vol unit1/2");
        assert_eq!(task(TaskOperation::CreatePartition, |t| t.size = "512M".into()), "create 512 MiB part in unit1/2");
        assert_eq!(
            task(TaskOperation::DestroyPartition, |t| t.partition = Some(PartitionIndex(3))),
            "destroy part unit1/2/3"
        );
        assert_eq!(task(TaskOperation::AssignVolume, |t| t.host = "10.0.0.9".into()), "assign unit1/2 → 10.0.0.9");
        assert_eq!(task(TaskOperation::UnassignVolume, |_| {}), "unassign unit1/2");
        assert_eq!(task(TaskOperation::UnassignVolume, |t| t.host = "::1".into()), "unassign unit1/2 from ::1");
        assert_eq!(
            task(TaskOperation::Allocate, |t| {
                t.size = "1G".into();
                t.host = "10.0.0.9".into();
                t.read_only = true;
            }),
            "allocate 1 GiB → 10.0.0.9 (ro)"
        );
        assert_eq!(task(TaskOperation::RescanUnit, |_| {}), "rescan unit1");
        assert_eq!(task(TaskOperation::AddUnit, |t| t.unit = "127.0.0.14".into()), "add unit 127.0.0.14");
        assert_eq!(task(TaskOperation::ApproveUnit, |t| t.unit = "3".into()), "approve pending 3");
        assert_eq!(task(TaskOperation::RejectUnit, |t| t.unit = "3".into()), "reject pending 3");
        let clear = task(TaskOperation::ClearVolume, |t| {
            t.unit = "1".into();
            t.volume = Some(dvsan_layout::VolumeIndex(4));
        });
        assert_eq!(clear, "clear vol 1/4");
    }

    #[test]
    fn task_and_assignment_codes_follow_the_mib() {
        for code in 1..=14 {
            assert_eq!(Reported::<TaskOperation>::from_code(code).code(), code);
            assert!(!matches!(Reported::<TaskOperation>::from_code(code), Reported::Unknown(_)));
        }
        assert_eq!(Reported::<TaskOperation>::from_code(15), Reported::Unknown(15));
        let ended: Vec<bool> = (1..=6).map(|code| Reported::<TaskState>::from_code(code).is_ended()).collect();
        assert_eq!(ended, [false, false, true, true, true, false]);
        assert_eq!(Reported::<TaskState>::from_code(5).to_string(), "cancelled");
        assert_eq!(Reported::<TaskState>::from_code(0).to_string(), "state 0");
        assert_eq!(AssignMode::from_code(1).to_string(), "read-write");
        assert_eq!(AssignMode::from_code(2).to_string(), "read-only");
        assert_eq!(AssignMode::from_code(3).to_string(), "mode 3");
    }
}
