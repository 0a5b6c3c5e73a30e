//! Station tasks (dvsanStationTaskTable) against a real station and real agents, with net-snmp's tools: a task
//! created by names with snmpset and watched with snmpget/snmptable; two tasks on two units running at once
//! while one unit is stopped (SIGSTOP); cancelling a pending task and refusing to cancel a running one; bad
//! arguments (failed tasks that say why) and bad SETs (SNMP errors); dvsanStationTaskCompleted at snmptrapd;
//! tasks kept across a restart, a running one failed by it; every operation as a task, in order on one unit; a
//! task waiting (cancellable) for a unit lock another process holds; and the CLI commands that match the tasks
//! (`partition destroy`, `unit rescan`, `tasks`).

use dvsan_station::allocate::{LockScope, PoolLock};
use dvsan_tests::units::*;
use dvsan_tests::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::process::Output;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(15);

/// snmpset on the station's agent (write community `private`); `-Ir` sends values the MIB would refuse.
fn station_set(station: &Station, args: &[&str]) -> Output {
    net_snmp("snmpset")
        .args(["-v2c", "-c", WRITE_COMMUNITY, "-t", "2", "-r", "0", "-Ir"])
        .arg(station.snmp.unwrap().to_string())
        .args(args)
        .output()
        .unwrap()
}

/// Values (`-Oqv`) of station MIB objects, one per line ("No Such Instance ..." for a missing row).
fn station_get(station: &Station, objects: &[String]) -> Vec<String> {
    let out = net_snmp("snmpget")
        .args(["-v2c", "-c", "public", "-Oqv", "-t", "2", "-r", "0"])
        .arg(station.snmp.unwrap().to_string())
        .args(objects)
        .output()
        .unwrap();
    // net-snmp prints an empty string as "".
    let values: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| if l.trim() == "\"\"" { String::new() } else { l.trim().to_string() })
        .collect();
    assert_eq!(values.len(), objects.len(), "{objects:?}: {}", String::from_utf8_lossy(&out.stderr));
    values
}

/// One column of task `index`, e.g. `cell(s, "State", 3)` → "done".
fn cell(station: &Station, column: &str, index: u32) -> String {
    station_get(station, &[format!("DVSAN-STATION-MIB::dvsanStationTask{column}.{index}")]).remove(0)
}

fn next_index(station: &Station) -> u32 {
    let value = station_get(station, &["DVSAN-STATION-MIB::dvsanStationTaskNextIndex.0".to_string()]).remove(0);
    value.parse().unwrap_or_else(|_| panic!("dvsanStationTaskNextIndex.0 = {value:?}"))
}

/// A column of a task row to set: name (after dvsanStationTask), snmpset type, value.
type Column<'a> = (&'a str, &'a str, &'a str);

