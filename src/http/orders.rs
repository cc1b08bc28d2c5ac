//! `/api/v1/orders`: place, read (and wait for), cancel.

use std::time::Duration;

use actors::journal::Cause;
use actors::order::{OrderCommand, OrderRejection, OrderSaga, OrderState};
use actors::shell::Executed;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use futures::StreamExt;
use schemas::order::Line;
use schemas::subjects::EntityRef;
use schemas::{Currency, CustomerId, OrderId, Quantity, Sku};
use serde::Deserialize;
use tokio::time::Instant;

use super::access::{require_customer, require_order};
use super::problem::{parse_json, FieldError, Problem};
use super::views::{self, OrderView};
use super::{decide_and_append, AppState, Assume};
use crate::auth::Principal;
use crate::bus::journal::Record;
use crate::read_model::waiters::Waiter;

/// The longest `Idempotency-Key` accepted.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

/// The longest payment method token accepted.
pub const MAX_PAYMENT_METHOD: usize = 128;

/// The body of `POST /api/v1/orders`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrderBody {
    /// Who orders.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub customer_id: String,
    /// What.
    #[schema(min_items = 1, max_items = 100)]
    pub items: Vec<ItemBody>,
    /// ISO 4217; EUR if absent.
    #[serde(default)]
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: Option<String>,
    /// A tokenised payment method (`tok_decline` always declines).
    #[schema(min_length = 1, max_length = 128)]
    pub payment_method: String,
}

/// One item of [`PlaceOrderBody`].
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemBody {
    /// Which SKU.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub sku: String,
    /// How many.
    #[schema(minimum = 1, maximum = 10000)]
    pub quantity: u32,
    /// Price of one, in minor units.
    #[schema(maximum = 100000000)]
    pub unit_price: u64,
}

/// `?wait=5s`: hold the answer until the order ends, or this long.
#[derive(Debug, Deserialize)]
pub struct WaitQuery {
    wait: Option<String>,
}

impl WaitQuery {
    fn duration(&self, max: Duration) -> Result<Option<Duration>, Problem> {
        let Some(raw) = &self.wait else { return Ok(None) };
        let d = humantime::parse_duration(raw)
            .map_err(|e| Problem::invalid_field("wait", format!("{e} (use e.g. 5s or 500ms)")))?;
        if d > max {
            return Err(Problem::invalid_field(
                "wait",
                format!("at most {}", humantime::format_duration(max)),
            ));
        }
        Ok(Some(d))
    }
}

/// The order id the request names (from its key) and the command to place it.
/// Validates a placement: the order's id (from the `Idempotency-Key`, if
/// any) and the command, or every field at fault.
pub fn parse_body(body: PlaceOrderBody, key: Option<&str>) -> Result<(OrderId, OrderCommand), Problem> {
    let mut errors = Vec::new();
    let mut err = |field: String, message: String| errors.push(FieldError { field, message });
    let customer_id = CustomerId::parse(&body.customer_id)
        .map_err(|e| err("customer_id".into(), e.to_string()))
        .ok();
    let currency = match &body.currency {
        None => Some(Currency::default()),
        Some(c) => Currency::parse(c)
            .map_err(|e| err("currency".into(), e.to_string()))
            .ok(),
    };
    if body.payment_method.is_empty()
        || body.payment_method.len() > MAX_PAYMENT_METHOD
        || !body.payment_method.bytes().all(|b| b.is_ascii_graphic())
    {
        err(
            "payment_method".into(),
            format!("must be 1 to {MAX_PAYMENT_METHOD} visible ASCII characters (a provider token)"),
        );
    }
    let mut lines = Vec::new();
    for (i, item) in body.items.iter().enumerate() {
        let sku = Sku::parse(&item.sku)
            .map_err(|e| err(format!("items[{i}].sku"), e.to_string()))
            .ok();
        let quantity = Quantity::new(item.quantity)
            .map_err(|e| err(format!("items[{i}].quantity"), e.to_string()))
            .ok();
        if let (Some(sku), Some(quantity)) = (sku, quantity) {
            lines.push(Line {
                sku,
                quantity,
                unit_price: item.unit_price,
            });
        }
    }
    let (Some(customer_id), Some(currency), true) = (customer_id, currency, errors.is_empty()) else {
        return Err(Problem::invalid(errors));
    };
    let order_id = match key {
        Some(key) => OrderId::from_idempotency_key(&customer_id, key),
        None => OrderId::random(),
    };
    Ok((
        order_id,
        OrderCommand::Place {
            order_id,
            customer_id,
            lines,
            currency,
            payment_method: body.payment_method,
        },
    ))
}

