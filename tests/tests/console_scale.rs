//! The console at 10,000 units: a real station pools 10,000 unit agents (`dvsan-pool-bench`: in-process agents on
//! distinct 127.x addresses, 4 volumes each, all sending coldStart at once, then answering while the test runs),
//! and the real console, attached to the station in tmux, must answer an operator within a second: paging through
//! the units, jumping to the last one, filtering to one unit and opening the task screen. The times are printed
//! (`cargo test -p dvsan-tests --test console_scale -- --nocapture`).

use dvsan_tests::tmux::Tmux;
use dvsan_tests::units::{Station, WRITE_COMMUNITY};
use dvsan_tests::{free_udp_port, require_tool, wait_for, workspace_bin, Proc};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const UNITS: usize = 10_000;
/// How long an operator may wait for the console to answer a key.
const ANSWER: Duration = Duration::from_secs(1);
/// Rows PageDown moves (the console's `PAGE`).
const PAGE: usize = 10;

/// Starts `dvsan-pool-bench` with `UNITS` units on 127.`second_octet`.x.y:`port` against `station`; it pauses,
/// units answering, once every unit is pooled (it creates `pause`, and ends when the file is removed).
fn pool_bench(station: &Station, second_octet: u8, port: u16, pause: &Path, log: &Path) -> Proc {
    // A socket per unit, and one more while it sends coldStart: the soft descriptor limit goes up to the hard one,
    // which must leave room for them.
    let mut cmd = Command::new("sh");
    let script = format!(
        "ulimit -n \"$(ulimit -Hn)\" && [ \"$(ulimit -n)\" = unlimited -o \"$(ulimit -n)\" -ge {} ] && exec \"$0\" \"$@\"; \
         echo \"{UNITS} units need more file descriptors than the hard limit $(ulimit -Hn)\" >&2; exit 1",
        UNITS + 500
    );
    cmd.arg("-c")
        .arg(script)
        .arg(workspace_bin("dvsan-pool-bench"))
        .args(["--station", &station.traps.to_string(), "--state-dir"])
        .arg(&station.state_dir)
        .args(["--units", &UNITS.to_string(), "--volumes", "4", "--second-octet", &second_octet.to_string()])
        .args(["--port", &port.to_string(), "--timeout", "240s", "--pause-file"])
        .arg(pause);
    Proc::spawn_logging("dvsan-pool-bench", &mut cmd, log.to_path_buf())
}

/// The table's rows on screen: lines that start with the selection column and a unit name.
fn unit_rows(screen: &str) -> Vec<&str> {
    screen
        .lines()
        .filter_map(|l| l.trim_start_matches('│').strip_prefix([' ', '>']))
        .filter(|l| l.starts_with("bench"))
        .collect()
}

/// The selected row's unit name.
fn selected(screen: &str) -> Option<String> {
    screen
        .lines()
        .filter_map(|l| l.trim_start_matches('│').strip_prefix('>'))
        .find_map(|l| l.split_whitespace().next().filter(|n| n.starts_with("bench")).map(str::to_string))
}

#[test]
fn the_console_answers_within_a_second_with_10000_units() {
    require_tool("tmux", "tmux");
    let dir = tempfile::tempdir().unwrap();
    let port = free_udp_port("127.0.0.1");
    let second_octet = 43;
    let station = Station::start_with(&dir.path().join("station"), "30s", "warn", &["--agent-port", &port.to_string()]);
    let pause = dir.path().join("pause");
    let started = Instant::now();
    let mut bench = pool_bench(&station, second_octet, port, &pause, &dir.path().join("pool-bench.log"));
    let paused = wait_for(Duration::from_secs(300), || {
        if pause.exists() {
            return Some(true);
        }
        bench.child.try_wait().ok().flatten().map(|_| false)
    });
    assert_eq!(paused, Some(true), "the units were not all pooled: {}", bench.log_text());
    println!("{UNITS} units started and pooled in {:.1} s: {}", started.elapsed().as_secs_f64(), bench.log_text());
    let pool = station.pool();
    let names: Vec<String> =
        pool["units"].as_array().unwrap().iter().map(|u| u["name"].as_str().unwrap_or("").to_string()).collect();
    assert_eq!(names.len(), UNITS);

    let console = Tmux::start(
        "dvsan-console-scale",
        120,
        40,
        &[
            workspace_bin("dvsan-console").display().to_string(),
            "--station".into(),
            station.snmp.expect("the station serves SNMP").to_string(),
            // The station answers a walk of its 10,000-row tables from a snapshot it rebuilds when the pool moved;
            // a debug build takes more than the default second for that.
            "--timeout".into(),
            "10s".into(),
            // The rescan below is a task: the console writes with the station's write community.
            "--write-community".into(),
            WRITE_COMMUNITY.into(),
        ],
    );
    let loaded = Instant::now();
    console.expect(&[&format!("{UNITS} available"), &names[0]], Duration::from_secs(60));
    println!("first screen with every unit: {:.2} s", loaded.elapsed().as_secs_f64());

    let mut times = Vec::new();
    // Scrolling: three pages down, then the last unit.
    for page in 1..=3 {
        let want = &names[page * PAGE];
        let (took, _) = console.answer_time_when(&["PageDown"], ANSWER, &format!("{want} selected"), |screen| {
            selected(screen).as_ref() == Some(want)
        });
        println!("PageDown to row {}: {} ms", page * PAGE, took.as_millis());
        times.push((format!("PageDown to row {}", page * PAGE), took));
    }
    let last = &names[UNITS - 1];
    let (took, _) =
        console.answer_time_when(&["G"], ANSWER, &format!("{last} selected"), |s| selected(s).as_ref() == Some(last));
    println!("G (last unit): {} ms", took.as_millis());
    times.push(("G (last unit)".to_string(), took));
    console.keys(&["g"]);

    // Filtering: the whole name of one unit leaves its row only.
    let target = &names[UNITS / 2];
    console.keys(&["/"]);
    let (took, screen) = console.answer_time_when(&["-l", target], ANSWER, &format!("only {target}"), |screen| {
        let rows = unit_rows(screen);
        rows.len() == 1 && rows[0].split_whitespace().next() == Some(target.as_str())
    });
    times.push((format!("filter /{target}"), took));
    console.keys(&["Enter"]);
    assert!(screen.contains(target), "{screen}");

    // The task screen: a rescan of the filtered unit, then screen 6 shows it.
    console.keys(&["r"]);
    let rescan = format!("rescan {target}");
    let (took, _) = console.answer_time(&["6"], &["Tasks", &rescan], ANSWER);
    times.push(("task screen (6) with the new task".to_string(), took));
    let done = wait_for(Duration::from_secs(30), || {
        let screen = console.screen();
        screen.lines().any(|l| l.contains(&rescan) && l.contains("done")).then_some(())
    });
    assert!(done.is_some(), "the rescan did not end done:\n{}", console.screen());
    let (took, _) = console.answer_time(&["1"], &["Units", target], ANSWER);
    times.push(("back to the units screen (1)".to_string(), took));

    println!("console answers with {UNITS} units (limit {} ms):", ANSWER.as_millis());
    for (what, took) in &times {
        println!("  {what}: {} ms", took.as_millis());
    }
    let _ = std::fs::remove_file(&pause);
}
