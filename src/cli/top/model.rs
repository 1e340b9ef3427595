//! What `mdrelay top` shows, computed from two scrapes: per venue rates
//! (counter increase over the time between the scrapes), latency quantiles
//! of the observations made between them (Prometheus `histogram_quantile`
//! on bucket increases), totals and health.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use super::health::HealthDoc;
use super::prom::{Sample, parse_value};

/// Metric names read from `/metrics` (docs/metrics.md).
pub(super) mod names {
    /// Frames read from venues (counter, venue).
    pub(crate) const FRAMES: &str = "mdrelay_frames_received_total";
    /// Events the mappings produced (counter, venue, data_type).
    pub(crate) const MAPPED: &str = "mdrelay_events_mapped_total";
    /// Events the relay made itself (counter, venue, data_type).
    pub(crate) const GENERATED: &str = "mdrelay_events_generated_total";
    /// Events stored by JetStream (counter, venue, data_type).
    pub(crate) const PUBLISHED: &str = "mdrelay_events_published_total";
    /// Events JetStream already had (counter, venue, data_type).
    pub(crate) const DUPLICATE: &str = "mdrelay_events_duplicate_total";
    /// Events not published (counter, venue, data_type, cause).
    pub(crate) const DROPPED: &str = "mdrelay_events_dropped_total";
    /// Gaps (counter, venue).
    pub(crate) const GAPS: &str = "mdrelay_gaps_total";
    /// Reconnects (counter, venue).
    pub(crate) const RECONNECTS: &str = "mdrelay_reconnects_total";
    /// Open connections (gauge, venue).
    pub(crate) const CONNECTIONS: &str = "mdrelay_connections";
    /// Stale instruments (gauge, venue, data_type).
    pub(crate) const STALE: &str = "mdrelay_instruments_stale";
    /// Publishes awaiting their ack (gauge).
    pub(crate) const IN_FLIGHT: &str = "mdrelay_publish_in_flight";
    /// Venue event time to receipt (histogram, venue, data_type).
    pub(crate) const LAG: &str = "mdrelay_venue_lag_seconds_bucket";
    /// Receipt to JetStream ack (histogram, venue, data_type).
    pub(crate) const ACK: &str = "mdrelay_ack_latency_seconds_bucket";
}

/// One scrape of the relay.
#[derive(Debug, Clone)]
pub(super) struct Scrape {
    /// When it was taken.
    pub at: Instant,
    /// `/metrics` samples.
    pub samples: Vec<Sample>,
    /// `/health`.
    pub health: HealthDoc,
}

/// Sum of `name`'s samples per venue (`None`: no sample of that name).
pub(super) fn sum_by_venue(samples: &[Sample], name: &str) -> Option<BTreeMap<String, f64>> {
    let mut out: Option<BTreeMap<String, f64>> = None;
    for s in samples.iter().filter(|s| s.name == name) {
        let map = out.get_or_insert_with(BTreeMap::new);
        if let Some(v) = s.label("venue") {
            *map.entry(v.to_owned()).or_default() += s.value;
        }
    }
    out
}

/// Sum of every sample of `name`.
pub(super) fn sum(samples: &[Sample], name: &str) -> Option<f64> {
    let mut out = None;
    for s in samples.iter().filter(|s| s.name == name) {
        *out.get_or_insert(0.0) += s.value;
    }
    out
}

/// Per second increase of a counter from `prev` to `cur` over `secs`; a
/// counter that went down was reset (the relay restarted), so its whole
/// value is the increase, as Prometheus' `rate` takes it.
pub(super) fn rate(prev: f64, cur: f64, secs: f64) -> f64 {
    let inc = if cur >= prev { cur - prev } else { cur };
    if secs > 0.0 { inc / secs } else { 0.0 }
}

/// A cumulative histogram: (upper bound, observations ≤ bound), bounds
/// ascending, the last one `+Inf`.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Histogram {
    /// Buckets.
    pub buckets: Vec<(f64, f64)>,
}

/// A quantile estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Quantile {
    /// Interpolated within a bucket, in the histogram's unit.
    Value(f64),
    /// In the `+Inf` bucket: above the largest finite bound.
    Above(f64),
}

