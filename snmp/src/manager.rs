//! The manager (command generator): async Get, GetNext, GetBulk, Set and walk over one UDP
//! socket, in SNMPv1, SNMPv2c and SNMPv3 with USM.
//!
//! A background task reads every datagram arriving on the socket and hands each Response to the
//! request waiting for its request-id (v3: its msgID, which this manager makes equal), so any number
//! of tasks can have requests in flight at once. Responses from an address other than the request's
//! target, with unknown ids, that fail to decode or (v3) fail authentication or decryption are dropped
//! (logged at debug). Requests are retransmitted unchanged (same id) after each timeout, `retries`
//! times.
//!
//! # SNMPv3 (the non-authoritative side of RFC 3414)
//!
//! A [`Target::v3`] names a [`UsmUser`]. Before the first request to an address the manager discovers
//! the agent's engine (a noAuthNoPriv probe with an empty engine id, answered by a Report carrying the
//! agent's snmpEngineID, boots and time; [`Manager::discover`]), caches it per address
//! ([`Manager::engine`]), localises the user's keys to it and keeps an estimate of the agent's engine
//! time (RFC 3414 §2.3: the latest received boots/time plus the time since). Authenticated answers move
//! the estimate forward (§3.2 step 7b); an authenticated answer older than the window is dropped as a
//! replay. A usmStatsNotInTimeWindows Report signed with the user's key resynchronises the estimate and
//! the request is sent once more; a usmStatsUnknownEngineIDs Report (the agent got a new engine id)
//! rediscovers once. Every other Report ends the request with [`SnmpError::Usm`] naming the cause
//! ([`UsmFailure`]). The usmStats OIDs and the 150 s window come from the agent module.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::agent::{TIME_WINDOW, USM_STATS};
use crate::ber::BerWriter;
use crate::message::{decode, encode, encode_pdu, DecodeError, Message, Version};
use crate::oid::Oid;
use crate::pdu::{BulkPdu, ErrorStatus, GenericPdu, Pdu, VarBind};
use crate::usm::crypto::CryptoError;
use crate::usm::engine::MAX_ENGINE_VALUE;
use crate::usm::wire::{self, Head, Keys, ScopedData, V3DecodeError};
use crate::usm::{EngineId, LocalUser, SecurityLevel, UsmUser};
use crate::value::Value;

/// msgMaxSize of this manager's v3 requests: the largest UDP payload over IPv4.
const V3_MAX_SIZE: u32 = 65507;

/// How a request is sent.
#[derive(Clone, Debug)]
pub struct RequestOptions {
    pub version: Version,
    /// Wait per attempt.
    pub timeout: Duration,
    /// Retransmissions after the first attempt.
    pub retries: u32,
    /// max-repetitions of the GetBulk requests [`Manager::walk`] sends (v2c).
    pub walk_max_repetitions: u32,
    /// [`Manager::walk`] fails with [`SnmpError::WalkLimit`] beyond this many varbinds.
    pub walk_limit: usize,
}

impl Default for RequestOptions {
    fn default() -> RequestOptions {
        RequestOptions {
            version: Version::V2c,
            timeout: Duration::from_secs(1),
            retries: 2,
            walk_max_repetitions: 25,
            walk_limit: 1_000_000,
        }
    }
}

/// An agent (or notification sink) and how to talk to it.
#[derive(Clone, Debug)]
pub struct Target {
    pub addr: SocketAddr,
    /// The community of v1 and v2c requests (empty for v3).
    pub community: String,
    pub options: RequestOptions,
    /// The USM user and level of v3 requests (`options.version` is then [`Version::V3`]).
    pub usm: Option<UsmCredentials>,
}

/// Who a v3 target's requests come from: a user (with its master keys; the manager localises them to
/// each engine it discovers) and the security level to use.
#[derive(Clone, Debug)]
pub struct UsmCredentials {
    pub user: Arc<UsmUser>,
    pub level: SecurityLevel,
}

