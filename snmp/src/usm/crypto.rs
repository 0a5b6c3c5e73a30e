//! USM cryptography (RFC 3414 §2.6 and appendix A.2, RFC 7860, RFC 3826), built on RustCrypto.
//!
//! Passphrase to key ([`password_to_key`]), key localisation to an authoritative engine
//! ([`localize_key`]), message authentication ([`sign`], [`verify`]: HMAC truncated to the
//! protocol's MAC length, compared in constant time) and privacy ([`encrypt`], [`decrypt`]: AES-128
//! in CFB-128 mode with the RFC 3826 IV `engineBoots ‖ engineTime ‖ salt`). No primitive is written
//! here: HMAC, SHA-1, SHA-2 and AES come from the `hmac`, `sha1`, `sha2`, `aes` and `cfb-mode` crates.
//! The wire codec (`usm::wire`) and the agent call these; a manager uses the same functions.

use std::fmt;

use aes::cipher::{AsyncStreamCipher, KeyIvInit};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};

/// How many octets of passphrase repetition RFC 3414 A.2 hashes (one megabyte).
const PASSPHRASE_EXPANSION: usize = 1_048_576;

/// The shortest passphrase RFC 3414 §11.2 allows.
pub const MIN_PASSPHRASE_LEN: usize = 8;

/// A USM authentication protocol.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum AuthProtocol {
    /// usmHMACSHAAuthProtocol (RFC 3414): HMAC-SHA-1 truncated to 96 bits.
    HmacSha96,
    /// usmHMAC192SHA256AuthProtocol (RFC 7860): HMAC-SHA-256 truncated to 192 bits.
    HmacSha256,
    /// usmHMAC384SHA512AuthProtocol (RFC 7860): HMAC-SHA-512 truncated to 384 bits.
    HmacSha512,
}

impl AuthProtocol {
    /// Every protocol, for listing what is valid.
    pub const ALL: [AuthProtocol; 3] = [AuthProtocol::HmacSha96, AuthProtocol::HmacSha256, AuthProtocol::HmacSha512];

    /// The name used in users files and by net-snmp's `-a` option: `SHA`, `SHA-256`, `SHA-512`.
    pub fn name(self) -> &'static str {
        match self {
            AuthProtocol::HmacSha96 => "SHA",
            AuthProtocol::HmacSha256 => "SHA-256",
            AuthProtocol::HmacSha512 => "SHA-512",
        }
    }

    /// The protocol named `name` (see [`AuthProtocol::name`]; `SHA-1` and `SHA1` also mean `SHA`).
    pub fn from_name(name: &str) -> Option<AuthProtocol> {
        match name.to_ascii_uppercase().as_str() {
            "SHA" | "SHA1" | "SHA-1" => Some(AuthProtocol::HmacSha96),
            "SHA-256" | "SHA256" => Some(AuthProtocol::HmacSha256),
            "SHA-512" | "SHA512" => Some(AuthProtocol::HmacSha512),
            _ => None,
        }
    }

    /// Octets of msgAuthenticationParameters (the truncated MAC): 12, 24 or 48.
    pub fn mac_len(self) -> usize {
        match self {
            AuthProtocol::HmacSha96 => 12,
            AuthProtocol::HmacSha256 => 24,
            AuthProtocol::HmacSha512 => 48,
        }
    }

    /// Octets of a (localised) key: the hash length, 20, 32 or 64.
    pub fn key_len(self) -> usize {
        match self {
            AuthProtocol::HmacSha96 => 20,
            AuthProtocol::HmacSha256 => 32,
            AuthProtocol::HmacSha512 => 64,
        }
    }

    fn hash(self, parts: &[&[u8]]) -> Vec<u8> {
        fn run<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut d = D::new();
            for p in parts {
                d.update(p);
            }
            d.finalize().to_vec()
        }
        match self {
            AuthProtocol::HmacSha96 => run::<Sha1>(parts),
            AuthProtocol::HmacSha256 => run::<Sha256>(parts),
            AuthProtocol::HmacSha512 => run::<Sha512>(parts),
        }
    }

    /// The protocol's hash over a megabyte of repeated passphrase (RFC 3414 A.2), fed in blocks.
    fn hash_expanded(self, passphrase: &[u8]) -> Vec<u8> {
        fn run<D: Digest>(passphrase: &[u8]) -> Vec<u8> {
            let mut d = D::new();
            let mut block = [0u8; 64];
            let mut index = 0usize;
            let mut fed = 0usize;
            while fed < PASSPHRASE_EXPANSION {
                for b in block.iter_mut() {
                    *b = passphrase[index % passphrase.len()];
                    index += 1;
                }
                d.update(block);
                fed += block.len();
            }
            d.finalize().to_vec()
        }
        match self {
            AuthProtocol::HmacSha96 => run::<Sha1>(passphrase),
            AuthProtocol::HmacSha256 => run::<Sha256>(passphrase),
            AuthProtocol::HmacSha512 => run::<Sha512>(passphrase),
        }
    }
}

