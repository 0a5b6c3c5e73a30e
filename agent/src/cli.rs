//! Command line and config file of `dvsan-agent`.
//!
//! `run` starts the unit's SNMP agent; the other subcommands change or show the layout in a state directory
//! directly (they work whether or not the agent is running: the running agent notices the change counter move).
//! `run` also reads an optional TOML file whose keys are the flags' long names with `_` for `-`; flags given on the
//! command line win over the file. The file may also list `[[community]]` entries with MIB views (name, access,
//! read_view, write_view: see [`RunConfig::communities`]).

use crate::media::MediaArg;
use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use dvsan_layout::{ClearMethod, ClearOptions};
use dvsan_snmp::agent::{Access, Community, View};
use dvsan_snmp::{resolve_address, Endpoint};
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

#[derive(Debug, Parser)]
#[command(name = "dvsan-agent", version, about = "dvsan SAN-unit agent: SNMP agent for the unit's DVSAN-MIB")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the unit's SNMP agent.
    Run(RunArgs),
    /// Create the unit in a state directory (if it has none yet) and print its unit id (dvsanUnitId), which
    /// `dvsan-station unit enroll UNIT_ID` takes; `run` with the same state directory keeps that id.
    Init {
        #[command(flatten)]
        state: StateDir,
        /// The unit's name (sysName and dvsanUnitName; `run --name` changes it). Default: the state directory's
        /// name.
        #[arg(long)]
        name: Option<String>,
        /// Block size in bytes (a power of two, 512..=65536, default 4096), fixed when the unit is created.
        #[arg(long)]
        block_size: Option<u32>,
    },
    /// Create, grow, destroy or list volumes in a unit's state directory.
    #[command(subcommand)]
    Volume(VolumeCommand),
    /// Create or destroy partitions inside a volume.
    #[command(subcommand)]
    Partition(PartitionCommand),
    /// Grant or revoke a host's access to a volume or partition export.
    #[command(subcommand)]
    Access(AccessCommand),
    /// Show the unit's whole layout.
    Show {
        #[command(flatten)]
        state: StateDir,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args, Clone)]
pub struct StateDir {
    /// The unit's state directory (holds unit.db).
    #[arg(long, env = "DVSAN_STATE_DIR")]
    pub state_dir: PathBuf,
}

#[derive(Debug, Args, Default)]
pub struct RunArgs {
    /// TOML file with any of these options (keys: state_dir, name, media, block_size, listen, read_community,
    /// write_community, users, notify_user, trap_sink, inform), and [[community]] entries with views (name,
    /// access, read_view, write_view). Command-line flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The unit's state directory (layout database).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// The unit's name (sysName and dvsanUnitName). Default: the name the unit already has (from `init` or an
    /// earlier run), else the state directory's name.
    #[arg(long)]
    pub name: Option<String>,
    /// Backing medium as PATH:SIZE (created sparse if missing) or PATH (existing file or block device).
    /// Repeat in address order; recorded media must be given again, in the same order.
    #[arg(long = "media", value_name = "PATH:SIZE")]
    pub media: Vec<MediaArg>,
    /// Block size in bytes (a power of two, 512..=65536), fixed when the unit is first created.
    #[arg(long)]
    pub block_size: Option<u32>,
    /// SNMP listen address, IP[:PORT] or NAME[:PORT] (default port 1161; a name is resolved at start).
    /// Production agents use port 161 (needs privileges).
    #[arg(long, value_name = "HOST[:PORT]")]
    pub listen: Option<String>,
    /// Community allowed to read.
    #[arg(long)]
    pub read_community: Option<String>,
    /// Community allowed to read and write (SETs). No default: without one, the agent refuses every SET.
    #[arg(long, value_name = "COMMUNITY")]
    pub write_community: Option<String>,
    /// SNMPv3 users file (TOML, mode 0600; see the README): the agent then answers SNMPv3 requests from these
    /// users, with its engine ID and boots kept in the state directory.
    #[arg(long, value_name = "FILE")]
    pub users: Option<PathBuf>,
    /// Where to send notifications, IP[:PORT] or NAME[:PORT] (default port 162; repeatable; a name is resolved
    /// at start).
    #[arg(long = "trap-sink", value_name = "HOST[:PORT]")]
    pub trap_sink: Vec<String>,
    /// Send acknowledged informs instead of traps (retried until acknowledged).
    #[arg(long)]
    pub inform: bool,
    /// How released space and wiped volumes are cleared: auto (punch holes in files, BLKZEROOUT on block
    /// devices, writing zeroes where refused) or write (always write zeroes).
    #[arg(long, value_name = "auto|write")]
    pub clear_method: Option<ClearMethod>,
    /// Clear at most this many MiB per second (0: as fast as the media allow).
    #[arg(long, value_name = "MIB")]
    pub clear_rate_mib: Option<u64>,
    /// Send notifications as this SNMPv3 user of the --users file (traps with this unit's engine
    /// authoritative, informs to the sink's engine after discovery), instead of with the read community.
    #[arg(long, value_name = "NAME")]
    pub notify_user: Option<String>,
}