impl Histogram {
    /// The histograms of `name` (a `_bucket` series) per venue, data types
    /// added up.
    pub(super) fn by_venue(samples: &[Sample], name: &str) -> BTreeMap<String, Histogram> {
        let mut acc: BTreeMap<String, BTreeMap<u64, (f64, f64)>> = BTreeMap::new();
        for s in samples.iter().filter(|s| s.name == name) {
            let (Some(venue), Some(le)) = (s.label("venue"), s.label("le").and_then(parse_value))
            else {
                continue;
            };
            // Order by bound: positive floats order like their bits.
            let slot = acc
                .entry(venue.to_owned())
                .or_default()
                .entry(le.max(0.0).to_bits())
                .or_insert((le, 0.0));
            slot.1 += s.value;
        }
        acc.into_iter()
            .map(|(v, b)| {
                let buckets = b.into_values().collect();
                (v, Histogram { buckets })
            })
            .collect()
    }

    /// Observations in total.
    pub(super) fn count(&self) -> f64 {
        self.buckets.last().map_or(0.0, |b| b.1)
    }

    /// The observations made since `older` (bucket by bucket; a histogram
    /// that went down was reset, and counts whole).
    pub(super) fn since(&self, older: Option<&Histogram>) -> Histogram {
        let Some(older) = older else {
            return self.clone();
        };
        if older.count() > self.count() {
            return self.clone();
        }
        let buckets = self
            .buckets
            .iter()
            .map(|&(le, n)| {
                // Cumulative: what the older one had up to this bound.
                let before = older
                    .buckets
                    .iter()
                    .rev()
                    .find(|b| b.0 <= le)
                    .map_or(0.0, |b| b.1);
                (le, (n - before).max(0.0))
            })
            .collect();
        Histogram { buckets }
    }

    /// The `q` quantile (0..=1), interpolated linearly within its bucket
    /// as Prometheus' `histogram_quantile` does; `None` without
    /// observations.
    pub(super) fn quantile(&self, q: f64) -> Option<Quantile> {
        let total = self.count();
        if total <= 0.0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total;
        let i = self.buckets.iter().position(|b| b.1 >= rank)?;
        let (upper, cum) = self.buckets[i];
        let (lower, below) = if i == 0 {
            (0.0, 0.0)
        } else {
            self.buckets[i - 1]
        };
        if upper.is_infinite() {
            return (i > 0).then_some(Quantile::Above(lower));
        }
        let inside = cum - below;
        if inside <= 0.0 {
            return Some(Quantile::Value(upper));
        }
        Some(Quantile::Value(
            lower + (upper - lower) * (rank - below) / inside,
        ))
    }
}

/// p50 and p99 of the observations between two scrapes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct Latency {
    /// Median.
    pub p50: Option<Quantile>,
    /// 99th percentile.
    pub p99: Option<Quantile>,
}

impl Latency {
    fn of(h: &Histogram) -> Latency {
        Latency {
            p50: h.quantile(0.5),
            p99: h.quantile(0.99),
        }
    }
}

/// One venue's row.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct VenueRow {
    /// Venue id.
    pub venue: String,
    /// Health status (`None`: not in `/health`).
    pub status: Option<String>,
    /// Connections up, and listed (`None`: not in `/health`).
    pub conns: (u64, Option<u64>),
    /// Frames received per second (`None`: one scrape only).
    pub frames_per_s: Option<f64>,
    /// Events made per second: mapped and generated.
    pub events_per_s: Option<f64>,
    /// Venue lag.
    pub lag: Latency,
    /// Relay latency: receipt to JetStream ack.
    pub ack: Latency,
    /// Gaps so far.
    pub gaps: u64,
    /// Reconnects so far.
    pub reconnects: u64,
    /// Stale (instrument, data type) pairs (`None`: the relay does not
    /// export the gauge).
    pub stale: Option<u64>,
}

/// Whole-relay figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Totals {
    /// Frames per second.
    pub frames_per_s: Option<f64>,
    /// Events made per second.
    pub events_per_s: Option<f64>,
    /// Events stored per second.
    pub published_per_s: Option<f64>,
    /// Events acknowledged as duplicates per second.
    pub duplicate_per_s: Option<f64>,
    /// Events dropped per second (every cause).
    pub dropped_per_s: Option<f64>,
    /// Publishes awaiting their ack.
    pub in_flight: Option<f64>,
}

