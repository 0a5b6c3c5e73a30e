//! Mirrored volumes (issue 17): one logical volume of 2 or 3 replicas, each a volume on a unit of its own (and,
//! where units have zone labels, in a zone of its own), all the same size, each granted to the host like an
//! ordinary exclusive assignment, recorded as one mirror with replica rows in the store.
//!
//! [`place`] is the pure placement decision (which units, how many blocks on each); [`request`] creates and
//! grants the replicas under the pool lock with the [`Allocator`] and records the mirror, undoing every replica it
//! made when one fails, so a failed request leaves no volume, grant or row; [`release`] releases every replica.
//! The host front (`dvsan-host serve`) reads the replicas from the station MIB's replica table.

use crate::allocate::{human_size, AllocateError, Allocation, Allocator, SizeRequest};
use crate::model::{MirrorRecord, UnitState};
use crate::store::{AllocationUnit, AssignmentRecord};
use std::collections::BTreeSet;

/// Most replicas a mirrored volume has.
pub const MAX_REPLICAS: u32 = 3;

/// Where the replicas of a mirrored volume go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// One unit per replica, in replica order.
    pub units: Vec<AllocationUnit>,
    /// Blocks of each replica's volume on its unit (the same bytes on every unit).
    pub blocks: Vec<u32>,
    /// Every replica's size.
    pub size_bytes: u64,
}

/// A mirrored volume as [`request`] made it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MirrorAllocation {
    /// dvsanStationMirrorIndex.
    pub mirror: u32,
    pub name: String,
    pub size_bytes: u64,
    /// One assignment per replica, in replica order.
    pub replicas: Vec<Allocation>,
}

