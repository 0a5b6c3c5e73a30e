//! SNMPv3 request processing on the authoritative side: RFC 3412 §7.2 (message checks), RFC 3414 §3.2
//! (USM: engine id, user, level, digest, time window, decryption) and the answers: the Response at the
//! request's security level, or a Report PDU naming the counter that refused the request.
//!
//! [`super::process`] hands every datagram whose version is not 1 or 2c here when the agent has a
//! [`super::UsmConfig`]. The PDU itself is served by the same functions as v1/v2c (with the v2c rules),
//! with the USM user as the [`Requester`] and the user's access and views as its [`Rights`] (made like a
//! community's): reads outside the read view find nothing, a read-only user's SET is answered with
//! authorizationError (RFC 3413 §3.2) and a SET outside the write view with noAccess, both counted in
//! snmpInBadCommunityUses. A noAuthNoPriv user (configured explicitly in the users file) is served at
//! noAuthNoPriv only, without digest or time-window checks (RFC 3414 §3.2 steps 6-7 apply to authenticated
//! messages).

use std::net::SocketAddr;
use std::sync::atomic::AtomicU32;

use crate::agent::access::{Access, Rights, View};
use crate::agent::builtin::{SNMP_MPD_STATS, SNMP_UNKNOWN_CONTEXTS_0, USM_STATS};
use crate::agent::process::{bulk_response_pdu, count_status, dispatch, error, set_in_view, Dispatched};
use crate::agent::requester::{Requester, SecurityModel};
use crate::agent::{Agent, UsmConfig};
use crate::ber::BerWriter;
use crate::counters::SnmpCounters;
use crate::message::{encode_pdu, Version};
use crate::oid::Oid;
use crate::pdu::{ErrorStatus, GenericPdu, Pdu, VarBind};
use crate::usm::engine::MAX_ENGINE_VALUE;
use crate::usm::wire::{self, Head, Keys, ScopedData, ScopedPdu, V3DecodeError, V3Message};
use crate::usm::{Engine, LocalUser, SecurityLevel, UserAccess};
use crate::value::Value;

/// RFC 3414 §3.2 step 7: how far (seconds) a message's engine time may be from ours.
pub const TIME_WINDOW: u32 = 150;

/// The agent's engine and its users, localised to it once at start.
pub(super) struct UsmState {
    engine: Engine,
    users: Vec<ServedUser>,
}

/// A user as this agent serves it: its localised keys and its views.
struct ServedUser {
    keys: LocalUser,
    read_view: View,
    write_view: View,
}

impl ServedUser {
    /// What the user's requests may do, made as a community's are.
    fn rights(&self) -> Rights<'_> {
        let access = match self.keys.access {
            UserAccess::ReadOnly => Access::ReadOnly,
            UserAccess::ReadWrite => Access::ReadWrite,
        };
        Rights::new(access, &self.read_view, &self.write_view)
    }
}

impl UsmState {
    pub(super) fn new(cfg: &UsmConfig) -> UsmState {
        let serve = |u: &crate::usm::UsmUser| ServedUser {
            keys: u.localize(cfg.engine.id()),
            read_view: View::subtrees(u.read_view().iter().cloned()),
            write_view: View::subtrees(u.write_view().iter().cloned()),
        };
        UsmState { users: cfg.users.iter().map(serve).collect(), engine: cfg.engine.clone() }
    }

    /// The agent's engine.
    pub(super) fn engine(&self) -> &Engine {
        &self.engine
    }
}

/// Why a request is refused with a Report: the counter and its OID, and the level of the Report.
struct Refusal<'a> {
    counter: &'a AtomicU32,
    oid: Oid,
    level: SecurityLevel,
}

fn usm_stat(arc: u32) -> Oid {
    let mut arcs = USM_STATS.to_vec();
    arcs.extend_from_slice(&[arc, 0]);
    Oid::new(arcs).unwrap_or_default()
}

