//! NBD peers and blockd: unit state directories built with the layout crate, a running `dvsan-blockd` on a free
//! loopback port, external NBD tools (nbdinfo, qemu-io, …) run with a time limit, and a hand-driven NBD connection.

use crate::process::{describe, require_tool, stdout, timed, wait_for, workspace_bin};
use dvsan_layout::{
    AccessMode, Blocks, DataServiceState, Grant, LayoutStore, MediumKind, MediumSpec, NewGrant, NewPartition,
    NewVolume, PartitionIndex, Volume, VolumeIndex,
};
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

pub const BLOCK: u32 = 4096;

/// A unit state directory with media files in a temporary directory.
pub struct Unit {
    pub dir: tempfile::TempDir,
    pub state: PathBuf,
    pub media: Vec<PathBuf>,
}

impl Unit {
    /// Initialise a unit with media files of the given sizes in bytes.
    pub fn new(media_bytes: &[u64]) -> Unit {
        Unit::new_in(&std::env::temp_dir(), media_bytes)
    }

    /// The same, with the state and (sparse) media files under `parent`, e.g. /dev/shm for tmpfs media.
    pub fn new_in(parent: &Path, media_bytes: &[u64]) -> Unit {
        let dir = tempfile::tempdir_in(parent).unwrap();
        let state = dir.path().join("state");
        let mut media = Vec::new();
        let mut specs = Vec::new();
        for (i, bytes) in media_bytes.iter().enumerate() {
            let path = dir.path().join(format!("medium{i}.img"));
            std::fs::File::create(&path).unwrap().set_len(*bytes).unwrap();
            specs.push(MediumSpec { path: path.clone(), kind: MediumKind::File, bytes: *bytes });
            media.push(path);
        }
        let mut store = LayoutStore::open(&state).unwrap();
        store.init_unit("test-unit", BLOCK).unwrap();
        store.attach_media(&specs).unwrap();
        // New media are released until cleared; nothing serves them yet, so clear them now.
        dvsan_layout::clear_all_now(&mut store, dvsan_layout::ClearOptions::default()).unwrap();
        Unit { dir, state, media }
    }

    pub fn store(&self) -> LayoutStore {
        LayoutStore::open(&self.state).unwrap()
    }

    pub fn volume(&self, name: &str, blocks: u64) -> Volume {
        self.store()
            .create_volume(&NewVolume { name: Some(name.into()), len: Blocks(blocks), ..Default::default() })
            .unwrap()
    }

    pub fn partition(&self, volume: VolumeIndex, blocks: u64) -> dvsan_layout::Partition {
        self.store().create_partition(&NewPartition { volume, index: None, start: None, len: Blocks(blocks) }).unwrap()
    }

    pub fn grant(&self, volume: VolumeIndex, partition: Option<PartitionIndex>, host: &str, mode: AccessMode) -> Grant {
        let host = Some(host.parse().unwrap());
        self.store().create_grant(&NewGrant { index: None, volume, partition, host, identity: None, mode }).unwrap()
    }

    /// A grant to the TLS client certificate identity `identity`, from any address or only from `host`.
    pub fn grant_identity(&self, volume: VolumeIndex, identity: &str, host: Option<&str>, mode: AccessMode) -> Grant {
        let host = host.map(|h| h.parse().unwrap());
        let identity = Some(identity.to_string());
        self.store().create_grant(&NewGrant { index: None, volume, partition: None, host, identity, mode }).unwrap()
    }
}

/// A running dvsan-blockd; killed on drop.
pub struct Blockd {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
    state: PathBuf,
}

impl Blockd {
    pub fn start(unit: &Unit) -> Blockd {
        Blockd::start_with(unit, &[])
    }

    /// Start on port 0 (of 127.0.0.1, unless `extra` has a `--listen`) and wait for its Serving heartbeat to
    /// learn the port.
    pub fn start_with(unit: &Unit, extra: &[&str]) -> Blockd {
        let n = std::fs::read_dir(unit.dir.path()).unwrap().count();
        let log = unit.dir.path().join(format!("blockd-{n}.log"));
        let listen: &[&str] = if extra.contains(&"--listen") { &[] } else { &["--listen", "127.0.0.1:0"] };
        let child = Command::new(workspace_bin("dvsan-blockd"))
            .arg("--state-dir")
            .arg(&unit.state)
            .args(listen)
            .args(["--poll-interval-ms", "100"])
            .args(extra)
            .env("RUST_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        // Owned by the Blockd from here on, so a failed start still kills it.
        let mut blockd = Blockd { child, addr: "0.0.0.0:0".parse().unwrap(), log, state: unit.state.clone() };
        let pid = blockd.child.id();
        let store = LayoutStore::open(&unit.state).unwrap();
        let serving = wait_for(Duration::from_secs(10), || {
            store.data_service().unwrap().filter(|s| s.pid == pid && s.state == DataServiceState::Serving)
        });
        blockd.addr = serving.unwrap_or_else(|| panic!("blockd did not start: {}", blockd.log())).listen;
        blockd
    }

    pub fn uri(&self, export: &str) -> String {
        format!("nbd://{}/{export}", self.addr)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM and wait (bounded) for the exit status.
    pub fn terminate(mut self) -> ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        self.wait(Duration::from_secs(20))
    }

    /// SIGKILL: no chance to flush or say goodbye.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.wait(Duration::from_secs(10));
    }

