//! Handlers every agent serves: SNMPv2-MIB `system` (1.3.6.1.2.1.1) and `snmp` (1.3.6.1.2.1.11); and with
//! SNMPv3, SNMP-FRAMEWORK-MIB `snmpEngine`, SNMP-MPD-MIB `snmpMPDStats` and SNMP-USER-BASED-SM-MIB `usmStats`
//! (all read-only).
//!
//! sysContact, sysName and sysLocation are writable (kept in memory only: the owner reads them
//! back with [`SystemGroup::contact`] etc. if it wants to persist them), as is
//! snmpEnableAuthenTraps. sysORTable is not served; sysORLastChange is 0.

use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::sync::{Arc, RwLock};

use crate::agent::handler::{FnPreparedSet, GetResult, MibHandler, PreparedSet, SetFailure, SetItem, UndoFailed};
use crate::agent::table::ScalarLayout;
use crate::counters::SnmpCounters;
use crate::oid::Oid;
use crate::pdu::{ErrorStatus, VarBind};
use crate::uptime::Uptime;
use crate::usm::Engine;
use crate::value::Value;

/// SNMPv2-MIB::system.
pub const SYSTEM: [u32; 7] = [1, 3, 6, 1, 2, 1, 1];
/// SNMPv2-MIB::snmp.
pub const SNMP: [u32; 7] = [1, 3, 6, 1, 2, 1, 11];
/// sysUpTime.0, the first varbind of every SNMPv2 notification.
pub const SYS_UP_TIME_0: [u32; 9] = [1, 3, 6, 1, 2, 1, 1, 3, 0];
/// snmpTrapOID.0, the second varbind of every SNMPv2 notification.
pub const SNMP_TRAP_OID_0: [u32; 11] = [1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0];
/// snmpTraps: the generic v1 traps map to `snmpTraps.(generic + 1)` (RFC 3584 §3.1).
pub const SNMP_TRAPS: [u32; 9] = [1, 3, 6, 1, 6, 3, 1, 1, 5];
/// snmpTrapEnterprise.0.
pub const SNMP_TRAP_ENTERPRISE_0: [u32; 11] = [1, 3, 6, 1, 6, 3, 1, 1, 4, 3, 0];

/// SNMP-FRAMEWORK-MIB::snmpEngine.
pub const SNMP_ENGINE: [u32; 9] = [1, 3, 6, 1, 6, 3, 10, 2, 1];
/// SNMP-MPD-MIB::snmpMPDStats.
pub const SNMP_MPD_STATS: [u32; 9] = [1, 3, 6, 1, 6, 3, 11, 2, 1];
/// SNMP-USER-BASED-SM-MIB::usmStats.
pub const USM_STATS: [u32; 9] = [1, 3, 6, 1, 6, 3, 15, 1, 1];
/// SNMP-TARGET-MIB::snmpUnknownContexts.0 (sent in Reports; the group is not served).
pub const SNMP_UNKNOWN_CONTEXTS_0: [u32; 10] = [1, 3, 6, 1, 6, 3, 12, 1, 5, 0];

const SYS_DESCR: u32 = 1;
const SYS_OBJECT_ID: u32 = 2;
const SYS_UP_TIME: u32 = 3;
const SYS_CONTACT: u32 = 4;
const SYS_NAME: u32 = 5;
const SYS_LOCATION: u32 = 6;
const SYS_SERVICES: u32 = 7;
const SYS_OR_LAST_CHANGE: u32 = 8;

/// Initial values of the system group.
#[derive(Clone, Debug)]
pub struct SystemInfo {
    pub descr: String,
    pub object_id: Oid,
    pub contact: String,
    pub name: String,
    pub location: String,
    /// sysServices bit mask (RFC 3418); 72 = applications + end-to-end.
    pub services: i32,
}

impl Default for SystemInfo {
    fn default() -> SystemInfo {
        SystemInfo {
            descr: "dvsan".to_string(),
            // enterprises.32473 (documentation enterprise, see the DVSAN-MIB).
            object_id: Oid::from_slice(&[1, 3, 6, 1, 4, 1, 32473]),
            contact: String::new(),
            name: String::new(),
            location: String::new(),
            services: 72,
        }
    }
}

