//! Notification receiver: SNMPv1 traps, SNMPv2 traps and informs, and SNMPv3 (USM) traps and informs, on
//! one UDP socket.
//!
//! Every notification comes out in v2 form: sysUpTime, snmpTrapOID and the remaining varbinds.
//! v1 traps are translated per RFC 3584 §3.1 (generic traps 0..=5 become `snmpTraps.(g+1)`,
//! enterpriseSpecific becomes `enterprise.0.specific`) and keep their v1 fields in
//! [`Notification::v1`]; the RFC 3584 snmpTrapAddress/Community/Enterprise varbinds are not
//! appended. Informs are acknowledged only when the caller says so
//! ([`NotificationReceiver::acknowledge`]), e.g. after storing them. Bad datagrams are counted
//! and reported as [`ReceiveError`]s carrying the source; they never stop the receiver.
//!
//! # SNMPv3
//!
//! A receiver made [`NotificationReceiver::with_users`] (or [`NotificationReceiver::with_usm`]) accepts v3
//! notifications from the users a [`UserLookup`] gives, authenticated at exactly the level of the user's
//! keys (noAuthNoPriv v3 notifications are refused). RFC 3414 decides whose engine is authoritative:
//! - traps: the sender's. The lookup is by (sender engine id, user name), so one station can hold the
//!   users of many units, and the user's keys are localised to the sender's engine. A replay guard keeps
//!   each sender engine's boots and latest time (§3.2 step 7b as a non-authoritative receiver): a trap
//!   from earlier boots or more than 150 s older than that engine's known time is refused.
//! - informs: this receiver's own engine (boots and time checked as an agent checks requests). Inform
//!   senders first discover the engine: a reportable message for any other engine id is answered with a
//!   usmStatsUnknownEngineIDs Report carrying ours. Refused informs get the Report naming the reason,
//!   like an agent's; the acknowledgement of an accepted one is a v3 Response at its level.
//!
//! Accepted v3 notifications carry the user in [`Notification::security_name`] and
//! [`Notification::authenticated`] = true; refusals are counted per reason and returned as
//! [`ReceiveError::Refused`].

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::net::UdpSocket;

use crate::agent::{SNMP_TRAPS, SNMP_TRAP_OID_0, SYS_UP_TIME_0, TIME_WINDOW, USM_STATS};
use crate::ber::BerWriter;
use crate::manager::RemoteEngine;
use crate::message::{decode, encode_into, encode_pdu, DecodeError, Message, Version};
use crate::notify::notification_varbinds;
use crate::oid::Oid;
use crate::pdu::{ErrorStatus, GenericPdu, Pdu, TrapV1Pdu, VarBind};
use crate::usm::engine::{DVSAN_ENTERPRISE, MAX_ENGINE_VALUE};
use crate::usm::wire::{self, Head, Keys, ScopedData, V3DecodeError, V3Message};
use crate::usm::{Engine, EngineId, LocalUser, SecurityLevel, UsersFile, UsmUser};
use crate::value::Value;

/// Informs waiting for their v3 acknowledgement, at most (the oldest is forgotten beyond).
const MAX_PENDING_V3_ACKS: usize = 4096;

/// Sender engines whose clocks the replay guard keeps, at most (all are forgotten beyond: only
/// authenticated traps add one).
const MAX_SENDER_ENGINES: usize = 100_000;

/// Which PDU carried a notification.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum NotificationKind {
    TrapV1,
    TrapV2,
    Inform,
}

/// The v1-only fields of a translated SNMPv1 trap.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TrapV1Info {
    pub enterprise: Oid,
    pub agent_addr: [u8; 4],
    pub generic_trap: u32,
    pub specific_trap: u32,
}

