//! The local SNMP engine's identity and clock (RFC 3411 §5 SnmpEngineID, RFC 3414 §2.2 timeliness).
//!
//! An [`EngineId`] is 5 to 32 octets; ours use the RFC 3411 format with the first bit set:
//! `0x80000000 | enterprise`, a format octet (4 = text, 5 = octets) and the data. [`Engine`] holds
//! the id, snmpEngineBoots and the start instant that snmpEngineTime counts from. An agent keeps
//! them in its state directory ([`Engine::load_or_create`]): the id stays the same across restarts
//! and boots goes up by one at each start, so a message recorded before a restart is never in time
//! again. The agent's USM processing reads the engine; managers use [`EngineId`] for what they discover.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The enterprise number in our engine ids (32473, the documentation number the DVSAN-MIB uses).
pub const DVSAN_ENTERPRISE: u32 = 32473;

/// The file in a state directory that keeps the engine id and boots.
pub const ENGINE_STATE_FILE: &str = "snmp-engine.toml";

/// snmpEngineBoots and snmpEngineTime stop at this value (RFC 3414 §2.2.1).
pub const MAX_ENGINE_VALUE: u32 = 2_147_483_647;

/// An SnmpEngineID (5 to 32 octets).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EngineId(Vec<u8>);

/// Why an engine id or the engine state is not usable.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("an SNMP engine ID is 5 to 32 octets, not {0}")]
    Length(usize),
    #[error("engine ID {0:?} is not hexadecimal")]
    NotHex(String),
    #[error("no randomness for a new engine ID: {0}")]
    Random(String),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not an SNMP engine state file ({why}); move it away to start with a new engine ID")]
    Corrupt { path: PathBuf, why: String },
}

impl EngineId {
    /// The id made of `bytes`, which must be 5 to 32 octets.
    pub fn new(bytes: Vec<u8>) -> Result<EngineId, EngineError> {
        if !(5..=32).contains(&bytes.len()) {
            return Err(EngineError::Length(bytes.len()));
        }
        Ok(EngineId(bytes))
    }

    /// A new id for `enterprise` in the octets format (5) with 8 random octets.
    pub fn random(enterprise: u32) -> Result<EngineId, EngineError> {
        let mut data = [0u8; 8];
        getrandom::fill(&mut data).map_err(|e| EngineError::Random(e.to_string()))?;
        Ok(EngineId::with_format(enterprise, 5, &data))
    }

    /// An id for `enterprise` in the text format (4): `text` cut to 27 octets.
    pub fn from_text(enterprise: u32, text: &str) -> EngineId {
        let bytes = text.as_bytes();
        EngineId::with_format(enterprise, 4, &bytes[..bytes.len().min(27)])
    }

    fn with_format(enterprise: u32, format: u8, data: &[u8]) -> EngineId {
        let mut id = (0x8000_0000 | enterprise).to_be_bytes().to_vec();
        id.push(format);
        id.extend_from_slice(data);
        // 5 + at most 27 octets: always valid.
        EngineId(id)
    }

    /// The octets.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Lower-case hexadecimal, as kept in the state file and shown by net-snmp's `-e`.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses hexadecimal (an optional `0x` prefix, `:` separators allowed).
    pub fn from_hex(text: &str) -> Result<EngineId, EngineError> {
        let digits: String = text.trim().trim_start_matches("0x").chars().filter(|c| *c != ':').collect();
        if !digits.len().is_multiple_of(2) || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(EngineError::NotHex(text.to_string()));
        }
        let bytes = (0..digits.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).map_err(|_| EngineError::NotHex(text.to_string())))
            .collect::<Result<Vec<u8>, _>>()?;
        EngineId::new(bytes)
    }
}

impl fmt::Display for EngineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", self.to_hex())
    }
}

impl fmt::Debug for EngineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EngineId({self})")
    }
}

