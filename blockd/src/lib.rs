//! dvsan-blockd: the SAN unit's data service, an NBD server for the unit's volumes and partitions.
//!
//! The layout (exports, grants, media) comes from the unit store the agent owns; blockd only reads it, polling
//! its change counter, and writes back traffic counters and a heartbeat. [`service::run`] is the whole server;
//! the binary adds the command line, logging and signal handling around it.

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
pub mod traffic;
mod transmission;

pub use large_reads::LargeReads;
pub use service::{run, Config, ServiceError};
