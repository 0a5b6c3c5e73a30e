//! Connection admission: who may hold which of blockd's connection slots, so no source can lock others out.
//!
//! Two pools. **Handshake slots** (`--max-handshakes`) hold connections from accept until they pick an export;
//! each source address may hold at most `--max-handshakes-per-source` of them. **Served slots**
//! (`--max-connections`) hold connections in transmission; each host address may hold at most
//! `--max-connections-per-host` of them. Handshakers therefore cannot starve served hosts, and a host's idle
//! negotiated connections cannot take every slot.
//!
//! When the handshake pool is full, a connection from a source holding fewer handshake slots than the heaviest
//! source takes the slot of that source's oldest handshake (which is told to close) rather than being refused:
//! a flood from a few addresses cannot keep a new host from its handshake. Slots are RAII values: dropping one
//! gives it back.
//!
//! A leaf: it knows addresses and counts, nothing of NBD.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;
use tokio::sync::Notify;

/// The limits (see the module doc); every one at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionLimits {
    pub max_handshakes: usize,
    pub max_handshakes_per_source: usize,
    pub max_connections: usize,
    pub max_connections_per_host: usize,
}

impl Default for AdmissionLimits {
    fn default() -> Self {
        AdmissionLimits {
            max_handshakes: 64,
            max_handshakes_per_source: 8,
            max_connections: 128,
            max_connections_per_host: 32,
        }
    }
}

/// Why a connection did not get a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Every handshake slot is taken and no source holds more of them than this one.
    HandshakesFull,
    /// This source already holds its share of handshake slots.
    SourceHandshakes,
    /// Every served slot is taken.
    ConnectionsFull,
    /// This host already holds its share of served slots.
    HostConnections,
}

impl Refused {
    pub fn describe(self) -> &'static str {
        match self {
            Refused::HandshakesFull => "every handshake slot is taken",
            Refused::SourceHandshakes => "this address has its most handshakes in progress",
            Refused::ConnectionsFull => "every connection slot is taken",
            Refused::HostConnections => "this host has its most connections open",
        }
    }
}

struct Handshaking {
    source: IpAddr,
    started: Instant,
    evict: Arc<Notify>,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    handshaking: HashMap<u64, Handshaking>,
    handshakes_by_source: HashMap<IpAddr, usize>,
    served: usize,
    served_by_host: HashMap<IpAddr, usize>,
}

impl Inner {
    fn release_handshake(&mut self, id: u64) {
        if let Some(h) = self.handshaking.remove(&id) {
            decrement(&mut self.handshakes_by_source, h.source);
        }
    }

    /// The oldest handshake of the source holding the most handshake slots, if it holds more than `than`.
    fn victim(&self, than: usize) -> Option<u64> {
        let (heaviest, count) = self.handshakes_by_source.iter().max_by_key(|(_, n)| **n)?;
        if *count <= than {
            return None;
        }
        self.handshaking.iter().filter(|(_, h)| h.source == *heaviest).min_by_key(|(_, h)| h.started).map(|(id, _)| *id)
    }
}

fn decrement(map: &mut HashMap<IpAddr, usize>, key: IpAddr) {
    if let Some(n) = map.get_mut(&key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(&key);
        }
    }
}

/// The slot tables; shared by the accept loop, handshakes and transmission threads.
pub struct Admission {
    limits: AdmissionLimits,
    inner: Mutex<Inner>,
}

/// A handshake slot; given back on drop. `evicted` fires if a newcomer took it over.
pub struct HandshakeSlot {
    admission: Arc<Admission>,
    id: u64,
    pub evicted: Arc<Notify>,
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        self.admission.lock().release_handshake(self.id);
    }
}

/// A served slot of one host; given back on drop.
pub struct ServedSlot {
    admission: Arc<Admission>,
    host: IpAddr,
}

impl Drop for ServedSlot {
    fn drop(&mut self) {
        let mut inner = self.admission.lock();
        inner.served = inner.served.saturating_sub(1);
        decrement(&mut inner.served_by_host, self.host);
    }
}

impl Admission {
    pub fn new(limits: AdmissionLimits) -> Arc<Admission> {
        let limits = AdmissionLimits {
            max_handshakes: limits.max_handshakes.max(1),
            max_handshakes_per_source: limits.max_handshakes_per_source.max(1),
            max_connections: limits.max_connections.max(1),
            max_connections_per_host: limits.max_connections_per_host.max(1),
        };
        Arc::new(Admission { limits, inner: Mutex::default() })
    }

