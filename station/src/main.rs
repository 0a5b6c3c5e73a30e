//! `dvsan-station`: the management station's command line.
//!
//! `run` is the station itself. The other commands work on the station's state directory directly, whether the
//! station runs or not (SQLite in WAL mode lets them share the store): `unit add` registers the address and reads
//! the unit right away, and the running station polls every registered address from its next poll on. The
//! commands that change the pool (`unit add`, `unit rescan`, `volume`, `partition`, `assign`, `unassign`,
//! `request`) run the same [`Operation`]s as the station's tasks, waiting for the same locks. The trust commands
//! (`unit enroll`, `unit pending`, `unit approve`, `unit reject`) work on the credentials file and the pending
//! units in the state directory; `unit approve` then adds the unit like `unit add`.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use dvsan_routing::{Budget, SolveOptions};
use dvsan_snmp::usm::{UserAccess, UsersFile};
use dvsan_snmp::{resolve_address, Endpoint};
use dvsan_station::allocate::{
    allocations, parse_host, parse_request_size, reject_pending, Allocation, Allocator, LockScope, PoolLock,
};
use dvsan_station::ca::{write_client_dir, write_unit_dir, StationCa, CA_CERT_FILE, LEAF_DAYS};
use dvsan_station::credentials::{agent_users_file, write_private, CredentialStore};
use dvsan_station::operation::{Detail, Operation, Outcome};
use dvsan_station::routes::solve_command;
use dvsan_station::station::{run, StationConfig};
use dvsan_station::store::{NotificationFilter, StationStore, StoreError};
use dvsan_station::timefmt::{format_ms, now_ms, parse_duration, parse_since};
use dvsan_station::view;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "dvsan-station",
    version,
    about = "dvsan management station: the storage pool, learned from SNMP notifications"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args, Clone)]
