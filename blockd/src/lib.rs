//! dvsan-blockd: the SAN unit's data service, an NBD server for the unit's volumes and partitions.
//!
//! The layout (exports, grants, media) comes from the unit store the agent owns; blockd only reads it, polling
//! its change counter, and writes back traffic counters and a heartbeat. [`service::run`] is the whole server;
//! the binary adds the command line, logging and signal handling around it.
//!
//! # Module map
//!
//! Bottom-up; a module imports only from modules listed before it (the protocol itself is the `dvsan-nbd` crate).
//!
//! 1. Leaves, importing nothing from this crate: [`admission`] (connection slots per pool and per address),
//!    [`bad_input`] (counters, rate-limited logging) and [`traffic`] (counters), `buffers` (a
//!    connection's read and reply buffers), `mapped_read` (sending from a read-only mapping of a medium),
//!    `splice_pipe` (a connection's pipe for splice(2)), [`setup`] (a unit state directory for benchmarks),
//!    [`tls`] (the TLS server configuration and client identities) and `transport` (a connection's byte stream:
//!    the socket or TLS over it).
//! 2. What is served: [`exports`] (the export table of one layout snapshot, media opened and mapped), `media_io`
//!    (I/O on an export's bytes), [`connections`] (the registry of open connections), and [`state`] (the live
//!    state shared by everything above: the table in force, connections, counters, the shutdown flag).
//! 3. Request handling: [`large_reads`] and `large_writes` move one large request's data (mapped or spliced)
//!    and know nothing of the connection; `transmission` is a connection's request loop, built on them.
//! 4. The control plane: `handshake` (option haggling, NBD_OPT_STARTTLS and access control, ending in
//!    transmission) and
//!    [`maintenance`] (the one thread on the unit store: layout changes, counters, heartbeat).
//! 5. [`service`]: the hub. Startup, the accept loop, a handshake task then a transmission thread per
//!    connection, shutdown.
//! 6. `main.rs`: command line, logging, signals.

pub mod admission;
pub mod bad_input;
mod buffers;
pub mod connections;
pub mod exports;
mod handshake;
pub mod large_reads;
mod large_writes;
pub mod maintenance;
mod mapped_read;
mod media_io;
pub mod service;
pub mod setup;
mod splice_pipe;
pub mod state;
pub mod tls;
pub mod traffic;
mod transmission;
mod transport;

pub use large_reads::LargeReads;
pub use service::{run, Config, ServiceError};
