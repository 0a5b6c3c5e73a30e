//! USM users: the users file every dvsan component reads (one TOML format, see the README), and the
//! keys derived from it.
//!
//! A [`UsmUser`] holds the master keys (`Ku`, RFC 3414 A.2) of its passphrases, never the
//! passphrases; [`UsmUser::localize`] turns them into the keys for one authoritative engine
//! ([`LocalUser`]), which is what messages are signed and encrypted with. The agent localises its
//! users to its own engine once at start; a manager localises its user to each engine it discovers.
//! A users file holds secrets, so [`UsersFile::load`] refuses one that its group or others may read.
//!
//! Each user also carries its MIB views (RFC 3415 in spirit): the OID subtrees it may read and, with
//! read-write access, write (empty: everything). The agent turns them into the same rights as a community's
//! (`agent::access`). A user without authentication (noAuthNoPriv) exists only when its entry says
//! `level = "noAuthNoPriv"`; otherwise `auth` is required.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::oid::Oid;
use crate::usm::crypto::{self, AuthProtocol, PrivProtocol};
use crate::usm::engine::EngineId;

/// What a user may do at an agent.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum UserAccess {
    /// Get, GetNext, GetBulk.
    ReadOnly,
    /// Set too.
    ReadWrite,
}

impl UserAccess {
    /// The users-file spelling: `read-only` or `read-write`.
    pub fn name(self) -> &'static str {
        match self {
            UserAccess::ReadOnly => "read-only",
            UserAccess::ReadWrite => "read-write",
        }
    }
}

/// The securityLevel of a message (RFC 3411 §3.4.3).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum SecurityLevel {
    NoAuthNoPriv,
    AuthNoPriv,
    AuthPriv,
}

impl SecurityLevel {
    /// net-snmp's `-l` spelling.
    pub fn name(self) -> &'static str {
        match self {
            SecurityLevel::NoAuthNoPriv => "noAuthNoPriv",
            SecurityLevel::AuthNoPriv => "authNoPriv",
            SecurityLevel::AuthPriv => "authPriv",
        }
    }
}

