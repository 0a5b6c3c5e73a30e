//! dvsan-console: the terminal console of a dvsan virtual SAN.
//!
//! The console is split like a small server: [`source`] produces snapshots of the pool (from the station's
//! DVSAN-STATION-MIB over SNMP: units, volumes, partitions, host assignments, station tasks and pending units; the
//! units' traffic and media tables; and the station's notification log) in background tasks, and sends the operations the user
//! confirmed to the station's task table ([`source::tasks::TaskClient`]); [`app`] is the pure state machine (keys become
//! [`app::Action`]s, snapshots, answers and actions update [`app::App`], commands wait in its outbox); [`form`]
//! validates what the user typed; [`history`] keeps what the console saw over time (throughput, task steps);
//! [`ui`] draws one screen from the state; [`terminal`] owns the real terminal.
//! Keeping the state pure lets every screen be tested with ratatui's `TestBackend`.
//!
//! # Module map
//!
//! Bottom-up; a module imports only from modules listed before it, never from one above:
//!
//! 1. Leaves, importing nothing from this crate: [`model`] (what the console shows: units, volumes, tasks,
//!    notifications, traffic), [`form`] (operation forms and their validation), [`terminal`].
//! 2. [`history`] (throughput and task steps over time, from model values).
//! 3. [`source`] (the station over SNMP, and the demo source; produces model values and sends form requests).
//! 4. [`app`] (the state machine over model, form, history and source updates).
//! 5. [`ui`] (a pure view: draws the app state; nothing below names it).

pub mod app;
pub mod form;
pub mod history;
pub mod model;
pub mod source;
pub mod terminal;
pub mod ui;
