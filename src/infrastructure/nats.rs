//! NATS: connecting with the configured auth and TLS (streams and consumers:
//! [`super::streams`]).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_nats::jetstream;
use async_nats::{Client, ConnectOptions, Event};
use tracing::{info, warn};

use super::InfraError;
use crate::config::relay::raw::{RawAuth, RawNats};

/// Connect to NATS. The client keeps reconnecting on its own afterwards;
/// with `wait`, the first connection is retried until it succeeds.
pub async fn connect(cfg: &RawNats, name: &str, wait: bool) -> Result<Client, InfraError> {
    let (urls, url_auth) = server_addrs(&cfg.urls)?;
    let mut opts = match (&cfg.auth, url_auth) {
        (RawAuth::None, Some(UrlAuth::UserPassword(user, password))) => {
            ConnectOptions::with_user_and_password(user, password)
        }
        (RawAuth::None, Some(UrlAuth::Token(token))) => ConnectOptions::with_token(token),
        (RawAuth::None, None) => ConnectOptions::new(),
        (RawAuth::Token { token }, _) => ConnectOptions::with_token(token.expose().to_owned()),
        (RawAuth::UserPassword { user, password }, _) => {
            ConnectOptions::with_user_and_password(user.clone(), password.expose().to_owned())
        }
        (RawAuth::Nkey { seed }, _) => ConnectOptions::with_nkey(seed.expose().to_owned()),
        (RawAuth::Credentials { path }, _) => ConnectOptions::with_credentials_file(path.clone())
            .await
            .map_err(|e| InfraError::Connect {
                target: "NATS".into(),
                message: format!("credentials file: {e}"),
            })?,
    };
    if let Some(tls) = &cfg.tls {
        opts = opts.require_tls(true);
        if let Some(ca) = &tls.ca {
            opts = opts.add_root_certificates(ca.clone());
        }
        if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
            opts = opts.add_client_certificate(cert.clone(), key.clone());
        }
    }
    let servers: Arc<str> = cfg
        .urls
        .iter()
        .map(|u| super::ws::redact_url(u))
        .collect::<Vec<_>>()
        .join(",")
        .into();
    let client_slot = Arc::new(OnceLock::<Client>::new());
    opts = opts
        .name(name)
        .connection_timeout(cfg.connect_timeout.0)
        .max_reconnects(None)
        .client_capacity(4_096)
        .event_callback({
            let (servers, slot) = (servers.clone(), client_slot.clone());
            move |event| {
                let (servers, slot) = (servers.clone(), slot.clone());
                async move { log_event(&event, &servers, slot.get()) }
            }
        });
    if wait {
        opts = opts.retry_on_initial_connect();
    }
    info!(url = %servers, "connecting to NATS");
    let client = opts
        .connect(urls.as_slice())
        .await
        .map_err(|e| InfraError::Connect {
            target: servers.to_string(),
            message: e.to_string(),
        })?;
    let _ = client_slot.set(client.clone());
    Ok(client)
}

/// What the connected server can do, read from its version at connect.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerFeatures {
    /// `major.minor.patch` of the server (0.0.0 when unreadable).
    pub version: (u32, u32, u32),
    /// Batch direct get and get-last-for-subjects (2.11+).
    pub batch_direct_get: bool,
    /// Per-message TTL (`allow_msg_ttl`, 2.11+).
    pub msg_ttl: bool,
    /// Atomic batch publish (`allow_atomic`, 2.12+).
    pub atomic_batch: bool,
    /// Fast-ingest batch publishing (`allow_batched`, 2.14+).
    pub fast_ingest: bool,
}

impl ServerFeatures {
    /// The features of a server announcing `version` (`2.15.1`,
    /// `2.12.0-RC.1`, `v2.9.10`).
    pub fn of(version: &str) -> ServerFeatures {
        let mut parts = version
            .trim_start_matches('v')
            .split(['.', '-', '+'])
            .map(|p| p.parse::<u32>().ok());
        let mut next = || parts.next().flatten().unwrap_or(0);
        let v = (next(), next(), next());
        let at_least = |major, minor| (v.0, v.1) >= (major, minor);
        ServerFeatures {
            version: v,
            batch_direct_get: at_least(2, 11),
            msg_ttl: at_least(2, 11),
            atomic_batch: at_least(2, 12),
            fast_ingest: at_least(2, 14),
        }
    }

    /// The features of the server `client` is connected to.
    pub fn of_client(client: &Client) -> ServerFeatures {
        ServerFeatures::of(&client.server_info().version)
    }

