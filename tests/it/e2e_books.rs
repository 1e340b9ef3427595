//! Order-book integrity end to end: Binance spot, USD-M and COIN-M
//! diff-depth deltas (recorded) and their REST snapshots (recorded in the
//! same sessions) served by a fake HTTP endpoint; the relay publishes, per
//! symbol, the snapshot then the deltas that follow it, contiguously, and a
//! dropped delta is detected, reported as a `gap` status event and resynced.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common;
use crate::common::*;
use axum::extract::{Query, State};
use axum::routing::get;
use mdrelay::serialization::frames::OwnedFrame;
use mdrelay::tools::replay::ReplaySpec;

pub(crate) type Requests = Arc<Mutex<HashMap<String, usize>>>;

/// A recorded diff-depth feed and its REST snapshots.
#[derive(Clone, Copy)]
pub(crate) struct Feed {
    venue: &'static str,
    /// Recorded depth frames (benches/data).
    frames: &'static str,
    /// The REST path of the depth snapshot.
    rest_path: &'static str,
    /// Futures rules: the first delta spans the snapshot id (`U <= id <= u`)
    /// and each delta's `pu` is the previous `u`; spot: `U <= id + 1 <= u`
    /// and `U` follows the previous `u`.
    futures: bool,
}

pub(crate) const SPOT: Feed = Feed {
    venue: "binance-spot",
    frames: "benches/data/binance-spot.book.jsonl",
    rest_path: "/api/v3/depth",
    futures: false,
};
const USDM: Feed = Feed {
    venue: "binance-usdm",
    frames: "benches/data/binance-usdm.book.jsonl",
    rest_path: "/fapi/v1/depth",
    futures: true,
};
const COINM: Feed = Feed {
    venue: "binance-coinm",
    frames: "benches/data/binance-coinm.book.jsonl",
    rest_path: "/dapi/v1/depth",
    futures: true,
};

/// A fake REST endpoint serving the recorded snapshots by symbol.
pub(crate) async fn snapshot_server(feed: Feed) -> (String, Requests) {
    let dir = root().join(format!("fixtures/{}/rest", feed.venue));
    let mut bodies = HashMap::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let sym = p.file_stem().unwrap().to_str().unwrap().to_owned();
        bodies.insert(sym, std::fs::read_to_string(&p).unwrap());
    }
    let requests: Requests = Arc::default();
    let state = (Arc::new(bodies), requests.clone());
    async fn depth(
        State((bodies, requests)): State<(Arc<HashMap<String, String>>, Requests)>,
        Query(q): Query<HashMap<String, String>>,
    ) -> (axum::http::StatusCode, String) {
        let sym = q.get("symbol").cloned().unwrap_or_default();
        *requests.lock().unwrap().entry(sym.clone()).or_default() += 1;
        match bodies.get(&sym) {
            Some(b) => (axum::http::StatusCode::OK, b.clone()),
            None => (
                axum::http::StatusCode::BAD_REQUEST,
                "{\"code\":-1121,\"msg\":\"Invalid symbol.\"}".into(),
            ),
        }
    }
    let app = axum::Router::new()
        .route(feed.rest_path, get(depth))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), requests)
}

fn config(nats: &Nats, feed: Feed, ws: &str, rest: &str, symbols: &[String]) -> String {
    let subs: String = symbols
        .iter()
        .map(|s| {
            format!("[[venues.subscriptions]]\ninstrument = \"{s}\"\ntypes = [\"l2_orderbook\"]\n")
        })
        .collect();
    format!(
        "[nats]\nurls = [\"{}\"]\n[[nats.streams]]\nname = \"MARKET\"\nsubjects = [\"market.>\"]\n[[venues]]\nid = \"{}\"\nurl = \"{ws}\"\nrest_url = \"{rest}\"\n{subs}",
        nats.url(),
        feed.venue
    )
}

