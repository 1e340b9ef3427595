//! `mdrelay top`: a live terminal view of a running relay, read from its
//! `/metrics` and `/health`. Per venue: connections, frames/s, events/s,
//! venue lag and ack latency p50/p99, gaps, reconnects, stale instruments
//! and health; Enter drills into a venue's connections and instruments.
//! `--once` prints one plain-text frame (two scrapes `--interval` apart)
//! and exits.
//!
//! Layout: [`prom`] parses the Prometheus text, [`health`] reads the health
//! JSON, [`scrape`] fetches both, [`model`] turns two scrapes into rates and
//! quantiles, [`view`] and [`detail`] draw them with ratatui, [`live`] runs
//! the terminal loop.

mod detail;
mod format;
mod health;
mod live;
mod model;
mod prom;
mod scrape;
mod view;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};

use self::model::Scrape;
use self::scrape::Endpoint;
use self::view::{Screen, Ui};

/// The relay's default `[http] listen`.
const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// How long one HTTP request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Width of the `--once` text (trailing blanks are trimmed).
const ONCE_WIDTH: u16 = 240;

/// Arguments of `mdrelay top`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the relay serves `/health` and `/metrics`: `http://host:port`
    /// or `host:port`. Default: `[http] listen` of `--config`, else
    /// 127.0.0.1:8080.
    #[arg(long, env = "MDRELAY_HTTP")]
    pub url: Option<String>,
    /// The relay config whose `[http] listen` to read (without `--url`).
    #[arg(long, short, env = "MDRELAY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print one plain-text frame and exit (rates over two scrapes
    /// `--interval` apart).
    #[arg(long)]
    pub once: bool,
    /// Show this venue's connections and instruments (the live view starts
    /// drilled into it).
    #[arg(long)]
    pub venue: Option<String>,
    /// Time between scrapes, e.g. `1s`, `500ms`.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
}

/// Run `mdrelay top`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.interval.is_zero() {
        bail!("--interval must be longer than 0");
    }
    if !args.once && !std::io::stdout().is_terminal() {
        bail!("the live view needs a terminal; use --once for plain text");
    }
    let base = scrape::base_url(&relay_url(&args)?).map_err(|e| anyhow::anyhow!("--url {e}"))?;
    let endpoint = Endpoint::new(base, REQUEST_TIMEOUT);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let first = rt.block_on(endpoint.scrape())?;
    let ui = Ui {
        venue: args.venue.clone(),
        selected: selected_venue(&first, args.venue.as_deref())?,
        scroll: 0,
    };
    if args.once {
        std::thread::sleep(args.interval);
        let second = rt.block_on(endpoint.scrape())?;
        return once(endpoint.base(), &first, &second, &ui);
    }
    drop(rt);
    live::run(endpoint, args.interval, first, ui)
}

/// The row of `venue`, or an error naming the venues there are.
fn selected_venue(s: &Scrape, venue: Option<&str>) -> anyhow::Result<usize> {
    let Some(venue) = venue else {
        return Ok(0);
    };
    let rows = model::overview(None, s).venues;
    match rows.iter().position(|r| r.venue == venue) {
        Some(i) => Ok(i),
        None => {
            let known: Vec<&str> = rows.iter().map(|r| r.venue.as_str()).collect();
            bail!(
                "unknown venue `{venue}`; this relay has: {}",
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            )
        }
    }
}

fn once(url: &str, first: &Scrape, second: &Scrape, ui: &Ui) -> anyhow::Result<ExitCode> {
    let overview = model::overview(Some(first), second);
    let screen = Screen {
        url,
        overview: &overview,
        health: &second.health,
        error: None,
        interactive: false,
    };
    print!("{}", view::plain(&screen, ui, ONCE_WIDTH));
    if overview.venues.is_empty() {
        bail!("the relay at {url} reports no venue");
    }
    Ok(ExitCode::SUCCESS)
}

