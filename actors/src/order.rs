//! The order saga: PENDING → PAYMENT_AUTHORIZED → (STOCK_RESERVED) →
//! COMPLETED, or FAILED / CANCELLED after compensation. The last SKU's
//! reservation is recorded by the `completed` it brings, so STOCK_RESERVED
//! shows only in journals written before 2026-12-03.
//!
//! `decide` first records the fact a command brings (a payment reply, a
//! stock reply, a cancel request), then appends whatever step the saga owes
//! next from the resulting state ([`next_steps`]). Because the next step is a
//! function of state alone, an actor that lost a race re-decides after
//! reloading and emits exactly what is still missing — never a step twice.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use schemas::order::{Line, OrderEvent, Outcome, Reservation};
use schemas::{Currency, CustomerId, Money, OrderId, Quantity, Sku};
use serde::{Deserialize, Serialize};

use crate::{Aggregate, Answers};

/// The most lines one order may have.
pub const MAX_LINES: usize = 100;
/// The largest unit price accepted, in minor units (one million of a currency).
pub const MAX_UNIT_PRICE: u64 = 100_000_000;

/// Where an order stands, as customers and operators see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    /// Placed; payment not yet authorized.
    Pending,
    /// Paid; waiting for stock.
    PaymentAuthorized,
    /// Paid and every unit reserved; seen only in journals written before
    /// 2026-12-03, whose last `stock_reserved` came apart from `completed`.
    StockReserved,
    /// Undoing payment and reservations before ending.
    Compensating,
    /// A step was dead-lettered; an operator must look (replay or discard).
    AttentionRequired,
    /// Terminal: done.
    Completed,
    /// Terminal: declined or exhausted.
    Failed,
    /// Terminal: cancelled, everything undone.
    Cancelled,
}

impl OrderStatus {
    /// True for the three endings.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }
}

/// Where the money side stands, from the order's point of view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentStep {
    /// Not asked yet.
    NotRequested,
    /// Asked; waiting for the payment actor.
    Requested,
    /// Charged.
    Authorized,
    /// Refused.
    Declined,
}

/// Where one SKU's reservation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StockStep {
    /// Asked; waiting for the SKU.
    Requested,
    /// Units set aside.
    Reserved,
    /// Not enough units.
    Rejected,
}

/// What compensation is still outstanding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compensation {
    /// How the order will end once undone.
    pub outcome: Outcome,
    /// Why.
    pub reason: String,
    /// A refund was asked and not yet confirmed.
    pub refund_pending: bool,
    /// Releases asked and not yet confirmed.
    pub release_pending: BTreeSet<Sku>,
    /// SKUs told to drop the order before they answered (not waited for).
    #[serde(default)]
    pub withdrawn: BTreeSet<Sku>,
}

/// One placed order, as its journal folds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// Its id.
    pub id: OrderId,
    /// Who placed it.
    pub customer_id: CustomerId,
    /// What was ordered.
    pub lines: Vec<Line>,
    /// The currency of every price.
    pub currency: Currency,
    /// The customer's tokenised payment method.
    pub payment_method: String,
    /// The money side.
    pub payment: PaymentStep,
    /// The gateway's payment id, once charged.
    pub payment_id: Option<String>,
    /// Each SKU's reservation, once stock was asked for.
    pub stock: BTreeMap<Sku, StockStep>,
    /// Why someone asked to cancel, if they did.
    pub cancel_requested: Option<String>,
    /// Compensation under way, if any.
    pub compensation: Option<Compensation>,
    /// How it ended, and why.
    pub ended: Option<(Outcome, String)>,
    /// Why it waits for an operator, until the saga moves again.
    #[serde(default)]
    pub attention: Option<String>,
    /// Dead letters already recorded (stream, sequence), so each is told once.
    #[serde(default)]
    pub dead_letters: BTreeSet<(String, u64)>,
    /// Why the payment step waits for its provider, until the charge is decided.
    #[serde(default)]
    pub waiting: Option<String>,
}

