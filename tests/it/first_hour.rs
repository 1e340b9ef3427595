//! The newcomer's first hour (issue 15), as a newcomer does it: start
//! `scripts/demo.sh` (on free ports, with the binary this test run built and
//! the suite's nats-server), watch events of every subscribed type reach
//! JetStream with no book checksum mismatch over several replayed sessions,
//! then SIGTERM it: it exits 0, the relay drained before nats-server
//! stopped, and nothing it started is left running.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// How long the demo runs before the SIGTERM: at 40 frames/s a recorded
/// session (192 frames) lasts ~5 s plus a ~0.5 s reconnect, so 20 s covers
/// three sessions or more; the test insists on at least two.
const WATCH: Duration = Duration::from_secs(20);

#[test]
fn the_demo_publishes_coherent_sessions_and_stops_in_order() {
    let state = tempfile::tempdir().unwrap();
    let (nats_port, http_port, venue_port) = (free_port(), free_port(), free_port());
    let log_path = state.path().join("demo.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut demo = StopOnDrop(
        Command::new("bash")
            .arg(root().join("scripts/demo.sh"))
            .env("MDRELAY_BIN", env!("CARGO_BIN_EXE_mdrelay"))
            .env("MDRELAY_NATS_SERVER", nats_server())
            .env("MDRELAY_STATE", state.path())
            .env("NATS_URL", format!("nats://127.0.0.1:{nats_port}"))
            .env("MDRELAY_HTTP", format!("127.0.0.1:{http_port}"))
            .env("MDRELAY_DEMO_LISTEN", format!("127.0.0.1:{venue_port}"))
            .env("MDRELAY_DEMO_RATE", "40")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let started = Instant::now();

    // Events of every subscribed type reach JetStream, session after session.
    let (counts, grew) = runtime.block_on(async {
        let client = connect_when_up(nats_port, &log_path).await;
        let js = async_nats::jetstream::new(client);
        let mut after_first = None;
        while started.elapsed() < WATCH {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let sessions = read(&log_path)
                .matches("end of the recorded session")
                .count();
            if sessions >= 1 && after_first.is_none() {
                after_first = Some(stored(&js).await);
            }
        }
        let end = stored(&js).await;
        let counts = per_subject(&js).await;
        (counts, after_first.map(|first| (first, end)))
    });
    let text = read(&log_path);
    let sessions = text.matches("end of the recorded session").count();
    assert!(
        sessions >= 2,
        "at least two replayed sessions in {WATCH:?}, got {sessions}:\n{text}"
    );
    for t in ["trade", "ticker", "l2_orderbook"] {
        let subject = format!("market.okx.btc-usdt.{t}");
        assert!(
            counts.iter().any(|(s, n)| *s == subject && *n > 0),
            "no {subject} stored: {counts:?}"
        );
    }
    assert!(
        counts
            .iter()
            .all(|(s, _)| s.starts_with("market.okx.btc-usdt.")),
        "only the subscribed instrument is published: {counts:?}"
    );
    let (first, end) = grew.expect("a first session ended");
    assert!(
        end > first + 100,
        "each session is stored anew (stream {first} after the first session, {end} at the end)"
    );
    assert!(
        !text.contains("checksum mismatch") && !text.contains("book gap"),
        "the replayed book stays consistent:\n{text}"
    );

    // SIGTERM: a clean, ordered stop.
    let pid = demo.0.id() as i32;
    assert_eq!(send_signal(pid, "TERM"), 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = demo.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "demo.sh did not stop in 30 s");
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = read(&log_path);
    assert_eq!(status.code(), Some(0), "exit code of a clean stop:\n{text}");
    let bye = text
        .find("relay stopped")
        .expect("the relay logged its stop");
    let nats_stop = text
        .find("stopping nats-server")
        .expect("run.sh stopped the nats-server it started");
    let venue_stop = text
        .find("stopping the fake venue")
        .expect("demo.sh stopped the fake venue");
    assert!(
        bye < nats_stop && bye < venue_stop,
        "the relay drains before NATS and the venue stop:\n{text}"
    );
    assert!(
        text.contains("abandoned=0"),
        "nothing left unacknowledged:\n{text}"
    );
    for bad in ["IO error", "NATS disconnected", "\x1b["] {
        assert!(!text.contains(bad), "`{bad}` in the log:\n{text}");
    }
    assert!(
        text.contains("run.sh: starting nats-server")
            && text.contains(&format!("NATS connected url=nats://127.0.0.1:{nats_port}")),
        "the scripts say they started a server, the relay names it:\n{text}"
    );
    let nats_log = read(&state.path().join("nats.log"));
    assert!(
        nats_log.contains("Server Exiting"),
        "nats-server shut down cleanly:\n{nats_log}"
    );
    // Nothing the demo started is left: every process of it inherited
    // MDRELAY_STATE, unique to this test.
    let left = processes_with_env(&format!("MDRELAY_STATE={}", state.path().display()));
    assert!(left.is_empty(), "processes left behind: {left:?}");
    for port in [nats_port, http_port, venue_port] {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "port {port} still open"
        );
    }
}

