//! NOTIFICATION-LOG-MIB (RFC 3014) over the station's notification store, so any NMS (and the console, from
//! anywhere on the network) reads the notifications the station received with plain SNMP:
//! `snmptable -m +NOTIFICATION-LOG-MIB … nlmLogTable`.
//!
//! The station keeps one log, the null-named one (`nlmLogName` ""), holding every stored notification; its
//! `nlmLogIndex` is the store's row id, so indexes only grow and a manager follows the log by GETNEXT from the
//! last index it saw. The config and stats groups describe that single log read-only (the RFC's compliance
//! allows read-only limits and no named logs). Rows are read from SQLite on demand, through a read-only
//! connection of this handler's own, so the log can hold millions of rows without a copy in memory.
//!
//! nlmLogVariableTable lists a notification's varbinds after sysUpTime.0 and snmpTrapOID.0, as the store keeps
//! them; a varbind whose type has no value column (NULL, the exceptions) gets no row, its index stays unused.

use crate::counters::StationCounters;
use crate::notification::VarBindRecord;
use crate::station_mib::date_and_time;
use dvsan_mib as mib;
use dvsan_snmp::agent::{GetResult, MibHandler};
use dvsan_snmp::{Oid, Value, VarBind};
use rusqlite::{Connection, OpenFlags};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// Columns of nlmLogEntry served (nlmLogIndex, 1, is not-accessible).
const LOG_COLUMNS: std::ops::RangeInclusive<u32> = 2..=9;
/// Columns of nlmLogVariableEntry served (nlmLogVariableIndex, 1, is not-accessible).
const VARIABLE_COLUMNS: std::ops::RangeInclusive<u32> = 2..=12;
/// Rows read per query while looking for the next variable of a given type.
const SCAN_BATCH: usize = 64;

/// nlmLogVariableValueType and the value column that holds a value of that type.
fn variable_type(value: &Value) -> Option<(i32, u32)> {
    Some(match value {
        Value::Counter32(_) => (1, 4),
        Value::Gauge32(_) => (2, 5),
        Value::TimeTicks(_) => (3, 6),
        Value::Integer(_) => (4, 7),
        Value::IpAddress(_) => (5, 9),
        Value::OctetString(_) => (6, 8),
        Value::ObjectId(_) => (7, 10),
        Value::Counter64(_) => (8, 11),
        Value::Opaque(_) => (9, 12),
        _ => return None,
    })
}

/// One stored notification, as much of it as the log tables show.
#[derive(Debug, Clone)]
struct LogRow {
    id: u32,
    time_ms: i64,
    source: Option<SocketAddr>,
    community: String,
    trap_oid: Option<Oid>,
    varbinds: Vec<VarBind>,
}

impl LogRow {
    fn column(&self, column: u32, started_ms: i64) -> Option<Value> {
        Some(match column {
            // TimeStamp: the station's sysUpTime when it logged the row; 0 for rows from before this run.
            2 => {
                Value::TimeTicks(u32::try_from(self.time_ms.saturating_sub(started_ms).max(0) / 10).unwrap_or(u32::MAX))
            }
            3 => Value::OctetString(date_and_time(self.time_ms)),
            // SNMPv1/v2c carry no engine ids.
            4 | 7 => Value::OctetString(Vec::new()),
            5 => Value::OctetString(match self.source {
                Some(SocketAddr::V4(a)) => [a.ip().octets().as_slice(), &a.port().to_be_bytes()].concat(),
                Some(SocketAddr::V6(a)) => [a.ip().octets().as_slice(), &a.port().to_be_bytes()].concat(),
                None => Vec::new(),
            }),
            6 => Value::ObjectId(Oid::from_slice(match self.source {
                Some(SocketAddr::V6(_)) => mib::TRANSPORT_DOMAIN_UDP_IPV6,
                _ => mib::SNMP_UDP_DOMAIN,
            })),
            // For SNMPv1 and v2c the community plays the part of the context (RFC 3014, nlmLogContextName).
            8 => Value::string(&self.community),
            9 => Value::ObjectId(self.trap_oid.clone()?),
            _ => return None,
        })
    }

    /// The variable at 1-based `index` with a value column; `column` picks which columns exist for it.
    fn variable(&self, index: u32, column: u32) -> Option<Value> {
        let vb = self.varbinds.get(usize::try_from(index).ok()?.checked_sub(1)?)?;
        let (kind, value_column) = variable_type(&vb.value)?;
        match column {
            2 => Some(Value::ObjectId(vb.oid.clone())),
            3 => Some(Value::Integer(kind)),
            c if c == value_column => Some(match &vb.value {
                // Gauge32 and Unsigned32 share a type; the column is Unsigned32.
                Value::Gauge32(v) => Value::Gauge32(*v),
                other => other.clone(),
            }),
            _ => None,
        }
    }
}

