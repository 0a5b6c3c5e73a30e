//! What the domain operations tell the station about the changes they make, without knowing how it is told: an
//! [`Announcer`] takes each [`Change`] (a unit synced, a unit removed, a task ended).
//!
//! The running station builds one that turns changes into its own notifications (DVSAN-STATION-MIB) and forwards
//! them; the CLI, a process of its own, has none, so nothing is announced. This keeps the operations below the MIB
//! views and protocol front-ends that know the notifications' varbinds.

use crate::store::{SyncOutcome, UnitRecord};
use crate::task_model::Task;
use std::fmt;
use std::sync::Arc;

/// One change worth announcing.
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    /// A sync of `unit` (its row after the sync) changed what `outcome` says.
    Synced { unit: &'a UnitRecord, outcome: &'a SyncOutcome },
    /// The unit was removed from the pool; its row as it was before.
    UnitRemoved(&'a UnitRecord),
    /// The task ended (done, failed or cancelled).
    TaskEnded(&'a Task),
}

/// Where changes go; cheap to clone.
#[derive(Clone)]
pub struct Announcer(Arc<dyn Fn(Change<'_>) + Send + Sync>);

impl Announcer {
    pub fn new(announce: impl Fn(Change<'_>) + Send + Sync + 'static) -> Announcer {
        Announcer(Arc::new(announce))
    }

    pub fn announce(&self, change: Change<'_>) {
        (self.0)(change)
    }
}

impl fmt::Debug for Announcer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Announcer").finish_non_exhaustive()
    }
}
