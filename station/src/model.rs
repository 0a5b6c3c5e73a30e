//! The pool as plain values: what a walk of one unit found, and what the store holds about each unit.
//!
//! A walk produces a [`UnitSnapshot`] (pure data, no database); the store turns it into rows and reads rows back
//! as [`PoolUnit`]s for the CLI, the station MIB and the JSON view. Everything here is `Serialize` with field
//! names that are part of the stable `pool --json` format.

use dvsan_mib::{dvsan_station_unit_state, dvsan_station_volume_state};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// What the station knows about a unit's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnitState {
    /// Answering, synced, data service up.
    Available,
    /// Answering or announced, but its data service is down (linkDown, shutdown, stopped blockd).
    Unavailable,
    /// Missed the configured number of polls.
    Unreachable,
    /// Answered the walk with garbage, errors or timeouts.
    Error,
}

impl UnitState {
    pub const ALL: [UnitState; 4] =
        [UnitState::Available, UnitState::Unavailable, UnitState::Unreachable, UnitState::Error];

    pub fn as_str(self) -> &'static str {
        match self {
            UnitState::Available => "available",
            UnitState::Unavailable => "unavailable",
            UnitState::Unreachable => "unreachable",
            UnitState::Error => "error",
        }
    }

    /// The DVSAN-STATION-MIB enumeration value (dvsanStationUnitState).
    pub fn mib_value(self) -> i32 {
        match self {
            UnitState::Available => dvsan_station_unit_state::AVAILABLE,
            UnitState::Unavailable => dvsan_station_unit_state::UNAVAILABLE,
            UnitState::Unreachable => dvsan_station_unit_state::UNREACHABLE,
            UnitState::Error => dvsan_station_unit_state::ERROR,
        }
    }
}

impl fmt::Display for UnitState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for UnitState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        UnitState::ALL.into_iter().find(|state| state.as_str() == s).ok_or_else(|| format!("unknown unit state {s:?}"))
    }
}

/// Whether a volume or partition export can be used now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Availability {
    Available,
    Unavailable,
}

impl Availability {
    pub fn as_str(self) -> &'static str {
        match self {
            Availability::Available => "available",
            Availability::Unavailable => "unavailable",
        }
    }

    pub fn from_available(available: bool) -> Availability {
        if available {
            Availability::Available
        } else {
            Availability::Unavailable
        }
    }

    /// The dvsanVolumeState / dvsanStationVolumeState enumeration value.
    pub fn mib_value(self) -> i32 {
        match self {
            // Volume and partition states share these values (checked in the tests below).
            Availability::Available => dvsan_station_volume_state::AVAILABLE,
            Availability::Unavailable => dvsan_station_volume_state::UNAVAILABLE,
        }
    }
}

impl fmt::Display for Availability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Availability {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "available" => Ok(Availability::Available),
            "unavailable" => Ok(Availability::Unavailable),
            _ => Err(format!("unknown availability {s:?}")),
        }
    }
}

/// One medium as walked from dvsanMediaTable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediumRow {
    pub index: u32,
    pub path: String,
    /// "file" or "blockDevice" (the MIB's labels).
    pub kind: String,
    pub blocks: u32,
    pub first_lba: u32,
}

/// One volume as walked from dvsanVolumeTable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeRow {
    pub index: u32,
    pub name: String,
    pub start_lba: u32,
    pub end_lba: u32,
    pub length: u32,
    pub export_name: String,
    pub state: Availability,
    /// Percent cleared while the unit wipes the volume (dvsanVolumeState clearing(3)); None when it does not.
    #[serde(default)]
    pub clearing: Option<u32>,
    /// Hosts with a grant on the volume or one of its partitions on the unit (dvsanAccessTable), whoever made it.
    #[serde(default)]
    pub granted_hosts: Vec<GrantHost>,
}

/// The host a grant on a unit names (dvsanAccessTable): an address, a TLS certificate identity
/// (dvsanAccessHostIdentity, with address type unknown(0) when it names no address), or both. The station's own
/// grants name an address only; a grant with an identity is always someone else's.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GrantHost {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
}

impl GrantHost {
    /// A grant by address only, as the station makes them.
    pub fn address(address: IpAddr) -> GrantHost {
        GrantHost { address: Some(address), identity: None }
    }

    /// Whether this is the station's kind of grant for `host`: that address, and no identity.
    pub fn is_address(&self, host: IpAddr) -> bool {
        self.identity.is_none() && self.address == Some(host)
    }
}

/// As operators read it: `address`, `identity "NAME"` or `identity "NAME" at address` (quoted, so an identity that
/// looks like an address is not taken for one).
impl fmt::Display for GrantHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.identity, self.address) {
            (None, Some(a)) => write!(f, "{a}"),
            (Some(id), Some(a)) => write!(f, "identity {id:?} at {a}"),
            (Some(id), None) => write!(f, "identity {id:?}"),
            (None, None) => f.write_str("no host"),
        }
    }
}

