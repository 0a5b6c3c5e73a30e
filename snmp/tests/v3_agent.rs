//! SNMPv3 processing at the agent, driven with this crate's own v3 encoder: discovery, a request replayed after
//! a restart (engine boots moved on) and one forged far outside the time window, both refused with a signed
//! usmStatsNotInTimeWindows Report; and the hostile v3 corpus, each case dropped and counted or reported.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use common::{test_agent_with, v3_admin};
use dvsan_snmp::agent::{Agent, UsmConfig};
use dvsan_snmp::testing::{v3_hostile_corpus, V3Expected};
use dvsan_snmp::usm::wire::{decode_v3, Head, Keys};
use dvsan_snmp::usm::{encode_v3_pdu, Engine, LocalUser, SecurityLevel};
use dvsan_snmp::{GenericPdu, Oid, Pdu, Value, VarBind};

const SYS_DESCR_0: [u32; 9] = [1, 3, 6, 1, 2, 1, 1, 1, 0];

fn agent_on(engine: Engine) -> Arc<Agent> {
    test_agent_with(Some(UsmConfig { engine, users: vec![v3_admin()] })).0
}

/// An authPriv GET of sysDescr.0 by `user` to `agent`'s engine, claiming `boots` and `time`.
fn request(agent: &Agent, user: &LocalUser, boots: u32, time: u32) -> Vec<u8> {
    let engine = agent.engine().unwrap().id().as_bytes();
    let head = Head {
        msg_id: 4242,
        max_size: 65507,
        reportable: true,
        engine_id: engine,
        boots,
        time,
        user_name: user.name.as_bytes(),
        context_engine_id: engine,
        context_name: b"",
    };
    let pdu = Pdu::Get(GenericPdu::request(17, vec![VarBind::null(Oid::from_slice(&SYS_DESCR_0))]));
    encode_v3_pdu(&head, Keys::of(user, SecurityLevel::AuthPriv).as_ref(), &pdu).unwrap()
}

/// The answer's PDU (decrypted with `user` when needed), and whether it was authenticated by `user`.
fn answer(bytes: &[u8], user: &LocalUser) -> (Pdu, bool, u32) {
    let msg = decode_v3(bytes).expect("a v3 answer");
    let authed = msg.global.flags.auth && msg.authenticates(bytes, user);
    assert_eq!(msg.global.msg_id, 4242);
    (msg.decrypt_scoped_pdu(user).unwrap().pdu, authed, msg.usm.boots)
}

fn reported(pdu: &Pdu) -> (Oid, u32) {
    let Pdu::Report(p) = pdu else { panic!("not a Report: {pdu:?}") };
    let vb = &p.varbinds[0];
    (vb.oid.clone(), vb.value.as_u32().unwrap())
}

#[test]
fn replay_after_restart_and_forged_time_are_not_in_time_window() {
    let state = tempfile::tempdir().unwrap();
    let first = agent_on(Engine::load_or_create(state.path()).unwrap());
    let user = v3_admin().localize(first.engine().unwrap().id());
    let from = "127.0.0.1:9".parse().unwrap();

    let datagram = request(&first, &user, 1, first.engine().unwrap().time());
    let (pdu, authed, _) = answer(&first.process(&datagram, from).unwrap(), &user);
    assert!(authed);
    let Pdu::Response(r) = pdu else { panic!("{pdu:?}") };
    assert_eq!(r.varbinds[0].value, Value::string("dvsan-snmp test agent"));

    // The same datagram after a restart: boots is 2 now.
    let second = agent_on(Engine::load_or_create(state.path()).unwrap());
    assert_eq!(second.engine().unwrap().id(), first.engine().unwrap().id());
    let (pdu, authed, boots) = answer(&second.process(&datagram, from).unwrap(), &user);
    assert_eq!(reported(&pdu), ("1.3.6.1.6.3.15.1.1.2.0".parse().unwrap(), 1));
    assert!(authed, "the notInTimeWindow Report is authenticated");
    assert_eq!(boots, 2, "the Report tells the manager the current boots");

    // Right boots, time forged 1000 s ahead: refused too, and nothing but the Report comes back.
    let forged = request(&second, &user, 2, second.engine().unwrap().time() + 1000);
    let (pdu, _, _) = answer(&second.process(&forged, from).unwrap(), &user);
    assert_eq!(reported(&pdu).1, 2);
    assert_eq!(second.counters().usm_not_in_time_windows.load(Ordering::Relaxed), 2);
    // In the window (within 150 s): answered.
    let ok = request(&second, &user, 2, second.engine().unwrap().time() + 100);
    assert!(matches!(answer(&second.process(&ok, from).unwrap(), &user).0, Pdu::Response(_)));
}

#[test]
fn hostile_v3_corpus_is_dropped_or_reported_and_counted() {
    let agent = agent_on(Engine::new(dvsan_snmp::usm::EngineId::random(32473).unwrap(), 7));
    let engine = agent.engine().unwrap();
    let user = v3_admin().localize(engine.id());
    let from = "127.0.0.1:9".parse().unwrap();
    let corpus = v3_hostile_corpus(engine.id().as_bytes(), engine.boots(), &user);
    assert!(corpus.len() >= 15);
    for case in &corpus {
        let c = agent.counters();
        let read = |e: V3Expected| match e {
            V3Expected::ParseError => c.in_asn_parse_errs.load(Ordering::Relaxed),
            V3Expected::InvalidMsg => c.invalid_msgs.load(Ordering::Relaxed),
            V3Expected::UnknownSecurityModel => c.unknown_security_models.load(Ordering::Relaxed),
            V3Expected::Report(arc) | V3Expected::Unanswered(arc) => c.usm_by_arc(arc).unwrap().load(Ordering::Relaxed),
        };
        let before = read(case.expected);
        let answer = agent.process(&case.datagram, from);
        assert_eq!(read(case.expected), before + 1, "{}: not counted", case.name);
        match case.expected {
            V3Expected::Report(arc) => {
                let bytes = answer.unwrap_or_else(|| panic!("{}: no Report", case.name));
                let msg = decode_v3(&bytes).unwrap();
                let pdu = msg.decrypt_scoped_pdu(&user).unwrap().pdu;
                let want: Oid = format!("1.3.6.1.6.3.15.1.1.{arc}.0").parse().unwrap();
                assert_eq!(reported(&pdu).0, want, "{}", case.name);
                assert_eq!(msg.usm.engine_id, engine.id().as_bytes(), "{}", case.name);
            }
            _ => assert!(answer.is_none(), "{}: answered", case.name),
        }
    }
    // Still serving.
    let ok = request(&agent, &user, 7, engine.time());
    let msg = decode_v3(&agent.process(&ok, from).unwrap()).unwrap();
    assert!(matches!(msg.decrypt_scoped_pdu(&user).unwrap().pdu, Pdu::Response(_)));
}
