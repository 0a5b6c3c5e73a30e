//! Forms and confirmations for the operations the console starts on the station.
//!
//! A [`Form`] holds text fields of a [`FieldKind`]; [`Form::validate`] checks every field (sizes with
//! `dvsan_layout::parse_size`, unit agents as IP or name with an optional port, hosts as unicast IPs, volume and partition numbers)
//! and either yields a [`Request`] or marks the fields that are wrong, with a reason, so nothing malformed is ever
//! sent. A [`Command`] is what the console asks the station to do: run a request as a task, cancel a task, or
//! remove an ended one; destructive ones go through a [`Confirm`] dialog first.

use dvsan_mib::station_tasks::TaskOperation;
use dvsan_snmp::{Endpoint, Host};
use std::fmt;
use std::net::IpAddr;

/// The SNMP port a unit address without one gets (the agent's default).
pub const DEFAULT_AGENT_PORT: u16 = 1161;
/// Longest field value, in characters (the station's text columns take 64 octets).
pub const MAX_FIELD: usize = 64;

/// What a field accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    /// A positive byte size: `512M`, `80G`, `4096`.
    Size,
    /// An IP address with an optional port.
    Address,
    /// A station unit: its index, name or id.
    Unit,
    /// A positive whole number (volume and partition indexes).
    Number,
    /// A host: a unicast IP address.
    Host,
    /// A host, or empty.
    OptionalHost,
    /// `yes` or `no`: `y`/`n` set it, Space toggles.
    YesNo,
    /// Optional free text (names).
    OptionalText,
    /// A replica count: 1, or 2 or 3 for a mirrored volume.
    Replicas,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    pub label: &'static str,
    pub kind: FieldKind,
    pub value: String,
    pub error: Option<String>,
}

impl Field {
    fn new(label: &'static str, kind: FieldKind, value: &str) -> Field {
        Field { label, kind, value: value.to_string(), error: None }
    }
}

/// Which operation a form is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormKind {
    AddUnit,
    CreateVolume,
    CreatePartition,
    DestroyPartition,
    Assign,
    Unassign,
    Allocate,
}

/// A validated operation, ready to be run by the station as a task.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    AddUnit {
        agent: Endpoint,
    },
    CreateVolume {
        unit: String,
        size_bytes: u64,
        name: Option<String>,
    },
    /// `name` is for people only (the station gets unit and volume).
    DestroyVolume {
        unit: String,
        volume: u32,
        name: String,
    },
    CreatePartition {
        unit: String,
        volume: u32,
        size_bytes: u64,
    },
    DestroyPartition {
        unit: String,
        volume: u32,
        partition: u32,
    },
    Assign {
        unit: String,
        volume: u32,
        host: IpAddr,
        read_only: bool,
    },
    /// Without a host, the volume is released from whichever host has it.
    Unassign {
        unit: String,
        volume: u32,
        host: Option<IpAddr>,
    },
    Allocate {
        size_bytes: u64,
        host: IpAddr,
        name: Option<String>,
        read_only: bool,
        /// 2 or 3: a mirrored volume, each replica on a unit of its own (task column dvsanStationTaskReplicas).
        replicas: u32,
    },
    RescanUnit {
        unit: String,
    },
    /// Forget a unit; with `force` its assignments (`assigned`, for people: "volume 1 to 192.0.2.10") are
    /// released (task removeUnitForce), else the station refuses while it has any (removeUnit).
    RemoveUnit {
        unit: String,
        force: bool,
        assigned: Vec<String>,
    },
    /// Let a pending unit (by its dvsanStationPendingIndex) into the pool, bound to its address; `what` describes
    /// it for people (address, name, the unit id it claims).
    ApproveUnit {
        pending: u32,
        what: String,
    },
    /// Keep a pending unit out of the pool.
    RejectUnit {
        pending: u32,
        what: String,
    },
}

