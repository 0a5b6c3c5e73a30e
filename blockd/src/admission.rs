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
//! a flood from a few addresses cannot keep a new host from its handshake. Likewise, when every served slot is
//! taken, a host holding fewer served slots than the heaviest host with an idle connection (one whose transmission
//! loop said it has had no request for a while, [`ServedSlot::activity`]) takes the slot of that host's oldest
//! idle connection, which is closed through the closer its owner registered. And the more handshake slots are
//! taken, the shorter the deadline a new handshake gets ([`shrink_deadline`]). Slots are RAII values: dropping one
//! gives it back.
//!
//! A leaf: it knows addresses and counts, nothing of NBD.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
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

/// What a served connection tells the admission table about itself, and how the table closes it.
#[derive(Default)]
pub struct Activity {
    idle: AtomicBool,
    closer: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl Activity {
    /// Whether the connection has had no request in flight for a while (its transmission loop says so).
    pub fn set_idle(&self, idle: bool) {
        self.idle.store(idle, Ordering::Relaxed);
    }

    fn is_idle(&self) -> bool {
        self.idle.load(Ordering::Relaxed)
    }

    /// How to close the connection if its slot goes to another host; until set, it is never chosen.
    pub fn set_closer(&self, close: impl FnOnce() + Send + 'static) {
        *self.closer.lock().unwrap_or_else(PoisonError::into_inner) = Some(Box::new(close));
    }

    fn close(&self) -> bool {
        let closer = self.closer.lock().unwrap_or_else(PoisonError::into_inner).take();
        closer.map(|close| close()).is_some()
    }

    fn closable(&self) -> bool {
        self.closer.lock().unwrap_or_else(PoisonError::into_inner).is_some()
    }
}

struct Served {
    host: IpAddr,
    started: Instant,
    activity: Arc<Activity>,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    handshaking: HashMap<u64, Handshaking>,
    handshakes_by_source: HashMap<IpAddr, usize>,
    served: HashMap<u64, Served>,
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

    fn release_served(&mut self, id: u64) {
        if let Some(s) = self.served.remove(&id) {
            decrement(&mut self.served_by_host, s.host);
        }
    }