struct StateDir {
    /// The station's state directory (holds station.db and traps.log).
    #[arg(long, env = "DVSAN_STATION_STATE_DIR")]
    state_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
enum RoutesCommand {
    /// Compute the routing map minimising w_var·var(gateway traffic) + w_change·changes for a problem file
    /// ({"gateways": [...], "w_var", "w_change", "one_gateway_per_storage", "routes": [{"host", "storage",
    /// "traffic", "gateway", "allowed"}, ...]}); see the README, "Routing optimizer".
    Solve {
        /// The problem file (JSON).
        #[arg(long)]
        input: PathBuf,
        /// How long to search when the problem is too large to enumerate (e.g. 1s, 500ms).
        #[arg(long, default_value = "1s", value_parser = parse_duration)]
        time_budget: Duration,
        /// Seed of the search's random choices.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Search this many annealing steps instead of for a time: the answer then depends only on the file and
        /// the seed.
        #[arg(long, conflicts_with = "time_budget")]
        iterations: Option<u64>,
        /// Machine-readable output ({"routes": [{"host", "storage", "gateway"}, ...], "objective", "variance",
        /// "changes", "lower_bound", "gap", "method"}).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the station: receive notifications, keep the pool, poll units, serve the station MIB.
    Run(Box<RunArgs>),
    /// Manage the units the station knows.
    #[command(subcommand)]
    Unit(UnitCommand),
    /// The station's CA for NBD over TLS (in the state directory, made at first need).
    #[command(subcommand)]
    Ca(CaCommand),
    /// Hosts' TLS certificates from the station's CA.
    #[command(subcommand)]
    Host(HostCommand),
    /// Show the pool: units, volumes and partitions.
    Pool {
        #[command(flatten)]
        state: StateDir,
        /// Machine-readable output ({"units": [...]}).
        #[arg(long)]
        json: bool,
    },
    /// Show received notifications from the store (newest last).
    Traps(TrapsArgs),
    /// Allocate a volume of at least SIZE to a host: a free volume (best fit) or a new one on a unit.
    Request {
        #[command(flatten)]
        alloc: AllocArgs,
        /// Bytes, or a number with K, M, G, T (80G, 512M, 1048576).
        #[arg(long)]
        size: String,
        /// The host's IP address (the address its NBD connections come from).
        #[arg(long)]
        host: String,
        /// Name of the volume, when one is created.
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        read_only: bool,
        /// A shared read-write assignment (readWriteShared, for cluster filesystems): with --name, it may take the
        /// volume of that name other hosts hold shared.
        #[arg(long, conflicts_with = "read_only")]
        shared: bool,
        /// 2 or 3: a mirrored volume, each replica a new volume of SIZE on a unit of its own (in a zone of its own
        /// where units have zone labels; spare units are not used), all granted to the host.
        #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=3),
              conflicts_with_all = ["read_only", "shared"])]
        replicas: u32,
        /// Print the assignment as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Assign an existing volume to a host (grant on the unit, recorded in the store).
    Assign {
        #[command(flatten)]
        alloc: AllocArgs,
        /// Unit id (or unique prefix), name, address or station index.
        #[arg(long)]
        unit: String,
        /// dvsanVolumeIndex on the unit.
        #[arg(long)]
        volume: u32,
        #[arg(long)]
        host: String,
        #[arg(long)]
        read_only: bool,
        /// A shared read-write assignment (readWriteShared): allowed next to other hosts' shared assignments.
        #[arg(long, conflicts_with = "read_only")]
        shared: bool,
        #[arg(long)]
        json: bool,
    },
    /// Release a volume: revoke the host's grant on the unit; the volume is free again.
    Unassign {
        #[command(flatten)]
        alloc: AllocArgs,
        #[arg(long)]
        unit: String,
        #[arg(long)]
        volume: u32,
        /// Only release it if this host holds it.
        #[arg(long)]
        host: Option<String>,
    },
    /// Create or destroy volumes on a unit by SNMP SET (free volumes, for requests or `assign`).
    #[command(subcommand)]
    Volume(VolumeCommand),
    /// Create or destroy partitions inside a unit's volume (SNMP SET on the unit).
    #[command(subcommand)]
    Partition(PartitionCommand),
    /// List the station's tasks (dvsanStationTaskTable), oldest first.
    Tasks {
        #[command(flatten)]
        state: StateDir,
        /// Machine-readable output ({"tasks": [...]}).
        #[arg(long)]
        json: bool,
    },
    /// Compare the units' access tables with the assignments and repair them (the station does this at start).
    Reconcile {
        #[command(flatten)]
        alloc: AllocArgs,
    },
    /// Routing maps of host → storage routes over gateways.
    #[command(subcommand)]
    Routes(RoutesCommand),
    /// List the volumes assigned to hosts.
    Assignments {
        #[command(flatten)]
        state: StateDir,
        /// Machine-readable output ({"assignments": [...]}).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum PartitionCommand {
    /// Create a partition of at least SIZE inside volume V of unit U (first fit inside the volume).
    Create {
        #[command(flatten)]
        alloc: AllocArgs,
        #[arg(long)]
        unit: String,
        #[arg(long)]
        volume: u32,
        #[arg(long)]
        size: String,
        #[arg(long)]
        json: bool,
    },
    /// Destroy partition P of volume V of unit U.
    Destroy {
        #[command(flatten)]
        alloc: AllocArgs,
        #[arg(long)]
        unit: String,
        #[arg(long)]
        volume: u32,
        #[arg(long)]
        partition: u32,
    },
}

#[derive(Debug, Subcommand)]
enum VolumeCommand {
    /// Create a volume of at least SIZE on unit U.
    Create {
        #[command(flatten)]
        alloc: AllocArgs,
        #[arg(long)]
        unit: String,
        #[arg(long)]
        size: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Destroy volume V of unit U (refused while it is assigned).
    Destroy {
        #[command(flatten)]
        alloc: AllocArgs,
        #[arg(long)]
        unit: String,
        #[arg(long)]
        volume: u32,
    },
}

/// Options of the commands that change units by SNMP SET.
#[derive(Debug, Args)]
struct AllocArgs {
    #[command(flatten)]
    state: StateDir,
    /// Community for reading units.
    #[arg(long, default_value = "public")]
    community: String,
    /// Community for SETs on units (the agents' --write-community); no default: without it, commands that change
    /// units fail.
    #[arg(long, env = "DVSAN_UNIT_WRITE_COMMUNITY", hide_env_values = true, value_name = "COMMUNITY")]
    write_community: Option<String>,
    /// How long to wait for a unit's answer (per request, with 2 retries).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    timeout: Duration,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    state: StateDir,
    /// Where to receive notifications (traps and informs), IP:PORT or NAME:PORT. Production stations use port 162.
    #[arg(long, value_name = "HOST:PORT")]
    listen_traps: String,
    /// The SNMP port of units known only by the source address of their notifications.
    #[arg(long, default_value_t = 1161)]
    agent_port: u16,
    /// Community for reading units; also accepted on notifications unless --trap-community is given.
    #[arg(long, default_value = "public")]
    community: String,
    /// Community for SETs on units (allocations, tasks, grants repaired at start); no default: without it, the
    /// station changes no unit (storage requests and tasks that need to fail, saying so).
    #[arg(long, env = "DVSAN_UNIT_WRITE_COMMUNITY", hide_env_values = true, value_name = "COMMUNITY")]
    write_community: Option<String>,
    /// Community accepted on notifications (repeatable); others are dropped and counted.
    #[arg(long = "trap-community", value_name = "COMMUNITY")]
    trap_communities: Vec<String>,
    /// How often every known unit is polled (one GET).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    poll_interval: Duration,
    /// Missed polls in a row after which a unit is unreachable.
    #[arg(long, default_value_t = 3)]
    unreachable_after: u32,
    /// Send every received notification and the station's own to this NMS, IP[:PORT] or NAME[:PORT] (default
    /// port 162; repeatable; a name is resolved at start).
    #[arg(long = "forward", value_name = "HOST:PORT")]
    forward: Vec<String>,
    /// Forward as informs (acknowledged, retried) instead of traps.
    #[arg(long)]
    forward_inform: bool,
    /// Community of forwarded notifications.
    #[arg(long, default_value = "public")]
    forward_community: String,
    /// Serve DVSAN-STATION-MIB (the pool, read-only) on this address, IP:PORT or NAME:PORT.
    #[arg(long, value_name = "HOST:PORT")]
    snmp_listen: Option<String>,
    /// Read community of the station's own agent.
    #[arg(long, default_value = "public")]
    snmp_community: String,
    /// Write community of the station's own agent (storage requests in dvsanStationRequestTable, tasks in
    /// dvsanStationTaskTable; repeatable, one per host or tenant: each sees and releases only the assignments it made).
    /// No default: without one (and without --admin-community) the station's agent refuses every SET.
    #[arg(
        long = "snmp-write-community",
        value_name = "COMMUNITY",
        env = "DVSAN_STATION_WRITE_COMMUNITY",
        hide_env_values = true,
        value_delimiter = ','
    )]
    snmp_write_communities: Vec<String>,
    /// Administrator community of the station's own agent (repeatable): it may also write, sees every storage
    /// request and assignment, may release any, and is the only one that may run the station tasks that destroy,
    /// take away or add (see station/README.md). No default.
    #[arg(
        long = "admin-community",
        value_name = "COMMUNITY",
        env = "DVSAN_ADMIN_COMMUNITY",
        hide_env_values = true,
        value_delimiter = ','
    )]
    admin_communities: Vec<String>,
    /// SNMPv3 users of the station's own agent: a users file (TOML, mode 0600; the format is in the README). A
    /// read-write user may submit storage requests and tasks and sees and releases only what it made; a read-only
    /// user only reads. The station's engine id and boots are kept in the state directory (snmp-engine.toml).
    #[arg(long = "users", value_name = "FILE", env = "DVSAN_STATION_USERS")]
    users: Option<PathBuf>,
    /// Administrator user of the station's own agent (repeatable; a read-write user of --users): it sees every
    /// storage request and assignment, may release any, and alone may run the station tasks that destroy, take
    /// away or add, like an --admin-community.
    #[arg(long = "admin-user", value_name = "NAME", requires = "users", value_delimiter = ',')]
    admin_users: Vec<String>,
    /// Forward notifications (--forward) as this SNMPv3 user instead of --forward-community: traps with the
    /// station's engine authoritative (the NMS needs the station's engine id: `createUser -e ID` in snmptrapd;
    /// the station logs it at start), informs after discovering the NMS's engine. The user is read from
    /// --forward-credentials, or else from --users.
    #[arg(long, value_name = "NAME")]
    forward_user: Option<String>,
    /// Users file (TOML, mode 0600) holding --forward-user, when it is not in --users.
    #[arg(long, value_name = "FILE", requires = "forward_user")]
    forward_credentials: Option<PathBuf>,
    /// Rotate traps.log when it grows past this size (e.g. 16M).
    #[arg(long, default_value = "16M")]
    trap_log_max_size: String,
    /// Rotated trap logs to keep (traps.log.1 ...).
    #[arg(long, default_value_t = 4)]
    trap_log_keep: usize,
    /// Notifications kept in the store; older ones are pruned.
    #[arg(long, default_value_t = 2_000_000)]
    keep_notifications: u64,
    /// fsync every committed batch (survives power loss; the default survives crashes of the station).
    #[arg(long)]
    full_durability: bool,
    /// Station tasks (dvsanStationTaskTable) running at once, at most; more wait pending.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    task_workers: u32,
    /// How long tasks and storage requests wait for a unit's answer (per request, with 2 retries).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    unit_timeout: Duration,
    /// Lab mode: pool every unit that announces itself with a community (v1/v2c coldStart), without enrolment
    /// or approval, as stations did before trust existed. Anyone on the network can then add a unit to the pool.
    /// Off by default: unknown units wait in `unit pending` for `unit approve`; enrolled units are trusted by
    /// their credentials.
    #[arg(long)]
    trust_community_units: bool,
}

