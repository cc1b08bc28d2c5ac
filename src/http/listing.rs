//! `GET /api/v1/orders`: orders by status, customer and placement time,
//! newest first, a page at a time, from this node's order index (eventually
//! consistent; the response says how far the index has caught up).

use std::time::SystemTime;

use axum::extract::{Query, State};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use schemas::{CustomerId, OrderId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::access::require_customer;
use super::openapi::{MoneyDoc, OrderStatusDoc};
use super::problem::Problem;
use super::AppState;
use crate::auth::Principal;
use crate::read_model::follow::stream_last_seq;
use crate::read_model::{OrderEntry, OrderFilter, PageKey};

/// The page size when `limit` is not given.
const DEFAULT_LIMIT: usize = 50;

/// `?status=&customer_id=&created_from=&created_to=&cursor=&limit=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only orders in this status.
    #[param(value_type = Option<OrderStatusDoc>)]
    pub status: Option<String>,
    /// Only this customer's orders.
    #[param(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub customer_id: Option<String>,
    /// Placed at or after this instant (RFC 3339, e.g. `2026-01-31T12:00:00Z`).
    #[param(format = DateTime)]
    pub created_from: Option<String>,
    /// Placed before this instant (RFC 3339).
    #[param(format = DateTime)]
    pub created_to: Option<String>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// At most this many orders (default 50, at most `http.list_max_limit`).
    #[param(minimum = 1)]
    pub limit: Option<u64>,
}

/// One order in a listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderSummary {
    /// Its id.
    #[schema(value_type = String, format = Uuid)]
    pub order_id: OrderId,
    /// Who placed it.
    pub customer_id: String,
    /// Where it stands, as of the index.
    #[schema(value_type = OrderStatusDoc)]
    pub status: actors::order::OrderStatus,
    /// When it was placed (RFC 3339).
    pub created_at: String,
    /// Its total.
    #[schema(value_type = MoneyDoc)]
    pub amount: schemas::Money,
}

impl From<OrderEntry> for OrderSummary {
    fn from(e: OrderEntry) -> Self {
        let created = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(e.created_ms);
        Self {
            order_id: e.order_id,
            customer_id: e.customer_id.to_string(),
            status: e.status,
            created_at: humantime::format_rfc3339_millis(created).to_string(),
            amount: e.amount,
        }
    }
}

/// How far this node's index has caught up with the ORDERS stream.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectionLag {
    /// The last stream sequence folded into the index.
    pub applied_seq: u64,
    /// The last sequence the stream holds.
    pub stream_last_seq: u64,
    /// Messages stored but not yet folded in (0: caught up).
    pub lag: u64,
}

/// A page of orders.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderList {
    /// The orders, newest first.
    pub orders: Vec<OrderSummary>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// How current the index is.
    pub projection: ProjectionLag,
}

/// An opaque cursor: the sort key of the last order shown.
fn encode_cursor(key: PageKey) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}.{:032x}", key.created_ms, key.id()))
}

fn decode_cursor(raw: &str) -> Result<PageKey, Problem> {
    let bad = || Problem::invalid_field("cursor", "not a cursor this API returned");
    let text = URL_SAFE_NO_PAD.decode(raw).map_err(|_| bad())?;
    let text = String::from_utf8(text).map_err(|_| bad())?;
    let (ms, id) = text.split_once('.').ok_or_else(bad)?;
    Ok(PageKey::from_parts(
        ms.parse().map_err(|_| bad())?,
        u128::from_str_radix(id, 16).map_err(|_| bad())?,
    ))
}

fn parse_instant(field: &str, raw: &str) -> Result<u64, Problem> {
    let t = humantime::parse_rfc3339_weak(raw)
        .map_err(|e| Problem::invalid_field(field, format!("{e} (use RFC 3339, e.g. 2026-01-31T12:00:00Z)")))?;
    let since = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(|_| Problem::invalid_field(field, "before 1970"))?;
    Ok(u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
}

fn parse_filter(query: &ListQuery) -> Result<OrderFilter, Problem> {
    let status = match &query.status {
        None => None,
        Some(s) => Some(
            serde_json::from_value(serde_json::Value::String(s.clone()))
                .map_err(|_| Problem::invalid_field("status", "not an order status (e.g. PENDING, COMPLETED)"))?,
        ),
    };
    let customer = match &query.customer_id {
        None => None,
        Some(c) => Some(CustomerId::parse(c).map_err(|e| Problem::invalid_field("customer_id", e.to_string()))?),
    };
    Ok(OrderFilter {
        status,
        customer,
        created_from_ms: query
            .created_from
            .as_deref()
            .map(|r| parse_instant("created_from", r))
            .transpose()?,
        created_to_ms: query
            .created_to
            .as_deref()
            .map(|r| parse_instant("created_to", r))
            .transpose()?,
    })
}

/// `GET /api/v1/orders`.
#[utoipa::path(
    get,
    path = "/api/v1/orders",
    tag = "orders",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of orders, newest first", body = OrderList),
        (status = 422, description = "A filter, the cursor or the limit is wrong (`invalid-request`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The stream could not be asked (`unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(
    State(app): State<AppState>,
    principal: Principal,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<OrderList>, Problem> {
    let Query(query) = query.map_err(|e| Problem::invalid_field("query", e.body_text()))?;
    let max = app.config.http.list_max_limit;
    let limit = match query.limit {
        None => DEFAULT_LIMIT.min(max),
        Some(n) if n >= 1 && n <= max as u64 => n as usize,
        Some(_) => return Err(Problem::invalid_field("limit", format!("between 1 and {max}"))),
    };
    let mut filter = parse_filter(&query)?;
    // A customer lists their own orders only: asking for someone else's is
    // refused, asking for none means their own.
    if let Principal::Customer(me) = &principal {
        match &filter.customer {
            Some(asked) => require_customer(&principal, asked, "customer_id")?,
            None => filter.customer = Some(me.clone()),
        }
    }
    let after = query.cursor.as_deref().map(decode_cursor).transpose()?;
    // Asked first: the index can only have moved on since, so the lag shown is never too small.
    let stream_last_seq = stream_last_seq(&app.js)
        .await
        .map_err(|e| Problem::unavailable(format!("reading ORDERS: {e}")))?;
    let (page, applied_seq) = {
        let index = app.orders.read();
        (index.page(&filter, after, limit), index.applied_seq())
    };
    Ok(Json(OrderList {
        orders: page.entries.into_iter().map(OrderSummary::from).collect(),
        next_cursor: page.next.map(encode_cursor),
        projection: ProjectionLag {
            applied_seq,
            stream_last_seq,
            lag: stream_last_seq.saturating_sub(applied_seq),
        },
    }))
}
