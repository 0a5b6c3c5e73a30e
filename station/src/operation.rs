//! Everything an operator can do to the pool, as one type: [`Operation`], executed by one path
//! ([`Operation::execute`], over an [`Allocator`] that holds the operation's locks) for both the CLI commands
//! (`volume create`, `assign`, `unit rescan`, `unit approve`, ...) and the station's tasks (the `tasks` module), so the two cannot
//! drift apart.
//!
//! A task row gives its operation as text [`Arguments`] (dvsanStationTaskTable's columns);
//! [`Operation::from_arguments`] parses them with the CLI's parsers and says what was wrong and what would be
//! valid. [`Operation::lock_scope`] names the locks an operation needs (one unit, the whole pool, or neither);
//! progress goes to a [`Progress`] given to the allocator; the [`Outcome`] is a result in plain words, the unit and
//! volume it concerns, and the details the CLI prints.

use crate::allocate::{
    human_size, parse_host, parse_request_size, AllocateError, Allocation, Allocator, LockScope, SizeRequest, UnitScan,
};
use crate::mirror::MirrorAllocation;
use crate::model::PoolPartition;
use crate::store::{assignment_list, AssignmentRecord, PendingUnit, RemovedUnit, StationStore};
use dvsan_layout::VolumeIndex;
use dvsan_snmp::Endpoint;
use std::net::IpAddr;

pub use crate::allocate::{NoProgress, Progress};
pub use crate::task_model::{Arguments, OperationKind};

/// One change to the pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    CreateVolume {
        unit: String,
        size_bytes: u64,
        name: Option<String>,
    },
    DestroyVolume {
        unit: String,
        volume: u32,
    },
    CreatePartition {
        unit: String,
        volume: u32,
        size_bytes: u64,
    },
    DestroyPartition {
        unit: String,
        volume: u32,
        partition: u32,
    },
    Assign {
        unit: String,
        volume: u32,
        host: IpAddr,
        read_only: bool,
        /// A readWriteShared assignment; the volume may have other shared ones.
        shared: bool,
    },
    Unassign {
        unit: String,
        volume: u32,
        host: Option<IpAddr>,
    },
    Allocate {
        size_bytes: u64,
        host: IpAddr,
        name: Option<String>,
        read_only: bool,
        /// A readWriteShared assignment; by name, it may join a volume whose assignments are all shared.
        shared: bool,
        /// 2 or 3: a mirrored volume, each replica on a unit of its own (0 or 1: an ordinary volume).
        replicas: u32,
    },
    RescanUnit {
        unit: String,
    },
    /// The agent's address or host name (resolved when the operation runs).
    AddUnit {
        agent: Endpoint,
    },
    /// Forget a unit; `force` releases its assignments instead of refusing.
    RemoveUnit {
        unit: String,
        force: bool,
    },
    /// Read a pending unit (its index, claimed unit id or prefix, or address) into the pool, bound to its address.
    ApproveUnit {
        pending: String,
    },
    /// Keep a pending unit out of the pool.
    RejectUnit {
        pending: String,
    },
    /// Follow a unit's clearing of a volume until done (changes nothing; the station starts it itself).
    ClearVolume {
        unit: String,
        volume: u32,
    },
}

/// How an operation ended well: what it did in plain words, the unit and volume it concerns (0 when none), and
/// the details the CLI prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub text: String,
    pub unit: u32,
    /// The volume it created, assigned or changed, if any.
    pub volume: Option<VolumeIndex>,
    pub detail: Detail,
}

/// What an operation made or changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detail {
    /// A free volume was created (`host` is unspecified, `grant` 0).
    Volume(Allocation),
    /// A volume was assigned to a host (assign, allocate).
    Assignment(Allocation),
    Partition(PoolPartition),
    /// A mirrored volume was allocated: its replicas, each assigned to the host.
    Mirror(MirrorAllocation),
    /// An assignment was released.
    Released(AssignmentRecord),
    /// A mirrored volume was released: its index and every replica's assignment.
    MirrorReleased(u32, Vec<AssignmentRecord>),
    /// A volume or partition was destroyed.
    Destroyed,
    /// A unit finished clearing a volume.
    Cleared,
    /// A unit was read (rescan) or added.
    Unit(UnitScan),
    /// A unit was removed from the pool.
    Removed(RemovedUnit),
    /// A pending unit was approved: its row as it was, and the unit as it was read.
    Approved(Box<PendingUnit>, UnitScan),
    /// A pending unit was rejected (its row, now rejected).
    Rejected(Box<PendingUnit>),
}

