//! The unit's notifications: what it says, to whom, and how.
//!
//! coldStart (SNMPv2-MIB) at start, carrying dvsanUnitId, dvsanUnitName and dvsanUnitChangeCounter so a station
//! can identify the unit without a round trip; linkUp/linkDown (IF-MIB, with ifIndex, ifAdminStatus and
//! ifOperStatus) when the data service comes up or goes away; dvsanLayoutChanged on every layout change;
//! dvsanUnitShutdown then linkDown on an orderly stop. Notifications leave from a socket bound to the agent's
//! own IP address, so a station can map the source address to the unit. Informs are retried until acknowledged
//! (or the retries run out, which is logged). With a notify user (`--notify-user`, a user of the `--users` file)
//! they go as SNMPv3: traps with the unit's own engine authoritative (the station knows the unit's engine id and
//! the user), informs to the sink's engine after discovery; otherwise SNMPv2c with the read community.

use crate::mib::{IfTable, DATA_IF_INDEX};
use crate::unit::Unit;
use dvsan_mib as mib;
use dvsan_snmp::manager::Target;
use dvsan_snmp::notify::NotificationSender;
use dvsan_snmp::usm::{Engine, UsmUser};
use dvsan_snmp::{Oid, Uptime, Value, VarBind};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

pub struct Notifier {
    sender: Arc<NotificationSender>,
    sinks: Vec<SocketAddr>,
    community: String,
    inform: bool,
    /// The SNMPv3 user notifications go as, if any.
    user: Option<Arc<UsmUser>>,
}

/// Notifications as an SNMPv3 user, with the unit's engine authoritative for its traps.
pub struct NotifyAs {
    pub user: UsmUser,
    pub engine: Engine,
}

fn vb(oid: &[u32], suffix: &[u32], value: Value) -> VarBind {
    VarBind::new(Oid::from_slice(oid).join(suffix), value)
}

impl Notifier {
    pub async fn new(
        ip: IpAddr,
        sinks: Vec<SocketAddr>,
        community: String,
        inform: bool,
        uptime: Uptime,
        v3: Option<NotifyAs>,
    ) -> std::io::Result<Self> {
        let mut sender = NotificationSender::new(SocketAddr::new(ip, 0), uptime).await?;
        let mut user = None;
        if let Some(v3) = v3 {
            sender = sender.with_engine(v3.engine);
            user = Some(Arc::new(v3.user));
        }
        Ok(Notifier { sender: Arc::new(sender), sinks, community, inform, user })
    }

    /// Send to every sink at once; returns when each is sent (traps) or acknowledged or given up (informs).
    pub async fn send(&self, trap_oid: &[u32], varbinds: Vec<VarBind>) {
        let name = mib::describe(trap_oid);
        let mut sends = tokio::task::JoinSet::new();
        for &sink in &self.sinks {
            let sender = self.sender.clone();
            let (oid, vbs, inform) = (Oid::from_slice(trap_oid), varbinds.clone(), self.inform);
            let target = match &self.user {
                Some(user) => Target::v3(sink, Arc::clone(user)),
                None => Target::new(sink, self.community.clone()),
            };
            sends.spawn(async move {
                let result = if inform {
                    sender.inform(&target.with_timeout(Duration::from_secs(1), 5), &oid, vbs).await
                } else {
                    sender.trap(&target, &oid, vbs).await
                };
                (sink, result)
            });
        }
        while let Some(done) = sends.join_next().await {
            match done {
                Ok((sink, Ok(()))) => tracing::info!(%sink, notification = %name, "notification sent"),
                Ok((sink, Err(e))) => {
                    tracing::warn!(%sink, notification = %name, error = %e, "notification not delivered")
                }
                Err(e) => tracing::warn!(error = %e, "notification task failed"),
            }
        }
    }

    pub async fn cold_start(&self, unit: &Unit) {
        let l = unit.layout();
        self.send(
            mib::COLD_START,
            vec![
                vb(mib::DVSAN_UNIT_ID, &[0], Value::string(&l.unit.unit_id)),
                vb(mib::DVSAN_UNIT_NAME, &[0], Value::string(&l.unit.name)),
                vb(mib::DVSAN_UNIT_CHANGE_COUNTER, &[0], Value::Counter32(l.unit.change_counter)),
            ],
        )
        .await
    }

    pub async fn link(&self, up: bool) {
        self.send(
            if up { mib::LINK_UP } else { mib::LINK_DOWN },
            vec![
                vb(mib::IF_INDEX, &[DATA_IF_INDEX], Value::Integer(DATA_IF_INDEX as i32)),
                vb(mib::IF_ADMIN_STATUS, &[DATA_IF_INDEX], Value::Integer(mib::if_admin_status::UP)),
                vb(mib::IF_OPER_STATUS, &[DATA_IF_INDEX], Value::Integer(IfTable::oper_status(up))),
            ],
        )
        .await
    }

    /// dvsanLayoutChanged for the change that moved the counter to `counter`.
    pub async fn layout_changed(&self, unit: &Unit, counter: u32) {
        let l = unit.layout();
        self.send(
            mib::DVSAN_LAYOUT_CHANGED,
            vec![
                vb(mib::DVSAN_UNIT_ID, &[0], Value::string(&l.unit.unit_id)),
                vb(mib::DVSAN_UNIT_CHANGE_COUNTER, &[0], Value::Counter32(counter)),
            ],
        )
        .await
    }

    pub async fn shutdown(&self, unit: &Unit) {
        let l = unit.layout();
        self.send(
            mib::DVSAN_UNIT_SHUTDOWN,
            vec![
                vb(mib::DVSAN_UNIT_ID, &[0], Value::string(&l.unit.unit_id)),
                vb(mib::DVSAN_UNIT_NAME, &[0], Value::string(&l.unit.name)),
            ],
        )
        .await
    }
}
