//! Timestamps and the units venues give them in.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A point in time, in nanoseconds since the Unix epoch (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

/// The unit of a numeric timestamp in a venue frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TimeUnit {
    /// Decide from the magnitude: < 1e11 seconds, < 1e14 milliseconds,
    /// < 1e17 microseconds, else nanoseconds (right for any date 1973–2286).
    #[default]
    Auto,
    /// Seconds (may carry a fraction, e.g. `1618677535.123`).
    #[serde(rename = "s")]
    Seconds,
    /// Milliseconds.
    #[serde(rename = "ms")]
    Millis,
    /// Microseconds.
    #[serde(rename = "us")]
    Micros,
    /// Nanoseconds.
    #[serde(rename = "ns")]
    Nanos,
}

impl Timestamp {
    /// The current wall-clock time. Only the runtime calls this; mappings get
    /// the receive time injected.
    pub fn now() -> Self {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(d.as_nanos() as i64)
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }

    /// Parse a numeric timestamp given as decimal text (`"1633998523963"`,
    /// `"1618677535.5"`) in `unit`. Returns `None` for text that is not a
    /// plain non-negative decimal number or that overflows.
    pub fn from_number_text(text: &str, unit: TimeUnit) -> Option<Self> {
        let (int_part, frac_part) = match text.split_once('.') {
            Some((i, f)) => (i, f),
            None => (text, ""),
        };
        if int_part.is_empty()
            || !int_part.bytes().all(|b| b.is_ascii_digit())
            || !frac_part.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let int: i64 = int_part.parse().ok()?;
        let unit = match unit {
            TimeUnit::Auto => match int {
                i if i < 100_000_000_000 => TimeUnit::Seconds,
                i if i < 100_000_000_000_000 => TimeUnit::Millis,
                i if i < 100_000_000_000_000_000 => TimeUnit::Micros,
                _ => TimeUnit::Nanos,
            },
            u => u,
        };
        let scale: i64 = match unit {
            TimeUnit::Seconds => 1_000_000_000,
            TimeUnit::Millis => 1_000_000,
            TimeUnit::Micros => 1_000,
            TimeUnit::Nanos | TimeUnit::Auto => 1,
        };
        let mut nanos = int.checked_mul(scale)?;
        // Fractional part, truncated below one nanosecond.
        let mut place = scale / 10;
        for digit in frac_part.bytes() {
            if place == 0 {
                break;
            }
            nanos = nanos.checked_add(i64::from(digit - b'0') * place)?;
            place /= 10;
        }
        Some(Timestamp(nanos))
    }

    /// Parse an RFC 3339 date-time such as `2021-10-12T00:28:43.963Z`.
    pub fn from_rfc3339(text: &str) -> Option<Self> {
        let dt = DateTime::parse_from_rfc3339(text).ok()?;
        dt.timestamp_nanos_opt().map(Timestamp)
    }

    /// RFC 3339 in UTC with 0, 3, 6 or 9 fractional digits, as needed
    /// (`2021-10-12T00:28:43.963Z`).
    pub fn to_rfc3339(self) -> String {
        let mut s = String::with_capacity(30);
        self.write_rfc3339(&mut s);
        s
    }

