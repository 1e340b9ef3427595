//! Recorded feeds served by fake venues at a steady rate, the event ids
//! they must produce (mapped offline with the same venue files), and the
//! ids a stream holds: for tests that end with "0 lost, 0 stored twice".

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use mdrelay::serialization::frames::OwnedFrame;
use mdrelay::tools::replay::ReplaySpec;

use super::{Replay, frames, root};

/// One recorded feed: a venue, its recorded frames, the data types to
/// subscribe (for every instrument the frames carry).
#[derive(Debug, Clone, Copy)]
pub struct Feed {
    /// Venue id (`venues/<id>.toml`).
    pub venue: &'static str,
    /// Recorded frames, relative to the repository (benches/data).
    pub files: &'static [&'static str],
    /// Data types the frames carry.
    pub types: &'static [&'static str],
    /// Frames per second.
    pub rate: f64,
}

/// About 1,100 recorded frames/s for about 13.5 s, 15,328 distinct events,
/// over three venues (benches/data/README.md has their provenance):
/// Binance COIN-M best bid/offer (6,525 tickers at 480/s), Coinbase
/// Exchange level-2 books (6,810 snapshots and updates at 500/s), Binance
/// USD-M best bid/offer and trades (1,993 at 150/s).
pub const CLUSTER_FEEDS: [Feed; 3] = [
    Feed {
        venue: "binance-coinm",
        files: &["benches/data/binance-coinm.bbo.jsonl"],
        types: &["ticker"],
        rate: 480.0,
    },
    Feed {
        venue: "coinbase-exchange",
        files: &["benches/data/coinbase-exchange.book.jsonl"],
        types: &["l2_orderbook"],
        rate: 500.0,
    },
    Feed {
        venue: "binance-usdm",
        files: &[
            "benches/data/binance-usdm.bbo.jsonl",
            "benches/data/binance-usdm.trades.jsonl",
        ],
        types: &["ticker", "trade"],
        rate: 150.0,
    },
];

/// The ids the relay must publish for `feed`'s frames: every event of the
/// subscribed types, mapped with the venue file (distinct ids).
pub fn expected_ids(feed: &Feed, frames: &[OwnedFrame]) -> HashSet<String> {
    let venue = mdrelay::config::venue::load_venue(
        &root().join("venues").join(format!("{}.toml", feed.venue)),
    )
    .unwrap();
    let mut mapper =
        mdrelay::engine::mapper::Mapper::new(venue.id.clone(), None, Default::default());
    let mut ids = HashSet::new();
    let mut out = Vec::new();
    for f in frames {
        out.clear();
        if mapper
            .map(&venue, f.as_raw(), mdrelay::domain::Timestamp(0), &mut out)
            .is_ok()
        {
            for e in &out {
                if feed.types.contains(&e.data_type().as_str()) {
                    ids.insert(e.id.to_string());
                }
            }
        }
    }
    ids
}

/// Fake venues serving feeds on one live clock each (clients connected at
/// the same time receive the same frames at the same time).
pub struct Feeds {
    /// The feeds, with their servers.
    pub running: Vec<(Feed, Replay)>,
    /// Every id the feeds must produce.
    pub expected: HashSet<String>,
    /// Frames each server sends to one client.
    pub frames: u64,
}

impl Feeds {
    /// Start one fake venue per feed.
    pub async fn start(feeds: &[Feed]) -> Feeds {
        Self::start_scaled(feeds, 1.0).await
    }

    /// Start one fake venue per feed, at `scale` times the feeds' rates.
    pub async fn start_scaled(feeds: &[Feed], scale: f64) -> Feeds {
        let mut running = Vec::new();
        let mut expected = HashSet::new();
        let mut total = 0;
        for feed in feeds {
            let frames = frames(feed.files);
            expected.extend(expected_ids(feed, &frames));
            total += frames.len() as u64;
            let replay = Replay::start(
                ReplaySpec {
                    frames,
                    rate: Some(feed.rate * scale),
                    ..Default::default()
                },
                None,
            )
            .await;
            running.push((*feed, replay));
        }
        Feeds {
            running,
            expected,
            frames: total,
        }
    }

