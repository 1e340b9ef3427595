//! Consumers join at any moment and get the relay's book: for a sequenced
//! venue with checksums (OKX), a sequenced venue bootstrapped from a REST
//! snapshot (Binance spot) and an unsequenced one (Coinbase Exchange), fed
//! from recorded frames, consumers start before the first frame, mid-stream
//! and after the feed ended. At every step where a consumer calls its book
//! consistent, the book equals, level by level, the book the relay's own
//! `l2_orderbook` stream builds at the same update id (or relay mark); on
//! OKX the venue's checksum at that id matches it too.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::common::*;
use mdrelay::client::{BookFeed, Change, ClientError, FeedStats, JoinOptions, Position, SyncState};
use mdrelay::domain::{Level, Payload};
use mdrelay::engine::book::LocalBook;
use mdrelay::serialization::frames::OwnedFrame;
use mdrelay::tools::replay::ReplaySpec;
use tokio_util::sync::CancellationToken;

/// `[nats]` with the default config's two streams: the events, and the last
/// snapshot of each book.
pub(crate) fn nats_section(nats: &Nats) -> String {
    format!(
        "[nats]\nurls = [\"{}\"]\n\
         [[nats.streams]]\nname = \"MARKET\"\nsubjects = [\"market.*.*.trade\", \"market.*.*.ticker\", \
         \"market.*.*.l2_orderbook\", \"market.*.*.funding_rate\", \"market.*.*.liquidation\", \
         \"market.*.*.status\", \"market.*.*.l2_top\"]\nduplicate_window = \"2m\"\n\
         [[nats.streams]]\nname = \"MARKET_SNAPSHOTS\"\nsubjects = [\"market.*.*.l2_snapshot\"]\n\
         max_msgs_per_subject = 1\nallow_direct = true\n",
        nats.url()
    )
}

/// One book of a recorded feed.
#[derive(Clone, Copy)]
pub(crate) struct Case {
    pub venue: &'static str,
    pub instrument: &'static str,
    pub token: &'static str,
    /// Recorded frames (only the instrument's are served).
    pub frames: &'static str,
    /// Text identifying the instrument's frames.
    pub needle: &'static str,
    /// Frames per second from the fake venue.
    pub rate: f64,
}

pub(crate) const OKX: Case = Case {
    venue: "okx",
    instrument: "BTC-USDT",
    token: "btc-usdt",
    frames: "benches/data/okx.book.jsonl",
    needle: "\"instId\":\"BTC-USDT\"",
    rate: 25.0,
};

pub(crate) const BINANCE: Case = Case {
    venue: "binance-spot",
    instrument: "NKNUSDT",
    token: "nkn-usdt",
    frames: "benches/data/binance-spot.book.jsonl",
    needle: "\"s\":\"NKNUSDT\"",
    rate: 40.0,
};

pub(crate) const COINBASE: Case = Case {
    venue: "coinbase-exchange",
    instrument: "SKL-GBP",
    token: "skl-gbp",
    frames: "benches/data/coinbase-exchange.skl-gbp.book.jsonl",
    needle: "\"product_id\":\"SKL-GBP\"",
    rate: 50.0,
};

impl Case {
    pub(crate) fn frames(&self) -> Vec<OwnedFrame> {
        frames(&[self.frames])
            .into_iter()
            .filter(|f| matches!(f, OwnedFrame::Text(t) if t.contains(self.needle)))
            .collect()
    }

    /// The venue's part of the relay config (`url`, `rest_url`, the
    /// subscription with snapshots every `interval`).
    pub(crate) fn venue_section(&self, ws: &str, rest: Option<&str>, interval: &str) -> String {
        let rest = rest
            .map(|r| format!("rest_url = \"{r}\"\n"))
            .unwrap_or_default();
        format!(
            "[[venues]]\nid = \"{}\"\nurl = \"{ws}\"\n{rest}book_snapshot = {{ interval = \"{interval}\" }}\n\
             [[venues.subscriptions]]\ninstrument = \"{}\"\ntypes = [\"l2_orderbook\"]\n",
            self.venue, self.instrument
        )
    }
}

/// A consumer's book at one consistent step.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Step {
    pub position: Position,
    pub bids: Vec<Level>,
    pub asks: Vec<Level>,
}

fn step_of(position: Position, book: &LocalBook) -> Step {
    Step {
        position,
        bids: book.bids().copied().collect(),
        asks: book.asks().copied().collect(),
    }
}