/// One partition as walked from dvsanPartitionTable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRow {
    pub volume_index: u32,
    pub index: u32,
    pub start_lba: u32,
    pub end_lba: u32,
    pub length: u32,
    pub export_name: String,
}

/// Everything one walk of a unit found, checked for consistency (see `walk::parse_walk`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitSnapshot {
    pub unit_id: String,
    pub name: String,
    pub block_size: u32,
    pub capacity_blocks: u32,
    pub free_blocks: u32,
    pub largest_free_blocks: Option<u32>,
    pub data_address: Option<IpAddr>,
    pub data_port: u16,
    /// dvsanUnitDataServiceState == serving.
    pub data_serving: bool,
    pub change_counter: u32,
    /// sysUpTime.0 at the time of the walk.
    pub sys_uptime: u32,
    /// ifOperStatus.1 (the data interface) is up; true when the agent has no ifTable.
    pub link_up: bool,
    pub media: Vec<MediumRow>,
    pub volumes: Vec<VolumeRow>,
    pub partitions: Vec<PartitionRow>,
}

impl UnitSnapshot {
    /// The state a unit that answered this walk is in: available unless its data service is down.
    pub fn state(&self) -> (UnitState, String) {
        if !self.data_serving {
            (UnitState::Unavailable, "data service stopped".to_string())
        } else if !self.link_up {
            (UnitState::Unavailable, "data interface down".to_string())
        } else {
            (UnitState::Available, String::new())
        }
    }
}

/// Where a unit's agent answers SNMP.
pub type AgentAddress = SocketAddr;

/// A unit as the store holds it, with its volumes and partitions: one entry of `pool`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolUnit {
    /// The station's own, stable index of the unit (dvsanStationUnitIndex).
    pub index: u32,
    /// dvsanUnitId; `None` for an address registered with `unit add` that has not answered a walk yet.
    pub unit_id: Option<String>,
    pub name: String,
    /// The agent's address, `IP:PORT`.
    pub address: Option<String>,
    pub state: UnitState,
    pub reason: String,
    pub block_size: Option<u32>,
    pub capacity_blocks: Option<u32>,
    pub free_blocks: Option<u32>,
    pub capacity_bytes: Option<u64>,
    pub free_bytes: Option<u64>,
    pub data_address: Option<String>,
    pub data_port: Option<u16>,
    pub change_counter: Option<u32>,
    pub sys_uptime: Option<u32>,
    /// RFC 3339 UTC time the unit last answered or sent a notification.
    pub last_seen: Option<String>,
    /// RFC 3339 UTC time of the last successful walk.
    pub last_sync: Option<String>,
    /// The host name the unit was registered by (`unit add NAME`); empty when registered by address.
    pub host_name: String,
    /// The station's zone label of the unit (`unit add/set --zone`); empty: none.
    pub zone: String,
    /// A spare unit (`--spare`): kept out of ordinary allocation.
    pub spare: bool,
    pub media: Vec<MediumRow>,
    pub volumes: Vec<PoolVolume>,
}

/// A volume in the pool view: the walked row plus its partitions and its effective availability.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolVolume {
    pub index: u32,
    pub name: String,
    pub start_lba: u32,
    pub end_lba: u32,
    pub length: u32,
    pub size_bytes: Option<u64>,
    pub export_name: String,
    pub state: Availability,
    /// Percent cleared while the unit wipes the volume; such a volume is not assigned until done.
    pub clearing: Option<u32>,
    /// Hosts the unit has a grant for on this volume that no assignment of the station names (made with the
    /// agent's CLI or snmpset): the volume is never allocated or assigned while there are any.
    pub foreign_grants: Vec<String>,
    pub partitions: Vec<PoolPartition>,
}

