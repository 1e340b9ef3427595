//! A soak with faults: the `mdrelay` binary relays a steady feed while,
//! in turn, NATS is killed, the venue closes every connection, the venue
//! goes silent, and a broken venue file is saved. At the end every frame and
//! every event is accounted for, and the stream holds exactly the events
//! acknowledged as new.
//!
//! `MDRELAY_SOAK_SECONDS` sets the length (default 60 in the suite;
//! docs/reliability.md reports a 30-minute run:
//! `MDRELAY_SOAK_SECONDS=1800 cargo test --release --test it soak -- --nocapture`).

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::common::*;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

const FILES: [&str; 2] = [
    "benches/data/binance-spot.trades.jsonl",
    "benches/data/binance-spot.bbo.jsonl",
];

/// A fake venue serving `frames` in a loop at `rate` per second to each
/// connection, that can close every connection or fall silent on demand.
struct FaultyVenue {
    url: String,
    silent: Arc<AtomicBool>,
    generation: Arc<AtomicU64>,
    sent: Arc<AtomicU64>,
}

impl FaultyVenue {
    async fn start(frames: Vec<String>, rate: f64) -> FaultyVenue {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/", listener.local_addr().unwrap());
        let silent = Arc::new(AtomicBool::new(false));
        let generation = Arc::new(AtomicU64::new(0));
        let sent = Arc::new(AtomicU64::new(0));
        let frames = Arc::new(frames);
        let (s, g, n) = (silent.clone(), generation.clone(), sent.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (frames, silent, generation, sent) =
                    (frames.clone(), s.clone(), g.clone(), n.clone());
                tokio::spawn(async move {
                    let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                        return;
                    };
                    let mine = generation.load(Ordering::SeqCst);
                    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
                    let mut i = 0usize;
                    loop {
                        tokio::select! {
                            m = ws.next() => if m.is_none() || matches!(m, Some(Err(_))) { return },
                            _ = tick.tick() => {
                                if generation.load(Ordering::SeqCst) != mine {
                                    let _ = ws.close(None).await;
                                    return;
                                }
                                if silent.load(Ordering::SeqCst) {
                                    continue;
                                }
                                if ws.send(Message::text(frames[i % frames.len()].clone())).await.is_err() {
                                    return;
                                }
                                sent.fetch_add(1, Ordering::Relaxed);
                                i += 1;
                            }
                        }
                    }
                });
            }
        });
        FaultyVenue {
            url,
            silent,
            generation,
            sent,
        }
    }

    /// Close every open connection (new ones are served).
    fn close_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

