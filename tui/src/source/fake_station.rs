//! A stand-in for the station's SNMP agent in tests: the real agent engine of `dvsan-snmp` on a 127.0.0.1 UDP port,
//! serving dvsanStationTaskNextIndex, dvsanStationTaskTable and dvsanStationAssignmentTable with the rules of
//! DVSAN-STATION-MIB (createAndGo creates a pending task, an existing row refuses it with inconsistentValue,
//! cancelled(5) only while pending, destroy of a missing row does nothing, of a running one inconsistentValue).
//! It records every SET, and can be told to refuse every SET with one error-status.

use dvsan_mib::{self as mib, dvsan_station_task_state as state, row_status};
use dvsan_snmp::agent::{
    Agent, AgentConfig, Community, FnPreparedSet, GetResult, MibHandler, PreparedSet, SetFailure, SetItem, Table,
    TableHandler, UndoFailed,
};
use dvsan_snmp::{ErrorStatus, Oid, Value, VarBind};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::oneshot;

pub const READ_COMMUNITY: &str = "public";
pub const WRITE_COMMUNITY: &str = "private";

/// The station's state: what a test sets up and inspects.
#[derive(Debug, Default)]
pub struct StationState {
    /// The last index handed out by dvsanStationTaskNextIndex.
    pub next_index: u32,
    /// Task rows: index -> column -> value.
    pub tasks: BTreeMap<u32, BTreeMap<u32, Value>>,
    /// Assignment rows: (unit, volume) -> column -> value.
    pub assignments: BTreeMap<(u32, u32), BTreeMap<u32, Value>>,
    /// Refuse every SET with this status (error-index 1).
    pub refuse: Option<ErrorStatus>,
    /// Every SET that reached the task table, in order.
    pub sets: Vec<Vec<VarBind>>,
}

/// A running fake station; dropping it stops the agent.
pub struct FakeStation {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<StationState>>,
    _stop: oneshot::Sender<()>,
}

impl FakeStation {
    /// Starts a station agent; `with_tasks` false leaves the task objects out (a station older than the task MIB).
    pub async fn start(with_tasks: bool) -> FakeStation {
        let state = Arc::new(Mutex::new(StationState::default()));
        let config = AgentConfig {
            communities: vec![Community::read_only(READ_COMMUNITY), Community::read_write(WRITE_COMMUNITY)],
            workers: 1,
            ..AgentConfig::default()
        };
        let assignments = TableHandler::new(Assignments(Arc::clone(&state)));
        let mut builder = Agent::builder(config).handler(assignments.prefix(), Arc::new(assignments));
        if with_tasks {
            let tasks = TableHandler::new(Tasks(Arc::clone(&state)));
            builder = builder
                .handler(Oid::from_slice(mib::DVSAN_STATION_TASK_NEXT_INDEX), Arc::new(NextIndex(Arc::clone(&state))))
                .handler(tasks.prefix(), Arc::new(tasks));
        }
        let agent = Arc::new(builder.build().unwrap());
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(agent.serve(socket, async move {
            let _ = stopped.await;
        }));
        FakeStation { addr, state, _stop: stop }
    }

    pub fn state(&self) -> MutexGuard<'_, StationState> {
        self.state.lock().unwrap()
    }

    /// Adds a task row as the station would hold it.
    pub fn add_task(&self, index: u32, operation: i32, task_state: i32, owner: &str) {
        let row = BTreeMap::from([
            (column(mib::DVSAN_STATION_TASK_OPERATION), Value::Integer(operation)),
            (column(mib::DVSAN_STATION_TASK_OWNER), Value::string(owner)),
            (column(mib::DVSAN_STATION_TASK_STATE), Value::Integer(task_state)),
            (column(mib::DVSAN_STATION_TASK_ROW_STATUS), Value::Integer(row_status::ACTIVE)),
        ]);
        self.state().tasks.insert(index, row);
    }
}

fn column(oid: &[u32]) -> u32 {
    oid[oid.len() - 1]
}

struct NextIndex(Arc<Mutex<StationState>>);

impl NextIndex {
    fn hand_out(&self) -> Value {
        let mut state = self.0.lock().unwrap();
        state.next_index += 1;
        Value::Gauge32(state.next_index)
    }
}

impl MibHandler for NextIndex {
    fn get(&self, oid: &Oid) -> GetResult {
        match oid.suffix_after(mib::DVSAN_STATION_TASK_NEXT_INDEX) {
            Some([0]) => GetResult::Value(self.hand_out()),
            Some(_) => GetResult::NoSuchInstance,
            None => GetResult::NoSuchObject,
        }
    }

    fn get_next(&self, oid: &Oid) -> Option<VarBind> {
        let instance = Oid::from_slice(mib::DVSAN_STATION_TASK_NEXT_INDEX).child(0);
        (*oid < instance).then(|| VarBind::new(instance, self.hand_out()))
    }
}

struct Tasks(Arc<Mutex<StationState>>);

const TASK_COLUMNS: &[u32] = &[2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19];

