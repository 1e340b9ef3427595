//! End to end with binary frames: a fake venue sends the recorded OKX
//! trade frames (`fixtures/okx/trades.jsonl`) deflate-compressed as binary
//! WebSocket frames (compressed by the test: OKX itself sends text), to a
//! relay whose OKX venue file says `[frames] compression = "deflate"`.
//! Every trade is stored in JetStream, as from the text frames.

use std::io::Write;
use std::time::{Duration, Instant};

use flate2::Compression as Level;
use flate2::write::DeflateEncoder;
use mdrelay::application::fixture::{OwnedFrame, transcript};
use mdrelay::config::venue::load_venue;
use mdrelay::tools::replay::ReplaySpec;

use crate::common;
use crate::common::*;

const FRAMES: &str = "fixtures/okx/trades.jsonl";

fn deflate(text: &str) -> Vec<u8> {
    let mut e = DeflateEncoder::new(Vec::new(), Level::default());
    e.write_all(text.as_bytes()).unwrap();
    e.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deflate_frames_reach_jetstream_like_text_frames() {
    let nats = Nats::start();
    let venues = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join("venues/okx.toml")).unwrap();
    let edited = text.replace("\n[frames]\n", "\n[frames]\ncompression = \"deflate\"\n");
    assert_ne!(text, edited);
    std::fs::write(venues.path().join("okx.toml"), edited).unwrap();

    let frames: Vec<OwnedFrame> = common::frames(&[FRAMES])
        .into_iter()
        .map(|f| match f {
            OwnedFrame::Text(t) => OwnedFrame::Binary(deflate(&t)),
            binary => binary,
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
    let config = format!(
        "[nats]\nurls = [\"{}\"]\n[[nats.streams]]\nname = \"MARKET\"\nsubjects = [\"market.>\"]\n\
         [[venues]]\nid = \"okx\"\nurl = \"{}\"\n{}",
        nats.url(),
        replay.url(),
        subs_for("okx", &[FRAMES], "\"trade\"")
    );
    let relay = relay_in(venues.path(), &config).await;

    // The ids the plain text frames give.
    let venue = load_venue(&root().join("venues/okx.toml")).unwrap();
    let plain = std::fs::read_to_string(root().join(FRAMES)).unwrap();
    let (lines, counts) = transcript(&venue, None, &plain);
    let mut want: Vec<String> = lines
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["event_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    want.sort();
    assert_eq!(want.len(), counts.events);

    let stream = Stream::connect(&nats, "MARKET").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got: Vec<String> = Vec::new();
    while Instant::now() < deadline {
        got = stream
            .all()
            .await
            .into_iter()
            .filter(|m| m.subject.ends_with(".trade"))
            .map(|m| m.id)
            .collect();
        if got.len() >= want.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    got.sort();
    let failures = metric(
        &relay.metrics.encode(),
        "mdrelay_mapping_failures_total",
        "okx",
    );
    relay.shutdown().await;
    replay.stop().await;
    assert_eq!(failures, 0.0, "every binary frame inflated and mapped");
    assert_eq!(got, want, "the trades of the text frames, each once");
}
