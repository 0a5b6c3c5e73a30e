//! The notification tail over SNMP: follows the station's NOTIFICATION-LOG-MIB (RFC 3014) log, so the console
//! shows the notifications the station received from anywhere on the network, without the station's files.
//!
//! The station's log is the null-named one and its `nlmLogIndex` only grows, so following is "everything after
//! the last index seen": a GETBULK over three columns of nlmLogTable, then the rows' variables from
//! nlmLogVariableTable (their types first, then one GET for the values, each in its type's column). At the start
//! the newest index is found by binary search with GETNEXT (about 32 requests), and the last [`BACKLOG`] rows
//! are read. Every loop is bounded by a row or request count.

use super::tail::BACKLOG;
use super::Update;
use crate::model::{Notification, TailStatus};
use dvsan_mib as mib;
use dvsan_snmp::manager::Target;
use dvsan_snmp::usm::UsmUser;
use dvsan_snmp::{DateAndTime, Manager, Oid, SnmpError, Value};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

/// Rows read per poll at most; a longer backlog is read over several polls.
const ROWS_PER_POLL: usize = 200;
/// Repetitions asked for in one GETBULK.
const REPETITIONS: u32 = 25;
/// Values asked for in one GET.
const VALUES_PER_GET: usize = 32;

const LOG_DATE_AND_TIME: u32 = 3;
const LOG_ENGINE_T_ADDRESS: u32 = 5;
const LOG_NOTIFICATION_ID: u32 = 9;
const VARIABLE_ID: u32 = 2;
const VARIABLE_VALUE_TYPE: u32 = 3;

/// The nlmLogVariableEntry column holding a value of nlmLogVariableValueType `kind`.
fn value_column(kind: i32) -> Option<u32> {
    Some(match kind {
        1 => 4,  // counter32
        2 => 5,  // unsigned32
        3 => 6,  // timeTicks
        4 => 7,  // integer32
        6 => 8,  // octetString
        5 => 9,  // ipAddress
        7 => 10, // objectId
        8 => 11, // counter64
        9 => 12, // opaque
        _ => return None,
    })
}

fn log_column(column: u32) -> Oid {
    Oid::from_slice(mib::NLM_LOG_ENTRY).child(column)
}

fn variable_column(column: u32) -> Oid {
    Oid::from_slice(mib::NLM_LOG_VARIABLE_ENTRY).child(column)
}

/// One variable of a notification being put together.
#[derive(Default)]
struct Variable {
    oid: Option<Oid>,
    /// The nlmLogVariableEntry column holding its value.
    column: Option<u32>,
    value: Option<Value>,
}

/// A notification being put together from the log's columns.
#[derive(Default)]
struct Row {
    time: String,
    source: String,
    type_name: String,
    /// By variable index.
    variables: BTreeMap<u32, Variable>,
}

/// Reads the station's notification log over SNMP.
pub struct LogReader {
    manager: Manager,
    target: Target,
}

impl LogReader {
    pub async fn new(station: SocketAddr, community: &str, timeout: Duration) -> std::io::Result<LogReader> {
        let bind =
            if station.is_ipv6() { SocketAddr::from(([0u16; 8], 0)) } else { SocketAddr::from(([0, 0, 0, 0], 0)) };
        Ok(LogReader {
            manager: Manager::new(bind).await?,
            target: Target::new(station, community).with_timeout(timeout, 1),
        })
    }

    /// The same reader reading the log as SNMPv3 `user`.
    pub fn with_user(mut self, user: Arc<UsmUser>) -> LogReader {
        let (addr, timeout, retries) = (self.target.addr, self.target.options.timeout, self.target.options.retries);
        self.target = Target::v3(addr, user).with_timeout(timeout, retries);
        self
    }

    /// The first log index after `after`, if any.
    async fn index_after(&self, after: u32) -> Result<Option<u32>, SnmpError> {
        let column = log_column(LOG_NOTIFICATION_ID);
        let answer = self.manager.get_next(&self.target, &[column.join(&[0, after])]).await?;
        Ok(answer.first().and_then(|vb| match vb.oid.suffix_after(column.as_slice()) {
            Some([0, id]) if *id > after => Some(*id),
            _ => None,
        }))
    }

    /// The newest index in the log; 0 when it is empty. Binary search: `lo` is always an index in the log and
    /// nothing is above `hi`.
    pub async fn newest_index(&self) -> Result<u32, SnmpError> {
        let Some(mut lo) = self.index_after(0).await? else { return Ok(0) };
        let mut hi = u32::MAX;
        // Each step at least halves hi - lo, so 33 steps are enough.
        for _ in 0..40 {
            if lo >= hi {
                break;
            }
            let mid = lo + (hi - lo) / 2;
            match self.index_after(mid).await? {
                Some(id) => lo = id,
                None => hi = mid,
            }
        }
        Ok(lo)
    }