    /// `[[venues]]` entries for the feeds whose venue `pick` accepts.
    pub fn venues_toml(&self, pick: impl Fn(&str) -> bool) -> String {
        let mut s = String::new();
        for (feed, replay) in self.running.iter().filter(|(f, _)| pick(f.venue)) {
            let types: Vec<String> = feed.types.iter().map(|t| format!("\"{t}\"")).collect();
            s.push_str(&format!(
                "[[venues]]\nid = \"{}\"\nurl = \"{}\"\n{}",
                feed.venue,
                replay.url(),
                super::subs_for(feed.venue, feed.files, &types.join(", "))
            ));
        }
        s
    }

    /// Frames sent so far, over every server and client.
    pub fn sent(&self) -> u64 {
        self.running
            .iter()
            .map(|(_, r)| {
                r.stats
                    .frames_sent
                    .load(std::sync::atomic::Ordering::Relaxed)
            })
            .sum()
    }

    /// Wait until the servers have sent at least `at_least` frames and then
    /// nothing for a second (every connected client has had its whole
    /// recording, or its connection is gone).
    pub async fn wait_done(&self, at_least: u64, timeout: Duration) {
        let t0 = Instant::now();
        let mut last = (self.sent(), Instant::now());
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = self.sent();
            if now != last.0 {
                last = (now, Instant::now());
            } else if now >= at_least && last.1.elapsed() >= Duration::from_secs(1) {
                return;
            }
            assert!(
                t0.elapsed() < timeout,
                "the fake venues did not finish within {timeout:?} ({now} of at least {at_least} frames sent)"
            );
        }
    }

    /// Stop every server.
    pub async fn stop(self) {
        for (_, r) in self.running {
            r.stop().await;
        }
    }
}

/// Every message of a stream: (subject, `Nats-Msg-Id`), read with an
/// ordered consumer.
pub async fn stored_ids(client: &async_nats::Client, stream: &str) -> Vec<(String, String)> {
    let js = async_nats::jetstream::new(client.clone());
    let mut s = js.get_stream(stream).await.unwrap();
    let total = s.info().await.unwrap().state.messages;
    let consumer = s
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig::default())
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let mut out = Vec::with_capacity(total as usize);
    while (out.len() as u64) < total {
        let m = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .expect("stream read stalled")
            .expect("stream ended")
            .unwrap();
        let id = m
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Msg-Id"))
            .map(|v| v.to_string())
            .unwrap_or_default();
        out.push((m.subject.to_string(), id));
    }
    out
}

/// Lost and twice-stored counts of a stream against the expected ids.
#[derive(Debug, PartialEq, Eq)]
pub struct Tally {
    /// Messages stored.
    pub stored: usize,
    /// Expected ids not in the stream.
    pub lost: usize,
    /// Messages whose id another message already has.
    pub twice: usize,
    /// A few lost ids, for the failure message.
    pub lost_sample: Vec<String>,
}

/// Count the stream's ids against `expected` (status events are stored
/// too; they count for duplicates, not for losses).
pub async fn tally(client: &async_nats::Client, stream: &str, expected: &HashSet<String>) -> Tally {
    let stored = stored_ids(client, stream).await;
    let mut seen: HashMap<&str, u32> = HashMap::new();
    for (_, id) in &stored {
        *seen.entry(id.as_str()).or_default() += 1;
    }
    let twice = seen.values().map(|n| (n - 1) as usize).sum();
    let mut lost_sample: Vec<String> = expected
        .iter()
        .filter(|id| !seen.contains_key(id.as_str()))
        .cloned()
        .collect();
    let lost = lost_sample.len();
    lost_sample.sort();
    lost_sample.truncate(5);
    Tally {
        stored: stored.len(),
        lost,
        twice,
        lost_sample,
    }
}

/// Wait until the stream holds every expected id or `timeout` passes
/// (polling the message count; status events make it a little larger).
pub async fn wait_stored(
    client: &async_nats::Client,
    stream: &str,
    expected: usize,
    timeout: Duration,
) -> u64 {
    let js = async_nats::jetstream::new(client.clone());
    let t0 = Instant::now();
    let mut last = 0;
    loop {
        if let Ok(mut s) = js.get_stream(stream).await
            && let Ok(info) = s.info().await
        {
            last = info.state.messages;
            if last >= expected as u64 {
                return last;
            }
        }
        if t0.elapsed() > timeout {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
