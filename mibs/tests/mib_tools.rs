//! Checks DVSAN-MIB and the generated constants against the real MIB tools: smilint accepts the
//! module, `scripts/gen-mib-oids --check` finds `src/generated.rs` up to date, and net-snmp's
//! snmptranslate resolves every OID in `dvsan_mib::ALL` to the constant's MIB name.
//!
//! A missing tool fails the test with the Debian package to install; nothing is skipped.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root (`/work/main`), found from this crate's directory (`<root>/mibs`).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("mibs crate has a parent directory").to_path_buf()
}

/// Panics with an install hint when `tool` cannot be started at all.
fn require_tool(tool: &str, version_flag: &str, package: &str) {
    match Command::new(tool).arg(version_flag).output() {
        Ok(_) => {}
        Err(err) if err.kind() == ErrorKind::NotFound => {
            panic!("`{tool}` not found: install the `{package}` package (apt-get install {package})")
        }
        Err(err) => panic!("cannot run `{tool}`: {err}"),
    }
}

/// An environment for net-snmp tools that ignores the machine's snmp.conf and MIB settings.
struct NetSnmpEnv {
    dir: tempfile::TempDir,
}

impl NetSnmpEnv {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("persist/cert_indexes")).unwrap();
        std::fs::create_dir_all(dir.path().join("conf")).unwrap();
        NetSnmpEnv { dir }
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(repo_root())
            .env("SNMP_PERSISTENT_DIR", self.dir.path().join("persist"))
            .env("SNMPCONFPATH", self.dir.path().join("conf"))
            .env_remove("MIBS")
            .env_remove("MIBDIRS");
        cmd
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn describe_output(output: &Output) -> String {
    format!("exit: {}\nstdout:\n{}\nstderr:\n{}", output.status, text(&output.stdout), text(&output.stderr))
}

#[test]
fn smilint_accepts_dvsan_mib() {
    require_tool("smilint", "-V", "smitools");
    let output = Command::new("smilint")
        .current_dir(repo_root())
        .env("SMIPATH", "../shared/mibs/ietf:mibs")
        .args(["-l", "3", "mibs/DVSAN-MIB.txt"])
        .output()
        .unwrap();
    assert!(
        output.status.success() && output.stdout.is_empty() && output.stderr.is_empty(),
        "smilint -l 3 reported problems in DVSAN-MIB:\n{}",
        describe_output(&output)
    );
}

#[test]
fn smilint_accepts_dvsan_station_mib() {
    require_tool("smilint", "-V", "smitools");
    let output = Command::new("smilint")
        .current_dir(repo_root())
        .env("SMIPATH", "../shared/mibs/ietf:mibs")
        .args(["-l", "3", "mibs/DVSAN-STATION-MIB.txt"])
        .output()
        .unwrap();
    assert!(
        output.status.success() && output.stdout.is_empty() && output.stderr.is_empty(),
        "smilint -l 3 reported problems in DVSAN-STATION-MIB:\n{}",
        describe_output(&output)
    );
}

#[test]
fn generated_constants_are_up_to_date() {
    require_tool("snmptranslate", "-V", "snmp");
    require_tool("python3", "--version", "python3");
    require_tool("bash", "--version", "bash");
    let output =
        Command::new("bash").current_dir(repo_root()).args(["scripts/gen-mib-oids", "--check"]).output().unwrap();
    assert!(
        output.status.success(),
        "mibs/src/generated.rs does not match the MIBs; run scripts/gen-mib-oids:\n{}",
        describe_output(&output)
    );
}

#[test]
fn snmptranslate_resolves_every_constant_to_its_name() {
    require_tool("snmptranslate", "-V", "snmp");
    let env = NetSnmpEnv::new();
    let numeric: Vec<String> = dvsan_mib::ALL.iter().map(|(_, oid)| format!(".{}", dvsan_mib::dotted(oid))).collect();
    let output = env
        .command("snmptranslate")
        .args([
            "-M",
            "+../shared/mibs/ietf:mibs",
            "-m",
            "+DVSAN-MIB:DVSAN-STATION-MIB:IF-MIB:SNMPv2-MIB:SNMPv2-TM:TRANSPORT-ADDRESS-MIB:NOTIFICATION-LOG-MIB",
        ])
        .args(&numeric)
        .output()
        .unwrap();
    assert!(output.status.success() && output.stderr.is_empty(), "snmptranslate failed:\n{}", describe_output(&output));
    let stdout = text(&output.stdout);
    // snmptranslate separates the answers for several OIDs with blank lines.
    let lines: Vec<&str> = stdout.lines().filter(|line| !line.is_empty()).collect();
    assert_eq!(lines.len(), dvsan_mib::ALL.len(), "one line per OID expected:\n{stdout}");
    for ((name, oid), line) in dvsan_mib::ALL.iter().zip(&lines) {
        // Default output is MODULE::name; an unresolved tail would show as name.N.
        let resolved = line.rsplit("::").next().unwrap_or(line);
        assert_eq!(resolved, *name, "{} resolves to {line}", dvsan_mib::dotted(oid));
    }
    // The dvsan nodes really come from DVSAN-MIB, the station's from DVSAN-STATION-MIB.
    let dvsan_lines = lines.iter().filter(|line| line.contains("::dvsan")).collect::<Vec<_>>();
    assert!(!dvsan_lines.is_empty());
    for line in dvsan_lines {
        let module = if line.contains("::dvsanStation") { "DVSAN-STATION-MIB::" } else { "DVSAN-MIB::" };
        assert!(line.starts_with(module), "{line}");
    }
}
