//! The station's task runner: operations on the pool ([`crate::operation`]) submitted as rows of
//! dvsanStationTaskTable (served by `task_table`) and run by the station, several at a time.
//!
//! Tasks live in memory (by index) and every state change is written to the store (`tasks` table), so ended tasks
//! survive restarts; at start, a task stored as running (the station stopped under it) ends failed, and pending
//! ones run. States: pending → running → done or failed, or pending → cancelled (only a pending task can be
//! cancelled). At most [`MAX_ENDED`] ended tasks are kept (the oldest ended go first).
//!
//! One dispatcher task on the station's runtime starts pending tasks in index order when a worker is free (at
//! most `workers` run at once) and the task's locks ([`crate::allocate::PoolLock`]) are free: tasks on one unit
//! run one after another, tasks on different units at once, an allocation alone. A task never starts before an
//! earlier pending one it conflicts with, so an allocation is not starved by a stream of unit tasks. Locks held by
//! other processes (the CLI, the request table's worker, the start-up reconciliation) are tried without blocking,
//! every [`LOCK_RETRY`]; meanwhile the task stays pending (and cancellable) with a step such as "waiting for unit
//! #2". The dispatcher and each running task run on blocking-pool threads, never on the runtime's workers,
//! since they use the store (driven with `Handle::block_on`; their SNMP requests run on the runtime). A running
//! task uses a store connection kept for running tasks (opened once per worker) and the station's SNMP manager,
//! reporting its progress into its row. When it ends, the pool snapshot of the station MIB is refreshed
//! (`on_change`) and the ended task is announced (the station sends dvsanStationTaskCompleted). On shutdown the dispatcher stops starting
//! tasks; running ones are abandoned (and failed at the next start).
//!
//! The station starts clearVolume tasks itself ([`TaskRunner::follow_clearing`], owner [`STATION_OWNER`]): after
//! a task released a volume the unit wipes, and when a poll round or a walk finds a volume clearing. They take no
//! lock and no worker (following a clearing may take hours and holds up nothing); at most one waits or runs per
//! volume, and at most [`MAX_FOLLOWING`] run at once.

use crate::allocate::{AllocateError, Allocator, LockScope, PoolLock, Progress};
use crate::announce::{Announcer, Change};
use crate::operation::{Operation, Outcome};
use crate::set_values::truncate;
use crate::store::{StationStore, StoreError};
use crate::task_model::TEXT_MAX;
pub use crate::task_model::{Arguments, Task, TaskState};
use crate::timefmt::now_ms;
use dvsan_snmp::Manager;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;
use tokio::sync::Notify;

/// Ended tasks kept; beyond, the oldest ended are removed.
pub const MAX_ENDED: usize = 1000;
/// Pending and running tasks at most; a createAndGo beyond is refused (resourceUnavailable).
pub const MAX_WAITING: usize = 1000;
/// How often a task whose locks another process holds tries them again.
pub const LOCK_RETRY: Duration = Duration::from_millis(25);
/// clearVolume tasks running at once, at most (each reads its unit every 250 ms); more wait pending.
pub const MAX_FOLLOWING: usize = 64;

/// The owner of the tasks the station starts itself.
pub const STATION_OWNER: &str = "station";

/// The result of a task that was running when the station stopped.
pub const INTERRUPTED: &str = "the station stopped while the task ran; check the pool and run it again";

/// How the runner reaches units and how many tasks it runs at once.
#[derive(Debug, Clone)]
pub struct TaskSettings {
    pub state_dir: PathBuf,
    /// Community for reading units.
    pub read_community: String,
    /// Community for SETs on units; `None`: tasks that change units fail, naming `--write-community`.
    pub write_community: Option<String>,
    /// How long to wait for a unit's answer (per request, with 2 retries).
    pub timeout: Duration,
    /// The port of an added unit's agent when its address has none.
    pub agent_port: u16,
    /// Tasks running at once, at most.
    pub workers: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("task {0} exists already")]
    Exists(u32),
    #[error("there is no task {0}")]
    Unknown(u32),
    #[error("task {index} is {state}, not pending")]
    NotPending { index: u32, state: TaskState },
    #[error("task {0} is running; its row cannot be removed until it ends")]
    Running(u32),
    #[error("{0} tasks wait or run already; wait for some to end")]
    Full(usize),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A task's operation, once parsed, and the locks it needs.
#[derive(Debug, Clone)]
struct Plan {
    operation: Operation,
    scope: LockScope,
}

