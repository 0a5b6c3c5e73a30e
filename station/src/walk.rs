//! Reading a unit: the GETBULK walk of its DVSAN-MIB tables, and the checks that turn the varbinds into a
//! [`UnitSnapshot`].
//!
//! [`parse_walk`] is pure: it takes every varbind the walk returned (the dvsanUnit scalars, the media, volume and
//! partition tables, sysUpTime.0 and ifOperStatus.1) and either builds a consistent snapshot or says what is
//! wrong (wrong types, missing columns, inconsistent extents, an id that is not a UUID). The station marks a unit
//! whose walk fails `error` with that reason; nothing of a bad walk reaches the store.

use crate::model::{Availability, MediumRow, PartitionRow, UnitSnapshot, VolumeRow};
use dvsan_snmp::{Manager, Oid, SnmpError, Target, Value, VarBind};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Most rows accepted per table: a unit that claims more is answering garbage.
pub const MAX_ROWS: usize = 65_536;

/// Why a unit could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WalkError {
    /// No answer, or an answer that was not SNMP (timeouts after retries, ICMP port unreachable, ...).
    #[error("no usable answer: {0}")]
    Transport(String),
    /// The agent answered with an SNMP error status.
    #[error("agent error: {0}")]
    Agent(String),
    /// The answers were not a consistent DVSAN-MIB unit.
    #[error("bad data: {0}")]
    Garbage(String),
    /// The layout kept changing while it was walked.
    #[error("the layout changed during {0} walks in a row")]
    Unstable(u32),
}

/// The subtrees a full read of a unit walks, in order. The access table tells which volumes someone else
/// granted (the station never assigns those).
pub fn walked_subtrees() -> [&'static [u32]; 5] {
    [
        dvsan_mib::DVSAN_UNIT,
        dvsan_mib::DVSAN_MEDIA_TABLE,
        dvsan_mib::DVSAN_VOLUME_TABLE,
        dvsan_mib::DVSAN_PARTITION_TABLE,
        dvsan_mib::DVSAN_ACCESS_TABLE,
    ]
}

/// The scalar instances read with GET next to the walk: sysUpTime.0 and ifOperStatus.1.
pub fn extra_instances() -> [Oid; 2] {
    [instance(dvsan_mib::SYS_UP_TIME, &[0]), instance(dvsan_mib::IF_OPER_STATUS, &[1])]
}

pub fn instance(node: &[u32], index: &[u32]) -> Oid {
    Oid::from_slice(node).join(index)
}

fn garbage(text: String) -> WalkError {
    WalkError::Garbage(text)
}

fn name(oid: &Oid) -> String {
    dvsan_mib::describe(oid.as_slice())
}

fn unsigned(vb: &VarBind) -> Result<u32, WalkError> {
    match vb.value {
        Value::Gauge32(v) => Ok(v),
        ref other => Err(garbage(format!("{} is {}, expected Unsigned32", name(&vb.oid), other.type_name()))),
    }
}

fn counter(vb: &VarBind) -> Result<u32, WalkError> {
    match vb.value {
        Value::Counter32(v) => Ok(v),
        ref other => Err(garbage(format!("{} is {}, expected Counter32", name(&vb.oid), other.type_name()))),
    }
}

fn integer(vb: &VarBind) -> Result<i32, WalkError> {
    match vb.value {
        Value::Integer(v) => Ok(v),
        ref other => Err(garbage(format!("{} is {}, expected INTEGER", name(&vb.oid), other.type_name()))),
    }
}

fn text(vb: &VarBind, max: usize) -> Result<String, WalkError> {
    match &vb.value {
        Value::OctetString(bytes) if bytes.len() <= max => match std::str::from_utf8(bytes) {
            Ok(text) => Ok(text.to_string()),
            Err(_) => Err(garbage(format!("{} is not UTF-8 text", name(&vb.oid)))),
        },
        Value::OctetString(bytes) => {
            Err(garbage(format!("{} is {} octets long, at most {max} expected", name(&vb.oid), bytes.len())))
        }
        other => Err(garbage(format!("{} is {}, expected a DisplayString", name(&vb.oid), other.type_name()))),
    }
}

/// Columns of one table row, by column arc.
type Row<'a> = BTreeMap<u32, &'a VarBind>;

