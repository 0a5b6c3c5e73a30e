//! `dvsan-host`: the host side of dvsan's storage allocation, a convenience over the station's MIB.
//!
//! `request` creates a row in the station's dvsanStationRequestTable (size, this host's address, optional
//! name), waits until the station has served it, prints the assignment and destroys the row; `release` does the
//! same with a release(2) row. `list` walks dvsanStationAssignmentTable for this host's volumes; `attach` finds
//! a volume there, checks its export with an NBD_OPT_INFO request from this host's address and prints the
//! nbd-client and qemu-nbd commands that connect it. Everything plain snmpset/snmpget can do too. The station
//! shows a requester only its own requests and assignments, so those are read with the write community.
//!
//! `enroll` gets this host's TLS client certificate from the station's CA: it makes a key pair here, sends a
//! certificate signing request for its SNMPv3 user's name in a dvsanStationCertRequestTable row, and writes the
//! certificate, the key (0600) and the CA's certificate in the directory layout libnbd and qemu read.
//!
//! `serve` runs the host front (crate `dvsan-front`, module `serve`) for one volume, its replicas given or found
//! through the station (module `replicas`, which also holds the station's replica and front tables), reporting
//! their state to the station (module `report`). `request --replicas N`, `targets` and `report` are the station
//! side of mirrored volumes.
//!
//! With `--credentials FILE --user NAME` (or DVSAN_CREDENTIALS and DVSAN_USER) every request goes to the station as
//! that SNMPv3 user (authPriv when the user has a privacy passphrase); otherwise the communities are used.

mod serve;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use dvsan_mib as mib;
use dvsan_snmp::usm::UsersFile;
use dvsan_snmp::{resolve_address, Endpoint, Manager, Oid, SnmpError, Target, Value, VarBind};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod replicas;
mod report;

