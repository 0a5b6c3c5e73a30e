//! Fixtures of this crate's tests only: small MIB handlers, an in-process agent factory, and net-snmp tools run
//! beside that agent. Processes, ports and net-snmp peers come from `dvsan-tests`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Output;
use std::sync::{Arc, Mutex};

use dvsan_snmp::agent::{
    next_key, Agent, AgentConfig, Community, FnPreparedSet, GetResult, MibHandler, PreparedSet, SetFailure, SetItem,
    TableLayout, UndoFailed, UsmConfig,
};
use dvsan_snmp::usm::{AuthProtocol, PrivProtocol, UserAccess, UsmUser};
use dvsan_snmp::{ErrorStatus, Oid, Value, VarBind};

/// Test enterprise subtree: 1.3.6.1.4.1.32473.99
pub const TEST_ROOT: [u32; 8] = [1, 3, 6, 1, 4, 1, 32473, 99];

pub fn oid(s: &str) -> Oid {
    s.parse().unwrap()
}

/// A table `TEST_ROOT.1.1` with columns 2 (INTEGER, read-write), 3 (OCTET STRING, read-only)
/// and 4 (Counter64, read-only), rows indexed 1, 2, 3.
pub struct TestTable {
    layout: TableLayout,
    rows: Arc<Mutex<BTreeMap<Oid, i32>>>,
}

impl TestTable {
    pub fn prefix() -> Oid {
        Oid::from_slice(&TEST_ROOT).child(1)
    }

    pub fn new() -> TestTable {
        let mut rows = BTreeMap::new();
        for i in 1..=3u32 {
            rows.insert(Oid::from_slice(&[i]), i as i32 * 10);
        }
        TestTable { layout: TableLayout::new(Self::prefix().child(1), &[2, 3, 4]), rows: Arc::new(Mutex::new(rows)) }
    }

    pub fn value_of(&self, row: u32) -> Option<i32> {
        self.rows.lock().unwrap().get(&Oid::from_slice(&[row])).copied()
    }

    fn cell(column: u32, index: &[u32], v: i32) -> Value {
        match column {
            2 => Value::Integer(v),
            3 => Value::string(&format!("row{}", index[0])),
            _ => Value::Counter64(u64::from(index[0]) << 40),
        }
    }
}

impl MibHandler for TestTable {
    fn get(&self, oid: &Oid) -> GetResult {
        match self.layout.lookup(oid) {
            Ok((column, index)) => match self.rows.lock().unwrap().get(&Oid::from_slice(index)) {
                Some(v) => GetResult::Value(Self::cell(column, index, *v)),
                None => GetResult::NoSuchInstance,
            },
            Err(e) => e,
        }
    }

    fn get_next(&self, oid: &Oid) -> Option<VarBind> {
        let rows = self.rows.lock().unwrap();
        let (column, index) = self.layout.next(oid, |_, after| next_key(&rows, after).cloned())?;
        let v = rows[&index];
        Some(VarBind::new(self.layout.instance(column, index.as_slice()), Self::cell(column, index.as_slice(), v)))
    }

    fn prepare_set(&self, varbinds: &[SetItem<'_>]) -> Result<Box<dyn PreparedSet>, SetFailure> {
        let mut changes = Vec::new();
        for &(i, vb) in varbinds {
            let (column, index) =
                self.layout.lookup(&vb.oid).map_err(|_| SetFailure::new(i, ErrorStatus::NoCreation))?;
            if column != 2 {
                return Err(SetFailure::new(i, ErrorStatus::NotWritable));
            }
            let key = Oid::from_slice(index);
            if !self.rows.lock().unwrap().contains_key(&key) {
                return Err(SetFailure::new(i, ErrorStatus::NoCreation));
            }
            let Value::Integer(v) = vb.value else {
                return Err(SetFailure::new(i, ErrorStatus::WrongType));
            };
            if v < 0 {
                return Err(SetFailure::new(i, ErrorStatus::WrongValue));
            }
            changes.push((key, v));
        }
        let rows = Arc::clone(&self.rows);
        Ok(Box::new(FnPreparedSet(move || {
            let mut r = rows.lock().unwrap();
            let old: Vec<(Oid, i32)> = changes
                .into_iter()
                .map(|(k, v)| {
                    let prev = r.insert(k.clone(), v).unwrap_or(0);
                    (k, prev)
                })
                .collect();
            drop(r);
            Ok(move || -> Result<(), UndoFailed> {
                let mut r = rows.lock().unwrap();
                for (k, v) in old.into_iter().rev() {
                    r.insert(k, v);
                }
                Ok(())
            })
        })))
    }
}

/// How a [`Faulty`] handler misbehaves in SETs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Fault {
    PrepareFails,
    CommitFails,
    None,
}

/// A writable INTEGER scalar `prefix.1.0` whose SETs fail as configured; `undo_fails` makes
/// its undo fail after a successful commit.
pub struct Faulty {
    pub prefix: Oid,
    pub fault: Fault,
    pub value: Arc<Mutex<i32>>,
    pub undo_fails: bool,
}

