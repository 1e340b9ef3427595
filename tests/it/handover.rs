//! The planned, overlapping reconnect: a venue whose connections live only
//! a short time, served by a fake venue behaving like a live feed (every
//! connection receives the frames of one shared clock). Across several
//! handovers, every frame the venue sent while the relay was connected is
//! stored exactly once, and consumers see no disconnect.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::common;
use crate::common::*;
use mdrelay::application::relay::{RelayHandle, StartOptions, start};
use mdrelay::config::relay::load_relay;
use mdrelay::tools::replay::ReplaySpec;

/// Recorded bookTicker frames (746, several symbols, each with its update id
/// `u`, which is the ticker event's key).
const FRAMES: &str = "benches/data/binance-spot.bbo.jsonl";
/// Frames per second from the fake venue: the file lasts about 5 s.
const RATE: f64 = 150.0;

/// `(symbol, u)` of every frame, in order.
fn recorded() -> Vec<(String, u64)> {
    std::fs::read_to_string(root().join(FRAMES))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["data"]["s"].as_str().unwrap().to_owned(),
                v["data"]["u"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// The Binance spot venue file with `edit` applied, in its own directory.
fn venues_dir(edit: impl Fn(&str) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join("venues/binance-spot.toml")).unwrap();
    let edited = edit(&text);
    assert_ne!(text, edited, "the edit applies");
    std::fs::write(dir.path().join("binance-spot.toml"), edited).unwrap();
    dir
}

/// The fake venue (live clock) and the relay config subscribing tickers of
/// every symbol in the file.
async fn setup(nats: &Nats) -> (Replay, String, usize) {
    let frames = recorded();
    let replay = Replay::start(
        ReplaySpec {
            frames: common::frames(&[FRAMES]),
            rate: Some(RATE),
            live: true,
            ..Default::default()
        },
        None,
    )
    .await;
    let mut seen = HashSet::new();
    let symbols: Vec<&str> = frames
        .iter()
        .map(|(s, _)| s.as_str())
        .filter(|s| seen.insert(*s))
        .collect();
    let mut config = format!(
        "[nats]\nurls = [\"{}\"]\n[[nats.streams]]\nname = \"MARKET\"\n\
         subjects = [\"market.>\"]\nduplicate_window = \"2m\"\n\
         [[venues]]\nid = \"binance-spot\"\nurl = \"{}\"\n",
        nats.url(),
        replay.url()
    );
    for s in &symbols {
        config.push_str(&format!(
            "[[venues.subscriptions]]\ninstrument = \"{s}\"\ntypes = [\"ticker\"]\n"
        ));
    }
    (replay, config, symbols.len())
}

/// How long the file lasts at RATE, plus time for the last acks.
fn file_duration() -> Duration {
    Duration::from_secs_f64(recorded().len() as f64 / RATE) + Duration::from_millis(1500)
}

/// Assert what JetStream holds: one `connected` status per instrument and
/// no other, each ticker once, and every frame from the first stored one to
/// the end of the file.
async fn check_stream(nats: &Nats, instruments: usize, handovers: f64) {
    let frames = recorded();
    let stream = Stream::connect(nats, "MARKET").await;
    let stored = stream.all().await;
    let tickers: Vec<&Stored> = stored
        .iter()
        .filter(|m| m.subject.ends_with(".ticker"))
        .collect();
    let statuses: Vec<String> = stored
        .iter()
        .filter(|m| m.subject.ends_with(".status"))
        .map(|m| m.json["data"]["state"].as_str().unwrap().to_owned())
        .collect();
    // Consumers saw one connect per instrument and nothing else: no
    // disconnect, no resubscribe.
    assert_eq!(statuses.len(), instruments, "{statuses:?}");
    assert!(statuses.iter().all(|s| s == "connected"), "{statuses:?}");

    // Stored once each: both connections published during the overlaps and
    // JetStream kept one copy.
    let ids: HashSet<&str> = tickers.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids.len(), tickers.len(), "duplicates stored");

    let key = |(s, u): &(String, u64)| format!("binance-spot:ticker:{s}:{u}");
    let position: HashMap<String, usize> = frames
        .iter()
        .enumerate()
        .map(|(i, f)| (key(f), i))
        .collect();
    let first = ids
        .iter()
        .map(|id| {
            *position
                .get(*id)
                .unwrap_or_else(|| panic!("unknown id {id}"))
        })
        .min()
        .unwrap();
    let missing: Vec<usize> = (first..frames.len())
        .filter(|i| !ids.contains(key(&frames[*i]).as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} frames missing after {handovers} handovers (first at {:?})",
        missing.len(),
        frames.len() - first,
        missing.first()
    );
    eprintln!(
        "{} frames checked (from frame {first}), {handovers} handovers, {} stored, 0 missing, 0 twice",
        frames.len() - first,
        tickers.len()
    );
    // The check covered several seconds of data (over 2 s here).
    assert!(first < 400, "the relay started late: first frame {first}");
}

fn handovers(relay: &RelayHandle) -> f64 {
    metric(
        &relay.metrics.encode(),
        "mdrelay_handovers_total",
        "binance-spot",
    )
}

/// Stop the relay (nothing left unacked) and the fake venue; return the
/// handovers counted and the connections the venue accepted.
async fn finish(relay: RelayHandle, replay: Replay) -> (f64, u64) {
    let handovers = handovers(&relay);
    let report = relay.shutdown().await;
    assert_eq!(report.failed, 0);
    let connections = replay.stats.connections.load(Ordering::Relaxed);
    replay.stop().await;
    (handovers, connections)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planned_reconnects_overlap_and_lose_nothing() {
    let nats = Nats::start();
    let (replay, config, instruments) = setup(&nats).await;
    // Connections live 1 s: a handover every 0.9 s.
    let venues = venues_dir(|t| t.replace("max_lifetime = \"24h\"", "max_lifetime = \"1s\""));
    let relay = relay_in(venues.path(), &config).await;
    tokio::time::sleep(file_duration()).await;
    let (handovers, connections) = finish(relay, replay).await;
    assert!(
        handovers >= 2.0 && connections >= 3,
        "{handovers} handovers over {connections} connections"
    );
    check_stream(&nats, instruments, handovers).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_changing_connection_settings_hands_over_without_loss() {
    let nats = Nats::start();
    let (replay, config, instruments) = setup(&nats).await;
    let venues = venues_dir(|t| t.replace("max_lifetime = \"24h\"", "max_lifetime = \"1h\""));
    let config_dir = tempfile::tempdir().unwrap();
    let config_path = config_dir.path().join("relay.toml");
    std::fs::write(
        &config_path,
        format!("venues_dir = \"{}\"\n{config}", venues.path().display()),
    )
    .unwrap();
    let relay = start(
        load_relay(&config_path).unwrap(),
        StartOptions {
            http_listen: Some("127.0.0.1:0".parse().unwrap()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let _watch = relay
        .watch_files(config_path.clone(), venues.path().to_path_buf())
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // A connection setting changes: the connection must be replaced.
    let file = venues.path().join("binance-spot.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replace(
            "max_messages_per_second = 5 ",
            "max_messages_per_second = 4 ",
        ),
    )
    .unwrap();
    wait_until(
        Duration::from_secs(30),
        "the handover after the reload",
        || handovers(&relay) >= 1.0,
    )
    .await;
    tokio::time::sleep(file_duration().saturating_sub(Duration::from_millis(1500))).await;
    let (handovers, connections) = finish(relay, replay).await;
    assert_eq!(connections, 2);
    assert_eq!(handovers, 1.0);
    check_stream(&nats, instruments, handovers).await;
}