#[derive(Debug, Parser)]
#[command(name = "dvsan-host", version, about = "Ask a dvsan management station for storage, over SNMP")]
struct Cli {
    /// The station's SNMP agent, IP, IP:PORT, NAME or NAME:PORT (port 1161 when none is given).
    #[arg(long, env = "DVSAN_STATION")]
    station: Option<String>,
    /// Read community of the station's agent.
    #[arg(long, default_value = "public")]
    community: String,
    /// Write community of the station's agent (its --snmp-write-community), for `request` and `release`. No
    /// default.
    #[arg(long, env = "DVSAN_WRITE_COMMUNITY", hide_env_values = true, value_name = "COMMUNITY")]
    write_community: Option<String>,
    /// SNMPv3 users file (TOML, mode 0600) holding the user to speak to the station as (with --user); the
    /// communities are then not used.
    #[arg(long, env = "DVSAN_CREDENTIALS", value_name = "FILE", requires = "user")]
    credentials: Option<PathBuf>,
    /// The user in --credentials that requests, lists and releases go as.
    #[arg(long, env = "DVSAN_USER", value_name = "NAME", requires = "credentials")]
    user: Option<String>,
    /// This host's address, as its NBD connections come from; default: the local address that reaches the station.
    #[arg(long)]
    host: Option<IpAddr>,
    /// How long to wait for the station to serve a request.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    wait: Duration,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Ask for a volume of at least SIZE (bytes, or 80G, 512M ...).
    Request {
        #[arg(long)]
        size: String,
        /// The volume's name: a free volume of that name is given, else the station creates one with it.
        #[arg(long)]
        name: Option<String>,
        /// A shared read-write assignment (for cluster filesystems): with --name, the volume of that name other
        /// hosts hold shared is given too. Without it a volume has this host alone.
        #[arg(long)]
        shared: bool,
        /// 2 or 3: a mirrored volume, each replica a volume of SIZE on a unit of its own (in a zone of its own
        /// where units have zone labels), all granted to this host.
        #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=3),
              conflicts_with = "shared")]
        replicas: u32,
        #[arg(long)]
        json: bool,
    },
    /// This host's volumes (UNIT/VOLUME, name, NBD URI), then its mirrored volumes with their replicas.
    List {
        #[arg(long)]
        json: bool,
    },
    /// The NBD targets a volume is served from (what `serve VOLUME` connects to): every replica of a mirrored
    /// volume, or an ordinary volume's one export; one `unit address port export` line each, or a JSON array.
    Targets {
        volume: String,
        #[arg(long)]
        json: bool,
    },
    /// Report a replica's state of a mirrored volume to the station (what `serve` does every few seconds; each
    /// report is also a heartbeat).
    Report {
        volume: String,
        /// The replica's number (1, 2 or 3, as `list` orders them).
        #[arg(long)]
        replica: u32,
        /// unknown, inSync, outOfSync, resyncing or failed.
        #[arg(long, value_parser = replicas::parse_state)]
        state: i32,
        /// Bytes written while the replica was out of sync, not copied to it yet.
        #[arg(long, default_value_t = 0)]
        dirty_bytes: u64,
        /// How far a resync of the replica has come, 0 to 100.
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=100))]
        resync_percent: u32,
    },
    /// Give a volume back (UNIT/VOLUME as `list` prints it, or its name); a mirrored volume (its name, mirrorN, or
    /// UNIT/VOLUME of a replica) with all its replicas.
    Release { volume: String },
    /// Check a volume's export and print the commands that connect it as a block device; over TLS when the
    /// unit requires it or --tls-dir is given.
    Attach {
        volume: String,
        /// The certificate directory `enroll --out DIR` wrote (ca-cert.pem, client-cert.pem, client-key.pem):
        /// the commands connect over TLS with it.
        #[arg(long, value_name = "DIR")]
        tls_dir: Option<PathBuf>,
    },
    /// Get this host's TLS client certificate from the station's CA, for the identity of its SNMPv3 user
    /// (--credentials/--user): the key is made here and stays here. Writes DIR: ca-cert.pem, client-cert.pem,
    /// client-key.pem (mode 0600), as libnbd's `tls-certificates=DIR` and qemu's `tls-creds-x509,dir=DIR` read it.
    Enroll {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Serve a volume to this host through the host front: a local NBD server (loopback or unix socket) that
    /// mirrors it over its replicas on the units, hides transient failures and resyncs returning replicas.
    Serve(serve::ServeArgs),
}