/// The local authoritative engine: id, boots, and the clock of snmpEngineTime.
#[derive(Clone, Debug)]
pub struct Engine {
    id: EngineId,
    boots: u32,
    started: Instant,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EngineState {
    engine_id: String,
    boots: u32,
}

impl Engine {
    /// An engine with `id` in its `boots`-th run, its time starting at 0 now (tests, or owners
    /// that persist the state themselves).
    pub fn new(id: EngineId, boots: u32) -> Engine {
        Engine { id, boots: boots.min(MAX_ENGINE_VALUE), started: Instant::now() }
    }

    /// Reads `dir`/[`ENGINE_STATE_FILE`] (making a new random id when there is none), adds one to
    /// boots and writes it back (mode 0600) before returning: the engine of this run.
    pub fn load_or_create(dir: &Path) -> Result<Engine, EngineError> {
        let path = dir.join(ENGINE_STATE_FILE);
        let io = |source| EngineError::Io { path: path.clone(), source };
        let (id, boots) = match std::fs::read_to_string(&path) {
            Ok(text) => {
                let corrupt = |why: String| EngineError::Corrupt { path: path.clone(), why };
                let state: EngineState = toml::from_str(&text).map_err(|e| corrupt(e.message().to_string()))?;
                let id = EngineId::from_hex(&state.engine_id).map_err(|e| corrupt(e.to_string()))?;
                (id, state.boots.saturating_add(1).min(MAX_ENGINE_VALUE))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (EngineId::random(DVSAN_ENTERPRISE)?, 1),
            Err(e) => return Err(io(e)),
        };
        let state = EngineState { engine_id: id.to_hex(), boots };
        let text =
            toml::to_string(&state).map_err(|e| EngineError::Corrupt { path: path.clone(), why: e.to_string() })?;
        write_private(&path, text.as_bytes()).map_err(io)?;
        tracing::info!(engine_id = %id, boots, "SNMP engine");
        Ok(Engine::new(id, boots))
    }

    /// snmpEngineID.
    pub fn id(&self) -> &EngineId {
        &self.id
    }

    /// snmpEngineBoots.
    pub fn boots(&self) -> u32 {
        self.boots
    }

    /// snmpEngineTime: seconds since this run started.
    pub fn time(&self) -> u32 {
        u32::try_from(self.started.elapsed().as_secs()).unwrap_or(MAX_ENGINE_VALUE).min(MAX_ENGINE_VALUE)
    }
}

/// Writes `data` to `path` through a temporary file in the same directory (mode 0600), then renames
/// it into place, so a crash leaves the old file or the new one.
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_formats() {
        let id = EngineId::from_text(DVSAN_ENTERPRISE, "unit-1");
        assert_eq!(id.as_bytes(), b"\x80\x00\x7e\xd9\x04unit-1");
        let r = EngineId::random(DVSAN_ENTERPRISE).unwrap();
        assert_eq!(r.as_bytes().len(), 13);
        assert_eq!(&r.as_bytes()[..5], b"\x80\x00\x7e\xd9\x05");
        assert_eq!(EngineId::from_hex(&r.to_hex()).unwrap(), r);
        assert!(EngineId::from_hex("0102").is_err());
        assert!(EngineId::from_hex("zz0102030405").is_err());
        assert!(EngineId::new(vec![0; 33]).is_err());
        assert_eq!(EngineId::from_text(1, &"x".repeat(40)).as_bytes().len(), 32);
    }

    #[test]
    fn state_keeps_the_id_and_counts_boots() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let first = Engine::load_or_create(dir.path()).unwrap();
        assert_eq!(first.boots(), 1);
        let second = Engine::load_or_create(dir.path()).unwrap();
        assert_eq!(second.boots(), 2);
        assert_eq!(second.id(), first.id());
        let mode = std::fs::metadata(dir.path().join(ENGINE_STATE_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(second.time() < 5);
    }

    #[test]
    fn corrupt_state_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(ENGINE_STATE_FILE), "engine_id = \"zz\"\nboots = 1\n").unwrap();
        let e = Engine::load_or_create(dir.path()).unwrap_err().to_string();
        assert!(e.contains(ENGINE_STATE_FILE) && e.contains("not hexadecimal"), "{e}");
    }
}
