//! `dvsan-pool-bench`: pool build time and steady-state cost at scale. Many unit agents (in this one process, each
//! on its own loopback address, served by the engine's agent with a fixed DVSAN-MIB tree) send coldStart to a
//! running station at the same moment; the tool watches the station's store and reports, per unit, how long it took
//! until the unit and all its volumes were in the pool (p50, p99, max). Optionally it then measures `--steady-polls`
//! poll rounds of the unchanged pool (SNMP requests each unit received per poll, counted by the agents; the
//! station's CPU and memory from /proc) and a coldStart storm: `--storm` units restart at once while a poll round
//! runs (fresh sysUpTime, a new name for the unit and its volumes, a new coldStart), and every unit must end up
//! `available` with exactly what its agent now serves. Prints one JSON object on stdout.
//!
//! Each unit holds one socket (its agent's); a notification is sent from a socket bound to the unit's address for
//! that one send, so 10,000 units fit in a 20,000-descriptor limit.

use anyhow::{bail, Context, Result};
use clap::Parser;
use dvsan_snmp::agent::{GetResult, MibHandler};
use dvsan_snmp::{Agent, AgentConfig, NotificationSender, Oid, SnmpCounters, Value, VarBind};
use dvsan_station::model::{PoolUnit, UnitState};
use dvsan_station::store::StationStore;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::Bound;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

#[derive(Debug, Parser)]
#[command(name = "dvsan-pool-bench", about = "Measure how fast a station builds its pool from many coldStarts")]
struct Args {
    /// The station's notification address.
    #[arg(long)]
    station: SocketAddr,
    /// The station's state directory (its store is read to see when units are pooled; `station.ready` names the
    /// station's pid for the CPU and memory figures).
    #[arg(long)]
    state_dir: PathBuf,
    #[arg(long, default_value_t = 200)]
    units: u32,
    #[arg(long, default_value_t = 4)]
    volumes: u32,
    /// Units listen on 127.<second>.x.y:<port>, one address each.
    #[arg(long, default_value_t = 30)]
    second_octet: u8,
    #[arg(long, default_value_t = 1161)]
    port: u16,
    /// Give up on the burst (and on the storm) after this long.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// After the burst, measure this many poll rounds of the unchanged pool (0: skip).
    #[arg(long, default_value_t = 0)]
    steady_polls: u32,
    /// The station's --poll-interval (bounds the waits for poll rounds).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    poll_interval: Duration,
    /// Then restart this many units at once while a poll round runs (0: skip).
    #[arg(long, default_value_t = 0)]
    storm: u32,
    /// Before the storm, print the report so far, create this file and wait (at most --timeout) until it is
    /// removed: the units answer meanwhile, for measurements of the full pool by other tools.
    #[arg(long)]
    pause_file: Option<PathBuf>,
}

/// A fixed set of instances.
struct FixedTree(BTreeMap<Oid, Value>);

impl MibHandler for FixedTree {
    fn get(&self, oid: &Oid) -> GetResult {
        self.0.get(oid).cloned().map_or(GetResult::NoSuchInstance, GetResult::Value)
    }
    fn get_next(&self, oid: &Oid) -> Option<VarBind> {
        self.0
            .range((Bound::Excluded(oid.clone()), Bound::Unbounded))
            .next()
            .map(|(k, v)| VarBind::new(k.clone(), v.clone()))
    }
}

