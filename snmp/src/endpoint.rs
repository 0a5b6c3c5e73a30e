//! Addresses people type for SNMP endpoints (agents, stations, trap sinks, listen addresses): `IP`, `IP:PORT`,
//! `[IPv6]:PORT`, `NAME` or `NAME:PORT`. The one parser of such text in dvsan: every binary takes its address
//! options through it, so they accept the same forms and say the same thing about a bad one.
//!
//! An [`Endpoint`] keeps a host name as given; [`Endpoint::resolve`] (blocking, for start-up and the CLIs) and
//! [`Endpoint::lookup`] (async) turn it into a socket address when it is used, so a name can be resolved again
//! later (the station does that when a unit registered by name stops answering at its old address).

use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

/// Why an address text was refused or a host name did not resolve.
#[derive(Debug, thiserror::Error)]
pub enum AddressError {
    #[error("no address given; {}", EXAMPLES)]
    Empty,
    #[error("{text:?} is not an address; {}", EXAMPLES)]
    Malformed { text: String },
    #[error("{text:?}: {port:?} is not a port (1 to 65535)")]
    BadPort { text: String, port: String },
    #[error("{text:?}: port 0 is not a valid port here (1 to 65535)")]
    ZeroPort { text: String },
    #[error("host name {name:?} does not resolve ({source}); check the name (DNS, /etc/hosts) or give an IP address")]
    Unresolved { name: String, source: std::io::Error },
    #[error("host name {name:?} resolves to no address; check the name (DNS, /etc/hosts) or give an IP address")]
    NoAddress { name: String },
}

const EXAMPLES: &str =
    "give IP, IP:PORT, NAME or NAME:PORT (for example 192.0.2.20, 192.0.2.20:1161, [2001:db8::20]:1161 \
                        or unit-a.example.net:1161)";

/// The host part of an [`Endpoint`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    Ip(IpAddr),
    /// A DNS host name (letters, digits, hyphens, dots), lower-cased.
    Name(String),
}

/// A host (IP address or name) and a port, as a person gave it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub host: Host,
    pub port: u16,
}

impl Endpoint {
    /// Parses `IP`, `IP:PORT`, `[IPv6]:PORT`, bare IPv6, `NAME` or `NAME:PORT`; `default_port` fills a missing
    /// port. Port 0 passes (a listen address may ask for any free port); see [`Endpoint::require_port`].
    pub fn parse(text: &str, default_port: u16) -> Result<Endpoint, AddressError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(AddressError::Empty);
        }
        if let Ok(address) = trimmed.parse::<SocketAddr>() {
            return Ok(Endpoint::from(address));
        }
        let bracketless = trimmed.strip_prefix('[').and_then(|t| t.strip_suffix(']')).unwrap_or(trimmed);
        if let Ok(ip) = bracketless.parse::<IpAddr>() {
            return Ok(Endpoint { host: Host::Ip(ip), port: default_port });
        }
        let malformed = || AddressError::Malformed { text: trimmed.to_string() };
        let (name, port) = match trimmed.rsplit_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (trimmed, None),
        };
        if !is_host_name(name) {
            return Err(malformed());
        }
        let port = match port {
            Some(port) => port
                .parse::<u16>()
                .map_err(|_| AddressError::BadPort { text: trimmed.to_string(), port: port.to_string() })?,
            None => default_port,
        };
        Ok(Endpoint { host: Host::Name(name.to_ascii_lowercase()), port })
    }

    /// Fails with [`AddressError::ZeroPort`] for port 0 (an agent, a station or a sink to send to).
    pub fn require_port(self) -> Result<Endpoint, AddressError> {
        if self.port == 0 {
            return Err(AddressError::ZeroPort { text: self.to_string() });
        }
        Ok(self)
    }

    /// The host name, when the endpoint was given by name.
    pub fn name(&self) -> Option<&str> {
        match &self.host {
            Host::Name(name) => Some(name),
            Host::Ip(_) => None,
        }
    }

    /// The socket address now (blocking: a name is looked up with the system resolver). Of several addresses, the
    /// first IPv4 one is taken, else the first.
    pub fn resolve(&self) -> Result<SocketAddr, AddressError> {
        match &self.host {
            Host::Ip(ip) => Ok(SocketAddr::new(*ip, self.port)),
            Host::Name(name) => {
                let found = (name.as_str(), self.port)
                    .to_socket_addrs()
                    .map_err(|source| AddressError::Unresolved { name: name.clone(), source })?;
                Ok(ordered(name, found)?[0])
            }
        }
    }

    /// [`Endpoint::resolve`] without blocking the runtime.
    pub async fn lookup(&self) -> Result<SocketAddr, AddressError> {
        Ok(self.lookup_all().await?[0])
    }

    /// Every address the endpoint names now, IPv4 first (a name may have several: round-robin DNS, a multi-homed
    /// host); never empty.
    pub async fn lookup_all(&self) -> Result<Vec<SocketAddr>, AddressError> {
        match &self.host {
            Host::Ip(ip) => Ok(vec![SocketAddr::new(*ip, self.port)]),
            Host::Name(name) => {
                let found = tokio::net::lookup_host((name.as_str(), self.port))
                    .await
                    .map_err(|source| AddressError::Unresolved { name: name.clone(), source })?;
                ordered(name, found)
            }
        }
    }
}

