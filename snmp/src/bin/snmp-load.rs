//! dvsan-snmp-load: an SNMP load generator for benchmarking agents (ours and snmpd).
//!
//! Keeps a window of requests outstanding against one target for a fixed time and reports the
//! answered rate: GET requests/s by default, or GETBULK varbinds/s with `--bulk`. Prints one
//! JSON line (for scripts) and one human line. Requests that get no answer within `--timeout`
//! are counted as lost and replaced, so a lossy target lowers the rate instead of stalling.
//!
//! `--version 3 --users FILE --user NAME` sends SNMPv3 requests as that user of a users file (the
//! TOML format every dvsan component reads), at the level its keys give (authPriv with a privacy
//! protocol): the agent's engine is discovered once (RFC 3414 §4, plus one resynchronisation on a
//! notInTimeWindows Report), the keys are localised to it once, and then every request is encrypted
//! and signed, and every answer authenticated and decrypted, with the `dvsan_snmp::usm` codec, as a
//! real manager would. The JSON line carries the load generator's own CPU time, so a run can tell
//! whether the generator or the agent was the limit.

use std::collections::HashSet;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use dvsan_snmp::ber::BerWriter;
use dvsan_snmp::message::{decode, encode, encode_pdu, Message, Version};
use dvsan_snmp::pdu::{BulkPdu, ErrorStatus, GenericPdu, Pdu, VarBind};
use dvsan_snmp::usm::wire::{self, Head, Keys, ScopedData};
use dvsan_snmp::usm::{LocalUser, SecurityLevel, UsersFile};
use dvsan_snmp::{Oid, Value};

#[derive(Parser, Debug)]
#[command(name = "dvsan-snmp-load", about = "SNMP GET/GETBULK load generator")]
struct Args {
    /// Agent address, e.g. 127.0.0.1:161.
    #[arg(long)]
    target: SocketAddr,
    #[arg(long, default_value = "public")]
    community: String,
    /// Test length in seconds.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Requests kept outstanding (per thread).
    #[arg(long, default_value_t = 64)]
    window: usize,
    /// Sending threads, each with its own socket and window.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// OID fetched by GET mode.
    #[arg(long, default_value = "1.3.6.1.2.1.1.1.0")]
    oid: String,
    /// GETBULK mode: walk from this OID (non-repeaters 0) instead of GETs.
    #[arg(long)]
    bulk: Option<String>,
    /// max-repetitions in GETBULK mode.
    #[arg(long, default_value_t = 20)]
    max_reps: u32,
    /// SNMP version: 1, 2c or 3 (GETBULK needs 2c or 3; 3 needs --users and --user).
    #[arg(long, default_value = "2c")]
    version: String,
    /// SNMPv3: the users file (TOML, mode 0600) holding --user's passphrases.
    #[arg(long, value_name = "FILE")]
    users: Option<PathBuf>,
    /// SNMPv3: the user of --users to send as (at the level its keys give).
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// Milliseconds before an unanswered request counts as lost.
    #[arg(long, default_value_t = 500)]
    timeout: u64,
}

#[derive(Default, Clone, Copy)]
struct Tally {
    sent: u64,
    answered: u64,
    varbinds: u64,
    errors: u64,
    lost: u64,
}

struct Job {
    target: SocketAddr,
    community: Vec<u8>,
    version: Version,
    /// SNMPv3: the discovered engine and the keys localised to it.
    v3: Option<V3Session>,
    request: RequestKind,
    window: usize,
    timeout: Duration,
    until: Instant,
}

#[derive(Clone)]
enum RequestKind {
    Get(Oid),
    Bulk { from: Oid, max_reps: u32 },
}

/// What SNMPv3 requests need, found once before the load starts.
struct V3Session {
    user: LocalUser,
    level: SecurityLevel,
    engine_id: Vec<u8>,
    boots: u32,
    /// The agent's engine time at `synced`.
    time: u32,
    synced: Instant,
}

