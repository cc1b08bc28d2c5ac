//! Notifications over the API: customers' preferences, the history per
//! order and per customer, and read receipts.

use actors::notification::{NotificationCommand, NotificationRejection, Notifications};
use actors::shell::Executed;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use bytes::Bytes;
use schemas::notification::{Channel, NotificationEvent};
use schemas::order::Outcome;
use schemas::subjects::{EntityKind, EntityRef};
use schemas::{CustomerId, OrderId};
use serde::{Deserialize, Serialize};

use super::access::{require_customer, require_order};
use super::problem::{parse_json, Problem};
use super::{decide_and_append, AppState, Assume};
use crate::auth::Principal;
use crate::notify::history::{self, NotificationView};
use crate::notify::preferences::{PreferenceError, Preferences, PreferencesBody};
use crate::telemetry;

/// The most orders `GET /customers/{id}/notifications` reads at once.
const MAX_ORDERS: usize = 100;

/// A list of notifications.
#[derive(Debug, Serialize)]
pub struct NotificationList {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    pub notifications: Vec<NotificationView>,
}

fn parse_order(raw: &str) -> Result<OrderId, Problem> {
    OrderId::parse(raw).map_err(|e| Problem::invalid_field("id", e.to_string()))
}

fn parse_customer(raw: &str) -> Result<CustomerId, Problem> {
    CustomerId::parse(raw).map_err(|e| Problem::invalid_field("customer_id", e.to_string()))
}

impl From<PreferenceError> for Problem {
    fn from(e: PreferenceError) -> Self {
        Problem::unavailable(e.to_string())
    }
}

/// `GET /api/v1/orders/{id}/notifications`: every notification of the order.
pub async fn of_order(
    State(app): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<NotificationList>, Problem> {
    let order_id = parse_order(&id)?;
    require_order(&app, &principal, order_id).await?;
    let notifications = history::of_order(&app.journal, order_id).await?;
    if notifications.is_empty() {
        let placed = EntityRef::order(order_id).subject("placed");
        if app.journal.first_time(EntityKind::Order, &placed).await.is_none() {
            return Err(Problem::not_found(format!("no order {order_id}")));
        }
    }
    Ok(Json(NotificationList {
        order_id: Some(order_id.to_string()),
        customer_id: None,
        notifications,
    }))
}

/// `?limit=N` for a customer's notifications.
#[derive(Debug, Deserialize)]
pub struct CustomerQuery {
    limit: Option<String>,
}

/// `GET /api/v1/customers/{customer_id}/notifications`: the customer's
/// notifications, newest order first (from a projection of the stream:
/// one just recorded may take a moment to appear).
pub async fn of_customer(
    State(app): State<AppState>,
    principal: Principal,
    Path(customer): Path<String>,
    Query(query): Query<CustomerQuery>,
) -> Result<Json<NotificationList>, Problem> {
    let customer = parse_customer(&customer)?;
    require_customer(&principal, &customer, "customer_id")?;
    let limit = match query.limit.as_deref().map(str::parse::<usize>) {
        None => MAX_ORDERS,
        Some(Ok(n)) if (1..=MAX_ORDERS).contains(&n) => n,
        Some(_) => return Err(Problem::invalid_field("limit", format!("1 to {MAX_ORDERS} orders"))),
    };
    let mut notifications = Vec::new();
    for order_id in app.notify.customers.orders_of(&customer, limit) {
        notifications.extend(history::of_order(&app.journal, order_id).await?);
    }
    Ok(Json(NotificationList {
        order_id: None,
        customer_id: Some(customer.to_string()),
        notifications,
    }))
}

/// Parses `completed.email` into its ending and channel.
fn parse_notification_id(raw: &str) -> Option<(Outcome, Channel)> {
    let (ending, channel) = raw.split_once('.')?;
    let outcome = [Outcome::Completed, Outcome::Failed, Outcome::Cancelled]
        .into_iter()
        .find(|o| o.event_type() == ending)?;
    Some((outcome, Channel::parse(channel)?))
}

/// `POST /api/v1/orders/{id}/notifications/{notification_id}/read`: a read
/// receipt, journaled once; repeating it changes nothing.
pub async fn mark_read(
    State(app): State<AppState>,
    principal: Principal,
    Path((id, notification_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<NotificationView>, Problem> {
    let order_id = parse_order(&id)?;
    require_order(&app, &principal, order_id).await?;
    let (outcome, channel) = parse_notification_id(&notification_id).ok_or_else(|| {
        Problem::invalid_field("notification_id", "expected <ending>.<channel>, e.g. completed.email")
    })?;
    let command = NotificationCommand::MarkRead {
        order_id,
        outcome,
        channel,
    };
    let entity = EntityRef::notification(order_id);
    match decide_and_append::<Notifications>(&app, &entity, &command, &headers, Assume::Nothing).await? {
        (Executed::Appended(events), _) => {
            events.iter().for_each(|e: &NotificationEvent| {
                telemetry::notification_recorded(e);
            });
        }
        (Executed::Rejected(NotificationRejection::NotSent(_)), state) => {
            return Err(match state.get(outcome, channel) {
                None => Problem::not_found(format!("order {order_id} has no notification {notification_id}")),
                Some(_) => Problem::new(
                    StatusCode::CONFLICT,
                    "notification-not-sent",
                    "Notification not sent",
                    format!("{notification_id} was not delivered, so it cannot be read"),
                ),
            })
        }
        (Executed::Rejected(other), _) => return Err(Problem::unavailable(other.to_string())),
    }
    history::of_order(&app.journal, order_id)
        .await?
        .into_iter()
        .find(|v| v.id == notification_id)
        .map(Json)
        .ok_or_else(|| Problem::unavailable("the read receipt is stored but not yet readable"))
}

/// `GET /api/v1/customers/{customer_id}/notification-preferences`.
pub async fn get_preferences(
    State(app): State<AppState>,
    principal: Principal,
    Path(customer): Path<String>,
) -> Result<Json<Preferences>, Problem> {
    let customer = parse_customer(&customer)?;
    require_customer(&principal, &customer, "customer_id")?;
    app.notify
        .preferences
        .get(&customer)
        .await?
        .map(Json)
        .ok_or_else(|| Problem::not_found(format!("{customer} has set no preferences; the defaults apply")))
}

/// `PUT /api/v1/customers/{customer_id}/notification-preferences`: replaces them.
pub async fn put_preferences(
    State(app): State<AppState>,
    principal: Principal,
    Path(customer): Path<String>,
    body: Bytes,
) -> Result<Json<Preferences>, Problem> {
    let customer = parse_customer(&customer)?;
    require_customer(&principal, &customer, "customer_id")?;
    let body: PreferencesBody = parse_json(&body)?;
    let preferences = body
        .parse(app.notify.planner.default_webhook_url())
        .map_err(Problem::invalid)?;
    app.notify.preferences.put(&customer, &preferences).await?;
    Ok(Json(preferences))
}
