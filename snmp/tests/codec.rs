//! Encoder/decoder round trips (our BER writer against snmp-parser), OID behaviour, and
//! robustness of `decode` against the malformed corpus and random mutations.

use dvsan_snmp::message::{decode, encode, DecodeError, Message, Version};
use dvsan_snmp::oid::{Oid, OidError};
use dvsan_snmp::pdu::{BulkPdu, ErrorStatus, GenericPdu, Pdu, TrapV1Pdu, VarBind};
use dvsan_snmp::testing::{malformed_corpus, Expected};
use dvsan_snmp::value::Value;

fn oid(s: &str) -> Oid {
    s.parse().unwrap()
}

fn all_values() -> Vec<Value> {
    vec![
        Value::Integer(0),
        Value::Integer(-1),
        Value::Integer(i32::MIN),
        Value::Integer(i32::MAX),
        Value::Integer(128),
        Value::OctetString(Vec::new()),
        Value::OctetString(b"hello".to_vec()),
        Value::OctetString(vec![0xFF; 300]),
        Value::OctetString(vec![7; 70000]),
        Value::Null,
        Value::ObjectId(oid("1.3.6.1.4.1.32473.1")),
        Value::ObjectId(oid("0.0")),
        Value::ObjectId(oid("2.999.4294967295")),
        Value::IpAddress([192, 0, 2, 1]),
        Value::Counter32(0),
        Value::Counter32(u32::MAX),
        Value::Gauge32(2_147_483_648),
        Value::TimeTicks(123_456),
        Value::Opaque(vec![0x9F, 0x78, 0x04, 0, 0, 0, 0]),
        Value::Counter64(0),
        Value::Counter64(u64::MAX),
        Value::Counter64(1 << 63),
        Value::NoSuchObject,
        Value::NoSuchInstance,
        Value::EndOfMibView,
    ]
}

fn roundtrip(msg: &Message) {
    let bytes = encode(msg);
    let back = decode(&bytes).unwrap_or_else(|e| panic!("decode of {msg:?} failed: {e}"));
    assert_eq!(&back, msg);
}

#[test]
fn every_value_type_round_trips() {
    let varbinds: Vec<VarBind> = all_values()
        .into_iter()
        .enumerate()
        .map(|(i, v)| VarBind::new(oid("1.3.6.1.2.1.1").child(i as u32), v))
        .collect();
    roundtrip(&Message {
        version: Version::V2c,
        community: b"public".to_vec(),
        pdu: Pdu::Response(GenericPdu {
            request_id: i32::MAX,
            error_status: ErrorStatus::NoError,
            error_index: 0,
            varbinds,
        }),
    });
}

#[test]
fn every_pdu_type_round_trips() {
    let vbs = vec![VarBind::null(oid("1.3.6.1.2.1.1.1.0")), VarBind::new(oid("1.3.6.1.2.1.1.5.0"), Value::string("x"))];
    let generic = |id| GenericPdu::request(id, vbs.clone());
    let v2 = [
        Pdu::Get(generic(1)),
        Pdu::GetNext(generic(2)),
        Pdu::Set(generic(3)),
        Pdu::Response(GenericPdu {
            request_id: 4,
            error_status: ErrorStatus::InconsistentName,
            error_index: 2,
            varbinds: vbs.clone(),
        }),
        Pdu::GetBulk(BulkPdu { request_id: 5, non_repeaters: 1, max_repetitions: 1000, varbinds: vbs.clone() }),
        Pdu::Inform(generic(6)),
        Pdu::TrapV2(generic(7)),
        Pdu::Report(generic(8)),
        Pdu::Get(GenericPdu::request(0, Vec::new())),
    ];
    for pdu in v2 {
        roundtrip(&Message { version: Version::V2c, community: b"c".to_vec(), pdu });
    }
    let v1 = [
        Pdu::Get(generic(1)),
        Pdu::TrapV1(TrapV1Pdu {
            enterprise: oid("1.3.6.1.4.1.32473"),
            agent_addr: [127, 0, 0, 1],
            generic_trap: 6,
            specific_trap: 17,
            timestamp: 4242,
            varbinds: vbs.clone(),
        }),
    ];
    for pdu in v1 {
        roundtrip(&Message { version: Version::V1, community: Vec::new(), pdu });
    }
}

