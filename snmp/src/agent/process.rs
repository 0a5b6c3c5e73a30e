//! Request processing: RFC 3416 §4.2 (Get, GetNext, GetBulk, Set) with the SNMPv1 rules of
//! RFC 1157 and RFC 3584 §4.2-4.4 (noSuchName for exceptions, Counter64 skipped by GetNext and
//! refused by Get, v2 error codes mapped to v1), within what the request's community may read and write
//! ([`super::access`]), with the request's [`Requester`] current while handlers run.

use std::net::SocketAddr;

use crate::agent::access::{Community, View};
use crate::agent::handler::{GetResult, SetFailure, SetItem, Undo};
use crate::agent::requester::{Requester, SecurityModel};
use crate::agent::Agent;
use crate::ber::{tag, BerWriter};
use crate::counters::SnmpCounters;
use crate::message::{decode, encode_into, peek_version, DecodeError, Message, Version};
use crate::oid::Oid;
use crate::pdu::{BulkPdu, ErrorStatus, GenericPdu, Pdu, VarBind};
use crate::value::Value;

/// Room kept for the three enclosing lengths growing to their long form while a GetBulk
/// response is filled (each at most 3 more octets for messages under 16 MiB).
pub(super) const LENGTH_SLACK: usize = 9;

pub(super) fn process(agent: &Agent, datagram: &[u8], from: SocketAddr, out: &mut Vec<u8>) -> bool {
    let c = &*agent.counters;
    SnmpCounters::bump(&c.in_pkts);
    if let Some(usm) = &agent.usm {
        if peek_version(datagram) == Some(3) {
            // Straight to the v3 path: a v1/v2c decode would only fail on it, at some cost per request.
            return super::v3::process(agent, usm, datagram, from, out);
        }
    }
    let msg = match decode(datagram) {
        Ok(msg) => msg,
        Err(DecodeError::BadVersion) => {
            if let Some(usm) = &agent.usm {
                return super::v3::process(agent, usm, datagram, from, out);
            }
            SnmpCounters::bump(&c.in_bad_versions);
            tracing::debug!(%from, "SNMP request with unsupported version dropped");
            return false;
        }
        Err(DecodeError::Malformed(why)) => {
            SnmpCounters::bump(&c.in_asn_parse_errs);
            tracing::debug!(%from, why, len = datagram.len(), "malformed SNMP datagram dropped");
            return false;
        }
    };
    let Some(rights) = Community::find(&agent.config.communities, &msg.community).map(Community::rights) else {
        SnmpCounters::bump(&c.in_bad_community_names);
        tracing::debug!(%from, "SNMP request with unknown community dropped");
        return false;
    };
    let model = match msg.version {
        Version::V1 => SecurityModel::V1,
        Version::V2c => SecurityModel::V2c,
        Version::V3 => SecurityModel::Usm,
    };
    let _requester = Requester::community(model, &msg.community).enter();
    let Message { version, community, pdu } = msg;
    let response = match dispatch(agent, version, rights.read, pdu) {
        Dispatched::Answer(response) => response,
        Dispatched::Dropped => return false,
        Dispatched::Bulk(p) => return get_bulk(agent, version, rights.read, &community, p, out),
        Dispatched::Set(p) => {
            let Some(write_view) = rights.write else {
                SnmpCounters::bump(&c.in_bad_community_uses);
                tracing::debug!(%from, "SNMP SET with a read-only community dropped");
                return false;
            };
            SnmpCounters::bump(&c.in_set_requests);
            set_in_view(agent, version, write_view, p, from)
        }
    };
    respond(agent, version, community, response, out)
}

/// A request PDU after the steps the community and USM paths share (each PDU counted in the snmp group).
pub(super) enum Dispatched {
    /// A GET or GETNEXT, answered from the read view.
    Answer(GenericPdu),
    /// A Response, Report or notification: nothing to answer.
    Dropped,
    /// A GETBULK, whose answer depends on the message size the path allows.
    Bulk(BulkPdu),
    /// A SET, which the path checks against its write view.
    Set(GenericPdu),
}

