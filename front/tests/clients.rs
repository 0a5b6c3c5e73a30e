//! Stock NBD clients through the host front (`dvsan-host serve`) over one and two replicas on real blockd
//! processes: nbdinfo, qemu-io, qemu-img convert/compare, nbdcopy, fio's nbd engine; and bad requests answered
//! with the protocol's errors. With two replicas every write lands on both (compared on the units' media and
//! through each unit's blockd).

use dvsan_layout::{AccessMode, Volume};
use dvsan_tests::describe;
use dvsan_tests::front::{volume_bytes, HostFront};
use dvsan_tests::nbd::{run_tool, run_tool_ok, Blockd, Raw, Unit};
use std::time::Duration;

const HOST: &str = "127.0.0.31";
const VOL_BLOCKS: u64 = 8192; // 32 MiB

/// A unit with one 32 MiB volume "vol" granted read-write to HOST (and read-only to 127.0.0.1, for checking
/// it directly), served by blockd on `ip`.
pub fn replica(ip: &str) -> (Unit, Volume, Blockd) {
    let unit = Unit::new(&[48 << 20]);
    let vol = unit.volume("vol", VOL_BLOCKS);
    unit.grant(vol.index, None, HOST, AccessMode::ReadWrite);
    unit.grant(vol.index, None, "127.0.0.1", AccessMode::ReadOnly);
    let blockd = Blockd::start_with(&unit, &["--listen", &format!("{ip}:0")]);
    (unit, vol, blockd)
}

fn random_file(dir: &std::path::Path, len: usize) -> (std::path::PathBuf, Vec<u8>) {
    let mut data = vec![0u8; len];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    let path = dir.join("source.img");
    std::fs::write(&path, &data).unwrap();
    (path, data)
}

fn qemu_io(uri: &str, commands: &[&str]) -> String {
    let mut args = vec!["-f", "raw"];
    for c in commands {
        args.extend(["-c", c]);
    }
    args.push(uri);
    let out = run_tool_ok("qemu-io", "qemu-utils", &args, 60);
    assert!(!out.contains("failed") && !out.contains("error"), "qemu-io {commands:?}:\n{out}");
    out
}

#[test]
fn stock_clients_work_through_the_front() {
    let dir = tempfile::tempdir().unwrap();
    let (unit, vol, blockd) = replica("127.0.0.21");
    let front = HostFront::start(dir.path(), HOST, "vol", &format!("{HOST}:0"), &[blockd.uri(&vol.export_name)], &[]);
    let uri = front.uri();

    let info = run_tool_ok("nbdinfo", "libnbd-bin", &["--json", &uri], 30);
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["exports"][0]["export-size"], VOL_BLOCKS * 4096, "{info}");

    qemu_io(&uri, &["write -P 0xab 0 1M", "read -P 0xab 0 1M", "write -z 4M 1M", "read -P 0 4M 1M", "flush"]);

    let (source, data) = random_file(dir.path(), (VOL_BLOCKS * 4096) as usize);
    let src = source.to_str().unwrap();
    run_tool_ok("qemu-img", "qemu-utils", &["convert", "-n", "-f", "raw", "-O", "raw", src, &uri], 120);
    run_tool_ok("qemu-img", "qemu-utils", &["compare", "-f", "raw", "-F", "raw", src, &uri], 120);
    let copy = dir.path().join("copy.img");
    run_tool_ok("nbdcopy", "libnbd-bin", &[&uri, copy.to_str().unwrap()], 120);
    assert!(std::fs::read(&copy).unwrap() == data, "nbdcopy out of the front gives the bytes written");
    assert!(volume_bytes(&unit, &vol) == data, "the unit's medium holds the bytes written through the front");

    let fio = run_tool(
        "fio",
        "fio",
        &[
            "--name=front",
            "--ioengine=nbd",
            &format!("--uri={uri}"),
            "--rw=randwrite",
            "--bs=4k",
            "--iodepth=16",
            "--size=8M",
            "--verify=crc32c",
            "--do_verify=1",
        ],
        120,
    );
    assert!(fio.status.success(), "fio through the front:\n{}", describe(&fio));

    // The same volume over a unix socket.
    let sock = dir.path().join("front.sock");
    let unix = HostFront::start(
        dir.path(),
        HOST,
        "vol",
        &format!("unix:{}", sock.display()),
        &[blockd.uri(&vol.export_name)],
        &[],
    );
    let size = run_tool_ok("nbdinfo", "libnbd-bin", &["--size", &unix.uri()], 30);
    assert_eq!(size.trim(), (VOL_BLOCKS * 4096).to_string());
}

