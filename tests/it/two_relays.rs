//! Two relays with the same venue config publishing into one JetStream
//! stream (a hot standby): every event is stored once (deterministic
//! `Nats-Msg-Id`s), and stopping one relay mid-stream loses nothing.

use std::collections::HashSet;
use std::time::Duration;

use crate::common::*;
use mdrelay::tools::replay::ReplaySpec;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_store_each_event_once_and_survive_one_stopping() {
    two_relays("", "").await;
}

/// The same with both relays publishing in fast-ingest batches (2.14+).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_in_fast_batches_store_each_event_once_and_survive_one_stopping() {
    let v = nats_server_version(nats_server()).unwrap_or_default();
    if v.as_slice() < [2, 14].as_slice() {
        eprintln!("skipped: nats-server {v:?} has no fast-ingest batches (2.14+)");
        return;
    }
    two_relays(
        "[nats.publish]\nmode = \"batched\"\n",
        "allow_batched = true\n",
    )
    .await;
}

/// Two relays; `publish` and `stream` are added to `[nats]` and the stream.
async fn two_relays(publish: &str, stream: &str) {
    let nats = Nats::start();
    let frames = frames(&["benches/data/okx.book.jsonl"]);
    // Each relay connects to the fake venue and gets the whole recording,
    // 1500 book frames at 250 frames/s (6 s).
    let replay = Replay::start(
        ReplaySpec {
            frames,
            rate: Some(250.0),
            ..Default::default()
        },
        None,
    )
    .await;
    let config = format!(
        "[nats]\nurls = [\"{}\"]\n{publish}[[nats.streams]]\nname = \"MARKET\"\nsubjects = [\"market.>\"]\n\
         duplicate_window = \"2m\"\n{stream}[[venues]]\nid = \"okx\"\nurl = \"{}\"\n{}",
        nats.url(),
        replay.url(),
        subs_for("okx", &["benches/data/okx.book.jsonl"], "\"l2_orderbook\"")
    );
    let a = relay(&config).await;
    let b = relay(&config).await;
    let stream = Stream::connect(&nats, "MARKET").await;
    wait_for_count(&stream, 300, Duration::from_secs(15)).await;
    // Stop relay A mid-stream.
    let report_a = a.shutdown().await;
    let at_stop = stream.count().await;
    // B carries on to the end of the recording: every distinct book event.
    let books_stored = || async {
        stream
            .all()
            .await
            .iter()
            .filter(|m| m.subject.ends_with(".l2_orderbook"))
            .count()
    };
    let t0 = std::time::Instant::now();
    while books_stored().await < 1500 && t0.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    if !publish.is_empty() {
        let batches = metric(&b.metrics.encode(), "mdrelay_publish_batches_total", "");
        assert!(batches >= 1.0, "relay B published in batches");
    }
    let report_b = b.shutdown().await;
    let stored = stream.all().await;
    let books: Vec<_> = stored
        .iter()
        .filter(|m| m.subject.ends_with(".l2_orderbook"))
        .collect();
    let ids: HashSet<&str> = books.iter().map(|m| m.id.as_str()).collect();
    eprintln!(
        "relay A acked {} (stopped at {at_stop} stored), relay B acked {}; stream: {} book events, {} distinct ids",
        report_a.acked(),
        report_b.acked(),
        books.len(),
        ids.len()
    );
    assert_eq!(ids.len(), books.len(), "no event stored twice");
    // These recorded books carry no update id: their ids chain on the
    // previous event of the instrument, so the 10 byte-identical repeated
    // frames of the recording are 10 more events (1,500 in all), and the
    // two relays, fed the same frames from the same first one, give the
    // same ids.
    let text = std::fs::read_to_string(root().join("benches/data/okx.book.jsonl")).unwrap();
    assert_eq!(text.lines().count(), 1500);
    assert_eq!(books.len(), 1500, "every book frame, once");
    assert!(
        report_a.acked() > 0 && report_b.acked() > 0,
        "both relays published"
    );
    replay.stop().await;
}
