//! Open transmission connections, so a layout change or a shutdown can reach them.
//!
//! Each connection registers the export it negotiated, its client (address and TLS identity) and its grant mode, plus a clone of its socket.
//! When the maintenance thread swaps in a new export table it sweeps the registry and shuts down the socket of
//! every connection the new table no longer allows; the connection's blocked read then returns and its thread
//! ends. Registration checks the current table under the registry lock, so a revocation that lands between a
//! handshake's grant check and its registration is still seen.

use crate::exports::{ExportTable, ServedExport};
use dvsan_layout::{AccessMode, Client};
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
    /// Register a connection, unless `current()` (read under the registry lock) no longer allows it.
    pub fn register(
        &self,
        export: Arc<ServedExport>,
        client: Client,
        mode: AccessMode,
        socket: &TcpStream,
        current: impl FnOnce() -> Arc<ExportTable>,
    ) -> std::io::Result<Option<Registration>> {
        let socket = socket.try_clone()?;
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if !current().still_allows(&export, &client, mode) {
            return Ok(None);
        }
        inner.next_id += 1;
        let id = inner.next_id;
        let closing = Arc::new(AtomicBool::new(false));
        inner.open.insert(id, Entry { export, client, mode, socket, closing: closing.clone() });
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
