//! dvsanAccessTable: which host address may use which volume or partition export, created and destroyed by SET
//! on dvsanAccessRowStatus. blockd enforces these grants on every connection. A read-write grant is exclusive: a
//! second host's writing grant on overlapping blocks gets inconsistentValue unless both are readWriteShared.

use super::set::{enumerated, fail, find, layout_status, octets, prepare_rows, row_action, unsigned, Cell, RowAction};
use crate::unit::{Change, Unit};
use dvsan_layout::{AccessMode, GrantIndex, Layout, LayoutError, NewGrant, PartitionIndex, VolumeIndex};
use dvsan_mib as mib;
use dvsan_snmp::agent::Table;
use dvsan_snmp::agent::{PreparedSet, SetFailure, SetItem};
use dvsan_snmp::{ErrorStatus, Value};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

const VOLUME: u32 = 2;
const PARTITION: u32 = 3;
const ADDR_TYPE: u32 = 4;
const ADDR: u32 = 5;
const MODE: u32 = 6;
const ROW_STATUS: u32 = 7;

/// InetAddressType and InetAddress octets for an address (RFC 4001).
pub fn inet_address(ip: IpAddr) -> (i32, Vec<u8>) {
    match ip {
        IpAddr::V4(a) => (mib::inet_address_type::IPV4, a.octets().to_vec()),
        IpAddr::V6(a) => (mib::inet_address_type::IPV6, a.octets().to_vec()),
    }
}

/// dvsanAccessMode for a grant's mode.
fn mode_value(mode: AccessMode) -> i32 {
    match mode {
        AccessMode::ReadWrite => mib::dvsan_access_mode::READ_WRITE,
        AccessMode::ReadOnly => mib::dvsan_access_mode::READ_ONLY,
        AccessMode::ReadWriteShared => mib::dvsan_access_mode::READ_WRITE_SHARED,
    }
}

pub struct AccessTable(pub Arc<Unit>);

impl Table for AccessTable {
    fn entry(&self) -> &'static [u32] {
        mib::DVSAN_ACCESS_ENTRY
    }
    fn columns(&self) -> &'static [u32] {
        &[VOLUME, PARTITION, ADDR_TYPE, ADDR, MODE, ROW_STATUS]
    }
    fn rows(&self) -> Vec<Vec<u32>> {
        self.0.layout().grants.iter().map(|g| vec![g.index.0]).collect()
    }
    fn cell(&self, column: u32, index: &[u32]) -> Option<Value> {
        let [i] = index else { return None };
        let layout = self.0.layout();
        let g = layout.grants.iter().find(|g| g.index == GrantIndex(*i))?;
        let (kind, octets) = inet_address(g.host);
        Some(match column {
            VOLUME => Value::Gauge32(g.volume.0),
            PARTITION => Value::Gauge32(g.partition.map_or(0, |p| p.0)),
            ADDR_TYPE => Value::Integer(kind),
            ADDR => Value::OctetString(octets),
            MODE => Value::Integer(mode_value(g.mode)),
            ROW_STATUS => Value::Integer(mib::row_status::ACTIVE),
            _ => return None,
        })
    }

    fn prepare_set(&self, varbinds: &[SetItem<'_>]) -> Result<Box<dyn PreparedSet>, SetFailure> {
        let writable = [VOLUME, PARTITION, ADDR_TYPE, ADDR, MODE, ROW_STATUS];
        prepare_rows(&self.0, self.entry(), varbinds, &writable, 1, &|l, index, cells| {
            plan_row(l, GrantIndex(index[0]), cells)
        })
    }
}

