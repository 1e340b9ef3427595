//! Per-instrument liveness, the pong deadline and the venue-lag histogram,
//! against a scripted OKX-protocol venue on loopback and a real nats-server.
//!
//! The frames are recorded OKX ticker frames (fixtures/okx/ticker.jsonl);
//! only their `ts` is rewritten per send (synthetic variation, so each sent
//! frame is a distinct event and can be counted in JetStream).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use futures_util::{SinkExt, StreamExt};
use mdrelay::application::relay::RelayHandle;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

/// A recorded ticker frame of `inst`, as a JSON value.
fn recorded_ticker(inst: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(root().join("fixtures/okx/ticker.jsonl")).unwrap();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["arg"]["instId"] == inst)
        .unwrap_or_else(|| panic!("no recorded ticker of {inst}"))
}

/// The frame with its event time set to `ts_ms`.
fn ticker_at(frame: &serde_json::Value, ts_ms: i64) -> String {
    let mut f = frame.clone();
    f["data"][0]["ts"] = serde_json::Value::String(ts_ms.to_string());
    f.to_string()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The OKX venue file, with `edit` applied, in its own directory.
fn venues_dir(edit: impl Fn(String) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join("venues/okx.toml")).unwrap();
    std::fs::write(dir.path().join("okx.toml"), edit(text)).unwrap();
    dir
}

async fn relay_for(
    nats: &Nats,
    venues: &tempfile::TempDir,
    url: &str,
    instruments: &[&str],
    extra: &str,
) -> RelayHandle {
    let mut config = format!(
        "[nats]\nurls = [\"{}\"]\n[[nats.streams]]\nname = \"MARKET\"\n\
         subjects = [\"market.>\"]\n[[venues]]\nid = \"okx\"\nurl = \"{url}\"\n{extra}\n\
         [venues.reconnect]\ninitial_delay = \"200ms\"\nmax_delay = \"1s\"\n",
        nats.url()
    );
    for i in instruments {
        config.push_str(&format!(
            "[[venues.subscriptions]]\ninstrument = \"{i}\"\ntypes = [\"ticker\"]\n"
        ));
    }
    relay_in(venues.path(), &config).await
}

/// What the scripted venue saw and does, shared with the test.
#[derive(Default)]
struct Script {
    /// Text messages received from the relay, in order.
    received: Vec<String>,
    /// Instruments whose tickers are held back.
    paused: Vec<String>,
    /// Tickers sent, per instrument.
    sent: std::collections::BTreeMap<String, u64>,
    /// Answer `ping` with `pong`.
    mute_pongs: bool,
    /// Connections accepted.
    connections: u64,
}

