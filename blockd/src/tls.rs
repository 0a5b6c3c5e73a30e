//! TLS for NBD connections (the protocol's NBD_OPT_STARTTLS): the server's rustls configuration, the certificate
//! revocation lists it checks, and the client identity a verified certificate carries.
//!
//! blockd presents its certificate and key (`--tls-cert`, `--tls-key`) and requires a client certificate signed by
//! the CA in `--tls-ca` (mutual X.509, rustls with the ring provider, TLS 1.2 and 1.3). A client's identity is the
//! first subjectAltName of its certificate that is a DNS name or a URI, else its subject's common name; grants
//! with an identity admit only the client that proved it ([`dvsan_layout::Grant::admits`]). The handshake
//! (`handshake.rs`) runs the TLS handshake when a client asks for it; this module only builds what it needs.
//!
//! Revocation: the CRLs of `--tls-crl FILE` (PEM or DER, any number) and the one the station pushed through the
//! agent ([`dvsan_layout::PUSHED_CRL_FILE`] in the state directory) are given to rustls' client verifier, so a
//! listed certificate fails the TLS handshake whatever grant its address has. [`TlsServer::reload_crls`] (called
//! by the maintenance thread every poll) notices when a file changed, builds a new verifier and configuration for
//! new connections and returns the verifier so open connections can be checked again; a CRL that does not parse
//! leaves the previous configuration in force. A certificate whose issuer has no CRL is accepted (an operator's
//! PKI next to the station's).

use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, UnixTime};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

/// `--tls`: whether clients may, or must, use TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum TlsMode {
    /// No TLS: NBD_OPT_STARTTLS is answered NBD_REP_ERR_UNSUP; grants match by address only.
    #[default]
    Off,
    /// TLS for clients that ask for it (NBD_OPT_STARTTLS); plain connections are served too, by address grants.
    On,
    /// TLS only: before NBD_OPT_STARTTLS every option but NBD_OPT_ABORT gets NBD_REP_ERR_TLS_REQD.
    Require,
}

/// The files blockd's TLS needs, all PEM.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// blockd's certificate chain, its own certificate first.
    pub cert: PathBuf,
    /// blockd's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// The CA certificates that client certificates must chain to.
    pub ca: PathBuf,
    /// Certificate revocation lists (`--tls-crl`, PEM or DER); each must exist at start.
    pub crls: Vec<PathBuf>,
    /// The CRL the station pushes (may be absent, or appear later).
    pub pushed_crl: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {what}")]
    File { path: PathBuf, what: String },
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// What a TLS handshake needs: the server configuration in force (replaced when a CRL changes), and what it is
/// built from.
pub struct TlsServer {
    parts: Parts,
    current: RwLock<Current>,
    /// What the CRL files looked like when last read (also after a failed read, so it is reported once).
    seen: Mutex<Vec<Option<FileStamp>>>,
}

/// What the configuration is built from.
struct Parts {
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    roots: Arc<RootCertStore>,
    crl_files: Vec<PathBuf>,
    pushed_crl: Option<PathBuf>,
}

#[derive(Clone)]
struct Current {
    config: Arc<ServerConfig>,
    verifier: Arc<dyn ClientCertVerifier>,
    /// How many certificates the CRLs in force list.
    revoked: usize,
}

/// A file's identity and version as `stat` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    inode: u64,
    len: u64,
    modified_ns: i128,
}

fn stamp(path: &Path) -> Option<FileStamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(FileStamp {
        inode: m.ino(),
        len: m.len(),
        modified_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
    })
}

impl std::fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsServer").field("crl_files", &self.parts.crl_files).finish_non_exhaustive()
    }
}

/// What [`TlsServer::reload_crls`] found.
pub enum CrlReload {
    /// No CRL file changed.
    Unchanged,
    /// New CRLs are in force; open connections should be checked with this verifier.
    Changed { verifier: Arc<dyn ClientCertVerifier>, revoked: usize },
    /// A CRL file changed but cannot be used: the previous CRLs stay in force.
    Refused(TlsError),
}

