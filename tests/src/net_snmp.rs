//! net-snmp peers: its command-line tools and snmptrapd, run with our MIBs loaded and kept away from the machine's
//! snmp.conf and /var/lib/snmp.

use crate::process::{require_tool, timed, wait_for, Proc};
use crate::repo_root;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

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
        "+DVSAN-MIB:DVSAN-STATION-MIB:IF-MIB".into(),
    ]
}

/// The Debian package that provides a net-snmp program.
fn package_of(tool: &str) -> &'static str {
    match tool {
        "snmptrapd" => "snmptrapd",
        "snmpd" => "snmpd",
        _ => "snmp",
    }
}

/// A net-snmp tool (required) with our MIBs loaded and the machine's configuration ignored.
pub fn net_snmp(tool: &str) -> Command {
    require_tool(tool, package_of(tool));
    let mut cmd = Command::new(tool);
    isolate_net_snmp(&mut cmd).args(mib_args());
    cmd
}

/// Run a net-snmp tool with our MIBs loaded, a short timeout and no retries.
pub fn snmp(tool: &str, args: &[&str]) -> Output {
    net_snmp(tool).args(["-t", "1", "-r", "1"]).args(args).output().unwrap_or_else(|e| panic!("running {tool}: {e}"))
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

/// Run a net-snmp tool (required) with exactly `args`, the machine's configuration ignored, killed after 20 s.
pub fn run_net_snmp(tool: &str, args: &[&str]) -> Output {
    require_tool(tool, package_of(tool));
    isolate_net_snmp(&mut timed(tool, Duration::from_secs(20)))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {tool}: {e}"))
}

/// net-snmp's snmptrapd on a loopback port, as an NMS would run it, logging every notification it receives to a
/// file and accepting every community.
pub struct TrapReceiver {
    pub proc: Proc,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

impl TrapReceiver {
    pub fn start(dir: &Path) -> TrapReceiver {
        TrapReceiver::start_with(dir, &[])
    }

    /// [`TrapReceiver::start`] with more snmptrapd options (e.g. `-On` for numeric OIDs).
    pub fn start_with(dir: &Path, options: &[&str]) -> TrapReceiver {
        TrapReceiver::start_configured(dir, "", options)
    }

    /// [`TrapReceiver::start_with`] with more snmptrapd.conf lines (e.g. `createUser` for SNMPv3), its
    /// persistent directory (where it keeps its engine id and the users it made) in `dir`.
    pub fn start_configured(dir: &Path, conf_lines: &str, options: &[&str]) -> TrapReceiver {
        let addr = crate::free_udp_addr("127.0.0.1");
        let conf = dir.join("snmptrapd.conf");
        std::fs::write(&conf, format!("disableAuthorization yes\ndoNotLogTraps no\n{conf_lines}"))
            .expect("write snmptrapd.conf");
        let log = dir.join("traps.log");
        let mut cmd = net_snmp("snmptrapd");
        if !conf_lines.is_empty() {
            cmd.env("SNMP_PERSISTENT_DIR", dir);
        }
        cmd.args(options).args(["-f", "-C", "-c"]).arg(&conf).arg("-Lf").arg(&log).arg(format!("udp:{addr}"));
        let proc = Proc::spawn("snmptrapd", cmd, dir);
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

    /// Whether one line of the log contains every one of `needles`.
    pub fn logged(&self, needles: &[&str]) -> Option<()> {
        self.text().lines().any(|line| needles.iter().all(|n| line.contains(n))).then_some(())
    }

    /// Wait until the log contains `needle`; panics with the log otherwise.
    pub fn expect(&self, needle: &str, limit: Duration) {
        let seen = wait_for(limit, || self.text().contains(needle).then_some(()));
        assert!(seen.is_some(), "snmptrapd never logged {needle:?}; log:\n{}", self.text());
    }
}

/// A users file (the TOML every component reads with `--users` or `--credentials`) at `path`, mode `mode`, with one
/// authPriv user (SHA-256, AES) per `(name, auth passphrase, privacy passphrase, access)`; access is `read-write`
/// or `read-only`.
pub fn write_users_file(path: &Path, users: &[(&str, &str, &str, &str)], mode: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let mut text = String::new();
    for (name, auth, privacy, access) in users {
        text.push_str(&format!(
            "[[user]]\nname = \"{name}\"\nauth = \"SHA-256\"\nauth_passphrase = \"{auth}\"\npriv = \"AES\"\n\
             priv_passphrase = \"{privacy}\"\naccess = \"{access}\"\n\n"
        ));
    }
    std::fs::write(path, text).expect("write the users file");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("set the users file's mode");
    path.to_path_buf()
}