impl fmt::Display for AuthProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A USM privacy protocol.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum PrivProtocol {
    /// usmAesCfb128Protocol (RFC 3826).
    Aes128Cfb,
}

impl PrivProtocol {
    /// Every protocol, for listing what is valid.
    pub const ALL: [PrivProtocol; 1] = [PrivProtocol::Aes128Cfb];

    /// The name used in users files and by net-snmp's `-x` option: `AES`.
    pub fn name(self) -> &'static str {
        match self {
            PrivProtocol::Aes128Cfb => "AES",
        }
    }

    /// The protocol named `name` (`AES`, also `AES-128` and `AES128`).
    pub fn from_name(name: &str) -> Option<PrivProtocol> {
        match name.to_ascii_uppercase().as_str() {
            "AES" | "AES-128" | "AES128" => Some(PrivProtocol::Aes128Cfb),
            _ => None,
        }
    }

    /// Octets of key the cipher uses (the first octets of the localised privacy key).
    pub fn key_len(self) -> usize {
        16
    }
}

impl fmt::Display for PrivProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a cryptographic operation could not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// RFC 3414 §11.2: passphrases are at least 8 octets.
    #[error("passphrase too short: use at least {MIN_PASSPHRASE_LEN} characters")]
    ShortPassphrase,
    /// A key shorter than the protocol needs.
    #[error("key of {0} octets is too short")]
    ShortKey(usize),
    /// msgPrivacyParameters is not the 8-octet salt.
    #[error("privacy parameters of {0} octets (a salt is 8)")]
    BadSalt(usize),
}

/// The master key `Ku` of a passphrase (RFC 3414 A.2; RFC 7860 §9.2 for SHA-2): the protocol's hash
/// over the passphrase repeated to one megabyte. Slow on purpose (about a megabyte of hashing):
/// derive once per user, then [`localize_key`] per engine.
pub fn password_to_key(protocol: AuthProtocol, passphrase: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if passphrase.len() < MIN_PASSPHRASE_LEN {
        return Err(CryptoError::ShortPassphrase);
    }
    Ok(protocol.hash_expanded(passphrase))
}

/// The localised key `Kul = H(Ku ‖ engineID ‖ Ku)` (RFC 3414 §2.6).
pub fn localize_key(protocol: AuthProtocol, master: &[u8], engine_id: &[u8]) -> Vec<u8> {
    protocol.hash(&[master, engine_id, master])
}

fn mac<M: Mac + hmac::digest::KeyInit>(key: &[u8], message: &[u8]) -> M {
    mac_parts(key, &[message])
}

fn mac_parts<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]]) -> M {
    // HMAC accepts keys of any length, so this never fails.
    let mut m =
        <M as hmac::digest::KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    for part in parts {
        m.update(part);
    }
    m
}

