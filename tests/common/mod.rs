//! Test harness: a real `nats-server` per test (free port, temporary store),
//! the in-process fake venue (`mdrelay replay`), and the relay itself.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mdrelay::application::relay::{RelayHandle, StartOptions, start};
use mdrelay::config::relay::compile_relay;
use mdrelay::infrastructure::replay::{ReplaySpec, ReplayStats, serve};
use mdrelay::serialization::frames::{FrameLine, OwnedFrame, parse_frame_line};
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
        let child = Command::new("nats-server")
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
            .expect("nats-server must be on PATH (apt-get install nats-server)");
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
    .unwrap()
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
