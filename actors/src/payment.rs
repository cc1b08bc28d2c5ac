//! The money side of one order: charge once, refund at most once, and only
//! what was captured.

use std::future::Future;

use schemas::payment::PaymentEvent;
use schemas::{Money, OrderId};
use serde::{Deserialize, Serialize};

use crate::Aggregate;

/// The payment's state, folded from `payments.<order_id>.*`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Payment {
    /// No charge attempted yet.
    #[default]
    NotCharged,
    /// Charged.
    Authorized { payment_id: String, amount: Money },
    /// Refused; nothing captured.
    Declined { reason: String },
    /// Not charged: the provider is unreachable, so the charge waits.
    Waiting { reason: String },
    /// Not charged, and never will be: the provider stayed unreachable too long.
    Abandoned { reason: String },
    /// Charged, then refunded in full.
    Refunded {
        payment_id: String,
        refund_id: String,
        amount: Money,
    },
}

/// The gateway's answer to a charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeResult {
    /// Captured, under this gateway payment id.
    Approved { payment_id: String },
    /// Refused, and why.
    Declined { reason: String },
}

/// Everything that may be asked of a payment. Gateway results are facts the
/// shell obtained before deciding; the machine itself does no I/O.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentCommand {
    /// Record the gateway's answer to the order's charge.
    RecordCharge {
        order_id: OrderId,
        amount: Money,
        result: ChargeResult,
    },
    /// Record the gateway's refund of the captured amount.
    RecordRefund { order_id: OrderId, refund_id: String },
    /// Record that the charge waits for an unreachable provider.
    RecordWaiting { order_id: OrderId, reason: String },
    /// Give the charge up: the provider stayed unreachable past the deadline.
    Abandon { order_id: OrderId, reason: String },
}

/// Why a payment refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentRejection {
    #[error("nothing was captured, so nothing can be refunded")]
    NothingCaptured,
}

/// The payment's state machine.
#[derive(Debug, Clone, Copy, Default)]
pub struct PaymentLedger;

impl Aggregate for PaymentLedger {
    type State = Payment;
    type Event = PaymentEvent;
    type Command = PaymentCommand;
    type Rejection = PaymentRejection;

    fn decide(state: &Payment, command: &PaymentCommand) -> Result<Vec<PaymentEvent>, PaymentRejection> {
        match (state, command) {
            (
                Payment::NotCharged | Payment::Waiting { .. },
                PaymentCommand::RecordCharge {
                    order_id,
                    amount,
                    result,
                },
            ) => Ok(vec![match result {
                ChargeResult::Approved { payment_id } => PaymentEvent::Authorized {
                    order_id: *order_id,
                    payment_id: payment_id.clone(),
                    amount: amount.clone(),
                },
                ChargeResult::Declined { reason } => PaymentEvent::Declined {
                    order_id: *order_id,
                    reason: reason.clone(),
                },
            }]),
            // The charge was already decided; the gateway's idempotency key
            // made a repeated call return the same charge.
            (_, PaymentCommand::RecordCharge { .. }) => Ok(Vec::new()),
            (Payment::Authorized { payment_id, amount }, PaymentCommand::RecordRefund { order_id, refund_id }) => {
                Ok(vec![PaymentEvent::Refunded {
                    order_id: *order_id,
                    payment_id: payment_id.clone(),
                    refund_id: refund_id.clone(),
                    amount: amount.clone(),
                }])
            }
            (Payment::Refunded { .. }, PaymentCommand::RecordRefund { .. }) => Ok(Vec::new()),
            (
                Payment::NotCharged | Payment::Waiting { .. } | Payment::Declined { .. } | Payment::Abandoned { .. },
                PaymentCommand::RecordRefund { .. },
            ) => Err(PaymentRejection::NothingCaptured),
            (Payment::NotCharged, PaymentCommand::RecordWaiting { order_id, reason }) => {
                Ok(vec![PaymentEvent::Waiting {
                    order_id: *order_id,
                    reason: reason.clone(),
                }])
            }
            // Told once; a charge already decided needs no waiting.
            (_, PaymentCommand::RecordWaiting { .. }) => Ok(Vec::new()),
            (Payment::NotCharged | Payment::Waiting { .. }, PaymentCommand::Abandon { order_id, reason }) => {
                Ok(vec![PaymentEvent::Abandoned {
                    order_id: *order_id,
                    reason: reason.clone(),
                }])
            }
            (_, PaymentCommand::Abandon { .. }) => Ok(Vec::new()),
        }
    }

