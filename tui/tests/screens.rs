//! Rendering tests: every screen drawn with ratatui's TestBackend at 80×24 and 120×40 from the fake source's
//! data, asserting on the text in the buffer; plus keyboard flows (filter, help, forms, confirmation, task
//! commands and their answers) and a resize. `cargo test -p dvsan-console -- --ignored capture` writes text
//! captures to docs/console-*.txt.

use dvsan_console::app::{Action, App, Pane, Screen};
use dvsan_console::form::{Command, Request};
use dvsan_console::model::{Medium, Rates, TailStatus, Task, TaskOperation, TaskState, Traffic, Volume};
use dvsan_console::source::fake::{demo_notifications, demo_snapshot, demo_traffic_at, FAKE_NOW};
use dvsan_console::source::Update;
use dvsan_console::ui;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;

fn demo_app() -> App {
    let mut app = App::new("127.0.0.1:11161", TailStatus::Following);
    app.apply(Update::Snapshot(demo_snapshot()));
    for n in demo_notifications() {
        app.apply(Update::Notification(n));
    }
    app
}

fn render(app: &App, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|frame| ui::draw(frame, app)).unwrap();
    buffer_text(&terminal)
}

fn buffer_text(terminal: &Terminal<TestBackend>) -> String {
    let buffer = terminal.backend().buffer();
    let mut text = String::new();
    for y in 0..buffer.area.height {
        let mut line = String::new();
        for x in 0..buffer.area.width {
            line.push_str(buffer[(x, y)].symbol());
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

fn press(app: &mut App, code: KeyCode) {
    let action = app.handle_key(KeyEvent::new(code, KeyModifiers::NONE));
    app.update(action);
}

fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        press(app, KeyCode::Char(c));
    }
}

fn assert_contains(screen: &str, wanted: &[&str]) {
    for w in wanted {
        assert!(screen.contains(w), "{w:?} not on screen:\n{screen}");
    }
}

const SIZES: [(u16, u16); 2] = [(80, 24), (120, 40)];

#[test]
fn units_screen() {
    let app = demo_app();
    for (w, h) in SIZES {
        let screen = render(&app, w, h);
        assert_contains(
            &screen,
            &["1 Units", "6 Tasks", "7 Pending", "Unit", "State", "Agent", "Capacity", "Free", "Seen"],
        );
        assert_contains(&screen, &["unit1", "available", "127.0.0.11:1161", "3 GiB", "1 GiB", "2s ago"]);
        assert_contains(&screen, &["unit3", "unreachable", "2m ago"]);
        assert_contains(&screen, &["station 127.0.0.1:11161 · 3 units", "? help"]);
    }
}

#[test]
fn volumes_screen_with_partitions_of_the_selected_volume() {
    let mut app = demo_app();
    press(&mut app, KeyCode::Char('2'));
    for (w, h) in SIZES {
        let screen = render(&app, w, h);
        assert_contains(&screen, &["Volumes", "Size", "Export", "Assigned to", "1 GiB", "scratch"]);
        assert_contains(
            &screen,
            &["127.0.0.9 (ro)", "127.0.0.10", "Partitions of vol1", "The volume has no partitions."],
        );
        assert_contains(&screen, &["c volume", "p partition", "d destroy", "a assign", "u unassign", "n allocate"]);
    }
    // The volumes' LBA ranges make room for the host on narrow screens.
    assert_contains(&render(&app, 120, 40), &["LBAs", "0-262143"]);
    assert!(!render(&app, 80, 24).contains("0-262143"));
    press(&mut app, KeyCode::Char('j'));
    let screen = render(&app, 80, 24);
    assert_contains(&screen, &["Partitions of db1", "262144-393215", "512 MiB", "db1-p1", "db1-p2"]);
    // Tab moves into the partitions pane, and on to the next screen after it.
    press(&mut app, KeyCode::Tab);
    assert_eq!((app.screen, app.pane), (Screen::Volumes, Pane::Partitions));
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.screen, Screen::Hosts);
    press(&mut app, KeyCode::BackTab);
    assert_eq!((app.screen, app.pane), (Screen::Volumes, Pane::Partitions));
}

#[test]
fn hosts_screen_groups_assignments_by_host() {
    let mut app = demo_app();
    press(&mut app, KeyCode::Char('3'));
    for (w, h) in SIZES {
        let screen = render(&app, w, h);
        assert_contains(&screen, &["Hosts and assignments (2 hosts, 3 volumes)", "Host", "Unit", "Vol", "Name"]);
        assert_contains(&screen, &["Mode", "NBD URI", "127.0.0.9", "127.0.0.10", "nbd://127.0.0.11:10809/db1"]);
        assert_contains(&screen, &["a assign", "u unassign", "n allocate"]);
        // The host is named once per group.
        assert_eq!(screen.matches("127.0.0.9 ").count(), 1, "{screen}");
        let db1 = screen.lines().find(|l| l.contains("/db1")).unwrap();
        assert!(db1.contains(" rw "), "{db1}");
        let vol1 = screen.lines().find(|l| l.contains("127.0.0.11:10809/vol1")).unwrap();
        assert!(vol1.contains(" ro "), "{vol1}");
    }
    press(&mut app, KeyCode::Char('/'));
    type_text(&mut app, "10.0.0.10");
    assert_contains(&render(&app, 80, 24), &["No assignment matches the filter"]);
}

#[test]
fn hosts_screen_marks_the_replicas_of_mirrored_volumes() {
    let mut app = App::new("127.0.0.1:11161", TailStatus::Following);
    app.update(Action::GoTo(Screen::Hosts));
    let mut snapshot = demo_snapshot();
    if let Ok(assignments) = snapshot.assignments.as_mut() {
        assignments[0].replica = "m1 1/2 inSync".into();
        assignments[1].replica = "m1 2/2 outOfSync".into();
    }
    app.apply(Update::Snapshot(snapshot));
    let screen = render(&app, 120, 40);
    assert_contains(&screen, &["Mirror", "m1 1/2 inSync", "m1 2/2 outOfSync", "NBD URI"]);
    // An assignment that is no replica shows `-` there.
    let other = screen.lines().find(|l| l.contains("127.0.0.10")).unwrap();
    assert!(other.contains(" - "), "{other}");
}