    /// Instances of `columns` (all of one table, GETBULK in lock step) from `start` on, while `keep` accepts
    /// the row suffix; at most `max_rows` repetitions.
    async fn bulk_rows(
        &self,
        columns: &[Oid],
        start: &[u32],
        max_rows: usize,
        keep: impl Fn(&[u32]) -> bool,
    ) -> Result<Vec<(usize, Vec<u32>, Value)>, SnmpError> {
        let mut cursors: Vec<Oid> = columns.iter().map(|c| c.join(start)).collect();
        let mut out = Vec::new();
        let mut rows = 0;
        while rows < max_rows {
            let answer = self.manager.get_bulk(&self.target, 0, REPETITIONS, &cursors).await?;
            if answer.is_empty() {
                break;
            }
            let mut ended = false;
            for (i, vb) in answer.into_iter().enumerate() {
                let which = i % columns.len();
                let Some(suffix) = vb.oid.suffix_after(columns[which].as_slice()) else {
                    ended = true;
                    continue;
                };
                if vb.value == Value::EndOfMibView || !keep(suffix) || vb.oid <= cursors[which] {
                    ended = true;
                    continue;
                }
                if which == 0 {
                    rows += 1;
                }
                cursors[which] = vb.oid.clone();
                out.push((which, suffix.to_vec(), vb.value));
            }
            if ended {
                break;
            }
        }
        Ok(out)
    }

    /// The notifications after index `after` (at most `max_rows`), oldest first.
    pub async fn read_after(&self, after: u32, max_rows: usize) -> Result<Vec<Notification>, SnmpError> {
        let columns =
            [log_column(LOG_DATE_AND_TIME), log_column(LOG_ENGINE_T_ADDRESS), log_column(LOG_NOTIFICATION_ID)];
        let cells = self.bulk_rows(&columns, &[0, after], max_rows, |s| matches!(s, [0, _])).await?;
        let mut rows: BTreeMap<u32, Row> = BTreeMap::new();
        for (which, suffix, value) in cells {
            let [0, id] = suffix[..] else { continue };
            let row = rows.entry(id).or_default();
            match (which, value) {
                (0, Value::OctetString(b)) => row.time = date_and_time_text(&b),
                (1, Value::OctetString(b)) => row.source = transport_address_text(&b),
                (2, Value::ObjectId(oid)) => row.type_name = mib::describe(oid.as_slice()),
                _ => {}
            }
        }
        // Only whole rows count, and only up to the limit (GETBULK may overshoot).
        let wanted: Vec<u32> = rows.keys().copied().take(max_rows).collect();
        let Some((&first, &last)) = wanted.first().zip(wanted.last()) else { return Ok(Vec::new()) };
        rows.retain(|id, _| *id <= last);

        // The rows' variables: their OIDs and types, then their values.
        let variable_columns = [variable_column(VARIABLE_ID), variable_column(VARIABLE_VALUE_TYPE)];
        let max_variables = wanted.len() * 64;
        let start = [0, first - 1, u32::MAX];
        let cells = self
            .bulk_rows(&variable_columns, &start, max_variables, |s| matches!(s, [0, id, _] if *id <= last))
            .await?;
        for (which, suffix, value) in cells {
            let [0, id, var] = suffix[..] else { continue };
            let Some(row) = rows.get_mut(&id) else { continue };
            let entry = row.variables.entry(var).or_default();
            match (which, value) {
                (0, Value::ObjectId(oid)) => entry.oid = Some(oid),
                (1, Value::Integer(kind)) => entry.column = value_column(kind),
                _ => {}
            }
        }
        let wanted_values: Vec<(u32, u32, Oid)> = rows
            .iter()
            .flat_map(|(id, row)| {
                row.variables
                    .iter()
                    .filter_map(move |(var, v)| Some((*id, *var, variable_column(v.column?).join(&[0, *id, *var]))))
            })
            .collect();
        for chunk in wanted_values.chunks(VALUES_PER_GET) {
            let oids: Vec<Oid> = chunk.iter().map(|(_, _, oid)| oid.clone()).collect();
            let values = self.manager.get(&self.target, &oids).await?;
            for ((id, var, _), vb) in chunk.iter().zip(values) {
                if let Some(entry) = rows.get_mut(id).and_then(|r| r.variables.get_mut(var)) {
                    entry.value = Some(vb.value);
                }
            }
        }
        Ok(rows.into_iter().map(|(id, row)| notification(id, row)).collect())
    }
}

fn notification(id: u32, row: Row) -> Notification {
    let unit_id_column = mib::DVSAN_UNIT_ID;
    let mut unit_id = None;
    let mut details = Vec::new();
    for variable in row.variables.into_values() {
        let (Some(oid), Some(value)) = (variable.oid, variable.value) else { continue };
        let text = value_text(&value);
        if oid.starts_with(unit_id_column) {
            unit_id = Some(text.clone());
        }
        details.push(format!("{}={}", mib::describe(oid.as_slice()), text));
    }
    Notification {
        id: i64::from(id),
        time: row.time,
        source: row.source,
        type_name: row.type_name,
        unit_id,
        details: details.join(" "),
    }
}

