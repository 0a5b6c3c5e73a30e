//! Agent request processing through `Agent::process` (no sockets): GET/GETNEXT/GETBULK, SET
//! atomicity across handlers, v1 mapping, communities, size limits and counters.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use common::{oid, test_agent, Fault, Faulty, TestTable};
use dvsan_snmp::message::{decode, encode, Message, Version};
use dvsan_snmp::pdu::{BulkPdu, ErrorStatus, GenericPdu, Pdu, VarBind};
use dvsan_snmp::{Agent, Value};

const FROM: &str = "127.0.0.1:40000";

fn from() -> SocketAddr {
    FROM.parse().unwrap()
}

fn send(agent: &Agent, version: Version, community: &str, pdu: Pdu) -> Option<GenericPdu> {
    let req = encode(&Message { version, community: community.as_bytes().to_vec(), pdu });
    let resp = agent.process(&req, from())?;
    let msg = decode(&resp).expect("agent response decodes");
    assert_eq!(msg.version, version);
    assert_eq!(msg.community, community.as_bytes());
    match msg.pdu {
        Pdu::Response(p) => Some(p),
        other => panic!("not a response: {other:?}"),
    }
}

fn get(agent: &Agent, version: Version, oids: &[&str]) -> GenericPdu {
    let vbs = oids.iter().map(|o| VarBind::null(oid(o))).collect();
    send(agent, version, "public", Pdu::Get(GenericPdu::request(11, vbs))).unwrap()
}

fn get_next(agent: &Agent, version: Version, oids: &[&str]) -> GenericPdu {
    let vbs = oids.iter().map(|o| VarBind::null(oid(o))).collect();
    send(agent, version, "public", Pdu::GetNext(GenericPdu::request(12, vbs))).unwrap()
}

fn bulk(agent: &Agent, non_repeaters: u32, max_repetitions: u32, oids: &[&str]) -> GenericPdu {
    let pdu = Pdu::GetBulk(BulkPdu {
        request_id: 13,
        non_repeaters,
        max_repetitions,
        varbinds: oids.iter().map(|o| VarBind::null(oid(o))).collect(),
    });
    send(agent, Version::V2c, "public", pdu).unwrap()
}

fn set(agent: &Agent, version: Version, vbs: Vec<VarBind>) -> GenericPdu {
    send(agent, version, "private", Pdu::Set(GenericPdu::request(14, vbs))).unwrap()
}

const SYS_DESCR_0: &str = "1.3.6.1.2.1.1.1.0";
const T: &str = "1.3.6.1.4.1.32473.99.1.1";

#[test]
fn get_values_and_exceptions() {
    let (agent, _) = test_agent(65507, vec![]);
    let r = get(
        &agent,
        Version::V2c,
        &[
            SYS_DESCR_0,
            "1.3.6.1.2.1.1.1.1",
            "1.3.6.1.2.1.1.99.0",
            "1.3.6.1.9",
            &format!("{T}.2.2"),
            &format!("{T}.2.9"),
        ],
    );
    assert_eq!(r.request_id, 11);
    assert_eq!(r.error_status, ErrorStatus::NoError);
    let values: Vec<&Value> = r.varbinds.iter().map(|vb| &vb.value).collect();
    assert_eq!(values[0], &Value::string("dvsan-snmp test agent"));
    assert_eq!(values[1], &Value::NoSuchInstance);
    assert_eq!(values[2], &Value::NoSuchObject);
    assert_eq!(values[3], &Value::NoSuchObject);
    assert_eq!(values[4], &Value::Integer(20));
    assert_eq!(values[5], &Value::NoSuchInstance);
    assert_eq!(r.varbinds[0].oid, oid(SYS_DESCR_0));
}