#[test]
fn hosts_screen_says_why_it_is_empty() {
    let mut app = App::new("127.0.0.1:11161", TailStatus::Following);
    app.update(Action::GoTo(Screen::Hosts));
    assert_contains(&render(&app, 80, 24), &["Reading the station…"]);
    let mut snapshot = demo_snapshot();
    snapshot.assignments = Err("station 127.0.0.1:11161 does not answer".into());
    app.apply(Update::Snapshot(snapshot));
    assert_contains(&render(&app, 80, 24), &["assignments could not be read: station 127.0.0.1:11161 does not"]);
    let mut snapshot = demo_snapshot();
    snapshot.assignments = Ok(Vec::new());
    app.apply(Update::Snapshot(snapshot));
    for (w, h) in SIZES {
        assert_contains(&render(&app, w, h), &["No volume is assigned to a host", "allocate"]);
    }
    // A later failure keeps the last list and says so under it.
    app.apply(Update::Snapshot(demo_snapshot()));
    let mut failed = demo_snapshot();
    failed.taken_unix += 12;
    failed.assignments = Err("station 127.0.0.1:11161 does not answer".into());
    app.apply(Update::Snapshot(failed));
    assert_contains(
        &render(&app, 80, 24),
        &["127.0.0.10", "assignments: station 127.0.0.1:11161 does not answer (list from 12s ago)"],
    );
}

#[test]
fn tasks_screen_lists_every_task_newest_first() {
    let mut app = demo_app();
    press(&mut app, KeyCode::Char('6'));
    for (w, h) in SIZES {
        let screen = render(&app, w, h);
        assert_contains(&screen, &["Tasks (newest first)", "Id", "Operation", "State", "Progress", "Step / result"]);
        assert_contains(&screen, &["Age", "destroy vol unit3/1", "rescan unit3", "cancelled", "pending", "running"]);
        assert_contains(&screen, &["60%", "failed", "done", "100%", "waiting for a free w", "25m"]);
        // The running task's progress is a gauge: 60% of the 9-column cell filled.
        let running = screen.lines().find(|l| l.contains("create 512 MiB part")).unwrap();
        assert!(running.contains("███60%") || running.contains("██60%"), "{running}");
        assert_contains(&screen, &["c cancel", "x remove", "2 tasks active"]);
        // The selected task in full, owner included.
        assert_contains(
            &screen,
            &["Selected task", "#12 destroy vol unit3/1", "by console@noc-1", "Result: cancelled"],
        );
        let order: Vec<usize> = ["\n│>12 ", "\n│ 11 ", "\n│ 10 ", "\n│ 9 ", "\n│ 8 ", "\n│ 7 "]
            .iter()
            .map(|row| screen.find(row).unwrap_or_else(|| panic!("{row:?} not on screen:\n{screen}")))
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "not newest first:\n{screen}");
    }
    // Wide screens have an owner column.
    let wide = render(&app, 120, 40);
    assert_contains(
        &wide,
        &["Owner", "nms@ops-2", "create 512 MiB part in unit1/2", "no available unit has 4 GiB free"],
    );
    assert!(!render(&app, 80, 24).contains("Owner"));
    // The selection moves the details.
    press(&mut app, KeyCode::Char('j'));
    press(&mut app, KeyCode::Char('j'));
    assert_contains(
        &render(&app, 80, 24),
        &["#10 create 512 MiB part in unit1/2", "Step: writing the partition table"],
    );
    // Filter by owner, state or words.
    press(&mut app, KeyCode::Char('/'));
    type_text(&mut app, "failed");
    press(&mut app, KeyCode::Enter);
    let screen = render(&app, 80, 24);
    assert_contains(&screen, &["Tasks (newest first) [/failed]", "allocate 4 GiB"]);
    assert!(!screen.contains("rescan unit3"), "{screen}");
}

#[test]
fn cancelling_and_removing_tasks_from_the_keyboard() {
    let mut app = demo_app();
    press(&mut app, KeyCode::Char('6'));
    press(&mut app, KeyCode::Char('j'));
    press(&mut app, KeyCode::Char('c'));
    assert_contains(
        &render(&app, 80, 24),
        &["Confirm", "Cancel task 11 (rescan unit3) before it runs? (y/n)", "y yes"],
    );
    press(&mut app, KeyCode::Char('y'));
    assert_eq!(app.take_outbox(), [Command::Cancel { task: 11, what: "rescan unit3".into() }]);
    assert_contains(&render(&app, 80, 24), &["sending: cancel task 11 (rescan unit3)…"]);
    app.apply(Update::Cancelled { task: 11 });
    assert_contains(&render(&app, 80, 24), &["task 11 cancelled"]);
    // A running task can be neither cancelled nor removed; an ended one is removed without a question.
    press(&mut app, KeyCode::Char('j'));
    press(&mut app, KeyCode::Char('x'));
    assert_contains(&render(&app, 80, 24), &["task 10 is running: it can be removed once it has ended"]);
    press(&mut app, KeyCode::Char('j'));
    press(&mut app, KeyCode::Delete);
    assert!(app.confirm.is_none());
    assert_eq!(app.take_outbox(), [Command::Remove { task: 9 }]);
    app.apply(Update::Removed { task: 9 });
    let screen = render(&app, 80, 24);
    assert_contains(&screen, &["task 9 removed"]);
    assert!(!screen.contains("allocate 4 GiB"), "{screen}");
}

