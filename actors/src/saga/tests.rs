//! The saga as the node drives it, with the real machines on every side:
//! the order asks what [`owed`] says, the payment and the SKUs decide with
//! their own state machines, answers come back late, twice or not at all,
//! and a customer or a reservation timer may cut in. Whatever the schedule,
//! the order ends, and money and stock end where its ending says.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use schemas::order::{Line, Outcome};
use schemas::{Currency, CustomerId, Money, OrderId, Quantity, Sku};

use super::*;
use crate::inventory::{Inventory, InventoryCommand, Stock};
use crate::order::{OrderSaga, OrderState};
use crate::payment::{ChargeResult, PaymentCommand, PaymentLedger};
use crate::{Aggregate, Answers};

/// Everything outside the order: the payment, the SKUs and what the customer was told.
#[derive(Debug, Default)]
struct World {
    approve: bool,
    payment: Payment,
    charges: usize,
    stock: BTreeMap<Sku, Stock>,
    told: usize,
}

impl World {
    /// Handles `request` the way its entity's shell would, and answers.
    fn perform(&mut self, order: &Order, request: &Request) -> Vec<OrderCommand> {
        let order_id = order.id;
        match request {
            Request::Charge { amount, .. } => {
                // The payment shell calls the gateway only while nothing was decided.
                if matches!(self.payment, Payment::NotCharged | Payment::Waiting { .. }) {
                    self.charges += 1;
                    let result = if self.approve {
                        ChargeResult::Approved {
                            payment_id: "pay_1".into(),
                        }
                    } else {
                        ChargeResult::Declined { reason: "no".into() }
                    };
                    self.pay(PaymentCommand::RecordCharge {
                        order_id,
                        amount: amount.clone(),
                        result,
                    });
                }
                payment_reply(request, &self.payment)
            }
            Request::Refund => {
                if matches!(self.payment, Payment::Authorized { .. }) {
                    self.pay(PaymentCommand::RecordRefund {
                        order_id,
                        refund_id: "ref_1".into(),
                    });
                }
                payment_reply(request, &self.payment)
            }
            Request::Reserve { sku, quantity } => self.stock_of(
                sku,
                InventoryCommand::Reserve {
                    sku: sku.clone(),
                    order_id,
                    quantity: *quantity,
                },
                request,
            ),
            Request::Release { sku } => self.stock_of(
                sku,
                InventoryCommand::Release {
                    sku: sku.clone(),
                    order_id,
                },
                request,
            ),
            Request::Withdraw { sku } => self.stock_of(
                sku,
                InventoryCommand::Withdraw {
                    sku: sku.clone(),
                    order_id,
                },
                request,
            ),
            Request::Notify(ending) => {
                assert_eq!(Some(ending.outcome), order.ended.as_ref().map(|(o, _)| *o));
                if self.told == 0 {
                    self.told = 1;
                }
                Vec::new()
            }
        }
    }

    fn pay(&mut self, command: PaymentCommand) {
        let events = PaymentLedger::decide(&self.payment, &command).expect("the payment accepts");
        self.payment = events.iter().fold(self.payment.clone(), PaymentLedger::evolve);
    }

    fn stock_of(&mut self, sku: &Sku, command: InventoryCommand, request: &Request) -> Vec<OrderCommand> {
        let stock = self.stock.entry(sku.clone()).or_default();
        let events = Inventory::decide(stock, &command).expect("the SKU accepts");
        *stock = events.iter().fold(stock.clone(), Inventory::evolve);
        stock_reply(request, &Inventory::answer(stock, &command))
    }

    /// Units this SKU holds for the order.
    fn held(&self, sku: &Sku, order_id: OrderId) -> u64 {
        match self.stock.get(sku).and_then(|s| s.orders.get(&order_id)) {
            Some(Settlement::Held(q)) => u64::from(q.get()),
            _ => 0,
        }
    }
}

fn skus() -> Vec<Sku> {
    ["A", "B", "C"].iter().map(|s| Sku::parse(s).expect("a sku")).collect()
}

fn decide(state: &mut OrderState, command: &OrderCommand) {
    let events = OrderSaga::decide(state, command).unwrap_or_else(|e| panic!("{command:?} refused: {e}"));
    *state = events.iter().fold(state.take(), OrderSaga::evolve);
}

/// One round of a schedule: what goes wrong, or cuts in, this time.
#[derive(Debug, Clone)]
struct Round {
    /// Per request owed: performed (`Some`), twice (`Some(true)`), or lost.
    performed: Vec<Option<bool>>,
    /// Answers from earlier rounds delivered now, by pick.
    deliver: Vec<proptest::sample::Index>,
}

fn round() -> impl Strategy<Value = Round> {
    (
        proptest::collection::vec(proptest::option::weighted(0.7, any::<bool>()), 4),
        proptest::collection::vec(any::<proptest::sample::Index>(), 0..4),
    )
        .prop_map(|(performed, deliver)| Round { performed, deliver })
}

