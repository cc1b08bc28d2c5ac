//! Three orderflow processes on a real 3-node NATS cluster with R3 streams,
//! on loopback: a mixed load spread over every node's HTTP port completes
//! while an app node is SIGKILLed, while a NATS node is SIGKILLed and comes
//! back, and through a rolling restart; `orderflow audit` passes each time.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::cluster::NatsCluster;
use crate::support::load::{all_ended, place_mixed, Mix};
use crate::support::process::NodeProcess;
use crate::support::{audit_passes, eventually, SAGA_DEADLINE};

/// How long a loaded 2-core machine may take to settle every order.
const SETTLE: Duration = Duration::from_secs(180);

/// The cluster, three app nodes on it, and their temporary directories.
struct Rig {
    cluster: NatsCluster,
    js: async_nats::jetstream::Context,
    nodes: Vec<NodeProcess>,
    http: reqwest::Client,
    _dirs: Vec<tempfile::TempDir>,
}

impl Rig {
    async fn start() -> Rig {
        let cluster = NatsCluster::start().await;
        let js = cluster.jetstream().await;
        let url = cluster.url();
        let mut nodes = Vec::new();
        let mut dirs = Vec::new();
        for _ in 0..3 {
            let dir = tempfile::tempdir().expect("a temporary directory");
            let settings = [
                ("ORDERFLOW_NATS__REPLICAS", "3"),
                ("ORDERFLOW_CONSUMERS__ACK_WAIT", "2s"),
                ("ORDERFLOW_CONSUMERS__NAK_DELAY", "100ms"),
                ("ORDERFLOW_NODE__SHUTDOWN_TIMEOUT", "20s"),
            ];
            nodes.push(NodeProcess::start(&url, dir.path(), &settings).await);
            dirs.push(dir);
        }
        Rig {
            cluster,
            js,
            nodes,
            http: reqwest::Client::new(),
            _dirs: dirs,
        }
    }

    fn bases(&self) -> Vec<String> {
        self.nodes.iter().map(NodeProcess::base).collect()
    }

    /// Starts `mix` in the background, spread round-robin over every node
    /// (a request to a node that is down moves on to the next one).
    fn load(&self, mix: &Mix) -> tokio::task::JoinHandle<Vec<String>> {
        let (http, bases, mix) = (self.http.clone(), self.bases(), mix.clone());
        tokio::spawn(async move {
            let next = Arc::new(AtomicUsize::new(0));
            place_mixed(
                &http,
                || bases[next.fetch_add(1, Ordering::Relaxed) % bases.len()].clone(),
                &mix,
            )
            .await
        })
    }

    /// Waits until ORDERS holds `n` messages: the load is under way.
    async fn orders_hold(&self, n: u64) {
        // Asked afresh each time: right after a member dies, a stream-info
        // request can time out while the cluster elects a new leader.
        eventually(&format!("ORDERS to hold {n} messages"), SAGA_DEADLINE, || async move {
            let mut stream = self.js.get_stream("ORDERS").await.ok()?;
            let info = stream.info().await.ok()?;
            (info.state.messages >= n).then_some(())
        })
        .await;
    }

    /// Every order ended (asked of node `via`), and the audit passes.
    async fn settles(&self, ids: &[String], via: usize) {
        let orders = all_ended(&self.http, &self.nodes[via].base(), ids, SETTLE).await;
        assert_eq!(orders.len(), ids.len());
        audit_passes(&self.js).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_load_over_three_nodes_on_r3_streams_completes_and_audits() {
    let rig = Rig::start().await;
    let mut orders = rig.js.get_stream("ORDERS").await.expect("ORDERS");
    let info = orders.info().await.expect("stream info");
    assert_eq!(info.config.num_replicas, 3, "streams are R3 in a cluster");
    let cluster = info.cluster.as_ref().expect("a clustered stream");
    assert_eq!(cluster.replicas.len(), 2, "a leader and two replicas: {cluster:?}");

    restock(&rig, &["C1", "C2"], 1_000).await;
    let ids = rig.load(&Mix::new(300, &["C1", "C2"])).await.expect("the load ran");
    rig.settles(&ids, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_an_app_node_mid_load_loses_nothing() {
    let mut rig = Rig::start().await;
    restock(&rig, &["K1", "K2"], 1_000).await;
    let load = rig.load(&Mix::new(300, &["K1", "K2"]));
    rig.orders_hold(300).await;
    let killed = Instant::now();
    rig.nodes[1].kill().await;
    // The others take over what it held: its unacked inputs come back after
    // ack_wait (2 s) to whichever node pulls next.
    let ids = load.await.expect("the load ran");
    rig.settles(&ids, 0).await;
    eprintln!("all orders settled {:?} after the SIGKILL", killed.elapsed());
    rig.nodes[1].restart().await;
    audit_passes(&rig.js).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_a_nats_node_mid_load_loses_nothing_and_it_catches_up() {
    let mut rig = Rig::start().await;
    restock(&rig, &["N1", "N2"], 1_000).await;
    let load = rig.load(&Mix::new(300, &["N1", "N2"]));
    rig.orders_hold(300).await;
    // The meta leader, to make it hard.
    let leader = rig.cluster.jsz(0, "").await.expect("jsz")["meta_cluster"]["leader"]
        .as_str()
        .unwrap_or("n1")
        .to_owned();
    let victim = (0..3).find(|&i| rig.cluster.name(i) == leader).unwrap_or(0);
    rig.cluster.kill(victim);
    rig.orders_hold(900).await;
    rig.cluster.restart(victim).await;
    let ids = load.await.expect("the load ran");
    rig.settles(&ids, (victim + 1) % 3).await;
    // The restarted member holds every stream, current with its leader.
    eventually("the restarted member to catch up", SAGA_DEADLINE, || async {
        let jsz = rig.cluster.jsz(victim, "accounts=true&streams=true").await?;
        // Every account's streams: with users configured the server lists more than one account.
        let accounts = jsz["account_details"].as_array()?.clone();
        let streams: Vec<serde_json::Value> = accounts
            .iter()
            .filter_map(|a| a["stream_detail"].as_array())
            .flatten()
            .cloned()
            .collect();
        let current = streams.len() >= 4
            && streams.iter().all(|s| {
                // A follower knows only how current it is with the leader; its
                // entry for the other follower stays `current: false`.
                let replicas = s["cluster"]["replicas"].as_array().cloned().unwrap_or_default();
                replicas
                    .iter()
                    .filter(|r| r["name"] == s["cluster"]["leader"])
                    .all(|r| r["current"].as_bool() == Some(true))
            });
        current.then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_under_load_loses_nothing_and_does_nothing_twice() {
    let mut rig = Rig::start().await;
    restock(&rig, &["R1", "R2"], 1_000).await;
    let load = rig.load(&Mix::new(300, &["R1", "R2"]));
    rig.orders_hold(200).await;
    for i in 0..3 {
        let exit = rig.nodes[i].terminate(Duration::from_secs(25)).await;
        assert!(exit.is_some_and(|s| s.success()), "node {i} stops cleanly: {exit:?}");
        rig.nodes[i].restart().await;
    }
    let ids = load.await.expect("the load ran");
    rig.settles(&ids, 1).await;
}

async fn restock(rig: &Rig, skus: &[&str], units: u64) {
    for sku in skus {
        let url = format!("{}/api/v1/skus/{sku}/restock", rig.nodes[0].base());
        let (status, body) =
            crate::support::send(rig.http.post(url).json(&serde_json::json!({ "quantity": units }))).await;
        assert!(status.is_success(), "restocking {sku}: {status} {body}");
    }
}
