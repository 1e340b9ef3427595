//! `mdrelay bench`: the end-to-end benchmark. In one run it measures
//!
//! 1. the broker's ceiling: a plain async-nats client publishing the relay's
//!    own encoded events to a file-storage stream with the same in-flight
//!    window;
//! 2. the relay at full speed, fed by `mdrelay replay` servers blasting the
//!    recorded captures in `benches/data` (JSON, then protobuf payloads);
//! 3. the relay at a steady rate (default 20k frames/s, and a quarter of
//!    the ceiling when that is lower): frame-to-ack latency;
//! 4. the broker alone at that steady rate, the ceiling again, and the
//!    ceiling with the relay's lean publish protocol (`bench_ceiling`);
//! 5. the consumer half (`bench_consumers`): the relay at full speed with
//!    `book_snapshot` off and on, and late joins to a 400-level book.
//!
//! Each relay phase runs in its own child process (`mdrelay bench-relay`),
//! so its CPU time and peak RSS are its own. Linux only (reads /proc).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::bench_ceiling::{Mode, ceiling};
use super::bench_feeds::{background_venues, feeds, feeds_file};
use super::bench_procs::{
    Children, cpu_seconds, free_port, idle_cpu_seconds, nats_server, peak_rss_kib,
    process_cpu_seconds, start_replays, status_kib, tempfile_dir, wait_port,
};
use crate::application::relay::{StartOptions, start};
use crate::config::relay::load_relay;

/// Arguments of `mdrelay bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Seconds measured per phase (after one second of warm-up).
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Frames per second for the steady-rate latency phase.
    #[arg(long, default_value_t = 20_000)]
    pub steady_rate: u32,
    /// Publishes in flight (relay and ceiling alike).
    #[arg(long, default_value_t = 512)]
    pub window: usize,
    /// Repository root (for `venues/` and `benches/data/`).
    #[arg(long, default_value = ".")]
    pub root: PathBuf,
    /// Leave out the other venues streaming in the background (to see what
    /// they cost; peak RSS then no longer means "all venues").
    #[arg(long)]
    pub no_background: bool,
    /// Only the consumer phases: the cost of `book_snapshot` (full speed,
    /// off and on, alternating) and late-join latency.
    #[arg(long)]
    pub consumers: bool,
    /// Rounds of the `book_snapshot` off/on phases (each round: one of each).
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,
    /// Late joins measured in the join-latency phase.
    #[arg(long, default_value_t = 200)]
    pub joins: usize,
    /// Instead: the relay against one node with an R1 stream, a three-node
    /// cluster with R1 and with R3 (throughput at full speed, frame-to-ack
    /// latency at `--steady-rate`, CPU per event); see `bench_cluster`.
    #[arg(long, conflicts_with = "scale")]
    pub cluster: bool,
    /// Instead: relay RSS, CPU per event and connections at 10, 100 and
    /// 1,000 subscribed instruments over several venues; see `bench_scale`.
    #[arg(long)]
    pub scale: bool,
    /// Only the publish comparison (also part of the full run): the
    /// broker's no-ack and per-message-ack ceilings, and the relay in both
    /// publish modes (`--rounds` rounds at full speed, then one steady
    /// phase each); see `bench_publish`.
    #[arg(long, conflicts_with_all = ["consumers", "cluster", "scale"])]
    pub publish: bool,
    /// The relay's `[nats.publish] writer` in the publish comparison:
    /// `client` (the async-nats client) or `direct` (the relay's own
    /// publish-only connection).
    #[arg(long, default_value = "direct", value_parser = ["client", "direct"])]
    pub writer: String,
    /// The relay's `[nats.publish] batch_flow` in the publish comparison
    /// (default: the config's default).
    #[arg(long)]
    pub batch_flow: Option<u16>,
}

/// Arguments of the child `mdrelay bench-relay`.
#[derive(Debug, clap::Args)]
pub struct RelayPhaseArgs {
    /// Relay config.
    #[arg(long)]
    pub config: PathBuf,
    /// Seconds measured.
    #[arg(long)]
    pub seconds: u64,
    /// The broker's process, whose CPU over the same window is reported
    /// too (`broker_cpu_seconds`).
    #[arg(long)]
    pub broker_pid: Option<u32>,
}

