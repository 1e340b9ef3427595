//! Venue faults with a real nats-server and scripted fake venues on
//! loopback: connection refused, closed mid-frame, a silent (half-open)
//! connection, a subscribe never acknowledged, an error frame, and a 5 MB
//! frame. Each leads to the documented behaviour and never to a crash or a
//! hot loop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::common::*;
use futures_util::{SinkExt, StreamExt};
use mdrelay::application::relay::RelayHandle;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

/// The OKX venue file with short timeouts, in its own directory.
fn venues_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join("venues/okx.toml"))
        .unwrap()
        .replace("silence_timeout = \"30s\"", "silence_timeout = \"2s\"")
        .replace(
            "max_items_per_message = 100     # args must stay under 64 KB",
            "max_items_per_message = 100\nack_timeout = \"1500ms\"",
        );
    assert!(text.contains("ack_timeout") && text.contains("\"2s\""));
    std::fs::write(dir.path().join("okx.toml"), text).unwrap();
    dir
}

async fn relay_for(nats: &Nats, venues: &tempfile::TempDir, url: &str) -> RelayHandle {
    let config = format!(
        "[nats]\nurls = [\"{}\"]\n[[nats.streams]]\nname = \"MARKET\"\n\
         subjects = [\"market.>\"]\n[[venues]]\nid = \"okx\"\nurl = \"{url}\"\n\
         [venues.reconnect]\ninitial_delay = \"200ms\"\nmax_delay = \"1s\"\n\
         [venues.circuit_breaker]\nfailure_threshold = 100\n\
         [[venues.subscriptions]]\ninstrument = \"BTC-USDT\"\ntypes = [\"trade\"]\n",
        nats.url()
    );
    relay_in(venues.path(), &config).await
}

async fn health(relay: &RelayHandle) -> serde_json::Value {
    let (_, body) = http_get(relay.http_addr, "/health").await;
    serde_json::from_str(&body).unwrap()
}

fn reconnects(relay: &RelayHandle) -> f64 {
    metric(&relay.metrics.encode(), "mdrelay_reconnects_total", "okx")
}

/// A scripted venue: each accepted connection runs `script` on the
/// WebSocket (or the raw socket, for `raw`).
struct Venue {
    addr: SocketAddr,
    connections: Arc<AtomicU64>,
}

impl Venue {
    async fn start<F, Fut>(script: F) -> Venue
    where
        F: Fn(tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>) -> Fut
            + Send
            + Sync
            + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicU64::new(0));
        let count = connections.clone();
        let script = Arc::new(script);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let script = script.clone();
                tokio::spawn(async move {
                    if let Ok(ws) = tokio_tungstenite::accept_async(tcp).await {
                        script(ws).await;
                    }
                });
            }
        });
        Venue { addr, connections }
    }

    fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }
}

