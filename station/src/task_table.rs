//! dvsanStationTaskNextIndex and dvsanStationTaskTable: the station's tasks ([`crate::tasks::TaskRunner`]) over
//! SNMP.
//!
//! Every retrieval of dvsanStationTaskNextIndex.0 (GET or GETNEXT) hands out a new index. A createAndGo SET with
//! the operation and its argument columns submits a task and answers at once (pending); the SET checks only
//! types, lengths and enumerations (wrongType, wrongLength, wrongValue per RFC 3416), the meaning of the
//! arguments is checked when the task runs and a bad one ends the task failed with the reason. On an existing
//! row, dvsanStationTaskState cancelled(5) cancels a pending task (other values wrongValue, a task no longer
//! pending inconsistentValue) and RowStatus destroy(6) removes an ended task's row or cancels and removes a
//! pending one (a running one: inconsistentValue); its arguments cannot change (inconsistentValue).
//! Following RFC 2579: createAndWait(5) and notReady(3) are wrongValue; a createAndGo without an operation, or
//! active/notInService on a missing row, is inconsistentValue; columns of a missing row without a RowStatus
//! are inconsistentName; destroying a missing row does nothing. Operations that destroy, take away, assign or
//! change which units are pooled ([`needs_admin`]) are submitted only by the station's admins: noAccess for
//! anyone else.

use crate::operation::{Arguments, OperationKind};
use crate::principal::Admins;
use crate::set_values::{integer, text, truncate, unsigned};
use crate::station_mib::date_and_time;
use crate::tasks::{Task, TaskError, TaskRunner, TaskState};
use dvsan_layout::{PartitionIndex, VolumeIndex};
use dvsan_mib as mib;
use dvsan_snmp::agent::{
    AgentBuilder, FnPreparedSet, GetResult, MibHandler, PreparedSet, SetFailure, SetItem, Table, TableHandler,
    UndoFailed,
};
use dvsan_snmp::{ErrorStatus, Oid, Value, VarBind};
use std::sync::Arc;

const INDEX: u32 = 1;
const OPERATION: u32 = 2;
const UNIT: u32 = 3;
const VOLUME: u32 = 4;
const PARTITION: u32 = 5;
const SIZE: u32 = 6;
const HOST: u32 = 7;
const NAME: u32 = 8;
const READ_ONLY: u32 = 9;
const OWNER: u32 = 10;
const STATE: u32 = 11;
const PROGRESS: u32 = 12;
const STEP: u32 = 13;
const RESULT: u32 = 14;
const RESULT_UNIT: u32 = 15;
const RESULT_VOLUME: u32 = 16;
const CREATED: u32 = 17;
const FINISHED: u32 = 18;
const ROW_STATUS: u32 = 19;
const SHARED: u32 = 20;
const REPLICAS: u32 = 21;

/// Registers dvsanStationTaskNextIndex and dvsanStationTaskTable for `runner` on an agent builder; only `admins`
/// may submit the operations [`needs_admin`] names.
pub fn register(builder: AgentBuilder, runner: TaskRunner, admins: Admins) -> AgentBuilder {
    let table = TableHandler::new(TaskTable { runner: runner.clone(), admins });
    builder
        .handler(Oid::from_slice(mib::DVSAN_STATION_TASK_NEXT_INDEX), Arc::new(NextIndex { runner }))
        .handler(table.prefix(), Arc::new(table))
}

/// dvsanStationTaskNextIndex.0: a new index on every GET (walks see the next one without taking it).
pub struct NextIndex {
    runner: TaskRunner,
}

impl MibHandler for NextIndex {
    fn get(&self, oid: &Oid) -> GetResult {
        match oid.suffix_after(mib::DVSAN_STATION_TASK_NEXT_INDEX) {
            Some([0]) => GetResult::Value(Value::Gauge32(self.runner.next_index())),
            Some(_) => GetResult::NoSuchInstance,
            None => GetResult::NoSuchObject,
        }
    }

    fn get_next(&self, oid: &Oid) -> Option<VarBind> {
        let instance = Oid::from_slice(mib::DVSAN_STATION_TASK_NEXT_INDEX).child(0);
        // A walk only passes by: handing out an index on every GETNEXT/GETBULK would burn one per refresh of
        // every console walking the tables before this object.
        (*oid < instance).then(|| VarBind::new(instance, Value::Gauge32(self.runner.peek_index())))
    }
}

