//! Counters of bad input by reason: every malformed, refused or abusive thing a client did.
//!
//! The data path and the handshake bump one atomic per event and log it (warn when the connection is closed for
//! it, debug for per-request refusals that a client may repeat at line rate). Events an attacker can repeat per
//! connection (refused, evicted and timed-out connections, refused exports) go through [`BadInputCounters::note`],
//! which lets at most [`LOG_LINES_PER_SECOND`] lines a second through and has the next line that gets through say
//! how many were suppressed. The totals are logged at shutdown.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Most log lines a second for bad input that goes through [`BadInputCounters::note`].
pub const LOG_LINES_PER_SECOND: u32 = 10;

/// Why input was bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadInput {
    /// The client did not answer the greeting with valid client flags, or stalled during the handshake.
    HandshakeTimeout,
    UnknownClientFlags,
    OptionBadMagic,
    OptionTooLong,
    TooManyOptions,
    OptionInvalid,
    OptionUnsupported,
    ExportUnknown,
    ExportNotGranted,
    /// Every served connection slot was taken when a handshake picked an export.
    TooManyConnections,
    /// Every handshake slot was taken (and no source held more than the newcomer's).
    TooManyHandshakes,
    /// The source address already had its most handshakes in progress.
    TooManyHandshakesFromSource,
    /// The host already had its most connections in transmission.
    TooManyConnectionsFromHost,
    /// A handshake closed to give its slot to a connection from a lighter source.
    HandshakeEvicted,
    /// The client sent nothing (not even its flags) within the pre-negotiation limit.
    SilentClient,
    /// An idle connection in transmission closed to give its slot to a host holding fewer.
    IdleConnectionEvicted,
    RequestBadMagic,
    UnknownCommand,
    BadCommandFlags,
    RequestTooLarge,
    RequestOutOfRange,
    WriteOnReadOnly,
    ReservedFieldsSet,
    /// A client sent part of a request and then nothing for longer than the stall limit.
    StalledRequest,
    MediaError,
    /// An option other than NBD_OPT_STARTTLS or NBD_OPT_ABORT before TLS under `--tls require`.
    TlsRequired,
    /// The TLS handshake failed: no client certificate, one the CA did not sign, or a broken handshake.
    TlsHandshake,
}

impl BadInput {
    pub const ALL: [BadInput; 27] = [
        BadInput::HandshakeTimeout,
        BadInput::UnknownClientFlags,
        BadInput::OptionBadMagic,
        BadInput::OptionTooLong,
        BadInput::TooManyOptions,
        BadInput::OptionInvalid,
        BadInput::OptionUnsupported,
        BadInput::ExportUnknown,
        BadInput::ExportNotGranted,
        BadInput::TooManyConnections,
        BadInput::TooManyHandshakes,
        BadInput::TooManyHandshakesFromSource,
        BadInput::TooManyConnectionsFromHost,
        BadInput::HandshakeEvicted,
        BadInput::SilentClient,
        BadInput::IdleConnectionEvicted,
        BadInput::RequestBadMagic,
        BadInput::UnknownCommand,
        BadInput::BadCommandFlags,
        BadInput::RequestTooLarge,
        BadInput::RequestOutOfRange,
        BadInput::WriteOnReadOnly,
        BadInput::ReservedFieldsSet,
        BadInput::StalledRequest,
        BadInput::MediaError,
        BadInput::TlsRequired,
        BadInput::TlsHandshake,
    ];

    pub fn name(&self) -> &'static str {
        match self {
            BadInput::HandshakeTimeout => "handshake_timeout",
            BadInput::UnknownClientFlags => "unknown_client_flags",
            BadInput::OptionBadMagic => "option_bad_magic",
            BadInput::OptionTooLong => "option_too_long",
            BadInput::TooManyOptions => "too_many_options",
            BadInput::OptionInvalid => "option_invalid",
            BadInput::OptionUnsupported => "option_unsupported",
            BadInput::ExportUnknown => "export_unknown",
            BadInput::ExportNotGranted => "export_not_granted",
            BadInput::TooManyConnections => "too_many_connections",
            BadInput::TooManyHandshakes => "too_many_handshakes",
            BadInput::TooManyHandshakesFromSource => "too_many_handshakes_from_source",
            BadInput::TooManyConnectionsFromHost => "too_many_connections_from_host",
            BadInput::HandshakeEvicted => "handshake_evicted",
            BadInput::SilentClient => "silent_client",
            BadInput::IdleConnectionEvicted => "idle_connection_evicted",
            BadInput::RequestBadMagic => "request_bad_magic",
            BadInput::UnknownCommand => "unknown_command",
            BadInput::BadCommandFlags => "bad_command_flags",
            BadInput::RequestTooLarge => "request_too_large",
            BadInput::RequestOutOfRange => "request_out_of_range",
            BadInput::WriteOnReadOnly => "write_on_read_only",
            BadInput::ReservedFieldsSet => "reserved_fields_set",
            BadInput::StalledRequest => "stalled_request",
            BadInput::MediaError => "media_error",
            BadInput::TlsRequired => "tls_required",
            BadInput::TlsHandshake => "tls_handshake",
        }
    }

    pub fn from_refusal(r: &dvsan_nbd::Refusal) -> BadInput {
        use dvsan_nbd::Refusal;
        match r {
            Refusal::UnknownCommand(_) | Refusal::NoMetaContext => BadInput::UnknownCommand,
            Refusal::BadFlags(_) => BadInput::BadCommandFlags,
            Refusal::ReadOnly => BadInput::WriteOnReadOnly,
            Refusal::TooLarge(_) => BadInput::RequestTooLarge,
            Refusal::OutOfRange | Refusal::NoSpace | Refusal::ZeroLength => BadInput::RequestOutOfRange,
            Refusal::ReservedFields => BadInput::ReservedFieldsSet,
        }
    }
}