fn column<'a>(
    row: &Row<'a>,
    column: u32,
    table: &str,
    index: &str,
    column_name: &str,
) -> Result<&'a VarBind, WalkError> {
    row.get(&column).copied().ok_or_else(|| garbage(format!("{table} row {index} has no {column_name}")))
}

fn index_text(index: &[u32]) -> String {
    dvsan_mib::dotted(index)
}

/// Builds a snapshot from everything one read of a unit returned. Varbinds outside the walked subtrees and
/// end-of-walk exceptions are ignored.
pub fn parse_walk(varbinds: &[VarBind]) -> Result<UnitSnapshot, WalkError> {
    let sorted = Sorted::sort(varbinds)?;
    let mut snapshot = unit_scalars(&sorted)?;
    snapshot.media = media_rows(&sorted.media, snapshot.capacity_blocks)?;
    snapshot.volumes = volume_rows(&sorted.volumes, snapshot.capacity_blocks)?;
    snapshot.partitions = partition_rows(&sorted.partitions, &snapshot.volumes)?;
    access_rows(&sorted.grants, &mut snapshot.volumes)?;
    Ok(snapshot)
}

/// One read's varbinds sorted by where they belong: the unit's scalars by arc, the rows of each table by index,
/// sysUpTime.0 and whether ifOperStatus.1 says up.
#[derive(Default)]
struct Sorted<'a> {
    scalars: BTreeMap<u32, &'a VarBind>,
    media: BTreeMap<Vec<u32>, Row<'a>>,
    volumes: BTreeMap<Vec<u32>, Row<'a>>,
    partitions: BTreeMap<Vec<u32>, Row<'a>>,
    grants: BTreeMap<Vec<u32>, Row<'a>>,
    sys_uptime: Option<u32>,
    link_up: bool,
}

