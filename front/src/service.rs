//! The front as a whole: connect a volume's replicas, load their dirty bitmaps, listen on a loopback address
//! or a unix socket and serve every client connection through one mirror; the hub `dvsan-host serve` calls.
//! Builds on every other module.

use crate::dirty::{DirtyError, DirtyMap};
use crate::intent::IntentLog;
use crate::mirror::{Mirror, MirrorFiles};
use crate::server::{serve_connection, ExportView};
use crate::target::ReplicaTarget;
use crate::tls::{client_config, TlsError};
use crate::upstream::{Upstream, UpstreamError, UpstreamOptions};
use dvsan_nbd::constants::*;
use dvsan_nbd::TransmissionFlags;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Where the front listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl std::str::FromStr for Listen {
    type Err = String;

    /// `IP:PORT` on a loopback address, or `unix:PATH`: the front has no access control of its own.
    fn from_str(s: &str) -> Result<Listen, String> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("unix: needs a path".into());
            }
            return Ok(Listen::Unix(PathBuf::from(path)));
        }
        let addr: SocketAddr = s.parse().map_err(|_| format!("{s:?} is neither IP:PORT nor unix:PATH"))?;
        if !addr.ip().is_loopback() {
            return Err(format!("{addr} is not a loopback address: the front serves this host only"));
        }
        Ok(Listen::Tcp(addr))
    }
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Tcp(a) => write!(f, "{a}"),
            Listen::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// Everything `dvsan-host serve` decides.
#[derive(Debug, Clone)]
pub struct FrontConfig {
    /// The volume's name: the export name clients ask for (an empty name works too).
    pub volume: String,
    pub listen: Listen,
    pub replicas: Vec<ReplicaTarget>,
    /// Per replica (missing: false): a new replica holding nothing yet, to which the whole volume is copied
    /// online (how a replica is added or replaced). A restart during the copy goes on from its bitmap.
    pub fresh: Vec<bool>,
    /// Dirty bitmaps and the status file live here; without it nothing survives a restart.
    pub state_dir: Option<PathBuf>,
    pub region_size: u64,
    pub replica_timeout: Duration,
    pub reconnect_window: Duration,
    /// Source address of the replica connections (the host address the units granted).
    pub local_addr: Option<IpAddr>,
    /// The host's certificate directory (`ca-cert.pem`, `client-cert.pem`, `client-key.pem`): TLS to the units.
    pub tls_dir: Option<PathBuf>,
}