#[derive(Debug, Subcommand)]
enum UnitCommand {
    /// Register a unit's agent address and read the unit now; the station keeps polling it.
    Add {
        /// The unit's agent: IP, IP:PORT, NAME or NAME:PORT. A name is kept with the unit and resolved again when
        /// the unit stops answering at the address it resolved to.
        #[arg(value_name = "HOST[:PORT]")]
        address: String,
        #[command(flatten)]
        state: StateDir,
        /// Port used when ADDR has none.
        #[arg(long, default_value_t = 1161)]
        agent_port: u16,
        #[arg(long, default_value = "public")]
        community: String,
        /// How long to wait for the unit's answers (per request, with 2 retries).
        #[arg(long, default_value = "1s", value_parser = parse_duration)]
        timeout: Duration,
        /// The unit's zone label (letters, digits, `.`, `-`, `_`): replicas of a mirrored volume go to different
        /// zones.
        #[arg(long, value_name = "ZONE", value_parser = parse_zone)]
        zone: Option<String>,
        /// A spare unit: kept out of ordinary allocation (for replacing replicas).
        #[arg(long)]
        spare: bool,
    },
    /// Set a unit's station-side labels: its zone and whether it is a spare (also for units the station learned
    /// from their notifications).
    Set {
        /// Unit id (or unique prefix), name, address or station index.
        #[arg(value_name = "UNIT")]
        unit: String,
        #[command(flatten)]
        state: StateDir,
        /// The zone label (letters, digits, `.`, `-`, `_`; "" removes it).
        #[arg(long, value_name = "ZONE", value_parser = parse_zone)]
        zone: Option<String>,
        /// Keep the unit out of ordinary allocation.
        #[arg(long, conflicts_with = "no_spare")]
        spare: bool,
        /// An ordinary unit again.
        #[arg(long)]
        no_spare: bool,
    },
    /// Enrol a unit: generate its SNMPv3 user (SHA-256/AES, random passphrases), keep it in the station's state
    /// directory (unit-users.toml, mode 0600) and write it to FILE (mode 0600) for the unit's agent (`--users`).
    /// Notifications authenticated as that user pool the unit without approval, from wherever it moves.
    Enroll {
        /// The unit's id (dvsanUnitId, the UUID `dvsan-agent show` prints).
        #[arg(value_name = "UNIT_ID")]
        unit_id: String,
        /// Where to write the unit agent's users file.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Replace the credentials of a unit enrolled before.
        #[arg(long)]
        force: bool,
        /// Also issue the unit's blockd certificate from the station's CA and write DIR: blockd-cert.pem,
        /// blockd-key.pem (mode 0600) and ca-cert.pem, for `dvsan-blockd --tls require --tls-cert ...`.
        #[arg(long, value_name = "DIR", requires = "tls_names")]
        tls_dir: Option<PathBuf>,
        /// An address or DNS name hosts use to reach the unit's blockd (repeat for each); clients check the one
        /// they connect to against the certificate. The unit id is always in it too.
        #[arg(long = "tls-name", value_name = "IP|NAME")]
        tls_names: Vec<String>,
        #[command(flatten)]
        state: StateDir,
    },
    /// List the units waiting for approval: units that announced themselves without being trusted.
    Pending {
        #[command(flatten)]
        state: StateDir,
        /// Machine-readable output ({"pending": [...]}).
        #[arg(long)]
        json: bool,
        /// Also list the rejected ones.
        #[arg(long)]
        all: bool,
    },
    /// Approve a pending unit (index, claimed unit id or prefix, or address): it is read into the pool now,
    /// bound to its address (without credentials it is trusted at that address only).
    Approve {
        #[arg(value_name = "UNIT")]
        unit: String,
        #[command(flatten)]
        alloc: AllocArgs,
    },
    /// Reject a pending unit (index, claimed unit id or prefix, or address): it stays out of the pool and is not
    /// offered again (`unit pending --all` lists it; `unit approve` still takes it).
    Reject {
        #[arg(value_name = "UNIT")]
        unit: String,
        #[command(flatten)]
        state: StateDir,
    },
    /// Read a unit now (unit id or prefix, name, address or index) and store what it has.
    Rescan {
        #[arg(value_name = "UNIT")]
        unit: String,
        #[command(flatten)]
        alloc: AllocArgs,
    },
    /// Forget a unit (unit id or prefix, name, address or index): its media, volumes and partitions. Refused while
    /// any of its volumes is assigned. A removed unit that sends any notification again is learned again.
    Remove {
        #[arg(value_name = "UNIT")]
        unit: String,
        /// Release the unit's assignments too (for a unit that is gone for good); says which.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        alloc: AllocArgs,
    },
}

#[derive(Debug, Subcommand)]
enum CaCommand {
    /// Print the CA certificate's path and SHA-256 fingerprint (making the CA if the station has none yet).
    Show {
        #[command(flatten)]
        state: StateDir,
    },
}