fn needs_unit(kind: OperationKind) -> String {
    format!("{kind} needs a unit (dvsanStationTaskUnit): its index, unit id, name or agent address")
}

fn needs_volume(kind: OperationKind) -> String {
    format!("{kind} needs a volume (dvsanStationTaskVolume): the volume's index on the unit, 1 or more")
}

fn size(kind: OperationKind, text: &str) -> Result<u64, String> {
    if text.trim().is_empty() {
        return Err(format!(
            "{kind} needs a size (dvsanStationTaskSize): bytes or a number with K, M, G or T (for example 80G or 512M)"
        ));
    }
    parse_request_size(text.trim()).map_err(|e| e.to_string())
}

fn host(kind: OperationKind, text: &str) -> Result<IpAddr, String> {
    if text.trim().is_empty() {
        return Err(format!(
            "{kind} needs a host (dvsanStationTaskHost): the IP address its NBD connections come from, for example \
             192.0.2.10"
        ));
    }
    parse_host(text).map_err(|e| e.to_string())
}

impl Operation {
    /// Parses a task row's arguments; `default_agent_port` completes an addUnit address without a port. The error
    /// says what was wrong and what would be valid. Arguments the operation does not use are ignored.
    pub fn from_arguments(args: &Arguments, default_agent_port: u16) -> Result<Operation, String> {
        let kind = args.operation;
        let unit = || {
            let unit = args.unit.trim();
            if unit.is_empty() {
                Err(needs_unit(kind))
            } else {
                Ok(unit.to_string())
            }
        };
        let volume = || args.volume.map(|v| v.0).ok_or_else(|| needs_volume(kind));
        let name = (!args.name.is_empty()).then(|| args.name.clone());
        Ok(match kind {
            OperationKind::CreateVolume => {
                Operation::CreateVolume { unit: unit()?, size_bytes: size(kind, &args.size)?, name }
            }
            OperationKind::DestroyVolume => Operation::DestroyVolume { unit: unit()?, volume: volume()? },
            OperationKind::CreatePartition => {
                Operation::CreatePartition { unit: unit()?, volume: volume()?, size_bytes: size(kind, &args.size)? }
            }
            OperationKind::DestroyPartition => {
                let (unit, volume) = (unit()?, volume()?);
                let Some(partition) = args.partition else {
                    return Err(format!(
                        "{kind} needs a partition (dvsanStationTaskPartition): the partition's index in the volume, \
                         1 or more"
                    ));
                };
                Operation::DestroyPartition { unit, volume, partition: partition.0 }
            }
            OperationKind::AssignVolume => Operation::Assign {
                unit: unit()?,
                volume: volume()?,
                host: host(kind, &args.host)?,
                read_only: args.read_only,
                shared: args.shared,
            },
            OperationKind::UnassignVolume => {
                let host = if args.host.trim().is_empty() { None } else { Some(host(kind, &args.host)?) };
                Operation::Unassign { unit: unit()?, volume: volume()?, host }
            }
            OperationKind::Allocate => Operation::Allocate {
                size_bytes: size(kind, &args.size)?,
                host: host(kind, &args.host)?,
                name,
                read_only: args.read_only,
                shared: args.shared,
                replicas: crate::mirror::check_replicas(args.replicas)
                    .map_err(|e| format!("{kind}: dvsanStationTaskReplicas {e}"))?,
            },
            OperationKind::RescanUnit => Operation::RescanUnit { unit: unit()? },
            OperationKind::ClearVolume => Operation::ClearVolume { unit: unit()?, volume: volume()? },
            OperationKind::RemoveUnit => Operation::RemoveUnit { unit: unit()?, force: false },
            OperationKind::RemoveUnitForce => Operation::RemoveUnit { unit: unit()?, force: true },
            OperationKind::ApproveUnit | OperationKind::RejectUnit => {
                let pending = args.unit.trim();
                if pending.is_empty() {
                    return Err(format!(
                        "{kind} needs the pending unit in dvsanStationTaskUnit: its dvsanStationPendingIndex, the unit \
                         id it claims (or a unique prefix) or its address"
                    ));
                }
                let pending = pending.to_string();
                if kind == OperationKind::ApproveUnit {
                    Operation::ApproveUnit { pending }
                } else {
                    Operation::RejectUnit { pending }
                }
            }
            OperationKind::AddUnit => {
                if args.unit.trim().is_empty() {
                    return Err(format!(
                        "{kind} needs the agent's address in dvsanStationTaskUnit: an IP address or host name with an \
                         optional port, for example 192.0.2.20, 192.0.2.20:{default_agent_port} or unit-a.example.net"
                    ));
                }
                let agent = Endpoint::parse(&args.unit, default_agent_port).and_then(Endpoint::require_port);
                Operation::AddUnit { agent: agent.map_err(|e| e.to_string())? }
            }
        })
    }

