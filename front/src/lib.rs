//! `dvsan-front`: the host side of dvsan's data path (crucible's "upstairs"). A local NBD server that stock
//! clients use unchanged, forwarding to a volume's replicas on the units' blockd: writes to every live replica
//! (protocol C), reads from one in-sync replica, dropped connections re-established with their requests re-sent,
//! failed replicas marked out of sync with their missed regions in a persistent dirty bitmap, returning
//! replicas resynced online, and after a host crash the regions of the write-intent log made identical before
//! serving. `dvsan-host serve` runs it.
//!
//! # Module map
//!
//! Bottom-up; a module imports only from the ones above it in this list:
//!
//! 1. [`target`]: where a replica is ([`ReplicaTarget`], `nbd://IP:PORT/EXPORT`); [`tls`]: the rustls client
//!    configuration from the host's certificate directory. Neither imports from this crate.
//! 2. [`dirty`]: a replica's dirty bitmap and its file; [`gate`]: writes and the resync copy of a region kept
//!    apart. Neither imports from this crate. Then [`intent`]: the write-intent log (a bitmap file, uses dirty).
//! 3. [`upstream`]: one replica's pipelined connection (plain or TLS), reconnecting within the window (uses
//!    target).
//! 4. [`mirror`]: replica states, where each request goes, online resync, recovery after a host crash (uses
//!    dirty, gate, intent, upstream).
//! 5. [`server`]: the local NBD server (handshake, transmission) over the mirror.
//! 6. [`service`]: the hub: start the replicas and the listener ([`Front`]).

pub mod dirty;
pub mod gate;
pub mod intent;
pub mod mirror;
pub mod server;
pub mod service;
pub mod target;
pub mod tls;
pub mod upstream;

pub use mirror::{Mirror, ReplicaState, ReplicaStatus};
pub use service::{Front, FrontConfig, FrontError, Listen};
pub use target::ReplicaTarget;
