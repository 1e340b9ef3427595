//! REST requests to venues (connection bootstrap, book snapshots, checksum
//! scales, reference data).
//!
//! - [`Rest`]: the shared HTTP client; a 429 or 418 answer comes back as
//!   [`RestError::Throttled`] with the venue's `Retry-After`
//!   ([`retry_after`]).
//! - [`Budget`]: one per venue, shared by every request to it: at most
//!   `requests` per `per`, and after a throttled answer nothing until the
//!   venue's wait has passed.

mod budget;
mod retry_after;

use std::time::Duration;

pub use budget::{Budget, BudgetSettings};
pub use retry_after::retry_after;

/// Why a REST request gave no body. Each variant says what the caller does
/// next: [`RestError::Throttled`] means wait (the venue's [`Budget`] already
/// does), the others mean try again later.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RestError {
    /// The request did not complete (connect, TLS, timeout, body read).
    #[error("cannot reach {target}: {message}")]
    Failed {
        /// The URL, with secrets hidden.
        target: String,
        /// Why.
        message: String,
    },
    /// The venue refused the rate (HTTP 429, or 418 after ignored 429s).
    #[error("{target} answered {status}: rate limited (retry after {})", retry_after.map_or_else(|| "unspecified".to_owned(), |d| crate::domain::HumanDuration(d).to_string()))]
    Throttled {
        /// The URL, with secrets hidden.
        target: String,
        /// 429 or 418.
        status: u16,
        /// The venue's `Retry-After`, when it sent a readable one.
        retry_after: Option<Duration>,
    },
    /// Any other non-success status.
    #[error("{target} answered {status}: {body}")]
    Status {
        /// The URL, with secrets hidden.
        target: String,
        /// The HTTP status code.
        status: u16,
        /// The start of the body.
        body: String,
    },
}

impl RestError {
    /// The `outcome` label of `mdrelay_rest_requests_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            RestError::Failed { .. } => "failed",
            RestError::Throttled { .. } => "throttled",
            RestError::Status { .. } => "http_error",
        }
    }
}

/// A shared HTTP client.
#[derive(Clone, Debug)]
pub struct Rest {
    client: reqwest::Client,
}

impl Rest {
    /// A client with `timeout` per request.
    pub fn new(timeout: Duration) -> Self {
        super::ws::install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("mdrelay/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("static HTTP client configuration is valid");
        Rest { client }
    }

    /// Make a request and return the body text. Not paced: callers go
    /// through their venue's [`Budget`] first.
    pub async fn request(
        &self,
        method: &str,
        url: &str,
        body: Option<&str>,
    ) -> Result<String, RestError> {
        let target = super::ws::redact_url(url);
        let req = match method {
            "POST" => self
                .client
                .post(url)
                .header("content-type", "application/json")
                .body(body.unwrap_or_default().to_owned()),
            _ => self.client.get(url),
        };
        let failed = |e: reqwest::Error| RestError::Failed {
            target: target.clone(),
            message: e.to_string(),
        };
        let resp = req.send().await.map_err(failed)?;
        let status = resp.status().as_u16();
        if status == 429 || status == 418 {
            let now = std::time::SystemTime::now();
            let wait = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| retry_after(v, now));
            return Err(RestError::Throttled {
                target,
                status,
                retry_after: wait,
            });
        }
        let text = resp.text().await.map_err(failed)?;
        if !(200..300).contains(&status) {
            return Err(RestError::Status {
                target,
                status,
                body: text.chars().take(200).collect(),
            });
        }
        Ok(text)
    }
}
