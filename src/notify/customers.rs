//! Which orders of each customer have notifications: an eventually
//! consistent projection of the NOTIFICATIONS stream, held in memory and
//! rebuilt from the stream at every start (it is never the record).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use futures::StreamExt;
use schemas::notification::NotificationEvent;
use schemas::subjects::{EntityKind, EntityRef};
use schemas::{CustomerId, OrderId};
use tokio::sync::watch;

use crate::bus::envelope;

/// The event types that name the customer; `read` does not need to.
const NAMING_CUSTOMER: [&str; 4] = ["claimed", "sent", "failed", "opted_out"];

/// Customer → their notified orders, in the order the stream stored them.
#[derive(Clone, Default)]
pub struct CustomerIndex {
    projection: Arc<RwLock<Projection>>,
}

/// What the index folds.
#[derive(Default)]
struct Projection {
    /// Each customer's orders, in the order of their first events; an
    /// ending that starts again after it settled adds its order once more,
    /// and the listing shows it once.
    orders: HashMap<CustomerId, Vec<OrderId>>,
    /// Orders whose ending is still being told (claimed, or failed with a
    /// fallback left): their next events repeat an order already listed.
    /// An order leaves when an event settles its ending, since nothing
    /// naming the customer follows; so this holds only notifications in
    /// flight, and an order's later events need no search of the list.
    unsettled: HashSet<OrderId>,
}

impl Projection {
    fn fold(&mut self, customer: &CustomerId, order: OrderId, settles: bool) {
        let listed = if settles {
            self.unsettled.remove(&order)
        } else {
            !self.unsettled.insert(order)
        };
        if !listed {
            self.orders.entry(customer.clone()).or_default().push(order);
        }
    }
}

impl CustomerIndex {
    /// The customer's notified orders, newest first, at most `limit`, each once.
    pub fn orders_of(&self, customer: &CustomerId, limit: usize) -> Vec<OrderId> {
        let projection = self.projection.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(orders) = projection.orders.get(customer) else {
            return Vec::new();
        };
        // The fold lists an order once per settled ending, and an order has
        // one ending; a journal that broke that rule still shows it once.
        let mut seen = HashSet::new();
        orders
            .iter()
            .rev()
            .filter(|o| seen.insert(**o))
            .take(limit)
            .copied()
            .collect()
    }

    /// Follows the stream from its start until `stop` turns true.
    pub async fn follow(self, js: async_nats::jetstream::Context, mut stop: watch::Receiver<bool>) {
        let kind = EntityKind::Notification;
        while !*stop.borrow() {
            let consumer = async {
                let stream = js.get_stream_no_info(kind.stream()).await?;
                let config = pull::OrderedConfig {
                    filter_subjects: NAMING_CUSTOMER.iter().map(|t| kind.event_filter(t)).collect(),
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
                    tracing::warn!(error = %e, "customer index: cannot read NOTIFICATIONS; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        _ = stop.changed() => return,
                    }
                }
            };
            // Rebuilt from the start: whatever was folded before is replaced.
            *self.projection.write().unwrap_or_else(|p| p.into_inner()) = Projection::default();
            loop {
                let next = tokio::select! {
                    next = messages.next() => next,
                    _ = stop.changed() => return,
                };
                match next {
                    Some(Ok(message)) => self.fold(&message.subject, message.headers.as_ref(), &message.payload),
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "customer index: reading interrupted; rebuilding");
                        break;
                    }
                    None => break,
                }
            }
        }
    }

    fn fold(&self, subject: &str, headers: Option<&async_nats::HeaderMap>, payload: &[u8]) {
        let Some((entity, _)) = EntityRef::parse_subject(subject) else {
            return;
        };
        let Ok(order) = OrderId::parse(&entity.id) else { return };
        match envelope::decode::<NotificationEvent>(headers, payload) {
            Ok(event) => {
                if let Some(customer) = event.customer_id() {
                    let mut projection = self.projection.write().unwrap_or_else(|p| p.into_inner());
                    projection.fold(customer, order, event.settles());
                }
            }
            // The notification consumer dead-letters such messages; here it is only skipped.
            Err(e) => tracing::debug!(%subject, error = %e, "customer index: unreadable event skipped"),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The `settles` of each customer-naming event of one ending, by shape:
    /// opted out; a log line; claimed then sent; a fallback then sent;
    /// failed on every channel; claimed and never settled.
    const SHAPES: [&[bool]; 6] = [
        &[true],
        &[true],
        &[false, true],
        &[false, false, false, true],
        &[false, true],
        &[false],
    ];

    fn order(n: usize) -> OrderId {
        OrderId::from_uuid(uuid::Uuid::from_u128(n as u128 + 1))
    }

    fn customer(n: usize) -> CustomerId {
        CustomerId::parse(&format!("c{n}")).unwrap_or_else(|e| panic!("c{n}: {e}"))
    }

    proptest! {
        /// However the events of many endings interleave, each customer's
        /// orders are listed once each, newest first (by their first event).
        #[test]
        fn every_notified_order_is_listed_once_newest_first(
            orders in proptest::collection::vec((0usize..3, 0usize..SHAPES.len()), 0..24),
            picks in proptest::collection::vec(any::<usize>(), 0..120),
        ) {
            let index = CustomerIndex::default();
            let mut next = vec![0usize; orders.len()];
            let mut firsts: Vec<usize> = Vec::new();
            let mut fold = |o: usize, next: &mut Vec<usize>| {
                let (c, shape) = orders[o];
                if next[o] == 0 {
                    firsts.push(o);
                }
                let settles = SHAPES[shape][next[o]];
                next[o] += 1;
                index.projection.write().unwrap_or_else(|p| p.into_inner()).fold(&customer(c), order(o), settles);
            };
            // Random interleaving first, then whatever is left, in turn.
            for pick in picks {
                let left: Vec<usize> = (0..orders.len()).filter(|&o| next[o] < SHAPES[orders[o].1].len()).collect();
                if let Some(&o) = left.get(pick % left.len().max(1)) {
                    fold(o, &mut next);
                }
            }
            for o in 0..orders.len() {
                while next[o] < SHAPES[orders[o].1].len() {
                    fold(o, &mut next);
                }
            }
            for c in 0..3 {
                let expected: Vec<OrderId> =
                    firsts.iter().rev().filter(|&&o| orders[o].0 == c).map(|&o| order(o)).collect();
                prop_assert_eq!(index.orders_of(&customer(c), usize::MAX), expected.clone());
                prop_assert_eq!(index.orders_of(&customer(c), 2), expected.into_iter().take(2).collect::<Vec<_>>());
            }
            let unsettled = index.projection.read().unwrap_or_else(|p| p.into_inner()).unsettled.len();
            prop_assert_eq!(unsettled, orders.iter().filter(|(_, shape)| *shape == 5).count());
        }
    }

    #[test]
    fn an_ending_settled_twice_is_still_listed_once() {
        let index = CustomerIndex::default();
        let mut projection = index.projection.write().unwrap_or_else(|p| p.into_inner());
        for (o, settles) in [(1, true), (2, true), (1, true)] {
            projection.fold(&customer(0), order(o), settles);
        }
        drop(projection);
        assert_eq!(index.orders_of(&customer(0), 10), vec![order(1), order(2)]);
    }
}
