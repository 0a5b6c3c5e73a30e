//! Test support shared with other crates: a corpus of hostile or malformed request datagrams (SNMPv1/v2c, and
//! SNMPv3 with USM in [`v3_hostile_corpus`]).
//!
//! Each case says what a correct agent does with it: count a parse error, count a bad version,
//! or answer (valid but awkward requests such as max-repetitions 2^31-1). Replay the corpus at
//! an agent, then check that a normal GET still works and the counters moved as expected.

use crate::ber::{tag, BerWriter};
use crate::message::{encode, Message, Version};
use crate::oid::Oid;
use crate::pdu::{BulkPdu, GenericPdu, Pdu, VarBind};
use crate::usm::wire::decode_v3;
use crate::usm::LocalUser;
use crate::value::Value;

/// What a correct agent does with a corpus datagram.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Expected {
    /// Dropped, counted in snmpInASNParseErrs.
    ParseError,
    /// Dropped, counted in snmpInBadVersions.
    BadVersion,
    /// Valid SNMP: answered with some Response (given the communities the corpus was made for).
    Answered,
}

/// One corpus datagram.
#[derive(Clone, Debug)]
pub struct MalformedCase {
    pub name: &'static str,
    pub datagram: Vec<u8>,
    pub expected: Expected,
}

/// sysDescr.0, present in every agent.
const SYS_DESCR_0: [u32; 9] = [1, 3, 6, 1, 2, 1, 1, 1, 0];

/// A GetRequest for sysDescr.0 with `community` (v2c).
pub fn get_sys_descr(community: &str, request_id: i32) -> Vec<u8> {
    encode(&Message {
        version: Version::V2c,
        community: community.as_bytes().to_vec(),
        pdu: Pdu::Get(GenericPdu::request(request_id, vec![VarBind::null(Oid::from_slice(&SYS_DESCR_0))])),
    })
}

/// A message whose PDU is `pdu_tag` around `body` (request-id, error fields, varbinds) as given.
fn raw_message(version: i64, community: &str, pdu_tag: u8, body: &[u8]) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut w = BerWriter::new(&mut buf);
    let outer = w.begin(tag::SEQUENCE);
    w.integer(tag::INTEGER, version);
    w.octets(tag::OCTET_STRING, community.as_bytes());
    w.octets(pdu_tag, body);
    w.end(outer);
    buf
}

/// request-id 1, error-status 0, error-index 0, then one varbind made of `oid_tlv` and
/// `value_tlv` (raw encodings).
fn raw_request_body(oid_tlv: &[u8], value_tlv: &[u8]) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut w = BerWriter::new(&mut buf);
    w.integer(tag::INTEGER, 1);
    w.integer(tag::INTEGER, 0);
    w.integer(tag::INTEGER, 0);
    let list = w.begin(tag::SEQUENCE);
    let vb = w.begin(tag::SEQUENCE);
    buf.extend_from_slice(oid_tlv);
    buf.extend_from_slice(value_tlv);
    let mut w = BerWriter::new(&mut buf);
    w.end(vb);
    w.end(list);
    buf
}

fn oid_tlv(oid: &Oid) -> Vec<u8> {
    let mut buf = Vec::new();
    BerWriter::new(&mut buf).oid(oid);
    buf
}

fn sys_descr_tlv() -> Vec<u8> {
    oid_tlv(&Oid::from_slice(&SYS_DESCR_0))
}

/// The corpus, for an agent reading with `read_community` and writing with `write_community`.
pub fn malformed_corpus(read_community: &str, write_community: &str) -> Vec<MalformedCase> {
    let mut c = Cases(Vec::new());
    framing_cases(&mut c, read_community);
    header_cases(&mut c, read_community);
    varbind_cases(&mut c, read_community);
    v2_in_v1_cases(&mut c, read_community);
    answered_cases(&mut c, read_community, write_community);
    c.0
}

/// The corpus as it is built.
struct Cases(Vec<MalformedCase>);

impl Cases {
    fn case(&mut self, name: &'static str, datagram: Vec<u8>, expected: Expected) {
        self.0.push(MalformedCase { name, datagram, expected });
    }
}

/// A GET of `oid` = `value` (raw encodings) with `community`, as a v1 message.
fn raw_get(community: &str, oid: &[u8], value: &[u8]) -> Vec<u8> {
    raw_message(1, community, 0xA0, &raw_request_body(oid, value))
}