#[test]
fn getnext_walks_in_order_to_end_of_mib() {
    let (agent, _) = test_agent(65507, vec![]);
    let mut cursor = oid("0.0");
    let mut seen = Vec::new();
    for _ in 0..200 {
        let r = get_next(&agent, Version::V2c, &[&cursor.to_string()]);
        let vb = r.varbinds.into_iter().next().unwrap();
        if vb.value == Value::EndOfMibView {
            assert_eq!(vb.oid, cursor);
            break;
        }
        assert!(vb.oid > cursor);
        cursor = vb.oid.clone();
        seen.push(vb);
    }
    let names: Vec<String> = seen.iter().map(|vb| vb.oid.to_string()).collect();
    assert_eq!(names[0], SYS_DESCR_0);
    assert!(names.contains(&"1.3.6.1.2.1.11.1.0".to_string()), "snmpInPkts walked");
    assert!(names.contains(&"1.3.6.1.2.1.11.30.0".to_string()), "snmpEnableAuthenTraps walked");
    let table: Vec<&String> = names.iter().filter(|n| n.starts_with(T)).collect();
    assert_eq!(
        table,
        [2, 3, 4]
            .iter()
            .flat_map(|c| (1..=3).map(move |r| format!("{T}.{c}.{r}")))
            .collect::<Vec<_>>()
            .iter()
            .collect::<Vec<_>>()
    );
}

#[test]
fn getbulk_repeats_and_stops_at_end() {
    let (agent, _) = test_agent(65507, vec![]);
    // non-repeater sysDescr (-> sysObjectID.0), repeater over the table column 4.
    let r = bulk(&agent, 1, 10, &["1.3.6.1.2.1.1.1", &format!("{T}.4")]);
    let names: Vec<String> = r.varbinds.iter().map(|vb| vb.oid.to_string()).collect();
    assert_eq!(names[0], SYS_DESCR_0);
    assert_eq!(&names[1..4], [format!("{T}.4.1"), format!("{T}.4.2"), format!("{T}.4.3")]);
    assert_eq!(r.varbinds[1].value, Value::Counter64(1 << 40));
    // After the table comes the end of the MIB view: the repeater ends and the response stops.
    assert_eq!(r.varbinds.last().unwrap().value, Value::EndOfMibView);
    assert_eq!(r.varbinds.len(), 5);
}

#[test]
fn getbulk_truncates_to_the_size_limit() {
    let (agent, _) = test_agent(484, vec![]);
    let r = bulk(&agent, 0, 1000, &["1.3.6.1.2.1.11"]);
    assert_eq!(r.error_status, ErrorStatus::NoError);
    assert!(r.varbinds.len() > 5, "got {}", r.varbinds.len());
    let req_size = {
        let m = Message { version: Version::V2c, community: b"public".to_vec(), pdu: Pdu::Response(r.clone()) };
        encode(&m).len()
    };
    assert!(req_size <= 484, "response of {req_size} bytes");
    // Adding one more varbind of this size would not have fit (approximately full).
    assert!(req_size > 484 - 40, "response of only {req_size} bytes");
    // Repetitions are in order and increasing.
    for w in r.varbinds.windows(2) {
        assert!(w[1].oid > w[0].oid);
    }
}

