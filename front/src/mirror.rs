//! The mirror: a volume's replicas, which of them are in sync, and where each client request goes.
//!
//! Protocol C: a write, write-zeroes or trim goes to every live replica (in sync or being resynced) and is
//! acknowledged once every one of them has answered; FLUSH and FUA go to all of them too. A read goes to one
//! in-sync replica, the one with the fewest requests outstanding. A replica that fails a request, or does not
//! answer within the replica timeout while another in-sync replica did, is marked out of sync and the client
//! sees nothing of it; the regions of writes it misses are marked in its dirty bitmap ([`crate::dirty`]), saved
//! before the write is acknowledged, together with the regions it acknowledged since its last successful FLUSH
//! (a unit that crashed may have lost those). The last in-sync replica is never dropped: its errors go to the client, and
//! its timeouts are waited out (its connection's reconnect window decides).
//!
//! A replica out of sync whose connection is up again is resynced online ([`Mirror::resync_loop`]): each dirty
//! region is copied from an in-sync replica while client I/O goes on, the copy fenced from writes to the same
//! region by the [`crate::gate`]; writes go to the returning replica during its resync as well, so once no bit
//! is left it is in sync. The state of every replica is written to `STATE_DIR/VOLUME.status.json` on each
//! change, and [`Mirror::status`] and [`Mirror::subscribe`] give the same to the code running the front (its
//! reports to the station). Builds on target, dirty, gate and upstream.

use crate::dirty::{write_atomically, DirtyMap};
use crate::gate::RegionGate;
use crate::intent::IntentLog;
use crate::target::ReplicaTarget;
use crate::upstream::{Reply, Request, Upstream, UpstreamError};
use dvsan_nbd::constants::*;
use dvsan_nbd::Errno;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Regions one resync step copies at once (read from the source together, then written together).
const RESYNC_BATCH: usize = 8;

/// Where a replica stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReplicaState {
    InSync,
    OutOfSync,
    Resyncing,
}

/// One replica as the front sees it now ([`Mirror::status`]): what the status file holds and what `dvsan-host
/// serve` reports to the station.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaStatus {
    pub target: ReplicaTarget,
    pub state: ReplicaState,
    pub dirty_regions: u64,
    /// Bytes of the dirty regions: written while the replica was out, not copied to it yet.
    pub dirty_bytes: u64,
    /// Bytes copied to it by its current (or last) resync.
    pub resynced_bytes: u64,
    /// Its unit has not answered for longer than the reconnect window (it is still tried in the background).
    pub unreachable: bool,
}

impl ReplicaStatus {
    /// How far its resync has come, 0 to 100: copied against copied plus still dirty; 100 with nothing dirty.
    pub fn resync_percent(&self) -> u32 {
        let total = self.resynced_bytes.saturating_add(self.dirty_bytes);
        if total == 0 {
            return 100;
        }
        u32::try_from(u128::from(self.resynced_bytes) * 100 / u128::from(total)).unwrap_or(100)
    }
}

struct Book {
    states: Vec<ReplicaState>,
    dirty: Vec<DirtyMap>,
    /// Regions each replica acknowledged writes in since its last successful FLUSH (in memory): a replica that
    /// fails may have lost them (a unit's crash loses what it had not flushed), so they become dirty with it.
    unflushed: Vec<DirtyMap>,
    resynced_bytes: Vec<u64>,
}

/// A volume mirrored over its replicas.
pub struct Mirror {
    pub volume: String,
    pub size: u64,
    replicas: Vec<Arc<Upstream>>,
    book: Mutex<Book>,
    gate: Arc<RegionGate>,
    timeout: Duration,
    status_path: Option<PathBuf>,
    intent: Option<Arc<IntentLog>>,
    /// Bumped on every change of the status (a state, the dirty regions, resync progress): [`Mirror::subscribe`].
    changes: tokio::sync::watch::Sender<u64>,
}

/// What the mirror keeps in the state directory (nothing without one).
#[derive(Default)]
pub struct MirrorFiles {
    /// Where the status (JSON) is written on every change.
    pub status: Option<PathBuf>,
    /// The write-intent log, with more than one replica.
    pub intent: Option<Arc<IntentLog>>,
}

