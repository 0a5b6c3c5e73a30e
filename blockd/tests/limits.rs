//! Limits that hold under attack (issue 16): each test runs an attacker against a real blockd on loopback and
//! checks that a legitimate host, using a real NBD client (nbdinfo, qemu-io), is still served.
//!
//! The attacker acts from its own 127.0.0.x address; the tools connect from 127.0.0.1.

use dvsan_layout::AccessMode;
use dvsan_nbd::constants::*;
use dvsan_nbd::{ClientError, NbdClient};
use dvsan_tests::nbd::*;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

const MIB: u64 = 1024 * 1024;

/// Held by the tests that flood blockd or time a legitimate host, so two of them in this binary do not compete for
/// the machine's cores (the timings are what blockd does under attack, not what a second flood does).
static FLOODS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_flood_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    FLOODS.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Connections that never send anything, from `source`: `count` of them at once, each reopened as soon as blockd
/// closes it, until `stop` is set. Returns how many connections were opened in all.
fn idle_flood(target: SocketAddr, source: &str, count: usize, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    let source: std::net::IpAddr = source.parse().unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let opened = Arc::new(AtomicU64::new(0));
        runtime.block_on(async {
            let mut tasks = Vec::new();
            for _ in 0..count {
                let (stop, opened) = (stop.clone(), opened.clone());
                tasks.push(tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let socket = tokio::net::TcpSocket::new_v4().unwrap();
                        socket.bind(SocketAddr::new(source, 0)).unwrap();
                        let Ok(mut conn) = socket.connect(target).await else {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        };
                        opened.fetch_add(1, Ordering::Relaxed);
                        // Read (the greeting) until blockd closes, never sending a byte; give up at the stop flag.
                        let mut buf = [0u8; 64];
                        loop {
                            match tokio::time::timeout(Duration::from_millis(200), conn.read(&mut buf)).await {
                                Ok(Ok(0)) | Ok(Err(_)) => break,
                                Ok(Ok(_)) => {}
                                Err(_) if stop.load(Ordering::Relaxed) => break,
                                Err(_) => {}
                            }
                        }
                        // Reconnect at once, as an attacker would; only yield so the other tasks run.
                        tokio::task::yield_now().await;
                    }
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
        });
        opened.load(Ordering::Relaxed)
    })
}

/// The value of one bad-input counter in blockd's closing summary line.
fn counter(log: &str, name: &str) -> u64 {
    let line = log.lines().rev().find(|l| l.contains("stopped")).unwrap_or_else(|| panic!("no summary: {log}"));
    // "stopped bad_input=a=1 b=2": each counter follows a space or the first '='.
    let key = format!("{name}=");
    line.match_indices(&key)
        .find(|(at, _)| matches!(line[..*at].chars().last(), Some(' ' | '=' | '"')))
        .and_then(|(at, _)| {
            let digits: String = line[at + key.len()..].chars().take_while(|c| c.is_ascii_digit()).collect();
            digits.parse().ok()
        })
        .unwrap_or(0)
}

