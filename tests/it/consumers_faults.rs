//! Consumers when things go wrong: a delta missing from the venue's feed
//! (the relay reports a gap; the consumer turns stale, then recovers from
//! the venue's next snapshot or the relay's snapshot of it), a book event lost between the relay and the
//! consumer (a hole in the marks; stale, then a rejoin from the relay's next
//! snapshot), handovers (the consumer follows the successor's book), bad
//! payloads on the book's subject (counted, skipped) and books that cannot
//! be joined (clear errors).

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::common::*;
use crate::consumers::{
    COINBASE, Case, OKX, assert_matches, create_streams, follow, nats_section, reference,
};
use async_nats::jetstream;
use futures_util::StreamExt;
use mdrelay::client::{BookFeed, Change, ClientError, JoinOptions, Position, SyncState};
use mdrelay::domain::{Payload, RelayMark};
use mdrelay::serialization::decode;
use mdrelay::serialization::frames::OwnedFrame;
use mdrelay::tools::replay::ReplaySpec;
use tokio_util::sync::CancellationToken;

/// OKX UNI-USD-SWAP as recorded: a snapshot, 92 updates, two more snapshots
/// (the recorder resubscribed), then 423 updates.
const UNI: Case = Case {
    instrument: "UNI-USD-SWAP",
    token: "uni-usd_uni",
    needle: "\"instId\":\"UNI-USD-SWAP\"",
    rate: 80.0,
    ..OKX
};