/// The request's `Idempotency-Key`, if it has a valid one.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<&str>, Problem> {
    let Some(raw) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = raw
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY)
        .ok_or_else(|| {
            Problem::invalid_field(
                "Idempotency-Key",
                format!("must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"),
            )
        })?;
    Ok(Some(key))
}

/// The trace context a request carries into the saga.
pub fn cause_of(headers: &HeaderMap) -> Cause {
    Cause {
        message_id: None,
        traceparent: headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    }
}

/// `POST /api/v1/orders`: 201 with the new order, or 200 with the order an
/// `Idempotency-Key` already created; never a second order for one key.
pub async fn place(
    State(app): State<AppState>,
    principal: Principal,
    Query(wait): Query<WaitQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let wait = wait.duration(app.config.http.max_wait)?;
    let key = idempotency_key(&headers)?;
    let (order_id, command) = parse_body(parse_json(&body)?, key)?;
    // Before the append, so that every record of the order is heard.
    let waiter = wait.map(|_| app.orders.watch(order_id));
    let status = place_one(&app, &principal, order_id, command, &headers).await?;
    let view = match (wait, waiter) {
        // Just placed: nothing to read, all of it will be heard.
        (Some(wait), Some(waiter)) if status == StatusCode::CREATED => {
            wait_for_ending(&app, order_id, Instant::now() + wait, waiter, false).await?
        }
        _ => read(&app, order_id, wait).await?,
    };
    Ok((status, [("location", format!("/api/v1/orders/{order_id}"))], Json(view)).into_response())
}

/// Places one validated order, as `POST /api/v1/orders` and each item of a
/// bulk placement do: 201 for a new order, 200 if its `Idempotency-Key`
/// created it already, or the problem.
pub async fn place_one(
    app: &AppState,
    principal: &Principal,
    order_id: OrderId,
    command: OrderCommand,
    headers: &HeaderMap,
) -> Result<StatusCode, Problem> {
    if let OrderCommand::Place { customer_id, .. } = &command {
        require_customer(principal, customer_id, "customer_id")?;
    }
    tracing::Span::current().record("order_id", tracing::field::display(order_id));
    let entity = EntityRef::order(order_id);
    let (executed, order) = decide_and_append::<OrderSaga>(app, &entity, &command, headers, Assume::New).await?;
    match executed {
        Executed::Appended(_) => Ok(StatusCode::CREATED),
        Executed::Rejected(OrderRejection::AlreadyPlaced) => {
            if !same_request(&order, &command) {
                return Err(Problem::new(
                    StatusCode::CONFLICT,
                    "idempotency-key-reused",
                    "Idempotency key reused",
                    format!("key already placed order {order_id} with a different request"),
                ));
            }
            Ok(StatusCode::OK)
        }
        Executed::Rejected(OrderRejection::Invalid { field, reason }) => Err(Problem::invalid_field(field, reason)),
        Executed::Rejected(other) => Err(Problem::unavailable(other.to_string())),
    }
}

/// Whether the order already placed under a key is what this request asks.
fn same_request(order: &OrderState, command: &OrderCommand) -> bool {
    let (
        Some(order),
        OrderCommand::Place {
            customer_id,
            lines,
            currency,
            payment_method,
            ..
        },
    ) = (order, command)
    else {
        return false;
    };
    &order.customer_id == customer_id
        && &order.lines == lines
        && &order.currency == currency
        && &order.payment_method == payment_method
}