fn main() {
    let cli = Cli::parse();
    let runtime = if matches!(cli.command, Command::Serve(_)) {
        tokio::runtime::Builder::new_multi_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("dvsan-host: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(run(cli)) {
        eprintln!("dvsan-host: {e:#}");
        std::process::exit(1);
    }
}

/// The station and this host.
struct Session {
    manager: Manager,
    read: Target,
    /// `None`: no write community was given; requests and releases fail saying so.
    write: Option<Target>,
    host: IpAddr,
    wait: Duration,
}

impl Session {
    /// The target for SETs on the station, or the error that says which option is missing.
    fn write(&self) -> Result<&Target> {
        self.write.as_ref().context(
            "this needs the station's write community: give --write-community COMMUNITY (or DVSAN_WRITE_COMMUNITY), \
             the station's --snmp-write-community",
        )
    }

    /// An SNMP failure towards the station (a write when `write`), saying what to check when it did not answer.
    fn station_error(&self, write: bool, error: SnmpError) -> anyhow::Error {
        if !matches!(error, SnmpError::Timeout) {
            return error.into();
        }
        if let Some(usm) = &self.read.usm {
            let tries = self.read.options.retries + 1;
            return anyhow::anyhow!(
                "no answer from the station at {} after {} ({tries} tries): check that `dvsan-station run \
                 --snmp-listen {}` runs there and serves SNMPv3 user {:?} (--user)",
                self.read.addr,
                humantime::format_duration(self.read.options.timeout * tries),
                self.read.addr,
                usm.user.name(),
            );
        }
        let (target, role, flag) = match (write, &self.write) {
            (true, Some(write)) => (write, "write", "--write-community"),
            _ => (&self.read, "read", "--community"),
        };
        let tries = target.options.retries + 1;
        let waited = target.options.timeout * tries;
        anyhow::anyhow!(
            "no answer from the station at {} after {} ({tries} tries): check that `dvsan-station run --snmp-listen {}` \
             runs there and that {:?} ({flag}) is its {role} community",
            target.addr,
            humantime::format_duration(waited),
            target.addr,
            target.community,
        )
    }
}

/// One of this host's volumes, from dvsanStationAssignmentTable.
#[derive(Debug, Clone)]
struct Assigned {
    unit: u32,
    volume: u32,
    name: String,
    nbd_uri: String,
    read_only: bool,
}

async fn run(cli: Cli) -> Result<()> {
    // `serve` speaks to the station only to find the replicas (and then reports to it): not with --replica.
    let serve_session = match (&cli.command, &cli.station) {
        (Command::Serve(args), Some(_)) if args.replicas.is_empty() => Some(open_session(&cli).await?),
        _ => None,
    };
    if let Command::Serve(args) = cli.command {
        return serve::serve(args, cli.host, serve_session).await;
    }
    let session = open_session(&cli).await?;
    match cli.command {
        Command::Request { size, name, shared, replicas, json } => {
            request(&session, &size, name.as_deref(), (shared, replicas), json).await
        }
        Command::List { json } => list(&session, json).await,
        Command::Targets { volume, json } => replicas::print_targets(&session, &volume, json).await,
        Command::Report { volume, replica, state, dirty_bytes, resync_percent } => {
            let report = replicas::ReplicaReport { replica, state, dirty_bytes, resync_percent };
            replicas::report(&session, &volume, &[report]).await
        }
        Command::Release { volume } => release(&session, &volume).await,
        Command::Attach { volume, tls_dir } => attach(&session, &volume, tls_dir.as_deref()).await,
        Command::Enroll { out } => {
            let Some(user) = &cli.user else {
                bail!(
                    "enroll needs --credentials FILE --user NAME: the certificate's identity is this host's SNMPv3 \
                     user name, which the station checks"
                );
            };
            enroll(&session, user, &out).await
        }
        Command::Serve(_) => bail!("serve is dispatched before the session is opened"),
    }
}

/// The station (--station) and this host (--host, or the local address that reaches the station), with the
/// credentials given.
async fn open_session(cli: &Cli) -> Result<Session> {
    let station = parse_station(cli.station.as_deref().context("--station (or DVSAN_STATION) is required")?)?;
    let host = match cli.host {
        Some(host) => host,
        None => local_address_towards(station).context("finding this host's address (give --host)")?,
    };
    let bind = if station.is_ipv6() { SocketAddr::from(([0u16; 8], 0)) } else { SocketAddr::from(([0, 0, 0, 0], 0)) };
    let manager = Manager::new(bind).await.context("opening an SNMP socket")?;
    let timeout = Duration::from_secs(2);
    let (read, write) = match (&cli.credentials, &cli.user) {
        (Some(file), Some(user)) => {
            let user = UsersFile::load_user(file, user).context("--credentials/--user")?;
            let target = Target::v3(station, user).with_timeout(timeout, 2);
            (target.clone(), Some(target))
        }
        _ => (
            Target::new(station, cli.community.as_str()).with_timeout(timeout, 2),
            cli.write_community.as_deref().map(|c| Target::new(station, c).with_timeout(timeout, 2)),
        ),
    };
    Ok(Session { manager, read, write, host, wait: cli.wait })
}

/// The station's SNMP agent: IP, IP:PORT, NAME or NAME:PORT (default port 1161), resolved now.
fn parse_station(text: &str) -> Result<SocketAddr> {
    let station = Endpoint::parse(text, 1161).and_then(Endpoint::require_port);
    station.and_then(|s| s.resolve()).context("--station")
}

/// The local address the system would use to reach `station` (no packet is sent).
fn local_address_towards(station: SocketAddr) -> std::io::Result<IpAddr> {
    let bind = if station.is_ipv6() { SocketAddr::from(([0u16; 8], 0)) } else { SocketAddr::from(([0, 0, 0, 0], 0)) };
    let socket = std::net::UdpSocket::bind(bind)?;
    socket.connect(station)?;
    Ok(socket.local_addr()?.ip())
}

fn inet(ip: IpAddr) -> (i32, Vec<u8>) {
    match ip {
        IpAddr::V4(a) => (mib::inet_address_type::IPV4, a.octets().to_vec()),
        IpAddr::V6(a) => (mib::inet_address_type::IPV6, a.octets().to_vec()),
    }
}

fn ip_of(octets: &[u8]) -> Option<IpAddr> {
    match octets.len() {
        4 => Some(IpAddr::from([octets[0], octets[1], octets[2], octets[3]])),
        16 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(octets);
            Some(IpAddr::from(a))
        }
        _ => None,
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::OctetString(b) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    }
}

