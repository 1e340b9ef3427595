//! Mapping cost per frame, for the captures in `benches/data` and every
//! venue's `capture-*.jsonl` in the shared corpus, and a hand-written serde
//! mapper for the Binance trade and depth frames as the reference point in
//! the same run.
//!
//! Each iteration maps one frame (cycling through the file), so criterion's
//! "time" is nanoseconds per frame.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use criterion::{Criterion, criterion_group};
use rust_decimal::Decimal;
use serde::Deserialize;

use mdrelay::config::venue::load_venue;
use mdrelay::domain::{
    BookKind, BookUpdate, Event, EventId, Instrument, Level, Payload, Side, Timestamp, Trade,
};
use mdrelay::engine::mapper::{Mapper, RawFrame};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn lines(file: &str) -> Vec<String> {
    std::fs::read_to_string(root().join("benches/data").join(file))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

fn bench_engine(c: &mut Criterion, venue: &str, file: &str, filter: impl Fn(&str) -> bool) {
    let v = load_venue(&root().join("venues").join(format!("{venue}.toml"))).unwrap();
    let frames: Vec<String> = lines(file).into_iter().filter(|l| filter(l)).collect();
    let mut mapper = Mapper::new(v.id.clone(), None, Default::default());
    // Warm the context (channel ids) and the symbol cache once.
    let mut out = Vec::new();
    for f in &frames {
        let _ = mapper.map(&v, RawFrame::Text(f), Timestamp(1), &mut out);
        out.clear();
    }
    let mut i = 0usize;
    c.bench_function(&format!("map/{file}"), |b| {
        b.iter(|| {
            let f = &frames[i % frames.len()];
            i += 1;
            out.clear();
            let r = mapper.map(&v, RawFrame::Text(f), Timestamp(1), &mut out);
            std::hint::black_box((&r, out.len()));
        })
    });
}

// ---- the hand-written reference: typed serde for Binance frames ----

#[derive(Deserialize)]
struct Wrapped<'a, T> {
    #[serde(borrow)]
    #[allow(dead_code)]
    stream: &'a str,
    data: T,
}

#[derive(Deserialize)]
struct AggTrade<'a> {
    #[serde(rename = "s")]
    symbol: &'a str,
    #[serde(rename = "a")]
    id: u64,
    #[serde(rename = "p")]
    price: &'a str,
    #[serde(rename = "q")]
    qty: &'a str,
    #[serde(rename = "T")]
    time: i64,
    #[serde(rename = "m")]
    maker: bool,
}

