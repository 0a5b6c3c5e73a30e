//! The SNMPv3 message (RFC 3412 §6) with USM security parameters (RFC 3414 §2.4): decoding with
//! snmp-parser's v3 support, encoding with our BER writer, signing and encryption on the way out.
//!
//! [`decode_v3`] reads a datagram into a [`V3Message`] (the ScopedPDU stays encrypted until the
//! receiver has found the user: [`V3Message::authenticates`] checks the digest,
//! [`V3Message::decrypt_scoped_pdu`] opens the encryptedPDU). [`encode_v3`] writes a message at the
//! level the [`Keys`] give (none: noAuthNoPriv), encrypting the ScopedPDU and signing the whole
//! message. Both sides use these: the agent (authoritative) and managers.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use snmp_parser::asn1_rs::{FromBer, Sequence};
use snmp_parser::{ScopedPduData, SecurityParameters, SnmpV3Message};

use crate::ber::{tag, BerWriter};
use crate::message::{convert_pdu, decode_pdu, encode_pdu, DecodeError};
use crate::pdu::{GenericPdu, Pdu};
use crate::usm::crypto::{self, AuthProtocol, CryptoError, PrivProtocol};
use crate::usm::user::{LocalUser, SecurityLevel};

/// msgSecurityModel of the User-based Security Model.
pub const USM_SECURITY_MODEL: u32 = 3;

/// The largest engine id, user name or context field USM accepts (SnmpEngineID and SnmpAdminString).
pub const MAX_ID_LEN: usize = 32;

/// msgFlags (RFC 3412 §6.4).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct MsgFlags {
    pub auth: bool,
    pub privacy: bool,
    pub reportable: bool,
}

impl MsgFlags {
    /// The flags of a message at `level`.
    pub fn at(level: SecurityLevel, reportable: bool) -> MsgFlags {
        MsgFlags { auth: level != SecurityLevel::NoAuthNoPriv, privacy: level == SecurityLevel::AuthPriv, reportable }
    }

    /// The octet on the wire.
    pub fn to_byte(self) -> u8 {
        u8::from(self.auth) | (u8::from(self.privacy) << 1) | (u8::from(self.reportable) << 2)
    }

    /// Reads the octet (bits above the third are ignored, as RFC 3412 allows).
    pub fn from_byte(b: u8) -> MsgFlags {
        MsgFlags { auth: b & 1 != 0, privacy: b & 2 != 0, reportable: b & 4 != 0 }
    }

    /// The securityLevel, or `None` for the invalid privacy-without-authentication.
    pub fn level(self) -> Option<SecurityLevel> {
        match (self.auth, self.privacy) {
            (false, false) => Some(SecurityLevel::NoAuthNoPriv),
            (true, false) => Some(SecurityLevel::AuthNoPriv),
            (true, true) => Some(SecurityLevel::AuthPriv),
            (false, true) => None,
        }
    }
}

/// msgGlobalData.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct GlobalData {
    pub msg_id: i32,
    pub max_size: u32,
    pub flags: MsgFlags,
    pub security_model: u32,
}

/// UsmSecurityParameters.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct UsmParams {
    pub engine_id: Vec<u8>,
    pub boots: u32,
    pub time: u32,
    pub user_name: Vec<u8>,
    pub auth_params: Vec<u8>,
    pub priv_params: Vec<u8>,
}

/// A ScopedPDU.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ScopedPdu {
    pub context_engine_id: Vec<u8>,
    pub context_name: Vec<u8>,
    pub pdu: Pdu,
}

/// msgData: the ScopedPDU, or its encryption.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ScopedData {
    Plain(ScopedPdu),
    Encrypted(Vec<u8>),
}

/// A decoded SNMPv3 message with USM parameters.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct V3Message {
    pub global: GlobalData,
    pub usm: UsmParams,
    pub data: ScopedData,
    /// Where msgAuthenticationParameters' content is in the datagram.
    auth_range: Range<usize>,
}