#[test]
fn the_status_line_tells_when_a_submitted_task_ends() {
    let mut app = demo_app();
    let request = Request::RescanUnit { unit: "unit2".into() };
    app.apply(Update::Submitted { request, task: 41 });
    assert_contains(&render(&app, 80, 24), &["task 41 submitted: rescan unit unit2"]);
    let with = |state: TaskState, result: &str| {
        let mut snapshot = demo_snapshot();
        let mut task = Task::new(41, TaskOperation::RescanUnit);
        task.unit = "unit2".into();
        task.state = state.into();
        task.result = result.to_string();
        task.created_unix = Some(FAKE_NOW);
        snapshot.tasks.as_mut().unwrap().push(task);
        Update::Snapshot(snapshot)
    };
    app.apply(with(TaskState::Running, ""));
    app.update(Action::GoTo(Screen::Tasks));
    assert_contains(&render(&app, 120, 40), &["Tasks (newest first; 1 from this console in progress)", "41"]);
    app.apply(with(TaskState::Failed, "unit2 does not answer: is its agent running?"));
    let screen = render(&app, 80, 24);
    assert_contains(&screen, &["task 41 failed: unit2 does not answer: is its agent running?"]);
    assert_contains(&screen, &["Tasks (newest first)"]);
    // A refusal reads as one sentence: what was not done, and why.
    let command = Command::Submit(Request::RescanUnit { unit: "unit2".into() });
    app.apply(Update::Refused { command, why: "station 127.0.0.1:11161 does not answer".into() });
    assert_contains(&render(&app, 80, 24), &["could not rescan unit unit2: station 127.0.0.1:11161 does not answer"]);
    // Long ones wrap onto up to three lines rather than being cut.
    let command = Command::Remove { task: 3 };
    let why = "station 127.0.0.1:11161 does not answer with write community \"nope\": is it running, and is that \
               its --snmp-write-community? If not, give the station's --snmp-write-community with --write-community";
    app.apply(Update::Refused { command, why: why.into() });
    let screen = render(&app, 80, 24);
    assert_contains(&screen, &["could not remove task 3", "with --write-community\n"]);
}

#[test]
fn pending_screen_shows_what_units_claim_and_approves_after_a_yes() {
    let mut app = demo_app();
    // The status line says a unit waits, and how to get there.
    assert_contains(&render(&app, 80, 24), &["1 pending approval (P)", "7 Pending"]);
    press(&mut app, KeyCode::Char('P'));
    assert_eq!(app.screen, Screen::Pending);
    for (w, h) in SIZES {
        let screen = render(&app, w, h);
        assert_contains(&screen, &["Pending units (1 waiting for approval, 1 rejected)", "Address", "Claims", "State"]);
        assert_contains(&screen, &["127.0.0.14:1161", "5f1c2a90", "unit4", "pending", "5m", "4s", "127.0.0.66:1161"]);
        assert_contains(&screen, &["rejected", "dvsan-agent 0.1.0"]);
        // The selected unit in full: the whole id it claims, sysName, and what approving means.
        assert_contains(&screen, &["5f1c2a90-7d3e-4b8a-9c61-2e4f0a7b3d15", "rack2-u4", "A approve", "X reject"]);
    }
    press(&mut app, KeyCode::Char('A'));
    let screen = render(&app, 80, 24);
    assert_contains(&screen, &["Confirm", "Really approve pending unit #1", "(y/n)", "y yes"]);
    press(&mut app, KeyCode::Char('y'));
    let sent = app.take_outbox();
    let [Command::Submit(request @ Request::ApproveUnit { pending: 1, .. })] = sent.as_slice() else {
        panic!("{sent:?}")
    };
    // The station's answer and the task's end show on the status line.
    app.apply(Update::Submitted { request: request.clone(), task: 50 });
    assert_contains(&render(&app, 80, 24), &["task 50 submitted: approve pending unit #1"]);
    let mut snapshot = demo_snapshot();
    let mut task = Task::new(50, TaskOperation::ApproveUnit);
    task.unit = "1".into();
    task.state = TaskState::Done.into();
    task.result = "approved pending unit #1 at 127.0.0.14:1161 (bound to that address): added unit #4".into();
    task.created_unix = Some(FAKE_NOW);
    snapshot.tasks.as_mut().unwrap().push(task);
    snapshot.pending.as_mut().unwrap().retain(|p| p.index != 1);
    app.apply(Update::Snapshot(snapshot));
    let screen = render(&app, 80, 24);
    assert_contains(&screen, &["task 50 done: approved pending unit #1 at 127.0.0.14:1161", "(0 waiting"]);
    // Nothing waits: the screen says how units get here.
    let mut snapshot = demo_snapshot();
    snapshot.pending = Ok(Vec::new());
    app.apply(Update::Snapshot(snapshot));
    assert_contains(&render(&app, 120, 40), &["No unit waits for approval."]);
}

#[test]
fn tasks_screen_says_why_it_is_empty() {
    let mut app = App::new("127.0.0.1:11161", TailStatus::Following);
    app.update(Action::GoTo(Screen::Tasks));
    assert_contains(&render(&app, 80, 24), &["Reading the station's tasks…"]);
    let mut snapshot = demo_snapshot();
    snapshot.tasks = Err("station 127.0.0.1:11161 does not run tasks (no dvsanStationTaskTable)".into());
    app.apply(Update::Snapshot(snapshot));
    for (w, h) in SIZES {
        assert_contains(
            &render(&app, w, h),
            &["The station's tasks could not be read: station 127.0.0.1:11161", "does not"],
        );
    }
    let mut snapshot = demo_snapshot();
    snapshot.tasks = Ok(Vec::new());
    app.apply(Update::Snapshot(snapshot));
    assert_contains(&render(&app, 80, 24), &["No tasks on the station."]);
    // A later failure keeps the last list and says so under it.
    app.apply(Update::Snapshot(demo_snapshot()));
    let mut failed = demo_snapshot();
    failed.taken_unix += 5;
    failed.tasks = Err("station 127.0.0.1:11161 does not answer".into());
    app.apply(Update::Snapshot(failed));
    assert_contains(&render(&app, 80, 24), &["rescan unit3", "tasks: station 127.0.0.1:11161 does not answer (list"]);
}