/// dvsanStationTaskTable (register a [`TableHandler`] of it at the entry OID; [`register`] does).
pub struct TaskTable {
    runner: TaskRunner,
    admins: Admins,
}

impl TaskTable {
    pub fn new(runner: TaskRunner, admins: Admins) -> TaskTable {
        TaskTable { runner, admins }
    }
}

/// Operations only the station's admins may submit over SNMP: those that destroy or take away (volumes,
/// partitions, assignments, units), assign volumes to any host, or change which units are pooled. Any writer may
/// create a volume, allocate storage and rescan a unit; a refused submission is noAccess at the operation.
pub fn needs_admin(operation: OperationKind) -> bool {
    !matches!(operation, OperationKind::CreateVolume | OperationKind::Allocate | OperationKind::RescanUnit)
}

/// What one row of a SET does, and the varbind it answers for.
#[derive(Debug)]
enum RowChange {
    Create { arguments: Arguments, owner: String },
    Cancel,
    Destroy,
}

/// What a committed row change did, for undoing it.
enum Applied {
    Created(u32),
    /// Cancelled or removed: the task as it was.
    Changed(Box<Task>),
}

fn undo(runner: &TaskRunner, applied: Vec<Applied>) -> Result<(), UndoFailed> {
    let mut result = Ok(());
    for change in applied.into_iter().rev() {
        let undone = match change {
            Applied::Created(index) => runner.withdraw(index),
            Applied::Changed(task) => runner.restore(*task),
        };
        if let Err(e) = undone {
            tracing::warn!(error = %e, "undoing a task SET failed");
            result = Err(UndoFailed);
        }
    }
    result
}

fn cell_value(task: &Task, column: u32) -> Option<Value> {
    let a = &task.arguments;
    Some(match column {
        OPERATION => Value::Integer(a.operation.mib_value()),
        UNIT => Value::string(&a.unit),
        VOLUME => Value::Gauge32(a.volume.map_or(0, |v| v.0)),
        PARTITION => Value::Gauge32(a.partition.map_or(0, |p| p.0)),
        SIZE => Value::string(&a.size),
        HOST => Value::string(&a.host),
        NAME => Value::string(&a.name),
        READ_ONLY => Value::Integer(if a.read_only { mib::truth_value::TRUE } else { mib::truth_value::FALSE }),
        OWNER => Value::string(&task.owner),
        STATE => Value::Integer(task.state.mib_value()),
        PROGRESS => Value::Gauge32(task.progress.min(100)),
        STEP => Value::string(&truncate(&task.step, 255)),
        RESULT => Value::string(&truncate(&task.result, 255)),
        RESULT_UNIT => Value::Gauge32(task.result_unit.unwrap_or(0)),
        RESULT_VOLUME => Value::Gauge32(task.result_volume.map_or(0, |v| v.0)),
        CREATED => Value::OctetString(date_and_time(task.created_ms)),
        FINISHED => Value::OctetString(task.finished_ms.map_or_else(|| vec![0; 8], date_and_time)),
        ROW_STATUS => Value::Integer(mib::row_status::ACTIVE),
        SHARED => Value::Integer(if a.shared { mib::truth_value::TRUE } else { mib::truth_value::FALSE }),
        REPLICAS => Value::Gauge32(a.replicas),
        _ => return None,
    })
}