#[test]
fn long_community_and_many_varbinds_round_trip() {
    let varbinds = (0..2000)
        .map(|i| VarBind::new(oid("1.3.6.1.4.1.32473.1.3.1.2").child(i), Value::Counter64(u64::from(i) << 40)))
        .collect();
    roundtrip(&Message {
        version: Version::V2c,
        community: vec![b'a'; 1000],
        pdu: Pdu::Response(GenericPdu { request_id: 0, error_status: ErrorStatus::NoError, error_index: 0, varbinds }),
    });
}

#[test]
fn v2_only_values_rejected_in_v1() {
    for value in [Value::Counter64(1), Value::NoSuchObject, Value::EndOfMibView] {
        let bytes = encode(&Message {
            version: Version::V1,
            community: b"public".to_vec(),
            pdu: Pdu::Response(GenericPdu::request(1, vec![VarBind::new(oid("1.3.6"), value)])),
        });
        assert!(matches!(decode(&bytes), Err(DecodeError::Malformed(_))));
    }
}

#[test]
fn known_encoding_of_a_net_snmp_get() {
    // snmpget -v2c -c public <agent> 1.3.6.1.2.1.1.1.0, request-id 0x1234 (as net-snmp sends it).
    let bytes = [
        0x30, 0x27, 0x02, 0x01, 0x01, 0x04, 0x06, b'p', b'u', b'b', b'l', b'i', b'c', 0xA0, 0x1A, 0x02, 0x02, 0x12,
        0x34, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00, 0x30, 0x0E, 0x30, 0x0C, 0x06, 0x08, 0x2B, 0x06, 0x01, 0x02, 0x01,
        0x01, 0x01, 0x00, 0x05, 0x00,
    ];
    let msg = decode(&bytes).unwrap();
    assert_eq!(msg.version, Version::V2c);
    assert_eq!(msg.community, b"public");
    assert_eq!(msg.pdu, Pdu::Get(GenericPdu::request(0x1234, vec![VarBind::null(oid("1.3.6.1.2.1.1.1.0"))])));
    assert_eq!(encode(&msg), bytes);
}

#[test]
fn oid_order_text_and_limits() {
    let mut v = [
        oid("1.3.6.1.2.1.1.10"),
        oid("1.3.6.1.2.1.1.9.0"),
        oid("1.3.6.1.2.1.1"),
        oid("1.3.6.1.2.1.1.9"),
        oid("1.3.6.1.2.1.2"),
    ];
    v.sort();
    let text: Vec<String> = v.iter().map(ToString::to_string).collect();
    assert_eq!(text, ["1.3.6.1.2.1.1", "1.3.6.1.2.1.1.9", "1.3.6.1.2.1.1.9.0", "1.3.6.1.2.1.1.10", "1.3.6.1.2.1.2"]);
    assert_eq!(oid(".1.3.6"), oid("1.3.6"));
    assert_eq!(oid("1.3.6.1.4").child(5), oid("1.3.6.1.4.5"));
    assert!(oid("1.3.6.1.4.1").starts_with(&[1, 3, 6]));
    assert!(!oid("1.3.6.1.4.1").starts_with(&[1, 3, 7]));
    assert_eq!(oid("1.3.6.1").suffix_after(&[1, 3]), Some(&[6u32, 1][..]));
    assert_eq!(format!("{}", oid("4294967295.0")), "4294967295.0");
    for bad in ["1..3", "1.3.", "a.b", "1.+3", "1.4294967296", "1. 3"] {
        assert!(matches!(bad.parse::<Oid>(), Err(OidError::Syntax(_))), "{bad}");
    }
    let long = vec!["1"; 129].join(".");
    assert_eq!(long.parse::<Oid>(), Err(OidError::TooLong));
    assert!(vec!["1"; 128].join(".").parse::<Oid>().is_ok());
    assert!(Oid::new(vec![1; 129]).is_err());
}

#[test]
fn max_length_oid_round_trips_but_129_does_not_decode() {
    let ok = Oid::new(vec![1; 128]).unwrap();
    roundtrip(&Message {
        version: Version::V2c,
        community: b"p".to_vec(),
        pdu: Pdu::Get(GenericPdu::request(1, vec![VarBind::null(ok)])),
    });
    let bytes = encode(&Message {
        version: Version::V2c,
        community: b"p".to_vec(),
        pdu: Pdu::Get(GenericPdu::request(1, vec![VarBind::null(Oid::from_slice(&[1; 129]))])),
    });
    assert!(decode(&bytes).is_err());
}

