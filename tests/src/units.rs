//! Unit and station fixtures: real `dvsan-station` and `dvsan-agent` processes on loopback, and a stand-in for
//! blockd's heartbeat so a unit's data service reads as serving.
//!
//! Every test uses its own 127.0.N.x addresses (N per test) so tests of one binary can run in parallel; agents
//! listen on the station's default agent port 1161 there. Child processes are killed when their handle drops.

use crate::net_snmp::net_snmp;
use crate::process::{describe, run_ok, wait_until, workspace_bin, Proc};
use dvsan_layout::{DataServiceState, DataServiceStatus, LayoutStore};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The write community the fixtures configure explicitly on every agent, station and client that writes (no
/// component has one by default).
pub const WRITE_COMMUNITY: &str = "private";

/// A running `dvsan-station run`.
pub struct Station {
    pub proc: Proc,
    pub state_dir: PathBuf,
    pub traps: SocketAddr,
    pub snmp: Option<SocketAddr>,
}

impl Station {
    /// `dvsan-host` against this station's agent as host `host`, with none of the caller's DVSAN_* environment
    /// (station, write community, credentials): each test says how its host authenticates.
    pub fn host_cli(&self, host: &str) -> Command {
        let mut cmd = Command::new(workspace_bin("dvsan-host"));
        cmd.env_remove("DVSAN_STATION")
            .env_remove("DVSAN_WRITE_COMMUNITY")
            .env_remove("DVSAN_CREDENTIALS")
            .env_remove("DVSAN_USER")
            .arg("--station")
            .arg(self.snmp.expect("the station serves SNMP").to_string())
            .args(["--host", host]);
        cmd
    }

    /// [`Station::host_cli`] as SNMPv3 user `user` of the users file `users` (authPriv), waiting up to 20 s for
    /// the station's answers.
    pub fn host_cli_v3(&self, host: &str, users: &Path, user: &str) -> Command {
        let mut cmd = self.host_cli(host);
        cmd.args(["--wait", "20s", "--credentials"]).arg(users).args(["--user", user]);
        cmd
    }

    /// Starts a station in lab mode (`--trust-community-units`: units announcing themselves with a community are
    /// pooled without enrolment or approval), otherwise as [`Station::start_secure`]; waits for station.ready.
    pub fn start(state_dir: &Path, extra: &[&str]) -> Station {
        Station::start_with(state_dir, "1s", "info,dvsan_station=debug", extra)
    }

    /// As [`Station::start`] (lab mode, [`WRITE_COMMUNITY`] as in [`Station::start_secure`]) with this
    /// `--poll-interval` and `RUST_LOG`.
    pub fn start_with(state_dir: &Path, poll_interval: &str, rust_log: &str, extra: &[&str]) -> Station {
        let mut flags = vec!["--trust-community-units"];
        flags.extend_from_slice(extra);
        Station::spawn(state_dir, poll_interval, rust_log, &Station::secure_flags(&flags))
    }

    /// Starts a station with the station's defaults for trust (only enrolled or approved units enter the pool), a
    /// 1 s poll interval, its own agent, [`WRITE_COMMUNITY`] as its write community towards units
    /// (`--write-community`) and as the admin community of its own agent (`--admin-community`: it sees and may do
    /// everything there) unless `extra` gives them, and `extra` flags; waits for station.ready.
    pub fn start_secure(state_dir: &Path, extra: &[&str]) -> Station {
        Station::start_bare(state_dir, &Station::secure_flags(extra))
    }

    /// `extra` with `--write-community` and `--admin-community` [`WRITE_COMMUNITY`] unless it gives them.
    fn secure_flags<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        let mut flags: Vec<&str> = Vec::new();
        for flag in ["--write-community", "--admin-community"] {
            if !extra.contains(&flag) {
                flags.extend([flag, WRITE_COMMUNITY]);
            }
        }
        flags.extend_from_slice(extra);
        flags
    }

    /// A station in its default configuration (no write community, no lab mode) with `extra` flags.
    pub fn start_bare(state_dir: &Path, extra: &[&str]) -> Station {
        Station::spawn(state_dir, "1s", "info,dvsan_station=debug", extra)
    }

    /// Starts a station with this `--poll-interval`, `RUST_LOG` and `extra` flags; waits for station.ready.
    fn spawn(state_dir: &Path, poll_interval: &str, rust_log: &str, extra: &[&str]) -> Station {
        std::fs::create_dir_all(state_dir).unwrap();
        let ready = state_dir.join("station.ready");
        let _ = std::fs::remove_file(&ready);
        let mut cmd = Command::new(workspace_bin("dvsan-station"));
        cmd.env_remove("DVSAN_UNIT_WRITE_COMMUNITY")
            .env_remove("DVSAN_STATION_WRITE_COMMUNITY")
            .env_remove("DVSAN_ADMIN_COMMUNITY")
            .arg("run")
            .arg("--state-dir")
            .arg(state_dir)
            .args(["--listen-traps", "127.0.0.1:0", "--snmp-listen", "127.0.0.1:0", "--poll-interval", poll_interval])
            .args(extra)
            .env("RUST_LOG", rust_log);
        let log = state_dir.with_extension("log");
        let proc = Proc::spawn_logging("dvsan-station", &mut cmd, log);
        // The file may be seen between its creation and its write: wait until it holds the whole JSON object.
        let json: serde_json::Value = wait_until("station.ready", Duration::from_secs(15), || {
            serde_json::from_str(&std::fs::read_to_string(&ready).ok()?).ok()
        });
        Station {
            proc,
            state_dir: state_dir.to_path_buf(),
            traps: json["traps"].as_str().unwrap().parse().unwrap(),
            snmp: json["snmp"].as_str().map(|s| s.parse().unwrap()),
        }
    }

    /// The station's CLI, with [`WRITE_COMMUNITY`] as its write community towards units
    /// (`DVSAN_UNIT_WRITE_COMMUNITY`, the environment form of `--write-community`).
    pub fn cli(&self) -> Command {
        let mut cmd = Command::new(workspace_bin("dvsan-station"));
        cmd.env_remove("DVSAN_STATION_STATE_DIR").env("DVSAN_UNIT_WRITE_COMMUNITY", WRITE_COMMUNITY);
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
        wait_until(&format!("{what} (unit {address})"), timeout, || self.unit_at(address).filter(|u| check(u)))
    }

    /// `unit pending --json --all`: the units waiting for approval, and the rejected ones.
    pub fn pending(&self) -> Vec<serde_json::Value> {
        let text = run_ok(self.cli().args(["unit", "pending", "--json", "--all", "--state-dir"]).arg(&self.state_dir));
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        json["pending"].as_array().cloned().unwrap_or_default()
    }

    /// `traps --json -n 0` (plus `extra` filters), one value per notification.
    pub fn traps(&self, extra: &[&str]) -> Vec<serde_json::Value> {
        let text =
            run_ok(self.cli().args(["traps", "--json", "-n", "0", "--state-dir"]).arg(&self.state_dir).args(extra));
        text.lines().map(|line| serde_json::from_str(line).unwrap()).collect()
    }
}