/// What a client request asks of the mirror.
#[derive(Debug, Clone)]
pub enum Op {
    Read {
        offset: u64,
        length: u32,
    },
    /// WRITE (with its data), TRIM or WRITE_ZEROES: `command` and `flags` as the client sent them.
    Write {
        command: u16,
        flags: u16,
        offset: u64,
        length: u32,
        data: Option<Arc<Vec<u8>>>,
    },
    Flush,
}

impl Mirror {
    /// A mirror over replicas, with their dirty maps (loaded from the state directory): a replica with marked
    /// regions, or that did not answer at start (`reachable`), starts out of sync.
    pub fn new(
        volume: String,
        size: u64,
        replicas: Vec<Arc<Upstream>>,
        dirty: Vec<DirtyMap>,
        reachable: &[bool],
        timeout: Duration,
        files: MirrorFiles,
    ) -> Mirror {
        let MirrorFiles { status: status_path, intent } = files;
        let clean = |i: usize| dirty[i].count() == 0 && reachable.get(i).copied().unwrap_or(false);
        let mut states: Vec<ReplicaState> =
            (0..dirty.len()).map(|i| if clean(i) { ReplicaState::InSync } else { ReplicaState::OutOfSync }).collect();
        if !states.contains(&ReplicaState::InSync) {
            // No clean replica that answers: trust the first that answers, resync the others from it.
            let first = reachable.iter().position(|r| *r).unwrap_or(0);
            tracing::warn!(replica = first + 1, "no clean replica answers: serving from this one");
            if let Some(s) = states.get_mut(first) {
                *s = ReplicaState::InSync;
            }
        }
        let n = replicas.len();
        let unflushed = dirty.iter().map(|d| DirtyMap::new(None, d.region_size(), size)).collect();
        let m = Mirror {
            volume,
            size,
            replicas,
            book: Mutex::new(Book { states, dirty, unflushed, resynced_bytes: vec![0; n] }),
            gate: Arc::new(RegionGate::default()),
            timeout,
            status_path,
            intent,
            changes: tokio::sync::watch::Sender::new(0),
        };
        m.write_status(&m.lock());
        m
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn states(&self) -> Vec<ReplicaState> {
        self.lock().states.clone()
    }

    /// Every replica's state, dirty regions and resync progress, in replica order (the status file's content).
    pub fn status(&self) -> Vec<ReplicaStatus> {
        let book = self.lock();
        self.status_of(&book)
    }

    fn status_of(&self, book: &Book) -> Vec<ReplicaStatus> {
        self.replicas
            .iter()
            .enumerate()
            .map(|(i, up)| ReplicaStatus {
                target: up.target.clone(),
                state: book.states[i],
                dirty_regions: book.dirty[i].count(),
                dirty_bytes: book.dirty[i].dirty_bytes(),
                resynced_bytes: book.resynced_bytes[i],
                unreachable: up.down(),
            })
            .collect()
    }

    /// A receiver that sees a new value whenever the status changes (each time the status file would be
    /// written): for reporting the front's state elsewhere without polling the file.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Serve one client request: data for a read, nothing else; an NBD error when it cannot be done.
    pub async fn run(&self, op: Op) -> Result<Vec<u8>, Errno> {
        match op {
            Op::Read { offset, length } => self.read(offset, length).await,
            Op::Write { command, flags, offset, length, data } => {
                let span = self.lock().dirty.first().and_then(|d| d.span(offset, u64::from(length)));
                let _guard = match span {
                    Some(regions) => Some(self.gate.enter(regions, (offset, offset + u64::from(length))).await),
                    None => None,
                };
                let _intent = match (&self.intent, span) {
                    (Some(log), Some((first, last))) => Some(log.enter(first, last).await.map_err(|e| {
                        tracing::error!(error = %e, "saving the write-intent log");
                        Errno::EIO
                    })?),
                    _ => None,
                };
                let request = Request { command, flags, offset, length, payload: data };
                self.to_all(request, span).await.map(|_| Vec::new())
            }
            Op::Flush => {
                let request = Request { command: CMD_FLUSH, flags: 0, offset: 0, length: 0, payload: None };
                self.to_all(request, None).await.map(|_| Vec::new())
            }
        }
    }

    async fn read(&self, offset: u64, length: u32) -> Result<Vec<u8>, Errno> {
        let request = Request { command: CMD_READ, flags: 0, offset, length, payload: None };
        for _ in 0..=self.replicas.len() {
            let Some(i) = self.pick_source() else { return Err(Errno::EIO) };
            let mut call = self.replicas[i].submit(request.clone());
            let result = match tokio::time::timeout(self.timeout, &mut call).await {
                Ok(joined) => joined.unwrap_or(Err(UpstreamError::Abandoned)),
                Err(_) => {
                    if self.mark_out(i, None, "no answer to a read within the replica timeout") {
                        continue;
                    }
                    call.await.unwrap_or(Err(UpstreamError::Abandoned))
                }
            };
            match result {
                Ok(data) => return Ok(data),
                Err(e) => {
                    let span = self.lock().dirty[i].span(offset, u64::from(length));
                    if !self.mark_out(i, span, &e.to_string()) {
                        return Err(errno_of(&e));
                    }
                }
            }
        }
        Err(Errno::EIO)
    }

    /// Block status (base:allocation) from an in-sync replica; all data (one extent, flags 0) when the units
    /// do not offer it. A failure tries the next in-sync replica and drops none.
    pub async fn block_status(&self, offset: u64, length: u32, req_one: bool) -> Result<Vec<(u32, u32)>, Errno> {
        let candidates: Vec<usize> = {
            let book = self.lock();
            let mut c: Vec<usize> =
                (0..self.replicas.len()).filter(|i| book.states[*i] == ReplicaState::InSync).collect();
            c.sort_by_key(|i| (!self.replicas[*i].connected(), self.replicas[*i].outstanding()));
            c
        };
        let mut error = Errno::EIO;
        for i in candidates {
            // (The metadata connection has its own time limit, the replica timeout.)
            match self.replicas[i].block_status(offset, length, req_one).await {
                Ok(Some(extents)) if !extents.is_empty() => return Ok(extents),
                Ok(_) => return Ok(vec![(length, 0)]),
                Err(e) => error = errno_of(&e),
            }
        }
        Err(error)
    }

    /// The in-sync replica with the fewest requests outstanding, preferring those whose connection is up (one
    /// that is reconnecting would hold the read until it is back or times out).
    fn pick_source(&self) -> Option<usize> {
        let book = self.lock();
        (0..self.replicas.len())
            .filter(|i| book.states[*i] == ReplicaState::InSync)
            .min_by_key(|i| (!self.replicas[*i].connected(), self.replicas[*i].outstanding()))
    }

    /// Send a write-like request or a flush to every live replica; mark those that fail or time out.
    async fn to_all(&self, request: Request, span: Option<(u64, u64)>) -> Result<(), Errno> {
        let flush = request.command == CMD_FLUSH;
        let mut targets = Vec::new();
        // For a flush: what each target had not flushed when it was sent (what this flush makes durable).
        let mut flushing: Vec<Option<DirtyMap>> = vec![None; self.replicas.len()];
        {
            let mut book = self.lock();
            let mut save = Vec::new();
            for (i, taken) in flushing.iter_mut().enumerate() {
                match book.states[i] {
                    ReplicaState::InSync | ReplicaState::Resyncing => {
                        targets.push(i);
                        if flush {
                            let region_size = book.unflushed[i].region_size();
                            let empty = DirtyMap::new(None, region_size, self.size);
                            *taken = Some(std::mem::replace(&mut book.unflushed[i], empty));
                        }
                    }
                    ReplicaState::OutOfSync => {
                        if let Some((first, last)) = span {
                            if book.dirty[i].set(first, last) {
                                save.push(i);
                            }
                        }
                    }
                }
            }
            for i in &save {
                if let Err(e) = book.dirty[*i].save() {
                    tracing::error!(error = %e, "saving a dirty bitmap");
                }
            }
            if !save.is_empty() {
                self.write_status(&book);
            }
        }
        let calls: Vec<(usize, Call)> =
            targets.iter().map(|&i| (i, self.replicas[i].submit(request.clone()))).collect();
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut failed: Vec<(usize, String, Errno)> = Vec::new();
        let mut late = Vec::new();
        let mut succeeded = false;
        let mut acked = Vec::new();
        for (i, mut call) in calls {
            match tokio::time::timeout_at(deadline, &mut call).await {
                Ok(Ok(Ok(_))) => {
                    succeeded = true;
                    acked.push(i);
                }
                Ok(Ok(Err(e))) => failed.push((i, e.to_string(), errno_of(&e))),
                Ok(Err(_)) => failed.push((i, "the replica connection ended".into(), Errno::EIO)),
                Err(_) => late.push((i, call)),
            }
        }
        for (i, call) in late {
            if succeeded {
                self.restore_unflushed(i, flushing[i].take());
                if self.mark_out_span(i, span, false, "no answer within the replica timeout") {
                    continue;
                }
            }
            match call.await {
                Ok(Ok(_)) => {
                    succeeded = true;
                    acked.push(i);
                }
                Ok(Err(e)) => failed.push((i, e.to_string(), errno_of(&e))),
                Err(_) => failed.push((i, "the replica connection ended".into(), Errno::EIO)),
            }
        }
        if let Some((first, last)) = span {
            let mut book = self.lock();
            for &i in &acked {
                book.unflushed[i].set(first, last);
            }
        }
        let mut error = None;
        for (i, why, errno) in failed {
            // A flush that failed: what it was to make durable may be lost (marked dirty with the replica, or
            // kept for the next flush when the replica stays).
            self.restore_unflushed(i, flushing[i].take());
            if !(succeeded && self.mark_out_span(i, span, false, &why)) {
                error.get_or_insert(errno);
            }
        }
        match error {
            Some(e) => Err(e),
            None if targets.is_empty() => Err(Errno::EIO),
            None => Ok(()),
        }
    }

    /// Put back what a failed flush was to make durable on replica `i`.
    fn restore_unflushed(&self, i: usize, map: Option<DirtyMap>) {
        if let Some(map) = map {
            self.lock().unflushed[i].merge(&map);
        }
    }

    fn mark_out(&self, i: usize, span: Option<(u64, u64)>, why: &str) -> bool {
        self.mark_out_span(i, span, false, why)
    }

    /// Mark replica `i` out of sync (with `span`, or everything when `all`), unless it is the last in-sync
    /// one; abandon what is in flight to it. False when it may not be dropped.
    fn mark_out_span(&self, i: usize, span: Option<(u64, u64)>, all: bool, why: &str) -> bool {
        let mut book = self.lock();
        let others_in_sync = (0..self.replicas.len()).any(|j| j != i && book.states[j] == ReplicaState::InSync);
        if book.states[i] == ReplicaState::InSync && !others_in_sync {
            return false;
        }
        let was = book.states[i];
        book.states[i] = ReplicaState::OutOfSync;
        let mut changed = match (all, span) {
            (true, _) => book.dirty[i].set_all(),
            (false, Some((first, last))) => book.dirty[i].set(first, last),
            (false, None) => false,
        };
        // Writes it acknowledged but never flushed may be lost with it.
        let region_size = book.dirty[i].region_size();
        let unflushed = std::mem::replace(&mut book.unflushed[i], DirtyMap::new(None, region_size, self.size));
        changed |= book.dirty[i].merge(&unflushed);
        if changed || was != ReplicaState::OutOfSync {
            if let Err(e) = book.dirty[i].save() {
                tracing::error!(error = %e, "saving a dirty bitmap");
            }
        }
        if was != ReplicaState::OutOfSync {
            tracing::warn!(replica = %self.replicas[i].target, reason = why, "replica out of sync");
            self.replicas[i].abandon();
            self.write_status(&book);
        }
        true
    }

    /// After a host crash: the regions the write-intent log holds may differ between the replicas (a write
    /// that reached some of them). Copy them from one in-sync replica to the others (those out of reach get
    /// them as dirty regions), then empty the log. Runs before the volume is served. Returns the regions.
    pub async fn recover_intent(&self) -> Result<usize, String> {
        let Some(log) = &self.intent else { return Ok(0) };
        let regions = log.marked();
        if regions.is_empty() {
            return Ok(0);
        }
        let source = self.pick_source().ok_or("no in-sync replica to recover from")?;
        tracing::warn!(regions = regions.len(), source = %self.replicas[source].target,
            "the write-intent log holds regions from before a crash: making the replicas identical there");
        let others: Vec<usize> = (0..self.replicas.len()).filter(|i| *i != source).collect();
        {
            let mut book = self.lock();
            for &i in &others {
                for r in &regions {
                    book.dirty[i].set(*r, *r);
                }
                book.states[i] = ReplicaState::OutOfSync;
                book.dirty[i].save().map_err(|e| e.to_string())?;
            }
            self.write_status(&book);
        }
        log.clear().map_err(|e| e.to_string())?;
        for i in others {
            if self.replicas[i].connected() {
                if let Err(e) = self.resync(i).await {
                    tracing::warn!(replica = %self.replicas[i].target, reason = %e, "recovery resync stopped");
                }
            }
        }
        Ok(regions.len())
    }

    /// A clean stop: wait (up to `limit`) until no write is in flight, then empty the write-intent log, so the
    /// next start has nothing to recover. A write still in flight keeps its marks.
    pub async fn quiesce(&self, limit: Duration) {
        let Some(log) = &self.intent else { return };
        let deadline = Instant::now() + limit;
        while log.writes_in_flight() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if log.writes_in_flight() > 0 {
            tracing::warn!("writes still in flight at the stop: their regions stay in the write-intent log");
            return;
        }
        if let Err(e) = log.clear() {
            tracing::error!(error = %e, "emptying the write-intent log");
        }
    }

    /// Resync returning replicas, forever: every 100 ms, the first replica out of sync whose connection is up.
    /// Also unmarks cold regions of the write-intent log.
    pub async fn resync_loop(self: Arc<Self>) {
        let mut retry_at = vec![Instant::now(); self.replicas.len()];
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if let Some(log) = &self.intent {
                if let Err(e) = log.expire().await {
                    tracing::error!(error = %e, "saving the write-intent log");
                }
            }
            for (i, retry) in retry_at.iter_mut().enumerate() {
                let ready = self.lock().states[i] == ReplicaState::OutOfSync
                    && self.replicas[i].connected()
                    && Instant::now() >= *retry;
                if ready {
                    if let Err(why) = self.resync(i).await {
                        tracing::warn!(replica = %self.replicas[i].target, reason = %why, "resync stopped");
                        *retry = Instant::now() + Duration::from_secs(1);
                    }
                }
            }
        }
    }