impl Request {
    /// The task operation the station runs for it.
    pub fn operation(&self) -> TaskOperation {
        match self {
            Request::AddUnit { .. } => TaskOperation::AddUnit,
            Request::CreateVolume { .. } => TaskOperation::CreateVolume,
            Request::DestroyVolume { .. } => TaskOperation::DestroyVolume,
            Request::CreatePartition { .. } => TaskOperation::CreatePartition,
            Request::DestroyPartition { .. } => TaskOperation::DestroyPartition,
            Request::Assign { .. } => TaskOperation::AssignVolume,
            Request::Unassign { .. } => TaskOperation::UnassignVolume,
            Request::Allocate { .. } => TaskOperation::Allocate,
            Request::RescanUnit { .. } => TaskOperation::RescanUnit,
            Request::RemoveUnit { force: false, .. } => TaskOperation::RemoveUnit,
            Request::RemoveUnit { force: true, .. } => TaskOperation::RemoveUnitForce,
            Request::ApproveUnit { .. } => TaskOperation::ApproveUnit,
            Request::RejectUnit { .. } => TaskOperation::RejectUnit,
        }
    }

    /// Whether the operation loses data or takes access away, and so needs confirmation.
    pub fn is_destructive(&self) -> bool {
        matches!(
            self,
            Request::DestroyVolume { .. }
                | Request::DestroyPartition { .. }
                | Request::Unassign { .. }
                | Request::RemoveUnit { .. }
        )
    }

    /// Whether it decides which units the station trusts (approve or reject a pending unit), and so needs
    /// confirmation too.
    pub fn is_trust_decision(&self) -> bool {
        matches!(self, Request::ApproveUnit { .. } | Request::RejectUnit { .. })
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let size = |bytes: &u64| dvsan_layout::HumanSize(*bytes);
        let access = |read_only: &bool| if *read_only { "read-only" } else { "read-write" };
        match self {
            Request::AddUnit { agent } => write!(f, "add unit {agent}"),
            Request::CreateVolume { unit, size_bytes, name } => {
                write!(f, "create a {} volume on unit {unit}", size(size_bytes))?;
                match name {
                    Some(name) => write!(f, " named {name}"),
                    None => Ok(()),
                }
            }
            Request::DestroyVolume { unit, volume, name } => {
                write!(f, "destroy volume {volume} ({name}) of unit {unit}")
            }
            Request::CreatePartition { unit, volume, size_bytes } => {
                write!(f, "create a {} partition in volume {volume} of unit {unit}", size(size_bytes))
            }
            Request::DestroyPartition { unit, volume, partition } => {
                write!(f, "destroy partition {partition} of volume {volume} of unit {unit}")
            }
            Request::Assign { unit, volume, host, read_only } => {
                write!(f, "assign volume {volume} of unit {unit} to {host} ({})", access(read_only))
            }
            Request::Unassign { unit, volume, host: Some(host) } => {
                write!(f, "unassign volume {volume} of unit {unit} from {host}")
            }
            Request::Unassign { unit, volume, host: None } => write!(f, "unassign volume {volume} of unit {unit}"),
            Request::Allocate { size_bytes, host, name, read_only, replicas } => {
                write!(f, "allocate {} for {host} ({})", size(size_bytes), access(read_only))?;
                if *replicas >= 2 {
                    write!(f, " mirrored on {replicas} units")?;
                }
                match name {
                    Some(name) => write!(f, " named {name}"),
                    None => Ok(()),
                }
            }
            Request::RescanUnit { unit } => write!(f, "rescan unit {unit}"),
            Request::RemoveUnit { unit, force: false, .. } => write!(f, "remove unit {unit} from the pool"),
            Request::RemoveUnit { unit, force: true, assigned } => {
                write!(f, "remove unit {unit} from the pool and release {}", assigned.join(", "))
            }
            Request::ApproveUnit { what, .. } => write!(f, "approve pending unit {what}"),
            Request::RejectUnit { what, .. } => write!(f, "reject pending unit {what}"),
        }
    }
}

/// What the console asks the station to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Run a request as a new task.
    Submit(Request),
    /// Cancel a pending task; `what` describes it for people.
    Cancel { task: u32, what: String },
    /// Remove an ended task's row.
    Remove { task: u32 },
}

impl Command {
    /// Whether the command needs a yes before it is sent.
    pub fn needs_confirmation(&self) -> bool {
        match self {
            Command::Submit(request) => request.is_destructive() || request.is_trust_decision(),
            Command::Cancel { .. } => true,
            Command::Remove { .. } => false,
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Submit(request) => request.fmt(f),
            Command::Cancel { task, what } => write!(f, "cancel task {task} ({what})"),
            Command::Remove { task } => write!(f, "remove task {task}"),
        }
    }
}