fn relay_config(
    root: &Path,
    nats_port: u16,
    ports: &[u16],
    window: usize,
    format: &str,
    snapshots: bool,
) -> anyhow::Result<String> {
    let urls = [format!("nats://127.0.0.1:{nats_port}")];
    let mut cfg = relay_config_with(root, &urls, 1, ports, window, format)?;
    if snapshots {
        // Full-depth snapshots of every book, at the default config's
        // interval: inserted into every venue entry.
        cfg = cfg.replace(
            "[[venues]]\n",
            "[[venues]]\nbook_snapshot = { interval = \"10s\" }\n",
        );
    }
    Ok(cfg)
}

/// The benchmark relay config: NATS at `urls`, a stream with `replicas`,
/// and the feeds (and background venues) on `ports`.
pub(super) fn relay_config_with(
    root: &Path,
    urls: &[String],
    replicas: usize,
    ports: &[u16],
    window: usize,
    format: &str,
) -> anyhow::Result<String> {
    let urls: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
    let urls = urls.join(", ");
    // The relay's default runtime unless MDRELAY_BENCH_THREADS sets one.
    let threads = std::env::var("MDRELAY_BENCH_THREADS")
        .map(|n| format!("worker_threads = {n}\n"))
        .unwrap_or_default();
    let mut s = format!(
        "venues_dir = \"{}\"\n[service]\n{threads}log_level = \"error\"\n[http]\nlisten = \"127.0.0.1:0\"\n[nats]\nurls = [{urls}]\npayload_format = \"{format}\"\n[nats.publish]\nmax_in_flight = {window}\n[[nats.streams]]\nname = \"MARKET\"\nsubjects = [\"market.>\"]\nstorage = \"file\"\nreplicas = {replicas}\nmax_age = \"10m\"\nduplicate_window = \"100ms\"\nallow_batched = true\n",
        root.join("venues").display()
    );
    // Subscribe to everything the captures carry: every instrument (events
    // of others are not published) and the events' types.
    for (feed, port) in feeds(root)?.iter().zip(ports) {
        let types: Vec<String> = feed.types.iter().map(|t| format!("\"{t}\"")).collect();
        s.push_str(&format!(
            "[[venues]]\nid = \"{}\"\nurl = \"ws://127.0.0.1:{port}/\"\n",
            feed.venue
        ));
        let files: Vec<_> = feed
            .files
            .iter()
            .map(|f| root.join("benches/data").join(f))
            .collect();
        for inst in recorded_instruments(root, &feed.venue, None, &files)? {
            s.push_str(&format!(
                "[[venues.subscriptions]]\ninstrument = \"{inst}\"\ntypes = [{}]\n",
                types.join(", ")
            ));
        }
    }
    // Background venues: every data type, on the ports after the feeds'.
    if feeds_file(root)?.background.is_some() {
        let n = feeds(root)?.len();
        for (v, port) in background_venues(root)?.iter().zip(ports.iter().skip(n)) {
            let market = v
                .market
                .as_ref()
                .map(|m| format!("market = \"{m}\"\n"))
                .unwrap_or_default();
            let types: Vec<String> = v.types.iter().map(|t| format!("\"{t}\"")).collect();
            s.push_str(&format!(
                "[[venues]]\nid = \"{}\"\nurl = \"ws://127.0.0.1:{port}/\"\nrest_url = \"http://127.0.0.1:{port}\"\n[venues.reconnect]\ninitial_delay = \"1s\"\n",
                v.id,
            ));
            let mut instruments = recorded_instruments(root, &v.id, v.market.as_deref(), &v.files)?;
            if instruments.is_empty() {
                instruments.insert("BENCH".into());
            }
            for inst in instruments {
                s.push_str(&format!(
                    "[[venues.subscriptions]]\ninstrument = \"{inst}\"\n{market}types = [{}]\n",
                    types.join(", ")
                ));
            }
        }
    }
    Ok(s)
}

