//! A [`PoolSource`] with canned data: three units (one unreachable), volumes, partitions, host assignments,
//! station tasks in every state, pending units (one waiting, one rejected), and traffic. Used by tests and the screen captures; also handy to look at the
//! console without a station (`--fake`).

use super::PoolSource;
use crate::model::{
    AssignMode, Assignment, Medium, Notification, Partition, PendingState, PendingUnit, Pool, Rates, Snapshot, Task,
    TaskOperation, TaskState, Traffic, Unit, UnitState, Volume,
};
use dvsan_layout::VolumeIndex;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

/// The fixed time every fake snapshot is taken at (2026-11-22T10:00:00Z).
pub const FAKE_NOW: i64 = 1_795_341_600;

pub struct FakeSource {
    pub snapshot: Snapshot,
    /// Snapshots served so far: each is a second later, with the traffic of [`demo_traffic_at`].
    ticks: u32,
}

impl FakeSource {
    pub fn demo() -> FakeSource {
        FakeSource { snapshot: demo_snapshot(), ticks: 0 }
    }
}

impl PoolSource for FakeSource {
    async fn snapshot(&mut self) -> Snapshot {
        let mut snapshot = self.snapshot.clone();
        snapshot.taken_unix += i64::from(self.ticks);
        snapshot.traffic = demo_traffic_at(self.ticks);
        self.ticks = self.ticks.wrapping_add(1);
        snapshot
    }
}

/// The demo traffic `tick` seconds in: the demo rates, swelling and ebbing over a minute, with a burst of reads on
/// unit1's db1 every 20 seconds (so the activity screen's sparklines and charts have something to show).
pub fn demo_traffic_at(tick: u32) -> Vec<Traffic> {
    let wave = 0.6 + 0.4 * (f64::from(tick % 60) / 60.0 * std::f64::consts::TAU).sin();
    let burst = if tick % 20 < 2 { 6.0 } else { 1.0 };
    demo_traffic()
        .into_iter()
        .map(|mut t| {
            if let Some(r) = t.rates.as_mut() {
                let scale = if t.export == "db1" { wave * burst } else { wave };
                *r = Rates {
                    reads: r.reads * scale,
                    writes: r.writes * wave,
                    bytes_read: r.bytes_read * scale,
                    bytes_written: r.bytes_written * wave,
                };
            }
            t
        })
        .collect()
}

fn unit(index: u32, name: &str, state: UnitState, addr: &str, capacity_gib: u32, free_gib: u32, age: i64) -> Unit {
    let agent: Option<SocketAddr> = addr.parse().ok();
    Unit {
        index,
        id: format!("{index:08x}-5c1e-4a52-9d7e-0242ac120002"),
        name: name.to_string(),
        state,
        reason: if state == UnitState::Available { String::new() } else { "no answer to 3 polls".into() },
        agent,
        block_size: 4096,
        capacity_blocks: capacity_gib * 262_144,
        free_blocks: free_gib * 262_144,
        volumes: 2,
        host_name: String::new(),
        last_seen_unix: Some(FAKE_NOW - age),
    }
}

fn volume(unit_index: u32, index: u32, name: &str, start: u32, gib: u32, available: bool) -> Volume {
    let length = gib * 262_144;
    Volume {
        unit_index,
        index,
        name: name.to_string(),
        start_lba: start,
        end_lba: start + length - 1,
        length_blocks: length,
        export: name.to_string(),
        available,
    }
}

/// The demo media: unit1 on media of 1.25 and 1.75 GiB (db1's first partition crosses from one to the other), unit2 on
/// one; unit3 is unreachable, so its media are not known.
pub fn demo_media() -> BTreeMap<u32, Vec<Medium>> {
    let medium = |index: u32, path: &str, first_lba: u32, blocks: u32| Medium {
        index,
        path: path.to_string(),
        blocks,
        first_lba,
    };
    BTreeMap::from([
        (1, vec![medium(1, "/srv/unit1/m0.img", 0, 327_680), medium(2, "/dev/vdb", 327_680, 458_752)]),
        (2, vec![medium(1, "/srv/unit2/m0.img", 0, 786_432)]),
    ])
}