/// Broken BER framing of a good GET: truncation, lengths, the outer tag, trailing bytes.
fn framing_cases(c: &mut Cases, read_community: &str) {
    use Expected::*;
    let good = get_sys_descr(read_community, 7);
    c.case("zero-length datagram", Vec::new(), ParseError);
    c.case("lone SEQUENCE tag", vec![0x30], ParseError);
    c.case("truncated GET", good[..good.len() / 2].to_vec(), ParseError);
    c.case("GET missing its last byte", good[..good.len() - 1].to_vec(), ParseError);
    let mut past_end = good.clone();
    past_end[1] = past_end[1].wrapping_add(40);
    c.case("outer length past the datagram", past_end, ParseError);
    let mut huge_len = vec![0x30, 0x84, 0x7F, 0xFF, 0xFF, 0xFF];
    huge_len.extend_from_slice(&good[2..]);
    c.case("outer length 2^31-1", huge_len, ParseError);
    let mut nine_len = vec![0x30, 0x89];
    nine_len.extend_from_slice(&[0xFF; 9]);
    c.case("nine length octets", nine_len, ParseError);
    let mut indefinite = vec![0x30, 0x80];
    indefinite.extend_from_slice(&good[2..]);
    indefinite.extend_from_slice(&[0, 0]);
    c.case("indefinite length", indefinite, ParseError);
    let mut wrong_outer = good.clone();
    wrong_outer[0] = 0x31;
    c.case("SET OF instead of SEQUENCE", wrong_outer, ParseError);
    let mut trailing = good.clone();
    trailing.extend_from_slice(&[0x05, 0x00]);
    c.case("trailing bytes", trailing, ParseError);
}

/// Bad message headers: unknown or multi-byte PDU tags, versions that are not v1 or v2c.
fn header_cases(c: &mut Cases, read_community: &str) {
    use Expected::*;
    let null = [tag::NULL, 0];
    c.case(
        "unknown PDU tag 0xA9",
        raw_message(1, read_community, 0xA9, &raw_request_body(&sys_descr_tlv(), &null)),
        ParseError,
    );
    c.case(
        "high-tag-number PDU",
        {
            let mut m = raw_message(1, read_community, 0xBF, &raw_request_body(&sys_descr_tlv(), &null));
            // Turn the one-byte PDU tag into 0xBF 0x9F 0x7F (a multi-byte tag number).
            let pos = m.iter().position(|&b| b == 0xBF).unwrap_or(0);
            m.splice(pos + 1..pos + 1, [0x9F, 0x7F]);
            m
        },
        ParseError,
    );
    c.case(
        "version is an OCTET STRING",
        {
            let mut buf = Vec::new();
            let mut w = BerWriter::new(&mut buf);
            let outer = w.begin(tag::SEQUENCE);
            w.octets(tag::OCTET_STRING, b"\x01");
            w.octets(tag::OCTET_STRING, read_community.as_bytes());
            w.octets(0xA0, &raw_request_body(&sys_descr_tlv(), &null));
            w.end(outer);
            buf
        },
        ParseError,
    );
    c.case(
        "version 3 with a v2c body",
        raw_message(3, read_community, 0xA0, &raw_request_body(&sys_descr_tlv(), &null)),
        BadVersion,
    );
    c.case(
        "version 2 (SNMPv2u)",
        raw_message(2, read_community, 0xA0, &raw_request_body(&sys_descr_tlv(), &null)),
        BadVersion,
    );
    c.case(
        "negative version",
        raw_message(-1, read_community, 0xA0, &raw_request_body(&sys_descr_tlv(), &null)),
        ParseError,
    );
}

