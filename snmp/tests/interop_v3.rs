//! SNMPv3 at the engine's agent against net-snmp's command-line tools: authPriv reads and SETs with
//! SHA-256, SHA-512 and SHA (HMAC-SHA-96) users, and every refusal (wrong auth or priv passphrase, unknown
//! user, a level the user is not configured for, a read-only user's SET) answered with the right Report or
//! error and counted in usmStats, read back with snmpget; and users' views from a users file (reads outside the
//! read view find nothing, SETs outside the write view get noAccess and are counted; a noAuthNoPriv user only
//! where the file says `level = "noAuthNoPriv"`).

mod common;

use std::sync::Arc;

use common::{test_agent_with, tool, v3_users, TestTable};
use dvsan_snmp::agent::{Agent, UsmConfig};
use dvsan_snmp::usm::{Engine, EngineId, UsersFile};
use dvsan_tests::{stderr, stdout};

const T: &str = ".1.3.6.1.4.1.32473.99.1.1";
const USM_STATS: &str = ".1.3.6.1.6.3.15.1.1";

fn v3_agent() -> (Arc<Agent>, Arc<TestTable>) {
    let engine = Engine::new(EngineId::random(32473).unwrap(), 1);
    test_agent_with(Some(UsmConfig { engine, users: v3_users() }))
}

/// net-snmp v3 options for `user` at `level` with the given passphrases, numeric output, no retries.
fn v3<'a>(
    user: &'a str,
    level: &'a str,
    auth: &'a str,
    auth_pass: &'a str,
    priv_pass: &'a str,
    target: &'a str,
    rest: &[&'a str],
) -> Vec<&'a str> {
    let mut v = vec!["-v", "3", "-u", user, "-l", level, "-On", "-m", "", "-t", "2", "-r", "0"];
    if level != "noAuthNoPriv" {
        v.extend_from_slice(&["-a", auth, "-A", auth_pass]);
    }
    if level == "authPriv" {
        v.extend_from_slice(&["-x", "AES", "-X", priv_pass]);
    }
    v.push(target);
    v.extend_from_slice(rest);
    v
}

fn admin<'a>(target: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    v3("admin", "authPriv", "SHA-256", "admin-auth-pass", "admin-priv-pass", target, rest)
}