fn number(value: &Value) -> u32 {
    match value {
        Value::Gauge32(n) | Value::Counter32(n) => *n,
        Value::Integer(n) => u32::try_from(*n).unwrap_or(0),
        _ => 0,
    }
}

/// A request row index unlikely to collide with another host's.
fn request_index() -> u32 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    ((nanos ^ (std::process::id() << 12)) & 0x7fff_ffff).max(1)
}

/// Submits a request row with `columns` (plus the host and createAndGo), waits until it is served and returns
/// the row's outcome columns; the row is destroyed afterwards.
async fn submit(session: &Session, mut columns: Vec<(&'static [u32], Value)>) -> Result<Vec<Value>> {
    let write = session.write()?;
    let index = request_index();
    let (kind, octets) = inet(session.host);
    columns.push((mib::DVSAN_STATION_REQUEST_HOST_ADDR_TYPE, Value::Integer(kind)));
    columns.push((mib::DVSAN_STATION_REQUEST_HOST_ADDRESS, Value::OctetString(octets)));
    columns.push((mib::DVSAN_STATION_REQUEST_ROW_STATUS, Value::Integer(mib::row_status::CREATE_AND_GO)));
    let set = columns.into_iter().map(|(column, value)| VarBind::new(Oid::from_slice(column).child(index), value));
    session
        .manager
        .set(write, set.collect())
        .await
        .map_err(|e| session.station_error(true, e))
        .context("submitting the request to the station")?;
    let outcome_columns = [
        mib::DVSAN_STATION_REQUEST_STATUS,
        mib::DVSAN_STATION_REQUEST_ERROR,
        mib::DVSAN_STATION_REQUEST_UNIT_INDEX,
        mib::DVSAN_STATION_REQUEST_VOLUME_INDEX,
        mib::DVSAN_STATION_REQUEST_UNIT_ADDRESS,
        mib::DVSAN_STATION_REQUEST_VOLUME_NAME,
        mib::DVSAN_STATION_REQUEST_START_LBA,
        mib::DVSAN_STATION_REQUEST_END_LBA,
        mib::DVSAN_STATION_REQUEST_LENGTH,
        mib::DVSAN_STATION_REQUEST_NBD_URI,
        mib::DVSAN_STATION_REQUEST_VOLUME_SOURCE,
        mib::DVSAN_STATION_REQUEST_MIRROR_INDEX,
    ];
    let oids: Vec<Oid> = outcome_columns.iter().map(|c| Oid::from_slice(c).child(index)).collect();
    let start = Instant::now();
    let mut delay = Duration::from_millis(5);
    let values = loop {
        // The row is visible to its requester only: read it with the community that made it.
        let row = session
            .manager
            .get(write, &oids)
            .await
            .map_err(|e| session.station_error(true, e))
            .context("reading the request's status")?;
        let values: Vec<Value> = row.into_iter().map(|vb| vb.value).collect();
        if values.first() != Some(&Value::Integer(mib::dvsan_station_request_status::PENDING)) {
            break values;
        }
        if start.elapsed() > session.wait {
            bail!("the station did not serve the request within {:?} (row {index} left for inspection)", session.wait);
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(200));
    };
    let destroy = VarBind::new(
        Oid::from_slice(mib::DVSAN_STATION_REQUEST_ROW_STATUS).child(index),
        Value::Integer(mib::row_status::DESTROY),
    );
    let _ = session.manager.set(write, vec![destroy]).await;
    match values.first() {
        Some(Value::Integer(s)) if *s == mib::dvsan_station_request_status::DONE => Ok(values),
        Some(Value::Integer(s)) if *s == mib::dvsan_station_request_status::FAILED => {
            bail!("the station refused: {}", values.get(1).map(text).unwrap_or_default())
        }
        _ => bail!("the station's request table answered with unexpected values"),
    }
}

async fn request(
    session: &Session,
    size: &str,
    name: Option<&str>,
    (shared, replicas): (bool, u32),
    json: bool,
) -> Result<()> {
    let mut columns = vec![(mib::DVSAN_STATION_REQUEST_SIZE, Value::OctetString(size.as_bytes().to_vec()))];
    if shared {
        columns.push((mib::DVSAN_STATION_REQUEST_SHARED, Value::Integer(mib::truth_value::TRUE)));
    }
    if replicas >= 2 {
        columns.push((mib::DVSAN_STATION_REQUEST_REPLICAS, Value::Gauge32(replicas)));
    }
    if let Some(name) = name {
        columns.push((mib::DVSAN_STATION_REQUEST_NAME, Value::OctetString(name.as_bytes().to_vec())));
    }
    let v = submit(session, columns).await?;
    let get = |i: usize| v.get(i).cloned().unwrap_or(Value::Null);
    if replicas >= 2 {
        let index = number(&get(11));
        let mirrors = replicas::mirrors(session).await?;
        let Some(mirror) = mirrors.iter().find(|m| m.index == index) else {
            bail!("the station made mirrored volume {index}, but its replicas are not in its replica table");
        };
        replicas::print(std::slice::from_ref(mirror), json);
        return Ok(());
    }
    let unit = number(&get(2));
    let volume = number(&get(3));
    let unit_address = match get(4) {
        Value::OctetString(b) => ip_of(&b).map(|ip| ip.to_string()).unwrap_or_default(),
        _ => String::new(),
    };
    let uri = text(&get(9));
    let (source, how) = match get(10) {
        Value::Integer(mib::dvsan_station_request_volume_source::CREATED) => ("created", "created for this request"),
        Value::Integer(mib::dvsan_station_request_volume_source::EXISTING) => ("existing", "an existing free volume"),
        _ => ("unknown", "the station did not say whether it was created"),
    };
    if json {
        let out = serde_json::json!({
            "unit": unit, "volume": volume, "unit_address": unit_address, "name": text(&get(5)),
            "start_lba": number(&get(6)), "end_lba": number(&get(7)), "length": number(&get(8)),
            "nbd_uri": uri, "host": session.host.to_string(), "volume_source": source,
        });
        println!("{out}");
    } else {
        println!(
            "{unit}/{volume} {:?} on unit {unit_address}: LBA {}-{} ({} blocks), {how}\n{uri}",
            text(&get(5)),
            number(&get(6)),
            number(&get(7)),
            number(&get(8))
        );
    }
    Ok(())
}

/// This host's volumes from dvsanStationAssignmentTable. The station shows a requester only the assignments it
/// asked for, so the table is read with the write community when there is one.
async fn assigned(session: &Session) -> Result<Vec<Assigned>> {
    let rows = session
        .manager
        .walk(session.write.as_ref().unwrap_or(&session.read), &Oid::from_slice(mib::DVSAN_STATION_ASSIGNMENT_ENTRY))
        .await
        .map_err(|e| session.station_error(session.write.is_some(), e))
        .context("reading the station's assignments")?;
    let entry = mib::DVSAN_STATION_ASSIGNMENT_ENTRY.len();
    // Index: unit, volume, host address type, address length, address octets (a row per host of a shared volume).
    let mut by_index: std::collections::BTreeMap<Vec<u32>, (Option<IpAddr>, Assigned)> = Default::default();
    for vb in rows {
        let Some((&column, index)) = vb.oid.as_slice().get(entry..).and_then(|s| s.split_first()) else { continue };
        let &[unit, volume, ..] = index else { continue };
        let (host, row) = by_index.entry(index.to_vec()).or_insert_with(|| {
            (None, Assigned { unit, volume, name: String::new(), nbd_uri: String::new(), read_only: false })
        });
        match (column, &vb.value) {
            (2, Value::OctetString(b)) => *host = ip_of(b),
            (3, Value::Integer(m)) => row.read_only = *m == mib::dvsan_station_assign_mode::READ_ONLY,
            (4, v) => row.nbd_uri = text(v),
            (5, v) => row.name = text(v),
            _ => {}
        }
    }
    Ok(by_index.into_values().filter(|(host, _)| *host == Some(session.host)).map(|(_, row)| row).collect())
}

async fn list(session: &Session, json: bool) -> Result<()> {
    let all = assigned(session).await?;
    let mirrors = replicas::mirrors(session).await?;
    // A mirrored volume's replicas are listed with it, not one by one.
    let is_replica = |row: &Assigned| {
        mirrors.iter().any(|m| m.replicas.iter().any(|r| r.unit == row.unit && r.volume == row.volume))
    };
    let rows: Vec<Assigned> = all.into_iter().filter(|row| !is_replica(row)).collect();
    if rows.is_empty() && mirrors.is_empty() && !json {
        // On stderr: stdout stays one line per volume for scripts.
        eprintln!(
            "no volumes are assigned to this host ({}); `dvsan-host request --size SIZE` asks for one",
            session.host
        );
    }
    for row in &rows {
        if json {
            let out = serde_json::json!({
                "unit": row.unit, "volume": row.volume, "name": row.name, "nbd_uri": row.nbd_uri,
                "read_only": row.read_only,
            });
            println!("{out}");
        } else {
            println!(
                "{}/{} {:?} {}{}",
                row.unit,
                row.volume,
                row.name,
                row.nbd_uri,
                if row.read_only { " (read-only)" } else { "" }
            );
        }
    }
    replicas::print(&mirrors, json);
    Ok(())
}

/// Finds one of this host's volumes by `UNIT/VOLUME` or name.
async fn find(session: &Session, given: &str) -> Result<Assigned> {
    let rows = assigned(session).await?;
    let by_index = given.split_once('/').and_then(|(u, v)| Some((u.parse::<u32>().ok()?, v.parse::<u32>().ok()?)));
    let matches: Vec<&Assigned> =
        rows.iter().filter(|r| by_index.map_or(r.name == given, |(u, v)| r.unit == u && r.volume == v)).collect();
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => bail!(
            "{given:?} is not one of this host's ({}) volumes; `dvsan-host list` shows them as UNIT/VOLUME",
            session.host
        ),
        _ => bail!("several of this host's volumes are named {given:?}; give UNIT/VOLUME"),
    }
}