/// Bad varbinds: OIDs out of range or cut short, values of types or sizes SNMP does not have, a bad list.
fn varbind_cases(c: &mut Cases, read_community: &str) {
    use Expected::*;
    let null = [tag::NULL, 0];
    let get = |oid: &[u8], value: &[u8]| raw_get(read_community, oid, value);
    c.case("OID with 129 sub-identifiers", get(&oid_tlv(&Oid::from_slice(&[1; 129])), &null), ParseError);
    c.case("OID sub-identifier 2^32", get(&[0x06, 0x07, 0x2B, 0x06, 0x90, 0x80, 0x80, 0x80, 0x00], &null), ParseError);
    c.case(
        "OID sub-identifier over 64 bits",
        get(&[0x06, 0x0D, 0x2B, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F], &null),
        ParseError,
    );
    c.case("OID ending inside a sub-identifier", get(&[0x06, 0x03, 0x2B, 0x06, 0x81], &null), ParseError);
    c.case("empty OID", get(&[0x06, 0x00], &null), ParseError);
    c.case("BOOLEAN value", get(&sys_descr_tlv(), &[0x01, 0x01, 0xFF]), ParseError);
    c.case("IpAddress of 5 octets", get(&sys_descr_tlv(), &[0x40, 0x05, 1, 2, 3, 4, 5]), ParseError);
    c.case("INTEGER over 32 bits", get(&sys_descr_tlv(), &[0x02, 0x05, 0x01, 0, 0, 0, 0]), ParseError);
    c.case(
        "varbind list is an OCTET STRING",
        {
            let mut body = Vec::new();
            let mut w = BerWriter::new(&mut body);
            w.integer(tag::INTEGER, 1);
            w.integer(tag::INTEGER, 0);
            w.integer(tag::INTEGER, 0);
            w.octets(tag::OCTET_STRING, b"junk");
            raw_message(1, read_community, 0xA0, &body)
        },
        ParseError,
    );
    c.case(
        "deeply nested SEQUENCEs as a value",
        {
            let depth = 2000;
            let mut v = Vec::with_capacity(depth * 4);
            for i in 0..depth {
                let remaining = (depth - i - 1) * 4;
                v.extend_from_slice(&[0x30, 0x82, (remaining >> 8) as u8, remaining as u8]);
            }
            get(&sys_descr_tlv(), &v)
        },
        ParseError,
    );
}

/// SNMPv2c-only content in SNMPv1 messages.
fn v2_in_v1_cases(c: &mut Cases, read_community: &str) {
    use Expected::*;
    c.case(
        "GetBulk in an SNMPv1 message",
        encode(&Message {
            version: Version::V1,
            community: read_community.as_bytes().to_vec(),
            pdu: Pdu::GetBulk(BulkPdu {
                request_id: 3,
                non_repeaters: 0,
                max_repetitions: 10,
                varbinds: vec![VarBind::null(Oid::from_slice(&[1, 3, 6]))],
            }),
        }),
        ParseError,
    );
    c.case(
        "Counter64 in an SNMPv1 message",
        raw_message(0, read_community, 0xA0, &raw_request_body(&sys_descr_tlv(), &[0x46, 0x01, 0x05])),
        ParseError,
    );
}

/// Valid requests that are awkward to answer: huge max-repetitions, a response too big, a huge SET.
fn answered_cases(c: &mut Cases, read_community: &str, write_community: &str) {
    use Expected::*;
    c.case(
        "GetBulk max-repetitions 2^31-1",
        encode(&Message {
            version: Version::V2c,
            community: read_community.as_bytes().to_vec(),
            pdu: Pdu::GetBulk(BulkPdu {
                request_id: 4,
                non_repeaters: 0,
                max_repetitions: i32::MAX as u32,
                varbinds: vec![VarBind::null(Oid::from_slice(&[1, 3, 6]))],
            }),
        }),
        Answered,
    );
    c.case(
        "GetBulk max-repetitions 2^31-1 and no repeaters",
        encode(&Message {
            version: Version::V2c,
            community: read_community.as_bytes().to_vec(),
            pdu: Pdu::GetBulk(BulkPdu {
                request_id: 5,
                non_repeaters: 1,
                max_repetitions: i32::MAX as u32,
                varbinds: vec![VarBind::null(Oid::from_slice(&[1, 3, 6]))],
            }),
        }),
        Answered,
    );
    c.case(
        "GET of 3000 varbinds (response too big)",
        encode(&Message {
            version: Version::V2c,
            community: read_community.as_bytes().to_vec(),
            pdu: Pdu::Get(GenericPdu::request(
                6,
                (0..3000).map(|i| VarBind::null(Oid::from_slice(&[1, 3, 6, 1, 2, 1, 1, 1, 0, i]))).collect(),
            )),
        }),
        Answered,
    );
    c.case(
        "SET of a 65000-octet string",
        encode(&Message {
            version: Version::V2c,
            community: write_community.as_bytes().to_vec(),
            pdu: Pdu::Set(GenericPdu::request(
                8,
                vec![VarBind::new(
                    Oid::from_slice(&[1, 3, 6, 1, 2, 1, 1, 4, 0]),
                    Value::OctetString(vec![b'x'; 65000]),
                )],
            )),
        }),
        Answered,
    );
}

/// What a correct SNMPv3 agent does with a [`v3_hostile_corpus`] datagram.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum V3Expected {
    /// Dropped, counted in snmpInASNParseErrs.
    ParseError,
    /// Dropped, counted in snmpInvalidMsgs.
    InvalidMsg,
    /// Dropped, counted in snmpUnknownSecurityModels.
    UnknownSecurityModel,
    /// Answered with a Report of usmStats.<arc>.0.
    Report(u32),
    /// Counted in usmStats.<arc> but not answered (not reportable).
    Unanswered(u32),
}

