//! Per-instrument checksum scales end to end: Kraken v2 prints book numbers
//! in shortest form but checksums them at the pair's precision, which the
//! relay fetches over REST (`[book.checksum.scales]`) from a fake endpoint.
//! The book frames are the venue's doc samples (a snapshot and an update,
//! looped); the REST body is shaped after the documented AssetPairs
//! response (no recorded one exists), with the scales each test chooses.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::common;
use crate::common::*;
use axum::extract::{Query, State};
use axum::routing::get;
use mdrelay::tools::replay::ReplaySpec;

/// Serve AssetPairs for MATIC/USD with `price` / `quantity` decimal places;
/// returns the origin and the request counter.
async fn asset_pairs(price: u32, quantity: u32) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    async fn handler(
        State((body, hits)): State<(Arc<String>, Arc<AtomicUsize>)>,
        Query(q): Query<std::collections::HashMap<String, String>>,
    ) -> (axum::http::StatusCode, String) {
        hits.fetch_add(1, Ordering::SeqCst);
        if q.get("pair").map(String::as_str) == Some("MATIC/USD") {
            (axum::http::StatusCode::OK, (*body).clone())
        } else {
            (
                axum::http::StatusCode::OK,
                r#"{"error":["EQuery:Unknown asset pair"]}"#.into(),
            )
        }
    }
    let body = format!(
        r#"{{"error":[],"result":{{"MATICUSD":{{"altname":"MATICUSD","wsname":"MATIC/USD","base":"MATIC","quote":"ZUSD","pair_decimals":{price},"cost_decimals":5,"lot_decimals":{quantity},"lot_multiplier":1,"ordermin":"4.5","status":"online"}}}}}}"#
    );
    let app = axum::Router::new()
        .route("/0/public/AssetPairs", get(handler))
        .with_state((Arc::new(body), hits.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), hits)
}

/// Run the relay against the looped doc-sample book for a few seconds with
/// the given scales; return (book events published, gap status events, REST
/// requests).
async fn run(price: u32, quantity: u32) -> (u64, usize, usize) {
    let nats = Nats::start();
    let (rest, hits) = asset_pairs(price, quantity).await;
    let replay = Replay::start(
        ReplaySpec {
            frames: frames(&["fixtures/kraken/book.jsonl"]),
            rate: Some(10.0),
            looped: true,
            ..Default::default()
        },
        None,
    )
    .await;
    let config = format!(
        "[nats]\nurls = [\"{}\"]\n[[nats.streams]]\nname = \"MARKET\"\nsubjects = [\"market.>\"]\n\
         [[venues]]\nid = \"kraken\"\nurl = \"{}\"\nrest_url = \"{rest}\"\n\
         [[venues.subscriptions]]\ninstrument = \"MATIC/USD\"\ntypes = [\"l2_orderbook\"]\n",
        nats.url(),
        replay.url()
    );
    let relay = relay(&config).await;
    let metrics = relay.metrics.clone();
    // The scales arrive, then the looped frames are checked for a while
    // (the loop sends the snapshot and the update five times a second).
    wait_until(Duration::from_secs(20), "the scales requested", || {
        hits.load(Ordering::SeqCst) > 0
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let gaps = common::metric(&metrics.encode(), "mdrelay_gaps_total", "kraken") as usize;
    let stream = Stream::connect(&nats, "MARKET").await;
    let stored = stream.all().await;
    let books = stored
        .iter()
        .filter(|m| m.subject == "market.kraken.matic-usd.l2_orderbook")
        .count() as u64;
    let gap_events = stored
        .iter()
        .filter(|m| m.subject.ends_with(".status") && m.json["data"]["state"] == "gap")
        .count();
    assert_eq!(gaps > 0, gap_events > 0, "metric and events agree");
    (books, gap_events, hits.load(Ordering::SeqCst))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pairs_precision_from_rest_makes_the_doc_checksums_match() {
    let (books, gaps, requests) = run(4, 8).await;
    assert_eq!(gaps, 0, "no checksum mismatch at 4 / 8 places");
    assert_eq!(requests, 1, "one scales request per instrument");
    // These book events carry no update id: their ids chain, so every
    // looped repeat is an event of its own, each checked without a gap.
    assert!(books >= 2, "the snapshot and the update, repeated: {books}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_scales_are_reported_as_gaps() {
    let (_, gaps, _) = run(5, 8).await;
    assert!(gaps > 0, "a mismatch at 5 / 8 places is a gap");
}