/// The addresses a name resolved to, IPv4 first (what the loopback-and-IPv4 tools here expect), duplicates gone.
fn ordered(name: &str, found: impl Iterator<Item = SocketAddr>) -> Result<Vec<SocketAddr>, AddressError> {
    let mut all: Vec<SocketAddr> = Vec::new();
    for address in found {
        if !all.contains(&address) {
            all.push(address);
        }
    }
    all.sort_by_key(|a| !a.is_ipv4());
    if all.is_empty() {
        return Err(AddressError::NoAddress { name: name.to_string() });
    }
    Ok(all)
}

/// Whether `text` is a DNS host name: dot-separated labels of letters, digits and inner hyphens, 1 to 63
/// characters each, 253 at most in all, not all-numeric at the end (so `127.0.0.256` is not a name).
fn is_host_name(text: &str) -> bool {
    let text = text.strip_suffix('.').unwrap_or(text);
    if text.is_empty() || text.len() > 253 {
        return false;
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let last_is_numeric = text.rsplit('.').next().is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()));
    text.split('.').all(label_ok) && !last_is_numeric
}

impl From<SocketAddr> for Endpoint {
    fn from(address: SocketAddr) -> Endpoint {
        Endpoint { host: Host::Ip(address.ip()), port: address.port() }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Ip(ip) => SocketAddr::new(*ip, self.port).fmt(f),
            Host::Name(name) => write!(f, "{name}:{}", self.port),
        }
    }
}

/// Parses and resolves in one step (blocking): what a CLI option that is used at once needs.
pub fn resolve_address(text: &str, default_port: u16) -> Result<SocketAddr, AddressError> {
    Endpoint::parse(text, default_port)?.resolve()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Result<String, String> {
        Endpoint::parse(text, 1161).map(|e| e.to_string()).map_err(|e| e.to_string())
    }

    #[test]
    fn addresses_and_names_parse() {
        assert_eq!(parsed("127.0.0.2"), Ok("127.0.0.2:1161".into()));
        assert_eq!(parsed(" 127.0.0.2:1170 "), Ok("127.0.0.2:1170".into()));
        assert_eq!(parsed("::1"), Ok("[::1]:1161".into()));
        assert_eq!(parsed("[::1]"), Ok("[::1]:1161".into()));
        assert_eq!(parsed("[::1]:99"), Ok("[::1]:99".into()));
        assert_eq!(parsed("localhost"), Ok("localhost:1161".into()));
        assert_eq!(parsed("Unit-A.example.NET:162"), Ok("unit-a.example.net:162".into()));
        assert_eq!(parsed("127.0.0.1:0"), Ok("127.0.0.1:0".into()));
        assert_eq!(Endpoint::parse("unit-a", 1).unwrap().name(), Some("unit-a"));
        assert_eq!(Endpoint::parse("10.1.1.1", 1).unwrap().name(), None);
    }

    #[test]
    fn bad_text_says_what_would_be_valid() {
        for text in ["127.0.0.256", "unit_a", "-a.example", "a..b", "[::1", "a/b:1", "a b"] {
            let e = parsed(text).unwrap_err();
            assert!(e.contains("is not an address") && e.contains("NAME:PORT"), "{text}: {e}");
        }
        assert!(parsed("").unwrap_err().contains("no address given"));
        let e = parsed("unit-a:99999").unwrap_err();
        assert!(e.contains("\"99999\" is not a port (1 to 65535)"), "{e}");
        let e = Endpoint::parse("127.0.0.2:0", 1).unwrap().require_port().unwrap_err().to_string();
        assert!(e.contains("port 0 is not a valid port"), "{e}");
    }

    #[test]
    fn names_resolve_when_used() {
        let local = resolve_address("localhost:1161", 1).unwrap();
        assert!(local.ip().is_loopback() && local.port() == 1161, "{local}");
        assert_eq!(resolve_address("127.0.0.3", 7).unwrap(), "127.0.0.3:7".parse().unwrap());
        // .invalid never resolves (RFC 2606).
        let e = resolve_address("unit-a.invalid", 1161).unwrap_err().to_string();
        assert!(e.contains("host name \"unit-a.invalid\" does not resolve") && e.contains("give an IP address"), "{e}");
    }
}