/// The snmpset arguments (`OBJECT TYPE VALUE`…) of the station's storage request row `index`: an allocation of
/// `size` (`Some`) or, with `None`, a release of `target`'s unit and volume index, for the host whose IPv4 address
/// is `host_hex` (hex octets); the row is made active (createAndGo) by the same SET.
pub fn station_request_row(index: u32, size: Option<&str>, target: (&str, &str), host_hex: &str) -> Vec<String> {
    let column = |name: &str| format!("DVSAN-STATION-MIB::dvsanStationRequest{name}.{index}");
    let mut args: Vec<String> = Vec::new();
    match size {
        Some(size) => args.extend([column("Size"), "s".into(), size.into()]),
        None => args.extend([
            column("Action"),
            "i".into(),
            "2".into(),
            column("UnitIndex"),
            "u".into(),
            target.0.into(),
            column("VolumeIndex"),
            "u".into(),
            target.1.into(),
        ]),
    }
    args.extend([column("HostAddrType"), "i".into(), "1".into(), column("HostAddress"), "x".into(), host_hex.into()]);
    args.extend([column("RowStatus"), "i".into(), "4".into()]);
    args
}

/// A running `dvsan-agent run` with a stand-in for blockd's heartbeat (so the unit's data service is serving).
pub struct Unit {
    pub proc: Proc,
    pub state_dir: PathBuf,
    pub listen: SocketAddr,
    pub heartbeat: Option<Heartbeat>,
    /// The agent's read community (`public` unless started with another).
    pub read_community: String,
}

