//! The notification path: receive, queue fairly, store in batches, then acknowledge, log, forward and react.
//!
//! ```text
//! UDP ─▶ receive task ──(per-source FairQueue)──▶ writer thread ──▶ SQLite (one transaction per batch)
//!        community check,                           then: inform acks, traps.log lines,
//!        parse errors counted                       forwarding, activity summaries ─▶ coordinator
//! ```
//!
//! The receive task only decodes and queues, so it drains the socket quickly; the writer thread takes whatever is
//! queued (up to `max_batch`) and commits it in one transaction, so a burst costs one commit per batch rather
//! than one per notification. An inform is acknowledged only after the batch holding it committed: an
//! acknowledged inform is in the store. A notification dropped on the way (full queue) is not acknowledged, so
//! the sender retries it. The coordinator gets a per-source summary of each batch, not every notification.

use crate::counters::StationCounters;
use crate::fair_queue::FairQueue;
use crate::forward::Forwarder;
use crate::notification::{NotificationKind, NotificationRecord, VarBindRecord};
use crate::store::StationStore;
use crate::timefmt::{format_ms, now_ms};
use crate::trap_log::TrapLog;
use dvsan_snmp::receiver::{Acknowledger, ReceiveError};
use dvsan_snmp::{Notification, NotificationReceiver, Oid, Value, VarBind, Version};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// IP address -> unit id of the unit registered there (None when unknown or ambiguous); kept up to date by the
/// coordinator, read by the writer to tag stored notifications with their unit.
pub type UnitIds = Arc<RwLock<HashMap<IpAddr, Option<String>>>>;

/// What the station does about a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Class {
    ColdStart,
    WarmStart,
    LinkUp,
    LinkDown,
    UnitShutdown,
    /// dvsanLayoutChanged with the dvsanUnitChangeCounter it carried.
    LayoutChanged(Option<u32>),
    /// More events than a summary keeps: re-read the unit.
    Resync,
}

/// Classifies a notification by its snmpTrapOID; `None` for notifications that need no action.
pub fn classify(trap_oid: &Oid, varbinds: &[VarBind]) -> Option<Class> {
    let oid = trap_oid.as_slice();
    if oid == dvsan_mib::COLD_START {
        Some(Class::ColdStart)
    } else if oid == dvsan_mib::WARM_START {
        Some(Class::WarmStart)
    } else if oid == dvsan_mib::LINK_UP {
        Some(Class::LinkUp)
    } else if oid == dvsan_mib::LINK_DOWN {
        Some(Class::LinkDown)
    } else if oid == dvsan_mib::DVSAN_UNIT_SHUTDOWN {
        Some(Class::UnitShutdown)
    } else if oid == dvsan_mib::DVSAN_LAYOUT_CHANGED {
        let counter = varbinds.iter().find_map(|vb| {
            match (&vb.value, vb.oid.suffix_after(dvsan_mib::DVSAN_UNIT_CHANGE_COUNTER)) {
                (Value::Counter32(c), Some([0])) => Some(*c),
                _ => None,
            }
        });
        Some(Class::LayoutChanged(counter))
    } else {
        None
    }
}

/// The dvsanUnitId.0 a notification carries, if it is a valid UUID.
pub fn unit_id_of(varbinds: &[VarBind]) -> Option<String> {
    varbinds.iter().find_map(|vb| match vb.oid.suffix_after(dvsan_mib::DVSAN_UNIT_ID) {
        Some([0]) => {
            vb.value.as_str().filter(|s| s.len() == 36 && uuid::Uuid::parse_str(s).is_ok()).map(str::to_string)
        }
        _ => None,
    })
}

/// The dvsanUnitName.0 a notification carries, if any.
pub fn unit_name_of(varbinds: &[VarBind]) -> Option<String> {
    varbinds.iter().find_map(|vb| match vb.oid.suffix_after(dvsan_mib::DVSAN_UNIT_NAME) {
        Some([0]) => vb.value.as_str().map(|s| s.chars().take(64).collect()),
        _ => None,
    })
}

/// Most events a summary keeps per source and batch; more become [`Class::Resync`].
const MAX_EVENTS: usize = 32;