impl Target {
    /// An SNMPv2c target with default options.
    pub fn new(addr: SocketAddr, community: impl Into<String>) -> Target {
        Target { addr, community: community.into(), options: RequestOptions::default(), usm: None }
    }

    /// An SNMPv3 target for `user`, at the level its keys give (authPriv with a privacy protocol, else
    /// authNoPriv; see [`Target::with_level`]), with default options.
    pub fn v3(addr: SocketAddr, user: impl Into<Arc<UsmUser>>) -> Target {
        let user = user.into();
        let level = user.level();
        let options = RequestOptions { version: Version::V3, ..RequestOptions::default() };
        Target { addr, community: String::new(), options, usm: Some(UsmCredentials { user, level }) }
    }

    /// The same v3 target at `level` (e.g. authNoPriv for an authPriv user; nothing changes for v1/v2c
    /// targets).
    pub fn with_level(mut self, level: SecurityLevel) -> Target {
        if let Some(c) = &mut self.usm {
            c.level = level;
        }
        self
    }

    /// The same target, using `version` (for v1 and v2c; a v3 target needs [`Target::v3`]).
    pub fn with_version(mut self, version: Version) -> Target {
        self.options.version = version;
        self
    }

    /// The same target, with `timeout` per attempt and `retries` retransmissions.
    pub fn with_timeout(mut self, timeout: Duration, retries: u32) -> Target {
        self.options.timeout = timeout;
        self.options.retries = retries;
        self
    }
}

