//! RFC 2579 (SNMPv2-TC) DateAndTime: the calendar time value that MIB objects carry as 8 octets (local time) or
//! 11 octets (with the direction, hours and minutes from UTC), converted to and from Unix time.

use std::fmt;

/// One DateAndTime value, as its fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateAndTime {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    /// 0..=60 (60 for a leap second).
    pub second: u8,
    /// Tenths of a second, 0..=9.
    pub deci_seconds: u8,
    /// The offset from UTC (`b'+'` or `b'-'`, hours, minutes); `None` for the 8-octet form.
    pub utc_offset: Option<(u8, u8, u8)>,
}

/// Why octets are not a DateAndTime.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DateAndTimeError {
    #[error("a DateAndTime is 8 or 11 octets, not {0}")]
    Length(usize),
    #[error("DateAndTime {field} {value} is out of range {range}")]
    Field { field: &'static str, value: u8, range: &'static str },
    #[error("DateAndTime direction from UTC is '+' or '-', not byte {0:#04x}")]
    Direction(u8),
}

impl DateAndTime {
    /// The UTC calendar time (with an explicit +00:00 offset) of Unix milliseconds; years clamp to 0..=65535.
    pub fn from_unix_millis(ms: i64) -> DateAndTime {
        let secs = ms.div_euclid(1000);
        let day_secs = secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
        DateAndTime {
            year: year.clamp(0, 65_535) as u16,
            month,
            day,
            hour: (day_secs / 3600) as u8,
            minute: ((day_secs % 3600) / 60) as u8,
            second: (day_secs % 60) as u8,
            deci_seconds: (ms.rem_euclid(1000) / 100) as u8,
            utc_offset: Some((b'+', 0, 0)),
        }
    }

    /// The octets: 11 with an offset from UTC, 8 without.
    pub fn encode(&self) -> Vec<u8> {
        let [hi, lo] = self.year.to_be_bytes();
        let mut out = vec![hi, lo, self.month, self.day, self.hour, self.minute, self.second, self.deci_seconds];
        if let Some((direction, hours, minutes)) = self.utc_offset {
            out.extend([direction, hours, minutes]);
        }
        out
    }

    /// Reads 8 or 11 octets, checking every field's range.
    pub fn decode(bytes: &[u8]) -> Result<DateAndTime, DateAndTimeError> {
        if bytes.len() != 8 && bytes.len() != 11 {
            return Err(DateAndTimeError::Length(bytes.len()));
        }
        let field = |field, value: u8, low, high, range| {
            if (low..=high).contains(&value) {
                Ok(value)
            } else {
                Err(DateAndTimeError::Field { field, value, range })
            }
        };
        let utc_offset = if bytes.len() == 11 {
            if bytes[8] != b'+' && bytes[8] != b'-' {
                return Err(DateAndTimeError::Direction(bytes[8]));
            }
            Some((
                bytes[8],
                field("hours from UTC", bytes[9], 0, 13, "0..13")?,
                field("minutes from UTC", bytes[10], 0, 59, "0..59")?,
            ))
        } else {
            None
        };
        Ok(DateAndTime {
            year: u16::from_be_bytes([bytes[0], bytes[1]]),
            month: field("month", bytes[2], 1, 12, "1..12")?,
            day: field("day", bytes[3], 1, 31, "1..31")?,
            hour: field("hour", bytes[4], 0, 23, "0..23")?,
            minute: field("minutes", bytes[5], 0, 59, "0..59")?,
            second: field("seconds", bytes[6], 0, 60, "0..60")?,
            deci_seconds: field("deci-seconds", bytes[7], 0, 9, "0..9")?,
            utc_offset,
        })
    }

    /// Unix seconds (whole; the tenths are in `deci_seconds`). The 8-octet form, whose zone is unknown, is read
    /// as UTC.
    pub fn unix_seconds(&self) -> i64 {
        let local = days_from_civil(i64::from(self.year), self.month, self.day) * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second);
        match self.utc_offset {
            // The time is local with this offset from UTC; take it away to get UTC.
            Some((direction, hours, minutes)) => {
                let offset = i64::from(hours) * 3600 + i64::from(minutes) * 60;
                if direction == b'-' {
                    local + offset
                } else {
                    local - offset
                }
            }
            None => local,
        }
    }
}

