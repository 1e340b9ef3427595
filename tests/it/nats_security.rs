//! NATS security against real nats-servers configured for each method:
//! token, user/password, NKey, credentials file and TLS; and secrets never
//! showing in logs, `/health` or `Debug` output.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;
use mdrelay::tools::replay::ReplaySpec;

const TOKEN: &str = "tok-7f3a9c1e55d2";
const PASSWORD: &str = "pw-b81c44e0a9f7";

/// Trades in the okx trades fixture.
fn okx_trades() -> u64 {
    std::fs::read_to_string(root().join("fixtures/okx/trades.expected.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"data_type\":\"trade\""))
        .count() as u64
}

/// Run the relay with `nats_toml` (a `[nats]` table) against a fake OKX and
/// check every trade lands in JetStream, read back with `client`: once with
/// the client writer, then, into a fresh stream, with the direct publish
/// connection (`writer = "direct"`), which authenticates on its own.
async fn relay_publishes_through(nats_toml: &str, client: async_nats::Client) {
    let js = async_nats::jetstream::new(client);
    for writer in ["client", "direct"] {
        let _ = js.delete_stream("MARKET").await;
        publish_once(
            &format!("{nats_toml}\n[nats.publish]\nwriter = \"{writer}\""),
            &js,
        )
        .await;
    }
}