/// Counts `pdu` in the snmp group and answers it when it is a GET or GETNEXT within `read`.
pub(super) fn dispatch(agent: &Agent, version: Version, read: &View, pdu: Pdu) -> Dispatched {
    let c = &*agent.counters;
    match pdu {
        Pdu::Get(p) => {
            SnmpCounters::bump(&c.in_get_requests);
            Dispatched::Answer(get(agent, version, read, p))
        }
        Pdu::GetNext(p) => {
            SnmpCounters::bump(&c.in_get_nexts);
            Dispatched::Answer(get_next(agent, version, read, p))
        }
        Pdu::GetBulk(p) => {
            SnmpCounters::bump(&c.in_get_nexts);
            Dispatched::Bulk(p)
        }
        Pdu::Set(p) => Dispatched::Set(p),
        Pdu::Response(_) | Pdu::Report(_) => {
            SnmpCounters::bump(&c.in_get_responses);
            Dispatched::Dropped
        }
        Pdu::TrapV1(_) | Pdu::TrapV2(_) | Pdu::Inform(_) => {
            SnmpCounters::bump(&c.in_traps);
            Dispatched::Dropped
        }
    }
}

/// Encodes `response`, replacing it by an empty tooBig when it exceeds the size limit.
fn respond(agent: &Agent, version: Version, community: Vec<u8>, mut response: GenericPdu, out: &mut Vec<u8>) -> bool {
    let max = agent.config.max_message_size;
    let mut msg = Message {
        version,
        community,
        pdu: Pdu::Response(GenericPdu {
            request_id: response.request_id,
            error_status: response.error_status,
            error_index: response.error_index,
            varbinds: std::mem::take(&mut response.varbinds),
        }),
    };
    encode_into(&msg, out);
    if out.len() > max {
        out.clear();
        msg.pdu = Pdu::Response(GenericPdu::too_big(response.request_id));
        encode_into(&msg, out);
        if out.len() > max {
            SnmpCounters::bump(&agent.counters.silent_drops);
            out.clear();
            return false;
        }
    }
    count_response(agent, &msg.pdu);
    true
}

fn count_response(agent: &Agent, pdu: &Pdu) {
    let c = &*agent.counters;
    SnmpCounters::bump(&c.out_pkts);
    SnmpCounters::bump(&c.out_get_responses);
    if let Pdu::Response(p) = pdu {
        count_status(agent, p.error_status);
    }
}

pub(super) fn count_status(agent: &Agent, status: ErrorStatus) {
    let c = &*agent.counters;
    match status.to_v1() {
        ErrorStatus::TooBig => SnmpCounters::bump(&c.out_too_bigs),
        ErrorStatus::NoSuchName => SnmpCounters::bump(&c.out_no_such_names),
        ErrorStatus::BadValue => SnmpCounters::bump(&c.out_bad_values),
        ErrorStatus::GenErr => SnmpCounters::bump(&c.out_gen_errs),
        _ => {}
    }
}

impl GenericPdu {
    /// The alternate Response-PDU of RFC 3416 §4.2.1: tooBig, index 0, no varbinds.
    fn too_big(request_id: i32) -> GenericPdu {
        GenericPdu { request_id, error_status: ErrorStatus::TooBig, error_index: 0, varbinds: Vec::new() }
    }
}

/// The request itself as an error response (varbinds echoed as received).
pub(super) fn error(mut request: GenericPdu, version: Version, status: ErrorStatus, index: usize) -> GenericPdu {
    request.error_status = match version {
        Version::V1 => status.to_v1(),
        Version::V2c | Version::V3 => status,
    };
    request.error_index = u32::try_from(index).unwrap_or(u32::MAX);
    request
}

fn get(agent: &Agent, version: Version, view: &View, mut request: GenericPdu) -> GenericPdu {
    SnmpCounters::add(&agent.counters.in_total_req_vars, request.varbinds.len());
    let mut values = Vec::with_capacity(request.varbinds.len());
    for (i, vb) in request.varbinds.iter().enumerate() {
        let value = match get_in_view(agent, view, &vb.oid) {
            GetResult::Value(v) => v,
            GetResult::NoSuchObject => Value::NoSuchObject,
            GetResult::NoSuchInstance => Value::NoSuchInstance,
        };
        if version == Version::V1 && (value.is_exception() || matches!(value, Value::Counter64(_))) {
            return error(request, version, ErrorStatus::NoSuchName, i + 1);
        }
        values.push(value);
    }
    for (vb, value) in request.varbinds.iter_mut().zip(values) {
        vb.value = value;
    }
    request
}