    pub fn kind(&self) -> OperationKind {
        match self {
            Operation::CreateVolume { .. } => OperationKind::CreateVolume,
            Operation::DestroyVolume { .. } => OperationKind::DestroyVolume,
            Operation::CreatePartition { .. } => OperationKind::CreatePartition,
            Operation::DestroyPartition { .. } => OperationKind::DestroyPartition,
            Operation::Assign { .. } => OperationKind::AssignVolume,
            Operation::Unassign { .. } => OperationKind::UnassignVolume,
            Operation::Allocate { .. } => OperationKind::Allocate,
            Operation::RescanUnit { .. } => OperationKind::RescanUnit,
            Operation::AddUnit { .. } => OperationKind::AddUnit,
            Operation::RemoveUnit { force: false, .. } => OperationKind::RemoveUnit,
            Operation::RemoveUnit { force: true, .. } => OperationKind::RemoveUnitForce,
            Operation::ApproveUnit { .. } => OperationKind::ApproveUnit,
            Operation::RejectUnit { .. } => OperationKind::RejectUnit,
            Operation::ClearVolume { .. } => OperationKind::ClearVolume,
        }
    }

    /// The pool unit the operation names, as given (a pending unit is not one).
    pub fn unit(&self) -> Option<&str> {
        match self {
            Operation::CreateVolume { unit, .. }
            | Operation::DestroyVolume { unit, .. }
            | Operation::CreatePartition { unit, .. }
            | Operation::DestroyPartition { unit, .. }
            | Operation::Assign { unit, .. }
            | Operation::Unassign { unit, .. }
            | Operation::RescanUnit { unit }
            | Operation::ClearVolume { unit, .. }
            | Operation::RemoveUnit { unit, .. } => Some(unit),
            Operation::Allocate { .. }
            | Operation::AddUnit { .. }
            | Operation::ApproveUnit { .. }
            | Operation::RejectUnit { .. } => None,
        }
    }

    /// The locks the operation needs: its unit's (found in `store`), the whole pool for an allocation (it may
    /// choose any unit), the shared pool lock only for adding a unit (also by approving a pending one) and for
    /// rejecting a pending unit (it changes no unit), and none to follow a unit's clearing.
    pub fn lock_scope(&self, store: &StationStore) -> Result<LockScope, AllocateError> {
        Ok(match (self, self.unit()) {
            (Operation::Allocate { .. }, _) => LockScope::Pool,
            (Operation::ClearVolume { unit, .. }, _) => {
                store.find_unit(unit)?;
                LockScope::Nothing
            }
            // Releasing a replica of a mirrored volume releases them all, on several units.
            (Operation::Unassign { unit, volume, .. }, _)
                if store.mirror_of(store.find_unit(unit)?.index, *volume)?.is_some() =>
            {
                LockScope::Pool
            }
            (_, Some(unit)) => LockScope::Unit(store.find_unit(unit)?.index),
            (_, None) => LockScope::Shared,
        })
    }