struct Shared {
    settings: TaskSettings,
    tasks: Mutex<BTreeMap<u32, Task>>,
    next_index: AtomicU32,
    store: Mutex<StationStore>,
    /// Connections for running tasks, opened as needed (at most one per worker) and kept for the next task.
    job_stores: Mutex<Vec<StationStore>>,
    wake: Notify,
    stopped: AtomicBool,
    announcer: Option<Announcer>,
    on_change: Box<dyn Fn() + Send + Sync>,
}

/// The runner; cheap to clone (the station's MIB handler holds one).
#[derive(Clone)]
pub struct TaskRunner {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for TaskRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskRunner").field("state_dir", &self.shared.settings.state_dir).finish_non_exhaustive()
    }
}

impl TaskRunner {
    /// Loads the stored tasks (ending those stored as running failed) without starting anything; `on_change` runs
    /// after every task that ran, `announcer` hears of every ended task.
    pub fn open(
        settings: TaskSettings,
        announcer: Option<Announcer>,
        on_change: impl Fn() + Send + Sync + 'static,
    ) -> Result<TaskRunner, StoreError> {
        let mut store = StationStore::open(&settings.state_dir)?;
        let now = now_ms();
        let mut tasks = BTreeMap::new();
        let mut interrupted = Vec::new();
        for mut task in store.tasks()? {
            if task.state == TaskState::Running {
                task.end(TaskState::Failed, INTERRUPTED, task.result_unit, None, now);
                store.save_task(&task)?;
                interrupted.push(task.clone());
            }
            tasks.insert(task.index, task);
        }
        let next = tasks.keys().next_back().map_or(1, |max: &u32| max.saturating_add(1));
        let runner = TaskRunner {
            shared: Arc::new(Shared {
                settings,
                tasks: Mutex::new(tasks),
                next_index: AtomicU32::new(next),
                store: Mutex::new(store),
                job_stores: Mutex::new(Vec::new()),
                wake: Notify::new(),
                stopped: AtomicBool::new(false),
                announcer,
                on_change: Box::new(on_change),
            }),
        };
        runner.shared.prune();
        for task in &interrupted {
            tracing::warn!(task = task.index, operation = %task.arguments.operation, "task was running when the station stopped; failed");
            runner.shared.announce(task);
        }
        Ok(runner)
    }