/// The instruments a venue's recorded files carry (see
/// [`crate::application::fixture::instruments_in`]).
fn recorded_instruments(
    root: &Path,
    venue: &str,
    market: Option<&str>,
    files: &[std::path::PathBuf],
) -> anyhow::Result<std::collections::BTreeSet<String>> {
    let v = crate::config::venue::load_venue(&root.join("venues").join(format!("{venue}.toml")))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut all = std::collections::BTreeSet::new();
    for f in files {
        let text = std::fs::read_to_string(f).with_context(|| f.display().to_string())?;
        all.extend(crate::application::fixture::instruments_in(
            &v, market, &text,
        ));
    }
    Ok(all)
}

/// Results of one relay phase (printed as JSON by the child).
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct PhaseResult {
    pub(super) seconds: f64,
    pub(super) frames: f64,
    pub(super) events: f64,
    pub(super) cpu_seconds: f64,
    pub(super) p50_us: u32,
    pub(super) p99_us: u32,
    pub(super) max_us: u32,
    pub(super) peak_rss_kib: u64,
    /// Resident set size at the end of the measured window.
    #[serde(default)]
    pub(super) rss_kib: u64,
    /// Open venue connections at the end of the measured window.
    #[serde(default)]
    pub(super) connections: f64,
    /// CPU seconds of the broker (`--broker-pid`) over the window.
    #[serde(default)]
    pub(super) broker_cpu_seconds: f64,
    /// CPU seconds the whole machine left idle over the window.
    #[serde(default)]
    pub(super) idle_cpu_seconds: f64,
}

pub(super) fn run_phase(
    exe: &Path,
    dir: &Path,
    name: &str,
    config: &str,
    seconds: u64,
) -> anyhow::Result<PhaseResult> {
    run_phase_watching(exe, dir, name, config, seconds, None)
}

/// [`run_phase`], also reading the CPU of the broker's process `broker`
/// over the measured window.
pub(super) fn run_phase_watching(
    exe: &Path,
    dir: &Path,
    name: &str,
    config: &str,
    seconds: u64,
    broker: Option<u32>,
) -> anyhow::Result<PhaseResult> {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, config)?;
    let mut cmd = Command::new(exe);
    cmd.args(["bench-relay", "--seconds", &seconds.to_string()]);
    if let Some(pid) = broker {
        cmd.args(["--broker-pid", &pid.to_string()]);
    }
    let out = cmd
        .arg("--config")
        .arg(&path)
        .stderr(Stdio::inherit())
        .output()
        .context("running the relay phase")?;
    if !out.status.success() {
        bail!("relay phase {name} failed");
    }
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or("{}")).context("reading the phase result")
}

