//! The engine's manager against net-snmp's snmpd, against our own agent, and against fake
//! misbehaving agents.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{oid, test_agent};
use dvsan_snmp::manager::{Manager, SnmpError, Target};
use dvsan_snmp::message::{decode, encode, Message, Version};
use dvsan_snmp::pdu::{ErrorStatus, GenericPdu, Pdu, VarBind};
use dvsan_snmp::Value;
use dvsan_tests::{free_udp_port, net_snmp, Proc};

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Starts snmpd on a loopback port with a minimal configuration and waits until it answers.
async fn start_snmpd(manager: &Manager, dir: &std::path::Path) -> (Proc, SocketAddr) {
    let port = free_udp_port("127.0.0.1");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let conf = dir.join("snmpd.conf");
    let mut f = std::fs::File::create(&conf).unwrap();
    writeln!(f, "rocommunity public 127.0.0.1\nsysDescr dvsan-test-snmpd\nsysLocation lab").unwrap();
    let mut cmd = net_snmp("snmpd");
    cmd.args(["-f", "-Lo", "-C", "-c"]).arg(&conf).arg(format!("udp:127.0.0.1:{port}"));
    let daemon = Proc::spawn("snmpd", cmd, dir);
    let target = Target::new(addr, "public").with_timeout(Duration::from_millis(200), 0);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if manager.get(&target, &[oid("1.3.6.1.2.1.1.1.0")]).await.is_ok() {
            return (daemon, addr);
        }
        assert!(Instant::now() < deadline, "snmpd did not start answering on {addr}: {}", daemon.log_text());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manager_against_snmpd() {
    let dir = tempfile::tempdir().unwrap();
    let manager = Manager::new(local()).await.unwrap();
    let (_snmpd, addr) = start_snmpd(&manager, dir.path()).await;
    let target = Target::new(addr, "public");

    let vbs = manager
        .get(&target, &[oid("1.3.6.1.2.1.1.1.0"), oid("1.3.6.1.2.1.1.6.0"), oid("1.3.6.1.2.1.1.1.7")])
        .await
        .unwrap();
    assert_eq!(vbs[0].value, Value::string("dvsan-test-snmpd"));
    assert_eq!(vbs[1].value, Value::string("lab"));
    assert_eq!(vbs[2].value, Value::NoSuchInstance);

    let vbs = manager.get_next(&target, &[oid("1.3.6.1.2.1.1")]).await.unwrap();
    assert_eq!(vbs[0].oid, oid("1.3.6.1.2.1.1.1.0"));

    let vbs = manager.get_bulk(&target, 1, 3, &[oid("1.3.6.1.2.1.1.1"), oid("1.3.6.1.2.1.1")]).await.unwrap();
    assert_eq!(vbs.len(), 4);
    assert_eq!(vbs[0].oid, oid("1.3.6.1.2.1.1.1.0"));
    assert_eq!(vbs[1].oid, oid("1.3.6.1.2.1.1.1.0"));
    assert_eq!(vbs[2].oid, oid("1.3.6.1.2.1.1.2.0"));

    // Bulk walk of system (v2c) and GetNext walk (v1) agree.
    let system = oid("1.3.6.1.2.1.1");
    let v2 = manager.walk(&target, &system).await.unwrap();
    assert!(v2.len() >= 8, "{v2:?}");
    assert!(v2.iter().all(|vb| vb.oid.starts_with(system.as_slice())));
    assert!(v2.windows(2).all(|w| w[0].oid < w[1].oid));
    assert!(v2.iter().any(|vb| vb.oid == oid("1.3.6.1.2.1.1.3.0")));
    let v1 = manager.walk(&target.clone().with_version(Version::V1), &system).await.unwrap();
    let names = |v: &[VarBind]| v.iter().map(|vb| vb.oid.clone()).collect::<Vec<_>>();
    assert_eq!(names(&v1), names(&v2));

    // A refused SET comes back as an agent error (read-only community: noAccess/notWritable
    // in v2c; snmpd answers noAccess for a community without write access).
    let err = manager.set(&target, vec![VarBind::new(oid("1.3.6.1.2.1.1.6.0"), Value::string("x"))]).await.unwrap_err();
    match err {
        SnmpError::Agent { status, index } => {
            assert!(
                matches!(status, ErrorStatus::NoAccess | ErrorStatus::NotWritable | ErrorStatus::AuthorizationError),
                "{status}"
            );
            assert_eq!(index, 1);
        }
        other => panic!("unexpected {other:?}"),
    }

    // Many concurrent requests from many tasks over the one socket.
    let manager = Arc::new(manager);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50u32 {
        let manager = Arc::clone(&manager);
        let target = target.clone();
        tasks.spawn(async move {
            let name = if i % 2 == 0 { "1.3.6.1.2.1.1.1.0" } else { "1.3.6.1.2.1.1.6.0" };
            let vbs = manager.get(&target, &[oid(name)]).await.unwrap();
            (i, vbs[0].value.clone())
        });
    }
    let mut done = 0;
    while let Some(r) = tasks.join_next().await {
        let (i, v) = r.unwrap();
        let expected = if i % 2 == 0 { "dvsan-test-snmpd" } else { "lab" };
        assert_eq!(v, Value::string(expected));
        done += 1;
    }
    assert_eq!(done, 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manager_against_engine_agent() {
    let (agent, table) = test_agent(65507, vec![]);
    let (addr, _stop) = common::spawn_agent(agent).await;
    let manager = Manager::new(local()).await.unwrap();
    let reader = Target::new(addr, "public");
    let writer = Target::new(addr, "private");
    let all = manager.walk(&reader, &oid("1.3.6.1")).await.unwrap();
    assert!(all.len() > 40);
    let t = oid("1.3.6.1.4.1.32473.99.1.1");
    let rows = manager.walk(&reader, &t).await.unwrap();
    assert_eq!(rows.len(), 9);
    let rows_v1 = manager.walk(&reader.clone().with_version(Version::V1), &t).await.unwrap();
    assert_eq!(rows_v1.len(), 6, "Counter64 column hidden from v1");

    let set = vec![VarBind::new(t.join(&[2, 3]), Value::Integer(99))];
    assert_eq!(manager.set(&writer, set.clone()).await.unwrap(), set);
    assert_eq!(table.value_of(3), Some(99));
    let err = manager.set(&writer, vec![VarBind::new(t.join(&[3, 3]), Value::Integer(1))]).await.unwrap_err();
    assert!(matches!(err, SnmpError::Agent { status: ErrorStatus::NotWritable, index: 1 }), "{err:?}");
    let err =
        manager.get_bulk(&reader.clone().with_version(Version::V1), 0, 5, std::slice::from_ref(&t)).await.unwrap_err();
    assert!(matches!(err, SnmpError::NotInV1), "{err:?}");
}

/// A fake agent on `socket` answering every request with `answer(request)`, from `reply_from`.
async fn fake_agent(
    socket: Arc<tokio::net::UdpSocket>,
    reply_from: Arc<tokio::net::UdpSocket>,
    answer: fn(&GenericPdu) -> Vec<VarBind>,
) {
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((len, from)) = socket.recv_from(&mut buf).await else { return };
        let Ok(msg) = decode(&buf[..len]) else { continue };
        let (Pdu::Get(p) | Pdu::GetNext(p)) = &msg.pdu else {
            let Pdu::GetBulk(b) = &msg.pdu else { continue };
            let p = GenericPdu::request(b.request_id, b.varbinds.clone());
            let resp = GenericPdu::request(p.request_id, answer(&p));
            let out =
                encode(&Message { version: msg.version, community: msg.community.clone(), pdu: Pdu::Response(resp) });
            let _ = reply_from.send_to(&out, from).await;
            continue;
        };
        let resp = GenericPdu::request(p.request_id, answer(p));
        let out = encode(&Message { version: msg.version, community: msg.community.clone(), pdu: Pdu::Response(resp) });
        let _ = reply_from.send_to(&out, from).await;
    }
}

#[tokio::test]
async fn walk_detects_non_increasing_oids() {
    let socket = Arc::new(tokio::net::UdpSocket::bind(local()).await.unwrap());
    let addr = socket.local_addr().unwrap();
    tokio::spawn(fake_agent(socket.clone(), socket, |_| {
        vec![VarBind::new(oid("1.3.6.1.2.1.1.1.0"), Value::Integer(1))]
    }));
    let manager = Manager::new(local()).await.unwrap();
    let err = manager.walk(&Target::new(addr, "public"), &oid("1.3.6.1.2.1.1")).await.unwrap_err();
    assert!(matches!(err, SnmpError::NotIncreasing { .. }), "{err:?}");
}

#[tokio::test]
async fn responses_from_the_wrong_address_are_ignored_and_time_out() {
    let socket = Arc::new(tokio::net::UdpSocket::bind(local()).await.unwrap());
    let other = Arc::new(tokio::net::UdpSocket::bind(local()).await.unwrap());
    let addr = socket.local_addr().unwrap();
    tokio::spawn(fake_agent(socket, other, |p| p.varbinds.clone()));
    let manager = Manager::new(local()).await.unwrap();
    let target = Target::new(addr, "public").with_timeout(Duration::from_millis(100), 2);
    let started = Instant::now();
    let err = manager.get(&target, &[oid("1.3.6.1.2.1.1.1.0")]).await.unwrap_err();
    assert!(matches!(err, SnmpError::Timeout), "{err:?}");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(3), "{took:?}");
}