impl TaskTable {
    /// Plans one row's SET from its varbinds (all naming row `index`): the change and the varbind it answers for.
    fn plan_row(&self, index: u32, cells: &[(usize, u32, &Value)]) -> Result<Option<(usize, RowChange)>, SetFailure> {
        let operations: Vec<i32> = OperationKind::ALL.iter().map(|k| k.mib_value()).collect();
        let mut arguments = Arguments::new(OperationKind::CreateVolume);
        let mut operation_given = None;
        let mut owner = String::new();
        // The first argument column set, the State varbind, the RowStatus varbind and value.
        let mut first_argument: Option<usize> = None;
        let mut cancel: Option<usize> = None;
        let mut row_status: Option<(usize, i32)> = None;
        for &(i, column, value) in cells {
            match column {
                OPERATION => {
                    let v = integer(i, value, &operations)?;
                    arguments.operation =
                        OperationKind::from_mib(v).ok_or(SetFailure::new(i, ErrorStatus::WrongValue))?;
                    operation_given = Some(i);
                }
                UNIT => arguments.unit = text(i, value, 64)?,
                VOLUME => arguments.volume = VolumeIndex::given(unsigned(i, value)?),
                PARTITION => arguments.partition = PartitionIndex::given(unsigned(i, value)?),
                SIZE => arguments.size = text(i, value, 32)?,
                HOST => arguments.host = text(i, value, 64)?,
                NAME => arguments.name = text(i, value, 64)?,
                READ_ONLY => {
                    let v = integer(i, value, &[mib::truth_value::TRUE, mib::truth_value::FALSE])?;
                    arguments.read_only = v == mib::truth_value::TRUE;
                }
                SHARED => {
                    let v = integer(i, value, &[mib::truth_value::TRUE, mib::truth_value::FALSE])?;
                    arguments.shared = v == mib::truth_value::TRUE;
                }
                REPLICAS => {
                    arguments.replicas = unsigned(i, value)?;
                    if arguments.replicas > crate::mirror::MAX_REPLICAS {
                        return Err(SetFailure::new(i, ErrorStatus::WrongValue));
                    }
                }
                OWNER => owner = text(i, value, 64)?,
                STATE => {
                    // Only cancelled(5) may be written; any other state is wrongValue.
                    integer(i, value, &[TaskState::Cancelled.mib_value()])?;
                    cancel = Some(i);
                }
                ROW_STATUS => {
                    // createAndWait is not supported and notReady is never written: wrongValue (RFC 2579).
                    let allowed = [
                        mib::row_status::ACTIVE,
                        mib::row_status::NOT_IN_SERVICE,
                        mib::row_status::CREATE_AND_GO,
                        mib::row_status::DESTROY,
                    ];
                    row_status = Some((i, integer(i, value, &allowed)?));
                }
                INDEX => return Err(SetFailure::new(i, ErrorStatus::NoAccess)),
                PROGRESS..=FINISHED => return Err(SetFailure::new(i, ErrorStatus::NotWritable)),
                _ => return Err(SetFailure::new(i, ErrorStatus::NoCreation)),
            }
            if (OPERATION..=OWNER).contains(&column) || column == SHARED || column == REPLICAS {
                first_argument.get_or_insert(i);
            }
        }
        let first = cells[0].0;
        let inconsistent = |i| Err(SetFailure::new(i, ErrorStatus::InconsistentValue));
        let state = self.runner.with_task(index, |t| t.state);
        use mib::row_status::{ACTIVE, CREATE_AND_GO, DESTROY};
        match (state, row_status) {
            (None, None) => Err(SetFailure::new(first, ErrorStatus::InconsistentName)),
            (None, Some((_, DESTROY))) => Ok(None),
            (None, Some((i, CREATE_AND_GO))) => {
                // A new task is pending; its state cannot be given.
                if let Some(at) = cancel {
                    return inconsistent(at);
                }
                let Some(operation_at) = operation_given else {
                    return inconsistent(i);
                };
                if needs_admin(arguments.operation) && !self.admins.current_is_admin() {
                    tracing::info!(operation = arguments.operation.as_str(), "a task only an admin may run refused");
                    return Err(SetFailure::new(operation_at, ErrorStatus::NoAccess));
                }
                match self.runner.check_submit(index) {
                    Ok(()) => Ok(Some((i, RowChange::Create { arguments, owner }))),
                    Err(TaskError::Exists(_)) => inconsistent(i),
                    Err(_) => Err(SetFailure::new(i, ErrorStatus::ResourceUnavailable)),
                }
            }
            // active or notInService on a row that does not exist.
            (None, Some((i, _))) => inconsistent(i),
            // A submitted task's arguments cannot change.
            (Some(_), _) if first_argument.is_some() => inconsistent(first_argument.unwrap_or(first)),
            (Some(TaskState::Running), Some((i, DESTROY))) => inconsistent(i),
            (Some(_), Some((i, DESTROY))) => Ok(Some((i, RowChange::Destroy))),
            (Some(state), Some((_, ACTIVE)) | None) => match cancel {
                Some(at) if state == TaskState::Pending => Ok(Some((at, RowChange::Cancel))),
                Some(at) => inconsistent(at),
                None => Ok(None),
            },
            // createAndGo on an existing row, notInService (a task cannot be taken out of service).
            (Some(_), Some((i, _))) => inconsistent(i),
        }
    }
}

