//! The same `Idempotency-Key` never places a second order.

use futures::future::join_all;
use reqwest::StatusCode;

use crate::support::{order_body, TestApp};

#[tokio::test]
async fn the_same_key_returns_the_same_order() {
    let app = TestApp::spawn().await;
    app.restock("SKU-1", 10).await;
    let body = order_body("alice", &[("SKU-1", 1)], "tok_visa");
    let (first, a) = app.place(&body, Some("checkout-42")).await;
    assert_eq!(first, StatusCode::CREATED, "{a}");
    let (second, b) = app.place(&body, Some("checkout-42")).await;
    assert_eq!(second, StatusCode::OK, "{b}");
    assert_eq!(a["order_id"], b["order_id"]);

    // Retries racing each other still make one order.
    let racing = join_all((0..10).map(|_| app.place(&body, Some("checkout-43")))).await;
    let ids: std::collections::BTreeSet<String> = racing
        .iter()
        .map(|(_, b)| b["order_id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(ids.len(), 1, "{racing:?}");
    assert_eq!(racing.iter().filter(|(s, _)| *s == StatusCode::CREATED).count(), 1);

    let placed = app.stored("ORDERS", "orders.*.placed").await;
    assert_eq!(placed.len(), 2, "one order per key");
    for id in [a["order_id"].as_str().expect("id"), ids.iter().next().expect("id")] {
        app.ended(id).await;
    }
    assert_eq!(app.sku("SKU-1").await["available"], 8);

    // Another customer with the same key is another order.
    let (status, c) = app
        .place(&order_body("bob", &[("SKU-1", 1)], "tok_visa"), Some("checkout-42"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    assert_ne!(c["order_id"], a["order_id"]);
}

#[tokio::test]
async fn a_reused_key_with_another_request_is_refused() {
    let app = TestApp::spawn().await;
    let (status, _) = app
        .place(&order_body("alice", &[("SKU-1", 1)], "tok_visa"), Some("k"))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, problem) = app
        .place(&order_body("alice", &[("SKU-1", 2)], "tok_visa"), Some("k"))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(problem["code"], "idempotency-key-reused");
}

/// Found by schemathesis: a restock retried under its key, even with another
/// quantity, adds once and answers 200 (it used to lose "races" against its
/// own first copy until 503).
#[tokio::test]
async fn a_restock_retried_under_its_key_adds_once() {
    let app = TestApp::spawn().await;
    let restock = |quantity: u64| {
        app.http
            .post(app.url("/skus/SKU-9/restock"))
            .header("Idempotency-Key", "delivery-1")
            .json(&serde_json::json!({ "quantity": quantity }))
    };
    for quantity in [5, 5, 7] {
        let (status, body) = crate::support::send(restock(quantity)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["available"], 5, "{body}");
    }
    assert_eq!(app.stored("INVENTORY", "inventory.SKU-9.*").await.len(), 1);
}
