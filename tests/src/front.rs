//! The host front: a running `dvsan-host serve` over replicas on units' blockd, its status file, and the bytes of
//! a volume read straight from a unit's medium (to compare replicas without going through any server).

use crate::nbd::{Unit, BLOCK};
use crate::process::{wait_for, workspace_bin, Proc};
use dvsan_layout::Volume;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A running `dvsan-host serve`; killed (SIGKILL) on drop.
pub struct HostFront {
    pub proc: Proc,
    /// The address clients connect to (`IP:PORT` or `unix:PATH`).
    pub listen: String,
    pub volume: String,
    pub state_dir: PathBuf,
}

impl HostFront {
    /// Start `dvsan-host --host HOST serve VOLUME --listen LISTEN --replica URI ... --state-dir DIR/front-state
    /// EXTRA` logging to `DIR/front-N.log`, and wait (10 s at most) until it says it serves. HOST is the source
    /// address of its connections to the units (what their grants name).
    pub fn start(dir: &Path, host: &str, volume: &str, listen: &str, replicas: &[String], extra: &[&str]) -> HostFront {
        HostFront::start_with(dir, &["--host", host], volume, listen, replicas, extra)
    }

    /// [`HostFront::start`] with these global options of `dvsan-host` (before `serve`: `--host`, `--station`,
    /// `--credentials`, `--user`); with a station and no `replicas`, the front finds them through the station.
    pub fn start_with(
        dir: &Path,
        global: &[&str],
        volume: &str,
        listen: &str,
        replicas: &[String],
        extra: &[&str],
    ) -> HostFront {
        let state_dir = dir.join("front-state");
        let n = std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
        let mut cmd = Command::new(workspace_bin("dvsan-host"));
        cmd.env_remove("DVSAN_STATION").env_remove("DVSAN_CREDENTIALS").env_remove("DVSAN_USER");
        cmd.args(global).args(["serve", volume]).args(["--listen", listen]).arg("--state-dir").arg(&state_dir);
        for r in replicas {
            cmd.args(["--replica", r]);
        }
        cmd.args(extra).env("RUST_LOG", "debug");
        let proc = Proc::spawn_logging("dvsan-host serve", &mut cmd, dir.join(format!("front-{n}.log")));
        let mut front = HostFront { proc, listen: listen.to_string(), volume: volume.to_string(), state_dir };
        let serving = wait_for(Duration::from_secs(10), || {
            let log = front.proc.log_text();
            let line = log.lines().find(|l| l.starts_with("serving "))?.to_string();
            Some(line)
        });
        let Some(line) = serving else {
            panic!("the front did not start:\n{}", front.proc.log_text());
        };
        // "serving VOLUME on ADDR (N replicas)": the bound address (port 0 was given a real one).
        if let Some(addr) = line.split(" on ").nth(1).and_then(|r| r.split(' ').next()) {
            front.listen = addr.to_string();
        }
        front
    }

    /// The NBD URI of the front's export, as libnbd and qemu take it.
    pub fn uri(&self) -> String {
        match self.listen.strip_prefix("unix:") {
            Some(path) => format!("nbd+unix:///{}?socket={path}", self.volume),
            None => format!("nbd://{}/{}", self.listen, self.volume),
        }
    }

    /// The front's status file (VOLUME.status.json), if written yet.
    pub fn status(&self) -> Option<serde_json::Value> {
        let text = std::fs::read_to_string(self.state_dir.join(format!("{}.status.json", self.volume))).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Each replica's state ("in-sync", "out-of-sync", "resyncing"), in `--replica` order.
    pub fn states(&self) -> Vec<String> {
        let Some(status) = self.status() else { return Vec::new() };
        let replicas = status["replicas"].as_array().cloned().unwrap_or_default();
        replicas.iter().map(|r| r["state"].as_str().unwrap_or("").to_string()).collect()
    }

    /// Wait until the replicas' states are `want`; panics with the log after `limit`.
    pub fn wait_states(&self, want: &[&str], limit: Duration) {
        let reached = wait_for(limit, || (self.states() == want).then_some(()));
        assert!(
            reached.is_some(),
            "replica states {:?}, wanted {want:?}; status {:?}\n{}",
            self.states(),
            self.status(),
            self.proc.log_text()
        );
    }
}

/// The bytes of `volume` as they are on `unit`'s first medium (a volume made on a unit with one medium).
pub fn volume_bytes(unit: &Unit, volume: &Volume) -> Vec<u8> {
    let mut f = std::fs::File::open(&unit.media[0]).expect("open the medium");
    f.seek(SeekFrom::Start(volume.extent.start.0 * u64::from(BLOCK))).expect("seek to the volume");
    let mut out = vec![0u8; usize::try_from(volume.extent.len.0 * u64::from(BLOCK)).expect("volume fits memory")];
    f.read_exact(&mut out).expect("read the volume from the medium");
    out
}