fn unit_tree(unit_id: &str, name: &str, volumes: u32, suffix: &str) -> BTreeMap<Oid, Value> {
    use dvsan_mib::*;
    let i = |node: &[u32], index: &[u32]| Oid::from_slice(node).join(index);
    let length = 1000;
    let capacity = 1_000_000;
    let mut tree = BTreeMap::new();
    tree.insert(i(DVSAN_UNIT_ID, &[0]), Value::string(unit_id));
    tree.insert(i(DVSAN_UNIT_NAME, &[0]), Value::string(name));
    tree.insert(i(DVSAN_UNIT_BLOCK_SIZE, &[0]), Value::Gauge32(4096));
    tree.insert(i(DVSAN_UNIT_CAPACITY_BLOCKS, &[0]), Value::Gauge32(capacity));
    tree.insert(i(DVSAN_UNIT_FREE_BLOCKS, &[0]), Value::Gauge32(capacity - volumes * length));
    tree.insert(i(DVSAN_UNIT_CHANGE_COUNTER, &[0]), Value::Counter32(volumes));
    tree.insert(i(DVSAN_UNIT_DATA_SERVICE_STATE, &[0]), Value::Integer(1));
    tree.insert(i(DVSAN_MEDIA_PATH, &[1]), Value::string("/srv/dvsan/disk0.img"));
    tree.insert(i(DVSAN_MEDIA_KIND, &[1]), Value::Integer(1));
    tree.insert(i(DVSAN_MEDIA_BLOCKS, &[1]), Value::Gauge32(capacity));
    tree.insert(i(DVSAN_MEDIA_FIRST_LBA, &[1]), Value::Gauge32(0));
    for v in 1..=volumes {
        let start = (v - 1) * length;
        tree.insert(i(DVSAN_VOLUME_NAME, &[v]), Value::string(&format!("vol{v}{suffix}")));
        tree.insert(i(DVSAN_VOLUME_START_LBA, &[v]), Value::Gauge32(start));
        tree.insert(i(DVSAN_VOLUME_END_LBA, &[v]), Value::Gauge32(start + length - 1));
        tree.insert(i(DVSAN_VOLUME_LENGTH, &[v]), Value::Gauge32(length));
        tree.insert(i(DVSAN_VOLUME_STATE, &[v]), Value::Integer(1));
        tree.insert(i(DVSAN_VOLUME_EXPORT_NAME, &[v]), Value::string(&format!("vol{v}")));
        tree.insert(i(DVSAN_VOLUME_ROW_STATUS, &[v]), Value::Integer(1));
    }
    tree
}

/// One in-process unit: its agent (a generation per restart) and what the pool must show for it.
struct Unit {
    n: u32,
    id: String,
    ip: IpAddr,
    /// Appended to the unit's and its volumes' names by the current generation ("" before any restart).
    suffix: String,
    agent: Arc<Agent>,
    stop: oneshot::Sender<()>,
    serving: JoinHandle<()>,
}

impl Unit {
    async fn start(n: u32, args: &Args, suffix: &str) -> Result<Unit> {
        let ip = unit_ip(args, n);
        let id = format!("00000000-0000-4000-8000-{:012x}", u64::from(n) + 1);
        let tree = unit_tree(&id, &format!("bench{n}{suffix}"), args.volumes, suffix);
        let agent = Agent::builder(AgentConfig { workers: 1, ..AgentConfig::default() })
            .handler(Oid::from_slice(dvsan_mib::DVSAN_MIB), Arc::new(FixedTree(tree)))
            .build()
            .map_err(|e| anyhow::anyhow!("building agent {n}: {e}"))?;
        let agent = Arc::new(agent);
        let socket = tokio::net::UdpSocket::bind(SocketAddr::new(ip, args.port))
            .await
            .with_context(|| format!("binding {ip}:{}", args.port))?;
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = tokio::spawn(Arc::clone(&agent).serve(socket, async {
            let _ = stopped.await;
        }));
        Ok(Unit { n, id, ip, suffix: suffix.to_string(), agent, stop, serving })
    }

    /// Stops the agent and starts a new one on the same address: sysUpTime starts again from 0.
    async fn restart(&mut self, args: &Args, suffix: &str) -> Result<()> {
        let _ = std::mem::replace(&mut self.stop, oneshot::channel().0).send(());
        let _ = (&mut self.serving).await;
        *self = Unit::start(self.n, args, suffix).await?;
        Ok(())
    }

    /// Sends coldStart from the unit's address, through a socket opened for this one notification.
    async fn cold_start(&self, station: SocketAddr) -> Result<()> {
        let sender = NotificationSender::new(SocketAddr::new(self.ip, 0), self.agent.uptime()).await?;
        let varbinds = vec![VarBind::new(Oid::from_slice(dvsan_mib::DVSAN_UNIT_ID).child(0), Value::string(&self.id))];
        sender.trap_v2(station, "public", &Oid::from_slice(dvsan_mib::COLD_START), varbinds).await?;
        Ok(())
    }

    fn counters(&self) -> &SnmpCounters {
        self.agent.counters()
    }

    /// Whether `pooled` shows exactly this unit's current generation, available, with all its volumes.
    fn matches(&self, pooled: &PoolUnit, volumes: u32) -> bool {
        pooled.state == UnitState::Available
            && pooled.name == format!("bench{}{}", self.n, self.suffix)
            && pooled.volumes.len() == volumes as usize
            && pooled.volumes.iter().all(|v| v.name == format!("vol{}{}", v.index, self.suffix))
    }
}

