//! Fuzz the agent's request processing end to end (decode, community check, GET/GETNEXT/GETBULK/SET over the
//! built-in groups and a small table): never panic, and a response always fits the agent's size limit.
#![no_main]
use dvsan_snmp::agent::{Community, Table, TableHandler};
use dvsan_snmp::{Agent, AgentConfig, Value};
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};

struct Rows;

impl Table for Rows {
    fn entry(&self) -> &'static [u32] {
        &[1, 3, 6, 1, 4, 1, 32473, 99, 1]
    }
    fn columns(&self) -> &'static [u32] {
        &[2, 3]
    }
    fn rows(&self) -> Vec<Vec<u32>> {
        (1..=20).map(|i| vec![i]).collect()
    }
    fn cell(&self, column: u32, index: &[u32]) -> Option<Value> {
        match index {
            [i] if (1..=20).contains(i) => {
                Some(if column == 2 { Value::Counter64(u64::from(*i)) } else { Value::string("row") })
            }
            _ => None,
        }
    }
}

fn agent() -> &'static Agent {
    static AGENT: OnceLock<Agent> = OnceLock::new();
    AGENT.get_or_init(|| {
        let config = AgentConfig {
            communities: vec![Community::read_only("public"), Community::read_write("private")],
            ..AgentConfig::default()
        };
        let table = TableHandler::new(Rows);
        Agent::builder(config).handler(table.prefix(), Arc::new(table)).build().expect("agent builds")
    })
}

fuzz_target!(|data: &[u8]| {
    let agent = agent();
    if let Some(response) = agent.process(data, "127.0.0.1:161".parse().expect("address")) {
        assert!(response.len() <= agent.config().max_message_size);
    }
});