/// Everything on the screen but the instruments.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Overview {
    /// Relay status.
    pub status: Option<String>,
    /// NATS state.
    pub nats: Option<String>,
    /// Seconds between the two scrapes (`None`: one scrape).
    pub window_s: Option<f64>,
    /// Totals.
    pub totals: Totals,
    /// Venues, by id.
    pub venues: Vec<VenueRow>,
}

fn venue_rate(prev: Option<&Scrape>, cur: &Scrape, names: &[&str], venue: &str) -> Option<f64> {
    let prev = prev?;
    let secs = cur.at.duration_since(prev.at).as_secs_f64();
    let get = |s: &Scrape| -> f64 {
        names
            .iter()
            .filter_map(|n| sum_by_venue(&s.samples, n))
            .filter_map(|m| m.get(venue).copied())
            .sum()
    };
    Some(rate(get(prev), get(cur), secs))
}

fn total_rate(prev: Option<&Scrape>, cur: &Scrape, names: &[&str]) -> Option<f64> {
    let prev = prev?;
    let secs = cur.at.duration_since(prev.at).as_secs_f64();
    let get = |s: &Scrape| -> f64 { names.iter().filter_map(|n| sum(&s.samples, n)).sum() };
    Some(rate(get(prev), get(cur), secs))
}

/// The venues of a scrape: those in `/health` and those with metrics.
fn venue_ids(cur: &Scrape) -> BTreeSet<String> {
    let mut ids: BTreeSet<String> = cur.health.venues.keys().cloned().collect();
    for s in cur.samples.iter().filter(|s| s.name == names::FRAMES) {
        if let Some(v) = s.label("venue") {
            ids.insert(v.to_owned());
        }
    }
    ids
}

