//! Partition leases: each partition has at most one owner, the node whose
//! key in the `ORDERFLOW_PARTITIONS` bucket names it.
//!
//! A lease is taken with `create` (it succeeds only when the key is absent),
//! renewed by compare-and-set on its revision, and given up by a delete
//! that expects that revision. The bucket's max age is the lease's TTL: a
//! node that stops renewing (killed, cut off) loses its leases when they age
//! out, and the nodes that should own those partitions now take them. Which
//! node should own what is `partitions::assigned_to` over the live members
//! of `ORDERFLOW_NODES`, so all nodes agree without talking to each other.
//!
//! Ownership is advisory for correctness: two nodes executing for the same
//! entity at once (a lease that just moved) are kept apart by optimistic
//! concurrency on the journal (invariant 2). Leases keep it rare, so each
//! entity's actor lives on one node and hot entities stop fighting.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_nats::jetstream::kv;
use async_nats::jetstream::Context;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::membership;
use super::partitions::{self, Partition};
use crate::bus::batch_get::BatchGets;
use crate::telemetry;

/// The bucket of partition leases.
pub const BUCKET: &str = "ORDERFLOW_PARTITIONS";

/// What a lease says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The owning node's id (as in `ORDERFLOW_NODES`).
    pub node: String,
    /// When it took the partition (RFC 3339).
    pub since: String,
}

/// The bucket's configuration: one value per key, aged out `ttl` after its last renewal.
pub fn bucket_config(replicas: usize, ttl: Duration) -> kv::Config {
    kv::Config {
        bucket: BUCKET.to_owned(),
        description: "orderflow: partition leases (key: partition, value: owner; renewed or aged out)".to_owned(),
        history: 1,
        max_age: ttl,
        storage: async_nats::jetstream::stream::StorageType::File,
        num_replicas: replicas,
        ..Default::default()
    }
}

/// The key of `partition`'s lease.
pub fn key(partition: Partition) -> String {
    partition.to_string()
}

/// Which partitions this node owns now, read on every input it routes.
#[derive(Debug)]
pub struct Ownership {
    me: String,
    owned: Vec<AtomicBool>,
}

