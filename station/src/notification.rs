//! A received notification as the station keeps it: the stored form, its JSON, and its one-line text form.
//!
//! The receiver turns each decoded notification into a [`NotificationRecord`] once; the store keeps it (varbinds
//! as JSON), the text trap log and `dvsan-station traps` both print it with [`NotificationRecord::line`], so the
//! log file and the CLI show the same thing. Names come from `dvsan_mib::describe` (our MIBs and the standard
//! nodes the generator knows), numeric otherwise.

use dvsan_mib::describe;
use dvsan_snmp::{Oid, Value, VarBind};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;

/// Which PDU carried the notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NotificationKind {
    /// SNMPv1 Trap-PDU.
    #[serde(rename = "trapV1")]
    TrapV1,
    /// SNMPv2-Trap-PDU.
    #[serde(rename = "trap")]
    TrapV2,
    /// InformRequest-PDU (acknowledged).
    #[serde(rename = "inform")]
    Inform,
}

impl NotificationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::TrapV1 => "trapV1",
            NotificationKind::TrapV2 => "trap",
            NotificationKind::Inform => "inform",
        }
    }

    pub fn parse(text: &str) -> Option<NotificationKind> {
        match text {
            "trapV1" => Some(NotificationKind::TrapV1),
            "trap" => Some(NotificationKind::TrapV2),
            "inform" => Some(NotificationKind::Inform),
            _ => None,
        }
    }

    fn label(self) -> &'static str {
        match self {
            NotificationKind::TrapV1 => "TRAP(v1)",
            NotificationKind::TrapV2 => "TRAP",
            NotificationKind::Inform => "INFORM",
        }
    }
}

/// One variable binding in stored form: dotted OID, SMI type name and a JSON value.
///
/// Integers, counters, gauges and time ticks are JSON numbers; OBJECT IDENTIFIERs are dotted strings; IpAddress is
/// dotted quad text; OCTET STRINGs are text when they are printable UTF-8 and otherwise hex in `hex`; exceptions
/// and NULL have no value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VarBindRecord {
    pub oid: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub value: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hex: Option<String>,
}

impl VarBindRecord {
    pub fn from_varbind(vb: &VarBind) -> VarBindRecord {
        let (value, hex) = match &vb.value {
            Value::Integer(v) => (serde_json::Value::from(*v), None),
            Value::Counter32(v) | Value::Gauge32(v) | Value::TimeTicks(v) => (serde_json::Value::from(*v), None),
            Value::Counter64(v) => (serde_json::Value::from(*v), None),
            Value::OctetString(bytes) => match printable_text(bytes) {
                Some(text) => (serde_json::Value::from(text), None),
                None => (serde_json::Value::Null, Some(hex_string(bytes))),
            },
            Value::Opaque(bytes) => (serde_json::Value::Null, Some(hex_string(bytes))),
            Value::ObjectId(oid) => (serde_json::Value::from(oid.to_string()), None),
            Value::IpAddress(a) => (serde_json::Value::from(std::net::Ipv4Addr::from(*a).to_string()), None),
            Value::Null | Value::NoSuchObject | Value::NoSuchInstance | Value::EndOfMibView => {
                (serde_json::Value::Null, None)
            }
        };
        VarBindRecord { oid: vb.oid.to_string(), kind: vb.value.type_name().to_string(), value, hex }
    }