impl Order {
    /// The status derived from the facts; never stored, so it cannot disagree with them.
    pub fn status(&self) -> OrderStatus {
        match (&self.ended, &self.compensation) {
            (Some((Outcome::Completed, _)), _) => OrderStatus::Completed,
            (Some((Outcome::Failed, _)), _) => OrderStatus::Failed,
            (Some((Outcome::Cancelled, _)), _) => OrderStatus::Cancelled,
            (None, _) if self.attention.is_some() => OrderStatus::AttentionRequired,
            (None, Some(_)) => OrderStatus::Compensating,
            (None, None) if self.all_reserved() => OrderStatus::StockReserved,
            (None, None) if self.payment == PaymentStep::Authorized => OrderStatus::PaymentAuthorized,
            (None, None) => OrderStatus::Pending,
        }
    }

    /// The order's total.
    pub fn amount(&self) -> Money {
        Money {
            minor: total(&self.lines).unwrap_or(u64::MAX),
            currency: self.currency.clone(),
        }
    }

    fn all_reserved(&self) -> bool {
        !self.stock.is_empty() && self.stock.values().all(|s| *s == StockStep::Reserved)
    }

    fn stock_answered(&self) -> bool {
        !self.stock.is_empty() && self.stock.values().all(|s| *s != StockStep::Requested)
    }
}

/// What the journal folds into: nothing until `placed`.
pub type OrderState = Option<Order>;

/// A payment actor's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentReply {
    /// Charged.
    Authorized { payment_id: String },
    /// Refused.
    Declined { reason: String },
    /// Given up: the provider stayed unreachable past the wait deadline.
    Unavailable { reason: String },
}

/// A SKU's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StockReply {
    /// Units set aside.
    Reserved { quantity: Quantity },
    /// Not enough units.
    Rejected { quantity: Quantity, available: u64 },
}

/// Everything that may be asked of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderCommand {
    /// Create it.
    Place {
        order_id: OrderId,
        customer_id: CustomerId,
        lines: Vec<Line>,
        currency: Currency,
        payment_method: String,
    },
    /// Take whatever step the saga owes next.
    Advance,
    /// Ask to cancel.
    Cancel { reason: String },
    /// The payment actor answered.
    RecordPayment(PaymentReply),
    /// The payment actor said the charge waits for its provider.
    RecordPaymentWaiting { reason: String },
    /// A SKU answered.
    RecordStock { sku: Sku, reply: StockReply },
    /// The refund is done.
    RecordRefund { refund_id: String },
    /// A SKU released its reservation.
    RecordRelease { sku: Sku },
    /// A reservation timer fired: `sku`'s reservation was given `ttl`.
    ExpireReservation { sku: Sku, ttl: Duration },
    /// A message of this order's saga was dead-lettered.
    RecordDeadLetter {
        reason: String,
        stream: String,
        stream_seq: u64,
        consumer: String,
    },
}

/// Why an order refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderRejection {
    #[error("order already exists")]
    AlreadyPlaced,
    #[error("order does not exist")]
    NotPlaced,
    #[error("invalid order: {field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("order already ended as {0:?}")]
    AlreadyEnded(Outcome),
    #[error("unexpected {what} while {status:?}")]
    Unexpected { what: &'static str, status: OrderStatus },
}

/// The order saga's state machine.
#[derive(Debug, Clone, Copy, Default)]
pub struct OrderSaga;

impl Aggregate for OrderSaga {
    type State = OrderState;
    type Event = OrderEvent;
    type Command = OrderCommand;
    type Rejection = OrderRejection;

    fn decide(state: &OrderState, command: &OrderCommand) -> Result<Vec<OrderEvent>, OrderRejection> {
        let order = match (state, command) {
            (
                None,
                OrderCommand::Place {
                    order_id,
                    customer_id,
                    lines,
                    currency,
                    payment_method,
                },
            ) => {
                validate_lines(lines)?;
                return Ok(vec![OrderEvent::Placed {
                    order_id: *order_id,
                    customer_id: customer_id.clone(),
                    lines: lines.clone(),
                    currency: currency.clone(),
                    payment_method: payment_method.clone(),
                }]);
            }
            (Some(_), OrderCommand::Place { .. }) => return Err(OrderRejection::AlreadyPlaced),
            (None, _) => return Err(OrderRejection::NotPlaced),
            (Some(order), _) => order,
        };
        if let Some((outcome, _)) = &order.ended {
            // Late or repeated inputs after the end change nothing; only a
            // cancel deserves an answer, because a person asked.
            return match command {
                OrderCommand::Cancel { .. } => Err(OrderRejection::AlreadyEnded(*outcome)),
                _ => Ok(Vec::new()),
            };
        }
        let recorded = record(order, command)?;
        let after = recorded.iter().fold(state.clone(), Self::evolve);
        let mut events = recorded;
        if let Some(after) = &after {
            events.extend(next_steps(after));
        }
        Ok(completed_by_last_reservation(events))
    }

