//! `mdrelay run`: the long-running relay.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use tracing::{info, warn};

use crate::application::relay::{StartOptions, start};
use crate::config::relay::load_relay;
use crate::config::relay::raw::LogFormat;

/// Arguments of `mdrelay run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The relay config file.
    #[arg(
        long,
        short,
        default_value = "config/relay.toml",
        env = "MDRELAY_CONFIG"
    )]
    pub config: PathBuf,
    /// Do not reload when the config or venue files change (SIGHUP still does).
    #[arg(long)]
    pub no_watch: bool,
    /// Override `[http] listen`.
    #[arg(long)]
    pub http_listen: Option<SocketAddr>,
}

/// Install the log subscriber: `RUST_LOG` wins over the config's level.
pub fn init_tracing(level: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

/// The tokio runtime for the relay: a multi-threaded pool of
/// `worker_threads` (default: one per available core), or everything on
/// one thread when that is 1.
pub fn runtime(worker_threads: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    let worker_threads = worker_threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    if worker_threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(worker_threads)
            .enable_all()
            .build()
    }
}

/// Exit code when the relay stopped with events abandoned: still queued or
/// unacknowledged when the shutdown drain ended (e.g. NATS unreachable).
/// 0 means everything mapped was published or counted as dropped with its
/// cause; 2 is a config that does not load.
pub const EXIT_ABANDONED: u8 = 3;

/// Load the config, start the relay, and run until SIGTERM / SIGINT.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let cfg = match load_relay(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(2));
        }
    };
    init_tracing(&cfg.service.log_level, cfg.service.log_format);
    let runtime = runtime(cfg.service.worker_threads).context("starting the runtime")?;
    runtime.block_on(async move {
        let venues_dir = cfg.venues_dir.clone();
        let file = cfg.file.clone();
        let handle = start(
            cfg,
            StartOptions {
                http_listen: args.http_listen,
                ..Default::default()
            },
        )
        .await?;
        let _watch = if args.no_watch {
            None
        } else {
            match handle.watch_files(file, venues_dir) {
                Ok(w) => Some(w),
                Err(e) => {
                    warn!(error = %e, "cannot watch files; reload with SIGHUP");
                    None
                }
            }
        };
        wait_for_signals(&handle).await;
        let report = handle.shutdown().await;
        if report.abandoned() > 0 {
            warn!(
                abandoned = report.abandoned(),
                exit_code = EXIT_ABANDONED,
                "events were abandoned at shutdown"
            );
            return Ok(ExitCode::from(EXIT_ABANDONED));
        }
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(unix)]
async fn wait_for_signals(handle: &crate::application::relay::RelayHandle) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    let stop = handle.shutdown_token();
    loop {
        tokio::select! {
            _ = term.recv() => { info!("SIGTERM: shutting down"); break; }
            _ = int.recv() => { info!("SIGINT: shutting down"); break; }
            _ = hup.recv() => { info!("SIGHUP: reloading"); handle.reload(); }
            _ = stop.cancelled() => break,
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signals(_handle: &crate::application::relay::RelayHandle) {
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use tokio::runtime::RuntimeFlavor;

    #[test]
    fn worker_threads_choose_the_runtime() {
        let flavor = |n| super::runtime(n).unwrap().handle().runtime_flavor();
        assert_eq!(flavor(Some(1)), RuntimeFlavor::CurrentThread);
        assert_eq!(flavor(Some(2)), RuntimeFlavor::MultiThread);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let default = if cores > 1 {
            RuntimeFlavor::MultiThread
        } else {
            RuntimeFlavor::CurrentThread
        };
        assert_eq!(flavor(None), default, "absent: one per core");
    }
}
