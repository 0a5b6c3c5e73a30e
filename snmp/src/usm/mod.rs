//! SNMPv3 User-based Security Model (RFC 3414) and the v3 message format (RFC 3412), shared by the
//! agent (authoritative side) and managers.
//!
//! - [`crypto`]: keys from passphrases, localisation, HMAC authentication, AES-128-CFB privacy.
//! - [`engine`]: the local engine id, boots and time, kept in a state directory.
//! - [`user`]: users and the users file; [`wire`]: the v3 message codec.

pub mod crypto;
pub mod engine;
pub mod user;
pub mod wire;

pub use crypto::{AuthProtocol, PrivProtocol};
pub use engine::{Engine, EngineId};
pub use user::{LocalUser, SecurityLevel, UserAccess, UsersFile, UsmUser};
pub use wire::{decode_v3, encode_v3, encode_v3_pdu, Keys, V3Message};
