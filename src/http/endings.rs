//! One node-wide subscription to order endings that wakes every `?wait=`
//! request whose order ended.
//!
//! A subscription per request costs a subscribe, a flush and an
//! unsubscribe at the server, and hears every event of its order when only
//! the ending matters; in a cluster, a subscription made a moment before
//! the ending may not have reached the server that stores it yet. This one
//! is made once, at start, on the ending subjects only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use schemas::order::Outcome;
use schemas::subjects::{EntityKind, EntityRef};
use schemas::OrderId;
use tokio::sync::Notify;

/// The orders somebody waits on, each with its waiters' wake-ups.
#[derive(Default)]
pub struct Endings {
    waiting: Mutex<HashMap<OrderId, Vec<Arc<Notify>>>>,
}

impl std::fmt::Debug for Endings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endings").finish_non_exhaustive()
    }
}

impl Endings {
    /// Subscribes `client` to every order ending and wakes the waiters of
    /// each, until the connection is closed. The subscription is live at
    /// the server when this returns.
    pub async fn start(client: &async_nats::Client) -> Result<Arc<Self>, async_nats::Error> {
        let endings = Arc::new(Self::default());
        for outcome in [Outcome::Completed, Outcome::Failed, Outcome::Cancelled] {
            let subject = EntityKind::Order.event_filter(outcome.event_type());
            let mut ended = client.subscribe(subject).await?;
            let hub = Arc::downgrade(&endings);
            tokio::spawn(async move {
                while let Some(message) = ended.next().await {
                    let Some(hub) = hub.upgrade() else { break };
                    if let Some(order_id) = order_of(&message.subject) {
                        hub.ended(order_id);
                    }
                }
            });
        }
        client.flush().await?;
        Ok(endings)
    }

    /// Waits for `order_id`'s ending from now on: register before reading
    /// the journal, so an ending stored in between is not missed.
    pub fn watch(self: &Arc<Self>, order_id: OrderId) -> Watch {
        let wake = Arc::new(Notify::new());
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.entry(order_id).or_default().push(wake.clone());
        }
        Watch {
            endings: self.clone(),
            order_id,
            wake,
        }
    }

    fn ended(&self, order_id: OrderId) {
        let Ok(waiting) = self.waiting.lock() else { return };
        // `notify_one` keeps a permit for a waiter not yet waiting.
        for wake in waiting.get(&order_id).into_iter().flatten() {
            wake.notify_one();
        }
    }

    /// How many orders are waited on.
    #[cfg(test)]
    fn watched(&self) -> usize {
        self.waiting.lock().map(|w| w.len()).unwrap_or_default()
    }
}

/// The order an ending's subject names.
fn order_of(subject: &str) -> Option<OrderId> {
    let (entity, _) = EntityRef::parse_subject(subject)?;
    OrderId::parse(&entity.id).ok()
}

/// One request's wait on one order's ending; stops waiting when dropped.
pub struct Watch {
    endings: Arc<Endings>,
    order_id: OrderId,
    wake: Arc<Notify>,
}

impl Watch {
    /// Returns once the order's ending was heard (possibly before this call).
    pub async fn ended(&self) {
        self.wake.notified().await;
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let Ok(mut waiting) = self.endings.waiting.lock() else {
            return;
        };
        if let Some(wakes) = waiting.get_mut(&self.order_id) {
            wakes.retain(|w| !Arc::ptr_eq(w, &self.wake));
            if wakes.is_empty() {
                waiting.remove(&self.order_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn an_ending_heard_before_the_wait_is_kept_and_a_dropped_watch_is_forgotten() {
        let endings = Arc::new(Endings::default());
        let (order, other) = (OrderId::random(), OrderId::random());
        let first = endings.watch(order);
        let second = endings.watch(order);
        let unrelated = endings.watch(other);
        endings.ended(order);
        let heard = tokio::time::timeout(Duration::from_secs(5), async {
            first.ended().await;
            second.ended().await;
        });
        assert!(heard.await.is_ok(), "both waiters of the order woke");
        let quiet = tokio::time::timeout(Duration::from_millis(20), unrelated.ended()).await;
        assert!(quiet.is_err(), "another order's waiter did not");
        drop((first, second));
        assert_eq!(endings.watched(), 1);
        drop(unrelated);
        assert_eq!(endings.watched(), 0);
    }

    #[test]
    fn an_ending_subject_names_its_order() {
        let order = OrderId::random();
        assert_eq!(order_of(&EntityRef::order(order).subject("completed")), Some(order));
        assert_eq!(order_of("orders.not-an-id.completed"), None);
    }
}