/// GET of `oid` as the view shows it: outside the view, nothing is there.
fn get_in_view(agent: &Agent, view: &View, oid: &Oid) -> GetResult {
    if view.contains(oid) {
        agent.registry.get(oid)
    } else {
        GetResult::NoSuchObject
    }
}

/// The successor of `oid` visible to `version` (v1 cannot see Counter64 objects) in `view`.
fn next_visible(agent: &Agent, version: Version, view: &View, oid: &Oid) -> Option<VarBind> {
    let mut next = agent.registry.get_next(oid)?;
    // Each pass either returns or moves past an object v1 cannot see or to the next subtree of the view, so
    // the registry and the view bound the loop.
    loop {
        if !view.contains(&next.oid) {
            let subtree = view.next_subtree_after(&next.oid)?;
            next = match agent.registry.get(subtree) {
                GetResult::Value(value) => VarBind::new(subtree.clone(), value),
                _ => agent.registry.get_next(subtree)?,
            };
        } else if version == Version::V1 && matches!(next.value, Value::Counter64(_)) {
            next = agent.registry.get_next(&next.oid)?;
        } else {
            return Some(next);
        }
    }
}

fn get_next(agent: &Agent, version: Version, view: &View, mut request: GenericPdu) -> GenericPdu {
    SnmpCounters::add(&agent.counters.in_total_req_vars, request.varbinds.len());
    let mut results = Vec::with_capacity(request.varbinds.len());
    for (i, vb) in request.varbinds.iter().enumerate() {
        match next_visible(agent, version, view, &vb.oid) {
            Some(next) => results.push(next),
            None if version == Version::V1 => {
                return error(request, version, ErrorStatus::NoSuchName, i + 1);
            }
            None => results.push(VarBind::new(vb.oid.clone(), Value::EndOfMibView)),
        }
    }
    request.varbinds = results;
    request
}

/// RFC 3416 §4.2.3, writing straight into `out` so the size limit is applied per varbind.
fn get_bulk(
    agent: &Agent,
    version: Version,
    view: &View,
    community: &[u8],
    request: BulkPdu,
    out: &mut Vec<u8>,
) -> bool {
    let start = out.len();
    let limit = agent.config.max_message_size.saturating_sub(LENGTH_SLACK);
    let mut w = BerWriter::new(out);
    let outer = w.begin(tag::SEQUENCE);
    w.integer(tag::INTEGER, i64::from(version.code()));
    w.octets(tag::OCTET_STRING, community);
    let nothing_fit = bulk_response_pdu(agent, version, view, &request, limit, &mut w);
    w.end(outer);
    if nothing_fit {
        out.truncate(start);
        return respond(agent, version, community.to_vec(), GenericPdu::too_big(request.request_id), out);
    }
    let c = &*agent.counters;
    SnmpCounters::bump(&c.out_pkts);
    SnmpCounters::bump(&c.out_get_responses);
    true
}

/// Writes the Response-PDU of a GetBulk into `w`, adding varbinds while the buffer stays within `limit`
/// octets; returns true when not even one varbind fit (the caller answers tooBig instead).
pub(super) fn bulk_response_pdu(
    agent: &Agent,
    version: Version,
    view: &View,
    request: &BulkPdu,
    limit: usize,
    w: &mut BerWriter<'_>,
) -> bool {
    let total = request.varbinds.len();
    let non_repeaters = (request.non_repeaters as usize).min(total);
    let (fixed, repeated) = request.varbinds.split_at(non_repeaters);
    let pdu = w.begin(0xA2);
    w.integer(tag::INTEGER, i64::from(request.request_id));
    w.integer(tag::INTEGER, 0);
    w.integer(tag::INTEGER, 0);
    let list = w.begin(tag::SEQUENCE);
    let list_start = w.len();

    // Appends one varbind unless that would pass the limit.
    let push = |w: &mut BerWriter<'_>, vb: &VarBind| -> bool {
        let mark = w.len();
        w.varbind(&vb.oid, &vb.value);
        if w.len() > limit {
            w.truncate(mark);
            false
        } else {
            true
        }
    };

    let mut written = 0usize;
    let mut full = false;
    for vb in fixed {
        let next = next_visible(agent, version, view, &vb.oid)
            .unwrap_or_else(|| VarBind::new(vb.oid.clone(), Value::EndOfMibView));
        if !push(w, &next) {
            full = true;
            break;
        }
        written += 1;
    }
    if !full && !repeated.is_empty() {
        let mut cursors: Vec<VarBind> = repeated.to_vec();
        let mut ended = vec![false; cursors.len()];
        // Every repetition writes at least one varbind, so the size limit bounds this loop.
        'repetitions: for _ in 0..request.max_repetitions {
            for (cursor, ended) in cursors.iter_mut().zip(ended.iter_mut()) {
                if !*ended {
                    match next_visible(agent, version, view, &cursor.oid) {
                        Some(next) => *cursor = next,
                        None => {
                            *ended = true;
                            cursor.value = Value::EndOfMibView;
                        }
                    }
                }
                if !push(w, cursor) {
                    full = true;
                    break 'repetitions;
                }
                written += 1;
            }
            if ended.iter().all(|e| *e) {
                break;
            }
        }
    }
    let nothing_fit = full && w.len() == list_start;
    w.end(list);
    w.end(pdu);
    SnmpCounters::add(&agent.counters.in_total_req_vars, total);
    tracing::trace!(written, "GetBulk answered");
    nothing_fit
}

