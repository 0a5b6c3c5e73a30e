//! The station's certificate authority for NBD over TLS: a small CA kept in the state directory (`ca/ca-cert.pem`,
//! `ca/ca-key.pem`, the key mode 0600), generated at first need, that issues blockd's certificates to enrolled
//! units and client certificates to hosts, whose identity blockd reads from them (the first subjectAltName that is
//! a DNS name, see blockd's `tls.rs`).
//!
//! All X.509 work is rcgen's (ring provider, ECDSA P-256 with SHA-256): no cryptography here. The CA is made in a
//! temporary directory beside `ca/` and renamed into place, so two commands that need it at once end with one CA
//! (the second one's rename fails and it loads the first one's). Leaf certificates carry keyEncipherment next to
//! digitalSignature because qemu's certificate check asks for it, and an extended key usage: serverAuth for blockd,
//! clientAuth for hosts.
//!
//! Hosts get certificates two ways: [`StationCa::issue_host`] makes the key pair here (`dvsan-station host issue`),
//! and [`StationCa::sign_host_request`] signs a host's own certificate signing request for an identity the caller
//! has already authenticated (the SNMP request table): a request naming anything else is refused, and the
//! certificate's names are built from that identity; only the request's public key (its signature checked) is
//! used.
//!
//! Revocation is by certificate, as in any PKI: every host certificate's serial is recorded with its identity in
//! `ca/issued.txt`; [`StationCa::revoke_identity`] (`dvsan-station host revoke`) lists every serial issued to the
//! identity in `ca/revoked.txt` and issues a new certificate revocation list, `ca/crl.der` and `ca/crl.pem`, with
//! the next cRLNumber (`ca/crl-number`). blockd refuses the listed certificates (its `--tls-crl`, or the list the
//! station pushes to each unit's agent, DVSAN-MIB dvsanDataTlsCrl); a certificate issued later for the same
//! identity has a new serial and is not listed. Certificates issued before serials were recorded cannot be listed.

use crate::credentials::{write_private, CredentialsError};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertificateSigningRequestParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason, RevokedCertParams,
    SanType, SerialNumber,
};
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The CA's directory in the station's state directory.
pub const CA_DIR: &str = "ca";
/// The CA certificate's file name, in the CA directory and in every directory the CA writes.
pub const CA_CERT_FILE: &str = "ca-cert.pem";
const CA_KEY_FILE: &str = "ca-key.pem";
/// Serials of the host certificates issued, with their identities: `SERIAL_HEX IDENTITY UNIX_SECONDS` a line.
const ISSUED_FILE: &str = "issued.txt";
/// Serials revoked: `SERIAL_HEX UNIX_SECONDS IDENTITY` a line.
const REVOKED_FILE: &str = "revoked.txt";
/// The newest certificate revocation list, DER and PEM.
pub const CRL_DER_FILE: &str = "crl.der";
pub const CRL_PEM_FILE: &str = "crl.pem";
/// The newest list's cRLNumber.
const CRL_NUMBER_FILE: &str = "crl-number";
/// How long a revocation list says it is current (blockd does not enforce it; a new one is made on every revoke).
const CRL_DAYS: i64 = 365;
/// How long the CA certificate is valid.
const CA_DAYS: i64 = 3650;
/// How long an issued certificate is valid.
pub const LEAF_DAYS: i64 = 365;
/// Host identities: the characters of a DNS name and `_`, at most this long (a DNS name's limit).
const IDENTITY_MAX: usize = 253;

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Private(#[from] CredentialsError),
    #[error("{path}: {what}")]
    Corrupt { path: PathBuf, what: String },
    #[error("certificate: {0}")]
    X509(#[from] rcgen::Error),
    #[error(
        "identity {0:?} is not valid: use 1 to 253 letters, digits, '.', '-' and '_' (it becomes the \
         certificate's DNS subjectAltName)"
    )]
    BadIdentity(String),
    #[error("{0:?} is neither an IP address nor a DNS name")]
    BadName(String),
    #[error(
        "the certificate signing request asks for {asked:?}; a host gets a certificate only for its own identity \
         ({identity})"
    )]
    OtherIdentity { asked: String, identity: String },
    #[error("the certificate signing request is not valid: {0}")]
    BadRequest(String),
    #[error("the operating system's random number generator failed: {0}")]
    Random(String),
}

