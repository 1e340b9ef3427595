//! A publish-only NATS connection that writes the client protocol itself
//! (`[nats.publish] writer = "direct"`).
//!
//! The relay's publishers encode each message (`HPUB` with the venue's
//! pre-rendered header block and the event's id) straight into this
//! connection's output buffer; one task writes the buffer to the socket in
//! as few writes as it can, answers the server's `PING`s and sends its own.
//! Nothing here subscribes: acks come back on the reply subjects the
//! publishers subscribed to on the relay's main NATS client, which the
//! server routes to whichever connection holds the subscription.
//!
//! Compared with handing each message to async-nats, this skips building
//! and cloning a `HeaderMap`, serializing it into a fresh vector, the
//! channel hop to the client's connection task and its copy into its write
//! buffer (docs/performance.md, "The direct writer").
//!
//! Losing the connection loses what was still in the buffer or in flight on
//! the socket. Those messages are never acknowledged, so the publisher
//! sends them again with the same `Nats-Msg-Id` once its ack timeout
//! passes; a publish while the connection is down fails at once, as one
//! through a disconnected client does. Memory is bounded by the
//! publishers' shared window: at most `max_in_flight` messages are ever
//! waiting for their ack, so at most that many are in the buffer.

mod encode;
mod handshake;

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::Notify;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{info, warn};

pub use encode::EncodeError;
use handshake::{Conn, Dial, Server};

use super::InfraError;
use super::logs::{LogLimiter, clip};
use crate::config::relay::raw::RawNats;

/// How often the connection pings the server; two pings without a `PONG`
/// end it (a half-open socket would otherwise swallow messages until the
/// kernel gave up).
const PING_EVERY: Duration = Duration::from_secs(10);
const PINGS_OUTSTANDING: u32 = 2;

/// Longest a write to the socket may take before the connection counts as
/// dead (the buffer holds at most the publish window).
const WRITE_STALL: Duration = Duration::from_secs(20);

/// A connection that lasted this long resets the reconnect backoff.
const STABLE: Duration = Duration::from_secs(1);

/// Reconnect delays: 50 ms doubling to 2 s, for as long as it takes.
fn reconnect_delay(attempt: u32) -> Duration {
    Duration::from_millis(50u64 << attempt.min(6)).min(Duration::from_secs(2))
}

/// Why a publish did not go out.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The connection is down (it is reconnecting): send again later.
    #[error("the NATS publish connection is down")]
    Disconnected,
    /// The message cannot be written as it is.
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

struct Out {
    buf: BytesMut,
    live: bool,
}

struct Inner {
    out: Mutex<Out>,
    wake: Notify,
    connected: AtomicBool,
    max_payload: AtomicUsize,
}

/// A handle on the publish connection. Clones share it; the connection
/// closes (after writing what is buffered) when the last one is dropped.
#[derive(Clone)]
pub struct Wire {
    inner: Arc<Inner>,
    _stop: Arc<DropGuard>,
}

/// A view of the connection's state that does not keep it open (for
/// `/health` and the metrics, which outlive the publishers).
#[derive(Clone)]
pub struct WireState(Arc<Inner>);

impl WireState {
    /// Whether the connection is up.
    pub fn connected(&self) -> bool {
        self.0.connected.load(Ordering::Acquire)
    }
}

impl std::fmt::Debug for Wire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wire")
            .field("connected", &self.connected())
            .finish()
    }
}

impl Wire {
    /// Start the connection to the servers of `cfg` (its URLs, auth and
    /// TLS), reconnecting for as long as the handle lives. Returns at once;
    /// [`Wire::connected`] says when it is up. A config it cannot use (a bad
    /// URL, an unreadable credentials or certificate file) is an error here.
    pub fn start(cfg: &RawNats, name: &str) -> Result<Wire, InfraError> {
        let dial = Dial::new(cfg, name)?;
        let inner = Arc::new(Inner {
            out: Mutex::new(Out {
                buf: BytesMut::with_capacity(64 * 1024),
                live: false,
            }),
            wake: Notify::new(),
            connected: AtomicBool::new(false),
            max_payload: AtomicUsize::new(0),
        });
        let stop = CancellationToken::new();
        tokio::spawn(run(inner.clone(), dial, stop.clone()));
        Ok(Wire {
            inner,
            _stop: Arc::new(stop.drop_guard()),
        })
    }

    /// Whether the connection is up.
    pub fn connected(&self) -> bool {
        self.inner.connected.load(Ordering::Acquire)
    }