/// A script that is stopped as a user would (SIGTERM, then waiting) if
/// the test fails before it stopped it, so nothing it started is left.
struct StopOnDrop(std::process::Child);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if !matches!(self.0.try_wait(), Ok(None)) {
            return;
        }
        send_signal(self.0.id() as i32, "TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        while matches!(self.0.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// Connect once run.sh's nats-server answers.
async fn connect_when_up(port: u16, log: &Path) -> async_nats::Client {
    let start = Instant::now();
    loop {
        if let Ok(c) = async_nats::connect(format!("nats://127.0.0.1:{port}")).await {
            return c;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the demo's NATS did not come up:\n{}",
            read(log)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Messages stored in MARKET (0 before the relay created it).
async fn stored(js: &async_nats::jetstream::Context) -> u64 {
    match js.get_stream("MARKET").await {
        Ok(mut s) => s.info().await.map(|i| i.state.messages).unwrap_or(0),
        Err(_) => 0,
    }
}

/// Stored messages per subject.
async fn per_subject(js: &async_nats::jetstream::Context) -> Vec<(String, u64)> {
    use futures_util::TryStreamExt;
    let stream = js.get_stream("MARKET").await.unwrap();
    let mut out: Vec<(String, u64)> = stream
        .info_with_subjects("market.>")
        .await
        .unwrap()
        .try_collect::<std::collections::HashMap<_, _>>()
        .await
        .unwrap()
        .into_iter()
        .map(|(s, n)| (s, n as u64))
        .collect();
    out.sort();
    out
}

/// Send a signal with the `kill` command (no libc binding in the tests).
fn send_signal(pid: i32, signal: &str) -> i32 {
    Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap()
        .code()
        .unwrap_or(-1)
}

/// Pids (and command lines) of processes whose environment holds `entry`.
fn processes_with_env(entry: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(env) = std::fs::read(e.path().join("environ")) else {
            continue;
        };
        if env.split(|b| *b == 0).any(|v| v == entry.as_bytes()) {
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            found.push(format!(
                "{name}: {}",
                String::from_utf8_lossy(&cmd).replace('\0', " ")
            ));
        }
    }
    found
}

/// `scripts/run.sh` with a NATS server already at `$NATS_URL`: it says it
/// reuses it (and that the relay creates or updates the streams there),
/// starts no server of its own, the relay logs the server it connected to,
/// and a SIGTERM, even one that arrives while the relay is starting, gives
/// exit code 0 with the server left running.
#[test]
fn run_sh_reuses_a_running_server_and_says_so() {
    let nats = Nats::start();
    let state = tempfile::tempdir().unwrap();
    let log_path = state.path().join("run.log");
    let log = std::fs::File::create(&log_path).unwrap();
    // The venue is a local port where nothing listens: no traffic leaves.
    let mut run = StopOnDrop(
        Command::new("bash")
            .arg(root().join("scripts/run.sh"))
            .arg("config/demo.toml")
            .env("MDRELAY_BIN", env!("CARGO_BIN_EXE_mdrelay"))
            .env("MDRELAY_STATE", state.path())
            .env("NATS_URL", nats.url())
            .env("MDRELAY_HTTP", format!("127.0.0.1:{}", free_port()))
            .env("MDRELAY_DEMO_LISTEN", format!("127.0.0.1:{}", free_port()))
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    // SIGTERM while the relay is still starting: it must stop cleanly, not
    // die of the signal (exit 143).
    let start = Instant::now();
    while !read(&log_path).contains("connecting to NATS") {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the relay did not start:\n{}",
            read(&log_path)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(send_signal(run.0.id() as i32, "TERM"), 0);
    let status = run.0.wait().unwrap();
    let text = read(&log_path);
    assert_eq!(status.code(), Some(0), "{text}");
    assert!(
        text.contains(&format!(
            "reusing the NATS server already at {}",
            nats.url()
        )) && text.contains("creates or updates the streams"),
        "{text}"
    );
    assert!(!text.contains("starting nats-server"), "{text}");
    assert!(
        text.contains(&format!("NATS connected url={}", nats.url())),
        "the relay names its server:\n{text}"
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", nats.port)).is_ok(),
        "a reused server is left running"
    );
    assert!(processes_with_env(&format!("MDRELAY_STATE={}", state.path().display())).is_empty());
}
