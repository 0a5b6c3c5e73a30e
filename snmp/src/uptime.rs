//! sysUpTime: hundredths of a second since an agent (or notification originator) started.
//!
//! One `Uptime` is shared by an agent and its notification sender so that the sysUpTime.0 in
//! traps matches what GET answers.

use std::time::Instant;

/// The epoch of sysUpTime.
#[derive(Clone, Copy, Debug)]
pub struct Uptime {
    start: Instant,
}

impl Uptime {
    /// Starts counting now.
    pub fn start_now() -> Uptime {
        Uptime { start: Instant::now() }
    }

    /// Counts from `start`.
    pub fn since(start: Instant) -> Uptime {
        Uptime { start }
    }

    /// The epoch.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// TimeTicks elapsed since the epoch (wraps after about 497 days, as TimeTicks do).
    pub fn ticks(&self) -> u32 {
        (self.start.elapsed().as_millis() / 10) as u32
    }
}

impl Default for Uptime {
    fn default() -> Uptime {
        Uptime::start_now()
    }
}
