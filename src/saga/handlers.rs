//! What each inbox's messages ask of which actors.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actors::inventory::InventoryCommand;
use actors::journal::{Cause, Journal, Journaled};
use actors::notification::{Ending, NotifyIntent};
use actors::order::{self, OrderCommand, OrderSaga, PaymentReply, StockReply};
use actors::shell::behavior::PaymentIntent;
use actors::shell::StepError;
use actors::Aggregate;
use async_nats::jetstream::message::Message;
use futures::future::join_all;
use schemas::headers as h;
use schemas::inventory::InventoryEvent;
use schemas::order::{OrderEvent, Outcome};
use schemas::payment::PaymentEvent;
use schemas::subjects::{EntityKind, EntityRef};
use schemas::timer::{self, ReservationExpiry};
use schemas::wire::{self, Event};
use schemas::OrderId;

use super::placed_times::PlacedTimes;
use super::sharded::Done;
use super::timers::ReservationTimers;
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
    /// Fired reservation timers, to the saga.
    ReservationExpiries,
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

/// How charges wait while the payment provider's breaker is open.
#[derive(Debug, Clone, Copy)]
pub struct WaitPolicy {
    /// Give up this long after the payment was requested.
    pub deadline: Duration,
    /// Ask the breaker again this often.
    pub recheck: Duration,
}

/// Hands one inbox's messages to the actors they concern.
pub struct Route {
    input: Input,
    actors: Arc<Actors>,
    journal: Arc<NatsJournal>,
    timers: Arc<ReservationTimers>,
    placed: Arc<PlacedTimes>,
    wait: WaitPolicy,
}

impl Route {
    /// A route for `input`'s messages; `journal` and `placed` (shared by
    /// the routes) date sagas for the metrics, `timers` are set for
    /// reservations that must not be held forever, and `wait` says how
    /// charges wait for an open breaker.
    pub fn new(
        input: Input,
        actors: Arc<Actors>,
        journal: Arc<NatsJournal>,
        timers: Arc<ReservationTimers>,
        placed: Arc<PlacedTimes>,
        wait: WaitPolicy,
    ) -> Self {
        Self {
            input,
            actors,
            journal,
            timers,
            placed,
            wait,
        }
    }

    /// How long ago the payment request `message` was stored.
    fn waited(message: &Message) -> Duration {
        message
            .info()
            .ok()
            .and_then(|i| SystemTime::now().duration_since(SystemTime::from(i.published)).ok())
            .unwrap_or_default()
    }

    /// Gives the charge up, so the order fails with the reason instead of waiting for ever.
    async fn abandon(&self, order_id: OrderId, why: &str, cause: Cause) -> Result<(), Failure> {
        let reason = format!(
            "payment provider unavailable for over {} ({why})",
            humantime::format_duration(self.wait.deadline)
        );
        let payment = EntityRef::payment(order_id);
        let abandon = PaymentIntent::Abandon { order_id, reason };
        settled(&payment, self.actors.payments.execute(&payment, abandon, cause).await).map(drop)
    }

    /// A charge failed at a provider behind a breaker: try again when the
    /// breaker would next let a call through, or give up past the deadline.
    async fn provider_failed(
        &self,
        order_id: OrderId,
        reason: String,
        message: &Message,
        cause: Cause,
    ) -> Result<(), Failure> {
        if Self::waited(message) >= self.wait.deadline {
            return self.abandon(order_id, &format!("last error: {reason}"), cause).await;
        }
        Err(Failure::Wait {
            reason,
            retry_in: self.wait.recheck,
        })
    }

    /// The breaker is open: journal (once) that the charge waits and ask
    /// again later, or give the charge up past the deadline, so the order
    /// fails with the reason instead of waiting for ever.
    async fn wait_for_provider(
        &self,
        order_id: OrderId,
        reason: String,
        message: &Message,
        cause: Cause,
    ) -> Result<(), Failure> {
        if Self::waited(message) >= self.wait.deadline {
            return self.abandon(order_id, "circuit breaker open", cause).await;
        }
        let payment = EntityRef::payment(order_id);
        let payments = &self.actors.payments;
        let wait = PaymentIntent::Wait {
            order_id,
            reason: reason.clone(),
        };
        settled(&payment, payments.execute(&payment, wait, cause).await)?;
        Err(Failure::Wait {
            reason,
            retry_in: self.wait.recheck,
        })
    }

