//! NATS: connecting with the configured auth and TLS, and reconciling the
//! configured JetStream streams and consumers.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use async_nats::{Client, ConnectOptions};

use super::InfraError;
use crate::config::relay::raw::{
    AckPolicy, DeliverPolicy, Discard, RawAuth, RawConsumer, RawNats, RawStream, Retention, Storage,
};

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
    opts = opts
        .name(name)
        .connection_timeout(cfg.connect_timeout.0)
        .max_reconnects(None)
        .client_capacity(4_096);
    if wait {
        opts = opts.retry_on_initial_connect();
    }
    opts.connect(urls.as_slice())
        .await
        .map_err(|e| InfraError::Connect {
            target: cfg
                .urls
                .iter()
                .map(|u| super::ws::redact_url(u))
                .collect::<Vec<_>>()
                .join(","),
            message: e.to_string(),
        })
}

/// Credentials written into a server URL (`nats://user:pass@host`).
enum UrlAuth {
    UserPassword(String, String),
    Token(String),
}

/// Parse the server URLs, taking any `user:password@` out of them: the NATS
/// client logs server addresses, so credentials must not travel inside them.
/// They become the connection's auth unless `[nats.auth]` sets one.
fn server_addrs(
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

fn stream_config(s: &RawStream) -> stream::Config {
    stream::Config {
        name: s.name.clone(),
        subjects: s.subjects.clone(),
        storage: match s.storage {
            Storage::File => stream::StorageType::File,
            Storage::Memory => stream::StorageType::Memory,
        },
        retention: match s.retention {
            Retention::Limits => stream::RetentionPolicy::Limits,
            Retention::Interest => stream::RetentionPolicy::Interest,
            Retention::WorkQueue => stream::RetentionPolicy::WorkQueue,
        },
        max_age: s.max_age.map_or(Duration::ZERO, |d| d.0),
        max_bytes: s.max_bytes.unwrap_or(-1),
        max_messages: s.max_messages.unwrap_or(-1),
        max_messages_per_subject: s.max_msgs_per_subject.unwrap_or(-1),
        allow_direct: s.allow_direct,
        num_replicas: s.replicas,
        duplicate_window: s.duplicate_window.map_or(Duration::from_secs(120), |d| d.0),
        discard: match s.discard {
            Discard::Old => stream::DiscardPolicy::Old,
            Discard::New => stream::DiscardPolicy::New,
        },
        ..Default::default()
    }
}

/// The settings we manage, for comparing with what the server has.
fn managed(c: &stream::Config) -> impl PartialEq + std::fmt::Debug {
    (
        c.subjects.clone(),
        c.storage,
        c.retention,
        c.max_age,
        c.max_bytes,
        c.max_messages,
        c.max_messages_per_subject,
        c.allow_direct,
        c.num_replicas,
        c.duplicate_window,
        c.discard,
    )
}

fn consumer_config(c: &RawConsumer) -> consumer::pull::Config {
    consumer::pull::Config {
        durable_name: Some(c.durable_name.clone()),
        filter_subject: c.filter_subject.clone().unwrap_or_default(),
        ack_policy: match c.ack_policy {
            AckPolicy::Explicit => consumer::AckPolicy::Explicit,
            AckPolicy::All => consumer::AckPolicy::All,
            AckPolicy::None => consumer::AckPolicy::None,
        },
        deliver_policy: match c.deliver_policy {
            DeliverPolicy::All => consumer::DeliverPolicy::All,
            DeliverPolicy::Last => consumer::DeliverPolicy::Last,
            DeliverPolicy::New => consumer::DeliverPolicy::New,
            DeliverPolicy::LastPerSubject => consumer::DeliverPolicy::LastPerSubject,
        },
        ..Default::default()
    }
}

/// What reconciling did, per stream and consumer, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reconciled {
    /// Created.
    Created(String),
    /// Updated to the configured settings.
    Updated(String),
    /// Already as configured.
    Unchanged(String),
}

/// Create missing streams and consumers and update those that differ.
pub async fn reconcile(
    js: &jetstream::Context,
    streams: &[RawStream],
) -> Result<Vec<Reconciled>, InfraError> {
    let mut done = Vec::new();
    for s in streams {
        let want = stream_config(s);
        let refused = |e: &dyn std::fmt::Display| InfraError::JetStream {
            what: format!("stream `{}`", s.name),
            message: e.to_string(),
        };
        let stream = match js.get_stream(&s.name).await {
            Ok(mut existing) => {
                let have = existing
                    .info()
                    .await
                    .map_err(|e| refused(&e))?
                    .config
                    .clone();
                if managed(&have) == managed(&want) {
                    done.push(Reconciled::Unchanged(format!("stream {}", s.name)));
                } else {
                    js.update_stream(&want).await.map_err(|e| refused(&e))?;
                    done.push(Reconciled::Updated(format!("stream {}", s.name)));
                }
                existing
            }
            Err(e)
                if matches!(e.kind(), jetstream::context::GetStreamErrorKind::JetStream(j)
                    if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND) =>
            {
                let created = js.create_stream(&want).await.map_err(|e| refused(&e))?;
                done.push(Reconciled::Created(format!("stream {}", s.name)));
                created
            }
            Err(e) => return Err(refused(&e)),
        };
        for c in &s.consumers {
            let want = consumer_config(c);
            let what = format!("consumer `{}` on stream `{}`", c.durable_name, s.name);
            let refused = |e: &dyn std::fmt::Display| InfraError::JetStream {
                what: what.clone(),
                message: e.to_string(),
            };
            match stream
                .get_consumer::<consumer::pull::Config>(&c.durable_name)
                .await
            {
                Ok(mut existing) => {
                    let have = existing
                        .info()
                        .await
                        .map_err(|e| refused(&e))?
                        .config
                        .clone();
                    let same = have.filter_subject == want.filter_subject
                        && have.ack_policy == want.ack_policy
                        && have.deliver_policy == want.deliver_policy;
                    if same {
                        done.push(Reconciled::Unchanged(what.clone()));
                    } else {
                        stream
                            .create_consumer(want)
                            .await
                            .map_err(|e| refused(&e))?;
                        done.push(Reconciled::Updated(what.clone()));
                    }
                }
                Err(_) => {
                    stream
                        .create_consumer(want)
                        .await
                        .map_err(|e| refused(&e))?;
                    done.push(Reconciled::Created(what.clone()));
                }
            }
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

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
