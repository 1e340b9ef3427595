//! Process metrics in the names Prometheus client libraries share
//! (`process_resident_memory_bytes`, `process_cpu_seconds_total`,
//! `process_open_fds`, `process_start_time_seconds`), read from `/proc` at
//! each scrape. On systems without `/proc` they are left out.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

/// Clock ticks per second of `/proc/self/stat` times (`sysconf(_SC_CLK_TCK)`
/// is 100 on every Linux architecture the relay builds for).
const TICKS_PER_SECOND: f64 = 100.0;

/// Reads `/proc/self` when scraped.
#[derive(Debug)]
struct ProcessCollector {
    /// Unix seconds when the process started (read once).
    start_time: f64,
}

/// A snapshot of the process's resources.
#[derive(Debug, Default, PartialEq)]
pub struct ProcessStats {
    /// Resident memory in bytes.
    pub rss_bytes: u64,
    /// User + system CPU seconds.
    pub cpu_seconds: f64,
    /// Open file descriptors.
    pub open_fds: u64,
}

/// Read the current process's statistics, if `/proc` is there.
pub fn read() -> Option<ProcessStats> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold
    // spaces: utime and stime are the 12th and 13th after it.
    let after = &stat[stat.rfind(')')? + 2..];
    let mut f = after.split_whitespace().skip(11);
    let utime: f64 = f.next()?.parse().ok()?;
    let stime: f64 = f.next()?.parse().ok()?;
    let open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
    Some(ProcessStats {
        rss_bytes: pages * 4096,
        cpu_seconds: (utime + stime) / TICKS_PER_SECOND,
        open_fds,
    })
}

fn start_time() -> f64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    // Seconds since boot of the process start, and of now.
    let since_boot = || -> Option<(f64, f64)> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let after = &stat[stat.rfind(')')? + 2..];
        let ticks: f64 = after.split_whitespace().nth(19)?.parse().ok()?;
        let uptime: f64 = std::fs::read_to_string("/proc/uptime")
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()?;
        Some((ticks / TICKS_PER_SECOND, uptime))
    };
    match since_boot() {
        Some((started, uptime)) => now - (uptime - started),
        None => now,
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(s) = read() else {
            return Ok(());
        };
        let rss = ConstGauge::new(s.rss_bytes as i64);
        rss.encode(encoder.encode_descriptor(
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            None,
            rss.metric_type(),
        )?)?;
        let cpu = ConstCounter::new(s.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds_total",
            "User and system CPU time spent, in seconds",
            None,
            cpu.metric_type(),
        )?)?;
        let fds = ConstGauge::new(s.open_fds as i64);
        fds.encode(encoder.encode_descriptor(
            "process_open_fds",
            "Open file descriptors",
            None,
            fds.metric_type(),
        )?)?;
        let start = ConstGauge::new(self.start_time);
        start.encode(encoder.encode_descriptor(
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch, in seconds",
            None,
            start.metric_type(),
        )?)?;
        Ok(())
    }
}

/// Add the process metrics to `registry` (unprefixed, by convention).
pub fn register(registry: &mut Registry) {
    registry.register_collector(Box::new(ProcessCollector {
        start_time: start_time(),
    }));
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_process_reads_itself() {
        let s = super::read().expect("/proc on the test machine");
        assert!(s.rss_bytes > 1 << 20, "{s:?}");
        assert!(s.open_fds >= 3, "{s:?}");
        let start = super::start_time();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            start <= now + 1.0 && start > now - 86_400.0,
            "{start} vs {now}"
        );
    }
}