/// A failed manager operation.
#[derive(Debug, thiserror::Error)]
pub enum SnmpError {
    #[error("no response after all retries")]
    Timeout,
    /// The agent answered with an error-status; `index` is the 1-based error-index.
    #[error("agent answered {status} (error-index {index})")]
    Agent { status: ErrorStatus, index: u32 },
    #[error("undecodable message: {0}")]
    Decode(#[from] DecodeError),
    #[error("socket error: {0}")]
    Io(#[from] io::Error),
    /// The response does not fit the request (e.g. wrong varbind count for a Get).
    #[error("protocol violation: {0}")]
    Protocol(&'static str),
    #[error("walk went backwards: {next} does not follow {previous}")]
    NotIncreasing { previous: Oid, next: Oid },
    #[error("walk returned more than the configured limit of varbinds")]
    WalkLimit,
    #[error("the operation is not available in SNMPv1")]
    NotInV1,
    #[error("the manager's receive task has stopped")]
    Closed,
    /// The agent refused a v3 request with a Report (see [`UsmFailure`]).
    #[error("SNMPv3 user {user:?} refused by {addr}: {reason}")]
    Usm { addr: SocketAddr, user: String, reason: UsmFailure },
    /// The agent's answer to the engine discovery probe carried no usable engine id.
    #[error("SNMPv3 engine discovery at {addr} failed: {why}")]
    Discovery { addr: SocketAddr, why: &'static str },
    /// A v3 target without a user.
    #[error("an SNMPv3 target needs a USM user")]
    NoCredentials,
    /// A v3 notification without the sender's own engine (see the notify module).
    #[error("SNMPv3 traps need the sender's own engine (snmpEngineID, boots, time)")]
    NoLocalEngine,
    #[error("cannot secure the SNMPv3 message: {0}")]
    Crypto(#[from] CryptoError),
}

/// Why an agent refused a v3 request: the usmStats counter of its Report (RFC 3414 §3.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UsmFailure {
    /// usmStatsUnsupportedSecLevels: the agent does not serve this user at the requested level.
    UnsupportedSecLevel,
    /// usmStatsNotInTimeWindows, still after one resynchronisation (or in a Report that was not signed).
    NotInTimeWindow,
    /// usmStatsUnknownUserNames: the agent has no such user.
    UnknownUserName,
    /// usmStatsUnknownEngineIDs, still after one rediscovery.
    UnknownEngineId,
    /// usmStatsWrongDigests: the authentication passphrase or protocol differs from the agent's.
    WrongDigest,
    /// usmStatsDecryptionErrors: the privacy passphrase or protocol differs from the agent's.
    DecryptionError,
    /// An authenticated answer older than the engine time window allows: a replay, dropped.
    ReplayedResponse,
    /// A Report with any other varbind (e.g. snmpUnknownContexts).
    Other(Oid),
}

impl UsmFailure {
    /// The failure a Report's first varbind names.
    pub fn of_report(oid: &Oid) -> UsmFailure {
        let arcs = oid.as_slice();
        if arcs.len() == USM_STATS.len() + 2 && arcs.starts_with(&USM_STATS) && arcs[arcs.len() - 1] == 0 {
            match arcs[USM_STATS.len()] {
                1 => return UsmFailure::UnsupportedSecLevel,
                2 => return UsmFailure::NotInTimeWindow,
                3 => return UsmFailure::UnknownUserName,
                4 => return UsmFailure::UnknownEngineId,
                5 => return UsmFailure::WrongDigest,
                6 => return UsmFailure::DecryptionError,
                _ => {}
            }
        }
        UsmFailure::Other(oid.clone())
    }
}

impl fmt::Display for UsmFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UsmFailure::UnsupportedSecLevel => {
                f.write_str("security level not served for this user (usmStatsUnsupportedSecLevels)")
            }
            UsmFailure::NotInTimeWindow => {
                f.write_str("outside the engine time window after resynchronising (usmStatsNotInTimeWindows)")
            }
            UsmFailure::UnknownUserName => f.write_str("unknown user name (usmStatsUnknownUserNames)"),
            UsmFailure::UnknownEngineId => {
                f.write_str("unknown engine ID after rediscovery (usmStatsUnknownEngineIDs)")
            }
            UsmFailure::WrongDigest => {
                f.write_str("wrong digest: the authentication passphrase or protocol differs (usmStatsWrongDigests)")
            }
            UsmFailure::DecryptionError => {
                f.write_str("decryption error: the privacy passphrase or protocol differs (usmStatsDecryptionErrors)")
            }
            UsmFailure::ReplayedResponse => f.write_str("an authenticated answer outside the time window (replayed)"),
            UsmFailure::Other(oid) => write!(f, "report {oid}"),
        }
    }
}

/// A discovered authoritative engine and this manager's notion of its clock (RFC 3414 §2.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteEngine {
    /// snmpEngineID.
    pub id: EngineId,
    /// snmpEngineBoots as last received.
    pub boots: u32,
    /// latestReceivedEngineTime.
    pub latest_time: u32,
    /// When `latest_time` was received.
    pub synced: Instant,
}

impl RemoteEngine {
    /// The estimate of the engine's snmpEngineTime now.
    pub fn time(&self) -> u32 {
        let elapsed = u32::try_from(self.synced.elapsed().as_secs()).unwrap_or(MAX_ENGINE_VALUE);
        self.latest_time.saturating_add(elapsed).min(MAX_ENGINE_VALUE)
    }

    /// RFC 3414 §3.2 step 7b: moves the notion forward for an authenticated message's `boots`/`time`,
    /// and says whether the message is inside the time window.
    pub(crate) fn note(&mut self, boots: u32, time: u32) -> bool {
        if boots > self.boots || (boots == self.boots && time > self.latest_time) {
            self.boots = boots;
            self.latest_time = time;
            self.synced = Instant::now();
        }
        !(boots == MAX_ENGINE_VALUE
            || boots < self.boots
            || (boots == self.boots && time.saturating_add(TIME_WINDOW) < self.time()))
    }
}

/// The v3 answer a waiting request receives: the PDU (decrypted), the answering engine's parameters, and
/// whether it carried the user's digest.
struct V3Reply {
    pdu: Pdu,
    engine_id: Vec<u8>,
    boots: u32,
    time: u32,
    level: SecurityLevel,
}