/// A venue speaking OKX's protocol: acks subscriptions, answers pings, and
/// sends a ticker of every subscribed instrument every `every`, with an
/// event time `lag` before now.
async fn venue(
    script: Arc<Mutex<Script>>,
    frames: Vec<(String, serde_json::Value)>,
    every: Duration,
    lag: Duration,
) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (script, frames) = (script.clone(), frames.clone());
            script.lock().unwrap().connections += 1;
            tokio::spawn(async move {
                let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                let (mut tx, mut rx) = ws.split();
                let mut tick = tokio::time::interval(every);
                let mut ts = now_ms() - lag.as_millis() as i64;
                loop {
                    tokio::select! {
                        msg = rx.next() => {
                            let Some(Ok(Message::Text(t))) = msg else {
                                if matches!(msg, Some(Ok(_))) { continue; }
                                return;
                            };
                            let reply = {
                                let mut s = script.lock().unwrap();
                                s.received.push(t.to_string());
                                if t.as_str() == "ping" {
                                    (!s.mute_pongs).then(|| "pong".to_owned())
                                } else {
                                    let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                                    let arg = v["args"][0].clone();
                                    v["op"].as_str().map(|op| serde_json::json!({"event": op, "arg": arg, "connId": "test"}).to_string())
                                }
                            };
                            if let Some(r) = reply
                                && tx.send(Message::text(r)).await.is_err()
                            {
                                return;
                            }
                        }
                        _ = tick.tick() => {
                            // Distinct, increasing event times: one event each.
                            ts = ts.max(now_ms() - lag.as_millis() as i64 - 1) + 1;
                            for (inst, frame) in &frames {
                                if script.lock().unwrap().paused.contains(inst) {
                                    continue;
                                }
                                if tx.send(Message::text(ticker_at(frame, ts))).await.is_err() {
                                    return;
                                }
                                *script.lock().unwrap().sent.entry(inst.clone()).or_default() += 1;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

/// Status events stored for `instrument`: (state, reason).
async fn statuses(stream: &Stream, token: &str) -> Vec<(String, String)> {
    stream
        .all_raw()
        .await
        .into_iter()
        .filter(|(subject, _, _)| *subject == format!("market.okx.{token}.status"))
        .map(|(_, _, body)| {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            (
                v["data"]["state"].as_str().unwrap().to_owned(),
                v["data"]["reason"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

async fn count_subject(stream: &Stream, subject: &str) -> u64 {
    stream
        .all_raw()
        .await
        .iter()
        .filter(|(s, _, _)| s == subject)
        .count() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_instrument_goes_stale_is_resubscribed_alone_and_comes_back_live() {
    let nats = Nats::start();
    let venues = venues_dir(|t| t);
    let script = Arc::new(Mutex::new(Script::default()));
    let frames = vec![
        ("BTC-USDT".to_owned(), recorded_ticker("BTC-USDT")),
        ("XMR-USDT-SWAP".to_owned(), recorded_ticker("XMR-USDT-SWAP")),
    ];
    let addr = venue(
        script.clone(),
        frames,
        Duration::from_millis(100),
        Duration::ZERO,
    )
    .await;
    let relay = relay_for(
        &nats,
        &venues,
        &format!("ws://{addr}/"),
        &["BTC-USDT", "XMR-USDT-SWAP"],
        "liveness = { ticker = \"1500ms\" }",
    )
    .await;
    let stream = Stream::connect(&nats, "MARKET").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let subscribes_before = script.lock().unwrap().received.len();
    // XMR goes quiet; BTC keeps streaming.
    script.lock().unwrap().paused.push("XMR-USDT-SWAP".into());
    let paused_at = Instant::now();
    let xmr = "xmr-usdt_usdt";
    let mut stale_after = None;
    while paused_at.elapsed() < Duration::from_secs(6) {
        if statuses(&stream, xmr)
            .await
            .iter()
            .any(|(s, _)| s == "stale")
        {
            stale_after = Some(paused_at.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stale_after = stale_after.expect("a stale status event for the quiet instrument");
    // 1.5 s expected interval, checked every second: within 1.5 s + 1 s + slack.
    assert!(
        stale_after >= Duration::from_millis(1400) && stale_after <= Duration::from_millis(3500),
        "stale after {stale_after:?}"
    );
    let h = http_get(relay.http_addr, "/health").await.1;
    let h: serde_json::Value = serde_json::from_str(&h).unwrap();
    let insts = h["venues"]["okx"]["instruments"].as_array().unwrap();
    let x = insts
        .iter()
        .find(|i| i["instrument"] == "XMR-USDT-SWAP")
        .unwrap();
    assert_eq!(x["data_types"]["ticker"]["state"], "stale", "{h}");
    let b = insts
        .iter()
        .find(|i| i["instrument"] == "BTC-USDT")
        .unwrap();
    assert_eq!(b["data_types"]["ticker"]["state"], "live", "{h}");
    assert!(
        b["data_types"]["ticker"]["age_ms"].as_u64().unwrap() < 1000,
        "{h}"
    );
    assert_eq!(h["venues"]["okx"]["status"], "degraded", "{h}");
    let m = relay.metrics.encode();
    assert_eq!(
        metric(&m, "mdrelay_instruments_stale", "data_type=\"ticker\""),
        1.0
    );
    assert_eq!(
        metric(&m, "mdrelay_stale_total", "data_type=\"ticker\""),
        1.0
    );
    // That instrument alone was unsubscribed and subscribed again, on the
    // same connection.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let resub: Vec<String> = script.lock().unwrap().received[subscribes_before..].to_vec();
    let resub: Vec<&String> = resub.iter().filter(|m| m.as_str() != "ping").collect();
    assert_eq!(
        resub.len(),
        2,
        "one unsubscribe and one subscribe: {resub:?}"
    );
    assert!(resub[0].contains("\"unsubscribe\"") && resub[0].contains("XMR-USDT-SWAP"));
    assert!(resub[1].contains("\"subscribe\"") && resub[1].contains("XMR-USDT-SWAP"));
    assert!(!resub.iter().any(|m| m.contains("BTC-USDT")), "{resub:?}");
    assert_eq!(script.lock().unwrap().connections, 1, "no reconnect");
    // Data returns: a `live` event follows.
    script.lock().unwrap().paused.clear();
    let back = Instant::now();
    loop {
        let st = statuses(&stream, xmr).await;
        if st.iter().any(|(s, _)| s == "live") {
            let states: Vec<&str> = st.iter().map(|(s, _)| s.as_str()).collect();
            assert_eq!(states, ["connected", "stale", "live"], "{st:?}");
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(5),
            "no live event: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let m = relay.metrics.encode();
    assert_eq!(
        metric(&m, "mdrelay_instruments_stale", "data_type=\"ticker\""),
        0.0
    );
    // The other instrument was not disturbed: only `connected`, and every
    // ticker it was sent is stored.
    let btc = statuses(&stream, "btc-usdt").await;
    assert_eq!(btc.len(), 1, "{btc:?}");
    let before_stop = script.lock().unwrap().sent["BTC-USDT"];
    let stored = wait_for_subject(&stream, "market.okx.btc-usdt.ticker", before_stop).await;
    assert!(
        stored >= before_stop,
        "BTC tickers sent {before_stop}, stored {stored}"
    );
    relay.shutdown().await;
    let sent = script.lock().unwrap().sent["BTC-USDT"];
    let stored = count_subject(&stream, "market.okx.btc-usdt.ticker").await;
    assert_eq!(stored, sent, "every BTC ticker sent is stored once");
}

async fn wait_for_subject(stream: &Stream, subject: &str, n: u64) -> u64 {
    let start = Instant::now();
    loop {
        let got = count_subject(stream, subject).await;
        if got >= n || start.elapsed() > Duration::from_secs(10) {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pongs_that_stop_end_the_connection_at_the_deadline_while_data_flows() {
    let nats = Nats::start();
    let venues = venues_dir(|t| {
        let t = t.replace(
            "interval = \"20s\"",
            "interval = \"500ms\"\npong_timeout = \"1s\"",
        );
        assert!(t.contains("pong_timeout"));
        t
    });
    let script = Arc::new(Mutex::new(Script::default()));
    let frames = vec![("BTC-USDT".to_owned(), recorded_ticker("BTC-USDT"))];
    let addr = venue(
        script.clone(),
        frames,
        Duration::from_millis(100),
        Duration::ZERO,
    )
    .await;
    let relay = relay_for(&nats, &venues, &format!("ws://{addr}/"), &["BTC-USDT"], "").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let m = relay.metrics.encode();
    assert_eq!(
        metric(&m, "mdrelay_pong_timeouts_total", "okx"),
        0.0,
        "pongs answered"
    );
    assert_eq!(script.lock().unwrap().connections, 1);
    script.lock().unwrap().mute_pongs = true;
    let muted = Instant::now();
    loop {
        if metric(
            &relay.metrics.encode(),
            "mdrelay_pong_timeouts_total",
            "okx",
        ) >= 1.0
        {
            break;
        }
        // 1 s deadline after the next ping (every 500 ms), checked every second.
        assert!(
            muted.elapsed() < Duration::from_secs(4),
            "no pong timeout while data flows"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ended = muted.elapsed();
    assert!(
        ended >= Duration::from_millis(900),
        "ended too early: {ended:?}"
    );
    let stream = Stream::connect(&nats, "MARKET").await;
    let st = statuses(&stream, "btc-usdt").await;
    assert!(
        st.iter()
            .any(|(s, r)| s == "disconnected" && r.contains("no pong")),
        "{st:?}"
    );
    // It reconnects (and, the venue still mute, ends again at the deadline).
    wait_until(Duration::from_secs(5), "a reconnect", || {
        script.lock().unwrap().connections >= 2
    })
    .await;
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_venue_lag_histogram_holds_the_lag_of_the_frames() {
    let nats = Nats::start();
    let venues = venues_dir(|t| t);
    let script = Arc::new(Mutex::new(Script::default()));
    let frames = vec![("BTC-USDT".to_owned(), recorded_ticker("BTC-USDT"))];
    // Every frame's event time is 2.5 s before it is sent.
    let lag = Duration::from_millis(2500);
    let addr = venue(script.clone(), frames, Duration::from_millis(50), lag).await;
    let relay = relay_for(&nats, &venues, &format!("ws://{addr}/"), &["BTC-USDT"], "").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let m = relay.metrics.encode();
    let sel = "venue=\"okx\",data_type=\"ticker\"";
    let count = metric(&m, "mdrelay_venue_lag_seconds_count", sel);
    let sum = metric(&m, "mdrelay_venue_lag_seconds_sum", sel);
    assert!(count >= 10.0, "observations: {count}");
    let mean = sum / count;
    assert!(
        (2.5..2.6).contains(&mean),
        "mean lag {mean} s for a 2.5 s lag"
    );
    // Buckets double from 1 ms: nothing at or under 2.048 s, all by 4.096 s.
    let le = |b: &str| {
        metric(
            &m,
            &format!("mdrelay_venue_lag_seconds_bucket{{le=\"{b}\",{sel}}}"),
            "",
        )
    };
    assert_eq!(le("2.048"), 0.0, "{m}");
    assert_eq!(le("4.096"), count);
    relay.shutdown().await;
}
