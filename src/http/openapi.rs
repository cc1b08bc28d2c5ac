//! The OpenAPI 3.1 document, generated from the handlers' annotations, and
//! a docs page that renders it offline (`/api/v1/docs`: one HTML file with
//! inline script and style, nothing fetched from elsewhere).

mod existing;

use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::Json;
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use super::problem::{FieldError, Problem};
use super::{bulk, listing, order_events, orders, skus};

/// The document: every route the router serves.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "orderflow",
        description = "Order-processing saga engine. Every error is `application/problem+json` (RFC 9457) with a stable `code`. Every operation needs `Authorization: Bearer <JWT>` (role `customer` or `admin`; 401 without, 403 or 404 for another customer's data, 429 with `Retry-After` over the rate limit), except `/healthz`, `/readyz`, `/metrics`, this document and `/api/v1/docs`."
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    paths(
        existing::place_order,
        listing::list,
        bulk::place_bulk,
        existing::get_order,
        existing::cancel_order,
        order_events::watch,
        existing::order_notifications,
        existing::mark_notification_read,
        existing::customer_notifications,
        existing::get_notification_preferences,
        existing::put_notification_preferences,
        existing::get_sku,
        existing::list_skus,
        existing::admin_status,
        existing::order_trace,
        existing::restock_sku,
        existing::list_dead_letters,
        existing::show_dead_letter,
        existing::replay_dead_letter,
        existing::discard_dead_letter,
        existing::healthz,
        existing::metrics,
        existing::readyz,
        openapi_json,
        docs,
    ),
    components(schemas(
        Problem,
        FieldError,
        OrderStatusDoc,
        MoneyDoc,
        LineDoc,
        HistoryEntryDoc,
        OrderViewDoc,
        SkuViewDoc,
        SkuListDoc,
        StatusDoc,
        ConsumerLagDoc,
        orders::PlaceOrderBody,
        orders::ItemBody,
        skus::RestockBody,
        listing::OrderList,
        listing::OrderSummary,
        listing::ProjectionLag,
        bulk::BulkBody,
        bulk::BulkResult,
        bulk::BulkItemResult,
        order_events::StatusChange,
    )),
    tags(
        (name = "orders", description = "Place, list, read, watch and cancel orders"),
        (name = "notifications", description = "What customers were told, and how they want to be told"),
        (name = "skus", description = "Stock"),
        (name = "admin", description = "Dead letters, for operators"),
        (name = "operations", description = "Health, readiness, metrics and this document"),
    )
)]
pub struct ApiDoc;

/// Declares the bearer JWT scheme every protected operation uses.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        // What the guard answers on any protected operation, documented once
        // here rather than in every annotation; open operations need no token.
        let answer = |what: &str| {
            let problem = utoipa::openapi::ContentBuilder::new()
                .schema(Some(utoipa::openapi::Ref::from_schema_name("Problem")))
                .build();
            utoipa::openapi::ResponseBuilder::new()
                .description(what)
                .content("application/problem+json", problem)
                .build()
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            let open = matches!(
                path.as_str(),
                "/healthz" | "/readyz" | "/metrics" | "/api/v1/openapi.json" | "/api/v1/docs"
            );
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                if open {
                    // An empty requirement overrides the document's bearer one.
                    operation.security = Some(vec![utoipa::openapi::security::SecurityRequirement::default()]);
                    continue;
                }
                for (status, what) in [
                    ("401", "No valid bearer token (`unauthorized`)"),
                    ("403", "The caller's role or identity may not do this (`forbidden`)"),
                    (
                        "429",
                        "Over the caller's rate limit (`rate-limited`); see `Retry-After`",
                    ),
                ] {
                    operation
                        .responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| answer(what).into());
                }
            }
        }
    }
}

/// Where an order stands (as `actors::order::OrderStatus` serializes).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = OrderStatus)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(dead_code)] // Documentation only: the real type lives in the actors crate.
pub enum OrderStatusDoc {
    Pending,
    PaymentAuthorized,
    StockReserved,
    Compensating,
    AttentionRequired,
    Completed,
    Failed,
    Cancelled,
}