/// Why a datagram is not a usable SNMPv3/USM message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum V3DecodeError {
    /// msgVersion is not 3 (snmpInBadVersions).
    #[error("not an SNMPv3 message")]
    NotV3,
    /// A well-formed message for another security model (snmpUnknownSecurityModels).
    #[error("security model {0} is not USM")]
    UnknownSecurityModel(u32),
    /// Anything else (snmpInASNParseErrs).
    #[error("malformed SNMPv3 message: {0}")]
    Malformed(&'static str),
}

impl From<DecodeError> for V3DecodeError {
    fn from(e: DecodeError) -> V3DecodeError {
        match e {
            DecodeError::Malformed(why) => V3DecodeError::Malformed(why),
            DecodeError::BadVersion => V3DecodeError::Malformed("PDU version"),
        }
    }
}

/// The largest value of msgID, engine boots and engine time (INTEGER (0..2147483647)).
const MAX_INT: u32 = 2_147_483_647;

/// Decodes one SNMPv3 datagram. Never panics; every length is checked by the parser.
pub fn decode_v3(datagram: &[u8]) -> Result<V3Message, V3DecodeError> {
    let (rest, msg) = SnmpV3Message::from_ber(datagram).map_err(|e| {
        tracing::trace!(len = datagram.len(), error = %e, "SNMPv3 decode failed");
        V3DecodeError::Malformed("BER/SNMPv3 structure")
    })?;
    if msg.version != 3 {
        return Err(V3DecodeError::NotV3);
    }
    if !rest.is_empty() {
        return Err(V3DecodeError::Malformed("trailing bytes after the message"));
    }
    let h = msg.header_data;
    if h.msg_id > MAX_INT {
        return Err(V3DecodeError::Malformed("msgID out of range"));
    }
    if !(484..=MAX_INT).contains(&h.msg_max_size) {
        return Err(V3DecodeError::Malformed("msgMaxSize out of range"));
    }
    let global = GlobalData {
        msg_id: h.msg_id as i32,
        max_size: h.msg_max_size,
        flags: MsgFlags::from_byte(h.msg_flags),
        security_model: h.msg_security_model.0,
    };
    let usm = match msg.security_params {
        SecurityParameters::USM(usm) => usm,
        SecurityParameters::Raw(_) => return Err(V3DecodeError::UnknownSecurityModel(global.security_model)),
    };
    if usm.msg_authoritative_engine_id.len() > MAX_ID_LEN || usm.msg_user_name.len() > MAX_ID_LEN {
        return Err(V3DecodeError::Malformed("engine ID or user name over 32 octets"));
    }
    if usm.msg_authoritative_engine_boots > MAX_INT || usm.msg_authoritative_engine_time > MAX_INT {
        return Err(V3DecodeError::Malformed("engine boots or time out of range"));
    }
    let auth = usm.msg_authentication_parameters;
    // The parser hands out sub-slices of `datagram`: their address gives their position.
    let start = (auth.as_ptr() as usize).wrapping_sub(datagram.as_ptr() as usize);
    let auth_range = start..start.wrapping_add(auth.len());
    if auth_range.end > datagram.len() || auth_range.start > auth_range.end {
        return Err(V3DecodeError::Malformed("authentication parameters outside the message"));
    }
    let data = match msg.data {
        ScopedPduData::Plaintext(s) => {
            if s.ctx_engine_id.len() > MAX_ID_LEN || s.ctx_engine_name.len() > MAX_ID_LEN {
                return Err(V3DecodeError::Malformed("context engine ID or name over 32 octets"));
            }
            ScopedData::Plain(ScopedPdu {
                context_engine_id: s.ctx_engine_id.to_vec(),
                context_name: s.ctx_engine_name.to_vec(),
                pdu: v3_pdu(convert_pdu(s.data, false)?)?,
            })
        }
        ScopedPduData::Encrypted(e) => ScopedData::Encrypted(e.to_vec()),
    };
    Ok(V3Message {
        global,
        usm: UsmParams {
            engine_id: usm.msg_authoritative_engine_id.to_vec(),
            boots: usm.msg_authoritative_engine_boots,
            time: usm.msg_authoritative_engine_time,
            user_name: usm.msg_user_name.into_bytes(),
            auth_params: auth.to_vec(),
            priv_params: usm.msg_privacy_parameters.to_vec(),
        },
        data,
        auth_range,
    })
}

