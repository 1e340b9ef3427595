//! `mdrelay bench --cluster`: what replication costs the relay. The same
//! recorded feeds (`benches/data/feeds.toml`, no background venues) go
//! through the relay into a stream on
//!
//! 1. a three-node JetStream cluster, stream `replicas = 3`;
//! 2. a three-node cluster, `replicas = 1` (same routes, no replication);
//! 3. one `nats-server`, `replicas = 1`;
//!
//! each on fresh brokers: first at full speed (throughput, relay CPU per
//! event), then at one steady rate for all three (frame-to-ack p50/p99):
//! `--steady-rate`, or a quarter of the R3 throughput when that is lower.
//! The brokers share the machine's cores with the relay, so absolute
//! figures understate what separate machines do; the ratios are the point.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::bench::{Args, PhaseResult, relay_config_with, run_phase};
use super::bench_procs::{
    Children, free_port, nats_server, start_replays, tempfile_dir, wait_port,
};

/// Running brokers and their client URLs.
struct Brokers {
    _kids: Children,
    urls: Vec<String>,
}

fn healthz(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /healthz HTTP/1.0\r\n\r\n").is_err() {
        return false;
    }
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.starts_with("HTTP/1.0 200") || body.starts_with("HTTP/1.1 200")
}

/// `n` nats-servers with JetStream; clustered (routes, server names) when
/// `n > 1`. Waits until each answers `/healthz` with 200.
fn brokers(dir: &Path, n: usize) -> anyhow::Result<Brokers> {
    let ports: Vec<(u16, u16, u16)> = (0..n)
        .map(|_| (free_port(), free_port(), free_port()))
        .collect();
    let mut kids = Children(Vec::new());
    for (i, &(port, route, monitor)) in ports.iter().enumerate() {
        let store = dir.join(format!("n{i}"));
        let mut conf = format!(
            "server_name: n{i}\nlisten: 127.0.0.1:{port}\nhttp: 127.0.0.1:{monitor}\n\
             jetstream {{\n  store_dir: \"{}\"\n}}\n",
            store.display()
        );
        if n > 1 {
            let routes: Vec<String> = ports
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, p)| format!("nats-route://127.0.0.1:{}", p.1))
                .collect();
            conf.push_str(&format!(
                "cluster {{\n  name: bench\n  listen: 127.0.0.1:{route}\n  routes: [{}]\n}}\n",
                routes.join(", ")
            ));
        }
        let path = dir.join(format!("n{i}.conf"));
        std::fs::write(&path, conf)?;
        kids.0.push(
            Command::new(nats_server())
                .arg("-c")
                .arg(&path)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("starting nats-server ($MDRELAY_NATS_SERVER, else the one on PATH)")?,
        );
    }
    let t0 = Instant::now();
    for &(port, _, monitor) in &ports {
        wait_port(port)?;
        while !healthz(monitor) {
            if t0.elapsed() > Duration::from_secs(30) {
                bail!("nats-server on port {port} not healthy after 30 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(Brokers {
        _kids: kids,
        urls: ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{}", p.0))
            .collect(),
    })
}

struct Setup {
    name: &'static str,
    nodes: usize,
    replicas: usize,
}

const SETUPS: [Setup; 3] = [
    Setup {
        name: "3 nodes, R3",
        nodes: 3,
        replicas: 3,
    },
    Setup {
        name: "3 nodes, R1",
        nodes: 3,
        replicas: 1,
    },
    Setup {
        name: "1 node,  R1",
        nodes: 1,
        replicas: 1,
    },
];

/// Run the comparison and print it.
pub(super) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe()?;
    let root = args.root.canonicalize().context("repository root")?;
    let dir = tempfile_dir()?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "mdrelay cluster benchmark: {cores} cores shared by the relay and every broker, file storage, window {}, {} s per phase",
        args.window, args.seconds
    );
    let mut steady = args.steady_rate;
    let mut rows: Vec<(&str, PhaseResult, PhaseResult)> = Vec::new();
    for (i, setup) in SETUPS.iter().enumerate() {
        let store = dir.join(format!("setup{i}"));
        std::fs::create_dir_all(&store)?;
        let b = brokers(&store, setup.nodes)?;
        let phase = |name: &str, rate: Option<u32>| -> anyhow::Result<PhaseResult> {
            let mut replays = Children(Vec::new());
            let ports = start_replays(&exe, &root, rate, false, &mut replays)?;
            let cfg =
                relay_config_with(&root, &b.urls, setup.replicas, &ports, args.window, "json")?;
            run_phase(&exe, &dir, &format!("{name}-{i}"), &cfg, args.seconds)
        };
        let max = phase("max", None)?;
        if i == 0 {
            let quarter = (max.events / max.seconds / 4.0) as u32;
            steady = steady.min(quarter.max(100));
        }
        let paced = phase("steady", Some(steady))?;
        println!(
            "{}: full speed {:>8.0} events/s, relay cpu {:>5.2} s per 1M events | steady {steady}/s: p50 {} µs p99 {} µs max {} µs, relay cpu {:>5.2} s per 1M events",
            setup.name,
            max.events / max.seconds,
            max.cpu_seconds / max.events.max(1.0) * 1e6,
            paced.p50_us,
            paced.p99_us,
            paced.max_us,
            paced.cpu_seconds / paced.events.max(1.0) * 1e6,
        );
        rows.push((setup.name, max, paced));
        drop(b);
    }
    let rate = |r: &PhaseResult| r.events / r.seconds;
    let (r3, r1c, r1) = (&rows[0], &rows[1], &rows[2]);
    println!(
        "R3/R1 on the cluster: throughput {:.2}x, p99 {:.2}x; R3 cluster/one node: throughput {:.2}x, p99 {:.2}x",
        rate(&r3.1) / rate(&r1c.1),
        f64::from(r3.2.p99_us) / f64::from(r1c.2.p99_us.max(1)),
        rate(&r3.1) / rate(&r1.1),
        f64::from(r3.2.p99_us) / f64::from(r1.2.p99_us.max(1)),
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(ExitCode::SUCCESS)
}