impl PoolVolume {
    /// Whether the station may hand the volume to a host now (availability and assignments aside).
    pub fn assignable(&self) -> bool {
        self.clearing.is_none() && self.foreign_grants.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolPartition {
    pub index: u32,
    pub start_lba: u32,
    pub end_lba: u32,
    pub length: u32,
    pub size_bytes: Option<u64>,
    pub export_name: String,
    pub state: Availability,
}

#[cfg(test)]
mod mib_value_tests {
    use super::*;
    use dvsan_mib::dvsan_station_partition_state;

    #[test]
    fn partition_states_share_the_volume_state_values() {
        // Availability serves both dvsanStationVolumeState and dvsanStationPartitionState.
        assert_eq!(Availability::Available.mib_value(), dvsan_station_partition_state::AVAILABLE);
        assert_eq!(Availability::Unavailable.mib_value(), dvsan_station_partition_state::UNAVAILABLE);
    }
}

/// A mirrored (logical) volume: `request --replicas N` placed one replica on each of N units.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MirrorRecord {
    /// The station's index of the logical volume (dvsanStationMirrorIndex).
    pub index: u32,
    pub name: String,
    pub host: IpAddr,
    /// Every replica's size.
    pub size_bytes: u64,
    /// Who asked for it over SNMP (`principal::Principal::stored`); `None`: the station's operator.
    #[serde(skip)]
    pub owner: Option<String>,
    pub created_ms: i64,
    /// How many replicas it was asked with; fewer replica rows: its request stopped midway.
    pub wanted: u32,
    /// Its replicas, by replica number.
    pub replicas: Vec<MirrorReplica>,
}

/// One replica of a mirrored volume: a volume on a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct MirrorReplica {
    pub replica: u32,
    pub unit: u32,
    pub volume: u32,
}

/// What a host's front last reported about one replica (dvsanStationFrontTable).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FrontReport {
    #[serde(skip)]
    pub mirror: u32,
    #[serde(skip)]
    pub replica: u32,
    /// `unknown`, `inSync`, `outOfSync`, `resyncing` or `failed` (the MIB's names).
    pub state: String,
    pub dirty_bytes: u64,
    pub resync_percent: u32,
    /// Unix milliseconds of the report (the front's heartbeat).
    pub reported_ms: i64,
}

/// The front states of dvsanStationFrontReplicaState, by their MIB numbers.
pub const FRONT_STATES: [(i32, &str); 5] =
    [(1, "unknown"), (2, "inSync"), (3, "outOfSync"), (4, "resyncing"), (5, "failed")];

impl MirrorRecord {
    /// The name it goes by: the requested name, else `mirrorN` (N its index).
    pub fn display_name(&self) -> String {
        if self.name.is_empty() {
            format!("mirror{}", self.index)
        } else {
            self.name.clone()
        }
    }
}

/// A mirrored volume as `pool --json` shows it: each replica with its unit's zone and state and its NBD URI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MirrorView {
    pub index: u32,
    pub name: String,
    pub host: IpAddr,
    pub size_bytes: u64,
    pub replicas: Vec<ReplicaView>,
}

/// One replica in a [`MirrorView`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplicaView {
    pub replica: u32,
    pub unit: u32,
    pub volume: u32,
    pub zone: String,
    pub unit_state: UnitState,
    pub volume_name: String,
    pub export_name: String,
    /// `nbd://DATA_ADDRESS:PORT/EXPORT`, when the unit's data service address is known.
    pub nbd_uri: Option<String>,
    /// What the host's front last reported about it; `None` before any report.
    pub front: Option<FrontReport>,
}

/// `mirrors` with what `pool` says of each replica's unit and volume and what the fronts reported (`fronts`).
pub fn mirror_views(mirrors: &[MirrorRecord], pool: &[PoolUnit], fronts: &[FrontReport]) -> Vec<MirrorView> {
    mirrors
        .iter()
        .map(|m| MirrorView {
            index: m.index,
            name: m.display_name(),
            host: m.host,
            size_bytes: m.size_bytes,
            replicas: m
                .replicas
                .iter()
                .map(|r| {
                    let unit = pool.iter().find(|u| u.index == r.unit);
                    let volume = unit.and_then(|u| u.volumes.iter().find(|v| v.index == r.volume));
                    let export_name = volume.map(|v| v.export_name.clone()).unwrap_or_default();
                    ReplicaView {
                        replica: r.replica,
                        unit: r.unit,
                        volume: r.volume,
                        zone: unit.map(|u| u.zone.clone()).unwrap_or_default(),
                        unit_state: unit.map_or(UnitState::Unreachable, |u| u.state),
                        volume_name: volume.map(|v| v.name.clone()).unwrap_or_default(),
                        nbd_uri: unit.and_then(|u| data_uri(u, &export_name)),
                        front: fronts.iter().find(|f| f.mirror == m.index && f.replica == r.replica).cloned(),
                        export_name,
                    }
                })
                .collect(),
        })
        .collect()
}

/// `nbd://DATA_ADDRESS:PORT/EXPORT` of a unit's export (an unspecified data address: the agent's IP).
pub fn data_uri(unit: &PoolUnit, export_name: &str) -> Option<String> {
    let ip: IpAddr = unit.data_address.as_deref()?.parse().ok()?;
    let port = unit.data_port?;
    let agent: Option<SocketAddr> = unit.address.as_deref().and_then(|a| a.parse().ok());
    let ip = match (ip.is_unspecified(), agent) {
        (true, Some(agent)) => agent.ip(),
        _ => ip,
    };
    Some(format!("nbd://{}/{export_name}", SocketAddr::new(ip, port)))
}
