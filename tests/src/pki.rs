//! Test certificates for NBD over TLS, made with the `openssl` CLI: one CA, a server certificate for blockd (and
//! nbdkit) valid for 127.0.0.1 and localhost, client certificates for host identities, and a second CA whose
//! certificates blockd must refuse. Client directories have the file names libnbd (`tls-certificates=DIR`) and
//! qemu (`tls-creds-x509,dir=DIR,endpoint=client`) expect: `ca-cert.pem`, `client-cert.pem`, `client-key.pem`.
//! Keys are written 0600. Elliptic-curve keys (P-256) keep generation fast; key usage includes keyEncipherment,
//! which qemu's certificate check insists on.

use crate::process::{require_tool, run_ok};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A CA and the certificates issued from it, under one directory.
pub struct Pki {
    pub dir: PathBuf,
    /// The CA's directory: `ca-cert.pem`, `ca-key.pem`.
    ca: PathBuf,
    /// Another CA, for certificates blockd does not trust.
    other_ca: PathBuf,
}

impl Pki {
    /// A fresh CA and blockd's server certificate under `parent/pki`.
    pub fn new(parent: &Path) -> Pki {
        require_tool("openssl", "openssl");
        let dir = parent.join("pki");
        let pki = Pki { ca: dir.join("ca"), other_ca: dir.join("other-ca"), dir };
        make_ca(&pki.ca, "dvsan test CA");
        make_ca(&pki.other_ca, "some other CA");
        let server = pki.dir.join("server");
        issue(
            &pki.ca,
            &server,
            "server",
            "blockd",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth",
        );
        pki
    }

    /// blockd's TLS flags: `--tls-cert`, `--tls-key`, `--tls-ca`.
    pub fn blockd_args(&self) -> Vec<String> {
        let s = self.dir.join("server");
        vec![
            "--tls-cert".into(),
            s.join("server-cert.pem").display().to_string(),
            "--tls-key".into(),
            s.join("server-key.pem").display().to_string(),
            "--tls-ca".into(),
            self.ca.join("ca-cert.pem").display().to_string(),
        ]
    }

    /// A directory for `nbdkit --tls-certificates=DIR`: `ca-cert.pem`, `server-cert.pem`, `server-key.pem`.
    pub fn server_dir(&self) -> PathBuf {
        let s = self.dir.join("server");
        std::fs::copy(self.ca.join("ca-cert.pem"), s.join("ca-cert.pem")).unwrap();
        s
    }

    /// A client directory for a certificate of `identity` (its SAN DNS name) signed by the CA.
    pub fn client(&self, identity: &str) -> PathBuf {
        self.client_from(&self.ca, identity, &format!("subjectAltName=DNS:{identity}"))
    }

    /// A client directory for a certificate with subject CN `cn` and no subjectAltName.
    pub fn client_by_cn(&self, cn: &str) -> PathBuf {
        self.client_from(&self.ca, cn, "")
    }

    /// A client directory for a certificate of `identity` signed by another CA (the directory still trusts our
    /// CA, so the client accepts blockd's certificate: only blockd's check can refuse it).
    pub fn client_of_other_ca(&self, identity: &str) -> PathBuf {
        self.client_from(&self.other_ca, identity, &format!("subjectAltName=DNS:{identity}"))
    }

    /// A client directory with only the CA certificate: the client presents no certificate.
    pub fn client_without_certificate(&self) -> PathBuf {
        let dir = self.dir.join("client-without-certificate");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(self.ca.join("ca-cert.pem"), dir.join("ca-cert.pem")).unwrap();
        dir
    }

    /// Another client directory for `identity` (a new key and certificate, a new serial), named after `label`.
    pub fn client_again(&self, identity: &str, label: &str) -> PathBuf {
        self.client_in(
            &self.ca,
            identity,
            &format!("subjectAltName=DNS:{identity}"),
            &format!("client-{identity}-{label}"),
        )
    }

    /// Revokes the certificate of client directory `client` (`openssl ca -revoke`) and writes the CA's CRL
    /// listing every certificate revoked so far ([`Pki::crl`]; replaced atomically, as blockd may read it any time).
    pub fn revoke(&self, client: &Path) -> PathBuf {
        let config = self.ca_config();
        run_ok(
            Command::new("openssl")
                .args(["ca", "-config"])
                .arg(&config)
                .arg("-revoke")
                .arg(client.join("client-cert.pem")),
        );
        self.write_crl()
    }

