//! Notification originator: SNMPv2-Trap, InformRequest (acknowledged, with retries) and, for
//! tests and interop, the SNMPv1 Trap-PDU.
//!
//! v2 notifications carry sysUpTime.0 and snmpTrapOID.0 first (RFC 3416 §4.2.6), followed by
//! the caller's varbinds. Informs go through a [`Manager`], which matches the acknowledgement.

use std::io;
use std::net::SocketAddr;

use crate::agent::{SNMP_TRAP_OID_0, SYS_UP_TIME_0};
use crate::manager::{Manager, SnmpError, Target};
use crate::message::{Message, Version};
use crate::oid::Oid;
use crate::pdu::{GenericPdu, Pdu, TrapV1Pdu, VarBind};
use crate::uptime::Uptime;
use crate::value::Value;

/// The full varbind list of a v2 notification: sysUpTime.0, snmpTrapOID.0, then `varbinds`.
pub fn notification_varbinds(uptime: u32, trap_oid: &Oid, varbinds: Vec<VarBind>) -> Vec<VarBind> {
    let mut all = Vec::with_capacity(varbinds.len() + 2);
    all.push(VarBind::new(Oid::from_slice(&SYS_UP_TIME_0), Value::TimeTicks(uptime)));
    all.push(VarBind::new(Oid::from_slice(&SNMP_TRAP_OID_0), Value::ObjectId(trap_oid.clone())));
    all.extend(varbinds);
    all
}

/// Sends notifications from one UDP socket.
pub struct NotificationSender {
    manager: Manager,
    uptime: Uptime,
}

impl NotificationSender {
    /// Binds the sending socket to `bind`; sysUpTime.0 is taken from `uptime` (share the
    /// agent's).
    pub async fn new(bind: SocketAddr, uptime: Uptime) -> io::Result<NotificationSender> {
        Ok(NotificationSender { manager: Manager::new(bind).await?, uptime })
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.manager.local_addr()
    }

    /// Sends an SNMPv2-Trap to `sink`.
    pub async fn trap_v2(
        &self,
        sink: SocketAddr,
        community: &str,
        trap_oid: &Oid,
        varbinds: Vec<VarBind>,
    ) -> Result<(), SnmpError> {
        let pdu = Pdu::TrapV2(GenericPdu::request(
            self.manager.next_request_id(),
            notification_varbinds(self.uptime.ticks(), trap_oid, varbinds),
        ));
        let msg = Message { version: Version::V2c, community: community.as_bytes().to_vec(), pdu };
        self.manager.send(sink, &msg).await?;
        Ok(())
    }

    /// Sends an SNMPv1 Trap-PDU to `sink` as given (its timestamp included).
    pub async fn trap_v1(&self, sink: SocketAddr, community: &str, trap: TrapV1Pdu) -> Result<(), SnmpError> {
        let msg = Message { version: Version::V1, community: community.as_bytes().to_vec(), pdu: Pdu::TrapV1(trap) };
        self.manager.send(sink, &msg).await?;
        Ok(())
    }

    /// Sends an InformRequest to `sink` (v2c; timeout and retries from `sink.options`) and waits
    /// until it is acknowledged.
    pub async fn inform(&self, sink: &Target, trap_oid: &Oid, varbinds: Vec<VarBind>) -> Result<(), SnmpError> {
        let all = notification_varbinds(self.uptime.ticks(), trap_oid, varbinds);
        self.manager.inform(sink, all).await?;
        Ok(())
    }

    /// The current sysUpTime in TimeTicks.
    pub fn uptime_ticks(&self) -> u32 {
        self.uptime.ticks()
    }
}
