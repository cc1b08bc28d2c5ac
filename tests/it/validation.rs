//! Every input field has a limit, and breaking it gets a problem+json that
//! names the field: one table, one real node.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{order_body, TestApp};

/// One rule: a request that breaks it, and the answer expected.
struct Case {
    rule: &'static str,
    method: Method,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Option<Value>,
    status: StatusCode,
    field: &'static str,
}

fn case(rule: &'static str, method: Method, path: impl Into<String>, body: Option<Value>, field: &'static str) -> Case {
    Case {
        rule,
        method,
        path: path.into(),
        headers: Vec::new(),
        body,
        status: StatusCode::UNPROCESSABLE_ENTITY,
        field,
    }
}

/// An order body with one field replaced.
fn order_with(field: &str, value: Value) -> Value {
    let mut body = order_body("alice", &[("VAL-1", 1)], "tok_visa");
    body[field] = value;
    body
}

/// An order body with one field of its first item replaced.
fn item_with(field: &str, value: Value) -> Value {
    let mut body = order_body("alice", &[("VAL-1", 1)], "tok_visa");
    body["items"][0][field] = value;
    body
}

#[tokio::test]
async fn every_validation_rule_rejects_with_a_problem_naming_the_field() {
    let app = TestApp::spawn().await;
    app.restock("VAL-1", 5).await;
    let order = app.place_ok(&order_body("alice", &[("VAL-1", 1)], "tok_visa")).await;
    let too_many: Vec<Value> = (0..101)
        .map(|i| json!({ "sku": format!("S-{i}"), "quantity": 1, "unit_price": 1 }))
        .collect();
    let post = Method::POST;
    let get = Method::GET;
    let put = Method::PUT;
    let mut cases = vec![
        // Placing an order.
        case(
            "customer id format",
            post.clone(),
            "/orders",
            Some(order_with("customer_id", json!("alice smith"))),
            "customer_id",
        ),
        case(
            "customer id length",
            post.clone(),
            "/orders",
            Some(order_with("customer_id", json!("a".repeat(65)))),
            "customer_id",
        ),
        case(
            "at least one item",
            post.clone(),
            "/orders",
            Some(order_with("items", json!([]))),
            "items",
        ),
        case(
            "at most 100 items",
            post.clone(),
            "/orders",
            Some(order_with("items", json!(too_many))),
            "items",
        ),
        case(
            "sku format",
            post.clone(),
            "/orders",
            Some(item_with("sku", json!("SKU 1"))),
            "items[0].sku",
        ),
        case(
            "sku length",
            post.clone(),
            "/orders",
            Some(item_with("sku", json!("S".repeat(65)))),
            "items[0].sku",
        ),
        case(
            "quantity at least 1",
            post.clone(),
            "/orders",
            Some(item_with("quantity", json!(0))),
            "items[0].quantity",
        ),
        case(
            "quantity at most 10000",
            post.clone(),
            "/orders",
            Some(item_with("quantity", json!(10_001))),
            "items[0].quantity",
        ),
        case(
            "unit price at most 100000000",
            post.clone(),
            "/orders",
            Some(item_with("unit_price", json!(100_000_001u64))),
            "items[0].unit_price",
        ),
        case(
            "currency is ISO 4217",
            post.clone(),
            "/orders",
            Some(order_with("currency", json!("eur"))),
            "currency",
        ),
        case(
            "payment method not empty",
            post.clone(),
            "/orders",
            Some(order_with("payment_method", json!(""))),
            "payment_method",
        ),
        case(
            "payment method length",
            post.clone(),
            "/orders",
            Some(order_with("payment_method", json!("t".repeat(129)))),
            "payment_method",
        ),
        case(
            "payment method visible ASCII",
            post.clone(),
            "/orders",
            Some(order_with("payment_method", json!("tok visa"))),
            "payment_method",
        ),
        case(
            "wait is a duration",
            post.clone(),
            "/orders?wait=soon",
            Some(order_body("alice", &[("VAL-1", 1)], "tok_visa")),
            "wait",
        ),
        case(
            "wait at most http.max_wait",
            post.clone(),
            "/orders?wait=1h",
            Some(order_body("alice", &[("VAL-1", 1)], "tok_visa")),
            "wait",
        ),
        Case {
            headers: vec![("idempotency-key", "k".repeat(256))],
            ..case(
                "idempotency key length",
                post.clone(),
                "/orders",
                Some(order_body("alice", &[("VAL-1", 1)], "tok_visa")),
                "Idempotency-Key",
            )
        },
        // Reading and cancelling.
        case("order id format", get.clone(), "/orders/not-an-order", None, "id"),
        case(
            "wait on read",
            get.clone(),
            format!("/orders/{order}?wait=-1s"),
            None,
            "wait",
        ),
        case(
            "cancel reason length",
            post.clone(),
            format!("/orders/{order}/cancel"),
            Some(json!({ "reason": "r".repeat(501) })),
            "reason",
        ),
        case(
            "notification id format",
            post.clone(),
            format!("/orders/{order}/notifications/bogus/read"),
            None,
            "notification_id",
        ),
        // Customers.
        case(
            "customer id in path",
            get.clone(),
            "/customers/not%20ok/notifications",
            None,
            "customer_id",
        ),
        case(
            "limit at least 1",
            get.clone(),
            "/customers/alice/notifications?limit=0",
            None,
            "limit",
        ),
        case(
            "limit at most 100",
            get.clone(),
            "/customers/alice/notifications?limit=101",
            None,
            "limit",
        ),
        case(
            "limit is a number",
            get.clone(),
            "/customers/alice/notifications?limit=many",
            None,
            "limit",
        ),
        case(
            "preference channel",
            put.clone(),
            "/customers/alice/notification-preferences",
            Some(json!({ "channels": ["pigeon"] })),
            "channels[0]",
        ),
        case(
            "preference email",
            put.clone(),
            "/customers/alice/notification-preferences",
            Some(json!({ "channels": ["email"], "email": "nope" })),
            "email",
        ),
        // SKUs.
        case("sku in path", get.clone(), "/skus/bad%20sku", None, "sku"),
        case(
            "restock at least 1",
            post.clone(),
            "/skus/VAL-1/restock",
            Some(json!({ "quantity": 0 })),
            "quantity",
        ),
        case(
            "restock bounded",
            post.clone(),
            "/skus/VAL-1/restock",
            Some(json!({ "quantity": u64::MAX })),
            "quantity",
        ),
        Case {
            headers: vec![("idempotency-key", "k".repeat(256))],
            ..case(
                "restock idempotency key length",
                post.clone(),
                "/skus/VAL-1/restock",
                Some(json!({ "quantity": 1 })),
                "Idempotency-Key",
            )
        },
        // Dead letters.
        case("dead letter id", get.clone(), "/admin/dead-letters/abc", None, "id"),
        case(
            "dead letter page size",
            get.clone(),
            "/admin/dead-letters?limit=501",
            None,
            "limit",
        ),
        case(
            "discard reason",
            post.clone(),
            "/admin/dead-letters/1/discard",
            Some(json!({ "reason": "", "by": "x".repeat(101) })),
            "by",
        ),
    ];
    // Bodies that do not parse are 400 `malformed-body`, still naming where.
    for (rule, body, field) in [
        (
            "quantity is a number",
            item_with("quantity", json!(-1)),
            "items[0].quantity",
        ),
        (
            "unknown fields are refused",
            order_with("coupon", json!("FREE")),
            "coupon",
        ),
        (
            "payment method is required",
            {
                let mut b = order_body("alice", &[("VAL-1", 1)], "tok_visa");
                b.as_object_mut().map(|o| o.remove("payment_method"));
                b
            },
            "body",
        ),
    ] {
        cases.push(Case {
            status: StatusCode::BAD_REQUEST,
            ..case(rule, post.clone(), "/orders", Some(body), field)
        });
    }

    for c in cases {
        let mut request = app.http.request(c.method.clone(), app.url(&c.path));
        for (name, value) in &c.headers {
            request = request.header(*name, value);
        }
        if let Some(body) = &c.body {
            request = request.json(body);
        }
        let response = request.send().await.expect("the node answers");
        let status = response.status();
        let content_type = response.headers()["content-type"].to_str().unwrap_or("").to_owned();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(status, c.status, "{}: {} {} -> {body}", c.rule, c.method, c.path);
        assert_eq!(content_type, "application/problem+json", "{}", c.rule);
        let fields: Vec<&str> = body["errors"]
            .as_array()
            .map(|e| e.iter().filter_map(|f| f["field"].as_str()).collect())
            .unwrap_or_default();
        assert!(
            fields.contains(&c.field),
            "{}: expected field {} in {body}",
            c.rule,
            c.field
        );
        assert!(
            body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{}: {body}",
            c.rule
        );
    }
}