#[derive(Deserialize)]
struct Depth<'a> {
    #[serde(rename = "s")]
    symbol: &'a str,
    #[serde(rename = "E")]
    time: i64,
    #[serde(rename = "U")]
    first: i64,
    #[serde(rename = "u")]
    last: i64,
    #[serde(rename = "b", borrow)]
    bids: Vec<[&'a str; 2]>,
    #[serde(rename = "a", borrow)]
    asks: Vec<[&'a str; 2]>,
}

fn instrument(symbol: &str) -> Arc<Instrument> {
    Arc::new(Instrument::new(symbol, symbol))
}

fn hand_trade(frame: &str, venue: &Arc<str>, inst: &Arc<Instrument>) -> Event {
    let w: Wrapped<AggTrade> = serde_json::from_str(frame).unwrap();
    let t = w.data;
    let id = format!("a{}", t.id);
    Event {
        venue: venue.clone(),
        instrument: inst.clone(),
        exchange_time: Some(Timestamp(t.time * 1_000_000)),
        receive_time: Timestamp(1),
        id: EventId::new(venue, mdrelay::domain::DataType::Trade, t.symbol, &id),
        payload: Payload::Trade(Trade {
            price: Decimal::from_str(t.price).unwrap(),
            quantity: Decimal::from_str(t.qty).unwrap(),
            side: if t.maker { Side::Sell } else { Side::Buy },
            trade_id: Some(id),
        }),
    }
}

fn levels(ls: &[[&str; 2]]) -> Vec<Level> {
    ls.iter()
        .map(|[p, q]| Level {
            price: Decimal::from_str(p).unwrap(),
            quantity: Decimal::from_str(q).unwrap(),
        })
        .collect()
}

fn hand_depth(frame: &str, venue: &Arc<str>, inst: &Arc<Instrument>) -> Event {
    let w: Wrapped<Depth> = serde_json::from_str(frame).unwrap();
    let d = w.data;
    Event {
        venue: venue.clone(),
        instrument: inst.clone(),
        exchange_time: Some(Timestamp(d.time * 1_000_000)),
        receive_time: Timestamp(1),
        id: EventId::new(
            venue,
            mdrelay::domain::DataType::L2Orderbook,
            d.symbol,
            &format!("d{}", d.last),
        ),
        payload: Payload::Book(BookUpdate {
            kind: BookKind::Delta,
            bids: levels(&d.bids),
            asks: levels(&d.asks),
            first_update_id: Some(d.first),
            last_update_id: Some(d.last),
            prev_update_id: None,
            checksum: None,
            mark: None,
        }),
    }
}

fn bench_reference(c: &mut Criterion) {
    let venue: Arc<str> = Arc::from("binance-spot");
    let inst = instrument("X");
    let trades: Vec<String> = lines("binance-spot.trades.jsonl")
        .into_iter()
        .filter(|l| l.contains("@aggTrade"))
        .collect();
    let depth: Vec<String> = lines("binance-spot.book.jsonl")
        .into_iter()
        .filter(|l| l.contains("depthUpdate"))
        .collect();
    let mut i = 0usize;
    c.bench_function("reference/serde_parse_only/aggTrade", |b| {
        b.iter(|| {
            i += 1;
            let w: Wrapped<AggTrade> = serde_json::from_str(&trades[i % trades.len()]).unwrap();
            std::hint::black_box(w.data.price);
        })
    });
    c.bench_function("reference/serde_handwritten/aggTrade", |b| {
        b.iter(|| {
            i += 1;
            std::hint::black_box(hand_trade(&trades[i % trades.len()], &venue, &inst));
        })
    });
    c.bench_function("reference/serde_parse_only/depthUpdate", |b| {
        b.iter(|| {
            i += 1;
            let w: Wrapped<Depth> = serde_json::from_str(&depth[i % depth.len()]).unwrap();
            std::hint::black_box(w.data.bids.len());
        })
    });
    let mut parser = mdrelay::engine::json::Parser::new();
    c.bench_function("engine/tape_parse_only/aggTrade", |b| {
        b.iter(|| {
            i += 1;
            let v = parser.parse(&trades[i % trades.len()]).unwrap();
            std::hint::black_box(v.len());
        })
    });
    c.bench_function("engine/tape_parse_only/depthUpdate", |b| {
        b.iter(|| {
            i += 1;
            let v = parser.parse(&depth[i % depth.len()]).unwrap();
            std::hint::black_box(v.len());
        })
    });
    c.bench_function("reference/serde_handwritten/depthUpdate", |b| {
        b.iter(|| {
            i += 1;
            std::hint::black_box(hand_depth(&depth[i % depth.len()], &venue, &inst));
        })
    });
}

/// Every `capture-*.jsonl` of the shared corpus (`../shared/corpus` or
/// `$MDRELAY_CORPUS`) through its venue file: ns per frame for each venue.
fn bench_corpus(c: &mut Criterion) {
    use mdrelay::application::fixture::{FrameLine, OwnedFrame, parse_frame_line, read_cases_file};
    use mdrelay::tools::captures::capture_files;
    let corpus = std::env::var_os("MDRELAY_CORPUS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/corpus"));
    if !corpus.join("MANIFEST.md").exists() {
        eprintln!(
            "no corpus at {}: corpus captures not benchmarked",
            corpus.display()
        );
        return;
    }
    let (venues, _) = mdrelay::config::venue::load_venues_dir(&root().join("venues"));
    for (id, v) in &venues {
        let fixtures = root().join("fixtures").join(id);
        let cases = read_cases_file(&fixtures).unwrap_or_default();
        for path in capture_files(&corpus, id) {
            let stem = path.file_stem().unwrap().to_str().unwrap().to_owned();
            let options = cases.captures.get(&stem);
            let market = options.and_then(|o| o.market.clone());
            let mut mapper = Mapper::new(v.id.clone(), market, Default::default());
            let mut out = Vec::new();
            if let Some(pre) = options.and_then(|o| o.preamble.as_deref()) {
                for line in std::fs::read_to_string(fixtures.join(pre)).unwrap().lines() {
                    if let FrameLine::Frame(f) = parse_frame_line(line) {
                        let _ = mapper.map(v, f.as_raw(), Timestamp(1), &mut out);
                        out.clear();
                    }
                }
            }
            let frames: Vec<OwnedFrame> = std::fs::read_to_string(&path)
                .unwrap()
                .lines()
                .filter_map(|l| match parse_frame_line(l) {
                    FrameLine::Frame(f) => Some(f),
                    _ => None,
                })
                .collect();
            if frames.is_empty() {
                continue;
            }
            let mut i = 0usize;
            c.bench_function(&format!("corpus/{id}/{stem}"), |b| {
                b.iter(|| {
                    let f = &frames[i % frames.len()];
                    i += 1;
                    out.clear();
                    let r = mapper.map(v, f.as_raw(), Timestamp(1), &mut out);
                    let _ = mapper.take_gap();
                    std::hint::black_box((&r, out.len()));
                })
            });
        }
    }
}

