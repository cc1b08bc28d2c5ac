//! The saga driver: one order input carried through every step it leads to.
//!
//! An input (a `placed`, a `cancel_requested`, a fired reservation timer)
//! is executed on the order; whatever the order then owes
//! ([`saga::owed`], a pure function of its state) is asked of the payment,
//! the SKUs and the notifications directly, on the actors that own them,
//! all at once; their answers ([`saga::payment_reply`],
//! [`saga::stock_reply`]) are recorded on the order, and so on until
//! nothing is owed. Every decision is still journaled where it is taken,
//! so a crash at any point leaves the input unacked, and its redelivery
//! asks again only what the journals say is unanswered (invariants 4 and
//! 5). What this saves over a consumer per step is the hops: each step's
//! event is stored once and never delivered to another consumer.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actors::inventory::InventoryCommand;
use actors::journal::Cause;
use actors::notification::{Ending, NotifyIntent};
use actors::order::{self, Order, OrderCommand};
use actors::saga::{self, Request};
use actors::shell::behavior::PaymentIntent;
use actors::shell::{Seed, StepError};
use futures::future::join_all;
use schemas::order::{OrderEvent, Outcome};
use schemas::subjects::{EntityKind, EntityRef};
use schemas::wire::Event as _;
use schemas::OrderId;

use super::placed_times::PlacedTimes;
use super::sharded::Done;
use super::timers::ReservationTimers;
use super::Actors;
use crate::bus::inbox::Failure;
use crate::bus::journal::NatsJournal;
use crate::notify::preferences::PreferenceError;
use crate::telemetry::{self, trace_context::TraceContext};
use tracing::Instrument;

/// The most rounds of requests one input drives. A saga takes at most
/// four (charge; reserve; refund, releases and withdrawals; notify), and a
/// request is asked once per drive, so this is only a backstop: reaching
/// it retries the input later.
const MAX_ROUNDS: usize = 16;

/// How charges wait while the payment provider's breaker is open.
#[derive(Debug, Clone, Copy)]
pub struct WaitPolicy {
    /// Give up this long after the payment was requested.
    pub deadline: Duration,
    /// Ask the breaker again this often.
    pub recheck: Duration,
}

/// One order input, as the driver takes it.
#[derive(Debug)]
pub struct Input {
    /// The order it concerns.
    pub order_id: OrderId,
    /// What it asks of the order.
    pub command: OrderCommand,
    /// What a fresh order actor may take as its journal (see [`Seed`]).
    pub seed: Seed<OrderEvent>,
    /// Who asked, carried into every event it leads to.
    pub cause: Cause,
    /// When the input was stored: a charge waiting for its provider is given
    /// up `deadline` after it.
    pub stored_at: SystemTime,
}

/// Carries order inputs through the saga.
pub struct Driver {
    actors: Arc<Actors>,
    journal: Arc<NatsJournal>,
    timers: Arc<ReservationTimers>,
    placed: Arc<PlacedTimes>,
    wait: WaitPolicy,
}

/// What one request brought: the order's commands its entity answers, and
/// why the input must be retried, if it must.
#[derive(Debug, Default)]
struct Answered {
    commands: Vec<OrderCommand>,
    failure: Option<Failure>,
}

impl Answered {
    fn commands(commands: Vec<OrderCommand>) -> Self {
        Self {
            commands,
            failure: None,
        }
    }

    fn failed(failure: Failure) -> Self {
        Self {
            commands: Vec::new(),
            failure: Some(failure),
        }
    }
}

/// What this drive itself journaled first, so the entity it brings into
/// being can skip reading an empty journal.
#[derive(Debug, Default)]
struct Fresh {
    /// This drive stored `payment_requested`: the payment's journal is empty.
    payment: bool,
    /// This drive stored the ending: the notifications' journal is empty.
    notifications: bool,
}

impl Fresh {
    fn note(&mut self, appended: &[OrderEvent]) {
        for event in appended {
            match event {
                OrderEvent::PaymentRequested { .. } => self.payment = true,
                e if e.outcome().is_some() => self.notifications = true,
                _ => {}
            }
        }
    }

    /// Whether `request` is the first this drive makes of an entity whose
    /// journal it knows to be empty (asked once per entity).
    fn first_of_empty(&mut self, request: &Request) -> bool {
        match request {
            Request::Charge { .. } | Request::Refund => std::mem::take(&mut self.payment),
            Request::Notify(_) => std::mem::take(&mut self.notifications),
            _ => false,
        }
    }
}

/// The seed for an entity known to have an empty journal, or none.
fn seed_of<E>(empty: bool) -> Seed<E> {
    if empty {
        Seed::Empty
    } else {
        Seed::None
    }
}

