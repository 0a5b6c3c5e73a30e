//! A task as plain values: the operation it runs and its arguments as dvsanStationTaskTable's columns hold them
//! ([`OperationKind`], [`Arguments`]), where it is ([`TaskState`]) and the whole row ([`Task`]).
//!
//! The store persists these, the operations parse [`Arguments`], the task runner moves a [`Task`] through its
//! states and the task table serves it; none of that is needed to hold one, so this module sits at the bottom.

use crate::set_values::truncate;
use dvsan_layout::{PartitionIndex, VolumeIndex};
/// Which operation a task runs, and where a task is: one definition with the console's, in the MIB crate.
pub use dvsan_mib::station_tasks::{TaskOperation as OperationKind, TaskState};

/// An operation and its arguments as a task row holds them: text, checked only when the task runs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Arguments {
    pub operation: OperationKind,
    /// The unit (index, unit id or prefix, name or agent address); for addUnit the agent's address.
    pub unit: String,
    /// The volume's index on the unit (the task table's 0: not given).
    #[serde(serialize_with = "zero_if_absent")]
    pub volume: Option<VolumeIndex>,
    /// The partition's index in the volume (the task table's 0: not given).
    #[serde(serialize_with = "zero_if_absent")]
    pub partition: Option<PartitionIndex>,
    /// Bytes, or a number with K, M, G, T.
    pub size: String,
    /// The host's IP address, in text.
    pub host: String,
    /// The name of a volume to create; empty lets the unit name it.
    pub name: String,
    pub read_only: bool,
    /// For assignVolume and allocate: a shared read-write assignment (readWriteShared grant).
    pub shared: bool,
    /// For allocate: how many replicas (2 or 3: a mirrored volume, each replica on another unit); 0 or 1: one.
    pub replicas: u32,
}

impl Arguments {
    /// `operation` with every argument at its default (the MIB's DEFVALs).
    pub fn new(operation: OperationKind) -> Arguments {
        Arguments {
            operation,
            unit: String::new(),
            volume: None,
            partition: None,
            size: String::new(),
            host: String::new(),
            name: String::new(),
            read_only: false,
            shared: false,
            replicas: 0,
        }
    }
}

/// Longest step and result texts (the MIB's DisplayString sizes).
pub const TEXT_MAX: usize = 255;

/// One task: a row of dvsanStationTaskTable.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Task {
    pub index: u32,
    #[serde(flatten)]
    pub arguments: Arguments,
    /// Who started it, as the manager describes itself (display only).
    pub owner: String,
    pub state: TaskState,
    /// Percent, by the steps finished.
    pub progress: u32,
    /// What it does or waits for now; empty once ended.
    pub step: String,
    /// How it ended, in plain words; empty until then.
    pub result: String,
    /// The unit it changed (station index), once known (the task table's 0: none).
    #[serde(serialize_with = "zero_if_absent")]
    pub result_unit: Option<u32>,
    /// The volume it created, assigned or changed (the task table's 0: none).
    #[serde(serialize_with = "zero_if_absent")]
    pub result_volume: Option<VolumeIndex>,
    pub created_ms: i64,
    pub finished_ms: Option<i64>,
}

impl Task {
    /// A new pending task.
    pub fn new(index: u32, arguments: Arguments, owner: String, created_ms: i64) -> Task {
        Task {
            index,
            arguments,
            owner,
            state: TaskState::Pending,
            progress: 0,
            step: "queued".to_string(),
            result: String::new(),
            result_unit: None,
            result_volume: None,
            created_ms,
            finished_ms: None,
        }
    }

    /// Ends the task: state, result (cut to the MIB's size), unit and volume, finish time.
    pub fn end(&mut self, state: TaskState, result: &str, unit: Option<u32>, volume: Option<VolumeIndex>, now_ms: i64) {
        self.state = state;
        self.result = truncate(result, TEXT_MAX);
        self.result_unit = unit;
        self.result_volume = volume;
        self.step.clear();
        if state == TaskState::Done {
            self.progress = 100;
        }
        self.finished_ms = Some(now_ms);
    }
}

/// Serialises an absent index as 0, as the task table shows it (`dvsan-station tasks --json` keeps its format).
fn zero_if_absent<T: serde::Serialize, S: serde::Serializer>(value: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => v.serialize(s),
        None => s.serialize_u32(0),
    }
}