#[derive(Debug, Subcommand)]
enum HostCommand {
    /// Issue a host's client certificate for identity NAME (its DNS subjectAltName, what blockd grants by
    /// identity match) with a new key, and write DIR as libnbd's `tls-certificates=DIR` and qemu's
    /// `tls-creds-x509,dir=DIR` read it: ca-cert.pem, client-cert.pem, client-key.pem (mode 0600).
    Issue {
        #[arg(value_name = "NAME")]
        name: String,
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        #[command(flatten)]
        state: StateDir,
    },
    /// Revoke host identity NAME: release every volume the station assigned to it (grants destroyed on the
    /// units, which close its open NBD connections; volumes wiped), and refuse it certificates (`dvsan-host
    /// enroll`) and storage until `host issue NAME` again.
    Revoke {
        #[arg(value_name = "NAME")]
        name: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        alloc: AllocArgs,
    },
}

#[derive(Debug, Args)]
struct TrapsArgs {
    #[command(flatten)]
    state: StateDir,
    /// Keep printing new notifications as they arrive.
    #[arg(short, long)]
    follow: bool,
    /// Only notifications of this unit (unit id or a unique prefix, name, or address), or from this address.
    #[arg(long)]
    unit: Option<String>,
    /// Only this notification type: a name such as linkDown or dvsanLayoutChanged, or a dotted OID.
    #[arg(long = "type", value_name = "NAME|OID")]
    trap_type: Option<String>,
    /// Only notifications since this time: RFC 3339 (2026-11-22T10:00:00Z), Unix seconds, or ago (10m).
    #[arg(long)]
    since: Option<String>,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
    /// Print at most this many (the newest) before following; 0 = all.
    #[arg(short = 'n', long, default_value_t = 1000)]
    limit: usize,
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => cmd_run(*args),
        Command::Unit(UnitCommand::Add { address, state, agent_port, community, timeout, zone, spare }) => {
            cmd_unit_add(&address, &state.state_dir, agent_port, &community, timeout, (zone, spare))
        }
        Command::Unit(UnitCommand::Set { unit, state, zone, spare, no_spare }) => {
            let spare = if spare {
                Some(true)
            } else if no_spare {
                Some(false)
            } else {
                None
            };
            cmd_unit_set(&state.state_dir, &unit, zone.as_deref(), spare)
        }
        Command::Unit(UnitCommand::Rescan { unit, alloc }) => cmd_unit_rescan(&alloc, &unit),
        Command::Unit(UnitCommand::Enroll { unit_id, out, force, tls_dir, tls_names, state }) => {
            cmd_unit_enroll(&state.state_dir, &unit_id, &out, force, tls_dir.as_deref(), &tls_names)
        }
        Command::Ca(CaCommand::Show { state }) => cmd_ca_show(&state.state_dir),
        Command::Host(HostCommand::Issue { name, out, state }) => cmd_host_issue(&state.state_dir, &name, &out),
        Command::Host(HostCommand::Revoke { name, json, alloc }) => cmd_host_revoke(&alloc, &name, json),
        Command::Unit(UnitCommand::Pending { state, json, all }) => cmd_unit_pending(&state.state_dir, json, all),
        Command::Unit(UnitCommand::Approve { unit, alloc }) => cmd_unit_approve(&alloc, &unit),
        Command::Unit(UnitCommand::Reject { unit, state }) => cmd_unit_reject(&state.state_dir, &unit),
        Command::Unit(UnitCommand::Remove { unit, force, alloc }) => {
            let outcome = execute_alloc(&alloc, &Operation::RemoveUnit { unit, force });
            outcome.and_then(|outcome| print_or_quiet(&format!("{}\n", outcome.text)))
        }
        Command::Pool { state, json } => cmd_pool(&state.state_dir, json),
        Command::Traps(args) => cmd_traps(args),
        Command::Request { alloc, size, host, name, read_only, shared, replicas, json } => {
            cmd_request(&alloc, &size, &host, name, (read_only, shared, replicas), json)
        }
        Command::Assign { alloc, unit, volume, host, read_only, shared, json } => {
            cmd_assign(&alloc, &unit, volume, &host, (read_only, shared), json)
        }
        Command::Unassign { alloc, unit, volume, host } => cmd_unassign(&alloc, &unit, volume, host.as_deref()),
        Command::Reconcile { alloc } => cmd_reconcile(&alloc),
        Command::Volume(VolumeCommand::Create { alloc, unit, size, name, json }) => {
            cmd_volume_create(&alloc, &unit, &size, name, json)
        }
        Command::Volume(VolumeCommand::Destroy { alloc, unit, volume }) => cmd_volume_destroy(&alloc, &unit, volume),
        Command::Partition(PartitionCommand::Create { alloc, unit, volume, size, json }) => {
            cmd_partition_create(&alloc, &unit, volume, &size, json)
        }
        Command::Partition(PartitionCommand::Destroy { alloc, unit, volume, partition }) => {
            cmd_partition_destroy(&alloc, &unit, volume, partition)
        }
        Command::Tasks { state, json } => cmd_tasks(&state.state_dir, json),
        Command::Assignments { state, json } => cmd_assignments(&state.state_dir, json),
        Command::Routes(RoutesCommand::Solve { input, time_budget, seed, iterations, json }) => {
            let budget = iterations.map_or(Budget::Time(time_budget), Budget::Iterations);
            let options = SolveOptions { seed, budget, ..SolveOptions::default() };
            solve_command(&input, &options, json).map_err(Into::into).and_then(|text| print_or_quiet(&text))
        }
    };
    if let Err(e) = result {
        eprintln!("dvsan-station: {e:#}");
        std::process::exit(1);
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn cmd_run(args: RunArgs) -> Result<()> {
    init_logging();
    // Listen addresses may ask for port 0 (any free port); names are resolved now, at start.
    let listen_traps = resolve_address(&args.listen_traps, 162).context("--listen-traps")?;
    let forward = args
        .forward
        .iter()
        .map(|sink| {
            let sink = Endpoint::parse(sink, 162).and_then(Endpoint::require_port);
            sink.and_then(|sink| sink.resolve()).context("--forward")
        })
        .collect::<Result<Vec<_>>>()?;
    let snmp_listen = match &args.snmp_listen {
        Some(text) => Some(resolve_address(text, 1161).context("--snmp-listen")?),
        None => None,
    };
    let trap_log_max_bytes = dvsan_layout::parse_size(&args.trap_log_max_size).context("--trap-log-max-size")?;
    if trap_log_max_bytes < 4096 {
        bail!("--trap-log-max-size must be at least 4K");
    }
    let mut config = StationConfig::new(args.state.state_dir.clone(), listen_traps);
    config.agent_port = args.agent_port;
    config.trap_communities =
        if args.trap_communities.is_empty() { vec![args.community.clone()] } else { args.trap_communities };
    config.community = args.community;
    config.write_community = args.write_community.filter(|c| !c.is_empty());
    config.poll_interval = args.poll_interval;
    config.unreachable_after = args.unreachable_after;
    config.forward = forward;
    config.forward_inform = args.forward_inform;
    config.forward_community = args.forward_community;
    config.snmp_listen = snmp_listen;
    config.snmp_community = args.snmp_community;
    config.snmp_write_communities = args.snmp_write_communities.into_iter().filter(|c| !c.is_empty()).collect();
    config.admin_communities = args.admin_communities.into_iter().filter(|c| !c.is_empty()).collect();
    if let Some(path) = &args.users {
        let users = UsersFile::load(path).context("--users")?;
        config.admin_users = check_admin_users(path, &users, args.admin_users)?;
        config.snmp_users = users.users;
    }
    if let Some(name) = &args.forward_user {
        let Some(path) = args.forward_credentials.as_ref().or(args.users.as_ref()) else {
            bail!(
                "--forward-user {name:?}: give the users file that holds it with --forward-credentials FILE (or \
                 --users FILE)"
            );
        };
        if config.forward.is_empty() {
            bail!("--forward-user needs --forward HOST:PORT: the NMS to send notifications to");
        }
        config.forward_user = Some(UsersFile::load_user(path, name).context("--forward-user")?);
    }
    config.trap_log_max_bytes = trap_log_max_bytes;
    config.trap_log_keep = args.trap_log_keep;
    config.keep_notifications = args.keep_notifications;
    config.full_durability = args.full_durability;
    config.task_workers = args.task_workers as usize;
    config.unit_timeout = args.unit_timeout;
    config.trust_community_units = args.trust_community_units;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let shutdown = async {
            use tokio::signal::unix::{signal, SignalKind};
            match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        };
        run(config, shutdown).await.map(|_| ()).context("station")
    })
}

