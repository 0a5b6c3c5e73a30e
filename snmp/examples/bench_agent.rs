//! A minimal engine agent (system and snmp groups only) for benchmarking and manual tests:
//! `cargo run --release -p dvsan-snmp --example bench_agent -- 127.0.0.1:16100 [workers]`.

use std::sync::Arc;

use dvsan_snmp::agent::{Agent, AgentConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:16100".to_string());
    let mut config = AgentConfig::default();
    if let Some(workers) = args.next() {
        config.workers = workers.parse()?;
    }
    config.system.descr = "dvsan-snmp bench agent".to_string();
    let agent = Arc::new(Agent::builder(config).build()?);
    let socket = tokio::net::UdpSocket::bind(&addr).await?;
    eprintln!("serving on {}", socket.local_addr()?);
    agent
        .serve(socket, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    Ok(())
}