/// SNMPv3 carries SNMPv2 PDUs only.
fn v3_pdu(pdu: Pdu) -> Result<Pdu, V3DecodeError> {
    if matches!(pdu, Pdu::TrapV1(_)) {
        return Err(V3DecodeError::Malformed("v1 Trap-PDU in an SNMPv3 message"));
    }
    Ok(pdu)
}

/// Decodes a serialised ScopedPDU (a decrypted encryptedPDU). Octets after it are ignored, as
/// RFC 3414 §8.3.2 asks of padding.
pub fn decode_scoped_pdu(plain: &[u8]) -> Result<ScopedPdu, V3DecodeError> {
    type Parts<'a> = (&'a [u8], &'a [u8], &'a [u8]);
    let parsed: Result<(&[u8], Parts<'_>), _> = Sequence::from_ber_and_then(plain, |i| {
        let (i, engine) = <&[u8]>::from_ber(i)?;
        let (i, name) = <&[u8]>::from_ber(i)?;
        Ok((&i[i.len()..], (engine, name, i)))
    });
    let (_, (engine, name, pdu)) =
        parsed.map_err(|_: snmp_parser::asn1_rs::nom::Err<snmp_parser::asn1_rs::Error>| {
            V3DecodeError::Malformed("ScopedPDU structure")
        })?;
    if engine.len() > MAX_ID_LEN || name.len() > MAX_ID_LEN {
        return Err(V3DecodeError::Malformed("context engine ID or name over 32 octets"));
    }
    Ok(ScopedPdu { context_engine_id: engine.to_vec(), context_name: name.to_vec(), pdu: v3_pdu(decode_pdu(pdu)?)? })
}

impl V3Message {
    /// The securityLevel of msgFlags (`None`: privacy without authentication, an invalid message).
    pub fn level(&self) -> Option<SecurityLevel> {
        self.global.flags.level()
    }

    /// Where msgAuthenticationParameters' content lies in the datagram this was decoded from.
    pub fn auth_range(&self) -> Range<usize> {
        self.auth_range.clone()
    }

    /// Whether `datagram` (the one this was decoded from) carries `user`'s digest (RFC 3414 §6.3.2,
    /// §7.3.2): the HMAC over the message with msgAuthenticationParameters zeroed.
    /// A user without authentication authenticates nothing.
    pub fn authenticates(&self, datagram: &[u8], user: &LocalUser) -> bool {
        let Some(auth) = user.auth else { return false };
        // Hashed in place, the field read as zeros: no copy of the datagram per request.
        crypto::verify_zeroed(auth, &user.auth_key, datagram, self.auth_range.clone(), &self.usm.auth_params)
    }

    /// The ScopedPDU: as received, or decrypted with `user`'s privacy key (RFC 3826 §3.1.4).
    /// `Err` is usmStatsDecryptionErrors: no key, a bad salt, or octets that are no ScopedPDU.
    pub fn decrypt_scoped_pdu(&self, user: &LocalUser) -> Result<ScopedPdu, V3DecodeError> {
        match &self.data {
            ScopedData::Plain(s) => Ok(s.clone()),
            ScopedData::Encrypted(enc) => {
                let (protocol, key) =
                    user.privacy.as_ref().ok_or(V3DecodeError::Malformed("encrypted for a user without privacy"))?;
                let mut plain = enc.clone();
                crypto::decrypt(*protocol, key, self.usm.boots, self.usm.time, &self.usm.priv_params, &mut plain)
                    .map_err(|_| V3DecodeError::Malformed("privacy parameters"))?;
                decode_scoped_pdu(&plain)
            }
        }
    }
}