    fn evolve(state: OrderState, event: &OrderEvent) -> OrderState {
        let Some(mut order) = state else {
            return match event {
                OrderEvent::Placed {
                    order_id,
                    customer_id,
                    lines,
                    currency,
                    payment_method,
                } => Some(Order {
                    id: *order_id,
                    customer_id: customer_id.clone(),
                    lines: lines.clone(),
                    currency: currency.clone(),
                    payment_method: payment_method.clone(),
                    payment: PaymentStep::NotRequested,
                    payment_id: None,
                    stock: BTreeMap::new(),
                    cancel_requested: None,
                    compensation: None,
                    ended: None,
                    attention: None,
                    dead_letters: BTreeSet::new(),
                    waiting: None,
                }),
                _ => None,
            };
        };
        // The first decision stands: an event that repeats or contradicts
        // what the journal already holds (a republished copy) changes nothing.
        if order.ended.is_some() {
            return Some(order);
        }
        let moved = match event {
            OrderEvent::PaymentRequested { .. } if order.payment == PaymentStep::NotRequested => {
                order.payment = PaymentStep::Requested;
                true
            }
            OrderEvent::StockRequested { payment_id, lines }
                if order.payment == PaymentStep::Requested && order.stock.is_empty() =>
            {
                order.payment = PaymentStep::Authorized;
                order.payment_id = Some(payment_id.clone());
                order.stock = lines.iter().map(|l| (l.sku.clone(), StockStep::Requested)).collect();
                true
            }
            OrderEvent::StockReserved { sku, .. } if order.stock.get(sku) == Some(&StockStep::Requested) => {
                order.stock.insert(sku.clone(), StockStep::Reserved);
                true
            }
            OrderEvent::StockRejected { sku, .. } if order.stock.get(sku) == Some(&StockStep::Requested) => {
                order.stock.insert(sku.clone(), StockStep::Rejected);
                true
            }
            OrderEvent::PaymentWaiting { reason } if order.payment == PaymentStep::Requested => {
                order.waiting = Some(reason.clone());
                false
            }
            OrderEvent::CancelRequested { reason } if order.cancel_requested.is_none() => {
                order.cancel_requested = Some(reason.clone());
                true
            }
            OrderEvent::Compensating {
                outcome,
                reason,
                refund,
                release,
                withdraw,
            } if order.compensation.is_none() => {
                if refund.is_some() {
                    order.payment = PaymentStep::Authorized;
                }
                order.compensation = Some(Compensation {
                    outcome: *outcome,
                    reason: reason.clone(),
                    refund_pending: refund.is_some(),
                    release_pending: release.iter().cloned().collect(),
                    withdrawn: withdraw.iter().cloned().collect(),
                });
                true
            }
            OrderEvent::RefundConfirmed { .. } => match &mut order.compensation {
                Some(c) if c.refund_pending => {
                    c.refund_pending = false;
                    true
                }
                _ => false,
            },
            OrderEvent::ReleaseConfirmed { sku } => order
                .compensation
                .as_mut()
                .is_some_and(|c| c.release_pending.remove(sku)),
            OrderEvent::AttentionRequired {
                reason,
                stream,
                stream_seq,
                ..
            } => {
                if order.dead_letters.insert((stream.clone(), *stream_seq)) {
                    order.attention = Some(reason.clone());
                }
                false
            }
            OrderEvent::Completed { reserved, .. } => {
                if let Some(Reservation { sku, .. }) = reserved {
                    if order.stock.get(sku) == Some(&StockStep::Requested) {
                        order.stock.insert(sku.clone(), StockStep::Reserved);
                    }
                }
                order.ended = Some((Outcome::Completed, String::new()));
                true
            }
            OrderEvent::Failed { reason, .. } | OrderEvent::Cancelled { reason, .. } => {
                if order.payment == PaymentStep::Requested {
                    order.payment = PaymentStep::Declined;
                }
                let outcome = event.outcome().unwrap_or(Outcome::Failed);
                order.ended = Some((outcome, reason.clone()));
                true
            }
            _ => false,
        };
        // A real step after a dead letter means the saga moves again.
        if moved {
            order.attention = None;
        }
        if order.payment != PaymentStep::Requested {
            order.waiting = None;
        }
        Some(order)
    }
}

