//! Memory stays bounded under a flood: the real binary relays two venues
//! blasting recorded frames as fast as it reads them while NATS is killed
//! for most of the run, so the queues fill and stay full. Its resident set
//! is sampled every second; it must level off below a fixed bound.
//!
//! `MDRELAY_FLOOD_SECONDS` sets the flood length (default 15; the figure in
//! docs/reliability.md is from a 60 s run).

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;
use mdrelay::tools::replay::ReplaySpec;

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rss_levels_off_under_a_flood_with_nats_down() {
    let seconds: u64 = std::env::var("MDRELAY_FLOOD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    let mut nats = Nats::start();
    let flood = |path: &str| ReplaySpec {
        frames: frames(&[path]),
        looped: true,
        ..Default::default()
    };
    let okx = Replay::start(flood("benches/data/okx.book.jsonl"), None).await;
    let binance = Replay::start(flood("benches/data/binance-spot.trades.jsonl"), None).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("relay.toml");
    std::fs::write(
        &config,
        format!(
            "venues_dir = \"{venues}\"\n[http]\nlisten = \"127.0.0.1:{http}\"\n\
             [nats]\nurls = [\"{nats}\"]\n[[nats.streams]]\nname = \"MARKET\"\n\
             subjects = [\"market.>\"]\nmax_messages = 200000\n\
             [pipeline.trade]\ncapacity = 8192\nwhen_full = \"block\"\n\
             [pipeline.l2_orderbook]\ncapacity = 8192\nwhen_full = \"drop_newest\"\n\
             [[venues]]\nid = \"okx\"\nurl = \"{okx}\"\n{okx_subs}\
             [[venues]]\nid = \"binance-spot\"\nurl = \"{binance}\"\n{binance_subs}",
            venues = root().join("venues").display(),
            http = free_port(),
            nats = nats.url(),
            okx = okx.url(),
            binance = binance.url(),
            okx_subs = subs_for("okx", &["benches/data/okx.book.jsonl"], "\"l2_orderbook\""),
            binance_subs = subs_for(
                "binance-spot",
                &["benches/data/binance-spot.trades.jsonl"],
                "\"trade\""
            ),
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mdrelay"))
        .args(["run", "--no-watch", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    tokio::time::sleep(Duration::from_secs(2)).await;
    nats.kill();
    let mut samples = Vec::new();
    for _ in 0..seconds {
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(
            child.try_wait().unwrap().is_none(),
            "the relay must not exit"
        );
        samples.push(rss_kib(pid).expect("relay running"));
    }
    let sent = okx
        .stats
        .frames_sent
        .load(std::sync::atomic::Ordering::Relaxed)
        + binance
            .stats
            .frames_sent
            .load(std::sync::atomic::Ordering::Relaxed);
    let _ = Command::new("kill").arg(pid.to_string()).status();
    let _ = child.wait();
    let mib = |k: u64| k as f64 / 1024.0;
    let peak = *samples.iter().max().unwrap();
    let half = samples[samples.len() / 2];
    let last = *samples.last().unwrap();
    eprintln!(
        "{seconds} s flood with NATS down, {sent} frames sent by the venues: RSS at half time {:.1} MiB, at the end {:.1} MiB, peak {:.1} MiB",
        mib(half),
        mib(last),
        mib(peak)
    );
    // Two queues of 8192 events plus buffers: far below this.
    assert!(mib(peak) < 192.0, "peak RSS {:.1} MiB", mib(peak));
    // Levelled off: the second half grows by less than 16 MiB.
    assert!(
        mib(last) - mib(half) < 16.0,
        "still growing: {:.1} → {:.1} MiB",
        mib(half),
        mib(last)
    );
    okx.stop().await;
    binance.stop().await;
}
