//! A bounded mixed load over HTTP: successes, declines, stock-outs and
//! cancels, each order under its own Idempotency-Key so that retries across
//! a node's death never place it twice.

use std::time::Duration;

use futures::stream::{self, StreamExt};
use serde_json::{json, Value};
use tokio::time::Instant;

/// How long one request keeps being retried while a node is down.
const RETRY_FOR: Duration = Duration::from_secs(60);

/// The shape of a load.
#[derive(Debug, Clone)]
pub struct Mix {
    /// Orders to place.
    pub orders: usize,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// SKUs ordered, round-robin.
    pub skus: Vec<String>,
    /// Every this-many-th order pays with the declining token.
    pub decline_every: usize,
    /// Every this-many-th order is cancelled right after it is placed.
    pub cancel_every: usize,
    /// Distinguishes the idempotency keys of separate loads.
    pub run: String,
}

impl Mix {
    /// A load of `orders` over `skus`: a tenth declined, a tenth cancelled.
    pub fn new(orders: usize, skus: &[&str]) -> Self {
        Mix {
            orders,
            concurrency: 32,
            skus: skus.iter().map(|s| s.to_string()).collect(),
            decline_every: 10,
            cancel_every: 10,
            run: uuid::Uuid::new_v4().simple().to_string(),
        }
    }
}

/// Sends `request` until it gets an answer that is not a 5xx, or gives up.
async fn persist(make: impl Fn() -> reqwest::RequestBuilder) -> Option<(u16, Value)> {
    let until = Instant::now() + RETRY_FOR;
    while Instant::now() < until {
        if let Ok(r) = make().send().await {
            let status = r.status().as_u16();
            if status < 500 {
                return Some((status, r.json().await.unwrap_or(Value::Null)));
            }
        }
        // Pacing between retries while the node restarts.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// Places the load against whatever node `base()` names at each attempt;
/// returns the order ids, in placing order.
pub async fn place_mixed(http: &reqwest::Client, base: impl Fn() -> String, mix: &Mix) -> Vec<String> {
    let base = &base;
    stream::iter(0..mix.orders)
        .map(|i| async move {
            let sku = &mix.skus[i % mix.skus.len()];
            let payment = if i % mix.decline_every == 3 {
                "tok_decline"
            } else {
                "tok_visa"
            };
            let body = json!({
                "customer_id": format!("c{}", i % 50),
                "items": [{ "sku": sku, "quantity": 1 + (i % 2) as u32, "unit_price": 999 }],
                "payment_method": payment,
            });
            let key = format!("{}-{i}", mix.run);
            let (status, order) = persist(|| {
                http.post(format!("{}/api/v1/orders", base()))
                    .header("Idempotency-Key", &key)
                    .json(&body)
            })
            .await
            .unwrap_or_else(|| panic!("order {i} could not be placed within {RETRY_FOR:?}"));
            assert!(status == 200 || status == 201, "order {i}: {status} {order}");
            let id = order["order_id"].as_str().expect("an order id").to_owned();
            if i % mix.cancel_every == 7 {
                let (status, body) = persist(|| http.post(format!("{}/api/v1/orders/{id}/cancel", base())))
                    .await
                    .unwrap_or_else(|| panic!("order {i} could not be cancelled within {RETRY_FOR:?}"));
                // Already ended is a fine answer: the saga may have been quicker.
                assert!(matches!(status, 200 | 202 | 409), "cancel {i}: {status} {body}");
            }
            id
        })
        .buffered(mix.concurrency)
        .collect()
        .await
}

/// Polls every order until it has ended; returns them.
pub async fn all_ended(http: &reqwest::Client, base: &str, ids: &[String], deadline: Duration) -> Vec<Value> {
    let until = Instant::now() + deadline;
    let mut ended = Vec::with_capacity(ids.len());
    for id in ids {
        loop {
            let order = persist(|| http.get(format!("{base}/api/v1/orders/{id}?wait=5s")))
                .await
                .map(|(_, o)| o);
            let status = order.as_ref().and_then(|o| o["status"].as_str());
            if matches!(status, Some("COMPLETED" | "FAILED" | "CANCELLED")) {
                ended.extend(order);
                break;
            }
            assert!(
                Instant::now() < until,
                "order {id} has not ended within {deadline:?}: {order:?}"
            );
        }
    }
    ended
}