impl<'a> Sorted<'a> {
    fn sort(varbinds: &'a [VarBind]) -> Result<Sorted<'a>, WalkError> {
        let mut sorted = Sorted { link_up: true, ..Sorted::default() };
        for vb in varbinds {
            sorted.add(vb)?;
        }
        Ok(sorted)
    }

    /// Files one varbind (or ignores it).
    fn add(&mut self, vb: &'a VarBind) -> Result<(), WalkError> {
        if matches!(vb.value, Value::EndOfMibView) {
            return Ok(());
        }
        if vb.oid.suffix_after(dvsan_mib::SYS_UP_TIME) == Some(&[0][..]) {
            match vb.value {
                Value::TimeTicks(t) => self.sys_uptime = Some(t),
                ref other => return Err(garbage(format!("sysUpTime.0 is {}, expected TimeTicks", other.type_name()))),
            }
            return Ok(());
        }
        if vb.oid.suffix_after(dvsan_mib::IF_OPER_STATUS) == Some(&[1][..]) {
            match vb.value {
                // up(1); every other status (down, testing, dormant, lowerLayerDown, ...) means no data path.
                Value::Integer(status) => self.link_up = status == 1,
                Value::NoSuchObject | Value::NoSuchInstance => {}
                ref other => return Err(garbage(format!("ifOperStatus.1 is {}, expected INTEGER", other.type_name()))),
            }
            return Ok(());
        }
        if let Some(rest) = vb.oid.suffix_after(dvsan_mib::DVSAN_UNIT) {
            if let [arc, 0] = rest {
                if !vb.value.is_exception() {
                    self.scalars.insert(*arc, vb);
                }
            }
            return Ok(());
        }
        let tables = [
            (dvsan_mib::DVSAN_MEDIA_ENTRY, &mut self.media, 1usize),
            (dvsan_mib::DVSAN_VOLUME_ENTRY, &mut self.volumes, 1),
            (dvsan_mib::DVSAN_PARTITION_ENTRY, &mut self.partitions, 2),
            (dvsan_mib::DVSAN_ACCESS_ENTRY, &mut self.grants, 1),
        ];
        for (entry, rows, index_len) in tables {
            if let Some(rest) = vb.oid.suffix_after(entry) {
                let [col, index @ ..] = rest else { break };
                if index.len() != index_len {
                    return Err(garbage(format!("{} has an index of the wrong length", name(&vb.oid))));
                }
                if vb.value.is_exception() {
                    break;
                }
                if rows.len() >= MAX_ROWS && !rows.contains_key(index) {
                    return Err(garbage(format!("more than {MAX_ROWS} rows in {}", name(&Oid::from_slice(entry)))));
                }
                rows.entry(index.to_vec()).or_default().insert(*col, vb);
                break;
            }
        }
        Ok(())
    }
}

/// The unit's scalars checked, as a snapshot without rows.
fn unit_scalars(sorted: &Sorted<'_>) -> Result<UnitSnapshot, WalkError> {
    let scalars = &sorted.scalars;
    let scalar = |arc: u32, what: &str| -> Result<&VarBind, WalkError> {
        scalars.get(&arc).copied().ok_or_else(|| garbage(format!("the unit did not return {what}.0")))
    };
    let unit_id = text(scalar(1, "dvsanUnitId")?, 36)?;
    if unit_id.len() != 36 || uuid::Uuid::parse_str(&unit_id).is_err() {
        return Err(garbage(format!("dvsanUnitId.0 {unit_id:?} is not a UUID")));
    }
    let name_text = text(scalar(2, "dvsanUnitName")?, 255)?;
    let block_size = unsigned(scalar(3, "dvsanUnitBlockSize")?)?;
    if !(512..=65536).contains(&block_size) || !block_size.is_power_of_two() {
        return Err(garbage(format!("dvsanUnitBlockSize.0 {block_size} is not a power of two in 512..65536")));
    }
    let capacity_blocks = unsigned(scalar(4, "dvsanUnitCapacityBlocks")?)?;
    let free_blocks = unsigned(scalar(5, "dvsanUnitFreeBlocks")?)?;
    if free_blocks > capacity_blocks {
        return Err(garbage(format!("{free_blocks} free blocks out of a capacity of {capacity_blocks}")));
    }
    let change_counter = counter(scalar(9, "dvsanUnitChangeCounter")?)?;
    let data_serving = match integer(scalar(10, "dvsanUnitDataServiceState")?)? {
        1 => true,
        2 => false,
        other => return Err(garbage(format!("dvsanUnitDataServiceState.0 {other} is not serving(1) or stopped(2)"))),
    };
    let largest_free_blocks = scalars.get(&13).map(|vb| unsigned(vb)).transpose()?;
    let data_address = match (scalars.get(&6), scalars.get(&7)) {
        (Some(kind), Some(address)) => data_address(integer(kind)?, address)?,
        _ => None,
    };
    let data_port = match scalars.get(&8) {
        Some(vb) => {
            let port = unsigned(vb)?;
            u16::try_from(port).map_err(|_| garbage(format!("dvsanUnitDataPort.0 {port} is not a port number")))?
        }
        None => 0,
    };
    let sys_uptime = sorted.sys_uptime.ok_or_else(|| garbage("the unit did not return sysUpTime.0".to_string()))?;
    Ok(UnitSnapshot {
        unit_id,
        name: name_text,
        block_size,
        capacity_blocks,
        free_blocks,
        largest_free_blocks,
        data_address,
        data_port,
        data_serving,
        change_counter,
        sys_uptime,
        link_up: sorted.link_up,
        media: Vec::new(),
        volumes: Vec::new(),
        partitions: Vec::new(),
    })
}

/// dvsanMediaTable's rows, each checked to lie within the unit's capacity.
fn media_rows(media: &BTreeMap<Vec<u32>, Row<'_>>, capacity_blocks: u32) -> Result<Vec<MediumRow>, WalkError> {
    let mut media_rows = Vec::with_capacity(media.len());
    for (index, row) in media {
        let idx = index_text(index);
        let kind = match integer(column(row, 3, "dvsanMediaTable", &idx, "dvsanMediaKind")?)? {
            1 => "file",
            2 => "blockDevice",
            other => return Err(garbage(format!("dvsanMediaKind.{idx} {other} is not file(1) or blockDevice(2)"))),
        };
        let medium = MediumRow {
            index: index[0],
            path: text(column(row, 2, "dvsanMediaTable", &idx, "dvsanMediaPath")?, 1024)?,
            kind: kind.to_string(),
            blocks: unsigned(column(row, 4, "dvsanMediaTable", &idx, "dvsanMediaBlocks")?)?,
            first_lba: unsigned(column(row, 5, "dvsanMediaTable", &idx, "dvsanMediaFirstLba")?)?,
        };
        if u64::from(medium.first_lba) + u64::from(medium.blocks) > u64::from(capacity_blocks) {
            return Err(garbage(format!("medium {idx} extends past the unit's capacity")));
        }
        media_rows.push(medium);
    }
    Ok(media_rows)
}

/// dvsanVolumeTable's rows, each checked to lie within the unit's capacity and overlap no other.
fn volume_rows(volumes: &BTreeMap<Vec<u32>, Row<'_>>, capacity_blocks: u32) -> Result<Vec<VolumeRow>, WalkError> {
    let mut volume_rows: Vec<VolumeRow> = Vec::with_capacity(volumes.len());
    for (index, row) in volumes {
        let idx = index_text(index);
        let table = "dvsanVolumeTable";
        let start_lba = unsigned(column(row, 3, table, &idx, "dvsanVolumeStartLba")?)?;
        let end_lba = unsigned(column(row, 4, table, &idx, "dvsanVolumeEndLba")?)?;
        let length = unsigned(column(row, 5, table, &idx, "dvsanVolumeLength")?)?;
        check_extent("volume", &idx, start_lba, end_lba, length, 0, capacity_blocks)?;
        let (state, clearing) = match integer(column(row, 6, table, &idx, "dvsanVolumeState")?)? {
            1 => (Availability::Available, None),
            2 => (Availability::Unavailable, None),
            // Units before dvsanVolumeClearProgress do not clear; say 0 when the column is missing.
            3 => {
                (Availability::Unavailable, Some(row.get(&9).map(|vb| unsigned(vb)).transpose()?.unwrap_or(0).min(100)))
            }
            other => {
                return Err(garbage(format!(
                    "dvsanVolumeState.{idx} {other} is not available(1)/unavailable(2)/clearing(3)"
                )))
            }
        };
        let volume = VolumeRow {
            index: index[0],
            name: text(column(row, 2, table, &idx, "dvsanVolumeName")?, 64)?,
            start_lba,
            end_lba,
            length,
            export_name: text(column(row, 7, table, &idx, "dvsanVolumeExportName")?, 255)?,
            state,
            clearing,
            granted_hosts: Vec::new(),
        };
        if let Some(other) = volume_rows.iter().find(|o| o.start_lba <= volume.end_lba && volume.start_lba <= o.end_lba)
        {
            return Err(garbage(format!("volumes {} and {} overlap", other.index, volume.index)));
        }
        volume_rows.push(volume);
    }
    Ok(volume_rows)
}

/// dvsanPartitionTable's rows, each checked to lie within its volume (one of `volume_rows`).
fn partition_rows(
    partitions: &BTreeMap<Vec<u32>, Row<'_>>,
    volume_rows: &[VolumeRow],
) -> Result<Vec<PartitionRow>, WalkError> {
    let mut partition_rows: Vec<PartitionRow> = Vec::with_capacity(partitions.len());
    for (index, row) in partitions {
        let idx = index_text(index);
        let table = "dvsanPartitionTable";
        let Some(volume) = volume_rows.iter().find(|v| v.index == index[0]) else {
            return Err(garbage(format!("partition {idx} belongs to volume {}, which does not exist", index[0])));
        };
        let start_lba = unsigned(column(row, 2, table, &idx, "dvsanPartitionStartLba")?)?;
        let end_lba = unsigned(column(row, 3, table, &idx, "dvsanPartitionEndLba")?)?;
        let length = unsigned(column(row, 4, table, &idx, "dvsanPartitionLength")?)?;
        check_extent(
            "partition",
            &idx,
            start_lba,
            end_lba,
            length,
            volume.start_lba,
            volume.end_lba.saturating_add(1),
        )?;
        partition_rows.push(PartitionRow {
            volume_index: index[0],
            index: index[1],
            start_lba,
            end_lba,
            length,
            export_name: text(column(row, 5, table, &idx, "dvsanPartitionExportName")?, 255)?,
        });
    }
    Ok(partition_rows)
}

/// dvsanAccessTable's rows: each grant's host is added to its volume's `granted_hosts`. A grant on a volume the
/// walk did not see (the layout changed between the walks) is ignored: the change counter check walks again.
fn access_rows(grants: &BTreeMap<Vec<u32>, Row<'_>>, volumes: &mut [VolumeRow]) -> Result<(), WalkError> {
    for (index, row) in grants {
        let idx = index_text(index);
        let table = "dvsanAccessTable";
        let volume = unsigned(column(row, 2, table, &idx, "dvsanAccessVolumeIndex")?)?;
        let kind = integer(column(row, 4, table, &idx, "dvsanAccessHostAddressType")?)?;
        let address = column(row, 5, table, &idx, "dvsanAccessHostAddress")?;
        let Some(host) = data_address(kind, address)
            .map_err(|_| garbage(format!("dvsanAccessHostAddress.{idx} does not match its type {kind}")))?
        else {
            continue;
        };
        if let Some(v) = volumes.iter_mut().find(|v| v.index == volume) {
            if !v.granted_hosts.contains(&host) {
                v.granted_hosts.push(host);
            }
        }
    }
    Ok(())
}

/// `start..=end` of `length` blocks must lie in `lo..hi` (hi exclusive).
fn check_extent(what: &str, idx: &str, start: u32, end: u32, length: u32, lo: u32, hi: u32) -> Result<(), WalkError> {
    if length == 0 || u64::from(start) + u64::from(length) - 1 != u64::from(end) {
        return Err(garbage(format!("{what} {idx}: start {start}, end {end} and length {length} disagree")));
    }
    if start < lo || u64::from(end) >= u64::from(hi) {
        return Err(garbage(format!("{what} {idx}: extent {start}..={end} lies outside {lo}..{hi}")));
    }
    Ok(())
}

/// InetAddressType + InetAddress -> an IP; unknown(0) or an empty address -> none.
fn data_address(kind: i32, address: &VarBind) -> Result<Option<IpAddr>, WalkError> {
    let Value::OctetString(bytes) = &address.value else {
        return Err(garbage(format!("dvsanUnitDataAddress.0 is {}", address.value.type_name())));
    };
    match (kind, bytes.len()) {
        (0, 0) => Ok(None),
        (1, 4) => Ok(Some(IpAddr::from(<[u8; 4]>::try_from(bytes.as_slice()).unwrap_or_default()))),
        (2, 16) => Ok(Some(IpAddr::from(<[u8; 16]>::try_from(bytes.as_slice()).unwrap_or_default()))),
        _ => Err(garbage(format!("dvsanUnitDataAddress.0 of type {kind} has {} octets", bytes.len()))),
    }
}

impl From<SnmpError> for WalkError {
    fn from(e: SnmpError) -> Self {
        match e {
            SnmpError::Timeout => WalkError::Transport("no response (timeout after retries)".to_string()),
            SnmpError::Io(e) => WalkError::Transport(e.to_string()),
            SnmpError::Closed => WalkError::Transport("the manager stopped".to_string()),
            SnmpError::Agent { status, index } => WalkError::Agent(format!("{status} (error-index {index})")),
            other => WalkError::Garbage(other.to_string()),
        }
    }
}

/// Reads a whole unit: the four subtrees walked with GETBULK in parallel plus sysUpTime.0 and ifOperStatus.1,
/// then dvsanUnitChangeCounter.0 again. When the counter moved during the walk, the layout changed under it:
/// walk again (up to 3 times).
pub async fn read_unit(manager: &Manager, target: &Target) -> Result<UnitSnapshot, WalkError> {
    const ATTEMPTS: u32 = 3;
    let [unit, media, volumes, partitions, access] = walked_subtrees().map(Oid::from_slice);
    let extras = extra_instances();
    let counter = [instance(dvsan_mib::DVSAN_UNIT_CHANGE_COUNTER, &[0])];
    for _ in 0..ATTEMPTS {
        let (a, b, c, d, e, f) = tokio::join!(
            manager.walk(target, &unit),
            manager.walk(target, &media),
            manager.walk(target, &volumes),
            manager.walk(target, &partitions),
            manager.get(target, &extras),
            manager.walk(target, &access),
        );
        let mut all = a?;
        all.extend(b?);
        all.extend(c?);
        all.extend(d?);
        all.extend(e?);
        all.extend(f?);
        let snapshot = parse_walk(&all)?;
        let after = manager.get(target, &counter).await?;
        match after.first().map(|vb| &vb.value) {
            Some(Value::Counter32(now)) if *now == snapshot.change_counter => return Ok(snapshot),
            Some(Value::Counter32(_)) => continue,
            _ => return Err(WalkError::Garbage("dvsanUnitChangeCounter.0 is not a Counter32".to_string())),
        }
    }
    Err(WalkError::Unstable(ATTEMPTS))
}

/// What one poll of a unit found; `None` where the agent had no such object or answered another type.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PollAnswer {
    pub sys_uptime: Option<u32>,
    pub unit_id: Option<String>,
    pub change_counter: Option<u32>,
    /// dvsanUnitDataServiceState.0 == serving(1).
    pub serving: Option<bool>,
    /// ifOperStatus.1 == up(1).
    pub link_up: Option<bool>,
}