/// The symbols with a recorded REST snapshot.
fn symbols(feed: Feed) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(root().join(format!("fixtures/{}/rest", feed.venue)))
            .unwrap()
            .map(|e| {
                e.unwrap()
                    .path()
                    .file_stem()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spot_rest_snapshots_bootstrap_consistent_books() {
    consistent_books(SPOT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usdm_rest_snapshots_bootstrap_consistent_books() {
    consistent_books(USDM).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coinm_rest_snapshots_bootstrap_consistent_books() {
    consistent_books(COINM).await;
}

async fn consistent_books(feed: Feed) {
    let nats = Nats::start();
    let (rest, requests) = snapshot_server(feed).await;
    let syms = symbols(feed);
    // Only the subscribed symbols' frames, as a venue would send.
    let frames: Vec<OwnedFrame> = frames(&[feed.frames])
        .into_iter()
        .filter(|f| {
            matches!(f, OwnedFrame::Text(t)
                if syms.iter().any(|s| t.contains(&format!("\"s\":\"{s}\""))))
        })
        .collect();
    let replay = Replay::start(
        ReplaySpec {
            frames,
            ..Default::default()
        },
        None,
    )
    .await;
    let relay = relay(&config(&nats, feed, &replay.url(), &rest, &syms)).await;
    let stream = Stream::connect(&nats, "MARKET").await;
    // Every symbol: its snapshot plus the recorded deltas after it.
    let metrics = relay.metrics.clone();
    wait_until(
        Duration::from_secs(30),
        "a snapshot published for every symbol",
        || {
            requests.lock().unwrap().len() == syms.len()
                && common::metric(
                    &metrics.encode(),
                    "mdrelay_events_published_total",
                    "l2_orderbook",
                ) > 0.0
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stored = stream.all().await;
    let mut per_symbol: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    for m in &stored {
        if m.subject.ends_with(".l2_orderbook") {
            per_symbol
                .entry(m.json["instrument"].as_str().unwrap().to_owned())
                .or_default()
                .push(m.json["data"].clone());
        }
        assert!(
            m.json["data"]["state"] != "gap",
            "unexpected gap: {}",
            m.json
        );
    }
    assert_eq!(
        per_symbol.keys().collect::<Vec<_>>(),
        syms.iter().collect::<Vec<_>>(),
        "every symbol has a book"
    );
    for (sym, events) in &per_symbol {
        let snap = &events[0];
        assert_eq!(snap["kind"], "snapshot", "{sym}: the snapshot comes first");
        let id = snap["last_update_id"].as_i64().unwrap();
        let mut bids: BTreeMap<rust_decimal::Decimal, rust_decimal::Decimal> = BTreeMap::new();
        let mut asks = bids.clone();
        let mut last = id;
        for (i, e) in events.iter().enumerate() {
            if i > 0 {
                assert_eq!(e["kind"], "delta", "{sym}");
                let (u_first, u_last) = (
                    e["first_update_id"].as_i64().unwrap(),
                    e["last_update_id"].as_i64().unwrap(),
                );
                if i == 1 {
                    let spans = if feed.futures {
                        u_first <= id && id <= u_last
                    } else {
                        u_first <= id + 1 && id < u_last
                    };
                    assert!(
                        spans,
                        "{sym}: first delta {u_first}..{u_last} spans snapshot {id}"
                    );
                } else if feed.futures {
                    assert_eq!(e["prev_update_id"].as_i64(), Some(last), "{sym}: pu links");
                } else {
                    assert_eq!(u_first, last + 1, "{sym}: contiguous");
                }
                last = u_last;
            }
            for (side, book) in [("bids", &mut bids), ("asks", &mut asks)] {
                for l in e[side].as_array().unwrap() {
                    let p: rust_decimal::Decimal = l[0].as_str().unwrap().parse().unwrap();
                    let q: rust_decimal::Decimal = l[1].as_str().unwrap().parse().unwrap();
                    if q.is_zero() {
                        book.remove(&p);
                    } else {
                        book.insert(p, q);
                    }
                }
            }
        }
        // The recorded deltas after the snapshot were all published (the
        // first one may end at the snapshot's id on futures).
        let recorded: usize = std::fs::read_to_string(root().join(feed.frames))
            .unwrap()
            .lines()
            .filter(|l| l.contains(&format!("\"s\":\"{sym}\"")))
            .filter(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                let u = v["data"]["u"].as_i64().unwrap();
                if feed.futures { u >= id } else { u > id }
            })
            .count();
        assert_eq!(
            events.len() - 1,
            recorded,
            "{sym}: every delta after the snapshot"
        );
        let (best_bid, best_ask) = (bids.keys().next_back(), asks.keys().next());
        if let (Some(b), Some(a)) = (best_bid, best_ask) {
            assert!(b < a, "{sym}: book crossed ({b} >= {a})");
        }
    }
    relay.shutdown().await;
    replay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spot_dropped_delta_is_a_gap_with_status_and_resync() {
    dropped_delta(SPOT, "NKNUSDT").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usdm_dropped_delta_is_a_gap_with_status_and_resync() {
    dropped_delta(USDM, "SUSHIUSDT").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coinm_dropped_delta_is_a_gap_with_status_and_resync() {
    dropped_delta(COINM, "BCHUSD_PERP").await;
}

async fn dropped_delta(feed: Feed, sym: &str) {
    let nats = Nats::start();
    let (rest, requests) = snapshot_server(feed).await;
    // The symbol's recorded deltas with the 40th left out.
    let needle = format!("\"s\":\"{sym}\"");
    let mut frames: Vec<OwnedFrame> = frames(&[feed.frames])
        .into_iter()
        .filter(|f| matches!(f, OwnedFrame::Text(t) if t.contains(&needle)))
        .collect();
    let dropped = frames.remove(40);
    let OwnedFrame::Text(dropped) = dropped else {
        unreachable!()
    };
    let replay = Replay::start(
        ReplaySpec {
            frames,
            rate: Some(200.0),
            ..Default::default()
        },
        None,
    )
    .await;
    let relay = relay(&config(
        &nats,
        feed,
        &replay.url(),
        &rest,
        &[sym.to_owned()],
    ))
    .await;
    let stream = Stream::connect(&nats, "MARKET").await;
    let metrics = relay.metrics.clone();
    wait_until(
        Duration::from_secs(20),
        "the gap is detected and counted",
        || common::metric(&metrics.encode(), "mdrelay_gaps_total", feed.venue) >= 1.0,
    )
    .await;
    wait_until(
        Duration::from_secs(10),
        "the snapshot is fetched again",
        || requests.lock().unwrap().get(sym).copied().unwrap_or(0) >= 2,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stored = stream.all().await;
    let gaps: Vec<_> = stored
        .iter()
        .filter(|m| {
            m.subject.ends_with(".status")
                && m.json["instrument"] == sym
                && m.json["data"]["state"] == "gap"
        })
        .collect();
    assert_eq!(gaps.len(), 1, "one gap status event");
    assert!(
        gaps[0].json["data"]["reason"]
            .as_str()
            .unwrap()
            .contains("sequence gap")
    );
    // Nothing after the hole was published as if the book were intact.
    let dropped_u = serde_json::from_str::<serde_json::Value>(&dropped).unwrap()["data"]["u"]
        .as_i64()
        .unwrap();
    let published_after: Vec<i64> = stored
        .iter()
        .filter(|m| m.subject.ends_with(".l2_orderbook"))
        .filter_map(|m| m.json["data"]["last_update_id"].as_i64())
        .filter(|u| *u > dropped_u)
        .collect();
    assert!(
        published_after.is_empty(),
        "deltas after the gap were held back: {published_after:?}"
    );
    assert!(common::metric(&metrics.encode(), "mdrelay_resyncs_total", feed.venue) >= 1.0);
    relay.shutdown().await;
    replay.stop().await;
}

/// `book_top` publishes the book the relay maintains as periodic top-N
/// snapshots (`l2_top`): each one equals the top levels of the book the
/// published `l2_orderbook` events build, as of its `last_update_id`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_n_snapshots_match_the_published_book() {
    const DEPTH: usize = 5;
    let (feed, sym) = (SPOT, "NKNUSDT");
    let nats = Nats::start();
    let (rest, _) = snapshot_server(feed).await;
    let needle = format!("\"s\":\"{sym}\"");
    let frames: Vec<OwnedFrame> = frames(&[feed.frames])
        .into_iter()
        .filter(|f| matches!(f, OwnedFrame::Text(t) if t.contains(&needle)))
        .collect();
    let replay = Replay::start(
        ReplaySpec {
            frames,
            rate: Some(100.0),
            ..Default::default()
        },
        None,
    )
    .await;
    let config = config(&nats, feed, &replay.url(), &rest, &[sym.to_owned()]).replace(
        "types = [\"l2_orderbook\"]\n",
        &format!(
            "types = [\"l2_orderbook\"]\nbook_top = {{ depth = {DEPTH}, interval = \"100ms\" }}\n"
        ),
    );
    let relay = relay(&config).await;
    let stream = Stream::connect(&nats, "MARKET").await;
    // 150 frames at 100/s: the feed lasts about 1.5 s.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stored = stream.all().await;
    type Side = BTreeMap<rust_decimal::Decimal, rust_decimal::Decimal>;
    let side = |v: &serde_json::Value| -> Vec<(rust_decimal::Decimal, rust_decimal::Decimal)> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    l[0].as_str().unwrap().parse().unwrap(),
                    l[1].as_str().unwrap().parse().unwrap(),
                )
            })
            .collect()
    };
    // The top-N of the published book after each update id.
    let (mut bids, mut asks) = (Side::new(), Side::new());
    let mut after: HashMap<i64, (Vec<_>, Vec<_>)> = HashMap::new();
    let mut tops = Vec::new();
    for m in &stored {
        let d = &m.json["data"];
        if m.subject == "market.binance-spot.nkn-usdt.l2_top" {
            tops.push(d.clone());
            continue;
        }
        if m.subject != "market.binance-spot.nkn-usdt.l2_orderbook" {
            continue;
        }
        if d["kind"] == "snapshot" {
            bids.clear();
            asks.clear();
        }
        for (name, book) in [("bids", &mut bids), ("asks", &mut asks)] {
            for (p, q) in side(&d[name]) {
                if q.is_zero() {
                    book.remove(&p);
                } else {
                    book.insert(p, q);
                }
            }
        }
        after.insert(
            d["last_update_id"].as_i64().unwrap(),
            (
                bids.iter()
                    .rev()
                    .take(DEPTH)
                    .map(|(p, q)| (*p, *q))
                    .collect(),
                asks.iter().take(DEPTH).map(|(p, q)| (*p, *q)).collect(),
            ),
        );
    }
    eprintln!("{} top snapshots checked", tops.len());
    assert!(tops.len() >= 5, "periodic snapshots ({})", tops.len());
    for t in &tops {
        assert_eq!(t["kind"], "snapshot");
        let id = t["last_update_id"].as_i64().unwrap();
        let want = after.get(&id).expect("a published update id");
        assert_eq!(side(&t["bids"]), want.0, "bids as of {id}");
        assert_eq!(side(&t["asks"]), want.1, "asks as of {id}");
        assert_eq!(want.0.len(), DEPTH, "a full top {DEPTH}");
    }
    let ids: std::collections::HashSet<i64> = tops
        .iter()
        .map(|t| t["last_update_id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        ids.len(),
        tops.len(),
        "an unchanged book is not republished"
    );
    relay.shutdown().await;
    replay.stop().await;
}
