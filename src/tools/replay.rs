//! `mdrelay replay`: a local fake venue. A WebSocket server that waits for
//! the client's first message (its subscribe), answers with recorded acks,
//! then streams recorded frames (text or binary), optionally at a fixed rate,
//! in a loop, or as one session per connection (closed at the end, as a
//! venue ends a session). WebSocket pings are answered; simple text requests
//! can be answered with canned replies (e.g. `ping` → `pong`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::sync::CancellationToken;

use crate::infrastructure::InfraError;
use crate::serialization::frames::OwnedFrame;

/// What the fake venue sends.
#[derive(Debug, Clone, Default)]
pub struct ReplaySpec {
    /// Frames sent right after the client's first message.
    pub acks: Vec<OwnedFrame>,
    /// Frames streamed after the acks.
    pub frames: Vec<OwnedFrame>,
    /// Frames per second (`None`: as fast as the client reads).
    pub rate: Option<f64>,
    /// Start over at the end.
    pub looped: bool,
    /// One session per connection: every connection gets the frames from the
    /// first one (so a book starts from its snapshot), and the server closes
    /// it after the last one (the client reconnects for a new session)
    /// instead of staying silent or looping deltas into a live book.
    pub close_at_end: bool,
    /// Start streaming without waiting for a client message.
    pub no_wait: bool,
    /// Text request → text reply, answered at any time.
    pub replies: Vec<(String, String)>,
    /// Like a venue's live feed (needs `rate`): the frames follow one clock
    /// started with the server, and a client receives the frames from where
    /// that clock is when it subscribes, not from the first one. Two clients
    /// connected at the same time receive the same frames at the same time.
    pub live: bool,
}

/// Counters of a running replay server.
#[derive(Debug, Default)]
pub struct ReplayStats {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Frames sent (acks included), over all connections.
    pub frames_sent: AtomicU64,
    /// Sessions that ended with the last frame (`close_at_end`).
    pub sessions_completed: AtomicU64,
    /// Messages received from clients.
    pub messages_received: AtomicU64,
    /// The text messages received (connection number, text), the first
    /// [`KEPT_MESSAGES`] only: what a client subscribed and unsubscribed.
    pub texts: std::sync::Mutex<Vec<(u64, String)>>,
}

/// How many received text messages [`ReplayStats::texts`] keeps.
pub const KEPT_MESSAGES: usize = 10_000;

/// Bind `addr` and serve until `shutdown`. Returns the bound address, the
/// counters, and the server task.
pub async fn serve(
    addr: SocketAddr,
    spec: ReplaySpec,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, Arc<ReplayStats>, tokio::task::JoinHandle<()>), InfraError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| InfraError::Connect {
            target: format!("replay listen {addr}"),
            message: e.to_string(),
        })?;
    let local = listener
        .local_addr()
        .map_err(|e| InfraError::Io(e.to_string()))?;
    let stats = Arc::new(ReplayStats::default());
    let prepared = Arc::new(Prepared {
        acks: spec.acks.iter().map(message).collect(),
        frames: spec.frames.iter().map(message).collect(),
        epoch: tokio::time::Instant::now(),
    });
    let spec = Arc::new(spec);
    let st = stats.clone();
    let task = tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => break,
                a = listener.accept() => a,
            };
            let Ok((tcp, _)) = accepted else { continue };
            let _ = tcp.set_nodelay(true);
            let conn_no = st.connections.fetch_add(1, Ordering::Relaxed);
            let (spec, prepared, st, stop) = (
                spec.clone(),
                prepared.clone(),
                st.clone(),
                shutdown.child_token(),
            );
            tokio::spawn(async move {
                if let Ok(ws) = tokio_tungstenite::accept_async(tcp).await {
                    session(ws, &spec, &prepared, &st, stop, conn_no).await;
                }
            });
        }
    });
    Ok((local, stats, task))
}

/// The close frame that ends a recorded session (`close_at_end`).
const END_OF_SESSION: CloseFrame = CloseFrame {
    code: CloseCode::Normal,
    reason: Utf8Bytes::from_static("end of the recorded session"),
};

/// Close the connection after the last frame of a session and count it.
async fn end_session<T>(tx: &mut T, stats: &ReplayStats)
where
    T: futures_util::Sink<Message> + Unpin,
{
    if tx.send(Message::Close(Some(END_OF_SESSION))).await.is_ok() {
        stats.sessions_completed.fetch_add(1, Ordering::Relaxed);
    }
}