impl V3Session {
    fn head(&self, msg_id: i32) -> Head<'_> {
        Head {
            msg_id,
            max_size: 65507,
            reportable: true,
            engine_id: &self.engine_id,
            boots: self.boots,
            time: self.time.saturating_add(self.synced.elapsed().as_secs() as u32),
            user_name: self.user.name.as_bytes(),
            context_engine_id: &self.engine_id,
            context_name: b"",
        }
    }

    /// A request whose msgID and request-id are both `id`: encrypted and signed at the session's level.
    fn encode(&self, id: i32, pdu: &Pdu, tlv: &mut Vec<u8>, out: &mut Vec<u8>) -> Result<()> {
        tlv.clear();
        out.clear();
        encode_pdu(&mut BerWriter::new(tlv), pdu);
        wire::encode_v3(&self.head(id), Keys::of(&self.user, self.level).as_ref(), tlv, out)
            .context("securing an SNMPv3 request")
    }

    /// The msgID and PDU of an answer from the agent, authenticated and decrypted with the session's
    /// keys (`None`: undecodable, or a wrong digest or decryption).
    fn open(&self, datagram: &[u8]) -> Option<(i32, Pdu, u32, u32)> {
        let msg = wire::decode_v3(datagram).ok()?;
        let level = msg.level()?;
        if level != SecurityLevel::NoAuthNoPriv && !msg.authenticates(datagram, &self.user) {
            return None;
        }
        let pdu = match &msg.data {
            ScopedData::Plain(s) => s.pdu.clone(),
            ScopedData::Encrypted(_) => msg.decrypt_scoped_pdu(&self.user).ok()?.pdu,
        };
        Some((msg.global.msg_id, pdu, msg.usm.boots, msg.usm.time))
    }
}

/// RFC 3414 §4 discovery of the agent's engine, the keys localised to it, and one authenticated request
/// to learn (or confirm) its boots and time: a signed notInTimeWindows Report carries them.
fn start_v3(target: SocketAddr, users: &std::path::Path, name: &str, probe: &Pdu) -> Result<V3Session> {
    let user = UsersFile::load_user(users, name).context("reading the SNMPv3 user")?;
    let socket = UdpSocket::bind("127.0.0.1:0").or_else(|_| UdpSocket::bind("0.0.0.0:0")).context("binding")?;
    socket.connect(target).context("connecting")?;
    socket.set_read_timeout(Some(Duration::from_secs(2))).context("setting the read timeout")?;
    let mut buf = vec![0u8; 65536];
    socket.send(&wire::encode_discovery_probe(1, 65507)?)?;
    let len = socket.recv(&mut buf).context("no answer to the SNMPv3 discovery probe")?;
    let report = wire::decode_v3(&buf[..len]).context("the discovery answer is no SNMPv3 message")?;
    if report.usm.engine_id.is_empty() {
        bail!("the discovery answer names no engine ID");
    }
    let mut session = V3Session {
        user: user.localize(&dvsan_snmp::usm::EngineId::new(report.usm.engine_id.clone())?),
        level: user.level(),
        engine_id: report.usm.engine_id,
        boots: report.usm.boots,
        time: report.usm.time,
        synced: Instant::now(),
    };
    for attempt in 0..2 {
        let (mut tlv, mut out) = (Vec::new(), Vec::new());
        session.encode(2 + attempt, &with_id(probe, 2 + attempt), &mut tlv, &mut out)?;
        socket.send(&out)?;
        let len = socket.recv(&mut buf).context("no answer to the first SNMPv3 request")?;
        let Some((_, pdu, boots, time)) = session.open(&buf[..len]) else {
            bail!("the first SNMPv3 answer does not authenticate or decrypt (wrong passphrases?)");
        };
        match pdu {
            Pdu::Response(_) => return Ok(session),
            Pdu::Report(r) if attempt == 0 && reports(&r, &NOT_IN_TIME_WINDOWS) => {
                eprintln!("SNMPv3: usmStatsNotInTimeWindows; resynchronising the engine time");
                (session.boots, session.time, session.synced) = (boots, time, Instant::now());
            }
            Pdu::Report(r) => {
                let what = r.varbinds.first().map_or_else(|| "nothing".to_string(), |vb| vb.oid.to_string());
                bail!("SNMPv3 request refused with a Report of {what} (usmStats: 3 unknown user, 5 wrong digest, 6 decryption error)")
            }
            other => bail!("unexpected answer to the first SNMPv3 request: {other:?}"),
        }
    }
    bail!("SNMPv3 requests still refused after resynchronising the engine time")
}