impl Ownership {
    /// Nothing owned yet, out of `count` partitions.
    pub fn new(me: String, count: Partition) -> Self {
        Self {
            me,
            owned: (0..count.max(1)).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    /// This node's id.
    pub fn me(&self) -> &str {
        &self.me
    }

    /// How many partitions there are.
    pub fn count(&self) -> Partition {
        // Built from a `Partition`, so it fits.
        self.owned.len() as Partition
    }

    /// The partition of the entity named `id`.
    pub fn partition_of(&self, id: &str) -> Partition {
        partitions::partition_of(id, self.count())
    }

    /// Whether this node holds `partition`'s lease.
    pub fn owns(&self, partition: Partition) -> bool {
        self.owned
            .get(usize::from(partition))
            .is_some_and(|o| o.load(Ordering::Acquire))
    }

    /// The partitions this node holds.
    pub fn owned(&self) -> Vec<Partition> {
        (0..self.count()).filter(|p| self.owns(*p)).collect()
    }

    fn set(&self, partition: Partition, owned: bool) {
        if let Some(o) = self.owned.get(usize::from(partition)) {
            o.store(owned, Ordering::Release);
        }
        telemetry::partitions::owned(self.owned().len());
    }
}

/// A lease this node holds, and how to stop serving its partition.
struct Held {
    revision: u64,
    value: bytes::Bytes,
    /// When the bucket last confirmed it.
    renewed: Instant,
    serving: watch::Sender<bool>,
}

impl Held {
    /// The same lease, just confirmed at `revision`.
    fn renewed_at(self, revision: u64) -> Self {
        Self {
            revision,
            renewed: Instant::now(),
            ..self
        }
    }
}

/// What the bucket says of a lease this node thought it held.
enum Standing {
    /// Still ours, at this revision.
    Ours(u64),
    /// Someone else's, or gone.
    Lost,
    /// The bucket did not answer (a leader election, a server restarting).
    Unknown,
}

/// Takes, renews and hands over leases until `stop` turns true, then gives
/// every lease up so the others take over at once. While a lease is held,
/// `serve(partition, stopped)` runs (spawned) until `stopped` turns true.
pub async fn hold<F, Fut>(
    js: Context,
    ownership: Arc<Ownership>,
    ttl: Duration,
    serve: F,
    mut stop: watch::Receiver<bool>,
) where
    F: Fn(Partition, watch::Receiver<bool>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let store = match js.get_key_value(BUCKET).await {
        Ok(store) => store,
        Err(e) => {
            tracing::error!(error = %e, "partition leases unavailable; this node routes nothing and executes every input itself");
            return;
        }
    };
    let reads = match BatchGets::start(js.client()).await {
        Ok(reads) => reads,
        Err(e) => {
            tracing::error!(error = %e, "node membership unreadable; this node routes nothing and executes every input itself");
            return;
        }
    };
    let mut held: BTreeMap<Partition, Held> = BTreeMap::new();
    let mut tick = tokio::time::interval(renew_every(ttl));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
        let wanted = match membership::live_ids(&reads).await {
            Ok(live) => partitions::assigned_to(ownership.me(), &live, ownership.count()),
            Err(e) => {
                tracing::warn!(error = %e, "membership unreadable; leases renewed as they are");
                held.keys().copied().collect()
            }
        };
        renew_or_release(&store, &ownership, &mut held, &wanted, ttl).await;
        for partition in wanted {
            if held.contains_key(&partition) {
                continue;
            }
            if let Some(lease) = acquire(&store, &ownership, partition).await {
                let (serving, stopped) = watch::channel(false);
                tokio::spawn(serve(partition, stopped));
                held.insert(
                    partition,
                    Held {
                        revision: lease.0,
                        value: lease.1,
                        renewed: Instant::now(),
                        serving,
                    },
                );
            }
        }
    }
    for (partition, lease) in std::mem::take(&mut held) {
        release(&store, &ownership, partition, lease).await;
    }
}

/// Renewals come a few times per TTL, so one slow round trip loses nothing.
fn renew_every(ttl: Duration) -> Duration {
    (ttl / 5).max(Duration::from_millis(100))
}

async fn renew_or_release(
    store: &kv::Store,
    ownership: &Ownership,
    held: &mut BTreeMap<Partition, Held>,
    wanted: &BTreeSet<Partition>,
    ttl: Duration,
) {
    let partitions: Vec<Partition> = held.keys().copied().collect();
    for partition in partitions {
        let Some(lease) = held.remove(&partition) else {
            continue;
        };
        if !wanted.contains(&partition) {
            release(store, ownership, partition, lease).await;
            continue;
        }
        let error = match store.update(key(partition), lease.value.clone(), lease.revision).await {
            Ok(revision) => {
                held.insert(partition, lease.renewed_at(revision));
                continue;
            }
            Err(e) => e,
        };
        match standing(store, ownership, partition).await {
            Standing::Ours(revision) => {
                held.insert(partition, lease.renewed_at(revision));
            }
            // Nobody else can take it before it ages out: keep serving and
            // try again on the next tick.
            Standing::Unknown if lease.renewed.elapsed() < ttl => {
                held.insert(partition, lease);
            }
            Standing::Unknown | Standing::Lost => {
                tracing::warn!(partition, error = %error, "partition lease lost");
                ownership.set(partition, false);
                let _ = lease.serving.send(true);
                telemetry::partitions::moved("lost");
            }
        }
    }
}

/// Takes `partition` if nobody holds it; its revision and value if taken.
async fn acquire(store: &kv::Store, ownership: &Ownership, partition: Partition) -> Option<(u64, bytes::Bytes)> {
    let lease = Lease {
        node: ownership.me().to_owned(),
        since: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
    };
    let value: bytes::Bytes = serde_json::to_vec(&lease).ok()?.into();
    let revision = match store.create(key(partition), value.clone()).await {
        Ok(revision) => revision,
        // Held by another node (it hands over when it sees us, or ages out),
        // or by this node after a renewal whose answer was lost.
        Err(_) => match standing(store, ownership, partition).await {
            Standing::Ours(revision) => revision,
            Standing::Lost | Standing::Unknown => return None,
        },
    };
    tracing::info!(partition, "partition taken");
    ownership.set(partition, true);
    telemetry::partitions::moved("acquired");
    Some((revision, value))
}

/// Gives `partition` up: stop serving it first, then delete the lease (only
/// if still ours), so the next owner starts on a partition nobody serves.
async fn release(store: &kv::Store, ownership: &Ownership, partition: Partition, lease: Held) {
    ownership.set(partition, false);
    let _ = lease.serving.send(true);
    if let Err(e) = store.delete_expect_revision(key(partition), Some(lease.revision)).await {
        tracing::debug!(partition, error = %e, "lease not deleted; it ages out");
    }
    tracing::info!(partition, "partition handed over");
    telemetry::partitions::moved("released");
}

/// Whether `partition`'s lease names this node.
async fn standing(store: &kv::Store, ownership: &Ownership, partition: Partition) -> Standing {
    let entry = match store.entry(key(partition)).await {
        Ok(Some(entry)) if entry.operation == kv::Operation::Put => entry,
        Ok(_) => return Standing::Lost,
        Err(_) => return Standing::Unknown,
    };
    match serde_json::from_slice::<Lease>(&entry.value) {
        Ok(lease) if lease.node == ownership.me() => Standing::Ours(entry.revision),
        _ => Standing::Lost,
    }
}

/// Every partition's current lease, by partition.
pub async fn leases(js: &Context) -> Result<BTreeMap<Partition, Lease>, String> {
    let store = js.get_key_value(BUCKET).await.map_err(|e| e.to_string())?;
    let mut keys = store.keys().await.map_err(|e| e.to_string())?;
    let mut leases = BTreeMap::new();
    while let Some(key) = keys.next().await {
        let key = key.map_err(|e| e.to_string())?;
        let Ok(partition) = key.parse::<Partition>() else {
            continue;
        };
        let Ok(Some(entry)) = store.entry(&key).await else {
            continue;
        };
        if entry.operation != kv::Operation::Put {
            continue;
        }
        if let Ok(lease) = serde_json::from_slice::<Lease>(&entry.value) {
            leases.insert(partition, lease);
        }
    }
    Ok(leases)
}
