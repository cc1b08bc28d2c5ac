//! How an input becomes a command: directly, or after an outside effect.

use serde::{Deserialize, Serialize};
use std::fmt::Debug;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use schemas::subjects::EntityRef;
use schemas::{Money, OrderId};

use super::StepError;
use crate::payment::{Gateway, Payment, PaymentCommand, PaymentLedger};
use crate::{Aggregate, Answers};

/// Turns an input (an intent) into the command to decide, given the state.
pub trait Behavior: Send + Sync + 'static {
    /// The state machine driven.
    type Aggregate: Aggregate;
    /// What inputs ask for.
    type Intent: Clone + Debug + Send + Sync + 'static;
    /// What the caller is told of the entity after an input (see [`Answers`]).
    type Answer: Clone + Debug + Send + Sync + Serialize + serde::de::DeserializeOwned + 'static;

    /// The command to decide now, or `None` when nothing is to be done.
    /// Runs again after every lost race, against the reloaded state.
    fn command(
        &self,
        entity: &EntityRef,
        state: &<Self::Aggregate as Aggregate>::State,
        intent: &Self::Intent,
    ) -> impl Future<Output = Result<Option<<Self::Aggregate as Aggregate>::Command>, StepError>> + Send;

    /// True when `command` acts on the world, so it must see the real
    /// history rather than guess that the entity is new.
    fn needs_history(&self, _intent: &Self::Intent) -> bool {
        false
    }

    /// Where the entity stands for the caller of `intent`, once it is handled.
    fn answer(&self, state: &<Self::Aggregate as Aggregate>::State, intent: &Self::Intent) -> Self::Answer;
}

/// The behaviour of machines whose inputs are their commands.
pub struct Pure<A>(PhantomData<fn() -> A>);

impl<A> Default for Pure<A> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<A: Answers> Behavior for Pure<A>
where
    A::Command: Clone,
{
    type Aggregate = A;
    type Intent = A::Command;
    type Answer = A::Answer;

    async fn command(&self, _: &EntityRef, _: &A::State, intent: &A::Command) -> Result<Option<A::Command>, StepError> {
        Ok(Some(intent.clone()))
    }

    fn answer(&self, state: &A::State, intent: &A::Command) -> A::Answer {
        A::answer(state, intent)
    }
}

/// What the saga asks of a payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentIntent {
    /// Charge the order's total.
    Charge {
        order_id: OrderId,
        amount: Money,
        payment_method: String,
    },
    /// Refund what was captured.
    Refund { order_id: OrderId },
    /// Tell that the charge waits for an unreachable provider (breaker open).
    Wait { order_id: OrderId, reason: String },
    /// Give the charge up: the provider stayed unreachable past the deadline.
    Abandon { order_id: OrderId, reason: String },
}

/// The payment's behaviour: call the gateway only when the journal says
/// the call is still owed, with the order id as idempotency key.
pub struct PaymentBehavior<G> {
    gateway: Arc<G>,
}

impl<G> PaymentBehavior<G> {
    /// Calls `gateway` for charges and refunds.
    pub fn new(gateway: Arc<G>) -> Self {
        Self { gateway }
    }
}

impl<G: Gateway> Behavior for PaymentBehavior<G> {
    type Aggregate = PaymentLedger;
    type Intent = PaymentIntent;
    /// The payment as it stands: the saga reads its reply from it.
    type Answer = Payment;

    async fn command(
        &self,
        _: &EntityRef,
        state: &Payment,
        intent: &PaymentIntent,
    ) -> Result<Option<PaymentCommand>, StepError> {
        let transient = |e: crate::payment::GatewayError| StepError::Transient(e.to_string());
        Ok(match (intent, state) {
            (
                PaymentIntent::Charge {
                    order_id,
                    amount,
                    payment_method,
                },
                Payment::NotCharged | Payment::Waiting { .. },
            ) => {
                let result = self
                    .gateway
                    .charge(*order_id, amount, payment_method)
                    .await
                    .map_err(transient)?;
                Some(PaymentCommand::RecordCharge {
                    order_id: *order_id,
                    amount: amount.clone(),
                    result,
                })
            }
            (PaymentIntent::Charge { .. }, _) => None,
            (PaymentIntent::Refund { order_id }, Payment::Authorized { payment_id, amount }) => {
                let refund_id = self
                    .gateway
                    .refund(*order_id, payment_id, amount)
                    .await
                    .map_err(transient)?;
                Some(PaymentCommand::RecordRefund {
                    order_id: *order_id,
                    refund_id,
                })
            }
            (PaymentIntent::Refund { .. }, Payment::Refunded { .. }) => None,
            // The machine decides whether these still matter; no outside call.
            (PaymentIntent::Wait { order_id, reason }, _) => Some(PaymentCommand::RecordWaiting {
                order_id: *order_id,
                reason: reason.clone(),
            }),
            (PaymentIntent::Abandon { order_id, reason }, _) => Some(PaymentCommand::Abandon {
                order_id: *order_id,
                reason: reason.clone(),
            }),
            // Let the machine refuse it, so the anomaly is dead-lettered loudly.
            (PaymentIntent::Refund { order_id }, _) => Some(PaymentCommand::RecordRefund {
                order_id: *order_id,
                refund_id: String::new(),
            }),
        })
    }

    fn needs_history(&self, _: &PaymentIntent) -> bool {
        true
    }

    fn answer(&self, state: &Payment, _: &PaymentIntent) -> Payment {
        state.clone()
    }
}