/// Creates task row `index` by createAndGo with `operation` and `columns`; must succeed.
fn submit(station: &Station, index: u32, operation: &str, columns: &[Column<'_>]) {
    let mut args = vec![format!("DVSAN-STATION-MIB::dvsanStationTaskOperation.{index}"), "i".into(), operation.into()];
    for (column, kind, value) in columns {
        args.extend([
            format!("DVSAN-STATION-MIB::dvsanStationTask{column}.{index}"),
            kind.to_string(),
            value.to_string(),
        ]);
    }
    args.extend([format!("DVSAN-STATION-MIB::dvsanStationTaskRowStatus.{index}"), "i".into(), "createAndGo".into()]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = station_set(station, &refs);
    assert!(out.status.success(), "creating task {index}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A new task with a fresh index; returns the index.
fn start_task(station: &Station, operation: &str, columns: &[Column<'_>]) -> u32 {
    let index = next_index(station);
    submit(station, index, operation, columns);
    index
}

/// Waits until task `index` has ended; returns (state, result).
fn wait_task(station: &Station, index: u32) -> (String, String) {
    wait_until(&format!("task {index} to end"), WAIT, || {
        let values = station_get(
            station,
            &[
                format!("DVSAN-STATION-MIB::dvsanStationTaskState.{index}"),
                format!("DVSAN-STATION-MIB::dvsanStationTaskResult.{index}"),
            ],
        );
        (!matches!(values[0].as_str(), "pending" | "running")).then(|| (values[0].clone(), values[1].clone()))
    })
}

/// A SET that must fail with `error` (net-snmp's name of the error status).
fn refused(station: &Station, args: &[&str], error: &str) {
    let out = station_set(station, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains(error), "{args:?} should fail with {error}: {stderr}");
}

fn signal(unit: &Unit, signal: Signal) {
    kill(Pid::from_raw(unit.proc.pid()), signal).unwrap();
}

/// The names of a unit's volumes, from its own store.
fn volume_names(unit: &Unit) -> Vec<String> {
    unit.show()["volumes"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap().to_string()).collect()
}

fn unit_index(station: &Station, unit: &Unit) -> u64 {
    station.unit_at(&unit.address()).unwrap()["index"].as_u64().unwrap()
}

#[test]
fn tasks_over_snmp_run_concurrently_cancel_report_and_survive_a_restart() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let trapd = TrapReceiver::start(dir.path());
    let nms = trapd.addr;
    let state = dir.path().join("station");
    let nms_text = nms.to_string();
    let flags = ["--forward", nms_text.as_str(), "--unit-timeout", "3s", "--task-workers", "4"];
    let mut station = Station::start(&state, &flags);
    let mut unit_a = Unit::start(&dir.path().join("ua"), "127.0.30.1", station.traps, "64M", &[]);
    let mut unit_b = Unit::start(&dir.path().join("ub"), "127.0.30.2", station.traps, "64M", &[]);
    unit_a.serve_data();
    unit_b.serve_data();
    station.wait_unit(&unit_a.address(), "available", WAIT, |u| u["state"] == "available");
    station.wait_unit(&unit_b.address(), "available", WAIT, |u| u["state"] == "available");
    let (a, b) = (unit_index(&station, &unit_a), unit_index(&station, &unit_b));

    // (a) Every retrieval of the next index is new; a createVolume task by names runs to done.
    let (first, second) = (next_index(&station), next_index(&station));
    assert_ne!(first, second);
    let t1 = next_index(&station);
    submit(
        &station,
        t1,
        "createVolume",
        &[("Unit", "s", "127.0.30.1"), ("Size", "s", "8M"), ("Name", "s", "first"), ("Owner", "s", "tests@tasks")],
    );
    let (state_1, result_1) = wait_task(&station, t1);
    assert_eq!(state_1, "done", "{result_1}");
    assert!(result_1.starts_with("created volume ") && result_1.contains("\"first\"") && result_1.contains("(8M)"));
    let volume: u64 = cell(&station, "ResultVolume", t1).parse().unwrap();
    assert_eq!(cell(&station, "ResultUnit", t1), a.to_string());
    assert_eq!(cell(&station, "Progress", t1), "100 percent");
    assert_eq!(cell(&station, "Owner", t1), "tests@tasks");
    let pooled = station.unit_at(&unit_a.address()).unwrap();
    assert!(volumes_of(&pooled).iter().any(|v| v.0 == volume && v.1 == "first"), "{pooled}");
    assert_eq!(volume_names(&unit_a), ["first"]);
    let table = run_ok(
        net_snmp("snmptable")
            .args(["-v2c", "-c", "public", "-Cf", "|", "-t", "2", "-r", "0"])
            .arg(station.snmp.unwrap().to_string())
            .arg("DVSAN-STATION-MIB::dvsanStationTaskTable"),
    );
    assert!(
        table.lines().any(|l| l.starts_with("createVolume|127.0.30.1|") && l.contains("|done|") && l.contains("first")),
        "{table}"
    );

    // (f) The end reached snmptrapd as dvsanStationTaskCompleted.
    let task_done = format!("dvsanStationTaskState.{t1} = INTEGER: done(3)");
    let operation = format!("dvsanStationTaskOperation.{t1} = INTEGER: createVolume(1)");
    wait_until("dvsanStationTaskCompleted at snmptrapd", WAIT, || {
        trapd.logged(&["DVSAN-STATION-MIB::dvsanStationTaskCompleted", &task_done, &operation, "created volume"])
    });

    // (g) The volume the task made reached the NMS as dvsanStationVolumeAdded too (announced by the task's own
    // re-read of the unit, since the station's walks then find nothing new).
    let name = format!("dvsanStationVolumeName.{a}.{volume} = STRING: first");
    wait_until("dvsanStationVolumeAdded for the task's volume", WAIT, || {
        trapd.logged(&["DVSAN-STATION-MIB::dvsanStationVolumeAdded", &name])
    });

    // (b) Unit A stops answering: its task runs (waiting for the unit) while the task on unit B starts at once
    // and ends; (c) a second task on unit A stays pending behind the first and can be cancelled, the running one
    // cannot.
    signal(&unit_a, Signal::SIGSTOP);
    let slow = start_task(
        &station,
        "createVolume",
        &[("Unit", "s", "127.0.30.1"), ("Size", "s", "4M"), ("Name", "s", "slow")],
    );
    let fast = start_task(
        &station,
        "createVolume",
        &[("Unit", "s", "127.0.30.2"), ("Size", "s", "4M"), ("Name", "s", "fast")],
    );
    let never = start_task(
        &station,
        "createVolume",
        &[("Unit", "s", "127.0.30.1"), ("Size", "s", "4M"), ("Name", "s", "never")],
    );
    assert_eq!(wait_task(&station, fast).0, "done");
    assert_eq!(cell(&station, "State", slow), "running", "the task on the stopped unit still runs");
    let creating = format!("creating the volume on unit #{a}");
    wait_until("the step of the task on the stopped unit", WAIT, || {
        (cell(&station, "Step", slow) == creating).then_some(())
    });
    assert_eq!(cell(&station, "State", never), "pending");
    assert_eq!(cell(&station, "Step", never), format!("waiting for unit #{a}"));
    assert_eq!(volume_names(&unit_b), ["fast"]);
    assert_eq!(cell(&station, "ResultUnit", fast), b.to_string());
    let out = station_set(&station, &[&format!("DVSAN-STATION-MIB::dvsanStationTaskState.{never}"), "i", "cancelled"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(cell(&station, "State", never), "cancelled");
    refused(&station, &[&format!("DVSAN-STATION-MIB::dvsanStationTaskState.{slow}"), "i", "5"], "inconsistentValue");
    refused(
        &station,
        &[&format!("DVSAN-STATION-MIB::dvsanStationTaskRowStatus.{slow}"), "i", "6"],
        "inconsistentValue",
    );
    assert_eq!(cell(&station, "State", slow), "running");
    signal(&unit_a, Signal::SIGCONT);
    let (state_slow, result_slow) = wait_task(&station, slow);
    assert_eq!(state_slow, "done", "{result_slow}");
    assert_eq!(volume_names(&unit_a), ["first", "slow"], "the cancelled task did nothing");
    assert!(cell(&station, "Result", never).contains("nothing was done"));
    station.wait_unit(&unit_a.address(), "available again", WAIT, |u| u["state"] == "available");

    // (d) Bad arguments end the task failed with the reason; bad SETs are SNMP errors.
    let lots = start_task(&station, "createVolume", &[("Unit", "s", "127.0.30.1"), ("Size", "s", "lots")]);
    let nope = start_task(&station, "createVolume", &[("Unit", "s", "nope"), ("Size", "s", "1M")]);
    let nohost = start_task(
        &station,
        "assignVolume",
        &[("Unit", "s", "127.0.30.1"), ("Volume", "u", "1"), ("Host", "s", "nohost")],
    );
    let (s, r) = wait_task(&station, lots);
    assert!(s == "failed" && r.contains("\"lots\" is not a size") && r.contains("512M"), "{s}: {r}");
    let (s, r) = wait_task(&station, nope);
    assert!(s == "failed" && r.contains("no unit matches \"nope\""), "{s}: {r}");
    let (s, r) = wait_task(&station, nohost);
    assert!(s == "failed" && r.contains("\"nohost\" is not a host IP address"), "{s}: {r}");
    let n = next_index(&station).to_string();
    let column = |name: &str| format!("DVSAN-STATION-MIB::dvsanStationTask{name}.{n}");
    let (operation, row_status) = (column("Operation"), column("RowStatus"));
    refused(&station, &[&operation, "i", "1", &column("Size"), "i", "5", &row_status, "i", "4"], "wrongType");
    refused(&station, &[&operation, "i", "42", &row_status, "i", "4"], "wrongValue");
    refused(
        &station,
        &[&operation, "i", "1", &column("Unit"), "s", &"u".repeat(65), &row_status, "i", "4"],
        "wrongLength",
    );
    refused(&station, &[&operation, "i", "1", &row_status, "i", "createAndWait"], "wrongValue");
    refused(&station, &[&column("Unit"), "s", "127.0.30.1", &row_status, "i", "4"], "inconsistentValue");
    refused(&station, &[&column("Result"), "s", "x"], "notWritable");
    refused(&station, &[&format!("DVSAN-STATION-MIB::dvsanStationTaskSize.{t1}"), "s", "1M"], "inconsistentValue");
    refused(&station, &[&format!("DVSAN-STATION-MIB::dvsanStationTaskState.{t1}"), "i", "2"], "wrongValue");
    assert!(next_index(&station) > 0, "the station keeps serving");
    assert!(cell(&station, "State", n.parse().unwrap()).contains("No Such Instance"), "no row was made");

    // (e) A task running when the station stops ends failed at its next start; a pending one runs then; ended
    // tasks are kept, and new indexes are above them.
    signal(&unit_a, Signal::SIGSTOP);
    let interrupted = start_task(&station, "createVolume", &[("Unit", "s", "127.0.30.1"), ("Size", "s", "1M")]);
    let rescan = start_task(&station, "rescanUnit", &[("Unit", "s", "127.0.30.1")]);
    wait_until("the task on the stopped unit to run", WAIT, || {
        (cell(&station, "State", interrupted) == "running" && cell(&station, "State", rescan) == "pending")
            .then_some(())
    });
    station.proc.terminate();
    signal(&unit_a, Signal::SIGCONT);
    let station = Station::start(&state, &flags);
    let (s, r) = wait_task(&station, interrupted);
    assert_eq!((s.as_str(), r.as_str()), ("failed", dvsan_station::tasks::INTERRUPTED));
    let (s, r) = wait_task(&station, rescan);
    assert!(s == "done" && r.contains(&format!("unit #{a}")) && r.contains(&unit_a.unit_id()), "{s}: {r}");
    assert_eq!(cell(&station, "Result", t1), result_1);
    let walked = run_ok(
        net_snmp("snmpwalk")
            .args(["-v2c", "-c", "public", "-Oqv", "-t", "2", "-r", "0"])
            .arg(station.snmp.unwrap().to_string())
            .arg("DVSAN-STATION-MIB::dvsanStationTaskState"),
    );
    assert_eq!(walked.lines().count(), 9, "{walked}");
    let listed: serde_json::Value =
        serde_json::from_str(&run_ok(station.cli().args(["tasks", "--json", "--state-dir"]).arg(&station.state_dir)))
            .unwrap();
    let tasks = listed["tasks"].as_array().unwrap();
    let states: Vec<(u64, &str)> =
        tasks.iter().map(|t| (t["index"].as_u64().unwrap(), t["state"].as_str().unwrap())).collect();
    assert!(states.contains(&(u64::from(t1), "done")) && states.contains(&(u64::from(never), "cancelled")), "{listed}");
    let highest = states.iter().map(|(i, _)| *i).max().unwrap();
    assert!(u64::from(next_index(&station)) > highest);
    assert_eq!(tasks.iter().find(|t| t["index"] == t1).unwrap()["result_unit"], a);
    eprintln!("tasks over SNMP: {:?}", started.elapsed());
}

#[test]
fn every_operation_runs_as_a_task_in_order_and_the_cli_matches() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let trapd = TrapReceiver::start(dir.path());
    let nms = trapd.addr;
    let station = Station::start(&dir.path().join("station"), &["--forward", &nms.to_string()]);
    let mut unit = Unit::start(&dir.path().join("u1"), "127.0.31.1", station.traps, "64M", &[]);
    unit.serve_data();
    // A unit the station has not heard from (its notifications go nowhere): added by a task.
    let nowhere = free_udp_addr("127.0.0.1");
    let mut other = Unit::start(&dir.path().join("u2"), "127.0.31.2", nowhere, "16M", &[]);
    other.serve_data();
    station.wait_unit(&unit.address(), "available", WAIT, |u| u["state"] == "available");
    let index = unit_index(&station, &unit);

    // All at once: the tasks on the unit run one after another in index order (each needs the one before).
    let u = ("Unit", "s", "127.0.31.1");
    let v = ("Volume", "u", "1");
    let steps: Vec<(&str, Vec<Column<'_>>)> = vec![
        ("createVolume", vec![u, ("Size", "s", "16M"), ("Name", "s", "data")]),
        ("createPartition", vec![u, v, ("Size", "s", "4M")]),
        ("destroyPartition", vec![u, v, ("Partition", "u", "1")]),
        ("assignVolume", vec![u, v, ("Host", "s", "127.0.31.100"), ("ReadOnly", "i", "true")]),
        ("unassignVolume", vec![u, v, ("Host", "s", "127.0.31.100")]),
        ("destroyVolume", vec![u, v]),
        ("allocate", vec![("Size", "s", "8M"), ("Host", "s", "127.0.31.101"), ("Name", "s", "alloc")]),
        ("rescanUnit", vec![u]),
        ("addUnit", vec![("Unit", "s", "127.0.31.2")]),
    ];
    let indexes: Vec<u32> = steps.iter().map(|(op, columns)| start_task(&station, op, columns)).collect();
    let results: Vec<String> = indexes
        .iter()
        .zip(&steps)
        .map(|(i, (op, _))| {
            let (state, result) = wait_task(&station, *i);
            assert_eq!(state, "done", "{op}: {result}");
            result
        })
        .collect();
    let says = |step: usize, text: &str| assert!(results[step].contains(text), "{}: {}", steps[step].0, results[step]);
    says(0, &format!("created volume 1 \"data\" on unit #{index}"));
    says(1, "created partition 1 of volume 1");
    says(2, "destroyed partition 1 of volume 1");
    says(3, "to 127.0.31.100 (read-only): nbd://127.0.31.1:10809/");
    says(4, "released volume 1");
    says(5, "destroyed volume 1");
    says(6, "\"alloc\"");
    says(6, "; created for this request) to 127.0.31.101");
    says(7, &format!("read unit #{index} {}", unit.unit_id()));
    says(8, &format!("{} (", other.unit_id()));
    says(8, "at 127.0.31.2:1161: 0 volume(s), available");
    assert_eq!(cell(&station, "ResultVolume", indexes[3]), "1");
    // In order: each task on the unit ended before the next one.
    let listed: serde_json::Value =
        serde_json::from_str(&run_ok(station.cli().args(["tasks", "--json", "--state-dir"]).arg(&station.state_dir)))
            .unwrap();
    // (The clearVolume task the station starts after the release takes no lock: it runs beside them.)
    let finished: Vec<i64> = listed["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["operation"] != "clearVolume")
        .take(8)
        .map(|t| t["finished_ms"].as_i64().unwrap())
        .collect();
    assert!(finished.windows(2).all(|w| w[0] <= w[1]), "{finished:?}");
    let shown = unit.show();
    assert_eq!(volume_names(&unit), ["alloc"]);
    let grants: Vec<&str> = shown["grants"].as_array().unwrap().iter().map(|g| g["host"].as_str().unwrap()).collect();
    assert_eq!(grants, ["127.0.31.101"]);
    assert!(station.unit_at(&other.address()).is_some_and(|u| u["state"] == "available"));
    // What the tasks changed reached the NMS: the volumes made and destroyed, and the unit added.
    for (what, needles) in [
        ("data added", ["dvsanStationVolumeAdded", "STRING: data"]),
        ("data removed", ["dvsanStationVolumeRemoved", "STRING: data"]),
        ("alloc added", ["dvsanStationVolumeAdded", "STRING: alloc"]),
        ("the added unit joined", ["dvsanStationUnitJoined", &other.unit_id()]),
    ] {
        wait_until(what, WAIT, || trapd.logged(&needles));
    }

    // The CLI runs the same operations: partition destroy and unit rescan.
    let cli = |args: &[&str]| {
        let mut cmd = station.cli();
        cmd.args(args).arg("--state-dir").arg(&station.state_dir);
        cmd
    };
    let created: serde_json::Value = serde_json::from_str(&run_ok(&mut cli(&[
        "volume",
        "create",
        "--unit",
        "127.0.31.1",
        "--size",
        "8M",
        "--name",
        "cli",
        "--json",
    ])))
    .unwrap();
    let volume = created["volume"].as_u64().unwrap().to_string();
    run_ok(&mut cli(&["partition", "create", "--unit", "127.0.31.1", "--volume", &volume, "--size", "1M"]));
    assert_eq!(unit.show()["partitions"].as_array().unwrap().len(), 1);
    let out =
        run_ok(&mut cli(&["partition", "destroy", "--unit", "127.0.31.1", "--volume", &volume, "--partition", "1"]));
    assert_eq!(out.trim(), format!("destroyed partition 1 of volume {volume} on unit #{index}"));
    assert!(unit.show()["partitions"].as_array().unwrap().is_empty());
    let err =
        run_fails(&mut cli(&["partition", "destroy", "--unit", "127.0.31.1", "--volume", &volume, "--partition", "9"]));
    assert!(err.contains(&format!("volume {volume} of unit #{index} has no partition 9")), "{err}");
    // A volume made behind the station's back (snmpset on the unit) is in the pool after a rescan.
    run_ok(net_snmp("snmpset").args(["-v2c", "-c", WRITE_COMMUNITY]).arg(unit.address()).args([
        "DVSAN-MIB::dvsanVolumeName.40",
        "s",
        "behind",
        "DVSAN-MIB::dvsanVolumeLength.40",
        "u",
        "100",
        "DVSAN-MIB::dvsanVolumeRowStatus.40",
        "i",
        "createAndGo",
    ]));
    let out = run_ok(&mut cli(&["unit", "rescan", "127.0.31.1"]));
    assert!(out.contains(&unit.unit_id()) && out.contains("3 volume(s), available"), "{out}");
    let pooled = station.unit_at(&unit.address()).unwrap();
    assert!(volumes_of(&pooled).iter().any(|v| v.1 == "behind"), "{pooled}");
    let err = run_fails(&mut cli(&["unit", "rescan", "nope"]));
    assert!(err.contains("no unit matches \"nope\""), "{err}");

    // A task whose unit lock another process holds (here: this test, as the CLI would) waits pending, without
    // blocking the station, and can be cancelled; the next one runs once the lock is free.
    let held = PoolLock::acquire(&station.state_dir, LockScope::Unit(index as u32)).unwrap();
    let waiting = format!("waiting for unit #{index}");
    let is_waiting = |task: u32| {
        wait_until(&format!("task {task} to wait for the unit lock"), WAIT, || {
            (cell(&station, "State", task) == "pending" && cell(&station, "Step", task) == waiting).then_some(())
        })
    };
    let blocked = start_task(&station, "rescanUnit", &[u]);
    is_waiting(blocked);
    let out = station_set(&station, &[&format!("DVSAN-STATION-MIB::dvsanStationTaskState.{blocked}"), "i", "5"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let queued = start_task(&station, "rescanUnit", &[u]);
    is_waiting(queued);
    assert_eq!(cell(&station, "State", blocked), "cancelled");
    drop(held);
    assert_eq!(wait_task(&station, queued).0, "done");

    let text = run_ok(&mut cli(&["tasks"]));
    // The steps, the two rescans, and the clearVolume task the station started after the release.
    assert_eq!(text.lines().count(), 1 + steps.len() + 3, "{text}");
    assert_eq!(text.matches("clearVolume").count(), 1, "{text}");
    assert!(text.lines().nth(1).unwrap().contains("createVolume") && text.contains("addUnit"), "{text}");
    eprintln!("every operation: {:?}", started.elapsed());
}

/// `dvsan-station ARGS --state-dir D` against the running station's store.
fn station_cli(station: &Station, args: &[&str]) -> std::process::Command {
    let mut cmd = station.cli();
    cmd.args(args).arg("--state-dir").arg(&station.state_dir);
    cmd
}

/// A free volume of `size` on the unit at `unit` made with the CLI, assigned to `host`; returns its index.
fn assigned_volume(station: &Station, unit: &str, size: &str, host: &str) -> u64 {
    let made = run_ok(&mut station_cli(station, &["volume", "create", "--unit", unit, "--size", size, "--json"]));
    let volume = serde_json::from_str::<serde_json::Value>(&made).unwrap()["volume"].as_u64().unwrap();
    let volume_text = volume.to_string();
    run_ok(&mut station_cli(station, &["assign", "--unit", unit, "--volume", &volume_text, "--host", host]));
    volume
}

/// Whether the unit that had station index `index` is gone from the pool, or back under another index.
fn relearned_or_gone(station: &Station, unit: &Unit, index: u64) -> bool {
    station.unit_at(&unit.address()).is_none_or(|u| u["index"].as_u64() != Some(index))
}

/// How many grants (dvsanAccessTable rows) the unit's agent has.
fn grant_rows(unit: &Unit) -> usize {
    let out = run_ok(
        net_snmp("snmpwalk")
            .args(["-v2c", "-c", "public", "-t", "2", "-r", "0"])
            .arg(unit.address())
            .arg("DVSAN-MIB::dvsanAccessRowStatus"),
    );
    out.lines().filter(|l| l.contains("dvsanAccessRowStatus.") && l.contains("INTEGER")).count()
}

#[test]
fn units_are_removed_by_cli_and_task_refused_while_assigned_forced_and_learned_again() {
    let dir = tempfile::tempdir().unwrap();
    let trapd = TrapReceiver::start(dir.path());
    let nms = trapd.addr;
    let nms_text = nms.to_string();
    let station = Station::start(&dir.path().join("station"), &["--forward", &nms_text, "--unit-timeout", "2s"]);
    let mut unit_a = Unit::start(&dir.path().join("ua"), "127.0.32.1", station.traps, "64M", &[]);
    let mut unit_b = Unit::start(&dir.path().join("ub"), "127.0.32.2", station.traps, "64M", &[]);
    unit_a.serve_data();
    unit_b.serve_data();
    station.wait_unit(&unit_a.address(), "available", WAIT, |u| u["state"] == "available");
    station.wait_unit(&unit_b.address(), "available", WAIT, |u| u["state"] == "available");
    let a = unit_index(&station, &unit_a);

    // A unit added by mistake (nothing answers there) is removed with the CLI.
    run_ok(&mut station_cli(&station, &["unit", "add", "127.0.32.9", "--timeout", "200ms"]));
    assert!(station.unit_at("127.0.32.9:1161").is_some());
    let out = run_ok(&mut station_cli(&station, &["unit", "remove", "127.0.32.9:1161"]));
    assert!(out.contains("removed unit #") && out.contains("never read"), "{out}");
    assert!(station.unit_at("127.0.32.9:1161").is_none());
    let err = run_fails(&mut station_cli(&station, &["unit", "remove", "127.0.32.9"]));
    assert!(err.contains("no unit matches \"127.0.32.9\""), "{err}");

    // Unit B holds an assigned volume: the CLI refuses and lists the assignment; --force releases it and says so.
    let vb = assigned_volume(&station, "127.0.32.2", "8M", "127.0.32.100");
    let b = unit_index(&station, &unit_b);
    assert_eq!(grant_rows(&unit_b), 1);
    let err = run_fails(&mut station_cli(&station, &["unit", "remove", &unit_b.unit_id()]));
    let listed = format!("unit #{b}/volume {vb} to 127.0.32.100");
    assert!(err.contains(&listed) && err.contains("--force"), "{err}");
    assert!(station.unit_at(&unit_b.address()).is_some(), "a refused removal changes nothing");
    let out = run_ok(&mut station_cli(&station, &["unit", "remove", "127.0.32.2", "--force"]));
    assert!(
        out.contains(&format!("removed unit #{b}")) && out.contains(&format!("released its assignments: {listed}"))
    );
    // Gone from the pool; a live unit comes back at its next notification (the revoke makes one), as a new unit.
    assert!(relearned_or_gone(&station, &unit_b, b), "unit #{b} still in the pool");
    let assignments = run_ok(&mut station_cli(&station, &["assignments", "--json"]));
    assert!(!assignments.contains("127.0.32.100"), "{assignments}");
    // Its grant was revoked on the unit (it was still there), so nothing stays granted to the host.
    assert_eq!(grant_rows(&unit_b), 0, "the forced removal revoked the grant");

    // A removed unit that restarts (coldStart) is learned again, as a new unit; removed again (nothing assigned
    // now, so without --force) and restarted, it is learned once more.
    let mut gone = b;
    for _ in 0..2 {
        unit_b.proc.terminate();
        unit_b = Unit::start(&dir.path().join("ub"), "127.0.32.2", station.traps, "64M", &[]);
        unit_b.serve_data();
        let again = station.wait_unit(&unit_b.address(), "learned again", WAIT, |u| {
            u["state"] == "available" && u["index"].as_u64().unwrap() > gone
        });
        assert_eq!(again["unit_id"], unit_b.unit_id());
        gone = again["index"].as_u64().unwrap();
        let out = run_ok(&mut station_cli(&station, &["unit", "remove", &unit_b.unit_id()]));
        assert!(out.contains(&format!("removed unit #{gone}")) && !out.contains("released"), "{out}");
        assert!(relearned_or_gone(&station, &unit_b, gone));
    }

    // An attacker with only the read community cannot remove a unit: the SET is refused and no task row is made.
    let n = next_index(&station).to_string();
    let attack = net_snmp("snmpset")
        .args(["-v2c", "-c", "public", "-t", "1", "-r", "0", "-Ir"])
        .arg(station.snmp.unwrap().to_string())
        .args([&format!("DVSAN-STATION-MIB::dvsanStationTaskOperation.{n}"), "i", "11"])
        .args([&format!("DVSAN-STATION-MIB::dvsanStationTaskUnit.{n}"), "s", "127.0.32.1"])
        .args([&format!("DVSAN-STATION-MIB::dvsanStationTaskRowStatus.{n}"), "i", "4"])
        .output()
        .unwrap();
    let why = String::from_utf8_lossy(&attack.stderr);
    // The station's agent drops a SET whose community may not write (no answer, as for a wrong community).
    assert!(!attack.status.success() && why.contains("Timeout"), "read community SET not refused: {why}");
    assert!(cell(&station, "State", n.parse().unwrap()).contains("No Such Instance"), "a task row was made");
    assert!(station.unit_at(&unit_a.address()).is_some(), "unit A was removed by a read-only community");

    // As tasks: removeUnit is refused while unit A's volume is assigned; removeUnitForce releases and removes it,
    // and the NMS hears dvsanStationUnitRemoved.
    let va = assigned_volume(&station, "127.0.32.1", "8M", "127.0.32.101");
    let refused_task = start_task(&station, "removeUnit", &[("Unit", "s", "127.0.32.1")]);
    let (state, result) = wait_task(&station, refused_task);
    assert_eq!(state, "failed", "{result}");
    assert!(result.contains(&format!("unit #{a}/volume {va} to 127.0.32.101")), "{result}");
    assert!(station.unit_at(&unit_a.address()).is_some());
    let forced = start_task(&station, "removeUnitForce", &[("Unit", "s", "127.0.32.1")]);
    let (state, result) = wait_task(&station, forced);
    assert_eq!(state, "done", "{result}");
    assert!(result.contains("released its assignments") && result.contains("127.0.32.101"), "{result}");
    assert!(relearned_or_gone(&station, &unit_a, a), "unit #{a} still in the pool");
    let id = format!("dvsanStationUnitId.{a} = STRING: {}", unit_a.unit_id());
    wait_until("dvsanStationUnitRemoved at snmptrapd", WAIT, || {
        trapd.logged(&["DVSAN-STATION-MIB::dvsanStationUnitRemoved", &id])
    });

    // A unit that is not available (its agent shut down) cannot be asked to revoke: --force drops the assignment
    // and the result names the grant left on the unit.
    let a = station.wait_unit(&unit_a.address(), "A learned again", WAIT, |u| u["state"] == "available");
    let a = a["index"].as_u64().unwrap();
    let va = assigned_volume(&station, "127.0.32.1", "8M", "127.0.32.102");
    unit_a.proc.terminate();
    station.wait_unit(&unit_a.address(), "A unavailable", WAIT, |u| u["state"] == "unavailable");
    let out = run_ok(&mut station_cli(&station, &["unit", "remove", "127.0.32.1", "--force"]));
    let listed = format!("unit #{a}/volume {va} to 127.0.32.102");
    assert!(out.contains(&format!("released its assignments: {listed}")), "{out}");
    assert!(out.contains(&format!("grants for {listed} are still on it")) && out.contains("access revoke"), "{out}");
}

/// dvsanStationTaskShared: allocate tasks with Shared true for two hosts and one name give both hosts the same
/// volume with readWriteShared grants; an assignVolume task with Shared true adds a third host; one without it is
/// refused; the task table shows the argument.
#[test]
fn shared_allocate_and_assign_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let station = Station::start(&dir.path().join("station"), &[]);
    let mut unit = Unit::start(&dir.path().join("u1"), "127.0.71.1", station.traps, "64M", &[]);
    unit.serve_data();
    station.wait_unit(&unit.address(), "available", WAIT, |u| u["state"] == "available");
    let allocate = |host: &str| {
        let columns = [("Size", "s", "4M"), ("Host", "s", host), ("Name", "s", "gfs"), ("Shared", "i", "true")];
        start_task(&station, "allocate", &columns)
    };
    let (first, second) = (allocate("127.0.71.100"), allocate("127.0.71.101"));
    for task in [first, second] {
        let (state, result) = wait_task(&station, task);
        assert_eq!(state, "done", "{result}");
    }
    assert_eq!(cell(&station, "Shared", first), "true");
    let volume = cell(&station, "ResultVolume", first);
    assert_eq!(volume, cell(&station, "ResultVolume", second));
    let u = ("Unit", "s", "127.0.71.1");
    let v = ("Volume", "u", volume.as_str());
    let exclusive = start_task(&station, "assignVolume", &[u, v, ("Host", "s", "127.0.71.102")]);
    let (state, result) = wait_task(&station, exclusive);
    assert!(state == "failed" && result.contains("already assigned"), "{state}: {result}");
    let joined = start_task(&station, "assignVolume", &[u, v, ("Host", "s", "127.0.71.102"), ("Shared", "i", "true")]);
    let (state, result) = wait_task(&station, joined);
    assert_eq!(state, "done", "{result}");
    let mut grants: Vec<String> = unit.grants().into_iter().map(|(_, host)| host).collect();
    grants.sort();
    assert_eq!(grants, ["127.0.71.100", "127.0.71.101", "127.0.71.102"]);
    let modes: Vec<String> = unit.show()["grants"].as_array().unwrap().iter().map(|g| g["mode"].to_string()).collect();
    assert!(modes.iter().all(|m| m.to_lowercase().contains("shared")), "{modes:?}");
}

/// dvsanStationTaskReplicas: an allocate task with Replicas 2 makes a mirrored volume on two units; an
/// unassignVolume task of one replica releases both; Replicas 4 is wrongValue.
#[test]
fn a_mirrored_allocate_task_and_its_release() {
    let dir = tempfile::tempdir().unwrap();
    let station = Station::start(&dir.path().join("station"), &[]);
    let mut units: Vec<Unit> = (1..=2)
        .map(|i| Unit::start(&dir.path().join(format!("u{i}")), &format!("127.0.75.{i}"), station.traps, "64M", &[]))
        .collect();
    for unit in &mut units {
        unit.serve_data();
        station.wait_unit(&unit.address(), "available", WAIT, |u| u["state"] == "available");
    }
    let task =
        start_task(&station, "allocate", &[("Size", "s", "8M"), ("Host", "s", "127.0.75.100"), ("Replicas", "u", "2")]);
    let (state, result) = wait_task(&station, task);
    assert!(
        state == "done" && result.contains("mirrored volume") && result.contains("2 replicas"),
        "{state}: {result}"
    );
    assert_eq!(cell(&station, "Replicas", task), "2");
    assert!(units.iter().all(|u| u.grants().len() == 1));
    let replicas = station.pool()["mirrors"][0]["replicas"].clone();
    let (unit, volume) = (replicas[0]["unit"].to_string(), replicas[0]["volume"].to_string());
    let release = start_task(&station, "unassignVolume", &[("Unit", "s", &unit), ("Volume", "u", &volume)]);
    let (state, result) = wait_task(&station, release);
    assert!(state == "done" && result.contains("released mirrored volume"), "{state}: {result}");
    assert!(units.iter().all(|u| u.grants().is_empty()));
    let index = next_index(&station);
    let bad = [
        format!("DVSAN-STATION-MIB::dvsanStationTaskOperation.{index}"),
        "i".into(),
        "allocate".into(),
        format!("DVSAN-STATION-MIB::dvsanStationTaskReplicas.{index}"),
        "u".into(),
        "4".into(),
        format!("DVSAN-STATION-MIB::dvsanStationTaskRowStatus.{index}"),
        "i".into(),
        "createAndGo".into(),
    ];
    refused(&station, &bad.iter().map(String::as_str).collect::<Vec<_>>(), "wrongValue");
}
