//! Tests leave nothing behind: net-snmp tools create `cert_indexes` (and save `snmpapp.conf`)
//! in their persistent directory on every run, which was /var/lib/snmp or a shared directory in /tmp. Started
//! through [`isolate_net_snmp`], they write only under the build tree's scratch directory.

use dvsan_tests::{free_udp_port, isolate_net_snmp, require_tool};
use std::process::Command;

#[test]
fn net_snmp_tools_write_nothing_outside_the_build_tree() {
    require_tool("snmpget", "snmp");
    // Stands for /tmp and /var/lib/snmp: the temporary directory and net-snmp's default persistent directory.
    let outside = tempfile::tempdir().unwrap();
    let default_persist = outside.path().join("var-lib-snmp");
    let nobody = format!("127.0.0.1:{}", free_udp_port("127.0.0.1"));
    let mut cmd = Command::new("snmpget");
    cmd.env("TMPDIR", outside.path()).env("SNMP_PERSISTENT_DIR", &default_persist);
    let out = isolate_net_snmp(&mut cmd)
        .args(["-v2c", "-c", "public", "-t", "0.2", "-r", "0", &nobody, "1.3.6.1.2.1.1.3.0"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("Timeout"), "{}", String::from_utf8_lossy(&out.stderr));
    let left: Vec<_> = std::fs::read_dir(outside.path()).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(left.is_empty(), "net-snmp wrote outside the build tree: {left:?}");
}
