//! `mdrelay replay`: serve recorded frames as a local fake venue.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use tokio_util::sync::CancellationToken;

use crate::serialization::frames::{FrameLine, OwnedFrame, parse_frame_line};
use crate::tools::replay::{ReplaySpec, serve};

/// Arguments of `mdrelay replay`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Frames files (one frame per line), streamed in order.
    #[arg(long, required = true, num_args = 1..)]
    pub frames: Vec<PathBuf>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9001")]
    pub listen: SocketAddr,
    /// Frames per second (default: as fast as the client reads).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Start over after the last frame, on the same connection (for
    /// benchmarks: a venue never does this, and a book fed the same deltas
    /// again no longer matches their checksums).
    #[arg(long = "loop", conflicts_with = "session")]
    pub looped: bool,
    /// Serve one coherent session per connection: each connection gets the
    /// frames from the first one (a book starts from its snapshot), and the
    /// server closes it after the last one, as a venue ending a session; the
    /// client reconnects and gets a new session.
    #[arg(long, conflicts_with = "live")]
    pub session: bool,
    /// Frames sent in answer to the client's first message (its subscribe).
    #[arg(long)]
    pub ack: Option<PathBuf>,
    /// Stream immediately instead of waiting for the client's first message.
    #[arg(long)]
    pub no_wait: bool,
    /// Answer a text request with a text reply, e.g. `ping=pong` (repeatable).
    #[arg(long = "reply")]
    pub replies: Vec<String>,
    /// Behave like a live feed (needs `--rate`): frames follow one clock
    /// started with the server, and each client gets them from where the
    /// clock is when it subscribes.
    #[arg(long, requires = "rate")]
    pub live: bool,
}

/// Read frames files into frames.
pub fn read_frames(paths: &[PathBuf]) -> anyhow::Result<Vec<OwnedFrame>> {
    let mut frames = Vec::new();
    for p in paths {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        for (i, line) in text.lines().enumerate() {
            match parse_frame_line(line) {
                FrameLine::Skip => {}
                FrameLine::Frame(f) => frames.push(f),
                FrameLine::Invalid(e) => bail!("{}:{}: {e}", p.display(), i + 1),
            }
        }
    }
    Ok(frames)
}

/// Serve until Ctrl-C.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    crate::cli::run::init_tracing("info", crate::config::relay::raw::LogFormat::Pretty);
    let mut replies = Vec::new();
    for r in &args.replies {
        let Some((q, a)) = r.split_once('=') else {
            bail!("--reply takes REQUEST=REPLY, got `{r}`")
        };
        replies.push((q.to_owned(), a.to_owned()));
    }
    let spec = ReplaySpec {
        acks: args
            .ack
            .as_ref()
            .map(|a| read_frames(std::slice::from_ref(a)))
            .transpose()?
            .unwrap_or_default(),
        frames: read_frames(&args.frames)?,
        rate: args.rate,
        looped: args.looped,
        close_at_end: args.session,
        no_wait: args.no_wait,
        replies,
        live: args.live,
    };
    let n = spec.frames.len();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let stop = CancellationToken::new();
        // Before the port opens: a SIGTERM from a script must stop it cleanly.
        let stopped = stop_signal();
        let (addr, stats, task) = serve(args.listen, spec, stop.clone()).await?;
        let mode = if args.session {
            "one session per connection, closed after the last frame"
        } else if args.looped {
            "looped"
        } else {
            "once per connection"
        };
        eprintln!("replaying {n} frames on ws://{addr} ({mode}; Ctrl-C or SIGTERM to stop)");
        stopped.await;
        stop.cancel();
        let _ = task.await;
        eprintln!(
            "served {} connection(s), {} session(s) to the end, {} frames",
            stats.connections.load(std::sync::atomic::Ordering::Relaxed),
            stats
                .sessions_completed
                .load(std::sync::atomic::Ordering::Relaxed),
            stats.frames_sent.load(std::sync::atomic::Ordering::Relaxed)
        );
        Ok(ExitCode::SUCCESS)
    })
}

/// Install the SIGTERM handler now (a script stopping its fake venue) and
/// return a future that ends on SIGTERM or Ctrl-C.
fn stop_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    async move {
        #[cfg(unix)]
        if let Some(mut term) = term {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}