/// usmStatsNotInTimeWindows.0 (RFC 3414): the one Report that a resynchronisation answers.
const NOT_IN_TIME_WINDOWS: [u32; 11] = [1, 3, 6, 1, 6, 3, 15, 1, 1, 2, 0];

/// Whether `report` names the counter `oid`.
fn reports(report: &GenericPdu, oid: &[u32]) -> bool {
    report.varbinds.first().is_some_and(|vb| vb.oid == Oid::from_slice(oid))
}

fn with_id(pdu: &Pdu, id: i32) -> Pdu {
    let mut pdu = pdu.clone();
    match &mut pdu {
        Pdu::Get(p) => p.request_id = id,
        Pdu::GetBulk(p) => p.request_id = id,
        _ => {}
    }
    pdu
}

impl Job {
    fn pdu(&self, request_id: i32) -> Pdu {
        match &self.request {
            RequestKind::Get(oid) => Pdu::Get(GenericPdu::request(request_id, vec![VarBind::null(oid.clone())])),
            RequestKind::Bulk { from, max_reps } => Pdu::GetBulk(BulkPdu {
                request_id,
                non_repeaters: 0,
                max_repetitions: *max_reps,
                varbinds: vec![VarBind::null(from.clone())],
            }),
        }
    }

    fn datagram(&self, request_id: i32) -> Vec<u8> {
        encode(&Message { version: self.version, community: self.community.clone(), pdu: self.pdu(request_id) })
    }
}