async fn release(session: &Session, given: &str) -> Result<()> {
    // A mirrored volume goes with all its replicas: the station releases them all for a release of one.
    let mirrors = replicas::mirrors(session).await?;
    let (unit, volume) = match replicas::find(&mirrors, given).and_then(|m| m.replicas.first()) {
        Some(r) => (r.unit, r.volume),
        // Only this host's volumes can be released; `find` says so, and what `dvsan-host list` shows, otherwise.
        None => {
            let row = find(session, given).await?;
            (row.unit, row.volume)
        }
    };
    let columns = vec![
        (mib::DVSAN_STATION_REQUEST_ACTION, Value::Integer(mib::dvsan_station_request_action::RELEASE)),
        (mib::DVSAN_STATION_REQUEST_UNIT_INDEX, Value::Gauge32(unit)),
        (mib::DVSAN_STATION_REQUEST_VOLUME_INDEX, Value::Gauge32(volume)),
    ];
    submit(session, columns).await?;
    println!("released {unit}/{volume}");
    Ok(())
}

/// `nbd://IP:PORT/EXPORT` → (address, export).
fn parse_uri(uri: &str) -> Result<(SocketAddr, String)> {
    let rest = uri.strip_prefix("nbd://").with_context(|| format!("{uri:?} is not an nbd:// URI"))?;
    let (authority, export) = rest.split_once('/').unwrap_or((rest, ""));
    let address = resolve_address(authority, 10809).with_context(|| format!("the NBD URI {uri:?}"))?;
    Ok((address, export.to_string()))
}

