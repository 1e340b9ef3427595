//! Short, ASCII-only cell text: rates, latencies, ages, counts.

use super::model::Quantile;

/// A per-second rate: `0`, `3.2`, `870`, `12.3k`, `1.20M`; `-` when unknown.
pub(super) fn rate(r: Option<f64>) -> String {
    match r {
        None => "-".into(),
        Some(r) if r <= 0.0 => "0".into(),
        Some(r) if r < 10.0 => format!("{r:.1}"),
        Some(r) if r < 10_000.0 => format!("{r:.0}"),
        Some(r) if r < 1_000_000.0 => format!("{:.1}k", r / 1e3),
        Some(r) => format!("{:.2}M", r / 1e6),
    }
}

/// Seconds as `420us`, `3.5ms`, `45ms`, `1.25s`, `72s`.
pub(super) fn seconds(s: f64) -> String {
    if s < 0.001 {
        format!("{:.0}us", s * 1e6)
    } else if s < 0.01 {
        format!("{:.1}ms", s * 1e3)
    } else if s < 1.0 {
        format!("{:.0}ms", s * 1e3)
    } else if s < 10.0 {
        format!("{s:.2}s")
    } else {
        format!("{s:.0}s")
    }
}

/// A latency quantile; `-` without observations, `>65s` above the largest
/// bucket.
pub(super) fn quantile(q: Option<Quantile>) -> String {
    match q {
        None => "-".into(),
        Some(Quantile::Value(v)) => seconds(v),
        Some(Quantile::Above(v)) => format!(">{}", seconds(v)),
    }
}

/// An age in milliseconds: `40ms`, `5.2s`, `3m10s`, `2h05m`.
pub(super) fn age_ms(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{:.1}s", ms as f64 / 1e3),
        60_000..3_600_000 => format!("{}m{:02}s", ms / 60_000, ms / 1_000 % 60),
        _ => format!("{}h{:02}m", ms / 3_600_000, ms / 60_000 % 60),
    }
}

/// An optional count: `n/a` when unknown.
pub(super) fn count(n: Option<u64>) -> String {
    n.map_or_else(|| "n/a".into(), |n| n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_short() {
        assert_eq!(rate(None), "-");
        assert_eq!(rate(Some(0.0)), "0");
        assert_eq!(rate(Some(3.21)), "3.2");
        assert_eq!(rate(Some(870.4)), "870");
        assert_eq!(rate(Some(12_345.0)), "12.3k");
        assert_eq!(rate(Some(1_200_000.0)), "1.20M");
        assert_eq!(seconds(0.000_42), "420us");
        assert_eq!(seconds(0.0035), "3.5ms");
        assert_eq!(seconds(0.045), "45ms");
        assert_eq!(seconds(1.25), "1.25s");
        assert_eq!(quantile(Some(Quantile::Above(65.536))), ">66s");
        assert_eq!(quantile(None), "-");
        assert_eq!(age_ms(40), "40ms");
        assert_eq!(age_ms(5_210), "5.2s");
        assert_eq!(age_ms(190_000), "3m10s");
        assert_eq!(age_ms(7_500_000), "2h05m");
        assert_eq!(count(None), "n/a");
    }
}
