//! Malformed stream replay: bad handshakes and bad requests against one running blockd, each getting the
//! spec's error or a closed connection, without disturbing a normal client; the reasons are counted.

use dvsan_layout::AccessMode;
use dvsan_nbd::constants::*;
use dvsan_nbd::{ClientOption, InfoRequest};
use dvsan_tests::nbd::*;
use std::time::Duration;

const MIB: u64 = 1024 * 1024;
const SIZE: u64 = MIB;

fn io_unit() -> Unit {
    let unit = Unit::new(&[MIB]);
    let vol = unit.volume("vol", 256);
    unit.grant(vol.index, None, "127.0.0.1", AccessMode::ReadWrite);
    unit
}

/// The server must have closed the connection (bounded wait).
fn assert_closed(raw: &mut Raw, what: &str, within: Duration) {
    assert!(raw.closed_within(within), "{what}: connection still open after {within:?}");
}

#[test]
fn malformed_streams_get_errors_or_closed_connections() {
    let unit = io_unit();
    let blockd = Blockd::start_with(&unit, &["--handshake-timeout-ms", "1000"]);
    let addr = blockd.addr;
    let quick = Duration::from_secs(2);

    // A normal client, open across the whole replay.
    let mut normal = Raw::go(addr, "vol", true);

    std::thread::scope(|s| {
        // Stalls take the timeout to be noticed: run them alongside the rest.
        let stall_handshake = s.spawn(move || {
            let mut r = Raw::greet(addr);
            // Truncated option: header announces 100 bytes, 10 arrive, then nothing.
            let mut out = Vec::new();
            dvsan_nbd::OptionHeader { option: OPT_GO, length: 100 }.encode(&mut out);
            out.extend_from_slice(&[0u8; 10]);
            r.send(&out);
            assert_closed(&mut r, "truncated option", Duration::from_secs(4));
        });
        let stall_request = s.spawn(move || {
            let mut r = Raw::go(addr, "vol", false);
            let h = dvsan_nbd::RequestHeader { flags: 0, command: CMD_READ, handle: 1, offset: 0, length: 512 };
            r.send(&h.encode()[..10]);
            assert_closed(&mut r, "stall mid-request header", Duration::from_secs(4));
        });
        let stall_payload = s.spawn(move || {
            let mut r = Raw::go(addr, "vol", false);
            r.request(CMD_WRITE, 0, 1, 0, 65536);
            r.send(&[7u8; 1000]);
            assert_closed(&mut r, "stall mid-write payload", Duration::from_secs(4));
        });
        let silent = s.spawn(move || {
            // Connects and never answers the greeting.
            let mut r = Raw::connect(addr);
            assert_closed(&mut r, "silent client", Duration::from_secs(4));
        });

        // Garbage instead of the handshake: not valid client flags.
        let mut r = Raw::connect(addr);
        let mut greeting = [0u8; 18];
        r.read_exact(&mut greeting);
        r.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_closed(&mut r, "HTTP instead of NBD", quick);

        // Option with a bad magic.
        let mut r = Raw::greet(addr);
        r.send(b"IHAVEOPXxxxxxxxxxxxxxxxxxxxxxxxx");
        assert_closed(&mut r, "option with bad magic", quick);

        // Option length 2^32-1: closed without reading (or allocating) it.
        let mut r = Raw::greet(addr);
        let mut out = Vec::new();
        dvsan_nbd::OptionHeader { option: OPT_GO, length: u32::MAX }.encode(&mut out);
        r.send(&out);
        assert_closed(&mut r, "option length 2^32-1", quick);

        // Unknown option: NBD_REP_ERR_UNSUP, and haggling goes on.
        let mut r = Raw::greet(addr);
        let mut out = Vec::new();
        dvsan_nbd::OptionHeader { option: 0x4242, length: 3 }.encode(&mut out);
        out.extend_from_slice(b"abc");
        r.send(&out);
        let (h, _) = r.option_reply();
        assert_eq!((h.option, h.reply), (0x4242, REP_ERR_UNSUP));
        // Malformed OPT_GO payload: NBD_REP_ERR_INVALID; then STARTTLS is unsupported; then ABORT is acked.
        let mut out = Vec::new();
        dvsan_nbd::OptionHeader { option: OPT_GO, length: 7 }.encode(&mut out);
        out.extend_from_slice(&[0, 0, 1, 0, b'v', 0, 0]);
        r.send(&out);
        assert_eq!(r.option_reply().0.reply, REP_ERR_INVALID);
        r.option(&ClientOption::StartTls);
        assert_eq!(r.option_reply().0.reply, REP_ERR_UNSUP);
        r.option(&ClientOption::Go(InfoRequest { name: "vol".into(), requests: vec![0xffff] }));
        let mut acked = false;
        for _ in 0..8 {
            let (h, _) = r.option_reply();
            assert!(!h.is_error(), "unknown info request types are ignored");
            if h.reply == REP_ACK {
                acked = true;
                break;
            }
        }
        assert!(acked);
        // Now in transmission: request with a bad magic closes the connection.
        let mut bad =
            dvsan_nbd::RequestHeader { flags: 0, command: CMD_READ, handle: 1, offset: 0, length: 1 }.encode();
        bad[0] = 0;
        r.send(&bad);
        assert_closed(&mut r, "request with bad magic", quick);

        // Too many options.
        let mut r = Raw::greet(addr);
        for _ in 0..65 {
            r.option(&ClientOption::Other(0x4242));
        }
        let mut replies = 0;
        while replies < 65 && !r.closed_within(Duration::from_millis(1)) {
            let _ = r.s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut h = [0u8; 20];
            if std::io::Read::read_exact(&mut r.s, &mut h).is_err() {
                break;
            }
            let len = u32::from_be_bytes([h[16], h[17], h[18], h[19]]) as usize;
            let mut payload = vec![0u8; len];
            if std::io::Read::read_exact(&mut r.s, &mut payload).is_err() {
                break;
            }
            replies += 1;
        }
        assert!(replies <= 64, "option flood was answered {replies} times");
        assert_closed(&mut r, "option flood", quick);

        // Transmission-phase errors that keep the connection usable (simple replies).
        let mut r = Raw::go(addr, "vol", false);
        r.request(CMD_READ, 0, 1, 0, u32::MAX); // 4 GiB read
        assert_eq!(r.simple_reply(), (22, 1));
        r.request(CMD_READ, 0, 2, SIZE - 511, 512); // past the end
        assert_eq!(r.simple_reply(), (22, 2));
        r.request(CMD_READ, 0, 3, u64::MAX - 10, 512); // offset + length overflows
        assert_eq!(r.simple_reply(), (22, 3));
        r.request(42, 0, 4, 0, 0); // unknown command
        assert_eq!(r.simple_reply(), (22, 4));
        r.request(CMD_READ, CMD_FLAG_DF, 5, 0, 512); // DF was not offered
        assert_eq!(r.simple_reply(), (22, 5));
        r.request(CMD_FLUSH, 0, 6, 1, 0); // reserved fields set
        assert_eq!(r.simple_reply(), (22, 6));
        r.request(CMD_BLOCK_STATUS, 0, 7, 0, 512); // not negotiated
        assert_eq!(r.simple_reply(), (22, 7));
        // Write past the end: ENOSPC, and its payload is consumed, not parsed as requests.
        r.request(CMD_WRITE, 0, 8, SIZE - 100, 200);
        r.send(&[0x25u8; 200]);
        assert_eq!(r.simple_reply(), (28, 8));
        // Misaligned offsets and lengths are fine: the minimum block size is 1.
        r.request(CMD_WRITE, 0, 9, 4097, 3);
        r.send(b"xyz");
        assert_eq!(r.simple_reply(), (0, 9));
        r.request(CMD_READ, 0, 10, 4096, 5);
        assert_eq!(r.simple_reply(), (0, 10));
        let mut five = [0u8; 5];
        r.read_exact(&mut five);
        assert_eq!(&five, b"\0xyz\0");
        // A WRITE declaring 64 MiB (over the 32 MiB maximum): EINVAL, then closed without reading it.
        r.request(CMD_WRITE, 0, 11, 0, 64 << 20);
        assert_eq!(r.simple_reply(), (22, 11));
        assert_closed(&mut r, "64 MiB write", quick);

        // Structured replies carry the errors as error chunks with a message.
        let mut r = Raw::go(addr, "vol", true);
        r.request(CMD_READ, 0, 12, 0, u32::MAX);
        let mut h = [0u8; 20];
        r.read_exact(&mut h);
        let chunk = dvsan_nbd::transmission::ChunkHeader::decode(&h, 65536).unwrap();
        assert!(chunk.is_error() && chunk.is_done() && chunk.handle == 12);
        let mut payload = vec![0u8; chunk.length as usize];
        r.read_exact(&mut payload);
        let e = dvsan_nbd::transmission::ErrorChunk::parse(chunk.kind, &payload).unwrap();
        assert_eq!(e.error, dvsan_nbd::Errno::EINVAL);
        assert!(e.message.contains("maximum"), "{}", e.message);

        // Export name the host may not use via NBD_OPT_EXPORT_NAME: closed.
        let mut r = Raw::greet(addr);
        r.option(&ClientOption::ExportName("nosuch".into()));
        assert_closed(&mut r, "EXPORT_NAME of an unknown export", quick);

        for t in [stall_handshake, stall_request, stall_payload, silent] {
            t.join().unwrap();
        }
    });

    // The normal client was not disturbed.
    normal.request(CMD_WRITE, CMD_FLAG_FUA, 100, 0, 4);
    normal.send(b"ok!!");
    assert_eq!(normal.simple_reply(), (0, 100));
    let mut after = Raw::go(addr, "vol", false);
    after.request(CMD_READ, 0, 101, 0, 4);
    assert_eq!(after.simple_reply(), (0, 101));
    let mut four = [0u8; 4];
    after.read_exact(&mut four);
    assert_eq!(&four, b"ok!!");
    drop((normal, after));

    // Every reason was counted: the totals are in the shutdown log line.
    let log_path = blockd.log.clone();
    assert!(blockd.terminate().success());
    let log = std::fs::read_to_string(log_path).unwrap();
    let summary = log.lines().find(|l| l.contains("bad_input=")).unwrap_or_else(|| panic!("no summary: {log}"));
    for reason in [
        "handshake_timeout=2",
        "unknown_client_flags=1",
        "option_bad_magic=1",
        "option_too_long=1",
        "too_many_options=1",
        "option_invalid=1",
        "request_bad_magic=1",
        "unknown_command=2",
        "bad_command_flags=1",
        "request_too_large=3",
        "request_out_of_range=3",
        "reserved_fields_set=1",
        "stalled_request=2",
        "export_unknown=1",
    ] {
        assert!(summary.contains(reason), "{reason} missing from {summary}");
    }
    assert!(!log.contains("panicked"), "{log}");
}