/// Start the relay for `case` on `frames`, a consumer joined before the
/// first frame; return what it saw once the feed is over.
async fn run_one(
    nats: &Nats,
    case: Case,
    frames: Vec<OwnedFrame>,
    interval: &str,
    during: impl AsyncFnOnce(&Nats, &Replay),
) -> crate::consumers::Seen {
    let total = frames.len() as u64;
    let replay = Replay::start(
        ReplaySpec {
            frames,
            rate: Some(case.rate),
            ..Default::default()
        },
        None,
    )
    .await;
    let config = format!(
        "{}{}",
        nats_section(nats),
        case.venue_section(&replay.url(), None, interval)
    );
    create_streams(&config).await;
    let stop = CancellationToken::new();
    let consumer = tokio::spawn(follow(
        nats.url(),
        case.venue,
        case.token,
        Duration::from_secs(30),
        stop.clone(),
    ));
    let relay = relay(&config).await;
    during(nats, &replay).await;
    let stats = replay.stats.clone();
    wait_until(Duration::from_secs(60), "the whole feed sent", || {
        stats.frames_sent.load(Ordering::Relaxed) >= total
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.cancel();
    let seen = consumer.await.unwrap().unwrap();
    relay.shutdown().await;
    replay.stop().await;
    seen
}

fn position_of(change: &[Change], what: impl Fn(&Change) -> bool) -> Option<usize> {
    change.iter().position(what)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delta_missing_from_the_feed_turns_the_consumer_stale_until_the_next_snapshot() {
    let nats = Nats::start();
    let mut frames = UNI.frames();
    // Update 50 changes the top of the book: the next checksum catches it.
    frames.remove(50);
    let seen = run_one(&nats, UNI, frames, "1s", async |_, _| {}).await;
    let stale = position_of(
        &seen.changes,
        |c| matches!(c, Change::Stale(r) if r.contains("`gap`")),
    )
    .unwrap_or_else(|| panic!("stale on the relay's gap: {:?}", seen.changes));
    // The venue's snapshot in the stream, or the relay's l2_snapshot taken
    // after it (whichever the consumer sees first).
    let reset = position_of(&seen.changes[stale..], |c| {
        matches!(c, Change::Reset | Change::Rejoined)
    })
    .unwrap_or_else(|| {
        panic!(
            "recovered from the next snapshot: {:?}",
            &seen.changes[stale..]
        )
    });
    assert!(
        seen.changes[stale + reset..]
            .iter()
            .filter(|c| matches!(c, Change::Applied(_)))
            .count()
            > 300,
        "then followed the rest of the feed"
    );
    let (reference, last) = reference(&nats, UNI).await;
    let recovered = crate::consumers::Seen {
        changes: seen.changes[stale + reset..].to_vec(),
        ..seen
    };
    assert_matches("after the gap", &recovered, &reference, last);
}

/// The relay's last snapshot of `case`'s book.
async fn last_snapshot(nats: &Nats, case: Case) -> mdrelay::client::Fetched {
    let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    mdrelay::client::last_snapshot(&js, case.venue, case.token)
        .await
        .unwrap()
}

fn mark_of(payload: &Payload) -> Option<RelayMark> {
    match payload {
        Payload::Book(u) => u.mark,
        Payload::BookSnapshot(s) => s.book.mark,
        _ => None,
    }
}

/// Delete the stored book event of `case` marked `want` (as if its publish
/// had been lost); wait until it is stored.
async fn delete_marked(nats: &Nats, case: Case, want: RelayMark) {
    let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let stream = js.get_stream("MARKET").await.unwrap();
    let subject = format!("market.{}.{}.l2_orderbook", case.venue, case.token);
    for _ in 0..100 {
        let mut s = stream.clone();
        let last = s.info().await.unwrap().state.last_sequence;
        for seq in (1..=last).rev().take(50) {
            let Ok(m) = stream.get_raw_message(seq).await else {
                continue;
            };
            if m.subject.as_str() != subject {
                continue;
            }
            let ev = decode(None, &m.payload).unwrap();
            if mark_of(&ev.payload) == Some(want) {
                assert!(stream.delete_message(seq).await.unwrap());
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{want:?} never stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_book_event_lost_after_the_relay_is_a_hole_then_a_rejoin_from_the_next_snapshot() {
    let case = Case {
        rate: 20.0,
        ..COINBASE
    };
    let nats = Nats::start();
    let frames = case.frames();
    let total = frames.len() as u64;
    let replay = Replay::start(
        ReplaySpec {
            frames,
            rate: Some(case.rate),
            ..Default::default()
        },
        None,
    )
    .await;
    let config = format!(
        "{}{}",
        nats_section(&nats),
        case.venue_section(&replay.url(), None, "3s")
    );
    let relay = relay(&config).await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let mut notify = client
        .subscribe(format!("market.{}.{}.l2_snapshot", case.venue, case.token))
        .await
        .unwrap();
    // Right after a periodic snapshot: the next is 3 s away. Lose the
    // second book event after it, then join from it.
    let mut joined = None;
    for _ in 0..3 {
        let published = notify.next().await.unwrap();
        let mark = mark_of(&decode(None, &published.payload).unwrap().payload).unwrap();
        delete_marked(
            &nats,
            case,
            RelayMark {
                seq: mark.seq + 2,
                ..mark
            },
        )
        .await;
        let feed = BookFeed::join(&client, case.venue, case.token, JoinOptions::default())
            .await
            .unwrap();
        if feed.tracker().position() == Some(Position::Mark(mark)) {
            joined = Some(feed);
            break;
        }
    }
    let mut feed = joined.expect("joined from the snapshot before the hole");
    let mut changes = Vec::new();
    let stats = replay.stats.clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    while tokio::time::Instant::now() < deadline {
        let done = stats.frames_sent.load(Ordering::Relaxed) >= total;
        match tokio::time::timeout(Duration::from_secs(4), feed.next()).await {
            Ok(c) => changes.push(c.unwrap()),
            Err(_) if done => break,
            Err(_) => {}
        }
    }
    let stale = position_of(
        &changes,
        |c| matches!(c, Change::Stale(r) if r.contains("missing book events")),
    )
    .unwrap_or_else(|| panic!("the hole is noticed: {changes:?}"));
    let rejoined = position_of(&changes[stale..], |c| *c == Change::Rejoined)
        .unwrap_or_else(|| panic!("rejoined: {changes:?}"));
    assert!(changes[stale + rejoined..].contains(&Change::Synced));
    assert_eq!(feed.state(), SyncState::Synced);
    assert_eq!(feed.stats().rejoins, 1);
    // It ends with the relay's own book.
    let last = last_snapshot(&nats, case).await;
    let book = &last.snapshot().book;
    assert_eq!(
        feed.tracker().position(),
        Some(Position::Mark(book.mark.unwrap()))
    );
    assert_eq!(feed.book().bids().copied().collect::<Vec<_>>(), book.bids);
    assert_eq!(feed.book().asks().copied().collect::<Vec<_>>(), book.asks);
    relay.shutdown().await;
    replay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn across_handovers_the_consumer_follows_the_successors_book() {
    let case = Case {
        rate: 40.0,
        ..COINBASE
    };
    let nats = Nats::start();
    // Connections live 2 s: a handover every 1.8 s. Each connection of the
    // fake venue starts the recording over, snapshot first.
    let venues = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join("venues/coinbase-exchange.toml")).unwrap();
    std::fs::write(
        venues.path().join("coinbase-exchange.toml"),
        text.replace("[connection]\n", "[connection]\nmax_lifetime = \"2s\"\n"),
    )
    .unwrap();
    let replay = Replay::start(
        ReplaySpec {
            frames: case.frames(),
            rate: Some(case.rate),
            ..Default::default()
        },
        None,
    )
    .await;
    let config = format!(
        "{}{}",
        nats_section(&nats),
        case.venue_section(&replay.url(), None, "1s")
    );
    create_streams(&config).await;
    let stop = CancellationToken::new();
    let consumer = tokio::spawn(follow(
        nats.url(),
        case.venue,
        case.token,
        Duration::from_secs(30),
        stop.clone(),
    ));
    let relay = relay_in(venues.path(), &config).await;
    let metrics = relay.metrics.clone();
    wait_until(Duration::from_secs(30), "three handovers", || {
        metric(&metrics.encode(), "mdrelay_handovers_total", case.venue) >= 3.0
    })
    .await;
    // Stop the relay first: the feed never ends (each connection replays
    // the recording again), and the consumer follows until it is quiet.
    relay.shutdown().await;
    replay.stop().await;
    stop.cancel();
    let seen = consumer.await.unwrap().unwrap();
    let (reference, last) = reference(&nats, case).await;
    assert_matches("across handovers", &seen, &reference, last);
    // Each successor's book started over (a new epoch from its snapshot),
    // and the consumer reset to it: never stale, never a hole.
    let resets = seen.changes.iter().filter(|c| **c == Change::Reset).count();
    assert!(resets >= 3, "{resets} resets: {:?}", seen.changes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_payloads_on_the_books_subject_are_counted_and_skipped() {
    let case = Case {
        rate: 40.0,
        ..COINBASE
    };
    let nats = Nats::start();
    let frames = case.frames();
    let seen = run_one(
        &nats,
        case,
        frames,
        "1s",
        async |nats: &Nats, replay: &Replay| {
            let stats = replay.stats.clone();
            wait_until(Duration::from_secs(20), "a third of the feed", || {
                stats.frames_sent.load(Ordering::Relaxed) >= 70
            })
            .await;
            let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
            // A real book event of the stream, in both forms, to damage.
            let stored = Stream::connect(nats, "MARKET").await.all_raw().await;
            let subject = format!("market.{}.{}.l2_orderbook", case.venue, case.token);
            let (_, _, json) = stored.iter().rev().find(|(s, _, _)| *s == subject).unwrap();
            let ev = decode(None, json).unwrap();
            let mut proto = Vec::new();
            mdrelay::serialization::to_protobuf(&ev, &mut proto);
            let trade = std::fs::read_to_string(
                root().join("fixtures/coinbase-exchange/trades.expected.jsonl"),
            )
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .to_owned();
            let bad: [(&str, Vec<u8>); 4] = [
                ("application/json", json[..json.len() / 2].to_vec()),
                ("application/json", trade.into_bytes()),
                ("application/json", proto.clone()),
                ("application/x-protobuf", json.to_vec()),
            ];
            for (i, (ct, payload)) in bad.into_iter().enumerate() {
                let mut h = async_nats::HeaderMap::new();
                h.insert("Content-Type", ct);
                h.insert("Nats-Msg-Id", format!("test-bad-{i}").as_str());
                js.publish_with_headers(subject.clone(), h, payload.into())
                    .await
                    .unwrap()
                    .await
                    .unwrap();
            }
        },
    )
    .await;
    let (reference, last) = reference(&nats, case).await;
    assert_eq!(seen.stats.bad_payloads, 4, "{:?}", seen.stats);
    let bad: Vec<&Change> = seen
        .changes
        .iter()
        .filter(|c| matches!(c, Change::BadPayload(_)))
        .collect();
    assert_eq!(bad.len(), 4);
    assert!(format!("{bad:?}").contains("a trade event"), "{bad:?}");
    let clean = crate::consumers::Seen {
        stats: mdrelay::client::FeedStats::default(),
        changes: seen
            .changes
            .iter()
            .filter(|c| !matches!(c, Change::BadPayload(_)))
            .cloned()
            .collect(),
        ..seen
    };
    assert_matches("around bad payloads", &clean, &reference, last);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_streams_snapshots_and_unreadable_snapshots_are_clear_errors() {
    let nats = Nats::start();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let join = || BookFeed::join(&client, "okx", "btc-usdt", JoinOptions::default());
    let e = join().await.unwrap_err();
    assert!(matches!(e, ClientError::NoStream { .. }), "{e}");
    assert!(e.to_string().contains("market.okx.btc-usdt.l2_snapshot"));
    create_streams(&nats_section(&nats)).await;
    let e = join().await.unwrap_err();
    assert!(matches!(e, ClientError::NoSnapshot { .. }), "{e}");
    assert!(e.to_string().contains("book_snapshot"), "{e}");
    // A snapshot subject holding something that is not a snapshot.
    let js = jetstream::new(client.clone());
    js.publish("market.okx.btc-usdt.l2_snapshot", "{\"venue\":".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let e = join().await.unwrap_err();
    assert!(matches!(e, ClientError::BadSnapshot { .. }), "{e}");
    // Waiting for a first snapshot gives up with the same error.
    let opts = JoinOptions {
        wait: Duration::from_millis(300),
        ..JoinOptions::default()
    };
    let e = BookFeed::join(&client, "okx", "eth-usdt", opts)
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::NoSnapshot { .. }), "{e}");
}