/// RFC 3339 in UTC with tenths (`2026-11-22T10:00:01.2Z`), as the station prints times.
impl fmt::Display for DateAndTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let utc = DateAndTime::from_unix_millis(self.unix_seconds() * 1000 + i64::from(self.deci_seconds) * 100);
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{}Z",
            utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.deci_seconds
        )
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u8, day: u8) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_millis_encode_as_utc_calendar_time() {
        assert_eq!(DateAndTime::from_unix_millis(0).encode(), [0x07, 0xb2, 1, 1, 0, 0, 0, 0, b'+', 0, 0]);
        // 2026-11-22T10:20:30.4Z
        let ms = 1_795_342_830_400;
        assert_eq!(DateAndTime::from_unix_millis(ms).encode(), [0x07, 0xea, 11, 22, 10, 20, 30, 4, b'+', 0, 0]);
        // A leap day, and a time before 1970.
        assert_eq!(&DateAndTime::from_unix_millis(1_709_164_800_000).encode()[..4], [0x07, 0xe8, 2, 29]);
        assert_eq!(DateAndTime::from_unix_millis(-1).encode(), [0x07, 0xb1, 12, 31, 23, 59, 59, 9, b'+', 0, 0]);
    }

    #[test]
    fn decode_reads_both_forms_and_the_offset() {
        let utc = [0x07, 0xEA, 11, 22, 10, 0, 0, 0, b'+', 0, 0];
        assert_eq!(DateAndTime::decode(&utc).unwrap().unix_seconds(), 1_795_341_600);
        let plus_two = [0x07, 0xEA, 11, 22, 12, 0, 0, 0, b'+', 2, 0];
        assert_eq!(DateAndTime::decode(&plus_two).unwrap().unix_seconds(), 1_795_341_600);
        let minus_one_thirty = [0x07, 0xEA, 11, 22, 8, 30, 0, 0, b'-', 1, 30];
        assert_eq!(DateAndTime::decode(&minus_one_thirty).unwrap().unix_seconds(), 1_795_341_600);
        assert_eq!(DateAndTime::decode(&[0x07, 0xB2, 1, 1, 0, 0, 0, 0]).unwrap().unix_seconds(), 0);
    }

    #[test]
    fn round_trip() {
        for ms in [0, 1_795_342_830_400, 1_709_164_800_000, 4_102_444_799_900] {
            let value = DateAndTime::from_unix_millis(ms);
            let back = DateAndTime::decode(&value.encode()).unwrap();
            assert_eq!(back, value);
            assert_eq!(back.unix_seconds() * 1000 + i64::from(back.deci_seconds) * 100, ms);
        }
    }

    #[test]
    fn malformed_octets_say_what_is_wrong() {
        assert_eq!(DateAndTime::decode(&[]), Err(DateAndTimeError::Length(0)));
        let err = DateAndTime::decode(&[0x07, 0xEA, 13, 22, 10, 0, 0, 0]).unwrap_err();
        assert_eq!(err, DateAndTimeError::Field { field: "month", value: 13, range: "1..12" });
        assert_eq!(err.to_string(), "DateAndTime month 13 is out of range 1..12");
        assert_eq!(
            DateAndTime::decode(&[0x07, 0xEA, 11, 22, 10, 0, 0, 0, b'*', 0, 0]),
            Err(DateAndTimeError::Direction(b'*'))
        );
        assert!(DateAndTime::decode(&[0x07, 0xEA, 11, 22, 10, 0, 0, 10]).is_err());
    }

    #[test]
    fn display_is_rfc3339_in_utc_with_tenths() {
        let plus_two = [0x07, 0xEA, 11, 22, 12, 0, 1, 2, b'+', 2, 0];
        assert_eq!(DateAndTime::decode(&plus_two).unwrap().to_string(), "2026-11-22T10:00:01.2Z");
        let new_year = [0x07, 0xEA, 12, 31, 23, 30, 0, 0, b'-', 1, 0];
        assert_eq!(DateAndTime::decode(&new_year).unwrap().to_string(), "2027-01-01T00:30:00.0Z");
    }
}
