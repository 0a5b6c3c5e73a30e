//! `dvsan-agent`: one process per SAN unit.
//!
//! `run` opens (or creates) the unit's state directory, attaches its media, serves DVSAN-MIB, IF-MIB's data
//! interface and SNMPv2-MIB over SNMP v1/v2c and, with `--users`, SNMPv3, and announces the unit with notifications
//! (see [`notifications`]). The other subcommands ([`admin`]) change the layout offline; `init` creates the unit
//! before its first `run`, to print its unit id for enrolment at the station. Graceful shutdown on SIGTERM/SIGINT:
//! a dvsanUnitShutdown and a linkDown go out, then the process exits 0.

mod admin;
mod clearing;
mod cli;
mod media;
mod mib;
mod notifications;
mod run;
mod unit;

use clap::Parser;
use cli::{Cli, Command};

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => args.resolve().and_then(run::run),
        Command::Init { state, name, block_size } => admin::init(&state, name, block_size),
        Command::Volume(cmd) => admin::volume(cmd),
        Command::Partition(cmd) => admin::partition(cmd),
        Command::Access(cmd) => admin::access(cmd),
        Command::Show { state, json } => admin::show_state(&state, json),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dvsan-agent: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
