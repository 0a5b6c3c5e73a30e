//! dvsan-snmp-load: an SNMP load generator for benchmarking agents (ours and snmpd).
//!
//! Keeps a window of requests outstanding against one target for a fixed time and reports the
//! answered rate: GET requests/s by default, or GETBULK varbinds/s with `--bulk`. Prints one
//! JSON line (for scripts) and one human line. Requests that get no answer within `--timeout`
//! are counted as lost and replaced, so a lossy target lowers the rate instead of stalling.

use std::collections::HashSet;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use dvsan_snmp::message::{decode, encode, Message, Version};
use dvsan_snmp::pdu::{BulkPdu, ErrorStatus, GenericPdu, Pdu, VarBind};
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
    /// SNMP version: 1 or 2c (GETBULK needs 2c).
    #[arg(long, default_value = "2c")]
    version: String,
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

impl Job {
    fn datagram(&self, request_id: i32) -> Vec<u8> {
        let pdu = match &self.request {
            RequestKind::Get(oid) => Pdu::Get(GenericPdu::request(request_id, vec![VarBind::null(oid.clone())])),
            RequestKind::Bulk { from, max_reps } => Pdu::GetBulk(BulkPdu {
                request_id,
                non_repeaters: 0,
                max_repetitions: *max_reps,
                varbinds: vec![VarBind::null(from.clone())],
            }),
        };
        encode(&Message { version: self.version, community: self.community.clone(), pdu })
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
    let mut last_answer = Instant::now();
    while Instant::now() < job.until {
        while outstanding.len() < job.window {
            next_id = next_id.wrapping_add(1) & 0x7FFF_FFFF;
            socket.send(&job.datagram(next_id)).context("sending a request")?;
            outstanding.insert(next_id);
            tally.sent += 1;
        }
        match socket.recv(&mut buf) {
            Ok(len) => {
                let Ok(Message { pdu: Pdu::Response(p), .. }) = decode(&buf[..len]) else {
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
        "2c" | "2" => Version::V2c,
        other => bail!("unsupported --version {other:?} (use 1 or 2c)"),
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
    let started = Instant::now();
    let job = Job {
        target: args.target,
        community: args.community.as_bytes().to_vec(),
        version,
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