enum Reply {
    Community(GenericPdu),
    V3(V3Reply),
}

struct Pending {
    target: SocketAddr,
    reply: oneshot::Sender<Reply>,
    /// v3 requests: the user's keys for the target's engine (`None` for the discovery probe).
    v3: Option<Option<Arc<LocalUser>>>,
}

struct Shared {
    socket: UdpSocket,
    pending: Mutex<HashMap<i32, Pending>>,
    next_id: AtomicU32,
    /// Discovered engines by agent address.
    engines: Mutex<HashMap<SocketAddr, RemoteEngine>>,
}

/// An SNMP manager bound to one UDP socket.
pub struct Manager {
    shared: Arc<Shared>,
    receiver: JoinHandle<()>,
}

impl Drop for Manager {
    fn drop(&mut self) {
        self.receiver.abort();
    }
}

impl Manager {
    /// Binds the manager's socket to `bind` (e.g. `127.0.0.1:0`) and starts its receive task.
    pub async fn new(bind: SocketAddr) -> io::Result<Manager> {
        Ok(Manager::from_socket(UdpSocket::bind(bind).await?))
    }

    /// Uses a socket the caller bound and tuned (a larger receive buffer for many requests in flight, say) and
    /// starts the receive task. Must be called inside a tokio runtime.
    pub fn from_socket(socket: UdpSocket) -> Manager {
        // Start request-ids somewhere different on every run, so late answers to a previous
        // process's requests are unlikely to match.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.subsec_nanos() ^ d.as_secs() as u32);
        let shared = Arc::new(Shared {
            socket,
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU32::new(seed),
            engines: Mutex::new(HashMap::new()),
        });
        let receiver = tokio::spawn(receive_loop(Arc::clone(&shared)));
        Manager { shared, receiver }
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.shared.socket.local_addr()
    }

    /// A fresh request-id in 1..=i32::MAX.
    pub fn next_request_id(&self) -> i32 {
        loop {
            let id = (self.shared.next_id.fetch_add(1, Ordering::Relaxed) & 0x7FFF_FFFF) as i32;
            if id != 0 {
                return id;
            }
        }
    }

    /// Sends an encoded datagram to `to` without waiting for anything (v3 traps).
    pub async fn send_datagram(&self, to: SocketAddr, datagram: &[u8]) -> io::Result<()> {
        self.shared.socket.send_to(datagram, to).await?;
        Ok(())
    }

    /// Sends `msg` to `to` without waiting for anything (traps).
    pub async fn send(&self, to: SocketAddr, msg: &Message) -> io::Result<()> {
        self.shared.socket.send_to(&encode(msg), to).await?;
        Ok(())
    }

    /// Sends a confirmed-class `pdu` (its request-id is replaced by a fresh one) and returns the
    /// Response, retrying per `target.options`. Error-status responses are returned as they are.
    pub async fn request(&self, target: &Target, mut pdu: Pdu) -> Result<GenericPdu, SnmpError> {
        if !matches!(pdu, Pdu::Get(_) | Pdu::GetNext(_) | Pdu::Set(_) | Pdu::Inform(_) | Pdu::GetBulk(_)) {
            return Err(SnmpError::Protocol("not a confirmed-class PDU"));
        }
        if let Some(credentials) = &target.usm {
            return self.request_v3(target, credentials, pdu).await;
        }
        match target.options.version {
            Version::V3 => return Err(SnmpError::NoCredentials),
            Version::V1 if matches!(pdu, Pdu::GetBulk(_) | Pdu::Inform(_)) => return Err(SnmpError::NotInV1),
            _ => {}
        }
        let id = self.next_request_id();
        set_request_id(&mut pdu, id);
        let datagram =
            encode(&Message { version: target.options.version, community: target.community.as_bytes().to_vec(), pdu });
        match self.exchange(target, id, &datagram, None).await? {
            Reply::Community(response) => Ok(response),
            Reply::V3(_) => Err(SnmpError::Protocol("an SNMPv3 answer to a community request")),
        }
    }