impl Faulty {
    /// A handler at `TEST_ROOT.arc`.
    pub fn new(arc: u32, fault: Fault, undo_fails: bool) -> Faulty {
        Faulty { prefix: Oid::from_slice(&TEST_ROOT).child(arc), fault, value: Arc::new(Mutex::new(0)), undo_fails }
    }
    pub fn instance(&self) -> Oid {
        self.prefix.join(&[1, 0])
    }
}

impl MibHandler for Faulty {
    fn get(&self, oid: &Oid) -> GetResult {
        if *oid == self.instance() {
            GetResult::Value(Value::Integer(*self.value.lock().unwrap()))
        } else {
            GetResult::NoSuchObject
        }
    }

    fn get_next(&self, oid: &Oid) -> Option<VarBind> {
        (*oid < self.instance()).then(|| VarBind::new(self.instance(), Value::Integer(*self.value.lock().unwrap())))
    }

    fn prepare_set(&self, varbinds: &[SetItem<'_>]) -> Result<Box<dyn PreparedSet>, SetFailure> {
        let (i, vb) = varbinds[0];
        if self.fault == Fault::PrepareFails {
            return Err(SetFailure::new(i, ErrorStatus::InconsistentValue));
        }
        let Value::Integer(v) = vb.value else {
            return Err(SetFailure::new(i, ErrorStatus::WrongType));
        };
        let fault = self.fault;
        let undo_fails = self.undo_fails;
        let cell = Arc::clone(&self.value);
        Ok(Box::new(FnPreparedSet(move || {
            if fault == Fault::CommitFails {
                return Err(SetFailure::new(i, ErrorStatus::CommitFailed));
            }
            let old = std::mem::replace(&mut *cell.lock().unwrap(), v);
            Ok(move || -> Result<(), UndoFailed> {
                if undo_fails {
                    return Err(UndoFailed);
                }
                *cell.lock().unwrap() = old;
                Ok(())
            })
        })))
    }
}

/// An agent with the test table and the given extra handlers; communities `public` (read)
/// and `private` (write).
pub fn test_agent(max_message_size: usize, faulty: Vec<Arc<Faulty>>) -> (Arc<Agent>, Arc<TestTable>) {
    test_agent_full(max_message_size, faulty, None)
}

/// The test agent with only the `public` community (no write community) and SNMPv3 as given.
pub fn test_agent_with(usm: Option<UsmConfig>) -> (Arc<Agent>, Arc<TestTable>) {
    let table = Arc::new(TestTable::new());
    let mut config =
        AgentConfig { communities: vec![Community::read_only("public")], workers: 2, usm, ..AgentConfig::default() };
    config.system.descr = "dvsan-snmp test agent".into();
    config.system.name = "testhost".into();
    (Arc::new(Agent::builder(config).handler(TestTable::prefix(), table.clone()).build().unwrap()), table)
}

fn test_agent_full(
    max_message_size: usize,
    faulty: Vec<Arc<Faulty>>,
    usm: Option<UsmConfig>,
) -> (Arc<Agent>, Arc<TestTable>) {
    let table = Arc::new(TestTable::new());
    let mut config = AgentConfig {
        communities: vec![Community::read_only("public"), Community::read_write("private")],
        max_message_size,
        workers: 2,
        usm,
        ..AgentConfig::default()
    };
    config.system.descr = "dvsan-snmp test agent".into();
    config.system.name = "testhost".into();
    let mut builder = Agent::builder(config).handler(TestTable::prefix(), table.clone());
    for f in faulty {
        builder = builder.handler(f.prefix.clone(), f);
    }
    (Arc::new(builder.build().unwrap()), table)
}

/// Starts `agent` on a fresh 127.0.0.1 port inside the current runtime; returns the address
/// and a shutdown sender.
pub async fn spawn_agent(agent: Arc<Agent>) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(agent.serve(socket, async move {
        let _ = rx.await;
    }));
    (addr, tx)
}

/// [`dvsan_tests::run_net_snmp`] on a blocking thread, so the in-process agent keeps running meanwhile.
pub async fn tool(tool_name: &str, args: &[&str]) -> Output {
    let tool_name = tool_name.to_string();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        dvsan_tests::run_net_snmp(&tool_name, &refs)
    })
    .await
    .unwrap()
}

/// The v3 tests' users: `admin` (SHA-256/AES, read-write), `monitor` (SHA-512/AES, read-only) and `legacy`
/// (SHA, authNoPriv, read-only).
pub fn v3_users() -> Vec<UsmUser> {
    vec![
        v3_admin(),
        UsmUser::new(
            "monitor",
            AuthProtocol::HmacSha512,
            "monitor-auth-pass",
            Some((PrivProtocol::Aes128Cfb, "monitor-priv-pass")),
            UserAccess::ReadOnly,
        )
        .unwrap(),
        UsmUser::new("legacy", AuthProtocol::HmacSha96, "legacy-auth-pass", None, UserAccess::ReadOnly).unwrap(),
    ]
}

/// The v3 tests' `admin` user: SHA-256/AES, read-write.
pub fn v3_admin() -> UsmUser {
    UsmUser::new(
        "admin",
        AuthProtocol::HmacSha256,
        "admin-auth-pass",
        Some((PrivProtocol::Aes128Cfb, "admin-priv-pass")),
        UserAccess::ReadWrite,
    )
    .unwrap()
}
