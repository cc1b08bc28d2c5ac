//! `orderflow cluster status`: the live app nodes, each partition's owner,
//! each stream's placement (leader, replicas, how current each is) and each
//! durable consumer's lag, and that lag per partition ([`lag`]),
//! straight from NATS (no node needs to be up).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use async_nats::jetstream::Context;
use serde::Serialize;

use super::lag::{self, PartitionLag, Scan};
use super::leases;
use super::membership::{self, LiveNode};
use super::partitions::Partition;
use crate::bus::topology;
use crate::config::Config;

/// One replica of a stream or consumer.
#[derive(Debug, Clone, Serialize)]
pub struct Replica {
    /// The NATS server holding it.
    pub server: String,
    /// Whether it has everything the leader has.
    pub current: bool,
    /// Operations it is behind.
    pub lag: u64,
}

/// A stream's placement and size.
#[derive(Debug, Clone, Serialize)]
pub struct StreamStatus {
    /// Its name.
    pub name: String,
    /// Stored messages.
    pub messages: u64,
    /// Configured replicas.
    pub replicas: usize,
    /// The server leading it, if clustered.
    pub leader: Option<String>,
    /// The followers.
    pub followers: Vec<Replica>,
}

/// A durable consumer's lag.
#[derive(Debug, Clone, Serialize)]
pub struct ConsumerStatus {
    /// Its stream.
    pub stream: String,
    /// Its name.
    pub name: String,
    /// Messages not yet delivered.
    pub pending: u64,
    /// Delivered and not yet acknowledged.
    pub ack_pending: usize,
    /// Pull requests waiting: roughly, the nodes pulling from it now.
    pub pulling: usize,
    /// The server leading it, if clustered.
    pub leader: Option<String>,
}

/// Everything the command shows.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterStatus {
    /// App nodes whose heartbeat is fresh.
    pub nodes: Vec<LiveNode>,
    /// The streams.
    pub streams: Vec<StreamStatus>,
    /// The durable consumers.
    pub consumers: Vec<ConsumerStatus>,
    /// Each partition's owner, if its lease is held, and its lag.
    pub partitions: Vec<PartitionStatus>,
    /// How each consumer with a backlog was read to attribute its lag.
    pub lag_scans: Vec<Scan>,
}

/// One partition and the node holding its lease.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionStatus {
    /// Its number.
    pub partition: Partition,
    /// The node holding its lease; none between owners.
    pub owner: Option<String>,
    /// Since when (RFC 3339).
    pub since: Option<String>,
    /// Inputs not yet acknowledged that this partition's owner executes.
    pub lag: PartitionLag,
}

/// Reads the status from the server `js` is connected to.
pub async fn read(js: &Context, config: &Config) -> anyhow::Result<ClusterStatus> {
    let nodes = membership::live_nodes(js).await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "no node list");
        Vec::new()
    });
    let mut streams = Vec::new();
    for stream in topology::streams(config) {
        let Ok(mut handle) = js.get_stream(&stream.name).await else {
            continue;
        };
        let Ok(info) = handle.info().await else { continue };
        let cluster = info.cluster.clone();
        streams.push(StreamStatus {
            name: stream.name.clone(),
            messages: info.state.messages,
            replicas: info.config.num_replicas,
            leader: cluster.as_ref().and_then(|c| c.leader.clone()),
            followers: cluster
                .map(|c| {
                    c.replicas
                        .into_iter()
                        .map(|r| Replica {
                            server: r.name,
                            current: r.current,
                            lag: r.lag.unwrap_or(0),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        });
    }
    let mut consumers = Vec::new();
    for (stream, consumer) in topology::consumers(config) {
        let Some(name) = consumer.durable_name.clone() else {
            continue;
        };
        let Ok(handle) = js.get_stream_no_info(stream).await else {
            continue;
        };
        let Ok(info) = handle.consumer_info(&name).await else {
            continue;
        };
        consumers.push(ConsumerStatus {
            stream: stream.to_owned(),
            name,
            pending: info.num_pending,
            ack_pending: info.num_ack_pending,
            pulling: info.num_waiting,
            leader: info.cluster.and_then(|c| c.leader),
        });
    }
    let mut leases = leases::leases(js).await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "no partition leases");
        Default::default()
    });
    let mut lag = lag::read(js, config.cluster.partitions).await;
    let partitions = (0..config.cluster.partitions)
        .map(|partition| {
            let lease = leases.remove(&partition);
            PartitionStatus {
                partition,
                since: lease.as_ref().map(|l| l.since.clone()),
                owner: lease.map(|l| l.node),
                lag: lag.partitions.remove(&partition).unwrap_or_default(),
            }
        })
        .collect();
    Ok(ClusterStatus {
        nodes,
        streams,
        consumers,
        partitions,
        lag_scans: lag.scans,
    })
}

