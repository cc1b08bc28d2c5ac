//! `/healthz` (the process answers), `/readyz` (it can do its job) and `/metrics`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::problem::Problem;
use super::AppState;
use crate::bus::topology;

/// Alive: the process serves HTTP.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready: connected to NATS, every stream and key-value bucket present, the
/// snapshot store open.
pub async fn readyz(State(app): State<AppState>) -> Result<Json<Value>, Problem> {
    let state = app.client.connection_state();
    if state != async_nats::connection::State::Connected {
        return Err(not_ready(format!("NATS connection is {state:?}")));
    }
    // A bucket is the stream `KV_<bucket>` underneath.
    let buckets = topology::buckets(&app.config)
        .into_iter()
        .map(|b| format!("KV_{}", b.bucket));
    for name in topology::streams(&app.config)
        .into_iter()
        .map(|s| s.name)
        .chain(buckets)
    {
        // `get_stream` asks the server; a handle alone would prove nothing.
        match tokio::time::timeout(PROBE_TIMEOUT, app.js.get_stream(&name)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(not_ready(format!("stream {name}: {e}"))),
            Err(_) => return Err(not_ready(format!("stream {name}: no answer in {PROBE_TIMEOUT:?}"))),
        }
    }
    if !app.snapshots.is_open() {
        return Err(not_ready("the snapshot store cannot be read".into()));
    }
    Ok(Json(json!({
        "status": "ready",
        "checks": { "nats": "connected", "streams": "present", "buckets": "present", "snapshots": "open" },
    })))
}

/// How long one readiness probe of the broker may take.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

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
