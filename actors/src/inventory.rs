//! One SKU's stock: reserve, reject, release, restock; never negative, and
//! every unit accounted for (available + reserved = everything restocked).

use std::collections::{BTreeMap, BTreeSet};

use schemas::inventory::InventoryEvent;
use schemas::{OrderId, Quantity, Sku};
use serde::{Deserialize, Serialize};

use crate::{Aggregate, Answers};

/// The largest stock one SKU may hold.
pub const MAX_STOCK: u64 = 1_000_000_000;

/// What became of an order's request on this SKU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Settlement {
    /// Units still held for the order (sold, once the order completed).
    Held(Quantity),
    /// Too few units were available.
    Rejected,
    /// The reservation went back to the stock.
    Released(Quantity),
    /// The order gave up before this SKU answered; nothing was held.
    Withdrawn,
}

/// One SKU's stock, folded from `inventory.<sku>.*`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stock {
    /// Units free to reserve.
    pub available: u64,
    /// Units held by orders.
    pub reserved: u64,
    /// Everything ever restocked.
    pub restocked: u64,
    /// Every order this SKU answered, so a repeated request is answered the
    /// same way however late it comes (message-id dedup only spans minutes).
    pub orders: BTreeMap<OrderId, Settlement>,
    /// Every restock applied, by id: a restock retried after the message-id
    /// window, or a republished copy, adds nothing twice.
    #[serde(default)]
    pub restocks: BTreeSet<String>,
}

/// What a SKU tells the order that asked: how its request was settled
/// (`None`: not answered, or a restock), and the units free now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockAnswer {
    /// The order's request on this SKU, as settled.
    pub settlement: Option<Settlement>,
    /// Units free to reserve.
    pub available: u64,
}

/// Everything that may be asked of a SKU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum InventoryCommand {
    /// Add units; `restock_id` names the request for de-duplication.
    Restock {
        sku: Sku,
        quantity: u64,
        restock_id: String,
    },
    /// Set units aside for an order, or say there are too few.
    Reserve {
        sku: Sku,
        order_id: OrderId,
        quantity: Quantity,
    },
    /// Give an order's units back.
    Release { sku: Sku, order_id: OrderId },
    /// The order gave up (its reservation elsewhere expired): give back what
    /// it holds here, or, if this SKU never answered it, refuse its request
    /// for good — whichever of the two arrives first, the other is moot.
    Withdraw { sku: Sku, order_id: OrderId },
}

/// Why a SKU refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InventoryRejection {
    #[error("restock quantity must be between 1 and {MAX_STOCK} and keep stock at most {MAX_STOCK}")]
    BadRestock,
    #[error("order {0} holds no reservation on this SKU")]
    NoReservation(OrderId),
}

/// The SKU's state machine.
#[derive(Debug, Clone, Copy, Default)]
pub struct Inventory;

impl Aggregate for Inventory {
    type State = Stock;
    type Event = InventoryEvent;
    type Command = InventoryCommand;
    type Rejection = InventoryRejection;

    fn decide(stock: &Stock, command: &InventoryCommand) -> Result<Vec<InventoryEvent>, InventoryRejection> {
        match command {
            InventoryCommand::Restock {
                sku,
                quantity,
                restock_id,
            } if stock.restocks.contains(restock_id) => Ok(Vec::new()),
            InventoryCommand::Restock {
                sku,
                quantity,
                restock_id,
            } => {
                let total = stock.available.saturating_add(stock.reserved).saturating_add(*quantity);
                if *quantity == 0 || total > MAX_STOCK {
                    return Err(InventoryRejection::BadRestock);
                }
                Ok(vec![InventoryEvent::Restocked {
                    sku: sku.clone(),
                    quantity: *quantity,
                    restock_id: restock_id.clone(),
                    available: stock.available + quantity,
                }])
            }
            InventoryCommand::Reserve {
                sku,
                order_id,
                quantity,
            } => {
                if stock.orders.contains_key(order_id) {
                    return Ok(Vec::new());
                }
                let wanted = u64::from(quantity.get());
                Ok(vec![if stock.available >= wanted {
                    InventoryEvent::Reserved {
                        sku: sku.clone(),
                        order_id: *order_id,
                        quantity: *quantity,
                        available: stock.available - wanted,
                    }
                } else {
                    InventoryEvent::Rejected {
                        sku: sku.clone(),
                        order_id: *order_id,
                        quantity: *quantity,
                        available: stock.available,
                    }
                }])
            }
            InventoryCommand::Release { sku, order_id } => match stock.orders.get(order_id) {
                Some(Settlement::Held(quantity)) => Ok(vec![InventoryEvent::Released {
                    sku: sku.clone(),
                    order_id: *order_id,
                    quantity: *quantity,
                    available: stock.available + u64::from(quantity.get()),
                }]),
                Some(Settlement::Released(_)) => Ok(Vec::new()),
                Some(Settlement::Rejected | Settlement::Withdrawn) | None => {
                    Err(InventoryRejection::NoReservation(*order_id))
                }
            },
            InventoryCommand::Withdraw { sku, order_id } => match stock.orders.get(order_id) {
                Some(Settlement::Held(_)) => Self::decide(
                    stock,
                    &InventoryCommand::Release {
                        sku: sku.clone(),
                        order_id: *order_id,
                    },
                ),
                Some(_) => Ok(Vec::new()),
                None => Ok(vec![InventoryEvent::Withdrawn {
                    sku: sku.clone(),
                    order_id: *order_id,
                    available: stock.available,
                }]),
            },
        }
    }

