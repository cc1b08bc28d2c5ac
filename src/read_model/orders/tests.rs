use proptest::prelude::*;
use schemas::order::Line;
use schemas::{Currency, Quantity, Sku};

use super::*;

fn placed(order_id: OrderId, customer: &str) -> OrderEvent {
    OrderEvent::Placed {
        order_id,
        customer_id: CustomerId::parse(customer).expect("a valid customer"),
        lines: vec![Line {
            sku: Sku::parse("SKU-1").expect("a valid sku"),
            quantity: Quantity::new(2).expect("a valid quantity"),
            unit_price: 150,
        }],
        currency: Currency::default(),
        payment_method: "tok_visa".into(),
    }
}

fn completed(customer: &str) -> OrderEvent {
    OrderEvent::Completed {
        customer_id: CustomerId::parse(customer).expect("a valid customer"),
        reserved: None,
    }
}

fn id(n: u128) -> OrderId {
    OrderId::parse(&uuid::Uuid::from_u128(n).to_string()).expect("a uuid")
}

#[test]
fn an_entry_follows_its_order_and_ended_orders_keep_no_state() {
    let mut index = OrderIndex::default();
    index.apply(1, 1000, id(1), &placed(id(1), "alice"));
    let page = index.page(&OrderFilter::default(), None, 10);
    assert_eq!(page.entries.len(), 1);
    assert_eq!(page.entries[0].status, OrderStatus::Pending);
    assert_eq!(page.entries[0].amount.minor, 300);
    assert_eq!(page.entries[0].created_ms, 1000);
    index.apply(2, 2000, id(1), &completed("alice"));
    let page = index.page(&OrderFilter::default(), None, 10);
    assert_eq!(page.entries[0].status, OrderStatus::Completed);
    assert_eq!(page.entries[0].created_ms, 1000, "created is the placement's time");
    assert!(index.running.is_empty(), "an ended order keeps only its entry");
    assert_eq!(index.applied_seq(), 2);
}

#[test]
fn events_already_applied_and_orders_never_placed_change_nothing() {
    let mut index = OrderIndex::default();
    index.apply(5, 1000, id(1), &placed(id(1), "alice"));
    index.apply(5, 1000, id(2), &placed(id(2), "bob"));
    index.apply(6, 1000, id(3), &completed("carol"));
    assert_eq!(index.len(), 1);
    assert_eq!(index.applied_seq(), 6);
}

#[test]
fn late_events_of_an_ended_order_change_nothing() {
    let mut index = OrderIndex::default();
    index.apply(1, 1000, id(1), &placed(id(1), "alice"));
    index.apply(2, 2000, id(1), &completed("alice"));
    index.apply(3, 3000, id(1), &completed("alice"));
    let page = index.page(&OrderFilter::default(), None, 10);
    assert_eq!(page.entries.len(), 1);
    assert_eq!(page.entries[0].status, OrderStatus::Completed);
    assert_eq!(page.entries[0].created_ms, 1000);
    assert!(index.running.is_empty());
    assert_eq!(index.applied_seq(), 3);
}

#[test]
fn a_key_takes_24_bytes_and_gives_its_id_back() {
    assert_eq!(std::mem::size_of::<PageKey>(), 24);
    assert_eq!(std::mem::size_of::<(PageKey, Slot)>(), 40);
    let id = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210_u128;
    assert_eq!(PageKey::from_parts(7, id).id(), id);
}

/// An index of `n` orders: customer and status vary with the index, and
/// several share a placement time, so the id must break ties.
fn index_of(orders: &[(u8, u8, bool)]) -> OrderIndex {
    let mut index = OrderIndex::default();
    let mut seq = 0;
    for (n, (customer, time, ends)) in orders.iter().enumerate() {
        let customer = format!("c{}", customer % 3);
        let order = id(n as u128 * 7919 % 1000);
        seq += 1;
        index.apply(seq, u64::from(*time % 8), order, &placed(order, &customer));
        if *ends {
            seq += 1;
            index.apply(seq, 99, order, &completed(&customer));
        }
    }
    index
}

proptest! {
    /// Split in halves, a key sorts exactly as its time and whole id would.
    #[test]
    fn a_key_sorts_as_its_time_then_its_id(a in any::<(u64, u128)>(), b in any::<(u64, u128)>()) {
        let key = |(ms, id): (u64, u128)| PageKey::from_parts(ms, id);
        prop_assert_eq!(key(a).cmp(&key(b)), a.cmp(&b));
    }

    /// Following the cursor from the first page visits every admitted order
    /// exactly once, newest first, and no other.
    #[test]
    fn paging_visits_every_admitted_order_once_in_order(
        orders in proptest::collection::vec((any::<u8>(), any::<u8>(), any::<bool>()), 0..40),
        customer in proptest::option::of(0u8..4),
        status in proptest::option::of(prop_oneof![Just(OrderStatus::Pending), Just(OrderStatus::Completed)]),
        from in proptest::option::of(0u64..9),
        to in proptest::option::of(0u64..9),
        limit in 1usize..6,
    ) {
        let index = index_of(&orders);
        let filter = OrderFilter {
            status,
            customer: customer.map(|c| CustomerId::parse(&format!("c{c}")).expect("a valid customer")),
            created_from_ms: from,
            created_to_ms: to,
        };
        let mut seen = Vec::new();
        let mut after = None;
        for _ in 0..=orders.len() + 1 {
            let page = index.page(&filter, after, limit);
            prop_assert!(page.entries.len() <= limit);
            seen.extend(page.entries);
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        // The listing as a plain model of the same orders, apart from the index.
        let mut expected: Vec<OrderEntry> = orders
            .iter()
            .enumerate()
            .map(|(n, (customer, time, ends))| OrderEntry {
                order_id: id(n as u128 * 7919 % 1000),
                customer_id: CustomerId::parse(&format!("c{}", customer % 3)).expect("a valid customer"),
                status: if *ends { OrderStatus::Completed } else { OrderStatus::Pending },
                created_ms: u64::from(*time % 8),
                amount: Money { minor: 300, currency: Currency::default() },
            })
            .filter(|e| filter.status.is_none_or(|s| s == e.status))
            .filter(|e| filter.customer.as_ref().is_none_or(|c| *c == e.customer_id))
            .filter(|e| from.is_none_or(|f| e.created_ms >= f) && to.is_none_or(|t| e.created_ms < t))
            .collect();
        expected.sort_by_key(|e| std::cmp::Reverse(e.key()));
        prop_assert_eq!(seen, expected);
    }
}
