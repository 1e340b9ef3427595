//! Reading a running relay over HTTP: `/metrics` (Prometheus text) and
//! `/health` (JSON), with errors that say what is wrong with the URL.

use std::time::{Duration, Instant};

use super::health::HealthDoc;
use super::model::Scrape;
use super::prom;

/// Why a scrape failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum ScrapeError {
    /// No HTTP answer (refused, timed out, bad host).
    #[error(
        "cannot reach the relay at {url}: {message} (is it running? --url or --config say where it listens)"
    )]
    Unreachable {
        /// The URL asked.
        url: String,
        /// The cause, innermost last.
        message: String,
    },
    /// An HTTP status that is not the relay's.
    #[error("{url} answered HTTP {status}: not a relay's endpoint (wrong --url?)")]
    Status {
        /// The URL asked.
        url: String,
        /// The status line.
        status: String,
    },
    /// `/metrics` is not Prometheus text, or has no mdrelay metric.
    #[error("{url} is not the relay's metrics: {message}")]
    Metrics {
        /// The URL asked.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// `/health` is not the relay's JSON report.
    #[error("{url} is not the relay's health report: {message}")]
    Health {
        /// The URL asked.
        url: String,
        /// What is wrong.
        message: String,
    },
}

/// A relay's HTTP endpoints.
#[derive(Debug, Clone)]
pub(super) struct Endpoint {
    client: reqwest::Client,
    base: String,
    timeout: Duration,
}

/// The base URL from `--url`: `http://host:port` (a path prefix is kept),
/// or a bare `host:port`.
pub(super) fn base_url(url: &str) -> Result<String, String> {
    let with_scheme = if url.contains("://") {
        url.to_owned()
    } else {
        format!("http://{url}")
    };
    let parsed = reqwest::Url::parse(&with_scheme).map_err(|e| format!("`{url}`: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("`{url}` is not an http:// URL"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("`{url}` has no host"));
    }
    Ok(with_scheme.trim_end_matches('/').to_owned())
}

/// Why a request got no answer, in a few words: the innermost cause
/// (`Connection refused (os error 111)`), or the timeout.
fn why(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("no answer within {}", humantime::format_duration(timeout));
    }
    let mut cause: &dyn std::error::Error = e;
    while let Some(s) = cause.source() {
        cause = s;
    }
    cause.to_string()
}

impl Endpoint {
    /// The relay at `base` (from [`base_url`]); each request may take up to
    /// `timeout`.
    pub(super) fn new(base: String, timeout: Duration) -> Self {
        crate::infrastructure::ws::install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("mdrelay-top/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("static HTTP client configuration is valid");
        Endpoint {
            client,
            base,
            timeout,
        }
    }

    /// The base URL.
    pub(super) fn base(&self) -> &str {
        &self.base
    }

    /// GET `path`; the body, if the status is one of `ok`.
    async fn get(&self, path: &str, ok: &[u16]) -> Result<(String, String), ScrapeError> {
        let url = format!("{}{path}", self.base);
        let unreachable = |e: reqwest::Error| ScrapeError::Unreachable {
            url: url.clone(),
            message: why(&e, self.timeout),
        };
        let resp = self.client.get(&url).send().await.map_err(unreachable)?;
        let status = resp.status();
        if !ok.contains(&status.as_u16()) {
            return Err(ScrapeError::Status {
                url,
                status: status.to_string(),
            });
        }
        let body = resp.text().await.map_err(unreachable)?;
        Ok((url, body))
    }

    /// Read `/metrics` and `/health` once.
    pub(super) async fn scrape(&self) -> Result<Scrape, ScrapeError> {
        let (murl, metrics) = self.get("/metrics", &[200]).await?;
        let at = Instant::now();
        // 503 is the relay saying it is unhealthy, with the same report.
        let (hurl, health) = self.get("/health", &[200, 503]).await?;
        let samples = prom::parse(&metrics).map_err(|e| ScrapeError::Metrics {
            url: murl.clone(),
            message: e.to_string(),
        })?;
        if !samples.iter().any(|s| s.name.starts_with("mdrelay_")) {
            return Err(ScrapeError::Metrics {
                url: murl,
                message: "no mdrelay_ metric in it".into(),
            });
        }
        let health: HealthDoc = serde_json::from_str(&health).map_err(|e| ScrapeError::Health {
            url: hurl,
            message: e.to_string(),
        })?;
        Ok(Scrape {
            at,
            samples,
            health,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_take_a_scheme_or_a_bare_address() {
        assert_eq!(base_url("127.0.0.1:8080").unwrap(), "http://127.0.0.1:8080");
        assert_eq!(base_url("http://h:1/").unwrap(), "http://h:1");
        assert_eq!(base_url("https://h/relay/").unwrap(), "https://h/relay");
        assert!(
            base_url("nats://h:4222")
                .unwrap_err()
                .contains("not an http:// URL")
        );
        assert!(base_url("http://").is_err());
        assert!(base_url("http://[::1").is_err());
    }
}
