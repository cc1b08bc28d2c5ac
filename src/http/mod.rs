//! The HTTP facade under `/api/v1`, plus health endpoints.

pub mod access;
pub mod bulk;
pub mod console;
pub mod dead_letters;
pub mod guard;
pub mod hardening;
pub mod health;
pub mod listing;
pub mod notifications;
pub mod observe;
pub mod openapi;
pub mod order_events;
pub mod orders;
pub mod problem;
pub mod skus;
pub mod status;
pub mod trace;
pub mod views;

use std::sync::Arc;

use actors::shell::{execute, Cached, Executed, Pure};
use axum::extract::DefaultBodyLimit;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::Router;
use schemas::subjects::EntityRef;
use tower_http::trace::TraceLayer;

use crate::bus::journal::NatsJournal;
use crate::config::Config;
use problem::Problem;

/// What every handler can reach: cloned per request and per extractor, so
/// one shared [`Services`] behind an `Arc` rather than a dozen handles.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    /// Shares `services` with every handler.
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The node's services, as the handlers see them.
pub struct Services {
    /// The node's configuration.
    pub config: Arc<Config>,
    /// The journals, for reads and direct writes.
    pub journal: Arc<NatsJournal>,
    /// The core connection, for waiting on subjects.
    pub client: async_nats::Client,
    /// JetStream, for readiness.
    pub js: async_nats::jetstream::Context,
    /// Dead-letter operations.
    pub dead_letters: crate::dead_letters::DeadLetters,
    /// The snapshot store, for readiness.
    pub snapshots: crate::store::SledSnapshots,
    /// Renders `/metrics`.
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// Notification preferences and the customer index.
    pub notify: crate::notify::NotifySetup,
    /// This node's order index, for listing, and the waits it feeds (`?wait=`).
    pub orders: crate::read_model::follow::OrderReadModel,
    /// Checks bearer tokens.
    pub auth: Arc<crate::auth::Authenticator>,
}

/// What a writer assumes of an entity before deciding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assume {
    /// Nothing: read its journal first.
    Nothing,
    /// That it is new (an order being placed): decide against the empty
    /// state without a read, and append expecting an empty journal. If it is
    /// not, the server refuses the append and the journal is read and the
    /// command decided again, as after any lost race; a refusal is only
    /// believed once read.
    New,
}

/// Decides `command` against the entity's journal and appends the result
/// under optimistic concurrency, as any writer may; returns what happened
/// and the entity as last read.
pub async fn decide_and_append<A: actors::Answers>(
    app: &AppState,
    entity: &EntityRef,
    command: &A::Command,
    headers: &HeaderMap,
    assume: Assume,
) -> Result<(Executed<A>, A::State), Problem>
where
    A::Command: Clone,
{
    let mut cache = Cached::<A> {
        loaded: assume == Assume::New,
        ..Cached::default()
    };
    let executed = execute(
        &Pure::<A>::default(),
        &*app.journal,
        entity,
        &mut cache,
        command,
        &orders::cause_of(headers),
    )
    .await?;
    Ok((executed, cache.state))
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let body_limit = state.config.http.body_limit;
    let guard = Arc::new(guard::Guard::new(state.auth.clone(), &state.config.http.rate_limit));
    let cors = hardening::cors(&state.config.http.cors_allowed_origins);
    let router = Router::new()
        .route("/api/v1/orders", post(orders::place).get(listing::list))
        .route("/api/v1/orders/bulk", post(bulk::place_bulk))
        .route("/api/v1/orders/{id}/events", get(order_events::watch))
        .route("/api/v1/openapi.json", get(openapi::openapi_json))
        .route("/api/v1/docs", get(openapi::docs))
        .route("/api/v1/orders/{id}", get(orders::get))
        .route("/api/v1/orders/{id}/cancel", post(orders::cancel))
        .route("/api/v1/orders/{id}/notifications", get(notifications::of_order))
        .route(
            "/api/v1/orders/{id}/notifications/{notification_id}/read",
            post(notifications::mark_read),
        )
        .route(
            "/api/v1/customers/{customer_id}/notifications",
            get(notifications::of_customer),
        )
        .route(
            "/api/v1/customers/{customer_id}/notification-preferences",
            get(notifications::get_preferences).put(notifications::put_preferences),
        )
        .route("/api/v1/skus", get(skus::list))
        .route("/api/v1/admin/status", get(status::status))
        .route("/api/v1/orders/{id}/trace", get(trace::trace))
        .merge(console::routes())
        .route("/api/v1/skus/{sku}", get(skus::get))
        .route("/api/v1/skus/{sku}/restock", post(skus::restock))
        .route("/api/v1/admin/dead-letters", get(dead_letters::list))
        .route("/api/v1/admin/dead-letters/{id}", get(dead_letters::show))
        .route("/api/v1/admin/dead-letters/{id}/replay", post(dead_letters::replay))
        .route("/api/v1/admin/dead-letters/{id}/discard", post(dead_letters::discard))
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(health::metrics))
        .route("/readyz", get(health::readyz))
        .fallback(|| async { Problem::not_found("no such resource") })
        .method_not_allowed_fallback(|| async {
            Problem::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
                "this resource does not answer that method (see /api/v1/openapi.json)",
            )
        })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TraceLayer::new_for_http())
        .route_layer(axum::middleware::from_fn_with_state(guard, guard::guard))
        .route_layer(axum::middleware::from_fn(observe::observe))
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(
            body_limit,
            hardening::problem_for_plain_errors,
        ));
    let router = hardening::with_security_headers(router);
    match cors {
        Some(cors) => router.layer(cors),
        None => router,
    }
}
