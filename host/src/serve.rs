//! `dvsan-host serve`: run the host front (crate `dvsan-front`) for one volume: a local NBD server on a loopback
//! address or a unix socket that mirrors the volume over its replicas on the units.
//!
//! With `--replica nbd://IP:PORT/EXPORT` options (one per replica, in order) VOLUME is only the export's name and
//! the station is not asked. Without them VOLUME is one of this host's volumes at the station (--station): its
//! replicas come from the station's replica rows ([`crate::replicas::resolve_served`]), and for a mirrored volume
//! the front reports its replicas' state there ([`crate::report`]). main.rs only dispatches here.

use crate::replicas;
use crate::report::Reporter;
use crate::Session;
use anyhow::{bail, Context, Result};
use clap::Args;
use dvsan_front::{Front, FrontConfig, Listen, ReplicaTarget};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The options of `dvsan-host serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The volume: the export name clients ask for. Without --replica, one of this host's volumes at the station
    /// (a mirrored volume's name, mirrorN, or UNIT/VOLUME as `dvsan-host list` shows it).
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
    /// How often the front reports its replicas' state to the station (also at once on a change of state);
    /// for a mirrored volume whose replicas came from the station.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub report_every: Duration,
}

/// Run the front until killed. `host`: the source address for the replica connections (global --host; with a
/// station and no --host, the address the station knows this host by). `session`: the station, when given.
pub async fn serve(args: ServeArgs, host: Option<IpAddr>, session: Option<Session>) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).init();
    if args.report_every < Duration::from_millis(100) {
        bail!("--report-every must be at least 100ms");
    }
    let mut fresh: Vec<bool> = Vec::new();
    let mut reporting = None;
    let mut host = host;
    let replicas = if args.replicas.is_empty() {
        let Some(session) = session else {
            bail!(
                "give the station (--station or DVSAN_STATION, with --credentials/--user) so {:?}'s replicas are \
                 found there, or the replicas with --replica nbd://IP:PORT/EXPORT",
                args.volume
            );
        };
        if !args.new_replicas.is_empty() {
            bail!("--new-replica goes with --replica: the station's volumes are served as the station has them");
        }
        let resolved = replicas::resolve_served(&session, &args.volume)
            .await
            .with_context(|| format!("finding {:?}'s replicas through the station", args.volume))?;
        for t in &resolved.targets {
            tracing::info!(unit = t.unit, replica = %t, "replica from the station");
        }
        fresh = resolved.targets.iter().map(|_| false).collect();
        host = host.or(Some(session.host));
        if let Some((mirror_index, replica_numbers)) = resolved.mirror {
            reporting =
                Some(Reporter { session: Arc::new(session), mirror_index, replica_numbers, every: args.report_every });
        } else {
            tracing::info!("an ordinary volume (one replica): nothing to report to the station");
        }
        resolved.targets
    } else {
        fresh.extend(args.replicas.iter().map(|_| false).chain(args.new_replicas.iter().map(|_| true)));
        args.replicas
            .iter()
            .chain(&args.new_replicas)
            .enumerate()
            .map(|(i, uri)| ReplicaTarget::parse(u32::try_from(i + 1).unwrap_or(u32::MAX), uri))
            .collect::<Result<Vec<_>, _>>()
            .context("--replica")?
    };
    let count = replicas.len();
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
    if let Some(reporter) = reporting {
        tokio::spawn(reporter.run(front.mirror.clone()));
    }
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