impl Table for Tasks {
    fn entry(&self) -> &'static [u32] {
        mib::DVSAN_STATION_TASK_ENTRY
    }
    fn columns(&self) -> &'static [u32] {
        TASK_COLUMNS
    }
    fn rows(&self) -> Vec<Vec<u32>> {
        self.0.lock().unwrap().tasks.keys().map(|i| vec![*i]).collect()
    }
    fn cell(&self, column: u32, index: &[u32]) -> Option<Value> {
        let [index] = index else { return None };
        self.0.lock().unwrap().tasks.get(index)?.get(&column).cloned()
    }

    fn prepare_set(&self, varbinds: &[SetItem<'_>]) -> Result<Box<dyn PreparedSet>, SetFailure> {
        let mut state = self.0.lock().unwrap();
        state.sets.push(varbinds.iter().map(|(_, vb)| (*vb).clone()).collect());
        let first = varbinds.first().map_or(0, |(i, _)| *i);
        if let Some(status) = state.refuse {
            return Err(SetFailure::new(first, status));
        }
        // column -> (position, value), all for one row.
        let mut row_index = None;
        let mut cells = BTreeMap::new();
        for (position, vb) in varbinds {
            let Some([column, index]) = vb.oid.suffix_after(mib::DVSAN_STATION_TASK_ENTRY) else {
                return Err(SetFailure::new(*position, ErrorStatus::NoCreation));
            };
            if row_index.is_some_and(|i| i != *index) {
                return Err(SetFailure::new(*position, ErrorStatus::InconsistentName));
            }
            row_index = Some(*index);
            cells.insert(*column, (*position, vb.value.clone()));
        }
        let index = row_index.unwrap_or(0);
        let inconsistent = |position| Err(SetFailure::new(position, ErrorStatus::InconsistentValue));
        let row_status = cells.remove(&column(mib::DVSAN_STATION_TASK_ROW_STATUS));
        let existing = state.tasks.get(&index).cloned();
        let current =
            existing.as_ref().and_then(|row| row.get(&column(mib::DVSAN_STATION_TASK_STATE))).and_then(Value::as_i32);
        let new_row = match (row_status, existing) {
            (Some((position, Value::Integer(row_status::CREATE_AND_GO))), None) => {
                let mut row: BTreeMap<u32, Value> = cells.into_iter().map(|(c, (_, v))| (c, v)).collect();
                row.insert(column(mib::DVSAN_STATION_TASK_STATE), Value::Integer(state::PENDING));
                row.insert(column(mib::DVSAN_STATION_TASK_ROW_STATUS), Value::Integer(row_status::ACTIVE));
                if !row.contains_key(&column(mib::DVSAN_STATION_TASK_OPERATION)) {
                    return inconsistent(position);
                }
                Some(row)
            }
            (Some((position, Value::Integer(row_status::CREATE_AND_GO))), Some(_)) => return inconsistent(position),
            (Some((_, Value::Integer(row_status::DESTROY))), None) => None,
            (Some((position, Value::Integer(row_status::DESTROY))), Some(_)) => {
                if current == Some(state::RUNNING) {
                    return inconsistent(position);
                }
                None
            }
            (Some((position, _)), _) => return Err(SetFailure::new(position, ErrorStatus::WrongValue)),
            (None, None) => return Err(SetFailure::new(first, ErrorStatus::InconsistentName)),
            (None, Some(mut row)) => {
                let state_column = column(mib::DVSAN_STATION_TASK_STATE);
                match cells.remove(&state_column) {
                    Some((_, Value::Integer(state::CANCELLED))) if current == Some(state::PENDING) => {
                        row.insert(state_column, Value::Integer(state::CANCELLED));
                    }
                    Some((position, Value::Integer(state::CANCELLED))) => return inconsistent(position),
                    Some((position, _)) => return Err(SetFailure::new(position, ErrorStatus::WrongValue)),
                    None => return inconsistent(first),
                }
                Some(row)
            }
        };
        let shared = Arc::clone(&self.0);
        Ok(Box::new(FnPreparedSet(move || {
            let mut state = shared.lock().unwrap();
            match new_row {
                Some(row) => state.tasks.insert(index, row),
                None => state.tasks.remove(&index),
            };
            Ok(|| -> Result<(), UndoFailed> { Ok(()) })
        })))
    }
}

struct Assignments(Arc<Mutex<StationState>>);

impl Table for Assignments {
    fn entry(&self) -> &'static [u32] {
        mib::DVSAN_STATION_ASSIGNMENT_ENTRY
    }
    fn columns(&self) -> &'static [u32] {
        &[1, 2, 3, 4, 5]
    }
    fn rows(&self) -> Vec<Vec<u32>> {
        self.0.lock().unwrap().assignments.keys().map(|(u, v)| vec![*u, *v]).collect()
    }
    fn cell(&self, column: u32, index: &[u32]) -> Option<Value> {
        let [unit, volume] = index else { return None };
        self.0.lock().unwrap().assignments.get(&(*unit, *volume))?.get(&column).cloned()
    }
}
