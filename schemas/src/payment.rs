//! The payment's events, journaled under `payments.<order_id>.<type>`.

use serde::{Deserialize, Serialize};

use crate::subjects::EntityKind;
use crate::wire::Event;
use crate::{Money, OrderId};

/// Every event of a payment's journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PaymentEvent {
    /// The gateway charged (authorized and captured) the amount.
    Authorized {
        order_id: OrderId,
        payment_id: String,
        amount: Money,
    },
    /// The gateway refused the charge; nothing was captured.
    Declined { order_id: OrderId, reason: String },
    /// The provider is unreachable (its circuit breaker is open); the charge waits.
    Waiting { order_id: OrderId, reason: String },
    /// The provider stayed unreachable past the wait deadline; nothing was charged by us.
    Abandoned { order_id: OrderId, reason: String },
    /// The captured amount went back to the customer.
    Refunded {
        order_id: OrderId,
        payment_id: String,
        refund_id: String,
        amount: Money,
    },
}

impl Event for PaymentEvent {
    const KIND: EntityKind = EntityKind::Payment;

    fn event_type(&self) -> &'static str {
        match self {
            Self::Authorized { .. } => "authorized",
            Self::Declined { .. } => "declined",
            Self::Refunded { .. } => "refunded",
            Self::Waiting { .. } => "waiting",
            Self::Abandoned { .. } => "abandoned",
        }
    }

    fn dedup_key(&self) -> String {
        self.event_type().to_owned()
    }

    fn order_id(&self) -> Option<OrderId> {
        match self {
            Self::Authorized { order_id, .. }
            | Self::Declined { order_id, .. }
            | Self::Refunded { order_id, .. }
            | Self::Waiting { order_id, .. }
            | Self::Abandoned { order_id, .. } => Some(*order_id),
        }
    }
}