/// 200 idle connections from one address, reopened as soon as they are closed, for the whole test: nbdinfo and
/// qemu-io from another address succeed every time, and the log stays small (refusals are counted, their log
/// lines rate-limited).
#[test]
fn idle_connection_flood_does_not_lock_out_a_granted_host_nor_flood_the_log() {
    let _alone = one_flood_at_a_time();
    let unit = Unit::new(&[8 * MIB]);
    let vol = unit.volume("vol", 256);
    unit.grant(vol.index, None, "127.0.0.1", AccessMode::ReadWrite);
    let blockd = Blockd::start(&unit);
    let log_before = std::fs::metadata(&blockd.log).unwrap().len();

    let stop = Arc::new(AtomicBool::new(false));
    let attacker = idle_flood(blockd.addr, "127.0.0.66", 200, stop.clone());
    // Let the flood take every slot it can get before the first try.
    std::thread::sleep(Duration::from_millis(500));
    let uri = blockd.uri("vol");
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    for i in 0..15 {
        let t = Instant::now();
        if i % 3 == 2 {
            let out = run_tool_ok("qemu-io", "qemu-utils", &["-f", "raw", "-c", "read -P 0 0 4096", &uri], 30);
            assert!(out.contains("read 4096/4096"), "try {i}: {out}");
        } else {
            let out = run_tool_ok("nbdinfo", "libnbd-bin", &[&uri], 30);
            assert!(out.contains("export-size: 1048576"), "try {i}: {out}");
        }
        slowest = slowest.max(t.elapsed());
        // Spread the tries over ~10 s, past several silent-client timeouts (2 s) of the flood.
        std::thread::sleep(Duration::from_millis(500));
    }
    let tries_took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let opened = attacker.join().unwrap();
    let log_path = blockd.log.clone();
    let log_growth = std::fs::metadata(&log_path).unwrap().len() - log_before;
    assert!(blockd.terminate().success());
    let log = std::fs::read_to_string(&log_path).unwrap();
    let refused = counter(&log, "too_many_handshakes_from_source");
    let silent = counter(&log, "silent_client");
    eprintln!(
        "15/15 legitimate tries in {tries_took:?}, slowest {slowest:?}; attacker opened {opened} connections; \
         log grew {log_growth} bytes; counted {refused} refused and {silent} silent connections"
    );
    assert!(slowest < Duration::from_secs(5), "a legitimate try took {slowest:?}");
    assert!(opened > 1000, "the attacker kept reconnecting: {opened} connections");
    // Ten lines a second at most for the refusals, plus the legitimate connections' own lines.
    assert!(log_growth < 256 * 1024, "the log grew {log_growth} bytes for {opened} refused connections");
    // Every connection is counted: refused at once, or closed for silence (but those still open or queued when
    // the attacker stopped, which closed themselves).
    assert!(refused + silent + 64 >= opened && silent >= 8, "{refused} + {silent} of {opened}: {log}");
}

