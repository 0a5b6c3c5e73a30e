//! `dvsan-blockd-setup`: create a unit state directory with one volume and its grants, for benchmarks and manual
//! runs of dvsan-blockd while the agent is not there to do it.

use anyhow::Context;
use clap::Parser;
use dvsan_blockd::setup::{setup_unit, UnitSetup};
use dvsan_layout::AccessMode;
use std::net::IpAddr;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "dvsan-blockd-setup", version)]
struct Cli {
    #[arg(long)]
    state_dir: PathBuf,
    /// A medium (file or block device); repeat for several, in address order.
    #[arg(long = "medium", required = true)]
    media: Vec<PathBuf>,
    #[arg(long, default_value = "bench-unit")]
    unit_name: String,
    #[arg(long, default_value_t = 4096)]
    block_size: u32,
    #[arg(long, default_value = "vol1")]
    volume_name: String,
    /// Volume length in blocks; the largest free extent if not given.
    #[arg(long)]
    volume_blocks: Option<u64>,
    /// Host allowed to use the volume, as IP or IP:ro; repeatable.
    #[arg(long = "grant")]
    grants: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let grants = cli
        .grants
        .iter()
        .map(|g| {
            let (ip, mode) = match g.strip_suffix(":ro") {
                Some(ip) => (ip, AccessMode::ReadOnly),
                None => (g.as_str(), AccessMode::ReadWrite),
            };
            ip.parse::<IpAddr>().with_context(|| format!("--grant {g}: not an IP address")).map(|ip| (ip, mode))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let setup = UnitSetup {
        state_dir: cli.state_dir,
        unit_name: cli.unit_name,
        block_size: cli.block_size,
        media: cli.media,
        volume_name: cli.volume_name,
        volume_blocks: cli.volume_blocks,
        grants,
    };
    let volume = setup_unit(&setup).context("setting up the unit")?;
    println!("{} {}", volume.export_name, volume.extent.bytes(setup.block_size));
    Ok(())
}
