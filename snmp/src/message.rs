//! Whole SNMPv1/v2c messages: decoding (via snmp-parser) into owned types, and encoding.
//!
//! Decoding is strict where it matters for an agent: unknown versions, trailing bytes, OIDs
//! over [`MAX_SUB_IDS`] or with sub-identifiers over u32, values that
//! are not SMIv2 `ObjectSyntax`, v2-only types or exceptions inside a v1 message, and
//! undefined error-status codes are all errors. Known leniencies inherited from snmp-parser:
//! a zero-length primitive value of any universal type decodes as an empty OCTET STRING (the
//! parser cannot tell which type it was, and "" is by far the common case), and negative
//! request-ids, negative non-repeaters/max-repetitions and communities that are not UTF-8 are
//! rejected as malformed (net-snmp and this engine never send them).

use snmp_parser::asn1_rs::{FromBer, Oid as AsnOid};
use snmp_parser::{NetworkAddress, ObjectSyntax, SnmpGenericPdu, SnmpMessage, SnmpPdu, SnmpVariable, VarBindValue};

use crate::ber::{tag, BerWriter};
use crate::oid::{Oid, MAX_SUB_IDS};
use crate::pdu::{BulkPdu, ErrorStatus, GenericPdu, Pdu, TrapV1Pdu, VarBind};
use crate::value::Value;

/// The SNMP version of a message: of a community-based [`Message`] (v1, v2c), of a manager's target and of
/// a received notification (all three).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Version {
    /// SNMPv1 (wire value 0).
    V1,
    /// SNMPv2c (wire value 1).
    V2c,
    /// SNMPv3 (wire value 3), with the User-based Security Model. Never the version of a community-based
    /// [`Message`]: [`decode`] does not return it, and the usm module's wire codec encodes v3 messages.
    V3,
}

impl Version {
    /// The msgVersion field value.
    pub fn code(self) -> u32 {
        match self {
            Version::V1 => 0,
            Version::V2c => 1,
            Version::V3 => 3,
        }
    }
}

/// A decoded or to-be-encoded community-based message.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Message {
    pub version: Version,
    pub community: Vec<u8>,
    pub pdu: Pdu,
}

/// Why a datagram is not an acceptable SNMPv1/v2c message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Well-formed enough to read a version, but not 0 or 1 (counts as snmpInBadVersions).
    #[error("unsupported SNMP version")]
    BadVersion,
    /// Anything else (counts as snmpInASNParseErrs).
    #[error("malformed SNMP message: {0}")]
    Malformed(&'static str),
}

/// The msgVersion of a datagram that starts like an SNMP message (a SEQUENCE whose first element is a
/// one-octet INTEGER), read from its first octets without decoding the rest; `None` otherwise. Lets a
/// receiver send SNMPv3 messages (version 3) straight to the v3 decoder instead of failing a v1/v2c
/// decode first. [`decode`] and `usm::wire::decode_v3` still check everything.
pub fn peek_version(datagram: &[u8]) -> Option<u8> {
    if datagram.first() != Some(&0x30) {
        return None;
    }
    let first_len = *datagram.get(1)?;
    // Short form: the length in the octet; long form: 0x80 | the number of length octets that follow.
    let header = if first_len & 0x80 == 0 { 2 } else { 2 + usize::from(first_len & 0x7F) };
    match datagram.get(header..header + 3)? {
        [0x02, 0x01, version] => Some(*version),
        _ => None,
    }
}

/// Decodes one datagram.
pub fn decode(datagram: &[u8]) -> Result<Message, DecodeError> {
    let (rest, msg) = match SnmpMessage::from_ber(datagram) {
        Ok(ok) => ok,
        Err(e) => return Err(classify_parse_error(datagram, e)),
    };
    if !rest.is_empty() {
        return Err(DecodeError::Malformed("trailing bytes after the message"));
    }
    let version = match msg.version {
        0 => Version::V1,
        1 => Version::V2c,
        _ => return Err(DecodeError::BadVersion),
    };
    let pdu = convert_pdu(msg.pdu, version == Version::V1)?;
    Ok(Message { version, community: msg.community.into_bytes(), pdu })
}

