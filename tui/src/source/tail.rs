//! The live notification tail: runs `dvsan-station traps --json --follow --state-dir DIR` (local mode) and turns
//! each JSON line into a [`Notification`].
//!
//! DVSAN-STATION-MIB has no notification-log table, so over SNMP alone the console cannot read the log; the
//! tail therefore needs the station's state directory (`--station-state-dir`). Lines are read with a length
//! bound, and a line that is not a notification is skipped.

use super::Update;
use crate::model::{Notification, TailStatus};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

/// Longest JSON line accepted; longer ones are skipped.
pub const MAX_LINE: usize = 64 * 1024;
/// Notifications read from the log before following.
pub const BACKLOG: usize = 500;

#[derive(Deserialize)]
struct TrapLine {
    id: i64,
    time: String,
    source: String,
    trap_name: String,
    #[serde(default)]
    unit_id: Option<String>,
    #[serde(default)]
    varbinds: Vec<VarBindLine>,
}

#[derive(Deserialize)]
struct VarBindLine {
    name: String,
    #[serde(default)]
    value: serde_json::Value,
    #[serde(default)]
    hex: Option<String>,
}

/// One `traps --json` line as a notification; `None` when it is not one.
pub fn parse_trap_line(line: &str) -> Option<Notification> {
    let trap: TrapLine = serde_json::from_str(line).ok()?;
    let details = trap
        .varbinds
        .iter()
        // sysUpTime and snmpTrapOID are already shown as the time and the type.
        .filter(|vb| !vb.name.starts_with("sysUpTime") && !vb.name.starts_with("snmpTrapOID"))
        .map(|vb| {
            let value = match (&vb.value, &vb.hex) {
                (serde_json::Value::String(s), _) => s.clone(),
                (serde_json::Value::Null, Some(hex)) => format!("0x{hex}"),
                (serde_json::Value::Null, None) => "-".to_string(),
                (other, _) => other.to_string(),
            };
            format!("{}={}", vb.name, value)
        })
        .collect::<Vec<_>>()
        .join(" ");
    Some(Notification {
        id: trap.id,
        time: trap.time,
        source: trap.source,
        type_name: trap.trap_name,
        unit_id: trap.unit_id,
        details,
    })
}

/// The `dvsan-station` program to run: `explicit` if given, else the one next to this executable, else `PATH`'s.
pub fn station_program(explicit: Option<&Path>) -> PathBuf {
    if let Some(path) = explicit {
        return path.to_path_buf();
    }
    let sibling = std::env::current_exe().ok().and_then(|exe| exe.parent().map(|dir| dir.join("dvsan-station")));
    match sibling {
        Some(path) if path.is_file() => path,
        _ => PathBuf::from("dvsan-station"),
    }
}

/// Reads one line of at most [`MAX_LINE`] bytes; `Ok(None)` at end of input. Longer lines come back empty.
async fn read_bounded_line<R: AsyncRead + Unpin>(reader: &mut BufReader<R>) -> std::io::Result<Option<String>> {
    let mut buffer = Vec::new();
    let read = (&mut *reader).take(MAX_LINE as u64 + 1).read_until(b'\n', &mut buffer).await?;
    if read == 0 {
        return Ok(None);
    }
    if buffer.last() != Some(&b'\n') && buffer.len() > MAX_LINE {
        // Too long: skip the rest of it, in bounded chunks.
        loop {
            let mut rest = Vec::new();
            let n = (&mut *reader).take(MAX_LINE as u64).read_until(b'\n', &mut rest).await?;
            if n == 0 || rest.last() == Some(&b'\n') {
                return Ok(Some(String::new()));
            }
        }
    }
    Ok(Some(String::from_utf8_lossy(&buffer).trim_end().to_string()))
}

/// Follows the station's log in a task, sending each notification and the tail's status to `updates`. The
/// child process is killed when the task ends (its handle is aborted or `updates` closes).
pub fn spawn_tail(program: PathBuf, state_dir: PathBuf, updates: UnboundedSender<Update>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let status = follow(&program, &state_dir, &updates).await;
        let _ = updates.send(Update::Tail(TailStatus::Stopped(status)));
    })
}

async fn follow(program: &Path, state_dir: &Path, updates: &UnboundedSender<Update>) -> String {
    let child = tokio::process::Command::new(program)
        .args(["traps", "--json", "--follow", "-n", &BACKLOG.to_string(), "--state-dir"])
        .arg(state_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => return format!("could not run {}: {e}", program.display()),
    };
    let (Some(stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return "the station's log reader has no output".to_string();
    };
    let _ = updates.send(Update::Tail(TailStatus::Following));
    let mut lines = BufReader::new(stdout);
    loop {
        match read_bounded_line(&mut lines).await {
            Ok(Some(line)) => {
                if let Some(notification) = parse_trap_line(&line) {
                    if updates.send(Update::Notification(notification)).is_err() {
                        return "console closing".to_string();
                    }
                }
            }
            Ok(None) => break,
            Err(e) => return format!("reading the station's log: {e}"),
        }
    }
    let mut message = Vec::new();
    let _ = (&mut stderr).take(4096).read_to_end(&mut message).await;
    let exit = child.wait().await.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
    let message = String::from_utf8_lossy(&message).trim().to_string();
    if message.is_empty() {
        format!("the station's log reader ended ({exit})")
    } else {
        format!("the station's log reader ended: {message}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn station_json_lines_parse() {
        let line = r#"{"id":7,"time":"2026-11-22T10:00:01.250Z","time_ms":1,"source":"127.0.0.11:40000","version":"v2c","community":"public","kind":"trap","uptime":5,"trap_oid":"1.3.6.1.6.3.1.1.5.3","trap_name":"linkDown","unit_id":"abc","varbinds":[{"name":"sysUpTime.0","oid":"1.3.6.1.2.1.1.3.0","type":"TimeTicks","value":5},{"name":"ifIndex.1","oid":"1.3.6.1.2.1.2.2.1.1.1","type":"INTEGER","value":1},{"name":"x","oid":"1.2","type":"OCTET STRING","hex":"00ff"}]}"#;
        let n = parse_trap_line(line).unwrap();
        assert_eq!((n.id, n.type_name.as_str(), n.unit_id.as_deref()), (7, "linkDown", Some("abc")));
        assert_eq!(n.details, "ifIndex.1=1 x=0x00ff");
        assert_eq!(parse_trap_line("not json"), None);
        assert_eq!(parse_trap_line("{}"), None);
    }

    #[tokio::test]
    async fn long_lines_are_skipped_and_the_next_line_still_reads() {
        let mut input = vec![b'x'; MAX_LINE * 3];
        input.extend_from_slice(b"\nshort\n");
        let mut reader = BufReader::new(input.as_slice());
        assert_eq!(read_bounded_line(&mut reader).await.unwrap(), Some(String::new()));
        assert_eq!(read_bounded_line(&mut reader).await.unwrap(), Some("short".to_string()));
        assert_eq!(read_bounded_line(&mut reader).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_missing_program_stops_the_tail_with_a_reason() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let task = spawn_tail(PathBuf::from("/nonexistent/dvsan-station"), PathBuf::from("/tmp"), tx);
        let update = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
        let Update::Tail(TailStatus::Stopped(why)) = update else { panic!("expected the tail to stop") };
        assert!(why.contains("could not run"), "{why}");
        task.await.unwrap();
    }
}
