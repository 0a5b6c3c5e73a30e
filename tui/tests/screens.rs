//! Rendering tests: every screen drawn with ratatui's TestBackend at 80×24 and 120×40 from the fake source's
//! data, asserting on the text in the buffer; plus keyboard flows (filter, help, forms, confirmation) and a
//! resize. `cargo test -p dvsan-console -- --ignored capture` writes text captures to docs/console-*.txt.

use dvsan_console::app::{Action, App, Screen};
use dvsan_console::model::TailStatus;
use dvsan_console::source::fake::{demo_notifications, demo_snapshot};
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
        assert_contains(&screen, &["Volumes", "LBAs", "Size", "Export", "Host", "0-262143", "1 GiB", "scratch"]);
        assert_contains(&screen, &["Partitions of vol1", "The volume has no partitions."]);
    }
    press(&mut app, KeyCode::Char('j'));
    let screen = render(&app, 80, 24);
    assert_contains(&screen, &["Partitions of db1", "262144-393215", "512 MiB", "db1-p1", "db1-p2"]);
    // Tab moves into the partitions pane, and on to the next screen after it.
    press(&mut app, KeyCode::Tab);
    assert_eq!((app.screen, app.pane), (Screen::Volumes, dvsan_console::app::Pane::Partitions));
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.screen, Screen::Hosts);
    press(&mut app, KeyCode::BackTab);
    assert_eq!((app.screen, app.pane), (Screen::Volumes, dvsan_console::app::Pane::Partitions));
}

#[test]
fn hosts_and_tasks_screens_say_why_they_are_empty() {
    let mut app = demo_app();
    press(&mut app, KeyCode::Char('3'));
    for (w, h) in SIZES {
        assert_contains(&render(&app, w, h), &["Hosts and assignments", "No host assignments"]);
    }
    press(&mut app, KeyCode::F(6));
    for (w, h) in SIZES {
        assert_contains(&render(&app, w, h), &["Tasks", "No tasks: station tasks are not available yet"]);
    }
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
}

#[test]
fn notifications_screen_without_a_state_dir_says_what_it_needs() {
    let mut app = App::new("127.0.0.1:11161", TailStatus::NeedsStateDir);
    app.apply(Update::Snapshot(demo_snapshot()));
    app.update(Action::GoTo(Screen::Notifications));
    assert_contains(&render(&app, 80, 24), &["--station-state-dir"]);
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
        assert_contains(&render(&app, w, h), &["Help (? or Esc closes)", "go to a screen", "quit"]);
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
    assert_eq!(app.selected(dvsan_console::app::Pane::Units), 2);
    press(&mut app, KeyCode::Char('k'));
    assert_eq!(app.selected(dvsan_console::app::Pane::Units), 1);
    press(&mut app, KeyCode::Char('g'));
    assert_eq!(app.selected(dvsan_console::app::Pane::Units), 0);
    press(&mut app, KeyCode::End);
    assert_eq!(app.selected(dvsan_console::app::Pane::Units), 2);
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
    // Nothing was done, and the console says so.
    assert_contains(
        &render(&app, 80, 24),
        &["station tasks are not available yet; not sent: create a 2 GiB volume on unit", "\nunit1\n"],
    );
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
    assert_contains(&render(&app, 80, 24), &["cancelled: destroy volume 2 (db1)"]);
    press(&mut app, KeyCode::Char('d'));
    press(&mut app, KeyCode::Char('y'));
    assert_contains(&render(&app, 80, 24), &["station tasks are not available yet"]);
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
    let fresh = App::new("127.0.0.1:11161", TailStatus::NeedsStateDir);
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
}