/// usmStats.<arc>.0 read by the admin user.
async fn usm_stat(target: &str, arc: u32) -> u32 {
    let oid = format!("{USM_STATS}.{arc}.0");
    let out = tool("snmpget", &admin(target, &["-Oqv", &oid])).await;
    assert!(out.status.success(), "reading {oid}: {}", stderr(&out));
    stdout(&out).trim().parse().unwrap_or_else(|_| panic!("{oid} = {:?}", stdout(&out)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn net_snmp_v3_reads_and_sets() {
    let (agent, table) = v3_agent();
    let (addr, _stop) = common::spawn_agent(agent.clone()).await;
    let target = format!("udp:{addr}");
    let target = target.as_str();

    // authPriv SHA-256/AES: a GET, a walk of the test table, a bulk walk over everything.
    let out = tool("snmpget", &admin(target, &[".1.3.6.1.2.1.1.1.0"])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("STRING: \"dvsan-snmp test agent\""), "{}", stdout(&out));
    let out = tool("snmpwalk", &admin(target, &[T])).await;
    assert_eq!(stdout(&out).lines().count(), 9, "{}{}", stdout(&out), stderr(&out));
    let out = tool("snmpbulkwalk", &admin(target, &["-Cr25", ".1"])).await;
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    let engine_hex: String = agent.engine().unwrap().id().to_hex();
    assert!(text.contains(".1.3.6.1.6.3.10.2.1.1.0 = Hex-STRING: "), "{text}");
    assert!(text.replace(' ', "").to_lowercase().contains(&engine_hex), "{text}");
    assert!(text.contains(".1.3.6.1.6.3.10.2.1.2.0 = INTEGER: 1"), "{text}");
    assert!(text.contains(&format!("{USM_STATS}.4.0 = Counter32: ")), "{text}");
    assert!(text.contains(".1.3.6.1.6.3.11.2.1.2.0 = Counter32: 0"), "{text}");
    assert!(!stderr(&out).contains("not increasing"), "{}", stderr(&out));

    // A SET by the read-write user.
    let out = tool("snmpset", &admin(target, &[&format!("{T}.2.1"), "i", "55"])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(table.value_of(1), Some(55));

    // SHA-512 (usmHMAC384SHA512AuthProtocol) with AES, and SHA (HMAC-SHA-96) at authNoPriv.
    let out = tool(
        "snmpget",
        &v3("monitor", "authPriv", "SHA-512", "monitor-auth-pass", "monitor-priv-pass", target, &[&format!("{T}.2.1")]),
    )
    .await;
    assert!(stdout(&out).contains("INTEGER: 55"), "{}{}", stdout(&out), stderr(&out));
    let out =
        tool("snmpget", &v3("legacy", "authNoPriv", "SHA", "legacy-auth-pass", "", target, &[".1.3.6.1.2.1.1.5.0"]))
            .await;
    assert!(stdout(&out).contains("STRING: \"testhost\""), "{}{}", stdout(&out), stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn net_snmp_v3_refusals_are_reported_and_counted() {
    let (agent, table) = v3_agent();
    let (addr, _stop) = common::spawn_agent(agent.clone()).await;
    let target = format!("udp:{addr}");
    let target = target.as_str();
    let secret = format!("{T}.3.1");

    // Each refusal: the tool fails with net-snmp's text for the Report, and prints no data.
    let cases: [(&str, Vec<&str>, &str, u32); 4] = [
        (
            "wrong auth passphrase",
            v3("admin", "authPriv", "SHA-256", "not-the-auth-pass", "admin-priv-pass", target, &[&secret]),
            "Authentication failure",
            5,
        ),
        (
            "wrong priv passphrase",
            v3("admin", "authPriv", "SHA-256", "admin-auth-pass", "not-the-priv-pass", target, &[&secret]),
            "Decryption error",
            6,
        ),
        (
            "unknown user",
            v3("mallory", "authPriv", "SHA-256", "admin-auth-pass", "admin-priv-pass", target, &[&secret]),
            "Unknown user name",
            3,
        ),
        (
            "noAuthNoPriv to an authPriv user",
            v3("admin", "noAuthNoPriv", "", "", "", target, &[&secret]),
            "Unsupported security level",
            1,
        ),
    ];
    for (name, args, message, arc) in cases {
        let before = usm_stat(target, arc).await;
        let out = tool("snmpget", &args).await;
        assert!(!out.status.success(), "{name}: succeeded: {}", stdout(&out));
        assert!(!stdout(&out).contains("row1"), "{name}: data leaked: {}", stdout(&out));
        assert!(stderr(&out).contains(message), "{name}: {}", stderr(&out));
        let after = usm_stat(target, arc).await;
        assert!(after > before, "{name}: usmStats.{arc} stayed at {before}");
    }

    // A read-only user's SET: authorizationError, nothing changes, snmpInBadCommunityUses counts it.
    let out = tool(
        "snmpset",
        &v3(
            "monitor",
            "authPriv",
            "SHA-512",
            "monitor-auth-pass",
            "monitor-priv-pass",
            target,
            &[&format!("{T}.2.2"), "i", "99"],
        ),
    )
    .await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("authorizationError"), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(table.value_of(2), Some(20));
    let out = tool("snmpget", &admin(target, &["-Oqv", ".1.3.6.1.2.1.11.5.0"])).await;
    assert_eq!(stdout(&out).trim(), "1", "{}", stderr(&out));
}

/// The users of a users file with views: `scoped` (authPriv SHA-256/AES, read-write) reads the system group and
/// the test table and writes column 2 of row 1 only; `lab` (noAuthNoPriv, opted in) reads the system group.
const VIEW_USERS: &str = r#"
[[user]]
name = "admin"
auth = "SHA-256"
auth_passphrase = "admin-auth-pass"
priv = "AES"
priv_passphrase = "admin-priv-pass"
access = "read-write"

[[user]]
name = "scoped"
auth = "SHA-256"
auth_passphrase = "scoped-auth-pass"
priv = "AES"
priv_passphrase = "scoped-priv-pass"
access = "read-write"
read_view = ["1.3.6.1.2.1.1", "1.3.6.1.4.1.32473.99.1.1"]
write_view = [".1.3.6.1.4.1.32473.99.1.1.2.1"]

[[user]]
name = "lab"
level = "noAuthNoPriv"
read_view = ["1.3.6.1.2.1.1"]
"#;

fn scoped<'a>(target: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    v3("scoped", "authPriv", "SHA-256", "scoped-auth-pass", "scoped-priv-pass", target, rest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn net_snmp_v3_users_see_and_set_only_their_views() {
    let users = UsersFile::parse(VIEW_USERS, std::path::Path::new("users.toml")).unwrap();
    let engine = Engine::new(EngineId::random(32473).unwrap(), 1);
    let (agent, table) = test_agent_with(Some(UsmConfig { engine, users: users.users }));
    let (addr, _stop) = common::spawn_agent(agent.clone()).await;
    let target = format!("udp:{addr}");
    let target = target.as_str();

    // A walk of the whole MIB shows the read view only: the system group and the test table.
    let out = tool("snmpwalk", &scoped(target, &[".1"])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains(".1.3.6.1.2.1.1.5.0 = STRING: \"testhost\""), "{text}");
    let table_rows = text.lines().filter(|l| l.starts_with(T) && !l.contains("No more variables")).count();
    assert_eq!(table_rows, 9, "{text}");
    for line in text.lines() {
        assert!(line.starts_with(".1.3.6.1.2.1.1.") || line.starts_with(T), "outside the read view: {line}");
    }
    // The admin user (no views) sees more, e.g. the snmp group.
    let all = tool("snmpwalk", &admin(target, &[".1"])).await;
    assert!(stdout(&all).contains(".1.3.6.1.2.1.11.1.0 = "), "{}", stdout(&all));
    // A GET outside the read view: the object does not exist.
    let out = tool("snmpget", &scoped(target, &[".1.3.6.1.2.1.11.1.0"])).await;
    assert!(stdout(&out).contains("No Such Object"), "{}{}", stdout(&out), stderr(&out));

    // A SET inside the write view works; one outside it is refused with noAccess, changes nothing and is counted.
    let out = tool("snmpset", &scoped(target, &[&format!("{T}.2.1"), "i", "77"])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(table.value_of(1), Some(77));
    let bad_uses = || async {
        let out = tool("snmpget", &admin(target, &["-Oqv", ".1.3.6.1.2.1.11.5.0"])).await;
        stdout(&out).trim().parse::<u32>().unwrap_or_else(|_| panic!("{}{}", stdout(&out), stderr(&out)))
    };
    let before = bad_uses().await;
    let out = tool("snmpset", &scoped(target, &[&format!("{T}.2.2"), "i", "99"])).await;
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(stderr(&out).contains("noAccess"), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(table.value_of(2), Some(20));
    assert_eq!(bad_uses().await, before + 1);

    // The opted-in noAuthNoPriv user reads its view in the clear, and nothing else.
    let lab = |oid: &'static str| v3("lab", "noAuthNoPriv", "", "", "", target, &[oid]);
    let out = tool("snmpget", &lab(".1.3.6.1.2.1.1.5.0")).await;
    assert!(stdout(&out).contains("STRING: \"testhost\""), "{}{}", stdout(&out), stderr(&out));
    let out = tool("snmpget", &lab(".1.3.6.1.4.1.32473.99.1.1.2.1")).await;
    assert!(stdout(&out).contains("No Such Object"), "{}{}", stdout(&out), stderr(&out));
    // ... and only at noAuthNoPriv: claiming authentication for it is an unsupported level.
    let out =
        tool("snmpget", &v3("lab", "authNoPriv", "SHA", "whatever-pass", "", target, &[".1.3.6.1.2.1.1.5.0"])).await;
    assert!(stderr(&out).contains("Unsupported security level"), "{}{}", stdout(&out), stderr(&out));
}
