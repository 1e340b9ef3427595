//! The publish comparison of `mdrelay bench` (alone with `--publish`): in
//! one run, on one broker, the broker's no-ack storage ceiling (the relay's
//! own encoded events with the same headers, `Nats-Msg-Id` included, core
//! published into the stream's subjects until stored), its per-message-ack
//! ceiling (the client library's JetStream publish, same window), and the
//! relay at full speed and at a steady rate in the three publish modes
//! (`acks`, `batched` and `auto`, alternating rounds, the best round of
//! each). Prints each
//! ratio and the CPU per event of the relay against the client's per
//! message.

use std::path::Path;

use super::bench::{Args, PhaseResult, relay_config_with, run_phase_watching};
use super::bench_ceiling::{Mode, ceiling};
use super::bench_procs::{Children, start_replays};

/// The relay config of one phase, in `mode` (`acks` or `batched`).
fn config(
    args: &Args,
    root: &Path,
    nats_port: u16,
    ports: &[u16],
    mode: &str,
) -> anyhow::Result<String> {
    let urls = [format!("nats://127.0.0.1:{nats_port}")];
    let cfg = relay_config_with(root, &urls, 1, ports, args.window, "json")?;
    Ok(cfg.replace(
        "[nats.publish]\n",
        &format!(
            "[nats.publish]\nmode = \"{mode}\"\nwriter = \"{}\"\n{}",
            args.writer,
            args.batch_flow
                .map(|n| format!("batch_flow = {n}\n"))
                .unwrap_or_default()
        ),
    ))
}

/// The broker: its port, and its process when known (its CPU is read over
/// each relay phase).
type Broker = (u16, Option<u32>);

fn phase(
    args: &Args,
    exe: &Path,
    dir: &Path,
    root: &Path,
    (nats_port, broker_pid): Broker,
    mode: &str,
    rate: Option<u32>,
) -> anyhow::Result<PhaseResult> {
    let mut replays = Children(Vec::new());
    let ports = start_replays(exe, root, rate, !args.no_background, &mut replays)?;
    let cfg = config(args, root, nats_port, &ports, mode)?;
    let name = format!(
        "publish-{mode}-{}",
        rate.map_or("max".into(), |r| r.to_string())
    );
    let r = run_phase_watching(exe, dir, &name, &cfg, args.seconds, broker_pid)?;
    drop(replays);
    let per_event = |s: f64| s / r.events.max(1.0) * 1e6;
    println!(
        "  relay {mode:<7} {:<12} events acked {:>9.0}/s  frames {:>9.0}/s  cpu {:>5.2} µs/event  p50 {} µs  p99 {} µs  peak RSS {} MiB",
        rate.map_or("full speed".into(), |r| format!("{r} frames/s")),
        r.events / r.seconds,
        r.frames / r.seconds,
        per_event(r.cpu_seconds),
        r.p50_us,
        r.p99_us,
        r.peak_rss_kib / 1024
    );
    // Where the machine's cores went over the window: the relay, the
    // broker, idle, and the rest (the fake venues, this process, others).
    let cores = |s: f64| s / r.seconds.max(1e-9);
    println!(
        "          cores: relay {:.2}, broker {:.2} ({:.2} µs/event), idle {:.2}",
        cores(r.cpu_seconds),
        cores(r.broker_cpu_seconds),
        per_event(r.broker_cpu_seconds),
        cores(r.idle_cpu_seconds)
    );
    Ok(r)
}

fn better(a: Option<PhaseResult>, b: PhaseResult) -> Option<PhaseResult> {
    match a {
        Some(a) if a.events / a.seconds >= b.events / b.seconds => Some(a),
        _ => Some(b),
    }
}