pub(super) fn process(agent: &Agent, usm: &UsmState, datagram: &[u8], from: SocketAddr, out: &mut Vec<u8>) -> bool {
    let c = &*agent.counters;
    let msg = match wire::decode_v3(datagram) {
        Ok(m) => m,
        Err(V3DecodeError::NotV3) => {
            SnmpCounters::bump(&c.in_bad_versions);
            tracing::debug!(%from, "SNMP message with unsupported version dropped");
            return false;
        }
        Err(V3DecodeError::UnknownSecurityModel(model)) => {
            SnmpCounters::bump(&c.unknown_security_models);
            tracing::debug!(%from, model, "SNMPv3 message for an unknown security model dropped");
            return false;
        }
        Err(V3DecodeError::Malformed(why)) => {
            SnmpCounters::bump(&c.in_asn_parse_errs);
            tracing::debug!(%from, why, len = datagram.len(), "malformed SNMPv3 datagram dropped");
            return false;
        }
    };
    let Some(level) = msg.level() else {
        SnmpCounters::bump(&c.invalid_msgs);
        tracing::debug!(%from, "SNMPv3 message with privacy but no authentication dropped");
        return false;
    };
    let plain_request_id = match &msg.data {
        ScopedData::Plain(s) => s.pdu.request_id().unwrap_or(0),
        ScopedData::Encrypted(_) => 0,
    };
    let (served, scoped) = match authenticate(agent, usm, &msg, datagram, level) {
        Ok(ok) => ok,
        Err((refusal, user)) => {
            tracing::debug!(%from, oid = %refusal.oid, user = %String::from_utf8_lossy(&msg.usm.user_name), "SNMPv3 request refused by USM");
            return report(agent, usm, &msg, user, plain_request_id, b"", refusal, out);
        }
    };
    let user = &served.keys;
    // RFC 3412 §4.2.2.1: this engine answers for itself only, in the default context.
    let wrong_context = if scoped.context_engine_id != usm.engine.id().as_bytes() {
        Some((&c.unknown_pdu_handlers, mpd_stat(3)))
    } else if !scoped.context_name.is_empty() {
        Some((&c.unknown_contexts, Oid::from_slice(&SNMP_UNKNOWN_CONTEXTS_0)))
    } else {
        None
    };
    if let Some((counter, oid)) = wrong_context {
        let refusal = Refusal { counter, oid, level };
        return report(
            agent,
            usm,
            &msg,
            Some(user),
            scoped.pdu.request_id().unwrap_or(0),
            &scoped.context_name,
            refusal,
            out,
        );
    }
    let _requester = Requester { model: SecurityModel::Usm, name: user.name.clone(), level }.enter();
    let rights = served.rights();
    let max = agent.config.max_message_size.min(msg.global.max_size as usize);
    let response = match dispatch(agent, Version::V2c, rights.read, scoped.pdu) {
        Dispatched::Answer(response) => response,
        Dispatched::Dropped => return false,
        Dispatched::Bulk(p) => {
            let limit = max.saturating_sub(overhead(usm, user, &msg));
            let mut tlv = Vec::with_capacity(1500);
            let nothing_fit =
                bulk_response_pdu(agent, Version::V2c, rights.read, &p, limit, &mut BerWriter::new(&mut tlv));
            if nothing_fit {
                GenericPdu {
                    request_id: p.request_id,
                    error_status: ErrorStatus::TooBig,
                    error_index: 0,
                    varbinds: Vec::new(),
                }
            } else {
                return send(agent, usm, &msg, user, level, &tlv, max, p.request_id, out);
            }
        }
        Dispatched::Set(p) => match rights.write {
            None => {
                SnmpCounters::bump(&c.in_bad_community_uses);
                tracing::debug!(%from, user = %user.name, "SNMPv3 SET by a read-only user refused");
                error(p, Version::V2c, ErrorStatus::AuthorizationError, 0)
            }
            Some(write_view) => {
                SnmpCounters::bump(&c.in_set_requests);
                set_in_view(agent, Version::V2c, write_view, p, from)
            }
        },
    };
    let request_id = response.request_id;
    let status = response.error_status;
    let mut tlv = Vec::with_capacity(256);
    encode_pdu(&mut BerWriter::new(&mut tlv), &Pdu::Response(response));
    if send(agent, usm, &msg, user, level, &tlv, max, request_id, out) {
        count_status(agent, status);
        true
    } else {
        false
    }
}

fn mpd_stat(arc: u32) -> Oid {
    let mut arcs = SNMP_MPD_STATS.to_vec();
    arcs.extend_from_slice(&[arc, 0]);
    Oid::new(arcs).unwrap_or_default()
}

/// RFC 3414 §3.2 steps 3-8: the user and the plaintext ScopedPDU, or the refusal (with the user when
/// it is known and the Report is to be signed).
fn authenticate<'a>(
    agent: &'a Agent,
    usm: &'a UsmState,
    msg: &V3Message,
    datagram: &[u8],
    level: SecurityLevel,
) -> Result<(&'a ServedUser, ScopedPdu), (Refusal<'a>, Option<&'a LocalUser>)> {
    let c = &*agent.counters;
    let refuse = |counter: &'a AtomicU32, arc: u32| {
        Err((Refusal { counter, oid: usm_stat(arc), level: SecurityLevel::NoAuthNoPriv }, None))
    };
    if msg.usm.engine_id != usm.engine.id().as_bytes() {
        return refuse(&c.usm_unknown_engine_ids, 4);
    }
    let Some(served) = usm.users.iter().find(|u| u.keys.name.as_bytes() == msg.usm.user_name.as_slice()) else {
        return refuse(&c.usm_unknown_user_names, 3);
    };
    let user = &served.keys;
    // A user is served at exactly the level its keys give: an authPriv user is never read in the clear, and a
    // noAuthNoPriv user exists only where the users file says so.
    if level != user.level() {
        return refuse(&c.usm_unsupported_sec_levels, 1);
    }
    if level == SecurityLevel::NoAuthNoPriv {
        return match msg.decrypt_scoped_pdu(user) {
            Ok(scoped) => Ok((served, scoped)),
            Err(_) => refuse(&c.usm_decryption_errors, 6),
        };
    }
    if !msg.authenticates(datagram, user) {
        return refuse(&c.usm_wrong_digests, 5);
    }
    let (boots, time) = (usm.engine.boots(), usm.engine.time());
    if boots == MAX_ENGINE_VALUE || msg.usm.boots != boots || msg.usm.time.abs_diff(time) > TIME_WINDOW {
        // Sent authenticated, so the manager can trust our boots and time (RFC 3414 §3.2 step 7a).
        let refusal =
            Refusal { counter: &c.usm_not_in_time_windows, oid: usm_stat(2), level: SecurityLevel::AuthNoPriv };
        return Err((refusal, Some(user)));
    }
    match msg.decrypt_scoped_pdu(user) {
        Ok(scoped) => Ok((served, scoped)),
        Err(_) => refuse(&c.usm_decryption_errors, 6),
    }
}

