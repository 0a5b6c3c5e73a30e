//! Mirrored volumes on the host side: reads this host's replicas from the station's dvsanStationReplicaTable,
//! groups them by mirrored volume for `list`, finds one for `release`, and [`resolve`]s a volume name to the NBD
//! targets `dvsan-host serve` (the host front, crate `dvsan-front`) connects to.
//!
//! [`report`] is the other direction: the front tells the station each replica's state, dirty bytes and resync
//! progress (dvsanStationFrontTable), which is also its heartbeat.
//!
//! The station shows a requester only the replicas of the mirrored volumes it asked for, so the table is read as
//! the session's writer (its SNMPv3 user or write community), as the assignment table is.

use crate::{ip_of, number, text, Session};
use anyhow::{bail, Context, Result};
use dvsan_front::ReplicaTarget;
use dvsan_mib as mib;
use dvsan_snmp::{Oid, Value, VarBind};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// One row of dvsanStationReplicaTable.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Replica {
    pub mirror: u32,
    pub replica: u32,
    pub name: String,
    #[serde(skip)]
    pub host: Option<IpAddr>,
    pub count: u32,
    pub size_bytes: u64,
    pub unit: u32,
    pub volume: u32,
    pub zone: String,
    pub nbd_uri: String,
    pub unit_state: &'static str,
}

/// A mirrored volume of this host, with its replicas in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    pub index: u32,
    pub name: String,
    pub size_bytes: u64,
    pub replicas: Vec<Replica>,
}

fn unit_state(code: i64) -> &'static str {
    use mib::dvsan_station_replica_unit_state as s;
    match code {
        c if c == i64::from(s::AVAILABLE) => "available",
        c if c == i64::from(s::UNAVAILABLE) => "unavailable",
        c if c == i64::from(s::UNREACHABLE) => "unreachable",
        c if c == i64::from(s::ERROR) => "error",
        _ => "unknown",
    }
}

/// This host's mirrored volumes (the replica rows whose host is this host), by index.
pub async fn mirrors(session: &Session) -> Result<Vec<Mirror>> {
    let entry = mib::DVSAN_STATION_REPLICA_ENTRY;
    let rows = session
        .manager
        .walk(session.write.as_ref().unwrap_or(&session.read), &Oid::from_slice(entry))
        .await
        .map_err(|e| session.station_error(session.write.is_some(), e))
        .context("reading the station's replicas")?;
    let mut by_index: BTreeMap<(u32, u32), Replica> = BTreeMap::new();
    for vb in rows {
        let Some(&[column, mirror, replica]) = vb.oid.as_slice().get(entry.len()..) else { continue };
        let row = by_index.entry((mirror, replica)).or_insert_with(|| Replica {
            mirror,
            replica,
            name: String::new(),
            host: None,
            count: 0,
            size_bytes: 0,
            unit: 0,
            volume: 0,
            zone: String::new(),
            nbd_uri: String::new(),
            unit_state: "unknown",
        });
        match (column, &vb.value) {
            (3, v) => row.name = text(v),
            (5, Value::OctetString(b)) => row.host = ip_of(b),
            (6, v) => row.count = number(v),
            (7, v) => row.size_bytes = u64::from(number(v)) * 1024,
            (8, v) => row.unit = number(v),
            (9, v) => row.volume = number(v),
            (10, v) => row.zone = text(v),
            (11, v) => row.nbd_uri = text(v),
            (12, Value::Integer(code)) => row.unit_state = unit_state(i64::from(*code)),
            _ => {}
        }
    }
    let mut mirrors: Vec<Mirror> = Vec::new();
    for ((mirror, _), row) in by_index {
        if row.host != Some(session.host) {
            continue;
        }
        match mirrors.last_mut() {
            Some(m) if m.index == mirror => m.replicas.push(row),
            _ => mirrors.push(Mirror {
                index: mirror,
                name: row.name.clone(),
                size_bytes: row.size_bytes,
                replicas: vec![row],
            }),
        }
    }
    Ok(mirrors)
}

