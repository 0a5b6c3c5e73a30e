//! The console's notification tail over SNMP (`dvsan_console::source::log`) against a real station: notifications
//! sent to the station come back, in order and with their varbinds, from its NOTIFICATION-LOG-MIB, and the
//! newest index is found without reading the whole log.

use dvsan_console::source::log::LogReader;
use dvsan_mib as mib;
use dvsan_snmp::notify::NotificationSender;
use dvsan_snmp::{Oid, Uptime, Value, VarBind};
use dvsan_tests::units::Station;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tail_reads_the_station_log_over_snmp() {
    let dir = tempfile::tempdir().unwrap();
    let station = Station::start(&dir.path().join("station"), &[]);
    let traps = station.traps;
    let snmp = station.snmp.expect("the station serves SNMP");

    let reader = LogReader::new(snmp, "public", Duration::from_secs(1)).await.unwrap();
    assert_eq!(reader.newest_index().await.unwrap(), 0, "an empty log");

    // 600 linkDown traps from 127.0.0.31, each with its ifIndex and a description.
    let sender = NotificationSender::new("127.0.0.31:0".parse().unwrap(), Uptime::start_now()).await.unwrap();
    let link_down = Oid::from_slice(mib::LINK_DOWN);
    const SENT: u32 = 600;
    for i in 1..=SENT {
        let varbinds = vec![
            VarBind::new(Oid::from_slice(mib::IF_INDEX).child(i), Value::Integer(i as i32)),
            VarBind::new(Oid::from_slice(mib::IF_DESCR).child(i), Value::string(&format!("port {i}"))),
        ];
        sender.trap_v2(traps, "public", &link_down, varbinds).await.unwrap();
        if i % 100 == 0 {
            // Let the station keep up (traps are UDP; this is about reading, not about load).
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let mut newest = 0;
    for _ in 0..100 {
        newest = reader.newest_index().await.unwrap();
        if newest == SENT {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(newest, SENT, "all {SENT} stored; station log:\n{}", station.proc.log_text());

    // A page from the start, then the tail end: in order, whole, with names and values.
    let first = reader.read_after(0, 200).await.unwrap();
    assert_eq!(first.len(), 200);
    assert_eq!(first.iter().map(|n| n.id).collect::<Vec<_>>(), (1..=200).collect::<Vec<i64>>());
    assert_eq!(first[0].type_name, "linkDown");
    assert!(first[0].source.starts_with("127.0.0.31:"), "{}", first[0].source);
    assert_eq!(first[0].details, "ifIndex.1=1 ifDescr.1=port 1");
    assert!(first[0].time.ends_with('Z') && first[0].time.contains('T'), "{}", first[0].time);
    let last = reader.read_after(SENT - 5, 200).await.unwrap();
    assert_eq!(last.iter().map(|n| n.id).collect::<Vec<_>>(), (596..=600).collect::<Vec<i64>>());
    assert_eq!(last[4].details, "ifIndex.600=600 ifDescr.600=port 600");
    assert!(reader.read_after(SENT, 200).await.unwrap().is_empty());
}
