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
    pub granted_hosts: Vec<IpAddr>,
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