#[derive(Debug)]
struct WritableStrings {
    contact: Vec<u8>,
    name: Vec<u8>,
    location: Vec<u8>,
}

/// The `system` group handler.
pub struct SystemGroup {
    layout: ScalarLayout,
    descr: Vec<u8>,
    object_id: Oid,
    services: i32,
    uptime: Uptime,
    strings: Arc<RwLock<WritableStrings>>,
}

impl SystemGroup {
    pub fn new(info: SystemInfo, uptime: Uptime) -> SystemGroup {
        SystemGroup {
            layout: ScalarLayout::new(
                Oid::from_slice(&SYSTEM),
                &[
                    SYS_DESCR,
                    SYS_OBJECT_ID,
                    SYS_UP_TIME,
                    SYS_CONTACT,
                    SYS_NAME,
                    SYS_LOCATION,
                    SYS_SERVICES,
                    SYS_OR_LAST_CHANGE,
                ],
            ),
            descr: info.descr.into_bytes(),
            object_id: info.object_id,
            services: info.services,
            uptime,
            strings: Arc::new(RwLock::new(WritableStrings {
                contact: info.contact.into_bytes(),
                name: info.name.into_bytes(),
                location: info.location.into_bytes(),
            })),
        }
    }

    /// Current sysContact (lossy UTF-8).
    pub fn contact(&self) -> String {
        self.read_string(SYS_CONTACT)
    }

    /// Current sysName (lossy UTF-8).
    pub fn name(&self) -> String {
        self.read_string(SYS_NAME)
    }

    /// Current sysLocation (lossy UTF-8).
    pub fn location(&self) -> String {
        self.read_string(SYS_LOCATION)
    }

    fn read_string(&self, arc: u32) -> String {
        let strings = self.strings.read().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(field(&strings, arc)).into_owned()
    }

    fn value(&self, arc: u32) -> Value {
        match arc {
            SYS_DESCR => Value::OctetString(self.descr.clone()),
            SYS_OBJECT_ID => Value::ObjectId(self.object_id.clone()),
            SYS_UP_TIME => Value::TimeTicks(self.uptime.ticks()),
            SYS_SERVICES => Value::Integer(self.services),
            SYS_OR_LAST_CHANGE => Value::TimeTicks(0),
            _ => {
                let strings = self.strings.read().unwrap_or_else(|e| e.into_inner());
                Value::OctetString(field(&strings, arc).to_vec())
            }
        }
    }
}

fn field(s: &WritableStrings, arc: u32) -> &Vec<u8> {
    match arc {
        SYS_CONTACT => &s.contact,
        SYS_NAME => &s.name,
        _ => &s.location,
    }
}

fn field_mut(s: &mut WritableStrings, arc: u32) -> &mut Vec<u8> {
    match arc {
        SYS_CONTACT => &mut s.contact,
        SYS_NAME => &mut s.name,
        _ => &mut s.location,
    }
}

/// DisplayString (RFC 2579): at most 255 octets of NVT ASCII.
fn check_display_string(index: usize, value: &Value) -> Result<Vec<u8>, SetFailure> {
    let Value::OctetString(bytes) = value else {
        return Err(SetFailure::new(index, ErrorStatus::WrongType));
    };
    if bytes.len() > 255 {
        return Err(SetFailure::new(index, ErrorStatus::WrongLength));
    }
    if !bytes.iter().all(|&b| (0x20..0x7F).contains(&b) || matches!(b, b'\r' | b'\n' | b'\t')) {
        return Err(SetFailure::new(index, ErrorStatus::WrongValue));
    }
    Ok(bytes.clone())
}

impl MibHandler for SystemGroup {
    fn get(&self, oid: &Oid) -> GetResult {
        self.layout.get_value(oid, |arc| self.value(arc))
    }