fn message(f: &OwnedFrame) -> Message {
    match f {
        OwnedFrame::Text(t) => Message::text(t.clone()),
        OwnedFrame::Binary(b) => Message::binary(b.clone()),
    }
}

/// The frames as ready-to-send messages (cloning one is a reference count).
struct Prepared {
    acks: Vec<Message>,
    frames: Vec<Message>,
    /// When the live clock started.
    epoch: tokio::time::Instant,
}

async fn session<S>(
    ws: tokio_tungstenite::WebSocketStream<S>,
    spec: &ReplaySpec,
    prepared: &Prepared,
    stats: &ReplayStats,
    stop: CancellationToken,
    conn_no: u64,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut tx, mut rx) = ws.split();
    let (replies_tx, mut replies) = tokio::sync::mpsc::channel::<Message>(64);
    let started = Arc::new(tokio::sync::Notify::new());
    if spec.no_wait {
        started.notify_one();
    }
    // Reader: counts client messages, answers canned requests and pings,
    // notices the first message.
    let reader = {
        let started = started.clone();
        let canned = spec.replies.clone();
        async move {
            let mut first = true;
            while let Some(Ok(msg)) = rx.next().await {
                stats.messages_received.fetch_add(1, Ordering::Relaxed);
                match msg {
                    Message::Text(t) => {
                        if let Ok(mut texts) = stats.texts.lock()
                            && texts.len() < KEPT_MESSAGES
                        {
                            texts.push((conn_no, t.as_str().to_owned()));
                        }
                        if let Some((_, reply)) =
                            canned.iter().find(|(q, _)| q.as_str() == t.as_str())
                        {
                            let _ = replies_tx.send(Message::text(reply.clone())).await;
                        } else if first {
                            first = false;
                            started.notify_one();
                        }
                    }
                    Message::Ping(p) => {
                        let _ = replies_tx.send(Message::Pong(p)).await;
                    }
                    Message::Close(_) => break,
                    _ => {}
                }
            }
        }
    };
    // Writer: owns the socket; replies first, then the next frame.
    let writer = async move {
        started.notified().await;
        for m in &prepared.acks {
            if tx.send(m.clone()).await.is_err() {
                return;
            }
            stats.frames_sent.fetch_add(1, Ordering::Relaxed);
        }
        let interval = spec
            .rate
            .filter(|r| *r > 0.0)
            .map(|r| Duration::from_secs_f64(1.0 / r));
        let mut tick = interval.map(|i| {
            let mut t = tokio::time::interval(i);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            t
        });
        let n = prepared.frames.len() as u64;
        // The live clock's position: frames due since the epoch.
        let live = spec.live && interval.is_some();
        let rate = spec.rate.unwrap_or(0.0);
        let due = || (prepared.epoch.elapsed().as_secs_f64() * rate) as u64;
        // `pos` counts frames over loops; the frame sent is `pos % n`.
        let mut pos = if live { due() } else { 0 };
        let mut done = n == 0 || (!spec.looped && pos >= n);
        if done && spec.close_at_end {
            return end_session(&mut tx, stats).await;
        }
        loop {
            tokio::select! {
                biased;
                Some(r) = replies.recv() => {
                    if tx.send(r).await.is_err() {
                        return;
                    }
                }
                _ = async {
                    if let Some(t) = tick.as_mut() {
                        t.tick().await;
                    }
                }, if !done => {
                    // Live: every frame the clock has passed; else one.
                    let until = if live { due().max(pos + 1) } else { pos + 1 };
                    while pos < until && !done {
                        // Feed without flushing while the client keeps up;
                        // flush every 64 frames and on every tick.
                        if tx.feed(prepared.frames[(pos % n) as usize].clone()).await.is_err() {
                            return;
                        }
                        stats.frames_sent.fetch_add(1, Ordering::Relaxed);
                        pos += 1;
                        done = !spec.looped && pos >= n;
                    }
                    if (tick.is_some() || pos.is_multiple_of(64) || done) && tx.flush().await.is_err() {
                        return;
                    }
                    if done && spec.close_at_end {
                        return end_session(&mut tx, stats).await;
                    }
                }
            }
        }
    };
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = reader => {}
        _ = writer => {}
    }
}