async fn attach(session: &Session, given: &str, tls_dir: Option<&Path>) -> Result<()> {
    let row = find(session, given).await?;
    if row.nbd_uri.is_empty() {
        bail!("{}/{} has no NBD export known to the station (its unit is not serving data)", row.unit, row.volume);
    }
    let (address, export) = parse_uri(&row.nbd_uri)?;
    let options = dvsan_nbd::ConnectOptions {
        local_addr: Some(session.host),
        timeout: Duration::from_secs(5),
        structured_replies: false,
    };
    let info = async {
        let mut handshake = dvsan_nbd::ClientHandshake::connect(address, &options).await?;
        let info = handshake.info(&export).await?;
        let _ = handshake.abort().await;
        Ok::<_, dvsan_nbd::ClientError>(info)
    }
    .await;
    let tls_required = matches!(&info, Err(e) if e.option_reply() == Some(dvsan_nbd::constants::REP_ERR_TLS_REQD));
    let head = format!("# {}/{} {:?}: export {export:?} at {address}", row.unit, row.volume, row.name);
    if tls_dir.is_none() && !tls_required {
        let info = info.with_context(|| format!("checking export {export:?} at {address} from {}", session.host))?;
        println!("{head}, {} bytes", info.size);
        println!("nbd-client {} {} -N {export} /dev/nbd0", address.ip(), address.port());
        println!("qemu-nbd --connect=/dev/nbd0 {}", row.nbd_uri);
        return Ok(());
    }
    // Over TLS: the plain check above cannot see the export (the unit requires TLS, or grants it to this host's
    // certificate identity only); the printed commands do the check themselves.
    let dir = match tls_dir {
        Some(dir) => {
            for file in ["ca-cert.pem", "client-cert.pem", "client-key.pem"] {
                if !dir.join(file).is_file() {
                    bail!("{} has no {file}: give the directory `dvsan-host enroll --out DIR` wrote", dir.display());
                }
            }
            dir.display().to_string()
        }
        None => {
            println!("# the unit requires TLS: DIR is the directory `dvsan-host enroll --out DIR` wrote (--tls-dir DIR fills it in)");
            "DIR".to_string()
        }
    };
    let (ip, port) = (address.ip(), address.port());
    let object = format!("tls-creds-x509,id=tls0,dir={dir},endpoint=client");
    let image = format!("driver=nbd,host={ip},port={port},export={export},tls-creds=tls0");
    println!("{head} over TLS (certificates in {dir})");
    println!("nbdinfo 'nbds://{address}/{export}?tls-certificates={dir}'");
    println!("qemu-img info --object {object} --image-opts {image}");
    println!("qemu-nbd --object {object} --image-opts {image} --connect=/dev/nbd0");
    println!(
        "nbd-client {ip} {port} -N {export} -cacertfile {dir}/ca-cert.pem -certfile {dir}/client-cert.pem \
         -keyfile {dir}/client-key.pem /dev/nbd0"
    );
    Ok(())
}