    fn evolve(mut stock: Stock, event: &InventoryEvent) -> Stock {
        match event {
            InventoryEvent::Restocked { restock_id, .. } if stock.restocks.contains(restock_id) => {}
            InventoryEvent::Restocked {
                quantity, restock_id, ..
            } => {
                stock.available = stock.available.saturating_add(*quantity);
                stock.restocked = stock.restocked.saturating_add(*quantity);
                stock.restocks.insert(restock_id.clone());
            }
            // A republished copy of an answer already folded in changes
            // nothing, and neither does an answer after a withdrawal.
            InventoryEvent::Reserved { order_id, .. }
            | InventoryEvent::Rejected { order_id, .. }
            | InventoryEvent::Withdrawn { order_id, .. }
                if stock.orders.contains_key(order_id) => {}
            InventoryEvent::Withdrawn { order_id, .. } => {
                stock.orders.insert(*order_id, Settlement::Withdrawn);
            }
            InventoryEvent::Reserved { order_id, quantity, .. } => {
                let q = u64::from(quantity.get());
                // A journal only holds reservations that fitted; saturate
                // rather than panic if one was written by hand.
                stock.available = stock.available.saturating_sub(q);
                stock.reserved += q;
                stock.orders.insert(*order_id, Settlement::Held(*quantity));
            }
            InventoryEvent::Rejected { order_id, .. } => {
                stock.orders.insert(*order_id, Settlement::Rejected);
            }
            InventoryEvent::Released { order_id, .. } => {
                if let Some(Settlement::Held(q)) = stock.orders.get(order_id).copied() {
                    stock.available += u64::from(q.get());
                    stock.reserved -= u64::from(q.get());
                    stock.orders.insert(*order_id, Settlement::Released(q));
                }
            }
        }
        stock
    }
}

impl Answers for Inventory {
    type Answer = StockAnswer;

