//! Who may change a stream (`manage = "reconcile" | "create" | "verify"`),
//! and the start-up check that some stream captures every subject the
//! relay publishes; on one `nats-server`.

use std::time::Duration;

use crate::common::*;

/// A relay config with one stream entry and one Binance COIN-M
/// subscription (nothing needs to answer on the venue URL).
fn config(nats: &Nats, stream: &str, extra_nats: &str) -> String {
    format!(
        "[nats]\nurls = [\"{}\"]\n{extra_nats}{stream}[[venues]]\nid = \"binance-coinm\"\n\
         url = \"ws://127.0.0.1:9/\"\n[[venues.subscriptions]]\ninstrument = \"BTCUSD_PERP\"\n\
         types = [\"ticker\", \"trade\"]\n",
        nats.url()
    )
}

fn entry(manage: &str, subjects: &str, max_age: &str) -> String {
    format!(
        "[[nats.streams]]\nname = \"MARKET\"\nmanage = \"{manage}\"\nsubjects = [{subjects}]\n\
         max_age = \"{max_age}\"\n"
    )
}

async fn live(nats: &Nats) -> async_nats::jetstream::stream::Config {
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    js.get_stream("MARKET")
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .config
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_reconcile_changes_a_stream_and_verify_never_creates_one() {
    let nats = Nats::start();
    let all = "\"market.>\"";
    // verify: the stream does not exist, and is not created.
    let err = try_relay(&config(&nats, &entry("verify", all, "1h"), ""))
        .await
        .err()
        .expect("verify must refuse a missing stream");
    let text = err.to_string();
    assert!(
        text.contains("stream `MARKET` does not exist") && text.contains("never creates it"),
        "{text}"
    );
    // create: made when missing.
    try_relay(&config(&nats, &entry("create", all, "1h"), ""))
        .await
        .unwrap()
        .shutdown()
        .await;
    assert_eq!(live(&nats).await.max_age, Duration::from_secs(3600));
    // create and verify with other settings: left as they are.
    for manage in ["create", "verify"] {
        try_relay(&config(&nats, &entry(manage, all, "2h"), ""))
            .await
            .unwrap()
            .shutdown()
            .await;
        assert_eq!(
            live(&nats).await.max_age,
            Duration::from_secs(3600),
            "{manage} changed the stream"
        );
    }
    // reconcile: updated to the file.
    try_relay(&config(&nats, &entry("reconcile", all, "2h"), ""))
        .await
        .unwrap()
        .shutdown()
        .await;
    assert_eq!(live(&nats).await.max_age, Duration::from_secs(7200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subjects_no_stream_captures_refuse_the_start_and_name_them() {
    let nats = Nats::start();
    // The stream captures another venue's subjects only.
    let other = entry("reconcile", "\"market.okx.>\"", "1h");
    let err = try_relay(&config(&nats, &other, ""))
        .await
        .err()
        .expect("must refuse");
    let text = err.to_string();
    eprintln!("{text}");
    for want in [
        "3 subject(s) this relay publishes are captured by no stream",
        "market.binance-coinm.btc-usd_btc.status",
        "market.binance-coinm.btc-usd_btc.ticker",
        "market.binance-coinm.btc-usd_btc.trade",
        "missing_stream = \"warn\"",
    ] {
        assert!(text.contains(want), "`{want}` missing from: {text}");
    }
    // Captured by a stream the relay does not manage: fine.
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "BINANCE".into(),
        subjects: vec!["market.binance-coinm.*.*".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    try_relay(&config(&nats, &other, ""))
        .await
        .unwrap()
        .shutdown()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_missing_stream_warn_the_relay_starts_and_logs_the_subjects() {
    let nats = Nats::start();
    let cfg = config(
        &nats,
        &entry("reconcile", "\"market.okx.>\"", "1h"),
        "missing_stream = \"warn\"\n",
    );
    let mut relay = RelayProcess::spawn(&cfg);
    wait_until(Duration::from_secs(20), "the relay to start", || {
        relay.log().contains("relay started")
    })
    .await;
    let log = relay.log();
    let line = log
        .lines()
        .find(|l| l.contains("captured by no stream"))
        .unwrap_or_else(|| panic!("no warning in:\n{log}"));
    assert!(line.contains("WARN"), "{line}");
    assert!(
        line.contains("market.binance-coinm.btc-usd_btc.trade"),
        "{line}"
    );
    assert!(relay.terminate(Duration::from_secs(20)).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_on_a_single_server_are_reported_as_such() {
    let nats = Nats::start();
    let cfg = config(
        &nats,
        "[[nats.streams]]\nname = \"MARKET\"\nsubjects = [\"market.>\"]\nreplicas = 3\n",
        "",
    );
    match try_relay(&cfg).await {
        Err(e) => {
            let text = e.to_string();
            eprintln!("{text}");
            assert!(
                text.contains("`replicas = 3` needs a JetStream cluster")
                    && text.contains("set `replicas = 1`"),
                "{text}"
            );
        }
        Ok(relay) => {
            relay.shutdown().await;
            panic!(
                "started with replicas = 3 on one server; live: {:?}",
                live(&nats).await.num_replicas
            );
        }
    }
}