    /// Copy the dirty regions of replica `i` from in-sync replicas, then call it in sync.
    async fn resync(&self, i: usize) -> Result<(), String> {
        let started = Instant::now();
        {
            let mut book = self.lock();
            book.states[i] = ReplicaState::Resyncing;
            book.resynced_bytes[i] = 0;
            tracing::info!(replica = %self.replicas[i].target, regions = book.dirty[i].count(), "resync starts");
            self.write_status(&book);
        }
        let mut from = 0;
        let mut copied_since_save = 0u32;
        loop {
            let batch = {
                let mut book = self.lock();
                if book.states[i] != ReplicaState::Resyncing {
                    return Err("the replica failed during its resync".into());
                }
                let dirty = &book.dirty[i];
                let mut batch = Vec::new();
                let mut next = dirty.next_set(from).or_else(|| dirty.next_set(0));
                while let Some(r) = next {
                    batch.push((r, dirty.region_range(r)));
                    if batch.len() == RESYNC_BATCH {
                        break;
                    }
                    next = dirty.next_set(r + 1);
                }
                if batch.is_empty() {
                    book.states[i] = ReplicaState::InSync;
                    if let Err(e) = book.dirty[i].save() {
                        tracing::error!(error = %e, "saving a dirty bitmap");
                    }
                    tracing::info!(replica = %self.replicas[i].target, bytes = book.resynced_bytes[i],
                        ms = started.elapsed().as_millis(), "resync done: in sync");
                    self.write_status(&book);
                    return Ok(());
                }
                batch
            };
            for (r, _) in &batch {
                self.gate.close(*r).await;
            }
            let outcome = self.copy_regions(i, &batch).await;
            if outcome.is_ok() {
                let mut book = self.lock();
                for (r, (_, len)) in &batch {
                    book.dirty[i].clear(*r);
                    book.unflushed[i].set(*r, *r);
                    book.resynced_bytes[i] += len;
                }
                copied_since_save += 1;
                if copied_since_save >= 8 {
                    copied_since_save = 0;
                    if let Err(e) = book.dirty[i].save() {
                        tracing::error!(error = %e, "saving a dirty bitmap");
                    }
                    self.write_status(&book);
                }
            }
            for (r, _) in &batch {
                self.gate.open(*r);
            }
            if let Err(e) = outcome {
                self.mark_out(i, None, &e);
                return Err(e);
            }
            from = batch.last().map(|(r, _)| r + 1).unwrap_or(0);
        }
    }

