//! SNMPv3 notifications: our sender's v3 traps (the sender's engine authoritative) and informs (the receiver's
//! engine, discovered first) logged by net-snmp's snmptrapd under the user's name; net-snmp's `snmptrap -v3` and
//! `snmpinform -v3` accepted by our receiver with the user as security name and authenticated; and the refusals:
//! a wrong key, an unknown user, a noAuthNoPriv trap and a trap from an engine's earlier boots (the replay
//! guard), each dropped and counted.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::{oid, tool};
use dvsan_snmp::manager::Target;
use dvsan_snmp::receiver::{NotificationKind, NotificationReceiver, ReceiveError, UsmRefusal};
use dvsan_snmp::usm::{AuthProtocol, Engine, EngineId, PrivProtocol, SecurityLevel, UserAccess, UsmUser};
use dvsan_snmp::{Notification, NotificationSender, Uptime, Value, VarBind, Version};
use dvsan_tests::{stderr, TrapReceiver};

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn user(name: &str, auth: AuthProtocol, auth_pass: &str, priv_pass: Option<&str>) -> UsmUser {
    UsmUser::new(name, auth, auth_pass, priv_pass.map(|p| (PrivProtocol::Aes128Cfb, p)), UserAccess::ReadOnly).unwrap()
}

fn marker(text: &str) -> Vec<VarBind> {
    vec![VarBind::new(oid("1.3.6.1.4.1.32473.9.0"), Value::string(text))]
}

const TRAP: &str = "1.3.6.1.4.1.32473.1.0.2";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snmptrapd_logs_our_v3_traps_and_informs_by_user() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(EngineId::random(32473).unwrap(), 3);
    let hex = engine.id().to_hex();
    let conf = format!(
        "createUser -e 0x{hex} unit-sha256 SHA-256 unit-auth-pass AES unit-priv-pass\n\
         createUser -e 0x{hex} unit-sha SHA old-auth-pass AES old-priv-pass\n\
         createUser unit-sha256 SHA-256 unit-auth-pass AES unit-priv-pass\n"
    );
    let trapd = TrapReceiver::start_configured(dir.path(), &conf, &["-On", "-F", "%P: %v\n"]);
    let sender = NotificationSender::new(local(), Uptime::start_now()).await.unwrap().with_engine(engine);
    let sha256 = user("unit-sha256", AuthProtocol::HmacSha256, "unit-auth-pass", Some("unit-priv-pass"));
    let sha = user("unit-sha", AuthProtocol::HmacSha96, "old-auth-pass", Some("old-priv-pass"));
    let forged = user("unit-sha256", AuthProtocol::HmacSha256, "not-the-auth-pass", Some("unit-priv-pass"));

    // A trap signed with another key first: snmptrapd drops it, the good ones after it arrive.
    sender.trap_v3(trapd.addr, &forged, &oid(TRAP), marker("forged-trap")).await.unwrap();
    sender.trap_v3(trapd.addr, &sha256, &oid(TRAP), marker("trap-sha256")).await.unwrap();
    sender.trap(&Target::v3(trapd.addr, sha.clone()), &oid(TRAP), marker("trap-sha")).await.unwrap();
    // The inform discovers snmptrapd's own engine; delivery means snmptrapd acknowledged it.
    let inform_target = Target::v3(trapd.addr, sha256.clone()).with_timeout(Duration::from_secs(1), 3);
    sender.inform(&inform_target, &oid(TRAP), marker("inform-sha256")).await.unwrap();

    for (user, text) in [("unit-sha256", "trap-sha256"), ("unit-sha", "trap-sha"), ("unit-sha256", "inform-sha256")] {
        let seen = dvsan_tests::wait_for(Duration::from_secs(5), || trapd.logged(&[user, text]));
        assert!(seen.is_some(), "snmptrapd did not log {text} from {user}:\n{}", trapd.text());
    }
    assert!(!trapd.text().contains("forged-trap"), "{}", trapd.text());
}

/// net-snmp v3 options for user `unit` (SHA-256/AES) with `auth_pass`.
fn net_snmp_v3(engine_hex: Option<&str>, name: &str, auth_pass: &str) -> Vec<String> {
    let mut v: Vec<String> = ["-v", "3", "-u", name, "-l", "authPriv", "-a", "SHA-256", "-A", auth_pass]
        .iter()
        .map(|s| s.to_string())
        .collect();
    v.extend(["-x", "AES", "-X", "unit-priv-pass", "-t", "1", "-r", "2"].map(String::from));
    if let Some(hex) = engine_hex {
        v.extend(["-e".to_string(), format!("0x{hex}")]);
    }
    v
}

