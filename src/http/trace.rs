//! `GET /api/v1/orders/{id}/trace`: the order's saga across streams (order,
//! payment, inventory, notification) with step durations, as `orderflow
//! trace --json` prints it, for the console's saga view.

use axum::extract::{Path, State};
use axum::Json;
use schemas::OrderId;

use super::access::require_order;
use super::problem::Problem;
use super::views;
use super::AppState;
use crate::auth::Principal;
use crate::cli::trace::{collect, Trace};

/// `GET /api/v1/orders/{id}/trace`: the owner's or an admin's.
pub async fn trace(
    State(app): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Trace>, Problem> {
    let order_id = OrderId::parse(&id).map_err(|e| Problem::invalid_field("id", e.to_string()))?;
    require_order(&app, &principal, order_id).await?;
    // An admin passes the ownership check for any id; a missing order is still a 404.
    if views::order(&app.journal, order_id).await?.is_none() {
        return Err(Problem::not_found(format!("no order {order_id}")));
    }
    collect(&app.journal, order_id)
        .await
        .map(Json)
        .map_err(|e| Problem::unavailable(format!("{e:#}")))
}
