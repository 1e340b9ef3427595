//! `mdrelay book VENUE SYMBOL`: one book from the bus, built with
//! [`crate::client`]: a live ladder in the terminal, or (`--once`) the book
//! printed once as soon as it is consistent.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::bail;

use super::bus::BusArgs;
use super::ladder;
use crate::client::{BookFeed, Change, JoinOptions, SyncState, token_of};
use crate::domain::Timestamp;

/// Arguments of `mdrelay book`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Venue id, e.g. `okx`.
    pub venue: String,
    /// Symbol: its subject token (`btc-usdt`) or canonical form (`BTC/USDT`).
    pub symbol: String,
    /// Levels shown per side.
    #[arg(long, default_value_t = 10)]
    pub depth: usize,
    /// Print the book once, as soon as it is consistent, and exit.
    #[arg(long)]
    pub once: bool,
    /// With `--once`: print it as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// With `--once`: give up when the book is not consistent within this
    /// many seconds.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
    /// Wait this many seconds for a first snapshot when the book has none yet
    /// (default: fail at once).
    #[arg(long, default_value_t = 0)]
    pub wait: u64,
    /// The NATS connection.
    #[command(flatten)]
    pub bus: BusArgs,
}

/// Run `mdrelay book`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.json && !args.once {
        bail!("--json goes with --once (the live ladder is for a terminal)");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(book(args))
}

async fn book(args: Args) -> anyhow::Result<ExitCode> {
    let client = args.bus.connect("mdrelay-book").await?;
    let opts = JoinOptions {
        wait: Duration::from_secs(args.wait),
        ..JoinOptions::default()
    };
    let mut feed = BookFeed::join(&client, &args.venue, &args.symbol, opts).await?;
    let token = token_of(&args.symbol);
    let title = format!("{} {}", args.venue, token);
    if args.once {
        return once(&args, &mut feed, &token, &title).await;
    }
    let mut out = std::io::stdout();
    let mut drawn = Instant::now() - Duration::from_secs(1);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            c = feed.next() => { c?; }
            _ = tick.tick() => {}
        }
        // At most 10 redraws a second; the age keeps moving meanwhile.
        if drawn.elapsed() >= Duration::from_millis(100) {
            drawn = Instant::now();
            let mut text = ladder::render(&title, feed.tracker(), args.depth, Timestamp::now());
            let bad = feed.stats().bad_payloads;
            if bad > 0 {
                text.push_str(&format!(
                    "{bad} bad payloads skipped (last: {})\n",
                    feed.stats().last_bad.as_deref().unwrap_or("")
                ));
            }
            // Home, clear the screen, draw.
            let _ = write!(out, "\x1b[H\x1b[2J{text}");
            let _ = out.flush();
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn once(
    args: &Args,
    feed: &mut BookFeed,
    token: &str,
    title: &str,
) -> anyhow::Result<ExitCode> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.timeout);
    while feed.state() != SyncState::Synced {
        match tokio::time::timeout_at(deadline, feed.next()).await {
            Err(_) => bail!(
                "the book of {title} was not consistent within {} s (state {}{})",
                args.timeout,
                feed.state().as_str(),
                feed.tracker()
                    .stale_reason()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ),
            Ok(Err(e)) => return Err(e.into()),
            Ok(Ok(Change::BadPayload(what))) => eprintln!("skipped a bad payload: {what}"),
            Ok(Ok(_)) => {}
        }
    }
    let now = Timestamp::now();
    let text = if args.json {
        ladder::json(&args.venue, token, feed.tracker(), args.depth, now)
    } else {
        ladder::render(title, feed.tracker(), args.depth, now)
    };
    println!("{}", text.trim_end());
    Ok(ExitCode::SUCCESS)
}
