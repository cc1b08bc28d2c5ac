//! One entity's journal in memory, for the shells' unit tests: it keeps
//! the server's optimistic check, so races between writers show.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use schemas::order::{Line, OrderEvent};
use schemas::subjects::EntityRef;
use schemas::wire::Event;
use schemas::{Currency, CustomerId, OrderId, Quantity, Sku};

use crate::journal::{Appended, Cause, Journal, JournalError, Journaled};
use crate::order::{OrderCommand, OrderSaga};
use crate::Aggregate;

/// One entity's journal in memory, with the server's optimistic check.
#[derive(Default)]
pub(crate) struct Memory {
    pub(crate) stored: Mutex<Vec<OrderEvent>>,
    /// Appends refused because the writer was behind.
    pub(crate) conflicts: AtomicUsize,
}

impl Journal for Memory {
    async fn load<E: Event>(&self, _: &EntityRef, after_seq: u64) -> Result<Vec<Journaled<E>>, JournalError> {
        let stored = self.stored.lock().expect("not poisoned");
        let mut records = Vec::new();
        for (i, event) in stored.iter().enumerate().skip(after_seq as usize) {
            let bytes = rmp_serde::to_vec_named(event).expect("encodes");
            let event = rmp_serde::from_slice(&bytes).expect("decodes");
            records.push(Journaled {
                seq: i as u64 + 1,
                event,
            });
        }
        Ok(records)
    }

    async fn append<E: Event>(
        &self,
        _: &EntityRef,
        expected_last_seq: u64,
        event: &E,
        _: &Cause,
    ) -> Result<Appended, JournalError> {
        let mut stored = self.stored.lock().expect("not poisoned");
        if stored.len() as u64 != expected_last_seq {
            self.conflicts.fetch_add(1, Ordering::AcqRel);
            return Err(JournalError::Conflict);
        }
        let bytes = rmp_serde::to_vec_named(event).expect("encodes");
        stored.push(rmp_serde::from_slice(&bytes).expect("decodes"));
        Ok(Appended {
            seq: stored.len() as u64,
            duplicate: false,
        })
    }
}

/// The command that places a one-line order.
pub(crate) fn place(order_id: OrderId) -> OrderCommand {
    OrderCommand::Place {
        order_id,
        customer_id: CustomerId::parse("alice").expect("a customer"),
        lines: vec![Line {
            sku: Sku::parse("A").expect("a sku"),
            quantity: Quantity::new(1).expect("a quantity"),
            unit_price: 100,
        }],
        currency: Currency::default(),
        payment_method: "tok_visa".into(),
    }
}

/// The `placed` event of a one-line order.
pub(crate) fn placed(order_id: OrderId) -> OrderEvent {
    let mut events = OrderSaga::decide(&Default::default(), &place(order_id)).expect("placed");
    events.remove(0)
}
