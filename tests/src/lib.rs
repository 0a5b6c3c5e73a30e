//! Fixtures for integration tests that start real processes on loopback.
//!
//! Tests in every crate use these to find the workspace's binaries, require the external peers they talk to
//! (net-snmp tools, snmptrapd, NBD clients) — a missing tool fails the test with the package to install, it
//! never skips — pick free ports, run net-snmp tools with our MIBs loaded, and wait for conditions in bounded
//! loops. Every process started here is killed when its handle drops.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The repository root (this crate lives in `tests/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// Panics (fails the test) when `tool` is not on PATH, naming the Debian package that provides it.
pub fn require_tool(tool: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{tool} is required by this test but is not installed: apt-get install {package} (scripts/test does this)"
    );
}

/// A workspace binary built next to the running test (`target/<profile>/NAME`).
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/test-xxxx -> target/<profile>/
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
    let bin = profile_dir.join(name);
    assert!(
        bin.is_file(),
        "{} is missing: build the workspace binaries first (`cargo build --workspace --bins`; scripts/test does this)",
        bin.display()
    );
    bin
}

/// A UDP port on `ip` that was free a moment ago.
pub fn free_udp_port(ip: &str) -> u16 {
    UdpSocket::bind((ip, 0)).and_then(|s| s.local_addr()).expect("bind an ephemeral UDP port").port()
}

/// A TCP port on `ip` that was free a moment ago.
pub fn free_tcp_port(ip: &str) -> u16 {
    TcpListener::bind((ip, 0)).and_then(|s| s.local_addr()).expect("bind an ephemeral TCP port").port()
}

/// Poll `check` every 50 ms until it returns Some or `limit` passes.
pub fn wait_for<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child process killed (SIGKILL) on drop; its stderr goes to a log file kept for failure messages.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
    pub name: String,
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command, log_dir: &Path) -> Proc {
        let log = log_dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("create process log");
        let err = file.try_clone().expect("clone log handle");
        cmd.stdout(Stdio::from(file)).stderr(Stdio::from(err)).stdin(Stdio::null());
        let child = cmd.spawn().unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Proc { child, log, name: name.to_string() }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Send a signal (by number, e.g. 15 for SIGTERM) with the `kill` command.
    pub fn signal(&self, sig: i32) {
        let status = Command::new("kill").arg(format!("-{sig}")).arg(self.pid().to_string()).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{sig} {}", self.name);
    }

    /// Wait up to `limit` for the process to exit; its exit code if it did.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        wait_for(limit, || self.child.try_wait().ok().flatten()).map(|s| s.code().unwrap_or(-1))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Keeps a net-snmp tool's files out of /tmp and /var/lib/snmp and the machine's snmp.conf out of the test: its
/// persistent directory (net-snmp creates `cert_indexes` there on every start) and its config path are under
/// `target/tmp/net-snmp`, the build tree's scratch directory (`cargo clean` removes it), shared by every test.
pub fn isolate_net_snmp(cmd: &mut Command) -> &mut Command {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/test-xxxx -> target/tmp/net-snmp
    let target = exe.parent().and_then(Path::parent).and_then(Path::parent).expect("target/");
    let base = target.join("tmp/net-snmp");
    for dir in ["persist/cert_indexes", "conf"] {
        std::fs::create_dir_all(base.join(dir)).expect("create the net-snmp scratch directory");
    }
    cmd.env("SNMP_PERSISTENT_DIR", base.join("persist"))
        .env("SNMPCONFPATH", base.join("conf"))
        .env_remove("MIBS")
        .env_remove("MIBDIRS")
}

/// The `-M`/`-m` arguments that load our MIBs and the standard ones from `../shared/mibs/ietf`.
pub fn mib_args() -> Vec<String> {
    let root = repo_root();
    let ietf = root.join("../shared/mibs/ietf");
    assert!(ietf.is_dir(), "{} is missing: the standard MIB modules live there", ietf.display());
    vec![
        "-M".into(),
        format!("+{}:{}", ietf.display(), root.join("mibs").display()),
        "-m".into(),
        "+DVSAN-MIB:IF-MIB".into(),
    ]
}

/// Run a net-snmp tool with our MIBs loaded, a short timeout and no retries.
pub fn snmp(tool: &str, args: &[&str]) -> Output {
    require_tool(tool, "snmp");
    isolate_net_snmp(&mut Command::new(tool))
        .args(mib_args())
        .args(["-t", "1", "-r", "1"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {tool}: {e}"))
}

/// stdout of a net-snmp tool that must succeed.
pub fn snmp_ok(tool: &str, args: &[&str]) -> String {
    let out = snmp(tool, args);
    assert!(
        out.status.success(),
        "{tool} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// net-snmp's snmptrapd on a loopback port, logging every notification it receives to a file.
pub struct TrapReceiver {
    pub proc: Proc,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

impl TrapReceiver {
    pub fn start(dir: &Path) -> TrapReceiver {
        require_tool("snmptrapd", "snmptrapd");
        let port = free_udp_port("127.0.0.1");
        let conf = dir.join("snmptrapd.conf");
        std::fs::write(&conf, "disableAuthorization yes\ndoNotLogTraps no\n").expect("write snmptrapd.conf");
        let log = dir.join("traps.log");
        let mut cmd = Command::new("snmptrapd");
        isolate_net_snmp(&mut cmd);
        cmd.args(["-f", "-C", "-c"])
            .arg(&conf)
            .arg("-Lf")
            .arg(&log)
            .args(mib_args())
            .arg(format!("udp:127.0.0.1:{port}"));
        let proc = Proc::spawn("snmptrapd", cmd, dir);
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
        // snmptrapd logs a start line once it listens.
        let started = wait_for(Duration::from_secs(10), || {
            std::fs::read_to_string(&log).ok().filter(|t| t.contains("NET-SNMP version")).map(|_| ())
        });
        assert!(started.is_some(), "snmptrapd did not start: {}", proc.log_text());
        TrapReceiver { proc, addr, log }
    }

    pub fn text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait until the log contains `needle`; panics with the log otherwise.
    pub fn expect(&self, needle: &str, limit: Duration) {
        let seen = wait_for(limit, || self.text().contains(needle).then_some(()));
        assert!(seen.is_some(), "snmptrapd never logged {needle:?}; log:\n{}", self.text());
    }
}
