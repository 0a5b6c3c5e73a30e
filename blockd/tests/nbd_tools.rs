//! blockd against real NBD clients: libnbd's nbdinfo and nbdcopy, qemu-io and qemu-img, fio's nbd engine.
//!
//! One unit per test: two 8 MiB media files; volume "data" (12 MiB) spans both, "ro" is granted read-only to
//! 127.0.0.1, "other" is granted only to 127.0.0.2. The tools connect from 127.0.0.1.

use dvsan_layout::AccessMode;
use dvsan_tests::nbd::*;
use dvsan_tests::*;
use std::time::Duration;

const MIB: u64 = 1024 * 1024;
/// Where medium 0 ends inside "data".
const BOUNDARY: u64 = 8 * MIB;

fn unit() -> Unit {
    let unit = Unit::new(&[8 * MIB, 8 * MIB]);
    let data = unit.volume("data", 3072);
    let ro = unit.volume("ro", 256);
    let other = unit.volume("other", 256);
    unit.grant(data.index, None, "127.0.0.1", AccessMode::ReadWrite);
    unit.grant(ro.index, None, "127.0.0.1", AccessMode::ReadOnly);
    unit.grant(other.index, None, "127.0.0.2", AccessMode::ReadWrite);
    unit
}

#[test]
fn nbdinfo_lists_only_granted_exports_with_size_and_flags() {
    let unit = unit();
    let blockd = Blockd::start(&unit);
    let base = format!("nbd://{}", blockd.addr);
    let list = run_tool_ok("nbdinfo", "libnbd-bin", &["--list", &base], 30);
    assert!(list.contains("export=\"data\""), "{list}");
    assert!(list.contains("export=\"ro\""), "{list}");
    assert!(!list.contains("other"), "127.0.0.1 must not see an export granted to 127.0.0.2: {list}");

    let info = run_tool_ok("nbdinfo", "libnbd-bin", &[&blockd.uri("data")], 30);
    assert!(info.contains("export-size: 12582912"), "{info}");
    assert!(info.contains("is_read_only: false"), "{info}");
    assert!(info.contains("can_multi_conn: true"), "{info}");
    assert!(info.contains("can_fua: true") && info.contains("can_trim: true") && info.contains("can_zero: true"));
    assert!(info.contains("block_size_minimum: 1") && info.contains("block_size_maximum: 33554432"), "{info}");

    let ro = run_tool_ok("nbdinfo", "libnbd-bin", &[&blockd.uri("ro")], 30);
    assert!(ro.contains("export-size: 1048576"), "{ro}");
    assert!(ro.contains("is_read_only: true"), "{ro}");
}

/// What a host without a grant sees, for an export granted to another host and for one that does not exist:
/// the same refusal (NBD_REP_ERR_UNKNOWN, one message). qemu prints blockd's message; libnbd prints only its own
/// text for the reply code (the server's message shows with LIBNBD_DEBUG=1), which for NBD_REP_ERR_UNKNOWN is
/// ENOENT and a hint to use --list, which shows the exports this host may use.
#[test]
fn clients_without_a_grant_are_told_the_export_is_not_available() {
    let unit = unit();
    let blockd = Blockd::start(&unit);
    let said = |_: &str| {
        "the requested export is not available to host 127.0.0.1 (no such export, or no grant for this host); \
         NBD_OPT_LIST (nbdinfo --list) shows the exports this host may use"
            .to_string()
    };
    for name in ["other", "nosuch"] {
        let uri = blockd.uri(name);
        let out = run_tool("nbdinfo", "libnbd-bin", &[&uri], 30);
        assert!(!out.status.success(), "127.0.0.1 may not use {name}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("No such file or directory for export: {name}")), "{err}");
        assert!(err.contains("use --list"), "{err}");
        let debug = run_tool_env("nbdinfo", "libnbd-bin", &[&uri], &[("LIBNBD_DEBUG", "1")], 30);
        let debug = String::from_utf8_lossy(&debug.stderr);
        assert!(debug.contains(&format!("server error message: {}", said(name))), "{debug}");

        for (tool, args) in
            [("qemu-img", vec!["info", uri.as_str()]), ("qemu-io", vec!["-f", "raw", "-c", "read 0 512", &uri])]
        {
            let out = run_tool(tool, "qemu-utils", &args, 30);
            assert!(!out.status.success(), "{tool}: 127.0.0.1 may not use {name}");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("Requested export not available"), "{tool}: {err}");
            assert!(err.contains(&format!("server reported: {}", said(name))), "{tool}: {err}");
        }
    }
    let log = blockd.log();
    assert!(log.contains("refused: host has no grant for this export"), "the operator still sees why: {log}");
}

