//! The console's state and its pure update rules.
//!
//! [`App::handle_key`] maps a key to an [`Action`] according to what has the focus (a confirmation, a form,
//! the filter prompt, the help overlay, or the lists); [`App::update`] applies an action; [`App::apply`] takes
//! what the background sources sent. Nothing here does I/O: commands for the station (new tasks, cancels,
//! removals) go to an outbox that the main loop drains ([`App::take_outbox`]) and hands to
//! [`crate::source::tasks::TaskClient`], whose answers come back through [`App::apply`]. So every behaviour is
//! unit-testable, and the screens (the `ui` module, above this one) render from this state alone.

use crate::form::{Command, Confirm, Form, FormKind, Prefill, Request};
use crate::history::{History, StepLog};
use crate::model::{
    Assignment, Medium, Notification, Partition, PendingState, PendingUnit, Pool, Reported, TailStatus, Task,
    TaskState, Traffic, Unit, Volume,
};
use crate::source::Update;
use dvsan_layout::{PartitionIndex, VolumeIndex};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use std::collections::{BTreeMap, VecDeque};

/// Notifications kept in memory; older ones are dropped.
pub const MAX_NOTIFICATIONS: usize = 5000;
/// Rows moved by PageUp/PageDown.
pub const PAGE: usize = 10;
/// Longest filter text.
pub const MAX_FILTER: usize = 64;
/// Tasks this console follows until they end; beyond this, the oldest are forgotten.
pub const MAX_FOLLOWED_TASKS: usize = 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Screen {
    Units,
    Volumes,
    Hosts,
    Notifications,
    Activity,
    Tasks,
    /// Units waiting for the operator's approval (dvsanStationPendingTable).
    Pending,
}

impl Screen {
    pub const ALL: [Screen; 7] = [
        Screen::Units,
        Screen::Volumes,
        Screen::Hosts,
        Screen::Notifications,
        Screen::Activity,
        Screen::Tasks,
        Screen::Pending,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Screen::Units => "Units",
            Screen::Volumes => "Volumes",
            Screen::Hosts => "Hosts",
            Screen::Notifications => "Notifications",
            Screen::Activity => "Activity",
            Screen::Tasks => "Tasks",
            Screen::Pending => "Pending",
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
            Screen::Pending => &[Pane::Pending],
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
    Pending,
}

impl Pane {
    const COUNT: usize = 8;

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
            Pane::Pending => Screen::Pending,
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
    /// The selected partition, or the destroy-partition form when none is selected.
    DestroySelectedPartition,
    /// The selected volume's or assignment's host loses it; the unassign form when nothing assigned is selected.
    UnassignSelected,
    RescanSelectedUnit,
    RemoveSelectedUnit,
    CancelSelectedTask,
    RemoveSelectedTask,
    /// Let the selected pending unit into the pool (task approveUnit), after a yes.
    ApproveSelectedPending,
    /// Keep the selected pending unit out (task rejectUnit), after a yes.
    RejectSelectedPending,
    Confirm(bool),
    /// The selected unit's address-space map and details (Units screen).
    OpenUnitMap,
    /// The address-space map of the selected volume's unit, with the volume highlighted (Volumes screen).
    OpenVolumeMap,
    /// Every varbind of the selected notification.
    OpenNotification,
    /// Closes the map or the notification.
    CloseView,
    /// Shows or hides the LBAs of the map's boundaries.
    ToggleLbas,
    /// Moves the map's highlight to the previous/next volume, or the detail to the previous/next notification.
    ViewMove(isize),
}

/// A unit's address-space map, opened over the screen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapView {
    pub unit: u32,
    /// The highlighted volume's index.
    pub volume: Option<u32>,
    /// Whether the LBAs of every boundary are shown.
    pub lbas: bool,
}

/// What is open over the screen's lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum View {
    Map(MapView),
    /// A notification in full, by its id.
    Notification(i64),
}

/// A one-line message for the status line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusMessage {
    pub text: String,
    /// Shown as an error (a refusal, a failed task).
    pub error: bool,
}