/// One v3 corpus datagram.
#[derive(Clone, Debug)]
pub struct V3Case {
    pub name: &'static str,
    pub datagram: Vec<u8>,
    pub expected: V3Expected,
}

/// A v3 message from its raw parts: msgGlobalData fields, the security parameters' content and msgData.
fn raw_v3(msg_id: i64, max_size: i64, flags: &[u8], model: i64, security: &[u8], data: &[u8]) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut w = BerWriter::new(&mut buf);
    let outer = w.begin(tag::SEQUENCE);
    w.integer(tag::INTEGER, 3);
    let global = w.begin(tag::SEQUENCE);
    w.integer(tag::INTEGER, msg_id);
    w.integer(tag::INTEGER, max_size);
    w.octets(tag::OCTET_STRING, flags);
    w.integer(tag::INTEGER, model);
    w.end(global);
    w.octets(tag::OCTET_STRING, security);
    w.raw(data);
    w.end(outer);
    buf
}

/// UsmSecurityParameters with the given fields.
fn usm_params(engine: &[u8], boots: i64, time: i64, user: &[u8], auth: &[u8], privacy: &[u8]) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut w = BerWriter::new(&mut buf);
    let open = w.begin(tag::SEQUENCE);
    w.octets(tag::OCTET_STRING, engine);
    w.integer(tag::INTEGER, boots);
    w.integer(tag::INTEGER, time);
    w.octets(tag::OCTET_STRING, user);
    w.octets(tag::OCTET_STRING, auth);
    w.octets(tag::OCTET_STRING, privacy);
    w.end(open);
    buf
}

/// A plaintext ScopedPDU around `pdu_tlv`.
fn scoped(engine: &[u8], pdu_tlv: &[u8]) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut w = BerWriter::new(&mut buf);
    let open = w.begin(tag::SEQUENCE);
    w.octets(tag::OCTET_STRING, engine);
    w.octets(tag::OCTET_STRING, b"");
    w.raw(pdu_tlv);
    w.end(open);
    buf
}

fn get_tlv() -> Vec<u8> {
    let mut buf = Vec::new();
    crate::message::encode_pdu(
        &mut BerWriter::new(&mut buf),
        &Pdu::Get(GenericPdu::request(5, vec![VarBind::null(Oid::from_slice(&SYS_DESCR_0))])),
    );
    buf
}

/// Signs a raw message built with zeroed authentication parameters of the right length with `user`'s key
/// (for cases that must pass the digest check to reach a later one).
fn signed(mut msg: Vec<u8>, user: &LocalUser) -> Vec<u8> {
    if let (Ok(decoded), Some(auth)) = (decode_v3(&msg), user.auth) {
        let range = decoded.auth_range();
        let mac = crate::usm::crypto::sign(auth, &user.auth_key, &msg);
        if mac.len() == range.len() {
            msg[range].copy_from_slice(&mac);
        }
    }
    msg
}

