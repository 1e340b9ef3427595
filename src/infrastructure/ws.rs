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

/// Read buffer of a venue connection: 16 KiB, not tungstenite's 128 KiB.
/// tungstenite zero-fills the buffer's free capacity before every socket
/// read, including the last read of a wake-up that finds nothing, so with
/// 128 KiB a connection that wakes for one small frame clears 128-256 KiB
/// (and evicts the relay's working set from the cache). A frame larger than
/// the buffer still arrives whole: its length is reserved once its header is
/// read. See docs/performance.md ("The WebSocket read buffer").
const READ_BUFFER: usize = 16 * 1024;

/// The WebSocket settings of a venue connection.
fn config(max_message: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message))
}

/// Connect to `url`, accepting messages up to `max_message` bytes, within
/// `timeout`.
pub async fn connect(
    url: &str,
    max_message: usize,
    timeout: Duration,
) -> Result<WsStream, InfraError> {
    install_crypto_provider();
    let attempt =
        tokio_tungstenite::connect_async_with_config(url, Some(config(max_message)), true);
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

#[cfg(test)]
mod tests {
    use futures_util::{SinkExt, StreamExt};

    use super::*;

    #[test]
    fn the_read_buffer_is_smaller_than_tungstenites_default() {
        let c = config(1 << 20);
        assert_eq!(c.read_buffer_size, 16 * 1024);
        assert!(c.read_buffer_size < WebSocketConfig::default().read_buffer_size);
        assert_eq!(c.max_message_size, Some(1 << 20));
    }

    /// Messages much larger than the read buffer, between small ones,
    /// arrive whole and in order.
    #[tokio::test]
    async fn messages_larger_than_the_read_buffer_arrive_whole() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let sent: Vec<String> = [10, 300_000, 5, READ_BUFFER + 1, 70_000, 1]
            .iter()
            .enumerate()
            .map(|(i, &n)| format!("{i}{}", "x".repeat(n)))
            .collect();
        let to_send = sent.clone();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
            for m in to_send {
                ws.send(Message::text(m)).await.unwrap();
            }
            ws.close(None).await.unwrap();
        });
        let mut ws = connect(
            &format!("ws://127.0.0.1:{port}/"),
            1 << 20,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        let mut got = Vec::new();
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Text(t) = m {
                got.push(t.to_string());
            }
        }
        server.await.unwrap();
        assert_eq!(got, sent);
    }
}
