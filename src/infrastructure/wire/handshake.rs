//! Opening the publish connection: TCP, the server's `INFO`, TLS when the
//! config, the URL or the server asks for it, then `CONNECT` with the
//! configured auth and a `PING` whose `PONG` (or `-ERR`) says whether the
//! server took it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::config::Secret;
use crate::config::relay::raw::{RawAuth, RawNats};
use crate::infrastructure::InfraError;
use crate::infrastructure::nats::{UrlAuth, server_addrs};

/// A byte stream to the server, plain or TLS.
pub(super) trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// How the connection authenticates. Secrets stay wrapped until they are
/// written into `CONNECT`.
pub(super) enum Auth {
    None,
    UserPassword(String, Secret),
    Token(Secret),
    Nkey(Secret),
    Jwt { jwt: Secret, seed: Secret },
}

/// The parts of the server's `INFO` the connection uses.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ServerInfo {
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub max_payload: usize,
    #[serde(default)]
    pub headers: bool,
    #[serde(default)]
    pub tls_required: bool,
    #[serde(default)]
    pub nonce: Option<String>,
    /// Other servers of the cluster (`host:port`), for reconnecting.
    #[serde(default)]
    pub connect_urls: Vec<String>,
}

/// One server to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Server {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

/// Everything needed to open the connection, resolved from the config once.
pub(super) struct Dial {
    pub servers: Vec<Server>,
    auth: Auth,
    tls: Option<Arc<rustls::ClientConfig>>,
    name: String,
    pub timeout: Duration,
}

/// An open, authenticated connection.
pub(super) struct Conn {
    pub io: BufReader<Box<dyn Io>>,
    pub info: ServerInfo,
}

fn config_error(message: impl Into<String>) -> InfraError {
    InfraError::Connect {
        target: "NATS".into(),
        message: message.into(),
    }
}

impl Dial {
    /// Resolve the servers, the auth (reading a credentials file) and the
    /// TLS settings of `cfg`.
    pub(super) fn new(cfg: &RawNats, name: &str) -> Result<Dial, InfraError> {
        let (addrs, url_auth) = server_addrs(&cfg.urls)?;
        if over_websocket(&addrs) {
            return Err(config_error(
                "the direct publish connection speaks NATS over TCP (nats:// or tls://), not over WebSocket",
            ));
        }
        let servers = addrs
            .iter()
            .map(|a| Server {
                host: a
                    .host()
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned(),
                port: a.port(),
                tls: a.tls_required(),
            })
            .collect();
        let auth = match (&cfg.auth, url_auth) {
            (RawAuth::None, Some(UrlAuth::UserPassword(u, p))) => {
                Auth::UserPassword(u, Secret::new(p))
            }
            (RawAuth::None, Some(UrlAuth::Token(t))) => Auth::Token(Secret::new(t)),
            (RawAuth::None, None) => Auth::None,
            (RawAuth::Token { token }, _) => Auth::Token(token.clone()),
            (RawAuth::UserPassword { user, password }, _) => {
                Auth::UserPassword(user.clone(), password.clone())
            }
            (RawAuth::Nkey { seed }, _) => {
                nkeys::KeyPair::from_seed(seed.expose())
                    .map_err(|_| config_error("nats.auth: the nkey seed is not valid"))?;
                Auth::Nkey(seed.clone())
            }
            (RawAuth::Credentials { path }, _) => read_credentials(path)?,
        };
        let tls = match &cfg.tls {
            Some(t) => Some(Arc::new(tls_config(
                t.ca.as_deref(),
                t.cert.as_deref().zip(t.key.as_deref()),
            )?)),
            None => None,
        };
        Ok(Dial {
            servers,
            auth,
            tls,
            name: name.to_owned(),
            timeout: cfg.connect_timeout.0,
        })
    }