/// The `--admin-user` names, each a read-write user of the users file at `path`.
fn check_admin_users(path: &Path, users: &UsersFile, admins: Vec<String>) -> Result<Vec<String>> {
    let admins: Vec<String> = admins.into_iter().filter(|name| !name.is_empty()).collect();
    for name in &admins {
        let Some(user) = users.find(name) else {
            let known: Vec<&str> = users.users.iter().map(|u| u.name()).collect();
            bail!(
                "--admin-user {name:?}: {} has no such user (it has: {})",
                path.display(),
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            );
        };
        if user.access() != UserAccess::ReadWrite {
            bail!(
                "--admin-user {name:?}: the user is read-only in {}; an admin changes things: give it \
                 access = \"read-write\"",
                path.display()
            );
        }
    }
    Ok(admins)
}

/// A zone label: up to 32 letters, digits, `.`, `-`, `_`; empty (no zone) allowed.
fn parse_zone(text: &str) -> Result<String, String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
    if text.len() <= 32 && text.chars().all(ok) {
        Ok(text.to_string())
    } else {
        Err(format!("{text:?} is not a zone label: up to 32 letters, digits, '.', '-' or '_' (\"\" removes it)"))
    }
}

fn cmd_unit_set(state_dir: &Path, unit: &str, zone: Option<&str>, spare: Option<bool>) -> Result<()> {
    if zone.is_none() && spare.is_none() {
        bail!("nothing to set: give --zone ZONE, --spare or --no-spare");
    }
    let mut store = StationStore::open_existing(state_dir)?;
    let index = store.find_unit(unit)?.index;
    store.set_unit_labels(index, zone, spare)?;
    print_or_quiet(&format!("{}\n", unit_labels_text(&store, index)?))
}

/// `unit #N: zone Z, spare` as the store has it now.
fn unit_labels_text(store: &StationStore, index: u32) -> Result<String> {
    let unit = store.pool_unit(index)?.with_context(|| format!("unit #{index} is not in the pool"))?;
    let zone = if unit.zone.is_empty() { "no zone".to_string() } else { format!("zone {}", unit.zone) };
    let spare = if unit.spare { "spare (kept out of ordinary allocation)" } else { "not a spare" };
    Ok(format!("unit #{index}: {zone}, {spare}"))
}

fn cmd_unit_add(
    address: &str,
    state_dir: &Path,
    agent_port: u16,
    community: &str,
    timeout: Duration,
    (zone, spare): (Option<String>, bool),
) -> Result<()> {
    let agent = Endpoint::parse(address, agent_port).and_then(Endpoint::require_port)?;
    // A name that does not resolve is refused before a store is made.
    agent.resolve()?;
    let store = StationStore::open(state_dir)
        .with_context(|| format!("opening the station store in {}", state_dir.display()))?;
    let access = UnitAccess { community, write_community: None, timeout };
    let outcome = execute(state_dir, store, &access, &Operation::AddUnit { agent })?;
    if zone.is_none() && !spare {
        return print_or_quiet(&format!("{}\n", outcome.text));
    }
    let mut store = StationStore::open_existing(state_dir)?;
    store.set_unit_labels(outcome.unit, zone.as_deref(), spare.then_some(true))?;
    print_or_quiet(&format!("{}\n{}\n", outcome.text, unit_labels_text(&store, outcome.unit)?))
}

