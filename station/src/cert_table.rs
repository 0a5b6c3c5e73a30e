//! dvsanStationCertRequestTable: hosts get their NBD-over-TLS client certificate from the station's CA
//! ([`crate::ca`]) with SNMP SETs (`dvsan-host enroll`).
//!
//! A host makes its key pair itself and creates a row with createAndGo and a PKCS#10 certificate signing request.
//! The identity is the requester's: the SNMPv3 user that made the SET, with at least authNoPriv
//! ([`Requester::current`] while the SET is prepared); a request whose subject or subjectAltNames name anything
//! else is refused, and the certificate's names are built from the identity, not copied from the request. The
//! station signs at once, in the SET's commit (one ECDSA signature; the CA is made at first need), and the row
//! holds the certificate and the CA's certificate, or failed(2) and why (a community requester, a user name that
//! cannot be a DNS name, a request that does not parse or whose signature is wrong, an identity revoked with
//! `dvsan-station host revoke`). An issued identity is recorded in the store (`host_identities`), so the station's
//! grants for that user's storage requests name it. Rows are visible only to their
//! requester and the station's admins ([`Admins`]), like dvsanStationRequestTable's, and live in memory only (at
//! most [`MAX_ROWS`]).

use crate::ca::StationCa;
use crate::principal::{Admins, Principal};
use crate::set_values::{integer, octets, truncate};
use crate::store::StationStore;
use dvsan_mib as mib;
use dvsan_snmp::agent::{FnPreparedSet, PreparedSet, Requester, SecurityModel, SetFailure, SetItem, Table, UndoFailed};
use dvsan_snmp::usm::SecurityLevel;
use dvsan_snmp::{ErrorStatus, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Most rows the table holds; createAndGo beyond is resourceUnavailable (destroy old rows first).
pub const MAX_ROWS: usize = 1000;
/// The longest request accepted (the column's SIZE).
pub const MAX_CSR: usize = 4096;

const CSR: u32 = 2;
const IDENTITY: u32 = 3;
const STATUS: u32 = 4;
const ERROR: u32 = 5;
const CERTIFICATE: u32 = 6;
const CA_CERTIFICATE: u32 = 7;
const ROW_STATUS: u32 = 8;

use mib::dvsan_station_cert_request_status as status;

#[derive(Debug, Clone, Default)]
struct CertRow {
    identity: String,
    status: i32,
    error: String,
    certificate: String,
    ca_certificate: String,
    requester: Option<String>,
}

/// The identity a certificate may be issued for to the requester of the SET being processed: its SNMPv3 user
/// name, if it authenticated.
fn requester_identity() -> Result<String, String> {
    match Requester::current() {
        Some(r) if r.model == SecurityModel::Usm && r.level != SecurityLevel::NoAuthNoPriv => Ok(r.name),
        Some(r) if r.model == SecurityModel::Usm => {
            Err("a certificate needs an authenticated SNMPv3 user (authNoPriv or authPriv)".to_string())
        }
        _ => Err("a certificate is issued only to an SNMPv3 user: its identity is the user's name".to_string()),
    }
}

struct Shared {
    rows: Mutex<BTreeMap<u32, CertRow>>,
    admins: Admins,
    state_dir: PathBuf,
    ca: Mutex<Option<Arc<StationCa>>>,
}

impl Shared {
    fn rows(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, CertRow>> {
        self.rows.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn visible(&self, row: &CertRow) -> bool {
        self.admins.current_may_manage(row.requester.as_deref())
    }

    /// The station's CA, opened (or made) at first need.
    fn ca(&self) -> Result<Arc<StationCa>, String> {
        let mut ca = self.ca.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ca) = ca.as_ref() {
            return Ok(Arc::clone(ca));
        }
        let opened = Arc::new(StationCa::open_or_create(&self.state_dir).map_err(|e| {
            tracing::error!(error = %e, "the station's CA cannot be opened");
            "the station's CA is not available (see the station's log)".to_string()
        })?);
        *ca = Some(Arc::clone(&opened));
        Ok(opened)
    }

    /// Signs `csr` for `identity` and fills `row` in.
    fn sign(&self, row: &mut CertRow, identity: Result<String, String>, csr: &[u8]) {
        let outcome = identity.and_then(|identity| {
            row.identity = truncate(&identity, 255);
            let mut store = StationStore::open(&self.state_dir).map_err(|e| {
                tracing::error!(error = %e, "the station's store cannot be opened to record a host identity");
                "the station's store is not available (see the station's log)".to_string()
            })?;
            let revoked = || {
                format!(
                    "identity {identity} is revoked; an admin issues it again (`dvsan-station host issue {identity}`)"
                )
            };
            // Recorded first, and only if not revoked, so the station grants this user's requests by identity (see
            // `allocate`); a revoke after this point lists the certificate signed below, or (checked again after
            // signing) the certificate is not handed out.
            let recorded = store.record_unrevoked_host_identity(&identity, crate::timefmt::now_ms());
            if !recorded.map_err(|e| e.to_string())? {
                return Err(revoked());
            }
            let ca = self.ca()?;
            let certificate = ca.sign_host_request(&identity, csr).map_err(|e| e.to_string())?;
            let now = store.host_identity(&identity).map_err(|e| e.to_string())?;
            if now.is_some_and(|h| !h.valid()) {
                return Err(revoked());
            }
            Ok((certificate, ca.cert_pem().to_string()))
        });
        match outcome {
            Ok((certificate, ca_certificate)) => {
                tracing::info!(identity = %row.identity, "issued a host certificate over SNMP");
                row.status = status::ISSUED;
                row.certificate = certificate;
                row.ca_certificate = ca_certificate;
            }
            Err(e) => {
                tracing::debug!(identity = %row.identity, error = %e, "refused a certificate signing request");
                row.status = status::FAILED;
                row.error = truncate(&e, 255);
            }
        }
    }
}

/// The table, served by the station's agent (register a `TableHandler` of it at the entry OID).
pub struct CertRequestTable {
    shared: Arc<Shared>,
}

impl CertRequestTable {
    /// The table of the station whose state directory (and so CA) is `state_dir`.
    pub fn new(state_dir: PathBuf, admins: Admins) -> CertRequestTable {
        let shared = Shared { rows: Mutex::new(BTreeMap::new()), admins, state_dir, ca: Mutex::new(None) };
        CertRequestTable { shared: Arc::new(shared) }
    }
}

enum RowChange {
    /// A new row: the request, and the identity to sign it for (or why there is none).
    Create {
        csr: Vec<u8>,
        identity: Result<String, String>,
        requester: Option<String>,
    },
    Destroy,
}

impl CertRequestTable {
    fn plan_row(&self, index: u32, cells: &[(usize, u32, &Value)]) -> Result<Option<RowChange>, SetFailure> {
        let (exists, taken) = match self.shared.rows().get(&index) {
            Some(row) if self.shared.visible(row) => (true, false),
            Some(_) => (false, true),
            None => (false, false),
        };
        let first = cells[0].0;
        let mut row_status = None;
        let mut csr = None;
        for &(i, column, value) in cells {
            match column {
                CSR => csr = Some(octets(i, value, MAX_CSR)?),
                ROW_STATUS => {
                    let allowed = [mib::row_status::ACTIVE, mib::row_status::CREATE_AND_GO, mib::row_status::DESTROY];
                    row_status = Some((i, integer(i, value, &allowed)?));
                }
                _ => return Err(SetFailure::new(i, ErrorStatus::NotWritable)),
            }
        }
        match (exists, row_status) {
            (true, Some((_, s))) if s == mib::row_status::DESTROY => Ok(Some(RowChange::Destroy)),
            (false, Some((_, s))) if s == mib::row_status::DESTROY => Ok(None),
            (false, Some((i, s))) if s == mib::row_status::CREATE_AND_GO => {
                if taken {
                    return Err(SetFailure::new(i, ErrorStatus::InconsistentValue));
                }
                if self.shared.rows().len() >= MAX_ROWS {
                    return Err(SetFailure::new(i, ErrorStatus::ResourceUnavailable));
                }
                let Some(csr) = csr else { return Err(SetFailure::new(i, ErrorStatus::InconsistentValue)) };
                let requester = Principal::current().map(|p| p.stored());
                Ok(Some(RowChange::Create { csr, identity: requester_identity(), requester }))
            }
            (true, Some((_, s))) if s == mib::row_status::ACTIVE && cells.len() == 1 => Ok(None),
            (true, _) => Err(SetFailure::new(row_status.map_or(first, |(i, _)| i), ErrorStatus::InconsistentValue)),
            (false, Some((i, _))) => Err(SetFailure::new(i, ErrorStatus::InconsistentValue)),
            (false, None) => Err(SetFailure::new(first, ErrorStatus::InconsistentName)),
        }
    }
}

impl Table for CertRequestTable {
    fn entry(&self) -> &'static [u32] {
        mib::DVSAN_STATION_CERT_REQUEST_ENTRY
    }

    fn columns(&self) -> &'static [u32] {
        &[CSR, IDENTITY, STATUS, ERROR, CERTIFICATE, CA_CERTIFICATE, ROW_STATUS]
    }

    fn rows(&self) -> Vec<Vec<u32>> {
        self.shared.rows().iter().filter(|(_, row)| self.shared.visible(row)).map(|(k, _)| vec![*k]).collect()
    }

    fn cell(&self, column: u32, index: &[u32]) -> Option<Value> {
        let [i] = index else { return None };
        let rows = self.shared.rows();
        let row = rows.get(i).filter(|row| self.shared.visible(row))?;
        Some(match column {
            // The request is not kept: the certificate replaces it.
            CSR => Value::OctetString(Vec::new()),
            IDENTITY => Value::string(&row.identity),
            STATUS => Value::Integer(row.status),
            ERROR => Value::string(&row.error),
            CERTIFICATE => Value::string(&row.certificate),
            CA_CERTIFICATE => Value::string(&row.ca_certificate),
            ROW_STATUS => Value::Integer(mib::row_status::ACTIVE),
            _ => return None,
        })
    }

    fn prepare_set(&self, varbinds: &[SetItem<'_>]) -> Result<Box<dyn PreparedSet>, SetFailure> {
        let by_row = crate::set_values::cells_by_row(varbinds, mib::DVSAN_STATION_CERT_REQUEST_ENTRY)?;
        let mut changes = Vec::new();
        for (index, cells) in &by_row {
            if let Some(change) = self.plan_row(*index, cells)? {
                changes.push((*index, change));
            }
        }
        let shared = Arc::clone(&self.shared);
        Ok(Box::new(FnPreparedSet(move || {
            let mut previous = Vec::new();
            for (index, change) in changes {
                let row = match change {
                    RowChange::Create { csr, identity, requester } => {
                        let mut row = CertRow { requester, ..CertRow::default() };
                        shared.sign(&mut row, identity, &csr);
                        Some(row)
                    }
                    RowChange::Destroy => None,
                };
                let mut rows = shared.rows();
                let before = match row {
                    Some(row) => rows.insert(index, row),
                    None => rows.remove(&index),
                };
                previous.push((index, before));
            }
            Ok(move || {
                let mut rows = shared.rows();
                for (index, before) in previous.into_iter().rev() {
                    match before {
                        Some(row) => rows.insert(index, row),
                        None => rows.remove(&index),
                    };
                }
                Ok::<(), UndoFailed>(())
            })
        })))
    }
}