/// What a form starts with: values taken from the selection.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Prefill {
    pub unit: Option<String>,
    pub volume: Option<u32>,
    pub partition: Option<u32>,
    pub host: Option<IpAddr>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Form {
    pub kind: FormKind,
    pub fields: Vec<Field>,
    pub focus: usize,
}

const UNIT: &str = "Unit (index, name or id)";
const VOLUME: &str = "Volume (number on the unit)";
const SIZE: &str = "Size (e.g. 512M, 10G)";
const HOST: &str = "Host (its IP address)";
const READ_ONLY: &str = "Read-only (y/n)";
const NAME: &str = "Name (optional)";
const REPLICAS: &str = "Replicas (1, or 2-3 mirrored)";

impl Form {
    pub fn new(kind: FormKind) -> Form {
        use FieldKind::*;
        let fields = match kind {
            FormKind::AddUnit => vec![Field::new("Unit agent (HOST[:PORT])", Address, "")],
            FormKind::CreateVolume => {
                vec![Field::new(UNIT, Unit, ""), Field::new(SIZE, Size, ""), Field::new(NAME, OptionalText, "")]
            }
            FormKind::CreatePartition => {
                vec![Field::new(UNIT, Unit, ""), Field::new(VOLUME, Number, ""), Field::new(SIZE, Size, "")]
            }
            FormKind::DestroyPartition => vec![
                Field::new(UNIT, Unit, ""),
                Field::new(VOLUME, Number, ""),
                Field::new("Partition (number in the volume)", Number, ""),
            ],
            FormKind::Assign => vec![
                Field::new(UNIT, Unit, ""),
                Field::new(VOLUME, Number, ""),
                Field::new(HOST, Host, ""),
                Field::new(READ_ONLY, YesNo, "no"),
            ],
            FormKind::Unassign => vec![
                Field::new(UNIT, Unit, ""),
                Field::new(VOLUME, Number, ""),
                Field::new("Host (optional: whoever has it)", OptionalHost, ""),
            ],
            FormKind::Allocate => vec![
                Field::new(SIZE, Size, ""),
                Field::new(HOST, Host, ""),
                Field::new(NAME, OptionalText, ""),
                Field::new(READ_ONLY, YesNo, "no"),
                Field::new(REPLICAS, Replicas, "1"),
            ],
        };
        Form { kind, fields, focus: 0 }
    }

    /// A form of `kind` with the unit, volume, partition and host filled in where it has such fields; the focus
    /// goes to the first field still empty.
    pub fn prefilled(kind: FormKind, prefill: &Prefill) -> Form {
        let mut form = Form::new(kind);
        let mut numbers = [prefill.volume, prefill.partition].into_iter();
        for field in &mut form.fields {
            let value = match field.kind {
                FieldKind::Unit => prefill.unit.clone(),
                FieldKind::Number => numbers.next().flatten().map(|n| n.to_string()),
                FieldKind::Host | FieldKind::OptionalHost => prefill.host.map(|h| h.to_string()),
                _ => None,
            };
            if let Some(value) = value {
                field.value = value;
            }
        }
        form.focus = form.fields.iter().position(|f| f.value.is_empty()).unwrap_or(0);
        form
    }

    /// A create-volume form with the unit filled in.
    pub fn create_volume_on(unit: &str) -> Form {
        Form::prefilled(FormKind::CreateVolume, &Prefill { unit: Some(unit.to_string()), ..Prefill::default() })
    }

