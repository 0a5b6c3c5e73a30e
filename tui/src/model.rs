//! The console's view of the pool: units, volumes, partitions, traffic rates and notifications, as the
//! sources deliver them. Plain data, no I/O, so screens can be rendered from hand-made values in tests.

use std::fmt;
use std::net::SocketAddr;

/// A unit's state as the station reports it (dvsanStationUnitState).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnitState {
    Available,
    Unavailable,
    Unreachable,
    Error,
    /// A value this console does not know.
    Unknown(i32),
}

impl UnitState {
    pub fn from_code(code: i32) -> UnitState {
        match code {
            1 => UnitState::Available,
            2 => UnitState::Unavailable,
            3 => UnitState::Unreachable,
            4 => UnitState::Error,
            other => UnitState::Unknown(other),
        }
    }
}

impl fmt::Display for UnitState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnitState::Available => f.write_str("available"),
            UnitState::Unavailable => f.write_str("unavailable"),
            UnitState::Unreachable => f.write_str("unreachable"),
            UnitState::Error => f.write_str("error"),
            UnitState::Unknown(code) => write!(f, "state {code}"),
        }
    }
}

/// One row of dvsanStationUnitTable.
#[derive(Clone, Debug, PartialEq)]
pub struct Unit {
    /// The station's number for the unit (dvsanStationUnitIndex).
    pub index: u32,
    pub id: String,
    pub name: String,
    pub state: UnitState,
    pub reason: String,
    /// The unit's SNMP agent, when the station knows it.
    pub agent: Option<SocketAddr>,
    pub block_size: u32,
    pub capacity_blocks: u32,
    pub free_blocks: u32,
    pub volumes: u32,
    /// Unix seconds (UTC) of the last answer or notification; `None` when never heard from.
    pub last_seen_unix: Option<i64>,
}

impl Unit {
    pub fn capacity_bytes(&self) -> u64 {
        u64::from(self.capacity_blocks) * u64::from(self.block_size)
    }
    pub fn free_bytes(&self) -> u64 {
        u64::from(self.free_blocks) * u64::from(self.block_size)
    }
    /// The name people know the unit by: its name, else its id, else its index.
    pub fn label(&self) -> String {
        if !self.name.is_empty() {
            self.name.clone()
        } else if !self.id.is_empty() {
            self.id.chars().take(8).collect()
        } else {
            format!("#{}", self.index)
        }
    }
}

/// One row of dvsanStationVolumeTable.
#[derive(Clone, Debug, PartialEq)]
pub struct Volume {
    pub unit_index: u32,
    pub index: u32,
    pub name: String,
    pub start_lba: u32,
    pub end_lba: u32,
    pub length_blocks: u32,
    pub export: String,
    pub available: bool,
}

/// One row of dvsanStationPartitionTable.
#[derive(Clone, Debug, PartialEq)]
pub struct Partition {
    pub unit_index: u32,
    pub volume_index: u32,
    pub index: u32,
    pub start_lba: u32,
    pub end_lba: u32,
    pub length_blocks: u32,
    pub export: String,
    pub available: bool,
}

/// The station's pool at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Pool {
    pub units: Vec<Unit>,
    pub volumes: Vec<Volume>,
    pub partitions: Vec<Partition>,
}

impl Pool {
    pub fn unit(&self, index: u32) -> Option<&Unit> {
        self.units.iter().find(|u| u.index == index)
    }
}

/// Per-second rates of one (unit, export, host) row of a unit's dvsanTrafficTable.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rates {
    pub reads: f64,
    pub writes: f64,
    pub bytes_read: f64,
    pub bytes_written: f64,
}

/// Activity of one host on one export of one unit.
#[derive(Clone, Debug, PartialEq)]
pub struct Traffic {
    pub unit_index: u32,
    pub unit_label: String,
    pub export: String,
    pub host: String,
    /// `None` until two samples have been taken.
    pub rates: Option<Rates>,
}

/// One notification from the station's log.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    pub id: i64,
    /// As the station prints it (RFC 3339, UTC).
    pub time: String,
    pub source: String,
    /// The notification's name, e.g. `linkDown` or `dvsanLayoutChanged`.
    pub type_name: String,
    pub unit_id: Option<String>,
    /// The varbinds, `name=value` separated by spaces.
    pub details: String,
}

/// What one refresh of the pool source produced.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// Unix seconds when the snapshot was taken.
    pub taken_unix: i64,
    /// The pool, or why the station could not be read (plain words).
    pub pool: Result<Pool, String>,
    pub traffic: Vec<Traffic>,
    /// Units whose traffic table could not be read, with why.
    pub traffic_errors: Vec<String>,
}

/// How the notification tail is doing.
#[derive(Clone, Debug, PartialEq)]
pub enum TailStatus {
    /// No `--station-state-dir`: the tail has nothing to follow.
    NeedsStateDir,
    Following,
    /// The tail stopped, with why.
    Stopped(String),
}

/// Now, in Unix seconds.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// `secs` as a short age: `4s`, `12m`, `3h`, `2d`.
pub fn short_age(secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m", secs / 60),
        3600..=86_399 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// A rate for people: `0`, `12.5`, `3.2k`, `1.1M`.
pub fn short_rate(value: f64) -> String {
    if value < 0.05 {
        "0".to_string()
    } else if value < 1000.0 {
        format!("{value:.1}")
    } else if value < 1_000_000.0 {
        format!("{:.1}k", value / 1000.0)
    } else {
        format!("{:.1}M", value / 1_000_000.0)
    }
}

/// Bytes per second for people: `0 B/s`, `4.0 KiB/s`, `12.3 MiB/s`.
pub fn byte_rate(value: f64) -> String {
    const UNITS: [&str; 4] = ["B/s", "KiB/s", "MiB/s", "GiB/s"];
    let mut value = value.max(0.0);
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} {}", UNITS[0])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_rates_read_well() {
        assert_eq!(short_age(-3), "0s");
        assert_eq!(short_age(59), "59s");
        assert_eq!(short_age(61), "1m");
        assert_eq!(short_age(7200), "2h");
        assert_eq!(short_age(200_000), "2d");
        assert_eq!(short_rate(0.0), "0");
        assert_eq!(short_rate(12.46), "12.5");
        assert_eq!(short_rate(3200.0), "3.2k");
        assert_eq!(byte_rate(100.0), "100 B/s");
        assert_eq!(byte_rate(4096.0), "4.0 KiB/s");
        assert_eq!(byte_rate(3.0 * 1024.0 * 1024.0), "3.0 MiB/s");
    }

    #[test]
    fn unit_labels_fall_back_to_id_then_index() {
        let mut unit = Unit {
            index: 7,
            id: String::new(),
            name: String::new(),
            state: UnitState::from_code(9),
            reason: String::new(),
            agent: None,
            block_size: 4096,
            capacity_blocks: 2,
            free_blocks: 1,
            volumes: 0,
            last_seen_unix: None,
        };
        assert_eq!(unit.label(), "#7");
        unit.id = "0123456789abcdef".into();
        assert_eq!(unit.label(), "01234567");
        unit.name = "u1".into();
        assert_eq!(unit.label(), "u1");
        assert_eq!(unit.capacity_bytes(), 8192);
        assert_eq!(unit.state.to_string(), "state 9");
    }
}