fn cmd_unit_enroll(
    state_dir: &Path,
    unit_id: &str,
    out: &Path,
    force: bool,
    tls_dir: Option<&Path>,
    tls_names: &[String],
) -> Result<()> {
    std::fs::create_dir_all(state_dir).with_context(|| format!("creating {}", state_dir.display()))?;
    // The certificate is checked before anything is stored: a bad --tls-name enrols nothing.
    let ca = tls_dir.map(|_| StationCa::open_or_create(state_dir)).transpose()?;
    let issued = match &ca {
        Some(ca) => {
            let id = uuid::Uuid::parse_str(unit_id.trim()).map(|id| id.hyphenated().to_string());
            let id =
                id.map_err(|_| anyhow::anyhow!("{unit_id:?} is not a unit id (the UUID `dvsan-agent show` prints)"))?;
            Some(ca.issue_unit(&id, tls_names)?)
        }
        None => None,
    };
    let mut credentials = CredentialStore::open(state_dir)?;
    let made = credentials.enroll(unit_id, force, &format_ms(now_ms()))?;
    write_private(out, &agent_users_file(&made))?;
    let mut text = format!(
        "enrolled unit {} as SNMPv3 user {} ({}/{}, {}); its credentials are in {} (mode 0600): give that file to \
         the unit's agent (dvsan-agent run --users FILE) and remove this copy\n",
        made.unit_id,
        made.name,
        made.auth,
        made.privacy,
        made.access,
        out.display()
    );
    if let (Some(ca), Some(issued), Some(dir)) = (&ca, &issued, tls_dir) {
        write_unit_dir(dir, ca.cert_pem(), issued)?;
        let file = |name: &str| dir.join(name).display().to_string();
        text.push_str(&format!(
            "its blockd certificate (names {}, {}) is in {}: dvsan-blockd --tls require --tls-cert {} --tls-key {} \
             --tls-ca {}\n",
            made.unit_id,
            tls_names.join(", "),
            dir.display(),
            file("blockd-cert.pem"),
            file("blockd-key.pem"),
            file(CA_CERT_FILE)
        ));
    }
    print_or_quiet(&text)
}

fn cmd_ca_show(state_dir: &Path) -> Result<()> {
    let made = StationCa::open_existing(state_dir)?.is_none();
    let ca = StationCa::open_or_create(state_dir)?;
    print_or_quiet(&format!(
        "{}certificate: {}\nsha256 fingerprint: {}\n",
        if made { "made the station's CA\n" } else { "" },
        ca.cert_path().display(),
        ca.fingerprint()
    ))
}

fn cmd_host_issue(state_dir: &Path, name: &str, out: &Path) -> Result<()> {
    let ca = StationCa::open_or_create(state_dir)?;
    let issued = ca.issue_host(name)?;
    write_client_dir(out, ca.cert_pem(), &issued.cert_pem, &issued.key_pem)?;
    // Recorded (a revoked identity is valid again): the station's grants for this user's requests name it.
    StationStore::open(state_dir)?.record_host_identity(name, now_ms())?;
    print_or_quiet(&format!(
        "issued a client certificate for identity {name} (valid {LEAF_DAYS} days) into {} (ca-cert.pem, \
         client-cert.pem, client-key.pem): nbdinfo 'nbds://HOST:PORT/EXPORT?tls-certificates={}'\n",
        out.display(),
        out.display()
    ))
}

fn cmd_unit_pending(state_dir: &Path, json: bool, all: bool) -> Result<()> {
    let store = StationStore::open_existing(state_dir)?;
    let pending = store.pending_units(all)?;
    if json {
        return print_or_quiet(&(serde_json::json!({ "pending": pending }).to_string() + "\n"));
    }
    let mut table = view::Table::new(&[
        ("PENDING", true),
        ("ADDRESS", false),
        ("CLAIMED UNIT ID", false),
        ("NAME", false),
        ("SYSNAME", false),
        ("FIRST SEEN", false),
        ("LAST SEEN", false),
        ("NOTIFICATIONS", true),
        ("STATE", false),
    ]);
    for p in &pending {
        let or_dash = |s: &str| if s.is_empty() { "-".to_string() } else { s.to_string() };
        table.row(vec![
            p.index.to_string(),
            p.address.to_string(),
            or_dash(&p.unit_id),
            or_dash(&p.unit_name),
            or_dash(&p.sys_name),
            format_ms(p.first_seen_ms),
            format_ms(p.last_seen_ms),
            p.notifications.to_string(),
            p.state.clone(),
        ]);
    }
    let text = if table.is_empty() { "no units are waiting for approval\n".to_string() } else { table.render() };
    print_or_quiet(&text)
}

fn cmd_unit_approve(alloc: &AllocArgs, given: &str) -> Result<()> {
    let outcome = execute_alloc(alloc, &Operation::ApproveUnit { pending: given.to_string() })?;
    print_or_quiet(&format!("{}\n", outcome.text))
}

fn cmd_unit_reject(state_dir: &Path, given: &str) -> Result<()> {
    let mut store = StationStore::open_existing(state_dir)?;
    let outcome = Outcome::rejected(reject_pending(&mut store, given)?);
    print_or_quiet(&format!("{}\n", outcome.text))
}

fn cmd_unit_rescan(alloc: &AllocArgs, unit: &str) -> Result<()> {
    let outcome = execute_alloc(alloc, &Operation::RescanUnit { unit: unit.to_string() })?;
    print_or_quiet(&format!("{}\n", outcome.text))
}

fn cmd_pool(state_dir: &std::path::Path, json: bool) -> Result<()> {
    let store = StationStore::open_existing(state_dir)?;
    let pool = store.pool()?;
    let mirrors = dvsan_station::model::mirror_views(&store.mirrors()?, &pool, &store.front_reports()?);
    let text = if json {
        view::pool_json(&pool, &mirrors) + "\n"
    } else {
        view::pool_text(&pool, now_ms()) + &view::mirrors_text(&mirrors, now_ms())
    };
    print_or_quiet(&text)
}

/// Writes to stdout; a closed pipe (`| head`) ends the command quietly.
fn print_or_quiet(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => Err(e).context("writing to stdout"),
    }
}