/// Unit `n` listens on 127.<second_octet + n / 62500>.<(n / 250) % 250>.<n % 250 + 1>.
fn unit_ip(args: &Args, n: u32) -> IpAddr {
    let second = args.second_octet.wrapping_add((n / 62_500) as u8);
    IpAddr::V4(Ipv4Addr::new(127, second, ((n / 250) % 250) as u8, (n % 250 + 1) as u8))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn latency_json(times: &mut [f64]) -> serde_json::Value {
    times.sort_by(f64::total_cmp);
    json!({
        "p50_ms": percentile(times, 50.0) * 1000.0,
        "p99_ms": percentile(times, 99.0) * 1000.0,
        "max_ms": times.last().copied().unwrap_or(0.0) * 1000.0,
    })
}

/// Reads the pool until every unit in `watched` matches it (or `timeout`); returns the seconds from `start` at
/// which each one first did, and the longest single read of the pool.
async fn watch_pool(
    store: &StationStore,
    units: &[Unit],
    watched: &[usize],
    start: Instant,
    timeout: Duration,
    volumes: u32,
) -> Result<(HashMap<usize, f64>, Duration)> {
    let by_id: HashMap<&str, usize> = watched.iter().map(|&i| (units[i].id.as_str(), i)).collect();
    let mut done = HashMap::new();
    let mut slowest_read = Duration::ZERO;
    while done.len() < watched.len() && start.elapsed() < timeout {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let read = Instant::now();
        let pool = tokio::task::block_in_place(|| store.pool())?;
        slowest_read = slowest_read.max(read.elapsed());
        let elapsed = start.elapsed().as_secs_f64();
        for pooled in &pool {
            let Some(i) = pooled.unit_id.as_deref().and_then(|id| by_id.get(id)) else { continue };
            if !done.contains_key(i) && units[*i].matches(pooled, volumes) {
                done.insert(*i, elapsed);
            }
        }
    }
    Ok((done, slowest_read))
}

/// Units whose pool entry is missing or does not match what their agent serves.
fn wrong_units(store: &StationStore, units: &[Unit], volumes: u32) -> Result<Vec<String>> {
    let pool = tokio::task::block_in_place(|| store.pool())?;
    let by_id: HashMap<&str, &PoolUnit> = pool.iter().filter_map(|u| Some((u.unit_id.as_deref()?, u))).collect();
    Ok(units
        .iter()
        .filter(|u| !by_id.get(u.id.as_str()).is_some_and(|p| u.matches(p, volumes)))
        .map(|u| {
            let seen = by_id.get(u.id.as_str()).map_or("missing".to_string(), |p| {
                format!("{} {:?} {} volumes ({})", p.name, p.state, p.volumes.len(), p.reason)
            });
            format!("unit {} ({}): {seen}", u.n, u.ip)
        })
        .collect())
}

/// Waits (at most two poll intervals) until unit 0's agent has answered one more GET than now: a poll round began
/// (or, when called less than a retry timeout after a round began, that round retried unit 0).
async fn poll_begins(units: &[Unit], poll_interval: Duration) -> Result<()> {
    let gets = || SnmpCounters::read(&units[0].counters().in_get_requests);
    let before = gets();
    let deadline = Instant::now() + poll_interval * 2 + Duration::from_secs(5);
    while gets() == before {
        if Instant::now() > deadline {
            bail!("no poll of unit 0 within {:?}", poll_interval * 2);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Waits until a poll round began and is over (its retries too): returns half a poll interval after its start.
async fn poll_round(units: &[Unit], poll_interval: Duration) -> Result<()> {
    poll_begins(units, poll_interval).await?;
    tokio::time::sleep(poll_interval / 2).await;
    Ok(())
}

/// The requests all agents received so far: (GET, GETNEXT + GETBULK, all datagrams).
fn requests(units: &[Unit]) -> [u64; 3] {
    let mut sum = [0u64; 3];
    for u in units {
        let c = u.counters();
        sum[0] += u64::from(SnmpCounters::read(&c.in_get_requests));
        sum[1] += u64::from(SnmpCounters::read(&c.in_get_nexts));
        sum[2] += u64::from(SnmpCounters::read(&c.in_pkts));
    }
    sum
}

/// The station's pid, from `station.ready`.
fn station_pid(args: &Args) -> Result<u32> {
    let path = args.state_dir.join("station.ready");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let ready: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    ready["pid"].as_u64().and_then(|p| u32::try_from(p).ok()).context("station.ready has no pid")
}

/// The CPU time (user + system, seconds) a process used so far. /proc counts in USER_HZ, 100 on Linux.
fn cpu_seconds(pid: u32) -> Result<f64> {
    cpu_seconds_at(&pid.to_string())
}

/// [`cpu_seconds`] of /proc/`path` (a process, or `PID/task/TID` for a thread).
fn cpu_seconds_at(path: &str) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{path}/stat")).context("reading the station's /proc stat")?;
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).context("unexpected /proc stat format")?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime) are the 12th and 13th after the name.
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).context("unexpected /proc stat format");
    Ok((ticks(11)? + ticks(12)?) as f64 / 100.0)
}