impl Unit {
    /// Starts an agent in `state_dir` on `ip:1161` sending notifications to `trap_sink` (`--inform` optional).
    pub fn start(state_dir: &Path, ip: &str, trap_sink: SocketAddr, size: &str, extra: &[&str]) -> Unit {
        let listen: SocketAddr = format!("{ip}:1161").parse().unwrap();
        Unit::start_named(state_dir, &listen.to_string(), listen, &trap_sink.to_string(), size, extra)
    }

    /// Starts an enrolled unit's agent in `state_dir` on `ip:1161`: its SNMPv3 user from `users` (the file
    /// `dvsan-station unit enroll --out` wrote), notifications to `trap_sink` sent as `notify_user`, the read
    /// community `read_community` (one the station does not know, so that only its v3 user reads it), and NO
    /// write community (only its v3 user may change it).
    pub fn start_enrolled(
        state_dir: &Path,
        ip: &str,
        trap_sink: SocketAddr,
        size: &str,
        users: &Path,
        notify_user: &str,
        read_community: &str,
    ) -> Unit {
        let listen: SocketAddr = format!("{ip}:1161").parse().unwrap();
        let users = users.display().to_string();
        let extra = ["--users", users.as_str(), "--notify-user", notify_user];
        let sink = trap_sink.to_string();
        Unit::start_with(state_dir, &listen.to_string(), listen, &sink, size, (read_community, None), &extra)
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
        Unit::start_with(state_dir, listen_text, listen, trap_sink, size, ("public", Some(WRITE_COMMUNITY)), extra)
    }

