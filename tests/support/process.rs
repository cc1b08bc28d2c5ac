//! An `orderflow serve` process, for tests that SIGKILL the node itself.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use super::nats::{eventually, free_port};

/// A node running as its own process, with its own snapshot directory and log.
pub struct NodeProcess {
    child: Option<Child>,
    nats_url: String,
    http_port: u16,
    store: PathBuf,
    log: PathBuf,
    env: Vec<(String, String)>,
}

impl NodeProcess {
    /// Starts `orderflow serve` against `nats_url`, snapshots under `dir`,
    /// with extra `ORDERFLOW_*` settings; returns once `/readyz` says ready.
    pub async fn start(nats_url: &str, dir: &Path, env: &[(&str, &str)]) -> NodeProcess {
        let mut node = NodeProcess {
            child: None,
            nats_url: nats_url.to_owned(),
            http_port: free_port(),
            store: dir.join("snapshots"),
            log: dir.join("node.log"),
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        node.launch().await;
        node
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// The snapshot directory.
    pub fn store(&self) -> &Path {
        &self.store
    }

    async fn launch(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("a log file");
        let child = Command::new(env!("CARGO_BIN_EXE_orderflow"))
            .arg("serve")
            .env("ORDERFLOW_NATS__URL", &self.nats_url)
            .env("ORDERFLOW_NATS__USER", super::nats::APP_USER.name)
            .env("ORDERFLOW_NATS__PASSWORD", super::nats::APP_USER.password)
            .env("ORDERFLOW_HTTP__ADDR", format!("127.0.0.1:{}", self.http_port))
            .env("ORDERFLOW_STORE__PATH", &self.store)
            .env("ORDERFLOW_LOG", "warn")
            .envs(super::auth_env())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("orderflow serve starts");
        self.child = Some(child);
        let http = reqwest::Client::new();
        let ready = format!("{}/readyz", self.base());
        eventually(
            &format!("the node on {} to be ready (log: {})", self.base(), self.log.display()),
            // A first node creates the R3 streams of a fresh cluster; on a
            // loaded 2-core machine that alone can take tens of seconds.
            Duration::from_secs(90),
            || async {
                http.get(&ready)
                    .send()
                    .await
                    .ok()
                    .filter(|r| r.status().is_success())
                    .map(drop)
            },
        )
        .await;
    }

    /// The node's log file (stderr).
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// SIGTERM, then waits up to `within` for the node to exit by itself;
    /// returns its exit status, or `None` if it had to be killed.
    pub async fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let pid = child.id()?.to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().await;
        assert!(sent.is_ok_and(|s| s.success()), "SIGTERM could not be sent to {pid}");
        match tokio::time::timeout(within, child.wait()).await {
            Ok(status) => Some(status.expect("the node is reaped")),
            Err(_) => {
                child.start_kill().ok();
                child.wait().await.ok();
                None
            }
        }
    }

    /// SIGKILL: no shutdown, no snapshot, no ack of anything in flight.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.start_kill().expect("SIGKILL is delivered");
            child.wait().await.expect("the node is reaped");
        }
    }

    /// Starts the node again on the same port and snapshot directory.
    pub async fn restart(&mut self) {
        self.kill().await;
        self.launch().await;
    }
}

/// A fresh nats-server with the topology in place and one node process on
/// it, for tests that stop the node itself. Unacked inputs of a node that
/// went away come back after a short `ack_wait` (2 s); `env` adds settings.
pub struct ProcessRig {
    /// The broker (kept alive with the rig).
    pub nats: super::NatsServer,
    /// JetStream, for looking at the streams.
    pub js: async_nats::jetstream::Context,
    /// The node.
    pub node: NodeProcess,
    /// A client for the API.
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl ProcessRig {
    /// Starts the rig.
    pub async fn start(env: &[(&str, &str)]) -> ProcessRig {
        let nats = super::NatsServer::start().await;
        let js = nats.jetstream().await;
        orderflow::bus::topology::ensure(&js, &super::test_config(&nats.url()))
            .await
            .expect("topology");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut settings = vec![
            ("ORDERFLOW_CONSUMERS__ACK_WAIT", "2s"),
            ("ORDERFLOW_CONSUMERS__NAK_DELAY", "100ms"),
        ];
        settings.extend_from_slice(env);
        let node = NodeProcess::start(&nats.url(), dir.path(), &settings).await;
        ProcessRig {
            nats,
            js,
            node,
            http: super::admin_client(),
            _dir: dir,
        }
    }

    /// Adds `quantity` units to `sku` through the node's API.
    pub async fn restock(&self, sku: &str, quantity: u64) {
        let url = format!("{}/api/v1/skus/{sku}/restock", self.node.base());
        let (status, body) = super::send(self.http.post(url).json(&serde_json::json!({ "quantity": quantity }))).await;
        assert!(status.is_success(), "restocking {sku}: {status} {body}");
    }
}
