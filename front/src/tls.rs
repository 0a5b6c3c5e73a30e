//! TLS from the front to the units' blockd (NBD_OPT_STARTTLS): the rustls client configuration built from the
//! host's certificate directory, the one `dvsan-host enroll --out DIR` writes (`ca-cert.pem`: the CA the units'
//! certificates chain to; `client-cert.pem` and `client-key.pem`: this host's identity, which identity grants
//! name). The unit's certificate must be valid for the address the front connects to. Uses nothing else of
//! this crate.

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why the certificate directory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {what}")]
    File { path: PathBuf, what: String },
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The client configuration for `dir` (mutual TLS, TLS 1.2 and 1.3, ring).
pub fn client_config(dir: &Path) -> Result<Arc<ClientConfig>, TlsError> {
    let ca = dir.join("ca-cert.pem");
    let cert = dir.join("client-cert.pem");
    let key = dir.join("client-key.pem");
    let mut roots = RootCertStore::empty();
    for c in read_certs(&ca)? {
        roots.add(c).map_err(|e| TlsError::File { path: ca.clone(), what: e.to_string() })?;
    }
    let certs = read_certs(&cert)?;
    let key = PrivateKeyDer::from_pem_file(&key).map_err(|e| TlsError::File { path: key, what: e.to_string() })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    Ok(Arc::new(config))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bad = |what: String| TlsError::File { path: path.to_path_buf(), what };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no PEM certificate in it".into()));
    }
    Ok(certs)
}