impl TlsServer {
    /// Load the certificate, key, CA and CRLs and build the server configuration (mutual TLS: a client certificate
    /// signed by the CA and not revoked is required).
    pub fn load(files: &TlsFiles) -> Result<TlsServer, TlsError> {
        let certs = read_certs(&files.cert)?;
        let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| file_error(&files.key, e))?;
        let mut roots = RootCertStore::empty();
        for ca in read_certs(&files.ca)? {
            roots.add(ca).map_err(|e| TlsError::File { path: files.ca.clone(), what: e.to_string() })?;
        }
        for crl in &files.crls {
            if !crl.exists() {
                return Err(TlsError::File { path: crl.clone(), what: "no such file".into() });
            }
        }
        let parts = Parts {
            certs,
            key,
            roots: Arc::new(roots),
            crl_files: files.crls.clone(),
            pushed_crl: files.pushed_crl.clone(),
        };
        let stamps = parts.stamps();
        let current = parts.build()?;
        Ok(TlsServer { parts, current: RwLock::new(current), seen: Mutex::new(stamps) })
    }

    /// The configuration for a new connection's TLS handshake.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.current.read().unwrap_or_else(PoisonError::into_inner).config.clone()
    }

    /// The client certificate verifier in force now.
    pub fn verifier(&self) -> Arc<dyn ClientCertVerifier> {
        self.current.read().unwrap_or_else(PoisonError::into_inner).verifier.clone()
    }

    /// How many certificates the CRLs in force list.
    pub fn revoked(&self) -> usize {
        self.current.read().unwrap_or_else(PoisonError::into_inner).revoked
    }

    /// Whether a client certificate chain (its own certificate first) passes the verifier in force now: signed
    /// by the CA and not revoked.
    pub fn still_valid(verifier: &dyn ClientCertVerifier, chain: &[CertificateDer<'static>]) -> bool {
        match chain.split_first() {
            Some((end_entity, intermediates)) => {
                verifier.verify_client_cert(end_entity, intermediates, UnixTime::now()).is_ok()
            }
            None => false,
        }
    }

    /// Reads the CRL files again if any changed since last read (a pushed CRL appearing or going away counts).
    pub fn reload_crls(&self) -> CrlReload {
        let stamps = self.parts.stamps();
        {
            let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            if *seen == stamps {
                return CrlReload::Unchanged;
            }
            *seen = stamps;
        }
        match self.parts.build() {
            Ok(current) => {
                let (verifier, revoked) = (current.verifier.clone(), current.revoked);
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = current;
                CrlReload::Changed { verifier, revoked }
            }
            Err(e) => CrlReload::Refused(e),
        }
    }
}

impl Parts {
    fn all_crl_files(&self) -> impl Iterator<Item = &PathBuf> {
        self.crl_files.iter().chain(self.pushed_crl.iter())
    }

    fn stamps(&self) -> Vec<Option<FileStamp>> {
        self.all_crl_files().map(|p| stamp(p)).collect()
    }

    /// The configuration from the certificate, key, CA and the CRL files as they are now.
    fn build(&self) -> Result<Current, TlsError> {
        let mut crls = Vec::new();
        for path in &self.crl_files {
            crls.extend(read_crls(path)?);
        }
        if let Some(path) = &self.pushed_crl {
            if path.exists() {
                crls.extend(read_crls(path)?);
            }
        }
        let mut revoked = 0;
        for crl in &crls {
            revoked += revoked_count(crl).ok_or_else(|| TlsError::Config("a CRL does not parse".into()))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut builder = WebPkiClientVerifier::builder_with_provider(self.roots.clone(), provider.clone());
        if !crls.is_empty() {
            builder = builder.with_crls(crls).only_check_end_entity_revocation().allow_unknown_revocation_status();
        }
        let verifier = builder.build().map_err(|e| TlsError::Config(e.to_string()))?;
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_client_cert_verifier(verifier.clone())
            .with_single_cert(self.certs.clone(), self.key.clone_key())
            .map_err(|e| TlsError::Config(format!("the certificate or key: {e}")))?;
        Ok(Current { config: Arc::new(config), verifier, revoked })
    }
}

/// The CRLs in a file: PEM (any number of `X509 CRL` blocks) or one DER CRL.
fn read_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|e| TlsError::File { path: path.to_path_buf(), what: e.to_string() })?;
    let bad = |what: String| TlsError::File { path: path.to_path_buf(), what };
    let crls: Vec<CertificateRevocationListDer<'static>> = if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
        CertificateRevocationListDer::pem_slice_iter(&bytes)
            .collect::<Result<_, _>>()
            .map_err(|e| bad(e.to_string()))?
    } else {
        vec![CertificateRevocationListDer::from(bytes)]
    };
    if crls.is_empty() {
        return Err(bad("no PEM CRL in it".into()));
    }
    for crl in &crls {
        if revoked_count(crl).is_none() {
            return Err(bad("not a certificate revocation list (DER or PEM X509 CRL)".into()));
        }
    }
    Ok(crls)
}

/// How many certificates a DER CRL lists; None if it is not exactly one CRL.
pub fn revoked_count(der: &[u8]) -> Option<usize> {
    match x509_parser::parse_x509_crl(der) {
        Ok(([], crl)) => Some(crl.iter_revoked_certificates().count()),
        _ => None,
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(TlsError::File { path: path.to_path_buf(), what: "no PEM certificate in it".into() });
    }
    Ok(certs)
}

fn file_error(path: &Path, e: rustls_pki_types::pem::Error) -> TlsError {
    TlsError::File { path: path.to_path_buf(), what: e.to_string() }
}

/// The identity of a client certificate (already verified by rustls): its first subjectAltName that is a DNS
/// name or a URI, else its subject's first common name. None if it has neither, or does not parse.
pub fn identity_of(cert: &[u8]) -> Option<String> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(cert).ok()?;
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(n) | GeneralName::URI(n) => return Some((*n).to_string()),
                _ => {}
            }
        }
    }
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_string)
}