    /// Runs the operation with `allocator`, which must hold the locks of [`Operation::lock_scope`].
    pub async fn execute(&self, allocator: &mut Allocator<'_>) -> Result<Outcome, AllocateError> {
        match self {
            Operation::CreateVolume { unit, size_bytes, name } => {
                let index = allocator.find_unit(unit)?;
                Ok(Outcome::created_volume(allocator.create_on(index, *size_bytes, name.as_deref()).await?))
            }
            Operation::DestroyVolume { unit, volume } => {
                let index = allocator.find_unit(unit)?;
                allocator.destroy_on(index, *volume).await?;
                let text = format!("destroyed volume {volume} of unit #{index}");
                Ok(Outcome { text, unit: index, volume: Some(VolumeIndex(*volume)), detail: Detail::Destroyed })
            }
            Operation::CreatePartition { unit, volume, size_bytes } => {
                let index = allocator.find_unit(unit)?;
                let partition = allocator.partition_on(index, *volume, *size_bytes).await?;
                Ok(Outcome::created_partition(index, *volume, partition))
            }
            Operation::DestroyPartition { unit, volume, partition } => {
                let index = allocator.find_unit(unit)?;
                allocator.destroy_partition_on(index, *volume, *partition).await?;
                let text = format!("destroyed partition {partition} of volume {volume} on unit #{index}");
                Ok(Outcome { text, unit: index, volume: Some(VolumeIndex(*volume)), detail: Detail::Destroyed })
            }
            Operation::Assign { unit, volume, host, read_only, shared } => {
                let index = allocator.find_unit(unit)?;
                Ok(Outcome::assigned(allocator.assign(index, *volume, *host, *read_only, *shared).await?))
            }
            Operation::Unassign { unit, volume, host } => {
                let index = allocator.find_unit(unit)?;
                if let Some(mirror) = allocator.store_mut().mirror_of(index, *volume)? {
                    if host.is_some_and(|h| h != mirror.host) {
                        return Err(AllocateError::NotHolder {
                            unit: index,
                            volume: *volume,
                            holder: mirror.host,
                            host: host.unwrap_or(mirror.host),
                        });
                    }
                    let released = crate::mirror::release(allocator, &mirror).await?;
                    return Ok(Outcome::mirror_released(mirror.index, &mirror.display_name(), released));
                }
                Ok(Outcome::released(allocator.release(index, *volume, *host).await?))
            }
            Operation::Allocate { size_bytes, host, name, read_only, shared, replicas } => {
                let request = SizeRequest {
                    size_bytes: *size_bytes,
                    host: *host,
                    name: name.clone(),
                    read_only: *read_only,
                    shared: *shared,
                };
                if *replicas >= 2 {
                    return Ok(Outcome::mirrored(crate::mirror::request(allocator, &request, *replicas).await?));
                }
                Ok(Outcome::allocated(allocator.request(&request).await?))
            }
            Operation::RescanUnit { unit } => {
                let index = allocator.find_unit(unit)?;
                let scan = allocator.rescan(index).await?;
                let text = format!("read {}", scan_text(&scan));
                Ok(Outcome { text, unit: scan.unit, volume: None, detail: Detail::Unit(scan) })
            }
            Operation::AddUnit { agent } => Ok(Outcome::added_unit(allocator.add_unit(agent).await?)),
            Operation::ApproveUnit { pending } => {
                let (pending, scan) = allocator.approve_pending(pending).await?;
                Ok(Outcome::approved(pending, scan))
            }
            Operation::RejectUnit { pending } => Ok(Outcome::rejected(allocator.reject_pending(pending)?)),
            Operation::ClearVolume { unit, volume } => {
                let index = allocator.find_unit(unit)?;
                let text = match allocator.follow_clearing(index, *volume).await? {
                    true => format!("unit #{index} cleared volume {volume}; it can be assigned again"),
                    false => format!("volume {volume} of unit #{index} was destroyed while the unit cleared it"),
                };
                Ok(Outcome { text, unit: index, volume: Some(VolumeIndex(*volume)), detail: Detail::Cleared })
            }
            Operation::RemoveUnit { unit, force } => {
                let index = allocator.find_unit(unit)?;
                let removed = allocator.remove_unit(index, *force).await?;
                Ok(Outcome {
                    text: removed_text(&removed),
                    unit: index,
                    volume: None,
                    detail: Detail::Removed(removed),
                })
            }
        }
    }
}

