//! The station's CA against a real blockd and nbdinfo: `dvsan-station ca show`, `unit enroll --tls-dir` (blockd's
//! certificate) and `host issue` (a host's certificate directory) give what `dvsan-blockd --tls require` and
//! libnbd's `nbds://…?tls-certificates=DIR` need; a host certificate of another station's CA is refused.
//!
//! Needs `cargo build -p dvsan-blockd -p dvsan-station --bins` first.

use dvsan_layout::AccessMode;
use dvsan_tests::nbd::{run_tool, run_tool_ok, Blockd, Unit};
use dvsan_tests::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

const MIB: u64 = 1024 * 1024;
const UNIT_ID: &str = "5b0c9a1e-7d2f-4c1a-9e3b-2f6d8a4c1b70";

fn station(state: &Path, args: &[&str]) -> String {
    run_ok(Command::new(workspace_bin("dvsan-station")).args(args).arg("--state-dir").arg(state))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn nbds(blockd: &Blockd, export: &str, dir: &Path) -> String {
    format!("nbds://{}/{export}?tls-certificates={}", blockd.addr, dir.display())
}

#[test]
fn certificates_of_the_station_ca_are_accepted_by_blockd_and_another_cas_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("station");

    let shown = station(&state, &["ca", "show"]);
    assert!(shown.contains("made the station's CA"), "{shown}");
    let ca_cert = state.join("ca/ca-cert.pem");
    assert!(shown.contains(&format!("certificate: {}", ca_cert.display())), "{shown}");
    assert_eq!(mode(&state.join("ca/ca-key.pem")), 0o600);
    // The fingerprint is the one openssl computes.
    require_tool("openssl", "openssl");
    let openssl =
        run_ok(Command::new("openssl").args(["x509", "-noout", "-fingerprint", "-sha256", "-in"]).arg(&ca_cert));
    let fingerprint = openssl.trim().rsplit('=').next().unwrap().to_string();
    assert!(shown.contains(&format!("sha256 fingerprint: {fingerprint}")), "{shown}\n{openssl}");
    let again = station(&state, &["ca", "show"]);
    assert!(!again.contains("made") && again.contains(&fingerprint), "the CA is made once: {again}");

    let unit_tls = dir.path().join("unit-tls");
    let users = dir.path().join("unit-users.toml");
    let enrolled = station(
        &state,
        &[
            "unit",
            "enroll",
            UNIT_ID,
            "--out",
            users.to_str().unwrap(),
            "--tls-dir",
            unit_tls.to_str().unwrap(),
            "--tls-name",
            "127.0.0.1",
            "--tls-name",
            "localhost",
        ],
    );
    assert!(enrolled.contains("--tls-cert"), "{enrolled}");
    assert_eq!(mode(&unit_tls.join("blockd-key.pem")), 0o600);
    let client = dir.path().join("host-a");
    station(&state, &["host", "issue", "host-a.example", "--out", client.to_str().unwrap()]);
    assert_eq!(mode(&client.join("client-key.pem")), 0o600);
    let text =
        run_ok(Command::new("openssl").args(["x509", "-noout", "-text", "-in"]).arg(client.join("client-cert.pem")));
    assert!(text.contains("DNS:host-a.example") && text.contains("TLS Web Client Authentication"), "{text}");

    // Another station's host certificate for the same identity; its directory trusts our CA (so the client
    // accepts blockd): only blockd's check can refuse it.
    let other_state = dir.path().join("other-station");
    let other = dir.path().join("host-a-other");
    station(&other_state, &["host", "issue", "host-a.example", "--out", other.to_str().unwrap()]);
    std::fs::copy(&ca_cert, other.join("ca-cert.pem")).unwrap();

    let unit = Unit::new(&[16 * MIB]);
    let data = unit.volume("data", 256);
    unit.grant_identity(data.index, "host-a.example", None, AccessMode::ReadWrite);
    let file = |name: &str| unit_tls.join(name).display().to_string();
    let tls = ["--tls", "require", "--tls-cert", &file("blockd-cert.pem"), "--tls-key", &file("blockd-key.pem")];
    let blockd = Blockd::start_with(&unit, &[&tls[..], &["--tls-ca", &file("ca-cert.pem")]].concat());

    let info = run_tool_ok("nbdinfo", "libnbd-bin", &[&nbds(&blockd, "data", &client)], 30);
    assert!(info.contains("export-size: 1048576"), "{info}");
    let log = blockd.log();
    assert!(log.contains("host-a.example"), "{log}");
    // qemu's x509 checks (key usage, CA constraints) accept the station's certificates too.
    let object = format!("tls-creds-x509,id=tls0,dir={},endpoint=client", client.display());
    let image = format!("driver=nbd,host=127.0.0.1,port={},export=data,tls-creds=tls0", blockd.addr.port());
    let info = run_tool_ok("qemu-img", "qemu-utils", &["info", "--object", &object, "--image-opts", &image], 30);
    assert!(info.contains("virtual size: 1 MiB"), "{info}");
    let served = blockd.log().matches("connection in transmission").count();

    let out = run_tool("nbdinfo", "libnbd-bin", &[&nbds(&blockd, "data", &other)], 30);
    assert!(!out.status.success(), "another CA's certificate: {}", describe(&out));
    assert!(blockd.log().contains("TLS handshake failed"), "{}", blockd.log());
    assert_eq!(blockd.log().matches("connection in transmission").count(), served, "nothing served to it");
}

#[test]
fn bad_names_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("station");
    let out = dir.path().join("host");
    let err = run_fails(
        Command::new(workspace_bin("dvsan-station"))
            .args(["host", "issue", "host a", "--out"])
            .arg(&out)
            .arg("--state-dir")
            .arg(&state),
    );
    assert!(err.contains("identity \"host a\" is not valid"), "{err}");
    assert!(!out.exists());
    let users = dir.path().join("users.toml");
    let err = run_fails(
        Command::new(workspace_bin("dvsan-station"))
            .args(["unit", "enroll", UNIT_ID, "--out"])
            .arg(&users)
            .args(["--tls-dir", "/nonexistent/never", "--tls-name", "bad name"])
            .arg("--state-dir")
            .arg(&state),
    );
    assert!(err.contains("\"bad name\" is neither an IP address nor a DNS name"), "{err}");
    assert!(!users.exists(), "nothing enrolled");
}
