//! The projection consumer every node runs for itself: an ordered consumer
//! over ORDERS from the first message, folding each event into the node's
//! [`OrderIndex`] and handing each record of an order somebody waits on to
//! its [`Waiters`]. It lags the journal a little; the lag is shown, not hidden.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::{Duration, SystemTime};

use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use async_nats::jetstream::message::StreamMessage;
use futures::StreamExt;
use metrics::{describe_gauge, gauge};
use schemas::order::OrderEvent;
use schemas::subjects::{EntityKind, EntityRef};
use schemas::OrderId;
use tokio::sync::watch;

use super::orders::OrderIndex;
use super::waiters::{Waiter, Waiters};
use crate::bus::envelope;
use crate::bus::journal::Record;

/// How long to wait before re-creating a consumer that could not be created.
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// The node's order index and the consumer that keeps it.
#[derive(Clone, Default)]
pub struct OrderReadModel {
    index: Arc<RwLock<OrderIndex>>,
    waiters: Arc<Waiters>,
    /// When a message was last folded, in ms since the Unix epoch.
    folded_at_ms: Arc<AtomicU64>,
    /// Whether the consumer has folded what the stream held when it was
    /// created (see [`Self::caught_up`]).
    caught_up: Arc<AtomicBool>,
}

impl OrderReadModel {
    /// Reads the index as it stands.
    pub fn read(&self) -> RwLockReadGuard<'_, OrderIndex> {
        self.index.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Follows ORDERS from its start until `stop` turns true.
    pub async fn follow(self, js: async_nats::jetstream::Context, mut stop: watch::Receiver<bool>) {
        describe_gauge!(
            "orderflow_read_model_applied_seq",
            "Last ORDERS sequence folded into this node's order index"
        );
        describe_gauge!(
            "orderflow_read_model_pending",
            "ORDERS messages not yet folded into this node's order index (its lag)"
        );
        let kind = EntityKind::Order;
        while !*stop.borrow() {
            let consumer = async {
                let stream = js.get_stream(kind.stream()).await?;
                // Nothing to replay: caught up before the first message.
                let empty = stream.cached_info().state.messages == 0;
                self.caught_up.store(empty, Ordering::Relaxed);
                let config = pull::OrderedConfig {
                    deliver_policy: DeliverPolicy::All,
                    ..Default::default()
                };
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
                    stream.create_consumer(config).await?.messages().await?,
                )
            };
            let mut messages = match consumer.await {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "order index: cannot read ORDERS; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(RETRY_DELAY) => continue,
                        _ = stop.changed() => return,
                    }
                }
            };
            // Rebuilt from the start: whatever was folded before is replaced.
            *self.index.write().unwrap_or_else(|p| p.into_inner()) = OrderIndex::default();
            loop {
                let next = tokio::select! {
                    next = messages.next() => next,
                    _ = stop.changed() => return,
                };
                match next {
                    Some(Ok(message)) => self.fold(message),
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "order index: reading interrupted; rebuilding");
                        break;
                    }
                    None => break,
                }
            }
        }
    }

    /// Starts hearing `order_id`'s records as they are followed (see
    /// [`Waiters::watch`]).
    pub fn watch(&self, order_id: OrderId) -> Waiter {
        self.waiters.watch(order_id)
    }

    /// Whether the consumer has folded everything the stream held when it was
    /// last (re)created. Until then it is replaying history, after a
    /// restart for seconds on a long journal, and a record stored now is
    /// heard only once the replay reaches it.
    pub fn caught_up(&self) -> bool {
        self.caught_up.load(Ordering::Acquire)
    }

    /// Whether nothing was folded for `quiet`: the stream is idle, or the
    /// consumer is being re-created and its waiters may hear nothing meanwhile.
    pub fn quiet_for(&self, quiet: Duration) -> bool {
        let folded_at = self.folded_at_ms.load(Ordering::Relaxed);
        now_ms().saturating_sub(folded_at) >= u64::try_from(quiet.as_millis()).unwrap_or(u64::MAX)
    }

    fn fold(&self, message: async_nats::jetstream::Message) {
        self.folded_at_ms.store(now_ms(), Ordering::Relaxed);
        let Ok(info) = message.info() else { return };
        let (seq, pending, published) = (info.stream_sequence, info.pending, info.published);
        let time_ms = ms_since_epoch(SystemTime::from(published));
        let order = EntityRef::parse_subject(&message.subject).and_then(|(entity, _)| OrderId::parse(&entity.id).ok());
        let event = envelope::decode::<OrderEvent>(message.headers.as_ref(), &message.payload);
        {
            let mut index = self.index.write().unwrap_or_else(|p| p.into_inner());
            match (order, &event) {
                (Some(order), Ok(event)) => index.apply(seq, time_ms, order, event),
                // The order consumer dead-letters such messages; here it is only skipped.
                (_, Err(e)) => {
                    tracing::debug!(subject = %message.subject, error = %e, "order index: unreadable event skipped");
                    index.skip(seq);
                }
                (None, Ok(_)) => index.skip(seq),
            }
        }
        if let (Some(order), Ok(event)) = (order, &event) {
            // Moved, not copied: the message is not needed after its record.
            let message = message.message;
            self.waiters.heard(&order, event.outcome().is_some(), || {
                Record::of(StreamMessage {
                    subject: message.subject,
                    sequence: seq,
                    headers: message.headers.unwrap_or_default(),
                    payload: message.payload,
                    time: published,
                })
            });
        }
        gauge!("orderflow_read_model_applied_seq").set(seq as f64);
        gauge!("orderflow_read_model_pending").set(pending as f64);
        // After the fold: whoever sees the flag sees the index it stands for.
        if pending == 0 {
            self.caught_up.store(true, Ordering::Release);
        }
    }
}

fn now_ms() -> u64 {
    ms_since_epoch(SystemTime::now())
}

fn ms_since_epoch(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The last sequence ORDERS holds, asked of the server.
pub async fn stream_last_seq(js: &async_nats::jetstream::Context) -> Result<u64, async_nats::Error> {
    let stream = js.get_stream(EntityKind::Order.stream()).await?;
    Ok(stream.cached_info().state.last_sequence)
}