    fn answer(stock: &Stock, command: &InventoryCommand) -> StockAnswer {
        let order = match command {
            InventoryCommand::Reserve { order_id, .. }
            | InventoryCommand::Release { order_id, .. }
            | InventoryCommand::Withdraw { order_id, .. } => Some(order_id),
            InventoryCommand::Restock { .. } => None,
        };
        StockAnswer {
            settlement: order.and_then(|o| stock.orders.get(o).copied()),
            available: stock.available,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn sku() -> Sku {
        Sku::parse("SKU-1").unwrap()
    }

    fn command(orders: Vec<OrderId>) -> impl Strategy<Value = InventoryCommand> {
        let pick = proptest::sample::select(orders);
        prop_oneof![
            (0u64..20, "[a-z]{1,3}").prop_map(|(quantity, restock_id)| InventoryCommand::Restock {
                sku: sku(),
                quantity,
                restock_id
            }),
            (pick.clone(), 1u32..8).prop_map(|(order_id, q)| InventoryCommand::Reserve {
                sku: sku(),
                order_id,
                quantity: Quantity::new(q).unwrap(),
            }),
            pick.clone()
                .prop_map(|order_id| InventoryCommand::Release { sku: sku(), order_id }),
            pick.prop_map(|order_id| InventoryCommand::Withdraw { sku: sku(), order_id }),
        ]
    }

    proptest! {
        #[test]
        fn stock_is_never_negative_and_every_unit_is_accounted_for(
            commands in proptest::collection::vec(command((0..6).map(|_| OrderId::random()).collect()), 0..60)
        ) {
            let mut stock = Stock::default();
            let mut journal = Vec::new();
            for c in &commands {
                if let Ok(events) = Inventory::decide(&stock, c) {
                    for e in events {
                        // Every event states the level after it; it must agree with the fold.
                        let after = Inventory::evolve(stock.clone(), &e);
                        match &e {
                            InventoryEvent::Restocked { available, .. }
                            | InventoryEvent::Reserved { available, .. }
                            | InventoryEvent::Rejected { available, .. }
                            | InventoryEvent::Released { available, .. }
                            | InventoryEvent::Withdrawn { available, .. } => prop_assert_eq!(*available, after.available),
                        }
                        stock = after;
                        journal.push(e);
                    }
                }
                prop_assert_eq!(stock.available + stock.reserved, stock.restocked);
            }
            // Per order: at most one answer, a release only of what was
            // reserved, once, and nothing after a withdrawal.
            let mut per_order: BTreeMap<OrderId, Vec<&'static str>> = BTreeMap::new();
            for e in &journal {
                if let Some(id) = schemas::wire::Event::order_id(e) {
                    per_order.entry(id).or_default().push(schemas::wire::Event::event_type(e));
                }
            }
            for (_, kinds) in per_order {
                prop_assert!(
                    kinds == ["reserved"] || kinds == ["rejected"] || kinds == ["reserved", "released"] || kinds == ["withdrawn"],
                    "{:?}",
                    kinds
                );
            }
            prop_assert_eq!(Inventory::replay(&journal), stock);
        }
    }

    #[test]
    fn a_withdrawal_releases_what_is_held_or_fences_a_later_reservation() {
        let (held, fenced) = (OrderId::random(), OrderId::random());
        let q = Quantity::new(2).unwrap();
        let mut stock = Stock::default();
        let mut run = |c: InventoryCommand| {
            let events = Inventory::decide(&stock, &c).unwrap();
            stock = events.iter().fold(stock.clone(), Inventory::evolve);
            events.iter().map(schemas::wire::Event::event_type).collect::<Vec<_>>()
        };
        run(InventoryCommand::Restock {
            sku: sku(),
            quantity: 5,
            restock_id: "r".into(),
        });
        let reserve = |order_id| InventoryCommand::Reserve {
            sku: sku(),
            order_id,
            quantity: q,
        };
        let withdraw = |order_id| InventoryCommand::Withdraw { sku: sku(), order_id };
        assert_eq!(run(reserve(held)), ["reserved"]);
        assert_eq!(run(withdraw(held)), ["released"]);
        assert_eq!(run(withdraw(fenced)), ["withdrawn"]);
        assert!(
            run(reserve(fenced)).is_empty(),
            "a request after the withdrawal holds nothing"
        );
        assert!(run(withdraw(fenced)).is_empty());
        assert_eq!((stock.available, stock.reserved), (5, 0));
    }

    #[test]
    fn releasing_what_was_never_reserved_is_refused() {
        let id = OrderId::random();
        assert_eq!(
            Inventory::decide(
                &Stock::default(),
                &InventoryCommand::Release {
                    sku: sku(),
                    order_id: id
                }
            ),
            Err(InventoryRejection::NoReservation(id))
        );
    }

    #[test]
    fn a_restock_counts_once_however_often_it_is_asked_or_copied() {
        let sku = Sku::parse("R1").unwrap();
        let restock = InventoryCommand::Restock {
            sku,
            quantity: 7,
            restock_id: "key-1".into(),
        };
        let events = Inventory::decide(&Stock::default(), &restock).unwrap();
        let stock = Inventory::replay(&events);
        assert_eq!(
            Inventory::decide(&stock, &restock).unwrap(),
            Vec::new(),
            "a retry adds nothing"
        );
        let copied = Inventory::evolve(stock.clone(), &events[0]);
        assert_eq!(
            (copied.available, copied.restocked),
            (7, 7),
            "a republished copy adds nothing"
        );
    }
}
