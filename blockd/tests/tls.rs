//! blockd with NBD over TLS (`--tls require|on`) against real clients: libnbd's nbdinfo and nbdcopy, qemu-io and
//! qemu-img with x509 credentials, fio's nbd engine with an `nbds://` URI; and the clients it must refuse.
//!
//! Certificates come from the fixture's [`Pki`] (openssl): blockd's for 127.0.0.1, clients for identities. One
//! unit per test, one 16 MiB medium: volume "data" (8 MiB) is granted read-write to the identity
//! `host-a.example` from any address, "pinned" to `host-a.example` only from 127.0.0.2, "plain" to the address
//! 127.0.0.1 (no identity), which admits any client from there: plain under `--tls on`, or with any certificate
//! of the CA.

use dvsan_layout::AccessMode;
use dvsan_tests::nbd::*;
use dvsan_tests::pki::Pki;
use dvsan_tests::*;
use std::path::Path;
use std::time::Duration;

const MIB: u64 = 1024 * 1024;
const HOST_A: &str = "host-a.example";

fn unit() -> Unit {
    let unit = Unit::new(&[16 * MIB]);
    let data = unit.volume("data", 2048);
    let pinned = unit.volume("pinned", 256);
    let plain = unit.volume("plain", 256);
    unit.grant_identity(data.index, HOST_A, None, AccessMode::ReadWrite);
    unit.grant_identity(pinned.index, HOST_A, Some("127.0.0.2"), AccessMode::ReadWrite);
    unit.grant(plain.index, None, "127.0.0.1", AccessMode::ReadWrite);
    unit
}

fn start(unit: &Unit, pki: &Pki, mode: &str) -> Blockd {
    let mut args = vec!["--tls".to_string(), mode.to_string()];
    args.extend(pki.blockd_args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Blockd::start_with(unit, &args)
}

/// libnbd's TLS URI for `export` with the certificates in `dir`.
fn nbds(blockd: &Blockd, export: &str, dir: &Path) -> String {
    format!("nbds://{}/{export}?tls-certificates={}", blockd.addr, dir.display())
}

/// qemu's options for a TLS connection to `export` with the certificates in `dir`.
fn qemu_tls(blockd: &Blockd, export: &str, dir: &Path) -> (String, String) {
    let object = format!("tls-creds-x509,id=tls0,dir={},endpoint=client", dir.display());
    let (host, port) = (blockd.addr.ip(), blockd.addr.port());
    let image = format!("driver=nbd,host={host},port={port},export={export},tls-creds=tls0");
    (object, image)
}

fn transmissions(blockd: &Blockd) -> usize {
    blockd.log().matches("connection in transmission").count()
}

#[test]
fn nbdinfo_and_nbdcopy_over_tls_as_a_certificate_identity() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let unit = unit();
    let blockd = start(&unit, &pki, "require");
    let a = pki.client(HOST_A);

    let info = run_tool_ok("nbdinfo", "libnbd-bin", &[&nbds(&blockd, "data", &a)], 30);
    assert!(info.contains("export-size: 8388608"), "{info}");
    assert!(info.contains("is_read_only: false"), "{info}");
    let list = run_tool_ok("nbdinfo", "libnbd-bin", &["--list", &nbds(&blockd, "", &a)], 30);
    assert!(list.contains("export=\"data\""), "{list}");
    assert!(!list.contains("pinned"), "host-a is at 127.0.0.1, the pinned grant wants 127.0.0.2: {list}");
    assert!(list.contains("export=\"plain\""), "an address grant admits a TLS client from its address: {list}");

    // 8 MiB of patterned data there and back: large reads and writes take the copied path over TLS.
    let src = dir.path().join("src.bin");
    let back = dir.path().join("back.bin");
    let data: Vec<u8> = (0..8 * MIB as usize).map(|i| (i * 7 + i / 4096) as u8).collect();
    std::fs::write(&src, &data).unwrap();
    run_tool_ok("nbdcopy", "libnbd-bin", &[src.to_str().unwrap(), &nbds(&blockd, "data", &a)], 60);
    run_tool_ok("nbdcopy", "libnbd-bin", &[&nbds(&blockd, "data", &a), back.to_str().unwrap()], 60);
    assert!(read_file(&back) == data, "what nbdcopy read back over TLS is what it wrote");
    let log = blockd.log();
    assert!(log.contains("identity=\"host-a.example\"") || log.contains("identity=host-a.example"), "{log}");
    assert!(log.contains("tls=true"), "{log}");
}

