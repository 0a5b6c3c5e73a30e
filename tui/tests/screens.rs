//! Rendering tests: every screen drawn with ratatui's TestBackend at 80×24 and 120×40 from the fake source's
//! data, asserting on the text in the buffer; plus keyboard flows (filter, help, forms, confirmation, task
//! commands and their answers) and a resize. `cargo test -p dvsan-console -- --ignored capture` writes text
//! captures to docs/console-*.txt.

use dvsan_console::app::{Action, App, Pane, Screen};
use dvsan_console::form::{Command, Request};
use dvsan_console::model::{TailStatus, Task, TaskOperation, TaskState};
use dvsan_console::source::fake::{demo_notifications, demo_snapshot, FAKE_NOW};
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
        assert_contains(&screen, &["1 Units", "6 Tasks", "Unit", "State", "Agent", "Capacity", "Free", "Seen"]);
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
        assert_contains(&screen, &["▰▰▰▱▱ 60%", "failed", "done", "100%", "waiting for a free w", "25m"]);
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
    let with = |state, result: &str| {
        let mut snapshot = demo_snapshot();
        let mut task = Task::new(41, TaskOperation::RescanUnit);
        task.unit = "unit2".into();
        task.state = state;
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
        assert_contains(&screen, &["Activity (per second)", "Reads", "Writes", "Read", "Written"]);
        assert_contains(&screen, &["db1", "127.0.0.9", "120.0", "40.5", "480.0 KiB/s", "2.3k", "9.0 MiB/s", "…"]);
    }
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
    assert_eq!(app.screen, Screen::Tasks);
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
    let mut app = demo_app();
    let save = |name: &str, app: &App| {
        let text = render(app, 80, 24);
        std::fs::write(docs.join(format!("console-{name}.txt")), text).unwrap();
    };
    save("units", &app);
    app.update(Action::GoTo(Screen::Volumes));
    app.update(Action::Down);
    save("volumes", &app);
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
}
