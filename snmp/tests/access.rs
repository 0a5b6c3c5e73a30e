//! Community access (read and write views, read-only communities) and the requester context handlers see, through
//! `Agent::process` (no sockets).

mod common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use common::{oid, Fault, Faulty, TestTable};
use dvsan_snmp::agent::{
    Community, FnPreparedSet, GetResult, MibHandler, PreparedSet, Requester, SecurityLevel, SecurityModel, SetItem,
    View,
};
use dvsan_snmp::message::{decode, encode, Message, Version};
use dvsan_snmp::pdu::{BulkPdu, ErrorStatus, GenericPdu, Pdu, VarBind};
use dvsan_snmp::{Agent, AgentConfig, Oid, Value};

const SYS_DESCR_0: &str = "1.3.6.1.2.1.1.1.0";
const SYS_NAME_0: &str = "1.3.6.1.2.1.1.5.0";
const T: &str = "1.3.6.1.4.1.32473.99.1.1";

fn from() -> SocketAddr {
    "127.0.0.1:40000".parse().unwrap()
}

fn send(agent: &Agent, version: Version, community: &str, pdu: Pdu) -> Option<GenericPdu> {
    let req = encode(&Message { version, community: community.as_bytes().to_vec(), pdu });
    let resp = agent.process(&req, from())?;
    match decode(&resp).expect("agent response decodes").pdu {
        Pdu::Response(p) => Some(p),
        other => panic!("not a response: {other:?}"),
    }
}

fn request(oids: &[&str]) -> GenericPdu {
    GenericPdu::request(7, oids.iter().map(|o| VarBind::null(oid(o))).collect())
}

fn values(r: &GenericPdu) -> Vec<(String, Value)> {
    r.varbinds.iter().map(|vb| (vb.oid.to_string(), vb.value.clone())).collect()
}

/// Communities: `public` reads everything; `column` reads only the test table's column 2; `syswriter` reads
/// everything and writes only the system group; `private` writes everything.
fn agent_with_views(extra: Vec<Arc<Faulty>>) -> (Agent, Arc<TestTable>) {
    let table = Arc::new(TestTable::new());
    let config = AgentConfig {
        communities: vec![
            Community::read_only("public"),
            Community { read_view: View::subtrees([oid(&format!("{T}.2"))]), ..Community::read_only("column") },
            Community { write_view: View::subtrees([oid("1.3.6.1.2.1.1")]), ..Community::read_write("syswriter") },
            Community::read_write("private"),
        ],
        ..AgentConfig::default()
    };
    let mut builder = Agent::builder(config).handler(TestTable::prefix(), table.clone());
    for f in extra {
        builder = builder.handler(f.prefix.clone(), f);
    }
    (builder.build().unwrap(), table)
}

