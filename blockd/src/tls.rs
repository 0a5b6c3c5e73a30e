//! TLS for NBD connections (the protocol's NBD_OPT_STARTTLS): the server's rustls configuration and the client
//! identity a verified certificate carries.
//!
//! blockd presents its certificate and key (`--tls-cert`, `--tls-key`) and requires a client certificate signed by
//! the CA in `--tls-ca` (mutual X.509, rustls with the ring provider, TLS 1.2 and 1.3). A client's identity is the
//! first subjectAltName of its certificate that is a DNS name or a URI, else its subject's common name; grants
//! with an identity admit only the client that proved it ([`dvsan_layout::Grant::admits`]). The handshake
//! (`handshake.rs`) runs the TLS handshake when a client asks for it; this module only builds what it needs.

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {what}")]
    File { path: PathBuf, what: String },
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// What a TLS handshake needs: the server configuration, ready for each connection.
#[derive(Clone)]
pub struct TlsServer {
    pub config: Arc<ServerConfig>,
}

impl std::fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsServer")
    }
}

impl TlsServer {
    /// Load the certificate, key and CA and build the server configuration (mutual TLS: a client certificate
    /// signed by the CA is required).
    pub fn load(files: &TlsFiles) -> Result<TlsServer, TlsError> {
        let certs = read_certs(&files.cert)?;
        let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| file_error(&files.key, e))?;
        let mut roots = RootCertStore::empty();
        for ca in read_certs(&files.ca)? {
            roots.add(ca).map_err(|e| TlsError::File { path: files.ca.clone(), what: e.to_string() })?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .map_err(|e| TlsError::Config(format!("{}: {e}", files.key.display())))?;
        Ok(TlsServer { config: Arc::new(config) })
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
