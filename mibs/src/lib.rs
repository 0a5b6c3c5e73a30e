//! dvsan's MIB modules and the OID constants generated from them.
//!
//! The MIB text files (`DVSAN-MIB.txt`, `DVSAN-STATION-MIB.txt`) live next to this crate's `Cargo.toml` in `mibs/`.
//! `scripts/gen-mib-oids` asks net-snmp's `snmptranslate` for every node of DVSAN-MIB and for
//! the standard nodes the dvsan programs use (system group, snmp group, the generic traps,
//! interfaces/ifXTable columns, linkUp/linkDown) and writes `src/generated.rs`:
//!
//! - one `pub const NAME: &[u32]` per node, named in SCREAMING_SNAKE_CASE after the MIB name
//!   (`dvsanVolumeStartLba` -> [`DVSAN_VOLUME_START_LBA`], `sysUpTime` -> [`SYS_UP_TIME`]);
//! - one module of `i32` constants per enumerated syntax, named in snake_case after the object
//!   (`dvsanVolumeState` -> [`dvsan_volume_state::AVAILABLE`]) or, for textual conventions,
//!   after the convention (`RowStatus` -> [`row_status::CREATE_AND_GO`]);
//! - [`ALL`], every node as (MIB name, OID), used by [`name_of`], [`oid_of`] and [`describe`].
//!
//! [`station_tasks`] holds the station's task operations and states as Rust enums checked against those constants.
//!
//! The agent, the station and the console use these constants instead of writing OIDs by hand,
//! so the wire protocol cannot drift from the MIB; the crate's tests fail when the generated file
//! is stale or when net-snmp resolves a constant to a different name.

use std::collections::HashMap;
use std::sync::OnceLock;

mod generated;
pub mod station_tasks;

pub use generated::*;

/// The MIB name of the node whose OID is exactly `oid`, e.g. `"dvsanVolumeLength"`.
///
/// Instance OIDs (a node OID plus an index) are not nodes: use [`describe`] for those.
pub fn name_of(oid: &[u32]) -> Option<&'static str> {
    ALL.iter().find(|(_, node)| *node == oid).map(|(name, _)| *name)
}

/// The OID of the node called `name` (the bare MIB name, e.g. `"sysUpTime"`).
pub fn oid_of(name: &str) -> Option<&'static [u32]> {
    ALL.iter().find(|(node_name, _)| *node_name == name).map(|(_, oid)| *oid)
}

/// Renders `oid` for people: the longest known node prefix by name plus the remaining arcs,
/// e.g. `dvsanVolumeLength.3` or `sysUpTime.0`; dotted numeric (`1.3.6.1.9`) when no known
/// node is a prefix.
pub fn describe(oid: &[u32]) -> String {
    // Receivers name every varbind of every notification: look prefixes up in a hash map, longest first,
    // instead of scanning all nodes.
    static NODES: OnceLock<(HashMap<&'static [u32], &'static str>, usize)> = OnceLock::new();
    let (nodes, longest) = NODES.get_or_init(|| {
        let map = ALL.iter().map(|(name, node)| (*node, *name)).collect();
        (map, ALL.iter().map(|(_, node)| node.len()).max().unwrap_or(0))
    });
    for len in (1..=oid.len().min(*longest)).rev() {
        if let Some(name) = nodes.get(&oid[..len]) {
            let mut text = (*name).to_owned();
            for arc in &oid[len..] {
                text.push('.');
                text.push_str(&arc.to_string());
            }
            return text;
        }
    }
    dotted(oid)
}

