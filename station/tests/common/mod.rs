//! Fixtures for the station's end-to-end tests: real `dvsan-station` and `dvsan-agent` processes on loopback,
//! a stand-in for blockd's heartbeat, net-snmp tools, and bounded waiting.
//!
//! Every test uses its own 127.0.N.x addresses (N per test) so tests of one binary can run in parallel; agents
//! listen on the station's default agent port 1161 there. Child processes are killed when their handle drops.

#![allow(dead_code)]

use dvsan_layout::{DataServiceState, DataServiceStatus, LayoutStore};
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The repository root (`<root>/station` is this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A workspace binary next to the test executable (target/<profile>/NAME).
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    for dir in exe.ancestors().skip(1) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("{name} not found next to {}: build the workspace binaries first (scripts/test does)", exe.display());
}

pub fn station_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_dvsan-station"))
}

/// Panics with an install hint when `tool` cannot be started.
pub fn require_tool(tool: &str, package: &str) {
    match Command::new(tool).arg("--help").stdout(Stdio::null()).stderr(Stdio::null()).status() {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {
            panic!("`{tool}` not found: install the `{package}` package (apt-get install {package})")
        }
        Err(e) => panic!("cannot run `{tool}`: {e}"),
    }
}

/// Polls `check` every 50 ms until it returns Some, or panics after `timeout` with `what`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn describe(output: &Output) -> String {
    format!(
        "exit: {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs a command to completion and returns stdout, panicking with its output on failure.
pub fn run_ok(cmd: &mut Command) -> String {
    let output = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(output.status.success(), "{cmd:?} failed:\n{}", describe(&output));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs a command that must fail; returns stderr.
pub fn run_fails(cmd: &mut Command) -> String {
    let output = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(!output.status.success(), "{cmd:?} should have failed:\n{}", describe(&output));
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A child process killed (SIGKILL) on drop unless it already ended.
pub struct Proc {
    pub child: Option<Child>,
    pub name: String,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &str, cmd: &mut Command, log: PathBuf) -> Proc {
        let file = std::fs::File::create(&log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc { child: Some(child), name: name.to_string(), log }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM and wait (bounded) for the exit.
    pub fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
            panic!("{} did not exit within 10 s of SIGTERM:\n{}", self.name, self.log_text());
        }
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A running `dvsan-station run`.
pub struct Station {
    pub proc: Proc,
    pub state_dir: PathBuf,
    pub traps: SocketAddr,
    pub snmp: Option<SocketAddr>,
}

impl Station {
    /// Starts a station with a 1 s poll interval, its own agent, and `extra` flags; waits for station.ready.
    pub fn start(state_dir: &Path, extra: &[&str]) -> Station {
        std::fs::create_dir_all(state_dir).unwrap();
        let ready = state_dir.join("station.ready");
        let _ = std::fs::remove_file(&ready);
        let mut cmd = Command::new(station_bin());
        cmd.arg("run")
            .arg("--state-dir")
            .arg(state_dir)
            .args(["--listen-traps", "127.0.0.1:0", "--snmp-listen", "127.0.0.1:0", "--poll-interval", "1s"])
            .args(extra)
            .env("RUST_LOG", "info,dvsan_station=debug");
        let log = state_dir.with_extension("log");
        let proc = Proc::spawn("dvsan-station", &mut cmd, log);
        let text = wait_for("station.ready", Duration::from_secs(15), || std::fs::read_to_string(&ready).ok());
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        Station {
            proc,
            state_dir: state_dir.to_path_buf(),
            traps: json["traps"].as_str().unwrap().parse().unwrap(),
            snmp: json["snmp"].as_str().map(|s| s.parse().unwrap()),
        }
    }

    pub fn cli(&self) -> Command {
        let mut cmd = Command::new(station_bin());
        cmd.env_remove("DVSAN_STATION_STATE_DIR");
        cmd
    }

    /// `pool --json`.
    pub fn pool(&self) -> serde_json::Value {
        let text = run_ok(self.cli().args(["pool", "--json", "--state-dir"]).arg(&self.state_dir));
        serde_json::from_str(&text).unwrap()
    }

    /// The unit with this agent address in `pool --json`, if any.
    pub fn unit_at(&self, address: &str) -> Option<serde_json::Value> {
        self.pool()["units"].as_array().unwrap().iter().find(|u| u["address"] == address).cloned()
    }

    /// Waits until the unit at `address` satisfies `check`; returns it.
    pub fn wait_unit(
        &self,
        address: &str,
        what: &str,
        timeout: Duration,
        check: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        wait_for(&format!("{what} (unit {address})"), timeout, || self.unit_at(address).filter(|u| check(u)))
    }

    /// `traps --json -n 0` (plus `extra` filters), one value per notification.
    pub fn traps(&self, extra: &[&str]) -> Vec<serde_json::Value> {
        let text =
            run_ok(self.cli().args(["traps", "--json", "-n", "0", "--state-dir"]).arg(&self.state_dir).args(extra));
        text.lines().map(|line| serde_json::from_str(line).unwrap()).collect()
    }
}

/// A running `dvsan-agent run` with a stand-in for blockd's heartbeat (so the unit's data service is serving).
pub struct Unit {
    pub proc: Proc,
    pub state_dir: PathBuf,
    pub listen: SocketAddr,
    pub heartbeat: Option<Heartbeat>,
}

impl Unit {
    /// Starts an agent in `state_dir` on `ip:1161` sending notifications to `trap_sink` (`--inform` optional).
    pub fn start(state_dir: &Path, ip: &str, trap_sink: SocketAddr, size: &str, extra: &[&str]) -> Unit {
        let listen: SocketAddr = format!("{ip}:1161").parse().unwrap();
        Unit::start_named(state_dir, &listen.to_string(), listen, &trap_sink.to_string(), size, extra)
    }

    /// [`Unit::start`] with `--listen` and `--trap-sink` as given (addresses or host names); `listen` is where
    /// the agent ends up answering.
    pub fn start_named(
        state_dir: &Path,
        listen_text: &str,
        listen: SocketAddr,
        trap_sink: &str,
        size: &str,
        extra: &[&str],
    ) -> Unit {
        std::fs::create_dir_all(state_dir).unwrap();
        let mut cmd = Command::new(workspace_bin("dvsan-agent"));
        cmd.arg("run")
            .arg("--state-dir")
            .arg(state_dir)
            .arg("--media")
            .arg(format!("{}:{size}", state_dir.join("disk.img").display()))
            .arg("--listen")
            .arg(listen_text)
            .arg("--trap-sink")
            .arg(trap_sink)
            .args(["--read-community", "public", "--write-community", "private"])
            .args(extra)
            .env("RUST_LOG", "info");
        let log = state_dir.with_extension("log");
        let proc = Proc::spawn("dvsan-agent", &mut cmd, log);
        let unit = Unit { proc, state_dir: state_dir.to_path_buf(), listen, heartbeat: None };
        wait_for("the agent to answer", Duration::from_secs(10), || unit.snmpget(&["SNMPv2-MIB::sysUpTime.0"]).ok());
        unit
    }

    /// Starts the data-service heartbeat (blockd stand-in) in the unit's store.
    pub fn serve_data(&mut self) {
        self.heartbeat = Some(Heartbeat::start(&self.state_dir, self.listen));
    }

    pub fn stop_data(&mut self) {
        self.heartbeat = None;
    }

    pub fn address(&self) -> String {
        self.listen.to_string()
    }

    /// `dvsan-agent ARGS --state-dir D` (the offline CLI, which works while the agent runs).
    pub fn admin(&self, args: &[&str]) -> String {
        run_ok(Command::new(workspace_bin("dvsan-agent")).args(args).arg("--state-dir").arg(&self.state_dir))
    }

    pub fn show(&self) -> serde_json::Value {
        serde_json::from_str(&self.admin(&["show", "--json"])).unwrap()
    }

    pub fn unit_id(&self) -> String {
        self.show()["unit"]["unit_id"].as_str().unwrap().to_string()
    }

    pub fn snmpget(&self, oids: &[&str]) -> Result<String, String> {
        let output = net_snmp("snmpget")
            .args(["-v2c", "-c", "public", "-t", "0.5", "-r", "0"])
            .arg(self.listen.to_string())
            .args(oids)
            .output()
            .unwrap();
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(describe(&output))
        }
    }
}

/// Writes a serving heartbeat into a unit's store every 300 ms until dropped, as blockd does.
pub struct Heartbeat {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Heartbeat {
    pub fn start(state_dir: &Path, listen: SocketAddr) -> Heartbeat {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let dir = state_dir.to_path_buf();
        let data_listen = SocketAddr::new(listen.ip(), 10809);
        let thread = std::thread::spawn(move || {
            let mut store = LayoutStore::open(&dir).unwrap();
            let mut beat = |state| {
                let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
                let status =
                    DataServiceStatus { pid: std::process::id(), listen: data_listen, state, heartbeat_ms: now };
                let _ = store.set_data_service(&status);
            };
            while !flag.load(Ordering::Relaxed) {
                beat(DataServiceState::Serving);
                std::thread::sleep(Duration::from_millis(300));
            }
            beat(DataServiceState::Stopped);
        });
        Heartbeat { stop, thread: Some(thread) }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A net-snmp tool with our MIBs loadable, ignoring the machine's snmp.conf.
pub fn net_snmp(tool: &str) -> Command {
    require_tool(tool, if tool == "snmptrapd" { "snmptrapd" } else { "snmp" });
    let mut cmd = Command::new(tool);
    dvsan_tests::isolate_net_snmp(&mut cmd).current_dir(repo_root()).args([
        "-M",
        "+../shared/mibs/ietf:mibs",
        "-m",
        "+DVSAN-MIB:DVSAN-STATION-MIB",
    ]);
    cmd
}

/// The unit objects of `pool --json` for the volumes of a unit: (index, name, start, end, length, state).
pub fn volumes_of(unit: &serde_json::Value) -> Vec<(u64, String, u64, u64, u64, String)> {
    unit["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["index"].as_u64().unwrap(),
                v["name"].as_str().unwrap().to_string(),
                v["start_lba"].as_u64().unwrap(),
                v["end_lba"].as_u64().unwrap(),
                v["length"].as_u64().unwrap(),
                v["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// A free UDP port on 127.0.0.1 (for a notification receiver).
pub fn free_udp_port() -> SocketAddr {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// Starts net-snmp's snmptrapd, as an NMS would run it, logging to `log` and accepting every community.
pub fn snmptrapd(dir: &Path, listen: SocketAddr, log: &Path) -> Proc {
    let conf = dir.join("snmptrapd.conf");
    std::fs::write(&conf, "disableAuthorization yes\n").unwrap();
    let mut cmd = net_snmp("snmptrapd");
    cmd.args(["-f", "-C", "-Lf"]).arg(log).arg("-c").arg(&conf).arg(format!("udp:{listen}"));
    let proc = Proc::spawn("snmptrapd", &mut cmd, dir.join("snmptrapd.out"));
    wait_for("snmptrapd to start", Duration::from_secs(10), || {
        std::fs::read_to_string(log).ok().filter(|t| t.contains("NET-SNMP version"))
    });
    proc
}

/// Whether a line of snmptrapd's log at `log` contains every one of `needles`.
pub fn trap_logged(log: &Path, needles: &[&str]) -> Option<()> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines().any(|line| needles.iter().all(|n| line.contains(n))).then_some(())
}