/// Run the comparison (nats-server on `nats_port` is running).
pub(super) fn compare(
    args: &Args,
    exe: &Path,
    root: &Path,
    dir: &Path,
    broker: Broker,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<()> {
    let nats_port = broker.0;
    println!(
        "publish modes (json, window {}, writer {}):",
        args.window, args.writer
    );
    let c = |stream: &str, mode| {
        runtime.block_on(ceiling(
            root,
            nats_port,
            args.window,
            args.seconds,
            stream,
            mode,
        ))
    };
    let no_ack_client = c("NOACK", Mode::NoAck)?;
    println!(
        "  broker no-ack storage ceiling (core publish, same headers):  {:>9.0} events/s  client cpu {:.2} µs/msg",
        no_ack_client.rate, no_ack_client.cpu_us
    );
    let no_ack_direct = c("NOACKD", Mode::NoAckDirect)?;
    println!(
        "  the same, written by the direct writer:                       {:>9.0} events/s  client cpu {:.2} µs/msg",
        no_ack_direct.rate, no_ack_direct.cpu_us
    );
    // The ceiling is the broker's: whichever client got more stored.
    let no_ack = if no_ack_direct.rate > no_ack_client.rate {
        no_ack_direct
    } else {
        no_ack_client
    };
    let acks = c("ACKS", Mode::Max)?;
    println!(
        "  broker per-message-ack ceiling (library JetStream publish):  {:>9.0} events/s  client cpu {:.2} µs/msg",
        acks.rate, acks.cpu_us
    );
    let lean = c("LEAN", Mode::Lean)?;
    println!(
        "  broker per-message-ack ceiling, lean client:                  {:>9.0} events/s  client cpu {:.2} µs/msg",
        lean.rate, lean.cpu_us
    );
    let (mut best_acks, mut best_batched, mut best_auto) = (None, None, None);
    for _ in 0..args.rounds.max(1) {
        best_auto = better(
            best_auto,
            phase(args, exe, dir, root, broker, "auto", None)?,
        );
        best_acks = better(
            best_acks,
            phase(args, exe, dir, root, broker, "acks", None)?,
        );
        best_batched = better(
            best_batched,
            phase(args, exe, dir, root, broker, "batched", None)?,
        );
    }
    let (a, b, u) = (
        best_acks.unwrap_or_default(),
        best_batched.unwrap_or_default(),
        best_auto.unwrap_or_default(),
    );
    let rate = |r: &PhaseResult| r.events / r.seconds.max(1e-9);
    let steady_acks = phase(args, exe, dir, root, broker, "acks", Some(args.steady_rate))?;
    let steady_batched = phase(
        args,
        exe,
        dir,
        root,
        broker,
        "batched",
        Some(args.steady_rate),
    )?;
    let steady_auto = phase(args, exe, dir, root, broker, "auto", Some(args.steady_rate))?;
    // The broker's own publish-to-ack latency at the steady rate (one
    // client, acks awaited out of line): the floor under the relay's.
    let floor = c("PACED", Mode::Paced(args.steady_rate))?;
    println!(
        "  broker alone, steady {} events/s (library client):  publish→ack p50 {} µs  p99 {} µs",
        args.steady_rate, floor.p50_us, floor.p99_us
    );
    let ack_ceiling = acks.rate.max(lean.rate);
    println!("publish ratios (best round of each):");
    println!(
        "  relay batched / no-ack ceiling:        {:>5.1} %   (target ≥ 70 %)",
        100.0 * rate(&b) / no_ack.rate
    );
    println!(
        "  relay batched / relay acks:            {:>5.2} ×   (target ≥ 1.3 ×)",
        rate(&b) / rate(&a).max(1e-9)
    );
    println!(
        "  relay auto / no-ack ceiling:           {:>5.1} %;  auto / acks {:>5.2} ×",
        100.0 * rate(&u) / no_ack.rate,
        rate(&u) / rate(&a).max(1e-9)
    );
    println!(
        "  relay acks / no-ack ceiling:           {:>5.1} %",
        100.0 * rate(&a) / no_ack.rate
    );
    println!(
        "  relay acks / per-message-ack ceiling:  {:>5.1} %",
        100.0 * rate(&a) / ack_ceiling
    );
    println!(
        "  relay batched / per-message-ack ceiling: {:>5.1} %",
        100.0 * rate(&b) / ack_ceiling
    );
    println!(
        "  per-message-ack ceiling / no-ack:      {:>5.1} %",
        100.0 * ack_ceiling / no_ack.rate
    );
    let cpu = |r: &PhaseResult| r.cpu_seconds / r.events.max(1.0) * 1e6;
    println!(
        "  cpu per event: relay acks {:.2} µs, batched {:.2} µs; lean client {:.2} µs/msg (relay acks {:.2} ×, batched {:.2} × the client)",
        cpu(&a),
        cpu(&b),
        lean.cpu_us,
        cpu(&a) / lean.cpu_us.max(1e-9),
        cpu(&b) / lean.cpu_us.max(1e-9)
    );
    println!(
        "  steady {} frames/s: p50 / p99 frame→ack acks {} / {} µs, batched {} / {} µs, auto {} / {} µs (broker alone {} / {} µs); peak RSS acks {} MiB, batched {} MiB",
        args.steady_rate,
        steady_acks.p50_us,
        steady_acks.p99_us,
        steady_batched.p50_us,
        steady_batched.p99_us,
        steady_auto.p50_us,
        steady_auto.p99_us,
        floor.p50_us,
        floor.p99_us,
        steady_acks.peak_rss_kib / 1024,
        steady_batched.peak_rss_kib / 1024
    );
    Ok(())
}