#[test]
fn forms_for_every_operation_render() {
    let mut app = demo_app();
    let cases = [
        (Screen::Units, 'a', &["Add a unit", "Unit agent (HOST[:PORT]): _"][..]),
        (
            Screen::Units,
            'p',
            &["Create a partition", "Unit (index, name or id): unit1", "Volume (number on the unit): _"],
        ),
        (Screen::Units, 'n', &["Allocate storage for a host", "Size (e.g. 512M, 10G): _", "Read-only (y/n): no"]),
        (
            Screen::Volumes,
            'a',
            &["Assign a volume to a host", "Volume (number on the unit): 1", "Host (its IP address): _"],
        ),
        (Screen::Hosts, 'n', &["Allocate storage for a host", "Host (its IP address): 127.0.0.9"]),
    ];
    for (screen, key, wanted) in cases {
        app.update(Action::GoTo(screen));
        press(&mut app, KeyCode::Char(key));
        let mut wanted = wanted.to_vec();
        wanted.extend(["Enter submit", "Esc cancel"]);
        assert_contains(&render(&app, 80, 24), &wanted);
        press(&mut app, KeyCode::Esc);
        assert!(app.form.is_none());
    }
    // An assignment from the keyboard, read-only toggled with Space.
    app.update(Action::GoTo(Screen::Volumes));
    press(&mut app, KeyCode::Char('j'));
    press(&mut app, KeyCode::Char('j'));
    press(&mut app, KeyCode::Char('a'));
    type_text(&mut app, "127.0.0.20");
    press(&mut app, KeyCode::Tab);
    press(&mut app, KeyCode::Char(' '));
    assert_contains(&render(&app, 80, 24), &["Read-only (y/n): yes"]);
    press(&mut app, KeyCode::Enter);
    let request =
        Request::Assign { unit: "unit2".into(), volume: 1, host: "127.0.0.20".parse().unwrap(), read_only: true };
    assert_eq!(app.take_outbox(), [Command::Submit(request)]);
    assert_contains(&render(&app, 80, 24), &["sending: assign volume 1 of unit unit2 to 127.0.0.20 (read-only)…"]);
}

#[test]
fn notifications_screen_filters_by_unit_and_type() {
    let mut app = demo_app();
    press(&mut app, KeyCode::Char('4'));
    for (w, h) in SIZES {
        let screen = render(&app, w, h);
        assert_contains(&screen, &["Notifications (following)", "Time", "Type", "coldStart", "linkDown", "09:59:45"]);
    }
    press(&mut app, KeyCode::Char('/'));
    type_text(&mut app, "unit:unit1");
    let screen = render(&app, 80, 24);
    assert_contains(&screen, &["/unit:unit1_", "coldStart", "dvsanLayoutChanged"]);
    assert!(!screen.contains("linkDown"), "{screen}");
    type_text(&mut app, " type:layout");
    press(&mut app, KeyCode::Enter);
    let screen = render(&app, 80, 24);
    assert_contains(&screen, &["[/unit:unit1 type:layout]", "dvsanLayoutChanged"]);
    assert!(!screen.contains("coldStart"), "{screen}");
    // By address, too.
    press(&mut app, KeyCode::Esc);
    press(&mut app, KeyCode::Char('/'));
    type_text(&mut app, "unit:127.0.0.13");
    let screen = render(&app, 80, 24);
    assert_contains(&screen, &["linkDown"]);
    assert!(!screen.contains("coldStart"), "{screen}");
    // Notifications read over SNMP carry no station-side unit id: a unit's name still finds them by its agent's
    // address.
    let mut bare = demo_notifications()[3].clone();
    bare.id = 5;
    bare.unit_id = None;
    bare.details = "from-the-snmp-tail".into();
    app.apply(Update::Notification(bare));
    press(&mut app, KeyCode::Esc);
    press(&mut app, KeyCode::Char('/'));
    type_text(&mut app, "unit:unit3");
    assert_contains(&render(&app, 120, 40), &["from-the-snmp-tail"]);
}

#[test]
fn notifications_screen_says_how_the_tail_is_doing() {
    let mut app = App::new("127.0.0.1:11161", TailStatus::Starting);
    app.apply(Update::Snapshot(demo_snapshot()));
    app.update(Action::GoTo(Screen::Notifications));
    assert_contains(&render(&app, 80, 24), &["Reading the station's notification log"]);
    app.apply(Update::Tail(TailStatus::Stopped("no such directory".into())));
    assert_contains(&render(&app, 80, 24), &["The notification tail stopped: no such directory"]);
}

#[test]
fn activity_screen_shows_rates() {
    let mut app = demo_app();
    press(&mut app, KeyCode::Char('5'));
    for (w, h) in SIZES {
        let screen = render(&app, w, h);
        assert_contains(&screen, &["Activity (busiest first; throughput per second)", "Read", "Written"]);
        assert_contains(&screen, &["last 60 s", "db1", "127.0.0.9", "480.0 KiB/s", "9.0 MiB/s", "…"]);
    }
    // Operations per second where there is room.
    assert_contains(&render(&app, 120, 40), &["Reads/s", "Writes/s", "120.0", "40.5", "2.3k"]);
    app.traffic_errors.push("unit unit2 at 127.0.0.12:1161: no answer".into());
    assert_contains(&render(&app, 80, 24), &["no traffic from unit unit2"]);
}

#[test]
fn filter_narrows_the_list_and_escape_clears_it() {
    let mut app = demo_app();
    press(&mut app, KeyCode::Char('/'));
    type_text(&mut app, "unreach");
    let screen = render(&app, 80, 24);
    assert_contains(&screen, &["unit3", "/unreach_"]);
    assert!(!screen.contains("unit1"), "{screen}");
    press(&mut app, KeyCode::Enter);
    assert_contains(&render(&app, 80, 24), &["Units [/unreach]"]);
    type_text(&mut app, "/zzz");
    press(&mut app, KeyCode::Enter);
    assert_contains(&render(&app, 80, 24), &["No unit matches the filter"]);
    press(&mut app, KeyCode::Esc);
    let screen = render(&app, 80, 24);
    assert_contains(&screen, &["unit1", "unit2", "unit3"]);
}

#[test]
fn help_overlay_opens_and_closes() {
    let mut app = demo_app();
    press(&mut app, KeyCode::Char('?'));
    for (w, h) in SIZES {
        let screen = render(&app, w, h);
        assert_contains(&screen, &["Help (? or Esc closes)", "go to a screen", "quit", "add a unit"]);
        assert_contains(&screen, &["create a volume", "create a partition", "destroy the selected volume/partition"]);
        assert_contains(
            &screen,
            &["rescan the selected unit", "assign/unassign a volume", "allocate storage for a host"],
        );
        assert_contains(&screen, &["cancel the selected pending task", "remove the selected ended task", "x, Delete"]);
    }
    press(&mut app, KeyCode::Esc);
    assert!(!render(&app, 80, 24).contains("Help (?"));
    press(&mut app, KeyCode::Char('q'));
    assert!(app.quit);
}

#[test]
fn ctrl_c_quits_even_inside_a_form() {
    let mut app = demo_app();
    press(&mut app, KeyCode::Char('a'));
    let action = app.handle_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
    assert_eq!(action, Action::Quit);
}