/// The NOTIFICATION-LOG-MIB handler (register it at [`mib::NOTIFICATION_LOG_MIB`]'s objects).
pub struct NotificationLog {
    connection: Mutex<Option<Connection>>,
    path: std::path::PathBuf,
    counters: Arc<StationCounters>,
    entry_limit: u32,
    /// Unix milliseconds of the station's start (its sysUpTime zero).
    started_ms: i64,
}

impl NotificationLog {
    /// Serves the log of the store in `state_dir`. `entry_limit` is the number of notifications the station keeps.
    pub fn new(state_dir: &Path, counters: Arc<StationCounters>, entry_limit: u64, started_ms: i64) -> NotificationLog {
        NotificationLog {
            connection: Mutex::new(None),
            path: state_dir.join(crate::store::STORE_FILE),
            counters,
            entry_limit: u32::try_from(entry_limit).unwrap_or(u32::MAX),
            started_ms,
        }
    }

    /// The OID this handler serves.
    pub fn prefix() -> Oid {
        Oid::from_slice(mib::NOTIFICATION_LOG_MIB).child(1)
    }

    /// Rows with `id > after`, oldest first, at most `limit`. Errors are logged and read as "no rows": an SNMP
    /// reader then sees the end of the table, not a failed request.
    fn rows_after(&self, after: u32, limit: usize) -> Vec<LogRow> {
        let mut guard = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            match Connection::open_with_flags(&self.path, OpenFlags::SQLITE_OPEN_READ_ONLY) {
                Ok(connection) => {
                    let _ = connection.busy_timeout(std::time::Duration::from_secs(1));
                    *guard = Some(connection);
                }
                Err(e) => {
                    tracing::warn!(error = %e, path = %self.path.display(), "notification log: cannot open the store");
                    return Vec::new();
                }
            }
        }
        let Some(connection) = guard.as_ref() else { return Vec::new() };
        match query_rows(connection, after, limit) {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "notification log: reading the store failed");
                *guard = None;
                Vec::new()
            }
        }
    }

    fn row(&self, id: u32) -> Option<LogRow> {
        self.rows_after(id.checked_sub(1)?, 1).into_iter().next().filter(|r| r.id == id)
    }

    /// The config and stats instances (a handful, computed on every request).
    fn scalars(&self) -> Vec<(Oid, Value)> {
        let stored = self.counters.stored.load(Ordering::Relaxed);
        let bumped = self.counters.pruned.load(Ordering::Relaxed);
        // Counter32 wraps.
        let logged = Value::Counter32(stored as u32);
        let bumped = Value::Counter32(bumped as u32);
        let log = |node: &[u32], column: u32| Oid::from_slice(node).join(&[column, 0]);
        vec![
            (Oid::from_slice(mib::NLM_CONFIG_GLOBAL_ENTRY_LIMIT).child(0), Value::Gauge32(self.entry_limit)),
            // No ageing out: old rows go only when the limit is reached.
            (Oid::from_slice(mib::NLM_CONFIG_GLOBAL_AGE_OUT).child(0), Value::Gauge32(0)),
            (log(mib::NLM_CONFIG_LOG_ENTRY, 2), Value::string("")),
            (log(mib::NLM_CONFIG_LOG_ENTRY, 3), Value::Gauge32(0)),
            (log(mib::NLM_CONFIG_LOG_ENTRY, 4), Value::Integer(1)),
            (log(mib::NLM_CONFIG_LOG_ENTRY, 5), Value::Integer(2)),
            // permanent(4): the log is part of the station and survives restarts.
            (log(mib::NLM_CONFIG_LOG_ENTRY, 6), Value::Integer(4)),
            (log(mib::NLM_CONFIG_LOG_ENTRY, 7), Value::Integer(mib::row_status::ACTIVE)),
            (Oid::from_slice(mib::NLM_STATS_GLOBAL_NOTIFICATIONS_LOGGED).child(0), logged.clone()),
            (Oid::from_slice(mib::NLM_STATS_GLOBAL_NOTIFICATIONS_BUMPED).child(0), bumped.clone()),
            (log(mib::NLM_STATS_LOG_ENTRY, 1), logged),
            (log(mib::NLM_STATS_LOG_ENTRY, 2), bumped),
        ]
    }

    fn next_log_entry(&self, oid: &Oid) -> Option<VarBind> {
        for column in LOG_COLUMNS {
            let prefix = Oid::from_slice(mib::NLM_LOG_ENTRY).child(column);
            let after = match position(oid, &prefix) {
                Position::Before => 0,
                Position::After => continue,
                Position::At(suffix) => match suffix {
                    [] | [0] => 0,
                    [0, id, ..] => *id,
                    _ => continue,
                },
            };
            // Rows without a value in this column (none today) would be skipped by asking again.
            for row in self.rows_after(after, SCAN_BATCH) {
                if let Some(value) = row.column(column, self.started_ms) {
                    return Some(VarBind::new(prefix.join(&[0, row.id]), value));
                }
            }
        }
        None
    }

    fn next_variable(&self, oid: &Oid) -> Option<VarBind> {
        for column in VARIABLE_COLUMNS {
            let prefix = Oid::from_slice(mib::NLM_LOG_VARIABLE_ENTRY).child(column);
            // The first (row, variable) strictly after the position: from variable `min_var` of row
            // `start_row`, then every variable of later rows.
            let (start_row, min_var) = match position(oid, &prefix) {
                Position::Before => (1, 1),
                Position::After => continue,
                Position::At(suffix) => match suffix {
                    [] | [0] => (1, 1),
                    // [0, id] sorts before [0, id, 1].
                    [0, id] => (*id, 1),
                    [0, id, var, ..] => match var.checked_add(1) {
                        Some(next) => (*id, next),
                        None => match id.checked_add(1) {
                            Some(row) => (row, 1),
                            None => continue,
                        },
                    },
                    _ => continue,
                },
            };
            let mut after_row = start_row.saturating_sub(1);
            loop {
                let rows = self.rows_after(after_row, SCAN_BATCH);
                let Some(last) = rows.last().map(|r| r.id) else { break };
                for row in rows {
                    let first_var = if row.id == start_row { min_var } else { 1 };
                    let count = u32::try_from(row.varbinds.len()).unwrap_or(u32::MAX);
                    for var in first_var..=count {
                        if let Some(value) = row.variable(var, column) {
                            return Some(VarBind::new(prefix.join(&[0, row.id, var]), value));
                        }
                    }
                }
                after_row = last;
            }
        }
        None
    }
}

