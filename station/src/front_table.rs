//! dvsanStationFrontTable: hosts' fronts (`dvsan-host serve`) report the state of each replica of their mirrored
//! volumes — in sync, out of sync with how much dirty, resyncing with its progress, failed — with plain SETs, and
//! every SET is a heartbeat (dvsanStationFrontLastReport). One row per replica row of dvsanStationReplicaTable,
//! with its index; the rows exist because the replicas do (no RowStatus). A row is visible and writable only to
//! the requester that asked for the mirrored volume and to the station's admins ([`Admins`]); to anyone else it
//! does not exist (GET noSuchInstance, walks skip it, a SET noCreation). Reports are kept in the store
//! (`front_reports`), so `dvsan-station pool` shows them and they survive a restart of the station.

use crate::model::{FrontReport, MirrorRecord, FRONT_STATES};
use crate::principal::Admins;
use crate::set_values::{integer, unsigned};
use crate::station_mib::date_and_time;
use crate::store::StationStore;
use dvsan_mib as mib;
use dvsan_snmp::agent::{FnPreparedSet, PreparedSet, SetFailure, SetItem, Table, UndoFailed};
use dvsan_snmp::{ErrorStatus, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

const STATE: u32 = 1;
const DIRTY_KIB: u32 = 2;
const RESYNC_PERCENT: u32 = 3;
const LAST_REPORT: u32 = 4;

/// One row's change: which columns it sets (`None`: left as it is).
type Change = (Option<&'static str>, Option<u64>, Option<u32>);

/// The table, served by the station's agent (register a `TableHandler` of it at the entry OID).
pub struct FrontTable {
    store: Arc<Mutex<StationStore>>,
    admins: Admins,
    /// Runs after every committed report (the station refreshes the MIB's snapshot).
    on_change: Arc<dyn Fn() + Send + Sync>,
}

impl FrontTable {
    /// Serves from `store` (a connection of its own); `admins` see and write every row.
    pub fn new(store: StationStore, admins: Admins, on_change: impl Fn() + Send + Sync + 'static) -> FrontTable {
        FrontTable { store: Arc::new(Mutex::new(store)), admins, on_change: Arc::new(on_change) }
    }

    fn store(&self) -> std::sync::MutexGuard<'_, StationStore> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The mirrored volumes the requester of the SNMP request being processed may see, and the reports.
    fn visible(&self) -> (Vec<MirrorRecord>, Vec<FrontReport>) {
        let store = self.store();
        let mirrors = store.mirrors().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "reading the mirrored volumes for dvsanStationFrontTable failed");
            Vec::new()
        });
        let reports = store.front_reports().unwrap_or_default();
        let mirrors = mirrors.into_iter().filter(|m| self.admins.current_may_manage(m.owner.as_deref())).collect();
        (mirrors, reports)
    }
}

/// Whether `mirrors` has replica `replica` of mirror `mirror`.
fn has_row(mirrors: &[MirrorRecord], mirror: u32, replica: u32) -> bool {
    mirrors.iter().any(|m| m.index == mirror && m.replicas.iter().any(|r| r.replica == replica))
}