    /// Sends `datagram` (whose request-id, or v3 msgID, is `id`) to the target and waits for the answer,
    /// retrying per `target.options`. `v3`: the keys to check a v3 answer with.
    async fn exchange(
        &self,
        target: &Target,
        id: i32,
        datagram: &[u8],
        v3: Option<Option<Arc<LocalUser>>>,
    ) -> Result<Reply, SnmpError> {
        let (tx, mut rx) = oneshot::channel();
        self.lock_pending().insert(id, Pending { target: target.addr, reply: tx, v3 });
        // Removes the pending entry however this function ends (including cancellation).
        let _cleanup = PendingGuard { shared: &self.shared, id };
        for _attempt in 0..=target.options.retries {
            self.shared.socket.send_to(datagram, target.addr).await?;
            match tokio::time::timeout(target.options.timeout, &mut rx).await {
                Ok(Ok(reply)) => return Ok(reply),
                Ok(Err(_)) => return Err(SnmpError::Closed),
                Err(_elapsed) => continue,
            }
        }
        Err(SnmpError::Timeout)
    }

    /// The engine discovered at `addr`, if any (with this manager's notion of its clock).
    pub fn engine(&self, addr: SocketAddr) -> Option<RemoteEngine> {
        self.lock_engines().get(&addr).cloned()
    }

    /// Forgets the engine discovered at `addr` (the next v3 request discovers it again).
    pub fn forget_engine(&self, addr: SocketAddr) {
        self.lock_engines().remove(&addr);
    }