impl PollAnswer {
    /// Whether the unit's data path looks up (unknown counts as up: the walk decides).
    pub fn looks_available(&self) -> bool {
        self.serving != Some(false) && self.link_up != Some(false)
    }
}

/// The instances one poll GETs, in order.
pub fn poll_instances() -> [Oid; 5] {
    [
        instance(dvsan_mib::SYS_UP_TIME, &[0]),
        instance(dvsan_mib::DVSAN_UNIT_ID, &[0]),
        instance(dvsan_mib::DVSAN_UNIT_CHANGE_COUNTER, &[0]),
        instance(dvsan_mib::DVSAN_UNIT_DATA_SERVICE_STATE, &[0]),
        instance(dvsan_mib::IF_OPER_STATUS, &[1]),
    ]
}

/// Interprets the answer to a GET of [`poll_instances`].
pub fn parse_poll(varbinds: &[VarBind]) -> PollAnswer {
    let value = |i: usize| varbinds.get(i).map(|vb| &vb.value);
    PollAnswer {
        sys_uptime: match value(0) {
            Some(Value::TimeTicks(t)) => Some(*t),
            _ => None,
        },
        unit_id: value(1).and_then(Value::as_str).map(str::to_string),
        change_counter: match value(2) {
            Some(Value::Counter32(c)) => Some(*c),
            _ => None,
        },
        serving: value(3).and_then(Value::as_i32).map(|v| v == 1),
        link_up: value(4).and_then(Value::as_i32).map(|v| v == 1),
    }
}