    pub fn title(&self) -> &'static str {
        match self.kind {
            FormKind::AddUnit => "Add a unit",
            FormKind::CreateVolume => "Create a volume",
            FormKind::CreatePartition => "Create a partition",
            FormKind::DestroyPartition => "Destroy a partition",
            FormKind::Assign => "Assign a volume to a host",
            FormKind::Unassign => "Unassign a volume",
            FormKind::Allocate => "Allocate storage for a host",
        }
    }

    pub fn focused(&mut self) -> &mut Field {
        let focus = self.focus.min(self.fields.len().saturating_sub(1));
        &mut self.fields[focus]
    }

    /// Typing: bounded, printable characters only; a yes/no field takes `y`, `n` and Space (toggles).
    pub fn push(&mut self, c: char) {
        let field = self.focused();
        if field.kind == FieldKind::YesNo {
            let yes = match c {
                'y' | 'Y' => true,
                'n' | 'N' => false,
                ' ' => field.value != "yes",
                _ => return,
            };
            field.value = if yes { "yes" } else { "no" }.to_string();
            field.error = None;
            return;
        }
        if !c.is_control() && field.value.chars().count() < MAX_FIELD {
            field.value.push(c);
            field.error = None;
        }
    }

    pub fn backspace(&mut self) {
        let field = self.focused();
        if field.kind != FieldKind::YesNo {
            field.value.pop();
            field.error = None;
        }
    }

    pub fn next_field(&mut self) {
        self.focus = (self.focus + 1) % self.fields.len().max(1);
    }

    pub fn previous_field(&mut self) {
        let n = self.fields.len().max(1);
        self.focus = (self.focus + n - 1) % n;
    }

    /// Checks every field; on success the request, else each bad field carries its error.
    pub fn validate(&mut self) -> Option<Request> {
        for field in &mut self.fields {
            field.error = check_field(field.kind, &field.value).err();
        }
        if let Some(bad) = self.fields.iter().position(|f| f.error.is_some()) {
            self.focus = bad;
            return None;
        }
        let text = |i: usize| self.fields[i].value.trim().to_string();
        let size = |i: usize| parse_positive_size(&text(i)).ok();
        let number = |i: usize| parse_number(&text(i)).ok();
        let host = |i: usize| parse_host(&text(i)).ok();
        let optional = |i: usize| Some(text(i)).filter(|t| !t.is_empty());
        let yes = |i: usize| text(i) == "yes";
        Some(match self.kind {
            FormKind::AddUnit => Request::AddUnit { agent: parse_agent_address(&text(0)).ok()? },
            FormKind::CreateVolume => Request::CreateVolume { unit: text(0), size_bytes: size(1)?, name: optional(2) },
            FormKind::CreatePartition => {
                Request::CreatePartition { unit: text(0), volume: number(1)?, size_bytes: size(2)? }
            }
            FormKind::DestroyPartition => {
                Request::DestroyPartition { unit: text(0), volume: number(1)?, partition: number(2)? }
            }
            FormKind::Assign => {
                Request::Assign { unit: text(0), volume: number(1)?, host: host(2)?, read_only: yes(3) }
            }
            FormKind::Unassign => Request::Unassign {
                unit: text(0),
                volume: number(1)?,
                host: match optional(2) {
                    Some(_) => Some(host(2)?),
                    None => None,
                },
            },
            FormKind::Allocate => {
                let replicas = text(4).parse().ok()?;
                Request::Allocate {
                    size_bytes: size(0)?,
                    host: host(1)?,
                    name: optional(2),
                    read_only: yes(3),
                    replicas,
                }
            }
        })
    }
}

fn check_field(kind: FieldKind, value: &str) -> Result<(), String> {
    let value = value.trim();
    match kind {
        FieldKind::Size => parse_positive_size(value).map(|_| ()),
        FieldKind::Address => parse_agent_address(value).map(|_| ()),
        FieldKind::Unit if value.is_empty() => Err("give the unit's index, name or id".to_string()),
        FieldKind::Unit if value.len() > MAX_FIELD => Err(format!("at most {MAX_FIELD} bytes")),
        FieldKind::Unit => Ok(()),
        FieldKind::Number => parse_number(value).map(|_| ()),
        FieldKind::Host => parse_host(value).map(|_| ()),
        FieldKind::OptionalHost if value.is_empty() => Ok(()),
        FieldKind::OptionalHost => parse_host(value).map(|_| ()),
        FieldKind::YesNo if matches!(value, "yes" | "no") => Ok(()),
        FieldKind::YesNo => Err("y or n".to_string()),
        FieldKind::OptionalText if value.chars().any(char::is_whitespace) => Err("names have no spaces".to_string()),
        FieldKind::OptionalText if value.len() > MAX_FIELD => Err(format!("at most {MAX_FIELD} bytes")),
        FieldKind::OptionalText => Ok(()),
        FieldKind::Replicas if matches!(value, "1" | "2" | "3") => Ok(()),
        FieldKind::Replicas => Err("1, or 2 or 3 for a mirrored volume (each replica on another unit)".to_string()),
    }
}

