//! dvsan's SNMP engine (SNMPv1, SNMPv2c and SNMPv3 with USM), shared by the unit agent, the station
//! and the console.
//!
//! - [`oid`], [`value`], [`pdu`], [`message`]: the data model; [`message::decode`] (built on
//!   snmp-parser) and [`message::encode`] (our [`ber`] writer) convert it to and from datagrams.
//! - [`usm`]: SNMPv3 (RFC 3412 message format, RFC 3414 User-based Security Model with the RFC 7860
//!   HMAC-SHA-2 and RFC 3826 AES protocols): [`usm::crypto`], users files ([`usm::user`]), the local
//!   engine's id/boots/time ([`usm::engine`]) and the v3 message codec ([`usm::wire`]).
//! - [`agent`]: request processing over a registry of [`agent::MibHandler`]s, with the
//!   SNMPv2-MIB `system` and `snmp` groups built in, and a tokio UDP server; communities with read and
//!   write views ([`agent::Community`]) and the requester context handlers read ([`agent::Requester`]).
//! - [`manager`]: async Get/GetNext/GetBulk/Set/walk client with request-id matching.
//! - [`notify`]: sending traps and informs; [`receiver`]: receiving them.
//! - [`endpoint`]: the addresses people type for SNMP endpoints (IP or host name, optional port).
//! - [`date_and_time`]: RFC 2579 DateAndTime values to and from Unix time.
//! - [`testing`]: a malformed-datagram corpus for robustness tests.
//!
//! # Module map
//!
//! Bottom-up; a module imports only from modules listed before it:
//!
//! 1. Leaves, importing nothing from this crate: [`oid`], [`counters`], [`uptime`], [`date_and_time`].
//! 2. The data model: [`value`], then [`pdu`] and the [`ber`] writer, then [`message`] (the datagram codec),
//!    then [`usm`] (the v3 codec and security on top of it; inside, `crypto` and `engine` are leaves, `user`
//!    uses both, `wire` uses all three).
//! 3. The engines, each on the codec: [`agent`], [`manager`], and the [`testing`] corpus.
//! 4. [`notify`] (sending traps and informs, through the manager; it takes the notification OIDs from the
//!    agent's SNMPv2-MIB), then [`receiver`] (which shares notify's varbind layout).

pub mod agent;
pub mod ber;
pub mod counters;
pub mod date_and_time;
pub mod endpoint;
pub mod manager;
pub mod message;
pub mod notify;
pub mod oid;
pub mod pdu;
pub mod receiver;
pub mod testing;
pub mod uptime;
pub mod usm;
pub mod value;

pub use agent::{Agent, AgentConfig, GetResult, MibHandler, PreparedSet, SetFailure, Undo};
pub use counters::SnmpCounters;
pub use date_and_time::{DateAndTime, DateAndTimeError};
pub use endpoint::{resolve_address, AddressError, Endpoint, Host};
pub use manager::{Manager, RequestOptions, SnmpError, Target};
pub use message::{decode, encode, DecodeError, Message, Version};
pub use notify::NotificationSender;
pub use oid::Oid;
pub use pdu::{BulkPdu, ErrorStatus, GenericPdu, Pdu, TrapV1Pdu, VarBind};
pub use receiver::{Notification, NotificationKind, NotificationReceiver, ReceiveError};
pub use uptime::Uptime;
pub use value::Value;