/// `GET /api/v1/orders/{id}[?wait=5s]`.
pub async fn get(
    State(app): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Query(wait): Query<WaitQuery>,
) -> Result<Json<OrderView>, Problem> {
    let wait = wait.duration(app.config.http.max_wait)?;
    let order_id = OrderId::parse(&id).map_err(|e| Problem::invalid_field("id", e.to_string()))?;
    tracing::Span::current().record("order_id", tracing::field::display(order_id));
    require_order(&app, &principal, order_id).await?;
    Ok(Json(read(&app, order_id, wait).await?))
}

/// The body of `POST /api/v1/orders/{id}/cancel`; may be empty.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    #[serde(default)]
    reason: Option<String>,
}

/// `POST /api/v1/orders/{id}/cancel`: 202 once the request is journaled;
/// the saga undoes what it did and ends CANCELLED (`?wait=` to see it).
pub async fn cancel(
    State(app): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Query(wait): Query<WaitQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let wait = wait.duration(app.config.http.max_wait)?;
    let order_id = OrderId::parse(&id).map_err(|e| Problem::invalid_field("id", e.to_string()))?;
    tracing::Span::current().record("order_id", tracing::field::display(order_id));
    require_order(&app, &principal, order_id).await?;
    let body: CancelBody = if body.is_empty() {
        CancelBody::default()
    } else {
        parse_json(&body)?
    };
    let reason = body.reason.unwrap_or_else(|| "cancelled by customer".into());
    if reason.len() > 500 {
        return Err(Problem::invalid_field("reason", "at most 500 characters"));
    }
    let command = OrderCommand::Cancel { reason };
    match decide_and_append::<OrderSaga>(&app, &EntityRef::order(order_id), &command, &headers, Assume::Nothing)
        .await?
        .0
    {
        Executed::Appended(_) => {}
        Executed::Rejected(OrderRejection::NotPlaced) => {
            return Err(Problem::not_found(format!("no order {order_id}")))
        }
        Executed::Rejected(OrderRejection::AlreadyEnded(outcome)) => {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "order-ended",
                "Order already ended",
                format!("order {order_id} already ended as {}", outcome.event_type()),
            ));
        }
        Executed::Rejected(other) => return Err(Problem::unavailable(other.to_string())),
    }
    let view = read(&app, order_id, wait).await?;
    let status = if view.is_terminal() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(view)).into_response())
}

/// Every event stored for `order_id` from now on, as a wake-up call. Call it
/// before reading the journal, so an event stored in between is not missed.
pub async fn subscribe_to_order(app: &AppState, order_id: OrderId) -> Result<async_nats::Subscriber, Problem> {
    let events = app
        .client
        .subscribe(EntityRef::order(order_id).journal_filter())
        .await
        .map_err(|e| Problem::unavailable(e.to_string()))?;
    // The subscription is live at the server once the flush returns.
    app.client
        .flush()
        .await
        .map_err(|e| Problem::unavailable(e.to_string()))?;
    Ok(events)
}

/// How often an order's event stream re-reads the journal though nothing
/// woke it. In a cluster a new subscription reaches the other servers a
/// moment after it is made, and an event published there in between is
/// never delivered here (seen as 30 s `?wait=` stragglers in the 3-node
/// bench when `?wait=` subscribed per request); the re-read bounds such a
/// miss to this. Also how long a `?wait=` trusts a silent follower.
const RECHECK: Duration = Duration::from_secs(1);

/// The first re-read of a `?wait=` while the node's follower is still
/// replaying the stream it found (after a restart): an order placed then
/// ends within a few hundred milliseconds, long before the follower reaches
/// it. The pause doubles up to [`RECHECK`], so a wait that outlasts the
/// replay reads a handful of times, not ten times a second.
const FIRST_RECHECK_WHILE_BEHIND: Duration = Duration::from_millis(100);

