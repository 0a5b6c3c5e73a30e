//! Where a volume's replicas are: [`ReplicaTarget`] (a unit's blockd address and the export's name) and its
//! `nbd://IP:PORT/EXPORT` form, as `dvsan-host serve --replica` takes it and the station's assignment shows it.
//!
//! The lowest layer of the crate: plain values, no I/O.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// One replica of a volume: an export on a unit's blockd. The station's replica rows (`dvsan-host`'s
/// `replicas::resolve`) give these; so do explicit `--replica` options.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReplicaTarget {
    /// The unit's number in the station's pool (for explicit `--replica` options: the option's position, from 1).
    pub unit: u32,
    pub address: IpAddr,
    pub port: u16,
    pub export: String,
}

/// Why an `nbd://` address was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not nbd://IP:PORT/EXPORT: {why}")]
pub struct TargetParseError {
    pub input: String,
    pub why: &'static str,
}

impl ReplicaTarget {
    /// Parse `nbd://IP:PORT/EXPORT` (IPv6 in brackets; port 10809 when omitted).
    pub fn parse(unit: u32, uri: &str) -> Result<ReplicaTarget, TargetParseError> {
        let err = |why| TargetParseError { input: uri.to_string(), why };
        let rest = uri.strip_prefix("nbd://").ok_or_else(|| err("it must start with nbd://"))?;
        let (authority, export) = rest.split_once('/').ok_or_else(|| err("the export name is missing"))?;
        if export.is_empty() {
            return Err(err("the export name is empty"));
        }
        if export.contains(['?', '#']) {
            return Err(err("query strings are not supported"));
        }
        let address: SocketAddr = match authority.parse() {
            Ok(a) => a,
            Err(_) => {
                let ip: IpAddr = authority
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse()
                    .map_err(|_| err("the address is not IP or IP:PORT"))?;
                SocketAddr::new(ip, 10809)
            }
        };
        Ok(ReplicaTarget { unit, address: address.ip(), port: address.port(), export: export.to_string() })
    }

    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.address, self.port)
    }

    /// A name safe in a file name, for this replica's state files.
    pub fn file_key(&self) -> String {
        let raw = format!("{}-{}-{}", self.address, self.port, self.export);
        raw.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' }).collect()
    }
}

impl fmt::Display for ReplicaTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "nbd://{}/{}", self.socket_addr(), self.export)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let t = ReplicaTarget::parse(2, "nbd://127.0.0.21:10809/vol-3").unwrap();
        assert_eq!((t.unit, t.port, t.export.as_str()), (2, 10809, "vol-3"));
        assert_eq!(t.to_string(), "nbd://127.0.0.21:10809/vol-3");
        assert_eq!(ReplicaTarget::parse(1, "nbd://127.0.0.5/x").unwrap().port, 10809);
        assert_eq!(ReplicaTarget::parse(1, "nbd://[::1]:99/x").unwrap().socket_addr().to_string(), "[::1]:99");
        assert_eq!(t.file_key(), "127.0.0.21-10809-vol-3");
    }

    #[test]
    fn refuses_what_it_cannot_use() {
        for bad in ["127.0.0.1:1/x", "nbd://127.0.0.1:1", "nbd://127.0.0.1:1/", "nbd://host:1/x", "nbd://1.2.3.4/x?tls"]
        {
            assert!(ReplicaTarget::parse(1, bad).is_err(), "{bad}");
        }
    }
}
