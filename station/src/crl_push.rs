//! Revoked host certificates reach the units: the station's CA's newest certificate revocation list ([`crate::ca`]) is
//! set as DVSAN-MIB dvsanDataTlsCrl on a unit's agent (as the unit's enrolled SNMPv3 user, or the write
//! community), which writes it where the unit's blockd reads it (blockd then refuses the listed certificates and
//! closes their connections).
//!
//! The list is pushed to every unit when a host is revoked (`host revoke`, in `allocate.rs`) and to a unit that
//! joins or comes back whose dvsanDataTlsCrlNumber is older than the CA's (`coordinator.rs`). A unit whose
//! agent has no dvsanDataTls group (an older agent) is skipped.

use crate::ca::{CaError, StationCa};
use dvsan_mib as mib;
use dvsan_snmp::{ErrorStatus, Manager, Oid, SnmpError, Target, Value, VarBind};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error(transparent)]
    Ca(#[from] CaError),
    #[error("the unit's agent refused the revocation list: {status} (see the agent's log)")]
    Refused { status: ErrorStatus },
    #[error("{0}")]
    Snmp(SnmpError),
    #[error("the station has neither the unit's SNMPv3 user nor a write community")]
    NoWriteAccess,
}

impl From<SnmpError> for PushError {
    fn from(e: SnmpError) -> PushError {
        match e {
            SnmpError::Agent { status, .. } => PushError::Refused { status },
            other => PushError::Snmp(other),
        }
    }
}

/// What a unit holds: its list's cRLNumber (0 for none), or None when its agent has no dvsanDataTls group.
pub async fn unit_crl_number(manager: &Manager, target: &Target) -> Result<Option<u32>, SnmpError> {
    let oid = Oid::from_slice(mib::DVSAN_DATA_TLS_CRL_NUMBER).child(0);
    let answer = manager.get(target, &[oid]).await?;
    Ok(match answer.first().map(|vb| &vb.value) {
        Some(Value::Gauge32(n)) => Some(*n),
        _ => None,
    })
}

/// Sets `der` as the unit's dvsanDataTlsCrl.
pub async fn push(manager: &Manager, target: &Target, der: &[u8]) -> Result<(), PushError> {
    let oid = Oid::from_slice(mib::DVSAN_DATA_TLS_CRL).child(0);
    manager.set(target, vec![VarBind::new(oid, Value::OctetString(der.to_vec()))]).await?;
    Ok(())
}

/// Pushes the CA's newest list to the unit if the unit's is older (or it has none). Returns the number pushed, or
/// None when nothing was needed: the station has no CA or no list yet, the unit is up to date, or its agent has no
/// dvsanDataTls group.
pub async fn bring_up_to_date(
    manager: &Manager,
    state_dir: &Path,
    read: &Target,
    write: Option<&Target>,
) -> Result<Option<u32>, PushError> {
    let Some(ca) = StationCa::open_existing(state_dir)? else { return Ok(None) };
    let (Some(der), number) = (ca.crl_der()?, ca.crl_number()?) else { return Ok(None) };
    match unit_crl_number(manager, read).await? {
        Some(held) if held < number => {}
        _ => return Ok(None),
    }
    push(manager, write.ok_or(PushError::NoWriteAccess)?, &der).await?;
    Ok(Some(number))
}