    /// Copy regions (closed in the gate) from an in-sync replica to replica `i`: all reads at once, then all
    /// writes.
    async fn copy_regions(&self, i: usize, batch: &[(u64, (u64, u64))]) -> Result<(), String> {
        let source = self.pick_source().ok_or("no in-sync replica to copy from")?;
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut reads = Vec::new();
        for (_, (offset, len)) in batch {
            let length = u32::try_from(*len).map_err(|_| "region larger than 4 GiB".to_string())?;
            let read = Request { command: CMD_READ, flags: 0, offset: *offset, length, payload: None };
            reads.push((*offset, length, self.replicas[source].submit(read)));
        }
        let mut writes = Vec::new();
        for (offset, length, reply) in reads {
            let data = tokio::time::timeout_at(deadline, reply)
                .await
                .map_err(|_| "the source replica did not answer within the replica timeout".to_string())?
                .unwrap_or(Err(UpstreamError::Abandoned))
                .map_err(|e| format!("reading the source replica: {e}"))?;
            let write = Request { command: CMD_WRITE, flags: 0, offset, length, payload: Some(Arc::new(data)) };
            writes.push(self.replicas[i].submit(write));
        }
        let deadline = tokio::time::Instant::now() + self.timeout;
        for reply in writes {
            tokio::time::timeout_at(deadline, reply)
                .await
                .map_err(|_| "no answer to a resync write within the replica timeout".to_string())?
                .unwrap_or(Err(UpstreamError::Abandoned))
                .map_err(|e| format!("writing the returning replica: {e}"))?;
        }
        Ok(())
    }

    /// The status changed: tell the subscribers and write the status file.
    fn write_status(&self, book: &Book) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
        let Some(path) = &self.status_path else { return };
        let replicas: Vec<serde_json::Value> = self
            .status_of(book)
            .iter()
            .map(|r| {
                serde_json::json!({
                    "unit": r.target.unit,
                    "replica": r.target.to_string(),
                    "state": r.state,
                    "dirty_regions": r.dirty_regions,
                    "dirty_bytes": r.dirty_bytes,
                    "resynced_bytes": r.resynced_bytes,
                    "unreachable": r.unreachable,
                })
            })
            .collect();
        let status = serde_json::json!({ "volume": self.volume, "size": self.size, "replicas": replicas });
        if let Err(e) = write_atomically(path, status.to_string().as_bytes()) {
            tracing::error!(error = %e, path = %path.display(), "writing the status file");
        }
    }
}

/// A request to one replica, sent.
type Call = Reply;

fn errno_of(e: &UpstreamError) -> Errno {
    match e {
        UpstreamError::Replica(errno) => *errno,
        _ => Errno::EIO,
    }
}
