//! Notification receiver: SNMPv1 traps, SNMPv2 traps and informs on one UDP socket.
//!
//! Every notification comes out in v2 form: sysUpTime, snmpTrapOID and the remaining varbinds.
//! v1 traps are translated per RFC 3584 §3.1 (generic traps 0..=5 become `snmpTraps.(g+1)`,
//! enterpriseSpecific becomes `enterprise.0.specific`) and keep their v1 fields in
//! [`Notification::v1`]; the RFC 3584 snmpTrapAddress/Community/Enterprise varbinds are not
//! appended. Informs are acknowledged only when the caller says so
//! ([`NotificationReceiver::acknowledge`]), e.g. after storing them. Bad datagrams are counted
//! and reported as [`ReceiveError`]s carrying the source; they never stop the receiver.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::net::UdpSocket;

use crate::agent::{SNMP_TRAPS, SNMP_TRAP_OID_0, SYS_UP_TIME_0};
use crate::message::{decode, encode_into, DecodeError, Message, Version};
use crate::notify::notification_varbinds;
use crate::oid::Oid;
use crate::pdu::{ErrorStatus, GenericPdu, Pdu, TrapV1Pdu, VarBind};
use crate::value::Value;

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
    /// The USM user name of an SNMPv3 notification; `None` for v1/v2c (whose community is in `community`).
    pub security_name: Option<String>,
    /// True only for an SNMPv3 notification whose authentication was verified; false for v1/v2c.
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
}

/// Sends inform acknowledgements; cheap to clone and usable from another task.
#[derive(Clone)]
pub struct Acknowledger {
    socket: Arc<UdpSocket>,
    counters: Arc<ReceiverCounters>,
}

impl Acknowledger {
    /// Acknowledges `notification` if it is an inform (Response-PDU echoing its varbinds);
    /// does nothing for traps.
    pub async fn acknowledge(&self, notification: &Notification) -> io::Result<()> {
        if notification.kind != NotificationKind::Inform {
            return Ok(());
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
}

/// Receives notifications on a bound UDP socket.
pub struct NotificationReceiver {
    socket: Arc<UdpSocket>,
    buf: Vec<u8>,
    counters: Arc<ReceiverCounters>,
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
        }
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
        Acknowledger { socket: Arc::clone(&self.socket), counters: Arc::clone(&self.counters) }
    }

    /// Acknowledges an inform (see [`Acknowledger::acknowledge`]).
    pub async fn acknowledge(&self, notification: &Notification) -> io::Result<()> {
        self.acknowledger().acknowledge(notification).await
    }

    /// Waits for the next datagram and returns it as a notification or as the reason it is not
    /// one (`Err` values other than `Io` concern only that datagram).
    pub async fn recv(&mut self) -> Result<Notification, ReceiveError> {
        let (len, from) = self.socket.recv_from(&mut self.buf).await?;
        self.parse(len, from)
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
                Ok((len, from)) => out.push(self.parse(len, from)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => out.push(Err(ReceiveError::Io(e))),
            }
            n += 1;
        }
        n
    }

    fn parse(&self, len: usize, from: SocketAddr) -> Result<Notification, ReceiveError> {
        self.counters.datagrams.fetch_add(1, Ordering::Relaxed);
        let result = parse_notification(&self.buf[..len], from);
        let counter = match &result {
            Ok(_) => &self.counters.notifications,
            Err(ReceiveError::Malformed { .. }) => &self.counters.parse_errors,
            Err(_) => &self.counters.unexpected,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        result
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