/// `run`'s options after merging the config file; defaults applied.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub state_dir: PathBuf,
    /// `None`: the stored unit's name, else [`default_name`].
    pub name: Option<String>,
    pub media: Vec<MediaArg>,
    pub block_size: u32,
    pub listen: SocketAddr,
    /// The community notifications are sent with (v1/v2c sinks).
    pub read_community: String,
    /// Every community the agent accepts, first match wins: `--write-community` (reads and writes everything),
    /// the config file's `[[community]]` entries, then `--read-community` (reads everything; default `public`
    /// only when the file lists no `[[community]]`).
    pub communities: Vec<Community>,
    /// The SNMPv3 users file, if any.
    pub users: Option<PathBuf>,
    pub trap_sinks: Vec<SocketAddr>,
    pub inform: bool,
    pub clear: ClearOptions,
    /// The user of `users` that notifications are sent as (SNMPv3), if any.
    pub notify_user: Option<String>,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:1161";
pub const DEFAULT_BLOCK_SIZE: u32 = 4096;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    state_dir: Option<PathBuf>,
    name: Option<String>,
    #[serde(default)]
    media: Vec<String>,
    block_size: Option<u32>,
    listen: Option<String>,
    read_community: Option<String>,
    write_community: Option<String>,
    users: Option<PathBuf>,
    #[serde(default)]
    trap_sink: Vec<String>,
    inform: Option<bool>,
    clear_method: Option<String>,
    clear_rate_mib: Option<u64>,
    notify_user: Option<String>,
    #[serde(default)]
    community: Vec<CommunityEntry>,
}

/// A `[[community]]` entry of the config file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommunityEntry {
    name: String,
    /// "read-only" (the default) or "read-write".
    access: Option<String>,
    /// Dotted OIDs of the subtrees it may read; absent or empty: everything.
    #[serde(default)]
    read_view: Vec<String>,
    /// Dotted OIDs of the subtrees it may write (read-write only); absent or empty: everything.
    #[serde(default)]
    write_view: Vec<String>,
}

impl CommunityEntry {
    fn community(&self) -> Result<Community> {
        if self.name.is_empty() {
            anyhow::bail!("a [[community]] has an empty name");
        }
        let at = || format!("[[community]] {:?}", self.name);
        let access = match self.access.as_deref() {
            None | Some("read-only") => Access::ReadOnly,
            Some("read-write") => Access::ReadWrite,
            Some(other) => {
                anyhow::bail!("{}: access {other:?}; valid: \"read-only\" (the default), \"read-write\"", at())
            }
        };
        let read_view = View::parse(&self.read_view).with_context(|| format!("{}: read_view", at()))?;
        let write_view = View::parse(&self.write_view).with_context(|| format!("{}: write_view", at()))?;
        if access == Access::ReadOnly && !self.write_view.is_empty() {
            anyhow::bail!("{}: write_view needs access = \"read-write\"", at());
        }
        Ok(Community { name: self.name.clone(), access, read_view, write_view })
    }
}

