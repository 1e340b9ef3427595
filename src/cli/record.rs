//! `mdrelay record`: capture a venue's frames as a fixture case.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::config::relay::load_relay;
use crate::tools::record::record;

/// Arguments of `mdrelay record`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The venue id (its `[[venues]]` entry in the config gives the subscriptions).
    #[arg(long)]
    pub venue: String,
    /// The relay config file.
    #[arg(long, default_value = "config/relay.toml")]
    pub config: PathBuf,
    /// The output frames file (e.g. fixtures/<venue>/<case>.jsonl).
    #[arg(long)]
    pub out: PathBuf,
    /// How long to record (e.g. 30s, 5m).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Connect here instead of the venue's URL (e.g. a local replay server).
    #[arg(long)]
    pub url: Option<String>,
}

/// Record, then print what was written.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    crate::cli::run::init_tracing("warn", crate::config::relay::raw::LogFormat::Pretty);
    let cfg = match load_relay(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(2));
        }
    };
    let ids: Vec<String> = cfg.venues.iter().map(|v| v.id.to_string()).collect();
    let Some(mut setup) = cfg.venues.into_iter().find(|v| v.id == args.venue) else {
        bail!(
            "venue `{}` is not in {} (its venues: {}); record takes the subscriptions of a [[venues]] entry",
            args.venue,
            args.config.display(),
            ids.join(", ")
        );
    };
    if args.url.is_some() {
        setup.url = args.url.clone();
    }
    let url = setup
        .url
        .clone()
        .or_else(|| setup.venue.connection.url.clone())
        .unwrap_or_else(|| "its URL".into());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime
        .block_on(record(setup, &args.out, args.duration))
        .with_context(|| format!("writing {}", args.out.display()))?;
    if report.frames == 0 {
        bail!(
            "no frame received from `{}` ({}) in {}; nothing written to {} (see the warnings above)",
            args.venue,
            crate::infrastructure::ws::redact_url(&url),
            humantime::format_duration(args.duration),
            args.out.display()
        );
    }
    eprintln!(
        "recorded {} frames ({} bytes) to {}",
        report.frames,
        report.bytes,
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
