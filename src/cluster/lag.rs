//! Consumer lag per partition, for `orderflow cluster status`.
//!
//! Every node pulls from the same durable consumers and forwards each step
//! of an input to its entity's partition owner, so the server's pending
//! counts are per consumer, not per partition. This reads what a consumer
//! has not acknowledged yet (every message above its ack floor that matches
//! its filters) and attributes each to its order's partition.
//!
//! Messages above the ack floor that were acknowledged out of order are
//! still counted, so per partition this is an upper bound; it is exact
//! whenever the consumer's acks are in order (as they are at rest), and 0 is
//! always exact.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use async_nats::jetstream::Context;
use async_nats::HeaderMap;
use futures::StreamExt;
use schemas::headers as h;
use schemas::subjects::EntityRef;
use serde::Serialize;

use super::partitions::{self, Partition};
use crate::bus::envelope;
use crate::bus::topology;

/// At most this many messages are read per consumer; beyond it the lag
/// is reported as truncated.
pub const SCAN_CAP: u64 = 10_000;

/// A scan that hears nothing for this long gives up (its server went away).
const SCAN_IDLE: Duration = Duration::from_secs(3);

/// One partition's unacknowledged inputs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PartitionLag {
    /// Over every consumer.
    pub total: u64,
    /// By consumer, as `STREAM/consumer`; consumers with none are left out.
    pub by_consumer: BTreeMap<String, u64>,
}

/// How one consumer's backlog was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Scan {
    /// `STREAM/consumer`.
    pub consumer: String,
    /// Messages read above the ack floor.
    pub read: u64,
    /// Stopped at [`SCAN_CAP`] (or a silent server) before the end.
    pub truncated: bool,
}

/// Per partition lag, and how each consumer was scanned.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Lag {
    /// Only partitions with lag.
    pub partitions: BTreeMap<Partition, PartitionLag>,
    /// Only consumers that had something above their ack floor.
    pub scans: Vec<Scan>,
}

/// The order one input belongs to (its `Order-Id`, else its subject):
/// every input is an order's, driven through the saga under that order.
pub fn order_of(subject: &str, headers: Option<&HeaderMap>) -> Option<String> {
    envelope::header(headers, h::ORDER_ID)
        .map(str::to_owned)
        .or_else(|| EntityRef::parse_subject(subject).map(|(entity, _)| entity.id))
        .or_else(|| schemas::timer::order_of(subject).map(|id| id.to_string()))
}

/// One consumer whose inputs a partition owner executes.
struct Partitioned {
    stream: &'static str,
    name: &'static str,
    filters: Vec<String>,
}

/// The inboxes and the fired timers' consumer.
fn partitioned_consumers() -> Vec<Partitioned> {
    let mut consumers: Vec<Partitioned> = topology::INBOXES
        .iter()
        .map(|inbox| Partitioned {
            stream: inbox.source.stream(),
            name: inbox.name,
            filters: inbox.filters(),
        })
        .collect();
    consumers.push(Partitioned {
        stream: schemas::timer::STREAM,
        name: topology::ORDER_TIMERS,
        filters: vec![schemas::timer::fired_filter()],
    });
    consumers
}

/// Reads every partitioned consumer's backlog over `count` partitions.
pub async fn read(js: &Context, count: Partition) -> Lag {
    let mut lag = Lag::default();
    for consumer in partitioned_consumers() {
        let label = format!("{}/{}", consumer.stream, consumer.name);
        let Ok(stream) = js.get_stream_no_info(consumer.stream).await else {
            continue;
        };
        let Ok(info) = stream.consumer_info(consumer.name).await else {
            continue;
        };
        if info.num_pending == 0 && info.num_ack_pending == 0 {
            continue;
        }
        let start = info.ack_floor.stream_sequence + 1;
        let scanned = scan_from(&stream, consumer.filters, start, |subject, headers| {
            if let Some(id) = order_of(subject, headers) {
                let entry = lag.partitions.entry(partitions::partition_of(&id, count)).or_default();
                entry.total += 1;
                *entry.by_consumer.entry(label.clone()).or_default() += 1;
            }
        })
        .await;
        let (read, truncated) = scanned.unwrap_or_else(|e| {
            tracing::warn!(consumer = %label, error = %e, "lag scan failed");
            (0, true)
        });
        lag.scans.push(Scan {
            consumer: label,
            read,
            truncated,
        });
    }
    lag
}

/// Feeds `visit` every message on `filters` from `start`, up to
/// [`SCAN_CAP`]; returns how many were read and whether it stopped early.
async fn scan_from(
    stream: &async_nats::jetstream::stream::Stream<()>,
    filters: Vec<String>,
    start: u64,
    mut visit: impl FnMut(&str, Option<&HeaderMap>),
) -> Result<(u64, bool), String> {
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            filter_subjects: filters,
            deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: start },
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    if consumer.cached_info().num_pending == 0 {
        return Ok((0, false));
    }
    let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
    let mut read = 0;
    while read < SCAN_CAP {
        let Ok(next) = tokio::time::timeout(SCAN_IDLE, messages.next()).await else {
            return Ok((read, true));
        };
        let Some(message) = next else { break };
        let message = message.map_err(|e| e.to_string())?;
        let info = message.info().map_err(|e| e.to_string())?;
        // An ordered consumer re-created after a server left starts over
        // from the first message; those below `start` were acked.
        if info.stream_sequence >= start {
            read += 1;
            visit(&message.subject, message.headers.as_ref());
        }
        if info.pending == 0 {
            return Ok((read, false));
        }
    }
    Ok((read, read >= SCAN_CAP))
}

#[cfg(test)]
mod tests {
    use schemas::OrderId;

    use super::*;

    #[test]
    fn an_input_belongs_to_its_order_header_then_its_subject() {
        let order = OrderId::random();
        let mut headers = HeaderMap::new();
        headers.insert(h::ORDER_ID, order.to_string().as_str());
        assert_eq!(order_of("orders.x.placed", Some(&headers)), Some(order.to_string()));
        let subject = EntityRef::order(order).subject("cancel_requested");
        assert_eq!(order_of(&subject, None), Some(order.to_string()));
        let fired = schemas::timer::fired_subject(order);
        assert_eq!(order_of(&fired, None), Some(order.to_string()));
        assert_eq!(order_of("nonsense", None), None);
    }
}
