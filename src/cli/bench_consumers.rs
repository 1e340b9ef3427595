//! The consumer half of `mdrelay bench`:
//!
//! - what publishing `l2_snapshot`s costs the relay: the full-speed phase
//!   run with `book_snapshot` off and on (default interval, 10 s),
//!   alternating, `--rounds` times each, in one run;
//! - how long a late join takes: a relay fed OKX's BTC-USDT book (400 levels
//!   a side) at a steady rate, and a client joining it again and again
//!   (`BookFeed::join` until synced), p50 / p99, at two feed rates.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::bench::{PhaseResult, quantile, run_phase};
use super::bench_procs::{Children, spawn_replay};
use crate::application::relay::{StartOptions, start};
use crate::client::{BookFeed, JoinOptions, SyncState};
use crate::config::relay::compile_relay;

/// The relay's throughput with snapshots off and on; prints each phase and
/// the cost. `config(snapshots)` builds a phase's config (fresh replays are
/// started by `replays` for each phase).
pub(super) fn snapshot_cost(
    exe: &Path,
    dir: &Path,
    seconds: u64,
    rounds: usize,
    mut phase_config: impl FnMut(bool, &mut Children) -> anyhow::Result<String>,
) -> anyhow::Result<()> {
    let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut cpu: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for round in 0..rounds.max(1) {
        for snapshots in [false, true] {
            let mut replays = Children(Vec::new());
            let cfg = phase_config(snapshots, &mut replays)?;
            let name = format!("snapshots-{}-{round}", if snapshots { "on" } else { "off" });
            let r: PhaseResult = run_phase(exe, dir, &name, &cfg, seconds)?;
            drop(replays);
            let rate = r.events / r.seconds;
            println!(
                "relay, full speed, json, book_snapshot {:<3}: frames in {:>9.0}/s  events acked {rate:>9.0}/s  cpu {:>5.2} s per 1M frames",
                if snapshots { "on" } else { "off" },
                r.frames / r.seconds,
                r.cpu_seconds / r.frames.max(1.0) * 1e6,
            );
            rates[usize::from(snapshots)].push(rate);
            cpu[usize::from(snapshots)].push(r.cpu_seconds / r.frames.max(1.0) * 1e6);
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (off, on) = (mean(&rates[0]), mean(&rates[1]));
    let (cpu_off, cpu_on) = (mean(&cpu[0]), mean(&cpu[1]));
    println!(
        "book_snapshot cost: throughput {off:.0} -> {on:.0} events/s = {:+.1} %, cpu per frame {:+.1} % (means of {} alternating phases each)",
        100.0 * (on - off) / off,
        100.0 * (cpu_on - cpu_off) / cpu_off,
        rounds.max(1)
    );
    Ok(())
}

/// Late joins against a relay fed OKX's BTC-USDT book at `rate` frames/s:
/// `joins` joins, each to a synced book; prints p50 / p99.
pub(super) fn join_latency(
    exe: &Path,
    root: &Path,
    nats_port: u16,
    rate: u32,
    joins: usize,
) -> anyhow::Result<()> {
    let mut kids = Children(Vec::new());
    let file = root.join("benches/data/okx.book.jsonl");
    let port = spawn_replay(exe, [file], Some(f64::from(rate)), &mut kids)?;
    let url = format!("nats://127.0.0.1:{nats_port}");
    let config = format!(
        "venues_dir = \"{}\"\n[service]\nlog_level = \"error\"\n[http]\nlisten = \"127.0.0.1:0\"\n\
         [nats]\nurls = [\"{url}\"]\n\
         [[nats.streams]]\nname = \"JOIN\"\nsubjects = [\"market.*.*.l2_orderbook\", \"market.*.*.status\"]\nmax_age = \"10m\"\n\
         [[nats.streams]]\nname = \"JOIN_SNAPSHOTS\"\nsubjects = [\"market.*.*.l2_snapshot\"]\nmax_msgs_per_subject = 1\nallow_direct = true\n\
         [[venues]]\nid = \"okx\"\nurl = \"ws://127.0.0.1:{port}/\"\nbook_snapshot = {{ interval = \"10s\" }}\n\
         [[venues.subscriptions]]\ninstrument = \"BTC-USDT\"\ntypes = [\"l2_orderbook\"]\n",
        root.join("venues").display()
    );
    let cfg = compile_relay(&root.join("bench-join.toml"), &config, |_| None)
        .map_err(|p| anyhow::anyhow!("join bench config: {p:?}"))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (times, levels) = rt.block_on(async {
        // The earlier phases' stream captures `market.>`: JetStream would
        // refuse these overlapping ones.
        let js = async_nats::jetstream::new(async_nats::connect(&url).await?);
        let _ = js.delete_stream("MARKET").await;
        let relay = start(
            cfg,
            StartOptions {
                http_listen: Some("127.0.0.1:0".parse()?),
                ..Default::default()
            },
        )
        .await?;
        let client = async_nats::connect(&url).await?;
        let opts = JoinOptions {
            wait: Duration::from_secs(10),
            ..JoinOptions::default()
        };
        // Let the stream fill for a few seconds first.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let mut times = Vec::with_capacity(joins);
        let mut levels = (0, 0);
        for _ in 0..joins {
            let t0 = Instant::now();
            let mut feed = BookFeed::join(&client, "okx", "btc-usdt", opts.clone())
                .await
                .context("joining")?;
            let joined = t0.elapsed();
            let mut n = 0;
            let mut first = None;
            while feed.state() != SyncState::Synced {
                feed.next().await?;
                first.get_or_insert(t0.elapsed());
                n += 1;
            }
            if std::env::var("MDRELAY_BENCH_DEBUG").is_ok() {
                eprintln!(
                    "join {joined:?} first change {first:?} synced {:?} after {n} changes",
                    t0.elapsed()
                );
            }
            times.push(u32::try_from(t0.elapsed().as_micros()).unwrap_or(u32::MAX));
            levels = feed.book().len();
        }
        relay.shutdown().await;
        anyhow::Ok((times, levels))
    })?;
    let mut sorted = times.clone();
    sorted.sort_unstable();
    println!(
        "late join to a synced book ({} + {} levels, OKX BTC-USDT fed at {rate} frames/s, {joins} joins): p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
        levels.0,
        levels.1,
        f64::from(quantile(&sorted, 0.50)) / 1e3,
        f64::from(quantile(&sorted, 0.99)) / 1e3,
        f64::from(sorted.last().copied().unwrap_or(0)) / 1e3,
    );
    Ok(())
}
