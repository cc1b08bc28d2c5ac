//! Three orderflow processes on a real 3-node NATS cluster with R3 streams,
//! on loopback: a mixed load spread over every node's HTTP port completes
//! while an app node is SIGKILLed, while a NATS node is SIGKILLed and comes
//! back, and through a rolling restart; `orderflow audit` passes each time.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::cluster::NatsCluster;
use crate::support::load::{all_ended, place_mixed, Mix};
use crate::support::nats::NatsServer;
use crate::support::process::NodeProcess;
use std::collections::{BTreeMap, BTreeSet};

use actors::journal::{Cause, Journal, JournalError};
use futures::StreamExt;
use orderflow::bus::batch_get::BatchGets;
use orderflow::bus::journal::{NatsJournal, Reads};
use orderflow::cluster::leases::Ownership;
use orderflow::cluster::membership;
use orderflow::saga::sharded::{self, Router};
use schemas::inventory::InventoryEvent;
use schemas::order::{Line, OrderEvent};
use schemas::subjects::EntityRef;
use schemas::{Currency, CustomerId, OrderId, Quantity, Sku};
use serde_json::Value;

use crate::support::{audit_passes, audit_settles, eventually, metric_value, orderflow_cli, SAGA_DEADLINE};

/// The partitions a node's default configuration hashes work into.
const PARTITIONS: u16 = 32;

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
                // Like ack_wait: a forward lost with a killed server is retried soon.
                ("ORDERFLOW_CLUSTER__FORWARD_TIMEOUT", "2s"),
                ("ORDERFLOW_NODE__SHUTDOWN_TIMEOUT", "20s"),
                ("ORDERFLOW_LOG", "warn,actors::shell=debug"),
            ];
            nodes.push(NodeProcess::start(&url, dir.path(), &settings).await);
            dirs.push(dir);
        }
        Rig {
            cluster,
            js,
            nodes,
            http: crate::support::admin_client(),
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
        // Requests may time out while a server is down or leaders move.
        eventually(&format!("ORDERS to hold {n} messages"), SAGA_DEADLINE, || async {
            let mut stream = self.js.get_stream("ORDERS").await.ok()?;
            let info = stream.info().await.ok()?;
            (info.state.messages >= n).then_some(())
        })
        .await;
    }

    /// Each partition's owner (by lease), and each live node's id by HTTP address.
    async fn owners(&self) -> (BTreeMap<u16, String>, BTreeMap<String, String>) {
        let mut owners = BTreeMap::new();
        if let Ok(leases) = self.js.get_key_value("ORDERFLOW_PARTITIONS").await {
            for p in 0..PARTITIONS {
                if let Ok(Some(lease)) = leases.get(p.to_string()).await {
                    let lease: Value = serde_json::from_slice(&lease).unwrap_or_default();
                    if let Some(node) = lease["node"].as_str() {
                        owners.insert(p, node.to_owned());
                    }
                }
            }
        }
        let mut nodes = BTreeMap::new();
        if let Ok(members) = self.js.get_key_value("ORDERFLOW_NODES").await {
            if let Ok(keys) = members.keys().await {
                let keys: Vec<String> = keys.filter_map(|k| async { k.ok() }).collect().await;
                for key in keys {
                    if let Ok(Some(card)) = members.get(&key).await {
                        let card: Value = serde_json::from_slice(&card).unwrap_or_default();
                        if let Some(http) = card["http"].as_str() {
                            nodes.insert(format!("http://{http}"), key);
                        }
                    }
                }
            }
        }
        (owners, nodes)
    }

    /// Waits until every partition is owned and the owners are exactly the
    /// nodes at `bases` (each holding some): the leases are balanced.
    async fn balanced_over(&self, bases: &[String]) -> BTreeMap<u16, String> {
        eventually("every partition owned by the live nodes", SAGA_DEADLINE, || async {
            let (owners, nodes) = self.owners().await;
            let wanted: BTreeSet<&String> = bases.iter().filter_map(|b| nodes.get(b)).collect();
            let holding: BTreeSet<&String> = owners.values().collect();
            (owners.len() == usize::from(PARTITIONS) && wanted.len() == bases.len() && holding == wanted)
                .then_some(owners)
        })
        .await
    }

    /// The Prometheus text of the node at `base`, if it answered.
    async fn metrics(&self, base: &str) -> Option<String> {
        self.http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()
    }

    /// Leases acquired so far, summed over the nodes.
    async fn acquisitions(&self) -> f64 {
        let mut total = 0.0;
        for base in self.bases() {
            let text = eventually("the node's metrics", SAGA_DEADLINE, || self.metrics(&base)).await;
            total += metric_value(&text, r#"orderflow_partition_moves_total{how="acquired"}"#).unwrap_or(0.0);
        }
        total
    }

    /// Every order ended (asked of node `via`), and the audit passes.
    async fn settles(&self, ids: &[String], via: usize) {
        let orders = all_ended(&self.http, &self.nodes[via].base(), ids, SETTLE).await;
        assert_eq!(orders.len(), ids.len());
        audit_settles(&self.js, SETTLE).await;
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

    // Restocking only once ownership has settled: a restock served while one
    // node still owned every partition would leave that node's peak at one
    // inventory actor more than the hand-over explains.
    rig.balanced_over(&rig.bases()).await;
    let settled_moves = rig.acquisitions().await;
    restock(&rig, &["C1", "C2"], 1_000).await;
    let ids = rig.load(&Mix::new(300, &["C1", "C2"])).await.expect("the load ran");
    rig.settles(&ids, 2).await;

    // Inputs landing on a node that does not own their partition were
    // forwarded to the owner, so each hot SKU's actor lived on one node only.
    // (The peak gauge is refreshed every poll interval, hence the wait.)
    let (forwarded, inventory_actors) = eventually("every node's gauges refreshed", SAGA_DEADLINE, || async {
        let (mut forwarded, mut inventory_actors) = (0.0, 0.0);
        for base in rig.bases() {
            let text = rig.metrics(&base).await?;
            forwarded += metric_value(&text, r#"orderflow_inputs_routed_total{route="forwarded"}"#).unwrap_or(0.0);
            inventory_actors += metric_value(&text, r#"orderflow_actors_peak{kind="inventory"}"#)?;
        }
        (inventory_actors >= 2.0).then_some((forwarded, inventory_actors))
    })
    .await;
    assert!(forwarded > 0.0, "no input was forwarded to its partition's owner");
    // A lease that moved during the load (a heartbeat late on a loaded
    // machine) legitimately starts the SKU's actor on its new owner; without
    // a move there is exactly one actor per hot SKU in the whole cluster.
    let late_moves = rig.acquisitions().await - settled_moves;
    assert!(
        inventory_actors == 2.0 || (late_moves > 0.0 && inventory_actors <= 2.0 + late_moves),
        "C1 and C2 each had one actor, on one node: {inventory_actors} inventory actors, \
         {late_moves} leases acquired during the load"
    );

    // `orderflow cluster status` sees the three nodes, R3 streams with a
    // leader and two current followers, and every consumer caught up.
    let status = eventually("cluster status to list the three nodes", SAGA_DEADLINE, || async {
        let out = orderflow_cli(&rig.cluster.url(), &["cluster", "status", "--json"]).await;
        let status: Value = serde_json::from_slice(&out.stdout).ok()?;
        (status["nodes"].as_array()?.len() == 3).then_some(status)
    })
    .await;
    let http: BTreeSet<&str> = status["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["http"].as_str())
        .collect();
    let bases: BTreeSet<String> = rig
        .bases()
        .iter()
        .map(|b| b.trim_start_matches("http://").to_owned())
        .collect();
    assert_eq!(http, bases.iter().map(String::as_str).collect(), "{status}");
    let orders = status["streams"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "ORDERS"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(orders["replicas"], 3, "{orders}");
    assert!(orders["leader"].is_string(), "{orders}");
    assert_eq!(orders["followers"].as_array().map(Vec::len), Some(2), "{orders}");
    let consumers = status["consumers"].as_array().cloned().unwrap_or_default();
    let names: BTreeSet<String> = consumers
        .iter()
        .filter_map(|c| Some(format!("{}/{}", c["stream"].as_str()?, c["name"].as_str()?)))
        .collect();
    assert!(
        names.contains("ORDERS/order-saga") && names.contains("TIMERS/order-saga"),
        "{status}"
    );
    assert!(consumers.iter().all(|c| c["pending"] == 0), "all caught up: {status}");
    // ... and every partition with one of the three as its owner.
    let ids: BTreeSet<&str> = status["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["id"].as_str())
        .collect();
    let partitions = status["partitions"].as_array().cloned().unwrap_or_default();
    assert_eq!(partitions.len(), usize::from(PARTITIONS), "{status}");
    let owners: BTreeSet<&str> = partitions.iter().filter_map(|p| p["owner"].as_str()).collect();
    assert_eq!(owners, ids, "every node owns partitions, and only they do: {status}");
    assert!(
        partitions.iter().all(|p| p["lag"]["total"] == 0),
        "no partition has inputs waiting: {status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_an_app_node_mid_load_loses_nothing() {
    let mut rig = Rig::start().await;
    restock(&rig, &["K1", "K2"], 1_000).await;
    let load = rig.load(&Mix::new(300, &["K1", "K2"]));
    rig.orders_hold(300).await;
    let before = rig.balanced_over(&rig.bases()).await;
    let victim = rig
        .owners()
        .await
        .1
        .get(&rig.nodes[1].base())
        .cloned()
        .expect("node 1's id");
    let held = before.values().filter(|o| **o == victim).count();
    assert!(held > 0, "node 1 owned partitions: {before:?}");
    let killed = Instant::now();
    rig.nodes[1].kill().await;
    // Its leases age out (lease_ttl) and the two others take them; its
    // unacked inputs come back after ack_wait (2 s) to whichever pulls next.
    let survivors = [rig.nodes[0].base(), rig.nodes[2].base()];
    let after = rig.balanced_over(&survivors).await;
    let moved = killed.elapsed();
    assert!(after.values().all(|o| *o != victim), "{after:?}");
    let ids = load.await.expect("the load ran");
    rig.settles(&ids, 0).await;
    eprintln!(
        "failover: the {held} partitions of the SIGKILLed node were owned by the others {moved:?} after the kill; \
         all orders settled {:?} after it",
        killed.elapsed()
    );
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
    let jsz = eventually("the meta leader's name", SAGA_DEADLINE, || rig.cluster.jsz(0, "")).await;
    let leader = jsz["meta_cluster"]["leader"].as_str().unwrap_or("n1").to_owned();
    let victim = (0..3).find(|&i| rig.cluster.name(i) == leader).unwrap_or(0);
    rig.cluster.kill(victim);
    rig.orders_hold(900).await;
    rig.cluster.restart(victim).await;
    let ids = load.await.expect("the load ran");
    rig.settles(&ids, (victim + 1) % 3).await;
    // The restarted member holds every stream up to its leader's last message.
    let mut leaders = std::collections::BTreeMap::new();
    for name in ["ORDERS", "PAYMENTS", "INVENTORY", "NOTIFICATIONS"] {
        let last = eventually(&format!("{name}'s last sequence"), SAGA_DEADLINE, || async {
            let mut stream = rig.js.get_stream(name).await.ok()?;
            Some(stream.info().await.ok()?.state.last_sequence)
        })
        .await;
        leaders.insert(name.to_owned(), last);
    }
    eventually("the restarted member to catch up", SAGA_DEADLINE, || async {
        let jsz = rig.cluster.jsz(victim, "accounts=true&streams=true").await?;
        let local: std::collections::BTreeMap<String, u64> = jsz["account_details"]
            .as_array()?
            .iter()
            .flat_map(|a| a["stream_detail"].as_array().cloned().unwrap_or_default())
            .filter_map(|s| Some((s["name"].as_str()?.to_owned(), s["state"]["last_seq"].as_u64()?)))
            .collect();
        leaders
            .iter()
            .all(|(name, last)| local.get(name).is_some_and(|l| l >= last))
            .then_some(())
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
        // A node that stops hands its partitions over at once.
        let others: Vec<String> = (0..3).filter(|j| *j != i).map(|j| rig.nodes[j].base()).collect();
        rig.balanced_over(&others).await;
        rig.nodes[i].restart().await;
    }
    rig.balanced_over(&rig.bases()).await;
    let ids = load.await.expect("the load ran");
    rig.settles(&ids, 1).await;
}

/// On an R3 stream the leader refuses a stale append with another error
/// code (10164) than a single server (10071); both must read as a conflict,
/// or every lost optimistic-concurrency race in a cluster is retried as an
/// outage (Nak with a growing delay) instead of re-decided at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_append_on_a_replicated_stream_is_a_conflict() {
    let cluster = NatsCluster::start().await;
    let js = cluster.jetstream().await;
    let mut config = crate::support::test_config(&cluster.url());
    config.nats.replicas = 3;
    orderflow::bus::topology::ensure_patiently(&js, &config)
        .await
        .expect("topology");
    let journal = NatsJournal::open_with(js, Reads::Leader).await.expect("journal");
    let sku = Sku::parse("OCC-1").expect("sku");
    let entity = EntityRef::inventory(&sku);
    let restock = |n: u64| InventoryEvent::Restocked {
        sku: sku.clone(),
        quantity: n,
        restock_id: format!("r{n}"),
        available: n,
    };
    let first = eventually("the first append", SAGA_DEADLINE, || async {
        journal.append(&entity, 0, &restock(1), &Cause::default()).await.ok()
    })
    .await;
    assert!(!first.duplicate);
    assert_eq!(
        journal.append(&entity, 0, &restock(2), &Cause::default()).await,
        Err(JournalError::Conflict)
    );
    // Racing writers: while one append is in flight, the leader refuses the
    // others up front (that is where 10164 comes from). One wins; every
    // other one is a conflict, none an outage.
    let racing = (10..30).map(|n| {
        let (journal, entity, event) = (&journal, &entity, restock(n));
        async move { journal.append(entity, first.seq, &event, &Cause::default()).await }
    });
    let results = futures::future::join_all(racing).await;
    let won = results.iter().filter(|r| r.is_ok()).count();
    let lost = results.iter().filter(|r| **r == Err(JournalError::Conflict)).count();
    assert_eq!((won, lost), (1, 19), "{results:?}");
}

impl Drop for Rig {
    fn drop(&mut self) {
        // A failed run keeps the nodes' logs for whoever investigates.
        if std::thread::panicking() {
            let keep = std::env::temp_dir().join(format!("orderflow-cluster-failure-{}", std::process::id()));
            if std::fs::create_dir_all(&keep).is_ok() {
                for (i, node) in self.nodes.iter().enumerate() {
                    let _ = std::fs::copy(node.log(), keep.join(format!("node{i}.log")));
                }
                eprintln!("node logs kept in {}", keep.display());
            }
        }
    }
}

async fn restock(rig: &Rig, skus: &[&str], units: u64) {
    for sku in skus {
        let url = format!("{}/api/v1/skus/{sku}/restock", rig.nodes[0].base());
        let (status, body) =
            crate::support::send(rig.http.post(url).json(&serde_json::json!({ "quantity": units }))).await;
        assert!(status.is_success(), "restocking {sku}: {status} {body}");
    }
}

/// `cluster status` attributes a backlog to the partitions whose owners
/// execute it: orders placed while the only node is stopped show as lag of
/// the order saga's consumer on exactly their orders' partitions, with no
/// owner; once the node is back every partition is owned and drained.
/// A forwarded input whose request is lost in transit, as one routed by a
/// server that has not yet learnt that the partition's old owner
/// unsubscribed, is asked again, and the answer to the repeat is taken
/// long before the forward's timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forward_lost_in_transit_is_asked_again_and_answered() {
    let nats = NatsServer::start().await;
    let client = nats.client().await;
    let subject = sharded::subject(7, schemas::subjects::EntityKind::Order);
    let mut owner = client.subscribe(subject.clone()).await.expect("a subscription");
    client.flush().await.expect("the subscription is registered");
    let answering = client.clone();
    let heard = tokio::spawn(async move {
        // The first ask reaches nobody who answers: it is dropped.
        let lost = owner.next().await.expect("the first ask");
        let again = owner.next().await.expect("a second ask");
        let reply = again.reply.clone().expect("a reply subject");
        answering.publish(reply, "stored".into()).await.expect("the answer");
        answering.flush().await.expect("the answer is sent");
        (lost.payload, again.payload)
    });
    let ownership = Arc::new(Ownership::new("asker".to_owned(), PARTITIONS));
    // Without a repeat this ask would wait out the whole minute.
    let router = Router::new(ownership, client, Duration::from_secs(60), Duration::from_millis(100));
    let asked = Instant::now();
    let answer = router
        .ask(subject, "input".into())
        .await
        .expect("the repeat is answered");
    assert_eq!(&answer.payload[..], b"stored");
    assert!(
        asked.elapsed() < Duration::from_secs(30),
        "answered only after {:?}",
        asked.elapsed()
    );
    let (lost, again) = heard.await.expect("the owner's task");
    assert_eq!(
        (&lost[..], &again[..]),
        (&b"input"[..], &b"input"[..]),
        "the same input, twice"
    );
}

/// The lease loop's view of which nodes are up: fresh keys count, a key
/// deleted by a node that stopped cleanly does not, and reading it leaves no
/// consumer behind on the bucket (it is read every tick).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_nodes_are_read_without_a_consumer_and_a_clean_leave_is_gone_at_once() {
    let nats = NatsServer::start().await;
    let js = nats.jetstream().await;
    let config = crate::support::test_config(&nats.url());
    orderflow::bus::topology::ensure(&js, &config)
        .await
        .expect("the topology");
    let bucket = js.get_key_value(membership::BUCKET).await.expect("the bucket");
    for id in ["node-a", "node-b", "node-c"] {
        bucket.put(id, "{}".into()).await.expect("a heartbeat");
    }
    bucket.delete("node-b").await.expect("a clean leave");
    let reads = BatchGets::start(nats.client().await).await.expect("a reader");
    for _ in 0..3 {
        let live = membership::live_ids(&reads).await.expect("membership");
        assert_eq!(live, BTreeSet::from(["node-a".to_owned(), "node-c".to_owned()]));
    }
    let mut stream = js
        .get_stream(format!("KV_{}", membership::BUCKET))
        .await
        .expect("the bucket's stream");
    let info = stream.info().await.expect("its info");
    assert_eq!(info.state.consumer_count, 0, "no consumer was created to read it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_status_shows_consumer_lag_per_partition_until_it_drains() {
    let nats = NatsServer::start().await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut node = NodeProcess::start(&nats.url(), dir.path(), &[]).await;
    let exit = node.terminate(Duration::from_secs(20)).await;
    assert!(exit.is_some_and(|s| s.success()), "the node stops cleanly: {exit:?}");

    let journal = NatsJournal::open(nats.jetstream().await).await.expect("journal");
    let mut expected: BTreeMap<u64, u64> = BTreeMap::new();
    for _ in 0..12 {
        let order_id = OrderId::random();
        let placed = OrderEvent::Placed {
            order_id,
            customer_id: CustomerId::parse("lagging").expect("customer"),
            lines: vec![Line {
                sku: Sku::parse("LAG-1").expect("sku"),
                quantity: Quantity::new(1).expect("quantity"),
                unit_price: 1250,
            }],
            currency: Currency::default(),
            payment_method: "tok_visa".to_owned(),
        };
        let appended = journal
            .append(&EntityRef::order(order_id), 0, &placed, &Cause::default())
            .await
            .expect("the order is placed");
        assert!(!appended.duplicate);
        let partition = orderflow::cluster::partitions::partition_of(&order_id.to_string(), PARTITIONS);
        *expected.entry(u64::from(partition)).or_default() += 1;
    }

    let status = cluster_status(&nats.url()).await;
    let lagging: BTreeMap<u64, u64> = partitions_of(&status)
        .iter()
        .filter(|p| p["lag"]["total"].as_u64() > Some(0))
        .filter_map(|p| Some((p["partition"].as_u64()?, p["lag"]["total"].as_u64()?)))
        .collect();
    assert_eq!(lagging, expected, "lag lands on the orders' partitions: {status}");
    for p in partitions_of(&status) {
        let total = p["lag"]["total"].as_u64().unwrap_or(0);
        let by_consumer = p["lag"]["by_consumer"].as_object().cloned().unwrap_or_default();
        let saga = by_consumer
            .get("ORDERS/order-saga")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        assert_eq!(
            (by_consumer.len() <= 1, saga),
            (true, total),
            "only placed orders wait: {p}"
        );
        assert!(p["owner"].is_null(), "no node runs, so nobody owns a partition: {p}");
    }
    let scans = status["lag_scans"].as_array().cloned().unwrap_or_default();
    assert_eq!(scans.len(), 1, "{status}");
    assert_eq!(
        (scans[0]["read"].as_u64(), scans[0]["truncated"].as_bool()),
        (Some(12), Some(false))
    );
    let text = orderflow_cli(&nats.url(), &["cluster", "status"]).await;
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("lag by partition"), "{text}");

    node.restart().await;
    eventually("every partition to be owned and drained", SETTLE, || async {
        let status = cluster_status(&nats.url()).await;
        let partitions = partitions_of(&status);
        let drained = partitions
            .iter()
            .all(|p| p["lag"]["total"] == 0 && p["owner"].is_string());
        (drained && partitions.len() == usize::from(PARTITIONS) && status["lag_scans"] == Value::Array(vec![]))
            .then_some(())
    })
    .await;
}

/// `orderflow cluster status --json`, parsed.
async fn cluster_status(url: &str) -> Value {
    let out = orderflow_cli(url, &["cluster", "status", "--json"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("the status is JSON")
}

fn partitions_of(status: &Value) -> Vec<Value> {
    status["partitions"].as_array().cloned().unwrap_or_default()
}
