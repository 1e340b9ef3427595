//! The relay on a three-node JetStream cluster (real `nats-server`s routed
//! on loopback, streams with `replicas = 3`, the relay's `[nats] urls`
//! listing every node), fed recorded frames at about 1,100 frames/s. Each
//! case counts the events' ids in the stream against the ids the recorded
//! frames map to: 0 lost, 0 stored twice.

use std::time::{Duration, Instant};

use crate::common::cluster::Cluster;
use crate::common::feeds::{CLUSTER_FEEDS, Feeds, Tally, tally, wait_stored};
use crate::common::*;

const STREAM: &str = "MARKET";

fn stream_toml(replicas: usize, manage: &str) -> String {
    format!(
        "[[nats.streams]]\nname = \"{STREAM}\"\nsubjects = [\"market.>\"]\nreplicas = {replicas}\n\
         manage = \"{manage}\"\nduplicate_window = \"5m\"\n"
    )
}

fn relay_metrics(relay: &mdrelay::application::relay::RelayHandle) -> String {
    let text = relay.metrics.encode();
    format!(
        "published {} duplicate {} retries {} failures {}",
        metric(&text, "mdrelay_events_published_total", ""),
        metric(&text, "mdrelay_events_duplicate_total", ""),
        metric(&text, "mdrelay_publish_retries_total", ""),
        metric(&text, "mdrelay_publish_failures_total", ""),
    )
}

fn check(t: &Tally, feeds: &Feeds, what: &str) {
    eprintln!(
        "{what}: {} expected ids, {} messages stored (status events included), {} lost {:?}, {} stored twice",
        feeds.expected.len(),
        t.stored,
        t.lost,
        t.lost_sample,
        t.twice
    );
    assert_eq!(t.lost, 0, "{what}: events lost, e.g. {:?}", t.lost_sample);
    assert_eq!(t.twice, 0, "{what}: events stored twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_leader_killed_mid_stream_loses_nothing() {
    log_from_env();
    let t0 = Instant::now();
    let mut cluster = Cluster::start(3).await;
    let feeds = Feeds::start(&CLUSTER_FEEDS).await;
    let config = format!(
        "[nats]\nurls = {}\n{}{}",
        cluster.urls_toml(),
        stream_toml(3, "reconcile"),
        feeds.venues_toml(|_| true)
    );
    let relay = relay(&config).await;
    let client = cluster.client().await;
    wait_stored(&client, STREAM, 3_000, Duration::from_secs(20)).await;
    let leader = cluster.stream_leader(&client, STREAM).await;
    let killed_at = t0.elapsed();
    cluster.kill(leader);
    eprintln!(
        "killed stream leader {} at {killed_at:?}",
        cluster.nodes[leader].name
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    cluster.restart(leader).await;
    let new_leader = cluster.stream_leader(&client, STREAM).await;
    eprintln!(
        "restarted {} at {:?}; leader now {}",
        cluster.nodes[leader].name,
        t0.elapsed(),
        cluster.nodes[new_leader].name
    );
    feeds.wait_sent(1, Duration::from_secs(60)).await;
    wait_stored(
        &client,
        STREAM,
        feeds.expected.len(),
        Duration::from_secs(30),
    )
    .await;
    eprintln!("relay: {}", relay_metrics(&relay));
    relay.shutdown().await;
    let t = tally(&client, STREAM, &feeds.expected).await;
    check(&t, &feeds, "stream leader killed");
    feeds.stop().await;
    eprintln!("test took {:?}", t0.elapsed());
}
