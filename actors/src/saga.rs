//! The saga between the order and the entities it drives, as pure
//! functions: what the order owes the others ([`owed`], from its state
//! alone) and what their answers tell it ([`payment_reply`],
//! [`stock_reply`]). The node's saga driver only carries requests and
//! answers between actors; every choice is made here or in the machines.

use schemas::{Money, Quantity, Sku};

use crate::inventory::{Settlement, StockAnswer};
use crate::notification::Ending;
use crate::order::{Order, OrderCommand, PaymentReply, PaymentStep, StockReply, StockStep};
use crate::payment::Payment;

/// A step the saga owes another entity, as the order's state has it: what
/// the saga asks of the payment, the SKUs and the notifications.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Charge the order's total: the payment was requested and not answered.
    Charge { amount: Money, payment_method: String },
    /// Refund what was captured: compensating, refund not yet confirmed.
    Refund,
    /// Set units aside: stock was requested and this SKU has not answered.
    Reserve { sku: Sku, quantity: Quantity },
    /// Give a reservation back: compensating, release not yet confirmed.
    Release { sku: Sku },
    /// Tell a SKU that never answered to drop the order; not waited for.
    Withdraw { sku: Sku },
    /// Tell the customer how the order ended.
    Notify(Ending),
}

/// Every request the saga owes from `order`'s state, in no particular
/// order (all may be made at once). A pure function of state, like
/// [`next_steps`]: asking after a crash, a redelivery or a lost race
/// repeats only what is still unanswered, and each request is idempotent
/// where it lands (the gateway's idempotency key, a SKU's memory of the
/// orders it answered, the notifications' journal). The journaled
/// `payment_requested`, `stock_requested` and `compensating` events are what
/// make a request owed, so an input arriving meanwhile (a cancel) waits for
/// the step in flight instead of racing it.
pub fn owed(order: &Order) -> Vec<Request> {
    // Withdrawals are never confirmed, so they stay owed; asking again changes nothing.
    let mut owed: Vec<Request> = order
        .compensation
        .iter()
        .flat_map(|c| c.withdrawn.iter())
        .map(|sku| Request::Withdraw { sku: sku.clone() })
        .collect();
    if let Some((outcome, reason)) = &order.ended {
        owed.push(Request::Notify(Ending {
            order_id: order.id,
            customer_id: order.customer_id.clone(),
            outcome: *outcome,
            reason: Some(reason.clone()).filter(|r| !r.is_empty()),
        }));
        return owed;
    }
    if let Some(c) = &order.compensation {
        if c.refund_pending {
            owed.push(Request::Refund);
        }
        owed.extend(
            c.release_pending
                .iter()
                .map(|sku| Request::Release { sku: sku.clone() }),
        );
        return owed;
    }
    match order.payment {
        PaymentStep::Requested => owed.push(Request::Charge {
            amount: order.amount(),
            payment_method: order.payment_method.clone(),
        }),
        PaymentStep::Authorized => owed.extend(
            order
                .lines
                .iter()
                .filter(|l| order.stock.get(&l.sku) == Some(&StockStep::Requested))
                .map(|l| Request::Reserve {
                    sku: l.sku.clone(),
                    quantity: l.quantity,
                }),
        ),
        PaymentStep::NotRequested | PaymentStep::Declined => {}
    }
    owed
}

/// The order's commands that `payment`, as it stands after `request` (a
/// charge or a refund), answers; none while it has not answered.
pub fn payment_reply(request: &Request, payment: &Payment) -> Vec<OrderCommand> {
    let record = |reply| OrderCommand::RecordPayment(reply);
    match (request, payment) {
        (Request::Charge { .. }, Payment::Authorized { payment_id, .. }) => vec![record(PaymentReply::Authorized {
            payment_id: payment_id.clone(),
        })],
        (Request::Charge { .. }, Payment::Declined { reason }) => {
            vec![record(PaymentReply::Declined { reason: reason.clone() })]
        }
        (Request::Charge { .. }, Payment::Abandoned { reason }) => {
            vec![record(PaymentReply::Unavailable { reason: reason.clone() })]
        }
        (Request::Charge { .. }, Payment::Waiting { reason }) => {
            vec![OrderCommand::RecordPaymentWaiting { reason: reason.clone() }]
        }
        // Charged and refunded already (the order learns both, in order).
        (
            Request::Charge { .. },
            Payment::Refunded {
                payment_id, refund_id, ..
            },
        ) => vec![
            record(PaymentReply::Authorized {
                payment_id: payment_id.clone(),
            }),
            OrderCommand::RecordRefund {
                refund_id: refund_id.clone(),
            },
        ],
        (Request::Refund, Payment::Refunded { refund_id, .. }) => vec![OrderCommand::RecordRefund {
            refund_id: refund_id.clone(),
        }],
        _ => Vec::new(),
    }
}

/// The order's commands that a SKU's `answer` to `request` (a reservation,
/// a release or a withdrawal on `sku`) brings; none while it has not
/// answered, and none for a withdrawal, which is never waited for.
pub fn stock_reply(request: &Request, answer: &StockAnswer) -> Vec<OrderCommand> {
    match (request, answer.settlement) {
        (Request::Reserve { sku, .. }, Some(Settlement::Held(quantity))) => vec![OrderCommand::RecordStock {
            sku: sku.clone(),
            reply: StockReply::Reserved { quantity },
        }],
        (Request::Reserve { sku, quantity }, Some(Settlement::Rejected)) => vec![OrderCommand::RecordStock {
            sku: sku.clone(),
            reply: StockReply::Rejected {
                quantity: *quantity,
                available: answer.available,
            },
        }],
        (Request::Release { sku }, Some(Settlement::Released(_))) => {
            vec![OrderCommand::RecordRelease { sku: sku.clone() }]
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests;
