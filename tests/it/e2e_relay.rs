//! End to end: a real nats-server, the fake venue serving recorded frames,
//! and the relay in between.

use std::collections::HashSet;
use std::time::Duration;

use crate::common;
use crate::common::*;
use mdrelay::tools::replay::ReplaySpec;

fn config(nats: &Nats, venue: &str, url: &str, subs: &str) -> String {
    format!(
        r#"
[nats]
urls = ["{}"]
[nats.publish]
ack_timeout = "2s"
[[nats.streams]]
name = "MARKET"
subjects = ["market.>"]
storage = "file"
duplicate_window = "2m"
[[venues]]
id = "{venue}"
url = "{url}"
[venues.reconnect]
initial_delay = "100ms"
max_delay = "500ms"
{subs}
"#,
        nats.url()
    )
}

/// `config` with `[nats.publish] writer` set.
fn config_with_writer(nats: &Nats, venue: &str, url: &str, subs: &str, writer: &str) -> String {
    config(nats, venue, url, subs).replace(
        "[nats.publish]\n",
        &format!("[nats.publish]\nwriter = \"{writer}\"\n"),
    )
}

/// Expected events of a fixture case, without the receive time.
fn expected_events(venue: &str, case: &str, data_type: &str) -> Vec<serde_json::Value> {
    let text =
        std::fs::read_to_string(root().join(format!("fixtures/{venue}/{case}.expected.jsonl")))
            .unwrap();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["data_type"] == data_type)
        .map(|mut v| {
            v.as_object_mut().unwrap().remove("receive_time");
            v
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_with_values_subjects_and_headers() {
    let nats = Nats::start();
    let replay = Replay::start(
        ReplaySpec {
            frames: frames(&["fixtures/okx/trades.jsonl"]),
            ..Default::default()
        },
        None,
    )
    .await;
    let files = ["fixtures/okx/trades.jsonl"];
    let subs = subs_for("okx", &files, "\"trade\"");
    let instruments = common::instruments("okx", None, &files).len() as u64;
    let relay = relay(&config(&nats, "okx", &replay.url(), &subs)).await;
    let stream = Stream::connect(&nats, "MARKET").await;
    let want = expected_events("okx", "trades", "trade");
    // Every trade, plus one `connected` status event per instrument.
    let n = wait_for_count(
        &stream,
        want.len() as u64 + instruments,
        Duration::from_secs(15),
    )
    .await;
    assert_eq!(n, want.len() as u64 + instruments);
    let stored = stream.all().await;
    let trades: Vec<_> = stored
        .iter()
        .filter(|m| m.subject.ends_with(".trade"))
        .collect();
    assert_eq!(trades.len(), want.len());
    for (m, w) in trades.iter().zip(&want) {
        let mut got = m.json.clone();
        got.as_object_mut().unwrap().remove("receive_time");
        assert_eq!(&got, w, "payload of {}", m.id);
        let token = mdrelay::domain::subject_token(w["symbol"].as_str().unwrap());
        assert_eq!(m.subject, format!("market.okx.{token}.trade"));
        assert_eq!(m.id, w["event_id"].as_str().unwrap());
        assert_eq!(m.headers.get("Mdrelay-Venue").unwrap().as_str(), "okx");
        assert_eq!(
            m.headers.get("Mdrelay-Data-Type").unwrap().as_str(),
            "trade"
        );
        assert_eq!(
            m.headers.get("Content-Type").unwrap().as_str(),
            "application/json"
        );
    }
    let status: Vec<_> = stored
        .iter()
        .filter(|m| m.subject.ends_with(".status"))
        .collect();
    assert_eq!(status.len() as u64, instruments);
    assert!(
        status
            .iter()
            .any(|s| s.subject == "market.okx.btc-usdt.status")
    );
    assert!(
        status
            .iter()
            .all(|s| s.json["data"]["state"] == "connected")
    );
    // The subscribe message reached the venue.
    assert!(
        replay
            .stats
            .messages_received
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    let report = relay.shutdown().await;
    assert_eq!(report.failed, 0);
    replay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_duplicates_are_stored_once() {
    replayed_duplicates("direct").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_duplicates_through_the_client_writer_are_stored_once() {
    replayed_duplicates("client").await;
}

async fn replayed_duplicates(writer: &str) {
    let nats = Nats::start();
    let mut all = frames(&["fixtures/binance-spot/trades.jsonl"]);
    all.extend(frames(&["fixtures/binance-spot/trades.jsonl"]));
    let replay = Replay::start(
        ReplaySpec {
            frames: all,
            ..Default::default()
        },
        None,
    )
    .await;
    let files = ["fixtures/binance-spot/trades.jsonl"];
    let subs = subs_for("binance-spot", &files, "\"trade\"");
    let instruments = common::instruments("binance-spot", None, &files).len() as u64;
    let relay = relay(&config_with_writer(
        &nats,
        "binance-spot",
        &replay.url(),
        &subs,
        writer,
    ))
    .await;
    let want = expected_events("binance-spot", "trades", "trade").len() as u64;
    let stream = Stream::connect(&nats, "MARKET").await;
    let metrics = relay.metrics.clone();
    // Every trade acknowledged twice, and the status events once: they go
    // out from their own publisher, and may be acknowledged last (CI saw
    // the stream counted before them once).
    wait_until(
        Duration::from_secs(15),
        "all duplicates and status events acknowledged",
        || {
            let m = metrics.encode();
            common::metric(&m, "mdrelay_events_duplicate_total", "trade") >= want as f64
                && common::metric(&m, "mdrelay_events_published_total", "")
                    >= (want + instruments) as f64
        },
    )
    .await;
    assert_eq!(
        stream.count().await,
        want + instruments,
        "each trade once, plus the status events"
    );
    let ids: Vec<String> = stream.all().await.into_iter().map(|m| m.id).collect();
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len());
    // The second copy is counted exactly as duplicates, the first as new.
    let m = relay.metrics.encode();
    assert_eq!(
        common::metric(&m, "mdrelay_events_duplicate_total", "trade"),
        want as f64
    );
    assert_eq!(
        common::metric(&m, "mdrelay_events_published_total", "trade"),
        want as f64
    );
    relay.shutdown().await;
    replay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_venue_leads_to_reconnect_resubscribe_and_status_events() {
    let nats = Nats::start();
    let first = Replay::start(
        ReplaySpec {
            frames: frames(&["fixtures/okx/trades.jsonl"]),
            ..Default::default()
        },
        None,
    )
    .await;
    let addr = first.addr;
    let subs = "[[venues.subscriptions]]\ninstrument = \"BTC-USDT\"\ntypes = [\"trade\"]";
    let relay = relay(&config(&nats, "okx", &first.url(), subs)).await;
    let stream = Stream::connect(&nats, "MARKET").await;
    wait_for_count(&stream, 10, Duration::from_secs(10)).await;
    first.stop().await;
    let health = relay.health.clone();
    wait_until(
        Duration::from_secs(5),
        "health shows the venue reconnecting",
        || health.report().1["venues"]["okx"]["connections"][0]["state"] != "connected",
    )
    .await;
    let second = Replay::start(
        ReplaySpec {
            frames: frames(&["fixtures/okx/book.jsonl"]),
            ..Default::default()
        },
        Some(addr),
    )
    .await;
    wait_until(
        Duration::from_secs(10),
        "the relay resubscribed on the new server",
        || {
            second
                .stats
                .messages_received
                .load(std::sync::atomic::Ordering::Relaxed)
                >= 1
        },
    )
    .await;
    wait_until(
        Duration::from_secs(5),
        "health shows the venue connected again",
        || health.report().1["venues"]["okx"]["connections"][0]["state"] == "connected",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let states: Vec<String> = stream
        .all()
        .await
        .into_iter()
        .filter(|m| m.subject == "market.okx.btc-usdt.status")
        .map(|m| m.json["data"]["state"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(states, ["connected", "disconnected", "resubscribed"]);
    let metrics = relay.metrics.encode();
    assert!(
        common::metric(&metrics, "mdrelay_reconnects_total", "okx") >= 1.0,
        "{metrics}"
    );
    relay.shutdown().await;
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_restart_mid_stream_loses_nothing_that_fit_in_the_buffer() {
    let mut nats = Nats::start();
    let files = ["benches/data/okx.book.jsonl"];
    let frames = frames(&files);
    // The recording repeats 10 frames byte for byte; its books carry no
    // update id, so those are chained into distinct events: 1,500.
    let distinct = frames.len();
    let total = frames.len();
    let replay = Replay::start(
        ReplaySpec {
            frames,
            rate: Some(250.0),
            ..Default::default()
        },
        None,
    )
    .await;
    let subs = subs_for("okx", &files, "\"l2_orderbook\"");
    let relay = relay(&config(&nats, "okx", &replay.url(), &subs)).await;
    let stream = Stream::connect(&nats, "MARKET").await;
    wait_for_count(&stream, 100, Duration::from_secs(10)).await;
    nats.kill();
    tokio::time::sleep(Duration::from_secs(3)).await;
    nats.restart();
    // 1,500 frames at 250/s take 6 s, NATS is down for 3 s of it; then
    // every event must be stored exactly once.
    let metrics = relay.metrics.clone();
    let mut last = String::new();
    let done = tokio::time::timeout(Duration::from_secs(40), async {
        loop {
            let m = metrics.encode();
            let mapped = common::metric(&m, "mdrelay_events_mapped_total", "l2_orderbook");
            let acked = common::metric(&m, "mdrelay_events_published_total", "l2_orderbook")
                + common::metric(&m, "mdrelay_events_duplicate_total", "l2_orderbook");
            if mapped >= total as f64 && acked >= mapped {
                break;
            }
            last = m;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    let summary: Vec<&str> = last
        .lines()
        .filter(|l| !l.starts_with('#') && !l.contains("bucket"))
        .collect();
    assert!(
        done.is_ok(),
        "not all acknowledged:\n{}",
        summary.join("\n")
    );
    let stream = Stream::connect(&nats, "MARKET").await;
    let stored = stream.all().await;
    let books: Vec<_> = stored
        .iter()
        .filter(|m| m.subject.ends_with(".l2_orderbook"))
        .collect();
    let unique: HashSet<_> = books.iter().map(|m| &m.id).collect();
    assert_eq!(unique.len(), books.len(), "no duplicates");
    assert_eq!(
        books.len(),
        distinct,
        "every book event stored exactly once"
    );
    let m = relay.metrics.encode();
    assert_eq!(
        common::metric(&m, "mdrelay_publish_failures_total", ""),
        0.0
    );
    relay.shutdown().await;
    replay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics_follow_the_state() {
    let mut nats = Nats::start();
    let replay = Replay::start(
        ReplaySpec {
            frames: frames(&["fixtures/okx/trades.jsonl"]),
            rate: Some(20.0),
            looped: true,
            ..Default::default()
        },
        None,
    )
    .await;
    let subs = "[[venues.subscriptions]]\ninstrument = \"BTC-USDT\"\ntypes = [\"trade\"]";
    let relay = relay(&config(&nats, "okx", &replay.url(), subs)).await;
    let addr = relay.http_addr;
    let start = std::time::Instant::now();
    loop {
        let (code, body) = http_get(addr, "/health").await;
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        if code == 200 && v["status"] == "healthy" {
            assert_eq!(v["nats"]["state"], "connected");
            assert_eq!(v["venues"]["okx"]["connections"][0]["state"], "connected");
            assert!(v["last_reload"].is_null(), "no reload yet: {body}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never healthy: {code} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, metrics) = http_get(addr, "/metrics").await;
    assert_eq!(code, 200);
    assert!(
        common::metric(&metrics, "mdrelay_frames_received_total", "venue=\"okx\"") > 0.0,
        "{metrics}"
    );
    assert!(metrics.contains("mdrelay_ack_latency_seconds_bucket"));
    assert!(!metrics.contains("BTC-USDT"), "no instrument labels");
    nats.kill();
    let down = std::time::Instant::now();
    loop {
        let (code, body) = http_get(addr, "/health").await;
        if code == 503 {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["status"], "unhealthy");
            assert_ne!(v["nats"]["state"], "connected");
            break;
        }
        assert!(
            down.elapsed() < Duration::from_secs(10),
            "still {code} after NATS died: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("unhealthy {:?} after NATS was killed", down.elapsed());
    assert!(down.elapsed() < Duration::from_secs(5));
    drop(relay);
    replay.stop().await;
}

/// With the direct writer (the default) the first attempts cannot hear
/// JetStream's "no responders", but their resends through the client do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_that_meet_no_stream_make_the_relay_unhealthy_until_one_is_back() {
    no_stream("direct").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_that_meet_no_stream_through_the_client_writer_make_the_relay_unhealthy() {
    no_stream("client").await;
}

async fn no_stream(writer: &str) {
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
    let subs = "[[venues.subscriptions]]\ninstrument = \"BTC-USDT\"\ntypes = [\"trade\"]";
    let relay = relay(&config_with_writer(
        &nats,
        "okx",
        &replay.url(),
        subs,
        writer,
    ))
    .await;
    let stream = Stream::connect(&nats, "MARKET").await;
    wait_for_count(&stream, 3, Duration::from_secs(10)).await;
    let config = stream
        .js
        .get_stream("MARKET")
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .config
        .clone();
    stream.js.delete_stream("MARKET").await.unwrap();
    let gone = std::time::Instant::now();
    let body = loop {
        let (code, body) = http_get(relay.http_addr, "/health").await;
        if code == 503 {
            break body;
        }
        assert!(
            gone.elapsed() < Duration::from_secs(15),
            "still {code}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        v["nats"]["no_stream_for_ms"].as_u64().unwrap() >= 5000,
        "{body}"
    );
    if writer == "direct" {
        assert_eq!(v["nats"]["publish_connection"], "connected", "{body}");
    } else {
        assert!(v["nats"]["publish_connection"].is_null(), "{body}");
    }
    eprintln!(
        "unhealthy {:?} after the stream was deleted",
        gone.elapsed()
    );
    let m = relay.metrics.encode();
    assert_eq!(
        common::metric(&m, "mdrelay_publish_failures_total", ""),
        0.0,
        "nothing is given up meanwhile"
    );
    stream.js.create_stream(config).await.unwrap();
    wait_until(Duration::from_secs(15), "healthy again", || {
        relay.health.report().0
    })
    .await;
    relay.shutdown().await;
    replay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_book_deltas_without_ids_are_both_stored() {
    let nats = Nats::start();
    // A recorded Coinbase Exchange book (no update ids, no per-delta time
    // in level2_batch), with one of its deltas sent twice, byte for byte.
    let file = "fixtures/coinbase-exchange/book.jsonl";
    let mut all = frames(&[file]);
    let text = std::fs::read_to_string(root().join(file)).unwrap();
    let delta = text
        .lines()
        .position(|l| l.contains("\"l2update\""))
        .expect("a delta in the recording");
    let repeated = all[delta].clone();
    all.insert(delta + 1, repeated);
    let replay = Replay::start(
        ReplaySpec {
            frames: all,
            ..Default::default()
        },
        None,
    )
    .await;
    let subs = subs_for("coinbase-exchange", &[file], "\"l2_orderbook\"");
    let relay = relay(&config(&nats, "coinbase-exchange", &replay.url(), &subs)).await;
    let metrics = relay.metrics.clone();
    let want = common::book_events(
        &mdrelay::config::venue::load_venue(&root().join("venues/coinbase-exchange.toml")).unwrap(),
        std::path::Path::new(file),
        None,
    )
    .len() as f64
        + 1.0;
    wait_until(Duration::from_secs(15), "every book event acked", || {
        let m = metrics.encode();
        common::metric(&m, "mdrelay_events_published_total", "l2_orderbook")
            + common::metric(&m, "mdrelay_events_duplicate_total", "l2_orderbook")
            >= want
    })
    .await;
    let m = metrics.encode();
    assert_eq!(
        common::metric(&m, "mdrelay_events_duplicate_total", "l2_orderbook"),
        0.0,
        "the repeated delta is an event of its own, not a duplicate"
    );
    let stream = Stream::connect(&nats, "MARKET").await;
    let books = stream
        .all()
        .await
        .into_iter()
        .filter(|s| s.subject.ends_with(".l2_orderbook"))
        .count() as f64;
    assert_eq!(books, want);
    relay.shutdown().await;
    replay.stop().await;
}
