//! Every event is accounted for, exactly, against what JetStream holds:
//!
//! - frames received = data frames + failed + unrouted + control frames;
//! - events mapped + events the relay made = acknowledged (stored or
//!   duplicate) + dropped, by cause (after the relay has drained);
//! - the stream holds exactly the events acknowledged as newly stored.
//!
//! Through a 30 s NATS outage at 1k frames/s with `block` trades and
//! `drop_newest` tickers, and through a SIGTERM while NATS is down.

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use mdrelay::tools::replay::ReplaySpec;

const FILES: [&str; 2] = [
    "benches/data/binance-spot.trades.jsonl",
    "benches/data/binance-spot.bbo.jsonl",
];

fn sum(text: &str, name: &str, filter: &str) -> f64 {
    metric(text, &format!("{name} "), filter) + metric(text, &format!("{name}{{"), filter)
}

/// The frame and event balances of a relay's metrics: (frames in, frames
/// accounted), (events in, events accounted).
fn balances(m: &str) -> ((f64, f64), (f64, f64)) {
    let frames_in = sum(m, "mdrelay_frames_received_total", "");
    let frames_out = sum(m, "mdrelay_data_frames_total", "")
        + sum(m, "mdrelay_mapping_failures_total", "")
        + sum(m, "mdrelay_unrouted_frames_total", "")
        + sum(m, "mdrelay_control_frames_total", "");
    let events_in =
        sum(m, "mdrelay_events_mapped_total", "") + sum(m, "mdrelay_events_generated_total", "");
    let events_out = sum(m, "mdrelay_events_published_total", "")
        + sum(m, "mdrelay_events_duplicate_total", "")
        + sum(m, "mdrelay_events_dropped_total", "");
    ((frames_in, frames_out), (events_in, events_out))
}