/// The demo pool.
pub fn demo_pool() -> Pool {
    let units = vec![
        unit(1, "unit1", UnitState::Available, "127.0.0.11:1161", 3, 1, 2),
        unit(2, "unit2", UnitState::Available, "127.0.0.12:1161", 3, 2, 1),
        unit(3, "unit3", UnitState::Unreachable, "127.0.0.13:1161", 3, 3, 125),
    ];
    let volumes = vec![
        volume(1, 1, "vol1", 0, 1, true),
        volume(1, 2, "db1", 262_144, 1, true),
        volume(2, 1, "vol1", 0, 1, true),
        volume(3, 1, "scratch", 0, 1, false),
    ];
    let partitions = vec![
        Partition {
            unit_index: 1,
            volume_index: 2,
            index: 1,
            start_lba: 262_144,
            end_lba: 393_215,
            length_blocks: 131_072,
            export: "db1-p1".into(),
            available: true,
        },
        Partition {
            unit_index: 1,
            volume_index: 2,
            index: 2,
            start_lba: 393_216,
            end_lba: 524_287,
            length_blocks: 131_072,
            export: "db1-p2".into(),
            available: true,
        },
    ];
    Pool { units, volumes, partitions }
}

/// The demo snapshot: the demo pool and media, and some traffic.
pub fn demo_snapshot() -> Snapshot {
    Snapshot {
        taken_unix: FAKE_NOW,
        pool: Ok(demo_pool()),
        traffic: demo_traffic(),
        traffic_errors: Vec::new(),
        tasks: Ok(demo_tasks()),
        assignments: Ok(demo_assignments()),
        pending: Ok(demo_pending()),
        media: demo_media(),
        units_read: true,
    }
}

/// The demo pending units: one waiting for approval, one rejected.
pub fn demo_pending() -> Vec<PendingUnit> {
    vec![
        PendingUnit {
            index: 1,
            unit_id: "5f1c2a90-7d3e-4b8a-9c61-2e4f0a7b3d15".into(),
            name: "unit4".into(),
            address: Some(SocketAddr::from(([127, 0, 0, 14], 1161))),
            sys_name: "rack2-u4".into(),
            sys_descr: "dvsan-agent 0.1.0 (dvsan SAN unit), Linux x86_64".into(),
            first_seen_unix: Some(FAKE_NOW - 300),
            last_seen_unix: Some(FAKE_NOW - 4),
            notifications: 3,
            state: PendingState::Pending,
        },
        PendingUnit {
            index: 2,
            unit_id: String::new(),
            name: String::new(),
            address: Some(SocketAddr::from(([127, 0, 0, 66], 1161))),
            sys_name: String::new(),
            sys_descr: String::new(),
            first_seen_unix: Some(FAKE_NOW - 7200),
            last_seen_unix: Some(FAKE_NOW - 3600),
            notifications: 1,
            state: PendingState::Rejected,
        },
    ]
}

/// The demo traffic: two hosts on three exports, one not yet sampled twice.
pub fn demo_traffic() -> Vec<Traffic> {
    vec![
        Traffic {
            unit_index: 1,
            unit_label: "unit1".into(),
            export: "db1".into(),
            host: "127.0.0.9".into(),
            rates: Some(Rates { reads: 120.0, writes: 40.5, bytes_read: 491_520.0, bytes_written: 165_888.0 }),
        },
        Traffic {
            unit_index: 2,
            unit_label: "unit2".into(),
            export: "vol1".into(),
            host: "127.0.0.10".into(),
            rates: Some(Rates { reads: 0.0, writes: 2300.0, bytes_read: 0.0, bytes_written: 9_420_800.0 }),
        },
        Traffic {
            unit_index: 1,
            unit_label: "unit1".into(),
            export: "vol1".into(),
            host: "127.0.0.9".into(),
            rates: None,
        },
    ]
}

