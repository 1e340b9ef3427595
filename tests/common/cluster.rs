//! A JetStream cluster on loopback: `nats-server` processes routed to each
//! other (client, route and monitoring ports free, a store directory and a
//! server name each, one cluster name), with helpers to find a stream's
//! leader, SIGKILL a node and restart it on the same ports and store.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, http_get};

/// One node of a [`Cluster`] (or a lone one); SIGKILLed on drop, so a test
/// that ends, passes or fails leaves no server behind.
pub struct Node {
    /// Server name (`n0`, `n1`, ...), as stream info names leaders.
    pub name: String,
    /// Client port.
    pub port: u16,
    /// Route port.
    pub route_port: u16,
    /// Monitoring port (`/healthz`, `/jsz`).
    pub monitor_port: u16,
    conf: PathBuf,
    child: Option<Child>,
}

impl Node {
    /// Start a lone node named `name` in `dir` with `extra` configuration
    /// (`jetstream { … }`, `leafnodes { … }`; `{store}` in it becomes the
    /// node's store directory), and wait until it is healthy.
    pub async fn start(dir: &std::path::Path, name: &str, extra: &str) -> Node {
        let (port, monitor_port) = (free_port(), free_port());
        let conf = dir.join(format!("{name}.conf"));
        std::fs::write(
            &conf,
            format!(
                "server_name: {name}\nlisten: 127.0.0.1:{port}\nhttp: 127.0.0.1:{monitor_port}\n\
                 log_file: \"{log}\"\n{extra}\n",
                log = dir.join(format!("{name}.log")).display(),
                extra = extra.replace("{store}", &dir.join(name).display().to_string()),
            ),
        )
        .unwrap();
        let mut node = Node {
            name: name.to_owned(),
            port,
            route_port: 0,
            monitor_port,
            conf,
            child: None,
        };
        node.spawn();
        node.wait_healthy(Duration::from_secs(30)).await;
        node
    }

    /// Start it again (same ports and store) and wait until it is healthy.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn();
        self.wait_healthy(Duration::from_secs(30)).await;
    }

    /// Whether it answers `/healthz` with ok.
    pub async fn healthy(&self) -> bool {
        if !self.is_up() {
            return false;
        }
        let addr = format!("127.0.0.1:{}", self.monitor_port).parse().unwrap();
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            return false;
        }
        let (status, body) = http_get(addr, "/healthz").await;
        status == 200 && body.contains("ok")
    }

    async fn wait_healthy(&self, timeout: Duration) {
        let t0 = Instant::now();
        while !self.healthy().await {
            assert!(
                t0.elapsed() < timeout,
                "nats-server {} not healthy after {timeout:?}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The client URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let child = Command::new(super::nats_server())
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server must be on PATH or in $MDRELAY_NATS_SERVER");
        self.child = Some(child);
    }

    /// Whether the process is running.
    pub fn is_up(&self) -> bool {
        self.child.is_some()
    }

    /// Whether its process has exited on its own.
    fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))))
    }

    /// SIGKILL (the store survives).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One cluster at a time in the test binary: three brokers and a relay at
/// a steady rate are what two cores carry next to the other tests.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Three (or more) clustered `nats-server`s with JetStream, killed on drop.
pub struct Cluster {
    /// The nodes, in start order.
    pub nodes: Vec<Node>,
    /// Configs, stores and logs (`<name>.log`).
    pub dir: tempfile::TempDir,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

impl Cluster {
    /// Start `n` nodes routed to each other and wait until JetStream has a
    /// meta leader and every node reports healthy.
    ///
    /// The ports are picked free before any node starts, so one can be
    /// taken in between, e.g. as the source port of another node's route
    /// dial; the node then exits with "address already in use". Then the
    /// whole cluster starts again on new ports (at most three times).
    pub async fn start(n: usize) -> Cluster {
        let turn = ONE_AT_A_TIME.lock().await;
        let dir = tempfile::tempdir().unwrap();
        let mut cluster = Cluster {
            nodes: Vec::new(),
            dir,
            _turn: turn,
        };
        for attempt in 1..=3 {
            cluster.nodes = configure(cluster.dir.path(), n);
            for node in &mut cluster.nodes {
                node.spawn();
            }
            match cluster.wait_formed(Duration::from_secs(30)).await {
                Formed::Healthy => {
                    cluster.wait_placement(n, Duration::from_secs(30)).await;
                    return cluster;
                }
                Formed::PortTaken if attempt < 3 => {
                    eprintln!("a cluster port was taken meanwhile; starting again on new ports");
                    for node in &mut cluster.nodes {
                        node.kill();
                    }
                    let _ = std::fs::remove_dir_all(cluster.dir.path());
                    std::fs::create_dir_all(cluster.dir.path()).unwrap();
                }
                Formed::PortTaken | Formed::TimedOut => break,
            }
        }
        panic!(
            "cluster not healthy after 30s; the end of each node's log:\n{}",
            cluster.log_tails(15)
        );
    }

