//! Venue WebSocket client connections (TLS via rustls).

use std::time::Duration;

use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::InfraError;

/// An open client connection.
pub type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub use tokio_tungstenite::tungstenite::Message;
pub use tokio_tungstenite::tungstenite::protocol::CloseFrame;

/// Install the process-wide TLS crypto provider (ring). Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Connect to `url`, accepting messages up to `max_message` bytes, within
/// `timeout`.
pub async fn connect(
    url: &str,
    max_message: usize,
    timeout: Duration,
) -> Result<WsStream, InfraError> {
    install_crypto_provider();
    let config = WebSocketConfig::default()
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message));
    let attempt = tokio_tungstenite::connect_async_with_config(url, Some(config), true);
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok((ws, _response))) => Ok(ws),
        Ok(Err(e)) => Err(InfraError::Connect {
            target: redact_url(url),
            message: e.to_string(),
        }),
        Err(_) => Err(InfraError::Connect {
            target: redact_url(url),
            message: format!("timed out after {timeout:?}"),
        }),
    }
}

pub use crate::config::redact_url;
