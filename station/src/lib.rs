//! dvsan's management station: learns SAN units from their SNMP notifications and keeps the storage pool in SQLite.
//!
//! - [`station`]: `dvsan-station run`, wiring everything below together.
//! - [`ingest`] (+ [`fair_queue`]): receive notifications, queue them fairly per source, store them in batches,
//!   acknowledge informs after commit, write [`trap_log`], hand summaries to the coordinator.
//! - [`coordinator`]: reacts to notifications and polls; walks units ([`walk`]) and syncs them into the [`store`].
//! - [`forward`]: sends received and own notifications on to upstream NMSs.
//! - [`station_mib`]: DVSAN-STATION-MIB served by the station's own agent, and its notifications.
//! - [`allocate`]: changes to units by SNMP SET under the pool and unit locks: volumes for hosts (best fit or
//!   create, grant, record, release), volumes and partitions, rescans, adding units.
//! - [`operation`]: everything an operator can do to the pool, one execution path for the CLI and the tasks.
//! - [`tasks`]: the task runner: operations run by the station, concurrently per unit, persisted in the store.
//! - [`task_table`]: dvsanStationTaskNextIndex and dvsanStationTaskTable, the tasks over SNMP.
//! - [`request_table`]: dvsanStationRequestTable, hosts' storage requests over SNMP, served by a worker.
//! - [`model`], [`notification`], [`view`], [`timefmt`], [`counters`], [`set_values`]: values, formats,
//!   parsing.

pub mod allocate;
pub mod coordinator;
pub mod counters;
pub mod fair_queue;
pub mod forward;
pub mod ingest;
pub mod model;
pub mod notification;
pub mod notification_log;
pub mod operation;
pub mod request_table;
pub mod set_values;
pub mod station;
pub mod station_mib;
pub mod store;
pub mod task_table;
pub mod tasks;
pub mod timefmt;
pub mod trap_log;
pub mod view;
pub mod walk;