/// A size in bytes that is more than zero.
pub fn parse_positive_size(text: &str) -> Result<u64, String> {
    match dvsan_layout::parse_size(text) {
        Ok(0) => Err("the size must be more than zero".to_string()),
        Ok(bytes) => Ok(bytes),
        Err(e) => Err(e.to_string()),
    }
}

/// A volume or partition number: a whole number from 1 to 4294967295.
pub fn parse_number(text: &str) -> Result<u32, String> {
    let text = text.trim();
    match text.parse::<u32>() {
        Ok(0) => Err("numbers start at 1".to_string()),
        Ok(n) => Ok(n),
        Err(_) if text.is_empty() => Err("give a number, 1 or more".to_string()),
        Err(_) => Err(format!("{text:?} is not a number (1 or more)")),
    }
}

/// A host address: a unicast IP address, as the station takes it (no unspecified, multicast or broadcast).
pub fn parse_host(text: &str) -> Result<IpAddr, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("give the host's IP address, e.g. 192.0.2.10".to_string());
    }
    match text.parse::<IpAddr>() {
        Ok(ip) if ip.is_unspecified() || ip.is_multicast() || ip == IpAddr::from([255, 255, 255, 255]) => {
            Err(format!("{ip} is not one host's address"))
        }
        Ok(ip) => Ok(ip),
        Err(_) => Err(format!("{text:?} is not an IP address")),
    }
}

/// `IP`, `IP:PORT` (IPv6 with a port as `[::1]:1161`), `NAME` or `NAME:PORT`; the port defaults to
/// [`DEFAULT_AGENT_PORT`]. A name is not resolved here: the station resolves it (and keeps it with the unit).
pub fn parse_agent_address(text: &str) -> Result<Endpoint, String> {
    let agent =
        Endpoint::parse(text, DEFAULT_AGENT_PORT).and_then(Endpoint::require_port).map_err(|e| e.to_string())?;
    match agent.host {
        Host::Ip(ip) if ip.is_unspecified() || ip.is_multicast() => Err(format!("{ip} is not a unit's address")),
        _ => Ok(agent),
    }
}

/// A yes/no question before a command is sent.
#[derive(Clone, Debug, PartialEq)]
pub struct Confirm {
    pub command: Command,
    /// What else the user should know before answering (e.g. that the volume is assigned, and to whom).
    pub note: Option<String>,
}

impl Confirm {
    pub fn new(command: Command) -> Confirm {
        Confirm { command, note: None }
    }