#[test]
fn navigation_moves_and_clamps_the_selection() {
    let mut app = demo_app();
    press(&mut app, KeyCode::Down);
    press(&mut app, KeyCode::Char('j'));
    press(&mut app, KeyCode::Char('j'));
    assert_eq!(app.selected(Pane::Units), 2);
    press(&mut app, KeyCode::Char('k'));
    assert_eq!(app.selected(Pane::Units), 1);
    press(&mut app, KeyCode::Char('g'));
    assert_eq!(app.selected(Pane::Units), 0);
    press(&mut app, KeyCode::End);
    assert_eq!(app.selected(Pane::Units), 2);
    press(&mut app, KeyCode::Right);
    assert_eq!(app.screen, Screen::Volumes);
    press(&mut app, KeyCode::Char('h'));
    press(&mut app, KeyCode::Left);
    assert_eq!(app.screen, Screen::Pending);
}

#[test]
fn a_form_validates_before_anything_is_sent() {
    let mut app = demo_app();
    press(&mut app, KeyCode::Char('c'));
    let screen = render(&app, 80, 24);
    assert_contains(&screen, &["Create a volume", "Unit (index, name or id): unit1", "Size (e.g. 512M, 10G): _"]);
    type_text(&mut app, "lots");
    press(&mut app, KeyCode::Enter);
    let screen = render(&app, 80, 24);
    assert_contains(&screen, &["\"lots\" is not a size"]);
    assert!(app.form.is_some());
    for _ in 0..4 {
        press(&mut app, KeyCode::Backspace);
    }
    type_text(&mut app, "2G");
    press(&mut app, KeyCode::Enter);
    assert!(app.form.is_none());
    // The request waits in the outbox for the main loop; the console says it is on its way, then what came of it.
    let request = Request::CreateVolume { unit: "unit1".into(), size_bytes: 2 << 30, name: None };
    assert_eq!(app.take_outbox(), [Command::Submit(request.clone())]);
    assert_contains(&render(&app, 80, 24), &["sending: create a 2 GiB volume on unit unit1…"]);
    app.apply(Update::Submitted { request, task: 41 });
    assert_contains(&render(&app, 80, 24), &["task 41 submitted: create a 2 GiB volume on unit unit1"]);
}

#[test]
fn destroying_a_volume_asks_first() {
    let mut app = demo_app();
    press(&mut app, KeyCode::Char('2'));
    press(&mut app, KeyCode::Char('j'));
    press(&mut app, KeyCode::Char('d'));
    assert_contains(&render(&app, 80, 24), &["Confirm", "Really destroy volume 2 (db1) of unit unit1?"]);
    // Other keys do nothing while the question is open.
    press(&mut app, KeyCode::Char('q'));
    assert!(!app.quit);
    press(&mut app, KeyCode::Char('n'));
    assert_contains(&render(&app, 80, 24), &["not done: destroy volume 2 (db1)"]);
    assert!(app.take_outbox().is_empty());
    press(&mut app, KeyCode::Char('d'));
    press(&mut app, KeyCode::Char('y'));
    assert_contains(&render(&app, 80, 24), &["sending: destroy volume 2 (db1) of unit unit1…"]);
    assert_eq!(app.take_outbox().len(), 1);
    // Partitions too.
    press(&mut app, KeyCode::Tab);
    press(&mut app, KeyCode::Char('d'));
    assert_contains(&render(&app, 80, 24), &["Really destroy partition 1 of volume 2 of unit unit1?"]);
}

#[test]
fn an_unreachable_station_keeps_the_last_pool_and_says_why() {
    let mut app = demo_app();
    let mut failed = demo_snapshot();
    failed.taken_unix += 12;
    failed.pool = Err("station 127.0.0.1:11161 does not answer".into());
    app.apply(Update::Snapshot(failed));
    let screen = render(&app, 80, 24);
    assert_contains(&screen, &["station 127.0.0.1:11161 does not answer (showing data from 12s ago)", "unit1"]);
    let fresh = App::new("127.0.0.1:11161", TailStatus::Starting);
    assert_contains(&render(&fresh, 80, 24), &["Reading the station…", "connecting…"]);
}

#[test]
fn survives_resizes_including_tiny_terminals() {
    let mut app = demo_app();
    app.update(Action::ToggleHelp);
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
    terminal.draw(|frame| ui::draw(frame, &app)).unwrap();
    assert_contains(&buffer_text(&terminal), &["Help"]);
    terminal.backend_mut().resize(120, 40);
    terminal.autoresize().unwrap();
    terminal.draw(|frame| ui::draw(frame, &app)).unwrap();
    let screen = buffer_text(&terminal);
    assert_eq!(screen.lines().count(), 40);
    assert_contains(&screen, &["Help", "unit1"]);
    app.update(Action::ToggleHelp);
    for screen in Screen::ALL {
        app.update(Action::GoTo(screen));
        for (w, h) in [(20, 5), (1, 1), (80, 24)] {
            render(&app, w, h);
        }
    }
}

/// Writes the 80×24 captures to docs/. Run with `cargo test -p dvsan-console -- --ignored capture`.
#[test]
#[ignore]
fn capture_screens() {
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
    let mut app = demo_app_with_history();
    let save = |name: &str, app: &App| {
        let text = render(app, 80, 24);
        std::fs::write(docs.join(format!("console-{name}.txt")), text).unwrap();
    };
    save("units", &app);
    app.update(Action::GoTo(Screen::Volumes));
    app.update(Action::Down);
    save("volumes", &app);
    // db1's map: the volume crosses from unit1's first medium to its second.
    press(&mut app, KeyCode::Char('m'));
    press(&mut app, KeyCode::Char('b'));
    save("map", &app);
    app.update(Action::GoTo(Screen::Activity));
    save("activity", &app);
    app.update(Action::GoTo(Screen::Notifications));
    save("notifications", &app);
    app.update(Action::GoTo(Screen::Hosts));
    save("hosts", &app);
    app.update(Action::GoTo(Screen::Tasks));
    app.update(Action::Down);
    app.update(Action::Down);
    save("tasks", &app);
    app.update(Action::GoTo(Screen::Pending));
    save("pending", &app);
}

