//! Forms and confirmations for operations the console starts on the station.
//!
//! A [`Form`] holds text fields of a [`FieldKind`]; [`Form::validate`] checks every field (sizes with
//! `dvsan_layout::parse_size`, addresses as IP or IP:PORT) and either yields a [`Request`] or marks the fields
//! that are wrong, with a reason, so nothing malformed is ever sent. Destructive requests go through a
//! [`Confirm`] dialog first.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// The SNMP port a unit address without one gets (the agent's default).
pub const DEFAULT_AGENT_PORT: u16 = 1161;

/// What a field accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    /// A positive byte size: `512M`, `80G`, `4096`.
    Size,
    /// An IP address with an optional port.
    Address,
    /// A station unit: its index, name or id.
    Unit,
    /// Optional free text (names).
    OptionalText,
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
}

/// A validated operation, ready to be sent to the station.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    AddUnit { agent: SocketAddr },
    CreateVolume { unit: String, size_bytes: u64, name: Option<String> },
    DestroyVolume { unit: String, volume: u32, name: String },
}

impl Request {
    /// Whether the operation loses data and so needs confirmation.
    pub fn is_destructive(&self) -> bool {
        matches!(self, Request::DestroyVolume { .. })
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Request::AddUnit { agent } => write!(f, "add unit {agent}"),
            Request::CreateVolume { unit, size_bytes, name } => {
                write!(f, "create a {} volume on unit {unit}", dvsan_layout::HumanSize(*size_bytes))?;
                match name {
                    Some(name) => write!(f, " named {name}"),
                    None => Ok(()),
                }
            }
            Request::DestroyVolume { unit, volume, name } => {
                write!(f, "destroy volume {volume} ({name}) of unit {unit}")
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Form {
    pub kind: FormKind,
    pub fields: Vec<Field>,
    pub focus: usize,
}

impl Form {
    pub fn new(kind: FormKind) -> Form {
        let fields = match kind {
            FormKind::AddUnit => vec![Field::new("Unit agent (IP[:PORT])", FieldKind::Address, "")],
            FormKind::CreateVolume => vec![
                Field::new("Unit (index, name or id)", FieldKind::Unit, ""),
                Field::new("Size (e.g. 512M, 10G)", FieldKind::Size, ""),
                Field::new("Name (optional)", FieldKind::OptionalText, ""),
            ],
        };
        Form { kind, fields, focus: 0 }
    }

    /// A create-volume form with the unit filled in.
    pub fn create_volume_on(unit: &str) -> Form {
        let mut form = Form::new(FormKind::CreateVolume);
        form.fields[0].value = unit.to_string();
        form.focus = 1;
        form
    }

    pub fn title(&self) -> &'static str {
        match self.kind {
            FormKind::AddUnit => "Add a unit",
            FormKind::CreateVolume => "Create a volume",
        }
    }

    pub fn focused(&mut self) -> &mut Field {
        let focus = self.focus.min(self.fields.len().saturating_sub(1));
        &mut self.fields[focus]
    }

    /// Typing: bounded, printable characters only.
    pub fn push(&mut self, c: char) {
        let field = self.focused();
        if !c.is_control() && field.value.chars().count() < 64 {
            field.value.push(c);
            field.error = None;
        }
    }

    pub fn backspace(&mut self) {
        let field = self.focused();
        field.value.pop();
        field.error = None;
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
        let value = |i: usize| self.fields[i].value.trim().to_string();
        match self.kind {
            FormKind::AddUnit => parse_agent_address(&value(0)).ok().map(|agent| Request::AddUnit { agent }),
            FormKind::CreateVolume => {
                let size_bytes = parse_positive_size(&value(1)).ok()?;
                let name = Some(value(2)).filter(|n| !n.is_empty());
                Some(Request::CreateVolume { unit: value(0), size_bytes, name })
            }
        }
    }
}

fn check_field(kind: FieldKind, value: &str) -> Result<(), String> {
    let value = value.trim();
    match kind {
        FieldKind::Size => parse_positive_size(value).map(|_| ()),
        FieldKind::Address => parse_agent_address(value).map(|_| ()),
        FieldKind::Unit if value.is_empty() => Err("give the unit's index, name or id".to_string()),
        FieldKind::Unit => Ok(()),
        FieldKind::OptionalText if value.chars().any(char::is_whitespace) => Err("names have no spaces".to_string()),
        FieldKind::OptionalText => Ok(()),
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

/// `IP` or `IP:PORT` (IPv6 with a port as `[::1]:1161`); the port defaults to [`DEFAULT_AGENT_PORT`].
pub fn parse_agent_address(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("give an IP address, e.g. 127.0.0.11 or 127.0.0.11:1161".to_string());
    }
    let addr = match text.parse::<SocketAddr>() {
        Ok(addr) => addr,
        Err(_) => match text.parse::<IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, DEFAULT_AGENT_PORT),
            Err(_) => return Err(format!("{text:?} is not an IP address or IP:PORT")),
        },
    };
    if addr.port() == 0 {
        return Err("the port must be 1 to 65535".to_string());
    }
    if addr.ip().is_unspecified() || addr.ip().is_multicast() {
        return Err(format!("{} is not a unit's address", addr.ip()));
    }
    Ok(addr)
}

/// A yes/no question before a destructive request is sent.
#[derive(Clone, Debug, PartialEq)]
pub struct Confirm {
    pub request: Request,
}

impl Confirm {
    pub fn question(&self) -> String {
        format!("Really {}? Data on it is lost. (y/n)", self.request)
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
        assert!(parse_positive_size("12Q").unwrap_err().contains("not a size"));
        assert!(parse_positive_size("").is_err());
    }

    #[test]
    fn addresses_take_an_optional_port() {
        assert_eq!(parse_agent_address("127.0.0.11"), Ok("127.0.0.11:1161".parse().unwrap()));
        assert_eq!(parse_agent_address(" 127.0.0.11:161 "), Ok("127.0.0.11:161".parse().unwrap()));
        assert_eq!(parse_agent_address("[::1]:1161"), Ok("[::1]:1161".parse().unwrap()));
        assert_eq!(parse_agent_address("::1"), Ok("[::1]:1161".parse().unwrap()));
        assert!(parse_agent_address("127.0.0.300").unwrap_err().contains("not an IP address"));
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
        assert_eq!(form.validate(), Some(Request::AddUnit { agent: "127.0.0.12:1161".parse().unwrap() }));
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
    fn destroying_needs_confirmation() {
        let request = Request::DestroyVolume { unit: "unit1".into(), volume: 2, name: "db1".into() };
        assert!(request.is_destructive());
        assert!(!Request::AddUnit { agent: "127.0.0.1:1161".parse().unwrap() }.is_destructive());
        let confirm = Confirm { request };
        assert_eq!(confirm.question(), "Really destroy volume 2 (db1) of unit unit1? Data on it is lost. (y/n)");
    }
}
