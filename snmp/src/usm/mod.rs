//! SNMPv3 User-based Security Model (RFC 3414) and the v3 message format (RFC 3412), shared by the
//! agent (authoritative side) and managers.
//!
//! - [`crypto`]: keys from passphrases, localisation, HMAC authentication, AES-128-CFB privacy.
pub mod crypto;
pub mod engine;
pub mod user;
pub mod wire;