    fn get_next(&self, oid: &Oid) -> Option<VarBind> {
        self.layout.next_value(oid, |arc| self.value(arc))
    }

    fn prepare_set(&self, varbinds: &[SetItem<'_>]) -> Result<Box<dyn PreparedSet>, SetFailure> {
        let mut changes = Vec::with_capacity(varbinds.len());
        for &(index, vb) in varbinds {
            let arc = match self.layout.lookup(&vb.oid) {
                Ok(arc @ (SYS_CONTACT | SYS_NAME | SYS_LOCATION)) => arc,
                Ok(_) => return Err(SetFailure::new(index, ErrorStatus::NotWritable)),
                // No instance other than .0 can ever be created.
                Err(_) => return Err(SetFailure::new(index, ErrorStatus::NoCreation)),
            };
            changes.push((arc, check_display_string(index, &vb.value)?));
        }
        let strings = Arc::clone(&self.strings);
        Ok(Box::new(FnPreparedSet(move || {
            let mut s = strings.write().unwrap_or_else(|e| e.into_inner());
            let mut previous = Vec::with_capacity(changes.len());
            for (arc, new) in changes {
                previous.push((arc, std::mem::replace(field_mut(&mut s, arc), new)));
            }
            drop(s);
            Ok(move || -> Result<(), UndoFailed> {
                let mut s = strings.write().unwrap_or_else(|e| e.into_inner());
                for (arc, old) in previous.into_iter().rev() {
                    *field_mut(&mut s, arc) = old;
                }
                Ok(())
            })
        })))
    }
}

/// snmpEnableAuthenTraps values.
const AUTHEN_TRAPS_ENABLED: i32 = 1;
const AUTHEN_TRAPS_DISABLED: i32 = 2;
const SNMP_ENABLE_AUTHEN_TRAPS: u32 = 30;

/// The `snmp` group handler: the counters, and snmpEnableAuthenTraps.
pub struct SnmpGroup {
    layout: ScalarLayout,
    counters: Arc<SnmpCounters>,
    enable_authen_traps: Arc<AtomicI32>,
}

impl SnmpGroup {
    pub fn new(counters: Arc<SnmpCounters>) -> SnmpGroup {
        // RFC 1213 arcs 1..=32 except the unused 7 and 23; untracked ones read 0.
        let arcs: Vec<u32> = (1..=32).filter(|a| *a != 7 && *a != 23).collect();
        SnmpGroup {
            layout: ScalarLayout::new(Oid::from_slice(&SNMP), &arcs),
            counters,
            enable_authen_traps: Arc::new(AtomicI32::new(AUTHEN_TRAPS_DISABLED)),
        }
    }

    /// Whether snmpEnableAuthenTraps is enabled(1).
    pub fn authen_traps_enabled(&self) -> bool {
        self.enable_authen_traps.load(Ordering::Relaxed) == AUTHEN_TRAPS_ENABLED
    }

    fn value(&self, arc: u32) -> Value {
        if arc == SNMP_ENABLE_AUTHEN_TRAPS {
            return Value::Integer(self.enable_authen_traps.load(Ordering::Relaxed));
        }
        Value::Counter32(self.counters.by_arc(arc).map_or(0, SnmpCounters::read))
    }
}

impl MibHandler for SnmpGroup {
    fn get(&self, oid: &Oid) -> GetResult {
        self.layout.get_value(oid, |arc| self.value(arc))
    }

    fn get_next(&self, oid: &Oid) -> Option<VarBind> {
        self.layout.next_value(oid, |arc| self.value(arc))
    }

