//! The engine's manager speaking SNMPv3 (USM) to net-snmp's snmpd (users made with `createUser`: SHA-256/AES,
//! SHA/AES and SHA authNoPriv) and to our own agent: discovery, reads, walks, a SET, and each wrong credential
//! (auth passphrase, priv passphrase, unknown user, a level the user is not served at) failing with the
//! [`UsmFailure`] that names it (snmpd drops a wrong privacy key without a Report: a timeout there). Against our agent also: a restart with higher boots (a signed
//! notInTimeWindows Report, one resynchronisation) and a new engine id at the same address (rediscovery).

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{oid, test_agent_with, v3_users, TestTable};
use dvsan_snmp::agent::{Agent, UsmConfig};
use dvsan_snmp::manager::{Manager, SnmpError, Target, UsmFailure};
use dvsan_snmp::usm::{AuthProtocol, Engine, EngineId, PrivProtocol, SecurityLevel, UserAccess, UsmUser};
use dvsan_snmp::{ErrorStatus, Value, VarBind};
use dvsan_tests::{free_udp_port, net_snmp, Proc};

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn user(name: &str, auth: AuthProtocol, auth_pass: &str, privacy: Option<&str>) -> UsmUser {
    UsmUser::new(name, auth, auth_pass, privacy.map(|p| (PrivProtocol::Aes128Cfb, p)), UserAccess::ReadWrite).unwrap()
}

fn refusal(err: SnmpError) -> UsmFailure {
    match err {
        SnmpError::Usm { reason, .. } => reason,
        other => panic!("expected a USM refusal, got {other:?}"),
    }
}