    /// Starts the dispatcher on a thread of its own (a blocking-pool thread driving it with `Handle::block_on`,
    /// since it uses the store); it runs until [`TaskRunner::stop`].
    pub fn start(&self, manager: Arc<Manager>) -> tokio::task::JoinHandle<()> {
        let runtime = tokio::runtime::Handle::current();
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || runtime.block_on(dispatch(shared, manager)))
    }

    /// Stops starting tasks (station shutdown); running ones go on until the runtime ends.
    pub fn stop(&self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        self.shared.wake.notify_one();
    }

    /// A task index for a new row, different on every call and not used by a task the runner keeps.
    pub fn next_index(&self) -> u32 {
        let tasks = self.shared.tasks();
        for _ in 0..=(tasks.len() + 1) {
            let candidate = self.shared.next_index.fetch_add(1, Ordering::SeqCst);
            if candidate != 0 && !tasks.contains_key(&candidate) {
                return candidate;
            }
        }
        // Every value tried was taken; only reachable with about 2^32 retrievals.
        self.shared.next_index.fetch_add(1, Ordering::SeqCst).max(1)
    }

    /// The value [`TaskRunner::next_index`] would hand out, without handing it out (walks see it, GETs take it).
    pub fn peek_index(&self) -> u32 {
        let tasks = self.shared.tasks();
        let mut candidate = self.shared.next_index.load(Ordering::SeqCst);
        for _ in 0..=(tasks.len() + 1) {
            if candidate != 0 && !tasks.contains_key(&candidate) {
                break;
            }
            candidate = candidate.wrapping_add(1);
        }
        candidate.max(1)
    }

    /// Whether a task `index` could be submitted now (a SET's check before it commits).
    pub fn check_submit(&self, index: u32) -> Result<(), TaskError> {
        let tasks = self.shared.tasks();
        if tasks.contains_key(&index) {
            return Err(TaskError::Exists(index));
        }
        let waiting = tasks.values().filter(|t| !t.state.is_ended()).count();
        if waiting >= MAX_WAITING {
            return Err(TaskError::Full(waiting));
        }
        Ok(())
    }

    /// Adds a pending task and stores it; the dispatcher checks its arguments when it runs it.
    pub fn submit(&self, index: u32, arguments: Arguments, owner: String) -> Result<(), TaskError> {
        let mut tasks = self.shared.tasks();
        if tasks.contains_key(&index) {
            return Err(TaskError::Exists(index));
        }
        let waiting = tasks.values().filter(|t| !t.state.is_ended()).count();
        if waiting >= MAX_WAITING {
            return Err(TaskError::Full(waiting));
        }
        let task = Task::new(index, arguments, owner, now_ms());
        self.shared.store().save_task(&task)?;
        tracing::info!(task = index, operation = %task.arguments.operation, unit = %task.arguments.unit, owner = %task.owner, "task submitted");
        tasks.insert(index, task);
        drop(tasks);
        self.shared.next_index.fetch_max(index.saturating_add(1), Ordering::SeqCst);
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Starts a clearVolume task following unit `unit`'s clearing of volume `volume`, unless one waits or runs for
    /// it already; returns its index if it started one.
    pub fn follow_clearing(&self, unit: u32, volume: u32) -> Option<u32> {
        self.shared.follow_clearing(unit, volume)
    }

    /// Takes back a task [`TaskRunner::submit`] added, while it is still pending (undo of a SET).
    pub fn withdraw(&self, index: u32) -> Result<(), TaskError> {
        let mut tasks = self.shared.tasks();
        match tasks.get(&index) {
            None => return Err(TaskError::Unknown(index)),
            Some(t) if t.state != TaskState::Pending => return Err(TaskError::NotPending { index, state: t.state }),
            Some(_) => {}
        }
        self.shared.store().delete_tasks(&[index])?;
        tasks.remove(&index);
        Ok(())
    }

    /// Cancels a pending task; returns it as it was.
    pub fn cancel(&self, index: u32) -> Result<Task, TaskError> {
        let ended = {
            let mut tasks = self.shared.tasks();
            let task = tasks.get_mut(&index).ok_or(TaskError::Unknown(index))?;
            if task.state != TaskState::Pending {
                return Err(TaskError::NotPending { index, state: task.state });
            }
            let before = task.clone();
            let mut ended = task.clone();
            ended.end(TaskState::Cancelled, "cancelled while pending; nothing was done", None, None, now_ms());
            self.shared.store().save_task(&ended)?;
            *task = ended.clone();
            (before, ended)
        };
        tracing::info!(task = index, operation = %ended.1.arguments.operation, "task cancelled");
        self.shared.announce(&ended.1);
        self.shared.prune();
        self.shared.wake.notify_one();
        Ok(ended.0)
    }

    /// Removes a task's row: an ended task's, or a pending task's after cancelling it; a running task's row
    /// stays. Returns the task as it was.
    pub fn remove(&self, index: u32) -> Result<Task, TaskError> {
        let state = self.shared.tasks().get(&index).map(|t| t.state).ok_or(TaskError::Unknown(index))?;
        let before = match state {
            TaskState::Running => return Err(TaskError::Running(index)),
            TaskState::Pending => self.cancel(index)?,
            _ => self.shared.tasks().get(&index).cloned().ok_or(TaskError::Unknown(index))?,
        };
        let mut tasks = self.shared.tasks();
        match tasks.get(&index) {
            Some(t) if t.state.is_ended() => {}
            Some(_) => return Err(TaskError::Running(index)),
            None => return Err(TaskError::Unknown(index)),
        }
        self.shared.store().delete_tasks(&[index])?;
        tasks.remove(&index);
        tracing::info!(task = index, "task removed");
        Ok(before)
    }

    /// Puts a task back as it was (undo of a SET that cancelled or removed it).
    pub fn restore(&self, task: Task) -> Result<(), TaskError> {
        let mut tasks = self.shared.tasks();
        self.shared.store().save_task(&task)?;
        tasks.insert(task.index, task);
        drop(tasks);
        self.shared.wake.notify_one();
        Ok(())
    }

    /// A copy of task `index`.
    pub fn task(&self, index: u32) -> Option<Task> {
        self.shared.tasks().get(&index).cloned()
    }

    /// Reads task `index` without copying it.
    pub fn with_task<R>(&self, index: u32, read: impl FnOnce(&Task) -> R) -> Option<R> {
        self.shared.tasks().get(&index).map(read)
    }

    /// Every task, by index.
    pub fn tasks(&self) -> Vec<Task> {
        self.shared.tasks().values().cloned().collect()
    }

    /// Every task's index, ascending.
    pub fn indexes(&self) -> Vec<u32> {
        self.shared.tasks().keys().copied().collect()
    }
}

