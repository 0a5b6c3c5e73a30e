//! Forwarding to upstream NMSs (`--forward HOST:PORT`): every received notification, and the station's own
//! notifications (DVSAN-STATION-MIB), as SNMPv2c traps or, with `--forward-inform`, informs; with a USM user
//! (`--forward-user`) as SNMPv3 traps with the station's engine authoritative (the NMS knows the user by the
//! station's engine id) or v3 informs, for which the manager discovers the NMS's engine first.
//!
//! Received notifications keep their sysUpTime, snmpTrapOID and varbinds, and get `snmpTrapAddress.0` (RFC 3584)
//! appended with the original source address, since the NMS sees the station as the sender. The station's own
//! notifications carry the station's sysUpTime. A bounded queue decouples forwarding from the receive path: when
//! it is full (a slow or dead inform sink), notifications are not forwarded and are counted as failures, but
//! nothing upstream of the queue waits.

use crate::counters::StationCounters;
use dvsan_snmp::notify::notification_varbinds;
use dvsan_snmp::usm::wire::{encode_v3_pdu, Head, Keys};
use dvsan_snmp::usm::{Engine, LocalUser, UsmUser};
use dvsan_snmp::{
    GenericPdu, Manager, Message, Notification, Oid, Pdu, SnmpError, Target, Uptime, Value, VarBind, Version,
};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};

/// SNMP-COMMUNITY-MIB::snmpTrapAddress.0 (RFC 3584): the address of the notification's original sender.
pub const SNMP_TRAP_ADDRESS_0: &[u32] = &[1, 3, 6, 1, 6, 3, 18, 1, 3, 0];

/// Queued notifications waiting to be forwarded.
const QUEUE: usize = 16_384;
/// Informs awaiting acknowledgement at once.
const INFORMS_IN_FLIGHT: usize = 256;

#[derive(Debug, Clone)]
pub struct ForwardSettings {
    pub sinks: Vec<SocketAddr>,
    /// Send informs (acknowledged, retried) instead of traps.
    pub inform: bool,
    pub community: String,
    /// Send SNMPv3 as this user instead of `community`, with the station's engine authoritative for traps.
    pub user: Option<(UsmUser, Engine)>,
    pub timeout: Duration,
    pub retries: u32,
}

enum Outgoing {
    Received(Notification),
    Station { trap_oid: Oid, varbinds: Vec<VarBind> },
}

/// A cheap handle for queueing notifications to forward.
#[derive(Clone)]
pub struct Forwarder {
    tx: mpsc::Sender<Outgoing>,
    counters: Arc<StationCounters>,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder").finish_non_exhaustive()
    }
}

impl Forwarder {
    /// Starts the forwarding task on the current runtime, sending from `bind`.
    pub async fn start(
        bind: SocketAddr,
        settings: ForwardSettings,
        uptime: Uptime,
        counters: Arc<StationCounters>,
    ) -> std::io::Result<Forwarder> {
        let manager = Arc::new(Manager::new(bind).await?);
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(forward_loop(rx, manager, settings, uptime, Arc::clone(&counters)));
        Ok(Forwarder { tx, counters })
    }

    /// Queues a received notification (never waits).
    pub fn forward_received(&self, notification: Notification) {
        self.offer(Outgoing::Received(notification));
    }

    /// Queues one of the station's own notifications (never waits).
    pub fn send_station(&self, trap_oid: Oid, varbinds: Vec<VarBind>) {
        self.offer(Outgoing::Station { trap_oid, varbinds });
    }

    fn offer(&self, item: Outgoing) {
        if self.tx.try_send(item).is_err() {
            StationCounters::bump(&self.counters.forward_failures);
        }
    }
}

async fn forward_loop(
    mut rx: mpsc::Receiver<Outgoing>,
    manager: Arc<Manager>,
    settings: ForwardSettings,
    uptime: Uptime,
    counters: Arc<StationCounters>,
) {
    let in_flight = Arc::new(Semaphore::new(INFORMS_IN_FLIGHT));
    let user = settings.user.as_ref().map(|(user, _)| Arc::new(user.clone()));
    // A trap's keys are localised to the station's own engine, once.
    let trap_keys = settings.user.as_ref().map(|(user, engine)| (user.localize(engine.id()), engine));
    while let Some(item) = rx.recv().await {
        let varbinds = match item {
            Outgoing::Received(n) => {
                let mut rest = n.varbinds;
                if let IpAddr::V4(v4) = n.from.ip() {
                    rest.push(VarBind::new(Oid::from_slice(SNMP_TRAP_ADDRESS_0), Value::ip(v4)));
                }
                notification_varbinds(n.uptime, &n.trap_oid, rest)
            }
            Outgoing::Station { trap_oid, varbinds } => notification_varbinds(uptime.ticks(), &trap_oid, varbinds),
        };
        for &sink in &settings.sinks {
            if settings.inform {
                let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else { return };
                let manager = Arc::clone(&manager);
                let counters = Arc::clone(&counters);
                let target = match &user {
                    Some(user) => Target::v3(sink, Arc::clone(user)),
                    None => Target::new(sink, settings.community.clone()),
                }
                .with_timeout(settings.timeout, settings.retries);
                let varbinds = varbinds.clone();
                tokio::spawn(async move {
                    match manager.inform(&target, varbinds).await {
                        Ok(_) => StationCounters::bump(&counters.forwarded),
                        Err(e) => {
                            StationCounters::bump(&counters.forward_failures);
                            tracing::warn!(%sink, error = %e, "forwarded inform not acknowledged");
                        }
                    }
                    drop(permit);
                });
            } else {
                let pdu = Pdu::TrapV2(GenericPdu::request(manager.next_request_id(), varbinds.clone()));
                let sent = match &trap_keys {
                    Some((local, engine)) => send_trap_v3(&manager, sink, local, engine, &pdu).await,
                    None => {
                        let message =
                            Message { version: Version::V2c, community: settings.community.as_bytes().to_vec(), pdu };
                        manager.send(sink, &message).await.map_err(SnmpError::from)
                    }
                };
                match sent {
                    Ok(()) => StationCounters::bump(&counters.forwarded),
                    Err(e) => {
                        StationCounters::bump(&counters.forward_failures);
                        tracing::debug!(%sink, error = %e, "forwarding a trap failed");
                    }
                }
            }
        }
    }
}

/// Sends `pdu` (an SNMPv2-Trap) to `sink` as an SNMPv3 message from `local` (a user's keys localised to `engine`),
/// at the level its keys give, with the station's `engine` authoritative (RFC 3414 §1.5.1: the sender of a trap
/// is). Received notifications keep their own sysUpTime in the varbinds, so this encodes the message itself rather
/// than through a `NotificationSender`.
async fn send_trap_v3(
    manager: &Manager,
    sink: SocketAddr,
    local: &LocalUser,
    engine: &Engine,
    pdu: &Pdu,
) -> Result<(), SnmpError> {
    let msg_id = match pdu {
        Pdu::TrapV2(p) => p.request_id,
        _ => manager.next_request_id(),
    };
    let head = Head {
        msg_id,
        max_size: 65507,
        reportable: false,
        engine_id: engine.id().as_bytes(),
        boots: engine.boots(),
        time: engine.time(),
        user_name: local.name.as_bytes(),
        context_engine_id: engine.id().as_bytes(),
        context_name: b"",
    };
    let datagram = encode_v3_pdu(&head, Keys::of(local, local.level()).as_ref(), pdu)?;
    manager.send_datagram(sink, &datagram).await?;
    Ok(())
}