async fn recv(receiver: &mut NotificationReceiver) -> Result<Notification, ReceiveError> {
    tokio::time::timeout(Duration::from_secs(5), receiver.recv()).await.expect("a datagram within 5 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_receiver_takes_net_snmp_v3_traps_and_informs() {
    let unit = Arc::new(user("unit", AuthProtocol::HmacSha256, "unit-auth-pass", Some("unit-priv-pass")));
    let sender_engine = EngineId::random(32473).unwrap();
    let own = Engine::new(EngineId::random(32473).unwrap(), 1);
    let (sender_id, own_id) = (sender_engine.as_bytes().to_vec(), own.id().as_bytes().to_vec());
    let lookup = {
        let unit = Arc::clone(&unit);
        move |engine: &[u8], name: &str| {
            (name == "unit" && (engine == sender_id.as_slice() || engine == own_id.as_slice())).then(|| (*unit).clone())
        }
    };
    let mut receiver = NotificationReceiver::bind(local()).await.unwrap().with_usm(own, lookup);
    let addr = receiver.local_addr().unwrap().to_string();
    let hex = sender_engine.to_hex();

    let trap = |engine: Option<&str>, name: &str, auth: &str, text: &str| {
        let mut args = net_snmp_v3(engine, name, auth);
        args.extend([addr.clone(), "0".into(), TRAP.into(), "1.3.6.1.4.1.32473.9.0".into(), "s".into(), text.into()]);
        args
    };
    let run = |tool_name: &'static str, args: Vec<String>| async move {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        tool(tool_name, &refs).await
    };

    let out = run("snmptrap", trap(Some(&hex), "unit", "unit-auth-pass", "hello")).await;
    assert!(out.status.success(), "snmptrap: {}", stderr(&out));
    let n = recv(&mut receiver).await.unwrap();
    assert_eq!((n.version, n.kind), (Version::V3, NotificationKind::TrapV2));
    assert_eq!((n.security_name.as_deref(), n.authenticated), (Some("unit"), true));
    assert_eq!(n.trap_oid, oid(TRAP));
    assert_eq!(n.varbinds[0].value, Value::string("hello"));

    // A wrong key and an unknown user: refused and counted.
    let out = run("snmptrap", trap(Some(&hex), "unit", "wrong-auth-pass", "forged")).await;
    assert!(out.status.success(), "snmptrap: {}", stderr(&out));
    assert!(matches!(recv(&mut receiver).await, Err(ReceiveError::Refused { reason: UsmRefusal::WrongDigest, .. })));
    let out = run("snmptrap", trap(Some(&hex), "stranger", "unit-auth-pass", "who")).await;
    assert!(out.status.success(), "snmptrap: {}", stderr(&out));
    assert!(matches!(
        recv(&mut receiver).await,
        Err(ReceiveError::Refused { reason: UsmRefusal::UnknownUserName, .. })
    ));
    let counters = Arc::clone(receiver.counters());
    assert_eq!(counters.usm_wrong_digests.load(Ordering::Relaxed), 1);
    assert_eq!(counters.usm_unknown_user_names.load(Ordering::Relaxed), 1);

    // snmpinform discovers our engine (answered inside recv), then sends; we acknowledge with a v3 Response.
    let mut args = net_snmp_v3(None, "unit", "unit-auth-pass");
    args.extend([addr.clone(), "0".into(), TRAP.into(), "1.3.6.1.4.1.32473.9.0".into(), "s".into(), "ack me".into()]);
    let inform = tokio::spawn(run("snmpinform", args));
    let n = recv(&mut receiver).await.unwrap();
    assert_eq!((n.kind, n.security_name.as_deref(), n.authenticated), (NotificationKind::Inform, Some("unit"), true));
    assert_eq!(n.varbinds[0].value, Value::string("ack me"));
    receiver.acknowledge(&n).await.unwrap();
    let out = inform.await.unwrap();
    assert!(out.status.success(), "snmpinform was not acknowledged: {}", stderr(&out));
    assert!(counters.reports.load(Ordering::Relaxed) >= 1, "the discovery probe was answered");
    assert_eq!(counters.acks.load(Ordering::Relaxed), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_notifications_between_our_sender_and_receiver() {
    // Two units with the same user name and different keys: the lookup is by (engine id, name).
    let id_a = EngineId::random(32473).unwrap();
    let id_b = EngineId::random(32473).unwrap();
    let key_a = user("unit", AuthProtocol::HmacSha256, "unit-a-auth-pass", Some("unit-a-priv-pass"));
    let key_b = user("unit", AuthProtocol::HmacSha512, "unit-b-auth-pass", None);
    let station = Engine::new(EngineId::random(32473).unwrap(), 1);
    let station_id = station.id().clone();
    let lookup = {
        let (id_a, id_b, key_a, key_b) = (id_a.clone(), id_b.clone(), key_a.clone(), key_b.clone());
        move |engine: &[u8], name: &str| match (engine, name) {
            (e, "unit") if e == id_a.as_bytes() => Some(key_a.clone()),
            (e, "unit") if e == id_b.as_bytes() || e == station_id.as_bytes() => Some(key_b.clone()),
            _ => None,
        }
    };
    let mut receiver = NotificationReceiver::bind(local()).await.unwrap().with_usm(station, lookup);
    let acker = receiver.acknowledger();
    let sink = receiver.local_addr().unwrap();

    let a =
        NotificationSender::new(local(), Uptime::start_now()).await.unwrap().with_engine(Engine::new(id_a.clone(), 5));
    let b = NotificationSender::new(local(), Uptime::start_now()).await.unwrap().with_engine(Engine::new(id_b, 1));
    a.trap_v3(sink, &key_a, &oid(TRAP), marker("from a")).await.unwrap();
    let n = recv(&mut receiver).await.unwrap();
    assert_eq!((n.security_name.as_deref(), n.authenticated, n.from), (Some("unit"), true, a.local_addr().unwrap()));
    b.trap_v3(sink, &key_b, &oid(TRAP), marker("from b")).await.unwrap();
    assert_eq!(recv(&mut receiver).await.unwrap().varbinds[0].value, Value::string("from b"));
    // b's key does not pass for a's engine.
    let c =
        NotificationSender::new(local(), Uptime::start_now()).await.unwrap().with_engine(Engine::new(id_a.clone(), 5));
    c.trap_v3(sink, &key_b, &oid(TRAP), marker("b as a")).await.unwrap();
    assert!(matches!(
        recv(&mut receiver).await,
        Err(ReceiveError::Refused { reason: UsmRefusal::UnsupportedSecLevel | UsmRefusal::WrongDigest, .. })
    ));

    // The replay guard: a's engine in an earlier boot (a recorded trap sent again) is refused.
    let replay = NotificationSender::new(local(), Uptime::start_now()).await.unwrap().with_engine(Engine::new(id_a, 4));
    replay.trap_v3(sink, &key_a, &oid(TRAP), marker("old boot")).await.unwrap();
    assert!(matches!(
        recv(&mut receiver).await,
        Err(ReceiveError::Refused { reason: UsmRefusal::NotInTimeWindow, .. })
    ));
    assert_eq!(receiver.counters().usm_not_in_time_windows.load(Ordering::Relaxed), 1);

    // A noAuthNoPriv trap is never accepted.
    let target = Target::v3(sink, key_a.clone()).with_level(SecurityLevel::NoAuthNoPriv);
    a.trap(&target, &oid(TRAP), marker("no auth")).await.unwrap();
    assert!(matches!(
        recv(&mut receiver).await,
        Err(ReceiveError::Refused { reason: UsmRefusal::UnsupportedSecLevel, .. })
    ));

    // Our v3 inform: discovery of the receiver's engine, the inform, our v3 acknowledgement.
    let collector = tokio::spawn(async move {
        let n = recv(&mut receiver).await.unwrap();
        acker.acknowledge(&n).await.unwrap();
        n
    });
    let target = Target::v3(sink, key_b).with_timeout(Duration::from_secs(1), 2);
    b.inform(&target, &oid(TRAP), marker("inform from b")).await.unwrap();
    let n = collector.await.unwrap();
    assert_eq!((n.kind, n.security_name.as_deref(), n.authenticated), (NotificationKind::Inform, Some("unit"), true));
    assert_eq!(n.varbinds[0].value, Value::string("inform from b"));
}
