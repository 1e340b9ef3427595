//! The broker side of `mdrelay bench`: the relay's own encoded events
//! published by a plain client, as fast as the window allows (the ceiling),
//! at a steady rate (the broker's own latency), or with the relay's lean
//! publish protocol (reply subjects, one ack subscription).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

use super::bench::quantile;
use super::bench_feeds::{Feed, feeds};
use crate::application::publisher::HeaderTemplate;
use crate::config::relay::raw::RawNats;
use crate::config::venue::load_venue;
use crate::domain::Timestamp;
use crate::engine::mapper::{Mapper, RawFrame};
use crate::infrastructure::wire::Wire;
use crate::serialization::PayloadFormat;

/// How the plain client publishes.
#[derive(Debug, Clone, Copy)]
pub(super) enum Mode {
    /// The library's JetStream publish API, as fast as the window allows.
    Max,
    /// The same API at this many events per second, timing each ack.
    Paced(u32),
    /// The relay's protocol (reply subjects, one ack subscription), as fast
    /// as the window allows.
    Lean,
    /// Core publishes into the stream's subjects, no reply and no ack, for
    /// the measured time; then until the stream has stored what it will.
    /// The broker's storage ceiling.
    NoAck,
    /// The same, written by the relay's own publish connection (the direct
    /// writer: no header map, large writes), so that the client's cost per
    /// message cannot hold the ceiling down.
    NoAckDirect,
}

/// What the plain client achieved: acked events per second, and the
/// publish-to-ack latency quantiles in µs (0 when not timed).
pub(super) struct Ceiling {
    pub rate: f64,
    pub p50_us: u32,
    pub p99_us: u32,
    /// This process's CPU (the client's) per message, µs.
    pub cpu_us: f64,
}

/// One encoded event, ready to publish.
struct Msg {
    subject: async_nats::Subject,
    id: String,
    data_type: &'static str,
    /// The relay's header block up to the id's value (direct writer).
    block: Bytes,
    payload: Bytes,
}

impl Msg {
    /// The id in pass `round` over the list: `round` > 0 (the list sent
    /// again) makes it new, so that the stream stores the message instead
    /// of skipping a duplicate.
    fn id(&self, round: usize) -> std::borrow::Cow<'_, str> {
        if round == 0 {
            self.id.as_str().into()
        } else {
            format!("{}~{round}", self.id).into()
        }
    }

    /// The relay's headers, with the id of pass `round`.
    fn headers(&self, round: usize) -> async_nats::HeaderMap {
        let mut h = async_nats::HeaderMap::new();
        h.insert("Nats-Msg-Id", self.id(round).as_ref());
        h.insert("Mdrelay-Venue", "bench");
        h.insert("Mdrelay-Data-Type", self.data_type);
        h.insert("Content-Type", "application/json");
        h
    }
}

/// The blasted feeds' events, encoded as the relay would, on `stream`'s
/// subjects.
fn messages(root: &Path, stream: &str) -> anyhow::Result<Vec<Msg>> {
    let mut msgs = Vec::new();
    for Feed { venue, files, .. } in feeds(root)? {
        let v = load_venue(&root.join("venues").join(format!("{venue}.toml")))?;
        let mut mapper = Mapper::new(v.id.clone(), None, Default::default());
        let mut events = Vec::new();
        for f in &files {
            for line in std::fs::read_to_string(root.join("benches/data").join(f))?.lines() {
                events.clear();
                let _ = mapper.map(&v, RawFrame::Text(line), Timestamp::now(), &mut events);
                for e in &events {
                    let mut buf = Vec::new();
                    PayloadFormat::Json.encode(e, &mut buf);
                    msgs.push(Msg {
                        subject: format!("{}.{}", stream.to_ascii_lowercase(), e.subject()).into(),
                        id: e.id.0.clone(),
                        data_type: e.data_type().as_str(),
                        block: Bytes::copy_from_slice(
                            HeaderTemplate::new("bench", e.data_type(), "application/json").block(),
                        ),
                        payload: Bytes::from(buf),
                    });
                }
            }
        }
    }
    Ok(msgs)
}