/// The keys of an outgoing message: none (noAuthNoPriv), authentication, or both.
#[derive(Clone, Copy, Debug)]
pub struct Keys<'a> {
    pub auth: AuthProtocol,
    pub auth_key: &'a [u8],
    /// The privacy protocol and key, for authPriv.
    pub privacy: Option<(PrivProtocol, &'a [u8])>,
}

impl<'a> Keys<'a> {
    /// `user`'s keys at `level` (`None` for noAuthNoPriv and for a user without authentication; authPriv
    /// without a privacy key gives authNoPriv).
    pub fn of(user: &'a LocalUser, level: SecurityLevel) -> Option<Keys<'a>> {
        let auth = user.auth?;
        match level {
            SecurityLevel::NoAuthNoPriv => None,
            SecurityLevel::AuthNoPriv => Some(Keys { auth, auth_key: &user.auth_key, privacy: None }),
            SecurityLevel::AuthPriv => Some(Keys {
                auth,
                auth_key: &user.auth_key,
                privacy: user.privacy.as_ref().map(|(p, k)| (*p, k.as_slice())),
            }),
        }
    }
}

/// Everything of an outgoing message but its PDU and keys.
#[derive(Clone, Copy, Debug)]
pub struct Head<'a> {
    pub msg_id: i32,
    /// msgMaxSize: the largest message this engine accepts.
    pub max_size: u32,
    pub reportable: bool,
    /// The authoritative engine (the agent's own for responses and reports; the discovered one for requests).
    pub engine_id: &'a [u8],
    pub boots: u32,
    pub time: u32,
    pub user_name: &'a [u8],
    pub context_engine_id: &'a [u8],
    pub context_name: &'a [u8],
}

/// A fresh 8-octet salt: a 64-bit counter started at a random value (RFC 3826 §3.1.2.1).
pub fn next_salt() -> [u8; 8] {
    static SALT: OnceLock<AtomicU64> = OnceLock::new();
    let counter = SALT.get_or_init(|| {
        let seed = getrandom::u64().unwrap_or_else(|_| {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            (now.as_nanos() as u64) ^ (u64::from(std::process::id()) << 32)
        });
        AtomicU64::new(seed)
    });
    counter.fetch_add(1, Ordering::Relaxed).to_be_bytes()
}