fn plan_row(layout: &Layout, index: GrantIndex, cells: &[Cell<'_>]) -> Result<Option<(usize, Change)>, SetFailure> {
    let volume = find(cells, VOLUME).map(|(i, vb)| unsigned(i, vb).map(|v| (i, v))).transpose()?;
    let partition = find(cells, PARTITION).map(|(i, vb)| unsigned(i, vb).map(|v| (i, v))).transpose()?;
    let addr_type = find(cells, ADDR_TYPE)
        .map(|(i, vb)| enumerated(i, vb, &[mib::inet_address_type::IPV4, mib::inet_address_type::IPV6]).map(|v| (i, v)))
        .transpose()?;
    let addr = find(cells, ADDR).map(|(i, vb)| octets(i, vb, 255).map(|v| (i, v))).transpose()?;
    let mode = find(cells, MODE)
        .map(|(i, vb)| {
            let modes = [
                mib::dvsan_access_mode::READ_WRITE,
                mib::dvsan_access_mode::READ_ONLY,
                mib::dvsan_access_mode::READ_WRITE_SHARED,
            ];
            enumerated(i, vb, &modes).map(|v| (i, v))
        })
        .transpose()?;
    let status = find(cells, ROW_STATUS).map(|(i, vb)| row_action(i, vb).map(|a| (i, a))).transpose()?;
    if let Some((i, 0)) = volume {
        return Err(fail(i, ErrorStatus::WrongValue));
    }
    let first = cells[0].0;
    let existing = layout.grants.iter().find(|g| g.index == index);
    match (existing, status) {
        (Some(_), Some((i, RowAction::CreateAndGo))) => Err(fail(i, ErrorStatus::InconsistentValue)),
        (None, Some((i, RowAction::CreateAndGo))) => {
            let (Some((_, vol)), Some((_, kind)), Some((ai, octets))) = (volume, addr_type, &addr) else {
                return Err(fail(i, ErrorStatus::InconsistentValue));
            };
            let host = match (kind, octets.len()) {
                (k, 4) if k == mib::inet_address_type::IPV4 => {
                    IpAddr::V4(Ipv4Addr::new(octets[0], octets[1], octets[2], octets[3]))
                }
                (k, 16) if k == mib::inet_address_type::IPV6 => {
                    let mut a = [0u8; 16];
                    a.copy_from_slice(octets);
                    IpAddr::V6(Ipv6Addr::from(a))
                }
                _ => return Err(fail(*ai, ErrorStatus::InconsistentValue)),
            };
            let req = NewGrant {
                index: Some(index),
                volume: VolumeIndex(vol),
                partition: partition.and_then(|(_, p)| (p != 0).then_some(PartitionIndex(p))),
                host,
                mode: match mode.map(|(_, m)| m) {
                    Some(mib::dvsan_access_mode::READ_ONLY) => AccessMode::ReadOnly,
                    Some(mib::dvsan_access_mode::READ_WRITE_SHARED) => AccessMode::ReadWriteShared,
                    _ => AccessMode::ReadWrite,
                },
            };
            let g = layout.plan_grant(&req).map_err(|e| {
                let at = match e {
                    LayoutError::NoSuchVolume(_) => volume.map(|(i, _)| i),
                    LayoutError::NoSuchPartition(..) => partition.map(|(i, _)| i),
                    LayoutError::DuplicateGrant { .. } => Some(*ai),
                    // A second host writing the volume: the mode (or, when the default was taken, the host) is
                    // what conflicts.
                    LayoutError::ExclusiveGrant { .. } => Some(mode.map_or(*ai, |(i, _)| i)),
                    _ => None,
                };
                fail(at.unwrap_or(i), layout_status(&e))
            })?;
            Ok(Some((i, Change::CreateGrant(g))))
        }
        (Some(g), Some((i, RowAction::Destroy))) => {
            let g = layout.plan_revoke(g.index).map_err(|e| fail(i, layout_status(&e)))?;
            Ok(Some((i, Change::RevokeGrant(g.clone()))))
        }
        (None, Some((_, RowAction::Destroy))) => Ok(None),
        (None, _) => Err(fail(status.map_or(first, |(i, _)| i), ErrorStatus::InconsistentName)),
        (Some(g), _) => {
            // Grants are immutable while active: the same values are accepted, changes are inconsistent.
            let (kind, octets) = inet_address(g.host);
            let mode_now = mode_value(g.mode);
            let same = volume.is_none_or(|(_, v)| v == g.volume.0)
                && partition.is_none_or(|(_, p)| p == g.partition.map_or(0, |p| p.0))
                && addr_type.is_none_or(|(_, k)| k == kind)
                && addr.as_ref().is_none_or(|(_, a)| *a == octets)
                && mode.is_none_or(|(_, m)| m == mode_now);
            if same {
                Ok(None)
            } else {
                Err(fail(first, ErrorStatus::InconsistentValue))
            }
        }
    }
}