/// A certificate and its private key, PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

/// The station's CA, loaded.
pub struct StationCa {
    dir: PathBuf,
    cert_pem: String,
    cert_der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for StationCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StationCa").field("dir", &self.dir).finish_non_exhaustive()
    }
}

/// Whether `name` can be a host identity in a certificate the CA issues.
pub fn valid_identity(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= IDENTITY_MAX
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

impl StationCa {
    /// The CA of `state_dir`, generated now if it has none (and `state_dir` created).
    pub fn open_or_create(state_dir: &Path) -> Result<StationCa, CaError> {
        let dir = state_dir.join(CA_DIR);
        if !dir.join(CA_CERT_FILE).exists() {
            create(state_dir)?;
        }
        StationCa::load(&dir)
    }

    /// The CA of `state_dir` if it has one.
    pub fn open_existing(state_dir: &Path) -> Result<Option<StationCa>, CaError> {
        let dir = state_dir.join(CA_DIR);
        if !dir.join(CA_CERT_FILE).exists() {
            return Ok(None);
        }
        StationCa::load(&dir).map(Some)
    }

    fn load(dir: &Path) -> Result<StationCa, CaError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|source| CaError::Read { path, source })
        };
        let cert_pem = read(CA_CERT_FILE)?;
        let key_path = dir.join(CA_KEY_FILE);
        let corrupt = |path: &Path, what: String| CaError::Corrupt { path: path.to_path_buf(), what };
        let key = KeyPair::from_pem(&read(CA_KEY_FILE)?).map_err(|e| corrupt(&key_path, e.to_string()))?;
        let cert_path = dir.join(CA_CERT_FILE);
        let cert_der = certificate_der(&cert_pem).ok_or_else(|| corrupt(&cert_path, "no PEM certificate".into()))?;
        let issuer =
            Issuer::from_ca_cert_der(&cert_der.clone().into(), key).map_err(|e| corrupt(&cert_path, e.to_string()))?;
        Ok(StationCa { dir: dir.to_path_buf(), cert_pem, cert_der, issuer })
    }

    /// `ca/ca-cert.pem`.
    pub fn cert_path(&self) -> PathBuf {
        self.dir.join(CA_CERT_FILE)
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The SHA-256 fingerprint of the CA certificate's DER, as `openssl x509 -fingerprint -sha256` prints it.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.cert_der)
    }

    /// blockd's certificate for a unit: subjectAltNames the unit id (a DNS name) and `names`, the addresses and DNS
    /// names hosts use to reach it (clients check the one they connect to); a new key pair.
    pub fn issue_unit(&self, unit_id: &str, names: &[String]) -> Result<Issued, CaError> {
        let mut params = leaf_params(unit_id, ExtendedKeyUsagePurpose::ServerAuth)?;
        params.subject_alt_names.push(SanType::DnsName(dns(unit_id)?));
        for name in names {
            let san = match name.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(dns(name)?),
            };
            params.subject_alt_names.push(san);
        }
        self.issue_with_new_key(&params)
    }

    /// A host's client certificate for `identity` (subject CN and DNS subjectAltName) with a new key pair; its
    /// serial is recorded for revocation.
    pub fn issue_host(&self, identity: &str) -> Result<Issued, CaError> {
        let params = host_params(identity)?;
        let issued = self.issue_with_new_key(&params)?;
        self.record_issued(&params, identity)?;
        Ok(issued)
    }

    fn record_issued(&self, params: &CertificateParams, identity: &str) -> Result<(), CaError> {
        let Some(serial) = &params.serial_number else { return Ok(()) };
        let line = format!("{} {identity} {}\n", hex(&serial.to_bytes()), unix_now());
        append(&self.dir.join(ISSUED_FILE), &line)
    }

    /// Revokes every certificate issued to `identity` that is not revoked yet and issues a new revocation list
    /// (also when there was nothing new to list). Returns how many certificates it newly lists.
    pub fn revoke_identity(&self, identity: &str) -> Result<Revocation, CaError> {
        let revoked = self.revoked()?;
        let issued = read_lines(&self.dir.join(ISSUED_FILE))?;
        let mut newly = 0;
        let now = unix_now();
        for line in issued {
            let mut fields = line.split_whitespace();
            let (Some(serial), Some(name)) = (fields.next(), fields.next()) else { continue };
            if name != identity || revoked.iter().any(|(s, _)| s == serial) {
                continue;
            }
            append(&self.dir.join(REVOKED_FILE), &format!("{serial} {now} {identity}\n"))?;
            newly += 1;
        }
        let crl_number = self.issue_crl()?;
        tracing::info!(identity, newly_revoked = newly, crl_number, "certificates revoked; new revocation list");
        Ok(Revocation { newly_revoked: newly, crl_number })
    }

    /// Every serial revoked (hex) with when (Unix seconds).
    fn revoked(&self) -> Result<Vec<(String, i64)>, CaError> {
        Ok(read_lines(&self.dir.join(REVOKED_FILE))?
            .iter()
            .filter_map(|line| {
                let mut fields = line.split_whitespace();
                Some((fields.next()?.to_string(), fields.next()?.parse().ok()?))
            })
            .collect())
    }

    /// Issues a revocation list of every revoked serial with the next cRLNumber and writes `crl.der` and
    /// `crl.pem`; returns its number.
    pub fn issue_crl(&self) -> Result<u32, CaError> {
        let number_path = self.dir.join(CRL_NUMBER_FILE);
        let number = self.crl_number()?.saturating_add(1);
        let (this_update, next_update) = validity(CRL_DAYS)?;
        let mut revoked_certs = Vec::new();
        for (serial, when) in self.revoked()? {
            let Some(bytes) = unhex(&serial) else { continue };
            revoked_certs.push(RevokedCertParams {
                serial_number: SerialNumber::from_slice(&bytes),
                revocation_time: time::OffsetDateTime::from_unix_timestamp(when).unwrap_or(this_update),
                reason_code: Some(RevocationReason::CessationOfOperation),
                invalidity_date: None,
            });
        }
        let params = CertificateRevocationListParams {
            this_update,
            next_update,
            crl_number: SerialNumber::from(u64::from(number)),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.issuer)?;
        write_bytes(&self.dir.join(CRL_DER_FILE), crl.der())?;
        write_public(&self.dir.join(CRL_PEM_FILE), &crl.pem()?)?;
        write_public(&number_path, &format!("{number}\n"))?;
        Ok(number)
    }

    /// The newest revocation list's cRLNumber; 0 before the first.
    pub fn crl_number(&self) -> Result<u32, CaError> {
        let path = self.dir.join(CRL_NUMBER_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => text
                .trim()
                .parse()
                .map_err(|_| CaError::Corrupt { path, what: format!("not a CRL number: {:?}", text.trim()) }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(source) => Err(CaError::Read { path, source }),
        }
    }

    /// The newest revocation list (DER), if the CA has made one.
    pub fn crl_der(&self) -> Result<Option<Vec<u8>>, CaError> {
        let path = self.dir.join(CRL_DER_FILE);
        match std::fs::read(&path) {
            Ok(der) => Ok(Some(der)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(CaError::Read { path, source }),
        }
    }

    /// `ca/crl.pem`, for blockd's `--tls-crl` on the station's machine.
    pub fn crl_path(&self) -> PathBuf {
        self.dir.join(CRL_PEM_FILE)
    }

    /// Signs a host's certificate signing request (PEM or DER) for `identity`, which the caller authenticated. A
    /// request whose subject or subjectAltNames name anything but `identity` is refused; the certificate's names
    /// are built from `identity`, and the request contributes only its public key, after its signature is
    /// checked. Returns the certificate, PEM.
    pub fn sign_host_request(&self, identity: &str, request: &[u8]) -> Result<String, CaError> {
        let params = host_params(identity)?;
        let parsed = match std::str::from_utf8(request) {
            Ok(text) if text.trim_start().starts_with("-----BEGIN") => CertificateSigningRequestParams::from_pem(text),
            _ => CertificateSigningRequestParams::from_der(&request.to_vec().into()),
        }
        .map_err(|e| CaError::BadRequest(e.to_string()))?;
        if let Some(other) = requested_names(&parsed.params).into_iter().find(|name| name != identity) {
            return Err(CaError::OtherIdentity { asked: other, identity: identity.to_string() });
        }
        let pem = params.signed_by(&parsed.public_key, &self.issuer)?.pem();
        self.record_issued(&params, identity)?;
        Ok(pem)
    }

    fn issue_with_new_key(&self, params: &CertificateParams) -> Result<Issued, CaError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Issued { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }
}

/// What [`StationCa::revoke_identity`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revocation {
    /// Certificates listed now that were not before.
    pub newly_revoked: usize,
    /// The new list's cRLNumber.
    pub crl_number: u32,
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.is_empty() || !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

/// The lines of a record file; none if it does not exist.
fn read_lines(path: &Path) -> Result<Vec<String>, CaError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text.lines().map(str::to_string).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(CaError::Read { path: path.to_path_buf(), source }),
    }
}