/// A host's connections in transmission are capped (--max-connections-per-host): beyond the cap its handshake
/// is refused with NBD_REP_ERR_POLICY, while another granted host (nbdinfo) still connects; closing one gives the
/// slot back.
#[tokio::test]
async fn a_host_holding_its_cap_of_connections_is_refused_more_while_another_host_connects() {
    let unit = Unit::new(&[8 * MIB]);
    let vol = unit.volume("vol", 256);
    unit.grant(vol.index, None, "127.0.0.7", AccessMode::ReadWriteShared);
    unit.grant(vol.index, None, "127.0.0.1", AccessMode::ReadWriteShared);
    let blockd = Blockd::start_with(&unit, &["--max-connections-per-host", "4"]);
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(NbdClient::connect(blockd.addr, "vol", &as_host("127.0.0.7")).await.unwrap());
    }
    let refused = NbdClient::connect(blockd.addr, "vol", &as_host("127.0.0.7")).await.err().expect("over the cap");
    match refused {
        ClientError::OptionRefused { reply, message, .. } => {
            assert_eq!(reply, REP_ERR_POLICY);
            assert!(message.contains("this host has its most connections open (at most 4)"), "{message}");
        }
        other => panic!("expected NBD_REP_ERR_POLICY, got {other}"),
    }
    let uri = blockd.uri("vol");
    let out = tokio::task::spawn_blocking(move || run_tool_ok("nbdinfo", "libnbd-bin", &[&uri], 30)).await.unwrap();
    assert!(out.contains("export-size: 1048576"), "{out}");
    // The held connections still work; closing one lets the host connect again.
    let mut buf = [0u8; 4096];
    held[0].read(0, &mut buf).await.unwrap();
    held.pop().unwrap().disconnect().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut again = loop {
        match NbdClient::connect(blockd.addr, "vol", &as_host("127.0.0.7")).await {
            Ok(c) => break c,
            Err(e) if Instant::now() < deadline => {
                assert_eq!(e.option_reply(), Some(REP_ERR_POLICY), "{e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("the slot was not given back: {e}"),
        }
    };
    again.read(0, &mut buf).await.unwrap();
    drop(held);
    drop(again);
    let log_path = blockd.log.clone();
    assert!(blockd.terminate().success());
    let log = std::fs::read_to_string(log_path).unwrap();
    assert!(log.contains("export refused: this host has its most connections open"), "{log}");
    assert!(counter(&log, "too_many_connections_from_host") >= 1, "{log}");
}

/// The raw bytes of the reply to `option` for `export`, on a fresh connection from 127.0.0.1.
fn raw_reply(addr: SocketAddr, option: &dvsan_nbd::ClientOption) -> Vec<u8> {
    let mut raw = Raw::greet(addr);
    raw.option(option);
    let mut header = [0u8; 20];
    raw.read_exact(&mut header);
    let length = u32::from_be_bytes(header[16..20].try_into().unwrap()) as usize;
    let mut payload = vec![0u8; length];
    raw.read_exact(&mut payload);
    [header.as_slice(), &payload].concat()
}

/// "No such export" and "no grant for this export" are the same reply byte for byte, for NBD_OPT_GO, NBD_OPT_INFO
/// and NBD_OPT_LIST_META_CONTEXT: a host cannot learn which export names exist.
#[test]
fn unknown_and_ungranted_exports_get_byte_identical_refusals() {
    use dvsan_nbd::handshake::MetaContextRequest;
    use dvsan_nbd::{ClientOption, InfoRequest};
    let unit = Unit::new(&[8 * MIB]);
    let other = unit.volume("other", 256);
    unit.grant(other.index, None, "127.0.0.2", AccessMode::ReadWrite);
    let blockd = Blockd::start(&unit);
    let options: [fn(&str) -> ClientOption; 3] = [
        |n| ClientOption::Go(InfoRequest { name: n.into(), requests: vec![INFO_BLOCK_SIZE] }),
        |n| ClientOption::Info(InfoRequest { name: n.into(), requests: vec![] }),
        |n| ClientOption::ListMetaContext(MetaContextRequest { export: n.into(), queries: vec![] }),
    ];
    for make in options {
        let ungranted = raw_reply(blockd.addr, &make("other"));
        let missing = raw_reply(blockd.addr, &make("nosuch"));
        assert_eq!(ungranted, missing, "{ungranted:?}");
        let header = dvsan_nbd::handshake::OptionReplyHeader::decode(&ungranted[..20]).unwrap();
        assert_eq!(header.reply, REP_ERR_UNKNOWN);
        let message = String::from_utf8_lossy(&ungranted[20..]);
        assert!(message.starts_with("the requested export is not available to host 127.0.0.1"), "{message}");
    }
    // nbdkit answers an unknown export the same way whatever the name; so do we, and the log still tells the
    // operator which it was.
    let log = blockd.log();
    assert!(log.contains("refused: host has no grant for this export"), "{log}");
    assert!(log.contains("refused: no such export"), "{log}");
}

/// VmRSS of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

/// 16 granted connections without structured replies each ask for eight 32 MiB READs and read nothing: blockd
/// sends each reply in pieces of its reply buffer and waits in the write, so its memory barely grows (it took
/// 17 → 543 MB before). Meanwhile qemu-io reads 8 MiB in one request (copied too, `--large-reads copied`, so in
/// data chunks of the buffer's size) and a simple-reply connection reads 3 MiB back: both get the right bytes.
#[test]
fn unread_32_mib_reads_do_not_grow_blockd_memory() {
    let _alone = one_flood_at_a_time();
    let unit = Unit::new(&[64 * MIB]);
    let vol = unit.volume("vol", 16384);
    unit.grant(vol.index, None, "127.0.0.1", AccessMode::ReadWrite);
    let blockd = Blockd::start_with(&unit, &["--large-reads", "copied"]);
    let uri = blockd.uri("vol");
    run_tool_ok("qemu-io", "qemu-utils", &["-f", "raw", "-c", "write -P 0x5a 0 8M", &uri], 30);
    let pid = blockd.child.id();
    let before = rss(pid);

    let mut attackers = Vec::new();
    for _ in 0..16 {
        let mut raw = Raw::go(blockd.addr, "vol", false);
        for handle in 0..8 {
            raw.request(CMD_READ, 0, handle, handle * 4 * MIB, 32 * MIB as u32);
        }
        attackers.push(raw);
    }
    let reader = std::thread::spawn(move || {
        let started = Instant::now();
        let out = run_tool_ok("qemu-io", "qemu-utils", &["-f", "raw", "-c", "read -P 0x5a 0 8M", &uri], 30);
        assert!(out.contains("read 8388608/8388608"), "{out}");
        started.elapsed()
    });
    let mut simple = Raw::go(blockd.addr, "vol", false);
    let pattern: Vec<u8> = (0..3 * MIB).map(|i| (i % 251) as u8).collect();
    simple.write_and_read_back(16 * MIB, &pattern);
    // Sample for 3 s (the stall limit, 10 s, closes the attackers later).
    let mut peak = before;
    for _ in 0..30 {
        peak = peak.max(rss(pid));
        std::thread::sleep(Duration::from_millis(100));
    }
    let qemu_took = reader.join().unwrap();
    peak = peak.max(rss(pid));
    let growth = peak.saturating_sub(before);
    eprintln!(
        "RSS before {} MiB, peak {} MiB while 16 connections left 8 x 32 MiB reads unread (growth {} MiB); \
         qemu-io read 8 MiB in {qemu_took:?}",
        before / MIB,
        peak / MIB,
        growth / MIB
    );
    assert!(growth < 100 * MIB, "blockd grew by {} MiB", growth / MIB);
    drop(attackers);
}

/// Refusals and drops reach the unit MIB: after an attack on a whole unit (agent and blockd), `snmpget` of the
/// dvsanDataGuard counters on the unit agent shows each kind counted: connections refused at accept, handshakes
/// evicted for a lighter source, silent connections, handshake timeouts, refused exports and over-cap refusals.
#[test]
fn refusals_and_drops_are_counted_in_the_unit_mib() {
    use dvsan_tests::units::SanUnit;
    dvsan_tests::require_tool("snmpget", "snmp");
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.90.1";
    let snmp_addr = format!("{ip}:{}", dvsan_tests::free_udp_port(ip));
    let mut unit = SanUnit::start(dir.path(), &snmp_addr, "127.0.90.1:9", "guard", &["16M"]);
    unit.start_blockd_with(&[
        "--max-handshakes",
        "5",
        "--max-handshakes-per-source",
        "2",
        "--max-connections-per-host",
        "1",
        "--silent-timeout-ms",
        "1000",
        "--handshake-timeout-ms",
        "1500",
    ]);
    let addr: SocketAddr = format!("{ip}:{}", unit.data_port).parse().unwrap();
    // Listening: a connection that closes at once is not counted (it is neither silent nor refused).
    dvsan_tests::wait_until("blockd listening", Duration::from_secs(10), || std::net::TcpStream::connect(addr).ok());
    unit.set(&["dvsanVolumeLength.1", "u", "256", "dvsanVolumeRowStatus.1", "i", "createAndGo"]);
    unit.grant_volume(1, 1, std::net::Ipv4Addr::LOCALHOST);

    // Five handshake slots: one stalled handshake (flags sent, then nothing), two silent connections from each of
    // two sources; three more from the first source are refused at once (its share is 2), and a connection from
    // a fifth source takes the oldest slot of a heaviest source.
    let mut stalled = Raw::connect_from(addr, "127.0.90.67");
    let mut greeting = [0u8; 18];
    stalled.read_exact(&mut greeting);
    stalled.send(&3u32.to_be_bytes());
    let mut held: Vec<Raw> = (0..2).map(|_| Raw::connect_from(addr, "127.0.90.66")).collect();
    for _ in 0..3 {
        Raw::connect_from(addr, "127.0.90.66").wait_closed();
    }
    held.extend((0..2).map(|_| Raw::connect_from(addr, "127.0.90.68")));
    held.push(Raw::connect_from(addr, "127.0.90.69"));
    for raw in held.iter_mut().chain([&mut stalled]) {
        raw.wait_closed();
    }
    // Two exports refused: one that does not exist, and the volume asked for by a host without a grant. Then the
    // granted host's second connection in transmission is refused over its cap of one.
    let export = unit.get(&["dvsanVolumeExportName.1"]).trim().trim_matches('"').to_string();
    for (name, source) in [("nosuch", "127.0.0.1"), (export.as_str(), "127.0.90.70")] {
        let mut raw = Raw::connect_from(addr, source);
        raw.read_exact(&mut greeting);
        raw.send(&3u32.to_be_bytes());
        raw.option(&dvsan_nbd::ClientOption::Go(dvsan_nbd::InfoRequest { name: name.into(), requests: vec![] }));
        assert_eq!(raw.option_reply().0.reply, REP_ERR_UNKNOWN);
    }
    let _serving = Raw::go(addr, &export, false);
    let mut over = Raw::greet(addr);
    over.option(&dvsan_nbd::ClientOption::Go(dvsan_nbd::InfoRequest { name: export, requests: vec![] }));
    assert_eq!(over.option_reply().0.reply, REP_ERR_POLICY);

    let want = [
        ("dvsanDataRefusedConnections.0", "3 connections"),
        ("dvsanDataEvictedHandshakes.0", "1 connections"),
        ("dvsanDataSilentConnections.0", "4 connections"),
        ("dvsanDataHandshakeTimeouts.0", "1 connections"),
        ("dvsanDataRefusedExports.0", "2 requests"),
        ("dvsanDataOverCapRefusals.0", "1 requests"),
        // No idle connection lost its slot here (see the test below for that).
        ("dvsanDataEvictedConnections.0", "0 connections"),
    ];
    for (object, value) in want {
        unit.wait_value(object, value);
    }
    let objects: Vec<&str> = want.iter().map(|(o, _)| *o).collect();
    eprintln!("unit MIB after the attack: {}", unit.get(&objects).replace('\n', " "));
}

/// When every connection slot is taken, a new host takes the slot of the oldest idle connection of the host
/// holding the most rather than being refused: a host holding all 4 slots has its oldest idle connection closed
/// for nbdinfo from another host, while its connection that just made a request (busy) and the others keep
/// working.
#[tokio::test]
async fn a_full_table_gives_the_oldest_idle_connection_of_the_heaviest_host_to_a_new_host() {
    let unit = Unit::new(&[8 * MIB]);
    let vol = unit.volume("vol", 256);
    unit.grant(vol.index, None, "127.0.0.7", AccessMode::ReadWriteShared);
    unit.grant(vol.index, None, "127.0.0.1", AccessMode::ReadWriteShared);
    let blockd = Blockd::start_with(&unit, &["--max-connections", "4", "--idle-after-ms", "1000"]);
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(NbdClient::connect(blockd.addr, "vol", &as_host("127.0.0.7")).await.unwrap());
    }
    // Idle for longer than --idle-after-ms (connections look at it every read tick); then the oldest makes a
    // request, so the oldest idle one is the second.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let mut buf = [0u8; 4096];
    held[0].read(0, &mut buf).await.unwrap();
    let uri = blockd.uri("vol");
    let out = tokio::task::spawn_blocking(move || run_tool_ok("nbdinfo", "libnbd-bin", &[&uri], 30)).await.unwrap();
    assert!(out.contains("export-size: 1048576"), "{out}");
    assert!(held[1].read(0, &mut buf).await.is_err(), "the oldest idle connection was closed");
    for i in [0, 2, 3] {
        held[i].read(0, &mut buf).await.unwrap_or_else(|e| panic!("connection {i} was closed: {e}"));
    }
    drop(held);
    let log_path = blockd.log.clone();
    assert!(blockd.terminate().success());
    let log = std::fs::read_to_string(log_path).unwrap();
    assert_eq!(counter(&log, "idle_connection_evicted"), 1, "{log}");
    assert_eq!(counter(&log, "too_many_connections"), 0, "{log}");
}

