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

fn stream_toml(replicas: usize, manage: &str, max_age: &str) -> String {
    format!(
        "[[nats.streams]]\nname = \"{STREAM}\"\nsubjects = [\"market.>\"]\nreplicas = {replicas}\n\
         manage = \"{manage}\"\nmax_age = \"{max_age}\"\nduplicate_window = \"5m\"\n"
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

/// Wait for the end of the recordings and for the stream to hold every
/// expected id.
async fn finish(feeds: &Feeds, client: &async_nats::Client) {
    feeds.wait_done(feeds.frames, Duration::from_secs(60)).await;
    wait_stored(
        client,
        STREAM,
        feeds.expected.len(),
        Duration::from_secs(30),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_leader_killed_mid_stream_loses_nothing() {
    leader_killed_mid_stream(false, false).await;
}

/// The same in fast-ingest batches (nats-server 2.14+): the batches open on
/// the old leader end with it, and what they did not confirm is sent again
/// alone to the new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_leader_killed_mid_stream_in_batches_loses_nothing() {
    if !crate::batched::fast_ingest_server() {
        return;
    }
    leader_killed_mid_stream(true, false).await;
}

/// The same in batches written by the direct publish connection
/// (`writer = "direct"`): when its server is the one killed, it reconnects
/// to another, and what it had written there unconfirmed is sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_leader_killed_mid_stream_through_the_direct_writer_loses_nothing() {
    if !crate::batched::fast_ingest_server() {
        return;
    }
    leader_killed_mid_stream(true, true).await;
}

/// The stream leader of an R3 stream is SIGKILLed mid-stream and comes back
/// 5 s later: every id once, in either publish mode and with either writer.
async fn leader_killed_mid_stream(batched: bool, direct: bool) {
    log_from_env();
    let mut cluster = Cluster::start(3).await;
    let t0 = Instant::now();
    let feeds = Feeds::start(&CLUSTER_FEEDS).await;
    let (publish, allow) = if batched {
        ("mode = \"batched\"\n", "allow_batched = true\n")
    } else {
        ("", "")
    };
    let writer = if direct { "writer = \"direct\"\n" } else { "" };
    let publish = format!("[nats.publish]\n{publish}{writer}");
    let config = format!(
        "[nats]\nurls = {}\n{publish}{}{allow}{}",
        cluster.urls_toml(),
        stream_toml(3, "reconcile", "1h"),
        feeds.venues_toml(|_| true)
    );
    let relay = relay(&config).await;
    let client = cluster.client().await;
    wait_stored(&client, STREAM, 3_000, Duration::from_secs(20)).await;
    let leader = cluster.stream_leader(&client, STREAM).await;
    cluster.kill(leader);
    eprintln!(
        "killed stream leader {} at {:?}",
        cluster.nodes[leader].name,
        t0.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    cluster.restart(leader).await;
    eprintln!(
        "restarted {} at {:?}",
        cluster.nodes[leader].name,
        t0.elapsed(),
    );
    finish(&feeds, &client).await;
    eprintln!("relay: {}", relay_metrics(&relay));
    let text = relay.metrics.encode();
    relay.shutdown().await;
    check(
        &tally(&client, STREAM, &feeds.expected).await,
        &feeds,
        "stream leader killed",
    );
    let batches = metric(&text, "mdrelay_publish_batches_total", "");
    eprintln!("fast-ingest batches: {batches}");
    if batched {
        assert!(batches > 0.0, "no fast-ingest batch was used");
    } else {
        assert_eq!(batches, 0.0, "acks mode used batches");
    }
    feeds.stop().await;
    eprintln!("test took {:?} from the cluster's start", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_of_every_node_loses_nothing() {
    log_from_env();
    let mut cluster = Cluster::start(3).await;
    let t0 = Instant::now();
    // Half the rate (about 550 frames/s for 27 s): three restarts, each
    // waiting for the node to be current again, fit in the recording even
    // on two busy cores.
    let feeds = Feeds::start_scaled(&CLUSTER_FEEDS, 0.5).await;
    let config = format!(
        "[nats]\nurls = {}\n{}{}",
        cluster.urls_toml(),
        stream_toml(3, "reconcile", "1h"),
        feeds.venues_toml(|_| true)
    );
    let relay = relay(&config).await;
    let client = cluster.client().await;
    wait_stored(&client, STREAM, 1_500, Duration::from_secs(20)).await;
    for i in 0..cluster.nodes.len() {
        let leader = cluster.stream_leader(&client, STREAM).await;
        let sent = feeds.sent();
        assert!(
            sent < feeds.frames,
            "node {i} would go down after the recordings ended; it must happen while streaming"
        );
        cluster.kill(i);
        cluster.restart(i).await;
        eprintln!(
            "{} (stream leader {}) killed with {sent} of {} frames sent, back and current by {:?}",
            cluster.nodes[i].name,
            cluster.nodes[leader].name,
            feeds.frames,
            t0.elapsed(),
        );
    }
    finish(&feeds, &client).await;
    eprintln!("relay: {}", relay_metrics(&relay));
    relay.shutdown().await;
    check(
        &tally(&client, STREAM, &feeds.expected).await,
        &feeds,
        "rolling restart",
    );
    feeds.stop().await;
    eprintln!("test took {:?} from the cluster's start", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_sharded_by_venue_share_one_stream_with_one_owner() {
    log_from_env();
    let mut cluster = Cluster::start(3).await;
    let t0 = Instant::now();
    let feeds = Feeds::start(&CLUSTER_FEEDS).await;
    // The owner reconciles the stream; the other relay's entry differs (a
    // shorter max_age) and only verifies it, so it must not rewrite it.
    let owner = relay(&format!(
        "[nats]\nurls = {}\n{}{}",
        cluster.urls_toml(),
        stream_toml(3, "reconcile", "1h"),
        feeds.venues_toml(|v| v.starts_with("binance"))
    ))
    .await;
    let reader = relay(&format!(
        "[nats]\nurls = {}\n{}{}",
        cluster.urls_toml(),
        stream_toml(3, "verify", "10m"),
        feeds.venues_toml(|v| !v.starts_with("binance"))
    ))
    .await;
    let client = cluster.client().await;
    wait_stored(&client, STREAM, 3_000, Duration::from_secs(20)).await;
    // A node other than the leader goes away and comes back meanwhile.
    let leader = cluster.stream_leader(&client, STREAM).await;
    let other = (leader + 1) % cluster.nodes.len();
    cluster.kill(other);
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.restart(other).await;
    finish(&feeds, &client).await;
    eprintln!(
        "owner: {}; reader: {}",
        relay_metrics(&owner),
        relay_metrics(&reader)
    );
    owner.shutdown().await;
    reader.shutdown().await;
    let js = async_nats::jetstream::new(client.clone());
    let live = js
        .get_stream(STREAM)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .config
        .clone();
    assert_eq!(
        live.max_age,
        Duration::from_secs(3600),
        "the verifying relay left the owner's settings alone"
    );
    assert_eq!(live.num_replicas, 3);
    check(
        &tally(&client, STREAM, &feeds.expected).await,
        &feeds,
        "sharded relays",
    );
    feeds.stop().await;
    eprintln!("test took {:?} from the cluster's start", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redundant_pair_with_one_relay_sigkilled_loses_nothing() {
    log_from_env();
    let cluster = Cluster::start(3).await;
    let t0 = Instant::now();
    let feeds = Feeds::start(&CLUSTER_FEEDS).await;
    let config = format!(
        "[nats]\nurls = {}\n{}{}",
        cluster.urls_toml(),
        stream_toml(3, "reconcile", "1h"),
        feeds.venues_toml(|_| true)
    );
    // Two processes on the same venues and instruments: every event is
    // published twice, stored once (same Nats-Msg-Id).
    let mut a = RelayProcess::spawn(&config);
    let mut b = RelayProcess::spawn(&config);
    let client = cluster.client().await;
    wait_stored(&client, STREAM, 4_000, Duration::from_secs(30)).await;
    // Both publish (the first to reach the stream stores an event, the
    // other's copy is acknowledged as a duplicate).
    for (name, r) in [("A", &a), ("B", &b)] {
        let (_, text) = http_get(r.http_addr(Duration::from_secs(5)).await, "/metrics").await;
        let sent = metric(&text, "mdrelay_events_published_total", "")
            + metric(&text, "mdrelay_events_duplicate_total", "");
        eprintln!("relay {name} before the kill: {sent} events acknowledged");
        assert!(sent > 500.0, "relay {name} publishes too");
    }
    a.kill();
    eprintln!("SIGKILLed relay A at {:?}", t0.elapsed());
    finish(&feeds, &client).await;
    let status = b.terminate(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "relay B exit {status:?}\n{}",
        b.log()
    );
    let log = b.log();
    eprintln!(
        "relay B: {}",
        log.lines()
            .find(|l| l.contains("relay stopped"))
            .unwrap_or("no summary")
    );
    check(
        &tally(&client, STREAM, &feeds.expected).await,
        &feeds,
        "redundant pair, one SIGKILLed",
    );
    feeds.stop().await;
    eprintln!("test took {:?} from the cluster's start", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_against_a_stream_lacking_the_subjects_refuses_to_start() {
    let cluster = Cluster::start(3).await;
    let client = cluster.client().await;
    let js = async_nats::jetstream::new(client.clone());
    js.create_stream(async_nats::jetstream::stream::Config {
        name: STREAM.into(),
        subjects: vec!["market.okx.>".into()],
        num_replicas: 3,
        ..Default::default()
    })
    .await
    .unwrap();
    let config = format!(
        "[nats]\nurls = {}\n{}[[venues]]\nid = \"binance-coinm\"\nurl = \"ws://127.0.0.1:9/\"\n\
         [[venues.subscriptions]]\ninstrument = \"BTCUSD_PERP\"\ntypes = [\"ticker\"]\n",
        cluster.urls_toml(),
        stream_toml(3, "verify", "1h"),
    );
    let mut relay = RelayProcess::spawn(&config);
    let status = relay
        .wait_exit(Duration::from_secs(20))
        .expect("the relay must refuse to start");
    let log = relay.log();
    eprintln!("{log}");
    assert!(!status.success(), "non-zero exit: {status:?}");
    for want in [
        "stream `MARKET` (manage = \"verify\") cannot carry",
        "subjects: live [market.okx.>], file [market.>]",
        "market.binance-coinm.btc-usd_btc.ticker",
        "market.binance-coinm.btc-usd_btc.status",
        "max_age: live none, file 1h",
    ] {
        assert!(log.contains(want), "`{want}` missing from:\n{log}");
    }
    let live = js
        .get_stream(STREAM)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .config
        .clone();
    assert_eq!(live.subjects, ["market.okx.>"], "verify never writes");
}

/// A relay near the venue publishes into a leaf node with its own
/// JetStream domain; the central stream sources the leaf's stream. The hub
/// goes away mid-stream (a WAN outage): the leaf keeps storing, and the
/// central stream catches up with every event, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaf_node_near_the_venue_feeds_the_central_stream_through_an_outage() {
    use crate::common::cluster::Node;
    log_from_env();
    let dir = tempfile::tempdir().unwrap();
    let leaf_port = free_port();
    let mut hub = Node::start(
        dir.path(),
        "hub",
        &format!(
            "jetstream {{ store_dir: \"{{store}}\", domain: hub }}\nleafnodes {{ listen: 127.0.0.1:{leaf_port} }}"
        ),
    )
    .await;
    let leaf = Node::start(
        dir.path(),
        "leaf",
        &format!(
            "jetstream {{ store_dir: \"{{store}}\", domain: tokyo }}\n\
             leafnodes {{ remotes: [ {{ url: \"nats-leaf://127.0.0.1:{leaf_port}\" }} ] }}"
        ),
    )
    .await;
    let t0 = Instant::now();
    let feeds = Feeds::start(&CLUSTER_FEEDS[..1]).await;
    let relay = relay(&format!(
        "[nats]\nurls = [\"{}\"]\n[[nats.streams]]\nname = \"MARKET_TOKYO\"\nsubjects = [\"market.>\"]\n\
         duplicate_window = \"5m\"\n{}",
        leaf.url(),
        feeds.venues_toml(|_| true)
    ))
    .await;
    // The central stream: no subjects of its own, it sources the leaf's.
    let hub_client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(hub.url())
        .await
        .unwrap();
    async_nats::jetstream::new(hub_client.clone())
        .create_stream(async_nats::jetstream::stream::Config {
            name: STREAM.into(),
            sources: Some(vec![async_nats::jetstream::stream::Source {
                name: "MARKET_TOKYO".into(),
                external: Some(async_nats::jetstream::stream::External {
                    api_prefix: "$JS.tokyo.API".into(),
                    delivery_prefix: None,
                }),
                ..Default::default()
            }]),
            duplicate_window: Duration::from_secs(300),
            ..Default::default()
        })
        .await
        .unwrap();
    let leaf_client = async_nats::connect(leaf.url()).await.unwrap();
    wait_stored(&hub_client, STREAM, 1_500, Duration::from_secs(20)).await;
    hub.kill();
    eprintln!(
        "hub down at {:?} ({} frames sent)",
        t0.elapsed(),
        feeds.sent()
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    hub.restart().await;
    eprintln!("hub back at {:?}", t0.elapsed());
    feeds.wait_done(feeds.frames, Duration::from_secs(60)).await;
    wait_stored(
        &leaf_client,
        "MARKET_TOKYO",
        feeds.expected.len(),
        Duration::from_secs(30),
    )
    .await;
    // nats-server 2.15 retries a source it lost with a back-off: after the
    // hub's restart the central stream resumes about 30-40 s later (2.9
    // resumed at once), so up to 90 s here.
    let caught_up = Instant::now();
    wait_stored(
        &hub_client,
        STREAM,
        feeds.expected.len(),
        Duration::from_secs(90),
    )
    .await;
    eprintln!(
        "central stream caught up {:?} after the feed ended",
        caught_up.elapsed()
    );
    relay.shutdown().await;
    check(
        &tally(&leaf_client, "MARKET_TOKYO", &feeds.expected).await,
        &feeds,
        "leaf stream",
    );
    check(
        &tally(&hub_client, STREAM, &feeds.expected).await,
        &feeds,
        "central stream, sourced through the leaf node",
    );
    feeds.stop().await;
    eprintln!("test took {:?}", t0.elapsed());
}