const ACK: &str =
    r#"{"event":"subscribe","arg":{"channel":"trades","instId":"BTC-USDT"},"connId":"a4d3ae55"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_backs_off_without_a_hot_loop() {
    let nats = Nats::start();
    let venues = venues_dir();
    let port = free_port(); // nothing listens here
    let relay = relay_for(&nats, &venues, &format!("ws://127.0.0.1:{port}/")).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let n = reconnects(&relay);
    let h = health(&relay).await;
    eprintln!("refused: {n} reconnect attempts in 4 s; health {h}");
    // 200 ms doubling to 1 s (with jitter): about 6 attempts, never hundreds.
    assert!((2.0..=12.0).contains(&n), "attempts in 4 s: {n}");
    let conn = &h["venues"]["okx"]["connections"][0];
    assert_eq!(conn["state"], "reconnecting");
    assert!(conn["last_error"].as_str().unwrap().contains("refused"));
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_mid_frame_leads_to_a_reconnect() {
    let nats = Nats::start();
    let venues = venues_dir();
    let venue = Venue::start(|mut ws| async move {
        let _ = ws.next().await; // the subscribe
        let _ = ws.send(Message::text(ACK)).await;
        // A text frame header announcing 100 bytes, then 10 bytes, then EOF.
        let tcp = ws.get_mut();
        let _ = tcp.write_all(&[0x81, 100]).await;
        let _ = tcp.write_all(b"{\"arg\":{\"c").await;
        let _ = tcp.shutdown().await;
    })
    .await;
    let relay = relay_for(&nats, &venues, &venue.url()).await;
    wait_until(Duration::from_secs(10), "three connections", || {
        venue.connections() >= 3
    })
    .await;
    let h = health(&relay).await;
    eprintln!(
        "closed mid-frame: {} connections; health {h}",
        venue.connections()
    );
    assert!(reconnects(&relay) >= 2.0);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_half_open_connection_is_detected() {
    let nats = Nats::start();
    let venues = venues_dir();
    let venue = Venue::start(|mut ws| async move {
        let _ = ws.next().await;
        let _ = ws.send(Message::text(ACK)).await;
        // Keep the socket open and say nothing, ever (no FIN, no data), and
        // never read the relay's pings.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        drop(ws);
    })
    .await;
    let relay = relay_for(&nats, &venues, &venue.url()).await;
    let started = Instant::now();
    wait_until(Duration::from_secs(10), "a second connection", || {
        venue.connections() >= 2
    })
    .await;
    let took = started.elapsed();
    eprintln!("half-open connection replaced after {took:?} (silence_timeout 2 s)");
    assert!(
        took >= Duration::from_millis(1800),
        "not before the timeout"
    );
    let h = health(&relay).await;
    let err = h["venues"]["okx"]["connections"][0]["last_error"].to_string();
    assert!(err.contains("no frame for"), "{err}");
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscribe_never_acknowledged_or_refused_leads_to_a_reconnect() {
    let nats = Nats::start();
    let venues = venues_dir();
    // Never acks; sends unsolicited `pong`s every 300 ms so the connection
    // does not look silent. From the second connection on, the subscribe is
    // answered with an error frame.
    let connection = Arc::new(AtomicU64::new(0));
    let venue = Venue::start(move |mut ws| {
        let first = connection.fetch_add(1, Ordering::SeqCst) == 0;
        async move {
            let mut tick = tokio::time::interval(Duration::from_millis(300));
            loop {
                tokio::select! {
                    m = ws.next() => match m {
                        Some(Ok(Message::Text(t))) if t.contains("subscribe") && !first => {
                            let _ = ws
                                .send(Message::text(
                                    r#"{"event":"error","code":"60018","msg":"Wrong URL or channel:trades,instId:BTC-USDT doesn't exist."}"#,
                                ))
                                .await;
                        }
                        Some(Ok(_)) => {}
                        _ => break,
                    },
                    _ = tick.tick() => {
                        if ws.send(Message::text("pong")).await.is_err() {
                            break;
                        }
                    }
                }
            }
        }
    })
    .await;
    let relay = relay_for(&nats, &venues, &venue.url()).await;
    wait_until(Duration::from_secs(10), "three connections", || {
        venue.connections() >= 3
    })
    .await;
    let h = health(&relay).await;
    eprintln!(
        "never acked: {} connections; health {h}",
        venue.connections()
    );
    let conn = &h["venues"]["okx"]["connections"][0];
    let err = conn["last_error"].to_string();
    assert!(err.contains("acknowledged"), "{err}");
    let stream = Stream::connect(&nats, "MARKET").await;
    let stored = stream.all().await;
    assert!(
        stored
            .iter()
            .any(|m| m.subject.ends_with(".status") && m.json["data"]["state"] == "disconnected"),
        "a status event tells consumers"
    );
    assert!(
        metric(
            &relay.metrics.encode(),
            "mdrelay_subscriptions_rejected_total",
            "okx"
        ) >= 1.0
            || metric(
                &relay.metrics.encode(),
                "mdrelay_control_frames_total",
                "error"
            ) >= 1.0,
        "the error frame is counted"
    );
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5_mb_frame_is_mapped_in_full() {
    let nats = Nats::start();
    let venues = venues_dir();
    // Synthetic (not recorded): the first recorded OKX trade of the fixture,
    // repeated with distinct trade ids until the frame passes 5 MB.
    let recorded = std::fs::read_to_string(root().join("fixtures/okx/trades.jsonl")).unwrap();
    let frame: serde_json::Value = recorded
        .lines()
        .find_map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .filter(|v| v["arg"]["channel"] == "trades" && v["data"].is_array())
                // The instrument the relay subscribes.
                .filter(|v| v["data"][0]["instId"] == "BTC-USDT")
        })
        .unwrap();
    let trade = frame["data"][0].clone();
    let mut big = frame.clone();
    let mut data = Vec::new();
    let mut i = 0u64;
    let mut size = 0;
    while size < 5 * 1024 * 1024 {
        let mut t = trade.clone();
        t["tradeId"] = serde_json::Value::String(format!("9{i:09}"));
        size += t.to_string().len() + 1;
        data.push(t);
        i += 1;
    }
    big["data"] = serde_json::Value::Array(data);
    let text = big.to_string();
    let n = i;
    eprintln!("frame of {} bytes with {n} trades", text.len());
    let venue = Venue::start(move |mut ws| {
        let text = text.clone();
        async move {
            let _ = ws.next().await;
            let _ = ws.send(Message::text(ACK)).await;
            let _ = ws.send(Message::text(text)).await;
            while ws.next().await.is_some() {}
        }
    })
    .await;
    let relay = relay_for(&nats, &venues, &venue.url()).await;
    let stream = Stream::connect(&nats, "MARKET").await;
    let got = wait_for_count(&stream, n + 1, Duration::from_secs(60)).await;
    assert_eq!(
        got,
        n + 1,
        "every trade of the 5 MB frame, plus `connected`"
    );
    assert_eq!(venue.connections(), 1, "no reconnect");
    relay.shutdown().await;
}

/// The OKX venue file with a 4 s silence timeout, in its own directory.
fn venues_dir_4s() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join("venues/okx.toml"))
        .unwrap()
        .replace("silence_timeout = \"30s\"", "silence_timeout = \"4s\"");
    std::fs::write(dir.path().join("okx.toml"), text).unwrap();
    dir
}