/// Publish the relay's encoded events to a new file-storage stream
/// `stream` for `seconds` (after a second of warm-up), as `mode` says.
pub(super) async fn ceiling(
    root: &Path,
    nats_port: u16,
    window: usize,
    seconds: u64,
    stream: &str,
    mode: Mode,
) -> anyhow::Result<Ceiling> {
    let msgs = messages(root, stream)?;
    let client = async_nats::connect(format!("nats://127.0.0.1:{nats_port}")).await?;
    let js = async_nats::jetstream::new(client);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: stream.into(),
        subjects: vec![format!("{}.>", stream.to_ascii_lowercase())],
        storage: async_nats::jetstream::stream::StorageType::File,
        max_age: Duration::from_secs(600),
        duplicate_window: Duration::from_millis(100),
        ..Default::default()
    })
    .await?;
    match mode {
        Mode::Max => request_ceiling(&js, &msgs, window, seconds, None).await,
        Mode::Paced(rate) => request_ceiling(&js, &msgs, window, seconds, Some(rate)).await,
        Mode::Lean => lean_ceiling(js.client(), &msgs, window, seconds).await,
        Mode::NoAck => no_ack_ceiling(&js, stream, &msgs, seconds, None).await,
        Mode::NoAckDirect => {
            let cfg: RawNats =
                toml::from_str(&format!("urls = [\"nats://127.0.0.1:{nats_port}\"]"))?;
            let wire = Wire::start(&cfg, "mdrelay-bench")?;
            if !wire.wait_connected(Duration::from_secs(10)).await {
                bail!("no-ack ceiling: the direct connection did not come up");
            }
            no_ack_ceiling(&js, stream, &msgs, seconds, Some(wire)).await
        }
    }
}