/// What a consumer saw.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    /// Its book after every change that left it consistent (synced or
    /// replaying).
    pub steps: Vec<Step>,
    pub changes: Vec<Change>,
    pub stats: FeedStats,
    pub state: Option<SyncState>,
    /// The book at the end.
    pub last: Option<Step>,
}

/// Join `case`'s book (waiting up to `wait` for a first snapshot) and follow
/// it until `stop`, then until nothing changes for a second.
pub(crate) async fn follow(
    url: String,
    venue: &'static str,
    token: &'static str,
    wait: Duration,
    stop: CancellationToken,
) -> Result<Seen, ClientError> {
    let client = async_nats::connect(url).await.unwrap();
    let opts = JoinOptions {
        wait,
        ..JoinOptions::default()
    };
    let mut feed = BookFeed::join(&client, venue, token, opts).await?;
    let mut seen = Seen::default();
    let record = |feed: &BookFeed, seen: &mut Seen| {
        if feed.state() != SyncState::Stale
            && let Some(p) = feed.tracker().position()
        {
            seen.steps.push(step_of(p, feed.book()));
        }
    };
    record(&feed, &mut seen);
    loop {
        let change = tokio::select! {
            _ = stop.cancelled() => break,
            c = feed.next() => c?,
        };
        seen.changes.push(change);
        record(&feed, &mut seen);
    }
    while let Ok(c) = tokio::time::timeout(Duration::from_secs(1), feed.next()).await {
        seen.changes.push(c?);
        record(&feed, &mut seen);
    }
    seen.stats = feed.stats().clone();
    seen.state = Some(feed.state());
    seen.last = feed.tracker().position().map(|p| step_of(p, feed.book()));
    Ok(seen)
}

/// The relay's book after each of its stored `l2_orderbook` events of the
/// instrument, replayed from the first (by update id or mark), with the
/// venue's checksum of that event; and the last position.
pub(crate) async fn reference(
    nats: &Nats,
    case: Case,
) -> (HashMap<Position, (Step, Option<i64>)>, Position) {
    let subject = format!("market.{}.{}.l2_orderbook", case.venue, case.token);
    let stored = Stream::connect(nats, "MARKET").await.all_raw().await;
    let mut book = LocalBook::new();
    let mut out = HashMap::new();
    let mut last = None;
    for (subj, ct, payload) in stored {
        if subj != subject {
            continue;
        }
        // Skips what a test published there on purpose (bad payloads).
        let Ok(ev) = mdrelay::serialization::decode(ct.as_deref(), &payload) else {
            continue;
        };
        let Payload::Book(u) = &ev.payload else {
            continue;
        };
        book.apply(u, None);
        let p = match (u.mark, u.last_update_id) {
            (Some(m), _) => Position::Mark(m),
            (None, Some(id)) => Position::UpdateId(id),
            (None, None) => continue,
        };
        out.insert(p, (step_of(p, &book), u.checksum));
        last = Some(p);
    }
    (out, last.expect("the relay published the book"))
}

/// Every consistent step of `seen` equals the relay's book at its position,
/// and it ends synced at `last` with nothing stale or undecodable.
pub(crate) fn assert_matches(
    name: &str,
    seen: &Seen,
    reference: &HashMap<Position, (Step, Option<i64>)>,
    last: Position,
) {
    assert!(!seen.steps.is_empty(), "{name}: no consistent book");
    for s in &seen.steps {
        let (want, _) = reference
            .get(&s.position)
            .unwrap_or_else(|| panic!("{name}: position {:?} not in the stream", s.position));
        assert_eq!(s, want, "{name}: the book at {:?}", s.position);
    }
    assert_eq!(
        seen.state,
        Some(SyncState::Synced),
        "{name}: {:?}",
        seen.changes
    );
    assert_eq!(
        seen.last.as_ref().map(|s| s.position),
        Some(last),
        "{name}: caught up to the end"
    );
    assert_eq!(seen.stats.bad_payloads, 0, "{name}: {:?}", seen.stats);
    assert!(
        !seen.changes.iter().any(|c| matches!(c, Change::Stale(_))),
        "{name}: {:?}",
        seen.changes
    );
}

