//! `dvsan-host serve`: run the host front (crate `dvsan-front`) for one volume: a local NBD server on a loopback
//! address or a unix socket that mirrors the volume over its replicas on the units.
//!
//! With `--replica nbd://IP:PORT/EXPORT` options (one per replica, in order) VOLUME is only the export's name;
//! without them the replicas would come from the station (the station side of mirrored volumes; not wired here
//! yet). main.rs only dispatches here.

use anyhow::{bail, Context, Result};
use clap::Args;
use dvsan_front::{Front, FrontConfig, Listen, ReplicaTarget};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The options of `dvsan-host serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The volume: the export name clients ask for.
    pub volume: String,
    /// Where clients connect: a loopback IP:PORT, or unix:PATH.
    #[arg(long, value_name = "ADDR")]
    pub listen: Listen,
    /// A replica of the volume, nbd://IP:PORT/EXPORT on a unit's blockd; once per replica.
    #[arg(long = "replica", value_name = "URI")]
    pub replicas: Vec<String>,
    /// A new, empty replica (nbd://IP:PORT/EXPORT, after the --replica ones): the whole volume is copied to it
    /// online while the volume is served; once the status file says it is in sync, it is an ordinary --replica.
    #[arg(long = "new-replica", value_name = "URI")]
    pub new_replicas: Vec<String>,
    /// The certificate directory `enroll --out DIR` wrote (ca-cert.pem, client-cert.pem, client-key.pem): the
    /// front speaks TLS to the units with it (NBD_OPT_STARTTLS), as this host's identity.
    #[arg(long, value_name = "DIR")]
    pub tls_dir: Option<PathBuf>,
    /// Where the dirty bitmaps and the status file (VOLUME.status.json) are kept across restarts.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Bytes one dirty bit stands for (1M, 64K, ...).
    #[arg(long, default_value = "1M", value_parser = parse_size)]
    pub region_size: u64,
    /// A replica that does not answer within this while another in-sync one did is marked out of sync.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub replica_timeout: Duration,
    /// How long a dropped replica connection may take to come back before its requests fail.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub reconnect_window: Duration,
}

/// Run the front until killed. `host`: the source address for the replica connections (global --host).
pub async fn serve(args: ServeArgs, host: Option<IpAddr>) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).init();
    if args.replicas.is_empty() {
        bail!("give the volume's replicas with --replica nbd://IP:PORT/EXPORT (the station lookup is not wired yet)");
    }
    let fresh: Vec<bool> = args.replicas.iter().map(|_| false).chain(args.new_replicas.iter().map(|_| true)).collect();
    let replicas = args
        .replicas
        .iter()
        .chain(&args.new_replicas)
        .enumerate()
        .map(|(i, uri)| ReplicaTarget::parse(u32::try_from(i + 1).unwrap_or(u32::MAX), uri))
        .collect::<Result<Vec<_>, _>>()
        .context("--replica")?;
    let config = FrontConfig {
        volume: args.volume.clone(),
        listen: args.listen,
        replicas,
        fresh,
        state_dir: args.state_dir,
        region_size: args.region_size,
        replica_timeout: args.replica_timeout,
        reconnect_window: args.reconnect_window,
        local_addr: host,
        tls_dir: args.tls_dir,
    };
    let front = Front::start(config).await.context("starting the front")?;
    let count = args.replicas.len() + args.new_replicas.len();
    println!("serving {} on {} ({count} replicas)", args.volume, front.listening);
    // SIGTERM or SIGINT: a clean stop (the write-intent log emptied when no write is in flight).
    let mirror = front.mirror.clone();
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).context("listening for SIGTERM")?;
    tokio::select! {
        served = front.run() => served.context("serving"),
        _ = term.recv() => {
            mirror.quiesce(Duration::from_secs(10)).await;
            Ok(())
        }
        _ = tokio::signal::ctrl_c() => {
            mirror.quiesce(Duration::from_secs(10)).await;
            Ok(())
        }
    }
}

/// 1048576, 1M, 64K, 1G: bytes.
fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (digits, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => t.split_at(i),
        None => (t, ""),
    };
    let n: u64 = digits.parse().map_err(|_| format!("{text:?} is not a size"))?;
    let mult: u64 = match unit.to_ascii_uppercase().as_str() {
        "" => 1,
        "K" | "KIB" => 1 << 10,
        "M" | "MIB" => 1 << 20,
        "G" | "GIB" => 1 << 30,
        _ => return Err(format!("{text:?}: unknown unit {unit:?}")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("{text:?} is too large"))
}
