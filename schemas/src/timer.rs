//! Timers kept by JetStream itself (message schedules, nats-server 2.12+):
//! a schedule stored under `timers.<order_id>.reservation_expiry` makes the
//! server publish its body to `timers.<order_id>.reservation_expired` at the
//! time set, so a timer outlives any node that set it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::wire::WireError;
use crate::{OrderId, Sku};

/// The stream holding schedules and the messages they fire.
pub const STREAM: &str = "TIMERS";
/// The stream's subjects.
pub const SUBJECTS: &str = "timers.>";
/// The event type (last subject token) of a pending reservation timer.
pub const RESERVATION_EXPIRY: &str = "reservation_expiry";
/// The event type of a fired reservation timer.
pub const RESERVATION_EXPIRED: &str = "reservation_expired";

/// The schedule's subject: one reservation timer per order (a schedule's
/// subject is its identity; the server keeps at most one per subject).
pub fn schedule_subject(order_id: OrderId) -> String {
    format!("timers.{order_id}.{RESERVATION_EXPIRY}")
}

/// The subject the schedule fires to.
pub fn fired_subject(order_id: OrderId) -> String {
    format!("timers.{order_id}.{RESERVATION_EXPIRED}")
}

/// Every fired reservation timer, the durable consumer's filter.
pub fn fired_filter() -> String {
    format!("timers.*.{RESERVATION_EXPIRED}")
}

/// The order a timer subject names, if it is one.
pub fn order_of(subject: &str) -> Option<OrderId> {
    let mut tokens = subject.split('.');
    let (space, id, _kind) = (tokens.next()?, tokens.next()?, tokens.next()?);
    if space != "timers" || tokens.next().is_some() {
        return None;
    }
    OrderId::parse(id).ok()
}

/// The body of a reservation timer: which reservation started the clock,
/// and how long it was given (so the reason states the TTL then in force).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationExpiry {
    /// The order holding the reservation.
    pub order_id: OrderId,
    /// The SKU whose reservation started the clock.
    pub sku: Sku,
    /// The time-to-live the reservation was given, in milliseconds.
    pub ttl_ms: u64,
}

impl ReservationExpiry {
    /// The time-to-live as a duration.
    pub fn ttl(&self) -> Duration {
        Duration::from_millis(self.ttl_ms)
    }

    /// MessagePack with named fields, like every event.
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        rmp_serde::to_vec_named(self).map_err(|e| WireError::Encode(e.to_string()))
    }

    /// Reads a fired timer's body.
    pub fn decode(body: &[u8]) -> Result<Self, WireError> {
        rmp_serde::from_slice(body).map_err(|e| WireError::Malformed {
            expected: "timers",
            reason: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timer_round_trips_and_its_subjects_name_the_order() {
        let id = OrderId::random();
        let timer = ReservationExpiry {
            order_id: id,
            sku: Sku::parse("SKU-1").unwrap(),
            ttl_ms: 900_000,
        };
        let bytes = timer.encode().unwrap();
        assert_eq!(ReservationExpiry::decode(&bytes).unwrap(), timer);
        assert_eq!(timer.ttl(), Duration::from_secs(900));
        assert_eq!(order_of(&schedule_subject(id)), Some(id));
        assert_eq!(order_of(&fired_subject(id)), Some(id));
        assert_eq!(order_of("orders.x.placed"), None);
        assert!(ReservationExpiry::decode(&[0xc1]).is_err());
    }
}
