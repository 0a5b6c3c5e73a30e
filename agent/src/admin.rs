//! The agent's offline admin commands: change or show the layout in a state directory.
//!
//! They go through the same `LayoutStore` transactions as SNMP SETs, so the rules (no overlap, no zero sizes,
//! nothing destroyed while in use) and their messages are the same on both paths.

use crate::cli::{self, AccessCommand, PartitionCommand, StateDir, VolumeCommand};
use anyhow::{bail, Context, Result};
use dvsan_layout::{
    parse_size, AccessMode, Blocks, GrantIndex, HumanSize, Layout, LayoutStore, Lba, NewGrant, NewPartition, NewVolume,
    PartitionIndex, VolumeIndex,
};

fn open(state: &StateDir) -> Result<LayoutStore> {
    if !state.state_dir.join(dvsan_layout::STORE_FILE).exists() {
        bail!(
            "{} has no unit yet: create it with `dvsan-agent init --state-dir {}` (or start `dvsan-agent run` with \
             it once)",
            state.state_dir.display(),
            state.state_dir.display()
        );
    }
    let store = LayoutStore::open(&state.state_dir)
        .with_context(|| format!("opening the unit store in {}", state.state_dir.display()))?;
    if !store.is_initialised()? {
        bail!(
            "{} has no unit yet: create it with `dvsan-agent init` (or start `dvsan-agent run` with it once)",
            state.state_dir.display()
        );
    }
    Ok(store)
}

/// `init`: creates the unit (no media yet: `run` attaches them) unless the state directory has one, and prints its
/// unit id, so that the unit can be enrolled at the station before its agent first starts.
pub fn init(state: &StateDir, name: Option<String>, block_size: Option<u32>) -> Result<()> {
    let dir = &state.state_dir;
    let (mut store, _opening) =
        LayoutStore::open_exclusive(dir).with_context(|| format!("opening the unit store in {}", dir.display()))?;
    let existing = if store.is_initialised()? { Some(store.load()?.unit) } else { None };
    let unit = match existing {
        Some(unit) if name.is_none() && block_size.is_none_or(|bs| bs == unit.block_size) => unit,
        // A new unit, or a name or block size given for an existing one (a rename; another block size is refused).
        existing => {
            let name =
                name.or_else(|| existing.as_ref().map(|u| u.name.clone())).unwrap_or_else(|| cli::default_name(dir));
            let block_size = block_size.or(existing.map(|u| u.block_size)).unwrap_or(cli::DEFAULT_BLOCK_SIZE);
            store.init_unit(&name, block_size).context("creating the unit")?
        }
    };
    println!("{}", unit.unit_id);
    Ok(())
}

/// Bytes to whole blocks, rounding up; zero stays zero so the layout rules can refuse it by name.
fn blocks(size: &str, block_size: u32) -> Result<Blocks> {
    let bytes = parse_size(size)?;
    Ok(Blocks(bytes.div_ceil(u64::from(block_size))))
}

fn index(i: u32, what: &str) -> Result<u32> {
    if i == 0 || i > i32::MAX as u32 {
        bail!("{what} index {i} is out of range; valid indexes are 1 to 2147483647");
    }
    Ok(i)
}

pub fn volume(cmd: VolumeCommand) -> Result<()> {
    match cmd {
        VolumeCommand::Create { state, size, name, index: idx, start_lba } => {
            let mut store = open(&state)?;
            let bs = store.load()?.unit.block_size;
            let req = NewVolume {
                index: idx.map(|i| index(i, "volume")).transpose()?.map(VolumeIndex),
                name,
                start: start_lba.map(Lba),
                len: blocks(&size, bs)?,
            };
            let v = store.create_volume(&req).context("volume not created")?;
            println!(
                "created volume {} {:?}: LBA {}..={} ({} blocks, {}), export {:?}",
                v.index,
                v.name,
                v.extent.start,
                v.extent.end(),
                v.extent.len,
                HumanSize(v.extent.bytes(bs)),
                v.export_name
            );
        }
        VolumeCommand::Grow { state, index: idx, size } => {
            let mut store = open(&state)?;
            let bs = store.load()?.unit.block_size;
            let v = store
                .grow_volume(VolumeIndex(index(idx, "volume")?), blocks(&size, bs)?)
                .context("volume not grown")?;
            println!(
                "volume {} now LBA {}..={} ({})",
                v.index,
                v.extent.start,
                v.extent.end(),
                HumanSize(v.extent.bytes(bs))
            );
        }
        VolumeCommand::Destroy { state, index: idx } => {
            let mut store = open(&state)?;
            let v = store.destroy_volume(VolumeIndex(index(idx, "volume")?)).context("volume not destroyed")?;
            println!(
                "destroyed volume {} {:?}; its {} blocks are cleared before they are free again",
                v.index, v.name, v.extent.len
            );
        }
        VolumeCommand::Wipe { state, index: idx } => {
            let mut store = open(&state)?;
            let v = store.wipe_volume(VolumeIndex(index(idx, "volume")?)).context("volume not wiped")?;
            println!(
                "wiping volume {} {:?}: not served until its {} blocks are cleared",
                v.index, v.name, v.extent.len
            );
        }
        VolumeCommand::List { state, json } => {
            let layout = open(&state)?.load()?;
            show(&layout, json)?;
        }
    }
    Ok(())
}

