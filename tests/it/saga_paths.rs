//! Every path of the saga, end to end through HTTP and JetStream.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{history, order_body, send, TestApp};

#[tokio::test]
async fn a_paid_order_in_stock_completes() {
    let app = TestApp::spawn().await;
    app.restock("SKU-1", 10).await;
    let id = app.place_ok(&order_body("alice", &[("SKU-1", 2)], "tok_visa")).await;
    let order = app.ended(&id).await;
    assert_eq!(order["status"], "COMPLETED", "{order}");
    assert_eq!(
        history(&order),
        ["placed", "payment_requested", "stock_requested", "completed"]
    );
    // The reservation that completed it is recorded by the `completed` itself.
    assert_eq!(
        order["history"][3]["event"]["reserved"],
        json!({ "sku": "SKU-1", "quantity": 2 }),
        "{order}"
    );
    assert_eq!(
        app.sku("SKU-1").await,
        json!({ "sku": "SKU-1", "available": 8, "reserved": 2, "restocked": 10 })
    );
    // One notification, on the order's own subject.
    let sent = app.stored("NOTIFICATIONS", &format!("notifications.{id}.*")).await;
    assert_eq!(sent.len(), 1);
}

#[tokio::test]
async fn a_declined_payment_fails_and_touches_no_stock() {
    let app = TestApp::spawn().await;
    app.restock("SKU-1", 10).await;
    let id = app.place_ok(&order_body("alice", &[("SKU-1", 2)], "tok_decline")).await;
    let order = app.ended(&id).await;
    assert_eq!(order["status"], "FAILED", "{order}");
    assert_eq!(order["reason"], "payment declined: card declined");
    assert_eq!(history(&order), ["placed", "payment_requested", "failed"]);
    let inventory = app.stored("INVENTORY", "inventory.>").await;
    assert!(
        inventory.iter().all(|m| m.headers.get("Order-Id").is_none()),
        "no inventory event may concern the declined order"
    );
    assert_eq!(app.sku("SKU-1").await["available"], 10);
    assert!(app
        .stored("PAYMENTS", &format!("payments.{id}.authorized"))
        .await
        .is_empty());
}

#[tokio::test]
async fn an_order_over_the_limit_is_declined() {
    let app = TestApp::spawn().await;
    app.restock("SKU-1", 10).await;
    let body = json!({
        "customer_id": "alice",
        "items": [{ "sku": "SKU-1", "quantity": 1, "unit_price": app.config.gateway.decline_above + 1 }],
        "payment_method": "tok_visa",
    });
    let id = app.place_ok(&body).await;
    let order = app.ended(&id).await;
    assert_eq!(order["status"], "FAILED", "{order}");
    assert!(
        order["reason"].as_str().is_some_and(|r| r.contains("over the limit")),
        "{order}"
    );
}

