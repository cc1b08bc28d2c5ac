//! The documentation of the routes that were written before the document:
//! annotations only, kept here so the handlers' files stay as they are.
//! Each names the handler it describes; the router test keeps them complete.
#![allow(dead_code)] // Never called: utoipa reads the annotations.

use crate::http::orders::PlaceOrderBody;
use crate::http::problem::Problem;
use crate::http::skus::RestockBody;

use super::{OrderViewDoc, SkuListDoc, SkuViewDoc, StatusDoc};

/// `orders::place`.
#[utoipa::path(
    post,
    path = "/api/v1/orders",
    tag = "orders",
    request_body = PlaceOrderBody,
    params(
        ("wait" = Option<String>, Query, description = "Hold the answer until the order ends or this long (e.g. `5s`), at most `http.max_wait`"),
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 255 characters; the same key never places a second order"),
    ),
    responses(
        (status = 201, description = "Placed", body = OrderViewDoc),
        (status = 200, description = "Already placed with this Idempotency-Key", body = OrderViewDoc),
        (status = 400, description = "Not JSON of this shape (`malformed-body`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The key placed a different order (`idempotency-key-reused`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body above `http.body_limit`"),
        (status = 422, description = "A field is wrong (`invalid-request`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The journal could not be reached (`unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
fn place_order() {}

/// `orders::get`.
#[utoipa::path(
    get,
    path = "/api/v1/orders/{id}",
    tag = "orders",
    params(
        ("id" = String, Path, format = Uuid, description = "The order's id"),
        ("wait" = Option<String>, Query, description = "Hold the answer until the order ends or this long"),
    ),
    responses(
        (status = 200, description = "The order with its history", body = OrderViewDoc),
        (status = 404, description = "No such order (`not-found`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad id or wait (`invalid-request`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The journal could not be reached (`unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
fn get_order() {}

/// `orders::cancel`.
#[utoipa::path(
    post,
    path = "/api/v1/orders/{id}/cancel",
    tag = "orders",
    params(
        ("id" = String, Path, format = Uuid, description = "The order's id"),
        ("wait" = Option<String>, Query, description = "Hold the answer until the order ends or this long"),
    ),
    request_body(content = Object, description = "Optional: `{\"reason\": \"...\"}` (at most 500 characters)"),
    responses(
        (status = 202, description = "Cancellation journaled; the saga undoes what it did", body = OrderViewDoc),
        (status = 200, description = "Ended (with `?wait=`)", body = OrderViewDoc),
        (status = 400, description = "Not JSON of this shape (`malformed-body`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order (`not-found`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The order already ended (`order-ended`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is wrong (`invalid-request`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The journal could not be reached (`unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
fn cancel_order() {}

/// `notifications::of_order`.
#[utoipa::path(
    get,
    path = "/api/v1/orders/{id}/notifications",
    tag = "notifications",
    params(("id" = String, Path, format = Uuid, description = "The order's id")),
    responses(
        (status = 200, description = "The order's notifications", body = Object),
        (status = 422, description = "Bad id (`invalid-request`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Unreachable (`unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
fn order_notifications() {}

/// `notifications::mark_read`.
#[utoipa::path(
    post,
    path = "/api/v1/orders/{id}/notifications/{notification_id}/read",
    tag = "notifications",
    params(
        ("id" = String, Path, format = Uuid, description = "The order's id"),
        ("notification_id" = String, Path, description = "The notification's id"),
    ),
    responses(
        (status = 200, description = "The notification, marked read", body = Object),
        (status = 404, description = "No such notification (`not-found`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad id (`invalid-request`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Unreachable (`unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
fn mark_notification_read() {}

/// `notifications::of_customer`.
#[utoipa::path(
    get,
    path = "/api/v1/customers/{customer_id}/notifications",
    tag = "notifications",
    params(
        ("customer_id" = String, Path, pattern = "^[A-Za-z0-9_-]{1,64}$", description = "The customer"),
        ("limit" = Option<String>, Query, description = "At most this many orders' notifications"),
    ),
    responses(
        (status = 200, description = "The customer's notifications, newest order first", body = Object),
        (status = 422, description = "Bad customer or limit (`invalid-request`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Unreachable (`unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
fn customer_notifications() {}

/// `notifications::get_preferences`.
#[utoipa::path(
    get,
    path = "/api/v1/customers/{customer_id}/notification-preferences",
    tag = "notifications",
    params(("customer_id" = String, Path, pattern = "^[A-Za-z0-9_-]{1,64}$", description = "The customer")),
    responses(
        (status = 200, description = "The customer's preferences", body = Object),
        (status = 404, description = "None set; the defaults apply (`not-found`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad customer (`invalid-request`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Unreachable (`unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
fn get_notification_preferences() {}

/// `notifications::put_preferences`.
#[utoipa::path(
    put,
    path = "/api/v1/customers/{customer_id}/notification-preferences",
    tag = "notifications",
    params(("customer_id" = String, Path, pattern = "^[A-Za-z0-9_-]{1,64}$", description = "The customer")),
    request_body(content = Object, description = "Channels in order of preference, with their addresses"),
    responses(
        (status = 200, description = "Stored", body = Object),
        (status = 400, description = "Not JSON of this shape (`malformed-body`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is wrong (`invalid-request`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Unreachable (`unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
fn put_notification_preferences() {}

/// `skus::get`.
#[utoipa::path(
    get,
    path = "/api/v1/skus/{sku}",
    tag = "skus",
    params(("sku" = String, Path, pattern = "^[A-Za-z0-9_-]{1,64}$", description = "The SKU")),
    responses(
        (status = 200, description = "Its stock", body = SkuViewDoc),
        (status = 404, description = "Nothing ever happened to it (`not-found`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad SKU (`invalid-request`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Unreachable (`unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
fn get_sku() {}

/// `skus::restock`.
#[utoipa::path(
    post,
    path = "/api/v1/skus/{sku}/restock",
    tag = "skus",
    request_body = RestockBody,
    params(
        ("sku" = String, Path, pattern = "^[A-Za-z0-9_-]{1,64}$", description = "The SKU"),
        ("Idempotency-Key" = Option<String>, Header, description = "A retried request adds the units once"),
    ),
    responses(
        (status = 200, description = "Its stock after", body = SkuViewDoc),
        (status = 400, description = "Not JSON of this shape (`malformed-body`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is wrong (`invalid-request`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Unreachable (`unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
fn restock_sku() {}

/// `dead_letters::list`.
#[utoipa::path(
    get,
    path = "/api/v1/admin/dead-letters",
    tag = "admin",
    params(
        ("state" = Option<String>, Query, description = "open (default), replayed, discarded or all"),
        ("after" = Option<u64>, Query, description = "Only ids above this one (the previous page's `next_after`)"),
        ("limit" = Option<u64>, Query, description = "At most this many (default 100, at most 500)"),
    ),
    responses(
        (status = 200, description = "A page of dead letters", body = Object),
        (status = 422, description = "A parameter is wrong (`invalid-request`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Unreachable (`unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
fn list_dead_letters() {}

/// `dead_letters::show`.
#[utoipa::path(
    get,
    path = "/api/v1/admin/dead-letters/{id}",
    tag = "admin",
    params(("id" = u64, Path, description = "The dead letter's id")),
    responses(
        (status = 200, description = "The dead letter and its message", body = Object),
        (status = 404, description = "No such dead letter (`not-found`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad id (`invalid-request`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Unreachable (`unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
fn show_dead_letter() {}

/// `dead_letters::replay`.
#[utoipa::path(
    post,
    path = "/api/v1/admin/dead-letters/{id}/replay",
    tag = "admin",
    params(("id" = u64, Path, description = "The dead letter's id")),
    request_body(content = Object, description = "Optional: `{\"by\": \"who\"}`"),
    responses(
        (status = 200, description = "Replayed", body = Object),
        (status = 400, description = "Not JSON of this shape (`malformed-body`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such dead letter (`not-found`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already handled", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is wrong (`invalid-request`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Unreachable (`unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
fn replay_dead_letter() {}

/// `dead_letters::discard`.
#[utoipa::path(
    post,
    path = "/api/v1/admin/dead-letters/{id}/discard",
    tag = "admin",
    params(("id" = u64, Path, description = "The dead letter's id")),
    request_body(content = Object, description = "`{\"reason\": \"why\", \"by\": \"who\"}`"),
    responses(
        (status = 200, description = "Discarded", body = Object),
        (status = 400, description = "Not JSON of this shape (`malformed-body`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such dead letter (`not-found`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already handled", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is wrong (`invalid-request`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Unreachable (`unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
fn discard_dead_letter() {}

/// `health::healthz`.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "The process serves HTTP", body = Object)))]
fn healthz() {}

/// `health::metrics`.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain")))]
fn metrics() {}

/// `health::readyz`.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Connected, streams present, snapshot store open", body = Object),
        (status = 503, description = "Not ready (`not-ready`)", body = Problem, content_type = "application/problem+json"),
    )
)]
fn readyz() {}

/// `skus::list`.
#[utoipa::path(
    get,
    path = "/api/v1/skus",
    tag = "skus",
    responses(
        (status = 200, description = "Every SKU ever restocked, with its stock", body = SkuListDoc),
        (status = 503, description = "Unreachable (`unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
fn list_skus() {}

/// `status::status`.
#[utoipa::path(
    get,
    path = "/api/v1/admin/status",
    tag = "admin",
    responses(
        (status = 200, description = "Consumer lag and the dead-letter backlog", body = StatusDoc),
        (status = 503, description = "Unreachable (`unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
fn admin_status() {}

/// `trace::trace`.
#[utoipa::path(
    get,
    path = "/api/v1/orders/{id}/trace",
    tag = "orders",
    params(("id" = String, Path, format = Uuid, description = "The order's id")),
    responses(
        (status = 200, description = "The saga across streams: `hops` (stream, seq, subject, event_type, time, offset_seconds, trace_id, event) and `steps` (step, from, to, seconds), as `orderflow trace --json`", body = Object),
        (status = 404, description = "No such order, or another customer's (`not-found`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The id is not a UUID (`invalid-request`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The journals could not be read (`unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
fn order_trace() {}
