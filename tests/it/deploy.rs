//! `deploy/`, the Dockerfile and compose.yaml, checked with the tools that
//! run them where they are installed: the alert rules and their unit tests
//! with `promtool` (Debian package `prometheus`), the systemd unit with
//! `systemd-analyze verify` (package `systemd`), the dashboard's queries
//! with `promtool` too. Every metric name they use must be in the metric
//! contract below. A missing tool fails the test with how to install it
//! (`.ci/run` installs both) unless `MDRELAY_SKIP_DEPLOY_TOOLS=1`.
//!
//! No container engine runs on the development machine, so the Dockerfile
//! and compose.yaml get a structural check here; the image build itself is
//! the ignored test `dockerfile_builds` (needs a Docker daemon).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// Every metric the relay exposes at `/metrics` (the metric contract), as
/// Prometheus names. Histograms are in [`HISTOGRAMS`].
const CONTRACT_METRICS: &[&str] = &[
    "mdrelay_frames_received_total",
    "mdrelay_bytes_received_total",
    "mdrelay_mapping_failures_total",
    "mdrelay_unrouted_frames_total",
    "mdrelay_control_frames_total",
    "mdrelay_events_mapped_total",
    "mdrelay_events_published_total",
    "mdrelay_events_duplicate_total",
    "mdrelay_publish_retries_total",
    "mdrelay_publish_failures_total",
    "mdrelay_queue_drops_total",
    "mdrelay_publish_in_flight",
    "mdrelay_queue_depth",
    "mdrelay_reconnects_total",
    "mdrelay_handovers_total",
    "mdrelay_connections",
    "mdrelay_status_events_total",
    "mdrelay_gaps_total",
    "mdrelay_resyncs_total",
    "mdrelay_checksum_mismatches_total",
    "mdrelay_circuit_state",
    "mdrelay_subscriptions_rejected_total",
    "mdrelay_reloads_total",
    "mdrelay_reload_failures_total",
    "mdrelay_events_dropped_total",
    "mdrelay_nats_connected",
    "mdrelay_build_info",
    "mdrelay_instruments_stale",
    "mdrelay_stale_total",
    "mdrelay_pong_timeouts_total",
    "mdrelay_rest_requests_total",
    "mdrelay_interpreter_fallbacks_total",
    "process_resident_memory_bytes",
    "process_cpu_seconds_total",
    "process_open_fds",
    "process_start_time_seconds",
];

/// The contract's histograms: queried as `<name>_bucket`, `_sum`, `_count`.
const HISTOGRAMS: &[&str] = &["mdrelay_ack_latency_seconds", "mdrelay_venue_lag_seconds"];

/// Contract metrics the dashboard leaves out on purpose.
const NOT_ON_DASHBOARD: &[&str] = &[
    // Drops by cause (`mdrelay_events_dropped_total{cause="queue_full"}`) show the same.
    "mdrelay_queue_drops_total",
];

/// Labels a query may group by: the contract's labels, the histogram's
/// `le`, and the labels Prometheus adds.
const LABELS: &[&str] = &[
    "venue",
    "data_type",
    "kind",
    "cause",
    "outcome",
    "version",
    "le",
    "instance",
    "job",
];

/// The dashboard rows the operations issue asks for.
const ROWS: &[&str] = &[
    "Throughput",
    "Lag",
    "Books and gaps",
    "Connections and reconnects",
    "Publisher",
    "Process",
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

/// The tool on PATH; `None` (test skipped) only with
/// `MDRELAY_SKIP_DEPLOY_TOOLS=1`, else the test fails with how to install it.
fn tool(name: &str, package: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() && std::env::var("MDRELAY_SKIP_DEPLOY_TOOLS").as_deref() == Ok("1") {
        eprintln!("SKIPPED: `{name}` is not installed (MDRELAY_SKIP_DEPLOY_TOOLS=1)");
        return None;
    }
    Some(found.unwrap_or_else(|| {
        panic!(
            "`{name}` is not installed: `apt-get install -y {package}` (Debian/Ubuntu; `.ci/run` \
             does it), or set MDRELAY_SKIP_DEPLOY_TOOLS=1 to skip the deploy checks"
        )
    }))
}

fn run(tool: &Path, args: &[&str], cwd: &Path) -> Output {
    Command::new(tool)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", tool.display()))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn assert_ok(what: &str, out: &Output) {
    assert!(out.status.success(), "{what} failed:\n{}", text(out));
}

/// Every `mdrelay_*` / `process_*` name in `text` (a name starts where the
/// previous character cannot belong to one).
fn metric_names(text: &str) -> BTreeSet<String> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut names = BTreeSet::new();
    for prefix in ["mdrelay_", "process_"] {
        for (at, _) in text.match_indices(prefix) {
            if text[..at].chars().next_back().is_some_and(is_name) {
                continue;
            }
            let name: String = text[at..].chars().take_while(|&c| is_name(c)).collect();
            names.insert(name);
        }
    }
    names
}