/// The demo assignments: both volumes of unit1 to 127.0.0.9 (one read-only), unit2's volume to 127.0.0.10.
pub fn demo_assignments() -> Vec<Assignment> {
    let assignment = |unit_index: u32, volume_index: u32, host: [u8; 4], mode, agent: &str, name: &str| Assignment {
        unit_index,
        volume_index,
        host: Some(IpAddr::from(host)),
        mode,
        nbd_uri: format!("nbd://{agent}:10809/{name}"),
        volume_name: name.to_string(),
        replica: String::new(),
    };
    vec![
        assignment(1, 1, [127, 0, 0, 9], AssignMode::ReadOnly, "127.0.0.11", "vol1"),
        assignment(1, 2, [127, 0, 0, 9], AssignMode::ReadWrite, "127.0.0.11", "db1"),
        assignment(2, 1, [127, 0, 0, 10], AssignMode::ReadWrite, "127.0.0.12", "vol1"),
    ]
}

/// The demo tasks: one of each state, from two consoles.
pub fn demo_tasks() -> Vec<Task> {
    let task = |index: u32, operation: TaskOperation, state: TaskState, age: i64, owner: &str| Task {
        owner: owner.to_string(),
        state: state.into(),
        created_unix: Some(FAKE_NOW - age),
        finished_unix: state.is_ended().then_some(FAKE_NOW - age + 2),
        progress: if state == TaskState::Done { 100 } else { 0 },
        ..Task::new(index, operation)
    };
    let noc = "console@noc-1";
    vec![
        Task {
            unit: "unit1".into(),
            size: "1073741824".into(),
            name: "db1".into(),
            result: "created volume 2 (db1, 1 GiB) on unit1".into(),
            result_unit: Some(1),
            result_volume: Some(VolumeIndex(2)),
            ..task(7, TaskOperation::CreateVolume, TaskState::Done, 1500, noc)
        },
        Task {
            unit: "unit1".into(),
            volume: Some(VolumeIndex(2)),
            host: "127.0.0.9".into(),
            result: "assigned volume 2 (db1) of unit1 to 127.0.0.9, read-write".into(),
            result_unit: Some(1),
            result_volume: Some(VolumeIndex(2)),
            ..task(8, TaskOperation::AssignVolume, TaskState::Done, 1440, noc)
        },
        Task {
            size: "4294967296".into(),
            host: "127.0.0.10".into(),
            result: "no available unit has 4 GiB free (most: unit2 with 2 GiB)".into(),
            ..task(9, TaskOperation::Allocate, TaskState::Failed, 600, "nms@ops-2")
        },
        Task {
            unit: "unit1".into(),
            volume: Some(VolumeIndex(2)),
            size: "536870912".into(),
            progress: 60,
            step: "writing the partition table on unit1".into(),
            ..task(10, TaskOperation::CreatePartition, TaskState::Running, 8, noc)
        },
        Task {
            unit: "unit3".into(),
            step: "waiting for a free worker".into(),
            ..task(11, TaskOperation::RescanUnit, TaskState::Pending, 5, "nms@ops-2")
        },
        Task {
            unit: "unit3".into(),
            volume: Some(VolumeIndex(1)),
            result: "cancelled before it ran".into(),
            ..task(12, TaskOperation::DestroyVolume, TaskState::Cancelled, 3, noc)
        },
    ]
}

const ID1: &str = "00000001-5c1e-4a52-9d7e-0242ac120002";
const ID2: &str = "00000002-5c1e-4a52-9d7e-0242ac120002";
const ID3: &str = "00000003-5c1e-4a52-9d7e-0242ac120002";

/// A few notifications like the station logs them.
pub fn demo_notifications() -> Vec<Notification> {
    let n = |id: i64, secs: u32, source: &str, type_name: &str, unit: Option<&str>, details: &str| Notification {
        id,
        time: format!("2026-11-22T09:59:{secs:02}Z"),
        source: source.to_string(),
        type_name: type_name.to_string(),
        unit_id: unit.map(str::to_string),
        details: details.to_string(),
    };
    vec![
        n(1, 1, "127.0.0.11:40001", "coldStart", Some(ID1), "sysUpTime.0=12"),
        n(2, 2, "127.0.0.12:40002", "coldStart", Some(ID2), "sysUpTime.0=15"),
        n(3, 30, "127.0.0.11:40001", "dvsanLayoutChanged", Some(ID1), "dvsanUnitChangeCounter.0=4"),
        n(4, 45, "127.0.0.13:40003", "linkDown", Some(ID3), "ifIndex.1=1 ifOperStatus.1=2"),
    ]
}
