//! Fast-ingest batches (`[nats.publish] mode = "batched"`, nats-server
//! 2.14+): the reliability cases of the per-message-ack publisher — NATS
//! killed mid-stream, replayed duplicates, a stream refusing writes — with
//! every id counted, and how JetStream deduplicates inside a batch.
//! Skipped (with a line on stderr) when the test server is older than 2.14.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::StreamExt;

use crate::common;
use crate::common::*;
use mdrelay::tools::replay::ReplaySpec;

pub(crate) fn fast_ingest_server() -> bool {
    let v = nats_server_version(nats_server()).unwrap_or_default();
    let ok = v.as_slice() >= [2, 14].as_slice();
    if !ok {
        eprintln!("skipped: nats-server {v:?} has no fast-ingest batches (2.14+)");
    }
    ok
}

fn config(nats: &Nats, venue: &str, url: &str, subs: &str, stream_extra: &str) -> String {
    format!(
        r#"
[nats]
urls = ["{}"]
[nats.publish]
ack_timeout = "2s"
mode = "batched"
batch_flow = 64
retry_delays = ["10ms", "20ms"]
[[nats.streams]]
name = "MARKET"
subjects = ["market.>"]
storage = "file"
duplicate_window = "2m"
allow_batched = true
{stream_extra}
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

fn batches(text: &str, data_type: &str) -> f64 {
    metric(text, "mdrelay_publish_batches_total", data_type)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_restart_mid_stream_in_batches_loses_nothing_and_stores_nothing_twice() {
    if !fast_ingest_server() {
        return;
    }
    let mut nats = Nats::start();
    let files = ["benches/data/okx.book.jsonl"];
    let frames = frames(&files);
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
    let relay = relay(&config(&nats, "okx", &replay.url(), &subs, "")).await;
    let stream = Stream::connect(&nats, "MARKET").await;
    wait_for_count(&stream, 100, Duration::from_secs(10)).await;
    nats.kill();
    tokio::time::sleep(Duration::from_secs(3)).await;
    nats.restart();
    let metrics = relay.metrics.clone();
    wait_until(Duration::from_secs(40), "every book event acked", || {
        let m = metrics.encode();
        metric(&m, "mdrelay_events_mapped_total", "l2_orderbook") >= total as f64
            && metric(&m, "mdrelay_events_published_total", "l2_orderbook")
                + metric(&m, "mdrelay_events_duplicate_total", "l2_orderbook")
                >= total as f64
    })
    .await;
    let m = relay.metrics.encode();
    assert!(batches(&m, "l2_orderbook") >= 2.0, "published in batches");
    assert_eq!(metric(&m, "mdrelay_publish_failures_total", ""), 0.0);
    let stream = Stream::connect(&nats, "MARKET").await;
    let books = stream.ids("l2_orderbook").await;
    let unique: HashSet<&String> = books.iter().collect();
    assert_eq!(unique.len(), books.len(), "0 stored twice");
    assert_eq!(books.len(), total, "0 lost");
    relay.shutdown().await;
    replay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_duplicates_in_batches_are_stored_once() {
    if !fast_ingest_server() {
        return;
    }
    let nats = Nats::start();
    let files = ["fixtures/binance-spot/trades.jsonl"];
    let mut all = frames(&files);
    let once = all.len();
    all.extend(frames(&files));
    let feed = common::feeds::Feed {
        venue: "binance-spot",
        files: &["fixtures/binance-spot/trades.jsonl"],
        types: &["trade"],
        rate: 0.0,
    };
    let expected = common::feeds::expected_ids(&feed, &all[..once]);
    let replay = Replay::start(
        ReplaySpec {
            frames: all,
            ..Default::default()
        },
        None,
    )
    .await;
    let subs = subs_for("binance-spot", &files, "\"trade\"");
    let relay = relay(&config(&nats, "binance-spot", &replay.url(), &subs, "")).await;
    let metrics = relay.metrics.clone();
    let want = 2.0 * expected.len() as f64;
    wait_until(Duration::from_secs(15), "both copies acked", || {
        let m = metrics.encode();
        metric(&m, "mdrelay_events_published_total", "trade")
            + metric(&m, "mdrelay_events_duplicate_total", "trade")
            >= want
    })
    .await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let t = common::feeds::tally(&client, "MARKET", &expected).await;
    assert_eq!(
        (t.lost, t.twice),
        (0, 0),
        "0 lost, 0 twice: {:?}",
        t.lost_sample
    );
    let m = relay.metrics.encode();
    assert!(batches(&m, "trade") >= 1.0, "published in batches");
    relay.shutdown().await;
    replay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_stream_refusing_batched_writes_gives_counted_drops() {
    if !fast_ingest_server() {
        return;
    }
    let nats = Nats::start();
    let files = ["benches/data/okx.book.jsonl"];
    let replay = Replay::start(
        ReplaySpec {
            frames: frames(&files),
            ..Default::default()
        },
        None,
    )
    .await;
    let subs = subs_for("okx", &files, "\"l2_orderbook\"");
    let limits = "max_messages = 100\ndiscard = \"new\"";
    let relay = relay(&config(&nats, "okx", &replay.url(), &subs, limits)).await;
    let statuses = instruments("okx", None, &files).len() as f64;
    let events = 1500.0 + statuses;
    let metrics = relay.metrics.clone();
    wait_until(Duration::from_secs(40), "every event accounted", || {
        let m = metrics.encode();
        metric(&m, "mdrelay_events_published_total", "")
            + metric(&m, "mdrelay_publish_failures_total", "")
            >= events
    })
    .await;
    let m = relay.metrics.encode();
    let published = metric(&m, "mdrelay_events_published_total", "");
    let dropped = metric(&m, "mdrelay_publish_failures_total", "");
    let stream = Stream::connect(&nats, "MARKET").await;
    assert_eq!(stream.count().await, 100);
    assert_eq!(published, 100.0, "acked = stored");
    assert_eq!(published + dropped, events, "none vanish");
    assert_eq!(
        metric(
            &m,
            "mdrelay_events_dropped_total",
            "cause=\"publish_failed\""
        ),
        dropped
    );
    relay.shutdown().await;
    replay.stop().await;
}

/// A stream `name` on `<name in lower case>.>` that takes fast-ingest
/// batches.
async fn batch_stream(js: &async_nats::jetstream::Context, name: &str) {
    js.create_stream(async_nats::jetstream::stream::Config {
        name: name.into(),
        subjects: vec![format!("{}.>", name.to_lowercase())],
        allow_batch_publish: true,
        ..Default::default()
    })
    .await
    .unwrap();
}

/// The server's side, measured with the protocol itself: a message whose
/// `Nats-Msg-Id` the stream already has (stored by a plain publish, or
/// earlier in the same batch) is skipped without an error, and the batch's
/// final ack counts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_skips_known_ids_inside_a_fast_batch_silently() {
    if !fast_ingest_server() {
        return;
    }
    let nats = Nats::start();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client.clone());
    batch_stream(&js, "X").await;
    let with_id = |id: &str| {
        let mut h = async_nats::HeaderMap::new();
        h.insert("Nats-Msg-Id", id);
        h
    };
    js.publish_with_headers("x.a", with_id("pre"), "before".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let inbox = client.new_inbox();
    let mut replies = client.subscribe(format!("{inbox}.>")).await.unwrap();
    let reply = |seq: u64, op: u8| format!("{inbox}.B1.10.fail.{seq}.{op}.$FI");
    let mut next = async || {
        let m = tokio::time::timeout(Duration::from_secs(5), replies.next())
            .await
            .unwrap()
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&m.payload).unwrap()
    };
    client
        .publish_with_reply_and_headers("x.a", reply(1, 0), with_id("a"), "1".into())
        .await
        .unwrap();
    assert_eq!(next().await["type"], "ack", "the batch started");
    for (seq, id) in [(2, "b"), (3, "a"), (4, "pre"), (5, "c")] {
        client
            .publish_with_reply_and_headers("x.a", reply(seq, 1), with_id(id), "n".into())
            .await
            .unwrap();
    }
    client
        .publish_with_reply("x.a", reply(6, 3), "".into())
        .await
        .unwrap();
    let end = next().await;
    assert!(end.get("error").is_none(), "no error: {end}");
    assert_eq!(end["count"], 5, "the final ack counts the skipped ones");
    let stored = js
        .get_stream("X")
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .state
        .messages;
    assert_eq!(stored, 4, "pre, a, b, c: each id once");
}

/// Measured on 2.15.1 (docs/performance.md, "Batch flow"): a stream gives
/// the flow a batch asks for only to the first fast batch open on it; a
/// second one opened while the first is open starts at a flow of 1, doubled
/// with each flow ack. (The relay follows whatever flow each ack asks for.)
#[tokio::test]
async fn a_second_open_batch_on_a_stream_starts_at_a_flow_of_one_and_doubles() {
    if !fast_ingest_server() {
        return;
    }
    let nats = Nats::start();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client.clone());
    for name in ["F", "G"] {
        batch_stream(&js, name).await;
    }
    let inbox = client.new_inbox();
    let mut replies = client.subscribe(format!("{inbox}.>")).await.unwrap();
    let mut next = async || {
        let m = tokio::time::timeout(Duration::from_secs(5), replies.next())
            .await
            .unwrap()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        (m.subject.to_string(), v)
    };
    let send = |subject: &str, batch: &str, seq: u64| {
        let op = u8::from(seq > 1);
        let mut h = async_nats::HeaderMap::new();
        h.insert("Nats-Msg-Id", format!("{batch}-{seq}").as_str());
        client.publish_with_reply_and_headers(
            subject.to_owned(),
            format!("{inbox}.{batch}.100.fail.{seq}.{op}.$FI"),
            h,
            "{}".into(),
        )
    };
    // The first batch on F gets the flow it asks for.
    send("f.a", "A", 1).await.unwrap();
    let (_, a) = next().await;
    assert_eq!(
        (a["type"].as_str(), a["msgs"].as_u64()),
        (Some("ack"), Some(100))
    );
    // A second batch on F, A still open: a flow of 1, then 2, then 4.
    send("f.a", "B", 1).await.unwrap();
    let (_, b) = next().await;
    assert_eq!((b["seq"].as_u64(), b["msgs"].as_u64()), (Some(0), Some(1)));
    let mut flows = Vec::new();
    for seq in 2..=3 {
        send("f.a", "B", seq).await.unwrap();
        let (subject, ack) = next().await;
        assert!(subject.contains(".B."), "{subject}");
        flows.push(ack["msgs"].as_u64().unwrap());
    }
    assert_eq!(flows, [2, 4], "doubling from 1");
    // Another stream's first batch gets its flow whatever F has open.
    send("g.a", "C", 1).await.unwrap();
    let (_, c) = next().await;
    assert_eq!(c["msgs"].as_u64(), Some(100));
}

/// `mode = "auto"` with synthetic aggTrade frames (`common::agg_trades`,
/// distinct ids) at `rate` (None: as fast as the relay reads): the trade
/// ids stored, and the fast-ingest batches used.
async fn auto_mode(frames: usize, rate: Option<f64>) -> (usize, usize, f64) {
    let nats = Nats::start();
    let replay = Replay::start(
        ReplaySpec {
            frames: agg_trades(&["BTCUSDT"], frames as u64),
            rate,
            ..Default::default()
        },
        None,
    )
    .await;
    let subs = "[[venues.subscriptions]]\ninstrument = \"BTCUSDT\"\ntypes = [\"trade\"]\n";
    let cfg = config(&nats, "binance-spot", &replay.url(), subs, "")
        .replace("mode = \"batched\"", "mode = \"auto\"");
    let relay = relay(&cfg).await;
    let metrics = relay.metrics.clone();
    wait_until(Duration::from_secs(60), "every trade acked", || {
        let m = metrics.encode();
        metric(&m, "mdrelay_events_published_total", "trade")
            + metric(&m, "mdrelay_events_duplicate_total", "trade")
            >= frames as f64
    })
    .await;
    let m = relay.metrics.encode();
    relay.shutdown().await;
    replay.stop().await;
    let ids = Stream::connect(&nats, "MARKET").await.ids("trade").await;
    let unique: HashSet<&String> = ids.iter().collect();
    (ids.len(), unique.len(), batches(&m, "trade"))
}

/// At a gentle rate the publisher keeps up: `auto` gives every event its
/// own ack (the lowest latency) and opens no batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_mode_at_a_gentle_rate_uses_per_message_acks() {
    if !fast_ingest_server() {
        return;
    }
    let (stored, unique, batches) = auto_mode(400, Some(100.0)).await;
    assert_eq!((stored, unique), (400, 400), "0 lost, 0 stored twice");
    assert_eq!(batches, 0.0, "no batch at 100 frames/s");
}

/// Frames as fast as the relay reads them deepen the publisher's queue:
/// `auto` switches to fast-ingest batches, and still stores each event once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_mode_under_a_burst_switches_to_batches() {
    if !fast_ingest_server() {
        return;
    }
    let (stored, unique, batches) = auto_mode(30_000, None).await;
    assert_eq!((stored, unique), (30_000, 30_000), "0 lost, 0 stored twice");
    assert!(batches > 0.0, "the burst went out in batches");
}