/// CPU seconds per thread name (threads of one name summed) of a process so far.
fn thread_cpu_seconds(pid: u32) -> Result<BTreeMap<String, f64>> {
    let mut by_name = BTreeMap::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task")).context("listing the station's threads")? {
        let tid: u32 = entry?.file_name().to_string_lossy().parse().context("unexpected /proc task entry")?;
        let path = format!("{pid}/task/{tid}");
        let name = std::fs::read_to_string(format!("/proc/{path}/comm")).unwrap_or_default().trim().to_string();
        // A thread may end between listing and reading.
        if let Ok(seconds) = cpu_seconds_at(&path) {
            *by_name.entry(name).or_insert(0.0) += seconds;
        }
    }
    Ok(by_name)
}

/// A `Vm…:` line of /proc/PID/status, in MiB.
fn memory_mib(pid: u32, field: &str) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).context("reading the station's status")?;
    let line = status.lines().find(|l| l.starts_with(field)).with_context(|| format!("no {field} in status"))?;
    let kb: f64 = line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).context("unexpected status line")?;
    Ok(kb / 1024.0)
}

/// UDP datagrams this network namespace dropped because a socket's receive buffer was full (RcvbufErrors).
fn udp_receive_buffer_drops() -> Result<u64> {
    let snmp = std::fs::read_to_string("/proc/net/snmp").context("reading /proc/net/snmp")?;
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (names, values) = udp.next().zip(udp.next()).context("no Udp lines in /proc/net/snmp")?;
    let column = names.split_whitespace().position(|n| n == "RcvbufErrors").context("no RcvbufErrors")?;
    values.split_whitespace().nth(column).and_then(|v| v.parse().ok()).context("unexpected /proc/net/snmp")
}

fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

async fn burst(args: &Args, units: &[Unit], store: &StationStore, pid: u32) -> Result<serde_json::Value> {
    let drops_before = udp_receive_buffer_drops()?;
    let threads_before = thread_cpu_seconds(pid)?;
    let start = Instant::now();
    for unit in units {
        unit.cold_start(args.station).await?;
    }
    let sent_ms = start.elapsed().as_secs_f64() * 1000.0;
    let all: Vec<usize> = (0..units.len()).collect();
    let (done, slowest_read) = watch_pool(store, units, &all, start, args.timeout, args.volumes).await?;
    let mut times: Vec<f64> = done.values().copied().collect();
    let mut out = latency_json(&mut times);
    out["pooled"] = json!(done.len());
    out["sending_ms"] = json!(sent_ms);
    out["slowest_pool_read_ms"] = json!(slowest_read.as_secs_f64() * 1000.0);
    out["udp_receive_buffer_drops"] = json!(udp_receive_buffer_drops()? - drops_before);
    let seconds = start.elapsed().as_secs_f64();
    let threads: BTreeMap<String, String> = thread_cpu_seconds(pid)?
        .into_iter()
        .map(|(name, cpu)| {
            let percent = (cpu - threads_before.get(&name).copied().unwrap_or(0.0)) / seconds * 100.0;
            (name, format!("{percent:.0}%"))
        })
        .collect();
    out["station_cpu_by_thread"] = json!(threads);
    Ok(out)
}