/// snmpd on a loopback port with three v3 users (and no community), its persistent state in `dir`.
async fn start_snmpd_v3(manager: &Manager, dir: &std::path::Path) -> (Proc, SocketAddr) {
    let port = free_udp_port("127.0.0.1");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let conf = dir.join("snmpd.conf");
    let mut f = std::fs::File::create(&conf).unwrap();
    writeln!(
        f,
        "createUser admin SHA-256 admin-auth-pass AES admin-priv-pass\n\
         createUser olduser SHA olduser-auth-pass AES olduser-priv-pass\n\
         createUser legacy SHA legacy-auth-pass\n\
         rwuser admin priv\nrouser olduser priv\nrouser legacy auth\n\
         sysDescr dvsan-test-snmpd-v3"
    )
    .unwrap();
    let mut cmd = net_snmp("snmpd");
    // The users createUser makes are written back to the persistent directory: keep it per test.
    cmd.env("SNMP_PERSISTENT_DIR", dir).args(["-f", "-Lo", "-C", "-c"]).arg(&conf).arg(format!("udp:{addr}"));
    let daemon = Proc::spawn("snmpd", cmd, dir);
    let admin = user("admin", AuthProtocol::HmacSha256, "admin-auth-pass", Some("admin-priv-pass"));
    let probe = Target::v3(addr, admin).with_timeout(Duration::from_millis(200), 0);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match manager.get(&probe, &[oid("1.3.6.1.2.1.1.1.0")]).await {
            Ok(_) => return (daemon, addr),
            Err(e) => {
                assert!(Instant::now() < deadline, "snmpd did not answer v3 on {addr}: {e}; {}", daemon.log_text())
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_manager_against_snmpd() {
    let dir = tempfile::tempdir().unwrap();
    let manager = Manager::new(local()).await.unwrap();
    let (_snmpd, addr) = start_snmpd_v3(&manager, dir.path()).await;
    let engine = manager.engine(addr).expect("the engine was discovered");
    assert!(engine.boots >= 1, "{engine:?}");

    let admin = Target::v3(addr, user("admin", AuthProtocol::HmacSha256, "admin-auth-pass", Some("admin-priv-pass")));
    let old =
        Target::v3(addr, user("olduser", AuthProtocol::HmacSha96, "olduser-auth-pass", Some("olduser-priv-pass")));
    let legacy = Target::v3(addr, user("legacy", AuthProtocol::HmacSha96, "legacy-auth-pass", None));
    let descr = oid("1.3.6.1.2.1.1.1.0");
    for target in [&admin, &old, &legacy] {
        let vbs = manager.get(target, std::slice::from_ref(&descr)).await.unwrap();
        assert_eq!(vbs[0].value, Value::string("dvsan-test-snmpd-v3"), "{:?}", target.usm);
    }
    let next = manager.get_next(&old, &[oid("1.3.6.1.2.1.1")]).await.unwrap();
    assert_eq!(next[0].oid, descr);
    let bulk = manager.get_bulk(&admin, 0, 3, &[oid("1.3.6.1.2.1.1")]).await.unwrap();
    assert_eq!(bulk.len(), 3);
    let system = manager.walk(&admin, &oid("1.3.6.1.2.1.1")).await.unwrap();
    assert!(system.len() >= 7 && system.windows(2).all(|w| w[0].oid < w[1].oid), "{system:?}");
    // The same walk at authNoPriv by the authNoPriv user.
    assert_eq!(manager.walk(&legacy, &oid("1.3.6.1.2.1.1")).await.unwrap().len(), system.len());

    // A SET by the read-write user, read back; the read-only user's SET is refused by snmpd's access control.
    let contact = oid("1.3.6.1.2.1.1.4.0");
    let set = vec![VarBind::new(contact.clone(), Value::string("ops@example.net"))];
    assert_eq!(manager.set(&admin, set.clone()).await.unwrap(), set);
    assert_eq!(manager.get(&old, std::slice::from_ref(&contact)).await.unwrap()[0].value, set[0].value);
    let err = manager.set(&old, set).await.unwrap_err();
    assert!(
        matches!(err, SnmpError::Agent { status: ErrorStatus::NoAccess | ErrorStatus::AuthorizationError, .. }),
        "{err:?}"
    );

    // Each wrong credential, with the failure that names it.
    let wrong_auth =
        Target::v3(addr, user("admin", AuthProtocol::HmacSha256, "not-the-auth-pass", Some("admin-priv-pass")));
    let wrong_priv =
        Target::v3(addr, user("admin", AuthProtocol::HmacSha256, "admin-auth-pass", Some("not-the-priv-pass")));
    let unknown =
        Target::v3(addr, user("nobody", AuthProtocol::HmacSha256, "admin-auth-pass", Some("admin-priv-pass")));
    // legacy has no privacy key at snmpd: authPriv is a level it is not served at.
    let legacy_priv =
        Target::v3(addr, user("legacy", AuthProtocol::HmacSha96, "legacy-auth-pass", Some("some-priv-pass")));
    for (target, want) in [
        (&wrong_auth, UsmFailure::WrongDigest),
        (&unknown, UsmFailure::UnknownUserName),
        (&legacy_priv, UsmFailure::UnsupportedSecLevel),
    ] {
        let err = manager.get(target, std::slice::from_ref(&descr)).await.unwrap_err();
        assert!(matches!(&err, SnmpError::Usm { .. }), "{want:?}: {err:?}");
        let text = err.to_string();
        assert_eq!(refusal(err), want, "{text}");
    }
    // snmpd sends no usmStatsDecryptionErrors Report (it drops what does not decrypt to a ScopedPDU), so a wrong
    // privacy passphrase is a timeout there; our agent reports it (see the next test).
    let wrong_priv = wrong_priv.with_timeout(Duration::from_millis(300), 0);
    let err = manager.get(&wrong_priv, std::slice::from_ref(&descr)).await.unwrap_err();
    assert!(matches!(err, SnmpError::Timeout), "{err:?}");
}

/// Serves `agent` on `addr` until the returned sender is dropped; the task ends when it has stopped.
async fn serve_on(
    agent: Arc<Agent>,
    addr: SocketAddr,
) -> (SocketAddr, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let socket = tokio::net::UdpSocket::bind(addr).await.unwrap();
    let bound = socket.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(agent.serve(socket, async move {
        let _ = rx.await;
    }));
    (bound, tx, task)
}

fn v3_agent(engine: Engine) -> (Arc<Agent>, Arc<TestTable>) {
    test_agent_with(Some(UsmConfig { engine, users: v3_users() }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_manager_against_engine_agent() {
    let id = EngineId::random(32473).unwrap();
    let (agent, table) = v3_agent(Engine::new(id.clone(), 7));
    let (addr, stop, task) = serve_on(agent, local()).await;
    let manager = Manager::new(local()).await.unwrap();
    let users = v3_users();
    let admin = Target::v3(addr, users[0].clone());
    let monitor = Target::v3(addr, users[1].clone());
    let legacy = Target::v3(addr, users[2].clone());

    let t = TestTable::prefix().child(1);
    let rows = manager.walk(&admin, &t).await.unwrap();
    assert_eq!(rows.len(), 9);
    let engine = manager.engine(addr).unwrap();
    assert_eq!((engine.id.clone(), engine.boots), (id.clone(), 7));
    assert_eq!(manager.walk(&monitor, &t).await.unwrap(), rows);
    assert_eq!(manager.walk(&legacy, &t).await.unwrap(), rows);
    let name = manager.get(&monitor, &[oid("1.3.6.1.2.1.1.5.0")]).await.unwrap();
    assert_eq!(name[0].value, Value::string("testhost"));

    let set = vec![VarBind::new(t.join(&[2, 3]), Value::Integer(99))];
    assert_eq!(manager.set(&admin, set.clone()).await.unwrap(), set);
    assert_eq!(table.value_of(3), Some(99));
    let err = manager.set(&monitor, set.clone()).await.unwrap_err();
    assert!(matches!(err, SnmpError::Agent { status: ErrorStatus::AuthorizationError, .. }), "{err:?}");

    let probe = |u: UsmUser| Target::v3(addr, u);
    let wrong_auth = probe(user("admin", AuthProtocol::HmacSha256, "not-the-auth-pass", Some("admin-priv-pass")));
    let wrong_priv = probe(user("admin", AuthProtocol::HmacSha256, "admin-auth-pass", Some("not-the-priv-pass")));
    let unknown = probe(user("nobody", AuthProtocol::HmacSha256, "admin-auth-pass", Some("admin-priv-pass")));
    let admin_auth_only = admin.clone().with_level(SecurityLevel::AuthNoPriv);
    for (target, want) in [
        (&wrong_auth, UsmFailure::WrongDigest),
        (&wrong_priv, UsmFailure::DecryptionError),
        (&unknown, UsmFailure::UnknownUserName),
        (&admin_auth_only, UsmFailure::UnsupportedSecLevel),
    ] {
        let err = manager.get(target, &[oid("1.3.6.1.2.1.1.5.0")]).await.unwrap_err();
        assert!(err.to_string().contains("refused by"), "{err}");
        assert_eq!(refusal(err), want);
    }

    // The agent restarts with the same engine id and one more boot: the cached boots are now stale, the agent
    // answers with a signed notInTimeWindows Report, the manager resynchronises once and the request succeeds.
    drop(stop);
    task.await.unwrap();
    let (agent, _table) = v3_agent(Engine::new(id.clone(), 8));
    let (again, stop, task) = serve_on(agent, addr).await;
    assert_eq!(again, addr);
    assert_eq!(manager.get(&admin, &[oid("1.3.6.1.2.1.1.5.0")]).await.unwrap()[0].value, Value::string("testhost"));
    assert_eq!(manager.engine(addr).unwrap().boots, 8);

    // Now another engine id answers at the address: an unknownEngineIDs Report, one rediscovery, success.
    drop(stop);
    task.await.unwrap();
    let other = EngineId::random(32473).unwrap();
    let (agent, _table) = v3_agent(Engine::new(other.clone(), 1));
    let (_, _stop, _task) = serve_on(agent, addr).await;
    assert_eq!(manager.walk(&admin, &t).await.unwrap().len(), 9);
    assert_eq!(manager.engine(addr).unwrap().id, other);
}

#[tokio::test]
async fn v3_target_without_credentials_and_v3_timeouts() {
    // A v3 target without a user is refused before anything is sent.
    let mut target = Target::new(local(), "");
    target.options.version = dvsan_snmp::Version::V3;
    let manager = Manager::new(local()).await.unwrap();
    let err = manager.get(&target, &[oid("1.3.6.1.2.1.1.5.0")]).await.unwrap_err();
    assert!(matches!(err, SnmpError::NoCredentials), "{err:?}");
    // Discovery against a port where nothing answers times out like any request.
    let silent = tokio::net::UdpSocket::bind(local()).await.unwrap();
    let users = v3_users();
    let target = Target::v3(silent.local_addr().unwrap(), users[0].clone()).with_timeout(Duration::from_millis(50), 1);
    let err = manager.get(&target, &[oid("1.3.6.1.2.1.1.5.0")]).await.unwrap_err();
    assert!(matches!(err, SnmpError::Timeout), "{err:?}");
    assert!(manager.engine(target.addr).is_none());
}