impl Shared {
    fn tasks(&self) -> MutexGuard<'_, BTreeMap<u32, Task>> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn store(&self) -> MutexGuard<'_, StationStore> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// See [`TaskRunner::follow_clearing`].
    fn follow_clearing(&self, unit: u32, volume: u32) -> Option<u32> {
        let mut arguments = Arguments::new(crate::task_model::OperationKind::ClearVolume);
        arguments.unit = unit.to_string();
        arguments.volume = Some(dvsan_layout::VolumeIndex(volume));
        let mut tasks = self.tasks();
        if tasks.values().any(|t| !t.state.is_ended() && t.arguments == arguments) {
            return None;
        }
        let mut index = self.next_index.fetch_add(1, Ordering::SeqCst).max(1);
        while tasks.contains_key(&index) {
            index = self.next_index.fetch_add(1, Ordering::SeqCst).max(1);
        }
        let task = Task::new(index, arguments, STATION_OWNER.to_string(), now_ms());
        if let Err(e) = self.store().save_task(&task) {
            tracing::error!(unit, volume, error = %e, "cannot store a clearVolume task");
            return None;
        }
        tracing::info!(task = index, unit, volume, "task submitted: following the unit's clearing of a volume");
        tasks.insert(index, task);
        drop(tasks);
        self.wake.notify_one();
        Some(index)
    }

    /// A connection for a running task: one kept from an earlier task, or a new one.
    fn job_store(&self) -> Result<StationStore, StoreError> {
        let kept = self.job_stores.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match kept {
            Some(store) => Ok(store),
            None => StationStore::open(&self.settings.state_dir),
        }
    }

    /// Keeps a task's connection for the next task.
    fn keep_job_store(&self, store: StationStore) {
        self.job_stores.lock().unwrap_or_else(|e| e.into_inner()).push(store);
    }

    /// Changes task `index` with `change` (which says whether it changed it) and stores it, under the task lock so
    /// stored states keep their order; returns the task as changed, `None` when unchanged or unknown.
    fn update(&self, index: u32, change: impl FnOnce(&mut Task) -> bool) -> Option<Task> {
        let mut tasks = self.tasks();
        let task = tasks.get_mut(&index)?;
        if !change(task) {
            return None;
        }
        if let Err(e) = self.store().save_task(task) {
            tracing::error!(task = index, error = %e, "storing a task's state failed");
        }
        Some(task.clone())
    }

    /// Starts pending task `index` (false when it is no longer pending: it was cancelled meanwhile).
    fn start(&self, index: u32) -> bool {
        self.update(index, |task| {
            if task.state != TaskState::Pending {
                return false;
            }
            task.state = TaskState::Running;
            task.step = "starting".to_string();
            task.progress = 0;
            true
        })
        .is_some()
    }

    /// A pending task's step (not stored: it only says what it waits for).
    fn waiting(&self, index: u32, step: &str) {
        if let Some(task) = self.tasks().get_mut(&index) {
            if task.state == TaskState::Pending && task.step != step {
                task.step = step.to_string();
            }
        }
    }

    /// Ends task `index` (done with `Ok`, failed with `Err`), tells whoever listens, and wakes the dispatcher.
    fn finish(&self, index: u32, outcome: Result<Outcome, (String, Option<u32>)>, ran: bool) {
        let now = now_ms();
        // A pending task failed by the dispatcher may have been cancelled meanwhile; it stays cancelled.
        let task = self.update(index, |task| {
            match &outcome {
                _ if task.state.is_ended() => return false,
                Ok(o) => task.end(TaskState::Done, &o.text, Some(o.unit), o.volume, now),
                Err((reason, unit)) => task.end(TaskState::Failed, reason, *unit, None, now),
            }
            true
        });
        if ran {
            (self.on_change)();
        }
        if let Some(task) = task {
            match task.state {
                TaskState::Done => {
                    tracing::info!(task = index, operation = %task.arguments.operation, result = %task.result, "task done")
                }
                _ => {
                    tracing::warn!(task = index, operation = %task.arguments.operation, result = %task.result, "task failed")
                }
            }
            self.announce(&task);
        }
        self.prune();
        self.wake.notify_one();
    }

