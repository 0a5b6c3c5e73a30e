//! The NBD protocol, separate from any backend.
//!
//! [`handshake`] and [`transmission`] hold the message types with pure encoders and decoders over byte buffers:
//! they never panic on any input and refuse oversized lengths before allocating, so they are what the fuzz targets
//! exercise. [`validate`] checks a request against what a connection negotiated (the server's first step for
//! each request). [`client`] is a small async client on top, used by blockd's tests and the host tools.
//!
//! # Module map
//!
//! Bottom-up; a module imports only from the ones above it in this list:
//!
//! 1. [`constants`]: the protocol's numbers. Imports nothing from this crate.
//! 2. `error` ([`DecodeError`]), then `wire`: bounds-checked reading and the NBD string rules.
//! 3. [`transmission`]: requests, replies and chunks; then [`handshake`] (its export info carries transmission
//!    flags) and [`validate`] (checks transmission requests).
//! 4. [`client`]: the async client over all of them.

pub mod client;
pub mod constants;
mod error;
pub mod handshake;
pub mod transmission;
pub mod validate;
mod wire;

pub use client::{ClientError, ClientHandshake, ConnectOptions, ExportInfo, NbdClient, ZeroFlags};
pub use error::DecodeError;
pub use handshake::{BlockSize, ClientFlags, ClientOption, ExportListing, Info, InfoRequest, OptionHeader};
pub use transmission::{Errno, RequestHeader, TransmissionFlags};
pub use validate::{validate_request, Command, ExportLimits, Refusal};
