//! The unit's MIB handlers: DVSAN-MIB's scalars and tables plus IF-MIB's data interface, registered with the
//! engine by subtree. The engine itself serves SNMPv2-MIB's system and snmp groups.

mod access_table;
mod interfaces;
mod media_table;
mod partition_table;
mod set;
mod table;
mod traffic_table;
mod unit_scalars;
mod volume_table;

pub use interfaces::{IfTable, DATA_IF_INDEX};

use crate::unit::Unit;
use dvsan_mib as mib;
use dvsan_snmp::agent::AgentBuilder;
use dvsan_snmp::Oid;
use std::sync::Arc;
use table::{ScalarHandler, TableHandler};

/// Register every unit handler with the agent being built.
pub fn register(builder: AgentBuilder, unit: &Arc<Unit>) -> AgentBuilder {
    let u = || unit.clone();
    let mut b = builder;
    b = b.handler(Oid::from_slice(mib::DVSAN_UNIT), Arc::new(ScalarHandler(unit_scalars::UnitScalars(u()))));
    b = b.handler(Oid::from_slice(mib::DVSAN_MEDIA_ENTRY), Arc::new(TableHandler(media_table::MediaTable(u()))));
    b = b.handler(Oid::from_slice(mib::DVSAN_VOLUME_ENTRY), Arc::new(TableHandler(volume_table::VolumeTable(u()))));
    b = b.handler(
        Oid::from_slice(mib::DVSAN_PARTITION_ENTRY),
        Arc::new(TableHandler(partition_table::PartitionTable(u()))),
    );
    b = b.handler(Oid::from_slice(mib::DVSAN_ACCESS_ENTRY), Arc::new(TableHandler(access_table::AccessTable(u()))));
    b = b.handler(Oid::from_slice(mib::DVSAN_TRAFFIC_ENTRY), Arc::new(TableHandler(traffic_table::TrafficTable(u()))));
    b = b.handler(Oid::from_slice(mib::IF_NUMBER), Arc::new(ScalarHandler(interfaces::IfNumber)));
    b = b.handler(Oid::from_slice(mib::IF_ENTRY), Arc::new(TableHandler(IfTable(u()))));
    b
}