    /// Announces an ended task (the station sends dvsanStationTaskCompleted).
    fn announce(&self, task: &Task) {
        if let Some(announcer) = &self.announcer {
            announcer.announce(Change::TaskEnded(task));
        }
    }

    /// Removes the oldest ended tasks beyond [`MAX_ENDED`].
    fn prune(&self) {
        let mut tasks = self.tasks();
        let mut ended: Vec<(i64, u32)> =
            tasks.values().filter(|t| t.state.is_ended()).map(|t| (t.finished_ms.unwrap_or(0), t.index)).collect();
        if ended.len() <= MAX_ENDED {
            return;
        }
        ended.sort_unstable();
        let old: Vec<u32> = ended[..ended.len() - MAX_ENDED].iter().map(|(_, index)| *index).collect();
        if let Err(e) = self.store().delete_tasks(&old) {
            tracing::error!(error = %e, "removing old tasks from the store failed");
            return;
        }
        for index in &old {
            tasks.remove(index);
        }
        tracing::debug!(removed = old.len(), "old ended tasks removed");
    }
}

/// A running task's [`Progress`]: into its row (in memory).
struct TaskProgress {
    shared: Weak<Shared>,
    index: u32,
}

impl Progress for TaskProgress {
    fn report(&self, percent: u32, step: &str) {
        let Some(shared) = self.shared.upgrade() else { return };
        let mut tasks = shared.tasks();
        if let Some(task) = tasks.get_mut(&self.index) {
            if task.state == TaskState::Running {
                task.progress = percent.min(100);
                task.step = truncate(step, TEXT_MAX);
            }
        }
    }
}

/// What a pending task whose locks conflict with `blocker` (or with another process, `None`) waits for.
fn waiting_for(scope: LockScope, blocker: Option<LockScope>) -> String {
    match (scope, blocker) {
        (LockScope::Pool, _) => "waiting for the other tasks on the pool to end (an allocation runs alone)".to_string(),
        (LockScope::Unit(unit), Some(LockScope::Unit(_)) | None) => format!("waiting for unit #{unit}"),
        _ => "waiting for an allocation to end (it runs alone)".to_string(),
    }
}

