//! Hot reload end to end: venue files and the relay config change under a
//! running relay (file watcher), with a real nats-server and fake venues.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::common;
use crate::common::*;
use mdrelay::application::relay::{RelayHandle, StartOptions, start};
use mdrelay::config::relay::load_relay;
use mdrelay::tools::replay::ReplaySpec;

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(venues: &[&str]) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("venues")).unwrap();
        for v in venues {
            std::fs::copy(
                root().join(format!("venues/{v}.toml")),
                dir.path().join(format!("venues/{v}.toml")),
            )
            .unwrap();
        }
        Setup { dir }
    }

    fn venues(&self) -> PathBuf {
        self.dir.path().join("venues")
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("relay.toml")
    }

    fn write_config(&self, text: &str) {
        std::fs::write(
            self.config(),
            format!("venues_dir = \"{}\"\n{text}", self.venues().display()),
        )
        .unwrap();
    }

    fn edit_venue(&self, id: &str, f: impl FnOnce(String) -> String) {
        let p = self.venues().join(format!("{id}.toml"));
        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, f(text)).unwrap();
    }

    async fn start(&self) -> (RelayHandle, impl Drop) {
        let cfg = load_relay(&self.config()).unwrap();
        let handle = start(
            cfg,
            StartOptions {
                http_listen: Some("127.0.0.1:0".parse().unwrap()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let watch = handle.watch_files(self.config(), self.venues()).unwrap();
        (handle, watch)
    }
}

fn nats_section(nats: &Nats) -> String {
    format!(
        "[nats]\nurls = [\"{}\"]\n[[nats.streams]]\nname = \"MARKET\"\nsubjects = [\"market.>\"]\n",
        nats.url()
    )
}

/// A venue entry subscribing every instrument the frames of `file` carry.
fn venue_section(id: &str, url: &str, file: &str, types: &str) -> String {
    format!(
        "[[venues]]\nid = \"{id}\"\nurl = \"{url}\"\n[venues.reconnect]\ninitial_delay = \"100ms\"\nmax_delay = \"200ms\"\n{}",
        subs_for(id, &[file], types)
    )
}

async fn last_reload(h: &RelayHandle) -> serde_json::Value {
    let (_, body) = http_get(h.http_addr, "/health").await;
    serde_json::from_str::<serde_json::Value>(&body).unwrap()["last_reload"].clone()
}

fn metric_of(h: &RelayHandle, name: &str, filter: &str) -> f64 {
    common::metric(&h.metrics.encode(), name, filter)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapping_change_applies_in_place_without_losing_or_duplicating_frames() {
    let nats = Nats::start();
    let frames = frames(&["benches/data/okx.book.jsonl"]);
    let total = frames.len();
    let replay = Replay::start(
        ReplaySpec {
            frames,
            rate: Some(150.0),
            ..Default::default()
        },
        None,
    )
    .await;
    let s = Setup::new(&["okx"]);
    s.write_config(
        &(nats_section(&nats)
            + &venue_section(
                "okx",
                &replay.url(),
                "benches/data/okx.book.jsonl",
                "\"l2_orderbook\"",
            )),
    );
    let (relay, _watch) = s.start().await;
    let stream = Stream::connect(&nats, "MARKET").await;
    wait_for_count(&stream, 100, Duration::from_secs(10)).await;
    // Change one mapping: recorded frames have no prevSeqId, so the new
    // mapping's default shows up in every event from now on.
    s.edit_venue("okx", |t| {
        t.replace(
            "prev_update_id = '.prevSeqId'",
            "prev_update_id = '.prevSeqId // 7'",
        )
    });
    let changed_at = Instant::now();
    let seen = loop {
        let stored = stream.all().await;
        if stored.iter().any(|m| m.json["data"]["prev_update_id"] == 7) {
            break changed_at.elapsed();
        }
        assert!(
            changed_at.elapsed() < Duration::from_secs(15),
            "new mapping never applied"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("new mapping visible {seen:?} after the file changed");
    // A liveness bound, not a speed figure (the reload gate maps the
    // fixtures in a debug build, slower on a loaded machine).
    assert!(seen < Duration::from_secs(10), "took {seen:?}");
    let reload = last_reload(&relay).await;
    assert_eq!(reload["ok"], true, "{reload}");
    assert!(
        reload["detail"].to_string().contains("in place"),
        "{reload}"
    );
    // Let the stream finish; every frame is in JetStream exactly once.
    let metrics = relay.metrics.clone();
    wait_until(Duration::from_secs(30), "all frames relayed", || {
        common::metric(&metrics.encode(), "mdrelay_frames_received_total", "okx") >= total as f64
            && common::metric(&metrics.encode(), "mdrelay_publish_in_flight", "") == 0.0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let books: Vec<_> = stream
        .all()
        .await
        .into_iter()
        .filter(|m| m.subject.ends_with(".l2_orderbook"))
        .collect();
    let mapped = metric_of(&relay, "mdrelay_events_mapped_total", "l2_orderbook") as usize;
    // Frames repeated verbatim in the recording map to the same id and are
    // stored once (JetStream reports them as duplicates).
    let duplicates = metric_of(&relay, "mdrelay_events_duplicate_total", "l2_orderbook") as usize;
    assert_eq!(
        books.len() + duplicates,
        mapped,
        "every mapped event stored once"
    );
    let ids: std::collections::HashSet<_> = books.iter().map(|m| &m.id).collect();
    assert_eq!(ids.len(), books.len(), "no duplicates");
    let old = books
        .iter()
        .filter(|m| m.json["data"]["prev_update_id"].is_null())
        .count();
    assert!(
        old > 0 && old < books.len(),
        "old mapping before, new after ({old} old of {})",
        books.len()
    );
    assert_eq!(
        replay.stats.connections.load(Ordering::Relaxed),
        1,
        "the connection stayed up"
    );
    assert_eq!(metric_of(&relay, "mdrelay_reconnects_total", "okx"), 0.0);
    relay.shutdown().await;
    replay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn added_broken_and_reconfigured_venues() {
    let nats = Nats::start();
    let okx = Replay::start(
        ReplaySpec {
            frames: frames(&["fixtures/okx/trades.jsonl"]),
            rate: Some(20.0),
            looped: true,
            ..Default::default()
        },
        None,
    )
    .await;
    let bfx_frames = frames(&["fixtures/bitfinex/trades.jsonl"]);
    let bfx = Replay::start(
        ReplaySpec {
            frames: bfx_frames.clone(),
            rate: Some(20.0),
            looped: true,
            ..Default::default()
        },
        None,
    )
    .await;
    let s = Setup::new(&["okx"]);
    let okx_venue = venue_section("okx", &okx.url(), "fixtures/okx/trades.jsonl", "\"trade\"");
    s.write_config(&(nats_section(&nats) + &okx_venue));
    let (relay, _watch) = s.start().await;
    let stream = Stream::connect(&nats, "MARKET").await;
    wait_for_count(&stream, 5, Duration::from_secs(10)).await;

    // 1. A venue file and its config entry appear: it starts.
    std::fs::copy(
        root().join("venues/bitfinex.toml"),
        s.venues().join("bitfinex.toml"),
    )
    .unwrap();
    let bfx_venue = venue_section(
        "bitfinex",
        &bfx.url(),
        "fixtures/bitfinex/trades.jsonl",
        "\"trade\"",
    );
    s.write_config(&(nats_section(&nats) + &okx_venue + &bfx_venue));
    wait_until(Duration::from_secs(10), "bitfinex started", || {
        common::metric(
            &relay.metrics.encode(),
            "mdrelay_frames_received_total",
            "bitfinex",
        ) > 0.0
    })
    .await;

    // 2. A broken venue file: the running version stays, /health says why.
    let before = metric_of(
        &relay,
        "mdrelay_events_mapped_total",
        "venue=\"okx\",data_type=\"trade\"",
    );
    s.edit_venue("okx", |t| t.replace("price = '.px'", "price = '.px | ('"));
    wait_until(Duration::from_secs(5), "reload refused", || {
        metric_of(&relay, "mdrelay_reload_failures_total", "") >= 1.0
    })
    .await;
    let reload = last_reload(&relay).await;
    assert_eq!(reload["ok"], false);
    assert!(
        reload["detail"].to_string().contains("okx.toml")
            && reload["detail"]
                .to_string()
                .contains("routes[0].fields.price"),
        "{reload}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        metric_of(
            &relay,
            "mdrelay_events_mapped_total",
            "venue=\"okx\",data_type=\"trade\""
        ) > before,
        "the old mapping keeps running"
    );
    // Fixing it applies it.
    s.edit_venue("okx", |t| t.replace("price = '.px | ('", "price = '.px'"));
    wait_until(Duration::from_secs(5), "reload applied again", || {
        metric_of(&relay, "mdrelay_reloads_total", "") >= 2.0
    })
    .await;

    // 3. One venue's URL changes: only that venue reconnects.
    let okx2 = Replay::start(
        ReplaySpec {
            frames: frames(&["fixtures/okx/trades.jsonl"]),
            rate: Some(20.0),
            looped: true,
            ..Default::default()
        },
        None,
    )
    .await;
    let bfx_connections = bfx.stats.connections.load(Ordering::Relaxed);
    let okx_moved = venue_section("okx", &okx2.url(), "fixtures/okx/trades.jsonl", "\"trade\"");
    s.write_config(&(nats_section(&nats) + &okx_moved + &bfx_venue));
    wait_until(
        Duration::from_secs(10),
        "okx connected to its new URL",
        || okx2.stats.connections.load(Ordering::Relaxed) >= 1,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        bfx.stats.connections.load(Ordering::Relaxed),
        bfx_connections,
        "bitfinex was not reconnected"
    );
    assert_eq!(okx.stats.connections.load(Ordering::Relaxed), 1);

    // 4. A process-level change is reported, not applied.
    let moved_nats = nats_section(&nats).replace("[nats]\n", "[nats]\nconnect_timeout = \"9s\"\n");
    s.write_config(&(moved_nats + &okx_moved + &bfx_venue));
    wait_until(Duration::from_secs(5), "restart-needed reported", || {
        last_reload_text(&relay).contains("restart needed")
    })
    .await;

    // 5. A removed venue stops, and its gauges go with it: a connections
    // series left at 0 would fire the "venue down" alert forever.
    let has_series = |name: &str| {
        relay
            .metrics
            .encode()
            .lines()
            .any(|l| l.starts_with(name) && l.contains("venue=\"bitfinex\""))
    };
    assert!(has_series("mdrelay_connections{"));
    let moved_nats = nats_section(&nats).replace("[nats]\n", "[nats]\nconnect_timeout = \"9s\"\n");
    s.write_config(&(moved_nats + &okx_moved));
    wait_until(Duration::from_secs(10), "bitfinex stopped", || {
        last_reload_text(&relay).contains("bitfinex: stopped")
    })
    .await;
    for gauge in [
        "mdrelay_connections{",
        "mdrelay_circuit_state{",
        "mdrelay_instruments_stale{",
    ] {
        assert!(!has_series(gauge), "{gauge} still has a bitfinex series");
    }
    assert!(
        has_series("mdrelay_frames_received_total{"),
        "counters stay"
    );
    relay.shutdown().await;
    okx.stop().await;
    okx2.stop().await;
    bfx.stop().await;
}

fn last_reload_text(h: &RelayHandle) -> String {
    h.health.report().1["last_reload"].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_save_and_a_renamed_route_key_are_refused_and_lose_nothing() {
    let nats = Nats::start();
    let replay = Replay::start(
        ReplaySpec {
            frames: frames(&["fixtures/okx/trades.jsonl"]),
            rate: Some(50.0),
            looped: true,
            ..Default::default()
        },
        None,
    )
    .await;
    let s = Setup::new(&["okx"]);
    let okx_venue = venue_section(
        "okx",
        &replay.url(),
        "fixtures/okx/trades.jsonl",
        "\"trade\"",
    );
    s.write_config(&format!(
        "fixtures_dir = \"{}\"\n{}{okx_venue}",
        root().join("fixtures").display(),
        nats_section(&nats)
    ));
    let (relay, _watch) = s.start().await;
    let stream = Stream::connect(&nats, "MARKET").await;
    wait_for_count(&stream, 20, Duration::from_secs(10)).await;
    let trades = || metric_of(&relay, "mdrelay_events_mapped_total", "data_type=\"trade\"");
    let original = std::fs::read_to_string(s.venues().join("okx.toml")).unwrap();

    // 1. A truncated save: valid TOML, every route gone.
    let cut = original.find("[[routes]]").unwrap();
    s.edit_venue("okx", |t| t[..cut].to_owned());
    wait_until(Duration::from_secs(10), "reload refused", || {
        metric_of(&relay, "mdrelay_reload_failures_total", "") >= 1.0
    })
    .await;
    let reload = last_reload(&relay).await;
    assert_eq!(reload["ok"], false, "{reload}");
    assert!(
        reload["detail"]
            .to_string()
            .contains("no route that maps trade"),
        "{reload}"
    );
    let at = trades();
    wait_until(Duration::from_secs(10), "trades keep flowing", || {
        trades() > at + 20.0
    })
    .await;

    // 2. A renamed route key: the file compiles, but the recorded trades
    // no longer map: the fixture gate refuses it.
    s.edit_venue("okx", |_| {
        original.replace(
            "key = [\"trades\", \"trades-all\"]",
            "key = [\"trade\", \"trades-all\"]",
        )
    });
    wait_until(Duration::from_secs(10), "second reload refused", || {
        metric_of(&relay, "mdrelay_reload_failures_total", "") >= 2.0
    })
    .await;
    let reload = last_reload(&relay).await;
    assert_eq!(reload["ok"], false, "{reload}");
    let detail = reload["detail"].to_string();
    assert!(
        detail.contains("recorded case `trades`") && detail.contains("--bless"),
        "{reload}"
    );
    let at = trades();
    wait_until(Duration::from_secs(10), "trades still flowing", || {
        trades() > at + 20.0
    })
    .await;
    assert_eq!(
        metric_of(&relay, "mdrelay_unrouted_frames_total", "okx"),
        0.0,
        "no frame fell through a refused mapping"
    );
    // Every recorded trade id is in the stream.
    let want: std::collections::HashSet<String> =
        std::fs::read_to_string(root().join("fixtures/okx/trades.expected.jsonl"))
            .unwrap()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["data_type"] == "trade")
            .map(|v| v["event_id"].as_str().unwrap().to_owned())
            .collect();
    let stored: std::collections::HashSet<String> =
        stream.all().await.into_iter().map(|m| m.id).collect();
    assert!(want.is_subset(&stored), "trades lost");
    relay.shutdown().await;
    replay.stop().await;
}

/// An edit of the relay config that only adds and removes instruments is
/// applied on the running connection: one `UNSUBSCRIBE`, one `SUBSCRIBE`,
/// no reconnect, and the instrument that stays loses no trade.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_edit_of_the_instruments_subscribes_them_on_the_running_connection() {
    let nats = Nats::start();
    let venue = Replay::start(
        ReplaySpec {
            frames: agg_trades(&["BTCUSDT", "ETHUSDT", "BCHUSDT"], 5_000),
            rate: Some(60.0),
            live: true,
            ..Default::default()
        },
        None,
    )
    .await;
    let s = Setup::new(&["binance-usdm"]);
    let section = |instruments: &[&str]| {
        let mut t = format!(
            "[[venues]]\nid = \"binance-usdm\"\nurl = \"{}\"\n",
            venue.url()
        );
        for i in instruments {
            t.push_str(&format!(
                "[[venues.subscriptions]]\ninstrument = \"{i}\"\ntypes = [\"trade\"]\n"
            ));
        }
        t
    };
    s.write_config(&(nats_section(&nats) + &section(&["BTCUSDT", "ETHUSDT"])));
    let (relay, _watch) = s.start().await;
    let stream = Stream::connect(&nats, "MARKET").await;
    let trades = |all: &[Stored], token: &str| -> Vec<u64> {
        let subject = format!("market.binance-usdm.{token}.trade");
        all.iter()
            .filter(|m| m.subject == subject)
            .map(|m| {
                m.json["data"]["trade_id"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches('a')
                    .parse()
                    .unwrap()
            })
            .collect()
    };
    let start = Instant::now();
    while trades(&stream.all().await, "eth-usdt_usdt").is_empty() {
        assert!(start.elapsed() < Duration::from_secs(20), "ETHUSDT streams");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    s.write_config(&(nats_section(&nats) + &section(&["BTCUSDT", "BCHUSDT"])));
    wait_until(Duration::from_secs(20), "BCHUSDT streams", || {
        last_reload_text(&relay).contains("in place")
    })
    .await;
    let listed = Instant::now();
    while trades(&stream.all().await, "bch-usdt_usdt").is_empty() {
        assert!(
            listed.elapsed() < Duration::from_secs(10),
            "BCHUSDT streams"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reload = last_reload_text(&relay);
    assert!(reload.contains("+1 -1 instruments"), "{reload}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let eth_then = trades(&stream.all().await, "eth-usdt_usdt").len();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut all = stream.all().await;
    assert_eq!(
        trades(&all, "eth-usdt_usdt").len(),
        eth_then,
        "ETHUSDT stopped"
    );
    assert_eq!(
        venue.stats.connections.load(Ordering::Relaxed),
        1,
        "no reconnect"
    );
    let texts: Vec<String> = venue
        .stats
        .texts
        .lock()
        .unwrap()
        .iter()
        .map(|(_, t)| t.clone())
        .collect();
    let one = |needle: &str, method: &str| {
        let hits: Vec<&String> = texts.iter().filter(|t| t.contains(needle)).collect();
        assert!(
            hits.iter()
                .any(|t| t.contains(method) && !t.contains("btcusdt")),
            "{method} {needle}: {texts:?}"
        );
    };
    one("bchusdt@aggTrade", "\"SUBSCRIBE\"");
    one("ethusdt@aggTrade", "\"UNSUBSCRIBE\"");
    // BTCUSDT's ids run without a hole from the first stored to the last
    // (once enough are stored to say so; at most 10 s more).
    let t0 = Instant::now();
    while trades(&all, "btc-usdt_usdt").len() <= 50 && t0.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        all = stream.all().await;
    }
    let mut btc = trades(&all, "btc-usdt_usdt");
    btc.sort_unstable();
    btc.dedup();
    assert!(btc.len() > 50, "{}", btc.len());
    assert_eq!(
        btc.last().unwrap() - btc[0] + 1,
        btc.len() as u64,
        "no BTCUSDT trade lost"
    );
    relay.shutdown().await;
    venue.stop().await;
}
