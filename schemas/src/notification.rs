//! What the customer was told, journaled under `notifications.<order_id>.<type>`.
//!
//! An external send (email, webhook) is bracketed by two events: `claimed`
//! before it and `sent` or `failed` after it, so a redelivered ending finds
//! the claim and never starts a second, different notification. The log
//! channel has no outside effect, so it records `sent` alone.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::order::Outcome;
use crate::subjects::EntityKind;
use crate::wire::Event;
use crate::{CustomerId, OrderId};

/// Where a notification goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// An email over SMTP.
    Email,
    /// A signed HTTP POST (Standard Webhooks).
    Webhook,
    /// A line in the node's log; the journal entry is the record.
    Log,
}

impl Channel {
    /// Every channel.
    pub const ALL: [Channel; 3] = [Self::Email, Self::Webhook, Self::Log];

    /// The channel's name, as in the API, the config and the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Webhook => "webhook",
            Self::Log => "log",
        }
    }

    /// Parses a channel's name.
    pub fn parse(s: &str) -> Option<Channel> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// True when sending acts outside the journal, so it is claimed first.
    pub fn is_external(self) -> bool {
        !matches!(self, Self::Log)
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One notification of an order: its ending and channel, e.g. `completed.email`.
/// At most one exists per order, ending and channel.
pub fn notification_id(outcome: Outcome, channel: Channel) -> String {
    format!("{}.{}", outcome.event_type(), channel.as_str())
}

/// The same, unique across orders: `<order_id>.completed.email`. Webhooks
/// carry it as `webhook-id`, emails in their `Message-ID`, so a receiver
/// sees the same id when a send is repeated.
pub fn global_notification_id(order_id: OrderId, outcome: Outcome, channel: Channel) -> String {
    format!("{order_id}.{}", notification_id(outcome, channel))
}

fn one() -> u32 {
    1
}

/// Every event of an order's notification journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NotificationEvent {
    /// The customer was told how the order ended, on one channel.
    Sent {
        order_id: OrderId,
        customer_id: CustomerId,
        outcome: Outcome,
        channel: Channel,
        message: String,
        /// Tries it took; absent before claims existed (always one log line).
        #[serde(default = "one")]
        attempts: u32,
        /// The address or URL it went to; absent for the log.
        #[serde(default)]
        recipient: Option<String>,
        /// The channel that failed before this one, if this is a fallback.
        #[serde(default)]
        fallback_of: Option<Channel>,
    },
    /// An external send is about to start; journaled before it, so a
    /// redelivery finishes this send instead of starting another.
    Claimed {
        order_id: OrderId,
        customer_id: CustomerId,
        outcome: Outcome,
        channel: Channel,
        recipient: String,
        fallback_of: Option<Channel>,
    },
    /// A channel failed after all its tries.
    Failed {
        order_id: OrderId,
        customer_id: CustomerId,
        outcome: Outcome,
        channel: Channel,
        attempts: u32,
        error: String,
        /// The channel tried next, if any.
        fallback: Option<Channel>,
    },
    /// The customer opted out: nothing was sent for this ending.
    OptedOut {
        order_id: OrderId,
        customer_id: CustomerId,
        outcome: Outcome,
    },
    /// The customer read a notification (a read receipt).
    Read {
        order_id: OrderId,
        outcome: Outcome,
        channel: Channel,
    },
}

impl NotificationEvent {
    /// True for the events that settle an ending: sent, opted out, or
    /// failed with no channel left to fall back to. Nothing follows them.
    pub fn settles(&self) -> bool {
        matches!(
            self,
            Self::Sent { .. } | Self::OptedOut { .. } | Self::Failed { fallback: None, .. }
        )
    }

    /// The ending this event is about.
    pub fn outcome(&self) -> Outcome {
        match self {
            Self::Sent { outcome, .. }
            | Self::Claimed { outcome, .. }
            | Self::Failed { outcome, .. }
            | Self::OptedOut { outcome, .. }
            | Self::Read { outcome, .. } => *outcome,
        }
    }

