//! What the customer was told, journaled under `notifications.<order_id>.<type>`.

use serde::{Deserialize, Serialize};

use crate::order::Outcome;
use crate::subjects::EntityKind;
use crate::wire::Event;
use crate::{CustomerId, OrderId};

/// Every event of an order's notification journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NotificationEvent {
    /// The customer was told how the order ended, on one channel.
    Sent {
        order_id: OrderId,
        customer_id: CustomerId,
        outcome: Outcome,
        channel: String,
        message: String,
    },
}

impl Event for NotificationEvent {
    const KIND: EntityKind = EntityKind::Notification;

    fn event_type(&self) -> &'static str {
        match self {
            Self::Sent { .. } => "sent",
        }
    }

    fn dedup_key(&self) -> String {
        match self {
            Self::Sent { outcome, channel, .. } => format!("sent:{}:{channel}", outcome.event_type()),
        }
    }

    fn order_id(&self) -> Option<OrderId> {
        match self {
            Self::Sent { order_id, .. } => Some(*order_id),
        }
    }
}