/// `name` is in the contract (a histogram by its family name, or with its
/// `_bucket`, `_sum` or `_count` suffix).
fn in_contract(name: &str) -> bool {
    CONTRACT_METRICS.contains(&name)
        || HISTOGRAMS.iter().any(|h| {
            name.strip_prefix(h)
                .is_some_and(|rest| ["", "_bucket", "_sum", "_count"].contains(&rest))
        })
}

/// The labels of every `by (...)` and `without (...)` clause in `expr`.
fn grouping_labels(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    for kw in ["by (", "by(", "without (", "without("] {
        for (at, _) in expr.match_indices(kw) {
            let rest = &expr[at + kw.len()..];
            let inner = &rest[..rest.find(')').unwrap_or(rest.len())];
            out.extend(inner.split(',').map(|l| l.trim().to_string()));
        }
    }
    out
}

struct Dashboard {
    json: serde_json::Value,
}

impl Dashboard {
    fn load() -> Dashboard {
        let text = read("deploy/grafana/dashboards/mdrelay.json");
        let json = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("deploy/grafana/dashboards/mdrelay.json: {e}"));
        Dashboard { json }
    }

    fn panels(&self) -> &[serde_json::Value] {
        self.json["panels"]
            .as_array()
            .expect("dashboard has panels")
    }

    /// (panel title, query) of every panel target.
    fn queries(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for p in self.panels() {
            for t in p["targets"].as_array().into_iter().flatten() {
                let expr = t["expr"].as_str().expect("every target has an expr");
                out.push((p["title"].as_str().unwrap_or("").to_string(), expr.into()));
            }
        }
        out
    }
}

/// A query with the dashboard's variables replaced, as Prometheus sees it.
fn expand(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$venue", ".*")
        .replace("$instance", ".*")
}

#[test]
fn alert_rules_and_prometheus_config_pass_promtool_check() {
    let Some(promtool) = tool("promtool", "prometheus") else {
        return;
    };
    let dir = root().join("deploy/prometheus");
    let out = run(&promtool, &["check", "rules", "alerts.yml"], &dir);
    assert_ok("promtool check rules deploy/prometheus/alerts.yml", &out);
    // Also loads the rule file the way the compose Prometheus does.
    let out = run(&promtool, &["check", "config", "prometheus.yml"], &dir);
    assert_ok(
        "promtool check config deploy/prometheus/prometheus.yml",
        &out,
    );
}

#[test]
fn alert_rule_unit_tests_pass() {
    let Some(promtool) = tool("promtool", "prometheus") else {
        return;
    };
    let dir = root().join("deploy/prometheus");
    let out = run(&promtool, &["test", "rules", "alerts_test.yml"], &dir);
    assert_ok(
        "promtool test rules deploy/prometheus/alerts_test.yml",
        &out,
    );
    let test = read("deploy/prometheus/alerts_test.yml");
    for alert in ["MdrelayInstrumentStale", "MdrelayNatsDown"] {
        assert!(
            test.contains(&format!("alertname: {alert}")),
            "alerts_test.yml no longer tests {alert}"
        );
    }
}

/// The unit tests can fail: a stale rule that fires one minute after the
/// instrument goes stale instead of five breaks them.
#[test]
fn alert_rule_unit_tests_catch_a_broken_stale_rule() {
    let Some(promtool) = tool("promtool", "prometheus") else {
        return;
    };
    let rules = read("deploy/prometheus/alerts.yml");
    let stale = rules
        .find("alert: MdrelayInstrumentStale")
        .expect("the stale alert");
    let at = stale
        + rules[stale..]
            .find("for: 5m")
            .expect("stale alert `for: 5m`");
    let broken = format!("{}for: 1m{}", &rules[..at], &rules[at + "for: 5m".len()..]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("alerts.yml"), broken).unwrap();
    std::fs::copy(
        root().join("deploy/prometheus/alerts_test.yml"),
        dir.path().join("alerts_test.yml"),
    )
    .unwrap();
    let out = run(&promtool, &["test", "rules", "alerts_test.yml"], dir.path());
    assert!(
        !out.status.success(),
        "a broken stale rule passed the unit tests:\n{}",
        text(&out)
    );
    assert!(
        text(&out).contains("MdrelayInstrumentStale"),
        "the failure names the stale alert:\n{}",
        text(&out)
    );
}

