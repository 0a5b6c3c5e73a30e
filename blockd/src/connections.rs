//! Open transmission connections, so a layout change or a shutdown can reach them.
//!
//! Each connection registers the export it negotiated, its client (address and TLS identity) and its grant mode, plus a clone of its socket.
//! When the maintenance thread swaps in a new export table it sweeps the registry and shuts down the socket of
//! every connection the new table no longer allows; the connection's blocked read then returns and its thread
//! ends. Registration checks the current table under the registry lock, so a revocation that lands between a
//! handshake's grant check and its registration is still seen. TLS connections also register their client's
//! certificate chain: when the certificate revocation lists change, [`Connections::sweep_certificates`] closes
//! those the new verifier refuses, and registration checks the verifier in force the same way.

use crate::exports::{ExportTable, ServedExport};
use dvsan_layout::{AccessMode, Client};
use rustls_pki_types::CertificateDer;
use std::collections::HashMap;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

struct Entry {
    export: Arc<ServedExport>,
    client: Client,
    mode: AccessMode,
    socket: TcpStream,
    closing: Arc<AtomicBool>,
    /// The client's certificate chain, over TLS.
    certificates: Option<Vec<CertificateDer<'static>>>,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    open: HashMap<u64, Entry>,
}

#[derive(Default)]
pub struct Connections {
    inner: Mutex<Inner>,
}

/// A registered connection: its id and the flag set when someone else closes it.
#[derive(Debug, Clone)]
pub struct Registration {
    pub id: u64,
    pub closing: Arc<AtomicBool>,
}

impl Connections {
    /// Register a connection, unless `current()` (read under the registry lock) no longer allows it, or its
    /// certificate chain no longer passes `trusted` (the verifier in force, also read under the lock).
    #[allow(clippy::too_many_arguments)]
    pub fn register(
        &self,
        export: Arc<ServedExport>,
        client: Client,
        mode: AccessMode,
        socket: &TcpStream,
        certificates: Option<Vec<CertificateDer<'static>>>,
        current: impl FnOnce() -> Arc<ExportTable>,
        trusted: impl FnOnce(&[CertificateDer<'static>]) -> bool,
    ) -> std::io::Result<Option<Registration>> {
        let socket = socket.try_clone()?;
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if !current().still_allows(&export, &client, mode) {
            return Ok(None);
        }
        if certificates.as_deref().is_some_and(|chain| !trusted(chain)) {
            return Ok(None);
        }
        inner.next_id += 1;
        let id = inner.next_id;
        let closing = Arc::new(AtomicBool::new(false));
        inner.open.insert(id, Entry { export, client, mode, socket, closing: closing.clone(), certificates });
        Ok(Some(Registration { id, closing }))
    }

    pub fn unregister(&self, id: u64) {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).open.remove(&id);
    }

    /// Close every connection `table` no longer allows; returns how many.
    pub fn sweep(&self, table: &ExportTable) -> usize {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let mut closed = 0;
        for (id, e) in inner.open.iter() {
            if e.closing.load(Ordering::Relaxed) || table.still_allows(&e.export, &e.client, e.mode) {
                continue;
            }
            tracing::info!(conn = id, export = %e.export.name, client = %e.client, "grant or export gone; closing connection");
            e.closing.store(true, Ordering::Relaxed);
            // Errors mean the socket is already shut down or closed, which is the goal.
            let _ = e.socket.shutdown(Shutdown::Both);
            closed += 1;
        }
        closed
    }

    /// Close every TLS connection whose client certificate chain `trusted` refuses now (the certificate
    /// revocation lists changed); returns how many.
    pub fn sweep_certificates(&self, trusted: impl Fn(&[CertificateDer<'static>]) -> bool) -> usize {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let mut closed = 0;
        for (id, e) in inner.open.iter() {
            let Some(chain) = &e.certificates else { continue };
            if e.closing.load(Ordering::Relaxed) || trusted(chain) {
                continue;
            }
            tracing::info!(conn = id, export = %e.export.name, client = %e.client, "client certificate revoked; closing connection");
            e.closing.store(true, Ordering::Relaxed);
            let _ = e.socket.shutdown(Shutdown::Both);
            closed += 1;
        }
        closed
    }

    /// Shutdown: stop reading on every connection. Each finishes the requests it has read, sends their
    /// replies and ends.
    pub fn stop_all(&self) {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        for e in inner.open.values() {
            e.closing.store(true, Ordering::Relaxed);
            let _ = e.socket.shutdown(Shutdown::Read);
        }
    }

    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
