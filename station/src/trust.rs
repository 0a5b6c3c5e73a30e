//! Whether the station trusts a unit that speaks to it: the pure decision, no I/O.
//!
//! A unit enters the pool only when the station trusts it. The station asks [`decide`] with what a unit's
//! notification (or the answer of a walk) claims — a unit id, the source address, the SNMPv3 user it came with and
//! whether its authentication was verified — and what the station knows ([`Knowledge`]): the enrolled units'
//! credentials (`credentials`), the units in the pool with the address each is bound to, the addresses an
//! operator registered or approved, and whether the station runs in lab mode (`--trust-community-units`).
//!
//! - **Pool**: a notification authenticated with an enrolled unit's credentials; a unit in the pool speaking from
//!   its own address; an unknown unit at an address an operator registered (`unit add`) or approved; anything in
//!   lab mode.
//! - **Follow**: an enrolled unit's authenticated notification from a new address: the unit moved; the station
//!   follows it there (its address is updated by the walk that follows).
//! - **Pending**: an unknown unit without credentials: recorded for an operator to approve or reject, nothing is
//!   allocated from it.
//! - **Refuse**: a unit id of the pool claimed from another address without that unit's credentials (or an
//!   enrolled user claiming another unit's id): refused, counted and announced; the real unit is not touched.
//!   Lab mode follows such a move for units that are not enrolled (what the station did before enrolment existed);
//!   an enrolled unit is protected in every mode.
//!
//! The coordinator applies the decision twice: to each source's notifications, and to the unit id a walk of an
//! address finds (an agent may send no unit id and answer with another unit's).

use std::net::IpAddr;

/// What a unit claims, from a notification or a walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim<'a> {
    /// The dvsanUnitId it reports, if any.
    pub unit_id: Option<&'a str>,
    /// Where it speaks from.
    pub source: IpAddr,
    /// The SNMPv3 user of the notification (None for v1/v2c).
    pub security_name: Option<&'a str>,
    /// True only when the v3 authentication of that user was verified.
    pub authenticated: bool,
}

/// A unit of the pool, as far as trust is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownUnit {
    /// dvsanStationUnitIndex.
    pub index: u32,
    /// The IP of the agent address it is bound to (None when it lost its address).
    pub address: Option<IpAddr>,
}

/// What the station knows when it decides.
pub trait Knowledge {
    /// `--trust-community-units`: every unit is trusted as before enrolment existed (enrolled units stay protected).
    fn lab_mode(&self) -> bool;
    /// The unit id enrolled with this SNMPv3 user name.
    fn enrolled_unit(&self, security_name: &str) -> Option<String>;
    /// Whether this unit id has enrolled credentials.
    fn is_enrolled(&self, unit_id: &str) -> bool;
    /// The pool's unit with this unit id.
    fn unit(&self, unit_id: &str) -> Option<KnownUnit>;
    /// Whether an operator registered or approved this address (a unit or a placeholder is bound to it).
    fn registered(&self, ip: IpAddr) -> bool;
}

/// Why a claim is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The unit id belongs to a unit of the pool at another address, and the claim has not its credentials.
    NoCredentials { unit_id: String, index: u32, bound: Option<IpAddr> },
    /// Authenticated as the enrolled user of one unit, but claiming another unit's id.
    OtherUnitsCredentials { unit_id: String, enrolled_as: String },
}

impl Refusal {
    /// The unit id that was claimed.
    pub fn unit_id(&self) -> &str {
        match self {
            Refusal::NoCredentials { unit_id, .. } | Refusal::OtherUnitsCredentials { unit_id, .. } => unit_id,
        }
    }

    /// In plain words, for logs and dvsanStationRefusedReason.
    pub fn reason(&self, source: IpAddr) -> String {
        match self {
            Refusal::NoCredentials { unit_id, index, bound } => format!(
                "{source} reported unit id {unit_id} of unit #{index} (bound to {}) without that unit's credentials",
                bound.map_or_else(|| "no address".to_string(), |ip| ip.to_string())
            ),
            Refusal::OtherUnitsCredentials { unit_id, enrolled_as } => {
                format!("{source} authenticated as the unit {enrolled_as} but reported unit id {unit_id}")
            }
        }
    }
}