/// One recorded OKX BTC-USDT trade frame.
fn a_trade() -> String {
    std::fs::read_to_string(root().join("fixtures/okx/trades.jsonl"))
        .unwrap()
        .lines()
        .find(|l| l.contains("\"channel\":\"trades\"") && l.contains("\"instId\":\"BTC-USDT\""))
        .unwrap()
        .to_owned()
}

async fn relay_with(
    nats: &Nats,
    venues: &tempfile::TempDir,
    url: &str,
    extra: &str,
) -> RelayHandle {
    let config = format!(
        "{extra}\n[nats]\nurls = [\"{}\"]\n[[nats.streams]]\nname = \"MARKET\"\n\
         subjects = [\"market.>\"]\n[[venues]]\nid = \"okx\"\nurl = \"{url}\"\n\
         [venues.reconnect]\ninitial_delay = \"200ms\"\nmax_delay = \"1s\"\n\
         [[venues.subscriptions]]\ninstrument = \"BTC-USDT\"\ntypes = [\"trade\"]\n",
        nats.url()
    );
    relay_in(venues.path(), &config).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_connection_degrades_health_before_its_silence_timeout() {
    let nats = Nats::start();
    let venues = venues_dir_4s();
    let trade = a_trade();
    // Trades every 100 ms for 2 s, then 3 s of nothing (under the 4 s
    // silence timeout), then trades again.
    let venue = Venue::start(move |mut ws| {
        let trade = trade.clone();
        async move {
            let _ = ws.next().await;
            let _ = ws.send(Message::text(ACK)).await;
            for phase in 0..3 {
                let until = Instant::now() + Duration::from_secs(if phase == 1 { 3 } else { 2 });
                while Instant::now() < until {
                    if phase != 1 && ws.send(Message::text(trade.clone())).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            while ws.next().await.is_some() {}
        }
    })
    .await;
    let relay = relay_with(
        &nats,
        &venues,
        &venue.url(),
        "[health]\nsilence_fraction = 0.5",
    )
    .await;
    let status = || async { health(&relay).await["venues"]["okx"]["status"].clone() };
    let t0 = Instant::now();
    while status().await != "healthy" {
        assert!(t0.elapsed() < Duration::from_secs(3), "never healthy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    while status().await != "degraded" {
        assert!(
            t0.elapsed() < Duration::from_secs(8),
            "the quiet spell never showed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let degraded_at = t0.elapsed();
    let h = health(&relay).await;
    assert_eq!(h["venues"]["okx"]["connections"][0]["quiet"], true, "{h}");
    assert_eq!(venue.connections(), 1, "not yet replaced: {h}");
    while status().await != "healthy" {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "never healthy again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "degraded at {degraded_at:?}, healthy again at {:?}",
        t0.elapsed()
    );
    assert_eq!(venue.connections(), 1, "the connection was kept");
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_venue_error_frame_degrades_health_then_ages_out() {
    let nats = Nats::start();
    let venues = venues_dir_4s();
    let trade = a_trade();
    let venue = Venue::start(move |mut ws| {
        let trade = trade.clone();
        async move {
            let _ = ws.next().await;
            let _ = ws.send(Message::text(ACK)).await;
            let _ = ws
                .send(Message::text(
                    r#"{"event":"error","code":"60012","msg":"Invalid request"}"#,
                ))
                .await;
            while ws.send(Message::text(trade.clone())).await.is_ok() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    })
    .await;
    let relay = relay_with(
        &nats,
        &venues,
        &venue.url(),
        "[health]\nerror_memory = \"2s\"",
    )
    .await;
    let t0 = Instant::now();
    wait_until(Duration::from_secs(5), "the error recorded", || {
        metric(
            &relay.metrics.encode(),
            "mdrelay_subscriptions_rejected_total",
            "okx",
        ) >= 1.0
    })
    .await;
    let h = health(&relay).await;
    assert_eq!(h["venues"]["okx"]["status"], "degraded", "{h}");
    assert_eq!(
        h["venues"]["okx"]["connections"][0]["recent_errors"][0]["message"],
        "60012: Invalid request",
        "{h}"
    );
    loop {
        let h = health(&relay).await;
        if h["venues"]["okx"]["status"] == "healthy" {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(8),
            "the error never aged out: {h}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "healthy again {:?} after the error (error_memory 2 s)",
        t0.elapsed()
    );
    assert!(t0.elapsed() >= Duration::from_millis(1500));
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_venue_back_after_40_s_is_reconnected_within_max_delay() {
    let nats = Nats::start();
    let first = Replay::start(
        mdrelay::tools::replay::ReplaySpec {
            frames: frames(&["fixtures/okx/trades.jsonl"]),
            ..Default::default()
        },
        None,
    )
    .await;
    let addr = first.addr;
    // The default circuit breaker (5 failures open it) and a 5 s cap.
    let config = format!(
        "[nats]\nurls = [\"{}\"]\n[[nats.streams]]\nname = \"MARKET\"\nsubjects = [\"market.>\"]\n\
         [[venues]]\nid = \"okx\"\nurl = \"{}\"\n[venues.reconnect]\ninitial_delay = \"500ms\"\nmax_delay = \"5s\"\n\
         [[venues.subscriptions]]\ninstrument = \"BTC-USDT\"\ntypes = [\"trade\"]\n",
        nats.url(),
        first.url()
    );
    let relay = relay(&config).await;
    wait_until(Duration::from_secs(10), "connected", || {
        first.stats.connections.load(Ordering::Relaxed) >= 1
    })
    .await;
    first.stop().await;
    tokio::time::sleep(Duration::from_secs(40)).await;
    let attempts = reconnects(&relay);
    let second = Replay::start(
        mdrelay::tools::replay::ReplaySpec {
            frames: frames(&["fixtures/okx/trades.jsonl"]),
            ..Default::default()
        },
        Some(addr),
    )
    .await;
    let back = Instant::now();
    wait_until(Duration::from_secs(15), "reconnected", || {
        second.stats.connections.load(Ordering::Relaxed) >= 1
    })
    .await;
    let took = back.elapsed();
    eprintln!("venue back: reconnected after {took:?}; {attempts} attempts in 40 s");
    assert!(
        took <= Duration::from_millis(5500),
        "max_delay is 5 s: {took:?}"
    );
    // 500 ms doubling to the 5 s cap (jitter inside it), the breaker's
    // pauses no longer than the cap: between 8 and ~20 attempts in 40 s.
    assert!((8.0..=25.0).contains(&attempts), "{attempts} attempts");
    relay.shutdown().await;
    second.stop().await;
}