impl Answers for OrderSaga {
    /// The whole state: the saga driver reads from it what is owed next.
    type Answer = OrderState;

    fn answer(state: &OrderState, _: &OrderCommand) -> OrderState {
        state.clone()
    }
}

/// The events that record the fact a command brings; empty when the fact
/// is already known (a duplicate), an error when it makes no sense now.
fn record(order: &Order, command: &OrderCommand) -> Result<Vec<OrderEvent>, OrderRejection> {
    let unexpected = |what| OrderRejection::Unexpected {
        what,
        status: order.status(),
    };
    Ok(match command {
        OrderCommand::Place { .. } => return Err(OrderRejection::AlreadyPlaced),
        OrderCommand::Advance => Vec::new(),
        OrderCommand::Cancel { reason } => {
            if order.cancel_requested.is_some() || order.compensation.is_some() {
                Vec::new()
            } else {
                vec![OrderEvent::CancelRequested { reason: reason.clone() }]
            }
        }
        OrderCommand::RecordPayment(reply) => match (&order.payment, reply) {
            (PaymentStep::Requested, PaymentReply::Authorized { payment_id }) => {
                // The authorization is recorded by the step it enables: the
                // stock request, or the refund when a cancel is waiting.
                vec![match &order.cancel_requested {
                    None => OrderEvent::StockRequested {
                        payment_id: payment_id.clone(),
                        lines: order.lines.clone(),
                    },
                    Some(reason) => OrderEvent::Compensating {
                        outcome: Outcome::Cancelled,
                        reason: reason.clone(),
                        refund: Some(order.amount()),
                        release: Vec::new(),
                        withdraw: Vec::new(),
                    },
                }]
            }
            (
                PaymentStep::Requested,
                PaymentReply::Declined { reason: why } | PaymentReply::Unavailable { reason: why },
            ) => {
                let failure = match reply {
                    PaymentReply::Declined { .. } => "payment declined",
                    _ => "payment not possible",
                };
                vec![match &order.cancel_requested {
                    None => OrderEvent::Failed {
                        customer_id: order.customer_id.clone(),
                        reason: format!("{failure}: {why}"),
                    },
                    Some(cancel) => OrderEvent::Cancelled {
                        customer_id: order.customer_id.clone(),
                        reason: cancel.clone(),
                    },
                }]
            }
            (PaymentStep::Authorized, PaymentReply::Authorized { .. })
            | (PaymentStep::Declined, PaymentReply::Declined { .. } | PaymentReply::Unavailable { .. }) => Vec::new(),
            _ => return Err(unexpected("payment reply")),
        },
        OrderCommand::RecordStock { sku, reply } => match (order.stock.get(sku), reply) {
            (Some(StockStep::Requested), StockReply::Reserved { quantity }) => {
                vec![OrderEvent::StockReserved {
                    sku: sku.clone(),
                    quantity: *quantity,
                }]
            }
            (Some(StockStep::Requested), StockReply::Rejected { quantity, available }) => {
                vec![OrderEvent::StockRejected {
                    sku: sku.clone(),
                    quantity: *quantity,
                    reason: format!("out of stock: {sku} has {available}, {} wanted", quantity.get()),
                }]
            }
            (Some(StockStep::Reserved), StockReply::Reserved { .. })
            | (Some(StockStep::Rejected), StockReply::Rejected { .. }) => Vec::new(),
            _ => return Err(unexpected("stock reply")),
        },
        OrderCommand::RecordPaymentWaiting { reason } => {
            if order.payment == PaymentStep::Requested && order.waiting.is_none() {
                vec![OrderEvent::PaymentWaiting { reason: reason.clone() }]
            } else {
                // Told already, or the charge was decided meanwhile: a late notice.
                Vec::new()
            }
        }
        OrderCommand::RecordRefund { refund_id } => match &order.compensation {
            Some(c) if c.refund_pending => vec![OrderEvent::RefundConfirmed {
                refund_id: refund_id.clone(),
            }],
            Some(_) => Vec::new(),
            None => return Err(unexpected("refund")),
        },
        OrderCommand::RecordDeadLetter { stream, stream_seq, .. }
            if order.dead_letters.contains(&(stream.clone(), *stream_seq)) =>
        {
            Vec::new()
        }
        OrderCommand::RecordDeadLetter {
            reason,
            stream,
            stream_seq,
            consumer,
        } => {
            vec![OrderEvent::AttentionRequired {
                reason: reason.clone(),
                stream: stream.clone(),
                stream_seq: *stream_seq,
                consumer: consumer.clone(),
            }]
        }
        OrderCommand::RecordRelease { sku } => match &order.compensation {
            Some(c) if c.release_pending.contains(sku) => vec![OrderEvent::ReleaseConfirmed { sku: sku.clone() }],
            Some(_) if order.stock.get(sku) == Some(&StockStep::Reserved) => Vec::new(),
            // A withdrawn SKU that had reserved after all gives it back.
            Some(c) if c.withdrawn.contains(sku) => Vec::new(),
            _ => return Err(unexpected("release")),
        },
        OrderCommand::ExpireReservation { sku, ttl } => expire(order, sku, *ttl),
    })
}