fn bench_all(c: &mut Criterion) {
    bench_reference(c);
    // The same frames through the engine, for the ratio.
    bench_engine(c, "binance-spot", "binance-spot.trades.jsonl", |l| {
        l.contains("@aggTrade")
    });
    bench_engine(c, "binance-spot", "binance-spot.book.jsonl", |l| {
        l.contains("depthUpdate")
    });
    bench_engine(c, "binance-spot", "binance-spot.bbo.jsonl", |_| true);
    bench_engine(c, "okx", "okx.book.jsonl", |_| true);
    bench_engine(c, "bitfinex", "bitfinex.book.jsonl", |l| {
        !l.contains("\"event\"")
    });
    bench_corpus(c);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = bench_all
}

/// Time `n` calls of `f` (cycling through the frames), in ns per call.
fn per_call(n: usize, mut f: impl FnMut(usize)) -> f64 {
    let t = std::time::Instant::now();
    for i in 0..n {
        f(i);
    }
    t.elapsed().as_nanos() as f64 / n as f64
}

/// The engine / hand-written ratio measured in interleaved rounds (the two
/// alternate every few milliseconds), so a machine whose speed drifts
/// during the run, as this shared 2-core box does by up to 2x, slows both
/// sides alike. Prints the median ratio and its spread over the rounds.
fn paired_ratios() {
    const ROUNDS: usize = 41;
    const CALLS: usize = 2_000;
    let venue: Arc<str> = Arc::from("binance-spot");
    let inst = instrument("X");
    let v = load_venue(&root().join("venues/binance-spot.toml")).unwrap();
    let mut mapper = Mapper::new(v.id.clone(), None, Default::default());
    let mut out = Vec::new();
    for (name, file, marker) in [
        ("aggTrade", "binance-spot.trades.jsonl", "@aggTrade"),
        ("depthUpdate", "binance-spot.book.jsonl", "depthUpdate"),
    ] {
        let frames: Vec<String> = lines(file)
            .into_iter()
            .filter(|l| l.contains(marker))
            .collect();
        let hand = |i: usize| {
            let f = &frames[i % frames.len()];
            if name == "aggTrade" {
                std::hint::black_box(hand_trade(f, &venue, &inst));
            } else {
                std::hint::black_box(hand_depth(f, &venue, &inst));
            }
        };
        let mut engine = |i: usize| {
            out.clear();
            let r = mapper.map(
                &v,
                RawFrame::Text(&frames[i % frames.len()]),
                Timestamp(1),
                &mut out,
            );
            std::hint::black_box((&r, out.len()));
        };
        per_call(CALLS, hand);
        per_call(CALLS, &mut engine);
        let mut ratios: Vec<(f64, f64, f64)> = (0..ROUNDS)
            .map(|round| {
                let (h, e) = if round % 2 == 0 {
                    let h = per_call(CALLS, hand);
                    (h, per_call(CALLS, &mut engine))
                } else {
                    let e = per_call(CALLS, &mut engine);
                    (per_call(CALLS, hand), e)
                };
                (e / h, e, h)
            })
            .collect();
        ratios.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (median, engine_ns, hand_ns) = ratios[ROUNDS / 2];
        println!(
            "paired/{name}: engine / hand-written = {median:.2}x (median of {ROUNDS} interleaved rounds; \
             that round {engine_ns:.0} ns vs {hand_ns:.0} ns; rounds ranged {:.2}x to {:.2}x)",
            ratios[0].0,
            ratios[ROUNDS - 1].0
        );
    }
}

fn main() {
    benches();
    // With a name filter (`cargo bench --bench mapping -- <filter>`), only
    // when the filter asks for it.
    // `cargo test` runs benches without `--bench`: no timing then.
    let bench = std::env::args().any(|a| a == "--bench");
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    if bench
        && filter
            .as_deref()
            .is_none_or(|f| "paired".contains(f) || f.contains("paired"))
    {
        paired_ratios();
    }
    Criterion::default().configure_from_args().final_summary();
}