    pub fn limits(&self) -> AdmissionLimits {
        self.limits
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A handshake slot for a connection from `source`; `Ok((slot, evicted))` says whether another source's
    /// oldest handshake was told to close to make room.
    pub fn handshake(self: &Arc<Self>, source: IpAddr) -> Result<(HandshakeSlot, bool), Refused> {
        let mut inner = self.lock();
        let mine = inner.handshakes_by_source.get(&source).copied().unwrap_or(0);
        if mine >= self.limits.max_handshakes_per_source {
            return Err(Refused::SourceHandshakes);
        }
        let mut evicted = false;
        if inner.handshaking.len() >= self.limits.max_handshakes {
            // Only a source holding at least two more than this one loses a slot, so two equal sources do not
            // keep taking slots from each other.
            let victim = inner.victim(mine + 1).ok_or(Refused::HandshakesFull)?;
            if let Some(h) = inner.handshaking.get(&victim) {
                h.evict.notify_one();
            }
            inner.release_handshake(victim);
            evicted = true;
        }
        inner.next_id += 1;
        let id = inner.next_id;
        let evict = Arc::new(Notify::new());
        inner.handshaking.insert(id, Handshaking { source, started: Instant::now(), evict: evict.clone() });
        *inner.handshakes_by_source.entry(source).or_default() += 1;
        Ok((HandshakeSlot { admission: self.clone(), id, evicted: evict }, evicted))
    }

    /// A served slot for `host`, taken when its handshake picks an export.
    pub fn serve(self: &Arc<Self>, host: IpAddr) -> Result<ServedSlot, Refused> {
        let mut inner = self.lock();
        if inner.served_by_host.get(&host).copied().unwrap_or(0) >= self.limits.max_connections_per_host {
            return Err(Refused::HostConnections);
        }
        if inner.served >= self.limits.max_connections {
            return Err(Refused::ConnectionsFull);
        }
        inner.served += 1;
        *inner.served_by_host.entry(host).or_default() += 1;
        Ok(ServedSlot { admission: self.clone(), host })
    }

    /// (handshakes, served connections) now.
    pub fn counts(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.handshaking.len(), inner.served)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_source_gets_its_share_of_handshakes_and_a_newcomer_evicts_the_heaviest() {
        let limits = AdmissionLimits { max_handshakes: 4, max_handshakes_per_source: 3, ..Default::default() };
        let a = Admission::new(limits);
        let flood: Vec<_> = (0..3).map(|_| a.handshake(ip("10.0.0.66")).unwrap().0).collect();
        assert_eq!(a.handshake(ip("10.0.0.66")).err(), Some(Refused::SourceHandshakes));
        let (_b, evicted) = a.handshake(ip("10.0.0.2")).unwrap();
        assert!(!evicted);
        // Full: the next source takes the flood's oldest slot, whose holder is told.
        let (c, evicted) = a.handshake(ip("10.0.0.3")).unwrap();
        assert!(evicted);
        assert_eq!(a.counts().0, 4);
        // Now every source holds at most 2: a fourth source with none may take from the flood (2 > 0 + 1)...
        let (_d, evicted) = a.handshake(ip("10.0.0.4")).unwrap();
        assert!(evicted);
        // ...but then all hold one: refused rather than evicting an equal.
        assert_eq!(a.handshake(ip("10.0.0.5")).err(), Some(Refused::HandshakesFull));
        drop(c);
        assert!(a.handshake(ip("10.0.0.5")).is_ok());
        drop(flood);
        assert_eq!(a.counts().0, 2, "dropping evicted slots does not give back someone else's");
    }

    #[test]
    fn a_host_gets_its_share_of_served_slots() {
        let limits = AdmissionLimits { max_connections: 3, max_connections_per_host: 2, ..Default::default() };
        let a = Admission::new(limits);
        let s1 = a.serve(ip("10.0.0.7")).unwrap();
        let _s2 = a.serve(ip("10.0.0.7")).unwrap();
        assert_eq!(a.serve(ip("10.0.0.7")).err(), Some(Refused::HostConnections));
        let _s3 = a.serve(ip("10.0.0.8")).unwrap();
        assert_eq!(a.serve(ip("10.0.0.9")).err(), Some(Refused::ConnectionsFull));
        drop(s1);
        assert!(a.serve(ip("10.0.0.7")).is_ok());
    }
}