/// The mirrored volume `given` names: its name, `mirrorN`, its index N, or `UNIT/VOLUME` of one of its replicas.
pub fn find<'a>(mirrors: &'a [Mirror], given: &str) -> Option<&'a Mirror> {
    let by_index = given.split_once('/').and_then(|(u, v)| Some((u.parse::<u32>().ok()?, v.parse::<u32>().ok()?)));
    let number = given.strip_prefix("mirror").unwrap_or(given).parse::<u32>().ok();
    mirrors.iter().find(|m| {
        m.name == given
            || number == Some(m.index)
            || by_index.is_some_and(|(u, v)| m.replicas.iter().any(|r| r.unit == u && r.volume == v))
    })
}

/// `nbd://IP:PORT/EXPORT` → a target on `unit`.
fn target(unit: u32, uri: &str) -> Result<ReplicaTarget> {
    if uri.is_empty() {
        bail!("unit #{unit} has no NBD address known to the station (its data service is not serving)");
    }
    let (address, export) = crate::parse_uri(uri)?;
    Ok(ReplicaTarget { unit, address: address.ip(), port: address.port(), export })
}

/// The NBD targets of this host's volume `volume`: every replica of a mirrored volume (by name, `mirrorN`, N, or
/// `UNIT/VOLUME` of a replica), in replica order; or the one export of an ordinary volume assigned to this host
/// (by `UNIT/VOLUME` or name, as `dvsan-host list` shows it). The error says what this host has.
pub async fn resolve(session: &Session, volume: &str) -> Result<Vec<ReplicaTarget>> {
    Ok(resolve_served(session, volume).await?.targets)
}

/// What `serve VOLUME` serves: [`resolve`]'s targets and, for a mirrored volume, which one it is (for its reports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub targets: Vec<ReplicaTarget>,
    /// A mirrored volume: its index (dvsanStationMirrorIndex) and each target's replica number, in target order.
    pub mirror: Option<(u32, Vec<u32>)>,
}

/// [`resolve`], saying also which mirrored volume and replicas the targets are.
pub async fn resolve_served(session: &Session, volume: &str) -> Result<Resolved> {
    let mirrors = mirrors(session).await?;
    if let Some(m) = find(&mirrors, volume) {
        let targets = m.replicas.iter().map(|r| target(r.unit, &r.nbd_uri)).collect::<Result<Vec<_>>>()?;
        let numbers = m.replicas.iter().map(|r| r.replica).collect();
        return Ok(Resolved { targets, mirror: Some((m.index, numbers)) });
    }
    let row = crate::find(session, volume).await?;
    Ok(Resolved { targets: vec![target(row.unit, &row.nbd_uri)?], mirror: None })
}

/// The replica states a front reports (dvsanStationFrontReplicaState), by their MIB names.
pub const STATES: [(&str, i32); 5] = [
    ("unknown", mib::dvsan_station_front_replica_state::UNKNOWN),
    ("inSync", mib::dvsan_station_front_replica_state::IN_SYNC),
    ("outOfSync", mib::dvsan_station_front_replica_state::OUT_OF_SYNC),
    ("resyncing", mib::dvsan_station_front_replica_state::RESYNCING),
    ("failed", mib::dvsan_station_front_replica_state::FAILED),
];

/// A state name (any case) → its MIB number; the error lists the valid names.
pub fn parse_state(text: &str) -> Result<i32, String> {
    STATES.iter().find(|(name, _)| name.eq_ignore_ascii_case(text.trim())).map(|(_, code)| *code).ok_or_else(|| {
        let names: Vec<&str> = STATES.iter().map(|(name, _)| *name).collect();
        format!("{text:?} is not a replica state; give one of {}", names.join(", "))
    })
}

/// What a front reports about one replica of a mirrored volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaReport {
    /// The replica's number (dvsanStationReplicaIndex).
    pub replica: u32,
    /// A dvsanStationFrontReplicaState number ([`STATES`]).
    pub state: i32,
    pub dirty_bytes: u64,
    pub resync_percent: u32,
}