    /// The channel this event is about (none for an opt-out).
    pub fn channel(&self) -> Option<Channel> {
        match self {
            Self::Sent { channel, .. }
            | Self::Claimed { channel, .. }
            | Self::Failed { channel, .. }
            | Self::Read { channel, .. } => Some(*channel),
            Self::OptedOut { .. } => None,
        }
    }

    /// The customer, for the events that name one.
    pub fn customer_id(&self) -> Option<&CustomerId> {
        match self {
            Self::Sent { customer_id, .. }
            | Self::Claimed { customer_id, .. }
            | Self::Failed { customer_id, .. }
            | Self::OptedOut { customer_id, .. } => Some(customer_id),
            Self::Read { .. } => None,
        }
    }
}

impl Event for NotificationEvent {
    const KIND: EntityKind = EntityKind::Notification;

    fn event_type(&self) -> &'static str {
        match self {
            Self::Sent { .. } => "sent",
            Self::Claimed { .. } => "claimed",
            Self::Failed { .. } => "failed",
            Self::OptedOut { .. } => "opted_out",
            Self::Read { .. } => "read",
        }
    }

    fn dedup_key(&self) -> String {
        let outcome = self.outcome().event_type();
        match self.channel() {
            Some(channel) => format!("{}:{outcome}:{channel}", self.event_type()),
            None => format!("{}:{outcome}", self.event_type()),
        }
    }

    fn order_id(&self) -> Option<OrderId> {
        match self {
            Self::Sent { order_id, .. }
            | Self::Claimed { order_id, .. }
            | Self::Failed { order_id, .. }
            | Self::OptedOut { order_id, .. }
            | Self::Read { order_id, .. } => Some(*order_id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{decode, encode, parse_schema_version};

    /// A `sent` body as version 2 wrote it before claims existed.
    #[derive(Serialize)]
    struct SentBefore<'a> {
        r#type: &'a str,
        order_id: OrderId,
        customer_id: &'a str,
        outcome: Outcome,
        channel: &'a str,
        message: &'a str,
    }

    #[test]
    fn a_sent_event_written_before_claims_still_decodes() {
        let order_id = OrderId::random();
        let old = rmp_serde::to_vec_named(&SentBefore {
            r#type: "sent",
            order_id,
            customer_id: "alice",
            outcome: Outcome::Completed,
            channel: "log",
            message: "Your order is completed.",
        })
        .unwrap();
        let version = parse_schema_version(Some("2")).unwrap();
        let event: NotificationEvent = decode(version, &old).unwrap();
        match &event {
            NotificationEvent::Sent {
                channel,
                attempts,
                recipient,
                fallback_of,
                ..
            } => assert_eq!(
                (*channel, *attempts, recipient, fallback_of),
                (Channel::Log, 1, &None, &None)
            ),
            other => panic!("decoded as {other:?}"),
        }
        // Same message id as before, so the server's dedup still recognises it.
        assert_eq!(event.dedup_key(), "sent:completed:log");
    }

    #[test]
    fn every_event_round_trips() {
        let order_id = OrderId::random();
        let customer_id = CustomerId::parse("alice").unwrap();
        let events = [
            NotificationEvent::Claimed {
                order_id,
                customer_id: customer_id.clone(),
                outcome: Outcome::Failed,
                channel: Channel::Email,
                recipient: "a@example.com".into(),
                fallback_of: None,
            },
            NotificationEvent::Failed {
                order_id,
                customer_id: customer_id.clone(),
                outcome: Outcome::Failed,
                channel: Channel::Email,
                attempts: 3,
                error: "refused".into(),
                fallback: Some(Channel::Webhook),
            },
            NotificationEvent::OptedOut {
                order_id,
                customer_id,
                outcome: Outcome::Failed,
            },
            NotificationEvent::Read {
                order_id,
                outcome: Outcome::Failed,
                channel: Channel::Webhook,
            },
        ];
        for event in events {
            let back: NotificationEvent = decode(2, &encode(&event).unwrap()).unwrap();
            assert_eq!(back, event);
        }
    }
}
