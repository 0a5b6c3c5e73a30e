//! dvsanUnit scalars: identity, geometry, free space and space still being cleared, where the data service
//! listens, the change counter.

use super::access_table::inet_address;
use crate::unit::Unit;
use dvsan_mib as mib;
use dvsan_snmp::agent::Scalars;
use dvsan_snmp::Value;
use std::sync::Arc;

pub struct UnitScalars(pub Arc<Unit>);

impl Scalars for UnitScalars {
    fn group(&self) -> &'static [u32] {
        mib::DVSAN_UNIT
    }
    fn members(&self) -> &'static [u32] {
        &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]
    }
    fn value(&self, member: u32) -> Option<Value> {
        let layout = self.0.layout();
        let link = self.0.link();
        Some(match member {
            1 => Value::string(&layout.unit.unit_id),
            2 => Value::string(&layout.unit.name),
            3 => Value::Gauge32(layout.unit.block_size),
            4 => Value::gauge32_saturating(layout.capacity().0),
            5 => Value::gauge32_saturating(layout.free_blocks().0),
            6 => Value::Integer(link.listen.map_or(mib::inet_address_type::UNKNOWN, |a| inet_address(a.ip()).0)),
            7 => Value::OctetString(link.listen.map_or_else(Vec::new, |a| inet_address(a.ip()).1)),
            8 => Value::Gauge32(link.listen.map_or(0, |a| u32::from(a.port()))),
            9 => Value::Counter32(layout.unit.change_counter),
            10 => Value::Integer(if link.up {
                mib::dvsan_unit_data_service_state::SERVING
            } else {
                mib::dvsan_unit_data_service_state::STOPPED
            }),
            11 => Value::Gauge32(layout.next_volume_index().map_or(0, |i| i.0)),
            12 => Value::Gauge32(layout.next_grant_index().map_or(0, |i| i.0)),
            13 => Value::gauge32_saturating(layout.largest_free().0),
            14 => Value::gauge32_saturating(self.0.clearing_blocks().0),
            _ => return None,
        })
    }
}
