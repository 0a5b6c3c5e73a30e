//! The running unit's shared state: the layout store, the snapshot the MIB is served from, and what blockd last
//! said about itself.
//!
//! MIB handlers read immutable snapshots (`Arc<Layout>`), so a GET never waits for SQLite. Changes go through the
//! store (SNMP SET commits and the offline CLI alike) and the snapshot is reloaded after each, or when the
//! refresher sees the change counter move because the CLI changed the layout behind the agent's back.
//!
//! Whoever made a change, it is announced (dvsanLayoutChanged) from one place: [`Unit::unannounced_change`]
//! compares the change counter with the last one announced, so SETs, the CLI and growth are each announced once.

use crate::clearing;
use dvsan_layout::{percent, Blocks, ClearOptions, ClearTarget, Grant, Partition, Volume};
use dvsan_layout::{
    DataServiceState, Layout, LayoutError, LayoutStore, NewGrant, NewPartition, NewVolume, TrafficRecord,
};
use dvsan_snmp::Uptime;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// blockd's heartbeat older than this means it is gone (it beats about once a second).
const HEARTBEAT_STALE: Duration = Duration::from_secs(3);

/// The data interface as the IF-MIB and DVSAN scalars show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataLink {
    pub up: bool,
    pub listen: Option<SocketAddr>,
    /// sysUpTime (centiseconds) of the last change, for ifLastChange.
    pub last_change: u32,
}

/// One layout change, as planned during an SNMP SET's check phase. Applying it is deterministic (every field
/// is fixed), so the same value can be replayed and inverted for undo.
#[derive(Debug, Clone)]
pub enum Change {
    CreateVolume(Volume),
    GrowVolume {
        volume: Volume,
    },
    DestroyVolume(Volume),
    CreatePartition(Partition),
    DestroyPartition(Partition),
    CreateGrant(Grant),
    RevokeGrant(Grant),
    /// The volume as it is once the wipe started (clearing from 0).
    WipeVolume(Volume),
}

impl Change {
    fn apply(&self, store: &mut LayoutStore) -> Result<(), LayoutError> {
        match self {
            Change::CreateVolume(v) => store
                .create_volume(&NewVolume {
                    index: Some(v.index),
                    name: Some(v.name.clone()),
                    start: Some(v.extent.start),
                    len: v.extent.len,
                })
                .map(drop),
            Change::GrowVolume { volume, .. } => store.grow_volume(volume.index, volume.extent.len).map(drop),
            Change::DestroyVolume(v) => store.destroy_volume(v.index).map(drop),
            Change::CreatePartition(p) => store
                .create_partition(&NewPartition {
                    volume: p.volume,
                    index: Some(p.index),
                    start: Some(p.extent.start),
                    len: p.extent.len,
                })
                .map(drop),
            Change::DestroyPartition(p) => store.destroy_partition(p.volume, p.index).map(drop),
            Change::CreateGrant(g) => store
                .create_grant(&NewGrant {
                    index: Some(g.index),
                    volume: g.volume,
                    partition: g.partition,
                    host: g.host,
                    identity: g.identity.clone(),
                    mode: g.mode,
                })
                .map(drop),
            Change::RevokeGrant(g) => store.revoke_grant(g.index).map(drop),
            Change::WipeVolume(v) => store.wipe_volume(v.index).map(drop),
        }
    }

    /// The change that puts things back; None when there is none (a volume is never shrunk; a destroyed or
    /// wiped volume's blocks may be cleared already).
    fn inverse(&self) -> Option<Change> {
        Some(match self {
            Change::CreateVolume(v) => Change::DestroyVolume(v.clone()),
            Change::DestroyVolume(_) | Change::WipeVolume(_) => return None,
            Change::GrowVolume { .. } => return None,
            Change::CreatePartition(p) => Change::DestroyPartition(p.clone()),
            Change::DestroyPartition(p) => Change::CreatePartition(p.clone()),
            Change::CreateGrant(g) => Change::RevokeGrant(g.clone()),
            Change::RevokeGrant(g) => Change::CreateGrant(g.clone()),
        })
    }

