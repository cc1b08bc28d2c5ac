//! `POST /api/v1/orders/bulk`: up to `http.bulk_max` orders in one request,
//! each placed exactly as `POST /api/v1/orders` places one, with one result
//! per item; one item's problem does not stop the others.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use futures::StreamExt;
use schemas::OrderId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::orders::{idempotency_key, parse_body, place_one, PlaceOrderBody};
use super::problem::{parse_json, Problem};
use super::AppState;
use crate::auth::Principal;

/// Items placed at once; more would only queue on the same journal writes.
const CONCURRENCY: usize = 8;

/// The body of a bulk placement.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkBody {
    /// The orders, each as the body of `POST /api/v1/orders`.
    #[schema(value_type = Vec<PlaceOrderBody>)]
    pub orders: Vec<serde_json::Value>,
}

/// What became of one item.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkItemResult {
    /// The item's position in `orders`.
    pub index: usize,
    /// The HTTP status the item would have had alone (201 placed, 200 already placed by its key).
    pub status: u16,
    /// The order, when placed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub order_id: Option<OrderId>,
    /// Where to read it, when placed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Why it was refused, when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<Problem>,
}

/// One result per item, in the items' order.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkResult {
    /// The results.
    pub results: Vec<BulkItemResult>,
}

/// `POST /api/v1/orders/bulk`.
#[utoipa::path(
    post,
    path = "/api/v1/orders/bulk",
    tag = "orders",
    request_body = BulkBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Item i is placed with the key `<key>:<i>`, so a retried request places each order once")),
    responses(
        (status = 200, description = "One result per item (201-like with the order's id, or a problem)", body = BulkResult),
        (status = 400, description = "Not JSON of this shape (`malformed-body`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "More orders than `http.bulk_max` (`too-many-orders`), or a body above `http.body_limit`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No orders, or a bad Idempotency-Key (`invalid-request`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn place_bulk(
    State(app): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let key = idempotency_key(&headers)?.map(str::to_owned);
    let body: BulkBody = parse_json(&body)?;
    let max = app.config.http.bulk_max;
    if body.orders.len() > max {
        return Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-many-orders",
            "Too many orders",
            format!("{} orders; at most {max} in one request", body.orders.len()),
        ));
    }
    if body.orders.is_empty() {
        return Err(Problem::invalid_field("orders", "at least one order"));
    }
    let (app, headers, key, principal) = (&app, &headers, key.as_deref(), &principal);
    let results = futures::stream::iter(body.orders.into_iter().enumerate())
        .map(|(index, item)| async move {
            let placed = async {
                let item_key = key.map(|k| format!("{k}:{index}"));
                let (order_id, command) = parse_body(parse_item(index, item)?, item_key.as_deref())?;
                let status = place_one(app, principal, order_id, command, headers).await?;
                Ok::<_, Problem>((status, order_id))
            }
            .await;
            match placed {
                Ok((status, order_id)) => BulkItemResult {
                    index,
                    status: status.as_u16(),
                    order_id: Some(order_id),
                    location: Some(format!("/api/v1/orders/{order_id}")),
                    problem: None,
                },
                Err(problem) => BulkItemResult {
                    index,
                    status: problem.status,
                    order_id: None,
                    location: None,
                    problem: Some(problem),
                },
            }
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    Ok((StatusCode::OK, Json(BulkResult { results })).into_response())
}

/// One item as an order body, its faults named from the request's root (`orders[2].items[0].sku`).
fn parse_item(index: usize, item: serde_json::Value) -> Result<PlaceOrderBody, Problem> {
    serde_path_to_error::deserialize(item).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            format!("orders[{index}]")
        } else {
            format!("orders[{index}].{path}")
        };
        Problem::malformed(field, e.inner().to_string())
    })
}
