//! Reservation timers on JetStream message schedules: set from the stock
//! reply that leaves an order holding stock while it waits for other SKUs,
//! before that reply is acked (invariant 4), and fired by the server into
//! the TIMERS stream whether or not any node is up at the time.

use std::time::{Duration, SystemTime};

use actors::journal::Cause;
use async_nats::header::HeaderMap;
use async_nats::jetstream::Context;
use schemas::headers as h;
use schemas::timer::{self, ReservationExpiry};
use schemas::wire::CURRENT_SCHEMA_VERSION;
use schemas::{OrderId, Sku};

use crate::bus::inbox::Failure;

/// Sets reservation timers of one length.
pub struct ReservationTimers {
    js: Context,
    ttl: Duration,
}

impl ReservationTimers {
    /// Timers firing `ttl` after the reservation that set them.
    pub fn new(js: Context, ttl: Duration) -> Self {
        Self { js, ttl }
    }

    /// Schedules `order_id`'s reservation timer to fire `ttl` after
    /// `reserved_at` (when the SKU stored its reservation, so a redelivered
    /// reply asks for the same instant). One timer per order: the message id
    /// drops a copy inside the duplicate window, and the expected last
    /// sequence 0 on the schedule's subject refuses a second schedule while
    /// the first is pending, so a late copy neither doubles nor postpones it.
    pub async fn schedule(
        &self,
        order_id: OrderId,
        sku: &Sku,
        reserved_at: SystemTime,
        cause: &Cause,
    ) -> Result<(), Failure> {
        let body = ReservationExpiry {
            order_id,
            sku: sku.clone(),
            ttl_ms: u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX),
        };
        let body = body
            .encode()
            .map_err(|e| Failure::Poison(format!("encoding the timer of order {order_id}: {e}")))?;
        let subject = timer::schedule_subject(order_id);
        let headers = schedule_headers(order_id, reserved_at + self.ttl, cause);
        let transient = |e: &dyn std::fmt::Display| Failure::Transient(format!("scheduling {subject}: {e}"));
        crate::telemetry::jetstream_op(crate::telemetry::JetStreamOp::Publish);
        let ack = self
            .js
            .publish_with_headers(subject.clone(), headers, body.into())
            .await
            .map_err(|e| transient(&e))?;
        match ack.await {
            Ok(_) => Ok(()),
            // A schedule is pending already: the timer is set.
            Err(e) if crate::bus::is_wrong_last_sequence(&e) => Ok(()),
            Err(e) => Err(transient(&e)),
        }
    }
}

/// The schedule's headers. Everything but the scheduling and concurrency
/// headers rides through to the fired message, so it reads like any event
/// in `nats stream view` and carries the saga's trace on.
fn schedule_headers(order_id: OrderId, at: SystemTime, cause: &Cause) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let id = format!("timers:{order_id}:{}", timer::RESERVATION_EXPIRY);
    headers.insert(h::NATS_MSG_ID, id.as_str());
    headers.insert(h::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, "0");
    let at = humantime::format_rfc3339_seconds(next_whole_second(at)).to_string();
    headers.insert(h::NATS_SCHEDULE, format!("@at {at}").as_str());
    headers.insert(h::NATS_SCHEDULE_TARGET, timer::fired_subject(order_id).as_str());
    headers.insert(h::EVENT_TYPE, timer::RESERVATION_EXPIRED);
    headers.insert(h::SCHEMA_VERSION, CURRENT_SCHEMA_VERSION.to_string().as_str());
    headers.insert(h::CONTENT_TYPE, h::MSGPACK);
    headers.insert(h::ORDER_ID, order_id.to_string().as_str());
    if let Some(id) = &cause.message_id {
        headers.insert(h::CAUSATION_ID, id.as_str());
    }
    if let Some(tp) = &cause.traceparent {
        headers.insert(h::TRACEPARENT, tp.as_str());
    }
    headers
}

/// `at` rounded up: the schedule names whole seconds, and a timer must
/// never fire before its time-to-live has passed.
fn next_whole_second(at: SystemTime) -> SystemTime {
    let since = at.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let seconds = since.as_secs() + u64::from(since.subsec_nanos() > 0);
    SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schedule_fires_once_never_early_on_the_orders_timer_subject() {
        let id = OrderId::random();
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_790_000_000_500);
        let headers = schedule_headers(id, at, &Cause::default());
        let get = |name| headers.get(name).map(|v| v.as_str().to_owned());
        assert_eq!(get(h::NATS_SCHEDULE).as_deref(), Some("@at 2026-09-21T14:13:21Z"));
        assert_eq!(get(h::NATS_SCHEDULE_TARGET), Some(timer::fired_subject(id)));
        assert_eq!(get(h::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE).as_deref(), Some("0"));
        assert_eq!(get(h::NATS_MSG_ID), Some(format!("timers:{id}:reservation_expiry")));
    }
}
