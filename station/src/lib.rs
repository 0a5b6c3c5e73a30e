//! dvsan's management station: learns SAN units from their SNMP notifications and keeps the storage pool in SQLite.
//!
//! # Module map
//!
//! Bottom-up; a module imports only from modules listed before it (`tests/tests/module_layers.rs` checks that the
//! import graph has no cycle).
//!
//! 1. Values, formats and parsing, importing nothing above them: [`timefmt`], [`counters`], [`set_values`] (SET
//!    varbind checks), [`principal`] (who asks over SNMP, and the admins), [`fair_queue`], [`trap_log`], [`trust`] (whether the station trusts a unit: pool,
//!    follow, pending or refuse, a pure decision), [`credentials`] (enrolled units' SNMPv3 users,
//!    `unit-users.toml`), [`ca`] (the station's CA for NBD over TLS: certificates for units' blockd and for hosts),
//!    [`unit_access`] (the SNMP target of a unit: its enrolled v3 user, else the
//!    communities), [`crl_push`] (the CA's certificate revocation list set on a unit's agent), [`model`] (the pool as plain values), [`task_model`] (a task
//!    and its arguments as plain values), [`notification`] (received notifications as records), [`view`] (the
//!    CLI's text views), [`routes`] (`routes solve`: the routing-map optimizer run on a file), [`walk`] (reading one unit over SNMP into a snapshot) and [`forward`] (sending
//!    notifications on to upstream NMSs).
//! 2. The store: [`store`], the pool, the notifications and the tasks in SQLite.
//! 3. Domain operations: [`announce`] (how operations report the changes they make, without knowing the
//!    notifications), [`allocate`] (changes to units by SNMP SET under the pool and unit locks: volumes for hosts,
//!    volumes and partitions, rescans, adding and removing units), [`mirror`] (mirrored volumes: replicas placed on
//!    distinct units and zones, made or undone together), [`operation`] (everything an operator can do to
//!    the pool, one execution path for the CLI and the tasks) and [`tasks`] (the task runner: operations run by
//!    the station, concurrently per unit, persisted in the store).
//! 4. MIB views and protocol front-ends: [`station_mib`] (DVSAN-STATION-MIB served by the station's own agent,
//!    and its notifications, which is what the daemon's announcer sends), [`task_table`] (the tasks over SNMP),
//!    [`request_table`] (hosts' storage requests over SNMP, served by a worker),
//!    [`cert_table`] (hosts' certificate signing requests to the station's CA, for their SNMPv3 user's identity),
//!    [`front_table`] (what hosts' fronts report about the replicas of their mirrored volumes, and their heartbeats), [`notification_log`]
//!    (NOTIFICATION-LOG-MIB over the stored notifications), [`ingest`] (receive notifications, queue them fairly
//!    per source, store them in batches, acknowledge informs after commit) and [`coordinator`] (reacts to
//!    notifications and polls; walks units and syncs them into the store).
//! 5. [`station`]: the hub, `dvsan-station run`, wiring everything below together.
//! 6. `main.rs`: the command line (the one-shot subcommands use the store and the operations directly).
//!
//! # The store and threads
//!
//! [`store::StationStore`] is a synchronous SQLite connection, so no part of the running station that uses it
//! runs on the runtime's async workers: each part opens its connections once and uses them on a thread of its
//! own. The notification writer ([`ingest`]) and the storage-request worker ([`request_table`]) are plain
//! threads; the coordinator, the task dispatcher and each running task run on blocking-pool threads that drive
//! their async code with `Handle::block_on`, so their store calls block only themselves while the walks and SNMP
//! requests they start run on the runtime; the station's own agent serves on a thread with a single-threaded
//! runtime of its own, where its MIB views and tables read and write. This fits the code as it is (the
//! allocator's async steps interleave SNMP requests with store calls over one `&mut StationStore`), where a store
//! actor or `spawn_blocking` per call would have split every step. The CLI's one-shot subcommands use the store
//! directly.

pub mod allocate;
pub mod announce;
pub mod ca;
pub mod cert_table;
pub mod coordinator;
pub mod counters;
pub mod credentials;
pub mod crl_push;
pub mod fair_queue;
pub mod forward;
pub mod front_table;
pub mod ingest;
pub mod mirror;
pub mod model;
pub mod notification;
pub mod notification_log;
pub mod operation;
pub mod principal;
pub mod request_table;
pub mod routes;
pub mod set_values;
pub mod station;
pub mod station_mib;
pub mod store;
pub mod task_model;
pub mod task_table;
pub mod tasks;
pub mod timefmt;
pub mod trap_log;
pub mod trust;
pub mod unit_access;
pub mod view;
pub mod walk;