/// An amount in minor units of a currency.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Money)]
pub struct MoneyDoc {
    /// Minor units, e.g. cents.
    pub minor: u64,
    /// ISO 4217 code.
    pub currency: String,
}

/// One line of an order.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Line)]
pub struct LineDoc {
    /// Which SKU.
    pub sku: String,
    /// How many.
    pub quantity: u32,
    /// Price of one, in minor units.
    pub unit_price: u64,
}

/// One event of an order's history.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = HistoryEntry)]
pub struct HistoryEntryDoc {
    /// Stream sequence.
    pub seq: u64,
    /// The event type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// When it was stored (RFC 3339).
    pub at: String,
    /// The event itself, as journaled.
    #[schema(value_type = Object)]
    pub event: serde_json::Value,
}

/// An order as the API shows it (`views::OrderView`).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Order)]
pub struct OrderViewDoc {
    /// Its id.
    #[schema(format = Uuid)]
    pub order_id: String,
    /// Who placed it.
    pub customer_id: String,
    /// Where it stands.
    pub status: OrderStatusDoc,
    /// Why it failed or was cancelled, or why it needs attention.
    pub reason: Option<String>,
    /// Why it waits for an outside party.
    pub waiting: Option<String>,
    /// What was ordered.
    pub items: Vec<LineDoc>,
    /// The total.
    pub amount: MoneyDoc,
    /// Every event, oldest first.
    pub history: Vec<HistoryEntryDoc>,
}

/// A SKU's stock (`views::SkuView`).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Sku)]
pub struct SkuViewDoc {
    /// Which SKU.
    pub sku: String,
    /// Units free to reserve.
    pub available: u64,
    /// Units held by orders (including sold ones).
    pub reserved: u64,
    /// Units ever restocked.
    pub restocked: u64,
}

/// The catalog (`skus::SkuList`).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SkuList)]
pub struct SkuListDoc {
    /// Every SKU ever restocked, by name.
    pub skus: Vec<SkuViewDoc>,
    /// True when more SKUs exist than were listed.
    pub truncated: bool,
}

/// The node's view of the pipeline (`status::NodeStatus`).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = NodeStatus)]
pub struct StatusDoc {
    /// Each durable consumer's backlog.
    pub consumers: Vec<ConsumerLagDoc>,
    /// Dead letters neither replayed nor discarded.
    pub dead_letter_backlog: u64,
}

/// One consumer's backlog (`status::ConsumerLag`).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ConsumerLag)]
pub struct ConsumerLagDoc {
    /// The durable consumer's name.
    pub name: String,
    /// Messages not yet delivered.
    pub pending: u64,
    /// Messages delivered and not yet acknowledged.
    pub ack_pending: u64,
}

/// `GET /api/v1/openapi.json`.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "operations",
    responses((status = 200, description = "This document (OpenAPI 3.1)", body = Object))
)]
pub async fn openapi_json() -> impl IntoResponse {
    Json(ApiDoc::openapi())
}

/// The docs page: self-contained, it renders `/api/v1/openapi.json`.
const DOCS_PAGE: &str = include_str!("openapi/docs.html");

/// `GET /api/v1/docs`.
#[utoipa::path(
    get,
    path = "/api/v1/docs",
    tag = "operations",
    responses((status = 200, description = "A browsable page of this document; works offline", body = String, content_type = "text/html"))
)]
pub async fn docs() -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-cache")], Html(DOCS_PAGE))
}

#[cfg(test)]
mod guard_answers_tests {
    use super::*;

    #[test]
    fn protected_operations_document_the_guards_answers_and_open_ones_need_no_token() {
        let doc = serde_json::to_value(ApiDoc::openapi()).expect("serializes");
        let keys: Vec<&String> = doc["paths"].as_object().map(|m| m.keys().collect()).unwrap_or_default();
        assert!(
            doc["paths"]["/api/v1/orders"]["post"]["responses"]["401"].is_object(),
            "{keys:?}"
        );
        assert_eq!(doc["paths"]["/healthz"]["get"]["security"], serde_json::json!([{}]));
    }
}
