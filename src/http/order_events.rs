//! `GET /api/v1/orders/{id}/events`: Server-Sent Events, one per status
//! change of the order, folded from its journal; the stream ends after a
//! terminal status.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use actors::order::{OrderSaga, OrderState, OrderStatus};
use actors::Aggregate;
use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use schemas::OrderId;
use serde::Serialize;
use utoipa::ToSchema;

use super::access::require_order;
use super::openapi::OrderStatusDoc;
use super::problem::Problem;
use super::views;
use super::AppState;
use crate::auth::Principal;

/// A comment line this often keeps proxies from closing an idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The data of one `status` event.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StatusChange {
    /// The order.
    #[schema(value_type = String, format = Uuid)]
    pub order_id: OrderId,
    /// Its new status.
    #[schema(value_type = OrderStatusDoc)]
    pub status: OrderStatus,
    /// The journal sequence of the event that changed it (also the SSE `id`).
    pub seq: u64,
    /// The type of that event.
    pub cause: &'static str,
    /// When it was stored (RFC 3339).
    pub at: String,
    /// True for COMPLETED, FAILED and CANCELLED: the stream ends after it.
    pub terminal: bool,
}

/// What the stream knows between events.
struct Watch {
    app: AppState,
    order_id: OrderId,
    /// New events of the order wake the watch; each wake re-reads the journal.
    wakes: async_nats::Subscriber,
    state: OrderState,
    folded: usize,
    queued: VecDeque<StatusChange>,
    ended: bool,
}

impl Watch {
    /// Folds the journal events not yet seen, queueing one change per status move.
    async fn catch_up(&mut self) -> Result<(), Problem> {
        let Some(view) = views::order(&self.app.journal, self.order_id).await? else {
            return Ok(());
        };
        for entry in view.history.into_iter().skip(self.folded) {
            let before = self.state.as_ref().map(|o| o.status());
            self.state = OrderSaga::evolve(self.state.take(), &entry.event);
            self.folded += 1;
            let after = self.state.as_ref().map(|o| o.status());
            if let Some(status) = after.filter(|a| Some(*a) != before) {
                self.queued.push_back(StatusChange {
                    order_id: self.order_id,
                    status,
                    seq: entry.seq,
                    cause: entry.event_type,
                    at: entry.at,
                    terminal: status.is_terminal(),
                });
            }
        }
        Ok(())
    }

    async fn next(mut self) -> Option<(Event, Self)> {
        loop {
            if let Some(change) = self.queued.pop_front() {
                self.ended = change.terminal;
                return Some((status_event(&change), self));
            }
            if self.ended {
                return None;
            }
            // Nothing new to tell: wait for the journal to move.
            super::orders::wake(&mut self.wakes, tokio::time::Instant::now() + KEEP_ALIVE).await?;
            if let Err(problem) = self.catch_up().await {
                self.ended = true;
                let event = Event::default().event("error").json_data(&problem).ok()?;
                return Some((event, self));
            }
        }
    }
}

fn status_event(change: &StatusChange) -> Event {
    let event = Event::default().event("status").id(change.seq.to_string());
    match serde_json::to_string(change) {
        Ok(data) => event.data(data),
        Err(e) => event.event("error").data(e.to_string()),
    }
}

/// `GET /api/v1/orders/{id}/events`.
#[utoipa::path(
    get,
    path = "/api/v1/orders/{id}/events",
    tag = "orders",
    params(("id" = String, Path, format = Uuid, description = "The order's id")),
    responses(
        (status = 200, description = "`text/event-stream`: a `status` event (data: StatusChange) for the current status and each change after it; ends after a terminal one. Comment lines keep the connection alive.", body = StatusChange, content_type = "text/event-stream"),
        (status = 404, description = "No such order (`not-found`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The id is not a UUID (`invalid-request`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The journal could not be read (`unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn watch(
    State(app): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let order_id = OrderId::parse(&id).map_err(|e| Problem::invalid_field("id", e.to_string()))?;
    tracing::Span::current().record("order_id", tracing::field::display(order_id));
    // Another customer's order is as unknown as a missing one.
    require_order(&app, &principal, order_id).await?;
    // Before the first read, so an event stored in between still wakes the watch.
    let wakes = super::orders::subscribe_to_order(&app, order_id).await?;
    let mut watch = Watch {
        app,
        order_id,
        wakes,
        state: None,
        folded: 0,
        queued: VecDeque::new(),
        ended: false,
    };
    watch.catch_up().await?;
    if watch.state.is_none() {
        return Err(Problem::not_found(format!("no order {order_id}")));
    }
    // The first event is where the order stands now; earlier moves are history (`GET /orders/{id}`).
    let current = watch.queued.pop_back();
    watch.queued.clear();
    watch.queued.extend(current);
    Ok(Sse::new(events(watch))
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}

fn events(watch: Watch) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold(watch, Watch::next).map(Ok)
}