#[test]
fn dashboard_has_the_rows_and_sound_panels() {
    let d = Dashboard::load();
    let rows: Vec<&str> = d
        .panels()
        .iter()
        .filter(|p| p["type"] == "row")
        .filter_map(|p| p["title"].as_str())
        .collect();
    for row in ROWS {
        assert!(
            rows.contains(row),
            "dashboard row `{row}` missing: {rows:?}"
        );
    }
    let mut ids = BTreeSet::new();
    for p in d.panels() {
        let title = p["title"].as_str().unwrap_or("?");
        let id = p["id"].as_u64().expect("every panel has an id");
        assert!(ids.insert(id), "panel id {id} twice ({title})");
        if p["type"] != "row" {
            assert_eq!(
                p["datasource"]["uid"], "${datasource}",
                "panel `{title}` uses the datasource variable"
            );
            assert!(
                p["targets"].as_array().is_some_and(|t| !t.is_empty()),
                "panel `{title}` has a query"
            );
        }
    }
    assert_eq!(d.json["uid"], "mdrelay", "a stable uid for links");
    // "All" relays is the list of relays, not `.*`: that would also match
    // the process_* series of every other scraped process (Prometheus's own).
    let vars = d.json["templating"]["list"].as_array().expect("variables");
    let instance = vars
        .iter()
        .find(|v| v["name"] == "instance")
        .expect("an instance variable");
    assert!(
        instance["allValue"].is_null(),
        "instance variable: allValue {}",
        instance["allValue"]
    );
    let source = instance["query"]["query"].as_str().unwrap_or("");
    assert!(
        source.contains("mdrelay_"),
        "instances come from a relay metric: {source}"
    );
}

/// Every dashboard query parses as PromQL: promtool checks them as
/// recording rules (JSON is YAML).
#[test]
fn dashboard_queries_are_valid_promql() {
    let Some(promtool) = tool("promtool", "prometheus") else {
        return;
    };
    let rules: Vec<serde_json::Value> = Dashboard::load()
        .queries()
        .iter()
        .enumerate()
        .map(|(i, (_, expr))| serde_json::json!({"record": format!("dashboard:query_{i}"), "expr": expand(expr)}))
        .collect();
    assert!(rules.len() >= 30, "only {} queries", rules.len());
    let file = serde_json::json!({"groups": [{"name": "dashboard", "rules": rules}]});
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dashboard-rules.yml");
    std::fs::write(&path, serde_json::to_string_pretty(&file).unwrap()).unwrap();
    let out = run(
        &promtool,
        &["check", "rules", path.to_str().unwrap()],
        dir.path(),
    );
    assert_ok("promtool check rules on the dashboard's queries", &out);
}

#[test]
fn dashboard_and_alerts_use_only_contract_metrics_and_labels() {
    let dashboard = read("deploy/grafana/dashboards/mdrelay.json");
    let alerts = read("deploy/prometheus/alerts.yml");
    for (file, text) in [("dashboard", &dashboard), ("alerts.yml", &alerts)] {
        let unknown: Vec<_> = metric_names(text)
            .into_iter()
            .filter(|n| !in_contract(n))
            .collect();
        assert!(
            unknown.is_empty(),
            "{file} uses metrics outside the contract: {unknown:?}"
        );
    }
    // Every contract metric is on the dashboard, unless left out on purpose.
    let shown = metric_names(&dashboard);
    let missing: Vec<_> = CONTRACT_METRICS
        .iter()
        .copied()
        .filter(|m| !shown.contains(*m) && !NOT_ON_DASHBOARD.contains(m))
        .chain(
            HISTOGRAMS
                .iter()
                .copied()
                .filter(|h| !shown.contains(&format!("{h}_bucket"))),
        )
        .collect();
    assert!(missing.is_empty(), "not on the dashboard: {missing:?}");
    // Grouping only by bounded labels (never an instrument).
    let exprs = Dashboard::load().queries();
    let alert_exprs: Vec<(String, String)> = alerts
        .split("- alert: ")
        .skip(1)
        .map(|a| (a.lines().next().unwrap_or("").to_string(), a.to_string()))
        .collect();
    for (title, expr) in exprs.iter().chain(&alert_exprs) {
        for label in grouping_labels(expr) {
            assert!(
                LABELS.contains(&label.as_str()),
                "`{title}` groups by `{label}`, not a contract label"
            );
        }
    }
}

