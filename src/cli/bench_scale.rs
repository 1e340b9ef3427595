//! `mdrelay bench --scale`: how the relay grows with the work. The recorded
//! feeds of `benches/data/feeds.toml` stream at one steady rate in every
//! run (the same events per second, so CPU per event compares), and the
//! relay also subscribes idle instruments on four more venues, served by a
//! fake venue that accepts the subscriptions and sends nothing. Runs: the
//! feeds alone (their recorded instruments, 3 venues), then with 10, 100
//! and 1,000 idle instruments more (7 venues). Reported per run: venue
//! connections, RSS at the end of the window and its peak, relay CPU per
//! event; then the RSS slope per idle instrument and the cost of a venue.
//!
//! The idle instruments' names are **synthetic** (`SYN0001USDT`, ...): a
//! load test of subscription state, not recorded data. Within the window
//! no subscription needs an ack (the venues' default ack timeout is 15 s;
//! keep `--seconds` at 12 or less).

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::{Context, bail};

use super::bench::{Args, PhaseResult, relay_config_with, run_phase};
use super::bench_procs::{
    Children, free_port, nats_server, spawn_replay, start_replays, tempfile_dir, wait_port,
};

/// Frames per second of the recorded feeds, in every run.
const RATE: u32 = 2_000;

/// An idle venue: id, market, data types, synthetic instrument pattern
/// (`{}` is the instrument number).
struct Idle {
    id: &'static str,
    market: Option<&'static str>,
    types: &'static str,
    name: fn(usize) -> String,
}

const IDLE: [Idle; 4] = [
    Idle {
        id: "binance-usdm",
        market: None,
        types: "\"trade\", \"ticker\"",
        name: |i| format!("SYN{i:04}USDT"),
    },
    Idle {
        id: "bybit",
        market: Some("linear"),
        types: "\"trade\", \"ticker\", \"l2_orderbook\"",
        name: |i| format!("SYN{i:04}USDT"),
    },
    Idle {
        id: "crypto-com",
        market: None,
        types: "\"trade\", \"ticker\", \"l2_orderbook\"",
        name: |i| format!("SYN{i:04}_USDT"),
    },
    Idle {
        id: "deribit",
        market: None,
        types: "\"trade\", \"ticker\", \"l2_orderbook\"",
        name: |i| format!("SYN{i:04}-PERPETUAL"),
    },
];

/// `[[venues]]` entries for `n` idle instruments spread over [`IDLE`].
fn idle_venues(n: usize, port: u16) -> String {
    let mut s = String::new();
    for (v, idle) in IDLE.iter().enumerate() {
        let mine: Vec<usize> = (0..n).filter(|i| i % IDLE.len() == v).collect();
        if mine.is_empty() {
            continue;
        }
        let _ = write!(
            s,
            "[[venues]]\nid = \"{}\"\nurl = \"ws://127.0.0.1:{port}/\"\n",
            idle.id
        );
        let market = idle
            .market
            .map(|m| format!("market = \"{m}\"\n"))
            .unwrap_or_default();
        for i in mine {
            let _ = write!(
                s,
                "[[venues.subscriptions]]\ninstrument = \"{}\"\n{market}types = [{}]\n",
                (idle.name)(i),
                idle.types
            );
        }
    }
    s
}

/// Subscriptions in a relay config.
fn subscriptions(config: &str) -> usize {
    config.matches("[[venues.subscriptions]]").count()
}

/// Run the series and print it.
pub(super) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    if args.seconds > 12 {
        bail!(
            "--scale measures within the venues' 15 s subscription ack timeout: use --seconds 12 or less"
        );
    }
    let exe = std::env::current_exe()?;
    let root = args.root.canonicalize().context("repository root")?;
    let dir = tempfile_dir()?;
    let mut kids = Children(Vec::new());
    let nats_port = free_port();
    kids.0.push(
        std::process::Command::new(nats_server())
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &nats_port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(dir.join("nats"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("starting nats-server ($MDRELAY_NATS_SERVER, else the one on PATH)")?,
    );
    wait_port(nats_port)?;
    let empty = dir.join("no-frames.jsonl");
    std::fs::write(&empty, "")?;
    let idle_port = spawn_replay(&exe, [empty], None, &mut kids)?;
    let urls = [format!("nats://127.0.0.1:{nats_port}")];
    println!(
        "mdrelay scale benchmark: recorded feeds at {RATE} frames/s in every run, idle instruments (synthetic names) on {} more venues, {} s per run",
        IDLE.len(),
        args.seconds
    );
    let mut runs: Vec<(usize, PhaseResult)> = Vec::new();
    for idle in [0usize, 10, 100, 1_000] {
        let mut replays = Children(Vec::new());
        let ports = start_replays(&exe, &root, Some(RATE), false, &mut replays)?;
        let mut cfg = relay_config_with(&root, &urls, 1, &ports, args.window, "json")?;
        let active = subscriptions(&cfg);
        cfg.push_str(&idle_venues(idle, idle_port));
        let instruments = subscriptions(&cfg);
        let r = run_phase(&exe, &dir, &format!("scale-{idle}"), &cfg, args.seconds)?;
        println!(
            "{instruments:>5} instruments ({active} streaming, {idle:>4} idle), {} venues: {:>3.0} connections, RSS {:>6.1} MiB (peak {:>6.1}), relay cpu {:>6.2} s per 1M events, {:>6.0} events/s",
            3 + IDLE.len().min(idle),
            r.connections,
            r.rss_kib as f64 / 1024.0,
            r.peak_rss_kib as f64 / 1024.0,
            r.cpu_seconds / r.events.max(1.0) * 1e6,
            r.events / r.seconds,
        );
        runs.push((idle, r));
        drop(replays);
    }
    let kib = |r: &PhaseResult| r.rss_kib as f64;
    let slope = |a: &(usize, PhaseResult), b: &(usize, PhaseResult)| {
        (kib(&b.1) - kib(&a.1)) / (b.0 as f64 - a.0 as f64)
    };
    let per_instrument = slope(&runs[2], &runs[3]);
    println!(
        "RSS per idle instrument: {:.1} KiB (10 -> 100 idle), {per_instrument:.1} KiB (100 -> 1,000 idle); per idle venue: {:.0} KiB (0 -> 10 idle instruments on 4 more venues, less 10 instruments)",
        slope(&runs[1], &runs[2]),
        (kib(&runs[1].1) - kib(&runs[0].1) - 10.0 * per_instrument) / IDLE.len() as f64,
    );
    drop(kids);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(ExitCode::SUCCESS)
}