async fn steady(args: &Args, units: &[Unit], pid: u32) -> Result<serde_json::Value> {
    poll_round(units, args.poll_interval).await?;
    let (requests_before, cpu_before, began) = (requests(units), cpu_seconds(pid)?, Instant::now());
    let drops_before = udp_receive_buffer_drops()?;
    for _ in 0..args.steady_polls {
        poll_round(units, args.poll_interval).await?;
    }
    let (requests_after, cpu_after, seconds) = (requests(units), cpu_seconds(pid)?, began.elapsed().as_secs_f64());
    let per_poll = |i: usize| {
        (requests_after[i] - requests_before[i]) as f64 / (units.len() as f64 * f64::from(args.steady_polls))
    };
    Ok(json!({
        "polls": args.steady_polls,
        "seconds": seconds,
        "cpu_percent": (cpu_after - cpu_before) / seconds * 100.0,
        "rss_mib": memory_mib(pid, "VmRSS:")?,
        "hwm_mib": memory_mib(pid, "VmHWM:")?,
        "station_fds": open_descriptors(pid),
        "udp_receive_buffer_drops": udp_receive_buffer_drops()? - drops_before,
        "get_per_unit_poll": per_poll(0),
        "getnext_bulk_per_unit_poll": per_poll(1),
        "requests_per_unit_poll": per_poll(2),
    }))
}

/// Restarts every `units.len() / count`-th unit at once, right after a poll round began.
async fn storm(args: &Args, units: &mut [Unit], store: &StationStore) -> Result<serde_json::Value> {
    let step = (units.len() / args.storm as usize).max(1);
    let restarted: Vec<usize> = (0..units.len()).step_by(step).take(args.storm as usize).collect();
    poll_begins(units, args.poll_interval).await?;
    let start = Instant::now();
    for &i in &restarted {
        units[i].restart(args, "-r").await?;
    }
    for &i in &restarted {
        units[i].cold_start(args.station).await?;
    }
    let restart_ms = start.elapsed().as_secs_f64() * 1000.0;
    let (done, _) = watch_pool(store, units, &restarted, start, args.timeout, args.volumes).await?;
    let mut times: Vec<f64> = done.values().copied().collect();
    let mut out = latency_json(&mut times);
    // One more poll round over the settled pool (not a retry of the storm's round): nothing may move back or stay
    // wrong.
    tokio::time::sleep_until((start + args.poll_interval / 2).into()).await;
    poll_round(units, args.poll_interval).await?;
    let wrong = wrong_units(store, units, args.volumes)?;
    out["restarted"] = json!(restarted.len());
    out["repooled"] = json!(done.len());
    out["restart_ms"] = json!(restart_ms);
    out["wrong_after_next_poll"] = json!(wrong.len());
    out["wrong_examples"] = json!(wrong.iter().take(5).collect::<Vec<_>>());
    Ok(out)
}

/// Creates `path` and waits until someone removes it (at most `timeout`).
async fn pause(path: &std::path::Path, timeout: Duration) -> Result<()> {
    std::fs::write(path, "").with_context(|| format!("creating {}", path.display()))?;
    let deadline = Instant::now() + timeout;
    while path.exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.units == 0 || args.units > 60_000 {
        bail!("--units must be between 1 and 60000");
    }
    if args.storm > args.units {
        bail!("--storm must be at most --units ({})", args.units);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    let mut units = Vec::with_capacity(args.units as usize);
    for n in 0..args.units {
        units.push(Unit::start(n, &args, "").await?);
    }
    let store = StationStore::open_existing(&args.state_dir)?;
    let mut report = json!({ "units": args.units, "volumes_per_unit": args.volumes });
    let pid = station_pid(&args)?;
    report["burst"] = burst(&args, &units, &store, pid).await?;
    let pooled = report["burst"]["pooled"].as_u64().unwrap_or(0);
    if pooled == u64::from(args.units) && args.steady_polls > 0 {
        report["steady"] = steady(&args, &units, pid).await?;
    }
    if let Some(path) = &args.pause_file {
        println!("{report}");
        pause(path, args.timeout).await?;
    }
    if pooled == u64::from(args.units) && args.storm > 0 {
        report["storm"] = storm(&args, &mut units, &store).await?;
    }
    println!("{report}");
    if pooled < u64::from(args.units) {
        bail!("only {pooled} of {} units were pooled within {:?}", args.units, args.timeout);
    }
    let storm_wrong = report["storm"]["wrong_after_next_poll"].as_u64().unwrap_or(0);
    if storm_wrong > 0 {
        bail!("{storm_wrong} units are not in the pool as their agents serve them after the storm");
    }
    Ok(())
}