/// The dispatcher: starts pending tasks when they may run, until the runner stops.
async fn dispatch(shared: Arc<Shared>, manager: Arc<Manager>) {
    let mut store = match StationStore::open(&shared.settings.state_dir) {
        Ok(store) => store,
        Err(e) => {
            tracing::error!(error = %e, "tasks: cannot open the store; no task runs");
            return;
        }
    };
    let mut plans: HashMap<u32, Plan> = HashMap::new();
    tracing::info!(workers = shared.settings.workers, "task runner started");
    while !shared.stopped.load(Ordering::SeqCst) {
        let retry = dispatch_round(&shared, &manager, &mut store, &mut plans);
        let wait = if retry { LOCK_RETRY } else { Duration::from_secs(1) };
        tokio::select! {
            _ = shared.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
    tracing::info!("task runner stopped; running tasks are abandoned");
}

/// One pass over the pending tasks in index order; returns whether one waits for a lock another process holds.
fn dispatch_round(
    shared: &Arc<Shared>,
    manager: &Arc<Manager>,
    store: &mut StationStore,
    plans: &mut HashMap<u32, Plan>,
) -> bool {
    let (pending, running): (Vec<(u32, Arguments)>, Vec<u32>) = {
        let tasks = shared.tasks();
        let pending = tasks.values().filter(|t| t.state == TaskState::Pending).map(|t| (t.index, t.arguments.clone()));
        let running = tasks.values().filter(|t| t.state == TaskState::Running).map(|t| t.index).collect();
        (pending.collect(), running)
    };
    plans.retain(|index, _| running.contains(index) || pending.iter().any(|(i, _)| i == index));
    let settings = &shared.settings;
    // Tasks that take no lock (clearVolume, which follows a unit for as long as it clears) take no worker either.
    let mut busy = running.iter().filter(|i| plans.get(i).is_none_or(|p| p.scope != LockScope::Nothing)).count();
    let mut following = running.len() - busy;
    // Scopes of the tasks that run, and of the earlier pending ones that could not start: a later task waits
    // behind them when it conflicts, so tasks on one unit keep their order and an allocation is not starved.
    let mut ahead: Vec<LockScope> = running.iter().filter_map(|i| plans.get(i)).map(|p| p.scope).collect();
    let mut adding_units = running.iter().filter_map(|i| plans.get(i)).any(|p| p.scope == LockScope::Shared);
    let mut retry = false;
    for (index, arguments) in pending {
        let plan = match plans.get(&index) {
            Some(plan) => plan.clone(),
            None => {
                let operation = match Operation::from_arguments(&arguments, settings.agent_port) {
                    Ok(operation) => operation,
                    Err(reason) => {
                        shared.finish(index, Err((reason, None)), false);
                        continue;
                    }
                };
                match operation.lock_scope(store) {
                    Ok(scope) => {
                        let plan = Plan { operation, scope };
                        plans.insert(index, plan.clone());
                        plan
                    }
                    // The unit may be the one an earlier addUnit task adds.
                    Err(AllocateError::Store(StoreError::UnknownUnit(_))) if adding_units => {
                        shared.waiting(index, "waiting for the units being added by earlier tasks");
                        continue;
                    }
                    Err(e) => {
                        shared.finish(index, Err((e.to_string(), None)), false);
                        continue;
                    }
                }
            }
        };
        adding_units |= plan.scope == LockScope::Shared;
        if let Some(blocker) = ahead.iter().find(|held| held.conflicts_with(plan.scope)) {
            shared.waiting(index, &waiting_for(plan.scope, Some(*blocker)));
            ahead.push(plan.scope);
            continue;
        }
        if busy >= settings.workers.max(1) && plan.scope != LockScope::Nothing {
            shared.waiting(index, "waiting for a free worker");
            ahead.push(plan.scope);
            continue;
        }
        if following >= MAX_FOLLOWING && plan.scope == LockScope::Nothing {
            shared.waiting(index, &format!("waiting: {MAX_FOLLOWING} clearings are followed already"));
            continue;
        }
        let lock = match PoolLock::try_acquire(&settings.state_dir, plan.scope) {
            Ok(Some(lock)) => lock,
            Ok(None) => {
                shared.waiting(index, &waiting_for(plan.scope, None));
                ahead.push(plan.scope);
                retry = true;
                continue;
            }
            Err(e) => {
                shared.finish(index, Err((e.to_string(), None)), false);
                continue;
            }
        };
        if !shared.start(index) {
            continue;
        }
        if plan.scope == LockScope::Nothing {
            following += 1;
        } else {
            busy += 1;
        }
        ahead.push(plan.scope);
        tracing::info!(task = index, operation = %plan.operation.kind(), scope = ?plan.scope, "task started");
        tokio::spawn(run(Arc::clone(shared), Arc::clone(manager), index, plan, lock));
    }
    retry
}

/// Runs one started task to its end. The operation runs on a blocking-pool thread of its own (driven with
/// `Handle::block_on`: its store calls block, its SNMP requests run on the runtime), so that a panic ends this task
/// failed instead of leaving it running; its end is stored from a blocking-pool thread too.
async fn run(shared: Arc<Shared>, manager: Arc<Manager>, index: u32, plan: Plan, lock: PoolLock) {
    let unit = match plan.scope {
        LockScope::Unit(unit) => Some(unit),
        _ => None,
    };
    let runtime = tokio::runtime::Handle::current();
    let job_shared = Arc::clone(&shared);
    let job = tokio::task::spawn_blocking(move || {
        let mut store = job_shared.job_store().map_err(|e| e.to_string())?;
        let outcome = runtime.block_on(execute(&job_shared, &mut store, &manager, index, plan.operation, lock));
        job_shared.keep_job_store(store);
        outcome
    });
    let outcome = match job.await {
        Ok(result) => result,
        Err(e) => Err(format!("the task stopped unexpectedly ({e}); check the pool and run it again")),
    };
    let finished =
        tokio::task::spawn_blocking(move || shared.finish(index, outcome.map_err(|reason| (reason, unit)), true));
    if let Err(e) = finished.await {
        tracing::error!(task = index, error = %e, "ending a task failed");
    }
}

/// Executes a task's operation over `store` with an allocator holding its `lock`.
async fn execute(
    shared: &Arc<Shared>,
    store: &mut StationStore,
    manager: &Manager,
    index: u32,
    operation: Operation,
    lock: PoolLock,
) -> Result<Outcome, String> {
    let settings = &shared.settings;
    let progress: Arc<dyn Progress> = Arc::new(TaskProgress { shared: Arc::downgrade(shared), index });
    let mut allocator = Allocator::new(
        store,
        manager,
        &settings.read_community,
        settings.write_community.as_deref(),
        settings.timeout,
        lock,
    )
    .with_progress(progress)
    .with_announcer(shared.announcer.clone());
    let outcome = operation.execute(&mut allocator).await.map_err(|e| e.to_string());
    for (unit, volume) in allocator.take_wiped() {
        shared.follow_clearing(unit, volume);
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operation::OperationKind;

    fn settings(dir: &std::path::Path) -> TaskSettings {
        TaskSettings {
            state_dir: dir.to_path_buf(),
            read_community: "public".into(),
            write_community: Some("private".into()),
            timeout: Duration::from_millis(100),
            agent_port: 1161,
            workers: 2,
        }
    }

    fn create(unit: &str, size: &str) -> Arguments {
        let mut a = Arguments::new(OperationKind::CreateVolume);
        a.unit = unit.into();
        a.size = size.into();
        a
    }

    #[test]
    fn the_station_follows_each_clearing_volume_with_one_task() {
        let dir = tempfile::tempdir().unwrap();
        let runner = TaskRunner::open(settings(dir.path()), None, || {}).unwrap();
        let first = runner.follow_clearing(2, 5).unwrap();
        assert_eq!(runner.follow_clearing(2, 5), None, "one task per volume while it waits or runs");
        let other = runner.follow_clearing(2, 6).unwrap();
        assert_ne!(first, other);
        let task = runner.task(first).unwrap();
        assert_eq!(task.arguments.operation, OperationKind::ClearVolume);
        assert_eq!((task.arguments.unit.as_str(), task.arguments.volume), ("2", Some(dvsan_layout::VolumeIndex(5))));
        assert_eq!((task.owner.as_str(), task.state), (STATION_OWNER, TaskState::Pending));
        let plan = Operation::from_arguments(&task.arguments, 1161).unwrap();
        assert_eq!(plan.kind(), OperationKind::ClearVolume);
        // Ended, the volume may get a new task (the unit clears it again after another release).
        runner.cancel(first).unwrap();
        assert!(runner.follow_clearing(2, 5).is_some());
        assert!(runner.next_index() > other);
    }

    #[test]
    fn states_move_as_the_mib_says() {
        let dir = tempfile::tempdir().unwrap();
        let runner = TaskRunner::open(settings(dir.path()), None, || {}).unwrap();
        // A walk passing by sees the next index without taking it; a GET takes it.
        let peeked = runner.peek_index();
        assert_eq!(runner.peek_index(), peeked);
        let first = runner.next_index();
        assert_eq!(first, peeked);
        let second = runner.next_index();
        assert_ne!(first, second);
        assert!(runner.peek_index() > second);
        runner.submit(first, create("u", "1M"), "test".into()).unwrap();
        assert!(matches!(runner.submit(first, create("u", "1M"), String::new()), Err(TaskError::Exists(_))));
        assert!(matches!(runner.check_submit(first), Err(TaskError::Exists(_))));
        let task = runner.task(first).unwrap();
        assert_eq!((task.state, task.step.as_str(), task.finished_ms), (TaskState::Pending, "queued", None));

        // pending -> cancelled; cancelling again is refused.
        let before = runner.cancel(first).unwrap();
        assert_eq!(before.state, TaskState::Pending);
        let cancelled = runner.task(first).unwrap();
        assert_eq!(cancelled.state, TaskState::Cancelled);
        assert!(cancelled.finished_ms.is_some() && cancelled.result.contains("nothing was done"));
        assert!(matches!(runner.cancel(first), Err(TaskError::NotPending { state: TaskState::Cancelled, .. })));
        // Undo puts it back.
        runner.restore(before).unwrap();
        assert_eq!(runner.task(first).unwrap().state, TaskState::Pending);

        // pending -> running: not cancellable, not removable; running -> done.
        assert!(runner.shared.start(first));
        assert!(!runner.shared.start(first), "a running task does not start twice");
        assert!(matches!(runner.cancel(first), Err(TaskError::NotPending { state: TaskState::Running, .. })));
        assert!(matches!(runner.remove(first), Err(TaskError::Running(_))));
        assert!(matches!(runner.withdraw(first), Err(TaskError::NotPending { .. })));
        runner.shared.finish(first, Err(("it broke".into(), Some(3))), true);
        let failed = runner.task(first).unwrap();
        assert_eq!(
            (failed.state, failed.result.as_str(), failed.result_unit),
            (TaskState::Failed, "it broke", Some(3))
        );
        assert!(failed.step.is_empty());

        // Removing: an ended task goes; a pending one is cancelled and goes; unknown ones are named.
        runner.remove(first).unwrap();
        assert!(runner.task(first).is_none());
        runner.submit(second, create("u", "2M"), String::new()).unwrap();
        let removed = runner.remove(second).unwrap();
        assert_eq!(removed.state, TaskState::Pending);
        assert!(runner.task(second).is_none());
        assert!(matches!(runner.remove(second), Err(TaskError::Unknown(_))));
        // A withdrawn submission is gone from the store too.
        runner.submit(40, create("u", "1M"), String::new()).unwrap();
        runner.withdraw(40).unwrap();
        assert!(StationStore::open(dir.path()).unwrap().tasks().unwrap().is_empty());
    }

    #[test]
    fn a_restart_fails_running_tasks_keeps_the_rest_and_indexes_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let runner = TaskRunner::open(settings(dir.path()), None, || {}).unwrap();
        runner.submit(5, create("u", "1M"), "a".into()).unwrap();
        runner.submit(9, create("u", "1M"), "b".into()).unwrap();
        runner.submit(12, create("u", "1M"), "c".into()).unwrap();
        assert!(runner.shared.start(5));
        runner.shared.finish(9, Ok(outcome()), true);
        // Handed-out values skip indexes in use.
        assert_eq!(runner.next_index(), 13);
        drop(runner);

        let runner = TaskRunner::open(settings(dir.path()), None, || {}).unwrap();
        let tasks = runner.tasks();
        assert_eq!(
            tasks.iter().map(|t| (t.index, t.state)).collect::<Vec<_>>(),
            [(5, TaskState::Failed), (9, TaskState::Done), (12, TaskState::Pending)]
        );
        assert_eq!(tasks[0].result, INTERRUPTED);
        assert_eq!(tasks[1].result_volume, Some(dvsan_layout::VolumeIndex(7)));
        assert_eq!(tasks[2].owner, "c");
        assert!(runner.next_index() > 12);
    }

    fn outcome() -> Outcome {
        Outcome {
            text: "made it".into(),
            unit: 2,
            volume: Some(dvsan_layout::VolumeIndex(7)),
            detail: crate::operation::Detail::Destroyed,
        }
    }

    #[test]
    fn old_ended_tasks_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let runner = TaskRunner::open(settings(dir.path()), None, || {}).unwrap();
        for index in 1..=(MAX_ENDED as u32 + 5) {
            runner.submit(index, create("u", "1M"), String::new()).unwrap();
            runner.cancel(index).unwrap();
        }
        runner.submit(5000, create("u", "1M"), String::new()).unwrap();
        let indexes = runner.indexes();
        assert_eq!(indexes.len(), MAX_ENDED + 1);
        assert_eq!(indexes[0], 6, "the oldest ended went first");
        assert!(indexes.contains(&5000), "pending tasks are kept");
        assert_eq!(StationStore::open(dir.path()).unwrap().tasks().unwrap().len(), MAX_ENDED + 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bad_arguments_fail_when_the_task_runs() {
        let dir = tempfile::tempdir().unwrap();
        let changes = Arc::new(AtomicU32::new(0));
        let counted = Arc::clone(&changes);
        let runner = TaskRunner::open(settings(dir.path()), None, move || {
            counted.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        runner.submit(1, create("u", "lots"), String::new()).unwrap();
        runner.submit(2, create("nope", "1M"), String::new()).unwrap();
        let manager = Arc::new(Manager::new("127.0.0.1:0".parse().unwrap()).await.unwrap());
        let dispatcher = runner.start(manager);
        for _ in 0..200 {
            if runner.tasks().iter().all(|t| t.state.is_ended()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        runner.stop();
        dispatcher.await.unwrap();
        let tasks = runner.tasks();
        assert_eq!(tasks[0].state, TaskState::Failed);
        assert!(tasks[0].result.contains("\"lots\" is not a size"), "{}", tasks[0].result);
        assert_eq!(tasks[1].state, TaskState::Failed);
        assert!(tasks[1].result.contains("no unit matches \"nope\""), "{}", tasks[1].result);
        assert_eq!(changes.load(Ordering::SeqCst), 0, "nothing ran, nothing changed");
    }
}