#[test]
fn objects_outside_the_read_view_do_not_exist() {
    let (agent, _) = agent_with_views(vec![]);
    let r = send(
        &agent,
        Version::V2c,
        "column",
        Pdu::Get(request(&[SYS_DESCR_0, &format!("{T}.2.1"), &format!("{T}.3.1")])),
    )
    .unwrap();
    assert_eq!(r.error_status, ErrorStatus::NoError);
    assert_eq!(
        values(&r).into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
        [Value::NoSuchObject, Value::Integer(10), Value::NoSuchObject]
    );
    // v1: noSuchName at the first object outside the view.
    let r = send(&agent, Version::V1, "column", Pdu::Get(request(&[&format!("{T}.2.1"), SYS_DESCR_0]))).unwrap();
    assert_eq!((r.error_status, r.error_index), (ErrorStatus::NoSuchName, 2));

    // A walk from the start sees the column only, then the end of the MIB.
    let mut seen = Vec::new();
    let mut cursor = "0.0".to_string();
    for _ in 0..10 {
        let r = send(&agent, Version::V2c, "column", Pdu::GetNext(request(&[&cursor]))).unwrap();
        let (next, value) = values(&r).remove(0);
        if value == Value::EndOfMibView {
            break;
        }
        seen.push(next.clone());
        cursor = next;
    }
    assert_eq!(seen, [format!("{T}.2.1"), format!("{T}.2.2"), format!("{T}.2.3")]);
    let r = send(&agent, Version::V1, "column", Pdu::GetNext(request(&[&format!("{T}.2.3")]))).unwrap();
    assert_eq!((r.error_status, r.error_index), (ErrorStatus::NoSuchName, 1));

    // GETBULK: the same three, then endOfMibView; a non-repeater before the view jumps into it.
    let bulk = Pdu::GetBulk(BulkPdu {
        request_id: 8,
        non_repeaters: 1,
        max_repetitions: 5,
        varbinds: vec![VarBind::null(oid(SYS_DESCR_0)), VarBind::null(oid(&format!("{T}.2")))],
    });
    let r = send(&agent, Version::V2c, "column", bulk).unwrap();
    assert_eq!(
        values(&r),
        [
            (format!("{T}.2.1"), Value::Integer(10)),
            (format!("{T}.2.1"), Value::Integer(10)),
            (format!("{T}.2.2"), Value::Integer(20)),
            (format!("{T}.2.3"), Value::Integer(30)),
            (format!("{T}.2.3"), Value::EndOfMibView),
        ]
    );
    // Everything is there for `public`.
    let r = send(&agent, Version::V2c, "public", Pdu::GetNext(request(&[&format!("{T}.2.3")]))).unwrap();
    assert_eq!(values(&r)[0].0, format!("{T}.3.1"));
}

#[test]
fn sets_outside_the_write_view_or_from_read_only_communities_are_refused_and_counted() {
    let (agent, table) = agent_with_views(vec![]);
    let c = agent.counters();
    let set_row = |community: &str, version: Version| {
        let pdu = Pdu::Set(GenericPdu::request(
            9,
            vec![
                VarBind::new(oid(SYS_NAME_0), Value::string("renamed")),
                VarBind::new(oid(&format!("{T}.2.1")), Value::Integer(5)),
            ],
        ));
        send(&agent, version, community, pdu)
    };
    // Read-only communities: dropped, snmpInBadCommunityUses.
    assert!(set_row("public", Version::V2c).is_none());
    assert!(set_row("column", Version::V2c).is_none());
    assert_eq!(c.in_bad_community_uses.load(Ordering::Relaxed), 2);
    // Writing outside the write view: noAccess (v1: noSuchName) at that varbind, nothing changes, counted.
    let r = set_row("syswriter", Version::V2c).unwrap();
    assert_eq!((r.error_status, r.error_index), (ErrorStatus::NoAccess, 2));
    let r = set_row("syswriter", Version::V1).unwrap();
    assert_eq!((r.error_status, r.error_index), (ErrorStatus::NoSuchName, 2));
    assert_eq!(c.in_bad_community_uses.load(Ordering::Relaxed), 4);
    assert_eq!(table.value_of(1), Some(10));
    assert_eq!(agent.system().name(), "");
    // Inside it: done.
    let sys_only = Pdu::Set(GenericPdu::request(10, vec![VarBind::new(oid(SYS_NAME_0), Value::string("renamed"))]));
    assert_eq!(send(&agent, Version::V2c, "syswriter", sys_only).unwrap().error_status, ErrorStatus::NoError);
    assert_eq!(agent.system().name(), "renamed");
    // A community that writes everything.
    assert_eq!(set_row("private", Version::V2c).unwrap().error_status, ErrorStatus::NoError);
    assert_eq!(table.value_of(1), Some(5));
    assert_eq!(c.in_bad_community_uses.load(Ordering::Relaxed), 4);
}