impl Driver {
    /// A driver over `actors`; `journal` and `placed` date sagas for the
    /// metrics, `timers` are set for reservations that must not be held
    /// forever, and `wait` says how charges wait for an open breaker.
    pub fn new(
        actors: Arc<Actors>,
        journal: Arc<NatsJournal>,
        timers: Arc<ReservationTimers>,
        placed: Arc<PlacedTimes>,
        wait: WaitPolicy,
    ) -> Self {
        Self {
            actors,
            journal,
            timers,
            placed,
            wait,
        }
    }

    /// Remembers when `order_id` was placed, for its saga's duration.
    pub fn placed_at(&self, order_id: OrderId, at: SystemTime) {
        self.placed.remember(order_id, at);
    }

    /// Executes `input` on its order and drives every request it leads to,
    /// until nothing is owed or something must be retried; returns once all
    /// of it is stored, so the input may be acked.
    pub async fn drive(&self, input: Input) -> Result<(), Failure> {
        let Input {
            order_id,
            command,
            seed,
            cause,
            stored_at,
        } = input;
        let entity = EntityRef::order(order_id);
        let mut fresh = Fresh::default();
        let mut seed = seed;
        let mut commands = vec![command];
        // Each request once per drive: asked again, it would answer the same.
        let mut asked: Vec<Request> = Vec::new();
        let mut failures = Vec::new();
        for _ in 0..MAX_ROUNDS {
            let mut order = None;
            for command in commands.drain(..) {
                let done = self
                    .actors
                    .orders
                    .execute_seeded(&entity, command, cause.clone(), std::mem::take(&mut seed))
                    .await?;
                match done {
                    Done::Appended(events, state) => {
                        fresh.note(&events);
                        order = state;
                    }
                    Done::Refused(why) => return Err(Failure::Refused(format!("{entity} refused: {why}"))),
                }
            }
            // Never placed: a stray input with nothing to drive.
            let Some(order) = order else { return Ok(()) };
            let owed: Vec<Request> = saga::owed(&order).into_iter().filter(|r| !asked.contains(r)).collect();
            let empty: Vec<bool> = owed.iter().map(|r| fresh.first_of_empty(r)).collect();
            let asking = owed
                .iter()
                .zip(empty)
                .map(|(r, empty)| self.ask(&order, r, stored_at, &cause, empty));
            // A request that failed is not asked again in this drive, but
            // what the others answered is recorded and driven on (a refund
            // and the customer's notice need not wait for a broken SKU);
            // the input is retried, or dead-lettered, for the rest.
            for answered in join_all(asking).await {
                commands.extend(answered.commands);
                failures.extend(answered.failure);
            }
            asked.extend(owed);
            if commands.is_empty() {
                return self.finish(&order, worst(failures), &cause).await;
            }
        }
        Err(Failure::Transient(format!(
            "{entity}: still owes requests after {MAX_ROUNDS} rounds"
        )))
    }

    /// Before the input is settled: an order left holding stock while other
    /// SKUs have not answered gets its reservation timer, so the stock is
    /// not held forever if they never do.
    async fn finish(&self, order: &Order, failure: Option<Failure>, cause: &Cause) -> Result<(), Failure> {
        if let Some(sku) = order::reservation_to_time(order) {
            // One timer per order: the first schedule wins, so a retried
            // input neither doubles nor postpones it.
            self.timers.schedule(order.id, &sku, SystemTime::now(), cause).await?;
        }
        failure.map_or(Ok(()), Err)
    }

    /// Asks `request` of the entity it concerns, and reads its answer.
    async fn ask(
        &self,
        order: &Order,
        request: &Request,
        stored_at: SystemTime,
        cause: &Cause,
        empty: bool,
    ) -> Answered {
        let started = Instant::now();
        // Each request is a child span of the input, in the logs and on the
        // events it stores, as a hop between consumers was.
        let trace = cause
            .traceparent
            .as_deref()
            .and_then(TraceContext::parse)
            .map(|t| t.child());
        let cause = &Cause {
            message_id: cause.message_id.clone(),
            traceparent: trace
                .as_ref()
                .map(ToString::to_string)
                .or_else(|| cause.traceparent.clone()),
        };
        let step = match request {
            Request::Charge { .. } | Request::Refund => "payment",
            Request::Reserve { .. } | Request::Release { .. } | Request::Withdraw { .. } => "stock",
            Request::Notify(_) => "notification",
        };
        // Named like the input's span, so every log line about an order names it and its trace.
        let span = tracing::info_span!(
            "step",
            step,
            order_id = %order.id,
            trace_id = trace.as_ref().map(TraceContext::trace_id),
        );
        if let Some(trace) = &trace {
            telemetry::otlp::adopt(&span, trace);
        }
        let performed = async {
            match request {
                Request::Charge { .. } | Request::Refund => {
                    self.pay(order.id, request, stored_at, cause, seed_of(empty)).await
                }
                Request::Reserve { .. } | Request::Release { .. } | Request::Withdraw { .. } => {
                    self.stock(order.id, request, cause).await
                }
                Request::Notify(ending) => self.notify(ending, cause, seed_of(empty)).await,
            }
        };
        let answered = performed.instrument(span).await;
        telemetry::step_took(step, started.elapsed());
        answered
    }