fn run_thread(job: &Job, thread: usize) -> Result<Tally> {
    let socket =
        UdpSocket::bind("127.0.0.1:0").or_else(|_| UdpSocket::bind("0.0.0.0:0")).context("binding the load socket")?;
    socket.connect(job.target).context("connecting the load socket")?;
    socket.set_read_timeout(Some(job.timeout)).context("setting the read timeout")?;
    let mut tally = Tally::default();
    let mut outstanding: HashSet<i32> = HashSet::with_capacity(job.window * 2);
    // Distinct id ranges per thread keep the ids easy to tell apart in captures.
    let mut next_id: i32 = (thread as i32 + 1) << 24;
    let mut buf = vec![0u8; 65536];
    let (mut tlv, mut v3_out) = (Vec::with_capacity(128), Vec::with_capacity(256));
    let mut last_answer = Instant::now();
    while Instant::now() < job.until {
        while outstanding.len() < job.window {
            next_id = next_id.wrapping_add(1) & 0x7FFF_FFFF;
            match &job.v3 {
                Some(v3) => {
                    v3.encode(next_id, &job.pdu(next_id), &mut tlv, &mut v3_out)?;
                    socket.send(&v3_out).context("sending a request")?;
                }
                None => {
                    socket.send(&job.datagram(next_id)).context("sending a request")?;
                }
            }
            outstanding.insert(next_id);
            tally.sent += 1;
        }
        match socket.recv(&mut buf) {
            Ok(len) => {
                let answer = match &job.v3 {
                    Some(v3) => match v3.open(&buf[..len]) {
                        Some((msg_id, Pdu::Response(p), ..)) if p.request_id == msg_id => Some(p),
                        _ => None,
                    },
                    None => match decode(&buf[..len]) {
                        Ok(Message { pdu: Pdu::Response(p), .. }) => Some(p),
                        _ => None,
                    },
                };
                let Some(p) = answer else {
                    tally.errors += 1;
                    continue;
                };
                if !outstanding.remove(&p.request_id) {
                    continue; // a late answer to a request already counted as lost
                }
                last_answer = Instant::now();
                if p.error_status != ErrorStatus::NoError {
                    tally.errors += 1;
                    continue;
                }
                tally.answered += 1;
                tally.varbinds +=
                    p.varbinds.iter().filter(|vb| !vb.value.is_exception() && vb.value != Value::Null).count() as u64;
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                // Nothing for a whole timeout: everything in flight is lost.
                tally.lost += outstanding.len() as u64;
                outstanding.clear();
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                tally.lost += outstanding.len() as u64;
                outstanding.clear();
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e).context("receiving a response"),
        }
        if last_answer.elapsed() > job.timeout && !outstanding.is_empty() {
            tally.lost += outstanding.len() as u64;
            outstanding.clear();
            last_answer = Instant::now();
        }
    }
    Ok(tally)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let version = match args.version.as_str() {
        "1" => Version::V1,
        "2c" | "2" | "3" => Version::V2c,
        other => bail!("unsupported --version {other:?} (use 1, 2c or 3)"),
    };
    let request = match &args.bulk {
        Some(from) => {
            if version == Version::V1 {
                bail!("--bulk needs --version 2c");
            }
            RequestKind::Bulk {
                from: from.parse().with_context(|| format!("bad --bulk OID {from:?}"))?,
                max_reps: args.max_reps,
            }
        }
        None => RequestKind::Get(args.oid.parse().with_context(|| format!("bad --oid {:?}", args.oid))?),
    };
    if !(args.duration > 0.0 && args.duration.is_finite()) {
        bail!("--duration must be positive");
    }
    if args.window == 0 || args.threads == 0 {
        bail!("--window and --threads must be at least 1");
    }
    let v3 = match (args.version.as_str(), &args.users, &args.user) {
        ("3", Some(users), Some(user)) => {
            let probe = match &request {
                RequestKind::Get(oid) => Pdu::Get(GenericPdu::request(0, vec![VarBind::null(oid.clone())])),
                RequestKind::Bulk { from, .. } => Pdu::Get(GenericPdu::request(0, vec![VarBind::null(from.clone())])),
            };
            Some(start_v3(args.target, users, user, &probe)?)
        }
        ("3", _, _) => bail!("--version 3 needs --users FILE and --user NAME"),
        (_, None, None) => None,
        _ => bail!("--users and --user go with --version 3"),
    };
    let cpu_before = own_cpu_seconds();
    let started = Instant::now();
    let job = Job {
        target: args.target,
        community: args.community.as_bytes().to_vec(),
        version,
        v3,
        request,
        window: args.window,
        timeout: Duration::from_millis(args.timeout.max(1)),
        until: started + Duration::from_secs_f64(args.duration),
    };
    let results: Vec<Result<Tally>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..args.threads)
            .map(|t| {
                let job = &job;
                s.spawn(move || run_thread(job, t))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("load thread panicked")))).collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = own_cpu_seconds().zip(cpu_before).map(|(after, before)| after - before);
    let mut total = Tally::default();
    for r in results {
        let t = r?;
        total.sent += t.sent;
        total.answered += t.answered;
        total.varbinds += t.varbinds;
        total.errors += t.errors;
        total.lost += t.lost;
    }
    let mode = if args.bulk.is_some() { "bulk" } else { "get" };
    let rate = total.answered as f64 / elapsed;
    let vb_rate = total.varbinds as f64 / elapsed;
    let json = serde_json::json!({
        "mode": mode,
        "target": args.target.to_string(),
        "version": args.version,
        "window": args.window,
        "threads": args.threads,
        "max_reps": if args.bulk.is_some() { Some(args.max_reps) } else { None },
        "duration_s": elapsed,
        "sent": total.sent,
        "answered": total.answered,
        "errors": total.errors,
        "lost": total.lost,
        "requests_per_s": rate,
        "varbinds_per_s": vb_rate,
        "level": job.v3.as_ref().map(|v| v.level.name()),
        // The load generator's own CPU time during the run (user + system, all threads): near
        // `duration_s` x threads means the generator, not the agent, was the limit.
        "cpu_s": cpu,
    });
    println!("{json}");
    match mode {
        "bulk" => println!(
            "{}: {:.0} GETBULK varbinds/s ({:.0} responses/s, {} lost, {} errors) over {:.1}s",
            args.target, vb_rate, rate, total.lost, total.errors, elapsed
        ),
        _ => println!(
            "{}: {:.0} GET/s answered ({} lost, {} errors) over {:.1}s, window {}x{}",
            args.target, rate, total.lost, total.errors, elapsed, args.window, args.threads
        ),
    }
    if total.answered == 0 {
        bail!("no request was answered");
    }
    Ok(())
}

/// This process's CPU time so far (user + system, seconds) from /proc/self/stat; `None` elsewhere.
fn own_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may contain spaces) start at its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after "pid (comm)".
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux ABI Rust targets.
    Some(ticks as f64 / 100.0)
}