    /// Append [`Timestamp::to_rfc3339`] to `out` without going through
    /// `chrono`'s formatter (this runs twice per published JSON event).
    pub fn write_rfc3339(self, out: &mut String) {
        let secs = self.0.div_euclid(1_000_000_000);
        let nanos = self.0.rem_euclid(1_000_000_000) as u32;
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400) as u32;
        let (y, m, d) = civil_from_days(days);
        let two = |out: &mut String, v: u32| {
            out.push((b'0' + (v / 10) as u8) as char);
            out.push((b'0' + (v % 10) as u8) as char);
        };
        if (0..=9999).contains(&y) {
            let y = y as u32;
            two(out, y / 100);
            two(out, y % 100);
        } else {
            // Outside 0000–9999: let chrono do it.
            let dt: DateTime<Utc> = DateTime::from_timestamp_nanos(self.0);
            out.push_str(&dt.to_rfc3339_opts(SecondsFormat::AutoSi, true));
            return;
        }
        out.push('-');
        two(out, m);
        out.push('-');
        two(out, d);
        out.push('T');
        two(out, sod / 3600);
        out.push(':');
        two(out, sod / 60 % 60);
        out.push(':');
        two(out, sod % 60);
        let (frac, digits) = if nanos == 0 {
            (0, 0)
        } else if nanos.is_multiple_of(1_000_000) {
            (nanos / 1_000_000, 3)
        } else if nanos.is_multiple_of(1_000) {
            (nanos / 1_000, 6)
        } else {
            (nanos, 9)
        };
        if digits > 0 {
            out.push('.');
            let mut buf = [b'0'; 9];
            let mut v = frac;
            for i in (0..digits).rev() {
                buf[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
            out.push_str(std::str::from_utf8(&buf[..digits]).unwrap_or(""));
        }
        out.push('Z');
    }
}

/// Year, month, day of a count of days since 1970-01-01 (proleptic
/// Gregorian), after Howard Hinnant's `civil_from_days`.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// A duration for logs and messages, rounded to the millisecond and written
/// the humantime way: `844ms`, `2s 500ms`, `1m 30s` (not `843.666524ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub std::time::Duration);

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d > std::time::Duration::ZERO && d < std::time::Duration::from_millis(1) {
            return write!(f, "{}us", d.as_micros().max(1));
        }
        let ms = (d.as_nanos() + 500_000) / 1_000_000;
        let rounded = std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX));
        write!(f, "{}", humantime::format_duration(rounded))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_normalized_the_same_way() {
        let expected = Timestamp(1_633_998_523_963_000_000);
        for (text, unit) in [
            ("1633998523.963", TimeUnit::Seconds),
            ("1633998523963", TimeUnit::Millis),
            ("1633998523963000", TimeUnit::Micros),
            ("1633998523963000000", TimeUnit::Nanos),
            ("1633998523.963", TimeUnit::Auto),
            ("1633998523963", TimeUnit::Auto),
            ("1633998523963000", TimeUnit::Auto),
            ("1633998523963000000", TimeUnit::Auto),
        ] {
            assert_eq!(
                Timestamp::from_number_text(text, unit),
                Some(expected),
                "{text}"
            );
        }
        assert_eq!(
            Timestamp::from_rfc3339("2021-10-12T00:28:43.963Z"),
            Some(expected)
        );
        assert_eq!(expected.to_rfc3339(), "2021-10-12T00:28:43.963Z");
    }

    proptest::proptest! {
        #[test]
        fn fast_rfc3339_matches_chrono(ns in -2_000_000_000_000_000_000i64..4_000_000_000_000_000_000i64, unit in 0u32..4) {
            let ns = match unit { 0 => ns - ns % 1_000_000_000, 1 => ns - ns % 1_000_000, 2 => ns - ns % 1000, _ => ns };
            let dt: DateTime<Utc> = DateTime::from_timestamp_nanos(ns);
            proptest::prop_assert_eq!(Timestamp(ns).to_rfc3339(), dt.to_rfc3339_opts(SecondsFormat::AutoSi, true));
        }
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(Timestamp::from_number_text("-5", TimeUnit::Millis), None);
        assert_eq!(Timestamp::from_number_text("1e9", TimeUnit::Millis), None);
        assert_eq!(Timestamp::from_number_text("", TimeUnit::Millis), None);
        assert_eq!(
            Timestamp::from_number_text("99999999999999999999", TimeUnit::Nanos),
            None
        );
        assert_eq!(Timestamp::from_rfc3339("yesterday"), None);
    }

    #[test]
    fn durations_read_as_people_write_them() {
        use std::time::Duration;
        let h = |d| HumanDuration(d).to_string();
        assert_eq!(h(Duration::from_nanos(843_666_524)), "844ms");
        assert_eq!(h(Duration::from_millis(2_500)), "2s 500ms");
        assert_eq!(h(Duration::from_secs(90)), "1m 30s");
        assert_eq!(h(Duration::from_secs(10)), "10s");
        assert_eq!(h(Duration::from_micros(250)), "250us");
        assert_eq!(h(Duration::ZERO), "0s");
    }
}