impl RunArgs {
    pub fn resolve(self) -> Result<RunConfig> {
        let file = match &self.config {
            Some(path) => read_config(path)?,
            None => ConfigFile::default(),
        };
        let mut listed: Vec<Community> = Vec::with_capacity(file.community.len());
        for entry in &file.community {
            let community = entry.community().with_context(|| match &self.config {
                Some(path) => format!("in config file {}", path.display()),
                None => "in the config file".to_string(),
            })?;
            if listed.iter().any(|c| c.name == community.name) {
                anyhow::bail!("[[community]] {:?} is listed twice in the config file", community.name);
            }
            listed.push(community);
        }
        let read_community = self.read_community.or(file.read_community);
        let write_community = self.write_community.or(file.write_community).filter(|c| !c.is_empty());
        // The write community first, so one given as both reads and writes.
        let communities: Vec<Community> = write_community
            .iter()
            .map(Community::read_write)
            .chain(listed.iter().cloned())
            .chain(
                read_community
                    .clone()
                    .or_else(|| listed.is_empty().then(|| "public".to_string()))
                    .map(Community::read_only),
            )
            .collect();
        let state_dir = self
            .state_dir
            .or(file.state_dir)
            .context("no state directory: give --state-dir DIR (or state_dir in the config file)")?;
        let media = if !self.media.is_empty() {
            self.media
        } else {
            file.media
                .iter()
                .map(|m| m.parse::<MediaArg>().map_err(anyhow::Error::msg))
                .collect::<Result<_>>()
                .context("in the config file's media list")?
        };
        Ok(RunConfig {
            name: self.name.or(file.name),
            media,
            block_size: self.block_size.or(file.block_size).unwrap_or(DEFAULT_BLOCK_SIZE),
            listen: resolve_address(self.listen.or(file.listen).as_deref().unwrap_or(DEFAULT_LISTEN), 1161)
                .context("the listen address")?,
            read_community: read_community.unwrap_or_else(|| "public".into()),
            communities,
            users: self.users.or(file.users),
            trap_sinks: trap_sinks(if self.trap_sink.is_empty() { &file.trap_sink } else { &self.trap_sink })?,
            inform: self.inform || file.inform.unwrap_or(false),
            clear: ClearOptions {
                method: match (self.clear_method, file.clear_method) {
                    (Some(m), _) => m,
                    (None, Some(text)) => text.parse().map_err(anyhow::Error::msg).context("in the config file")?,
                    (None, None) => ClearMethod::Auto,
                },
                rate_bytes: self.clear_rate_mib.or(file.clear_rate_mib).unwrap_or(0) << 20,
            },
            notify_user: self.notify_user.or(file.notify_user),
            state_dir,
        })
    }
}

/// A unit's name when none is given: its state directory's name.
pub fn default_name(state_dir: &Path) -> String {
    state_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "unit".into())
}

/// Resolves the trap sinks (default port 162; port 0 is refused).
fn trap_sinks(given: &[String]) -> Result<Vec<SocketAddr>> {
    let sink = |text: &String| {
        let endpoint = Endpoint::parse(text, 162).and_then(Endpoint::require_port);
        endpoint.and_then(|e| e.resolve()).context("a trap sink")
    };
    given.iter().map(sink).collect()
}

fn read_config(path: &Path) -> Result<ConfigFile> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
}