#[test]
fn getbulk_huge_repetitions_without_repeaters_returns_quickly() {
    let (agent, _) = test_agent(65507, vec![]);
    let started = std::time::Instant::now();
    let r = bulk(&agent, 1, i32::MAX as u32, &["1.3.6"]);
    assert_eq!(r.varbinds.len(), 1);
    let r = bulk(&agent, 0, i32::MAX as u32, &["1.3.6"]);
    assert!(!r.varbinds.is_empty());
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn get_too_big_answers_empty_toobig() {
    let (agent, _) = test_agent(484, vec![]);
    let oids: Vec<String> = (0..40).map(|_| SYS_DESCR_0.to_string()).collect();
    let refs: Vec<&str> = oids.iter().map(String::as_str).collect();
    let r = get(&agent, Version::V2c, &refs);
    assert_eq!(r.error_status, ErrorStatus::TooBig);
    assert_eq!(r.error_index, 0);
    assert!(r.varbinds.is_empty());
    assert_eq!(agent.counters().out_too_bigs.load(Ordering::Relaxed), 1);
}

#[test]
fn set_success_and_validation_errors() {
    let (agent, table) = test_agent(65507, vec![]);
    let r = set(
        &agent,
        Version::V2c,
        vec![
            VarBind::new(oid(&format!("{T}.2.1")), Value::Integer(5)),
            VarBind::new(oid("1.3.6.1.2.1.1.5.0"), Value::string("renamed")),
        ],
    );
    assert_eq!(r.error_status, ErrorStatus::NoError);
    assert_eq!(r.varbinds[1].value, Value::string("renamed"));
    assert_eq!(table.value_of(1), Some(5));
    assert_eq!(agent.system().name(), "renamed");

    let cases = [
        (format!("{T}.2.1"), Value::string("x"), ErrorStatus::WrongType, ErrorStatus::BadValue),
        (format!("{T}.2.1"), Value::Integer(-1), ErrorStatus::WrongValue, ErrorStatus::BadValue),
        (format!("{T}.3.1"), Value::string("x"), ErrorStatus::NotWritable, ErrorStatus::NoSuchName),
        (format!("{T}.2.9"), Value::Integer(1), ErrorStatus::NoCreation, ErrorStatus::NoSuchName),
        ("1.3.6.1.9.9".to_string(), Value::Integer(1), ErrorStatus::NotWritable, ErrorStatus::NoSuchName),
        ("1.3.6.1.2.1.1.1.0".to_string(), Value::string("x"), ErrorStatus::NotWritable, ErrorStatus::NoSuchName),
        (
            "1.3.6.1.2.1.1.4.0".to_string(),
            Value::OctetString(vec![b'a'; 256]),
            ErrorStatus::WrongLength,
            ErrorStatus::BadValue,
        ),
        ("1.3.6.1.2.1.11.30.0".to_string(), Value::Integer(3), ErrorStatus::WrongValue, ErrorStatus::BadValue),
    ];
    for (name, value, v2_status, v1_status) in cases {
        // The failing varbind is second, after a valid one that must not be applied.
        let vbs = vec![VarBind::new(oid(&format!("{T}.2.2")), Value::Integer(77)), VarBind::new(oid(&name), value)];
        let r = set(&agent, Version::V2c, vbs.clone());
        assert_eq!((r.error_status, r.error_index), (v2_status, 2), "v2c {name}");
        assert_eq!(r.varbinds, vbs, "varbinds echoed");
        let r = set(&agent, Version::V1, vbs);
        assert_eq!((r.error_status, r.error_index), (v1_status, 2), "v1 {name}");
        assert_eq!(table.value_of(2), Some(20), "nothing applied for {name}");
    }
}

#[test]
fn set_is_all_or_none_across_handlers() {
    // Prepare fails in the second handler: the first handler's change is never committed.
    let bad_prepare = Arc::new(Faulty::new(2, Fault::PrepareFails, false));
    let (agent, table) = test_agent(65507, vec![bad_prepare.clone()]);
    let r = set(
        &agent,
        Version::V2c,
        vec![
            VarBind::new(oid(&format!("{T}.2.3")), Value::Integer(1)),
            VarBind::new(bad_prepare.instance(), Value::Integer(1)),
        ],
    );
    assert_eq!((r.error_status, r.error_index), (ErrorStatus::InconsistentValue, 2));
    assert_eq!(table.value_of(3), Some(30));

    // Commit fails in the second handler: the first handler's committed change is undone.
    let bad_commit = Arc::new(Faulty::new(2, Fault::CommitFails, false));
    let (agent, table) = test_agent(65507, vec![bad_commit.clone()]);
    let r = set(
        &agent,
        Version::V2c,
        vec![
            VarBind::new(oid(&format!("{T}.2.3")), Value::Integer(1)),
            VarBind::new(bad_commit.instance(), Value::Integer(1)),
        ],
    );
    assert_eq!((r.error_status, r.error_index), (ErrorStatus::CommitFailed, 2));
    assert_eq!(table.value_of(3), Some(30), "undone");
    let r = set(
        &agent,
        Version::V1,
        vec![
            VarBind::new(oid(&format!("{T}.2.3")), Value::Integer(1)),
            VarBind::new(bad_commit.instance(), Value::Integer(1)),
        ],
    );
    assert_eq!((r.error_status, r.error_index), (ErrorStatus::GenErr, 2));

    // The first handler's undo fails after the second's commit failed: undoFailed, index 0.
    let undo_breaks = Arc::new(Faulty::new(2, Fault::None, true));
    let commit_breaks = Arc::new(Faulty::new(3, Fault::CommitFails, false));
    let (agent, _) = test_agent(65507, vec![undo_breaks.clone(), commit_breaks.clone()]);
    let r = set(
        &agent,
        Version::V2c,
        vec![
            VarBind::new(undo_breaks.instance(), Value::Integer(9)),
            VarBind::new(commit_breaks.instance(), Value::Integer(9)),
        ],
    );
    assert_eq!((r.error_status, r.error_index), (ErrorStatus::UndoFailed, 0));
}

#[test]
fn v1_maps_exceptions_and_skips_counter64() {
    let (agent, _) = test_agent(65507, vec![]);
    let r = get(&agent, Version::V1, &[SYS_DESCR_0, "1.3.6.1.9"]);
    assert_eq!((r.error_status, r.error_index), (ErrorStatus::NoSuchName, 2));
    assert_eq!(r.varbinds[1].value, Value::Null, "request varbinds echoed");
    // Counter64 is invisible to v1: GET says noSuchName, GETNEXT skips the column.
    let r = get(&agent, Version::V1, &[&format!("{T}.4.1")]);
    assert_eq!((r.error_status, r.error_index), (ErrorStatus::NoSuchName, 1));
    let r = get_next(&agent, Version::V1, &[&format!("{T}.3.3")]);
    assert_eq!(r.error_status, ErrorStatus::NoSuchName, "column 4 skipped, then end of MIB");
    let r = get_next(&agent, Version::V1, &[&format!("{T}.3.2")]);
    assert_eq!(r.varbinds[0].oid, oid(&format!("{T}.3.3")));
    // v2c sees it.
    let r = get_next(&agent, Version::V2c, &[&format!("{T}.3.3")]);
    assert_eq!(r.varbinds[0].value, Value::Counter64(1 << 40));
}

#[test]
fn communities_and_counters() {
    let (agent, _) = test_agent(65507, vec![]);
    let c = agent.counters();
    let get_pdu = || Pdu::Get(GenericPdu::request(1, vec![VarBind::null(oid(SYS_DESCR_0))]));
    assert!(send(&agent, Version::V2c, "wrong", get_pdu()).is_none());
    assert_eq!(c.in_bad_community_names.load(Ordering::Relaxed), 1);
    let set_pdu = Pdu::Set(GenericPdu::request(2, vec![VarBind::new(oid("1.3.6.1.2.1.1.5.0"), Value::string("x"))]));
    assert!(send(&agent, Version::V2c, "public", set_pdu).is_none());
    assert_eq!(c.in_bad_community_uses.load(Ordering::Relaxed), 1);
    // The write community may also read.
    assert!(send(&agent, Version::V2c, "private", get_pdu()).is_some());
    // Non-request PDUs are dropped silently.
    assert!(send(&agent, Version::V2c, "public", Pdu::Response(GenericPdu::request(3, vec![]))).is_none());
    assert!(agent.process(&[], from()).is_none());
    assert!(agent.process(&[0x30, 0x00], from()).is_none());
    assert_eq!(c.in_asn_parse_errs.load(Ordering::Relaxed), 2);
    assert_eq!(c.in_pkts.load(Ordering::Relaxed), 6);
    assert_eq!(c.out_pkts.load(Ordering::Relaxed), 1);
    assert_eq!(c.in_get_requests.load(Ordering::Relaxed), 1);

    // The counters are served in the snmp group.
    let r = get(&agent, Version::V2c, &["1.3.6.1.2.1.11.1.0", "1.3.6.1.2.1.11.4.0", "1.3.6.1.2.1.11.6.0"]);
    assert_eq!(
        r.varbinds.iter().map(|vb| vb.value.clone()).collect::<Vec<_>>(),
        [Value::Counter32(7), Value::Counter32(1), Value::Counter32(2)]
    );
}

#[test]
fn system_group_values() {
    let (agent, _) = test_agent(65507, vec![]);
    let r = get(
        &agent,
        Version::V2c,
        &["1.3.6.1.2.1.1.2.0", "1.3.6.1.2.1.1.3.0", "1.3.6.1.2.1.1.5.0", "1.3.6.1.2.1.1.7.0", "1.3.6.1.2.1.1.8.0"],
    );
    assert_eq!(r.varbinds[0].value, Value::ObjectId(oid("1.3.6.1.4.1.32473")));
    assert!(matches!(r.varbinds[1].value, Value::TimeTicks(t) if t < 1000));
    assert_eq!(r.varbinds[2].value, Value::string("testhost"));
    assert_eq!(r.varbinds[3].value, Value::Integer(72));
    assert_eq!(r.varbinds[4].value, Value::TimeTicks(0));
    let _ = TestTable::prefix();
}