/// Octets a v3 answer adds around its PDU, generously (the encoder's result is checked against the
/// limit anyway).
fn overhead(usm: &UsmState, user: &LocalUser, msg: &V3Message) -> usize {
    96 + 2 * usm.engine.id().as_bytes().len()
        + user.name.len()
        + msg.usm.user_name.len()
        + user.auth.map_or(0, |a| a.mac_len())
}

fn head<'a>(agent: &Agent, usm: &'a UsmState, msg: &'a V3Message, context_name: &'a [u8]) -> Head<'a> {
    Head {
        msg_id: msg.global.msg_id,
        max_size: agent.config.max_message_size as u32,
        reportable: false,
        engine_id: usm.engine.id().as_bytes(),
        boots: usm.engine.boots(),
        time: usm.engine.time(),
        user_name: &msg.usm.user_name,
        context_engine_id: usm.engine.id().as_bytes(),
        context_name,
    }
}

/// Encodes the Response carrying `tlv` at `level`; a tooBig Response when it exceeds `max`.
#[allow(clippy::too_many_arguments)]
fn send(
    agent: &Agent,
    usm: &UsmState,
    msg: &V3Message,
    user: &LocalUser,
    level: SecurityLevel,
    tlv: &[u8],
    max: usize,
    request_id: i32,
    out: &mut Vec<u8>,
) -> bool {
    let h = head(agent, usm, msg, b"");
    let keys = Keys::of(user, level);
    if wire::encode_v3(&h, keys.as_ref(), tlv, out).is_err() {
        out.clear();
        return false;
    }
    if out.len() > max {
        out.clear();
        let mut small = Vec::with_capacity(32);
        let too_big =
            GenericPdu { request_id, error_status: ErrorStatus::TooBig, error_index: 0, varbinds: Vec::new() };
        encode_pdu(&mut BerWriter::new(&mut small), &Pdu::Response(too_big));
        if wire::encode_v3(&h, keys.as_ref(), &small, out).is_err() || out.len() > max {
            SnmpCounters::bump(&agent.counters.silent_drops);
            out.clear();
            return false;
        }
        SnmpCounters::bump(&agent.counters.out_too_bigs);
    }
    let c = &*agent.counters;
    SnmpCounters::bump(&c.out_pkts);
    SnmpCounters::bump(&c.out_get_responses);
    true
}

/// Counts the refusal and, when the request is reportable (RFC 3412 §7.2 step 13: not for Response,
/// Report or notification PDUs), answers with a Report PDU carrying the counter.
#[allow(clippy::too_many_arguments)]
fn report(
    agent: &Agent,
    usm: &UsmState,
    msg: &V3Message,
    user: Option<&LocalUser>,
    request_id: i32,
    context_name: &[u8],
    refusal: Refusal<'_>,
    out: &mut Vec<u8>,
) -> bool {
    SnmpCounters::bump(refusal.counter);
    let response_class = match &msg.data {
        ScopedData::Plain(s) => {
            matches!(s.pdu, Pdu::Response(_) | Pdu::Report(_) | Pdu::TrapV1(_) | Pdu::TrapV2(_))
        }
        ScopedData::Encrypted(_) => false,
    };
    if !msg.global.flags.reportable || response_class {
        return false;
    }
    let value = Value::Counter32(SnmpCounters::read(refusal.counter));
    let pdu = Pdu::Report(GenericPdu::request(request_id, vec![VarBind::new(refusal.oid, value)]));
    let mut tlv = Vec::with_capacity(64);
    encode_pdu(&mut BerWriter::new(&mut tlv), &pdu);
    let keys = match (refusal.level, user) {
        (SecurityLevel::NoAuthNoPriv, _) | (_, None) => None,
        (level, Some(u)) => Keys::of(u, level.min(SecurityLevel::AuthNoPriv)),
    };
    let h = head(agent, usm, msg, context_name);
    if wire::encode_v3(&h, keys.as_ref(), &tlv, out).is_err() {
        out.clear();
        return false;
    }
    SnmpCounters::bump(&agent.counters.out_pkts);
    true
}