async fn publish_once(nats_toml: &str, js: &async_nats::jetstream::Context) {
    let replay = Replay::start(
        ReplaySpec {
            frames: frames(&["fixtures/okx/trades.jsonl"]),
            ..Default::default()
        },
        None,
    )
    .await;
    let files = ["fixtures/okx/trades.jsonl"];
    let config = format!(
        "{nats_toml}\n[[nats.streams]]\nname = \"MARKET\"\nsubjects = [\"market.>\"]\n\
         [[venues]]\nid = \"okx\"\nurl = \"{}\"\n{}",
        replay.url(),
        subs_for("okx", &files, "\"trade\"")
    );
    let statuses = instruments("okx", None, &files).len() as u64;
    let relay = relay(&config).await;
    let want = okx_trades();
    let mut got = 0;
    for _ in 0..100 {
        if let Ok(mut s) = js.get_stream("MARKET").await
            && let Ok(info) = s.info().await
        {
            got = info.state.messages;
            if got >= want + statuses {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every trade plus a `connected` status event per instrument.
    assert_eq!(got, want + statuses, "events stored through {nats_toml}");
    let direct = metric(
        &relay.metrics.encode(),
        "mdrelay_publish_direct_writes_total",
        "",
    );
    if nats_toml.contains("writer = \"direct\"") {
        assert_eq!(
            direct,
            (want + statuses) as f64,
            "every event written on the direct connection, which authenticated on its own"
        );
    } else {
        assert_eq!(direct, 0.0);
    }
    relay.shutdown().await;
    replay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_auth() {
    let nats = Nats::start_with(&["--auth", TOKEN]);
    assert!(
        async_nats::connect(nats.url()).await.is_err(),
        "the server requires the token"
    );
    let client = async_nats::ConnectOptions::with_token(TOKEN.into())
        .connect(nats.url())
        .await
        .unwrap();
    let toml = format!(
        "[nats]\nurls = [\"{}\"]\nauth = {{ type = \"token\", token = \"{TOKEN}\" }}",
        nats.url()
    );
    relay_publishes_through(&toml, client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_password_auth() {
    let nats = Nats::start_with(&["--user", "relay", "--pass", PASSWORD]);
    let client =
        async_nats::ConnectOptions::with_user_and_password("relay".into(), PASSWORD.into())
            .connect(nats.url())
            .await
            .unwrap();
    let toml = format!(
        "[nats]\nurls = [\"{}\"]\nauth = {{ type = \"user_password\", user = \"relay\", password = \"{PASSWORD}\" }}",
        nats.url()
    );
    relay_publishes_through(&toml, client).await;
}

/// A server config file granting `users` (nkey public keys).
fn nkey_server_config(dir: &Path, users: &[String]) -> String {
    let list: Vec<String> = users
        .iter()
        .map(|u| format!("{{ nkey: \"{u}\" }}"))
        .collect();
    let path = dir.join("nkeys.conf");
    std::fs::write(
        &path,
        format!("authorization {{ users = [ {} ] }}\n", list.join(", ")),
    )
    .unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nkey_auth() {
    let dir = tempfile::tempdir().unwrap();
    let relay_key = nkeys::KeyPair::new_user();
    let reader_key = nkeys::KeyPair::new_user();
    let conf = nkey_server_config(
        dir.path(),
        &[relay_key.public_key(), reader_key.public_key()],
    );
    let nats = Nats::start_with(&["-c", &conf]);
    let client = async_nats::ConnectOptions::with_nkey(reader_key.seed().unwrap())
        .connect(nats.url())
        .await
        .unwrap();
    let toml = format!(
        "[nats]\nurls = [\"{}\"]\nauth = {{ type = \"nkey\", seed = \"{}\" }}",
        nats.url(),
        relay_key.seed().unwrap()
    );
    relay_publishes_through(&toml, client).await;
}

/// Base64url without padding (JWT encoding).
fn b64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// A NATS JWT (`ed25519-nkey`) with `claims`, signed by `issuer`.
fn jwt(issuer: &nkeys::KeyPair, claims: serde_json::Value) -> String {
    let header = b64(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let body = b64(claims.to_string().as_bytes());
    let signing_input = format!("{header}.{body}");
    let sig = issuer.sign(signing_input.as_bytes()).unwrap();
    format!("{signing_input}.{}", b64(&sig))
}

/// Operator → account (with JetStream) → user, as `nsc` would make them:
/// returns the server config and a `.creds` file for a new user.
fn operator_setup(dir: &Path) -> (String, impl Fn(&str) -> String) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let operator = nkeys::KeyPair::new_operator();
    let account = nkeys::KeyPair::new_account();
    let operator_jwt = jwt(
        &operator,
        serde_json::json!({"jti": format!("op{now}"), "iat": now, "iss": operator.public_key(),
            "sub": operator.public_key(), "name": "test-operator",
            "nats": {"type": "operator", "version": 2}}),
    );
    let account_jwt = jwt(
        &operator,
        serde_json::json!({"jti": format!("acc{now}"), "iat": now, "iss": operator.public_key(),
            "sub": account.public_key(), "name": "market",
            "nats": {"type": "account", "version": 2, "limits": {
                "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
                "wildcards": true, "conn": -1, "leaf": -1,
                "mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1}}}),
    );
    // Operator mode needs a system account.
    let system = nkeys::KeyPair::new_account();
    let system_jwt = jwt(
        &operator,
        serde_json::json!({"jti": format!("sys{now}"), "iat": now, "iss": operator.public_key(),
            "sub": system.public_key(), "name": "SYS",
            "nats": {"type": "account", "version": 2}}),
    );
    let conf = dir.join("operator.conf");
    std::fs::write(
        &conf,
        format!(
            "operator: \"{operator_jwt}\"\nsystem_account: \"{sys}\"\nresolver: MEMORY\n\
             resolver_preload: {{\n  {acc}: \"{account_jwt}\"\n  {sys}: \"{system_jwt}\"\n}}\n",
            acc = account.public_key(),
            sys = system.public_key(),
        ),
    )
    .unwrap();
    let dir = dir.to_path_buf();
    let make_creds = move |name: &str| {
        let user = nkeys::KeyPair::new_user();
        let user_jwt = jwt(
            &account,
            serde_json::json!({"jti": format!("{name}{now}"), "iat": now,
                "iss": account.public_key(), "sub": user.public_key(), "name": name,
                "nats": {"type": "user", "version": 2, "pub": {}, "sub": {},
                    "subs": -1, "data": -1, "payload": -1}}),
        );
        let creds = format!(
            "-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n\
             -----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n",
            user.seed().unwrap()
        );
        let path = dir.join(format!("{name}.creds"));
        std::fs::write(&path, creds).unwrap();
        path.display().to_string()
    };
    (conf.display().to_string(), make_creds)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_file_auth() {
    let dir = tempfile::tempdir().unwrap();
    let (conf, creds) = operator_setup(dir.path());
    let nats = Nats::start_with(&["-c", &conf]);
    assert!(
        async_nats::connect(nats.url()).await.is_err(),
        "operator mode refuses anonymous clients"
    );
    let client = async_nats::ConnectOptions::with_credentials_file(creds("reader"))
        .await
        .unwrap()
        .connect(nats.url())
        .await
        .unwrap();
    let toml = format!(
        "[nats]\nurls = [\"{}\"]\nauth = {{ type = \"credentials\", path = \"{}\" }}",
        nats.url(),
        creds("relay")
    );
    relay_publishes_through(&toml, client).await;
}

/// A CA and a server certificate for 127.0.0.1, made with openssl.
fn certificates(dir: &Path) -> (String, String, String) {
    let p = |f: &str| dir.join(f).display().to_string();
    let run = |args: &[&str]| {
        let ok = Command::new("openssl")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl must be on PATH")
            .success();
        assert!(ok, "openssl {args:?}");
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=mdrelay test CA",
        "-keyout",
        &p("ca.key"),
        "-out",
        &p("ca.pem"),
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        &p("server.key"),
        "-out",
        &p("server.csr"),
    ]);
    std::fs::write(dir.join("san.ext"), "subjectAltName = IP:127.0.0.1\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        &p("server.csr"),
        "-CA",
        &p("ca.pem"),
        "-CAkey",
        &p("ca.key"),
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        &p("san.ext"),
        "-out",
        &p("server.pem"),
    ]);
    (p("ca.pem"), p("server.pem"), p("server.key"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(dir.path());
    let nats = Nats::start_with(&["--tls", "--tlscert", &cert, "--tlskey", &key]);
    let url = format!("tls://127.0.0.1:{}", nats.port);
    let client = async_nats::ConnectOptions::new()
        .require_tls(true)
        .add_root_certificates(ca.clone().into())
        .connect(&url)
        .await
        .unwrap();
    let toml = format!("[nats]\nurls = [\"{url}\"]\ntls = {{ ca = \"{ca}\" }}");
    relay_publishes_through(&toml, client).await;
}

/// Run the real binary with secrets in its config, against servers that
/// refuse them, and read everything it says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_appear_in_logs_health_or_debug() {
    let nats = Nats::start_with(&["--user", "relay", "--pass", "the-right-one"]);
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    let config = dir.path().join("relay.toml");
    std::fs::write(
        &config,
        format!(
            "venues_dir = \"{venues}\"\n[http]\nlisten = \"127.0.0.1:{http}\"\n\
             [nats]\nurls = [\"nats://relay:{PASSWORD}@127.0.0.1:{port}\", \"nats://127.0.0.1:{port}\"]\n\
             connect_timeout = \"1s\"\n\
             auth = {{ type = \"user_password\", user = \"relay\", password = \"{PASSWORD}\" }}\n\
             [[venues]]\nid = \"okx\"\nurl = \"ws://127.0.0.1:1/?token={TOKEN}\"\n\
             [[venues.subscriptions]]\ninstrument = \"BTC-USDT\"\ntypes = [\"trade\"]\n",
            venues = root().join("venues").display(),
            port = nats.port,
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_mdrelay"))
        .args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Let it fail to authenticate a few times, then ask for /health.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let health = tokio::time::timeout(
        Duration::from_secs(2),
        http_get(format!("127.0.0.1:{http}").parse().unwrap(), "/health"),
    )
    .await
    .map(|(_, body)| body)
    .unwrap_or_default();
    let _ = Command::new("kill").arg(pid.to_string()).status();
    let out = child.wait_with_output().unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "{} bytes of log, {} bytes of /health",
        log.len(),
        health.len()
    );
    assert!(
        log.to_lowercase().contains("nats"),
        "the refused connection is logged:\n{log}"
    );
    for secret in [PASSWORD, TOKEN] {
        assert!(!log.contains(secret), "secret in the log:\n{log}");
        assert!(!health.contains(secret), "secret in /health: {health}");
    }
    // Debug output of the compiled configuration.
    let cfg = mdrelay::config::relay::load_relay(&config).unwrap();
    let debug = format!("{cfg:?}");
    for secret in [PASSWORD, TOKEN] {
        assert!(!debug.contains(secret), "secret in Debug output: {debug}");
    }
}
