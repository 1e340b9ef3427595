//! A venue flooding the relay with bad frames cannot flood its log: one
//! line per cause per 10 s, with the count of what was left out, and
//! offending values cut to a few hundred bytes.
//!
//! The frames are synthetic damage (a recorded OKX trade frame with its
//! price replaced), not recordings. `MDRELAY_LOG_FLOOD` sets how many
//! (default 200,000; docs/reliability.md quotes a 1,000,000 run).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

/// Bad frames sent.
fn flood() -> u64 {
    std::env::var("MDRELAY_LOG_FLOOD")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_bad_frames_write_a_bounded_log() {
    let nats = Nats::start();
    let trade = std::fs::read_to_string(root().join("fixtures/okx/trades.jsonl"))
        .unwrap()
        .lines()
        .find(|l| l.contains("\"channel\":\"trades\"") && l.contains("\"instId\":\"BTC-USDT\""))
        .unwrap()
        .to_owned();
    let px = trade
        .split("\"px\":\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    let bad = trade.replace(&format!("\"px\":\"{px}\""), "\"px\":\"not a price\"");
    // A 5 MB numeric string where the price goes.
    let huge = trade.replace(
        &format!("\"px\":\"{px}\""),
        &format!("\"px\":\"{}x\"", "1".repeat(5 << 20)),
    );
    let flood = flood();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        if let Ok((tcp, _)) = listener.accept().await
            && let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await
        {
            let _ = ws.next().await;
            for _ in 0..3 {
                let _ = ws.feed(Message::text(huge.clone())).await;
            }
            for _ in 0..flood {
                if ws.feed(Message::text(bad.clone())).await.is_err() {
                    return;
                }
            }
            let _ = ws.flush().await;
            while ws.next().await.is_some() {}
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    let cfg = dir.path().join("relay.toml");
    std::fs::write(
        &cfg,
        format!(
            "venues_dir = \"{}\"\n[http]\nlisten = \"127.0.0.1:{http}\"\n[nats]\nurls = [\"{}\"]\n\
             [[nats.streams]]\nname = \"MARKET\"\nsubjects = [\"market.>\"]\n\
             [[venues]]\nid = \"okx\"\nurl = \"{url}\"\n[[venues.subscriptions]]\n\
             instrument = \"BTC-USDT\"\ntypes = [\"trade\"]\n",
            root().join("venues").display(),
            nats.url()
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_mdrelay"))
        .args(["run", "--no-watch", "--config"])
        .arg(&cfg)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{http}").parse().unwrap();
    let t0 = Instant::now();
    let failures = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Ok(Ok(s)) =
            tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr)).await
        {
            drop(s);
            let (_, m) = http_get(addr, "/metrics").await;
            let n = metric(&m, "mdrelay_mapping_failures_total", "okx");
            if n >= (flood + 3) as f64 {
                break n;
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "the flood did not get through"
        );
    };
    let took = t0.elapsed();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    let longest = log.lines().map(str::len).max().unwrap_or(0);
    let skipped = log.lines().filter(|l| l.contains("frame skipped")).count();
    eprintln!(
        "{failures} bad frames in {took:?}: log {} bytes, {} lines ({skipped} 'frame skipped'), longest line {longest} bytes",
        log.len(),
        log.lines().count()
    );
    // One line per 10 s for the cause, plus start and stop lines.
    let bound_lines = 2 + took.as_secs() as usize / 10;
    assert!(
        skipped >= 1 && skipped <= bound_lines,
        "{skipped} lines for one cause"
    );
    assert!(log.len() < 64 * 1024, "log of {} bytes", log.len());
    assert!(longest < 2048, "a line of {longest} bytes");
    assert!(
        log.contains("suppressed"),
        "the count of left-out lines is logged"
    );
}