impl SecurityLevel {
    /// The level named `name` (net-snmp's `-l` spelling, case-insensitive).
    pub fn from_name(name: &str) -> Option<SecurityLevel> {
        [SecurityLevel::NoAuthNoPriv, SecurityLevel::AuthNoPriv, SecurityLevel::AuthPriv]
            .into_iter()
            .find(|l| l.name().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for SecurityLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A configured user with master keys (not yet bound to an engine).
#[derive(Clone, PartialEq, Eq)]
pub struct UsmUser {
    name: String,
    /// The authentication protocol and master key; `None` for a noAuthNoPriv user.
    auth: Option<(AuthProtocol, Vec<u8>)>,
    privacy: Option<(PrivProtocol, Vec<u8>)>,
    access: UserAccess,
    read_view: Vec<Oid>,
    write_view: Vec<Oid>,
}

/// Why a user cannot be made from the given settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("a user name is 1 to 32 octets")]
    Name,
    #[error("auth_passphrase: {0}")]
    AuthPassphrase(crypto::CryptoError),
    #[error("priv_passphrase: {0}")]
    PrivPassphrase(crypto::CryptoError),
}

impl UsmUser {
    /// A user authenticating with `auth` and `auth_passphrase`, encrypting with `privacy` when given.
    /// Derives the master keys (about a megabyte of hashing per passphrase).
    pub fn new(
        name: &str,
        auth: AuthProtocol,
        auth_passphrase: &str,
        privacy: Option<(PrivProtocol, &str)>,
        access: UserAccess,
    ) -> Result<UsmUser, UserError> {
        check_name(name)?;
        let auth_master =
            crypto::password_to_key(auth, auth_passphrase.as_bytes()).map_err(UserError::AuthPassphrase)?;
        let privacy = match privacy {
            Some((p, pass)) => {
                // RFC 3826 §1.2: the privacy key is derived with the authentication protocol's hash.
                Some((p, crypto::password_to_key(auth, pass.as_bytes()).map_err(UserError::PrivPassphrase)?))
            }
            None => None,
        };
        Ok(UsmUser {
            name: name.to_string(),
            auth: Some((auth, auth_master)),
            privacy,
            access,
            read_view: Vec::new(),
            write_view: Vec::new(),
        })
    }

    /// A user without authentication or privacy (noAuthNoPriv): its requests are neither signed nor
    /// encrypted, so anyone who knows the name is this user. Only for what may be public.
    pub fn without_auth(name: &str, access: UserAccess) -> Result<UsmUser, UserError> {
        check_name(name)?;
        Ok(UsmUser {
            name: name.to_string(),
            auth: None,
            privacy: None,
            access,
            read_view: Vec::new(),
            write_view: Vec::new(),
        })
    }

    /// The same user with these views: the subtrees it may read and write (each empty: everything).
    pub fn with_views(mut self, read_view: Vec<Oid>, write_view: Vec<Oid>) -> UsmUser {
        self.read_view = read_view;
        self.write_view = write_view;
        self
    }

    /// The subtrees the user may read (empty: everything).
    pub fn read_view(&self) -> &[Oid] {
        &self.read_view
    }

    /// The subtrees the user may write with read-write access (empty: everything).
    pub fn write_view(&self) -> &[Oid] {
        &self.write_view
    }

    /// usmUserName.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The authentication protocol (`None`: a noAuthNoPriv user).
    pub fn auth(&self) -> Option<AuthProtocol> {
        self.auth.as_ref().map(|(a, _)| *a)
    }

    /// The privacy protocol, if the user has one.
    pub fn privacy(&self) -> Option<PrivProtocol> {
        self.privacy.as_ref().map(|(p, _)| *p)
    }

    /// What the user may do.
    pub fn access(&self) -> UserAccess {
        self.access
    }

    /// The level the user's keys give: authPriv with a privacy protocol, authNoPriv with authentication
    /// only, noAuthNoPriv without either.
    pub fn level(&self) -> SecurityLevel {
        level_of(self.auth.is_some(), self.privacy.is_some())
    }

    /// The user's keys localised to `engine` (RFC 3414 §2.6).
    pub fn localize(&self, engine: &EngineId) -> LocalUser {
        let id = engine.as_bytes();
        let (auth, auth_key, privacy) = match &self.auth {
            Some((auth, master)) => (
                Some(*auth),
                crypto::localize_key(*auth, master, id),
                self.privacy.as_ref().map(|(p, pm)| (*p, crypto::localize_key(*auth, pm, id))),
            ),
            None => (None, Vec::new(), None),
        };
        LocalUser {
            name: self.name.clone(),
            auth,
            auth_key,
            privacy,
            access: self.access,
            read_view: self.read_view.clone(),
            write_view: self.write_view.clone(),
        }
    }
}

impl fmt::Debug for UsmUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UsmUser")
            .field("name", &self.name)
            .field("auth", &self.auth())
            .field("privacy", &self.privacy())
            .field("access", &self.access)
            .field("read_view", &self.read_view)
            .field("write_view", &self.write_view)
            .finish_non_exhaustive()
    }
}

/// A user's keys for one authoritative engine: what signs, verifies, encrypts and decrypts.
#[derive(Clone, PartialEq, Eq)]
pub struct LocalUser {
    pub name: String,
    /// `None`: a noAuthNoPriv user (and `auth_key` is empty).
    pub auth: Option<AuthProtocol>,
    pub auth_key: Vec<u8>,
    pub privacy: Option<(PrivProtocol, Vec<u8>)>,
    pub access: UserAccess,
    /// The subtrees the user may read (empty: everything).
    pub read_view: Vec<Oid>,
    /// The subtrees the user may write with read-write access (empty: everything).
    pub write_view: Vec<Oid>,
}

impl LocalUser {
    /// The level the keys give (see [`UsmUser::level`]).
    pub fn level(&self) -> SecurityLevel {
        level_of(self.auth.is_some(), self.privacy.is_some())
    }
}

fn level_of(auth: bool, privacy: bool) -> SecurityLevel {
    match (auth, privacy) {
        (true, true) => SecurityLevel::AuthPriv,
        (true, false) => SecurityLevel::AuthNoPriv,
        (false, _) => SecurityLevel::NoAuthNoPriv,
    }
}

fn check_name(name: &str) -> Result<(), UserError> {
    if name.is_empty() || name.len() > 32 {
        return Err(UserError::Name);
    }
    Ok(())
}

