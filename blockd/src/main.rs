//! `dvsan-blockd`: command line, logging and signals around [`dvsan_blockd::run`].

use anyhow::Context;
use clap::Parser;
use dvsan_blockd::admission::AdmissionLimits;
use dvsan_blockd::tls::{TlsFiles, TlsMode};
use dvsan_blockd::{run, Config, LargeReads};
use std::path::PathBuf;
use std::time::Duration;

/// The SAN unit's data service: serves the unit's volumes and partitions over NBD to the hosts granted access.
#[derive(Debug, Parser)]
#[command(name = "dvsan-blockd", version)]
struct Cli {
    /// The unit's state directory (the one dvsan-agent uses).
    #[arg(long, env = "DVSAN_STATE_DIR")]
    state_dir: PathBuf,
    /// Address and port to listen on, IP[:PORT] or NAME[:PORT] (default port 10809; a name is resolved at start;
    /// port 0 picks a free port, the actual address is in the heartbeat).
    #[arg(long, default_value = "127.0.0.1:10809", value_name = "HOST[:PORT]")]
    listen: String,
    /// How often to check the layout for changes, in milliseconds.
    #[arg(long, default_value_t = 250)]
    poll_interval_ms: u64,
    /// Limit for a client's handshake, and for a client stalled mid-request, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    handshake_timeout_ms: u64,
    /// The shortest the handshake limit gets under pressure, in milliseconds: past half the handshake slots taken
    /// a new handshake gets half of --handshake-timeout-ms, past three quarters a quarter, never less than this.
    #[arg(long, default_value_t = 2_000)]
    handshake_timeout_floor_ms: u64,
    /// A connection in transmission without a request for this many milliseconds is idle: when every connection
    /// slot is taken, a host holding fewer takes the slot of the oldest idle connection of the host holding the
    /// most (which is closed) instead of being refused.
    #[arg(long, default_value_t = 5_000)]
    idle_after_ms: u64,
    /// Limit for a new connection to send its first bytes (the client flags, which NBD clients send at once), in
    /// milliseconds: connections that send nothing give their slot back this soon.
    #[arg(long, default_value_t = 2_000)]
    silent_timeout_ms: u64,
    /// Most connections in transmission at once (connections still in their handshake have their own slots,
    /// --max-handshakes). A handshake picking an export beyond it takes the slot of the oldest idle connection
    /// (--idle-after-ms) of the host holding the most, if that host holds at least two more than this one;
    /// otherwise it is refused (NBD_REP_ERR_POLICY).
    #[arg(long, default_value_t = 128)]
    max_connections: usize,
    /// Most connections in transmission from one host address; beyond it a handshake picking an export is refused
    /// (NBD_REP_ERR_POLICY), so one host's idle connections cannot hold every slot.
    #[arg(long, default_value_t = 32)]
    max_connections_per_host: usize,
    /// Most connections in their handshake at once (from accept until they pick an export). When they are all
    /// taken, a connection from an address holding fewer of them takes the oldest one of the address holding the
    /// most; otherwise it is closed at once.
    #[arg(long, default_value_t = 64)]
    max_handshakes: usize,
    /// Most connections in their handshake from one source address; more are closed at once.
    #[arg(long, default_value_t = 8)]
    max_handshakes_per_source: usize,
    /// Most KiB of replies a connection gathers before sending them; READs copied through memory that are larger
    /// go out in pieces this size (a client that does not read its replies holds at most this much).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(256..=32 * 1024))]
    reply_buffer_kib: u32,
    /// Most MiB of reply buffers all connections together hold past the first 256 KiB each; a connection that
    /// finds it spent sends its replies in 256 KiB pieces.
    #[arg(long, default_value_t = 64)]
    reply_memory_mib: usize,
    /// Microseconds a connection polls its socket (yielding the CPU between tries) before it sleeps in a
    /// blocking read; 0 turns polling off. Saves the wake-up of an idle CPU per request at some CPU cost.
    #[arg(long, default_value_t = 50)]
    busy_poll_us: u64,
    /// READs of at least this many KiB are large reads: on connections with structured replies (libnbd tools,
    /// qemu) their data skips our memory, going the way --large-reads says.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..=32 * 1024))]
    large_read_min_kib: u32,
    /// WRITEs of at least this many KiB take the part of their payload not read yet straight from the socket to
    /// the media with splice(2), one copy instead of two; 0 turns it off.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(0..=32 * 1024))]
    splice_write_min_kib: u32,
    /// How large reads go from the media to the socket: auto (mapped for clients on loopback, spliced for
    /// others), mapped (the kernel copies from a read-only mapping of the media), spliced (splice(2), no copy on
    /// this side), copied (through memory, like small reads).
    #[arg(long, value_enum, default_value_t = LargeReads::Auto)]
    large_reads: LargeReads,
    /// NBD over TLS (NBD_OPT_STARTTLS) with mutual X.509: off; on (clients that ask get TLS, the others plain
    /// text); require (nothing but STARTTLS and ABORT before TLS). With TLS a grant naming an identity admits only
    /// the client whose certificate, signed by --tls-ca, carries it; grants by address still admit any client
    /// from that address (plain text under `on`).
    #[arg(long, value_enum, default_value_t = TlsMode::Off)]
    tls: TlsMode,
    /// blockd's certificate chain (PEM), its own certificate first.
    #[arg(long, value_name = "FILE", required_if_eq_any([("tls", "on"), ("tls", "require")]))]
    tls_cert: Option<PathBuf>,
    /// blockd's private key (PEM; keep it 0600).
    #[arg(long, value_name = "FILE", required_if_eq_any([("tls", "on"), ("tls", "require")]))]
    tls_key: Option<PathBuf>,
    /// The CA certificate(s) (PEM) that client certificates must be signed by.
    #[arg(long, value_name = "FILE", required_if_eq_any([("tls", "on"), ("tls", "require")]))]
    tls_ca: Option<PathBuf>,
    /// A certificate revocation list (PEM or DER) of the --tls-ca CA; repeatable. A client certificate it lists
    /// fails the TLS handshake, whatever grant its address has. Read again when the file changes (open connections
    /// of a newly revoked certificate are closed); a changed file that does not parse is logged and the previous
    /// lists stay in force. The list the station pushes through the agent (STATE_DIR/tls-crl.der) is always read.
    #[arg(long, value_name = "FILE")]
    tls_crl: Vec<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let listen = dvsan_snmp::resolve_address(&cli.listen, 10809).context("--listen")?;
    let mut config = Config::new(cli.state_dir, listen);
    config.poll_interval = Duration::from_millis(cli.poll_interval_ms.max(1));
    config.handshake_timeout = Duration::from_millis(cli.handshake_timeout_ms.max(1));
    config.handshake_timeout_floor = Duration::from_millis(cli.handshake_timeout_floor_ms.max(1));
    config.idle_after = Duration::from_millis(cli.idle_after_ms.max(1));
    config.reply_buffer = cli.reply_buffer_kib as usize * 1024;
    config.reply_memory = cli.reply_memory_mib.saturating_mul(1024 * 1024);
    config.silent_timeout = Duration::from_millis(cli.silent_timeout_ms.max(1));
    config.admission = AdmissionLimits {
        max_handshakes: cli.max_handshakes,
        max_handshakes_per_source: cli.max_handshakes_per_source,
        max_connections: cli.max_connections,
        max_connections_per_host: cli.max_connections_per_host,
    };
    config.busy_poll = Duration::from_micros(cli.busy_poll_us);
    config.large_read_min = cli.large_read_min_kib * 1024;
    config.large_reads = cli.large_reads;
    config.splice_write_min = cli.splice_write_min_kib * 1024;
    config.tls = cli.tls;
    if let (Some(cert), Some(key), Some(ca)) = (cli.tls_cert, cli.tls_key, cli.tls_ca) {
        config.tls_files = Some(TlsFiles { cert, key, ca, crls: cli.tls_crl, pushed_crl: None });
    }

    // The control plane is light (accepts, handshakes, timers); the data path runs on its own threads.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the runtime")?;
    runtime.block_on(async {
        let shutdown = shutdown_signal()?;
        run(config, shutdown).await.context("dvsan-blockd")
    })
}

/// Resolves on the first SIGTERM or SIGINT.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM"),
            _ = int.recv() => tracing::info!("SIGINT"),
        }
    })
}