fn cmd_traps(args: TrapsArgs) -> Result<()> {
    let store = StationStore::open_existing(&args.state.state_dir)?;
    let mut filter =
        NotificationFilter { limit: if args.limit == 0 { usize::MAX } else { args.limit }, ..Default::default() };
    if let Some(since) = &args.since {
        filter.since_ms = Some(parse_since(since, now_ms()).map_err(anyhow::Error::msg).context("--since")?);
    }
    if let Some(name) = &args.trap_type {
        let oid = match dvsan_mib::oid_of(name.trim()) {
            Some(oid) => dvsan_mib::dotted(oid),
            None => match name.trim().parse::<dvsan_snmp::Oid>() {
                Ok(oid) if !oid.is_empty() => oid.to_string(),
                _ => bail!(
                    "--type {name:?}: unknown notification; give a name such as coldStart, linkDown, linkUp, \
                     dvsanUnitShutdown, dvsanLayoutChanged, or a dotted OID"
                ),
            },
        };
        filter.trap_oid = Some(oid);
    }
    if let Some(given) = &args.unit {
        filter.unit = match store.find_unit(given) {
            Ok(unit) => Some((unit.unit_id.clone(), unit.address.map(|a| a.ip()))),
            // Not a unit, but an address: what came from there (any device, not only units).
            Err(StoreError::UnknownUnit(_)) if given.trim().parse::<std::net::IpAddr>().is_ok() => {
                Some((None, given.trim().parse().ok()))
            }
            Err(e) => return Err(e.into()),
        };
    }
    let render = |record: &dvsan_station::notification::NotificationRecord| {
        if args.json {
            view::trap_json(record)
        } else {
            record.line()
        }
    };
    // Everything up to `head` has been looked at once the first query ran; following continues after it.
    let head = store.last_notification_id()?;
    let records = store.notifications(&filter, true)?;
    let mut last_id = records.last().map_or(head, |r| r.id.max(head));
    let mut text = String::new();
    for record in &records {
        text.push_str(&render(record));
        text.push('\n');
    }
    print_or_quiet(&text)?;
    if !args.follow {
        return Ok(());
    }
    filter.limit = 10_000;
    loop {
        std::thread::sleep(Duration::from_millis(200));
        filter.after_id = last_id;
        let records = store.notifications(&filter, false)?;
        if let Some(last) = records.last() {
            last_id = last.id;
        }
        let mut text = String::new();
        for record in &records {
            text.push_str(&render(record));
            text.push('\n');
        }
        if !text.is_empty() {
            print_or_quiet(&text)?;
        }
    }
}

/// How a command reaches units.
struct UnitAccess<'a> {
    community: &'a str,
    /// `None`: operations that change units fail, naming `--write-community`.
    write_community: Option<&'a str>,
    timeout: Duration,
}

/// Runs `operation` now on the store in `state_dir`, waiting for its locks: the path the station's tasks take.
fn execute(
    state_dir: &Path,
    mut store: StationStore,
    access: &UnitAccess<'_>,
    operation: &Operation,
) -> Result<Outcome> {
    let scope = operation.lock_scope(&store)?;
    let lock = PoolLock::acquire(state_dir, scope)?;
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the async runtime")?;
    runtime.block_on(async {
        let ipv6 = match operation {
            Operation::AddUnit { agent } => agent.lookup().await?.is_ipv6(),
            Operation::ApproveUnit { pending } => store.find_pending(pending)?.address.is_ipv6(),
            _ => false,
        };
        let bind: SocketAddr = if ipv6 { "[::]:0" } else { "0.0.0.0:0" }.parse()?;
        let manager = dvsan_snmp::Manager::new(bind).await.context("opening an SNMP socket")?;
        let mut allocator =
            Allocator::new(&mut store, &manager, access.community, access.write_community, access.timeout, lock);
        Ok(operation.execute(&mut allocator).await?)
    })
}

/// [`execute`] with the options of `alloc`, on an existing store.
fn execute_alloc(alloc: &AllocArgs, operation: &Operation) -> Result<Outcome> {
    let state_dir = &alloc.state.state_dir;
    let store = StationStore::open_existing(state_dir)?;
    let access = UnitAccess {
        community: &alloc.community,
        write_community: alloc.write_community.as_deref(),
        timeout: alloc.timeout,
    };
    execute(state_dir, store, &access, operation)
}

fn print_allocation(allocation: &Allocation, json: bool) -> Result<()> {
    if json {
        return print_or_quiet(&(serde_json::to_string(allocation)? + "\n"));
    }
    print_or_quiet(&format!("{}\n", allocation_line(allocation)))
}

fn allocation_line(a: &Allocation) -> String {
    format!(
        "unit #{} {} volume {} {:?} {} bytes LBA {}-{} -> {}{}  {}",
        a.unit,
        a.agent.map_or_else(|| "-".to_string(), |x| x.to_string()),
        a.volume,
        a.name,
        a.size_bytes,
        a.start_lba,
        a.end_lba,
        a.host,
        if a.read_only { " (read-only)" } else { "" },
        a.nbd_uri.as_deref().unwrap_or("-")
    )
}

fn cmd_request(
    alloc: &AllocArgs,
    size: &str,
    host: &str,
    name: Option<String>,
    (read_only, shared, replicas): (bool, bool, u32),
    json: bool,
) -> Result<()> {
    let (size_bytes, host) = (parse_request_size(size)?, parse_host(host)?);
    let operation = Operation::Allocate { size_bytes, host, name, read_only, shared, replicas };
    let outcome = execute_alloc(alloc, &operation)?;
    match outcome.detail {
        Detail::Mirror(m) if json => print_or_quiet(&(serde_json::to_string(&m)? + "\n")),
        Detail::Mirror(m) => {
            let mut text = format!("{}\n", outcome.text);
            for a in &m.replicas {
                text.push_str(&format!("  {}\n", allocation_line(a)));
            }
            print_or_quiet(&text)
        }
        Detail::Assignment(a) if !json => {
            let how = if a.volume_created { "created for this request" } else { "an existing free volume" };
            print_or_quiet(&format!("{}  ({how})\n", allocation_line(&a)))
        }
        Detail::Assignment(a) => print_allocation(&a, true),
        _ => bail!("the allocation ended without an assignment"),
    }
}

fn cmd_assign(
    alloc: &AllocArgs,
    unit: &str,
    volume: u32,
    host: &str,
    (read_only, shared): (bool, bool),
    json: bool,
) -> Result<()> {
    let operation = Operation::Assign { unit: unit.to_string(), volume, host: parse_host(host)?, read_only, shared };
    print_assignment(execute_alloc(alloc, &operation)?, json)
}

fn print_assignment(outcome: Outcome, json: bool) -> Result<()> {
    match &outcome.detail {
        Detail::Assignment(allocation) => print_allocation(allocation, json),
        _ => print_or_quiet(&format!("{}\n", outcome.text)),
    }
}

fn cmd_unassign(alloc: &AllocArgs, unit: &str, volume: u32, host: Option<&str>) -> Result<()> {
    let host = host.map(parse_host).transpose()?;
    let outcome = execute_alloc(alloc, &Operation::Unassign { unit: unit.to_string(), volume, host })?;
    print_or_quiet(&format!("{}\n", outcome.text))
}