    fn wait(&mut self, limit: Duration) -> ExitStatus {
        let status = wait_for(limit, || self.child.try_wait().unwrap());
        status.unwrap_or_else(|| panic!("blockd did not exit: {}", self.log()))
    }

    pub fn state_dir(&self) -> &Path {
        &self.state
    }
}

impl Drop for Blockd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run an NBD tool (required; from `package`) with a time limit, returning its output.
pub fn run_tool(tool: &str, package: &str, args: &[&str], limit_secs: u32) -> Output {
    run_tool_env(tool, package, args, &[], limit_secs)
}

/// [`run_tool`] with extra environment variables.
pub fn run_tool_env(tool: &str, package: &str, args: &[&str], env: &[(&str, &str)], limit_secs: u32) -> Output {
    require_tool(tool, package);
    timed(tool, Duration::from_secs(u64::from(limit_secs))).args(args).envs(env.iter().copied()).output().unwrap()
}

/// Run an NBD tool that must succeed; returns its stdout.
pub fn run_tool_ok(tool: &str, package: &str, args: &[&str], limit_secs: u32) -> String {
    let out = run_tool(tool, package, args, limit_secs);
    assert!(out.status.success(), "{tool} {args:?} failed:\n{}", describe(&out));
    stdout(&out)
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Client options acting as host `source`.
pub fn as_host(source: &str) -> dvsan_nbd::ConnectOptions {
    dvsan_nbd::ConnectOptions {
        local_addr: Some(ip(source)),
        timeout: Duration::from_secs(10),
        structured_replies: true,
    }
}

/// Read a whole file (for checksums and comparisons).
pub fn read_file(path: &Path) -> Vec<u8> {
    let mut v = Vec::new();
    std::fs::File::open(path).unwrap().read_to_end(&mut v).unwrap();
    v
}

/// A hand-driven NBD connection (blocking, from 127.0.0.1) for sending exactly the bytes a test wants.
pub struct Raw {
    pub s: std::net::TcpStream,
}

impl Raw {
    pub fn connect(addr: SocketAddr) -> Raw {
        let s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.set_nodelay(true).unwrap();
        Raw { s }
    }

    /// A connection from `source` (a 127.0.0.0/8 address, so the server sees another host than 127.0.0.1).
    pub fn connect_from(addr: SocketAddr, source: &str) -> Raw {
        use nix::sys::socket::{bind, connect, socket, AddressFamily, SockFlag, SockType, SockaddrIn};
        use std::os::fd::AsRawFd;
        let (SocketAddr::V4(to), Ok(from)) = (addr, source.parse::<std::net::Ipv4Addr>()) else {
            panic!("connect_from needs IPv4 addresses: {addr} from {source}")
        };
        let fd = socket(AddressFamily::Inet, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).unwrap();
        bind(fd.as_raw_fd(), &SockaddrIn::from(std::net::SocketAddrV4::new(from, 0))).unwrap();
        connect(fd.as_raw_fd(), &SockaddrIn::from(to)).unwrap();
        let s = std::net::TcpStream::from(fd);
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.set_nodelay(true).unwrap();
        Raw { s }
    }

    /// Block until the server closes the connection (end of file or reset; the read timeout panics), discarding
    /// what it sends.
    pub fn wait_closed(&mut self) {
        let mut buf = [0u8; 4096];
        loop {
            match self.s.read(&mut buf) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
                Err(e) => panic!("waiting for the server to close: {e}"),
            }
        }
    }

    /// Read the greeting and send fixed-newstyle + no-zeroes client flags.
    pub fn greet(addr: SocketAddr) -> Raw {
        Raw::connect(addr).greeted()
    }

    /// [`Raw::greet`] from `source` (see [`Raw::connect_from`]).
    pub fn greet_from(addr: SocketAddr, source: &str) -> Raw {
        Raw::connect_from(addr, source).greeted()
    }

    fn greeted(mut self) -> Raw {
        let mut g = [0u8; 18];
        self.read_exact(&mut g);
        assert_eq!(dvsan_nbd::handshake::decode_greeting(&g).unwrap(), 3);
        self.send(&3u32.to_be_bytes());
        self
    }

    /// Handshake up to transmission on `export`.
    pub fn go(addr: SocketAddr, export: &str, structured: bool) -> Raw {
        Raw::greet(addr).transmission(export, structured)
    }

    /// [`Raw::go`] from `source` (see [`Raw::connect_from`]).
    pub fn go_from(addr: SocketAddr, source: &str, export: &str, structured: bool) -> Raw {
        Raw::greet_from(addr, source).transmission(export, structured)
    }

    fn transmission(mut self, export: &str, structured: bool) -> Raw {
        use dvsan_nbd::constants::*;
        if structured {
            self.option(&dvsan_nbd::ClientOption::StructuredReply);
            assert_eq!(self.option_reply().0.reply, REP_ACK);
        }
        self.option(&dvsan_nbd::ClientOption::Go(dvsan_nbd::InfoRequest { name: export.into(), requests: vec![] }));
        loop {
            let (h, _) = self.option_reply();
            assert!(!h.is_error(), "GO refused: {h:?}");
            if h.reply == REP_ACK {
                return self;
            }
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        use std::io::Write;
        self.s.write_all(bytes).unwrap();
    }

    pub fn read_exact(&mut self, buf: &mut [u8]) {
        self.s.read_exact(buf).unwrap();
    }

    pub fn option(&mut self, o: &dvsan_nbd::ClientOption) {
        let mut out = Vec::new();
        o.encode(&mut out);
        self.send(&out);
    }

    pub fn option_reply(&mut self) -> (dvsan_nbd::handshake::OptionReplyHeader, Vec<u8>) {
        let mut h = [0u8; 20];
        self.read_exact(&mut h);
        let h = dvsan_nbd::handshake::OptionReplyHeader::decode(&h).unwrap();
        let mut payload = vec![0u8; h.length as usize];
        self.read_exact(&mut payload);
        (h, payload)
    }

    pub fn request(&mut self, command: u16, flags: u16, handle: u64, offset: u64, length: u32) {
        let h = dvsan_nbd::RequestHeader { flags, command, handle, offset, length };
        self.send(&h.encode());
    }

    /// On a simple-reply connection: WRITE `bytes` at `offset`, READ them back and check both replies and the
    /// bytes (handles 1000 and 1001).
    pub fn write_and_read_back(&mut self, offset: u64, bytes: &[u8]) {
        use dvsan_nbd::constants::{CMD_READ, CMD_WRITE};
        let len = u32::try_from(bytes.len()).unwrap();
        self.request(CMD_WRITE, 0, 1000, offset, len);
        self.send(bytes);
        assert_eq!(self.simple_reply(), (0, 1000));
        self.request(CMD_READ, 0, 1001, offset, len);
        assert_eq!(self.simple_reply(), (0, 1001));
        let mut back = vec![0u8; bytes.len()];
        self.read_exact(&mut back);
        assert_eq!(back, bytes);
    }

    /// A simple reply header: (error, handle).
    pub fn simple_reply(&mut self) -> (u32, u64) {
        let mut h = [0u8; 16];
        self.read_exact(&mut h);
        let r = dvsan_nbd::transmission::SimpleReplyHeader::decode(&h).unwrap();
        (r.error, r.handle)
    }

    /// Whether the server closes the connection within `limit` (reading and dropping anything it still sends).
    pub fn closed_within(&mut self, limit: Duration) -> bool {
        self.s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let deadline = Instant::now() + limit;
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            match self.s.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => return true,
            }
        }
        false
    }
}

