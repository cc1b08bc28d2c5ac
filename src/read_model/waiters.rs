//! Requests waiting on an order (`?wait=`), fed by the node's follower of
//! ORDERS: it hands every record of a watched order to its waiters and
//! wakes them at the ending, so a wait is answered from what the follower
//! already read, without reading the journal again.
//!
//! The follower reads stored messages in stream order without gaps (an
//! ordered consumer), so a waiter registered before an order's first event
//! is stored hears all of it, and one registered before a read of the
//! journal hears everything the read did not return.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use schemas::OrderId;
use tokio::sync::Notify;

use crate::bus::journal::Record;

/// One waiter's share: the records heard for its order, and its wake-up.
#[derive(Default)]
struct Heard {
    records: Mutex<Vec<Record>>,
    ended: Notify,
}

impl Heard {
    fn records(&self) -> MutexGuard<'_, Vec<Record>> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn hear(&self, record: Record, ending: bool) {
        self.records().push(record);
        if ending {
            // `notify_one` keeps a permit for a waiter not yet waiting.
            self.ended.notify_one();
        }
    }
}

/// The orders somebody waits on, each with its waiters.
#[derive(Default)]
pub struct Waiters {
    waiting: Mutex<HashMap<OrderId, Vec<Arc<Heard>>>>,
}

impl std::fmt::Debug for Waiters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiters").finish_non_exhaustive()
    }
}

impl Waiters {
    fn waiting(&self) -> MutexGuard<'_, HashMap<OrderId, Vec<Arc<Heard>>>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts hearing `order_id`'s records: register before the order's
    /// first append, or before reading its journal, so nothing stored in
    /// between is missed.
    pub fn watch(self: &Arc<Self>, order_id: OrderId) -> Waiter {
        let heard = Arc::new(Heard::default());
        self.waiting().entry(order_id).or_default().push(heard.clone());
        Waiter {
            waiters: self.clone(),
            order_id,
            heard,
        }
    }

    /// Hands the record `make` builds to `order_id`'s waiters, if it has
    /// any (the record is built only then); `ending` wakes them.
    pub fn heard(&self, order_id: &OrderId, ending: bool, make: impl FnOnce() -> Record) {
        let waiting = self.waiting();
        let Some((last, others)) = waiting.get(order_id).and_then(|heard| heard.split_last()) else {
            return;
        };
        let record = make();
        // Copied only for a second waiter: a record holds the message's headers.
        for heard in others {
            heard.hear(record.clone(), ending);
        }
        last.hear(record, ending);
    }

    /// How many orders are waited on.
    #[cfg(test)]
    fn orders_watched(&self) -> usize {
        self.waiting().len()
    }
}

/// One request's wait on one order; stops hearing it when dropped.
pub struct Waiter {
    waiters: Arc<Waiters>,
    order_id: OrderId,
    heard: Arc<Heard>,
}

impl Waiter {
    /// Returns once the order's ending was heard (possibly before this call).
    pub async fn ended(&self) {
        self.heard.ended.notified().await;
    }

    /// The records heard since the last call, oldest first.
    pub fn take(&self) -> Vec<Record> {
        std::mem::take(&mut *self.heard.records())
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let mut waiting = self.waiters.waiting();
        if let Some(heard) = waiting.get_mut(&self.order_id) {
            heard.retain(|h| !Arc::ptr_eq(h, &self.heard));
            if heard.is_empty() {
                waiting.remove(&self.order_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_nats::jetstream::message::StreamMessage;
    use std::time::Duration;

    fn record(seq: u64) -> Record {
        Record::of(StreamMessage {
            subject: "orders.x.placed".into(),
            sequence: seq,
            headers: async_nats::HeaderMap::new(),
            payload: bytes::Bytes::new(),
            time: time::OffsetDateTime::UNIX_EPOCH,
        })
    }

    #[tokio::test]
    async fn records_and_the_ending_reach_every_waiter_of_the_order_only() {
        let waiters = Arc::new(Waiters::default());
        let (order, other) = (OrderId::random(), OrderId::random());
        let first = waiters.watch(order);
        let second = waiters.watch(order);
        let unrelated = waiters.watch(other);
        waiters.heard(&order, false, || record(1));
        waiters.heard(&order, true, || record(2));
        waiters.heard(&OrderId::random(), true, || {
            unreachable!("nobody waits: no record built")
        });
        let heard = tokio::time::timeout(Duration::from_secs(5), async {
            first.ended().await;
            second.ended().await;
        });
        assert!(heard.await.is_ok(), "both waiters of the order woke");
        let seqs = |w: &Waiter| w.take().iter().map(|r| r.seq).collect::<Vec<_>>();
        assert_eq!(seqs(&first), [1, 2]);
        assert_eq!(seqs(&first), Vec::<u64>::new(), "taken once");
        assert_eq!(seqs(&second), [1, 2]);
        let quiet = tokio::time::timeout(Duration::from_millis(20), unrelated.ended()).await;
        assert!(quiet.is_err(), "another order's waiter did not wake");
        assert!(unrelated.take().is_empty());
        drop((first, second));
        assert_eq!(waiters.orders_watched(), 1);
        drop(unrelated);
        assert_eq!(waiters.orders_watched(), 0);
    }
}