/// What the station does with a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Trusted: handle it as a pool unit (walk it, sync it).
    Pool,
    /// Trusted, and the unit (index) now speaks from a new address: follow it there.
    Follow { index: u32, from: Option<IpAddr> },
    /// Not trusted yet: record it as a pending unit for an operator.
    Pending,
    /// A claim on another unit's identity: refuse it.
    Refuse(Refusal),
}

/// The trust decision for `claim` (see the module documentation for the rules).
pub fn decide(claim: &Claim<'_>, knowledge: &impl Knowledge) -> Decision {
    // Authenticated with an enrolled unit's credentials: that unit, wherever it speaks from.
    if let (true, Some(user)) = (claim.authenticated, claim.security_name) {
        if let Some(enrolled_id) = knowledge.enrolled_unit(user) {
            if let Some(claimed) = claim.unit_id.filter(|id| *id != enrolled_id) {
                return Decision::Refuse(Refusal::OtherUnitsCredentials {
                    unit_id: claimed.to_string(),
                    enrolled_as: enrolled_id,
                });
            }
            return match knowledge.unit(&enrolled_id) {
                Some(unit) if unit.address != Some(claim.source) => {
                    Decision::Follow { index: unit.index, from: unit.address }
                }
                _ => Decision::Pool,
            };
        }
    }
    // Without credentials: the address decides.
    if let Some(unit_id) = claim.unit_id {
        if let Some(unit) = knowledge.unit(unit_id) {
            if unit.address == Some(claim.source) {
                return Decision::Pool;
            }
            if knowledge.lab_mode() && !knowledge.is_enrolled(unit_id) {
                return Decision::Follow { index: unit.index, from: unit.address };
            }
            return Decision::Refuse(Refusal::NoCredentials {
                unit_id: unit_id.to_string(),
                index: unit.index,
                bound: unit.address,
            });
        }
    }
    if knowledge.registered(claim.source) || knowledge.lab_mode() {
        Decision::Pool
    } else {
        Decision::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const REAL: &str = "8c3f0b52-4f4b-4b8e-9a51-3f0e6d2c7a10";
    const OTHER: &str = "11111111-2222-4333-8444-555555555555";

    #[derive(Default)]
    struct Known {
        lab: bool,
        users: HashMap<&'static str, &'static str>,
        units: HashMap<&'static str, KnownUnit>,
        registered: Vec<IpAddr>,
    }

    impl Knowledge for Known {
        fn lab_mode(&self) -> bool {
            self.lab
        }
        fn enrolled_unit(&self, security_name: &str) -> Option<String> {
            self.users.get(security_name).map(|id| id.to_string())
        }
        fn is_enrolled(&self, unit_id: &str) -> bool {
            self.users.values().any(|id| *id == unit_id)
        }
        fn unit(&self, unit_id: &str) -> Option<KnownUnit> {
            self.units.get(unit_id).copied()
        }
        fn registered(&self, ip: IpAddr) -> bool {
            self.registered.contains(&ip)
        }
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    fn pooled(enrolled: bool) -> Known {
        let mut known = Known::default();
        known.units.insert(REAL, KnownUnit { index: 1, address: Some(ip(2)) });
        known.registered.push(ip(2));
        if enrolled {
            known.users.insert("unit-8c3f0b52", REAL);
        }
        known
    }

    fn claim<'a>(unit_id: Option<&'a str>, source: IpAddr, user: Option<&'a str>, authenticated: bool) -> Claim<'a> {
        Claim { unit_id, source, security_name: user, authenticated }
    }

    #[test]
    fn an_unknown_unit_without_credentials_is_pending_unless_lab_mode_or_registered() {
        let mut known = Known::default();
        assert_eq!(decide(&claim(Some(OTHER), ip(9), None, false), &known), Decision::Pending);
        assert_eq!(decide(&claim(None, ip(9), None, false), &known), Decision::Pending);
        // A community string is no credential, whatever it claims to be.
        assert_eq!(decide(&claim(Some(OTHER), ip(9), Some("public"), false), &known), Decision::Pending);
        known.registered.push(ip(9));
        assert_eq!(decide(&claim(Some(OTHER), ip(9), None, false), &known), Decision::Pool);
        let lab = Known { lab: true, ..Known::default() };
        assert_eq!(decide(&claim(Some(OTHER), ip(9), None, false), &lab), Decision::Pool);
    }

    #[test]
    fn a_pool_unit_from_its_own_address_is_trusted() {
        let known = pooled(false);
        assert_eq!(decide(&claim(Some(REAL), ip(2), None, false), &known), Decision::Pool);
        assert_eq!(decide(&claim(None, ip(2), None, false), &known), Decision::Pool);
    }

    #[test]
    fn another_address_with_a_pool_units_id_is_refused() {
        for enrolled in [false, true] {
            let known = pooled(enrolled);
            let refused = decide(&claim(Some(REAL), ip(66), None, false), &known);
            let Decision::Refuse(refusal) = refused else { panic!("not refused: {refused:?}") };
            assert_eq!(refusal, Refusal::NoCredentials { unit_id: REAL.into(), index: 1, bound: Some(ip(2)) });
            assert_eq!(refusal.unit_id(), REAL);
            assert!(refusal.reason(ip(66)).contains("127.0.0.66"), "{}", refusal.reason(ip(66)));
            // An unverified v3 user name is no better than a community.
            let unverified = decide(&claim(Some(REAL), ip(66), Some("unit-8c3f0b52"), false), &known);
            assert!(matches!(unverified, Decision::Refuse(_)), "{unverified:?}");
        }
    }

    #[test]
    fn lab_mode_follows_a_community_unit_but_never_gives_away_an_enrolled_one() {
        let mut known = pooled(false);
        known.lab = true;
        assert_eq!(
            decide(&claim(Some(REAL), ip(66), None, false), &known),
            Decision::Follow { index: 1, from: Some(ip(2)) }
        );
        let mut enrolled = pooled(true);
        enrolled.lab = true;
        assert!(matches!(decide(&claim(Some(REAL), ip(66), None, false), &enrolled), Decision::Refuse(_)));
    }

    #[test]
    fn enrolled_credentials_pool_a_unit_and_follow_it_when_it_moves() {
        let mut known = pooled(true);
        let user = Some("unit-8c3f0b52");
        assert_eq!(decide(&claim(Some(REAL), ip(2), user, true), &known), Decision::Pool);
        assert_eq!(decide(&claim(None, ip(2), user, true), &known), Decision::Pool);
        assert_eq!(
            decide(&claim(Some(REAL), ip(7), user, true), &known),
            Decision::Follow { index: 1, from: Some(ip(2)) }
        );
        // Enrolled but not in the pool yet: pooled wherever it speaks from, without approval.
        known.units.clear();
        known.registered.clear();
        assert_eq!(decide(&claim(Some(REAL), ip(7), user, true), &known), Decision::Pool);
    }

    #[test]
    fn one_units_credentials_do_not_vouch_for_another_unit_id() {
        let mut known = pooled(true);
        known.units.insert(OTHER, KnownUnit { index: 2, address: Some(ip(3)) });
        let refused = decide(&claim(Some(OTHER), ip(2), Some("unit-8c3f0b52"), true), &known);
        assert_eq!(
            refused,
            Decision::Refuse(Refusal::OtherUnitsCredentials { unit_id: OTHER.into(), enrolled_as: REAL.into() })
        );
        // An unknown user name, even authenticated (another component's user), is no unit credential.
        assert!(matches!(decide(&claim(Some(REAL), ip(66), Some("admin"), true), &known), Decision::Refuse(_)));
        assert_eq!(decide(&claim(Some(REAL), ip(2), Some("admin"), true), &known), Decision::Pool);
    }
}