pub fn partition(cmd: PartitionCommand) -> Result<()> {
    match cmd {
        PartitionCommand::Create { state, volume, size, index: idx, start_lba } => {
            let mut store = open(&state)?;
            let bs = store.load()?.unit.block_size;
            let req = NewPartition {
                volume: VolumeIndex(index(volume, "volume")?),
                index: idx.map(|i| index(i, "partition")).transpose()?.map(PartitionIndex),
                start: start_lba.map(Lba),
                len: blocks(&size, bs)?,
            };
            let p = store.create_partition(&req).context("partition not created")?;
            println!(
                "created partition {} of volume {}: LBA {}..={} ({}), export {:?}",
                p.index,
                p.volume,
                p.extent.start,
                p.extent.end(),
                HumanSize(p.extent.bytes(bs)),
                p.export_name
            );
        }
        PartitionCommand::Destroy { state, volume, index: idx } => {
            let mut store = open(&state)?;
            let p = store
                .destroy_partition(VolumeIndex(index(volume, "volume")?), PartitionIndex(index(idx, "partition")?))
                .context("partition not destroyed")?;
            println!("destroyed partition {} of volume {}", p.index, p.volume);
        }
    }
    Ok(())
}

pub fn access(cmd: AccessCommand) -> Result<()> {
    match cmd {
        AccessCommand::Grant { state, volume, partition, host, identity, read_only, shared } => {
            let mut store = open(&state)?;
            let req = NewGrant {
                index: None,
                volume: VolumeIndex(index(volume, "volume")?),
                partition: partition.map(|p| index(p, "partition")).transpose()?.map(PartitionIndex),
                host,
                identity,
                mode: match (read_only, shared) {
                    (true, _) => AccessMode::ReadOnly,
                    (false, true) => AccessMode::ReadWriteShared,
                    (false, false) => AccessMode::ReadWrite,
                },
            };
            let g = store.create_grant(&req).context("access not granted")?;
            println!(
                "grant {}: host {} may use volume {}{} {}",
                g.index,
                g.host_text(),
                g.volume,
                g.partition.map(|p| format!(" partition {p}")).unwrap_or_default(),
                match g.mode {
                    AccessMode::ReadOnly => "read-only",
                    AccessMode::ReadWrite => "read-write",
                    AccessMode::ReadWriteShared => "read-write shared",
                }
            );
        }
        AccessCommand::Revoke { state, index: idx } => {
            let mut store = open(&state)?;
            let g = store.revoke_grant(GrantIndex(index(idx, "access")?)).context("grant not revoked")?;
            println!("revoked grant {} (host {} on volume {})", g.index, g.host_text(), g.volume);
        }
    }
    Ok(())
}

pub fn show_state(state: &StateDir, json: bool) -> Result<()> {
    let layout = open(state)?.load()?;
    show(&layout, json)
}

fn show(layout: &Layout, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(layout)?);
        return Ok(());
    }
    let bs = layout.unit.block_size;
    println!(
        "unit {} ({}), block size {bs}, capacity {} blocks ({}), free {} blocks, clearing {} blocks, change counter {}",
        layout.unit.name,
        layout.unit.unit_id,
        layout.capacity(),
        HumanSize(layout.capacity().0 * u64::from(bs)),
        layout.free_blocks(),
        layout.clearing_blocks(),
        layout.unit.change_counter
    );
    println!("{:>5}  {:<20} {:>12} {:>12} {:>12}  SIZE", "INDEX", "NAME", "START", "END", "BLOCKS");
    for v in &layout.volumes {
        println!(
            "{:>5}  {:<20} {:>12} {:>12} {:>12}  {}{}",
            v.index,
            v.name,
            v.extent.start,
            v.extent.end(),
            v.extent.len,
            HumanSize(v.extent.bytes(bs)),
            if v.clearing.is_some() { format!("  clearing {}%", v.clear_percent()) } else { String::new() }
        );
        for p in layout.partitions_of(v.index) {
            println!(
                "{:>5}  {:<20} {:>12} {:>12} {:>12}  {}",
                format!("{}.{}", v.index, p.index),
                p.export_name,
                p.extent.start,
                p.extent.end(),
                p.extent.len,
                HumanSize(p.extent.bytes(bs))
            );
        }
    }
    for g in &layout.grants {
        println!(
            "grant {}: {} -> volume {}{} {:?}",
            g.index,
            g.host_text(),
            g.volume,
            g.partition.map(|p| format!(" partition {p}")).unwrap_or_default(),
            g.mode
        );
    }
    Ok(())
}
