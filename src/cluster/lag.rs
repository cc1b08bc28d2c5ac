//! Consumer lag per partition, for `orderflow cluster status`.
//!
//! Every node pulls from the same durable consumers and forwards an input to
//! its partition's owner, so the server's pending counts are per consumer,
//! not per partition. This reads what a consumer has not acknowledged yet
//! (every message above its ack floor that matches its filters) and
//! attributes each to the partition whose owner executes it.
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
use schemas::order::OrderEvent;
use schemas::subjects::EntityRef;
use serde::Serialize;

use super::partitions::{self, Partition};
use crate::bus::envelope;
use crate::bus::topology::{self, Inbox};

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

/// Whose partition executes a consumer's inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutedBy {
    /// The order each message belongs to (its `Order-Id`).
    Order,
    /// Every SKU a stock request names.
    EverySku,
}

impl ExecutedBy {
    /// How `saga::handlers` routes `inbox`'s inputs.
    pub fn of(inbox: &Inbox) -> Self {
        if *inbox == topology::STOCK_REQUESTS {
            Self::EverySku
        } else {
            Self::Order
        }
    }

    /// The entities that execute one message; an unreadable stock request
    /// is attributed to its order (it will be dead-lettered there).
    pub fn entities(self, subject: &str, headers: Option<&HeaderMap>, payload: &[u8]) -> Vec<String> {
        if self == Self::EverySku {
            let skus: Vec<String> = match envelope::decode::<OrderEvent>(headers, payload) {
                Ok(OrderEvent::StockRequested { lines, .. }) => lines.into_iter().map(|l| l.sku.to_string()).collect(),
                Ok(OrderEvent::Compensating { release, withdraw, .. }) => {
                    release.into_iter().chain(withdraw).map(|s| s.to_string()).collect()
                }
                _ => Vec::new(),
            };
            if !skus.is_empty() {
                return skus;
            }
        }
        envelope::header(headers, h::ORDER_ID)
            .map(str::to_owned)
            .or_else(|| EntityRef::parse_subject(subject).map(|(entity, _)| entity.id))
            .or_else(|| schemas::timer::order_of(subject).map(|id| id.to_string()))
            .into_iter()
            .collect()
    }
}

/// One consumer whose inputs a partition owner executes.
struct Partitioned {
    stream: &'static str,
    name: &'static str,
    filters: Vec<String>,
    executed_by: ExecutedBy,
}

/// The inboxes and the fired timers' consumer.
fn partitioned_consumers() -> Vec<Partitioned> {
    let mut consumers: Vec<Partitioned> = topology::INBOXES
        .iter()
        .map(|inbox| Partitioned {
            stream: inbox.source.stream(),
            name: inbox.name,
            filters: inbox.filters(),
            executed_by: ExecutedBy::of(inbox),
        })
        .collect();
    consumers.push(Partitioned {
        stream: schemas::timer::STREAM,
        name: topology::ORDER_TIMERS,
        filters: vec![schemas::timer::fired_filter()],
        executed_by: ExecutedBy::Order,
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
        let executed_by = consumer.executed_by;
        let scanned = scan_from(&stream, consumer.filters, start, |subject, headers, payload| {
            for id in executed_by.entities(subject, headers, payload) {
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
    mut visit: impl FnMut(&str, Option<&HeaderMap>, &[u8]),
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
            visit(&message.subject, message.headers.as_ref(), &message.payload);
        }
        if info.pending == 0 {
            return Ok((read, false));
        }
    }
    Ok((read, read >= SCAN_CAP))
}

#[cfg(test)]
mod tests {
    use actors::journal::Cause;
    use schemas::order::Outcome;
    use schemas::{OrderId, Sku};

    use super::*;

    fn headers_of(order: &OrderId) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(h::ORDER_ID, order.to_string().as_str());
        headers
    }

    #[test]
    fn order_inputs_are_executed_by_their_order_even_on_a_sku_subject() {
        let order = OrderId::random();
        let executors = ExecutedBy::of(&topology::ORDER_STOCK_REPLIES).entities(
            "inventory.SKU-1.reserved",
            Some(&headers_of(&order)),
            &[],
        );
        assert_eq!(executors, vec![order.to_string()]);
    }

    #[test]
    fn a_stock_request_is_executed_by_every_sku_it_names() {
        let order = OrderId::random();
        let event = OrderEvent::Compensating {
            outcome: Outcome::Failed,
            reason: "test".into(),
            refund: None,
            release: vec![Sku::parse("A").expect("sku")],
            withdraw: vec![Sku::parse("B").expect("sku")],
        };
        let entity = EntityRef::order(order);
        let headers = envelope::append_headers(&entity, &event, 0, &Cause::default());
        let payload = schemas::wire::encode(&event).expect("encodes");
        let subject = entity.subject("compensating");
        let executors = ExecutedBy::EverySku.entities(&subject, Some(&headers), &payload);
        assert_eq!(executors, vec!["A".to_owned(), "B".to_owned()]);
    }

    #[test]
    fn an_unreadable_stock_request_falls_back_to_its_order() {
        let order = OrderId::random();
        let subject = EntityRef::order(order).subject("stock_requested");
        let executors = ExecutedBy::of(&topology::STOCK_REQUESTS).entities(&subject, None, b"garbage");
        assert_eq!(executors, vec![order.to_string()]);
    }
}