    /// Wait up to `timeout` for the connection to come up; whether it did.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        let until = tokio::time::Instant::now() + timeout;
        while !self.connected() {
            if tokio::time::Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// The connection's state, without keeping it open.
    pub fn state(&self) -> WireState {
        WireState(self.inner.clone())
    }

    /// Queue a message with headers: `head` is the pre-rendered block up to
    /// the last header's name and `": "`, `last` that header's value.
    pub fn hpub(
        &self,
        subject: &[u8],
        reply: &[u8],
        head: &[u8],
        last: &[u8],
        payload: &[u8],
    ) -> Result<(), WireError> {
        self.write(|buf, max| encode::hpub(buf, subject, reply, head, last, payload, max))
    }

    /// Queue a message without headers.
    pub fn publish(&self, subject: &[u8], reply: &[u8], payload: &[u8]) -> Result<(), WireError> {
        self.write(|buf, max| encode::publish(buf, subject, reply, payload, max))
    }

    fn write(
        &self,
        encode: impl FnOnce(&mut BytesMut, usize) -> Result<(), EncodeError>,
    ) -> Result<(), WireError> {
        let max = self.inner.max_payload.load(Ordering::Relaxed);
        {
            let mut out = self.inner.out.lock().expect("wire buffer lock");
            if !out.live {
                return Err(WireError::Disconnected);
            }
            let was_empty = out.buf.is_empty();
            encode(&mut out.buf, max)?;
            if !was_empty {
                // The writer was already told.
                return Ok(());
            }
        }
        self.inner.wake.notify_one();
        Ok(())
    }
}

/// Whether the direct connection can reach the servers of `cfg`: it speaks
/// NATS over TCP (`nats://`, `tls://`), not over WebSocket.
pub fn reaches(cfg: &RawNats) -> bool {
    super::nats::server_addrs(&cfg.urls).is_ok_and(|(addrs, _)| !handshake::over_websocket(&addrs))
}

/// Connect, run a session, reconnect: until every handle is gone.
async fn run(inner: Arc<Inner>, dial: Dial, stop: CancellationToken) {
    let mut servers: Vec<Server> = dial.servers.clone();
    let mut next = 0usize;
    let mut attempt = 0u32;
    let mut spare = BytesMut::with_capacity(64 * 1024);
    let mut last_error = String::new();
    while !stop.is_cancelled() {
        let server = servers[next % servers.len()].clone();
        next += 1;
        let conn = tokio::select! {
            _ = stop.cancelled() => break,
            c = dial.open(&server) => c,
        };
        match conn {
            Ok(conn) => {
                last_error.clear();
                for url in &conn.info.connect_urls {
                    learn(&mut servers, url, server.tls);
                }
                let began = tokio::time::Instant::now();
                let why = session(&inner, conn, &server, &stop, &mut spare).await;
                set_down(&inner);
                if let Err(why) = why {
                    warn!(server = %format!("{}:{}", server.host, server.port), reason = %why, "NATS publish connection lost; reconnecting");
                }
                // A server that takes the connection and drops it at once,
                // again and again, gets the backoff too (not a tight loop).
                if began.elapsed() >= STABLE {
                    attempt = 0;
                } else {
                    attempt += 1;
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(reconnect_delay(attempt)) => {}
                    }
                }
            }
            Err(e) => {
                let text = e.to_string();
                if text != last_error {
                    warn!(error = %text, "NATS publish connection failed; retrying");
                    last_error = text;
                }
                attempt += 1;
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(reconnect_delay(attempt)) => {}
                }
            }
        }
    }
    set_down(&inner);
}

/// Add a cluster peer the server told about (`host:port`).
fn learn(servers: &mut Vec<Server>, url: &str, tls: bool) {
    let Some((host, port)) = url.rsplit_once(':') else {
        return;
    };
    let Ok(port) = port.parse() else { return };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let s = Server { host, port, tls };
    if !servers.contains(&s) {
        servers.push(s);
    }
}

/// Mark the connection down and drop what it had not written: those
/// messages are never acknowledged and will be sent again.
fn set_down(inner: &Inner) {
    inner.connected.store(false, Ordering::Release);
    let mut out = inner.out.lock().expect("wire buffer lock");
    out.live = false;
    out.buf.clear();
}