/// Run `case` with consumers joining before the first frame, mid-stream and
/// after the end; check each against the relay's book. Returns what the
/// consumers saw and the reference.
async fn late_joins(case: Case, rest: Option<&str>) -> (Nats, Vec<Seen>) {
    let nats = Nats::start();
    let frames = case.frames();
    let total = frames.len() as u64;
    let replay = Replay::start(
        ReplaySpec {
            frames,
            rate: Some(case.rate),
            ..Default::default()
        },
        None,
    )
    .await;
    let config = format!(
        "{}{}",
        nats_section(&nats),
        case.venue_section(&replay.url(), rest, "1s")
    );
    // The streams exist before the relay does anything, so that the first
    // consumer joins before the first frame: it waits for a snapshot.
    create_streams(&config).await;
    let stop = CancellationToken::new();
    let spawn = |wait| {
        tokio::spawn(follow(
            nats.url(),
            case.venue,
            case.token,
            wait,
            stop.clone(),
        ))
    };
    let early = spawn(Duration::from_secs(30));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !early.is_finished(),
        "the early consumer waits for a snapshot"
    );
    let relay = relay(&config).await;
    let stats = replay.stats.clone();
    wait_until(Duration::from_secs(30), "half the feed sent", || {
        stats.frames_sent.load(Ordering::Relaxed) >= total / 2
    })
    .await;
    let mid = spawn(Duration::ZERO);
    wait_until(Duration::from_secs(60), "the whole feed sent", || {
        stats.frames_sent.load(Ordering::Relaxed) >= total
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let late = spawn(Duration::ZERO);
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.cancel();
    let mut seen = Vec::new();
    for (name, task) in [("early", early), ("mid-stream", mid), ("late", late)] {
        let s = task
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        seen.push(s);
    }
    let (reference, last) = reference(&nats, case).await;
    for (name, s) in ["early", "mid-stream", "late"].iter().zip(&seen) {
        assert_matches(&format!("{} {name}", case.venue), s, &reference, last);
        eprintln!(
            "{} {name}: {} consistent steps checked, {} changes",
            case.venue,
            s.steps.len(),
            s.changes.len()
        );
    }
    // The early consumer followed the whole feed; the late one joined from
    // a snapshot taken after it and applied nothing.
    assert!(
        seen[0]
            .changes
            .iter()
            .filter(|c| matches!(c, Change::Applied(_)))
            .count()
            > 10
    );
    relay.shutdown().await;
    replay.stop().await;
    (nats, seen)
}

/// Create the config's streams as the relay would.
pub(crate) async fn create_streams(config: &str) {
    let path = root().join("config/test.toml");
    let text = format!(
        "venues_dir = \"{}\"\n{config}",
        root().join("venues").display()
    );
    let cfg = mdrelay::config::relay::compile_relay(&path, &text, |_| None).unwrap();
    let client = mdrelay::infrastructure::nats::connect(&cfg.nats, "test", false)
        .await
        .unwrap();
    let js = mdrelay::infrastructure::nats::jetstream(client, Duration::from_secs(5));
    mdrelay::infrastructure::streams::reconcile(&js, &cfg.nats.streams)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okx_late_joins_equal_the_relays_book_and_its_checksums() {
    let (nats, seen) = late_joins(OKX, None).await;
    let venue = mdrelay::config::venue::load_venue(&root().join("venues/okx.toml")).unwrap();
    let spec = venue.book.checksum.as_ref().unwrap();
    let (reference, _) = reference(&nats, OKX).await;
    let mut checked = 0;
    let mut buf = Vec::new();
    for s in seen.iter().flat_map(|s| &s.steps) {
        let Some((_, Some(want))) = reference.get(&s.position) else {
            continue;
        };
        let mut book = LocalBook::new();
        book.apply(
            &mdrelay::domain::BookUpdate {
                kind: mdrelay::domain::BookKind::Snapshot,
                bids: s.bids.clone(),
                asks: s.asks.clone(),
                first_update_id: None,
                last_update_id: None,
                prev_update_id: None,
                checksum: None,
                mark: None,
            },
            None,
        );
        assert_eq!(
            spec.compute(&book, None, &mut buf),
            *want,
            "checksum at {:?}",
            s.position
        );
        checked += 1;
    }
    assert!(checked > 50, "{checked} checksums");
    // A 400-level book on each side.
    assert_eq!(seen[2].last.as_ref().unwrap().asks.len(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binance_spot_late_joins_equal_the_relays_book() {
    let (rest, _) = crate::e2e_books::snapshot_server(crate::e2e_books::SPOT).await;
    late_joins(BINANCE, Some(&rest)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coinbase_exchange_late_joins_equal_the_relays_book_by_marks() {
    let (_, seen) = late_joins(COINBASE, None).await;
    assert!(matches!(
        seen[2].last.as_ref().unwrap().position,
        Position::Mark(_)
    ));
}
