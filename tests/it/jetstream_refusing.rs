//! JetStream refusing writes (a full stream with `discard = "new"`): each
//! refused event is retried, then dropped and counted; the relay keeps
//! running and serving, and what the stream took is exact.

use std::time::Duration;

use crate::common::*;
use mdrelay::tools::replay::ReplaySpec;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_stream_gives_counted_drops_and_the_relay_carries_on() {
    full_stream("direct").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_stream_through_the_client_writer_gives_counted_drops() {
    full_stream("client").await;
}

async fn full_stream(writer: &str) {
    let nats = Nats::start();
    let frames = frames(&["benches/data/okx.book.jsonl"]);
    let replay = Replay::start(
        ReplaySpec {
            frames,
            ..Default::default()
        },
        None,
    )
    .await;
    let config = format!(
        "[nats]\nurls = [\"{}\"]\n[nats.publish]\nwriter = \"{writer}\"\nretry_delays = [\"10ms\", \"20ms\"]\n\
         [[nats.streams]]\nname = \"MARKET\"\nsubjects = [\"market.>\"]\n\
         max_messages = 100\ndiscard = \"new\"\n\
         [[venues]]\nid = \"okx\"\nurl = \"{}\"\n{}",
        nats.url(),
        replay.url(),
        subs_for("okx", &["benches/data/okx.book.jsonl"], "\"l2_orderbook\"")
    );
    let statuses = instruments("okx", None, &["benches/data/okx.book.jsonl"]).len() as f64;
    let relay = relay(&config).await;
    let stream = Stream::connect(&nats, "MARKET").await;
    // 1500 book events (+ a status per instrument) meet a stream that
    // takes 100.
    let failures = || {
        metric(
            &relay.metrics.encode(),
            "mdrelay_publish_failures_total",
            "",
        )
    };
    // Every event settled: published or dropped after its retries (on a
    // loaded machine the last retries finish after most are counted).
    let settled = || {
        metric(
            &relay.metrics.encode(),
            "mdrelay_events_published_total",
            "",
        ) + failures()
            >= 1500.0 + statuses
    };
    wait_until(Duration::from_secs(30), "every event settled", settled).await;
    let text = relay.metrics.encode();
    let published = metric(&text, "mdrelay_events_published_total", "");
    let retries = metric(&text, "mdrelay_publish_retries_total", "");
    let dropped = failures();
    let stored = stream.count().await;
    eprintln!(
        "stream took {stored}; relay: {published} published, {retries} retries, {dropped} dropped after retries"
    );
    assert_eq!(stored, 100);
    assert_eq!(published, 100.0, "acked = stored");
    assert!(
        retries >= 2.0 * dropped,
        "each drop was retried twice first"
    );
    // Every event is either stored or counted as dropped, none vanish.
    assert_eq!(published + dropped, 1500.0 + statuses);
    assert_eq!(
        metric(
            &text,
            "mdrelay_events_dropped_total",
            "cause=\"publish_failed\""
        ),
        dropped,
        "each refused event is a drop with its cause"
    );
    let (status, body) = http_get(relay.http_addr, "/health").await;
    assert!(
        status == 200 || status == 503,
        "still serving: {status} {body}"
    );
    relay.shutdown().await;
    replay.stop().await;
}