/// The outcomes whose text says more than one line of `execute` can.
impl Outcome {
    fn created_volume(v: Allocation) -> Outcome {
        Outcome {
            text: format!(
                "created volume {} {:?} on unit #{}: {} bytes ({}), LBA {}-{}",
                v.volume,
                v.name,
                v.unit,
                v.size_bytes,
                human_size(v.size_bytes),
                v.start_lba,
                v.end_lba
            ),
            unit: v.unit,
            volume: Some(VolumeIndex(v.volume)),
            detail: Detail::Volume(v),
        }
    }

    fn created_partition(unit: u32, volume: u32, p: PoolPartition) -> Outcome {
        Outcome {
            text: format!(
                "created partition {} of volume {volume} on unit #{unit}: LBA {}-{}, export {:?}",
                p.index, p.start_lba, p.end_lba, p.export_name
            ),
            unit,
            volume: Some(VolumeIndex(volume)),
            detail: Detail::Partition(p),
        }
    }

    fn assigned(a: Allocation) -> Outcome {
        let text = format!("assigned volume {} {:?} of unit #{} to {}", a.volume, a.name, a.unit, grant_text(&a));
        Outcome::assignment(text, a)
    }

    fn released(released: AssignmentRecord) -> Outcome {
        Outcome {
            text: format!("released volume {} of unit #{} from {}", released.volume, released.unit, released.host),
            unit: released.unit,
            volume: Some(VolumeIndex(released.volume)),
            detail: Detail::Released(released),
        }
    }

    fn allocated(a: Allocation) -> Outcome {
        let text = format!(
            "allocated volume {} {:?} of unit #{} ({}{}) to {}",
            a.volume,
            a.name,
            a.unit,
            human_size(a.size_bytes),
            if a.volume_created { "; created for this request" } else { "; an existing free volume" },
            grant_text(&a)
        );
        Outcome::assignment(text, a)
    }

    fn mirrored(m: MirrorAllocation) -> Outcome {
        let replicas: Vec<String> = m
            .replicas
            .iter()
            .map(|a| {
                format!(
                    "volume {} of unit #{} ({})",
                    a.volume,
                    a.unit,
                    a.nbd_uri.as_deref().unwrap_or("no NBD address known yet")
                )
            })
            .collect();
        let first = m.replicas.first();
        Outcome {
            text: format!(
                "allocated mirrored volume {} {:?} ({}, {} replicas) to {}: {}",
                m.mirror,
                m.name,
                human_size(m.size_bytes),
                m.replicas.len(),
                first.map_or_else(String::new, |a| a.host.to_string()),
                replicas.join(", ")
            ),
            unit: first.map_or(0, |a| a.unit),
            volume: first.map(|a| VolumeIndex(a.volume)),
            detail: Detail::Mirror(m),
        }
    }

