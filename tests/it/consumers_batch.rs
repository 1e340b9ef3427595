//! Bootstrapping many books at once (`client::last_snapshots`): on a server
//! with batch direct gets (2.11+) the snapshots come in a few `multi_last`
//! requests, on an old one (Debian's 2.9.10) one direct get per book, and
//! either way every result equals what a direct get of that one subject
//! returns (sequence, stored time, event), books without a snapshot are
//! `NoSnapshot`, an unreadable one is `BadSnapshot`, in the order asked.
//! Which path ran is read off the requests themselves: a second connection
//! subscribes to the direct-get API subjects and counts them.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use futures_util::StreamExt;
use mdrelay::client::{ClientError, Fetched, Subjects, last_snapshots};
use mdrelay::infrastructure::nats::ServerFeatures;
use mdrelay::serialization::decode;

use crate::common::*;
use crate::consumers::create_streams;

const VENUE: &str = "batchvenue";
const STREAM: &str = "MARKET_SNAPSHOTS";
/// Subjects one batch request may ask (the server's limit).
const PER_REQUEST: usize = 1024;

/// The relay's snapshot stream, as the default config declares it.
fn snapshot_streams(url: &str) -> String {
    format!(
        "[nats]\nurls = [\"{url}\"]\n\
         [[nats.streams]]\nname = \"{STREAM}\"\nsubjects = [\"market.*.*.l2_snapshot\"]\n\
         max_msgs_per_subject = 1\nallow_direct = true\n"
    )
}

fn token(i: usize) -> String {
    format!("b{i:05}-usdt")
}