/// Build the overview from the previous scrape (if any) and the current one.
pub(super) fn overview(prev: Option<&Scrape>, cur: &Scrape) -> Overview {
    let counter = |name: &str| sum_by_venue(&cur.samples, name).unwrap_or_default();
    let (gaps, reconnects, open) = (
        counter(names::GAPS),
        counter(names::RECONNECTS),
        counter(names::CONNECTIONS),
    );
    let stale = sum_by_venue(&cur.samples, names::STALE);
    let lag_now = Histogram::by_venue(&cur.samples, names::LAG);
    let ack_now = Histogram::by_venue(&cur.samples, names::ACK);
    let (lag_before, ack_before) = prev.map_or_else(Default::default, |p| {
        (
            Histogram::by_venue(&p.samples, names::LAG),
            Histogram::by_venue(&p.samples, names::ACK),
        )
    });
    let latency =
        |now: &BTreeMap<String, Histogram>, before: &BTreeMap<String, Histogram>, venue: &str| {
            now.get(venue)
                .map(|h| Latency::of(&h.since(prev.and(before.get(venue)))))
                .unwrap_or_default()
        };
    let venues = venue_ids(cur)
        .into_iter()
        .map(|venue| {
            let health = cur.health.venues.get(&venue);
            let conns = match health {
                Some(h) => (
                    h.connections.iter().filter(|c| c.is_up()).count() as u64,
                    Some(h.connections.len() as u64),
                ),
                None => (open.get(&venue).copied().unwrap_or(0.0) as u64, None),
            };
            VenueRow {
                status: health.and_then(|h| h.status.clone()),
                conns,
                frames_per_s: venue_rate(prev, cur, &[names::FRAMES], &venue),
                events_per_s: venue_rate(prev, cur, &[names::MAPPED, names::GENERATED], &venue),
                lag: latency(&lag_now, &lag_before, &venue),
                ack: latency(&ack_now, &ack_before, &venue),
                gaps: gaps.get(&venue).copied().unwrap_or(0.0) as u64,
                reconnects: reconnects.get(&venue).copied().unwrap_or(0.0) as u64,
                stale: stale
                    .as_ref()
                    .map(|m| m.get(&venue).copied().unwrap_or(0.0) as u64),
                venue,
            }
        })
        .collect();
    Overview {
        status: cur.health.status.clone(),
        nats: cur.health.nats.state.clone(),
        window_s: prev.map(|p| cur.at.duration_since(p.at).as_secs_f64()),
        totals: Totals {
            frames_per_s: total_rate(prev, cur, &[names::FRAMES]),
            events_per_s: total_rate(prev, cur, &[names::MAPPED, names::GENERATED]),
            published_per_s: total_rate(prev, cur, &[names::PUBLISHED]),
            duplicate_per_s: total_rate(prev, cur, &[names::DUPLICATE]),
            dropped_per_s: total_rate(prev, cur, &[names::DROPPED]),
            in_flight: sum(&cur.samples, names::IN_FLIGHT),
        },
        venues,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::cli::top::prom::parse;

    fn hist(b: &[(f64, f64)]) -> Histogram {
        Histogram {
            buckets: b.to_vec(),
        }
    }

    fn value(q: Option<Quantile>) -> f64 {
        match q {
            Some(Quantile::Value(v)) => v,
            other => panic!("not a value: {other:?}"),
        }
    }

    #[test]
    fn quantiles_interpolate_within_their_bucket() {
        // 10 observations ≤ 1, 10 more in (1, 2], none above.
        let h = hist(&[(1.0, 10.0), (2.0, 20.0), (4.0, 20.0), (f64::INFINITY, 20.0)]);
        assert_eq!(value(h.quantile(0.25)), 0.5);
        assert_eq!(value(h.quantile(0.5)), 1.0);
        assert_eq!(value(h.quantile(0.75)), 1.5);
        assert!((value(h.quantile(0.99)) - 1.98).abs() < 1e-12);
    }

    #[test]
    fn a_quantile_in_the_inf_bucket_is_above_the_last_bound() {
        let h = hist(&[(1.0, 1.0), (2.0, 1.0), (f64::INFINITY, 100.0)]);
        assert_eq!(h.quantile(0.5), Some(Quantile::Above(2.0)));
        assert_eq!(value(h.quantile(0.01)), 1.0);
        let only_inf = hist(&[(f64::INFINITY, 3.0)]);
        assert_eq!(only_inf.quantile(0.5), None);
    }

    #[test]
    fn no_observations_give_no_quantile() {
        assert_eq!(
            hist(&[(1.0, 0.0), (f64::INFINITY, 0.0)]).quantile(0.5),
            None
        );
        assert_eq!(Histogram::default().quantile(0.99), None);
    }

    #[test]
    fn since_keeps_only_the_new_observations() {
        let old = hist(&[(1.0, 100.0), (2.0, 100.0), (f64::INFINITY, 100.0)]);
        let new = hist(&[(1.0, 100.0), (2.0, 110.0), (f64::INFINITY, 110.0)]);
        let d = new.since(Some(&old));
        assert_eq!(
            d.buckets,
            vec![(1.0, 0.0), (2.0, 10.0), (f64::INFINITY, 10.0)]
        );
        assert_eq!(value(d.quantile(0.5)), 1.5);
        // A reset histogram counts whole.
        assert_eq!(old.since(Some(&new)), old);
    }

    #[test]
    fn rates_are_increases_per_second_and_survive_a_reset() {
        assert_eq!(rate(100.0, 150.0, 2.0), 25.0);
        assert_eq!(rate(100.0, 30.0, 1.0), 30.0);
        assert_eq!(rate(1.0, 2.0, 0.0), 0.0);
    }

    #[test]
    fn buckets_of_data_types_add_up_per_venue_in_bound_order() {
        let s = parse(
            "h_bucket{venue=\"a\",data_type=\"trade\",le=\"0.5\"} 1\n\
             h_bucket{venue=\"a\",data_type=\"trade\",le=\"+Inf\"} 2\n\
             h_bucket{venue=\"a\",data_type=\"ticker\",le=\"+Inf\"} 5\n\
             h_bucket{venue=\"a\",data_type=\"ticker\",le=\"0.5\"} 4\n\
             h_bucket{venue=\"b\",data_type=\"trade\",le=\"0.5\"} 0\n",
        )
        .unwrap();
        let h = Histogram::by_venue(&s, "h_bucket");
        assert_eq!(h["a"].buckets, vec![(0.5, 5.0), (f64::INFINITY, 7.0)]);
        assert_eq!(h["b"].buckets, vec![(0.5, 0.0)]);
    }

    fn scrape(at: Instant, metrics: &str, health: &str) -> Scrape {
        Scrape {
            at,
            samples: parse(metrics).unwrap(),
            health: serde_json::from_str(health).unwrap(),
        }
    }

    #[test]
    fn the_overview_has_rates_latencies_and_health_per_venue() {
        let t0 = Instant::now();
        let health = r#"{"status":"healthy","nats":{"state":"connected"},"venues":{
            "a":{"status":"healthy","connections":[{"state":"connected"},{"state":"reconnecting"}]}}}"#;
        let before = scrape(
            t0,
            "mdrelay_frames_received_total{venue=\"a\"} 100\n\
             mdrelay_events_mapped_total{venue=\"a\",data_type=\"trade\"} 50\n\
             mdrelay_ack_latency_seconds_bucket{venue=\"a\",data_type=\"trade\",le=\"0.001\"} 10\n\
             mdrelay_ack_latency_seconds_bucket{venue=\"a\",data_type=\"trade\",le=\"+Inf\"} 10\n\
             mdrelay_frames_received_total{venue=\"b\"} 7\n",
            health,
        );
        let after = scrape(
            t0 + Duration::from_secs(2),
            "mdrelay_frames_received_total{venue=\"a\"} 300\n\
             mdrelay_events_mapped_total{venue=\"a\",data_type=\"trade\"} 90\n\
             mdrelay_events_generated_total{venue=\"a\",data_type=\"status\"} 2\n\
             mdrelay_ack_latency_seconds_bucket{venue=\"a\",data_type=\"trade\",le=\"0.001\"} 10\n\
             mdrelay_ack_latency_seconds_bucket{venue=\"a\",data_type=\"trade\",le=\"0.002\"} 20\n\
             mdrelay_ack_latency_seconds_bucket{venue=\"a\",data_type=\"trade\",le=\"+Inf\"} 20\n\
             mdrelay_gaps_total{venue=\"a\"} 3\n\
             mdrelay_reconnects_total{venue=\"a\"} 1\n\
             mdrelay_connections{venue=\"b\"} 1\n\
             mdrelay_frames_received_total{venue=\"b\"} 7\n",
            health,
        );
        let o = overview(Some(&before), &after);
        assert_eq!(o.status.as_deref(), Some("healthy"));
        assert_eq!(o.totals.frames_per_s, Some(100.0));
        let a = &o.venues[0];
        assert_eq!(a.venue, "a");
        assert_eq!(a.conns, (1, Some(2)));
        assert_eq!(a.frames_per_s, Some(100.0));
        assert_eq!(a.events_per_s, Some(21.0));
        // The 10 observations of the window all lie in (0.001, 0.002].
        assert_eq!(value(a.ack.p50), 0.0015);
        assert_eq!(a.lag, Latency::default());
        assert_eq!((a.gaps, a.reconnects, a.stale), (3, 1, None));
        let b = &o.venues[1];
        assert_eq!(
            (b.venue.as_str(), b.conns, b.status.as_deref()),
            ("b", (1, None), None)
        );
        assert_eq!(b.frames_per_s, Some(0.0));
        // One scrape: no rates yet, latencies over everything so far.
        let first = overview(None, &after);
        assert_eq!(first.venues[0].frames_per_s, None);
        assert!(first.venues[0].ack.p50.is_some());
    }

    #[test]
    fn stale_counts_are_zero_for_venues_missing_from_a_present_gauge() {
        let s = scrape(
            Instant::now(),
            "mdrelay_instruments_stale{venue=\"a\",data_type=\"trade\"} 2\n\
             mdrelay_instruments_stale{venue=\"a\",data_type=\"ticker\"} 1\n\
             mdrelay_frames_received_total{venue=\"a\"} 1\n\
             mdrelay_frames_received_total{venue=\"b\"} 1\n",
            "{}",
        );
        let o = overview(None, &s);
        assert_eq!(o.venues[0].stale, Some(3));
        assert_eq!(o.venues[1].stale, Some(0));
    }
}