/// What one source sent in one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceActivity {
    pub ip: IpAddr,
    /// The last dvsanUnitId.0 seen in its notifications.
    pub unit_id: Option<String>,
    /// The last dvsanUnitName.0 seen in its notifications.
    pub unit_name: Option<String>,
    /// The SNMPv3 user of its last notification (None for v1/v2c).
    pub security_name: Option<String>,
    /// Whether every notification of the batch from this source was authenticated (SNMPv3 with a verified
    /// digest) as `security_name`.
    pub authenticated: bool,
    /// Smallest and last sysUpTime seen.
    pub min_uptime: u32,
    pub last_uptime: u32,
    pub count: u64,
    /// Actionable events in arrival order (consecutive repeats collapsed).
    pub events: Vec<Class>,
}

/// Summarises a batch per source IP, in order of first appearance.
pub fn summarize<'a>(batch: impl IntoIterator<Item = &'a Notification>) -> Vec<SourceActivity> {
    let mut out: Vec<SourceActivity> = Vec::new();
    let mut position: HashMap<IpAddr, usize> = HashMap::new();
    for n in batch {
        let ip = n.from.ip();
        let i = *position.entry(ip).or_insert_with(|| {
            out.push(SourceActivity {
                ip,
                unit_id: None,
                unit_name: None,
                security_name: n.security_name.clone(),
                authenticated: true,
                min_uptime: n.uptime,
                last_uptime: n.uptime,
                count: 0,
                events: Vec::new(),
            });
            out.len() - 1
        });
        let activity = &mut out[i];
        activity.count += 1;
        activity.min_uptime = activity.min_uptime.min(n.uptime);
        activity.last_uptime = n.uptime;
        if let Some(unit_id) = unit_id_of(&n.varbinds) {
            activity.unit_id = Some(unit_id);
        }
        if let Some(name) = unit_name_of(&n.varbinds) {
            activity.unit_name = Some(name);
        }
        // One unauthenticated notification, or another user, and the source's batch is not authenticated.
        activity.authenticated &=
            n.authenticated && n.security_name.is_some() && n.security_name == activity.security_name;
        if let Some(class) = classify(&n.trap_oid, &n.varbinds) {
            if activity.events.last() != Some(&class) {
                if activity.events.len() >= MAX_EVENTS {
                    activity.events.clear();
                    activity.events.push(Class::Resync);
                }
                activity.events.push(class);
            }
        }
    }
    out
}

/// The stored form of a received notification.
pub fn record_of(n: &Notification, time_ms: i64, unit_id: Option<String>) -> NotificationRecord {
    NotificationRecord {
        id: 0,
        time_ms,
        source: n.from,
        version: match n.version {
            Version::V1 => "v1".to_string(),
            Version::V2c => "v2c".to_string(),
        },
        community: String::from_utf8_lossy(&n.community).into_owned(),
        kind: match n.kind {
            dvsan_snmp::NotificationKind::TrapV1 => NotificationKind::TrapV1,
            dvsan_snmp::NotificationKind::TrapV2 => NotificationKind::TrapV2,
            dvsan_snmp::NotificationKind::Inform => NotificationKind::Inform,
        },
        uptime: Some(n.uptime),
        trap_oid: n.trap_oid.to_string(),
        unit_id,
        varbinds: n.varbinds.iter().map(VarBindRecord::from_varbind).collect(),
    }
}

/// One item of the receive queue.
pub enum Ingested {
    Notification(Notification),
    /// A datagram that was not an acceptable notification: logged to traps.log, not stored.
    ParseError {
        from: SocketAddr,
        time_ms: i64,
        reason: String,
    },
}

/// Queue sizes and batching.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    /// Communities accepted; notifications with any other are dropped and counted.
    pub communities: Vec<String>,
    pub per_source_queue: usize,
    pub total_queue: usize,
    /// Most notifications committed in one transaction.
    pub max_batch: usize,
    /// Notifications kept in the store; older ones are pruned.
    pub keep_notifications: u64,
}

impl Default for IngestSettings {
    fn default() -> Self {
        IngestSettings {
            communities: vec!["public".to_string()],
            // A few seconds of a 40,000/s burst per source, so that a stalled commit does not drop anything;
            // at roughly 300 bytes a queued notification, the total bound keeps the queue under ~80 MB.
            per_source_queue: 131_072,
            total_queue: 262_144,
            max_batch: 4096,
            keep_notifications: 2_000_000,
        }
    }
}

struct QueueState {
    queue: FairQueue<IpAddr, Ingested>,
    closed: bool,
}

