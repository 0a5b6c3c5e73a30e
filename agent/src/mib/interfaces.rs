//! IF-MIB's interfaces group for the unit's one data interface (ifIndex 1): the NBD data service.
//!
//! ifOperStatus follows blockd's heartbeat, and linkUp/linkDown carry these objects, so an NMS sees the data
//! path's state the standard way. Octet counters are the data service's byte totals (writes in, reads out).

use crate::unit::Unit;
use dvsan_mib as mib;
use dvsan_snmp::agent::{Scalars, Table};
use dvsan_snmp::Value;
use std::sync::Arc;

/// ifIndex of the data interface.
pub const DATA_IF_INDEX: u32 = 1;

pub struct IfNumber;

impl Scalars for IfNumber {
    fn group(&self) -> &'static [u32] {
        mib::INTERFACES
    }
    fn members(&self) -> &'static [u32] {
        &[1]
    }
    fn value(&self, member: u32) -> Option<Value> {
        (member == 1).then_some(Value::Integer(1))
    }
}

pub struct IfTable(pub Arc<Unit>);

impl IfTable {
    pub fn oper_status(up: bool) -> i32 {
        if up {
            mib::if_oper_status::UP
        } else {
            mib::if_oper_status::DOWN
        }
    }
}

impl Table for IfTable {
    fn entry(&self) -> &'static [u32] {
        mib::IF_ENTRY
    }
    fn columns(&self) -> &'static [u32] {
        &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 16]
    }
    fn rows(&self) -> Vec<Vec<u32>> {
        vec![vec![DATA_IF_INDEX]]
    }
    fn cell(&self, column: u32, index: &[u32]) -> Option<Value> {
        if index != [DATA_IF_INDEX] {
            return None;
        }
        let link = self.0.link();
        let traffic = self.0.traffic();
        Some(match column {
            1 => Value::Integer(DATA_IF_INDEX as i32),
            2 => Value::string("dvsan data service (NBD)"),
            3 => Value::Integer(mib::iana_if_type::PROP_VIRTUAL),
            4 => Value::Integer(0),
            5 => Value::Gauge32(0),
            6 => Value::OctetString(Vec::new()),
            7 => Value::Integer(mib::if_admin_status::UP),
            8 => Value::Integer(Self::oper_status(link.up)),
            9 => Value::TimeTicks(link.last_change),
            10 => Value::counter32_wrapping(traffic.iter().map(|t| t.bytes_written).sum()),
            16 => Value::counter32_wrapping(traffic.iter().map(|t| t.bytes_read).sum()),
            _ => return None,
        })
    }
}