    /// Apply to a snapshot copy, so later rows of the same SET are planned against the earlier ones.
    pub fn apply_to(&self, l: &mut Layout) {
        match self {
            Change::CreateVolume(v) => l.volumes.push(v.clone()),
            Change::GrowVolume { volume, .. } => {
                if let Some(v) = l.volumes.iter_mut().find(|v| v.index == volume.index) {
                    *v = volume.clone();
                }
            }
            Change::DestroyVolume(v) => l.volumes.retain(|x| x.index != v.index),
            Change::CreatePartition(p) => l.partitions.push(p.clone()),
            Change::DestroyPartition(p) => l.partitions.retain(|x| (x.volume, x.index) != (p.volume, p.index)),
            Change::CreateGrant(g) => l.grants.push(g.clone()),
            Change::RevokeGrant(g) => l.grants.retain(|x| x.index != g.index),
            Change::WipeVolume(w) => {
                if let Some(v) = l.volumes.iter_mut().find(|v| v.index == w.index) {
                    *v = w.clone();
                }
            }
        }
    }
}

pub struct Unit {
    store: Mutex<LayoutStore>,
    layout: RwLock<Arc<Layout>>,
    traffic: RwLock<Arc<Vec<TrafficRecord>>>,
    /// blockd's bad-input totals by name (refused, evicted, timed-out connections...), refreshed with traffic.
    data_counters: RwLock<Arc<BTreeMap<String, u64>>>,
    link: RwLock<DataLink>,
    uptime: Uptime,
    /// The change counter last announced (or the one at start, which coldStart carries).
    announced: Mutex<u32>,
    /// Blocks cleared so far by the clearing thread, newer than the snapshot (progress moves no change counter).
    cleared: RwLock<HashMap<ClearTarget, Blocks>>,
    clear: ClearOptions,
}

impl Unit {
    pub fn new(mut store: LayoutStore, uptime: Uptime, clear: ClearOptions) -> Result<Self, LayoutError> {
        let layout = Arc::new(store.load()?);
        let announced = Mutex::new(layout.unit.change_counter);
        let traffic = Arc::new(store.traffic()?);
        let data_counters = Arc::new(store.data_counters()?);
        Ok(Unit {
            store: Mutex::new(store),
            layout: RwLock::new(layout),
            traffic: RwLock::new(traffic),
            data_counters: RwLock::new(data_counters),
            link: RwLock::new(DataLink { up: false, listen: None, last_change: 0 }),
            uptime,
            announced,
            cleared: RwLock::new(HashMap::new()),
            clear,
        })
    }

    /// The clearing thread's progress on `target`.
    pub fn set_cleared(&self, target: ClearTarget, cleared: Blocks) {
        self.cleared.write().unwrap_or_else(|p| p.into_inner()).insert(target, cleared);
    }

    /// How far the wipe of `v` has got, in percent (dvsanVolumeClearProgress).
    pub fn clear_percent(&self, v: &Volume) -> u32 {
        let Some(in_snapshot) = v.clearing else { return 100 };
        let newer = self.cleared.read().unwrap_or_else(|p| p.into_inner()).get(&ClearTarget::Volume(v.index)).copied();
        percent(newer.map_or(in_snapshot, |n| n.max(in_snapshot)), v.extent.len)
    }

    /// Released blocks not yet cleared (dvsanUnitClearingBlocks).
    pub fn clearing_blocks(&self) -> Blocks {
        self.layout().clearing_blocks()
    }

