//! What each inbox's messages ask of which actors.

use std::sync::Arc;

use actors::inventory::InventoryCommand;
use actors::journal::Cause;
use actors::notification::{Ending, NotifyIntent};
use actors::order::{OrderCommand, PaymentReply, StockReply};
use actors::shell::behavior::PaymentIntent;
use actors::shell::{Executed, StepError};
use actors::Aggregate;
use async_nats::jetstream::message::Message;
use futures::future::join_all;
use schemas::inventory::InventoryEvent;
use schemas::order::{OrderEvent, Outcome};
use schemas::payment::PaymentEvent;
use schemas::subjects::{EntityKind, EntityRef};
use schemas::wire::Event;
use schemas::OrderId;

use super::Actors;
use crate::bus::envelope;
use crate::bus::inbox::{Failure, Handler};
use crate::bus::journal::NatsJournal;
use crate::bus::topology::{self, Inbox};
use crate::notify::preferences::PreferenceError;
use crate::telemetry;

/// Which input an inbox carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// `placed` and `cancel_requested`: the saga advances.
    OrderStarts,
    /// Payment answers, to the saga.
    PaymentReplies,
    /// Stock answers, to the saga.
    StockReplies,
    /// Charge and refund requests, to the payment.
    PaymentRequests,
    /// Reserve and release requests, to the SKUs.
    StockRequests,
    /// Order endings, to notifications.
    OrderEndings,
}

/// Every inbox with the input it carries.
pub const ROUTES: [(Inbox, Input); 6] = [
    (topology::ORDER_STARTS, Input::OrderStarts),
    (topology::ORDER_PAYMENT_REPLIES, Input::PaymentReplies),
    (topology::ORDER_STOCK_REPLIES, Input::StockReplies),
    (topology::PAYMENT_REQUESTS, Input::PaymentRequests),
    (topology::STOCK_REQUESTS, Input::StockRequests),
    (topology::ORDER_ENDINGS, Input::OrderEndings),
];

/// Hands one inbox's messages to the actors they concern.
pub struct Route {
    input: Input,
    actors: Arc<Actors>,
    journal: Arc<NatsJournal>,
}

impl Route {
    /// A route for `input`'s messages; `journal` dates sagas for the metrics.
    pub fn new(input: Input, actors: Arc<Actors>, journal: Arc<NatsJournal>) -> Self {
        Self { input, actors, journal }
    }

    /// Counts an ending once (when its notification is first recorded),
    /// with the saga's duration from `placed` to the ending's storage.
    async fn count_ending(&self, order_id: OrderId, outcome: Outcome, message: &Message) {
        let placed = EntityRef::order(order_id).subject("placed");
        let placed = self.journal.first_time(EntityKind::Order, &placed).await;
        let ended = message.info().ok().map(|i| std::time::SystemTime::from(i.published));
        let took = match (placed, ended) {
            (Some(placed), Some(ended)) => ended.duration_since(placed).ok(),
            _ => None,
        };
        telemetry::order_ended(outcome.status(), took);
    }
}

/// Reads the entity and event of a delivered message; unreadable is poison.
fn read<E: Event>(message: &Message) -> Result<(EntityRef, E), Failure> {
    let (entity, _) = EntityRef::parse_subject(&message.subject)
        .ok_or_else(|| Failure::Poison(format!("subject {} names no entity", message.subject)))?;
    let event = envelope::decode(message.headers.as_ref(), &message.payload)
        .map_err(|e| Failure::Poison(format!("{}: {e}", message.subject)))?;
    Ok((entity, event))
}

fn order_id(entity: &EntityRef) -> Result<OrderId, Failure> {
    OrderId::parse(&entity.id).map_err(|_| Failure::Poison(format!("{entity}: not an order id")))
}

/// Settles an actor's answer: stored or already done is success; a refusal
/// is an anomaly worth a dead letter, never a silent drop.
fn settled<A: Aggregate>(entity: &EntityRef, result: Result<Executed<A>, StepError>) -> Result<Vec<A::Event>, Failure> {
    match result? {
        Executed::Appended(events) => Ok(events),
        Executed::Rejected(why) => Err(Failure::Poison(format!("{entity} refused: {why}"))),
    }
}

/// The worst of several outcomes: any poison wins, then any transient.
fn all_settled(results: Vec<Result<(), Failure>>) -> Result<(), Failure> {
    let mut worst = Ok(());
    for r in results {
        match (&worst, r) {
            (_, Err(Failure::Poison(p))) => return Err(Failure::Poison(p)),
            (Ok(()), Err(t)) => worst = Err(t),
            _ => {}
        }
    }
    worst
}

