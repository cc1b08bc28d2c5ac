//! The order saga's events, journaled under `orders.<order_id>.<type>`.

use serde::{Deserialize, Serialize};

use crate::subjects::EntityKind;
use crate::wire::Event;
use crate::{Currency, CustomerId, Money, OrderId, Quantity, Sku};

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// What is bought.
    pub sku: Sku,
    /// How many units.
    pub quantity: Quantity,
    /// Price of one unit, in minor units of the order's currency.
    pub unit_price: u64,
}

/// Units of one SKU set aside for an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// The SKU.
    pub sku: Sku,
    /// How many units it holds for the order.
    pub quantity: Quantity,
}

/// How an order ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Outcome {
    /// Paid and every unit reserved.
    Completed,
    /// Payment declined, or a step exhausted its retries.
    Failed,
    /// Cancelled on request or for lack of stock, after refund and release.
    Cancelled,
}

impl Outcome {
    /// The event type (and subject token) of this ending.
    pub fn event_type(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// The order status this ending leaves, as the API spells it.
    pub fn status(self) -> &'static str {
        match self {
            Self::Completed => "COMPLETED",
            Self::Failed => "FAILED",
            Self::Cancelled => "CANCELLED",
        }
    }
}

/// Every event of an order's journal. The `type` field equals the subject's last token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OrderEvent {
    /// The customer placed the order; always the journal's first event.
    Placed {
        order_id: OrderId,
        customer_id: CustomerId,
        lines: Vec<Line>,
        /// Absent in schema version 1, where every order was in euros.
        #[serde(default)]
        currency: Currency,
        /// The customer's tokenised payment method (never a card number).
        payment_method: String,
    },
    /// The saga asked the payment actor to charge the order's total.
    PaymentRequested { amount: Money, payment_method: String },
    /// The payment was authorized; the saga asked every SKU for its units.
    StockRequested { payment_id: String, lines: Vec<Line> },
    /// One SKU reserved its units for this order.
    StockReserved { sku: Sku, quantity: Quantity },
    /// One SKU could not reserve its units.
    StockRejected {
        sku: Sku,
        quantity: Quantity,
        reason: String,
    },
    /// Someone asked to cancel; honoured once the step in flight answers.
    CancelRequested { reason: String },
    /// The payment step waits for the provider (its circuit breaker is open); why, in words.
    PaymentWaiting { reason: String },
    /// The saga is undoing what it did before ending as `outcome`.
    Compensating {
        outcome: Outcome,
        reason: String,
        /// The captured amount to refund, if any was captured.
        refund: Option<Money>,
        /// The SKUs whose reservations to release.
        release: Vec<Sku>,
        /// The SKUs that had not answered yet (an expired reservation ends
        /// the saga mid-step): each drops the order, releasing a reservation
        /// that raced in or refusing one that comes later. Not waited for.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        withdraw: Vec<Sku>,
    },
    /// The payment actor confirmed the refund.
    RefundConfirmed { refund_id: String },
    /// One SKU confirmed the release of its reservation.
    ReleaseConfirmed { sku: Sku },
    /// A step of this order was dead-lettered: it waits for an operator.
    AttentionRequired {
        /// Why, in words.
        reason: String,
        /// The stream and sequence of the dead-lettered message.
        stream: String,
        stream_seq: u64,
        /// The consumer that gave up on it.
        consumer: String,
    },
    /// Terminal: paid and reserved. Terminal events name the customer so
    /// downstream consumers (notifications) need not read the whole journal.
    Completed {
        customer_id: CustomerId,
        /// The reservation that completed the order, recorded by this event
        /// instead of a `stock_reserved` of its own: one append fewer per
        /// order. Absent in journals written before 2026-12-03, where a
        /// `stock_reserved` precedes every `completed`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reserved: Option<Reservation>,
    },
    /// Terminal: declined or exhausted.
    Failed { customer_id: CustomerId, reason: String },
    /// Terminal: cancelled, everything undone.
    Cancelled { customer_id: CustomerId, reason: String },
}

impl Event for OrderEvent {
    const KIND: EntityKind = EntityKind::Order;

    fn event_type(&self) -> &'static str {
        match self {
            Self::Placed { .. } => "placed",
            Self::PaymentRequested { .. } => "payment_requested",
            Self::StockRequested { .. } => "stock_requested",
            Self::StockReserved { .. } => "stock_reserved",
            Self::StockRejected { .. } => "stock_rejected",
            Self::CancelRequested { .. } => "cancel_requested",
            Self::PaymentWaiting { .. } => "payment_waiting",
            Self::Compensating { .. } => "compensating",
            Self::RefundConfirmed { .. } => "refund_confirmed",
            Self::ReleaseConfirmed { .. } => "release_confirmed",
            Self::AttentionRequired { .. } => "attention_required",
            Self::Completed { .. } => "completed",
            Self::Failed { .. } => "failed",
            Self::Cancelled { .. } => "cancelled",
        }
    }

    /// Message ids name the cause, so a redelivered input re-publishes the
    /// same id and the server drops it (invariant 3). Each of these happens
    /// at most once per order (once per SKU for the per-SKU ones).
    fn dedup_key(&self) -> String {
        match self {
            Self::StockReserved { sku, .. } | Self::StockRejected { sku, .. } | Self::ReleaseConfirmed { sku } => {
                format!("{}:{sku}", self.event_type())
            }
            Self::AttentionRequired { stream, stream_seq, .. } => {
                format!("{}:{stream}:{stream_seq}", self.event_type())
            }
            _ => self.event_type().to_owned(),
        }
    }
}

impl OrderEvent {
    /// The ending this event marks, if it is terminal.
    pub fn outcome(&self) -> Option<Outcome> {
        match self {
            Self::Completed { .. } => Some(Outcome::Completed),
            Self::Failed { .. } => Some(Outcome::Failed),
            Self::Cancelled { .. } => Some(Outcome::Cancelled),
            _ => None,
        }
    }

    /// Why the order ended as it did, for terminal events.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::Failed { reason, .. } | Self::Cancelled { reason, .. } => Some(reason),
            _ => None,
        }
    }
}