proptest! {
    #[test]
    fn whatever_the_schedule_the_saga_ends_and_money_and_stock_agree(
        n_lines in 1usize..=3,
        approve in any::<bool>(),
        units in proptest::collection::vec(0u64..4, 3),
        rounds in proptest::collection::vec(round(), 0..12),
        cancel_at in proptest::option::of(0usize..12),
        expire_at in proptest::option::of(0usize..12),
    ) {
        let order_id = OrderId::random();
        let lines: Vec<Line> = skus()
            .into_iter()
            .take(n_lines)
            .map(|sku| Line { sku, quantity: Quantity::new(2).expect("positive"), unit_price: 100 })
            .collect();
        let mut world = World { approve, ..World::default() };
        for (sku, units) in skus().into_iter().zip(&units) {
            if *units > 0 {
                world.stock_of(
                    &sku,
                    InventoryCommand::Restock { sku: sku.clone(), quantity: *units, restock_id: "r".into() },
                    &Request::Withdraw { sku: sku.clone() },
                );
            }
        }
        let mut state: OrderState = None;
        decide(&mut state, &OrderCommand::Place {
            order_id,
            customer_id: CustomerId::parse("alice").expect("a customer"),
            lines: lines.clone(),
            currency: Currency::default(),
            payment_method: "tok".into(),
        });
        decide(&mut state, &OrderCommand::Advance);
        // Answers in flight: a stale one may land after the order moved on.
        let mut late: Vec<OrderCommand> = Vec::new();
        for (i, round) in rounds.iter().enumerate() {
            if cancel_at == Some(i) && state.as_ref().is_some_and(|o| o.ended.is_none()) {
                decide(&mut state, &OrderCommand::Cancel { reason: "customer".into() });
            }
            if expire_at == Some(i) {
                let held = state.as_ref().and_then(crate::order::reservation_to_time);
                if let Some(sku) = held {
                    decide(&mut state, &OrderCommand::ExpireReservation { sku, ttl: Duration::from_secs(60) });
                }
            }
            let order = state.clone().expect("placed");
            for (request, performed) in owed(&order).iter().zip(round.performed.iter().cycle()) {
                let Some(twice) = performed else { continue };
                late.extend(world.perform(&order, request));
                if *twice {
                    late.extend(world.perform(&order, request));
                }
            }
            for pick in &round.deliver {
                if late.is_empty() {
                    break;
                }
                let command = late.remove(pick.index(late.len()));
                decide(&mut state, &command);
            }
        }
        for command in late.drain(..) {
            decide(&mut state, &command);
        }
        // Then a calm drive: every request answered at once, as the node
        // does once the outage or the redeliveries are over.
        for _ in 0..8 {
            let order = state.clone().expect("placed");
            let answers: Vec<OrderCommand> = owed(&order).iter().flat_map(|r| world.perform(&order, r)).collect();
            if answers.is_empty() && order.ended.is_some() {
                break;
            }
            for command in &answers {
                decide(&mut state, command);
            }
        }
        let order = state.expect("placed");
        let (outcome, _) = order.ended.clone().unwrap_or_else(|| panic!("never ended: {order:?}"));
        prop_assert_eq!(world.told, 1, "the customer was never told");
        prop_assert!(world.charges <= 1, "charged {} times", world.charges);
        let held: Vec<u64> = lines.iter().map(|l| world.held(&l.sku, order_id)).collect();
        match outcome {
            Outcome::Completed => {
                prop_assert!(matches!(world.payment, Payment::Authorized { .. }), "{:?}", world.payment);
                prop_assert!(held.iter().all(|h| *h == 2), "{:?}", held);
                prop_assert!(order.cancel_requested.is_none());
            }
            Outcome::Failed | Outcome::Cancelled => {
                prop_assert!(!matches!(world.payment, Payment::Authorized { .. }), "kept the money: {:?}", world.payment);
                prop_assert!(held.iter().all(|h| *h == 0), "kept stock: {:?}", held);
            }
        }
        let enough = lines.iter().zip(&units).all(|(_, u)| *u >= 2);
        if approve && enough && order.cancel_requested.is_none() && expire_at.is_none() {
            prop_assert_eq!(outcome, Outcome::Completed);
        }
        // Nothing is owed after the end but telling (and withdrawals, which change nothing).
        let settled = owed(&order).iter().all(|r| matches!(r, Request::Notify(_) | Request::Withdraw { .. }));
        prop_assert!(settled, "still owed: {:?}", owed(&order));
    }
}

#[test]
fn a_placed_order_owes_nothing_until_it_asks_for_payment() {
    let mut state: OrderState = None;
    decide(
        &mut state,
        &OrderCommand::Place {
            order_id: OrderId::random(),
            customer_id: CustomerId::parse("alice").expect("a customer"),
            lines: vec![Line {
                sku: skus()[0].clone(),
                quantity: Quantity::new(1).expect("positive"),
                unit_price: 5,
            }],
            currency: Currency::default(),
            payment_method: "tok".into(),
        },
    );
    let order = state.clone().expect("placed");
    assert_eq!(owed(&order), Vec::new());
    decide(&mut state, &OrderCommand::Advance);
    let order = state.expect("placed");
    assert_eq!(
        owed(&order),
        vec![Request::Charge {
            amount: Money {
                minor: 5,
                currency: Currency::default()
            },
            payment_method: "tok".into()
        }]
    );
}
