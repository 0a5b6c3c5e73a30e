//! The server's live state, shared by the accept loop, handshakes, connections and the maintenance thread: the
//! export table now in force, the open connections, the traffic and bad-input counters, and the shutdown flag.
//!
//! Like mini-redis's `Db` it is handed to whoever needs it and knows nothing of them: it only bundles the leaf
//! modules' types.

use crate::admission::Admission;
use crate::bad_input::BadInputCounters;
use crate::buffers::ReplyBudget;
use crate::connections::Connections;
use crate::exports::ExportTable;
use crate::traffic::TrafficTable;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, PoisonError, RwLock};

pub struct Shared {
    exports: RwLock<Arc<ExportTable>>,
    pub connections: Connections,
    pub traffic: TrafficTable,
    pub bad_input: Arc<BadInputCounters>,
    /// Connection slots for handshakes and served connections.
    pub admission: Arc<Admission>,
    /// Reply buffer memory past each connection's base, shared by all connections.
    pub reply_budget: Arc<ReplyBudget>,
    pub shutting_down: AtomicBool,
    /// Transmission threads still running.
    pub sessions: AtomicUsize,
}

impl Shared {
    pub fn new(
        table: Arc<ExportTable>,
        traffic: TrafficTable,
        admission: Arc<Admission>,
        reply_budget: Arc<ReplyBudget>,
    ) -> Shared {
        Shared {
            exports: RwLock::new(table),
            connections: Connections::default(),
            traffic,
            bad_input: Arc::new(BadInputCounters::default()),
            admission,
            reply_budget,
            shutting_down: AtomicBool::new(false),
            sessions: AtomicUsize::new(0),
        }
    }

    pub fn exports(&self) -> Arc<ExportTable> {
        self.exports.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub fn set_exports(&self, table: Arc<ExportTable>) {
        *self.exports.write().unwrap_or_else(PoisonError::into_inner) = table;
    }
}