#[test]
fn the_default_configuration_has_no_write_community() {
    let agent = Agent::builder(AgentConfig::default()).build().unwrap();
    let pdu = Pdu::Set(GenericPdu::request(1, vec![VarBind::new(oid(SYS_NAME_0), Value::string("x"))]));
    assert!(send(&agent, Version::V2c, "private", pdu.clone()).is_none());
    assert!(send(&agent, Version::V2c, "public", pdu).is_none());
    let c = agent.counters();
    assert_eq!(c.in_bad_community_names.load(Ordering::Relaxed), 1);
    assert_eq!(c.in_bad_community_uses.load(Ordering::Relaxed), 1);
    assert_eq!(agent.system().name(), "");
}

/// Handler calls by phase, with the requester each saw.
type Seen = Mutex<Vec<(&'static str, Option<Requester>)>>;

/// Records the requester each handler call saw, by phase.
#[derive(Default)]
struct Recorder {
    seen: Arc<Seen>,
}

const RECORDER: &str = "1.3.6.1.4.1.32473.99.5";

impl Recorder {
    fn note(seen: &Seen, phase: &'static str) {
        seen.lock().unwrap().push((phase, Requester::current()));
    }
}

impl MibHandler for Recorder {
    fn get(&self, _oid: &Oid) -> GetResult {
        Recorder::note(&self.seen, "get");
        GetResult::Value(Value::Integer(1))
    }

    fn get_next(&self, after: &Oid) -> Option<VarBind> {
        Recorder::note(&self.seen, "getnext");
        let instance = oid(&format!("{RECORDER}.1.0"));
        (*after < instance).then(|| VarBind::new(instance, Value::Integer(1)))
    }

    fn prepare_set(&self, _varbinds: &[SetItem<'_>]) -> Result<Box<dyn PreparedSet>, dvsan_snmp::SetFailure> {
        Recorder::note(&self.seen, "prepare");
        let seen = Arc::clone(&self.seen);
        Ok(Box::new(FnPreparedSet(move || {
            Recorder::note(&seen, "commit");
            Ok(move || {
                Recorder::note(&seen, "undo");
                Ok(())
            })
        })))
    }
}

#[test]
fn handlers_see_the_requester_in_every_phase() {
    let recorder = Arc::new(Recorder::default());
    let fails = Arc::new(Faulty::new(6, Fault::CommitFails, false));
    let config = AgentConfig {
        communities: vec![Community::read_only("public"), Community::read_write("private")],
        ..AgentConfig::default()
    };
    let agent = Agent::builder(config)
        .handler(oid(RECORDER), recorder.clone())
        .handler(fails.prefix.clone(), fails.clone())
        .build()
        .unwrap();
    let instance = format!("{RECORDER}.1.0");
    send(&agent, Version::V2c, "public", Pdu::Get(request(&[&instance]))).unwrap();
    send(&agent, Version::V1, "public", Pdu::GetNext(request(&[RECORDER]))).unwrap();
    let bulk =
        BulkPdu { request_id: 3, non_repeaters: 0, max_repetitions: 1, varbinds: vec![VarBind::null(oid(RECORDER))] };
    send(&agent, Version::V2c, "public", Pdu::GetBulk(bulk)).unwrap();
    let set = Pdu::Set(GenericPdu::request(
        4,
        vec![VarBind::new(oid(&instance), Value::Integer(2)), VarBind::new(fails.instance(), Value::Integer(2))],
    ));
    let r = send(&agent, Version::V2c, "private", set).unwrap();
    assert_eq!(r.error_status, ErrorStatus::CommitFailed);

    let v2c = |name: &str| {
        Some(Requester { model: SecurityModel::V2c, name: name.into(), level: SecurityLevel::NoAuthNoPriv })
    };
    let v1_public =
        Some(Requester { model: SecurityModel::V1, name: "public".into(), level: SecurityLevel::NoAuthNoPriv });
    let seen = recorder.seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            ("get", v2c("public")),
            ("getnext", v1_public),
            ("getnext", v2c("public")),
            ("prepare", v2c("private")),
            ("commit", v2c("private")),
            ("undo", v2c("private")),
        ]
    );
    // Outside request processing there is none.
    assert_eq!(Requester::current(), None);
}