enum Position<'a> {
    /// `oid` sorts before every instance under the prefix.
    Before,
    /// `oid` sorts after every instance under the prefix.
    After,
    /// `oid` is under the prefix; the rest of it.
    At(&'a [u32]),
}

fn position<'a>(oid: &'a Oid, prefix: &Oid) -> Position<'a> {
    if let Some(suffix) = oid.suffix_after(prefix.as_slice()) {
        return Position::At(suffix);
    }
    if oid < prefix {
        Position::Before
    } else {
        Position::After
    }
}

fn query_rows(connection: &Connection, after: u32, limit: usize) -> rusqlite::Result<Vec<LogRow>> {
    let mut statement = connection.prepare_cached(
        "SELECT id, time_ms, source, community, trap_oid, varbinds FROM notifications
         WHERE id > ?1 ORDER BY id LIMIT ?2",
    )?;
    let rows = statement.query_map(rusqlite::params![i64::from(after), limit as i64], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, i64>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, String>(3)?,
            row.get::<_, String>(4)?,
            row.get::<_, String>(5)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, time_ms, source, community, trap_oid, varbinds) = row?;
        // Indexes are Unsigned32; a store past 2^32 rows would need the log to wrap (not before ~136 years at
        // one notification a second).
        let Ok(id) = u32::try_from(id) else { break };
        let varbinds: Vec<VarBindRecord> = serde_json::from_str(&varbinds).unwrap_or_default();
        out.push(LogRow {
            id,
            time_ms,
            source: source.parse().ok(),
            community,
            trap_oid: trap_oid.parse().ok(),
            varbinds: varbinds.iter().filter_map(VarBindRecord::to_varbind).collect(),
        });
    }
    Ok(out)
}

