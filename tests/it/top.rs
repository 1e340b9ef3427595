//! `mdrelay top --once` against a running relay: two replayed venues each
//! show a row with non-zero frame and event rates; `--venue` shows one
//! venue's connections and live instruments; an unknown venue, an unreachable relay and a URL
//! that is not a relay exit non-zero with a message.

use std::process::Output;
use std::time::Duration;

use crate::common::*;
use mdrelay::tools::replay::ReplaySpec;

const VENUES: [(&str, &str); 2] = [
    ("binance-spot", "fixtures/binance-spot/trades.jsonl"),
    ("okx", "fixtures/okx/trades.jsonl"),
];

async fn top(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_mdrelay"))
        .arg("top")
        .args(args)
        .env_remove("MDRELAY_HTTP")
        .env_remove("MDRELAY_CONFIG")
        .output()
        .await
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A rate cell (`870`, `1.2k`, `3.5`) as a number.
fn rate(cell: &str) -> f64 {
    let (num, scale) = match cell.strip_suffix('k') {
        Some(n) => (n, 1e3),
        None => match cell.strip_suffix('M') {
            Some(n) => (n, 1e6),
            None => (cell, 1.0),
        },
    };
    num.parse::<f64>()
        .unwrap_or_else(|_| panic!("`{cell}` is not a rate"))
        * scale
}

fn relay_config(nats: &Nats, replays: &[Replay]) -> String {
    let mut c = format!(
        "[nats]\nurls = [\"{}\"]\n[[nats.streams]]\nname = \"MARKET\"\nsubjects = [\"market.>\"]\n",
        nats.url()
    );
    for ((venue, file), replay) in VENUES.iter().zip(replays) {
        c.push_str(&format!(
            "[[venues]]\nid = \"{venue}\"\nurl = \"{}\"\n{}",
            replay.url(),
            subs_for(venue, &[file], "\"trade\"")
        ));
    }
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_once_shows_every_venue_of_a_running_relay_with_non_zero_rates() {
    let nats = Nats::start();
    let mut replays = Vec::new();
    for (_, file) in VENUES {
        let spec = ReplaySpec {
            frames: frames(&[file]),
            rate: Some(200.0),
            looped: true,
            ..Default::default()
        };
        replays.push(Replay::start(spec, None).await);
    }
    let relay = relay(&relay_config(&nats, &replays)).await;
    let stream = Stream::connect(&nats, "MARKET").await;
    wait_for_count(&stream, 20, Duration::from_secs(15)).await;
    let url = format!("http://{}", relay.http_addr);

    let out = top(&["--once", "--url", &url, "--interval", "1s"]).await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(
        !stdout.contains('\u{1b}'),
        "escape codes in --once:\n{stdout}"
    );
    let header = stdout.lines().find(|l| l.starts_with("VENUE")).unwrap();
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        [
            "VENUE", "STATUS", "CONN", "FRAMES/S", "EVENTS/S", "LAG", "P50", "LAG", "P99", "ACK",
            "P50", "ACK", "P99", "GAPS", "RECONN", "STALE"
        ]
    );
    for (venue, _) in VENUES {
        let row: Vec<&str> = stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(venue))
            .unwrap_or_else(|| panic!("no row for {venue}:\n{stdout}"))
            .split_whitespace()
            .collect();
        assert_eq!(row.len(), 12, "{row:?}");
        assert_eq!(row[2], "1/1", "{venue}: one connection, up\n{stdout}");
        assert!(rate(row[3]) > 0.0, "{venue} frames/s\n{stdout}");
        assert!(rate(row[4]) > 0.0, "{venue} events/s\n{stdout}");
        // Every event of the window was acknowledged: an ack latency shows.
        assert_ne!(row[7], "-", "{venue} ack p50\n{stdout}");
        assert_eq!(row[11], "0", "{venue}: no stale instrument\n{stdout}");
    }

    let out = top(&[
        "--once",
        "--url",
        &url,
        "--interval",
        "200ms",
        "--venue",
        "okx",
    ])
    .await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.lines().any(|l| l.starts_with("okx ")), "{stdout}");
    assert!(
        !stdout.lines().any(|l| l.starts_with("binance-spot")),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("0 ") && l.contains("connected")),
        "{stdout}"
    );
    // Its instruments, each with a live trade column (/health per instrument).
    let subscribed = instruments("okx", None, &[VENUES[1].1]);
    assert!(subscribed.len() > 1);
    for i in &subscribed {
        let row = stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(i.as_str()))
            .unwrap_or_else(|| panic!("no row for {i}:\n{stdout}"));
        assert!(row.contains(" live "), "{row}");
    }

    let out = top(&["--once", "--url", &url, "--venue", "nope"]).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("unknown venue `nope`; this relay has: binance-spot, okx"),
        "{}",
        text(&out.stderr)
    );
    for r in replays {
        r.stop().await;
    }
}

#[tokio::test]
async fn top_once_fails_with_a_message_when_the_url_is_not_a_running_relay() {
    // Nothing listens there.
    let port = free_port();
    let out = top(&["--once", "--url", &format!("127.0.0.1:{port}")]).await;
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "cannot reach the relay at http://127.0.0.1:{port}/metrics"
        )),
        "{err}"
    );
    assert!(out.stdout.is_empty());

    // An HTTP server that is not the relay.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, axum::Router::new()).await });
    let out = top(&["--once", "--url", &format!("http://{addr}")]).await;
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "http://{addr}/metrics answered HTTP 404 Not Found"
        )),
        "{err}"
    );

    // The live view with no terminal (output captured here).
    let out = top(&["--url", &format!("http://{addr}")]).await;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("the live view needs a terminal; use --once"));

    // Not an HTTP URL at all.
    let out = top(&["--once", "--url", "nats://127.0.0.1:4222"]).await;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("is not an http:// URL"));
}