    /// The CA's CRL (PEM), written now: it lists the certificates [`Pki::revoke`] revoked (none at first).
    pub fn write_crl(&self) -> PathBuf {
        let config = self.ca_config();
        let temp = self.dir.join("crl.pem.tmp");
        run_ok(Command::new("openssl").args(["ca", "-config"]).arg(&config).arg("-gencrl").arg("-out").arg(&temp));
        let crl = self.crl();
        std::fs::rename(&temp, &crl).unwrap();
        crl
    }

    /// Where [`Pki::write_crl`] writes the CA's CRL.
    pub fn crl(&self) -> PathBuf {
        self.dir.join("crl.pem")
    }

    /// A minimal `openssl ca` configuration for the CA: its database and CRL number beside its key.
    fn ca_config(&self) -> PathBuf {
        let config = self.ca.join("ca.cnf");
        if !config.exists() {
            std::fs::write(self.ca.join("index.txt"), "").unwrap();
            std::fs::write(self.ca.join("crlnumber"), "01\n").unwrap();
            let at = |name: &str| self.ca.join(name).display().to_string();
            std::fs::write(
                &config,
                format!(
                    "[ ca ]\ndefault_ca = CA_default\n[ CA_default ]\ndatabase = {}\ncrlnumber = {}\n\
                     certificate = {}\nprivate_key = {}\ndefault_md = sha256\ndefault_crl_days = 30\n",
                    at("index.txt"),
                    at("crlnumber"),
                    at("ca-cert.pem"),
                    at("ca-key.pem")
                ),
            )
            .unwrap();
        }
        config
    }

    fn client_from(&self, ca: &Path, cn: &str, ext: &str) -> PathBuf {
        let which = ca.file_name().unwrap().to_string_lossy().into_owned();
        self.client_in(ca, cn, ext, &format!("client-{cn}-{which}"))
    }

    fn client_in(&self, ca: &Path, cn: &str, ext: &str, name: &str) -> PathBuf {
        let dir = self.dir.join(name);
        let ext = format!("{ext}\nextendedKeyUsage=clientAuth").trim_start().to_string();
        issue(ca, &dir, "client", cn, &ext);
        std::fs::copy(self.ca.join("ca-cert.pem"), dir.join("ca-cert.pem")).unwrap();
        dir
    }
}

fn make_ca(dir: &Path, cn: &str) {
    std::fs::create_dir_all(dir).unwrap();
    run_ok(
        Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
            .args(["-nodes", "-days", "30", "-subj", &format!("/CN={cn}")])
            .args(["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
            .arg("-keyout")
            .arg(dir.join("ca-key.pem"))
            .arg("-out")
            .arg(dir.join("ca-cert.pem")),
    );
    private(&dir.join("ca-key.pem"));
}

/// Issue `{kind}-cert.pem` and `{kind}-key.pem` in `dir` for subject CN `cn` with the extensions `ext`.
fn issue(ca: &Path, dir: &Path, kind: &str, cn: &str, ext: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let key = dir.join(format!("{kind}-key.pem"));
    let csr = dir.join(format!("{kind}.csr"));
    let ext_file = dir.join(format!("{kind}.ext"));
    std::fs::write(
        &ext_file,
        format!("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n{ext}\n"),
    )
    .unwrap();
    run_ok(
        Command::new("openssl")
            .args(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
            .args(["-nodes", "-subj", &format!("/CN={cn}")])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&csr),
    );
    private(&key);
    run_ok(
        Command::new("openssl")
            .args(["x509", "-req", "-days", "30", "-set_serial", &serial()])
            .arg("-in")
            .arg(&csr)
            .arg("-CA")
            .arg(ca.join("ca-cert.pem"))
            .arg("-CAkey")
            .arg(ca.join("ca-key.pem"))
            .arg("-extfile")
            .arg(&ext_file)
            .arg("-out")
            .arg(dir.join(format!("{kind}-cert.pem"))),
    );
}

fn private(key: &Path) {
    std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A serial number unique enough for certificates of one test run.
fn serial() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    format!("{}", nanos % 1_000_000_000_000)
}
