//! The console's state and its pure update rules.
//!
//! [`App::handle_key`] maps a key to an [`Action`] according to what has the focus (a confirmation, a form,
//! the filter prompt, the help overlay, or the lists); [`App::update`] applies an action; [`App::apply`] takes
//! what the background sources sent. Nothing here does I/O, so every behaviour is unit-testable and the screens
//! in [`crate::ui`] render from this state alone.

use crate::form::{Confirm, Form, FormKind, Request};
use crate::model::{Notification, Partition, Pool, TailStatus, Traffic, Unit, Volume};
use crate::source::Update;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use std::collections::VecDeque;

/// Notifications kept in memory; older ones are dropped.
pub const MAX_NOTIFICATIONS: usize = 5000;
/// Rows moved by PageUp/PageDown.
pub const PAGE: usize = 10;
/// Longest filter text.
pub const MAX_FILTER: usize = 64;

/// What a submitted request gets until the station runs tasks.
pub const TASKS_UNAVAILABLE: &str = "station tasks are not available yet";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Screen {
    Units,
    Volumes,
    Hosts,
    Notifications,
    Activity,
    Tasks,
}

impl Screen {
    pub const ALL: [Screen; 6] =
        [Screen::Units, Screen::Volumes, Screen::Hosts, Screen::Notifications, Screen::Activity, Screen::Tasks];

    pub fn title(self) -> &'static str {
        match self {
            Screen::Units => "Units",
            Screen::Volumes => "Volumes",
            Screen::Hosts => "Hosts",
            Screen::Notifications => "Notifications",
            Screen::Activity => "Activity",
            Screen::Tasks => "Tasks",
        }
    }

    pub fn number(self) -> usize {
        Screen::ALL.iter().position(|s| *s == self).unwrap_or(0)
    }

    /// The panes of the screen, in Tab order.
    pub fn panes(self) -> &'static [Pane] {
        match self {
            Screen::Units => &[Pane::Units],
            Screen::Volumes => &[Pane::Volumes, Pane::Partitions],
            Screen::Hosts => &[Pane::Hosts],
            Screen::Notifications => &[Pane::Notifications],
            Screen::Activity => &[Pane::Activity],
            Screen::Tasks => &[Pane::Tasks],
        }
    }
}

/// A list with its own selection and filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pane {
    Units,
    Volumes,
    Partitions,
    Hosts,
    Notifications,
    Activity,
    Tasks,
}

impl Pane {
    const COUNT: usize = 7;

    fn slot(self) -> usize {
        self as usize
    }

    fn screen(self) -> Screen {
        match self {
            Pane::Units => Screen::Units,
            Pane::Volumes | Pane::Partitions => Screen::Volumes,
            Pane::Hosts => Screen::Hosts,
            Pane::Notifications => Screen::Notifications,
            Pane::Activity => Screen::Activity,
            Pane::Tasks => Screen::Tasks,
        }
    }
}

/// One thing the user asked for.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    None,
    Quit,
    GoTo(Screen),
    NextScreen,
    PreviousScreen,
    NextPane,
    PreviousPane,
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    ToggleHelp,
    StartFilter,
    FilterChar(char),
    FilterBackspace,
    FinishFilter,
    ClearFilter,
    OpenForm(FormKind),
    FormChar(char),
    FormBackspace,
    FormNextField,
    FormPreviousField,
    SubmitForm,
    CloseForm,
    DestroySelectedVolume,
    Confirm(bool),
}

/// The console's whole state.
#[derive(Debug)]
pub struct App {
    /// What the status line calls the station (its address).
    pub station: String,
    pub screen: Screen,
    pub pane: Pane,
    selected: [usize; Pane::COUNT],
    filters: [String; Pane::COUNT],
    pub filter_editing: bool,
    pub help: bool,
    pub form: Option<Form>,
    pub confirm: Option<Confirm>,
    pub pool: Pool,
    pub pool_error: Option<String>,
    /// When the last good pool was read (Unix seconds).
    pub pool_read_unix: Option<i64>,
    /// The time of the latest snapshot, for ages on screen.
    pub now_unix: i64,
    pub traffic: Vec<Traffic>,
    pub traffic_errors: Vec<String>,
    pub notifications: VecDeque<Notification>,
    pub tail: TailStatus,
    /// Keep the newest notification selected as new ones arrive.
    pub follow: bool,
    /// A one-line message for the status line (results, refusals).
    pub message: Option<String>,
    pub quit: bool,
}