/// How a flood connection behaves once connected, until blockd closes it.
#[derive(Debug, Clone, Copy)]
enum Behaviour {
    /// Reads the greeting and sends nothing.
    Idle,
    /// Sends valid client flags, then an option one byte every 250 ms, never finishing it.
    Trickle,
}

/// `per_source` connections from each of `sources` at once, each behaving as `behaviour` and reopened as soon as
/// blockd closes it, until `stop` is set. Returns how many connections were opened in all.
fn flood(
    target: SocketAddr,
    sources: &[String],
    per_source: usize,
    behaviour: Behaviour,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    let sources: Vec<std::net::IpAddr> = sources.iter().map(|s| s.parse().unwrap()).collect();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let opened = Arc::new(AtomicU64::new(0));
        runtime.block_on(async {
            let mut tasks = Vec::new();
            for source in sources.iter().flat_map(|s| std::iter::repeat_n(*s, per_source)) {
                let (stop, opened) = (stop.clone(), opened.clone());
                tasks.push(tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let socket = tokio::net::TcpSocket::new_v4().unwrap();
                        socket.bind(SocketAddr::new(source, 0)).unwrap();
                        let Ok(conn) = socket.connect(target).await else {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        };
                        opened.fetch_add(1, Ordering::Relaxed);
                        hold(conn, behaviour, &stop).await;
                        // Reconnect at once, as an attacker would; only yield so the other tasks run.
                        tokio::task::yield_now().await;
                    }
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
        });
        opened.load(Ordering::Relaxed)
    })
}

