//! The one thread that talks to the unit store while blockd runs.
//!
//! Every poll interval it reads the layout's change counter; when it moved, it loads the layout, builds a new
//! export table (reusing open media), swaps it in and closes connections whose grant or export went away. It also
//! looks at the TLS certificate revocation lists: when one changed, new handshakes use the new verifier and open
//! connections whose client certificate it refuses are closed (`tls.rs`). About
//! once a second it saves the traffic and bad-input counters and writes the heartbeat. On stop it saves the counters a last
//! time, flushes every medium and records the Stopped state. Keeping SQLite on one thread keeps it off the data
//! path and off the async runtime.

use crate::exports::{ExportTable, MediaCache};
use crate::state::Shared;
use crate::tls::{CrlReload, TlsServer};
use dvsan_layout::{DataServiceState, DataServiceStatus, LayoutStore};
use std::net::SocketAddr;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub struct Maintenance {
    stop_tx: mpsc::Sender<()>,
    handle: JoinHandle<()>,
}

struct Worker {
    store: LayoutStore,
    cache: MediaCache,
    shared: Arc<Shared>,
    tls: Option<Arc<TlsServer>>,
    listen: SocketAddr,
    /// How often the change counter is read, and how often traffic is saved and the heartbeat written.
    poll: Duration,
    stats_every: Duration,
    change_counter: u32,
    /// The bad-input totals last saved: unchanged totals are not written again.
    saved_totals: Vec<(&'static str, u64)>,
}

impl Maintenance {
    /// Write the first heartbeat and start the thread.
    pub fn spawn(
        store: LayoutStore,
        cache: MediaCache,
        shared: Arc<Shared>,
        tls: Option<Arc<TlsServer>>,
        listen: SocketAddr,
        poll: Duration,
        stats_every: Duration,
    ) -> std::io::Result<Maintenance> {
        let change_counter = shared.exports().change_counter;
        let mut worker =
            Worker { store, cache, shared, tls, listen, poll, stats_every, change_counter, saved_totals: Vec::new() };
        worker.heartbeat(DataServiceState::Serving);
        if let Err(e) = worker.store.set_served_counter(change_counter) {
            tracing::warn!(error = %e, "cannot record the served layout");
        }
        let (stop_tx, stop_rx) = mpsc::channel();
        let handle = std::thread::Builder::new().name("maintenance".into()).spawn(move || worker.run(stop_rx))?;
        Ok(Maintenance { stop_tx, handle })
    }

    /// Stop the thread after its final save, flush and Stopped heartbeat.
    pub fn stop(self) {
        let _ = self.stop_tx.send(());
        if self.handle.join().is_err() {
            tracing::error!("maintenance thread panicked");
        }
    }
}

impl Worker {
    fn run(mut self, stop: mpsc::Receiver<()>) {
        let (poll, stats_every) = (self.poll, self.stats_every);
        let mut last_stats = Instant::now();
        loop {
            match stop.recv_timeout(poll) {
                Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {}
            }
            self.poll_layout();
            self.poll_crls();
            if last_stats.elapsed() >= stats_every {
                self.save_traffic();
                self.heartbeat(DataServiceState::Serving);
                last_stats = Instant::now();
            }
        }
        self.save_traffic();
        for (path, file) in self.cache.all() {
            if let Err(e) = file.sync_data() {
                tracing::error!(path = %path.display(), error = %e, "flush at shutdown failed");
            }
        }
        self.heartbeat(DataServiceState::Stopped);
    }

    fn poll_layout(&mut self) {
        let counter = match self.store.change_counter() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the layout change counter");
                return;
            }
        };
        if counter == self.change_counter {
            return;
        }
        let layout = match self.store.load() {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot load the changed layout");
                return;
            }
        };
        let table = Arc::new(ExportTable::build(layout, &mut self.cache));
        self.change_counter = table.change_counter;
        self.shared.set_exports(table.clone());
        let closed = self.shared.connections.sweep(&table);
        self.shared.traffic.retain_exports(table.names());
        // Released blocks are cleared once blockd says it serves a layout without them (connections to them are
        // closed above).
        if let Err(e) = self.store.set_served_counter(table.change_counter) {
            tracing::warn!(error = %e, "cannot record the served layout");
        }
        tracing::info!(
            change_counter = table.change_counter,
            exports = table.names().count(),
            closed_connections = closed,
            "layout changed"
        );
    }

    /// New certificate revocation lists: in force for new handshakes (`reload_crls` swapped the configuration),
    /// and every open TLS connection whose certificate they revoke is closed.
    fn poll_crls(&mut self) {
        let Some(tls) = &self.tls else { return };
        match tls.reload_crls() {
            CrlReload::Unchanged => {}
            CrlReload::Changed { verifier, revoked } => {
                let closed =
                    self.shared.connections.sweep_certificates(|chain| TlsServer::still_valid(&*verifier, chain));
                tracing::info!(revoked, closed_connections = closed, "certificate revocation lists changed");
            }
            CrlReload::Refused(e) => {
                tracing::error!(error = %e, revoked = tls.revoked(), "a changed certificate revocation list cannot be used; the previous ones stay in force");
            }
        }
    }

    /// Save the traffic counters and the bad-input totals (refused, evicted and timed-out connections...).
    fn save_traffic(&mut self) {
        let records = self.shared.traffic.snapshot();
        if !records.is_empty() {
            if let Err(e) = self.store.save_traffic(&records) {
                tracing::warn!(error = %e, "cannot save traffic counters");
            }
        }
        let totals = self.shared.bad_input.totals();
        if totals != self.saved_totals {
            match self.store.save_data_counters(&totals) {
                Ok(()) => self.saved_totals = totals,
                Err(e) => tracing::warn!(error = %e, "cannot save bad-input counters"),
            }
        }
    }

    fn heartbeat(&mut self, state: DataServiceState) {
        let heartbeat_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        let status = DataServiceStatus { pid: std::process::id(), listen: self.listen, state, heartbeat_ms };
        if let Err(e) = self.store.set_data_service(&status) {
            tracing::warn!(error = %e, "cannot write the data service heartbeat");
        }
    }
}