/// Appends `line` to a record file (created 0644), synced.
fn append(path: &Path, line: &str) -> Result<(), CaError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let error = |source| CaError::Write { path: path.to_path_buf(), source };
    let mut file = std::fs::OpenOptions::new().create(true).append(true).mode(0o644).open(path).map_err(error)?;
    file.write_all(line.as_bytes()).map_err(error)?;
    file.sync_data().map_err(error)
}

/// Writes public bytes through a temporary file and a rename (0644).
fn write_bytes(path: &Path, bytes: &[u8]) -> Result<(), CaError> {
    use std::io::Write;
    let error = |source| CaError::Write { path: path.to_path_buf(), source };
    let temp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&temp).map_err(error)?;
    file.write_all(bytes).map_err(error)?;
    file.sync_all().map_err(error)?;
    std::fs::rename(&temp, path).map_err(error)
}

/// Every name a certificate signing request asks for: its subject's attributes (any kind) and its subjectAltNames.
fn requested_names(params: &CertificateParams) -> Vec<String> {
    use rcgen::DnValue;
    let mut names: Vec<String> = params
        .distinguished_name
        .iter()
        .map(|(_, value)| match value {
            DnValue::Utf8String(s) => s.clone(),
            DnValue::PrintableString(s) => s.as_str().to_string(),
            DnValue::Ia5String(s) => s.as_str().to_string(),
            DnValue::TeletexString(s) => s.as_str().to_string(),
            other => format!("{other:?}"),
        })
        .collect();
    names.extend(params.subject_alt_names.iter().map(|san| match san {
        SanType::DnsName(n) | SanType::URI(n) | SanType::Rfc822Name(n) => n.as_str().to_string(),
        other => format!("{other:?}"),
    }));
    names
}

