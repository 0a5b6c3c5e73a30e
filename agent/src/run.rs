//! `dvsan-agent run`: bring the unit up, serve SNMP, watch the layout and the data service, shut down cleanly.

use crate::clearing::{self, Clearing};
use crate::cli::RunConfig;
use crate::media;
use crate::mib;
use crate::notifications::{Notifier, NotifyAs};
use crate::unit::Unit;
use anyhow::{bail, Context, Result};
use dvsan_layout::LayoutStore;
use dvsan_snmp::agent::{Access, SystemInfo, UsmConfig};
use dvsan_snmp::usm::{Engine, SecurityLevel, UsersFile};
use dvsan_snmp::{Agent, AgentConfig, Oid, Uptime};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::signal::unix::{signal, SignalKind};

/// How often the agent looks at the store for layout changes made elsewhere and at blockd's heartbeat.
const WATCH_INTERVAL: Duration = Duration::from_millis(250);

pub fn run(cfg: RunConfig) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(run_async(cfg))
}

async fn run_async(cfg: RunConfig) -> Result<()> {
    if cfg.media.is_empty() {
        bail!("no media: give at least one --media PATH:SIZE (e.g. --media /var/lib/dvsan/m0.img:10G)");
    }
    let media = media::prepare(&cfg.media)?;
    // Other processes wait to open the store until the unit row and its media are there.
    let (mut store, opening) = LayoutStore::open_exclusive(&cfg.state_dir)
        .with_context(|| format!("opening the unit store in {}", cfg.state_dir.display()))?;
    let name = match &cfg.name {
        Some(name) => name.clone(),
        None if store.is_initialised()? => store.load()?.unit.name,
        None => crate::cli::default_name(&cfg.state_dir),
    };
    store.init_unit(&name, cfg.block_size).context("initialising the unit")?;
    store.attach_media(&media).context("attaching media")?;
    // New media (and a wiped volume) on files are cleared in moments: before the first request and before other
    // processes may open the store (a `volume create` right after the start finds the new space free). The rest is
    // cleared in the background.
    clearing::clear_fast_now(&mut store, cfg.clear)?;
    drop(opening);
    let uptime = Uptime::start_now();
    let unit = Arc::new(Unit::new(store, uptime, cfg.clear)?);
    let progress = unit.clone();
    let clearing = Clearing::spawn(&cfg.state_dir, Arc::new(move |t, b| progress.set_cleared(t, b)), cfg.clear)?;

    let socket = UdpSocket::bind(cfg.listen)
        .await
        .with_context(|| format!("binding the SNMP socket {} (is another agent using it?)", cfg.listen))?;
    let usm = match &cfg.users {
        Some(path) => {
            let users = UsersFile::load(path)?;
            let engine = Engine::load_or_create(&cfg.state_dir)?;
            tracing::info!(users = users.users.len(), engine_id = %engine.id(), boots = engine.boots(), "SNMPv3 enabled");
            Some(UsmConfig { engine, users: users.users })
        }
        None => None,
    };
    let notify_as = match (&cfg.notify_user, &usm, &cfg.users) {
        (None, _, _) => None,
        (Some(name), Some(usm), Some(path)) => {
            let Some(user) = usm.users.iter().find(|u| u.name() == name) else {
                let known: Vec<&str> = usm.users.iter().map(|u| u.name()).collect();
                bail!("--notify-user {name:?} is not in {} (it has: {})", path.display(), known.join(", "));
            };
            if user.level() == SecurityLevel::NoAuthNoPriv {
                bail!("--notify-user {name:?} has no authentication (level = \"noAuthNoPriv\"); notify as a user with auth");
            }
            Some(NotifyAs { user: user.clone(), engine: usm.engine.clone() })
        }
        (Some(_), _, _) => bail!("--notify-user needs --users FILE (the user is one of that file)"),
    };
    let config = AgentConfig {
        usm,
        communities: cfg.communities.clone(),
        system: SystemInfo {
            descr: format!("dvsan SAN unit {name} (dvsan-agent {})", env!("CARGO_PKG_VERSION")),
            object_id: Oid::from_slice(dvsan_mib::DVSAN_MIB),
            name,
            ..SystemInfo::default()
        },
        ..AgentConfig::default()
    };
    let agent = Arc::new(mib::register(Agent::builder(config).uptime(uptime), &unit, &cfg.state_dir).build()?);
    let notifier = Arc::new(
        Notifier::new(
            cfg.listen.ip(),
            cfg.trap_sinks.clone(),
            cfg.read_community.clone(),
            cfg.inform,
            uptime,
            notify_as,
        )
        .await
        .context("opening the notification socket")?,
    );
    let layout = unit.layout();
    tracing::info!(
        unit = %layout.unit.name,
        id = %layout.unit.unit_id,
        listen = %cfg.listen,
        capacity_blocks = layout.capacity().0,
        volumes = layout.volumes.len(),
        "unit agent serving"
    );
    if cfg.communities.iter().all(|c| c.access == Access::ReadOnly) {
        tracing::info!("no write community: every v1/v2c SET is refused");
    }

    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(agent.clone().serve(socket, async move {
        let _ = stop_rx.wait_for(|stop| *stop).await;
    }));
    notifier.cold_start(&unit).await;

    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut tick = tokio::time::interval(WATCH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            _ = tick.tick() => watch(&agent, &unit, &notifier),
        }
    }

    tracing::info!("shutting down: notifying sinks");
    clearing.stop();
    notifier.shutdown(&unit).await;
    notifier.link(false).await;
    let _ = stop_tx.send(true);
    let _ = server.await;
    tracing::info!("stopped");
    Ok(())
}

/// One look at the store: reload a moved layout, the traffic counters and the data service's state, and send
/// the notifications that follow. Notifications go out in the background so a slow inform never stalls this.
/// The layout is looked at between SETs, so a SET touching several tables is announced once.
fn watch(agent: &Agent, unit: &Arc<Unit>, notifier: &Arc<Notifier>) {
    match agent.between_sets(|| unit.unannounced_change()) {
        Ok(Some(counter)) => {
            tracing::info!(counter, "layout changed");
            let (u, n) = (unit.clone(), notifier.clone());
            tokio::spawn(async move { n.layout_changed(&u, counter).await });
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "reading the layout"),
    }
    if let Err(e) = unit.refresh_traffic() {
        tracing::warn!(error = %e, "reading traffic counters");
    }
    match unit.refresh_link() {
        Ok(Some(up)) => {
            tracing::info!(up, "data service link changed");
            let n = notifier.clone();
            tokio::spawn(async move { n.link(up).await });
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "reading the data service state"),
    }
}