/// One connection's life: write what publishers queue, answer and send
/// pings. Ends with the reason it was lost, or `Ok` when the handles are
/// gone (after writing what was queued).
async fn session(
    inner: &Inner,
    conn: Conn,
    server: &Server,
    stop: &CancellationToken,
    spare: &mut BytesMut,
) -> Result<(), String> {
    let Conn { io, info } = conn;
    let (rd, mut wr) = tokio::io::split(io);
    inner
        .max_payload
        .store(info.max_payload.max(1), Ordering::Relaxed);
    {
        let mut out = inner.out.lock().expect("wire buffer lock");
        out.buf.clear();
        out.live = true;
    }
    inner.connected.store(true, Ordering::Release);
    info!(server = %format!("{}:{}", server.host, server.port), server_version = %info.version, "NATS publish connection up");
    let pings = AtomicU32::new(0);
    let reader = async {
        let mut logs = LogLimiter::new(Duration::from_secs(10));
        let mut rd = BufReader::new(rd);
        let mut line = String::new();
        loop {
            line.clear();
            match rd.read_line(&mut line).await {
                Ok(0) => return Err("the server closed the connection".to_string()),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
            let l = line.trim_end();
            if l == "PING" {
                queue_control(inner, b"PONG\r\n");
            } else if l == "PONG" {
                pings.store(0, Ordering::Relaxed);
            } else if let Some(e) = l.strip_prefix("-ERR") {
                // Every -ERR but a permissions one closes the connection;
                // a refused subject is not ours to fix here (the message is
                // not acknowledged and goes back to its publisher). One
                // line per 10 s: a refused subject repeats per event.
                if let Some(suppressed) = logs.allow("server error") {
                    warn!(error = %clip(e.trim()), suppressed, "NATS server error on the publish connection");
                }
            }
            // INFO (cluster changes) and +OK need nothing.
        }
    };
    let writer = async {
        let mut tick = tokio::time::interval(PING_EVERY);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = inner.wake.notified() => {}
                _ = tick.tick() => {
                    if pings.fetch_add(1, Ordering::Relaxed) >= PINGS_OUTSTANDING {
                        return Err("no PONG to two pings".to_string());
                    }
                    queue_control(inner, b"PING\r\n");
                }
                _ = stop.cancelled() => {
                    take(inner, spare);
                    wr.write_all(spare).await.map_err(|e| e.to_string())?;
                    let _ = wr.flush().await;
                    return Ok(());
                }
            }
            take(inner, spare);
            if !spare.is_empty() {
                // A server that stops reading (gone without a reset) would
                // hold this write until the kernel gives up, minutes later;
                // meanwhile the client carries the resends.
                match tokio::time::timeout(WRITE_STALL, wr.write_all(spare)).await {
                    Ok(r) => r.map_err(|e| e.to_string())?,
                    Err(_) => return Err(format!("a write stalled for {WRITE_STALL:?}")),
                }
            }
        }
    };
    tokio::select! {
        r = reader => r,
        w = writer => w,
    }
}

/// Swap the queued bytes into `spare` (which the writer has emptied).
fn take(inner: &Inner, spare: &mut BytesMut) {
    spare.clear();
    let mut out = inner.out.lock().expect("wire buffer lock");
    std::mem::swap(&mut out.buf, spare);
}

/// Queue a protocol line of the connection's own (`PING`, `PONG`).
fn queue_control(inner: &Inner, line: &[u8]) {
    {
        let mut out = inner.out.lock().expect("wire buffer lock");
        if !out.live {
            return;
        }
        out.buf.extend_from_slice(line);
    }
    inner.wake.notify_one();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_told_by_the_server_are_added_once() {
        let mut s = vec![Server {
            host: "127.0.0.1".into(),
            port: 4222,
            tls: false,
        }];
        learn(&mut s, "127.0.0.1:4222", false);
        learn(&mut s, "10.0.0.2:4223", false);
        learn(&mut s, "[::1]:4224", false);
        learn(&mut s, "garbage", false);
        assert_eq!(s.len(), 3);
        assert_eq!((s[1].host.as_str(), s[1].port), ("10.0.0.2", 4223));
        assert_eq!(s[2].host, "::1");
    }

    #[test]
    fn websocket_servers_are_out_of_reach_and_tcp_ones_within() {
        let with = |urls: &[&str]| RawNats {
            urls: urls.iter().map(|u| u.to_string()).collect(),
            ..RawNats::default()
        };
        assert!(reaches(&with(&["nats://127.0.0.1:4222", "tls://n2:4222"])));
        assert!(reaches(&with(&["ws-nats.internal:4222"])));
        assert!(!reaches(&with(&["ws://127.0.0.1:8080"])));
        assert!(!reaches(&with(&["nats://a:4222", "wss://b:443"])));
    }

    #[test]
    fn reconnect_delays_grow_to_two_seconds() {
        assert_eq!(reconnect_delay(0), Duration::from_millis(50));
        assert_eq!(reconnect_delay(3), Duration::from_millis(400));
        assert_eq!(reconnect_delay(30), Duration::from_secs(2));
    }
}