/// `enroll`: a key pair made here, a signing request for `identity` to the station's dvsanStationCertRequestTable,
/// and the certificate directory written from the answer.
async fn enroll(session: &Session, identity: &str, out: &Path) -> Result<()> {
    let write = session.write()?;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).context("making a key pair")?;
    let mut params = rcgen::CertificateParams::new(vec![identity.to_string()])
        .with_context(|| format!("{identity:?} cannot be a certificate's DNS name"))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, identity);
    let csr = params.serialize_request(&key).context("making the certificate signing request")?;
    let index = request_index();
    let column = |c: &[u32]| Oid::from_slice(c).child(index);
    let create = vec![
        VarBind::new(column(mib::DVSAN_STATION_CERT_REQUEST_CSR), Value::OctetString(csr.der().to_vec())),
        VarBind::new(
            column(mib::DVSAN_STATION_CERT_REQUEST_ROW_STATUS),
            Value::Integer(mib::row_status::CREATE_AND_GO),
        ),
    ];
    session
        .manager
        .set(write, create)
        .await
        .map_err(|e| session.station_error(true, e))
        .context("sending the certificate signing request to the station")?;
    let oids: Vec<Oid> = [
        mib::DVSAN_STATION_CERT_REQUEST_STATUS,
        mib::DVSAN_STATION_CERT_REQUEST_ERROR,
        mib::DVSAN_STATION_CERT_REQUEST_IDENTITY,
        mib::DVSAN_STATION_CERT_REQUEST_CERTIFICATE,
        mib::DVSAN_STATION_CERT_REQUEST_CA_CERTIFICATE,
    ]
    .iter()
    .map(|c| column(c))
    .collect();
    let row = session.manager.get(write, &oids).await.map_err(|e| session.station_error(true, e));
    let destroy =
        VarBind::new(column(mib::DVSAN_STATION_CERT_REQUEST_ROW_STATUS), Value::Integer(mib::row_status::DESTROY));
    let _ = session.manager.set(write, vec![destroy]).await;
    let values: Vec<Value> = row.context("reading the station's answer")?.into_iter().map(|vb| vb.value).collect();
    let get = |i: usize| values.get(i).map(text).unwrap_or_default();
    match values.first() {
        Some(Value::Integer(mib::dvsan_station_cert_request_status::ISSUED)) => {}
        Some(Value::Integer(mib::dvsan_station_cert_request_status::FAILED)) => {
            bail!("the station refused: {}", get(1))
        }
        _ => bail!("the station's certificate request table answered with unexpected values"),
    }
    let (certificate, ca_certificate) = (get(3), get(4));
    if !certificate.starts_with("-----BEGIN CERTIFICATE-----") || !ca_certificate.starts_with("-----BEGIN") {
        bail!("the station answered without a PEM certificate");
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    write_atomic(&out.join("client-key.pem"), &key.serialize_pem(), 0o600)?;
    write_atomic(&out.join("client-cert.pem"), &certificate, 0o644)?;
    write_atomic(&out.join("ca-cert.pem"), &ca_certificate, 0o644)?;
    println!(
        "enrolled as {}: {} holds ca-cert.pem, client-cert.pem and client-key.pem (mode 0600); \
         nbdinfo 'nbds://HOST:PORT/EXPORT?tls-certificates={}'",
        get(2),
        out.display(),
        out.display()
    );
    Ok(())
}

/// Writes `text` to `path` with `mode`: a temporary file beside it (created with the mode), synced, renamed over.
fn write_atomic(path: &Path, text: &str, mode: u32) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&temp);
    let result = (|| {
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&temp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result.with_context(|| format!("writing {}", path.display()))
}