/// msgAuthenticationParameters for `message` (which carries zeros in that field): the HMAC with the
/// localised authentication key, truncated to [`AuthProtocol::mac_len`] octets.
pub fn sign(protocol: AuthProtocol, key: &[u8], message: &[u8]) -> Vec<u8> {
    let full = match protocol {
        AuthProtocol::HmacSha96 => mac::<Hmac<Sha1>>(key, message).finalize().into_bytes().to_vec(),
        AuthProtocol::HmacSha256 => mac::<Hmac<Sha256>>(key, message).finalize().into_bytes().to_vec(),
        AuthProtocol::HmacSha512 => mac::<Hmac<Sha512>>(key, message).finalize().into_bytes().to_vec(),
    };
    full[..protocol.mac_len()].to_vec()
}

/// Whether `digest` is the right msgAuthenticationParameters for `message` (with that field zeroed).
/// Constant time in the digest's content; a digest of the wrong length is simply wrong.
pub fn verify(protocol: AuthProtocol, key: &[u8], message: &[u8], digest: &[u8]) -> bool {
    if digest.len() != protocol.mac_len() {
        return false;
    }
    match protocol {
        AuthProtocol::HmacSha96 => mac::<Hmac<Sha1>>(key, message).verify_truncated_left(digest).is_ok(),
        AuthProtocol::HmacSha256 => mac::<Hmac<Sha256>>(key, message).verify_truncated_left(digest).is_ok(),
        AuthProtocol::HmacSha512 => mac::<Hmac<Sha512>>(key, message).verify_truncated_left(digest).is_ok(),
    }
}

/// [`verify`] of `message` as if the octets at `zeroed` (msgAuthenticationParameters, as long as
/// `digest`) were zeros, without copying the message: what a receiver checks (RFC 3414 §6.3.2).
pub fn verify_zeroed(
    protocol: AuthProtocol,
    key: &[u8],
    message: &[u8],
    zeroed: std::ops::Range<usize>,
    digest: &[u8],
) -> bool {
    const ZEROS: [u8; 48] = [0; 48];
    if digest.len() != protocol.mac_len() || zeroed.len() != digest.len() || zeroed.end > message.len() {
        return false;
    }
    let parts: [&[u8]; 3] = [&message[..zeroed.start], &ZEROS[..zeroed.len()], &message[zeroed.end..]];
    match protocol {
        AuthProtocol::HmacSha96 => mac_parts::<Hmac<Sha1>>(key, &parts).verify_truncated_left(digest).is_ok(),
        AuthProtocol::HmacSha256 => mac_parts::<Hmac<Sha256>>(key, &parts).verify_truncated_left(digest).is_ok(),
        AuthProtocol::HmacSha512 => mac_parts::<Hmac<Sha512>>(key, &parts).verify_truncated_left(digest).is_ok(),
    }
}

type Aes128CfbEnc = cfb_mode::Encryptor<aes::Aes128>;
type Aes128CfbDec = cfb_mode::Decryptor<aes::Aes128>;

/// The RFC 3826 §3.1.2.1 IV: engineBoots ‖ engineTime ‖ salt, each big-endian.
fn aes_iv(boots: u32, time: u32, salt: &[u8; 8]) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv[..4].copy_from_slice(&boots.to_be_bytes());
    iv[4..8].copy_from_slice(&time.to_be_bytes());
    iv[8..].copy_from_slice(salt);
    iv
}

fn aes_key(protocol: PrivProtocol, key: &[u8]) -> Result<&[u8], CryptoError> {
    key.get(..protocol.key_len()).ok_or(CryptoError::ShortKey(key.len()))
}

/// Encrypts a serialised ScopedPDU in place with the localised privacy key, for the authoritative
/// engine's `boots`/`time` (those sent in the message) and the 8-octet `salt` (sent as
/// msgPrivacyParameters; never reuse one with the same key, boots and time).
pub fn encrypt(
    protocol: PrivProtocol,
    key: &[u8],
    boots: u32,
    time: u32,
    salt: &[u8; 8],
    data: &mut [u8],
) -> Result<(), CryptoError> {
    let key = aes_key(protocol, key)?;
    let iv = aes_iv(boots, time, salt);
    Aes128CfbEnc::new_from_slices(key, &iv).map_err(|_| CryptoError::ShortKey(key.len()))?.encrypt(data);
    Ok(())
}

