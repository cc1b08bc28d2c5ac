//! `/api/v1/skus/{sku}`: read and restock.

use actors::inventory::{Inventory, InventoryCommand, InventoryRejection};
use actors::shell::Executed;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use bytes::Bytes;
use schemas::subjects::EntityRef;
use schemas::Sku;
use serde::Deserialize;

use super::orders::MAX_IDEMPOTENCY_KEY;
use super::problem::{parse_json, Problem};
use super::views::{self, SkuView};
use super::{decide_and_append, AppState};

/// The body of `POST /api/v1/skus/{sku}/restock`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestockBody {
    /// Units to add.
    #[schema(minimum = 1, maximum = 1000000000)]
    pub quantity: u64,
}

fn parse_sku(raw: &str) -> Result<Sku, Problem> {
    Sku::parse(raw).map_err(|e| Problem::invalid_field("sku", e.to_string()))
}

/// `GET /api/v1/skus/{sku}`.
pub async fn get(State(app): State<AppState>, Path(sku): Path<String>) -> Result<Json<SkuView>, Problem> {
    let sku = parse_sku(&sku)?;
    views::sku(&app.journal, sku.clone())
        .await?
        .map(Json)
        .ok_or_else(|| Problem::not_found(format!("no SKU {sku}")))
}

/// `POST /api/v1/skus/{sku}/restock`: adds units; with an `Idempotency-Key`,
/// a retried request adds them once.
pub async fn restock(
    State(app): State<AppState>,
    Path(sku): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<SkuView>, Problem> {
    let sku = parse_sku(&sku)?;
    let body: RestockBody = parse_json(&body)?;
    let restock_id = match headers.get("idempotency-key").map(|v| v.to_str()) {
        None => uuid::Uuid::new_v4().to_string(),
        Some(Ok(k)) if !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY => k.to_owned(),
        Some(_) => {
            return Err(Problem::invalid_field(
                "Idempotency-Key",
                "must be 1 to 255 visible ASCII characters",
            ))
        }
    };
    let entity = EntityRef::inventory(&sku);

    let command = InventoryCommand::Restock {
        sku: sku.clone(),
        quantity: body.quantity,
        restock_id,
    };
    match decide_and_append::<Inventory>(&app, &entity, &command, &headers).await? {
        (Executed::Appended(_), stock) => Ok(Json(SkuView::of(sku, &stock))),
        (Executed::Rejected(e @ InventoryRejection::BadRestock), _) => {
            Err(Problem::invalid_field("quantity", e.to_string()))
        }
        (Executed::Rejected(other), _) => Err(Problem::unavailable(other.to_string())),
    }
}