/// snmp-parser's PDU -> ours, with the version's rules (`v1`: SNMPv1; otherwise SNMPv2c/v3).
pub(crate) fn convert_pdu(pdu: SnmpPdu<'_>, v1: bool) -> Result<Pdu, DecodeError> {
    Ok(match pdu {
        SnmpPdu::Generic(g) => convert_generic(g, v1)?,
        SnmpPdu::Bulk(b) => {
            if v1 {
                return Err(DecodeError::Malformed("GetBulkRequest in an SNMPv1 message"));
            }
            Pdu::GetBulk(BulkPdu {
                request_id: request_id(b.req_id)?,
                non_repeaters: b.non_repeaters,
                max_repetitions: b.max_repetitions,
                varbinds: convert_varbinds(&b.var, v1)?,
            })
        }
        SnmpPdu::TrapV1(t) => {
            if !v1 {
                return Err(DecodeError::Malformed("v1 Trap-PDU in an SNMPv2c message"));
            }
            let NetworkAddress::IPv4(addr) = t.agent_addr;
            Pdu::TrapV1(TrapV1Pdu {
                enterprise: convert_oid(&t.enterprise)?,
                agent_addr: addr.octets(),
                generic_trap: u32::from(t.generic_trap.0),
                specific_trap: t.specific_trap,
                timestamp: t.timestamp,
                varbinds: convert_varbinds(&t.var, v1)?,
            })
        }
    })
}

/// snmp-parser reports a version it does not know with a dedicated error; everything else is
/// a parse error.
fn classify_parse_error(
    datagram: &[u8],
    e: snmp_parser::asn1_rs::nom::Err<snmp_parser::error::SnmpError>,
) -> DecodeError {
    use snmp_parser::error::SnmpError;
    match e {
        snmp_parser::asn1_rs::nom::Err::Error(SnmpError::InvalidVersion)
        | snmp_parser::asn1_rs::nom::Err::Failure(SnmpError::InvalidVersion) => DecodeError::BadVersion,
        _ => {
            tracing::trace!(len = datagram.len(), error = %e, "SNMP decode failed");
            DecodeError::Malformed("BER/SNMP structure")
        }
    }
}

fn request_id(raw: u32) -> Result<i32, DecodeError> {
    i32::try_from(raw).map_err(|_| DecodeError::Malformed("request-id out of INTEGER32 range"))
}

fn convert_generic(g: SnmpGenericPdu<'_>, v1: bool) -> Result<Pdu, DecodeError> {
    let error_status = ErrorStatus::from_code(g.err.0).ok_or(DecodeError::Malformed("undefined error-status"))?;
    let inner = GenericPdu {
        request_id: request_id(g.req_id)?,
        error_status,
        error_index: g.err_index,
        varbinds: convert_varbinds(&g.var, v1)?,
    };
    Ok(match g.pdu_type.0 {
        0 => Pdu::Get(inner),
        1 => Pdu::GetNext(inner),
        2 => Pdu::Response(inner),
        3 => Pdu::Set(inner),
        6 if !v1 => Pdu::Inform(inner),
        7 if !v1 => Pdu::TrapV2(inner),
        8 if !v1 => Pdu::Report(inner),
        _ => return Err(DecodeError::Malformed("PDU type not valid for the version")),
    })
}