#[test]
fn qemu_io_and_qemu_img_convert_and_compare_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let unit = unit();
    let blockd = start(&unit, &pki, "require");
    let a = pki.client(HOST_A);
    let (object, image) = qemu_tls(&blockd, "data", &a);

    let io = |cmd: &str| {
        let args = ["--object", &object, "--image-opts", &image, "-c", cmd];
        run_tool_ok("qemu-io", "qemu-utils", &args, 60)
    };
    io("write -P 0xa5 1M 2M");
    let read = io("read -P 0xa5 1M 2M");
    assert!(read.contains("read 2097152/2097152 bytes"), "{read}");
    let zeroes = io("read -P 0 0 1M");
    assert!(zeroes.contains("read 1048576/1048576 bytes"), "{zeroes}");

    let src = dir.path().join("src.raw");
    let data: Vec<u8> = (0..8 * MIB as usize).map(|i| (i % 251) as u8).collect();
    std::fs::write(&src, &data).unwrap();
    let target = format!("json:{{\"driver\":\"raw\",\"file\":{{{}}}}}", qemu_json(&blockd, "data"));
    let convert = ["convert", "-n", "--object", &object, "-f", "raw", "-O", "raw", src.to_str().unwrap(), &target];
    run_tool_ok("qemu-img", "qemu-utils", &convert, 60);
    let compare = ["compare", "--object", &object, "-f", "raw", "-F", "raw", src.to_str().unwrap(), &target];
    let same = run_tool_ok("qemu-img", "qemu-utils", &compare, 60);
    assert!(same.contains("Images are identical"), "{same}");
    // A changed byte is seen: compare really read the export.
    let mut other = data.clone();
    other[5 * MIB as usize] ^= 1;
    let changed = dir.path().join("changed.raw");
    std::fs::write(&changed, &other).unwrap();
    let compare = ["compare", "--object", &object, "-f", "raw", "-F", "raw", changed.to_str().unwrap(), &target];
    let out = run_tool("qemu-img", "qemu-utils", &compare, 60);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(stdout(&out).contains("Content mismatch at offset 5242880"), "{}", describe(&out));
}

/// The `file` part of a qemu json: target for the export, with the TLS credentials `tls0`.
fn qemu_json(blockd: &Blockd, export: &str) -> String {
    format!(
        "\"driver\":\"nbd\",\"host\":\"{}\",\"port\":\"{}\",\"export\":\"{export}\",\"tls-creds\":\"tls0\"",
        blockd.addr.ip(),
        blockd.addr.port()
    )
}

/// fio 3.33's nbd engine cannot reach a TLS export with its own certificates: it hands `--uri` to libnbd's
/// nbd_connect_uri without allowing local file access, so libnbd refuses `tls-certificates=DIR` before connecting
/// (and without it, libnbd as root looks only in /etc/pki/libnbd). This test pins that down, so the README's
/// statement fails loudly when a newer fio accepts the URI.
#[test]
fn fio_nbd_engine_refuses_nbds_uris_with_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let unit = unit();
    let blockd = start(&unit, &pki, "require");
    let uri = nbds(&blockd, "data", &pki.client(HOST_A));
    let args = ["--name=tls", "--ioengine=nbd", &format!("--uri={uri}"), "--rw=randread", "--bs=4k", "--size=1M"];
    let out = run_tool("fio", "fio", &args, 60);
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(stderr(&out).contains("local file access (tls-certificates) is not allowed"), "{}", describe(&out));
    assert_eq!(transmissions(&blockd), 0);
}

