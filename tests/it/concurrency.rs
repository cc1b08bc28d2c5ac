//! Many customers, one SKU: never oversold, every cancelled order refunded.

use std::collections::BTreeSet;

use futures::future::join_all;

use crate::support::{order_body, TestApp};

#[tokio::test]
async fn two_hundred_orders_for_fifty_units_sell_exactly_fifty() {
    let app = TestApp::spawn().await;
    app.restock("HOT", 50).await;
    let body = order_body("crowd", &[("HOT", 1)], "tok_visa");
    let ids: Vec<String> = join_all((0..200).map(|_| app.place_ok(&body))).await;
    let orders = join_all(ids.iter().map(|id| app.ended(id))).await;

    let completed: Vec<&str> = orders
        .iter()
        .filter(|o| o["status"] == "COMPLETED")
        .filter_map(|o| o["order_id"].as_str())
        .collect();
    let cancelled: Vec<&str> = orders
        .iter()
        .filter(|o| o["status"] == "CANCELLED")
        .filter_map(|o| o["order_id"].as_str())
        .collect();
    assert_eq!(completed.len(), 50);
    assert_eq!(cancelled.len(), 150);
    let stock = app.sku("HOT").await;
    assert_eq!(stock["available"], 0, "{stock}");
    assert_eq!(stock["reserved"], 50, "{stock}");

    // Every order was charged once; exactly the cancelled ones were refunded.
    let authorized = subjects_to_orders(&app.stored("PAYMENTS", "payments.*.authorized").await);
    let refunded = subjects_to_orders(&app.stored("PAYMENTS", "payments.*.refunded").await);
    assert_eq!(authorized.len(), 200);
    assert_eq!(
        refunded,
        cancelled.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>()
    );
    // Exactly fifty reservations were ever made, and none released.
    assert_eq!(app.stored("INVENTORY", "inventory.HOT.reserved").await.len(), 50);
    assert!(app.stored("INVENTORY", "inventory.HOT.released").await.is_empty());
    // One notification per order.
    assert_eq!(app.stored("NOTIFICATIONS", "notifications.>").await.len(), 200);
}

fn subjects_to_orders(messages: &[async_nats::jetstream::message::StreamMessage]) -> BTreeSet<String> {
    let ids: Vec<String> = messages
        .iter()
        .map(|m| m.subject.split('.').nth(1).expect("id").to_owned())
        .collect();
    let set: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(set.len(), ids.len(), "an order appears twice");
    set
}