    /// Sets the order's reservation timer when `reserved` (a stock reply
    /// that reserved) left it holding stock while it waits for other SKUs.
    /// Runs before the reply is acked; when the decision had been stored
    /// already (a redelivery), the journal says whether a timer is owed.
    async fn time_reservation(
        &self,
        order_id: OrderId,
        appended: &[OrderEvent],
        reserved: &Message,
        cause: &Cause,
    ) -> Result<(), Failure> {
        let sku = match order::reservation_recorded(appended) {
            Some(sku) => sku,
            None if appended.is_empty() => {
                let journal = self
                    .journal
                    .load::<OrderEvent>(&EntityRef::order(order_id), 0)
                    .await
                    .map_err(StepError::from)?;
                let events: Vec<OrderEvent> = journal.into_iter().map(|j| j.event).collect();
                match OrderSaga::replay(&events).as_ref().and_then(order::reservation_to_time) {
                    Some(sku) => sku,
                    None => return Ok(()),
                }
            }
            None => return Ok(()),
        };
        let reserved_at = reserved
            .info()
            .map(|i| std::time::SystemTime::from(i.published))
            .map_err(|e| Failure::Transient(format!("{}: no JetStream metadata: {e}", reserved.subject)))?;
        self.timers.schedule(order_id, &sku, reserved_at, cause).await
    }