/// Decrypts an encryptedPDU in place; `salt` is the message's msgPrivacyParameters. Decryption
/// cannot detect a wrong key by itself: the result then fails to parse as a ScopedPDU.
pub fn decrypt(
    protocol: PrivProtocol,
    key: &[u8],
    boots: u32,
    time: u32,
    salt: &[u8],
    data: &mut [u8],
) -> Result<(), CryptoError> {
    let salt: &[u8; 8] = salt.try_into().map_err(|_| CryptoError::BadSalt(salt.len()))?;
    let key = aes_key(protocol, key)?;
    let iv = aes_iv(boots, time, salt);
    Aes128CfbDec::new_from_slices(key, &iv).map_err(|_| CryptoError::ShortKey(key.len()))?.decrypt(data);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// RFC 3414 A.3.2: password "maplesyrup", engine ID 00..02, SHA-1.
    #[test]
    fn rfc3414_sha1_key_vectors() {
        let ku = password_to_key(AuthProtocol::HmacSha96, b"maplesyrup").unwrap();
        assert_eq!(ku, hex("9f b5 cc 03 81 49 7b 37 93 52 89 39 ff 78 8d 5d 79 14 52 11"));
        let engine = hex("00 00 00 00 00 00 00 00 00 00 00 02");
        let kul = localize_key(AuthProtocol::HmacSha96, &ku, &engine);
        assert_eq!(kul, hex("66 95 fe bc 92 88 e3 62 82 23 5f c7 15 1f 12 84 97 b3 8f 3f"));
    }

    /// The SHA-2 keys follow the same algorithm (RFC 7860 §9.2): the expansion is a megabyte of
    /// repeated passphrase, so it equals one hash over that megabyte, and localisation is H(Ku‖E‖Ku).
    #[test]
    fn sha2_keys_follow_the_rfc3414_algorithm() {
        let pass = b"maplesyrup";
        let megabyte: Vec<u8> = pass.iter().copied().cycle().take(PASSPHRASE_EXPANSION).collect();
        let ku = password_to_key(AuthProtocol::HmacSha256, pass).unwrap();
        assert_eq!(ku, Sha256::digest(&megabyte).to_vec());
        let ku512 = password_to_key(AuthProtocol::HmacSha512, pass).unwrap();
        assert_eq!(ku512, Sha512::digest(&megabyte).to_vec());
        let engine = hex("00 00 00 00 00 00 00 00 00 00 00 02");
        let kul = localize_key(AuthProtocol::HmacSha256, &ku, &engine);
        let mut h = Sha256::new();
        h.update(&ku);
        h.update(&engine);
        h.update(&ku);
        assert_eq!(kul, h.finalize().to_vec());
        assert_eq!(kul.len(), AuthProtocol::HmacSha256.key_len());
    }

    #[test]
    fn short_passphrases_are_refused() {
        assert_eq!(password_to_key(AuthProtocol::HmacSha256, b"1234567"), Err(CryptoError::ShortPassphrase));
    }

    /// RFC 4231 test case 2 (HMAC-SHA-256/512 of "what do ya want for nothing?" with key "Jefe"),
    /// truncated to the USM lengths; RFC 2202 test case 2 for HMAC-SHA-1.
    #[test]
    fn hmac_vectors_truncated() {
        let msg = b"what do ya want for nothing?";
        assert_eq!(sign(AuthProtocol::HmacSha96, b"Jefe", msg), hex("effcdf6ae5eb2fa2d27416d5"));
        assert_eq!(
            sign(AuthProtocol::HmacSha256, b"Jefe", msg),
            hex("5bdcc146bf60754e6a042426089575c75a003f089d273983")
        );
        assert_eq!(
            sign(AuthProtocol::HmacSha512, b"Jefe", msg),
            hex("164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fd")
        );
    }

    #[test]
    fn verify_accepts_only_the_right_digest() {
        for p in AuthProtocol::ALL {
            let key = vec![7u8; p.key_len()];
            let digest = sign(p, &key, b"message");
            assert_eq!(digest.len(), p.mac_len());
            assert!(verify(p, &key, b"message", &digest));
            assert!(!verify(p, &key, b"messagE", &digest));
            assert!(!verify(p, &[8u8; 20], b"message", &digest));
            assert!(!verify(p, &key, b"message", &digest[1..]));
            assert!(!verify(p, &key, b"message", &[]));
            let mut bad = digest.clone();
            bad[0] ^= 1;
            assert!(!verify(p, &key, b"message", &bad));
        }
    }

    #[test]
    fn verify_zeroed_equals_verify_of_the_zeroed_copy() {
        for p in AuthProtocol::ALL {
            let key = vec![5u8; p.key_len()];
            let mut message: Vec<u8> = (0..200u8).collect();
            let field = 40..40 + p.mac_len();
            message[field.clone()].fill(0);
            let digest = sign(p, &key, &message);
            // The field now carries the digest, as on the wire.
            message[field.clone()].copy_from_slice(&digest);
            assert!(verify_zeroed(p, &key, &message, field.clone(), &digest));
            assert!(!verify_zeroed(p, &key, &message, 41..41 + p.mac_len(), &digest));
            assert!(!verify_zeroed(p, &key, &message, 40..41, &digest));
            assert!(!verify_zeroed(p, &key, &message, 190..190 + p.mac_len(), &digest));
            message[0] ^= 1;
            assert!(!verify_zeroed(p, &key, &message, field, &digest));
        }
    }

    /// NIST SP 800-38A F.3.13 (CFB128-AES128 encrypt), with the IV split as boots ‖ time ‖ salt.
    #[test]
    fn aes_cfb_nist_vector() {
        let key = hex("2b7e151628aed2a6abf7158809cf4f3c");
        let iv = hex("000102030405060708090a0b0c0d0e0f");
        let boots = u32::from_be_bytes(iv[..4].try_into().unwrap());
        let time = u32::from_be_bytes(iv[4..8].try_into().unwrap());
        let salt: [u8; 8] = iv[8..].try_into().unwrap();
        let plain = hex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51");
        let mut data = plain.clone();
        encrypt(PrivProtocol::Aes128Cfb, &key, boots, time, &salt, &mut data).unwrap();
        assert_eq!(data, hex("3b3fd92eb72dad20333449f8e83cfb4ac8a64537a0b3a93fcde3cdad9f1ce58b"));
        decrypt(PrivProtocol::Aes128Cfb, &key, boots, time, &salt, &mut data).unwrap();
        assert_eq!(data, plain);
        // A partial last block works (CFB needs no padding).
        let mut odd = plain[..21].to_vec();
        encrypt(PrivProtocol::Aes128Cfb, &key, boots, time, &salt, &mut odd).unwrap();
        assert_eq!(odd, data_prefix_encrypted(&key, &iv, &plain[..21]));
    }

    fn data_prefix_encrypted(key: &[u8], iv: &[u8], plain: &[u8]) -> Vec<u8> {
        let mut full = plain.to_vec();
        full.resize(32, 0);
        Aes128CfbEnc::new_from_slices(key, iv).unwrap().encrypt(&mut full);
        full.truncate(plain.len());
        full
    }

    #[test]
    fn bad_salt_and_short_key_are_errors() {
        let mut data = vec![0u8; 4];
        assert_eq!(decrypt(PrivProtocol::Aes128Cfb, &[0; 16], 0, 0, &[0; 7], &mut data), Err(CryptoError::BadSalt(7)));
        assert_eq!(
            encrypt(PrivProtocol::Aes128Cfb, &[0; 15], 0, 0, &[0; 8], &mut data),
            Err(CryptoError::ShortKey(15))
        );
    }
}
