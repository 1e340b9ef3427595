//! The REST budget end to end: a venue's snapshot endpoint answers 429 with
//! `Retry-After: 2`; the relay's next request to it waits at least that
//! long, nothing loops hot, and the answers are counted.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use axum::extract::State;
use axum::routing::get;
use mdrelay::serialization::frames::OwnedFrame;
use mdrelay::tools::replay::ReplaySpec;

type Hits = Arc<Mutex<Vec<Instant>>>;

/// `/api/v3/depth`: 429 with `Retry-After: 2` first, then the recorded
/// snapshot.
async fn throttling_server(body: String) -> (String, Hits) {
    let hits: Hits = Arc::default();
    async fn depth(
        State((body, hits)): State<(Arc<String>, Hits)>,
    ) -> (
        axum::http::StatusCode,
        [(&'static str, &'static str); 1],
        String,
    ) {
        let n = {
            let mut h = hits.lock().unwrap();
            h.push(Instant::now());
            h.len()
        };
        if n == 1 {
            (
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "2")],
                "{\"code\":-1003,\"msg\":\"Too many requests (synthetic answer of this test).\"}"
                    .into(),
            )
        } else {
            (
                axum::http::StatusCode::OK,
                [("x-test", "1")],
                (*body).clone(),
            )
        }
    }
    let app = axum::Router::new()
        .route("/api/v3/depth", get(depth))
        .with_state((Arc::new(body), hits.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_with_retry_after_pauses_the_venues_rest_requests() {
    let nats = Nats::start();
    let sym = "NKNUSDT";
    let body =
        std::fs::read_to_string(root().join(format!("fixtures/binance-spot/rest/{sym}.json")))
            .unwrap();
    let (rest, hits) = throttling_server(body).await;
    let frames: Vec<OwnedFrame> = frames(&["benches/data/binance-spot.book.jsonl"])
        .into_iter()
        .filter(|f| matches!(f, OwnedFrame::Text(t) if t.contains(&format!("\"s\":\"{sym}\""))))
        .collect();
    assert!(!frames.is_empty());
    let replay = Replay::start(
        ReplaySpec {
            frames,
            ..Default::default()
        },
        None,
    )
    .await;
    let relay = relay(&format!(
        "[nats]\nurls = [\"{}\"]\n[[nats.streams]]\nname = \"MARKET\"\nsubjects = [\"market.>\"]\n[[venues]]\nid = \"binance-spot\"\nurl = \"{}\"\nrest_url = \"{rest}\"\n[[venues.subscriptions]]\ninstrument = \"{sym}\"\ntypes = [\"l2_orderbook\"]\n",
        nats.url(),
        replay.url()
    ))
    .await;
    wait_until(Duration::from_secs(20), "a second snapshot request", || {
        hits.lock().unwrap().len() >= 2
    })
    .await;
    // Watch a while longer: nothing loops.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let h = hits.lock().unwrap().clone();
    let gap = h[1] - h[0];
    eprintln!("requests: {}, first to second: {gap:?}", h.len());
    assert!(
        gap >= Duration::from_secs(2),
        "the next request came after {gap:?}"
    );
    assert_eq!(
        h.len(),
        2,
        "one throttled request, one that got the snapshot"
    );
    let m = relay.metrics.encode();
    assert_eq!(
        metric(&m, "mdrelay_rest_throttled_total", "venue=\"binance-spot\""),
        1.0
    );
    assert_eq!(
        metric(&m, "mdrelay_rest_requests_total", "outcome=\"throttled\""),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            "mdrelay_rest_requests_total",
            "kind=\"snapshot\",outcome=\"ok\""
        ),
        1.0
    );
    relay.shutdown().await;
    replay.stop().await;
}
