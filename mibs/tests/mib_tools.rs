//! Checks DVSAN-MIB and the generated constants against the real MIB tools: smilint accepts the
//! module, `scripts/gen-mib-oids --check` finds `src/generated.rs` up to date, and net-snmp's
//! snmptranslate resolves every OID in `dvsan_mib::ALL` to the constant's MIB name.
//!
//! A missing tool fails the test with the Debian package to install; nothing is skipped.

use dvsan_tests::{describe, isolate_net_snmp, repo_root, require_tool, stdout};
use std::process::Command;

#[test]
fn smilint_accepts_dvsan_mib() {
    require_tool("smilint", "smitools");
    let output = Command::new("smilint")
        .current_dir(repo_root())
        .env("SMIPATH", "../shared/mibs/ietf:mibs")
        .args(["-l", "3", "mibs/DVSAN-MIB.txt"])
        .output()
        .unwrap();
    assert!(
        output.status.success() && output.stdout.is_empty() && output.stderr.is_empty(),
        "smilint -l 3 reported problems in DVSAN-MIB:\n{}",
        describe(&output)
    );
}

#[test]
fn smilint_accepts_dvsan_station_mib() {
    require_tool("smilint", "smitools");
    let output = Command::new("smilint")
        .current_dir(repo_root())
        .env("SMIPATH", "../shared/mibs/ietf:mibs")
        .args(["-l", "3", "mibs/DVSAN-STATION-MIB.txt"])
        .output()
        .unwrap();
    assert!(
        output.status.success() && output.stdout.is_empty() && output.stderr.is_empty(),
        "smilint -l 3 reported problems in DVSAN-STATION-MIB:\n{}",
        describe(&output)
    );
}

#[test]
fn generated_constants_are_up_to_date() {
    require_tool("snmptranslate", "snmp");
    require_tool("python3", "python3");
    require_tool("bash", "bash");
    let output =
        Command::new("bash").current_dir(repo_root()).args(["scripts/gen-mib-oids", "--check"]).output().unwrap();
    assert!(
        output.status.success(),
        "mibs/src/generated.rs does not match the MIBs; run scripts/gen-mib-oids:\n{}",
        describe(&output)
    );
}

#[test]
fn snmptranslate_resolves_every_constant_to_its_name() {
    require_tool("snmptranslate", "snmp");
    let numeric: Vec<String> = dvsan_mib::ALL.iter().map(|(_, oid)| format!(".{}", dvsan_mib::dotted(oid))).collect();
    let output = isolate_net_snmp(&mut Command::new("snmptranslate"))
        .current_dir(repo_root())
        .args([
            "-M",
            "+../shared/mibs/ietf:mibs",
            "-m",
            "+DVSAN-MIB:DVSAN-STATION-MIB:IF-MIB:SNMPv2-MIB:SNMPv2-TM:TRANSPORT-ADDRESS-MIB:NOTIFICATION-LOG-MIB",
        ])
        .args(&numeric)
        .output()
        .unwrap();
    assert!(output.status.success() && output.stderr.is_empty(), "snmptranslate failed:\n{}", describe(&output));
    let stdout = stdout(&output);
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