    /// [`Unit::start_named`] with the agent's read and write communities as given (no write community: `None`).
    pub fn start_with(
        state_dir: &Path,
        listen_text: &str,
        listen: SocketAddr,
        trap_sink: &str,
        size: &str,
        (read_community, write_community): (&str, Option<&str>),
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
            .args(["--read-community", read_community])
            .args(write_community.map(|c| ["--write-community", c]).into_iter().flatten())
            .args(extra)
            .env("RUST_LOG", "info");
        let log = state_dir.with_extension("log");
        let proc = Proc::spawn_logging("dvsan-agent", &mut cmd, log);
        let read_community = read_community.to_string();
        let unit = Unit { proc, state_dir: state_dir.to_path_buf(), listen, heartbeat: None, read_community };
        wait_until("the agent to answer", Duration::from_secs(10), || unit.snmpget(&["SNMPv2-MIB::sysUpTime.0"]).ok());
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

    /// The unit's grants as (volume, host) from its own store.
    pub fn grants(&self) -> Vec<(u64, String)> {
        self.show()["grants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| (g["volume"].as_u64().unwrap(), g["host"].as_str().unwrap().to_string()))
            .collect()
    }

    pub fn unit_id(&self) -> String {
        self.show()["unit"]["unit_id"].as_str().unwrap().to_string()
    }

    pub fn snmpget(&self, oids: &[&str]) -> Result<String, String> {
        let output = net_snmp("snmpget")
            .args(["-v2c", "-c", &self.read_community, "-t", "0.5", "-r", "0"])
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
    thread: Option<JoinHandle<()>>,
}

impl Heartbeat {
    pub fn start(state_dir: &Path, listen: SocketAddr) -> Heartbeat {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let dir = state_dir.to_path_buf();
        let data_listen = SocketAddr::new(listen.ip(), 10809);
        let thread = std::thread::spawn(move || {
            let mut store = LayoutStore::open(&dir).unwrap();
            while !flag.load(Ordering::Relaxed) {
                let _ = write_heartbeat(&mut store, data_listen, DataServiceState::Serving);
                std::thread::sleep(Duration::from_millis(300));
            }
            let _ = write_heartbeat(&mut store, data_listen, DataServiceState::Stopped);
        });
        Heartbeat { stop, thread: Some(thread) }
    }
}

/// One data-service heartbeat, stamped now, from this process, as blockd writes it into the unit's store.
pub fn write_heartbeat(
    store: &mut LayoutStore,
    listen: SocketAddr,
    state: DataServiceState,
) -> Result<(), dvsan_layout::LayoutError> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_millis() as u64;
    store.set_data_service(&DataServiceStatus { pid: std::process::id(), listen, state, heartbeat_ms: now })?;
    // The stand-in serves nothing, so it always "serves" the newest layout: released blocks may be cleared.
    let counter = store.change_counter()?;
    store.set_served_counter(counter)
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
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

/// Wait (10 s at most) until the agent started as `agent` answers a GET of sysUpTime.0 at `snmp_addr`; fails
/// the test with the agent's log otherwise.
pub fn wait_answering(agent: &Proc, snmp_addr: &str) {
    let up = crate::wait_for(Duration::from_secs(10), || {
        crate::snmp("snmpget", &["-v2c", "-c", "public", snmp_addr, "sysUpTime.0"]).status.success().then_some(())
    });
    assert!(up.is_some(), "{} did not answer at {snmp_addr}: {}", agent.name, agent.log_text());
}

/// A whole SAN unit: a running `dvsan-agent` and a real `dvsan-blockd` on one state directory (`DIR/state`, media
/// files `DIR/m0.img`, `DIR/m1.img`, … concatenated in that order), the agent answering at `snmp_addr`.
pub struct SanUnit {
    pub dir: PathBuf,
    pub ip: String,
    pub snmp_addr: String,
    pub data_port: u16,
    pub agent: Proc,
    pub blockd: Option<Proc>,
}

impl SanUnit {
    /// Starts the agent named `name` on `snmp_addr` (an `ip:port`) with media of these `sizes`, waits until it
    /// answers, then starts blockd on a free TCP port of the same address.
    pub fn start(dir: &Path, snmp_addr: &str, trap_sink: &str, name: &str, sizes: &[&str]) -> SanUnit {
        std::fs::create_dir_all(dir).expect("create the unit directory");
        let mut cmd = Command::new(workspace_bin("dvsan-agent"));
        cmd.arg("run").arg("--state-dir").arg(dir.join("state"));
        cmd.args([
            "--listen",
            snmp_addr,
            "--trap-sink",
            trap_sink,
            "--name",
            name,
            "--write-community",
            WRITE_COMMUNITY,
        ]);
        for (i, size) in sizes.iter().enumerate() {
            cmd.arg("--media").arg(format!("{}:{size}", dir.join(format!("m{i}.img")).display()));
        }
        let agent = Proc::spawn(&format!("agent-{name}"), cmd, dir);
        wait_answering(&agent, snmp_addr);
        let ip = snmp_addr.rsplit_once(':').map(|(ip, _)| ip).expect("ip:port").to_string();
        let data_port = crate::free_tcp_port(&ip);
        let mut unit =
            SanUnit { dir: dir.to_path_buf(), ip, snmp_addr: snmp_addr.into(), data_port, agent, blockd: None };
        unit.start_blockd();
        unit
    }

    /// (Re)starts blockd on the unit's data port.
    pub fn start_blockd(&mut self) {
        self.start_blockd_with(&[]);
    }

    /// Stops blockd if it runs and starts it again on the unit's data port with `extra` flags (`--tls …`).
    pub fn start_blockd_with(&mut self, extra: &[&str]) {
        self.blockd = None;
        let mut cmd = Command::new(workspace_bin("dvsan-blockd"));
        cmd.arg("--state-dir").arg(self.dir.join("state"));
        cmd.args(["--listen", &format!("{}:{}", self.ip, self.data_port)]);
        cmd.args(extra);
        self.blockd = Some(Proc::spawn("blockd", cmd, &self.dir));
    }

    /// The bytes of volume `volume` (its unit-local index) as they are on the unit's media (read straight from the
    /// files, past any server), from the unit's own layout store.
    pub fn volume_bytes(&self, volume: u32) -> Vec<u8> {
        use std::io::{Read, Seek, SeekFrom};
        let mut store = LayoutStore::open(&self.dir.join("state")).expect("open the unit's layout store");
        let layout = store.load().expect("read the unit's layout");
        let block = u64::from(layout.unit.block_size);
        let vol = layout.volume(dvsan_layout::VolumeIndex(volume)).unwrap_or_else(|| panic!("no volume {volume}"));
        assert!(!self.dir.join("m1.img").exists(), "volume_bytes reads units with one medium");
        let mut f = std::fs::File::open(self.dir.join("m0.img")).expect("open the medium");
        f.seek(SeekFrom::Start(vol.extent.start.0 * block)).expect("seek to the volume");
        let mut out = vec![0u8; usize::try_from(vol.extent.len.0 * block).expect("the volume fits in memory")];
        f.read_exact(&mut out).expect("read the volume from the medium");
        out
    }

    /// The NBD URI of one export.
    pub fn uri(&self, export: &str) -> String {
        format!("nbd://{}:{}/{export}", self.ip, self.data_port)
    }

    /// `snmpget -Oqv` of these objects from the agent.
    pub fn get(&self, objects: &[&str]) -> String {
        let mut args = vec!["-v2c", "-c", "public", "-Oqv", &self.snmp_addr];
        args.extend_from_slice(objects);
        crate::snmp_ok("snmpget", &args)
    }

    /// `snmpset` of these assignments (`OBJECT TYPE VALUE`…), which must succeed.
    pub fn set(&self, assignments: &[&str]) {
        let mut args = vec!["-v2c", "-c", WRITE_COMMUNITY, &self.snmp_addr];
        args.extend_from_slice(assignments);
        crate::snmp_ok("snmpset", &args);
    }

    /// Grants `host` read-write access to the whole volume `volume` with grant row `grant` (an SNMP SET).
    pub fn grant_volume(&self, grant: u32, volume: u32, host: std::net::Ipv4Addr) {
        let (g, v, hex) = (grant.to_string(), volume.to_string(), format!("{:08X}", u32::from(host)));
        let objects =
            ["dvsanAccessVolumeIndex", "dvsanAccessHostAddressType", "dvsanAccessHostAddress", "dvsanAccessRowStatus"]
                .map(|column| format!("{column}.{g}"));
        self.set(&[
            &objects[0],
            "u",
            &v,
            &objects[1],
            "i",
            "ipv4",
            &objects[2],
            "x",
            &hex,
            &objects[3],
            "i",
            "createAndGo",
        ]);
    }

    /// Wait until an SNMP GET of one object prints `want`.
    pub fn wait_value(&self, object: &str, want: &str) {
        let seen = crate::wait_for(Duration::from_secs(8), || (self.get(&[object]).trim() == want).then_some(()));
        assert!(seen.is_some(), "{object} never became {want:?} (now {:?})", self.get(&[object]));
    }
}
