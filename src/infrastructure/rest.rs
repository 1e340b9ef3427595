//! REST requests to venues (connection bootstrap, book snapshots).

use std::time::Duration;

use super::InfraError;

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

    /// Make a request and return the body text.
    pub async fn request(
        &self,
        method: &str,
        url: &str,
        body: Option<&str>,
    ) -> Result<String, InfraError> {
        let target = super::ws::redact_url(url);
        let req = match method {
            "POST" => self
                .client
                .post(url)
                .body(body.unwrap_or_default().to_owned()),
            _ => self.client.get(url),
        };
        let resp = req.send().await.map_err(|e| InfraError::Connect {
            target: target.clone(),
            message: e.to_string(),
        })?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| InfraError::Io(e.to_string()))?;
        if !status.is_success() {
            return Err(InfraError::Protocol(format!(
                "{target} answered {status}: {}",
                text.chars().take(200).collect::<String>()
            )));
        }
        Ok(text)
    }
}