    fn mirror_released(mirror: u32, name: &str, released: Vec<AssignmentRecord>) -> Outcome {
        let first = released.first().map(|a| (a.unit, a.volume));
        Outcome {
            text: format!(
                "released mirrored volume {mirror} {name:?} from {}: {}",
                released.first().map_or_else(String::new, |a| a.host.to_string()),
                released
                    .iter()
                    .map(|a| format!("volume {} of unit #{}", a.volume, a.unit))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            unit: first.map_or(0, |f| f.0),
            volume: first.map(|f| VolumeIndex(f.1)),
            detail: Detail::MirrorReleased(mirror, released),
        }
    }

    /// An assignment or allocation, told by `text`.
    fn assignment(text: String, a: Allocation) -> Outcome {
        Outcome { text, unit: a.unit, volume: Some(VolumeIndex(a.volume)), detail: Detail::Assignment(a) }
    }

    fn approved(pending: PendingUnit, scan: UnitScan) -> Outcome {
        let added = Outcome::added_unit(scan.clone());
        Outcome {
            text: format!(
                "approved pending unit #{} at {} (bound to that address): {}",
                pending.index, pending.address, added.text
            ),
            unit: scan.unit,
            volume: None,
            detail: Detail::Approved(Box::new(pending), scan),
        }
    }

    /// The outcome of rejecting `pending` (the CLI's `unit reject`, which needs no allocator, uses it too).
    pub fn rejected(pending: PendingUnit) -> Outcome {
        let claim =
            if pending.unit_id.is_empty() { String::new() } else { format!(" (claims unit id {})", pending.unit_id) };
        Outcome {
            text: format!(
                "rejected pending unit #{} at {}{claim}: it stays out of the pool",
                pending.index, pending.address
            ),
            unit: 0,
            volume: None,
            detail: Detail::Rejected(Box::new(pending)),
        }
    }

    fn added_unit(scan: UnitScan) -> Outcome {
        let text = match &scan.unanswered {
            None => format!("added {}", scan_text(&scan)),
            Some(reason) => format!(
                "registered {} as unit #{}; it did not answer as a DVSAN unit yet ({reason}); the station keeps \
                 polling it",
                scan_address(&scan),
                scan.unit
            ),
        };
        Outcome { text, unit: scan.unit, volume: None, detail: Detail::Unit(scan) }
    }
}

/// `removed unit #3 UUID (name) and its N volume(s) from the pool; released ...`.
fn removed_text(removed: &RemovedUnit) -> String {
    let unit = &removed.unit;
    let mut text = format!(
        "removed unit #{} {} ({}) and its {} volume(s) from the pool",
        unit.index,
        unit.unit_id.as_deref().unwrap_or("never read"),
        if unit.name.is_empty() { "unnamed" } else { &unit.name },
        removed.volumes
    );
    if !removed.released.is_empty() {
        text.push_str(&format!("; released its assignments: {}", assignment_list(&removed.released)));
    }
    if !removed.unrevoked.is_empty() {
        text.push_str(&format!(
            "; the unit was not available to revoke them, so its grants for {} are still on it: revoke them \
             there (`dvsan-agent access revoke`) if it comes back",
            assignment_list(&removed.unrevoked)
        ));
    }
    text.push_str("; any notification from it (coldStart, linkUp, …) adds it to the pool again");
    text
}

/// `ADDR`, or `NAME:PORT (ADDR)` for a unit registered by host name.
fn scan_address(scan: &UnitScan) -> String {
    match &scan.host_name {
        Some(name) => format!("{name}:{} ({})", scan.address.port(), scan.address),
        None => scan.address.to_string(),
    }
}

/// `unit #3 UUID (name) at ADDR: N volume(s), STATE`.
/// Who got an allocation and where to reach it: `HOST[ (read-only)]: NBD-URI`.
fn grant_text(a: &Allocation) -> String {
    let access = if a.read_only { " (read-only)" } else { "" };
    format!("{}{access}: {}", a.host, a.nbd_uri.as_deref().unwrap_or("no NBD address known yet"))
}

fn scan_text(scan: &UnitScan) -> String {
    format!(
        "unit #{} {} ({}) at {}: {} volume(s), {}",
        scan.unit,
        scan.unit_id.as_deref().unwrap_or("?"),
        if scan.name.is_empty() { "unnamed" } else { &scan.name },
        scan_address(scan),
        scan.volumes,
        scan.state
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(kind: OperationKind, fill: impl FnOnce(&mut Arguments)) -> Result<Operation, String> {
        let mut a = Arguments::new(kind);
        fill(&mut a);
        Operation::from_arguments(&a, 1161)
    }

    fn allocation(read_only: bool, nbd_uri: Option<&str>) -> Allocation {
        Allocation {
            unit: 2,
            unit_id: None,
            agent: None,
            volume: 3,
            name: "db".to_string(),
            size_bytes: 1 << 30,
            start_lba: 0,
            end_lba: (1 << 21) - 1,
            export_name: "u2v3".to_string(),
            nbd_uri: nbd_uri.map(str::to_string),
            host: IpAddr::from([192, 0, 2, 10]),
            read_only,
            grant: 1,
            volume_created: true,
            owner: None,
        }
    }

    #[test]
    fn assignment_outcomes_name_the_volume_host_access_and_address() {
        let assigned = Outcome::assigned(allocation(true, Some("nbd://127.0.0.9:10809/u2v3")));
        assert_eq!(
            assigned.text,
            "assigned volume 3 \"db\" of unit #2 to 192.0.2.10 (read-only): nbd://127.0.0.9:10809/u2v3"
        );
        assert_eq!((assigned.unit, assigned.volume), (2, Some(VolumeIndex(3))));
        let allocated = Outcome::allocated(allocation(false, None));
        assert_eq!(
            allocated.text,
            "allocated volume 3 \"db\" of unit #2 (1G; created for this request) to 192.0.2.10: no NBD address known yet"
        );
        assert!(matches!(allocated.detail, Detail::Assignment(ref a) if a.volume == 3));
    }

    #[test]
    fn kinds_follow_the_mib() {
        for &kind in OperationKind::ALL {
            assert_eq!(OperationKind::from_mib(kind.mib_value()), Some(kind));
            assert_eq!(kind.as_str().parse::<OperationKind>(), Ok(kind));
        }
        assert_eq!(OperationKind::CreateVolume.mib_value(), 1);
        assert_eq!(OperationKind::AddUnit.mib_value(), 9);
        assert_eq!(OperationKind::from_mib(0), None);
        assert_eq!(OperationKind::RemoveUnitForce.mib_value(), 11);
        assert_eq!(OperationKind::ApproveUnit.mib_value(), 12);
        assert_eq!(OperationKind::RejectUnit.mib_value(), 13);
        assert_eq!(OperationKind::ClearVolume.mib_value(), 14);
        assert_eq!(OperationKind::from_mib(15), None);
    }

    #[test]
    fn rows_parse_into_operations() {
        let op = args(OperationKind::CreateVolume, |a| {
            a.unit = " 127.0.0.2 ".into();
            a.size = "64M".into();
        });
        assert_eq!(op, Ok(Operation::CreateVolume { unit: "127.0.0.2".into(), size_bytes: 64 << 20, name: None }));
        let op = args(OperationKind::Allocate, |a| {
            a.size = "1G".into();
            a.host = "192.0.2.10".into();
            a.name = "db".into();
            a.read_only = true;
            a.unit = "ignored".into();
        });
        assert_eq!(
            op,
            Ok(Operation::Allocate {
                size_bytes: 1 << 30,
                host: "192.0.2.10".parse().unwrap(),
                name: Some("db".into()),
                read_only: true,
                shared: false,
                replicas: 0
            })
        );
        // A replica count the task table would not take is refused by name too.
        let bad = args(OperationKind::Allocate, |a| {
            a.size = "1G".into();
            a.host = "192.0.2.10".into();
            a.replicas = 4;
        });
        assert!(bad.is_err_and(|e| e.contains("dvsanStationTaskReplicas") && e.contains("2 or 3")));
        let op = args(OperationKind::UnassignVolume, |a| {
            a.unit = "3".into();
            a.volume = Some(VolumeIndex(2));
        });
        assert_eq!(op, Ok(Operation::Unassign { unit: "3".into(), volume: 2, host: None }));
        let op = args(OperationKind::DestroyPartition, |a| {
            a.unit = "u".into();
            a.volume = Some(VolumeIndex(2));
            a.partition = Some(dvsan_layout::PartitionIndex(1));
        });
        assert_eq!(op, Ok(Operation::DestroyPartition { unit: "u".into(), volume: 2, partition: 1 }));
        let op = args(OperationKind::AddUnit, |a| a.unit = "192.0.2.20".into());
        assert_eq!(op, Ok(Operation::AddUnit { agent: Endpoint::parse("192.0.2.20:1161", 1).unwrap() }));
        let op = args(OperationKind::AddUnit, |a| a.unit = "Unit-A.example".into());
        assert_eq!(op, Ok(Operation::AddUnit { agent: Endpoint::parse("unit-a.example:1161", 1).unwrap() }));
        let op = args(OperationKind::RemoveUnitForce, |a| a.unit = "u".into()).unwrap();
        assert_eq!((op.kind(), op.unit()), (OperationKind::RemoveUnitForce, Some("u")));
        assert_eq!(op, Operation::RemoveUnit { unit: "u".into(), force: true });
        let e = args(OperationKind::RemoveUnit, |_| {}).unwrap_err();
        assert!(e.contains("removeUnit needs a unit"), "{e}");
        let op = args(OperationKind::ApproveUnit, |a| a.unit = " 127.0.0.9 ".into()).unwrap();
        assert_eq!((op.kind(), op.unit()), (OperationKind::ApproveUnit, None));
        assert_eq!(op, Operation::ApproveUnit { pending: "127.0.0.9".into() });
        let op = args(OperationKind::RejectUnit, |a| a.unit = "3".into()).unwrap();
        assert_eq!(op, Operation::RejectUnit { pending: "3".into() });
        let e = args(OperationKind::RejectUnit, |_| {}).unwrap_err();
        assert!(e.contains("rejectUnit needs the pending unit") && e.contains("dvsanStationPendingIndex"), "{e}");
        let op = args(OperationKind::RescanUnit, |a| a.unit = "u".into()).unwrap();
        assert_eq!((op.kind(), op.unit()), (OperationKind::RescanUnit, Some("u")));
        let op = args(OperationKind::ClearVolume, |a| {
            a.unit = "2".into();
            a.volume = Some(VolumeIndex(4));
        })
        .unwrap();
        assert_eq!(op, Operation::ClearVolume { unit: "2".into(), volume: 4 });
        let e = args(OperationKind::ClearVolume, |a| a.unit = "2".into()).unwrap_err();
        assert!(e.contains("clearVolume needs a volume"), "{e}");
    }

    #[test]
    fn bad_rows_say_what_is_wrong_and_what_would_be_valid() {
        let err = |kind, fill: fn(&mut Arguments)| args(kind, fill).unwrap_err();
        let e = err(OperationKind::CreateVolume, |a| {
            a.unit = "u".into();
            a.size = "lots".into();
        });
        assert!(e.contains("\"lots\" is not a size") && e.contains("512M"), "{e}");
        let e = err(OperationKind::CreateVolume, |a| a.size = "1M".into());
        assert!(e.contains("createVolume needs a unit") && e.contains("unit id"), "{e}");
        let e = err(OperationKind::CreateVolume, |a| a.unit = "u".into());
        assert!(e.contains("needs a size") && e.contains("80G"), "{e}");
        let e = err(OperationKind::DestroyVolume, |a| a.unit = "u".into());
        assert!(e.contains("destroyVolume needs a volume") && e.contains("1 or more"), "{e}");
        let e = err(OperationKind::DestroyPartition, |a| {
            a.unit = "u".into();
            a.volume = Some(VolumeIndex(1));
        });
        assert!(e.contains("needs a partition"), "{e}");
        let e = err(OperationKind::AssignVolume, |a| {
            a.unit = "u".into();
            a.volume = Some(VolumeIndex(1));
            a.host = "nohost".into();
        });
        assert!(e.contains("\"nohost\" is not a host IP address") && e.contains("192.0.2.10"), "{e}");
        let e = err(OperationKind::Allocate, |a| a.size = "1M".into());
        assert!(e.contains("allocate needs a host"), "{e}");
        let e = err(OperationKind::Allocate, |a| {
            a.size = "0".into();
            a.host = "192.0.2.1".into();
        });
        assert!(e.contains("larger than 0"), "{e}");
        let e = err(OperationKind::AddUnit, |a| a.unit = "unit_a".into());
        assert!(e.contains("\"unit_a\" is not an address") && e.contains("NAME:PORT"), "{e}");
        let e = err(OperationKind::AddUnit, |_| {});
        assert!(e.contains("addUnit needs the agent's address"), "{e}");
    }
}