/// Reports `reports` for this host's mirrored volume `volume` (as [`find`] names it) to the station in one SET
/// (dvsanStationFrontTable), which the station also takes as the front's heartbeat.
pub async fn report(session: &Session, volume: &str, reports: &[ReplicaReport]) -> Result<()> {
    let mirrors = mirrors(session).await?;
    let Some(m) = find(&mirrors, volume) else {
        bail!("{volume:?} is not one of this host's ({}) mirrored volumes; `dvsan-host list` shows them", session.host);
    };
    let mut set = Vec::new();
    for r in reports {
        if !m.replicas.iter().any(|x| x.replica == r.replica) {
            bail!("mirrored volume {} has replicas 1 to {}, not {}", m.name, m.replicas.len(), r.replica);
        }
        if r.resync_percent > 100 {
            bail!("a resync is 0 to 100 percent done, not {}", r.resync_percent);
        }
        let cell = |column: &[u32]| Oid::from_slice(column).child(m.index).child(r.replica);
        let kib = u32::try_from(r.dirty_bytes.div_ceil(1024)).unwrap_or(u32::MAX);
        set.push(VarBind::new(cell(mib::DVSAN_STATION_FRONT_REPLICA_STATE), Value::Integer(r.state)));
        set.push(VarBind::new(cell(mib::DVSAN_STATION_FRONT_DIRTY_KI_B), Value::Gauge32(kib)));
        set.push(VarBind::new(cell(mib::DVSAN_STATION_FRONT_RESYNC_PERCENT), Value::Gauge32(r.resync_percent)));
    }
    session
        .manager
        .set(session.write()?, set)
        .await
        .map_err(|e| session.station_error(true, e))
        .context("reporting the replicas' state to the station")?;
    Ok(())
}

/// `targets VOLUME`: [`resolve`]d, one line per target or a JSON array.
pub async fn print_targets(session: &Session, volume: &str, json: bool) -> Result<()> {
    let targets = resolve(session, volume).await?;
    if json {
        let rows: Vec<serde_json::Value> = targets
            .iter()
            .map(|t| serde_json::json!({"unit": t.unit, "address": t.address, "port": t.port, "export": t.export}))
            .collect();
        println!("{}", serde_json::Value::Array(rows));
    } else {
        for t in &targets {
            println!("{} {} {} {}", t.unit, t.address, t.port, t.export);
        }
    }
    Ok(())
}

/// `list` of the mirrored volumes: one JSON object per mirrored volume, or one line per replica.
pub fn print(mirrors: &[Mirror], json: bool) {
    for m in mirrors {
        if json {
            let out = serde_json::json!({
                "mirror": m.index, "name": m.name, "size_bytes": m.size_bytes, "replicas": m.replicas,
            });
            println!("{out}");
        } else {
            println!("mirror {} {:?} ({} bytes, {} replicas)", m.index, m.name, m.size_bytes, m.replicas.len());
            for r in &m.replicas {
                let zone = if r.zone.is_empty() { String::new() } else { format!(" zone {}", r.zone) };
                println!("  {}/{} {} ({}{zone})", r.unit, r.volume, r.nbd_uri, r.unit_state);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica(mirror: u32, replica: u32, unit: u32, volume: u32) -> Replica {
        Replica {
            mirror,
            replica,
            name: "db".to_string(),
            host: None,
            count: 2,
            size_bytes: 1 << 20,
            unit,
            volume,
            zone: String::new(),
            nbd_uri: format!("nbd://127.0.0.{unit}:10809/vol{volume}"),
            unit_state: "available",
        }
    }

    #[test]
    fn finds_a_mirror_by_name_index_or_replica() {
        let m = Mirror {
            index: 4,
            name: "db".to_string(),
            size_bytes: 1 << 20,
            replicas: vec![replica(4, 1, 1, 3), replica(4, 2, 2, 1)],
        };
        let all = [m];
        for given in ["db", "mirror4", "4", "2/1", "1/3"] {
            assert_eq!(find(&all, given).map(|m| m.index), Some(4), "{given}");
        }
        for given in ["other", "mirror5", "2/3"] {
            assert!(find(&all, given).is_none(), "{given}");
        }
        let t = target(2, "nbd://127.0.0.2:10809/vol1").unwrap();
        assert_eq!(t, ReplicaTarget { unit: 2, address: [127, 0, 0, 2].into(), port: 10809, export: "vol1".into() });
        assert!(target(2, "").unwrap_err().to_string().contains("unit #2"));
    }
}