/// Keep one flood connection open the way `behaviour` says until blockd closes it or `stop` is set.
async fn hold(mut conn: tokio::net::TcpStream, behaviour: Behaviour, stop: &AtomicBool) {
    use tokio::io::AsyncWriteExt;
    // Client flags, then an NBD_OPT_GO header announcing 600 bytes of data that never all arrive.
    let mut trickle = 3u32.to_be_bytes().to_vec();
    trickle.extend_from_slice(&IHAVEOPT.to_be_bytes());
    trickle.extend_from_slice(&OPT_GO.to_be_bytes());
    trickle.extend_from_slice(&600u32.to_be_bytes());
    trickle.resize(trickle.len() + 600, b'x');
    let mut sent = 0;
    let mut buf = [0u8; 64];
    loop {
        match tokio::time::timeout(Duration::from_millis(250), conn.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(_)) => {}
            Err(_) if stop.load(Ordering::Relaxed) => return,
            Err(_) => {
                if let Behaviour::Trickle = behaviour {
                    if sent < trickle.len() {
                        if conn.write_all(&trickle[sent..sent + 1]).await.is_err() {
                            return;
                        }
                        sent += 1;
                    }
                }
            }
        }
    }
}

/// The first target: while 200 connections from ungranted addresses (ten from each of twenty, half of
/// them idle, half trickling an option a byte at a time; each reopened as soon as it is closed) hold every
/// handshake slot they can, a granted host connects with qemu-io and completes a write and a read within 1 s on
/// every one of 20 tries.
#[test]
fn a_granted_host_completes_io_within_1_s_on_each_of_20_tries_under_200_idle_or_trickling_connections() {
    let _alone = one_flood_at_a_time();
    let unit = Unit::new(&[8 * MIB]);
    let vol = unit.volume("vol", 256);
    unit.grant(vol.index, None, "127.0.0.1", AccessMode::ReadWrite);
    let blockd = Blockd::start(&unit);
    let stop = Arc::new(AtomicBool::new(false));
    let sources: Vec<String> = (100..120).map(|i| format!("127.0.0.{i}")).collect();
    let idle = flood(blockd.addr, &sources[..10], 10, Behaviour::Idle, stop.clone());
    let trickling = flood(blockd.addr, &sources[10..], 10, Behaviour::Trickle, stop.clone());
    // Let the flood take every slot it can get before the first try.
    std::thread::sleep(Duration::from_millis(1000));
    let uri = blockd.uri("vol");
    let mut took = Vec::new();
    for i in 0..20u8 {
        let t = Instant::now();
        let write = format!("write -P {i} 0 4k");
        let read = format!("read -P {i} 0 4k");
        let out = run_tool_ok("qemu-io", "qemu-utils", &["-f", "raw", "-c", &write, "-c", &read, &uri], 30);
        took.push(t.elapsed());
        assert!(out.contains("read 4096/4096"), "try {i}: {out}");
        std::thread::sleep(Duration::from_millis(300));
    }
    stop.store(true, Ordering::Relaxed);
    let (idle_opened, trickle_opened) = (idle.join().unwrap(), trickling.join().unwrap());
    let log_path = blockd.log.clone();
    assert!(blockd.terminate().success());
    let log = std::fs::read_to_string(&log_path).unwrap();
    let mut sorted = took.clone();
    sorted.sort();
    eprintln!(
        "20 tries: median {:?}, slowest {:?}; the flood opened {idle_opened} idle and {trickle_opened} trickling \
         connections; blockd counted {} refused, {} evicted, {} silent, {} timed out",
        sorted[10],
        sorted[19],
        counter(&log, "too_many_handshakes_from_source") + counter(&log, "too_many_handshakes"),
        counter(&log, "handshake_evicted"),
        counter(&log, "silent_client"),
        counter(&log, "handshake_timeout"),
    );
    for (i, t) in took.iter().enumerate() {
        assert!(*t < Duration::from_secs(1), "try {i} took {t:?} (all: {took:?})");
    }
    assert!(idle_opened >= 100 && trickle_opened >= 100, "{idle_opened} {trickle_opened}");
    assert!(counter(&log, "handshake_timeout") > 0, "trickling handshakes ran out of time: {log}");
}