#[test]
fn corpus_decodes_as_expected() {
    for case in malformed_corpus("public", "private") {
        let result = decode(&case.datagram);
        match case.expected {
            Expected::ParseError => {
                assert!(matches!(result, Err(DecodeError::Malformed(_))), "{}: {result:?}", case.name)
            }
            Expected::BadVersion => {
                assert_eq!(result, Err(DecodeError::BadVersion), "{}", case.name)
            }
            Expected::Answered => assert!(result.is_ok(), "{}: {result:?}", case.name),
        }
    }
}

/// A small deterministic PRNG (xorshift) so the mutation test needs no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_mutations_never_panic_and_reencode_consistently() {
    let seeds: Vec<Vec<u8>> = vec![
        encode(&Message {
            version: Version::V2c,
            community: b"public".to_vec(),
            pdu: Pdu::Response(GenericPdu::request(
                77,
                all_values()
                    .into_iter()
                    .filter(|v| v.as_bytes().is_none_or(|b| b.len() < 1000))
                    .enumerate()
                    .map(|(i, v)| VarBind::new(oid("1.3.6.1.4.1").child(i as u32), v))
                    .collect(),
            )),
        }),
        encode(&Message {
            version: Version::V1,
            community: b"public".to_vec(),
            pdu: Pdu::TrapV1(TrapV1Pdu {
                enterprise: oid("1.3.6.1.4.1.32473"),
                agent_addr: [10, 0, 0, 1],
                generic_trap: 2,
                specific_trap: 0,
                timestamp: 99,
                varbinds: vec![VarBind::new(oid("1.3.6.1.2.1.2.2.1.1.1"), Value::Integer(1))],
            }),
        }),
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut decoded = 0;
    for round in 0..20_000 {
        let mut m = seeds[round % seeds.len()].clone();
        for _ in 0..=rng.below(4) {
            match rng.below(4) {
                0 => {
                    let i = rng.below(m.len());
                    m[i] = rng.next() as u8;
                }
                1 => {
                    let i = rng.below(m.len());
                    m[i] ^= 1 << rng.below(8);
                }
                2 => m.truncate(rng.below(m.len() + 1)),
                _ => {
                    let i = rng.below(m.len() + 1);
                    m.insert(i, rng.next() as u8);
                }
            }
            if m.is_empty() {
                break;
            }
        }
        if let Ok(msg) = decode(&m) {
            decoded += 1;
            // Whatever we accept, we can re-encode, and that decodes to the same message.
            let again = encode(&msg);
            assert_eq!(decode(&again).as_ref(), Ok(&msg), "round {round}");
        }
    }
    assert!(decoded > 0, "no mutation decoded at all: the test exercises nothing");
}

#[test]
fn non_minimal_length_forms_are_accepted() {
    // Some stacks send long-form lengths even for short content; BER allows it.
    let short = [
        0x30, 0x27, 0x02, 0x01, 0x01, 0x04, 0x06, b'p', b'u', b'b', b'l', b'i', b'c', 0xA0, 0x1A, 0x02, 0x02, 0x12,
        0x34, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00, 0x30, 0x0E, 0x30, 0x0C, 0x06, 0x08, 0x2B, 0x06, 0x01, 0x02, 0x01,
        0x01, 0x01, 0x00, 0x05, 0x00,
    ];
    let expected = decode(&short).unwrap();
    // Outer SEQUENCE length as 0x81 0x27.
    let mut outer = vec![0x30, 0x81, 0x27];
    outer.extend_from_slice(&short[2..]);
    assert_eq!(decode(&outer), Ok(expected.clone()), "outer long form");
    // PDU length as 0x82 0x00 0x1A (outer grows by 2).
    let mut pdu = vec![0x30, 0x29];
    pdu.extend_from_slice(&short[2..14]);
    pdu.extend_from_slice(&[0x82, 0x00, 0x1A]);
    pdu.extend_from_slice(&short[15..]);
    assert_eq!(decode(&pdu), Ok(expected), "PDU long form");
}
