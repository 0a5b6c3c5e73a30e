//! Station tasks from the console: [`TaskClient`] sends the [`Command`]s the user confirmed to the station's
//! dvsanStationTaskTable (DVSAN-STATION-MIB) and reports each outcome as an [`Update`].
//!
//! A new task is one GET of dvsanStationTaskNextIndex.0 (a fresh index on every read) and one SET creating the
//! row with createAndGo, the operation, its arguments and the owner; the station answers at once with the task
//! pending and runs it on its own. Cancelling sets dvsanStationTaskState to cancelled(5); removing an ended task
//! sets its RowStatus to destroy(6). Each command runs in its own tokio task, so any number can be in flight and
//! the UI never waits. The write community is used for all of it, so a wrong one shows on the first command.
//!
//! A SET whose answer is lost is retransmitted; the station then refuses the copy (the row exists, the task is no
//! longer pending) or the answers stop. In both cases the row is read back before anything is reported, so an
//! applied change is never reported as refused. Refusals are told in plain words with what to do
//! ([`Refusal::explain`]).

use super::Update;
use crate::form::{Command, Request};
use crate::model::TaskState;
use dvsan_mib::{self as mib, row_status, truth_value};
use dvsan_snmp::usm::UsmUser;
use dvsan_snmp::{ErrorStatus, Manager, Oid, SnmpError, Target, Value, VarBind};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

/// Longest owner text (dvsanStationTaskOwner is a DisplayString of at most 64 octets).
pub const MAX_OWNER: usize = 64;

/// Which request of a command failed, for the wording of its refusal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Reading dvsanStationTaskNextIndex.0.
    NextIndex,
    /// Creating task row `index`.
    Create(u32),
    /// Cancelling task `index`.
    Cancel(u32),
    /// Removing task `index`.
    Remove(u32),
}

/// Why a command was not carried out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Nothing answered requests with the write community.
    NoAnswer,
    /// Reads with the write community were answered but the SET was not: a read-only community there.
    ChangeIgnored,
    /// The SET went unanswered and then the station stopped answering: the change may or may not be made.
    Unknown,
    /// The station has no task table.
    NoTaskTable,
    /// The task is not in the station's table (any more).
    NoSuchTask,
    /// The station answered with an error-status; `object` names the varbind it blamed, when it did.
    Status { status: ErrorStatus, object: Option<String> },
    /// The station answered something this console does not understand.
    Unexpected(String),
    /// The console's own socket failed.
    Network(String),
}

impl Refusal {
    /// The refusal a manager error means; `sent` are the varbinds of the request, to name the one blamed.
    pub fn from_error(error: &SnmpError, sent: &[VarBind]) -> Refusal {
        match error {
            SnmpError::Timeout => Refusal::NoAnswer,
            SnmpError::Agent { status, index } => {
                let object = usize::try_from(*index)
                    .ok()
                    .and_then(|i| i.checked_sub(1))
                    .and_then(|i| sent.get(i))
                    .map(|vb| mib::describe(vb.oid.as_slice()));
                Refusal::Status { status: *status, object }
            }
            SnmpError::Io(e) => Refusal::Network(e.to_string()),
            other => Refusal::Unexpected(other.to_string()),
        }
    }

    /// The refusal in plain words: what happened and what to do, naming the station and the community.
    pub fn explain(&self, station: SocketAddr, community: &str, step: Step) -> String {
        let use_write_community = "give the station's --snmp-write-community with --write-community";
        match self {
            Refusal::NoAnswer => format!(
                "station {station} does not answer with write community {community:?}: is it running, and is that \
                 its --snmp-write-community? If not, {use_write_community}"
            ),
            Refusal::ChangeIgnored => {
                format!("station {station} ignored the change: {community:?} only reads there; {use_write_community}")
            }
            Refusal::Unknown => format!(
                "station {station} stopped answering while the change was sent; it may or may not be made: look at \
                 the Tasks screen (6) before trying again"
            ),
            Refusal::NoTaskTable => format!(
                "station {station} does not run tasks (no dvsanStationTaskTable): it is older than this console; \
                 update dvsan-station"
            ),
            Refusal::NoSuchTask => match step {
                Step::Cancel(task) | Step::Remove(task) | Step::Create(task) => {
                    format!("task {task} is no longer in the station's list (another console may have removed it)")
                }
                Step::NextIndex => format!("station {station} has no such task"),
            },
            Refusal::Status { status, object } => explain_status(*status, object.as_deref(), station, community, step),
            Refusal::Unexpected(what) => {
                format!("station {station} answered something unexpected ({what}); is it a dvsan station?")
            }
            Refusal::Network(what) => format!("could not send to station {station}: {what}"),
        }
    }
}

