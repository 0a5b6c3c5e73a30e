//! Notification originator: SNMPv2-Trap, InformRequest (acknowledged, with retries) and, for
//! tests and interop, the SNMPv1 Trap-PDU; in SNMPv2c with a community or SNMPv3 with a USM user.
//!
//! v2 notifications carry sysUpTime.0 and snmpTrapOID.0 first (RFC 3416 §4.2.6), followed by
//! the caller's varbinds. Informs go through a [`Manager`], which matches the acknowledgement; a v3
//! inform is a v3 request like any other, so the manager discovers the receiver's engine (authoritative
//! for informs, RFC 3414 §1.5.1) and localises the user's keys to it. A v3 trap's authoritative engine is
//! the sender's own ([`NotificationSender::with_engine`]): its engine id, boots and time go in the message
//! and the user's keys are localised to it, which is why a receiver needs the sender's engine id to
//! accept it (net-snmp: `createUser -e ENGINEID`).

use std::io;
use std::net::SocketAddr;

use crate::agent::{SNMP_TRAP_OID_0, SYS_UP_TIME_0};
use crate::manager::{Manager, SnmpError, Target};
use crate::message::{Message, Version};
use crate::oid::Oid;
use crate::pdu::{GenericPdu, Pdu, TrapV1Pdu, VarBind};
use crate::uptime::Uptime;
use crate::usm::wire::{self, Head, Keys};
use crate::usm::{Engine, SecurityLevel, UsmUser};
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
    /// The sender's own engine, authoritative for its v3 traps.
    engine: Option<Engine>,
}

impl NotificationSender {
    /// Binds the sending socket to `bind`; sysUpTime.0 is taken from `uptime` (share the
    /// agent's).
    pub async fn new(bind: SocketAddr, uptime: Uptime) -> io::Result<NotificationSender> {
        Ok(NotificationSender { manager: Manager::new(bind).await?, uptime, engine: None })
    }

    /// The same sender with `engine` as its own: the authoritative engine of its v3 traps (share the
    /// agent's, so receivers know one engine id per unit).
    pub fn with_engine(mut self, engine: Engine) -> NotificationSender {
        self.engine = Some(engine);
        self
    }

    /// The sender's own engine, if it has one.
    pub fn engine(&self) -> Option<&Engine> {
        self.engine.as_ref()
    }

    /// Sends a trap to `sink`: an SNMPv2-Trap with its community for a v1 or v2c target (v1 targets
    /// get the v2 form too; use [`NotificationSender::trap_v1`] for a Trap-PDU), a v3 trap for a
    /// [`Target::v3`].
    pub async fn trap(&self, sink: &Target, trap_oid: &Oid, varbinds: Vec<VarBind>) -> Result<(), SnmpError> {
        match &sink.usm {
            Some(c) => self.trap_v3_at(sink.addr, &c.user, c.level, trap_oid, varbinds).await,
            None if sink.options.version == Version::V3 => Err(SnmpError::NoCredentials),
            None => self.trap_v2(sink.addr, &sink.community, trap_oid, varbinds).await,
        }
    }

    /// Sends an SNMPv3 SNMPv2-Trap to `sink` as `user`, at the level the user's keys give, with this
    /// sender's engine authoritative (see [`NotificationSender::with_engine`]).
    pub async fn trap_v3(
        &self,
        sink: SocketAddr,
        user: &UsmUser,
        trap_oid: &Oid,
        varbinds: Vec<VarBind>,
    ) -> Result<(), SnmpError> {
        self.trap_v3_at(sink, user, user.level(), trap_oid, varbinds).await
    }

    async fn trap_v3_at(
        &self,
        sink: SocketAddr,
        user: &UsmUser,
        level: SecurityLevel,
        trap_oid: &Oid,
        varbinds: Vec<VarBind>,
    ) -> Result<(), SnmpError> {
        let engine = self.engine.as_ref().ok_or(SnmpError::NoLocalEngine)?;
        let local = user.localize(engine.id());
        let id = self.manager.next_request_id();
        let pdu = Pdu::TrapV2(GenericPdu::request(id, notification_varbinds(self.uptime.ticks(), trap_oid, varbinds)));
        let head = Head {
            msg_id: id,
            max_size: 65507,
            reportable: false,
            engine_id: engine.id().as_bytes(),
            boots: engine.boots(),
            time: engine.time(),
            user_name: user.name().as_bytes(),
            context_engine_id: engine.id().as_bytes(),
            context_name: b"",
        };
        let datagram = wire::encode_v3_pdu(&head, Keys::of(&local, level).as_ref(), &pdu)?;
        self.manager.send_datagram(sink, &datagram).await?;
        Ok(())
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

    /// Sends an InformRequest to `sink` (v2c with its community, or v3 as its user after discovering the
    /// receiver's engine; timeout and retries from `sink.options`) and waits until it is acknowledged.
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
