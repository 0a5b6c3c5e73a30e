//! What the console remembers while it runs, since the station and the units only tell the present: the read and
//! write throughput of every (unit, export, host) over the last minute and of every unit over the last minutes
//! (from the rates of each snapshot), and the steps the console saw each station task go through, with when it
//! first saw each. Plain data that the app state (above this module) feeds from each snapshot; the activity and
//! tasks screens draw from it.

use crate::model::{Task, Traffic};
use std::collections::{BTreeMap, VecDeque};

/// Seconds of per-export history: the sparklines' width in seconds.
pub const SPARK_SECS: i64 = 60;
/// Seconds of per-unit history: the throughput chart's span.
pub const CHART_SECS: i64 = 600;
/// Steps remembered per task.
const MAX_STEPS: usize = 32;

/// Bytes per second read and written, at one moment (Unix seconds).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub at: i64,
    pub read: f64,
    pub written: f64,
}

/// Chart points: (seconds relative to now, bytes per second).
pub type Points = Vec<(f64, f64)>;

/// A traffic row's key: unit index, export, host.
pub type ExportKey = (u32, String, String);

/// Throughput history of exports and units.
#[derive(Debug, Default)]
pub struct History {
    exports: BTreeMap<ExportKey, VecDeque<Sample>>,
    units: BTreeMap<u32, VecDeque<Sample>>,
}

/// Adds `sample` to `samples` (replacing one of the same second) and drops what is older than `keep` seconds.
fn push(samples: &mut VecDeque<Sample>, sample: Sample, keep: i64) {
    match samples.back_mut() {
        Some(last) if last.at >= sample.at => *last = Sample { at: last.at, ..sample },
        _ => samples.push_back(sample),
    }
    while samples.front().is_some_and(|s| s.at <= sample.at - keep) {
        samples.pop_front();
    }
}

impl History {
    /// Records the rates of one snapshot taken at `at`. Rows without rates yet are skipped; exports no longer in
    /// the traffic are forgotten (units keep their history for the chart).
    pub fn record(&mut self, at: i64, traffic: &[Traffic]) {
        let mut units: BTreeMap<u32, Sample> = BTreeMap::new();
        for t in traffic {
            let Some(rates) = t.rates else { continue };
            let sample = Sample { at, read: rates.bytes_read, written: rates.bytes_written };
            let key = (t.unit_index, t.export.clone(), t.host.clone());
            push(self.exports.entry(key).or_default(), sample, SPARK_SECS);
            let unit = units.entry(t.unit_index).or_insert(Sample { at, read: 0.0, written: 0.0 });
            unit.read += sample.read;
            unit.written += sample.written;
        }
        self.exports
            .retain(|key, _| traffic.iter().any(|t| (t.unit_index, &t.export, &t.host) == (key.0, &key.1, &key.2)));
        for (unit, sample) in units {
            push(self.units.entry(unit).or_default(), sample, CHART_SECS);
        }
    }

    /// The export's read and write throughput per second over the last [`SPARK_SECS`] seconds up to `now`, oldest
    /// first, as whole bytes per second; `None` for seconds without a sample.
    pub fn export_seconds(&self, key: &ExportKey, now: i64) -> (Vec<Option<u64>>, Vec<Option<u64>>) {
        let mut read = vec![None; SPARK_SECS as usize];
        let mut written = vec![None; SPARK_SECS as usize];
        for s in self.exports.get(key).into_iter().flatten() {
            let age = now - s.at;
            if (0..SPARK_SECS).contains(&age) {
                let slot = (SPARK_SECS - 1 - age) as usize;
                read[slot] = Some(s.read.max(0.0).round() as u64);
                written[slot] = Some(s.written.max(0.0).round() as u64);
            }
        }
        (read, written)
    }