/// `--url`, else `[http] listen` of `--config`, else the default.
fn relay_url(args: &Args) -> anyhow::Result<String> {
    if let Some(u) = &args.url {
        return Ok(u.clone());
    }
    let listen = match &args.config {
        Some(path) => listen_of(path)?,
        None => DEFAULT_LISTEN.to_owned(),
    };
    let addr: SocketAddr = listen.parse().map_err(|_| {
        anyhow::anyhow!("[http] listen `{listen}` is not an address like {DEFAULT_LISTEN}")
    })?;
    Ok(format!("http://{}", reachable(addr)))
}

/// A listen address as a client reaches it: a wildcard address is reached
/// on loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

/// `[http] listen` of a relay config (`${VAR}` and `${VAR:-default}`
/// substituted), or the default when the file has none.
fn listen_of(path: &Path) -> anyhow::Result<String> {
    #[derive(serde::Deserialize)]
    struct File {
        http: Option<Http>,
    }
    #[derive(serde::Deserialize)]
    struct Http {
        listen: Option<String>,
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the relay config {}", path.display()))?;
    let file: File =
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let listen = file
        .http
        .and_then(|h| h.listen)
        .unwrap_or_else(|| DEFAULT_LISTEN.into());
    expand(&listen, |k| std::env::var(k).ok())
        .map_err(|e| anyhow::anyhow!("{}: [http] listen: {e}", path.display()))
}

/// Substitute `${VAR}` and `${VAR:-default}` in `s`.
fn expand(s: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed `${{` in `{s}`"))?;
        let expr = &after[..end];
        let (name, default) = match expr.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (expr, None),
        };
        match (lookup(name), default) {
            (Some(v), Some(d)) if v.is_empty() => out.push_str(d),
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => return Err(format!("`${{{name}}}` is not set")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_in_the_listen_address_are_substituted() {
        let env = |k: &str| (k == "PORT").then(|| "9000".to_owned());
        assert_eq!(expand("127.0.0.1:${PORT}", env).unwrap(), "127.0.0.1:9000");
        assert_eq!(
            expand("${HOST:-0.0.0.0}:${PORT}", env).unwrap(),
            "0.0.0.0:9000"
        );
        assert_eq!(expand("${HOST}", env).unwrap_err(), "`${HOST}` is not set");
        assert!(expand("${PORT", env).is_err());
    }

    #[test]
    fn a_wildcard_listen_address_is_reached_on_loopback() {
        let r = |s: &str| reachable(s.parse().unwrap()).to_string();
        assert_eq!(r("0.0.0.0:8080"), "127.0.0.1:8080");
        assert_eq!(r("[::]:8080"), "[::1]:8080");
        assert_eq!(r("10.0.0.5:81"), "10.0.0.5:81");
    }

    #[test]
    fn the_url_comes_from_the_config_when_not_given() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.toml");
        std::fs::write(
            &path,
            "[http]\nlisten = \"0.0.0.0:9091\"\n[nats]\nurls = []\n",
        )
        .unwrap();
        let args = |url: Option<&str>, config: Option<&Path>| Args {
            url: url.map(Into::into),
            config: config.map(Into::into),
            once: true,
            venue: None,
            interval: Duration::from_secs(1),
        };
        assert_eq!(
            relay_url(&args(None, Some(&path))).unwrap(),
            "http://127.0.0.1:9091"
        );
        assert_eq!(relay_url(&args(Some("h:1"), Some(&path))).unwrap(), "h:1");
        assert_eq!(
            relay_url(&args(None, None)).unwrap(),
            "http://127.0.0.1:8080"
        );
        std::fs::write(&path, "[nats]\nurls = []\n").unwrap();
        assert_eq!(
            relay_url(&args(None, Some(&path))).unwrap(),
            "http://127.0.0.1:8080"
        );
        std::fs::write(&path, "[http]\nlisten = \"nowhere\"\n").unwrap();
        let e = relay_url(&args(None, Some(&path))).unwrap_err().to_string();
        assert!(e.contains("`nowhere` is not an address"), "{e}");
        let e = relay_url(&args(None, Some(&dir.path().join("none.toml"))));
        assert!(
            e.unwrap_err()
                .to_string()
                .contains("reading the relay config")
        );
    }
}