    /// The oldest idle connection of the host holding the most served slots among hosts with an idle (and
    /// closable) connection, if that host holds more than `than`.
    fn idle_victim(&self, than: usize) -> Option<u64> {
        let idle = || self.served.iter().filter(|(_, s)| s.activity.is_idle() && s.activity.closable());
        let heaviest = idle().map(|(_, s)| s.host).max_by_key(|h| self.served_by_host.get(h).copied().unwrap_or(0))?;
        if self.served_by_host.get(&heaviest).copied().unwrap_or(0) <= than {
            return None;
        }
        idle().filter(|(_, s)| s.host == heaviest).min_by_key(|(_, s)| s.started).map(|(id, _)| *id)
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

/// A served slot of one host; given back on drop (unless another host took it over).
pub struct ServedSlot {
    admission: Arc<Admission>,
    id: u64,
    /// Set by the connection: whether it is idle, and how to close it.
    pub activity: Arc<Activity>,
}

impl Drop for ServedSlot {
    fn drop(&mut self) {
        self.admission.lock().release_served(self.id);
    }
}

/// The deadline for a handshake starting when `in_use` of `max` handshake slots are taken (counting its own):
/// `base` up to half full, half of it past half, a quarter past three quarters, never below `floor`.
pub fn shrink_deadline(base: Duration, floor: Duration, in_use: usize, max: usize) -> Duration {
    let shrunk = if in_use * 4 > max * 3 {
        base / 4
    } else if in_use * 2 > max {
        base / 2
    } else {
        base
    };
    shrunk.max(floor.min(base))
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

    /// A served slot for `host`, taken when its handshake picks an export; `Ok((slot, evicted))` says whether
    /// another host's oldest idle connection was closed to make room.
    pub fn serve(self: &Arc<Self>, host: IpAddr) -> Result<(ServedSlot, bool), Refused> {
        let mut inner = self.lock();
        let mine = inner.served_by_host.get(&host).copied().unwrap_or(0);
        if mine >= self.limits.max_connections_per_host {
            return Err(Refused::HostConnections);
        }
        let mut evicted = false;
        if inner.served.len() >= self.limits.max_connections {
            // As for handshakes: only a host holding at least two more than this one loses a connection.
            let victim = inner.idle_victim(mine + 1).ok_or(Refused::ConnectionsFull)?;
            if let Some(s) = inner.served.get(&victim) {
                s.activity.close();
            }
            inner.release_served(victim);
            evicted = true;
        }
        inner.next_id += 1;
        let id = inner.next_id;
        let activity = Arc::new(Activity::default());
        inner.served.insert(id, Served { host, started: Instant::now(), activity: activity.clone() });
        *inner.served_by_host.entry(host).or_default() += 1;
        Ok((ServedSlot { admission: self.clone(), id, activity }, evicted))
    }

    /// The deadline for a handshake admitted now (see [`shrink_deadline`]).
    pub fn handshake_deadline(&self, base: Duration, floor: Duration) -> Duration {
        let in_use = self.lock().handshaking.len();
        shrink_deadline(base, floor, in_use, self.limits.max_handshakes)
    }

    /// (handshakes, served connections) now.
    pub fn counts(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.handshaking.len(), inner.served.len())
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
        let (s1, _) = a.serve(ip("10.0.0.7")).unwrap();
        let _s2 = a.serve(ip("10.0.0.7")).unwrap();
        assert_eq!(a.serve(ip("10.0.0.7")).err(), Some(Refused::HostConnections));
        let _s3 = a.serve(ip("10.0.0.8")).unwrap();
        assert_eq!(a.serve(ip("10.0.0.9")).err(), Some(Refused::ConnectionsFull));
        drop(s1);
        assert!(a.serve(ip("10.0.0.7")).is_ok());
    }

    #[test]
    fn a_full_table_gives_the_oldest_idle_connection_of_the_heaviest_host_to_a_new_host() {
        use std::sync::atomic::AtomicUsize;
        let limits = AdmissionLimits { max_connections: 4, max_connections_per_host: 3, ..Default::default() };
        let a = Admission::new(limits);
        let closed = Arc::new(AtomicUsize::new(0));
        let flood: Vec<ServedSlot> = (0..3).map(|_| a.serve(ip("10.0.0.66")).unwrap().0).collect();
        let (other, _) = a.serve(ip("10.0.0.2")).unwrap();
        // Full, and nobody is idle (or closable): refused.
        assert_eq!(a.serve(ip("10.0.0.3")).err(), Some(Refused::ConnectionsFull));
        for (i, s) in flood.iter().enumerate() {
            let closed = closed.clone();
            s.activity.set_closer(move || {
                closed.fetch_add(1 + 10 * i, Ordering::SeqCst);
            });
        }
        other.activity.set_closer(|| panic!("a lighter host's connection is never taken"));
        other.activity.set_idle(true);
        assert_eq!(a.serve(ip("10.0.0.3")).err(), Some(Refused::ConnectionsFull), "the flood is busy");
        // The second and third of the flood go idle: the older of them (the second) is closed for the newcomer.
        flood[1].activity.set_idle(true);
        flood[2].activity.set_idle(true);
        let (_new, evicted) = a.serve(ip("10.0.0.3")).unwrap();
        assert!(evicted);
        assert_eq!(closed.load(Ordering::SeqCst), 11);
        assert_eq!(a.counts().1, 4);
        // The flood holds 2 now, the newcomer's next connection (1 + 1 = 2) may not take from it...
        assert_eq!(a.serve(ip("10.0.0.3")).err(), Some(Refused::ConnectionsFull));
        // ...but a host with none may (2 > 0 + 1): the flood's other idle connection goes.
        let (_fourth, evicted) = a.serve(ip("10.0.0.4")).unwrap();
        assert!(evicted);
        assert_eq!(closed.load(Ordering::SeqCst), 32);
        drop(flood);
        assert_eq!(a.counts().1, 3, "dropping taken-over slots does not give back someone else's");
    }

    #[test]
    fn the_handshake_deadline_shrinks_as_slots_fill_down_to_the_floor() {
        let (base, floor) = (Duration::from_secs(10), Duration::from_secs(2));
        assert_eq!(shrink_deadline(base, floor, 1, 64), base);
        assert_eq!(shrink_deadline(base, floor, 32, 64), base);
        assert_eq!(shrink_deadline(base, floor, 33, 64), Duration::from_secs(5));
        assert_eq!(shrink_deadline(base, floor, 49, 64), Duration::from_millis(2500));
        assert_eq!(shrink_deadline(base, Duration::from_secs(4), 64, 64), Duration::from_secs(4));
        // A floor above the base does not lengthen it.
        assert_eq!(shrink_deadline(Duration::from_secs(1), floor, 64, 64), Duration::from_secs(1));
        let a = Admission::new(AdmissionLimits { max_handshakes: 4, ..Default::default() });
        let _held: Vec<_> = (0..3).map(|i| a.handshake(ip(&format!("10.0.1.{i}"))).unwrap()).collect();
        assert_eq!(a.handshake_deadline(base, floor), Duration::from_secs(5));
    }
}