fn sum(text: &str, name: &str, filter: &str) -> f64 {
    metric(text, &format!("{name} "), filter) + metric(text, &format!("{name}{{"), filter)
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// One scenario told in order (start, faults round by round, the final
// accounting): split up, its timeline would be harder to follow.
#[allow(clippy::too_many_lines)]
async fn a_soak_with_faults_loses_nothing_unexplained() {
    let seconds: u64 = std::env::var("MDRELAY_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let mut nats = Nats::start();
    let lines: Vec<String> = FILES
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(root().join(f))
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    let venue = FaultyVenue::start(lines, 300.0).await;
    let dir = tempfile::tempdir().unwrap();
    let venues = dir.path().join("venues");
    std::fs::create_dir(&venues).unwrap();
    let original = std::fs::read_to_string(root().join("venues/binance-spot.toml"))
        .unwrap()
        .replace("silence_timeout = \"60s\"", "silence_timeout = \"3s\"");
    assert!(original.contains("silence_timeout = \"3s\""));
    let venue_file = venues.join("binance-spot.toml");
    std::fs::write(&venue_file, &original).unwrap();
    let http = free_port();
    let cfg = dir.path().join("relay.toml");
    let subs: String = instruments("binance-spot", None, &FILES)
        .iter()
        .map(|i| {
            format!(
                "[[venues.subscriptions]]\ninstrument = \"{i}\"\ntypes = [\"trade\", \"ticker\"]\n"
            )
        })
        .collect();
    std::fs::write(
        &cfg,
        format!(
            "venues_dir = \"{}\"\n[service]\nshutdown_timeout = \"20s\"\n[http]\nlisten = \"127.0.0.1:{http}\"\n\
             [nats]\nurls = [\"{}\"]\n[nats.publish]\nmax_in_flight = 128\n\
             [[nats.streams]]\nname = \"MARKET\"\nsubjects = [\"market.>\"]\nduplicate_window = \"2h\"\n\
             [pipeline.trade]\ncapacity = 2048\nwhen_full = \"block\"\n\
             [pipeline.ticker]\ncapacity = 256\nwhen_full = \"drop_newest\"\n\
             [[venues]]\nid = \"binance-spot\"\nurl = \"{}\"\n\
             [venues.reconnect]\ninitial_delay = \"200ms\"\nmax_delay = \"2s\"\n{subs}",
            venues.display(),
            nats.url(),
            venue.url
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mdrelay"))
        .args(["run", "--config"])
        .arg(&cfg)
        .env("RUST_LOG", "warn")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{http}").parse().unwrap();
    let stream = Stream::connect(&nats, "MARKET").await;
    wait_for_count(&stream, 50, Duration::from_secs(20)).await;
    let rss_start = rss_mib(pid);
    let t0 = Instant::now();
    let every = Duration::from_secs((seconds / 8).clamp(6, 240));
    let mut faults = Vec::new();
    let mut n = 0;
    while t0.elapsed() + every < Duration::from_secs(seconds) {
        tokio::time::sleep(every).await;
        let fault = match n % 4 {
            0 => {
                nats.kill();
                tokio::time::sleep(Duration::from_secs(5)).await;
                nats.restart();
                "NATS killed for 5 s"
            }
            1 => {
                venue.close_all();
                "venue closed every connection"
            }
            2 => {
                venue.silent.store(true, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(5)).await;
                venue.silent.store(false, Ordering::SeqCst);
                "venue silent for 5 s (silence timeout 3 s)"
            }
            _ => {
                std::fs::write(&venue_file, original.replace("price = ", "price = ('")).unwrap();
                tokio::time::sleep(Duration::from_secs(2)).await;
                std::fs::write(&venue_file, &original).unwrap();
                "a broken venue file saved, then the good one again"
            }
        };
        faults.push(format!("{:>5.0} s: {fault}", t0.elapsed().as_secs_f64()));
        n += 1;
    }
    // Let the last fault heal, then stop the feed and let the relay drain.
    tokio::time::sleep(Duration::from_secs(5)).await;
    venue.silent.store(true, Ordering::SeqCst);
    let mut last = String::new();
    let drained = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let (_, m) = http_get(addr, "/metrics").await;
            let idle = metric(&m, "mdrelay_publish_in_flight", "") == 0.0
                && metric(&m, "mdrelay_queue_depth", "") == 0.0;
            last = m;
            if idle {
                break;
            }
        }
    })
    .await;
    assert!(drained.is_ok(), "the relay did not drain");
    let rss_end = rss_mib(pid);
    let m = last;
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let status = child.wait().unwrap();
    let mut log = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut log);
    }
    let frames_in = sum(&m, "mdrelay_frames_received_total", "");
    let frames_out = sum(&m, "mdrelay_data_frames_total", "")
        + sum(&m, "mdrelay_mapping_failures_total", "")
        + sum(&m, "mdrelay_unrouted_frames_total", "")
        + sum(&m, "mdrelay_control_frames_total", "");
    let events_in =
        sum(&m, "mdrelay_events_mapped_total", "") + sum(&m, "mdrelay_events_generated_total", "");
    let published = sum(&m, "mdrelay_events_published_total", "");
    let duplicate = sum(&m, "mdrelay_events_duplicate_total", "");
    let dropped = sum(&m, "mdrelay_events_dropped_total", "");
    let causes: Vec<String> = m
        .lines()
        .filter(|l| l.starts_with("mdrelay_events_dropped_total{") && !l.ends_with(" 0"))
        .map(str::to_owned)
        .collect();
    let stored = stream.count().await;
    eprintln!(
        "soak {seconds} s, faults:\n  {}\nvenue sent {} frames; relay: frames {frames_in} (accounted {frames_out}), events {events_in} = published {published} + duplicate {duplicate} + dropped {dropped}; stream holds {stored}; drops by cause: {causes:#?}; reconnects {}; RSS {rss_start:.1} MiB at start, {rss_end:.1} MiB at the end; exit {status}",
        faults.join("\n  "),
        venue.sent.load(Ordering::Relaxed),
        sum(&m, "mdrelay_reconnects_total", "")
    );
    assert!(faults.len() >= 4, "every kind of fault happened");
    assert!(status.success(), "clean exit after draining:\n{log}");
    assert_eq!(frames_in, frames_out, "every frame accounted for");
    assert_eq!(
        events_in,
        published + duplicate + dropped,
        "every event accounted for"
    );
    assert_eq!(
        stored as f64, published,
        "the stream holds what was acked as new"
    );
    assert_eq!(sum(&m, "mdrelay_publish_failures_total", ""), 0.0);
    let unexplained: Vec<&String> = causes
        .iter()
        .filter(|c| !c.contains("queue_full") || c.contains("\"trade\""))
        .filter(|c| !c.contains("book_resync"))
        .collect();
    assert!(
        unexplained.is_empty(),
        "only drop_newest tickers may be dropped: {unexplained:?}"
    );
    assert!(
        rss_end < rss_start + 64.0,
        "RSS grew {rss_start:.1} -> {rss_end:.1} MiB"
    );
}
