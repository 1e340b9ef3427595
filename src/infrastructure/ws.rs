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

/// The URL without its query string (which may hold a token) and without
/// the `user:password@` part.
pub fn redact_url(url: &str) -> String {
    let base = match url.split_once('?') {
        Some((base, _)) => format!("{base}?…"),
        None => url.to_owned(),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let authority_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    match base[authority_start..authority_end].rfind('@') {
        Some(at) => format!(
            "{}…@{}",
            &base[..authority_start],
            &base[authority_start + at + 1..]
        ),
        None => base,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn query_strings_are_hidden() {
        assert_eq!(super::redact_url("wss://x/ws?token=abc"), "wss://x/ws?…");
        assert_eq!(super::redact_url("wss://x/ws"), "wss://x/ws");
        assert_eq!(
            super::redact_url("nats://relay:s3cret@127.0.0.1:4222"),
            "nats://…@127.0.0.1:4222"
        );
        assert_eq!(super::redact_url("tls://tok@h/x?y=1"), "tls://…@h/x?…");
    }
}