/// The status as a person reads it.
pub fn render(status: &ClusterStatus) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "nodes ({}):", status.nodes.len());
    for n in &status.nodes {
        let _ = writeln!(
            out,
            "  {:<32} http {:<22} up since {}  seen {}",
            n.card.id, n.card.http, n.card.started, n.seen
        );
    }
    let _ = writeln!(out, "streams:");
    for s in &status.streams {
        let followers: Vec<String> = s
            .followers
            .iter()
            .map(|r| {
                let state = if r.current { "current" } else { "behind" };
                format!("{} {state} (lag {})", r.server, r.lag)
            })
            .collect();
        let _ = writeln!(
            out,
            "  {:<20} R{} leader {:<8} {:>9} msgs  {}",
            s.name,
            s.replicas,
            s.leader.as_deref().unwrap_or("-"),
            s.messages,
            followers.join(", ")
        );
    }
    let _ = writeln!(out, "consumers:");
    for c in &status.consumers {
        let _ = writeln!(
            out,
            "  {:<40} pending {:>7}  ack pending {:>5}  pulling {:>2}  leader {}",
            format!("{}/{}", c.stream, c.name),
            c.pending,
            c.ack_pending,
            c.pulling,
            c.leader.as_deref().unwrap_or("-")
        );
    }
    let mut owners: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for p in &status.partitions {
        let owner = p.owner.as_deref().unwrap_or("(no owner)");
        owners.entry(owner).or_default().push(p.partition.to_string());
    }
    let _ = writeln!(out, "partitions ({}), by owner:", status.partitions.len());
    for (owner, partitions) in owners {
        let _ = writeln!(out, "  {owner:<32} {:>3}: {}", partitions.len(), partitions.join(" "));
    }
    render_lag(&mut out, status);
    out
}

/// The partitions with unacknowledged inputs, largest first.
fn render_lag(out: &mut String, status: &ClusterStatus) {
    let mut lagging: Vec<&PartitionStatus> = status.partitions.iter().filter(|p| p.lag.total > 0).collect();
    lagging.sort_by_key(|p| (std::cmp::Reverse(p.lag.total), p.partition));
    if lagging.is_empty() {
        let _ = writeln!(out, "lag by partition: none (every input is acknowledged)");
        return;
    }
    let _ = writeln!(out, "lag by partition ({} with unacknowledged inputs):", lagging.len());
    for p in lagging {
        let consumers: Vec<String> = p.lag.by_consumer.iter().map(|(c, n)| format!("{c} {n}")).collect();
        let _ = writeln!(
            out,
            "  {:>4}  owner {:<32} {:>6}  {}",
            p.partition,
            p.owner.as_deref().unwrap_or("(no owner)"),
            p.lag.total,
            consumers.join(", ")
        );
    }
    for scan in status.lag_scans.iter().filter(|s| s.truncated) {
        let _ = writeln!(
            out,
            "  (read only the first {} messages of {}: its lag is at least what is shown)",
            scan.read, scan.consumer
        );
    }
    let _ = writeln!(
        out,
        "(messages above a consumer's ack floor, by the partition whose owner executes them; an upper bound while acks are out of order)"
    );
}