/// A received notification, in SNMPv2 form.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Notification {
    pub from: SocketAddr,
    pub version: Version,
    pub community: Vec<u8>,
    pub kind: NotificationKind,
    /// The PDU's request-id (0 for v1 traps, which have none).
    pub request_id: i32,
    /// sysUpTime.0 of the originator (the v1 time-stamp).
    pub uptime: u32,
    /// snmpTrapOID.0 (translated for v1 traps).
    pub trap_oid: Oid,
    /// The varbinds after sysUpTime.0 and snmpTrapOID.0.
    pub varbinds: Vec<VarBind>,
    /// Present for v1 traps.
    pub v1: Option<TrapV1Info>,
    /// The USM user of a v3 notification (`None` for v1 and v2c, whose community is in `community`).
    pub security_name: Option<String>,
    /// Whether the notification carried a verified digest of `security_name`'s key (v3 only: v1 and v2c
    /// are never authenticated).
    pub authenticated: bool,
}

/// A datagram that did not yield a notification.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    #[error("socket error: {0}")]
    Io(#[from] io::Error),
    #[error("malformed notification from {from}: {error}")]
    Malformed { from: SocketAddr, error: DecodeError },
    /// Well-formed SNMP, but not a notification, or a v2 notification without sysUpTime.0 and
    /// snmpTrapOID.0 as its first two varbinds.
    #[error("unexpected {what} from {from}")]
    Unexpected { from: SocketAddr, what: &'static str },
    /// An SNMPv3 message the User-based Security Model refused (counted per reason).
    #[error("SNMPv3 notification from {from} refused: {reason}")]
    Refused { from: SocketAddr, reason: UsmRefusal },
}

/// Why an SNMPv3 notification was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UsmRefusal {
    /// The receiver has no users (it was not made with [`NotificationReceiver::with_users`]).
    #[error("this receiver takes no SNMPv3 notifications")]
    NotConfigured,
    #[error("unknown engine ID")]
    UnknownEngineId,
    #[error("unknown user name")]
    UnknownUserName,
    /// Another level than the user's keys give (noAuthNoPriv always).
    #[error("security level not accepted for the user")]
    UnsupportedSecLevel,
    #[error("wrong digest (another key)")]
    WrongDigest,
    #[error("outside the time window (replayed or delayed)")]
    NotInTimeWindow,
    #[error("decryption error")]
    DecryptionError,
}

impl UsmRefusal {
    /// The usmStats counter arc (usmStats.N) of the Report an agent would send.
    fn usm_stats_arc(self) -> Option<u32> {
        match self {
            UsmRefusal::NotConfigured => None,
            UsmRefusal::UnsupportedSecLevel => Some(1),
            UsmRefusal::NotInTimeWindow => Some(2),
            UsmRefusal::UnknownUserName => Some(3),
            UsmRefusal::UnknownEngineId => Some(4),
            UsmRefusal::WrongDigest => Some(5),
            UsmRefusal::DecryptionError => Some(6),
        }
    }
}

/// The users whose SNMPv3 notifications a receiver accepts.
pub trait UserLookup: Send + Sync {
    /// The user called `name` for messages whose authoritative engine is `engine_id` (the sender's for
    /// traps, the receiver's own for informs), if notifications from it are accepted.
    fn find(&self, engine_id: &[u8], name: &str) -> Option<UsmUser>;
}

/// The same users for every engine.
impl UserLookup for Vec<UsmUser> {
    fn find(&self, _engine_id: &[u8], name: &str) -> Option<UsmUser> {
        self.iter().find(|u| u.name() == name).cloned()
    }
}

/// The same users for every engine.
impl UserLookup for UsersFile {
    fn find(&self, _engine_id: &[u8], name: &str) -> Option<UsmUser> {
        UsersFile::find(self, name).cloned()
    }
}

/// A function of (engine id, user name).
impl<F: Fn(&[u8], &str) -> Option<UsmUser> + Send + Sync> UserLookup for F {
    fn find(&self, engine_id: &[u8], name: &str) -> Option<UsmUser> {
        self(engine_id, name)
    }
}

