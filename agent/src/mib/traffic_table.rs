//! dvsanTrafficTable: per (export, host) I/O counters, saved by blockd into the unit store about once a second.

use super::access_table::inet_address;
use crate::unit::Unit;
use dvsan_mib as mib;
use dvsan_snmp::agent::Table;
use dvsan_snmp::Value;
use std::sync::Arc;

pub struct TrafficTable(pub Arc<Unit>);

impl Table for TrafficTable {
    fn entry(&self) -> &'static [u32] {
        mib::DVSAN_TRAFFIC_ENTRY
    }
    fn columns(&self) -> &'static [u32] {
        &[2, 3, 4, 5, 6, 7, 8, 9]
    }
    fn rows(&self) -> Vec<Vec<u32>> {
        self.0.traffic().iter().map(|t| vec![t.index]).collect()
    }
    fn cell(&self, column: u32, index: &[u32]) -> Option<Value> {
        let [i] = index else { return None };
        let traffic = self.0.traffic();
        let t = traffic.iter().find(|t| t.index == *i)?;
        let (kind, octets) = inet_address(t.host);
        Some(match column {
            2 => Value::string(&t.export_name),
            3 => Value::Integer(kind),
            4 => Value::OctetString(octets),
            5 => Value::Counter64(t.reads),
            6 => Value::Counter64(t.writes),
            7 => Value::Counter64(t.bytes_read),
            8 => Value::Counter64(t.bytes_written),
            9 => Value::Counter64(t.latency_us),
            _ => return None,
        })
    }
}
