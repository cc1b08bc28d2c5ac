//! Which orders of each customer have notifications: an eventually
//! consistent projection of the NOTIFICATIONS stream, held in memory and
//! rebuilt from the stream at every start (it is never the record).

use std::collections::HashMap;
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
    orders: Arc<RwLock<HashMap<CustomerId, Vec<OrderId>>>>,
}

impl CustomerIndex {
    /// The customer's notified orders, newest first, at most `limit`.
    pub fn orders_of(&self, customer: &CustomerId, limit: usize) -> Vec<OrderId> {
        let orders = self.orders.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        orders
            .get(customer)
            .map(|o| o.iter().rev().take(limit).copied().collect())
            .unwrap_or_default()
    }

    fn add(&self, customer: CustomerId, order: OrderId) {
        let mut orders = self.orders.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        let list = orders.entry(customer).or_default();
        // An order's later events repeat its customer; they land at the end.
        if list.last() != Some(&order) && !list.contains(&order) {
            list.push(order);
        }
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
            self.orders.write().unwrap_or_else(|p| p.into_inner()).clear();
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
                    self.add(customer.clone(), order);
                }
            }
            // The notification consumer dead-letters such messages; here it is only skipped.
            Err(e) => tracing::debug!(%subject, error = %e, "customer index: unreadable event skipped"),
        }
    }
}