/// One decision's events, with the last reservation and the completion it
/// brings as one `completed` naming the reservation: the order appends
/// once there, not twice. Folding either gives the same order. Any other
/// decision's events pass as they are (a reservation that leaves the order
/// waiting, or one that meets a cancel and starts compensating, is
/// journaled on its own).
fn completed_by_last_reservation(events: Vec<OrderEvent>) -> Vec<OrderEvent> {
    match <[OrderEvent; 2]>::try_from(events) {
        Ok(
            [OrderEvent::StockReserved { sku, quantity }, OrderEvent::Completed {
                customer_id,
                reserved: None,
            }],
        ) => vec![OrderEvent::Completed {
            customer_id,
            reserved: Some(Reservation { sku, quantity }),
        }],
        Ok(pair) => pair.into(),
        Err(events) => events,
    }
}

/// The step the saga owes from `order`'s state, if any. A pure function of
/// state, so re-deciding after a lost race yields only what is still missing.
pub fn next_steps(order: &Order) -> Vec<OrderEvent> {
    if order.ended.is_some() {
        return Vec::new();
    }
    if let Some(c) = &order.compensation {
        if c.refund_pending || !c.release_pending.is_empty() {
            return Vec::new();
        }
        return vec![terminal(order, c.outcome, &c.reason)];
    }
    match order.payment {
        PaymentStep::NotRequested => vec![match &order.cancel_requested {
            Some(reason) => terminal(order, Outcome::Cancelled, reason),
            None => OrderEvent::PaymentRequested {
                amount: order.amount(),
                payment_method: order.payment_method.clone(),
            },
        }],
        // Waiting on the payment actor; a cancel waits with it, because a
        // charge may be in flight at the gateway.
        PaymentStep::Requested | PaymentStep::Declined => Vec::new(),
        PaymentStep::Authorized if !order.stock_answered() => Vec::new(),
        PaymentStep::Authorized => {
            let rejected: Vec<&Sku> = order
                .stock
                .iter()
                .filter(|(_, s)| **s == StockStep::Rejected)
                .map(|(sku, _)| sku)
                .collect();
            let reason = match (&order.cancel_requested, rejected.is_empty()) {
                (None, true) => return vec![terminal(order, Outcome::Completed, "")],
                (Some(reason), _) => reason.clone(),
                (None, false) => format!(
                    "out of stock: {}",
                    rejected.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                ),
            };
            vec![OrderEvent::Compensating {
                outcome: Outcome::Cancelled,
                reason,
                refund: Some(order.amount()),
                release: skus_in(order, StockStep::Reserved),
                withdraw: Vec::new(),
            }]
        }
    }
}

/// The order's SKUs whose reservation stands at `step`.
fn skus_in(order: &Order, step: StockStep) -> Vec<Sku> {
    order
        .stock
        .iter()
        .filter(|(_, s)| **s == step)
        .map(|(sku, _)| sku.clone())
        .collect()
}