/// Clients blockd must refuse under `--tls require`, each with nothing served: no certificate, a certificate of
/// another CA, a valid certificate whose identity has no grant, a valid identity from an address its grant does
/// not name, and plain NBD.
#[test]
fn refused_clients_get_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let unit = unit();
    let blockd = start(&unit, &pki, "require");
    let refused = |what: &str, uri: &str| {
        let out = run_tool("nbdinfo", "libnbd-bin", &[uri], 30);
        assert!(!out.status.success(), "{what}: {}", describe(&out));
        assert_eq!(transmissions(&blockd), 0, "{what}: nothing may be served:\n{}", blockd.log());
        stderr(&out)
    };
    let err = refused("no client certificate", &nbds(&blockd, "data", &pki.client_without_certificate()));
    assert!(!err.contains("export-size"), "{err}");
    refused("another CA's certificate", &nbds(&blockd, "data", &pki.client_of_other_ca(HOST_A)));
    let b = pki.client("host-b.example");
    let err = refused("an identity without a grant", &nbds(&blockd, "data", &b));
    assert!(err.contains("No such file or directory for export: data"), "{err}");
    let list = run_tool_ok("nbdinfo", "libnbd-bin", &["--list", &nbds(&blockd, "", &b)], 30);
    assert!(!list.contains("export=\"data\"") && !list.contains("pinned"), "host-b sees no identity's export: {list}");
    refused("a granted identity from another address", &nbds(&blockd, "pinned", &pki.client(HOST_A)));
    // libnbd reports NBD_REP_ERR_TLS_REQD as ENOTSUP.
    let err = refused("plain NBD", &blockd.uri("plain"));
    assert!(err.contains("Operation not supported for export: plain"), "{err}");
    let out = run_tool("qemu-img", "qemu-utils", &["info", &blockd.uri("plain")], 30);
    assert!(!out.status.success(), "qemu-img without TLS: {}", describe(&out));
    let log = blockd.log();
    assert!(log.contains("TLS handshake failed"), "{log}");
    assert!(log.contains("refused before TLS: TLS is required"), "{log}");
    assert_eq!(transmissions(&blockd), 0, "{log}");
}

/// `--tls require` speaks the protocol's FORCEDTLS mode: before STARTTLS, every option but STARTTLS and ABORT
/// gets NBD_REP_ERR_TLS_REQD, NBD_OPT_EXPORT_NAME closes, ABORT is acknowledged.
#[test]
fn require_answers_options_before_starttls_with_tls_reqd() {
    use dvsan_nbd::constants::*;
    use dvsan_nbd::{ClientOption, InfoRequest};
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let unit = unit();
    let blockd = start(&unit, &pki, "require");
    let mut raw = Raw::greet(blockd.addr);
    for option in [
        ClientOption::List,
        ClientOption::StructuredReply,
        ClientOption::Go(InfoRequest { name: "plain".into(), requests: vec![] }),
        ClientOption::Other(99),
    ] {
        raw.option(&option);
        let (h, message) = raw.option_reply();
        assert_eq!(h.reply, REP_ERR_TLS_REQD, "{option:?}");
        assert!(String::from_utf8_lossy(&message).contains("NBD_OPT_STARTTLS"));
    }
    raw.option(&ClientOption::Abort);
    assert_eq!(raw.option_reply().0.reply, REP_ACK);
    let mut raw = Raw::greet(blockd.addr);
    raw.option(&ClientOption::ExportName("plain".into()));
    assert!(raw.closed_within(std::time::Duration::from_secs(5)), "NBD_OPT_EXPORT_NAME without TLS closes");
    assert_eq!(transmissions(&blockd), 0);

    // STARTTLS is acknowledged (the TLS handshake would follow).
    let mut raw = Raw::greet(blockd.addr);
    raw.option(&ClientOption::StartTls);
    assert_eq!(raw.option_reply().0.reply, REP_ACK);
}