    /// Open a connection to `server` within the connect timeout.
    pub(super) async fn open(&self, server: &Server) -> Result<Conn, InfraError> {
        let target = format!("{}:{}", server.host, server.port);
        match tokio::time::timeout(self.timeout, self.handshake(server)).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(message)) => Err(InfraError::Connect { target, message }),
            Err(_) => Err(InfraError::Connect {
                target,
                message: format!("no answer within {:?}", self.timeout),
            }),
        }
    }

    async fn handshake(&self, server: &Server) -> Result<Conn, String> {
        let tcp = TcpStream::connect((server.host.as_str(), server.port))
            .await
            .map_err(|e| e.to_string())?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let mut reader = BufReader::new(tcp);
        let mut line = String::new();
        reader
            .read_line(&mut line)
            .await
            .map_err(|e| e.to_string())?;
        let info = parse_info(&line)?;
        if !info.headers {
            return Err(format!(
                "server {} does not support headers (the relay needs them)",
                info.version
            ));
        }
        if !reader.buffer().is_empty() {
            // Only a refusal follows INFO unasked ("maximum connections
            // exceeded"); TLS cannot start over other buffered bytes.
            line.clear();
            reader
                .read_line(&mut line)
                .await
                .map_err(|e| e.to_string())?;
            return Err(match line.trim_end().strip_prefix("-ERR") {
                Some(e) => format!("the server refused the connection:{e}"),
                None => "the server sent more than INFO before CONNECT".into(),
            });
        }
        let tcp = reader.into_inner();
        let io: Box<dyn Io> = if server.tls || self.tls.is_some() || info.tls_required {
            let config = match &self.tls {
                Some(c) => c.clone(),
                None => Arc::new(tls_config(None, None).map_err(|e| e.to_string())?),
            };
            let name = rustls::pki_types::ServerName::try_from(server.host.clone())
                .map_err(|e| format!("TLS server name {}: {e}", server.host))?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS: {e}"))?;
            Box::new(tls)
        } else {
            Box::new(tcp)
        };
        let mut reader = BufReader::new(io);
        let connect = self.connect_json(&info)?;
        let mut hello = Vec::with_capacity(connect.len() + 16);
        hello.extend_from_slice(b"CONNECT ");
        hello.extend_from_slice(connect.as_bytes());
        hello.extend_from_slice(b"\r\nPING\r\n");
        reader
            .get_mut()
            .write_all(&hello)
            .await
            .map_err(|e| e.to_string())?;
        loop {
            line.clear();
            let n = reader
                .read_line(&mut line)
                .await
                .map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("the server closed the connection after CONNECT".into());
            }
            let l = line.trim_end();
            if l == "PONG" {
                break;
            } else if let Some(e) = l.strip_prefix("-ERR") {
                return Err(format!("the server refused the connection:{e}"));
            } else if l == "PING" {
                reader
                    .get_mut()
                    .write_all(b"PONG\r\n")
                    .await
                    .map_err(|e| e.to_string())?;
            }
            // +OK and a later INFO need nothing.
        }
        // Anything the server sent past the PONG (an updated INFO) stays in
        // the reader's buffer for the session to read.
        Ok(Conn { io: reader, info })
    }

    /// The `CONNECT` options: no echo, no verbose acks, headers on, and the
    /// auth. It holds secrets: it is written to the socket and nowhere else.
    fn connect_json(&self, info: &ServerInfo) -> Result<String, String> {
        let mut o = serde_json::json!({
            "verbose": false,
            "pedantic": false,
            "lang": "rust-mdrelay",
            "version": env!("CARGO_PKG_VERSION"),
            "protocol": 1,
            "headers": true,
            "no_responders": false,
            "echo": false,
            "name": self.name,
        });
        let sign = |seed: &Secret| -> Result<(String, String), String> {
            let kp = nkeys::KeyPair::from_seed(seed.expose())
                .map_err(|_| "the nkey seed is not valid".to_string())?;
            let nonce = info.nonce.as_deref().unwrap_or_default();
            let sig = kp
                .sign(nonce.as_bytes())
                .map_err(|_| "signing the server's nonce failed".to_string())?;
            Ok((
                kp.public_key(),
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig),
            ))
        };
        match &self.auth {
            Auth::None => {}
            Auth::UserPassword(user, pass) => {
                o["user"] = user.as_str().into();
                o["pass"] = pass.expose().into();
            }
            Auth::Token(t) => o["auth_token"] = t.expose().into(),
            Auth::Nkey(seed) => {
                let (public, sig) = sign(seed)?;
                o["nkey"] = public.into();
                o["sig"] = sig.into();
            }
            Auth::Jwt { jwt, seed } => {
                let (_, sig) = sign(seed)?;
                o["jwt"] = jwt.expose().into();
                o["sig"] = sig.into();
            }
        }
        Ok(o.to_string())
    }
}