/// An `l2_snapshot` of book `i` at update id `id`, `levels` a side.
fn snapshot(i: usize, id: u64, levels: usize) -> String {
    let side = |base: usize, step: i64| {
        (0..levels)
            .map(|l| {
                let price = base as i64 * 100 + step * l as i64;
                format!("[\"{price}.{:02}\",\"{}.5\"]", id % 100, l + 1)
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    format!(
        "{{\"venue\":\"{VENUE}\",\"symbol\":\"B{i:05}/USDT\",\"instrument\":\"B{i:05}USDT\",\
         \"data_type\":\"l2_snapshot\",\"event_id\":\"{VENUE}:l2_snapshot:B{i:05}USDT:s{id}\",\
         \"receive_time\":\"2026-01-02T03:04:05.123456Z\",\"data\":{{\"kind\":\"snapshot\",\
         \"bids\":[{}],\"asks\":[{}],\"last_update_id\":{id}}}}}",
        side(i + 1, -1),
        side(i + 2, 1)
    )
}

/// Store a snapshot of books `0..n` (the first tenth twice, so the stream
/// holds them out of book order), acks awaited 256 at a time.
async fn store_snapshots(js: &jetstream::Context, n: usize, levels: usize) {
    let writes: Vec<(usize, u64)> = (0..n)
        .map(|i| (i, 1))
        .chain((0..n / 10).map(|i| (i, 2)))
        .collect();
    for batch in writes.chunks(256) {
        let mut acks = Vec::with_capacity(batch.len());
        for &(i, id) in batch {
            let subject = Subjects::new(VENUE, &token(i)).snapshot;
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Content-Type", "application/json");
            let ack = js
                .publish_with_headers(subject, headers, snapshot(i, id, levels).into())
                .await
                .unwrap();
            acks.push(ack);
        }
        for ack in acks {
            ack.await.unwrap();
        }
    }
}

/// Counts of direct-get requests seen on the server: batch requests (on
/// `$JS.API.DIRECT.GET.<stream>`) and single-subject ones (the subject
/// appended).
struct Spy {
    client: async_nats::Client,
    batch: Arc<AtomicUsize>,
    single: Arc<AtomicUsize>,
}

impl Spy {
    async fn start(url: &str) -> Spy {
        let client = async_nats::connect(url).await.unwrap();
        let mut sub = client.subscribe("$JS.API.DIRECT.GET.>").await.unwrap();
        client.flush().await.unwrap();
        let (batch, single) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (b, s) = (batch.clone(), single.clone());
        let exact = format!("$JS.API.DIRECT.GET.{STREAM}");
        tokio::spawn(async move {
            while let Some(m) = sub.next().await {
                let n = if m.subject.as_str() == exact { &b } else { &s };
                n.fetch_add(1, Ordering::Relaxed);
            }
        });
        Spy {
            client,
            batch,
            single,
        }
    }

    /// (batch requests, single requests) so far.
    async fn counts(&self) -> (usize, usize) {
        // Requests reach this connection before their replies reach the
        // requester; a round trip here delivers all of them.
        self.client.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        (
            self.batch.swap(0, Ordering::Relaxed),
            self.single.swap(0, Ordering::Relaxed),
        )
    }
}

/// Debian's nats-server from PATH (the oldest supported), killed on drop.
struct OldServer {
    port: u16,
    _store: tempfile::TempDir,
    child: Child,
}

impl OldServer {
    fn start() -> OldServer {
        let port = free_port();
        let store = tempfile::tempdir().unwrap();
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server must be on PATH (apt-get install nats-server)");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "nats-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        OldServer {
            port,
            _store: store,
            child,
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for OldServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The books asked: `n` stored ones in a scrambled order, one asked twice,
/// `missing` never stored, and book `n` (stored as garbage) last.
fn books_asked(n: usize, missing: usize) -> Vec<(String, String)> {
    let mut books: Vec<(String, String)> = (0..n)
        .map(|k| (VENUE.to_owned(), token(k * 7919 % n)))
        .collect();
    books.insert(n / 2, books[3].clone());
    for m in 0..missing {
        books.insert(m * 97 % books.len(), (VENUE.to_owned(), token(n + 1 + m)));
    }
    books.push((VENUE.to_owned(), token(n)));
    books
}

/// `last_snapshots` against the server at `url` (streams created, `n`
/// snapshots stored): checks every result against a single direct get,
/// and returns the (batch, single) requests it made.
async fn bootstrap_and_compare(url: &str, n: usize, missing: usize) -> (usize, usize) {
    create_streams(&snapshot_streams(url)).await;
    let client = async_nats::connect(url).await.unwrap();
    let js = jetstream::new(client.clone());
    store_snapshots(&js, n, 2).await;
    // Something that is not a snapshot on book n's subject.
    js.publish(
        Subjects::new(VENUE, &token(n)).snapshot,
        "{\"venue\":".into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let books = books_asked(n, missing);
    let spy = Spy::start(url).await;
    let got = last_snapshots(&js, &books, 64).await;
    let requests = spy.counts().await;
    assert_eq!(got.len(), books.len());
    let stream = js.get_stream(STREAM).await.unwrap();
    let (mut found, mut absent) = (0, 0);
    for ((venue, symbol), result) in books.iter().zip(&got) {
        let subject = Subjects::new(venue, symbol).snapshot;
        match (result, stream.direct_get_last_for_subject(&subject).await) {
            (Ok(fetched), Ok(msg)) => {
                same_as_direct_get(&subject, fetched, &msg);
                found += 1;
            }
            (Err(ClientError::NoSnapshot { subject: s }), Err(e)) => {
                assert_eq!(s, &subject);
                assert_eq!(
                    e.kind(),
                    jetstream::stream::DirectGetErrorKind::NotFound,
                    "{subject}"
                );
                absent += 1;
            }
            (Err(ClientError::BadSnapshot { subject: s, .. }), Ok(_)) => {
                assert_eq!(s, &subject);
                assert_eq!(symbol, &token(n));
            }
            (r, d) => panic!("{subject}: last_snapshots {r:?}, direct get {d:?}"),
        }
    }
    assert_eq!((found, absent), (n + 1, missing));
    requests
}

fn same_as_direct_get(subject: &str, fetched: &Fetched, msg: &jetstream::message::StreamMessage) {
    assert_eq!(fetched.sequence, msg.sequence, "{subject}");
    assert_eq!(
        i128::from(fetched.stored.0),
        msg.time.unix_timestamp_nanos(),
        "{subject}"
    );
    let ct = msg.headers.get("Content-Type").map(|v| v.as_str());
    assert_eq!(
        fetched.event,
        decode(ct, &msg.payload).unwrap(),
        "{subject}"
    );
    assert!(fetched.event.id.0.ends_with(&format!(
        ":s{}",
        fetched.snapshot().book.last_update_id.unwrap()
    )));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_bootstrap_equals_single_direct_gets() {
    let nats = Nats::start();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let batched = ServerFeatures::of_client(&client).batch_direct_get;
    drop(client);
    let (n, missing) = (1200, 5);
    let (batch, single) = bootstrap_and_compare(&nats.url(), n, missing).await;
    // Distinct subjects: the n stored, the missing, the garbage one.
    let distinct = n + missing + 1;
    if batched {
        assert_eq!((batch, single), (distinct.div_ceil(PER_REQUEST), 0));
    } else {
        eprintln!(
            "nats-server {:?}: no batch direct get here",
            nats_server_version(nats_server())
        );
        assert_eq!((batch, single), (0, n + missing + 2));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_server_takes_the_one_by_one_path_with_equal_results() {
    let old = OldServer::start();
    let client = async_nats::connect(old.url()).await.unwrap();
    let batched = ServerFeatures::of_client(&client).batch_direct_get;
    drop(client);
    let (n, missing) = (1100, 3);
    let (batch, single) = bootstrap_and_compare(&old.url(), n, missing).await;
    if batched {
        eprintln!("the nats-server on PATH has batch direct gets: the old path is not covered");
    } else {
        // Every book asked is one request (the repeated one too).
        assert_eq!((batch, single), (0, n + missing + 2));
    }
}

/// The time to bootstrap 1,000 books with `last_snapshots`, and with one
/// direct get per book, 64 in flight (what `last_snapshots` does without
/// batch gets: the same calls and decoding, timed here because the server
/// decides the path), 3 runs each, alternating; books of 1 level a side
/// (the requests' cost) and of 50 (decoding weighs in); over loopback, and
/// through a relay adding 1 ms each way (a link with a round trip).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_time_batched_and_one_by_one() {
    let nats = Nats::start();
    create_streams(&snapshot_streams(&nats.url())).await;
    let direct = async_nats::connect(nats.url()).await.unwrap();
    let batched = ServerFeatures::of_client(&direct).batch_direct_get;
    let proxy = delayed_proxy(nats.port, Duration::from_millis(1)).await;
    let delayed = async_nats::connect(format!("nats://127.0.0.1:{proxy}"))
        .await
        .unwrap();
    let n = 1000;
    let books: Vec<(String, String)> = (0..n).map(|i| (VENUE.to_owned(), token(i))).collect();
    for levels in [1, 50] {
        store_snapshots(&jetstream::new(direct.clone()), n, levels).await;
        for (link, client) in [("loopback", &direct), ("+1 ms each way", &delayed)] {
            let js = jetstream::new(client.clone());
            let rtt = round_trip(client).await;
            let mut times: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
            for _ in 0..3 {
                let t0 = Instant::now();
                let got = last_snapshots(&js, &books, 64).await;
                times[0].push(t0.elapsed().as_secs_f64() * 1e3);
                assert!(got.iter().all(Result::is_ok));
                let t0 = Instant::now();
                let got = one_by_one(&js, &books).await;
                times[1].push(t0.elapsed().as_secs_f64() * 1e3);
                assert_eq!(got.len(), n);
            }
            eprintln!(
                "bootstrap of {n} books, {levels} levels a side, nats-server {:?} (batch direct get: {batched}), \
                 {link} (round trip {rtt:.2} ms): last_snapshots {:.1?} ms; one direct get per book, 64 in flight {:.1?} ms",
                nats_server_version(nats_server()),
                times[0],
                times[1]
            );
        }
    }
}

/// The median of 5 round trips to the server and back (a message to an
/// inbox the client subscribes to), in ms.
async fn round_trip(client: &async_nats::Client) -> f64 {
    let inbox = client.new_inbox();
    let mut sub = client.subscribe(inbox.clone()).await.unwrap();
    let mut times = Vec::new();
    for _ in 0..5 {
        let t0 = Instant::now();
        client.publish(inbox.clone(), "ping".into()).await.unwrap();
        client.flush().await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .unwrap()
            .unwrap();
        times.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    times[2]
}

/// A TCP relay on loopback to `port` delaying the bytes of each direction
/// by `delay` (a link's one-way latency, its bandwidth untouched); serves
/// its first 4 connections.
async fn delayed_proxy(port: u16, delay: Duration) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        for _ in 0..4 {
            let Ok((inbound, _)) = listener.accept().await else {
                return;
            };
            let outbound = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            let (ri, wi) = inbound.into_split();
            let (ro, wo) = outbound.into_split();
            tokio::spawn(delay_line(ri, wo, delay));
            tokio::spawn(delay_line(ro, wi, delay));
        }
    });
    proxy
}

/// Copy `from` to `to`, each read written `delay` after it was read, until
/// either side closes.
async fn delay_line(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    tokio::spawn(async move {
        while let Some((read_at, bytes)) = rx.recv().await {
            tokio::time::sleep_until(read_at + delay).await;
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
    });
    let mut buf = vec![0; 64 * 1024];
    while let Ok(n @ 1..) = from.read(&mut buf).await {
        if tx
            .send((tokio::time::Instant::now(), buf[..n].to_vec()))
            .is_err()
        {
            return;
        }
    }
}

/// The snapshots of `books`, one direct get each, 64 in flight.
async fn one_by_one(
    js: &jetstream::Context,
    books: &[(String, String)],
) -> Vec<mdrelay::domain::Event> {
    let stream = js.get_stream(STREAM).await.unwrap();
    futures_util::stream::iter(books.iter().map(|(v, s)| {
        let stream = &stream;
        async move {
            let msg = stream
                .direct_get_last_for_subject(Subjects::new(v, s).snapshot)
                .await
                .unwrap();
            let ct = msg.headers.get("Content-Type").map(|v| v.as_str());
            decode(ct, &msg.payload).unwrap()
        }
    }))
    .buffered(64)
    .collect()
    .await
}