    fn store(&self) -> MutexGuard<'_, LayoutStore> {
        // A panic while holding the lock leaves the store itself consistent (SQLite transactions), so recover.
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn layout(&self) -> Arc<Layout> {
        self.layout.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn traffic(&self) -> Arc<Vec<TrafficRecord>> {
        self.traffic.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn link(&self) -> DataLink {
        *self.link.read().unwrap_or_else(|p| p.into_inner())
    }

    /// sysUpTime in centiseconds.
    pub fn uptime(&self) -> u32 {
        self.uptime.ticks()
    }

    /// Apply `changes` in order; if one fails, undo the ones already applied and return the failing position.
    pub fn apply(&self, changes: &[Change]) -> Result<(), (usize, LayoutError)> {
        let mut store = self.store();
        let mut done = 0;
        let mut failure = None;
        for (i, c) in changes.iter().enumerate() {
            if let Err(e) = c.apply(&mut store) {
                failure = Some((i, e));
                break;
            }
            done += 1;
        }
        if let Some(f) = failure {
            for c in changes[..done].iter().rev() {
                if let Some(inv) = c.inverse() {
                    if let Err(e) = inv.apply(&mut store) {
                        tracing::error!(?c, error = %e, "could not undo a partly applied SET");
                    }
                }
            }
            drop(store);
            self.reload_quietly();
            return Err(f);
        }
        // Released or wiped blocks that are quick to clear and that nothing serves are cleared before the SET
        // is answered, so the space is free (and the change announced once) when the manager looks again.
        if changes.iter().any(|c| matches!(c, Change::DestroyVolume(_) | Change::WipeVolume(_))) {
            let stop = std::sync::atomic::AtomicBool::new(false);
            if let Err(e) = clearing::run_ready(&mut store, &|_, _| {}, self.clear, true, &stop) {
                tracing::warn!(error = %e, "clearing at once failed; the clearing thread tries again");
            }
        }
        drop(store);
        self.reload_quietly();
        Ok(())
    }

    /// Undo changes that were committed (a later handler of the same SET failed). False if any could not be.
    pub fn undo(&self, changes: &[Change]) -> bool {
        let mut store = self.store();
        let mut ok = true;
        for c in changes.iter().rev() {
            match c.inverse() {
                Some(inv) => {
                    if let Err(e) = inv.apply(&mut store) {
                        tracing::error!(?c, error = %e, "undo failed");
                        ok = false;
                    }
                }
                None => ok = false,
            }
        }
        drop(store);
        self.reload_quietly();
        ok
    }

    fn reload_quietly(&self) {
        if let Err(e) = self.reload() {
            tracing::warn!(error = %e, "reloading the layout");
        }
    }

    /// Reload the snapshot from the store.
    fn reload(&self) -> Result<(), LayoutError> {
        let fresh = self.store().load()?;
        // Progress the snapshot now holds (or of jobs that are gone) need not be kept beside it.
        self.cleared.write().unwrap_or_else(|p| p.into_inner()).retain(|t, _| match t {
            ClearTarget::Volume(i) => fresh.volume(*i).is_some_and(|v| v.clearing.is_some()),
            ClearTarget::Released(s) => fresh.released.iter().any(|r| r.extent.start == *s),
        });
        *self.layout.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(fresh);
        Ok(())
    }

    /// Poll the cheap change counter and reload when it moved (the CLI may change the layout directly).
    fn refresh_layout(&self) -> Result<(), LayoutError> {
        let counter = self.store().change_counter()?;
        if counter != self.layout().unit.change_counter {
            self.reload()?;
        }
        Ok(())
    }

    /// The change counter to announce, if the layout changed since the last announcement, by any path (a SET,
    /// which reloads the snapshot itself, or the CLI, which the refresh notices); marks it announced.
    pub fn unannounced_change(&self) -> Result<Option<u32>, LayoutError> {
        self.refresh_layout()?;
        let counter = self.layout().unit.change_counter;
        let mut announced = self.announced.lock().unwrap_or_else(|p| p.into_inner());
        if *announced == counter {
            return Ok(None);
        }
        *announced = counter;
        Ok(Some(counter))
    }

    /// blockd's total for each bad-input reason named (0 for one it never saved).
    pub fn data_counter(&self, names: &[&str]) -> u64 {
        let c = self.data_counters.read().unwrap_or_else(|p| p.into_inner()).clone();
        names.iter().map(|n| c.get(*n).copied().unwrap_or(0)).fold(0, u64::saturating_add)
    }

    /// Re-read blockd's traffic and bad-input counters.
    pub fn refresh_traffic(&self) -> Result<(), LayoutError> {
        let (t, c) = {
            let store = self.store();
            (Arc::new(store.traffic()?), Arc::new(store.data_counters()?))
        };
        *self.traffic.write().unwrap_or_else(|p| p.into_inner()) = t;
        *self.data_counters.write().unwrap_or_else(|p| p.into_inner()) = c;
        Ok(())
    }

    /// Read blockd's heartbeat; returns Some(new state) when the link went up or down.
    pub fn refresh_link(&self) -> Result<Option<bool>, LayoutError> {
        let status = self.store().data_service()?;
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        let up = status.as_ref().is_some_and(|s| {
            s.state == DataServiceState::Serving
                && now_ms.saturating_sub(s.heartbeat_ms) < HEARTBEAT_STALE.as_millis() as u64
        });
        let mut link = self.link.write().unwrap_or_else(|p| p.into_inner());
        link.listen = status.map(|s| s.listen);
        if link.up != up {
            link.up = up;
            link.last_change = self.uptime();
            return Ok(Some(up));
        }
        Ok(None)
    }
}