/// Checks a replica count given by a user: 2 or 3 make a mirror; 0 and 1 an ordinary volume.
pub fn check_replicas(replicas: u32) -> Result<u32, AllocateError> {
    match replicas {
        0..=MAX_REPLICAS => Ok(replicas),
        _ => Err(AllocateError::BadReplicas(replicas)),
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The zone a unit counts in: its label, or the unit alone when it has none.
fn zone_key(unit: &AllocationUnit) -> String {
    if unit.zone.is_empty() {
        format!("#{}", unit.index)
    } else {
        format!("zone {}", unit.zone)
    }
}

/// Chooses `replicas` units for replicas of `size_bytes`: available, not spare, with room for the volume in one
/// free extent and (`names_taken`) no volume of the requested name; each in another zone (a unit without a zone
/// label is a zone of its own), the units with the most free space first. The error says how many units were
/// eligible and why the others were not.
pub fn place(
    units: &[AllocationUnit],
    names_taken: &BTreeSet<u32>,
    replicas: u32,
    size_bytes: u64,
) -> Result<Placement, String> {
    let mut eligible: Vec<&AllocationUnit> = Vec::new();
    let mut reasons: Vec<String> = Vec::new();
    for unit in units {
        let why = match (unit.state, unit.address, unit.block_size) {
            (state, _, _) if state != UnitState::Available => Some(format!("#{} is {state}", unit.index)),
            (_, None, _) => Some(format!("#{} has no agent address", unit.index)),
            (_, _, None) => Some(format!("#{} has not been read yet", unit.index)),
            _ if unit.spare => Some(format!("#{} is a spare", unit.index)),
            _ if names_taken.contains(&unit.index) => Some(format!("#{} has a volume of that name", unit.index)),
            (_, _, Some(block_size)) => {
                let extent = u64::from(unit.largest_free_blocks.or(unit.free_blocks).unwrap_or(0));
                let room = extent * u64::from(block_size);
                (room < size_bytes).then(|| format!("#{} has {} in one free extent", unit.index, human_size(room)))
            }
        };
        match why {
            Some(why) => reasons.push(why),
            None => eligible.push(unit),
        }
    }
    eligible.sort_by_key(|u| {
        (std::cmp::Reverse(u.free_blocks.unwrap_or(0) as u64 * u.block_size.unwrap_or(0) as u64), u.index)
    });
    let mut zones = BTreeSet::new();
    let chosen: Vec<&AllocationUnit> =
        eligible.iter().copied().filter(|u| zones.insert(zone_key(u))).take(replicas as usize).collect();
    if chosen.len() < replicas as usize {
        let labelled = units.iter().any(|u| !u.zone.is_empty());
        let listed: Vec<String> = eligible
            .iter()
            .map(
                |u| if u.zone.is_empty() { format!("#{}", u.index) } else { format!("#{} (zone {})", u.index, u.zone) },
            )
            .collect();
        let distinct = eligible.iter().map(|u| zone_key(u)).collect::<BTreeSet<_>>().len();
        let mut text = format!(
            "cannot place {replicas} replicas of {}: each replica needs a unit of its own{}; {} unit(s) eligible",
            human_size(size_bytes),
            if labelled { ", in a zone of its own (a unit without a zone label is a zone of its own)" } else { "" },
            eligible.len(),
        );
        if labelled {
            text.push_str(&format!(" in {distinct} zone(s)"));
        }
        if !listed.is_empty() {
            text.push_str(&format!(" ({})", listed.join(", ")));
        }
        if !reasons.is_empty() {
            text.push_str(&format!("; not eligible: {}", reasons.join(", ")));
        }
        text.push_str(
            "; add units (or zones), free space, or mark a spare with `dvsan-station unit set U --no-spare`; nothing \
             was created",
        );
        return Err(text);
    }
    // The same bytes on every unit: a multiple of every chosen unit's block size.
    let common = chosen.iter().map(|u| u64::from(u.block_size.unwrap_or(1).max(1))).fold(1, |l, b| l / gcd(l, b) * b);
    let size = size_bytes.div_ceil(common) * common;
    let mut blocks = Vec::new();
    for unit in &chosen {
        let block_size = u64::from(unit.block_size.unwrap_or(1).max(1));
        let extent = u64::from(unit.largest_free_blocks.or(unit.free_blocks).unwrap_or(0));
        let n = size / block_size;
        if n > extent {
            return Err(format!(
                "cannot place {replicas} replicas of {}: rounded to every unit's block size it is {} bytes, more than \
                 unit #{} has in one free extent; nothing was created",
                human_size(size_bytes),
                size,
                unit.index
            ));
        }
        blocks.push(u32::try_from(n).map_err(|_| format!("{size} bytes is too large for unit #{}", unit.index))?);
    }
    Ok(Placement { units: chosen.into_iter().cloned().collect(), blocks, size_bytes: size })
}

/// Serves a request for a mirrored volume of `request.size_bytes` with `replicas` (2 or 3) replicas for
/// `request.host`: places them ([`place`]), creates and grants each (by the requester's identity when it has one,
/// as ordinary requests), and records the mirror. When any step fails, every replica made so far is undone
/// (grant revoked, assignment forgotten, volume destroyed) and nothing is recorded. Needs the whole pool's lock.
pub async fn request(
    allocator: &mut Allocator<'_>,
    request: &SizeRequest,
    replicas: u32,
) -> Result<MirrorAllocation, AllocateError> {
    allocator.require_pool_lock()?;
    if request.size_bytes == 0 {
        return Err(AllocateError::ZeroSize);
    }
    if !(2..=MAX_REPLICAS).contains(&replicas) {
        return Err(AllocateError::BadReplicas(replicas));
    }
    if request.read_only || request.shared {
        return Err(AllocateError::Placement(
            "a mirrored volume is one host's read-write volume: --replicas goes without --read-only and --shared"
                .to_string(),
        ));
    }
    allocator.report(0, &format!("placing {replicas} replicas"));
    let store = allocator.store_mut();
    let units = store.allocation_units()?;
    let names_taken: BTreeSet<u32> = match &request.name {
        Some(name) => {
            let taken = store.pool()?.into_iter().filter(|u| u.volumes.iter().any(|v| v.name == *name));
            taken.map(|u| u.index).collect()
        }
        None => BTreeSet::new(),
    };
    if let Some(name) = &request.name {
        if store.mirrors()?.iter().any(|m| m.name == *name) {
            return Err(AllocateError::Placement(format!(
                "a mirrored volume named {name:?} exists already; ask with another name"
            )));
        }
    }
    let placement = place(&units, &names_taken, replicas, request.size_bytes).map_err(AllocateError::Placement)?;
    // The mirror is recorded first and each replica as it is assigned: when this process dies midway, the next
    // reconciliation finds the mirror short of replicas and undoes it.
    let name = request.name.clone().unwrap_or_default();
    let owner = allocator.owner().map(str::to_string);
    let size = placement.size_bytes;
    let mirror = allocator.store_mut().insert_mirror(&name, request.host, size, owner.as_deref(), replicas)?;
    let mut made: Vec<Allocation> = Vec::new();
    for (i, (unit, blocks)) in placement.units.iter().zip(&placement.blocks).enumerate() {
        allocator.report(10 + 70 * i as u32 / replicas, &format!("replica {} on unit #{}", i + 1, unit.index));
        let made_one = match allocator.create_and_grant(unit, *blocks, request.name.as_deref(), request.host).await {
            Ok(a) => {
                let recorded = allocator.store_mut().add_mirror_replica(mirror, i as u32 + 1, a.unit, a.volume);
                made.push(a);
                recorded.map_err(AllocateError::from)
            }
            Err(e) => Err(e),
        };
        if let Err(e) = made_one {
            undo(allocator, &made).await;
            if let Err(e) = allocator.store_mut().delete_mirror(mirror) {
                tracing::warn!(mirror, error = %e, "forgetting an undone mirrored volume failed");
            }
            return Err(AllocateError::Placement(format!(
                "replica {} of {replicas} on unit #{} failed: {e}; nothing was kept (the replicas made before it \
                 were undone)",
                i + 1,
                unit.index
            )));
        }
    }
    tracing::info!(mirror, replicas, host = %request.host, "mirrored volume allocated");
    allocator.report(100, "done");
    let name = if name.is_empty() { format!("mirror{mirror}") } else { name };
    Ok(MirrorAllocation { mirror, name, size_bytes: placement.size_bytes, replicas: made })
}

/// Undoes the replicas of a failed request, last first.
async fn undo(allocator: &mut Allocator<'_>, made: &[Allocation]) {
    for a in made.iter().rev() {
        allocator.undo_allocation(a).await;
    }
}

/// Releases every replica of `mirror` (its host's assignment of each: the grant revoked, the volume wiped) and
/// forgets the mirror. A replica whose release fails (its unit does not answer) is named in the error, and the
/// mirror stays until a release of it succeeds; replicas released already are skipped then. Needs the whole
/// pool's lock.
pub async fn release(
    allocator: &mut Allocator<'_>,
    mirror: &MirrorRecord,
) -> Result<Vec<AssignmentRecord>, AllocateError> {
    allocator.require_pool_lock()?;
    let mut released = Vec::new();
    let mut failed = Vec::new();
    for r in &mirror.replicas {
        let held = allocator.store_mut().volume_assignments(r.unit, r.volume)?;
        if !held.iter().any(|a| a.host == mirror.host) {
            continue;
        }
        match allocator.release(r.unit, r.volume, Some(mirror.host)).await {
            Ok(a) => released.push(a),
            Err(e) => failed.push(format!("replica {} (volume {} of unit #{}): {e}", r.replica, r.volume, r.unit)),
        }
    }
    if !failed.is_empty() {
        return Err(AllocateError::Placement(format!(
            "mirrored volume {} ({}): released {} replica(s), not {}; release it again when the unit answers",
            mirror.index,
            mirror.display_name(),
            released.len(),
            failed.join("; ")
        )));
    }
    allocator.store_mut().delete_mirror(mirror.index)?;
    tracing::info!(mirror = mirror.index, "mirrored volume released");
    Ok(released)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn unit(index: u32, zone: &str, free_mib: u32) -> AllocationUnit {
        let blocks = free_mib * 2048;
        AllocationUnit {
            index,
            unit_id: None,
            address: Some(SocketAddr::from(([127, 0, 0, index as u8], 1161))),
            state: UnitState::Available,
            block_size: Some(512),
            free_blocks: Some(blocks),
            largest_free_blocks: Some(blocks),
            data_address: None,
            data_port: None,
            zone: zone.to_string(),
            spare: false,
        }
    }

    const MIB: u64 = 1 << 20;

    #[test]
    fn replicas_go_to_distinct_units_and_zones_largest_first() {
        let units = [unit(1, "", 16), unit(2, "", 64), unit(3, "", 32)];
        let p = place(&units, &BTreeSet::new(), 2, 8 * MIB).unwrap();
        assert_eq!(p.units.iter().map(|u| u.index).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(p.blocks, [16384, 16384]);
        // Two units in zone a, one in b: a 2-replica mirror spans both zones, 3 replicas cannot be placed.
        let units = [unit(1, "a", 64), unit(2, "a", 64), unit(3, "b", 16)];
        let p = place(&units, &BTreeSet::new(), 2, 8 * MIB).unwrap();
        assert_eq!(p.units.iter().map(|u| u.index).collect::<Vec<_>>(), [1, 3]);
        let err = place(&units, &BTreeSet::new(), 3, 8 * MIB).unwrap_err();
        assert!(err.contains("3 unit(s) eligible in 2 zone(s)"), "{err}");
    }

    #[test]
    fn the_error_says_which_units_were_eligible_and_why_not_the_others() {
        let mut spare = unit(2, "", 64);
        spare.spare = true;
        let mut down = unit(3, "", 64);
        down.state = UnitState::Unreachable;
        let units = [unit(1, "", 64), spare, down, unit(4, "", 4), unit(5, "", 64)];
        let taken = BTreeSet::from([5]);
        let err = place(&units, &taken, 2, 8 * MIB).unwrap_err();
        assert!(err.contains("1 unit(s) eligible (#1)"), "{err}");
        for why in ["#2 is a spare", "#3 is unreachable", "#4 has 4M in one free extent", "#5 has a volume"] {
            assert!(err.contains(why), "{why}: {err}");
        }
    }

    #[test]
    fn mixed_block_sizes_get_the_same_bytes() {
        let mut big = unit(2, "", 64);
        big.block_size = Some(4096);
        big.free_blocks = Some(64 * 256);
        big.largest_free_blocks = big.free_blocks;
        let p = place(&[unit(1, "", 64), big], &BTreeSet::new(), 2, MIB + 1).unwrap();
        assert_eq!(p.size_bytes, MIB + 4096);
        assert_eq!(p.blocks, [(MIB + 4096) as u32 / 512, (MIB + 4096) as u32 / 4096]);
    }

    #[test]
    fn replica_counts() {
        assert!(check_replicas(2).is_ok() && check_replicas(0).is_ok());
        assert!(check_replicas(4).unwrap_err().to_string().contains("2 or 3"));
    }
}
