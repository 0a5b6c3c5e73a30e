//! SNMP group counters (RFC 3418 §2 `snmp` group, plus the RFC 1213 per-PDU counters), and the SNMPv3
//! ones: snmpMPDStats (RFC 3412 §5) and usmStats (RFC 3414 §5).
//!
//! Plain relaxed atomics: the agent bumps them on every datagram and the owner may read them at
//! any time. They are Counter32 on the wire, so they wrap at 2^32 as the SMI requires.

use std::sync::atomic::{AtomicU32, Ordering};

/// The counters an agent keeps about its own SNMP traffic.
#[derive(Debug, Default)]
pub struct SnmpCounters {
    /// snmpInPkts: every datagram received.
    pub in_pkts: AtomicU32,
    /// snmpOutPkts: every datagram sent.
    pub out_pkts: AtomicU32,
    /// snmpInBadVersions: a version other than v1/v2c.
    pub in_bad_versions: AtomicU32,
    /// snmpInBadCommunityNames: an unknown community.
    pub in_bad_community_names: AtomicU32,
    /// snmpInBadCommunityUses: a community not allowed for the operation (SET with read-only).
    pub in_bad_community_uses: AtomicU32,
    /// snmpInASNParseErrs: datagrams that are not valid SNMP messages.
    pub in_asn_parse_errs: AtomicU32,
    /// snmpSilentDrops: requests dropped because even an empty response would be too big.
    pub silent_drops: AtomicU32,
    /// snmpProxyDrops: always 0 (no proxy).
    pub proxy_drops: AtomicU32,
    /// snmpInTotalReqVars: varbinds retrieved by Get/GetNext/GetBulk.
    pub in_total_req_vars: AtomicU32,
    /// snmpInTotalSetVars: varbinds altered by successful Sets.
    pub in_total_set_vars: AtomicU32,
    pub in_get_requests: AtomicU32,
    pub in_get_nexts: AtomicU32,
    pub in_set_requests: AtomicU32,
    /// Responses received by the agent (dropped).
    pub in_get_responses: AtomicU32,
    /// Traps and informs received by the agent (dropped).
    pub in_traps: AtomicU32,
    pub out_too_bigs: AtomicU32,
    pub out_no_such_names: AtomicU32,
    pub out_bad_values: AtomicU32,
    pub out_gen_errs: AtomicU32,
    pub out_get_responses: AtomicU32,
    pub out_traps: AtomicU32,
    /// snmpUnknownSecurityModels: v3 messages for a security model other than USM.
    pub unknown_security_models: AtomicU32,
    /// snmpInvalidMsgs: v3 messages with invalid msgFlags (privacy without authentication).
    pub invalid_msgs: AtomicU32,
    /// snmpUnknownPDUHandlers: v3 requests for another context engine.
    pub unknown_pdu_handlers: AtomicU32,
    /// snmpUnknownContexts (SNMP-TARGET-MIB): v3 requests for a context other than the default "".
    pub unknown_contexts: AtomicU32,
    /// usmStatsUnsupportedSecLevels: a level the user is not configured for.
    pub usm_unsupported_sec_levels: AtomicU32,
    /// usmStatsNotInTimeWindows: boots or time outside the 150 s window.
    pub usm_not_in_time_windows: AtomicU32,
    /// usmStatsUnknownUserNames.
    pub usm_unknown_user_names: AtomicU32,
    /// usmStatsUnknownEngineIDs (including discovery requests).
    pub usm_unknown_engine_ids: AtomicU32,
    /// usmStatsWrongDigests.
    pub usm_wrong_digests: AtomicU32,
    /// usmStatsDecryptionErrors.
    pub usm_decryption_errors: AtomicU32,
}

impl SnmpCounters {
    /// A fresh set of zeroed counters.
    pub fn new() -> SnmpCounters {
        SnmpCounters::default()
    }

    /// Reads one counter.
    pub fn read(counter: &AtomicU32) -> u32 {
        counter.load(Ordering::Relaxed)
    }

    /// Adds one (wrapping).
    pub(crate) fn bump(counter: &AtomicU32) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n` (wrapping).
    pub(crate) fn add(counter: &AtomicU32, n: usize) {
        counter.fetch_add(n as u32, Ordering::Relaxed);
    }

    /// The counter served at `snmp.<arc>` (RFC 1213 / RFC 3418 numbering), if any.
    pub fn by_arc(&self, arc: u32) -> Option<&AtomicU32> {
        Some(match arc {
            1 => &self.in_pkts,
            2 => &self.out_pkts,
            3 => &self.in_bad_versions,
            4 => &self.in_bad_community_names,
            5 => &self.in_bad_community_uses,
            6 => &self.in_asn_parse_errs,
            13 => &self.in_total_req_vars,
            14 => &self.in_total_set_vars,
            15 => &self.in_get_requests,
            16 => &self.in_get_nexts,
            17 => &self.in_set_requests,
            18 => &self.in_get_responses,
            19 => &self.in_traps,
            20 => &self.out_too_bigs,
            21 => &self.out_no_such_names,
            22 => &self.out_bad_values,
            24 => &self.out_gen_errs,
            28 => &self.out_get_responses,
            29 => &self.out_traps,
            31 => &self.silent_drops,
            32 => &self.proxy_drops,
            _ => return None,
        })
    }

    /// The counter served at `snmpMPDStats.<arc>` (RFC 3412 §5).
    pub fn mpd_by_arc(&self, arc: u32) -> Option<&AtomicU32> {
        Some(match arc {
            1 => &self.unknown_security_models,
            2 => &self.invalid_msgs,
            3 => &self.unknown_pdu_handlers,
            _ => return None,
        })
    }

    /// The counter served at `usmStats.<arc>` (RFC 3414 §5).
    pub fn usm_by_arc(&self, arc: u32) -> Option<&AtomicU32> {
        Some(match arc {
            1 => &self.usm_unsupported_sec_levels,
            2 => &self.usm_not_in_time_windows,
            3 => &self.usm_unknown_user_names,
            4 => &self.usm_unknown_engine_ids,
            5 => &self.usm_wrong_digests,
            6 => &self.usm_decryption_errors,
            _ => return None,
        })
    }
}