impl App {
    pub fn new(station: impl Into<String>, tail: TailStatus) -> App {
        App {
            station: station.into(),
            screen: Screen::Units,
            pane: Pane::Units,
            selected: [0; Pane::COUNT],
            filters: Default::default(),
            filter_editing: false,
            help: false,
            form: None,
            confirm: None,
            pool: Pool::default(),
            pool_error: None,
            pool_read_unix: None,
            now_unix: 0,
            traffic: Vec::new(),
            traffic_errors: Vec::new(),
            notifications: VecDeque::new(),
            tail,
            follow: true,
            message: None,
            quit: false,
        }
    }

    /// The key's meaning in the current state.
    pub fn handle_key(&self, key: KeyEvent) -> Action {
        if key.kind == KeyEventKind::Release {
            return Action::None;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && key.code == KeyCode::Char('c') {
            return Action::Quit;
        }
        if self.confirm.is_some() {
            return match key.code {
                KeyCode::Char('y' | 'Y') => Action::Confirm(true),
                KeyCode::Char('n' | 'N') | KeyCode::Esc => Action::Confirm(false),
                _ => Action::None,
            };
        }
        if self.form.is_some() {
            return match key.code {
                KeyCode::Esc => Action::CloseForm,
                KeyCode::Enter => Action::SubmitForm,
                KeyCode::Tab | KeyCode::Down => Action::FormNextField,
                KeyCode::BackTab | KeyCode::Up => Action::FormPreviousField,
                KeyCode::Backspace => Action::FormBackspace,
                KeyCode::Char(c) if !ctrl => Action::FormChar(c),
                _ => Action::None,
            };
        }
        if self.filter_editing {
            return match key.code {
                KeyCode::Esc => Action::ClearFilter,
                KeyCode::Enter => Action::FinishFilter,
                KeyCode::Backspace => Action::FilterBackspace,
                KeyCode::Char(c) if !ctrl => Action::FilterChar(c),
                _ => Action::None,
            };
        }
        if self.help {
            return match key.code {
                KeyCode::Char('q') => Action::Quit,
                KeyCode::Esc | KeyCode::Char('?') | KeyCode::Enter => Action::ToggleHelp,
                _ => Action::None,
            };
        }
        match key.code {
            KeyCode::Char('q') => Action::Quit,
            KeyCode::Char('?') => Action::ToggleHelp,
            KeyCode::Char('/') => Action::StartFilter,
            KeyCode::Esc => Action::ClearFilter,
            KeyCode::Tab => Action::NextPane,
            KeyCode::BackTab => Action::PreviousPane,
            KeyCode::Right | KeyCode::Char('l') => Action::NextScreen,
            KeyCode::Left | KeyCode::Char('h') => Action::PreviousScreen,
            KeyCode::Down | KeyCode::Char('j') => Action::Down,
            KeyCode::Up | KeyCode::Char('k') => Action::Up,
            KeyCode::PageDown => Action::PageDown,
            KeyCode::PageUp => Action::PageUp,
            KeyCode::Char('d') if ctrl => Action::PageDown,
            KeyCode::Char('u') if ctrl => Action::PageUp,
            KeyCode::Home | KeyCode::Char('g') => Action::Top,
            KeyCode::End | KeyCode::Char('G') => Action::Bottom,
            KeyCode::Char(c @ '1'..='6') => Action::GoTo(Screen::ALL[usize::from(c as u8 - b'1')]),
            KeyCode::F(n @ 1..=6) => Action::GoTo(Screen::ALL[usize::from(n - 1)]),
            KeyCode::Char('a') if self.screen == Screen::Units => Action::OpenForm(FormKind::AddUnit),
            KeyCode::Char('c') if matches!(self.screen, Screen::Units | Screen::Volumes) => {
                Action::OpenForm(FormKind::CreateVolume)
            }
            KeyCode::Char('d') if self.pane == Pane::Volumes => Action::DestroySelectedVolume,
            _ => Action::None,
        }
    }

    /// Applies one action.
    pub fn update(&mut self, action: Action) {
        match action {
            Action::None => {}
            Action::Quit => self.quit = true,
            Action::GoTo(screen) => self.go_to(screen),
            Action::NextScreen => self.go_to(Screen::ALL[(self.screen.number() + 1) % Screen::ALL.len()]),
            Action::PreviousScreen => {
                self.go_to(Screen::ALL[(self.screen.number() + Screen::ALL.len() - 1) % Screen::ALL.len()])
            }
            Action::NextPane => {
                let panes = self.screen.panes();
                match panes.iter().position(|p| *p == self.pane) {
                    Some(i) if i + 1 < panes.len() => self.pane = panes[i + 1],
                    _ => self.update(Action::NextScreen),
                }
            }
            Action::PreviousPane => {
                let panes = self.screen.panes();
                match panes.iter().position(|p| *p == self.pane) {
                    Some(i) if i > 0 => self.pane = panes[i - 1],
                    _ => {
                        self.update(Action::PreviousScreen);
                        if let Some(last) = self.screen.panes().last() {
                            self.pane = *last;
                        }
                    }
                }
            }
            Action::Up => self.move_selection(-1),
            Action::Down => self.move_selection(1),
            Action::PageUp => self.move_selection(-(PAGE as isize)),
            Action::PageDown => self.move_selection(PAGE as isize),
            Action::Top => self.move_selection(isize::MIN),
            Action::Bottom => self.move_selection(isize::MAX),
            Action::ToggleHelp => self.help = !self.help,
            Action::StartFilter => {
                self.filter_editing = true;
                self.help = false;
            }
            Action::FilterChar(c) => {
                let filter = &mut self.filters[self.pane.slot()];
                if filter.chars().count() < MAX_FILTER && !c.is_control() {
                    filter.push(c);
                }
                self.selected[self.pane.slot()] = 0;
            }
            Action::FilterBackspace => {
                self.filters[self.pane.slot()].pop();
            }
            Action::FinishFilter => self.filter_editing = false,
            Action::ClearFilter => {
                self.filter_editing = false;
                self.filters[self.pane.slot()].clear();
                self.message = None;
            }
            Action::OpenForm(kind) => {
                let unit = self.selected_unit_label().filter(|_| kind == FormKind::CreateVolume);
                self.form = Some(match unit {
                    Some(unit) => Form::create_volume_on(&unit),
                    None => Form::new(kind),
                });
            }
            Action::FormChar(c) => self.with_form(|f| f.push(c)),
            Action::FormBackspace => self.with_form(Form::backspace),
            Action::FormNextField => self.with_form(Form::next_field),
            Action::FormPreviousField => self.with_form(Form::previous_field),
            Action::SubmitForm => {
                if let Some(request) = self.form.as_mut().and_then(Form::validate) {
                    self.form = None;
                    self.request(request);
                }
            }
            Action::CloseForm => self.form = None,
            Action::DestroySelectedVolume => {
                let volume = self.visible_volumes().get(self.selected(Pane::Volumes)).map(|v| (*v).clone());
                match volume {
                    Some(volume) => {
                        let unit = self.pool.unit(volume.unit_index).map_or(volume.unit_index.to_string(), Unit::label);
                        self.request(Request::DestroyVolume { unit, volume: volume.index, name: volume.name });
                    }
                    None => self.message = Some("no volume selected".to_string()),
                }
            }
            Action::Confirm(yes) => {
                if let Some(confirm) = self.confirm.take() {
                    if yes {
                        self.send(confirm.request);
                    } else {
                        self.message = Some(format!("cancelled: {}", confirm.request));
                    }
                }
            }
        }
    }

    /// Takes what a background source sent.
    pub fn apply(&mut self, update: Update) {
        match update {
            Update::Snapshot(snapshot) => {
                self.now_unix = snapshot.taken_unix;
                match snapshot.pool {
                    Ok(pool) => {
                        self.pool = pool;
                        self.pool_error = None;
                        self.pool_read_unix = Some(snapshot.taken_unix);
                    }
                    // Keep showing the last pool read; the status line says how old it is.
                    Err(why) => self.pool_error = Some(why),
                }
                self.traffic = snapshot.traffic;
                self.traffic_errors = snapshot.traffic_errors;
                self.clamp_selections();
            }
            Update::Notification(notification) => {
                if self.notifications.len() >= MAX_NOTIFICATIONS {
                    self.notifications.pop_front();
                }
                self.notifications.push_back(notification);
                if self.follow {
                    self.selected[Pane::Notifications.slot()] = self.visible_notifications().len().saturating_sub(1);
                } else {
                    self.clamp_selections();
                }
            }
            Update::Tail(status) => self.tail = status,
        }
    }

    fn with_form(&mut self, edit: impl FnOnce(&mut Form)) {
        if let Some(form) = self.form.as_mut() {
            edit(form);
        }
    }

    /// A validated request: destructive ones are confirmed first.
    fn request(&mut self, request: Request) {
        if request.is_destructive() {
            self.confirm = Some(Confirm { request });
        } else {
            self.send(request);
        }
    }

    /// Sends a request to the station. The station has no task interface yet, so nothing is sent and the user is
    /// told so rather than shown a result that did not happen.
    fn send(&mut self, request: Request) {
        self.message = Some(format!("{TASKS_UNAVAILABLE}; not sent: {request}"));
    }

    fn go_to(&mut self, screen: Screen) {
        self.screen = screen;
        self.pane = screen.panes()[0];
        self.filter_editing = false;
    }

    fn selected_unit_label(&self) -> Option<String> {
        match self.pane {
            Pane::Units => self.visible_units().get(self.selected(Pane::Units)).map(|u| u.label()),
            Pane::Volumes | Pane::Partitions => {
                let volume = self.visible_volumes().get(self.selected(Pane::Volumes)).map(|v| v.unit_index)?;
                self.pool.unit(volume).map(Unit::label)
            }
            _ => None,
        }
    }

    fn move_selection(&mut self, delta: isize) {
        let len = self.row_count(self.pane);
        let slot = self.pane.slot();
        let current = self.selected[slot] as isize;
        let last = len.saturating_sub(1) as isize;
        self.selected[slot] = current.saturating_add(delta).clamp(0, last.max(0)) as usize;
        if self.pane == Pane::Notifications {
            self.follow = self.selected[slot] as isize >= last;
        }
        if self.pane == Pane::Volumes {
            self.selected[Pane::Partitions.slot()] = 0;
        }
    }

    fn clamp_selections(&mut self) {
        for pane in [Pane::Units, Pane::Volumes, Pane::Partitions, Pane::Notifications, Pane::Activity] {
            let len = self.row_count(pane);
            let slot = pane.slot();
            self.selected[slot] = self.selected[slot].min(len.saturating_sub(1));
        }
    }

    /// The selected row of `pane` (0 when empty).
    pub fn selected(&self, pane: Pane) -> usize {
        self.selected[pane.slot()]
    }

    /// The filter text of `pane`.
    pub fn filter(&self, pane: Pane) -> &str {
        &self.filters[pane.slot()]
    }

    /// The pane whose screen is showing and has the focus.
    pub fn focused(&self, pane: Pane) -> bool {
        self.pane == pane && pane.screen() == self.screen
    }

    pub fn row_count(&self, pane: Pane) -> usize {
        match pane {
            Pane::Units => self.visible_units().len(),
            Pane::Volumes => self.visible_volumes().len(),
            Pane::Partitions => self.visible_partitions().len(),
            Pane::Notifications => self.visible_notifications().len(),
            Pane::Activity => self.visible_traffic().len(),
            Pane::Hosts | Pane::Tasks => 0,
        }
    }

    pub fn visible_units(&self) -> Vec<&Unit> {
        let filter = self.filter(Pane::Units);
        self.pool
            .units
            .iter()
            .filter(|u| {
                let agent = u.agent.map(|a| a.to_string()).unwrap_or_default();
                matches_terms(filter, &[&u.name, &u.id, &u.state.to_string(), &agent, &u.reason])
            })
            .collect()
    }

    pub fn visible_volumes(&self) -> Vec<&Volume> {
        let filter = self.filter(Pane::Volumes);
        self.pool
            .volumes
            .iter()
            .filter(|v| {
                let unit = self.pool.unit(v.unit_index).map(Unit::label).unwrap_or_default();
                matches_terms(filter, &[&v.name, &v.export, &unit])
            })
            .collect()
    }

    /// The partitions of the selected volume.
    pub fn visible_partitions(&self) -> Vec<&Partition> {
        let Some(volume) = self.visible_volumes().get(self.selected(Pane::Volumes)).map(|v| (v.unit_index, v.index))
        else {
            return Vec::new();
        };
        let filter = self.filter(Pane::Partitions);
        self.pool
            .partitions
            .iter()
            .filter(|p| (p.unit_index, p.volume_index) == volume && matches_terms(filter, &[&p.export]))
            .collect()
    }

    pub fn visible_traffic(&self) -> Vec<&Traffic> {
        let filter = self.filter(Pane::Activity);
        self.traffic.iter().filter(|t| matches_terms(filter, &[&t.unit_label, &t.export, &t.host])).collect()
    }

    /// Notifications matching the filter. Besides plain words, the filter takes `unit:X` (a unit's name, id
    /// prefix or address) and `type:X` (part of the notification's name).
    pub fn visible_notifications(&self) -> Vec<&Notification> {
        let filter = NotificationFilter::parse(self.filter(Pane::Notifications));
        self.notifications.iter().filter(|n| filter.matches(n, &self.pool)).collect()
    }
}

/// Whether every whitespace-separated term of `filter` occurs (case-insensitively) in one of `fields`.
pub fn matches_terms(filter: &str, fields: &[&str]) -> bool {
    filter.split_whitespace().all(|term| {
        let term = term.to_lowercase();
        fields.iter().any(|field| field.to_lowercase().contains(&term))
    })
}

/// The notification screen's filter: `unit:X`, `type:X` and plain words.
#[derive(Debug, Default, PartialEq)]
pub struct NotificationFilter {
    pub unit: Option<String>,
    pub type_name: Option<String>,
    pub words: String,
}

impl NotificationFilter {
    pub fn parse(text: &str) -> NotificationFilter {
        let mut filter = NotificationFilter::default();
        let mut words = Vec::new();
        for term in text.split_whitespace() {
            if let Some(unit) = term.strip_prefix("unit:") {
                filter.unit = Some(unit.to_lowercase());
            } else if let Some(kind) = term.strip_prefix("type:") {
                filter.type_name = Some(kind.to_lowercase());
            } else {
                words.push(term);
            }
        }
        filter.words = words.join(" ");
        filter
    }

    pub fn matches(&self, n: &Notification, pool: &Pool) -> bool {
        if let Some(kind) = &self.type_name {
            if !n.type_name.to_lowercase().contains(kind.as_str()) {
                return false;
            }
        }
        if let Some(wanted) = &self.unit {
            let unit_id = n.unit_id.as_deref().unwrap_or("").to_lowercase();
            let source_ip = n.source.rsplit_once(':').map_or(n.source.as_str(), |(ip, _)| ip);
            let by_name = pool
                .units
                .iter()
                .any(|u| u.name.to_lowercase() == *wanted && !u.id.is_empty() && unit_id == u.id.to_lowercase());
            let by_id = !unit_id.is_empty() && unit_id.starts_with(wanted.as_str());
            if !(by_name || by_id || source_ip == wanted.as_str()) {
                return false;
            }
        }
        matches_terms(&self.words, &[&n.type_name, &n.source, &n.details, n.unit_id.as_deref().unwrap_or("")])
    }
}
