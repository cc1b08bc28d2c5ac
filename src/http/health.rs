//! `/healthz` (the process answers), `/readyz` (it can do its job) and `/metrics`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use schemas::subjects::EntityKind;
use serde_json::{json, Value};

use super::problem::Problem;
use super::AppState;

/// Alive: the process serves HTTP.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready: connected to NATS and every stream present.
pub async fn readyz(State(app): State<AppState>) -> Result<Json<Value>, Problem> {
    let state = app.client.connection_state();
    if state != async_nats::connection::State::Connected {
        return Err(not_ready(format!("NATS connection is {state:?}")));
    }
    for kind in EntityKind::ALL {
        if let Err(e) = app.js.get_stream(kind.stream()).await {
            return Err(not_ready(format!("stream {}: {e}", kind.stream())));
        }
    }
    Ok(Json(json!({ "status": "ready" })))
}

fn not_ready(detail: String) -> Problem {
    Problem::new(StatusCode::SERVICE_UNAVAILABLE, "not-ready", "Not ready", detail)
}

/// Prometheus text exposition of this process's metrics.
pub async fn metrics(State(app): State<AppState>) -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
}