    /// Wait until the cluster is healthy, a node has exited because its
    /// port was taken, or `timeout` passes.
    async fn wait_formed(&mut self, timeout: Duration) -> Formed {
        let t0 = Instant::now();
        loop {
            if self.healthy_with_leader().await {
                eprintln!("cluster healthy after {:?}", t0.elapsed());
                return Formed::Healthy;
            }
            for node in &mut self.nodes {
                if node.exited() {
                    let log =
                        std::fs::read_to_string(self.dir.path().join(format!("{}.log", node.name)))
                            .unwrap_or_default();
                    if log.contains("address already in use") {
                        return Formed::PortTaken;
                    }
                }
            }
            if t0.elapsed() >= timeout {
                return Formed::TimedOut;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Wait until the meta leader can place a stream on `n` peers: create
    /// and delete a probe stream with `n` replicas. Every node answering
    /// `/healthz` with a meta leader known is not enough; the leader may
    /// not have heard from every peer yet and refuses placement with "peer
    /// offline" (seen in CI: 214 ms after the cluster reported healthy).
    async fn wait_placement(&self, n: usize, timeout: Duration) {
        let t0 = Instant::now();
        let js = async_nats::jetstream::new(self.client().await);
        let mut last = String::new();
        while t0.elapsed() < timeout {
            let probe = async_nats::jetstream::stream::Config {
                name: "CLUSTER_PROBE".into(),
                subjects: vec!["cluster-probe.>".into()],
                num_replicas: n,
                storage: async_nats::jetstream::stream::StorageType::Memory,
                ..Default::default()
            };
            match js.create_stream(probe).await {
                Ok(_) => {
                    js.delete_stream("CLUSTER_PROBE").await.unwrap();
                    eprintln!("cluster places {n} replicas after {:?}", t0.elapsed());
                    return;
                }
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "cluster cannot place {n} replicas after {timeout:?} ({last}); logs:\n{}",
            self.log_tails(15)
        );
    }

    /// Every client URL, as a TOML array (`["nats://…", …]`).
    pub fn urls_toml(&self) -> String {
        let urls: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("\"{}\"", n.url()))
            .collect();
        format!("[{}]", urls.join(", "))
    }

    /// A client that knows every node (it reconnects to another when one
    /// goes away).
    pub async fn client(&self) -> async_nats::Client {
        let urls: Vec<async_nats::ServerAddr> = self
            .nodes
            .iter()
            .map(|n| n.url().parse().unwrap())
            .collect();
        async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect(urls)
            .await
            .unwrap()
    }

    /// Whether node `i` answers `/healthz` with ok (JetStream current,
    /// meta leader known).
    pub async fn healthy(&self, i: usize) -> bool {
        self.nodes[i].healthy().await
    }

    /// Whether every running node is healthy and there is a meta leader.
    async fn healthy_with_leader(&self) -> bool {
        for i in 0..self.nodes.len() {
            if self.nodes[i].is_up() && !self.healthy(i).await {
                return false;
            }
        }
        self.meta_leader().await.is_some()
    }

    /// Wait until every running node is healthy and there is a meta leader.
    pub async fn wait_healthy(&self, timeout: Duration) {
        let t0 = Instant::now();
        while !self.healthy_with_leader().await {
            assert!(
                t0.elapsed() < timeout,
                "cluster not healthy after {timeout:?}; the end of each node's log:\n{}",
                self.log_tails(15)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        eprintln!("cluster healthy after {:?}", t0.elapsed());
    }

    /// The last `n` lines of every node's log (the store directory goes
    /// with the test, so a failure prints them).
    pub fn log_tails(&self, n: usize) -> String {
        let mut out = String::new();
        for node in &self.nodes {
            let log = std::fs::read_to_string(self.dir.path().join(format!("{}.log", node.name)))
                .unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            out.push_str(&format!("--- {}\n", node.name));
            for l in &lines[lines.len().saturating_sub(n)..] {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }

    /// The meta leader's server name, as a running node sees it.
    pub async fn meta_leader(&self) -> Option<String> {
        for node in self.nodes.iter().filter(|n| n.is_up()) {
            let addr = format!("127.0.0.1:{}", node.monitor_port).parse().unwrap();
            if tokio::net::TcpStream::connect(addr).await.is_err() {
                continue;
            }
            let (status, body) = http_get(addr, "/jsz").await;
            if status != 200 {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            if let Some(l) = v["meta_cluster"]["leader"].as_str()
                && !l.is_empty()
            {
                return Some(l.to_owned());
            }
        }
        None
    }

    /// The index of the node leading `stream` (from stream info's
    /// `cluster.leader`), waiting up to 30 s for one (an election on two
    /// busy cores can take a while).
    pub async fn stream_leader(&self, client: &async_nats::Client, stream: &str) -> usize {
        let js = async_nats::jetstream::new(client.clone());
        let t0 = Instant::now();
        loop {
            if let Ok(mut s) = js.get_stream(stream).await
                && let Ok(info) = s.info().await
                && let Some(leader) = info.cluster.as_ref().and_then(|c| c.leader.clone())
                && let Some(i) = self.nodes.iter().position(|n| n.name == leader)
            {
                return i;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "stream {stream} has had no leader for 30 s; logs in {}",
                self.dir.path().display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL node `i`.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// Start node `i` again on its ports and store, and wait until it is
    /// healthy (caught up with the streams it holds).
    pub async fn restart(&mut self, i: usize) {
        self.nodes[i].kill();
        self.nodes[i].spawn();
        let t0 = Instant::now();
        while !self.healthy(i).await {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "node {} not healthy after restart; logs in {}",
                self.nodes[i].name,
                self.dir.path().display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// How a cluster start ended.
enum Formed {
    Healthy,
    PortTaken,
    TimedOut,
}

/// The configs of `n` nodes routed to each other, on ports free now, in
/// `dir` (not started).
fn configure(dir: &std::path::Path, n: usize) -> Vec<Node> {
    let ports: Vec<(u16, u16, u16)> = (0..n)
        .map(|_| (free_port(), free_port(), free_port()))
        .collect();
    let mut nodes = Vec::new();
    for (i, &(port, route_port, monitor_port)) in ports.iter().enumerate() {
        let name = format!("n{i}");
        let routes: Vec<String> = ports
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, p)| format!("nats-route://127.0.0.1:{}", p.1))
            .collect();
        let store = dir.join(&name);
        let conf = dir.join(format!("{name}.conf"));
        std::fs::write(
            &conf,
            format!(
                "server_name: {name}\nlisten: 127.0.0.1:{port}\nhttp: 127.0.0.1:{monitor_port}\n\
                 log_file: \"{log}\"\n\
                 jetstream {{\n  store_dir: \"{store}\"\n  max_memory_store: 256MB\n  max_file_store: 4GB\n}}\n\
                 cluster {{\n  name: mdrelay-test\n  listen: 127.0.0.1:{route_port}\n  routes: [{routes}]\n}}\n",
                log = dir.join(format!("{name}.log")).display(),
                store = store.display(),
                routes = routes.join(", "),
            ),
        )
        .unwrap();
        nodes.push(Node {
            name,
            port,
            route_port,
            monitor_port,
            conf,
            child: None,
        });
    }
    nodes
}