    fn evolve(state: Payment, event: &PaymentEvent) -> Payment {
        match (state, event) {
            (Payment::NotCharged, PaymentEvent::Waiting { reason, .. }) => Payment::Waiting { reason: reason.clone() },
            (Payment::NotCharged | Payment::Waiting { .. }, PaymentEvent::Authorized { payment_id, amount, .. }) => {
                Payment::Authorized {
                    payment_id: payment_id.clone(),
                    amount: amount.clone(),
                }
            }
            (Payment::NotCharged | Payment::Waiting { .. }, PaymentEvent::Declined { reason, .. }) => {
                Payment::Declined { reason: reason.clone() }
            }
            (Payment::NotCharged | Payment::Waiting { .. }, PaymentEvent::Abandoned { reason, .. }) => {
                Payment::Abandoned { reason: reason.clone() }
            }
            (
                Payment::Authorized { .. },
                PaymentEvent::Refunded {
                    payment_id,
                    refund_id,
                    amount,
                    ..
                },
            ) => Payment::Refunded {
                payment_id: payment_id.clone(),
                refund_id: refund_id.clone(),
                amount: amount.clone(),
            },
            // A journal never holds anything else; if it did, the first
            // decision stands.
            (state, _) => state,
        }
    }
}

/// A payment provider. Every call carries an idempotency key derived from
/// the order id, so a retried call is one charge (invariant 5).
pub trait Gateway: Send + Sync + 'static {
    /// Charges `amount` to `payment_method`, once per order.
    fn charge(
        &self,
        order_id: OrderId,
        amount: &Money,
        payment_method: &str,
    ) -> impl Future<Output = Result<ChargeResult, GatewayError>> + Send;

    /// Refunds the whole of `payment_id`, once per order; returns the refund id.
    fn refund(
        &self,
        order_id: OrderId,
        payment_id: &str,
        amount: &Money,
    ) -> impl Future<Output = Result<String, GatewayError>> + Send;
}

/// A gateway call that did not produce an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// The provider did not answer or failed transiently; worth retrying soon.
    #[error("payment gateway unavailable: {0}")]
    Unavailable(String),
    /// The circuit breaker is open: the provider was not called at all.
    #[error("payment gateway circuit open: {0}")]
    CircuitOpen(String),
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use schemas::Currency;

    use super::*;

    fn command(order_id: OrderId) -> impl Strategy<Value = PaymentCommand> {
        prop_oneof![
            (any::<bool>(), 0u64..10_000).prop_map(move |(ok, minor)| PaymentCommand::RecordCharge {
                order_id,
                amount: Money {
                    minor,
                    currency: Currency::default()
                },
                result: if ok {
                    ChargeResult::Approved {
                        payment_id: format!("pay_{minor}"),
                    }
                } else {
                    ChargeResult::Declined {
                        reason: "declined".into(),
                    }
                },
            }),
            "[a-z]{1,4}".prop_map(move |refund_id| PaymentCommand::RecordRefund { order_id, refund_id }),
            "[a-z]{1,4}".prop_map(move |reason| PaymentCommand::RecordWaiting { order_id, reason }),
            "[a-z]{1,4}".prop_map(move |reason| PaymentCommand::Abandon { order_id, reason }),
        ]
    }

    proptest! {
        #[test]
        fn charges_once_and_refunds_at_most_once_and_only_captured(
            commands in proptest::collection::vec(command(OrderId::random()), 0..20)
        ) {
            let mut state = Payment::default();
            let mut journal = Vec::new();
            for c in &commands {
                if let Ok(events) = PaymentLedger::decide(&state, c) {
                    for e in events {
                        state = PaymentLedger::evolve(state, &e);
                        journal.push(e);
                    }
                }
            }
            // One decision per charge: authorized, declined or abandoned, never two.
            let charges = journal
                .iter()
                .filter(|e| !matches!(e, PaymentEvent::Refunded { .. } | PaymentEvent::Waiting { .. }))
                .count();
            let waits: Vec<usize> = journal
                .iter()
                .enumerate()
                .filter(|(_, e)| matches!(e, PaymentEvent::Waiting { .. }))
                .map(|(i, _)| i)
                .collect();
            // Waiting is told at most once, and only before the charge is decided.
            prop_assert!(waits.len() <= 1);
            prop_assert!(waits.iter().all(|&i| i == 0));
            let refunds: Vec<_> = journal.iter().filter(|e| matches!(e, PaymentEvent::Refunded { .. })).collect();
            prop_assert!(charges <= 1);
            prop_assert!(refunds.len() <= 1);
            if let Some(PaymentEvent::Refunded { amount, .. }) = refunds.first() {
                // Refunded exactly what was captured, after capturing it.
                let captured = journal
                    .iter()
                    .any(|e| matches!(e, PaymentEvent::Authorized { amount: a, .. } if a == amount));
                prop_assert!(captured);
            }
            prop_assert_eq!(PaymentLedger::replay(&journal), state);
        }
    }

    #[test]
    fn refusing_to_refund_what_was_never_captured() {
        let id = OrderId::random();
        let refund = PaymentCommand::RecordRefund {
            order_id: id,
            refund_id: "r".into(),
        };
        assert_eq!(
            PaymentLedger::decide(&Payment::NotCharged, &refund),
            Err(PaymentRejection::NothingCaptured)
        );
        let declined = Payment::Declined { reason: "no".into() };
        assert_eq!(
            PaymentLedger::decide(&declined, &refund),
            Err(PaymentRejection::NothingCaptured)
        );
    }
}