/// Hostile SNMPv3 datagrams for an agent whose engine is `engine` in its `boots`-th run (and just started), with
/// the authPriv user `user` (localised to `engine`): truncated and oversized security parameters, bad lengths,
/// invalid msgFlags, other security models, and well-signed messages whose privacy part is broken.
pub fn v3_hostile_corpus(engine: &[u8], boots: u32, user: &LocalUser) -> Vec<V3Case> {
    use V3Expected::*;
    let boots = i64::from(boots);
    let name = user.name.as_bytes();
    let mac0 = vec![0u8; user.auth.map_or(12, |a| a.mac_len())];
    let get = scoped(engine, &get_tlv());
    let discovery = raw_v3(1, 65507, &[4], 3, &usm_params(b"", 0, 0, b"", b"", b""), &scoped(b"", &get_tlv()));
    let good_params = usm_params(engine, boots, 0, name, &mac0, &[1; 8]);
    let junk = vec![tag::OCTET_STRING, 16, 0x55, 0xAA, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14];
    let mut cases = vec![
        V3Case { name: "v3 discovery (empty engine ID)", datagram: discovery.clone(), expected: Report(4) },
        V3Case {
            name: "v3 truncated datagram",
            datagram: discovery[..discovery.len() / 2].to_vec(),
            expected: ParseError,
        },
        V3Case {
            name: "v3 USM parameters cut short",
            datagram: raw_v3(2, 65507, &[4], 3, &good_params[..good_params.len() / 2], &get),
            expected: ParseError,
        },
        V3Case {
            name: "v3 USM parameters not a SEQUENCE",
            datagram: raw_v3(3, 65507, &[4], 3, b"junk", &get),
            expected: ParseError,
        },
        V3Case {
            name: "v3 engine ID of 4096 octets",
            datagram: raw_v3(4, 65507, &[4], 3, &usm_params(&[0x80; 4096], boots, 0, name, b"", b""), &get),
            expected: ParseError,
        },
        V3Case {
            name: "v3 user name of 33 octets",
            datagram: raw_v3(5, 65507, &[4], 3, &usm_params(engine, boots, 0, &[b'u'; 33], b"", b""), &get),
            expected: ParseError,
        },
        V3Case {
            name: "v3 msgFlags privacy without authentication",
            datagram: raw_v3(6, 65507, &[6], 3, &usm_params(engine, boots, 0, name, b"", b""), &junk),
            expected: InvalidMsg,
        },
        V3Case {
            name: "v3 msgFlags of two octets",
            datagram: raw_v3(7, 65507, &[4, 0], 3, &good_params, &get),
            expected: ParseError,
        },
        V3Case {
            name: "v3 msgMaxSize 100",
            datagram: raw_v3(8, 100, &[4], 3, &good_params, &get),
            expected: ParseError,
        },
        V3Case {
            name: "v3 msgID 2^31",
            datagram: raw_v3(1 << 31, 65507, &[4], 3, &good_params, &get),
            expected: ParseError,
        },
        V3Case {
            name: "v3 negative engine boots",
            datagram: raw_v3(9, 65507, &[4], 3, &usm_params(engine, -1, 0, name, b"", b""), &get),
            expected: ParseError,
        },
        V3Case {
            name: "v3 security model 99",
            datagram: raw_v3(10, 65507, &[4], 99, b"opaque", &get),
            expected: UnknownSecurityModel,
        },
        V3Case {
            name: "v3 reportable Response for an unknown engine",
            datagram: raw_v3(11, 65507, &[4], 3, &usm_params(b"\x80\0\0\0\x04other", 1, 0, name, b"", b""), &{
                let mut tlv = Vec::new();
                crate::message::encode_pdu(
                    &mut BerWriter::new(&mut tlv),
                    &Pdu::Response(GenericPdu::request(1, Vec::new())),
                );
                scoped(engine, &tlv)
            }),
            expected: Unanswered(4),
        },
        V3Case {
            name: "v3 v1 Trap-PDU",
            datagram: raw_v3(12, 65507, &[4], 3, &usm_params(engine, boots, 0, name, b"", b""), &{
                let mut body = Vec::new();
                let mut w = BerWriter::new(&mut body);
                w.oid(&Oid::from_slice(&[1, 3, 6, 1]));
                w.octets(tag::IP_ADDRESS, &[127, 0, 0, 1]);
                w.integer(tag::INTEGER, 0);
                w.integer(tag::INTEGER, 0);
                w.unsigned(tag::TIME_TICKS, 0);
                let l = w.begin(tag::SEQUENCE);
                w.end(l);
                let mut tlv = Vec::new();
                BerWriter::new(&mut tlv).octets(0xA4, &body);
                scoped(engine, &tlv)
            }),
            expected: ParseError,
        },
        V3Case {
            name: "v3 authPriv with empty authentication parameters",
            datagram: raw_v3(13, 65507, &[7], 3, &usm_params(engine, boots, 0, name, b"", &[1; 8]), &junk),
            expected: Report(5),
        },
        V3Case {
            name: "v3 authPriv signed, salt of 3 octets",
            datagram: signed(
                raw_v3(14, 65507, &[7], 3, &usm_params(engine, boots, 0, name, &mac0, &[1; 3]), &junk),
                user,
            ),
            expected: Report(6),
        },
        V3Case {
            name: "v3 authPriv signed, ciphertext that is no ScopedPDU",
            datagram: signed(raw_v3(15, 65507, &[7], 3, &good_params, &junk), user),
            expected: Report(6),
        },
        V3Case {
            name: "v3 authPriv signed, engine time 100000 s off",
            datagram: signed(
                raw_v3(16, 65507, &[7], 3, &usm_params(engine, boots, 100_000, name, &mac0, &[1; 8]), &junk),
                user,
            ),
            expected: Report(2),
        },
    ];
    let mut past_end = discovery.clone();
    past_end[1] = past_end[1].wrapping_add(40);
    cases.push(V3Case { name: "v3 outer length past the datagram", datagram: past_end, expected: ParseError });
    cases
}
