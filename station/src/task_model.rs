//! A task as plain values: the operation it runs and its arguments as dvsanStationTaskTable's columns hold them
//! ([`OperationKind`], [`Arguments`]), where it is ([`TaskState`]) and the whole row ([`Task`]).
//!
//! The store persists these, the operations parse [`Arguments`], the task runner moves a [`Task`] through its
//! states and the task table serves it; none of that is needed to hold one, so this module sits at the bottom.

use crate::set_values::truncate;
use dvsan_mib::dvsan_station_task_operation as mib_operation;
use dvsan_mib::dvsan_station_task_state as mib_state;
use std::fmt;
use std::str::FromStr;

/// Which operation a task runs (dvsanStationTaskOperation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(into = "&'static str")]
pub enum OperationKind {
    CreateVolume,
    DestroyVolume,
    CreatePartition,
    DestroyPartition,
    AssignVolume,
    UnassignVolume,
    Allocate,
    RescanUnit,
    AddUnit,
    RemoveUnit,
    RemoveUnitForce,
}

impl OperationKind {
    pub const ALL: [OperationKind; 11] = [
        OperationKind::CreateVolume,
        OperationKind::DestroyVolume,
        OperationKind::CreatePartition,
        OperationKind::DestroyPartition,
        OperationKind::AssignVolume,
        OperationKind::UnassignVolume,
        OperationKind::Allocate,
        OperationKind::RescanUnit,
        OperationKind::AddUnit,
        OperationKind::RemoveUnit,
        OperationKind::RemoveUnitForce,
    ];

    /// The MIB's label, e.g. `createVolume`.
    pub fn as_str(self) -> &'static str {
        match self {
            OperationKind::CreateVolume => "createVolume",
            OperationKind::DestroyVolume => "destroyVolume",
            OperationKind::CreatePartition => "createPartition",
            OperationKind::DestroyPartition => "destroyPartition",
            OperationKind::AssignVolume => "assignVolume",
            OperationKind::UnassignVolume => "unassignVolume",
            OperationKind::Allocate => "allocate",
            OperationKind::RescanUnit => "rescanUnit",
            OperationKind::AddUnit => "addUnit",
            OperationKind::RemoveUnit => "removeUnit",
            OperationKind::RemoveUnitForce => "removeUnitForce",
        }
    }

    /// The MIB's enumeration value.
    pub fn mib_value(self) -> i32 {
        match self {
            OperationKind::CreateVolume => mib_operation::CREATE_VOLUME,
            OperationKind::DestroyVolume => mib_operation::DESTROY_VOLUME,
            OperationKind::CreatePartition => mib_operation::CREATE_PARTITION,
            OperationKind::DestroyPartition => mib_operation::DESTROY_PARTITION,
            OperationKind::AssignVolume => mib_operation::ASSIGN_VOLUME,
            OperationKind::UnassignVolume => mib_operation::UNASSIGN_VOLUME,
            OperationKind::Allocate => mib_operation::ALLOCATE,
            OperationKind::RescanUnit => mib_operation::RESCAN_UNIT,
            OperationKind::AddUnit => mib_operation::ADD_UNIT,
            OperationKind::RemoveUnit => mib_operation::REMOVE_UNIT,
            OperationKind::RemoveUnitForce => mib_operation::REMOVE_UNIT_FORCE,
        }
    }

    pub fn from_mib(value: i32) -> Option<OperationKind> {
        OperationKind::ALL.into_iter().find(|k| k.mib_value() == value)
    }
}

impl fmt::Display for OperationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OperationKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        OperationKind::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| format!("unknown operation {s:?}"))
    }
}

impl From<OperationKind> for &'static str {
    fn from(kind: OperationKind) -> &'static str {
        kind.as_str()
    }
}

/// An operation and its arguments as a task row holds them: text, checked only when the task runs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Arguments {
    pub operation: OperationKind,
    /// The unit (index, unit id or prefix, name or agent address); for addUnit the agent's address.
    pub unit: String,
    /// The volume's index on the unit; 0 when not given.
    pub volume: u32,
    /// The partition's index in the volume; 0 when not given.
    pub partition: u32,
    /// Bytes, or a number with K, M, G, T.
    pub size: String,
    /// The host's IP address, in text.
    pub host: String,
    /// The name of a volume to create; empty lets the unit name it.
    pub name: String,
    pub read_only: bool,
}

impl Arguments {
    /// `operation` with every argument at its default (the MIB's DEFVALs).
    pub fn new(operation: OperationKind) -> Arguments {
        Arguments {
            operation,
            unit: String::new(),
            volume: 0,
            partition: 0,
            size: String::new(),
            host: String::new(),
            name: String::new(),
            read_only: false,
        }
    }
}

/// Longest step and result texts (the MIB's DisplayString sizes).
pub const TEXT_MAX: usize = 255;

/// Where a task is (dvsanStationTaskState).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    Pending,
    Running,
    Done,
    Failed,
    Cancelled,
}

impl TaskState {
    pub const ALL: [TaskState; 5] =
        [TaskState::Pending, TaskState::Running, TaskState::Done, TaskState::Failed, TaskState::Cancelled];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Pending => "pending",
            TaskState::Running => "running",
            TaskState::Done => "done",
            TaskState::Failed => "failed",
            TaskState::Cancelled => "cancelled",
        }
    }

    /// The MIB's enumeration value.
    pub fn mib_value(self) -> i32 {
        match self {
            TaskState::Pending => mib_state::PENDING,
            TaskState::Running => mib_state::RUNNING,
            TaskState::Done => mib_state::DONE,
            TaskState::Failed => mib_state::FAILED,
            TaskState::Cancelled => mib_state::CANCELLED,
        }
    }

    /// Done, failed or cancelled.
    pub fn is_ended(self) -> bool {
        matches!(self, TaskState::Done | TaskState::Failed | TaskState::Cancelled)
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        TaskState::ALL.into_iter().find(|t| t.as_str() == s).ok_or_else(|| format!("unknown task state {s:?}"))
    }
}

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
    /// The unit it changed (station index), 0 until known.
    pub result_unit: u32,
    /// The volume it created, assigned or changed, 0 when none.
    pub result_volume: u32,
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
            result_unit: 0,
            result_volume: 0,
            created_ms,
            finished_ms: None,
        }
    }

    /// Ends the task: state, result (cut to the MIB's size), unit and volume, finish time.
    pub fn end(&mut self, state: TaskState, result: &str, unit: u32, volume: u32, now_ms: i64) {
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