#[derive(Debug, Default)]
pub struct BadInputCounters {
    counts: [AtomicU64; BadInput::ALL.len()],
    log: LogBudget,
    /// Lines [`BadInputCounters::note`] kept out of the log.
    suppressed: AtomicU64,
}

/// The current one-second window of rate-limited log lines.
#[derive(Debug, Default)]
struct LogBudget {
    state: Mutex<LogWindow>,
}

#[derive(Debug, Default)]
struct LogWindow {
    started: Option<Instant>,
    lines: u32,
    suppressed: u64,
}

impl BadInputCounters {
    pub fn bump(&self, what: BadInput) {
        self.counts[what as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Count `what`, and say whether to log it: `Some(k)` (log it, and say that `k` lines were suppressed since
    /// the last one logged) for at most [`LOG_LINES_PER_SECOND`] events a second, `None` for the rest.
    pub fn note(&self, what: BadInput) -> Option<u64> {
        self.bump(what);
        self.may_log()
    }

    /// Whether a line about bad input (already counted) may be logged now; what [`note`](Self::note) says.
    pub fn may_log(&self) -> Option<u64> {
        let mut w = self.log.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if w.started.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1)) {
            w.started = Some(now);
            w.lines = 0;
        }
        if w.lines < LOG_LINES_PER_SECOND {
            w.lines += 1;
            Some(std::mem::take(&mut w.suppressed))
        } else {
            w.suppressed += 1;
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }

    /// Continue from totals saved by an earlier run (by [`BadInput::name`]; unknown names are ignored).
    pub fn add_saved(&self, saved: &std::collections::BTreeMap<String, u64>) {
        for b in BadInput::ALL {
            if let Some(n) = saved.get(b.name()) {
                self.counts[b as usize].fetch_add(*n, Ordering::Relaxed);
            }
        }
    }

    /// (name, total) of every non-zero counter, for the unit store (the agent serves them in DVSAN-MIB).
    pub fn totals(&self) -> Vec<(&'static str, u64)> {
        BadInput::ALL.iter().map(|b| (b.name(), self.get(*b))).filter(|(_, n)| *n > 0).collect()
    }

    pub fn get(&self, what: BadInput) -> u64 {
        self.counts[what as usize].load(Ordering::Relaxed)
    }

    /// "name=count" for every non-zero counter, for the log.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = BadInput::ALL
            .iter()
            .filter(|b| self.get(**b) > 0)
            .map(|b| format!("{}={}", b.name(), self.get(*b)))
            .collect();
        let suppressed = self.suppressed.load(Ordering::Relaxed);
        if parts.is_empty() {
            "none".to_string()
        } else if suppressed > 0 {
            format!("{} (log lines suppressed: {suppressed})", parts.join(" "))
        } else {
            parts.join(" ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_its_own_slot() {
        for (i, b) in BadInput::ALL.iter().enumerate() {
            assert_eq!(*b as usize, i, "{}", b.name());
        }
        let c = BadInputCounters::default();
        c.bump(BadInput::StalledRequest);
        c.bump(BadInput::StalledRequest);
        assert_eq!(c.summary(), "stalled_request=2");
        let saved = [("stalled_request".to_string(), 5), ("no_such_reason".to_string(), 9)].into_iter().collect();
        c.add_saved(&saved);
        assert_eq!(c.totals(), vec![("stalled_request", 7)]);
    }

    #[test]
    fn noted_events_are_all_counted_but_only_some_logged() {
        let c = BadInputCounters::default();
        let logged: Vec<u64> = (0..1000).filter_map(|_| c.note(BadInput::SilentClient)).collect();
        assert_eq!(c.get(BadInput::SilentClient), 1000);
        // One window (the loop takes far less than a second) or, on a slow machine, a few.
        assert!((LOG_LINES_PER_SECOND as usize..=3 * LOG_LINES_PER_SECOND as usize).contains(&logged.len()));
        assert_eq!(c.suppressed.load(Ordering::Relaxed), 1000 - logged.len() as u64);
        assert_eq!(logged[0], 0, "nothing was suppressed before the first line");
    }
}