    /// Counts an ending once (when its notification is first recorded),
    /// with the saga's duration from `placed` to the ending's storage.
    async fn count_ending(&self, order_id: OrderId, outcome: Outcome, message: &Message) {
        let placed = match self.placed.take(order_id) {
            Some(at) => Some(at),
            None => {
                let placed = EntityRef::order(order_id).subject("placed");
                self.journal.first_time(EntityKind::Order, &placed).await
            }
        };
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

/// Reads a fired reservation timer; unreadable, or naming another order
/// than its subject, is poison.
fn read_timer(message: &Message) -> Result<ReservationExpiry, Failure> {
    let poison = |why: String| Failure::Poison(format!("{}: {why}", message.subject));
    let subject_order = timer::order_of(&message.subject).ok_or_else(|| poison("names no order".into()))?;
    wire::parse_schema_version(envelope::header(message.headers.as_ref(), h::SCHEMA_VERSION))
        .map_err(|e| poison(e.to_string()))?;
    let expiry = ReservationExpiry::decode(&message.payload).map_err(|e| poison(e.to_string()))?;
    if expiry.order_id != subject_order {
        return Err(poison(format!("body names order {}", expiry.order_id)));
    }
    Ok(expiry)
}

fn order_id(entity: &EntityRef) -> Result<OrderId, Failure> {
    OrderId::parse(&entity.id).map_err(|_| Failure::Poison(format!("{entity}: not an order id")))
}

/// Settles an actor's answer: stored or already done is success; a refusal
/// is an anomaly worth a dead letter, never a silent drop.
fn settled<E>(entity: &EntityRef, result: Result<Done<E>, StepError>) -> Result<Vec<E>, Failure> {
    match result? {
        Done::Appended(events) => Ok(events),
        Done::Refused(why) => Err(Failure::Refused(format!("{entity} refused: {why}"))),
    }
}

/// The worst of several outcomes: any poison wins, then any refusal, then any transient.
fn all_settled(results: Vec<Result<(), Failure>>) -> Result<(), Failure> {
    let mut worst = Ok(());
    for r in results {
        match (&worst, r) {
            (_, Err(Failure::Poison(p))) => return Err(Failure::Poison(p)),
            (_, Err(Failure::Refused(r))) => worst = Err(Failure::Refused(r)),
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
                let (entity, event) = read::<OrderEvent>(message)?;
                let info = message.info().ok();
                if let (OrderEvent::Placed { .. }, Some(info)) = (&event, &info) {
                    self.placed
                        .remember(order_id(&entity)?, SystemTime::from(info.published));
                }
                // The order's first event (a `placed`, but not a replayed
                // copy): with its sequence, all a new order actor needs.
                let first = info
                    .filter(|_| envelope::stored_as_first(message.headers.as_ref(), &entity))
                    .map(|info| Journaled {
                        seq: info.stream_sequence,
                        event,
                    });
                let advanced = a
                    .orders
                    .execute_after(&entity, OrderCommand::Advance, cause, first)
                    .await;
                settled(&entity, advanced).map(drop)
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
                    PaymentEvent::Waiting { reason, .. } => OrderCommand::RecordPaymentWaiting { reason },
                    PaymentEvent::Abandoned { reason, .. } => {
                        OrderCommand::RecordPayment(PaymentReply::Unavailable { reason })
                    }
                };
                settled(&order, a.orders.execute(&order, command, cause).await).map(drop)
            }
            Input::StockReplies => {
                let (entity, event) = read::<InventoryEvent>(message)?;
                let reserved = matches!(event, InventoryEvent::Reserved { .. });
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
                    InventoryEvent::Restocked { .. } | InventoryEvent::Withdrawn { .. } => {
                        return Err(Failure::Poison(format!("{entity}: not a reply to an order")));
                    }
                };
                let order = EntityRef::order(order_id);
                let appended = settled(&order, a.orders.execute(&order, command, cause.clone()).await)?;
                if reserved {
                    self.time_reservation(order_id, &appended, message, &cause).await?;
                }
                Ok(())
            }
            Input::PaymentRequests => {
                let (entity, event) = read::<OrderEvent>(message)?;
                let order_id = order_id(&entity)?;
                let intent = match event {
                    OrderEvent::PaymentRequested { amount, payment_method } => {
                        if let Some(reason) = a.gateway.circuit_open() {
                            return self.wait_for_provider(order_id, reason, message, cause).await;
                        }
                        PaymentIntent::Charge {
                            order_id,
                            amount,
                            payment_method,
                        }
                    }
                    OrderEvent::Compensating { refund: Some(_), .. } => PaymentIntent::Refund { order_id },
                    _ => return Ok(()),
                };
                let charge = matches!(intent, PaymentIntent::Charge { .. });
                let payment = EntityRef::payment(order_id);
                match settled(&payment, a.payments.execute(&payment, intent, cause.clone()).await) {
                    // A provider behind a breaker is waited for, up to the
                    // deadline, whatever state the breaker is in when it fails.
                    Err(Failure::Transient(reason)) if charge && a.gateway.has_breaker() => {
                        self.provider_failed(order_id, reason, message, cause).await
                    }
                    other => other.map(drop),
                }
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
                    OrderEvent::Compensating { release, withdraw, .. } => release
                        .into_iter()
                        .map(|sku| InventoryCommand::Release { sku, order_id })
                        .chain(
                            withdraw
                                .into_iter()
                                .map(|sku| InventoryCommand::Withdraw { sku, order_id }),
                        )
                        .collect(),
                    _ => return Ok(()),
                };
                // Every SKU at once; a redelivery after a partial failure is
                // harmless, since each SKU remembers the orders it answered.
                let results = join_all(commands.into_iter().map(|command| {
                    let sku = match &command {
                        InventoryCommand::Reserve { sku, .. }
                        | InventoryCommand::Release { sku, .. }
                        | InventoryCommand::Withdraw { sku, .. }
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
            Input::ReservationExpiries => {
                let expiry = read_timer(message)?;
                let order = EntityRef::order(expiry.order_id);
                let command = OrderCommand::ExpireReservation {
                    ttl: expiry.ttl(),
                    sku: expiry.sku,
                };
                let appended = settled(&order, a.orders.execute(&order, command, cause).await)?;
                if !appended.is_empty() {
                    tracing::info!(order_id = %expiry.order_id, "reservation expired; undoing the order");
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
            let mut settles = false;
            for event in &events {
                telemetry::notification_recorded(event);
                settles |= event.settles();
                // Here, in the input's span, so the line names the order and its trace.
                tracing::info!(
                    event = event.event_type(),
                    channel = event.channel().map(|c| c.as_str()),
                    "customer notification recorded"
                );
            }
            if settles {
                // A settling event leaves nothing to do (`next_step` is Done
                // after it); asking again would only re-read the journal to
                // confirm it.
                settled_now = true;
                break;
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
