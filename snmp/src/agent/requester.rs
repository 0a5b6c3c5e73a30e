//! Who is asking: the security model, name and level of the request being processed.
//!
//! The agent's request processing ([`super::process`]) sets the [`Requester`] of each request for the time its
//! MIB handlers run (GET, GETNEXT, GETBULK and every SET phase: prepare, commit, undo), in a thread-local, so a
//! handler can make ownership decisions with [`Requester::current`] without a change to the [`super::MibHandler`]
//! interface. Requests are processed synchronously on one thread, so the value is the requester of the request
//! whose handler is running; outside request processing it is `None`.

use std::cell::RefCell;

/// The SNMP security model a request came with (RFC 3411 SnmpSecurityModel).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SecurityModel {
    /// SNMPv1 community (securityModel 1).
    V1,
    /// SNMPv2c community (securityModel 2).
    V2c,
    /// SNMPv3 User-based Security Model (securityModel 3).
    Usm,
}

/// The security level of a request (RFC 3411 SnmpSecurityLevel); v1 and v2c requests are always noAuthNoPriv.
/// The same type as the USM's ([`crate::usm::SecurityLevel`]).
pub use crate::usm::SecurityLevel;

/// The requester of the request being processed: its security model, name (the community for v1/v2c, the USM
/// user name for v3) and security level.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Requester {
    pub model: SecurityModel,
    pub name: String,
    pub level: SecurityLevel,
}

thread_local! {
    static CURRENT: RefCell<Option<Requester>> = const { RefCell::new(None) };
}

impl Requester {
    /// A v1 or v2c requester named by its community (lossy UTF-8 for non-UTF-8 communities).
    pub fn community(model: SecurityModel, community: &[u8]) -> Requester {
        Requester { model, name: String::from_utf8_lossy(community).into_owned(), level: SecurityLevel::NoAuthNoPriv }
    }

    /// The requester of the request whose MIB handler is running on this thread, or `None` outside request
    /// processing.
    pub fn current() -> Option<Requester> {
        CURRENT.with(|c| c.borrow().clone())
    }

    /// Makes `self` the [`Requester::current`] of this thread until the returned guard is dropped (which restores
    /// the previous one, so scopes nest).
    pub fn enter(self) -> RequesterScope {
        let previous = CURRENT.with(|c| c.replace(Some(self)));
        RequesterScope { previous }
    }
}

/// Keeps a [`Requester`] current; restores the previous one when dropped.
#[must_use = "the requester is current only while the scope is alive"]
pub struct RequesterScope {
    previous: Option<Requester>,
}

impl Drop for RequesterScope {
    fn drop(&mut self) {
        let previous = self.previous.take();
        CURRENT.with(|c| *c.borrow_mut() = previous);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_nest_and_restore() {
        assert_eq!(Requester::current(), None);
        let outer = Requester::community(SecurityModel::V2c, b"public");
        {
            let _outer = outer.clone().enter();
            assert_eq!(Requester::current().as_ref(), Some(&outer));
            {
                let _inner = Requester::community(SecurityModel::V1, b"other").enter();
                assert_eq!(Requester::current().map(|r| r.name), Some("other".to_string()));
            }
            assert_eq!(Requester::current().as_ref(), Some(&outer));
            // Other threads do not see it.
            assert_eq!(std::thread::spawn(Requester::current).join().unwrap(), None);
        }
        assert_eq!(Requester::current(), None);
    }
}
