//! Processes and the machine around them: the workspace's binaries, required external tools (a missing one fails
//! the test with the package to install, it never skips), free loopback ports, bounded waiting, and child
//! processes killed when their handle drops.

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

/// A UDP address on `ip` that was free a moment ago.
pub fn free_udp_addr(ip: &str) -> SocketAddr {
    UdpSocket::bind((ip, 0)).and_then(|s| s.local_addr()).expect("bind an ephemeral UDP port")
}

/// A UDP port on `ip` that was free a moment ago.
pub fn free_udp_port(ip: &str) -> u16 {
    free_udp_addr(ip).port()
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

/// [`wait_for`] that fails the test, naming `what` it waited for, when `limit` passes.
pub fn wait_until<T>(what: &str, limit: Duration, check: impl FnMut() -> Option<T>) -> T {
    wait_for(limit, check).unwrap_or_else(|| panic!("timed out after {limit:?} waiting for {what}"))
}

/// Whether `cond` comes true within `limit` (polled as [`wait_for`] does).
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    wait_for(limit, || cond().then_some(())).is_some()
}

/// An exit status with both output streams, for failure messages.
pub fn describe(output: &Output) -> String {
    format!("exit: {}\nstdout:\n{}\nstderr:\n{}", output.status, stdout(output), stderr(output))
}

/// Both output streams as one text, stdout then stderr, for assertions on what a tool said anywhere.
pub fn output_text(output: &Output) -> String {
    format!("{}{}", stdout(output), stderr(output))
}

/// A command's stdout as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A command's stderr as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs a command to completion and returns stdout, failing the test with its output when it fails.
pub fn run_ok(cmd: &mut Command) -> String {
    let output = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(output.status.success(), "{cmd:?} failed:\n{}", describe(&output));
    stdout(&output)
}

/// Runs a command that must fail; returns its stderr.
pub fn run_fails(cmd: &mut Command) -> String {
    let output = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(!output.status.success(), "{cmd:?} should have failed:\n{}", describe(&output));
    stderr(&output)
}

/// `tool` run under coreutils `timeout`: SIGTERM after `limit`, SIGKILL 5 s later; stdin is empty. Add the
/// tool's arguments and environment to the returned command.
pub fn timed(tool: &str, limit: Duration) -> Command {
    let mut cmd = Command::new("timeout");
    cmd.arg("--kill-after=5").arg(format!("{}", limit.as_secs().max(1))).arg(tool).stdin(Stdio::null());
    cmd
}

/// A child process killed (SIGKILL) on drop; its output goes to a log file kept for failure messages.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
    pub name: String,
}

impl Proc {
    /// Start `cmd` logging to `log_dir/NAME.log`.
    pub fn spawn(name: &str, mut cmd: Command, log_dir: &Path) -> Proc {
        Proc::spawn_logging(name, &mut cmd, log_dir.join(format!("{name}.log")))
    }

    /// Start `cmd` logging stdout and stderr to the file `log`.
    pub fn spawn_logging(name: &str, cmd: &mut Command, log: PathBuf) -> Proc {
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

    /// SIGTERM, and fail the test unless the process exits within 10 s. A process that already ended is left.
    pub fn terminate(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        self.signal(15);
        if self.wait_exit(Duration::from_secs(10)).is_none() {
            self.kill();
            panic!("{} did not exit within 10 s of SIGTERM:\n{}", self.name, self.log_text());
        }
    }

    /// SIGKILL and reap: no chance to flush or say goodbye.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}