    /// The features' names, present or missing, for the log.
    pub fn describe(&self) -> String {
        let mark = |on: bool, name: &str| format!("{}{name}", if on { "+" } else { "-" });
        [
            mark(self.batch_direct_get, "batch_direct_get"),
            mark(self.msg_ttl, "msg_ttl"),
            mark(self.atomic_batch, "atomic_batch"),
            mark(self.fast_ingest, "fast_ingest"),
        ]
        .join(" ")
    }
}

/// Log a NATS client event, naming the server(s) it concerns (`url`, the
/// configured URLs without credentials) and, once connected, the server's
/// version and port.
fn log_event(event: &Event, url: &str, client: Option<&Client>) {
    match event {
        Event::Connected => {
            let info = client.map(Client::server_info);
            let version = info.as_ref().map(|i| i.version.as_str()).unwrap_or("");
            let features = ServerFeatures::of(version).describe();
            info!(url = %url, server_version = %version, %features, "NATS connected");
        }
        Event::Disconnected => warn!(url = %url, "NATS disconnected; reconnecting"),
        Event::ClientError(e) => info!(url = %url, error = %e, "NATS client error"),
        Event::ServerError(e) => warn!(url = %url, error = %e, "NATS server error"),
        Event::LameDuckMode => warn!(url = %url, "NATS server entering lame duck mode"),
        Event::SlowConsumer(sid) => warn!(url = %url, subscription = sid, "NATS slow consumer"),
        Event::Draining => info!(url = %url, "NATS connection draining"),
        Event::Closed => info!(url = %url, "NATS connection closed"),
    }
}

/// Credentials written into a server URL (`nats://user:pass@host`).
pub(crate) enum UrlAuth {
    UserPassword(String, String),
    Token(String),
}

/// Parse the server URLs, taking any `user:password@` out of them: the NATS
/// client logs server addresses, so credentials must not travel inside them.
/// They become the connection's auth unless `[nats.auth]` sets one.
pub(crate) fn server_addrs(
    urls: &[String],
) -> Result<(Vec<async_nats::ServerAddr>, Option<UrlAuth>), InfraError> {
    let bad = || InfraError::Connect {
        target: "NATS".into(),
        message: "bad URL in nats.urls".into(),
    };
    let mut auth = None;
    let mut out = Vec::with_capacity(urls.len());
    for u in urls {
        let addr: async_nats::ServerAddr = u.parse().map_err(|_| bad())?;
        if !addr.has_user_pass() {
            out.push(addr);
            continue;
        }
        let user = percent_decode(addr.username().unwrap_or_default());
        let password = addr.password().map(percent_decode);
        auth.get_or_insert(match password {
            Some(p) => UrlAuth::UserPassword(user, p),
            None => UrlAuth::Token(user),
        });
        let mut url = addr.into_inner();
        url.set_username("").map_err(|_| bad())?;
        url.set_password(None).map_err(|_| bad())?;
        out.push(url.as_str().parse().map_err(|_| bad())?);
    }
    Ok((out, auth))
}

/// Decode `%XX` escapes of a URL component.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A JetStream context with the publish ack timeout.
pub fn jetstream(client: Client, ack_timeout: Duration) -> jetstream::Context {
    let mut js = jetstream::new(client);
    js.set_timeout(ack_timeout);
    js
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_versions_tell_the_features() {
        let old = ServerFeatures::of("2.9.10");
        assert_eq!(old.version, (2, 9, 10));
        assert!(!old.fast_ingest && !old.batch_direct_get && !old.atomic_batch);
        let new = ServerFeatures::of("2.15.1");
        assert!(new.fast_ingest && new.batch_direct_get && new.msg_ttl && new.atomic_batch);
        let rc = ServerFeatures::of("v2.14.0-RC.2");
        assert_eq!(rc.version, (2, 14, 0));
        assert!(rc.fast_ingest);
        let mid = ServerFeatures::of("2.12.3");
        assert!(mid.atomic_batch && !mid.fast_ingest);
        assert_eq!(ServerFeatures::of("garbage"), ServerFeatures::default());
        assert_eq!(
            mid.describe(),
            "+batch_direct_get +msg_ttl +atomic_batch -fast_ingest"
        );
    }

    #[test]
    fn credentials_are_taken_out_of_server_urls() {
        let (addrs, auth) = server_addrs(&[
            "nats://relay:p%40ss@127.0.0.1:4222".into(),
            "nats://127.0.0.1:4223".into(),
        ])
        .unwrap();
        assert!(addrs.iter().all(|a| !a.as_url_str().contains("relay")));
        assert!(matches!(auth, Some(UrlAuth::UserPassword(u, p)) if u == "relay" && p == "p@ss"));
        let (_, auth) = server_addrs(&["tls://s3cr3t@host:4222".into()]).unwrap();
        assert!(matches!(auth, Some(UrlAuth::Token(t)) if t == "s3cr3t"));
    }
}