/// The queue between the receive task and the writer thread.
pub struct IngestQueue {
    state: Mutex<QueueState>,
    ready: Condvar,
}

impl IngestQueue {
    pub fn new(settings: &IngestSettings) -> Arc<IngestQueue> {
        Arc::new(IngestQueue {
            state: Mutex::new(QueueState {
                queue: FairQueue::new(settings.per_source_queue, settings.total_queue),
                closed: false,
            }),
            ready: Condvar::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues items; returns how many were dropped because their source's queue was full.
    fn push_all(&self, items: &mut Vec<(IpAddr, Ingested)>) -> u64 {
        if items.is_empty() {
            return 0;
        }
        let mut dropped = 0;
        {
            let mut state = self.lock();
            for (ip, item) in items.drain(..) {
                if let Err(item) = state.queue.push(ip, item) {
                    dropped += 1;
                    if let Ingested::Notification(n) = item {
                        tracing::debug!(from = %n.from, "receive queue full for this source; notification dropped");
                    }
                }
            }
        }
        self.ready.notify_one();
        dropped
    }

    /// Stops the writer once the queue is empty.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    /// Waits for items (or close) and takes up to `max`. Returns false when closed and drained.
    fn take(&self, max: usize, out: &mut Vec<Ingested>) -> bool {
        let mut state = self.lock();
        loop {
            if !state.queue.is_empty() {
                state.queue.take(max, out);
                return true;
            }
            if state.closed {
                return false;
            }
            state = self.ready.wait_timeout(state, Duration::from_millis(500)).unwrap_or_else(|e| e.into_inner()).0;
        }
    }
}

/// Limits how often one kind of warning is logged.
pub struct RateLimitedLog {
    window_start: Instant,
    in_window: u32,
    suppressed: u64,
}

impl RateLimitedLog {
    pub fn new() -> Self {
        RateLimitedLog { window_start: Instant::now(), in_window: 0, suppressed: 0 }
    }

    /// True when this occurrence may be logged (10 per second).
    pub fn allow(&mut self) -> bool {
        if self.window_start.elapsed() >= Duration::from_secs(1) {
            if self.suppressed > 0 {
                tracing::warn!(suppressed = self.suppressed, "similar warnings suppressed in the last second");
            }
            self.window_start = Instant::now();
            self.in_window = 0;
            self.suppressed = 0;
        }
        self.in_window += 1;
        if self.in_window <= 10 {
            true
        } else {
            self.suppressed += 1;
            false
        }
    }
}

impl Default for RateLimitedLog {
    fn default() -> Self {
        Self::new()
    }
}

/// Receives notifications until `shutdown` fires: community check, parse errors counted, fair queueing.
pub async fn receive_loop(
    mut receiver: NotificationReceiver,
    queue: Arc<IngestQueue>,
    communities: Vec<String>,
    counters: Arc<StationCounters>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut results = Vec::with_capacity(256);
    let mut items: Vec<(IpAddr, Ingested)> = Vec::with_capacity(256);
    let mut warn_limit = RateLimitedLog::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = receiver.recv_many(&mut results, 256) => {}
        }
        let mut io_error = false;
        for result in results.drain(..) {
            match result {
                Ok(n) => {
                    if communities.iter().any(|c| c.as_bytes() == n.community.as_slice()) {
                        StationCounters::bump(&counters.accepted);
                        items.push((n.from.ip(), Ingested::Notification(n)));
                    } else {
                        StationCounters::bump(&counters.bad_community);
                        if warn_limit.allow() {
                            tracing::warn!(from = %n.from, "notification with an unknown community dropped");
                        }
                    }
                }
                Err(ReceiveError::Io(e)) => {
                    io_error = true;
                    if warn_limit.allow() {
                        tracing::warn!(error = %e, "notification socket receive error");
                    }
                }
                Err(ReceiveError::Malformed { from, error }) => {
                    StationCounters::bump(&counters.parse_errors);
                    if warn_limit.allow() {
                        tracing::warn!(%from, %error, "malformed notification dropped");
                    }
                    let reason = error.to_string();
                    items.push((from.ip(), Ingested::ParseError { from, time_ms: now_ms(), reason }));
                }
                Err(ReceiveError::Unexpected { from, what }) => {
                    StationCounters::bump(&counters.parse_errors);
                    if warn_limit.allow() {
                        tracing::warn!(%from, what, "datagram that is not a notification dropped");
                    }
                    let reason = format!("unexpected {what}");
                    items.push((from.ip(), Ingested::ParseError { from, time_ms: now_ms(), reason }));
                }
            }
        }
        let dropped = queue.push_all(&mut items);
        if dropped > 0 {
            StationCounters::add(&counters.overflow_drops, dropped);
            if warn_limit.allow() {
                tracing::warn!(dropped, "receive queue full: notifications dropped (a source is flooding)");
            }
        }
        if io_error {
            // ICMP errors and the like: do not spin on a failing socket.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// Everything the writer thread needs.
pub struct Writer {
    pub queue: Arc<IngestQueue>,
    pub store: StationStore,
    pub trap_log: Option<TrapLog>,
    pub acknowledger: Acknowledger,
    pub runtime: tokio::runtime::Handle,
    pub activity: mpsc::Sender<Vec<SourceActivity>>,
    pub forwarder: Option<Forwarder>,
    pub unit_ids: UnitIds,
    pub counters: Arc<StationCounters>,
    pub settings: IngestSettings,
}

impl Writer {
    /// Runs until the queue is closed and drained (on its own thread: SQLite calls block).
    pub fn run(mut self) {
        let mut batch: Vec<Ingested> = Vec::with_capacity(self.settings.max_batch);
        let mut batches_since_prune = 0u32;
        let mut log_errors = RateLimitedLog::new();
        while self.queue.take(self.settings.max_batch, &mut batch) {
            self.write_batch(&mut batch, &mut log_errors);
            batch.clear();
            batches_since_prune += 1;
            if batches_since_prune >= 256 {
                batches_since_prune = 0;
                match self.store.prune_notifications(self.settings.keep_notifications) {
                    Ok(pruned) => {
                        self.counters.pruned.fetch_add(pruned as u64, std::sync::atomic::Ordering::Relaxed);
                    }
                    Err(e) => tracing::warn!(error = %e, "pruning old notifications failed"),
                }
            }
        }
        if let Some(log) = &mut self.trap_log {
            if let Err(e) = log.flush() {
                tracing::warn!(error = %e, "flushing the trap log failed");
            }
        }
        tracing::debug!("notification writer stopped");
    }

    fn write_batch(&mut self, batch: &mut Vec<Ingested>, log_errors: &mut RateLimitedLog) {
        let now = now_ms();
        let mut notifications = Vec::with_capacity(batch.len());
        let mut parse_errors = Vec::new();
        for item in batch.drain(..) {
            match item {
                Ingested::Notification(n) => notifications.push(n),
                Ingested::ParseError { from, time_ms, reason } => parse_errors.push((from, time_ms, reason)),
            }
        }
        let mut records: Vec<NotificationRecord> = {
            let unit_ids = self.unit_ids.read().unwrap_or_else(|e| e.into_inner());
            notifications
                .iter()
                .map(|n| {
                    let unit_id = unit_id_of(&n.varbinds).or_else(|| unit_ids.get(&n.from.ip()).cloned().flatten());
                    record_of(n, now, unit_id)
                })
                .collect()
        };
        let mut committed = false;
        for attempt in 0..3 {
            match self.store.insert_notifications(&mut records) {
                Ok(()) => {
                    committed = true;
                    break;
                }
                Err(e) => {
                    if log_errors.allow() {
                        tracing::error!(error = %e, attempt, batch = records.len(), "storing notifications failed");
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        if !committed {
            // Not acknowledged: senders of informs retry; traps of this batch are lost (counted).
            StationCounters::add(&self.counters.store_errors, records.len() as u64);
            return;
        }
        StationCounters::add(&self.counters.stored, records.len() as u64);

        for n in notifications.iter().filter(|n| n.kind == dvsan_snmp::NotificationKind::Inform) {
            match self.runtime.block_on(self.acknowledger.acknowledge(n)) {
                Ok(()) => StationCounters::bump(&self.counters.acks),
                Err(e) => {
                    if log_errors.allow() {
                        tracing::warn!(from = %n.from, error = %e, "sending an inform acknowledgement failed");
                    }
                }
            }
        }
        if let Some(log) = &mut self.trap_log {
            let mut result = Ok(());
            for (from, time_ms, reason) in &parse_errors {
                result = result.and(log.write_line(&format!("{} {from} PARSE-ERROR {reason}", format_ms(*time_ms))));
            }
            for record in &records {
                result = result.and(log.write_line(&record.line()));
            }
            if let Err(e) = result.and(log.flush()) {
                if log_errors.allow() {
                    tracing::warn!(error = %e, path = %log.path().display(), "writing the trap log failed");
                }
            }
        }
        let activity = summarize(&notifications);
        if let Some(forwarder) = &self.forwarder {
            for n in notifications {
                forwarder.forward_received(n);
            }
        }
        if !activity.is_empty() && self.activity.blocking_send(activity).is_err() {
            tracing::debug!("coordinator gone; activity summary dropped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notification(from: &str, uptime: u32, trap: &[u32], varbinds: Vec<VarBind>) -> Notification {
        Notification {
            from: from.parse().unwrap(),
            version: Version::V2c,
            community: b"public".to_vec(),
            kind: dvsan_snmp::NotificationKind::TrapV2,
            request_id: 1,
            uptime,
            trap_oid: Oid::from_slice(trap),
            varbinds,
            v1: None,
            security_name: None,
            authenticated: false,
        }
    }

    fn unit_id_vb(id: &str) -> VarBind {
        VarBind::new(crate::walk::instance(dvsan_mib::DVSAN_UNIT_ID, &[0]), Value::string(id))
    }

    #[test]
    fn classification() {
        let counter =
            VarBind::new(crate::walk::instance(dvsan_mib::DVSAN_UNIT_CHANGE_COUNTER, &[0]), Value::Counter32(9));
        let oid = |o: &[u32]| Oid::from_slice(o);
        assert_eq!(classify(&oid(dvsan_mib::COLD_START), &[]), Some(Class::ColdStart));
        assert_eq!(classify(&oid(dvsan_mib::LINK_DOWN), &[]), Some(Class::LinkDown));
        assert_eq!(classify(&oid(dvsan_mib::DVSAN_UNIT_SHUTDOWN), &[]), Some(Class::UnitShutdown));
        assert_eq!(classify(&oid(dvsan_mib::DVSAN_LAYOUT_CHANGED), &[counter]), Some(Class::LayoutChanged(Some(9))));
        assert_eq!(classify(&oid(&[1, 3, 6, 1, 4, 1, 9, 0, 1]), &[]), None);
        let id = "8c3f0b52-4f4b-4b8e-9a51-3f0e6d2c7a10";
        assert_eq!(unit_id_of(&[unit_id_vb(id)]).as_deref(), Some(id));
        assert_eq!(unit_id_of(&[unit_id_vb("garbage")]), None);
    }

    #[test]
    fn summaries_group_by_source_and_collapse_repeats() {
        let id = "8c3f0b52-4f4b-4b8e-9a51-3f0e6d2c7a10";
        let other = [1, 3, 6, 1, 4, 1, 9, 0, 1];
        let batch = [
            notification("127.0.0.2:5000", 50, dvsan_mib::COLD_START, vec![unit_id_vb(id)]),
            notification("127.0.0.3:5000", 10, &other, vec![]),
            notification("127.0.0.2:5001", 60, dvsan_mib::LINK_UP, vec![]),
            notification("127.0.0.2:5001", 61, dvsan_mib::LINK_UP, vec![]),
            notification("127.0.0.3:5000", 11, &other, vec![]),
        ];
        let summary = summarize(&batch);
        assert_eq!(summary.len(), 2);
        assert_eq!(summary[0].unit_id.as_deref(), Some(id));
        assert_eq!(summary[0].events, [Class::ColdStart, Class::LinkUp]);
        assert_eq!((summary[0].min_uptime, summary[0].last_uptime, summary[0].count), (50, 61, 3));
        assert_eq!(summary[1].events, []);
        assert_eq!(summary[1].count, 2);

        let flapping: Vec<_> = (0..100)
            .map(|i| {
                notification(
                    "127.0.0.4:5000",
                    i,
                    if i % 2 == 0 { dvsan_mib::LINK_UP } else { dvsan_mib::LINK_DOWN },
                    vec![],
                )
            })
            .collect();
        let summary = summarize(&flapping);
        assert!(summary[0].events.len() <= MAX_EVENTS + 1);
        assert_eq!(summary[0].events.first(), Some(&Class::Resync));
        assert_eq!(summary[0].events.last(), Some(&Class::LinkDown));
    }
}
