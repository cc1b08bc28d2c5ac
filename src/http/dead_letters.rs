//! `/api/v1/admin/dead-letters`: list, show, replay and discard dead letters.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use bytes::Bytes;
use serde::Deserialize;

use super::problem::{parse_json, Problem};
use super::AppState;
use crate::dead_letters::{DeadLetterDetail, DeadLetterError, Handling, Page, StateFilter};

/// The largest page a listing returns.
pub const MAX_PAGE: usize = 500;

/// `?state=open|replayed|discarded|all&after=ID&limit=N`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Which dead letters; open ones by default.
    #[serde(default)]
    pub state: StateFilter,
    /// Only ids above this one (the previous page's `next_after`).
    #[serde(default)]
    pub after: u64,
    /// At most this many (default 100, at most 500).
    pub limit: Option<usize>,
}

/// The body of a replay: who asks (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayBody {
    /// Who asks, for the trace.
    pub by: Option<String>,
}

/// The body of a discard: why, and who decides.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscardBody {
    /// Why the dead letter is set aside.
    pub reason: String,
    /// Who decides, for the trace.
    pub by: Option<String>,
}

impl From<DeadLetterError> for Problem {
    fn from(e: DeadLetterError) -> Self {
        match &e {
            DeadLetterError::NotFound(_) => Problem::not_found(e.to_string()),
            DeadLetterError::AlreadyHandled { .. } => Problem::new(
                StatusCode::CONFLICT,
                "already-handled",
                "Already handled",
                e.to_string(),
            ),
            DeadLetterError::OriginalGone { .. } => Problem::new(
                StatusCode::GONE,
                "original-gone",
                "Original no longer stored",
                e.to_string(),
            ),
            DeadLetterError::InvalidReason(message) => Problem::invalid_field("reason", message.clone()),
            DeadLetterError::Unreadable { .. } => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unreadable-dead-letter",
                "Unreadable dead letter",
                e.to_string(),
            ),
            DeadLetterError::Nats(_) => Problem::unavailable(e.to_string()),
        }
    }
}

fn parse_id(raw: &str) -> Result<u64, Problem> {
    raw.parse()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| Problem::invalid_field("id", "a dead letter id is a positive integer"))
}

/// Who acted: as given, else the API itself.
fn actor(by: Option<String>) -> Result<String, Problem> {
    match by {
        None => Ok("api".to_owned()),
        Some(by) if !by.trim().is_empty() && by.chars().count() <= 100 => Ok(by.trim().to_owned()),
        Some(_) => Err(Problem::invalid_field("by", "1 to 100 characters")),
    }
}

/// `GET /api/v1/admin/dead-letters`.
pub async fn list(
    State(app): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Page>, Problem> {
    let Query(query) = query.map_err(|e| Problem::invalid_field("query", e.body_text()))?;
    let limit = query.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_PAGE {
        return Err(Problem::invalid_field("limit", format!("between 1 and {MAX_PAGE}")));
    }
    Ok(Json(app.dead_letters.list(query.state, query.after, limit).await?))
}

/// `GET /api/v1/admin/dead-letters/{id}`.
pub async fn show(State(app): State<AppState>, Path(id): Path<String>) -> Result<Json<DeadLetterDetail>, Problem> {
    Ok(Json(app.dead_letters.show(parse_id(&id)?).await?))
}

/// `POST /api/v1/admin/dead-letters/{id}/replay`.
pub async fn replay(
    State(app): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Handling>, Problem> {
    let id = parse_id(&id)?;
    let body: ReplayBody = if body.is_empty() {
        ReplayBody::default()
    } else {
        parse_json(&body)?
    };
    Ok(Json(app.dead_letters.replay(id, &actor(body.by)?).await?))
}

/// `POST /api/v1/admin/dead-letters/{id}/discard`.
pub async fn discard(
    State(app): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Handling>, Problem> {
    let id = parse_id(&id)?;
    let body: DiscardBody = parse_json(&body)?;
    Ok(Json(
        app.dead_letters.discard(id, &body.reason, &actor(body.by)?).await?,
    ))
}