/// Run the whole benchmark and print the report.
// One phase after another, each a few lines: splitting it would scatter the
// order of the run, which is what a reader of a benchmark wants to see.
#[allow(clippy::too_many_lines)]
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.cluster {
        return super::bench_cluster::run(&args);
    }
    if args.scale {
        return super::bench_scale::run(&args);
    }
    let exe = std::env::current_exe()?;
    let root = args.root.canonicalize().context("repository root")?;
    let dir = tempfile_dir()?;
    let mut kids = Children(Vec::new());
    let nats_port = free_port();
    let store = dir.join("nats");
    kids.0.push(
        Command::new(nats_server())
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &nats_port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting nats-server ($MDRELAY_NATS_SERVER, else the one on PATH)")?,
    );
    wait_port(nats_port)?;
    let broker_pid = kids.0.last().map(std::process::Child::id);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "mdrelay end-to-end benchmark: {cores} cores, nats-server file storage, window {}, {} s per phase",
        args.window, args.seconds
    );

    // The consumer phases (nats-server, in `kids`, keeps running).
    let consumers = || -> anyhow::Result<()> {
        super::bench_consumers::snapshot_cost(
            &exe,
            &dir,
            args.seconds,
            args.rounds,
            |snapshots, replays| {
                let ports = start_replays(&exe, &root, None, !args.no_background, replays)?;
                relay_config(&root, nats_port, &ports, args.window, "json", snapshots)
            },
        )?;
        // The OKX file at 2,000 frames/s carries ~130 BTC-USDT updates a
        // second (a busy book); at 300, ~20.
        for rate in [2_000, 300] {
            super::bench_consumers::join_latency(&exe, &root, nats_port, rate, args.joins)?;
        }
        Ok(())
    };
    if args.consumers {
        consumers()?;
        drop(kids);
        let _ = std::fs::remove_dir_all(&dir);
        return Ok(ExitCode::SUCCESS);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if args.publish {
        super::bench_publish::compare(&args, &exe, &root, &dir, (nats_port, broker_pid), &runtime)?;
        drop(kids);
        let _ = std::fs::remove_dir_all(&dir);
        return Ok(ExitCode::SUCCESS);
    }
    let first = runtime
        .block_on(ceiling(
            &root,
            nats_port,
            args.window,
            args.seconds,
            "CEILING1",
            Mode::Max,
        ))?
        .rate;
    println!("broker ceiling (plain async-nats client, same events):   {first:>10.0} events/s");

    let mut results = Vec::new();
    for format in ["json", "protobuf"] {
        let mut replays = Children(Vec::new());
        let ports = start_replays(&exe, &root, None, !args.no_background, &mut replays)?;
        let cfg = relay_config(&root, nats_port, &ports, args.window, format, false)?;
        let r = run_phase(&exe, &dir, &format!("max-{format}"), &cfg, args.seconds)?;
        drop(replays);
        println!(
            "relay, full speed, {format:<8}  frames in {:>9.0}/s  events acked {:>9.0}/s  = {:>5.1} % of ceiling  cpu {:>5.2} s per 1M frames  p50 {} µs  p99 {} µs  max {} µs  peak RSS {} MiB",
            r.frames / r.seconds,
            r.events / r.seconds,
            100.0 * r.events / r.seconds / first,
            r.cpu_seconds / r.frames * 1e6,
            r.p50_us,
            r.p99_us,
            r.max_us,
            r.peak_rss_kib / 1024
        );
        results.push(r);
    }
    // The steady rate asked for, and, when that is more than a quarter of
    // this machine's broker ceiling (so the broker's own queueing dominates
    // the latency), also a quarter of the ceiling.
    let mut rates = vec![args.steady_rate];
    let quarter = (first / 4.0) as u32;
    if quarter > 0 && quarter < args.steady_rate {
        rates.push(quarter);
    }
    for (i, rate) in rates.into_iter().enumerate() {
        let mut replays = Children(Vec::new());
        let ports = start_replays(&exe, &root, Some(rate), !args.no_background, &mut replays)?;
        let cfg = relay_config(&root, nats_port, &ports, args.window, "json", false)?;
        let r = run_phase(&exe, &dir, &format!("steady-{rate}"), &cfg, args.seconds)?;
        drop(replays);
        let why = if i == 0 { "target" } else { "= ceiling/4" };
        println!(
            "relay, steady {rate} frames/s {why}: frames in {:>9.0}/s  events acked {:>9.0}/s  cpu {:>5.2} s per 1M frames  p50 {} µs  p99 {} µs  max {} µs  peak RSS {} MiB",
            r.frames / r.seconds,
            r.events / r.seconds,
            r.cpu_seconds / r.frames.max(1.0) * 1e6,
            r.p50_us,
            r.p99_us,
            r.max_us,
            r.peak_rss_kib / 1024
        );
    }
    // The broker's own latency at the steady rate, with no relay: the
    // floor under the relay's figure above on this machine.
    let floor = runtime.block_on(ceiling(
        &root,
        nats_port,
        args.window,
        args.seconds,
        "PACED",
        Mode::Paced(args.steady_rate),
    ))?;
    println!(
        "broker alone, steady {} events/s (plain client): acked {:>9.0}/s  publish-to-ack p50 {} µs  p99 {} µs",
        args.steady_rate, floor.rate, floor.p50_us, floor.p99_us
    );
    let second = runtime
        .block_on(ceiling(
            &root,
            nats_port,
            args.window,
            args.seconds,
            "CEILING2",
            Mode::Max,
        ))?
        .rate;
    let best = first.max(second);
    println!("broker ceiling again (machine noise check):               {second:>10.0} events/s");
    let lean = runtime
        .block_on(ceiling(
            &root,
            nats_port,
            args.window,
            args.seconds,
            "CEILING3",
            Mode::Lean,
        ))?
        .rate;
    println!("broker ceiling, lean client (the relay's publish protocol): {lean:>8.0} events/s");
    for (format, r) in ["json", "protobuf"].iter().zip(&results) {
        println!(
            "relay/ceiling, {format:<8}: {:>5.1} % of the better ceiling ({best:.0}/s), {:>5.1} % of the lean client's",
            100.0 * r.events / r.seconds / best,
            100.0 * r.events / r.seconds / lean
        );
    }
    super::bench_publish::compare(&args, &exe, &root, &dir, (nats_port, broker_pid), &runtime)?;
    consumers()?;
    drop(kids);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(ExitCode::SUCCESS)
}