    /// Back to a varbind (for forwarding a stored notification, and for tests). `None` when the record is not
    /// something [`VarBindRecord::from_varbind`] produces.
    pub fn to_varbind(&self) -> Option<VarBind> {
        let oid: Oid = self.oid.parse().ok()?;
        let bytes = || -> Option<Vec<u8>> {
            match (&self.hex, self.value.as_str()) {
                (Some(hex), _) => parse_hex(hex),
                (None, Some(text)) => Some(text.as_bytes().to_vec()),
                (None, None) => None,
            }
        };
        let u32_value = || self.value.as_u64().and_then(|v| u32::try_from(v).ok());
        let value = match self.kind.as_str() {
            "INTEGER" => Value::Integer(i32::try_from(self.value.as_i64()?).ok()?),
            "Counter32" => Value::Counter32(u32_value()?),
            "Gauge32" => Value::Gauge32(u32_value()?),
            "TimeTicks" => Value::TimeTicks(u32_value()?),
            "Counter64" => Value::Counter64(self.value.as_u64()?),
            "OCTET STRING" => Value::OctetString(bytes()?),
            "Opaque" => Value::Opaque(bytes()?),
            "OBJECT IDENTIFIER" => Value::ObjectId(self.value.as_str()?.parse().ok()?),
            "IpAddress" => Value::IpAddress(self.value.as_str()?.parse::<std::net::Ipv4Addr>().ok()?.octets()),
            "NULL" => Value::Null,
            "noSuchObject" => Value::NoSuchObject,
            "noSuchInstance" => Value::NoSuchInstance,
            "endOfMibView" => Value::EndOfMibView,
            _ => return None,
        };
        Some(VarBind::new(oid, value))
    }

    /// `name = TYPE: value`, snmptrapd style.
    fn write_text(&self, out: &mut String) {
        out.push_str(&describe_dotted(&self.oid));
        out.push_str(" = ");
        match self.kind.as_str() {
            "NULL" | "noSuchObject" | "noSuchInstance" | "endOfMibView" => out.push_str(&self.kind),
            "OBJECT IDENTIFIER" => {
                let _ = write!(out, "OID: {}", self.value.as_str().map(describe_dotted).unwrap_or_default());
            }
            "TimeTicks" => {
                let ticks = self.value.as_u64().unwrap_or(0);
                let _ = write!(out, "Timeticks: ({ticks}) {}", ticks_text(ticks));
            }
            "OCTET STRING" => match (&self.hex, self.value.as_str()) {
                (Some(hex), _) => {
                    let _ = write!(out, "Hex-STRING: {hex}");
                }
                (None, Some(text)) => {
                    let _ = write!(out, "STRING: {text:?}");
                }
                (None, None) => out.push_str("STRING: \"\""),
            },
            kind => {
                let shown = match (&self.hex, &self.value) {
                    (Some(hex), _) => hex.clone(),
                    (None, serde_json::Value::String(text)) => text.clone(),
                    (None, other) => other.to_string(),
                };
                let _ = write!(out, "{kind}: {shown}");
            }
        }
    }
}

/// A notification as stored in the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationRecord {
    /// Row id in the store (0 before it is stored).
    pub id: i64,
    /// Unix milliseconds when the station received it.
    pub time_ms: i64,
    /// Source address of the datagram.
    pub source: SocketAddr,
    /// "v1" or "v2c".
    pub version: String,
    pub community: String,
    pub kind: NotificationKind,
    /// sysUpTime.0 (v2c) or the v1 time-stamp, when present.
    pub uptime: Option<u32>,
    /// snmpTrapOID.0 (v2c) or the RFC 3584 translation of the v1 generic/specific trap, dotted.
    pub trap_oid: String,
    /// The unit the notification came from when the station could tell (dvsanUnitId).
    pub unit_id: Option<String>,
    /// The varbinds after sysUpTime.0 and snmpTrapOID.0 (all of them for v1 traps).
    pub varbinds: Vec<VarBindRecord>,
}

impl NotificationRecord {
    /// The notification's MIB name (`linkDown`, `dvsanLayoutChanged`) or its dotted OID.
    pub fn trap_name(&self) -> String {
        describe_dotted(&self.trap_oid)
    }

    /// One snmptrapd-like line: time, source, kind and community, notification name, varbinds.
    pub fn line(&self) -> String {
        let mut out = String::with_capacity(160);
        let _ = write!(
            out,
            "{} {} {} {}/{:?} {}",
            crate::timefmt::format_ms(self.time_ms),
            self.source,
            self.kind.label(),
            self.version,
            self.community,
            self.trap_name()
        );
        if let Some(uptime) = self.uptime {
            let _ = write!(out, " uptime={}", ticks_text(u64::from(uptime)));
        }
        let mut first = true;
        for vb in &self.varbinds {
            out.push_str(if first { ": " } else { ", " });
            first = false;
            vb.write_text(&mut out);
        }
        // One line per notification, whatever the strings contained.
        if out.contains(['\n', '\r']) {
            out = out.replace(['\n', '\r'], " ");
        }
        out
    }
}

