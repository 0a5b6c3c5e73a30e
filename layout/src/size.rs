//! Human byte sizes: `80G`, `512M`, `4096`, `1.5T`.
//!
//! Operators type sizes on every command line (media, volumes, host requests); one parser gives them one
//! grammar and the same error text everywhere. Suffixes are binary (K = 1024), as storage tools use them.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a size: {why}; use a whole number of bytes or a number with K, M, G or T (binary units), e.g. 512M or 80G")]
pub struct SizeError {
    pub input: String,
    pub why: &'static str,
}

/// Parse a size in bytes. Zero is a valid size here; callers that need a positive size say so themselves.
pub fn parse_size(input: &str) -> Result<u64, SizeError> {
    let err = |why| SizeError { input: input.to_string(), why };
    let s = input.trim();
    let s = s.strip_suffix(['B', 'b']).filter(|r| r.ends_with(|c: char| c.is_ascii_alphabetic())).unwrap_or(s);
    let s = s.strip_suffix(['i']).unwrap_or(s);
    let (number, shift) = match s.chars().last() {
        Some(c) if c.is_ascii_digit() || c == '.' => (s, 0),
        Some('k' | 'K') => (&s[..s.len() - 1], 10),
        Some('m' | 'M') => (&s[..s.len() - 1], 20),
        Some('g' | 'G') => (&s[..s.len() - 1], 30),
        Some('t' | 'T') => (&s[..s.len() - 1], 40),
        Some('p' | 'P') => (&s[..s.len() - 1], 50),
        Some(_) => {
            return Err(err("unknown size suffix (valid: K, M, G, T, P, with an optional i and B, or none for bytes)"))
        }
        None => return Err(err("it is empty")),
    };
    if number.is_empty() || !number.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(err("the number is not a plain decimal number"));
    }
    let mult = 1u64 << shift;
    match number.split_once('.') {
        None => number.parse::<u64>().map_err(|_| err("too large"))?.checked_mul(mult).ok_or(err("too large")),
        Some((whole, frac)) => {
            if shift == 0 || frac.contains('.') || frac.is_empty() || frac.len() > 6 {
                return Err(err("fractions need a size suffix and at most 6 decimals"));
            }
            let whole: u64 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| err("too large"))? };
            let scale = 10u64.pow(frac.len() as u32);
            let frac: u64 = frac.parse().map_err(|_| err("bad fraction"))?;
            let total = u128::from(whole) * u128::from(mult) + u128::from(frac) * u128::from(mult) / u128::from(scale);
            u64::try_from(total).map_err(|_| err("too large"))
        }
    }
}

/// `value` bytes in the largest binary unit that keeps it at or above 1: (the scaled value, the unit's name `B`,
/// `KiB`, … `PiB`). Negative values count as 0.
pub fn binary_scale(value: f64) -> (f64, &'static str) {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = value.max(0.0);
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    (value, UNITS[unit])
}

/// A size for people: the largest binary unit that keeps it at or above 1, up to two decimals (`1.50 GiB`).
pub struct HumanSize(pub u64);

impl fmt::Display for HumanSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match binary_scale(self.0 as f64) {
            (_, "B") => write!(f, "{} B", self.0),
            (value, unit) => {
                let s = format!("{value:.2}");
                write!(f, "{} {unit}", s.trim_end_matches('0').trim_end_matches('.'))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("80G"), Ok(80 << 30));
        assert_eq!(parse_size("80GiB"), Ok(80 << 30));
        assert_eq!(parse_size("80gb"), Ok(80 << 30));
        assert_eq!(parse_size("1.5K"), Ok(1536));
        assert_eq!(parse_size(" 2T "), Ok(2 << 40));
        assert_eq!(parse_size("0"), Ok(0));
    }

    #[test]
    fn bad_sizes_say_why() {
        for bad in ["", "G", "12X", "-5", "1.5", "1..5G", "99999999999999999999", "16777216T", "1e9"] {
            let e = parse_size(bad).unwrap_err();
            assert!(e.to_string().contains("e.g. 512M"), "{bad}: {e}");
        }
        // "unit" means a SAN unit in dvsan: a bad suffix is called a suffix.
        let e = parse_size("12X").unwrap_err().to_string();
        assert!(e.contains("unknown size suffix") && !e.contains("unknown unit"), "{e}");
    }

    #[test]
    fn human() {
        assert_eq!(HumanSize(512).to_string(), "512 B");
        assert_eq!(HumanSize(1536).to_string(), "1.5 KiB");
        assert_eq!(HumanSize(80 << 30).to_string(), "80 GiB");
        assert_eq!(HumanSize(1023).to_string(), "1023 B");
        assert_eq!(HumanSize(3 << 50).to_string(), "3 PiB");
        assert_eq!(binary_scale(1536.0), (1.5, "KiB"));
        assert_eq!(binary_scale(-5.0), (0.0, "B"));
    }
}