/// What ended a [`wake`].
#[derive(Debug, PartialEq, Eq)]
pub enum Wake {
    /// An event was stored on this subject.
    Event(String),
    /// Nothing arrived for [`RECHECK`], or the deadline came.
    Quiet,
}

/// Waits until `events` brings something, [`RECHECK`] passes or `until`
/// comes, whichever is first; `None` once the subscription has ended.
pub async fn wake(events: &mut async_nats::Subscriber, until: Instant) -> Option<Wake> {
    let by = until.min(Instant::now() + RECHECK);
    match tokio::time::timeout_at(by, events.next()).await {
        Ok(None) => None,
        Ok(Some(message)) => Some(Wake::Event(message.subject.to_string())),
        Err(_) => Some(Wake::Quiet),
    }
}

/// Reads an order, first waiting up to `wait` for it to end.
async fn read(app: &AppState, order_id: OrderId, wait: Option<Duration>) -> Result<OrderView, Problem> {
    let Some(wait) = wait else {
        return views::order(&app.journal, order_id)
            .await?
            .ok_or_else(|| Problem::not_found(format!("no order {order_id}")));
    };
    let waiter = app.orders.watch(order_id);
    wait_for_ending(app, order_id, Instant::now() + wait, waiter, true).await
}

/// An order once it has ended, or as it stands at `deadline`, whichever is
/// first, folded from the records `waiter` hears (it was registered before
/// the order could end, so nothing stored since is missed); `read_now`
/// reads the journal first, for what was stored before.
///
/// The follower misses no record, so the journal is re-read while waiting
/// only when the follower folded nothing for [`RECHECK`] (its consumer may
/// be being re-created) or is still replaying the stream's history (after
/// a restart on a journal of 100,000 orders it reached a new order's
/// events 5 to 13 s late), and at the deadline, in case it lags. A wait
/// that re-read its journal every second while the follower kept up made a
/// saga that had fallen behind fall further: thousands of waiters reading,
/// each read scanning the stream between the order's far-apart events,
/// ahead of the saga's own publishes.
async fn wait_for_ending(
    app: &AppState,
    order_id: OrderId,
    deadline: Instant,
    waiter: Waiter,
    read_now: bool,
) -> Result<OrderView, Problem> {
    let entity = EntityRef::order(order_id);
    let mut records = Vec::new();
    if read_now {
        records = app.journal.records(&entity, 0).await?;
    }
    let mut behind_pause = FIRST_RECHECK_WHILE_BEHIND;
    loop {
        extend_heard(&mut records, waiter.take());
        if let Some(view) = views::order_of(&records)?.filter(OrderView::is_terminal) {
            return Ok(view);
        }
        if Instant::now() >= deadline {
            break;
        }
        let replaying = !app.orders.caught_up();
        let pause = if replaying { behind_pause } else { RECHECK };
        let by = deadline.min(Instant::now() + pause);
        let heard = tokio::time::timeout_at(by, waiter.ended()).await.is_ok();
        let follower_behind = !app.orders.caught_up() || app.orders.quiet_for(RECHECK);
        if !heard && Instant::now() < deadline && follower_behind {
            let after = records.last().map_or(0, |r: &Record| r.seq);
            records.extend(app.journal.records(&entity, after).await?);
        }
        if replaying {
            behind_pause = (behind_pause * 2).min(RECHECK);
        }
    }
    let after = records.last().map_or(0, |r: &Record| r.seq);
    records.extend(app.journal.records(&entity, after).await?);
    views::order_of(&records)?.ok_or_else(|| Problem::not_found(format!("no order {order_id}")))
}

/// Appends what the follower brought after the records already held: it
/// may hear again what a read returned, since it can lag behind the read,
/// and replays the stream from the start when it is rebuilt.
fn extend_heard(records: &mut Vec<Record>, heard: Vec<Record>) {
    let mut last = records.last().map_or(0, |r| r.seq);
    for record in heard {
        if record.seq > last {
            last = record.seq;
            records.push(record);
        }
    }
}
