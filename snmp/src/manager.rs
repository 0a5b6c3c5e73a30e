//! The manager (command generator): async Get, GetNext, GetBulk, Set and walk over one UDP
//! socket.
//!
//! A background task reads every datagram arriving on the socket and hands each Response to the
//! request waiting for its request-id, so any number of tasks can have requests in flight at
//! once. Responses from an address other than the request's target, with unknown request-ids, or
//! that fail to decode are dropped (logged at debug). Requests are retransmitted unchanged (same
//! request-id) after each timeout, `retries` times.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::message::{decode, encode, DecodeError, Message, Version};
use crate::oid::Oid;
use crate::pdu::{BulkPdu, ErrorStatus, GenericPdu, Pdu, VarBind};
use crate::value::Value;

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
    pub community: String,
    pub options: RequestOptions,
}

impl Target {
    /// An SNMPv2c target with default options.
    pub fn new(addr: SocketAddr, community: impl Into<String>) -> Target {
        Target { addr, community: community.into(), options: RequestOptions::default() }
    }

    /// The same target, using `version`.
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
}

struct Pending {
    target: SocketAddr,
    reply: oneshot::Sender<GenericPdu>,
}

struct Shared {
    socket: UdpSocket,
    pending: Mutex<HashMap<i32, Pending>>,
    next_id: AtomicU32,
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
        let shared = Arc::new(Shared { socket, pending: Mutex::new(HashMap::new()), next_id: AtomicU32::new(seed) });
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

    /// Sends `msg` to `to` without waiting for anything (traps).
    pub async fn send(&self, to: SocketAddr, msg: &Message) -> io::Result<()> {
        self.shared.socket.send_to(&encode(msg), to).await?;
        Ok(())
    }

    /// Sends a confirmed-class `pdu` (its request-id is replaced by a fresh one) and returns the
    /// Response, retrying per `target.options`. Error-status responses are returned as they are.
    pub async fn request(&self, target: &Target, mut pdu: Pdu) -> Result<GenericPdu, SnmpError> {
        let id = self.next_request_id();
        match &mut pdu {
            Pdu::Get(p) | Pdu::GetNext(p) | Pdu::Set(p) | Pdu::Inform(p) => p.request_id = id,
            Pdu::GetBulk(p) => p.request_id = id,
            _ => return Err(SnmpError::Protocol("not a confirmed-class PDU")),
        }
        if target.options.version == Version::V1 && matches!(pdu, Pdu::GetBulk(_) | Pdu::Inform(_)) {
            return Err(SnmpError::NotInV1);
        }
        let datagram =
            encode(&Message { version: target.options.version, community: target.community.as_bytes().to_vec(), pdu });
        let (tx, mut rx) = oneshot::channel();
        self.lock_pending().insert(id, Pending { target: target.addr, reply: tx });
        // Removes the pending entry however this function ends (including cancellation).
        let _cleanup = PendingGuard { shared: &self.shared, id };
        for _attempt in 0..=target.options.retries {
            self.shared.socket.send_to(&datagram, target.addr).await?;
            match tokio::time::timeout(target.options.timeout, &mut rx).await {
                Ok(Ok(response)) => return Ok(response),
                Ok(Err(_)) => return Err(SnmpError::Closed),
                Err(_elapsed) => continue,
            }
        }
        Err(SnmpError::Timeout)
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

    /// GETBULK (v2c only).
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

    /// Every instance under `subtree`, in order: GetBulk for v2c, GetNext for v1. Fails if the
    /// agent returns a non-increasing OID or more than `walk_limit` varbinds.
    pub async fn walk(&self, target: &Target, subtree: &Oid) -> Result<Vec<VarBind>, SnmpError> {
        let mut out = Vec::new();
        let mut cursor = subtree.clone();
        loop {
            let batch = match target.options.version {
                Version::V2c => {
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
        let response = match decode(&buf[..len]) {
            Ok(Message { pdu: Pdu::Response(p), .. }) => p,
            Ok(other) => {
                tracing::debug!(%from, pdu = other.pdu.type_name(), "manager ignored a non-Response");
                continue;
            }
            Err(e) => {
                tracing::debug!(%from, error = %e, "manager ignored an undecodable datagram");
                continue;
            }
        };
        let mut pending = shared.pending.lock().unwrap_or_else(|e| e.into_inner());
        match pending.get(&response.request_id) {
            Some(p) if p.target == from => {
                if let Some(p) = pending.remove(&response.request_id) {
                    // The requester may have given up meanwhile; nothing to do then.
                    let _ = p.reply.send(response);
                }
            }
            Some(p) => {
                tracing::debug!(%from, expected = %p.target, "response from the wrong address dropped")
            }
            None => {
                tracing::debug!(%from, id = response.request_id, "response with unknown request-id dropped")
            }
        }
    }
}