#[tokio::test]
async fn out_of_stock_cancels_and_refunds() {
    let app = TestApp::spawn().await;
    app.restock("SKU-1", 1).await;
    let id = app.place_ok(&order_body("alice", &[("SKU-1", 2)], "tok_visa")).await;
    let order = app.ended(&id).await;
    assert_eq!(order["status"], "CANCELLED", "{order}");
    assert!(
        order["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("out of stock: SKU-1")),
        "{order}"
    );
    assert_eq!(
        history(&order),
        [
            "placed",
            "payment_requested",
            "stock_requested",
            "stock_rejected",
            "compensating",
            "refund_confirmed",
            "cancelled"
        ]
    );
    assert_eq!(
        app.stored("PAYMENTS", &format!("payments.{id}.refunded")).await.len(),
        1
    );
    assert_eq!(app.sku("SKU-1").await["available"], 1);
}

#[tokio::test]
async fn a_partly_available_order_releases_what_it_reserved() {
    let app = TestApp::spawn().await;
    app.restock("SKU-A", 5).await;
    let id = app
        .place_ok(&order_body("alice", &[("SKU-A", 2), ("SKU-B", 1)], "tok_visa"))
        .await;
    let order = app.ended(&id).await;
    assert_eq!(order["status"], "CANCELLED", "{order}");
    assert_eq!(app.stored("INVENTORY", "inventory.SKU-A.released").await.len(), 1);
    assert_eq!(app.sku("SKU-A").await["available"], 5);
    assert_eq!(
        app.stored("PAYMENTS", &format!("payments.{id}.refunded")).await.len(),
        1
    );
}

/// Holds back reservations by filling the INVENTORY stream on the server
/// (no new message fits until it is let go), so the cancel lands while
/// the order waits for its stock, deterministically.
#[tokio::test]
async fn cancelling_before_completion_refunds_and_releases_stock() {
    let app = TestApp::spawn().await;
    app.restock("SKU-1", 5).await;
    let mut inventory = app.js.get_stream("INVENTORY").await.expect("INVENTORY");
    let open = inventory.info().await.expect("stream info").clone();
    let mut full = open.config.clone();
    full.max_messages = i64::try_from(open.state.messages).expect("a count");
    full.discard = async_nats::jetstream::stream::DiscardPolicy::New;
    app.js.update_stream(full).await.expect("hold the SKUs' journals");

    let id = app.place_ok(&order_body("alice", &[("SKU-1", 2)], "tok_visa")).await;
    crate::support::eventually_true("payment authorized", crate::support::SAGA_DEADLINE, || async {
        app.order(&id).await["status"] == "PAYMENT_AUTHORIZED"
    })
    .await;
    let (status, body) = send(app.http.post(app.url(&format!("/orders/{id}/cancel")))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(
        body["status"], "PAYMENT_AUTHORIZED",
        "a cancel waits for the step in flight: {body}"
    );

    app.js
        .update_stream(open.config)
        .await
        .expect("let the SKUs' journals grow again");
    let order = app.ended(&id).await;
    assert_eq!(order["status"], "CANCELLED", "{order}");
    assert_eq!(order["reason"], "cancelled by customer");
    let events = history(&order);
    assert_eq!(
        events[..6],
        [
            "placed",
            "payment_requested",
            "stock_requested",
            "cancel_requested",
            "stock_reserved",
            "compensating"
        ]
    );
    // Refund and release confirm in either order, then the saga ends.
    let mut confirmations = events[6..8].to_vec();
    confirmations.sort();
    assert_eq!(confirmations, ["refund_confirmed", "release_confirmed"]);
    assert_eq!(events[8..], ["cancelled"]);
    assert_eq!(app.stored("INVENTORY", "inventory.SKU-1.released").await.len(), 1);
    assert_eq!(
        app.stored("PAYMENTS", &format!("payments.{id}.refunded")).await.len(),
        1
    );
    assert_eq!(app.sku("SKU-1").await["available"], 5);

    // An ended order cannot be cancelled again.
    let (status, body) = send(app.http.post(app.url(&format!("/orders/{id}/cancel")))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "order-ended");
}

#[tokio::test]
async fn waiting_returns_the_ending() {
    let app = TestApp::spawn().await;
    app.restock("SKU-1", 3).await;
    let (status, order) = app
        .place_waiting(&order_body("bob", &[("SKU-1", 1)], "tok_visa"), "10s")
        .await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    assert_eq!(order["status"], "COMPLETED", "{order}");
    let id = order["order_id"].as_str().expect("id");
    let (status, again) = send(app.http.get(app.url(&format!("/orders/{id}?wait=1s")))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["status"], "COMPLETED");
}

#[tokio::test]
async fn bad_input_gets_problem_details_naming_the_field() {
    let app = TestApp::spawn().await;
    let cases = [
        (
            json!({ "customer_id": "a b", "items": [{ "sku": "S", "quantity": 1, "unit_price": 1 }], "payment_method": "t" }),
            422,
            "customer_id",
        ),
        (
            json!({ "customer_id": "a", "items": [{ "sku": "S.1", "quantity": 1, "unit_price": 1 }], "payment_method": "t" }),
            422,
            "items[0].sku",
        ),
        (
            json!({ "customer_id": "a", "items": [{ "sku": "S", "quantity": 0, "unit_price": 1 }], "payment_method": "t" }),
            422,
            "items[0].quantity",
        ),
        (
            json!({ "customer_id": "a", "items": [], "payment_method": "t" }),
            422,
            "items",
        ),
        (
            json!({ "customer_id": "a", "items": [{ "sku": "S", "quantity": 1, "unit_price": 1 }, { "sku": "S", "quantity": 1, "unit_price": 1 }], "payment_method": "t" }),
            422,
            "items[1].sku",
        ),
        (
            json!({ "customer_id": "a", "items": [{ "sku": "S", "quantity": "two", "unit_price": 1 }], "payment_method": "t" }),
            400,
            "items[0].quantity",
        ),
        (
            json!({ "customer_id": "a", "items": [{ "sku": "S", "quantity": 1, "unit_price": 1 }] }),
            400,
            "body",
        ),
        (
            json!({ "customer_id": "a", "items": [{ "sku": "S", "quantity": 1, "unit_price": 1 }], "payment_method": "t", "currency": "euro" }),
            422,
            "currency",
        ),
    ];
    for (body, status, field) in cases {
        let response = app
            .http
            .post(app.url("/orders"))
            .json(&body)
            .send()
            .await
            .expect("answer");
        assert_eq!(response.status().as_u16(), status, "{body}");
        assert_eq!(
            response.headers().get("content-type").and_then(|v| v.to_str().ok()),
            Some("application/problem+json")
        );
        let problem: serde_json::Value = response.json().await.expect("json");
        let fields: Vec<&str> = problem["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .filter_map(|e| e["field"].as_str())
            .collect();
        assert!(fields.contains(&field), "{field} not named in {problem}");
    }
    let (status, problem) = send(app.http.post(app.url("/orders")).body("{not json")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    let (status, _) = send(app.http.get(app.url("/orders/not-a-uuid"))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = send(app.http.get(app.url(&format!("/orders/{}", uuid::Uuid::new_v4())))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = send(
        app.http
            .post(app.url("/skus/S-1/restock"))
            .json(&json!({ "quantity": 0 })),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}
