//! The processes the benchmarks start and the readings they take of
//! them: free ports, child processes killed on drop, the `mdrelay replay`
//! servers, the `nats-server` to run, and CPU time and memory from `/proc`.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::bench_feeds::{Feed, background_venues, feeds, feeds_file};

/// A TCP port free on loopback now (0 if none could be bound).
pub(super) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// Wait (up to 10 s) until something listens on `port`.
pub(super) fn wait_port(port: u16) -> anyhow::Result<()> {
    let t0 = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if t0.elapsed() > Duration::from_secs(10) {
            bail!("nothing listens on port {port}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Child processes, killed on drop.
pub(super) struct Children(pub(super) Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Start replay servers, one per feed and one per background venue;
/// returns their ports (feeds first).
pub(super) fn start_replays(
    exe: &Path,
    root: &Path,
    rate_total: Option<u32>,
    background: bool,
    kids: &mut Children,
) -> anyhow::Result<Vec<u16>> {
    let mut ports = Vec::new();
    let feeds = feeds(root)?;
    for Feed { files, .. } in &feeds {
        let rate = rate_total.map(|r| f64::from(r) / feeds.len() as f64);
        let files = files.iter().map(|f| root.join("benches/data").join(f));
        ports.push(spawn_replay(exe, files, rate, kids)?);
    }
    if let Some(bg) = feeds_file(root)?.background.filter(|_| background) {
        for v in background_venues(root)? {
            ports.push(spawn_replay(exe, v.files, Some(bg.rate), kids)?);
        }
    }
    Ok(ports)
}

/// Start `mdrelay replay` looping over `files` (at `rate` frames/s, or as
/// fast as read) on a free port; wait until it listens and return the port.
pub(super) fn spawn_replay(
    exe: &Path,
    files: impl IntoIterator<Item = PathBuf>,
    rate: Option<f64>,
    kids: &mut Children,
) -> anyhow::Result<u16> {
    let port = free_port();
    let mut cmd = Command::new(exe);
    cmd.args(["replay", "--loop", "--listen", &format!("127.0.0.1:{port}")]);
    if let Some(r) = rate {
        cmd.args(["--rate", &r.to_string()]);
    }
    cmd.arg("--frames").args(files);
    kids.0.push(
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting mdrelay replay")?,
    );
    wait_port(port)?;
    Ok(port)
}

/// A fresh directory for one benchmark run's stores and configs.
pub(super) fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("mdrelay-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The nats-server every bench starts: the one scripts/nats-server.sh
/// chose (`MDRELAY_NATS_SERVER`, exported by scripts/run.sh and .ci/run),
/// else PATH's.
pub(super) fn nats_server() -> std::ffi::OsString {
    std::env::var_os("MDRELAY_NATS_SERVER")
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "nats-server".into())
}

/// CPU seconds (user + system) of this process, from /proc/self/stat.
pub(super) fn cpu_seconds() -> f64 {
    stat_cpu_seconds("/proc/self/stat")
}

/// CPU seconds (user + system) of process `pid` (0 once it is gone).
pub(super) fn process_cpu_seconds(pid: u32) -> f64 {
    stat_cpu_seconds(&format!("/proc/{pid}/stat"))
}

/// Seconds of CPU time the whole machine has spent idle (idle + I/O
/// wait, summed over its cores), from /proc/stat.
pub(super) fn idle_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(cpu) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0.0;
    };
    // user nice system idle iowait ...; 100 ticks/s.
    let f: Vec<f64> = cpu
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    (f.get(3).unwrap_or(&0.0) + f.get(4).unwrap_or(&0.0)) / 100.0
}

fn stat_cpu_seconds(path: &str) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, a)| a);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields after the command: state is 0, utime 11, stime 12; 100 ticks/s.
    (ticks(11) + ticks(12)) / 100.0
}

/// Peak resident set size in KiB, from /proc/self/status.
pub(super) fn peak_rss_kib() -> u64 {
    status_kib("VmHWM:")
}

/// A `kB` field of /proc/self/status (`VmHWM:`, `VmRSS:`).
pub(super) fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}