impl fmt::Debug for LocalUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalUser")
            .field("name", &self.name)
            .field("auth", &self.auth)
            .field("privacy", &self.privacy.as_ref().map(|(p, _)| *p))
            .field("access", &self.access)
            .field("read_view", &self.read_view)
            .field("write_view", &self.write_view)
            .finish_non_exhaustive()
    }
}

/// The users of a users file, in file order.
#[derive(Clone, Debug, Default)]
pub struct UsersFile {
    pub users: Vec<UsmUser>,
}

/// Why a users file cannot be used. Each message names the file, and the user when there is one.
#[derive(Debug, thiserror::Error)]
pub enum UsersFileError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: readable or writable by group or others (mode {mode:o}); it holds passphrases: chmod 600 it")]
    Permissions { path: PathBuf, mode: u32 },
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{path}: user {user:?}: {message}")]
    User { path: PathBuf, user: String, message: String },
    #[error("{path}: no user {user:?} (it has: {})", if known.is_empty() { "none".to_string() } else { known.join(", ") })]
    NoSuchUser { path: PathBuf, user: String, known: Vec<String> },
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    user: Vec<RawUser>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    name: String,
    auth: Option<String>,
    auth_passphrase: Option<String>,
    #[serde(rename = "priv")]
    privacy: Option<String>,
    priv_passphrase: Option<String>,
    access: Option<String>,
    level: Option<String>,
    read_view: Option<Vec<String>>,
    write_view: Option<Vec<String>>,
}

impl UsersFile {
    /// Reads and checks `path`: it must be private to its owner (no group/other read or write bits).
    pub fn load(path: &Path) -> Result<UsersFile, UsersFileError> {
        use std::os::unix::fs::PermissionsExt;
        let io = |source| UsersFileError::Io { path: path.to_path_buf(), source };
        let mode = std::fs::metadata(path).map_err(io)?.permissions().mode();
        if mode & 0o066 != 0 {
            return Err(UsersFileError::Permissions { path: path.to_path_buf(), mode: mode & 0o7777 });
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        UsersFile::parse(&text, path)
    }

    /// Parses users-file `text`; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<UsersFile, UsersFileError> {
        let raw: RawFile = toml::from_str(text)
            .map_err(|e| UsersFileError::Syntax { path: path.to_path_buf(), message: e.to_string() })?;
        let mut users: Vec<UsmUser> = Vec::with_capacity(raw.user.len());
        for r in raw.user {
            let fail =
                |message: String| UsersFileError::User { path: path.to_path_buf(), user: r.name.clone(), message };
            if users.iter().any(|u| u.name == r.name) {
                return Err(fail("defined twice".to_string()));
            }
            let level = match r.level.as_deref() {
                None => None,
                Some(text) => Some(SecurityLevel::from_name(text).ok_or_else(|| {
                    fail(format!("level {text:?}; valid: \"authPriv\", \"authNoPriv\", \"noAuthNoPriv\""))
                })?),
            };
            let access = match r.access.as_deref() {
                None | Some("read-only") => UserAccess::ReadOnly,
                Some("read-write") => UserAccess::ReadWrite,
                Some(other) => {
                    return Err(fail(format!("access {other:?}; valid: \"read-only\" (the default), \"read-write\"")))
                }
            };
            let user = if level == Some(SecurityLevel::NoAuthNoPriv) {
                if r.auth.is_some() || r.auth_passphrase.is_some() || r.privacy.is_some() || r.priv_passphrase.is_some()
                {
                    return Err(fail(
                        "level = \"noAuthNoPriv\" takes no auth, auth_passphrase, priv or priv_passphrase".to_string(),
                    ));
                }
                UsmUser::without_auth(&r.name, access).map_err(|e| fail(e.to_string()))?
            } else {
                let auth_name = r.auth.as_deref().ok_or_else(|| {
                    fail(format!(
                        "auth is required; valid: {} (a user without authentication needs level = \"noAuthNoPriv\")",
                        auth_names()
                    ))
                })?;
                let auth = AuthProtocol::from_name(auth_name)
                    .ok_or_else(|| fail(format!("auth {auth_name:?} is not supported; valid: {}", auth_names())))?;
                let auth_pass =
                    r.auth_passphrase.as_deref().ok_or_else(|| fail("auth_passphrase is required".to_string()))?;
                let privacy = match (r.privacy.as_deref(), r.priv_passphrase.as_deref()) {
                    (None, None) => None,
                    (Some(p), Some(pass)) => {
                        let proto = PrivProtocol::from_name(p).ok_or_else(|| {
                            fail(format!(
                                "priv {p:?} is not supported; valid: {} (or omit priv for authNoPriv)",
                                priv_names()
                            ))
                        })?;
                        Some((proto, pass))
                    }
                    (Some(_), None) => return Err(fail("priv needs priv_passphrase".to_string())),
                    (None, Some(_)) => {
                        return Err(fail(format!("priv_passphrase needs priv; valid: {}", priv_names())))
                    }
                };
                let user = UsmUser::new(&r.name, auth, auth_pass, privacy, access).map_err(|e| fail(e.to_string()))?;
                if let Some(level) = level.filter(|l| *l != user.level()) {
                    return Err(fail(format!("level = \"{level}\" but the keys given make it {}", user.level())));
                }
                user
            };
            let read_view = subtrees(r.read_view.as_deref()).map_err(|e| fail(format!("read_view: {e}")))?;
            let write_view = subtrees(r.write_view.as_deref()).map_err(|e| fail(format!("write_view: {e}")))?;
            let user = user.with_views(read_view, write_view);
            users.push(user);
        }
        Ok(UsersFile { users })
    }

