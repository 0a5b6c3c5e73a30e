//! Addresses typed by operators: `IP`, `IP:PORT`, `[IPv6]:PORT`.
//!
//! Only literal IP addresses are accepted: units are identified by the source address of their notifications, so
//! a name that resolves differently later would register a unit that never matches.

use std::net::{IpAddr, SocketAddr};

/// Parses `IP`, `IP:PORT` or `[IPv6]:PORT`, using `default_port` when no port is given.
pub fn parse_address(text: &str, default_port: u16) -> Result<SocketAddr, String> {
    let text = text.trim();
    let bad = || {
        format!(
            "{text:?} is not an IP address or IP:PORT (for example 127.0.0.2, 127.0.0.2:1161 or [::1]:1161); \
             host names are not accepted"
        )
    };
    if let Ok(address) = text.parse::<SocketAddr>() {
        if address.port() == 0 {
            return Err(format!("{text:?}: port 0 is not a valid agent port"));
        }
        return Ok(address);
    }
    if let Ok(ip) = text.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, default_port));
    }
    Err(bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(parse_address("127.0.0.2", 1161), Ok("127.0.0.2:1161".parse().unwrap()));
        assert_eq!(parse_address(" 127.0.0.2:1170 ", 1161), Ok("127.0.0.2:1170".parse().unwrap()));
        assert_eq!(parse_address("::1", 1161), Ok("[::1]:1161".parse().unwrap()));
        assert_eq!(parse_address("[::1]:99", 1161), Ok("[::1]:99".parse().unwrap()));
        assert!(parse_address("unit-a.example", 1161).unwrap_err().contains("not an IP address"));
        assert!(parse_address("127.0.0.2:0", 1161).unwrap_err().contains("port 0"));
        assert!(parse_address("127.0.0.256", 1161).is_err());
        assert!(parse_address("", 1161).is_err());
    }
}