    /// The unit's read and write throughput over the last [`CHART_SECS`] seconds as (seconds before `now`
    /// (negative), bytes per second) points, oldest first.
    pub fn unit_points(&self, unit: u32, now: i64) -> (Points, Points) {
        let samples: Vec<&Sample> =
            self.units.get(&unit).into_iter().flatten().filter(|s| now - s.at < CHART_SECS).collect();
        let x = |s: &Sample| (s.at - now) as f64;
        (samples.iter().map(|s| (x(s), s.read)).collect(), samples.iter().map(|s| (x(s), s.written)).collect())
    }
}

/// A step of a task and when this console first saw it (Unix seconds).
#[derive(Clone, Debug, PartialEq)]
pub struct SeenStep {
    pub step: String,
    pub seen_unix: i64,
}

/// The steps the console saw each task go through (the station reports only the current step).
#[derive(Debug, Default)]
pub struct StepLog {
    tasks: BTreeMap<u32, Vec<SeenStep>>,
}

impl StepLog {
    /// Notes the current step of every task that has not ended; forgets tasks no longer listed.
    pub fn record(&mut self, at: i64, tasks: &[Task]) {
        for task in tasks.iter().filter(|t| !t.state.is_ended() && !t.step.is_empty()) {
            let steps = self.tasks.entry(task.index).or_default();
            if steps.last().is_none_or(|s| s.step != task.step) && steps.len() < MAX_STEPS {
                steps.push(SeenStep { step: task.step.clone(), seen_unix: at });
            }
        }
        self.tasks.retain(|index, _| tasks.iter().any(|t| t.index == *index));
    }

    /// The steps seen of task `index`, oldest first.
    pub fn steps(&self, index: u32) -> &[SeenStep] {
        self.tasks.get(&index).map_or(&[], Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Rates, TaskOperation, TaskState};

    fn traffic(export: &str, read: f64) -> Traffic {
        Traffic {
            unit_index: 1,
            unit_label: "u1".into(),
            export: export.into(),
            host: "h".into(),
            rates: Some(Rates { bytes_read: read, bytes_written: 1.0, ..Rates::default() }),
        }
    }

    #[test]
    fn exports_keep_a_minute_and_units_sum_their_exports() {
        let mut history = History::default();
        for second in 0..100 {
            history.record(second, &[traffic("a", second as f64), traffic("b", 10.0)]);
        }
        let key = (1, "a".to_string(), "h".to_string());
        let (read, written) = history.export_seconds(&key, 99);
        assert_eq!(read.len(), 60);
        assert_eq!((read[0], read[59]), (Some(40), Some(99)));
        assert!(written.iter().all(|w| *w == Some(1)));
        let (read, _) = history.unit_points(1, 99);
        assert_eq!(read.len(), 100);
        assert_eq!(read.last(), Some(&(0.0, 109.0)));
        // A second with no sample is a gap; an export that went away is forgotten.
        history.record(105, &[traffic("b", 1.0)]);
        assert_eq!(history.export_seconds(&key, 105).0, vec![None; 60]);
        let b = (1, "b".to_string(), "h".to_string());
        assert_eq!(history.export_seconds(&b, 105).0[53..], [Some(10), None, None, None, None, None, Some(1)]);
        // Two samples in the same second: the later one counts.
        history.record(105, &[traffic("b", 7.0)]);
        assert_eq!(history.export_seconds(&b, 105).0[59], Some(7));
    }

    #[test]
    fn steps_are_noted_once_each_with_when_they_were_seen() {
        let mut log = StepLog::default();
        let task = |step: &str, state: TaskState| Task {
            step: step.into(),
            state: state.into(),
            ..Task::new(4, TaskOperation::Allocate)
        };
        log.record(10, &[task("choosing a unit", TaskState::Running)]);
        log.record(11, &[task("choosing a unit", TaskState::Running)]);
        log.record(13, &[task("granting", TaskState::Running)]);
        log.record(15, &[task("granting", TaskState::Done)]);
        let steps: Vec<(&str, i64)> = log.steps(4).iter().map(|s| (s.step.as_str(), s.seen_unix)).collect();
        assert_eq!(steps, [("choosing a unit", 10), ("granting", 13)]);
        log.record(16, &[]);
        assert!(log.steps(4).is_empty());
    }
}
