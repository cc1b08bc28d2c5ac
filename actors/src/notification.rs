//! What the customer was told: one notification per order ending per channel.

use std::collections::BTreeSet;

use schemas::notification::NotificationEvent;
use schemas::order::Outcome;
use schemas::wire::Event;
use schemas::{CustomerId, OrderId};

use crate::Aggregate;

/// The dedup keys of notifications already sent for one order.
pub type Sent = BTreeSet<String>;

/// Tell a customer how their order ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    /// Which order.
    pub order_id: OrderId,
    /// Whom to tell.
    pub customer_id: CustomerId,
    /// How it ended.
    pub outcome: Outcome,
    /// Where to say it (`log` for now).
    pub channel: String,
    /// What to say.
    pub message: String,
}

/// Notifications never refuse: a repeat is simply already done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreachable")]
pub enum NotificationRejection {}

/// The notification state machine.
#[derive(Debug, Clone, Copy, Default)]
pub struct Notifications;

impl Aggregate for Notifications {
    type State = Sent;
    type Event = NotificationEvent;
    type Command = Notify;
    type Rejection = NotificationRejection;

    fn decide(state: &Sent, n: &Notify) -> Result<Vec<NotificationEvent>, NotificationRejection> {
        let event = NotificationEvent::Sent {
            order_id: n.order_id,
            customer_id: n.customer_id.clone(),
            outcome: n.outcome,
            channel: n.channel.clone(),
            message: n.message.clone(),
        };
        Ok(if state.contains(&event.dedup_key()) {
            Vec::new()
        } else {
            vec![event]
        })
    }

    fn evolve(mut state: Sent, event: &NotificationEvent) -> Sent {
        state.insert(event.dedup_key());
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_ending_is_told_once() {
        let n = Notify {
            order_id: OrderId::random(),
            customer_id: CustomerId::parse("alice").unwrap(),
            outcome: Outcome::Completed,
            channel: "log".into(),
            message: "done".into(),
        };
        let first = Notifications::decide(&Sent::default(), &n).unwrap();
        assert_eq!(first.len(), 1);
        let state = Notifications::replay(&first);
        assert_eq!(Notifications::decide(&state, &n).unwrap(), Vec::new());
    }
}
