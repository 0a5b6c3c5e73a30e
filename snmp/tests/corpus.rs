//! Replays the malformed-datagram corpus at a serving agent: each case is dropped and counted
//! or answered as the corpus says, and the agent keeps answering normal requests.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::test_agent;
use dvsan_snmp::message::decode;
use dvsan_snmp::pdu::Pdu;
use dvsan_snmp::testing::{get_sys_descr, malformed_corpus, Expected};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_against_serving_agent() {
    let (agent, _) = test_agent(65507, vec![]);
    let (addr, _stop) = common::spawn_agent(agent.clone()).await;
    let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut buf = vec![0u8; 65536];
    let corpus = malformed_corpus("public", "private");
    assert!(corpus.len() >= 20);

    for case in &corpus {
        client.send_to(&case.datagram, addr).await.unwrap();
        let wait = match case.expected {
            Expected::Answered => Duration::from_secs(5),
            _ => Duration::from_millis(100),
        };
        let reply = tokio::time::timeout(wait, client.recv_from(&mut buf)).await;
        match (case.expected, reply) {
            (Expected::Answered, Ok(Ok((len, _)))) => {
                let msg = decode(&buf[..len]).unwrap_or_else(|e| panic!("{}: bad answer {e}", case.name));
                assert!(matches!(msg.pdu, Pdu::Response(_)), "{}", case.name);
            }
            (Expected::Answered, _) => panic!("{}: no answer", case.name),
            (_, Err(_elapsed)) => {}
            (_, Ok(_)) => panic!("{}: answered but should be dropped", case.name),
        }
        // The agent still answers a normal GET after every case.
        client.send_to(&get_sys_descr("public", 99), addr).await.unwrap();
        let (len, _) = tokio::time::timeout(Duration::from_secs(5), client.recv_from(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("agent stopped answering after {}", case.name))
            .unwrap();
        assert!(decode(&buf[..len]).is_ok());
    }

    let count = |e: Expected| corpus.iter().filter(|c| c.expected == e).count() as u32;
    let c = agent.counters();
    assert_eq!(c.in_asn_parse_errs.load(Ordering::Relaxed), count(Expected::ParseError));
    assert_eq!(c.in_bad_versions.load(Ordering::Relaxed), count(Expected::BadVersion));
}

#[test]
fn corpus_through_process_directly() {
    let (agent, _) = test_agent(65507, vec![]);
    let from = "127.0.0.1:1".parse().unwrap();
    for case in malformed_corpus("public", "private") {
        let answered = agent.process(&case.datagram, from).is_some();
        assert_eq!(answered, case.expected == Expected::Answered, "{}", case.name);
    }
}
