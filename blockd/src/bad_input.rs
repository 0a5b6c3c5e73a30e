//! Counters of bad input by reason: every malformed, refused or abusive thing a client did.
//!
//! The data path and the handshake bump one atomic per event and log it (warn when the connection is closed for
//! it, debug for per-request refusals that a client may repeat at line rate). The totals are logged at shutdown.

use std::sync::atomic::{AtomicU64, Ordering};

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
    TooManyConnections,
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
    pub const ALL: [BadInput; 21] = [
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
}

impl BadInputCounters {
    pub fn bump(&self, what: BadInput) {
        self.counts[what as usize].fetch_add(1, Ordering::Relaxed);
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
        if parts.is_empty() {
            "none".to_string()
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
    }
}
