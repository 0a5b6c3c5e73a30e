//! Notifications: our sender against net-snmp's snmptrapd, and our receiver against snmptrap,
//! snmpinform and our own sender.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{oid, tool};
use dvsan_snmp::manager::Target;
use dvsan_snmp::pdu::{TrapV1Pdu, VarBind};
use dvsan_snmp::receiver::{NotificationKind, NotificationReceiver, ReceiveError};
use dvsan_snmp::{NotificationSender, Uptime, Value, Version};
use dvsan_tests::{stderr, TrapReceiver};

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sender_against_snmptrapd() {
    let dir = tempfile::tempdir().unwrap();
    // Numeric OIDs, so the log shows exactly what was sent.
    let trapd = TrapReceiver::start_with(dir.path(), &["-On"]);
    let sink = trapd.addr;
    let sender = NotificationSender::new(local(), Uptime::start_now()).await.unwrap();

    sender
        .trap_v2(
            sink,
            "public",
            &oid("1.3.6.1.4.1.32473.1.0.2"),
            vec![VarBind::new(oid("1.3.6.1.4.1.32473.1.1.1.0"), Value::string("unit-a"))],
        )
        .await
        .unwrap();
    trapd.expect(".1.3.6.1.6.3.1.1.4.1.0 = OID: .1.3.6.1.4.1.32473.1.0.2", Duration::from_secs(5));
    trapd.expect(".1.3.6.1.4.1.32473.1.1.1.0 = STRING: \"unit-a\"", Duration::from_secs(1));

    // An inform returns only once snmptrapd acknowledged it.
    let target = Target::new(sink, "public").with_timeout(Duration::from_secs(1), 2);
    sender.inform(&target, &oid("1.3.6.1.4.1.32473.1.0.1"), vec![]).await.unwrap();
    // snmptrapd answers the inform before its log line is written: wait for the line briefly.
    trapd.expect("OID: .1.3.6.1.4.1.32473.1.0.1", Duration::from_secs(2));

    sender
        .trap_v1(
            sink,
            "public",
            TrapV1Pdu {
                enterprise: oid("1.3.6.1.4.1.32473"),
                agent_addr: [127, 0, 0, 1],
                generic_trap: 6,
                specific_trap: 17,
                timestamp: 456,
                varbinds: vec![VarBind::new(oid("1.3.6.1.2.1.1.5.0"), Value::string("v1"))],
            },
        )
        .await
        .unwrap();
    trapd.expect("Enterprise Specific Trap (17) Uptime: 0:00:04.56", Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_gets_net_snmp_notifications() {
    let mut receiver = NotificationReceiver::bind(local()).await.unwrap();
    let addr = receiver.local_addr().unwrap().to_string();

    // v2c trap.
    let args = [
        "-v2c",
        "-c",
        "public",
        "-m",
        "",
        &addr,
        "123",
        ".1.3.6.1.4.1.32473.1.0.2",
        ".1.3.6.1.2.1.1.5.0",
        "s",
        "hello",
    ];
    let out = tool("snmptrap", &args).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let n = tokio::time::timeout(Duration::from_secs(5), receiver.recv()).await.unwrap().unwrap();
    assert_eq!(n.kind, NotificationKind::TrapV2);
    assert_eq!(n.version, Version::V2c);
    assert_eq!(n.community, b"public");
    assert_eq!(n.uptime, 123);
    assert_eq!(n.trap_oid, oid("1.3.6.1.4.1.32473.1.0.2"));
    assert_eq!(n.varbinds, vec![VarBind::new(oid("1.3.6.1.2.1.1.5.0"), Value::string("hello"))]);

    // v1 traps: enterprise-specific and generic, translated per RFC 3584.
    let args = [
        "-v1",
        "-c",
        "public",
        "-m",
        "",
        &addr,
        ".1.3.6.1.4.1.32473",
        "127.0.0.1",
        "6",
        "17",
        "456",
        ".1.3.6.1.2.1.1.5.0",
        "s",
        "x",
    ];
    assert!(tool("snmptrap", &args).await.status.success());
    let n = tokio::time::timeout(Duration::from_secs(5), receiver.recv()).await.unwrap().unwrap();
    assert_eq!(n.kind, NotificationKind::TrapV1);
    assert_eq!(n.uptime, 456);
    assert_eq!(n.trap_oid, oid("1.3.6.1.4.1.32473.0.17"));
    assert_eq!(n.v1.as_ref().unwrap().agent_addr, [127, 0, 0, 1]);
    assert_eq!(n.varbinds.len(), 1);
    let args = ["-v1", "-c", "public", "-m", "", &addr, ".1.3.6.1.4.1.32473", "127.0.0.1", "2", "0", "1"];
    assert!(tool("snmptrap", &args).await.status.success());
    let n = tokio::time::timeout(Duration::from_secs(5), receiver.recv()).await.unwrap().unwrap();
    assert_eq!(n.trap_oid, oid("1.3.6.1.6.3.1.1.5.3"), "linkDown");

    // Inform: snmpinform waits for our acknowledgement and succeeds only if it gets it.
    let args: Vec<String> = [
        "-v2c",
        "-c",
        "public",
        "-m",
        "",
        "-t",
        "3",
        "-r",
        "0",
        &addr,
        "77",
        ".1.3.6.1.4.1.32473.1.0.1",
        ".1.3.6.1.2.1.1.5.0",
        "s",
        "inf",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let inform = tokio::spawn(async move {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        tool("snmpinform", &refs).await
    });
    let n = tokio::time::timeout(Duration::from_secs(5), receiver.recv()).await.unwrap().unwrap();
    assert_eq!(n.kind, NotificationKind::Inform);
    assert_eq!(n.uptime, 77);
    receiver.acknowledge(&n).await.unwrap();
    let out = inform.await.unwrap();
    assert!(out.status.success(), "snmpinform not acknowledged: {}", stderr(&out));

    // Garbage is reported with its source and counted, and the receiver carries on.
    let junk = tokio::net::UdpSocket::bind(local()).await.unwrap();
    junk.send_to(b"\x30\x03\x02\x01", &addr).await.unwrap();
    match tokio::time::timeout(Duration::from_secs(5), receiver.recv()).await.unwrap() {
        Err(ReceiveError::Malformed { from, .. }) => assert_eq!(from, junk.local_addr().unwrap()),
        other => panic!("expected a malformed-datagram error, got {other:?}"),
    }
    assert_eq!(receiver.counters().parse_errors.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(receiver.counters().notifications.load(std::sync::atomic::Ordering::Relaxed), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_batches_and_acknowledges_our_informs() {
    let mut receiver = NotificationReceiver::bind(local()).await.unwrap();
    let sink = receiver.local_addr().unwrap();
    let acker = receiver.acknowledger();
    const TRAPS: usize = 200;

    let collector = tokio::spawn(async move {
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while got.len() < TRAPS + 1 && Instant::now() < deadline {
            let mut batch = Vec::new();
            let fut = receiver.recv_many(&mut batch, 64);
            if tokio::time::timeout(Duration::from_secs(2), fut).await.is_err() {
                break;
            }
            for n in batch {
                let n = n.unwrap();
                if n.kind == NotificationKind::Inform {
                    acker.acknowledge(&n).await.unwrap();
                }
                got.push(n);
            }
        }
        got
    });

    let sender = NotificationSender::new(local(), Uptime::start_now()).await.unwrap();
    for i in 0..TRAPS {
        sender
            .trap_v2(
                sink,
                "public",
                &oid("1.3.6.1.4.1.32473.1.0.2"),
                vec![VarBind::new(oid("1.3.6.1.4.1.32473.9.0"), Value::Integer(i as i32))],
            )
            .await
            .unwrap();
        if i % 20 == 19 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let target = Target::new(sink, "public").with_timeout(Duration::from_secs(1), 2);
    sender.inform(&target, &oid("1.3.6.1.4.1.32473.1.0.1"), vec![]).await.unwrap();

    let got = collector.await.unwrap();
    assert_eq!(got.len(), TRAPS + 1);
    let traps: Vec<i32> = got
        .iter()
        .filter(|n| n.kind == NotificationKind::TrapV2)
        .map(|n| n.varbinds[0].value.as_i32().unwrap())
        .collect();
    assert_eq!(traps, (0..TRAPS as i32).collect::<Vec<_>>());
}