/// `oid` as dotted decimal without a leading dot, e.g. `1.3.6.1.2.1.1.3.0`.
pub fn dotted(oid: &[u32]) -> String {
    oid.iter().map(u32::to_string).collect::<Vec<_>>().join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_follow_the_plan() {
        assert_eq!(DVSAN_MIB, &[1, 3, 6, 1, 4, 1, 32473, 1]);
        assert_eq!(DVSAN_UNIT_ID, &[1, 3, 6, 1, 4, 1, 32473, 1, 1, 1, 1]);
        assert_eq!(DVSAN_VOLUME_START_LBA, &[1, 3, 6, 1, 4, 1, 32473, 1, 1, 3, 1, 3]);
        assert_eq!(DVSAN_LAYOUT_CHANGED, &[1, 3, 6, 1, 4, 1, 32473, 1, 0, 2]);
        assert_eq!(DVSAN_TRAFFIC_LATENCY_MICROS, &[1, 3, 6, 1, 4, 1, 32473, 1, 1, 6, 1, 9]);
        assert_eq!(SYS_UP_TIME, &[1, 3, 6, 1, 2, 1, 1, 3]);
        assert_eq!(SNMP_TRAP_OID, &[1, 3, 6, 1, 6, 3, 1, 1, 4, 1]);
        assert_eq!(COLD_START, &[1, 3, 6, 1, 6, 3, 1, 1, 5, 1]);
        assert_eq!(LINK_UP, &[1, 3, 6, 1, 6, 3, 1, 1, 5, 4]);
        assert_eq!(IF_HC_IN_OCTETS, &[1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 6]);
        assert_eq!(SNMP_SILENT_DROPS, &[1, 3, 6, 1, 2, 1, 11, 31]);
    }

    #[test]
    fn enumerations_are_generated() {
        assert_eq!(dvsan_volume_state::AVAILABLE, 1);
        assert_eq!(dvsan_volume_state::UNAVAILABLE, 2);
        assert_eq!(dvsan_access_mode::READ_ONLY, 2);
        assert_eq!(dvsan_unit_data_service_state::STOPPED, 2);
        assert_eq!(row_status::CREATE_AND_GO, 4);
        assert_eq!(row_status::DESTROY, 6);
        assert_eq!(inet_address_type::IPV6, 2);
        assert_eq!(if_oper_status::LOWER_LAYER_DOWN, 7);
        assert_eq!(iana_if_type::SOFTWARE_LOOPBACK, 24);
    }

    #[test]
    fn name_of_matches_nodes_exactly() {
        assert_eq!(name_of(DVSAN_VOLUME_LENGTH), Some("dvsanVolumeLength"));
        assert_eq!(name_of(SYS_OBJECT_ID), Some("sysObjectID"));
        assert_eq!(name_of(IF_HC_OUT_OCTETS), Some("ifHCOutOctets"));
        // An instance is not a node.
        assert_eq!(name_of(&[1, 3, 6, 1, 2, 1, 1, 3, 0]), None);
        assert_eq!(name_of(&[1, 3, 6, 1, 4, 1, 32473, 1, 1, 99]), None);
        assert_eq!(name_of(&[]), None);
    }

    #[test]
    fn oid_of_is_the_inverse_of_name_of() {
        for (name, oid) in ALL {
            assert_eq!(oid_of(name), Some(*oid), "{name}");
            assert_eq!(name_of(oid), Some(*name), "{name}");
        }
        assert_eq!(oid_of("noSuchObject"), None);
    }

    #[test]
    fn all_names_and_oids_are_unique() {
        let mut names: Vec<_> = ALL.iter().map(|(name, _)| *name).collect();
        let mut oids: Vec<_> = ALL.iter().map(|(_, oid)| *oid).collect();
        names.sort_unstable();
        names.dedup();
        oids.sort_unstable();
        oids.dedup();
        assert_eq!(names.len(), ALL.len());
        assert_eq!(oids.len(), ALL.len());
    }

    #[test]
    fn describe_uses_the_longest_known_prefix() {
        let mut instance = DVSAN_VOLUME_LENGTH.to_vec();
        instance.push(3);
        assert_eq!(describe(&instance), "dvsanVolumeLength.3");

        let mut partition = DVSAN_PARTITION_START_LBA.to_vec();
        partition.extend([2, 7]);
        assert_eq!(describe(&partition), "dvsanPartitionStartLba.2.7");

        assert_eq!(describe(&[1, 3, 6, 1, 2, 1, 1, 3, 0]), "sysUpTime.0");
        assert_eq!(describe(DVSAN_UNIT), "dvsanUnit");
        // Below a known table but not below a known column: the table's entry wins.
        assert_eq!(describe(&[1, 3, 6, 1, 4, 1, 32473, 1, 1, 3, 1, 99, 1]), "dvsanVolumeEntry.99.1");
    }

    #[test]
    fn describe_falls_back_to_dotted_numbers() {
        assert_eq!(describe(&[1, 3, 6, 1, 9]), "1.3.6.1.9");
        assert_eq!(describe(&[0]), "0");
        assert_eq!(describe(&[]), "");
        assert_eq!(dotted(&[1, 3, 6, 1, 4294967295]), "1.3.6.1.4294967295");
    }
}
