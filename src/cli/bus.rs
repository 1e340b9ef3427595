//! The NATS connection of the commands that read the bus (`tail`, `book`):
//! `--nats URL`, else the relay config's `[nats]` section with its auth and
//! TLS.

use std::path::PathBuf;

use anyhow::{Context, bail};

use crate::config::relay::load_nats;
use crate::config::relay::raw::RawNats;
use crate::infrastructure::nats;

/// Where the bus is.
#[derive(Debug, Clone, clap::Args)]
pub struct BusArgs {
    /// NATS server URL (e.g. `nats://127.0.0.1:4222`; `nats://user:pass@host`
    /// or `nats://token@host` for auth). Without it, the relay config's
    /// `[nats]` section is used, auth and TLS included.
    #[arg(long, env = "NATS_URL")]
    pub nats: Option<String>,
    /// The relay config whose `[nats]` section to use.
    #[arg(
        long,
        short,
        default_value = "config/relay.toml",
        env = "MDRELAY_CONFIG"
    )]
    pub config: PathBuf,
}

impl BusArgs {
    /// The NATS settings to connect with.
    pub fn settings(&self) -> anyhow::Result<RawNats> {
        match &self.nats {
            Some(url) => {
                if !(url.starts_with("nats://") || url.starts_with("tls://")) {
                    bail!(
                        "`{}` is not a nats:// or tls:// URL",
                        crate::infrastructure::ws::redact_url(url)
                    );
                }
                Ok(RawNats {
                    urls: vec![url.clone()],
                    ..RawNats::default()
                })
            }
            None => load_nats(&self.config)
                .map_err(|e| anyhow::anyhow!("{e}"))
                .with_context(|| {
                    format!(
                        "reading [nats] from {} (or give --nats URL)",
                        self.config.display()
                    )
                }),
        }
    }

    /// Connect (failing at once when no server answers).
    pub async fn connect(&self, name: &str) -> anyhow::Result<async_nats::Client> {
        let cfg = self.settings()?;
        nats::connect(&cfg, name, false)
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach NATS: {e}"))
    }
}
