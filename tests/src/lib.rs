//! The one test-fixture crate: every crate's integration tests start real processes and real peers on loopback
//! through it.
//!
//! - [`process`]: the workspace's binaries, required tools (a missing tool fails the test with the package to
//!   install, it never skips), free ports, bounded waiting, child processes killed when their handle drops;
//! - [`net_snmp`]: net-snmp tools and snmptrapd with our MIBs loaded, kept away from the machine's configuration;
//! - [`front`]: a running host front (`dvsan-host serve`), its status file, a volume read from a unit's medium;
//! - [`nbd`]: unit state directories, a running `dvsan-blockd`, NBD tools and a hand-driven NBD connection;
//! - [`pki`]: test certificates for NBD over TLS (a CA, blockd's certificate, client certificates), by openssl;
//! - [`units`]: running `dvsan-station` and `dvsan-agent` processes, and a stand-in for blockd's heartbeat;
//! - [`tmux`]: a program in a real terminal (tmux), keys typed and the screen read, for the console's tests.
//!
//! The process and net-snmp helpers are re-exported at the crate root.

pub mod front;
pub mod nbd;
pub mod net_snmp;
pub mod pki;
pub mod process;
pub mod tmux;
pub mod units;

pub use net_snmp::*;
pub use process::*;