/// Encodes a v3 message around `pdu_tlv` (an encoded PDU, see [`crate::message::encode_pdu`]),
/// appending to `out`: encrypted when `keys` has privacy, signed when there are keys at all.
pub fn encode_v3(
    head: &Head<'_>,
    keys: Option<&Keys<'_>>,
    pdu_tlv: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), CryptoError> {
    let level = match keys {
        None => SecurityLevel::NoAuthNoPriv,
        Some(k) if k.privacy.is_some() => SecurityLevel::AuthPriv,
        Some(_) => SecurityLevel::AuthNoPriv,
    };
    let mut scoped = Vec::with_capacity(pdu_tlv.len() + 2 * MAX_ID_LEN + 8);
    {
        let mut w = BerWriter::new(&mut scoped);
        let open = w.begin(tag::SEQUENCE);
        w.octets(tag::OCTET_STRING, head.context_engine_id);
        w.octets(tag::OCTET_STRING, head.context_name);
        w.raw(pdu_tlv);
        w.end(open);
    }
    let mut salt = [0u8; 8];
    if let Some((protocol, key)) = keys.and_then(|k| k.privacy) {
        salt = next_salt();
        crypto::encrypt(protocol, key, head.boots, head.time, &salt, &mut scoped)?;
    }
    let mac_len = keys.map_or(0, |k| k.auth.mac_len());

    let mut sec = Vec::with_capacity(64 + head.engine_id.len() + head.user_name.len() + mac_len);
    let auth_in_sec;
    {
        let mut w = BerWriter::new(&mut sec);
        let open = w.begin(tag::SEQUENCE);
        w.octets(tag::OCTET_STRING, head.engine_id);
        w.integer(tag::INTEGER, i64::from(head.boots));
        w.integer(tag::INTEGER, i64::from(head.time));
        w.octets(tag::OCTET_STRING, head.user_name);
        w.header(tag::OCTET_STRING, mac_len);
        let at = w.len();
        w.raw(&[0u8; 48][..mac_len]);
        let priv_params: &[u8] = if level == SecurityLevel::AuthPriv { &salt } else { &[] };
        w.octets(tag::OCTET_STRING, priv_params);
        let before = w.len();
        w.end(open);
        // The SEQUENCE's length may have grown to the long form, moving its content right.
        auth_in_sec = at + (w.len() - before);
    }

    let start = out.len();
    let mut w = BerWriter::new(out);
    let outer = w.begin(tag::SEQUENCE);
    let content_start = w.len();
    w.integer(tag::INTEGER, 3);
    let global = w.begin(tag::SEQUENCE);
    w.integer(tag::INTEGER, i64::from(head.msg_id));
    w.integer(tag::INTEGER, i64::from(head.max_size));
    w.octets(tag::OCTET_STRING, &[MsgFlags::at(level, head.reportable).to_byte()]);
    w.integer(tag::INTEGER, i64::from(USM_SECURITY_MODEL));
    w.end(global);
    w.octets(tag::OCTET_STRING, &sec);
    let auth_in_content = w.len() - sec.len() + auth_in_sec - content_start;
    if level == SecurityLevel::AuthPriv {
        w.octets(tag::OCTET_STRING, &scoped);
    } else {
        w.raw(&scoped);
    }
    let content_len = w.len() - content_start;
    w.end(outer);
    if let Some(k) = keys {
        let auth_at = out.len() - content_len + auth_in_content;
        let mac = crypto::sign(k.auth, k.auth_key, &out[start..]);
        out[auth_at..auth_at + mac_len].copy_from_slice(&mac);
    }
    Ok(())
}

/// [`encode_v3`] of a [`Pdu`] into a new buffer.
pub fn encode_v3_pdu(head: &Head<'_>, keys: Option<&Keys<'_>>, pdu: &Pdu) -> Result<Vec<u8>, CryptoError> {
    let mut tlv = Vec::with_capacity(128);
    encode_pdu(&mut BerWriter::new(&mut tlv), pdu);
    let mut out = Vec::with_capacity(tlv.len() + 160);
    encode_v3(head, keys, &tlv, &mut out)?;
    Ok(out)
}