/// `--tls on`: plain clients are served by address grants; a TLS client by its identity; an identity grant never
/// admits a plain connection. `--tls off` refuses STARTTLS, so libnbd's nbds:// fails.
#[test]
fn tls_on_serves_both_and_off_refuses_starttls() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let unit = unit();
    let blockd = start(&unit, &pki, "on");
    let a = pki.client(HOST_A);
    run_tool_ok("nbdinfo", "libnbd-bin", &[&blockd.uri("plain")], 30);
    run_tool_ok("nbdinfo", "libnbd-bin", &[&nbds(&blockd, "data", &a)], 30);
    let out = run_tool("nbdinfo", "libnbd-bin", &[&blockd.uri("data")], 30);
    assert!(!out.status.success(), "an identity grant does not admit a plain connection: {}", describe(&out));
    let list = run_tool_ok("nbdinfo", "libnbd-bin", &["--list", &format!("nbd://{}", blockd.addr)], 30);
    assert!(list.contains("export=\"plain\"") && !list.contains("export=\"data\""), "{list}");
    // A certificate with only a common name: the CN is the identity.
    let cn_only = pki.client_by_cn(HOST_A);
    run_tool_ok("nbdinfo", "libnbd-bin", &[&nbds(&blockd, "data", &cn_only)], 30);
    drop(blockd);

    let blockd = Blockd::start(&unit);
    let out = run_tool("nbdinfo", "libnbd-bin", &[&nbds(&blockd, "data", &a)], 30);
    assert!(!out.status.success(), "--tls off: {}", describe(&out));
    assert_eq!(transmissions(&blockd), 0);
}

/// Revocation by certificate (`--tls-crl FILE`, read again when it changes; the CRL made with `openssl ca`, as an
/// operator's own PKI would): a revoked certificate fails the TLS handshake, also where an address grant admits
/// any certificate from its address, and nothing is served to it; its open connection is closed; a new
/// certificate for the same identity works; a changed CRL that does not parse leaves the previous one in force.
#[test]
fn a_revoked_certificate_is_refused_and_its_open_connection_closed() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let unit = unit();
    let crl = pki.write_crl();
    let mut args = vec!["--tls".to_string(), "require".into(), "--tls-crl".into(), crl.display().to_string()];
    args.extend(pki.blockd_args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let blockd = Blockd::start_with(&unit, &args);
    let a = pki.client(HOST_A);
    run_tool_ok("nbdinfo", "libnbd-bin", &[&nbds(&blockd, "data", &a)], 30);
    run_tool_ok("nbdinfo", "libnbd-bin", &[&nbds(&blockd, "plain", &a)], 30);
    let mut held = HeldConnection::open("127.0.0.1", blockd.addr.port(), "data", &a);
    assert!(held.read().0, "host-a reads over its open connection");

    pki.revoke(&a);
    let said = wait_until("blockd to close the revoked certificate's connection", Duration::from_secs(10), || {
        let (ok, said) = held.read();
        (!ok).then_some(said)
    });
    assert!(!said.contains("read 4096/4096"), "{said}");
    let served = transmissions(&blockd);
    for export in ["data", "plain"] {
        let out = run_tool("nbdinfo", "libnbd-bin", &[&nbds(&blockd, export, &a)], 30);
        assert!(!out.status.success(), "the revoked certificate on {export}: {}", describe(&out));
        assert!(!stdout(&out).contains("export-size"), "{}", describe(&out));
    }
    assert_eq!(transmissions(&blockd), served, "nothing is served to a revoked certificate:\n{}", blockd.log());
    let log = blockd.log();
    assert!(log.contains("client certificate revoked; closing connection"), "{log}");
    assert!(log.contains("TLS handshake failed") && log.contains("Revoked"), "{log}");

    // The same identity with a new certificate (a new serial) is served again.
    let again = pki.client_again(HOST_A, "again");
    let info = run_tool_ok("nbdinfo", "libnbd-bin", &[&nbds(&blockd, "data", &again)], 30);
    assert!(info.contains("export-size: 8388608"), "{info}");

    // A CRL that does not parse: refused, logged, and the previous list stays in force.
    let temp = dir.path().join("bad-crl.pem");
    std::fs::write(&temp, "-----BEGIN X509 CRL-----\nbm90IGEgQ1JM\n-----END X509 CRL-----\n").unwrap();
    std::fs::rename(&temp, &crl).unwrap();
    wait_until("blockd to refuse the malformed CRL", Duration::from_secs(10), || {
        blockd.log().contains("a changed certificate revocation list cannot be used").then_some(())
    });
    let out = run_tool("nbdinfo", "libnbd-bin", &[&nbds(&blockd, "data", &a)], 30);
    assert!(!out.status.success(), "still revoked after a malformed CRL: {}", describe(&out));
    run_tool_ok("nbdinfo", "libnbd-bin", &[&nbds(&blockd, "data", &again)], 30);
}