/// One poll: a single GET of [`poll_instances`].
pub async fn poll_unit(manager: &Manager, target: &Target) -> Result<PollAnswer, WalkError> {
    let varbinds = manager.get(target, &poll_instances()).await?;
    Ok(parse_poll(&varbinds))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub const UNIT_ID: &str = "8c3f0b52-4f4b-4b8e-9a51-3f0e6d2c7a10";

    fn vb(node: &[u32], index: &[u32], value: Value) -> VarBind {
        VarBind::new(instance(node, index), value)
    }

    /// A consistent walk: 2 media, volumes 1 (0..=99) and 2 (100..=149), partition 1.1 (10..=19).
    pub fn good_walk() -> Vec<VarBind> {
        use dvsan_mib::*;
        vec![
            vb(SYS_UP_TIME, &[0], Value::TimeTicks(500)),
            vb(IF_OPER_STATUS, &[1], Value::Integer(1)),
            vb(DVSAN_UNIT_ID, &[0], Value::string(UNIT_ID)),
            vb(DVSAN_UNIT_NAME, &[0], Value::string("u1")),
            vb(DVSAN_UNIT_BLOCK_SIZE, &[0], Value::Gauge32(4096)),
            vb(DVSAN_UNIT_CAPACITY_BLOCKS, &[0], Value::Gauge32(1000)),
            vb(DVSAN_UNIT_FREE_BLOCKS, &[0], Value::Gauge32(850)),
            vb(DVSAN_UNIT_DATA_ADDRESS_TYPE, &[0], Value::Integer(1)),
            vb(DVSAN_UNIT_DATA_ADDRESS, &[0], Value::OctetString(vec![127, 0, 0, 2])),
            vb(DVSAN_UNIT_DATA_PORT, &[0], Value::Gauge32(10809)),
            vb(DVSAN_UNIT_CHANGE_COUNTER, &[0], Value::Counter32(7)),
            vb(DVSAN_UNIT_DATA_SERVICE_STATE, &[0], Value::Integer(1)),
            vb(DVSAN_UNIT_LARGEST_FREE_BLOCKS, &[0], Value::Gauge32(850)),
            vb(DVSAN_MEDIA_PATH, &[1], Value::string("/a")),
            vb(DVSAN_MEDIA_PATH, &[2], Value::string("/b")),
            vb(DVSAN_MEDIA_KIND, &[1], Value::Integer(1)),
            vb(DVSAN_MEDIA_KIND, &[2], Value::Integer(2)),
            vb(DVSAN_MEDIA_BLOCKS, &[1], Value::Gauge32(500)),
            vb(DVSAN_MEDIA_BLOCKS, &[2], Value::Gauge32(500)),
            vb(DVSAN_MEDIA_FIRST_LBA, &[1], Value::Gauge32(0)),
            vb(DVSAN_MEDIA_FIRST_LBA, &[2], Value::Gauge32(500)),
            vb(DVSAN_VOLUME_NAME, &[1], Value::string("vol1")),
            vb(DVSAN_VOLUME_NAME, &[2], Value::string("data")),
            vb(DVSAN_VOLUME_START_LBA, &[1], Value::Gauge32(0)),
            vb(DVSAN_VOLUME_START_LBA, &[2], Value::Gauge32(100)),
            vb(DVSAN_VOLUME_END_LBA, &[1], Value::Gauge32(99)),
            vb(DVSAN_VOLUME_END_LBA, &[2], Value::Gauge32(149)),
            vb(DVSAN_VOLUME_LENGTH, &[1], Value::Gauge32(100)),
            vb(DVSAN_VOLUME_LENGTH, &[2], Value::Gauge32(50)),
            vb(DVSAN_VOLUME_STATE, &[1], Value::Integer(1)),
            vb(DVSAN_VOLUME_STATE, &[2], Value::Integer(2)),
            vb(DVSAN_VOLUME_EXPORT_NAME, &[1], Value::string("vol1")),
            vb(DVSAN_VOLUME_EXPORT_NAME, &[2], Value::string("data")),
            vb(DVSAN_VOLUME_ROW_STATUS, &[1], Value::Integer(1)),
            vb(DVSAN_VOLUME_ROW_STATUS, &[2], Value::Integer(1)),
            vb(DVSAN_PARTITION_START_LBA, &[1, 1], Value::Gauge32(10)),
            vb(DVSAN_PARTITION_END_LBA, &[1, 1], Value::Gauge32(19)),
            vb(DVSAN_PARTITION_LENGTH, &[1, 1], Value::Gauge32(10)),
            vb(DVSAN_PARTITION_EXPORT_NAME, &[1, 1], Value::string("vol1.p1")),
            vb(DVSAN_PARTITION_ROW_STATUS, &[1, 1], Value::Integer(1)),
        ]
    }

    #[test]
    fn a_good_walk_parses() {
        let snap = parse_walk(&good_walk()).unwrap();
        assert_eq!(snap.unit_id, UNIT_ID);
        assert_eq!(snap.block_size, 4096);
        assert_eq!(snap.data_address, Some("127.0.0.2".parse().unwrap()));
        assert_eq!(snap.data_port, 10809);
        assert_eq!(snap.change_counter, 7);
        assert_eq!(snap.sys_uptime, 500);
        assert_eq!(snap.media.len(), 2);
        assert_eq!(snap.media[1].kind, "blockDevice");
        assert_eq!(snap.volumes.len(), 2);
        assert_eq!(
            (snap.volumes[1].name.as_str(), snap.volumes[1].start_lba, snap.volumes[1].end_lba),
            ("data", 100, 149)
        );
        assert_eq!(snap.volumes[1].state, Availability::Unavailable);
        assert_eq!(snap.partitions.len(), 1);
        assert_eq!(snap.partitions[0].export_name, "vol1.p1");
        assert_eq!(snap.state().0, crate::model::UnitState::Available);
    }

    fn replace(walk: &mut [VarBind], node: &[u32], index: &[u32], value: Value) {
        let oid = instance(node, index);
        let vb = walk.iter_mut().find(|vb| vb.oid == oid).unwrap();
        vb.value = value;
    }

    fn expect_garbage(walk: &[VarBind], needle: &str) {
        match parse_walk(walk) {
            Err(WalkError::Garbage(text)) => assert!(text.contains(needle), "{text:?} lacks {needle:?}"),
            other => panic!("expected garbage about {needle:?}, got {other:?}"),
        }
    }

    #[test]
    fn garbage_is_named() {
        use dvsan_mib::*;
        let mut walk = good_walk();
        replace(&mut walk, DVSAN_UNIT_ID, &[0], Value::string("not-a-uuid"));
        expect_garbage(&walk, "not a UUID");

        let mut walk = good_walk();
        replace(&mut walk, DVSAN_VOLUME_END_LBA, &[2], Value::Gauge32(150));
        expect_garbage(&walk, "disagree");

        let mut walk = good_walk();
        replace(&mut walk, DVSAN_VOLUME_START_LBA, &[2], Value::Integer(100));
        expect_garbage(&walk, "expected Unsigned32");

        let mut walk = good_walk();
        walk.retain(|vb| vb.oid != instance(DVSAN_VOLUME_LENGTH, &[1]));
        expect_garbage(&walk, "has no dvsanVolumeLength");

        let mut walk = good_walk();
        replace(&mut walk, DVSAN_UNIT_FREE_BLOCKS, &[0], Value::Gauge32(5000));
        expect_garbage(&walk, "free blocks");

        let mut walk = good_walk();
        replace(&mut walk, DVSAN_PARTITION_START_LBA, &[1, 1], Value::Gauge32(95));
        replace(&mut walk, DVSAN_PARTITION_END_LBA, &[1, 1], Value::Gauge32(104));
        expect_garbage(&walk, "outside");

        let mut walk = good_walk();
        walk.retain(|vb| vb.oid != instance(SYS_UP_TIME, &[0]));
        expect_garbage(&walk, "sysUpTime");

        let mut walk = good_walk();
        walk.push(vb(DVSAN_VOLUME_NAME, &[3, 4], Value::string("x")));
        expect_garbage(&walk, "index of the wrong length");

        let mut walk = good_walk();
        replace(&mut walk, DVSAN_VOLUME_START_LBA, &[2], Value::Gauge32(50));
        replace(&mut walk, DVSAN_VOLUME_END_LBA, &[2], Value::Gauge32(99));
        expect_garbage(&walk, "overlap");
    }

    #[test]
    fn grants_and_clearing_are_read_onto_the_volumes() {
        use dvsan_mib::*;
        let mut walk = good_walk();
        replace(&mut walk, DVSAN_VOLUME_STATE, &[2], Value::Integer(3));
        walk.push(vb(DVSAN_VOLUME_CLEAR_PROGRESS, &[2], Value::Gauge32(42)));
        for (g, volume, host) in [(1, 1, [127, 0, 0, 9]), (2, 1, [127, 0, 0, 10]), (3, 7, [127, 0, 0, 11])] {
            walk.push(vb(DVSAN_ACCESS_VOLUME_INDEX, &[g], Value::Gauge32(volume)));
            walk.push(vb(DVSAN_ACCESS_HOST_ADDRESS_TYPE, &[g], Value::Integer(1)));
            walk.push(vb(DVSAN_ACCESS_HOST_ADDRESS, &[g], Value::OctetString(host.to_vec())));
        }
        let snap = parse_walk(&walk).unwrap();
        let hosts: Vec<String> = snap.volumes[0].granted_hosts.iter().map(|h| h.to_string()).collect();
        assert_eq!(hosts, ["127.0.0.9", "127.0.0.10"]);
        assert_eq!((snap.volumes[1].state, snap.volumes[1].clearing), (Availability::Unavailable, Some(42)));
        assert!(snap.volumes[1].granted_hosts.is_empty());
        walk.push(vb(DVSAN_ACCESS_HOST_ADDRESS, &[4], Value::OctetString(vec![1, 2, 3])));
        walk.push(vb(DVSAN_ACCESS_VOLUME_INDEX, &[4], Value::Gauge32(1)));
        walk.push(vb(DVSAN_ACCESS_HOST_ADDRESS_TYPE, &[4], Value::Integer(1)));
        expect_garbage(&walk, "dvsanAccessHostAddress.4");
    }

    #[test]
    fn stopped_data_service_or_link_down_means_unavailable() {
        let mut walk = good_walk();
        replace(&mut walk, dvsan_mib::DVSAN_UNIT_DATA_SERVICE_STATE, &[0], Value::Integer(2));
        assert_eq!(parse_walk(&walk).unwrap().state().0, crate::model::UnitState::Unavailable);
        let mut walk = good_walk();
        replace(&mut walk, dvsan_mib::IF_OPER_STATUS, &[1], Value::Integer(2));
        assert_eq!(parse_walk(&walk).unwrap().state().0, crate::model::UnitState::Unavailable);
        let mut walk = good_walk();
        replace(&mut walk, dvsan_mib::IF_OPER_STATUS, &[1], Value::NoSuchInstance);
        assert_eq!(parse_walk(&walk).unwrap().state().0, crate::model::UnitState::Available);
    }
}
