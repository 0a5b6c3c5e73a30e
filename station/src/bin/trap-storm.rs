//! `dvsan-trap-storm`: sends SNMPv2c traps at a fixed rate, for the station's ingestion benchmark
//! (`scripts/bench-traps`) and for trying a station or any other receiver by hand.
//!
//! Each trap is an enterprise-specific notification carrying a sequence number, so a receiver's log or store can
//! be checked for completeness. Sending is paced in 1 ms slices from one socket; the summary (JSON on stdout)
//! says how many were sent and at what rate the sender really managed.

use anyhow::{bail, Context, Result};
use clap::Parser;
use dvsan_snmp::notify::notification_varbinds;
use dvsan_snmp::{encode, GenericPdu, Message, Oid, Pdu, Value, VarBind, Version};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// The storm's notification (under the documentation enterprise arc, outside both dvsan modules).
const STORM_TRAP: &[u32] = &[1, 3, 6, 1, 4, 1, 32473, 99, 0, 9];
const STORM_SEQ: &[u32] = &[1, 3, 6, 1, 4, 1, 32473, 99, 1, 0];

#[derive(Debug, Parser)]
#[command(name = "dvsan-trap-storm", about = "Send SNMPv2c traps at a fixed rate")]
struct Args {
    /// Receiver, IP:PORT.
    #[arg(long)]
    target: SocketAddr,
    /// Traps per second.
    #[arg(long)]
    rate: u64,
    /// How long to send (e.g. 10s).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Local address to send from.
    #[arg(long, default_value = "127.0.0.1:0")]
    bind: SocketAddr,
    #[arg(long, default_value = "public")]
    community: String,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.rate == 0 {
        bail!("--rate must be positive");
    }
    let socket = UdpSocket::bind(args.bind).with_context(|| format!("binding {}", args.bind))?;
    let trap_oid = Oid::from_slice(STORM_TRAP);
    let total = (args.rate as f64 * args.duration.as_secs_f64()).round() as u64;
    let start = Instant::now();
    let mut sent: u64 = 0;
    let mut send_errors: u64 = 0;
    while sent < total {
        // Everything due by now, in one go; then wait for the next millisecond.
        let due = ((start.elapsed().as_secs_f64() * args.rate as f64) as u64).min(total);
        while sent < due {
            let uptime = (start.elapsed().as_millis() / 10) as u32;
            let varbinds = vec![VarBind::new(Oid::from_slice(STORM_SEQ), Value::Gauge32(sent as u32))];
            let message = Message {
                version: Version::V2c,
                community: args.community.as_bytes().to_vec(),
                pdu: Pdu::TrapV2(GenericPdu::request(
                    (sent % i32::MAX as u64) as i32,
                    notification_varbinds(uptime, &trap_oid, varbinds),
                )),
            };
            if socket.send_to(&encode(&message), args.target).is_err() {
                send_errors += 1;
            }
            sent += 1;
        }
        let next = Duration::from_secs_f64((sent + 1) as f64 / args.rate as f64);
        if let Some(wait) = next.checked_sub(start.elapsed()) {
            std::thread::sleep(wait.min(Duration::from_millis(1)));
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "sent": sent,
            "send_errors": send_errors,
            "seconds": elapsed,
            "rate": sent as f64 / elapsed,
            "requested_rate": args.rate,
        })
    );
    Ok(())
}