/// qemu-io holding one NBD-over-TLS connection open, reading commands from a pipe.
pub struct HeldConnection {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    lines: std::sync::mpsc::Receiver<String>,
}

impl HeldConnection {
    /// qemu-io on `export` of the blockd at `host`:`port`, over TLS with the client certificates in `certs`.
    pub fn open(host: &str, port: u16, export: &str, certs: &Path) -> HeldConnection {
        require_tool("qemu-io", "qemu-utils");
        let mut child = Command::new("qemu-io")
            .arg("--object")
            .arg(format!("tls-creds-x509,id=tls0,dir={},endpoint=client", certs.display()))
            .args(["-r", "--image-opts"])
            .arg(format!("driver=nbd,host={host},port={port},export={export},tls-creds=tls0"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("qemu-io starts");
        let stdin = child.stdin.take().expect("qemu-io's stdin");
        let (tx, lines) = std::sync::mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(stream).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        HeldConnection { child, stdin, lines }
    }

    /// Reads 4 KiB at offset 0 over the open connection: whether it succeeded, and what qemu-io said.
    pub fn read(&mut self) -> (bool, String) {
        use std::io::Write;
        let _ = writeln!(self.stdin, "read 0 4096");
        let _ = self.stdin.flush();
        let mut said = String::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    said.push_str(&line);
                    said.push('\n');
                    if line.contains("read 4096/4096 bytes") {
                        return (true, said);
                    }
                    if line.contains("failed") || line.contains("rror") {
                        return (false, said);
                    }
                }
                Err(_) => break,
            }
        }
        (false, said)
    }
}

impl Drop for HeldConnection {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
