//! Converting expression results into canonical field values.

use rust_decimal::Decimal;

use crate::domain::{BookKind, Side, TimeUnit, Timestamp};
use crate::engine::expr::{V, parse_decimal};

/// A decimal from a number or numeric string; `null` and `""` are absent.
pub(super) fn decimal(v: &V<'_>) -> Result<Option<Decimal>, String> {
    match v {
        V::Null => Ok(None),
        V::Num(n) => parse_decimal(n)
            .map(Some)
            .ok_or_else(|| format!("number {n} does not fit a decimal")),
        V::Str(s) if s.is_empty() => Ok(None),
        V::Str(s) => parse_decimal(s.trim())
            .map(Some)
            .ok_or_else(|| format!("\"{s}\" is not a decimal number")),
        other => Err(format!("expected a number, got {}", other.kind().jq_name())),
    }
}

/// Text from a string or number; `null` is absent.
pub(super) fn text(v: &V<'_>) -> Result<Option<String>, String> {
    match v {
        V::Null => Ok(None),
        V::Str(s) => Ok(Some(s.to_string())),
        V::Num(n) => Ok(Some(n.to_string())),
        V::Bool(b) => Ok(Some(b.to_string())),
        other => Err(format!("expected a string, got {}", other.kind().jq_name())),
    }
}

/// A signed integer from a number or numeric string; `null` is absent.
pub(super) fn integer(v: &V<'_>) -> Result<Option<i64>, String> {
    let t = match v {
        V::Null => return Ok(None),
        V::Num(n) => n.as_ref(),
        V::Str(s) if s.is_empty() => return Ok(None),
        V::Str(s) => s.as_ref(),
        other => {
            return Err(format!(
                "expected an integer, got {}",
                other.kind().jq_name()
            ));
        }
    };
    t.parse::<i64>()
        .map(Some)
        .map_err(|_| format!("{t} is not a 64-bit integer"))
}

/// A time from a number / numeric string in `unit`, or an RFC 3339 string;
/// `null`, `""` and `0` are absent.
pub(super) fn time(v: &V<'_>, unit: TimeUnit) -> Result<Option<Timestamp>, String> {
    let t = match v {
        V::Null => return Ok(None),
        V::Num(n) => n.as_ref(),
        V::Str(s) if s.is_empty() => return Ok(None),
        V::Str(s) => s.as_ref(),
        other => return Err(format!("expected a time, got {}", other.kind().jq_name())),
    };
    if t == "0" {
        return Ok(None);
    }
    if t.bytes().next().is_some_and(|b| b.is_ascii_digit()) && !t.contains(['-', ':', 'T']) {
        return Timestamp::from_number_text(t, unit)
            .map(Some)
            .ok_or_else(|| format!("{t} is not a timestamp"));
    }
    Timestamp::from_rfc3339(t)
        .map(Some)
        .ok_or_else(|| format!("\"{t}\" is neither a number nor an RFC 3339 time"))
}

/// A side (see [`Side::parse`]).
pub(super) fn side(v: &V<'_>) -> Result<Side, String> {
    match v {
        V::Str(s) => {
            Side::parse(s).ok_or_else(|| format!("\"{s}\" is not a side (buy, sell, unknown)"))
        }
        other => Err(format!(
            "expected a side string, got {}",
            other.kind().jq_name()
        )),
    }
}

/// `snapshot` / `delta`.
pub(super) fn book_kind(v: &V<'_>) -> Result<BookKind, String> {
    match v {
        V::Str(s) if s == "snapshot" => Ok(BookKind::Snapshot),
        V::Str(s) if s == "delta" => Ok(BookKind::Delta),
        other => Err(format!(
            "expected \"snapshot\" or \"delta\", got {}",
            other.to_json()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        assert_eq!(
            decimal(&V::Str("0.35280000".into()))
                .unwrap()
                .unwrap()
                .to_string(),
            "0.35280000"
        );
        assert_eq!(decimal(&V::Str("".into())).unwrap(), None);
        assert_eq!(
            decimal(&V::Num("1e-8".into()))
                .unwrap()
                .unwrap()
                .to_string(),
            "0.00000001"
        );
        assert!(decimal(&V::Str("abc".into())).is_err());
        assert_eq!(integer(&V::Num("-1".into())).unwrap(), Some(-1));
        assert!(integer(&V::Num("1.5".into())).is_err());
        assert_eq!(
            time(&V::Str("1652459199958".into()), TimeUnit::Auto).unwrap(),
            Some(Timestamp(1_652_459_199_958_000_000))
        );
        assert_eq!(
            time(&V::Str("2021-04-17T12:00:00.5Z".into()), TimeUnit::Auto).unwrap(),
            Some(Timestamp(1_618_660_800_500_000_000))
        );
        assert_eq!(
            time(&V::Num("0".into()), TimeUnit::Millis).unwrap_or_default(),
            None
        );
        assert_eq!(side(&V::Str("Buy".into())).unwrap(), Side::Buy);
        assert!(side(&V::Bool(true)).is_err());
        assert_eq!(book_kind(&V::Str("delta".into())).unwrap(), BookKind::Delta);
    }
}