    fn prepare_set(&self, varbinds: &[SetItem<'_>]) -> Result<Box<dyn PreparedSet>, SetFailure> {
        let mut new_value = None;
        for &(index, vb) in varbinds {
            match self.layout.lookup(&vb.oid) {
                Ok(SNMP_ENABLE_AUTHEN_TRAPS) => {}
                Ok(_) => return Err(SetFailure::new(index, ErrorStatus::NotWritable)),
                Err(_) => return Err(SetFailure::new(index, ErrorStatus::NoCreation)),
            }
            match vb.value {
                Value::Integer(v @ (AUTHEN_TRAPS_ENABLED | AUTHEN_TRAPS_DISABLED)) => new_value = Some(v),
                Value::Integer(_) => return Err(SetFailure::new(index, ErrorStatus::WrongValue)),
                _ => return Err(SetFailure::new(index, ErrorStatus::WrongType)),
            }
        }
        let cell = Arc::clone(&self.enable_authen_traps);
        Ok(Box::new(FnPreparedSet(move || {
            let old = new_value.map(|v| cell.swap(v, Ordering::Relaxed));
            Ok(move || -> Result<(), UndoFailed> {
                if let Some(old) = old {
                    cell.store(old, Ordering::Relaxed);
                }
                Ok(())
            })
        })))
    }
}

/// SNMP-FRAMEWORK-MIB `snmpEngine`: snmpEngineID, snmpEngineBoots, snmpEngineTime, snmpEngineMaxMessageSize.
pub struct EngineGroup {
    layout: ScalarLayout,
    engine: Engine,
    max_message_size: i32,
}

impl EngineGroup {
    pub fn new(engine: Engine, max_message_size: usize) -> EngineGroup {
        EngineGroup {
            layout: ScalarLayout::new(Oid::from_slice(&SNMP_ENGINE), &[1, 2, 3, 4]),
            engine,
            max_message_size: i32::try_from(max_message_size).unwrap_or(i32::MAX),
        }
    }

    fn value(&self, arc: u32) -> Value {
        match arc {
            1 => Value::OctetString(self.engine.id().as_bytes().to_vec()),
            2 => Value::Integer(i32::try_from(self.engine.boots()).unwrap_or(i32::MAX)),
            3 => Value::Integer(i32::try_from(self.engine.time()).unwrap_or(i32::MAX)),
            _ => Value::Integer(self.max_message_size),
        }
    }
}

impl MibHandler for EngineGroup {
    fn get(&self, oid: &Oid) -> GetResult {
        self.layout.get_value(oid, |arc| self.value(arc))
    }

    fn get_next(&self, oid: &Oid) -> Option<VarBind> {
        self.layout.next_value(oid, |arc| self.value(arc))
    }
}

/// A group of read-only Counter32 scalars taken from [`SnmpCounters`] (snmpMPDStats, usmStats).
pub struct CounterGroup {
    layout: ScalarLayout,
    counters: Arc<SnmpCounters>,
    by_arc: fn(&SnmpCounters, u32) -> Option<&AtomicU32>,
}

impl CounterGroup {
    /// snmpMPDStats: snmpUnknownSecurityModels, snmpInvalidMsgs, snmpUnknownPDUHandlers.
    pub fn mpd_stats(counters: Arc<SnmpCounters>) -> CounterGroup {
        CounterGroup {
            layout: ScalarLayout::new(Oid::from_slice(&SNMP_MPD_STATS), &[1, 2, 3]),
            counters,
            by_arc: SnmpCounters::mpd_by_arc,
        }
    }

    /// usmStats: usmStatsUnsupportedSecLevels .. usmStatsDecryptionErrors.
    pub fn usm_stats(counters: Arc<SnmpCounters>) -> CounterGroup {
        CounterGroup {
            layout: ScalarLayout::new(Oid::from_slice(&USM_STATS), &[1, 2, 3, 4, 5, 6]),
            counters,
            by_arc: SnmpCounters::usm_by_arc,
        }
    }

    fn value(&self, arc: u32) -> Value {
        Value::Counter32((self.by_arc)(&self.counters, arc).map_or(0, SnmpCounters::read))
    }
}

impl MibHandler for CounterGroup {
    fn get(&self, oid: &Oid) -> GetResult {
        self.layout.get_value(oid, |arc| self.value(arc))
    }

    fn get_next(&self, oid: &Oid) -> Option<VarBind> {
        self.layout.next_value(oid, |arc| self.value(arc))
    }
}