/// The SHA-256 fingerprint of DER bytes, upper-case hex pairs joined by ':'.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der).iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// The DER of the first certificate in PEM `text`.
pub fn certificate_der(text: &str) -> Option<Vec<u8>> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::from_pem_slice(text.as_bytes()).ok().map(|c| c.to_vec())
}

fn dns(name: &str) -> Result<rcgen::string::Ia5String, CaError> {
    let dns_like = !name.is_empty()
        && name.len() <= IDENTITY_MAX
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if !dns_like {
        return Err(CaError::BadName(name.to_string()));
    }
    name.try_into().map_err(|_| CaError::BadName(name.to_string()))
}

fn host_params(identity: &str) -> Result<CertificateParams, CaError> {
    if !valid_identity(identity) {
        return Err(CaError::BadIdentity(identity.to_string()));
    }
    let mut params = leaf_params(identity, ExtendedKeyUsagePurpose::ClientAuth)?;
    params.subject_alt_names.push(SanType::DnsName(dns(identity)?));
    Ok(params)
}

/// A leaf certificate's parameters: subject CN `cn`, valid from five minutes ago (clocks differ) for
/// [`LEAF_DAYS`], a random serial, not a CA, the key usages qemu and rustls want, and the one extended key usage.
fn leaf_params(cn: &str, usage: ExtendedKeyUsagePurpose) -> Result<CertificateParams, CaError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    (params.not_before, params.not_after) = validity(LEAF_DAYS)?;
    params.serial_number = Some(serial()?);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

fn validity(days: i64) -> Result<(time::OffsetDateTime, time::OffsetDateTime), CaError> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    let at = |secs: i64| {
        time::OffsetDateTime::from_unix_timestamp(secs).map_err(|e| CaError::Random(format!("the clock: {e}")))
    };
    Ok((at(now - 300)?, at(now + days * 86_400)?))
}

/// 16 random bytes from the OS CSPRNG, the first bit cleared so the serial is positive.
fn serial() -> Result<SerialNumber, CaError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| CaError::Random(e.to_string()))?;
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    Ok(SerialNumber::from_slice(&bytes))
}