/// Core publishes for `seconds`, never more than `LAG` ahead of what the
/// stream has stored (JetStream drops what overflows its ingest queue, 10k
/// messages by default), then until the stream has stored them all: stored
/// messages over the time from the first publish to the last store.
async fn no_ack_ceiling(
    js: &async_nats::jetstream::Context,
    stream: &str,
    msgs: &[Msg],
    seconds: u64,
    wire: Option<Wire>,
) -> anyhow::Result<Ceiling> {
    const LAG: u64 = 8_192;
    let client = js.client();
    let mut s = js.get_stream(stream).await?;
    let before = s.info().await?.state.messages;
    let start = Instant::now();
    let c0 = super::bench_procs::cpu_seconds();
    let mut i = 0usize;
    let mut stored = 0;
    while start.elapsed() < Duration::from_secs(seconds) {
        for _ in 0..1_024 {
            let m = &msgs[i % msgs.len()];
            let round = i / msgs.len();
            match &wire {
                Some(w) => w.hpub(
                    m.subject.as_bytes(),
                    b"",
                    &m.block,
                    m.id(round).as_bytes(),
                    &m.payload,
                )?,
                None => {
                    client
                        .publish_with_headers(
                            m.subject.clone(),
                            m.headers(round),
                            m.payload.clone(),
                        )
                        .await?
                }
            }
            i += 1;
        }
        if wire.is_some() {
            // Let the connection's task write what was queued.
            tokio::task::yield_now().await;
        }
        while i as u64 > stored + LAG {
            stored = s.info().await?.state.messages - before;
        }
    }
    let cpu = super::bench_procs::cpu_seconds() - c0;
    let mut at = Instant::now();
    let deadline = at + Duration::from_secs(10);
    while stored < i as u64 && Instant::now() < deadline {
        let now = s.info().await?.state.messages - before;
        if now != stored {
            (stored, at) = (now, Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    if stored < i as u64 {
        eprintln!("no-ack ceiling: {stored} of {i} published messages stored");
    }
    Ok(Ceiling {
        rate: stored as f64 / at.duration_since(start).as_secs_f64(),
        p50_us: 0,
        p99_us: 0,
        cpu_us: cpu / i.max(1) as f64 * 1e6,
    })
}

/// The library's JetStream publish API, within `window`, optionally paced.
async fn request_ceiling(
    js: &async_nats::jetstream::Context,
    msgs: &[Msg],
    window: usize,
    seconds: u64,
    paced: Option<u32>,
) -> anyhow::Result<Ceiling> {
    let permits = Arc::new(tokio::sync::Semaphore::new(window));
    let mut pending = FuturesUnordered::new();
    let (mut acked, mut errors) = (0u64, 0u64);
    let start = Instant::now();
    let warm = Duration::from_secs(1);
    let mut window_start = None;
    let mut i = 0usize;
    let mut latencies: Vec<u32> = Vec::new();
    let mut c0 = 0.0;
    while start.elapsed() < warm + Duration::from_secs(seconds) {
        if start.elapsed() >= warm && window_start.is_none() {
            window_start = Some((Instant::now(), acked));
            c0 = super::bench_procs::cpu_seconds();
            latencies.clear();
        }
        if let Some(rate) = paced {
            // Send what the rate asks for by now, then wait a millisecond.
            let due = (start.elapsed().as_secs_f64() * f64::from(rate)) as usize;
            if i >= due {
                tokio::select! {
                    Some(r) = pending.next(), if !pending.is_empty() => {
                        let r: Result<u32, String> = r;
                        if let Ok(us) = r {
                            acked += 1;
                            latencies.push(us);
                        }
                    }
                    _ = tokio::time::sleep(Duration::from_millis(1)) => {}
                }
                continue;
            }
        }
        let permit = tokio::select! {
            biased;
            Some(r) = pending.next(), if !pending.is_empty() => {
                let r: Result<u32, String> = r;
                match r {
                    Ok(us) => {
                        acked += 1;
                        latencies.push(us);
                    }
                    Err(e) => {
                        errors += 1;
                        if errors == 1 {
                            eprintln!("ceiling: publish failed: {e}");
                        }
                    }
                }
                continue;
            }
            p = permits.clone().acquire_owned() => p?,
        };
        let m = &msgs[i % msgs.len()];
        i += 1;
        let sent = Instant::now();
        let ack = js
            .publish_with_headers(
                m.subject.clone(),
                m.headers((i - 1) / msgs.len()),
                m.payload.clone(),
            )
            .await?;
        pending.push(async move {
            let r = ack
                .await
                .map(|_| u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX))
                .map_err(|e| e.to_string());
            drop(permit);
            r
        });
    }
    let (t0, a0) = window_start.unwrap_or((start, 0));
    let rate = (acked - a0) as f64 / t0.elapsed().as_secs_f64();
    let cpu_us = (super::bench_procs::cpu_seconds() - c0) / (acked - a0).max(1) as f64 * 1e6;
    while pending.next().await.is_some() {}
    latencies.sort_unstable();
    Ok(Ceiling {
        rate,
        p50_us: quantile(&latencies, 0.50),
        p99_us: quantile(&latencies, 0.99),
        cpu_us,
    })
}

/// The relay's own publish protocol: a reply subject per message under one
/// inbox, one subscription counting the acks, the same window. (Rate only;
/// the stream has room, so acks are not inspected.)
async fn lean_ceiling(
    client: async_nats::Client,
    msgs: &[Msg],
    window: usize,
    seconds: u64,
) -> anyhow::Result<Ceiling> {
    let inbox = client.new_inbox();
    let mut acks = client.subscribe(format!("{inbox}.*")).await?;
    let (mut sent, mut acked) = (0u64, 0u64);
    let start = Instant::now();
    let warm = Duration::from_secs(1);
    let mut window_start = None;
    let mut c0 = 0.0;
    while start.elapsed() < warm + Duration::from_secs(seconds) {
        if start.elapsed() >= warm && window_start.is_none() {
            window_start = Some((Instant::now(), acked));
            c0 = super::bench_procs::cpu_seconds();
        }
        while sent - acked < window as u64 {
            let m = &msgs[sent as usize % msgs.len()];
            client
                .publish_with_reply_and_headers(
                    m.subject.clone(),
                    format!("{inbox}.{sent}"),
                    m.headers(sent as usize / msgs.len()),
                    m.payload.clone(),
                )
                .await?;
            sent += 1;
        }
        match tokio::time::timeout(Duration::from_secs(5), acks.next()).await {
            Ok(Some(_)) => acked += 1,
            _ => bail!("lean ceiling: no ack within 5 s"),
        }
    }
    let (t0, a0) = window_start.unwrap_or((start, 0));
    Ok(Ceiling {
        rate: (acked - a0) as f64 / t0.elapsed().as_secs_f64(),
        p50_us: 0,
        p99_us: 0,
        cpu_us: (super::bench_procs::cpu_seconds() - c0) / (acked - a0).max(1) as f64 * 1e6,
    })
}