    pub fn question(&self) -> String {
        let note = self.note.as_ref().map_or(String::new(), |n| format!(" {n}"));
        match &self.command {
            Command::Submit(request @ Request::Unassign { .. }) => {
                format!("Really {request}? The host loses access to it. (y/n)")
            }
            Command::Submit(request @ Request::RemoveUnit { force, .. }) => {
                let hosts = if *force { " Those hosts lose access." } else { "" };
                format!("Really {request}?{hosts} Any notification from it adds it again. (y/n)")
            }
            Command::Submit(request @ Request::ApproveUnit { .. }) => format!(
                "Really {request}? The station trusts its address from now on: whatever sends from there speaks for \
                 the unit. (y/n)"
            ),
            Command::Submit(request @ Request::RejectUnit { .. }) => {
                format!("Really {request}? It stays out of the pool and is not offered again. (y/n)")
            }
            Command::Submit(request) => format!("Really {request}?{note} Data on it is lost. (y/n)"),
            Command::Cancel { task, what } => format!("Cancel task {task} ({what}) before it runs? (y/n)"),
            Command::Remove { task } => format!("Remove task {task} from the station's list? (y/n)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(form: &mut Form, text: &str) {
        for c in text.chars() {
            form.push(c);
        }
    }

    #[test]
    fn sizes_must_parse_and_be_positive() {
        assert_eq!(parse_positive_size("512M"), Ok(512 << 20));
        assert_eq!(parse_positive_size("1.5G"), Ok(3 << 29));
        assert!(parse_positive_size("0").unwrap_err().contains("more than zero"));
        let error = parse_positive_size("12Q").unwrap_err();
        assert!(error.contains("not a size: unknown size suffix"), "{error}");
        assert!(!error.contains("unknown unit"), "{error}");
        assert!(parse_positive_size("").is_err());
    }

    #[test]
    fn addresses_take_an_optional_port() {
        let text = |given: &str| parse_agent_address(given).map(|a| a.to_string());
        assert_eq!(text("127.0.0.11"), Ok("127.0.0.11:1161".into()));
        assert_eq!(text(" 127.0.0.11:161 "), Ok("127.0.0.11:161".into()));
        assert_eq!(text("[::1]:1161"), Ok("[::1]:1161".into()));
        assert_eq!(text("::1"), Ok("[::1]:1161".into()));
        assert_eq!(text("unit-a.example.net"), Ok("unit-a.example.net:1161".into()));
        assert!(parse_agent_address("127.0.0.300").unwrap_err().contains("is not an address"));
        assert!(parse_agent_address("127.0.0.1:0").unwrap_err().contains("port"));
        assert!(parse_agent_address("0.0.0.0").is_err());
        assert!(parse_agent_address("").is_err());
    }

    #[test]
    fn a_form_marks_bad_fields_and_focuses_the_first() {
        let mut form = Form::new(FormKind::CreateVolume);
        typed(&mut form, "unit1");
        form.next_field();
        typed(&mut form, "ten gigs");
        assert_eq!(form.validate(), None);
        assert_eq!(form.focus, 1);
        assert!(form.fields[1].error.as_deref().unwrap().contains("not a size"));
        assert_eq!(form.fields[0].error, None);
        // Editing clears the field's error; a valid form yields its request.
        for _ in 0..8 {
            form.backspace();
        }
        typed(&mut form, "10G");
        assert_eq!(form.fields[1].error, None);
        assert_eq!(
            form.validate(),
            Some(Request::CreateVolume { unit: "unit1".into(), size_bytes: 10 << 30, name: None })
        );
    }

    #[test]
    fn add_unit_form_and_field_navigation() {
        let mut form = Form::new(FormKind::AddUnit);
        assert_eq!(form.validate(), None);
        typed(&mut form, "127.0.0.12");
        assert_eq!(form.validate(), Some(Request::AddUnit { agent: parse_agent_address("127.0.0.12:1161").unwrap() }));
        let mut form = Form::create_volume_on("2");
        assert_eq!(form.focus, 1);
        form.next_field();
        form.next_field();
        assert_eq!(form.focus, 0);
        form.previous_field();
        assert_eq!(form.focus, 2);
        typed(&mut form, "has space");
        form.fields[1].value = "1G".into();
        assert_eq!(form.validate(), None);
        assert_eq!(form.focus, 2);
    }

    #[test]
    fn typing_is_bounded_and_ignores_control_characters() {
        let mut form = Form::new(FormKind::AddUnit);
        typed(&mut form, &"1".repeat(200));
        form.push('\u{7}');
        assert_eq!(form.fields[0].value.len(), 64);
    }

    #[test]
    fn destructive_commands_need_confirmation() {
        let request = Request::DestroyVolume { unit: "unit1".into(), volume: 2, name: "db1".into() };
        assert!(request.is_destructive());
        assert!(!Request::AddUnit { agent: parse_agent_address("127.0.0.1").unwrap() }.is_destructive());
        assert!(Request::DestroyPartition { unit: "u".into(), volume: 1, partition: 1 }.is_destructive());
        assert!(Request::Unassign { unit: "u".into(), volume: 1, host: None }.is_destructive());
        assert!(!Request::RescanUnit { unit: "u".into() }.is_destructive());
        let confirm = Confirm::new(Command::Submit(request));
        assert!(confirm.command.needs_confirmation());
        assert_eq!(confirm.question(), "Really destroy volume 2 (db1) of unit unit1? Data on it is lost. (y/n)");
        let unassign = Request::Unassign { unit: "unit1".into(), volume: 2, host: Some("10.0.0.9".parse().unwrap()) };
        assert_eq!(
            Confirm::new(Command::Submit(unassign)).question(),
            "Really unassign volume 2 of unit unit1 from 10.0.0.9? The host loses access to it. (y/n)"
        );
        let cancel = Command::Cancel { task: 12, what: "rescan unit1".into() };
        assert!(cancel.needs_confirmation());
        assert_eq!(cancel.to_string(), "cancel task 12 (rescan unit1)");
        assert_eq!(Confirm::new(cancel).question(), "Cancel task 12 (rescan unit1) before it runs? (y/n)");
        assert!(!Command::Remove { task: 3 }.needs_confirmation());
    }

    #[test]
    fn numbers_and_hosts_are_checked() {
        assert_eq!(parse_number(" 7 "), Ok(7));
        assert!(parse_number("0").unwrap_err().contains("start at 1"));
        assert!(parse_number("-1").unwrap_err().contains("not a number"));
        assert!(parse_number("4294967296").unwrap_err().contains("not a number"));
        assert!(parse_number("").unwrap_err().contains("give a number"));
        assert_eq!(parse_host("192.0.2.10"), Ok("192.0.2.10".parse().unwrap()));
        assert_eq!(parse_host("::1"), Ok("::1".parse().unwrap()));
        for bad in ["0.0.0.0", "::", "224.0.0.1", "ff02::1", "255.255.255.255"] {
            assert!(parse_host(bad).unwrap_err().contains("not one host"), "{bad}");
        }
        assert!(parse_host("192.0.2.10:80").unwrap_err().contains("not an IP address"));
        assert!(parse_host("host.example").unwrap_err().contains("not an IP address"));
        assert!(parse_host(" ").unwrap_err().contains("give the host"));
    }

    fn filled(kind: FormKind, values: &[&str]) -> Form {
        let mut form = Form::new(kind);
        for (field, value) in form.fields.iter_mut().zip(values) {
            field.value = value.to_string();
        }
        form
    }

    #[test]
    fn every_form_yields_its_request() {
        let host = "127.0.0.9".parse().unwrap();
        let cases = [
            (
                filled(FormKind::CreatePartition, &["unit1", "2", "512M"]),
                Request::CreatePartition { unit: "unit1".into(), volume: 2, size_bytes: 512 << 20 },
            ),
            (
                filled(FormKind::DestroyPartition, &["unit1", "2", "1"]),
                Request::DestroyPartition { unit: "unit1".into(), volume: 2, partition: 1 },
            ),
            (
                filled(FormKind::Assign, &["1", "2", "127.0.0.9", "yes"]),
                Request::Assign { unit: "1".into(), volume: 2, host, read_only: true },
            ),
            (
                filled(FormKind::Unassign, &["unit1", "2", ""]),
                Request::Unassign { unit: "unit1".into(), volume: 2, host: None },
            ),
            (
                filled(FormKind::Unassign, &["unit1", "2", "127.0.0.9"]),
                Request::Unassign { unit: "unit1".into(), volume: 2, host: Some(host) },
            ),
            (
                filled(FormKind::Allocate, &["1G", "127.0.0.9", "", "no"]),
                Request::Allocate { size_bytes: 1 << 30, host, name: None, read_only: false, replicas: 1 },
            ),
            (
                filled(FormKind::Allocate, &["4096", "127.0.0.9", "web", "yes"]),
                Request::Allocate { size_bytes: 4096, host, name: Some("web".into()), read_only: true, replicas: 1 },
            ),
            (
                filled(FormKind::Allocate, &["1G", "127.0.0.9", "db", "no", "2"]),
                Request::Allocate { size_bytes: 1 << 30, host, name: Some("db".into()), read_only: false, replicas: 2 },
            ),
        ];
        for (mut form, request) in cases {
            assert_eq!(form.validate(), Some(request), "{:?}", form.kind);
        }
    }

    #[test]
    fn bad_values_are_marked_per_field() {
        let mut form = filled(FormKind::Assign, &["unit1", "0", "224.0.0.1", "no"]);
        assert_eq!(form.validate(), None);
        assert_eq!(form.focus, 1);
        assert!(form.fields[1].error.as_deref().unwrap().contains("start at 1"));
        assert!(form.fields[2].error.as_deref().unwrap().contains("not one host"));
        let mut form = filled(FormKind::Allocate, &["0", "", "a name", "no"]);
        assert_eq!(form.validate(), None);
        assert!(form.fields[0].error.as_deref().unwrap().contains("more than zero"));
        assert!(form.fields[1].error.as_deref().unwrap().contains("give the host"));
        assert!(form.fields[2].error.as_deref().unwrap().contains("no spaces"));
        let mut form = filled(FormKind::DestroyPartition, &["", "1", "x"]);
        assert_eq!(form.validate(), None);
        assert!(form.fields[0].error.as_deref().unwrap().contains("unit's index"));
        assert!(form.fields[2].error.as_deref().unwrap().contains("not a number"));
        // Names are bounded in bytes, as the station's columns are.
        let mut form = filled(FormKind::CreateVolume, &["unit1", "1G", &"é".repeat(40)]);
        assert_eq!(form.validate(), None);
        assert!(form.fields[2].error.as_deref().unwrap().contains("at most 64 bytes"));
    }

    #[test]
    fn yes_no_fields_take_y_n_and_space() {
        let mut form = Form::new(FormKind::Allocate);
        form.focus = 3;
        assert_eq!(form.fields[3].value, "no");
        form.push('x');
        form.backspace();
        assert_eq!(form.fields[3].value, "no");
        form.push(' ');
        assert_eq!(form.fields[3].value, "yes");
        form.push('N');
        assert_eq!(form.fields[3].value, "no");
        form.push('y');
        assert_eq!(form.fields[3].value, "yes");
    }

    #[test]
    fn prefill_fills_the_fields_a_form_has_and_focuses_the_first_empty_one() {
        let prefill = Prefill {
            unit: Some("unit1".into()),
            volume: Some(2),
            partition: Some(1),
            host: Some("127.0.0.9".parse().unwrap()),
        };
        let form = Form::prefilled(FormKind::DestroyPartition, &prefill);
        let values: Vec<&str> = form.fields.iter().map(|f| f.value.as_str()).collect();
        assert_eq!(values, ["unit1", "2", "1"]);
        assert_eq!(form.focus, 0);
        let form = Form::prefilled(FormKind::CreatePartition, &prefill);
        assert_eq!((form.fields[1].value.as_str(), form.fields[2].value.as_str(), form.focus), ("2", "", 2));
        let form = Form::prefilled(FormKind::Allocate, &prefill);
        assert_eq!((form.fields[1].value.as_str(), form.focus), ("127.0.0.9", 0));
        let form = Form::prefilled(FormKind::Unassign, &prefill);
        assert_eq!(form.fields[2].value, "127.0.0.9");
        let form = Form::prefilled(FormKind::AddUnit, &prefill);
        assert_eq!((form.fields[0].value.as_str(), form.focus), ("", 0));
    }

    #[test]
    fn requests_read_well() {
        let host = "127.0.0.9".parse().unwrap();
        let texts = [
            (
                Request::CreatePartition { unit: "u1".into(), volume: 2, size_bytes: 1 << 29 },
                "create a 512 MiB partition in volume 2 of unit u1",
            ),
            (
                Request::Assign { unit: "u1".into(), volume: 2, host, read_only: false },
                "assign volume 2 of unit u1 to 127.0.0.9 (read-write)",
            ),
            (Request::Unassign { unit: "u1".into(), volume: 2, host: None }, "unassign volume 2 of unit u1"),
            (
                Request::Allocate { size_bytes: 1 << 30, host, name: Some("db".into()), read_only: true, replicas: 1 },
                "allocate 1 GiB for 127.0.0.9 (read-only) named db",
            ),
            (
                Request::Allocate { size_bytes: 1 << 30, host, name: None, read_only: false, replicas: 3 },
                "allocate 1 GiB for 127.0.0.9 (read-write) mirrored on 3 units",
            ),
            (Request::RescanUnit { unit: "u1".into() }, "rescan unit u1"),
        ];
        for (request, text) in texts {
            assert_eq!(request.to_string(), text);
        }
    }
}
