//! dvsanDataGuard scalars: blockd's totals of refused, evicted and timed-out data connections and refused
//! exports, which blockd saves in the unit store (by bad-input reason name) and the agent re-reads with traffic.

use crate::unit::Unit;
use dvsan_mib as mib;
use dvsan_snmp::agent::Scalars;
use dvsan_snmp::Value;
use std::sync::Arc;

pub struct DataGuard(pub Arc<Unit>);

/// The bad-input reasons (blockd's `BadInput::name`) each member sums.
fn reasons(member: u32) -> Option<&'static [&'static str]> {
    Some(match member {
        1 => &["too_many_handshakes", "too_many_handshakes_from_source"],
        2 => &["handshake_evicted"],
        3 => &["silent_client"],
        4 => &["handshake_timeout"],
        5 => &["export_unknown", "export_not_granted"],
        6 => &["too_many_connections", "too_many_connections_from_host"],
        7 => &["idle_connection_evicted"],
        _ => return None,
    })
}

impl Scalars for DataGuard {
    fn group(&self) -> &'static [u32] {
        mib::DVSAN_DATA_GUARD
    }
    fn members(&self) -> &'static [u32] {
        &[1, 2, 3, 4, 5, 6, 7]
    }
    fn value(&self, member: u32) -> Option<Value> {
        Some(Value::Counter64(self.0.data_counter(reasons(member)?)))
    }
}