/// Receiver statistics.
#[derive(Debug, Default)]
pub struct ReceiverCounters {
    /// Datagrams read.
    pub datagrams: AtomicU64,
    /// Notifications returned.
    pub notifications: AtomicU64,
    /// Datagrams that failed to decode (ASN.1/BER errors, bad versions).
    pub parse_errors: AtomicU64,
    /// Decodable datagrams that were not acceptable notifications.
    pub unexpected: AtomicU64,
    /// Inform acknowledgements sent.
    pub acks: AtomicU64,
    /// SNMPv3 messages refused, per reason (the usmStats of RFC 3414, as seen by this receiver).
    pub usm_unsupported_sec_levels: AtomicU64,
    pub usm_not_in_time_windows: AtomicU64,
    pub usm_unknown_user_names: AtomicU64,
    pub usm_unknown_engine_ids: AtomicU64,
    pub usm_wrong_digests: AtomicU64,
    pub usm_decryption_errors: AtomicU64,
    /// Report PDUs sent (discovery answers and refused informs).
    pub reports: AtomicU64,
}

impl ReceiverCounters {
    fn refused(&self, reason: UsmRefusal) -> Option<&AtomicU64> {
        Some(match reason {
            UsmRefusal::NotConfigured => return None,
            UsmRefusal::UnsupportedSecLevel => &self.usm_unsupported_sec_levels,
            UsmRefusal::NotInTimeWindow => &self.usm_not_in_time_windows,
            UsmRefusal::UnknownUserName => &self.usm_unknown_user_names,
            UsmRefusal::UnknownEngineId => &self.usm_unknown_engine_ids,
            UsmRefusal::WrongDigest => &self.usm_wrong_digests,
            UsmRefusal::DecryptionError => &self.usm_decryption_errors,
        })
    }
}

/// What the v3 acknowledgement of an accepted inform needs.
struct InformAck {
    msg_id: i32,
    user: LocalUser,
    level: SecurityLevel,
    context_engine_id: Vec<u8>,
    context_name: Vec<u8>,
}

/// An inform's source and request-id.
type InformKey = (SocketAddr, i32);

/// The receiver's engine (authoritative for informs) and the v3 informs not acknowledged yet (with their
/// arrival order, for forgetting the oldest).
struct V3Acks {
    engine: Engine,
    pending: Mutex<(HashMap<InformKey, InformAck>, VecDeque<InformKey>)>,
}

impl V3Acks {
    fn remember(&self, key: InformKey, ack: InformAck) {
        let mut guard = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let (map, order) = &mut *guard;
        if map.insert(key, ack).is_none() {
            order.push_back(key);
        }
        while order.len() > MAX_PENDING_V3_ACKS {
            if let Some(old) = order.pop_front() {
                map.remove(&old);
            }
        }
    }

    fn take(&self, key: InformKey) -> Option<InformAck> {
        let mut guard = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let (map, order) = &mut *guard;
        let ack = map.remove(&key)?;
        order.retain(|k| *k != key);
        Some(ack)
    }
}

/// A receiver's SNMPv3 state.
struct ReceiverUsm {
    lookup: Arc<dyn UserLookup>,
    acks: Arc<V3Acks>,
    /// The replay guard: each sender engine's boots and latest time.
    senders: HashMap<Vec<u8>, RemoteEngine>,
}

/// Sends inform acknowledgements; cheap to clone and usable from another task.
#[derive(Clone)]
pub struct Acknowledger {
    socket: Arc<UdpSocket>,
    counters: Arc<ReceiverCounters>,
    v3: Option<Arc<V3Acks>>,
}

