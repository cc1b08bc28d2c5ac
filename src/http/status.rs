//! `GET /api/v1/admin/status`: consumer lag and the dead-letter backlog as
//! JSON, the numbers the gauges export, for the console's health strip.

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use super::problem::Problem;
use super::AppState;
use crate::telemetry::gauges;

/// One durable consumer's backlog.
#[derive(Debug, Serialize)]
pub struct ConsumerLag {
    /// The durable consumer's name.
    pub name: String,
    /// Messages not yet delivered.
    pub pending: u64,
    /// Messages delivered and not yet acknowledged.
    pub ack_pending: usize,
}

/// The body of `GET /api/v1/admin/status`.
#[derive(Debug, Serialize)]
pub struct NodeStatus {
    /// Each durable consumer's backlog, by name.
    pub consumers: Vec<ConsumerLag>,
    /// Dead letters neither replayed nor discarded.
    pub dead_letter_backlog: u64,
}

/// `GET /api/v1/admin/status`.
pub async fn status(State(app): State<AppState>) -> Result<Json<NodeStatus>, Problem> {
    let consumers = gauges::durable_consumers(&app.config);
    let consumers = gauges::consumer_lag(&app.js, &consumers)
        .await
        .into_iter()
        .map(|(name, (pending, ack_pending))| ConsumerLag {
            name,
            pending,
            ack_pending,
        })
        .collect();
    let dead_letter_backlog = app.dead_letters.backlog().await?;
    Ok(Json(NodeStatus {
        consumers,
        dead_letter_backlog,
    }))
}