    /// A charge or a refund, on the payment.
    async fn pay(
        &self,
        order_id: OrderId,
        request: &Request,
        stored_at: SystemTime,
        cause: &Cause,
        seed: Seed<schemas::payment::PaymentEvent>,
    ) -> Answered {
        let a = &self.actors;
        let payment = EntityRef::payment(order_id);
        let intent = match request {
            Request::Charge { amount, payment_method } => {
                if let Some(reason) = a.gateway.circuit_open() {
                    return self
                        .wait_for_provider(order_id, request, reason, stored_at, cause)
                        .await;
                }
                PaymentIntent::Charge {
                    order_id,
                    amount: amount.clone(),
                    payment_method: payment_method.clone(),
                }
            }
            _ => PaymentIntent::Refund { order_id },
        };
        let charge = matches!(intent, PaymentIntent::Charge { .. });
        match a.payments.execute_seeded(&payment, intent, cause.clone(), seed).await {
            Ok(Done::Appended(_, state)) => answered(&payment, saga::payment_reply(request, &state)),
            Ok(Done::Refused(why)) => Answered::failed(Failure::Refused(format!("{payment} refused: {why}"))),
            // A provider behind a breaker is waited for, up to the deadline,
            // whatever state the breaker is in when it fails.
            Err(StepError::Transient(reason)) if charge && a.gateway.has_breaker() => {
                if waited(stored_at) >= self.wait.deadline {
                    return self
                        .abandon(order_id, request, &format!("last error: {reason}"), cause)
                        .await;
                }
                Answered::failed(Failure::Wait {
                    reason,
                    retry_in: self.wait.recheck,
                })
            }
            Err(e) => Answered::failed(e.into()),
        }
    }

    /// The breaker is open: journal (once) that the charge waits, tell the
    /// order, and ask again later; or give the charge up past the deadline,
    /// so the order fails with the reason instead of waiting for ever.
    async fn wait_for_provider(
        &self,
        order_id: OrderId,
        request: &Request,
        reason: String,
        stored_at: SystemTime,
        cause: &Cause,
    ) -> Answered {
        if waited(stored_at) >= self.wait.deadline {
            return self.abandon(order_id, request, "circuit breaker open", cause).await;
        }
        let payment = EntityRef::payment(order_id);
        let wait = PaymentIntent::Wait {
            order_id,
            reason: reason.clone(),
        };
        match self.actors.payments.execute(&payment, wait, cause.clone()).await {
            Ok(Done::Appended(_, state)) => Answered {
                commands: saga::payment_reply(request, &state),
                failure: Some(Failure::Wait {
                    reason,
                    retry_in: self.wait.recheck,
                }),
            },
            Ok(Done::Refused(why)) => Answered::failed(Failure::Refused(format!("{payment} refused: {why}"))),
            Err(e) => Answered::failed(e.into()),
        }
    }

    /// Gives the charge up, so the order fails with the reason instead of waiting for ever.
    async fn abandon(&self, order_id: OrderId, request: &Request, why: &str, cause: &Cause) -> Answered {
        let reason = format!(
            "payment provider unavailable for over {} ({why})",
            humantime::format_duration(self.wait.deadline)
        );
        let payment = EntityRef::payment(order_id);
        let abandon = PaymentIntent::Abandon { order_id, reason };
        match self.actors.payments.execute(&payment, abandon, cause.clone()).await {
            Ok(Done::Appended(_, state)) => answered(&payment, saga::payment_reply(request, &state)),
            Ok(Done::Refused(why)) => Answered::failed(Failure::Refused(format!("{payment} refused: {why}"))),
            Err(e) => Answered::failed(e.into()),
        }
    }

