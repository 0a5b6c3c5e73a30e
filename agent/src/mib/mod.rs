//! The unit's MIB handlers: DVSAN-MIB's scalars and tables plus IF-MIB's data interface, registered with the
//! engine by subtree. The engine itself serves SNMPv2-MIB's system and snmp groups.

mod access_table;
mod data_guard;
pub mod data_tls;
mod interfaces;
mod media_table;
mod partition_table;
mod set;
mod traffic_table;
mod unit_scalars;
mod volume_table;

pub use interfaces::{IfTable, DATA_IF_INDEX};

use crate::unit::Unit;
use dvsan_snmp::agent::AgentBuilder;
use dvsan_snmp::agent::{ScalarHandler, Scalars, Table, TableHandler};
use dvsan_snmp::Oid;
use std::sync::Arc;

/// Register every unit handler with the agent being built; `state_dir` is the unit's (the pushed CRL's place).
pub fn register(builder: AgentBuilder, unit: &Arc<Unit>, state_dir: &std::path::Path) -> AgentBuilder {
    let u = || unit.clone();
    let b = scalars(builder, unit_scalars::UnitScalars(u()));
    let b = table(b, media_table::MediaTable(u()));
    let b = table(b, volume_table::VolumeTable(u()));
    let b = table(b, partition_table::PartitionTable(u()));
    let b = table(b, access_table::AccessTable(u()));
    let b = table(b, traffic_table::TrafficTable(u()));
    let b = scalars(b, data_guard::DataGuard(u()));
    let tls = data_tls::DataTls::new(state_dir);
    let b = b.handler(tls.prefix(), Arc::new(tls));
    // ifNumber's group is `interfaces`, which also holds ifTable: register it at ifNumber alone.
    let b = b.handler(Oid::from_slice(dvsan_mib::IF_NUMBER), Arc::new(ScalarHandler::new(interfaces::IfNumber)));
    table(b, IfTable(u()))
}

fn table<T: Table + 'static>(b: AgentBuilder, t: T) -> AgentBuilder {
    let h = TableHandler::new(t);
    b.handler(h.prefix(), Arc::new(h))
}

fn scalars<S: Scalars + 'static>(b: AgentBuilder, s: S) -> AgentBuilder {
    let h = ScalarHandler::new(s);
    b.handler(h.prefix(), Arc::new(h))
}