impl Handler for Route {
    async fn handle(&self, message: &Message) -> Result<(), Failure> {
        let cause = envelope::cause_of(message.headers.as_ref());
        let a = &self.actors;
        match self.input {
            Input::OrderStarts => {
                let (entity, _) = read::<OrderEvent>(message)?;
                settled(&entity, a.orders.execute(&entity, OrderCommand::Advance, cause).await).map(drop)
            }
            Input::PaymentReplies => {
                let (entity, event) = read::<PaymentEvent>(message)?;
                let order = EntityRef::order(order_id(&entity)?);
                let command = match event {
                    PaymentEvent::Authorized { payment_id, .. } => {
                        OrderCommand::RecordPayment(PaymentReply::Authorized { payment_id })
                    }
                    PaymentEvent::Declined { reason, .. } => {
                        OrderCommand::RecordPayment(PaymentReply::Declined { reason })
                    }
                    PaymentEvent::Refunded { refund_id, .. } => OrderCommand::RecordRefund { refund_id },
                };
                settled(&order, a.orders.execute(&order, command, cause).await).map(drop)
            }
            Input::StockReplies => {
                let (entity, event) = read::<InventoryEvent>(message)?;
                let (order_id, command) = match event {
                    InventoryEvent::Reserved {
                        sku,
                        order_id,
                        quantity,
                        ..
                    } => (
                        order_id,
                        OrderCommand::RecordStock {
                            sku,
                            reply: StockReply::Reserved { quantity },
                        },
                    ),
                    InventoryEvent::Rejected {
                        sku,
                        order_id,
                        quantity,
                        available,
                    } => (
                        order_id,
                        OrderCommand::RecordStock {
                            sku,
                            reply: StockReply::Rejected { quantity, available },
                        },
                    ),
                    InventoryEvent::Released { sku, order_id, .. } => (order_id, OrderCommand::RecordRelease { sku }),
                    InventoryEvent::Restocked { .. } => {
                        return Err(Failure::Poison(format!("{entity}: restocks are not replies")));
                    }
                };
                let order = EntityRef::order(order_id);
                settled(&order, a.orders.execute(&order, command, cause).await).map(drop)
            }
            Input::PaymentRequests => {
                let (entity, event) = read::<OrderEvent>(message)?;
                let order_id = order_id(&entity)?;
                let intent = match event {
                    OrderEvent::PaymentRequested { amount, payment_method } => PaymentIntent::Charge {
                        order_id,
                        amount,
                        payment_method,
                    },
                    OrderEvent::Compensating { refund: Some(_), .. } => PaymentIntent::Refund { order_id },
                    _ => return Ok(()),
                };
                let payment = EntityRef::payment(order_id);
                settled(&payment, a.payments.execute(&payment, intent, cause).await).map(drop)
            }
            Input::StockRequests => {
                let (entity, event) = read::<OrderEvent>(message)?;
                let order_id = order_id(&entity)?;
                let commands: Vec<InventoryCommand> = match event {
                    OrderEvent::StockRequested { lines, .. } => lines
                        .into_iter()
                        .map(|l| InventoryCommand::Reserve {
                            sku: l.sku,
                            order_id,
                            quantity: l.quantity,
                        })
                        .collect(),
                    OrderEvent::Compensating { release, .. } => release
                        .into_iter()
                        .map(|sku| InventoryCommand::Release { sku, order_id })
                        .collect(),
                    _ => return Ok(()),
                };
                // Every SKU at once; a redelivery after a partial failure is
                // harmless, since each SKU remembers the orders it answered.
                let results = join_all(commands.into_iter().map(|command| {
                    let sku = match &command {
                        InventoryCommand::Reserve { sku, .. }
                        | InventoryCommand::Release { sku, .. }
                        | InventoryCommand::Restock { sku, .. } => EntityRef::inventory(sku),
                    };
                    let cause = cause.clone();
                    async move { settled(&sku, a.inventory.execute(&sku, command, cause).await).map(drop) }
                }))
                .await;
                all_settled(results)
            }
            Input::OrderEndings => {
                let (entity, event) = read::<OrderEvent>(message)?;
                let order_id = order_id(&entity)?;
                let (Some(outcome), Some(customer_id)) = (event.outcome(), customer_of(&event)) else {
                    return Ok(());
                };
                let ending = Ending {
                    order_id,
                    customer_id,
                    outcome,
                    reason: event.reason().filter(|r| !r.is_empty()).map(str::to_owned),
                };
                if self.notify(ending, cause).await? {
                    self.count_ending(order_id, outcome, message).await;
                }
                Ok(())
            }
        }
    }
}

impl Route {
    /// Tells an ending by the customer's preferences, one journaled step at
    /// a time (claim, send, record, fall back) until nothing is left; true
    /// if this call settled it (so the ending is counted once).
    async fn notify(&self, ending: Ending, cause: Cause) -> Result<bool, Failure> {
        let a = &self.actors;
        let preferences = match a.notify.preferences.get(&ending.customer_id).await {
            Ok(p) => p,
            Err(e @ PreferenceError::Unavailable(_)) => return Err(Failure::Transient(e.to_string())),
            Err(e @ PreferenceError::Corrupt { .. }) => {
                tracing::error!(error = %e, "using the default notification channels");
                None
            }
        };
        let plan = a.notify.planner.plan(&ending.customer_id, preferences.as_ref());
        // Each step appends one event; a chain of n channels takes at most 2n + 1.
        let steps = 2 * plan.chain.len() + 2;
        let notification = EntityRef::notification(ending.order_id);
        let intent = NotifyIntent::Advance { ending, plan };
        let mut settled_now = false;
        for _ in 0..steps {
            let executed = a
                .notifications
                .execute(&notification, intent.clone(), cause.clone())
                .await;
            let events = settled(&notification, executed)?;
            if events.is_empty() {
                break;
            }
            for event in &events {
                settled_now |= telemetry::notification_recorded(event);
                // Here, in the input's span, so the line names the order and its trace.
                tracing::info!(
                    event = event.event_type(),
                    channel = event.channel().map(|c| c.as_str()),
                    "customer notification recorded"
                );
            }
        }
        Ok(settled_now)
    }
}

fn customer_of(event: &OrderEvent) -> Option<schemas::CustomerId> {
    match event {
        OrderEvent::Completed { customer_id }
        | OrderEvent::Failed { customer_id, .. }
        | OrderEvent::Cancelled { customer_id, .. } => Some(customer_id.clone()),
        _ => None,
    }
}