/// Whether any of the servers is reached over WebSocket (`ws://`,
/// `wss://`), which the direct connection does not speak.
pub(super) fn over_websocket(addrs: &[async_nats::ServerAddr]) -> bool {
    addrs.iter().any(async_nats::ServerAddr::is_websocket)
}

/// Parse an `INFO {json}` line.
pub(super) fn parse_info(line: &str) -> Result<ServerInfo, String> {
    let json = line
        .trim_end()
        .strip_prefix("INFO ")
        .ok_or_else(|| "the server did not start with INFO".to_string())?;
    serde_json::from_str(json).map_err(|e| format!("the server's INFO: {e}"))
}

/// A `.creds` file: the user JWT and the NKey seed, each the first line
/// after its `-----BEGIN ...-----` marker.
fn read_credentials(path: &Path) -> Result<Auth, InfraError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| config_error(format!("credentials file {}: {e}", path.display())))?;
    parse_credentials(&text).ok_or_else(|| {
        config_error(format!(
            "credentials file {}: no user JWT and NKey seed in it",
            path.display()
        ))
    })
}

fn parse_credentials(text: &str) -> Option<Auth> {
    let after = |marker: &str| {
        let mut lines = text.lines();
        lines.find(|l| l.contains("BEGIN") && l.contains(marker))?;
        lines
            .map(str::trim)
            .find(|l| !l.is_empty())
            .filter(|l| !l.starts_with("---"))
            .map(Secret::new)
    };
    Some(Auth::Jwt {
        jwt: after("JWT")?,
        seed: after("SEED")?,
    })
}

/// A rustls client config: the web PKI roots plus `ca`, and a client
/// certificate when one is configured.
fn tls_config(
    ca: Option<&Path>,
    client: Option<(&Path, &Path)>,
) -> Result<rustls::ClientConfig, InfraError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    crate::infrastructure::ws::install_crypto_provider();
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(ca) = ca {
        for cert in CertificateDer::pem_file_iter(ca)
            .map_err(|e| config_error(format!("nats.tls.ca {}: {e}", ca.display())))?
        {
            let cert =
                cert.map_err(|e| config_error(format!("nats.tls.ca {}: {e}", ca.display())))?;
            roots
                .add(cert)
                .map_err(|e| config_error(format!("nats.tls.ca {}: {e}", ca.display())))?;
        }
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    match client {
        None => Ok(builder.with_no_client_auth()),
        Some((cert, key)) => {
            let certs = CertificateDer::pem_file_iter(cert)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(|e| config_error(format!("nats.tls.cert {}: {e}", cert.display())))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| config_error(format!("nats.tls.key {}: {e}", key.display())))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| config_error(format!("nats.tls client certificate: {e}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_lines_parse_and_others_are_refused() {
        let i = parse_info(
            "INFO {\"server_id\":\"X\",\"version\":\"2.15.1\",\"max_payload\":1048576,\
             \"headers\":true,\"nonce\":\"abc\",\"connect_urls\":[\"10.0.0.2:4222\"]}\r\n",
        )
        .unwrap();
        assert_eq!(i.version, "2.15.1");
        assert_eq!(i.max_payload, 1_048_576);
        assert!(i.headers && !i.tls_required);
        assert_eq!(i.nonce.as_deref(), Some("abc"));
        assert_eq!(i.connect_urls, ["10.0.0.2:4222"]);
        assert!(parse_info("-ERR 'nope'\r\n").is_err());
    }

    #[test]
    fn a_credentials_file_gives_its_jwt_and_seed() {
        let text = "-----BEGIN NATS USER JWT-----\neyJhbGc.x.y\n------END NATS USER JWT------\n\n\
                    ************************* IMPORTANT *************************\n\
                    NKEY Seed printed below can be used to sign and prove identity.\n\n\
                    -----BEGIN USER NKEY SEED-----\nSUAEXAMPLE\n------END USER NKEY SEED------\n";
        let Some(Auth::Jwt { jwt, seed }) = parse_credentials(text) else {
            panic!("not parsed");
        };
        assert_eq!(jwt.expose(), "eyJhbGc.x.y");
        assert_eq!(seed.expose(), "SUAEXAMPLE");
        assert!(parse_credentials("-----BEGIN NATS USER JWT-----\n------END\n").is_none());
    }
}