impl Table for FrontTable {
    fn entry(&self) -> &'static [u32] {
        mib::DVSAN_STATION_FRONT_ENTRY
    }

    fn columns(&self) -> &'static [u32] {
        &[STATE, DIRTY_KIB, RESYNC_PERCENT, LAST_REPORT]
    }

    fn rows(&self) -> Vec<Vec<u32>> {
        let (mirrors, _) = self.visible();
        mirrors.iter().flat_map(|m| m.replicas.iter().map(move |r| vec![m.index, r.replica])).collect()
    }

    fn cell(&self, column: u32, index: &[u32]) -> Option<Value> {
        let &[mirror, replica] = index else { return None };
        let (mirrors, reports) = self.visible();
        if !has_row(&mirrors, mirror, replica) {
            return None;
        }
        let report = reports.iter().find(|r| r.mirror == mirror && r.replica == replica);
        Some(match column {
            STATE => {
                let state = report.map_or("unknown", |r| r.state.as_str());
                Value::Integer(FRONT_STATES.iter().find(|(_, name)| *name == state).map_or(1, |(code, _)| *code))
            }
            DIRTY_KIB => Value::Gauge32(u32::try_from(report.map_or(0, |r| r.dirty_bytes / 1024)).unwrap_or(u32::MAX)),
            RESYNC_PERCENT => Value::Gauge32(report.map_or(0, |r| r.resync_percent.min(100))),
            LAST_REPORT => Value::OctetString(report.map_or_else(|| vec![0; 8], |r| date_and_time(r.reported_ms))),
            _ => return None,
        })
    }

    fn prepare_set(&self, varbinds: &[SetItem<'_>]) -> Result<Box<dyn PreparedSet>, SetFailure> {
        let (mirrors, reports) = self.visible();
        let codes: Vec<i32> = FRONT_STATES.iter().map(|(code, _)| *code).collect();
        let mut changes: BTreeMap<(u32, u32), Change> = BTreeMap::new();
        for (i, vb) in varbinds {
            let Some(&[column, mirror, replica]) = vb.oid.suffix_after(mib::DVSAN_STATION_FRONT_ENTRY) else {
                return Err(SetFailure::new(*i, ErrorStatus::NoCreation));
            };
            // Rows of mirrored volumes the requester may not see do not exist for it.
            if !has_row(&mirrors, mirror, replica) {
                return Err(SetFailure::new(*i, ErrorStatus::NoCreation));
            }
            let change = changes.entry((mirror, replica)).or_default();
            match column {
                STATE => {
                    let code = integer(*i, &vb.value, &codes)?;
                    change.0 = FRONT_STATES.iter().find(|(c, _)| *c == code).map(|(_, name)| *name);
                }
                DIRTY_KIB => change.1 = Some(u64::from(unsigned(*i, &vb.value)?) * 1024),
                RESYNC_PERCENT => {
                    let percent = unsigned(*i, &vb.value)?;
                    if percent > 100 {
                        return Err(SetFailure::new(*i, ErrorStatus::WrongValue));
                    }
                    change.2 = Some(percent);
                }
                LAST_REPORT => return Err(SetFailure::new(*i, ErrorStatus::NotWritable)),
                _ => return Err(SetFailure::new(*i, ErrorStatus::NoCreation)),
            }
        }
        let before: Vec<((u32, u32), Option<FrontReport>)> = changes
            .keys()
            .map(|&(m, r)| ((m, r), reports.iter().find(|x| x.mirror == m && x.replica == r).cloned()))
            .collect();
        let store = Arc::clone(&self.store);
        let on_change = Arc::clone(&self.on_change);
        let first = varbinds.first().map_or(0, |(i, _)| *i);
        Ok(Box::new(FnPreparedSet(move || {
            let now = crate::timefmt::now_ms();
            {
                let mut store = store.lock().unwrap_or_else(|e| e.into_inner());
                for (&(mirror, replica), &change) in &changes {
                    if let Err(e) = store.record_front_report(mirror, replica, change, now) {
                        tracing::warn!(mirror, replica, error = %e, "recording a front report failed");
                        return Err(SetFailure::new(first, ErrorStatus::CommitFailed));
                    }
                }
            }
            on_change();
            Ok(move || {
                let mut store = store.lock().unwrap_or_else(|e| e.into_inner());
                for ((mirror, replica), report) in &before {
                    if let Err(e) = store.restore_front_report(*mirror, *replica, report.as_ref()) {
                        tracing::warn!(mirror, replica, error = %e, "undoing a front report failed");
                        return Err(UndoFailed);
                    }
                }
                Ok::<(), UndoFailed>(())
            })
        })))
    }
}