/// A SET by a requester that may write `write_view` (a community's or a v3 user's): refused with noAccess (v1:
/// noSuchName) at the first varbind outside the view and counted in snmpInBadCommunityUses, else applied.
pub(super) fn set_in_view(
    agent: &Agent,
    version: Version,
    write_view: &View,
    request: GenericPdu,
    from: SocketAddr,
) -> GenericPdu {
    if let Some(i) = request.varbinds.iter().position(|vb| !write_view.contains(&vb.oid)) {
        SnmpCounters::bump(&agent.counters.in_bad_community_uses);
        tracing::debug!(%from, oid = %request.varbinds[i].oid, "SNMP SET outside the requester's write view refused");
        return error(request, version, ErrorStatus::NoAccess, i + 1);
    }
    set(agent, version, request)
}

fn set(agent: &Agent, version: Version, request: GenericPdu) -> GenericPdu {
    // Group the varbinds by owning handler, in order of first appearance.
    let mut groups: Vec<(usize, Vec<SetItem<'_>>)> = Vec::new();
    for (i, vb) in request.varbinds.iter().enumerate() {
        let Some((handler_idx, _)) = agent.registry.owner(&vb.oid) else {
            return error(request.clone(), version, ErrorStatus::NotWritable, i + 1);
        };
        match groups.iter_mut().find(|(h, _)| *h == handler_idx) {
            Some((_, items)) => items.push((i, vb)),
            None => groups.push((handler_idx, vec![(i, vb)])),
        }
    }

    let _serialised = agent.set_lock.lock().unwrap_or_else(|e| e.into_inner());
    let outcome = (|| -> Result<(), (ErrorStatus, usize)> {
        let mut prepared = Vec::with_capacity(groups.len());
        for (handler_idx, items) in &groups {
            let handler = agent.registry.handler_at(*handler_idx);
            match handler.prepare_set(items) {
                Ok(p) => prepared.push(p),
                Err(SetFailure { index, status }) => return Err((status, index + 1)),
            }
        }
        let mut committed: Vec<Box<dyn Undo>> = Vec::with_capacity(prepared.len());
        for p in prepared {
            match p.commit() {
                Ok(undo) => committed.push(undo),
                Err(failure) => {
                    // Every committed change is undone, even after one undo failed.
                    let mut undo_ok = true;
                    for undo in committed.into_iter().rev() {
                        if undo.undo().is_err() {
                            undo_ok = false;
                        }
                    }
                    return Err(if undo_ok {
                        (ErrorStatus::CommitFailed, failure.index + 1)
                    } else {
                        (ErrorStatus::UndoFailed, 0)
                    });
                }
            }
        }
        Ok(())
    })();
    drop(groups);
    match outcome {
        Ok(()) => {
            SnmpCounters::add(&agent.counters.in_total_set_vars, request.varbinds.len());
            request
        }
        Err((status, index)) => {
            // A handler reporting noError as a failure is a handler bug; keep the answer valid.
            let status = if status == ErrorStatus::NoError { ErrorStatus::GenErr } else { status };
            error(request, version, status, index)
        }
    }
}