    /// A reservation, release or withdrawal, on one SKU.
    async fn stock(&self, order_id: OrderId, request: &Request, cause: &Cause) -> Answered {
        let (command, sku) = match request {
            Request::Reserve { sku, quantity } => (
                InventoryCommand::Reserve {
                    sku: sku.clone(),
                    order_id,
                    quantity: *quantity,
                },
                sku,
            ),
            Request::Release { sku } => (
                InventoryCommand::Release {
                    sku: sku.clone(),
                    order_id,
                },
                sku,
            ),
            Request::Withdraw { sku } => (
                InventoryCommand::Withdraw {
                    sku: sku.clone(),
                    order_id,
                },
                sku,
            ),
            _ => return Answered::default(),
        };
        let entity = EntityRef::inventory(sku);
        match self.actors.inventory.execute(&entity, command, cause.clone()).await {
            // A withdrawal is never waited for: no answer is expected.
            Ok(Done::Appended(_, _)) if matches!(request, Request::Withdraw { .. }) => Answered::default(),
            Ok(Done::Appended(_, answer)) => answered(&entity, saga::stock_reply(request, &answer)),
            Ok(Done::Refused(why)) => Answered::failed(Failure::Refused(format!("{entity} refused: {why}"))),
            Err(e) => Answered::failed(e.into()),
        }
    }

    /// Tells an ending by the customer's preferences, one journaled step at
    /// a time (claim, send, record, fall back) until nothing is left.
    async fn notify(
        &self,
        ending: &Ending,
        cause: &Cause,
        seed: Seed<schemas::notification::NotificationEvent>,
    ) -> Answered {
        match self.tell(ending, cause, seed).await {
            Ok(true) => {
                self.count_ending(ending.order_id, ending.outcome).await;
                Answered::default()
            }
            Ok(false) => Answered::default(),
            Err(failure) => Answered::failed(failure),
        }
    }

    /// True if this call settled the notification (so the ending is counted once).
    async fn tell(
        &self,
        ending: &Ending,
        cause: &Cause,
        seed: Seed<schemas::notification::NotificationEvent>,
    ) -> Result<bool, Failure> {
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
        let intent = NotifyIntent::Advance {
            ending: ending.clone(),
            plan,
        };
        let mut seed = seed;
        for _ in 0..steps {
            let executed = a
                .notifications
                .execute_seeded(&notification, intent.clone(), cause.clone(), std::mem::take(&mut seed))
                .await?;
            let events = match executed {
                Done::Appended(events, ()) => events,
                Done::Refused(why) => return Err(Failure::Refused(format!("{notification} refused: {why}"))),
            };
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
                // A settling event leaves nothing to do; asking again would
                // only re-read the journal to confirm it.
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Counts an ending once (when its notification settles), with the
    /// saga's duration from `placed` to now.
    async fn count_ending(&self, order_id: OrderId, outcome: Outcome) {
        let placed = match self.placed.take(order_id) {
            Some(at) => Some(at),
            None => {
                let placed = EntityRef::order(order_id).subject("placed");
                self.journal.first_time(EntityKind::Order, &placed).await
            }
        };
        let took = placed.and_then(|placed| SystemTime::now().duration_since(placed).ok());
        telemetry::order_ended(outcome.status(), took);
    }
}

/// An entity's answer to a request that must be answered: none yet (its
/// actor decided nothing, or the gateway call is still owed) means ask again.
fn answered(entity: &EntityRef, commands: Vec<OrderCommand>) -> Answered {
    if commands.is_empty() {
        return Answered::failed(Failure::Transient(format!("{entity} has not answered yet")));
    }
    Answered::commands(commands)
}

/// How long ago `since` was.
fn waited(since: SystemTime) -> Duration {
    SystemTime::now().duration_since(since).unwrap_or_default()
}

/// The worst of several failures: any poison wins, then any refusal, then
/// any transient, then a wait.
fn worst(failures: Vec<Failure>) -> Option<Failure> {
    let rank = |f: &Failure| match f {
        Failure::Poison(_) => 0,
        Failure::Refused(_) => 1,
        Failure::Transient(_) => 2,
        Failure::Wait { .. } => 3,
    };
    failures.into_iter().min_by_key(rank)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_failure_is_the_one_reported() {
        let wait = || Failure::Wait {
            reason: "open".into(),
            retry_in: Duration::from_secs(1),
        };
        assert!(worst(Vec::new()).is_none());
        let got = worst(vec![wait(), Failure::Transient("t".into()), wait()]);
        assert!(matches!(got, Some(Failure::Transient(_))), "{got:?}");
        let got = worst(vec![
            Failure::Transient("t".into()),
            Failure::Refused("r".into()),
            Failure::Poison("p".into()),
        ]);
        assert!(matches!(got, Some(Failure::Poison(_))), "{got:?}");
        let got = worst(vec![Failure::Transient("t".into()), Failure::Refused("r".into())]);
        assert!(matches!(got, Some(Failure::Refused(_))), "{got:?}");
    }
}
