//! A program in a real terminal: a detached tmux session (on this test process's own tmux server) runs one command;
//! tests type keys with `tmux send-keys` and read the screen with `tmux capture-pane`, the way an operator sees it.
//! Used by the console's end-to-end tests.

use crate::process::{require_tool, wait_for, workspace_bin};
use crate::units::WRITE_COMMUNITY;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A detached tmux session running one command; killed on drop.
pub struct Tmux {
    pub session: String,
}

impl Tmux {
    /// Starts `command` in a `width`×`height` terminal (TERM xterm-256color).
    pub fn start(name: &str, width: u16, height: u16, command: &[String]) -> Tmux {
        require_tool("tmux", "tmux");
        let session = format!("{name}-{}", std::process::id());
        let mut cmd = Command::new("tmux");
        cmd.arg("-S")
            .arg(tmux_socket())
            .args(["new-session", "-d", "-s", &session, "-x", &width.to_string(), "-y", &height.to_string()])
            .env("TERM", "xterm-256color")
            .args(command);
        let out = cmd.output().expect("run tmux");
        assert!(out.status.success(), "tmux new-session failed: {}", String::from_utf8_lossy(&out.stderr));
        // A pane that survives the program's exit keeps its last screen for the failure message.
        tmux(&["set-option", "-t", &session, "remain-on-exit", "on"]);
        Tmux { session }
    }

    /// `dvsan-console --station STATION EXTRA… --write-community` [`WRITE_COMMUNITY`] in a `width`×`height`
    /// terminal.
    pub fn console(name: &str, width: u16, height: u16, station: SocketAddr, extra: &[&str]) -> Tmux {
        let mut command = vec![workspace_bin("dvsan-console").display().to_string(), "--station".into()];
        command.push(station.to_string());
        command.extend(extra.iter().map(|s| s.to_string()));
        command.extend(["--write-community".into(), WRITE_COMMUNITY.into()]);
        Tmux::start(name, width, height, &command)
    }

    /// Types keys: tmux key names (`Enter`, `Tab`, `Down`, `Escape`) or literal text with `-l`.
    pub fn keys(&self, keys: &[&str]) {
        self.send(keys);
        // The program reads keys on its own thread; a short pause keeps their order across calls obvious.
        std::thread::sleep(Duration::from_millis(150));
    }

    /// Types literal text.
    pub fn text(&self, text: &str) {
        self.keys(&["-l", text]);
    }

    /// Types keys and measures how long until the screen shows every one of `needles` (the pane is read every
    /// 10 ms); panics with the screen if that takes longer than `limit`.
    pub fn answer_time(&self, keys: &[&str], needles: &[&str], limit: Duration) -> (Duration, String) {
        self.answer_time_when(keys, limit, &format!("{needles:?}"), |screen| needles.iter().all(|n| screen.contains(n)))
    }

    /// Types keys and measures how long until `shown(screen)` holds (the pane is read every 10 ms); panics with
    /// the screen and `what` was awaited if that takes longer than `limit`.
    pub fn answer_time_when(
        &self,
        keys: &[&str],
        limit: Duration,
        what: &str,
        shown: impl Fn(&str) -> bool,
    ) -> (Duration, String) {
        let start = Instant::now();
        self.send(keys);
        loop {
            let screen = self.screen();
            let elapsed = start.elapsed();
            if shown(&screen) {
                return (elapsed, screen);
            }
            assert!(elapsed <= limit, "the program did not show {what} within {limit:?} after {keys:?}:\n{screen}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The screen as text.
    pub fn screen(&self) -> String {
        let out = tmux(&["capture-pane", "-p", "-t", &self.session]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the screen shows every one of `needles`; panics with the screen otherwise.
    pub fn expect(&self, needles: &[&str], limit: Duration) -> String {
        let seen = wait_for(limit, || {
            let screen = self.screen();
            needles.iter().all(|n| screen.contains(n)).then_some(screen)
        });
        match seen {
            Some(screen) => screen,
            None => panic!("the program never showed {needles:?}; screen:\n{}", self.screen()),
        }
    }

    /// True once the program has exited (the pane stays, dead).
    pub fn ended(&self) -> bool {
        let out = tmux(&["display-message", "-p", "-t", &self.session, "#{pane_dead}"]);
        String::from_utf8_lossy(&out.stdout).trim() == "1"
    }

    fn send(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", self.session.as_str()];
        args.extend_from_slice(keys);
        let out = tmux(&args);
        assert!(out.status.success(), "send-keys {keys:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = tmux(&["kill-session", "-t", &self.session]);
        // The server exits with its last session but leaves its socket behind.
        if !tmux(&["has-session"]).status.success() {
            let _ = std::fs::remove_file(tmux_socket());
        }
    }
}

/// This test process's own tmux server (not the user's default one, whose socket would stay in /tmp/tmux-UID).
pub fn tmux_socket() -> PathBuf {
    std::env::temp_dir().join(format!("dvsan-console-test-tmux-{}.sock", std::process::id()))
}

/// Runs `tmux ARGS` against this test process's server.
pub fn tmux(args: &[&str]) -> Output {
    Command::new("tmux").arg("-S").arg(tmux_socket()).args(args).output().expect("run tmux")
}
