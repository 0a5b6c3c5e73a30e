//! The host front speaks TLS to the units (`--tls-dir`, the host's certificate directory): two replicas on
//! blockd processes that require TLS and grant the volume to the host's certificate identity only; a client
//! writes through the front and both units hold the bytes.

use dvsan_layout::AccessMode;
use dvsan_tests::front::{volume_bytes, HostFront};
use dvsan_tests::nbd::{run_tool_ok, Blockd, Unit};
use dvsan_tests::pki::Pki;

#[test]
fn the_front_reaches_units_that_require_tls_as_the_hosts_identity() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let certs = pki.client("host-front");
    let mut units = Vec::new();
    for _ in 0..2 {
        let unit = Unit::new(&[16 << 20]);
        let vol = unit.volume("vol", 2048);
        unit.grant_identity(vol.index, "host-front", None, AccessMode::ReadWrite);
        let mut args: Vec<String> = vec!["--tls".into(), "require".into(), "--listen".into(), "127.0.0.1:0".into()];
        args.extend(pki.blockd_args());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let blockd = Blockd::start_with(&unit, &args);
        units.push((unit, vol, blockd));
    }
    let replicas: Vec<String> = units.iter().map(|(_, vol, b)| b.uri(&vol.export_name)).collect();
    let tls_dir = certs.display().to_string();
    let front = HostFront::start(dir.path(), "127.0.0.34", "vol", "127.0.0.34:0", &replicas, &["--tls-dir", &tls_dir]);
    let out = run_tool_ok(
        "qemu-io",
        "qemu-utils",
        &["-f", "raw", "-c", "write -P 0x3c 0 2M", "-c", "read -P 0x3c 0 2M", &front.uri()],
        60,
    );
    assert!(!out.contains("fail"), "{out}");
    for (unit, vol, blockd) in &units {
        let bytes = volume_bytes(unit, vol);
        assert!(bytes[..2 << 20].iter().all(|b| *b == 0x3c), "a replica holds the write");
        assert!(blockd.log().contains("tls=true"), "the unit served it over TLS:\n{}", blockd.log());
    }
}
