//! The engine's agent (`Agent::serve`) against the real net-snmp command-line tools.

mod common;

use common::{test_agent, tool, Fault, Faulty};
use dvsan_tests::{stderr, stdout};
use std::sync::Arc;

const T: &str = ".1.3.6.1.4.1.32473.99.1.1";

/// Common net-snmp options: numeric OIDs, no MIB loading.
fn args<'a>(version: &'a str, community: &'a str, target: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["-v", version, "-c", community, "-On", "-m", "", "-t", "2", "-r", "1", target];
    v.extend_from_slice(rest);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn net_snmp_tools_against_engine_agent() {
    let faulty = Arc::new(Faulty::new(2, Fault::None, false));
    let (agent, table) = test_agent(65507, vec![faulty]);
    let (addr, _stop) = common::spawn_agent(agent.clone()).await;
    let target = format!("udp:{addr}");
    let target = target.as_str();

    // snmpget v2c: a value, a noSuchObject and a noSuchInstance.
    let out =
        tool("snmpget", &args("2c", "public", target, &[".1.3.6.1.2.1.1.1.0", ".1.3.6.1.9.9", ".1.3.6.1.2.1.1.1.5"]))
            .await;
    let text = stdout(&out);
    assert!(out.status.success(), "snmpget failed: {}", stderr(&out));
    assert!(text.contains(".1.3.6.1.2.1.1.1.0 = STRING: \"dvsan-snmp test agent\""), "{text}");
    assert!(text.contains(".1.3.6.1.9.9 = No Such Object"), "{text}");
    assert!(text.contains(".1.3.6.1.2.1.1.1.5 = No Such Instance"), "{text}");

    // snmpgetnext.
    let out = tool("snmpgetnext", &args("2c", "public", target, &[".1.3.6.1.2.1.1"])).await;
    assert!(stdout(&out).starts_with(".1.3.6.1.2.1.1.1.0 = STRING"), "{}", stdout(&out));

    // snmpwalk v2c over the test table: 3 columns x 3 rows, Counter64 included.
    let out = tool("snmpwalk", &args("2c", "public", target, &[T])).await;
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 9, "{text}{}", stderr(&out));
    assert!(text.contains(&format!("{T}.4.3 = Counter64: {}", 3u64 << 40)), "{text}");
    assert!(text.contains(&format!("{T}.3.2 = STRING: \"row2\"")), "{text}");

    // snmpwalk v1: the Counter64 column is invisible.
    let out = tool("snmpwalk", &args("1", "public", target, &[T])).await;
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 6, "{text}{}", stderr(&out));
    assert!(!text.contains("Counter64"), "{text}");

    // snmpbulkwalk over everything: system, snmp, test subtrees, strictly increasing.
    let out = tool("snmpbulkwalk", &args("2c", "public", target, &["-Cr50", ".1"])).await;
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(text.contains(".1.3.6.1.2.1.1.3.0 = Timeticks"), "{text}");
    assert!(text.contains(".1.3.6.1.2.1.11.1.0 = Counter32"), "{text}");
    assert!(text.contains(&format!("{T}.2.1 = INTEGER: 10")), "{text}");
    assert!(!stderr(&out).contains("not increasing"), "{}", stderr(&out));
    let bulk_lines = text.lines().count();
    assert!(bulk_lines > 40, "{text}");

    // snmpset success (two handlers in one PDU), then read back.
    let out = tool(
        "snmpset",
        &args(
            "2c",
            "private",
            target,
            &[
                &format!("{T}.2.1"),
                "i",
                "42",
                ".1.3.6.1.4.1.32473.99.2.1.0",
                "i",
                "7",
                ".1.3.6.1.2.1.1.6.0",
                "s",
                "rack 4",
            ],
        ),
    )
    .await;
    assert!(out.status.success(), "snmpset failed: {}", stderr(&out));
    assert_eq!(table.value_of(1), Some(42));
    assert_eq!(agent.system().location(), "rack 4");

    // snmpset failures: the error name reaches net-snmp.
    for (version, oid, kind, value, expect) in [
        ("2c", format!("{T}.3.1"), "s", "x", "notWritable"),
        ("2c", format!("{T}.2.1"), "s", "x", "wrongType"),
        ("2c", format!("{T}.2.1"), "i", "-5", "wrongValue"),
        ("2c", format!("{T}.2.9"), "i", "1", "noCreation"),
        ("2c", ".1.3.6.1.8.1.0".to_string(), "i", "1", "notWritable"),
        ("1", format!("{T}.3.1"), "s", "x", "noSuchName"),
        ("1", format!("{T}.2.1"), "s", "x", "badValue"),
    ] {
        let out = tool("snmpset", &args(version, "private", target, &[&oid, kind, value])).await;
        assert!(!out.status.success(), "snmpset {oid} should fail");
        assert!(stderr(&out).contains(expect), "v{version} {oid}: {}", stderr(&out));
    }
    assert_eq!(table.value_of(1), Some(42), "failed SETs changed nothing");

    // v1 GET of a missing object: noSuchName.
    let out = tool("snmpget", &args("1", "public", target, &[".1.3.6.1.9.9"])).await;
    assert!(
        stderr(&out).contains("noSuchName") || stdout(&out).contains("noSuchName"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );

    // A wrong community, and SET with the read-only community, get no answer at all.
    let quick = |c: &'static str| vec!["-v", "2c", "-c", c, "-On", "-m", "", "-t", "1", "-r", "0", target];
    let mut a = quick("nope");
    a.push(".1.3.6.1.2.1.1.1.0");
    let out = tool("snmpget", &a).await;
    assert!(stderr(&out).contains("Timeout"), "{}", stderr(&out));
    let mut a = quick("public");
    a.extend_from_slice(&[".1.3.6.1.2.1.1.6.0", "s", "x"]);
    let out = tool("snmpset", &a).await;
    assert!(stderr(&out).contains("Timeout"), "{}", stderr(&out));
    let c = agent.counters();
    assert_eq!(c.in_bad_community_names.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(c.in_bad_community_uses.load(std::sync::atomic::Ordering::Relaxed), 1);
}

/// A community's read view hides the rest of the MIB from snmpwalk and snmpget; a SET outside a community's write
/// view is noAccess for snmpset and moves snmpInBadCommunityUses, which snmpget reads back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn net_snmp_tools_see_community_views() {
    use dvsan_snmp::agent::{Community, View};
    use dvsan_snmp::{Agent, AgentConfig};
    let table = Arc::new(common::TestTable::new());
    let config = AgentConfig {
        communities: vec![
            Community::read_only("public"),
            Community { read_view: View::subtrees([common::oid(&T[1..])]), ..Community::read_only("tableonly") },
            Community {
                write_view: View::subtrees([common::oid("1.3.6.1.2.1.1")]),
                ..Community::read_write("sysadmin")
            },
        ],
        ..AgentConfig::default()
    };
    let agent = Arc::new(Agent::builder(config).handler(common::TestTable::prefix(), table.clone()).build().unwrap());
    let (addr, _stop) = common::spawn_agent(agent.clone()).await;
    let target = format!("udp:{addr}");
    let target = target.as_str();

    // The whole MIB through `tableonly` is the test table: 9 objects, then the end of the view.
    let out = tool("snmpwalk", &args("2c", "tableonly", target, &[".1"])).await;
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    let objects: Vec<&str> = text.lines().filter(|l| !l.contains("No more variables left")).collect();
    assert_eq!(objects.len(), 9, "{text}");
    assert!(objects.iter().all(|l| l.starts_with(T)), "{text}");
    let out = tool("snmpget", &args("2c", "tableonly", target, &[".1.3.6.1.2.1.1.1.0"])).await;
    assert!(stdout(&out).contains("No Such Object"), "{}{}", stdout(&out), stderr(&out));

    // `sysadmin` may set sysLocation but not the table.
    let out = tool("snmpset", &args("2c", "sysadmin", target, &[".1.3.6.1.2.1.1.6.0", "s", "rack 9"])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(agent.system().location(), "rack 9");
    let out = tool("snmpset", &args("2c", "sysadmin", target, &[&format!("{T}.2.1"), "i", "5"])).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("noAccess"), "{}", stderr(&out));
    assert_eq!(table.value_of(1), Some(10));
    // snmpInBadCommunityUses.0 reads 1.
    let out = tool("snmpget", &args("2c", "public", target, &[".1.3.6.1.2.1.11.5.0"])).await;
    assert!(stdout(&out).contains("Counter32: 1"), "{}{}", stdout(&out), stderr(&out));
}