    /// The user called `name`.
    pub fn find(&self, name: &str) -> Option<&UsmUser> {
        self.users.iter().find(|u| u.name == name)
    }

    /// The user called `name` in the users file at `path` ([`UsersFile::load`]'s checks included): what a
    /// manager's `--credentials FILE --user NAME` names.
    pub fn load_user(path: &Path, name: &str) -> Result<UsmUser, UsersFileError> {
        let file = UsersFile::load(path)?;
        file.find(name).cloned().ok_or_else(|| UsersFileError::NoSuchUser {
            path: path.to_path_buf(),
            user: name.to_string(),
            known: file.users.iter().map(|u| u.name.clone()).collect(),
        })
    }
}

/// A view's subtrees from dotted OIDs (absent: everything).
fn subtrees(list: Option<&[String]>) -> Result<Vec<Oid>, String> {
    list.unwrap_or_default().iter().map(|text| Oid::parse_subtree(text).map_err(|e| e.to_string())).collect()
}

fn auth_names() -> String {
    AuthProtocol::ALL.iter().map(|p| format!("\"{p}\"")).collect::<Vec<_>>().join(", ")
}

fn priv_names() -> String {
    PrivProtocol::ALL.iter().map(|p| format!("\"{p}\"")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[[user]]
name = "admin"
auth = "SHA-256"
auth_passphrase = "admin-auth-pass"
priv = "AES"
priv_passphrase = "admin-priv-pass"
access = "read-write"

[[user]]
name = "monitor"
auth = "SHA"
auth_passphrase = "monitor-pass"
"#;

    fn parse(text: &str) -> Result<UsersFile, UsersFileError> {
        UsersFile::parse(text, Path::new("users.toml"))
    }

    #[test]
    fn parses_users() {
        let f = parse(GOOD).unwrap();
        let admin = f.find("admin").unwrap();
        assert_eq!(admin.level(), SecurityLevel::AuthPriv);
        assert_eq!(admin.access(), UserAccess::ReadWrite);
        let monitor = f.find("monitor").unwrap();
        assert_eq!(monitor.auth(), Some(AuthProtocol::HmacSha96));
        assert_eq!(monitor.access(), UserAccess::ReadOnly);
        assert_eq!(monitor.level(), SecurityLevel::AuthNoPriv);
        let local = admin.localize(&EngineId::from_text(1, "x"));
        assert_eq!(local.auth_key.len(), 32);
        assert!(!format!("{local:?}").contains("auth_key"));
    }

    #[test]
    fn errors_name_file_user_and_what_is_valid() {
        let cases = [
            ("[[user]]\nname = \"a\"\nauth = \"MD5\"\nauth_passphrase = \"12345678\"\n", "\"SHA-256\""),
            ("[[user]]\nname = \"a\"\nauth = \"SHA\"\nauth_passphrase = \"short\"\n", "at least 8"),
            ("[[user]]\nname = \"a\"\nauth = \"SHA\"\nauth_passphrase = \"12345678\"\npriv = \"DES\"\npriv_passphrase = \"12345678\"\n", "\"AES\""),
            ("[[user]]\nname = \"a\"\nauth = \"SHA\"\nauth_passphrase = \"12345678\"\npriv = \"AES\"\n", "priv_passphrase"),
            ("[[user]]\nname = \"a\"\nauth = \"SHA\"\nauth_passphrase = \"12345678\"\naccess = \"admin\"\n", "read-write"),
            ("[[user]]\nname = \"a\"\nauth_passphrase = \"12345678\"\n", "auth is required"),
            ("[[user]]\nname = \"a\"\nauth = \"SHA\"\nauth_passphrase = \"12345678\"\n[[user]]\nname = \"a\"\nauth = \"SHA\"\nauth_passphrase = \"12345678\"\n", "twice"),
        ];
        for (text, want) in cases {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.starts_with("users.toml: user \"a\": ") && e.contains(want), "{e}");
        }
        let e = parse("[[user]]\nname = \"a\"\nauht = \"SHA\"\n").unwrap_err().to_string();
        assert!(e.starts_with("users.toml: ") && e.contains("auht"), "{e}");
    }

    #[test]
    fn views_and_levels() {
        let text = r#"
[[user]]
name = "nms"
auth = "SHA-256"
auth_passphrase = "nms-auth-pass"
priv = "AES"
priv_passphrase = "nms-priv-pass"
level = "authPriv"
access = "read-write"
read_view = ["1.3.6.1.2.1", ".1.3.6.1.4.1.32473.1"]
write_view = ["1.3.6.1.4.1.32473.1.3"]

[[user]]
name = "lab"
level = "noAuthNoPriv"
read_view = ["1.3.6.1.2.1.1"]
"#;
        let f = parse(text).unwrap();
        let nms = f.find("nms").unwrap();
        assert_eq!(nms.read_view(), ["1.3.6.1.2.1".parse().unwrap(), "1.3.6.1.4.1.32473.1".parse::<Oid>().unwrap()]);
        assert_eq!(nms.write_view(), ["1.3.6.1.4.1.32473.1.3".parse::<Oid>().unwrap()]);
        assert_eq!(nms.localize(&EngineId::from_text(1, "x")).write_view, nms.write_view());
        let lab = f.find("lab").unwrap();
        assert_eq!((lab.level(), lab.auth(), lab.access()), (SecurityLevel::NoAuthNoPriv, None, UserAccess::ReadOnly));
        assert_eq!(lab.localize(&EngineId::from_text(1, "x")).level(), SecurityLevel::NoAuthNoPriv);
        // Absent views: everything.
        assert!(parse(GOOD).unwrap().find("admin").unwrap().read_view().is_empty());
    }

    #[test]
    fn view_and_level_errors_name_the_value() {
        let user = "[[user]]\nname = \"a\"\nauth = \"SHA\"\nauth_passphrase = \"12345678\"\n";
        let cases = [
            (format!("{user}read_view = [\"1.3.6.1.2.1\", \"1.3.x\"]\n"), "read_view: OID text \"1.3.x\""),
            (format!("{user}write_view = [\"\"]\n"), "write_view: \"\" is not a MIB subtree"),
            (format!("{user}level = \"authPriv\"\n"), "level = \"authPriv\" but the keys given make it authNoPriv"),
            (format!("{user}level = \"secret\"\n"), "level \"secret\"; valid"),
            (format!("{user}level = \"noAuthNoPriv\"\n"), "takes no auth"),
            ("[[user]]\nname = \"a\"\n".to_string(), "needs level = \"noAuthNoPriv\""),
        ];
        for (text, want) in cases {
            let e = parse(&text).unwrap_err().to_string();
            assert!(e.starts_with("users.toml: user \"a\": ") && e.contains(want), "{want}: {e}");
        }
    }

    #[test]
    fn load_refuses_a_readable_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        std::fs::write(&path, GOOD).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = UsersFile::load(&path).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(UsersFile::load(&path).unwrap().users.len(), 2);
        assert_eq!(UsersFile::load_user(&path, "monitor").unwrap().name(), "monitor");
        let e = UsersFile::load_user(&path, "nobody").unwrap_err().to_string();
        assert!(e.contains("no user \"nobody\" (it has: admin, monitor)"), "{e}");
    }
}
