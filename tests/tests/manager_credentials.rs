//! `--credentials FILE --user NAME` on the manager-side CLIs: `dvsan-host` speaks SNMPv3 (authPriv SHA-256/AES)
//! to an agent that serves only that user, with the flags and with DVSAN_CREDENTIALS/DVSAN_USER; a wrong
//! passphrase and a user missing from the file each fail with a sentence naming the cause.

use dvsan_snmp::agent::{Agent, AgentConfig, UsmConfig};
use dvsan_snmp::usm::{AuthProtocol, Engine, EngineId, PrivProtocol, UserAccess, UsmUser};
use dvsan_tests::workspace_bin;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

fn users_file(dir: &Path, name: &str, auth_pass: &str) -> PathBuf {
    let path = dir.join(format!("{name}-{auth_pass}.toml"));
    dvsan_tests::write_users_file(&path, &[(name, auth_pass, "host-priv-pass", "read-write")], 0o600)
}

/// Runs `cmd` off the runtime (the agent answers meanwhile): success, stderr.
async fn run(mut cmd: Command) -> (bool, String) {
    let out = tokio::task::spawn_blocking(move || cmd.env_remove("DVSAN_STATION").output().unwrap()).await.unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dvsan_host_speaks_v3_with_credentials() {
    let user = UsmUser::new(
        "host-a",
        AuthProtocol::HmacSha256,
        "host-auth-pass",
        Some((PrivProtocol::Aes128Cfb, "host-priv-pass")),
        UserAccess::ReadWrite,
    )
    .unwrap();
    let usm = UsmConfig { engine: Engine::new(EngineId::random(32473).unwrap(), 1), users: vec![user] };
    // No community at all: only the v3 user gets answers.
    let config = AgentConfig { communities: Vec::new(), usm: Some(usm), ..AgentConfig::default() };
    let agent = Arc::new(Agent::builder(config).build().unwrap());
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let station = socket.local_addr().unwrap().to_string();
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(agent.serve(socket, async move {
        let _ = stopped.await;
    }));

    let dir = tempfile::tempdir().unwrap();
    let good = users_file(dir.path(), "host-a", "host-auth-pass");
    let host = |extra: &[&str]| {
        let mut cmd = Command::new(workspace_bin("dvsan-host"));
        cmd.env_remove("DVSAN_CREDENTIALS").env_remove("DVSAN_USER");
        cmd.args(["--station", &station, "--host", "127.0.0.1"]).args(extra);
        cmd
    };
    let empty = "no volumes are assigned to this host (127.0.0.1); `dvsan-host request --size SIZE` asks for one\n";

    let (ok, err) = run(host(&["--credentials", good.to_str().unwrap(), "--user", "host-a", "list"])).await;
    assert!(ok, "{err}");
    assert_eq!(err, empty);

    let mut by_env = host(&["list"]);
    by_env.env("DVSAN_CREDENTIALS", &good).env("DVSAN_USER", "host-a");
    let (ok, err) = run(by_env).await;
    assert!(ok, "{err}");
    assert_eq!(err, empty);

    let wrong = users_file(dir.path(), "host-a", "not-the-auth-pass");
    let (ok, err) = run(host(&["--credentials", wrong.to_str().unwrap(), "--user", "host-a", "list"])).await;
    assert!(!ok);
    assert!(err.contains("SNMPv3 user \"host-a\" refused by") && err.contains("usmStatsWrongDigests"), "{err}");

    let (ok, err) = run(host(&["--credentials", good.to_str().unwrap(), "--user", "nobody", "list"])).await;
    assert!(!ok);
    assert!(err.contains("--credentials/--user") && err.contains("no user \"nobody\" (it has: host-a)"), "{err}");
}