#[test]
fn the_scanner_finds_names_and_labels() {
    let names =
        metric_names(r#"rate(mdrelay_gaps_total{venue="x"}[1m]) / process_open_fds + xmdrelay_no"#);
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["mdrelay_gaps_total", "process_open_fds"]
    );
    assert!(in_contract("mdrelay_venue_lag_seconds_bucket"));
    assert!(in_contract("mdrelay_venue_lag_seconds"));
    assert!(!in_contract("mdrelay_venue_lag_seconds_total"));
    assert!(!in_contract("mdrelay_frames_total"));
    assert_eq!(
        grouping_labels("sum by (venue, le) (x) / sum without(symbol) (y)"),
        ["venue", "le", "symbol"]
    );
}

/// `systemd-analyze verify` on a copy of the unit whose `ExecStart` is the
/// binary this test suite built (verify requires it to exist). verify
/// exits 0 on unknown keys and bad values, so its output must not mention
/// the unit at all.
fn verify_unit(analyze: &Path, unit: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mdrelay.service");
    std::fs::write(&path, unit).unwrap();
    let out = run(
        analyze,
        &["verify", "--man=no", path.to_str().unwrap()],
        dir.path(),
    );
    let all = text(&out);
    let about_unit: Vec<&str> = all
        .lines()
        .filter(|l| l.contains("mdrelay.service"))
        .collect();
    if out.status.success() && about_unit.is_empty() {
        Ok(())
    } else {
        Err(all)
    }
}

fn unit_with_built_binary() -> String {
    let unit = read("deploy/systemd/mdrelay.service");
    let exec = "ExecStart=/usr/local/bin/mdrelay ";
    assert_eq!(unit.matches(exec).count(), 1, "one ExecStart of the binary");
    unit.replace(
        exec,
        &format!("ExecStart={} ", env!("CARGO_BIN_EXE_mdrelay")),
    )
}

#[test]
fn systemd_unit_passes_verify() {
    let Some(analyze) = tool("systemd-analyze", "systemd") else {
        return;
    };
    if let Err(out) = verify_unit(&analyze, &unit_with_built_binary()) {
        panic!("systemd-analyze verify deploy/systemd/mdrelay.service:\n{out}");
    }
    // verify's warnings are caught: a typo in a value fails the check.
    let typo = unit_with_built_binary().replace("ProtectSystem=strict", "ProtectSystem=strickt");
    assert!(
        verify_unit(&analyze, &typo).is_err(),
        "a bad ProtectSystem value passed"
    );
}

#[test]
fn systemd_unit_is_hardened_and_outwaits_the_drain() {
    let unit = read("deploy/systemd/mdrelay.service");
    let lines: Vec<&str> = unit.lines().map(str::trim).collect();
    for setting in [
        "Type=simple",
        "User=mdrelay",
        "Restart=on-failure",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "WorkingDirectory=/etc/mdrelay",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectControlGroups=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "LockPersonality=yes",
        "MemoryDenyWriteExecute=yes",
        "SystemCallFilter=@system-service",
        "CapabilityBoundingSet=",
    ] {
        assert!(lines.contains(&setting), "unit lacks `{setting}`");
    }
    let value = |key: &str| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("unit lacks {key}"))
            .to_string()
    };
    assert!(value("RestartSec=").ends_with('s'));
    let stop = humantime::parse_duration(&value("TimeoutStopSec=")).unwrap();
    let config: toml::Value = toml::from_str(&read("config/relay.toml")).unwrap();
    let drain = config["service"]["shutdown_timeout"]
        .as_str()
        .map(|s| humantime::parse_duration(s).unwrap())
        .unwrap_or(Duration::from_secs(10));
    assert!(
        stop > drain,
        "TimeoutStopSec {stop:?} must exceed shutdown_timeout {drain:?}"
    );
}

/// Dockerfile instructions, continuation lines joined, comments dropped.
fn dockerfile() -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    for line in read("Dockerfile").lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && cur.is_empty()) {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(part) => {
                cur.push_str(part);
                cur.push(' ');
            }
            None => {
                cur.push_str(t);
                if !cur.trim().is_empty() {
                    out.push(cur.trim().to_string());
                }
                cur.clear();
            }
        }
    }
    out
}