fn cmd_assignments(state_dir: &Path, json: bool) -> Result<()> {
    let store = StationStore::open_existing(state_dir)?;
    let list = allocations(&store)?;
    if json {
        return print_or_quiet(&(serde_json::json!({ "assignments": list }).to_string() + "\n"));
    }
    if list.is_empty() {
        // On stderr: stdout stays one line per assignment for scripts.
        eprintln!("no volumes are assigned to hosts; `dvsan-station request` or `dvsan-station assign` assigns one");
    }
    let mut text = String::new();
    for a in &list {
        text.push_str(&allocation_line(a));
        text.push('\n');
    }
    print_or_quiet(&text)
}

/// Runs `work` with an allocator holding the whole pool's lock, on the existing store and the options of `alloc`.
fn with_pool_allocator<T>(
    alloc: &AllocArgs,
    work: impl AsyncFnOnce(&mut Allocator<'_>) -> Result<T, dvsan_station::allocate::AllocateError>,
) -> Result<T> {
    let state_dir = &alloc.state.state_dir;
    let mut store = StationStore::open_existing(state_dir)?;
    let lock = PoolLock::acquire(state_dir, LockScope::Pool)?;
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the async runtime")?;
    runtime.block_on(async {
        let manager = dvsan_snmp::Manager::new("0.0.0.0:0".parse()?).await.context("opening an SNMP socket")?;
        let mut allocator = Allocator::new(
            &mut store,
            &manager,
            &alloc.community,
            alloc.write_community.as_deref(),
            alloc.timeout,
            lock,
        );
        Ok(work(&mut allocator).await?)
    })
}

fn cmd_host_revoke(alloc: &AllocArgs, name: &str, json: bool) -> Result<()> {
    let report = with_pool_allocator(alloc, async |allocator| allocator.revoke_host(name).await)?;
    if json {
        return print_or_quiet(&(serde_json::to_string(&report)? + "\n"));
    }
    let mut text = format!(
        "revoked host identity {name}{}; released {} volume(s)\n",
        if report.was_valid { "" } else { " (it was not issued, or already revoked)" },
        report.released.len()
    );
    for line in &report.released {
        text.push_str(&format!("  released {line}\n"));
    }
    for line in &report.not_revoked {
        text.push_str(&format!("  forgotten, grant left on the unit: {line}\n"));
    }
    if let Some(number) = report.crl_number {
        text.push_str(&format!(
            "revoked {} certificate(s) of {name}: revocation list {number} sent to {} unit(s)\n",
            report.certificates_revoked,
            report.crl_pushed.len()
        ));
    }
    for line in &report.crl_not_pushed {
        text.push_str(&format!("  revocation list not sent to {line}\n"));
    }
    print_or_quiet(&text)
}

fn cmd_reconcile(alloc: &AllocArgs) -> Result<()> {
    let report = with_pool_allocator(alloc, async |allocator| allocator.reconcile().await)?;
    print_or_quiet(&(serde_json::to_string(&report)? + "\n"))
}

fn cmd_volume_create(alloc: &AllocArgs, unit: &str, size: &str, name: Option<String>, json: bool) -> Result<()> {
    let operation = Operation::CreateVolume { unit: unit.to_string(), size_bytes: parse_request_size(size)?, name };
    let outcome = execute_alloc(alloc, &operation)?;
    match (&outcome.detail, json) {
        (Detail::Volume(created), true) => print_or_quiet(&(serde_json::to_string(created)? + "\n")),
        _ => print_or_quiet(&format!("{}\n", outcome.text)),
    }
}

fn cmd_volume_destroy(alloc: &AllocArgs, unit: &str, volume: u32) -> Result<()> {
    let outcome = execute_alloc(alloc, &Operation::DestroyVolume { unit: unit.to_string(), volume })?;
    print_or_quiet(&format!("{}\n", outcome.text))
}

fn cmd_partition_create(alloc: &AllocArgs, unit: &str, volume: u32, size: &str, json: bool) -> Result<()> {
    let operation =
        Operation::CreatePartition { unit: unit.to_string(), volume, size_bytes: parse_request_size(size)? };
    let outcome = execute_alloc(alloc, &operation)?;
    match (&outcome.detail, json) {
        (Detail::Partition(created), true) => print_or_quiet(&(serde_json::to_string(created)? + "\n")),
        _ => print_or_quiet(&format!("{}\n", outcome.text)),
    }
}

fn cmd_partition_destroy(alloc: &AllocArgs, unit: &str, volume: u32, partition: u32) -> Result<()> {
    let outcome = execute_alloc(alloc, &Operation::DestroyPartition { unit: unit.to_string(), volume, partition })?;
    print_or_quiet(&format!("{}\n", outcome.text))
}

fn cmd_tasks(state_dir: &Path, json: bool) -> Result<()> {
    let store = StationStore::open_existing(state_dir)?;
    let tasks = store.tasks()?;
    if json {
        return print_or_quiet(&(serde_json::json!({ "tasks": tasks }).to_string() + "\n"));
    }
    let mut table = view::Table::new(&[
        ("TASK", true),
        ("OPERATION", false),
        ("STATE", false),
        ("DONE", true),
        ("CREATED", false),
        ("ARGUMENTS", false),
        ("RESULT OR STEP", false),
    ]);
    for task in &tasks {
        let a = &task.arguments;
        let mut arguments = Vec::new();
        for (label, value) in [("unit", &a.unit), ("size", &a.size), ("host", &a.host), ("name", &a.name)] {
            if !value.is_empty() {
                arguments.push(format!("{label}={value}"));
            }
        }
        for (label, value) in [("volume", a.volume.map(|v| v.0)), ("partition", a.partition.map(|p| p.0))] {
            if let Some(value) = value {
                arguments.push(format!("{label}={value}"));
            }
        }
        if a.read_only {
            arguments.push("read-only".to_string());
        }
        let said = if task.state.is_ended() { &task.result } else { &task.step };
        table.row(vec![
            task.index.to_string(),
            a.operation.to_string(),
            task.state.to_string(),
            format!("{}%", task.progress),
            format_ms(task.created_ms),
            arguments.join(" "),
            said.clone(),
        ]);
    }
    let text = if table.is_empty() { "no tasks\n".to_string() } else { table.render() };
    print_or_quiet(&text)
}
