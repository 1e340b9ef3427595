//! The direct publish connection (`[nats.publish] writer = "direct"`, the
//! default): the relay writes `HPUB` itself on a second connection. What
//! only it can get wrong, with every id counted: NATS killed mid-stream in
//! both publish modes (and how much went out directly), a server refusing
//! it, a server frozen mid-stream. Replayed duplicates, a deleted stream and
//! a stream refusing writes run with either writer in `e2e_relay.rs` and
//! `jetstream_refusing.rs`; auth and TLS in `nats_security.rs`; a cluster
//! leader change in `cluster.rs`.

use std::collections::HashSet;
use std::time::Duration;

use crate::common::*;
use mdrelay::tools::replay::ReplaySpec;

fn config(nats: &Nats, mode: &str, venue: &str, url: &str, subs: &str, stream: &str) -> String {
    format!(
        r#"
[nats]
urls = ["{}"]
[nats.publish]
writer = "direct"
mode = "{mode}"
ack_timeout = "2s"
batch_flow = 64
retry_delays = ["10ms", "20ms"]
[[nats.streams]]
name = "MARKET"
subjects = ["market.>"]
storage = "file"
duplicate_window = "2m"
{stream}
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

/// NATS is SIGKILLed mid-stream and restarted 3 s later; the direct
/// connection and the client both reconnect, and every book event is
/// stored exactly once.
async fn nats_restart_mid_stream(mode: &str, stream_extra: &str) {
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
    let relay = relay(&config(
        &nats,
        mode,
        "okx",
        &replay.url(),
        &subs,
        stream_extra,
    ))
    .await;
    let stream = Stream::connect(&nats, "MARKET").await;
    wait_for_count(&stream, 100, Duration::from_secs(10)).await;
    nats.kill();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let down = metric(&relay.metrics.encode(), "mdrelay_nats_connected", "");
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
    assert_eq!(down, 0.0, "the connected gauge showed NATS down");
    assert_eq!(metric(&m, "mdrelay_nats_connected", ""), 1.0);
    let (_, health) = http_get(relay.http_addr, "/health").await;
    assert!(
        health.contains("\"publish_connection\":\"connected\""),
        "/health shows the direct connection: {health}"
    );
    assert_eq!(metric(&m, "mdrelay_publish_failures_total", ""), 0.0);
    let direct = metric(&m, "mdrelay_publish_direct_writes_total", "");
    assert!(
        direct >= total as f64 / 2.0,
        "most first attempts went on the direct connection ({direct} of {total})"
    );
    if mode == "batched" {
        assert!(
            metric(&m, "mdrelay_publish_batches_total", "l2_orderbook") >= 2.0,
            "published in batches"
        );
    }
    let stream = Stream::connect(&nats, "MARKET").await;
    let books = stream.ids("l2_orderbook").await;
    let unique: HashSet<&String> = books.iter().collect();
    assert_eq!(unique.len(), books.len(), "0 stored twice");
    assert_eq!(books.len(), total, "0 lost");
    relay.shutdown().await;
    replay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_restart_mid_stream_with_acks_loses_nothing_and_stores_nothing_twice() {
    nats_restart_mid_stream("acks", "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_restart_mid_stream_in_batches_loses_nothing_and_stores_nothing_twice() {
    if !crate::batched::fast_ingest_server() {
        return;
    }
    nats_restart_mid_stream("batched", "allow_batched = true").await;
}

/// A server that takes no more connections than the relay's client (and the
/// test's): the direct connection is refused again and again, and every
/// event goes through the client instead; `/health` shows the direct
/// connection down and stays healthy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_go_through_the_client_while_the_direct_connection_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("nats.conf");
    std::fs::write(&conf, "max_connections: 2\n").unwrap();
    let nats = Nats::start_with(&["-c", conf.to_str().unwrap()]);
    // The test's connection first, the relay's client second: none left.
    let client = async_nats::connect(nats.url()).await.unwrap();
    let files = ["fixtures/okx/trades.jsonl"];
    let replay = Replay::start(
        ReplaySpec {
            frames: frames(&files),
            ..Default::default()
        },
        None,
    )
    .await;
    let config = config(
        &nats,
        "acks",
        "okx",
        &replay.url(),
        &subs_for("okx", &files, "\"trade\""),
        "",
    )
    .replace(
        "[nats.publish]\n",
        "connect_timeout = \"1s\"\n[nats.publish]\n",
    );
    let relay = relay(&config).await;
    let statuses = instruments("okx", None, &files).len() as f64;
    let trades = std::fs::read_to_string(root().join("fixtures/okx/trades.expected.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"data_type\":\"trade\""))
        .count() as f64;
    let metrics = relay.metrics.clone();
    wait_until(Duration::from_secs(20), "every event published", || {
        metric(&metrics.encode(), "mdrelay_events_published_total", "") >= trades + statuses
    })
    .await;
    let m = relay.metrics.encode();
    assert_eq!(metric(&m, "mdrelay_publish_direct_writes_total", ""), 0.0);
    assert_eq!(metric(&m, "mdrelay_publish_failures_total", ""), 0.0);
    let (code, health) = http_get(relay.http_addr, "/health").await;
    assert_eq!(code, 200, "healthy without the direct connection: {health}");
    assert!(
        health.contains("\"publish_connection\":\"disconnected\""),
        "{health}"
    );
    let js = async_nats::jetstream::new(client);
    let stored = js
        .get_stream("MARKET")
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .state
        .messages;
    assert_eq!(stored as f64, trades + statuses, "every event stored once");
    relay.shutdown().await;
    replay.stop().await;
}

/// The server freezes (SIGSTOP) for 32 s mid-stream, with both connections
/// open: nothing answers, nothing closes. The direct connection gives up on
/// its own (a stalled write or two unanswered pings), the unacknowledged
/// events are sent again, and once the server resumes (SIGCONT) every book
/// event is stored exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_server_loses_nothing_and_stores_nothing_twice() {
    log_from_env();
    let nats = Nats::start();
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
    let relay = relay(&config(&nats, "acks", "okx", &replay.url(), &subs, "")).await;
    let stream = Stream::connect(&nats, "MARKET").await;
    wait_for_count(&stream, 100, Duration::from_secs(10)).await;
    nats.signal("STOP");
    tokio::time::sleep(Duration::from_secs(32)).await;
    let frozen = relay.health.report().1;
    nats.signal("CONT");
    let metrics = relay.metrics.clone();
    wait_until(Duration::from_secs(60), "every book event acked", || {
        let m = metrics.encode();
        metric(&m, "mdrelay_events_mapped_total", "l2_orderbook") >= total as f64
            && metric(&m, "mdrelay_events_published_total", "l2_orderbook")
                + metric(&m, "mdrelay_events_duplicate_total", "l2_orderbook")
                >= total as f64
    })
    .await;
    assert_eq!(
        frozen["nats"]["publish_connection"], "disconnected",
        "the direct connection noticed the frozen server: {frozen}"
    );
    let m = relay.metrics.encode();
    assert_eq!(metric(&m, "mdrelay_publish_failures_total", ""), 0.0);
    let stream = Stream::connect(&nats, "MARKET").await;
    let books = stream.ids("l2_orderbook").await;
    let unique: HashSet<&String> = books.iter().collect();
    assert_eq!(unique.len(), books.len(), "0 stored twice");
    assert_eq!(books.len(), total, "0 lost");
    relay.shutdown().await;
    replay.stop().await;
}
