//! An order's notifications as the API shows them, folded from its
//! NOTIFICATIONS journal with the times the stream stored each event.

use std::collections::BTreeMap;
use std::time::SystemTime;

use schemas::notification::{notification_id, Channel, NotificationEvent};
use schemas::subjects::EntityRef;
use schemas::OrderId;
use serde::Serialize;

use crate::bus::journal::{NatsJournal, Record};
use crate::http::problem::Problem;

/// One notification: one ending on one channel (or the opt-out).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct NotificationView {
    /// `completed.email`: unique within the order.
    pub id: String,
    /// Which order.
    pub order_id: String,
    /// Whom it was for.
    pub customer_id: String,
    /// The ending it tells (`COMPLETED`, `FAILED`, `CANCELLED`).
    pub ending: &'static str,
    /// `email`, `webhook` or `log`; absent for an opt-out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    /// `sending` (claimed, result not yet recorded), `sent`, `read`,
    /// `failed`, `fell_back` (failed, next channel tried) or `opted_out`.
    pub status: &'static str,
    /// Tries the send took.
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The channel tried after this one failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Channel>,
    /// The channel whose failure led to this one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback_of: Option<Channel>,
    /// When it was first recorded (claimed, or sent for the log).
    pub created_at: String,
    /// When its result was recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settled_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_at: Option<String>,
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Folds an order's notification journal into one view per notification,
/// in the order they were first recorded.
pub fn fold(
    order_id: OrderId,
    events: impl IntoIterator<Item = (SystemTime, NotificationEvent)>,
) -> Vec<NotificationView> {
    let mut views: BTreeMap<String, (usize, NotificationView)> = BTreeMap::new();
    for (at, event) in events {
        let outcome = event.outcome();
        let id = match event.channel() {
            Some(channel) => notification_id(outcome, channel),
            None => format!("{}.opted_out", outcome.event_type()),
        };
        let next = views.len();
        let (_, v) = views.entry(id.clone()).or_insert_with(|| {
            (
                next,
                NotificationView {
                    id,
                    order_id: order_id.to_string(),
                    ending: outcome.status(),
                    channel: event.channel(),
                    status: "sending",
                    created_at: rfc3339(at),
                    ..NotificationView::default()
                },
            )
        });
        if let Some(customer) = event.customer_id() {
            v.customer_id = customer.to_string();
        }
        // First record wins, as in the state machine: a republished copy changes nothing.
        let settled = v.settled_at.is_some();
        match event {
            NotificationEvent::Claimed {
                recipient, fallback_of, ..
            } => {
                v.recipient.get_or_insert(recipient);
                v.fallback_of = v.fallback_of.or(fallback_of);
            }
            NotificationEvent::Sent {
                message,
                attempts,
                recipient,
                fallback_of,
                ..
            } if !settled => {
                v.status = if v.read_at.is_some() { "read" } else { "sent" };
                v.attempts = attempts;
                v.message = Some(message);
                v.recipient = v.recipient.take().or(recipient);
                v.fallback_of = v.fallback_of.or(fallback_of);
                v.settled_at = Some(rfc3339(at));
            }
            NotificationEvent::Failed {
                attempts,
                error,
                fallback,
                ..
            } if !settled => {
                v.status = if fallback.is_some() { "fell_back" } else { "failed" };
                v.attempts = attempts;
                v.error = Some(error);
                v.fallback = fallback;
                v.settled_at = Some(rfc3339(at));
            }
            NotificationEvent::OptedOut { .. } if !settled => {
                v.status = "opted_out";
                v.settled_at = Some(rfc3339(at));
            }
            NotificationEvent::Read { .. } if v.read_at.is_none() => {
                v.read_at = Some(rfc3339(at));
                v.status = "read";
            }
            _ => {}
        }
    }
    let mut views: Vec<_> = views.into_values().collect();
    views.sort_by_key(|(first, _)| *first);
    views.into_iter().map(|(_, v)| v).collect()
}

/// Reads and folds an order's notifications.
pub async fn of_order(journal: &NatsJournal, order_id: OrderId) -> Result<Vec<NotificationView>, Problem> {
    let records: Vec<Record> = journal.records(&EntityRef::notification(order_id), 0).await?;
    let events = records
        .iter()
        .map(|r| Ok((r.time, NatsJournal::decode::<NotificationEvent>(r)?)))
        .collect::<Result<Vec<_>, actors::journal::JournalError>>()?;
    Ok(fold(order_id, events))
}