pub(super) fn quantile(sorted: &[u32], q: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// The child: run the relay, measure one window, print a JSON result.
pub fn run_relay_phase(args: RelayPhaseArgs) -> anyhow::Result<ExitCode> {
    let cfg = match load_relay(&args.config) {
        Ok(c) => c,
        Err(e) => bail!("{e}"),
    };
    crate::cli::run::init_tracing(
        &cfg.service.log_level,
        crate::config::relay::raw::LogFormat::Pretty,
    );
    // The relay's own runtime, as `mdrelay run` builds it from the config.
    let runtime = crate::cli::run::runtime(cfg.service.worker_threads)?;
    let result = runtime.block_on(async move {
        let probe = Arc::new(crate::application::publisher::LatencyProbe::default());
        let relay = start(
            cfg,
            StartOptions {
                probe: Some(probe.clone()),
                ..Default::default()
            },
        )
        .await?;
        let m = relay.metrics.clone();
        let counts = || {
            let text = m.encode();
            let sum = |name: &str| -> f64 {
                text.lines()
                    .filter(|l| l.starts_with(name))
                    .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                    .sum()
            };
            (
                sum("mdrelay_frames_received_total"),
                sum("mdrelay_events_published_total") + sum("mdrelay_events_duplicate_total"),
            )
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (f0, e0) = counts();
        let c0 = cpu_seconds();
        let b0 = args.broker_pid.map_or(0.0, process_cpu_seconds);
        let i0 = idle_cpu_seconds();
        let _ = probe.take();
        let t0 = Instant::now();
        tokio::time::sleep(Duration::from_secs(args.seconds)).await;
        let (f1, e1) = counts();
        let c1 = cpu_seconds();
        let b1 = args.broker_pid.map_or(0.0, process_cpu_seconds);
        let i1 = idle_cpu_seconds();
        let rss_kib = status_kib("VmRSS:");
        let connections: f64 = m
            .encode()
            .lines()
            .filter(|l| l.starts_with("mdrelay_connections{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        let seconds = t0.elapsed().as_secs_f64();
        let mut lat = probe.take();
        lat.sort_unstable();
        relay.shutdown().await;
        anyhow::Ok(PhaseResult {
            seconds,
            frames: f1 - f0,
            events: e1 - e0,
            cpu_seconds: c1 - c0,
            p50_us: quantile(&lat, 0.50),
            p99_us: quantile(&lat, 0.99),
            max_us: lat.last().copied().unwrap_or(0),
            peak_rss_kib: peak_rss_kib(),
            rss_kib,
            connections,
            broker_cpu_seconds: b1 - b0,
            idle_cpu_seconds: i1 - i0,
        })
    })?;
    println!("{}", serde_json::to_string(&result)?);
    Ok(ExitCode::SUCCESS)
}
