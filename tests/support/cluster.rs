//! A real 3-node NATS cluster with JetStream on loopback ports, from the
//! repository's own `nats-cluster.conf` (the file `scripts/cluster.sh` and
//! docker-compose run), with each member's store and log in a private
//! temporary directory. Members can be SIGKILLed and restarted.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use super::nats::{eventually, free_port, log_tail, nats_server_binary, probe_ready};

/// How long a member (or the whole cluster) may take to be ready.
const READY: Duration = Duration::from_secs(30);

/// One member's ports and files.
struct Member {
    name: String,
    port: u16,
    http_port: u16,
    cluster_port: u16,
    store: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// Three nats-server processes forming one JetStream cluster.
pub struct NatsCluster {
    members: Vec<Member>,
    routes: Vec<String>,
    // Last: removed after the processes are killed in `Drop`.
    dir: TempDir,
}

/// Distinct free loopback ports.
fn free_ports(n: usize) -> Vec<u16> {
    let mut ports: Vec<u16> = Vec::with_capacity(n);
    while ports.len() < n {
        let p = free_port();
        if !ports.contains(&p) {
            ports.push(p);
        }
    }
    ports
}

impl NatsCluster {
    /// Starts the three members and waits until JetStream's meta group is whole.
    pub async fn start() -> NatsCluster {
        let dir = tempfile::Builder::new()
            .prefix("orderflow-cluster-")
            .tempdir()
            .expect("a temporary directory");
        let ports = free_ports(9);
        let members: Vec<Member> = (0..3)
            .map(|i| Member {
                name: format!("n{}", i + 1),
                port: ports[i],
                http_port: ports[3 + i],
                cluster_port: ports[6 + i],
                store: dir.path().join(format!("n{}", i + 1)),
                log: dir.path().join(format!("n{}.log", i + 1)),
                child: None,
            })
            .collect();
        let routes = members
            .iter()
            .map(|m| format!("nats://127.0.0.1:{}", m.cluster_port))
            .collect();
        let mut cluster = NatsCluster { members, routes, dir };
        for i in 0..3 {
            cluster.spawn(i);
        }
        for i in 0..3 {
            cluster.wait_ready(i).await;
        }
        cluster.wait_meta_leader().await;
        cluster
    }

    /// Every member's client URL, comma-separated, as `nats.url` takes it.
    pub fn url(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("nats://127.0.0.1:{}", m.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Member `i`'s name (`n1`..`n3`).
    pub fn name(&self, i: usize) -> &str {
        &self.members[i].name
    }

    /// A JetStream context connected to the cluster.
    pub async fn jetstream(&self) -> async_nats::jetstream::Context {
        let urls: Vec<String> = self.url().split(',').map(str::to_owned).collect();
        let client = async_nats::ConnectOptions::new()
            .name("orderflow-test")
            .connection_timeout(Duration::from_secs(5))
            // The repo's config has no unrestricted user: look around as the app.
            .user_and_password(
                super::nats::APP_USER.name.to_owned(),
                super::nats::APP_USER.password.to_owned(),
            )
            .connect(urls)
            .await
            .expect("a connection to the cluster");
        async_nats::jetstream::new(client)
    }

    /// Member `i`'s `/jsz` report.
    pub async fn jsz(&self, i: usize, query: &str) -> Option<Value> {
        let url = format!("http://127.0.0.1:{}/jsz?{query}", self.members[i].http_port);
        reqwest::get(url).await.ok()?.json().await.ok()
    }

    /// SIGKILLs member `i`, as a crash would; its store is kept.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts member `i` again on its ports and store, and waits until it is ready.
    pub async fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
        self.wait_ready(i).await;
    }

    /// The last lines of member `i`'s log.
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        log_tail(&self.members[i].log, lines)
    }

    fn spawn(&mut self, i: usize) {
        let config = repository_file("nats-cluster.conf");
        let m = &self.members[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log)
            .expect("a log file");
        let log_err = log.try_clone().expect("a second log handle");
        let child = Command::new(nats_server_binary())
            .arg("-c")
            .arg(&config)
            .env("NATS_NAME", &m.name)
            .env("NATS_HOST", "127.0.0.1")
            .env("NATS_PORT", m.port.to_string())
            .env("NATS_HTTP_PORT", m.http_port.to_string())
            .env("NATS_CLUSTER_PORT", m.cluster_port.to_string())
            .env("NATS_ROUTE_1", &self.routes[0])
            .env("NATS_ROUTE_2", &self.routes[1])
            .env("NATS_ROUTE_3", &self.routes[2])
            .env("NATS_STORE", &m.store)
            .env("NATS_SYNC_INTERVAL", "120s")
            .env("NATS_ORDERFLOW_PASSWORD", super::nats::APP_USER.password)
            .env("NATS_INSPECTOR_PASSWORD", super::nats::INSPECTOR_USER.password)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .spawn()
            .expect("nats-server starts");
        self.members[i].child = Some(child);
    }

    async fn wait_ready(&self, i: usize) {
        let m = &self.members[i];
        let client = SocketAddr::from((Ipv4Addr::LOCALHOST, m.port));
        let monitor = SocketAddr::from((Ipv4Addr::LOCALHOST, m.http_port));
        let name = m.name.clone();
        eventually(
            &format!("cluster member {name} to be ready (log: {})", m.log.display()),
            READY,
            || {
                let name = name.clone();
                async move {
                    tokio::task::spawn_blocking(move || probe_ready(client, monitor, &name))
                        .await
                        .ok()
                        .and_then(Result::ok)
                }
            },
        )
        .await;
    }

    /// Waits until a meta leader is elected and sees both other members as
    /// current: before that, placing an R3 stream can be refused for want of
    /// peers, which is not what a test of the cluster means to exercise.
    async fn wait_meta_leader(&self) {
        eventually("the JetStream meta group to be whole", READY, || async {
            for (i, member) in self.members.iter().enumerate() {
                let jsz = self.jsz(i, "").await?;
                let meta = &jsz["meta_cluster"];
                if meta["leader"].as_str() != Some(member.name.as_str()) {
                    continue;
                }
                let peers = meta["replicas"].as_array()?;
                let current = peers.iter().filter(|p| p["current"].as_bool() == Some(true)).count();
                return (current == self.members.len() - 1).then_some(());
            }
            None
        })
        .await;
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

/// A file at the repository's root.
fn repository_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}
