//! `dvsan-console`: the terminal console of a dvsan virtual SAN.
//!
//! Reads the pool, the host assignments and the station's tasks from a station's SNMP agent (`dvsan-station run
//! --snmp-listen`), the traffic of every available unit from the unit itself, and follows the station's
//! notification log: over SNMP (NOTIFICATION-LOG-MIB), or from its files with `--station-state-dir`.
//! Operations the user confirms become station tasks, sent with the station's write community, or everything
//! towards the station goes as one SNMPv3 user with `--credentials FILE --user NAME` (DVSAN_CREDENTIALS,
//! DVSAN_USER); the units are read with the read community. Sources and
//! submissions run in background tokio tasks; the UI loop only draws, handles keys and hands the app's outbox to
//! the task client, so it never waits on the network.

use anyhow::{Context, Result};
use clap::Parser;
use dvsan_console::app::App;
use dvsan_console::model::TailStatus;
use dvsan_console::source::fake::{demo_notifications, FakeSource};
use dvsan_console::source::log::{spawn_snmp_tail, LogReader};
use dvsan_console::source::snmp::SnmpSource;
use dvsan_console::source::tasks::{default_owner, TaskClient};
use dvsan_console::source::{spawn_refresh, tail, Update};
use dvsan_console::terminal::TerminalGuard;
use dvsan_console::ui;
use dvsan_snmp::usm::UsersFile;
use ratatui::crossterm::event::{self, Event};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Debug, Parser)]
#[command(name = "dvsan-console", version, about = "dvsan terminal console: units, volumes, notifications, activity")]
struct Cli {
    /// The station's SNMP agent (`dvsan-station run --snmp-listen`), IP, IP:PORT, NAME or NAME:PORT (port
    /// 1161 when omitted).
    #[arg(long, default_value = "127.0.0.1:1161", value_name = "HOST:PORT")]
    station: String,
    /// Read community of the station and of the units.
    #[arg(long, default_value = "public")]
    community: String,
    /// Write community of the station (its --snmp-write-community), for starting, cancelling and removing tasks.
    /// No default: without it the console only reads.
    #[arg(long, env = "DVSAN_WRITE_COMMUNITY", hide_env_values = true, value_name = "COMMUNITY")]
    write_community: Option<String>,
    /// SNMPv3 users file (TOML, mode 0600) holding the user to speak to the station as (with --user): reads,
    /// the notification log and tasks then go as that user; --community still reads the units.
    #[arg(long, env = "DVSAN_CREDENTIALS", value_name = "FILE", requires = "user")]
    credentials: Option<PathBuf>,
    /// The user in --credentials.
    #[arg(long, env = "DVSAN_USER", value_name = "NAME", requires = "credentials")]
    user: Option<String>,
    /// How often the pool and the traffic are read (e.g. 1s, 500ms).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    refresh: Duration,
    /// How long to wait for an SNMP answer (per attempt).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// The station's state directory, when the console runs on the station's machine: the notification tail
    /// then follows the station's files (`dvsan-station traps --follow`) instead of its NOTIFICATION-LOG-MIB.
    #[arg(long, value_name = "DIR")]
    station_state_dir: Option<PathBuf>,
    /// The dvsan-station program for the tail (default: next to this program, else on PATH).
    #[arg(long, value_name = "PATH")]
    station_bin: Option<PathBuf>,
    /// Show canned demo data instead of reading a station (for a look at the screens).
    #[arg(long)]
    fake: bool,
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("dvsan-console: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    let station = dvsan_snmp::Endpoint::parse(&cli.station, 1161).and_then(dvsan_snmp::Endpoint::require_port);
    let station = station.and_then(|s| s.resolve()).context("--station")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(console(cli, station))
}

async fn console(cli: Cli, station: SocketAddr) -> Result<()> {
    let (updates_tx, mut updates) = mpsc::unbounded_channel::<Update>();
    let tail_status = if cli.fake { TailStatus::Following } else { TailStatus::Starting };
    let mut app = App::new(station.to_string(), tail_status);
    app.color = ui::color_wanted(std::env::var_os("NO_COLOR").as_deref());

    let mut tasks = Vec::new();
    let mut client = None;
    let mut no_client = "this is demo data (--fake): nothing is sent to a station".to_string();
    if cli.fake {
        app.station = "(demo data)".to_string();
        tasks.push(spawn_refresh(FakeSource::demo(), cli.refresh, updates_tx.clone()));
        for n in demo_notifications() {
            app.apply(Update::Notification(n));
        }
    } else {
        let user = match (&cli.credentials, &cli.user) {
            (Some(file), Some(name)) => {
                Some(Arc::new(UsersFile::load_user(file, name).context("--credentials/--user")?))
            }
            _ => None,
        };
        let mut source =
            SnmpSource::new(station, &cli.community, cli.timeout).await.context("opening an SNMP socket")?;
        if let Some(user) = &user {
            source = source.with_station_user(Arc::clone(user));
        } else if let Some(write_community) = &cli.write_community {
            source = source.assignments_with(write_community);
        }
        tasks.push(spawn_refresh(source, cli.refresh, updates_tx.clone()));
        let owner = default_owner();
        match (&user, &cli.write_community) {
            (Some(user), _) => {
                client = Some(
                    TaskClient::new(station, "", cli.timeout, &owner)
                        .await
                        .context("opening an SNMP socket for tasks")?
                        .with_user(Arc::clone(user)),
                )
            }
            (None, Some(write_community)) => {
                client = Some(
                    TaskClient::new(station, write_community, cli.timeout, &owner)
                        .await
                        .context("opening an SNMP socket for tasks")?,
                )
            }
            (None, None) => {
                no_client = "the console has no write community or SNMPv3 user, so it only reads: start it with \
                             --write-community COMMUNITY (the station's --snmp-write-community) or --credentials \
                             FILE --user NAME to start, cancel or remove tasks"
                    .to_string()
            }
        }
        if let Some(dir) = &cli.station_state_dir {
            let program = tail::station_program(cli.station_bin.as_deref());
            tasks.push(tail::spawn_tail(program, dir.clone(), updates_tx.clone()));
        } else {
            let mut reader = LogReader::new(station, &cli.community, cli.timeout)
                .await
                .context("opening an SNMP socket for the notification log")?;
            if let Some(user) = &user {
                reader = reader.with_user(Arc::clone(user));
            }
            tasks.push(spawn_snmp_tail(reader, cli.refresh, updates_tx.clone()));
        }
    }

    // Keys come from a plain thread: crossterm's reads block, and the UI loop must not.
    let (keys_tx, mut keys) = mpsc::unbounded_channel::<Event>();
    std::thread::spawn(move || loop {
        match event::poll(Duration::from_millis(200)) {
            Ok(true) => match event::read() {
                Ok(ev) => {
                    if keys_tx.send(ev).is_err() {
                        return;
                    }
                }
                Err(_) => return,
            },
            Ok(false) => {
                if keys_tx.is_closed() {
                    return;
                }
            }
            Err(_) => return,
        }
    });

    let mut guard = TerminalGuard::enter().context("setting up the terminal")?;
    let outbox = Outbox { client, no_client, updates: updates_tx };
    let result = ui_loop(&mut guard, &mut app, &outbox, &mut keys, &mut updates).await;
    drop(guard);
    for task in tasks {
        task.abort();
    }
    result
}

/// Where the app's commands go: the station's task client, or, with demo data or without a write community,
/// nowhere (and the user is told why, `no_client`).
struct Outbox {
    client: Option<TaskClient>,
    no_client: String,
    updates: mpsc::UnboundedSender<Update>,
}

impl Outbox {
    /// Sends every command the app queued; each runs in its own task and answers through `updates`.
    fn dispatch(&self, app: &mut App) {
        for command in app.take_outbox() {
            match &self.client {
                Some(client) => {
                    // Detached: the command ends by itself (bounded by the SNMP timeouts) and reports back.
                    drop(client.spawn(command, self.updates.clone()));
                }
                None => app.apply(Update::Refused { command, why: self.no_client.clone() }),
            }
        }
    }
}

async fn ui_loop(
    guard: &mut TerminalGuard,
    app: &mut App,
    outbox: &Outbox,
    keys: &mut mpsc::UnboundedReceiver<Event>,
    updates: &mut mpsc::UnboundedReceiver<Update>,
) -> Result<()> {
    // Ages on screen move even when no snapshot arrives.
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        guard.terminal.draw(|frame| ui::draw(frame, app)).context("drawing")?;
        tokio::select! {
            event = keys.recv() => match event {
                Some(event) => handle_event(guard, app, outbox, event)?,
                None => return Ok(()),
            },
            Some(update) = updates.recv() => app.apply(update),
            _ = tick.tick() => {}
        }
        // Whatever else came meanwhile is taken before the next draw: keys typed faster than a frame is drawn
        // (a pasted filter, a held-down arrow) cost one draw, not one each.
        loop {
            if app.quit {
                return Ok(());
            }
            if let Ok(event) = keys.try_recv() {
                handle_event(guard, app, outbox, event)?;
            } else if let Ok(update) = updates.try_recv() {
                app.apply(update);
            } else {
                break;
            }
        }
    }
}

/// A key goes to the app (and the commands it queued to the station); a resize to the terminal.
fn handle_event(guard: &mut TerminalGuard, app: &mut App, outbox: &Outbox, event: Event) -> Result<()> {
    match event {
        Event::Key(key) => {
            let action = app.handle_key(key);
            app.update(action);
            outbox.dispatch(app);
        }
        Event::Resize(_, _) => guard.terminal.autoresize().context("resizing")?,
        _ => {}
    }
    Ok(())
}