/// Makes the CA in a temporary directory beside `ca/` and renames it into place; if another process made one
/// meanwhile, the rename fails and its CA stays.
fn create(state_dir: &Path) -> Result<(), CaError> {
    let write_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CaError::Write { path, source }
    };
    std::fs::create_dir_all(state_dir).map_err(write_error(state_dir))?;
    let mut suffix = [0u8; 4];
    getrandom::fill(&mut suffix).map_err(|e| CaError::Random(e.to_string()))?;
    let temp = state_dir.join(format!(".ca.{}.{:08x}.tmp", std::process::id(), u32::from_ne_bytes(suffix)));
    std::fs::create_dir(&temp).map_err(write_error(&temp))?;
    let result = (|| {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        let id: String = serial()?.to_bytes().iter().take(4).map(|b| format!("{b:02x}")).collect();
        params.distinguished_name.push(DnType::CommonName, format!("dvsan station CA {id}"));
        (params.not_before, params.not_after) = validity(CA_DAYS)?;
        params.serial_number = Some(serial()?);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key)?;
        write_private(&temp.join(CA_KEY_FILE), &key.serialize_pem())?;
        write_private(&temp.join(CA_CERT_FILE), &cert.pem())?;
        let target = state_dir.join(CA_DIR);
        match std::fs::rename(&temp, &target) {
            Ok(()) => {
                tracing::info!(dir = %target.display(), fingerprint = %fingerprint(cert.der()), "made the station's CA");
                Ok(())
            }
            // Another process made it first (`ca/` exists and is not empty): keep theirs.
            Err(_) if target.join(CA_CERT_FILE).exists() => Ok(()),
            Err(source) => Err(CaError::Write { path: target, source }),
        }
    })();
    let _ = std::fs::remove_dir_all(&temp);
    if let Ok(dir) = std::fs::File::open(state_dir) {
        let _ = dir.sync_all();
    }
    result
}