/// The RFC 3414 §4 discovery probe: a reportable noAuthNoPriv GET without varbinds, with an empty engine id
/// and user name, whose Report names the agent's snmpEngineID, boots and time.
pub fn encode_discovery_probe(msg_id: i32, max_size: u32) -> Result<Vec<u8>, CryptoError> {
    let head = Head {
        msg_id,
        max_size,
        reportable: true,
        engine_id: b"",
        boots: 0,
        time: 0,
        user_name: b"",
        context_engine_id: b"",
        context_name: b"",
    };
    encode_v3_pdu(&head, None, &Pdu::Get(GenericPdu::request(msg_id, Vec::new())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oid::Oid;
    use crate::pdu::VarBind;
    use crate::usm::engine::EngineId;
    use crate::usm::user::{UserAccess, UsmUser};

    fn head<'a>(engine: &'a [u8], user: &'a [u8]) -> Head<'a> {
        Head {
            msg_id: 77,
            max_size: 65507,
            reportable: true,
            engine_id: engine,
            boots: 3,
            time: 1234,
            user_name: user,
            context_engine_id: engine,
            context_name: b"",
        }
    }

    fn get() -> Pdu {
        Pdu::Get(GenericPdu::request(9, vec![VarBind::null(Oid::from_slice(&[1, 3, 6, 1, 2, 1, 1, 1, 0]))]))
    }

    #[test]
    fn round_trip_at_each_level() {
        let engine = EngineId::from_text(1, "wire-test");
        for (auth, privacy) in [
            (AuthProtocol::HmacSha96, None),
            (AuthProtocol::HmacSha256, Some((PrivProtocol::Aes128Cfb, "priv-pass-1"))),
            (AuthProtocol::HmacSha512, Some((PrivProtocol::Aes128Cfb, "priv-pass-2"))),
        ] {
            let user = UsmUser::new("u", auth, "auth-pass-1", privacy, UserAccess::ReadOnly).unwrap();
            let local = user.localize(&engine);
            for level in [SecurityLevel::NoAuthNoPriv, SecurityLevel::AuthNoPriv, local.level()] {
                let keys = Keys::of(&local, level);
                let bytes = encode_v3_pdu(&head(engine.as_bytes(), b"u"), keys.as_ref(), &get()).unwrap();
                let msg = decode_v3(&bytes).unwrap();
                assert_eq!(msg.level(), Some(level));
                assert_eq!(msg.usm.engine_id, engine.as_bytes());
                assert_eq!((msg.usm.boots, msg.usm.time, msg.global.msg_id), (3, 1234, 77));
                assert_eq!(msg.authenticates(&bytes, &local), level != SecurityLevel::NoAuthNoPriv);
                let scoped = msg.decrypt_scoped_pdu(&local).unwrap();
                assert_eq!(scoped.pdu, get());
                if level == SecurityLevel::AuthPriv {
                    assert!(matches!(msg.data, ScopedData::Encrypted(_)));
                    let other = UsmUser::new(
                        "u",
                        auth,
                        "auth-pass-1",
                        Some((PrivProtocol::Aes128Cfb, "wrong-pass")),
                        UserAccess::ReadOnly,
                    )
                    .unwrap()
                    .localize(&engine);
                    assert!(msg.decrypt_scoped_pdu(&other).is_err());
                }
                // One flipped bit anywhere breaks the digest.
                if level != SecurityLevel::NoAuthNoPriv {
                    for i in [0, bytes.len() / 2, bytes.len() - 1] {
                        let mut bad = bytes.clone();
                        bad[i] ^= 0x01;
                        if let Ok(m) = decode_v3(&bad) {
                            assert!(!m.authenticates(&bad, &local), "bit {i}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn long_forms_keep_the_digest_in_place() {
        // A large PDU and a long user name force long-form lengths around the signed field.
        let engine = EngineId::from_text(1, "e");
        let user = UsmUser::new(
            "a-user-name-of-thirty-two-octets",
            AuthProtocol::HmacSha512,
            "auth-pass-1",
            Some((PrivProtocol::Aes128Cfb, "priv-pass-1")),
            UserAccess::ReadOnly,
        )
        .unwrap();
        let local = user.localize(&engine);
        let big = Pdu::Response(GenericPdu::request(
            1,
            (0..200).map(|i| VarBind::null(Oid::from_slice(&[1, 3, 6, 1, 4, 1, i]))).collect(),
        ));
        let bytes = encode_v3_pdu(
            &head(engine.as_bytes(), local.name.as_bytes()),
            Keys::of(&local, SecurityLevel::AuthPriv).as_ref(),
            &big,
        )
        .unwrap();
        let msg = decode_v3(&bytes).unwrap();
        assert!(msg.authenticates(&bytes, &local));
        assert_eq!(msg.decrypt_scoped_pdu(&local).unwrap().pdu, big);
    }

    #[test]
    fn flags() {
        assert_eq!(MsgFlags::from_byte(2).level(), None);
        assert_eq!(MsgFlags::at(SecurityLevel::AuthPriv, true).to_byte(), 7);
        assert_eq!(MsgFlags::from_byte(0x04).level(), Some(SecurityLevel::NoAuthNoPriv));
    }
}