impl Acknowledger {
    /// Acknowledges `notification` if it is an inform (Response-PDU echoing its varbinds);
    /// does nothing for traps.
    pub async fn acknowledge(&self, notification: &Notification) -> io::Result<()> {
        if notification.kind != NotificationKind::Inform {
            return Ok(());
        }
        if notification.version == Version::V3 {
            return self.acknowledge_v3(notification).await;
        }
        let msg = Message {
            version: notification.version,
            community: notification.community.clone(),
            pdu: Pdu::Response(GenericPdu {
                request_id: notification.request_id,
                error_status: ErrorStatus::NoError,
                error_index: 0,
                varbinds: notification_varbinds(
                    notification.uptime,
                    &notification.trap_oid,
                    notification.varbinds.clone(),
                ),
            }),
        };
        let mut out = Vec::with_capacity(256);
        encode_into(&msg, &mut out);
        self.socket.send_to(&out, notification.from).await?;
        self.counters.acks.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// The v3 Response to an inform (RFC 3412 §7.1 step 3): same msgID, level and context, signed (and
    /// encrypted) with the user's keys for this receiver's engine. An inform not received here, or
    /// acknowledged already, is ignored.
    async fn acknowledge_v3(&self, notification: &Notification) -> io::Result<()> {
        let Some(ack) = self.v3.as_ref().and_then(|v3| v3.take((notification.from, notification.request_id))) else {
            tracing::debug!(from = %notification.from, "no SNMPv3 inform to acknowledge");
            return Ok(());
        };
        let Some(v3) = &self.v3 else { return Ok(()) };
        let pdu = Pdu::Response(GenericPdu {
            request_id: notification.request_id,
            error_status: ErrorStatus::NoError,
            error_index: 0,
            varbinds: notification_varbinds(notification.uptime, &notification.trap_oid, notification.varbinds.clone()),
        });
        let head = Head {
            msg_id: ack.msg_id,
            max_size: 65507,
            reportable: false,
            engine_id: v3.engine.id().as_bytes(),
            boots: v3.engine.boots(),
            time: v3.engine.time(),
            user_name: ack.user.name.as_bytes(),
            context_engine_id: &ack.context_engine_id,
            context_name: &ack.context_name,
        };
        let out = wire::encode_v3_pdu(&head, Keys::of(&ack.user, ack.level).as_ref(), &pdu)
            .map_err(|e| io::Error::other(e.to_string()))?;
        self.socket.send_to(&out, notification.from).await?;
        self.counters.acks.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Receives notifications on a bound UDP socket.
pub struct NotificationReceiver {
    socket: Arc<UdpSocket>,
    buf: Vec<u8>,
    counters: Arc<ReceiverCounters>,
    usm: Option<ReceiverUsm>,
}

impl NotificationReceiver {
    /// Binds to `addr` (e.g. `0.0.0.0:162`).
    pub async fn bind(addr: SocketAddr) -> io::Result<NotificationReceiver> {
        Ok(NotificationReceiver::from_socket(UdpSocket::bind(addr).await?))
    }

    /// Uses an already bound socket.
    pub fn from_socket(socket: UdpSocket) -> NotificationReceiver {
        NotificationReceiver {
            socket: Arc::new(socket),
            buf: vec![0u8; 65536],
            counters: Arc::new(ReceiverCounters::default()),
            usm: None,
        }
    }

    /// The same receiver, accepting SNMPv3 notifications from `users`, with `engine` as its own
    /// (authoritative for informs: keep it in a state directory, [`Engine::load_or_create`], so senders'
    /// cached discoveries stay valid). Take acknowledgers after this.
    pub fn with_usm(mut self, engine: Engine, users: impl UserLookup + 'static) -> NotificationReceiver {
        let acks = Arc::new(V3Acks { engine, pending: Mutex::new((HashMap::new(), VecDeque::new())) });
        self.usm = Some(ReceiverUsm { lookup: Arc::new(users), acks, senders: HashMap::new() });
        self
    }

    /// [`NotificationReceiver::with_usm`] with a new random engine id in its first boot.
    pub fn with_users(self, users: impl UserLookup + 'static) -> NotificationReceiver {
        let id = EngineId::random(DVSAN_ENTERPRISE).unwrap_or_else(|_| {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            EngineId::from_text(DVSAN_ENTERPRISE, &format!("rx-{}-{}", std::process::id(), now.as_nanos()))
        });
        self.with_usm(Engine::new(id, 1), users)
    }

    /// This receiver's own engine (authoritative for v3 informs), when it takes v3.
    pub fn engine(&self) -> Option<&Engine> {
        self.usm.as_ref().map(|u| &u.acks.engine)
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// The statistics.
    pub fn counters(&self) -> &Arc<ReceiverCounters> {
        &self.counters
    }

    /// A handle for acknowledging informs from elsewhere.
    pub fn acknowledger(&self) -> Acknowledger {
        Acknowledger {
            socket: Arc::clone(&self.socket),
            counters: Arc::clone(&self.counters),
            v3: self.usm.as_ref().map(|u| Arc::clone(&u.acks)),
        }
    }

    /// Acknowledges an inform (see [`Acknowledger::acknowledge`]).
    pub async fn acknowledge(&self, notification: &Notification) -> io::Result<()> {
        self.acknowledger().acknowledge(notification).await
    }

    /// Waits for the next datagram and returns it as a notification or as the reason it is not
    /// one (`Err` values other than `Io` concern only that datagram).
    pub async fn recv(&mut self) -> Result<Notification, ReceiveError> {
        loop {
            let (len, from) = self.socket.recv_from(&mut self.buf).await?;
            if let Some(result) = self.parse(len, from) {
                return result;
            }
        }
    }

    /// Waits for at least one datagram, then also takes those already queued, up to `max` in
    /// all, appending the outcomes to `out`. Returns how many were appended.
    pub async fn recv_many(&mut self, out: &mut Vec<Result<Notification, ReceiveError>>, max: usize) -> usize {
        if max == 0 {
            return 0;
        }
        out.push(self.recv().await);
        let mut n = 1;
        while n < max {
            match self.socket.try_recv_from(&mut self.buf) {
                Ok((len, from)) => match self.parse(len, from) {
                    Some(result) => out.push(result),
                    None => continue,
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => out.push(Err(ReceiveError::Io(e))),
            }
            n += 1;
        }
        n
    }

    /// The outcome of one datagram; `None` when it was handled here (a discovery probe answered).
    fn parse(&mut self, len: usize, from: SocketAddr) -> Option<Result<Notification, ReceiveError>> {
        self.counters.datagrams.fetch_add(1, Ordering::Relaxed);
        let datagram = &self.buf[..len];
        let result = match parse_notification(datagram, from) {
            Err(ReceiveError::Malformed { error: DecodeError::BadVersion, .. }) => match &mut self.usm {
                Some(usm) => v3_notification(usm, &self.socket, &self.counters, datagram, from)?,
                None => Err(ReceiveError::Refused { from, reason: UsmRefusal::NotConfigured }),
            },
            other => other,
        };
        let counter = match &result {
            Ok(_) => &self.counters.notifications,
            Err(ReceiveError::Malformed { .. }) => &self.counters.parse_errors,
            Err(ReceiveError::Refused { reason, .. }) => {
                self.counters.refused(*reason).unwrap_or(&self.counters.unexpected)
            }
            Err(_) => &self.counters.unexpected,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Some(result)
    }
}

/// RFC 3414 §3.2 for a v3 notification (see the module documentation): the notification, a refusal
/// (answered with a Report when the message is reportable), or `None` for a discovery probe answered.
fn v3_notification(
    usm: &mut ReceiverUsm,
    socket: &UdpSocket,
    counters: &ReceiverCounters,
    datagram: &[u8],
    from: SocketAddr,
) -> Option<Result<Notification, ReceiveError>> {
    let malformed = |why: &'static str| Some(Err(ReceiveError::Malformed { from, error: DecodeError::Malformed(why) }));
    let msg = match wire::decode_v3(datagram) {
        Ok(m) => m,
        Err(V3DecodeError::NotV3) => {
            return Some(Err(ReceiveError::Malformed { from, error: DecodeError::BadVersion }));
        }
        Err(V3DecodeError::UnknownSecurityModel(_)) => return malformed("SNMPv3 security model is not USM"),
        Err(V3DecodeError::Malformed(why)) => return malformed(why),
    };
    let Some(level) = msg.level() else { return malformed("SNMPv3 privacy without authentication") };
    let acks = Arc::clone(&usm.acks);
    let for_us = msg.usm.engine_id == acks.engine.id().as_bytes();
    let reportable = msg.global.flags.reportable;
    let refuse = |reason: UsmRefusal, user: Option<&LocalUser>| {
        if reportable {
            send_report(&acks.engine, socket, counters, &msg, reason, user, from);
        }
        Some(Err(ReceiveError::Refused { from, reason }))
    };
    if !for_us && reportable {
        // An inform sender's discovery probe (empty engine id), or an inform for another engine.
        let probe = msg.usm.engine_id.is_empty() && level == SecurityLevel::NoAuthNoPriv;
        let _ = refuse(UsmRefusal::UnknownEngineId, None);
        if probe {
            counters.usm_unknown_engine_ids.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        return Some(Err(ReceiveError::Refused { from, reason: UsmRefusal::UnknownEngineId }));
    }
    if level == SecurityLevel::NoAuthNoPriv {
        return refuse(UsmRefusal::UnsupportedSecLevel, None);
    }
    let Ok(engine_id) = EngineId::new(msg.usm.engine_id.clone()) else {
        return refuse(UsmRefusal::UnknownEngineId, None);
    };
    let Some(user) =
        std::str::from_utf8(&msg.usm.user_name).ok().and_then(|name| usm.lookup.find(engine_id.as_bytes(), name))
    else {
        return refuse(UsmRefusal::UnknownUserName, None);
    };
    if user.level() != level {
        return refuse(UsmRefusal::UnsupportedSecLevel, None);
    }
    let local = user.localize(&engine_id);
    if !msg.authenticates(datagram, &local) {
        return refuse(UsmRefusal::WrongDigest, None);
    }
    let in_window = if for_us {
        let engine = &usm.acks.engine;
        engine.boots() != MAX_ENGINE_VALUE
            && msg.usm.boots == engine.boots()
            && msg.usm.time.abs_diff(engine.time()) <= TIME_WINDOW
    } else {
        if usm.senders.len() >= MAX_SENDER_ENGINES && !usm.senders.contains_key(&msg.usm.engine_id) {
            usm.senders.clear();
        }
        usm.senders
            .entry(msg.usm.engine_id.clone())
            .or_insert_with(|| RemoteEngine {
                id: engine_id.clone(),
                boots: msg.usm.boots,
                latest_time: msg.usm.time,
                synced: Instant::now(),
            })
            .note(msg.usm.boots, msg.usm.time)
    };
    if !in_window {
        return refuse(UsmRefusal::NotInTimeWindow, Some(&local));
    }
    let Ok(scoped) = msg.decrypt_scoped_pdu(&local) else {
        return refuse(UsmRefusal::DecryptionError, None);
    };
    let (kind, p) = match scoped.pdu {
        Pdu::TrapV2(p) if !for_us => (NotificationKind::TrapV2, p),
        Pdu::Inform(p) if for_us => (NotificationKind::Inform, p),
        other => return Some(Err(ReceiveError::Unexpected { from, what: other.type_name() })),
    };
    let request_id = p.request_id;
    let mut n = match v2_notification(from, Version::V3, Vec::new(), kind, p) {
        Ok(n) => n,
        Err(e) => return Some(Err(e)),
    };
    n.security_name = Some(local.name.clone());
    n.authenticated = true;
    if kind == NotificationKind::Inform {
        let ack = InformAck {
            msg_id: msg.global.msg_id,
            user: local,
            level,
            context_engine_id: scoped.context_engine_id,
            context_name: scoped.context_name,
        };
        usm.acks.remember((from, request_id), ack);
    }
    Some(Ok(n))
}

/// The Report an agent would send for `reason` (RFC 3414 §3.2): usmStats.N.0 with this receiver's
/// count, from this receiver's engine, signed only for a time-window refusal of a known user.
fn send_report(
    engine: &Engine,
    socket: &UdpSocket,
    counters: &ReceiverCounters,
    msg: &V3Message,
    reason: UsmRefusal,
    user: Option<&LocalUser>,
    from: SocketAddr,
) {
    let (Some(arc), Some(counter)) = (reason.usm_stats_arc(), counters.refused(reason)) else { return };
    let request_id = match &msg.data {
        ScopedData::Plain(s) => s.pdu.request_id().unwrap_or(0),
        ScopedData::Encrypted(_) => 0,
    };
    let oid = Oid::from_slice(&USM_STATS).join(&[arc, 0]);
    // The counter counts this refusal too (it is bumped when the outcome is counted).
    let count = counter.load(Ordering::Relaxed).wrapping_add(1) as u32;
    let pdu = Pdu::Report(GenericPdu::request(request_id, vec![VarBind::new(oid, Value::Counter32(count))]));
    let mut tlv = Vec::with_capacity(64);
    encode_pdu(&mut BerWriter::new(&mut tlv), &pdu);
    let head = Head {
        msg_id: msg.global.msg_id,
        max_size: 65507,
        reportable: false,
        engine_id: engine.id().as_bytes(),
        boots: engine.boots(),
        time: engine.time(),
        user_name: &msg.usm.user_name,
        context_engine_id: engine.id().as_bytes(),
        context_name: b"",
    };
    let keys = user.and_then(|u| Keys::of(u, SecurityLevel::AuthNoPriv));
    let mut out = Vec::with_capacity(160);
    if wire::encode_v3(&head, keys.as_ref(), &tlv, &mut out).is_err() {
        return;
    }
    match socket.try_send_to(&out, from) {
        Ok(_) => {
            counters.reports.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => tracing::debug!(%from, error = %e, "SNMPv3 report not sent"),
    }
}

/// Decodes one datagram as a notification (the receiver's logic, usable on its own).
pub fn parse_notification(datagram: &[u8], from: SocketAddr) -> Result<Notification, ReceiveError> {
    let msg = decode(datagram).map_err(|error| ReceiveError::Malformed { from, error })?;
    let Message { version, community, pdu } = msg;
    let (kind, p) = match pdu {
        Pdu::TrapV1(t) => return Ok(from_v1(from, community, t)),
        Pdu::TrapV2(p) => (NotificationKind::TrapV2, p),
        Pdu::Inform(p) => (NotificationKind::Inform, p),
        other => return Err(ReceiveError::Unexpected { from, what: other.type_name() }),
    };
    v2_notification(from, version, community, kind, p)
}

/// A v2-form notification PDU (sysUpTime.0 and snmpTrapOID.0 first) as a [`Notification`].
fn v2_notification(
    from: SocketAddr,
    version: Version,
    community: Vec<u8>,
    kind: NotificationKind,
    p: GenericPdu,
) -> Result<Notification, ReceiveError> {
    let mut varbinds = p.varbinds.into_iter();
    let uptime = match varbinds.next() {
        Some(VarBind { oid, value: Value::TimeTicks(t) }) if oid.as_slice() == SYS_UP_TIME_0 => t,
        _ => return Err(ReceiveError::Unexpected { from, what: "notification without sysUpTime.0 first" }),
    };
    let trap_oid = match varbinds.next() {
        Some(VarBind { oid, value: Value::ObjectId(t) }) if oid.as_slice() == SNMP_TRAP_OID_0 => t,
        _ => return Err(ReceiveError::Unexpected { from, what: "notification without snmpTrapOID.0 second" }),
    };
    Ok(Notification {
        from,
        version,
        community,
        kind,
        request_id: p.request_id,
        uptime,
        trap_oid,
        varbinds: varbinds.collect(),
        v1: None,
        security_name: None,
        authenticated: false,
    })
}

/// RFC 3584 §3.1 translation of the trap identity.
pub fn v1_trap_oid(enterprise: &Oid, generic_trap: u32, specific_trap: u32) -> Oid {
    if generic_trap == 6 {
        enterprise.join(&[0, specific_trap])
    } else {
        Oid::from_slice(&SNMP_TRAPS).child(generic_trap.saturating_add(1))
    }
}

fn from_v1(from: SocketAddr, community: Vec<u8>, t: TrapV1Pdu) -> Notification {
    Notification {
        from,
        version: Version::V1,
        community,
        kind: NotificationKind::TrapV1,
        request_id: 0,
        uptime: t.timestamp,
        trap_oid: v1_trap_oid(&t.enterprise, t.generic_trap, t.specific_trap),
        varbinds: t.varbinds,
        v1: Some(TrapV1Info {
            enterprise: t.enterprise,
            agent_addr: t.agent_addr,
            generic_trap: t.generic_trap,
            specific_trap: t.specific_trap,
        }),
        security_name: None,
        authenticated: false,
    }
}