/// A task this console submitted and follows until it ends.
#[derive(Clone, Debug, PartialEq)]
struct Followed {
    request: Request,
    /// Whether a snapshot has shown the task (so its disappearance means someone removed it).
    seen: bool,
    /// The task as this console asked for it, listed until a read of the station's tasks shows it (with
    /// thousands of units the next read can be seconds away).
    submitted: Task,
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
    /// The last good pool read ([`App::pool`]); set only with [`App::set_pool`], which keeps `units` in step.
    pool: Pool,
    /// The Units screen's list, made again only when the pool or the units filter changes.
    units: UnitList,
    pub pool_error: Option<String>,
    /// When the last good pool was read (Unix seconds).
    pub pool_read_unix: Option<i64>,
    /// The time of the latest snapshot, for ages on screen.
    pub now_unix: i64,
    pub traffic: Vec<Traffic>,
    pub traffic_errors: Vec<String>,
    /// The station's tasks, newest first (the last good read).
    pub tasks: Vec<Task>,
    /// Why the last task read failed.
    pub tasks_error: Option<String>,
    /// When the last good task list was read (Unix seconds).
    pub tasks_read_unix: Option<i64>,
    /// Volumes assigned to hosts (the last good read).
    pub assignments: Vec<Assignment>,
    /// Why the last assignment read failed.
    pub assignments_error: Option<String>,
    /// When the last good assignment list was read (Unix seconds).
    pub assignments_read_unix: Option<i64>,
    /// Units waiting for approval and rejected ones, by index (the last good read).
    pub pending: Vec<PendingUnit>,
    /// Why the last pending-units read failed.
    pub pending_error: Option<String>,
    /// When the last good pending list was read (Unix seconds).
    pub pending_read_unix: Option<i64>,
    pub notifications: VecDeque<Notification>,
    pub tail: TailStatus,
    /// Keep the newest notification selected as new ones arrive.
    pub follow: bool,
    /// A one-line message for the status line (results, refusals).
    pub message: Option<StatusMessage>,
    pub quit: bool,
    /// The map or notification open over the lists.
    pub view: Option<View>,
    /// Whether the screens use colour (false with `NO_COLOR`); state words and symbols carry the meaning either way.
    pub color: bool,
    /// The units' media, by unit index, from the last time each unit answered.
    pub media: std::collections::BTreeMap<u32, Vec<Medium>>,
    /// Throughput history, kept while the console runs.
    pub history: History,
    /// The steps seen of the station's tasks.
    pub steps: StepLog,
    /// Commands for the station, waiting for the main loop.
    outbox: Vec<Command>,
    /// Tasks this console submitted that have not ended yet, by task index.
    followed: BTreeMap<u32, Followed>,
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
            units: UnitList::default(),
            pool_error: None,
            pool_read_unix: None,
            now_unix: 0,
            traffic: Vec::new(),
            traffic_errors: Vec::new(),
            tasks: Vec::new(),
            tasks_error: None,
            tasks_read_unix: None,
            assignments: Vec::new(),
            assignments_error: None,
            assignments_read_unix: None,
            pending: Vec::new(),
            pending_error: None,
            pending_read_unix: None,
            notifications: VecDeque::new(),
            tail,
            follow: true,
            message: None,
            quit: false,
            view: None,
            color: true,
            media: Default::default(),
            history: History::default(),
            steps: StepLog::default(),
            outbox: Vec::new(),
            followed: BTreeMap::new(),
        }
    }

    /// The commands the user confirmed since the last call, oldest first, for the main loop to send.
    pub fn take_outbox(&mut self) -> Vec<Command> {
        std::mem::take(&mut self.outbox)
    }

    /// The indexes of the tasks this console submitted and still follows.
    pub fn followed_tasks(&self) -> Vec<u32> {
        self.followed.keys().copied().collect()
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
        if let Some(view) = &self.view {
            return match key.code {
                KeyCode::Char('q') => Action::Quit,
                KeyCode::Esc | KeyCode::Enter | KeyCode::Backspace => Action::CloseView,
                KeyCode::Char('b') if matches!(view, View::Map(_)) => Action::ToggleLbas,
                KeyCode::Up | KeyCode::Char('k') => Action::ViewMove(-1),
                KeyCode::Down | KeyCode::Char('j') => Action::ViewMove(1),
                KeyCode::Char('?') => Action::ToggleHelp,
                KeyCode::Char(c @ '1'..='7') => Action::GoTo(Screen::ALL[usize::from(c as u8 - b'1')]),
                KeyCode::Char('P') => Action::GoTo(Screen::Pending),
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
            KeyCode::Char(c @ '1'..='7') => Action::GoTo(Screen::ALL[usize::from(c as u8 - b'1')]),
            KeyCode::F(n @ 1..=7) => Action::GoTo(Screen::ALL[usize::from(n - 1)]),
            KeyCode::Char('P') => Action::GoTo(Screen::Pending),
            KeyCode::Char('A') if self.screen == Screen::Pending => Action::ApproveSelectedPending,
            KeyCode::Char('X') if self.screen == Screen::Pending => Action::RejectSelectedPending,
            KeyCode::Char('a') if self.screen == Screen::Units => Action::OpenForm(FormKind::AddUnit),
            KeyCode::Char('a') if matches!(self.screen, Screen::Volumes | Screen::Hosts) => {
                Action::OpenForm(FormKind::Assign)
            }
            KeyCode::Char('c') if matches!(self.screen, Screen::Units | Screen::Volumes) => {
                Action::OpenForm(FormKind::CreateVolume)
            }
            KeyCode::Char('c') if self.screen == Screen::Tasks => Action::CancelSelectedTask,
            KeyCode::Char('p') if matches!(self.screen, Screen::Units | Screen::Volumes) => {
                Action::OpenForm(FormKind::CreatePartition)
            }
            KeyCode::Char('d') if self.pane == Pane::Volumes => Action::DestroySelectedVolume,
            KeyCode::Char('d') if self.pane == Pane::Partitions => Action::DestroySelectedPartition,
            KeyCode::Char('u') if matches!(self.screen, Screen::Volumes | Screen::Hosts) => Action::UnassignSelected,
            KeyCode::Char('n') if matches!(self.screen, Screen::Units | Screen::Volumes | Screen::Hosts) => {
                Action::OpenForm(FormKind::Allocate)
            }
            KeyCode::Char('r') if self.screen == Screen::Units => Action::RescanSelectedUnit,
            KeyCode::Char('R') if self.screen == Screen::Units => Action::RemoveSelectedUnit,
            KeyCode::Char('x') | KeyCode::Delete if self.screen == Screen::Tasks => Action::RemoveSelectedTask,
            KeyCode::Enter if self.pane == Pane::Units => Action::OpenUnitMap,
            KeyCode::Enter | KeyCode::Char('m') if self.pane == Pane::Volumes => Action::OpenVolumeMap,
            KeyCode::Enter if self.pane == Pane::Notifications => Action::OpenNotification,
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
            Action::NextPane => self.next_pane(),
            Action::PreviousPane => self.previous_pane(),
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
            Action::FilterChar(c) => self.filter_char(c),
            Action::FilterBackspace => {
                self.filters[self.pane.slot()].pop();
                self.filter_changed();
            }
            Action::FinishFilter => self.filter_editing = false,
            Action::ClearFilter => self.clear_filter(),
            Action::OpenForm(kind) => self.form = Some(Form::prefilled(kind, &self.prefill(kind))),
            Action::FormChar(c) => self.with_form(|f| f.push(c)),
            Action::FormBackspace => self.with_form(Form::backspace),
            Action::FormNextField => self.with_form(Form::next_field),
            Action::FormPreviousField => self.with_form(Form::previous_field),
            Action::SubmitForm => self.submit_form(),
            Action::CloseForm => self.form = None,
            Action::DestroySelectedVolume => self.destroy_selected_volume(),
            Action::DestroySelectedPartition => self.destroy_selected_partition(),
            Action::UnassignSelected => self.unassign_selected(),
            Action::RescanSelectedUnit => match self.selected_unit_index() {
                Some(index) => self.request(Request::RescanUnit { unit: self.unit_ref(index) }),
                None => self.say("no unit selected"),
            },
            Action::RemoveSelectedUnit => match self.selected_unit_index() {
                Some(index) => self.request(self.removal(index)),
                None => self.say("no unit selected"),
            },
            Action::CancelSelectedTask => self.cancel_selected_task(),
            Action::RemoveSelectedTask => self.remove_selected_task(),
            Action::ApproveSelectedPending => self.decide_selected_pending(true),
            Action::RejectSelectedPending => self.decide_selected_pending(false),
            Action::Confirm(yes) => self.answer_confirmation(yes),
            Action::OpenUnitMap => self.open_unit_map(),
            Action::OpenVolumeMap => self.open_volume_map(),
            Action::OpenNotification => match self.visible_notifications().get(self.selected(Pane::Notifications)) {
                Some(n) => self.view = Some(View::Notification(n.id)),
                None => self.say("no notification selected"),
            },
            Action::CloseView => self.view = None,
            Action::ToggleLbas => {
                if let Some(View::Map(map)) = &mut self.view {
                    map.lbas = !map.lbas;
                }
            }
            Action::ViewMove(delta) => self.move_in_view(delta),
        }
    }

    /// Focus the next pane of the screen, or the next screen after its last pane.
    fn next_pane(&mut self) {
        let panes = self.screen.panes();
        match panes.iter().position(|p| *p == self.pane) {
            Some(i) if i + 1 < panes.len() => self.pane = panes[i + 1],
            _ => self.update(Action::NextScreen),
        }
    }

    /// Focus the previous pane of the screen, or the last pane of the previous screen before its first.
    fn previous_pane(&mut self) {
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

    /// Add a typed character to the focused pane's filter (bounded, printable) and go back to its top.
    fn filter_char(&mut self, c: char) {
        let filter = &mut self.filters[self.pane.slot()];
        if filter.chars().count() < MAX_FILTER && !c.is_control() {
            filter.push(c);
        }
        self.selected[self.pane.slot()] = 0;
        self.filter_changed();
    }

    fn clear_filter(&mut self) {
        self.filter_editing = false;
        self.filters[self.pane.slot()].clear();
        self.message = None;
        self.filter_changed();
    }

    /// After the focused pane's filter changed: the Units screen's list follows it.
    fn filter_changed(&mut self) {
        if self.pane == Pane::Units {
            self.units.filter(&self.pool, &self.filters[Pane::Units.slot()]);
        }
    }

    /// The last good pool read.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Takes a new pool read: the units' search texts are made once here, and the Units screen's list again.
    pub fn set_pool(&mut self, pool: Pool) {
        self.pool = pool;
        self.units = UnitList::new(&self.pool, &self.filters[Pane::Units.slot()]);
    }

    /// Send the open form's request once it validates; an invalid form stays open with its errors.
    fn submit_form(&mut self) {
        if let Some(request) = self.form.as_mut().and_then(Form::validate) {
            self.form = None;
            self.request(request);
        }
    }

    fn destroy_selected_volume(&mut self) {
        let volume = self.visible_volumes().get(self.selected(Pane::Volumes)).map(|v| (*v).clone());
        match volume {
            Some(volume) => self.request(Request::DestroyVolume {
                unit: self.unit_ref(volume.unit_index),
                volume: volume.index,
                name: volume.name,
            }),
            None => self.say("no volume selected"),
        }
    }

    /// The selected partition, or the destroy-partition form when none is selected.
    fn destroy_selected_partition(&mut self) {
        let partition = self.visible_partitions().get(self.selected(Pane::Partitions)).map(|p| (*p).clone());
        match partition {
            Some(p) => self.request(Request::DestroyPartition {
                unit: self.unit_ref(p.unit_index),
                volume: p.volume_index,
                partition: p.index,
            }),
            None => self.update(Action::OpenForm(FormKind::DestroyPartition)),
        }
    }

    /// The selected volume's or assignment's host loses it; the unassign form when nothing assigned is selected.
    fn unassign_selected(&mut self) {
        let selected = self.prefill(FormKind::Unassign);
        match (&selected.unit, selected.volume, selected.host) {
            (Some(unit), Some(volume), Some(host)) => {
                self.request(Request::Unassign { unit: unit.clone(), volume, host: Some(host) })
            }
            (Some(unit), Some(volume), None) if self.pane == Pane::Volumes => {
                self.say(format!("volume {volume} of unit {unit} is not assigned to a host"))
            }
            _ => self.form = Some(Form::prefilled(FormKind::Unassign, &selected)),
        }
    }

    /// The station index of the unit selected on the Units screen.
    fn selected_unit_index(&self) -> Option<u32> {
        self.visible_unit(self.selected(Pane::Units)).map(|u| u.index)
    }

    /// Ask before cancelling a pending task; say why a running or ended one cannot be cancelled.
    fn cancel_selected_task(&mut self) {
        match self.selected_task() {
            Some(task) if task.state == TaskState::Pending => {
                self.confirm = Some(Confirm::new(Command::Cancel { task: task.index, what: task.summary() }))
            }
            Some(task) if task.state == TaskState::Running => self.say(format!(
                "task {} is running: only pending tasks can be cancelled; a running one finishes its steps",
                task.index
            )),
            Some(task) => self.say(format!("task {} has ended ({}); x removes it", task.index, task.state)),
            None => self.say("no task selected"),
        }
    }

    /// Remove an ended task from the station's table; say why a pending or running one stays.
    fn remove_selected_task(&mut self) {
        match self.selected_task() {
            Some(task) if task.state.is_ended() => self.send(Command::Remove { task: task.index }),
            Some(task) => self.say(format!(
                "task {} is {}: it can be removed once it has ended (c cancels a pending one)",
                task.index, task.state
            )),
            None => self.say("no task selected"),
        }
    }

    /// Ask before approving (or rejecting) the selected pending unit; say why a rejected one is not rejected again.
    fn decide_selected_pending(&mut self, approve: bool) {
        let Some(unit) = self.visible_pending().get(self.selected(Pane::Pending)).map(|p| (*p).clone()) else {
            return self.say("no pending unit selected");
        };
        let (pending, what) = (unit.index, unit.describe());
        match (approve, unit.state) {
            (true, _) => self.request(Request::ApproveUnit { pending, what }),
            (false, PendingState::Rejected) => {
                self.say(format!("pending unit {what} is rejected already; A approves it after all"))
            }
            (false, _) => self.request(Request::RejectUnit { pending, what }),
        }
    }

    /// Send the command waiting for confirmation, or say it was not done.
    fn answer_confirmation(&mut self, yes: bool) {
        if let Some(confirm) = self.confirm.take() {
            if yes {
                self.send(confirm.command);
            } else {
                self.say(format!("not done: {}", confirm.command));
            }
        }
    }

    fn open_unit_map(&mut self) {
        match self.selected_unit_index() {
            Some(unit) => self.view = Some(View::Map(MapView { unit, volume: None, lbas: false })),
            None => self.say("no unit selected"),
        }
    }

    fn open_volume_map(&mut self) {
        match self.visible_volumes().get(self.selected(Pane::Volumes)) {
            Some(v) => self.view = Some(View::Map(MapView { unit: v.unit_index, volume: Some(v.index), lbas: false })),
            None => self.say("no volume selected"),
        }
    }

    /// Moves the map's highlight along the unit's volumes (in address order), or the open notification along the
    /// list, staying at the ends.
    fn move_in_view(&mut self, delta: isize) {
        let step = |position: Option<usize>, len: usize| -> Option<usize> {
            let last = len.checked_sub(1)?;
            Some(match position {
                Some(p) => p.saturating_add_signed(delta).min(last),
                None if delta < 0 => last,
                None => 0,
            })
        };
        match self.view.clone() {
            Some(View::Map(mut map)) => {
                let volumes = self.unit_volumes(map.unit);
                let position = volumes.iter().position(|v| Some(v.index) == map.volume);
                map.volume = step(position, volumes.len()).map(|i| volumes[i].index);
                self.view = Some(View::Map(map));
            }
            Some(View::Notification(id)) => {
                let ids: Vec<i64> = self.visible_notifications().iter().map(|n| n.id).collect();
                let position = ids.iter().position(|n| *n == id);
                if let Some(i) = step(position, ids.len()) {
                    self.view = Some(View::Notification(ids[i]));
                    self.selected[Pane::Notifications.slot()] = i;
                    self.follow = i + 1 == ids.len();
                }
            }
            None => {}
        }
    }

    /// The volumes of unit `unit`, in address order.
    pub fn unit_volumes(&self, unit: u32) -> Vec<&Volume> {
        let mut volumes: Vec<&Volume> = self.pool.volumes.iter().filter(|v| v.unit_index == unit).collect();
        volumes.sort_by_key(|v| (v.start_lba, v.index));
        volumes
    }

    /// Takes what a background source sent.
    pub fn apply(&mut self, update: Update) {
        match update {
            Update::Snapshot(snapshot) => {
                self.now_unix = snapshot.taken_unix;
                match snapshot.pool {
                    Ok(pool) => {
                        self.set_pool(pool);
                        self.pool_error = None;
                        self.pool_read_unix = Some(snapshot.taken_unix);
                    }
                    // Keep showing the last pool read; the status line says how old it is.
                    Err(why) => self.pool_error = Some(why),
                }
                if snapshot.units_read {
                    self.take_units_read(snapshot.taken_unix, snapshot.traffic, snapshot.traffic_errors);
                }
                // A unit that did not answer keeps the media it last reported; one that left the pool loses them.
                self.media.extend(snapshot.media);
                let pool = &self.pool;
                self.media.retain(|index, _| pool.unit(*index).is_some());
                match snapshot.tasks {
                    Ok(mut tasks) => {
                        tasks.sort_by_key(|t| std::cmp::Reverse((t.created_unix, t.index)));
                        self.steps.record(snapshot.taken_unix, &tasks);
                        self.tasks = tasks;
                        self.tasks_error = None;
                        self.tasks_read_unix = Some(snapshot.taken_unix);
                        self.report_ended_tasks();
                    }
                    Err(why) => self.tasks_error = Some(why),
                }
                match snapshot.assignments {
                    Ok(assignments) => {
                        self.assignments = assignments;
                        self.assignments_error = None;
                        self.assignments_read_unix = Some(snapshot.taken_unix);
                    }
                    Err(why) => self.assignments_error = Some(why),
                }
                match snapshot.pending {
                    Ok(pending) => {
                        self.pending = pending;
                        self.pending_error = None;
                        self.pending_read_unix = Some(snapshot.taken_unix);
                    }
                    Err(why) => self.pending_error = Some(why),
                }
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
            Update::Submitted { request, task } => {
                self.say(format!("task {task} submitted: {request}"));
                if self.followed.len() >= MAX_FOLLOWED_TASKS {
                    self.followed.pop_first();
                }
                let submitted = submitted_task(task, &request, self.now_unix);
                self.followed.insert(task, Followed { request, seen: false, submitted });
                // The station may have finished it before the answer got here.
                self.report_ended_tasks();
            }
            Update::Cancelled { task } => {
                self.followed.remove(&task);
                if let Some(row) = self.tasks.iter_mut().find(|t| t.index == task) {
                    row.state = TaskState::Cancelled.into();
                }
                self.say(format!("task {task} cancelled"));
            }
            Update::Removed { task } => {
                self.followed.remove(&task);
                self.tasks.retain(|t| t.index != task);
                self.clamp_selections();
                self.say(format!("task {task} removed"));
            }
            Update::Refused { command, why } => self.complain(format!("could not {command}: {why}")),
        }
    }

    /// Takes what a read of the units' own tables found: traffic (and its history) and why some could not be read.
    fn take_units_read(&mut self, at: i64, traffic: Vec<Traffic>, errors: Vec<String>) {
        self.history.record(at, &traffic);
        // Busiest first reorders the rows at every refresh: the selection stays on its row.
        let key = |t: &Traffic| (t.unit_index, t.export.clone(), t.host.clone());
        let selected = self.visible_traffic().get(self.selected(Pane::Activity)).map(|t| key(t));
        self.traffic = traffic;
        self.traffic_errors = errors;
        if let Some(row) = selected.and_then(|k| self.visible_traffic().iter().position(|t| key(t) == k)) {
            self.selected[Pane::Activity.slot()] = row;
        }
    }

    /// Tells the user about followed tasks that ended (done: the result; failed: the reason) and stops following
    /// them.
    fn report_ended_tasks(&mut self) {
        let mut ended = Vec::new();
        let mut failed = false;
        let tasks = &self.tasks;
        self.followed.retain(|index, followed| match tasks.iter().find(|t| t.index == *index) {
            Some(task) if task.state.is_ended() => {
                let outcome = if task.result.is_empty() { followed.request.to_string() } else { task.result.clone() };
                failed |= task.state != TaskState::Done;
                ended.push(match task.state {
                    Reported::Known(TaskState::Cancelled) => format!("task {index} cancelled"),
                    state => format!("task {index} {state}: {outcome}"),
                });
                false
            }
            Some(_) => {
                followed.seen = true;
                true
            }
            None if followed.seen => {
                failed = true;
                ended.push(format!("task {index} was removed before it ended ({})", followed.request));
                false
            }
            None => true,
        });
        if !ended.is_empty() {
            self.message = Some(StatusMessage { text: ended.join(" · "), error: failed });
        }
    }

    fn with_form(&mut self, edit: impl FnOnce(&mut Form)) {
        if let Some(form) = self.form.as_mut() {
            edit(form);
        }
    }

    fn say(&mut self, text: impl Into<String>) {
        self.message = Some(StatusMessage { text: text.into(), error: false });
    }

    fn complain(&mut self, text: impl Into<String>) {
        self.message = Some(StatusMessage { text: text.into(), error: true });
    }

    /// A validated request: destructive ones are confirmed first.
    fn request(&mut self, request: Request) {
        let note = self.assignment_note(&request);
        let command = Command::Submit(request);
        if command.needs_confirmation() {
            self.confirm = Some(Confirm { command, note });
        } else {
            self.send(command);
        }
    }

    /// Queues a command for the main loop; its answer comes back as an [`Update`].
    fn send(&mut self, command: Command) {
        self.say(format!("sending: {command}…"));
        self.outbox.push(command);
    }

    fn go_to(&mut self, screen: Screen) {
        self.view = None;
        self.screen = screen;
        self.pane = screen.panes()[0];
        self.filter_editing = false;
    }

    /// For destroying a volume that is assigned: to which hosts, and how.
    fn assignment_note(&self, request: &Request) -> Option<String> {
        let Request::DestroyVolume { unit, volume, .. } = request else { return None };
        let hosts: Vec<String> = self
            .assignments
            .iter()
            .filter(|a| a.volume_index == *volume && self.unit_ref(a.unit_index) == *unit)
            .map(|a| format!("{} ({})", a.host_text(), a.mode))
            .collect();
        (!hosts.is_empty()).then(|| format!("It is assigned to {}, which loses it.", hosts.join(", ")))
    }

    /// How the station should be told about unit `index`: its name when no other unit has it, else its id, else
    /// its index (the station takes all three).
    pub fn unit_ref(&self, index: u32) -> String {
        let Some(unit) = self.pool.unit(index) else { return index.to_string() };
        let name_is_unique = self.pool.units.iter().filter(|u| u.name == unit.name).count() == 1;
        if !unit.name.is_empty() && name_is_unique && unit.name.parse::<u32>().is_err() {
            unit.name.clone()
        } else if !unit.id.is_empty() {
            unit.id.clone()
        } else {
            index.to_string()
        }
    }

    /// The removal of unit `index`: forced (releasing them) when the station reports assignments of its volumes,
    /// which the confirmation lists.
    fn removal(&self, index: u32) -> Request {
        let assigned: Vec<String> = self
            .assignments
            .iter()
            .filter(|a| a.unit_index == index)
            .map(|a| format!("volume {} ({}) from {}", a.volume_index, a.volume_name, a.host_text()))
            .collect();
        Request::RemoveUnit { unit: self.unit_ref(index), force: !assigned.is_empty(), assigned }
    }

    /// What a form of `kind` starts with, from the selection.
    fn prefill(&self, kind: FormKind) -> Prefill {
        let mut prefill = Prefill::default();
        match self.pane {
            Pane::Units => {
                prefill.unit = self.visible_unit(self.selected(Pane::Units)).map(|u| self.unit_ref(u.index));
            }
            Pane::Volumes | Pane::Partitions => {
                if let Some(volume) = self.visible_volumes().get(self.selected(Pane::Volumes)) {
                    prefill.unit = Some(self.unit_ref(volume.unit_index));
                    prefill.volume = Some(volume.index);
                    prefill.host = self.assignment_of(volume.unit_index, volume.index).and_then(|a| a.host);
                }
                if self.pane == Pane::Partitions {
                    prefill.partition = self.visible_partitions().get(self.selected(Pane::Partitions)).map(|p| p.index);
                }
            }
            Pane::Hosts => {
                if let Some(assignment) = self.visible_assignments().get(self.selected(Pane::Hosts)) {
                    prefill.host = assignment.host;
                    // Assigning or allocating for the selected host: the selected volume is already taken.
                    if !matches!(kind, FormKind::Assign | FormKind::Allocate) {
                        prefill.unit = Some(self.unit_ref(assignment.unit_index));
                        prefill.volume = Some(assignment.volume_index);
                    }
                }
            }
            _ => {}
        }
        if kind == FormKind::Assign && self.pane != Pane::Hosts {
            // A volume goes to a new host: the one it may have now is not a useful default.
            prefill.host = None;
        }
        prefill
    }

    /// The host volume `volume` of unit `unit` is assigned to, if any.
    pub fn assignment_of(&self, unit: u32, volume: u32) -> Option<&Assignment> {
        self.assignments.iter().find(|a| (a.unit_index, a.volume_index) == (unit, volume))
    }

    fn selected_task(&self) -> Option<Task> {
        self.visible_tasks().get(self.selected(Pane::Tasks)).map(|t| (*t).clone())
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
        for pane in [
            Pane::Units,
            Pane::Volumes,
            Pane::Partitions,
            Pane::Hosts,
            Pane::Notifications,
            Pane::Activity,
            Pane::Tasks,
            Pane::Pending,
        ] {
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
            Pane::Units => self.units.visible.len(),
            Pane::Volumes => self.visible_volumes().len(),
            Pane::Partitions => self.visible_partitions().len(),
            Pane::Notifications => self.visible_notifications().len(),
            Pane::Activity => self.visible_traffic().len(),
            Pane::Hosts => self.visible_assignments().len(),
            Pane::Tasks => self.visible_tasks().len(),
            Pane::Pending => self.visible_pending().len(),
        }
    }

    /// Pending units matching the filter (index, claimed id and name, address, sysName, sysDescr, state): those
    /// waiting first, then the rejected ones, each by index.
    pub fn visible_pending(&self) -> Vec<&PendingUnit> {
        let filter = self.filter(Pane::Pending);
        let mut rows: Vec<&PendingUnit> = self
            .pending
            .iter()
            .filter(|p| {
                let (index, address, state) = (p.index.to_string(), p.address_text(), p.state.to_string());
                matches_terms(filter, &[&index, &p.unit_id, &p.name, &address, &p.sys_name, &p.sys_descr, &state])
            })
            .collect();
        rows.sort_by_key(|p| (p.state != PendingState::Pending, p.index));
        rows
    }

    /// Units waiting for approval (not the rejected ones).
    pub fn waiting_count(&self) -> usize {
        self.pending.iter().filter(|p| p.state == PendingState::Pending).count()
    }

    /// Tasks matching the filter (id, operation and arguments, state, owner, step, result), newest first: the
    /// tasks this console submitted that no read of the station's tasks has shown yet, then the station's.
    pub fn visible_tasks(&self) -> Vec<&Task> {
        let filter = self.filter(Pane::Tasks);
        let submitted = self
            .followed
            .values()
            .rev()
            .filter(|f| !f.seen && !self.tasks.iter().any(|t| t.index == f.submitted.index))
            .map(|f| &f.submitted);
        submitted
            .chain(&self.tasks)
            .filter(|t| {
                let (id, summary, state) = (t.index.to_string(), t.summary(), t.state.to_string());
                matches_terms(filter, &[&id, &summary, &state, &t.owner, &t.step, &t.result])
            })
            .collect()
    }

    /// Assignments matching the filter (host, unit, volume name, mode, NBD URI), by host, unit and volume.
    pub fn visible_assignments(&self) -> Vec<&Assignment> {
        let filter = self.filter(Pane::Hosts);
        let mut rows: Vec<&Assignment> = self
            .assignments
            .iter()
            .filter(|a| {
                let unit = self.pool.unit(a.unit_index).map(Unit::label).unwrap_or_default();
                let (host, mode) = (a.host_text(), a.mode.to_string());
                matches_terms(filter, &[&host, &unit, &a.volume_name, &mode, &a.nbd_uri])
            })
            .collect();
        rows.sort_by_key(|a| (a.host, a.unit_index, a.volume_index));
        rows
    }

    /// Units matching the filter (name, id, state, agent address, reason), in the station's order. Kept from the
    /// last change of the pool or the filter, so asking costs nothing.
    pub fn visible_units(&self) -> impl ExactSizeIterator<Item = &Unit> + Clone + '_ {
        self.units.visible.iter().map(|&at| &self.pool.units[at])
    }

    /// The `row`th unit of [`App::visible_units`].
    pub fn visible_unit(&self, row: usize) -> Option<&Unit> {
        self.units.visible.get(row).map(|&at| &self.pool.units[at])
    }

    /// The length of the longest label among [`App::visible_units`] (0 when none).
    pub fn longest_visible_unit_label(&self) -> usize {
        self.units.longest_label
    }

    pub fn visible_volumes(&self) -> Vec<&Volume> {
        let filter = self.filter(Pane::Volumes);
        self.pool
            .volumes
            .iter()
            .filter(|v| {
                let unit = self.pool.unit(v.unit_index).map(Unit::label).unwrap_or_default();
                let host = self.assignment_of(v.unit_index, v.index).map(Assignment::host_text).unwrap_or_default();
                matches_terms(filter, &[&v.name, &v.export, &unit, &host])
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

    /// Traffic rows matching the filter, busiest first (bytes read and written per second; rows without rates yet
    /// last).
    pub fn visible_traffic(&self) -> Vec<&Traffic> {
        let filter = self.filter(Pane::Activity);
        let mut rows: Vec<&Traffic> =
            self.traffic.iter().filter(|t| matches_terms(filter, &[&t.unit_label, &t.export, &t.host])).collect();
        let load = |t: &Traffic| t.rates.map_or(-1.0, |r| r.bytes_read + r.bytes_written);
        rows.sort_by(|a, b| load(b).total_cmp(&load(a)));
        rows
    }

    /// Notifications matching the filter. Besides plain words, the filter takes `unit:X` (a unit's name, id
    /// prefix or address) and `type:X` (part of the notification's name).
    pub fn visible_notifications(&self) -> Vec<&Notification> {
        let (filter, _) = NotificationFilter::parse(self.filter(Pane::Notifications));
        self.notifications.iter().filter(|n| filter.matches(n, &self.pool)).collect()
    }
}

impl App {
    /// What is wrong with `pane`'s filter, if anything: a `key:value` term with a key the list does not know (such
    /// terms are left out of the filtering, so the list does not go blank because of them).
    pub fn filter_error(&self, pane: Pane) -> Option<String> {
        match pane {
            Pane::Notifications => NotificationFilter::parse(self.filter(pane)).1,
            _ => None,
        }
    }
}

/// Task `index` as submitted for `request` at `now` (Unix seconds), pending, as the station's task table will
/// list it.
fn submitted_task(index: u32, request: &Request, now: i64) -> Task {
    let mut task = Task::new(index, request.operation());
    task.created_unix = Some(now);
    task.step = "submitted".to_string();
    let volume = |v: &u32| Some(VolumeIndex(*v));
    match request {
        Request::AddUnit { agent } => task.unit = agent.to_string(),
        Request::CreateVolume { unit, size_bytes, name } => {
            (task.unit, task.size) = (unit.clone(), size_bytes.to_string());
            task.name = name.clone().unwrap_or_default();
        }
        Request::DestroyVolume { unit, volume: v, .. } => (task.unit, task.volume) = (unit.clone(), volume(v)),
        Request::CreatePartition { unit, volume: v, size_bytes } => {
            (task.unit, task.volume, task.size) = (unit.clone(), volume(v), size_bytes.to_string());
        }
        Request::DestroyPartition { unit, volume: v, partition } => {
            (task.unit, task.volume, task.partition) = (unit.clone(), volume(v), Some(PartitionIndex(*partition)));
        }
        Request::Assign { unit, volume: v, host, read_only } => {
            (task.unit, task.volume, task.host, task.read_only) =
                (unit.clone(), volume(v), host.to_string(), *read_only);
        }
        Request::Unassign { unit, volume: v, host } => {
            (task.unit, task.volume) = (unit.clone(), volume(v));
            task.host = host.map(|h| h.to_string()).unwrap_or_default();
        }
        Request::Allocate { size_bytes, host, name, read_only, .. } => {
            (task.size, task.host, task.read_only) = (size_bytes.to_string(), host.to_string(), *read_only);
            task.name = name.clone().unwrap_or_default();
        }
        Request::RescanUnit { unit } | Request::RemoveUnit { unit, .. } => task.unit = unit.clone(),
        // dvsanStationTaskUnit names the pending unit by its dvsanStationPendingIndex.
        Request::ApproveUnit { pending, .. } | Request::RejectUnit { pending, .. } => task.unit = pending.to_string(),
    }
    task
}

/// The Units screen's list over a pool: what each unit is searched by, made once per pool read, and the units the
/// filter lets through, made again when the filter changes. At 10,000 units a typed filter character then costs
/// one pass of substring searches, not 50,000 strings made and lowered.
#[derive(Debug, Default)]
struct UnitList {
    /// Per unit of the pool, in its order: name, id, state, agent address and reason, lowercase, one per line (a
    /// filter term has no whitespace, so it is found in the text exactly when it is found in one of them).
    search: Vec<String>,
    /// Per unit of the pool: the length of its label.
    label_len: Vec<usize>,
    /// The positions in the pool of the units the filter lets through.
    visible: Vec<usize>,
    /// The longest label among the visible units.
    longest_label: usize,
}

impl UnitList {
    fn new(pool: &Pool, filter: &str) -> UnitList {
        let search = pool
            .units
            .iter()
            .map(|u| {
                let agent = u.agent.map(|a| a.to_string()).unwrap_or_default();
                [u.name.as_str(), &u.id, &u.state.to_string(), &agent, &u.reason].join("\n").to_lowercase()
            })
            .collect();
        let label_len = pool.units.iter().map(|u| u.label().len()).collect();
        let mut list = UnitList { search, label_len, visible: Vec::new(), longest_label: 0 };
        list.filter(pool, filter);
        list
    }

    /// Lets through the units with every whitespace-separated term of `filter` (case-insensitively).
    fn filter(&mut self, pool: &Pool, filter: &str) {
        debug_assert_eq!(self.search.len(), pool.units.len());
        let terms: Vec<String> = filter.split_whitespace().map(str::to_lowercase).collect();
        self.visible = (0..self.search.len()).filter(|&at| terms.iter().all(|t| self.search[at].contains(t))).collect();
        self.longest_label = self.visible.iter().map(|&at| self.label_len[at]).max().unwrap_or(0);
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

/// Whether `key` (the text before a `:`) reads as a filter key: letters only. Addresses (`127.0.0.1:162`) and
/// OIDs stay plain words.
fn is_filter_key(key: &str) -> bool {
    !key.is_empty() && key.chars().all(|c| c.is_ascii_alphabetic())
}

impl NotificationFilter {
    /// The filter of `text`, and an error naming the first term with an unknown key (`foo:bar`), which is left
    /// out of the filter.
    pub fn parse(text: &str) -> (NotificationFilter, Option<String>) {
        let mut filter = NotificationFilter::default();
        let mut words = Vec::new();
        let mut error = None;
        for term in text.split_whitespace() {
            if let Some(unit) = term.strip_prefix("unit:") {
                filter.unit = Some(unit.to_lowercase());
            } else if let Some(kind) = term.strip_prefix("type:") {
                filter.type_name = Some(kind.to_lowercase());
            } else if let Some((key, _)) = term.split_once(':').filter(|(k, _)| is_filter_key(k)) {
                error.get_or_insert(format!(
                    "unknown filter key \"{key}:\" in \"{term}\": use unit:NAME, type:NAME or plain words"
                ));
            } else {
                words.push(term);
            }
        }
        filter.words = words.join(" ");
        (filter, error)
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
            // A unit named `wanted` sent it: the notification names the unit's id, or (notifications read over
            // SNMP carry no station-side unit id) it came from the unit's agent address.
            let by_name = pool.units.iter().any(|u| {
                u.name.to_lowercase() == *wanted
                    && ((!u.id.is_empty() && unit_id == u.id.to_lowercase())
                        || u.agent.is_some_and(|a| a.ip().to_string() == source_ip))
            });
            let by_id = !unit_id.is_empty() && unit_id.starts_with(wanted.as_str());
            if !(by_name || by_id || source_ip == wanted.as_str()) {
                return false;
            }
        }
        matches_terms(&self.words, &[&n.type_name, &n.source, &n.details, n.unit_id.as_deref().unwrap_or("")])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TaskOperation;
    use crate::source::fake::{demo_snapshot, FAKE_NOW};

    fn demo() -> App {
        let mut app = App::new("127.0.0.1:1161", TailStatus::Following);
        app.apply(Update::Snapshot(demo_snapshot()));
        app
    }

    fn key(app: &App, code: KeyCode) -> Action {
        app.handle_key(KeyEvent::new(code, KeyModifiers::NONE))
    }

    fn press(app: &mut App, code: KeyCode) {
        let action = key(app, code);
        app.update(action);
    }

    fn type_text(app: &mut App, text: &str) {
        for c in text.chars() {
            press(app, KeyCode::Char(c));
        }
    }

    fn message(app: &App) -> String {
        app.message.as_ref().map(|m| m.text.clone()).unwrap_or_default()
    }

    fn go(app: &mut App, screen: Screen, down: usize) {
        app.update(Action::GoTo(screen));
        for _ in 0..down {
            app.update(Action::Down);
        }
    }

    #[test]
    fn action_keys_depend_on_the_screen() {
        let mut app = demo();
        let cases = [
            (Screen::Units, 'a', Action::OpenForm(FormKind::AddUnit)),
            (Screen::Units, 'c', Action::OpenForm(FormKind::CreateVolume)),
            (Screen::Units, 'p', Action::OpenForm(FormKind::CreatePartition)),
            (Screen::Units, 'r', Action::RescanSelectedUnit),
            (Screen::Units, 'R', Action::RemoveSelectedUnit),
            (Screen::Units, 'n', Action::OpenForm(FormKind::Allocate)),
            (Screen::Units, 'd', Action::None),
            (Screen::Units, 'x', Action::None),
            (Screen::Volumes, 'a', Action::OpenForm(FormKind::Assign)),
            (Screen::Volumes, 'u', Action::UnassignSelected),
            (Screen::Volumes, 'd', Action::DestroySelectedVolume),
            (Screen::Volumes, 'r', Action::None),
            (Screen::Hosts, 'a', Action::OpenForm(FormKind::Assign)),
            (Screen::Hosts, 'u', Action::UnassignSelected),
            (Screen::Hosts, 'n', Action::OpenForm(FormKind::Allocate)),
            (Screen::Hosts, 'c', Action::None),
            (Screen::Notifications, 'c', Action::None),
            (Screen::Activity, 'n', Action::None),
            (Screen::Tasks, 'c', Action::CancelSelectedTask),
            (Screen::Tasks, 'x', Action::RemoveSelectedTask),
            (Screen::Tasks, 'a', Action::None),
        ];
        for (screen, c, action) in cases {
            app.update(Action::GoTo(screen));
            assert_eq!(key(&app, KeyCode::Char(c)), action, "{c} on {screen:?}");
        }
        assert_eq!(key(&app, KeyCode::Delete), Action::RemoveSelectedTask);
        app.update(Action::GoTo(Screen::Volumes));
        app.update(Action::NextPane);
        assert_eq!(key(&app, KeyCode::Char('d')), Action::DestroySelectedPartition);
        // Navigation keys keep their meaning everywhere.
        for screen in Screen::ALL {
            app.update(Action::GoTo(screen));
            assert_eq!(key(&app, KeyCode::Char('j')), Action::Down);
            assert_eq!(key(&app, KeyCode::Char('g')), Action::Top);
            assert_eq!(key(&app, KeyCode::Char('l')), Action::NextScreen);
        }
    }

    #[test]
    fn enter_opens_maps_and_notifications_and_the_view_keys_work_there() {
        let mut app = demo();
        go(&mut app, Screen::Units, 1);
        press(&mut app, KeyCode::Enter);
        assert_eq!(app.view, Some(View::Map(MapView { unit: 2, volume: None, lbas: false })));
        // Keys of the screen below do nothing while the map is open; b, ↑/↓ and Esc work.
        assert_eq!(key(&app, KeyCode::Char('c')), Action::None);
        press(&mut app, KeyCode::Char('b'));
        press(&mut app, KeyCode::Down);
        assert_eq!(app.view, Some(View::Map(MapView { unit: 2, volume: Some(1), lbas: true })));
        press(&mut app, KeyCode::Down);
        assert_eq!(app.view, Some(View::Map(MapView { unit: 2, volume: Some(1), lbas: true })));
        press(&mut app, KeyCode::Esc);
        assert_eq!(app.view, None);
        // m on a volume: its unit's map with the volume highlighted; a screen key closes it.
        go(&mut app, Screen::Volumes, 1);
        press(&mut app, KeyCode::Char('m'));
        assert_eq!(app.view, Some(View::Map(MapView { unit: 1, volume: Some(2), lbas: false })));
        press(&mut app, KeyCode::Up);
        assert_eq!(app.view, Some(View::Map(MapView { unit: 1, volume: Some(1), lbas: false })));
        press(&mut app, KeyCode::Char('4'));
        assert_eq!((app.view.clone(), app.screen), (None, Screen::Notifications));
        for n in crate::source::fake::demo_notifications() {
            app.apply(Update::Notification(n));
        }
        press(&mut app, KeyCode::Enter);
        assert_eq!(app.view, Some(View::Notification(4)));
        press(&mut app, KeyCode::Char('k'));
        assert_eq!(
            (app.view.clone(), app.selected(Pane::Notifications), app.follow),
            (Some(View::Notification(3)), 2, false)
        );
        press(&mut app, KeyCode::Char('q'));
        assert!(app.quit);
    }

    #[test]
    fn the_activity_selection_stays_on_its_row_when_the_busiest_change() {
        let mut app = demo();
        go(&mut app, Screen::Activity, 1);
        let selected = |app: &App| app.visible_traffic()[app.selected(Pane::Activity)].export.clone();
        // unit2's vol1 is busiest, then unit1's db1.
        assert_eq!(selected(&app), "db1");
        let mut snapshot = demo_snapshot();
        snapshot.traffic.iter_mut().filter(|t| t.export == "db1").for_each(|t| {
            t.rates = Some(crate::model::Rates { bytes_read: 1e9, ..Default::default() });
        });
        app.apply(Update::Snapshot(snapshot));
        assert_eq!((app.selected(Pane::Activity), selected(&app)), (0, "db1".to_string()));
    }

    #[test]
    fn a_valid_form_goes_to_the_outbox() {
        let mut app = demo();
        press(&mut app, KeyCode::Char('c'));
        assert_eq!(app.form.as_ref().map(|f| f.fields[0].value.as_str()), Some("unit1"));
        type_text(&mut app, "2G");
        press(&mut app, KeyCode::Tab);
        type_text(&mut app, "db2");
        press(&mut app, KeyCode::Enter);
        assert!(app.form.is_none());
        let request = Request::CreateVolume { unit: "unit1".into(), size_bytes: 2 << 30, name: Some("db2".into()) };
        assert_eq!(app.take_outbox(), [Command::Submit(request)]);
        assert!(message(&app).starts_with("sending: create a 2 GiB volume on unit unit1 named db2"));
        assert!(app.take_outbox().is_empty());
        // An invalid one stays open and sends nothing.
        press(&mut app, KeyCode::Char('n'));
        press(&mut app, KeyCode::Enter);
        assert!(app.form.is_some());
        assert!(app.take_outbox().is_empty());
    }

    #[test]
    fn destructive_requests_are_confirmed_first() {
        let mut app = demo();
        go(&mut app, Screen::Volumes, 1);
        press(&mut app, KeyCode::Char('d'));
        assert!(app.confirm.is_some());
        assert!(app.take_outbox().is_empty());
        press(&mut app, KeyCode::Char('n'));
        assert!(app.take_outbox().is_empty());
        assert_eq!(message(&app), "not done: destroy volume 2 (db1) of unit unit1");
        press(&mut app, KeyCode::Char('d'));
        press(&mut app, KeyCode::Char('y'));
        let request = Request::DestroyVolume { unit: "unit1".into(), volume: 2, name: "db1".into() };
        assert_eq!(app.take_outbox(), [Command::Submit(request)]);

        // A selected partition is destroyed after a yes; without partitions, the form opens prefilled.
        press(&mut app, KeyCode::Tab);
        press(&mut app, KeyCode::Char('j'));
        press(&mut app, KeyCode::Char('d'));
        press(&mut app, KeyCode::Char('y'));
        let request = Request::DestroyPartition { unit: "unit1".into(), volume: 2, partition: 2 };
        assert_eq!(app.take_outbox(), [Command::Submit(request)]);
        press(&mut app, KeyCode::BackTab);
        press(&mut app, KeyCode::Char('k'));
        press(&mut app, KeyCode::Tab);
        press(&mut app, KeyCode::Char('d'));
        let form = app.form.take().unwrap();
        assert_eq!(form.kind, FormKind::DestroyPartition);
        let values: Vec<&str> = form.fields.iter().map(|f| f.value.as_str()).collect();
        assert_eq!(values, ["unit1", "1", ""]);
    }

    #[test]
    fn unassign_takes_the_host_from_the_selection() {
        let mut app = demo();
        go(&mut app, Screen::Volumes, 1);
        press(&mut app, KeyCode::Char('u'));
        press(&mut app, KeyCode::Char('y'));
        let host = "127.0.0.9".parse().ok();
        let request = Request::Unassign { unit: "unit1".into(), volume: 2, host };
        assert_eq!(app.take_outbox(), [Command::Submit(request)]);
        // unit3's scratch volume is not assigned.
        go(&mut app, Screen::Volumes, 3);
        press(&mut app, KeyCode::Char('u'));
        assert!(app.confirm.is_none());
        assert_eq!(message(&app), "volume 1 of unit unit3 is not assigned to a host");
        // On the Hosts screen, the selected assignment.
        go(&mut app, Screen::Hosts, 2);
        press(&mut app, KeyCode::Char('u'));
        let confirm = app.confirm.take().unwrap();
        let host = "127.0.0.10".parse().ok();
        assert_eq!(confirm.command, Command::Submit(Request::Unassign { unit: "unit2".into(), volume: 1, host }));
    }

    #[test]
    fn forms_are_prefilled_from_the_selection() {
        let mut app = demo();
        go(&mut app, Screen::Volumes, 1);
        press(&mut app, KeyCode::Char('a'));
        let form = app.form.take().unwrap();
        let values: Vec<&str> = form.fields.iter().map(|f| f.value.as_str()).collect();
        assert_eq!(values, ["unit1", "2", "", "no"]);
        assert_eq!(form.focus, 2);
        press(&mut app, KeyCode::Char('p'));
        let form = app.form.take().unwrap();
        assert_eq!((form.fields[1].value.as_str(), form.focus), ("2", 2));
        go(&mut app, Screen::Hosts, 2);
        press(&mut app, KeyCode::Char('n'));
        let form = app.form.take().unwrap();
        assert_eq!(form.fields[1].value, "127.0.0.10");
        press(&mut app, KeyCode::Char('a'));
        let form = app.form.take().unwrap();
        let values: Vec<&str> = form.fields.iter().map(|f| f.value.as_str()).collect();
        assert_eq!(values, ["", "", "127.0.0.10", "no"]);
    }

    #[test]
    fn rescan_goes_out_at_once() {
        let mut app = demo();
        go(&mut app, Screen::Units, 2);
        press(&mut app, KeyCode::Char('r'));
        assert!(app.confirm.is_none());
        assert_eq!(app.take_outbox(), [Command::Submit(Request::RescanUnit { unit: "unit3".into() })]);
    }

    #[test]
    fn removing_a_unit_is_confirmed_naming_its_assignments() {
        let mut app = demo();
        // unit1 has two assigned volumes: the removal releases them (removeUnitForce) and says so.
        go(&mut app, Screen::Units, 0);
        press(&mut app, KeyCode::Char('R'));
        let question = app.confirm.as_ref().unwrap().question();
        assert!(question.contains("remove unit unit1 from the pool"), "{question}");
        assert!(question.contains("volume 1 (vol1) from 127.0.0.9, volume 2 (db1) from 127.0.0.9"), "{question}");
        assert!(question.contains("Those hosts lose access"), "{question}");
        press(&mut app, KeyCode::Char('y'));
        let sent = app.take_outbox();
        let [Command::Submit(Request::RemoveUnit { unit, force: true, assigned })] = sent.as_slice() else {
            panic!("a forced removal of unit1 should go out")
        };
        assert_eq!((unit.as_str(), assigned.len()), ("unit1", 2));
        // unit3 has none: a plain removal, still confirmed; "n" sends nothing.
        go(&mut app, Screen::Units, 2);
        press(&mut app, KeyCode::Char('R'));
        let question = app.confirm.as_ref().unwrap().question();
        assert_eq!(question, "Really remove unit unit3 from the pool? Any notification from it adds it again. (y/n)");
        press(&mut app, KeyCode::Char('n'));
        assert!(app.take_outbox().is_empty());
    }

    #[test]
    fn tasks_are_cancelled_when_pending_and_removed_when_ended() {
        let mut app = demo();
        // Newest first: 12 cancelled, 11 pending, 10 running, 9 failed, 8 and 7 done.
        go(&mut app, Screen::Tasks, 0);
        let order: Vec<u32> = app.visible_tasks().iter().map(|t| t.index).collect();
        assert_eq!(order, [12, 11, 10, 9, 8, 7]);
        press(&mut app, KeyCode::Char('c'));
        assert!(app.confirm.is_none());
        assert!(message(&app).contains("has ended"));
        press(&mut app, KeyCode::Char('x'));
        assert_eq!(app.take_outbox(), [Command::Remove { task: 12 }]);
        press(&mut app, KeyCode::Char('j'));
        press(&mut app, KeyCode::Delete);
        assert!(app.take_outbox().is_empty());
        assert!(message(&app).contains("task 11 is pending: it can be removed once it has ended"));
        press(&mut app, KeyCode::Char('c'));
        assert!(app.confirm.as_ref().unwrap().question().contains("Cancel task 11 (rescan unit3)"));
        press(&mut app, KeyCode::Char('y'));
        assert_eq!(app.take_outbox(), [Command::Cancel { task: 11, what: "rescan unit3".into() }]);
        press(&mut app, KeyCode::Char('j'));
        press(&mut app, KeyCode::Char('c'));
        assert!(app.confirm.is_none());
        assert!(message(&app).contains("task 10 is running"));
        assert!(app.take_outbox().is_empty());
    }

    fn snapshot_with(tasks: Vec<Task>) -> Update {
        let mut snapshot = demo_snapshot();
        snapshot.tasks = Ok(tasks);
        Update::Snapshot(snapshot)
    }

    fn task(index: u32, state: TaskState, result: &str) -> Task {
        Task {
            state: state.into(),
            result: result.to_string(),
            created_unix: Some(FAKE_NOW),
            ..Task::new(index, TaskOperation::RescanUnit)
        }
    }

    #[test]
    fn the_end_of_a_submitted_task_is_reported() {
        let mut app = demo();
        let request = Request::RescanUnit { unit: "unit1".into() };
        app.apply(Update::Submitted { request: request.clone(), task: 40 });
        assert_eq!(message(&app), "task 40 submitted: rescan unit unit1");
        assert_eq!(app.followed_tasks(), [40]);
        app.apply(snapshot_with(vec![task(40, TaskState::Running, "")]));
        assert_eq!(app.followed_tasks(), [40]);
        assert_eq!(message(&app), "task 40 submitted: rescan unit unit1");
        app.apply(snapshot_with(vec![task(40, TaskState::Done, "unit1 read: 2 volumes")]));
        assert_eq!(
            app.message,
            Some(StatusMessage { text: "task 40 done: unit1 read: 2 volumes".into(), error: false })
        );
        assert!(app.followed_tasks().is_empty());
        // Reported once only.
        app.message = None;
        app.apply(snapshot_with(vec![task(40, TaskState::Done, "unit1 read: 2 volumes")]));
        assert_eq!(app.message, None);

        // A failure says why, as an error; two ends at once are both told.
        app.apply(Update::Submitted { request: request.clone(), task: 41 });
        app.apply(Update::Submitted { request: request.clone(), task: 42 });
        app.apply(snapshot_with(vec![
            task(41, TaskState::Failed, "unit1 does not answer"),
            task(42, TaskState::Cancelled, ""),
        ]));
        let shown = app.message.clone().unwrap();
        assert!(shown.error);
        assert_eq!(shown.text, "task 41 failed: unit1 does not answer · task 42 cancelled");

        // The answer may come after a snapshot showing the task already ended.
        app.apply(snapshot_with(vec![task(43, TaskState::Done, "")]));
        app.apply(Update::Submitted { request: request.clone(), task: 43 });
        assert_eq!(message(&app), "task 43 done: rescan unit unit1");

        // A task removed by someone else before it ended.
        app.apply(Update::Submitted { request, task: 44 });
        app.apply(snapshot_with(vec![task(44, TaskState::Pending, "")]));
        app.apply(snapshot_with(Vec::new()));
        assert!(message(&app).contains("task 44 was removed before it ended"));
        assert!(app.followed_tasks().is_empty());
    }

    #[test]
    fn answers_to_commands_update_the_list_and_the_status_line() {
        let mut app = demo();
        app.apply(Update::Removed { task: 12 });
        assert!(app.tasks.iter().all(|t| t.index != 12));
        assert_eq!(message(&app), "task 12 removed");
        app.apply(Update::Cancelled { task: 11 });
        assert_eq!(app.tasks.iter().find(|t| t.index == 11).map(|t| t.state), Some(TaskState::Cancelled.into()));
        app.apply(Update::Refused { command: Command::Remove { task: 10 }, why: "task 10 is running".into() });
        assert_eq!(
            app.message,
            Some(StatusMessage { text: "could not remove task 10: task 10 is running".into(), error: true })
        );
    }

    #[test]
    fn a_failed_table_read_keeps_the_last_list() {
        let mut app = demo();
        let mut failed = demo_snapshot();
        failed.tasks = Err("station does not answer".into());
        failed.assignments = Err("station does not answer".into());
        app.apply(Update::Snapshot(failed));
        assert_eq!(app.tasks.len(), 6);
        assert_eq!(app.assignments.len(), 3);
        assert_eq!(app.tasks_error.as_deref(), Some("station does not answer"));
        assert_eq!(app.assignments_error.as_deref(), Some("station does not answer"));
        app.apply(Update::Snapshot(demo_snapshot()));
        assert_eq!((app.tasks_error.as_ref(), app.assignments_error.as_ref()), (None, None));
    }

    fn unit_names(app: &App) -> Vec<&str> {
        app.visible_units().map(|u| u.name.as_str()).collect()
    }

    #[test]
    fn the_units_filter_follows_typing_and_new_pool_reads() {
        let mut app = demo();
        assert_eq!(unit_names(&app), ["unit1", "unit2", "unit3"]);
        press(&mut app, KeyCode::Char('/'));
        // Any field, any case: the state of unit3, the agent address of unit2; every term must match.
        type_text(&mut app, "UNREACH");
        assert_eq!(unit_names(&app), ["unit3"]);
        assert_eq!(app.row_count(Pane::Units), 1);
        for _ in 0.."UNREACH".len() {
            press(&mut app, KeyCode::Backspace);
        }
        assert_eq!(unit_names(&app), ["unit1", "unit2", "unit3"]);
        type_text(&mut app, "unit 0.12:");
        assert_eq!(unit_names(&app), ["unit2"]);
        assert_eq!(app.longest_visible_unit_label(), "unit2".len());
        // A term never spans two fields.
        press(&mut app, KeyCode::Esc);
        press(&mut app, KeyCode::Char('/'));
        type_text(&mut app, "unit2available");
        assert_eq!(app.visible_units().len(), 0);
        assert_eq!(app.visible_unit(0), None);
        // A new pool read is filtered with the filter kept.
        for _ in 0.."available".len() {
            press(&mut app, KeyCode::Backspace);
        }
        let mut snapshot = demo_snapshot();
        let pool = snapshot.pool.as_mut().unwrap();
        pool.units[0].name = "renamed-unit2".into();
        app.apply(Update::Snapshot(snapshot));
        assert_eq!(unit_names(&app), ["renamed-unit2", "unit2"]);
        press(&mut app, KeyCode::Esc);
        assert_eq!(unit_names(&app), ["renamed-unit2", "unit2", "unit3"]);
        assert_eq!(app.visible_unit(2).map(|u| u.index), Some(3));
    }

    #[test]
    fn a_submitted_task_is_listed_until_the_station_lists_it() {
        let mut app = demo();
        let request = Request::RescanUnit { unit: "unit2".into() };
        app.apply(Update::Submitted { request, task: 99 });
        let first = |app: &App| app.visible_tasks().first().map(|t| (t.index, t.summary(), t.state.to_string()));
        assert_eq!(first(&app), Some((99, "rescan unit2".to_string(), "pending".to_string())));
        let listed = app.visible_tasks().len();
        // A read of the tasks from before the station had it: still listed, and not taken as removed.
        app.apply(Update::Snapshot(demo_snapshot()));
        assert_eq!(first(&app).map(|t| t.0), Some(99));
        assert_eq!(app.message.as_ref().map(|m| m.error), Some(false));
        // The station lists it: its row replaces the console's.
        let mut snapshot = demo_snapshot();
        let mut task = Task::new(99, TaskOperation::RescanUnit);
        (task.unit, task.state, task.created_unix) = ("unit2".into(), TaskState::Running.into(), Some(FAKE_NOW + 1));
        snapshot.tasks.as_mut().unwrap().push(task);
        app.apply(Update::Snapshot(snapshot));
        assert_eq!(first(&app), Some((99, "rescan unit2".to_string(), "running".to_string())));
        assert_eq!(app.visible_tasks().len(), listed);
    }

    #[test]
    fn tasks_and_assignments_filter() {
        let mut app = demo();
        go(&mut app, Screen::Tasks, 0);
        press(&mut app, KeyCode::Char('/'));
        type_text(&mut app, "ops-2");
        let shown: Vec<u32> = app.visible_tasks().iter().map(|t| t.index).collect();
        assert_eq!(shown, [11, 9]);
        go(&mut app, Screen::Hosts, 0);
        press(&mut app, KeyCode::Char('/'));
        type_text(&mut app, "db1");
        assert_eq!(app.visible_assignments().len(), 1);
        go(&mut app, Screen::Volumes, 0);
        press(&mut app, KeyCode::Char('/'));
        type_text(&mut app, "127.0.0.10");
        assert_eq!(app.visible_volumes().len(), 1);
    }

    #[test]
    fn units_are_named_so_the_station_finds_them() {
        let mut app = demo();
        assert_eq!(app.unit_ref(1), "unit1");
        assert_eq!(app.unit_ref(99), "99");
        app.pool.units[1].name = "unit1".into();
        assert_eq!(app.unit_ref(1), "00000001-5c1e-4a52-9d7e-0242ac120002");
        app.pool.units[0].name = "7".into();
        app.pool.units[0].id.clear();
        assert_eq!(app.unit_ref(1), "1");
    }

    #[test]
    fn pending_units_are_approved_and_rejected_after_a_yes() {
        let mut app = demo();
        // P from any list; A and X mean something only on the Pending screen.
        assert_eq!(key(&app, KeyCode::Char('A')), Action::None);
        press(&mut app, KeyCode::Char('P'));
        assert_eq!((app.screen, app.pane), (Screen::Pending, Pane::Pending));
        assert_eq!(app.waiting_count(), 1);
        let visible: Vec<u32> = app.visible_pending().iter().map(|p| p.index).collect();
        assert_eq!(visible, [1, 2], "waiting ones first, then the rejected");

        // A asks first; n sends nothing.
        press(&mut app, KeyCode::Char('A'));
        let question = app.confirm.as_ref().map(Confirm::question).unwrap_or_default();
        assert!(question.starts_with("Really approve pending unit #1 127.0.0.14:1161 \"unit4\""), "{question}");
        assert!(question.contains("trusts its address"), "{question}");
        press(&mut app, KeyCode::Char('n'));
        assert!(app.take_outbox().is_empty());
        assert!(message(&app).starts_with("not done: approve pending unit #1"), "{}", message(&app));

        // y sends the approveUnit task naming the pending row.
        press(&mut app, KeyCode::Char('A'));
        press(&mut app, KeyCode::Char('y'));
        let sent = app.take_outbox();
        let [Command::Submit(request @ Request::ApproveUnit { pending: 1, .. })] = sent.as_slice() else {
            panic!("{sent:?}")
        };
        assert_eq!(request.operation(), TaskOperation::ApproveUnit);

        // X on the waiting one: rejectUnit after a yes; on the rejected one: nothing to do.
        press(&mut app, KeyCode::Char('X'));
        assert!(app.confirm.as_ref().is_some_and(|c| c.question().contains("stays out of the pool")));
        press(&mut app, KeyCode::Char('y'));
        let sent = app.take_outbox();
        assert!(matches!(sent.as_slice(), [Command::Submit(Request::RejectUnit { pending: 1, .. })]), "{sent:?}");
        press(&mut app, KeyCode::Down);
        press(&mut app, KeyCode::Char('X'));
        assert!(app.confirm.is_none() && app.take_outbox().is_empty());
        assert!(message(&app).contains("rejected already"), "{}", message(&app));

        // The filter finds rows by what they claim.
        press(&mut app, KeyCode::Char('/'));
        type_text(&mut app, "rack2");
        assert_eq!(app.visible_pending().len(), 1);
    }
}