#[test]
fn qemu_io_writes_and_reads_across_a_media_boundary() {
    let unit = unit();
    let blockd = Blockd::start(&unit);
    let uri = blockd.uri("data");
    let at = (BOUNDARY - 4096).to_string();
    run_tool_ok("qemu-io", "qemu-utils", &["-f", "raw", "-c", &format!("write -P 0xab {at} 8192"), &uri], 30);
    let out = run_tool_ok("qemu-io", "qemu-utils", &["-f", "raw", "-c", &format!("read -P 0xab {at} 8192"), &uri], 30);
    assert!(out.contains("read 8192/8192"), "{out}");
    // The bytes landed at the end of medium 0 and the start of medium 1.
    let m0 = read_file(&unit.media[0]);
    let m1 = read_file(&unit.media[1]);
    assert!(m0[(BOUNDARY - 4096) as usize..].iter().all(|b| *b == 0xab));
    assert!(m1[..4096].iter().all(|b| *b == 0xab));
    assert!(m1[4096..8192].iter().all(|b| *b == 0));
    // 2 MiB across the boundary: read in one request and sent from the mappings of both media (qemu-io on
    // loopback gets mapped large reads; blockd counts them in the connection's closing line).
    let big = (BOUNDARY - MIB).to_string();
    run_tool_ok("qemu-io", "qemu-utils", &["-f", "raw", "-c", &format!("write -P 0x5c {big} 2M"), &uri], 30);
    let out = run_tool_ok("qemu-io", "qemu-utils", &["-f", "raw", "-c", &format!("read -P 0x5c {big} 2M"), &uri], 30);
    assert!(out.contains("read 2097152/2097152"), "{out}");
    let mapped = |b: &Blockd| b.log().lines().any(|l| l.contains("connection ended") && l.contains("mapped_reads=1"));
    assert!(eventually(Duration::from_secs(5), || mapped(&blockd)), "the 2 MiB read was not mapped: {}", blockd.log());
    // A wrong pattern is detected, so the read check above means something.
    let out = run_tool("qemu-io", "qemu-utils", &["-f", "raw", "-c", &format!("read -P 0xcd {at} 8192"), &uri], 30);
    assert!(String::from_utf8_lossy(&out.stdout).contains("Pattern verification failed"));
}

#[test]
fn read_only_grant_refuses_qemu_io_writes() {
    let unit = unit();
    let blockd = Blockd::start(&unit);
    let uri = blockd.uri("ro");
    let out = run_tool("qemu-io", "qemu-utils", &["-f", "raw", "-c", "write -P 0x11 0 4096", &uri], 30);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success() || text.contains("Permission denied"), "write on a read-only export: {text}");
    assert!(text.contains("Permission denied") || text.contains("read-only"), "{text}");
    let out = run_tool_ok("qemu-io", "qemu-utils", &["-r", "-f", "raw", "-c", "read -P 0 0 4096", &uri], 30);
    assert!(out.contains("read 4096/4096"), "{out}");
    assert!(read_file(&unit.media[0]).iter().all(|b| *b == 0), "nothing was written");
}

#[test]
fn qemu_img_convert_and_compare_round_trip() {
    let unit = unit();
    let blockd = Blockd::start(&unit);
    let src = unit.dir.path().join("src.raw");
    // Deterministic, incompressible-looking content across the boundary: 12 MiB, the whole volume.
    let mut content = vec![0u8; 12 * MIB as usize];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for chunk in content.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    std::fs::write(&src, &content).unwrap();
    let uri = blockd.uri("data");
    run_tool_ok(
        "qemu-img",
        "qemu-utils",
        &["convert", "-n", "-f", "raw", "-O", "raw", src.to_str().unwrap(), &uri],
        60,
    );
    let out =
        run_tool_ok("qemu-img", "qemu-utils", &["compare", "-f", "raw", "-F", "raw", src.to_str().unwrap(), &uri], 60);
    assert!(out.contains("Images are identical"), "{out}");

    // nbdcopy back to a file: same bytes, and the same as the media concatenated.
    let copy = unit.dir.path().join("copy.raw");
    run_tool_ok("nbdcopy", "libnbd-bin", &[&uri, copy.to_str().unwrap()], 60);
    let copied = read_file(&copy);
    assert_eq!(copied.len(), content.len());
    assert!(copied == content, "nbdcopy read back different bytes");
    let mut media = read_file(&unit.media[0]);
    media.extend_from_slice(&read_file(&unit.media[1])[..4 * MIB as usize]);
    assert!(media == content, "media files hold different bytes than were written");
}

/// fio random writes on export "data" with `job` options, each block verified by reading it back (crc32c);
/// fails if any job reports an error.
fn fio_write_verify(blockd: &Blockd, job: &[&str]) {
    let uri = format!("--uri={}", blockd.uri("data"));
    let mut args = vec!["--name=verify", "--ioengine=nbd", &uri, "--rw=randwrite"];
    args.extend_from_slice(job);
    args.extend_from_slice(&["--verify=crc32c", "--verify_fatal=1", "--verify_state_save=0", "--output-format=terse"]);
    let out = run_tool_ok("fio", "fio", &args, 60);
    // Terse format: a line per job, whose fifth field is the job's error code.
    let jobs: Vec<&str> = out.lines().filter(|l| l.contains(';')).collect();
    assert!(!jobs.is_empty(), "no fio results: {out}");
    for line in jobs {
        assert_eq!(line.split(';').nth(4), Some("0"), "fio reported an error: {out}");
    }
}

#[test]
fn fio_random_writes_verify() {
    let unit = unit();
    // Without busy polling, so both read paths see a real client at queue depth 32.
    let blockd = Blockd::start_with(&unit, &["--busy-poll-us", "0"]);
    fio_write_verify(&blockd, &["--bs=4k", "--size=12m", "--iodepth=32"]);
}

#[test]
fn fio_mixed_sizes_verify_through_mapped_reads_and_spliced_writes() {
    let unit = unit();
    let blockd = Blockd::start(&unit);
    // Two connections on their own halves, writes of 4 KiB to 1 MiB (across the media boundary for the second
    // job) verified by reading back: writes larger than the 256 KiB request buffer are spliced from the socket,
    // and the large reads go the mapped way to this loopback client.
    fio_write_verify(&blockd, &["--bsrange=4k-1m", "--numjobs=2", "--size=6m", "--offset_increment=6m", "--iodepth=8"]);
    let ended_with =
        |b: &Blockd, none: &str| b.log().lines().filter(|l| l.contains("connection ended")).any(|l| !l.contains(none));
    assert!(
        eventually(Duration::from_secs(5), || ended_with(&blockd, "mapped_reads=0")),
        "no read was mapped: {}",
        blockd.log()
    );
    assert!(ended_with(&blockd, "spliced_writes=0"), "no write was spliced: {}", blockd.log());
}
