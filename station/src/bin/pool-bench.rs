//! `dvsan-pool-bench`: pool build time. Many unit agents (in this one process, each on its own loopback address,
//! served by the engine's agent with a fixed DVSAN-MIB tree) send coldStart to a running station at the same
//! moment; the tool then watches the station's store and reports, per unit, how long it took until the unit and
//! all its volumes were in the pool (p50, p99, max), as JSON on stdout.

use anyhow::{bail, Context, Result};
use clap::Parser;
use dvsan_snmp::agent::{GetResult, MibHandler};
use dvsan_snmp::{Agent, AgentConfig, NotificationSender, Oid, Uptime, Value, VarBind};
use dvsan_station::model::UnitState;
use dvsan_station::store::StationStore;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::Bound;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(name = "dvsan-pool-bench", about = "Measure how fast a station builds its pool from many coldStarts")]
struct Args {
    /// The station's notification address.
    #[arg(long)]
    station: SocketAddr,
    /// The station's state directory (its store is read to see when units are pooled).
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
    /// Give up after this long.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    timeout: Duration,
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

fn unit_tree(unit_id: &str, name: &str, volumes: u32) -> BTreeMap<Oid, Value> {
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
        tree.insert(i(DVSAN_VOLUME_NAME, &[v]), Value::string(&format!("vol{v}")));
        tree.insert(i(DVSAN_VOLUME_START_LBA, &[v]), Value::Gauge32(start));
        tree.insert(i(DVSAN_VOLUME_END_LBA, &[v]), Value::Gauge32(start + length - 1));
        tree.insert(i(DVSAN_VOLUME_LENGTH, &[v]), Value::Gauge32(length));
        tree.insert(i(DVSAN_VOLUME_STATE, &[v]), Value::Integer(1));
        tree.insert(i(DVSAN_VOLUME_EXPORT_NAME, &[v]), Value::string(&format!("vol{v}")));
        tree.insert(i(DVSAN_VOLUME_ROW_STATUS, &[v]), Value::Integer(1));
    }
    tree
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.units == 0 || args.units > 60_000 {
        bail!("--units must be between 1 and 60000");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async {
        let mut units = HashMap::new();
        let mut stops = Vec::new();
        let mut senders = Vec::new();
        for n in 0..args.units {
            let ip = IpAddr::V4(Ipv4Addr::new(127, args.second_octet, (n / 250) as u8, (n % 250 + 1) as u8));
            let unit_id = format!("00000000-0000-4000-8000-{:012x}", u64::from(n) + 1);
            let agent = Agent::builder(AgentConfig { workers: 1, ..AgentConfig::default() })
                .handler(
                    Oid::from_slice(dvsan_mib::DVSAN_MIB),
                    Arc::new(FixedTree(unit_tree(&unit_id, &format!("bench{n}"), args.volumes))),
                )
                .build()
                .map_err(|e| anyhow::anyhow!("building agent {n}: {e}"))?;
            let socket = tokio::net::UdpSocket::bind(SocketAddr::new(ip, args.port))
                .await
                .with_context(|| format!("binding {ip}:{}", args.port))?;
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            tokio::spawn(Arc::new(agent).serve(socket, async {
                let _ = stopped.await;
            }));
            stops.push(stop);
            senders.push(NotificationSender::new(SocketAddr::new(ip, 0), Uptime::start_now()).await?);
            units.insert(unit_id, ip);
        }
        let ids: Vec<String> = {
            let mut ids: Vec<_> = units.keys().cloned().collect();
            ids.sort();
            ids
        };

        // Every unit sends its coldStart at once.
        let start = Instant::now();
        for (sender, unit_id) in senders.iter().zip(&ids) {
            let varbinds =
                vec![VarBind::new(Oid::from_slice(dvsan_mib::DVSAN_UNIT_ID).child(0), Value::string(unit_id))];
            sender.trap_v2(args.station, "public", &Oid::from_slice(dvsan_mib::COLD_START), varbinds).await?;
        }

        let store = StationStore::open_existing(&args.state_dir)?;
        let mut done: HashMap<String, f64> = HashMap::new();
        while done.len() < units.len() && start.elapsed() < args.timeout {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let elapsed = start.elapsed().as_secs_f64();
            for unit in tokio::task::block_in_place(|| store.pool())? {
                let Some(unit_id) = unit.unit_id else { continue };
                if units.contains_key(&unit_id)
                    && !done.contains_key(&unit_id)
                    && unit.state == UnitState::Available
                    && unit.volumes.len() == args.volumes as usize
                {
                    done.insert(unit_id, elapsed);
                }
            }
        }
        for stop in stops {
            let _ = stop.send(());
        }
        let mut times: Vec<f64> = done.values().copied().collect();
        times.sort_by(f64::total_cmp);
        println!(
            "{}",
            serde_json::json!({
                "units": args.units,
                "volumes_per_unit": args.volumes,
                "pooled": times.len(),
                "p50_ms": percentile(&times, 50.0) * 1000.0,
                "p99_ms": percentile(&times, 99.0) * 1000.0,
                "max_ms": times.last().copied().unwrap_or(0.0) * 1000.0,
            })
        );
        if times.len() < units.len() {
            bail!("only {} of {} units were pooled within {:?}", times.len(), units.len(), args.timeout);
        }
        Ok(())
    })
}