/// The second target: 128 granted connections (sixteen from each of eight addresses, so the per-host cap
/// of 32 does not hide the case; half with structured replies) each ask for a 32 MiB READ and read nothing:
/// blockd's RSS stays under 256 MB.
#[test]
fn unread_32_mib_reads_on_128_connections_keep_blockd_under_256_mb() {
    let _alone = one_flood_at_a_time();
    let unit = Unit::new(&[64 * MIB]);
    let vol = unit.volume("vol", 16384);
    let sources: Vec<String> = (180..188).map(|i| format!("127.0.0.{i}")).collect();
    for source in &sources {
        unit.grant(vol.index, None, source, AccessMode::ReadOnly);
    }
    let blockd = Blockd::start(&unit);
    let pid = blockd.child.id();
    let before = rss(pid);
    let mut attackers = Vec::new();
    let mut peak = before;
    for source in &sources {
        for j in 0..16u64 {
            let mut raw = Raw::go_from(blockd.addr, source, "vol", j % 2 == 0);
            raw.request(CMD_READ, 0, j, (j % 8) * 4 * MIB, 32 * MIB as u32);
            attackers.push(raw);
            peak = peak.max(rss(pid));
        }
    }
    // Sample for 3 s (the stall limit, 10 s, closes the attackers later).
    for _ in 0..30 {
        peak = peak.max(rss(pid));
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "RSS before {} MiB, peak {} MiB while {} connections left a 32 MiB read unread",
        before / MIB,
        peak / MIB,
        attackers.len()
    );
    assert_eq!(attackers.len(), 128);
    assert!(peak < 256 * 1000 * 1000, "blockd's RSS reached {} MiB", peak / MIB);
    drop(attackers);
}
