//! Which nodes are up: each node keeps a key in the `ORDERFLOW_NODES` bucket
//! fresh, and the bucket's max age forgets a node that stopped refreshing.
//! Nothing depends on it for correctness (OCC does); it is what operators
//! and `orderflow cluster status` see, and what partition ownership
//! balances over (`leases`).

use std::time::{Duration, SystemTime};

use async_nats::jetstream::kv;
use async_nats::jetstream::Context;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::bus::batch_get::BatchGets;

/// The bucket of live nodes.
pub const BUCKET: &str = "ORDERFLOW_NODES";

/// How often a node refreshes its key.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// How long a key outlives its last refresh: a node silent this long is
/// gone, and the partitions it should own go to the others.
pub const EXPIRY: Duration = Duration::from_secs(5);

/// What a node says of itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeCard {
    /// Unique per process: host, pid and a random suffix.
    pub id: String,
    /// Where its HTTP facade listens.
    pub http: String,
    /// When it started (RFC 3339).
    pub started: String,
    /// The orderflow version it runs.
    pub version: String,
}

/// A node as the bucket shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LiveNode {
    /// What it says of itself.
    #[serde(flatten)]
    pub card: NodeCard,
    /// When it last refreshed its key (RFC 3339).
    pub seen: String,
}

/// Why the membership bucket could not be used.
#[derive(Debug, thiserror::Error)]
#[error("node membership ({BUCKET}): {0}")]
pub struct MembershipError(String);

/// The bucket's configuration (created with the rest of the topology).
pub fn bucket_config(replicas: usize) -> kv::Config {
    kv::Config {
        bucket: BUCKET.to_owned(),
        description: "orderflow: live nodes (each refreshes its key; silent ones age out)".to_owned(),
        history: 1,
        max_age: EXPIRY,
        storage: async_nats::jetstream::stream::StorageType::File,
        num_replicas: replicas,
        ..Default::default()
    }
}

/// A fresh id for this process.
pub fn node_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".to_owned());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &suffix[..6])
}

/// Keeps `card` in the bucket until `stop` turns true, then removes it.
pub async fn announce(js: Context, card: NodeCard, mut stop: watch::Receiver<bool>) {
    let store = match js.get_key_value(BUCKET).await {
        Ok(store) => store,
        Err(e) => {
            tracing::warn!(error = %e, "node membership unavailable; this node will not be listed");
            return;
        }
    };
    let key = card.id.clone();
    let Ok(value) = serde_json::to_vec(&card) else {
        return;
    };
    let mut tick = tokio::time::interval(HEARTBEAT);
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = store.put(&key, value.clone().into()).await {
                    tracing::warn!(error = %e, "node heartbeat not stored");
                }
            }
            () = &mut stopped => break,
        }
    }
    if let Err(e) = store.delete(&key).await {
        tracing::debug!(error = %e, "node key not removed; it ages out");
    }
}

/// Every node whose key is fresh, by id.
pub async fn live_nodes(js: &Context) -> Result<Vec<LiveNode>, MembershipError> {
    let fail = |e: &dyn std::fmt::Display| MembershipError(e.to_string());
    let store = js.get_key_value(BUCKET).await.map_err(|e| fail(&e))?;
    let mut keys = store.keys().await.map_err(|e| fail(&e))?;
    let mut nodes = Vec::new();
    while let Some(key) = keys.next().await {
        let key = key.map_err(|e| fail(&e))?;
        let Ok(Some(entry)) = store.entry(&key).await else {
            continue;
        };
        if entry.operation != kv::Operation::Put {
            continue;
        }
        if let Ok(card) = serde_json::from_slice::<NodeCard>(&entry.value) {
            let seen = humantime::format_rfc3339_seconds(SystemTime::from(entry.created)).to_string();
            nodes.push(LiveNode { card, seen });
        }
    }
    nodes.sort_by(|a, b| a.card.id.cmp(&b.card.id));
    Ok(nodes)
}

/// The ids of every node whose key is fresh, read with one batched direct
/// get: the lease loop asks every tick, and a `keys()` would create a
/// consumer on the bucket each time (a score of them alive at once under
/// load, each one meta-layer work in a cluster).
pub async fn live_ids(reads: &BatchGets) -> Result<std::collections::BTreeSet<String>, MembershipError> {
    let prefix = format!("$KV.{BUCKET}.");
    let latest = reads
        .last_per_subject(&format!("KV_{BUCKET}"), &format!("{prefix}>"), MAX_NODES)
        .await
        .map_err(|e| MembershipError(e.to_string()))?;
    Ok(latest
        .into_iter()
        .filter(|entry| {
            // A node that stopped cleanly left a delete marker as its key's last entry.
            let operation = entry.headers.get(KV_OPERATION).map(|v| v.as_str());
            !matches!(operation, Some("DEL" | "PURGE"))
        })
        .filter_map(|entry| entry.subject.strip_prefix(prefix.as_str()).map(str::to_owned))
        .collect())
}

/// The most nodes one read lists (the server's cap on one batched get's subjects).
const MAX_NODES: usize = 1024;

/// The header in which a KV entry says it is a deletion.
const KV_OPERATION: &str = "KV-Operation";