#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Create a volume (first fit unless --start-lba is given).
    Create {
        #[command(flatten)]
        state: StateDir,
        /// Size, e.g. 10G or 512M (rounded up to whole blocks).
        #[arg(long)]
        size: String,
        /// Volume name, also its NBD export name (default vol<index>).
        #[arg(long)]
        name: Option<String>,
        /// Volume index (default: the next free one).
        #[arg(long)]
        index: Option<u32>,
        /// First block in the unit's address space (default: first free extent that fits).
        #[arg(long)]
        start_lba: Option<u64>,
    },
    /// Grow a volume in place to a new total size (the blocks after it must be free).
    Grow {
        #[command(flatten)]
        state: StateDir,
        #[arg(long)]
        index: u32,
        /// New total size, e.g. 20G.
        #[arg(long)]
        size: String,
    },
    /// Destroy a volume that has no partitions and no grants. Its blocks are cleared (by the running agent)
    /// before they can be allocated again.
    Destroy {
        #[command(flatten)]
        state: StateDir,
        #[arg(long)]
        index: u32,
    },
    /// Wipe a volume that has no grants: the running agent clears (zeroes) it; it is not served until done.
    Wipe {
        #[command(flatten)]
        state: StateDir,
        #[arg(long)]
        index: u32,
    },
    /// List volumes.
    List {
        #[command(flatten)]
        state: StateDir,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PartitionCommand {
    /// Create a partition inside a volume.
    Create {
        #[command(flatten)]
        state: StateDir,
        #[arg(long)]
        volume: u32,
        /// Size, e.g. 1G (rounded up to whole blocks).
        #[arg(long)]
        size: String,
        /// Partition index inside the volume (default: the next free one).
        #[arg(long)]
        index: Option<u32>,
        /// First block (absolute unit LBA inside the volume; default: first free extent that fits).
        #[arg(long)]
        start_lba: Option<u64>,
    },
    /// Destroy a partition that has no grants.
    Destroy {
        #[command(flatten)]
        state: StateDir,
        #[arg(long)]
        volume: u32,
        #[arg(long)]
        index: u32,
    },
}

#[derive(Debug, Subcommand)]
pub enum AccessCommand {
    /// Let a host use a volume (or one of its partitions).
    Grant {
        #[command(flatten)]
        state: StateDir,
        #[arg(long)]
        volume: u32,
        /// Partition index; omit for the whole volume.
        #[arg(long)]
        partition: Option<u32>,
        /// The host's IP address as blockd sees it. Without --identity this is all blockd checks (and all a
        /// connection without TLS can show); with it, the grant also needs the connection to come from here.
        #[arg(long, required_unless_present = "identity")]
        host: Option<IpAddr>,
        /// The host's TLS certificate identity (its certificate's SAN DNS name or URI, else its subject CN):
        /// the grant then admits only a TLS connection whose verified client certificate names it.
        #[arg(long, value_name = "NAME")]
        identity: Option<String>,
        #[arg(long, conflicts_with = "shared")]
        read_only: bool,
        /// Read-write shared with other hosts' shared grants (cluster filesystems); without it a read-write grant
        /// is exclusive: refused while another host may write the same blocks.
        #[arg(long)]
        shared: bool,
    },
    /// Remove a grant by its access-table index.
    Revoke {
        #[command(flatten)]
        state: StateDir,
        #[arg(long)]
        index: u32,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("agent.toml");
        std::fs::write(
            &cfg,
            "state_dir = \"/var/lib/u1\"\nmedia = [\"/m/a:1G\"]\nlisten = \"127.0.0.2:1161\"\ntrap_sink = [\"127.0.0.1:162\"]\n",
        )
        .unwrap();
        let cli = Cli::parse_from(["dvsan-agent", "run", "--config", cfg.to_str().unwrap(), "--name", "u9"]);
        let Command::Run(args) = cli.command else { panic!("run expected") };
        let c = args.resolve().unwrap();
        assert_eq!(c.state_dir, PathBuf::from("/var/lib/u1"));
        assert_eq!(c.name.as_deref(), Some("u9"));
        assert_eq!(c.media.len(), 1);
        assert_eq!(c.listen, "127.0.0.2:1161".parse::<SocketAddr>().unwrap());
        assert_eq!(c.trap_sinks.len(), 1);
        assert_eq!(c.block_size, DEFAULT_BLOCK_SIZE);
    }

    #[test]
    fn addresses_take_host_names_resolved_at_start() {
        let run = |extra: &[&str]| {
            let mut argv = vec!["dvsan-agent", "run", "--state-dir", "/tmp/u", "--media", "/tmp/u/m:1M"];
            argv.extend_from_slice(extra);
            let Command::Run(args) = Cli::parse_from(argv).command else { panic!("run expected") };
            args.resolve().map_err(|e| format!("{e:#}"))
        };
        let c = run(&["--listen", "localhost:1170", "--trap-sink", "localhost", "--trap-sink", "127.0.0.9"]).unwrap();
        assert!(c.listen.ip().is_loopback() && c.listen.port() == 1170, "{}", c.listen);
        assert_eq!(c.trap_sinks[0].port(), 162, "the default notification port");
        assert!(c.trap_sinks[0].ip().is_loopback());
        assert_eq!(c.trap_sinks[1], "127.0.0.9:162".parse::<SocketAddr>().unwrap());
        let e = run(&["--trap-sink", "nms.invalid:162"]).unwrap_err();
        assert!(e.contains("a trap sink") && e.contains("\"nms.invalid\" does not resolve"), "{e}");
        let e = run(&["--listen", "unit_1"]).unwrap_err();
        assert!(e.contains("the listen address") && e.contains("NAME:PORT"), "{e}");
        let e = run(&["--trap-sink", "127.0.0.1:0"]).unwrap_err();
        assert!(e.contains("port 0"), "{e}");
    }

    #[test]
    fn communities_with_views_from_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("agent.toml");
        let resolve = |text: &str, extra: &[&str]| {
            std::fs::write(&cfg, format!("state_dir = \"/x\"\n{text}")).unwrap();
            let mut argv = vec!["dvsan-agent", "run", "--config", cfg.to_str().unwrap()];
            argv.extend_from_slice(extra);
            let Command::Run(args) = Cli::parse_from(argv).command else { panic!("run expected") };
            args.resolve().map_err(|e| format!("{e:#}"))
        };
        let text = "[[community]]\nname = \"nms\"\nread_view = [\"1.3.6.1.2.1\"]\n\
                    [[community]]\nname = \"ops\"\naccess = \"read-write\"\nwrite_view = [\".1.3.6.1.4.1.32473.1.3\"]\n";
        let c = resolve(text, &[]).unwrap();
        let names: Vec<&str> = c.communities.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["nms", "ops"], "no default public next to listed communities");
        assert_eq!(c.communities[0].read_view, View::parse(&["1.3.6.1.2.1"]).unwrap());
        assert_eq!(c.communities[1].access, Access::ReadWrite);
        assert!(c.communities[1].read_view.is_everything());
        let c = resolve(text, &["--read-community", "mon", "--write-community", "w"]).unwrap();
        let names: Vec<&str> = c.communities.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["w", "nms", "ops", "mon"]);
        let c = resolve("", &[]).unwrap();
        assert_eq!(c.communities, [Community::read_only("public")]);

        let bad = [
            (
                "[[community]]\nname = \"a\"\nread_view = [\"1.3.x\"]\n",
                "[[community]] \"a\": read_view: OID text \"1.3.x\"",
            ),
            ("[[community]]\nname = \"a\"\nwrite_view = [\"1.3.6\"]\n", "write_view needs access = \"read-write\""),
            ("[[community]]\nname = \"a\"\naccess = \"admin\"\n", "access \"admin\""),
            ("[[community]]\nname = \"a\"\n[[community]]\nname = \"a\"\n", "listed twice"),
            ("[[community]]\nname = \"a\"\nview = []\n", "unknown field `view`"),
        ];
        for (text, want) in bad {
            let e = resolve(text, &[]).unwrap_err();
            assert!(e.contains(want), "{want}: {e}");
        }
    }

    #[test]
    fn unknown_config_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("agent.toml");
        std::fs::write(&cfg, "state_dri = \"/x\"\n").unwrap();
        let args = RunArgs { config: Some(cfg), ..Default::default() };
        let err = format!("{:#}", args.resolve().unwrap_err());
        assert!(err.contains("unknown field `state_dri`"), "{err}");
    }
}