    fn lock_engines(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, RemoteEngine>> {
        self.shared.engines.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// RFC 3414 §4 discovery: a noAuthNoPriv probe with an empty engine id and user name; the agent's
    /// Report names its snmpEngineID, boots and time, which are cached for `target.addr` and returned.
    pub async fn discover(&self, target: &Target) -> Result<RemoteEngine, SnmpError> {
        let id = self.next_request_id();
        let datagram = wire::encode_discovery_probe(id, V3_MAX_SIZE)?;
        let reply = match self.exchange(target, id, &datagram, Some(None)).await? {
            Reply::V3(r) => r,
            Reply::Community(_) => return Err(SnmpError::Discovery { addr: target.addr, why: "a community answer" }),
        };
        if !matches!(reply.pdu, Pdu::Report(_)) {
            return Err(SnmpError::Discovery { addr: target.addr, why: "the answer is not a Report" });
        }
        let engine_id = EngineId::new(reply.engine_id)
            .map_err(|_| SnmpError::Discovery { addr: target.addr, why: "no engine ID of 5 to 32 octets" })?;
        let engine =
            RemoteEngine { id: engine_id, boots: reply.boots, latest_time: reply.time, synced: Instant::now() };
        tracing::debug!(addr = %target.addr, engine_id = %engine.id, boots = engine.boots, "discovered SNMP engine");
        self.lock_engines().insert(target.addr, engine.clone());
        Ok(engine)
    }

    /// A v3 request: discovery when the engine is not known, the request with keys localised to it,
    /// one resynchronisation on a signed notInTimeWindows Report and one rediscovery on an unknownEngineIDs
    /// Report.
    async fn request_v3(&self, target: &Target, creds: &UsmCredentials, mut pdu: Pdu) -> Result<GenericPdu, SnmpError> {
        let refused = |reason| SnmpError::Usm { addr: target.addr, user: creds.user.name().to_string(), reason };
        let mut engine = match self.engine(target.addr) {
            Some(e) => e,
            None => self.discover(target).await?,
        };
        let (mut resynced, mut rediscovered) = (false, false);
        loop {
            let local = Arc::new(creds.user.localize(&engine.id));
            let id = self.next_request_id();
            set_request_id(&mut pdu, id);
            let head = Head {
                msg_id: id,
                max_size: V3_MAX_SIZE,
                reportable: true,
                engine_id: engine.id.as_bytes(),
                boots: engine.boots,
                time: engine.time(),
                user_name: creds.user.name().as_bytes(),
                context_engine_id: engine.id.as_bytes(),
                context_name: b"",
            };
            let mut tlv = Vec::with_capacity(128);
            encode_pdu(&mut BerWriter::new(&mut tlv), &pdu);
            let mut datagram = Vec::with_capacity(tlv.len() + 160);
            wire::encode_v3(&head, Keys::of(&local, creds.level).as_ref(), &tlv, &mut datagram)?;
            let reply = match self.exchange(target, id, &datagram, Some(Some(local))).await? {
                Reply::V3(r) => r,
                Reply::Community(_) => return Err(SnmpError::Protocol("a community answer to an SNMPv3 request")),
            };
            let authenticated = reply.level != SecurityLevel::NoAuthNoPriv;
            if authenticated {
                let in_window = self.note_time(target.addr, &reply);
                if !in_window {
                    return Err(refused(UsmFailure::ReplayedResponse));
                }
            }
            match reply.pdu {
                Pdu::Response(p) => {
                    if reply.level != creds.level {
                        return Err(SnmpError::Protocol("SNMPv3 response at another security level"));
                    }
                    if p.request_id != id {
                        return Err(SnmpError::Protocol("SNMPv3 response with another request-id"));
                    }
                    return Ok(p);
                }
                Pdu::Report(p) => {
                    let reason = p
                        .varbinds
                        .first()
                        .map_or(UsmFailure::Other(Oid::default()), |vb| UsmFailure::of_report(&vb.oid));
                    match reason {
                        UsmFailure::NotInTimeWindow if authenticated && !resynced => {
                            // Signed by the agent, so its boots and time can be believed (RFC 3414 §4).
                            resynced = true;
                            engine = RemoteEngine {
                                id: engine.id.clone(),
                                boots: reply.boots,
                                latest_time: reply.time,
                                synced: Instant::now(),
                            };
                            tracing::debug!(addr = %target.addr, boots = reply.boots, time = reply.time, "SNMPv3 engine time resynchronised");
                            self.lock_engines().insert(target.addr, engine.clone());
                        }
                        UsmFailure::UnknownEngineId if !rediscovered => {
                            rediscovered = true;
                            engine = self.discover(target).await?;
                        }
                        other => return Err(refused(other)),
                    }
                }
                _ => return Err(SnmpError::Protocol("SNMPv3 answer is neither a Response nor a Report")),
            }
        }
    }

    /// Applies an authenticated answer's boots/time to the cached engine; whether it is in the window.
    fn note_time(&self, addr: SocketAddr, reply: &V3Reply) -> bool {
        let mut engines = self.lock_engines();
        match engines.get_mut(&addr) {
            Some(e) if e.id.as_bytes() == reply.engine_id.as_slice() => e.note(reply.boots, reply.time),
            _ => true,
        }
    }

    /// Like [`Manager::request`], but an error-status becomes [`SnmpError::Agent`].
    async fn request_ok(&self, target: &Target, pdu: Pdu) -> Result<Vec<VarBind>, SnmpError> {
        let response = self.request(target, pdu).await?;
        if response.error_status != ErrorStatus::NoError {
            return Err(SnmpError::Agent { status: response.error_status, index: response.error_index });
        }
        Ok(response.varbinds)
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, HashMap<i32, Pending>> {
        self.shared.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// GET: the values of `oids`, in order (v2c exceptions included as values).
    pub async fn get(&self, target: &Target, oids: &[Oid]) -> Result<Vec<VarBind>, SnmpError> {
        let varbinds = self.request_ok(target, Pdu::Get(GenericPdu::request(0, nulls(oids)))).await?;
        if varbinds.len() != oids.len() {
            return Err(SnmpError::Protocol("Get response varbind count differs"));
        }
        Ok(varbinds)
    }

    /// GETNEXT: the successor of each of `oids`.
    pub async fn get_next(&self, target: &Target, oids: &[Oid]) -> Result<Vec<VarBind>, SnmpError> {
        let varbinds = self.request_ok(target, Pdu::GetNext(GenericPdu::request(0, nulls(oids)))).await?;
        if varbinds.len() != oids.len() {
            return Err(SnmpError::Protocol("GetNext response varbind count differs"));
        }
        Ok(varbinds)
    }

    /// GETBULK (v2c and v3).
    pub async fn get_bulk(
        &self,
        target: &Target,
        non_repeaters: u32,
        max_repetitions: u32,
        oids: &[Oid],
    ) -> Result<Vec<VarBind>, SnmpError> {
        let pdu = Pdu::GetBulk(BulkPdu { request_id: 0, non_repeaters, max_repetitions, varbinds: nulls(oids) });
        self.request_ok(target, pdu).await
    }

    /// SET: returns the response's varbinds; a refused SET is [`SnmpError::Agent`].
    pub async fn set(&self, target: &Target, varbinds: Vec<VarBind>) -> Result<Vec<VarBind>, SnmpError> {
        self.request_ok(target, Pdu::Set(GenericPdu::request(0, varbinds))).await
    }

    /// Every instance under `subtree`, in order: GetBulk for v2c and v3, GetNext for v1. Fails if the
    /// agent returns a non-increasing OID or more than `walk_limit` varbinds.
    pub async fn walk(&self, target: &Target, subtree: &Oid) -> Result<Vec<VarBind>, SnmpError> {
        let mut out = Vec::new();
        let mut cursor = subtree.clone();
        loop {
            let batch = match target.options.version {
                Version::V2c | Version::V3 => {
                    self.get_bulk(target, 0, target.options.walk_max_repetitions.max(1), std::slice::from_ref(&cursor))
                        .await?
                }
                Version::V1 => match self.get_next(target, std::slice::from_ref(&cursor)).await {
                    // The v1 end of the MIB view.
                    Err(SnmpError::Agent { status: ErrorStatus::NoSuchName, .. }) => return Ok(out),
                    other => other?,
                },
            };
            if batch.is_empty() {
                return Err(SnmpError::Protocol("empty walk response"));
            }
            for vb in batch {
                if vb.value == Value::EndOfMibView || !vb.oid.starts_with(subtree.as_slice()) {
                    return Ok(out);
                }
                if vb.oid <= cursor {
                    return Err(SnmpError::NotIncreasing { previous: cursor, next: vb.oid });
                }
                if out.len() >= target.options.walk_limit {
                    return Err(SnmpError::WalkLimit);
                }
                cursor = vb.oid.clone();
                out.push(vb);
            }
        }
    }

    /// Sends an InformRequest with exactly `varbinds` (sysUpTime.0 and snmpTrapOID.0 first: the notification
    /// sender, built on this, puts them there) and waits for the acknowledgement.
    pub async fn inform(&self, target: &Target, varbinds: Vec<VarBind>) -> Result<Vec<VarBind>, SnmpError> {
        self.request_ok(target, Pdu::Inform(GenericPdu::request(0, varbinds))).await
    }
}

fn set_request_id(pdu: &mut Pdu, id: i32) {
    match pdu {
        Pdu::Get(p) | Pdu::GetNext(p) | Pdu::Set(p) | Pdu::Inform(p) => p.request_id = id,
        Pdu::GetBulk(p) => p.request_id = id,
        Pdu::Response(_) | Pdu::Report(_) | Pdu::TrapV1(_) | Pdu::TrapV2(_) => {}
    }
}

fn nulls(oids: &[Oid]) -> Vec<VarBind> {
    oids.iter().cloned().map(VarBind::null).collect()
}

struct PendingGuard<'a> {
    shared: &'a Shared,
    id: i32,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.shared.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.id);
    }
}

async fn receive_loop(shared: Arc<Shared>) {
    let mut buf = vec![0u8; 65536];
    loop {
        let (len, from) = match shared.socket.recv_from(&mut buf).await {
            Ok(ok) => ok,
            Err(e) => {
                // ICMP errors for earlier sends can surface here; they concern no one request.
                tracing::debug!(error = %e, "manager receive error");
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
        };
        let datagram = &buf[..len];
        let (id, reply) = match decode(datagram) {
            Ok(Message { pdu: Pdu::Response(p), .. }) => (p.request_id, Reply::Community(p)),
            Ok(other) => {
                tracing::debug!(%from, pdu = other.pdu.type_name(), "manager ignored a non-Response");
                continue;
            }
            Err(DecodeError::BadVersion) => match v3_reply(&shared, datagram, from) {
                Some(ok) => ok,
                None => continue,
            },
            Err(e) => {
                tracing::debug!(%from, error = %e, "manager ignored an undecodable datagram");
                continue;
            }
        };
        let mut pending = shared.pending.lock().unwrap_or_else(|e| e.into_inner());
        match pending.get(&id) {
            Some(p) if p.target == from && p.v3.is_some() == matches!(reply, Reply::V3(_)) => {
                if let Some(p) = pending.remove(&id) {
                    // The requester may have given up meanwhile; nothing to do then.
                    let _ = p.reply.send(reply);
                }
            }
            Some(p) => {
                tracing::debug!(%from, expected = %p.target, "response from the wrong address or in another version dropped")
            }
            None => {
                tracing::debug!(%from, id, "response with unknown request-id dropped")
            }
        }
    }
}

/// A v3 answer to a pending request, checked with that request's keys: the digest when the answer is
/// authenticated, the decryption when it is encrypted. `None` (logged) for anything else.
fn v3_reply(shared: &Shared, datagram: &[u8], from: SocketAddr) -> Option<(i32, Reply)> {
    let msg = match wire::decode_v3(datagram) {
        Ok(m) => m,
        Err(e @ (V3DecodeError::NotV3 | V3DecodeError::UnknownSecurityModel(_) | V3DecodeError::Malformed(_))) => {
            tracing::debug!(%from, error = %e, "manager ignored an undecodable datagram");
            return None;
        }
    };
    let id = msg.global.msg_id;
    let keys = {
        let pending = shared.pending.lock().unwrap_or_else(|e| e.into_inner());
        match pending.get(&id) {
            Some(Pending { target, v3: Some(keys), .. }) if *target == from => keys.clone(),
            _ => {
                tracing::debug!(%from, id, "SNMPv3 message with no request waiting for it dropped");
                return None;
            }
        }
    };
    let Some(level) = msg.level() else {
        tracing::debug!(%from, "SNMPv3 answer with privacy but no authentication dropped");
        return None;
    };
    let user = match (level, keys.as_deref()) {
        (SecurityLevel::NoAuthNoPriv, user) => user,
        (_, Some(user)) if msg.usm.user_name == user.name.as_bytes() && msg.authenticates(datagram, user) => Some(user),
        _ => {
            tracing::debug!(%from, id, "SNMPv3 answer with a wrong digest dropped");
            return None;
        }
    };
    let scoped = match (&msg.data, user) {
        (ScopedData::Plain(s), _) => s.clone(),
        (ScopedData::Encrypted(_), Some(user)) => match msg.decrypt_scoped_pdu(user) {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(%from, id, error = %e, "SNMPv3 answer that does not decrypt dropped");
                return None;
            }
        },
        (ScopedData::Encrypted(_), None) => return None,
    };
    let reply =
        V3Reply { pdu: scoped.pdu, engine_id: msg.usm.engine_id, boots: msg.usm.boots, time: msg.usm.time, level };
    Some((id, Reply::V3(reply)))
}