/// The demo app after 90 seconds of the fake source's varying traffic, ending at FAKE_NOW.
fn demo_app_with_history() -> App {
    let mut app = App::new("127.0.0.1:11161", TailStatus::Following);
    for n in demo_notifications() {
        app.apply(Update::Notification(n));
    }
    for tick in 0..90u32 {
        let mut snapshot = demo_snapshot();
        snapshot.taken_unix = FAKE_NOW - 89 + i64::from(tick);
        snapshot.traffic = demo_traffic_at(tick);
        app.apply(Update::Snapshot(snapshot));
    }
    app
}

/// The demo app with unit1 replaced by a unit of `media` (blocks each, concatenated) holding `volumes`
/// (name, start, length in blocks), and no partitions.
fn unit1_with(media: &[u32], volumes: &[(&str, u32, u32)]) -> App {
    let mut snapshot = demo_snapshot();
    let pool = snapshot.pool.as_mut().unwrap();
    let capacity: u32 = media.iter().sum();
    let used: u32 = volumes.iter().map(|v| v.2).sum();
    pool.units[0].capacity_blocks = capacity;
    pool.units[0].free_blocks = capacity - used;
    pool.volumes.retain(|v| v.unit_index != 1);
    pool.partitions.retain(|p| p.unit_index != 1);
    for (i, (name, start, length)) in volumes.iter().enumerate() {
        pool.volumes.push(Volume {
            unit_index: 1,
            index: i as u32 + 1,
            name: name.to_string(),
            start_lba: *start,
            end_lba: start + length - 1,
            length_blocks: *length,
            export: name.to_string(),
            available: true,
        });
    }
    let mut first = 0;
    let media = media
        .iter()
        .enumerate()
        .map(|(i, blocks)| {
            let medium =
                Medium { index: i as u32 + 1, path: format!("/srv/m{i}.img"), blocks: *blocks, first_lba: first };
            first += blocks;
            medium
        })
        .collect();
    snapshot.media.insert(1, media);
    snapshot.assignments = Ok(Vec::new());
    let mut app = App::new("127.0.0.1:11161", TailStatus::Following);
    app.apply(Update::Snapshot(snapshot));
    app
}

/// The lines of the screen that are a band's extents (inside a medium's frame).
fn band_lines(screen: &str) -> Vec<String> {
    let lines: Vec<&str> = screen.lines().collect();
    lines
        .windows(2)
        .filter(|w| w[0].contains(" medium ") || w[0].contains(" whole unit "))
        .map(|w| w[1].to_string())
        .collect()
}

#[test]
fn map_of_an_empty_unit_is_one_free_extent() {
    let mut app = unit1_with(&[1000], &[]);
    press(&mut app, KeyCode::Enter);
    for (w, h) in SIZES {
        let screen = render(&app, w, h);
        assert_contains(&screen, &["Unit unit1", "medium 1: /srv/m0.img · LBA 0–999", "The unit has no volumes."]);
        assert_contains(&screen, &["largest free: LBA 0–999", "1 free extent"]);
        let bands = band_lines(&screen);
        assert_eq!(bands.len(), 1, "{screen}");
        assert!(bands[0].contains("│largest free····"), "{}", bands[0]);
    }
}

#[test]
fn map_of_a_full_unit_has_no_free_extent() {
    let mut app = unit1_with(&[1000], &[("alpha", 0, 600), ("beta", 600, 400)]);
    press(&mut app, KeyCode::Enter);
    let screen = render(&app, 80, 24);
    let bands = band_lines(&screen);
    assert!(bands[0].contains("│alpha") && bands[0].contains("│beta"), "{screen}");
    assert!(!bands[0].contains("free") && !screen.contains("largest free:"), "{screen}");
    // ↓ highlights the first volume, then the next.
    press(&mut app, KeyCode::Down);
    press(&mut app, KeyCode::Down);
    let screen = render(&app, 80, 24);
    assert_contains(&screen, &["▓ beta (volume 2): LBA 600–999", "not assigned"]);
    let band = &band_lines(&screen)[0];
    assert!(band.contains("│beta▓▓") && !band.contains("│alpha▓"), "{band}");
}

#[test]
fn map_with_many_small_extents_keeps_every_extent_and_lists_their_lbas() {
    // 50 one-block volumes with a block free after each, then the rest of 1000 blocks free.
    let names: Vec<String> = (0..50).map(|i| format!("v{i}")).collect();
    let volumes: Vec<(&str, u32, u32)> = names.iter().enumerate().map(|(i, n)| (n.as_str(), i as u32 * 2, 1)).collect();
    let mut app = unit1_with(&[1000], &volumes);
    press(&mut app, KeyCode::Enter);
    press(&mut app, KeyCode::Char('b'));
    let screen = render(&app, 120, 40);
    let band = &band_lines(&screen)[0];
    // 101 extents in 118 columns: the large free one gives up columns so each small one keeps one.
    let inner: String = band.chars().skip(1).take(118).collect();
    assert!(inner.contains("largest free"), "{band}");
    assert_contains(&screen, &["LBAs: v0 0–0 · free 1–1 · v1 2–2", "v49 98–98 · largest free 99–999"]);
    assert_contains(&screen, &["50 free extents"]);
    // Each one-block extent keeps a column: its label's first letter (v for a volume, f for free).
    assert!(inner.starts_with(&format!("{}v│largest free", "vf".repeat(49))), "{band}");
    render(&app, 80, 24);
    render(&app, 20, 5);
}

#[test]
fn map_of_a_volume_spanning_two_media() {
    let mut app = unit1_with(&[1000, 1000], &[("low", 0, 500), ("span", 500, 1000)]);
    press(&mut app, KeyCode::Char('2'));
    let row = app.visible_volumes().iter().position(|v| v.name == "span").unwrap();
    for _ in 0..row {
        press(&mut app, KeyCode::Down);
    }
    press(&mut app, KeyCode::Char('m'));
    for (w, h) in SIZES {
        let screen = render(&app, w, h);
        assert_contains(&screen, &["medium 1: /srv/m0.img · LBA 0–999", "medium 2: /srv/m1.img · LBA 1000–1999"]);
        assert_contains(&screen, &["▓ span (volume 2): LBA 500–1499"]);
        let bands = band_lines(&screen);
        assert_eq!(bands.len(), 2, "{screen}");
        assert!(bands[0].contains("│low ") && bands[0].contains("│span▸▓"), "{}", bands[0]);
        assert!(bands[1].contains("│◂span▓") && bands[1].contains("│largest free"), "{}", bands[1]);
    }
    // b shows where each extent starts, under it, and the full list.
    assert!(!render(&app, 80, 24).contains("LBAs:"));
    press(&mut app, KeyCode::Char('b'));
    let screen = render(&app, 80, 24);
    assert_contains(&screen, &["│500", "│1000", "│1500", "LBAs: low 0–499 · span 500–1499 · largest free 1500–1999"]);
    press(&mut app, KeyCode::Esc);
    assert_eq!((app.view.clone(), app.screen), (None, Screen::Volumes));
}