impl Table for TaskTable {
    fn entry(&self) -> &'static [u32] {
        mib::DVSAN_STATION_TASK_ENTRY
    }

    fn columns(&self) -> &'static [u32] {
        &[
            OPERATION,
            UNIT,
            VOLUME,
            PARTITION,
            SIZE,
            HOST,
            NAME,
            READ_ONLY,
            OWNER,
            STATE,
            PROGRESS,
            STEP,
            RESULT,
            RESULT_UNIT,
            RESULT_VOLUME,
            CREATED,
            FINISHED,
            ROW_STATUS,
            SHARED,
            REPLICAS,
        ]
    }

    fn rows(&self) -> Vec<Vec<u32>> {
        self.runner.indexes().into_iter().map(|i| vec![i]).collect()
    }

    fn cell(&self, column: u32, index: &[u32]) -> Option<Value> {
        let [i] = index else { return None };
        self.runner.with_task(*i, |task| cell_value(task, column)).flatten()
    }

    fn prepare_set(&self, varbinds: &[SetItem<'_>]) -> Result<Box<dyn PreparedSet>, SetFailure> {
        let by_row = crate::set_values::cells_by_row(varbinds, mib::DVSAN_STATION_TASK_ENTRY)?;
        let mut changes = Vec::new();
        for (index, cells) in &by_row {
            if let Some((at, change)) = self.plan_row(*index, cells)? {
                changes.push((*index, at, change));
            }
        }
        let runner = self.runner.clone();
        Ok(Box::new(FnPreparedSet(move || {
            let mut applied = Vec::new();
            for (index, at, change) in changes {
                let result = match change {
                    RowChange::Create { arguments, owner } => {
                        runner.submit(index, arguments, owner).map(|()| Applied::Created(index))
                    }
                    RowChange::Cancel => runner.cancel(index).map(|t| Applied::Changed(Box::new(t))),
                    RowChange::Destroy => runner.remove(index).map(|t| Applied::Changed(Box::new(t))),
                };
                match result {
                    Ok(done) => applied.push(done),
                    Err(e) => {
                        tracing::warn!(task = index, error = %e, "task SET failed when applied");
                        // This handler's state must be as before the commit.
                        let _ = undo(&runner, applied);
                        return Err(SetFailure::new(at, ErrorStatus::CommitFailed));
                    }
                }
            }
            Ok(move || undo(&runner, applied))
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::TaskSettings;
    use std::time::Duration;

    fn runner(dir: &std::path::Path) -> TaskRunner {
        let settings = TaskSettings {
            state_dir: dir.to_path_buf(),
            read_community: "public".into(),
            write_community: Some("private".into()),
            timeout: Duration::from_millis(100),
            agent_port: 1161,
            workers: 1,
        };
        TaskRunner::open(settings, None, || {}).unwrap()
    }

    fn vb(column: u32, index: u32, value: Value) -> VarBind {
        VarBind::new(Oid::from_slice(mib::DVSAN_STATION_TASK_ENTRY).join(&[column, index]), value)
    }

    /// Runs a SET through the table (prepare and commit) like the agent engine does.
    fn set(table: &TaskTable, varbinds: &[VarBind]) -> Result<(), (usize, ErrorStatus)> {
        let items: Vec<SetItem<'_>> = varbinds.iter().enumerate().collect();
        let prepared = table.prepare_set(&items).map_err(|f| (f.index, f.status))?;
        prepared.commit().map(|_| ()).map_err(|f| (f.index, f.status))
    }

    fn create(index: u32) -> Vec<VarBind> {
        vec![
            vb(OPERATION, index, Value::Integer(mib::dvsan_station_task_operation::CREATE_VOLUME)),
            vb(UNIT, index, Value::string("127.0.0.2")),
            vb(SIZE, index, Value::string("64M")),
            vb(OWNER, index, Value::string("console@noc-1")),
            vb(ROW_STATUS, index, Value::Integer(mib::row_status::CREATE_AND_GO)),
        ]
    }

    #[test]
    fn create_and_read_a_row() {
        let dir = tempfile::tempdir().unwrap();
        let runner = runner(dir.path());
        let table = TaskTable::new(runner.clone(), Admins::default());
        set(&table, &create(3)).unwrap();
        let cell = |column| table.cell(column, &[3]).unwrap();
        assert_eq!(cell(OPERATION), Value::Integer(1));
        assert_eq!(cell(UNIT), Value::string("127.0.0.2"));
        assert_eq!(cell(SIZE), Value::string("64M"));
        assert_eq!(cell(OWNER), Value::string("console@noc-1"));
        assert_eq!(cell(READ_ONLY), Value::Integer(mib::truth_value::FALSE));
        assert_eq!(cell(STATE), Value::Integer(mib::dvsan_station_task_state::PENDING));
        assert_eq!(cell(PROGRESS), Value::Gauge32(0));
        assert_eq!(cell(FINISHED), Value::OctetString(vec![0; 8]));
        assert!(matches!(cell(CREATED), Value::OctetString(b) if b.len() == 11));
        assert_eq!(cell(ROW_STATUS), Value::Integer(mib::row_status::ACTIVE));
        assert_eq!(table.rows(), vec![vec![3]]);
        assert!(table.cell(OPERATION, &[4]).is_none());
        // The next index is above the row, and different on every retrieval.
        let next = NextIndex { runner };
        let instance = Oid::from_slice(mib::DVSAN_STATION_TASK_NEXT_INDEX).child(0);
        let (GetResult::Value(Value::Gauge32(a)), GetResult::Value(Value::Gauge32(b))) =
            (next.get(&instance), next.get(&instance))
        else {
            panic!("next index is not a Gauge32")
        };
        assert!(a > 3 && b > a);
        assert_eq!(next.get_next(&Oid::from_slice(mib::DVSAN_STATION_TASKS)).map(|v| v.oid), Some(instance.clone()));
        assert!(next.get_next(&instance).is_none());
        assert_eq!(next.get(&instance.child(1)), GetResult::NoSuchInstance);
    }

    #[test]
    fn destructive_operations_need_an_admin() {
        use dvsan_snmp::agent::{Requester, SecurityModel};
        let dir = tempfile::tempdir().unwrap();
        let table = TaskTable::new(runner(dir.path()), Admins::new(["root".to_string()], []));
        let remove = |index| {
            vec![
                vb(OPERATION, index, Value::Integer(mib::dvsan_station_task_operation::REMOVE_UNIT_FORCE)),
                vb(UNIT, index, Value::string("127.0.0.2")),
                vb(ROW_STATUS, index, Value::Integer(mib::row_status::CREATE_AND_GO)),
            ]
        };
        {
            let _writer = Requester::community(SecurityModel::V2c, b"host-a").enter();
            assert_eq!(set(&table, &remove(1)), Err((0, ErrorStatus::NoAccess)));
            assert!(table.rows().is_empty());
            // A writer may create a volume.
            set(&table, &create(2)).unwrap();
        }
        let _admin = Requester::community(SecurityModel::V2c, b"root").enter();
        set(&table, &remove(3)).unwrap();
        assert_eq!(table.rows(), vec![vec![2], vec![3]]);
        assert!(OperationKind::ALL.iter().filter(|k| !needs_admin(**k)).count() == 3);
    }

    #[test]
    fn set_errors_follow_rfc_2579_and_3416() {
        let dir = tempfile::tempdir().unwrap();
        let table = TaskTable::new(runner(dir.path()), Admins::default());
        let go = |index| vb(ROW_STATUS, index, Value::Integer(mib::row_status::CREATE_AND_GO));
        let err = |varbinds: &[VarBind]| set(&table, varbinds).unwrap_err();
        // Types, lengths, enumerations.
        assert_eq!(err(&[vb(SIZE, 1, Value::Integer(5)), go(1)]), (0, ErrorStatus::WrongType));
        assert_eq!(err(&[vb(UNIT, 1, Value::string(&"u".repeat(65))), go(1)]), (0, ErrorStatus::WrongLength));
        assert_eq!(err(&[vb(OPERATION, 1, Value::Integer(42)), go(1)]), (0, ErrorStatus::WrongValue));
        assert_eq!(err(&[vb(VOLUME, 1, Value::Integer(1)), go(1)]), (0, ErrorStatus::WrongType));
        assert_eq!(err(&[vb(READ_ONLY, 1, Value::Integer(3)), go(1)]), (0, ErrorStatus::WrongValue));
        let mut wait = create(1);
        wait[4] = vb(ROW_STATUS, 1, Value::Integer(mib::row_status::CREATE_AND_WAIT));
        assert_eq!(err(&wait), (4, ErrorStatus::WrongValue));
        // Read-only columns, the index, unknown columns.
        assert_eq!(err(&[vb(RESULT, 1, Value::string("x"))]), (0, ErrorStatus::NotWritable));
        assert_eq!(err(&[vb(INDEX, 1, Value::Gauge32(1))]), (0, ErrorStatus::NoAccess));
        assert_eq!(err(&[vb(40, 1, Value::Integer(1))]), (0, ErrorStatus::NoCreation));
        assert_eq!(err(&[vb(ROW_STATUS, 0, Value::Integer(4))]), (0, ErrorStatus::NoCreation));
        // Row creation: no operation, no RowStatus, active on a missing row.
        assert_eq!(err(&[vb(UNIT, 1, Value::string("u")), go(1)]), (1, ErrorStatus::InconsistentValue));
        assert_eq!(err(&[vb(UNIT, 1, Value::string("u"))]), (0, ErrorStatus::InconsistentName));
        assert_eq!(
            err(&[vb(ROW_STATUS, 1, Value::Integer(mib::row_status::ACTIVE))]),
            (0, ErrorStatus::InconsistentValue)
        );
        // Destroying a missing row does nothing.
        set(&table, &[vb(ROW_STATUS, 1, Value::Integer(mib::row_status::DESTROY))]).unwrap();
        assert!(table.rows().is_empty());

        // An existing row: arguments fixed, createAndGo again refused, only cancelled(5) for the state.
        set(&table, &create(2)).unwrap();
        assert_eq!(err(&[vb(SIZE, 2, Value::string("1M"))]), (0, ErrorStatus::InconsistentValue));
        assert_eq!(err(&create(2)), (0, ErrorStatus::InconsistentValue));
        assert_eq!(err(&[vb(STATE, 2, Value::Integer(3))]), (0, ErrorStatus::WrongValue));
        assert_eq!(err(&[vb(STATE, 2, Value::Gauge32(5))]), (0, ErrorStatus::WrongType));
        set(&table, &[vb(ROW_STATUS, 2, Value::Integer(mib::row_status::ACTIVE))]).unwrap();
        set(&table, &[vb(STATE, 2, Value::Integer(5))]).unwrap();
        assert_eq!(table.cell(STATE, &[2]), Some(Value::Integer(mib::dvsan_station_task_state::CANCELLED)));
        assert_eq!(err(&[vb(STATE, 2, Value::Integer(5))]), (0, ErrorStatus::InconsistentValue));
        // destroy removes an ended row; a pending row is cancelled and removed.
        set(&table, &[vb(ROW_STATUS, 2, Value::Integer(mib::row_status::DESTROY))]).unwrap();
        set(&table, &create(5)).unwrap();
        set(&table, &[vb(ROW_STATUS, 5, Value::Integer(mib::row_status::DESTROY))]).unwrap();
        assert!(table.rows().is_empty());
    }

    #[test]
    fn running_tasks_cannot_be_cancelled_or_destroyed_and_undo_reverts() {
        let dir = tempfile::tempdir().unwrap();
        let runner = runner(dir.path());
        let table = TaskTable::new(runner.clone(), Admins::default());
        set(&table, &create(7)).unwrap();
        // A running task (as the dispatcher would start it).
        let mut running = runner.task(7).unwrap();
        running.state = TaskState::Running;
        runner.restore(running).unwrap();
        let err = |varbinds: &[VarBind]| set(&table, varbinds).unwrap_err();
        assert_eq!(err(&[vb(STATE, 7, Value::Integer(5))]), (0, ErrorStatus::InconsistentValue));
        assert_eq!(
            err(&[vb(ROW_STATUS, 7, Value::Integer(mib::row_status::DESTROY))]),
            (0, ErrorStatus::InconsistentValue)
        );

        // Undo of a committed creation takes the task back.
        let items: Vec<VarBind> = create(8);
        let refs: Vec<SetItem<'_>> = items.iter().enumerate().collect();
        let reverter = table.prepare_set(&refs).unwrap().commit().unwrap();
        assert!(runner.task(8).is_some());
        reverter.undo().unwrap();
        assert!(runner.task(8).is_none());
    }
}
