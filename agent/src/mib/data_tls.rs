//! dvsanDataTls scalars: the certificate revocation list the station pushes to the unit (dvsanDataTlsCrl, DER,
//! read-write) and what it holds (its cRLNumber and how many certificates it lists).
//!
//! The agent keeps the list in the unit's state directory ([`dvsan_layout::PUSHED_CRL_FILE`]), where blockd reads it
//! next to its own `--tls-crl` files and refuses the certificates it lists (blockd's `tls.rs`). A SET must carry one
//! whole DER CRL (RFC 5280) or nothing (removes the list); anything else is refused with wrongValue, logged, and the
//! list in force stays. The file is replaced atomically, so blockd never reads half of one.

use dvsan_mib as mib;
use dvsan_snmp::agent::{
    FnPreparedSet, GetResult, MibHandler, PreparedSet, ScalarHandler, Scalars, SetFailure, SetItem, UndoFailed,
};
use dvsan_snmp::{ErrorStatus, Oid, Value, VarBind};
use std::path::{Path, PathBuf};

/// The largest CRL taken (dvsanDataTlsCrl's SIZE): about 800 revoked certificates, and well inside one datagram.
pub const MAX_CRL: usize = 32768;

/// The scalars' values, read from the file each time (the station reads them rarely).
struct Values {
    path: PathBuf,
}

/// What a DER CRL says: its cRLNumber (saturated to 32 bits; 0 if it has none) and how many certificates it lists.
/// An error says why `der` is not one whole CRL.
pub fn crl_summary(der: &[u8]) -> Result<(u32, u32), String> {
    match x509_parser::parse_x509_crl(der) {
        Ok(([], crl)) => {
            let number = crl.crl_number().map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX));
            let revoked = crl.iter_revoked_certificates().count();
            Ok((number, u32::try_from(revoked).unwrap_or(u32::MAX)))
        }
        Ok((rest, _)) => Err(format!("{} bytes after the CRL", rest.len())),
        Err(e) => Err(format!("not a DER certificate revocation list: {e}")),
    }
}

impl Scalars for Values {
    fn group(&self) -> &'static [u32] {
        mib::DVSAN_DATA_TLS
    }
    fn members(&self) -> &'static [u32] {
        &[1, 2, 3]
    }
    fn value(&self, member: u32) -> Option<Value> {
        let der = std::fs::read(&self.path).unwrap_or_default();
        let (number, revoked) = if der.is_empty() { (0, 0) } else { crl_summary(&der).unwrap_or((0, 0)) };
        Some(match member {
            1 => Value::OctetString(der),
            2 => Value::Gauge32(number),
            3 => Value::Gauge32(revoked),
            _ => return None,
        })
    }
}

/// The dvsanDataTls group: scalars for GETs, the CRL writable.
pub struct DataTls {
    scalars: ScalarHandler<Values>,
    path: PathBuf,
}

impl DataTls {
    /// The group of the unit whose state directory is `state_dir`.
    pub fn new(state_dir: &Path) -> DataTls {
        let path = state_dir.join(dvsan_layout::PUSHED_CRL_FILE);
        DataTls { scalars: ScalarHandler::new(Values { path: path.clone() }), path }
    }

    pub fn prefix(&self) -> Oid {
        self.scalars.prefix()
    }
}

impl MibHandler for DataTls {
    fn get(&self, oid: &Oid) -> GetResult {
        self.scalars.get(oid)
    }

    fn get_next(&self, oid: &Oid) -> Option<VarBind> {
        self.scalars.get_next(oid)
    }

    fn prepare_set(&self, varbinds: &[SetItem<'_>]) -> Result<Box<dyn PreparedSet>, SetFailure> {
        let crl_instance: Vec<u32> = mib::DVSAN_DATA_TLS_CRL.iter().copied().chain([0]).collect();
        let mut new = None;
        for &(i, vb) in varbinds {
            if vb.oid.as_slice() != crl_instance.as_slice() {
                return Err(SetFailure::new(i, ErrorStatus::NotWritable));
            }
            let der = match &vb.value {
                Value::OctetString(b) if b.len() <= MAX_CRL => b.clone(),
                Value::OctetString(_) => return Err(SetFailure::new(i, ErrorStatus::WrongLength)),
                _ => return Err(SetFailure::new(i, ErrorStatus::WrongType)),
            };
            if !der.is_empty() {
                if let Err(why) = crl_summary(&der) {
                    tracing::warn!(bytes = der.len(), error = %why, "refused a certificate revocation list (dvsanDataTlsCrl); the one in force stays");
                    return Err(SetFailure::new(i, ErrorStatus::WrongValue));
                }
            }
            new = Some((i, der));
        }
        let Some((at, der)) = new else {
            return Err(SetFailure::new(0, ErrorStatus::NotWritable));
        };
        let path = self.path.clone();
        Ok(Box::new(FnPreparedSet(move || {
            let old = std::fs::read(&path).ok();
            replace(&path, Some(&der)).map_err(|e| {
                tracing::error!(path = %path.display(), error = %e, "cannot write the certificate revocation list");
                SetFailure::new(at, ErrorStatus::CommitFailed)
            })?;
            match crl_summary(&der) {
                Ok((number, revoked)) => {
                    tracing::info!(crl_number = number, revoked, "certificate revocation list set")
                }
                Err(_) => tracing::info!("certificate revocation list removed"),
            }
            Ok(move || replace(&path, old.as_deref()).map_err(|_| UndoFailed))
        })))
    }
}

/// Writes `der` to `path` through a temporary file and a rename (fsynced), or removes `path` for None or nothing.
fn replace(path: &Path, der: Option<&[u8]>) -> std::io::Result<()> {
    use std::io::Write;
    match der {
        Some(der) if !der.is_empty() => {
            let temp = path.with_extension("tmp");
            let mut file = std::fs::File::create(&temp)?;
            file.write_all(der)?;
            file.sync_all()?;
            std::fs::rename(&temp, path)?;
        }
        _ => match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        },
    }
    if let Some(dir) = path.parent().and_then(|d| std::fs::File::open(d).ok()) {
        let _ = dir.sync_all();
    }
    Ok(())
}