#[test]
fn unit_details_show_the_full_reason_and_addresses() {
    let mut app = demo_app();
    press(&mut app, KeyCode::Char('G'));
    press(&mut app, KeyCode::Enter);
    let screen = render(&app, 80, 24);
    assert_contains(
        &screen,
        &["Unit unit3", "unreachable · agent 127.0.0.13:1161 · seen 2m ago", "reason: no answer to 3 polls"],
    );
    assert_contains(&screen, &["00000003-5c1e-4a52-9d7e-0242ac120002", "3 GiB (786432 blocks of 4096 B), 3 GiB free"]);
    // Its agent never answered this console: one band for the whole unit.
    assert_contains(&screen, &["whole unit (media not known", "▓"]);
}

#[test]
fn units_screen_shows_the_pool_and_each_unit_as_gauges() {
    let app = demo_app();
    for (w, h) in SIZES {
        let screen = render(&app, w, h);
        assert_contains(&screen, &["Pool: 9 GiB", "used", "3 GiB 33%", "assigned", "free 6 GiB"]);
        assert_contains(&screen, &["2 available", "0 unavailable", "1 unreachable"]);
        let unit1 = screen.lines().find(|l| l.contains("127.0.0.11:1161")).unwrap();
        assert!(unit1.contains("██67%"), "{unit1}");
        let unit3 = screen.lines().find(|l| l.contains("127.0.0.13:1161")).unwrap();
        assert!(unit3.contains("0%") && !unit3.contains('█'), "{unit3}");
    }
}

/// Every cell's colours, to check NO_COLOR.
fn colours(app: &App, width: u16, height: u16) -> Vec<(ratatui::style::Color, ratatui::style::Color)> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|frame| ui::draw(frame, app)).unwrap();
    terminal.backend().buffer().content.iter().map(|c| (c.fg, c.bg)).collect()
}

#[test]
fn no_color_takes_every_colour_off_and_the_words_stay() {
    use ratatui::style::Color;
    assert!(ui::color_wanted(None));
    assert!(ui::color_wanted(Some(std::ffi::OsStr::new(""))));
    assert!(!ui::color_wanted(Some(std::ffi::OsStr::new("1"))));
    let mut app = demo_app_with_history();
    let check = |app: &mut App, wanted: &[&str]| {
        app.color = true;
        assert!(colours(app, 80, 24).iter().any(|c| *c != (Color::Reset, Color::Reset)), "no colour to take off");
        app.color = false;
        assert!(colours(app, 80, 24).iter().all(|c| *c == (Color::Reset, Color::Reset)));
        assert_contains(&render(app, 80, 24), wanted);
    };
    check(&mut app, &["available", "unreachable", "67%", "33%", "1 unreachable"]);
    press(&mut app, KeyCode::Enter);
    press(&mut app, KeyCode::Down);
    check(&mut app, &["│vol1▓▓", "largest free", "available"]);
    press(&mut app, KeyCode::Esc);
    for (key, wanted) in [
        ('2', &["available", "127.0.0.9 (ro)"][..]),
        ('5', &["308.1 KiB/s", "█"][..]),
        ('6', &["running", "failed", "60%", "█"][..]),
        ('4', &["linkDown"][..]),
    ] {
        press(&mut app, KeyCode::Char(key));
        check(&mut app, wanted);
    }
}

#[test]
fn no_color_map_tells_volumes_from_free_space_by_look() {
    let mut app = unit1_with(&[1000], &[("alpha", 0, 300)]);
    app.color = false;
    press(&mut app, KeyCode::Enter);
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
    terminal.draw(|frame| ui::draw(frame, &app)).unwrap();
    let buffer = terminal.backend().buffer();
    let screen = buffer_text(&terminal);
    let y = screen.lines().position(|l| l.contains("│alpha")).unwrap() as u16;
    let x = screen.lines().nth(usize::from(y)).unwrap().chars().position(|c| c == 'a').unwrap() as u16;
    let reversed = ratatui::style::Modifier::REVERSED;
    // The volume is reversed, the free space is not and is dotted.
    assert!(buffer[(x, y)].modifier.contains(reversed));
    assert!(!buffer[(78, y)].modifier.contains(reversed));
    assert_eq!(buffer[(78, y)].symbol(), "·");
}

fn traffic_row(export: &str, read: f64, written: f64) -> Traffic {
    Traffic {
        unit_index: 2,
        unit_label: "unit2".into(),
        export: export.into(),
        host: "127.0.0.10".into(),
        rates: Some(Rates { reads: read / 4096.0, writes: written / 4096.0, bytes_read: read, bytes_written: written }),
    }
}

/// An app fed one snapshot a second for `seconds`, the traffic of each second from `traffic`.
fn app_with_traffic(seconds: u32, traffic: impl Fn(u32) -> Vec<Traffic>) -> App {
    let mut app = App::new("127.0.0.1:11161", TailStatus::Following);
    for second in 0..seconds {
        let mut snapshot = demo_snapshot();
        snapshot.taken_unix = FAKE_NOW - i64::from(seconds) + 1 + i64::from(second);
        snapshot.traffic = traffic(second);
        app.apply(Update::Snapshot(snapshot));
    }
    press(&mut app, KeyCode::Char('5'));
    app
}

const SPARK_BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

#[test]
fn activity_with_zero_traffic_draws_flat_lines() {
    let app = app_with_traffic(60, |_| vec![traffic_row("idle", 0.0, 0.0)]);
    for (w, h) in SIZES {
        let screen = render(&app, w, h);
        let row = screen.lines().find(|l| l.contains("idle")).unwrap();
        assert!(row.contains("0 B/s"), "{row}");
        assert!(!row.contains(SPARK_BARS), "zero traffic has no bars: {row}");
        assert!(!row.contains('·'), "every second was sampled: {row}");
        assert_contains(&screen, &["unit2, last 10 min", "now"]);
    }
}