/// A reservation timer fired. Only an order still waiting on stock while
/// holding `sku` gives up: it ends FAILED through compensation (refund,
/// release of what is held, withdrawal from the SKUs that never answered).
/// Completed, compensating or otherwise moved-on orders ignore it, so a
/// late or repeated timer changes nothing.
fn expire(order: &Order, sku: &Sku, ttl: Duration) -> Vec<OrderEvent> {
    let waiting = order.compensation.is_none()
        && order.payment == PaymentStep::Authorized
        && order.stock.get(sku) == Some(&StockStep::Reserved)
        && !order.stock_answered();
    if !waiting {
        return Vec::new();
    }
    // A customer's cancel waiting for the step in flight is honoured as a cancel.
    let (outcome, reason) = match &order.cancel_requested {
        Some(reason) => (Outcome::Cancelled, reason.clone()),
        None => (Outcome::Failed, expiry_reason(sku, ttl)),
    };
    vec![OrderEvent::Compensating {
        outcome,
        reason,
        refund: Some(order.amount()),
        release: skus_in(order, StockStep::Reserved),
        withdraw: skus_in(order, StockStep::Requested),
    }]
}

/// Why an order whose reservation expired failed, e.g.
/// `reservation of SKU A unconfirmed for 15m`.
pub fn expiry_reason(sku: &Sku, ttl: Duration) -> String {
    format!(
        "reservation of SKU {sku} unconfirmed for {}",
        humantime::format_duration(Duration::from_secs(ttl.as_secs().max(1)))
    )
}

/// The SKU whose reservation `appended` (one decision's events) recorded,
/// when the same decision neither completed nor began undoing the order:
/// the order now holds stock while it waits for other SKUs.
pub fn reservation_recorded(appended: &[OrderEvent]) -> Option<Sku> {
    let moved_on = appended
        .iter()
        .any(|e| e.outcome().is_some() || matches!(e, OrderEvent::Compensating { .. }));
    if moved_on {
        return None;
    }
    appended.iter().find_map(|e| match e {
        OrderEvent::StockReserved { sku, .. } => Some(sku.clone()),
        _ => None,
    })
}

/// The SKU whose reservation should start an expiry timer, if `order`
/// holds a reservation while still waiting on other SKUs. A single-SKU
/// order completes at its only reservation and needs none.
pub fn reservation_to_time(order: &Order) -> Option<Sku> {
    if order.ended.is_some() || order.compensation.is_some() || order.stock_answered() {
        return None;
    }
    skus_in(order, StockStep::Reserved).into_iter().next()
}

fn terminal(order: &Order, outcome: Outcome, reason: &str) -> OrderEvent {
    let customer_id = order.customer_id.clone();
    match outcome {
        Outcome::Completed => OrderEvent::Completed {
            customer_id,
            reserved: None,
        },
        Outcome::Failed => OrderEvent::Failed {
            customer_id,
            reason: reason.to_owned(),
        },
        Outcome::Cancelled => OrderEvent::Cancelled {
            customer_id,
            reason: reason.to_owned(),
        },
    }
}

/// The order's total in minor units, or `None` on overflow.
pub fn total(lines: &[Line]) -> Option<u64> {
    lines.iter().try_fold(0u64, |sum, l| {
        sum.checked_add(u64::from(l.quantity.get()).checked_mul(l.unit_price)?)
    })
}

fn validate_lines(lines: &[Line]) -> Result<(), OrderRejection> {
    let invalid = |field: String, reason: &str| {
        Err(OrderRejection::Invalid {
            field,
            reason: reason.to_owned(),
        })
    };
    if lines.is_empty() {
        return invalid("items".into(), "an order needs at least one item");
    }
    if lines.len() > MAX_LINES {
        return invalid("items".into(), "too many items");
    }
    let mut seen = BTreeSet::new();
    for (i, line) in lines.iter().enumerate() {
        if !seen.insert(&line.sku) {
            return invalid(
                format!("items[{i}].sku"),
                "each SKU may appear once; add up the quantities",
            );
        }
        if line.unit_price > MAX_UNIT_PRICE {
            return invalid(format!("items[{i}].unit_price"), "unit price too large");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