/// Writes a host's certificate directory in the layout libnbd (`tls-certificates=DIR`) and qemu
/// (`tls-creds-x509,dir=DIR,endpoint=client`) read: `ca-cert.pem`, `client-cert.pem`, `client-key.pem` (0600).
pub fn write_client_dir(dir: &Path, ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<(), CaError> {
    std::fs::create_dir_all(dir).map_err(|source| CaError::Write { path: dir.to_path_buf(), source })?;
    write_private(&dir.join("client-key.pem"), key_pem)?;
    write_public(&dir.join("client-cert.pem"), cert_pem)?;
    write_public(&dir.join(CA_CERT_FILE), ca_pem)
}

/// Writes a unit's blockd directory: `blockd-cert.pem`, `blockd-key.pem` (0600) and `ca-cert.pem`, for
/// `dvsan-blockd --tls-cert DIR/blockd-cert.pem --tls-key DIR/blockd-key.pem --tls-ca DIR/ca-cert.pem`.
pub fn write_unit_dir(dir: &Path, ca_pem: &str, issued: &Issued) -> Result<(), CaError> {
    std::fs::create_dir_all(dir).map_err(|source| CaError::Write { path: dir.to_path_buf(), source })?;
    write_private(&dir.join("blockd-key.pem"), &issued.key_pem)?;
    write_public(&dir.join("blockd-cert.pem"), &issued.cert_pem)?;
    write_public(&dir.join(CA_CERT_FILE), ca_pem)
}

/// Certificates are public: written atomically like the keys, then made readable (0644).
fn write_public(path: &Path, text: &str) -> Result<(), CaError> {
    use std::os::unix::fs::PermissionsExt;
    write_private(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
        .map_err(|source| CaError::Write { path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::PublicKeyData;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_ca_is_made_once_with_a_private_key_and_signs_only_the_given_identity() {
        let dir = tempfile::tempdir().unwrap();
        assert!(StationCa::open_existing(dir.path()).unwrap().is_none());
        let ca = StationCa::open_or_create(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join("ca/ca-key.pem")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = StationCa::open_or_create(dir.path()).unwrap();
        assert_eq!(again.fingerprint(), ca.fingerprint(), "the second need loads the same CA");
        assert_eq!(ca.fingerprint().len(), 32 * 3 - 1);

        let host = ca.issue_host("host-a.example").unwrap();
        let der = certificate_der(&host.cert_pem).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let san = cert.subject_alternative_name().unwrap().unwrap();
        assert_eq!(format!("{:?}", san.value.general_names), "[DNSName(\"host-a.example\")]");
        assert!(!cert.is_ca());
        assert!(matches!(ca.issue_host("host a"), Err(CaError::BadIdentity(_))));

        // A request asking for another name is refused; one for the identity (or for no name) is signed with the
        // identity's names and the request's key.
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let request = |cn: &str, san: &str| {
            let mut asked = CertificateParams::new(vec![san.to_string()]).unwrap();
            asked.distinguished_name = rcgen::DistinguishedName::new();
            asked.distinguished_name.push(DnType::CommonName, cn);
            asked.serialize_request(&key).unwrap().pem().unwrap()
        };
        let refused = ca.sign_host_request("host-b", request("admin", "admin").as_bytes());
        assert!(matches!(&refused, Err(CaError::OtherIdentity { asked, .. }) if asked == "admin"), "{refused:?}");
        let refused = ca.sign_host_request("host-b", request("host-b", "admin").as_bytes());
        assert!(matches!(&refused, Err(CaError::OtherIdentity { asked, .. }) if asked == "admin"), "{refused:?}");
        let signed = ca.sign_host_request("host-b", request("host-b", "host-b").as_bytes()).unwrap();
        let der = certificate_der(&signed).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let san = cert.subject_alternative_name().unwrap().unwrap();
        assert_eq!(format!("{:?}", san.value.general_names), "[DNSName(\"host-b\")]");
        assert_eq!(cert.public_key().raw, key.subject_public_key_info().as_slice());
        assert!(matches!(ca.sign_host_request("host-b", b"not a request"), Err(CaError::BadRequest(_))));
    }

    #[test]
    fn revoking_an_identity_lists_its_certificates_and_not_a_later_one() {
        let dir = tempfile::tempdir().unwrap();
        let ca = StationCa::open_or_create(dir.path()).unwrap();
        assert_eq!(ca.crl_number().unwrap(), 0);
        assert!(ca.crl_der().unwrap().is_none());
        let serial = |pem: &str| {
            let der = certificate_der(pem).unwrap();
            let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
            cert.raw_serial().to_vec()
        };
        let first = serial(&ca.issue_host("host-a").unwrap().cert_pem);
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut asked = CertificateParams::new(vec!["host-a".to_string()]).unwrap();
        asked.distinguished_name = rcgen::DistinguishedName::new();
        let request = asked.serialize_request(&key).unwrap().pem().unwrap();
        let second = serial(&ca.sign_host_request("host-a", request.as_bytes()).unwrap());
        let other = serial(&ca.issue_host("host-b").unwrap().cert_pem);

        let revocation = ca.revoke_identity("host-a").unwrap();
        assert_eq!(revocation, Revocation { newly_revoked: 2, crl_number: 1 });
        let listed = |ca: &StationCa| {
            let der = ca.crl_der().unwrap().unwrap();
            let (rest, crl) = x509_parser::parse_x509_crl(&der).unwrap();
            assert!(rest.is_empty());
            let ca_der = certificate_der(ca.cert_pem()).unwrap();
            let (_, ca_cert) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
            assert_eq!(crl.issuer(), ca_cert.subject());
            let number = crl.crl_number().map(|n| n.to_string());
            (crl.iter_revoked_certificates().map(|r| r.raw_serial().to_vec()).collect::<Vec<_>>(), number)
        };
        let (serials, number) = listed(&ca);
        assert_eq!(serials, vec![first.clone(), second.clone()]);
        assert_eq!(number.as_deref(), Some("1"));
        assert!(std::fs::read_to_string(ca.crl_path()).unwrap().starts_with("-----BEGIN X509 CRL-----"));

        // Issued again: a new serial, not listed by the next list; revoking again lists nothing new.
        let again = serial(&ca.issue_host("host-a").unwrap().cert_pem);
        assert_eq!(ca.revoke_identity("host-b").unwrap(), Revocation { newly_revoked: 1, crl_number: 2 });
        let (serials, _) = listed(&ca);
        assert_eq!(serials, vec![first, second, other]);
        assert!(!serials.contains(&again));
        assert_eq!(ca.revoke_identity("host-b").unwrap(), Revocation { newly_revoked: 0, crl_number: 3 });
    }
}