fn convert_varbinds(vars: &[SnmpVariable<'_>], v1: bool) -> Result<Vec<VarBind>, DecodeError> {
    let mut out = Vec::with_capacity(vars.len());
    for var in vars {
        out.push(VarBind { oid: convert_oid(&var.oid)?, value: convert_value(&var.val, v1)? });
    }
    Ok(out)
}

/// asn1-rs OID -> our `Oid`, enforcing the sub-identifier count and u32 range.
///
/// The content octets are read here rather than through asn1-rs's arc iterator, which
/// mis-splits a multi-octet first sub-identifier (`2.999`) and reads `0.0` as `0`.
pub(crate) fn convert_oid(oid: &AsnOid<'_>) -> Result<Oid, DecodeError> {
    oid_from_content(oid.as_bytes())
}

/// Parses OBJECT IDENTIFIER content octets (X.690 §8.19).
pub(crate) fn oid_from_content(content: &[u8]) -> Result<Oid, DecodeError> {
    if content.is_empty() {
        return Err(DecodeError::Malformed("empty OID"));
    }
    if content[content.len() - 1] & 0x80 != 0 {
        return Err(DecodeError::Malformed("OID ends inside a sub-identifier"));
    }
    let mut arcs = Vec::with_capacity(content.len().min(MAX_SUB_IDS) + 1);
    let mut acc: u64 = 0;
    for &byte in content {
        acc = (acc << 7) | u64::from(byte & 0x7F);
        // The first sub-identifier holds 80 + the second arc, so allow it that much headroom.
        if acc > u64::from(u32::MAX) + 80 {
            return Err(DecodeError::Malformed("OID sub-identifier over u32"));
        }
        if byte & 0x80 != 0 {
            continue;
        }
        if arcs.is_empty() {
            let (first, second) = match acc {
                0..=39 => (0, acc),
                40..=79 => (1, acc - 40),
                _ => (2, acc - 80),
            };
            arcs.push(first);
            arcs.push(u32::try_from(second).map_err(|_| DecodeError::Malformed("OID sub-identifier over u32"))?);
        } else {
            let arc = u32::try_from(acc).map_err(|_| DecodeError::Malformed("OID sub-identifier over u32"))?;
            if arcs.len() == MAX_SUB_IDS {
                return Err(DecodeError::Malformed("OID longer than 128 sub-identifiers"));
            }
            arcs.push(arc);
        }
        acc = 0;
    }
    Oid::new(arcs).map_err(|_| DecodeError::Malformed("OID longer than 128 sub-identifiers"))
}

fn convert_value(val: &VarBindValue<'_>, v1: bool) -> Result<Value, DecodeError> {
    let value = match val {
        VarBindValue::Unspecified => Value::Null,
        VarBindValue::NoSuchObject => Value::NoSuchObject,
        VarBindValue::NoSuchInstance => Value::NoSuchInstance,
        VarBindValue::EndOfMibView => Value::EndOfMibView,
        VarBindValue::Value(syntax) => match syntax {
            ObjectSyntax::Number(n) => Value::Integer(*n),
            ObjectSyntax::String(s) => Value::OctetString(s.to_vec()),
            ObjectSyntax::Object(o) => Value::ObjectId(convert_oid(o)?),
            ObjectSyntax::Empty => Value::OctetString(Vec::new()),
            ObjectSyntax::IpAddress(NetworkAddress::IPv4(a)) => Value::IpAddress(a.octets()),
            ObjectSyntax::Counter32(v) => Value::Counter32(*v),
            ObjectSyntax::Gauge32(v) => Value::Gauge32(*v),
            ObjectSyntax::TimeTicks(v) => Value::TimeTicks(*v),
            ObjectSyntax::Opaque(b) => Value::Opaque(b.to_vec()),
            ObjectSyntax::Counter64(v) => Value::Counter64(*v),
            ObjectSyntax::BitString(_)
            | ObjectSyntax::UnknownSimple(_)
            | ObjectSyntax::NsapAddress(_)
            | ObjectSyntax::UInteger32(_)
            | ObjectSyntax::UnknownApplication(_) => {
                return Err(DecodeError::Malformed("value is not SMIv2 ObjectSyntax"))
            }
        },
    };
    if v1 && (value.is_exception() || matches!(value, Value::Counter64(_))) {
        return Err(DecodeError::Malformed("SNMPv2 value type in an SNMPv1 message"));
    }
    Ok(value)
}

/// Encodes `msg`, appending to `out`.
pub fn encode_into(msg: &Message, out: &mut Vec<u8>) {
    let mut w = BerWriter::new(out);
    let outer = w.begin(tag::SEQUENCE);
    w.integer(tag::INTEGER, i64::from(msg.version.code()));
    w.octets(tag::OCTET_STRING, &msg.community);
    encode_pdu(&mut w, &msg.pdu);
    w.end(outer);
}

/// Appends `pdu`'s own TLV (a v3 ScopedPDU carries it after the context fields).
pub fn encode_pdu(w: &mut BerWriter<'_>, pdu: &Pdu) {
    let pdu_open = w.begin(pdu.tag());
    match pdu {
        Pdu::Get(p)
        | Pdu::GetNext(p)
        | Pdu::Response(p)
        | Pdu::Set(p)
        | Pdu::Inform(p)
        | Pdu::TrapV2(p)
        | Pdu::Report(p) => {
            w.integer(tag::INTEGER, i64::from(p.request_id));
            w.integer(tag::INTEGER, i64::from(p.error_status.code()));
            w.integer(tag::INTEGER, i64::from(p.error_index));
            write_varbinds(w, &p.varbinds);
        }
        Pdu::GetBulk(p) => {
            w.integer(tag::INTEGER, i64::from(p.request_id));
            w.integer(tag::INTEGER, i64::from(p.non_repeaters));
            w.integer(tag::INTEGER, i64::from(p.max_repetitions));
            write_varbinds(w, &p.varbinds);
        }
        Pdu::TrapV1(t) => {
            w.oid(&t.enterprise);
            w.octets(tag::IP_ADDRESS, &t.agent_addr);
            w.integer(tag::INTEGER, i64::from(t.generic_trap));
            w.integer(tag::INTEGER, i64::from(t.specific_trap));
            w.unsigned(tag::TIME_TICKS, u64::from(t.timestamp));
            write_varbinds(w, &t.varbinds);
        }
    }
    w.end(pdu_open);
}

/// Decodes one PDU TLV with the SNMPv2c rules (the PDU of a decrypted v3 ScopedPDU), by reading it
/// as the PDU of a v2c message around it.
pub fn decode_pdu(tlv: &[u8]) -> Result<Pdu, DecodeError> {
    let mut wrapped = Vec::with_capacity(tlv.len() + 12);
    let mut w = BerWriter::new(&mut wrapped);
    let outer = w.begin(tag::SEQUENCE);
    w.integer(tag::INTEGER, 1);
    w.octets(tag::OCTET_STRING, b"");
    w.raw(tlv);
    w.end(outer);
    decode(&wrapped).map(|m| m.pdu)
}

/// Encodes `msg` into a new buffer.
pub fn encode(msg: &Message) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    encode_into(msg, &mut out);
    out
}

