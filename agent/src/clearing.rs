//! The unit's clearing thread: zeroes wiped volumes and released space in the background (see
//! `dvsan_layout::Clearer` for how each medium is cleared and how progress survives a crash).
//!
//! A wiped volume is not served while it is cleared, so its job runs at once. A released extent may still be
//! written by a connection blockd has not closed yet, so its job waits until blockd says it serves the layout that
//! released it (`LayoutStore::served_counter`), or until blockd is not running at all. Jobs whose media all
//! deallocate (files, with `--clear-method auto` and no rate limit) also run before the agent starts serving, so a
//! new unit's space is free when it answers its first request. Finishing a job is a layout change, which the
//! agent's watch loop announces like any other.

use anyhow::{Context, Result};
use dvsan_layout::{
    Blocks, ClearJob, ClearOptions, ClearTarget, Clearer, DataServiceState, Layout, LayoutError, LayoutStore,
};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How often the thread looks for jobs (and whether blockd caught up) when there is nothing to do.
const LOOK_INTERVAL: Duration = Duration::from_millis(50);
/// blockd's heartbeat older than this means it is not running (it beats about once a second).
const HEARTBEAT_STALE_MS: u64 = 3_000;

/// Whether a released extent of `job` may be cleared now: blockd serves a layout without it, or is not running.
fn released_safe(store: &LayoutStore, job: &ClearJob) -> Result<bool, LayoutError> {
    let Some(released_at) = job.counter else { return Ok(true) };
    let Some(status) = store.data_service()? else { return Ok(true) };
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    if status.state == DataServiceState::Stopped || now_ms.saturating_sub(status.heartbeat_ms) > HEARTBEAT_STALE_MS {
        return Ok(true);
    }
    // Counter32 arithmetic: `served` is at or after `released_at` when the difference is under 2^31.
    Ok(store.served_counter()?.is_some_and(|served| served.wrapping_sub(released_at) < 1 << 31))
}

/// Where the clearing thread reports progress (the unit's MIB view).
pub type Progress = Arc<dyn Fn(ClearTarget, Blocks) + Send + Sync>;

/// Run every job that may run now (only the fast ones when `fast_only`), telling `progress` after each chunk;
/// true when any finished.
pub fn run_ready(
    store: &mut LayoutStore,
    progress: &dyn Fn(ClearTarget, Blocks),
    options: ClearOptions,
    fast_only: bool,
    stop: &AtomicBool,
) -> Result<bool, LayoutError> {
    let layout: Layout = store.load()?;
    let jobs = ClearJob::all(&layout);
    if jobs.is_empty() {
        return Ok(false);
    }
    let clearer = Clearer::open(&layout, options)?;
    let mut finished = false;
    for job in &jobs {
        if stop.load(Ordering::Relaxed) || (fast_only && !clearer.is_fast(&job.extent)) || !released_safe(store, job)? {
            continue;
        }
        tracing::info!(target = ?job.target, start = job.extent.start.0, blocks = job.extent.len.0, from = job.cleared.0, "clearing");
        if clearer.run_job(store, job, &mut |t, b| progress(t, b), &|| !stop.load(Ordering::Relaxed))? {
            tracing::info!(target = ?job.target, blocks = job.extent.len.0, "cleared");
            finished = true;
        }
    }
    Ok(finished)
}

/// Before serving: clear what is fast to clear.
pub fn clear_fast_now(state_dir: &Path, options: ClearOptions) -> Result<()> {
    let mut store = LayoutStore::open(state_dir).context("opening the unit store for clearing")?;
    run_ready(&mut store, &|_, _| {}, options, true, &AtomicBool::new(false)).context("clearing released space")?;
    Ok(())
}

/// The running clearing thread; stopped (between chunks) on drop of [`Clearing::stop`].
pub struct Clearing {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Clearing {
    pub fn spawn(state_dir: &Path, progress: Progress, options: ClearOptions) -> Result<Clearing> {
        let mut store = LayoutStore::open(state_dir).context("opening the unit store for clearing")?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("clearing".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    match run_ready(&mut store, &*progress, options, false, &flag) {
                        Ok(true) => continue,
                        Ok(false) => {}
                        Err(e) => tracing::warn!(error = %e, "clearing; trying again"),
                    }
                    std::thread::sleep(LOOK_INTERVAL);
                }
            })
            .context("starting the clearing thread")?;
        Ok(Clearing { stop, handle: Some(handle) })
    }

    /// Stop after the chunk in progress; what is left resumes at the next start.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