/// A value as the JSON tail shows it: text for printable strings, 0x-hex otherwise, names for OIDs.
fn value_text(value: &Value) -> String {
    match value {
        Value::OctetString(bytes) | Value::Opaque(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) if text.chars().all(|c| !c.is_control()) => text.to_string(),
            _ => format!("0x{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()),
        },
        Value::Integer(v) => v.to_string(),
        Value::Counter32(v) | Value::Gauge32(v) | Value::TimeTicks(v) => v.to_string(),
        Value::Counter64(v) => v.to_string(),
        Value::IpAddress(a) => IpAddr::from(*a).to_string(),
        Value::ObjectId(oid) => mib::describe(oid.as_slice()),
        other => format!("{other:?}"),
    }
}

/// TAddress of snmpUDPDomain (4 octets + port) or transportDomainUdpIpv6 (16 + port) as `ip:port`.
fn transport_address_text(bytes: &[u8]) -> String {
    match bytes.len() {
        6 => SocketAddr::from(([bytes[0], bytes[1], bytes[2], bytes[3]], u16::from_be_bytes([bytes[4], bytes[5]])))
            .to_string(),
        18 => {
            let mut ip = [0u8; 16];
            ip.copy_from_slice(&bytes[..16]);
            SocketAddr::from((ip, u16::from_be_bytes([bytes[16], bytes[17]]))).to_string()
        }
        _ => bytes.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

/// DateAndTime as RFC 3339 in UTC with tenths (`2026-11-22T10:00:01.2Z`), as the station prints times; empty
/// when malformed.
fn date_and_time_text(bytes: &[u8]) -> String {
    DateAndTime::decode(bytes).map(|time| time.to_string()).unwrap_or_default()
}

/// Follows the station's log over SNMP every `interval`, sending notifications and the tail's status to
/// `updates` until it closes. A station that stops answering shows as a stopped tail with the reason, and the
/// tail goes on from where it was once the station answers again.
pub fn spawn_snmp_tail(reader: LogReader, interval: Duration, updates: UnboundedSender<Update>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut cursor: Option<u32> = None;
        let mut following = false;
        let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(100)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let step = async {
                let after = match cursor {
                    Some(after) => after,
                    None => reader.newest_index().await?.saturating_sub(BACKLOG as u32),
                };
                let notifications = reader.read_after(after, ROWS_PER_POLL).await?;
                Ok::<_, SnmpError>((after, notifications))
            };
            match step.await {
                Ok((after, notifications)) => {
                    if !following {
                        following = true;
                        if updates.send(Update::Tail(TailStatus::Following)).is_err() {
                            return;
                        }
                    }
                    cursor = Some(notifications.last().map_or(after, |n| u32::try_from(n.id).unwrap_or(after)));
                    for n in notifications {
                        if updates.send(Update::Notification(n)).is_err() {
                            return;
                        }
                    }
                }
                Err(e) => {
                    following = false;
                    let why =
                        format!("cannot read the station's notification log: {}", super::snmp::plain_snmp_error(&e));
                    if updates.send(Update::Tail(TailStatus::Stopped(why))).is_err() {
                        return;
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_times_read_like_the_station_prints_them() {
        assert_eq!(transport_address_text(&[127, 0, 0, 11, 0x04, 0x89]), "127.0.0.11:1161");
        let mut v6 = vec![0u8; 16];
        v6[15] = 1;
        v6.extend_from_slice(&[0, 162]);
        assert_eq!(transport_address_text(&v6), "[::1]:162");
        assert_eq!(date_and_time_text(&[0x07, 0xEA, 11, 22, 10, 0, 1, 2, b'+', 0, 0]), "2026-11-22T10:00:01.2Z");
    }

    #[test]
    fn values_print_as_text_hex_or_names() {
        assert_eq!(value_text(&Value::string("up")), "up");
        assert_eq!(value_text(&Value::OctetString(vec![0, 255])), "0x00ff");
        assert_eq!(value_text(&Value::ObjectId(Oid::from_slice(mib::LINK_DOWN))), "linkDown");
        assert_eq!(value_text(&Value::IpAddress([10, 0, 0, 1])), "10.0.0.1");
    }

    #[test]
    fn rows_become_notifications_with_the_unit_id_taken_from_its_varbind() {
        let mut row =
            Row { time: "t".into(), source: "127.0.0.11:1161".into(), type_name: "coldStart".into(), ..Row::default() };
        let variable = |oid: Oid, column, value| Variable { oid: Some(oid), column: Some(column), value: Some(value) };
        row.variables.insert(1, variable(Oid::from_slice(mib::DVSAN_UNIT_ID).child(0), 8, Value::string("abc")));
        row.variables.insert(2, variable(Oid::from_slice(mib::IF_INDEX).child(1), 7, Value::Integer(1)));
        let n = notification(9, row);
        assert_eq!(n.unit_id.as_deref(), Some("abc"));
        assert_eq!(n.id, 9);
        assert!(n.details.ends_with("ifIndex.1=1"), "{}", n.details);
    }
}