#[test]
fn activity_shows_a_spike_and_puts_the_busiest_export_first() {
    // Steady writes on "steady"; "spiky" reads 1 KB/s for 59 seconds and 1 MB/s in the last one.
    let app = app_with_traffic(60, |second| {
        let read = if second == 59 { 1_000_000.0 } else { 1000.0 };
        vec![traffic_row("steady", 0.0, 50_000.0), traffic_row("spiky", read, 0.0)]
    });
    for (w, h) in SIZES {
        let screen = render(&app, w, h);
        let spiky = screen.find("spiky").unwrap();
        assert!(spiky < screen.find("steady").unwrap(), "busiest first:\n{screen}");
        let row = screen.lines().find(|l| l.contains("spiky")).unwrap();
        assert!(row.contains("976.6 KiB/s"), "{row}");
        // One full bar, at the end of the read sparkline; the quiet seconds are too low to draw.
        assert_eq!(row.matches('█').count(), 1, "{row}");
        assert!(!row.contains(&SPARK_BARS[1..7]), "{row}");
        let bar = row.find('█').unwrap();
        assert!(row[bar..].trim_start_matches('█').trim_start().starts_with("0 B/s"), "{row}");
        // The unit's chart scales to the spike.
        assert_contains(&screen, &["976.6 KiB/s│"]);
    }
}

#[test]
fn tasks_details_show_the_steps_seen_with_their_times() {
    let mut app = demo_app();
    for (age, step) in [
        (8, "choosing the partition slot"),
        (6, "choosing the partition slot"),
        (4, "writing the partition table on unit1"),
    ] {
        let mut snapshot = demo_snapshot();
        snapshot.taken_unix = FAKE_NOW - age;
        let mut tasks = snapshot.tasks.clone().unwrap();
        tasks.iter_mut().filter(|t| t.index == 10).for_each(|t| t.step = step.to_string());
        snapshot.tasks = Ok(tasks);
        app.apply(Update::Snapshot(snapshot));
    }
    app.apply(Update::Snapshot(demo_snapshot()));
    press(&mut app, KeyCode::Char('6'));
    press(&mut app, KeyCode::Char('j'));
    press(&mut app, KeyCode::Char('j'));
    let screen = render(&app, 80, 24);
    assert_contains(&screen, &["Steps seen by this console", "8s ago  choosing the partition slot (for 4s)"]);
    assert_contains(&screen, &["4s ago  writing the partition table on unit1", "Progress:", "60%"]);
    let progress = screen.lines().find(|l| l.starts_with("Progress:")).unwrap();
    assert!(progress.matches('█').count() > 20, "{progress}");
}

#[test]
fn a_notification_opens_with_every_varbind_on_its_own_line() {
    let mut app = demo_app();
    press(&mut app, KeyCode::Char('4'));
    press(&mut app, KeyCode::Enter);
    let screen = render(&app, 80, 24);
    assert_contains(&screen, &["Notification (Esc closes", "linkDown  #4", "source: 127.0.0.13:40003", "varbinds:"]);
    let varbinds: Vec<&str> = screen.lines().filter(|l| l.contains("│  if")).collect();
    assert_eq!(varbinds.len(), 2, "{screen}");
    press(&mut app, KeyCode::Up);
    assert_contains(&render(&app, 80, 24), &["dvsanLayoutChanged  #3", "dvsanUnitChangeCounter.0=4"]);
    press(&mut app, KeyCode::Esc);
    assert!(!render(&app, 80, 24).contains("varbinds:"));
    assert_eq!(
        ui::notifications::varbinds("sysDescr.0=dvsan unit 1 ifIndex.1=1 a=b=c"),
        ["sysDescr.0=dvsan unit 1", "ifIndex.1=1", "a=b=c"]
    );
}

#[test]
fn an_unknown_filter_key_is_an_error_in_the_filter_line_not_an_empty_list() {
    let mut app = demo_app();
    press(&mut app, KeyCode::Char('4'));
    press(&mut app, KeyCode::Char('/'));
    type_text(&mut app, "foo:bar");
    let screen = render(&app, 80, 24);
    assert_contains(&screen, &["/foo:bar_", "unknown filter key \"foo:\"", "unit:NAME, type:NAME"]);
    assert_contains(&screen, &["linkDown", "coldStart"]);
    press(&mut app, KeyCode::Enter);
    assert_contains(&render(&app, 80, 24), &["filter: unknown filter key \"foo:\"", "linkDown"]);
    // Known keys and addresses are no error.
    press(&mut app, KeyCode::Esc);
    press(&mut app, KeyCode::Char('/'));
    type_text(&mut app, "type:link 127.0.0.13:40003");
    let screen = render(&app, 80, 24);
    assert!(!screen.contains("unknown filter key"), "{screen}");
    assert_contains(&screen, &["linkDown"]);
}

#[test]
fn a_bad_size_suffix_is_called_one() {
    let mut app = demo_app();
    press(&mut app, KeyCode::Char('c'));
    type_text(&mut app, "12Q");
    press(&mut app, KeyCode::Enter);
    let screen = render(&app, 80, 24);
    assert_contains(&screen, &["unknown size suffix"]);
    assert!(!screen.contains("unknown unit"), "{screen}");
}

#[test]
fn destroying_an_assigned_volume_says_to_whom_it_is_assigned() {
    let mut app = demo_app();
    press(&mut app, KeyCode::Char('2'));
    press(&mut app, KeyCode::Char('j'));
    press(&mut app, KeyCode::Char('d'));
    let screen = render(&app, 80, 24);
    assert_contains(
        &screen,
        &["Really destroy volume 2 (db1) of unit unit1?", "assigned to 127.0.0.9", "(read-write)"],
    );
    press(&mut app, KeyCode::Char('n'));
    // unit3's scratch volume is assigned to nobody.
    press(&mut app, KeyCode::Char('G'));
    press(&mut app, KeyCode::Char('d'));
    let screen = render(&app, 80, 24);
    assert_contains(&screen, &["Really destroy volume 1 (scratch) of unit unit3?"]);
    assert!(!screen.contains("assigned to"), "{screen}");
}