impl Refusal {
    /// [`Refusal::explain`] for a console writing as SNMPv3 `user` (`--credentials FILE --user NAME`).
    pub fn explain_v3(&self, station: SocketAddr, user: &str, step: Step) -> String {
        use ErrorStatus::*;
        let fix = "give a read-write user of the station with --credentials FILE --user NAME";
        match self {
            Refusal::NoAnswer => format!(
                "station {station} does not answer SNMPv3 user {user:?}: is it running, and does it serve that user?"
            ),
            Refusal::ChangeIgnored => {
                format!("station {station} ignored the change: user {user:?} only reads there; {fix}")
            }
            Refusal::Status { status: status @ (NoAccess | NotWritable | AuthorizationError | ReadOnly), object } => {
                let blamed = object.as_deref().map_or(String::new(), |o| format!(" at {o}"));
                format!("station {station} refused to write ({status}{blamed}) as user {user:?}; {fix}")
            }
            other => other.explain(station, user, step),
        }
    }
}

fn explain_status(
    status: ErrorStatus,
    object: Option<&str>,
    station: SocketAddr,
    community: &str,
    step: Step,
) -> String {
    use ErrorStatus::*;
    let blamed = object.map_or(String::new(), |o| format!(" at {o}"));
    match (status, step) {
        (NoAccess | NotWritable | AuthorizationError | ReadOnly | NoSuchName, _) => format!(
            "station {station} refused to write ({status}{blamed}) with community {community:?}; give the \
             station's --snmp-write-community with --write-community"
        ),
        (InconsistentValue, Step::Cancel(task)) => {
            format!("task {task} is no longer pending (it runs or has ended): only pending tasks can be cancelled")
        }
        (InconsistentValue, Step::Remove(task)) => {
            format!("task {task} is running: it can be removed once it has ended")
        }
        (InconsistentValue | InconsistentName, Step::Create(task)) => format!(
            "station {station} refused new task {task} ({status}{blamed}): another manager used the same index; \
             try again"
        ),
        (ResourceUnavailable, _) => format!(
            "station {station} cannot take more tasks now (resourceUnavailable): wait for tasks to end or remove \
             ended ones (x on the Tasks screen), then try again"
        ),
        (WrongLength, _) => {
            format!("station {station} refused a value as too long ({status}{blamed}): shorten it and try again")
        }
        (WrongValue | WrongType | WrongEncoding | BadValue | NoCreation | InconsistentName, _) => format!(
            "station {station} refused the request ({status}{blamed}): the console and the station disagree on \
             DVSAN-STATION-MIB; run the same dvsan version on both"
        ),
        (GenErr | CommitFailed | UndoFailed, _) => format!(
            "station {station} failed to carry out the change ({status}{blamed}): see the station's log, then try \
             again"
        ),
        (TooBig, _) => format!("station {station} found the request too big (tooBig)"),
        (_, _) => format!("station {station} refused the request ({status}{blamed})"),
    }
}

/// `column.index` of dvsanStationTaskTable.
fn cell(column: &[u32], index: u32) -> Oid {
    Oid::from_slice(column).child(index)
}

/// The varbinds of the SET that creates task `index` for `request`: the operation, the arguments the operation
/// uses (sizes in bytes), the owner, and RowStatus createAndGo last.
pub fn create_varbinds(index: u32, request: &Request, owner: &str) -> Vec<VarBind> {
    let text = |column: &[u32], value: &str| VarBind::new(cell(column, index), Value::string(value));
    let number = |column: &[u32], value: u32| VarBind::new(cell(column, index), Value::Gauge32(value));
    let unit = |value: &str| text(mib::DVSAN_STATION_TASK_UNIT, value);
    let volume = |value: u32| number(mib::DVSAN_STATION_TASK_VOLUME, value);
    let size = |bytes: u64| text(mib::DVSAN_STATION_TASK_SIZE, &bytes.to_string());
    let host = |ip: &std::net::IpAddr| text(mib::DVSAN_STATION_TASK_HOST, &ip.to_string());
    let name = |name: &Option<String>| name.as_deref().map(|n| text(mib::DVSAN_STATION_TASK_NAME, n));
    let read_only = |yes: bool| {
        let truth = if yes { truth_value::TRUE } else { truth_value::FALSE };
        VarBind::new(cell(mib::DVSAN_STATION_TASK_READ_ONLY, index), Value::Integer(truth))
    };
    let mut varbinds = vec![VarBind::new(
        cell(mib::DVSAN_STATION_TASK_OPERATION, index),
        Value::Integer(request.operation().mib_value()),
    )];
    match request {
        Request::AddUnit { agent } => varbinds.push(unit(&agent.to_string())),
        Request::CreateVolume { unit: u, size_bytes, name: n } => {
            varbinds.extend([unit(u), size(*size_bytes)]);
            varbinds.extend(name(n));
        }
        Request::DestroyVolume { unit: u, volume: v, .. } => varbinds.extend([unit(u), volume(*v)]),
        Request::CreatePartition { unit: u, volume: v, size_bytes } => {
            varbinds.extend([unit(u), volume(*v), size(*size_bytes)])
        }
        Request::DestroyPartition { unit: u, volume: v, partition } => {
            varbinds.extend([unit(u), volume(*v), number(mib::DVSAN_STATION_TASK_PARTITION, *partition)])
        }
        Request::Assign { unit: u, volume: v, host: h, read_only: ro } => {
            varbinds.extend([unit(u), volume(*v), host(h), read_only(*ro)])
        }
        Request::Unassign { unit: u, volume: v, host: h } => {
            varbinds.extend([unit(u), volume(*v)]);
            varbinds.extend(h.as_ref().map(host));
        }
        Request::Allocate { size_bytes, host: h, name: n, read_only: ro, replicas } => {
            varbinds.extend([size(*size_bytes), host(h)]);
            varbinds.extend(name(n));
            varbinds.push(read_only(*ro));
            if *replicas >= 2 {
                varbinds.push(number(mib::DVSAN_STATION_TASK_REPLICAS, *replicas));
            }
        }
        Request::RescanUnit { unit: u } | Request::RemoveUnit { unit: u, .. } => varbinds.push(unit(u)),
        // The pending unit by its dvsanStationPendingIndex, in the task's unit column.
        Request::ApproveUnit { pending, .. } | Request::RejectUnit { pending, .. } => {
            varbinds.push(unit(&pending.to_string()))
        }
    }
    if !owner.is_empty() {
        varbinds.push(text(mib::DVSAN_STATION_TASK_OWNER, owner));
    }
    varbinds
        .push(VarBind::new(cell(mib::DVSAN_STATION_TASK_ROW_STATUS, index), Value::Integer(row_status::CREATE_AND_GO)));
    varbinds
}