#[test]
fn dockerfile_is_multi_stage_non_root_and_health_checked() {
    let ins = dockerfile();
    let from: Vec<usize> = (0..ins.len())
        .filter(|&i| ins[i].starts_with("FROM "))
        .collect();
    assert!(from.len() >= 2, "multi-stage: {} FROM", from.len());
    assert!(
        ins[from[0]].contains(" AS build"),
        "first stage is the builder"
    );
    assert!(
        ins[from[0]..from[1]]
            .iter()
            .any(|i| i.starts_with("RUN ") && i.contains("cargo build --release --locked")),
        "the builder runs cargo build --release --locked"
    );
    let runtime = &ins[*from.last().unwrap()..];
    let has = |prefix: &str| runtime.iter().find(|i| i.starts_with(prefix));
    let user = has("USER ").expect("the runtime stage sets USER");
    let who = user["USER ".len()..].split(':').next().unwrap();
    assert!(
        !["root", "0"].contains(&who),
        "runs as a non-root user, not {who}"
    );
    let health = has("HEALTHCHECK ").expect("a HEALTHCHECK");
    assert!(health.contains("http://127.0.0.1:8080/health"), "{health}");
    assert!(
        runtime
            .iter()
            .any(|i| i.starts_with("RUN ") && i.contains("curl")),
        "the health check's curl is installed in the runtime image"
    );
    assert!(has("EXPOSE 8080").is_some(), "EXPOSE 8080");
    assert!(
        has("COPY --from=build ").is_some_and(|c| c.contains("/usr/local/bin/mdrelay")),
        "the binary comes from the builder"
    );
    let cmd = has("CMD ").expect("a CMD");
    assert!(
        cmd.contains("\"0.0.0.0:8080\""),
        "listens on 0.0.0.0:8080: {cmd}"
    );
    // Every file copied from the build context exists and is not excluded.
    let ignore = read(".dockerignore");
    for src in ins
        .iter()
        .filter(|i| i.starts_with("COPY ") && !i.contains("--from="))
        .flat_map(|i| {
            let words: Vec<&str> = i.split_whitespace().skip(1).collect();
            words[..words.len() - 1]
                .iter()
                .map(|w| w.to_string())
                .collect::<Vec<_>>()
        })
    {
        assert!(root().join(&src).exists(), "COPY {src}: not in the repo");
        let top = src.trim_end_matches('/');
        assert!(
            !ignore.lines().any(|l| l.trim_end_matches('/') == top),
            "COPY {src}: excluded by .dockerignore"
        );
    }
    for excluded in ["target/", ".git/"] {
        assert!(
            ignore.lines().any(|l| l == excluded),
            ".dockerignore excludes {excluded}"
        );
    }
}

#[test]
fn compose_wires_the_relay_nats_prometheus_and_grafana() {
    let compose = read("compose.yaml");
    // Host paths mounted into the containers exist.
    let mut mounted = 0;
    for line in compose.lines().map(str::trim) {
        if let Some(path) = line.strip_prefix("- ./") {
            let host = path.split(':').next().unwrap();
            assert!(
                root().join(host).exists(),
                "compose mounts ./{host}: missing"
            );
            mounted += 1;
        }
    }
    assert!(mounted >= 6, "only {mounted} bind mounts");
    for needle in [
        "./config/relay.toml:/etc/mdrelay/relay.toml",
        "./venues:/etc/mdrelay/venues",
        "./deploy/prometheus/alerts.yml:/etc/prometheus/alerts.yml",
        "./deploy/grafana/provisioning:/etc/grafana/provisioning",
        "NATS_URL: nats://nats:4222",
        "--jetstream",
        "build: .",
    ] {
        assert!(compose.contains(needle), "compose.yaml lacks `{needle}`");
    }
    // Prometheus scrapes the compose service; Grafana reads the path the
    // provider names.
    assert!(read("deploy/prometheus/prometheus.yml").contains("targets: [\"mdrelay:8080\"]"));
    assert!(compose.contains("./deploy/grafana/dashboards:/etc/grafana/dashboards"));
    assert!(
        read("deploy/grafana/provisioning/dashboards/mdrelay.yml")
            .contains("path: /etc/grafana/dashboards")
    );
    assert!(
        read("deploy/grafana/provisioning/datasources/prometheus.yml")
            .contains("url: http://prometheus:9090")
    );
}

/// Builds the image (minutes). Needs a Docker daemon, which the development
/// machine does not have: `cargo test --test it deploy -- --ignored`.
#[test]
#[ignore = "builds the container image; needs a Docker daemon"]
fn dockerfile_builds() {
    let docker = tool("docker", "docker.io").expect("docker");
    let out = run(&docker, &["build", "-t", "mdrelay:test", "."], root());
    assert_ok("docker build", &out);
    let out = run(
        &docker,
        &["run", "--rm", "mdrelay:test", "--version"],
        root(),
    );
    assert_ok("docker run mdrelay:test --version", &out);
}
