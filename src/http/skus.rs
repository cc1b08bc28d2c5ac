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
use super::{decide_and_append, AppState, Assume};

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
    match decide_and_append::<Inventory>(&app, &entity, &command, &headers, Assume::Nothing).await? {
        (Executed::Appended(_), stock) => Ok(Json(SkuView::of(sku, &stock))),
        (Executed::Rejected(e @ InventoryRejection::BadRestock), _) => {
            Err(Problem::invalid_field("quantity", e.to_string()))
        }
        (Executed::Rejected(other), _) => Err(Problem::unavailable(other.to_string())),
    }
}

/// The most SKUs `GET /api/v1/skus` lists; a catalog past this is cut, and says so.
pub const MAX_LISTED_SKUS: usize = 500;

/// The body of `GET /api/v1/skus`.
#[derive(Debug, serde::Serialize)]
pub struct SkuList {
    /// Every SKU ever restocked, by name, with its stock.
    pub skus: Vec<SkuView>,
    /// True when more SKUs exist than were listed.
    pub truncated: bool,
}

/// `GET /api/v1/skus`: every SKU ever restocked. A SKU enters the catalog by
/// its first restock, so the INVENTORY stream's `inventory.*.restocked`
/// subjects name them all, and the broker counts them for us.
pub async fn list(State(app): State<AppState>) -> Result<Json<SkuList>, Problem> {
    use futures::TryStreamExt;
    let stream = app
        .js
        .get_stream_no_info(schemas::subjects::EntityKind::Inventory.stream())
        .await
        .map_err(|e| Problem::unavailable(format!("INVENTORY stream: {e}")))?;
    let mut subjects: Vec<String> = stream
        .info_with_subjects("inventory.*.restocked")
        .await
        .map_err(|e| Problem::unavailable(format!("INVENTORY subjects: {e}")))?
        .map_ok(|(subject, _count)| subject)
        .try_collect()
        .await
        .map_err(|e| Problem::unavailable(format!("INVENTORY subjects: {e}")))?;
    subjects.sort();
    let truncated = subjects.len() > MAX_LISTED_SKUS;
    let mut skus = Vec::new();
    for subject in subjects.iter().take(MAX_LISTED_SKUS) {
        let Some(sku) = subject.split('.').nth(1).and_then(|s| Sku::parse(s).ok()) else {
            continue;
        };
        if let Some(view) = views::sku(&app.journal, sku).await? {
            skus.push(view);
        }
    }
    Ok(Json(SkuList { skus, truncated }))
}