/// The varbind that cancels pending task `index`.
pub fn cancel_varbinds(index: u32) -> Vec<VarBind> {
    let cancelled = Value::Integer(TaskState::Cancelled.mib_value());
    vec![VarBind::new(cell(mib::DVSAN_STATION_TASK_STATE, index), cancelled)]
}

/// The varbind that removes ended task `index`'s row.
pub fn remove_varbinds(index: u32) -> Vec<VarBind> {
    vec![VarBind::new(cell(mib::DVSAN_STATION_TASK_ROW_STATUS, index), Value::Integer(row_status::DESTROY))]
}

/// How this console names itself as the owner of its tasks: `console@HOSTNAME`, at most [`MAX_OWNER`] bytes.
pub fn default_owner() -> String {
    let host = ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .map(|text| text.trim().to_string())
        .find(|name| !name.is_empty() && !name.chars().any(char::is_control))
        .unwrap_or_else(|| "localhost".to_string());
    let mut owner = format!("console@{host}");
    while owner.len() > MAX_OWNER {
        owner.pop();
    }
    owner
}

/// Sends commands to a station's task table.
#[derive(Clone)]
pub struct TaskClient {
    manager: Arc<Manager>,
    target: Target,
    owner: String,
}

impl TaskClient {
    /// A client for the station's agent at `station`, writing with `write_community`; tasks are created with
    /// `owner` as their owner.
    pub async fn new(
        station: SocketAddr,
        write_community: &str,
        timeout: Duration,
        owner: &str,
    ) -> std::io::Result<TaskClient> {
        let bind: SocketAddr = if station.is_ipv6() {
            SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))
        } else {
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
        };
        let manager = Arc::new(Manager::new(bind).await?);
        Ok(TaskClient::with_manager(manager, Target::new(station, write_community).with_timeout(timeout, 1), owner))
    }

    /// A client using `manager` and `target` (address, write community, timeouts) as they are.
    pub fn with_manager(manager: Arc<Manager>, target: Target, owner: &str) -> TaskClient {
        let mut owner = owner.to_string();
        while owner.len() > MAX_OWNER {
            owner.pop();
        }
        TaskClient { manager, target, owner }
    }

    /// The same client writing as SNMPv3 `user` (same address and timeouts).
    pub fn with_user(mut self, user: Arc<UsmUser>) -> TaskClient {
        let (addr, timeout, retries) = (self.target.addr, self.target.options.timeout, self.target.options.retries);
        self.target = Target::v3(addr, user).with_timeout(timeout, retries);
        self
    }

    /// Runs `command` in a background task and sends its outcome to `updates`.
    pub fn spawn(&self, command: Command, updates: UnboundedSender<Update>) -> JoinHandle<()> {
        let client = self.clone();
        tokio::spawn(async move {
            let update = client.run(command).await;
            // The UI may have quit meanwhile; nobody is left to tell.
            let _ = updates.send(update);
        })
    }

    /// Runs `command` and says how it went.
    pub async fn run(&self, command: Command) -> Update {
        let outcome = match &command {
            Command::Submit(request) => {
                self.submit(request).await.map(|task| Update::Submitted { request: request.clone(), task })
            }
            Command::Cancel { task, .. } => self.cancel(*task).await.map(|()| Update::Cancelled { task: *task }),
            Command::Remove { task } => self.remove(*task).await.map(|()| Update::Removed { task: *task }),
        };
        outcome.unwrap_or_else(|why| Update::Refused { command, why })
    }

    fn explain(&self, refusal: &Refusal, step: Step) -> String {
        match &self.target.usm {
            Some(usm) => refusal.explain_v3(self.target.addr, usm.user.name(), step),
            None => refusal.explain(self.target.addr, &self.target.community, step),
        }
    }

    /// Creates a task for `request`; its index, or why not.
    pub async fn submit(&self, request: &Request) -> Result<u32, String> {
        let next = cell(mib::DVSAN_STATION_TASK_NEXT_INDEX, 0);
        let sent = [VarBind::null(next.clone())];
        let answer = self
            .manager
            .get(&self.target, &[next])
            .await
            .map_err(|e| self.explain(&Refusal::from_error(&e, &sent), Step::NextIndex))?;
        let index = match answer.first().map(|vb| &vb.value) {
            Some(Value::Gauge32(index)) if *index > 0 => *index,
            Some(value) if value.is_exception() => return Err(self.explain(&Refusal::NoTaskTable, Step::NextIndex)),
            other => {
                let what = format!("dvsanStationTaskNextIndex.0 = {other:?}");
                return Err(self.explain(&Refusal::Unexpected(what), Step::NextIndex));
            }
        };
        let varbinds = create_varbinds(index, request, &self.owner);
        let step = Step::Create(index);
        let error = match self.manager.set(&self.target, varbinds.clone()).await {
            Ok(_) => return Ok(index),
            Err(e) => e,
        };
        let refusal = Refusal::from_error(&error, &varbinds);
        if !is_maybe_applied(&error) {
            return Err(self.explain(&refusal, step));
        }
        // Our index is ours alone: a row there with our operation and owner is the task we sent.
        let columns = [mib::DVSAN_STATION_TASK_OPERATION, mib::DVSAN_STATION_TASK_OWNER];
        match self.read_row(index, &columns).await {
            Ok(Some(values))
                if values.first().and_then(Value::as_i32) == Some(request.operation().mib_value())
                    && values.get(1).and_then(Value::as_str) == Some(self.owner.as_str()) =>
            {
                Ok(index)
            }
            Ok(_) if matches!(error, SnmpError::Timeout) => Err(self.explain(&Refusal::ChangeIgnored, step)),
            Ok(_) => Err(self.explain(&refusal, step)),
            Err(_) => Err(self.explain(&Refusal::Unknown, step)),
        }
    }

    /// Cancels pending task `task`.
    pub async fn cancel(&self, task: u32) -> Result<(), String> {
        let varbinds = cancel_varbinds(task);
        let step = Step::Cancel(task);
        let error = match self.manager.set(&self.target, varbinds.clone()).await {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        let refusal = Refusal::from_error(&error, &varbinds);
        if !is_maybe_applied(&error) && !is_missing_row(&error) {
            return Err(self.explain(&refusal, step));
        }
        match self.read_row(task, &[mib::DVSAN_STATION_TASK_STATE]).await {
            Ok(Some(values))
                if values.first().and_then(Value::as_i32).and_then(TaskState::from_mib)
                    == Some(TaskState::Cancelled) =>
            {
                Ok(())
            }
            Ok(None) => Err(self.explain(&Refusal::NoSuchTask, step)),
            Ok(Some(_)) if matches!(error, SnmpError::Timeout) => Err(self.explain(&Refusal::ChangeIgnored, step)),
            Ok(Some(_)) => Err(self.explain(&refusal, step)),
            Err(_) if matches!(error, SnmpError::Timeout) => Err(self.explain(&Refusal::NoAnswer, step)),
            Err(_) => Err(self.explain(&refusal, step)),
        }
    }

    /// Removes ended task `task`'s row. A row already gone counts as removed.
    pub async fn remove(&self, task: u32) -> Result<(), String> {
        let varbinds = remove_varbinds(task);
        let step = Step::Remove(task);
        let error = match self.manager.set(&self.target, varbinds.clone()).await {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        let refusal = Refusal::from_error(&error, &varbinds);
        if !matches!(error, SnmpError::Timeout) {
            return Err(self.explain(&refusal, step));
        }
        match self.read_row(task, &[mib::DVSAN_STATION_TASK_STATE]).await {
            Ok(None) => Ok(()),
            Ok(Some(_)) => Err(self.explain(&Refusal::ChangeIgnored, step)),
            Err(_) => Err(self.explain(&Refusal::NoAnswer, step)),
        }
    }

    /// The values of `columns` of task row `index`; `None` when the row does not exist.
    async fn read_row(&self, index: u32, columns: &[&[u32]]) -> Result<Option<Vec<Value>>, SnmpError> {
        let oids: Vec<Oid> = columns.iter().map(|column| cell(column, index)).collect();
        let answer = self.manager.get(&self.target, &oids).await?;
        if answer.iter().any(|vb| vb.value.is_exception()) {
            return Ok(None);
        }
        Ok(Some(answer.into_iter().map(|vb| vb.value).collect()))
    }
}

/// Whether a failed SET may still have been applied: its answer was lost (timeout), or a retransmitted copy was
/// refused because the first one had changed the row (inconsistentValue).
fn is_maybe_applied(error: &SnmpError) -> bool {
    matches!(error, SnmpError::Timeout | SnmpError::Agent { status: ErrorStatus::InconsistentValue, .. })
}

/// Whether the station refused a SET on a row that is not there.
fn is_missing_row(error: &SnmpError) -> bool {
    matches!(
        error,
        SnmpError::Agent {
            status: ErrorStatus::InconsistentName | ErrorStatus::NoCreation | ErrorStatus::NoSuchName,
            ..
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::fake_station::{FakeStation, READ_COMMUNITY, WRITE_COMMUNITY};
    use dvsan_mib::dvsan_station_task_operation as op;
    use dvsan_mib::dvsan_station_task_state as state;
    use std::net::IpAddr;

    const OWNER: &str = "console@test";

    fn oid(column: &[u32], index: u32) -> Oid {
        let mut arcs = column.to_vec();
        arcs.push(index);
        Oid::new(arcs).unwrap()
    }

    fn text(column: &[u32], index: u32, value: &str) -> VarBind {
        VarBind::new(oid(column, index), Value::OctetString(value.as_bytes().to_vec()))
    }

    fn gauge(column: &[u32], index: u32, value: u32) -> VarBind {
        VarBind::new(oid(column, index), Value::Gauge32(value))
    }

    fn integer(column: &[u32], index: u32, value: i32) -> VarBind {
        VarBind::new(oid(column, index), Value::Integer(value))
    }

    /// The varbinds every create SET of task 7 has around its arguments.
    fn expected(operation: i32, arguments: Vec<VarBind>) -> Vec<VarBind> {
        let mut varbinds = vec![integer(mib::DVSAN_STATION_TASK_OPERATION, 7, operation)];
        varbinds.extend(arguments);
        varbinds.push(text(mib::DVSAN_STATION_TASK_OWNER, 7, OWNER));
        varbinds.push(integer(mib::DVSAN_STATION_TASK_ROW_STATUS, 7, 4));
        varbinds
    }

    #[test]
    fn create_varbinds_for_every_operation() {
        use mib::{
            DVSAN_STATION_TASK_HOST as HOST, DVSAN_STATION_TASK_NAME as NAME,
            DVSAN_STATION_TASK_PARTITION as PARTITION, DVSAN_STATION_TASK_READ_ONLY as READ_ONLY,
            DVSAN_STATION_TASK_SIZE as SIZE, DVSAN_STATION_TASK_UNIT as UNIT, DVSAN_STATION_TASK_VOLUME as VOLUME,
        };
        let host: IpAddr = "192.0.2.10".parse().unwrap();
        let (yes, no) = (truth_value::TRUE, truth_value::FALSE);
        assert_eq!((yes, no), (1, 2));
        let cases = [
            (
                Request::AddUnit { agent: crate::form::parse_agent_address("127.0.0.14:1161").unwrap() },
                expected(9, vec![text(UNIT, 7, "127.0.0.14:1161")]),
            ),
            (
                Request::CreateVolume { unit: "unit1".into(), size_bytes: 2 << 30, name: Some("db2".into()) },
                expected(1, vec![text(UNIT, 7, "unit1"), text(SIZE, 7, "2147483648"), text(NAME, 7, "db2")]),
            ),
            (
                Request::CreateVolume { unit: "3".into(), size_bytes: 4096, name: None },
                expected(1, vec![text(UNIT, 7, "3"), text(SIZE, 7, "4096")]),
            ),
            (
                Request::DestroyVolume { unit: "unit1".into(), volume: 2, name: "db1".into() },
                expected(2, vec![text(UNIT, 7, "unit1"), gauge(VOLUME, 7, 2)]),
            ),
            (
                Request::CreatePartition { unit: "unit1".into(), volume: 2, size_bytes: 512 << 20 },
                expected(3, vec![text(UNIT, 7, "unit1"), gauge(VOLUME, 7, 2), text(SIZE, 7, "536870912")]),
            ),
            (
                Request::DestroyPartition { unit: "unit1".into(), volume: 2, partition: 1 },
                expected(4, vec![text(UNIT, 7, "unit1"), gauge(VOLUME, 7, 2), gauge(PARTITION, 7, 1)]),
            ),
            (
                Request::Assign { unit: "unit1".into(), volume: 2, host, read_only: true },
                expected(
                    5,
                    vec![
                        text(UNIT, 7, "unit1"),
                        gauge(VOLUME, 7, 2),
                        text(HOST, 7, "192.0.2.10"),
                        integer(READ_ONLY, 7, yes),
                    ],
                ),
            ),
            (
                Request::Unassign { unit: "unit1".into(), volume: 2, host: None },
                expected(6, vec![text(UNIT, 7, "unit1"), gauge(VOLUME, 7, 2)]),
            ),
            (
                Request::Unassign { unit: "unit1".into(), volume: 2, host: Some("::1".parse().unwrap()) },
                expected(6, vec![text(UNIT, 7, "unit1"), gauge(VOLUME, 7, 2), text(HOST, 7, "::1")]),
            ),
            (
                Request::Allocate { size_bytes: 1 << 30, host, name: None, read_only: false, replicas: 1 },
                expected(7, vec![text(SIZE, 7, "1073741824"), text(HOST, 7, "192.0.2.10"), integer(READ_ONLY, 7, no)]),
            ),
            (
                Request::Allocate { size_bytes: 1 << 30, host, name: None, read_only: false, replicas: 2 },
                expected(
                    7,
                    vec![
                        text(SIZE, 7, "1073741824"),
                        text(HOST, 7, "192.0.2.10"),
                        integer(READ_ONLY, 7, no),
                        gauge(mib::DVSAN_STATION_TASK_REPLICAS, 7, 2),
                    ],
                ),
            ),
            (
                Request::Allocate { size_bytes: 1 << 30, host, name: Some("web".into()), read_only: true, replicas: 1 },
                expected(
                    7,
                    vec![
                        text(SIZE, 7, "1073741824"),
                        text(HOST, 7, "192.0.2.10"),
                        text(NAME, 7, "web"),
                        integer(READ_ONLY, 7, yes),
                    ],
                ),
            ),
            (Request::RescanUnit { unit: "unit3".into() }, expected(8, vec![text(UNIT, 7, "unit3")])),
        ];
        for (request, varbinds) in cases {
            assert_eq!(create_varbinds(7, &request, OWNER), varbinds, "{request}");
        }
        // The numbers above are the MIB's; the OIDs are the MIB's task entry.
        assert_eq!(
            oid(mib::DVSAN_STATION_TASK_ROW_STATUS, 7).as_slice(),
            [1, 3, 6, 1, 4, 1, 32473, 2, 1, 7, 2, 1, 19, 7]
        );
        // Without an owner, the column is left to its default.
        let rescan = create_varbinds(7, &Request::RescanUnit { unit: "u".into() }, "");
        assert_eq!(rescan.len(), 3);
    }

    #[test]
    fn cancel_and_remove_varbinds() {
        assert_eq!(cancel_varbinds(12), [integer(mib::DVSAN_STATION_TASK_STATE, 12, 5)]);
        assert_eq!(remove_varbinds(12), [integer(mib::DVSAN_STATION_TASK_ROW_STATUS, 12, 6)]);
    }

    #[test]
    fn refusals_are_explained_with_what_to_do() {
        let station: SocketAddr = "127.0.0.1:1161".parse().unwrap();
        let explain = |refusal: Refusal, step| refusal.explain(station, "private", step);
        let status = |status| Refusal::Status { status, object: None };
        let cases: Vec<(String, &[&str])> = vec![
            (
                explain(Refusal::NoAnswer, Step::NextIndex),
                &[
                    "station 127.0.0.1:1161 does not answer with write community \"private\"",
                    "--write-community",
                    "--snmp-write-community",
                ],
            ),
            (
                explain(Refusal::ChangeIgnored, Step::Create(3)),
                &["ignored the change: \"private\" only reads there", "--snmp-write-community with --write-community"],
            ),
            (explain(Refusal::Unknown, Step::Create(3)), &["may or may not be made", "Tasks screen"]),
            (explain(Refusal::NoTaskTable, Step::NextIndex), &["does not run tasks", "update dvsan-station"]),
            (explain(Refusal::NoSuchTask, Step::Cancel(4)), &["task 4 is no longer in the station's list"]),
            (
                explain(status(ErrorStatus::NoAccess), Step::Create(3)),
                &["refused to write (noAccess)", "--write-community"],
            ),
            (explain(status(ErrorStatus::NotWritable), Step::Remove(3)), &["(notWritable)", "--snmp-write-community"]),
            (
                explain(status(ErrorStatus::AuthorizationError), Step::Cancel(3)),
                &["(authorizationError)", "--write-community"],
            ),
            (
                explain(status(ErrorStatus::InconsistentValue), Step::Cancel(9)),
                &["task 9 is no longer pending", "only pending"],
            ),
            (
                explain(status(ErrorStatus::InconsistentValue), Step::Remove(9)),
                &["task 9 is running", "once it has ended"],
            ),
            (explain(status(ErrorStatus::InconsistentValue), Step::Create(9)), &["refused new task 9", "try again"]),
            (
                explain(status(ErrorStatus::ResourceUnavailable), Step::Create(9)),
                &["cannot take more tasks now", "remove ended ones"],
            ),
            (
                explain(
                    Refusal::Status { status: ErrorStatus::WrongLength, object: Some("dvsanStationTaskName.9".into()) },
                    Step::Create(9),
                ),
                &["too long (wrongLength at dvsanStationTaskName.9)", "shorten it"],
            ),
            (
                explain(status(ErrorStatus::WrongValue), Step::Create(9)),
                &["disagree on DVSAN-STATION-MIB", "same dvsan version"],
            ),
            (explain(status(ErrorStatus::CommitFailed), Step::Create(9)), &["failed to carry out", "station's log"]),
            (explain(Refusal::Network("refused".into()), Step::Create(9)), &["could not send to station", "refused"]),
        ];
        for (text, wanted) in cases {
            for w in wanted {
                assert!(text.contains(w), "{w:?} not in {text:?}");
            }
        }
        // The blamed varbind is named from the request.
        let sent = create_varbinds(9, &Request::RescanUnit { unit: "u".into() }, OWNER);
        let error = SnmpError::Agent { status: ErrorStatus::WrongValue, index: 1 };
        let object = Some("dvsanStationTaskOperation.9".to_string());
        assert_eq!(Refusal::from_error(&error, &sent), Refusal::Status { status: ErrorStatus::WrongValue, object });
        let error = SnmpError::Agent { status: ErrorStatus::GenErr, index: 0 };
        assert_eq!(Refusal::from_error(&error, &sent), Refusal::Status { status: ErrorStatus::GenErr, object: None });
        assert_eq!(Refusal::from_error(&SnmpError::Timeout, &sent), Refusal::NoAnswer);
    }

    #[test]
    fn the_owner_names_this_machine_and_fits_the_column() {
        let owner = default_owner();
        assert!(owner.starts_with("console@") && owner.len() > "console@".len(), "{owner}");
        assert!(owner.len() <= MAX_OWNER);
    }

    async fn client(station: &FakeStation, community: &str, timeout_ms: u64) -> TaskClient {
        let manager = Arc::new(Manager::new("127.0.0.1:0".parse().unwrap()).await.unwrap());
        let target = Target::new(station.addr, community).with_timeout(Duration::from_millis(timeout_ms), 0);
        TaskClient::with_manager(manager, target, OWNER)
    }

    #[tokio::test]
    async fn a_submission_creates_the_row_and_reports_its_task() {
        let station = FakeStation::start(true).await;
        station.state().next_index = 40;
        let client = client(&station, WRITE_COMMUNITY, 2000).await;
        let request = Request::CreateVolume { unit: "unit1".into(), size_bytes: 1 << 30, name: None };
        let update = client.run(Command::Submit(request.clone())).await;
        assert_eq!(update, Update::Submitted { request: request.clone(), task: 41 });
        let state = station.state();
        assert_eq!(state.sets, [create_varbinds(41, &request, OWNER)]);
        let row = &state.tasks[&41];
        assert_eq!(row[&3], Value::string("unit1"));
        assert_eq!(row[&6], Value::string("1073741824"));
        assert_eq!(row[&10], Value::string(OWNER));
        assert_eq!(row[&11], Value::Integer(state::PENDING));
    }

    #[tokio::test]
    async fn several_submissions_in_flight_get_their_own_tasks() {
        let station = FakeStation::start(true).await;
        let client = client(&station, WRITE_COMMUNITY, 2000).await;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let handles: Vec<_> = (1..=8)
            .map(|i| client.spawn(Command::Submit(Request::RescanUnit { unit: format!("unit{i}") }), tx.clone()))
            .collect();
        drop(tx);
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let update = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.unwrap().unwrap();
            let Update::Submitted { task, request: Request::RescanUnit { unit } } = update else {
                panic!("expected a submission, got {update:?}")
            };
            assert_eq!(station.state().tasks[&task][&3], Value::string(&unit));
            tasks.push(task);
        }
        for handle in handles {
            handle.await.unwrap();
        }
        tasks.sort_unstable();
        tasks.dedup();
        assert_eq!(tasks.len(), 8);
        assert_eq!(station.state().tasks.len(), 8);
    }

    #[tokio::test]
    async fn a_read_only_community_is_told_apart_from_no_answer() {
        let station = FakeStation::start(true).await;
        let request = Request::RescanUnit { unit: "unit1".into() };
        // The read community reads the index, but its SET is dropped by the agent.
        let read_only = client(&station, READ_COMMUNITY, 200).await;
        let why = read_only.submit(&request).await.unwrap_err();
        assert!(why.contains("ignored the change: \"public\" only reads there"), "{why}");
        assert!(station.state().tasks.is_empty());
        // An unknown community gets no answer at all.
        let unknown = client(&station, "nope", 200).await;
        let why = unknown.submit(&request).await.unwrap_err();
        assert!(why.contains("does not answer with write community \"nope\""), "{why}");
        let why = unknown.cancel(3).await.unwrap_err();
        assert!(why.contains("does not answer"), "{why}");
        station.add_task(3, op::RESCAN_UNIT, state::DONE, OWNER);
        let why = read_only.remove(3).await.unwrap_err();
        assert!(why.contains("ignored the change"), "{why}");
        assert!(station.state().tasks.contains_key(&3));
    }

    #[tokio::test]
    async fn a_station_without_tasks_says_so() {
        let station = FakeStation::start(false).await;
        let client = client(&station, WRITE_COMMUNITY, 2000).await;
        let why = client.submit(&Request::RescanUnit { unit: "unit1".into() }).await.unwrap_err();
        assert!(why.contains("does not run tasks"), "{why}");
    }

    #[tokio::test]
    async fn refused_sets_are_explained() {
        let station = FakeStation::start(true).await;
        let client = client(&station, WRITE_COMMUNITY, 2000).await;
        let request = Request::RescanUnit { unit: "unit1".into() };
        station.state().refuse = Some(ErrorStatus::ResourceUnavailable);
        let update = client.run(Command::Submit(request.clone())).await;
        let Update::Refused { command, why } = update else { panic!("expected a refusal") };
        assert_eq!(command, Command::Submit(request.clone()));
        assert!(why.contains("cannot take more tasks now"), "{why}");
        station.state().refuse = Some(ErrorStatus::NotWritable);
        let why = client.submit(&request).await.unwrap_err();
        assert!(why.contains("refused to write (notWritable at dvsanStationTaskOperation."), "{why}");
        assert!(why.contains("--write-community"), "{why}");
    }

    #[tokio::test]
    async fn an_applied_create_whose_answer_was_lost_counts_as_submitted() {
        let station = FakeStation::start(true).await;
        let client = client(&station, WRITE_COMMUNITY, 2000).await;
        let request = Request::RescanUnit { unit: "unit1".into() };
        // The row is there already (the first SET was applied), so the station refuses the copy.
        station.state().next_index = 10;
        station.add_task(11, op::RESCAN_UNIT, state::RUNNING, OWNER);
        assert_eq!(client.submit(&request).await, Ok(11));
        // A row someone else made at that index is not ours.
        station.add_task(12, op::RESCAN_UNIT, state::PENDING, "nms@elsewhere");
        let why = client.submit(&request).await.unwrap_err();
        assert!(why.contains("refused new task 12 (inconsistentValue"), "{why}");
    }

    #[tokio::test]
    async fn cancelling_and_removing() {
        let station = FakeStation::start(true).await;
        let client = client(&station, WRITE_COMMUNITY, 2000).await;
        station.add_task(5, op::RESCAN_UNIT, state::PENDING, "nms@elsewhere");
        station.add_task(6, op::RESCAN_UNIT, state::RUNNING, OWNER);
        let cancel = |task| Command::Cancel { task, what: "rescan".into() };
        assert_eq!(client.run(cancel(5)).await, Update::Cancelled { task: 5 });
        assert_eq!(station.state().tasks[&5][&11], Value::Integer(state::CANCELLED));
        // Cancelling again (a retransmission, say) finds it cancelled: done.
        assert_eq!(client.run(cancel(5)).await, Update::Cancelled { task: 5 });
        let Update::Refused { why, .. } = client.run(cancel(6)).await else { panic!("a running task was cancelled") };
        assert!(why.contains("task 6 is no longer pending"), "{why}");
        let Update::Refused { why, .. } = client.run(cancel(99)).await else { panic!("a missing task was cancelled") };
        assert!(why.contains("task 99 is no longer in the station's list"), "{why}");

        assert_eq!(client.run(Command::Remove { task: 5 }).await, Update::Removed { task: 5 });
        assert!(!station.state().tasks.contains_key(&5));
        // Already gone: removed all the same.
        assert_eq!(client.run(Command::Remove { task: 5 }).await, Update::Removed { task: 5 });
        let Update::Refused { why, .. } = client.run(Command::Remove { task: 6 }).await else {
            panic!("a running task was removed")
        };
        assert!(why.contains("task 6 is running"), "{why}");
        assert!(station.state().tasks.contains_key(&6));
        assert_eq!(station.state().sets.last().unwrap(), &remove_varbinds(6));
    }
}