/// `dvsan_mib::describe` for a dotted OID string (the string itself when it does not parse).
///
/// The receive path names every varbind of every notification, and the same few OIDs come back over and over,
/// so names are cached per thread (the cache is emptied when it grows past a bound).
pub fn describe_dotted(dotted: &str) -> String {
    const MAX_CACHED: usize = 4096;
    thread_local! {
        static CACHE: RefCell<HashMap<String, String>> = RefCell::new(HashMap::new());
    }
    CACHE.with(|cache| {
        if let Some(name) = cache.borrow().get(dotted) {
            return name.clone();
        }
        let name = match dotted.parse::<Oid>() {
            Ok(oid) => describe(oid.as_slice()),
            Err(_) => dotted.to_string(),
        };
        let mut cache = cache.borrow_mut();
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert(dotted.to_string(), name.clone());
        name
    })
}

/// TimeTicks as `d:hh:mm:ss.cc` (net-snmp's style, days first only when there are any).
pub fn ticks_text(ticks: u64) -> String {
    let centis = ticks % 100;
    let secs = ticks / 100;
    let (days, secs) = (secs / 86_400, secs % 86_400);
    let (hours, mins, secs) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    if days > 0 {
        format!("{days}:{hours:02}:{mins:02}:{secs:02}.{centis:02}")
    } else {
        format!("{hours}:{mins:02}:{secs:02}.{centis:02}")
    }
}

fn printable_text(bytes: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(bytes).ok()?;
    text.chars().all(|c| !c.is_control() || c == '\t').then_some(text)
}

fn hex_string(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn parse_hex(text: &str) -> Option<Vec<u8>> {
    let pairs = text.as_bytes().chunks_exact(2);
    if !pairs.remainder().is_empty() {
        return None;
    }
    pairs.map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vb(oid: &[u32], value: Value) -> VarBind {
        VarBind::new(Oid::from_slice(oid), value)
    }

    #[test]
    fn varbinds_round_trip_through_json() {
        let values = [
            Value::Integer(-5),
            Value::Counter32(7),
            Value::Gauge32(u32::MAX),
            Value::TimeTicks(12345),
            Value::Counter64(u64::MAX),
            Value::string("hello"),
            Value::OctetString(vec![0, 1, 0xff]),
            Value::Opaque(vec![9]),
            Value::ObjectId(Oid::from_slice(dvsan_mib::COLD_START)),
            Value::IpAddress([127, 0, 0, 2]),
            Value::Null,
            Value::NoSuchInstance,
        ];
        for value in values {
            let original = vb(&[1, 3, 6, 1, 9, 0], value);
            let record = VarBindRecord::from_varbind(&original);
            let json = serde_json::to_string(&record).unwrap();
            let back: VarBindRecord = serde_json::from_str(&json).unwrap();
            assert_eq!(back.to_varbind(), Some(original), "{json}");
        }
    }

    #[test]
    fn line_names_things() {
        let mut unit_id = dvsan_mib::DVSAN_UNIT_ID.to_vec();
        unit_id.push(0);
        let record = NotificationRecord {
            id: 1,
            time_ms: 0,
            source: "127.0.0.2:40000".parse().unwrap(),
            version: "v2c".into(),
            community: "public".into(),
            kind: NotificationKind::TrapV2,
            uptime: Some(123_456),
            trap_oid: dvsan_mib::dotted(dvsan_mib::LINK_DOWN),
            unit_id: None,
            varbinds: vec![
                VarBindRecord::from_varbind(&vb(&unit_id, Value::string("abc\ndef"))),
                VarBindRecord::from_varbind(&vb(&[1, 3, 6, 1, 9, 1], Value::Integer(2))),
            ],
        };
        assert_eq!(
            record.line(),
            "1970-01-01T00:00:00.000Z 127.0.0.2:40000 TRAP v2c/\"public\" linkDown uptime=0:20:34.56: \
             dvsanUnitId.0 = Hex-STRING: 6162630a646566, 1.3.6.1.9.1 = INTEGER: 2"
        );
        assert_eq!(ticks_text(100 * 86_400 + 1), "1:00:00:00.01");
    }
}
