//! How the station speaks to a unit's agent: the one place that builds the SNMP target of a unit for reading
//! (walks, polls, the pending-unit probe) and for writing (allocation, grants, wipes, releases).
//!
//! An enrolled unit ([`crate::credentials`]) is spoken to as its own SNMPv3 user (authPriv, HMAC-SHA-256 and
//! AES-128), for reads and writes alike: its answers are authenticated, and its agent needs no write community.
//! Any other unit is spoken to with the station's communities: the read community, and the write community
//! (`--write-community`) for SETs, without which the station changes no such unit. The coordinator, the
//! allocator and the tasks all take their targets from a [`UnitAccess`].

use crate::credentials::EnrolledUsers;
use dvsan_snmp::usm::UserAccess;
use dvsan_snmp::Target;
use std::net::SocketAddr;
use std::path::Path;

/// The station's credentials towards units.
#[derive(Clone)]
pub struct UnitAccess {
    read_community: String,
    write_community: Option<String>,
    users: Option<EnrolledUsers>,
}

impl std::fmt::Debug for UnitAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Communities are secrets too: not printed.
        f.debug_struct("UnitAccess")
            .field("write_community", &self.write_community.is_some())
            .field("enrolled_users", &self.users.is_some())
            .finish()
    }
}

impl UnitAccess {
    /// Communities only (no enrolled units known).
    pub fn communities(read_community: impl Into<String>, write_community: Option<String>) -> UnitAccess {
        UnitAccess { read_community: read_community.into(), write_community, users: None }
    }

    /// The communities, and the enrolled units' users.
    pub fn new(read_community: impl Into<String>, write_community: Option<String>, users: EnrolledUsers) -> UnitAccess {
        UnitAccess { read_community: read_community.into(), write_community, users: Some(users) }
    }

    /// The communities and the units enrolled in `state_dir`; an unreadable credentials file is logged and leaves
    /// only the communities (the enrolled units' agents then refuse the station, which is visible).
    pub fn open(state_dir: &Path, read_community: &str, write_community: Option<&str>) -> UnitAccess {
        let write_community = write_community.map(str::to_string);
        match EnrolledUsers::open(state_dir) {
            Ok(users) => UnitAccess::new(read_community, write_community, users),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the enrolled units' credentials; using communities only");
                UnitAccess::communities(read_community, write_community)
            }
        }
    }

    /// The enrolled users this access uses, if any.
    pub fn users(&self) -> Option<&EnrolledUsers> {
        self.users.as_ref()
    }

    /// The SNMPv3 user of an enrolled unit.
    fn enrolled(&self, unit_id: Option<&str>) -> Option<std::sync::Arc<dvsan_snmp::usm::UsmUser>> {
        self.users.as_ref()?.user_for_unit(unit_id?)
    }

    /// Whether the unit with this id is spoken to as its enrolled SNMPv3 user.
    pub fn is_enrolled(&self, unit_id: Option<&str>) -> bool {
        self.enrolled(unit_id).is_some()
    }

    /// The target for reading the agent at `agent`, which is (or claims to be) unit `unit_id`.
    pub fn read_target(&self, agent: SocketAddr, unit_id: Option<&str>) -> Target {
        match self.enrolled(unit_id) {
            Some(user) => Target::v3(agent, user),
            None => Target::new(agent, self.read_community.as_str()),
        }
    }

    /// The target for SETs on unit `unit_id` at `agent`: its enrolled user (read-write), else the write
    /// community; `None` when the station has neither for it.
    pub fn write_target(&self, agent: SocketAddr, unit_id: Option<&str>) -> Option<Target> {
        match self.enrolled(unit_id) {
            Some(user) if user.access() == UserAccess::ReadWrite => Some(Target::v3(agent, user)),
            _ => self.write_community.as_deref().map(|community| Target::new(agent, community)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::CredentialStore;
    use dvsan_snmp::Version;

    const ID: &str = "8c3f0b52-4f4b-4b8e-9a51-3f0e6d2c7a10";

    #[test]
    fn enrolled_units_are_spoken_to_as_their_user_others_with_communities() {
        let dir = tempfile::tempdir().unwrap();
        let agent: SocketAddr = "127.0.0.2:1161".parse().unwrap();
        let access = UnitAccess::open(dir.path(), "public", None);
        let read = access.read_target(agent, Some(ID));
        assert_eq!((read.options.version, read.community.as_str()), (Version::V2c, "public"));
        assert!(access.write_target(agent, Some(ID)).is_none(), "no write community, not enrolled");

        CredentialStore::open(dir.path()).unwrap().enroll(ID, false, "now").unwrap();
        for target in [access.read_target(agent, Some(ID)), access.write_target(agent, Some(ID)).unwrap()] {
            assert_eq!(target.options.version, Version::V3);
            assert_eq!(target.usm.as_ref().unwrap().user.name(), "unit-8c3f0b52");
            assert!(target.community.is_empty());
            assert_eq!(target.addr, agent);
        }
        assert!(access.is_enrolled(Some(ID)));
        // Another unit, or an agent whose id is not known: communities.
        let other = access.read_target(agent, Some("11111111-2222-4333-8444-555555555555"));
        assert_eq!(other.options.version, Version::V2c);
        assert_eq!(access.read_target(agent, None).options.version, Version::V2c);
        let with_write = UnitAccess::open(dir.path(), "public", Some("private"));
        assert_eq!(with_write.write_target(agent, None).unwrap().community, "private");
        assert_eq!(with_write.write_target(agent, Some(ID)).unwrap().options.version, Version::V3);
    }
}