/// Why the front could not start.
#[derive(Debug, thiserror::Error)]
pub enum FrontError {
    #[error("no replica given")]
    NoReplicas,
    #[error("replica {target}")]
    Replica {
        target: ReplicaTarget,
        #[source]
        source: UpstreamError,
    },
    #[error("replica {0} is a different size ({1} bytes) from the first ({2} bytes)")]
    SizeMismatch(ReplicaTarget, u64, u64),
    #[error("the region size must be a multiple of 4096 between 4 KiB and 1 GiB, not {0}")]
    RegionSize(u64),
    #[error(transparent)]
    Dirty(#[from] DirtyError),
    #[error("--tls-dir: {0}")]
    Tls(#[from] TlsError),
    #[error("recovering from the write-intent log: {0}")]
    Recovery(String),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
}

/// A started front: its mirror (for status) and the address it listens on.
pub struct Front {
    pub mirror: Arc<Mirror>,
    pub listening: String,
    listener: Listener,
    export: Arc<ExportView>,
}

enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
}

impl Front {
    /// Connect the replicas, load the bitmaps and bind the listening socket.
    pub async fn start(config: FrontConfig) -> Result<Front, FrontError> {
        if config.replicas.is_empty() {
            return Err(FrontError::NoReplicas);
        }
        if config.region_size < 4096 || config.region_size > (1 << 30) || config.region_size & 4095 != 0 {
            return Err(FrontError::RegionSize(config.region_size));
        }
        let io = |what: String| move |source| FrontError::Io { what, source };
        if let Some(dir) = &config.state_dir {
            std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        }
        let tls = match &config.tls_dir {
            Some(dir) => Some(client_config(dir)?),
            None => None,
        };
        let options = UpstreamOptions {
            tls,
            local_addr: config.local_addr,
            connect_timeout: config.replica_timeout.max(Duration::from_millis(500)),
            reconnect_window: config.reconnect_window,
        };
        // One try each; when none answers, wait for them within the reconnect window. Replicas that do not
        // answer while another does start out of sync and are resynced when they come.
        let mut connected = Vec::new();
        for target in &config.replicas {
            connected.push(Upstream::connect(target.clone(), options.clone(), Duration::ZERO).await);
        }
        if connected.iter().all(|c| c.is_err()) {
            connected.clear();
            for target in &config.replicas {
                let up = Upstream::connect(target.clone(), options.clone(), config.reconnect_window)
                    .await
                    .map_err(|source| FrontError::Replica { target: target.clone(), source })?;
                connected.push(Ok(up));
            }
        }
        let Some(info) = connected.iter().find_map(|c| c.as_ref().ok()).map(|up| up.info().clone()) else {
            return Err(FrontError::NoReplicas);
        };
        let reachable: Vec<bool> = connected.iter().map(|c| c.is_ok()).collect();
        let replicas: Vec<Arc<Upstream>> = connected
            .into_iter()
            .zip(&config.replicas)
            .map(|(c, target)| {
                Arc::new(c.unwrap_or_else(|e| {
                    tracing::warn!(replica = %target, error = %e, "replica unreachable at start: out of sync");
                    Upstream::unreachable(target.clone(), options.clone(), info.clone())
                }))
            })
            .collect();
        let size = replicas[0].info().size;
        let mut flags = FLAG_HAS_FLAGS
            | FLAG_SEND_FLUSH
            | FLAG_SEND_FUA
            | FLAG_SEND_TRIM
            | FLAG_SEND_WRITE_ZEROES
            | FLAG_CAN_MULTI_CONN;
        for up in &replicas {
            if up.info().size != size {
                return Err(FrontError::SizeMismatch(up.target.clone(), up.info().size, size));
            }
            // Offer what every replica offers; read-only when any replica is.
            let theirs = up.info().flags.0;
            flags &= theirs | FLAG_HAS_FLAGS;
            flags |= theirs & FLAG_READ_ONLY;
        }
        let mut dirty = Vec::new();
        for (i, target) in config.replicas.iter().enumerate() {
            let mut map = match &config.state_dir {
                Some(dir) => {
                    let path = dir.join(format!("{}.{}.dirty", safe(&config.volume), target.file_key()));
                    DirtyMap::load(path, config.region_size, size)?
                }
                None => DirtyMap::new(None, config.region_size, size),
            };
            if map.count() > 0 {
                tracing::info!(replica = %target, regions = map.count(), "dirty regions from before the restart");
            } else if config.fresh.get(i).copied().unwrap_or(false) {
                tracing::info!(replica = %target, "a new replica: the whole volume is copied to it");
                map.set_all();
                map.save()?;
            }
            dirty.push(map);
        }
        let status = config.state_dir.as_ref().map(|d| d.join(format!("{}.status.json", safe(&config.volume))));
        // The write-intent log: only where there is more than one replica to keep identical.
        let intent = match &config.state_dir {
            Some(dir) if config.replicas.len() > 1 => {
                let path = dir.join(format!("{}.intent", safe(&config.volume)));
                Some(Arc::new(IntentLog::load(path, config.region_size, size)?))
            }
            _ => None,
        };
        let mirror = Arc::new(Mirror::new(
            config.volume.clone(),
            size,
            replicas,
            dirty,
            &reachable,
            config.replica_timeout,
            MirrorFiles { status, intent },
        ));
        let recovered = mirror.recover_intent().await.map_err(FrontError::Recovery)?;
        if recovered > 0 {
            tracing::info!(regions = recovered, "replicas identical again after the crash");
        }
        tokio::spawn(mirror.clone().resync_loop());
        let (listener, listening) = match &config.listen {
            Listen::Tcp(addr) => {
                let l = tokio::net::TcpListener::bind(addr).await.map_err(io(format!("listening on {addr}")))?;
                let local = l.local_addr().map_err(io("listening address".into()))?;
                (Listener::Tcp(l), local.to_string())
            }
            Listen::Unix(path) => {
                let _ = std::fs::remove_file(path);
                let l = tokio::net::UnixListener::bind(path).map_err(io(format!("listening on {}", path.display())))?;
                (Listener::Unix(l), format!("unix:{}", path.display()))
            }
        };
        let export = Arc::new(ExportView {
            name: config.volume.clone(),
            size,
            flags: TransmissionFlags(flags),
            description: format!("dvsan volume {} on {} replica(s)", config.volume, config.replicas.len()),
        });
        Ok(Front { mirror, listening, listener, export })
    }

    /// Accept and serve clients until the process ends.
    pub async fn run(self) -> Result<(), FrontError> {
        loop {
            let accepted = match &self.listener {
                Listener::Tcp(l) => l.accept().await.map(|(s, peer)| {
                    let _ = s.set_nodelay(true);
                    let m = self.mirror.clone();
                    let e = self.export.clone();
                    tokio::spawn(async move {
                        if let Err(why) = serve_connection(s, m, e).await {
                            tracing::debug!(%peer, reason = %why, "client connection ended");
                        }
                    });
                }),
                Listener::Unix(l) => l.accept().await.map(|(s, _)| {
                    let m = self.mirror.clone();
                    let e = self.export.clone();
                    tokio::spawn(async move {
                        if let Err(why) = serve_connection(s, m, e).await {
                            tracing::debug!(reason = %why, "client connection ended");
                        }
                    });
                }),
            };
            if let Err(e) = accepted {
                // Out of descriptors and the like: wait a little rather than spin.
                tracing::warn!(error = %e, "accepting a client");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

fn safe(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' }).collect()
}
