//! What `pool` and `traps` print: aligned tables for people, stable JSON for scripts.
//!
//! `pool --json` is one object `{"units": [...]}` whose unit, volume and partition fields are those of
//! [`PoolUnit`]; `traps --json` prints one JSON object per line (see [`TrapJson`]) so that `--follow` output can
//! be consumed line by line.

use crate::model::{MirrorView, PoolPartition, PoolUnit, PoolVolume};
use crate::notification::{describe_dotted, NotificationRecord, VarBindRecord};
use crate::timefmt::{format_age, format_ms};
use dvsan_layout::HumanSize;
use serde::Serialize;

/// A text table with a header row; columns are left-aligned except those marked numeric.
pub struct Table {
    headers: Vec<&'static str>,
    numeric: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(columns: &[(&'static str, bool)]) -> Table {
        Table {
            headers: columns.iter().map(|c| c.0).collect(),
            numeric: columns.iter().map(|c| c.1).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.len()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                if let Some(w) = widths.get_mut(i) {
                    *w = (*w).max(cell.chars().count());
                }
            }
        }
        let mut out = String::new();
        let headers: Vec<String> = self.headers.iter().map(|h| h.to_string()).collect();
        for row in std::iter::once(&headers).chain(self.rows.iter()) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                let width = widths.get(i).copied().unwrap_or(0);
                let pad = width.saturating_sub(cell.chars().count());
                if i > 0 {
                    line.push_str("  ");
                }
                if self.numeric.get(i).copied().unwrap_or(false) {
                    line.push_str(&" ".repeat(pad));
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    line.push_str(&" ".repeat(pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

fn size(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "-".to_string(), |b| HumanSize(b).to_string())
}

/// A short label for a unit in the volume tables: its name, else its index.
fn unit_label(unit: &PoolUnit) -> String {
    if unit.name.is_empty() {
        format!("#{}", unit.index)
    } else {
        unit.name.clone()
    }
}

/// The human `pool` view: units, then volumes, then partitions.
pub fn pool_text(pool: &[PoolUnit], now_ms: i64) -> String {
    if pool.is_empty() {
        return "The pool is empty: no unit has been found yet. Units join when they send a notification to the \
                station, or with `dvsan-station unit add ADDR`.\n"
            .to_string();
    }
    let mut units = Table::new(&[
        ("#", true),
        ("UNIT ID", false),
        ("NAME", false),
        ("STATE", false),
        ("ADDRESS", false),
        ("CAPACITY", true),
        ("FREE", true),
        ("VOLUMES", true),
        ("LAST SEEN", false),
        ("REASON", false),
    ]);
    let mut volumes = Table::new(&[
        ("UNIT", false),
        ("VOLUME", true),
        ("NAME", false),
        ("START LBA", true),
        ("END LBA", true),
        ("LENGTH", true),
        ("SIZE", true),
        ("EXPORT", false),
        ("STATE", false),
    ]);
    let mut partitions = Table::new(&[
        ("UNIT", false),
        ("VOLUME", true),
        ("PARTITION", true),
        ("START LBA", true),
        ("END LBA", true),
        ("LENGTH", true),
        ("SIZE", true),
        ("EXPORT", false),
        ("STATE", false),
    ]);
    for unit in pool {
        units.row(unit_row(unit, now_ms));
        for volume in &unit.volumes {
            volumes.row(volume_row(unit, volume));
            for partition in &volume.partitions {
                partitions.row(partition_row(unit, volume, partition));
            }
        }
    }
    let mut out = String::from("UNITS\n");
    out.push_str(&units.render());
    out.push_str("\nVOLUMES\n");
    if volumes.is_empty() {
        out.push_str("(none)\n");
    } else {
        out.push_str(&volumes.render());
    }
    if !partitions.is_empty() {
        out.push_str("\nPARTITIONS\n");
        out.push_str(&partitions.render());
    }
    let labelled: Vec<&PoolUnit> = pool.iter().filter(|u| !u.zone.is_empty() || u.spare).collect();
    if !labelled.is_empty() {
        let mut labels = Table::new(&[("UNIT", false), ("ZONE", false), ("SPARE", false)]);
        for unit in labelled {
            let zone = if unit.zone.is_empty() { "-".to_string() } else { unit.zone.clone() };
            labels.row(vec![unit_label(unit), zone, if unit.spare { "spare" } else { "-" }.to_string()]);
        }
        out.push_str("\nUNIT LABELS\n");
        out.push_str(&labels.render());
    }
    out
}

/// What the host's front last reported about a replica: `inSync (3s ago)`, `outOfSync, 4M dirty (1s ago)`,
/// `resyncing 40%, 2M dirty (0s ago)`; `-` before any report.
fn front_text(front: Option<&crate::model::FrontReport>, now_ms: i64) -> String {
    let Some(f) = front else { return "-".to_string() };
    let mut text = f.state.clone();
    if f.state == "resyncing" {
        text.push_str(&format!(" {}%", f.resync_percent));
    }
    if f.dirty_bytes > 0 {
        text.push_str(&format!(", {} dirty", size(Some(f.dirty_bytes))));
    }
    text.push_str(&format!(" ({} ago)", format_age(now_ms - f.reported_ms)));
    text
}

/// The MIRRORED VOLUMES section of `pool` (empty when there are none): one line per replica, with what the host's
/// front last reported about it.
pub fn mirrors_text(mirrors: &[MirrorView], now_ms: i64) -> String {
    if mirrors.is_empty() {
        return String::new();
    }
    let mut table = Table::new(&[
        ("MIRROR", true),
        ("NAME", false),
        ("HOST", false),
        ("SIZE", true),
        ("REPLICA", true),
        ("UNIT", true),
        ("VOLUME", true),
        ("ZONE", false),
        ("UNIT STATE", false),
        ("FRONT", false),
        ("NBD URI", false),
    ]);
    for m in mirrors {
        for r in &m.replicas {
            table.row(vec![
                m.index.to_string(),
                m.name.clone(),
                m.host.to_string(),
                size(Some(m.size_bytes)),
                r.replica.to_string(),
                r.unit.to_string(),
                r.volume.to_string(),
                if r.zone.is_empty() { "-".to_string() } else { r.zone.clone() },
                r.unit_state.to_string(),
                front_text(r.front.as_ref(), now_ms),
                r.nbd_uri.clone().unwrap_or_else(|| "-".to_string()),
            ]);
        }
    }
    format!("\nMIRRORED VOLUMES\n{}", table.render())
}

/// A unit's line of the UNITS table.
fn unit_row(unit: &PoolUnit, now_ms: i64) -> Vec<String> {
    let last_seen = match &unit.last_seen {
        Some(text) => match crate::timefmt::parse_since(text, now_ms) {
            Ok(ms) => format!("{text} ({} ago)", format_age(now_ms - ms)),
            Err(_) => text.clone(),
        },
        None => "never".to_string(),
    };
    vec![
        unit.index.to_string(),
        unit.unit_id.clone().unwrap_or_else(|| "-".to_string()),
        if unit.name.is_empty() { "-".to_string() } else { unit.name.clone() },
        unit.state.to_string(),
        address_text(unit),
        size(unit.capacity_bytes),
        size(unit.free_bytes),
        unit.volumes.len().to_string(),
        last_seen,
        unit.reason.clone(),
    ]
}

/// A volume's line of the VOLUMES table.
fn volume_row(unit: &PoolUnit, volume: &PoolVolume) -> Vec<String> {
    vec![
        unit_label(unit),
        volume.index.to_string(),
        volume.name.clone(),
        volume.start_lba.to_string(),
        volume.end_lba.to_string(),
        volume.length.to_string(),
        size(volume.size_bytes),
        volume.export_name.clone(),
        volume_state_text(volume),
    ]
}

/// A partition's line of the PARTITIONS table.
fn partition_row(unit: &PoolUnit, volume: &PoolVolume, partition: &PoolPartition) -> Vec<String> {
    vec![
        unit_label(unit),
        volume.index.to_string(),
        partition.index.to_string(),
        partition.start_lba.to_string(),
        partition.end_lba.to_string(),
        partition.length.to_string(),
        size(partition.size_bytes),
        partition.export_name.clone(),
        partition.state.to_string(),
    ]
}

#[derive(Serialize)]
struct PoolJson<'a> {
    units: &'a [PoolUnit],
    /// Mirrored volumes with their replicas (left out when there are none, as before mirrors existed).
    #[serde(skip_serializing_if = "<[MirrorView]>::is_empty")]
    mirrors: &'a [MirrorView],
}

/// The `pool --json` document.
pub fn pool_json(pool: &[PoolUnit], mirrors: &[MirrorView]) -> String {
    serde_json::to_string_pretty(&PoolJson { units: pool, mirrors })
        .unwrap_or_else(|_| "{\"units\":[],\"mirrors\":[]}".to_string())
}

/// One varbind in `traps --json`: the stored form plus its name.
#[derive(Serialize)]
pub struct NamedVarBind<'a> {
    pub name: String,
    #[serde(flatten)]
    pub varbind: &'a VarBindRecord,
}

/// One notification in `traps --json`.
#[derive(Serialize)]
pub struct TrapJson<'a> {
    pub id: i64,
    pub time: String,
    pub time_ms: i64,
    pub source: String,
    pub version: &'a str,
    pub community: &'a str,
    pub kind: &'static str,
    pub uptime: Option<u32>,
    pub trap_oid: &'a str,
    pub trap_name: String,
    pub unit_id: Option<&'a str>,
    pub varbinds: Vec<NamedVarBind<'a>>,
}

pub fn trap_json(record: &NotificationRecord) -> String {
    let json = TrapJson {
        id: record.id,
        time: format_ms(record.time_ms),
        time_ms: record.time_ms,
        source: record.source.to_string(),
        version: &record.version,
        community: &record.community,
        kind: record.kind.as_str(),
        uptime: record.uptime,
        trap_oid: &record.trap_oid,
        trap_name: record.trap_name(),
        unit_id: record.unit_id.as_deref(),
        varbinds: record
            .varbinds
            .iter()
            .map(|vb| NamedVarBind { name: describe_dotted(&vb.oid), varbind: vb })
            .collect(),
    };
    serde_json::to_string(&json).unwrap_or_default()
}

/// The unit's agent address; `NAME:PORT (IP:PORT)` for a unit registered by host name.
fn address_text(unit: &PoolUnit) -> String {
    match (&unit.address, unit.host_name.is_empty()) {
        (Some(address), false) => {
            let port = address.rsplit_once(':').map_or("", |(_, port)| port);
            format!("{}:{port} ({address})", unit.host_name)
        }
        (Some(address), true) => address.clone(),
        (None, false) => format!("{} (not resolved)", unit.host_name),
        (None, true) => "-".to_string(),
    }
}

/// A volume's state in `pool`: its availability, and why the station will not hand it out (`clearing N%`, a
/// `foreign grant` the station did not make, with the hosts).
fn volume_state_text(volume: &crate::model::PoolVolume) -> String {
    let mut text = volume.state.to_string();
    if let Some(percent) = volume.clearing {
        text.push_str(&format!(", clearing {percent}%"));
    }
    if !volume.foreign_grants.is_empty() {
        text.push_str(&format!(", foreign grant ({})", volume.foreign_grants.join(" ")));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let mut t = Table::new(&[("NAME", false), ("N", true)]);
        t.row(vec!["a".into(), "1".into()]);
        t.row(vec!["long name".into(), "100".into()]);
        assert_eq!(t.render(), "NAME         N\na            1\nlong name  100\n");
    }
}