fn subscriptions() -> String {
    instruments("binance-spot", None, &FILES)
        .iter()
        .map(|i| {
            format!(
                "[[venues.subscriptions]]\ninstrument = \"{i}\"\ntypes = [\"trade\", \"ticker\"]\n"
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_30_s_nats_outage_at_1k_frames_per_second_is_accounted_for_exactly() {
    let mut nats = Nats::start();
    let replay = Replay::start(
        ReplaySpec {
            frames: frames(&FILES),
            rate: Some(1000.0),
            looped: true,
            ..Default::default()
        },
        None,
    )
    .await;
    let config = format!(
        "[nats]\nurls = [\"{}\"]\n[nats.publish]\nmax_in_flight = 64\nack_timeout = \"1s\"\n\
         [[nats.streams]]\nname = \"MARKET\"\nsubjects = [\"market.>\"]\nduplicate_window = \"5m\"\n\
         [pipeline.trade]\ncapacity = 512\nwhen_full = \"block\"\n\
         [pipeline.ticker]\ncapacity = 128\nwhen_full = \"drop_newest\"\n\
         [[venues]]\nid = \"binance-spot\"\nurl = \"{}\"\n{}",
        nats.url(),
        replay.url(),
        subscriptions()
    );
    let relay = relay(&config).await;
    let stream = Stream::connect(&nats, "MARKET").await;
    wait_for_count(&stream, 200, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    nats.kill();
    let down = Instant::now();
    let frames_at_kill = sum(&relay.metrics.encode(), "mdrelay_frames_received_total", "");
    let mut deepest = 0.0f64;
    while down.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let m = relay.metrics.encode();
        deepest = deepest.max(metric(&m, "mdrelay_queue_depth", "data_type=\"trade\""));
        assert_eq!(
            sum(&m, "mdrelay_publish_failures_total", ""),
            0.0,
            "nothing is a publish failure while NATS is away"
        );
    }
    assert!(
        deepest >= 256.0,
        "the trade queue filled while NATS was down and the gauge showed it ({deepest})"
    );
    let at_restart = relay.metrics.encode();
    let frames_during_outage =
        sum(&at_restart, "mdrelay_frames_received_total", "") - frames_at_kill;
    let lost_during_outage = sum(&at_restart, "mdrelay_reconnects_total", "");
    nats.restart();
    let up = Instant::now();
    // Let the backlog drain, then stop the venue and let the rest drain.
    tokio::time::sleep(Duration::from_secs(5)).await;
    replay.stop().await;
    let metrics = relay.metrics.clone();
    // Drained means the session has also read the replay's close: while
    // trades were blocked the socket buffered frames, and the queues can be
    // empty for a moment between two of them (CI saw that once, and shut
    // the relay down before it had read to the end).
    wait_until(
        Duration::from_secs(60),
        "venue closed, queues and window empty",
        || {
            let m = metrics.encode();
            sum(&m, "mdrelay_reconnects_total", "") >= 1.0
                && metric(&m, "mdrelay_publish_in_flight", "") == 0.0
                && metric(&m, "mdrelay_queue_depth", "") == 0.0
        },
    )
    .await;
    // Read at once: the next attempt, to a replay that is gone, fails too
    // and counts, but not before the first backoff (>= 250 ms).
    let reconnects_at_drain = sum(&metrics.encode(), "mdrelay_reconnects_total", "");
    eprintln!("drained {:?} after NATS came back", up.elapsed());
    let report = relay.shutdown().await;
    let m = metrics.encode();
    let ((frames_in, frames_out), (events_in, events_out)) = balances(&m);
    let causes: Vec<String> = m
        .lines()
        .filter(|l| l.starts_with("mdrelay_events_dropped_total{") && !l.ends_with(" 0"))
        .map(str::to_owned)
        .collect();
    eprintln!(
        "frames {frames_in} = {frames_out} ({frames_during_outage} while NATS was down); events {events_in} = {events_out}; report {report:?}; drops: {causes:#?}"
    );
    // The venue connection went on reading through the outage (tickers
    // dropped, trades queued), without a reconnect. Measured by what was
    // read while NATS was away, not by a total: the replay and the debug
    // relay share two cores with other tests, and fell to ~550 frames/s
    // in one CI run (21,070 frames in all, against ~38,000 sent at 1k/s).
    assert!(
        frames_during_outage >= 5_000.0,
        "the venue kept sending while NATS was down ({frames_during_outage} frames in 30 s)"
    );
    assert_eq!(
        lost_during_outage, 0.0,
        "the venue connection stayed up through the NATS outage"
    );
    assert_eq!(
        reconnects_at_drain, 1.0,
        "the venue connection was lost once: when the replay stopped"
    );
    assert_eq!(frames_in, frames_out, "every frame accounted for");
    assert_eq!(events_in, events_out, "every event accounted for");
    assert_eq!(report.failed, 0);
    assert_eq!(report.abandoned(), 0);
    let drops = |cause: &str, t: &str| {
        sum(
            &m,
            "mdrelay_events_dropped_total",
            &format!("cause=\"{cause}\",data_type=\"{t}\""),
        ) + sum(
            &m,
            "mdrelay_events_dropped_total",
            &format!("data_type=\"{t}\",cause=\"{cause}\""),
        )
    };
    assert!(
        drops("queue_full", "ticker") > 0.0,
        "drop_newest tickers were dropped and counted: {causes:?}"
    );
    assert_eq!(drops("queue_full", "trade"), 0.0, "block trades never drop");
    // What the stream holds is exactly what was acknowledged as new.
    let stream = Stream::connect(&nats, "MARKET").await;
    let stored = stream.all().await;
    assert_eq!(
        stored.len() as f64,
        sum(&m, "mdrelay_events_published_total", ""),
        "stored = acknowledged as new"
    );
    assert_eq!(stored.len() as u64, report.stored);
    let ids: HashSet<&str> = stored.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids.len(), stored.len(), "nothing stored twice");
    // Every distinct recorded trade is there (trades are never dropped).
    let want = mdrelay::config::venue::load_venue(&root().join("venues/binance-spot.toml"))
        .map(|v| book_and_trade_ids(&v))
        .unwrap();
    for id in &want {
        assert!(ids.contains(id.as_str()), "trade {id} missing");
    }
}

/// `s` without ANSI colour sequences.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The event ids of the recorded trades.
fn book_and_trade_ids(venue: &mdrelay::engine::venue::Venue) -> Vec<String> {
    let mut mapper =
        mdrelay::engine::mapper::Mapper::new(venue.id.clone(), None, Default::default());
    let mut out = Vec::new();
    let mut ids = Vec::new();
    for f in frames(&[FILES[0]]) {
        out.clear();
        let _ = mapper.map(venue, f.as_raw(), mdrelay::domain::Timestamp(0), &mut out);
        ids.extend(out.iter().map(|e| e.id.0.clone()));
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_nats_down_reports_what_jetstream_holds_and_exits_3() {
    let mut nats = Nats::start();
    let replay = Replay::start(
        ReplaySpec {
            frames: frames(&FILES),
            rate: Some(500.0),
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
            "venues_dir = \"{}\"\n[service]\nshutdown_timeout = \"2s\"\n[http]\nlisten = \"127.0.0.1:0\"\n\
             [nats]\nurls = [\"{}\"]\n[[nats.streams]]\nname = \"MARKET\"\nsubjects = [\"market.>\"]\n\
             [[venues]]\nid = \"binance-spot\"\nurl = \"{}\"\n{}",
            root().join("venues").display(),
            nats.url(),
            replay.url(),
            subscriptions()
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_mdrelay"))
        .args(["run", "--no-watch", "--config"])
        .arg(&cfg)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stream = Stream::connect(&nats, "MARKET").await;
    wait_for_count(&stream, 100, Duration::from_secs(10)).await;
    nats.kill();
    // Events pile up in the queues and the window while NATS is away.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let t0 = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().unwrap();
    let log = strip_ansi(&String::from_utf8_lossy(&out.stderr));
    let stop_took = t0.elapsed();
    assert_eq!(
        out.status.code(),
        Some(3),
        "exit code 3: events abandoned\n{log}"
    );
    let line = log
        .lines()
        .find(|l| l.contains("relay stopped"))
        .unwrap_or_else(|| panic!("no summary in:\n{log}"));
    let field = |name: &str| -> u64 {
        let s = line
            .split(&format!(" {name}="))
            .nth(1)
            .unwrap_or_else(|| panic!("no {name} in {line}"));
        s.chars()
            .take_while(|c| c.is_ascii_digit())
            .collect::<String>()
            .parse()
            .unwrap()
    };
    let (stored, abandoned) = (field("stored"), field("abandoned"));
    let unconfirmed = log
        .lines()
        .find(|l| l.contains("events abandoned"))
        .and_then(|l| l.split(" sent_unconfirmed=").nth(1))
        .map_or(0, |s| {
            s.chars()
                .take_while(|c| c.is_ascii_digit())
                .collect::<String>()
                .parse()
                .unwrap()
        });
    assert!(abandoned > 0, "events were queued at SIGTERM: {line}");
    assert!(
        stop_took < Duration::from_secs(6),
        "the drain is bounded: {stop_took:?}"
    );
    // Count what JetStream holds once it is back: every event reported as
    // stored, plus at most those sent without an ack.
    nats.restart();
    let stream = Stream::connect(&nats, "MARKET").await;
    let held = stream.count().await;
    eprintln!("report: {line}\nJetStream holds {held}; unconfirmed {unconfirmed}");
    assert!(
        held >= stored && held <= stored + unconfirmed,
        "JetStream holds {held}, the report says {stored} stored and {unconfirmed} sent without an ack"
    );
    replay.stop().await;
}