fn write_varbinds(w: &mut BerWriter<'_>, varbinds: &[VarBind]) {
    let list = w.begin(tag::SEQUENCE);
    for vb in varbinds {
        w.varbind(&vb.oid, &vb.value);
    }
    w.end(list);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oid::Oid;
    use crate::pdu::{GenericPdu, VarBind};

    #[test]
    fn peek_version_reads_the_version_only_of_messages() {
        let get = Pdu::Get(GenericPdu::request(1, vec![VarBind::null(Oid::from_slice(&[1, 3, 6, 1, 2, 1, 1, 1, 0]))]));
        for (version, code) in [(Version::V1, 0), (Version::V2c, 1)] {
            let bytes = encode(&Message { version, community: b"public".to_vec(), pdu: get.clone() });
            assert_eq!(peek_version(&bytes), Some(code));
        }
        // Long-form outer length (a 300-octet community), and SNMPv3's header.
        let long = encode(&Message { version: Version::V2c, community: vec![b'c'; 300], pdu: get });
        assert_eq!(long[1], 0x82);
        assert_eq!(peek_version(&long), Some(1));
        assert_eq!(peek_version(&[0x30, 0x0e, 0x02, 0x01, 0x03, 0x30]), Some(3));
        // Not messages: other tags, a multi-octet or missing version, truncation.
        for bad in [
            &[][..],
            &[0x30],
            &[0x04, 0x03, 0x02, 0x01, 0x01],
            &[0x30, 0x05, 0x02, 0x02, 0x01, 0x00],
            &[0x30, 0x84, 0xff],
        ] {
            assert_eq!(peek_version(bad), None, "{bad:?}");
        }
    }
}