impl MibHandler for NotificationLog {
    fn get(&self, oid: &Oid) -> GetResult {
        if let Some((_, value)) = self.scalars().into_iter().find(|(o, _)| o == oid) {
            return GetResult::Value(value);
        }
        if let Some(suffix) = oid.suffix_after(mib::NLM_LOG_ENTRY) {
            return match suffix {
                [column, 0, id] if LOG_COLUMNS.contains(column) => self
                    .row(*id)
                    .and_then(|row| row.column(*column, self.started_ms))
                    .map_or(GetResult::NoSuchInstance, GetResult::Value),
                [column, ..] if LOG_COLUMNS.contains(column) => GetResult::NoSuchInstance,
                _ => GetResult::NoSuchObject,
            };
        }
        if let Some(suffix) = oid.suffix_after(mib::NLM_LOG_VARIABLE_ENTRY) {
            return match suffix {
                [column, 0, id, var] if VARIABLE_COLUMNS.contains(column) => self
                    .row(*id)
                    .and_then(|row| row.variable(*var, *column))
                    .map_or(GetResult::NoSuchInstance, GetResult::Value),
                [column, ..] if VARIABLE_COLUMNS.contains(column) => GetResult::NoSuchInstance,
                _ => GetResult::NoSuchObject,
            };
        }
        // A known scalar or config/stats column with another instance.
        let known = [
            mib::NLM_CONFIG_GLOBAL_ENTRY_LIMIT,
            mib::NLM_CONFIG_GLOBAL_AGE_OUT,
            mib::NLM_STATS_GLOBAL_NOTIFICATIONS_LOGGED,
            mib::NLM_STATS_GLOBAL_NOTIFICATIONS_BUMPED,
        ];
        let known_column = |entry: &[u32], columns: std::ops::RangeInclusive<u32>| matches!(oid.suffix_after(entry), Some([c, ..]) if columns.contains(c));
        if known.iter().any(|node| oid.starts_with(node))
            || known_column(mib::NLM_CONFIG_LOG_ENTRY, 2..=7)
            || known_column(mib::NLM_STATS_LOG_ENTRY, 1..=2)
        {
            GetResult::NoSuchInstance
        } else {
            GetResult::NoSuchObject
        }
    }

    fn get_next(&self, oid: &Oid) -> Option<VarBind> {
        // The config and stats groups sort before the log (nlmConfig.1, nlmStats.2, nlmLog.3).
        if let Some((o, v)) = self.scalars().into_iter().filter(|(o, _)| o > oid).min_by(|a, b| a.0.cmp(&b.0)) {
            return Some(VarBind::new(o, v));
        }
        self.next_log_entry(oid).or_else(|| self.next_variable(oid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oid(arcs: &[u32]) -> Oid {
        Oid::from_slice(arcs)
    }

    #[test]
    fn positions_relative_to_a_column() {
        let prefix = oid(&[1, 3, 6, 1, 2, 1, 92, 1, 3, 1, 1, 2]);
        assert!(matches!(position(&oid(&[1, 3, 6, 1, 2, 1, 92]), &prefix), Position::Before));
        assert!(matches!(position(&oid(&[1, 3, 6, 1, 2, 1, 92, 1, 3, 1, 1, 3]), &prefix), Position::After));
        assert!(matches!(position(&prefix.join(&[0, 7]), &prefix), Position::At([0, 7])));
    }

    #[test]
    fn variable_types_pick_their_value_column() {
        let row = LogRow {
            id: 1,
            time_ms: 0,
            source: None,
            community: String::new(),
            trap_oid: None,
            varbinds: vec![
                VarBind::new(oid(&[1, 3, 6, 1]), Value::Integer(5)),
                VarBind::new(oid(&[1, 3, 6, 2]), Value::Null),
                VarBind::new(oid(&[1, 3, 6, 3]), Value::string("x")),
            ],
        };
        assert_eq!(row.variable(1, 3), Some(Value::Integer(4)));
        assert_eq!(row.variable(1, 7), Some(Value::Integer(5)));
        assert_eq!(row.variable(1, 8), None);
        assert_eq!(row.variable(2, 2), None, "NULL has no value column, so no row");
        assert_eq!(row.variable(3, 8), Some(Value::string("x")));
        assert_eq!(row.variable(0, 2), None);
        assert_eq!(row.variable(4, 2), None);
    }

    #[test]
    fn transport_address_is_ip_then_port() {
        let row = LogRow {
            id: 1,
            time_ms: 1_000,
            source: Some("127.0.0.11:1161".parse().unwrap()),
            community: "public".into(),
            trap_oid: Some(oid(&[1, 3, 6, 1, 6, 3, 1, 1, 5, 1])),
            varbinds: Vec::new(),
        };
        assert_eq!(row.column(5, 0), Some(Value::OctetString(vec![127, 0, 0, 11, 0x04, 0x89])));
        assert_eq!(row.column(6, 0), Some(Value::ObjectId(oid(mib::SNMP_UDP_DOMAIN))));
        assert_eq!(row.column(2, 0), Some(Value::TimeTicks(100)));
        assert_eq!(row.column(2, 5_000), Some(Value::TimeTicks(0)), "logged before this run: 0");
    }
}
