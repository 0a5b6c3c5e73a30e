//! dvsan management station.
//!
//! Placeholder: the station (trap receiver, pool store, poller, station MIB and NMS forwarding) is issue 3.
//! It builds so the workspace layout is complete, and says so when run.

fn main() {
    eprintln!("dvsan-station: not built yet (issue 3: trap-driven pool in SQLite)");
    std::process::exit(2);
}