#[test]
fn bad_requests_get_the_protocols_errors() {
    use dvsan_nbd::constants::*;
    let dir = tempfile::tempdir().unwrap();
    let (_unit, vol, blockd) = replica("127.0.0.22");
    let front = HostFront::start(dir.path(), HOST, "vol", &format!("{HOST}:0"), &[blockd.uri(&vol.export_name)], &[]);
    let addr: std::net::SocketAddr = front.listen.parse().unwrap();
    let size = VOL_BLOCKS * 4096;

    let mut c = Raw::go(addr, "vol", false);
    c.request(CMD_READ, 0, 1, size, 4096);
    assert_eq!(c.simple_reply(), (22, 1), "read past the end: EINVAL");
    c.request(CMD_WRITE, 0, 2, size - 512, 4096);
    c.send(&[7u8; 4096]);
    assert_eq!(c.simple_reply(), (28, 2), "write past the end: ENOSPC, payload consumed");
    c.request(99, 0, 3, 0, 0);
    assert_eq!(c.simple_reply(), (22, 3), "unknown command: EINVAL");
    c.request(CMD_READ, CMD_FLAG_NO_HOLE, 4, 0, 512);
    assert_eq!(c.simple_reply(), (22, 4), "bad flags: EINVAL");
    c.write_and_read_back(8192, &[0x5a; 8192]);
    c.send(&[0xff; 28]);
    assert!(c.closed_within(Duration::from_secs(5)), "a request with a bad magic closes the connection");

    // An unknown export name and an option payload that is too long.
    let mut c = Raw::greet(addr);
    c.option(&dvsan_nbd::ClientOption::Go(dvsan_nbd::InfoRequest { name: "nope".into(), requests: vec![] }));
    assert_eq!(c.option_reply().0.reply, REP_ERR_UNKNOWN);
    let mut bad = Vec::new();
    dvsan_nbd::OptionHeader { option: OPT_GO, length: 1 << 30 }.encode(&mut bad);
    c.send(&bad);
    assert!(c.closed_within(Duration::from_secs(5)));

    // A client that goes away in the middle of a write's payload, and one that sends writes and NBD_CMD_DISC
    // without waiting: the second's writes are all done before the front closes its connection.
    let mut c = Raw::go(addr, "vol", false);
    c.request(CMD_WRITE, 0, 5, 0, 1 << 20);
    c.send(&[1u8; 100]);
    drop(c);
    let mut c = Raw::go(addr, "vol", false);
    for i in 0..16u64 {
        c.request(CMD_WRITE, 0, 100 + i, i * 65536, 65536);
        c.send(&[0x99; 65536]);
    }
    c.request(CMD_DISC, 0, 200, 0, 0);
    let mut handles: Vec<u64> = (0..16).map(|_| c.simple_reply()).map(|(e, h)| if e == 0 { h } else { 0 }).collect();
    handles.sort();
    assert_eq!(handles, (100..116).collect::<Vec<u64>>(), "every write answered before the close");
    assert!(c.closed_within(Duration::from_secs(5)));
    let back = run_tool_ok("qemu-io", "qemu-utils", &["-f", "raw", "-c", "read -P 0x99 0 1M", &front.uri()], 30);
    assert!(!back.contains("fail"), "{back}");

    // The front still serves.
    let out = run_tool_ok("nbdinfo", "libnbd-bin", &["--size", &front.uri()], 30);
    assert_eq!(out.trim(), size.to_string());
}

#[test]
fn two_replicas_get_every_write() {
    let dir = tempfile::tempdir().unwrap();
    let (unit_a, vol_a, blockd_a) = replica("127.0.0.23");
    let (unit_b, vol_b, blockd_b) = replica("127.0.0.24");
    let replicas = [blockd_a.uri(&vol_a.export_name), blockd_b.uri(&vol_b.export_name)];
    let front = HostFront::start(dir.path(), HOST, "vol", &format!("{HOST}:0"), &replicas, &[]);
    let uri = front.uri();
    let (source, data) = random_file(dir.path(), (VOL_BLOCKS * 4096) as usize);
    let src = source.to_str().unwrap();
    run_tool_ok("qemu-img", "qemu-utils", &["convert", "-n", "-f", "raw", "-O", "raw", src, &uri], 120);
    qemu_io(&uri, &["write -P 0x11 1M 64k", "write -z -f 2M 64k", "discard 3M 64k", "flush"]);
    let mut expected = data;
    expected[1 << 20..(1 << 20) + 65536].fill(0x11);
    expected[2 << 20..(2 << 20) + 65536].fill(0);
    // A discarded range reads as anything; make it the same as what the units hold for the comparison.
    let a = volume_bytes(&unit_a, &vol_a);
    let b = volume_bytes(&unit_b, &vol_b);
    expected[3 << 20..(3 << 20) + 65536].copy_from_slice(&a[3 << 20..(3 << 20) + 65536]);
    assert!(a == expected, "replica A holds every write");
    assert!(a == b, "both replicas hold the same bytes");
    // And each replica read through its own blockd equals what the front serves.
    for replica in &replicas {
        let direct = replica.as_str();
        run_tool_ok("qemu-img", "qemu-utils", &["compare", "-f", "raw", "-F", "raw", &uri, direct], 120);
    }
    assert_eq!(front.states(), ["in-sync", "in-sync"]);
}

#[test]
fn nbdinfo_map_through_the_front_is_the_units_map() {
    let dir = tempfile::tempdir().unwrap();
    let (_unit_a, vol_a, blockd_a) = replica("127.0.0.35");
    let (_unit_b, vol_b, blockd_b) = replica("127.0.0.36");
    let replicas = [blockd_a.uri(&vol_a.export_name), blockd_b.uri(&vol_b.export_name)];
    let front = HostFront::start(dir.path(), HOST, "vol", &format!("{HOST}:0"), &replicas, &[]);
    let uri = front.uri();
    qemu_io(&uri, &["write -P 0x42 4M 1M", "write -P 0x43 20M 64k", "flush"]);
    let through = run_tool_ok("nbdinfo", "libnbd-bin", &["--map", &uri], 30);
    let direct = run_tool_ok("nbdinfo", "libnbd-bin", &["--map", &replicas[0]], 30);
    assert_eq!(through, direct, "the front passes the unit's base:allocation map on");
    assert!(through.lines().count() > 1, "the map has holes and data:\n{through}");
    assert!(
        through.lines().any(|l| l.split_whitespace().take(2).collect::<Vec<_>>() == ["4194304", "1048576"]),
        "the written megabyte is one data extent:\n{through}"
    );
}
