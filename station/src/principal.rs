//! Who asks the station to do something, and who may manage what.
//!
//! A [`Principal`] is the requester of an SNMP request to the station's agent as the station records it: a
//! community (v1/v2c) or a USM user (SNMPv3), taken from [`dvsan_snmp::agent::Requester::current`] while a MIB
//! handler runs. The station records the principal that made each storage request and assignment, and
//! [`Admins`] says who may manage everything: the communities of `--admin-community` (and, with SNMPv3, the users
//! of `--admin-user`). A requester may see and release only what it made itself; an admin may see and release
//! everything and is the only one who may run destructive station tasks.

use dvsan_snmp::agent::{Requester, SecurityModel};
use std::collections::BTreeSet;
use std::fmt;

/// The requester of an SNMP request to the station.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Principal {
    /// A v1/v2c community.
    Community(String),
    /// An SNMPv3 (USM) user.
    User(String),
}

impl Principal {
    /// The principal of a requester.
    pub fn from_requester(requester: &Requester) -> Principal {
        match requester.model {
            SecurityModel::V1 | SecurityModel::V2c => Principal::Community(requester.name.clone()),
            SecurityModel::Usm => Principal::User(requester.name.clone()),
        }
    }

    /// The principal of the SNMP request being processed on this thread; `None` outside request processing (the
    /// station itself, or its CLI on the station's machine).
    pub fn current() -> Option<Principal> {
        Requester::current().map(|r| Principal::from_requester(&r))
    }

    /// How the store records it: `community:NAME` or `user:NAME`.
    pub fn stored(&self) -> String {
        match self {
            Principal::Community(name) => format!("community:{name}"),
            Principal::User(name) => format!("user:{name}"),
        }
    }

    /// The principal the store recorded as `text` ([`Principal::stored`]); `None` for anything else.
    pub fn from_stored(text: &str) -> Option<Principal> {
        if let Some(name) = text.strip_prefix("community:") {
            Some(Principal::Community(name.to_string()))
        } else {
            text.strip_prefix("user:").map(|name| Principal::User(name.to_string()))
        }
    }
}

/// Names a user; never shows a community, which is a secret.
impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::Community(_) => f.write_str("a community"),
            Principal::User(name) => write!(f, "user {name}"),
        }
    }
}

/// The station's administrators: they see and manage everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Admins {
    communities: BTreeSet<String>,
    users: BTreeSet<String>,
}

impl Admins {
    /// Administrators by community (`--admin-community`) and by SNMPv3 user (`--admin-user`).
    pub fn new(communities: impl IntoIterator<Item = String>, users: impl IntoIterator<Item = String>) -> Admins {
        Admins { communities: communities.into_iter().collect(), users: users.into_iter().collect() }
    }

    /// Whether there is any administrator.
    pub fn any(&self) -> bool {
        !self.communities.is_empty() || !self.users.is_empty()
    }

    /// Whether `who` is an administrator.
    pub fn is_admin(&self, who: &Principal) -> bool {
        match who {
            Principal::Community(name) => self.communities.contains(name),
            Principal::User(name) => self.users.contains(name),
        }
    }

    /// Whether `who` may see the details of, and release, what `owner` made (the stored form, `None` when the
    /// station's operator made it through the CLI or before owners were recorded): its owner and the admins may.
    /// `who` is `None` outside SNMP request processing: the station itself and its CLI may.
    pub fn may_manage(&self, who: Option<&Principal>, owner: Option<&str>) -> bool {
        match who {
            None => true,
            Some(who) => self.is_admin(who) || owner.and_then(Principal::from_stored).as_ref() == Some(who),
        }
    }

    /// [`Admins::may_manage`] for the requester of the SNMP request being processed.
    pub fn current_may_manage(&self, owner: Option<&str>) -> bool {
        self.may_manage(Principal::current().as_ref(), owner)
    }

    /// Whether the requester of the SNMP request being processed (if any) is an administrator.
    pub fn current_is_admin(&self) -> bool {
        Principal::current().is_none_or(|who| self.is_admin(&who))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dvsan_snmp::agent::SecurityLevel;

    #[test]
    fn owners_and_admins_manage_others_do_not() {
        let admins = Admins::new(["root-c".to_string()], ["alice".to_string()]);
        let host_a = Principal::Community("host-a".into());
        let host_b = Principal::Community("host-b".into());
        let owner = host_a.stored();
        assert_eq!(owner, "community:host-a");
        assert_eq!(Principal::from_stored(&owner), Some(host_a.clone()));
        assert_eq!(Principal::from_stored("user:bob"), Some(Principal::User("bob".into())));
        assert_eq!(Principal::from_stored("bob"), None);

        assert!(admins.may_manage(Some(&host_a), Some(&owner)));
        assert!(!admins.may_manage(Some(&host_b), Some(&owner)));
        assert!(!admins.may_manage(Some(&host_b), None), "the operator's assignments are the admins'");
        assert!(admins.may_manage(Some(&Principal::Community("root-c".into())), Some(&owner)));
        assert!(admins.may_manage(Some(&Principal::User("alice".into())), None));
        // A user and a community of the same name are different principals.
        assert!(!admins.may_manage(Some(&Principal::User("host-a".into())), Some(&owner)));
        assert!(!admins.is_admin(&Principal::User("root-c".into())));
        assert!(admins.may_manage(None, Some(&owner)), "the station itself and its CLI");
        assert_eq!(host_a.to_string(), "a community", "communities are not shown");
    }

    #[test]
    fn the_current_requester_is_the_principal() {
        assert_eq!(Principal::current(), None);
        let admins = Admins::new(["root-c".to_string()], []);
        assert!(admins.current_is_admin() && admins.current_may_manage(None));
        let requester = Requester { model: SecurityModel::Usm, name: "alice".into(), level: SecurityLevel::AuthPriv };
        let _scope = requester.enter();
        assert_eq!(Principal::current(), Some(Principal::User("alice".into())));
        assert!(!admins.current_is_admin());
        assert!(admins.current_may_manage(Some("user:alice")));
        assert!(!admins.current_may_manage(Some("community:host-b")));
    }
}
