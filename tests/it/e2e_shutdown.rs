//! SIGTERM with events in flight: the `mdrelay` binary drains what is queued
//! and in flight, exits 0, and everything it reports as acknowledged is in
//! the stream.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use mdrelay::tools::replay::ReplaySpec;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_queued_and_in_flight_events() {
    let nats = Nats::start();
    // Thousands of events as fast as the relay takes them.
    let replay = Replay::start(
        ReplaySpec {
            frames: frames(&["benches/data/okx.book.jsonl"]),
            ..Default::default()
        },
        None,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("relay.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"venues_dir = "{venues}"
[service]
shutdown_timeout = "20s"
[http]
listen = "127.0.0.1:0"
[nats]
urls = ["{url}"]
[nats.publish]
max_in_flight = 1
[[nats.streams]]
name = "MARKET"
subjects = ["market.>"]
[[venues]]
id = "okx"
url = "{ws}"
{subs}"#,
            venues = root().join("venues").display(),
            url = nats.url(),
            ws = replay.url(),
            subs = subs_for("okx", &["benches/data/okx.book.jsonl"], "\"l2_orderbook\"")
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
    let stream = Stream::connect(&nats, "MARKET").await;
    // Stop while the backlog is being published: one event in flight at a
    // time (a broker round trip each) against frames read in microseconds
    // keeps a backlog of hundreds queued, whatever the machine's speed.
    let at_kill = wait_for_count_every(
        &stream,
        20,
        Duration::from_secs(20),
        Duration::from_millis(5),
    )
    .await;
    // A window of one slot shared by one publisher per data type still
    // publishes (idle publishers hold no slot).
    assert!(at_kill >= 20, "only {at_kill} stored before SIGTERM");
    let t0 = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit status {:?}\n{log}", out.status);
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "drain took {:?}",
        t0.elapsed()
    );
    let line = log
        .lines()
        .find(|l| l.contains("relay stopped"))
        .unwrap_or_else(|| panic!("no summary in:\n{log}"));
    let field = |name: &str| -> u64 {
        let s = line
            .split(&format!("{name}\u{1b}[0m\u{1b}[2m=\u{1b}[0m"))
            .nth(1)
            .or_else(|| line.split(&format!("{name}=")).nth(1))
            .unwrap();
        s.chars()
            .take_while(|c| c.is_ascii_digit())
            .collect::<String>()
            .parse()
            .unwrap()
    };
    let (acked, failed, abandoned) = (field("acked"), field("failed"), field("abandoned"));
    assert_eq!(failed, 0, "{line}");
    assert_eq!(abandoned, 0, "{line}");
    assert!(
        acked > at_kill,
        "events were still in flight at SIGTERM ({at_kill} stored): {line}"
    );
    eprintln!(
        "{at_kill} stored at SIGTERM, {acked} acknowledged by exit, drain took {:?}",
        t0.elapsed()
    );
    assert_eq!(
        stream.count().await,
        field("stored"),
        "everything acknowledged as newly stored is in the stream (the recording repeats a few frames byte for byte: duplicates): {line}"
    );
    replay.stop().await;
}
